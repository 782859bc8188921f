//! A node flooded with 1,000,000 distinct broadcasts from 3,000 origins
//! keeps its memory bounded: the replay window stops at its cap of origins,
//! nothing else grows.
//!
//! Signatures are not what this measures: the node checks them with a
//! check that accepts any signature (`AcceptAll`), so a million signings
//! and verifications do not take the test's time; the key still has to be
//! the origin's.
//!
//! This binary counts every allocation (`support/counting_alloc.rs`), so it
//! holds exactly one test.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ringmesh::testing::{Network, Recorded};
use ringmesh::wire::{Broadcast, Message, encode_frame};
use ringmesh::{
    Config, ConnId, Duration, Event, Input, MeshConfig, MeshEvent, Output, PeersEvent, PublicKey,
    SignatureCheck,
};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

const MESSAGES: u64 = 1_000_000;
const ORIGINS: u64 = 3_000;

/// Takes every signature as genuine (the test is about memory).
struct AcceptAll;

impl SignatureCheck for AcceptAll {
    fn verify(&self, _: &PublicKey, _: &[u8], _: &[u8; 64]) -> bool {
        true
    }
}

#[test]
fn a_million_distinct_broadcasts_leave_memory_bounded() {
    let config = Config {
        mesh: MeshConfig {
            replay_origins: 1_000,
            ..Config::plaintext().mesh
        },
        ..Config::plaintext()
    };
    let capacity = config.mesh.replay_origins;
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
    node.set_signature_check(Arc::new(AcceptAll));
    let keys: Vec<PublicKey> = (0..ORIGINS)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&i.to_le_bytes());
            PublicKey::from_bytes(bytes)
        })
        .collect();
    let payload = Bytes::from_static(b"sixteen bytes...");
    let mut buf = BytesMut::new();
    let mut relayed = 0u64;
    let mut delivered = 0u64;
    let mut baseline = 0;
    for k in 0..MESSAGES {
        let key = keys[(k % ORIGINS) as usize];
        let message = Message::Broadcast(Broadcast {
            origin: key.node_id(),
            key,
            run: 1,
            seq: k,
            hops: 1,
            signature: [0; 64],
            payload: payload.clone(),
        });
        encode_frame(&message, None, &mut buf);
        let bytes = buf.split().freeze();
        // 5 µs apart: the whole flood takes 5 s of node time.
        now += Duration::from_micros(5);
        node.handle_input(now, Input::Received { conn, bytes });
        while let Some(output) = node.poll_output() {
            match output {
                Output::Send { .. } => relayed += 1,
                Output::Event(Event::Mesh(MeshEvent::Broadcast { .. })) => delivered += 1,
                _ => {}
            }
        }
        if k == 2 * ORIGINS {
            baseline = counting_alloc::live();
        }
    }
    let end = counting_alloc::live();
    eprintln!(
        "replay window {} origins; live heap after {} messages {baseline} B, after {MESSAGES} {end} B",
        node.replay_origins_len(),
        2 * ORIGINS,
    );
    assert_eq!(
        delivered, MESSAGES,
        "every distinct broadcast delivered once"
    );
    assert!(relayed >= 2 * MESSAGES, "relayed to the two other peers");
    assert_eq!(node.replay_origins_len(), capacity);
    // Origins come round-robin, 3,000 of them through 1,000 places: each
    // message but the first 1,000 evicts the least recently active.
    assert_eq!(
        node.stats().mesh.origins_evicted,
        MESSAGES - capacity as u64
    );
    // Flat after the window filled: no growth beyond noise.
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
