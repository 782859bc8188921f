//! The connection table: dials and races, caps, the one-connection-per-peer
//! rule, closing, peers coming up and going down, and the maintenance round
//! that keeps the node at its target peer count. `spec/peers.md` describes
//! the behaviour language-neutrally.

use core::net::SocketAddr;

use smallvec::SmallVec;
use tracing::{debug, info};

use super::{BootstrapAddr, Connection, Deadline, Node, PeerLink};
use crate::liveness::Liveness;
use crate::peers::{LOST_REDIALS, redial_delay};
use crate::session::{Established, Session};
use crate::wire::{GoodbyeReason, Message, PeerRequest};
use crate::{
    Accepted, CloseReason, CommandError, ConnId, Direction, Event, NodeId, Output, ProtocolError,
};

/// Maintenance rounds between two `PeerRequest`s that brought nothing new.
const PEER_REQUEST_ROUNDS: u64 = 10;

/// Connections by kind, for the caps.
struct Counts {
    inbound: usize,
    outbound: usize,
    half_open: usize,
}

impl Node {
    fn counts(&self) -> Counts {
        let mut counts = Counts {
            inbound: 0,
            outbound: 0,
            half_open: 0,
        };
        for c in self.conns.values() {
            match c.direction {
                Direction::Inbound => counts.inbound += 1,
                Direction::Outbound => counts.outbound += 1,
            }
            counts.half_open += usize::from(c.peer.is_none());
        }
        counts
    }

    /// Why `n` more dials cannot start now, if they cannot.
    pub(super) fn dial_refusal(&self, n: usize) -> Option<CommandError> {
        let counts = self.counts();
        let config = &self.config;
        if self.conns.len() + n > config.max_connections {
            Some(CommandError::TooManyConnections(config.max_connections))
        } else if counts.outbound + n > config.max_outbound {
            Some(CommandError::TooManyOutbound(config.max_outbound))
        } else if counts.half_open + n > config.max_half_open {
            Some(CommandError::TooManyHalfOpen(config.max_half_open))
        } else {
            None
        }
    }

    /// `Connect` and `ConnectAny`: all the dials start, or none.
    pub(super) fn connect(
        &mut self,
        addrs: &[SocketAddr],
        peer: Option<NodeId>,
    ) -> Result<Accepted, CommandError> {
        if addrs.is_empty() || addrs.len() > crate::wire::MAX_LISTEN_ADDRS {
            return Err(CommandError::BadAddressCount(addrs.len()));
        }
        if let Some(error) = self.dial_refusal(addrs.len()) {
            return Err(error);
        }
        if let Some(peer) = peer
            && let Some(known) = self.cache.get_mut(&peer)
        {
            known.wanted = true;
        }
        let first = self.dial_all(addrs, peer, true, None);
        Ok(match addrs.len() {
            1 => Accepted::Dialing(first),
            count => Accepted::Racing { first, count },
        })
    }

