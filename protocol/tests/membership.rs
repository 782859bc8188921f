//! HyParView membership and Plumtree broadcast through the in-memory
//! harness: view bounds (the bootstrap node included), symmetric views,
//! repair after crashes, delivery once everywhere, the tree's pruning and
//! its repair, and determinism.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{BroadcastId, Graft, Message};
use ringmesh::{
    Accepted, BroadcastMode, Config, Duration, Event, HyParViewConfig, LivenessConfig, Membership,
    MeshCommand, MeshConfig, MeshEvent, NodeId, PeersCommand, PeersConfig, PlumtreeConfig,
    Security,
};

const ACTIVE: usize = 3;

fn config(plumtree: bool) -> Config {
    let lan = Config::lan();
    Config {
        security: Security::Plaintext,
        peers: PeersConfig {
            // One link of its own (the bootstrap); the rest is HyParView's.
            target_peers: 1,
            bootstrap: vec![Network::addr_of(0)],
            ..lan.peers
        },
        mesh: MeshConfig {
            membership: Membership::HyParView(HyParViewConfig {
                active_view: ACTIVE,
                passive_view: 12,
                ..HyParViewConfig::for_network(30)
            }),
            broadcast: if plumtree {
                BroadcastMode::Plumtree(PlumtreeConfig::default())
            } else {
                BroadcastMode::Flood
            },
            ..lan.mesh
        },
        ..lan
    }
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s
}

/// `n` nodes joining one every 50 ms through node 0, then a minute.
fn joined(n: usize, plumtree: bool, seed: u64) -> Network {
    let mut net = Network::new(Duration::from_millis(5));
    for i in 0..n {
        net.add_node(config(plumtree), secret(i), seed + i as u64)
            .expect("valid config");
        net.run_for(Duration::from_millis(50));
    }
    net.run_for(Duration::from_secs(60));
    net
}

/// `n` nodes with Plumtree joining through node 0, as [`joined`], whose
/// liveness finds a crash within 11 s (3 misses of pings 3 s apart):
/// more than `link_announce` (5 s), less than the graft window (30 s).
/// A first broadcast from node 0 has built the tree.
fn slow_liveness_tree(n: usize, seed: u64) -> Network {
    let mut net = Network::new(Duration::from_millis(5));
    for i in 0..n {
        let mut c = config(true);
        c.liveness = LivenessConfig {
            ping_interval: Duration::from_secs(3),
            ping_timeout: Duration::from_secs(1),
            dead_after_misses: 3,
        };
        net.add_node(c, secret(i), seed + i as u64)
            .expect("valid config");
        net.run_for(Duration::from_millis(50));
    }
    net.run_for(Duration::from_secs(60));
    let first = broadcast(&mut net, 0, b"tree");
    net.run_for(Duration::from_secs(5));
    let all: Vec<NodeIndex> = (0..n).collect();
    assert_once_everywhere(&net, n, &all, 0, first);
    net
}

/// Crashes (silently) every mesh peer of node `i` among the first `n`;
/// returns them.
fn crash_mesh_peers(net: &mut Network, n: usize, i: NodeIndex) -> Vec<NodeIndex> {
    let peers = net.node(i).mesh_peers();
    let dead: Vec<NodeIndex> = (0..n)
        .filter(|&j| peers.contains(&net.node(j).node_id()))
        .collect();
    for &d in &dead {
        net.crash(d);
    }
    dead
}

fn mesh(net: &Network, live: &[NodeIndex]) -> BTreeMap<NodeId, Vec<NodeId>> {
    live.iter()
        .map(|&i| (net.node(i).node_id(), net.node(i).mesh_peers()))
        .collect()
}

/// Whether the mesh among `live` is connected through links both ends
/// hold.
fn connected(mesh: &BTreeMap<NodeId, Vec<NodeId>>) -> bool {
    let Some(&start) = mesh.keys().next() else {
        return true;
    };
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &peer in mesh.get(&node).into_iter().flatten() {
            let both = mesh.get(&peer).is_some_and(|back| back.contains(&node));
            if both && seen.insert(peer) {
                queue.push_back(peer);
            }
        }
    }
    seen.len() == mesh.len()
}

