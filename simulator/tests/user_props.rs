//! A property test written as a user of `ringmesh-sim` would write one,
//! against the public API alone: a toy replicated max register, tested
//! under random crashes, kills, restarts and partitions with the public
//! runner (`ringmesh_sim::check`).
//!
//! The toy: each node holds a value (the largest written anywhere that it
//! has heard of). A client writes at one node; the node raises its value,
//! broadcasts the write, and acknowledges it to the client once it is on
//! the node's disk. Disks survive crashes, memory does not; a node flushes
//! memory to disk once per [`FLUSH`] (a group commit). Every [`GOSSIP`]
//! each node broadcasts its value again (anti-entropy), so nodes that
//! missed a write (partitioned, restarted) catch up.
//!
//! - **Safety:** a node that is up holds at least every write it
//!   acknowledged (an acknowledged write is durable).
//! - **Liveness:** after the faults, every node holds the largest value
//!   any node holds.
//!
//! The planted bug ([`MaxRegister::ack_before_flush`]): the node
//! acknowledges a write as soon as it is in memory. A crash before the next
//! flush loses an acknowledged write. The runner must find it within its
//! default case count, shrink it to a few steps, and print a replay that
//! reproduces it; the fixed register must pass.

use bytes::Bytes;
use ringmesh::{Config, Duration, Event, Instant, MeshCommand, MeshEvent, PeersConfig, Security};
use ringmesh_sim::check::{
    self, Case, Fault, FaultWeights, Phase, Progress, Runner, Scenario, Topology,
};
use ringmesh_sim::engine::NodeState;
use ringmesh_sim::{NodeIdx, Observer, Sim, SimConfig, addr_of};

/// How often a node writes its value to disk.
const FLUSH: Duration = Duration::from_secs(2);
/// How often a node broadcasts its value.
const GOSSIP: Duration = Duration::from_secs(3);
/// The overlay forms for this long before the faults.
const WARM_UP: Duration = Duration::from_secs(3);
/// Steps happen within this many ms after the warm-up.
const HORIZON_MS: u64 = 10_000;

/// The schedule's steps: faults, and clients' writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Inject(Fault),
    /// A client writes `value` at node `node % n`.
    Write {
        node: u32,
        value: u64,
    },
}

/// The broadcast values each node delivered, drained by the application.
#[derive(Default)]
struct Inbox {
    values: Vec<(NodeIdx, u64)>,
}

impl Observer for Inbox {
    fn on_event(&mut self, _: Instant, node: NodeIdx, event: &Event) {
        if let Event::Mesh(MeshEvent::Broadcast { payload, .. }) = event
            && let Ok(bytes) = <[u8; 8]>::try_from(payload.as_ref())
        {
            self.values.push((node, u64::from_le_bytes(bytes)));
        }
    }
}

/// One node's application state.
#[derive(Debug, Clone, Default)]
struct Replica {
    /// In memory: lost at a crash.
    value: u64,
    /// Writes waiting for the next flush to be acknowledged.
    unacked: Vec<u64>,
    /// On disk: survives crashes.
    disk: u64,
    /// What the node acknowledged to clients (the clients remember it).
    acked: u64,
    next_flush: Instant,
    next_gossip: Instant,
}

/// The toy application on every node of a simulated network.
struct MaxRegister {
    /// The planted bug: acknowledge before the write is on disk.
    ack_before_flush: bool,
    replicas: Vec<Replica>,
}

impl MaxRegister {
    fn new(ack_before_flush: bool) -> Self {
        MaxRegister {
            ack_before_flush,
            replicas: Vec::new(),
        }
    }

    fn broadcast(sim: &mut Sim<Inbox>, node: NodeIdx, value: u64) {
        let payload = Bytes::copy_from_slice(&value.to_le_bytes());
        // Refused while the node has no peers: gossip sends it again.
        let _ = sim.command(node, MeshCommand::Broadcast { payload });
    }

    fn restarted(&mut self, node: NodeIdx, now: Instant) {
        let r = &mut self.replicas[node as usize];
        r.value = r.disk;
        r.unacked.clear();
        r.next_flush = now + FLUSH;
        r.next_gossip = now;
    }
}

fn config(topology: &Topology, i: NodeIdx) -> Config {
    Config {
        security: Security::Plaintext,
        peers: PeersConfig {
            target_peers: 3,
            bootstrap: topology.neighbours(i).into_iter().map(addr_of).collect(),
            ..Config::lan().peers
        },
        ..Config::lan()
    }
}

impl Scenario for MaxRegister {
    type Setup = Topology;
    type Action = Op;
    type Observer = Inbox;

    fn build(&mut self, seed: u64, topology: &Topology) -> Result<Sim<Inbox>, String> {
        let mut sim = Sim::with_observer(
            SimConfig {
                seed,
                echo_requests: false,
                ..SimConfig::default()
            },
            Inbox::default(),
        );
        for i in 0..topology.nodes {
            sim.add_node(config(topology, i))
                .map_err(|e| e.to_string())?;
        }
        self.replicas = vec![Replica::default(); topology.nodes as usize];
        sim.run_for(WARM_UP);
        Ok(sim)
    }

    fn apply(&mut self, sim: &mut Sim<Inbox>, op: &Op) -> String {
        match op {
            Op::Inject(fault) => {
                let target = fault.target(sim.len());
                let was_down = target.is_some_and(|i| sim.state(i) != NodeState::Up);
                let what = fault.apply(sim, |_| Config::lan());
                if let (Fault::Restart(_), Some(i), true) = (fault, target, was_down) {
                    self.restarted(i, sim.now());
                }
                what
            }
            Op::Write { node, value } => {
                let i = node % sim.len() as u32;
                if sim.state(i) != NodeState::Up {
                    return format!("node {i} is down: write of {value} refused");
                }
                let r = &mut self.replicas[i as usize];
                r.value = r.value.max(*value);
                if self.ack_before_flush {
                    r.acked = r.acked.max(*value);
                } else {
                    r.unacked.push(*value);
                }
                Self::broadcast(sim, i, *value);
                format!("write {value} at node {i}")
            }
        }
    }

