//! [`RingView`]: the node's place in the ring, as the program shows it.
//! The adapter's observer feeds it when it changes
//! ([`network`](crate::network)), the console prints it
//! ([`display`](crate::display)).

use ringmesh::{ChordRole, Node, NodeId};

/// The node's place in the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingView {
    pub(crate) role: ChordRole,
    /// Nearest first.
    pub(crate) successors: Vec<NodeId>,
    pub(crate) predecessor: Option<NodeId>,
    /// Table entries (values and tombstones) this node stores, and their
    /// bytes.
    pub(crate) stored: (usize, usize),
}

impl RingView {
    pub(crate) fn of(node: &Node) -> RingView {
        RingView {
            role: node.chord_role(),
            successors: node.chord_successors(),
            predecessor: node.chord_predecessor(),
            stored: {
                let usage = node.dht_usage();
                (usage.entries, usage.bytes)
            },
        }
    }

    /// Whether the ring part (not the table usage) differs.
    pub(crate) fn ring_differs(&self, other: &RingView) -> bool {
        self.role != other.role
            || self.successors != other.successors
            || self.predecessor != other.predecessor
    }
}
