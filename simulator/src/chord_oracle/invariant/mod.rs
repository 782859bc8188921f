//! Zave's invariant and the properties it implies, checked over a
//! [`RingSnapshot`] in `O(n log n + n·r)`.

mod graph;
mod live;
#[cfg(test)]
mod tests;

use ringmesh::NodeId;
use serde::Serialize;

use super::snapshot::RingSnapshot;
use graph::Graph;
use live::Live;

/// At most this many human-readable lines are kept in
/// [`InvariantReport::violations`]; the rest are counted in
/// [`InvariantReport::omitted_violations`].
pub const MAX_VIOLATIONS: usize = 20;

/// Examples shown per violated property before a line with the total.
const EXAMPLES_PER_PROPERTY: usize = 2;

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
    let one_live_successor = one_live_successor(&live, &best, &mut log);
    let principal = live.principals();
    let principals = principal.iter().filter(|&&p| p).count();
    let sufficient_principals = sufficient_principals(&live, &principal, r, &mut log);
    let graph = Graph::new(&best);
    let ring: Vec<usize> = (0..n).filter(|&i| graph.on_ring[i]).collect();
    let at_least_one_ring = at_least_one_ring(&graph, n, &mut log);
    let at_most_one_ring = at_most_one_ring(&live, &graph, &mut log);
    let ordered_ring = ordered_ring(&live, &best, &ring, &mut log);
    let connected_appendages = connected_appendages(&live, &graph, &mut log);
    let ordered_successor_lists = ordered_successor_lists(&live, &mut log);
    let ideal = ideal(&live, r, &mut log);

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

/// *OneLiveSuccessor*, given each member's best successor (by rank).
fn one_live_successor(live: &Live<'_>, best: &[Option<usize>], log: &mut Log) -> bool {
    let mut prop = Property::new(log, "one_live_successor");
    for i in (0..best.len()).filter(|&i| best[i].is_none()) {
        prop.fail(|| {
            format!(
                "member {} has no live entry among its {} successors",
                id(live.ids[i]),
                live.list(i).len()
            )
        });
    }
    prop.finish()
}

/// *SufficientPrincipals*, given which members are principals.
fn sufficient_principals(live: &Live<'_>, principal: &[bool], r: usize, log: &mut Log) -> bool {
    let n = live.ids.len();
    let principals = principal.iter().filter(|&&p| p).count();
    let needed = r.saturating_add(1);
    if principals >= needed {
        return true;
    }
    log.add(|| {
        format!(
            "sufficient_principals: {principals} principals among {n} members, \
             at least r + 1 = {needed} needed"
        )
    });
    for (p, m, x, y) in live.skip_witnesses(principal, EXAMPLES_PER_PROPERTY) {
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
    false
}

/// *AtLeastOneRing*: some cycle of best successors.
fn at_least_one_ring(graph: &Graph, n: usize, log: &mut Log) -> bool {
    if graph.cycles.is_empty() {
        log.add(|| {
            format!("at_least_one_ring: none of the {n} members is on a cycle of best successors")
        });
        return false;
    }
    true
}

/// *AtMostOneRing*: at most one cycle of best successors.
fn at_most_one_ring(live: &Live<'_>, graph: &Graph, log: &mut Log) -> bool {
    if graph.cycles.len() <= 1 {
        return true;
    }
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
    false
}

/// *OrderedRing*: the ring members in identifier order; each one's best
/// successor must be the next of them (unless it is itself).
fn ordered_ring(live: &Live<'_>, best: &[Option<usize>], ring: &[usize], log: &mut Log) -> bool {
    let mut prop = Property::new(log, "ordered_ring");
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
    prop.finish()
}

/// *ConnectedAppendages*: every appendage's best successors reach a ring.
fn connected_appendages(live: &Live<'_>, graph: &Graph, log: &mut Log) -> bool {
    let mut prop = Property::new(log, "connected_appendages");
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
    prop.finish()
}

/// *OrderedSuccessorLists*. Measured clockwise from m, the entries must
/// strictly increase; m itself counts as a full turn, so it may only be the
/// last entry. That is the pair condition between(m, s_j, s_k) for all
/// j < k, and it implies the triple condition.
fn ordered_successor_lists(live: &Live<'_>, log: &mut Log) -> bool {
    let mut prop = Property::new(log, "ordered_successor_lists");
    for i in 0..live.ids.len() {
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
    prop.finish()
}

/// Whether the ring is ideal (see [`check`] for rings of `r` or fewer).
fn ideal(live: &Live<'_>, r: usize, log: &mut Log) -> bool {
    let n = live.ids.len();
    let mut prop = Property::new(log, "ideal");
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
    prop.finish()
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
