//! [`Node`]: the state machine every driver runs.
//!
//! This file holds the node's state, its public surface and the timer
//! dispatch. `connections.rs` owns the connection table (dials, caps, the
//! one-connection-per-peer rule, closing); `overlay.rs` acts on the overlay
//! messages (discovery, liveness, mesh, messaging).

mod chord;
mod connections;
mod dht;
mod lookup;
mod overlay;

pub(crate) use chord::EarlyFailure;

use core::net::SocketAddr;
use std::collections::VecDeque;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use tracing::info;

use crate::chord::{Chord, ChordRole};
use crate::liveness::Liveness;
use crate::mesh::SeenCache;
use crate::messaging::{Messaging, RequestId};
use crate::peers::PeerCache;
use crate::rng::{Rng, Stream};
use crate::session::{Session, SessionContext, SessionOutput};
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::PeerEntry;
use crate::{
    Accepted, Command, CommandError, Config, ConfigError, ConnId, Direction, Identity, Input,
    NodeId, Output,
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
    /// Inbound connections refused (at a connection cap, or after
    /// shutdown).
    pub refused_connections: u64,
    /// Dials started (by commands, redials and bootstrap).
    pub dials: u64,
    /// Connections closed as duplicates of another to the same peer.
    pub duplicate_connections: u64,
    /// Peers declared dead by liveness.
    pub peers_declared_dead: u64,
    /// Pings sent.
    pub pings_sent: u64,
    /// Broadcasts this node originated.
    pub broadcasts_sent: u64,
    /// Broadcasts delivered to the application.
    pub broadcasts_delivered: u64,
    /// Broadcast frames sent on behalf of other nodes.
    pub broadcasts_relayed: u64,
    /// Broadcasts dropped as already seen.
    pub broadcasts_duplicate: u64,
    /// Broadcasts delivered but not relayed: they had `max_hops` hops.
    pub broadcasts_hop_limited: u64,
    /// Broadcast copies not sent because they exceed a peer's frame cap.
    pub broadcasts_oversized: u64,
    /// Responses for requests that had already completed or failed.
    pub late_responses: u64,
    /// Chord and dht replies that matched no pending request (late, or
    /// from the wrong peer).
    pub chord_late_replies: u64,
    /// Dead ring pointers removed (spec/chord.md §4 Flush).
    pub chord_flushes: u64,
    /// Lookups that found an owner (commands and internal).
    pub chord_lookups: u64,
    /// Lookups that failed.
    pub chord_lookups_failed: u64,
}

struct Connection {
    /// Distinguishes this connection from an earlier one that had the same
    /// driver-chosen id, for lazily cancelled deadlines.
    serial: u64,
    direction: Direction,
    remote: SocketAddr,
    /// The id the dial demanded.
    expected: Option<NodeId>,
    /// Known once the session is established.
    peer: Option<NodeId>,
    /// `None` while the dial is in flight.
    session: Option<Session>,
    /// The `ConnectAny` race this dial belongs to.
    race: Option<u64>,
    /// The application asked for this dial: its peer becomes wanted.
    wanted: bool,
    /// The bootstrap entry this dial is for.
    bootstrap: Option<usize>,
    /// We sent `Goodbye(Duplicate)`: nothing more is sent, and reads go on
    /// until the peer's own goodbye says it has sent everything.
    draining: bool,
    /// The peer sent `Goodbye(Duplicate)` on it while it was our only
    /// connection to that peer: we keep sending on it (the peer reads until
    /// our goodbye) until the connection the peer kept comes up.
    peer_draining: bool,
}

impl Connection {
    /// Established, and usable for sending.
    fn usable(&self) -> bool {
        self.peer.is_some() && !self.draining
    }
}

/// An established peer: the connection used to reach it, and its liveness.
struct PeerLink {
    conn: ConnId,
    /// Changes each time the peer comes up, for lazily cancelled timers.
    generation: u64,
    liveness: Liveness,
}

/// A bootstrap address and its redial state.
struct BootstrapAddr {
    addr: SocketAddr,
    /// Who answered there last time.
    id: Option<NodeId>,
    failures: u32,
    next_dial_at: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    Handshake {
        conn: ConnId,
        serial: u64,
    },
    Drain {
        conn: ConnId,
        serial: u64,
    },
    Ping {
        peer: NodeId,
        generation: u64,
    },
    PongDue {
        peer: NodeId,
        generation: u64,
        nonce: u64,
    },
    Request {
        id: RequestId,
    },
    Waiting {
        peer: NodeId,
        serial: u64,
    },
    Maintenance,
    ChordStabilize {
        generation: u64,
    },
    ChordFixFingers,
    ChordRequest {
        req: u64,
    },
    ChordLookup {
        id: u64,
    },
    DhtOp {
        id: u64,
    },
    DhtRetry {
        id: u64,
    },
    DhtRepair,
}

