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

use tracing::info;

use crate::NodeId;
use crate::cx::Cx;
use crate::wire::{Capabilities, Message, ObservedAddr};

pub use api::{ReachEvent, ReachStats};
pub use config::{MIN_OBSERVED_THRESHOLD, ReachConfig};

/// The reach component: the peers' reports of this node's address.
pub(crate) struct Reach {
    config: ReachConfig,
    /// Each reporting peer's latest report (ordered: no hash order leaks).
    reports: BTreeMap<NodeId, IpAddr>,
    pub(crate) stats: ReachStats,
}

/// What the router does with a report: announce an adopted address.
pub(crate) struct Adopt {
    /// The IP many peers see this node at.
    pub(crate) ip: IpAddr,
    /// How many distinct peers report it.
    pub(crate) observers: usize,
}

impl Reach {
    pub(crate) fn new(config: ReachConfig) -> Self {
        Reach {
            config,
            reports: BTreeMap::new(),
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

    /// `peer` went down: its report no longer counts.
    pub(crate) fn peer_down(&mut self, peer: NodeId) {
        self.reports.remove(&peer);
    }

    /// `from` sees this node at `observed`. Returns the IP to adopt when
    /// this report brings it to the threshold and `announced` (what the
    /// node announces now) lacks it.
    pub(crate) fn on_observed(
        &mut self,
        from: NodeId,
        observed: SocketAddr,
        announced: &[SocketAddr],
    ) -> Option<Adopt> {
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
        if announced.iter().any(|a| a.ip().to_canonical() == ip) {
            return None;
        }
        let observers = self.reports.values().filter(|&&seen| seen == ip).count();
        (observers >= self.config.observed_threshold).then_some(Adopt { ip, observers })
    }

    /// The router announced (`Some`) or could not announce (`None`) what
    /// [`Reach::on_observed`] asked to adopt.
    pub(crate) fn adopted(&mut self, cx: &mut dyn Cx, adopt: &Adopt, addr: Option<SocketAddr>) {
        match addr {
            Some(addr) => {
                self.stats.adopted += 1;
                info!(%addr, observers = adopt.observers, "peers see this node at a new address: announcing it");
                cx.emit(ReachEvent::AddressAdopted {
                    addr,
                    observers: adopt.observers,
                });
            }
            None => self.stats.adopt_refused += 1,
        }
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
    fn a_peer_that_goes_down_no_longer_counts() {
        let mut r = reach(2, 64);
        let seen = addr("203.0.113.9:1");
        assert!(r.on_observed(NodeId::from_u128(1), seen, &[]).is_none());
        r.peer_down(NodeId::from_u128(1));
        assert!(r.on_observed(NodeId::from_u128(2), seen, &[]).is_none());
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
