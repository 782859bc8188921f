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
//! The test runs on the public runner (`ringmesh_sim::check`): the
//! schedule is [`check::spaced_steps`] of the operations below, the
//! invariant is its safety predicate (checked every `CHECK`, the
//! runner's [`Check::Every`]), the settling its liveness predicate. A
//! failure prints the schedule (shrunk by proptest), what the run did with
//! it, every member's state at the violation, and the case as Rust code for
//! [`Runner::replay`]. Cases proptest once saved in
//! `chord_props.proptest-regressions` are explicit tests at the end.

use proptest::prelude::*;
use ringmesh::wire::PeerEntry;
use ringmesh::{
    ChordCommand, ChordConfig, ChordEvent, ChordRole, Command, Config, DhtConfig, Duration, Event,
    Instant, NodeId, Security,
};
use ringmesh_sim::check::{self, Case, Check, Progress, Runner, Scenario};
use ringmesh_sim::chord_oracle::{
    FailureConstraint, InvariantReport, RingSnapshot, check as invariant, repair_window,
    reply_in_flight,
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

/// What a case builds: the ring's size and start, and its links.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ring {
    r: usize,
    initial: u32,
    start: Start,
    latency_ms: u64,
    jitter_ms: u64,
}

/// Restarts are left out unless `CHORD_PROPS_RESTARTS` is set: a node
/// that comes back with the same id can still be declared dead by a peer
/// (see [`rejoin_after`]), which breaks the ring.
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

fn ring() -> impl Strategy<Value = Ring> {
    (2usize..=3)
        .prop_flat_map(|r| {
            (
                Just(r),
                (r as u32 + 1)..=16,
                prop_oneof![
                    Just(Start::Found),
                    (0u64..400).prop_map(|spacing_ms| Start::Grown { spacing_ms }),
                ],
                1u64..=20,
                0u64..=2,
            )
        })
        .prop_map(|(r, initial, start, latency_ms, jitter_factor)| Ring {
            r,
            initial,
            start,
            latency_ms,
            // None, as large as the latency, or twice as large.
            jitter_ms: latency_ms * jitter_factor,
        })
}

