//! Recursive lookups over the routing set (spec/chord.md §7.4), through the
//! in-memory harness: a stable ring's lookups dial nothing and take about
//! ½·log2 N hops, a lookup routes around a member that just died, a
//! peer flooding lookups cannot make a node hold more than its bound, and
//! the links a growing ring leaves behind are closed.

use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{ChordRoute, Message};
use ringmesh::{
    Accepted, ChordCommand, ChordConfig, ChordEvent, Config, Duration, Event, NodeId, PeersCommand,
    PeersConfig, Security,
};

const LATENCY: Duration = Duration::from_millis(5);
/// Successor list length of the rings here.
const R: usize = 4;

/// The ring's own links only (no random overlay, no peer exchange), as in
/// the simulator's chord runs: every connection is one the ring made.
fn config() -> Config {
    Config {
        security: Security::Plaintext,
        peers: PeersConfig {
            target_peers: 0,
            peer_exchange_size: 0,
            ..Config::lan().peers
        },
        chord: Some(ChordConfig {
            successors: R,
            ..ChordConfig::lan()
        }),
        ..Config::lan()
    }
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s[8] = 0x7e;
    s
}

/// `n` founders of one ring (each with `config(i)`), run until their
/// fingers have been found.
fn founded_ring(n: usize, config: impl Fn(NodeIndex) -> Config) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        net.add_node(config(i), secret(i), 9000 + i as u64)
            .expect("valid config");
    }
    net.found_ring(0..n).expect("found");
    // One finger per 2 s tick (lan); a 64-node ring with r = 4 needs about
    // log2(64 / 4) = 4 of them.
    net.run_for(Duration::from_secs(80));
    net
}

/// Node indices in ring order.
fn in_ring_order(net: &Network, n: usize) -> Vec<NodeIndex> {
    let mut order: Vec<NodeIndex> = (0..n).collect();
    order.sort_by_key(|&i| net.node(i).node_id());
    order
}

/// The true owner of `key` among `live`: the first member at or after it.
fn owner(net: &Network, live: &[NodeIndex], key: NodeId) -> NodeId {
    let mut ids: Vec<NodeId> = live.iter().map(|&j| net.node(j).node_id()).collect();
    ids.sort_unstable();
    ids.iter().copied().find(|&id| id >= key).unwrap_or(ids[0])
}

/// Issues a lookup of `key` from `from`; its owner and hops once it ends
/// (within `chord.lookup_timeout`).
fn lookup(net: &mut Network, from: NodeIndex, key: NodeId) -> (NodeId, u32) {
    let op = match net.command(from, ChordCommand::Lookup { key }) {
        Ok(Accepted::Op(op)) => op,
        other => panic!("lookup refused: {other:?}"),
    };
    let deadline = net.now() + Duration::from_secs(11);
    while net.now() < deadline {
        net.run_for(Duration::from_millis(5));
        let ended = net.events_of(from).find_map(|e| match e {
            Event::Chord(ChordEvent::LookupDone {
                id, owner, hops, ..
            }) if *id == op => Some(Ok((*owner, *hops))),
            Event::Chord(ChordEvent::LookupFailed { id, reason, .. }) if *id == op => {
                Some(Err(*reason))
            }
            _ => None,
        });
        if let Some(ended) = ended {
            net.take_events();
            return ended.unwrap_or_else(|e| panic!("lookup of {key} from {from} failed: {e}"));
        }
    }
    panic!("lookup of {key} from {from} never ended");
}

