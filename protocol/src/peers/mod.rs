//! The `peers` component (spec/peers.md, spec/discovery.md): the
//! connection layer every other component stands on.
//!
//! [`Net`] owns the connection table (dials and races, caps, sessions, the
//! one-connection-per-peer rule, closing), the peer table of established
//! peers, the peer cache and the bootstrap list, discovery (peer exchange,
//! `FindPeer`, the maintenance round that keeps the node at its target peer
//! count) and the output queue. It implements [`Cx`], the context the
//! other components act through, and tells them of peers coming and going
//! and of their messages through [`Upcalls`], which the node's router
//! implements.
//!
//! - `connections.rs`: the connection table and the peer table.
//! - `table.rs`: the layout of the peer, connection and cache tables
//!   (vectors sorted by key, grown four entries at a time).
//! - `maintain.rs`: the maintenance round and the bootstrap list.
//! - `discovery.rs`: peer exchange and `FindPeer`.
//! - `cache.rs`: the peer cache.
//! - `admission.rs`: admission control's pure rules (address groups, rate
//!   limits, which connection to evict).

mod admission;
mod api;
mod budget;
mod cache;
pub(crate) mod config;
mod connections;
mod discovery;
mod maintain;
mod table;

use core::net::{IpAddr, SocketAddr};
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use foldhash::fast::FixedState;

pub use api::{AdmissionReason, KnownPeer, PeersCommand, PeersError, PeersEvent, PeersStats};
use budget::ReceiveBudget;
pub(crate) use cache::{Addrs, PeerCache};
pub use config::{AdmissionConfig, PeersConfig};

use crate::cx::{Cx, LinkView, SendError};
use crate::liveness::peer::PeerLiveness;
use crate::rng::{Rng, Stream};
use crate::session::{EncodeError, Prepared, Session, SessionContext};
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::{Capabilities, MAX_LISTEN_ADDRS, Message, PeerEntry};
use crate::{
    CloseReason, Config, ConnId, Direction, Event, Identity, NodeId, OpId, Output, PublicKey,
    SignatureCheck,
};

/// The delay before redial attempt number `failures + 1`: `min × 2^failures`
/// capped at `max`, then jittered down by up to half so that nodes which
/// lost the same peer at the same moment do not redial in lockstep.
pub(crate) fn redial_delay(config: &PeersConfig, failures: u32, rng: &mut Rng) -> Duration {
    let min = config.redial_backoff_min.as_micros();
    let max = config.redial_backoff_max.as_micros();
    let full = min.saturating_mul(1u64 << failures.min(32)).min(max);
    let half = full / 2;
    Duration::from_micros(half + rng.below(full - half + 1))
}

/// The secret that keys the peer cache's bucket positions: from the node
/// seed and the identity secret, so an attacker who knows the seed (the
/// simulator publishes its seeds) still cannot aim at a slot.
fn cache_key(seed: u64, identity: &Identity) -> [u8; 32] {
    let mut material = [0u8; 40];
    material[..8].copy_from_slice(&seed.to_le_bytes());
    material[8..].copy_from_slice(&identity.secret_bytes());
    blake3::derive_key("ringmesh peer cache v1 bucket key", &material)
}

/// What the connection layer tells the components (the node's router
/// implements it). Each call happens at the point of the layer's own work
/// where it matters, so the order of outputs is the order of the rules.
pub(crate) trait Upcalls {
    /// `peer` is up on `conn` (its link has `generation`). The layer has
    /// emitted `PeersEvent::Up`.
    fn peer_up(&mut self, net: &mut Net, peer: NodeId, conn: ConnId, generation: u64);
    /// `peer` has no usable connection left; the layer emits `PeersEvent::Down`
    /// after this returns.
    fn peer_down(&mut self, net: &mut Net, peer: NodeId, reason: &CloseReason);
    /// Every dial to `peer` ended without a session.
    fn dial_failed(&mut self, net: &mut Net, peer: NodeId);
    /// A message of another component's tags arrived on `conn` from `from`.
    /// `Err` names a message this node does not take there: the layer
    /// closes the connection with `UnexpectedMessage`.
    fn message(
        &mut self,
        net: &mut Net,
        conn: ConnId,
        from: NodeId,
        message: Message,
    ) -> Result<(), &'static str>;
    /// Whether messages wait for `peer` (discovery dials it as soon as it
    /// learns where it is).
    fn waiting_for(&self, peer: NodeId) -> bool;
    /// The maintenance round begins.
    fn maintenance(&mut self, net: &mut Net);
    /// The dial-back probe `conn` ([`Net::dial_probe`]) ended: `reached`
    /// if its handshake proved the id demanded.
    fn probe_ended(&mut self, net: &mut Net, conn: ConnId, reached: bool);
    /// Whether this node asked `peer` to dial it back and its dial-back
    /// has not arrived: an inbound session from `peer` now is that
    /// dial-back, not a new link (and it is awaited no more).
    fn take_dial_back(&mut self, peer: NodeId, now: Instant) -> bool;
    /// `peer`'s link moved from a relayed connection to the direct `conn`
    /// (the relayed one is drained).
    fn relayed_link_replaced(&mut self, net: &mut Net, peer: NodeId, conn: ConnId);
    /// A `PeerList` holding `ids` (or the answer to a `FindPeer` for
    /// `ids[0]`) is about to go to `to`: the relay component sends the
    /// relays it knows them to be reachable through first (`spec/relay.md`
    /// §3), so a dial that fails at once finds them.
    fn peers_shared(&mut self, net: &mut Net, to: NodeId, ids: &[NodeId]);
}

