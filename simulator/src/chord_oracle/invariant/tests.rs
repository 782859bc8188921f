//! The checker against hand-made rings (Zave's counterexamples among
//! them), against a transcription of the definitions, and for speed.

use std::time::Instant;

use proptest::prelude::*;
use ringmesh::NodeId;

use super::*;
use crate::chord_oracle::between;
use crate::chord_oracle::fixtures::{at, member, node, ring_of_ten};
use crate::chord_oracle::snapshot::MemberState;

fn failed(snapshot: &RingSnapshot) -> Vec<&'static str> {
    let report = check(snapshot);
    assert_eq!(
        naive(snapshot),
        flags(&report),
        "fast and naive checks differ"
    );
    report.failed_properties()
}

fn set_live(snapshot: &mut RingSnapshot, k: u128, live: bool) {
    for m in &mut snapshot.members {
        if m.id == node(k) {
            m.live = live;
        }
    }
}

#[test]
fn ideal_ring_satisfies_everything() {
    for r in 1..=4 {
        let report = check(&ring_of_ten(r));
        assert!(report.failed_properties().is_empty(), "{report:?}");
        assert!(report.safe() && report.all_implied() && report.ideal);
        assert!(report.violations.is_empty());
        assert_eq!(
            (
                report.live_members,
                report.principals,
                report.rings,
                report.ring_members
            ),
            (10, 10, 1, 10)
        );
    }
}

#[test]
fn small_ideal_rings_are_ideal_but_lack_principals() {
    // n <= r: lists wrap round (or hold the n - 1 others once each).
    let report = check(&RingSnapshot::ideal([node(10), node(20), node(30)], 3));
    assert_eq!(report.failed_properties(), ["sufficient_principals"]);
    let mut short = RingSnapshot::ideal([node(10), node(20), node(30)], 3);
    for m in &mut short.members {
        m.succ_list.truncate(2);
    }
    assert_eq!(failed(&short), ["sufficient_principals"]);
    let mut alone = RingSnapshot::ideal([node(10)], 2);
    alone.members[0].prdc = None;
    alone.members[0].succ_list.clear();
    assert_eq!(
        failed(&alone),
        [
            "one_live_successor",
            "sufficient_principals",
            "at_least_one_ring",
            "connected_appendages"
        ]
    );
    assert!(!check(&RingSnapshot::default()).ideal);
}

#[test]
fn ideal_ring_after_one_failure_is_safe_but_not_ideal() {
    let mut dead = ring_of_ten(3);
    set_live(&mut dead, 40, false);
    let report = check(&dead);
    assert_eq!(report.failed_properties(), ["ideal"]);
    assert!(report.safe() && report.all_implied());
    assert_eq!((report.principals, report.ring_members), (9, 9));
    // The member's record gone altogether is the same state.
    let mut gone = ring_of_ten(3);
    gone.members.retain(|m| m.id != node(40));
    assert_eq!(check(&gone).failed_properties(), ["ideal"]);
    assert!(
        check(&gone)
            .violations
            .iter()
            .all(|v| v.starts_with("ideal: "))
    );
}

#[test]
fn fresh_appendage_is_safe_but_not_ideal() {
    // 45 has joined (it copied 40's list) but nobody points at it yet.
    let mut snapshot = ring_of_ten(2);
    snapshot.members.push(member(45, &[50, 60], 40));
    let report = check(&snapshot);
    assert_eq!(failed(&snapshot), ["ideal"]);
    assert!(report.safe());
    assert_eq!((report.principals, report.ring_members), (10, 10));
}

#[test]
fn two_adjacent_failures_break_the_ring() {
    // Zave 2012, AtLeastOneRing: with r = 2, the two successors of 20
    // fail; 20 has no live successor and the ring is no longer a cycle.
    let mut snapshot = RingSnapshot::ideal((0..8).map(|k| node(10 * k)), 2);
    set_live(&mut snapshot, 30, false);
    set_live(&mut snapshot, 40, false);
    let report = check(&snapshot);
    assert_eq!(
        failed(&snapshot),
        [
            "one_live_successor",
            "at_least_one_ring",
            "connected_appendages",
            "ideal"
        ]
    );
    assert!(report.sufficient_principals);
    assert_eq!(report.rings, 0);
    let text = report.violations.join("\n");
    assert!(
        text.contains(&format!("member {} has no live entry", node(20))),
        "{text}"
    );
    assert!(text.contains("its best successors end at"), "{text}");
}

#[test]
fn member_with_only_dead_successors() {
    // A joiner whose whole list is dead; the ring itself is intact.
    let mut snapshot = ring_of_ten(2);
    snapshot.members.push(member(45, &[46, 47], 40));
    snapshot.members.push(MemberState {
        live: false,
        ..member(46, &[50, 60], 45)
    });
    assert_eq!(
        failed(&snapshot),
        ["one_live_successor", "connected_appendages", "ideal"]
    );
}

