//! A small, narrated run of the overlay: nodes join through one bootstrap
//! node over Noise, fill up to their target peer count, flood a broadcast
//! from every node, and detect a crashed node.

use std::fmt::{self, Write as _};

use bytes::Bytes;
use ringmesh::testing::{Network, Recorded};
use ringmesh::{
    CloseReason, Config, Duration, Event, MeshCommand, MeshEvent, PeersConfig, PeersEvent, Security,
};
use serde::Serialize;

use crate::show::Report;

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Number of nodes; all bootstrap from node 0.
    pub nodes: usize,
    /// Peers each node keeps.
    pub target_peers: usize,
    /// One-way link latency.
    pub latency: Duration,
    /// Seed for identities and node randomness.
    pub seed: u64,
    /// Session security.
    pub security: Security,
}

impl DemoConfig {
    /// The command that replays this demo.
    pub fn replay(&self) -> String {
        format!(
            "ringmesh-sim demo --seed {} --nodes {}",
            self.seed, self.nodes
        )
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            nodes: 16,
            target_peers: 4,
            latency: Duration::from_millis(20),
            seed: 1,
            security: Security::Noise,
        }
    }
}

/// What the demo saw. Field names are the JSON names, and
/// `"scenario": "demo"` leads the JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "scenario", rename = "demo")]
pub struct DemoReport {
    /// Number of nodes.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// The fewest peers any node had after joining.
    pub min_peers: usize,
    /// Broadcast deliveries expected: every node's broadcast at every other
    /// node.
    pub expected_deliveries: usize,
    /// Broadcast deliveries seen.
    pub deliveries: usize,
    /// Deliveries of a broadcast a node had already delivered (must be 0).
    pub duplicate_deliveries: usize,
    /// Neighbours of the crashed node that declared it down within the
    /// detection time.
    pub crash_detected_by: usize,
    /// Neighbours the crashed node had.
    pub crash_neighbours: usize,
    /// Virtual time at the end, in milliseconds.
    pub virtual_ms: f64,
    /// Whether everything the demo checks held ([`Report::ok`]).
    ok: bool,
    /// The command that replays the demo.
    #[serde(skip)]
    pub replay: String,
    /// A human-readable account of the run: the summary.
    #[serde(skip)]
    pub log: String,
}

impl Report for DemoReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn failure(&self) -> String {
        "the demo broke an invariant".to_owned()
    }

    fn replay(&self) -> &str {
        &self.replay
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.log)
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1e3
}

/// Runs the demo (see the module docs).
pub fn run(config: &DemoConfig) -> Result<DemoReport, Box<dyn std::error::Error>> {
    let mut log = format!(
        "ringmesh demo: {} nodes, {:?} links, seed {}\n",
        config.nodes, config.latency, config.seed
    );
    let mut net = Network::new(config.latency);
    let node_config = Config {
        security: config.security,
        peers: PeersConfig {
            target_peers: config.target_peers,
            bootstrap: vec![Network::addr_of(0)],
            ..Config::lan().peers
        },
        ..Config::lan()
    };
    for i in 0..config.nodes {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&config.seed.to_le_bytes());
        secret[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        net.add_node(node_config.clone(), secret, config.seed ^ i as u64)?;
    }
    writeln!(
        log,
        "{} nodes ({:?}) join through node 0, each aiming for {} peers",
        config.nodes, config.security, config.target_peers
    )?;

    // 1. Join.
    net.run_for(Duration::from_secs(20));
    let peers: Vec<usize> = (0..config.nodes)
        .map(|i| net.node(i).peer_count())
        .collect();
    let min_peers = peers.iter().copied().min().unwrap_or(0);
    writeln!(
        log,
        "{:>9.1} ms  joined: peers per node min {min_peers}, max {}, {} sessions",
        ms(net.now().as_micros()),
        peers.iter().max().unwrap_or(&0),
        net.events()
            .iter()
            .filter(|Recorded { event: e, .. }| matches!(
                e,
                Event::Peers(PeersEvent::Established { .. })
            ))
            .count()
    )?;

    let (deliveries, duplicate_deliveries) = flood_from_everyone(&mut net, config, &mut log)?;
    let expected_deliveries = config.nodes * (config.nodes - 1);
    let (detected, neighbours) = crash_the_last(&mut net, config, &node_config, &mut log)?;
    Ok(DemoReport {
        nodes: config.nodes,
        seed: config.seed,
        min_peers,
        expected_deliveries,
        deliveries,
        duplicate_deliveries,
        crash_detected_by: detected,
        crash_neighbours: neighbours,
        virtual_ms: net.now().as_micros() as f64 / 1e3,
        ok: deliveries == expected_deliveries
            && duplicate_deliveries == 0
            && detected == neighbours,
        replay: config.replay(),
        log,
    })
}

