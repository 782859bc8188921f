//! The liveness scenario: wire a random overlay, let it settle, stop some
//! nodes (silent crashes, kills that reset connections), and measure how
//! fast their neighbours declare them down — against the bound the
//! configuration promises ([`Config::detection_time`]) — and whether any
//! live peer was wrongly declared down.
//!
//! Optionally the network is split in two for longer than the detection
//! time and healed before the crashes. Peers across the split *should* be
//! declared down then; those verdicts are counted apart
//! ([`LivenessReport::partition_downs`]), never as false positives.

mod report;
mod watch;

use std::time::Instant as WallClock;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::{Config, Duration, Instant, MeshConfig, PeersConfig, Security};
use serde::Serialize;

use super::flood::peak_rss_mib;
use crate::engine::{NetModel, NodeIdx, Observer, Sim, SimConfig};

pub use report::LivenessReport;
use watch::{Failure, FailureKind, LivenessWatch};

type Error = Box<dyn std::error::Error>;

/// Which timing profile the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// [`Config::lan`]: ping every 1 s, miss after 500 ms, dead after 3.
    Lan,
    /// [`Config::wan`]: ping every 5 s, miss after 3 s, dead after 4.
    Wan,
}

impl Preset {
    /// The preset's configuration, in plaintext (the crypto is benched
    /// apart and does not change liveness timing).
    pub fn config(self) -> Config {
        let config = match self {
            Preset::Lan => Config::lan(),
            Preset::Wan => Config::wan(),
        };
        Config {
            security: Security::Plaintext,
            ..config
        }
    }

