//! Ring runs (files with `[chord]`): the ring and table actions, their
//! outcomes as the events arrive, and the watch over Zave's invariant
//! (spec/chord.md §11).
//!
//! The watch checks the ground truth ([`RingSnapshot::of_sim`]) every
//! `check_every`. It is armed once the ring is ideal with at least r + 1
//! members: from then on the state satisfies Zave's initial condition
//! (spec/chord.md §5.2), and every failure the file applies is checked
//! against the failure constraint of §11 before it happens (see
//! [`Ring::before_failure`] and [`FailureConstraint`]). A failure outside it pauses the watch until
//! the ring is ideal again, and says so in the report; a violation while
//! armed fails the run.

use bytes::Bytes;
use ringmesh::wire::PeerEntry;
use ringmesh::{
    Accepted, ChordCommand, ChordEvent, ChordRole, Command, DhtCommand, DhtEvent, DhtKey, Duration,
    Event, Instant, NodeId, OpId,
};

use super::format::{Action, LookupKey, RingSettings, Step};
use super::ledger::Ledger;
use super::report::{RingReport, Verdict};
use crate::chord_oracle::{
    FailureConstraint, InvariantReport, RingSnapshot, check, key_position, repair_window,
    reply_in_flight, true_successor,
};
use crate::engine::{NetModel, NodeIdx, NodeState, Sim, addr_of};

/// Where a pending outcome came from, to name it in the report.
struct Origin {
    step: usize,
    at_ms: u64,
    label: Option<String>,
    kind: &'static str,
}

impl Origin {
    fn of(step: &Step, kind: &'static str) -> Self {
        Origin {
            step: step.index,
            at_ms: step.at_ms,
            label: step.label.clone(),
            kind,
        }
    }

    fn verdict(&self, passed: bool, detail: String) -> Verdict {
        Verdict {
            step: Some(self.step),
            at_ms: self.at_ms,
            kind: self.kind,
            label: self.label.clone(),
            passed,
            detail,
        }
    }
}

enum JoinState {
    /// Dialled `via`; `ChordJoin` goes out once the session is up.
    Connecting { until: Instant },
    /// `ChordJoin` went out; its event decides.
    Joining,
}

struct PendingJoin {
    origin: Origin,
    node: NodeIdx,
    via: NodeIdx,
    incarnation: u32,
    issued: Instant,
    state: JoinState,
}

enum OpKind {
    Lookup {
        key: NodeId,
        /// How the file named the key.
        what: String,
        expect_owner: Option<NodeIdx>,
    },
    Put {
        key: Bytes,
        value: Option<Bytes>,
    },
    Get {
        key: Bytes,
        expect: Option<Option<Bytes>>,
    },
}

struct PendingOp {
    origin: Origin,
    node: NodeIdx,
    incarnation: u32,
    id: OpId,
    issued: Instant,
    kind: OpKind,
}

/// The invariant watch.
#[derive(Default)]
struct Watch {
    armed: bool,
    /// When it was armed (again).
    armed_at: Vec<Instant>,
    /// Checks made while armed.
    checks: u64,
    /// Of those, checks that found a violation.
    failing: u64,
    /// The first violation, described.
    first: Option<String>,
    /// Failures outside the constraint, and members lost while forming.
    notes: Vec<String>,
    /// `ChordEvent::Orphaned` events: (time, node).
    orphaned: Vec<(Instant, NodeIdx)>,
}

/// The ring side of a run.
pub(super) struct Ring {
    settings: RingSettings,
    /// How long a join waits for its session to `via`.
    connect_wait: Duration,
    next_check: Instant,
    /// Ledger events already looked at.
    cursor: usize,
    joins: Vec<PendingJoin>,
    ops: Vec<PendingOp>,
    watch: Watch,
    /// The failure constraint every failure is judged by, counting the
    /// lists replies may still carry.
    constraint: FailureConstraint,
}

