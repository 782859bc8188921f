//! One ring member answering chord and table requests. See
//! `benches/README.md`.
//!
//! | bench | what is timed |
//! |---|---|
//! | `chord/find_successor` | node 0, a member of a founded 16-node ring (r = 8), gets a `ChordFindSuccessor` for a random key from a peer: `handle_input(Received)`, then draining `poll_output` (one `Send`: `Done` with its list or `Next` with 4 candidates) |
//! | `chord/get_state` | the same with `ChordGetState` (answered with its predecessor and list of 8) |
//! | `dht/get` | node 0 holds 10,000 entries of 100 B and answers a `DhtGet` for one of them |
//! | `dht/replicate64` | node 0 merges a `DhtReplicate` of 64 new entries of 100 B (its store growing to 64 × the iterations, under caps raised out of the way) and acks it; throughput counted in entries |
//!
//! Frames are plaintext and made untimed.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringmesh::testing::Network;
use ringmesh::wire::{
    ChordFindSuccessor, ChordGetState, DhtBody, DhtEntry, DhtGet, DhtKey, DhtReplicate, DhtValue,
    Message,
};
use ringmesh::{
    ChordConfig, Config, ConnId, DhtConfig, Event, Identity, Input, Instant, Node, Output,
    PeersEvent,
};
use ringmesh_benches::{conn_to, encode_frame, incompressible};

const RING: usize = 16;
const BATCH: usize = 256;
const VALUE: usize = 100;

/// A founded ring; node 0's successor `s` is connected to node 0, whose
/// connection to it carries the frames under test (a successor may hand
/// node 0 table entries, spec/chord.md §10.4). Returns the ring, that
/// connection and `s`.
fn ring() -> (Network, ConnId, usize) {
    let config = Config {
        chord: Some(ChordConfig::wan()),
        dht: Some(DhtConfig {
            max_entries: 1 << 24,
            max_bytes: 1 << 32,
            // One writer and one sender store everything here: quotas as
            // large as the store, so the bench times stores, not refusals.
            max_entries_per_writer: 1 << 24,
            max_bytes_per_writer: 1 << 32,
            max_entries_per_sender: 1 << 24,
            max_bytes_per_sender: 1 << 32,
            ..DhtConfig::wan()
        }),
        ..Config::plaintext()
    };
    let mut net = Network::new(ringmesh::Duration::from_millis(1));
    for i in 0..RING {
        net.add_node(config.clone(), [i as u8 + 1; 32], i as u64)
            .expect("valid config");
    }
    net.found_ring(0..RING).expect("found");
    let zero = net.node(0).node_id();
    let successor = (1..RING)
        .min_by_key(|&i| net.node(i).node_id().as_u128().wrapping_sub(zero.as_u128()))
        .expect("a ring of more than one");
    net.connect(successor, 0).expect("dial");
    net.settle();
    let conn = conn_to(&net, 0, successor);
    (net, conn, successor)
}

/// Feeds `frames` to `node` on `conn`, timing only that; panics unless
/// each frame was answered with exactly one send.
fn feed(node: &mut Node, now: Instant, conn: ConnId, frames: &mut Vec<Bytes>) -> StdDuration {
    let count = frames.len();
    let mut sends = 0;
    let start = StdInstant::now();
    for bytes in frames.drain(..) {
        node.handle_input(now, Input::Received { conn, bytes });
        while let Some(output) = node.poll_output() {
            match output {
                Output::Send { .. } => sends += 1,
                Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) => {
                    panic!("closed: {reason}")
                }
                _ => {}
            }
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(sends, count, "one answer per request");
    elapsed
}

/// Times `iters` requests made by `make(i)`, in untimed batches.
fn time(
    net: &mut Network,
    conn: ConnId,
    iters: u64,
    mut make: impl FnMut(u64) -> Message,
) -> StdDuration {
    let now = net.now();
    let mut total = StdDuration::ZERO;
    let mut frames = Vec::with_capacity(BATCH);
    let mut done = 0;
    while done < iters {
        let batch = (iters - done).min(BATCH as u64);
        frames.extend((done..done + batch).map(|i| encode_frame(&make(i), None).0));
        total += feed(net.node_mut(0), now, conn, &mut frames);
        done += batch;
    }
    total
}

fn key(i: u64) -> u128 {
    u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
}

/// Open key `i`, signed by `writer` (node 0's successor, entitled to hand
/// it entries).
fn entry(i: u64, writer: &Identity, value: &Bytes) -> DhtEntry {
    let key = DhtKey::Open(Bytes::from(format!("key-{i:012}")));
    let body = DhtBody::signed(writer, &key, 1, DhtValue::Value(value.clone()));
    DhtEntry { key, body }
}

fn chord(c: &mut Criterion) {
    let (mut net, conn, successor) = ring();
    let writer = Identity::from_secret_bytes([successor as u8 + 1; 32]);
    assert_eq!(writer.node_id(), net.node(successor).node_id());
    let value = incompressible(VALUE);
    let mut group = c.benchmark_group("chord");
    group.throughput(Throughput::Elements(1));
    group.bench_function("find_successor", |b| {
        b.iter_custom(|iters| {
            time(&mut net, conn, iters, |i| {
                Message::ChordFindSuccessor(ChordFindSuccessor {
                    req: i,
                    key: key(i),
                })
            })
        })
    });
    group.bench_function("get_state", |b| {
        b.iter_custom(|iters| {
            time(&mut net, conn, iters, |i| {
                Message::ChordGetState(ChordGetState { req: i })
            })
        })
    });
    group.finish();

    // 10,000 entries stored on node 0, then read back.
    let stored = 10_000u64;
    time(&mut net, conn, stored / 64, |b| {
        let entries = (b * 64..(b + 1) * 64)
            .map(|i| entry(i, &writer, &value))
            .collect();
        Message::DhtReplicate(DhtReplicate { req: b, entries })
    });
    assert!(net.node(0).dht_usage().entries >= 9_984);
    let mut group = c.benchmark_group("dht");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get", |b| {
        b.iter_custom(|iters| {
            time(&mut net, conn, iters, |i| {
                Message::DhtGet(DhtGet {
                    req: i,
                    key: DhtKey::Open(Bytes::from(format!("key-{:012}", i % 9_984))),
                })
            })
        })
    });
    group.throughput(Throughput::Elements(64));
    let mut next = 1_000_000u64;
    group.bench_function("replicate64", |b| {
        b.iter_custom(|iters| {
            time(&mut net, conn, iters, |req| {
                let entries = (next..next + 64)
                    .map(|i| entry(i, &writer, &value))
                    .collect();
                next += 64;
                Message::DhtReplicate(DhtReplicate { req, entries })
            })
        })
    });
    group.finish();
}

criterion_group!(benches, chord);
criterion_main!(benches);
