//! The failure constraint of spec/chord.md §11: which members may fail
//! (crash, be killed or leave) without taking the ring outside Zave's
//! contract. The one place the rule is written; the chord scenario, the
//! scenario files and the property tests all ask it.
//!
//! Two parts:
//!
//! - Zave's `Fail` precondition: the ring without the victim still
//!   satisfies the invariant ([`precondition`]), optionally also counting
//!   the lists that replies still on their way may carry ([`may_fail`]);
//! - no `r` consecutive members fail within one repair window
//!   ([`failed_run`], [`repair_window`]): the precondition judges the lists
//!   as they are now, and this rule covers the lists that still name
//!   members that failed a moment ago.
//!
//! [`FailureConstraint`] keeps what a run needs to apply both: the recent
//! failures and the lists members replaced a moment ago.

use std::fmt;

use ringmesh::{Config, Duration, Instant, NodeId};

use super::ids::between;
use super::invariant::{InvariantReport, check};
use super::snapshot::RingSnapshot;
use crate::engine::NetModel;

/// Why a member may not fail now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breach {
    /// Zave's `Fail` precondition does not hold: the ring without the
    /// member would break these properties of the invariant.
    Precondition(String),
    /// Its failure would make `run` consecutive members down within one
    /// repair window (`r` or more).
    ConsecutiveFailures {
        /// Consecutive members down, the victim included.
        run: usize,
        /// The repair window.
        window: Duration,
    },
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::Precondition(broken) => write!(f, "{broken} would fail"),
            Breach::ConsecutiveFailures { run, window } => write!(
                f,
                "{run} consecutive members down within the {} ms repair window",
                window.as_millis()
            ),
        }
    }
}

/// The failure constraint as a run applies it, over time: it remembers the
/// failures it was told of and, when it counts lists in flight, the lists
/// members replaced a moment ago.
#[derive(Debug, Clone)]
pub struct FailureConstraint {
    /// The successor list length.
    r: usize,
    /// How long a replaced list may still travel in a reply; `None`: only
    /// the lists as they are now are judged.
    in_flight: Option<Duration>,
    /// Every failure: the member's id and when.
    failures: Vec<(NodeId, Instant)>,
    /// Each member's successor list at the last look.
    lists: Vec<(NodeId, Vec<NodeId>)>,
    /// Lists members replaced within `in_flight`: (when, member, list).
    replaced: Vec<(Instant, NodeId, Vec<NodeId>)>,
}

impl FailureConstraint {
    /// The full constraint, counting the lists replies may still carry for
    /// `in_flight` after a member replaced them (see [`reply_in_flight`]).
    /// Call [`FailureConstraint::look`] at every look at the ring.
    pub fn new(r: usize, in_flight: Duration) -> Self {
        FailureConstraint {
            in_flight: Some(in_flight),
            ..FailureConstraint::on_current_lists(r)
        }
    }

    /// Zave's precondition on the lists as they are now, and the
    /// consecutive-failures rule; lists in flight are not counted (the
    /// rule covers most of them, and a large run need not keep every
    /// member's lists).
    pub fn on_current_lists(r: usize) -> Self {
        FailureConstraint {
            r,
            in_flight: None,
            failures: Vec::new(),
            lists: Vec::new(),
            replaced: Vec::new(),
        }
    }

    /// Notes the lists members replaced since the last look: a reply sent
    /// with one may still be on its way. Does nothing unless lists in
    /// flight are counted.
    pub fn look(&mut self, snapshot: &RingSnapshot, now: Instant) {
        let Some(keep) = self.in_flight else {
            return;
        };
        let current: Vec<(NodeId, Vec<NodeId>)> = snapshot
            .members
            .iter()
            .map(|m| (m.id, m.succ_list.clone()))
            .collect();
        for (id, list) in std::mem::replace(&mut self.lists, current) {
            if !self.lists.iter().any(|(i, l)| *i == id && *l == list) {
                self.replaced.push((now, id, list));
            }
        }
        self.replaced.retain(|&(at, ..)| at + keep > now);
    }

    /// Whether member `victim` may fail now, with `window` the repair
    /// window of its ring ([`repair_window`]).
    pub fn allows(
        &self,
        snapshot: &RingSnapshot,
        victim: NodeId,
        now: Instant,
        window: Duration,
    ) -> Result<(), Breach> {
        if self.in_flight.is_some() {
            let in_flight: Vec<(NodeId, Vec<NodeId>)> = self
                .replaced
                .iter()
                .map(|(_, s, list)| (*s, list.clone()))
                .collect();
            may_fail(snapshot, victim, &in_flight).map_err(Breach::Precondition)?;
        } else {
            precondition(snapshot, |id| id == victim).map_err(Breach::Precondition)?;
        }
        let recent: Vec<NodeId> = self
            .failures
            .iter()
            .filter(|&&(_, at)| at + window > now)
            .map(|&(id, _)| id)
            .collect();
        let members: Vec<NodeId> = snapshot
            .members
            .iter()
            .filter(|m| m.live && m.id != victim)
            .map(|m| m.id)
            .collect();
        let run = failed_run(&members, &recent, victim);
        if run >= self.r {
            return Err(Breach::ConsecutiveFailures { run, window });
        }
        Ok(())
    }

