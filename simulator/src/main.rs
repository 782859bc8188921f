//! `ringmesh-sim`: run ringmesh networks in virtual time.
//!
//! - `ringmesh-sim` alone: a 10,000-node flood and a 2,000-node liveness run
//!   with 20 crashes, in a few seconds.
//! - `ringmesh-sim flood|liveness|chord [options]`: one scenario, a short
//!   summary or one JSON object (`--json`), an SVG figure (`--plot FILE.svg`).
//! - `ringmesh-sim run FILE`: a scenario file.
//! - `ringmesh-sim demo`: the narrated demo.
//!
//! A run that breaks an invariant exits non-zero and prints, on stderr, the
//! command that replays it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ringmesh::Duration;
use ringmesh_sim::NetModel;
use ringmesh_sim::scenario::chord::{self, ChordParams, ChordReport};
use ringmesh_sim::scenario::flood::{self, FloodParams, FloodReport, Topology};
use ringmesh_sim::scenario::liveness::{self, LivenessParams, LivenessReport, Preset};
use ringmesh_sim::{demo, plot};
use serde_json::json;

/// Below this many nodes a run is over before a progress bar helps.
const PROGRESS_BAR_NODES: u32 = 20_000;

type Error = Box<dyn std::error::Error>;

#[derive(Debug, Parser)]
#[command(
    name = "ringmesh-sim",
    version,
    about = "Deterministic simulator for ringmesh networks: real nodes, virtual time, one seed",
    long_about = "Deterministic simulator for ringmesh networks: real nodes, virtual time, one \
                  seed.\n\nWithout a subcommand, runs a 10,000-node flood and a 2,000-node liveness \
                  run with 20 crashes."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build an overlay, broadcast once, and measure how the message spread.
    Flood(FloodArgs),
    /// Crash or kill nodes and measure how fast their neighbours notice.
    Liveness(LivenessArgs),
    /// Grow a Chord ring, fail part of it, run lookups (and a table) against
    /// ground truth, checking Zave's invariants throughout.
    Chord(ChordArgs),
    /// Run a scenario file (TOML: timed actions and checks).
    Run(RunArgs),
    /// The narrated demo: nodes join over Noise, flood, detect a crash.
    Demo(DemoArgs),
}

/// Options every scenario takes.
#[derive(Debug, Args)]
struct Output {
    /// Print exactly one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Write a figure of the run to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TopologyArg {
    /// Every node dials degree/2 random others (wired by hand).
    Random,
    /// Nodes join one by one through bootstrap nodes and grow to
    /// --target-peers on their own.
    Organic,
}

#[derive(Debug, Args)]
struct FloodArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes in the network.
    #[arg(long, default_value_t = 10_000)]
    nodes: u32,
    /// How the overlay is built.
    #[arg(long, value_enum, default_value_t = TopologyArg::Random)]
    topology: TopologyArg,
    /// Mean degree of the random topology.
    #[arg(long, default_value_t = 8)]
    degree: u32,
    /// Each node's target peer count in the organic topology.
    #[arg(long, default_value_t = 8)]
    target_peers: u32,
    /// Milliseconds between two joins in the organic topology.
    #[arg(long, default_value_t = 20)]
    join_interval_ms: u64,
    /// Nodes crashed silently after the build, before the broadcast.
    #[arg(long, default_value_t = 0)]
    crash: u32,
    /// Broadcast payload size in bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Extra one-way delay, uniform in 0..=jitter, milliseconds.
    #[arg(long, default_value_t = 5)]
    jitter_ms: u64,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PresetArg {
    /// Ping every 1 s, miss after 500 ms, dead after 3 misses (3.5 s).
    Lan,
    /// Ping every 5 s, miss after 3 s, dead after 4 misses (23 s).
    Wan,
}

