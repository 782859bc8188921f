//! Property test: Zave's invariant holds on small simulated rings under
//! random joins, failures within her constraint, and random message
//! orderings (spec/chord.md §11).
//!
//! Each case builds a ring of r + 1 to 16 nodes, r = 2 or 3, either founded
//! (`ChordFound`, Zave's initialization) or grown from `ChordCreate` by
//! joins and left to settle until ideal (the forming ring of §5.2, which
//! no failure may touch). Then a random schedule runs: new nodes join
//! through random members (up to 30 nodes in all), members crash, are
//! killed or leave, with random waits between (with `CHORD_PROPS_RESTARTS`
//! set, stopped nodes also restart and join again with the same id). A
//! failure happens only within the constraint of spec/chord.md §11, and
//! is skipped otherwise:
//!
//! - Zave's `Fail` precondition on the current lists: the ring without the
//!   victim still satisfies the invariant (and so keeps r + 1 members);
//! - no `r` consecutive members fail within one repair window;
//! - her precondition again, counting the lists that replies still on their
//!   way may carry, as verdi-chord does (spec/chord.md [V], §12.1): the
//!   victim's own list, and lists members held until a moment ago.
//!
//! The first rule is the model's; exploring with it alone found runs it
//! lets through, each a member (or a joining node) adopting a list from a
//! reply sent just before the replying member failed: the list named only
//! members that had failed, or skipped a member that had just joined,
//! leaving r principals (see `chord_oracle::may_fail`). The rule is
//! `chord_oracle::FailureConstraint`, the one the scenario files apply.
//!
//! Links have a random latency and a jitter up to twice as large, so
//! messages on different connections arrive in random orders.
//!
//! - **Safety, throughout:** every `CHECK` of virtual time the ground
//!   truth ([`RingSnapshot::of_sim`]) satisfies the invariant
//!   (OneLiveSuccessor, SufficientPrincipals) and every property it implies
//!   (one ordered ring, connected appendages, ordered successor lists).
//! - **Liveness, after the schedule:** nodes left out of the ring (a join
//!   whose member failed under it) join again, and within `QUIET` every
//!   live node is a member of one ideal ring.
//!
//! A failure prints the schedule (shrunk by proptest), what the run did
//! with it, and every member's state at the violation.

use std::fmt;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use ringmesh::wire::PeerEntry;
use ringmesh::{
    ChordCommand, ChordConfig, ChordEvent, ChordRole, Command, Config, DhtConfig, Duration, Event,
    Instant, NodeId, Security,
};
use ringmesh_sim::chord_oracle::{
    FailureConstraint, InvariantReport, RingSnapshot, check, repair_window, reply_in_flight,
};
use ringmesh_sim::engine::NodeState;
use ringmesh_sim::scenario::script::Ledger;
use ringmesh_sim::{NetModel, NodeIdx, Sim, SimConfig, addr_of};

/// The invariant is checked this often.
const CHECK: Duration = Duration::from_millis(2);
/// At most this many nodes per case, joiners included.
const MAX_NODES: u32 = 30;
/// A grown ring must be ideal within this long after its last join.
const FORMING_LIMIT: Duration = Duration::from_secs(60);
/// After the schedule, the ring must be whole and ideal within this long.
const QUIET: Duration = Duration::from_secs(40);
/// A join waits this long for its session to the member it goes through.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// A stopped node restarts only once its peers have closed every
/// connection to its previous run: liveness closes established ones within
/// the detection time, the handshake timeout closes half-open ones; plus a
/// margin. Two known issues make a sooner restart fail:
///
/// - its peers keep the dead connection (spec/peers.md, one connection per
///   peer) and answer the new run's requests on it, so its chord requests
///   time out and it declares live members dead (and they it): see
///   `a_member_restarted_at_once_is_answered_on_its_old_connections` in
///   `tests/scenarios.rs`;
/// - the engine: when a peer closes its end of a connection to the previous
///   run, `Sim` also removes the new run's connection that reuses the same
///   `ConnId` (`Output::Close` does not check the peer's incarnation), and
///   the new run's messages on it vanish.
///
/// Even then a restart can go wrong: see the ignored test at the end.
fn rejoin_after() -> Duration {
    let lan = Config::lan();
    lan.detection_time().max(lan.session.handshake_timeout) + Duration::from_secs(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Every initial node founds the ring with the same list.
    Found,
    /// Node 0 creates it; the others join through node 0, this far apart.
    Grown { spacing_ms: u64 },
}

/// Members and down nodes are picked by `selector % count` when the
/// operation runs, so that shrinking keeps operations meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// A new node joins through a member.
    Join { via: u32 },
    /// A member stops silently.
    Crash(u32),
    /// A member stops and its connections reset.
    Kill(u32),
    /// A member shuts down gracefully.
    Leave(u32),
    /// A node stopped long enough ago (see [`rejoin_after`]) restarts
    /// and joins again, same id.
    Rejoin { node: u32, via: u32 },
}

