//! The blobs scenario (spec/blobs.md): one seeder adds a blob, `fetchers`
//! nodes fetch it at once over a random overlay, each naming only the
//! seeder and asking its neighbours (fetchers serve what they hold, so the
//! swarm carries most of it); `liars` nodes hold the blob but corrupt one
//! byte of every group they serve. Reports the time until every fetcher
//! holds the blob, the bytes the seeder sent against the swarm's, the
//! liars dropped, and checks every fetcher's bytes against the original.
//!
//! Memory: a fetcher's store keeps each group it verified as a slice of
//! the one original (it compares the bytes first, independently of the
//! protocol's own verification), so a run of 1,000 nodes does not hold
//! 1,000 copies.

use std::fmt;
use std::time::Instant as WallClock;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::blobs::{
    BlobHash, BlobStore, GROUP_LEN, GroupSet, MemStore, Outboard, ServeLimits, StoreError,
};
use ringmesh::{BlobsCommand, BlobsConfig, Config, Duration, Instant, PeersConfig, Security};
use serde::Serialize;

use crate::engine::{NetModel, NodeIdx, Sim, SimConfig, Upload};
use crate::show::{Figure, Report};

/// What to run.
#[derive(Debug, Clone)]
pub struct BlobsParams {
    /// Nodes in all: the seeder (node 0), the liars, the fetchers, and
    /// bystanders (nodes that neither hold nor fetch).
    pub nodes: u32,
    /// Fetchers (the last `fetchers` nodes).
    pub fetchers: u32,
    /// Nodes that hold the blob but corrupt what they serve (nodes
    /// `1..=liars`).
    pub liars: u32,
    /// The blob's length in bytes.
    pub size: u64,
    /// Mean degree of the random overlay.
    pub degree: u32,
    /// Every node's upload bandwidth, bytes per second; the serving budget
    /// matches it.
    pub upload: u64,
    /// The simulation seed.
    pub seed: u64,
    /// The network model (its `upload` is set from `upload`).
    pub net: NetModel,
    /// Give up after this much virtual time.
    pub limit: Duration,
}

impl Default for BlobsParams {
    fn default() -> Self {
        BlobsParams {
            nodes: 100,
            fetchers: 99,
            liars: 0,
            size: 4 << 20,
            degree: 8,
            upload: 12_500_000,
            seed: 1,
            net: NetModel::default(),
            limit: Duration::from_secs(3600),
        }
    }
}

impl BlobsParams {
    /// The command that replays this run, every option spelled out.
    pub fn replay(&self) -> String {
        format!(
            "ringmesh-sim blobs --seed {} --nodes {} --fetchers {} --liars {} --size {} \
             --degree {} --upload-bytes {} --latency-ms {} --jitter-ms {}",
            self.seed,
            self.nodes,
            self.fetchers,
            self.liars,
            self.size,
            self.degree,
            self.upload,
            self.net.latency.as_millis(),
            self.net.jitter.as_millis()
        )
    }
}

/// What a blobs run measured; `"scenario": "blobs"` leads the JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "scenario", rename = "blobs")]
pub struct BlobsReport {
    /// Nodes in all.
    pub nodes: u32,
    /// Fetchers.
    pub fetchers: u32,
    /// Lying providers.
    pub liars: u32,
    /// The blob's length.
    pub size: u64,
    /// Its chunk groups.
    pub groups: u64,
    /// Fetchers that hold every group at the end.
    pub complete: u32,
    /// Fetchers whose bytes differ from the original anywhere (must be 0).
    pub wrong: u32,
    /// From the fetch commands until the last fetcher held the blob,
    /// virtual seconds; `null` if not all did.
    pub all_done_s: Option<f64>,
    /// The median fetcher's completion time, virtual seconds.
    pub median_done_s: Option<f64>,
    /// Group bytes the seeder served.
    pub seeder_bytes: u64,
    /// `seeder_bytes / size`: copies of the blob the seeder sent.
    pub seeder_copies: f64,
    /// Group bytes the fetchers served each other.
    pub swarm_bytes: u64,
    /// Group bytes the liars served (every group corrupt).
    pub liar_bytes: u64,
    /// Groups refused by fetchers (each dropped its sender).
    pub groups_refused: u64,
    /// Providers dropped by fetchers (lied or slow).
    pub providers_dropped: u64,
    /// `Busy` answers (serving budgets spent), summed over nodes.
    pub refused_busy: u64,
    /// All bytes the network delivered (frames, handshakes, pings).
    pub bytes: u64,
    /// Simulator events processed.
    pub events: u64,
    /// Wall-clock time of the run, milliseconds.
    pub wall_ms: f64,
    /// Peak resident memory of the process, MiB (Linux; 0 elsewhere).
    pub peak_rss_mib: f64,
    /// The run's trace hash.
    pub trace_hash: String,
    /// The seed.
    pub seed: u64,
    ok: bool,
    /// The command that replays this run.
    pub replay: String,
}

