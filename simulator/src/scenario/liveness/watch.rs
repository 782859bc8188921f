//! The observer of a liveness run: who is connected to whom, and a
//! verdict on every `PeersEvent::Down` and `LivenessEvent::Suspect`.

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use ringmesh::{Duration, Event, Instant, LivenessEvent, NodeId, PeersEvent};

use crate::engine::{NodeIdx, Observer};

/// How a node was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureKind {
    /// Silently: only liveness reveals it.
    Crash,
    /// Killed: its connections reset.
    Kill,
}

/// A stopped node and the neighbours yet to declare it down.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) kind: FailureKind,
    /// When it stopped.
    pub(super) at: Instant,
    /// Neighbours that have not decided yet.
    waiting: Vec<NodeIdx>,
    /// Each neighbour's verdict, after the failure.
    pub(super) verdicts: Vec<Duration>,
    /// When the last neighbour decided.
    pub(super) done: Option<Instant>,
}

impl Failure {
    fn settle(&mut self, now: Instant) {
        if self.waiting.is_empty() && self.done.is_none() {
            let last = self.verdicts.iter().max().map_or(self.at, |d| self.at + *d);
            self.done = Some(last.min(now));
        }
    }
}

/// Follows who is connected to whom, and judges every `PeersEvent::Down`.
#[derive(Default)]
pub(super) struct LivenessWatch {
    pub(super) index: HashMap<NodeId, NodeIdx, FixedState>,
    /// `holders[p]`: the nodes that have `p` as an up peer.
    pub(super) holders: Vec<Vec<NodeIdx>>,
    /// Partition group per node (empty: never partitioned).
    pub(super) group: Vec<u16>,
    /// Verdicts across groups are expected until then.
    pub(super) partition_until: Option<Instant>,
    pub(super) stopped_at: Vec<Option<Instant>>,
    pub(super) failures: HashMap<NodeIdx, Failure, FixedState>,
    pub(super) false_positives: u64,
    pub(super) false_suspicions: u64,
    pub(super) partition_downs: u64,
    /// The first few false positives, for the error message.
    pub(super) examples: Vec<String>,
}

impl LivenessWatch {
    fn crosses_partition(&self, at: Instant, a: NodeIdx, b: NodeIdx) -> bool {
        self.partition_until.is_some_and(|until| at <= until)
            && self.group.get(a as usize) != self.group.get(b as usize)
    }

    fn is_up(&self, at: Instant, p: NodeIdx) -> bool {
        self.stopped_at[p as usize].is_none_or(|stop| at < stop)
    }

    /// Node `victim` stops now: remember who must notice.
    pub(super) fn stop(&mut self, at: Instant, victim: NodeIdx, kind: FailureKind) {
        let waiting: Vec<NodeIdx> = self.holders[victim as usize]
            .iter()
            .copied()
            .filter(|&h| self.is_up(at, h))
            .collect();
        self.stopped_at[victim as usize] = Some(at);
        // A neighbour that stops before deciding has nothing left to say.
        for failure in self.failures.values_mut() {
            failure.waiting.retain(|&h| h != victim);
            failure.settle(at);
        }
        let mut failure = Failure {
            kind,
            at,
            waiting,
            verdicts: Vec::new(),
            done: None,
        };
        failure.settle(at);
        self.failures.insert(victim, failure);
    }
}

impl Observer for LivenessWatch {
    fn on_event(&mut self, at: Instant, node: NodeIdx, event: &Event) {
        match event {
            Event::Peers(PeersEvent::Up { peer, .. }) => {
                if let Some(&p) = self.index.get(peer) {
                    let holders = &mut self.holders[p as usize];
                    if !holders.contains(&node) {
                        holders.push(node);
                    }
                }
            }
            Event::Peers(PeersEvent::Down { peer, reason }) => {
                let Some(&p) = self.index.get(peer) else {
                    return;
                };
                self.holders[p as usize].retain(|&h| h != node);
                if !self.is_up(at, p) {
                    if let Some(failure) = self.failures.get_mut(&p)
                        && let Some(k) = failure.waiting.iter().position(|&h| h == node)
                    {
                        failure.waiting.swap_remove(k);
                        failure.verdicts.push(at - failure.at);
                        failure.settle(at);
                    }
                } else if self.crosses_partition(at, node, p) {
                    self.partition_downs += 1;
                } else {
                    self.false_positives += 1;
                    if self.examples.len() < 3 {
                        self.examples.push(format!(
                            "node {node} declared live node {p} down at {at:?} ({reason})"
                        ));
                    }
                }
            }
            Event::Liveness(LivenessEvent::Suspect { peer }) => {
                if let Some(&p) = self.index.get(peer)
                    && self.is_up(at, p)
                    && !self.crosses_partition(at, node, p)
                {
                    self.false_suspicions += 1;
                }
            }
            _ => {}
        }
    }
}
