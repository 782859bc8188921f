//! The flood scenario: build an overlay, broadcast once, measure how the
//! message spread (delivery ratio, redundancy, hops, time) and how fast the
//! simulator ran.

use std::fmt;
use std::time::Instant as WallClock;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::{
    Config, Duration, Event, Instant, MeshCommand, MeshConfig, MeshEvent, NodeId, PeersConfig,
    Security,
};
use serde::Serialize;

use crate::engine::{LatencyModel, NetModel, NodeIdx, Observer, Sim, SimConfig};
use crate::show::Report;
use crate::topology;

/// How the overlay is built before the broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Every node dials `degree / 2` random others at start (real
    /// handshakes), giving a random graph of mean degree `degree`; nodes do
    /// not dial more on their own.
    Random {
        /// Mean degree.
        degree: u32,
    },
    /// Nodes join one every `join_interval`, each with a bootstrap list of
    /// up to three earlier nodes, and grow to `target_peers` on their own
    /// (bootstrap, peer exchange, maintenance).
    Organic {
        /// Each node's `target_peers`.
        target_peers: u32,
        /// Time between two joins.
        join_interval: Duration,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FloodParams {
    /// Nodes in the network.
    pub nodes: u32,
    /// The simulation seed.
    pub seed: u64,
    /// How the overlay is built.
    pub topology: Topology,
    /// The network model.
    pub net: NetModel,
    /// Session security (plaintext by default: the crypto is benched
    /// separately and would dominate large runs).
    pub security: Security,
    /// Nodes crashed (silently) after the build, before the broadcast.
    pub crash: u32,
    /// Broadcast payload size. The payload is constant bytes, or random
    /// ones (from the seed) under an upload limit, where LZ4 would
    /// otherwise shrink it to nothing on the wire.
    pub payload_len: usize,
    /// `MeshConfig::max_hops` of every node.
    pub max_hops: u8,
}

impl FloodParams {
    /// The command that replays this run (every option spelled out, so a
    /// change of defaults cannot change the replay).
    pub fn replay(&self) -> String {
        let topology = match self.topology {
            Topology::Random { degree } => format!("--topology random --degree {degree}"),
            Topology::Organic {
                target_peers,
                join_interval,
            } => format!(
                "--topology organic --target-peers {target_peers} --join-interval-ms {}",
                join_interval.as_millis()
            ),
        };
        let mut line = format!(
            "ringmesh-sim flood --seed {} --nodes {} {topology} --crash {} --payload {} \
             --latency-ms {} --jitter-ms {}",
            self.seed,
            self.nodes,
            self.crash,
            self.payload_len,
            self.net.latency.as_millis(),
            self.net.jitter.as_millis()
        );
        // Only a richer model is spelled out, so the default run's replay
        // line stays what it was.
        if self.net.links != LatencyModel::Uniform {
            line += &format!(" --latency-model {}", self.net.links.describe());
        }
        if let Some(upload) = self.net.upload {
            line += &format!(" --upload-bandwidth {}", upload.describe());
        }
        line
    }

    /// The network model in a few words, for reports and figure legends.
    pub fn net_description(&self) -> String {
        let mut text = match &self.net.links {
            LatencyModel::Uniform => format!(
                "uniform {} ms + 0..{} ms",
                self.net.latency.as_millis(),
                self.net.jitter.as_millis()
            ),
            other => format!(
                "{} + 0..{} ms",
                other.describe(),
                self.net.jitter.as_millis()
            ),
        };
        if let Some(upload) = self.net.upload {
            let mbit = |b: u64| b as f64 * 8.0 / 1e6;
            if upload.min_bytes_per_sec == upload.max_bytes_per_sec {
                text += &format!(", upload {} Mbit/s", mbit(upload.min_bytes_per_sec));
            } else {
                text += &format!(
                    ", upload {}..{} Mbit/s",
                    mbit(upload.min_bytes_per_sec),
                    mbit(upload.max_bytes_per_sec)
                );
            }
        }
        text
    }
}

impl Default for FloodParams {
    fn default() -> Self {
        FloodParams {
            nodes: 1000,
            seed: 1,
            topology: Topology::Random { degree: 8 },
            net: NetModel::default(),
            security: Security::Plaintext,
            crash: 0,
            payload_len: 64,
            max_hops: 32,
        }
    }
}

/// What a flood run measured. Field names are the JSON names, and
/// `"scenario": "flood"` leads the JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "scenario", rename = "flood")]
pub struct FloodReport {
    /// Nodes in the network.
    pub nodes: u32,
    /// How the overlay was built (in the summary, not the JSON).
    #[serde(skip)]
    pub topology: Topology,
    /// Nodes up at the broadcast.
    pub live_nodes: u32,
    /// Live nodes other than the origin that delivered the broadcast.
    pub delivered: u32,
    /// `delivered / (live_nodes − 1)`.
    pub delivery_ratio: f64,
    /// Redundant copies received (dropped by seen-caches).
    pub duplicates: u64,
    /// Deliveries of the broadcast to a node that had already delivered it
    /// (a safety violation; must be 0).
    pub double_deliveries: u64,
    /// Relative message redundancy (Plumtree): payloads received /
    /// (live nodes − 1) − 1.
    pub rmr: f64,
    /// Mean hops of the deliveries.
    pub mean_hops: f64,
    /// Most hops of any delivery.
    pub max_hops: u8,
    /// From the broadcast to the last delivery, virtual milliseconds.
    pub last_delivery_ms: f64,
    /// From the broadcast until half the live nodes other than the origin
    /// delivered it, virtual milliseconds (the last delivery's time if
    /// fewer did).
    pub p50_ms: f64,
    /// Until 90% delivered, as `p50_ms`.
    pub p90_ms: f64,
    /// Until 99% delivered, as `p50_ms`.
    pub p99_ms: f64,
    /// The network model ([`FloodParams::net_description`]).
    pub net: String,
    /// The broadcast payload's size, bytes.
    pub payload_len: usize,
    /// Virtual time the overlay took to build, milliseconds.
    pub build_ms: f64,
    /// Simulator events processed (whole run).
    pub events: u64,
    /// Events per wall-clock second (whole run).
    pub events_per_sec: f64,
    /// Wall-clock time of the whole run, milliseconds.
    pub wall_ms: f64,
    /// Peak resident memory of the process, MiB (Linux; 0 elsewhere).
    pub peak_rss_mib: f64,
    /// The run's trace hash.
    pub trace_hash: String,
    /// The seed.
    pub seed: u64,
    /// Whether the run held its invariants ([`Report::ok`]).
    ok: bool,
    /// The command that replays this run.
    pub replay: String,
    /// Deliveries over virtual time since the broadcast: (ms, cumulative
    /// count), one point per delivery-count change, at most ~1000 points.
    #[serde(skip)]
    pub curve: Vec<(f64, u32)>,
}

impl FloodReport {
    /// Every live node other than the origin delivered the broadcast, and
    /// none twice.
    fn holds(&self) -> bool {
        self.delivery_ratio >= 1.0 && self.double_deliveries == 0
    }
}

impl Report for FloodReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn failure(&self) -> String {
        format!(
            "flood broke an invariant: delivery ratio {}, {} double deliveries",
            self.delivery_ratio, self.double_deliveries
        )
    }

    fn replay(&self) -> &str {
        &self.replay
    }
}

