//! Property tests for protocols built on ringmesh: random fault schedules,
//! a safety predicate checked while the faults happen, a liveness predicate
//! after they stop, shrinking to a minimal schedule, and a replay.
//!
//! The practice is FoundationDB's and TigerBeetle's: one seed replays a run;
//! faults are injected at random virtual times; safety must hold at every
//! moment, liveness only once the faults stop and the network has had a
//! bounded time to settle.
//!
//! # The pieces
//!
//! - A [`Case`] is what proptest generates: the simulation seed, a `setup`
//!   of the scenario's choosing (network size, a [`Topology`], link
//!   latency…) and a list of timed steps, each an action of the scenario's
//!   choosing (usually a [`Fault`], or an enum holding one beside the
//!   application's own operations), in milliseconds after the faults start.
//! - Strategies generate cases that shrink well: [`case`] (the seed never
//!   shrinks, so a shrunk case is still the same run, minus steps),
//!   [`timed_steps`] and [`spaced_steps`] (fewer steps, earlier times),
//!   [`fault`] (crashes, kills, restarts, partitions, heals, churn; node
//!   selectors shrink towards node 0, partitions towards no partition) and
//!   [`connected_topology`] (fewer nodes, fewer extra edges).
//! - A [`Scenario`] is the user's protocol under test: it builds the
//!   [`Sim`] for a case, applies each step, reacts between steps (the
//!   application's logic: read what the observer gathered, give commands),
//!   and judges: [`Scenario::safety`] and [`Scenario::liveness`].
//! - The [`Runner`] runs a scenario over many cases with proptest. A case
//!   that fails is shrunk to a minimal one and returned as a
//!   [`Counterexample`] whose `Display` is the report: which predicate
//!   failed, at what virtual time, its message, what the run did, and the
//!   case as Rust code to paste into a test calling [`Runner::replay`].
//! - A [`ScriptWriter`] writes what a scenario did as a scenario file, so a
//!   case whose network, faults and checks the file format can express
//!   also replays as a command line (`ringmesh-sim run case.toml`);
//!   ringmesh's `props` test prints one with each failure.
//!
//! # One case, in order
//!
//! 1. [`Scenario::build`] makes the simulation for `(seed, setup)` (and may
//!    run it, to let an overlay form). The faults start when it returns.
//! 2. For each step: run to its time, checking safety on the way (see
//!    [`Check`]), apply it ([`Scenario::apply`]), check safety again.
//! 3. Run to the end of [`Runner::fault_window`], checking safety.
//! 4. [`Scenario::end_faults`] (by default: heal, restart every stopped
//!    node), check safety.
//! 5. Poll [`Scenario::liveness`] every [`Runner::poll`] (safety still
//!    checked) until it holds, is broken, or [`Runner::settle_limit`] of
//!    virtual time has passed.
//!
//! # How often safety is checked
//!
//! [`Check::EveryEvent`] (the default) calls [`Scenario::react`] and
//! [`Scenario::safety`] after every engine event (a delivery or a timer):
//! the failure's time is the event that broke the property, at the cost of
//! one predicate call per event (a few hundred thousand in a minute of a
//! 10-node network; cheap for counters, costly for a predicate that scans
//! every node). [`Check::Every`] calls them every so much virtual time
//! instead (and runs the engine in batches between): for whole-network
//! predicates such as Zave's ring invariant, checked every 2 ms by
//! ringmesh's own `chord_props` test. A violation that heals itself between
//! two checks is missed.
//!
//! # Example
//!
//! A (deliberately trivial) property: after the faults stop, every node is
//! up. It holds because [`Scenario::end_faults`] restarts them.
//!
//! ```
//! use proptest::prelude::*;
//! use ringmesh::{Config, Duration, Security};
//! use ringmesh_sim::check::{self, Case, Fault, FaultWeights, Progress, Runner, Scenario};
//! use ringmesh_sim::engine::NodeState;
//! use ringmesh_sim::{Sim, SimConfig};
//!
//! struct AllUp;
//!
//! impl Scenario for AllUp {
//!     type Setup = u32; // the number of nodes
//!     type Action = Fault;
//!     type Observer = ();
//!
//!     fn build(&mut self, seed: u64, nodes: &u32) -> Result<Sim, String> {
//!         let mut sim = Sim::new(SimConfig { seed, ..SimConfig::default() });
//!         let config = Config { security: Security::Plaintext, ..Config::lan() };
//!         for _ in 0..*nodes {
//!             sim.add_node(config.clone()).map_err(|e| e.to_string())?;
//!         }
//!         Ok(sim)
//!     }
//!
//!     fn apply(&mut self, sim: &mut Sim, fault: &Fault) -> String {
//!         fault.apply(sim, |_| Config::lan())
//!     }
//!
//!     fn safety(&mut self, _: &Sim) -> Result<(), String> {
//!         Ok(())
//!     }
//!
//!     fn liveness(&mut self, sim: &mut Sim) -> Progress {
//!         match sim.live_nodes().len() {
//!             n if n == sim.len() => Progress::Holds,
//!             n => Progress::NotYet(format!("{n} of {} nodes up", sim.len())),
//!         }
//!     }
//! }
//!
//! let runner = Runner {
//!     cases: 4,
//!     fault_window: Duration::from_secs(2),
//!     ..Runner::default()
//! };
//! let cases = check::case(
//!     2u32..=4,
//!     check::timed_steps(check::fault(4, &FaultWeights::default()), 2_000, 6),
//! );
//! runner.assert_holds(|| AllUp, cases);
//! ```

