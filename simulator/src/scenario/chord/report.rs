//! The chord scenario's report.

use std::fmt;

use serde::Serialize;

use crate::show::Report;

/// What a chord run measured. Field names are the JSON names, and
/// `"scenario": "chord"` leads the JSON object; times are virtual
/// milliseconds unless they say `wall`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "scenario", rename = "chord")]
pub struct ChordReport {
    /// Nodes in the ring after the build.
    pub nodes: u32,
    /// Successor list length.
    pub r: usize,
    /// Holders per key (`dht.replicas`).
    pub dht_replicas: usize,
    /// Lookups issued.
    pub lookups: u64,
    /// Lookups that named the true owner (transitional ones included).
    pub lookup_correct: u64,
    /// Of those, lookups that named the owner at issue, or the owner the
    /// ring routes to (its first ring member at or after the key, at issue
    /// or at completion), but not the first live member at completion
    /// (churn only).
    pub lookup_correct_transitional: u64,
    /// Lookups that completed with a wrong owner (must be 0).
    pub lookup_incorrect: u64,
    /// Lookups that ended in `LookupFailed`.
    pub lookup_failed: u64,
    /// Lookups whose issuer crashed before they ended (churn).
    pub lookup_lost: u64,
    /// Lookups that never ended (must be 0: every lookup has a deadline).
    pub lookup_unanswered: u64,
    /// `lookup_correct / (lookups − lookup_lost)`.
    pub lookup_success_rate: f64,
    /// Mean path length of the completed lookups (nodes that answered).
    pub mean_hops: f64,
    /// Median path length (nearest rank).
    pub p50_hops: u32,
    /// 99th percentile path length (nearest rank).
    pub p99_hops: u32,
    /// Longest path.
    pub max_hops: u32,
    /// ½·log2 N, the mean path Stoica et al. §6.3 predict with full finger
    /// tables.
    pub expected_hops: f64,
    /// Completed lookups by path length: `hops_histogram[h]` took `h` hops.
    pub hops_histogram: Vec<u64>,
    /// Mean time from issue to completion of the completed lookups.
    pub lookup_ms_mean: f64,
    /// Dials the live members made during the lookup phase (from the
    /// first lookup issued to the last answered): a stable ring's lookups
    /// travel over kept connections and dial nothing.
    pub lookup_dials: u64,
    /// Completed lookups of two hops or more whose last hop (the member
    /// before the key, which answers) held a session to the asker when the
    /// answer arrived: those that could have answered it straight, without
    /// a dial (spec/chord.md §7.4).
    pub lookup_last_hop_connected: u64,
    /// Recursive lookups that fell back to asking hop by hop
    /// (`ChordStats::route_fallbacks`, summed over the live members at the
    /// end of the lookup phase).
    pub lookup_fallbacks: u64,
    /// Invariant checks made.
    pub invariant_checks: u64,
    /// Checks, once the ring had formed, where Zave's invariant or a
    /// property it implies failed (must be 0).
    pub invariant_violations: u64,
    /// Checks that failed before the ring had formed (informational: \[Z\]
    /// makes no claim then, and a ring of `≤ r` members is never safe).
    pub forming_violations: u64,
    /// Checks that failed after a failure outside Zave's precondition
    /// (informational: the contract was broken on purpose).
    pub violations_outside_constraint: u64,
    /// The first few violations, described.
    pub violation_examples: Vec<String>,
    /// When the ring first had `r + 1` members and was ideal.
    pub formed_ms: Option<f64>,
    /// From the start until every node had joined and the ring was ideal.
    pub build_ms: f64,
    /// Joins retried through another member (a failed or stuck join).
    pub join_retries: u64,
    /// Whether the ring was ideal after the build.
    pub ideal_after_build: bool,
    /// Time spent letting the fingers settle after the build.
    pub fingers_ms: f64,
    /// Fraction of the sampled nodes whose fingers were exactly the ideal
    /// ones when the lookups began.
    pub fingers_ideal_fraction: f64,
    /// Mean number of distinct fingers of the sampled nodes.
    pub mean_fingers: f64,
    /// Members crashed at once by `--fail-fraction`.
    pub failed: u32,
    /// Mass-failure draws rejected because they broke Zave's precondition.
    pub fail_redraws: u32,
    /// Whether every failure stayed within Zave's precondition.
    pub failures_within_constraint: bool,
    /// From the mass failure until the ring was ideal again (`None` without
    /// a mass failure, or if it never was within the cap).
    pub repair_ms: Option<f64>,
    /// How long the network was split in two halves (`--partition-for`).
    pub partitioned_ms: Option<f64>,
    /// Whether the last check before the heal found one ideal ring (it
    /// cannot: two rings live; informational).
    pub ideal_during_partition: bool,
    /// From the heal until the ring was one ideal ring again (`None`
    /// without a partition, or if it never was within the cap).
    pub heal_ms: Option<f64>,
    /// Nodes that joined during the lookups.
    pub churn_joins: u64,
    /// Members that crashed during the lookups.
    pub churn_failures: u64,
    /// Churn failures skipped: they would have broken Zave's precondition
    /// or left fewer than `r + 1` members.
    pub churn_failures_skipped: u64,
    /// Churn joins still not done at the end.
    pub churn_joins_unfinished: u64,
    /// `ChordEvent::Orphaned` events.
    pub orphaned: u64,
    /// Keys stored.
    pub keys: u32,
    /// Puts acknowledged by every holder.
    pub puts_acked: u64,
    /// Puts that ended in `DhtEvent::Failed` (must be 0: they run on an ideal ring).
    pub puts_failed: u64,
    /// Keys whose every holder was in the mass failure, or, under churn,
    /// that no live member near their place held any more after a failure
    /// (holders failing one after another faster than the table's repair;
    /// the failure constraint allows up to `r - 1` in a row, the table
    /// keeps `dht.replicas` copies).
    pub keys_at_risk: u64,
    /// Keys not at risk whose final get did not return their value (must
    /// be 0).
    pub keys_lost: u64,
    /// Keys not at risk held (as a live value) by fewer than `dht.replicas`
    /// of their true holders at the end.
    pub under_replicated: u64,
    /// The first few problems with keys and lookups, described.
    pub examples: Vec<String>,
    /// The first few failed lookups, described (informational).
    pub lookup_failure_examples: Vec<String>,
    /// Live ring members at the end.
    pub final_members: usize,
    /// Whether the ring was ideal at the end.
    pub ideal: bool,
    /// Virtual time of the whole run.
    pub virtual_ms: f64,
    /// Frames the live members sent over the run (pings and pongs
    /// included).
    pub frames_sent: u64,
    /// Pings the live members sent over the run (each answered by a pong).
    pub pings_sent: u64,
    /// Fix-fingers lookups the live members started over the run
    /// (`ChordStats::finger_lookups`): one per tick, fewer as a stable
    /// ring backs off (spec/chord.md §7.3).
    pub finger_lookups: u64,
    /// Of `pings_sent`, the probes' first pings: a next hop left a lookup
    /// unacknowledged or unanswered with nothing heard from it since
    /// (`LivenessStats::probes`).
    pub probes: u64,
    /// Recursive lookups the live members forwarded again after a next
    /// hop failed (`ChordStats::route_retries`).
    pub route_retries: u64,
    /// Of `route_retries`, by why the next hop failed: silent past its
    /// deadline, dead, refused by a local cap, connection lost.
    pub route_retries_by: [u64; 4],
    /// Recursive lookups (the live members' own and those they forwarded)
    /// whose next hop did not acknowledge them in time, so was found
    /// silent at once (`ChordStats::route_acks_missed`).
    pub route_acks_missed: u64,
    /// Peers' recursive lookups the live members refused at once (their
    /// forwarding bounds were reached; `ChordStats::forwards_refused`).
    pub forwards_refused: u64,
    /// Peers each live member is connected to at the end, on average.
    pub mean_links: f64,
    /// Simulator events processed (whole run).
    pub events: u64,
    /// Of those, node deadlines the node had withdrawn before they came
    /// due (a request answered, say): the engine moved the wake without
    /// calling the node.
    pub timers_withdrawn: u64,
    /// Where the run's time and events went, phase by phase, in order.
    pub phases: Vec<Phase>,
    /// Wall-clock time of the whole run.
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
}