fn broadcast(net: &mut Network, i: NodeIndex, payload: &'static [u8]) -> (NodeId, u64) {
    match net.command(
        i,
        MeshCommand::Broadcast {
            payload: Bytes::from_static(payload),
        },
    ) {
        Ok(Accepted::Broadcast { seq }) => (net.node(i).node_id(), seq),
        other => panic!("broadcast refused: {other:?}"),
    }
}

/// How many times each node delivered `(origin, seq)`.
fn deliveries(net: &Network, n: usize, id: (NodeId, u64)) -> Vec<usize> {
    (0..n)
        .map(|i| {
            net.events_of(i)
                .filter(|e| {
                    matches!(e, Event::Mesh(MeshEvent::Broadcast { origin, seq, .. })
                        if (*origin, *seq) == id)
                })
                .count()
        })
        .collect()
}

fn assert_once_everywhere(
    net: &Network,
    n: usize,
    live: &[NodeIndex],
    from: NodeIndex,
    id: (NodeId, u64),
) {
    let got = deliveries(net, n, id);
    for &i in live {
        let want = usize::from(i != from);
        assert_eq!(
            got[i], want,
            "node {i} delivered {:?} {} times",
            id.1, got[i]
        );
    }
}

fn duplicates(net: &Network, n: usize) -> u64 {
    (0..n).map(|i| net.node(i).stats().mesh.duplicate).sum()
}

#[test]
fn no_node_holds_more_than_its_active_view_the_bootstrap_included() {
    let n = 30;
    let net = joined(n, false, 1);
    let live: Vec<NodeIndex> = (0..n).collect();
    let mesh = mesh(&net, &live);
    for (node, peers) in &mesh {
        assert!(
            (1..=ACTIVE).contains(&peers.len()),
            "{} holds {} mesh peers",
            node.short(),
            peers.len()
        );
        for peer in peers {
            assert!(
                mesh[peer].contains(node),
                "{} is {}'s mesh peer but not the reverse",
                peer.short(),
                node.short()
            );
        }
    }
    assert_eq!(
        net.node(0).mesh_peers().len(),
        ACTIVE,
        "the bootstrap is full, not over"
    );
    assert!(connected(&mesh), "the mesh is one piece");
    assert!(
        net.node(0).stats().membership.evicted > 0,
        "the bootstrap made room by evicting"
    );
}

#[test]
fn the_active_view_is_repaired_from_the_passive_view_after_crashes() {
    let n = 30;
    let mut net = joined(n, false, 2);
    let crashed = [3, 7, 11, 15, 19, 23];
    for &i in &crashed {
        net.crash(i);
    }
    // Liveness (LAN preset) finds the dead links within seconds; the
    // membership repairs at once and in the rounds after.
    net.run_for(Duration::from_secs(60));
    let live: Vec<NodeIndex> = (0..n).filter(|i| !crashed.contains(i)).collect();
    let mesh = mesh(&net, &live);
    let crashed_ids: BTreeSet<NodeId> = crashed.iter().map(|&i| net.node(i).node_id()).collect();
    for (node, peers) in &mesh {
        assert!(
            peers.iter().all(|p| !crashed_ids.contains(p)),
            "{} still holds a crashed mesh peer",
            node.short()
        );
        assert!(!peers.is_empty(), "{} has no mesh peer left", node.short());
    }
    assert!(connected(&mesh), "the live mesh is one piece again");
    let promoted: u64 = live
        .iter()
        .map(|&i| net.node(i).stats().membership.promoted)
        .sum();
    assert!(promoted > 0, "passive peers were promoted");
    let id = broadcast(&mut net, 1, b"after the crashes");
    net.run_for(Duration::from_secs(5));
    assert_once_everywhere(&net, n, &live, 1, id);
}