#[derive(Debug, Args)]
struct LivenessArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes in the network.
    #[arg(long, default_value_t = 500)]
    nodes: u32,
    /// Nodes crashed silently (only liveness reveals them).
    #[arg(long, default_value_t = 5)]
    crash: u32,
    /// Nodes killed (their connections reset).
    #[arg(long, default_value_t = 0)]
    kill: u32,
    /// Mean degree of the random topology.
    #[arg(long, default_value_t = 8)]
    degree: u32,
    /// The liveness timing profile.
    #[arg(long, value_enum, default_value_t = PresetArg::Lan)]
    preset: PresetArg,
    /// Split the network in two for longer than the detection time and
    /// heal it before the failures.
    #[arg(long)]
    partition: bool,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Extra one-way delay, uniform in 0..=jitter, milliseconds.
    #[arg(long, default_value_t = 5)]
    jitter_ms: u64,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct ChordArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes in the ring.
    #[arg(long, default_value_t = 1000)]
    nodes: u32,
    /// Successor list length (chord_successors).
    #[arg(long, default_value_t = 8)]
    r: usize,
    /// Lookups of random keys from random members.
    #[arg(long, default_value_t = 10_000)]
    lookups: u32,
    /// Fraction of the members crashed at once before the lookups.
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    fail_fraction: f64,
    /// Churn during the lookups, events per second of virtual time (half
    /// joins, half failures that keep Zave's failure precondition).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    churn: f64,
    /// Keys put into the table after the build and read back at the end.
    #[arg(long, default_value_t = 0)]
    keys: u32,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The scenario file.
    file: PathBuf,
    /// Overrides the file's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Print exactly one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Seed for identities and node randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes in the demo network.
    #[arg(long, default_value_t = 16)]
    nodes: usize,
    /// Print exactly one JSON object on stdout instead of the narration.
    #[arg(long)]
    json: bool,
}

fn net(latency_ms: u64, jitter_ms: u64) -> NetModel {
    NetModel {
        latency: Duration::from_millis(latency_ms),
        jitter: Duration::from_millis(jitter_ms),
        ..NetModel::default()
    }
}

impl FloodArgs {
    fn params(&self) -> FloodParams {
        FloodParams {
            nodes: self.nodes,
            seed: self.seed,
            topology: match self.topology {
                TopologyArg::Random => Topology::Random {
                    degree: self.degree,
                },
                TopologyArg::Organic => Topology::Organic {
                    target_peers: self.target_peers,
                    join_interval: Duration::from_millis(self.join_interval_ms),
                },
            },
            net: net(self.latency_ms, self.jitter_ms),
            crash: self.crash,
            payload_len: self.payload,
            ..FloodParams::default()
        }
    }

    /// The command that replays this run (every option spelled out, so a
    /// change of defaults cannot change the replay).
    fn replay(&self) -> String {
        let topology = match self.topology {
            TopologyArg::Random => format!("--topology random --degree {}", self.degree),
            TopologyArg::Organic => format!(
                "--topology organic --target-peers {} --join-interval-ms {}",
                self.target_peers, self.join_interval_ms
            ),
        };
        format!(
            "ringmesh-sim flood --seed {} --nodes {} {topology} --crash {} --payload {} \
             --latency-ms {} --jitter-ms {}",
            self.seed, self.nodes, self.crash, self.payload, self.latency_ms, self.jitter_ms
        )
    }
}

impl LivenessArgs {
    fn params(&self) -> LivenessParams {
        LivenessParams {
            nodes: self.nodes,
            seed: self.seed,
            crash: self.crash,
            kill: self.kill,
            degree: self.degree,
            preset: match self.preset {
                PresetArg::Lan => Preset::Lan,
                PresetArg::Wan => Preset::Wan,
            },
            partition: self.partition,
            net: net(self.latency_ms, self.jitter_ms),
        }
    }

    /// The command that replays this run.
    fn replay(&self) -> String {
        let preset = self.params().preset.name();
        format!(
            "ringmesh-sim liveness --seed {} --nodes {} --crash {} --kill {} --degree {} \
             --preset {preset}{} --latency-ms {} --jitter-ms {}",
            self.seed,
            self.nodes,
            self.crash,
            self.kill,
            self.degree,
            if self.partition { " --partition" } else { "" },
            self.latency_ms,
            self.jitter_ms
        )
    }
}

impl ChordArgs {
    fn params(&self) -> ChordParams {
        ChordParams {
            nodes: self.nodes,
            r: self.r,
            lookups: self.lookups,
            fail_fraction: self.fail_fraction,
            churn: self.churn,
            keys: self.keys,
            seed: self.seed,
            ..ChordParams::default()
        }
    }

    /// The command that replays this run.
    fn replay(&self) -> String {
        format!(
            "ringmesh-sim chord --seed {} --nodes {} --r {} --lookups {} --fail-fraction {} \
             --churn {} --keys {}",
            self.seed, self.nodes, self.r, self.lookups, self.fail_fraction, self.churn, self.keys
        )
    }
}

