//! Deadlines: a min-heap cancelled lazily.
//!
//! Every component keeps its own queue of its own timer kinds (a
//! [`DeadlineQueue`] of its `Timer` enum); the node fires them all in one
//! order, earliest first, ties in the order they were armed across the whole
//! node (the components draw their sequence numbers from one counter, see
//! [`Cx::timer_seq`](crate::cx::Cx::timer_seq)). Entries are never removed
//! on cancel: the owner checks, when an entry fires, whether it still
//! applies (by a serial number that changes when the thing it guards is
//! replaced). [`DeadlineQueue::prune`] drops dead entries from the top so
//! [`Node::poll_timeout`](crate::Node::poll_timeout) does not report a
//! deadline that nobody waits for.

use core::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::time::Instant;

pub(crate) struct Entry<K> {
    at: Instant,
    /// The entry's sequence number, its low 32 bits: the queue gives back
    /// the whole number ([`DeadlineQueue::peek`]) from the last one it was
    /// given, and orders two entries due at the same instant by the
    /// difference of their low bits. Both are exact while fewer than 2^31
    /// timers are armed in the node during an entry's life (a liveness
    /// timer lives seconds). Four bytes, not eight: with a key of 20 bytes
    /// and an alignment of 4 (liveness's, one or two per link of every
    /// node), an entry is 32 bytes, not 40.
    seq: u32,
    key: K,
}

impl<K> Entry<K> {
    /// `(at, seq)` order, `seq` compared as a serial number (RFC 1982).
    fn order(&self, other: &Self) -> Ordering {
        self.at
            .cmp(&other.at)
            .then_with(|| (self.seq.wrapping_sub(other.seq) as i32).cmp(&0))
    }
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<K> Eq for Entry<K> {}
impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        // `seq` breaks ties in insertion order, so equal deadlines fire in a
        // deterministic order.
        self.order(other)
    }
}

/// Deadlines keyed by `K`, earliest first; ties in insertion order.
pub(crate) struct DeadlineQueue<K> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    /// The last sequence number queued (the highest: they come from a
    /// counter), from which an entry's 32 low bits give back its own;
    /// [`DeadlineQueue::push`] queues the next.
    last_seq: u64,
    /// Size past which [`DeadlineQueue::compact`] sweeps dead entries.
    compact_at: usize,
}

/// The queue is never swept below this size.
const MIN_COMPACT_AT: usize = 16;

/// Spare slots a full queue grows by, beyond [`SLACK`]'s share of its size.
const GROW: usize = 4;

/// A full queue grows by `1 / SLACK` of its size (and [`GROW`]), and a
/// sweep leaves it that much room. A chord member's liveness queue holds a
/// `Ping` per link (~38) and the `PongDue`s of its pings: with a quarter's
/// growth and a sweep only at one and a half times the live count, it held
/// ~1.7 entries of 40 bytes a link.
const SLACK: usize = 8;

impl<K> Default for DeadlineQueue<K> {
    fn default() -> Self {
        DeadlineQueue::new()
    }
}

impl<K> DeadlineQueue<K> {
    pub(crate) fn new() -> Self {
        DeadlineQueue {
            heap: BinaryHeap::new(),
            last_seq: 0,
            compact_at: MIN_COMPACT_AT,
        }
    }

    /// Queues `key` at `at`, after every entry queued before at the same
    /// instant.
    pub(crate) fn push(&mut self, at: Instant, key: K) {
        self.push_seq(at, self.last_seq + 1, key);
    }

    /// Queues `key` at `at` with a sequence number drawn by the caller from
    /// a counter shared with other queues, so that entries of several queues
    /// can be merged in one order (see the module docs).
    pub(crate) fn push_seq(&mut self, at: Instant, seq: u64, key: K) {
        // An eighth more (and a few), not double: a node holds a queue per
        // component, a million nodes in a simulation, and a doubled heap
        // keeps up to half its room empty for good.
        if self.heap.len() == self.heap.capacity() {
            self.heap.reserve_exact(self.heap.len() / SLACK + GROW);
        }
        self.last_seq = self.last_seq.max(seq);
        self.heap.push(Reverse(Entry {
            at,
            seq: seq as u32,
            key,
        }));
    }

    /// The whole sequence number of an entry holding `low`, its low 32 bits.
    fn full_seq(&self, low: u32) -> u64 {
        self.last_seq - u64::from((self.last_seq as u32).wrapping_sub(low))
    }