#[test]
fn two_interleaved_rings() {
    // Zave 2012, AtMostOneRing: the even and the odd members each form
    // a ring, every list ordered.
    let mut snapshot = RingSnapshot {
        r: 2,
        members: Vec::new(),
    };
    for k in 0..8u128 {
        let succ = |d: u128| 10 * ((k + 2 * d) % 8);
        snapshot
            .members
            .push(member(10 * k, &[succ(1), succ(2)], 10 * ((k + 6) % 8)));
    }
    let report = check(&snapshot);
    assert_eq!(
        failed(&snapshot),
        [
            "sufficient_principals",
            "at_most_one_ring",
            "ordered_ring",
            "ideal"
        ]
    );
    assert_eq!(
        (report.rings, report.ring_members, report.principals),
        (2, 8, 0)
    );
}

#[test]
fn two_separate_rings() {
    // Rings on disjoint arcs: each one's closing edge spans the other.
    let mut snapshot = RingSnapshot {
        r: 2,
        members: Vec::new(),
    };
    for arc in [[0, 10, 20], [50, 60, 70]] {
        for i in 0..3 {
            let succs = [arc[(i + 1) % 3], arc[(i + 2) % 3]];
            snapshot
                .members
                .push(member(arc[i], &succs, arc[(i + 2) % 3]));
        }
    }
    assert_eq!(
        failed(&snapshot),
        [
            "sufficient_principals",
            "at_most_one_ring",
            "ordered_ring",
            "ideal"
        ]
    );
}

#[test]
fn ring_looping_twice_round() {
    // Zave 2012, OrderedRing: one cycle 10→30→50→20→40→60→10 winds
    // twice round the identifier space; each list alone looks ordered.
    let order = [10, 30, 50, 20, 40, 60];
    let mut snapshot = RingSnapshot {
        r: 2,
        members: Vec::new(),
    };
    for i in 0..6 {
        let succs = [order[(i + 1) % 6], order[(i + 2) % 6]];
        snapshot
            .members
            .push(member(order[i], &succs, order[(i + 5) % 6]));
    }
    let report = check(&snapshot);
    assert_eq!(
        failed(&snapshot),
        ["sufficient_principals", "ordered_ring", "ideal"]
    );
    assert_eq!((report.rings, report.ring_members), (1, 6));
}

#[test]
fn ring_with_swapped_members() {
    // 0→10→20→40→30→50→…: 20 skips ring member 30, and the lists of 20
    // and 40 run backwards.
    let mut snapshot = ring_of_ten(2);
    let order = [0, 10, 20, 40, 30, 50, 60, 70, 80, 90];
    for m in &mut snapshot.members {
        let k = order.iter().position(|&o| node(o) == m.id).expect("listed");
        m.succ_list = vec![node(order[(k + 1) % 10]), node(order[(k + 2) % 10])];
    }
    let report = check(&snapshot);
    assert_eq!(
        failed(&snapshot),
        [
            "sufficient_principals",
            "ordered_ring",
            "ordered_successor_lists",
            "ideal"
        ]
    );
    let text = report.violations.join("\n");
    assert!(
        text.contains(&format!(
            "ordered_ring: ring member {}'s best successor is {}, but ring member {} lies between them",
            node(20),
            node(40),
            node(30)
        )),
        "{text}"
    );
}

#[test]
fn appendages_looping_among_themselves() {
    // 35 and 36 point at each other: by Zave's definitions that loop is
    // a second ring (every live member is on a cycle or drains into one,
    // so ConnectedAppendages still holds), and 36's list runs backwards.
    let mut snapshot = ring_of_ten(2);
    snapshot.members.push(member(35, &[36, 40], 30));
    snapshot.members.push(member(36, &[35, 40], 35));
    let report = check(&snapshot);
    assert_eq!(
        failed(&snapshot),
        [
            "sufficient_principals",
            "at_most_one_ring",
            "ordered_ring",
            "ordered_successor_lists",
            "ideal"
        ]
    );
    assert_eq!((report.rings, report.ring_members), (2, 12));
}

#[test]
fn appendage_tail_into_a_dead_end() {
    // 43 → 44 → 45, and 45's list is all dead: the whole tail is
    // disconnected, though only 45 lacks a live successor.
    let mut snapshot = ring_of_ten(2);
    snapshot.members.push(member(43, &[44, 50], 40));
    snapshot.members.push(member(44, &[45, 50], 43));
    snapshot.members.push(member(45, &[46, 47], 44));
    let report = check(&snapshot);
    assert_eq!(
        failed(&snapshot),
        ["one_live_successor", "connected_appendages", "ideal"]
    );
    let text = report.violations.join("\n");
    assert!(
        text.contains("connected_appendages: 3 violations in all"),
        "{text}"
    );
}