#[test]
fn plumtree_delivers_once_and_prunes_the_mesh_to_a_tree() {
    let n = 30;
    let mut net = joined(n, true, 3);
    let live: Vec<NodeIndex> = (0..n).collect();
    let id = broadcast(&mut net, 0, b"first");
    net.run_for(Duration::from_secs(5));
    assert_once_everywhere(&net, n, &live, 0, id);
    let after_first = duplicates(&net, n);
    assert!(after_first > 0, "the first broadcast floods the mesh");
    for from in [5, 9, 17, 28, 2] {
        let id = broadcast(&mut net, from, b"more");
        net.run_for(Duration::from_secs(5));
        assert_once_everywhere(&net, n, &live, from, id);
    }
    let later = duplicates(&net, n) - after_first;
    // RMR over the five later broadcasts under 0.05.
    assert!(
        (later as f64) < 0.05 * 5.0 * (n - 1) as f64,
        "the pruned tree carries few duplicates: {later} after the first, {after_first} in it"
    );
    let prunes: u64 = (0..n).map(|i| net.node(i).stats().mesh.prunes_sent).sum();
    let ihaves: u64 = (0..n).map(|i| net.node(i).stats().mesh.ihave_sent).sum();
    assert!(prunes > 0 && ihaves > 0, "prunes {prunes}, ihaves {ihaves}");
}

#[test]
fn plumtree_grafts_around_crashed_tree_nodes() {
    let n = 30;
    let mut net = joined(n, true, 4);
    let live: Vec<NodeIndex> = (0..n).collect();
    let id = broadcast(&mut net, 0, b"build the tree");
    net.run_for(Duration::from_secs(5));
    assert_once_everywhere(&net, n, &live, 0, id);
    // Crash nodes silently and broadcast at once: the tree's links through
    // them carry nothing, and before liveness notices, the lazy links'
    // announcements lead to grafts.
    let crashed = [4, 8, 12, 16];
    for &i in &crashed {
        net.crash(i);
    }
    let live: Vec<NodeIndex> = (0..n).filter(|i| !crashed.contains(i)).collect();
    let id = broadcast(&mut net, 0, b"through the gaps");
    net.run_for(Duration::from_secs(10));
    let got = deliveries(&net, n, id);
    let reached = live.iter().filter(|&&i| i != 0 && got[i] == 1).count();
    assert!(
        live.iter().all(|&i| got[i] <= 1),
        "no node delivers twice: {got:?}"
    );
    // A live node can be cut off until the membership repairs (all its
    // mesh peers crashed), so the bound is the connected part; with 4 of
    // 30 crashed that is nearly everyone.
    assert!(
        reached + 3 >= live.len() - 1,
        "reached {reached} of {}",
        live.len() - 1
    );
    // Once the membership has repaired, every live node is reached.
    net.run_for(Duration::from_secs(60));
    let id = broadcast(&mut net, 1, b"repaired");
    net.run_for(Duration::from_secs(10));
    assert_once_everywhere(&net, n, &live, 1, id);
    let grafts: u64 = live
        .iter()
        .map(|&i| net.node(i).stats().mesh.grafts_sent)
        .sum();
    assert!(grafts > 0, "the tree was repaired by grafts");
}

#[test]
fn same_seeds_same_membership_and_deliveries() {
    let run = || {
        let mut net = joined(16, true, 9);
        broadcast(&mut net, 3, b"one");
        net.run_for(Duration::from_secs(5));
        broadcast(&mut net, 7, b"two");
        net.run_for(Duration::from_secs(5));
        format!("{:?}", net.events())
    };
    assert_eq!(run(), run());
}