    /// The earliest deadline, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.0.at)
    }

    /// The earliest entry's deadline and sequence number, if any.
    pub(crate) fn peek(&self) -> Option<(Instant, u64)> {
        self.heap.peek().map(|e| (e.0.at, self.full_seq(e.0.seq)))
    }

    /// Removes and returns the earliest entry, due or not.
    pub(crate) fn pop(&mut self) -> Option<K> {
        self.heap.pop().map(|e| e.0.key)
    }

    /// Removes and returns the earliest entry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        if self.heap.peek()?.0.at <= now {
            self.heap.pop().map(|e| e.0.key)
        } else {
            None
        }
    }

    /// Drops entries from the top while `live` says they no longer apply.
    pub(crate) fn prune(&mut self, mut live: impl FnMut(&K) -> bool) {
        while let Some(top) = self.heap.peek() {
            if live(&top.0.key) {
                return;
            }
            self.heap.pop();
        }
    }

    /// Drops every entry `live` says no longer applies, wherever it is.
    /// O(n); callers do it when dead entries outnumber live ones, so the
    /// queue stays proportional to what is really pending.
    pub(crate) fn retain(&mut self, mut live: impl FnMut(&K) -> bool) {
        self.heap.retain(|e| live(&e.0.key));
    }

    /// Sweeps dead entries once the queue has outgrown the room it was
    /// given at the last sweep (an eighth more than was live then, and a
    /// few), and gives back the room they took: amortised O(1) per push
    /// (a sweep is O(n) and comes after at least n/8 pushes), and the
    /// queue stays within about an eighth more than what is really
    /// pending (plus a constant), however much gets cancelled. Which
    /// entries are swept when never shows: entries fire in `(at, seq)`
    /// order, and a dead entry is skipped wherever it is.
    pub(crate) fn compact(&mut self, live: impl FnMut(&K) -> bool) {
        if self.heap.len() > self.compact_at {
            self.retain(live);
            let len = self.heap.len();
            let room = len + len / SLACK + GROW;
            self.compact_at = room.max(MIN_COMPACT_AT);
            self.heap.shrink_to(room);
        }
    }

    /// Prunes and, when due, compacts (what a queue's owner does after
    /// every call).
    pub(crate) fn tidy(&mut self, mut live: impl FnMut(&K) -> bool) {
        self.prune(&mut live);
        self.compact(&mut live);
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let mut q = DeadlineQueue::new();
        q.push(Instant::from_micros(20), "b");
        q.push(Instant::from_micros(10), "a");
        q.push(Instant::from_micros(20), "c");
        assert_eq!(q.next(), Some(Instant::from_micros(10)));
        assert_eq!(q.pop_due(Instant::from_micros(9)), None);
        assert_eq!(q.pop_due(Instant::from_micros(25)), Some("a"));
        assert_eq!(q.pop_due(Instant::from_micros(25)), Some("b"));
        assert_eq!(q.pop_due(Instant::from_micros(25)), Some("c"));
        assert_eq!(q.pop_due(Instant::from_micros(25)), None);
    }

    /// An entry keeps its sequence number's low 32 bits: the queue still
    /// gives back the whole number and keeps ties in arming order across
    /// a wrap of the low bits.
    #[test]
    fn sequence_numbers_survive_their_low_bits_wrapping() {
        let mut q = DeadlineQueue::new();
        let at = Instant::from_micros(5);
        let base = (3u64 << 32) - 2;
        for (k, seq) in (base..base + 4).enumerate() {
            q.push_seq(at, seq, k);
        }
        q.push_seq(Instant::from_micros(4), base + 4, 4);
        assert_eq!(q.peek(), Some((Instant::from_micros(4), base + 4)));
        assert_eq!(q.pop(), Some(4));
        for (k, seq) in (base..base + 4).enumerate() {
            assert_eq!(q.peek(), Some((at, seq)));
            assert_eq!(q.pop(), Some(k));
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn prune_drops_only_dead_entries_at_the_top() {
        let mut q = DeadlineQueue::new();
        q.push(Instant::from_micros(1), 1);
        q.push(Instant::from_micros(2), 2);
        q.push(Instant::from_micros(3), 3);
        q.prune(|k| *k != 1);
        assert_eq!(q.next(), Some(Instant::from_micros(2)));
        assert_eq!(q.len(), 2);
    }
}
