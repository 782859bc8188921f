//! The strategies' promises, and the runner's reports.

use proptest::prelude::*;
use ringmesh::{Config, Duration, Instant, Security};

use super::*;
use crate::SimConfig;

proptest! {
    #[test]
    fn connected_topologies_are_connected_trees_plus_extras(
        topology in connected_topology(1..=12, 6),
    ) {
        prop_assert!(topology.is_connected(), "{topology:?}");
        prop_assert!(topology.edges.len() >= topology.nodes as usize - 1);
        for i in 1..topology.nodes {
            prop_assert!(topology.parent(i).is_some_and(|p| p < i));
        }
        for &(a, b) in &topology.edges {
            prop_assert!(a != b && a < topology.nodes && b < topology.nodes);
        }
    }

    #[test]
    fn timed_steps_are_in_time_order_within_the_horizon(
        steps in timed_steps(fault(5, &FaultWeights::default()), 1000, 10),
    ) {
        prop_assert!(steps.len() <= 10);
        prop_assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0));
        prop_assert!(steps.iter().all(|(at, _)| *at < 1000));
    }

    #[test]
    fn spaced_steps_add_up_their_gaps(steps in spaced_steps(0u64..50, Just(()), 10)) {
        prop_assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0 && w[1].0 - w[0].0 < 50));
    }
}

#[test]
fn a_case_prints_as_rust() {
    let case = Case {
        seed: 7,
        setup: Topology {
            nodes: 2,
            edges: vec![(1, 0)],
        },
        steps: vec![
            (0, Fault::Partition(vec![0, 1])),
            (5, Fault::Crash(1)),
            (9, Fault::Heal),
        ],
    };
    assert_eq!(
        case.to_rust(),
        "Case {\n    seed: 7,\n    setup: Topology { nodes: 2, edges: vec![(1, 0)] },\n    \
         steps: vec![\n        (0, Fault::Partition(vec![0, 1])),\n        \
         (5, Fault::Crash(1)),\n        (9, Fault::Heal),\n    ],\n}"
    );
}

/// Fails safety once node 0 is down, and counts its runs.
struct NodeZeroMustLive {
    nodes: u32,
}

impl Scenario for NodeZeroMustLive {
    type Setup = u32;
    type Action = Fault;
    type Observer = ();

    fn build(&mut self, seed: u64, nodes: &u32) -> Result<Sim, String> {
        let mut sim = Sim::new(SimConfig {
            seed,
            ..SimConfig::default()
        });
        let config = Config {
            security: Security::Plaintext,
            ..Config::lan()
        };
        for _ in 0..*nodes {
            sim.add_node(config.clone()).map_err(|e| e.to_string())?;
        }
        self.nodes = *nodes;
        Ok(sim)
    }

    fn apply(&mut self, sim: &mut Sim, fault: &Fault) -> String {
        fault.apply(sim, |_| Config::lan())
    }

    fn safety(&mut self, sim: &Sim) -> Result<(), String> {
        match sim.state(0) {
            NodeState::Up => Ok(()),
            state => Err(format!("node 0 is {state:?}")),
        }
    }

    fn liveness(&mut self, sim: &mut Sim) -> Progress {
        if sim.now() >= Instant::ZERO + Duration::from_secs(3) {
            Progress::Holds
        } else {
            Progress::NotYet(format!("{} nodes", self.nodes))
        }
    }
}

fn small_runner() -> Runner {
    Runner {
        cases: 32,
        fault_window: Duration::from_secs(1),
        ..Runner::default()
    }
}

#[test]
fn a_failure_shrinks_to_the_one_step_that_breaks_safety() {
    let weights = FaultWeights {
        partition: 0,
        ..FaultWeights::default()
    };
    let cases = case(2u32..=5, timed_steps(fault(5, &weights), 1000, 8));
    let found = small_runner()
        .check(|| NodeZeroMustLive { nodes: 0 }, cases)
        .expect_err("node 0 crashes in some case");
    assert_eq!(found.failure.phase, Phase::Safety);
    assert_eq!(found.case.setup, 2, "{found}");
    assert_eq!(found.case.steps.len(), 1, "{found}");
    let (at, fault) = &found.case.steps[0];
    assert_eq!(*at, 0, "{found}");
    assert!(matches!(fault, Fault::Crash(_) | Fault::Kill(_)), "{found}");
    assert_eq!(fault.target(2), Some(0), "{found}");
    assert_eq!(found.failure.at, Instant::ZERO, "{found}");
    let again = small_runner()
        .replay(NodeZeroMustLive { nodes: 0 }, &found.case)
        .expect_err("the replay fails");
    assert!(again.same_as(&found.failure));
}

#[test]
fn liveness_that_never_holds_fails_at_the_settle_limit() {
    struct Never;
    impl Scenario for Never {
        type Setup = ();
        type Action = Fault;
        type Observer = ();
        fn build(&mut self, seed: u64, _: &()) -> Result<Sim, String> {
            Ok(Sim::new(SimConfig {
                seed,
                ..SimConfig::default()
            }))
        }
        fn apply(&mut self, _: &mut Sim, _: &Fault) -> String {
            String::new()
        }
        fn safety(&mut self, _: &Sim) -> Result<(), String> {
            Ok(())
        }
        fn liveness(&mut self, _: &mut Sim) -> Progress {
            Progress::NotYet("never".into())
        }
    }
    let runner = Runner {
        settle_limit: Duration::from_secs(2),
        ..small_runner()
    };
    let failure = runner
        .replay(
            Never,
            &Case {
                seed: 1,
                setup: (),
                steps: Vec::new(),
            },
        )
        .expect_err("liveness never holds");
    assert_eq!(failure.phase, Phase::Liveness);
    assert_eq!(failure.at, Instant::ZERO + Duration::from_secs(3));
    assert_eq!(
        failure.message,
        "not within 2000 ms after the faults: never"
    );
}
