//! The chord scenario: grow a Chord ring by joins, optionally store keys in
//! its table, fail part of it at once, run lookups (optionally under churn)
//! and read the keys back, checking everything against ground truth.
//!
//! # What is checked, and when
//!
//! - **Safety throughout** (spec/chord.md §11): Zave's invariant and the
//!   properties it implies ([`chord_oracle::check`] on
//!   [`RingSnapshot::of_sim`]) every [`CHECK_EVERY`] of virtual time and
//!   right after every failure. Zave's theory covers a ring only once it has
//!   `r + 1` members and has been ideal (§5.2), so the run grows the ring to
//!   `r + 1` members one join at a time, waits until it is ideal ("formed"),
//!   and only then lets joins run concurrently. Checks that fail before that
//!   moment are counted apart ([`ChordReport::forming_violations`]).
//! - **Failures within the contract.** A mass failure is drawn at random,
//!   but redrawn while the state it would leave breaks Zave's invariant
//!   (her `Fail` precondition, §11); a churn failure that would break it is
//!   skipped. If no allowed draw is found, the failure goes ahead and later
//!   violations are counted as outside the contract.
//! - **Lookups against ground truth** when they complete: the owner of a key
//!   is the first live member at or after it, and a result names the first
//!   *live* entry of the list returned (§7.2 step 4: whoever uses the list
//!   walks past dead entries). Under churn a result also counts as correct
//!   if it was the owner when the lookup was issued, or if it is the owner
//!   the ring itself routes to, at issue or at completion: the first ring
//!   member at or after the key, found by following best successors. A
//!   member that just joined, or whose predecessor failed before anyone
//!   else listed it, is an appendage in Zave's sense and not yet
//!   responsible for its keys. Those results are counted in
//!   [`ChordReport::lookup_correct_transitional`].
//! - **Liveness after the faults**: the ring must be ideal again once they
//!   stop, and every key stored outside the failed set must still be
//!   readable.
//!
//! # The run
//!
//! 1. **Build.** Node 0 creates the ring; every other node dials a random
//!    member (not always node 0: no hub) and joins through it. After the
//!    forming phase, joins start at `JOIN_RATE_PER_MEMBER`: a member
//!    learns the joiners in its gap one stabilization round at a time, so
//!    a burst of joins into few gaps would take the ring many rounds to
//!    absorb. A failed or stuck join is retried through another member.
//!    Then the run waits until the ring is ideal.
//! 2. **Fingers.** It runs until `FINGERS_SETTLED` of a sample of
//!    members hold exactly the fingers the ideal ring gives them. One
//!    finger is refreshed per `chord.fix_fingers_interval`, a member needs
//!    about log2(N / r) of them, and those found while the ring grew point
//!    short, so this takes about one pass (20 s of virtual time at 10,000
//!    nodes); it is capped at four.
//! 3. **Keys** (`--keys`): `key-{i}` → `value-{i}` put from random members
//!    at `DHT_RATE`.
//! 4. **Mass failure** (`--fail-fraction`): crash, then run until ideal.
//! 5. **Lookups** of random keys from random members at
//!    `LOOKUP_RATE_PER_MEMBER`, with Poisson churn events meanwhile
//!    (`--churn`).
//! 6. **Quiet**: no more faults; joins under way finish and the ring must
//!    become ideal. With keys, once a repair round (`dht.repair_interval`)
//!    has passed since the last failure, every key is read back from a
//!    random member, and its true holders are asked whether they hold it.
//!
//! Nodes run [`Config::lan`] timings in plaintext, with no random overlay
//! (`target_peers` 0): the ring keeps the links it needs itself. Idle
//! links are pinged every `IDLE_PING_INTERVAL` (5 s), not every second, and
//! the peer cache holds `KNOWN_PEERS` (32) entries (see each for why).
//!
//! The report says where a run went ([`ChordReport::phases`]: wall time,
//! events and virtual time of each phase) and what the members sent;
//! `benches/README.md` ("Chord runs") has the figures.

use std::collections::BTreeMap;
use std::time::Instant as WallClock;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::{HashMap, HashSet};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::wire::PeerEntry;
use ringmesh::{
    Accepted, ChordCommand, ChordConfig, ChordError, ChordEvent, CommandError, Config, DhtCommand,
    DhtConfig, DhtError, DhtEvent, DhtFailure, DhtKey, Duration, Event, Instant, LivenessConfig,
    LookupError, MeshConfig, NodeId, OpId, PeersConfig, PeersEvent, Security,
};

use super::flood::peak_rss_mib;
use crate::chord_oracle::truth::{BestHistory, Truth};
use crate::chord_oracle::{
    self, FailureConstraint, RingSnapshot, in_half_open, key_position, precondition, repair_window,
};
use crate::engine::{NetModel, NodeIdx, NodeState, Observer, Sim, SimConfig};

mod report;

use report::percentile;
pub use report::{ChordReport, Phase};

type Error = Box<dyn std::error::Error>;

/// The engine runs this long between two looks at what the nodes reported.
const SLICE: Duration = Duration::from_millis(10);
/// Period of the scheduled invariant checks.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Lookups issued per member per second of virtual time (at least
/// [`MIN_LOOKUP_RATE`] per second in all).
const LOOKUP_RATE_PER_MEMBER: u64 = 2;
/// The least lookup rate, per second of virtual time.
const MIN_LOOKUP_RATE: u64 = 2000;
/// A node is not given a new lookup while this many of ours are pending on
/// it (well under `chord.max_lookups`).
const MAX_LOOKUPS_PER_NODE: u32 = 50;
/// Puts and gets issued per second of virtual time.
const DHT_RATE: u64 = 500;
/// Once the ring has formed, joins start at this rate per member per
/// second: a member's successor learns one joiner in its gap per
/// stabilization round (it walks back through its successor's
/// predecessors), so the rate keeps the joins into one gap well below one
/// per round, and the ring converges while it grows.
const JOIN_RATE_PER_MEMBER: f64 = 0.25;
/// At most this many joins start per [`SLICE`].
const JOINS_PER_SLICE: usize = 20;
/// A join that has neither joined nor failed after this long is retried
/// through another member (its dial or its via died).
const JOIN_STUCK: Duration = Duration::from_secs(15);
/// How long to wait for the ring to become ideal after the build, after a
/// mass failure, and at the end.
const IDEAL_CAP: Duration = Duration::from_secs(300);
/// Draws of a mass failure before giving up on staying within Zave's
/// failure precondition.
const FAIL_DRAWS: u32 = 50;
/// Nodes whose fingers are compared with the ideal ones.
const FINGER_SAMPLE: usize = 64;
/// The fingers have settled when this fraction of the sample is ideal.
const FINGERS_SETTLED: f64 = 0.9;
/// How far back [`BestHistory`] reaches (far beyond a trip).
const HISTORY: Duration = Duration::from_secs(2);
/// How long a link stays idle before liveness pings it. The ring finds
/// its dead members itself (a first successor by stabilization's request
/// timeout, a predecessor by rectify's probe, a finger by the lookup hop
/// that times out on it), so pings only catch deaths on links nothing
/// uses; and each idle link costs both ends a ping and a pong per
/// interval: at `Config::lan`'s 1 s they were 83% of a settled ring's
/// frames.
const IDLE_PING_INTERVAL: Duration = Duration::from_secs(5);
/// Peer cache entries per node (`peers.max_known_peers`): what lookups
/// taught; the ring keeps its pointers itself.
const KNOWN_PEERS: usize = 32;
/// Examples kept per kind of problem.
const MAX_EXAMPLES: usize = 5;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ChordParams {
    /// Nodes in the ring after the build.
    pub nodes: u32,
    /// Successor list length `r` (`chord.successors`).
    pub r: usize,
    /// Lookups to run.
    pub lookups: u32,
    /// Fraction of the members crashed at once before the lookups.
    pub fail_fraction: f64,
    /// Churn events per second of virtual time during the lookups, half
    /// joins and half failures.
    pub churn: f64,
    /// Keys stored after the build and read back at the end.
    pub keys: u32,
    /// The simulation seed.
    pub seed: u64,
    /// The network model.
    pub net: NetModel,
    /// Fail `fail_fraction` of the members at once as drawn, without
    /// redrawing to keep Zave's failure precondition (spec/chord.md §11):
    /// the ring must merge its pieces again (§6.7).
    pub unconstrained: bool,
    /// Split the network into two random halves for this long (after the
    /// keys are stored and any mass failure is repaired), then heal it: the
    /// two rings must merge into one (§6.7).
    pub partition_for: Option<Duration>,
    /// Found the ring at once instead of growing it by joins: every node
    /// gets `ChordCommand::Found` with only its neighbourhood (its
    /// predecessor, itself and its `r` successors in the ideal ring), from
    /// which it takes its place (spec/chord.md §5.1); no list of all
    /// members is built, so a million members cost `r + 2` entries each.
    /// The fingers start empty and are fixed as in a grown ring.
    pub founded: bool,
}

