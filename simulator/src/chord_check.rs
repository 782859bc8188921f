//! Ground-truth invariant checks for a Chord ring, after Pamela Zave,
//! "Reasoning about identifier spaces: How to make Chord correct", IEEE
//! Transactions on Software Engineering 43(12), 2017 (arXiv:1610.01140),
//! and the Alloy model of correct Chord that accompanies it
//! (`correctChord.als`), whose predicates carry the names used here.
//!
//! The simulator sees the state of every node at once. [`check`] takes a
//! [`RingSnapshot`] of it and evaluates:
//!
//! - Zave's inductive invariant, [`InvariantReport::safe`]:
//!   *OneLiveSuccessor* and *SufficientPrincipals*;
//! - the properties it implies, [`InvariantReport::all_implied`]:
//!   *AtLeastOneRing*, *AtMostOneRing*, *OrderedRing*,
//!   *ConnectedAppendages* and *OrderedSuccessorLists*;
//! - whether the ring is ideal (every list and predecessor exactly right).
//!
//! # Vocabulary (Zave 2017 and `correctChord.als`)
//!
//! - **Identifier space**: the 2^128 points of [`NodeId`], in numeric order,
//!   wrapping from the largest to 0. [`between`]`(a, x, b)` is Zave's
//!   `between`: `x` lies strictly inside the interval that goes clockwise
//!   from `a` to `b`; when `a == b` that is every point but `a`.
//! - **Member**: a *live* node. In Zave's model a node that fails leaves the
//!   set of members, so the state of a dead node is ignored here, and any id
//!   that is not the id of a live member is a dead entry wherever it appears.
//! - **Extended successor list** (ESL) of a member `m`: `m` followed by its
//!   successor list, `[m, s1, …, sk]` (`k = r` when the list is full).
//! - **Best successor** of a member: the first live entry of its successor
//!   list, if any.
//! - **Ring member**: a member that reaches itself by following best
//!   successors (`m in m.^bestSucc`). A **ring** is a cycle of best
//!   successors. **Appendage**: a member that is not a ring member.
//! - **Principal**: "a member that is not skipped by any member's extended
//!   successor list" (Zave 2017). `p` is skipped by an ESL when
//!   `between(x, p, y)` for two *adjacent* entries `x, y` of it; dead entries
//!   count as entries. The model spells it out: `p` is a principal when, for
//!   all members `m`, `! between[m, p, m.succ.list[0]]` and, for every `j`,
//!   `! between[m.succ.list[j], p, m.succ.list[j+1]]`.
//!
//! Lists shorter than `r` (a list that is still filling) are taken as they
//! are: they have fewer adjacent pairs, so they skip less. Zave's model has
//! only full lists, and her proofs that the invariant implies the other
//! properties count on ESLs of length `r + 1` (§VI-B, as corrected in her
//! erratum).
//!
//! # Cost
//!
//! `O(n log n + n·r)` for `n` members and lists of length `r`: one sort, one
//! hash lookup per list entry (a binary search for dead entries), a
//! difference array for the principals and a linear walk over the
//! best-successor graph. A million members take about a second.

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use ringmesh::NodeId;
use serde::Serialize;

/// At most this many human-readable lines are kept in
/// [`InvariantReport::violations`]; the rest are counted in
/// [`InvariantReport::omitted_violations`].
pub const MAX_VIOLATIONS: usize = 20;

/// Examples shown per violated property before a line with the total.
const EXAMPLES_PER_PROPERTY: usize = 2;

/// One node of the ring as the checker needs it: the conversion target for
/// the protocol's chord component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// The node's id, its position on the ring.
    pub id: NodeId,
    /// Whether the node is up (ground truth, not anyone's opinion). Only
    /// live nodes are members; the rest of a dead node's state is ignored.
    pub live: bool,
    /// Its successor list, nearest first; `r` entries when full.
    pub succ_list: Vec<NodeId>,
    /// Its predecessor pointer (`prdc` in Zave's model), if it has one.
    pub prdc: Option<NodeId>,
}

