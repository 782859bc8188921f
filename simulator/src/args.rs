//! The command line's options (clap), and the scenario parameters they
//! stand for.

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringmesh::Duration;
use ringmesh_sim::NetModel;
use ringmesh_sim::engine::{LatencyModel, Upload};
use ringmesh_sim::scenario::blobs::BlobsParams;
use ringmesh_sim::scenario::chord::ChordParams;
use ringmesh_sim::scenario::flood::{FloodParams, Mode, Topology};
use ringmesh_sim::scenario::liveness::{LivenessParams, Preset};
use ringmesh_sim::scenario::nat::{NatMix, NatParams};
use ringmesh_sim::scenario::sync::SyncParams;
use std::path::PathBuf;

use crate::Error;

#[derive(Debug, Parser)]
#[command(
    name = "ringmesh-sim",
    version,
    about = "Deterministic simulator for ringmesh networks: real nodes, virtual time, one seed",
    long_about = "Deterministic simulator for ringmesh networks: real nodes, virtual time, one \
                  seed.\n\nWithout a subcommand, runs a 10,000-node flood and a 2,000-node liveness \
                  run with 20 crashes."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Build an overlay, broadcast once, and measure how the message spread.
    Flood(FloodArgs),
    /// Crash or kill nodes and measure how fast their neighbours notice.
    Liveness(LivenessArgs),
    /// Grow a Chord ring, fail part of it, run lookups (and a table) against
    /// ground truth, checking Zave's invariants throughout.
    Chord(ChordArgs),
    /// Write and delete keys of the sync table on a split network with
    /// crashes and late joiners, then wait until every node holds the same
    /// table.
    Sync(SyncArgs),
    /// One seeder adds a blob, fetchers fetch it at once over a random
    /// overlay (serving each other what they hold), liars corrupt what they
    /// serve; check every fetcher's bytes.
    Blobs(BlobsArgs),
    /// Put part of the nodes behind simulated NATs of mixed types, with
    /// public relays: report how each node is reachable (direct, mapped,
    /// punched, relayed), whether a broadcast reaches everyone, and each
    /// relay's load against its limits.
    Nat(NatArgs),
    /// Run a scenario file (TOML: timed actions and checks).
    Run(RunArgs),
    /// The narrated demo: nodes join over Noise, flood, detect a crash.
    Demo(DemoArgs),
}

