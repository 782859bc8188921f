//! `ringmesh-sim`: run ringmesh networks in virtual time.
//!
//! - `ringmesh-sim` alone: a 10,000-node flood and a 2,000-node liveness run
//!   with 20 crashes, in a few seconds.
//! - `ringmesh-sim flood|liveness|chord|sync|blobs [options]`: one scenario, a short
//!   summary or one JSON object (`--json`), an SVG figure (`--plot FILE.svg`).
//! - `ringmesh-sim run FILE`: a scenario file.
//! - `ringmesh-sim demo`: the narrated demo.
//!
//! A run that breaks an invariant exits non-zero and prints, on stderr, the
//! command that replays it.

use std::process::ExitCode;

mod args;

use clap::Parser;
use ringmesh_sim::demo;
use ringmesh_sim::scenario::{blobs, chord, flood, liveness, nat, script, sync};
use ringmesh_sim::show::{self, Progress, Report};

use args::{Cli, Cmd, DemoArgs, Output, ParseDefault, RunArgs};

/// The binary's allocator: see the simulator section of benches/README.md.
/// The `system-alloc` feature leaves the system's, for heap profilers that
/// hook `malloc`.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: the 16th entry of `mi_option_e` in
/// both `mimalloc.h` headers libmimalloc-sys 0.1.49 vendors (v2 and v3),
/// which names the entries on either side (14, 16) but not this one.
#[cfg(not(feature = "system-alloc"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to give freed pages back to the kernel (its
/// `purge_delay` option at -1), unless `MIMALLOC_PURGE_DELAY` is set.
///
/// By default mimalloc purges (`madvise`s away) pages left free for a
/// while (`purge_delay`, in milliseconds), and the simulator, which frees and reallocates the same sizes all run long
/// (frames, events in flight), then faults them in again: the kernel zeroes
/// every such page (`clear_page_erms`, 19 % of a 100,000-node flood's
/// samples). Keeping them leaves the peak RSS where it was (a freed page
/// is reused, not added to) and cut the system time of that run by two
/// thirds (benches/README.md, "A faster engine"). `purge_delay` is read at
/// each purge, so setting it at the start of `main` takes effect.
#[cfg(not(feature = "system-alloc"))]
#[allow(unsafe_code)]
fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's option words (a valid option
        // number for the linked v3), before this program starts a thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

type Error = Box<dyn std::error::Error>;

/// Runs a flood, liveness or chord scenario with a progress bar, then shows
/// its report (see [`show::scenario`]).
fn scenario<R: Report + show::Figure>(
    name: &str,
    nodes: u32,
    replay: &str,
    output: &Output,
    run: impl FnOnce(&mut dyn FnMut(&str, u64, u64)) -> Result<R, Error>,
) -> Result<ExitCode, Error> {
    let progress = Progress::new(nodes);
    let report = run(&mut |phase, done, total| progress.update(phase, done, total));
    drop(progress);
    show::scenario(name, report, replay, output.json, output.plot.as_deref())
}

fn run_script(args: &RunArgs) -> Result<ExitCode, Error> {
    match script::run_file(&args.file, args.seed) {
        Ok(report) => show::print(&report, args.json, None),
        Err(e) => {
            let mut replay = format!("ringmesh-sim run {}", args.file.display());
            if let Some(seed) = args.seed {
                replay += &format!(" --seed {seed}");
            }
            Ok(show::failed(
                &format!("{}: {e}", args.file.display()),
                &replay,
            ))
        }
    }
}

fn demo(args: &DemoArgs) -> Result<ExitCode, Error> {
    let config = demo::DemoConfig {
        nodes: args.nodes,
        seed: args.seed,
        ..demo::DemoConfig::default()
    };
    match demo::run(&config) {
        Ok(report) => show::print(&report, args.json, None),
        Err(e) => Ok(show::failed(&format!("demo failed: {e}"), &config.replay())),
    }
}

