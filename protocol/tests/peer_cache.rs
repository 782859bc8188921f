//! The peer cache against an identity flood, through the public API: a
//! node's tried peers (dialled and authenticated by it) survive handshakes
//! from thousands of fresh identities and their gossip, are exported first,
//! and are what a restored node dials first.

use std::net::SocketAddr;

use ringmesh::testing::Network;
use ringmesh::wire::PeerEntry;
use ringmesh::{Config, Identity, Input, Instant, KnownPeer, Node, NodeId, Output, PeersCommand};

fn addr(a: u8, b: u8, c: u8, d: u8) -> SocketAddr {
    SocketAddr::from(([a, b, c, d], 7000))
}

/// The addresses a node dials in its first maintenance round.
fn first_dials(node: &mut Node, now: Instant) -> Vec<SocketAddr> {
    node.handle_input(now, Input::Timeout);
    let mut dials = Vec::new();
    while let Some(output) = node.poll_output() {
        if let Output::Dial { addr, .. } = output {
            dials.push(addr);
        }
    }
    dials
}

#[test]
fn a_restored_node_dials_its_tried_peers_before_anything_it_only_heard_of() {
    let now = Instant::ZERO;
    let mut node = Node::new(
        Config::plaintext(),
        Identity::from_secret_bytes([3; 32]),
        9,
        now,
    )
    .expect("valid config");
    let mut saved: Vec<KnownPeer> = (0..500u128)
        .map(|n| KnownPeer {
            id: NodeId::from_u128(1_000 + n),
            addrs: [addr(10, (n % 250) as u8, (n / 250) as u8, 1)]
                .into_iter()
                .collect(),
            tried: false,
        })
        .collect();
    let tried = [addr(192, 0, 2, 1), addr(198, 51, 100, 1)];
    for (k, &at) in tried.iter().enumerate() {
        saved.push(KnownPeer {
            id: NodeId::from_u128(7 + k as u128),
            addrs: [at].into_iter().collect(),
            tried: true,
        });
    }
    node.command(now, PeersCommand::RestorePeers { peers: saved })
        .expect("restored");
    assert_eq!(node.tried_peer_count(), 2);
    let exported = node.peer_cache();
    assert!(exported[0].tried && exported[1].tried && !exported[2].tried);
    let dials = first_dials(&mut node, now);
    assert!(dials.len() > 2, "fills up to its target: {dials:?}");
    let mut first: Vec<SocketAddr> = dials[..2].to_vec();
    first.sort();
    assert_eq!(first, tried, "tried peers first: {dials:?}");
}

#[test]
fn an_identity_flood_from_one_address_group_fills_only_its_own_buckets() {
    // Node 0 dials nodes 1 and 2 (tried). Then 120 fresh identities dial
    // node 0, each gossiping 16 invented entries on connect. They all sit
    // in 127.0/16, so together they are one source group: what they tell
    // lands in at most 4 buckets of node 0's new table, and none of it (nor
    // they themselves: inbound only) enters the tried table.
    const ATTACKERS: usize = 120;
    let mut net = Network::new(ringmesh::Duration::from_millis(5));
    for i in 0..3u8 {
        net.add_node(Config::plaintext(), [i + 1; 32], 100 + u64::from(i))
            .expect("valid config");
    }
    for peer in [1, 2] {
        net.command(
            0,
            PeersCommand::Connect {
                addr: Network::addr_of(peer),
                peer: None,
            },
        )
        .expect("dial");
    }
    net.run_for(ringmesh::Duration::from_secs(2));
    let tried_before: Vec<NodeId> = net
        .node(0)
        .peer_cache()
        .into_iter()
        .filter(|k| k.tried)
        .map(|k| k.id)
        .collect();
    assert_eq!(tried_before.len(), 2, "{:?}", net.node(0).peer_cache());
    for a in 0..ATTACKERS {
        let mut config = Config::plaintext();
        config.peers.target_peers = 1;
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&(a as u64 + 1_000).to_le_bytes());
        let i = net
            .add_node(config, secret, a as u64)
            .expect("valid config");
        let peers: Vec<PeerEntry> = (0..16u128)
            .map(|k| PeerEntry {
                id: NodeId::from_u128(1 << 64 | (a as u128) << 8 | k),
                addrs: [addr(10, a as u8, k as u8, 1)].into_iter().collect(),
            })
            .collect();
        net.command(i, PeersCommand::AddPeers { peers })
            .expect("imported");
        net.command(
            i,
            PeersCommand::Connect {
                addr: Network::addr_of(0),
                peer: None,
            },
        )
        .expect("dial");
    }
    net.run_for(ringmesh::Duration::from_secs(5));
    let node = net.node(0);
    let cache = node.peer_cache();
    let tried_after: Vec<NodeId> = cache.iter().filter(|k| k.tried).map(|k| k.id).collect();
    let stats = node.stats().peers;
    eprintln!(
        "node 0's cache: {} entries, {} tried; {} refused, {} evicted",
        cache.len(),
        tried_after.len(),
        stats.known_peers_refused,
        stats.known_peers_evicted
    );
    assert_eq!(tried_after, tried_before);
    // 4 buckets of 16 for the one source group, the honest peers aside.
    let new = cache.len() - tried_after.len();
    assert!(new <= 4 * 16, "{new} new entries from one source group");
    assert!(
        stats.known_peers_refused >= ATTACKERS as u64,
        "the rest was refused and counted"
    );
}