impl ChordParams {
    /// The command that replays this run.
    pub fn replay(&self) -> String {
        let mut line = format!(
            "ringmesh-sim chord --seed {} --nodes {} --r {} --lookups {} --fail-fraction {} \
             --churn {} --keys {}",
            self.seed, self.nodes, self.r, self.lookups, self.fail_fraction, self.churn, self.keys
        );
        if self.unconstrained {
            line.push_str(" --unconstrained");
        }
        if let Some(d) = self.partition_for {
            line.push_str(&format!(" --partition-for {}ms", d.as_millis()));
        }
        if self.founded {
            line.push_str(" --founded");
        }
        line
    }
}

impl Default for ChordParams {
    fn default() -> Self {
        ChordParams {
            nodes: 1000,
            r: 8,
            lookups: 10_000,
            fail_fraction: 0.0,
            churn: 0.0,
            keys: 0,
            seed: 1,
            net: NetModel::default(),
            unconstrained: false,
            partition_for: None,
            founded: false,
        }
    }
}

/// What the scenario needs from the nodes' events; everything else is
/// dropped as it happens, so memory stays flat.
#[derive(Debug)]
enum Seen {
    /// The member a joiner dialled is up.
    PeerUp,
    Joined,
    JoinFailed,
    Orphaned,
    LookupDone {
        id: OpId,
        successors: Vec<NodeId>,
        hops: u32,
    },
    LookupFailed {
        id: OpId,
        reason: LookupError,
    },
    PutAcked {
        id: OpId,
    },
    GetResult {
        id: OpId,
        value: Option<Bytes>,
    },
    DhtFailed {
        id: OpId,
        reason: DhtFailure,
    },
}

#[derive(Default)]
struct ChordWatch {
    seen: Vec<(Instant, NodeIdx, Seen)>,
    /// Joiner → the member it dialled, until the session is up.
    awaiting: HashMap<NodeIdx, NodeId, FixedState>,
}

impl Observer for ChordWatch {
    fn on_event(&mut self, at: Instant, node: NodeIdx, event: &Event) {
        let seen = match event {
            Event::Peers(PeersEvent::Up { peer, .. }) => {
                if self.awaiting.get(&node) != Some(peer) {
                    return;
                }
                self.awaiting.remove(&node);
                Seen::PeerUp
            }
            Event::Chord(ChordEvent::Joined { .. }) => Seen::Joined,
            Event::Chord(ChordEvent::JoinFailed { .. }) => Seen::JoinFailed,
            Event::Chord(ChordEvent::Orphaned) => Seen::Orphaned,
            Event::Chord(ChordEvent::LookupDone {
                id,
                successors,
                hops,
                ..
            }) => Seen::LookupDone {
                id: *id,
                successors: successors.clone(),
                hops: *hops,
            },
            Event::Chord(ChordEvent::LookupFailed { id, reason, .. }) => Seen::LookupFailed {
                id: *id,
                reason: *reason,
            },
            Event::Dht(DhtEvent::PutDone { id, .. } | DhtEvent::DeleteDone { id, .. }) => {
                Seen::PutAcked { id: *id }
            }
            Event::Dht(DhtEvent::GetDone { id, value, .. }) => Seen::GetResult {
                id: *id,
                value: value.clone(),
            },
            Event::Dht(DhtEvent::Failed { id, reason }) => Seen::DhtFailed {
                id: *id,
                reason: *reason,
            },
            _ => return,
        };
        self.seen.push((at, node, seen));
    }
}

/// A node on its way into the ring.
#[derive(Debug, Clone, Copy)]
struct Joiner {
    via: NodeIdx,
    since: Instant,
    /// Dialled `via`, waiting for the session.
    connecting: bool,
}

/// A lookup in flight.
#[derive(Debug, Clone, Copy)]
struct Issued {
    key: u128,
    at: Instant,
    /// The owner when it was issued, over all members and along the ring
    /// ([`Driver::ring_owner`]).
    owner: Option<u128>,
    ring_owner: Option<u128>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Put {
    Pending,
    Acked,
    Failed,
}

#[derive(Debug, Clone)]
struct Key {
    name: Bytes,
    value: Bytes,
    position: u128,
    put: Put,
    at_risk: bool,
    /// The final get returned the value.
    read_back: Option<bool>,
}

#[derive(Debug, Clone, Copy)]
enum DhtOp {
    Put(usize),
    Get(usize),
}

/// Runs a chord scenario. `progress` is called now and then with (phase,
/// done, total) for a progress bar.
pub fn run(
    params: &ChordParams,
    progress: impl FnMut(&str, u64, u64),
) -> Result<ChordReport, Error> {
    let r = params.r;
    if !(1..=32).contains(&r) {
        return Err("--r must be 1 to 32".into());
    }
    if (params.nodes as usize) < r + 1 {
        return Err(format!("a ring with r = {r} needs at least r + 1 = {} nodes", r + 1).into());
    }
    if !(0.0..1.0).contains(&params.fail_fraction) {
        return Err("--fail-fraction must be in [0, 1)".into());
    }
    let failing = (params.fail_fraction * f64::from(params.nodes)).floor() as usize;
    if params.nodes as usize - failing < r + 1 {
        return Err(format!(
            "--fail-fraction must leave at least r + 1 = {} members",
            r + 1
        )
        .into());
    }
    if !(params.churn.is_finite() && params.churn >= 0.0) {
        return Err("--churn must be a rate ≥ 0".into());
    }
    Driver::new(params, progress).run()
}

struct Driver<'a, P> {
    params: &'a ChordParams,
    progress: P,
    wall: WallClock,
    sim: Sim<ChordWatch>,
    rng: ChaCha8Rng,
    config: Config,
    /// The ring's and the table's settings (`config`'s, always on here).
    chord: ChordConfig,
    dht: DhtConfig,
    truth: Truth,
    joiners: BTreeMap<NodeIdx, Joiner>,
    /// The failure constraint churn failures keep, on the lists as they
    /// are now (mass failures are judged at once, by their draw).
    constraint: FailureConstraint,
    /// Best successors over the last few seconds, kept while lookups run
    /// under churn (without churn the ring does not change under them, and
    /// keeping it costs O(N) a slice).
    history: Option<BestHistory>,
    lookups: HashMap<(NodeIdx, OpId), Issued, FixedState>,
    /// Our lookups pending per node.
    load: HashMap<NodeIdx, u32, FixedState>,
    ops: HashMap<(NodeIdx, OpId), DhtOp, FixedState>,
    keys: Vec<Key>,
    next_check: Instant,
    /// Whether the last check found the ring ideal.
    last_ideal: bool,
    /// When a member last crashed.
    last_fault: Option<Instant>,
    /// When the ring was found ideal again after a mass failure.
    repaired_at: Option<Instant>,
    formed: bool,
    within_constraint: bool,
    report: ChordReport,
    lookup_ms_sum: f64,
    /// Where the current phase began: wall clock, events, virtual time.
    phase_start: (WallClock, u64, Instant),
}