type Map<K, V> = HashMap<K, V, FixedState>;

/// Output-queue capacity an idle node keeps.
const OUTPUTS_KEPT: usize = 16;

/// Whether deadline `d` still guards something. Cancelled deadlines are not
/// removed from the queue; they are recognised here when they surface.
fn is_live(
    conns: &Map<ConnId, Box<Connection>>,
    links: &Map<NodeId, PeerLink>,
    messaging: &Messaging,
    chord: &Chord,
    dht: &dht::DhtState,
    d: &Deadline,
) -> bool {
    let conn_is = |conn, serial, f: fn(&Connection) -> bool| {
        conns.get(&conn).is_some_and(|c| c.serial == serial && f(c))
    };
    match *d {
        Deadline::Handshake { conn, serial } => conn_is(conn, serial, |c| c.peer.is_none()),
        Deadline::Drain { conn, serial } => {
            conn_is(conn, serial, |c| c.draining || c.peer_draining)
        }
        Deadline::Ping { peer, generation } => {
            links.get(&peer).is_some_and(|l| l.generation == generation)
        }
        Deadline::PongDue {
            peer,
            generation,
            nonce,
        } => links
            .get(&peer)
            .is_some_and(|l| l.generation == generation && l.liveness.awaits(nonce)),
        Deadline::Request { id } => messaging.pending.contains_key(&id),
        Deadline::Waiting { peer, serial } => messaging.is_waiting(peer, serial),
        Deadline::Maintenance | Deadline::ChordFixFingers => true,
        Deadline::ChordStabilize { generation } => generation == chord.stabilize_generation,
        Deadline::ChordRequest { req } => chord.requests.contains_key(&req),
        Deadline::ChordLookup { id } => chord.lookups.contains_key(&id),
        Deadline::DhtOp { id } | Deadline::DhtRetry { id } => dht.has_task(id),
        Deadline::DhtRepair => chord.is_member(),
    }
}

/// One ringmesh node: a sans-IO state machine. See the crate docs for the
/// driving contract.
pub struct Node {
    config: Config,
    id: NodeId,
    ctx: SessionContext,
    now: Instant,
    session_rng: Rng,
    peers_rng: Rng,
    /// Boxed: a table slot stays small, and a node holds many slots.
    conns: Map<ConnId, Box<Connection>>,
    /// Established peers and the connection that reaches each.
    links: Map<NodeId, PeerLink>,
    cache: PeerCache,
    bootstrap: Vec<BootstrapAddr>,
    seen: SeenCache,
    next_broadcast: u64,
    messaging: Messaging,
    chord: Chord,
    chord_rng: Rng,
    dht: dht::DhtState,
    outputs: VecDeque<Output>,
    deadlines: DeadlineQueue<Deadline>,
    next_dial: u64,
    next_serial: u64,
    next_nonce: u64,
    next_race: u64,
    /// No `PeerRequest` before this, unless the last one brought news.
    next_peer_request: Instant,
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
            .field("peers", &self.links.len())
            .field("known_peers", &self.cache.len())
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
    ///
    /// The node's first deadline is `now`: its first maintenance round,
    /// which dials the bootstrap addresses.
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
        let hasher = FixedState::with_seed(tables.next_u64());
        let id = identity.node_id();
        let ctx = SessionContext::new(&config, &identity);
        let mut mesh_rng = Rng::derive(seed, Stream::Mesh, None);
        let mut deadlines = DeadlineQueue::new();
        deadlines.push(now, Deadline::Maintenance);
        Ok(Node {
            id,
            session_rng: Rng::derive(seed, Stream::Session, Some(&identity.secret_bytes())),
            peers_rng: Rng::derive(seed, Stream::Peers, None),
            ctx,
            now,
            conns: HashMap::with_hasher(hasher.clone()),
            links: HashMap::with_hasher(hasher.clone()),
            cache: PeerCache::new(id, config.max_known_peers, hasher.clone()),
            bootstrap: config
                .bootstrap
                .iter()
                .map(|&addr| BootstrapAddr {
                    addr,
                    id: None,
                    failures: 0,
                    next_dial_at: now,
                })
                .collect(),
            seen: SeenCache::new(
                config.seen_cache_capacity,
                config.seen_cache_ttl,
                hasher.clone(),
            ),
            // A random start, so a restarted node's broadcasts are not taken
            // for the ones its previous run sent (48 bits keep the varint
            // at 7 bytes).
            next_broadcast: mesh_rng.next_u64() >> 16,
            messaging: Messaging::new(hasher.clone()),
            chord: Chord::new(config.chord, config.chord_successors, hasher.clone()),
            dht: dht::DhtState::new(&config, hasher),
            chord_rng: Rng::derive(seed, Stream::Chord, None),
            outputs: VecDeque::new(),
            deadlines,
            next_dial: 0,
            next_serial: 0,
            next_nonce: 0,
            next_race: 0,
            next_peer_request: now,
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

    /// Connections in any state (dialling, handshaking, established,
    /// closing as a duplicate).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections this node dialled, in any state.
    pub fn outbound_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.direction == Direction::Outbound)
            .count()
    }