fn ms(at: Instant) -> u64 {
    at.as_micros() / 1000
}

/// Removes and returns the join node `node` (in run `incarnation`) is
/// waiting on, if any.
fn take_joining(
    joins: &mut Vec<PendingJoin>,
    node: NodeIdx,
    incarnation: u32,
) -> Option<PendingJoin> {
    let k = joins.iter().position(|j| {
        j.node == node && j.incarnation == incarnation && matches!(j.state, JoinState::Joining)
    })?;
    Some(joins.remove(k))
}

/// Node `id`'s index, or its short id if no node has it.
fn name(sim: &Sim<Ledger>, id: NodeId) -> String {
    match (0..sim.len() as NodeIdx).find(|&i| sim.id(i) == id) {
        Some(i) => i.to_string(),
        None => id.short().to_string(),
    }
}

fn names(sim: &Sim<Ledger>, ids: &[NodeId]) -> String {
    let names: Vec<String> = ids.iter().map(|&id| name(sim, id)).collect();
    format!("[{}]", names.join(", "))
}

fn text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Every member's state, by node index: what a violation report shows.
fn ring_states(sim: &Sim<Ledger>) -> String {
    let mut members: Vec<(NodeId, NodeIdx)> = (0..sim.len() as NodeIdx)
        .filter(|&i| {
            sim.state(i) == NodeState::Up
                && sim
                    .node(i)
                    .is_some_and(|n| n.chord_role() == ChordRole::Member)
        })
        .map(|i| (sim.id(i), i))
        .collect();
    members.sort_unstable();
    let lines: Vec<String> = members
        .iter()
        .filter_map(|&(id, i)| {
            let node = sim.node(i)?;
            Some(format!(
                "{i} ({}): successors {}, predecessor {}",
                id.short(),
                names(sim, &node.chord_successors()),
                node.chord_predecessor()
                    .map_or_else(|| "none".to_owned(), |p| name(sim, p))
            ))
        })
        .collect();
    format!("members in ring order: {}", lines.join("; "))
}

/// The checker's violation lines, with each node's full id replaced by its
/// index (as `node 3`).
fn report_text(sim: &Sim<Ledger>, report: &InvariantReport) -> String {
    let mut text = report.violations.join("; ");
    if report.omitted_violations > 0 {
        text.push_str(&format!("; and {} more", report.omitted_violations));
    }
    for i in 0..sim.len() as NodeIdx {
        text = text.replace(&sim.id(i).to_string(), &format!("node {i}"));
    }
    text
}

impl Ring {
    pub(super) fn new(settings: RingSettings, net: &NetModel) -> Self {
        Ring {
            settings,
            // A dial fails within the dial timeout; the handshake takes a
            // few link delays more.
            connect_wait: net.dial_timeout + (net.max_latency() + net.jitter).saturating_mul(4),
            next_check: Instant::ZERO,
            cursor: 0,
            joins: Vec::new(),
            ops: Vec::new(),
            watch: Watch::default(),
            constraint: FailureConstraint::new(
                settings.r,
                reply_in_flight(net, settings.check_every),
            ),
        }
    }

    /// Where the run should pause next on its way to `until`: at the next
    /// check, and every millisecond while an outcome is pending (a join
    /// waits for its session; a lookup is judged against the ring as it is
    /// when the answer comes).
    pub(super) fn next_stop(&self, now: Instant, until: Instant) -> Instant {
        let mut stop = until.min(self.next_check.max(now));
        if !self.joins.is_empty() || !self.ops.is_empty() {
            stop = stop.min(now + Duration::from_millis(1));
        }
        stop
    }

    /// After the simulation ran to a stop: outcomes, joins ready to go, and
    /// the watch if a check is due.
    pub(super) fn after_slice(&mut self, sim: &mut Sim<Ledger>, verdicts: &mut Vec<Verdict>) {
        self.take_events(sim, verdicts);
        self.start_joins(sim, verdicts);
        let now = sim.now();
        if now >= self.next_check {
            self.check_now(sim);
            while self.next_check <= now {
                self.next_check += self.settings.check_every;
            }
        }
    }

