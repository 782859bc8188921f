//! An application on the Chord table (the `dht` component): the nodes found
//! a ring; each writes a few keys of its own at random moments, then reads
//! keys written by random other nodes and checks the values.
//!
//! ```text
//! cargo run --release -p ringmesh-sim --example dht_app -- [NODES] [SEED]
//! ```
//!
//! Ends with a check that could fail: every put acknowledged by its
//! replicas, every read answered with the value its writer put.

use bytes::Bytes;
use ringmesh::wire::PeerEntry;
use ringmesh::{
    Accepted, ChordCommand, Config, DhtCommand, DhtEvent, DhtKey, Duration, Event, OpId, Security,
};
use ringmesh_sim::{App, AppCx, NodeIdx, Sim, SimConfig, addr_of};

/// Keys each node writes.
const KEYS: u32 = 3;
/// Keys each node reads.
const READS: u32 = 3;
/// Token of the reads' timer (the puts use their key's number).
const READ: u64 = u64::MAX;

fn key(writer: NodeIdx, k: u32) -> DhtKey {
    DhtKey::Open(Bytes::from(format!("key {writer}/{k}")))
}

fn value(writer: NodeIdx, k: u32) -> Bytes {
    Bytes::from(format!("written by {writer} as its key {k}"))
}

/// One node's user of the table.
struct TableUser {
    nodes: u32,
    /// Reads under way: op → (writer, k).
    reads: Vec<(OpId, NodeIdx, u32)>,
    puts_done: u32,
    reads_right: u32,
    /// What went wrong, for the report.
    errors: Vec<String>,
}

impl App for TableUser {
    fn on_start(&mut self, cx: &mut AppCx<'_>) {
        for k in 0..KEYS {
            let at = cx.random_in(0..=2000);
            cx.after(Duration::from_millis(at), u64::from(k));
        }
        // Reads start once every put has had time to land.
        let at = cx.random_in(5000..=6000);
        cx.after(Duration::from_millis(at), READ);
    }

    fn on_timer(&mut self, cx: &mut AppCx<'_>, token: u64) {
        if token != READ {
            let k = token as u32;
            let put = DhtCommand::Put {
                key: key(cx.index(), k),
                value: value(cx.index(), k),
            };
            if let Err(e) = cx.command(put) {
                self.errors.push(format!("put of key {k} refused: {e}"));
            }
            return;
        }
        for _ in 0..READS {
            let writer = cx.random_in(0..=u64::from(self.nodes) - 1) as NodeIdx;
            let k = cx.random_in(0..=u64::from(KEYS) - 1) as u32;
            match cx.command(DhtCommand::Get {
                key: key(writer, k),
            }) {
                Ok(Accepted::Op(op)) => self.reads.push((op, writer, k)),
                other => self.errors.push(format!("get refused: {other:?}")),
            }
        }
    }

    fn on_event(&mut self, cx: &mut AppCx<'_>, event: &Event) {
        let Event::Dht(event) = event else {
            return;
        };
        match event {
            DhtEvent::PutDone { .. } => self.puts_done += 1,
            DhtEvent::GetDone { id, value: got, .. } => {
                let Some(p) = self.reads.iter().position(|r| r.0 == *id) else {
                    return;
                };
                let (_, writer, k) = self.reads.swap_remove(p);
                if got.as_ref() == Some(&value(writer, k)) {
                    self.reads_right += 1;
                } else {
                    self.errors.push(format!(
                        "node {} read key {writer}/{k} as {got:?} at {:?}",
                        cx.index(),
                        cx.now()
                    ));
                }
            }
            DhtEvent::Failed { id, reason } => {
                self.errors
                    .push(format!("operation {id:?} failed: {reason}"));
            }
            _ => {}
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Ring members.
    pub(crate) nodes: u32,
    /// Puts acknowledged.
    pub(crate) puts: u64,
    /// Reads that returned the value written.
    pub(crate) reads: u64,
    /// Virtual time of the run, ms.
    pub(crate) virtual_ms: u64,
    /// The trace hash.
    pub(crate) trace: String,
}

/// Runs `n` table users on a founded ring from `seed`.
pub(crate) fn run(n: u32, seed: u64) -> Result<Summary, String> {
    if n < 4 {
        return Err("a ring needs at least 4 nodes here".into());
    }
    let mut sim = Sim::new(SimConfig {
        seed,
        echo_requests: false,
        ..SimConfig::default()
    });
    let config = Config {
        security: Security::Plaintext,
        ..Config::lan_ring(u64::from(n))
    };
    let nodes = sim
        .add_nodes(&config, n, |_| {})
        .map_err(|e| e.to_string())?;
    // Found the ring at once: every member gets the whole list.
    let founders: Vec<PeerEntry> = nodes
        .clone()
        .map(|i| PeerEntry {
            id: sim.id(i),
            addrs: [addr_of(i)].into_iter().collect(),
        })
        .collect();
    for i in nodes.clone() {
        let founders = founders.clone();
        sim.command(i, ChordCommand::Found { founders })
            .map_err(|e| format!("node {i} cannot found the ring: {e}"))?;
    }
    sim.run_for(Duration::from_secs(2));
    sim.set_apps(move |_| -> Option<Box<dyn App>> {
        Some(Box::new(TableUser {
            nodes: n,
            reads: Vec::new(),
            puts_done: 0,
            reads_right: 0,
            errors: Vec::new(),
        }))
    });
    sim.run_for(Duration::from_secs(15));

    let (mut puts, mut reads) = (0u64, 0u64);
    for i in nodes {
        let user = sim
            .app::<TableUser>(i)
            .ok_or(format!("node {i} has no app"))?;
        if let Some(e) = user.errors.first() {
            return Err(format!("node {i}: {e} ({} errors)", user.errors.len()));
        }
        if user.puts_done != KEYS || user.reads_right != READS || !user.reads.is_empty() {
            return Err(format!(
                "node {i}: {} of {KEYS} puts done, {} of {READS} reads right, {} unanswered",
                user.puts_done,
                user.reads_right,
                user.reads.len()
            ));
        }
        puts += u64::from(user.puts_done);
        reads += u64::from(user.reads_right);
    }
    Ok(Summary {
        nodes: n,
        puts,
        reads,
        virtual_ms: sim.now().as_micros() / 1000,
        trace: sim.trace_hash(),
    })
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() {
    let mut args = std::env::args().skip(1);
    let n = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let wall = std::time::Instant::now();
    match run(n, seed) {
        Ok(s) => println!(
            "dht_app: {} members, {} puts acknowledged, {} reads right; \
             {} ms virtual in {:.2} s wall; trace {}",
            s.nodes,
            s.puts,
            s.reads,
            s.virtual_ms,
            wall.elapsed().as_secs_f64(),
            s.trace
        ),
        Err(why) => {
            eprintln!("dht_app FAILED (nodes {n}, seed {seed}): {why}");
            std::process::exit(1);
        }
    }
}
