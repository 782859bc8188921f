//! Relayed addresses (`spec/relay.md` §3): which relays other nodes hold
//! reservations at, as `RelayAddrs` told this node, so that a dial to a
//! node nobody can reach directly goes through *its* relay. A table keyed
//! by node id, at most `max_relay_addrs` nodes (the least recently heard
//! evicted, counted) of at most [`MAX_RELAYS_PER_NODE`] relays each.

use core::net::SocketAddr;
use std::collections::BTreeMap;

use crate::NodeId;
use crate::wire::RelayAddr;

/// Relays remembered per node (the newest replaces the oldest).
pub(super) const MAX_RELAYS_PER_NODE: usize = 4;

/// A node's relays, newest first, and when it was last heard of.
struct Known {
    relays: Vec<(NodeId, SocketAddr)>,
    stamp: u64,
}

/// The table. Deterministic: `BTreeMap`s, and a stamp counter for the
/// order of hearing (no clock needed).
pub(super) struct RelayAddrTable {
    by_node: BTreeMap<NodeId, Known>,
    /// `stamp` → node, oldest first: the eviction order.
    by_stamp: BTreeMap<u64, NodeId>,
    next_stamp: u64,
}

/// What [`RelayAddrTable::learn`] did with one entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Learned {
    /// Stored (new, or heard again).
    Stored,
    /// Stored, and another node's relays were evicted to make room.
    Evicted,
    /// Not stored: the table holds no room at all (`cap` 0).
    Dropped,
}

impl RelayAddrTable {
    pub(super) fn new() -> Self {
        RelayAddrTable {
            by_node: BTreeMap::new(),
            by_stamp: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_node.len()
    }

    /// Records "`entry.node` is reachable through `entry.relay`": heard
    /// now, the relay first among the node's, within `cap` nodes.
    pub(super) fn learn(&mut self, entry: &RelayAddr, cap: usize) -> Learned {
        if cap == 0 {
            return Learned::Dropped;
        }
        let mut result = Learned::Stored;
        if !self.by_node.contains_key(&entry.node) && self.by_node.len() >= cap {
            if let Some((_, oldest)) = self.by_stamp.pop_first() {
                self.by_node.remove(&oldest);
            }
            result = Learned::Evicted;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let known = self.by_node.entry(entry.node).or_insert(Known {
            relays: Vec::new(),
            stamp,
        });
        self.by_stamp.remove(&known.stamp);
        known.stamp = stamp;
        self.by_stamp.insert(stamp, entry.node);
        known.relays.retain(|&(relay, _)| relay != entry.relay);
        known.relays.insert(0, (entry.relay, entry.relay_addr));
        known.relays.truncate(MAX_RELAYS_PER_NODE);
        result
    }

    /// `node`'s relays, newest first.
    pub(super) fn relays_of(&self, node: NodeId) -> &[(NodeId, SocketAddr)] {
        self.by_node.get(&node).map_or(&[], |k| &k.relays)
    }

    /// Forgets that `node` is reachable through `relay` (it refused a
    /// circuit to it: the reservation is gone).
    pub(super) fn forget(&mut self, node: NodeId, relay: NodeId) {
        if let Some(known) = self.by_node.get_mut(&node) {
            known.relays.retain(|&(r, _)| r != relay);
            if known.relays.is_empty() {
                let stamp = known.stamp;
                self.by_node.remove(&node);
                self.by_stamp.remove(&stamp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> NodeId {
        NodeId::from_u128(n)
    }

    fn entry(node: u128, relay: u128) -> RelayAddr {
        RelayAddr {
            node: id(node),
            relay: id(relay),
            relay_addr: SocketAddr::from(([192, 0, 2, relay as u8], 4000)),
        }
    }

    #[test]
    fn the_least_recently_heard_node_is_evicted_at_the_cap() {
        let mut table = RelayAddrTable::new();
        assert_eq!(table.learn(&entry(1, 100), 2), Learned::Stored);
        assert_eq!(table.learn(&entry(2, 100), 2), Learned::Stored);
        // Node 1 heard again: node 2 is now the oldest.
        assert_eq!(table.learn(&entry(1, 101), 2), Learned::Stored);
        assert_eq!(table.learn(&entry(3, 100), 2), Learned::Evicted);
        assert_eq!(table.len(), 2);
        assert!(table.relays_of(id(2)).is_empty());
        let relays: Vec<NodeId> = table.relays_of(id(1)).iter().map(|r| r.0).collect();
        assert_eq!(relays, vec![id(101), id(100)]);
        assert_eq!(table.learn(&entry(4, 100), 0), Learned::Dropped);
    }

    #[test]
    fn a_node_keeps_its_newest_relays_only() {
        let mut table = RelayAddrTable::new();
        for relay in 100..110 {
            table.learn(&entry(1, relay), 8);
        }
        let relays: Vec<NodeId> = table.relays_of(id(1)).iter().map(|r| r.0).collect();
        assert_eq!(relays, vec![id(109), id(108), id(107), id(106)]);
        table.forget(id(1), id(109));
        assert_eq!(table.relays_of(id(1)).len(), 3);
        for relay in 106..109 {
            table.forget(id(1), id(relay));
        }
        assert_eq!(table.len(), 0);
        // The stamp index went with it: a full table of others evicts no
        // phantom.
        assert_eq!(table.learn(&entry(2, 100), 1), Learned::Stored);
    }
}
