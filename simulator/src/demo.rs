//! A small, narrated run: a few nodes, Noise handshakes, encrypted messages.

use std::fmt::Write as _;

use bytes::Bytes;
use ringmesh::testing::Network;
use ringmesh::{Command, Config, Duration, Event, Security};

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Number of nodes; each dials the next, in a line.
    pub nodes: usize,
    /// One-way link latency.
    pub latency: Duration,
    /// Seed for identities and node randomness.
    pub seed: u64,
    /// Session security.
    pub security: Security,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            nodes: 4,
            latency: Duration::from_millis(20),
            seed: 1,
            security: Security::Noise,
        }
    }
}

/// What the demo saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// Sessions established (counted once per side).
    pub sessions: usize,
    /// Direct messages delivered.
    pub delivered: usize,
    /// Direct messages sent.
    pub sent: usize,
    /// Virtual time at the end, in microseconds.
    pub virtual_micros: u64,
    /// A human-readable account of the run.
    pub log: String,
}

/// Runs the demo: node `i` dials node `i + 1`; once every handshake is
/// done, each node greets its neighbours.
pub fn run(config: &DemoConfig) -> Result<DemoReport, Box<dyn std::error::Error>> {
    let mut log = String::new();
    let mut net = Network::new(config.latency);
    let node_config = Config {
        security: config.security,
        ..Config::default()
    };
    for i in 0..config.nodes {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&config.seed.to_le_bytes());
        secret[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        let index = net.add_node(node_config.clone(), secret, config.seed ^ i as u64)?;
        writeln!(
            log,
            "node {index}: id {} at {}",
            net.node(index).node_id(),
            Network::addr_of(index)
        )?;
    }
    for i in 0..config.nodes.saturating_sub(1) {
        net.connect(i, i + 1)?;
    }
    net.settle();
    let mut sessions = 0;
    for (node, at, event) in net.events() {
        if let Event::SessionEstablished { peer, security, .. } = event {
            sessions += 1;
            writeln!(
                log,
                "{:>8.1} ms  node {node}: {security:?} session with {} (authenticated id)",
                at.as_micros() as f64 / 1e3,
                peer.short()
            )?;
        }
    }
    let mut sent = 0;
    for i in 0..config.nodes {
        for peer in net.node(i).connected_peers() {
            let text = format!("hello from node {i}");
            net.command(
                i,
                Command::Send {
                    to: peer,
                    payload: Bytes::from(text),
                },
            )?;
            sent += 1;
        }
    }
    let events_before = net.events().len();
    net.settle();
    let mut delivered = 0;
    for (node, at, event) in &net.events()[events_before..] {
        if let Event::Direct { from, payload } = event {
            delivered += 1;
            writeln!(
                log,
                "{:>8.1} ms  node {node}: from {}: {:?}",
                at.as_micros() as f64 / 1e3,
                from.short(),
                String::from_utf8_lossy(payload)
            )?;
        }
    }
    let bytes: u64 = (0..config.nodes)
        .map(|i| net.node(i).stats().bytes_sent)
        .sum();
    writeln!(
        log,
        "{sessions} session ends established, {delivered}/{sent} messages delivered, {bytes} bytes on the wire, {:.1} ms virtual time",
        net.now().as_micros() as f64 / 1e3
    )?;
    Ok(DemoReport {
        sessions,
        delivered,
        sent,
        virtual_micros: net.now().as_micros(),
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_establishes_every_link_and_delivers_every_greeting() {
        for security in [Security::Noise, Security::Plaintext] {
            let report = run(&DemoConfig {
                security,
                ..DemoConfig::default()
            })
            .expect("demo runs");
            assert_eq!(report.sessions, 2 * 3, "{}", report.log);
            assert_eq!(report.sent, 2 * 3);
            assert_eq!(report.delivered, report.sent, "{}", report.log);
        }
    }
}