/// Options every scenario takes.
#[derive(Debug, Args)]
pub(crate) struct Output {
    /// Print exactly one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write a figure of the run to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TopologyArg {
    /// Every node dials degree/2 random others (wired by hand).
    Random,
    /// Nodes join one by one through bootstrap nodes and grow to
    /// --target-peers on their own.
    Organic,
    /// Nodes join one by one through node 0 alone, each with one target
    /// peer: the mesh is what the membership makes of it.
    Join,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Every mesh peer but the sender gets every broadcast.
    Flood,
    /// Eager push on a tree, lazy IHave on the other links.
    Plumtree,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailModeArg {
    /// The host stops silently: nothing answers; the peers' pings find out.
    Crash,
    /// The process dies: its connections reset and dials to it are
    /// refused, so TCP tells the peers at once (HyParView's failure
    /// detector).
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MembershipArg {
    /// Every peer that is up is a mesh peer.
    All,
    /// HyParView's active view (sized for --nodes).
    Hyparview,
}

#[derive(Debug, Args)]
pub(crate) struct FloodArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Nodes in the network.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) nodes: u32,
    /// How the overlay is built.
    #[arg(long, value_enum, default_value_t = TopologyArg::Random)]
    pub(crate) topology: TopologyArg,
    /// Mean degree of the random topology.
    #[arg(long, default_value_t = 8)]
    pub(crate) degree: u32,
    /// Each node's target peer count in the organic topology.
    #[arg(long, default_value_t = 8)]
    pub(crate) target_peers: u32,
    /// Milliseconds between two joins in the organic topology.
    #[arg(long, default_value_t = 20)]
    pub(crate) join_interval_ms: u64,
    /// Nodes crashed silently after the build, before the broadcast.
    #[arg(long, default_value_t = 0)]
    pub(crate) crash: u32,
    /// Broadcast payload size in bytes.
    #[arg(long, default_value_t = 64)]
    pub(crate) payload: usize,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub(crate) latency_ms: u64,
    /// Extra one-way delay, uniform in 0..=jitter, milliseconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) jitter_ms: u64,
    /// Where link latency comes from: `uniform` (--latency-ms for every
    /// link), `geo` (seven world regions, nodes placed by weight, plus a
    /// 1-10 ms access link each; --latency-ms unused), or `file:PATH` (a
    /// region matrix in the format of simulator/data/regions-7.csv).
    #[arg(long, value_name = "MODEL", default_value = "uniform", value_parser = LatencyModel::parse)]
    pub(crate) latency_model: LatencyModel,
    /// Each node's upload bandwidth, with sends queueing behind each other:
    /// `10Mbit`, `1MB` (per second), or a range each node draws from,
    /// `2Mbit..50Mbit`. The broadcast payload is then random bytes (a
    /// constant one would compress to nothing). Default: unlimited.
    #[arg(long, value_name = "RATE", value_parser = Upload::parse)]
    pub(crate) upload_bandwidth: Option<Upload>,
    /// How broadcasts spread.
    #[arg(long, value_enum, default_value_t = ModeArg::Flood)]
    pub(crate) mode: ModeArg,
    /// Who the mesh's peers are (default: all, or hyparview with
    /// --mode plumtree or --topology join).
    #[arg(long, value_enum)]
    pub(crate) membership: Option<MembershipArg>,
    /// Broadcasts: the first from node 0, the rest from random live nodes.
    #[arg(long, default_value_t = 1)]
    pub(crate) broadcasts: u32,
    /// Crash this fraction of the nodes at once after the build (sets
    /// --crash; HyParView's experiment).
    #[arg(long, value_name = "F")]
    pub(crate) fail_fraction: Option<f64>,
    /// Plumtree's optimisation threshold (`PlumtreeConfig::optimize_threshold`:
    /// a lazy path this many hops shorter replaces the tree's; 0 turns it
    /// off). Default: the library's.
    #[arg(long, value_name = "HOPS")]
    pub(crate) optimize_threshold: Option<u8>,
    /// Plumtree's `PlumtreeConfig::link_announce` in milliseconds: a new
    /// mesh link is told of the broadcasts delivered this recently (0
    /// turns it off). Default: the library's.
    #[arg(long, value_name = "MS")]
    pub(crate) link_announce_ms: Option<u64>,
    /// `MeshConfig::max_hops` of every node.
    #[arg(long, default_value_t = ringmesh::MeshConfig::default().max_hops)]
    pub(crate) max_hops: u8,
    /// How the --crash / --fail-fraction nodes and churn's victims fail.
    #[arg(long, value_enum, default_value_t = FailModeArg::Crash)]
    pub(crate) fail_mode: FailModeArg,
    /// Seconds of virtual time between two broadcasts (10 = one membership
    /// round).
    #[arg(long, default_value_t = 0)]
    pub(crate) gap_s: u64,
    /// Churn after the first broadcast: this many churn events per second
    /// of virtual time (Poisson), each one node crashing silently and a
    /// fresh one joining through a random live node; the other broadcasts
    /// are spread evenly over --churn-for-s.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub(crate) churn: f64,
    /// How long the churn lasts, seconds of virtual time.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub(crate) churn_for_s: u64,
    /// Run the flood three times on the same seed and overlay options, under
    /// the uniform model, the geo model, and the geo model with
    /// --upload-bandwidth (10Mbit if not given), print how long each took
    /// to reach 50/90/99% of the nodes, and draw the three delivery curves
    /// together with --plot.
    #[arg(long, conflicts_with = "json")]
    pub(crate) compare_nets: bool,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PresetArg {
    /// Ping every 1 s, miss after 500 ms, dead after 3 misses (4 s).
    Lan,
    /// Ping every 5 s, miss after 3 s, dead after 4 misses (26 s).
    Wan,
}

#[derive(Debug, Args)]
pub(crate) struct LivenessArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Nodes in the network.
    #[arg(long, default_value_t = 500)]
    pub(crate) nodes: u32,
    /// Nodes crashed silently (only liveness reveals them).
    #[arg(long, default_value_t = 5)]
    pub(crate) crash: u32,
    /// Nodes killed (their connections reset).
    #[arg(long, default_value_t = 0)]
    pub(crate) kill: u32,
    /// Mean degree of the random topology.
    #[arg(long, default_value_t = 8)]
    pub(crate) degree: u32,
    /// The liveness timing profile.
    #[arg(long, value_enum, default_value_t = PresetArg::Lan)]
    pub(crate) preset: PresetArg,
    /// Split the network in two for longer than the detection time and
    /// heal it before the failures.
    #[arg(long)]
    pub(crate) partition: bool,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub(crate) latency_ms: u64,
    /// Extra one-way delay, uniform in 0..=jitter, milliseconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) jitter_ms: u64,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ChordArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Nodes in the ring.
    #[arg(long, default_value_t = 1000)]
    pub(crate) nodes: u32,
    /// Successor list length (chord.successors).
    #[arg(long, default_value_t = 8)]
    pub(crate) r: usize,
    /// Lookups of random keys from random members.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) lookups: u32,
    /// Fraction of the members crashed at once before the lookups.
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub(crate) fail_fraction: f64,
    /// Churn during the lookups, events per second of virtual time (half
    /// joins, half failures that keep Zave's failure precondition).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub(crate) churn: f64,
    /// Keys put into the table after the build and read back at the end.
    #[arg(long, default_value_t = 0)]
    pub(crate) keys: u32,
    /// Fail `--fail-fraction` of the members as drawn, without redrawing
    /// to keep Zave's failure constraint: the ring's pieces must merge.
    #[arg(long)]
    pub(crate) unconstrained: bool,
    /// Split the network into two random halves for this long (`60s`,
    /// `500ms`, `2m`; a bare number is seconds), then heal it: the two
    /// rings must merge.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) partition_for: Option<Duration>,
    /// Found the ring at once (each node given its neighbourhood) instead
    /// of growing it by joins: for rings of 100,000 members and more.
    #[arg(long)]
    pub(crate) founded: bool,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// A duration: a number with `ms`, `s` or `m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_us) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000u64)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000_000)
    } else {
        (text, 1_000_000)
    };
    let n: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 60s or 500ms)"))?;
    match n.checked_mul(unit_us) {
        Some(0) => Err("the duration must be above zero".to_owned()),
        Some(us) => Ok(Duration::from_micros(us)),
        None => Err(format!("duration too long: {text:?}")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The scenario file.
    pub(crate) file: PathBuf,
    /// Overrides the file's seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Print exactly one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Seed for identities and node randomness.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Nodes in the demo network.
    #[arg(long, default_value_t = 16)]
    pub(crate) nodes: usize,
    /// Print exactly one JSON object on stdout instead of the narration.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Nodes at the start.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) nodes: u32,
    /// Nodes that write (the first ones).
    #[arg(long, default_value_t = 10)]
    pub(crate) writers: u32,
    /// Writes in all (a tenth are deletes), by random writers.
    #[arg(long, default_value_t = 200)]
    pub(crate) writes: u32,
    /// Keys the writes pick from (fewer: more contested leases).
    #[arg(long, default_value_t = 100)]
    pub(crate) keys: u32,
    /// Keep the network whole during the writes (by default it is split in
    /// two halves until after the last write).
    #[arg(long)]
    pub(crate) no_partition: bool,
    /// Non-writer nodes crashed during the writes and restarted empty after.
    #[arg(long, default_value_t = 10)]
    pub(crate) crash: u32,
    /// Nodes that join after the writes.
    #[arg(long, default_value_t = 10)]
    pub(crate) late: u32,
    /// Mean degree of the random overlay.
    #[arg(long, default_value_t = 8)]
    pub(crate) degree: u32,
    /// Milliseconds between two writes.
    #[arg(long, default_value_t = 20)]
    pub(crate) write_interval_ms: u64,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub(crate) latency_ms: u64,
    /// Extra one-way delay, uniform in 0..=jitter, milliseconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) jitter_ms: u64,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct BlobsArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Nodes in all (the seeder, the liars, the fetchers, bystanders).
    #[arg(long, default_value_t = 100)]
    pub(crate) nodes: u32,
    /// Nodes that fetch the blob at once (the last ones).
    #[arg(long, default_value_t = 99)]
    pub(crate) fetchers: u32,
    /// Nodes that hold the blob but corrupt every group they serve.
    #[arg(long, alias = "liar", default_value_t = 0)]
    pub(crate) liars: u32,
    /// The blob's size: bytes, or with a unit `KiB`, `MiB`, `GiB`.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    pub(crate) size: u64,
    /// Mean degree of the random overlay.
    #[arg(long, default_value_t = 8)]
    pub(crate) degree: u32,
    /// Every node's upload bandwidth in bytes per second (its serving
    /// budget too).
    #[arg(long, default_value_t = 12_500_000)]
    pub(crate) upload_bytes: u64,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub(crate) latency_ms: u64,
    /// Extra one-way delay, uniform in 0..=jitter, milliseconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) jitter_ms: u64,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct NatArgs {
    /// The simulation seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Nodes in the network, relays included.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) nodes: u32,
    /// Share of the non-relay nodes behind a NAT.
    #[arg(long, default_value_t = 0.6)]
    pub(crate) nat_fraction: f64,
    /// Share of NATed nodes that map their port (UPnP).
    #[arg(long, default_value_t = 0.2)]
    pub(crate) upnp: f64,
    /// Public relays (nodes 0..relays); 0: one per 100 nodes, at least 4.
    #[arg(long, default_value_t = 0)]
    pub(crate) relays: u32,
    /// NAT types in percent: full cone, address-restricted,
    /// port-restricted, symmetric.
    #[arg(long, default_value = "20,20,30,30", value_parser = parse_mix)]
    pub(crate) mix: NatMix,
    /// Print exactly one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_mix(text: &str) -> Result<NatMix, String> {
    let parts: Vec<u32> = text
        .split(',')
        .map(|p| p.trim().parse::<u32>().map_err(|e| format!("{text}: {e}")))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [full_cone, address_restricted, port_restricted, symmetric]
            if full_cone + address_restricted + port_restricted + symmetric > 0 =>
        {
            Ok(NatMix {
                full_cone,
                address_restricted,
                port_restricted,
                symmetric,
            })
        }
        _ => Err(format!(
            "{text}: four percentages, full cone, address-restricted, port-restricted, symmetric"
        )),
    }
}

