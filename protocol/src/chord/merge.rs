//! Rings that merge (spec/chord.md §6.7): ring unification after Shafaat,
//! Ghodsi and Haridi, done by each member for its own place.
//!
//! A member keeps a short list of **suspects**: pointers it flushed as
//! dead (their passive list), and, when its successor list empties or at
//! each ring check, one of its fingers. Each merge tick it tries one
//! suspect x: it looks its own id up *starting at x*, so the lookup runs in
//! x's ring and ends at the member m of that ring with self ∈ (m, L[0]].
//! If L names members that lie between this node and its first successor
//! (or its list is empty), this node's view skipped them: another ring, or
//! a part of this one it lost. It takes the union of its list and L,
//! clipped, and notifies the new first successor, whose check (§6.3)
//! adopts it as predecessor; ordinary stabilization carries the union
//! backwards. Each member of either ring that holds a suspect of the
//! other merges its own place, so the rings zip together from every
//! point at once.
//!
//! The **successor check**: at each ring check, a member looks in its peer
//! cache for the first node after itself; if that lies before its first
//! successor, its list skips it, and it reads that node's list and merges
//! it. A member whose first successor lies far round the ring (an orphan
//! that took its predecessor) would otherwise walk back over the arc one
//! member per stabilization: a lookup of its own place ends at its
//! predecessor, whose list it copied.
//!
//! Bounds: at most one merge lookup in flight, at most one started per
//! tick; suspects are capped and come only from this node's own pointers
//! (never from a peer's claim); a suspect that fails waits twice as long
//! each time (up to 16 ticks) and is forgotten after `chord.merge_forget`.

use tracing::{debug, info};

use super::ring::{self, dist};
use super::{Chord, Finger, Found, LookupError, LookupFor, Pointer, RingObserver, Timer};
use crate::NodeId;
use crate::cx::Cx;
use crate::time::{Duration, Instant};

/// A ring check (a finger made a suspect) every this many merge ticks.
pub(crate) const RING_CHECK_TICKS: u32 = 30;
/// A suspect's wait after its k-th failure is `merge_interval` × 2^k, k
/// at most this.
const MAX_BACKOFF_SHIFT: u32 = 4;
/// A suspect whose merge lookups keep ending in this node's own ring is
/// dropped after this many.
const MAX_INCONCLUSIVE: u32 = 3;

/// A node that may belong to another ring.
#[derive(Debug, Clone)]
pub(crate) struct Suspect {
    pub(crate) ptr: Pointer,
    /// When it became a suspect (forgotten `chord.merge_forget` later).
    pub(crate) since: Instant,
    /// Not tried before this.
    pub(crate) next_try: Instant,
    /// Failed or inconclusive tries so far.
    pub(crate) failures: u32,
    /// A ring check's sample: tried once, whatever the outcome.
    pub(crate) once: bool,
    /// A successor check: a node the peer cache knows between this node
    /// and its first successor, whose own list is read (a lookup of the id
    /// just after it, started at it) rather than this node's place.
    pub(crate) successor: bool,
}

/// The merge state of a member.
#[derive(Debug, Default)]
pub(crate) struct MergeState {
    /// Suspects, oldest first (at most `chord.max_merge_suspects`).
    pub(crate) suspects: Vec<Suspect>,
    /// Merge ticks since the last ring check.
    pub(crate) ticks: u32,
    /// The suspect of the merge lookup in flight.
    pub(crate) trying: Option<Suspect>,
    /// Whether the successor list emptied since the last merge (an orphan
    /// looking for its place).
    pub(crate) orphaned: bool,
    /// Where the next successor check searches the peer cache from: past
    /// the nodes whose check failed (dead or not members), `None` for just
    /// after this node. Reset by a check that merged, and when the first
    /// successor moves back before it.
    pub(crate) check_after: Option<u128>,
    /// A successor check is due at the next tick (a merge lookup came back
    /// with this node's own view).
    pub(crate) check_due: bool,
}