/// What a relayed connection asks of the relay component that carries it
/// (the driver's `Output::Send` and `Output::Close` for the others).
#[derive(Debug)]
pub(crate) enum RelayedOutput {
    /// Bytes its session wrote.
    Send { conn: ConnId, bytes: Bytes },
    /// The layer closed it.
    Close { conn: ConnId },
}

/// The layer's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// The handshake on `conn` (this one, by serial) is over time.
    Handshake { conn: ConnId, serial: u32 },
    /// The duplicate `conn` has drained long enough.
    Drain { conn: ConnId, serial: u32 },
    /// The peer dialled `conn` while another connection it dialled was its
    /// connection here, and has had `handshake_timeout` to say which it
    /// keeps (see [`Net::peer_never_chose`]).
    PeerChoice { conn: ConnId, serial: u32 },
    /// The maintenance round.
    Maintenance,
    /// `conn` (this one, by serial) stopped reading to wait for receive
    /// budget for a payload to decompress; armed just after the call that
    /// stopped, so the driver has taken that call's outputs (and the
    /// budget they held is free) when it fires.
    ResumeRead { conn: ConnId, serial: u32 },
}

struct Connection {
    /// Distinguishes this connection from an earlier one that had the same
    /// driver-chosen id, for lazily cancelled deadlines: the low 32 bits
    /// of the node-wide serial (see [`Net::next_conn_serial`]).
    serial: u32,
    direction: Direction,
    /// The far end's address (read it through [`Connection::remote`]).
    remote: RemoteAddr,
    /// While handshaking, when the dial began (or the connection was
    /// accepted): the half-open eviction's age and what
    /// `is_dialling_since` compares. Once established, when the session
    /// was (the inbound eviction's "longest connected"). One field for
    /// both: each is read only in its phase (behind `peer()`).
    since: Instant,
    /// While handshaking, the id the dial demanded (if any); once
    /// established, the peer's (which is the one demanded, if one was):
    /// one field for both, as a connection needs one at a time (read them
    /// through [`Connection::expected`] and [`Connection::peer`]). The
    /// id and whether there is one apart (`has_id`): a flag packs with the
    /// others, where an `Option<NodeId>` takes 24 bytes, not 16 (eight
    /// more would take the connection from 112 bytes to 120: past
    /// mimalloc's 112-byte class).
    id: NodeId,
    /// `id` holds an id.
    has_id: bool,
    /// The run of the peer this session reached (its `Hello.run_nonce`),
    /// once established; all established connections to a peer share one
    /// (`spec/peers.md`, "Restarts").
    run_nonce: u64,
    /// `None` while the dial is in flight.
    session: Option<Session>,
    /// What only a connection that is still handshaking holds; `None`
    /// once the session is established (which is how the connection
    /// tells that it is). A side record, so that an established
    /// connection (a chord member holds ~37) does not carry the
    /// handshake's fields: with them inline a connection took 16 bytes
    /// more (and the allocator's next size class).
    handshake: Option<Box<Handshake>>,
    /// We sent `Goodbye(Duplicate)`: nothing more is sent, and reads go on
    /// until the peer's own goodbye says it has sent everything.
    draining: bool,
    /// The peer sent `Goodbye(Duplicate)` on it while it was our only
    /// connection to that peer: we keep sending on it (the peer reads until
    /// our goodbye) until the connection the peer kept comes up.
    peer_draining: bool,
}

/// A connection's remote address in 16 bytes, where a `SocketAddr` takes
/// 32: an IPv4 address inline, an IPv6 one (with its flow info and scope)
/// boxed. A chord member holds ~37 connections, nearly all of them IPv4
/// in a simulation; the 16 bytes take a connection from 168 bytes (the
/// allocator's 176-byte class) to 152 (its 160).
enum RemoteAddr {
    V4(core::net::SocketAddrV4),
    V6(Box<core::net::SocketAddrV6>),
}

impl RemoteAddr {
    fn new(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(v4) => RemoteAddr::V4(v4),
            SocketAddr::V6(v6) => RemoteAddr::V6(Box::new(v6)),
        }
    }

    fn get(&self) -> SocketAddr {
        match self {
            RemoteAddr::V4(v4) => SocketAddr::V4(*v4),
            RemoteAddr::V6(v6) => SocketAddr::V6(**v6),
        }
    }
}

