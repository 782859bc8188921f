//! The peer cache: nodes this node has heard of, with their listen
//! addresses, capped at `PeersConfig::max_known_peers`.

use core::net::SocketAddr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::NodeId;
use crate::time::Instant;
use crate::wire::{MAX_LISTEN_ADDRS, PeerEntry};

/// What the node knows about one other node.
#[derive(Debug, Clone)]
pub(crate) struct KnownPeer {
    /// Where it accepts connections.
    pub(crate) addrs: SmallVec<[SocketAddr; 2]>,
    /// The addresses came from the node itself (its `Hello`), not from
    /// gossip.
    pub(crate) confirmed: bool,
    /// Failed dials since the last established session.
    pub(crate) failures: u32,
    /// No dial before this.
    pub(crate) next_dial_at: Instant,
    /// The application asked for this peer: it is redialled whenever it is
    /// not connected, whatever the peer count.
    pub(crate) wanted: bool,
    /// When a session with it was last established.
    pub(crate) last_connected: Option<Instant>,
    /// It was up and was lost to a fault (reset, silence): it is redialled
    /// even when the node is at its target, until it is back or
    /// [`LOST_REDIALS`] dials have failed. This is what reconnects two
    /// halves of a network that each filled up on their own side (py2p
    /// issue #58).
    pub(crate) lost: bool,
}

/// Redials of a peer lost to a fault, whatever the peer count.
pub(crate) const LOST_REDIALS: u32 = 8;

/// Known nodes by id. Gossip never displaces an entry that has worked:
/// when the cache is full, a gossiped newcomer only replaces an entry whose
/// dials have failed, so a flood of invented entries cannot wash out the
/// peers that were real.
pub(crate) struct PeerCache {
    entries: HashMap<NodeId, KnownPeer, FixedState>,
    cap: usize,
    me: NodeId,
}

impl PeerCache {
    pub(crate) fn new(me: NodeId, cap: usize, hasher: FixedState) -> Self {
        PeerCache {
            entries: HashMap::with_hasher(hasher),
            cap,
            me,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, id: &NodeId) -> Option<&KnownPeer> {
        self.entries.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &NodeId) -> Option<&mut KnownPeer> {
        self.entries.get_mut(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &KnownPeer)> {
        self.entries.iter()
    }

    /// Records addresses a node announced itself (its `Hello`). Kept even
    /// when the cache is full, at the cost of its worst unwanted entry.
    pub(crate) fn confirm(&mut self, id: NodeId, addrs: &[SocketAddr], now: Instant) {
        if id == self.me {
            return;
        }
        if !self.entries.contains_key(&id) && self.entries.len() >= self.cap && !self.evict(true) {
            // Every entry is wanted: the application's choices stand.
            return;
        }
        let entry = self.entries.entry(id).or_insert_with(|| KnownPeer {
            addrs: SmallVec::new(),
            confirmed: false,
            failures: 0,
            next_dial_at: now,
            wanted: false,
            last_connected: None,
            lost: false,
        });
        if !addrs.is_empty() {
            entry.addrs = addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect();
            entry.confirmed = true;
        }
        entry.failures = 0;
        entry.last_connected = Some(now);
        entry.lost = false;
    }

    /// Records a gossiped entry (a `PeerList`, or `PeersCommand::AddPeers`).
    /// Returns whether the cache changed.
    pub(crate) fn learn(&mut self, entry: &PeerEntry, now: Instant) -> bool {
        if entry.id == self.me || entry.addrs.is_empty() {
            return false;
        }
        if let Some(known) = self.entries.get_mut(&entry.id) {
            // A node's own word beats gossip; gossip fills a blank.
            if known.confirmed || known.addrs == entry.addrs {
                return false;
            }
            known.addrs = entry.addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect();
            return true;
        }
        if self.entries.len() >= self.cap && !self.evict(false) {
            return false;
        }
        self.entries.insert(
            entry.id,
            KnownPeer {
                addrs: entry.addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect(),
                confirmed: false,
                failures: 0,
                next_dial_at: now,
                wanted: false,
                last_connected: None,
                lost: false,
            },
        );
        true
    }

    /// Drops the least useful unwanted entry: most failures, then never or
    /// longest ago connected, then lowest id (deterministic). With `force`
    /// false only an entry with failures is dropped. O(n), paid only when
    /// the cache is full and something new arrives.
    fn evict(&mut self, force: bool) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|(_, p)| !p.wanted && (force || p.failures > 0))
            .max_by_key(|(id, p)| {
                (
                    p.failures,
                    core::cmp::Reverse(p.last_connected),
                    core::cmp::Reverse(**id),
                )
            })
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.entries.remove(&id);
                true
            }
            None => false,
        }
    }

    /// The entries, in id order, each with its addresses (for
    /// `Node::known_peers`).
    pub(crate) fn export(&self) -> Vec<PeerEntry> {
        let mut out: Vec<PeerEntry> = self
            .entries
            .iter()
            .filter(|(_, p)| !p.addrs.is_empty())
            .map(|(&id, p)| PeerEntry {
                id,
                addrs: p.addrs.clone(),
            })
            .collect();
        out.sort_unstable_by_key(|e| e.id);
        out
    }

    /// The entry for `id` as gossip, if it has addresses.
    pub(crate) fn entry(&self, id: NodeId) -> Option<PeerEntry> {
        self.entries
            .get(&id)
            .filter(|p| !p.addrs.is_empty())
            .map(|p| PeerEntry {
                id,
                addrs: p.addrs.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u128) -> PeerEntry {
        PeerEntry {
            id: NodeId::from_u128(n),
            addrs: SmallVec::from_slice(&[SocketAddr::from(([10, 0, 0, n as u8], 7000))]),
        }
    }

    #[test]
    fn gossip_fills_the_cache_but_never_displaces_a_working_peer() {
        let mut cache = PeerCache::new(NodeId::from_u128(0), 4, FixedState::with_seed(1));
        let now = Instant::ZERO;
        for n in 1..=4 {
            assert!(cache.learn(&entry(n), now));
        }
        assert!(!cache.learn(&entry(5), now), "full of untried entries");
        cache
            .get_mut(&NodeId::from_u128(2))
            .expect("known")
            .failures = 3;
        assert!(cache.learn(&entry(6), now), "replaces the failing entry");
        assert!(cache.get(&NodeId::from_u128(2)).is_none());
        assert_eq!(cache.len(), 4);
        // A node's own hello always gets in.
        cache.confirm(NodeId::from_u128(7), &entry(7).addrs, now);
        assert_eq!(cache.len(), 4);
        assert!(
            cache
                .get(&NodeId::from_u128(7))
                .is_some_and(|p| p.confirmed)
        );
    }

    #[test]
    fn gossip_does_not_override_what_a_node_said_about_itself() {
        let mut cache = PeerCache::new(NodeId::from_u128(0), 8, FixedState::with_seed(1));
        let own = entry(1);
        cache.confirm(own.id, &own.addrs, Instant::ZERO);
        let mut lie = entry(1);
        lie.addrs[0] = SocketAddr::from(([6, 6, 6, 6], 1));
        assert!(!cache.learn(&lie, Instant::ZERO));
        assert_eq!(cache.entry(own.id), Some(own));
        assert!(!cache.learn(&entry(0), Instant::ZERO), "never itself");
    }
}