impl fmt::Display for FloodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topology = match self.topology {
            Topology::Random { degree } => format!("random, degree {degree}"),
            Topology::Organic { target_peers, .. } => {
                format!("organic, target {target_peers} peers")
            }
        };
        write!(
            f,
            "flood: {} nodes ({topology}), seed {}\n  \
             delivered {}/{} live nodes (ratio {:.4}), {} double deliveries\n  \
             hops mean {:.2}, max {}; last delivery {:.1} ms after the broadcast\n  \
             50%/90%/99% delivered after {:.1}/{:.1}/{:.1} ms; network {}\n  \
             redundancy: rmr {:.2}, {} duplicate copies\n  \
             {} events in {:.0} ms wall ({:.2} M events/s), overlay built in {:.0} ms virtual, \
             peak RSS {:.0} MiB\n  \
             trace {}\n",
            self.nodes,
            self.seed,
            self.delivered,
            self.live_nodes.saturating_sub(1),
            self.delivery_ratio,
            self.double_deliveries,
            self.mean_hops,
            self.max_hops,
            self.last_delivery_ms,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.net,
            self.rmr,
            self.duplicates,
            self.events,
            self.wall_ms,
            self.events_per_sec / 1e6,
            self.build_ms,
            self.peak_rss_mib,
            self.trace_hash,
        )
    }
}