mod script;
mod strategy;

use core::fmt;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config as ProptestConfig, RngSeed, TestCaseError, TestError, TestRunner,
};
use ringmesh::{Duration, Instant};

use crate::engine::{NodeState, Observer, Sim};

pub use script::ScriptWriter;
pub use strategy::{
    Fault, FaultWeights, Topology, case, connected_topology, fault, spaced_steps, timed_steps,
};

/// One generated test case: everything a run depends on.
///
/// Its [`Case::to_rust`] prints it as the Rust expression that rebuilds it
/// (given `Debug` output of `P` and `A` that is Rust, as `derive(Debug)`
/// gives for plain structs and enums with their names in scope, and as
/// [`Fault`]'s is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case<P, A> {
    /// The simulation seed ([`crate::SimConfig::seed`]).
    pub seed: u64,
    /// What the scenario builds ([`Scenario::Setup`]).
    pub setup: P,
    /// `(ms after the faults start, action)`, in time order; equal times
    /// keep list order.
    pub steps: Vec<(u64, A)>,
}

impl<P: fmt::Debug, A: fmt::Debug> Case<P, A> {
    /// The case as a Rust expression.
    pub fn to_rust(&self) -> String {
        let mut out = format!(
            "Case {{\n    seed: {},\n    setup: {:?},\n    steps: vec![\n",
            self.seed, self.setup
        );
        for (at, action) in &self.steps {
            out.push_str(&format!("        ({at}, {action:?}),\n"));
        }
        out.push_str("    ],\n}");
        out
    }
}

/// How often the runner checks safety (and lets the scenario react).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// After every engine event (a delivery or a timer), every step and
    /// the end of the faults.
    EveryEvent,
    /// Every so much virtual time (the engine runs in batches between),
    /// and after every step and the end of the faults.
    Every(Duration),
}

/// What a liveness predicate says at one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// It holds: the case passes.
    Holds,
    /// Not yet; the message says what is missing, and becomes the failure's
    /// if [`Runner::settle_limit`] runs out.
    NotYet(String),
    /// It can no longer hold: the case fails now, with this message.
    Broken(String),
}

/// The protocol under test, one value per case (the runner makes a fresh
/// one for each run, so it may keep the case's state: what the application
/// holds, what was acknowledged, what the faults did).
pub trait Scenario {
    /// What is generated besides the seed and the steps (a node count, a
    /// [`Topology`], link parameters…). `Debug` should print Rust.
    type Setup: Clone + fmt::Debug;
    /// One step of a schedule (a [`Fault`], or an enum holding one beside
    /// the application's operations). `Debug` should print Rust.
    type Action: Clone + fmt::Debug;
    /// The simulation's observer (the events the application reads).
    type Observer: Observer;

    /// Builds the simulation for `seed` and `setup`; it may run it (to let
    /// an overlay form). The faults start at the virtual time it returns
    /// at. An `Err` fails the case (reported as [`Phase::Build`]).
    fn build(&mut self, seed: u64, setup: &Self::Setup) -> Result<Sim<Self::Observer>, String>;

    /// Applies one step now; returns what it did, for the failure report
    /// (for example `"crash node 2"`, or why it was skipped).
    fn apply(&mut self, sim: &mut Sim<Self::Observer>, action: &Self::Action) -> String;

