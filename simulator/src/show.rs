//! How the command line shows a run: a progress bar while a large one
//! runs, then its report as a human summary or as exactly one JSON object
//! on stdout, an optional figure, and, for a run that could not be made or
//! broke an invariant, a failure line and the command that replays it on
//! stderr.

use std::error::Error;
use std::fmt;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Below this many nodes a run is over before a progress bar helps.
const PROGRESS_BAR_NODES: u32 = 20_000;

/// A report that has a figure (`--plot FILE.svg`); `plot.rs` draws them.
pub trait Figure {
    /// Writes the figure to the SVG file `path`.
    fn draw(&self, path: &Path) -> Result<(), Box<dyn Error>>;
}

/// What every report the command line prints offers: its JSON form
/// (`Serialize`: exactly the object `--json` prints), its human summary
/// (`Display`), and its verdict.
pub trait Report: Serialize + fmt::Display {
    /// Whether the run held every invariant it checks.
    fn ok(&self) -> bool;

    /// What the failure line on stderr says of a run that is not
    /// [`Report::ok`].
    fn failure(&self) -> String;

    /// The exact command that replays the run.
    fn replay(&self) -> &str;
}

/// Prints `report` as one JSON object (`json`) or as its summary, followed
/// in the summary by the path of the figure written to `plot`, if any. A
/// report that is not [`Report::ok`] adds the failure line and the replay
/// command on stderr and exits non-zero.
pub fn print<R: Report>(
    report: &R,
    json: bool,
    plot: Option<&Path>,
) -> Result<ExitCode, Box<dyn Error>> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{report}");
        if let Some(path) = plot {
            println!("  plot: {}", path.display());
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        failed(&report.failure(), report.replay())
    })
}

/// What the flood, liveness and chord subcommands do with their run: a
/// run that could not be made (`Err`) fails with the replay line; else the
/// figure is drawn to `plot` and the report printed ([`print()`]).
pub fn scenario<R: Report + Figure>(
    name: &str,
    report: Result<R, Box<dyn Error>>,
    replay: &str,
    json: bool,
    plot: Option<&Path>,
) -> Result<ExitCode, Box<dyn Error>> {
    let report = match report {
        Ok(report) => report,
        Err(e) => return Ok(failed(&format!("{name} failed: {e}"), replay)),
    };
    if let Some(path) = plot {
        report
            .draw(path)
            .map_err(|e| format!("writing the plot {}: {e}", path.display()))?;
    }
    print(&report, json, plot)
}

/// Prints the failure line `what` and the replay command on stderr.
pub fn failed(what: &str, replay: &str) -> ExitCode {
    eprintln!("ringmesh-sim: {what}");
    eprintln!("replay: {replay}");
    ExitCode::FAILURE
}

/// A progress callback: an indicatif bar on stderr when stderr is a
/// terminal and the run is large, else nothing. The bar goes away when
/// this is dropped.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for a run of `nodes` nodes (none for a small run).
    pub fn new(nodes: u32) -> Self {
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

    /// The run is in `phase`, `done` of `total`.
    pub fn update(&self, phase: &str, done: u64, total: u64) {
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