#[derive(Debug, Clone)]
struct Schedule {
    seed: u64,
    r: usize,
    initial: u32,
    start: Start,
    latency_ms: u64,
    jitter_ms: u64,
    /// (ms after the previous operation, operation).
    ops: Vec<(u64, Op)>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}, r = {}, {} initial nodes, {:?}; links {} ms + jitter 0..={} ms",
            self.seed, self.r, self.initial, self.start, self.latency_ms, self.jitter_ms
        )?;
        for (gap, op) in &self.ops {
            writeln!(f, "  after {gap:>5} ms: {op:?}")?;
        }
        write!(f, "  then quiet for up to {} s", QUIET.as_millis() / 1000)
    }
}

/// Restarts are left out unless `CHORD_PROPS_RESTARTS` is set: a node
/// that comes back with the same id can still be declared dead by a peer
/// (see [`rejoin_after`] and the ignored test at the end), which breaks the
/// ring.
fn op() -> impl Strategy<Value = Op> {
    let restarts = if std::env::var_os("CHORD_PROPS_RESTARTS").is_some() {
        2
    } else {
        0
    };
    prop_oneof![
        4 => any::<u32>().prop_map(|via| Op::Join { via }),
        3 => any::<u32>().prop_map(Op::Crash),
        2 => any::<u32>().prop_map(Op::Kill),
        2 => any::<u32>().prop_map(Op::Leave),
        restarts => (any::<u32>(), any::<u32>()).prop_map(|(node, via)| Op::Rejoin { node, via }),
    ]
}

fn gap() -> impl Strategy<Value = u64> {
    // Mostly close together (concurrent joins and failures), sometimes a
    // few stabilization rounds apart, now and then long enough for a
    // stopped node to restart.
    prop_oneof![3 => 0u64..40, 3 => 0u64..700, 1 => 0u64..4_000, 1 => 8_000u64..15_000]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (2usize..=3)
        .prop_flat_map(|r| {
            (
                any::<u64>(),
                Just(r),
                (r as u32 + 1)..=16,
                prop_oneof![
                    Just(Start::Found),
                    (0u64..400).prop_map(|spacing_ms| Start::Grown { spacing_ms }),
                ],
                1u64..=20,
                0u64..=2,
                prop::collection::vec((gap(), op()), 0..=24),
            )
        })
        .prop_map(
            |(seed, r, initial, start, latency_ms, jitter_factor, ops)| Schedule {
                seed,
                r,
                initial,
                start,
                latency_ms,
                // None, as large as the latency, or twice as large.
                jitter_ms: latency_ms * jitter_factor,
                ops,
            },
        )
}

fn config(r: usize) -> Config {
    Config {
        security: Security::Plaintext,
        chord: Some(ChordConfig {
            successors: r,
            ..ChordConfig::lan()
        }),
        dht: Some(DhtConfig {
            replicas: r.min(3),
            ..DhtConfig::lan()
        }),
        ..Config::lan()
    }
}

/// A join waiting for its session, then for its event.
struct PendingJoin {
    node: NodeIdx,
    via: NodeIdx,
    until: Instant,
    asked: bool,
}

/// One case's run: the simulation, what happened, and the checks.
struct Run<'a> {
    schedule: &'a Schedule,
    sim: Sim<Ledger>,
    joins: Vec<PendingJoin>,
    /// Nodes that left gracefully: they stay shut down.
    left: Vec<NodeIdx>,
    /// When each stopped node stopped.
    stopped: Vec<(NodeIdx, Instant)>,
    /// The failure constraint: every failure (crash, kill, leave), and the
    /// lists members held until a moment ago (a reply sent with one may
    /// still be on its way).
    constraint: FailureConstraint,
    /// What the run did, for the failure report.
    log: Vec<String>,
    /// Whether the invariant is watched (the ring was ideal once).
    armed: bool,
    checks: u64,
    events_seen: usize,
}