/// What a connection holds only while it handshakes (see
/// [`Connection::handshake`]).
struct Handshake {
    /// The `ConnectAny` race this dial belongs to (races are numbered from
    /// 1, so the id takes no more room than a `u64`).
    race: Option<core::num::NonZeroU64>,
    /// The bootstrap entry this dial is for, or [`NO_BOOTSTRAP`] (the list
    /// holds the configured addresses, far fewer than 2^32; a sentinel
    /// rather than an `Option`, which takes 8 bytes).
    bootstrap: u32,
    /// Inbound: bytes received so far, until the first handshake message
    /// is complete and charged to the node-wide rate (then `u32::MAX`; a
    /// `u32`, as it counts to a few dozen bytes).
    received: u32,
    /// The application asked for this dial: its peer becomes wanted.
    wanted: bool,
    /// This node has answered the peer's first message (it has spent a
    /// key exchange on it).
    answered: bool,
    /// Inbound: its address group was rested when it arrived (it may use
    /// the reserve of the node-wide rate).
    rested: bool,
    /// A dial-back probe (`spec/reach.md` §3.2): `Some(reached)`. It never
    /// becomes a link: once its handshake proves the id it is closed.
    probe: Option<bool>,
    /// A hole-punch dial (`spec/relay.md` §7): both ends dialled, so the
    /// Noise roles come from the ids; its failure is the relay
    /// component's to count, not a failed dial of the peer.
    punch: bool,
}

impl Handshake {
    /// The state of a connection that just opened.
    fn new() -> Self {
        Handshake {
            race: None,
            bootstrap: NO_BOOTSTRAP,
            received: 0,
            wanted: false,
            answered: false,
            rested: false,
            probe: None,
            punch: false,
        }
    }
}

/// [`Connection::bootstrap`]: the dial is for no bootstrap entry.
const NO_BOOTSTRAP: u32 = u32::MAX;

impl Connection {
    /// The id the dial demanded, while handshaking; the peer's once
    /// established (then it is [`Connection::peer`]).
    fn expected(&self) -> Option<NodeId> {
        self.has_id.then_some(self.id)
    }

    /// The peer, once the session is established.
    fn peer(&self) -> Option<NodeId> {
        (self.has_id && self.handshake.is_none()).then_some(self.id)
    }

    /// The session is established with `peer` (the id demanded, if one
    /// was), in its run `run_nonce`: the handshake's record goes.
    fn establish(&mut self, peer: NodeId, run_nonce: u64) {
        self.id = peer;
        self.has_id = true;
        self.handshake = None;
        self.run_nonce = run_nonce;
    }

    /// The far end's address.
    fn remote(&self) -> SocketAddr {
        self.remote.get()
    }

    /// The handshake's record, while handshaking.
    fn handshake_mut(&mut self) -> Option<&mut Handshake> {
        self.handshake.as_deref_mut()
    }

    /// The bootstrap entry this dial is for.
    fn bootstrap(&self) -> Option<usize> {
        self.handshake
            .as_ref()
            .filter(|h| h.bootstrap != NO_BOOTSTRAP)
            .map(|h| h.bootstrap as usize)
    }

    /// The `ConnectAny` race this dial belongs to.
    fn race(&self) -> Option<core::num::NonZeroU64> {
        self.handshake.as_ref().and_then(|h| h.race)
    }

    /// A dial-back probe: `Some(reached)`.
    fn probe(&self) -> Option<bool> {
        self.handshake.as_ref().and_then(|h| h.probe)
    }

    /// A hole-punch dial.
    fn punch(&self) -> bool {
        self.handshake.as_ref().is_some_and(|h| h.punch)
    }

    /// The application asked for this dial.
    fn wanted(&self) -> bool {
        self.handshake.as_ref().is_some_and(|h| h.wanted)
    }

    /// Established, and usable for sending.
    fn usable(&self) -> bool {
        self.peer().is_some() && !self.draining
    }
}

/// An established peer: the connection used to reach it, and its liveness.
struct PeerLink {
    conn: ConnId,
    /// Its liveness state, which also holds the link's generation (it
    /// changes each time the peer comes up, for lazily cancelled timers).
    liveness: PeerLiveness,
}

/// A bootstrap address and its redial state.
struct BootstrapAddr {
    addr: SocketAddr,
    /// Who answered there last time.
    id: Option<NodeId>,
    failures: u32,
    next_dial_at: Instant,
}

/// Output-queue capacity an idle node keeps by default: none (an output
/// is 144 bytes, and a simulation holds a million idle nodes; the queue is
/// allocated again by the next call that has something to say).
const OUTPUTS_KEPT: usize = 0;