    fn take_events(&mut self, sim: &Sim<Ledger>, verdicts: &mut Vec<Verdict>) {
        let ledger = sim.observer();
        let events = &ledger.events()[self.cursor..];
        self.cursor = ledger.events().len();
        for e in events {
            match &e.event {
                Event::Chord(ChordEvent::Joined {
                    successor,
                    predecessor,
                    hops,
                }) => {
                    if let Some(j) = take_joining(&mut self.joins, e.node, e.incarnation) {
                        verdicts.push(j.origin.verdict(
                            true,
                            format!(
                                "node {} joined through node {} at {} ms ({} ms after the step): \
                                 successor {}, predecessor {}, {hops} hop(s)",
                                j.node,
                                j.via,
                                ms(e.at),
                                ms(e.at) - j.origin.at_ms,
                                name(sim, *successor),
                                name(sim, *predecessor)
                            ),
                        ));
                    }
                }
                Event::Chord(ChordEvent::JoinFailed { reason }) => {
                    if let Some(j) = take_joining(&mut self.joins, e.node, e.incarnation) {
                        verdicts.push(j.origin.verdict(
                            false,
                            format!(
                                "node {}'s join through node {} failed at {} ms: {reason}",
                                j.node,
                                j.via,
                                ms(e.at)
                            ),
                        ));
                    }
                }
                Event::Chord(ChordEvent::Orphaned) => self.watch.orphaned.push((e.at, e.node)),
                Event::Chord(ChordEvent::LookupDone { id, .. })
                | Event::Chord(ChordEvent::LookupFailed { id, .. })
                | Event::Dht(DhtEvent::PutDone { id, .. })
                | Event::Dht(DhtEvent::DeleteDone { id, .. })
                | Event::Dht(DhtEvent::GetDone { id, .. })
                | Event::Dht(DhtEvent::Failed { id, .. }) => {
                    if let Some(k) = self.ops.iter().position(|op| {
                        op.node == e.node && op.incarnation == e.incarnation && op.id == *id
                    }) {
                        let op = self.ops.remove(k);
                        let (passed, detail) = judge(sim, &op, &e.event, e.at);
                        verdicts.push(op.origin.verdict(passed, detail));
                    }
                }
                _ => {}
            }
        }
        // Outcomes that can no longer come: the asking node went down.
        let gone = |node: NodeIdx, incarnation: u32| {
            sim.state(node) != NodeState::Up || sim.observer().incarnation(node) != incarnation
        };
        self.ops.retain(|op| {
            if gone(op.node, op.incarnation) {
                verdicts.push(op.origin.verdict(
                    false,
                    format!(
                        "node {} went down before its {} answered",
                        op.node, op.origin.kind
                    ),
                ));
                return false;
            }
            true
        });
        self.joins.retain(|j| {
            if gone(j.node, j.incarnation) {
                verdicts.push(j.origin.verdict(
                    false,
                    format!("node {} went down before its join ended", j.node),
                ));
                return false;
            }
            true
        });
    }

    /// Joins whose session to `via` came up send `ChordJoin` now.
    fn start_joins(&mut self, sim: &mut Sim<Ledger>, verdicts: &mut Vec<Verdict>) {
        let now = sim.now();
        let mut k = 0;
        while k < self.joins.len() {
            let j = &self.joins[k];
            let JoinState::Connecting { until } = j.state else {
                k += 1;
                continue;
            };
            let via = sim.id(j.via);
            let ready = sim.node(j.node).is_some_and(|n| n.is_connected(via));
            if ready {
                let node = j.node;
                match sim.command(node, ChordCommand::Join { via: Some(via) }) {
                    Ok(_) => {
                        self.joins[k].state = JoinState::Joining;
                        k += 1;
                        continue;
                    }
                    Err(ringmesh::CommandError::Chord(ringmesh::ChordError::NotConnected(_))) => {}
                    Err(e) => {
                        let j = self.joins.remove(k);
                        verdicts.push(j.origin.verdict(
                            false,
                            format!(
                                "join of node {} through node {} refused: {e}",
                                j.node, j.via
                            ),
                        ));
                        continue;
                    }
                }
            }
            if now >= until {
                let j = self.joins.remove(k);
                verdicts.push(j.origin.verdict(
                    false,
                    format!(
                        "node {} had no session with node {} by {} ms, so it never asked to join",
                        j.node,
                        j.via,
                        ms(until)
                    ),
                ));
                continue;
            }
            k += 1;
        }
    }