fn ms(at: Instant) -> u64 {
    at.as_micros() / 1000
}

impl<'a> Run<'a> {
    fn new(schedule: &'a Schedule) -> Self {
        let net = NetModel {
            latency: Duration::from_millis(schedule.latency_ms),
            jitter: Duration::from_millis(schedule.jitter_ms),
            ..NetModel::default()
        };
        let constraint = FailureConstraint::new(schedule.r, reply_in_flight(&net, CHECK));
        let sim = Sim::with_observer(
            SimConfig {
                seed: schedule.seed,
                net,
                echo_requests: false,
            },
            Ledger::new(),
        );
        Run {
            schedule,
            sim,
            joins: Vec::new(),
            left: Vec::new(),
            stopped: Vec::new(),
            constraint,
            log: Vec::new(),
            armed: false,
            checks: 0,
            events_seen: 0,
        }
    }

    fn r(&self) -> usize {
        self.schedule.r
    }

    fn note(&mut self, what: String) {
        let line = format!("  {:>6} ms: {what}", ms(self.sim.now()));
        self.log.push(line);
    }

    fn snapshot(&self) -> RingSnapshot {
        RingSnapshot::of_sim(&self.sim, self.r())
    }

    /// Up ring members, by index.
    fn members(&self) -> Vec<NodeIdx> {
        self.sim
            .live_nodes()
            .into_iter()
            .filter(|&i| {
                self.sim
                    .node(i)
                    .is_some_and(|n| n.chord_role() == ChordRole::Member)
            })
            .collect()
    }

    fn name(&self, id: NodeId) -> String {
        match (0..self.sim.len() as NodeIdx).find(|&i| self.sim.id(i) == id) {
            Some(i) => i.to_string(),
            None => id.short().to_string(),
        }
    }

    /// Every member's state in ring order, by node index.
    fn states(&self) -> String {
        let mut members = self.members();
        members.sort_by_key(|&i| self.sim.id(i));
        let mut out = String::new();
        for i in members {
            let Some(node) = self.sim.node(i) else {
                continue;
            };
            let succs: Vec<String> = node
                .chord_successors()
                .into_iter()
                .map(|id| self.name(id))
                .collect();
            let pred = node
                .chord_predecessor()
                .map_or_else(|| "none".to_owned(), |p| self.name(p));
            out.push_str(&format!(
                "  node {i} ({}): successors [{}], predecessor {pred}\n",
                self.sim.id(i).short(),
                succs.join(", ")
            ));
        }
        out
    }

    fn failure(&self, what: String, report: Option<&InvariantReport>) -> TestCaseError {
        let violations = report.map_or_else(String::new, |r| {
            format!(
                "failed: {}\n  {}\n",
                r.failed_properties().join(", "),
                r.violations.join("\n  ")
            )
        });
        TestCaseError::fail(format!(
            "{what} at {} ms ({} checks passed)\n{violations}members:\n{}what the run did:\n{}\nschedule:\n{}",
            ms(self.sim.now()),
            self.checks,
            self.states(),
            self.log.join("\n"),
            self.schedule
        ))
    }

    /// Runs to `until`, checking the invariant every `CHECK` once armed
    /// and sending joins whose session came up.
    fn advance_to(&mut self, until: Instant) -> Result<(), TestCaseError> {
        while self.sim.now() < until {
            let stop = (self.sim.now() + CHECK).min(until);
            self.sim.run_until(stop);
            self.take_events();
            self.start_joins();
            let snapshot = self.snapshot();
            self.constraint.look(&snapshot, self.sim.now());
            if self.armed {
                let report = check(&snapshot);
                self.checks += 1;
                if !(report.safe() && report.all_implied()) {
                    return Err(self.failure("invariant broken".into(), Some(&report)));
                }
            }
        }
        Ok(())
    }