#[test]
fn lists_that_repeat_or_contain_the_member() {
    // members[2] is 20.
    let mut snapshot = ring_of_ten(3);
    snapshot.members[2].succ_list = vec![node(30), node(30), node(40)];
    assert!(failed(&snapshot).contains(&"ordered_successor_lists"));
    snapshot.members[2].succ_list = vec![node(30), node(20), node(40)];
    assert!(failed(&snapshot).contains(&"ordered_successor_lists"));
    // The member itself as the last entry is a full turn: still ordered.
    snapshot.members[2].succ_list = vec![node(30), node(40), node(20)];
    assert!(!failed(&snapshot).contains(&"ordered_successor_lists"));
}

#[test]
fn wrong_predecessor_and_duplicates_only_spoil_ideal() {
    let mut snapshot = ring_of_ten(2);
    snapshot.members[3].prdc = Some(node(10));
    let report = check(&snapshot);
    assert_eq!(report.failed_properties(), ["ideal"]);
    assert!(report.violations[0].starts_with("ideal: predecessor of"));
    let mut snapshot = ring_of_ten(2);
    let copy = snapshot.members[0].clone();
    snapshot.members.push(copy);
    let report = check(&snapshot);
    assert_eq!(report.failed_properties(), ["ideal"]);
    assert_eq!(report.live_members, 10);
}

#[test]
fn violations_are_capped() {
    let mut snapshot = RingSnapshot::ideal((0..1000).map(|k| NodeId::from_u128(k * 7)), 3);
    for m in &mut snapshot.members {
        m.succ_list.reverse();
        m.prdc = None;
    }
    let report = check(&snapshot);
    assert!(report.violations.len() <= MAX_VIOLATIONS);
    assert!(!report.safe());
    let text = report.violations.join("\n");
    assert!(
        text.contains("ordered_successor_lists: 1000 violations in all"),
        "{text}"
    );
}

/// splitmix64, for reproducible large rings without a dependency.
fn random_ids(count: usize, seed: u64) -> Vec<NodeId> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..count)
        .map(|_| NodeId::from_u128((u128::from(next()) << 64) | u128::from(next())))
        .collect()
}

fn timed_check(n: usize, r: usize) -> (InvariantReport, f64) {
    let mut snapshot = RingSnapshot::ideal(random_ids(n, 42), r);
    // Shuffle-ish: the checker must not rely on the input order.
    snapshot.members.reverse();
    let started = Instant::now();
    let report = check(&snapshot);
    (report, started.elapsed().as_secs_f64())
}

#[test]
fn hundred_thousand_members_check_quickly() {
    let (report, secs) = timed_check(100_000, 8);
    assert!(
        report.safe() && report.all_implied() && report.ideal,
        "{report:?}"
    );
    assert_eq!(report.principals, 100_000);
    eprintln!("check of 100000 members, r = 8: {secs:.3} s");
    // Typically a fraction of a second; generous for a loaded machine.
    assert!(secs < 5.0, "took {secs} s");
}

#[test]
#[ignore = "a million members: run with --release --ignored to time it"]
fn million_members_check() {
    let (report, secs) = timed_check(1_000_000, 8);
    assert!(report.safe() && report.all_implied() && report.ideal);
    eprintln!("check of 1000000 members, r = 8: {secs:.3} s");
}

// ---- A direct transcription of the definitions, for small snapshots.

fn flags(report: &InvariantReport) -> [bool; 7] {
    [
        report.one_live_successor,
        report.sufficient_principals,
        report.at_least_one_ring,
        report.at_most_one_ring,
        report.ordered_ring,
        report.connected_appendages,
        report.ordered_successor_lists,
    ]
}

