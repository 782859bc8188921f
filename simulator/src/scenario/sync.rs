//! The sync scenario (spec/sync.md): a random overlay of nodes that run the
//! sync table; writers set and delete keys (some contested, so leases
//! refuse some writes) while the network is split in two and some nodes
//! are down; then the partition heals, the crashed nodes come back empty,
//! late joiners arrive, and the run waits until every live node holds the
//! same table (one digest per node). Reports the convergence time after
//! the last write and the bytes sent per applied write and node; fails
//! with the replay command if a node still diverges.

use std::fmt;
use std::time::Instant as WallClock;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::{
    CommandError, Config, Duration, PeersConfig, Security, SyncCommand, SyncConfig, SyncError,
};
use serde::Serialize;

use crate::engine::{NetModel, NodeIdx, Sim, SimConfig};
use crate::show::{Figure, Report};

/// What to run.
#[derive(Debug, Clone)]
pub struct SyncParams {
    /// Nodes at the start.
    pub nodes: u32,
    /// Nodes that write (the first `writers` nodes).
    pub writers: u32,
    /// Writes in all, one every `write_interval`, by a random writer.
    pub writes: u32,
    /// Keys the writes pick from (fewer keys: more contested leases).
    pub keys: u32,
    /// Split the network in two halves for the writes.
    pub partition: bool,
    /// Non-writer nodes crashed before the writes and restarted (empty)
    /// after them.
    pub crash: u32,
    /// Nodes that join after the writes.
    pub late: u32,
    /// Mean degree of the random overlay.
    pub degree: u32,
    /// Time between two writes.
    pub write_interval: Duration,
    /// The simulation seed.
    pub seed: u64,
    /// The network model.
    pub net: NetModel,
}

impl Default for SyncParams {
    fn default() -> Self {
        SyncParams {
            nodes: 1000,
            writers: 10,
            writes: 200,
            keys: 100,
            partition: true,
            crash: 10,
            late: 10,
            degree: 8,
            write_interval: Duration::from_millis(20),
            seed: 1,
            net: NetModel::default(),
        }
    }
}

impl SyncParams {
    /// The command that replays this run, every option spelled out.
    pub fn replay(&self) -> String {
        format!(
            "ringmesh-sim sync --seed {} --nodes {} --writers {} --writes {} --keys {} {}\
             --crash {} --late {} --degree {} --write-interval-ms {} --latency-ms {} \
             --jitter-ms {}",
            self.seed,
            self.nodes,
            self.writers,
            self.writes,
            self.keys,
            if self.partition {
                ""
            } else {
                "--no-partition "
            },
            self.crash,
            self.late,
            self.degree,
            self.write_interval.as_millis(),
            self.net.latency.as_millis(),
            self.net.jitter.as_millis()
        )
    }
}

/// What a sync run measured; `"scenario": "sync"` leads the JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "scenario", rename = "sync")]
pub struct SyncReport {
    /// Nodes at the start.
    pub nodes: u32,
    /// Live nodes at the end (late joiners included).
    pub live_nodes: u32,
    /// Writes attempted.
    pub writes: u32,
    /// Writes the writer's node accepted (sets and deletes).
    pub applied_writes: u32,
    /// Of those, deletes.
    pub deletes: u32,
    /// Writes refused by the writer's node because another writer's lease
    /// held there.
    pub refused_leased: u32,
    /// Keys (values and tombstones) every node holds at the end.
    pub keys_held: usize,
    /// Live nodes whose table digest is not the most common one (must be
    /// 0).
    pub diverging_nodes: u32,
    /// From the last write (and the heal, the restarts, the late joins that
    /// follow it at once) until every live node held the same table,
    /// virtual milliseconds; `null` if it never did.
    pub convergence_ms: Option<f64>,
    /// From the moment the network was whole again (the partition's broken
    /// links redialled, the crashed nodes restarted, the late joiners
    /// dialling) until every live node held the same table, virtual
    /// milliseconds: what anti-entropy and the flood took.
    pub convergence_after_heal_ms: Option<f64>,
    /// Bytes delivered from the first write to convergence: the writes'
    /// floods, anti-entropy, and everything else the nodes sent meanwhile
    /// (pings, handshakes of the redials after the heal).
    pub bytes: u64,
    /// `bytes / (applied_writes × live_nodes)`.
    pub bytes_per_write_per_node: f64,
    /// Entries refused by receivers for a held lease (stored as losers or
    /// dropped), summed over nodes.
    pub lease_held: u64,
    /// Anti-entropy exchanges started, summed over nodes.
    pub exchanges: u64,
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

impl Report for SyncReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn failure(&self) -> String {
        format!(
            "sync did not converge: {} of {} live nodes hold another table",
            self.diverging_nodes, self.live_nodes
        )
    }

    fn replay(&self) -> &str {
        &self.replay
    }
}