/// The state of every node at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingSnapshot {
    /// Length of a full successor list.
    pub r: usize,
    /// Every node, live or dead, in any order. A live id should appear once;
    /// if it appears again, the later live copies are reported and ignored.
    pub members: Vec<MemberState>,
}

impl RingSnapshot {
    /// The ring a simulation holds now: every node that is up and a ring
    /// member, with its successor list and predecessor. Nodes that are down
    /// or not (yet) members are left out, so their ids count as dead
    /// entries wherever they appear.
    pub fn of_sim<O: crate::Observer>(sim: &crate::Sim<O>, r: usize) -> Self {
        let members = (0..sim.len() as crate::NodeIdx)
            .filter(|&i| sim.state(i) == crate::engine::NodeState::Up)
            .filter_map(|i| sim.node(i))
            .filter(|node| node.chord_role() == ringmesh::ChordRole::Member)
            .map(|node| MemberState {
                id: node.node_id(),
                live: true,
                succ_list: node.chord_successors(),
                prdc: node.chord_predecessor(),
            })
            .collect();
        RingSnapshot { r, members }
    }

    /// The ideal ring over `ids` (duplicates dropped): every node live, its
    /// successor list the next `r` nodes in identifier order, its
    /// predecessor the previous one. With `r >= ids.len()` the lists wrap
    /// around (the node itself and then repeats), as in Zave's `Ideal`.
    pub fn ideal(ids: impl IntoIterator<Item = NodeId>, r: usize) -> Self {
        let mut sorted: Vec<u128> = ids.into_iter().map(NodeId::as_u128).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let n = sorted.len();
        let members = (0..n)
            .map(|i| MemberState {
                id: NodeId::from_u128(sorted[i]),
                live: true,
                succ_list: (1..=r)
                    .map(|k| NodeId::from_u128(sorted[(i + k) % n]))
                    .collect(),
                prdc: Some(NodeId::from_u128(sorted[(i + n - 1) % n])),
            })
            .collect();
        RingSnapshot { r, members }
    }

    /// The ids of the live nodes, sorted and without duplicates: the ground
    /// truth [`true_successor`] looks keys up in.
    pub fn live_ids_sorted(&self) -> Vec<u128> {
        let mut ids: Vec<u128> = self
            .members
            .iter()
            .filter(|m| m.live)
            .map(|m| m.id.as_u128())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// What [`check`] found. Each flag is one property of Zave 2017; `true`
/// means it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvariantReport {
    /// *OneLiveSuccessor*: every member has a live entry in its successor
    /// list, i.e. a best successor (`(s.bestSucc).Node = s.members`).
    pub one_live_successor: bool,
    /// *SufficientPrincipals*: there are at least `r + 1` principals
    /// (`#principals >= Base.size`, with `Base.size = r + 1`).
    pub sufficient_principals: bool,
    /// *AtLeastOneRing*: some member is a ring member.
    pub at_least_one_ring: bool,
    /// *AtMostOneRing*: every ring member reaches every other one by best
    /// successors, i.e. there is at most one cycle.
    pub at_most_one_ring: bool,
    /// *OrderedRing*: for distinct ring members `m1, m2, mb`, if `m2` is the
    /// best successor of `m1` then `! between(m1, mb, m2)`. With one ring,
    /// following best successors goes around the identifier space once.
    pub ordered_ring: bool,
    /// *ConnectedAppendages*: every appendage reaches some ring member by
    /// following best successors.
    pub connected_appendages: bool,
    /// *OrderedSuccessorLists*: for every member `m` and list indices
    /// `j < k < l`, `between(m, s_j, s_k)` and `between(s_j, s_k, s_l)`:
    /// each list, dead entries included, goes clockwise from `m`, without
    /// repeats, less than once around.
    pub ordered_successor_lists: bool,
    /// Every member's successor list is exactly the next `r` members in
    /// identifier order and its predecessor is the previous member (the
    /// ideal state Zave's protocol converges to). See [`check`] for fewer
    /// than `r + 1` members. False when there are no members.
    pub ideal: bool,
    /// Live members (distinct ids).
    pub live_members: usize,
    /// Members that are principals.
    pub principals: usize,
    /// Cycles of best successors.
    pub rings: usize,
    /// Members on a cycle of best successors.
    pub ring_members: usize,
    /// Human-readable violations, each prefixed with its property, at most
    /// [`MAX_VIOLATIONS`].
    pub violations: Vec<String>,
    /// Violation lines left out once [`MAX_VIOLATIONS`] were kept.
    pub omitted_violations: usize,
}

impl InvariantReport {
    /// Zave's inductive invariant: *OneLiveSuccessor* and
    /// *SufficientPrincipals*. It implies every property of
    /// [`InvariantReport::all_implied`].
    pub fn safe(&self) -> bool {
        self.one_live_successor && self.sufficient_principals
    }