impl<'a, P: FnMut(&str, u64, u64)> Driver<'a, P> {
    fn new(params: &'a ChordParams, progress: P) -> Self {
        let r = params.r;
        let config = Config {
            security: Security::Plaintext,
            peers: PeersConfig {
                max_inbound: 1024,
                max_connections: 2048,
                max_outbound: 512,
                max_half_open: 128,
                // The ring keeps its own links (pointers, lookup hops): no
                // random overlay, no peer exchange.
                target_peers: 0,
                peer_exchange_size: 0,
                // The ring's pointers carry their own addresses; the cache
                // holds what lookups taught, and its cells are allocated
                // whole (1,024 by default: 32 KiB a node).
                max_known_peers: KNOWN_PEERS,
                ..Config::lan().peers
            },
            mesh: MeshConfig {
                // No broadcasts here: keep that table small in large runs.
                replay_origins: 1024,
                ..Config::lan().mesh
            },
            chord: Some(ChordConfig {
                successors: r,
                ..ChordConfig::lan()
            }),
            dht: Some(DhtConfig {
                replicas: r.min(3),
                ..DhtConfig::lan()
            }),
            liveness: LivenessConfig {
                ping_interval: IDLE_PING_INTERVAL,
                ..Config::lan().liveness
            },
            ..Config::lan()
        };
        let sim = Sim::with_observer(
            SimConfig {
                seed: params.seed,
                net: params.net.clone(),
                echo_requests: false,
            },
            ChordWatch::default(),
        );
        let rng = ChaCha8Rng::from_seed(blake3::derive_key(
            "ringmesh-sim v1 chord",
            &params.seed.to_le_bytes(),
        ));
        let n = params.nodes;
        let report = ChordReport {
            nodes: n,
            r,
            dht_replicas: r.min(3),
            expected_hops: 0.5 * f64::from(n).log2(),
            failures_within_constraint: true,
            keys: params.keys,
            seed: params.seed,
            replay: params.replay(),
            ..ChordReport::default()
        };
        Driver {
            params,
            progress,
            wall: WallClock::now(),
            sim,
            rng,
            chord: config.chord.clone().unwrap_or_default(),
            dht: config.dht.clone().unwrap_or_default(),
            config,
            truth: Truth::default(),
            joiners: BTreeMap::new(),
            constraint: FailureConstraint::on_current_lists(r),
            history: None,
            lookups: HashMap::with_hasher(FixedState::with_seed(1)),
            load: HashMap::with_hasher(FixedState::with_seed(2)),
            ops: HashMap::with_hasher(FixedState::with_seed(3)),
            keys: Vec::new(),
            next_check: Instant::ZERO + CHECK_EVERY,
            last_ideal: false,
            last_fault: None,
            repaired_at: None,
            formed: false,
            within_constraint: true,
            report,
            lookup_ms_sum: 0.0,
            phase_start: (WallClock::now(), 0, Instant::ZERO),
        }
    }

    fn run(mut self) -> Result<ChordReport, Error> {
        if self.params.founded {
            self.found()?;
        } else {
            self.build()?;
        }
        self.end_phase("build");
        self.settle_fingers();
        self.end_phase("fingers");
        if self.params.keys > 0 {
            self.put_keys()?;
            self.end_phase("put");
        }
        if self.params.fail_fraction > 0.0 {
            self.mass_failure();
            self.end_phase("failure");
        }
        if let Some(d) = self.params.partition_for {
            self.partition(d);
            self.end_phase("partition");
        }
        self.run_lookups()?;
        self.end_phase("lookups");
        self.quiet();
        self.end_phase("quiet");
        if self.params.keys > 0 {
            self.get_keys()?;
            self.end_phase("get");
        }
        self.check();
        self.report.ideal = self.last_ideal;
        Ok(self.finish())
    }

    /// Records what the phase that ends now cost.
    fn end_phase(&mut self, name: &'static str) {
        let (wall, events, at) = self.phase_start;
        let now = (WallClock::now(), self.sim.stats().events, self.sim.now());
        self.report.phases.push(Phase {
            name,
            virtual_ms: (now.2 - at).as_micros() as f64 / 1e3,
            events: now.1 - events,
            wall_ms: now.0.duration_since(wall).as_secs_f64() * 1e3,
        });
        self.phase_start = now;
    }

    fn id(&self, i: NodeIdx) -> u128 {
        self.sim.id(i).as_u128()
    }

    fn elapsed_ms(&self, since: Instant) -> f64 {
        (self.sim.now() - since).as_micros() as f64 / 1e3
    }

    fn example(&mut self, line: String) {
        if self.report.examples.len() < MAX_EXAMPLES {
            self.report.examples.push(line);
        }
    }

    fn failure_example(&mut self, line: String) {
        if self.report.lookup_failure_examples.len() < MAX_EXAMPLES {
            self.report.lookup_failure_examples.push(line);
        }
    }

    // ----- the engine loop -----

    /// Runs to `until` in slices, handling what the nodes reported after
    /// each and checking the invariants on schedule.
    fn advance(&mut self, until: Instant) {
        while self.sim.now() < until {
            let next = (self.sim.now() + SLICE).min(until).min(self.next_check);
            self.sim.run_until(next);
            self.drain();
            self.record_best();
            if self.sim.now() >= self.next_check {
                self.check();
            }
        }
    }

    fn advance_by(&mut self, d: Duration) {
        self.advance(self.sim.now() + d);
    }

    /// Handles the events gathered since the last call, in order: the
    /// ground truth changes only through them and through our own faults
    /// between slices, so each is judged against the truth of its moment.
    fn drain(&mut self) {
        let seen = std::mem::take(&mut self.sim.observer_mut().seen);
        for (at, node, seen) in seen {
            match seen {
                Seen::PeerUp => self.on_peer_up(node),
                Seen::Joined => self.on_joined(node),
                Seen::JoinFailed => {
                    if self.joiners.contains_key(&node) {
                        self.retry_join(node);
                    }
                }
                Seen::Orphaned => self.report.orphaned += 1,
                Seen::LookupDone {
                    id,
                    successors,
                    hops,
                } => self.on_lookup_done(at, node, id, &successors, hops),
                Seen::LookupFailed { id, reason } => {
                    if let Some(issued) = self.lookups.remove(&(node, id)) {
                        self.unload(node);
                        self.report.lookup_failed += 1;
                        let (t, waited) =
                            (issued.at.as_micros() / 1000, (at - issued.at).as_millis());
                        self.failure_example(format!(
                            "lookup of {} from node {node}, issued at {t} ms, failed after \
                             {waited} ms: {reason}",
                            NodeId::from_u128(issued.key).short()
                        ));
                    }
                }
                Seen::PutAcked { id } => {
                    if let Some(DhtOp::Put(k)) = self.ops.remove(&(node, id)) {
                        self.keys[k].put = Put::Acked;
                        self.report.puts_acked += 1;
                    }
                }
                Seen::GetResult { id, value } => {
                    if let Some(DhtOp::Get(k)) = self.ops.remove(&(node, id)) {
                        let key = &mut self.keys[k];
                        key.read_back = Some(value.as_ref() == Some(&key.value));
                    }
                }
                Seen::DhtFailed { id, reason } => match self.ops.remove(&(node, id)) {
                    Some(DhtOp::Put(k)) => {
                        self.keys[k].put = Put::Failed;
                        self.report.puts_failed += 1;
                        let name = String::from_utf8_lossy(&self.keys[k].name).into_owned();
                        self.example(format!("put of {name} from node {node} failed: {reason}"));
                    }
                    Some(DhtOp::Get(k)) => {
                        self.keys[k].read_back = Some(false);
                        let name = String::from_utf8_lossy(&self.keys[k].name).into_owned();
                        if !self.keys[k].at_risk {
                            self.example(format!(
                                "get of {name} from node {node} failed: {reason}"
                            ));
                        }
                    }
                    None => {}
                },
            }
        }
        self.retry_stuck_joins();
    }

