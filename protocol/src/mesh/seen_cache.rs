//! Which broadcasts a node has already seen, bounded in entries and age.

use std::collections::VecDeque;

use foldhash::fast::FixedState;
use hashbrown::HashSet;

use crate::NodeId;
use crate::time::{Duration, Instant};

/// A broadcast's network-wide identity.
pub(crate) type MessageKey = (NodeId, u64);

/// Remembers broadcast ids for `ttl`, at most `capacity` of them, evicting
/// the oldest first. Its memory is fixed by `capacity` (the set and the
/// queue never hold more), whatever the traffic.
///
/// An id evicted early (by capacity, under a flood) may be delivered again
/// if the same message comes back later; the hop limit still ends it.
/// `evicted_early` counts those evictions so an operator can raise the cap.
pub(crate) struct SeenCache {
    set: HashSet<MessageKey, FixedState>,
    /// Insertion order, for expiry; the same keys as `set`.
    order: VecDeque<(Instant, MessageKey)>,
    capacity: usize,
    ttl: Duration,
    pub(crate) evicted_early: u64,
}

impl SeenCache {
    pub(crate) fn new(capacity: usize, ttl: Duration, hasher: FixedState) -> Self {
        SeenCache {
            set: HashSet::with_hasher(hasher),
            order: VecDeque::new(),
            capacity,
            ttl,
            evicted_early: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    /// Records `key` at `now`; returns whether it was new.
    pub(crate) fn insert(&mut self, key: MessageKey, now: Instant) -> bool {
        self.expire(now);
        if self.set.contains(&key) {
            return false;
        }
        if self.set.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.set.remove(&oldest);
            self.evicted_early += 1;
        }
        self.set.insert(key);
        self.order.push_back((now, key));
        true
    }

    /// Forgets ids older than the ttl.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            if at + self.ttl > now {
                break;
            }
            self.order.pop_front();
            self.set.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> MessageKey {
        (NodeId::from_u128(7), n)
    }

    #[test]
    fn a_seen_id_is_refused_until_it_ages_out() {
        let ttl = Duration::from_secs(10);
        let mut cache = SeenCache::new(100, ttl, FixedState::with_seed(1));
        let t0 = Instant::ZERO;
        assert!(cache.insert(key(1), t0));
        assert!(!cache.insert(key(1), t0 + Duration::from_secs(9)));
        assert!(cache.insert(key(1), t0 + ttl));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn capacity_evicts_the_oldest_and_counts_it() {
        let mut cache = SeenCache::new(3, Duration::from_secs(60), FixedState::with_seed(1));
        for n in 0..5 {
            assert!(cache.insert(key(n), Instant::ZERO));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evicted_early, 2);
        assert!(!cache.insert(key(4), Instant::ZERO));
        assert!(cache.insert(key(0), Instant::ZERO), "evicted, so new again");
    }
}