    /// One look at the ring by the watch.
    fn check_now(&mut self, sim: &Sim<Ledger>) {
        let r = self.settings.r;
        let snapshot = RingSnapshot::of_sim(sim, r);
        self.constraint.look(&snapshot, sim.now());
        let report = check(&snapshot);
        let watch = &mut self.watch;
        if !watch.armed {
            if report.ideal && report.live_members > r {
                watch.armed = true;
                watch.armed_at.push(sim.now());
            }
            return;
        }
        watch.checks += 1;
        if report.safe() && report.all_implied() {
            return;
        }
        watch.failing += 1;
        if watch.first.is_none() {
            watch.first = Some(format!(
                "at {} ms {} failed: {}; {}",
                ms(sim.now()),
                report.failed_properties().join(", "),
                report_text(sim, &report),
                ring_states(sim)
            ));
        }
    }

    /// Node `i` is about to crash, be killed or leave: whether the failure
    /// constraint of spec/chord.md §11 allows it ([`FailureConstraint`]).
    /// If not, the watch pauses until the ring is ideal again.
    pub(super) fn before_failure(&mut self, sim: &Sim<Ledger>, i: NodeIdx, what: &str) {
        let id = sim.id(i);
        let now = sim.now();
        let snapshot = RingSnapshot::of_sim(sim, self.settings.r);
        if !snapshot.members.iter().any(|m| m.id == id) {
            return; // not a member: the ring does not notice
        }
        let at = ms(now);
        if !self.watch.armed {
            self.constraint.failed(id, now);
            self.watch.notes.push(format!(
                "{what} of member {i} at {at} ms before the ring was ideal with r + 1 members \
                 (outside the failure constraint, spec/chord.md §5.2)"
            ));
            return;
        }
        let window = sim
            .node(i)
            .map_or(Duration::ZERO, |node| repair_window(node.config()));
        let verdict = self.constraint.allows(&snapshot, id, now, window);
        self.constraint.failed(id, now);
        if let Err(why) = verdict {
            self.watch.armed = false;
            self.watch.notes.push(format!(
                "{what} of member {i} at {at} ms is outside the failure constraint ({why}); \
                 not watched until the ring is ideal again"
            ));
        }
    }

