//! The peer table: the established peers and their links, as two parallel
//! vectors sorted by id, grown four entries at a time.
//!
//! A node has a handful of peers (8 in a flood simulation, at most
//! `peers.max_connections`), and a simulation holds a million nodes: a hash
//! table of 104-byte slots kept at most 7/8 full, and doubled when it is,
//! spent 1.3 KB a node on 8 peers; these vectors spend about what the peers
//! take (the ids, 16 bytes each, apart so that a lookup's binary search
//! reads one or two cache lines, then the link it found). Growing by one
//! entry at a time cost a reallocation per peer up (5 % of a flood's CPU);
//! by four, at most three spare slots. Inserting and removing move at most
//! `max_connections` entries, once per peer up or down.

use crate::NodeId;

use super::PeerLink;

/// The established peers by id. See the module docs.
#[derive(Default)]
pub(super) struct PeerTable {
    ids: Vec<NodeId>,
    links: Vec<PeerLink>,
}

impl PeerTable {
    fn find(&self, id: &NodeId) -> Result<usize, usize> {
        self.ids.binary_search(id)
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(super) fn contains_key(&self, id: &NodeId) -> bool {
        self.find(id).is_ok()
    }

    pub(super) fn get(&self, id: &NodeId) -> Option<&PeerLink> {
        self.find(id).ok().map(|i| &self.links[i])
    }

    pub(super) fn get_mut(&mut self, id: &NodeId) -> Option<&mut PeerLink> {
        self.find(id).ok().map(|i| &mut self.links[i])
    }

    /// Sets `id`'s link; the one it replaces, if any.
    pub(super) fn insert(&mut self, id: NodeId, link: PeerLink) -> Option<PeerLink> {
        match self.find(&id) {
            Ok(i) => Some(core::mem::replace(&mut self.links[i], link)),
            Err(i) => {
                // Four more, not double: a node's peer count changes rarely.
                if self.ids.len() == self.ids.capacity() {
                    self.ids.reserve_exact(4);
                    self.links.reserve_exact(4);
                }
                self.ids.insert(i, id);
                self.links.insert(i, link);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, id: &NodeId) -> Option<PeerLink> {
        let i = self.find(id).ok()?;
        self.ids.remove(i);
        Some(self.links.remove(i))
    }

    /// The peers' ids, in id order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &NodeId> {
        self.ids.iter()
    }

    /// Every peer and its link, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&NodeId, &PeerLink)> {
        self.ids.iter().zip(&self.links)
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
