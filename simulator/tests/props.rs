//! Property tests over small simulated networks under random faults.
//!
//! Each case builds 3–12 nodes (every node has a bootstrap list of one or
//! two others, plus a few random `Connect`s), then runs a random schedule
//! of crashes, kills, restarts, partitions, heals and broadcasts. Following
//! FoundationDB/TigerBeetle practice, invariants are checked by phase:
//!
//! - **Safety, while faults happen:** no node delivers a broadcast twice
//!   (within one incarnation: a restarted node has a fresh seen-cache), and
//!   every delivered `(origin, seq)` was returned by an accepted
//!   `MeshCommand::Broadcast` (the [`Ledger`] checks both at every delivery).
//! - **Detection:** every node that had a crashed or killed peer up when it
//!   went down, and stayed up itself, declared it down (`PeersEvent::Down`) within
//!   the detection time + 1 s, provided the peer stayed down that long.
//! - **Liveness, after faults stop:** heal, restart every stopped node, let
//!   redial backoff run out (LAN preset: at most 30 s between redials), then
//!   a broadcast from each of a few nodes reaches every other node exactly
//!   once, so the overlay is one component again.
//!
//! Nodes use `Config::lan()` in plaintext with `target_peers` 3, below most
//! network sizes, so healing relies on what the protocol does at its target:
//! redialling peers lost to a fault (the py2p #58 case in
//! `tests/regressions.rs`). The
//! initial overlay is connected by construction: node i > 0 bootstraps from
//! an earlier node, and the extra dials wait until the bootstrap dials have
//! left (a node dials its list only while it has nothing else in flight).
//!
//! A failure prints the schedule (shrunk by proptest to a minimal one) as a
//! timeline, with the seed.

use std::fmt;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use ringmesh::{
    Accepted, Config, Duration, Event, Instant, MeshCommand, PeersConfig, PeersEvent, Security,
};
use ringmesh_sim::engine::NodeState;
use ringmesh_sim::scenario::script::Ledger;
use ringmesh_sim::{NodeIdx, Sim, SimConfig, addr_of};

/// Virtual time the overlay gets to form before the faults.
const WARM_UP: Duration = Duration::from_secs(5);
/// Faults happen within this window after the warm-up.
const FAULT_WINDOW_MS: u64 = 20_000;
/// Time for the overlay to heal after the faults: the LAN redial backoff
/// is capped at 30 s, a dial to a silent node takes 3 s, and a few
/// maintenance rounds.
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    Crash(NodeIdx),
    Kill(NodeIdx),
    Restart(NodeIdx),
    /// A group per node.
    Partition(Vec<u16>),
    Heal,
    Broadcast(NodeIdx),
}

#[derive(Debug, Clone)]
struct Schedule {
    seed: u64,
    nodes: u32,
    /// Per node: the nodes it bootstraps from (never itself).
    bootstrap: Vec<Vec<NodeIdx>>,
    /// Extra dials at the start.
    connects: Vec<(NodeIdx, NodeIdx)>,
    /// (ms after the warm-up, fault), in time order.
    faults: Vec<(u64, Fault)>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}, {} nodes (LAN, plaintext)",
            self.seed, self.nodes
        )?;
        for (i, b) in self.bootstrap.iter().enumerate() {
            writeln!(f, "  node {i} bootstraps from {b:?}")?;
        }
        for (a, b) in &self.connects {
            writeln!(f, "  at      1 ms: {a} connects to {b}")?;
        }
        let warm = WARM_UP.as_millis();
        for (at, fault) in &self.faults {
            writeln!(f, "  at {:>6} ms: {fault:?}", warm + at)?;
        }
        write!(
            f,
            "  at {:>6} ms: heal, restart every stopped node, settle {} s, broadcast",
            warm + FAULT_WINDOW_MS,
            SETTLE.as_millis() / 1000
        )
    }
}