    /// *AtLeastOneRing*, *AtMostOneRing*, *OrderedRing*,
    /// *ConnectedAppendages* and *OrderedSuccessorLists* all hold.
    pub fn all_implied(&self) -> bool {
        self.at_least_one_ring
            && self.at_most_one_ring
            && self.ordered_ring
            && self.connected_appendages
            && self.ordered_successor_lists
    }

    /// The names of the properties that do not hold, in field order.
    pub fn failed_properties(&self) -> Vec<&'static str> {
        [
            ("one_live_successor", self.one_live_successor),
            ("sufficient_principals", self.sufficient_principals),
            ("at_least_one_ring", self.at_least_one_ring),
            ("at_most_one_ring", self.at_most_one_ring),
            ("ordered_ring", self.ordered_ring),
            ("connected_appendages", self.connected_appendages),
            ("ordered_successor_lists", self.ordered_successor_lists),
            ("ideal", self.ideal),
        ]
        .into_iter()
        .filter(|&(_, holds)| !holds)
        .map(|(name, _)| name)
        .collect()
    }
}

/// Zave's `between`: `x` lies strictly inside the clockwise interval from
/// `a` to `b`. When `a == b` the interval is the whole ring but `a`.
pub fn between(a: u128, x: u128, b: u128) -> bool {
    if a < b {
        a < x && x < b
    } else {
        a < x || x < b
    }
}