/// The connection layer. See the module docs.
pub(crate) struct Net {
    /// Shared by every node built from the same `Arc`
    /// ([`Node::with_shared_config`](crate::Node::with_shared_config)).
    config: Arc<Config>,
    id: NodeId,
    ctx: SessionContext,
    /// Whether large application payloads leave as their own
    /// `Output::Send` after the frame's head
    /// ([`Node::set_payload_passthrough`](crate::Node::set_payload_passthrough)).
    passthrough: bool,
    now: Instant,
    session_rng: Rng,
    /// Dial choices, backoff jitter and peer-exchange samples.
    rng: Rng,
    /// The connections, sorted by id (`table.rs`).
    conns: table::ConnTable,
    /// Established peers and the connection that reaches each.
    links: table::PeerTable,
    cache: PeerCache,
    /// What connections hold while they receive (`session.receive_budget`).
    budget: ReceiveBudget,
    bootstrap: Vec<BootstrapAddr>,
    outputs: VecDeque<Output>,
    /// Output-queue capacity kept when drained
    /// ([`Node::set_outputs_kept`](crate::Node::set_outputs_kept)).
    outputs_kept: usize,
    /// What relayed connections' sessions wrote or closed in this call,
    /// for the relay component (which carries them in circuits); drained
    /// by the router before the call returns.
    relayed: VecDeque<RelayedOutput>,
    pub(crate) timers: DeadlineQueue<Timer>,
    /// Sequence numbers of every component's timers.
    timer_seq: u64,
    next_op: u64,
    next_dial: u64,
    next_serial: u64,
    next_race: u64,
    /// No `PeerRequest` before this, unless the last one brought news.
    next_peer_request: Instant,
    shut_down: bool,
    pub(crate) stats: PeersStats,
    /// Connections that read in the current call: what they were granted
    /// for decompressed payloads is released at the next call, when the
    /// driver has taken the messages (`settle_reads`).
    /// Inline: a call nearly always reads one connection, and a vector
    /// would be allocated and freed at every call.
    reading: smallvec::SmallVec<[ConnId; 2]>,
    /// The handshake rate limits (admission control).
    limiter: admission::RateLimiter,
    /// Keys the address-group order of the inbound eviction's diversity
    /// rule (seeded from the node seed: others cannot predict it).
    group_hasher: FixedState,
    /// The admission counters at the last summary line.
    admission_logged: [u64; 8],
    /// Signs what this node originates (broadcasts, table entries).
    identity: Identity,
    /// Checks what peers signed (`Node::set_signature_check`).
    signature_check: Arc<dyn SignatureCheck>,
}

impl Net {
    /// The layer of a node with `identity` and `config`, drawing from
    /// `seed`, at `now`; its first deadline is the maintenance round, at
    /// once. `own` is `config` with this node's listen addresses
    /// (validated): its `Hello` announces them.
    pub(crate) fn new(
        config: Arc<Config>,
        own: &Config,
        identity: &Identity,
        seed: u64,
        hasher: FixedState,
        now: Instant,
    ) -> Self {
        let id = identity.node_id();
        let mut net = Net {
            id,
            // A stream of its own, so the nonce shifts no other draw.
            ctx: SessionContext::new(
                own,
                identity,
                Rng::derive(seed, Stream::Run, None).next_u64(),
            ),
            passthrough: false,
            outputs_kept: OUTPUTS_KEPT,
            now,
            session_rng: Rng::derive(seed, Stream::Session, Some(&identity.secret_bytes())),
            rng: Rng::derive(seed, Stream::Peers, None),
            conns: table::ConnTable::default(),
            limiter: admission::RateLimiter::new(
                admission::Rates {
                    node_rate: config.peers.admission.handshake_rate,
                    node_burst: config.peers.admission.handshake_burst,
                    group_rate: config.peers.admission.group_handshake_rate,
                    group_burst: config.peers.admission.group_handshake_burst,
                },
                now,
            ),
            group_hasher: hasher.clone(),
            admission_logged: [0; 8],
            identity: identity.clone(),
            signature_check: crate::identity::default_check(),
            links: table::PeerTable::default(),
            budget: ReceiveBudget::new(
                config.session.receive_budget,
                config.peers.max_connections,
                hasher.clone(),
            ),
            cache: PeerCache::new(
                id,
                config.peers.max_known_peers,
                config.peers.max_connections,
                cache_key(seed, identity),
            ),
            bootstrap: config
                .peers
                .bootstrap
                .iter()
                .map(|&addr| BootstrapAddr {
                    addr,
                    id: None,
                    failures: 0,
                    next_dial_at: now,
                })
                .collect(),
            outputs: VecDeque::new(),
            relayed: VecDeque::new(),
            timers: DeadlineQueue::new(),
            timer_seq: 0,
            next_op: 0,
            next_dial: 0,
            next_serial: 0,
            next_race: 0,
            next_peer_request: now,
            shut_down: false,
            stats: PeersStats::default(),
            reading: smallvec::SmallVec::new(),
            config,
        };
        net.arm(now, Timer::Maintenance);
        net
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The node's table hasher (seeded from the node seed), for a
    /// component allocated on first use.
    pub(crate) fn hasher(&self) -> &FixedState {
        &self.group_hasher
    }

    /// Moves the clock; time never runs backwards inside the node,
    /// whatever the driver says.
    pub(crate) fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.settle_reads();
    }