    /// An invariant check (on schedule, after a failure, while waiting for
    /// the ring to become ideal): Zave's invariant and what it implies, on
    /// the ring as it is now. Counted as a violation only once the ring
    /// has formed, and while every failure kept the contract.
    fn check(&mut self) {
        let snapshot = RingSnapshot::of_sim(&self.sim, self.params.r);
        let report = chord_oracle::check(&snapshot);
        self.next_check = self.sim.now() + CHECK_EVERY;
        self.report.invariant_checks += 1;
        self.last_ideal = report.ideal;
        if !report.safe() || !report.all_implied() {
            if !self.formed {
                self.report.forming_violations += 1;
            } else if !self.within_constraint {
                self.report.violations_outside_constraint += 1;
            } else {
                self.report.invariant_violations += 1;
                if self.report.violation_examples.len() < MAX_EXAMPLES {
                    let at = self.sim.now().as_micros() as f64 / 1e3;
                    let lines = report.violations.iter().take(3).cloned();
                    self.report.violation_examples.push(format!(
                        "at {at} ms, {} members: {} ({})",
                        report.live_members,
                        report.failed_properties().join(", "),
                        lines.collect::<Vec<_>>().join("; ")
                    ));
                }
            }
        }
        if !self.formed && report.ideal && report.live_members > self.params.r {
            self.formed = true;
            self.report.formed_ms = Some(self.sim.now().as_micros() as f64 / 1e3);
        }
    }

    /// Checks now, then runs until a check finds the ring ideal or `cap`
    /// passes. The time it took, if it became ideal.
    fn wait_ideal(&mut self, cap: Duration, phase: &str) -> Option<Duration> {
        let start = self.sim.now();
        self.check();
        while !self.last_ideal && self.sim.now() - start < cap {
            self.advance_by(CHECK_EVERY);
            let done = (self.sim.now() - start).as_millis();
            (self.progress)(phase, done, cap.as_millis());
        }
        self.last_ideal.then(|| self.sim.now() - start)
    }

    // ----- joins -----

    fn add_node(&mut self) -> Result<NodeIdx, Error> {
        Ok(self.sim.add_node(self.config.clone())?)
    }

    /// Node `i` joins through a random member: dials it, and sends the join
    /// once the session is up (at once if it already is).
    fn start_join(&mut self, i: NodeIdx) {
        let via = self.truth.pick(&mut self.rng);
        let via_id = self.sim.id(via);
        let now = self.sim.now();
        let connected = self
            .sim
            .node(i)
            .is_some_and(|n| n.connected_peers().contains(&via_id));
        self.joiners.insert(
            i,
            Joiner {
                via,
                since: now,
                connecting: !connected,
            },
        );
        if connected {
            self.send_join(i);
        } else {
            self.sim.observer_mut().awaiting.insert(i, via_id);
            // A refused dial shows as a stuck join and is retried.
            let _ = self.sim.connect(i, via);
        }
    }

    fn send_join(&mut self, i: NodeIdx) {
        let Some(joiner) = self.joiners.get_mut(&i) else {
            return;
        };
        joiner.connecting = false;
        let via = Some(self.sim.id(joiner.via));
        match self.sim.command(i, ChordCommand::Join { via }) {
            Ok(_) | Err(CommandError::Chord(ChordError::AlreadyInRing)) => {}
            Err(_) => self.retry_join(i),
        }
    }

    fn retry_join(&mut self, i: NodeIdx) {
        self.report.join_retries += 1;
        self.sim.observer_mut().awaiting.remove(&i);
        self.start_join(i);
    }

    fn on_peer_up(&mut self, i: NodeIdx) {
        if self.joiners.get(&i).is_some_and(|j| j.connecting) {
            self.send_join(i);
        }
    }

    fn on_joined(&mut self, i: NodeIdx) {
        self.joiners.remove(&i);
        self.sim.observer_mut().awaiting.remove(&i);
        if self.sim.state(i) == NodeState::Up {
            let id = self.id(i);
            self.truth.add(i, id);
        }
    }

    fn retry_stuck_joins(&mut self) {
        let now = self.sim.now();
        let stuck: Vec<NodeIdx> = self
            .joiners
            .iter()
            .filter(|(_, j)| now - j.since >= JOIN_STUCK)
            .map(|(&i, _)| i)
            .collect();
        for i in stuck {
            self.retry_join(i);
        }
    }

    /// Node 0 creates the ring; the others join through random members.
    /// Until the ring has `r + 1` members and has been ideal, joins go one
    /// at a time (the forming phase of spec/chord.md §5.2); then at
    /// [`JOIN_RATE_PER_MEMBER`].
    fn build(&mut self) -> Result<(), Error> {
        let n = self.params.nodes;
        let r = self.params.r;
        self.sim.reserve(n as usize);
        let first = self.add_node()?;
        self.sim.command(first, ChordCommand::Create)?;
        let id = self.id(first);
        self.truth.add(first, id);
        let deadline = self.sim.now()
            + Duration::from_secs(120)
            + Duration::from_millis(20).saturating_mul(u64::from(n));
        let mut added = 1u32;
        let mut allowance = 0.0f64;
        while self.truth.len() < n as usize {
            if self.sim.now() >= deadline {
                return Err(format!(
                    "only {} of {n} nodes had joined after {} s of virtual time",
                    self.truth.len(),
                    (self.sim.now() - Instant::ZERO).as_millis() / 1000
                )
                .into());
            }
            let budget = if self.formed {
                let rate = self.truth.len() as f64 * JOIN_RATE_PER_MEMBER;
                allowance = (allowance + rate * SLICE.as_secs_f64()).min(JOINS_PER_SLICE as f64);
                let budget = allowance.floor() as usize;
                allowance -= budget as f64;
                budget
            } else if self.truth.len() + self.joiners.len() <= r {
                1usize.saturating_sub(self.joiners.len())
            } else {
                0 // r + 1 members: wait until the ring is ideal.
            };
            for _ in 0..budget.min((n - added) as usize) {
                let i = self.add_node()?;
                added += 1;
                self.start_join(i);
            }
            self.advance_by(SLICE);
            (self.progress)("joining", self.truth.len() as u64, u64::from(n));
        }
        let ideal = self.wait_ideal(IDEAL_CAP, "stabilizing");
        self.report.ideal_after_build = ideal.is_some();
        self.report.build_ms = self.elapsed_ms(Instant::ZERO);
        Ok(())
    }

