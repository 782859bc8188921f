//! Scenario files: timed actions and checks in TOML, run by
//! `ringmesh-sim run FILE [--seed N]`.
//!
//! A scenario file builds a network, applies faults at chosen virtual
//! times and checks what the nodes did. Examples live in
//! `simulator/scenarios/`, whose README is the user's guide; this is the
//! reference.
//!
//! ```toml
//! seed = 7                      # optional (1); `--seed` overrides it
//!
//! [net]                         # optional; the engine's defaults
//! latency_ms = 20               # one-way latency of every link (20)
//! jitter_ms = 5                 # extra delay, uniform in 0..=jitter (5)
//! dial_timeout_ms = 3000        # a dial to a silent node fails after this (3000)
//! latency_model = "geo"         # "uniform" (default), "geo" or "file:PATH" (engine::LatencyModel)
//! upload = "10Mbit"             # per-node upload bandwidth, or a range "2Mbit..20Mbit" (unlimited)
//!
//! [node]                        # optional defaults for `add_nodes`
//! preset = "lan"                # "lan" (default) or "wan": Config::lan()/wan()
//! security = "plaintext"        # "plaintext" (default) or "noise"
//! target_peers = 4              # PeersConfig::target_peers (preset default: 8)
//! bootstrap = [0]               # node indices, dialled as engine::addr_of(i)
//!
//! [chord]                       # optional: every node runs the ring and table
//! successors = 2                # r, ChordConfig::successors (3)
//! dht.replicas = 2              # DhtConfig::replicas (min(r, 3))
//! stabilize_ms = 500            # ChordConfig::stabilize_interval (preset's)
//! request_timeout_ms = 1000     # ChordConfig::request_timeout (preset's)
//! check_every_ms = 10           # how often the invariant is watched (10)
//!
//! [[step]]
//! at_ms = 0
//! add_nodes = 8                 # or { count = 8, target_peers = 2, bootstrap = [1] }
//!
//! [[step]]
//! at_ms = 5000
//! label = "b1"
//! broadcast = { from = 0, payload = "hello" }
//!
//! [[step]]
//! at_ms = 6000
//! check = { kind = "delivered_everywhere", broadcast = "b1" }
//! ```
//!
//! **Steps** are numbered from 0 in file order (`step #3` in messages) and
//! run in time order: the simulation runs every event up to `at_ms`, then
//! the step happens (steps with equal `at_ms` keep file order). A step has
//! `at_ms`, an optional unique `label`, and exactly one of:
//!
//! | action | effect |
//! |---|---|
//! | `add_nodes = N` or `{ count, preset, security, target_peers, bootstrap }` | adds N nodes (indices continue from the last), the table's fields overriding `[node]` |
//! | `connect = [a, b]` | `a` dials `b`, demanding `b`'s id (`PeersCommand::Connect`; `b` becomes wanted by `a`) |
//! | `disconnect = [a, b]` | `a` says goodbye to `b` and stops redialling it (`PeersCommand::Disconnect`) |
//! | `crash = i` | `i` stops silently (`Sim::crash`): only liveness reveals it |
//! | `kill = i` | `i` stops and its connections reset (`Sim::kill`) |
//! | `restart = i` | a crashed or killed `i` comes back, fresh, same identity (`Sim::restart`) |
//! | `partition = [[0, 1], [2, 3]]` | each list is a group; nodes listed nowhere join the first group |
//! | `partition_one_way = { from = [0], to = [1, 2] }` | bytes from `from` to `to` vanish, the other way they flow, until `heal` (`Sim::partition_one_way`) |
//! | `flap = { node, peer, for_ms }` | the link `node`–`peer` (every link of `node` without `peer`) is down for `for_ms`: bytes are held and arrive after, connections survive (`Sim::flap_link`, `Sim::flap_node`) |
//! | `delay_spike = { node, peer, extra_ms, for_ms }` | for `for_ms`, bytes on the link (or every link of `node`) take `extra_ms` longer (`Sim::delay_link`, `Sim::delay_node`) |
//! | `heal = true` | ends the partition and the one-way partitions (connections they broke stay broken) |
//! | `broadcast = { from, payload }` | `MeshCommand::Broadcast` |
//! | `send = { from, to, payload }` | `MessagingCommand::Send` (one-way) |
//! | `request = { from, to, payload, timeout_ms }` | `MessagingCommand::Request`; the engine echoes the payload back |
//! | `check = { kind = "...", ... }` | a check, below |
//!
//! With `[chord]`, the ring and table actions (spec/chord.md). Each one
//! that waits for an answer reports when the answer comes (a `✓`/`✗` line
//! under its step); one still waiting when the run ends fails.
//!
//! | action | effect |
//! |---|---|
//! | `chord_create = i` or `{ node }` | `ChordCommand::Create`: a ring of one |
//! | `chord_found = [..]` or `{ nodes }` | `ChordCommand::Found` at each node, all with the same list (at least r + 1 nodes) |
//! | `join = { node, via }` | `node` dials `via` unless connected, then `ChordCommand::Join { via }` once the session is up; passes at `ChordEvent::Joined` |
//! | `leave = i` or `{ node }` | `Command::Shutdown`: a graceful leave (the node stays shut down) |
//! | `lookup = { from, key, expect_owner }` | `ChordCommand::Lookup`; `key` is a node index (that node's id) or 32 hex digits, or `dht_key = "k"` for a table key's position; the owner found must be `expect_owner`, or else the first member at or after the key when the answer comes |
//! | `put = { from, key, value }` | `DhtCommand::Put` of the open key `key`; passes at `DhtEvent::PutDone` |
//! | `delete = { from, key }` | `DhtCommand::Delete` of the open key `key`; passes at `DhtEvent::PutDone` |
//! | `get = { from, key, expect }` | `DhtCommand::Get`; the value read must be `expect`, or none with `expect_none = true` |
//! | `check_ring = true` or `{ ideal, members }` | Zave's invariant and every property it implies hold now (only the implied ones while the ring has r members or fewer); with `ideal = true` the ring is ideal; with `members`, it has that many |
//!
//! With `[sync]` (`lease_ms`, default 1 h; `anti_entropy_ms`, default
//! 5 s) every node runs the sync table (spec/sync.md):
//!
//! | action | effect |
//! |---|---|
//! | `sync_set = { from, key, value }` | `SyncCommand::Set`; a refusal (a lease held by another node) fails the step |
//! | `sync_delete = { from, key }` | `SyncCommand::Delete` |
//!
//! **The ring watch.** A `[chord]` run checks the invariant and the
//! properties it implies every `check_every_ms` ([`chord_oracle`]), once the
//! ring has been ideal with at least r + 1 members (Zave's initial
//! condition, spec/chord.md §5.2). Every crash, kill and leave of a member
//! is first checked against the failure constraint of spec/chord.md §11:
//! if the ring without it would break the invariant (Zave's `Fail`
//! precondition, also counting the lists that replies still on their way
//! may carry: the member's own, and lists replaced a moment ago), or it
//! would make r consecutive members fail within one repair window, the
//! watch pauses until the ring is ideal again, and the report says so. A partition is not checked: it counts as the
//! failure of the other side (§11), and the watch reports what it breaks.
//! An automatic `ring_invariant` check ends
//! the run: it fails on any violation while watched (naming the first, with
//! every member's state), and if the ring was never watched at all.
//!
//! A command a node refuses (say, a broadcast from a crashed node) fails the
//! run with a `✗ action` line; it is not a file error.
//!
//! **Checks** (`kind`, then its fields). References to earlier steps
//! (`broadcast`, `request`, `send`) take a label or a step number.
//!
//! | kind | holds when |
//! |---|---|
//! | `delivered_everywhere`, `broadcast` | every node other than the origin that was up when the broadcast left and is still up (not restarted since) delivered it exactly once |
//! | `delivered`, `broadcast`, `node` | the node(s) delivered it (in any incarnation) |
//! | `connected` | the live nodes form one component of up links (both ends see the link), each with at least `min_peers` (default 1) peers |
//! | `connected`, `node`, `peer` | both see the link between `node` and `peer` as up |
//! | `peer_down`, `node`, `peer` | each live `node` declared each `peer` down (its last `PeersEvent::Up`/`PeersEvent::Down` about it is a `PeersEvent::Down`); with `node = "all"`, only the nodes that had the peer up are asked |
//! | `peers_at_least`, `node`, `n` | the node(s) have at least `n` peers up |
//! | `response`, `request` | the request's echo came back with its payload |
//! | `received`, `send` | the one-way message arrived at its peer |
//! | `no_false_positives` | no node declared a peer dead (`Unresponsive`) unless, within the declarer's `detection_time` + 1 s + two of the longest link latencies before, the peer was down or partitioned from it (`partition` only: a one-way partition, flap or delay spike long enough to be detected counts as a false positive) |
//! | `no_double_delivery` | no node delivered any broadcast twice in one run of the process |
//! | `ring_order`, `node` | the listed nodes' ids (at least three) lie clockwise in that order: a ring scenario's shape depends on the ids, which the seed picks |
//! | `chord_state`, `node`, `successors`, `predecessor` | with `[chord]`: the node's successor list and/or predecessor are these node indices (`predecessor = "none"` for none) |
//! | `sync_converged` | with `[sync]`: every live node holds the same sync table (digest and key count) |
//! | `sync_value`, `node`, `key`, `expect` or `expect_none = true` | with `[sync]`: the node(s) hold `expect` under `key`, or no value |
//!
//! `node` and `peer` take an index, a list of indices or `"all"` (as `node`,
//! every node up at the time of the check; as `peer_down`'s `peer`, every
//! node).
//!
//! Two safety checks run at the end of every run whatever the file says:
//! `no_double_delivery`, and `only_broadcasts_delivered` (every delivered
//! `(origin, seq)` was returned by an accepted broadcast). A restarted
//! node starts with an empty seen-cache, so "twice" counts within one
//! incarnation of the node.
//!
//! A file that does not parse, names an unknown action, check or field, a
//! node that does not exist yet (bootstrap lists may name any node the file
//! adds), or a step that is not there, is an error naming the step; nothing
//! runs.
//!
//! Inside: `format` reads a file with serde (each step's action a variant
//! of one enum, each check a variant of another, unknown fields refused)
//! and validates it into steps, `run` drives a [`Sim`] through them and
//! judges the checks, `ring` does the ring actions and the watch, `report`
//! is the outcome ([`ScriptReport`]: the summary is its `Display`, the
//! JSON its `Serialize`), and [`Ledger`] is the observer that records
//! events and checks broadcast safety as deliveries happen (the property
//! tests use it too).
//!
//! [`Sim`]: crate::engine::Sim
//! [`chord_oracle`]: crate::chord_oracle