    /// A new call began: the driver has drained the outputs of the last
    /// one, so the payloads the connections decompressed there are no
    /// longer ours to count; each keeps what its session still holds.
    fn settle_reads(&mut self) {
        // Most calls follow one that read nothing (a command, a timeout):
        // taking the empty list would still move all its inline room.
        if self.reading.is_empty() {
            return;
        }
        for conn in core::mem::take(&mut self.reading) {
            let holds = self
                .conns
                .get(&conn)
                .and_then(|c| c.session.as_ref())
                .map_or(0, Session::held);
            self.budget.settle(conn, holds);
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Marks the node shut down (it then refuses new connections and work).
    pub(crate) fn set_shut_down(&mut self) {
        self.shut_down = true;
    }

    /// The next output for the driver.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front();
        if output.is_none() && self.outputs.capacity() > self.outputs_kept {
            // Drained: an idle node keeps no queue (simulations hold
            // millions of nodes), unless its driver asked for one.
            self.outputs.shrink_to(self.outputs_kept);
        }
        output
    }

    /// Appends every queued output to `out`, in order, then lets the queue
    /// go as [`Net::poll_output`] does when drained.
    pub(crate) fn drain_outputs(&mut self, out: &mut VecDeque<Output>) {
        if self.outputs.is_empty() {
            return;
        }
        out.append(&mut self.outputs);
        if self.outputs.capacity() > self.outputs_kept {
            self.outputs.shrink_to(self.outputs_kept);
        }
    }

    /// Swaps the output queue with the driver's `out`: the node's calls
    /// then push into the driver's queue (`Node::handle_input_into`).
    pub(crate) fn swap_outputs(&mut self, out: &mut VecDeque<Output>) {
        core::mem::swap(&mut self.outputs, out);
    }

    /// Deadlines armed so far, in every queue of the node (the count
    /// behind [`Cx::timer_seq`], which every queue's entries draw from):
    /// while it stands, no queue gained an entry.
    pub(crate) fn timers_armed(&self) -> u64 {
        self.timer_seq
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push_seq(at, self.timer_seq, timer);
    }

    fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    /// A serial for a new connection: the low 32 bits of the next serial.
    /// A connection's serial only tells it from the connections that had
    /// the same id before and after it while one of its timers (a
    /// handshake or drain timeout: seconds) is pending; 2^32 connections
    /// and links of one node are years of work. Four bytes rather than
    /// eight keep a connection at 112 bytes (mimalloc's 112-byte class),
    /// ~37 of them per chord member.
    fn next_conn_serial(&mut self) -> u32 {
        self.next_serial() as u32
    }

    // ----- reading the tables (for the node's accessors) -----

    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections whose session is established (duplicates being
    /// drained included; dials and handshakes not).
    pub(crate) fn established_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.session.is_some() && c.handshake.is_none())
            .count()
    }

    pub(crate) fn run_nonce(&self) -> u64 {
        self.ctx.hello.run_nonce
    }

