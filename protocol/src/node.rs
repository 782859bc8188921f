//! [`Node`]: the state machine every driver runs.

use core::net::SocketAddr;
use std::collections::VecDeque;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use tracing::{debug, info};

use crate::rng::{Rng, Stream};
use crate::session::{EncodeError, Session, SessionContext, SessionOutput};
use crate::time::Instant;
use crate::timer::DeadlineQueue;
use crate::wire::{Direct, Goodbye, GoodbyeReason, Message};
use crate::{
    Accepted, CloseReason, Command, CommandError, Config, ConfigError, ConnId, Direction, Event,
    Identity, Input, NodeId, Output, ProtocolError,
};

/// Counters an operator reads to see what a node has been doing. They only
/// grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Frames written (handshake and transport).
    pub frames_sent: u64,
    /// Transport frames decoded.
    pub frames_received: u64,
    /// Bytes handed to the driver in `Output::Send`.
    pub bytes_sent: u64,
    /// Bytes received from the driver.
    pub bytes_received: u64,
    /// Transport frames sent with a compressed body.
    pub compressed_frames_sent: u64,
    /// Transport frames received with a compressed body.
    pub compressed_frames_received: u64,
    /// Handshakes that completed.
    pub sessions_established: u64,
    /// Connections closed because the peer broke the protocol or the
    /// handshake failed (including timeouts).
    pub protocol_errors: u64,
    /// Inbound connections refused (at the connection cap, or after
    /// shutdown).
    pub refused_connections: u64,
}

struct Connection {
    /// Distinguishes this connection from an earlier one that had the same
    /// driver-chosen id, for lazily cancelled deadlines.
    serial: u64,
    direction: Direction,
    remote: SocketAddr,
    /// The id a `Connect` demanded.
    expected: Option<NodeId>,
    /// Known once the session is established.
    peer: Option<NodeId>,
    /// `None` while the dial is in flight.
    session: Option<Session>,
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    Handshake { conn: ConnId, serial: u64 },
}

type Map<K, V> = HashMap<K, V, FixedState>;

/// Whether the handshake deadline `serial` still guards `conn`: the same
/// connection, not yet established.
fn handshake_pending(conns: &Map<ConnId, Connection>, conn: ConnId, serial: u64) -> bool {
    conns
        .get(&conn)
        .is_some_and(|c| c.serial == serial && c.peer.is_none())
}