/// `flood --compare-nets`: the same flood under the uniform model, the geo
/// model, and geo with upload limits; a table and one figure.
fn compare_nets(args: &args::FloodArgs) -> Result<ExitCode, Error> {
    use ringmesh_sim::engine::{LatencyModel, Upload};
    let base = args.params();
    let upload = args.upload_bandwidth.unwrap_or(Upload::fixed(1_250_000));
    let runs = [
        (LatencyModel::Uniform, None),
        (LatencyModel::geo(), None),
        (LatencyModel::geo(), Some(upload)),
    ];
    let mut reports = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for (links, upload) in runs {
        let mut params = base.clone();
        params.net.links = links;
        params.net.upload = upload;
        let progress = Progress::new(params.nodes);
        let report = flood::run(&params, |phase, done, total| {
            progress.update(phase, done, total)
        });
        drop(progress);
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                return Ok(show::failed(
                    &format!("flood failed: {e}"),
                    &params.replay(),
                ));
            }
        };
        print!("{report}");
        println!("  replay: {}\n", params.replay());
        if !report.ok() {
            code = show::failed(&report.failure(), report.replay());
        }
        reports.push(report);
    }
    println!("network model                              50%        90%        99%       100%");
    for r in &reports {
        println!(
            "{:<40} {:>7.0} ms {:>7.0} ms {:>7.0} ms {:>7.0} ms",
            r.net, r.p50_ms, r.p90_ms, r.p99_ms, r.last_delivery_ms
        );
    }
    if let Some(path) = &args.output.plot {
        ringmesh_sim::plot::delivery_curves(path, &reports)?;
        println!("plot: {}", path.display());
    }
    Ok(code)
}

/// One subcommand.
fn dispatch(command: &Cmd) -> Result<ExitCode, Error> {
    match command {
        Cmd::Flood(args) if args.compare_nets => compare_nets(args),
        Cmd::Flood(args) => {
            let params = args.params();
            scenario(
                "flood",
                args.nodes,
                &params.replay(),
                &args.output,
                |progress| flood::run(&params, progress),
            )
        }
        Cmd::Liveness(args) => {
            let params = args.params();
            scenario(
                "liveness",
                args.nodes,
                &params.replay(),
                &args.output,
                |progress| liveness::run(&params, progress),
            )
        }
        Cmd::Chord(args) => {
            let params = args.params();
            scenario(
                "chord",
                args.nodes,
                &params.replay(),
                &args.output,
                |progress| chord::run(&params, progress),
            )
        }
        Cmd::Sync(args) => {
            let params = args.params();
            scenario(
                "sync",
                args.nodes,
                &params.replay(),
                &args.output,
                |progress| sync::run(&params, progress),
            )
        }
        Cmd::Blobs(args) => {
            let params = args.params();
            scenario(
                "blobs",
                args.nodes,
                &params.replay(),
                &args.output,
                |progress| blobs::run(&params, progress),
            )
        }
        Cmd::Nat(args) => {
            let params = args.params();
            let progress = Progress::new(args.nodes);
            let report = nat::run(&params, &mut |phase, done, total| {
                progress.update(phase, done, total)
            });
            drop(progress);
            match report {
                Ok(report) => show::print(&report, args.json, None),
                Err(e) => Ok(show::failed(&format!("nat failed: {e}"), &params.replay())),
            }
        }
        Cmd::Run(args) => run_script(args),
        Cmd::Demo(args) => demo(args),
    }
}

/// The bare command: a flood and a liveness run of a few seconds each.
fn default_run() -> Result<ExitCode, Error> {
    let flood = args::FloodArgs::parse_default(&["--nodes", "10000", "--degree", "8"])?;
    let liveness = args::LivenessArgs::parse_default(&["--nodes", "2000", "--crash", "20"])?;
    let mut code = dispatch(&Cmd::Flood(flood))?;
    println!();
    let liveness_code = dispatch(&Cmd::Liveness(liveness))?;
    if code == ExitCode::SUCCESS {
        code = liveness_code;
    }
    Ok(code)
}

fn main() -> ExitCode {
    #[cfg(not(feature = "system-alloc"))]
    keep_freed_pages();
    let cli = Cli::parse();
    let result = match &cli.command {
        None => default_run(),
        Some(command) => dispatch(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringmesh-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
