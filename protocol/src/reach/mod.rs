//! Reachability: what a node learns from its peers about the address it
//! can be reached at (`spec/reach.md`).
//!
//! Each peer that offers `REACH` is told, once per session, the address
//! this node sees its connection come from ([`ObservedAddr`]). A node
//! holds one report per peer that is up (its latest; forgotten when the
//! peer goes down), at most [`ReachConfig::max_observers`]. When
//! [`ReachConfig::observed_threshold`] distinct peers report the same IP,
//! and the node does not announce that IP yet, it adopts the IP with its
//! own listen port (the port a peer sees is the NAT's or an ephemeral
//! one: connections are dialled from fresh ports) as an announced
//! address. One peer counts once however often it reports, so a single
//! liar, or a few under the threshold, cannot make the node announce an
//! address; what they cost is one table slot each while they are up.

pub(crate) mod api;
pub(crate) mod config;

use core::net::{IpAddr, SocketAddr};
use std::collections::BTreeMap;

use tracing::{debug, info};

use crate::cx::Cx;
use crate::wire::{
    Capabilities, DialBack, DialBackResult, DialBackStatus, MAX_LISTEN_ADDRS, Message, ObservedAddr,
};
use crate::{ConnId, Instant, NodeId};

pub use api::{ReachEvent, ReachStats};
pub use config::{MIN_OBSERVED_THRESHOLD, ReachConfig};

/// How long after asking a peer to dial it back this node takes an
/// inbound session from that peer for the dial-back (the answer may come
/// before the dial-back's own session completes here).
const DIAL_BACK_WAIT: crate::Duration = crate::Duration::from_secs(30);

/// Peers whose last dial-back time is remembered (for `probe_gap`); the
/// oldest is forgotten beyond it.
const MAX_SERVED: usize = 256;

/// The reach component: the peers' reports of this node's address, its
/// reachability checks, and the dial-backs it runs for its peers.
pub(crate) struct Reach {
    config: ReachConfig,
    /// Each reporting peer's latest report (ordered: no hash order leaks).
    reports: BTreeMap<NodeId, IpAddr>,
    /// IPs confirmed by `observed_threshold` peers, each checked once (at
    /// most `MAX_LISTEN_ADDRS`: what a `Hello` can carry).
    confirmed: Vec<IpAddr>,
    /// This node's checks in flight, by nonce (at most one per confirmed IP).
    checks: BTreeMap<u64, Check>,
    next_nonce: u64,
    /// Dial-backs this node runs for its peers: the probe's connection,
    /// the requester and its nonce (at most `max_probes`).
    probes: BTreeMap<ConnId, (NodeId, u64)>,
    /// When each peer's last dial-back began (at most [`MAX_SERVED`]).
    served: BTreeMap<NodeId, Instant>,
    /// Peers asked to dial this node back whose dial-back has not arrived,
    /// and until when it is awaited (at most `probe_peers` per confirmed
    /// IP).
    dial_backs_due: BTreeMap<NodeId, Instant>,
    pub(crate) stats: ReachStats,
}

/// A reachability check in flight.
struct Check {
    addr: SocketAddr,
    /// Asked peers that have not answered yet.
    waiting: Vec<NodeId>,
    reached: usize,
    unreached: usize,
    unanswered: usize,
}

/// An IP that `observed_threshold` peers see this node at, for the first
/// time: the router announces it unless it is, then checks it.
pub(crate) struct Confirmed {
    /// The IP.
    pub(crate) ip: IpAddr,
    /// How many distinct peers report it.
    pub(crate) observers: usize,
    /// Whether the node announces it already.
    pub(crate) announced: bool,
}

impl Reach {
    pub(crate) fn new(config: ReachConfig) -> Self {
        Reach {
            config,
            reports: BTreeMap::new(),
            confirmed: Vec::new(),
            checks: BTreeMap::new(),
            next_nonce: 0,
            probes: BTreeMap::new(),
            served: BTreeMap::new(),
            dial_backs_due: BTreeMap::new(),
            stats: ReachStats::default(),
        }
    }