    fn react(&mut self, sim: &mut Sim<Inbox>) {
        let now = sim.now();
        for (node, value) in std::mem::take(&mut sim.observer_mut().values) {
            let r = &mut self.replicas[node as usize];
            r.value = r.value.max(value);
        }
        for i in sim.live_nodes() {
            let r = &mut self.replicas[i as usize];
            if now >= r.next_flush {
                r.disk = r.value;
                for w in r.unacked.drain(..) {
                    r.acked = r.acked.max(w);
                }
                r.next_flush = now + FLUSH;
            }
            if now >= r.next_gossip {
                r.next_gossip = now + GOSSIP;
                let value = r.value;
                if value > 0 {
                    Self::broadcast(sim, i, value);
                }
            }
        }
    }

    fn safety(&mut self, sim: &Sim<Inbox>) -> Result<(), String> {
        for i in sim.live_nodes() {
            let r = &self.replicas[i as usize];
            if r.value < r.acked {
                return Err(format!(
                    "node {i} acknowledged {} but holds {} (disk {})",
                    r.acked, r.value, r.disk
                ));
            }
        }
        Ok(())
    }

    fn end_faults(&mut self, sim: &mut Sim<Inbox>) -> String {
        sim.heal();
        let mut restarted = Vec::new();
        for i in 0..sim.len() as NodeIdx {
            if sim.state(i) != NodeState::Up && sim.restart(i).is_ok() {
                self.restarted(i, sim.now());
                restarted.push(i);
            }
        }
        format!("heal; restart {restarted:?}")
    }

    fn liveness(&mut self, sim: &mut Sim<Inbox>) -> Progress {
        let max = self.replicas.iter().map(|r| r.value).max().unwrap_or(0);
        let behind: Vec<(NodeIdx, u64)> = sim
            .live_nodes()
            .into_iter()
            .map(|i| (i, self.replicas[i as usize].value))
            .filter(|&(_, v)| v < max)
            .collect();
        if behind.is_empty() {
            Progress::Holds
        } else {
            Progress::NotYet(format!("nodes behind the largest value {max}: {behind:?}"))
        }
    }

    fn describe(&self, _: &Sim<Inbox>) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "  node {i}: value {}, disk {}, acked {}",
                    r.value, r.disk, r.acked
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn op(max_nodes: u32) -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        1 => check::fault(max_nodes, &FaultWeights::default()).prop_map(Op::Inject),
        1 => (0..max_nodes, 1u64..1000).prop_map(|(node, value)| Op::Write { node, value }),
    ]
}

fn cases() -> impl proptest::strategy::Strategy<Value = Case<Topology, Op>> {
    check::case(
        check::connected_topology(3..=6, 3),
        check::timed_steps(op(6), HORIZON_MS, 12),
    )
}

fn runner() -> Runner {
    Runner {
        fault_window: Duration::from_millis(HORIZON_MS),
        ..Runner::default()
    }
}

#[test]
fn the_runner_finds_shrinks_and_replays_a_lost_acknowledged_write() {
    let runner = runner();
    let found = runner
        .check(|| MaxRegister::new(true), cases())
        .expect_err("the planted bug is found within the default case count");
    let report = found.to_string();
    println!("{report}");
    assert_eq!(found.failure.phase, Phase::Safety, "{report}");
    assert!(found.failure.message.contains("acknowledged"), "{report}");
    assert!(found.found_at_case <= runner.cases, "{report}");
    // Shrunk: a write and the crash (or kill) that loses it; the end of the
    // faults restarts the node.
    assert!(found.case.steps.len() <= 3, "{report}");
    assert!(report.contains(&found.case.to_rust()), "{report}");
    // The replay reproduces the same failure: predicate, time, message.
    let again = runner
        .replay(MaxRegister::new(true), &found.case)
        .expect_err("the replay fails too");
    assert!(again.same_as(&found.failure), "{again}\nvs\n{report}");
    // The same case passes on the fixed register.
    runner
        .replay(MaxRegister::new(false), &found.case)
        .unwrap_or_else(|f| panic!("the fixed register fails the shrunk case: {f}"));
}

#[test]
fn the_fixed_register_passes_the_same_cases() {
    runner().assert_holds(|| MaxRegister::new(false), cases());
}

/// The replay the first test printed, pasted as a user would paste it
/// into a regression test (with `Op`'s variants in scope).
#[test]
fn the_printed_replay_reproduces_the_lost_write() {
    use Op::*;
    let case = Case {
        seed: 18269143014004128829,
        setup: Topology {
            nodes: 3,
            edges: vec![(1, 0), (2, 0)],
        },
        steps: vec![
            (2065, Write { node: 4, value: 1 }),
            (2292, Inject(Fault::Crash(1))),
        ],
    };
    let failure = runner()
        .replay(MaxRegister::new(true), &case)
        .expect_err("reproduces");
    assert_eq!(failure.phase, Phase::Safety, "{failure}");
    assert_eq!(
        failure.message, "node 1 acknowledged 1 but holds 0 (disk 0)",
        "{failure}"
    );
    assert_eq!(
        failure.at,
        Instant::ZERO + Duration::from_secs(13),
        "{failure}"
    );
    assert_eq!(runner().replay(MaxRegister::new(false), &case), Ok(()));
}
