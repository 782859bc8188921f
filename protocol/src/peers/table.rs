//! Maps as two parallel vectors sorted by key, grown four entries at a
//! time: the peer table (the established peers and their links), the
//! peer cache's entries (both keyed by node id) and the connection table
//! (keyed by connection id).
//!
//! A node has a handful of peers (8 in a flood simulation, at most
//! `peers.max_connections`), and a simulation holds a million nodes: a hash
//! table of 104-byte slots kept at most 7/8 full, and doubled when it is,
//! spent 1.3 KB a node on 8 peers; these vectors spend about what the peers
//! take (the keys apart, so that a lookup's binary search reads one or two
//! cache lines, then the value it found). Growing by one entry at a time
//! cost a reallocation per peer up (5 % of a flood's CPU); by four, at most
//! three spare slots. Inserting and removing move at most a few dozen
//! entries, once per peer (or connection) up or down. A map that empties
//! gives its room back (a chord member's cache holds a guest entry per
//! connected peer, and a grown ring closes the links that left its routing
//! set). The connection table was a hash map of boxed connections: 64
//! buckets of 17 bytes for a chord member's ~38 connections (about 1 KB a
//! member), where these vectors take 16 bytes a connection; nothing
//! depends on its order (every choice among connections sorts by
//! connection id or breaks ties by it).

use core::ops::Index;

use crate::{ConnId, NodeId};

use super::{Connection, PeerLink};

/// The established peers by id. See the module docs.
pub(super) type PeerTable = IdMap<PeerLink>;

/// The connections by id (boxed: a connection is 112 bytes, and the
/// vectors move their entries on every insert and remove).
pub(super) type ConnTable = VecMap<ConnId, Box<Connection>>;

/// Values by node id, in id order. See the module docs.
pub(crate) type IdMap<V> = VecMap<NodeId, V>;

/// Spare slots a full map grows by.
const GROW: usize = 4;

/// Values by key, in key order. See the module docs.
pub(crate) struct VecMap<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    fn find(&self, key: &K) -> Result<usize, usize> {
        self.keys.binary_search(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_ok()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.find(key).ok().map(|i| &self.values[i])
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.values[i])
    }

    /// Sets `key`'s value; the one it replaces, if any.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(core::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                // Four more, not double: a node's peer count changes rarely.
                if self.keys.len() == self.keys.capacity() {
                    self.keys.reserve_exact(GROW);
                }
                if self.values.len() == self.values.capacity() {
                    self.values.reserve_exact(GROW);
                }
                self.keys.insert(i, key);
                self.values.insert(i, value);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key).ok()?;
        self.keys.remove(i);
        let value = self.values.remove(i);
        if self.keys.capacity() > 2 * self.keys.len() + 2 * GROW {
            self.keys.shrink_to(self.keys.len() + GROW);
            self.values.shrink_to(self.values.len() + GROW);
        }
        Some(value)
    }

    /// The keys, in key order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.keys.iter()
    }

    /// The values, in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }

    /// Every key and its value, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.keys.iter().zip(&self.values)
    }
}

impl<K: Ord, V> Index<&K> for VecMap<K, V> {
    type Output = V;

    /// `key`'s value; panics if there is none (as a hash map's index).
    fn index(&self, key: &K) -> &V {
        self.get(key).expect("no entry for the key")
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = core::iter::Zip<core::slice::Iter<'a, K>, core::slice::Iter<'a, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter().zip(&self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: u64) -> PeerLink {
        PeerLink {
            conn: ConnId::inbound(n),
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
                    let old = table.insert(id, link(k as u64)).map(|l| l.conn);
                    proptest::prop_assert_eq!(old, model.insert(id, ConnId::inbound(k as u64)));
                } else {
                    let old = table.remove(&id).map(|l| l.conn);
                    proptest::prop_assert_eq!(old, model.remove(&id));
                }
                proptest::prop_assert_eq!(table.len(), model.len());
                for (id, conn) in &model {
                    proptest::prop_assert_eq!(table.get(id).map(|l| l.conn), Some(*conn));
                }
                let listed: Vec<(NodeId, ConnId)> =
                    table.iter().map(|(id, l)| (*id, l.conn)).collect();
                let expected: Vec<(NodeId, ConnId)> = model.iter().map(|(id, c)| (*id, *c)).collect();
                proptest::prop_assert_eq!(listed, expected);
            }
        }
    }
}