impl NatArgs {
    pub(crate) fn params(&self) -> NatParams {
        NatParams {
            nodes: self.nodes,
            seed: self.seed,
            nat_fraction: self.nat_fraction.clamp(0.0, 1.0),
            upnp: self.upnp.clamp(0.0, 1.0),
            mix: self.mix,
            relays: if self.relays == 0 {
                (self.nodes / 100).max(4)
            } else {
                self.relays
            },
            ..NatParams::default()
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let number: u64 = number.parse().map_err(|e| format!("{text}: {e}"))?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (B, KiB, MiB, GiB)")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text}: too large"))
}

impl BlobsArgs {
    pub(crate) fn params(&self) -> BlobsParams {
        BlobsParams {
            nodes: self.nodes,
            fetchers: self.fetchers,
            liars: self.liars,
            size: self.size,
            degree: self.degree,
            upload: self.upload_bytes,
            seed: self.seed,
            net: net(self.latency_ms, self.jitter_ms),
            ..BlobsParams::default()
        }
    }
}

impl SyncArgs {
    pub(crate) fn params(&self) -> SyncParams {
        SyncParams {
            nodes: self.nodes,
            writers: self.writers,
            writes: self.writes,
            keys: self.keys,
            partition: !self.no_partition,
            crash: self.crash,
            late: self.late,
            degree: self.degree,
            write_interval: Duration::from_millis(self.write_interval_ms),
            seed: self.seed,
            net: net(self.latency_ms, self.jitter_ms),
        }
    }
}

