//! One node relaying broadcasts. See `benches/README.md`.
//!
//! | bench | what is timed |
//! |---|---|
//! | `relay/plaintext/{64B,1KiB}` | node 0, with plaintext sessions to 9 peers, gets one `Broadcast` frame (origin node 1, `hops` 1, a fresh `seq`) on its connection from node 1: `handle_input(Received)`, then draining `poll_output` (one `Event::Mesh(MeshEvent::Broadcast)`, 8 `Send`s, dropped) |
//! | `relay/noise/{64B,1KiB}` | the same on Noise sessions; the frames are node 1's own `MeshCommand::Broadcast` output, made untimed and fed in order |
//! | `relay/plaintext_nolz4/1KiB` | `relay/plaintext/1KiB` with `compression: false` on every node (no LZ4 attempt) |
//!
//! Throughput is counted in inputs (received broadcasts), each relayed to 8
//! peers.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringmesh::testing::Network;
use ringmesh::{Config, ConnId, Identity, SessionConfig};
use ringmesh_benches::{
    SMALL, broadcast_frame, conn_to, incompressible, own_broadcasts, receive, star,
};

/// Node 0's peers; a broadcast from one of them goes on to the rest.
const PEERS: usize = 9;
/// Sends per relayed broadcast.
const FANOUT: usize = PEERS - 1;
/// 1 KiB: a larger broadcast (above the 512-byte LZ4 threshold, so the
/// relay tries LZ4 on it and falls back: the payload is incompressible).
const KIB: usize = 1024;
/// Frames made (untimed) at a time, then fed (timed).
const BATCH: usize = 256;

/// Bench-name suffix for a payload size.
fn size_name(len: usize) -> &'static str {
    match len {
        SMALL => "64B",
        KIB => "1KiB",
        _ => unreachable!("only two sizes are benched"),
    }
}

/// A star with node 0 as the relay under test, and a source of frames that
/// node 1 sends it. Lives across criterion's calls, so `seq` keeps growing
/// (node 0's replay window keeps one origin, one run: its size does not
/// change).
struct Relay {
    net: Network,
    /// Node 0's connection to node 1.
    hub_conn: ConnId,
    /// Node 1's connection to node 0.
    leaf_conn: ConnId,
    /// Node 1's identity and run (it signs the crafted frames).
    origin: Identity,
    run: u64,
    /// Plaintext: frames are crafted (`broadcast_frame`). Noise: node 1
    /// makes them (they are encrypted for this one session).
    noise: bool,
    next_seq: u64,
    payload: Bytes,
}

impl Relay {
    fn new(config: &Config, noise: bool, len: usize) -> Self {
        let net = star(config, PEERS);
        Relay {
            hub_conn: conn_to(&net, 0, 1),
            leaf_conn: conn_to(&net, 1, 0),
            origin: Identity::from_secret_bytes([2; 32]),
            run: net.node(1).run_nonce(),
            net,
            noise,
            next_seq: 0,
            payload: incompressible(len),
        }
    }

    /// The next `count` frames node 1 sends node 0, each a new broadcast.
    fn frames(&mut self, count: usize, out: &mut Vec<Bytes>) {
        if self.noise {
            let (conn, payload) = (self.leaf_conn, &self.payload);
            out.extend(own_broadcasts(&mut self.net, 1, conn, payload, count));
        } else {
            for _ in 0..count {
                let seq = self.next_seq;
                self.next_seq += 1;
                out.push(broadcast_frame(
                    &self.origin,
                    self.run,
                    seq,
                    self.payload.clone(),
                ));
            }
        }
    }

    /// Feeds node 0 `count` fresh frames in batches of [`BATCH`], timing
    /// only the feeding. Panics unless every frame was relayed to
    /// [`FANOUT`] peers.
    fn time(&mut self, count: u64) -> StdDuration {
        let now = self.net.now();
        let mut frames = Vec::with_capacity(BATCH);
        let mut total = StdDuration::ZERO;
        let mut done = 0;
        while done < count {
            let batch = (count - done).min(BATCH as u64);
            self.frames(batch as usize, &mut frames);
            let node = self.net.node_mut(0);
            let mut sends = 0;
            let start = StdInstant::now();
            for frame in frames.drain(..) {
                sends += receive(node, now, self.hub_conn, frame);
            }
            total += start.elapsed();
            assert_eq!(sends as u64, batch * FANOUT as u64, "every frame relayed");
            done += batch;
        }
        total
    }
}

fn relay(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));
    let no_lz4 = Config {
        session: SessionConfig {
            compression: false,
            ..Config::plaintext().session
        },
        ..Config::plaintext()
    };
    let cases = [
        ("plaintext", Config::plaintext(), false, SMALL),
        ("plaintext", Config::plaintext(), false, KIB),
        ("noise", Config::default(), true, SMALL),
        ("noise", Config::default(), true, KIB),
        ("plaintext_nolz4", no_lz4, false, KIB),
    ];
    for (name, config, noise, len) in cases {
        let mut relay = Relay::new(&config, noise, len);
        // Checked once before measuring (and again per batch, untimed): a
        // frame that is not relayed would make a fast, empty bench.
        relay.time(1);
        let stats = relay.net.node(0).stats();
        assert_eq!(
            (stats.mesh.delivered, stats.mesh.relayed),
            (1, FANOUT as u64)
        );
        let id = format!("{name}/{}", size_name(len));
        group.bench_function(&id, |b| b.iter_custom(|iters| relay.time(iters)));
        let node = relay.net.node(0);
        assert_eq!(node.stats().mesh.duplicate, 0);
        if node.stats().mesh.delivered > 1 {
            eprintln!(
                "relay/{id}: {} broadcasts relayed, replay window {} origins ({} evicted)",
                node.stats().mesh.delivered,
                node.replay_origins_len(),
                node.stats().mesh.origins_evicted
            );
        }
    }
    group.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