    /// The preset's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Lan => "lan",
            Preset::Wan => "wan",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LivenessParams {
    /// Nodes in the network.
    pub nodes: u32,
    /// The simulation seed.
    pub seed: u64,
    /// Nodes crashed silently (only liveness can find them out).
    pub crash: u32,
    /// Nodes killed (their connections reset).
    pub kill: u32,
    /// Mean degree of the random overlay: every node dials `degree / 2`
    /// random others, as flood's `Topology::Random` does; nodes dial no
    /// more on their own (`target_peers` 0, no peer exchange).
    pub degree: u32,
    /// The timing profile.
    pub preset: Preset,
    /// Split the network in two (random halves) for longer than the
    /// detection time, then heal it, before the failures.
    pub partition: bool,
    /// The network model.
    pub net: NetModel,
}

impl LivenessParams {
    /// The command that replays this run.
    pub fn replay(&self) -> String {
        format!(
            "ringmesh-sim liveness --seed {} --nodes {} --crash {} --kill {} --degree {} \
             --preset {}{} --latency-ms {} --jitter-ms {}",
            self.seed,
            self.nodes,
            self.crash,
            self.kill,
            self.degree,
            self.preset.name(),
            if self.partition { " --partition" } else { "" },
            self.net.latency.as_millis(),
            self.net.jitter.as_millis()
        )
    }
}

impl Default for LivenessParams {
    fn default() -> Self {
        LivenessParams {
            nodes: 500,
            seed: 1,
            crash: 5,
            kill: 0,
            degree: 8,
            preset: Preset::Lan,
            partition: false,
            net: NetModel::default(),
        }
    }
}

/// Runs the event loop to `until` in slices, reporting progress in virtual
/// milliseconds (slicing does not change the run: nothing happens between
/// slices).
fn advance<O: Observer>(
    sim: &mut Sim<O>,
    until: Instant,
    phase: &str,
    progress: &mut impl FnMut(&str, u64, u64),
) {
    let start = sim.now();
    let total = (until - start).as_millis();
    let slice = Duration::from_micros(((until - start).as_micros() / 50).max(1));
    while sim.now() < until {
        let next = (sim.now() + slice).min(until);
        sim.run_until(next);
        progress(phase, (sim.now() - start).as_millis(), total);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

/// The nearest-rank percentile `q` (0..=1) of ascending `sorted`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs a liveness scenario. `progress` is called now and then with
/// (phase, done, total) for a progress bar.
pub fn run(
    params: &LivenessParams,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<LivenessReport, Error> {
    let wall = WallClock::now();
    let n = params.nodes;
    let failing = params.crash.saturating_add(params.kill);
    if n < 3 {
        return Err("a liveness run needs at least 3 nodes".into());
    }
    if failing > n / 2 {
        return Err("--crash plus --kill must leave at least half the nodes up".into());
    }
    if params.degree < 2 {
        return Err("--degree must be at least 2".into());
    }
    let config = Config {
        peers: PeersConfig {
            // Wired by hand: no dialling, no peer exchange.
            target_peers: 0,
            peer_exchange_size: 0,
            max_known_peers: 32,
            ..params.preset.config().peers
        },
        mesh: MeshConfig {
            // Large runs: keep per-node tables small.
            replay_origins: 1024,
            ..params.preset.config().mesh
        },
        ..params.preset.config()
    };
    let interval = config.liveness.ping_interval;
    let bound = config.detection_time();
    let mut sim = Sim::with_observer(
        SimConfig {
            seed: params.seed,
            net: params.net.clone(),
            echo_requests: false,
        },
        LivenessWatch::default(),
    );
    let mut rng = ChaCha8Rng::from_seed(blake3::derive_key(
        "ringmesh-sim v1 liveness",
        &params.seed.to_le_bytes(),
    ));
    add_nodes(&mut sim, &config, n, &mut progress)?;
    wire(&mut sim, &mut rng, params, interval, &mut progress)?;
    // Handshakes, then two rounds of pings: every link has a liveness
    // history before anything fails.
    let stable = sim.now() + interval.saturating_mul(2) + Duration::from_secs(1);
    advance(&mut sim, stable, "stabilising", &mut progress);
    if params.partition {
        partition_and_heal(&mut sim, &mut rng, bound + interval, &mut progress);
    }
    let victims = pick_victims(&sim, &mut rng, n, failing)?;
    fail(
        &mut sim,
        &mut rng,
        &victims,
        params.crash,
        interval,
        &mut progress,
    );
    let doomed = params.net.latency + params.net.jitter;
    let end = sim.now() + bound + interval + doomed;
    advance(&mut sim, end, "detecting", &mut progress);
    Ok(tally(&sim, params, &config, wall))
}

/// Adds the `n` nodes, and tells the watch who is who.
fn add_nodes(
    sim: &mut Sim<LivenessWatch>,
    config: &Config,
    n: u32,
    progress: &mut impl FnMut(&str, u64, u64),
) -> Result<(), Error> {
    for i in 0..n {
        sim.add_node(config.clone())?;
        if i % 4096 == 0 {
            progress("nodes", u64::from(i), u64::from(n));
        }
    }
    let index = (0..n).map(|i| (sim.id(i), i)).collect();
    let watch = sim.observer_mut();
    watch.index = index;
    watch.holders = vec![Vec::new(); n as usize];
    watch.stopped_at = vec![None; n as usize];
    Ok(())
}

/// Each node dials `degree / 2` random others at a random moment of the
/// first ping interval, so links (and their ping cycles) start at every
/// phase, as in a network that grew over time; wired all at once, every
/// neighbour of a crashed node would decide at the same instant.
fn wire(
    sim: &mut Sim<LivenessWatch>,
    rng: &mut ChaCha8Rng,
    params: &LivenessParams,
    interval: Duration,
    progress: &mut impl FnMut(&str, u64, u64),
) -> Result<(), Error> {
    let n = params.nodes;
    let dials = (params.degree / 2).min(n - 1);
    let wiring_start = sim.now();
    let mut wiring: Vec<(Duration, NodeIdx)> = (0..n)
        .map(|i| {
            let offset = rng.next_u64() % interval.as_micros().max(1);
            (Duration::from_micros(offset), i)
        })
        .collect();
    wiring.sort_unstable();
    for (k, &(offset, i)) in wiring.iter().enumerate() {
        sim.run_until(wiring_start + offset);
        let mut picked = Vec::with_capacity(dials as usize);
        while picked.len() < dials as usize {
            let j = (rng.next_u64() % u64::from(n)) as NodeIdx;
            if j != i && !picked.contains(&j) {
                picked.push(j);
            }
        }
        for j in picked {
            sim.connect(i, j)?;
        }
        if k % 1024 == 0 {
            progress("wiring", k as u64, u64::from(n));
        }
    }
    Ok(())
}

/// Splits the network in two random halves for `long` (long enough for
/// every link across to be declared dead), heals it, and waits `long`
/// again: connections broken by the split stay broken, and the last of
/// them is declared dead within a detection time of the heal.
fn partition_and_heal(
    sim: &mut Sim<LivenessWatch>,
    rng: &mut ChaCha8Rng,
    long: Duration,
    progress: &mut impl FnMut(&str, u64, u64),
) {
    let groups: Vec<u16> = (0..sim.len())
        .map(|_| (rng.next_u64() & 1) as u16)
        .collect();
    sim.partition(&groups);
    let watch = sim.observer_mut();
    watch.group = groups;
    watch.partition_until = Some(Instant::MAX);
    let heal_at = sim.now() + long;
    advance(sim, heal_at, "partitioned", progress);
    sim.heal();
    let settled = sim.now() + long;
    sim.observer_mut().partition_until = Some(settled);
    advance(sim, settled, "healing", progress);
}

/// Picks `failing` victims: each with a live neighbour, and, while that is
/// possible, none next to another (so every neighbour stays up to decide).
fn pick_victims(
    sim: &Sim<LivenessWatch>,
    rng: &mut ChaCha8Rng,
    n: u32,
    failing: u32,
) -> Result<Vec<NodeIdx>, Error> {
    let mut victims: Vec<NodeIdx> = Vec::with_capacity(failing as usize);
    let mut attempts = 0u64;
    while victims.len() < failing as usize {
        attempts += 1;
        if attempts > 1000 * u64::from(n) {
            return Err("could not find nodes with live neighbours to fail".into());
        }
        let v = (rng.next_u64() % u64::from(n)) as NodeIdx;
        let holders = &sim.observer().holders;
        let isolated = holders[v as usize].is_empty();
        let adjacent = victims
            .iter()
            .any(|&w| holders[v as usize].contains(&w) || holders[w as usize].contains(&v));
        let strict = attempts <= 100 * u64::from(n);
        if victims.contains(&v) || isolated || (adjacent && strict) {
            continue;
        }
        victims.push(v);
    }
    Ok(victims)
}

/// Fails the victims (the first `crash` crash, the rest are killed) at
/// random phases within one ping `interval`, so failures land at every
/// point of the neighbours' ping cycles.
fn fail(
    sim: &mut Sim<LivenessWatch>,
    rng: &mut ChaCha8Rng,
    victims: &[NodeIdx],
    crash: u32,
    interval: Duration,
    progress: &mut impl FnMut(&str, u64, u64),
) {
    let first = sim.now();
    let mut schedule: Vec<(Duration, NodeIdx, FailureKind)> = victims
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let offset = Duration::from_micros(rng.next_u64() % interval.as_micros().max(1));
            let kind = if (k as u32) < crash {
                FailureKind::Crash
            } else {
                FailureKind::Kill
            };
            (offset, v, kind)
        })
        .collect();
    schedule.sort_by_key(|&(offset, v, _)| (offset, v));
    for (k, &(offset, victim, kind)) in schedule.iter().enumerate() {
        sim.run_until(first + offset);
        let now = sim.now();
        sim.observer_mut().stop(now, victim, kind);
        match kind {
            FailureKind::Crash => sim.crash(victim),
            FailureKind::Kill => sim.kill(victim),
        }
        progress("failing", k as u64 + 1, schedule.len() as u64);
    }
}

/// The report: each failure's verdicts, against the bound `config`
/// promises and the earliest a neighbour can decide.
fn tally(
    sim: &Sim<LivenessWatch>,
    params: &LivenessParams,
    config: &Config,
    wall: WallClock,
) -> LivenessReport {
    let watch = sim.observer();
    let mut victims_sorted: Vec<(&NodeIdx, &Failure)> = watch.failures.iter().collect();
    victims_sorted.sort_by_key(|(v, _)| **v);
    let (mut crashed, mut detected, mut killed, mut kills_detected) = (0, 0, 0, 0);
    let mut times = Vec::new();
    let mut neighbour_times = Vec::new();
    let mut kill_max = Duration::ZERO;
    for (_, failure) in victims_sorted {
        match failure.kind {
            FailureKind::Crash => {
                crashed += 1;
                neighbour_times.extend(failure.verdicts.iter().map(|d| ms(*d)));
                if let Some(done) = failure.done {
                    detected += 1;
                    times.push(ms(done - failure.at));
                }
            }
            FailureKind::Kill => {
                killed += 1;
                if let Some(done) = failure.done {
                    kills_detected += 1;
                    kill_max = kill_max.max(done - failure.at);
                }
            }
        }
    }
    times.sort_by(f64::total_cmp);
    neighbour_times.sort_by(f64::total_cmp);
    // A ping that left up to one trip before the crash was already doomed.
    let doomed = params.net.latency + params.net.jitter;
    let floor = (config.liveness.ping_interval.saturating_mul(u64::from(
        config.liveness.dead_after_misses.saturating_sub(1),
    )) + config.liveness.ping_timeout)
        - doomed;
    LivenessReport {
        nodes: params.nodes,
        preset: params.preset,
        degree: params.degree,
        crashed,
        detected,
        killed,
        kills_detected,
        detection_ms_mean: if times.is_empty() {
            0.0
        } else {
            times.iter().sum::<f64>() / times.len() as f64
        },
        detection_ms_p99: percentile(&times, 0.99),
        detection_ms_max: times.last().copied().unwrap_or(0.0),
        neighbour_detection_ms_min: neighbour_times.first().copied().unwrap_or(0.0),
        // Liveness rides on traffic: the count starts at the last frame
        // heard from the node, which may arrive one trip after the crash.
        bound_ms: ms(config.detection_time() + doomed),
        floor_ms: ms(floor),
        kill_detection_ms_max: ms(kill_max),
        false_positives: watch.false_positives,
        false_positive_examples: watch.examples.clone(),
        false_suspicions: watch.false_suspicions,
        partition_downs: watch.partition_downs,
        events: sim.stats().events,
        wall_ms: wall.elapsed().as_secs_f64() * 1e3,
        peak_rss_mib: peak_rss_mib(),
        trace_hash: sim.trace_hash(),
        seed: params.seed,
        ok: false,
        replay: params.replay(),
        detection_times_ms: times,
        neighbour_detection_times_ms: neighbour_times,
    }
    .judged()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::show::Report;

    fn quiet(params: &LivenessParams) -> LivenessReport {
        run(params, |_, _, _| {}).expect("runs")
    }

    #[test]
    fn crashed_nodes_are_detected_within_the_configured_bounds() {
        let report = quiet(&LivenessParams {
            nodes: 120,
            crash: 6,
            ..LivenessParams::default()
        });
        assert_eq!((report.crashed, report.detected), (6, 6), "{report:?}");
        assert_eq!(report.false_positives, 0, "{report:?}");
        // Lan: 3 × 1 s + 2 × 500 ms after the last frame heard (the end
        // with the higher id waits a ping timeout longer before its first
        // ping: an idle link is pinged from one end), at most 25 ms after
        // the crash; the floor is 2 × 1 s + 500 ms − 25 ms.
        assert_eq!((report.bound_ms, report.floor_ms), (4025.0, 2475.0));
        assert!(report.detection_ms_max <= report.bound_ms, "{report:?}");
        assert!(
            report.neighbour_detection_ms_min >= report.floor_ms,
            "{report:?}"
        );
        assert!(report.neighbour_detection_times_ms.len() >= 6 * 4);
        assert_eq!(report.detection_times_ms.len(), 6);
    }

    #[test]
    fn wan_timings_follow_the_wan_formula() {
        let report = quiet(&LivenessParams {
            nodes: 60,
            crash: 3,
            preset: Preset::Wan,
            ..LivenessParams::default()
        });
        assert!(report.ok(), "{report:?}");
        // 4 × 5 s + 2 × 3 s + 25 ms.
        assert_eq!(report.bound_ms, 26_025.0);
        assert!(report.detection_ms_max <= 26_025.0, "{report:?}");
        // 3 × 5 s + 3 s − 25 ms.
        assert!(report.neighbour_detection_ms_min >= 17_975.0, "{report:?}");
    }

    #[test]
    fn killed_nodes_are_detected_within_one_latency_by_resets() {
        let report = quiet(&LivenessParams {
            nodes: 100,
            crash: 2,
            kill: 4,
            ..LivenessParams::default()
        });
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.killed, report.kills_detected), (4, 4));
        // Latency 20 ms plus at most 5 ms of jitter.
        assert!(report.kill_detection_ms_max <= 25.0, "{report:?}");
        assert!(report.kill_detection_ms_max >= 20.0, "{report:?}");
    }