mod faults {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Small networks under faults (crashes, broadcasts while they
        /// happen): no broadcast is delivered twice anywhere (safety, while
        /// faults happen); after the crashed nodes recover and the network
        /// is quiet, a broadcast reaches every node (liveness).
        #[test]
        fn plumtree_never_delivers_twice_and_misses_none_once_quiet(
            n in 6usize..14,
            seed in 0u64..1_000,
            crashed in proptest::collection::btree_set(1usize..14, 0..4),
            senders in proptest::collection::vec(0usize..14, 1..5),
        ) {
            let mut net = joined(n, true, seed);
            let crashed: Vec<NodeIndex> = crashed.into_iter().filter(|&i| i < n).collect();
            for &i in &crashed {
                net.crash(i);
            }
            let mut ids = Vec::new();
            for &s in &senders {
                let s = s % n;
                if crashed.contains(&s) {
                    continue;
                }
                ids.push(broadcast(&mut net, s, b"during"));
                net.run_for(Duration::from_millis(700));
            }
            // Cut off long enough for liveness (LAN preset: dead after
            // 3.5 s) to close their links on both sides, as TCP would
            // break them: the harness keeps a silent link half-open
            // otherwise, which no transport does for long.
            net.run_for(Duration::from_secs(6));
            for &i in &crashed {
                net.recover(i);
            }
            net.run_for(Duration::from_secs(90));
            for &id in &ids {
                let got = deliveries(&net, n, id);
                prop_assert!(got.iter().all(|&k| k <= 1), "{id:?} delivered twice: {got:?}");
            }
            // Liveness is judged where the mesh is one piece again, through
            // links both ends hold. It is not always: HyParView can leave a
            // small island whose low-priority requests full views refuse,
            // and a node cut off for a few seconds can come back holding
            // links its peers closed (the harness keeps such a link
            // half-open), its view one-sided.
            let live: Vec<NodeIndex> = (0..n).collect();
            let one_piece = connected(&mesh(&net, &live));
            let id = broadcast(&mut net, 0, b"quiet");
            net.run_for(Duration::from_secs(10));
            let got = deliveries(&net, n, id);
            prop_assert!(got.iter().all(|&k| k <= 1), "delivered twice: {got:?}");
            if one_piece {
                for i in 1..n {
                    prop_assert_eq!(got[i], 1, "node {} after the quiet: {:?}", i, got);
                }
            }
        }
    }
}

/// Found by the fault proptest (n = 13, seed = 129, crashed = {1, 4, 5},
/// senders = [2, 6, 2]): a node cut off while its peer closed the
/// connection the peer had dialled comes back still holding that
/// connection (its close was never heard). The peer dials again; two
/// connections dialled by the peer wait for the peer to say which it keeps,
/// and it never does, as it holds only the new one. The node went on
/// sending to that peer, grafts included, on the dead connection, while the
/// peer's pings on the new one kept it looking alive: the recovered nodes
/// missed every later broadcast. Now the new connection takes over after
/// `handshake_timeout` (spec/peers.md, "One connection per peer").
#[test]
fn a_node_back_from_a_cut_drops_the_connections_its_peers_closed() {
    let n = 13;
    let mut net = joined(n, true, 129);
    let crashed = [1, 4, 5];
    for &i in &crashed {
        net.crash(i);
    }
    for s in [2, 6, 2] {
        broadcast(&mut net, s, b"during");
        net.run_for(Duration::from_millis(700));
    }
    net.run_for(Duration::from_secs(6));
    for &i in &crashed {
        net.recover(i);
    }
    net.run_for(Duration::from_secs(90));
    // Settled: one connection per peer everywhere, and it stays so (the
    // cut-off nodes held dead connections their peers kept redialling
    // around: a new one drained as a duplicate every 10 s, for ever).
    for _ in 0..3 {
        for i in 0..n {
            assert_eq!(
                net.node(i).established_count(),
                net.node(i).connected_peers().len(),
                "node {i}: one connection per peer, once quiet (a dial in flight aside)"
            );
        }
        net.run_for(Duration::from_secs(7));
    }
    let id = broadcast(&mut net, 0, b"quiet");
    net.run_for(Duration::from_secs(10));
    let got = deliveries(&net, n, id);
    for i in 1..n {
        assert_eq!(got[i], 1, "node {i} after the cut: {got:?}");
    }
}

