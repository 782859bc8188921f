//! A node flooded with 1,000,000 distinct broadcasts keeps its memory
//! bounded: the seen-cache stops at its capacity, nothing else grows.
//!
//! This binary counts every allocation (`support/counting_alloc.rs`), so it
//! holds exactly one test.

use bytes::{Bytes, BytesMut};
use ringmesh::testing::{Network, Recorded};
use ringmesh::wire::{Broadcast, Message, encode_frame};
use ringmesh::{
    Config, ConnId, Duration, Event, Input, MeshConfig, MeshEvent, NodeId, Output, PeersEvent,
};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

const MESSAGES: u64 = 1_000_000;

#[test]
fn a_million_distinct_broadcasts_leave_memory_bounded() {
    let config = Config {
        mesh: MeshConfig {
            seen_cache_capacity: 100_000,
            ..Config::plaintext().mesh
        },
        ..Config::plaintext()
    };
    let capacity = config.mesh.seen_cache_capacity;
    let mut net = Network::new(Duration::from_millis(1));
    for i in 0..4u8 {
        net.add_node(config.clone(), [i + 1; 32], u64::from(i))
            .expect("valid");
    }
    for j in 1..4 {
        net.connect(0, j).expect("dial");
    }
    net.settle();
    let from = net.node(1).node_id();
    let conn: ConnId = net
        .events()
        .iter()
        .find_map(
            |Recorded {
                 node: i, event: e, ..
             }| match e {
                Event::Peers(PeersEvent::Established { conn, peer, .. })
                    if *i == 0 && *peer == from =>
                {
                    Some(*conn)
                }
                _ => None,
            },
        )
        .expect("node 0 is connected to node 1");
    drop(net.take_events());
    let mut now = net.now();
    let node = net.node_mut(0);
    let payload = Bytes::from_static(b"sixteen bytes...");
    let mut buf = BytesMut::new();
    let mut relayed = 0u64;
    let mut delivered = 0u64;
    let mut baseline = 0;
    for k in 0..MESSAGES {
        let message = Message::Broadcast(Broadcast {
            origin: NodeId::from_u128(u128::from(k % 997) + 1),
            seq: k,
            hops: 1,
            payload: payload.clone(),
        });
        encode_frame(&message, None, &mut buf);
        let bytes = buf.split().freeze();
        // 5 µs apart: the whole flood takes 5 s of node time, well inside
        // the seen-cache's 120 s age limit, so only its capacity bounds it.
        now += Duration::from_micros(5);
        node.handle_input(now, Input::Received { conn, bytes });
        while let Some(output) = node.poll_output() {
            match output {
                Output::Send { .. } => relayed += 1,
                Output::Event(Event::Mesh(MeshEvent::Broadcast { .. })) => delivered += 1,
                _ => {}
            }
        }
        if k == 2 * capacity as u64 {
            baseline = counting_alloc::live();
        }
    }
    let end = counting_alloc::live();
    eprintln!(
        "seen-cache {} entries; live heap after {} messages {baseline} B, after {MESSAGES} {end} B",
        node.seen_cache_len(),
        2 * capacity,
    );
    assert_eq!(
        delivered, MESSAGES,
        "every distinct broadcast delivered once"
    );
    assert!(relayed >= 2 * MESSAGES, "relayed to the two other peers");
    assert_eq!(node.seen_cache_len(), capacity);
    assert_eq!(
        node.stats().mesh.seen_evicted_early,
        MESSAGES - capacity as u64
    );
    // Flat after the cache filled: no growth beyond noise.
    assert!(
        end <= baseline + 64 * 1024,
        "live heap grew from {baseline} to {end} bytes"
    );
    assert!(
        node.deadline_count() < 100,
        "{} deadlines",
        node.deadline_count()
    );
}
