//! The liveness scenario's report.

use std::fmt;

use serde::Serialize;

#[cfg(doc)]
use ringmesh::Config;

use super::Preset;
use crate::show::Report;

/// What a liveness run measured. Field names are the JSON names, and
/// `"scenario": "liveness"` leads the JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "scenario", rename = "liveness")]
pub struct LivenessReport {
    /// Nodes in the network.
    pub nodes: u32,
    /// The timing profile.
    pub preset: Preset,
    /// Mean degree of the overlay (in the summary, not the JSON).
    #[serde(skip)]
    pub degree: u32,
    /// Nodes crashed silently.
    pub crashed: u32,
    /// Crashed nodes that every neighbour they had at the crash declared
    /// down. (A crashed node whose neighbours all stopped before deciding
    /// counts as detected: nobody alive is left to be wrong about it.)
    pub detected: u32,
    /// Nodes killed.
    pub killed: u32,
    /// Killed nodes that every neighbour declared down.
    pub kills_detected: u32,
    /// Mean time from a crash until its last neighbour declared the node
    /// down, virtual milliseconds.
    pub detection_ms_mean: f64,
    /// The 99th percentile (nearest rank) of the same.
    pub detection_ms_p99: f64,
    /// The longest of the same.
    pub detection_ms_max: f64,
    /// The earliest any single neighbour declared a crashed node down,
    /// milliseconds after the crash.
    pub neighbour_detection_ms_min: f64,
    /// The bound the configuration promises: [`Config::detection_time`]
    /// after the last frame from the crashed node arrived, so at most one
    /// trip (`latency + jitter`) more after the crash.
    pub bound_ms: f64,
    /// The earliest a neighbour can decide, from the same formula:
    /// `(dead_after_misses − 1) × ping_interval + ping_timeout −
    /// (latency + jitter)` (a ping that left up to one trip before the
    /// crash was already doomed).
    pub floor_ms: f64,
    /// The longest a killed node's last neighbour took to declare it down,
    /// milliseconds (resets arrive after one latency plus jitter).
    pub kill_detection_ms_max: f64,
    /// `PeersEvent::Down` events about a node that was up, over a connection no
    /// fault touched (must be 0).
    pub false_positives: u64,
    /// The first few false positives, described (empty when there are
    /// none).
    pub false_positive_examples: Vec<String>,
    /// `LivenessEvent::Suspect` events about such peers (informative: a suspect that
    /// answers again is no error).
    pub false_suspicions: u64,
    /// `PeersEvent::Down` events across the partition while it lasted and for a
    /// detection time after the heal (expected when partitioned).
    pub partition_downs: u64,
    /// Simulator events processed (whole run).
    pub events: u64,
    /// Wall-clock time of the whole run, milliseconds.
    pub wall_ms: f64,
    /// Peak resident memory of the process, MiB (Linux; 0 elsewhere).
    pub peak_rss_mib: f64,
    /// The run's trace hash.
    pub trace_hash: String,
    /// The seed.
    pub seed: u64,
    /// Whether the run held its invariants ([`Report::ok`]).
    pub(super) ok: bool,
    /// The command that replays this run.
    pub replay: String,
    /// Per crashed node, the time until its last neighbour declared it
    /// down, milliseconds, ascending.
    pub detection_times_ms: Vec<f64>,
    /// Per (crashed node, neighbour), the time until that neighbour
    /// declared it down, milliseconds, ascending (the CDF's points).
    #[serde(skip)]
    pub neighbour_detection_times_ms: Vec<f64>,
}

impl LivenessReport {
    /// The report with its verdict: every failed node detected by every
    /// neighbour, no false positive.
    pub(super) fn judged(mut self) -> Self {
        self.ok = self.detected == self.crashed
            && self.kills_detected == self.killed
            && self.false_positives == 0;
        self
    }
}

impl Report for LivenessReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn failure(&self) -> String {
        format!(
            "liveness broke an invariant: {}/{} crashes and {}/{} kills detected, {} false \
             positives",
            self.detected, self.crashed, self.kills_detected, self.killed, self.false_positives
        )
    }

    fn replay(&self) -> &str {
        &self.replay
    }
}

impl fmt::Display for LivenessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "liveness: {} nodes ({} timings, degree {}), seed {}\n  \
             crashed {}: detected {}, mean {:.0} ms, p99 {:.0} ms, max {:.0} ms \
             (bound {:.0} ms, earliest possible {:.0} ms, earliest seen {:.0} ms)\n",
            self.nodes,
            self.preset.name(),
            self.degree,
            self.seed,
            self.crashed,
            self.detected,
            self.detection_ms_mean,
            self.detection_ms_p99,
            self.detection_ms_max,
            self.bound_ms,
            self.floor_ms,
            self.neighbour_detection_ms_min,
        )?;
        if self.killed > 0 {
            writeln!(
                f,
                "  killed {}: detected {}, all within {:.1} ms (connection resets)",
                self.killed, self.kills_detected, self.kill_detection_ms_max
            )?;
        }
        if self.partition_downs > 0 {
            writeln!(
                f,
                "  partition: {} peers across it declared down (expected)",
                self.partition_downs
            )?;
        }
        write!(
            f,
            "  false positives {} (false suspicions {})\n  \
             {} events in {:.0} ms wall, peak RSS {:.0} MiB\n  \
             trace {}\n",
            self.false_positives,
            self.false_suspicions,
            self.events,
            self.wall_ms,
            self.peak_rss_mib,
            self.trace_hash,
        )?;
        for example in &self.false_positive_examples {
            writeln!(f, "  false positive: {example}")?;
        }
        Ok(())
    }
}