    /// `--founded`: all nodes at once, each founding the ring with its own
    /// neighbourhood (its predecessor, itself and its `r` successors), then
    /// a wait until the ring is ideal (the members link up by
    /// stabilization).
    fn found(&mut self) -> Result<(), Error> {
        let n = self.params.nodes;
        let r = self.params.r;
        if (n as usize) < r + 2 {
            return Err(format!("--founded needs at least r + 2 = {} nodes", r + 2).into());
        }
        self.sim.reserve(n as usize);
        let config = self.config.clone();
        let progress = &mut self.progress;
        let range = self.sim.add_nodes(&config, n, |done| {
            progress("identities", u64::from(done), u64::from(n))
        })?;
        let mut ring: Vec<(NodeId, NodeIdx)> = range.map(|i| (self.sim.id(i), i)).collect();
        ring.sort_unstable();
        let entry = |k: usize| {
            let (id, i) = ring[k % ring.len()];
            PeerEntry {
                id,
                addrs: [crate::engine::addr_of(i)].into_iter().collect(),
            }
        };
        let len = ring.len();
        let ids: Vec<u128> = ring.iter().map(|(id, _)| id.as_u128()).collect();
        for k in 0..len {
            let mut founders: Vec<PeerEntry> = (len + k - 1..=len + k + r).map(entry).collect();
            // And its fingers: the first member at or after me + 2^b for
            // every b whose target lies past the successor list.
            let me = ids[k];
            let last = ids[(k + r) % len];
            let mut fingers: Vec<usize> = (0..128u32)
                .rev()
                .map(|b| me.wrapping_add(1u128 << b))
                .take_while(|&t| !in_half_open(me, t, last))
                .map(|t| ids.partition_point(|&id| id < t) % len)
                .collect();
            fingers.sort_unstable();
            fingers.dedup();
            let window = |f: usize| (0..=r + 1).any(|d| (len + k - 1 + d) % len == f);
            founders.extend(fingers.into_iter().filter(|&f| !window(f)).map(entry));
            let (id, i) = ring[k];
            self.sim.command(i, ChordCommand::Found { founders })?;
            self.truth.add(i, id.as_u128());
            if k % 8192 == 0 {
                (self.progress)("founding", k as u64, len as u64);
            }
        }
        self.formed = true;
        self.report.formed_ms = Some(0.0);
        let ideal = self.wait_ideal(IDEAL_CAP, "stabilizing");
        self.report.ideal_after_build = ideal.is_some();
        self.report.build_ms = self.elapsed_ms(Instant::ZERO);
        Ok(())
    }

    // ----- fingers -----

    /// Runs until most of a sample of nodes hold exactly their ideal
    /// fingers. One finger is refreshed per `chord.fix_fingers_interval`,
    /// and a node needs about log2(N / r) of them, so a full pass takes
    /// that many intervals; the wait is capped at four passes.
    fn settle_fingers(&mut self) {
        let start = self.sim.now();
        let members = self.truth.members.len();
        let mut sample: Vec<NodeIdx> = Vec::new();
        while sample.len() < FINGER_SAMPLE.min(members) {
            let i = self.truth.pick(&mut self.rng);
            if !sample.contains(&i) {
                sample.push(i);
            }
        }
        sample.sort_unstable();
        let per_pass = (members as f64 / self.params.r as f64)
            .log2()
            .ceil()
            .max(1.0) as u64
            + 2;
        let interval = self.chord.fix_fingers_interval;
        let cap = interval.saturating_mul(4 * per_pass);
        loop {
            let (ideal, total) = sample.iter().fold((0usize, 0usize), |(ideal, total), &i| {
                let Some(node) = self.sim.node(i) else {
                    return (ideal, total);
                };
                let mut fingers: Vec<u128> =
                    node.chord_fingers().iter().map(|f| f.as_u128()).collect();
                fingers.sort_unstable();
                fingers.dedup();
                let want = self
                    .truth
                    .ideal_fingers(node.node_id().as_u128(), self.params.r);
                (ideal + usize::from(fingers == want), total + fingers.len())
            });
            let fraction = ideal as f64 / sample.len().max(1) as f64;
            self.report.fingers_ideal_fraction = fraction;
            self.report.mean_fingers = total as f64 / sample.len().max(1) as f64;
            if fraction >= FINGERS_SETTLED || self.sim.now() - start >= cap {
                break;
            }
            self.advance_by(interval);
            (self.progress)(
                "fingers",
                (self.sim.now() - start).as_millis(),
                cap.as_millis(),
            );
        }
        self.report.fingers_ms = self.elapsed_ms(start);
    }

    // ----- the table -----

    /// Issues one dht operation per key in `todo` at [`DHT_RATE`] from
    /// random members, then waits until all have ended.
    fn dht_round(
        &mut self,
        todo: Vec<usize>,
        phase: &str,
        command: impl Fn(&Key) -> DhtCommand,
        op: impl Fn(usize) -> DhtOp,
    ) -> Result<(), Error> {
        let per_slice = (DHT_RATE * SLICE.as_micros() / 1_000_000).max(1) as usize;
        let total = todo.len() as u64;
        let mut queue = todo.into_iter().peekable();
        let mut refused = 0u32;
        while queue.peek().is_some() {
            for _ in 0..per_slice {
                let Some(&k) = queue.peek() else { break };
                let from = self.truth.pick(&mut self.rng);
                match self.sim.command(from, command(&self.keys[k])) {
                    Ok(Accepted::Op(id)) => {
                        self.ops.insert((from, id), op(k));
                        queue.next();
                    }
                    Err(CommandError::Dht(DhtError::Ring(ChordError::TooManyLookups(_))))
                        if refused < 10_000 =>
                    {
                        refused += 1
                    }
                    Ok(other) => return Err(format!("node {from} answered {other:?}").into()),
                    Err(e) => return Err(format!("node {from} refused the {phase}: {e}").into()),
                }
            }
            self.advance_by(SLICE);
            (self.progress)(phase, total - queue.len() as u64, total);
        }
        let deadline = self.sim.now() + self.config.messaging.lookup_timeout.saturating_mul(3);
        while !self.ops.is_empty() && self.sim.now() < deadline {
            self.advance_by(SLICE.saturating_mul(10));
        }
        self.ops.clear();
        Ok(())
    }

    fn put_keys(&mut self) -> Result<(), Error> {
        self.keys = (0..self.params.keys)
            .map(|i| {
                let name = Bytes::from(format!("key-{i}"));
                Key {
                    position: key_position(&name).as_u128(),
                    value: Bytes::from(format!("value-{i}")),
                    name,
                    put: Put::Pending,
                    at_risk: false,
                    read_back: None,
                }
            })
            .collect();
        let todo = (0..self.keys.len()).collect();
        self.dht_round(
            todo,
            "put",
            |key| DhtCommand::Put {
                key: DhtKey::Open(key.name.clone()),
                value: key.value.clone(),
            },
            DhtOp::Put,
        )?;
        for k in 0..self.keys.len() {
            if self.keys[k].put == Put::Pending {
                self.keys[k].put = Put::Failed;
                self.report.puts_failed += 1;
                let name = String::from_utf8_lossy(&self.keys[k].name).into_owned();
                self.example(format!("put of {name} never ended"));
            }
        }
        Ok(())
    }

    /// Reads every stored key back from a random member, then counts the
    /// keys that are lost and those held by fewer than `dht.replicas` of
    /// their true holders.
    fn get_keys(&mut self) -> Result<(), Error> {
        // A repair round since the ring was whole again after the last
        // failure spreads what it left short (a round before that may
        // still have pushed to the old holders).
        if let Some(fault) = self.last_fault {
            let whole = self.repaired_at.map_or(fault, |at| at.max(fault));
            let repaired =
                whole + self.dht.repair_interval + self.chord.request_timeout.saturating_mul(2);
            self.advance(repaired);
        }
        let todo: Vec<usize> = (0..self.keys.len())
            .filter(|&k| self.keys[k].put != Put::Failed)
            .collect();
        self.dht_round(
            todo,
            "get",
            |key| DhtCommand::Get {
                key: DhtKey::Open(key.name.clone()),
            },
            DhtOp::Get,
        )?;
        let replicas = self.dht.replicas;
        for k in 0..self.keys.len() {
            let key = self.keys[k].clone();
            if key.put == Put::Failed || key.at_risk {
                continue;
            }
            if key.read_back != Some(true) {
                self.report.keys_lost += 1;
                let name = String::from_utf8_lossy(&key.name).into_owned();
                let seen = match key.read_back {
                    None => "no answer",
                    Some(_) => "a wrong or missing value",
                };
                self.example(format!("{name} is lost: its get gave {seen}"));
            }
            let holders = self
                .truth
                .successors(key.position.wrapping_sub(1), replicas);
            let holding = holders
                .iter()
                .filter_map(|h| self.truth.by_id.get(h))
                .filter(|&&i| {
                    self.sim
                        .node(i)
                        .and_then(|n| n.dht_holds(&DhtKey::Open(key.name.clone())))
                        .is_some_and(|held| held.live)
                })
                .count();
            if holding < replicas {
                self.report.under_replicated += 1;
            }
        }
        Ok(())
    }