fn fault(n: u32) -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => (0..n).prop_map(Fault::Crash),
        2 => (0..n).prop_map(Fault::Kill),
        3 => (0..n).prop_map(Fault::Restart),
        1 => prop::collection::vec(0u16..2, n as usize).prop_map(Fault::Partition),
        1 => Just(Fault::Heal),
        4 => (0..n).prop_map(Fault::Broadcast),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (3u32..=12, any::<u64>()).prop_flat_map(|(n, seed)| {
        // Node i > 0 bootstraps from an earlier node (so the bootstrap graph
        // is connected: a spec'd node dials its list only while alone) and
        // maybe one more; node 0 from any other. Never from itself.
        let bootstrap = prop::collection::vec((any::<u32>(), prop::option::of(1..n)), n as usize);
        let connects = prop::collection::vec((0..n, 1..n), 0..=n as usize);
        let faults = prop::collection::vec((0..FAULT_WINDOW_MS, fault(n)), 0..16);
        (bootstrap, connects, faults).prop_map(move |(bootstrap, connects, mut faults)| {
            faults.sort_by_key(|(at, _)| *at);
            let bootstrap = bootstrap
                .into_iter()
                .enumerate()
                .map(|(i, (pick, extra))| {
                    let i = i as u32;
                    let first = if i == 0 { 1 + pick % (n - 1) } else { pick % i };
                    let mut list = vec![first];
                    list.extend(extra.map(|off| (i + off) % n));
                    list.sort_unstable();
                    list.dedup();
                    list
                })
                .collect();
            Schedule {
                seed,
                nodes: n,
                bootstrap,
                connects: connects
                    .into_iter()
                    .map(|(a, off)| (a, (a + off) % n))
                    .collect(),
                faults,
            }
        })
    })
}

/// A node stopped during the faults, and who had it up at that moment.
struct Stop {
    victim: NodeIdx,
    at: Instant,
    /// When it came back, if it did during the faults.
    restarted: Option<Instant>,
    /// Nodes that had it up, with their incarnation then.
    neighbours: Vec<(NodeIdx, u32)>,
}

fn config(schedule: &Schedule, i: usize) -> Config {
    Config {
        security: Security::Plaintext,
        peers: PeersConfig {
            target_peers: 3,
            bootstrap: schedule.bootstrap[i].iter().map(|&b| addr_of(b)).collect(),
            ..Config::lan().peers
        },
        ..Config::lan()
    }
}

fn restart(sim: &mut Sim<Ledger>, i: NodeIdx) {
    if sim.state(i) != NodeState::Up {
        sim.observer_mut().restarting(i);
        sim.restart(i).expect("same config as at the start");
    }
}

fn broadcast(sim: &mut Sim<Ledger>, i: NodeIdx, payload: &'static [u8]) -> Option<u64> {
    let payload = Bytes::from_static(payload);
    match sim.command(i, MeshCommand::Broadcast { payload }) {
        Ok(Accepted::Broadcast { seq }) => {
            let origin = sim.id(i);
            sim.observer_mut().broadcast_sent(origin, seq);
            Some(seq)
        }
        _ => None,
    }
}

/// Safety so far: the ledger's two invariants.
fn safety(sim: &Sim<Ledger>, schedule: &Schedule, phase: &str) -> Result<(), TestCaseError> {
    let ledger = sim.observer();
    prop_assert!(
        ledger.double_deliveries().is_empty(),
        "{phase}: a broadcast delivered twice: {:?}\nschedule:\n{schedule}",
        ledger.double_deliveries()
    );
    prop_assert!(
        ledger.unknown_deliveries().is_empty(),
        "{phase}: a delivery nobody broadcast: {:?}\nschedule:\n{schedule}",
        ledger.unknown_deliveries()
    );
    Ok(())
}