/// One ringmesh node: a sans-IO state machine. See the crate docs for the
/// driving contract.
pub struct Node {
    config: Config,
    id: NodeId,
    ctx: SessionContext,
    now: Instant,
    session_rng: Rng,
    conns: Map<ConnId, Connection>,
    /// The established connection used to reach each peer.
    peers: Map<NodeId, ConnId>,
    outputs: VecDeque<Output>,
    deadlines: DeadlineQueue<Deadline>,
    next_dial: u64,
    next_serial: u64,
    shut_down: bool,
    stats: Stats,
    scratch: Vec<SessionOutput>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("now", &self.now)
            .field("connections", &self.conns.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node with `identity`, configured by `config`, drawing all its
    /// randomness from `seed`, at time `now`.
    ///
    /// The same config, identity, seed and inputs always produce the same
    /// outputs. In Noise mode the seed keys the ephemeral-key stream (mixed
    /// with the identity secret): real deployments pass a fresh random seed
    /// at every start.
    pub fn new(
        config: Config,
        identity: Identity,
        seed: u64,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        config.validate()?;
        let mut tables = Rng::derive(seed, Stream::Tables, None);
        // Seeded from the node seed: deterministic, yet not predictable by a
        // peer that would grind ids to collide in our tables.
        let table_seed = tables.next_u64();
        let ctx = SessionContext::new(&config, &identity);
        Ok(Node {
            id: identity.node_id(),
            session_rng: Rng::derive(seed, Stream::Session, Some(&identity.secret_bytes())),
            ctx,
            now,
            conns: HashMap::with_hasher(FixedState::with_seed(table_seed)),
            peers: HashMap::with_hasher(FixedState::with_seed(table_seed)),
            outputs: VecDeque::new(),
            deadlines: DeadlineQueue::new(),
            next_dial: 0,
            next_serial: 0,
            shut_down: false,
            stats: Stats::default(),
            scratch: Vec::new(),
            config,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters since the node was created.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections in any state (dialling, handshaking, established).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Whether an established session with `peer` exists.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.peers.contains_key(&peer)
    }

    /// Peers with an established session, in id order.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self.peers.keys().copied().collect();
        peers.sort_unstable();
        peers
    }

    /// Feeds a network fact or a timeout. Drain [`Node::poll_output`]
    /// afterwards, then re-read [`Node::poll_timeout`].
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.advance(now);
        match input {
            Input::Connected {
                conn,
                remote,
                direction,
            } => self.on_connected(conn, remote, direction),
            Input::Received { conn, bytes } => self.on_received(conn, bytes),
            Input::Closed { conn, reason } => {
                self.forget(conn, CloseReason::Transport(reason), None, false)
            }
            Input::DialFailed { conn, reason } => {
                self.forget(conn, CloseReason::DialFailed(reason), None, false)
            }
            Input::Timeout => {}
        }
        self.after_call();
    }

    /// Asks the node to do something. On `Err` nothing changed. Drain
    /// [`Node::poll_output`] afterwards, then re-read [`Node::poll_timeout`].
    pub fn command(&mut self, now: Instant, command: Command) -> Result<Accepted, CommandError> {
        self.advance(now);
        let result = match command {
            Command::Connect { addr, peer } => self.connect(addr, peer),
            Command::Send { to, payload } => self.send_direct(to, payload),
            Command::Disconnect { peer } => self.disconnect(peer),
            Command::Shutdown => {
                self.shutdown();
                Ok(Accepted::Done)
            }
        };
        self.after_call();
        result
    }

    /// The next thing the driver must do, in order. Call until `None` after
    /// every [`handle_input`](Node::handle_input) and
    /// [`command`](Node::command).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the driver must next call `handle_input(_, Input::Timeout)`;
    /// `None` if nothing is pending. O(1). Re-read after every call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    fn advance(&mut self, now: Instant) {
        // Time never runs backwards inside the node, whatever the driver says.
        self.now = self.now.max(now);
    }

    fn after_call(&mut self) {
        while let Some(deadline) = self.deadlines.pop_due(self.now) {
            match deadline {
                Deadline::Handshake { conn, serial } => {
                    if handshake_pending(&self.conns, conn, serial) {
                        self.forget(conn, ProtocolError::HandshakeTimeout.into(), None, true);
                    }
                }
            }
        }
        let conns = &self.conns;
        let live = |d: &Deadline| match *d {
            Deadline::Handshake { conn, serial } => handshake_pending(conns, conn, serial),
        };
        self.deadlines.prune(live);
        // Cancelled deadlines below the top stay until they expire; under
        // fast connection churn they could pile up. At most one handshake
        // deadline per connection is live, so past twice the connection cap
        // the queue is mostly dead: compact it.
        if self.deadlines.len() > 2 * self.config.max_connections + 16 {
            self.deadlines.retain(live);
        }
    }