fn net(latency_ms: u64, jitter_ms: u64) -> NetModel {
    NetModel {
        latency: Duration::from_millis(latency_ms),
        jitter: Duration::from_millis(jitter_ms),
        ..NetModel::default()
    }
}

impl FloodArgs {
    pub(crate) fn params(&self) -> FloodParams {
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
                TopologyArg::Join => Topology::Join {
                    join_interval: Duration::from_millis(self.join_interval_ms),
                },
            },
            mode: match self.mode {
                ModeArg::Flood => Mode::Flood,
                ModeArg::Plumtree => Mode::Plumtree,
            },
            hyparview: match self.membership {
                Some(m) => m == MembershipArg::Hyparview,
                None => self.mode == ModeArg::Plumtree || self.topology == TopologyArg::Join,
            },
            broadcasts: self.broadcasts.max(1),
            net: NetModel {
                links: self.latency_model.clone(),
                upload: self.upload_bandwidth,
                ..net(self.latency_ms, self.jitter_ms)
            },
            crash: match self.fail_fraction {
                Some(f) => ((f.clamp(0.0, 1.0) * f64::from(self.nodes)).round() as u32)
                    .min(self.nodes.saturating_sub(2)),
                None => self.crash,
            },
            gap: Duration::from_secs(self.gap_s),
            churn: self.churn,
            churn_for: Duration::from_secs(self.churn_for_s),
            kill: self.fail_mode == FailModeArg::Kill,
            optimize_threshold: self.optimize_threshold,
            link_announce: self.link_announce_ms.map(Duration::from_millis),
            max_hops: self.max_hops,
            payload_len: self.payload,
            ..FloodParams::default()
        }
    }
}