/// One phase of a run: what it cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phase {
    /// `build`, `fingers`, `put`, `failure`, `partition`, `lookups`,
    /// `quiet` or `get`.
    pub name: &'static str,
    /// Virtual time it covered.
    pub virtual_ms: f64,
    /// Simulator events it processed.
    pub events: u64,
    /// Wall-clock time it took.
    pub wall_ms: f64,
}

impl ChordReport {
    /// The report with its verdict: the ring formed, every lookup that
    /// completed was right, no invariant broke within the contract, the
    /// ring ended ideal, every put was acknowledged and no key was lost.
    pub(super) fn judged(mut self) -> Self {
        self.ok = self.formed_ms.is_some()
            && self.lookup_incorrect == 0
            && self.lookup_unanswered == 0
            && self.invariant_violations == 0
            && self.ideal
            && self.puts_failed == 0
            && self.keys_lost == 0;
        self
    }

    /// What broke, for the failure line of a run that is not
    /// [`ChordReport::ok`], led by a note when a failure broke the contract.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.failures_within_constraint {
            out.push(format!(
                "(the failure of {} members broke Zave's precondition in every draw: \
                 the ring is outside its contract)",
                self.failed
            ));
        }
        if self.formed_ms.is_none() {
            out.push("the ring never formed (r + 1 members, ideal)".to_owned());
        }
        if self.lookup_incorrect > 0 {
            out.push(format!(
                "{} lookups named a wrong owner",
                self.lookup_incorrect
            ));
        }
        if self.lookup_unanswered > 0 {
            out.push(format!("{} lookups never ended", self.lookup_unanswered));
        }
        if self.invariant_violations > 0 {
            out.push(format!(
                "{} of {} invariant checks failed",
                self.invariant_violations, self.invariant_checks
            ));
        }
        if !self.ideal {
            out.push("the ring was not ideal at the end".to_owned());
        }
        if self.puts_failed > 0 {
            out.push(format!("{} puts failed", self.puts_failed));
        }
        if self.keys_lost > 0 {
            out.push(format!("{} keys lost", self.keys_lost));
        }
        out
    }
}

