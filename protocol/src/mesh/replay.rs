//! The replay window (spec/mesh.md, "Replay window"): which signed
//! broadcasts a node has already delivered, per origin and run, bounded in
//! origins, in runs per origin and in sequence numbers per run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::NodeId;

/// Sequence numbers remembered below a run's highest (the bitmap's width).
pub(crate) const WINDOW_BITS: u64 = 256;

/// Evicted runs an origin remembers as retired (refused whole).
pub(crate) const RETIRED_RUNS: usize = 16;

/// What the window says of `(origin, run, seq)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not delivered yet (as far as the window remembers).
    Fresh,
    /// Already delivered.
    Duplicate,
    /// Below the run's window, or of a retired run: refused.
    TooOld,
}

/// One run of an origin: its highest sequence number delivered and which of
/// the `WINDOW_BITS` below it (bit `d` = `highest − d`) were delivered.
#[derive(Debug, Clone)]
struct RunWindow {
    run: u64,
    highest: u64,
    bits: [u64; 4],
    /// The window's tick when this run last delivered.
    active: u64,
}

impl RunWindow {
    fn seen(&self, seq: u64) -> Seen {
        if seq > self.highest {
            return Seen::Fresh;
        }
        let d = self.highest - seq;
        if d >= WINDOW_BITS {
            return Seen::TooOld;
        }
        if self.bits[(d / 64) as usize] >> (d % 64) & 1 == 1 {
            Seen::Duplicate
        } else {
            Seen::Fresh
        }
    }

    /// Marks `seq` (which [`seen`](Self::seen) called fresh).
    fn mark(&mut self, seq: u64) {
        if seq > self.highest {
            self.bits = shift_up(self.bits, seq - self.highest);
            self.highest = seq;
        }
        let d = self.highest - seq;
        self.bits[(d / 64) as usize] |= 1 << (d % 64);
    }
}

/// `bits` moved `k` positions towards the old end (bit `d` → `d + k`).
fn shift_up(bits: [u64; 4], k: u64) -> [u64; 4] {
    if k >= WINDOW_BITS {
        return [0; 4];
    }
    let (words, b) = ((k / 64) as usize, (k % 64) as u32);
    let mut out = [0u64; 4];
    for (j, word) in out[words..].iter_mut().enumerate() {
        *word = bits[j] << b;
        if b > 0 && j > 0 {
            *word |= bits[j - 1] >> (64 - b);
        }
    }
    out
}

/// One origin's runs.
#[derive(Debug, Clone)]
struct Origin {
    /// The window's tick when this origin last delivered (its key in
    /// `ReplayWindow::by_activity`).
    active: u64,
    runs: SmallVec<[RunWindow; 1]>,
    /// Runs evicted by newer ones, refused whole (at most
    /// `RETIRED_RUNS`, oldest forgotten first).
    retired: Vec<u64>,
}

/// The replay window. Its memory is bounded by `max_origins ×
/// (max_runs × 56 B + RETIRED_RUNS × 8 B + table slots)`, whatever the
/// traffic.
pub(crate) struct ReplayWindow {
    origins: HashMap<NodeId, Origin, FixedState>,
    /// Origins by last activity, least recent first: a min-heap of
    /// `(tick, origin)` where only the entry whose tick is the origin's
    /// `active` is live (the others are dropped when they surface, and
    /// swept when they outnumber the live ones). A heap of a few entries
    /// where a node hears from few origins, not a B-tree's node.
    by_activity: BinaryHeap<Reverse<(u64, NodeId)>>,
    tick: u64,
    max_origins: usize,
    max_runs: usize,
    /// Origins forgotten because the table was full.
    pub(crate) origins_evicted: u64,
    /// Runs forgotten (and retired) because their origin had `max_runs`.
    pub(crate) runs_evicted: u64,
}

impl ReplayWindow {
    pub(crate) fn new(max_origins: usize, max_runs: usize, hasher: FixedState) -> Self {
        ReplayWindow {
            origins: HashMap::with_hasher(hasher),
            by_activity: BinaryHeap::new(),
            tick: 0,
            max_origins: max_origins.max(1),
            max_runs: max_runs.max(1),
            origins_evicted: 0,
            runs_evicted: 0,
        }
    }

    /// Origins remembered.
    pub(crate) fn len(&self) -> usize {
        self.origins.len()
    }

    /// What the window says of `(origin, run, seq)`; changes nothing.
    pub(crate) fn seen(&self, origin: NodeId, run: u64, seq: u64) -> Seen {
        let Some(entry) = self.origins.get(&origin) else {
            return Seen::Fresh;
        };
        if entry.retired.contains(&run) {
            return Seen::TooOld;
        }
        match entry.runs.iter().find(|r| r.run == run) {
            Some(window) => window.seen(seq),
            None => Seen::Fresh,
        }
    }

    /// Removes the least recently active origin from the activity heap
    /// (skipping stale entries) and returns it.
    fn pop_least_active(&mut self) -> Option<NodeId> {
        while let Some(Reverse((tick, origin))) = self.by_activity.pop() {
            if self.origins.get(&origin).is_some_and(|e| e.active == tick) {
                return Some(origin);
            }
        }
        None
    }