/// The live node responsible for `key`: the first live id at or after
/// `key`, wrapping past the top of the identifier space.
///
/// # Panics
///
/// If `live_ids_sorted` is empty: no node is responsible then.
pub fn true_successor(live_ids_sorted: &[u128], key: u128) -> u128 {
    let at = live_ids_sorted.partition_point(|&id| id < key);
    match live_ids_sorted.get(at).or(live_ids_sorted.first()) {
        Some(&id) => id,
        None => panic!("true_successor: no live ids"),
    }
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
    let mut without = snapshot.clone();
    let own = without
        .members
        .iter()
        .find(|m| m.live && m.id == victim)
        .map(|m| m.succ_list.clone());
    without.members.retain(|m| m.id != victim);
    let report = check(&without);
    if !report.safe() {
        let mut broken = Vec::new();
        if !report.one_live_successor {
            broken.push("one_live_successor");
        }
        if !report.sufficient_principals {
            broken.push("sufficient_principals");
        }
        return Err(broken.join(", "));
    }
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

/// Where a key sits on the ring: the first 16 bytes of BLAKE3(`key`), read
/// big-endian, the same derivation as [`NodeId`].
pub fn key_position(key: &[u8]) -> NodeId {
    let hash = blake3::hash(key);
    let mut first = [0u8; NodeId::LEN];
    first.copy_from_slice(&hash.as_bytes()[..NodeId::LEN]);
    NodeId::from_bytes(first)
}

/// Checks every property of [`InvariantReport`] against `snapshot`, in
/// `O(n log n + n·r)`.
///
/// *Ideal* with `n` members: for `n > r`, every list is exactly the next `r`
/// members and every `prdc` the previous member. A network of `n <= r`
/// members cannot hold `r` distinct successors; there a list is ideal if it
/// is either the `r` next members going round and round (what
/// [`RingSnapshot::ideal`] builds) or the other `n - 1` members once each,
/// and a lone member may have no predecessor. Such a network is never
/// *safe* (it has at most `n < r + 1` principals).
pub fn check(snapshot: &RingSnapshot) -> InvariantReport {
    let mut log = Log::default();
    let live = Live::new(snapshot, &mut log);
    let n = live.ids.len();
    let r = snapshot.r;

    let best: Vec<Option<usize>> = (0..n)
        .map(|i| live.list(i).iter().find_map(|e| live.rank_of(e.as_u128())))
        .collect();

    // OneLiveSuccessor.
    let mut prop = Property::new(&mut log, "one_live_successor");
    for i in (0..n).filter(|&i| best[i].is_none()) {
        prop.fail(|| {
            format!(
                "member {} has no live entry among its {} successors",
                id(live.ids[i]),
                live.list(i).len()
            )
        });
    }
    let one_live_successor = prop.finish();

    // SufficientPrincipals.
    let principal = live.principals();
    let principals = principal.iter().filter(|&&p| p).count();
    let needed = r.saturating_add(1);
    let sufficient_principals = principals >= needed;
    if !sufficient_principals {
        log.add(|| {
            format!(
                "sufficient_principals: {principals} principals among {n} members, \
                 at least r + 1 = {needed} needed"
            )
        });
        for (p, m, x, y) in live.skip_witnesses(&principal, EXAMPLES_PER_PROPERTY) {
            log.add(|| {
                format!(
                    "sufficient_principals: member {} is skipped by the extended successor \
                     list of {} (between adjacent entries {} and {})",
                    id(live.ids[p]),
                    id(live.ids[m]),
                    id(x),
                    id(y)
                )
            });
        }
    }

    let graph = Graph::new(&best);
    let ring: Vec<usize> = (0..n).filter(|&i| graph.on_ring[i]).collect();

    // AtLeastOneRing.
    let at_least_one_ring = !graph.cycles.is_empty();
    if !at_least_one_ring {
        log.add(|| {
            format!("at_least_one_ring: none of the {n} members is on a cycle of best successors")
        });
    }

    // AtMostOneRing.
    let at_most_one_ring = graph.cycles.len() <= 1;
    if !at_most_one_ring {
        log.add(|| {
            let shown: Vec<String> = graph
                .cycles
                .iter()
                .take(3)
                .map(|&(through, len)| format!("{len} members through {}", id(live.ids[through])))
                .collect();
            format!(
                "at_most_one_ring: {} separate rings of best successors ({}{})",
                graph.cycles.len(),
                shown.join("; "),
                if graph.cycles.len() > 3 { "; …" } else { "" }
            )
        });
    }

    // OrderedRing: the ring members in identifier order; each one's best
    // successor must be the next of them (unless it is itself).
    let mut prop = Property::new(&mut log, "ordered_ring");
    for (t, &m1) in ring.iter().enumerate() {
        let next = ring[(t + 1) % ring.len()];
        if let Some(m2) = best[m1]
            && m2 != m1
            && m2 != next
        {
            prop.fail(|| {
                format!(
                    "ring member {}'s best successor is {}, but ring member {} lies between them",
                    id(live.ids[m1]),
                    id(live.ids[m2]),
                    id(live.ids[next])
                )
            });
        }
    }
    let ordered_ring = prop.finish();

    // ConnectedAppendages.
    let mut prop = Property::new(&mut log, "connected_appendages");
    for (a, end) in graph.dead_end.iter().enumerate() {
        if let Some(end) = *end {
            prop.fail(|| {
                if end == a {
                    format!("appendage {} has no live successor", id(live.ids[a]))
                } else {
                    format!(
                        "appendage {} never reaches a ring: its best successors end at {}, \
                         which has no live successor",
                        id(live.ids[a]),
                        id(live.ids[end])
                    )
                }
            });
        }
    }
    let connected_appendages = prop.finish();

    // OrderedSuccessorLists. Measured clockwise from m, the entries must
    // strictly increase; m itself counts as a full turn, so it may only be
    // the last entry. That is the pair condition between(m, s_j, s_k) for
    // all j < k, and it implies the triple condition.
    let mut prop = Property::new(&mut log, "ordered_successor_lists");
    for i in 0..n {
        let m = live.ids[i];
        let turn = |e: &NodeId| {
            let e = e.as_u128();
            (e == m, e.wrapping_sub(m))
        };
        let list = live.list(i);
        if let Some(j) = list.windows(2).position(|w| turn(&w[0]) >= turn(&w[1])) {
            prop.fail(|| {
                format!(
                    "successor list of {} is out of order: entry {} ({}) does not come \
                     before entry {} ({}) going clockwise from it",
                    id(m),
                    j,
                    id(list[j].as_u128()),
                    j + 1,
                    id(list[j + 1].as_u128())
                )
            });
        }
    }
    let ordered_successor_lists = prop.finish();

    // Ideal.
    let mut prop = Property::new(&mut log, "ideal");
    if n == 0 {
        prop.fail(|| "no live members".to_owned());
    }
    if live.duplicates {
        prop.fail(|| "a live id appears more than once".to_owned());
    }
    for i in 0..n {
        let expected = |k: usize| live.ids[(i + k + 1) % n];
        let list = live.list(i);
        let length_ok = list.len() == r || (n <= r && list.len() == n - 1);
        let mismatch = list
            .iter()
            .enumerate()
            .find(|&(k, e)| e.as_u128() != expected(k));
        if let Some((k, e)) = mismatch {
            prop.fail(|| {
                format!(
                    "successor {} of {} is {}, the next live member there is {}",
                    k,
                    id(live.ids[i]),
                    id(e.as_u128()),
                    id(expected(k))
                )
            });
        } else if !length_ok {
            prop.fail(|| {
                format!(
                    "successor list of {} has {} entries, r = {}",
                    id(live.ids[i]),
                    list.len(),
                    r
                )
            });
        }
        let prdc = live.member(i).prdc.map(NodeId::as_u128);
        let true_prdc = live.ids[(i + n - 1) % n];
        if prdc != Some(true_prdc) && !(n == 1 && prdc.is_none()) {
            prop.fail(|| {
                format!(
                    "predecessor of {} is {}, the live predecessor is {}",
                    id(live.ids[i]),
                    prdc.map_or_else(|| "none".to_owned(), id),
                    id(true_prdc)
                )
            });
        }
    }
    let ideal = prop.finish();

    InvariantReport {
        one_live_successor,
        sufficient_principals,
        at_least_one_ring,
        at_most_one_ring,
        ordered_ring,
        connected_appendages,
        ordered_successor_lists,
        ideal,
        live_members: n,
        principals,
        rings: graph.cycles.len(),
        ring_members: ring.len(),
        violations: log.lines,
        omitted_violations: log.omitted,
    }
}

/// How ids appear in violation lines: all 32 hex digits, as [`NodeId`]
/// displays them.
fn id(value: u128) -> String {
    NodeId::from_u128(value).to_string()
}

/// The violation lines, capped at [`MAX_VIOLATIONS`].
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    omitted: usize,
}