impl Report for BlobsReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn failure(&self) -> String {
        format!(
            "blobs: {} of {} fetchers complete, {} with wrong bytes",
            self.complete, self.fetchers, self.wrong
        )
    }

    fn replay(&self) -> &str {
        &self.replay
    }
}

impl Figure for BlobsReport {
    fn draw(&self, _path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
        Err("the blobs scenario draws no figure".into())
    }
}

impl fmt::Display for BlobsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = match (self.all_done_s, self.median_done_s) {
            (Some(all), Some(median)) => {
                format!("every fetcher held it after {all:.1} s (median {median:.1} s)")
            }
            _ => "NOT every fetcher completed".to_owned(),
        };
        write!(
            f,
            "blobs: {} nodes, {} fetchers, {} liars, {} bytes ({} groups), seed {}\n  \
             {done}; {} complete, {} with wrong bytes\n  \
             seeder sent {} bytes ({:.2} copies), the swarm {} bytes, liars {} bytes\n  \
             {} groups refused, {} providers dropped, {} busy answers\n  \
             {} bytes delivered, {} events in {:.0} ms wall, peak RSS {:.0} MiB\n  \
             trace {}\n",
            self.nodes,
            self.fetchers,
            self.liars,
            self.size,
            self.groups,
            self.seed,
            self.complete,
            self.wrong,
            self.seeder_bytes,
            self.seeder_copies,
            self.swarm_bytes,
            self.liar_bytes,
            self.groups_refused,
            self.providers_dropped,
            self.refused_busy,
            self.bytes,
            self.events,
            self.wall_ms,
            self.peak_rss_mib,
            self.trace_hash,
        )
    }
}

/// A store that keeps the groups it is given as slices of the original
/// when they equal it (checked here, byte for byte), and can corrupt
/// what it serves (a liar).
struct SimStore {
    inner: MemStore,
    hash: BlobHash,
    original: Bytes,
    corrupt: bool,
}

impl SimStore {
    fn original_group(&self, group: u64) -> Bytes {
        let from = (group * GROUP_LEN) as usize;
        let to = (from + GROUP_LEN as usize).min(self.original.len());
        self.original.slice(from.min(to)..to)
    }
}

impl BlobStore for SimStore {
    fn outboard(&self, hash: &BlobHash) -> Option<&Outboard> {
        self.inner.outboard(hash)
    }
    fn outboard_mut(&mut self, hash: &BlobHash) -> Option<&mut Outboard> {
        self.inner.outboard_mut(hash)
    }
    fn held(&self, hash: &BlobHash) -> Option<&GroupSet> {
        self.inner.held(hash)
    }
    fn read_group(&self, hash: &BlobHash, group: u64) -> Option<Bytes> {
        let data = self.inner.read_group(hash, group)?;
        if !self.corrupt || data.is_empty() {
            return Some(data);
        }
        let mut bad = data.to_vec();
        let at = (group as usize * 7919) % bad.len();
        bad[at] ^= 0x40;
        Some(bad.into())
    }
    fn create(&mut self, outboard: Outboard) -> Result<(), StoreError> {
        self.inner.create(outboard)
    }
    fn write_group(&mut self, hash: &BlobHash, group: u64, data: Bytes) -> Result<(), StoreError> {
        let original = self.original_group(group);
        let data = if *hash == self.hash && data == original {
            original
        } else {
            data
        };
        self.inner.write_group(hash, group, data)
    }
    fn list(&self) -> Vec<BlobHash> {
        self.inner.list()
    }
}

