//! The connection table: dials and races, caps, sessions, the
//! one-connection-per-peer rule, closing, and peers coming up and going
//! down. `spec/peers.md` describes the behaviour language-neutrally.

use core::hash::BuildHasher;
use core::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use smallvec::SmallVec;
use tracing::{debug, info, warn};

use super::admission::{self, AddrGroup, HalfOpen, InboundPeer};
use super::{
    AdmissionReason, Connection, Handshake, Net, PeerLink, PeersError, PeersEvent, RemoteAddr,
    Timer, Upcalls, redial_delay,
};
use crate::cx::Cx;
use crate::liveness::peer::PeerLiveness;
use crate::session::{Established, Grant, ReadError, Session, SessionOutput, SessionOutputs};
use crate::wire::{
    FindPeer, Goodbye, GoodbyeReason, LENGTH_PREFIX_LEN, Message, PREAMBLE_LEN, PeerList,
};
use crate::{Accepted, CloseReason, ConnId, Direction, NodeId, Output, ProtocolError};

/// The length of a Noise first message with its preamble (preamble, frame
/// header, ephemeral key): once an inbound connection has sent this much,
/// the node is about to do a key exchange for it.
const FIRST_MESSAGE_LEN: usize = PREAMBLE_LEN + LENGTH_PREFIX_LEN + 32;

/// Connections by kind, for the caps.
#[derive(Default)]
struct Counts {
    outbound: usize,
    outbound_half_open: usize,
    inbound_half_open: usize,
    inbound_established: usize,
    /// Inbound connections (any state) from one source IP, and from its
    /// address group (when asked for one).
    same_ip: usize,
    same_group: usize,
}

impl Net {
    /// Counts every connection; `source` also counts the inbound ones from
    /// that IP and its group.
    fn counts(&self, source: Option<(IpAddr, AddrGroup)>) -> Counts {
        let mut counts = Counts::default();
        for c in self.conns.values() {
            match (c.direction, c.peer().is_some()) {
                (Direction::Outbound, established) => {
                    counts.outbound += 1;
                    counts.outbound_half_open += usize::from(!established);
                }
                (Direction::Inbound, false) => counts.inbound_half_open += 1,
                (Direction::Inbound, true) => counts.inbound_established += 1,
            }
            if let (Direction::Inbound, Some((ip, group))) = (c.direction, source) {
                let theirs = admission::source_ip(c.remote().ip());
                counts.same_ip += usize::from(theirs == ip);
                counts.same_group += usize::from(admission::group_of(theirs) == group);
            }
        }
        counts
    }

    /// Why `n` more dials cannot start now, if they cannot. Inbound
    /// connections still handshaking never count: strangers cannot stop
    /// this node dialling out (they have a cap of their own).
    pub(crate) fn dial_refusal(&self, n: usize) -> Option<PeersError> {
        let config = &self.config;
        // Each count is at most the number of connections: under every cap
        // with room for `n`, no cap can refuse, and the connections (a cold
        // record each) are not read.
        let caps = config
            .peers
            .max_connections
            .min(config.peers.max_outbound)
            .min(config.peers.max_half_open);
        if self.conns.len().saturating_add(n) <= caps {
            return None;
        }
        let counts = self.counts(None);
        if self.conns.len() - counts.inbound_half_open + n > config.peers.max_connections {
            Some(PeersError::TooManyConnections(config.peers.max_connections))
        } else if counts.outbound + n > config.peers.max_outbound {
            Some(PeersError::TooManyOutbound(config.peers.max_outbound))
        } else if counts.outbound_half_open + n > config.peers.max_half_open {
            Some(PeersError::TooManyHalfOpen(config.peers.max_half_open))
        } else {
            None
        }
    }

    /// `Connect` and `ConnectAny`: all the dials start, or none.
    pub(crate) fn connect(
        &mut self,
        addrs: &[SocketAddr],
        peer: Option<NodeId>,
    ) -> Result<Accepted, PeersError> {
        if addrs.is_empty() || addrs.len() > crate::wire::MAX_LISTEN_ADDRS {
            return Err(PeersError::BadAddressCount(addrs.len()));
        }
        if let Some(error) = self.dial_refusal(addrs.len()) {
            return Err(error);
        }
        if let Some(peer) = peer
            && let Some(known) = self.cache.get_mut(&peer)
        {
            known.set_wanted(true);
        }
        let first = self.dial_all(addrs, peer, true, None);
        Ok(match addrs.len() {
            1 => Accepted::Dialing(first),
            count => Accepted::Racing { first, count },
        })
    }

    /// Dials every address (as one race if there are several); returns the
    /// first connection id. Caps must have been checked.
    pub(crate) fn dial_all(
        &mut self,
        addrs: &[SocketAddr],
        expected: Option<NodeId>,
        wanted: bool,
        bootstrap: Option<usize>,
    ) -> ConnId {
        let race = (addrs.len() > 1).then(|| {
            self.next_race += 1;
            core::num::NonZeroU64::MIN.saturating_add(self.next_race - 1)
        });
        let first = ConnId::outbound(self.next_dial);
        for &addr in addrs {
            let conn = ConnId::outbound(self.next_dial);
            self.next_dial += 1;
            let mut connection = self.new_connection(conn, Direction::Outbound, addr, expected);
            if let Some(h) = connection.handshake_mut() {
                h.race = race;
                h.wanted = wanted;
                h.bootstrap = bootstrap.map_or(super::NO_BOOTSTRAP, |i| i as u32);
            }
            self.conns.insert(conn, Box::new(connection));
            self.stats.dials += 1;
            debug!(%conn, %addr, peer = ?expected, "dialling");
            self.outputs.push_back(Output::Dial { conn, addr });
        }
        first
    }