    fn take_events(&mut self) {
        let events: Vec<(Instant, NodeIdx, String, bool)> = self.sim.observer().events()
            [self.events_seen..]
            .iter()
            .filter_map(|e| match &e.event {
                Event::Chord(ChordEvent::Joined {
                    successor,
                    predecessor,
                    ..
                }) => Some((
                    e.at,
                    e.node,
                    format!(
                        "joined: successor {}, predecessor {}",
                        self.name(*successor),
                        self.name(*predecessor)
                    ),
                    true,
                )),
                Event::Chord(ChordEvent::JoinFailed { reason }) => {
                    Some((e.at, e.node, format!("join failed: {reason}"), true))
                }
                Event::Chord(ChordEvent::Orphaned) => {
                    Some((e.at, e.node, "orphaned".to_owned(), false))
                }
                _ => None,
            })
            .collect();
        self.events_seen = self.sim.observer().events().len();
        for (at, node, what, ends_join) in events {
            self.log
                .push(format!("  {:>6} ms: node {node} {what}", ms(at)));
            if ends_join {
                self.joins.retain(|j| j.node != node || !j.asked);
            }
        }
    }

    fn start_joins(&mut self) {
        let now = self.sim.now();
        let mut k = 0;
        while k < self.joins.len() {
            let (node, via, until, asked) = {
                let j = &self.joins[k];
                (j.node, j.via, j.until, j.asked)
            };
            let via_id = self.sim.id(via);
            let connected = self.sim.node(node).is_some_and(|n| n.is_connected(via_id));
            if !asked && connected {
                match self
                    .sim
                    .command(node, ChordCommand::Join { via: Some(via_id) })
                {
                    Ok(_) => {
                        self.joins[k].asked = true;
                        self.note(format!("node {node} asks to join through {via}"));
                    }
                    Err(e) => {
                        self.note(format!("node {node}'s join through {via} refused: {e}"));
                        self.joins.remove(k);
                        continue;
                    }
                }
            } else if !asked && now >= until {
                self.note(format!("node {node} got no session with {via}; no join"));
                self.joins.remove(k);
                continue;
            }
            k += 1;
        }
    }

    /// Node `node` joins through `via`: dial, then `ChordJoin` once the
    /// session is up.
    fn join(&mut self, node: NodeIdx, via: NodeIdx) {
        if let Err(e) = self.sim.connect(node, via) {
            self.note(format!("node {node} cannot dial {via}: {e}"));
            return;
        }
        self.joins.push(PendingJoin {
            node,
            via,
            until: self.sim.now() + CONNECT_WAIT,
            asked: false,
        });
        self.start_joins();
    }

    /// Whether member `victim` may fail now: the failure constraint of
    /// spec/chord.md §11 ([`FailureConstraint`]), with the repair window of
    /// the nodes' configuration.
    fn may_fail(&self, victim: NodeIdx) -> Result<(), String> {
        let window = repair_window(&config(self.r()));
        self.constraint
            .allows(
                &self.snapshot(),
                self.sim.id(victim),
                self.sim.now(),
                window,
            )
            .map_err(|breach| breach.to_string())
    }

    fn build(&mut self) -> Result<(), TestCaseError> {
        let r = self.r();
        for _ in 0..self.schedule.initial {
            self.sim.add_node(config(r)).expect("valid config");
        }
        let n = self.schedule.initial;
        match self.schedule.start {
            Start::Found => {
                let founders: Vec<PeerEntry> = (0..n)
                    .map(|i| PeerEntry {
                        id: self.sim.id(i),
                        addrs: [addr_of(i)].into_iter().collect(),
                    })
                    .collect();
                for i in 0..n {
                    let founders = founders.clone();
                    self.sim
                        .command(i, ChordCommand::Found { founders })
                        .expect("a fresh node founds");
                }
                self.note(format!("nodes 0..{n} found the ring"));
            }
            Start::Grown { spacing_ms } => {
                self.sim
                    .command(0, ChordCommand::Create)
                    .expect("a fresh node creates");
                self.note("node 0 creates the ring".into());
                for i in 1..n {
                    self.join(i, 0);
                    let next = self.sim.now() + Duration::from_millis(spacing_ms);
                    self.advance_to(next)?;
                }
                // The forming ring: no failure until it is ideal (§5.2).
                let limit = self.sim.now() + FORMING_LIMIT;
                loop {
                    let next = self.sim.now() + Duration::from_millis(100);
                    self.advance_to(next)?;
                    let report = check(&self.snapshot());
                    if report.ideal && report.live_members == n as usize {
                        break;
                    }
                    if self.sim.now() >= limit {
                        return Err(self.failure(
                            format!("the grown ring of {n} was not ideal within {FORMING_LIMIT:?}"),
                            Some(&report),
                        ));
                    }
                }
                self.note("the grown ring is ideal".into());
            }
        }
        let report = check(&self.snapshot());
        if !report.ideal {
            return Err(self.failure("the ring does not start ideal".into(), Some(&report)));
        }
        self.armed = true;
        Ok(())
    }