/// The predicates of `correctChord.als`, quantifier by quantifier
/// (first live copy of an id wins, as in [`check`]).
fn naive(snapshot: &RingSnapshot) -> [bool; 7] {
    let mut live: Vec<&MemberState> = Vec::new();
    for m in snapshot.members.iter().filter(|m| m.live) {
        if !live.iter().any(|l| l.id == m.id) {
            live.push(m);
        }
    }
    let find = |id: u128| live.iter().copied().find(|m| m.id.as_u128() == id);
    let best = |m: u128| {
        find(m)?
            .succ_list
            .iter()
            .map(|e| e.as_u128())
            .find(|&e| find(e).is_some())
    };
    // m2 in m1.^bestSucc
    let reaches = |m1: u128, m2: u128| {
        let mut cur = m1;
        for _ in 0..live.len() {
            match best(cur) {
                Some(next) if next == m2 => return true,
                Some(next) => cur = next,
                None => return false,
            }
        }
        false
    };
    let ids: Vec<u128> = live.iter().map(|m| m.id.as_u128()).collect();
    let esl = |m: &MemberState| {
        let mut list = vec![m.id.as_u128()];
        list.extend(m.succ_list.iter().map(|e| e.as_u128()));
        list
    };
    let one_live_successor = ids.iter().all(|&m| best(m).is_some());
    // Base.size in the model: r + 1.
    let base_size = snapshot.r + 1;
    let principals = ids
        .iter()
        .filter(|&&p| {
            live.iter()
                .all(|m| esl(m).windows(2).all(|w| !between(w[0], p, w[1])))
        })
        .count();
    let ring: Vec<u128> = ids.iter().copied().filter(|&m| reaches(m, m)).collect();
    let at_most_one_ring = ring
        .iter()
        .all(|&m1| ring.iter().all(|&m2| m1 == m2 || reaches(m2, m1)));
    let ordered_ring = ring.iter().all(|&m1| {
        ring.iter().all(|&m2| {
            ring.iter().all(|&mb| {
                m1 == m2 || m2 == mb || m1 == mb || best(m1) != Some(m2) || !between(m1, mb, m2)
            })
        })
    });
    let connected_appendages = ids
        .iter()
        .filter(|&&a| !ring.contains(&a))
        .all(|&a| ring.iter().any(|&r| reaches(a, r)));
    let ordered_successor_lists = live.iter().all(|m| {
        let id = m.id.as_u128();
        let l: Vec<u128> = m.succ_list.iter().map(|e| e.as_u128()).collect();
        let len = l.len();
        (0..len).all(|j| {
            (j + 1..len)
                .all(|k| between(id, l[j], l[k]) && (k + 1..len).all(|x| between(l[j], l[k], l[x])))
        })
    });
    [
        one_live_successor,
        principals >= base_size,
        !ring.is_empty(),
        at_most_one_ring,
        ordered_ring,
        connected_appendages,
        ordered_successor_lists,
    ]
}

/// Eight positions round the ring, with random low bits.
fn pool_id(slot: u8, low: u64) -> NodeId {
    NodeId::from_u128(at(u128::from(slot) * 12 + 3) ^ u128::from(low))
}

prop_compose! {
    /// Arbitrary small states: any liveness, any lists over the pool.
    fn arbitrary_snapshot()(
        r in 1usize..=3,
        low in any::<u64>(),
        nodes in prop::collection::vec(
            (any::<bool>(), prop::bool::weighted(0.8),
             prop::collection::vec(0u8..8, 0..=3), 0u8..8),
            8,
        ),
    ) -> RingSnapshot {
        let members = nodes
            .into_iter()
            .enumerate()
            .filter(|(_, (present, ..))| *present)
            .map(|(slot, (_, live, list, prdc))| MemberState {
                id: pool_id(slot as u8, low),
                live,
                succ_list: list.iter().take(r).map(|&s| pool_id(s, low)).collect(),
                prdc: Some(pool_id(prdc, low)),
            })
            .collect();
        RingSnapshot { r, members }
    }
}

prop_compose! {
    /// An ideal ring over part of the pool, then a few failures and
    /// list edits: mostly safe states, some not.
    fn perturbed_ideal()(
        r in 1usize..=3,
        size in 3usize..=8,
        low in any::<u64>(),
        edits in prop::collection::vec((0u8..8, 0u8..4, 0u8..8, 0u8..8), 0..4),
    ) -> RingSnapshot {
        let mut snapshot = RingSnapshot::ideal((0..size as u8).map(|s| pool_id(s, low)), r);
        for (who, kind, slot, what) in edits {
            let n = snapshot.members.len();
            let m = &mut snapshot.members[usize::from(who) % n];
            match kind {
                0 => m.live = false,
                1 if !m.succ_list.is_empty() => {
                    let len = m.succ_list.len();
                    m.succ_list[usize::from(slot) % len] = pool_id(what, low);
                }
                2 => m.succ_list.truncate(usize::from(slot) % (r + 1)),
                _ => m.prdc = Some(pool_id(what, low)),
            }
        }
        snapshot
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn matches_the_definitions(snapshot in arbitrary_snapshot()) {
        prop_assert_eq!(flags(&check(&snapshot)), naive(&snapshot));
    }

    #[test]
    fn invariant_implies_the_properties(snapshot in perturbed_ideal()) {
        let report = check(&snapshot);
        prop_assert_eq!(flags(&report), naive(&snapshot));
        // Zave's theorem, for full successor lists.
        let full = snapshot
            .members
            .iter()
            .filter(|m| m.live)
            .all(|m| m.succ_list.len() == snapshot.r);
        if full && report.safe() {
            prop_assert!(report.all_implied(), "{:?}", report);
        }
    }
}