    fn new_connection(
        &mut self,
        conn: ConnId,
        direction: Direction,
        remote: SocketAddr,
        expected: Option<NodeId>,
    ) -> Connection {
        let serial = self.next_conn_serial();
        let timeout = match direction {
            Direction::Outbound => self.config.session.handshake_timeout,
            Direction::Inbound => self.config.peers.admission.inbound_handshake_timeout,
        };
        self.arm(self.now + timeout, Timer::Handshake { conn, serial });
        Connection {
            serial,
            direction,
            remote: RemoteAddr::new(remote),
            since: self.now,
            id: expected.unwrap_or_default(),
            has_id: expected.is_some(),
            run_nonce: 0,
            session: None,
            handshake: Some(Box::new(Handshake::new())),
            draining: false,
            peer_draining: false,
        }
    }

    /// Dials `peer` at each of `addrs` from this node's listen port, for a
    /// hole punch (`spec/relay.md` §7): the driver gets
    /// [`Output::DialFromListenPort`], the session's Noise roles come
    /// from the ids (the peer dials this node at the same moment, and the
    /// SYNs cross: one TCP connection that both ends dialled). A race if
    /// there are several addresses. `None` when the caps refuse the dials.
    pub(crate) fn dial_punch(&mut self, addrs: &[SocketAddr], peer: NodeId) -> Option<ConnId> {
        if self.shut_down || addrs.is_empty() || self.dial_refusal(addrs.len()).is_some() {
            return None;
        }
        let start = self.next_dial;
        let first = self.dial_all(addrs, Some(peer), false, None);
        for conn in (start..self.next_dial).map(ConnId::outbound) {
            if let Some(h) = self.conns.get_mut(&conn).and_then(|c| c.handshake_mut()) {
                h.punch = true;
            }
        }
        // The driver dials these (the last outputs queued) from the
        // listen port.
        let from = self.outputs.len().saturating_sub(addrs.len());
        for output in self.outputs.range_mut(from..) {
            if let Output::Dial { conn, addr } = *output {
                *output = Output::DialFromListenPort { conn, addr };
            }
        }
        Some(first)
    }

    /// Dials `addr` only to learn whether `peer` is reachable there (a
    /// dial-back, `spec/reach.md` §3.2): the connection never becomes a
    /// link; once the handshake proves `peer` it is closed with a
    /// `Goodbye`, and [`Upcalls::probe_ended`] says how it went. `None`
    /// when the connection caps refuse a dial.
    pub(crate) fn dial_probe(&mut self, addr: SocketAddr, peer: NodeId) -> Option<ConnId> {
        if self.dial_refusal(1).is_some() {
            return None;
        }
        let conn = self.dial_all(&[addr], Some(peer), false, None);
        if let Some(h) = self.conns.get_mut(&conn).and_then(|c| c.handshake_mut()) {
            h.probe = Some(false);
        }
        Some(conn)
    }

    /// Opens a relayed dial to `target` through a relay reached at
    /// `remote` (`spec/relay.md` §3): a connection like any dial, caps and
    /// handshake timer included, but no `Output::Dial`; its session starts
    /// when the relay opens the circuit ([`Net::on_connected`]). `None`
    /// when the caps refuse a dial.
    pub(crate) fn dial_relayed(&mut self, target: NodeId, remote: SocketAddr) -> Option<ConnId> {
        if self.shut_down || self.dial_refusal(1).is_some() {
            return None;
        }
        let conn = ConnId::relayed(self.next_dial);
        self.next_dial += 1;
        let connection = self.new_connection(conn, Direction::Outbound, remote, Some(target));
        self.conns.insert(conn, Box::new(connection));
        self.stats.dials += 1;
        debug!(%conn, %remote, peer = %target.short(), "dialling through a relay");
        Some(conn)
    }

    /// Takes a circuit to this node, at a relay reached at `remote`, as an
    /// inbound relayed connection: admission as for any inbound
    /// connection. `None` when admission refused it.
    pub(crate) fn accept_relayed(
        &mut self,
        remote: SocketAddr,
        up: &mut dyn Upcalls,
    ) -> Option<ConnId> {
        let conn = ConnId::relayed(self.next_dial);
        self.next_dial += 1;
        self.on_connected(conn, remote, Direction::Inbound, up);
        self.conns.contains_key(&conn).then_some(conn)
    }