/// The nodes' configuration: the LAN preset, blobs on with a serving
/// budget of the upload rate, the overlay wired by hand.
fn config(upload: u64) -> Config {
    let base = Config::lan();
    Config {
        security: Security::Plaintext,
        peers: PeersConfig {
            target_peers: 0,
            peer_exchange_size: 0,
            max_known_peers: 32,
            ..base.peers
        },
        blobs: Some(BlobsConfig {
            serve: ServeLimits {
                bytes_per_sec: upload,
                burst: (upload / 4).max(GROUP_LEN),
                ..ServeLimits::default()
            },
            ..BlobsConfig::default()
        }),
        ..base
    }
}

/// Bytes of a blob of `size`: a seeded stream (not compressible, not
/// periodic).
fn content(size: u64, seed: u64) -> Bytes {
    let mut rng = ChaCha8Rng::from_seed(blake3::derive_key(
        "ringmesh-sim v1 blobs content",
        &seed.to_le_bytes(),
    ));
    let mut data = vec![0u8; size as usize];
    rng.fill_bytes(&mut data);
    data.into()
}

/// Runs the scenario.
pub fn run(
    params: &BlobsParams,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<BlobsReport, Box<dyn std::error::Error>> {
    let wall = WallClock::now();
    let n = params.nodes;
    if n < 2 || params.fetchers == 0 || 1 + params.liars + params.fetchers > n {
        return Err("need 1 seeder + --liars + --fetchers ≤ --nodes, at least one fetcher".into());
    }
    let mut net = params.net.clone();
    net.upload = Some(Upload::fixed(params.upload));
    let mut sim = Sim::new(SimConfig {
        seed: params.seed,
        net,
        echo_requests: false,
    });
    let mut rng = ChaCha8Rng::from_seed(blake3::derive_key(
        "ringmesh-sim v1 blobs scenario",
        &params.seed.to_le_bytes(),
    ));
    let data = content(params.size, params.seed);
    let outboard = Outboard::compute(&data);
    let hash = outboard.root();
    let groups = outboard.groups();
    let config = config(params.upload);
    let dials = (params.degree / 2).max(1);
    sim.reserve(n as usize);
    sim.add_nodes(&config, n, |done| {
        progress("nodes", u64::from(done), u64::from(n))
    })?;
    let first_fetcher = n - params.fetchers;
    for i in 0..n {
        let mut store = MemStore::new();
        if i <= params.liars {
            store.add(data.clone())?;
        }
        let store = SimStore {
            inner: store,
            hash,
            original: data.clone(),
            corrupt: i >= 1 && i <= params.liars,
        };
        sim.node_mut(i)
            .ok_or("node down")?
            .set_blob_store(Box::new(store));
    }
    for i in 0..n {
        let mut picked = Vec::with_capacity(dials as usize);
        while picked.len() < dials.min(n - 1) as usize {
            let j = (rng.next_u64() % u64::from(n)) as NodeIdx;
            if j != i && !picked.contains(&j) {
                picked.push(j);
            }
        }
        for j in picked {
            sim.connect(i, j)?;
        }
        if i % 1024 == 0 {
            sim.run_for(Duration::from_micros(1));
            progress("wiring", u64::from(i), u64::from(n));
        }
    }
    sim.settle(Duration::from_secs(60));

    let seeder = sim.id(0);
    let start = sim.now();
    for i in first_fetcher..n {
        sim.command(
            i,
            BlobsCommand::Fetch {
                hash,
                providers: vec![seeder],
            },
        )?;
    }
    let limit = start + params.limit;
    let mut done_at: Vec<Option<Instant>> = vec![None; params.fetchers as usize];
    while sim.now() < limit && done_at.iter().any(Option::is_none) {
        sim.run_for(Duration::from_millis(100));
        let mut held_sum = 0;
        for (k, slot) in done_at.iter_mut().enumerate() {
            let i = first_fetcher + k as u32;
            let held = sim
                .node(i)
                .and_then(|node| node.blob_store())
                .and_then(|store| store.held(&hash))
                .map_or(0, GroupSet::count);
            held_sum += held;
            if slot.is_none() && held == groups {
                *slot = Some(sim.now());
            }
        }
        progress("fetching", held_sum, groups * u64::from(params.fetchers));
    }

    // Every fetcher's bytes against the original: each group must be the
    // original's own slice (the store kept it only after comparing).
    let (mut complete, mut wrong) = (0, 0);
    for i in first_fetcher..n {
        let Some(store) = sim.node(i).and_then(|node| node.blob_store()) else {
            continue;
        };
        let Some(held) = store.held(&hash) else {
            continue;
        };
        complete += u32::from(held.is_full());
        let bad = (0..groups).filter(|&g| held.contains(g)).any(|g| {
            let from = (g * GROUP_LEN) as usize;
            let to = (from + GROUP_LEN as usize).min(data.len());
            store.read_group(&hash, g).is_none_or(|got| {
                got.as_ptr() != data[from..].as_ptr() && got[..] != data[from..to]
            })
        });
        wrong += u32::from(bad);
    }
    let stats = |i: NodeIdx| {
        sim.node(i)
            .map(|node| node.stats().blobs)
            .unwrap_or_default()
    };
    let seeder_bytes = stats(0).serve.bytes_sent;
    let liar_bytes: u64 = (1..=params.liars).map(|i| stats(i).serve.bytes_sent).sum();
    let swarm_bytes: u64 = (first_fetcher..n).map(|i| stats(i).serve.bytes_sent).sum();
    let (groups_refused, providers_dropped) =
        (first_fetcher..n).map(stats).fold((0, 0), |(g, p), s| {
            (g + s.groups_refused, p + s.providers_dropped)
        });
    let refused_busy = (0..n).map(|i| stats(i).serve.refused_busy).sum();
    let mut times: Vec<f64> = done_at
        .iter()
        .flatten()
        .map(|at| (*at - start).as_micros() as f64 / 1e6)
        .collect();
    times.sort_by(f64::total_cmp);
    let all_done = done_at.iter().all(Option::is_some);
    Ok(BlobsReport {
        nodes: n,
        fetchers: params.fetchers,
        liars: params.liars,
        size: params.size,
        groups,
        complete,
        wrong,
        all_done_s: all_done.then(|| times.last().copied()).flatten(),
        median_done_s: all_done.then(|| times[times.len() / 2]),
        seeder_bytes,
        seeder_copies: seeder_bytes as f64 / params.size.max(1) as f64,
        swarm_bytes,
        liar_bytes,
        groups_refused,
        providers_dropped,
        refused_busy,
        bytes: sim.stats().bytes,
        events: sim.stats().events,
        wall_ms: wall.elapsed().as_secs_f64() * 1e3,
        peak_rss_mib: super::flood::peak_rss_mib(),
        trace_hash: sim.trace_hash(),
        seed: params.seed,
        ok: all_done && wrong == 0 && complete == params.fetchers,
        replay: params.replay(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_fetches_a_blob_past_a_lying_provider_and_replays() {
        let params = BlobsParams {
            nodes: 30,
            fetchers: 27,
            liars: 2,
            size: 1 << 20,
            ..BlobsParams::default()
        };
        let report = run(&params, |_, _, _| {}).expect("runs");
        assert!(report.ok(), "{report}");
        assert_eq!(report.wrong, 0);
        assert_eq!(report.complete, 27);
        assert!(report.swarm_bytes > 0, "{report}");
        assert!(
            report.groups_refused >= 1 && report.groups_refused <= report.providers_dropped,
            "{report}"
        );
        assert!(report.seeder_copies < 27.0, "{report}");
        let again = run(&params, |_, _, _| {}).expect("runs");
        assert_eq!(again.trace_hash, report.trace_hash);
    }
}
