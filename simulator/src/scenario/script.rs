//! Scenario files: timed actions and checks in TOML (`ringmesh-sim run`).
//! (Being written; see `simulator/scenarios/`.)

use std::path::Path;

/// The outcome of a scenario file.
#[derive(Debug, Clone)]
pub struct ScriptOutcome {
    /// Whether every check held.
    pub passed: bool,
    /// A short human summary, one line per check.
    pub summary: String,
    /// The same as one JSON object.
    pub json: serde_json::Value,
    /// The exact command that replays this run.
    pub replay: String,
}

/// Runs the scenario file at `path`; `seed` overrides the file's seed.
pub fn run_file(
    path: &Path,
    seed: Option<u64>,
) -> Result<ScriptOutcome, Box<dyn std::error::Error>> {
    let _ = (path, seed);
    Err("scenario files are not implemented yet".into())
}