    /// The application's logic between events: read what the observer
    /// gathered, give the nodes commands. Called just before each
    /// [`Scenario::safety`] check. Does nothing by default.
    fn react(&mut self, sim: &mut Sim<Self::Observer>) {
        let _ = sim;
    }

    /// The safety predicate: `Err(what is wrong)` fails the case now.
    fn safety(&mut self, sim: &Sim<Self::Observer>) -> Result<(), String>;

    /// The faults stop: by default every partition heals and every crashed
    /// or killed node restarts. Override to tell the application (or an
    /// observer tracking incarnations) about the restarts.
    fn end_faults(&mut self, sim: &mut Sim<Self::Observer>) -> String {
        sim.heal();
        let mut restarted = Vec::new();
        for i in 0..sim.len() as u32 {
            if sim.state(i) != NodeState::Up && sim.restart(i).is_ok() {
                restarted.push(i);
            }
        }
        format!("heal; restart {restarted:?}")
    }

    /// The liveness predicate, polled after [`Scenario::end_faults`]. It
    /// may give commands (a probe broadcast, a retried join).
    fn liveness(&mut self, sim: &mut Sim<Self::Observer>) -> Progress;

    /// Extra state for a failure report (each member's view…). Empty by
    /// default.
    fn describe(&self, sim: &Sim<Self::Observer>) -> String {
        let _ = sim;
        String::new()
    }
}

/// Where in a case a predicate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// [`Scenario::build`] returned an error.
    Build,
    /// [`Scenario::safety`] returned an error.
    Safety,
    /// [`Scenario::liveness`] was broken or did not hold in time.
    Liveness,
    /// The scenario panicked.
    Panic,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Build => "build",
            Phase::Safety => "safety",
            Phase::Liveness => "liveness",
            Phase::Panic => "panic",
        })
    }
}

/// A failed run: which predicate, when, why, and what the run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The predicate (or stage) that failed.
    pub phase: Phase,
    /// Virtual time of the failure (zero for a panic).
    pub at: Instant,
    /// Steps applied before it.
    pub steps_applied: usize,
    /// The predicate's message.
    pub message: String,
    /// What the run did: each step with its time and effect, the end of
    /// the faults, and [`Scenario::describe`] at the failure.
    pub log: Vec<String>,
}

impl Failure {
    /// Whether `other` is the same failure: same predicate, time and
    /// message (what a replay must reproduce).
    pub fn same_as(&self, other: &Failure) -> bool {
        self.phase == other.phase && self.at == other.at && self.message == other.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} failed at {} ms (after {} steps): {}",
            self.phase,
            ms(self.at),
            self.steps_applied,
            self.message
        )?;
        writeln!(f, "what the run did:")?;
        for line in &self.log {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// A failing case, shrunk: what the runner reports.
#[derive(Debug, Clone)]
pub struct Counterexample<P, A> {
    /// The minimal case proptest found.
    pub case: Case<P, A>,
    /// Its failure, from one more run of it.
    pub failure: Failure,
    /// Which generated case failed first (1 = the first).
    pub found_at_case: u32,
    /// Steps in that first failing case, before shrinking.
    pub original_steps: usize,
    /// Runs spent shrinking.
    pub shrink_runs: u32,
    /// proptest's RNG seed of the search, for `PROPTEST_RNG_SEED`.
    pub rng_seed: u64,
}

impl<P: fmt::Debug, A: fmt::Debug> fmt::Display for Counterexample<P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "property failed at generated case {} (proptest RNG seed {}); shrunk from {} to {} \
             steps in {} runs",
            self.found_at_case,
            self.rng_seed,
            self.original_steps,
            self.case.steps.len(),
            self.shrink_runs
        )?;
        write!(f, "{}", self.failure)?;
        writeln!(
            f,
            "replay (seed {}) in a test, with this check's runner and scenario:\n\
             let case = {};\n\
             let failure = runner.replay(scenario, &case).expect_err(\"reproduces\");",
            self.case.seed,
            self.case.to_rust()
        )
    }
}