impl Chord {
    /// Adds `ptr` to the suspects (a pointer flushed as dead, or a finger),
    /// to be tried from `not_before`. The oldest goes if the list is full.
    pub(super) fn add_suspect(&mut self, cx: &dyn Cx, ptr: Pointer, not_before: Instant) {
        self.add_suspect_as(cx, ptr, not_before, false);
    }

    /// [`Chord::add_suspect`]; `once`: a ring check's sample, dropped
    /// after one try.
    fn add_suspect_as(&mut self, cx: &dyn Cx, ptr: Pointer, not_before: Instant, once: bool) {
        self.add_suspect_kind(cx, ptr, not_before, once, false);
    }

    /// [`Chord::add_suspect_as`]; `successor`: a successor check.
    fn add_suspect_kind(
        &mut self,
        cx: &dyn Cx,
        ptr: Pointer,
        not_before: Instant,
        once: bool,
        successor: bool,
    ) {
        if ptr.id == cx.me() || ptr.addrs.is_empty() {
            return;
        }
        let merge = &mut self.merge;
        if merge.trying.as_ref().is_some_and(|s| s.ptr.id == ptr.id) {
            return;
        }
        if let Some(s) = merge.suspects.iter_mut().find(|s| s.ptr.id == ptr.id) {
            s.next_try = s.next_try.min(not_before);
            s.successor |= successor;
            return;
        }
        if merge.suspects.len() >= self.settings.max_merge_suspects {
            merge.suspects.remove(0);
            self.stats.merge_suspects_dropped += 1;
        }
        self.merge.suspects.push(Suspect {
            ptr,
            since: cx.now(),
            next_try: not_before,
            failures: 0,
            once,
            successor,
        });
    }

    /// Arms the next merge tick.
    pub(super) fn schedule_merge(&mut self, cx: &mut dyn Cx, after: Duration) {
        let at = cx.now() + after;
        self.arm(cx, at, Timer::Merge);
    }

    /// The merge tick: forget old suspects, maybe add a finger (ring
    /// check, or an orphan), and try the suspect due first.
    pub(super) fn merge_tick(&mut self, cx: &mut dyn Cx) {
        if !self.is_member() {
            return;
        }
        let interval = self.settings.merge_interval;
        self.schedule_merge(cx, interval);
        self.merge.ticks += 1;
        self.merge_step(cx);
    }

    /// The successor list emptied: look for the ring at once.
    pub(super) fn orphaned(&mut self, cx: &mut dyn Cx) {
        self.merge.orphaned = true;
        self.merge_step(cx);
    }

    /// What a tick does, also run at once by an orphan.
    fn merge_step(&mut self, cx: &mut dyn Cx) {
        let now = cx.now();
        let forget = self.settings.merge_forget;
        let before = self.merge.suspects.len();
        self.merge
            .suspects
            .retain(|s| now.saturating_duration_since(s.since) < forget);
        self.stats.merge_suspects_dropped += (before - self.merge.suspects.len()) as u64;
        // A suspect that is a successor again is in this node's ring view.
        let succs = &self.succs;
        self.merge
            .suspects
            .retain(|s| !succs.iter().any(|p| p.id == s.ptr.id));
        let orphan = self.merge.orphaned || self.succs.is_empty();
        // A list shorter than r: a ring of at most r members, or a piece
        // of one (an orphan that took its predecessor, §5.2, closes a loop
        // of two): checked every tick.
        let short = self.succs.len() < self.r;
        let ring_check = self.merge.ticks >= RING_CHECK_TICKS || orphan || short;
        if ring_check || core::mem::take(&mut self.merge.check_due) {
            self.successor_check(cx);
        }
        if ring_check {
            // The ring check: a random node of the peer cache (a finger
            // may have been re-found inside a piece of the ring; the cache
            // remembers the whole ring as it was met), and an orphan's
            // predecessor and a finger.
            self.merge.ticks = 0;
            let key = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
            if let Some(known) = cx.known_after(key) {
                let known_chord = cx
                    .peer_caps(known.id)
                    .is_none_or(|c| c.contains(crate::wire::Capabilities::CHORD));
                if known_chord && !self.succs.iter().any(|s| s.id == known.id) {
                    self.add_suspect_as(cx, known, now, true);
                }
            }
            if orphan {
                if !self.fingers.is_empty() {
                    let i = self.rng.below(self.fingers.len() as u64) as usize;
                    let finger = self.fingers[i].1.pointer();
                    self.add_suspect(cx, finger, now);
                }
                if let Some(p) = self.pred.as_ref().map(Finger::pointer) {
                    self.add_suspect(cx, p, now);
                }
            }
        }
        self.try_merge(cx);
    }