mod format;
mod ledger;
mod report;
mod ring;
mod run;

use std::fmt;
use std::path::Path;

use ringmesh::{Duration, Instant};

use crate::engine::NetModel;

pub use ledger::{BadDelivery, Ledger, Logged};
pub use report::{ChordNodeReport, EventCounts, NodeReport, RingReport, ScriptReport, Verdict};

use format::Step;
use run::Run;

/// Runs the scenario file at `path`; `seed` overrides the file's seed.
///
/// `Err` if the file cannot be read or is not a valid scenario (the message
/// names the file and the step); a check that fails is `Ok` with
/// `passed == false`.
pub fn run_file(
    path: &Path,
    seed: Option<u64>,
) -> Result<ScriptReport, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let script = Script::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(script.run(&path.display().to_string(), seed))
}

/// Why a scenario file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    message: String,
}

impl ScriptError {
    fn new(message: impl Into<String>) -> Self {
        ScriptError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScriptError {}

/// A parsed and validated scenario file, ready to run (any number of times,
/// with any seed).
#[derive(Debug, Clone)]
pub struct Script {
    seed: u64,
    net: NetModel,
    /// The `[chord]` settings, if any.
    ring: Option<format::RingSettings>,
    /// In run order: by `at_ms`, then file order.
    steps: Vec<Step>,
}

impl Script {
    /// The file's seed (1 if it names none).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Runs the scenario with `seed`, or the file's. `source` is the path
    /// the replay command names.
    pub fn run(&self, source: &str, seed: Option<u64>) -> ScriptReport {
        let seed = seed.unwrap_or(self.seed);
        let mut run = Run::new(seed, self.net.clone(), self.ring, &self.steps);
        for step in &self.steps {
            run.advance_to(Instant::ZERO + Duration::from_millis(step.at_ms));
            run.apply(step);
        }
        run.finish(seed, source)
    }
}