    /// `peer` came up on a connection from `remote`: tell it where we see
    /// it, if it listens for that.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId, remote: SocketAddr) {
        if !cx
            .peer_caps(peer)
            .is_some_and(|caps| caps.contains(Capabilities::REACH))
        {
            return;
        }
        let message = Message::ObservedAddr(ObservedAddr { addr: remote });
        if cx.send(peer, &message).is_ok() {
            self.stats.observations_sent += 1;
        }
    }

    /// `peer` went down: its report no longer counts, and a check that
    /// waits for its answer counts it unanswered.
    pub(crate) fn peer_down(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        self.reports.remove(&peer);
        let nonces: Vec<u64> = self
            .checks
            .iter()
            .filter(|(_, check)| check.waiting.contains(&peer))
            .map(|(&nonce, _)| nonce)
            .collect();
        for nonce in nonces {
            if let Some(check) = self.checks.get_mut(&nonce) {
                check.waiting.retain(|&p| p != peer);
                check.unanswered += 1;
            }
            self.finish_if_done(cx, nonce);
        }
    }

    /// `from` sees this node at `observed`. Returns the IP when this
    /// report brings it to the threshold for the first time.
    pub(crate) fn on_observed(
        &mut self,
        from: NodeId,
        observed: SocketAddr,
        announced: &[SocketAddr],
    ) -> Option<Confirmed> {
        let ip = observed.ip().to_canonical();
        if !dialable_ip(ip) || observed.port() == 0 {
            self.stats.observations_undialable += 1;
            return None;
        }
        if !self.reports.contains_key(&from) && self.reports.len() >= self.config.max_observers {
            self.stats.observations_dropped += 1;
            return None;
        }
        self.stats.observations += 1;
        self.reports.insert(from, ip);
        if self.confirmed.contains(&ip) || self.confirmed.len() >= MAX_LISTEN_ADDRS {
            return None;
        }
        let observers = self.observers_of(ip).count();
        if observers < self.config.observed_threshold {
            return None;
        }
        self.confirmed.push(ip);
        Some(Confirmed {
            ip,
            observers,
            announced: announced.iter().any(|a| a.ip().to_canonical() == ip),
        })
    }

    /// The distinct IPs peers report seeing this node at (each dialable),
    /// in the order of the reporting peers' ids: a hole punch's candidates
    /// (`spec/relay.md` §7), confirmed or not.
    pub(crate) fn reported_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for &ip in self.reports.values() {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips
    }

    /// Peers whose latest report is `ip`, in id order.
    fn observers_of(&self, ip: IpAddr) -> impl Iterator<Item = NodeId> + '_ {
        self.reports
            .iter()
            .filter(move |&(_, &seen)| seen == ip)
            .map(|(&peer, _)| peer)
    }

    /// The router announced (`Some`) or could not announce (`None`) what
    /// [`Reach::on_observed`] confirmed.
    pub(crate) fn adopted(
        &mut self,
        cx: &mut dyn Cx,
        confirmed: &Confirmed,
        addr: Option<SocketAddr>,
    ) {
        match addr {
            Some(addr) => {
                self.stats.adopted += 1;
                info!(%addr, observers = confirmed.observers, "peers see this node at a new address: announcing it");
                cx.emit(ReachEvent::AddressAdopted {
                    addr,
                    observers: confirmed.observers,
                });
            }
            None => self.stats.adopt_refused += 1,
        }
    }

    /// Checks whether this node is reachable at `addr`: asks up to
    /// `probe_peers` of the peers that see it at `addr`'s IP to dial it
    /// back there.
    pub(crate) fn check(&mut self, cx: &mut dyn Cx, addr: SocketAddr) {
        let ip = addr.ip().to_canonical();
        let helpers: Vec<NodeId> = self
            .observers_of(ip)
            .filter(|&peer| cx.is_up(peer))
            .take(self.config.probe_peers)
            .collect();
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let request = Message::DialBack(DialBack {
            nonce,
            port: addr.port(),
        });
        let waiting: Vec<NodeId> = helpers
            .into_iter()
            .filter(|&peer| cx.send(peer, &request).is_ok())
            .collect();
        if waiting.is_empty() {
            return;
        }
        self.stats.checks += 1;
        debug!(%addr, helpers = waiting.len(), "checking reachability");
        let until = cx.now() + DIAL_BACK_WAIT;
        for &peer in &waiting {
            self.dial_backs_due.insert(peer, until);
        }
        self.checks.insert(
            nonce,
            Check {
                addr,
                waiting,
                reached: 0,
                unreached: 0,
                unanswered: 0,
            },
        );
    }

    /// `from` asks to be dialled back at `port` of its IP as this node sees
    /// it (`remote`, its connection's address): only that IP, so a request
    /// can never make this node dial a third party. Returns where to dial,
    /// or `None` after answering `Refused` (over `max_probes`, or sooner
    /// than `probe_gap` after this peer's last).
    pub(crate) fn on_dial_back(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        remote: SocketAddr,
        request: &DialBack,
    ) -> Option<SocketAddr> {
        let now = cx.now();
        let too_soon = self
            .served
            .get(&from)
            .is_some_and(|&at| now < at + self.config.probe_gap);
        if too_soon || self.probes.len() >= self.config.max_probes {
            self.refuse(cx, from, request.nonce);
            return None;
        }
        if !self.served.contains_key(&from) && self.served.len() >= MAX_SERVED {
            let oldest = self
                .served
                .iter()
                .min_by_key(|&(_, at)| *at)
                .map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.served.remove(&oldest);
            }
        }
        self.served.insert(from, now);
        Some(SocketAddr::new(remote.ip(), request.port))
    }

    /// The router began the dial-back `conn` for `from`'s request `nonce`
    /// (`None`: this node's connection caps refused the dial).
    pub(crate) fn probe_started(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        nonce: u64,
        conn: Option<ConnId>,
    ) {
        match conn {
            Some(conn) => {
                self.stats.probes_run += 1;
                self.probes.insert(conn, (from, nonce));
            }
            None => self.refuse(cx, from, nonce),
        }
    }

    fn refuse(&mut self, cx: &mut dyn Cx, to: NodeId, nonce: u64) {
        self.stats.probes_refused += 1;
        let answer = Message::DialBackResult(DialBackResult {
            nonce,
            status: DialBackStatus::Refused,
        });
        let _ = cx.send(to, &answer);
    }

    /// Whether an inbound session from `peer` now is the dial-back this
    /// node asked it for (and awaits no more after this).
    pub(crate) fn take_dial_back(&mut self, peer: NodeId, now: Instant) -> bool {
        self.dial_backs_due.retain(|_, until| *until > now);
        self.dial_backs_due.remove(&peer).is_some()
    }

    /// The dial-back `conn` ended: tell its requester how it went.
    pub(crate) fn probe_ended(&mut self, cx: &mut dyn Cx, conn: ConnId, reached: bool) {
        let Some((requester, nonce)) = self.probes.remove(&conn) else {
            return;
        };
        let status = if reached {
            DialBackStatus::Reached
        } else {
            DialBackStatus::Unreached
        };
        let answer = Message::DialBackResult(DialBackResult { nonce, status });
        let _ = cx.send(requester, &answer);
    }

    /// `from` answers a check's dial-back request. Answers from peers not
    /// asked, or twice, are ignored.
    pub(crate) fn on_dial_back_result(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        result: &DialBackResult,
    ) {
        let Some(check) = self.checks.get_mut(&result.nonce) else {
            return;
        };
        let Some(at) = check.waiting.iter().position(|&p| p == from) else {
            return;
        };
        check.waiting.remove(at);
        match result.status {
            DialBackStatus::Reached => check.reached += 1,
            DialBackStatus::Unreached => check.unreached += 1,
            DialBackStatus::Refused => check.unanswered += 1,
        }
        self.finish_if_done(cx, result.nonce);
    }

    fn finish_if_done(&mut self, cx: &mut dyn Cx, nonce: u64) {
        if !self
            .checks
            .get(&nonce)
            .is_some_and(|check| check.waiting.is_empty())
        {
            return;
        }
        let Some(check) = self.checks.remove(&nonce) else {
            return;
        };
        let reachable = check.reached > 0;
        info!(addr = %check.addr, reachable, reached = check.reached, unreached = check.unreached, "reachability checked");
        cx.emit(ReachEvent::Reachability {
            addr: check.addr,
            reachable,
            reached: check.reached,
            unreached: check.unreached,
            unanswered: check.unanswered,
        });
    }
}