    fn apply(&mut self, op: Op) {
        let members = self.members();
        let pick = |list: &[NodeIdx], selector: u32| list[selector as usize % list.len()];
        match op {
            Op::Join { via } => {
                if self.sim.len() as u32 >= MAX_NODES || members.is_empty() {
                    return;
                }
                let node = self.sim.add_node(config(self.r())).expect("valid config");
                let via = pick(&members, via);
                self.note(format!("new node {node} dials {via} to join"));
                self.join(node, via);
            }
            Op::Crash(s) | Op::Kill(s) | Op::Leave(s) => {
                if members.is_empty() {
                    return;
                }
                let victim = pick(&members, s);
                let what = match op {
                    Op::Crash(_) => "crash",
                    Op::Kill(_) => "kill",
                    _ => "leave",
                };
                if let Err(why) = self.may_fail(victim) {
                    self.note(format!("{what} of {victim} skipped: {why}"));
                    return;
                }
                let now = self.sim.now();
                self.constraint.failed(self.sim.id(victim), now);
                self.note(format!("{what} {victim}"));
                match op {
                    Op::Crash(_) => self.sim.crash(victim),
                    Op::Kill(_) => self.sim.kill(victim),
                    _ => {
                        self.sim
                            .command(victim, Command::Shutdown)
                            .expect("shutdown is always accepted");
                        self.left.push(victim);
                    }
                }
                self.joins.retain(|j| j.node != victim);
                if !matches!(op, Op::Leave(_)) {
                    let now = self.sim.now();
                    self.stopped.push((victim, now));
                }
            }
            Op::Rejoin { node, via } => {
                let now = self.sim.now();
                let down: Vec<NodeIdx> = self
                    .stopped
                    .iter()
                    .filter(|&&(_, at)| at + rejoin_after() <= now)
                    .map(|&(i, _)| i)
                    .collect();
                if down.is_empty() || members.is_empty() {
                    return;
                }
                let node = pick(&down, node);
                self.stopped.retain(|&(i, _)| i != node);
                debug_assert!(self.sim.state(node) != NodeState::Up);
                let via = pick(&members, via);
                self.sim.observer_mut().restarting(node);
                self.sim.restart(node).expect("same config as before");
                self.note(format!("node {node} restarts and dials {via} to join"));
                self.join(node, via);
            }
        }
    }

    /// After the schedule: nodes out of the ring join again (as often as
    /// their joins fail); the ring must become whole and ideal, and stay so.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        let limit = self.sim.now() + QUIET;
        let mut attempts = 0usize;
        loop {
            let next = self.sim.now() + Duration::from_millis(100);
            self.advance_to(next)?;
            let outside: Vec<NodeIdx> = self
                .sim
                .live_nodes()
                .into_iter()
                .filter(|i| !self.left.contains(i))
                .filter(|&i| {
                    self.sim
                        .node(i)
                        .is_some_and(|n| n.chord_role() != ChordRole::Member)
                })
                .collect();
            // A join fails when the member it went through fails under it,
            // or (a restarted node) while its peers still hold a connection
            // to its previous run; the application tries again.
            let members = self.members();
            for &node in &outside {
                if self.joins.iter().any(|j| j.node == node) {
                    continue;
                }
                let via = members[attempts % members.len()];
                attempts += 1;
                self.note(format!(
                    "node {node} is out of the ring: joins again through {via}"
                ));
                self.join(node, via);
            }
            let report = check(&self.snapshot());
            if report.ideal && outside.is_empty() {
                break;
            }
            if self.sim.now() >= limit {
                let what = if outside.is_empty() {
                    format!(
                        "the ring was not ideal {} s after the schedule",
                        QUIET.as_millis() / 1000
                    )
                } else {
                    format!(
                        "nodes {outside:?} were not ring members {} s after the schedule",
                        QUIET.as_millis() / 1000
                    )
                };
                return Err(self.failure(what, Some(&report)));
            }
        }
        // Ideal, and it stays so.
        let next = self.sim.now() + Duration::from_secs(3);
        self.advance_to(next)?;
        let report = check(&self.snapshot());
        if !report.ideal {
            return Err(self.failure("the ideal ring did not stay ideal".into(), Some(&report)));
        }
        Ok(())
    }
}