    /// A ring action of `step`.
    pub(super) fn apply(
        &mut self,
        sim: &mut Sim<Ledger>,
        step: &Step,
        verdicts: &mut Vec<Verdict>,
    ) {
        let refused = |verdicts: &mut Vec<Verdict>, detail: String| {
            verdicts.push(Origin::of(step, "action").verdict(false, detail));
        };
        match &step.action {
            Action::ChordCreate(i) => {
                if let Err(e) = sim.command(*i, ChordCommand::Create) {
                    refused(verdicts, format!("chord_create at node {i} refused: {e}"));
                }
            }
            Action::ChordFound(nodes) => {
                let founders: Vec<PeerEntry> = nodes
                    .iter()
                    .map(|&i| PeerEntry {
                        id: sim.id(i),
                        addrs: [addr_of(i)].into_iter().collect(),
                    })
                    .collect();
                for &i in nodes {
                    let founders = founders.clone();
                    if let Err(e) = sim.command(i, ChordCommand::Found { founders }) {
                        refused(verdicts, format!("chord_found at node {i} refused: {e}"));
                    }
                }
            }
            Action::Join { node, via } => {
                let (node, via) = (*node, *via);
                if sim.state(node) != NodeState::Up {
                    return refused(verdicts, format!("join: node {node} is down"));
                }
                let connected = sim.node(node).is_some_and(|n| n.is_connected(sim.id(via)));
                if !connected && let Err(e) = sim.connect(node, via) {
                    return refused(
                        verdicts,
                        format!("join: node {node} cannot dial {via}: {e}"),
                    );
                }
                let until = sim.now() + self.connect_wait;
                self.joins.push(PendingJoin {
                    origin: Origin::of(step, "join"),
                    node,
                    via,
                    incarnation: sim.observer().incarnation(node),
                    issued: sim.now(),
                    state: JoinState::Connecting { until },
                });
                self.start_joins(sim, verdicts);
            }
            Action::Leave(i) => {
                self.before_failure(sim, *i, "leave");
                if let Err(e) = sim.command(*i, Command::Shutdown) {
                    refused(verdicts, format!("leave of node {i} refused: {e}"));
                }
            }
            Action::Lookup {
                from,
                key,
                expect_owner,
            } => {
                let (key, what) = match key {
                    LookupKey::Node(i) => (sim.id(*i), format!("node {i}'s id")),
                    LookupKey::Id(id) => (*id, format!("key {}", id.short())),
                    LookupKey::Dht(k) => (key_position(k), format!("the position of {}", text(k))),
                };
                let kind = OpKind::Lookup {
                    key,
                    what,
                    expect_owner: *expect_owner,
                };
                self.issue(
                    sim,
                    step,
                    *from,
                    ChordCommand::Lookup { key },
                    kind,
                    verdicts,
                );
            }
            Action::Put { from, key, value } => {
                let command = match value {
                    Some(value) => DhtCommand::Put {
                        key: DhtKey::Open(key.clone()),
                        value: value.clone(),
                    },
                    None => DhtCommand::Delete {
                        key: DhtKey::Open(key.clone()),
                    },
                };
                let kind = OpKind::Put {
                    key: key.clone(),
                    value: value.clone(),
                };
                self.issue(sim, step, *from, command, kind, verdicts);
            }
            Action::Get { from, key, expect } => {
                let kind = OpKind::Get {
                    key: key.clone(),
                    expect: expect.clone(),
                };
                self.issue(
                    sim,
                    step,
                    *from,
                    DhtCommand::Get {
                        key: DhtKey::Open(key.clone()),
                    },
                    kind,
                    verdicts,
                );
            }
            Action::CheckRing { ideal, members } => {
                let result = self.check_ring(sim, *ideal, *members);
                let (passed, detail) = match result {
                    Ok(d) => (true, d),
                    Err(d) => (false, d),
                };
                verdicts.push(Origin::of(step, "check_ring").verdict(passed, detail));
            }
            _ => {}
        }
    }

    fn issue(
        &mut self,
        sim: &mut Sim<Ledger>,
        step: &Step,
        from: NodeIdx,
        command: impl Into<Command>,
        kind: OpKind,
        verdicts: &mut Vec<Verdict>,
    ) {
        let name = step.action.name();
        match sim.command(from, command) {
            Ok(Accepted::Op(id)) => self.ops.push(PendingOp {
                origin: Origin::of(step, name),
                node: from,
                incarnation: sim.observer().incarnation(from),
                id,
                issued: sim.now(),
                kind,
            }),
            Ok(other) => verdicts.push(Origin::of(step, "action").verdict(
                false,
                format!("{name} from node {from}: unexpected {other:?}"),
            )),
            Err(e) => verdicts.push(
                Origin::of(step, "action")
                    .verdict(false, format!("{name} from node {from} refused: {e}")),
            ),
        }
    }