    fn new_connection(
        &mut self,
        conn: ConnId,
        direction: Direction,
        remote: SocketAddr,
        expected: Option<NodeId>,
    ) -> Connection {
        self.next_serial += 1;
        let serial = self.next_serial;
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
        }
    }

    fn connect(
        &mut self,
        addr: SocketAddr,
        peer: Option<NodeId>,
    ) -> Result<Accepted, CommandError> {
        if self.shut_down {
            return Err(CommandError::ShutDown);
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(CommandError::TooManyConnections(
                self.config.max_connections,
            ));
        }
        let conn = ConnId::outbound(self.next_dial);
        self.next_dial += 1;
        let connection = self.new_connection(conn, Direction::Outbound, addr, peer);
        self.conns.insert(conn, connection);
        debug!(%conn, %addr, "dialling");
        self.outputs.push_back(Output::Dial { conn, addr });
        Ok(Accepted::Dialing(conn))
    }

    fn on_connected(&mut self, conn: ConnId, remote: SocketAddr, direction: Direction) {
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
                let refusal = if self.shut_down {
                    Some(CloseReason::Shutdown)
                } else if self.conns.len() >= self.config.max_connections {
                    Some(CloseReason::TooManyConnections)
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    self.stats.refused_connections += 1;
                    info!(%conn, %remote, %reason, "refusing inbound connection");
                    self.outputs.push_back(Output::Close { conn });
                    self.outputs
                        .push_back(Output::Event(Event::ConnectionClosed {
                            conn,
                            peer: None,
                            reason,
                        }));
                    return;
                }
                let connection = self.new_connection(conn, direction, remote, None);
                self.conns.insert(conn, connection);
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

    fn on_received(&mut self, conn: ConnId, bytes: Bytes) {
        self.stats.bytes_received += bytes.len() as u64;
        let Some(session) = self.conns.get_mut(&conn).and_then(|c| c.session.as_mut()) else {
            // Closed by us already, or a driver that reports reads before
            // `Connected`: nothing to do with these bytes.
            return;
        };
        let mut outputs = core::mem::take(&mut self.scratch);
        let result = session.on_bytes(&self.ctx, bytes, &mut outputs);
        let mut open = true;
        for output in outputs.drain(..) {
            if open {
                open = self.on_session_output(conn, output);
            }
        }
        self.scratch = outputs;
        if let (true, Err(error)) = (open, result) {
            self.forget(
                conn,
                error.into(),
                Some(GoodbyeReason::ProtocolViolation),
                true,
            );
        }
    }

    /// Acts on one session output; returns whether the connection is still
    /// open.
    fn on_session_output(&mut self, conn: ConnId, output: SessionOutput) -> bool {
        match output {
            SessionOutput::Send(bytes) => {
                self.push_send(conn, bytes);
                true
            }
            SessionOutput::Established(established) => {
                let Some(c) = self.conns.get_mut(&conn) else {
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
                    self.forget(
                        conn,
                        error.into(),
                        Some(GoodbyeReason::ProtocolViolation),
                        true,
                    );
                    return false;
                }
                c.peer = Some(peer);
                let (remote, direction) = (c.remote, c.direction);
                self.peers.entry(peer).or_insert(conn);
                self.stats.sessions_established += 1;
                debug!(%conn, peer = %peer.short(), %remote, ?direction, "session established");
                self.outputs
                    .push_back(Output::Event(Event::SessionEstablished {
                        conn,
                        peer,
                        remote,
                        direction,
                        security: self.ctx.security,
                        listen_addrs: established.hello.listen_addrs,
                        capabilities: established.capabilities,
                    }));
                true
            }
            SessionOutput::Message {
                message,
                compressed,
            } => {
                self.stats.frames_received += 1;
                self.stats.compressed_frames_received += u64::from(compressed);
                self.on_message(conn, message)
            }
        }
    }

    fn on_message(&mut self, conn: ConnId, message: Message) -> bool {
        let Some(from) = self.conns.get(&conn).and_then(|c| c.peer) else {
            return false;
        };
        match message {
            Message::Goodbye(Goodbye { reason }) => {
                self.forget(conn, CloseReason::Goodbye(reason), None, true);
                false
            }
            Message::Direct(Direct { payload }) => {
                self.outputs
                    .push_back(Output::Event(Event::Direct { from, payload }));
                true
            }
            other => {
                // `Hello` is refused inside the session; a message of a later
                // component that this node does not run lands here.
                self.forget(
                    conn,
                    ProtocolError::UnexpectedMessage(other.name()).into(),
                    Some(GoodbyeReason::ProtocolViolation),
                    true,
                );
                false
            }
        }
    }

    fn send_direct(&mut self, to: NodeId, payload: Bytes) -> Result<Accepted, CommandError> {
        if self.shut_down {
            return Err(CommandError::ShutDown);
        }
        let conn = *self.peers.get(&to).ok_or(CommandError::NotConnected(to))?;
        self.send_message(conn, &Message::Direct(Direct { payload }))
            .map_err(|e| match e {
                EncodeError::TooLarge { len, max } => CommandError::PayloadTooLarge { len, max },
                EncodeError::NotEstablished | EncodeError::Crypto => CommandError::NotConnected(to),
            })?;
        Ok(Accepted::Done)
    }

    fn send_message(&mut self, conn: ConnId, message: &Message) -> Result<(), EncodeError> {
        let session = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.session.as_mut())
            .ok_or(EncodeError::NotEstablished)?;
        let (bytes, compressed) = session.encode(&self.ctx, message)?;
        self.stats.compressed_frames_sent += u64::from(compressed);
        self.push_send(conn, bytes);
        Ok(())
    }

    fn disconnect(&mut self, peer: NodeId) -> Result<Accepted, CommandError> {
        let conns = self.sorted_conns(|c| c.peer == Some(peer));
        if conns.is_empty() {
            return Err(CommandError::NotConnected(peer));
        }
        for conn in conns {
            self.forget(conn, CloseReason::Local, Some(GoodbyeReason::Normal), true);
        }
        Ok(Accepted::Done)
    }

    fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        info!(node = %self.id.short(), connections = self.conns.len(), "shutting down");
        for conn in self.sorted_conns(|_| true) {
            self.forget(
                conn,
                CloseReason::Shutdown,
                Some(GoodbyeReason::Shutdown),
                true,
            );
        }
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

    fn push_send(&mut self, conn: ConnId, bytes: Bytes) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.outputs.push_back(Output::Send { conn, bytes });
    }

    /// Drops `conn`: says `goodbye` if the session is established, asks the
    /// driver to close it (unless the transport already did) and tells the
    /// application why.
    fn forget(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
        goodbye: Option<GoodbyeReason>,
        close_transport: bool,
    ) {
        if let (Some(goodbye), true) = (goodbye, close_transport) {
            // Best effort: a session that cannot frame it just closes.
            let _ = self.send_message(conn, &Message::Goodbye(Goodbye { reason: goodbye }));
        }
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(peer) = c.peer
            && self.peers.get(&peer) == Some(&conn)
        {
            self.peers.remove(&peer);
            // Another established connection to the same peer takes over.
            if let Some(&next) = self.sorted_conns(|o| o.peer == Some(peer)).first() {
                self.peers.insert(peer, next);
            }
        }
        if let CloseReason::Protocol(error) = &reason {
            self.stats.protocol_errors += 1;
            info!(%conn, remote = %c.remote, peer = ?c.peer, %error, "closing connection: protocol error");
        } else {
            debug!(%conn, remote = %c.remote, peer = ?c.peer, %reason, "connection closed");
        }
        if close_transport {
            self.outputs.push_back(Output::Close { conn });
        }
        self.outputs
            .push_back(Output::Event(Event::ConnectionClosed {
                conn,
                peer: c.peer,
                reason,
            }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransportError;

    #[test]
    fn cancelled_handshake_deadlines_do_not_pile_up_under_connection_churn() {
        let config = Config {
            max_connections: 8,
            ..Config::plaintext()
        };
        let max = 2 * config.max_connections + 16;
        let identity = Identity::from_secret_bytes([4; 32]);
        let mut node = Node::new(config, identity, 1, Instant::ZERO).expect("valid");
        let remote: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        // One connection stays half-open: its live deadline is the earliest,
        // so the dead ones behind it cannot be popped from the top.
        node.handle_input(
            Instant::ZERO,
            Input::Connected {
                conn: ConnId::inbound(u64::MAX >> 1),
                remote,
                direction: Direction::Inbound,
            },
        );
        for n in 0..10_000u64 {
            let now = Instant::from_micros(n);
            let conn = ConnId::inbound(n);
            node.handle_input(
                now,
                Input::Connected {
                    conn,
                    remote,
                    direction: Direction::Inbound,
                },
            );
            node.handle_input(
                now,
                Input::Closed {
                    conn,
                    reason: TransportError::Reset,
                },
            );
            while node.poll_output().is_some() {}
            assert!(
                node.deadlines.len() <= max,
                "{} deadlines at {n}",
                node.deadlines.len()
            );
        }
        assert_eq!(node.connection_count(), 1);
    }
}
