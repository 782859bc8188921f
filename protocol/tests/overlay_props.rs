//! Property tests of whole overlays: random small networks under random
//! connects, disconnects and broadcasts.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use ringmesh::testing::{Network, Recorded};
use ringmesh::{
    Accepted, Config, Duration, Event, MeshCommand, MeshEvent, NodeId, PeersCommand, PeersConfig,
    Security,
};

#[derive(Debug, Clone)]
enum Op {
    Connect(usize, usize),
    Disconnect(usize, usize),
    Broadcast(usize),
    Wait(u64),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..n, 0..n).prop_map(|(a, b)| Op::Connect(a, b)),
        2 => (0..n, 0..n).prop_map(|(a, b)| Op::Disconnect(a, b)),
        3 => (0..n).prop_map(Op::Broadcast),
        2 => (0u64..3_000).prop_map(Op::Wait),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, usize, u64, Vec<Op>)> {
    (2usize..=20, 0usize..4, any::<u64>()).prop_flat_map(|(n, target, seed)| {
        (
            Just(n),
            Just(target),
            Just(seed),
            prop::collection::vec(op(n), 1..60),
        )
    })
}

/// How often each node delivered each broadcast.
fn deliveries(net: &Network) -> BTreeMap<(usize, NodeId, u64), usize> {
    let mut counts = BTreeMap::new();
    for Recorded {
        node: i, event: e, ..
    } in net.events()
    {
        if let Event::Mesh(MeshEvent::Broadcast { origin, seq, .. }) = e {
            *counts.entry((*i, *origin, *seq)).or_default() += 1;
        }
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_networks_deliver_at_most_once_and_everywhere_once_connected(
        (n, target, seed, ops) in scenario()
    ) {
        let mut net = Network::new(Duration::from_millis(1 + seed % 10));
        for i in 0..n {
            let config = Config {
                security: Security::Plaintext,
                peers: PeersConfig { target_peers: target, ..Config::lan().peers },
                ..Config::lan()
            };
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&seed.wrapping_add(i as u64).to_le_bytes());
            secret[8] = i as u8;
            net.add_node(config, secret, seed ^ i as u64).expect("valid");
        }
        let ids: Vec<NodeId> = (0..n).map(|i| net.node(i).node_id()).collect();
        for op in ops {
            match op {
                Op::Connect(a, b) => {
                    let _ = net.connect(a, b);
                }
                Op::Disconnect(a, b) => {
                    let _ = net.command(a, PeersCommand::Disconnect { peer: ids[b] });
                }
                Op::Broadcast(a) => {
                    let _ = net.command(a, MeshCommand::Broadcast { payload: Bytes::from_static(b"p") });
                }
                Op::Wait(ms) => {
                    net.run_for(Duration::from_millis(ms));
                }
            }
            net.settle();
            for ((node, _, _), count) in deliveries(&net) {
                prop_assert!(count <= 1, "node {} delivered a broadcast {} times", node, count);
            }
        }

        // Connect the network again: a line through every node.
        for i in 1..n {
            let _ = net.connect(i - 1, i);
        }
        net.run_for(Duration::from_secs(10));
        for (i, &id) in ids.iter().enumerate().skip(1) {
            prop_assert!(net.node(i - 1).is_connected(id), "line link {}–{} down", i - 1, i);
        }
        for (origin, &origin_id) in ids.iter().enumerate() {
            let seq = match net.command(origin, MeshCommand::Broadcast { payload: Bytes::from_static(b"late") }) {
                Ok(Accepted::Broadcast { seq }) => seq,
                other => panic!("broadcast refused: {other:?}"),
            };
            net.settle();
            let counts = deliveries(&net);
            for i in (0..n).filter(|&i| i != origin) {
                prop_assert_eq!(counts.get(&(i, origin_id, seq)).copied(), Some(1),
                    "node {} missed broadcast {} from {}", i, seq, origin);
            }
        }
    }
}