/// Watches the one broadcast.
#[derive(Default)]
struct FloodWatch {
    origin: Option<NodeId>,
    seq: u64,
    delivered_at: Vec<bool>,
    delivered: u32,
    double: u64,
    hops_sum: u64,
    max_hops: u8,
    last: Instant,
    times: Vec<Instant>,
}

impl Observer for FloodWatch {
    fn on_event(&mut self, at: Instant, node: NodeIdx, event: &Event) {
        if let Event::Mesh(MeshEvent::Broadcast {
            origin, seq, hops, ..
        }) = event
            && Some(*origin) == self.origin
            && *seq == self.seq
        {
            let slot = &mut self.delivered_at[node as usize];
            if *slot {
                self.double += 1;
                return;
            }
            *slot = true;
            self.delivered += 1;
            self.hops_sum += u64::from(*hops);
            self.max_hops = self.max_hops.max(*hops);
            self.last = at;
            self.times.push(at);
        }
    }
}

/// Peak resident set size of this process in MiB (`VmHWM`), or 0 where
/// `/proc` is not available.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs a flood. `progress` is called now and then with (phase, done,
/// total) for a progress bar.
pub fn run(
    params: &FloodParams,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<FloodReport, Box<dyn std::error::Error>> {
    let wall = WallClock::now();
    let n = params.nodes;
    if n < 2 {
        return Err("a flood needs at least 2 nodes".into());
    }
    if params.crash >= n - 1 {
        return Err("--crash must leave at least 2 live nodes".into());
    }
    let mut sim = Sim::with_observer(
        SimConfig {
            seed: params.seed,
            net: params.net.clone(),
            echo_requests: false,
        },
        FloodWatch {
            delivered_at: vec![false; n as usize],
            ..FloodWatch::default()
        },
    );
    let mut rng = ChaCha8Rng::from_seed(blake3::derive_key(
        "ringmesh-sim v1 flood topology",
        &params.seed.to_le_bytes(),
    ));
    let base = Config {
        security: params.security,
        peers: PeersConfig {
            max_known_peers: 32,
            ..Config::wan().peers
        },
        mesh: MeshConfig {
            max_hops: params.max_hops,
            // Large runs: keep per-node tables small.
            replay_origins: 1024,
            ..Config::wan().mesh
        },
        ..Config::wan()
    };
    let start = sim.now();
    match params.topology {
        Topology::Random { degree } => {
            let config = topology::hand_wired(base);
            topology::random(&mut sim, &mut rng, n, degree, &config, &mut progress)?;
        }
        Topology::Organic {
            target_peers,
            join_interval,
        } => {
            let organic = topology::Organic {
                target_peers,
                join_interval,
                bootstrap: topology::Bootstrap::RandomEarlier(3),
                settle: Duration::from_secs(10),
            };
            topology::organic(&mut sim, &mut rng, n, &organic, &base, &mut progress)?;
        }
    }
    let build_ms = (sim.now() - start).as_micros() as f64 / 1e3;

    // Crash a few random nodes (never the origin, node 0).
    let mut crashed = 0;
    while crashed < params.crash {
        let victim = 1 + (rng.next_u64() % u64::from(n - 1)) as NodeIdx;
        if sim.node(victim).is_some() {
            sim.crash(victim);
            crashed += 1;
        }
    }
    let live = sim.live_nodes().len() as u32;
    let payload = if params.net.upload.is_some() {
        // LZ4 would shrink a constant payload to a few bytes on the wire and
        // the bandwidth limit would not show: random bytes do not compress.
        let mut bytes = vec![0u8; params.payload_len];
        ChaCha8Rng::from_seed(blake3::derive_key(
            "ringmesh-sim v1 flood payload",
            &params.seed.to_le_bytes(),
        ))
        .fill_bytes(&mut bytes);
        Bytes::from(bytes)
    } else {
        Bytes::from(vec![0x42u8; params.payload_len])
    };
    let seq = match sim.command(0, MeshCommand::Broadcast { payload })? {
        ringmesh::Accepted::Broadcast { seq } => seq,
        other => return Err(format!("broadcast not accepted: {other:?}").into()),
    };
    let origin = sim.id(0);
    let duplicates_before = duplicates(&sim);
    {
        let watch = sim.observer_mut();
        watch.origin = Some(origin);
        watch.seq = seq;
    }
    let sent_at = sim.now();
    progress("flooding", 0, u64::from(live));
    sim.settle(Duration::from_secs(600));
    let watch = sim.observer();
    let others = f64::from(live - 1);
    let dups = duplicates(&sim) - duplicates_before;
    let delivered = watch.delivered;
    let curve = curve(&watch.times, sent_at);
    let until = |fraction: f64| {
        let wanted = ((others * fraction).ceil() as usize).max(1);
        let at = watch
            .times
            .get(wanted - 1)
            .or(watch.times.last())
            .copied()
            .unwrap_or(sent_at);
        (at - sent_at).as_micros() as f64 / 1e3
    };
    let last_delivery_ms = (watch.last.max(sent_at) - sent_at).as_micros() as f64 / 1e3;
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
    let events = sim.stats().events;
    let mut report = FloodReport {
        nodes: n,
        topology: params.topology,
        live_nodes: live,
        delivered,
        delivery_ratio: f64::from(delivered) / others,
        duplicates: dups,
        double_deliveries: watch.double,
        rmr: (f64::from(delivered) + dups as f64) / others - 1.0,
        mean_hops: watch.hops_sum as f64 / f64::from(delivered.max(1)),
        max_hops: watch.max_hops,
        last_delivery_ms,
        p50_ms: until(0.5),
        p90_ms: until(0.9),
        p99_ms: until(0.99),
        net: params.net_description(),
        payload_len: params.payload_len,
        build_ms,
        events,
        events_per_sec: events as f64 / (wall_ms / 1e3).max(1e-9),
        wall_ms,
        peak_rss_mib: peak_rss_mib(),
        trace_hash: sim.trace_hash(),
        seed: params.seed,
        ok: false,
        replay: params.replay(),
        curve,
    };
    report.ok = report.holds();
    // Freeing every node's tables takes a few percent of a large run (half
    // a second at 100,000 nodes): done on a thread of its own, so the report
    // is shown (and a command-line run exits) without waiting for it.
    std::thread::spawn(move || drop(sim));
    Ok(report)
}

fn duplicates<O: Observer>(sim: &Sim<O>) -> u64 {
    (0..sim.len() as NodeIdx)
        .filter_map(|i| sim.node(i))
        .map(|node| node.stats().mesh.duplicate)
        .sum()
}

/// Cumulative deliveries over time, thinned to about 1000 points.
fn curve(times: &[Instant], start: Instant) -> Vec<(f64, u32)> {
    let step = (times.len() / 1000).max(1);
    let mut points: Vec<(f64, u32)> = times
        .iter()
        .enumerate()
        .filter(|(k, _)| k % step == 0 || *k + 1 == times.len())
        .map(|(k, t)| ((*t - start).as_micros() as f64 / 1e3, k as u32 + 1))
        .collect();
    points.dedup_by_key(|p| p.1);
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_overlay_floods_every_live_node_once() {
        let report = run(
            &FloodParams {
                nodes: 300,
                crash: 10,
                ..FloodParams::default()
            },
            |_, _, _| {},
        )
        .expect("runs");
        assert_eq!(report.live_nodes, 290);
        assert_eq!(report.double_deliveries, 0);
        assert_eq!(report.delivery_ratio, 1.0, "{report:?}");
        assert!(report.rmr > 0.0 && report.mean_hops >= 1.0);
        assert_eq!(report.curve.last().map(|p| p.1), Some(report.delivered));
    }

    #[test]
    fn an_organic_overlay_floods_every_node() {
        let report = run(
            &FloodParams {
                nodes: 100,
                topology: Topology::Organic {
                    target_peers: 4,
                    join_interval: Duration::from_millis(50),
                },
                ..FloodParams::default()
            },
            |_, _, _| {},
        )
        .expect("runs");
        assert_eq!(report.delivery_ratio, 1.0, "{report:?}");
    }

    #[test]
    fn same_seed_same_trace_other_seed_other_trace() {
        let params = FloodParams {
            nodes: 200,
            ..FloodParams::default()
        };
        let a = run(&params, |_, _, _| {}).expect("runs");
        let b = run(&params, |_, _, _| {}).expect("runs");
        let c = run(&FloodParams { seed: 2, ..params }, |_, _, _| {}).expect("runs");
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_ne!(a.trace_hash, c.trace_hash);
    }
}