#[test]
fn a_peer_repeating_a_graft_gets_the_broadcast_once() {
    // A Graft costs its sender a few bytes and asks for a whole kept
    // broadcast: each peer gets one through grafts at most once.
    let n = 10;
    let mut net = joined(n, true, 7);
    let (origin, seq) = broadcast(&mut net, 0, b"a payload worth asking for");
    net.run_for(Duration::from_secs(5));
    let peer = net.node(0).mesh_peers()[0];
    let attacker = (0..n)
        .find(|&i| net.node(i).node_id() == peer)
        .expect("a mesh peer is a node");
    let graft = Message::Graft(Graft {
        send: true,
        id: BroadcastId {
            origin,
            run: net.node(0).run_nonce(),
            seq,
        },
    });
    let before = net.node(0).stats().mesh;
    for _ in 0..5 {
        let now = net.now();
        assert!(net.node_mut(attacker).adversary_send(now, origin, &graft));
        // A command that does nothing, so the harness takes the
        // attacker's outputs now.
        net.command(attacker, PeersCommand::AddPeers { peers: vec![] })
            .expect("no-op");
        net.run_for(Duration::from_millis(20));
    }
    let after = net.node(0).stats().mesh;
    assert_eq!(after.grafts_answered - before.grafts_answered, 1);
    assert_eq!(after.grafts_repeated - before.grafts_repeated, 4);
    // And a second time never: the attacker delivered it once, as sent.
    let again = deliveries(&net, n, (origin, seq));
    assert_eq!(again[attacker], 1);
}

#[test]
fn a_node_shutting_down_dials_no_replacement_for_its_closed_links() {
    // Shutting down closes every link; HyParView takes each as a failure
    // and would repair its view from the passive one. The dial is refused,
    // so the node ends with no connection (the `ringmesh` program waited
    // for the one it dialled, and never exited).
    let n = 10;
    let mut net = joined(n, false, 11);
    assert!(
        net.node(4).passive_view_len() > 0,
        "a passive view to repair from"
    );
    let dials = net.node(4).stats().peers.dials;
    net.command(4, ringmesh::Command::Shutdown)
        .expect("shutdown");
    net.run_for(Duration::from_secs(5));
    assert_eq!(
        net.node(4).stats().peers.dials,
        dials,
        "dialled while shutting down"
    );
    assert_eq!(net.node(4).connection_count(), 0);
}

/// A node that becomes a mesh peer just after a broadcast went by is told
/// of it by its new neighbours (`PlumtreeConfig::link_announce`) and grafts
/// it, once; with the announcement turned off it never hears of it. This
/// is the path a node takes whose tree link broke while a broadcast was on
/// its way and whose repairing link came up after the broadcast passed.
#[test]
fn a_new_mesh_link_announces_the_broadcasts_that_just_went_by() {
    let run = |link_announce: Duration| {
        let n = 20;
        let mut config = config(true);
        if let BroadcastMode::Plumtree(pt) = &mut config.mesh.broadcast {
            pt.link_announce = link_announce;
        }
        let mut net = Network::new(Duration::from_millis(5));
        for i in 0..n {
            net.add_node(config.clone(), secret(i), 9 + i as u64)
                .expect("valid config");
            net.run_for(Duration::from_millis(50));
        }
        net.run_for(Duration::from_secs(60));
        let id = broadcast(&mut net, 0, b"just went by");
        net.run_for(Duration::from_millis(500));
        let late = n;
        net.add_node(config, secret(late), 99)
            .expect("valid config");
        net.run_for(Duration::from_secs(3));
        assert!(
            !net.node(late).mesh_peers().is_empty(),
            "the late node joined the mesh"
        );
        let got = deliveries(&net, n + 1, id);
        assert!(got[1..n].iter().all(|&k| k == 1), "{got:?}");
        got[late]
    };
    assert_eq!(
        run(PlumtreeConfig::default().link_announce),
        1,
        "announced on the new links, grafted once"
    );
    assert_eq!(
        run(Duration::ZERO),
        0,
        "with no announcement, never heard of"
    );
}

