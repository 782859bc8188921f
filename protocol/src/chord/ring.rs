//! Ring arithmetic and the pure rules of spec/chord.md: intervals (§1),
//! `clip` (§3, used by join and stabilization), rectify (§6.3) and the lookup responder (§7.1). Ids are `u128`
//! positions, clockwise modulo 2^128.

use smallvec::SmallVec;

/// A successor list: at most 32 entries (`MAX_CHORD_LIST`).
pub(crate) type Succs = SmallVec<[u128; 8]>;

/// Clockwise distance from `a` to `b`.
pub(crate) fn dist(a: u128, b: u128) -> u128 {
    b.wrapping_sub(a)
}

/// x ∈ (a, b): strictly between, clockwise. With a = b, every id but a
/// (Zave's `between`).
pub(crate) fn in_open(a: u128, x: u128, b: u128) -> bool {
    if a == b {
        return x != a;
    }
    let dx = dist(a, x);
    dx > 0 && dx < dist(a, b)
}

/// x ∈ (a, b]: with a = b, every id (Zave's `includedIn`).
pub(crate) fn in_half_open(a: u128, x: u128, b: u128) -> bool {
    if a == b {
        return true;
    }
    let dx = dist(a, x);
    dx > 0 && dx <= dist(a, b)
}

/// §3 `clip(L)`: the longest prefix e1, e2, … of `list` with e1 ≠ `me` and
/// each next entry in (previous, me), truncated to `r`. The result is
/// strictly clockwise from `me`, free of `me` and of repeats.
pub(crate) fn clip(me: u128, list: impl IntoIterator<Item = u128>, r: usize) -> Succs {
    let mut out = Succs::new();
    for e in list {
        if out.len() == r {
            break;
        }
        let ok = match out.last() {
            None => e != me,
            Some(&prev) => in_open(prev, e, me),
        };
        if !ok {
            break;
        }
        out.push(e);
    }
    out
}

/// What §6.3 does with a `ChordNotify` from `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rectify {
    /// Adopt `n` as predecessor at once.
    Adopt,
    /// `n` already is the predecessor.
    Nothing,
    /// Check whether the old predecessor lives; adopt `n` only if not.
    CheckOld,
}

/// §6.3's table.
pub(crate) fn rectify(me: u128, pred: Option<u128>, n: u128) -> Rectify {
    match pred {
        None => Rectify::Adopt,
        Some(p) if p == n => Rectify::Nothing,
        Some(p) if in_open(p, n, me) => Rectify::Adopt,
        Some(_) => Rectify::CheckOld,
    }
}

/// §6.3's check of a notifier `n` (and §6.2 step 4's of a successor's
/// predecessor): whether the successor list `list` that `n` answered
/// places `me` after it consistently, its first entry lying in (n, me].
/// An honest notifier sent its `ChordNotify` to its first entry, which was
/// `me`; since then it can only have learnt of nodes between itself and
/// `me`. A list that is empty, or whose first entry lies past `me`, says
/// that `n` does not take `me` for its successor.
pub(crate) fn places(n: u128, list: &[u128], me: u128) -> bool {
    list.first().is_some_and(|&e| in_half_open(n, e, me))
}

/// How many `Next` candidates a responder offers (`CHORD_NEXT_CANDIDATES`).
pub(crate) const NEXT_CANDIDATES: usize = 4;

/// A responder's answer to `ChordFindSuccessor` (§7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Not a ring member.
    NotInRing,
    /// The key is owned here or by the first live entry of the list.
    Done(Succs),
    /// Ask these, closest to the key first.
    Next(Succs),
}