    /// Member `victim` failed at `now` (allowed or not).
    pub fn failed(&mut self, victim: NodeId, now: Instant) {
        self.failures.push((victim, now));
    }
}

/// spec/chord.md §11's repair window of a ring whose members run `config`:
/// r × (`chord.stabilize_interval` + `chord.request_timeout`), the time the
/// lists that name a failed member take to drop it.
pub fn repair_window(config: &Config) -> Duration {
    let chord = config.chord.clone().unwrap_or_default();
    (chord.stabilize_interval + chord.request_timeout).saturating_mul(chord.successors as u64)
}

/// How long a reply may be on its way on `net` when a run looks at the
/// ring every `look_every`: a link's latency and jitter (a connection
/// never reorders), plus the time between two looks, plus a millisecond.
pub fn reply_in_flight(net: &NetModel, look_every: Duration) -> Duration {
    net.latency + net.jitter + look_every + Duration::from_millis(1)
}

/// Zave's `Fail` precondition for the members `victims` picks failing at
/// once, on the lists as they are now: the ring without them still
/// satisfies the invariant. `Err` names the properties that would break.
pub fn precondition(
    snapshot: &RingSnapshot,
    victims: impl Fn(NodeId) -> bool,
) -> Result<(), String> {
    broken_invariant(&check(&without(snapshot, victims)))
}

/// `snapshot` without the members `victims` picks.
fn without(snapshot: &RingSnapshot, victims: impl Fn(NodeId) -> bool) -> RingSnapshot {
    let mut without = snapshot.clone();
    without.members.retain(|m| !victims(m.id));
    without
}

/// `Err` with the invariant's properties that `report` finds broken.
fn broken_invariant(report: &InvariantReport) -> Result<(), String> {
    if report.safe() {
        return Ok(());
    }
    let mut broken = Vec::new();
    if !report.one_live_successor {
        broken.push("one_live_successor");
    }
    if !report.sufficient_principals {
        broken.push("sufficient_principals");
    }
    Err(broken.join(", "))
}

/// Whether Zave's `Fail` precondition lets member `victim` fail now: the
/// ring without it still satisfies the invariant, also counting the lists
/// that replies still on their way may carry (spec/chord.md §12.1, as
/// verdi-chord does). `in_flight` holds such lists as (member, its list)
/// pairs, for instance the lists members held until a moment ago; the
/// victim's own list is always counted. A member that adopts one in
/// stabilization holds the replying member followed by its list, cut to
/// `r` entries; a node that joins holds the list itself. Both must keep a
/// live entry, and the pairs of the replying member's extended list may
/// skip members.
///
/// `Err` names the property that would break.
pub fn may_fail(
    snapshot: &RingSnapshot,
    victim: NodeId,
    in_flight: &[(NodeId, Vec<NodeId>)],
) -> Result<(), String> {
    let r = snapshot.r;
    let own = snapshot
        .members
        .iter()
        .find(|m| m.live && m.id == victim)
        .map(|m| m.succ_list.clone());
    let without = without(snapshot, |id| id == victim);
    broken_invariant(&check(&without))?;
    let live = without.live_ids_sorted();
    // Each list in flight as the replying member's extended list.
    let extra: Vec<Vec<u128>> = in_flight
        .iter()
        .map(|(s, list)| (*s, list.as_slice()))
        .chain(own.as_deref().map(|list| (victim, list)))
        .map(|(s, list)| {
            std::iter::once(s)
                .chain(list.iter().copied())
                .map(NodeId::as_u128)
                .collect()
        })
        .collect();
    let is_live = |id: &u128| live.binary_search(id).is_ok();
    for esl in &extra {
        // Stabilization adopts the head and its list, cut to r; a join
        // adopts the list.
        let stabilized = &esl[..esl.len().min(r)];
        let joined = &esl[1..];
        if !stabilized.iter().any(is_live) || (!joined.is_empty() && !joined.iter().any(is_live)) {
            return Err(format!(
                "one_live_successor, counting a list in flight from {}",
                id(esl[0])
            ));
        }
    }
    let esls: Vec<Vec<u128>> = without
        .members
        .iter()
        .filter(|m| m.live)
        .map(|m| {
            std::iter::once(m.id)
                .chain(m.succ_list.iter().copied())
                .map(NodeId::as_u128)
                .collect()
        })
        .chain(extra)
        .collect();
    let principals = live
        .iter()
        .filter(|&&p| {
            esls.iter()
                .all(|e| e.windows(2).all(|w| !between(w[0], p, w[1])))
        })
        .count();
    if principals <= r {
        return Err(format!(
            "sufficient_principals, counting lists in flight ({principals} principals)"
        ));
    }
    Ok(())
}

