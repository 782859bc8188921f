//! A gossip counter that converges: every node holds a grow-only counter
//! (a G-counter: one entry per node, each written only by its node). At
//! random moments a node adds a random amount to its own entry and floods
//! the new entry with a mesh broadcast; a node receiving an entry keeps the
//! larger of it and what it holds. Once the increments stop, every node
//! must hold the same total, and that total must be the sum of every
//! node's own entry.
//!
//! ```text
//! cargo run --release -p ringmesh-sim --example gossip_counter -- [NODES] [DEGREE] [SEED]
//! ```
//!
//! Every increment floods to every node, so the work grows as the square
//! of the nodes: 200 nodes take about a second (119,400 deliveries), 1,000
//! nodes about 45 s (3 million) in a release build.

use bytes::Bytes;
use rand_core::SeedableRng;
use ringmesh::{Config, Duration, Event, MeshCommand, MeshEvent, Security};
use ringmesh_sim::topology;
use ringmesh_sim::{App, AppCx, NodeIdx, Sim, SimConfig};

/// Increments each node makes.
const INCREMENTS: u32 = 3;

/// One node's G-counter.
struct Counter {
    /// Entry `j` is the largest count of node `j` seen.
    entries: Vec<u64>,
    increments: u32,
    /// Broadcasts the node could not send.
    refused: u32,
}

impl Counter {
    fn total(&self) -> u64 {
        self.entries.iter().sum()
    }
}

fn encode(node: NodeIdx, count: u64) -> Bytes {
    let mut bytes = node.to_le_bytes().to_vec();
    bytes.extend_from_slice(&count.to_le_bytes());
    Bytes::from(bytes)
}

fn decode(payload: &[u8]) -> Option<(NodeIdx, u64)> {
    let node = NodeIdx::from_le_bytes(payload.get(..4)?.try_into().ok()?);
    let count = u64::from_le_bytes(payload.get(4..12)?.try_into().ok()?);
    Some((node, count))
}

impl App for Counter {
    fn on_start(&mut self, cx: &mut AppCx<'_>) {
        let at = cx.random_in(0..=1000);
        cx.after(Duration::from_millis(at), 0);
    }

    fn on_timer(&mut self, cx: &mut AppCx<'_>, _token: u64) {
        let me = cx.index() as usize;
        self.entries[me] += cx.random_in(1..=10);
        self.increments += 1;
        let payload = encode(cx.index(), self.entries[me]);
        if cx.command(MeshCommand::Broadcast { payload }).is_err() {
            self.refused += 1;
        }
        if self.increments < INCREMENTS {
            let next = cx.random_in(100..=1000);
            cx.after(Duration::from_millis(next), 0);
        }
    }

    fn on_event(&mut self, _cx: &mut AppCx<'_>, event: &Event) {
        if let Event::Mesh(MeshEvent::Broadcast { payload, .. }) = event
            && let Some((node, count)) = decode(payload)
            && let Some(entry) = self.entries.get_mut(node as usize)
        {
            *entry = (*entry).max(count);
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Nodes.
    pub(crate) nodes: u32,
    /// The total every node holds.
    pub(crate) total: u64,
    /// Broadcasts delivered (all nodes).
    pub(crate) delivered: u64,
    /// Virtual time of the run, ms.
    pub(crate) virtual_ms: u64,
    /// The trace hash.
    pub(crate) trace: String,
}

/// Runs `n` counters over a random `degree`-regular overlay from `seed`.
pub(crate) fn run(n: u32, degree: u32, seed: u64) -> Result<Summary, String> {
    let mut sim = Sim::new(SimConfig {
        seed,
        echo_requests: false,
        ..SimConfig::default()
    });
    let config = topology::hand_wired(Config {
        security: Security::Plaintext,
        ..Config::lan()
    });
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(blake3::derive_key(
        "gossip_counter example topology",
        &seed.to_le_bytes(),
    ));
    topology::random_regular(&mut sim, &mut rng, n, degree, &config).map_err(|e| e.to_string())?;
    sim.set_apps(move |_| -> Option<Box<dyn App>> {
        Some(Box::new(Counter {
            entries: vec![0; n as usize],
            increments: 0,
            refused: 0,
        }))
    });
    // Increments end within 1 + 2 × 1 s; floods take well under a second.
    sim.run_for(Duration::from_secs(8));

    let counter = |i: NodeIdx| {
        sim.app::<Counter>(i)
            .ok_or(format!("node {i} has no counter"))
    };
    // The truth: each node's own entry, as it holds it.
    let mut truth = 0;
    for i in 0..n {
        let c = counter(i)?;
        if c.increments != INCREMENTS || c.refused > 0 {
            return Err(format!(
                "node {i} made {} increments, {} broadcasts refused",
                c.increments, c.refused
            ));
        }
        truth += c.entries[i as usize];
    }
    for i in 0..n {
        let c = counter(i)?;
        if c.total() != truth {
            let behind = (0..n as usize)
                .filter(|&j| c.entries[j] != counter(j as NodeIdx).map_or(0, |o| o.entries[j]))
                .count();
            return Err(format!(
                "node {i} holds {} where the sum is {truth} ({behind} entries behind)",
                c.total()
            ));
        }
    }
    let delivered = (0..n)
        .filter_map(|i| sim.node(i))
        .map(|node| node.stats().mesh.delivered)
        .sum();
    Ok(Summary {
        nodes: n,
        total: truth,
        delivered,
        virtual_ms: sim.now().as_micros() / 1000,
        trace: sim.trace_hash(),
    })
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() {
    let mut args = std::env::args().skip(1);
    let n = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let degree = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let wall = std::time::Instant::now();
    match run(n, degree, seed) {
        Ok(s) => println!(
            "gossip_counter: {} nodes converged on {} ({} broadcasts delivered); \
             {} ms virtual in {:.2} s wall; trace {}",
            s.nodes,
            s.total,
            s.delivered,
            s.virtual_ms,
            wall.elapsed().as_secs_f64(),
            s.trace
        ),
        Err(why) => {
            eprintln!("gossip_counter FAILED (nodes {n}, degree {degree}, seed {seed}): {why}");
            std::process::exit(1);
        }
    }
}
