//! The discrete-event engine: real [`ringmesh::Node`]s on a simulated
//! network, in virtual time, reproducible from one seed.
//!
//! One event queue ordered by `(time, seq)` (`queue.rs`: a calendar of
//! microsecond buckets, a heap beyond its horizon); ties fire in
//! scheduling order.
//! Nodes live in a `Vec` indexed by a compact [`NodeIdx`]; node `i` listens
//! on [`addr_of`]`(i)`, a virtual address in 127.0.0.0/8 that is never
//! dialled for real.
//!
//! The network model ([`NetModel`]) gives the transport the protocol
//! assumes (spec/wire.md §1: reliable, ordered, connection-oriented byte
//! streams): per-connection FIFO even with jitter, dials that connect or
//! fail, and these faults:
//!
//! | fault | what the peers see |
//! |---|---|
//! | [`Sim::kill`] (process killed) | their connections reset (`Input::Closed { Reset }`) one latency later; dials refused |
//! | [`Sim::crash`] (silent crash) | nothing: bytes to it vanish, dials time out; only liveness reveals it |
//! | [`Sim::restart`] | the node comes back with the same identity and a fresh seed and state, and rejoins through its bootstrap list |
//! | [`Sim::partition`] | bytes across groups vanish (those connections stay broken after the heal, as TCP's would); dials across groups time out |
//! | [`Sim::partition_one_way`] | bytes from one set to another vanish, the other way they flow; dials between them time out |
//! | [`Sim::flap_link`], [`Sim::flap_node`] | the link goes down for a while: bytes are held and arrive after it is back (TCP retransmits); connections survive |
//! | [`Sim::delay_link`], [`Sim::delay_node`] | for a while, bytes take longer (a lossy path's retransmissions) |
//! | [`Sim::run_churn`] | Poisson joins and leaves (crashes or kills) for a while |
//! | [`Sim::put_behind_nat`] | the node sits behind a NAT ([`NatType`], `nat.rs`): its private address times out, it is seen at its NAT's address, only mappings let dials in; `DialFromListenPort`s that cross make one connection (cone NATs) |
//!
//! Beyond one latency for every link, [`NetModel::links`] gives per-pair
//! latency from regions ([`LatencyModel::geo`], or a matrix file) and
//! [`NetModel::upload`] per-node upload bandwidth with queueing (`net.rs`).
//!
//! Every random choice (latency jitter, regions, upload rates, identities,
//! node seeds, churn) is drawn from streams derived from
//! [`SimConfig::seed`], and a trace hash
//! covers every input delivered to every node, so equal seeds give equal
//! hashes and a changed run shows in the hash.

mod app;
mod churn;
mod conns;
mod memo_check;
mod nat;
mod net;
mod queue;
mod trace;

use bytes::Bytes;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::{
    Accepted, Command, CommandError, Config, ConnId, Direction, Duration, Event, Identity, Input,
    Instant, MessagingCommand, MessagingEvent, Node, NodeId, Output, PeersCommand, TransportError,
};
use std::collections::VecDeque;

pub use app::{App, AppCx, AppFactory};
pub use churn::{Churn, ChurnLog};
pub use nat::{
    MAX_MAPPINGS, MAX_PENDING_PUNCHES, NatStats, NatType, PUNCH_WINDOW, nat_owner, public_ip,
};
pub use net::{GEO_REGIONS_CSV, LatencyModel, Regions, RegionsError, Upload};
pub use trace::TraceHash;

/// A node's index in a [`Sim`].
pub type NodeIdx = u32;

/// The listen address of node `i`: `127.a.b.c:7000` with `a.b.c` = `i + 1`
/// (up to 16,777,214 nodes).
pub fn addr_of(i: NodeIdx) -> SocketAddr {
    let n = i + 1;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8)),
        7000,
    )
}

/// The node listening on `addr`, if it is a simulator address.
pub fn index_of(addr: SocketAddr) -> Option<NodeIdx> {
    match addr {
        SocketAddr::V4(v4) if v4.port() == 7000 => {
            let [a, b, c, d] = v4.ip().octets();
            let n = (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d);
            (a == 127 && n > 0).then(|| n - 1)
        }
        _ => None,
    }
}

/// The network's behaviour.
///
/// The default is one latency with uniform jitter for every link, no
/// bandwidth limit and no fault; [`NetModel::links`] and
/// [`NetModel::upload`] turn on per-pair latency and per-node upload
/// queues (`net.rs`), and the [`Sim`] methods [`Sim::partition_one_way`],
/// [`Sim::flap_link`], [`Sim::flap_node`], [`Sim::delay_link`] and
/// [`Sim::delay_node`] inject faults at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetModel {
    /// One-way latency of every link under [`LatencyModel::Uniform`] (and
    /// of a refused or unreachable dial's answer under any model).
    pub latency: Duration,
    /// Extra one-way delay, uniform in `0..=jitter`, drawn per send; a
    /// connection never reorders (a later send never overtakes).
    pub jitter: Duration,
    /// How long a dial to a crashed or partitioned node takes to fail
    /// (`TransportError::TimedOut`).
    pub dial_timeout: Duration,
    /// Where per-link latency comes from (default: `latency` for every
    /// link).
    pub links: LatencyModel,
    /// Per-node upload bandwidth with queueing (default: unlimited).
    pub upload: Option<Upload>,
}

impl NetModel {
    /// The longest one-way latency of any link before jitter, queueing and
    /// faults: `latency` under [`LatencyModel::Uniform`], the largest
    /// region-to-region figure plus two of the longest access links under
    /// [`LatencyModel::Regions`]. For bounds that must hold on every link.
    pub fn max_latency(&self) -> Duration {
        match &self.links {
            LatencyModel::Uniform => self.latency,
            LatencyModel::Regions { regions, access } => {
                let n = regions.len();
                let worst = (0..n * n)
                    .map(|k| regions.one_way(k / n, k % n))
                    .max()
                    .unwrap_or(Duration::ZERO);
                worst + access.1.max(access.0).saturating_mul(2)
            }
        }
    }
}