impl Report for ChordReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn failure(&self) -> String {
        format!("chord broke an invariant: {}", self.problems().join("; "))
    }

    fn replay(&self) -> &str {
        &self.replay
    }
}

impl fmt::Display for ChordReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("{v:.0} ms"));
        write!(
            f,
            "chord: {} nodes, r = {}, seed {}\n  \
             built in {:.0} ms virtual (formed at {}, {} join retries), ideal after the build: {}\n  \
             fingers: {:.0}% of a sample ideal, {:.1} each, after {:.0} ms\n",
            self.nodes,
            self.r,
            self.seed,
            self.build_ms,
            ms(self.formed_ms),
            self.join_retries,
            self.ideal_after_build,
            self.fingers_ideal_fraction * 100.0,
            self.mean_fingers,
            self.fingers_ms,
        )?;
        if self.failed > 0 {
            writeln!(
                f,
                "  failure: {} crashed at once ({} redraws, within the contract: {}), \
                 ideal again after {}",
                self.failed,
                self.fail_redraws,
                self.failures_within_constraint,
                ms(self.repair_ms),
            )?;
        }
        if let Some(d) = self.partitioned_ms {
            writeln!(
                f,
                "  partition: two halves for {d:.0} ms, then healed; one ideal ring again after {}",
                ms(self.heal_ms),
            )?;
        }
        if self.churn_joins + self.churn_failures + self.churn_failures_skipped > 0 {
            writeln!(
                f,
                "  churn: {} joins ({} unfinished), {} failures, {} failures skipped",
                self.churn_joins,
                self.churn_joins_unfinished,
                self.churn_failures,
                self.churn_failures_skipped,
            )?;
        }
        write!(
            f,
            "  lookups {}: {} correct ({} transitional), {} incorrect, {} failed, {} lost \
             (success {:.4})\n  \
             hops mean {:.2} (½·log2 N = {:.2}), p50 {}, p99 {}, max {}; {:.0} ms mean; \
             {} dials, {} fallbacks during lookups; {} answered by a last hop connected to the asker\n  \
             invariants: {} checks, {} violations ({} while forming, {} outside the contract)\n",
            self.lookups,
            self.lookup_correct,
            self.lookup_correct_transitional,
            self.lookup_incorrect,
            self.lookup_failed,
            self.lookup_lost,
            self.lookup_success_rate,
            self.mean_hops,
            self.expected_hops,
            self.p50_hops,
            self.p99_hops,
            self.max_hops,
            self.lookup_ms_mean,
            self.lookup_dials,
            self.lookup_fallbacks,
            self.lookup_last_hop_connected,
            self.invariant_checks,
            self.invariant_violations,
            self.forming_violations,
            self.violations_outside_constraint,
        )?;
        if self.keys > 0 {
            writeln!(
                f,
                "  keys {}: {} acked, {} puts failed, {} at risk, {} lost, {} under-replicated",
                self.keys,
                self.puts_acked,
                self.puts_failed,
                self.keys_at_risk,
                self.keys_lost,
                self.under_replicated,
            )?;
        }
        write!(
            f,
            "  ideal at the end: {} ({} members, {} orphaned events)\n  \
             {:.1} links per member, {} frames sent ({} pings, {} probes), {} finger lookups, \
             {} route retries \
             (timed out {}, dead {}, refused {}, lost {}), {} next hops found silent by a \
             missing ack, {} forwards refused\n  \
             {} events in {:.0} ms wall ({:.0} ms virtual), peak RSS {:.0} MiB\n",
            self.ideal,
            self.final_members,
            self.orphaned,
            self.mean_links,
            self.frames_sent,
            self.pings_sent,
            self.probes,
            self.finger_lookups,
            self.route_retries,
            self.route_retries_by[0],
            self.route_retries_by[1],
            self.route_retries_by[2],
            self.route_retries_by[3],
            self.route_acks_missed,
            self.forwards_refused,
            self.events,
            self.wall_ms,
            self.virtual_ms,
            self.peak_rss_mib,
        )?;
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|p| {
                format!(
                    "{} {:.0} ms wall, {} events, {:.0} ms virtual",
                    p.name, p.wall_ms, p.events, p.virtual_ms
                )
            })
            .collect();
        writeln!(f, "  phases: {}", phases.join("; "))?;
        writeln!(f, "  trace {}", self.trace_hash)?;
        for line in self
            .violation_examples
            .iter()
            .chain(&self.examples)
            .chain(&self.lookup_failure_examples)
        {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// The nearest-rank percentile `q` of the values counted in `histogram`
/// (`histogram[v]` values equal to `v`).
pub(super) fn percentile(histogram: &[u64], q: f64) -> u32 {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (v, &c) in histogram.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return v as u32;
        }
    }
    histogram.len().saturating_sub(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_reads_the_histogram_by_nearest_rank() {
        let histogram = [0, 10, 80, 9, 1];
        assert_eq!(percentile(&histogram, 0.5), 2);
        assert_eq!(percentile(&histogram, 0.99), 3);
        assert_eq!(percentile(&histogram, 1.0), 4);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
