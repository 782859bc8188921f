//! The engine's connection ends, kept per node: vectors sorted by
//! [`ConnId`] for each node, grown a few entries at a time.
//!
//! One hash map keyed by `(node, connection)` for the whole run had to be
//! reserved for the most ends the run could hold (doubling a map of
//! millions mid-run peaks at one and a half times it), and a map's slots
//! are at most 7/8 full: 5.1 KB a member in a 10,000-member chord run
//! holding 38 ends a member, where the ends themselves are 1.5 KB. A
//! node's vector holds its ends and at most a few spare slots. Lookups are
//! a binary search over one node's few dozen ends; a crashed node's ends
//! come out in connection order, the order the engine acts on them in.

use ringmesh::ConnId;

use super::{ConnEnd, NodeIdx};

/// Spare slots a node's vectors grow by when they are full.
const GROW: usize = 4;

/// One node's ends, sorted by connection id; the ids apart, so that a
/// lookup's binary search reads a few hundred bytes, then the end it found.
#[derive(Default)]
struct NodeEnds {
    ids: Vec<ConnId>,
    ends: Vec<ConnEnd>,
}

/// Every connection end, by node. See the module docs.
#[derive(Default)]
pub(super) struct ConnTable {
    by_node: Vec<NodeEnds>,
}

impl ConnTable {
    /// Makes room for `nodes` more nodes' (empty) lists.
    pub(super) fn reserve_nodes(&mut self, nodes: usize) {
        self.by_node.reserve_exact(nodes);
    }

    fn find(&self, node: NodeIdx, conn: ConnId) -> Option<usize> {
        self.by_node
            .get(node as usize)?
            .ids
            .binary_search(&conn)
            .ok()
    }

    pub(super) fn get(&self, node: NodeIdx, conn: ConnId) -> Option<&ConnEnd> {
        let i = self.find(node, conn)?;
        Some(&self.by_node[node as usize].ends[i])
    }

    pub(super) fn get_mut(&mut self, node: NodeIdx, conn: ConnId) -> Option<&mut ConnEnd> {
        let i = self.find(node, conn)?;
        Some(&mut self.by_node[node as usize].ends[i])
    }

    /// Sets `node`'s end of `conn` (replacing any).
    pub(super) fn insert(&mut self, node: NodeIdx, conn: ConnId, end: ConnEnd) {
        let n = node as usize;
        if self.by_node.len() <= n {
            self.by_node.resize_with(n + 1, NodeEnds::default);
        }
        let node = &mut self.by_node[n];
        match node.ids.binary_search(&conn) {
            Ok(i) => node.ends[i] = end,
            Err(i) => {
                if node.ids.len() == node.ids.capacity() {
                    node.ids.reserve_exact(GROW);
                    node.ends.reserve_exact(GROW);
                }
                node.ids.insert(i, conn);
                node.ends.insert(i, end);
            }
        }
    }

    pub(super) fn remove(&mut self, node: NodeIdx, conn: ConnId) -> Option<ConnEnd> {
        let i = self.find(node, conn)?;
        let node = &mut self.by_node[node as usize];
        node.ids.remove(i);
        let end = node.ends.remove(i);
        // A node that held many connections and now holds few gives the
        // room back (a grown ring closes the links that left its routing
        // set).
        if node.ids.capacity() > 2 * node.ids.len() + 2 * GROW {
            node.ids.shrink_to(node.ids.len() + GROW);
            node.ends.shrink_to(node.ends.len() + GROW);
        }
        Some(end)
    }

    /// Removes and returns every end of `node`, in connection order.
    pub(super) fn take_node(&mut self, node: NodeIdx) -> Vec<(ConnId, ConnEnd)> {
        let Some(node) = self.by_node.get_mut(node as usize) else {
            return Vec::new();
        };
        let NodeEnds { ids, ends } = std::mem::take(node);
        ids.into_iter().zip(ends).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::BROKEN;
    use super::*;

    fn end(peer: NodeIdx) -> ConnEnd {
        ConnEnd::new(peer, ConnId::inbound(u64::from(peer)), 0)
    }

    /// A chord member holds ~37 ends: their size is memory per member.
    #[test]
    fn an_end_takes_24_bytes_and_keeps_its_flag_apart_from_its_incarnation() {
        assert_eq!(core::mem::size_of::<ConnEnd>(), 24);
        let mut e = ConnEnd::new(3, ConnId::inbound(4), BROKEN - 1);
        assert!(!e.broken());
        e.set_broken();
        assert!(e.broken());
        assert_eq!(e.peer_incarnation(), BROKEN - 1);
    }

    #[test]
    fn ends_are_found_replaced_removed_and_taken_in_connection_order() {
        let mut table = ConnTable::default();
        for c in [5u64, 1, 9, 3] {
            table.insert(2, ConnId::inbound(c), end(c as NodeIdx));
        }
        table.insert(7, ConnId::inbound(1), end(70));
        assert_eq!(table.get(2, ConnId::inbound(9)).map(|e| e.peer), Some(9));
        assert!(table.get(2, ConnId::inbound(2)).is_none());
        assert!(table.get(40, ConnId::inbound(1)).is_none());
        table.insert(2, ConnId::inbound(9), end(90));
        assert_eq!(table.get(2, ConnId::inbound(9)).map(|e| e.peer), Some(90));
        if let Some(e) = table.get_mut(2, ConnId::inbound(3)) {
            e.set_broken();
        }
        assert_eq!(table.remove(2, ConnId::inbound(1)).map(|e| e.peer), Some(1));
        assert!(table.remove(2, ConnId::inbound(1)).is_none());
        let taken: Vec<_> = table
            .take_node(2)
            .into_iter()
            .map(|(c, e)| (c, e.peer, e.broken()))
            .collect();
        assert_eq!(
            taken,
            vec![
                (ConnId::inbound(3), 3, true),
                (ConnId::inbound(5), 5, false),
                (ConnId::inbound(9), 90, false)
            ]
        );
        assert!(table.take_node(2).is_empty());
        assert_eq!(table.get(7, ConnId::inbound(1)).map(|e| e.peer), Some(70));
    }

    #[test]
    fn a_node_that_closes_most_of_its_connections_gives_the_room_back() {
        let mut table = ConnTable::default();
        for c in 0..64u64 {
            table.insert(0, ConnId::inbound(c), end(1));
        }
        for c in 0..60u64 {
            table.remove(0, ConnId::inbound(c));
        }
        assert!(table.by_node[0].ids.capacity() <= 2 * 4 + 2 * GROW);
        assert_eq!(table.take_node(0).len(), 4);
    }
}