/// Whether a peer could dial `ip` (the port aside): not unspecified,
/// multicast or the IPv4 broadcast address.
fn dialable_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn reach(threshold: usize, max: usize) -> Reach {
        Reach::new(ReachConfig {
            observed_threshold: threshold,
            max_observers: max,
            ..ReachConfig::default()
        })
    }

    #[test]
    fn an_ip_is_adopted_when_enough_distinct_peers_report_it() {
        let mut r = reach(3, 64);
        let own = [addr("10.0.0.1:4000")];
        let public = addr("203.0.113.9:51000");
        assert!(r.on_observed(NodeId::from_u128(1), public, &own).is_none());
        assert!(r.on_observed(NodeId::from_u128(2), public, &own).is_none());
        let adopt = r
            .on_observed(NodeId::from_u128(3), addr("203.0.113.9:51999"), &own)
            .expect("third peer");
        assert_eq!(adopt.ip, public.ip());
        assert_eq!(adopt.observers, 3);
        // Once announced, it is not adopted again.
        let now_own = [own[0], addr("203.0.113.9:4000")];
        assert!(
            r.on_observed(NodeId::from_u128(4), public, &now_own)
                .is_none()
        );
    }

    #[test]
    fn one_liar_counts_once_however_often_it_reports() {
        let mut r = reach(2, 64);
        let liar = NodeId::from_u128(66);
        for port in 1..100 {
            let lie = SocketAddr::from(([198, 51, 100, 1], port));
            assert!(r.on_observed(liar, lie, &[]).is_none());
        }
        // An honest peer seeing another address does not confirm the lie.
        assert!(
            r.on_observed(NodeId::from_u128(1), addr("203.0.113.9:1"), &[])
                .is_none()
        );
        assert_eq!(r.reports.len(), 2);
    }

    #[test]
    fn reports_beyond_the_cap_are_dropped_and_counted() {
        let mut r = reach(2, 4);
        for i in 0..10 {
            r.on_observed(
                NodeId::from_u128(i),
                addr("203.0.113.9:1"),
                &[addr("203.0.113.9:4000")],
            );
        }
        assert_eq!(r.reports.len(), 4);
        assert_eq!(r.stats.observations, 4);
        assert_eq!(r.stats.observations_dropped, 6);
        // A peer already held may still update its report.
        r.on_observed(NodeId::from_u128(0), addr("198.51.100.1:1"), &[]);
        assert_eq!(r.stats.observations, 5);
    }

    #[test]
    fn undialable_reports_are_ignored() {
        let mut r = reach(2, 64);
        for (i, bad) in [
            "0.0.0.0:1",
            "[::]:1",
            "224.0.0.1:1",
            "255.255.255.255:1",
            "10.0.0.1:0",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                r.on_observed(NodeId::from_u128(i as u128), addr(bad), &[])
                    .is_none()
            );
        }
        assert_eq!(r.stats.observations_undialable, 5);
        assert!(r.reports.is_empty());
    }
}