    pub(crate) fn outbound_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.direction == Direction::Outbound)
            .count()
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.links.len()
    }

    pub(crate) fn rtt(&self, peer: NodeId) -> Option<Duration> {
        self.links.get(&peer).and_then(|l| l.liveness.rtt())
    }

    pub(crate) fn is_suspect(&self, peer: NodeId) -> bool {
        self.links
            .get(&peer)
            .is_some_and(|l| l.liveness.is_suspect())
    }

    /// Bytes connections hold while they receive (see
    /// [`SessionConfig::receive_budget`](crate::SessionConfig::receive_budget)).
    pub(crate) fn receive_budget_used(&self) -> usize {
        self.budget.used()
    }

    /// Entries in the peer cache.
    pub(crate) fn known_count(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn known_peers(&self) -> Vec<PeerEntry> {
        self.cache.export()
    }

    /// The peer cache with each entry's table, tried ones first.
    pub(crate) fn peer_cache(&self) -> Vec<KnownPeer> {
        self.cache.export_known()
    }

    /// Entries in the tried table.
    pub(crate) fn tried_count(&self) -> usize {
        self.cache.tried_len()
    }

    /// Imports peer-cache entries (`PeersCommand::AddPeers`).
    pub(crate) fn add_peers(&mut self, peers: &[PeerEntry]) {
        for entry in peers {
            self.cache.learn(entry, None, self.now);
        }
    }

    /// Restores a saved peer cache (`PeersCommand::RestorePeers`). A node
    /// with no peer yet dials from it at once (tried peers first) rather
    /// than at its next maintenance round.
    pub(crate) fn restore_peers(&mut self, peers: &[KnownPeer]) {
        for peer in peers {
            self.cache.restore(peer, self.now);
        }
        if self.links.is_empty() && !self.shut_down {
            self.maintain();
        }
    }

    /// The layer's counters, with the peer cache's.
    pub(crate) fn stats(&self) -> PeersStats {
        PeersStats {
            known_peers_refused: self.cache.refused,
            known_peers_evicted: self.cache.evicted,
            ..self.stats
        }
    }

    /// Whether the application asked for `peer` (it is redialled whatever
    /// the peer count).
    pub(crate) fn is_wanted(&self, peer: NodeId) -> bool {
        self.cache.get(&peer).is_some_and(|k| k.wanted())
    }

    /// Whether `conn` was dialled by this node or accepted.
    pub(crate) fn conn_direction(&self, conn: ConnId) -> Option<Direction> {
        self.conns.get(&conn).map(|c| c.direction)
    }

    /// The address `conn`'s other end is at, as the driver reported it.
    pub(crate) fn conn_remote(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conns.get(&conn).map(|c| c.remote())
    }

    /// What this node announces now: its configured `listen_addrs` and
    /// the addresses it adopted since (`spec/reach.md`).
    pub(crate) fn announced_addrs(&self) -> &[SocketAddr] {
        &self.ctx.hello.listen_addrs
    }

    /// Announces `ip` with this node's listen port (that of its first
    /// announced address) from now on, in new sessions' `Hello` and in its
    /// peer-exchange entry. `None` when the node announces no address (so
    /// has no port to pair `ip` with) or its `Hello` is full.
    pub(crate) fn announce_observed(&mut self, ip: IpAddr) -> Option<SocketAddr> {
        let port = self.ctx.hello.listen_addrs.first()?.port();
        let addr = SocketAddr::new(ip, port);
        self.ctx.announce(&self.identity, addr).then_some(addr)
    }

    /// `PeersCommand::Announce`: announces `addr` from now on.
    pub(crate) fn announce(&mut self, addr: SocketAddr) -> Result<crate::Accepted, PeersError> {
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(PeersError::CannotAnnounce(addr));
        }
        if self.ctx.hello.listen_addrs.contains(&addr) || self.ctx.announce(&self.identity, addr) {
            Ok(crate::Accepted::Done)
        } else {
            Err(PeersError::CannotAnnounce(addr))
        }
    }

    /// The features negotiated on `conn`, once established.
    pub(crate) fn conn_caps(&self, conn: ConnId) -> Option<Capabilities> {
        self.conns
            .get(&conn)
            .and_then(|c| c.session.as_ref())
            .map(|s| s.capabilities)
    }

    // ----- timers -----

    /// Whether `timer` still guards something.
    pub(crate) fn is_live(&self, timer: &Timer) -> bool {
        timer_is_live(&self.conns, timer)
    }

    /// Drops cancelled timers (see [`DeadlineQueue::tidy`]).
    pub(crate) fn tidy_timers(&mut self) {
        // The queue and the table borrowed apart: moving the queue out of
        // `self` and back, to call `is_live`, cost ~25 instructions a call
        // (four calls a request/response round trip).
        let conns = &self.conns;
        self.timers.tidy(|timer| timer_is_live(conns, timer));
    }

    /// A timer fired.
    pub(crate) fn fire(&mut self, timer: Timer, up: &mut dyn Upcalls) {
        match timer {
            Timer::Handshake { conn, .. } => {
                if self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.direction == Direction::Inbound)
                {
                    self.stats.inbound_handshake_timeouts += 1;
                }
                self.forget(
                    conn,
                    crate::ProtocolError::HandshakeTimeout.into(),
                    None,
                    true,
                    up,
                )
            }
            Timer::Drain { conn, .. } => self.forget(
                conn,
                CloseReason::Duplicate,
                Some(crate::wire::GoodbyeReason::Duplicate),
                true,
                up,
            ),
            Timer::PeerChoice { conn, serial } => self.peer_never_chose(conn, serial, up),
            Timer::ResumeRead { conn, serial } => {
                if self.reading.is_empty() {
                    self.on_received(conn, Bytes::new(), up);
                } else {
                    // Another connection read in this call: what it
                    // decompressed is handed over only after it. Wait for
                    // a call of our own.
                    self.arm(
                        self.now + Duration::from_micros(1),
                        Timer::ResumeRead { conn, serial },
                    );
                }
            }
            Timer::Maintenance => {
                if !self.shut_down {
                    self.log_admission();
                    up.maintenance(self);
                    self.maintain();
                    let next = self.now + self.config.peers.maintenance_interval;
                    self.arm(next, Timer::Maintenance);
                }
            }
        }
    }

    // ----- sending -----

    fn push_send(&mut self, conn: ConnId, bytes: Bytes) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        if conn.is_relayed() {
            self.relayed.push_back(RelayedOutput::Send { conn, bytes });
        } else {
            self.outputs.push_back(Output::Send { conn, bytes });
        }
    }

    /// One frame whose payload was not copied into it: its head, then the
    /// payload, as two `Output::Send`s back to back (a direct connection
    /// only: [`Net::send_on`] asks for no split on a relayed one).
    fn push_split_send(&mut self, conn: ConnId, head: Bytes, tail: Bytes) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += (head.len() + tail.len()) as u64;
        self.outputs.push_back(Output::Send { conn, bytes: head });
        self.outputs.push_back(Output::Send { conn, bytes: tail });
    }

    /// Asks the driver (or, for a relayed connection, the relay
    /// component) to close `conn`.
    fn push_close(&mut self, conn: ConnId) {
        if conn.is_relayed() {
            self.relayed.push_back(RelayedOutput::Close { conn });
        } else {
            self.outputs.push_back(Output::Close { conn });
        }
    }

    /// Whether a relayed connection's session wrote or closed something
    /// not yet taken ([`Net::take_relayed`]).
    pub(crate) fn has_relayed(&self) -> bool {
        !self.relayed.is_empty()
    }

    /// The next thing a relayed connection's session wrote or closed.
    pub(crate) fn take_relayed(&mut self) -> Option<RelayedOutput> {
        let next = self.relayed.pop_front();
        if next.is_none() && self.relayed.capacity() > OUTPUTS_KEPT {
            self.relayed.shrink_to(OUTPUTS_KEPT);
        }
        next
    }

    /// The remote address of the connection that reaches `peer`.
    pub(crate) fn link_remote(&self, peer: NodeId) -> Option<SocketAddr> {
        self.links.get(&peer).and_then(|l| self.conn_remote(l.conn))
    }

    fn push_event(&mut self, event: impl Into<Event>) {
        self.outputs.push_back(Output::Event(event.into()));
    }

    fn send_message(&mut self, conn: ConnId, message: &Message) -> Result<(), EncodeError> {
        self.send_on(conn, &mut Prepared::once(message), false)
    }

    /// Sends on `conn`; a draining connection only carries what
    /// `even_draining` allows (pongs).
    fn send_on(
        &mut self,
        conn: ConnId,
        prepared: &mut Prepared<'_>,
        even_draining: bool,
    ) -> Result<(), EncodeError> {
        let session = self
            .conns
            .get_mut(&conn)
            .filter(|c| even_draining || !c.draining)
            .and_then(|c| c.session.as_mut())
            .ok_or(EncodeError::NotEstablished)?;
        let passthrough = self.passthrough && !conn.is_relayed();
        let encoded = session.encode_prepared(&self.ctx, prepared, passthrough)?;
        self.stats.compressed_frames_sent += u64::from(encoded.compressed);
        match encoded.tail {
            Some(tail) => self.push_split_send(conn, encoded.bytes, tail),
            None => self.push_send(conn, encoded.bytes),
        }
        Ok(())
    }
}

