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

/// A progress callback for a large run: an indicatif bar on stderr when
/// stderr is a terminal, else a plain line on stderr at each new phase and
/// at most every 30 s (a run under `nohup` or a job
/// runner still says where it is); nothing for a small run. The bar goes
/// away when this is dropped.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: Option<std::cell::RefCell<Lines>>,
}

/// How often a run without a terminal prints where it is.
const PROGRESS_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The plain progress lines' state: when the run began, when the last
/// line went out, and its phase.
struct Lines {
    start: std::time::Instant,
    last: std::time::Instant,
    phase: String,
}

impl Progress {
    /// A bar (or plain lines) for a run of `nodes` nodes; none for a
    /// small run.
    pub fn new(nodes: u32) -> Self {
        let large = nodes >= PROGRESS_BAR_NODES;
        let terminal = std::io::stderr().is_terminal();
        let bar = (large && terminal).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{elapsed:>4} {msg:<12} [{wide_bar}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        let lines = (large && !terminal).then(|| {
            let now = std::time::Instant::now();
            std::cell::RefCell::new(Lines {
                start: now,
                last: now,
                phase: String::new(),
            })
        });
        Progress { bar, lines }
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
        if let Some(lines) = &self.lines {
            let mut lines = lines.borrow_mut();
            let now = std::time::Instant::now();
            if lines.phase != phase || now - lines.last >= PROGRESS_LINE_EVERY {
                eprintln!(
                    "ringmesh-sim: {phase} {done}/{total} ({} s)",
                    (now - lines.start).as_secs()
                );
                lines.last = now;
                phase.clone_into(&mut lines.phase);
            }
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