    /// The successor check (§6.7): the first node the peer cache knows
    /// after this node (past those whose check failed). If it lies between
    /// this node and its first successor (or the list is empty), this
    /// node's list skips it: it becomes a suspect whose list is read.
    ///
    /// A member whose first successor lies far round the ring (an orphan
    /// that took its predecessor, §6.4, or a piece of a ring) is otherwise
    /// repaired only by stabilization, one member a round, walking back
    /// over the whole arc it skips: a lookup of its own place ends at its
    /// predecessor, whose list it copied, and shows it nothing.
    fn successor_check(&mut self, cx: &mut dyn Cx) {
        let me = cx.me().as_u128();
        let first = self.succs.first().map_or(me, |p| p.id.as_u128());
        if first != me
            && self
                .merge
                .check_after
                .is_some_and(|c| dist(me, c) > dist(me, first))
        {
            self.merge.check_after = None;
        }
        let from = self.merge.check_after.unwrap_or(me.wrapping_add(1));
        let Some(known) = cx.known_after(from) else {
            return;
        };
        // `in_open(me, x, me)`: every id but this node's (an empty list
        // skips everything). Past the first successor: every node the
        // cache knows before it was checked (the cursor stays).
        if !ring::in_open(me, known.id.as_u128(), first) {
            return;
        }
        self.merge.check_after = Some(known.id.as_u128().wrapping_add(1));
        let chord = cx
            .peer_caps(known.id)
            .is_none_or(|c| c.contains(crate::wire::Capabilities::CHORD));
        if chord {
            self.stats.successor_checks += 1;
            self.add_suspect_kind(cx, known, cx.now(), true, true);
        }
    }

    /// Starts a merge lookup towards the suspect due first (a successor
    /// check before the others), if none is in flight.
    fn try_merge(&mut self, cx: &mut dyn Cx) {
        if self.merge.trying.is_some() {
            return;
        }
        let now = cx.now();
        let Some(i) = self
            .merge
            .suspects
            .iter()
            .enumerate()
            .filter(|(_, s)| s.next_try <= now)
            .min_by_key(|(_, s)| (!s.successor, s.next_try, s.ptr.id))
            .map(|(i, _)| i)
        else {
            return;
        };
        let suspect = self.merge.suspects.remove(i);
        let me = cx.me();
        let start = vec![suspect.ptr.clone()];
        let target = suspect.ptr.id;
        // A successor check asks the suspect about the id just after it:
        // its answer is its own list.
        let key = if suspect.successor {
            target.as_u128().wrapping_add(1)
        } else {
            me.as_u128()
        };
        match self.start_lookup(cx, key, LookupFor::Merge(target), start) {
            Ok(None) => {
                self.stats.merge_lookups += 1;
                debug!(node = %me.short(), via = %target.short(), "merge lookup started");
                self.merge.trying = Some(suspect);
            }
            // Never answered locally (it starts at the suspect); a full
            // lookup table: the suspect waits for the next tick.
            Ok(Some(_)) | Err(_) => self.merge.suspects.push(suspect),
        }
    }