fn run(schedule: &Schedule) -> Result<(), TestCaseError> {
    let mut run = Run::new(schedule);
    run.build()?;
    for &(gap, op) in &schedule.ops {
        let next = run.sim.now() + Duration::from_millis(gap);
        run.advance_to(next)?;
        run.apply(op);
    }
    run.settle()
}

/// 128 cases (about 7 s in the test profile), or `PROPTEST_CASES`; a fixed
/// set of schedules unless `PROPTEST_RNG_SEED` picks another, so that
/// `cargo test` is repeatable. Explore with
/// `PROPTEST_CASES=3000 PROPTEST_RNG_SEED=$RANDOM` (about 4 minutes), and
/// with `CHORD_PROPS_RESTARTS=1` to restart failed nodes too.
fn proptest_config() -> ProptestConfig {
    let defaults = ProptestConfig::default();
    let explicit = |var| std::env::var_os(var).is_some();
    ProptestConfig {
        cases: if explicit("PROPTEST_CASES") {
            defaults.cases
        } else {
            128
        },
        rng_seed: if explicit("PROPTEST_RNG_SEED") {
            defaults.rng_seed
        } else {
            RngSeed::Fixed(0x63_686f_7264)
        },
        ..defaults
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn zaves_invariant_holds_under_joins_failures_and_reordering(schedule in schedule()) {
        run(&schedule)?;
    }
}

/// Regression, found by the property above with restarts on (shrunk): node
/// 7 crashes at 22 s and restarts at 38 s, 16 s later, and joins again. In
/// the same millisecond, just before the restart, node 4 redialled 7's
/// address (7 was still down, so that dial times out 3 s later, at 41 s).
/// At 40 s, after its successor 9 is killed, 4's list is [7]. Its
/// stabilization request to 7 used to wait on that older dial, time out
/// (or see the dial fail) and declare the live 7 dead, flush it and be
/// orphaned: sufficient_principals broke at 41000 ms. A request now waits
/// only on a dial begun since it was made, and otherwise dials afresh
/// (spec/chord.md §4, §12.4). The engine's `Close` bug plays no part (see
/// [`rejoin_after`]).
#[test]
fn a_dial_begun_before_a_restart_declares_the_restarted_node_dead() {
    let schedule = Schedule {
        seed: 13_744_923_616_107_474_348,
        r: 2,
        initial: 10,
        start: Start::Grown { spacing_ms: 20 },
        latency_ms: 13,
        jitter_ms: 0,
        ops: vec![
            (8376, Op::Crash(1_964_898_206)),
            (14, Op::Crash(76_538_426)),
            (9169, Op::Crash(3_084_437_149)),
            (1151, Op::Join { via: 0 }),
            (11_865, Op::Join { via: 0 }),
            (
                546,
                Op::Rejoin {
                    node: 2_611_637_974,
                    via: 782_039_705,
                },
            ),
            (39, Op::Leave(1_744_392_596)),
            (326, Op::Join { via: 8_088_168 }),
            (31, Op::Leave(3_169_618_543)),
            (
                566,
                Op::Rejoin {
                    node: 154_286_352,
                    via: 255_643_147,
                },
            ),
            (236, Op::Kill(937_883_152)),
            (23, Op::Leave(1_284_354_485)),
            (681, Op::Join { via: 1_378_841_174 }),
            (
                497,
                Op::Rejoin {
                    node: 0,
                    via: 2_765_082_434,
                },
            ),
            (15, Op::Crash(10_395)),
            (1807, Op::Kill(896_938_536)),
        ],
    };
    if let Err(e) = run(&schedule) {
        panic!("{e}");
    }
}