    /// `check_ring`: the invariant and the properties it implies hold now;
    /// with `ideal`, the ring is ideal; with `members`, it has that many.
    /// A ring of r members or fewer cannot hold the invariant (it has too
    /// few principals); there only the implied properties are asked.
    fn check_ring(
        &self,
        sim: &Sim<Ledger>,
        ideal: bool,
        members: Option<usize>,
    ) -> Result<String, String> {
        let r = self.settings.r;
        let report = check(&RingSnapshot::of_sim(sim, r));
        let n = report.live_members;
        let small = n <= r;
        let mut failed: Vec<&str> = Vec::new();
        if !small && !report.safe() {
            failed.push("Zave's invariant");
        }
        if !report.all_implied() {
            failed.push("the properties it implies");
        }
        if ideal && !report.ideal {
            failed.push("ideal");
        }
        let head = format!(
            "ring of {n} members, {} principals, {} ring(s)",
            report.principals, report.rings
        );
        if let Some(want) = members
            && want != n
        {
            return Err(format!(
                "{head}: {want} members expected; {}",
                ring_states(sim)
            ));
        }
        if n == 0 {
            return Err("the ring has no members".into());
        }
        if failed.is_empty() {
            let what = match (small, ideal) {
                (false, true) => "invariant, implied properties and ideal hold",
                (false, false) => "invariant and implied properties hold",
                (true, true) => "implied properties and ideal hold (n ≤ r: no invariant yet)",
                (true, false) => "implied properties hold (n ≤ r: no invariant yet)",
            };
            Ok(format!("{head}: {what}"))
        } else {
            Err(format!(
                "{head}: {} broken ({}); {}",
                failed.join(", "),
                report.failed_properties().join(", "),
                if report.violations.is_empty() {
                    ring_states(sim)
                } else {
                    format!("{}; {}", report_text(sim, &report), ring_states(sim))
                }
            ))
        }
    }

    /// End of the run: what never got an answer, and the watch's verdict.
    pub(super) fn finish(&mut self, sim: &Sim<Ledger>, verdicts: &mut Vec<Verdict>) {
        self.take_events(sim, verdicts);
        let end = ms(sim.now());
        for j in self.joins.drain(..) {
            verdicts.push(j.origin.verdict(
                false,
                format!(
                    "node {}'s join (asked at {} ms) had not ended when the run did, at {end} ms",
                    j.node,
                    ms(j.issued)
                ),
            ));
        }
        for op in self.ops.drain(..) {
            verdicts.push(op.origin.verdict(
                false,
                format!(
                    "node {}'s {} (asked at {} ms) had no answer when the run ended, at {end} ms",
                    op.node,
                    op.origin.kind,
                    ms(op.issued)
                ),
            ));
        }
        let w = &self.watch;
        let r = self.settings.r;
        let every = self.settings.check_every.as_millis();
        let mut notes = String::new();
        for note in &w.notes {
            notes.push_str("; ");
            notes.push_str(note);
        }
        if !w.orphaned.is_empty() {
            let (at, node) = w.orphaned[0];
            notes.push_str(&format!(
                "; {} ChordOrphaned event(s), the first at node {node} at {} ms",
                w.orphaned.len(),
                ms(at)
            ));
        }
        let (passed, detail) = match (&w.first, w.armed_at.first()) {
            (Some(first), _) => (
                false,
                format!(
                    "Zave's invariant or a property it implies broke in {} of {} checks (every \
                     {every} ms); first {first}{notes}",
                    w.failing, w.checks
                ),
            ),
            (None, None) => (
                false,
                format!(
                    "the ring was never ideal with at least r + 1 = {} members, so the invariant \
                     was never watched{notes}",
                    r + 1
                ),
            ),
            (None, Some(&armed)) => (
                true,
                format!(
                    "the invariant and the properties it implies held at {} checks, every \
                     {every} ms from {} ms (ideal with ≥ r + 1 = {} members){notes}",
                    w.checks,
                    ms(armed),
                    r + 1
                ),
            ),
        };
        verdicts.push(Verdict {
            step: None,
            at_ms: end,
            kind: "ring_invariant",
            label: None,
            passed,
            detail,
        });
    }