/// Every node broadcasts once; (deliveries, deliveries of a broadcast
/// already delivered).
fn flood_from_everyone(
    net: &mut Network,
    config: &DemoConfig,
    log: &mut String,
) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let start = net.events().len();
    for i in 0..config.nodes {
        let payload = Bytes::from(format!("hello from node {i}"));
        net.command(i, MeshCommand::Broadcast { payload })?;
    }
    net.settle();
    let mut seen = std::collections::BTreeSet::new();
    let (mut deliveries, mut duplicate_deliveries, mut hops) = (0, 0, 0u64);
    for Recorded { node, event, .. } in &net.events()[start..] {
        if let Event::Mesh(MeshEvent::Broadcast {
            origin,
            seq,
            hops: h,
            ..
        }) = event
        {
            deliveries += 1;
            hops += u64::from(*h);
            if !seen.insert((*node, *origin, *seq)) {
                duplicate_deliveries += 1;
            }
        }
    }
    let expected_deliveries = config.nodes * (config.nodes - 1);
    let dropped: u64 = (0..config.nodes)
        .map(|i| net.node(i).stats().mesh.duplicate)
        .sum();
    writeln!(
        log,
        "{:>9.1} ms  flood: {deliveries}/{expected_deliveries} deliveries, mean {:.2} hops, {dropped} redundant copies dropped, {duplicate_deliveries} delivered twice",
        ms(net.now().as_micros()),
        hops as f64 / deliveries.max(1) as f64
    )?;

    Ok((deliveries, duplicate_deliveries))
}

/// Crashes the last node silently; its neighbours must notice within the
/// detection time. (Neighbours that did, neighbours it had.)
fn crash_the_last(
    net: &mut Network,
    config: &DemoConfig,
    node_config: &Config,
    log: &mut String,
) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let victim = config.nodes - 1;
    let victim_id = net.node(victim).node_id();
    let neighbours = (0..config.nodes)
        .filter(|&i| net.node(i).is_connected(victim_id))
        .count();
    let crash_at = net.now();
    let detection = node_config.detection_time();
    net.crash(victim);
    net.run_for(detection + Duration::from_secs(1));
    let mut detected = 0;
    for Recorded { node, at, event } in net.events() {
        if let Event::Peers(PeersEvent::Down { peer, reason }) = event
            && *peer == victim_id
        {
            let after = *at - crash_at;
            if *reason == CloseReason::Unresponsive && after <= detection {
                detected += 1;
            }
            writeln!(
                log,
                "{:>9.1} ms  node {node}: node {victim} down ({reason}) {:.0} ms after the crash",
                ms(at.as_micros()),
                ms(after.as_micros())
            )?;
        }
    }
    writeln!(
        log,
        "crash of node {victim}: {detected}/{neighbours} neighbours detected it within {:.1} s",
        detection.as_secs_f64()
    )?;
    Ok((detected, neighbours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_joins_floods_once_everywhere_and_detects_the_crash() {
        for security in [Security::Noise, Security::Plaintext] {
            let report = run(&DemoConfig {
                security,
                nodes: 8,
                ..DemoConfig::default()
            })
            .expect("demo runs");
            assert!(report.ok(), "{}", report.log);
            assert!(report.min_peers >= 4, "{}", report.log);
            assert_eq!(report.deliveries, 8 * 7);
            assert!(report.crash_neighbours > 0, "{}", report.log);
        }
    }
}