    /// A merge lookup ended (§6.7).
    pub(super) fn merge_found(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        via: NodeId,
        result: Result<Found, LookupError>,
    ) {
        let Some(mut suspect) = self.merge.trying.take() else {
            return;
        };
        debug_assert_eq!(suspect.ptr.id, via);
        let me = cx.me();
        if suspect.successor {
            // A successor check: the suspect's own answer, its list
            // placing this node's first successor as §6.2 step 4 demands
            // of a successor's predecessor (a list that is empty or starts
            // past it: a ring of its own that would cut this node's list
            // short, an attacker's included). An orphan has nothing to
            // place.
            if let Ok(found) = result
                && self.is_member()
            {
                let list: Vec<u128> = found.list.iter().map(|p| p.id.as_u128()).collect();
                let places = found.by.id == via
                    && self
                        .succs
                        .first()
                        .is_none_or(|s| ring::places(via.as_u128(), &list, s.id.as_u128()));
                if !places {
                    self.stats.successors_refused += 1;
                    return;
                }
                self.merge.check_after = None;
                let mut list = Vec::with_capacity(found.list.len() + 1);
                list.push(found.by);
                list.extend(found.list);
                if self.merge_list(cx, obs, list) {
                    self.stats.successor_check_merges += 1;
                }
            }
            return;
        }
        let retry = match result {
            Err(reason) => {
                debug!(node = %me.short(), via = %via.short(), %reason, "merge lookup failed");
                true
            }
            Ok(found) => {
                // A lookup that ended at a member listing this node may
                // have crossed into this node's own ring (a finger left
                // from before a partition): it says nothing of the
                // suspect's ring, which is tried again, a few times.
                let inconclusive = found.list.iter().any(|p| p.id == me);
                if self.is_member() {
                    self.merge_list(cx, obs, found.list);
                }
                // It may also be this node's own view coming back: the
                // peer cache may know better (the successor check).
                self.merge.check_due |= inconclusive;
                inconclusive && suspect.failures < MAX_INCONCLUSIVE
            }
        };
        if !retry || suspect.once || !self.is_member() {
            return;
        }
        let shift = suspect.failures.min(MAX_BACKOFF_SHIFT);
        suspect.failures += 1;
        let wait = self.settings.merge_interval.as_micros() << shift;
        suspect.next_try = cx.now() + Duration::from_micros(wait);
        if self.merge.suspects.len() < self.settings.max_merge_suspects {
            self.merge.suspects.push(suspect);
        } else {
            self.stats.merge_suspects_dropped += 1;
        }
    }

    /// Takes in the members of `list` (the successors of this node's
    /// position in another view of the ring) that this node's list skips;
    /// whether it did.
    fn merge_list(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        list: Vec<Pointer>,
    ) -> bool {
        let me = cx.me();
        let mine = me.as_u128();
        let list = self.puzzle_prefix(list);
        let old_first = self.succs.first().map(|p| p.id);
        let old_last = self.succs.last().map(|p| p.id.as_u128());
        // Something new before the end of the list: this node skipped a
        // member (an empty list skips everything).
        let skipped = list.iter().any(|p| {
            p.id != me
                && !self.succs.iter().any(|s| s.id == p.id)
                && old_last.is_none_or(|last| dist(mine, p.id.as_u128()) < dist(mine, last))
        });
        if !skipped {
            return false;
        }
        let mut all: Vec<Pointer> = self.succs.iter().map(Finger::pointer).chain(list).collect();
        all.retain(|p| p.id != me);
        all.sort_by_key(|p| (dist(mine, p.id.as_u128()), p.id));
        all.dedup_by_key(|p| p.id);
        let all = self.clip(me, all);
        for p in &all {
            cx.learn(p);
        }
        self.set_succs(cx, all);
        self.stats.merges += 1;
        let first = self.succs[0].pointer();
        if core::mem::take(&mut self.merge.orphaned) {
            self.stats.orphans_recovered += 1;
            info!(node = %me.short(), successor = %first.id.short(), "orphan found its place in the ring again");
        }
        debug!(node = %me.short(), successor = %first.id.short(), "merged: took in members this node's successor list skipped");
        if old_first != Some(first.id) {
            self.notify(cx, first);
        }
        obs.ring_changed(cx, self);
        true
    }
}