    /// Whether `peer` is up (an established session exists).
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.links.contains_key(&peer)
    }

    /// Peers that are up, in id order.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self.links.keys().copied().collect();
        peers.sort_unstable();
        peers
    }

    /// How many peers are up.
    pub fn peer_count(&self) -> usize {
        self.links.len()
    }

    /// The smoothed ping round-trip time to `peer`, once a pong came back.
    pub fn rtt(&self, peer: NodeId) -> Option<Duration> {
        self.links.get(&peer).and_then(|l| l.liveness.rtt())
    }

    /// Whether `peer` missed its last ping.
    pub fn is_suspect(&self, peer: NodeId) -> bool {
        self.links
            .get(&peer)
            .is_some_and(|l| l.liveness.is_suspect())
    }

    /// The peer cache, in id order: every node known with its listen
    /// addresses. Save it and hand it to [`Command::AddPeers`] at the next
    /// start to rejoin without a bootstrap node.
    pub fn known_peers(&self) -> Vec<PeerEntry> {
        self.cache.export()
    }

    /// Broadcast ids remembered (at most `seen_cache_capacity`).
    pub fn seen_cache_len(&self) -> usize {
        self.seen.len()
    }

    /// Broadcast ids forgotten early because the seen-cache was full (raise
    /// `seen_cache_capacity` if this grows).
    pub fn seen_cache_evicted_early(&self) -> u64 {
        self.seen.evicted_early
    }

    /// Deadlines queued, live or cancelled (stays within a constant factor
    /// of what is really pending).
    pub fn deadline_count(&self) -> usize {
        self.deadlines.len()
    }

    /// Requests awaiting responses, and messages waiting for their peers.
    pub fn pending_counts(&self) -> (usize, usize) {
        (self.messaging.pending.len(), self.messaging.queued)
    }

    /// Where this node stands towards the ring.
    pub fn chord_role(&self) -> ChordRole {
        self.chord.role
    }

    /// The successor list, nearest first (empty unless a member).
    pub fn chord_successors(&self) -> Vec<NodeId> {
        self.chord.succs.iter().map(|p| p.id).collect()
    }

    /// The predecessor, if known.
    pub fn chord_predecessor(&self) -> Option<NodeId> {
        self.chord.pred.as_ref().map(|p| p.id)
    }

    /// Distinct finger targets, by finger index (fingers the successor list
    /// covers are not kept).
    pub fn chord_fingers(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.chord.fingers.iter().map(|(_, p)| p.id).collect();
        ids.dedup();
        ids
    }

    /// Chord and dht requests awaiting replies, and lookups in flight.
    pub fn chord_pending(&self) -> (usize, usize) {
        (self.chord.requests.len(), self.chord.lookups.len())
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
                self.forget(conn, crate::CloseReason::Transport(reason), None, false)
            }
            Input::DialFailed { conn, reason } => {
                self.forget(conn, crate::CloseReason::DialFailed(reason), None, false)
            }
            Input::Timeout => {}
        }
        self.after_call();
    }

    /// Asks the node to do something. On `Err` nothing changed. Drain
    /// [`Node::poll_output`] afterwards, then re-read [`Node::poll_timeout`].
    pub fn command(&mut self, now: Instant, command: Command) -> Result<Accepted, CommandError> {
        self.advance(now);
        let result = if self.shut_down && command != Command::Shutdown {
            Err(CommandError::ShutDown)
        } else {
            match command {
                Command::Connect { addr, peer } => self.connect(&[addr], peer),
                Command::ConnectAny { addrs, peer } => self.connect(&addrs, peer),
                Command::Send { to, payload } => self.send_direct(to, payload),
                Command::Request {
                    to,
                    payload,
                    timeout,
                } => self.request(to, payload, timeout),
                Command::Respond { to, id, payload } => self.respond(to, id, payload),
                Command::Broadcast { payload } => Ok(self.broadcast(payload)),
                Command::AddPeers { peers } => {
                    for entry in &peers {
                        self.cache.learn(entry, self.now);
                    }
                    Ok(Accepted::Done)
                }
                Command::Disconnect { peer } => self.disconnect(peer),
                Command::Shutdown => {
                    self.shutdown();
                    Ok(Accepted::Done)
                }
                Command::ChordFound { founders } => self.chord_found(founders),
                Command::ChordCreate => self.chord_create(),
                Command::ChordJoin { via } => self.chord_join(via),
                Command::Lookup { key } => self.lookup_command(key).map(Accepted::Op),
                Command::Put { key, value } => self.dht_put(key, Some(value)),
                Command::Delete { key } => self.dht_put(key, None),
                Command::Get { key } => self.dht_get(key),
            }
        };
        self.after_call();
        result
    }

    /// The next thing the driver must do, in order. Call until `None` after
    /// every [`handle_input`](Node::handle_input) and
    /// [`command`](Node::command).
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front();
        if output.is_none() && self.outputs.capacity() > OUTPUTS_KEPT {
            // A burst (a relay to many peers) left a big queue behind; an
            // idle node should not keep it (simulations hold millions).
            self.outputs.shrink_to(OUTPUTS_KEPT);
        }
        output
    }

    /// When the driver must next call `handle_input(_, Input::Timeout)`;
    /// `None` if nothing is pending (only after shutdown: a running node
    /// always has its maintenance round ahead). O(1). Re-read after every
    /// call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    fn advance(&mut self, now: Instant) {
        // Time never runs backwards inside the node, whatever the driver says.
        self.now = self.now.max(now);
    }

    fn after_call(&mut self) {
        while let Some(deadline) = self.deadlines.pop_due(self.now) {
            if is_live(
                &self.conns,
                &self.links,
                &self.messaging,
                &self.chord,
                &self.dht,
                &deadline,
            ) {
                self.fire(deadline);
            }
        }
        let (conns, links, messaging, chord, dht) = (
            &self.conns,
            &self.links,
            &self.messaging,
            &self.chord,
            &self.dht,
        );
        let live = |d: &Deadline| is_live(conns, links, messaging, chord, dht, d);
        self.deadlines.prune(live);
        self.deadlines.compact(live);
    }

    fn fire(&mut self, deadline: Deadline) {
        match deadline {
            Deadline::Handshake { conn, .. } => self.forget(
                conn,
                crate::ProtocolError::HandshakeTimeout.into(),
                None,
                true,
            ),
            Deadline::Drain { conn, .. } => self.forget(
                conn,
                crate::CloseReason::Duplicate,
                Some(crate::wire::GoodbyeReason::Duplicate),
                true,
            ),
            Deadline::Ping { peer, .. } => self.ping(peer),
            Deadline::PongDue { peer, nonce, .. } => self.pong_missed(peer, nonce),
            Deadline::Request { id } => self.request_timed_out(id),
            Deadline::Waiting { peer, .. } => self.waiting_expired(peer),
            Deadline::ChordStabilize { generation } => self.stabilize_tick(generation),
            Deadline::ChordFixFingers => self.fix_fingers_tick(),
            Deadline::ChordRequest { req } => self.chord_request_expired(req),
            Deadline::ChordLookup { id } => self.lookup_timed_out(id),
            Deadline::DhtOp { id } => self.dht_deadline(id),
            Deadline::DhtRetry { id } => self.dht_retry(id),
            Deadline::DhtRepair => self.dht_repair_tick(),
            Deadline::Maintenance => {
                if !self.shut_down {
                    self.maintain();
                    let next = self.now + self.config.maintenance_interval;
                    self.deadlines.push(next, Deadline::Maintenance);
                }
            }
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
                Some(crate::wire::GoodbyeReason::ProtocolViolation),
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
            SessionOutput::Established(established) => self.on_established(conn, *established),
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

    fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        info!(node = %self.id.short(), connections = self.conns.len(), "shutting down");
        self.fail_everything_pending();
        self.fail_all_lookups();
        self.fail_all_dht();
        if self.chord.role == ChordRole::Member {
            self.chord.role = ChordRole::Out;
        }
        for conn in self.sorted_conns(|_| true) {
            self.forget(
                conn,
                crate::CloseReason::Shutdown,
                Some(crate::wire::GoodbyeReason::Shutdown),
                true,
            );
        }
    }

    fn push_send(&mut self, conn: ConnId, bytes: Bytes) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.outputs.push_back(Output::Send { conn, bytes });
    }

    fn push_event(&mut self, event: crate::Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }
}

#[cfg(test)]
mod tests;