    // ----- failures -----

    fn crash(&mut self, i: NodeIdx) {
        let id = self.id(i);
        self.sim.crash(i);
        self.truth.remove(i, id);
        let now = self.sim.now();
        self.last_fault = Some(now);
        if let Some(history) = &mut self.history {
            history.record(id, None, now);
        }
        // Its own pending work can never end now.
        let lost: Vec<(NodeIdx, OpId)> = self
            .lookups
            .keys()
            .filter(|(n, _)| *n == i)
            .copied()
            .collect();
        for key in lost {
            self.lookups.remove(&key);
            self.report.lookup_lost += 1;
        }
        self.load.remove(&i);
        self.ops.retain(|(n, _), _| *n != i);
        // Joins waiting on it start again elsewhere.
        let waiting: Vec<NodeIdx> = self
            .joiners
            .iter()
            .filter(|(_, j)| j.via == i)
            .map(|(&n, _)| n)
            .collect();
        for n in waiting {
            self.retry_join(n);
        }
    }

    /// Crashes `⌊F·N⌋` random members at once, redrawn while the draw
    /// would break Zave's invariant; marks the keys whose every holder is
    /// among them; runs until the ring is ideal again.
    fn mass_failure(&mut self) {
        let count = (self.params.fail_fraction * self.truth.len() as f64).floor() as usize;
        if count == 0 {
            return;
        }
        let mut victims: Vec<NodeIdx> = Vec::new();
        let mut ids: HashSet<u128, FixedState> = HashSet::with_hasher(FixedState::with_seed(4));
        for draw in 0..FAIL_DRAWS {
            let mut pool = self.truth.members.clone();
            for k in 0..count {
                let j = k + (self.rng.next_u64() % (pool.len() - k) as u64) as usize;
                pool.swap(k, j);
            }
            pool.truncate(count);
            victims = pool;
            ids = victims.iter().map(|&v| self.id(v)).collect();
            if self.params.unconstrained {
                // As drawn: judged, not redrawn.
                let snapshot = RingSnapshot::of_sim(&self.sim, self.params.r);
                if precondition(&snapshot, |id| ids.contains(&id.as_u128())).is_err() {
                    self.within_constraint = false;
                    self.report.failures_within_constraint = false;
                }
                break;
            }
            let snapshot = RingSnapshot::of_sim(&self.sim, self.params.r);
            if precondition(&snapshot, |id| ids.contains(&id.as_u128())).is_ok() {
                break;
            }
            self.report.fail_redraws = draw + 1;
            if draw + 1 == FAIL_DRAWS {
                self.within_constraint = false;
                self.report.failures_within_constraint = false;
            }
        }
        let replicas = self.dht.replicas;
        for k in 0..self.keys.len() {
            let key = &self.keys[k];
            let holders = self
                .truth
                .successors(key.position.wrapping_sub(1), replicas);
            if key.put != Put::Failed && holders.iter().all(|h| ids.contains(h)) {
                self.keys[k].at_risk = true;
                self.report.keys_at_risk += 1;
            }
        }
        victims.sort_unstable();
        for &v in &victims {
            self.crash(v);
        }
        self.report.failed = victims.len() as u32;
        // The state right after the failure is checked too.
        self.check();
        self.report.repair_ms = self
            .wait_ideal(IDEAL_CAP, "repairing")
            .map(|d| d.as_micros() as f64 / 1e3);
        self.repaired_at = self.report.repair_ms.is_some().then(|| self.sim.now());
        self.back_within_constraint();
    }

    /// After a churn failure: a stored key that no live member near its
    /// place holds any more (its holders failed one after another faster
    /// than the table's repair copied it on) is at risk, as a key whose
    /// holders all failed at once is. The failure constraint keeps fewer
    /// than `r` consecutive members from failing within a repair window,
    /// and the table keeps `dht.replicas` (< `r`) copies: three holders in
    /// a row can fail within one. Holders are looked for among the
    /// `replicas + r` members from the key's place on (its holders, and
    /// those that held it before joins moved it).
    fn mark_keys_left_without_a_replica(&mut self) {
        let span = self.dht.replicas + self.params.r;
        for k in 0..self.keys.len() {
            let key = &self.keys[k];
            if key.put == Put::Failed || key.at_risk {
                continue;
            }
            let dht_key = DhtKey::Open(key.name.clone());
            let held = self
                .truth
                .successors(key.position.wrapping_sub(1), span)
                .iter()
                .filter_map(|h| self.truth.by_id.get(h))
                .any(|&i| {
                    self.sim
                        .node(i)
                        .and_then(|n| n.dht_holds(&dht_key))
                        .is_some_and(|held| held.live)
                });
            if !held {
                self.keys[k].at_risk = true;
                self.report.keys_at_risk += 1;
            }
        }
    }

    /// A ring that is ideal again after a fault outside the contract, with
    /// at least `r + 1` members, is Zave's initial state again (§5):
    /// later checks count as violations within the contract.
    fn back_within_constraint(&mut self) {
        if !self.within_constraint && self.last_ideal && self.truth.len() > self.params.r {
            self.within_constraint = true;
        }
    }

    /// Splits the network into two random halves for `d`, then heals it
    /// and runs until the ring is ideal again (`heal_ms`).
    fn partition(&mut self, d: Duration) {
        let mut groups = vec![0u16; self.sim.len()];
        for g in groups.iter_mut() {
            *g = (self.rng.next_u64() & 1) as u16;
        }
        self.sim.partition(&groups);
        // A partition counts as the failure of the other side (§11).
        self.within_constraint = false;
        self.report.failures_within_constraint = false;
        self.report.partitioned_ms = Some(d.as_micros() as f64 / 1e3);
        let end = self.sim.now() + d;
        while self.sim.now() < end {
            self.advance((self.sim.now() + CHECK_EVERY).min(end));
            let left = (end - self.sim.now()).as_millis();
            (self.progress)("partitioned", d.as_millis() - left, d.as_millis());
        }
        self.report.ideal_during_partition = self.last_ideal;
        self.sim.heal();
        self.last_fault = Some(self.sim.now());
        self.report.heal_ms = self
            .wait_ideal(IDEAL_CAP, "healing")
            .map(|d| d.as_micros() as f64 / 1e3);
        self.back_within_constraint();
    }

    /// One churn event: a join or, half the time, the failure of a random
    /// member if that keeps the failure constraint (on the lists as they
    /// are now: Zave's precondition, which keeps `r + 1` members, and
    /// fewer than `r` consecutive failures within a repair window).
    fn churn_event(&mut self) -> Result<(), Error> {
        if self.rng.next_u64() & 1 == 0 {
            let i = self.add_node()?;
            self.start_join(i);
            self.report.churn_joins += 1;
            return Ok(());
        }
        let victim = self.truth.pick(&mut self.rng);
        let id = self.sim.id(victim);
        let now = self.sim.now();
        let snapshot = RingSnapshot::of_sim(&self.sim, self.params.r);
        let window = repair_window(&self.config);
        if self.constraint.allows(&snapshot, id, now, window).is_err() {
            self.report.churn_failures_skipped += 1;
            return Ok(());
        }
        self.constraint.failed(id, now);
        self.crash(victim);
        self.report.churn_failures += 1;
        self.mark_keys_left_without_a_replica();
        // The state right after a fault is checked too.
        self.check();
        Ok(())
    }