/// How many members in a row would be down if `victim` failed now: the
/// longest run of consecutive ids, in identifier order over `members` and
/// `recently_failed` together, that contains `victim` and holds only it
/// and ids that failed recently (and are not `members` again).
///
/// spec/chord.md §11 asks that no `r` consecutive members fail within one
/// repair window, the time it takes the lists that name a failed member to
/// drop it. [`may_fail`] judges the lists as they are now; this rule also
/// covers the lists that still name members that failed a moment ago.
pub fn failed_run(members: &[NodeId], recently_failed: &[NodeId], victim: NodeId) -> usize {
    let failed: Vec<u128> = recently_failed
        .iter()
        .chain([&victim])
        .filter(|id| **id == victim || !members.contains(id))
        .map(|id| id.as_u128())
        .collect();
    let mut ids: Vec<u128> = members
        .iter()
        .map(|id| id.as_u128())
        .chain(failed.iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let n = ids.len();
    let Ok(at) = ids.binary_search(&victim.as_u128()) else {
        return 0;
    };
    let down = |k: usize| failed.contains(&ids[k % n]);
    let forward = (1..n).take_while(|&k| down(at + k)).count();
    if forward == n - 1 {
        return n;
    }
    let backward = (1..n).take_while(|&k| down(at + n - k)).count();
    1 + forward + backward
}

/// How ids appear in messages: all 32 hex digits.
fn id(value: u128) -> String {
    NodeId::from_u128(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chord_oracle::fixtures::{member, node, ring_of_ten};

    #[test]
    fn may_fail_counts_the_victims_list_and_lists_in_flight() {
        // r = 3, ring 0, 10, ..., 90, ideal: any single member may fail.
        let mut snapshot = ring_of_ten(3);
        assert_eq!(may_fail(&snapshot, node(30), &[]), Ok(()));
        // 50 has failed and 40 lost its other entries a moment ago: a
        // reply from 40 carrying [50] may still be on its way, so 40 may
        // not fail, though every current list keeps a live entry without
        // it.
        for m in &mut snapshot.members {
            if m.id == node(50) {
                m.live = false;
            }
        }
        assert_eq!(may_fail(&snapshot, node(40), &[]), Ok(()));
        let in_flight = [(node(40), vec![node(50)])];
        let err = may_fail(&snapshot, node(40), &in_flight).expect_err("in flight");
        assert!(err.starts_with("one_live_successor"), "{err}");
        // r = 3: 25 has just joined after 20, and only 10's list [20, 30,
        // 40] still skips it (20's and 40's name it). Without 10 the current lists leave four
        // principals, but 10's last reply may still make a member skip 25.
        let mut small = RingSnapshot::ideal([10, 20, 30, 40].map(node), 3);
        small.members.push(member(25, &[30, 40, 10], 20));
        for m in &mut small.members {
            if m.id == node(20) {
                m.succ_list = [25, 30, 40].map(node).to_vec();
            } else if m.id == node(40) {
                m.succ_list = [10, 20, 25].map(node).to_vec();
            }
        }
        assert!(check(&small).safe());
        let mut without = small.clone();
        without.members.retain(|m| m.id != node(10));
        assert!(check(&without).safe());
        let err = may_fail(&small, node(10), &[]).expect_err("own list");
        assert!(err.starts_with("sufficient_principals"), "{err}");
        // 40's failure leaves 10's list skipping 25: three principals.
        assert_eq!(
            may_fail(&small, node(40), &[]),
            Err("sufficient_principals".to_owned())
        );
    }

    #[test]
    fn failed_run_counts_consecutive_failures_round_the_ring() {
        let ids = |v: &[u128]| v.iter().map(|&k| node(k)).collect::<Vec<_>>();
        let members = ids(&[10, 30, 50, 70]);
        // 20 and 40 failed a moment ago; 30 between them would make three.
        assert_eq!(failed_run(&members, &ids(&[20, 40]), node(30)), 3);
        assert_eq!(failed_run(&members, &ids(&[20]), node(50)), 1);
        assert_eq!(failed_run(&members, &ids(&[20]), node(10)), 2);
        // Round the top of the identifier space.
        assert_eq!(failed_run(&members, &ids(&[80, 5]), node(70)), 3);
        // A failed id that is a member again does not count.
        assert_eq!(failed_run(&members, &ids(&[30]), node(10)), 1);
        // Everything down.
        assert_eq!(failed_run(&ids(&[10]), &ids(&[20, 30]), node(10)), 3);
    }
}