impl Net {
    /// See [`Node::set_payload_passthrough`](crate::Node::set_payload_passthrough).
    pub(crate) fn set_payload_passthrough(&mut self, on: bool) {
        self.passthrough = on;
    }

    /// See [`Node::set_outputs_kept`](crate::Node::set_outputs_kept).
    pub(crate) fn set_outputs_kept(&mut self, outputs: usize) {
        self.outputs_kept = outputs;
    }

    /// Replaces how signatures are checked (`Node::set_signature_check`).
    pub(crate) fn set_signature_check(&mut self, check: Arc<dyn SignatureCheck>) {
        self.signature_check = check;
    }
}

impl Cx for Net {
    fn now(&self) -> Instant {
        self.now
    }

    fn me(&self) -> NodeId {
        self.id
    }

    fn public_key(&self) -> PublicKey {
        self.identity.public_key()
    }

    fn run_nonce(&self) -> u64 {
        Net::run_nonce(self)
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.identity.sign(message)
    }

    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        self.signature_check.verify(key, message, signature)
    }

    fn timer_seq(&mut self) -> u64 {
        self.timer_seq += 1;
        self.timer_seq
    }

    fn next_op(&mut self) -> OpId {
        self.next_op += 1;
        OpId(self.next_op)
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    fn is_up(&self, peer: NodeId) -> bool {
        self.links.contains_key(&peer)
    }

    fn peers_up(&self) -> Vec<NodeId> {
        self.connected_peers()
    }

    fn has_peers(&self) -> bool {
        !self.links.is_empty()
    }

    fn for_each_link(&self, f: &mut dyn FnMut(NodeId, ConnId)) {
        for (&id, link) in self.links.iter() {
            f(id, link.conn);
        }
    }

    fn link(&self, peer: NodeId) -> Option<LinkView<'_>> {
        self.links.get(&peer).map(|l| LinkView {
            generation: l.liveness.generation(),
            liveness: &l.liveness,
        })
    }

    fn liveness_mut(&mut self, peer: NodeId) -> Option<&mut PeerLiveness> {
        self.links.get_mut(&peer).map(|l| &mut l.liveness)
    }

    fn peer_caps(&self, peer: NodeId) -> Option<Capabilities> {
        self.links.get(&peer).and_then(|l| self.conn_caps(l.conn))
    }

    fn is_dialling(&self, peer: NodeId) -> bool {
        Net::is_dialling(self, peer)
    }

    fn is_dialling_since(&self, peer: NodeId, since: Instant) -> bool {
        self.conns.values().any(|c| {
            // A dial-back probe never becomes a link: nothing may wait
            // for it.
            c.expected() == Some(peer)
                && c.peer().is_none()
                && c.probe().is_none()
                && c.since >= since
        })
    }

    fn knows(&self, peer: NodeId) -> bool {
        self.cache.get(&peer).is_some_and(|k| !k.addrs.is_empty())
    }

    fn entry(&self, peer: NodeId) -> Option<PeerEntry> {
        self.cache.entry(peer)
    }

    fn known_after(&self, key: u128) -> Option<PeerEntry> {
        let me = self.id;
        self.cache
            .iter()
            .filter(|(id, e)| **id != me && !e.addrs.is_empty())
            .min_by_key(|(id, _)| (id.as_u128().wrapping_sub(key), **id))
            .and_then(|(id, _)| self.cache.entry(*id))
    }

    fn learn(&mut self, entry: &PeerEntry) {
        // A ring pointer: its sender is not at hand, so it counts as told
        // by the entry itself (it lands in the new table only).
        self.cache.learn(entry, None, self.now);
    }

    fn send(&mut self, peer: NodeId, message: &Message) -> Result<(), SendError> {
        let conn = self
            .links
            .get(&peer)
            .map(|l| l.conn)
            .ok_or(SendError::NotConnected)?;
        Ok(self.send_message(conn, message)?)
    }

    fn send_prepared(
        &mut self,
        conn: ConnId,
        prepared: &mut Prepared<'_>,
    ) -> Result<(), EncodeError> {
        self.send_on(conn, prepared, false)
    }

    fn max_message_len(&self, conn: ConnId) -> Option<usize> {
        self.conns
            .get(&conn)
            .and_then(|c| c.session.as_ref())
            .and_then(Session::max_message_len)
    }

    fn send_even_draining(&mut self, conn: ConnId, message: &Message) -> Result<(), EncodeError> {
        self.send_on(conn, &mut Prepared::once(message), true)
    }

    fn listen_entry(&self) -> Option<PeerEntry> {
        let addrs = &self.ctx.hello.listen_addrs;
        (!addrs.is_empty()).then(|| PeerEntry {
            id: self.id,
            addrs: addrs.iter().copied().take(MAX_LISTEN_ADDRS).collect(),
        })
    }

    fn dial_known(&mut self, peer: NodeId) -> bool {
        Net::dial_known(self, peer)
    }

    fn dial_pointer(&mut self, entry: &PeerEntry) -> bool {
        Net::dial_pointer(self, entry)
    }

    fn find_peer(&mut self, peer: NodeId) {
        Net::find_peer(self, peer);
    }

    fn push_event(&mut self, event: Event) {
        Net::push_event(self, event);
    }
}