impl Log {
    fn add(&mut self, line: impl FnOnce() -> String) {
        if self.lines.len() < MAX_VIOLATIONS {
            self.lines.push(line());
        } else {
            self.omitted += 1;
        }
    }
}

/// Counts the violations of one property and logs the first few.
struct Property<'a> {
    log: &'a mut Log,
    name: &'static str,
    count: usize,
}

impl<'a> Property<'a> {
    fn new(log: &'a mut Log, name: &'static str) -> Self {
        Property {
            log,
            name,
            count: 0,
        }
    }

    fn fail(&mut self, message: impl FnOnce() -> String) {
        self.count += 1;
        if self.count <= EXAMPLES_PER_PROPERTY {
            let name = self.name;
            self.log.add(|| format!("{name}: {}", message()));
        }
    }

    /// Whether the property holds.
    fn finish(self) -> bool {
        if self.count > EXAMPLES_PER_PROPERTY {
            let (name, count) = (self.name, self.count);
            self.log.add(|| {
                format!("{name}: {count} violations in all, {EXAMPLES_PER_PROPERTY} shown")
            });
        }
        self.count == 0
    }
}

/// The live members, indexed by rank: their position in identifier order.
struct Live<'a> {
    snapshot: &'a RingSnapshot,
    /// Sorted, distinct live ids.
    ids: Vec<u128>,
    /// Rank to index in `snapshot.members`.
    index: Vec<usize>,
    /// Live id to rank.
    rank: HashMap<u128, usize, FixedState>,
    /// Whether some live id appeared more than once.
    duplicates: bool,
}