    #[test]
    fn a_healed_partition_is_no_false_positive() {
        let report = quiet(&LivenessParams {
            nodes: 80,
            crash: 3,
            partition: true,
            ..LivenessParams::default()
        });
        assert!(report.partition_downs > 0, "{report:?}");
        assert!(report.ok(), "{report:?}");
        assert!(report.detection_ms_max <= report.bound_ms, "{report:?}");
    }

    #[test]
    fn frames_slower_than_the_detection_time_are_false_positives() {
        // A 3 s one-way trip against Lan's 4 s detection time: a late
        // pong or any frame proves a peer alive (liveness rides on
        // traffic), but here nothing from a live peer arrives before three
        // pings have missed, so every live peer looks dead, and the checker
        // must say so (no crash: no node keeps a live neighbour).
        let report = quiet(&LivenessParams {
            nodes: 30,
            crash: 0,
            net: NetModel {
                latency: Duration::from_secs(3),
                ..NetModel::default()
            },
            ..LivenessParams::default()
        });
        assert!(report.false_positives > 0, "{report:?}");
        assert!(!report.ok());
        assert!(!report.false_positive_examples.is_empty());
    }

    #[test]
    fn same_seed_same_trace() {
        let params = LivenessParams {
            nodes: 50,
            crash: 2,
            kill: 1,
            ..LivenessParams::default()
        };
        let a = quiet(&params);
        let b = quiet(&params);
        let c = quiet(&LivenessParams { seed: 9, ..params });
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.detection_times_ms, b.detection_times_ms);
        assert_ne!(a.trace_hash, c.trace_hash);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let xs: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&xs, 0.99), 198.0);
        assert_eq!(percentile(&xs[..1], 0.99), 1.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