/// A progress callback: an indicatif bar on stderr when stderr is a
/// terminal and the run is large, else nothing.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(nodes: u32) -> Self {
        let bar = (nodes >= PROGRESS_BAR_NODES && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{elapsed:>4} {msg:<12} [{wide_bar}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Progress { bar }
    }

    fn update(&self, phase: &str, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            if bar.message() != phase {
                bar.set_position(0);
                bar.set_message(phase.to_owned());
            }
            bar.set_length(total);
            bar.set_position(done);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn flood_json(report: &FloodReport, args: &FloodArgs) -> serde_json::Value {
    json!({
        "scenario": "flood",
        "nodes": report.nodes,
        "live_nodes": report.live_nodes,
        "delivered": report.delivered,
        "delivery_ratio": report.delivery_ratio,
        "duplicates": report.duplicates,
        "double_deliveries": report.double_deliveries,
        "rmr": report.rmr,
        "mean_hops": report.mean_hops,
        "max_hops": report.max_hops,
        "last_delivery_ms": report.last_delivery_ms,
        "build_ms": report.build_ms,
        "events": report.events,
        "events_per_sec": report.events_per_sec,
        "wall_ms": report.wall_ms,
        "peak_rss_mib": report.peak_rss_mib,
        "trace_hash": report.trace_hash,
        "seed": report.seed,
        "ok": flood_ok(report),
        "replay": args.replay(),
    })
}

fn flood_ok(report: &FloodReport) -> bool {
    report.delivery_ratio >= 1.0 && report.double_deliveries == 0
}

fn flood_summary(report: &FloodReport, topology: &str) -> String {
    format!(
        "flood: {} nodes ({topology}), seed {}\n  \
         delivered {}/{} live nodes (ratio {:.4}), {} double deliveries\n  \
         hops mean {:.2}, max {}; last delivery {:.1} ms after the broadcast\n  \
         redundancy: rmr {:.2}, {} duplicate copies\n  \
         {} events in {:.0} ms wall ({:.2} M events/s), overlay built in {:.0} ms virtual, \
         peak RSS {:.0} MiB\n  \
         trace {}\n",
        report.nodes,
        report.seed,
        report.delivered,
        report.live_nodes.saturating_sub(1),
        report.delivery_ratio,
        report.double_deliveries,
        report.mean_hops,
        report.max_hops,
        report.last_delivery_ms,
        report.rmr,
        report.duplicates,
        report.events,
        report.wall_ms,
        report.events_per_sec / 1e6,
        report.build_ms,
        report.peak_rss_mib,
        report.trace_hash,
    )
}

fn liveness_json(report: &LivenessReport, args: &LivenessArgs) -> Result<serde_json::Value, Error> {
    let mut value = serde_json::to_value(report)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("scenario".into(), json!("liveness"));
        object.insert("ok".into(), json!(report.ok()));
        object.insert("replay".into(), json!(args.replay()));
    }
    Ok(value)
}

fn liveness_summary(report: &LivenessReport, degree: u32) -> String {
    let mut out = format!(
        "liveness: {} nodes ({} timings, degree {degree}), seed {}\n  \
         crashed {}: detected {}, mean {:.0} ms, p99 {:.0} ms, max {:.0} ms \
         (bound {:.0} ms, earliest possible {:.0} ms, earliest seen {:.0} ms)\n",
        report.nodes,
        report.preset.name(),
        report.seed,
        report.crashed,
        report.detected,
        report.detection_ms_mean,
        report.detection_ms_p99,
        report.detection_ms_max,
        report.bound_ms,
        report.floor_ms,
        report.neighbour_detection_ms_min,
    );
    if report.killed > 0 {
        out += &format!(
            "  killed {}: detected {}, all within {:.1} ms (connection resets)\n",
            report.killed, report.kills_detected, report.kill_detection_ms_max
        );
    }
    if report.partition_downs > 0 {
        out += &format!(
            "  partition: {} peers across it declared down (expected)\n",
            report.partition_downs
        );
    }
    out += &format!(
        "  false positives {} (false suspicions {})\n  \
         {} events in {:.0} ms wall, peak RSS {:.0} MiB\n  \
         trace {}\n",
        report.false_positives,
        report.false_suspicions,
        report.events,
        report.wall_ms,
        report.peak_rss_mib,
        report.trace_hash,
    );
    for example in &report.false_positive_examples {
        out += &format!("  false positive: {example}\n");
    }
    out
}

fn chord_json(report: &ChordReport, args: &ChordArgs) -> Result<serde_json::Value, Error> {
    let mut value = serde_json::to_value(report)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("scenario".into(), json!("chord"));
        object.insert("ok".into(), json!(report.ok()));
        object.insert("replay".into(), json!(args.replay()));
    }
    Ok(value)
}