    // ----- lookups -----

    fn unload(&mut self, node: NodeIdx) {
        if let Some(load) = self.load.get_mut(&node) {
            *load = load.saturating_sub(1);
        }
    }

    /// The owner of `key` as the ring itself routes to it: the first ring
    /// member at or after `key`, in Zave's sense. A member that just
    /// joined, or whose predecessor failed before anyone else listed it, is
    /// an appendage: it points into the ring, but no ring member points to
    /// it yet, so it is not yet responsible for its keys.
    ///
    /// Found by following best successors (first live entries) from the
    /// member `r + 1` places before `key` until one is at or after it:
    /// starting that far back, the walk is on the ring before it reaches
    /// the key (an appendage's best successor is where it joined), and on
    /// the ring it meets no appendage. `None` if the walk dead-ends or runs
    /// long.
    fn ring_owner(&self, key: u128) -> Option<u128> {
        self.walk_ring(key, |at| {
            let node = self.sim.node(*self.truth.by_id.get(&at)?)?;
            node.chord_successors()
                .iter()
                .map(|s| s.as_u128())
                .find(|&s| self.truth.is_member(s))
        })
    }

    /// [`Driver::ring_owner`] as it was at `t`, from the history.
    fn ring_owner_at(&self, key: u128, t: Instant) -> Option<u128> {
        let history = self.history.as_ref()?;
        self.walk_ring(key, |at| history.best_at(at, t))
    }

    fn walk_ring(&self, key: u128, best: impl Fn(u128) -> Option<u128>) -> Option<u128> {
        let r = self.params.r;
        let mut at = *self.truth.predecessors(key, r + 1).last()?;
        for _ in 0..4 * r + 8 {
            let next = best(at)?;
            if in_half_open(at, key, next) {
                return Some(next);
            }
            at = next;
        }
        None
    }

    /// Records every member's best successor now, while lookups run under
    /// churn.
    fn record_best(&mut self) {
        let Some(mut history) = self.history.take() else {
            return;
        };
        let now = self.sim.now();
        for &i in &self.truth.members {
            let best = self.sim.node(i).and_then(|node| {
                node.chord_successors()
                    .iter()
                    .map(|s| s.as_u128())
                    .find(|&s| self.truth.is_member(s))
            });
            history.record(self.id(i), best, now);
        }
        history.prune(now - HISTORY);
        self.history = Some(history);
    }

    fn on_lookup_done(
        &mut self,
        at: Instant,
        node: NodeIdx,
        id: OpId,
        successors: &[NodeId],
        hops: u32,
    ) {
        let Some(issued) = self.lookups.remove(&(node, id)) else {
            return;
        };
        self.unload(node);
        let found = successors
            .iter()
            .map(|s| s.as_u128())
            .find(|&s| self.truth.is_member(s));
        let owner = self.truth.owner(issued.key);
        let ring_owner = self.ring_owner(issued.key);
        // The answer left its last hop up to a trip (plus a slice of our
        // looking) before it arrived: the ring it saw may be that old.
        let net = &self.params.net;
        let trip = (net.latency + net.jitter).saturating_mul(2) + SLICE.saturating_mul(2);
        let owned_then = |o: u128| {
            let mut t = at;
            loop {
                if self.ring_owner_at(issued.key, t) == Some(o) {
                    return true;
                }
                if t <= at - trip {
                    return false;
                }
                t = t - SLICE;
            }
        };
        match found {
            Some(o) if Some(o) == owner => self.report.lookup_correct += 1,
            Some(o)
                if [ring_owner, issued.owner, issued.ring_owner].contains(&Some(o))
                    || owned_then(o) =>
            {
                self.report.lookup_correct += 1;
                self.report.lookup_correct_transitional += 1;
            }
            _ => {
                self.report.lookup_incorrect += 1;
                let fmt = |o: Option<u128>| {
                    o.map_or("none".to_owned(), |o| {
                        NodeId::from_u128(o).short().to_string()
                    })
                };
                let ms = |t: Instant| t.as_micros() / 1000;
                self.example(format!(
                    "lookup of {} from node {node}, issued at {} ms, done at {} ms after {hops} \
                     hops: gave {} (list {:?}); true owner {} ({} along the ring), at issue {} ({})",
                    NodeId::from_u128(issued.key).short(),
                    ms(issued.at),
                    ms(at),
                    fmt(found),
                    successors
                        .iter()
                        .map(|s| s.short().to_string())
                        .collect::<Vec<_>>(),
                    fmt(owner),
                    fmt(ring_owner),
                    fmt(issued.owner),
                    fmt(issued.ring_owner),
                ));
            }
        }
        if hops >= 2 && self.last_hop_connected(node, issued.key) {
            self.report.lookup_last_hop_connected += 1;
        }
        let h = hops as usize;
        if self.report.hops_histogram.len() <= h {
            self.report.hops_histogram.resize(h + 1, 0);
        }
        self.report.hops_histogram[h] += 1;
        self.lookup_ms_sum += (at - issued.at).as_micros() as f64 / 1e3;
    }

    /// Whether the member that answers a lookup of `key` (the live member
    /// before it) holds a session to `asker`.
    fn last_hop_connected(&self, asker: NodeIdx, key: u128) -> bool {
        let Some(&by) = self.truth.predecessors(key, 1).first() else {
            return false;
        };
        let by = NodeId::from_u128(by);
        self.sim
            .node(asker)
            .is_some_and(|n| n.connected_peers().contains(&by))
    }

    fn exp_delay(&mut self, rate: f64) -> Duration {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_micros((-(1.0 - u).ln() / rate * 1e6) as u64)
    }

    fn random_key(&mut self) -> u128 {
        (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64())
    }

    /// Issues the lookups at [`LOOKUP_RATE_PER_MEMBER`] from random members
    /// (with churn events meanwhile), then waits until they have all ended.
    fn run_lookups(&mut self) -> Result<(), Error> {
        let total = u64::from(self.params.lookups);
        let rate = (LOOKUP_RATE_PER_MEMBER * self.truth.len() as u64).max(MIN_LOOKUP_RATE);
        let per_slice = (rate * SLICE.as_micros() / 1_000_000).max(1);
        let churn = self.params.churn;
        if churn > 0.0 {
            self.history = Some(BestHistory::default());
            self.record_best();
        }
        let (dials_before, fallbacks_before) = self.dials_and_fallbacks();
        let mut next_churn = (churn > 0.0).then(|| self.sim.now() + self.exp_delay(churn));
        let mut issued = 0u64;
        let mut refused = 0u64;
        while issued < total {
            while let Some(at) = next_churn
                && at <= self.sim.now()
            {
                self.churn_event()?;
                next_churn = Some(at + self.exp_delay(churn));
            }
            for _ in 0..per_slice.min(total - issued) {
                let from = self.truth.pick(&mut self.rng);
                if self.load.get(&from).copied().unwrap_or(0) >= MAX_LOOKUPS_PER_NODE {
                    continue;
                }
                let key = self.random_key();
                match self.sim.command(
                    from,
                    ChordCommand::Lookup {
                        key: NodeId::from_u128(key),
                    },
                ) {
                    Ok(Accepted::Op(id)) => {
                        let now = self.sim.now();
                        self.lookups.insert(
                            (from, id),
                            Issued {
                                key,
                                at: now,
                                owner: self.truth.owner(key),
                                ring_owner: self.ring_owner(key),
                            },
                        );
                        *self.load.entry(from).or_default() += 1;
                        issued += 1;
                    }
                    Err(CommandError::Chord(ChordError::TooManyLookups(_))) if refused < total => {
                        refused += 1
                    }
                    Ok(other) => return Err(format!("node {from} answered {other:?}").into()),
                    Err(e) => return Err(format!("node {from} refused a lookup: {e}").into()),
                }
            }
            let until = match next_churn {
                Some(at) => (self.sim.now() + SLICE).min(at.max(self.sim.now())),
                None => self.sim.now() + SLICE,
            };
            // Churn may fall inside the slice: stop there, never run 0.
            let until = until.max(self.sim.now() + Duration::from_micros(1));
            self.advance(until);
            (self.progress)("lookups", issued, total);
        }
        self.report.lookups = issued;
        let deadline =
            self.sim.now() + self.config.messaging.lookup_timeout + Duration::from_secs(5);
        while !self.lookups.is_empty() && self.sim.now() < deadline {
            self.advance_by(SLICE.saturating_mul(10));
        }
        self.report.lookup_unanswered = self.lookups.len() as u64;
        let (dials_after, fallbacks) = self.dials_and_fallbacks();
        self.report.lookup_dials = dials_after.saturating_sub(dials_before);
        self.report.lookup_fallbacks = fallbacks.saturating_sub(fallbacks_before);
        self.lookups.clear();
        self.history = None;
        Ok(())
    }