    /// Records a verified `(origin, run, seq)`; whether it was fresh (a
    /// duplicate or too old changes nothing).
    pub(crate) fn record(&mut self, origin: NodeId, run: u64, seq: u64) -> bool {
        if self.seen(origin, run, seq) != Seen::Fresh {
            return false;
        }
        self.tick += 1;
        let tick = self.tick;
        if !self.origins.contains_key(&origin)
            && self.origins.len() >= self.max_origins
            && let Some(oldest) = self.pop_least_active()
        {
            self.origins.remove(&oldest);
            self.origins_evicted += 1;
        }
        let entry = self.origins.entry(origin).or_insert_with(|| Origin {
            active: tick,
            runs: SmallVec::new(),
            retired: Vec::new(),
        });
        entry.active = tick;
        self.by_activity.push(Reverse((tick, origin)));
        if self.by_activity.len() > 2 * self.origins.len() + 2 {
            // Sweep the stale entries: one per origin is left.
            let origins = &self.origins;
            self.by_activity
                .retain(|Reverse((t, o))| origins.get(o).is_some_and(|e| e.active == *t));
        }
        let Some(entry) = self.origins.get_mut(&origin) else {
            return false;
        };
        if let Some(window) = entry.runs.iter_mut().find(|r| r.run == run) {
            window.mark(seq);
            window.active = tick;
            return true;
        }
        if entry.runs.len() >= self.max_runs
            && let Some(i) = (0..entry.runs.len()).min_by_key(|&i| entry.runs[i].active)
        {
            let old = entry.runs.swap_remove(i);
            if entry.retired.len() >= RETIRED_RUNS {
                entry.retired.remove(0);
            }
            entry.retired.push(old.run);
            self.runs_evicted += 1;
        }
        let mut window = RunWindow {
            run,
            highest: seq,
            bits: [0; 4],
            active: tick,
        };
        window.mark(seq);
        entry.runs.push(window);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u128) -> NodeId {
        NodeId::from_u128(n)
    }

    fn window(origins: usize, runs: usize) -> ReplayWindow {
        ReplayWindow::new(origins, runs, FixedState::with_seed(1))
    }

    #[test]
    fn a_seq_is_delivered_once_and_one_below_the_window_is_too_old() {
        let mut w = window(8, 2);
        assert!(w.record(id(1), 7, 1000));
        assert!(!w.record(id(1), 7, 1000));
        assert_eq!(w.seen(id(1), 7, 1000), Seen::Duplicate);
        assert!(w.record(id(1), 7, 999), "below the highest, in the window");
        assert_eq!(w.seen(id(1), 7, 1000 - 255), Seen::Fresh);
        assert_eq!(w.seen(id(1), 7, 1000 - 256), Seen::TooOld);
        assert!(w.record(id(1), 7, 1300));
        assert_eq!(
            w.seen(id(1), 7, 1000),
            Seen::TooOld,
            "300 below the highest"
        );
        assert_eq!(w.seen(id(1), 7, 1100), Seen::Fresh);
        assert_eq!(w.seen(id(1), 7, 1045), Seen::Fresh);
        assert_eq!(w.seen(id(1), 7, 1044), Seen::TooOld);
    }

    #[test]
    fn a_new_run_is_a_restart_and_an_evicted_run_is_retired() {
        let mut w = window(8, 2);
        assert!(w.record(id(1), 1, 5));
        assert!(w.record(id(1), 2, 5), "another run: its own numbering");
        assert!(w.record(id(1), 3, 5), "evicts run 1");
        assert_eq!(w.runs_evicted, 1);
        assert_eq!(w.seen(id(1), 1, 5), Seen::TooOld);
        assert_eq!(
            w.seen(id(1), 1, 6),
            Seen::TooOld,
            "a retired run is refused whole"
        );
        assert!(!w.record(id(1), 1, 6));
        assert_eq!(w.seen(id(1), 2, 5), Seen::Duplicate);
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_active_origin() {
        let mut w = window(2, 1);
        assert!(w.record(id(1), 0, 1));
        assert!(w.record(id(2), 0, 1));
        assert!(w.record(id(1), 0, 2), "origin 1 is now the most recent");
        assert!(w.record(id(3), 0, 1), "evicts origin 2");
        assert_eq!(w.origins_evicted, 1);
        assert_eq!(w.len(), 2);
        assert_eq!(w.seen(id(1), 0, 1), Seen::Duplicate);
        assert_eq!(w.seen(id(2), 0, 1), Seen::Fresh, "forgotten");
    }

    #[test]
    fn shift_up_moves_bits_across_words() {
        let bits = [1 | 1 << 63, 0, 0, 1 << 63];
        assert_eq!(shift_up(bits, 1), [2, 1, 0, 0]);
        assert_eq!(shift_up(bits, 64), [0, 1 | 1 << 63, 0, 0]);
        assert_eq!(shift_up(bits, 130), [0, 0, 4, 2]);
        assert_eq!(shift_up(bits, 256), [0; 4]);
    }

    proptest! {
        /// Against a model that remembers everything: the window never
        /// delivers a (run, seq) twice, and never refuses a fresh seq within
        /// `WINDOW_BITS` of its run's highest (runs ≤ max_runs, so none is
        /// evicted).
        #[test]
        fn never_twice_never_refuses_a_fresh_in_window_seq(
            ops in proptest::collection::vec((0u64..3, 0u64..600), 1..400)
        ) {
            let mut w = window(4, 3);
            let mut delivered = std::collections::BTreeSet::new();
            let mut highest = std::collections::BTreeMap::new();
            for (run, seq) in ops {
                let fresh = w.record(id(9), run, seq);
                let new = !delivered.contains(&(run, seq));
                if fresh {
                    prop_assert!(new, "({run}, {seq}) delivered twice");
                    delivered.insert((run, seq));
                    let h = highest.entry(run).or_insert(seq);
                    *h = (*h).max(seq);
                } else if new {
                    let h = highest[&run];
                    prop_assert!(h >= WINDOW_BITS && seq <= h - WINDOW_BITS,
                        "fresh ({run}, {seq}) refused with highest {h}");
                }
            }
        }
    }
}
