//! Maps keyed by node id as two parallel vectors sorted by id, grown four
//! entries at a time: the peer table (the established peers and their
//! links) and the peer cache's entries.
//!
//! A node has a handful of peers (8 in a flood simulation, at most
//! `peers.max_connections`), and a simulation holds a million nodes: a hash
//! table of 104-byte slots kept at most 7/8 full, and doubled when it is,
//! spent 1.3 KB a node on 8 peers; these vectors spend about what the peers
//! take (the ids, 16 bytes each, apart so that a lookup's binary search
//! reads one or two cache lines, then the value it found). Growing by one
//! entry at a time cost a reallocation per peer up (5 % of a flood's CPU);
//! by four, at most three spare slots. Inserting and removing move at most
//! a few dozen entries, once per peer up or down. A map that empties gives
//! its room back (a chord member's cache holds a guest entry per connected
//! peer, and a grown ring closes the links that left its routing set).

use crate::NodeId;

use super::PeerLink;

/// The established peers by id. See the module docs.
pub(super) type PeerTable = IdMap<PeerLink>;

/// Spare slots a full map grows by.
const GROW: usize = 4;

/// Values by node id, in id order. See the module docs.
pub(crate) struct IdMap<V> {
    ids: Vec<NodeId>,
    values: Vec<V>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            ids: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<V> IdMap<V> {
    fn find(&self, id: &NodeId) -> Result<usize, usize> {
        self.ids.binary_search(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(crate) fn contains_key(&self, id: &NodeId) -> bool {
        self.find(id).is_ok()
    }

    pub(crate) fn get(&self, id: &NodeId) -> Option<&V> {
        self.find(id).ok().map(|i| &self.values[i])
    }

    pub(crate) fn get_mut(&mut self, id: &NodeId) -> Option<&mut V> {
        self.find(id).ok().map(|i| &mut self.values[i])
    }

    /// Sets `id`'s value; the one it replaces, if any.
    pub(crate) fn insert(&mut self, id: NodeId, value: V) -> Option<V> {
        match self.find(&id) {
            Ok(i) => Some(core::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                // Four more, not double: a node's peer count changes rarely.
                if self.ids.len() == self.ids.capacity() {
                    self.ids.reserve_exact(GROW);
                }
                if self.values.len() == self.values.capacity() {
                    self.values.reserve_exact(GROW);
                }
                self.ids.insert(i, id);
                self.values.insert(i, value);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &NodeId) -> Option<V> {
        let i = self.find(id).ok()?;
        self.ids.remove(i);
        let value = self.values.remove(i);
        if self.ids.capacity() > 2 * self.ids.len() + 2 * GROW {
            self.ids.shrink_to(self.ids.len() + GROW);
            self.values.shrink_to(self.values.len() + GROW);
        }
        Some(value)
    }

    /// The ids, in id order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &NodeId> {
        self.ids.iter()
    }

    /// The values, in id order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }

    /// Every id and its value, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &V)> {
        self.ids.iter().zip(&self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnId;

    fn link(n: u64) -> PeerLink {
        PeerLink {
            conn: ConnId::inbound(n),
            generation: n,
            liveness: Default::default(),
        }
    }

    proptest::proptest! {
        /// The table answers as a map would, whatever the order of inserts
        /// and removes, and lists its peers in id order.
        #[test]
        fn the_peer_table_behaves_as_a_map(
            ops in proptest::collection::vec((proptest::bool::ANY, 0u128..20), 0..200)
        ) {
            let mut table = PeerTable::default();
            let mut model = std::collections::BTreeMap::new();
            for (k, (insert, id)) in ops.into_iter().enumerate() {
                let id = NodeId::from_u128(id);
                if insert {
                    let old = table.insert(id, link(k as u64)).map(|l| l.generation);
                    proptest::prop_assert_eq!(old, model.insert(id, k as u64));
                } else {
                    let old = table.remove(&id).map(|l| l.generation);
                    proptest::prop_assert_eq!(old, model.remove(&id));
                }
                proptest::prop_assert_eq!(table.len(), model.len());
                for (id, generation) in &model {
                    proptest::prop_assert_eq!(table.get(id).map(|l| l.generation), Some(*generation));
                }
                let listed: Vec<(NodeId, u64)> =
                    table.iter().map(|(id, l)| (*id, l.generation)).collect();
                let expected: Vec<(NodeId, u64)> = model.iter().map(|(id, g)| (*id, *g)).collect();
                proptest::prop_assert_eq!(listed, expected);
            }
        }
    }
}