/// Whether `timer` still guards something, by the connections it names.
fn timer_is_live(conns: &table::ConnTable, timer: &Timer) -> bool {
    let conn_is = |conn, serial, f: fn(&Connection) -> bool| {
        conns.get(&conn).is_some_and(|c| c.serial == serial && f(c))
    };
    match *timer {
        Timer::Handshake { conn, serial } => conn_is(conn, serial, |c| c.peer().is_none()),
        Timer::Drain { conn, serial } => conn_is(conn, serial, |c| c.draining || c.peer_draining),
        Timer::PeerChoice { conn, serial } => conn_is(conn, serial, |c| {
            c.peer().is_some() && !c.draining && !c.peer_draining
        }),
        Timer::Maintenance => true,
        Timer::ResumeRead { conn, serial } => conn_is(conn, serial, |c| {
            c.session.as_ref().is_some_and(Session::is_waiting)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redial_delay_doubles_to_its_cap_and_stays_within_jitter_bounds() {
        let config = PeersConfig::default();
        let mut rng = Rng::derive(1, Stream::Peers, None);
        for failures in 0..40 {
            let full = (config.redial_backoff_min.as_micros() << failures.min(20))
                .min(config.redial_backoff_max.as_micros());
            let d = redial_delay(&config, failures, &mut rng).as_micros();
            assert!(d >= full / 2 && d <= full, "{failures}: {d} vs {full}");
        }
    }
}
#[cfg(test)]
mod layout_tests {
    use core::mem::size_of;

    /// A chord member holds ~38 connections, a link and a liveness timer
    /// or two per peer: their sizes are memory per member. A field that
    /// grows one of them past these fails here, so the change is made on
    /// purpose (benches/README.md, "Where a chord member's memory goes").
    #[test]
    fn per_link_records_keep_their_size() {
        // 112: the allocator's 112-byte class (mimalloc's; glibc's chunk of
        // 128 with its header), was 152 (the 160-byte class); the
        // handshake's fields in their own record, only while handshaking,
        // the remote address in 16 bytes, the session's frame reader in 8
        // (a frame under way in a side record, the cap in the session),
        // and a preamble that comes in pieces in the session's side record.
        assert_eq!(size_of::<super::Connection>(), 112);
        assert_eq!(size_of::<super::RemoteAddr>(), 16);
        // A peer cache entry (a chord member holds ~46, guests included):
        // its listen addresses in 16 bytes.
        assert_eq!(size_of::<super::cache::Addrs>(), 16);
        // 40: its cell a `u32` with a sentinel, its failures a saturating
        // `u16`, its four flags one byte.
        assert_eq!(size_of::<super::cache::CacheEntry>(), 40);
        assert!(size_of::<super::Handshake>() <= 24);
        assert_eq!(size_of::<crate::wire::FrameReader>(), 8);
        assert_eq!(size_of::<Option<crate::session::Session>>(), 48);
        assert_eq!(size_of::<super::PeerLink>(), 64);
        // 20 bytes aligned to 4 (the id as bytes, one 32-bit word), so
        // that with a 32-bit sequence number an entry is 32 bytes, was 40.
        assert_eq!(size_of::<crate::liveness::QueuedTimer>(), 20);
        assert_eq!(
            size_of::<crate::timer::Entry<crate::liveness::QueuedTimer>>(),
            32
        );
        // A node holds a dozen queues (a chord member's ring three more):
        // the heap, the last sequence number, the sweep's mark.
        assert_eq!(size_of::<crate::timer::DeadlineQueue<u8>>(), 40);
    }

    /// Every node pays for its `Node` record, held inline in the
    /// simulator's node vector (a million of them in the largest flood):
    /// benches/README.md, "A node's fixed cost".
    #[test]
    fn a_node_keeps_its_fixed_size() {
        // The identity: its 32 secret bytes and the public key, where the
        // expanded signing key took 224 (the whole identity 256).
        assert_eq!(size_of::<crate::Identity>(), 64);
        assert_eq!(size_of::<super::Net>(), 1_440);
        // 2,400 before the identity's cut; messaging (232 bytes) boxed on
        // first use.
        assert_eq!(size_of::<crate::Node>(), 1_984);
    }
}