fn key(i: u64) -> NodeId {
    NodeId::from_u128(u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

fn dials(net: &Network, n: usize) -> u64 {
    (0..n).map(|i| net.node(i).stats().peers.dials).sum()
}

#[test]
fn a_stable_rings_lookups_dial_nothing_and_take_about_half_log_n_hops() {
    let n = 64;
    let mut net = founded_ring(n, |_| config());
    let live: Vec<NodeIndex> = (0..n).collect();
    let before = dials(&net, n);
    let sessions_before: u64 = (0..n)
        .map(|i| net.node(i).stats().peers.sessions_established)
        .sum();
    let lookups = 200u64;
    let mut hops = 0u64;
    for k in 0..lookups {
        let from = (k as usize * 7) % n;
        let key = key(k + 1);
        let (found, h) = lookup(&mut net, from, key);
        assert_eq!(found, owner(&net, &live, key), "lookup {k} from {from}");
        hops += u64::from(h);
    }
    // No connection opened for any of them: the routing sets carried them.
    assert_eq!(
        dials(&net, n),
        before,
        "a stable ring's lookups dial nothing"
    );
    let sessions_after: u64 = (0..n)
        .map(|i| net.node(i).stats().peers.sessions_established)
        .sum();
    assert_eq!(sessions_after, sessions_before);
    // Forwarded hop by hop, never falling back to the iterative walk.
    let stats: Vec<_> = (0..n).map(|i| net.node(i).stats().chord).collect();
    assert!(stats.iter().map(|s| s.forwarded).sum::<u64>() > lookups);
    assert_eq!(stats.iter().map(|s| s.route_fallbacks).sum::<u64>(), 0);
    // ½·log2 64 = 3 (Stoica et al. §6.3); the successor lists shorten the
    // last steps a little.
    let mean = hops as f64 / lookups as f64;
    let expected = 0.5 * (n as f64).log2();
    assert!(
        (mean - expected).abs() <= 0.25 * expected,
        "mean hops {mean:.2}, expected about {expected}"
    );
}

#[test]
fn a_lookup_routes_around_a_next_hop_that_just_died() {
    let n = 32;
    let mut net = founded_ring(n, |_| config());
    let order = in_ring_order(&net, n);
    // X dies (its process killed: its links reset, dials to it refused);
    // a key just after X is now owned by X's successor Y. Whoever holds
    // the lookup when X is the closest pointer to it finds X dead, flushes
    // it, and answers afresh: past X the key lies just after itself.
    let (x, y) = (order[10], order[11]);
    let asker = order[26];
    net.disconnect_node(x);
    net.crash(x);
    net.run_for(Duration::from_millis(50));
    let key = NodeId::from_u128(net.node(x).node_id().as_u128() + 1);
    let (found, hops) = lookup(&mut net, asker, key);
    assert_eq!(
        found,
        net.node(y).node_id(),
        "the live owner past the dead one"
    );
    assert!(hops >= 1);
    let live: Vec<NodeIndex> = (0..n).filter(|&i| i != x).collect();
    let stats: Vec<_> = live.iter().map(|&i| net.node(i).stats().chord).collect();
    assert!(
        stats.iter().map(|s| s.route_retries).sum::<u64>() >= 1,
        "a hop retried around the dead one"
    );
    assert_eq!(
        net.node(asker).stats().chord.route_fallbacks,
        0,
        "answered recursively, without the iterative fallback"
    );
    // And every other key is still found.
    for k in 0..20 {
        let key = key_near(k);
        let (found, _) = lookup(&mut net, asker, key);
        assert_eq!(found, owner(&net, &live, key));
    }
}

#[test]
fn a_lookup_routes_around_a_next_hop_that_crashed_silently() {
    let n = 32;
    let mut net = founded_ring(n, |_| config());
    let order = in_ring_order(&net, n);
    // X crashes silently: its links carry nothing and nobody is told.
    // Whoever holds the lookup when X is the closest pointer to the key
    // waits for X past its deadline (shorter than the hop's before it),
    // then routes around it: past X, the key lies just after X's
    // predecessor's first live successor, Y.
    let (x, y) = (order[20], order[21]);
    let asker = order[3];
    net.crash(x);
    let key = NodeId::from_u128(net.node(x).node_id().as_u128() + 1);
    let before = net.now();
    let (found, _) = lookup(&mut net, asker, key);
    assert_eq!(
        found,
        net.node(y).node_id(),
        "the live owner past the silent one"
    );
    assert_eq!(
        net.node(asker).stats().chord.route_fallbacks,
        0,
        "answered recursively, without the iterative fallback"
    );
    // Within the asker's own deadline: twice `chord.request_timeout` (lan
    // 1 s).
    assert!(net.now() - before < Duration::from_secs(2));
}

fn key_near(k: u64) -> NodeId {
    key(1000 + k)
}

#[test]
fn a_peer_flooding_lookups_makes_a_node_hold_at_most_its_bound() {
    let n = 16;
    let per_peer = 4;
    let mut net = founded_ring(n, |i| {
        let mut c = config();
        if i == 0 {
            let chord = c.chord.as_mut().expect("chord");
            chord.max_forwards_per_peer = per_peer;
        }
        c
    });
    let order = in_ring_order(&net, n);
    let victim = 0;
    let at = order.iter().position(|&i| i == victim).expect("in ring");
    // The attacker is the victim's predecessor: connected, a member. It
    // floods lookups of keys half a ring away, each of which the victim
    // would forward.
    let attacker = order[(at + n - 1) % n];
    let victim_id = net.node(victim).node_id();
    let far = victim_id.as_u128().wrapping_add(1 << 127);
    let flood = 50u64;
    let forwarded_before = net.node(victim).stats().chord.forwarded;
    let late_before = net.node(attacker).stats().chord.late_replies;
    let now = net.now();
    for i in 0..flood {
        let message = Message::ChordRoute(ChordRoute {
            req: 1_000_000 + i,
            key: far.wrapping_add(u128::from(i)),
            ttl: 32,
            avoid: None,
        });
        assert!(
            net.node_mut(attacker)
                .adversary_send(now, victim_id, &message),
            "sent"
        );
    }
    // A command that does nothing, so the harness takes the attacker's
    // outputs now.
    net.command(attacker, PeersCommand::AddPeers { peers: vec![] })
        .expect("no-op");
    net.take_events();
    // Delivered in one burst: the victim forwards `per_peer` and refuses
    // the rest at once, before any next hop can answer.
    net.run_for(LATENCY + Duration::from_millis(1));
    let victim_stats = net.node(victim).stats().chord;
    // (Others' lookups, the fingers', may pass through the victim meanwhile.)
    assert!(victim_stats.forwarded - forwarded_before >= per_peer as u64);
    assert_eq!(victim_stats.forwards_refused, flood - per_peer as u64);
    // Every one was answered (the refused ones `Failed` at once, the
    // forwarded ones once their path answered), so the victim holds none
    // of them; the attacker, which asked nothing through its node, counts
    // them as replies to no request of its own.
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.node(attacker).stats().chord.late_replies - late_before,
        flood
    );
    let live: Vec<NodeIndex> = (0..n).collect();
    let key = NodeId::from_u128(far);
    let (found, _) = lookup(&mut net, victim, key);
    assert_eq!(found, owner(&net, &live, key));
}

/// The nodes `i` keeps connections to for the ring: its successors, its
/// predecessor and its fingers.
fn routing_set(net: &Network, i: NodeIndex) -> Vec<NodeId> {
    let node = net.node(i);
    let mut set = node.chord_successors();
    set.extend(node.chord_predecessor());
    set.extend(node.chord_fingers());
    set
}

/// Connections that neither end needs for its routing set, but for
/// those in `wanted` (asked for by the application: kept on purpose).
fn stale_links(
    net: &Network,
    n: usize,
    wanted: &[(NodeIndex, NodeIndex)],
) -> Vec<(NodeIndex, NodeId)> {
    let sets: Vec<Vec<NodeId>> = (0..n).map(|i| routing_set(net, i)).collect();
    let index_of = |id: NodeId| (0..n).find(|&j| net.node(j).node_id() == id);
    let mut stale = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let me = net.node(i).node_id();
        for peer in net.node(i).connected_peers() {
            let j = index_of(peer);
            let theirs = j.is_some_and(|j| sets[j].contains(&me));
            let asked = j.is_some_and(|j| wanted.contains(&(i, j)) || wanted.contains(&(j, i)));
            if !set.contains(&peer) && !theirs && !asked {
                stale.push((i, peer));
            }
        }
    }
    stale
}

