//! The report of a scenario file's run: one line per check (the summary),
//! and the same with the state of every node as one JSON object.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::chord_oracle::InvariantReport;
use crate::engine::{NodeIdx, SimStats};
use crate::show::Report;

/// The outcome of a scenario file. Field names are the JSON names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptReport {
    /// The seed the run used.
    pub seed: u64,
    /// The run's trace hash.
    pub trace_hash: String,
    /// Whether every check held.
    pub passed: bool,
    /// Every check and failed action, in the order they were judged, then
    /// the checks every run ends with.
    pub checks: Vec<Verdict>,
    /// The events the nodes emitted.
    pub events: EventCounts,
    /// Every node at the end, by index.
    pub nodes: Vec<NodeReport>,
    /// Virtual time at the end, milliseconds.
    pub virtual_ms: u64,
    /// The engine's counters.
    pub sim: SimStats,
    /// The exact command that replays this run.
    pub replay: String,
    /// With `[chord]`: the ring watch and the ring at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingReport>,
}

/// One line of the report: a check, an outcome of a ring action, or an
/// action a node refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The step it judges (its number in the file); `None` for the checks
    /// every run ends with.
    pub step: Option<usize>,
    /// The step's label.
    pub label: Option<String>,
    /// When it was judged, virtual milliseconds.
    pub at_ms: u64,
    /// The check's kind, the action's name, or `action` for a refusal.
    pub kind: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// The events of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    /// Events emitted by all nodes.
    pub total: usize,
    /// Events by kind (`peer_up`, `message`, …; `other` for the rest).
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// A node at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    /// Its index.
    pub index: NodeIdx,
    /// Its short id.
    pub id: String,
    /// `up`, `crashed` or `killed`.
    pub state: &'static str,
    /// Which run of its process: 0 until its first restart.
    pub incarnation: u32,
    /// Peers up (`None` while down).
    pub peers: Option<usize>,
    /// Broadcasts it delivered in this incarnation (`None` while down).
    pub broadcasts_delivered: Option<u64>,
    /// With `[chord]`, while up: its ring state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chord: Option<ChordNodeReport>,
}

/// A node's ring state at the end of a run; pointers are node indices
/// (`None` for an id no node has).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChordNodeReport {
    /// `Off`, `Out` or `Member`.
    pub role: String,
    /// Its successor list.
    pub successors: Vec<Option<NodeIdx>>,
    /// Its predecessor, if it has one.
    pub predecessor: Option<Option<NodeIdx>>,
    /// Dead pointers it flushed.
    pub flushes: u64,
    /// Lookups it ran.
    pub lookups: u64,
    /// Of those, lookups that failed.
    pub lookups_failed: u64,
}

/// The ring watch of a `[chord]` run (spec/chord.md §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RingReport {
    /// The successor list length.
    pub r: usize,
    /// How often the watch looked, milliseconds.
    pub check_every_ms: u64,
    /// Checks made while armed.
    pub checks: u64,
    /// Of those, checks that found a violation.
    pub failing_checks: u64,
    /// The first violation, described.
    pub first_violation: Option<String>,
    /// When the watch was armed (again), milliseconds.
    pub armed_at_ms: Vec<u64>,
    /// Failures outside the constraint, and members lost while forming.
    pub notes: Vec<String>,
    /// `ChordEvent::Orphaned` events.
    pub orphaned: usize,
    /// The checker's report on the ring at the end.
    pub at_end: InvariantReport,
}

impl Report for ScriptReport {
    fn ok(&self) -> bool {
        self.passed
    }

    fn failure(&self) -> String {
        "a scenario check failed".to_owned()
    }

    fn replay(&self) -> &str {
        &self.replay
    }
}

/// One line per check: `✓` or `✗`, where and when, the kind, what was seen.
impl fmt::Display for ScriptReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.checks {
            let mark = if v.passed { '✓' } else { '✗' };
            let place = match (v.step, &v.label) {
                (Some(i), Some(label)) => format!("#{i} \"{label}\""),
                (Some(i), None) => format!("#{i}"),
                (None, _) => "end".into(),
            };
            writeln!(
                f,
                "{mark} {place} @ {} ms {}: {}",
                v.at_ms, v.kind, v.detail
            )?;
        }
        Ok(())
    }
}
