//! The ground truth of a chord run, kept up to date as it goes: the live
//! ring members in ring order, and every member's recent best successors.

use std::collections::BTreeSet;
use std::ops::Bound;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use ringmesh::Instant;

use super::ids::in_half_open;
use crate::engine::NodeIdx;

/// The ground truth: who is a live ring member, kept up to date on every
/// join and failure, so no question about it costs O(N).
#[derive(Default)]
pub(crate) struct Truth {
    /// Live members' ids, in ring order.
    ids: BTreeSet<u128>,
    /// Member id → its node.
    pub(crate) by_id: HashMap<u128, NodeIdx, FixedState>,
    /// Live members, in no order (for random picks).
    pub(crate) members: Vec<NodeIdx>,
    /// Each node's position in `members`.
    slot: HashMap<NodeIdx, usize, FixedState>,
}

impl Truth {
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn is_member(&self, id: u128) -> bool {
        self.ids.contains(&id)
    }

    pub(crate) fn add(&mut self, i: NodeIdx, id: u128) {
        if self.ids.insert(id) {
            self.by_id.insert(id, i);
            self.slot.insert(i, self.members.len());
            self.members.push(i);
        }
    }

    pub(crate) fn remove(&mut self, i: NodeIdx, id: u128) {
        if self.ids.remove(&id) {
            self.by_id.remove(&id);
            if let Some(at) = self.slot.remove(&i) {
                self.members.swap_remove(at);
                if let Some(&moved) = self.members.get(at) {
                    self.slot.insert(moved, at);
                }
            }
        }
    }

    /// A random member (the ring never shrinks below `r + 1`).
    pub(crate) fn pick(&self, rng: &mut ChaCha8Rng) -> NodeIdx {
        self.members[(rng.next_u64() % self.members.len() as u64) as usize]
    }

    /// Live members from `key` on, clockwise (at most once round).
    fn from(&self, key: u128) -> impl Iterator<Item = u128> + '_ {
        self.ids.range(key..).chain(self.ids.range(..key)).copied()
    }

    /// The first live member at or after `key`.
    pub(crate) fn owner(&self, key: u128) -> Option<u128> {
        self.from(key).next()
    }

    /// The `k` members after `id`, nearest first.
    pub(crate) fn successors(&self, id: u128, k: usize) -> Vec<u128> {
        self.ids
            .range((Bound::Excluded(id), Bound::Unbounded))
            .chain(self.ids.range(..id))
            .copied()
            .take(k)
            .collect()
    }

    /// The `k` members before `id`, nearest first.
    pub(crate) fn predecessors(&self, id: u128, k: usize) -> Vec<u128> {
        self.ids
            .range(..id)
            .rev()
            .chain(
                self.ids
                    .range((Bound::Excluded(id), Bound::Unbounded))
                    .rev(),
            )
            .copied()
            .take(k)
            .collect()
    }

    /// The fingers member `id` keeps in the ideal ring (spec/chord.md
    /// §7.3): the owners of `id + 2^i` for targets beyond its last
    /// successor, other than itself and its successors, distinct, sorted.
    pub(crate) fn ideal_fingers(&self, id: u128, r: usize) -> Vec<u128> {
        let succs = self.successors(id, r);
        let Some(&last) = succs.last() else {
            return Vec::new();
        };
        let mut fingers: Vec<u128> = (0..128)
            .map(|i| id.wrapping_add(1u128 << i))
            .filter(|&target| !in_half_open(id, target, last))
            .filter_map(|target| self.owner(target))
            .filter(|&owner| owner != id && !succs.contains(&owner))
            .collect();
        fingers.sort_unstable();
        fingers.dedup();
        fingers
    }
}

/// Every member's best successor (its first live entry) over the last few
/// seconds, as seen at the end of each slice: lookups are judged against
/// the ring as it was when their answer left, a little before it arrived.
#[derive(Default)]
pub(crate) struct BestHistory {
    /// The best successor each node had at the last look (`None`: none, or
    /// not a live member).
    now: HashMap<u128, Option<u128>, FixedState>,
    /// Per node, when its best successor changed and what it was before,
    /// oldest first.
    changes: HashMap<u128, Vec<(Instant, Option<u128>)>, FixedState>,
}

impl BestHistory {
    /// Node `id` has best successor `best` at `now`.
    pub(crate) fn record(&mut self, id: u128, best: Option<u128>, now: Instant) {
        let before = self.now.insert(id, best).flatten();
        if before != best {
            self.changes.entry(id).or_default().push((now, before));
        }
    }

    /// Forgets changes made before `before`.
    pub(crate) fn prune(&mut self, before: Instant) {
        self.changes.retain(|_, changes| {
            changes.retain(|&(at, _)| at >= before);
            !changes.is_empty()
        });
    }

    /// The best successor node `id` had at `t`, if known.
    pub(crate) fn best_at(&self, id: u128, t: Instant) -> Option<u128> {
        let later = self
            .changes
            .get(&id)
            .and_then(|changes| changes.iter().find(|&&(at, _)| at > t));
        match later {
            Some(&(_, before)) => before,
            None => self.now.get(&id).copied().flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_finds_owners_holders_and_predecessors_round_the_ring() {
        let mut truth = Truth::default();
        for (i, id) in [(0, 100u128), (1, 200), (2, 300)] {
            truth.add(i, id);
        }
        assert_eq!(truth.owner(150), Some(200));
        assert_eq!(truth.owner(200), Some(200));
        assert_eq!(truth.owner(301), Some(100));
        assert_eq!(truth.predecessors(100, 2), vec![300, 200]);
        assert_eq!(truth.predecessors(150, 5), vec![100, 300, 200]);
        assert_eq!(truth.successors(300, 2), vec![100, 200]);
        // Holders of a position: its owner and the next ones.
        assert_eq!(truth.successors(200 - 1, 2), vec![200, 300]);
        truth.add(3, 250);
        assert_eq!(truth.owner(220), Some(250));
        truth.remove(1, 200);
        assert_eq!(truth.owner(150), Some(250));
        assert_eq!(truth.len(), 3);
        assert!(!truth.is_member(200));
    }

    #[test]
    fn best_history_answers_for_past_instants() {
        let t = Instant::from_micros;
        let mut history = BestHistory::default();
        history.record(1, Some(2), t(10));
        history.record(1, Some(2), t(20));
        history.record(1, Some(3), t(30));
        history.record(1, None, t(40));
        assert_eq!(history.best_at(1, t(5)), None);
        assert_eq!(history.best_at(1, t(10)), Some(2));
        assert_eq!(history.best_at(1, t(29)), Some(2));
        assert_eq!(history.best_at(1, t(30)), Some(3));
        assert_eq!(history.best_at(1, t(50)), None);
        assert_eq!(history.best_at(9, t(50)), None);
        history.prune(t(35));
        assert_eq!(history.best_at(1, t(31)), Some(3));
    }

    #[test]
    fn ideal_fingers_skip_what_the_successor_list_covers() {
        let mut truth = Truth::default();
        let step = 1u128 << 124;
        for k in 0..16u32 {
            truth.add(k, u128::from(k) * step);
        }
        // r = 2 covers the next two members; the fingers reach 4, 8 ahead.
        let fingers = truth.ideal_fingers(0, 2);
        assert_eq!(fingers, vec![4 * step, 8 * step]);
    }
}