fn chord_summary(report: &ChordReport) -> String {
    let ms = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("{v:.0} ms"));
    let mut out = format!(
        "chord: {} nodes, r = {}, seed {}\n  \
         built in {:.0} ms virtual (formed at {}, {} join retries), ideal after the build: {}\n  \
         fingers: {:.0}% of a sample ideal, {:.1} each, after {:.0} ms\n",
        report.nodes,
        report.r,
        report.seed,
        report.build_ms,
        ms(report.formed_ms),
        report.join_retries,
        report.ideal_after_build,
        report.fingers_ideal_fraction * 100.0,
        report.mean_fingers,
        report.fingers_ms,
    );
    if report.failed > 0 {
        out += &format!(
            "  failure: {} crashed at once ({} redraws, within the contract: {}), \
             ideal again after {}\n",
            report.failed,
            report.fail_redraws,
            report.failures_within_constraint,
            ms(report.repair_ms),
        );
    }
    if report.churn_joins + report.churn_failures + report.churn_failures_skipped > 0 {
        out += &format!(
            "  churn: {} joins ({} unfinished), {} failures, {} failures skipped\n",
            report.churn_joins,
            report.churn_joins_unfinished,
            report.churn_failures,
            report.churn_failures_skipped,
        );
    }
    out += &format!(
        "  lookups {}: {} correct ({} transitional), {} incorrect, {} failed, {} lost \
         (success {:.4})\n  \
         hops mean {:.2} (½·log2 N = {:.2}), p50 {}, p99 {}, max {}; {:.0} ms mean\n  \
         invariants: {} checks, {} violations ({} while forming, {} outside the contract)\n",
        report.lookups,
        report.lookup_correct,
        report.lookup_correct_transitional,
        report.lookup_incorrect,
        report.lookup_failed,
        report.lookup_lost,
        report.lookup_success_rate,
        report.mean_hops,
        report.expected_hops,
        report.p50_hops,
        report.p99_hops,
        report.max_hops,
        report.lookup_ms_mean,
        report.invariant_checks,
        report.invariant_violations,
        report.forming_violations,
        report.violations_outside_constraint,
    );
    if report.keys > 0 {
        out += &format!(
            "  keys {}: {} acked, {} puts failed, {} at risk, {} lost, {} under-replicated\n",
            report.keys,
            report.puts_acked,
            report.puts_failed,
            report.keys_at_risk,
            report.keys_lost,
            report.under_replicated,
        );
    }
    out += &format!(
        "  ideal at the end: {} ({} members, {} orphaned events)\n  \
         {} events in {:.0} ms wall ({:.0} ms virtual), peak RSS {:.0} MiB\n  \
         trace {}\n",
        report.ideal,
        report.final_members,
        report.orphaned,
        report.events,
        report.wall_ms,
        report.virtual_ms,
        report.peak_rss_mib,
        report.trace_hash,
    );
    for line in report
        .violation_examples
        .iter()
        .chain(&report.examples)
        .chain(&report.lookup_failure_examples)
    {
        out += &format!("  {line}\n");
    }
    out
}

/// Prints the failure line and the replay command on stderr.
fn report_failure(what: &str, replay: &str) -> ExitCode {
    eprintln!("ringmesh-sim: {what}");
    eprintln!("replay: {replay}");
    ExitCode::FAILURE
}

fn write_plot(path: &Path, draw: impl FnOnce(&Path) -> Result<(), Error>) -> Result<(), Error> {
    draw(path).map_err(|e| format!("writing the plot {}: {e}", path.display()).into())
}

/// What the flood, liveness and chord subcommands do with their run: a run
/// that could not be made fails with the replay line; otherwise the plot
/// is drawn, the JSON or the summary printed, and a failed check exits 1
/// with the replay line.
struct Shown<'a, R> {
    name: &'a str,
    output: &'a Output,
    replay: String,
    plot: fn(&Path, &R) -> Result<(), Error>,
}

