//! The event queue: a calendar of one-microsecond buckets over a sliding
//! horizon, and a binary heap for what lies beyond it.
//!
//! Events fire in `(time, seq)` order, `seq` being the order they were
//! scheduled in: exactly the order of a binary heap of `(time, seq)`, so
//! traces do not depend on which queue runs them. A bucket holds the events
//! of one microsecond, and they are pushed in increasing `seq`, so a
//! bucket is a FIFO. An event further than [`HORIZON`] µs ahead of the
//! queue's base waits in the heap; popping takes the smaller `(time, seq)`
//! of the calendar's first event and the heap's top (at equal times the
//! heap's is the older: see [`EventQueue::pop`]), so an event never has
//! to move from the heap to the calendar.
//!
//! Cost: push O(1) (O(log n) beyond the horizon); pop O(1) plus a scan of
//! a 1,024-bit summary for the next non-empty bucket. The events of a
//! simulation fire one latency (tens of milliseconds) after they are
//! scheduled, so nearly all of them live in the calendar, in memory
//! visited in time order rather than sifted through a heap of millions.
//!
//! The calendar's events live in one slab of slots, each bucket a linked
//! list through it (first and last slot), and a slot freed by a pop is
//! reused by the next push. The memory is the most events ever in flight,
//! not the most each bucket ever held: a deque per bucket kept its room
//! (at least four slots once used, 18 MB over the 65,536 buckets in a
//! 1,000-member chord run, of which a few thousand events were queued at
//! a time), and gave it back only by a free and a malloc per burst.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ringmesh::Instant;

/// Buckets in the calendar (µs of virtual time it spans): 65.5 ms, beyond
/// every default latency plus jitter.
const HORIZON: u64 = 1 << 16;
const MASK: u64 = HORIZON - 1;
const WORDS: usize = (HORIZON / 64) as usize;
const SUMMARY: usize = WORDS / 64;

/// No slot: the end of a bucket's list, or of the free list.
const NIL: u32 = u32::MAX;

/// The slab is compacted ([`EventQueue::compact`]) once it holds at least
/// this many slots (4 MiB of them)...
const COMPACT_FROM: usize = 1 << 16;
/// ... and more than this many times the events in the calendar: a
/// compaction moves `near` events (and leaves room for as many again),
/// and the next one comes only once a push has lengthened the slab
/// (every slot of it in use) and the calendar has then fallen below an
/// eighth of it: after at least seven eighths of that many pops
/// (amortised O(1) a pop).
const SPARSE: usize = 8;

/// A calendar event, or a free slot (`event` is `None`) in the free list.
///
/// One cache line for the engine's events (a 56-byte `Ev` and the link):
/// a pop reads a slot written thousands of events earlier, from memory,
/// and a 72-byte slot (it held its `seq` too) straddled two lines. The
/// calendar needs no `seq`: a bucket is a FIFO, and against the heap a tie
/// in time goes to the heap's event (see [`EventQueue::pop`]).
#[repr(align(64))]
struct Slot<E> {
    /// The next slot of the same bucket (or of the free list).
    next: u32,
    event: Option<E>,
}

/// A bucket: the first and last slot of its list, `NIL` when empty.
#[derive(Clone, Copy)]
struct Bucket {
    first: u32,
    last: u32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        first: NIL,
        last: NIL,
    };
}