impl Default for NetModel {
    fn default() -> Self {
        NetModel {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            dial_timeout: Duration::from_secs(3),
            links: LatencyModel::Uniform,
            upload: None,
        }
    }
}

/// What a simulation is built from.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one seed every random choice derives from.
    pub seed: u64,
    /// The network model.
    pub net: NetModel,
    /// Answer every `Event::Messaging(MessagingEvent::Request)` with a `Response` echoing its payload
    /// (so request scenarios need no application). The engine answers
    /// after the node's [`App`] has seen the request: turn this off when
    /// an application answers requests itself.
    pub echo_requests: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            net: NetModel::default(),
            echo_requests: true,
        }
    }
}

/// Sees every event the nodes emit, in order.
pub trait Observer {
    /// `node` emitted `event` at `at`.
    fn on_event(&mut self, at: Instant, node: NodeIdx, event: &Event);
}

impl Observer for () {
    fn on_event(&mut self, _: Instant, _: NodeIdx, _: &Event) {}
}

/// Keeps every event (for tests and small runs).
#[derive(Debug, Default)]
pub struct Recorder {
    /// Every event: time, node, event.
    pub events: Vec<(Instant, NodeIdx, Event)>,
}

impl Observer for Recorder {
    fn on_event(&mut self, at: Instant, node: NodeIdx, event: &Event) {
        self.events.push((at, node, event.clone()));
    }
}

/// A node's state in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Up,
    /// Crashed silently; may restart.
    Crashed,
    /// Killed (its connections were reset); may restart.
    Killed,
}

/// What the engine reads of a node at every event (is it the incarnation
/// an input was sent to, is it reachable, which timer it has): kept apart
/// from the [`Node`] itself, in a vector of its own, so that these reads
/// hit a few megabytes that stay in cache rather than the first line of a
/// multi-kilobyte node not seen for thousands of events.
struct SimNode {
    /// The `Timer` event scheduled for it, if any.
    timer_at: Option<Instant>,
    /// Next id for connections it accepts.
    next_inbound: u64,
    /// Incremented at each restart: its seed and its connections change.
    incarnation: u32,
    /// Partition group.
    group: u16,
    state: NodeState,
}

/// What the engine reads of a node only when it is added, restarted or
/// asked about.
struct NodeRecord {
    /// Its config without its listen address (`addr_of` its index), for
    /// restarts: shared by the nodes added with equal configs.
    config: std::sync::Arc<Config>,
    id: NodeId,
}

/// One end of a simulated connection, keyed by (node, its `ConnId`): 24
/// bytes (the flag `broken` in the incarnation's top bit, where a `bool`
/// of its own made the end 32; a chord member holds ~37 ends).
#[derive(Debug, Clone, Copy)]
struct ConnEnd {
    peer: NodeIdx,
    /// The incarnation of `peer` this connection reaches (the low 31
    /// bits: a node restarts far fewer than 2^31 times), and in the top
    /// bit whether bytes sent this way vanish (partitioned or crashed
    /// peer). Read through [`ConnEnd::peer_incarnation`] and
    /// [`ConnEnd::broken`].
    incarnation_broken: u32,
    peer_conn: ConnId,
    /// Arrival time of the last bytes sent this way (per-connection FIFO).
    last_arrival: Instant,
}

/// [`ConnEnd::incarnation_broken`]'s flag.
const BROKEN: u32 = 1 << 31;

impl ConnEnd {
    /// The end of a new connection to `peer`'s `peer_conn`, in its
    /// incarnation `peer_incarnation`.
    fn new(peer: NodeIdx, peer_conn: ConnId, peer_incarnation: u32) -> Self {
        assert!(peer_incarnation < BROKEN, "2^31 restarts of one node");
        ConnEnd {
            peer,
            incarnation_broken: peer_incarnation,
            peer_conn,
            last_arrival: Instant::ZERO,
        }
    }

    /// The incarnation of the peer this connection reaches.
    fn peer_incarnation(&self) -> u32 {
        self.incarnation_broken & !BROKEN
    }

    /// Bytes sent this way vanish.
    fn broken(&self) -> bool {
        self.incarnation_broken & BROKEN != 0
    }

    /// From now on bytes sent this way vanish.
    fn set_broken(&mut self) {
        self.incarnation_broken |= BROKEN;
    }
}

/// One end of a connection being made: which node, its `ConnId` and
/// incarnation, and the `Connected` it is told (whom it sees, which way).
struct End {
    node: NodeIdx,
    conn: ConnId,
    incarnation: u32,
    remote: SocketAddr,
    direction: Direction,
}

impl End {
    fn new(
        node: NodeIdx,
        conn: ConnId,
        incarnation: u32,
        remote: SocketAddr,
        direction: Direction,
    ) -> Self {
        End {
            node,
            conn,
            incarnation,
            remote,
            direction,
        }
    }
}

enum Ev {
    /// An input arrives at a node (if it is still the same incarnation).
    Deliver {
        node: NodeIdx,
        incarnation: u32,
        input: Input,
    },
    /// A node's deadline.
    Timer { node: NodeIdx },
    /// An application timer (`app.rs`), if the application that armed it
    /// is still the node's.
    AppTimer {
        node: NodeIdx,
        epoch: u32,
        token: u64,
    },
    /// A dial from the listen port that no crossing dial met (`nat.rs`)
    /// fails, if it still waits.
    PunchExpire { node: NodeIdx, conn: ConnId },
}

/// Counters of a run (the `sim` object of a scenario file's JSON report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// Events processed (deliveries and timers).
    pub events: u64,
    /// Node deadlines that came due after the node had withdrawn them
    /// (nothing due at the wake): the wake moved to the node's present
    /// deadline without calling it.
    pub timers_withdrawn: u64,
    /// Inputs delivered to nodes.
    pub deliveries: u64,
    /// Sends that vanished (crashed or partitioned peers, broken links).
    pub lost_sends: u64,
    /// Bytes delivered.
    pub bytes: u64,
}