    /// Dials every address (as one race if there are several); returns the
    /// first connection id. Caps must have been checked.
    pub(super) fn dial_all(
        &mut self,
        addrs: &[SocketAddr],
        expected: Option<NodeId>,
        wanted: bool,
        bootstrap: Option<usize>,
    ) -> ConnId {
        let race = (addrs.len() > 1).then(|| {
            self.next_race += 1;
            self.next_race
        });
        let first = ConnId::outbound(self.next_dial);
        for &addr in addrs {
            let conn = ConnId::outbound(self.next_dial);
            self.next_dial += 1;
            let mut connection = self.new_connection(conn, Direction::Outbound, addr, expected);
            connection.race = race;
            connection.wanted = wanted;
            connection.bootstrap = bootstrap;
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
        let serial = self.next_serial();
        self.deadlines.push(
            self.now + self.config.handshake_timeout,
            Deadline::Handshake { conn, serial },
        );
        Connection {
            serial,
            direction,
            remote,
            expected,
            peer: None,
            session: None,
            race: None,
            wanted: false,
            bootstrap: None,
            draining: false,
            peer_draining: false,
        }
    }

    pub(super) fn on_connected(&mut self, conn: ConnId, remote: SocketAddr, direction: Direction) {
        match direction {
            Direction::Outbound => {
                let dialling = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.session.is_none() && c.direction == Direction::Outbound);
                if !dialling {
                    debug!(%conn, "Connected for a connection we are not dialling; closing it");
                    self.outputs.push_back(Output::Close { conn });
                    return;
                }
            }
            Direction::Inbound => {
                if conn.is_outbound() || self.conns.contains_key(&conn) {
                    // A driver bug: the id belongs to the node's space or is
                    // in use. Closing it could hit the live connection.
                    debug!(%conn, "inbound connection with an id in use; ignored");
                    return;
                }
                let counts = self.counts();
                let config = &self.config;
                let refusal = if self.shut_down {
                    Some(CloseReason::Shutdown)
                } else if self.conns.len() >= config.max_connections
                    || counts.inbound >= config.max_inbound
                    || counts.half_open >= config.max_half_open
                {
                    Some(CloseReason::TooManyConnections)
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    self.stats.refused_connections += 1;
                    info!(%conn, %remote, %reason, "refusing inbound connection");
                    self.outputs.push_back(Output::Close { conn });
                    self.push_event(Event::ConnectionClosed {
                        conn,
                        peer: None,
                        reason,
                    });
                    return;
                }
                let connection = self.new_connection(conn, direction, remote, None);
                self.conns.insert(conn, Box::new(connection));
            }
        }
        match Session::start(&self.ctx, direction, &mut self.session_rng) {
            Ok((session, bytes)) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session = Some(session);
                    c.remote = remote;
                }
                self.push_send(conn, bytes);
            }
            Err(e) => self.forget(conn, e.into(), None, true),
        }
    }

    /// A handshake completed. Returns whether the connection stays open.
    pub(super) fn on_established(&mut self, conn: ConnId, established: Established) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        let peer = established.peer;
        let refusal = if peer == self.id {
            Some(ProtocolError::SelfConnection)
        } else {
            c.expected
                .filter(|&expected| expected != peer)
                .map(|expected| ProtocolError::IdentityMismatch {
                    expected,
                    actual: peer,
                })
        };
        if let Some(error) = refusal {
            if peer == self.id
                && let Some(entry) = c.bootstrap.and_then(|i| self.bootstrap.get_mut(i))
            {
                // Our own address in the list: every node can share one list.
                entry.id = Some(peer);
            }
            self.forget(
                conn,
                error.into(),
                Some(GoodbyeReason::ProtocolViolation),
                true,
            );
            return false;
        }
        let (remote, direction, race, wanted, bootstrap) =
            (c.remote, c.direction, c.race, c.wanted, c.bootstrap);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.peer = Some(peer);
            c.race = None;
        }
        let listen_addrs = established.hello.listen_addrs;
        self.cache.confirm(peer, &listen_addrs, self.now);
        if wanted && let Some(known) = self.cache.get_mut(&peer) {
            known.wanted = true;
        }
        if let Some(entry) = bootstrap.and_then(|i| self.bootstrap.get_mut(i)) {
            entry.id = Some(peer);
            entry.failures = 0;
        }
        self.stats.sessions_established += 1;
        debug!(%conn, peer = %peer.short(), %remote, ?direction, "session established");
        self.push_event(Event::SessionEstablished {
            conn,
            peer,
            remote,
            direction,
            security: self.ctx.security,
            listen_addrs,
            capabilities: established.capabilities,
        });
        self.settle_duplicates(peer, conn);
        if let Some(race) = race {
            // First handshake of a ConnectAny wins; the rest are abandoned
            // (after the peer is up, so their ends do not look like a
            // failed lookup).
            for other in self.sorted_conns(|o| o.race == Some(race) && o.peer.is_none()) {
                self.forget(other, CloseReason::RaceLost, None, true);
            }
        }
        self.conns.contains_key(&conn)
    }

    /// Keeps exactly one connection per peer once both sides have seen every
    /// connection between them. Of two connections dialled by different
    /// sides, the one dialled by the smaller `NodeId` is kept: both sides
    /// compute the same answer from facts they share, so simultaneous dials
    /// never leave both or neither. Of two dialled by the same side, only
    /// that side chooses (it keeps the one it established first); the
    /// accepting side keeps both until it is told. The loser is drained,
    /// not cut: see [`Node::drain`].
    fn settle_duplicates(&mut self, peer: NodeId, conn: ConnId) {
        let Some(link) = self.links.get(&peer) else {
            self.peer_up(peer, conn);
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
        } else if new_mine != old_mine {
            let smaller_dials_kept = self.id < peer;
            new_mine == smaller_dials_kept
        } else if new_mine {
            false
        } else {
            // Both dialled by the peer: it decides, we keep both meanwhile.
            return;
        };
        self.stats.duplicate_connections += 1;
        if keep_new {
            if let Some(link) = self.links.get_mut(&peer) {
                link.conn = conn;
            }
            self.drain(existing);
        } else {
            self.drain(conn);
        }
    }

    /// Retires a duplicate without losing what is in flight on it: send
    /// `Goodbye(Duplicate)`, send nothing more, and keep reading until the
    /// peer's own goodbye (written after everything it sent) arrives, or
    /// `handshake_timeout` passes.
    fn drain(&mut self, conn: ConnId) {
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
            );
            return;
        }
        let _ = self.send_message(
            conn,
            &Message::Goodbye(crate::wire::Goodbye {
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
        self.deadlines.push(
            self.now + self.config.handshake_timeout,
            Deadline::Drain { conn, serial },
        );
    }

    /// The peer said `Goodbye(Duplicate)` on `conn`.
    pub(super) fn on_duplicate_goodbye(&mut self, conn: ConnId, peer: NodeId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let mapped = self.links.get(&peer).is_some_and(|l| l.conn == conn);
        let other = self
            .sorted_conns(|o| o.peer == Some(peer) && o.usable())
            .into_iter()
            .any(|o| o != conn);
        if c.draining {
            self.forget(conn, CloseReason::Duplicate, None, true);
        } else if mapped && !other {
            // The connection the peer kept is not up on our side yet: keep
            // using this one (the peer reads it until our goodbye) rather
            // than flap the peer down and up.
            let serial = c.serial;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.peer_draining = true;
            }
            self.deadlines.push(
                self.now + self.config.handshake_timeout,
                Deadline::Drain { conn, serial },
            );
        } else {
            self.forget(
                conn,
                CloseReason::Duplicate,
                Some(GoodbyeReason::Duplicate),
                true,
            );
        }
    }

    fn peer_up(&mut self, peer: NodeId, conn: ConnId) {
        let generation = self.next_serial();
        self.links.insert(
            peer,
            PeerLink {
                conn,
                generation,
                liveness: Liveness::default(),
            },
        );
        self.deadlines.push(
            self.now + self.config.ping_interval,
            Deadline::Ping { peer, generation },
        );
        let c = &self.conns[&conn];
        let (remote, direction) = (c.remote, c.direction);
        info!(peer = %peer.short(), %remote, ?direction, peers = self.links.len(), "peer up");
        self.push_event(Event::PeerUp {
            peer,
            remote,
            direction,
        });
        self.on_peer_up(peer, conn);
    }

    /// `peer` has no usable connection left: tell the application, fail its
    /// requests, and schedule a redial.
    fn peer_down(&mut self, peer: NodeId, reason: CloseReason) {
        if self.links.remove(&peer).is_none() {
            return;
        }
        info!(peer = %peer.short(), %reason, peers = self.links.len(), "peer down");
        let fault = matches!(
            reason,
            CloseReason::Transport(_) | CloseReason::Unresponsive | CloseReason::Duplicate
        );
        if let Some(known) = self.cache.get_mut(&peer) {
            known.next_dial_at = self.now + redial_delay(&self.config, 0, &mut self.peers_rng);
            known.lost = fault;
        }
        self.on_peer_down(peer, &reason);
        self.push_event(Event::PeerDown { peer, reason });
    }

    /// Liveness declared `peer` dead: close everything to it.
    pub(super) fn declare_dead(&mut self, peer: NodeId) {
        self.stats.peers_declared_dead += 1;
        self.peer_down(peer, CloseReason::Unresponsive);
        for conn in self.sorted_conns(|c| c.peer == Some(peer)) {
            self.forget(
                conn,
                CloseReason::Unresponsive,
                Some(GoodbyeReason::Normal),
                true,
            );
        }
    }

    pub(super) fn disconnect(&mut self, peer: NodeId) -> Result<Accepted, CommandError> {
        let conns = self.sorted_conns(|c| c.peer == Some(peer) || c.expected == Some(peer));
        let was_wanted = self.cache.get_mut(&peer).is_some_and(|known| {
            known.lost = false;
            core::mem::replace(&mut known.wanted, false)
        });
        if conns.is_empty() && !was_wanted {
            return Err(CommandError::NotConnected(peer));
        }
        for conn in conns {
            self.forget(conn, CloseReason::Local, Some(GoodbyeReason::Normal), true);
        }
        Ok(Accepted::Done)
    }

    pub(super) fn sorted_conns(&self, keep: impl Fn(&Connection) -> bool) -> Vec<ConnId> {
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
    pub(super) fn forget(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
        goodbye: Option<GoodbyeReason>,
        close_transport: bool,
    ) {
        if let (Some(goodbye), true) = (goodbye, close_transport) {
            // Best effort: a session that cannot frame it just closes.
            let _ = self.send_message(
                conn,
                &Message::Goodbye(crate::wire::Goodbye { reason: goodbye }),
            );
        }
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let CloseReason::Protocol(error) = &reason {
            self.stats.protocol_errors += 1;
            info!(%conn, remote = %c.remote, peer = ?c.peer, %error, "closing connection: protocol error");
        } else {
            debug!(%conn, remote = %c.remote, peer = ?c.peer, %reason, "connection closed");
        }
        if close_transport {
            self.outputs.push_back(Output::Close { conn });
        }
        self.push_event(Event::ConnectionClosed {
            conn,
            peer: c.peer,
            reason: reason.clone(),
        });
        if let Some(peer) = c.peer {
            if self.links.get(&peer).is_some_and(|l| l.conn == conn) {
                match self
                    .sorted_conns(|o| o.peer == Some(peer) && o.usable())
                    .first()
                {
                    Some(&next) => {
                        if let Some(link) = self.links.get_mut(&peer) {
                            link.conn = next;
                        }
                    }
                    None => self.peer_down(peer, reason),
                }
            }
        } else if c.direction == Direction::Outbound {
            self.dial_ended(&c);
        }
    }

    /// A dial that never reached a session ended.
    fn dial_ended(&mut self, c: &Connection) {
        if let Some(i) = c.bootstrap
            && let Some(entry) = self.bootstrap.get_mut(i)
        {
            entry.failures += 1;
            entry.next_dial_at =
                self.now + redial_delay(&self.config, entry.failures, &mut self.peers_rng);
        }
        if let Some(peer) = c.expected
            && !self.is_dialling(peer)
        {
            self.dial_to_waiting_peer_failed(peer);
        }
    }

    /// Whether a dial to `peer` is in flight.
    pub(super) fn is_dialling(&self, peer: NodeId) -> bool {
        self.conns
            .values()
            .any(|c| c.expected == Some(peer) && c.peer.is_none())
    }

    /// Dials a known peer at all its addresses, if the caps allow. The
    /// redial backoff advances at every attempt and resets when a session
    /// is established.
    pub(super) fn dial_known(&mut self, peer: NodeId) -> bool {
        let Some(known) = self.cache.get(&peer) else {
            return false;
        };
        let addrs: SmallVec<[SocketAddr; 2]> = known.addrs.clone();
        if addrs.is_empty() || self.dial_refusal(addrs.len()).is_some() {
            return false;
        }
        let delay = redial_delay(&self.config, known.failures, &mut self.peers_rng);
        if let Some(known) = self.cache.get_mut(&peer) {
            known.failures = known.failures.saturating_add(1);
            known.next_dial_at = self.now + delay;
        }
        self.dial_all(&addrs, Some(peer), false, None);
        true
    }

    /// The maintenance round: redial wanted and lost peers, fill up to
    /// `target_peers` from the peer cache, ask for more peers when the
    /// cache has run dry, fall back to the bootstrap list when alone, and
    /// age the seen-cache.
    pub(super) fn maintain(&mut self) {
        self.seen.expire(self.now);
        let now = self.now;
        let mut dialling: Vec<NodeId> = self
            .conns
            .values()
            .filter(|c| c.peer.is_none())
            .filter_map(|c| c.expected)
            .collect();
        dialling.sort_unstable();
        let mut wanted = Vec::new();
        let mut candidates = Vec::new();
        for (&id, known) in self.cache.iter() {
            if self.links.contains_key(&id)
                || known.addrs.is_empty()
                || known.next_dial_at > now
                || dialling.binary_search(&id).is_ok()
            {
                continue;
            }
            if known.wanted || (known.lost && known.failures < LOST_REDIALS) {
                wanted.push(id);
            } else {
                candidates.push((known.failures, id));
            }
        }
        wanted.sort_unstable();
        for peer in wanted {
            self.dial_known(peer);
        }
        let outbound_pending = self
            .conns
            .values()
            .filter(|c| c.direction == Direction::Outbound && c.peer.is_none())
            .count();
        let mut need = self
            .config
            .target_peers
            .saturating_sub(self.links.len() + outbound_pending);
        if need == 0 {
            return;
        }
        // Random among the peers with the fewest failures: sort by id first
        // so the shuffle's input does not depend on hash order.
        candidates.sort_unstable_by_key(|&(_, id)| id);
        self.peers_rng.shuffle(&mut candidates);
        candidates.sort_by_key(|&(failures, _)| failures);
        for (_, peer) in candidates {
            if need == 0 {
                break;
            }
            if self.dial_known(peer) {
                need -= 1;
            }
        }
        if need == 0 {
            return;
        }
        if !self.links.is_empty() {
            if self.next_peer_request > now {
                return;
            }
            // The cache has nobody left to try: ask a random peer for more.
            // Again next round if the answer brings news, else after
            // PEER_REQUEST_ROUNDS rounds (a network smaller than the target
            // has nothing more to tell).
            self.next_peer_request = now
                + self
                    .config
                    .maintenance_interval
                    .saturating_mul(PEER_REQUEST_ROUNDS);
            let peers = self.connected_peers();
            let pick = peers[self.peers_rng.below(peers.len() as u64) as usize];
            if let Some(link) = self.links.get(&pick) {
                let conn = link.conn;
                let _ = self.send_message(conn, &Message::PeerRequest(PeerRequest));
            }
        } else if outbound_pending == 0 {
            self.dial_bootstrap();
        }
    }

    /// Alone and with nothing else to dial: try the bootstrap addresses
    /// whose backoff has passed.
    fn dial_bootstrap(&mut self) {
        let now = self.now;
        let due: Vec<usize> = self
            .bootstrap
            .iter()
            .enumerate()
            .filter(|(_, b)| b.next_dial_at <= now)
            .map(|(i, _)| i)
            .collect();
        for i in due {
            if self.dial_refusal(1).is_some() {
                return;
            }
            let BootstrapAddr { addr, id, .. } = self.bootstrap[i];
            if id == Some(self.id) {
                // Our own address in the list: every node can share one list.
                continue;
            }
            let delay = redial_delay(
                &self.config,
                self.bootstrap[i].failures,
                &mut self.peers_rng,
            );
            self.bootstrap[i].next_dial_at = now + delay;
            info!(%addr, "dialling bootstrap node");
            self.dial_all(&[addr], None, false, Some(i));
        }
    }
}