/// Nodes that join after the tree formed are taken lazily by neighbours
/// whose tree is whole (spec/mesh.md, "A new link"): nobody pushes to
/// them at first, and they are reached by `IHave` and `Graft` until a
/// link of theirs is eager at both ends. Every later broadcast, from old
/// nodes and new, still reaches every node exactly once.
/// A node whose every mesh peer crashed silently, and that broadcasts
/// before liveness finds the crashes, is the only holder of that
/// broadcast: its pushes and announcements went to dead links. Its new
/// links are told of its own kept broadcasts for the whole graft window,
/// not only of the last `link_announce` (spec/mesh.md, "A new link"), so
/// the broadcast reaches every live node once the node links up again.
#[test]
fn a_broadcast_sent_over_dead_links_reaches_everyone_once_the_sender_links_up_again() {
    let n = 20;
    let mut net = slow_liveness_tree(n, 5);
    let all: Vec<NodeIndex> = (0..n).collect();
    let sender = 11;
    let dead = crash_mesh_peers(&mut net, n, sender);
    let id = broadcast(&mut net, sender, b"over dead links");
    net.run_for(Duration::from_secs(28));
    let live: Vec<NodeIndex> = all.iter().copied().filter(|i| !dead.contains(i)).collect();
    assert_once_everywhere(&net, n, &live, sender, id);
}

/// A node whose every mesh peer crashed silently misses the broadcasts
/// sent before liveness finds the crashes (11 s here, more than
/// `link_announce`). It then asks passive peers to link, and a node that
/// takes a peer on its request tells it of every broadcast it keeps, not
/// only of the last `link_announce` (spec/mesh.md, "A new link"): the
/// cut-off node grafts what it missed.
#[test]
fn a_node_cut_off_by_silent_crashes_gets_what_it_missed_once_it_links_up_again() {
    let n = 20;
    let mut net = slow_liveness_tree(n, 6);
    let all: Vec<NodeIndex> = (0..n).collect();
    let cut = 13;
    let dead = crash_mesh_peers(&mut net, n, cut);
    let sender = (0..n)
        .find(|i| *i != cut && !dead.contains(i))
        .expect("a live sender");
    let id = broadcast(&mut net, sender, b"while cut off");
    net.run_for(Duration::from_secs(28));
    let live: Vec<NodeIndex> = all.iter().copied().filter(|i| !dead.contains(i)).collect();
    assert_once_everywhere(&net, n, &live, sender, id);
}

#[test]
fn nodes_that_join_after_the_tree_formed_get_every_broadcast_once() {
    let n = 30;
    let late = 6;
    let mut net = joined(n, true, 5);
    let id = broadcast(&mut net, 0, b"build the tree");
    net.run_for(Duration::from_secs(5));
    let live: Vec<NodeIndex> = (0..n).collect();
    assert_once_everywhere(&net, n, &live, 0, id);
    for i in n..n + late {
        net.add_node(config(true), secret(i), 5 + i as u64)
            .expect("valid config");
        net.run_for(Duration::from_millis(50));
    }
    net.run_for(Duration::from_secs(30));
    let all: Vec<NodeIndex> = (0..n + late).collect();
    let linked: usize = (n..n + late).map(|i| net.node(i).mesh_peers().len()).sum();
    assert!(
        linked > late,
        "the late nodes hold several mesh links: {linked}"
    );
    for from in [3, 17, n + 2, 11, n + 5] {
        let id = broadcast(&mut net, from, b"after the joins");
        net.run_for(Duration::from_secs(5));
        assert_once_everywhere(&net, n + late, &all, from, id);
    }
}