/// The simulation. See the module docs.
pub struct Sim<O: Observer = ()> {
    config: SimConfig,
    now: Instant,
    queue: queue::EventQueue<Ev>,
    nodes: Vec<SimNode>,
    /// The state machines, by index (`None` while crashed or killed).
    machines: Vec<Option<Node>>,
    records: Vec<NodeRecord>,
    /// Every connection end, by node (`conns.rs`).
    conns: conns::ConnTable,
    net_rng: ChaCha8Rng,
    /// Per-pair latency, uplink queues and link faults (`net.rs`).
    net: net::NetState,
    /// NATs, when any node sits behind one (`nat.rs`).
    nat: nat::NatState,
    trace: TraceHash,
    stats: SimStats,
    /// Deliveries in the queue (timers excluded), for [`Sim::settle`].
    in_flight: u64,
    observer: O,
    /// The config of the last node added (most share one).
    last_config: Option<std::sync::Arc<Config>>,
    /// The signature check every node shares (`memo_check.rs`).
    signature_check: std::sync::Arc<memo_check::MemoCheck>,
    /// Every node's index by id ([`Sim::index_of_id`]).
    ids: HashMap<NodeId, NodeIdx, FixedState>,
    /// The applications, by index (`app.rs`): empty until one is
    /// installed, so a run without applications never looks further.
    apps: Vec<app::AppSlot>,
    /// Makes each node's application ([`Sim::set_apps`]).
    app_factory: Option<AppFactory>,
    /// The outputs of the node call in hand: the nodes write into it
    /// (`Node::handle_input_into`), one allocation for the whole run.
    outputs: VecDeque<Output>,
    /// Wall-clock time spent in the event loops ([`Sim::loop_wall`]).
    loop_wall: std::time::Duration,
}

/// Node `i`'s identity secret in a simulation seeded with `seed`.
fn secret_of(seed: u64, i: NodeIdx) -> [u8; 32] {
    let mut material = [0u8; 12];
    material[..8].copy_from_slice(&seed.to_le_bytes());
    material[8..].copy_from_slice(&i.to_le_bytes());
    blake3::derive_key("ringmesh-sim v1 identity", &material)
}

fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(blake3::derive_key(
        &format!("ringmesh-sim v1 {name}"),
        &seed.to_le_bytes(),
    ))
}

impl Sim<()> {
    /// An empty simulation without an observer.
    pub fn new(config: SimConfig) -> Self {
        Sim::with_observer(config, ())
    }
}

impl<O: Observer> Sim<O> {
    /// An empty simulation whose events go to `observer`.
    pub fn with_observer(config: SimConfig, observer: O) -> Self {
        Sim {
            net_rng: stream(config.seed, "network"),
            net: net::NetState::new(&config.net, stream(config.seed, "network nodes")),
            nat: nat::NatState::default(),
            config,
            now: Instant::ZERO,
            queue: queue::EventQueue::new(),
            nodes: Vec::new(),
            machines: Vec::new(),
            records: Vec::new(),
            conns: conns::ConnTable::default(),
            trace: TraceHash::new(),
            stats: SimStats::default(),
            in_flight: 0,
            observer,
            signature_check: std::sync::Arc::default(),
            last_config: None,
            ids: HashMap::with_hasher(FixedState::with_seed(0x1d5)),
            apps: Vec::new(),
            app_factory: None,
            outputs: VecDeque::new(),
            loop_wall: std::time::Duration::ZERO,
        }
    }