    /// The ring part of the report.
    pub(super) fn report(&self, sim: &Sim<Ledger>) -> RingReport {
        RingReport {
            r: self.settings.r,
            check_every_ms: self.settings.check_every.as_millis(),
            checks: self.watch.checks,
            failing_checks: self.watch.failing,
            first_violation: self.watch.first.clone(),
            armed_at_ms: self.watch.armed_at.iter().map(|&at| ms(at)).collect(),
            notes: self.watch.notes.clone(),
            orphaned: self.watch.orphaned.len(),
            at_end: check(&RingSnapshot::of_sim(sim, self.settings.r)),
        }
    }
}

/// Whether an operation's outcome is what the step asked for.
fn judge(sim: &Sim<Ledger>, op: &PendingOp, event: &Event, at: Instant) -> (bool, String) {
    let took = (at - op.issued).as_millis();
    let from = op.node;
    match (&op.kind, event) {
        (
            OpKind::Lookup {
                key,
                what,
                expect_owner,
            },
            Event::Chord(ChordEvent::LookupDone { owner, hops, .. }),
        ) => {
            let found = format!(
                "node {from} found owner {} of {what} in {hops} hop(s), {took} ms",
                name(sim, *owner)
            );
            match expect_owner {
                Some(want) if sim.id(*want) == *owner => (true, format!("{found}, as expected")),
                Some(want) => (false, format!("{found}; node {want} was expected")),
                None => {
                    let live = RingSnapshot::of_sim(sim, 1).live_ids_sorted();
                    if live.is_empty() {
                        return (false, format!("{found}, but the ring has no members"));
                    }
                    let truth = NodeId::from_u128(true_successor(&live, key.as_u128()));
                    if truth == *owner {
                        (true, format!("{found}: the true owner"))
                    } else {
                        (
                            false,
                            format!(
                                "{found}, but the first member at or after it is {}",
                                name(sim, truth)
                            ),
                        )
                    }
                }
            }
        }
        (OpKind::Lookup { what, .. }, Event::Chord(ChordEvent::LookupFailed { reason, .. })) => (
            false,
            format!("node {from}'s lookup of {what} failed after {took} ms: {reason}"),
        ),
        (
            OpKind::Put { key, value },
            Event::Dht(DhtEvent::PutDone { version, .. } | DhtEvent::DeleteDone { version, .. }),
        ) => {
            let what = if value.is_some() { "stored" } else { "deleted" };
            (
                true,
                format!(
                    "node {from} {what} {} (version {version}) in {took} ms",
                    text(key)
                ),
            )
        }
        (OpKind::Get { key, expect }, Event::Dht(DhtEvent::GetDone { value, version, .. })) => {
            let got = match value {
                Some(v) => format!("{} (version {version})", text(v)),
                None if *version == 0 => "nothing".to_owned(),
                None => format!("a tombstone (version {version})"),
            };
            let read = format!("node {from} read {} = {got} in {took} ms", text(key));
            match expect {
                None => (true, read),
                Some(want) if want == value => (true, format!("{read}, as expected")),
                Some(Some(want)) => (false, format!("{read}; {} was expected", text(want))),
                Some(None) => (false, format!("{read}; no value was expected")),
            }
        }
        (kind, Event::Dht(DhtEvent::Failed { reason, .. })) => {
            let what = match kind {
                OpKind::Put { value: None, .. } => "delete",
                OpKind::Put { .. } => "put",
                _ => "get",
            };
            (
                false,
                format!("node {from}'s {what} failed after {took} ms: {reason}"),
            )
        }
        (_, other) => (
            false,
            format!("node {from}'s operation ended with an unexpected {other:?}"),
        ),
    }
}
