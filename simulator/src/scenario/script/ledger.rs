//! The ledger: every event, tagged with its node's incarnation, and the
//! broadcast safety invariants checked as each delivery happens.

use std::collections::{HashMap, HashSet};

use ringmesh::{Event, Instant, MeshEvent, NodeId};

use crate::engine::{NodeIdx, Observer};

/// One event as a [`Ledger`] keeps it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// When it was emitted.
    pub at: Instant,
    /// The node that emitted it.
    pub node: NodeIdx,
    /// Which run of that node's process: 0 until its first restart.
    pub incarnation: u32,
    /// The event.
    pub event: Event,
}

/// A broadcast delivery that broke a safety invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadDelivery {
    /// When it was delivered.
    pub at: Instant,
    /// The node that delivered it.
    pub node: NodeIdx,
    /// The node's incarnation.
    pub incarnation: u32,
    /// The broadcast's origin.
    pub origin: NodeId,
    /// The broadcast's sequence number.
    pub seq: u64,
}

/// An [`Observer`] that keeps every event, tagged with the incarnation of
/// the node that emitted it, and checks two safety invariants at each
/// `Event::Mesh(MeshEvent::Broadcast)` as it happens: no node delivers a broadcast twice in
/// one incarnation, and every delivered `(origin, seq)` was announced with
/// [`Ledger::broadcast_sent`].
///
/// The driver tells it about restarts ([`Ledger::restarting`]), since a
/// restarted node rightly forgets what it delivered before.
#[derive(Debug, Default)]
pub struct Ledger {
    events: Vec<Logged>,
    incarnations: Vec<u32>,
    sent: HashSet<(NodeId, u64)>,
    delivered: HashMap<(NodeIdx, u32, NodeId, u64), u32>,
    double: Vec<BadDelivery>,
    unknown: Vec<BadDelivery>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Node `node` is about to restart: its later events belong to its next
    /// incarnation. Call only when it really restarts (it was down).
    pub fn restarting(&mut self, node: NodeIdx) {
        let i = node as usize;
        if self.incarnations.len() <= i {
            self.incarnations.resize(i + 1, 0);
        }
        self.incarnations[i] += 1;
    }

    /// Node `node`'s current incarnation (0 until its first restart).
    pub fn incarnation(&self, node: NodeIdx) -> u32 {
        self.incarnations.get(node as usize).copied().unwrap_or(0)
    }

    /// `origin` broadcast `seq` (as `Accepted::Broadcast { seq }` said).
    pub fn broadcast_sent(&mut self, origin: NodeId, seq: u64) {
        self.sent.insert((origin, seq));
    }

    /// Every event so far, in order.
    pub fn events(&self) -> &[Logged] {
        &self.events
    }

    /// How often `node` delivered `(origin, seq)`: in one incarnation, or in
    /// all of them with `None`.
    pub fn deliveries(
        &self,
        node: NodeIdx,
        incarnation: Option<u32>,
        origin: NodeId,
        seq: u64,
    ) -> u32 {
        match incarnation {
            Some(inc) => self
                .delivered
                .get(&(node, inc, origin, seq))
                .copied()
                .unwrap_or(0),
            None => (0..=self.incarnation(node))
                .map(|inc| self.deliveries(node, Some(inc), origin, seq))
                .sum(),
        }
    }

    /// Deliveries of a broadcast the node had already delivered in the same
    /// incarnation (must be empty).
    pub fn double_deliveries(&self) -> &[BadDelivery] {
        &self.double
    }

    /// Deliveries of an `(origin, seq)` nobody broadcast (must be empty).
    pub fn unknown_deliveries(&self) -> &[BadDelivery] {
        &self.unknown
    }
}

impl Observer for Ledger {
    fn on_event(&mut self, at: Instant, node: NodeIdx, event: &Event) {
        let incarnation = self.incarnation(node);
        if let Event::Mesh(MeshEvent::Broadcast { origin, seq, .. }) = event {
            let bad = BadDelivery {
                at,
                node,
                incarnation,
                origin: *origin,
                seq: *seq,
            };
            let count = self
                .delivered
                .entry((node, incarnation, *origin, *seq))
                .or_default();
            *count += 1;
            if *count > 1 {
                self.double.push(bad);
            }
            if !self.sent.contains(&(*origin, *seq)) {
                self.unknown.push(bad);
            }
        }
        self.events.push(Logged {
            at,
            node,
            incarnation,
            event: event.clone(),
        });
    }
}
