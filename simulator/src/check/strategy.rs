//! The strategies: fault schedules, cases and small topologies.

use core::fmt;
use core::ops::RangeInclusive;

use proptest::prelude::*;
use ringmesh::{Command, Config};

use super::Case;
use crate::engine::{NodeIdx, NodeState, Observer, Sim};

/// One fault (or churn) step. Nodes are named by *selectors*: node
/// `selector % sim.len()` at the moment the step applies ([`Fault::target`]),
/// so a schedule stays meaningful when the setup shrinks to fewer nodes or
/// churn adds some, and selectors shrink towards node 0.
///
/// Its `Debug` output is the Rust expression (`Fault::Crash(2)`), so a
/// printed schedule pastes into a test.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The node stops silently ([`Sim::crash`]); nothing if it is down.
    Crash(NodeIdx),
    /// The node stops and its connections reset ([`Sim::kill`]).
    Kill(NodeIdx),
    /// A crashed or killed node comes back ([`Sim::restart`]); nothing if
    /// it is up.
    Restart(NodeIdx),
    /// Node `i` goes to group `groups[i]` ([`Sim::partition`]; nodes past
    /// the end to group 0).
    Partition(Vec<u16>),
    /// Every partition ends ([`Sim::heal`]).
    Heal,
    /// Churn: the node leaves gracefully (`Command::Shutdown`) and stays
    /// gone ([`Scenario::end_faults`](super::Scenario::end_faults) does not
    /// restart it).
    Leave(NodeIdx),
    /// Churn: a new node joins (the scenario gives its config).
    Join,
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash(i) => write!(f, "Fault::Crash({i})"),
            Fault::Kill(i) => write!(f, "Fault::Kill({i})"),
            Fault::Restart(i) => write!(f, "Fault::Restart({i})"),
            Fault::Partition(groups) => write!(f, "Fault::Partition(vec!{groups:?})"),
            Fault::Heal => write!(f, "Fault::Heal"),
            Fault::Leave(i) => write!(f, "Fault::Leave({i})"),
            Fault::Join => write!(f, "Fault::Join"),
        }
    }
}

impl Fault {
    /// The node a crash, kill, restart or leave applies to in a simulation
    /// of `nodes` nodes; `None` for the others (or no nodes).
    pub fn target(&self, nodes: usize) -> Option<NodeIdx> {
        match self {
            Fault::Crash(s) | Fault::Kill(s) | Fault::Restart(s) | Fault::Leave(s) if nodes > 0 => {
                Some(*s % nodes as u32)
            }
            _ => None,
        }
    }

    /// Applies the fault to `sim` now; `new_node` gives a joining node's
    /// config (from its index). Returns what it did, for a failure report.
    /// A scenario that tracks restarts (an observer's incarnations) does
    /// that before calling this, with [`Fault::target`].
    pub fn apply<O: Observer>(
        &self,
        sim: &mut Sim<O>,
        new_node: impl FnOnce(NodeIdx) -> Config,
    ) -> String {
        let target = self.target(sim.len());
        match (self, target) {
            (Fault::Crash(_) | Fault::Kill(_) | Fault::Restart(_) | Fault::Leave(_), None) => {
                "no nodes".to_owned()
            }
            (Fault::Crash(_) | Fault::Kill(_) | Fault::Leave(_), Some(i))
                if sim.state(i) != NodeState::Up =>
            {
                format!("node {i} is down already")
            }
            (Fault::Crash(_), Some(i)) => {
                sim.crash(i);
                format!("crash node {i}")
            }
            (Fault::Kill(_), Some(i)) => {
                sim.kill(i);
                format!("kill node {i}")
            }
            (Fault::Restart(_), Some(i)) if sim.state(i) == NodeState::Up => {
                format!("node {i} is up already")
            }
            (Fault::Restart(_), Some(i)) => match sim.restart(i) {
                Ok(()) => format!("restart node {i}"),
                Err(e) => format!("restart node {i} refused: {e}"),
            },
            (Fault::Leave(_), Some(i)) => match sim.command(i, Command::Shutdown) {
                Ok(_) => format!("node {i} leaves"),
                Err(e) => format!("node {i} cannot leave: {e}"),
            },
            (Fault::Partition(groups), _) => {
                sim.partition(groups);
                format!("partition {groups:?}")
            }
            (Fault::Heal, _) => {
                sim.heal();
                "heal".to_owned()
            }
            (Fault::Join, _) => {
                let i = sim.len() as NodeIdx;
                match sim.add_node(new_node(i)) {
                    Ok(i) => format!("node {i} joins"),
                    Err(e) => format!("a new node refused: {e}"),
                }
            }
        }
    }
}

/// The relative frequencies of the [`Fault`] kinds in [`fault`]; 0 leaves
/// a kind out. The default is the mix of ringmesh's own `props` test:
/// crash 3, kill 2, restart 3, partition 1, heal 1, and no churn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWeights {
    /// [`Fault::Crash`].
    pub crash: u32,
    /// [`Fault::Kill`].
    pub kill: u32,
    /// [`Fault::Restart`].
    pub restart: u32,
    /// [`Fault::Partition`].
    pub partition: u32,
    /// [`Fault::Heal`].
    pub heal: u32,
    /// [`Fault::Leave`].
    pub leave: u32,
    /// [`Fault::Join`].
    pub join: u32,
}

impl Default for FaultWeights {
    fn default() -> Self {
        FaultWeights {
            crash: 3,
            kill: 2,
            restart: 3,
            partition: 1,
            heal: 1,
            leave: 0,
            join: 0,
        }
    }
}