impl<R> Shown<'_, R> {
    fn finish<E: std::fmt::Display>(
        self,
        report: Result<R, E>,
        json: impl FnOnce(&R) -> Result<serde_json::Value, Error>,
        summary: impl FnOnce(&R) -> String,
        problem: impl FnOnce(&R) -> Option<String>,
    ) -> Result<ExitCode, Error> {
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                let what = format!("{} failed: {e}", self.name);
                return Ok(report_failure(&what, &self.replay));
            }
        };
        if let Some(path) = &self.output.plot {
            write_plot(path, |p| (self.plot)(p, &report))?;
        }
        if self.output.json {
            println!("{}", json(&report)?);
        } else {
            print!("{}", summary(&report));
            if let Some(path) = &self.output.plot {
                println!("  plot: {}", path.display());
            }
        }
        Ok(match problem(&report) {
            None => ExitCode::SUCCESS,
            Some(problem) => {
                let what = format!("{} broke an invariant: {problem}", self.name);
                report_failure(&what, &self.replay)
            }
        })
    }
}

fn flood(args: &FloodArgs) -> Result<ExitCode, Error> {
    let progress = Progress::new(args.nodes);
    let report = flood::run(&args.params(), |phase, done, total| {
        progress.update(phase, done, total);
    });
    drop(progress);
    let shown = Shown {
        name: "flood",
        output: &args.output,
        replay: args.replay(),
        plot: plot::delivery_curve,
    };
    shown.finish(
        report,
        |report| Ok(flood_json(report, args)),
        |report| {
            let topology = match args.topology {
                TopologyArg::Random => format!("random, degree {}", args.degree),
                TopologyArg::Organic => format!("organic, target {} peers", args.target_peers),
            };
            flood_summary(report, &topology)
        },
        |report| {
            (!flood_ok(report)).then(|| {
                format!(
                    "delivery ratio {}, {} double deliveries",
                    report.delivery_ratio, report.double_deliveries
                )
            })
        },
    )
}

fn liveness(args: &LivenessArgs) -> Result<ExitCode, Error> {
    let progress = Progress::new(args.nodes);
    let report = liveness::run(&args.params(), |phase, done, total| {
        progress.update(phase, done, total);
    });
    drop(progress);
    let shown = Shown {
        name: "liveness",
        output: &args.output,
        replay: args.replay(),
        plot: plot::detection_cdf,
    };
    shown.finish(
        report,
        |report| liveness_json(report, args),
        |report| liveness_summary(report, args.degree),
        |report| {
            (!report.ok()).then(|| {
                format!(
                    "{}/{} crashes and {}/{} kills detected, {} false positives",
                    report.detected,
                    report.crashed,
                    report.kills_detected,
                    report.killed,
                    report.false_positives
                )
            })
        },
    )
}

fn chord(args: &ChordArgs) -> Result<ExitCode, Error> {
    let progress = Progress::new(args.nodes);
    let report = chord::run(&args.params(), |phase, done, total| {
        progress.update(phase, done, total);
    });
    drop(progress);
    let shown = Shown {
        name: "chord",
        output: &args.output,
        replay: args.replay(),
        plot: plot::hops_histogram,
    };
    shown.finish(
        report,
        |report| chord_json(report, args),
        chord_summary,
        |report| (!report.ok()).then(|| report.problems().join("; ")),
    )
}

fn run_script(args: &RunArgs) -> ExitCode {
    let mut replay = format!("ringmesh-sim run {}", args.file.display());
    if let Some(seed) = args.seed {
        replay += &format!(" --seed {seed}");
    }
    match ringmesh_sim::scenario::script::run_file(&args.file, args.seed) {
        Ok(outcome) => {
            if args.json {
                println!("{}", outcome.json);
            } else {
                print!("{}", outcome.summary);
                if !outcome.summary.ends_with('\n') {
                    println!();
                }
            }
            if outcome.passed {
                ExitCode::SUCCESS
            } else {
                report_failure("a scenario check failed", &outcome.replay)
            }
        }
        Err(e) => report_failure(&format!("{}: {e}", args.file.display()), &replay),
    }
}