/// The contact sends a joiner its linked peers and a passive sample
/// (spec/membership.md, "Joining"), so the joiner's passive view is not
/// empty before its first shuffle; and a joiner whose every mesh peer then
/// fails links up with the overlay again. (Before, the passive view stayed
/// empty until a shuffle was answered. This small network's joiner came
/// back even so, through the link its peer layer keeps; under churn,
/// joiners that came in through each other closed into islands:
/// spec/membership.md, "What HyParView does not do".)
#[test]
fn a_joiner_whose_mesh_peers_all_fail_at_once_links_up_again() {
    let n = 20;
    let mut net = joined(n, false, 9);
    let contact = 7;
    let mut c = config(false);
    c.peers.bootstrap = vec![Network::addr_of(contact)];
    let joiner = net.add_node(c, secret(n), 900).expect("valid config");
    net.run_for(Duration::from_millis(300));
    assert_eq!(net.node(contact).stats().membership.joiners_seeded, 1);
    assert!(
        net.node(joiner).passive_view_len() >= ACTIVE,
        "the joiner's passive view holds {}",
        net.node(joiner).passive_view_len()
    );
    let dead = crash_mesh_peers(&mut net, n, joiner);
    assert!(!dead.is_empty(), "the joiner has mesh peers");
    net.run_for(Duration::from_secs(60));
    let live: Vec<NodeIndex> = (0..=joiner).filter(|i| !dead.contains(i)).collect();
    let ids: BTreeSet<NodeId> = live.iter().map(|&i| net.node(i).node_id()).collect();
    let now = net.node(joiner).mesh_peers();
    assert!(
        !now.is_empty() && now.iter().all(|p| ids.contains(p)),
        "the joiner's mesh peers after {} of them failed: {now:?}",
        dead.len()
    );
    assert!(connected(&mesh(&net, &live)), "one overlay");
}

/// Nodes that join faster than a message crosses a link, each through a
/// random earlier node, must form one overlay. **Known gap, not met:** on
/// 12 of these 40 seeds (14 before contacts seeded passive views) the mesh ends split, and nothing merges it again:
/// a group of nodes whose active views hold only each other, and whose
/// passive views, filled by walks and shuffles inside the group, name no
/// node outside it (spec/membership.md, "What HyParView does not do").
/// Run with `cargo test -p ringmesh --test membership -- --ignored`.
#[test]
#[ignore = "known gap: HyParView overlays can split and never merge (spec/membership.md)"]
fn nodes_joining_faster_than_the_latency_form_one_overlay() {
    let mut split = Vec::new();
    for seed in 0..40u64 {
        let n = 40;
        let mut net = Network::new(Duration::from_millis(20));
        let mut pick = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for i in 0..n {
            let mut c = config(false);
            c.peers.bootstrap = if i == 0 {
                Vec::new()
            } else {
                pick ^= pick << 13;
                pick ^= pick >> 7;
                pick ^= pick << 17;
                vec![Network::addr_of((pick % i as u64) as usize)]
            };
            net.add_node(c, secret(i), seed * 100 + i as u64)
                .expect("valid config");
            net.run_for(Duration::from_millis(2));
        }
        net.run_for(Duration::from_secs(60));
        let live: Vec<NodeIndex> = (0..n).collect();
        if !connected(&mesh(&net, &live)) {
            split.push(seed);
        }
    }
    assert!(split.is_empty(), "the mesh ends split on seeds {split:?}");
}

/// A peer lost to a failure is dialled again with a growing wait and
/// forgotten after its twelfth dial: a node that never comes back costs
/// its former neighbours at most twelve dials each, and none after.
#[test]
fn a_dead_peer_is_dialled_again_twelve_times_at_most() {
    let n = 10;
    let mut net = joined(n, false, 3);
    let dead = 4;
    let had_it: Vec<NodeIndex> = (0..n)
        .filter(|&i| i != dead && net.node(i).mesh_peers().contains(&net.node(dead).node_id()))
        .collect();
    assert!(!had_it.is_empty(), "node {dead} had mesh peers");
    net.crash(dead);
    let redials = |net: &Network| -> u64 {
        (0..n)
            .filter(|&i| i != dead)
            .map(|i| net.node(i).stats().membership.lost_redials)
            .sum()
    };
    net.run_for(Duration::from_secs(120));
    let early = redials(&net);
    assert!(
        early >= 1,
        "the lost peer was dialled again within two minutes"
    );
    net.run_for(Duration::from_secs(4 * 3600));
    let late = redials(&net);
    assert!(
        late <= 12 * (n as u64 - 1),
        "{late} redials of one dead peer"
    );
    net.run_for(Duration::from_secs(3600));
    assert_eq!(redials(&net), late, "no redial once it is forgotten");
    assert_eq!(
        (0..n)
            .map(|i| net.node(i).stats().membership.lost_relinked)
            .sum::<u64>(),
        0,
        "a dead peer is never linked again"
    );
}