#[test]
fn links_a_growing_ring_leaves_behind_are_closed() {
    // 16 founders, then 48 joiners: each join pushes a member out of some
    // successor lists and moves some fingers, so the routing sets change
    // under every member.
    let founders = 16;
    let n = 64;
    let mut net = founded_ring(founders, |_| config());
    // Each joiner dials the member it joins through, as an application
    // would: that connection is wanted, and kept.
    let mut wanted = Vec::new();
    for j in founders..n {
        net.add_node(config(), secret(j), 9000 + j as u64)
            .expect("valid config");
        let via = (j * 5) % founders;
        let via_id = net.node(via).node_id();
        net.connect(j, via).expect("dial");
        wanted.push((j, via));
        net.settle();
        net.command(j, ChordCommand::Join { via: Some(via_id) })
            .expect("join");
        net.run_for(Duration::from_millis(500));
    }
    // The ring settles, and a pass of fix-fingers ticks (2 s each) sees
    // every routing set as it now is.
    net.run_for(Duration::from_secs(60));
    let stale = stale_links(&net, n, &wanted);
    assert!(
        stale.is_empty(),
        "{} connections neither end needs, e.g. {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    // Every member still reaches its whole routing set over open
    // connections: no link the ring uses was closed.
    for i in 0..n {
        let up = net.node(i).connected_peers();
        for p in routing_set(&net, i) {
            assert!(up.contains(&p), "node {i} lost its link to pointer {p}");
        }
    }
    let live: Vec<NodeIndex> = (0..n).collect();
    for k in 0..50u64 {
        let from = (k as usize * 11) % n;
        let key = key(k + 1000);
        let (found, _) = lookup(&mut net, from, key);
        assert_eq!(found, owner(&net, &live, key), "lookup {k} from {from}");
    }
}

#[test]
fn a_long_live_path_is_not_retried_around() {
    // 64 members with two successors each and no useful fingers (none
    // fixed in this run): a lookup walks the ring two members a hop, about 25 hops
    // at 20 ms one-way, 1 s there and back, under the asker's 1.2 s but
    // past a request's time (600 ms) behind the eighth hop. Every hop's
    // deadline must cover the live path behind it: a deadline that stops
    // shrinking after the first hops made the hops past them give up on
    // the live path and retry it (spec/chord.md §7.4).
    let n = 64;
    let config = || Config {
        chord: Some(ChordConfig {
            successors: 2,
            request_timeout: Duration::from_millis(600),
            fix_fingers_interval: Duration::from_secs(3600),
            ..ChordConfig::lan()
        }),
        ..config()
    };
    let mut net = Network::new(Duration::from_millis(20));
    for i in 0..n {
        net.add_node(config(), secret(i), 9000 + i as u64)
            .expect("valid config");
    }
    // Each member founds the ring knowing only its neighbourhood (its
    // predecessor, itself, its two successors), so the only finger the
    // list shows it is its predecessor (spec/chord.md §5.1), useless for
    // the keys ahead.
    let order = in_ring_order(&net, n);
    let entry = |net: &Network, i: NodeIndex| ringmesh::wire::PeerEntry {
        id: net.node(i).node_id(),
        addrs: [Network::addr_of(i)].into_iter().collect(),
    };
    for k in 0..n {
        let founders = (n + k - 1..=n + k + 2)
            .map(|j| entry(&net, order[j % n]))
            .collect();
        net.command(order[k], ChordCommand::Found { founders })
            .expect("found");
    }
    net.run_for(Duration::from_secs(5));
    let live: Vec<NodeIndex> = (0..n).collect();
    let from = order[0];
    let target = net.node(order[50]).node_id();
    let key = NodeId::from_u128(target.as_u128() - 1);
    let routed_around = |net: &Network| -> (u64, u64) {
        (0..n)
            .map(|i| net.node(i).stats().chord)
            .fold((0, 0), |(r, f), s| {
                (r + s.route_retries, f + s.route_fallbacks)
            })
    };
    // A first lookup opens the links the path takes (dialled on demand).
    let _ = lookup(&mut net, from, key);
    net.run_for(Duration::from_secs(5));
    let before = routed_around(&net);
    let (found, hops) = lookup(&mut net, from, key);
    assert_eq!(found, owner(&net, &live, key));
    assert!(hops >= 20, "the path is long: {hops} hops");
    assert_eq!(routed_around(&net), before, "a live path was routed around");
}

#[test]
fn a_silent_next_hop_is_found_by_its_missing_ack_probed_and_passed_over() {
    // Idle links are pinged only every 30 s here (the simulator's chord
    // runs ping every 5 s): a crashed finger would go unnoticed that long,
    // and every lookup through it would wait for it.
    let quiet = |_| Config {
        liveness: ringmesh::LivenessConfig {
            ping_interval: Duration::from_secs(30),
            ..Config::lan().liveness
        },
        ..config()
    };
    let n = 32;
    let mut net = founded_ring(n, quiet);
    let order = in_ring_order(&net, n);
    let (x, y) = (order[20], order[21]);
    let asker = order[3];
    net.crash(x);
    net.take_events();
    let x_id = net.node(x).node_id();
    let key = NodeId::from_u128(x_id.as_u128() + 1);
    let crashed_at = net.now();
    let (found, _) = lookup(&mut net, asker, key);
    assert_eq!(found, net.node(y).node_id());
    // The hop before X learns within a few round trips that X is silent:
    // X does not acknowledge the lookup (`ChordRouteAck`, §7.4).
    assert!(
        net.now() - crashed_at < Duration::from_millis(500),
        "the lookup took {:?}: the hop waited for X's deadline",
        net.now() - crashed_at
    );
    let probing: Vec<NodeIndex> = (0..n)
        .filter(|&i| i != x && net.node(i).stats().liveness.probes > 0)
        .collect();
    assert!(!probing.is_empty(), "the hop X left unanswered probed it");
    assert!(
        probing
            .iter()
            .all(|&h| net.node(h).stats().chord.route_acks_missed > 0),
        "found silent by its missing acknowledgement"
    );
    // At once, the next lookup of the same key from the same asker does
    // not wait on X at the hops that found it silent: they hold it
    // suspect and pass it over.
    let timed_out = |net: &Network, h: NodeIndex| net.node(h).stats().chord.route_retries_timed_out;
    let before: Vec<u64> = probing.iter().map(|&h| timed_out(&net, h)).collect();
    let (found, _) = lookup(&mut net, asker, key);
    assert_eq!(found, net.node(y).node_id());
    let after: Vec<u64> = probing.iter().map(|&h| timed_out(&net, h)).collect();
    assert_eq!(
        after, before,
        "a hop that found X silent waited on it again"
    );
    // Within two more ping timeouts (lan: 500 ms each), not 3 × 30 s, the
    // probing hops no longer route over X (declared dead, or passed over
    // as suspect by their fix-fingers and the link released).
    net.run_until(crashed_at + Duration::from_secs(3));
    for &h in &probing {
        assert!(
            !routing_set(&net, h).contains(&x_id) && !net.node(h).is_connected(x_id),
            "node {h} still routes over X 3 s after it crashed"
        );
    }
}

#[test]
fn an_iterative_lookup_whose_last_candidate_is_silent_asks_past_it() {
    // A client that is not a member asks hop by hop (§7.2). X crashes
    // silently; its predecessor W still lists it first. For a key just
    // after X, W's only candidate is X: once X has failed the client has
    // no candidate left, and asks W once more to avoid X (§7.2 step 5),
    // which W answers from the rest of its list: the owner is Y.
    let n = 32;
    let mut net = founded_ring(n, |_| config());
    let client = net
        .add_node(config(), secret(n), 9000 + n as u64)
        .expect("valid config");
    let order = in_ring_order(&net, n);
    let (x, y) = (order[20], order[21]);
    net.connect(client, order[3]).expect("dial");
    net.run_for(Duration::from_millis(100));
    net.crash(x);
    let key = NodeId::from_u128(net.node(x).node_id().as_u128() + 1);
    let (found, _) = lookup(&mut net, client, key);
    assert_eq!(found, net.node(y).node_id(), "the live owner past X");
    assert_eq!(net.node(client).stats().chord.asked_past_silent, 1);
}