/// One [`Fault`] over selectors `0..max_nodes` (partitions into two
/// groups, over `max_nodes` nodes). Shrinks towards a crash of node 0, a
/// partition towards one group.
pub fn fault(max_nodes: u32, weights: &FaultWeights) -> BoxedStrategy<Fault> {
    let n = max_nodes.max(1);
    prop_oneof![
        weights.crash => (0..n).prop_map(Fault::Crash),
        weights.kill => (0..n).prop_map(Fault::Kill),
        weights.restart => (0..n).prop_map(Fault::Restart),
        weights.partition => prop::collection::vec(0u16..2, n as usize).prop_map(Fault::Partition),
        weights.heal => Just(Fault::Heal),
        weights.leave => (0..n).prop_map(Fault::Leave),
        weights.join => Just(Fault::Join),
    ]
    .boxed()
}

/// Up to `max_steps` actions at times in `0..horizon_ms`, in time order.
/// Shrinks to fewer steps, earlier times and simpler actions.
pub fn timed_steps<A: Clone + fmt::Debug>(
    action: impl Strategy<Value = A>,
    horizon_ms: u64,
    max_steps: usize,
) -> impl Strategy<Value = Vec<(u64, A)>> {
    prop::collection::vec((0..horizon_ms.max(1), action), 0..=max_steps).prop_map(|mut steps| {
        // Stable: equal times keep the generated order.
        steps.sort_by_key(|(at, _)| *at);
        steps
    })
}

/// Up to `max_steps` actions, each `gap` ms after the one before (the
/// first after the start). Shrinks to fewer steps and shorter gaps: for
/// schedules where what matters is how close steps are to each other.
pub fn spaced_steps<A: Clone + fmt::Debug>(
    gap: impl Strategy<Value = u64>,
    action: impl Strategy<Value = A>,
    max_steps: usize,
) -> impl Strategy<Value = Vec<(u64, A)>> {
    prop::collection::vec((gap, action), 0..=max_steps).prop_map(|steps| {
        let mut at = 0;
        steps
            .into_iter()
            .map(|(gap, action)| {
                at += gap;
                (at, action)
            })
            .collect()
    })
}

/// Cases from a setup and a step strategy, with a random seed. The seed
/// never shrinks: a shrunk case is the same run with less in it.
pub fn case<P: Clone + fmt::Debug, A: Clone + fmt::Debug>(
    setup: impl Strategy<Value = P>,
    steps: impl Strategy<Value = Vec<(u64, A)>>,
) -> impl Strategy<Value = Case<P, A>> {
    (any::<u64>().no_shrink(), setup, steps).prop_map(|(seed, setup, steps)| Case {
        seed,
        setup,
        steps,
    })
}

/// A connected graph over `nodes` nodes, as an edge list: the first
/// `nodes - 1` edges are a spanning tree, `(i, parent)` with the parent an
/// earlier node; then extra edges `(a, b)`, `a != b`.
///
/// Its `Debug` output is the Rust expression.
#[derive(Clone, PartialEq, Eq)]
pub struct Topology {
    /// Nodes `0..nodes`.
    pub nodes: u32,
    /// The tree edges `(i, parent of i)` for `i` in `1..nodes`, then the
    /// extra edges.
    pub edges: Vec<(NodeIdx, NodeIdx)>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Topology {{ nodes: {}, edges: vec!{:?} }}",
            self.nodes, self.edges
        )
    }
}

impl Topology {
    /// Node `i`'s parent in the spanning tree (`None` for node 0).
    pub fn parent(&self, i: NodeIdx) -> Option<NodeIdx> {
        (i > 0).then(|| self.edges[i as usize - 1].1)
    }

    /// The edges beyond the spanning tree.
    pub fn extra_edges(&self) -> &[(NodeIdx, NodeIdx)] {
        &self.edges[self.nodes.saturating_sub(1) as usize..]
    }

    /// Node `i`'s neighbours, sorted, without repeats.
    pub fn neighbours(&self, i: NodeIdx) -> Vec<NodeIdx> {
        let mut out: Vec<NodeIdx> = self
            .edges
            .iter()
            .filter_map(|&(a, b)| match (a == i, b == i) {
                (true, false) => Some(b),
                (false, true) => Some(a),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether every node is reachable from node 0 over the edges.
    pub fn is_connected(&self) -> bool {
        let n = self.nodes as usize;
        if n == 0 {
            return true;
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for j in self.neighbours(i) {
                if !seen[j as usize] {
                    seen[j as usize] = true;
                    stack.push(j);
                }
            }
        }
        seen.into_iter().all(|s| s)
    }
}

/// A random connected [`Topology`]: a random spanning tree (each node
/// `i > 0` hangs off an earlier node) plus up to `max_extra` random extra
/// edges. Shrinks to fewer nodes (towards the range's start), fewer extra
/// edges and a tree hanging off node 0.
pub fn connected_topology(
    nodes: RangeInclusive<u32>,
    max_extra: usize,
) -> impl Strategy<Value = Topology> {
    let max = (*nodes.end()).max(1);
    let parents = prop::collection::vec(any::<u32>(), max as usize);
    let extra = prop::collection::vec((0..max, 1..max.max(2)), 0..=max_extra);
    (nodes, parents, extra).prop_map(|(n, parents, extra)| {
        let n = n.max(1);
        let mut edges: Vec<(NodeIdx, NodeIdx)> =
            (1..n).map(|i| (i, parents[i as usize] % i)).collect();
        if n > 1 {
            edges.extend(
                extra
                    .into_iter()
                    .map(|(a, off)| (a % n, (a % n + 1 + off % (n - 1)) % n))
                    .filter(|(a, b)| a != b),
            );
        }
        Topology { nodes: n, edges }
    })
}