impl Figure for SyncReport {
    fn draw(&self, _path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
        Err("the sync scenario draws no figure".into())
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let converged = match (self.convergence_ms, self.convergence_after_heal_ms) {
            (Some(ms), Some(heal)) => format!(
                "converged {ms:.0} ms after the last write ({heal:.0} ms after the network was whole again)"
            ),
            _ => "did NOT converge".to_owned(),
        };
        write!(
            f,
            "sync: {} nodes ({} live at the end), seed {}\n  \
             {} writes: {} applied ({} deletes), {} refused by a lease; {} keys held\n  \
             {converged}; {} diverging nodes\n  \
             {} bytes delivered, {:.1} bytes per applied write per node; \
             {} entries lost to leases, {} anti-entropy exchanges\n  \
             {} events in {:.0} ms wall, peak RSS {:.0} MiB\n  \
             trace {}\n",
            self.nodes,
            self.live_nodes,
            self.seed,
            self.writes,
            self.applied_writes,
            self.deletes,
            self.refused_leased,
            self.keys_held,
            self.diverging_nodes,
            self.bytes,
            self.bytes_per_write_per_node,
            self.lease_held,
            self.exchanges,
            self.events,
            self.wall_ms,
            self.peak_rss_mib,
            self.trace_hash,
        )
    }
}

/// The nodes' configuration: the LAN preset, the sync table on, the
/// overlay wired by hand (no dialling of their own).
fn config() -> Config {
    let base = Config::lan();
    Config {
        security: Security::Plaintext,
        peers: PeersConfig {
            target_peers: 0,
            peer_exchange_size: 0,
            max_known_peers: 32,
            ..base.peers
        },
        sync: Some(SyncConfig {
            max_skew: Duration::from_secs(5),
            ..SyncConfig::lan()
        }),
        ..base
    }
}