fn cases() -> impl Strategy<Value = Case<Ring, Op>> {
    check::case(ring(), check::spaced_steps(gap(), op(), 24))
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

/// The settling after the schedule.
struct Settling {
    limit: Instant,
    attempts: usize,
    /// When the ring became whole and ideal.
    ideal_at: Option<Instant>,
}

/// One case's run: what happened, and the checks.
struct Run {
    ring: Ring,
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
    /// The ground truth at the last check, for the safety predicate.
    snapshot: Option<RingSnapshot>,
    settling: Option<Settling>,
}

fn ms(at: Instant) -> u64 {
    at.as_micros() / 1000
}

impl Run {
    fn r(&self) -> usize {
        self.ring.r
    }

    fn note(&mut self, sim: &Sim<Ledger>, what: String) {
        let line = format!("  {:>6} ms: {what}", ms(sim.now()));
        self.log.push(line);
    }

    fn snapshot(&self, sim: &Sim<Ledger>) -> RingSnapshot {
        RingSnapshot::of_sim(sim, self.r())
    }

    /// Up ring members, by index.
    fn members(sim: &Sim<Ledger>) -> Vec<NodeIdx> {
        sim.live_nodes()
            .into_iter()
            .filter(|&i| {
                sim.node(i)
                    .is_some_and(|n| n.chord_role() == ChordRole::Member)
            })
            .collect()
    }

    fn name(sim: &Sim<Ledger>, id: NodeId) -> String {
        match (0..sim.len() as NodeIdx).find(|&i| sim.id(i) == id) {
            Some(i) => i.to_string(),
            None => id.short().to_string(),
        }
    }

    /// Every member's state in ring order, by node index.
    fn states(sim: &Sim<Ledger>) -> String {
        let mut members = Self::members(sim);
        members.sort_by_key(|&i| sim.id(i));
        let mut out = String::new();
        for i in members {
            let Some(node) = sim.node(i) else {
                continue;
            };
            let succs: Vec<String> = node
                .chord_successors()
                .into_iter()
                .map(|id| Self::name(sim, id))
                .collect();
            let pred = node
                .chord_predecessor()
                .map_or_else(|| "none".to_owned(), |p| Self::name(sim, p));
            out.push_str(&format!(
                "  node {i} ({}): successors [{}], predecessor {pred}\n",
                sim.id(i).short(),
                succs.join(", ")
            ));
        }
        out
    }

    /// A failure's message: what, and the report's failed properties.
    fn failure(&self, what: String, report: Option<&InvariantReport>) -> String {
        let violations = report.map_or_else(String::new, |r| {
            format!(
                "\nfailed: {}\n  {}",
                r.failed_properties().join(", "),
                r.violations.join("\n  ")
            )
        });
        format!("{what} ({} checks passed){violations}", self.checks)
    }

    /// Takes the events since the last check, sends joins whose session
    /// came up, and shows the ground truth to the failure constraint.
    fn react(&mut self, sim: &mut Sim<Ledger>) {
        self.take_events(sim);
        self.start_joins(sim);
        let snapshot = self.snapshot(sim);
        self.constraint.look(&snapshot, sim.now());
        self.snapshot = Some(snapshot);
    }

    /// Runs to `until` (while the ring is built: the invariant is not
    /// armed yet), reacting every `CHECK`.
    fn advance_to(&mut self, sim: &mut Sim<Ledger>, until: Instant) {
        while sim.now() < until {
            let stop = (sim.now() + CHECK).min(until);
            sim.run_until(stop);
            self.react(sim);
        }
    }

    fn take_events(&mut self, sim: &Sim<Ledger>) {
        let events: Vec<(Instant, NodeIdx, String, bool)> = sim.observer().events()
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
                        Self::name(sim, *successor),
                        Self::name(sim, *predecessor)
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
        self.events_seen = sim.observer().events().len();
        for (at, node, what, ends_join) in events {
            self.log
                .push(format!("  {:>6} ms: node {node} {what}", ms(at)));
            if ends_join {
                self.joins.retain(|j| j.node != node || !j.asked);
            }
        }
    }

    fn start_joins(&mut self, sim: &mut Sim<Ledger>) {
        let now = sim.now();
        let mut k = 0;
        while k < self.joins.len() {
            let (node, via, until, asked) = {
                let j = &self.joins[k];
                (j.node, j.via, j.until, j.asked)
            };
            let via_id = sim.id(via);
            let connected = sim.node(node).is_some_and(|n| n.is_connected(via_id));
            if !asked && connected {
                match sim.command(node, ChordCommand::Join { via: Some(via_id) }) {
                    Ok(_) => {
                        self.joins[k].asked = true;
                        self.note(sim, format!("node {node} asks to join through {via}"));
                    }
                    Err(e) => {
                        self.note(
                            sim,
                            format!("node {node}'s join through {via} refused: {e}"),
                        );
                        self.joins.remove(k);
                        continue;
                    }
                }
            } else if !asked && now >= until {
                self.note(
                    sim,
                    format!("node {node} got no session with {via}; no join"),
                );
                self.joins.remove(k);
                continue;
            }
            k += 1;
        }
    }

    /// Node `node` joins through `via`: dial, then `ChordJoin` once the
    /// session is up.
    fn join(&mut self, sim: &mut Sim<Ledger>, node: NodeIdx, via: NodeIdx) {
        if let Err(e) = sim.connect(node, via) {
            self.note(sim, format!("node {node} cannot dial {via}: {e}"));
            return;
        }
        self.joins.push(PendingJoin {
            node,
            via,
            until: sim.now() + CONNECT_WAIT,
            asked: false,
        });
        self.start_joins(sim);
    }

    /// Whether member `victim` may fail now: the failure constraint of
    /// spec/chord.md §11 ([`FailureConstraint`]), with the repair window of
    /// the nodes' configuration.
    fn may_fail(&self, sim: &Sim<Ledger>, victim: NodeIdx) -> Result<(), String> {
        let window = repair_window(&config(self.r()));
        self.constraint
            .allows(&self.snapshot(sim), sim.id(victim), sim.now(), window)
            .map_err(|breach| breach.to_string())
    }

    fn build(ring: &Ring, seed: u64) -> Result<(Run, Sim<Ledger>), String> {
        let net = NetModel {
            latency: Duration::from_millis(ring.latency_ms),
            jitter: Duration::from_millis(ring.jitter_ms),
            ..NetModel::default()
        };
        let constraint = FailureConstraint::new(ring.r, reply_in_flight(&net, CHECK));
        let mut sim = Sim::with_observer(
            SimConfig {
                seed,
                net,
                echo_requests: false,
            },
            Ledger::new(),
        );
        let mut run = Run {
            ring: ring.clone(),
            joins: Vec::new(),
            left: Vec::new(),
            stopped: Vec::new(),
            constraint,
            log: Vec::new(),
            armed: false,
            checks: 0,
            events_seen: 0,
            snapshot: None,
            settling: None,
        };
        let r = run.r();
        for _ in 0..ring.initial {
            sim.add_node(config(r)).expect("valid config");
        }
        let n = ring.initial;
        match ring.start {
            Start::Found => {
                let founders: Vec<PeerEntry> = (0..n)
                    .map(|i| PeerEntry {
                        id: sim.id(i),
                        addrs: [addr_of(i)].into_iter().collect(),
                    })
                    .collect();
                for i in 0..n {
                    let founders = founders.clone();
                    sim.command(i, ChordCommand::Found { founders })
                        .expect("a fresh node founds");
                }
                run.note(&sim, format!("nodes 0..{n} found the ring"));
            }
            Start::Grown { spacing_ms } => {
                sim.command(0, ChordCommand::Create)
                    .expect("a fresh node creates");
                run.note(&sim, "node 0 creates the ring".into());
                for i in 1..n {
                    run.join(&mut sim, i, 0);
                    let next = sim.now() + Duration::from_millis(spacing_ms);
                    run.advance_to(&mut sim, next);
                }
                // The forming ring: no failure until it is ideal (§5.2).
                let limit = sim.now() + FORMING_LIMIT;
                loop {
                    let next = sim.now() + Duration::from_millis(100);
                    run.advance_to(&mut sim, next);
                    let report = invariant(&run.snapshot(&sim));
                    if report.ideal && report.live_members == n as usize {
                        break;
                    }
                    if sim.now() >= limit {
                        return Err(run.failure(
                            format!("the grown ring of {n} was not ideal within {FORMING_LIMIT:?}"),
                            Some(&report),
                        ));
                    }
                }
                run.note(&sim, "the grown ring is ideal".into());
            }
        }
        let report = invariant(&run.snapshot(&sim));
        if !report.ideal {
            return Err(run.failure("the ring does not start ideal".into(), Some(&report)));
        }
        run.armed = true;
        Ok((run, sim))
    }

    fn apply(&mut self, sim: &mut Sim<Ledger>, op: Op) -> String {
        let members = Self::members(sim);
        let pick = |list: &[NodeIdx], selector: u32| list[selector as usize % list.len()];
        match op {
            Op::Join { via } => {
                if sim.len() as u32 >= MAX_NODES || members.is_empty() {
                    return "no join: the case is full or the ring empty".into();
                }
                let node = sim.add_node(config(self.r())).expect("valid config");
                let via = pick(&members, via);
                self.note(sim, format!("new node {node} dials {via} to join"));
                self.join(sim, node, via);
                format!("new node {node} joins through {via}")
            }
            Op::Crash(s) | Op::Kill(s) | Op::Leave(s) => {
                if members.is_empty() {
                    return "no member to fail".into();
                }
                let victim = pick(&members, s);
                let what = match op {
                    Op::Crash(_) => "crash",
                    Op::Kill(_) => "kill",
                    _ => "leave",
                };
                if let Err(why) = self.may_fail(sim, victim) {
                    self.note(sim, format!("{what} of {victim} skipped: {why}"));
                    return format!("{what} of {victim} skipped: {why}");
                }
                let now = sim.now();
                self.constraint.failed(sim.id(victim), now);
                self.note(sim, format!("{what} {victim}"));
                match op {
                    Op::Crash(_) => sim.crash(victim),
                    Op::Kill(_) => sim.kill(victim),
                    _ => {
                        sim.command(victim, Command::Shutdown)
                            .expect("shutdown is always accepted");
                        self.left.push(victim);
                    }
                }
                self.joins.retain(|j| j.node != victim);
                if !matches!(op, Op::Leave(_)) {
                    self.stopped.push((victim, now));
                }
                format!("{what} {victim}")
            }
            Op::Rejoin { node, via } => {
                let now = sim.now();
                let down: Vec<NodeIdx> = self
                    .stopped
                    .iter()
                    .filter(|&&(_, at)| at + rejoin_after() <= now)
                    .map(|&(i, _)| i)
                    .collect();
                if down.is_empty() || members.is_empty() {
                    return "no node to restart".into();
                }
                let node = pick(&down, node);
                self.stopped.retain(|&(i, _)| i != node);
                debug_assert!(sim.state(node) != NodeState::Up);
                let via = pick(&members, via);
                sim.observer_mut().restarting(node);
                sim.restart(node).expect("same config as before");
                self.note(sim, format!("node {node} restarts and dials {via} to join"));
                self.join(sim, node, via);
                format!("node {node} restarts and joins through {via}")
            }
        }
    }

    /// Every `CHECK`, once armed: the invariant and every property it
    /// implies.
    fn safety(&mut self) -> Result<(), String> {
        let Some(snapshot) = self.snapshot.take() else {
            return Ok(());
        };
        if self.armed {
            let report = invariant(&snapshot);
            self.checks += 1;
            if !(report.safe() && report.all_implied()) {
                return Err(self.failure("invariant broken".into(), Some(&report)));
            }
        }
        Ok(())
    }

    /// After the schedule, polled every 100 ms: nodes out of the ring join
    /// again (as often as their joins fail); the ring must become whole and
    /// ideal within `QUIET`, and stay so for 3 s.
    fn liveness(&mut self, sim: &mut Sim<Ledger>) -> Progress {
        let Some(settling) = &self.settling else {
            // The first poll is at the end of the schedule: the first look
            // comes 100 ms later.
            self.settling = Some(Settling {
                limit: sim.now() + QUIET,
                attempts: 0,
                ideal_at: None,
            });
            return Progress::NotYet("the schedule just ended".into());
        };
        if let Some(at) = settling.ideal_at {
            if sim.now() < at + Duration::from_secs(3) {
                return Progress::NotYet("ideal: does it stay so?".into());
            }
            let report = invariant(&self.snapshot(sim));
            return if report.ideal {
                Progress::Holds
            } else {
                Progress::Broken(
                    self.failure("the ideal ring did not stay ideal".into(), Some(&report)),
                )
            };
        }
        let limit = settling.limit;
        let outside: Vec<NodeIdx> = sim
            .live_nodes()
            .into_iter()
            .filter(|i| !self.left.contains(i))
            .filter(|&i| {
                sim.node(i)
                    .is_some_and(|n| n.chord_role() != ChordRole::Member)
            })
            .collect();
        // A join fails when the member it went through fails under it, or
        // (a restarted node) while its peers still hold a connection to its
        // previous run; the application tries again.
        let members = Self::members(sim);
        for &node in &outside {
            if self.joins.iter().any(|j| j.node == node) {
                continue;
            }
            let settling = self.settling.as_mut().expect("set above");
            let via = members[settling.attempts % members.len()];
            settling.attempts += 1;
            self.note(
                sim,
                format!("node {node} is out of the ring: joins again through {via}"),
            );
            self.join(sim, node, via);
        }
        let report = invariant(&self.snapshot(sim));
        if report.ideal && outside.is_empty() {
            if let Some(settling) = self.settling.as_mut() {
                settling.ideal_at = Some(sim.now());
            }
            return Progress::NotYet("ideal: does it stay so?".into());
        }
        if sim.now() >= limit {
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
            return Progress::Broken(self.failure(what, Some(&report)));
        }
        Progress::NotYet("settling".into())
    }
}

/// The scenario: a [`Run`] once built.
#[derive(Default)]
struct Chord(Option<Run>);

impl Chord {
    fn run(&mut self) -> &mut Run {
        self.0.as_mut().expect("the runner builds first")
    }
}

impl Scenario for Chord {
    type Setup = Ring;
    type Action = Op;
    type Observer = Ledger;

    fn build(&mut self, seed: u64, ring: &Ring) -> Result<Sim<Ledger>, String> {
        let (run, sim) = Run::build(ring, seed)?;
        self.0 = Some(run);
        Ok(sim)
    }

    fn apply(&mut self, sim: &mut Sim<Ledger>, op: &Op) -> String {
        self.run().apply(sim, *op)
    }

    fn react(&mut self, sim: &mut Sim<Ledger>) {
        self.run().react(sim);
    }

    fn safety(&mut self, _: &Sim<Ledger>) -> Result<(), String> {
        self.run().safety()
    }

    /// Nothing comes back: failed members stay down, leavers gone.
    fn end_faults(&mut self, _: &mut Sim<Ledger>) -> String {
        "the schedule ends".into()
    }

    fn liveness(&mut self, sim: &mut Sim<Ledger>) -> Progress {
        self.run().liveness(sim)
    }

    fn describe(&self, sim: &Sim<Ledger>) -> String {
        let log = self
            .0
            .as_ref()
            .map_or_else(String::new, |run| run.log.join("\n"));
        format!("members:\n{}what the ring did:\n{log}", Run::states(sim))
    }
}

/// 128 cases (about 7 s in the test profile), or `PROPTEST_CASES`; a fixed
/// set of schedules unless `PROPTEST_RNG_SEED` picks another, so that
/// `cargo test` is repeatable. Explore with
/// `PROPTEST_CASES=3000 PROPTEST_RNG_SEED=$RANDOM` (about 4 minutes), and
/// with `CHORD_PROPS_RESTARTS=1` to restart failed nodes too.
fn runner() -> Runner {
    Runner {
        cases: 128,
        rng_seed: 0x63_686f_7264,
        check: Check::Every(CHECK),
        // The schedule's steps are the faults; the settling starts after
        // the last.
        fault_window: Duration::ZERO,
        // Liveness decides within QUIET and 3 s of staying ideal.
        settle_limit: QUIET + Duration::from_secs(4),
        poll: Duration::from_millis(100),
        ..Runner::default()
    }
}

#[test]
fn zaves_invariant_holds_under_joins_failures_and_reordering() {
    runner().assert_holds(Chord::default, cases());
}

/// Steps given as gaps (ms after the previous step), as the schedules of
/// this test were written before the runner.
fn after_gaps(gaps: Vec<(u64, Op)>) -> Vec<(u64, Op)> {
    let mut at = 0;
    gaps.into_iter()
        .map(|(gap, op)| {
            at += gap;
            (at, op)
        })
        .collect()
}

fn replay(seed: u64, setup: Ring, gaps: Vec<(u64, Op)>) {
    let case = Case {
        seed,
        setup,
        steps: after_gaps(gaps),
    };
    if let Err(failure) = runner().replay(Chord::default(), &case) {
        panic!("{failure}\ncase:\n{}", case.to_rust());
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
    replay(
        13_744_923_616_107_474_348,
        Ring {
            r: 2,
            initial: 10,
            start: Start::Grown { spacing_ms: 20 },
            latency_ms: 13,
            jitter_ms: 0,
        },
        vec![
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
    );
}

/// Regression, once saved by proptest in
/// `chord_props.proptest-regressions` (cc 1dbb2734…): a founded ring of 5,
/// r = 3, with joins and crashes close together on jittery links.
#[test]
fn saved_case_founded_ring_with_close_joins_and_crashes() {
    replay(
        7_363_612_548_964_913_186,
        Ring {
            r: 3,
            initial: 5,
            start: Start::Found,
            latency_ms: 12,
            jitter_ms: 24,
        },
        vec![
            (17, Op::Join { via: 3_047_672_681 }),
            (35, Op::Join { via: 1_043_408_602 }),
            (21, Op::Crash(1_410_081_794)),
            (200, Op::Leave(13_473_400)),
            (27, Op::Leave(225_892_069)),
            (2159, Op::Join { via: 406_911_174 }),
            (257, Op::Join { via: 1_865_220_355 }),
            (302, Op::Crash(1_171_749_081)),
            (437, Op::Crash(3_198_612_946)),
            (9342, Op::Crash(137_656_675)),
            (533, Op::Crash(0)),
            (329, Op::Join { via: 3_697_570_894 }),
            (665, Op::Kill(2_313_572_173)),
        ],
    );
}

/// Regression, once saved by proptest in
/// `chord_props.proptest-regressions` (cc 27bbc89a…): a grown ring of 4,
/// r = 2, whose members keep crashing between joins.
#[test]
fn saved_case_grown_ring_with_repeated_crashes() {
    replay(
        6_896_356_886_018_639_597,
        Ring {
            r: 2,
            initial: 4,
            start: Start::Grown { spacing_ms: 231 },
            latency_ms: 5,
            jitter_ms: 10,
        },
        vec![
            (600, Op::Crash(41_129_460)),
            (133, Op::Join { via: 1_827_927_065 }),
            (17, Op::Crash(0)),
            (24, Op::Crash(0)),
            (13_014, Op::Leave(319_111_503)),
            (297, Op::Crash(0)),
            (142, Op::Join { via: 2_375_479_992 }),
            (283, Op::Crash(0)),
            (5, Op::Join { via: 262_901_728 }),
            (29, Op::Leave(476_699_116)),
        ],
    );
}