fn demo(args: &DemoArgs) -> ExitCode {
    let config = demo::DemoConfig {
        nodes: args.nodes,
        seed: args.seed,
        ..demo::DemoConfig::default()
    };
    let replay = format!(
        "ringmesh-sim demo --seed {} --nodes {}",
        args.seed, args.nodes
    );
    if !args.json {
        println!(
            "ringmesh demo: {} nodes, {:?} links, seed {}",
            config.nodes, config.latency, config.seed
        );
    }
    match demo::run(&config) {
        Ok(report) => {
            if args.json {
                let value = json!({
                    "scenario": "demo",
                    "nodes": config.nodes,
                    "seed": config.seed,
                    "min_peers": report.min_peers,
                    "expected_deliveries": report.expected_deliveries,
                    "deliveries": report.deliveries,
                    "duplicate_deliveries": report.duplicate_deliveries,
                    "crash_detected_by": report.detected.0,
                    "crash_neighbours": report.detected.1,
                    "virtual_ms": report.virtual_micros as f64 / 1e3,
                    "ok": report.ok(),
                });
                println!("{value}");
            } else {
                print!("{}", report.log);
            }
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                report_failure("the demo broke an invariant", &replay)
            }
        }
        Err(e) => report_failure(&format!("demo failed: {e}"), &replay),
    }
}

/// The bare command: a flood and a liveness run of a few seconds each.
fn default_run() -> Result<ExitCode, Error> {
    let flood_args = FloodArgs::parse_default(&["--nodes", "10000", "--degree", "8"])?;
    let liveness_args = LivenessArgs::parse_default(&["--nodes", "2000", "--crash", "20"])?;
    let mut code = flood(&flood_args)?;
    println!();
    let liveness_code = liveness(&liveness_args)?;
    if code == ExitCode::SUCCESS {
        code = liveness_code;
    }
    Ok(code)
}

/// Parses a subcommand's options from `args` (for the bare default run,
/// so it shares the subcommands' defaults and replay lines).
trait ParseDefault: Sized {
    fn parse_default(args: &[&str]) -> Result<Self, Error>;
}

macro_rules! parse_default {
    ($args:ty) => {
        impl ParseDefault for $args {
            fn parse_default(args: &[&str]) -> Result<Self, Error> {
                #[derive(Parser)]
                struct Wrapper {
                    #[command(flatten)]
                    inner: $args,
                }
                let argv = std::iter::once("ringmesh-sim").chain(args.iter().copied());
                Ok(Wrapper::try_parse_from(argv)?.inner)
            }
        }
    };
}

parse_default!(FloodArgs);
parse_default!(LivenessArgs);
parse_default!(ChordArgs);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => default_run(),
        Some(Cmd::Flood(args)) => flood(args),
        Some(Cmd::Liveness(args)) => liveness(args),
        Some(Cmd::Chord(args)) => chord(args),
        Some(Cmd::Run(args)) => Ok(run_script(args)),
        Some(Cmd::Demo(args)) => Ok(demo(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringmesh-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_replay_line_parses_back_to_the_same_run() {
        let cli = Cli::try_parse_from([
            "ringmesh-sim",
            "liveness",
            "--seed",
            "7",
            "--nodes",
            "300",
            "--kill",
            "2",
            "--preset",
            "wan",
            "--partition",
            "--json",
        ])
        .expect("parses");
        let Some(Cmd::Liveness(args)) = cli.command else {
            panic!("not liveness");
        };
        let replay = args.replay();
        assert_eq!(
            replay,
            "ringmesh-sim liveness --seed 7 --nodes 300 --crash 5 --kill 2 --degree 8 \
             --preset wan --partition --latency-ms 20 --jitter-ms 5"
        );
        let again = Cli::try_parse_from(replay.split(' ')).expect("replay parses");
        let Some(Cmd::Liveness(again)) = again.command else {
            panic!("not liveness");
        };
        assert_eq!(
            format!("{:?}", again.params()),
            format!("{:?}", args.params())
        );

        let flood =
            FloodArgs::parse_default(&["--topology", "organic", "--crash", "3"]).expect("parses");
        let replay = flood.replay();
        let again = Cli::try_parse_from(replay.split(' ')).expect("replay parses");
        let Some(Cmd::Flood(again)) = again.command else {
            panic!("not flood");
        };
        assert_eq!(
            format!("{:?}", again.params()),
            format!("{:?}", flood.params())
        );

        let chord = ChordArgs::parse_default(&["--nodes", "300", "--fail-fraction", "0.25"])
            .expect("parses");
        let replay = chord.replay();
        assert_eq!(
            replay,
            "ringmesh-sim chord --seed 1 --nodes 300 --r 8 --lookups 10000 --fail-fraction 0.25 \
             --churn 0 --keys 0"
        );
        let again = Cli::try_parse_from(replay.split(' ')).expect("replay parses");
        let Some(Cmd::Chord(again)) = again.command else {
            panic!("not chord");
        };
        assert_eq!(again.params(), chord.params());
    }
}