    /// Reserves room for `nodes` more nodes, so large runs do not pay for
    /// (and peak at) the doubling of big tables. Connections need no
    /// reserving: each node keeps its own (`conns.rs`).
    pub fn reserve(&mut self, nodes: usize) {
        self.nodes.reserve_exact(nodes);
        self.machines.reserve_exact(nodes);
        self.records.reserve_exact(nodes);
        self.ids.reserve(nodes);
        self.conns.reserve_nodes(nodes);
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// The trace hash so far (see [`TraceHash`]).
    pub fn trace_hash(&self) -> String {
        self.trace.hex()
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The observer, to read or reset what it gathered.
    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// Nodes ever added (any state).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s state.
    pub fn state(&self, i: NodeIdx) -> NodeState {
        self.nodes[i as usize].state
    }

    /// Node `i`'s id (stable across restarts).
    pub fn id(&self, i: NodeIdx) -> NodeId {
        self.records[i as usize].id
    }

    /// The index of the node whose id is `id` (any state), from a map the
    /// engine keeps as nodes are added.
    pub fn index_of_id(&self, id: &NodeId) -> Option<NodeIdx> {
        self.ids.get(id).copied()
    }

    /// The node listening on `addr`, if it is one of this simulation's.
    pub fn index_of(&self, addr: SocketAddr) -> Option<NodeIdx> {
        index_of(addr).filter(|&i| (i as usize) < self.nodes.len())
    }

    /// Node `i`, if it is up.
    pub fn node(&self, i: NodeIdx) -> Option<&Node> {
        self.machines[i as usize].as_ref()
    }

    /// Node `i`, if it is up, to call a setter on before the run starts
    /// (a blob store, say); inputs and commands go through the `Sim`.
    pub fn node_mut(&mut self, i: NodeIdx) -> Option<&mut Node> {
        self.machines[i as usize].as_mut()
    }

    /// Indices of the nodes that are up.
    pub fn live_nodes(&self) -> Vec<NodeIdx> {
        (0..self.nodes.len() as NodeIdx)
            .filter(|&i| self.nodes[i as usize].state == NodeState::Up)
            .collect()
    }

    /// Adds a node running `config` (its listen address is set to
    /// [`addr_of`] its index). Its identity and seed derive from the
    /// simulation seed and its index.
    pub fn add_node(&mut self, config: Config) -> Result<NodeIdx, ringmesh::ConfigError> {
        let i = self.nodes.len() as NodeIdx;
        let identity = Identity::from_secret_bytes(self.secret_of(i));
        self.add_node_with(config, identity)
    }

    /// Adds `count` nodes running `config`, as many [`Sim::add_node`]
    /// calls would (the same identities, seeds and trace), but derives
    /// their identities (an Ed25519 public key each, the costly part of
    /// adding a node) on every core the machine offers, a batch at a time,
    /// the next batch's while this thread builds the nodes of the last.
    /// Each identity is a pure function of the simulation seed and the
    /// node's index, so the threads change nothing but the wall time.
    pub fn add_nodes(
        &mut self,
        config: &Config,
        count: u32,
        mut progress: impl FnMut(u32),
    ) -> Result<core::ops::Range<NodeIdx>, ringmesh::ConfigError> {
        const BATCH: u32 = 8192;
        let first = self.nodes.len() as NodeIdx;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let seed = self.config.seed;
        std::thread::scope(|scope| {
            // The identities of nodes `from..from + batch`, on `threads`
            // threads, in index order once joined.
            let derive = |from: u32, batch: u32| {
                let secrets: Vec<[u8; 32]> = (0..batch)
                    .map(|k| secret_of(seed, first + from + k))
                    .collect();
                let chunk = secrets.len().div_ceil(threads).max(1);
                secrets
                    .chunks(chunk)
                    .map(|part| {
                        let part = part.to_vec();
                        scope.spawn(move || {
                            part.into_iter()
                                .map(Identity::from_secret_bytes)
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect::<Vec<_>>()
            };
            let mut done = 0;
            let mut deriving = derive(0, BATCH.min(count));
            while done < count {
                let batch = BATCH.min(count - done);
                let identities: Vec<Identity> = deriving
                    .drain(..)
                    .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect();
                if done + batch < count {
                    deriving = derive(done + batch, BATCH.min(count - done - batch));
                }
                for identity in identities {
                    self.add_node_with(config.clone(), identity)?;
                }
                done += batch;
                progress(done);
            }
            Ok(first..first + count)
        })
    }

    /// Node `i`'s identity secret: from the simulation seed and `i`.
    fn secret_of(&self, i: NodeIdx) -> [u8; 32] {
        secret_of(self.config.seed, i)
    }

    fn add_node_with(
        &mut self,
        mut config: Config,
        identity: Identity,
    ) -> Result<NodeIdx, ringmesh::ConfigError> {
        let i = self.nodes.len() as NodeIdx;
        config.listen_addrs.clear();
        // Simulated addresses are a numbering, not networks: 256 nodes share
        // each "/24", and a whole network joins in the same second, which
        // per-group caps and handshake rates would throttle. A config that
        // keeps the default admission control runs without it (it is tested
        // over real sockets, node/tests/admission.rs); one that sets its own
        // keeps it.
        if config.peers.admission == ringmesh::AdmissionConfig::default() {
            config.peers.admission = ringmesh::AdmissionConfig::unlimited();
        }
        let shared = match &self.last_config {
            Some(last) if **last == config => last.clone(),
            _ => std::sync::Arc::new(config),
        };
        self.last_config = Some(shared.clone());
        let id = identity.node_id();
        let mut node = Node::with_shared_config(
            shared.clone(),
            &[addr_of(i)],
            identity,
            self.node_seed(i, 0),
            self.now,
        )?;
        node.set_signature_check(self.signature_check.clone());
        self.nodes.push(SimNode {
            state: NodeState::Up,
            timer_at: None,
            next_inbound: 0,
            incarnation: 0,
            group: 0,
        });
        self.machines.push(Some(node));
        self.records.push(NodeRecord { config: shared, id });
        self.net.add_node(i);
        self.ids.insert(id, i);
        self.after_node_call(i);
        if self.app_factory.is_some() {
            self.install_from_factory(i);
        }
        Ok(i)
    }

    fn node_seed(&self, i: NodeIdx, incarnation: u32) -> u64 {
        let mut material = [0u8; 16];
        material[..8].copy_from_slice(&self.config.seed.to_le_bytes());
        material[8..12].copy_from_slice(&i.to_le_bytes());
        material[12..].copy_from_slice(&incarnation.to_le_bytes());
        let key = blake3::derive_key("ringmesh-sim v1 node seed", &material);
        u64::from_le_bytes(key[..8].try_into().unwrap_or_default())
    }

    /// Gives node `i` a command now. `Err(ShutDown)` if the node is not up.
    pub fn command(
        &mut self,
        i: NodeIdx,
        command: impl Into<Command>,
    ) -> Result<Accepted, CommandError> {
        let now = self.now;
        let Some(node) = self.machines[i as usize].as_mut() else {
            return Err(CommandError::ShutDown);
        };
        let result = node.command_into(now, command, &mut self.outputs);
        self.after_node_call(i);
        result
    }

    /// Node `a` dials node `b`, demanding `b`'s id.
    pub fn connect(&mut self, a: NodeIdx, b: NodeIdx) -> Result<Accepted, CommandError> {
        let peer = Some(self.id(b));
        self.command(
            a,
            PeersCommand::Connect {
                addr: addr_of(b),
                peer,
            },
        )
    }

    /// Crashes node `i` silently: it stops; nobody is told.
    pub fn crash(&mut self, i: NodeIdx) {
        self.stop(i, NodeState::Crashed);
    }

    /// Kills node `i`: it stops and every connection it had resets.
    pub fn kill(&mut self, i: NodeIdx) {
        self.stop(i, NodeState::Killed);
    }

    fn stop(&mut self, i: NodeIdx, state: NodeState) {
        let n = &mut self.nodes[i as usize];
        if n.state != NodeState::Up {
            return;
        }
        n.state = state;
        n.timer_at = None;
        self.machines[i as usize] = None;
        self.drop_app(i);
        for (conn, end) in self.conns.take_node(i) {
            match state {
                NodeState::Killed => {
                    self.remove_peer_end(end);
                    let at = self.arrival(i, end.peer, conn, 0);
                    let input = Input::Closed {
                        conn: end.peer_conn,
                        reason: TransportError::Reset,
                    };
                    self.deliver_at(at, end.peer, end.peer_incarnation(), input);
                }
                _ => {
                    // The peer's end stays, writing into the void.
                    if let Some(other) = self.conns.get_mut(end.peer, end.peer_conn) {
                        other.set_broken();
                    }
                }
            }
        }
    }

    /// Removes the far end of a connection, but only while it belongs to the
    /// incarnation this end reached: a restarted peer may reuse the same
    /// connection id for a new connection, which must survive.
    fn remove_peer_end(&mut self, end: ConnEnd) {
        if self.nodes[end.peer as usize].incarnation == end.peer_incarnation() {
            self.conns.remove(end.peer, end.peer_conn);
        }
    }

    /// Restarts a crashed or killed node with the same identity, a fresh
    /// seed and empty state; it rejoins through its bootstrap list.
    pub fn restart(&mut self, i: NodeIdx) -> Result<(), ringmesh::ConfigError> {
        let n = &mut self.nodes[i as usize];
        if n.state == NodeState::Up {
            return Ok(());
        }
        n.incarnation += 1;
        let seed = self.node_seed(i, self.nodes[i as usize].incarnation);
        let identity = Identity::from_secret_bytes(self.secret_of(i));
        let config = self.records[i as usize].config.clone();
        let mut node = Node::with_shared_config(config, &[addr_of(i)], identity, seed, self.now)?;
        node.set_signature_check(self.signature_check.clone());
        self.machines[i as usize] = Some(node);
        let n = &mut self.nodes[i as usize];
        n.state = NodeState::Up;
        n.next_inbound = 0;
        self.after_node_call(i);
        if self.app_factory.is_some() {
            self.install_from_factory(i);
        }
        Ok(())
    }

    /// Splits the network: node `i` goes to group `groups[i]` (nodes past
    /// the end stay in group 0). Bytes and dials across groups vanish.
    pub fn partition(&mut self, groups: &[u16]) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.group = groups.get(i).copied().unwrap_or(0);
        }
    }

    /// Ends every partition, one-way cuts included. Connections broken by
    /// them stay broken.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
        self.net.heal_cuts();
    }

    /// An asymmetric partition: from now until [`Sim::heal`], bytes from
    /// any node of `senders` to any node of `receivers` vanish, while the
    /// other direction still flows (the receivers hear nothing from the
    /// senders; the senders still hear the receivers). A connection that
    /// loses bytes this way stays broken that way after the heal, as with
    /// [`Sim::partition`] (TCP would have given up on the unacknowledged
    /// bytes); dials between the two sides time out (a handshake needs both
    /// directions). Nodes added later are outside the cut. Up to 32 cuts
    /// at once; `false` (and nothing cut) past that. Panics if an index is
    /// not a node's.
    pub fn partition_one_way(&mut self, senders: &[NodeIdx], receivers: &[NodeIdx]) -> bool {
        self.net.cut_one_way(self.nodes.len(), senders, receivers)
    }

    /// A link flap: the link between `a` and `b` goes down now for
    /// `down_for`, both ways, and comes back.
    ///
    /// What TCP does on such an outage, shorter than its retransmission
    /// give-up (minutes), is retransmit: the connection survives and the
    /// bytes arrive late, in order. So a flap breaks no connection: bytes
    /// sent while the link is down are held and arrive one latency after it
    /// is back (bytes already in flight when it went down still arrive on
    /// time); closes are held the same way. A dial across the link times
    /// out if the link stays down past [`NetModel::dial_timeout`], and
    /// completes after it is back otherwise. An outage that should break
    /// connections is a [`Sim::partition`].
    pub fn flap_link(&mut self, a: NodeIdx, b: NodeIdx, down_for: Duration) {
        self.net.down(a, Some(b), self.now + down_for);
    }

    /// A flap of every link of node `i` (its network interface goes down
    /// for `down_for`), with the effect of [`Sim::flap_link`] on each.
    pub fn flap_node(&mut self, i: NodeIdx, down_for: Duration) {
        self.net.down(i, None, self.now + down_for);
    }

    /// A delay spike: for `lasting` from now, bytes sent between `a` and
    /// `b` (both ways) take `extra` longer, as on a lossy path where TCP
    /// retransmits; connections never reorder, so later bytes queue behind
    /// delayed ones even after the spike. Spikes on one link add up.
    pub fn delay_link(&mut self, a: NodeIdx, b: NodeIdx, extra: Duration, lasting: Duration) {
        self.net.delay(a, Some(b), extra, self.now + lasting);
    }

    /// A delay spike on every link of node `i` (see [`Sim::delay_link`]).
    pub fn delay_node(&mut self, i: NodeIdx, extra: Duration, lasting: Duration) {
        self.net.delay(i, None, extra, self.now + lasting);
    }

    /// Node `i`'s region (index and name) under [`LatencyModel::Regions`].
    pub fn region_of(&self, i: NodeIdx) -> Option<(usize, &str)> {
        self.net.region(i)
    }

    /// Node `i`'s upload rate in bytes per second, if [`NetModel::upload`]
    /// limits it.
    pub fn upload_of(&self, i: NodeIdx) -> Option<u64> {
        self.net.upload_of(i)
    }

    /// The one-way latency from `a` to `b` under the model, before jitter,
    /// queueing and faults.
    pub fn latency_between(&self, a: NodeIdx, b: NodeIdx) -> Duration {
        self.pair_latency(a, b)
    }

    /// Puts node `i` behind a NAT of type `kind` of its own (`nat.rs`):
    /// from then on its listen address is private (dials to it time out),
    /// its dials out come from [`public_ip`]`(i)` and a port its NAT picks,
    /// and only what that NAT's mappings let in reaches it. Call it before
    /// the node dials anything. `false` (nothing changed) when `i` is
    /// beyond the NAT address range. With no node behind a NAT the engine
    /// runs exactly as it did before NATs were modelled.
    pub fn put_behind_nat(&mut self, i: NodeIdx, kind: NatType) -> bool {
        self.nat.put_behind(i, kind)
    }

    /// Node `i`'s NAT type, if it sits behind one.
    pub fn nat_of(&self, i: NodeIdx) -> Option<NatType> {
        self.nat.kind(i)
    }

    /// Maps node `i`'s listen port on its NAT, as UPnP would: anyone can
    /// now dial it at the returned address (its NAT's public IP, port
    /// 7000), which the node should announce (`PeersCommand::Announce`).
    /// `None` if `i` is not behind a NAT.
    pub fn map_port(&mut self, i: NodeIdx) -> Option<SocketAddr> {
        self.nat.map_port(i)
    }

    /// Whether node `i`'s listen port is mapped on its NAT.
    pub fn port_mapped(&self, i: NodeIdx) -> bool {
        self.nat.port_mapped(i)
    }

    /// The NAT model's counters.
    pub fn nat_stats(&self) -> NatStats {
        self.nat.stats
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.queue.push(at, self.now, ev);
    }

    fn deliver_at(&mut self, at: Instant, node: NodeIdx, incarnation: u32, input: Input) {
        self.in_flight += 1;
        self.push(
            at,
            Ev::Deliver {
                node,
                incarnation,
                input,
            },
        );
    }

    /// When `bytes` bytes sent now from `from` to `to` on `conn` arrive:
    /// latency plus jitter (plus, under a richer model, the wait for the
    /// sender's uplink and any fault's delay), never before what was sent
    /// earlier on that connection.
    fn arrival(&mut self, from: NodeIdx, to: NodeIdx, conn: ConnId, bytes: usize) -> Instant {
        let net = &self.config.net;
        let jitter = match net.jitter.as_micros() {
            0 => 0,
            j => self.net_rng.next_u64() % (j + 1),
        };
        let jitter = Duration::from_micros(jitter);
        let mut at = if self.net.active() {
            self.model_arrival(from, to, bytes, jitter)
        } else {
            self.now + net.latency + jitter
        };
        if let Some(end) = self.conns.get_mut(from, conn) {
            at = at.max(end.last_arrival);
            end.last_arrival = at;
        }
        at
    }

    /// [`Sim::arrival`] under a richer model: the bytes leave when the
    /// sender's uplink has sent them, travel the pair's latency plus any
    /// delay spike, and a flapping link holds them until it is back.
    fn model_arrival(
        &mut self,
        from: NodeIdx,
        to: NodeIdx,
        bytes: usize,
        jitter: Duration,
    ) -> Instant {
        let latency = self.net.latency(self.config.net.latency, from, to);
        let leave = self.net.uplink(self.now, from, bytes);
        let mut at = leave + latency + jitter;
        if let net::PathState::Open { extra, held_until } = self.net.path(self.now, from, to) {
            at += extra;
            if let Some(back) = held_until {
                at = at.max(back + latency + extra);
            }
        }
        at
    }

    /// Whether a one-way cut drops bytes from `from` to `to` now.
    fn cut(&mut self, from: NodeIdx, to: NodeIdx) -> bool {
        self.net.active() && self.net.path(self.now, from, to) == net::PathState::Cut
    }

    /// Whether a dial between `a` and `b` cannot complete within the dial
    /// timeout: a one-way cut either way (the handshake needs both), or a
    /// link that stays down for longer.
    fn dial_blocked(&mut self, a: NodeIdx, b: NodeIdx) -> bool {
        if !self.net.active() {
            return false;
        }
        let give_up = self.now + self.config.net.dial_timeout;
        [(a, b), (b, a)]
            .iter()
            .any(|&(x, y)| match self.net.path(self.now, x, y) {
                net::PathState::Cut => true,
                net::PathState::Open { held_until, .. } => held_until.is_some_and(|t| t >= give_up),
            })
    }

    /// The one-way latency from `from` to `to` before jitter and faults.
    fn pair_latency(&self, from: NodeIdx, to: NodeIdx) -> Duration {
        if self.net.active() {
            self.net.latency(self.config.net.latency, from, to)
        } else {
            self.config.net.latency
        }
    }

    fn reachable(&self, from: NodeIdx, to: NodeIdx) -> bool {
        let (a, b) = (&self.nodes[from as usize], &self.nodes[to as usize]);
        b.state == NodeState::Up && a.group == b.group
    }

    /// Re-reads node `i`'s outputs and deadline after a call.
    ///
    /// The call wrote its outputs into `self.outputs`; what the node queues
    /// while they are carried out (an application's or the echo's command,
    /// made through `Node::command`) is drained after them, the order
    /// `poll_output` gave. A node does not stop while its outputs are
    /// carried out (`on_output` neither crashes nor kills).
    fn after_node_call(&mut self, i: NodeIdx) {
        // Taken, so that `on_output` may borrow the engine; a call made in
        // there that reads its outputs again finds an empty queue of its own.
        let mut outputs = core::mem::take(&mut self.outputs);
        loop {
            while let Some(output) = outputs.pop_front() {
                self.on_output(i, output);
            }
            match self.machines[i as usize].as_mut() {
                Some(node) => node.drain_outputs(&mut outputs),
                None => outputs.clear(),
            }
            if outputs.is_empty() {
                break;
            }
        }
        self.outputs = outputs;
        let next = self.machines[i as usize]
            .as_ref()
            .and_then(|node| node.poll_timeout());
        let n = &mut self.nodes[i as usize];
        if let Some(at) = next
            && n.timer_at.is_none_or(|t| at < t)
        {
            n.timer_at = Some(at);
            self.push(at.max(self.now), Ev::Timer { node: i });
        }
    }

    fn on_output(&mut self, i: NodeIdx, output: Output) {
        let incarnation = self.nodes[i as usize].incarnation;
        match output {
            Output::DialFromListenPort { conn, addr } if self.nat.active() => {
                self.punch(i, conn, addr);
            }
            Output::DialFromListenPort { conn, .. } => {
                // Without NATs there is no simultaneous open to model: a
                // hole punch's dial fails, and the node keeps its relayed
                // session.
                let failed = Input::DialFailed {
                    conn,
                    reason: TransportError::Refused,
                };
                self.deliver_at(self.now, i, incarnation, failed);
            }
            Output::Dial { conn, addr } if self.nat.active() => {
                let source = self.nat.outbound(i, addr, false);
                let target = self.nat.inbound(source, addr);
                self.dial(i, conn, addr, target, source);
            }
            Output::Dial { conn, addr } => {
                let target = index_of(addr).ok_or(false);
                self.dial(i, conn, addr, target, addr_of(i));
            }
            Output::Send { conn, bytes } => self.send(i, conn, bytes),
            Output::Close { conn } => {
                if let Some(end) = self.conns.remove(i, conn) {
                    self.remove_peer_end(end);
                    if !end.broken() && self.reachable(i, end.peer) && !self.cut(i, end.peer) {
                        let at = self.arrival_after(i, end);
                        let closed = Input::Closed {
                            conn: end.peer_conn,
                            reason: TransportError::Eof,
                        };
                        self.deliver_at(at, end.peer, end.peer_incarnation(), closed);
                    }
                }
            }
            Output::Event(event) => {
                self.observer.on_event(self.now, i, &event);
                if !self.apps.is_empty() {
                    // Its commands' outputs are drained by the caller's loop.
                    self.with_app(i, |app, cx| app.on_event(cx, &event));
                }
                if self.config.echo_requests
                    && let Event::Messaging(MessagingEvent::Request { from, id, payload }) = event
                {
                    let respond = MessagingCommand::Respond {
                        to: from,
                        id,
                        payload,
                    };
                    if let Some(node) = self.machines[i as usize].as_mut() {
                        // Queued outputs are drained by the caller's loop.
                        let _ = node.command(self.now, respond);
                    }
                }
            }
        }
    }

    /// Dials from `i` on `conn` to `addr`, which lands at `target`
    /// (`Ok(node)`; `Err(true)`: the SYN vanishes, the dial times out;
    /// `Err(false)`: nobody's address); the accepting end sees the
    /// connection come from `source`.
    fn dial(
        &mut self,
        i: NodeIdx,
        conn: ConnId,
        addr: SocketAddr,
        target: Result<NodeIdx, bool>,
        source: SocketAddr,
    ) {
        let incarnation = self.nodes[i as usize].incarnation;
        let target = target.and_then(|j| {
            if (j as usize) < self.nodes.len() {
                Ok(j)
            } else {
                Err(false)
            }
        });
        match target {
            Ok(j) if self.reachable(i, j) && !self.dial_blocked(i, j) => {
                let inbound = ConnId::inbound(self.nodes[j as usize].next_inbound);
                self.nodes[j as usize].next_inbound += 1;
                let j_incarnation = self.nodes[j as usize].incarnation;
                self.join_ends(
                    End::new(i, conn, incarnation, addr, Direction::Outbound),
                    End::new(j, inbound, j_incarnation, source, Direction::Inbound),
                );
            }
            Ok(j) if self.nodes[j as usize].state == NodeState::Killed => {
                let at = self.now + self.pair_latency(i, j);
                let failed = Input::DialFailed {
                    conn,
                    reason: TransportError::Refused,
                };
                self.deliver_at(at, i, incarnation, failed);
            }
            Ok(_) | Err(true) => {
                // Crashed, partitioned or behind a NAT that drops the SYN:
                // nobody answers.
                let at = self.now + self.config.net.dial_timeout;
                let failed = Input::DialFailed {
                    conn,
                    reason: TransportError::TimedOut,
                };
                self.deliver_at(at, i, incarnation, failed);
            }
            Err(false) => {
                let at = self.now + self.config.net.latency;
                let failed = Input::DialFailed {
                    conn,
                    reason: TransportError::Unreachable,
                };
                self.deliver_at(at, i, incarnation, failed);
            }
        }
    }

    /// Records the two ends of a new connection (`a` dialled) and
    /// delivers each its `Connected` at the time a first byte from `a`
    /// would arrive at `b`.
    fn join_ends(&mut self, a: End, b: End) {
        let end = |other: &End| ConnEnd::new(other.node, other.conn, other.incarnation);
        self.conns.insert(a.node, a.conn, end(&b));
        self.conns.insert(b.node, b.conn, end(&a));
        let at = self.arrival(a.node, b.node, a.conn, 0);
        for e in [a, b] {
            let connected = Input::Connected {
                conn: e.conn,
                remote: e.remote,
                direction: e.direction,
            };
            self.deliver_at(at, e.node, e.incarnation, connected);
        }
    }

    /// A dial from `i`'s listen port to `addr` with NATs on (`nat.rs`):
    /// toward a node not behind a NAT, an ordinary dial; toward a NATed
    /// one, it waits for that node's dial to cross it (a simultaneous
    /// open) and fails after [`PUNCH_WINDOW`] if none does.
    fn punch(&mut self, i: NodeIdx, conn: ConnId, addr: SocketAddr) {
        let incarnation = self.nodes[i as usize].incarnation;
        let source = self.nat.outbound(i, addr, true);
        let Some(j) = self
            .nat
            .owner(addr)
            .filter(|&j| (j as usize) < self.nodes.len())
        else {
            self.dial(i, conn, addr, Err(false), source);
            return;
        };
        if self.nat.kind(j).is_none() {
            let target = self.nat.inbound(source, addr);
            self.dial(i, conn, addr, target, source);
            return;
        }
        let crossing = self.nat.take_crossing(j, i, source, addr, self.now);
        match crossing {
            Some(p)
                if self.nodes[j as usize].incarnation == p.incarnation
                    && self.reachable(i, j)
                    && self.reachable(j, i)
                    && !self.dial_blocked(i, j) =>
            {
                self.nat.stats.punches_ok += 1;
                // A simultaneous open: both ends dialled out.
                self.join_ends(
                    End::new(i, conn, incarnation, addr, Direction::Outbound),
                    End::new(j, p.conn, p.incarnation, p.dialled, Direction::Outbound),
                );
            }
            other => {
                if let Some(p) = other {
                    // Its node restarted or cannot reach this one now.
                    self.punch_failed(p);
                }
                let until = self.now + PUNCH_WINDOW;
                let waiting = nat::Punch {
                    node: i,
                    incarnation,
                    conn,
                    to: j,
                    dialled: addr,
                    source,
                    until,
                };
                if let Some(old) = self.nat.wait(waiting) {
                    self.punch_failed(old);
                }
                self.push(until, Ev::PunchExpire { node: i, conn });
            }
        }
    }

    /// A punch that no crossing dial met fails now (its SYNs went nowhere).
    fn punch_failed(&mut self, p: nat::Punch) {
        self.nat.stats.punches_failed += 1;
        let failed = Input::DialFailed {
            conn: p.conn,
            reason: TransportError::TimedOut,
        };
        self.deliver_at(self.now, p.node, p.incarnation, failed);
    }

    /// The arrival time of a close from `from` after everything sent
    /// before it.
    fn arrival_after(&mut self, from: NodeIdx, end: ConnEnd) -> Instant {
        let at = if self.net.active() {
            self.model_arrival(from, end.peer, 0, Duration::ZERO)
        } else {
            self.now + self.config.net.latency
        };
        at.max(end.last_arrival)
    }

    fn send(&mut self, i: NodeIdx, conn: ConnId, bytes: Bytes) {
        let Some(&end) = self.conns.get(i, conn) else {
            self.stats.lost_sends += 1;
            return;
        };
        if end.broken() || !self.reachable(i, end.peer) || self.cut(i, end.peer) {
            if let Some(e) = self.conns.get_mut(i, conn) {
                e.set_broken();
            }
            self.stats.lost_sends += 1;
            return;
        }
        let at = self.arrival(i, end.peer, conn, bytes.len());
        let input = Input::Received {
            conn: end.peer_conn,
            bytes,
        };
        self.deliver_at(at, end.peer, end.peer_incarnation(), input);
    }

    /// Processes the next event; `false` when nothing is left.
    pub fn step(&mut self) -> bool {
        let Some((at, ev)) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        self.stats.events += 1;
        match ev {
            Ev::Deliver {
                node,
                incarnation,
                input,
            } => {
                self.in_flight -= 1;
                if self.nodes[node as usize].incarnation != incarnation {
                    return true;
                }
                let Some(target) = self.machines[node as usize].as_mut() else {
                    return true;
                };
                self.trace.input(self.now, node, &input);
                self.stats.deliveries += 1;
                if let Input::Received { bytes, .. } = &input {
                    self.stats.bytes += bytes.len() as u64;
                }
                target.handle_input_into(self.now, input, &mut self.outputs);
                self.after_node_call(node);
            }
            Ev::Timer { node } => {
                let n = &mut self.nodes[node as usize];
                if n.timer_at != Some(at) {
                    return true; // superseded by an earlier deadline
                }
                n.timer_at = None;
                if let Some(target) = self.machines[node as usize].as_mut() {
                    // A deadline the node withdrew since (a request
                    // answered, an acknowledgement spared): nothing is due,
                    // so the call is skipped and the wake moved to the
                    // node's present deadline. The node's `poll_timeout`
                    // is exact after each call, and a call with nothing due
                    // changes nothing the node does later.
                    match target.poll_timeout() {
                        Some(next) if next > at => {
                            self.stats.timers_withdrawn += 1;
                            n.timer_at = Some(next);
                            self.push(next, Ev::Timer { node });
                        }
                        None => self.stats.timers_withdrawn += 1,
                        Some(_) => {
                            target.handle_input_into(self.now, Input::Timeout, &mut self.outputs);
                            self.after_node_call(node);
                        }
                    }
                }
            }
            Ev::AppTimer { node, epoch, token } => self.app_timer(node, epoch, token),
            Ev::PunchExpire { node, conn } => {
                if let Some(p) = self.nat.take_pending(node, conn) {
                    self.punch_failed(p);
                }
            }
        }
        true
    }

    /// When the next event in the queue is due (`None` when nothing is
    /// left), so a caller stepping one event at a time (a property checked
    /// after every event, [`crate::check`]) stops at a deadline.
    pub fn next_event_at(&self) -> Option<Instant> {
        self.queue.peek_at()
    }

    /// Wall-clock time spent stepping events inside [`Sim::run_until`],
    /// [`Sim::run_for`] and [`Sim::settle`]: the event loop alone, without
    /// the nodes' creation (their Ed25519 keys), the commands given
    /// between runs, or a caller's own [`Sim::step`] calls. Divide
    /// [`SimStats::events`] by it for the engine's own event rate (exact
    /// when every event ran in those loops, as in the flood scenario).
    /// Reporting only: the run does not depend on it.
    pub fn loop_wall(&self) -> std::time::Duration {
        self.loop_wall
    }

    /// Runs every event up to `deadline`, then sets the clock to it.
    pub fn run_until(&mut self, deadline: Instant) {
        let wall = std::time::Instant::now();
        while self.queue.peek_at().is_some_and(|at| at <= deadline) {
            self.step();
        }
        self.now = self.now.max(deadline);
        self.loop_wall += wall.elapsed();
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Runs until no input is in flight (timers of an idle network do not
    /// keep it going), or until `limit` of virtual time has passed.
    pub fn settle(&mut self, limit: Duration) {
        let deadline = self.now + limit;
        let wall = std::time::Instant::now();
        while self.in_flight > 0 && self.queue.peek_at().is_some_and(|at| at <= deadline) {
            self.step();
        }
        self.loop_wall += wall.elapsed();
    }
}

#[cfg(test)]
mod tests;