/// Runs a [`Scenario`] over generated cases with proptest. See the module
/// docs for the order of a run.
#[derive(Debug, Clone)]
pub struct Runner {
    /// Cases to generate (64). `PROPTEST_CASES` overrides it.
    pub cases: u32,
    /// proptest's RNG seed, fixed so that `cargo test` runs the same cases
    /// every time (`0x72_6d_73_68`). `PROPTEST_RNG_SEED` overrides it.
    pub rng_seed: u64,
    /// How often safety is checked ([`Check::EveryEvent`]).
    pub check: Check,
    /// The faults last at least this long after [`Scenario::build`]
    /// returns (10 s); the steps' own times may go past it.
    pub fault_window: Duration,
    /// How long liveness has, after the faults, to hold (60 s of virtual
    /// time).
    pub settle_limit: Duration,
    /// How often liveness is polled (100 ms).
    pub poll: Duration,
    /// Runs spent shrinking at most (512).
    pub max_shrink_runs: u32,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            cases: 64,
            rng_seed: 0x72_6d_73_68,
            check: Check::EveryEvent,
            fault_window: Duration::from_secs(10),
            settle_limit: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            max_shrink_runs: 512,
        }
    }
}

/// What [`Runner::check`] returns: the cases run, or the shrunk failure.
pub type Checked<S> =
    Result<Passed, Box<Counterexample<<S as Scenario>::Setup, <S as Scenario>::Action>>>;

/// What a passing check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    /// Cases run.
    pub cases: u32,
}

fn ms(at: Instant) -> String {
    let us = at.as_micros();
    format!("{}.{:03}", us / 1000, us % 1000)
}

fn env_u64(var: &str) -> Option<u64> {
    std::env::var(var).ok().and_then(|v| v.trim().parse().ok())
}

impl Runner {
    /// The cases and RNG seed this runner uses, after the environment's
    /// `PROPTEST_CASES` and `PROPTEST_RNG_SEED`.
    fn effective(&self) -> (u32, u64) {
        let cases = env_u64("PROPTEST_CASES").map_or(self.cases, |c| c as u32);
        let seed = env_u64("PROPTEST_RNG_SEED").unwrap_or(self.rng_seed);
        (cases, seed)
    }