/// §7.1: the answer of member `me` (list `succs`, fingers `fingers`) to
/// `from` about `key`, skipping `dead` pointers.
pub(crate) fn respond(
    me: u128,
    member: bool,
    succs: &[u128],
    fingers: &[u128],
    key: u128,
    from: u128,
    dead: impl Fn(u128) -> bool,
) -> Reply {
    if !member {
        return Reply::NotInRing;
    }
    let Some(&s1) = succs.first() else {
        return Reply::Done(Succs::new());
    };
    if in_half_open(me, key, s1) {
        return Reply::Done(succs.iter().copied().collect());
    }
    let mut candidates: Succs = succs
        .iter()
        .chain(fingers)
        .copied()
        .filter(|&c| c != from && !dead(c) && in_open(me, c, key))
        .collect();
    // Closest to the key first: smallest clockwise distance to it.
    candidates.sort_unstable_by_key(|&c| dist(c, key));
    candidates.dedup();
    candidates.truncate(NEXT_CANDIDATES);
    // The first successor always goes last: fingers may be dead (they are
    // refreshed lazily), and s1 is what the ring keeps live, so the asker
    // can always fall back to walking the successor lists.
    if !candidates.contains(&s1) {
        if candidates.len() == NEXT_CANDIDATES {
            candidates.pop();
        }
        candidates.push(s1);
    }
    Reply::Next(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: u128 = u128::MAX;

    #[test]
    fn intervals_wrap_around_and_degenerate_as_zave_defines() {
        assert!(in_open(10, 11, 20) && !in_open(10, 20, 20) && !in_open(10, 10, 20));
        assert!(in_open(MAX - 1, 0, 5) && in_open(MAX - 1, MAX, 5));
        assert!(!in_open(MAX - 1, 6, 5));
        assert!(in_open(7, 3, 7) && !in_open(7, 7, 7));
        assert!(in_half_open(10, 20, 20) && !in_half_open(10, 10, 20));
        assert!(in_half_open(7, 7, 7) && in_half_open(7, 100, 7));
    }

    #[test]
    fn clip_cuts_at_self_at_a_repeat_or_at_r() {
        assert_eq!(clip(0, [10, 20, 30, 40], 3).as_slice(), &[10, 20, 30]);
        // Wraps past self: stops there.
        assert_eq!(
            clip(25, [30, 40, 5, 20, 25, 30], 8).as_slice(),
            &[30, 40, 5, 20]
        );
        // Out of order: stops.
        assert_eq!(clip(0, [10, 30, 20], 8).as_slice(), &[10, 30]);
        assert!(clip(5, [5, 6], 8).is_empty());
    }

    #[test]
    fn rectify_follows_the_table() {
        assert_eq!(rectify(50, None, 40), Rectify::Adopt);
        assert_eq!(rectify(50, Some(40), 40), Rectify::Nothing);
        assert_eq!(rectify(50, Some(30), 40), Rectify::Adopt);
        assert_eq!(rectify(50, Some(40), 30), Rectify::CheckOld);
    }

    #[test]
    fn a_list_places_me_when_its_first_entry_is_at_or_before_me() {
        assert!(places(40, &[50, 60], 50));
        assert!(places(40, &[45, 50], 50));
        assert!(!places(40, &[], 50));
        // Past me: the notifier does not take me for its successor.
        assert!(!places(40, &[55, 60], 50));
        // Wraps around zero.
        assert!(places(u128::MAX - 1, &[3], 5));
        assert!(!places(u128::MAX - 1, &[7], 5));
    }

    #[test]
    fn the_responder_answers_done_when_the_key_is_just_after_it() {
        let succs = [20, 30, 40];
        let none = |_| false;
        assert_eq!(
            respond(10, false, &succs, &[], 15, 1, none),
            Reply::NotInRing
        );
        assert_eq!(
            respond(10, true, &[], &[], 15, 1, none),
            Reply::Done(Succs::new())
        );
        assert_eq!(
            respond(10, true, &succs, &[], 20, 1, none),
            Reply::Done(succs.iter().copied().collect())
        );
        // Key 35: candidates in (10, 35), closest first: 30, then 20.
        let Reply::Next(next) = respond(10, true, &succs, &[25], 35, 1, none) else {
            panic!("expected Next")
        };
        assert_eq!(next.as_slice(), &[30, 25, 20]);
        // Dead and asker excluded.
        let Reply::Next(next) = respond(10, true, &succs, &[25], 35, 25, |c| c == 30) else {
            panic!("expected Next")
        };
        assert_eq!(next.as_slice(), &[20]);
    }

    proptest! {
        #[test]
        fn clip_is_clockwise_self_free_and_bounded(
            me in any::<u128>(),
            list in prop::collection::vec(any::<u128>(), 0..40),
            r in 1usize..32,
        ) {
            let out = clip(me, list.iter().copied(), r);
            prop_assert!(out.len() <= r);
            prop_assert!(out.iter().all(|&e| e != me));
            // Strictly increasing clockwise distance from me: ordered, no
            // repeats, never past self.
            for w in out.windows(2) {
                prop_assert!(dist(me, w[0]) < dist(me, w[1]));
            }
            // A prefix of the input.
            prop_assert_eq!(&list[..out.len()], out.as_slice());
        }

        #[test]
        fn next_candidates_are_strictly_closer_to_the_key(
            me in any::<u128>(),
            succs in prop::collection::vec(any::<u128>(), 1..8),
            fingers in prop::collection::vec(any::<u128>(), 0..16),
            key in any::<u128>(),
        ) {
            let succs = clip(me, succs, 8);
            prop_assume!(!succs.is_empty());
            if let Reply::Next(next) = respond(me, true, &succs, &fingers, key, me, |_| false) {
                prop_assert!(!next.is_empty() && next.len() <= NEXT_CANDIDATES);
                for &c in &next {
                    prop_assert!(in_open(me, c, key) || c == succs[0]);
                }
                // Closest first, and the first successor always offered.
                for w in next.windows(2) {
                    prop_assert!(dist(w[0], key) < dist(w[1], key));
                }
                prop_assert!(next.contains(&succs[0]));
            }
        }
    }
}