struct Far<E> {
    at: Instant,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Far<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Far<E> {}
impl<E> PartialOrd for Far<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Far<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Events in `(time, seq)` order (module docs).
pub(super) struct EventQueue<E> {
    /// Every event in the calendar is at a time in `base..base + HORIZON`,
    /// in bucket `time & MASK`.
    base: u64,
    buckets: Vec<Bucket>,
    /// The calendar's events (and free slots), by slot number.
    slots: Vec<Slot<E>>,
    /// The first free slot, `NIL` if none.
    free: u32,
    /// Fewer events than this in the calendar: [`EventQueue::compact`]
    /// (an eighth of the slab once it holds [`COMPACT_FROM`] slots, else
    /// 0), kept as it grows so that a pop compares one field.
    compact_below: usize,
    /// Bit `i` set: bucket `i` is not empty.
    bits: Box<[u64; WORDS]>,
    /// Bit `w` set: word `w` of `bits` is not zero.
    summary: [u64; SUMMARY],
    near: usize,
    far: BinaryHeap<Reverse<Far<E>>>,
    seq: u64,
}

impl<E> EventQueue<E> {
    pub(super) fn new() -> Self {
        EventQueue {
            base: 0,
            buckets: vec![Bucket::EMPTY; HORIZON as usize],
            slots: Vec::new(),
            free: NIL,
            compact_below: 0,
            bits: Box::new([0; WORDS]),
            summary: [0; SUMMARY],
            near: 0,
            far: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Events queued.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.near + self.far.len()
    }

    /// Queues `event` at `at`, after every event queued before it at the
    /// same time. `now` is a time no queued or later event precedes (the
    /// simulation's clock).
    pub(super) fn push(&mut self, at: Instant, now: Instant, event: E) {
        self.seq += 1;
        let t = at.as_micros();
        if self.near == 0 {
            // Nothing in the calendar: slide it up to the clock.
            self.base = self.base.max(now.as_micros()).min(t);
        }
        debug_assert!(t >= self.base, "an event before the queue's base");
        if t.wrapping_sub(self.base) < HORIZON {
            let i = (t & MASK) as usize;
            let slot = Slot {
                next: NIL,
                event: Some(event),
            };
            let s = if self.free == NIL {
                let s = u32::try_from(self.slots.len()).expect("fewer than 2^32 events in flight");
                self.slots.push(slot);
                if self.slots.len() >= COMPACT_FROM {
                    self.compact_below = self.slots.len() / SPARSE;
                }
                s
            } else {
                let s = self.free;
                let freed = &mut self.slots[s as usize];
                self.free = freed.next;
                *freed = slot;
                s
            };
            let bucket = &mut self.buckets[i];
            if bucket.last == NIL {
                bucket.first = s;
            } else {
                self.slots[bucket.last as usize].next = s;
            }
            bucket.last = s;
            self.bits[i / 64] |= 1 << (i % 64);
            self.summary[i / 4096] |= 1 << ((i / 64) % 64);
            self.near += 1;
        } else {
            self.far.push(Reverse(Far {
                at,
                seq: self.seq,
                event,
            }));
        }
    }

    /// The first non-empty bucket at or after the base (wrapping), if any.
    fn first_bucket(&self) -> Option<usize> {
        if self.near == 0 {
            return None;
        }
        let start = (self.base & MASK) as usize;
        // The base's word, from the base's bit up.
        let w0 = start / 64;
        let high = self.bits[w0] & (!0u64 << (start % 64));
        if high != 0 {
            return Some(w0 * 64 + high.trailing_zeros() as usize);
        }
        // Words after w0 to the end, then from 0 through w0 (its low bits).
        let after = self.next_word(w0 + 1, WORDS);
        let w = match after {
            Some(w) => w,
            None => self.next_word(0, w0 + 1)?,
        };
        Some(w * 64 + self.bits[w].trailing_zeros() as usize)
    }

    /// Moves the calendar's events into a slab of their own count (with
    /// as much room again), bucket by bucket in list order, and gives the
    /// old slab back: after a burst (a founded ring's members all dial at
    /// once: 35 events a member in flight, 64 bytes each) the slab kept
    /// the burst's room for the rest of the run, 2.2 KB a member of a
    /// 30,000-member ring. The order of every bucket is kept, so events
    /// fire as they would have.
    fn compact(&mut self) {
        let mut slots = Vec::with_capacity(2 * self.near);
        for w in 0..WORDS {
            let mut word = self.bits[w];
            while word != 0 {
                let i = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let bucket = &mut self.buckets[i];
                let mut s = bucket.first;
                bucket.first = NIL;
                bucket.last = NIL;
                while s != NIL {
                    let slot = &mut self.slots[s as usize];
                    let next = slot.next;
                    let event = slot.event.take();
                    let moved = slots.len() as u32;
                    slots.push(Slot { next: NIL, event });
                    if bucket.first == NIL {
                        bucket.first = moved;
                    } else {
                        slots[bucket.last as usize].next = moved;
                    }
                    bucket.last = moved;
                    s = next;
                }
            }
        }
        debug_assert_eq!(slots.len(), self.near);
        self.slots = slots;
        self.free = NIL;
        self.compact_below = 0;
    }

    /// The first non-zero word of `bits` in `from..to`.
    fn next_word(&self, from: usize, to: usize) -> Option<usize> {
        let mut s = from / 64;
        while s * 64 < to {
            let mut word = self.summary[s];
            if s == from / 64 {
                word &= !0u64 << (from % 64);
            }
            if word != 0 {
                let w = s * 64 + word.trailing_zeros() as usize;
                return (w < to).then_some(w);
            }
            s += 1;
        }
        None
    }

    /// The time of a bucket's events.
    fn time_of(&self, i: usize) -> u64 {
        self.base + ((i as u64).wrapping_sub(self.base) & MASK)
    }

    /// The time of the first event, if any.
    pub(super) fn peek_at(&self) -> Option<Instant> {
        let near = self.first_bucket().map(|i| self.time_of(i));
        let far = self.far.peek().map(|f| f.0.at.as_micros());
        match (near, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(Instant::from_micros)
    }

    /// Removes the first event.
    ///
    /// When the calendar's first event and the heap's top are at the same
    /// time, the heap's was queued first: it went to the heap because its
    /// time was a horizon or more past the base then, and the other went to
    /// the calendar because it was not, later, the base never moving back
    /// (it follows the clock and the times popped). So a calendar event
    /// needs no sequence number to be ordered against the heap.
    pub(super) fn pop(&mut self) -> Option<(Instant, E)> {
        let near = self.first_bucket();
        let take_near = match (near, self.far.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(i), Some(far)) => self.time_of(i) < far.0.at.as_micros(),
        };
        if let (true, Some(i)) = (take_near, near) {
            let t = self.time_of(i);
            let bucket = &mut self.buckets[i];
            let s = bucket.first;
            let slot = &mut self.slots[s as usize];
            let event = slot.event.take()?;
            bucket.first = slot.next;
            slot.next = self.free;
            self.free = s;
            if bucket.first == NIL {
                bucket.last = NIL;
                self.bits[i / 64] &= !(1 << (i % 64));
                if self.bits[i / 64] == 0 {
                    self.summary[i / 4096] &= !(1 << ((i / 64) % 64));
                }
            }
            self.near -= 1;
            self.base = t;
            if self.near < self.compact_below {
                self.compact();
            }
            return Some((Instant::from_micros(t), event));
        }
        let Reverse(Far { at, event, .. }) = self.far.pop()?;
        // Every queued event is at or after this one (and the calendar's
        // are before the old base plus the horizon), so the base may move
        // up to it.
        self.base = at.as_micros();
        Some((at, event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    /// An event queued beyond the horizon, then one at the same time in the
    /// calendar once the base has moved: the first queued pops first.
    #[test]
    fn a_tie_between_the_heap_and_the_calendar_goes_to_the_first_queued() {
        let mut queue = EventQueue::new();
        let t = |us: u64| Instant::from_micros(us);
        queue.push(t(10), t(0), 1u64);
        queue.push(t(HORIZON + 5), t(0), 2);
        assert_eq!(queue.pop(), Some((t(10), 1)));
        // The base is 10 now: HORIZON + 5 lies within the calendar.
        queue.push(t(HORIZON + 5), t(10), 3);
        queue.push(t(HORIZON + 4), t(10), 4);
        assert_eq!(queue.pop(), Some((t(HORIZON + 4), 4)));
        assert_eq!(queue.pop(), Some((t(HORIZON + 5), 2)));
        assert_eq!(queue.pop(), Some((t(HORIZON + 5), 3)));
        assert_eq!(queue.pop(), None);
    }

    /// A burst past [`COMPACT_FROM`] events, drained until the calendar
    /// is sparse, compacts the slab (its room falls to twice the events
    /// left) and every event still pops in `(time, seq)` order, with more
    /// pushed around the compaction.
    #[test]
    fn a_drained_burst_gives_its_room_back_and_keeps_the_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut queue = EventQueue::new();
        let mut heap = BinaryHeap::new();
        let burst = 2 * COMPACT_FROM as u64;
        for seq in 0..burst {
            let at = rng.next_u64() % 40_000;
            queue.push(Instant::from_micros(at), Instant::ZERO, seq);
            heap.push(Reverse((at, seq)));
        }
        let peak = queue.slots.capacity();
        let mut seq = burst;
        let mut compacted = false;
        while let Some(Reverse((at, s))) = heap.pop() {
            assert_eq!(queue.pop().map(|(t, e)| (t.as_micros(), e)), Some((at, s)));
            compacted |= queue.slots.capacity() < peak;
            if rng.next_u64() % 64 == 0 {
                let later = at + rng.next_u64() % 30_000;
                queue.push(Instant::from_micros(later), Instant::from_micros(at), seq);
                heap.push(Reverse((later, seq)));
                seq += 1;
            }
        }
        assert!(compacted, "the slab kept {peak} slots");
        assert!(queue.pop().is_none());
        assert!(queue.slots.capacity() < COMPACT_FROM);
    }

    /// An engine event's slot is one cache line.
    #[test]
    fn an_engine_event_slot_is_one_cache_line() {
        assert_eq!(core::mem::size_of::<Slot<super::super::Ev>>(), 64);
        assert_eq!(core::mem::align_of::<Slot<super::super::Ev>>(), 64);
    }

    /// Pops in exactly the order of a binary heap of `(time, seq)`, under
    /// a random mix of pushes (near, far and at the clock) and pops.
    #[test]
    fn pops_in_the_order_of_a_heap_of_time_then_seq() {
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut queue = EventQueue::new();
            let mut heap = BinaryHeap::new();
            let mut seq = 0u64;
            let mut now = 0u64;
            for _ in 0..20_000 {
                if rng.next_u64() % 3 != 0 {
                    let ahead = match rng.next_u64() % 10 {
                        0 => 0,
                        1 => rng.next_u64() % (10 * HORIZON),
                        2 => HORIZON - 1 + rng.next_u64() % 3,
                        _ => 20_000 + rng.next_u64() % 5_000,
                    };
                    seq += 1;
                    let at = now + ahead;
                    queue.push(Instant::from_micros(at), Instant::from_micros(now), seq);
                    heap.push(Reverse((at, seq)));
                } else {
                    let want = heap.pop().map(|Reverse((at, seq))| (at, seq));
                    assert_eq!(queue.peek_at().map(Instant::as_micros), want.map(|w| w.0));
                    let got = queue.pop().map(|(at, seq)| (at.as_micros(), seq));
                    assert_eq!(got, want, "seed {seed}");
                    if let Some((at, _)) = got {
                        now = at;
                    }
                }
                if rng.next_u64() % 200 == 0 {
                    // The clock jumps (as `run_until` moves it), never past
                    // a queued event.
                    let next = heap.peek().map_or(u64::MAX, |Reverse((at, _))| *at);
                    now = (now + rng.next_u64() % (3 * HORIZON)).min(next);
                }
                assert_eq!(queue.len(), heap.len());
            }
            while let Some(Reverse((at, seq))) = heap.pop() {
                assert_eq!(
                    queue.pop().map(|(t, s)| (t.as_micros(), s)),
                    Some((at, seq))
                );
            }
            assert!(queue.pop().is_none());
        }
    }
}