impl<'a> Live<'a> {
    fn new(snapshot: &'a RingSnapshot, log: &mut Log) -> Self {
        let mut live: Vec<(u128, usize)> = snapshot
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.live)
            .map(|(i, m)| (m.id.as_u128(), i))
            .collect();
        // By id, then by position: the first live copy of an id is kept.
        live.sort_unstable();
        let before = live.len();
        live.dedup_by_key(|&mut (id, _)| id);
        let duplicates = live.len() != before;
        if duplicates {
            log.add(|| {
                format!(
                    "snapshot: {} live entries repeat an id already listed; ignored",
                    before - live.len()
                )
            });
        }
        let mut rank = HashMap::with_capacity_and_hasher(live.len(), FixedState::default());
        rank.extend(live.iter().enumerate().map(|(k, &(id, _))| (id, k)));
        Live {
            snapshot,
            ids: live.iter().map(|&(id, _)| id).collect(),
            index: live.iter().map(|&(_, i)| i).collect(),
            rank,
            duplicates,
        }
    }

    fn member(&self, rank: usize) -> &'a MemberState {
        &self.snapshot.members[self.index[rank]]
    }

    fn list(&self, rank: usize) -> &'a [NodeId] {
        &self.member(rank).succ_list
    }

    /// The rank of a live id; `None` for a dead or unknown one.
    fn rank_of(&self, id: u128) -> Option<usize> {
        self.rank.get(&id).copied()
    }

    /// How many live ids are `<= id`.
    fn count_le(&self, id: u128) -> usize {
        match self.rank_of(id) {
            Some(k) => k + 1,
            None => self.ids.partition_point(|&v| v <= id),
        }
    }

    /// How many live ids are `< id`.
    fn count_lt(&self, id: u128) -> usize {
        match self.rank_of(id) {
            Some(k) => k,
            None => self.ids.partition_point(|&v| v < id),
        }
    }

    /// Each adjacent pair `(x, y)` of member `rank`'s extended successor
    /// list.
    fn esl_pairs(&self, rank: usize) -> impl Iterator<Item = (u128, u128)> + 'a {
        let list = self.list(rank);
        let first = self.ids[rank];
        list.iter().scan(first, |prev, e| {
            let pair = (*prev, e.as_u128());
            *prev = pair.1;
            Some(pair)
        })
    }

    /// Which members are principals. Every adjacent ESL pair `(x, y)` skips
    /// the members strictly between `x` and `y`, one or two ranges of ranks;
    /// a difference array counts how many pairs skip each member.
    fn principals(&self) -> Vec<bool> {
        let n = self.ids.len();
        let mut diff = vec![0i64; n + 1];
        for m in 0..n {
            for (x, y) in self.esl_pairs(m) {
                // Ranks strictly after x, and ranks strictly before y.
                let after_x = self.count_le(x);
                let before_y = self.count_lt(y);
                if x < y {
                    if after_x < before_y {
                        diff[after_x] += 1;
                        diff[before_y] -= 1;
                    }
                } else {
                    // The interval wraps (x == y: all but x).
                    diff[after_x] += 1;
                    diff[n] -= 1;
                    diff[0] += 1;
                    diff[before_y] -= 1;
                }
            }
        }
        let mut skips = 0;
        diff[..n]
            .iter()
            .map(|d| {
                skips += d;
                skips == 0
            })
            .collect()
    }

    /// Up to `limit` members that are not principals, each with a witness:
    /// `(skipped, member, x, y)` where `(x, y)` are adjacent in `member`'s
    /// ESL and the skipped member lies between them.
    fn skip_witnesses(&self, principal: &[bool], limit: usize) -> Vec<(usize, usize, u128, u128)> {
        let mut targets: Vec<usize> = (0..self.ids.len())
            .filter(|&p| !principal[p])
            .take(limit)
            .collect();
        let mut found = Vec::new();
        for m in 0..self.ids.len() {
            if targets.is_empty() {
                break;
            }
            for (x, y) in self.esl_pairs(m) {
                targets.retain(|&p| {
                    let skipped = between(x, self.ids[p], y);
                    if skipped {
                        found.push((p, m, x, y));
                    }
                    !skipped
                });
            }
        }
        found
    }
}