    /// Runs `make()`'s scenario (a fresh one per run) over the cases
    /// `strategy` generates: [`Runner::cases`] of them from
    /// [`Runner::rng_seed`], or `PROPTEST_CASES` from `PROPTEST_RNG_SEED`.
    /// On a failure (a predicate, or a panic in the scenario), shrinks it
    /// and returns the minimal case with its failure, run once more.
    /// Nothing is written to disk: keep a counterexample as a test calling
    /// [`Runner::replay`].
    pub fn check<S, F, G>(&self, make: F, strategy: G) -> Checked<S>
    where
        S: Scenario,
        F: Fn() -> S,
        G: Strategy<Value = Case<S::Setup, S::Action>>,
    {
        let (cases, rng_seed) = self.effective();
        let config = ProptestConfig {
            cases,
            rng_seed: RngSeed::Fixed(rng_seed),
            failure_persistence: None,
            max_shrink_iters: self.max_shrink_runs,
            ..ProptestConfig::default()
        };
        let mut runner = TestRunner::new(config);
        let runs = Cell::new(0u32);
        let first_failure: Cell<Option<(u32, usize)>> = Cell::new(None);
        let result = runner.run(&strategy, |case| {
            runs.set(runs.get() + 1);
            let outcome = self.run_case(&mut make(), &case);
            if let Err(failure) = outcome {
                if first_failure.get().is_none() {
                    first_failure.set(Some((runs.get(), case.steps.len())));
                }
                return Err(TestCaseError::fail(failure.to_string()));
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(Passed { cases }),
            Err(TestError::Abort(why)) => panic!("proptest aborted: {why}"),
            Err(TestError::Fail(_, case)) => {
                let failure = catch_unwind(AssertUnwindSafe(|| self.run_case(&mut make(), &case)))
                    .unwrap_or_else(|panic| Err(panic_failure(panic)))
                    .err()
                    .unwrap_or_else(|| Failure {
                        phase: Phase::Panic,
                        at: Instant::ZERO,
                        steps_applied: 0,
                        message: "the shrunk case passed when run again: the scenario is not \
                                  deterministic"
                            .into(),
                        log: Vec::new(),
                    });
                let (found_at_case, original_steps) = first_failure.get().unwrap_or((0, 0));
                Err(Box::new(Counterexample {
                    case,
                    failure,
                    found_at_case,
                    original_steps,
                    shrink_runs: runs.get().saturating_sub(found_at_case),
                    rng_seed,
                }))
            }
        }
    }

    /// [`Runner::check`], panicking with the counterexample's report on a
    /// failure: the body of a `#[test]`.
    pub fn assert_holds<S, F, G>(&self, make: F, strategy: G) -> Passed
    where
        S: Scenario,
        F: Fn() -> S,
        G: Strategy<Value = Case<S::Setup, S::Action>>,
    {
        match self.check(make, strategy) {
            Ok(passed) => passed,
            Err(counterexample) => panic!("{counterexample}"),
        }
    }

    /// Runs one case, as the check does: `Err` with the failure if a
    /// predicate fails. A panic in the scenario propagates.
    pub fn replay<S: Scenario>(
        &self,
        mut scenario: S,
        case: &Case<S::Setup, S::Action>,
    ) -> Result<(), Failure> {
        self.run_case(&mut scenario, case)
    }

    /// [`Runner::replay`] on a scenario the caller keeps, to read what it
    /// gathered (its [`ScriptWriter`], counters…) after the run.
    pub fn replay_in<S: Scenario>(
        &self,
        scenario: &mut S,
        case: &Case<S::Setup, S::Action>,
    ) -> Result<(), Failure> {
        self.run_case(scenario, case)
    }

    fn run_case<S: Scenario>(
        &self,
        scenario: &mut S,
        case: &Case<S::Setup, S::Action>,
    ) -> Result<(), Failure> {
        let sim = scenario
            .build(case.seed, &case.setup)
            .map_err(|message| Failure {
                phase: Phase::Build,
                at: Instant::ZERO,
                steps_applied: 0,
                message,
                log: Vec::new(),
            })?;
        let mut run = CaseRun {
            check: self.check,
            start: sim.now(),
            sim,
            scenario,
            log: Vec::new(),
            applied: 0,
        };
        let start = run.start;
        for (k, (at, action)) in case.steps.iter().enumerate() {
            run.advance(start + Duration::from_millis(*at))?;
            let what = run.scenario.apply(&mut run.sim, action);
            run.note(format!("step {k} (+{at} ms): {action:?}: {what}"));
            run.applied += 1;
            run.check()?;
        }
        run.advance(start + self.fault_window)?;
        let what = run.scenario.end_faults(&mut run.sim);
        run.note(format!("faults end: {what}"));
        run.check()?;
        let deadline = run.sim.now() + self.settle_limit;
        loop {
            match run.scenario.liveness(&mut run.sim) {
                Progress::Holds => return Ok(()),
                Progress::Broken(message) => return Err(run.fail(Phase::Liveness, message)),
                Progress::NotYet(message) => {
                    if run.sim.now() >= deadline {
                        let message = format!(
                            "not within {} ms after the faults: {message}",
                            self.settle_limit.as_millis()
                        );
                        return Err(run.fail(Phase::Liveness, message));
                    }
                    let next = (run.sim.now() + self.poll).min(deadline);
                    run.advance(next)?;
                }
            }
        }
    }
}

fn panic_failure(panic: Box<dyn std::any::Any + Send>) -> Failure {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned());
    Failure {
        phase: Phase::Panic,
        at: Instant::ZERO,
        steps_applied: 0,
        message,
        log: Vec::new(),
    }
}

/// One case being run.
struct CaseRun<'a, S: Scenario> {
    check: Check,
    start: Instant,
    sim: Sim<S::Observer>,
    scenario: &'a mut S,
    log: Vec<String>,
    applied: usize,
}

impl<S: Scenario> CaseRun<'_, S> {
    fn note(&mut self, what: String) {
        self.log
            .push(format!("{:>10} ms: {what}", ms(self.sim.now())));
    }

    fn fail(&mut self, phase: Phase, message: String) -> Failure {
        let mut log = std::mem::take(&mut self.log);
        let state = self.scenario.describe(&self.sim);
        if !state.is_empty() {
            log.push(format!("at the failure:\n{state}"));
        }
        Failure {
            phase,
            at: self.sim.now(),
            steps_applied: self.applied,
            message,
            log,
        }
    }

    fn check(&mut self) -> Result<(), Failure> {
        self.scenario.react(&mut self.sim);
        match self.scenario.safety(&self.sim) {
            Ok(()) => Ok(()),
            Err(message) => Err(self.fail(Phase::Safety, message)),
        }
    }

    /// Runs to `until`, checking safety at the runner's granularity.
    fn advance(&mut self, until: Instant) -> Result<(), Failure> {
        match self.check {
            Check::EveryEvent => {
                while self.sim.next_event_at().is_some_and(|at| at <= until) {
                    self.sim.step();
                    self.check()?;
                }
                self.sim.run_until(until);
            }
            Check::Every(every) => {
                while self.sim.now() < until {
                    let stop = (self.sim.now() + every).min(until);
                    self.sim.run_until(stop);
                    self.check()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