    /// What the live members sent, and the links they hold at the end.
    fn count_traffic(&mut self) {
        let r = &mut self.report;
        let mut links = 0usize;
        for i in self.sim.live_nodes() {
            let Some(node) = self.sim.node(i) else {
                continue;
            };
            let stats = node.stats();
            r.frames_sent += stats.peers.frames_sent;
            r.pings_sent += stats.liveness.pings_sent;
            r.finger_lookups += stats.chord.finger_lookups;
            r.probes += stats.liveness.probes;
            r.route_retries += stats.chord.route_retries;
            r.route_acks_missed += stats.chord.route_acks_missed;
            let c = &stats.chord;
            let by = [
                c.route_retries_timed_out,
                c.route_retries_dead,
                c.route_retries_refused,
                c.route_retries_lost,
            ];
            for (sum, n) in r.route_retries_by.iter_mut().zip(by) {
                *sum += n;
            }
            r.forwards_refused += c.forwards_refused;
            links += node.peer_count();
        }
        r.mean_links = links as f64 / self.truth.len().max(1) as f64;
    }

    /// Dials made so far and recursive lookups fallen back to iterative,
    /// summed over the live nodes (those that crashed take theirs along).
    fn dials_and_fallbacks(&self) -> (u64, u64) {
        self.sim
            .live_nodes()
            .into_iter()
            .filter_map(|i| self.sim.node(i))
            .map(|node| {
                let stats = node.stats();
                (stats.peers.dials, stats.chord.route_fallbacks)
            })
            .fold((0, 0), |(d, f), (a, b)| (d + a, f + b))
    }

    /// No more faults: let the joins still under way finish and the ring
    /// become ideal.
    fn quiet(&mut self) {
        let deadline = self.sim.now() + JOIN_STUCK.saturating_mul(4);
        while !self.joiners.is_empty() && self.sim.now() < deadline {
            self.advance_by(SLICE.saturating_mul(10));
        }
        self.report.churn_joins_unfinished = self.joiners.len() as u64;
        self.wait_ideal(IDEAL_CAP, "quiet");
    }

    fn finish(mut self) -> ChordReport {
        self.count_traffic();
        let r = &mut self.report;
        let done: u64 = r.hops_histogram.iter().sum();
        if done > 0 {
            let hops: u64 = r
                .hops_histogram
                .iter()
                .enumerate()
                .map(|(h, &c)| h as u64 * c)
                .sum();
            r.mean_hops = hops as f64 / done as f64;
            r.lookup_ms_mean = self.lookup_ms_sum / done as f64;
        }
        r.p50_hops = percentile(&r.hops_histogram, 0.5);
        r.p99_hops = percentile(&r.hops_histogram, 0.99);
        r.max_hops = r.hops_histogram.len().saturating_sub(1) as u32;
        let judged = r.lookups.saturating_sub(r.lookup_lost);
        r.lookup_success_rate = if judged == 0 {
            1.0
        } else {
            r.lookup_correct as f64 / judged as f64
        };
        r.final_members = self.truth.len();
        r.virtual_ms = (self.sim.now() - Instant::ZERO).as_micros() as f64 / 1e3;
        r.events = self.sim.stats().events;
        r.timers_withdrawn = self.sim.stats().timers_withdrawn;
        r.wall_ms = self.wall.elapsed().as_secs_f64() * 1e3;
        r.peak_rss_mib = peak_rss_mib();
        r.trace_hash = self.sim.trace_hash();
        self.report.judged()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::show::Report;

    fn quiet(params: &ChordParams) -> ChordReport {
        run(params, |_, _, _| {}).expect("runs")
    }

    #[test]
    fn a_grown_ring_answers_every_lookup_correctly() {
        let report = quiet(&ChordParams {
            nodes: 40,
            r: 4,
            lookups: 300,
            ..ChordParams::default()
        });
        assert!(report.ok(), "{report:#?}");
        assert_eq!(report.lookup_correct, 300, "{report:#?}");
        assert!(report.formed_ms.is_some());
        assert!(report.invariant_checks > 10, "{report:#?}");
        assert_eq!(report.hops_histogram.iter().sum::<u64>(), 300);
    }

    #[test]
    fn a_founded_ring_answers_every_lookup_correctly_with_its_fingers_from_the_start() {
        let params = ChordParams {
            nodes: 300,
            r: 4,
            lookups: 600,
            founded: true,
            ..ChordParams::default()
        };
        let report = quiet(&params);
        assert!(report.ok(), "{report:#?}");
        assert_eq!(report.lookup_correct, 600, "{report:#?}");
        // Each node was given its fingers: none had to be fixed first,
        // and no forward had to go round a hop.
        assert_eq!(report.fingers_ideal_fraction, 1.0, "{report:#?}");
        assert_eq!(report.fingers_ms, 0.0, "{report:#?}");
        assert_eq!(report.route_retries, 0, "{report:#?}");
        assert_eq!(report.final_members, 300);
        assert!(params.replay().ends_with(" --founded"));
    }

    #[test]
    fn a_lookup_naming_a_wrong_owner_is_counted_incorrect() {
        let params = ChordParams {
            nodes: 12,
            r: 3,
            lookups: 0,
            ..ChordParams::default()
        };
        let mut driver = Driver::new(&params, |_, _, _| {});
        driver.build().expect("builds");
        assert!(driver.last_ideal);
        let key = driver.random_key();
        let owner = driver.truth.owner(key).expect("a ring");
        let next = driver.truth.successors(owner, 1)[0];
        let from = driver.truth.members[0];
        let now = driver.sim.now();
        // Answers naming the member after the owner, then the owner.
        for (op, answer) in [(1, next), (2, owner)] {
            let id = OpId(u64::MAX - op);
            let issued = Issued {
                key,
                at: now,
                owner: Some(owner),
                ring_owner: driver.ring_owner(key),
            };
            driver.lookups.insert((from, id), issued);
            let successors = vec![NodeId::from_u128(answer)];
            let done = Seen::LookupDone {
                id,
                successors,
                hops: 1,
            };
            driver.sim.observer_mut().seen.push((now, from, done));
        }
        driver.drain();
        assert_eq!(driver.report.lookup_incorrect, 1);
        assert_eq!(driver.report.lookup_correct, 1);
        assert_eq!(driver.report.examples.len(), 1);
    }

    #[test]
    fn same_seed_same_trace() {
        let params = ChordParams {
            nodes: 20,
            r: 3,
            lookups: 50,
            ..ChordParams::default()
        };
        let a = quiet(&params);
        let b = quiet(&params);
        let c = quiet(&ChordParams { seed: 2, ..params });
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.hops_histogram, b.hops_histogram);
        assert_ne!(a.trace_hash, c.trace_hash);
    }
}