    /// The transport connected `conn` (a dial of ours, or an accepted
    /// connection).
    pub(crate) fn on_connected(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        direction: Direction,
        up: &mut dyn Upcalls,
    ) {
        match direction {
            Direction::Outbound => {
                let dialling = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.session.is_none() && c.direction == Direction::Outbound);
                if !dialling {
                    debug!(%conn, "Connected for a connection we are not dialling; closing it");
                    self.push_close(conn);
                    return;
                }
            }
            Direction::Inbound => {
                if (conn.is_outbound() && !conn.is_relayed()) || self.conns.contains_key(&conn) {
                    // A driver bug: the id belongs to the node's space or is
                    // in use. Closing it could hit the live connection.
                    debug!(%conn, "inbound connection with an id in use; ignored");
                    return;
                }
                let rested = match self.admit(remote, up) {
                    Ok(rested) => rested,
                    Err(reason) => {
                        self.stats.refused_connections += 1;
                        if let CloseReason::Admission(_) = reason {
                            // Floods make thousands a second: debug, and counted.
                            debug!(%conn, %remote, %reason, "refusing inbound connection");
                        } else {
                            info!(%conn, %remote, %reason, "refusing inbound connection");
                        }
                        self.push_close(conn);
                        self.push_event(PeersEvent::Closed {
                            conn,
                            peer: None,
                            reason,
                        });
                        return;
                    }
                };
                let mut connection = self.new_connection(conn, direction, remote, None);
                if let Some(h) = connection.handshake_mut() {
                    h.rested = rested;
                }
                self.conns.insert(conn, Box::new(connection));
            }
        }
        // A punched connection was dialled by both ends: the smaller id
        // takes the initiator's role.
        let role = match self.conns.get(&conn) {
            Some(c) if c.punch() => match c.expected() {
                Some(peer) if peer < self.id => Direction::Inbound,
                _ => Direction::Outbound,
            },
            _ => direction,
        };
        match Session::start(&self.ctx, role, &mut self.session_rng) {
            Ok((session, bytes)) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session = Some(session);
                    c.remote = RemoteAddr::new(remote);
                }
                self.push_send(conn, bytes);
            }
            Err(e) => self.forget(conn, e.into(), None, true, up),
        }
    }

    /// Admission control for an inbound connection from `remote`, before
    /// any work is spent on it (spec/peers.md, Admission): the caps per
    /// source address and group, the handshake rates, then room in the
    /// inbound half-open table, made by evicting its oldest entry if need
    /// be. `Err` says why it is refused (and nothing was taken or evicted).
    fn admit(&mut self, remote: SocketAddr, up: &mut dyn Upcalls) -> Result<bool, CloseReason> {
        if self.shut_down {
            return Err(CloseReason::Shutdown);
        }
        let ip = admission::source_ip(remote.ip());
        let group = admission::group_of(ip);
        let limits = &self.config.peers.admission;
        // Each count is at most the number of connections: under the
        // smallest of these caps none can refuse or evict, and the
        // connections (a cold record each) are not read.
        let caps = limits
            .max_inbound_per_ip
            .min(limits.max_inbound_per_group)
            .min(limits.max_inbound_half_open);
        let counts = if self.conns.len() < caps {
            Counts::default()
        } else {
            self.counts(Some((ip, group)))
        };
        let refusal = if counts.same_ip >= limits.max_inbound_per_ip {
            Some(AdmissionReason::AddressCap)
        } else if counts.same_group >= limits.max_inbound_per_group {
            Some(AdmissionReason::GroupCap)
        } else {
            None
        };
        let evict = counts.inbound_half_open >= limits.max_inbound_half_open;
        if let Some(reason) = refusal {
            return Err(self.count_refusal(reason));
        }
        if self.conns.len() - usize::from(evict) >= self.config.peers.max_connections {
            return Err(CloseReason::TooManyConnections);
        }
        let rested = match self.limiter.admit_connection(group, self.now) {
            Ok(rested) => rested,
            Err(reason) => return Err(self.count_refusal(reason)),
        };
        if evict {
            let table: Vec<HalfOpen> = self
                .conns
                .iter()
                .filter(|(_, c)| c.direction == Direction::Inbound && c.peer().is_none())
                .map(|(&conn, c)| HalfOpen {
                    conn,
                    opened: c.since,
                    answered: c.handshake.as_ref().is_some_and(|h| h.answered),
                })
                .collect();
            if let Some(oldest) = admission::half_open_to_evict(&table) {
                self.stats.evicted_half_open += 1;
                debug!(conn = %oldest, "inbound half-open table full: evicting its oldest");
                self.forget(
                    oldest,
                    CloseReason::Admission(AdmissionReason::HalfOpenEvicted),
                    None,
                    true,
                    up,
                );
            }
        }
        Ok(rested)
    }

    /// Once a maintenance round, if admission control refused or evicted
    /// anything since the last: one `info` line with how many, by reason
    /// (each one is logged at `debug` only, floods make thousands).
    pub(crate) fn log_admission(&mut self) {
        let s = &self.stats;
        let now = [
            s.refused_address_cap,
            s.refused_group_cap,
            s.refused_group_rate,
            s.refused_node_rate,
            s.evicted_half_open,
            s.inbound_handshake_timeouts,
            s.refused_inbound_full,
            s.displaced_inbound,
        ];
        if now == self.admission_logged {
            return;
        }
        let d: Vec<u64> = now
            .iter()
            .zip(self.admission_logged)
            .map(|(n, last)| n - last)
            .collect();
        self.admission_logged = now;
        info!(
            address_cap = d[0],
            group_cap = d[1],
            group_rate = d[2],
            node_rate = d[3],
            half_open_evicted = d[4],
            handshake_timeouts = d[5],
            inbound_full = d[6],
            displaced = d[7],
            "admission control turned inbound connections away since the last round"
        );
    }

    /// Counts a refusal by admission control; returns its close reason.
    fn count_refusal(&mut self, reason: AdmissionReason) -> CloseReason {
        let counter = match reason {
            AdmissionReason::AddressCap => &mut self.stats.refused_address_cap,
            AdmissionReason::GroupCap => &mut self.stats.refused_group_cap,
            AdmissionReason::GroupRate => &mut self.stats.refused_group_rate,
            _ => &mut self.stats.refused_node_rate,
        };
        *counter += 1;
        CloseReason::Admission(reason)
    }

    /// A newcomer `peer` completed its inbound handshake: if the inbound
    /// slots are full, displace an unprotected inbound peer (after Bitcoin
    /// Core's eviction, [`admission::select_to_evict`]). Returns whether
    /// there is room for it; outbound connections are never displaced.
    fn make_inbound_room(&mut self, conn: ConnId, peer: NodeId, up: &mut dyn Upcalls) -> bool {
        if self.links.contains_key(&peer) {
            return true; // a second connection to an up peer takes no slot
        }
        // Fewer connections than inbound slots: room, without counting.
        if self.conns.len() < self.config.peers.max_inbound
            || self.counts(None).inbound_established < self.config.peers.max_inbound
        {
            return true;
        }
        let mut candidates = Vec::new();
        for (&other, c) in &self.conns {
            let Some(their) = c.peer() else { continue };
            if other == conn || c.direction != Direction::Inbound || c.draining {
                continue;
            }
            let group = admission::group_of(c.remote().ip());
            candidates.push(InboundPeer {
                conn: other,
                group,
                group_key: self.group_hasher.hash_one(group),
                rtt: self.links.get(&their).and_then(|l| l.liveness.rtt()),
                since: c.since,
                protected: self.is_wanted(their),
            });
        }
        match admission::select_to_evict(&candidates) {
            Some(victim) => {
                self.stats.displaced_inbound += 1;
                let remote = self.conns.get(&victim).map(|c| c.remote());
                info!(conn = %victim, ?remote, newcomer = %peer.short(), "inbound slots full: displacing an inbound peer");
                self.forget(
                    victim,
                    CloseReason::Admission(AdmissionReason::Displaced),
                    Some(GoodbyeReason::TooManyConnections),
                    true,
                    up,
                );
                true
            }
            None => {
                self.stats.refused_connections += 1;
                self.stats.refused_inbound_full += 1;
                debug!(%conn, peer = %peer.short(), "inbound slots full, every inbound peer protected: refusing the newcomer");
                self.forget(
                    conn,
                    CloseReason::Admission(AdmissionReason::InboundFull),
                    Some(GoodbyeReason::TooManyConnections),
                    true,
                    up,
                );
                false
            }
        }
    }

    /// A handshake completed. Returns whether the connection stays open.
    fn on_established(
        &mut self,
        conn: ConnId,
        established: Established,
        up: &mut dyn Upcalls,
    ) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        let peer = established.peer;
        let refusal = if peer == self.id {
            Some(ProtocolError::SelfConnection)
        } else {
            c.expected()
                .filter(|&expected| expected != peer)
                .map(|expected| ProtocolError::IdentityMismatch {
                    expected,
                    actual: peer,
                })
        };
        if let Some(error) = refusal {
            if peer == self.id
                && let Some(entry) = c.bootstrap().and_then(|i| self.bootstrap.get_mut(i))
            {
                // Our own address in the list: every node can share one list.
                entry.id = Some(peer);
            }
            self.forget(
                conn,
                error.into(),
                Some(GoodbyeReason::ProtocolViolation),
                true,
                up,
            );
            return false;
        }
        // The far end of a dial-back this node asked for: it proves that
        // much and is closed; the peer's link stays where it is (the
        // one-connection rule would otherwise swap it for this one).
        // (A relayed connection is never one: it proves nothing about this
        // node's own address.)
        let asked_probe = c.direction == Direction::Inbound
            && !conn.is_relayed()
            && self.links.contains_key(&peer)
            && up.take_dial_back(peer, self.now);
        if c.probe().is_some() || asked_probe {
            if let Some(h) = self.conns.get_mut(&conn).and_then(|c| c.handshake_mut()) {
                h.probe = Some(true);
            }
            self.forget(
                conn,
                CloseReason::Local,
                Some(GoodbyeReason::Normal),
                true,
                up,
            );
            return false;
        }
        let (remote, direction, race, wanted, bootstrap) =
            (c.remote(), c.direction, c.race(), c.wanted(), c.bootstrap());
        let run_nonce = established.hello.run_nonce;
        if direction == Direction::Inbound && !self.make_inbound_room(conn, peer, up) {
            return false;
        }
        let now = self.now;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.establish(peer, run_nonce);
            c.since = now;
        }
        let listen_addrs = established.hello.listen_addrs;
        self.cache.confirm(
            peer,
            &listen_addrs,
            direction == Direction::Outbound,
            remote,
            wanted,
            self.now,
        );
        if let Some(entry) = bootstrap.and_then(|i| self.bootstrap.get_mut(i)) {
            entry.id = Some(peer);
            entry.failures = 0;
        }
        self.stats.sessions_established += 1;
        debug!(%conn, peer = %peer.short(), %remote, ?direction, "session established");
        self.push_event(PeersEvent::Established {
            conn,
            peer,
            remote,
            direction,
            security: self.ctx.security,
            listen_addrs: listen_addrs.into_iter().collect(),
            capabilities: established.capabilities,
        });
        self.retire_previous_run(peer, run_nonce, up);
        self.settle_duplicates(peer, conn, up);
        if let Some(race) = race {
            // First handshake of a ConnectAny wins; the rest are abandoned
            // (after the peer is up, so their ends do not look like a
            // failed lookup).
            for other in self.sorted_conns(|o| o.race() == Some(race) && o.peer().is_none()) {
                self.forget(other, CloseReason::RaceLost, None, true, up);
            }
        }
        self.conns.contains_key(&conn)
    }

    /// A session with `peer` under `run_nonce` was just established: if the
    /// peer's other sessions reached another run, that run is gone (the
    /// peer restarted; one process per identity). Waiting for liveness
    /// would leave the new run answered on dead connections for the whole
    /// detection time (`spec/chord.md` §12.4), so the old run's connections
    /// are closed at once, without a goodbye (nobody reads them), and the
    /// peer goes down with `Restarted` before the new run comes up: every
    /// component sees the old run end, then the new one begin.
    fn retire_previous_run(&mut self, peer: NodeId, run_nonce: u64, up: &mut dyn Upcalls) {
        let stale = self.sorted_conns(|c| c.peer() == Some(peer) && c.run_nonce != run_nonce);
        if stale.is_empty() {
            return;
        }
        self.stats.peer_restarts += 1;
        info!(peer = %peer.short(), connections = stale.len(), "peer restarted: closing the connections of its previous run");
        let linked_stale = self
            .links
            .get(&peer)
            .is_some_and(|link| stale.contains(&link.conn));
        if linked_stale {
            self.peer_down(peer, CloseReason::Restarted, up);
        }
        for conn in stale {
            self.forget(conn, CloseReason::Restarted, None, true, up);
        }
    }

    /// Keeps exactly one connection per peer once both sides have seen every
    /// connection between them. A direct connection is kept over one
    /// through a relay. Of two connections dialled by different
    /// sides, the one dialled by the smaller `NodeId` is kept: both sides
    /// compute the same answer from facts they share, so simultaneous dials
    /// never leave both or neither. Of two dialled by the same side, only
    /// that side chooses (it keeps the one it established first); the
    /// accepting side keeps both until it is told. The loser is drained,
    /// not cut: see [`Net::drain`].
    fn settle_duplicates(&mut self, peer: NodeId, conn: ConnId, up: &mut dyn Upcalls) {
        let Some(link) = self.links.get(&peer) else {
            self.peer_up(peer, conn, up);
            return;
        };
        let existing = link.conn;
        let Some(old) = self.conns.get(&existing) else {
            return;
        };
        let new_mine = self.conns[&conn].direction == Direction::Outbound;
        let old_mine = old.direction == Direction::Outbound;
        let keep_new = if old.peer_draining {
            // The peer already chose against the old one.
            true
        } else if existing.is_relayed() != conn.is_relayed() {
            // A direct connection beats one through a relay (both ends
            // see one of each, so both keep the same): it costs the relay
            // nothing and is not bound by its limits (spec/relay.md §3).
            !conn.is_relayed()
        } else if new_mine != old_mine {
            let smaller_dials_kept = self.id < peer;
            new_mine == smaller_dials_kept
        } else if new_mine {
            false
        } else {
            // Both dialled by the peer: it decides, we keep both meanwhile,
            // for `handshake_timeout` at most (`peer_never_chose`).
            let serial = self.conns[&conn].serial;
            self.arm(
                self.now + self.config.session.handshake_timeout,
                Timer::PeerChoice { conn, serial },
            );
            return;
        };
        self.stats.duplicate_connections += 1;
        if keep_new {
            if let Some(link) = self.links.get_mut(&peer) {
                link.conn = conn;
            }
            self.drain(existing, up);
            if existing.is_relayed() && !conn.is_relayed() {
                up.relayed_link_replaced(self, peer, conn);
            }
        } else {
            self.drain(conn, up);
        }
    }

    /// The peer dialled `conn` while an earlier connection it dialled was
    /// its connection here, and in `handshake_timeout` has said nothing
    /// about either: it would have, at once (it keeps the one it
    /// established first and says `Goodbye(Duplicate)` on the other), had
    /// it held both. So it no longer holds the earlier one: it closed it
    /// while this node could not hear (through a partition, or while this
    /// node was stopped), and a closed TCP connection whose close was lost
    /// can look open here for many minutes. Everything sent on it would
    /// be lost while the peer's own traffic, on `conn`, keeps it looking
    /// alive. `conn` becomes the peer's connection and the earlier one is
    /// drained (spec/peers.md, "One connection per peer").
    pub(super) fn peer_never_chose(&mut self, conn: ConnId, serial: u32, up: &mut dyn Upcalls) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.serial != serial || c.draining || c.peer_draining {
            return;
        }
        let Some(peer) = c.peer() else {
            return;
        };
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let existing = link.conn;
        if existing == conn {
            return;
        }
        link.conn = conn;
        self.stats.duplicate_connections += 1;
        info!(peer = %peer.short(), kept = %conn, retired = %existing, "peer never chose between two connections it dialled: keeping the newer");
        self.drain(existing, up);
    }

    /// Retires a duplicate without losing what is in flight on it: send
    /// `Goodbye(Duplicate)`, send nothing more, and keep reading until the
    /// peer's own goodbye (written after everything it sent) arrives, or
    /// `handshake_timeout` passes.
    fn drain(&mut self, conn: ConnId, up: &mut dyn Upcalls) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.peer_draining {
            // The peer has sent its last byte here already.
            self.forget(
                conn,
                CloseReason::Duplicate,
                Some(GoodbyeReason::Duplicate),
                true,
                up,
            );
            return;
        }
        let _ = self.send_message(
            conn,
            &Message::Goodbye(Goodbye {
                reason: GoodbyeReason::Duplicate,
            }),
        );
        let serial = match self.conns.get_mut(&conn) {
            Some(c) => {
                c.draining = true;
                c.serial
            }
            None => return,
        };
        debug!(%conn, "draining duplicate connection");
        self.arm(
            self.now + self.config.session.handshake_timeout,
            Timer::Drain { conn, serial },
        );
    }

    /// The peer said `Goodbye(Duplicate)` on `conn`.
    fn on_duplicate_goodbye(&mut self, conn: ConnId, peer: NodeId, up: &mut dyn Upcalls) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let mapped = self.links.get(&peer).is_some_and(|l| l.conn == conn);
        let other = self
            .sorted_conns(|o| o.peer() == Some(peer) && o.usable())
            .into_iter()
            .any(|o| o != conn);
        if c.draining {
            self.forget(conn, CloseReason::Duplicate, None, true, up);
        } else if mapped && !other {
            // The connection the peer kept is not up on our side yet: keep
            // using this one (the peer reads it until our goodbye) rather
            // than flap the peer down and up.
            let serial = c.serial;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.peer_draining = true;
            }
            self.arm(
                self.now + self.config.session.handshake_timeout,
                Timer::Drain { conn, serial },
            );
        } else {
            self.forget(
                conn,
                CloseReason::Duplicate,
                Some(GoodbyeReason::Duplicate),
                true,
                up,
            );
        }
    }

    fn peer_up(&mut self, peer: NodeId, conn: ConnId, up: &mut dyn Upcalls) {
        let generation = self.next_serial();
        self.links.insert(
            peer,
            PeerLink {
                conn,
                liveness: PeerLiveness::new(generation),
            },
        );
        let c = &self.conns[&conn];
        let (remote, direction) = (c.remote(), c.direction);
        info!(peer = %peer.short(), %remote, ?direction, peers = self.links.len(), "peer up");
        self.push_event(PeersEvent::Up {
            peer,
            remote,
            direction,
        });
        up.peer_up(self, peer, conn, generation);
    }

    /// `peer` has no usable connection left: tell the application, fail its
    /// requests, and schedule a redial.
    fn peer_down(&mut self, peer: NodeId, reason: CloseReason, up: &mut dyn Upcalls) {
        if self.links.remove(&peer).is_none() {
            return;
        }
        info!(peer = %peer.short(), %reason, peers = self.links.len(), "peer down");
        let fault = matches!(
            reason,
            CloseReason::Transport(_) | CloseReason::Unresponsive | CloseReason::Duplicate
        );
        if let Some(known) = self.cache.get_mut(&peer) {
            known.next_dial_at = self.now + redial_delay(&self.config.peers, 0, &mut self.rng);
            known.set_lost(fault);
        }
        up.peer_down(self, peer, &reason);
        self.push_event(PeersEvent::Down { peer, reason });
    }

    /// Liveness declared `peer` dead: close everything to it.
    pub(crate) fn declare_dead(&mut self, peer: NodeId, up: &mut dyn Upcalls) {
        self.peer_down(peer, CloseReason::Unresponsive, up);
        for conn in self.sorted_conns(|c| c.peer() == Some(peer)) {
            self.forget(
                conn,
                CloseReason::Unresponsive,
                Some(GoodbyeReason::Normal),
                true,
                up,
            );
        }
    }

    /// A component found `peer` misbehaving (`what` it did): close
    /// everything to it, with a `ProtocolViolation` goodbye.
    pub(crate) fn close_misbehaving(
        &mut self,
        peer: NodeId,
        what: &'static str,
        up: &mut dyn Upcalls,
    ) {
        let reason = CloseReason::Misbehaving(what);
        self.peer_down(peer, reason.clone(), up);
        for conn in self.sorted_conns(|c| c.peer() == Some(peer)) {
            self.forget(
                conn,
                reason.clone(),
                Some(GoodbyeReason::ProtocolViolation),
                true,
                up,
            );
        }
    }

    /// `PeersCommand::Disconnect`.
    pub(crate) fn disconnect(
        &mut self,
        peer: NodeId,
        up: &mut dyn Upcalls,
    ) -> Result<Accepted, PeersError> {
        let conns = self.sorted_conns(|c| c.peer() == Some(peer) || c.expected() == Some(peer));
        let was_wanted = self.cache.get_mut(&peer).is_some_and(|known| {
            known.set_lost(false);
            let was = known.wanted();
            known.set_wanted(false);
            was
        });
        if conns.is_empty() && !was_wanted {
            return Err(PeersError::NotConnected(peer));
        }
        for conn in conns {
            self.forget(
                conn,
                CloseReason::Local,
                Some(GoodbyeReason::Normal),
                true,
                up,
            );
        }
        Ok(Accepted::Done)
    }

    fn sorted_conns(&self, keep: impl Fn(&Connection) -> bool) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| keep(c))
            .map(|(&id, _)| id)
            .collect();
        conns.sort_unstable();
        conns
    }

    /// Drops `conn`: says `goodbye` if the session is established, asks the
    /// driver to close it (unless the transport already did) and tells the
    /// application why. If it was the connection that reached its peer,
    /// another usable one takes over, or the peer goes down.
    pub(crate) fn forget(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
        goodbye: Option<GoodbyeReason>,
        close_transport: bool,
        up: &mut dyn Upcalls,
    ) {
        if let (Some(goodbye), true) = (goodbye, close_transport) {
            // Best effort: a session that cannot frame it just closes.
            let _ = self.send_message(conn, &Message::Goodbye(Goodbye { reason: goodbye }));
        }
        self.budget.release(conn);
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let CloseReason::Protocol(error) = &reason {
            self.stats.protocol_errors += 1;
            info!(%conn, remote = %c.remote(), peer = ?c.peer(), %error, "closing connection: protocol error");
        } else {
            debug!(%conn, remote = %c.remote(), peer = ?c.peer(), %reason, "connection closed");
        }
        if close_transport {
            self.push_close(conn);
        }
        self.push_event(PeersEvent::Closed {
            conn,
            peer: c.peer(),
            reason: reason.clone(),
        });
        if let Some(reached) = c.probe() {
            // Never a link, nor a dial any component waits for.
            up.probe_ended(self, conn, reached);
            return;
        }
        if let Some(peer) = c.peer() {
            if self.links.get(&peer).is_some_and(|l| l.conn == conn) {
                match self
                    .sorted_conns(|o| o.peer() == Some(peer) && o.usable())
                    .first()
                {
                    Some(&next) => {
                        if let Some(link) = self.links.get_mut(&peer) {
                            link.conn = next;
                        }
                    }
                    None => self.peer_down(peer, reason, up),
                }
            }
        } else if c.direction == Direction::Outbound {
            self.dial_ended(&c, up);
        }
    }

    /// A dial that never reached a session ended.
    fn dial_ended(&mut self, c: &Connection, up: &mut dyn Upcalls) {
        if c.punch() {
            // The peer is up through a relay: the relay component times
            // the punch out and counts it.
            return;
        }
        if let Some(i) = c.bootstrap()
            && let Some(entry) = self.bootstrap.get_mut(i)
        {
            entry.failures += 1;
            entry.next_dial_at =
                self.now + redial_delay(&self.config.peers, entry.failures, &mut self.rng);
        }
        // A peer up through another connection (a relayed session, or
        // the other end's dial) is not unreachable: nothing to fall back
        // to, nobody to declare dead.
        if let Some(peer) = c.expected()
            && !self.is_dialling(peer)
            && !self.is_up(peer)
        {
            up.dial_failed(self, peer);
        }
    }

    /// Whether a dial to `peer` is in flight.
    pub(crate) fn is_dialling(&self, peer: NodeId) -> bool {
        self.conns
            .values()
            .any(|c| c.expected() == Some(peer) && c.peer().is_none() && c.probe().is_none())
    }

    /// Dials a known peer at all its addresses, if the caps allow. The
    /// redial backoff advances at every attempt and resets when a session
    /// is established.
    pub(crate) fn dial_known(&mut self, peer: NodeId) -> bool {
        if self.shut_down {
            // Components react to the peers going down during shutdown
            // (HyParView repairs its view): nothing is dialled any more,
            // or the node would never finish closing.
            return false;
        }
        let Some(known) = self.cache.get(&peer) else {
            return false;
        };
        let addrs: SmallVec<[SocketAddr; 2]> = known.addrs.iter().collect();
        if addrs.is_empty() || self.dial_refusal(addrs.len()).is_some() {
            return false;
        }
        let delay = redial_delay(&self.config.peers, known.failures(), &mut self.rng);
        if let Some(known) = self.cache.get_mut(&peer) {
            known.dial_failed();
            known.next_dial_at = self.now + delay;
        }
        self.dial_all(&addrs, Some(peer), false, None);
        true
    }

    /// Dials a pointer (demanding its id), through the peer cache when it
    /// has room for it.
    pub(crate) fn dial_pointer(&mut self, p: &crate::wire::PeerEntry) -> bool {
        if self.shut_down {
            return false; // as in `dial_known`
        }
        self.cache.learn(p, None, self.now);
        if self.cache.get(&p.id).is_some() {
            return self.dial_known(p.id);
        }
        if p.addrs.is_empty() || self.dial_refusal(p.addrs.len()).is_some() {
            return false;
        }
        self.dial_all(&p.addrs, Some(p.id), false, None);
        true
    }

    /// Closes the connection to `peer` that something dialled for itself
    /// (a lookup), now that nothing needs it (`needed` says whether
    /// anything does), if the node has more peers than its target.
    pub(crate) fn release(&mut self, peer: NodeId, needed: bool, up: &mut dyn Upcalls) {
        let needed = needed || self.is_wanted(peer);
        if !needed && self.links.len() > self.config.peers.target_peers {
            let _ = self.disconnect(peer, up);
        }
    }

    /// Closes every connection with `Goodbye(Shutdown)`.
    pub(crate) fn close_all(&mut self, up: &mut dyn Upcalls) {
        for conn in self.sorted_conns(|_| true) {
            self.forget(
                conn,
                CloseReason::Shutdown,
                Some(GoodbyeReason::Shutdown),
                true,
                up,
            );
        }
    }

    // ----- reading -----

    /// Bytes arrived on `conn`.
    ///
    /// The session asks the receive budget before it holds a partial frame
    /// or decompresses a payload. What a read decompressed stays counted
    /// until the next call (the driver drains the outputs after every
    /// call). When the budget has no room:
    ///
    /// - for a payload to decompress, on a connection that has decompressed
    ///   others in this call, the read *waits*: the frame and the rest of
    ///   the input are kept, and [`Timer::ResumeRead`](super::Timer) goes
    ///   on right after this call, when this call's payloads are handed
    ///   over. A burst of compressed messages costs at most the budget at
    ///   a time and nobody is closed;
    /// - otherwise (a partial frame, or a payload that does not fit even
    ///   alone) the connection holding the most is closed (this one, if it
    ///   does) and the rest of the input is fed again: the bytes have
    ///   arrived and must be held or dropped, as the driver has no read
    ///   backpressure.
    pub(crate) fn on_received(&mut self, conn: ConnId, bytes: Bytes, up: &mut dyn Upcalls) {
        self.stats.bytes_received += bytes.len() as u64;
        if !self.charge_first_message(conn, bytes.len(), up) {
            return;
        }
        if !self.reading.contains(&conn) {
            self.reading.push(conn);
        }
        let mut input = bytes;
        loop {
            let Some(session) = self.conns.get_mut(&conn).and_then(|c| c.session.as_mut()) else {
                // Closed by us already, or a driver that reports reads
                // before `Connected`: nothing to do with these bytes.
                return;
            };
            // On the stack (see `SessionOutputs`): nothing kept per node,
            // no allocation per read.
            let mut outputs = SessionOutputs::new();
            let mut grant = ConnGrant {
                budget: &mut self.budget,
                conn,
            };
            let result = session.on_bytes(&self.ctx, input, &mut grant, &mut outputs);
            let mut open = true;
            for output in outputs.drain(..) {
                if !open {
                    continue;
                }
                // Matched here: through a function taking the output, a
                // message (176 bytes, a `memcpy` call) was moved once more.
                open = match output {
                    SessionOutput::Send(bytes) => {
                        // Only a connection still handshaking has the record.
                        if let Some(h) = self.conns.get_mut(&conn).and_then(|c| c.handshake_mut()) {
                            h.answered = true;
                        }
                        self.push_send(conn, bytes);
                        true
                    }
                    SessionOutput::Established(established) => {
                        self.on_established(conn, *established, up)
                    }
                    SessionOutput::Message {
                        message,
                        compressed,
                    } => {
                        self.stats.frames_received += 1;
                        self.stats.compressed_frames_received += u64::from(compressed);
                        self.on_message(conn, message, up)
                    }
                };
            }
            if !open {
                return;
            }
            match result {
                Ok(()) => break,
                Err(ReadError::Protocol(error)) => {
                    self.forget(
                        conn,
                        error.into(),
                        Some(GoodbyeReason::ProtocolViolation),
                        true,
                        up,
                    );
                    return;
                }
                Err(ReadError::OverBudget {
                    rest,
                    decompressing,
                }) => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        return;
                    };
                    let serial = c.serial;
                    let session = c.session.as_mut().expect("read by its session");
                    // Granted more than it holds: it decompressed payloads
                    // in this call, which are handed over after it.
                    let handed_over = self.budget.held(conn) > session.held();
                    // The rest of the read (at most one driver read) is
                    // kept beside the payloads about to be handed over; at
                    // the next call it is counted within what they were
                    // granted.
                    if decompressing && handed_over {
                        session.keep_input(rest);
                        self.stats.receive_budget_waits += 1;
                        debug!(%conn, "receive budget full: reading resumes after this turn");
                        self.arm(
                            self.now + crate::time::Duration::from_micros(1),
                            super::Timer::ResumeRead { conn, serial },
                        );
                        return;
                    }
                    let greediest = self.budget.greediest(conn);
                    self.close_over_budget(greediest, up);
                    if greediest == conn {
                        return;
                    }
                    input = rest;
                }
            }
        }
    }

    /// Closes `conn`, the connection holding the most of a receive budget
    /// that has no room left.
    fn close_over_budget(&mut self, conn: ConnId, up: &mut dyn Upcalls) {
        let held = self.budget.held(conn);
        let budget = self.config.session.receive_budget;
        self.stats.receive_budget_closes += 1;
        if let Some(c) = self.conns.get(&conn) {
            warn!(
                %conn,
                remote = %c.remote(),
                peer = ?c.peer(),
                held,
                budget,
                used = self.budget.used(),
                closes = self.stats.receive_budget_closes,
                "receive budget full: closing the connection holding the most"
            );
        }
        self.forget(
            conn,
            CloseReason::ReceiveBudget { held, budget },
            None,
            true,
            up,
        );
    }

    /// The node-wide handshake rate, charged when an inbound connection's
    /// first handshake message is complete and before the session answers
    /// it with a key exchange. Returns whether the connection stays open.
    fn charge_first_message(&mut self, conn: ConnId, len: usize, up: &mut dyn Upcalls) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return true;
        };
        if c.direction == Direction::Outbound {
            return true;
        }
        // Established (no handshake record): charged long ago.
        let Some(h) = c.handshake_mut() else {
            return true;
        };
        if h.received == u32::MAX {
            return true;
        }
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        h.received = h.received.saturating_add(len);
        if (h.received as usize) < FIRST_MESSAGE_LEN {
            return true;
        }
        h.received = u32::MAX;
        let rested = h.rested;
        match self.limiter.admit_handshake(rested, self.now) {
            Ok(()) => true,
            Err(reason) => {
                self.stats.refused_connections += 1;
                let reason = self.count_refusal(reason);
                debug!(%conn, %reason, "refusing a handshake");
                self.forget(conn, reason, None, true, up);
                false
            }
        }
    }

    /// Acts on a message from an established session: the layer's own
    /// (goodbyes, discovery), or another component's through `up`. Returns
    /// whether the connection is still open.
    fn on_message(&mut self, conn: ConnId, message: Message, up: &mut dyn Upcalls) -> bool {
        let Some(from) = self.conns.get(&conn).and_then(|c| c.peer()) else {
            return false;
        };
        // Any frame from the peer on its connection proves it alive
        // (liveness rides on traffic: only idle links are pinged, and an
        // idle link by one end). Not one on another connection (a
        // duplicate): the link's own connection may be dead at the far end
        // (closed there while this node could not hear), and the peer's
        // traffic elsewhere would hide that for good.
        // The link looked up once, here (its liveness was looked up again
        // through `Cx`, a second search of the peer table every frame).
        let (now, me) = (self.now, self.id);
        let ping_timeout = self.config.liveness.ping_timeout;
        if let Some(link) = self.links.get_mut(&from)
            && link.conn == conn
        {
            let ping = matches!(message, Message::Ping(_));
            crate::liveness::Liveness::on_frame(
                &mut link.liveness,
                now,
                me,
                from,
                ping,
                ping_timeout,
            );
        }
        match message {
            Message::Goodbye(Goodbye {
                reason: GoodbyeReason::Duplicate,
            }) => {
                self.on_duplicate_goodbye(conn, from, up);
                return self.conns.contains_key(&conn);
            }
            Message::Goodbye(Goodbye { reason }) => {
                self.forget(conn, CloseReason::Goodbye(reason), None, true, up);
                return false;
            }
            // Replies go to the peer's current connection, not necessarily
            // this one, which may be a duplicate this node is retiring (and
            // then sends nothing more).
            Message::PeerRequest(_) => {
                let list = self.peer_sample(from);
                let ids: Vec<NodeId> = list.peers.iter().map(|entry| entry.id).collect();
                up.peers_shared(self, from, &ids);
                let _ = Cx::send(self, from, &Message::PeerList(list));
            }
            Message::PeerList(list) => self.on_peer_list(conn, list, up),
            Message::FindPeer(FindPeer { target }) => {
                up.peers_shared(self, from, &[target]);
                if let Some(entry) = self.cache.entry(target) {
                    let list = PeerList { peers: vec![entry] };
                    let _ = Cx::send(self, from, &Message::PeerList(list));
                }
            }
            other => {
                if let Err(name) = up.message(self, conn, from, other) {
                    // `Hello` is refused inside the session; a message of a
                    // component this node does not run lands here.
                    self.forget(
                        conn,
                        ProtocolError::UnexpectedMessage(name).into(),
                        Some(GoodbyeReason::ProtocolViolation),
                        true,
                        up,
                    );
                    return false;
                }
                // The component may have closed the peer (misbehaving).
                return self.conns.contains_key(&conn);
            }
        }
        true
    }
}

/// The receive budget as one connection's session asks it.
struct ConnGrant<'a> {
    budget: &'a mut super::ReceiveBudget,
    conn: ConnId,
}

impl Grant for ConnGrant<'_> {
    fn try_grow(&mut self, bytes: usize) -> bool {
        self.budget.try_grow(self.conn, bytes)
    }
}