/// The graph of best successors, one out-edge at most per member.
struct Graph {
    /// Whether each member is on a cycle (a ring member).
    on_ring: Vec<bool>,
    /// Each cycle: a member on it and its length.
    cycles: Vec<(usize, usize)>,
    /// For a member whose best successors never reach a cycle, the member
    /// where they stop (it has no best successor).
    dead_end: Vec<Option<usize>>,
}

impl Graph {
    fn new(best: &[Option<usize>]) -> Self {
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let n = best.len();
        let mut state = vec![NEW; n];
        let mut on_ring = vec![false; n];
        let mut dead_end = vec![None; n];
        let mut cycles = Vec::new();
        let mut path = Vec::new();
        for start in 0..n {
            if state[start] != NEW {
                continue;
            }
            path.clear();
            let mut v = start;
            let end = loop {
                match state[v] {
                    NEW => {
                        state[v] = ON_PATH;
                        path.push(v);
                        match best[v] {
                            Some(next) => v = next,
                            None => break Some(v),
                        }
                    }
                    ON_PATH => {
                        // The path from v's first visit on is a new cycle.
                        let mut len = 0;
                        for &p in path.iter().rev() {
                            on_ring[p] = true;
                            len += 1;
                            if p == v {
                                break;
                            }
                        }
                        cycles.push((v, len));
                        break None;
                    }
                    _ => break dead_end[v],
                }
            };
            for &p in &path {
                state[p] = DONE;
                dead_end[p] = end;
            }
        }
        Graph {
            on_ring,
            cycles,
            dead_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;

    /// A spread-out id: `k` tenths of the way round (wrapping matters).
    fn at(k: u128) -> u128 {
        k.wrapping_mul(u128::MAX / 100)
    }

    fn node(k: u128) -> NodeId {
        NodeId::from_u128(at(k))
    }

    fn member(k: u128, succs: &[u128], prdc: u128) -> MemberState {
        MemberState {
            id: node(k),
            live: true,
            succ_list: succs.iter().map(|&s| node(s)).collect(),
            prdc: Some(node(prdc)),
        }
    }

    /// Ideal ring over positions 0, 10, …, 90 with lists of length `r`.
    fn ring_of_ten(r: usize) -> RingSnapshot {
        RingSnapshot::ideal((0..10).map(|k| node(10 * k)), r)
    }

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

    #[test]
    fn true_successor_wraps() {
        let ids = [10, 20, 30];
        assert_eq!(true_successor(&ids, 0), 10);
        assert_eq!(true_successor(&ids, 10), 10);
        assert_eq!(true_successor(&ids, 11), 20);
        assert_eq!(true_successor(&ids, 30), 30);
        assert_eq!(true_successor(&ids, 31), 10);
        assert_eq!(true_successor(&ids, u128::MAX), 10);
        assert_eq!(true_successor(&[5], 6), 5);
    }

    #[test]
    fn key_position_matches_node_id_derivation() {
        let key = [9u8; 32];
        assert_eq!(key_position(&key), NodeId::from_public_key(&key));
        let hash = blake3::hash(b"hello");
        assert_eq!(
            &key_position(b"hello").to_bytes()[..],
            &hash.as_bytes()[..16]
        );
    }

    #[test]
    fn between_follows_zave() {
        assert!(between(10, 15, 20));
        assert!(!between(10, 10, 20) && !between(10, 20, 20));
        assert!(between(20, 25, 10) && between(20, 5, 10) && !between(20, 15, 10));
        assert!(between(7, 8, 7) && between(7, 6, 7) && !between(7, 7, 7));
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
                (j + 1..len).all(|k| {
                    between(id, l[j], l[k]) && (k + 1..len).all(|x| between(l[j], l[k], l[x]))
                })
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
}