impl LivenessArgs {
    pub(crate) fn params(&self) -> LivenessParams {
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
}

impl ChordArgs {
    pub(crate) fn params(&self) -> ChordParams {
        ChordParams {
            nodes: self.nodes,
            r: self.r,
            lookups: self.lookups,
            fail_fraction: self.fail_fraction,
            churn: self.churn,
            keys: self.keys,
            seed: self.seed,
            unconstrained: self.unconstrained,
            partition_for: self.partition_for,
            founded: self.founded,
            ..ChordParams::default()
        }
    }
}

/// Parses a subcommand's options from `args` (for the bare default run,
/// so it shares the subcommands' defaults and replay lines).
pub(crate) trait ParseDefault: Sized {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_their_units_and_bad_ones_are_refused() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("99999999999999999m").is_err());
    }

    #[test]
    fn a_merge_run_replays_with_its_options() {
        let chord = ChordArgs::parse_default(&[
            "--nodes",
            "300",
            "--fail-fraction",
            "0.5",
            "--unconstrained",
            "--partition-for",
            "1m",
        ])
        .expect("parses");
        let params = chord.params();
        assert!(params.unconstrained);
        assert_eq!(params.partition_for, Some(Duration::from_secs(60)));
        let replay = params.replay();
        assert!(
            replay.ends_with("--unconstrained --partition-for 60000ms"),
            "{replay}"
        );
        let words: Vec<&str> = replay.split_whitespace().skip(2).collect();
        let again = ChordArgs::parse_default(&words).expect("the replay parses");
        assert_eq!(again.params(), params);
    }

    #[test]
    fn a_flood_on_a_richer_network_replays_with_its_model() {
        let flood = FloodArgs::parse_default(&[
            "--nodes",
            "300",
            "--latency-model",
            "geo",
            "--upload-bandwidth",
            "2Mbit..20Mbit",
        ])
        .expect("parses");
        let params = flood.params();
        assert_eq!(params.net.links, LatencyModel::geo());
        assert_eq!(
            params.net.upload,
            Some(Upload {
                min_bytes_per_sec: 250_000,
                max_bytes_per_sec: 2_500_000
            })
        );
        let replay = params.replay();
        assert!(
            replay.ends_with("--latency-model geo --upload-bandwidth 250000B..2500000B"),
            "{replay}"
        );
        let again = Cli::try_parse_from(replay.split(' ')).expect("replay parses");
        let Some(Cmd::Flood(again)) = again.command else {
            panic!("not flood");
        };
        assert_eq!(again.params().replay(), replay);
        assert_eq!(again.params().net, params.net);
        assert!(FloodArgs::parse_default(&["--latency-model", "mars"]).is_err());
        assert!(FloodArgs::parse_default(&["--upload-bandwidth", "fast"]).is_err());
        // The default run's replay line does not mention the models.
        let plain = FloodArgs::parse_default(&[])
            .expect("parses")
            .params()
            .replay();
        assert!(
            !plain.contains("model") && !plain.contains("upload"),
            "{plain}"
        );
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
        let replay = args.params().replay();
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
        let replay = flood.params().replay();
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
        let replay = chord.params().replay();
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