/// Runs the scenario.
pub fn run(
    params: &SyncParams,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<SyncReport, Box<dyn std::error::Error>> {
    let wall = WallClock::now();
    let n = params.nodes;
    if n < 2 || params.writers == 0 || params.writers > n || params.keys == 0 {
        return Err("need at least 2 nodes, 1 to --nodes writers and at least 1 key".into());
    }
    if params.crash > n - params.writers {
        return Err("--crash counts non-writer nodes: at most --nodes − --writers".into());
    }
    let mut sim = Sim::new(SimConfig {
        seed: params.seed,
        net: params.net.clone(),
        echo_requests: false,
    });
    let mut rng = ChaCha8Rng::from_seed(blake3::derive_key(
        "ringmesh-sim v1 sync scenario",
        &params.seed.to_le_bytes(),
    ));
    let config = config();
    let dials = (params.degree / 2).max(1);
    sim.reserve((n + params.late) as usize);
    sim.add_nodes(&config, n, |done| {
        progress("nodes", u64::from(done), u64::from(n))
    })?;
    let mut edges = Vec::with_capacity((n * dials) as usize);
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
            edges.push((i, j));
        }
        if i % 1024 == 0 {
            sim.run_for(Duration::from_micros(1));
            progress("wiring", u64::from(i), u64::from(n));
        }
    }
    sim.settle(Duration::from_secs(60));

    // Faults during the writes: crashed non-writers, two halves.
    let mut crashed = Vec::new();
    while crashed.len() < params.crash as usize {
        let victim = params.writers + (rng.next_u64() % u64::from(n - params.writers)) as NodeIdx;
        if !crashed.contains(&victim) {
            sim.crash(victim);
            crashed.push(victim);
        }
    }
    if params.partition {
        let groups: Vec<u16> = (0..n).map(|i| u16::from(i % 2 == 1)).collect();
        sim.partition(&groups);
    }

    let bytes_before = sim.stats().bytes;
    let (mut applied, mut deletes, mut refused) = (0, 0, 0);
    // The keys each writer has set: a delete takes one of its own.
    let mut written: Vec<Vec<Bytes>> = vec![Vec::new(); params.writers as usize];
    for w in 0..params.writes {
        let writer = (rng.next_u64() % u64::from(params.writers)) as NodeIdx;
        let own = &mut written[writer as usize];
        let delete = !own.is_empty() && rng.next_u64().is_multiple_of(10);
        let command = if delete {
            let key = own.swap_remove((rng.next_u64() % own.len() as u64) as usize);
            SyncCommand::Delete { key }
        } else {
            let key = Bytes::from(format!("key-{}", rng.next_u64() % u64::from(params.keys)));
            own.push(key.clone());
            let value = Bytes::from(format!("value {w} by {writer}"));
            SyncCommand::Set { key, value }
        };
        match sim.command(writer, command) {
            Ok(_) => {
                applied += 1;
                deletes += u32::from(delete);
            }
            Err(CommandError::Sync(SyncError::Leased { .. })) => {
                refused += 1;
                if !delete {
                    written[writer as usize].pop();
                }
            }
            Err(CommandError::Sync(SyncError::NotFound)) => {}
            Err(e) => return Err(format!("write {w} refused: {e}").into()),
        }
        sim.run_for(params.write_interval);
        if w % 64 == 0 {
            progress("writing", u64::from(w), u64::from(params.writes));
        }
    }
    let last_write = sim.now();

    // Heal: connections across the halves stay broken until liveness
    // closes them; the overlay's edges are dialled again, the crashed
    // nodes restart empty and rejoin through three random edges' ends, and
    // late joiners dial three random live nodes.
    if params.partition {
        sim.heal();
        sim.run_for(config.detection_time() + Duration::from_secs(1));
        for &(i, j) in &edges {
            if sim.node(i).is_some() && sim.node(j).is_some() && !connected(&sim, i, j) {
                sim.connect(i, j)?;
            }
        }
    }
    for &i in &crashed {
        sim.restart(i)?;
    }
    let mut joiners = crashed.clone();
    for _ in 0..params.late {
        joiners.push(sim.add_node(config.clone())?);
    }
    let live_before_joins: Vec<NodeIdx> = sim
        .live_nodes()
        .into_iter()
        .filter(|i| !joiners.contains(i))
        .collect();
    for &i in &joiners {
        for _ in 0..3 {
            let via = live_before_joins[(rng.next_u64() % live_before_joins.len() as u64) as usize];
            sim.connect(i, via)?;
        }
    }

    let healed_at = sim.now();
    // Wait for one table everywhere, looking every 100 ms, for at most
    // 120 s past the heal.
    let limit = sim.now() + Duration::from_secs(120);
    let mut converged_at = None;
    while sim.now() < limit {
        sim.run_for(Duration::from_millis(100));
        if diverging(&sim).0 == 0 {
            converged_at = Some(sim.now());
            break;
        }
    }
    let (diverging_nodes, keys_held) = diverging(&sim);
    let live = sim.live_nodes();
    let bytes = sim.stats().bytes - bytes_before;
    let (lease_held, exchanges) = live
        .iter()
        .filter_map(|&i| sim.node(i))
        .map(|node| node.stats().sync)
        .fold((0, 0), |(l, e), s| (l + s.lease_held, e + s.exchanges));
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
    Ok(SyncReport {
        nodes: n,
        live_nodes: live.len() as u32,
        writes: params.writes,
        applied_writes: applied,
        deletes,
        refused_leased: refused,
        keys_held,
        diverging_nodes,
        convergence_ms: converged_at.map(|at| (at - last_write).as_micros() as f64 / 1e3),
        convergence_after_heal_ms: converged_at.map(|at| (at - healed_at).as_micros() as f64 / 1e3),
        bytes,
        bytes_per_write_per_node: bytes as f64 / (f64::from(applied.max(1)) * live.len() as f64),
        lease_held,
        exchanges,
        events: sim.stats().events,
        wall_ms,
        peak_rss_mib: super::flood::peak_rss_mib(),
        trace_hash: sim.trace_hash(),
        seed: params.seed,
        ok: converged_at.is_some() && diverging_nodes == 0,
        replay: params.replay(),
    })
}

fn connected<O: crate::engine::Observer>(sim: &Sim<O>, i: NodeIdx, j: NodeIdx) -> bool {
    sim.node(i).is_some_and(|node| node.is_connected(sim.id(j)))
}

/// Live nodes whose (digest, keys) is not the most common one, and how many
/// keys that most common table holds.
fn diverging<O: crate::engine::Observer>(sim: &Sim<O>) -> (u32, usize) {
    let mut tables: Vec<(u64, usize)> = sim
        .live_nodes()
        .into_iter()
        .filter_map(|i| sim.node(i))
        .map(|node| (node.sync_digest(), node.sync_usage().entries))
        .collect();
    tables.sort_unstable();
    let mut best = (0usize, (0u64, 0usize));
    let mut k = 0;
    while k < tables.len() {
        let run = tables[k..].iter().take_while(|t| **t == tables[k]).count();
        if run > best.0 {
            best = (run, tables[k]);
        }
        k += run;
    }
    ((tables.len() - best.0) as u32, best.1.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_network_with_crashes_and_late_joiners_converges() {
        let params = SyncParams {
            nodes: 200,
            writers: 5,
            writes: 60,
            keys: 20,
            crash: 5,
            late: 5,
            ..SyncParams::default()
        };
        let report = run(&params, |_, _, _| {}).expect("runs");
        assert!(report.ok, "{report}");
        assert_eq!(report.diverging_nodes, 0);
        assert_eq!(report.live_nodes, 205);
        assert!(
            report.applied_writes > 0 && report.keys_held > 0,
            "{report}"
        );
        let again = run(&params, |_, _, _| {}).expect("runs");
        assert_eq!(again.trace_hash, report.trace_hash);
    }
}