fn run(schedule: &Schedule) -> Result<(), TestCaseError> {
    let mut sim = Sim::with_observer(
        SimConfig {
            seed: schedule.seed,
            echo_requests: false,
            ..SimConfig::default()
        },
        Ledger::new(),
    );
    for i in 0..schedule.nodes as usize {
        sim.add_node(config(schedule, i)).expect("valid config");
    }
    // The first maintenance round (at creation) dials the bootstrap lists;
    // the extra dials come after it, or they would stand in for it.
    sim.run_for(Duration::from_millis(1));
    for &(a, b) in &schedule.connects {
        sim.connect(a, b).expect("a fresh node accepts a dial");
    }
    sim.run_until(Instant::ZERO + WARM_UP);
    let start = sim.now();
    let detection = Config::lan().detection_time() + Duration::from_secs(1);

    // Faults. Safety is checked at every delivery by the ledger.
    let mut stops: Vec<Stop> = Vec::new();
    for (at, fault) in &schedule.faults {
        sim.run_until(start + Duration::from_millis(*at));
        match fault {
            Fault::Crash(i) | Fault::Kill(i) if sim.state(*i) == NodeState::Up => {
                let victim = sim.id(*i);
                let neighbours = sim
                    .live_nodes()
                    .into_iter()
                    .filter(|&j| sim.node(j).is_some_and(|n| n.is_connected(victim)))
                    .map(|j| (j, sim.observer().incarnation(j)))
                    .collect();
                stops.push(Stop {
                    victim: *i,
                    at: sim.now(),
                    restarted: None,
                    neighbours,
                });
                if matches!(fault, Fault::Crash(_)) {
                    sim.crash(*i);
                } else {
                    sim.kill(*i);
                }
            }
            Fault::Crash(_) | Fault::Kill(_) => {}
            Fault::Restart(i) => {
                if sim.state(*i) != NodeState::Up {
                    restart(&mut sim, *i);
                    let now = sim.now();
                    if let Some(stop) = stops.iter_mut().rev().find(|s| s.victim == *i) {
                        stop.restarted = Some(now);
                    }
                }
            }
            Fault::Partition(groups) => sim.partition(groups),
            Fault::Heal => sim.heal(),
            Fault::Broadcast(i) => {
                broadcast(&mut sim, *i, b"during the faults");
            }
        }
    }
    // Let the last stops be noticed before anything comes back.
    sim.run_until(start + Duration::from_millis(FAULT_WINDOW_MS) + detection);
    safety(&sim, schedule, "during the faults")?;

    // Detection: each neighbour that stayed up saw each stop that lasted.
    for stop in &stops {
        let until = stop.at + detection;
        if stop.restarted.is_some_and(|r| r < until) {
            continue;
        }
        let victim = sim.id(stop.victim);
        for &(j, incarnation) in &stop.neighbours {
            let j_stopped = stops
                .iter()
                .any(|s| s.victim == j && s.at >= stop.at && s.at <= until);
            if j_stopped {
                continue;
            }
            let declared = sim.observer().events().iter().any(|e| {
                e.node == j
                    && e.incarnation == incarnation
                    && e.at >= stop.at
                    && e.at <= until
                    && matches!(&e.event, Event::Peers(PeersEvent::Down { peer, .. }) if *peer == victim)
            });
            prop_assert!(
                declared,
                "node {j} had node {} up when it stopped at {:?} but did not declare it \
                 down within {:?}\nschedule:\n{schedule}",
                stop.victim,
                stop.at,
                detection
            );
        }
    }

    // Liveness: faults stop, everything comes back, the overlay heals.
    sim.heal();
    for i in 0..schedule.nodes {
        restart(&mut sim, i);
    }
    sim.run_for(SETTLE);
    let n = schedule.nodes;
    let mut origins = vec![0, n / 2, n - 1];
    origins.dedup();
    let mut sent = Vec::new();
    for &o in &origins {
        let seq = broadcast(&mut sim, o, b"after the faults");
        prop_assert!(
            seq.is_some(),
            "node {o} refused to broadcast\nschedule:\n{schedule}"
        );
        sent.extend(seq.map(|s| (o, s)));
    }
    sim.run_for(Duration::from_secs(3));
    safety(&sim, schedule, "after the faults")?;
    for (o, seq) in sent {
        let origin = sim.id(o);
        let missing: Vec<NodeIdx> = (0..n)
            .filter(|&i| i != o)
            .filter(|&i| {
                let ledger = sim.observer();
                ledger.deliveries(i, Some(ledger.incarnation(i)), origin, seq) != 1
            })
            .collect();
        let peers: Vec<(NodeIdx, usize)> = (0..n)
            .map(|i| (i, sim.node(i).map_or(0, |node| node.peer_count())))
            .collect();
        prop_assert!(
            missing.is_empty(),
            "{} s after the faults, node {o}'s broadcast did not reach {missing:?} exactly \
             once (peer counts {peers:?})\nschedule:\n{schedule}",
            SETTLE.as_millis() / 1000
        );
    }
    Ok(())
}

/// 24 cases, or `PROPTEST_CASES`; a fixed set of schedules unless
/// `PROPTEST_RNG_SEED` picks another, so that `cargo test` is repeatable.
/// (Random exploration, `PROPTEST_CASES=5000 PROPTEST_RNG_SEED=$RANDOM`,
/// finds the detection gap in `tests/regressions.rs` about once in 300
/// cases.)
fn proptest_config() -> ProptestConfig {
    let defaults = ProptestConfig::default();
    let explicit = |var| std::env::var_os(var).is_some();
    ProptestConfig {
        cases: if explicit("PROPTEST_CASES") {
            defaults.cases
        } else {
            24
        },
        rng_seed: if explicit("PROPTEST_RNG_SEED") {
            defaults.rng_seed
        } else {
            RngSeed::Fixed(0x72_6d_73_68)
        },
        ..defaults
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn faults_never_break_safety_and_the_overlay_heals_after(schedule in schedule()) {
        run(&schedule)?;
    }
}
