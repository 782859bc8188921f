//! The flood scenario: build an overlay, broadcast once, measure how the
//! message spread (delivery ratio, redundancy, hops, time) and how fast the
//! simulator ran.

use std::fmt;
use std::time::Instant as WallClock;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::{
    BroadcastMode, Config, Duration, Event, HyParViewConfig, Instant, Membership, MeshCommand,
    MeshConfig, MeshEvent, NodeId, PeersConfig, PlumtreeConfig, Security,
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
    /// Nodes join one every `join_interval` through node 0 alone (every
    /// joiner's bootstrap list is node 0), each with `target_peers` 1:
    /// the mesh is what the membership protocol makes of it (HyParView's
    /// active views; with every-peer membership, a star).
    Join {
        /// Time between two joins.
        join_interval: Duration,
    },
}

/// How broadcasts spread ([`BroadcastMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Flooding: every mesh peer but the sender.
    #[default]
    Flood,
    /// Plumtree: eager tree, lazy announcements.
    Plumtree,
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
    /// The `crash` nodes (and churn's victims) are killed instead: their connections reset and
    /// dials to them are refused (a process crash, which TCP reports at
    /// once), rather than going silent (a host crash, found by pings).
    pub kill: bool,
    /// Broadcast payload size. The payload is constant bytes, or random
    /// ones (from the seed) under an upload limit, where LZ4 would
    /// otherwise shrink it to nothing on the wire.
    pub payload_len: usize,
    /// `MeshConfig::max_hops` of every node.
    pub max_hops: u8,
    /// Plumtree's `optimize_threshold`, if not the library's default.
    pub optimize_threshold: Option<u8>,
    /// Plumtree's `link_announce`, if not the library's default.
    pub link_announce: Option<Duration>,
    /// Flooding or Plumtree.
    pub mode: Mode,
    /// HyParView membership (active views sized for `nodes`) rather than
    /// every peer up.
    pub hyparview: bool,
    /// Broadcasts: the first from node 0, the others from random live
    /// nodes, one after another (each settles before the next).
    pub broadcasts: u32,
    /// Virtual time between the end of one broadcast and the next (with
    /// `crash`: the membership rounds that pass before it).
    pub gap: Duration,
    /// Churn events per second of virtual time after the first broadcast
    /// (Poisson; each one node crashing silently and a fresh one joining
    /// through a random live node). 0: no churn.
    pub churn: f64,
    /// How long the churn lasts; the broadcasts after the first are spread
    /// evenly over it, each watched until the next is sent.
    pub churn_for: Duration,
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
            Topology::Join { join_interval } => format!(
                "--topology join --join-interval-ms {}",
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
        if self.kill {
            line += " --fail-mode kill";
        }
        if let Some(threshold) = self.optimize_threshold {
            line += &format!(" --optimize-threshold {threshold}");
        }
        if let Some(window) = self.link_announce {
            line += &format!(" --link-announce-ms {}", window.as_millis());
        }
        if self.max_hops != MeshConfig::default().max_hops {
            line += &format!(" --max-hops {}", self.max_hops);
        }
        if self.mode == Mode::Plumtree {
            line += " --mode plumtree";
        }
        if self.hyparview {
            line += " --membership hyparview";
        } else if self.mode == Mode::Plumtree || matches!(self.topology, Topology::Join { .. }) {
            line += " --membership all";
        }
        if self.broadcasts != 1 {
            line += &format!(" --broadcasts {}", self.broadcasts);
        }
        if self.gap > Duration::ZERO {
            line += &format!(" --gap-s {}", self.gap.as_millis() / 1000);
        }
        if self.churn > 0.0 {
            line += &format!(
                " --churn {} --churn-for-s {}",
                self.churn,
                self.churn_for.as_millis() / 1000
            );
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
            kill: false,
            payload_len: 64,
            max_hops: MeshConfig::default().max_hops,
            optimize_threshold: None,
            link_announce: None,
            mode: Mode::Flood,
            hyparview: false,
            broadcasts: 1,
            gap: Duration::ZERO,
            churn: 0.0,
            churn_for: Duration::from_secs(600),
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
    /// How the failed nodes failed: `crash` (silent) or `kill` (reset).
    pub fail_mode: &'static str,
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
    /// Flooding or Plumtree.
    pub mode: &'static str,
    /// `hyparview` or `all` (every peer up).
    pub membership: &'static str,
    /// Broadcasts sent.
    pub broadcasts: u32,
    /// Over all broadcasts: deliveries / (broadcasts × (live nodes − 1));
    /// under churn, each broadcast's receivers are the nodes that were up
    /// with a mesh peer when it was sent and still up when the next was.
    pub delivery_ratio_all: f64,
    /// Churn events per second of virtual time after the first broadcast.
    pub churn: f64,
    /// Churn events that happened (each a crash and a join).
    pub churn_events: u32,
    /// Each broadcast's delivery ratio, in order (the first 20).
    pub delivery_ratios: Vec<f64>,
    /// Each broadcast's last-delivery hop, in order (all of them).
    pub ldhs: Vec<u8>,
    /// Each broadcast's redundant copies received, in order (all of them).
    pub duplicates_each: Vec<u64>,
    /// The lowest delivery ratio of any broadcast.
    pub delivery_min: f64,
    /// Receivers that missed a broadcast, summed over the broadcasts.
    pub missed: u64,
    /// Over all broadcasts: mean of each broadcast's RMR.
    pub rmr_all: f64,
    /// Over all broadcasts but the first (Plumtree builds its tree on the
    /// first): mean RMR; the first's when there is one broadcast.
    pub rmr_after_first: f64,
    /// Last-delivery hop: the most hops of any delivery, all broadcasts.
    pub ldh: u8,
    /// Mean over broadcasts of each one's last-delivery hop.
    pub mean_ldh: f64,
    /// Plumtree control messages (`IHave`, `Graft`, `Prune`) per broadcast.
    pub control_messages_per_broadcast: f64,
    /// Their encoded bytes per broadcast (tag and fields, not frame headers).
    pub control_bytes_per_broadcast: f64,
    /// Membership messages during the broadcasts, per broadcast.
    pub membership_messages_per_broadcast: f64,
    /// Bytes on the wire (every frame of every node, pings included) during
    /// the broadcasts, per delivery.
    pub bytes_per_delivery: f64,
    /// Most mesh peers of any live node after the build.
    pub max_mesh_degree: usize,
    /// Mean mesh peers of a live node after the build.
    pub mean_mesh_degree: f64,
    /// Mesh peers of node 0 (the bootstrap node in the join topology).
    pub bootstrap_mesh_degree: usize,
    /// Live nodes without a mesh peer after the build.
    pub isolated: u32,
    /// The network model ([`FloodParams::net_description`]).
    pub net: String,
    /// The broadcast payload's size, bytes.
    pub payload_len: usize,
    /// Virtual time the overlay took to build, milliseconds.
    pub build_ms: f64,
    /// Simulator events processed (whole run).
    pub events: u64,
    /// Events per wall-clock second of the whole run (the nodes' creation,
    /// with their Ed25519 keys, included).
    pub events_per_sec: f64,
    /// Wall-clock time of the whole run, milliseconds.
    pub wall_ms: f64,
    /// Events per wall-clock second of the event loop alone
    /// ([`Sim::loop_wall`]): the engine's own rate.
    pub loop_events_per_sec: f64,
    /// Wall-clock time spent stepping events, milliseconds
    /// ([`Sim::loop_wall`]).
    pub loop_wall_ms: f64,
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
        self.delivery_ratio >= 1.0 && self.delivery_ratio_all >= 1.0 && self.double_deliveries == 0
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
            Topology::Join { .. } => "joined through node 0".to_string(),
        };
        write!(
            f,
            "flood: {} nodes ({topology}), seed {}\n  \
             delivered {}/{} live nodes (ratio {:.4}), {} double deliveries\n  \
             hops mean {:.2}, max {}; last delivery {:.1} ms after the broadcast\n  \
             50%/90%/99% delivered after {:.1}/{:.1}/{:.1} ms; network {}\n  \
             redundancy: rmr {:.2}, {} duplicate copies\n  \
             {} events in {:.0} ms wall ({:.2} M events/s whole run; the event loop {:.0} ms, \
             {:.2} M events/s), overlay built in {:.0} ms virtual, peak RSS {:.0} MiB\n  \
             {} over {} membership, {} broadcasts: delivery {:.4}, rmr {:.3} ({:.3} after the first), \
             ldh {} (mean {:.2})\n  \
             per broadcast: {:.1} control messages, {:.0} control bytes, {:.1} membership messages; \
             {:.0} bytes per delivery\n  \
             mesh degree max {} (node 0: {}), mean {:.2}, {} isolated\n  \
             delivery per broadcast {:?}, lowest {:.4}, {} misses in all\n  \
             {}trace {}\n",
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
            self.loop_wall_ms,
            self.loop_events_per_sec / 1e6,
            self.build_ms,
            self.peak_rss_mib,
            self.mode,
            self.membership,
            self.broadcasts,
            self.delivery_ratio_all,
            self.rmr_all,
            self.rmr_after_first,
            self.ldh,
            self.mean_ldh,
            self.control_messages_per_broadcast,
            self.control_bytes_per_broadcast,
            self.membership_messages_per_broadcast,
            self.bytes_per_delivery,
            self.max_mesh_degree,
            self.bootstrap_mesh_degree,
            self.mean_mesh_degree,
            self.isolated,
            self.delivery_ratios
                .iter()
                .map(|r| (r * 1e4).round() / 1e4)
                .collect::<Vec<_>>(),
            self.delivery_min,
            self.missed,
            if self.churn > 0.0 {
                format!(
                    "churn {} events/s: {} events (a crash and a join each); receivers: \
                     nodes up and meshed at the send, still up at the next\n  ",
                    self.churn, self.churn_events
                )
            } else {
                String::new()
            },
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
            if self.delivered_at.len() <= node as usize {
                // A node that joined under churn.
                self.delivered_at.resize(node as usize + 1, false);
            }
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
    if params.hyparview && matches!(params.topology, Topology::Random { .. }) {
        // Every node would join through its first hand-wired dial at the
        // same moment: the overlays that forms split, and HyParView has
        // nothing that merges them (spec/membership.md, "What HyParView
        // does not do"; 42 % of 500 nodes reached, seed 1).
        return Err(
            "HyParView membership (--membership hyparview, the default of --mode plumtree) \
                    needs nodes that join one after another: use --topology join or organic"
                .into(),
        );
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
    let mesh_membership = if params.hyparview {
        Membership::HyParView(HyParViewConfig::for_network(u64::from(n)))
    } else {
        Membership::AllPeers
    };
    let mesh_mode = match params.mode {
        Mode::Flood => BroadcastMode::Flood,
        Mode::Plumtree => BroadcastMode::Plumtree(PlumtreeConfig {
            optimize_threshold: params
                .optimize_threshold
                .unwrap_or(PlumtreeConfig::default().optimize_threshold),
            link_announce: params
                .link_announce
                .unwrap_or(PlumtreeConfig::default().link_announce),
            ..PlumtreeConfig::default()
        }),
    };
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
            membership: mesh_membership,
            broadcast: mesh_mode,
            ..Config::wan().mesh
        },
        ..Config::wan()
    };
    let start = sim.now();
    match params.topology {
        Topology::Random { degree } => {
            let config = topology::hand_wired(base.clone());
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
        Topology::Join { join_interval } => {
            let organic = topology::Organic {
                target_peers: 1,
                join_interval,
                bootstrap: topology::Bootstrap::First(1),
                // Three membership rounds (shuffles every 10 s).
                settle: Duration::from_secs(30),
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
            if params.kill {
                sim.kill(victim);
            } else {
                sim.crash(victim);
            }
            crashed += 1;
        }
    }
    let live = sim.live_nodes().len() as u32;
    let degrees: Vec<usize> = sim
        .live_nodes()
        .into_iter()
        .filter_map(|i| sim.node(i).map(|node| node.mesh_peers().len()))
        .collect();
    let max_mesh_degree = degrees.iter().copied().max().unwrap_or(0);
    let mean_mesh_degree = degrees.iter().sum::<usize>() as f64 / degrees.len().max(1) as f64;
    let isolated = degrees.iter().filter(|&&d| d == 0).count() as u32;
    let bootstrap_mesh_degree = sim.node(0).map_or(0, |node| node.mesh_peers().len());
    let totals_before = totals(&sim);
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
    let quiet = params.mode == Mode::Plumtree || params.hyparview || params.broadcasts > 1;
    if quiet {
        await_broadcast(&mut sim, live);
    } else {
        sim.settle(Duration::from_secs(600));
    }
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
    let (p50_ms, p90_ms, p99_ms) = (until(0.5), until(0.9), until(0.99));
    let mean_hops = watch.hops_sum as f64 / f64::from(delivered.max(1));
    let first_max_hops = watch.max_hops;
    let mut each = vec![Each {
        delivered: watch.delivered,
        duplicates: dups,
        max_hops: watch.max_hops,
        receivers: live - 1,
    }];
    let mut double = watch.double;
    let mut churn_events = 0;
    if params.churn > 0.0 {
        let joiner = Joiner {
            config: base.clone(),
            target_peers: match params.topology {
                Topology::Random { degree } => degree / 2,
                Topology::Organic { target_peers, .. } => target_peers,
                Topology::Join { .. } => 1,
            },
        };
        let churned = churn(&mut sim, &mut rng, params, &joiner, &mut progress)?;
        each.extend(churned.each);
        double += churned.double;
        churn_events = churned.events;
    } else {
        for k in 1..params.broadcasts {
            sim.run_for(params.gap);
            let lives = sim.live_nodes();
            let sender = lives[(rng.next_u64() % lives.len() as u64) as usize];
            let before = duplicates(&sim);
            broadcast_watched(&mut sim, sender, params.payload_len)?;
            await_broadcast(&mut sim, live);
            let watch = sim.observer();
            each.push(Each {
                delivered: watch.delivered,
                duplicates: duplicates(&sim) - before,
                max_hops: watch.max_hops,
                receivers: live - 1,
            });
            double += watch.double;
            progress("broadcasts", u64::from(k), u64::from(params.broadcasts));
        }
    }
    let totals_after = totals(&sim);
    if std::env::var_os("RINGMESH_DEBUG_MEMBERSHIP").is_some() {
        let mut sum = Vec::new();
        for node in (0..sim.len() as NodeIdx).filter_map(|i| sim.node(i)) {
            sum.push(format!("{:?}", node.stats().membership));
        }
        for line in sum.iter().take(5) {
            eprintln!("{line}");
        }
    }
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
    let events = sim.stats().events;
    let k = each.len() as f64;
    let rmr_of = |e: &Each| {
        (f64::from(e.delivered) + e.duplicates as f64) / f64::from(e.receivers.max(1)) - 1.0
    };
    let rmrs: Vec<f64> = each.iter().map(rmr_of).collect();
    let rmr_all = rmrs.iter().sum::<f64>() / k;
    let rmr_after_first = if rmrs.len() > 1 {
        rmrs[1..].iter().sum::<f64>() / (k - 1.0)
    } else {
        rmrs[0]
    };
    let deliveries: u64 = each.iter().map(|e| u64::from(e.delivered)).sum();
    let receivers: u64 = each.iter().map(|e| u64::from(e.receivers)).sum();
    let ldh = each.iter().map(|e| e.max_hops).max().unwrap_or(0);
    let mean_ldh = each.iter().map(|e| f64::from(e.max_hops)).sum::<f64>() / k;
    let diff = |a: u64, b: u64| (b - a) as f64 / k;
    let mut report = FloodReport {
        nodes: n,
        topology: params.topology,
        live_nodes: live,
        fail_mode: if params.kill { "kill" } else { "crash" },
        delivered,
        delivery_ratio: f64::from(delivered) / others,
        duplicates: dups,
        double_deliveries: double,
        rmr: (f64::from(delivered) + dups as f64) / others - 1.0,
        mean_hops,
        max_hops: first_max_hops,
        last_delivery_ms,
        p50_ms,
        p90_ms,
        p99_ms,
        mode: match params.mode {
            Mode::Flood => "flood",
            Mode::Plumtree => "plumtree",
        },
        membership: if params.hyparview { "hyparview" } else { "all" },
        broadcasts: params.broadcasts.max(1),
        delivery_ratio_all: deliveries as f64 / receivers.max(1) as f64,
        delivery_min: each
            .iter()
            .map(|e| f64::from(e.delivered) / f64::from(e.receivers.max(1)))
            .fold(1.0, f64::min),
        missed: receivers.saturating_sub(deliveries),
        churn: params.churn,
        churn_events,
        delivery_ratios: each
            .iter()
            .take(20)
            .map(|e| f64::from(e.delivered) / f64::from(e.receivers.max(1)))
            .collect(),
        ldhs: each.iter().map(|e| e.max_hops).collect(),
        duplicates_each: each.iter().map(|e| e.duplicates).collect(),
        rmr_all,
        rmr_after_first,
        ldh,
        mean_ldh,
        control_messages_per_broadcast: diff(totals_before.control, totals_after.control),
        control_bytes_per_broadcast: diff(totals_before.control_bytes, totals_after.control_bytes),
        membership_messages_per_broadcast: diff(totals_before.membership, totals_after.membership),
        bytes_per_delivery: (totals_after.bytes - totals_before.bytes) as f64
            / deliveries.max(1) as f64,
        max_mesh_degree,
        mean_mesh_degree,
        bootstrap_mesh_degree,
        isolated,
        net: params.net_description(),
        payload_len: params.payload_len,
        build_ms,
        events,
        events_per_sec: events as f64 / (wall_ms / 1e3).max(1e-9),
        wall_ms,
        loop_events_per_sec: events as f64 / sim.loop_wall().as_secs_f64().max(1e-9),
        loop_wall_ms: sim.loop_wall().as_secs_f64() * 1e3,
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

/// `sender` broadcasts `payload_len` bytes, and the watch follows that
/// broadcast from now on (its counts start again).
fn broadcast_watched(
    sim: &mut Sim<FloodWatch>,
    sender: NodeIdx,
    payload_len: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let payload = Bytes::from(vec![0x42u8; payload_len]);
    let seq = match sim.command(sender, MeshCommand::Broadcast { payload })? {
        ringmesh::Accepted::Broadcast { seq } => seq,
        other => return Err(format!("broadcast not accepted: {other:?}").into()),
    };
    let origin = sim.id(sender);
    let watch = sim.observer_mut();
    watch.origin = Some(origin);
    watch.seq = seq;
    watch.delivered_at.iter_mut().for_each(|d| *d = false);
    watch.delivered = 0;
    watch.double = 0;
    watch.max_hops = 0;
    watch.times.clear();
    Ok(())
}

/// One broadcast's outcome.
#[derive(Debug, Clone, Copy)]
struct Each {
    /// Receivers that delivered it.
    delivered: u32,
    /// Redundant copies received.
    duplicates: u64,
    /// Most hops of any delivery.
    max_hops: u8,
    /// The nodes that should have delivered it.
    receivers: u32,
}

/// How a node joins under churn: the run's configuration, and its target
/// peer count in the run's topology.
struct Joiner {
    config: Config,
    target_peers: u32,
}

/// What the churn phase measured.
struct Churned {
    each: Vec<Each>,
    double: u64,
    events: u32,
}

/// The shortest watch a broadcast under churn gets: Plumtree's repair
/// (an `IHave` batch, a graft timeout, a retry) fits well inside it.
const MIN_CHURN_WATCH: Duration = Duration::from_secs(5);

/// Churn for `params.churn_for` at `params.churn` events per second, with
/// the broadcasts after the first spread evenly over it. A broadcast's
/// receivers are the nodes up with a mesh peer when it is sent that are
/// still up when it is no longer watched (when the next one is sent); its
/// origin is spared by the churn while it is watched.
fn churn(
    sim: &mut Sim<FloodWatch>,
    rng: &mut ChaCha8Rng,
    params: &FloodParams,
    joiner: &Joiner,
    progress: &mut impl FnMut(&str, u64, u64),
) -> Result<Churned, Box<dyn std::error::Error>> {
    let count = params.broadcasts.saturating_sub(1);
    if count == 0 {
        return Err("--churn needs --broadcasts of 2 or more (the first builds the tree)".into());
    }
    let watch_for = Duration::from_micros(params.churn_for.as_micros() / u64::from(count));
    if watch_for < MIN_CHURN_WATCH {
        return Err(format!(
            "--churn-for-s {} leaves {} ms per broadcast: at least {} ms each",
            params.churn_for.as_millis() / 1000,
            watch_for.as_millis(),
            MIN_CHURN_WATCH.as_millis()
        )
        .into());
    }
    // Exponential gaps between churn events, from the run's stream.
    let next_gap = |rng: &mut ChaCha8Rng| {
        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_micros((-(1.0 - unit).ln() / params.churn * 1e6) as u64)
    };
    let mut next_event = sim.now() + next_gap(rng);
    let mut out = Churned {
        each: Vec::with_capacity(count as usize),
        double: 0,
        events: 0,
    };
    for k in 0..count {
        let meshed = |sim: &Sim<FloodWatch>, i: NodeIdx| {
            sim.node(i)
                .is_some_and(|node| !node.mesh_peers().is_empty())
        };
        let lives: Vec<NodeIdx> = sim
            .live_nodes()
            .into_iter()
            .filter(|&i| meshed(sim, i))
            .collect();
        if lives.len() < 2 {
            return Err("churn left fewer than 2 meshed nodes".into());
        }
        let sender = lives[(rng.next_u64() % lives.len() as u64) as usize];
        let dups_before: Vec<u64> = (0..sim.len() as NodeIdx)
            .map(|i| sim.node(i).map_or(0, |node| node.stats().mesh.duplicate))
            .collect();
        if std::env::var_os("RINGMESH_DEBUG_MEMBERSHIP").is_some() {
            debug_islands(sim, k, "sent");
        }
        broadcast_watched(sim, sender, params.payload_len)?;
        let until = sim.now() + watch_for;
        while next_event <= until {
            sim.run_until(next_event);
            // A victim other than the watched origin, then a joiner through
            // a random meshed node.
            let live = sim.live_nodes();
            let candidates: Vec<NodeIdx> = live.iter().copied().filter(|&i| i != sender).collect();
            if candidates.len() > 2 {
                let victim = candidates[(rng.next_u64() % candidates.len() as u64) as usize];
                if params.kill {
                    sim.kill(victim);
                } else {
                    sim.crash(victim);
                }
            }
            let through: Vec<NodeIdx> = sim
                .live_nodes()
                .into_iter()
                .filter(|&i| meshed(sim, i))
                .collect();
            if let Some(&via) = through.get((rng.next_u64() % through.len().max(1) as u64) as usize)
            {
                sim.add_node(Config {
                    peers: PeersConfig {
                        target_peers: joiner.target_peers as usize,
                        bootstrap: vec![crate::engine::addr_of(via)],
                        ..joiner.config.peers.clone()
                    },
                    ..joiner.config.clone()
                })?;
            }
            out.events += 1;
            next_event += next_gap(rng);
        }
        sim.run_until(until);
        let watch = sim.observer();
        let mut each = Each {
            delivered: 0,
            duplicates: 0,
            max_hops: watch.max_hops,
            receivers: 0,
        };
        for &i in lives.iter().filter(|&&i| i != sender) {
            let Some(node) = sim.node(i) else { continue };
            each.receivers += 1;
            if watch.delivered_at.get(i as usize).copied().unwrap_or(false) {
                each.delivered += 1;
            } else if std::env::var_os("RINGMESH_DEBUG_MEMBERSHIP").is_some() {
                let mesh = node.mesh_peers();
                let me = sim.id(i);
                // Each mesh peer: up, holding this node as a mesh peer, and holding the broadcast.
                let up: Vec<(bool, bool, bool)> = mesh
                    .iter()
                    .map(|id| {
                        let peer = (0..sim.len() as NodeIdx)
                            .find(|&j| sim.id(j) == *id)
                            .and_then(|j| sim.node(j));
                        let got = (0..sim.len() as NodeIdx)
                            .find(|&j| sim.id(j) == *id)
                            .is_some_and(|j| {
                                watch.delivered_at.get(j as usize).copied().unwrap_or(false)
                            });
                        (
                            peer.is_some(),
                            peer.is_some_and(|p| p.mesh_peers().contains(&me)),
                            got,
                        )
                    })
                    .collect();
                eprintln!(
                    "broadcast {k}: node {i} (joined {}) missed it; mesh peers up {up:?}; {:?}",
                    if i >= params.nodes {
                        "under churn"
                    } else {
                        "at the build"
                    },
                    node.stats().mesh
                );
            }
            each.duplicates += node.stats().mesh.duplicate - dups_before[i as usize];
        }
        if std::env::var_os("RINGMESH_DEBUG_MEMBERSHIP").is_some() {
            debug_islands(sim, k, "ended");
        }
        out.double += watch.double;
        out.each.push(each);
        progress("broadcasts under churn", u64::from(k + 1), u64::from(count));
    }
    Ok(out)
}

/// Runs until every live node but the origin delivered the watched
/// broadcast, or 30 s of virtual time passed, then 2 s more for the lazy
/// announcements, grafts and prunes it caused (the membership's rounds
/// keep traffic in flight, so `settle` would wait its whole limit).
fn await_broadcast(sim: &mut Sim<FloodWatch>, live: u32) {
    let start = sim.now();
    while sim.observer().delivered + 1 < live && sim.now() - start < Duration::from_secs(30) {
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(2));
}

/// Counters summed over every node (crashed ones excluded).
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    control: u64,
    control_bytes: u64,
    membership: u64,
    bytes: u64,
}

fn totals<O: Observer>(sim: &Sim<O>) -> Totals {
    let mut t = Totals::default();
    for node in (0..sim.len() as NodeIdx).filter_map(|i| sim.node(i)) {
        let stats = node.stats();
        t.control += stats.mesh.ihave_sent + stats.mesh.grafts_sent + stats.mesh.prunes_sent;
        t.control_bytes += stats.mesh.control_bytes;
        t.membership += stats.membership.messages_sent;
        t.bytes += stats.peers.bytes_sent;
    }
    t
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

/// Debug aid: the sizes of the mesh's components other than the largest,
/// over symmetric links between live nodes.
fn debug_islands(sim: &Sim<FloodWatch>, k: u32, when: &str) {
    let live = sim.live_nodes();
    let index: std::collections::HashMap<_, _> = live.iter().map(|&i| (sim.id(i), i)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut sizes = Vec::new();
    for &start in &live {
        if !seen.insert(start) {
            continue;
        }
        let mut stack = vec![start];
        let mut members = vec![start];
        while let Some(i) = stack.pop() {
            let Some(node) = sim.node(i) else { continue };
            for peer in node.mesh_peers() {
                let Some(&j) = index.get(&peer) else { continue };
                let back = sim
                    .node(j)
                    .is_some_and(|p| p.mesh_peers().contains(&sim.id(i)));
                if back && seen.insert(j) {
                    stack.push(j);
                    members.push(j);
                }
            }
        }
        sizes.push((members.len(), members));
    }
    sizes.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    for (n, members) in sizes.iter().skip(1) {
        eprintln!(
            "broadcast {k} {when}: island of {n}: {:?}",
            &members[..members.len().min(8)]
        );
    }
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
    fn plumtree_under_churn_reaches_every_node_alive_for_the_broadcast() {
        let params = FloodParams {
            nodes: 200,
            topology: Topology::Join {
                join_interval: Duration::from_millis(50),
            },
            mode: Mode::Plumtree,
            hyparview: true,
            broadcasts: 7,
            churn: 1.0,
            churn_for: Duration::from_secs(60),
            ..FloodParams::default()
        };
        let report = run(&params, |_, _, _| {}).expect("runs");
        // About 60 events at 1 per second: a Poisson count this far off
        // would mean the churn did not run.
        assert!(
            (30..=100).contains(&report.churn_events),
            "{} churn events",
            report.churn_events
        );
        assert_eq!(report.broadcasts, 7);
        assert_eq!(report.double_deliveries, 0);
        assert_eq!(report.delivery_ratios.len(), 7);
        assert!(
            report.delivery_ratios.iter().all(|&r| r == 1.0),
            "{:?}",
            report.delivery_ratios
        );
        assert!(
            report.rmr_after_first < 0.5,
            "rmr {}",
            report.rmr_after_first
        );
        assert!(report.replay.contains("--churn 1 --churn-for-s 60"));
        let again = run(&params, |_, _, _| {}).expect("runs");
        assert_eq!(report.trace_hash, again.trace_hash);
    }

    /// Over an organic overlay whose active views are not all full (they
    /// keep asking passive peers, accepted or refused), links keep coming
    /// up after the tree formed. They start lazy on nodes whose tree is
    /// whole (spec/mesh.md, "A new link"), so the tree the first broadcast
    /// built stays a tree: no duplicate once the links that came up lazy
    /// on one end only have been pruned (the second broadcast), and no
    /// origin is further than twice the first broadcast's depth from any
    /// node. With new links eager, each closed a cycle that a later
    /// broadcast pruned, and the tree drifted deeper.
    #[test]
    fn plumtree_keeps_its_tree_while_the_views_change() {
        let report = run(
            &FloodParams {
                nodes: 200,
                topology: Topology::Organic {
                    target_peers: 1,
                    join_interval: Duration::from_millis(5),
                },
                mode: Mode::Plumtree,
                hyparview: true,
                broadcasts: 12,
                optimize_threshold: Some(0),
                ..FloodParams::default()
            },
            |_, _, _| {},
        )
        .expect("runs");
        assert_eq!(report.delivery_ratio_all, 1.0, "{report:?}");
        assert_eq!(report.duplicates_each.len(), 12);
        assert_eq!(
            report.duplicates_each[2..].iter().sum::<u64>(),
            0,
            "duplicates per broadcast {:?}",
            report.duplicates_each
        );
        let depth = report.ldhs[0];
        assert!(
            report.ldhs[1..].iter().all(|&h| h <= 2 * depth),
            "last-delivery hops {:?}",
            report.ldhs
        );
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
