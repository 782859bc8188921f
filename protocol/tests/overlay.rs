//! Whole overlay behaviours driven through the in-memory harness: peers,
//! discovery, liveness, mesh flooding and messaging.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringmesh::testing::{Network, NodeIndex, Recorded};
use ringmesh::{
    Accepted, CloseReason, Command, CommandError, Config, DeliveryError, Direction, Duration,
    Event, Instant, LivenessEvent, MeshCommand, MeshEvent, MessagingCommand, MessagingConfig,
    MessagingError, MessagingEvent, NodeId, PeersCommand, PeersConfig, PeersError, PeersEvent,
    Security,
};

const LATENCY: Duration = Duration::from_millis(5);

fn lan() -> Config {
    Config {
        security: Security::Plaintext,
        ..Config::lan()
    }
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s
}

fn network(n: usize, config: impl Fn(NodeIndex) -> Config) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        net.add_node(config(i), secret(i), 1000 + i as u64)
            .expect("valid config");
    }
    net
}

fn id(net: &Network, i: NodeIndex) -> NodeId {
    net.node(i).node_id()
}

/// (origin, seq, hops) of every broadcast node `i` delivered.
fn delivered(net: &Network, i: NodeIndex) -> Vec<(NodeId, u64, u8)> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Mesh(MeshEvent::Broadcast {
                origin, seq, hops, ..
            }) => Some((*origin, *seq, *hops)),
            _ => None,
        })
        .collect()
}

fn broadcast(net: &mut Network, i: NodeIndex, payload: &'static [u8]) -> u64 {
    match net.command(
        i,
        MeshCommand::Broadcast {
            payload: Bytes::from_static(payload),
        },
    ) {
        Ok(Accepted::Broadcast { seq }) => seq,
        other => panic!("broadcast refused: {other:?}"),
    }
}

/// Every node but the origin delivered `(origin, seq)` exactly once; the
/// origin did not deliver it.
fn assert_delivered_once_everywhere(
    net: &Network,
    nodes: &[NodeIndex],
    origin: NodeIndex,
    seq: u64,
) {
    let origin_id = id(net, origin);
    for &i in nodes {
        let count = delivered(net, i)
            .iter()
            .filter(|(o, s, _)| *o == origin_id && *s == seq)
            .count();
        let expected = usize::from(i != origin);
        assert_eq!(count, expected, "node {i}, broadcast {seq} from {origin}");
    }
}

fn bootstrapped(n: usize, target: usize) -> Network {
    let mut net = network(n, |_| Config {
        peers: PeersConfig {
            target_peers: target,
            bootstrap: vec![Network::addr_of(0)],
            ..lan().peers
        },
        ..lan()
    });
    net.run_for(Duration::from_secs(30));
    net
}

#[test]
fn ten_nodes_built_from_a_bootstrap_list_converge_to_the_target_peer_count() {
    let target = 4;
    let net = bootstrapped(10, target);
    for i in 0..10 {
        let node = net.node(i);
        assert!(
            node.peer_count() >= target,
            "node {i} has {} peers",
            node.peer_count()
        );
        // Dials stop at the target; extra peers are inbound.
        assert!(node.outbound_count() <= target, "node {i} dialled too many");
        for peer in node.connected_peers() {
            let j = (0..10).find(|&j| id(&net, j) == peer).expect("a node");
            assert!(
                net.node(j).is_connected(node.node_id()),
                "{i}→{j} one-sided"
            );
        }
        // Exactly one connection per peer.
        assert_eq!(node.connection_count(), node.peer_count(), "node {i}");
    }
}

#[test]
fn a_broadcast_from_any_node_is_delivered_exactly_once_at_every_node() {
    let mut net = bootstrapped(10, 3);
    let all: Vec<NodeIndex> = (0..10).collect();
    for origin in 0..10 {
        let seq = broadcast(&mut net, origin, b"hello everyone");
        net.settle();
        assert_delivered_once_everywhere(&net, &all, origin, seq);
    }
    let duplicates: u64 = all
        .iter()
        .map(|&i| net.node(i).stats().mesh.duplicate)
        .sum();
    assert!(
        duplicates > 0,
        "a mesh with cycles sees duplicates, and drops them"
    );
}

fn ring(n: usize) -> Network {
    let mut net = network(n, |_| Config {
        peers: PeersConfig {
            target_peers: 2,
            ..lan().peers
        },
        ..lan()
    });
    for i in 0..n {
        net.connect(i, (i + 1) % n).expect("dial");
    }
    net.settle();
    for i in 0..n {
        assert_eq!(net.node(i).peer_count(), 2, "ring node {i}");
    }
    net
}

#[test]
fn a_broadcast_on_a_ring_travels_both_ways() {
    let n = 8;
    let mut net = ring(n);
    let seq = broadcast(&mut net, 0, b"round");
    net.settle();
    let origin = id(&net, 0);
    for k in 1..n {
        let got = delivered(&net, k);
        let hops: Vec<u8> = got
            .iter()
            .filter(|(o, s, _)| *o == origin && *s == seq)
            .map(|m| m.2)
            .collect();
        // With equal latencies each node hears it first the short way round.
        assert_eq!(hops, vec![k.min(n - k) as u8], "node {k}");
    }
}

#[test]
fn a_slow_link_on_a_ring_is_overtaken_by_the_long_way_round() {
    let n = 6;
    let mut net = network(n, |_| Config {
        peers: PeersConfig {
            target_peers: 2,
            ..lan().peers
        },
        ..lan()
    });
    // The direct link 0–1 is slower than going round the other five links.
    net.set_latency(0, 1, Duration::from_millis(100));
    for i in 0..n {
        net.connect(i, (i + 1) % n).expect("dial");
    }
    net.settle();
    let seq = broadcast(&mut net, 0, b"which way");
    net.settle();
    let at_1: Vec<u8> = delivered(&net, 1)
        .iter()
        .filter(|m| m.1 == seq)
        .map(|m| m.2)
        .collect();
    assert_eq!(at_1, vec![5], "node 1 hears it the long way, once");
}

#[test]
fn simultaneous_dials_leave_exactly_one_connection_on_both_sides() {
    // Both orders of ids, several latencies, the second dial up to three
    // latencies late (so some races resolve after one side is already up).
    for case in 0..24u64 {
        let latency = Duration::from_millis(1 + case % 7);
        let mut net = Network::new(latency);
        let (a, b) = (case as usize % 2, 1 - case as usize % 2);
        net.add_node(lan(), secret(case as usize * 2), case)
            .expect("valid");
        net.add_node(lan(), secret(case as usize * 2 + 1), case + 100)
            .expect("valid");
        net.connect(a, b).expect("dial");
        net.run_for(Duration::from_micros(latency.as_micros() * (case % 4)));
        net.connect(b, a).expect("dial");
        net.run_for(Duration::from_secs(5));
        let (ida, idb) = (id(&net, a), id(&net, b));
        for (i, peer) in [(a, idb), (b, ida)] {
            assert!(
                net.node(i).is_connected(peer),
                "case {case}: node {i} not up"
            );
            assert_eq!(net.node(i).connection_count(), 1, "case {case}: node {i}");
            let downs = net
                .events_of(i)
                .filter(|e| matches!(e, Event::Peers(PeersEvent::Down { .. })))
                .count();
            assert_eq!(downs, 0, "case {case}: node {i} flapped");
        }
        // Both kept the same link: the one the smaller id dialled.
        let kept_by = |i: NodeIndex| {
            let survivor: Vec<Direction> = net
                .events_of(i)
                .filter_map(|e| match e {
                    Event::Peers(PeersEvent::Established {
                        conn, direction, ..
                    }) => Some((*conn, *direction)),
                    _ => None,
                })
                .filter(|(conn, _)| {
                    !net.events_of(i)
                        .any(|e| matches!(e, Event::Peers(PeersEvent::Closed { conn: c, .. }) if c == conn))
                })
                .map(|(_, d)| d)
                .collect();
            assert_eq!(survivor.len(), 1, "case {case}: node {i}");
            survivor[0]
        };
        let smaller = if ida < idb { a } else { b };
        assert_eq!(kept_by(smaller), Direction::Outbound, "case {case}");
        assert_eq!(kept_by(1 - smaller), Direction::Inbound, "case {case}");
    }
}

#[test]
fn a_peer_request_on_a_connection_being_retired_is_answered_on_the_one_kept() {
    let mut net = network(2, |_| lan());
    net.record_sent(true);
    // Node 0 dials node 1 twice: it keeps the first connection up and
    // retires the second (`Goodbye(Duplicate)`, then nothing more on it).
    let first = net.connect(0, 1).expect("dial");
    let second = net.connect(0, 1).expect("dial");
    let established = |net: &Network| {
        net.events_of(0)
            .filter(|e| matches!(e, Event::Peers(PeersEvent::Established { .. })))
            .count()
    };
    while established(&net) < 2 {
        assert!(net.step(), "both dials complete");
    }
    assert!(net.node(0).is_connected(id(&net, 1)));
    // Node 1 asks for peers on the connection being retired, before its
    // goodbye there: the answer must not be lost with that connection.
    let mut frame = bytes::BytesMut::new();
    ringmesh::wire::encode_frame(
        &ringmesh::wire::Message::PeerRequest(ringmesh::wire::PeerRequest),
        None,
        &mut frame,
    );
    let before = net.sent().len();
    net.inject(0, second, frame.freeze());
    let replies: Vec<_> = net.sent()[before..]
        .iter()
        .filter(|s| s.node == 0 && s.bytes.get(5) == Some(&0x11))
        .map(|s| s.conn)
        .collect();
    assert_eq!(replies, [first], "one PeerList, on the kept connection");
}

#[test]
fn nothing_sent_during_a_duplicate_resolution_is_lost() {
    for case in 0..12u64 {
        let mut net = Network::new(Duration::from_millis(2 + case % 3));
        net.add_node(lan(), secret(case as usize * 2), case)
            .expect("valid");
        net.add_node(lan(), secret(case as usize * 2 + 1), case + 7)
            .expect("valid");
        net.connect(0, 1).expect("dial");
        net.connect(1, 0).expect("dial");
        // Broadcast from both sides at every step once they are up, while
        // the duplicate is being drained.
        let mut sent = [0u64; 2];
        for _ in 0..200 {
            for (i, sent) in sent.iter_mut().enumerate() {
                if net.node(i).peer_count() == 1 {
                    broadcast(&mut net, i, b"x");
                    *sent += 1;
                }
            }
            if !net.step() {
                break;
            }
        }
        net.run_for(Duration::from_secs(2));
        assert!(sent[0] > 0 && sent[1] > 0, "case {case}: never up");
        for (from, to) in [(0, 1), (1, 0)] {
            let got = delivered(&net, to).len() as u64;
            assert_eq!(got, sent[from], "case {case}: {from}→{to}");
        }
    }
}

#[test]
fn connect_any_with_three_dead_addresses_and_one_live_one_connects_to_the_live_one() {
    let mut net = network(2, |_| lan());
    let dead = |n: u8| std::net::SocketAddr::from(([10, 0, 0, n], 7000));
    let addrs = vec![dead(1), Network::addr_of(1), dead(2), dead(3)];
    let accepted = net
        .command(0, PeersCommand::ConnectAny { addrs, peer: None })
        .expect("dials");
    assert!(matches!(accepted, Accepted::Racing { count: 4, .. }));
    net.settle();
    assert!(net.node(0).is_connected(id(&net, 1)));
    assert_eq!(net.node(0).connection_count(), 1);
    let failures = net
        .events_of(0)
        .filter(|e| {
            matches!(
                e,
                Event::Peers(PeersEvent::Closed {
                    reason: CloseReason::DialFailed(_),
                    ..
                })
            )
        })
        .count();
    assert_eq!(failures, 3);
}

#[test]
fn connect_any_keeps_the_first_handshake_and_closes_the_rest() {
    let mut net = network(3, |_| lan());
    net.set_latency(0, 1, Duration::from_millis(50));
    net.set_latency(0, 2, Duration::from_millis(5));
    let addrs = vec![Network::addr_of(1), Network::addr_of(2)];
    net.command(0, PeersCommand::ConnectAny { addrs, peer: None })
        .expect("dials");
    net.settle();
    assert!(net.node(0).is_connected(id(&net, 2)), "the faster one wins");
    assert!(!net.node(0).is_connected(id(&net, 1)));
    assert!(net.events_of(0).any(|e| matches!(
        e,
        Event::Peers(PeersEvent::Closed {
            reason: CloseReason::RaceLost,
            ..
        })
    )));
    assert_eq!(
        net.node(1).connection_count(),
        0,
        "the loser's end closed too"
    );
}

#[test]
fn connect_any_refuses_empty_and_oversized_address_sets() {
    let mut net = network(1, |_| lan());
    for addrs in [vec![], vec![Network::addr_of(5); 9]] {
        let n = addrs.len();
        assert_eq!(
            net.command(0, PeersCommand::ConnectAny { addrs, peer: None }),
            Err(CommandError::Peers(PeersError::BadAddressCount(n)))
        );
    }
    assert_eq!(net.node(0).connection_count(), 0);
}

/// When each node declared `peer` down, and why.
fn downs_of(net: &Network, peer: NodeId) -> Vec<(NodeIndex, Instant, CloseReason)> {
    net.events()
        .iter()
        .filter_map(
            |Recorded {
                 node: i,
                 at: t,
                 event: e,
             }| match e {
                Event::Peers(PeersEvent::Down { peer: p, reason }) if *p == peer => {
                    Some((*i, *t, reason.clone()))
                }
                _ => None,
            },
        )
        .collect()
}

#[test]
fn a_crashed_peer_is_declared_down_at_each_neighbour_within_the_detection_time_and_never_before() {
    let config = lan();
    let (interval, timeout) = (config.liveness.ping_interval, config.liveness.ping_timeout);
    let misses = u64::from(config.liveness.dead_after_misses);
    let detection = config.detection_time();
    // Crash at several phases relative to the ping schedule.
    for offset_ms in [0u64, 130, 470, 900] {
        let mut net = network(4, |_| lan());
        for (i, j) in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)] {
            net.connect(i, j).expect("dial");
        }
        net.run_for(Duration::from_millis(10_000 + offset_ms));
        let crashed = id(&net, 3);
        let crash_at = net.now();
        net.crash(3);
        net.run_for(detection + detection);
        let downs = downs_of(&net, crashed);
        let earliest = crash_at + interval.saturating_mul(misses - 1) + timeout - LATENCY;
        assert_eq!(downs.len(), 3, "offset {offset_ms}: {downs:?}");
        for (i, at, reason) in downs {
            assert_eq!(reason, CloseReason::Unresponsive, "node {i}");
            assert!(at <= crash_at + detection, "node {i}: {at:?} too late");
            assert!(
                at >= earliest,
                "node {i}: {at:?} before the bound {earliest:?}"
            );
        }
        // Nobody else was suspected dead.
        for i in 0..3 {
            assert_eq!(
                net.events_of(i)
                    .filter(|e| matches!(e, Event::Peers(PeersEvent::Down { peer, .. }) if *peer != crashed))
                    .count(),
                0
            );
        }
    }
}

#[test]
fn live_peers_are_never_declared_down_and_their_rtt_is_measured() {
    let mut net = network(3, |_| lan());
    net.set_latency(0, 2, Duration::from_millis(200));
    net.connect(0, 1).expect("dial");
    net.connect(0, 2).expect("dial");
    net.run_for(Duration::from_secs(120));
    assert!(
        net.events()
            .iter()
            .all(|Recorded { event: e, .. }| !matches!(
                e,
                Event::Peers(PeersEvent::Down { .. })
                    | Event::Liveness(LivenessEvent::Suspect { .. })
            ))
    );
    assert_eq!(
        net.node(0).rtt(id(&net, 1)),
        Some(LATENCY.saturating_mul(2))
    );
    assert_eq!(
        net.node(0).rtt(id(&net, 2)),
        Some(Duration::from_millis(400))
    );
}

fn answer_requests(net: &mut Network, i: NodeIndex, seen: &mut usize) {
    let requests: Vec<(NodeId, ringmesh::RequestId, Bytes)> = net
        .events_of(i)
        .filter_map(|e| match e {
            Event::Messaging(MessagingEvent::Request { from, id, payload }) => {
                Some((*from, *id, payload.clone()))
            }
            _ => None,
        })
        .skip(*seen)
        .collect();
    *seen += requests.len();
    for (from, id, payload) in requests {
        let mut answer = b"re: ".to_vec();
        answer.extend_from_slice(&payload);
        net.command(
            i,
            MessagingCommand::Respond {
                to: from,
                id,
                payload: answer.into(),
            },
        )
        .expect("requester connected");
    }
}

#[test]
fn a_request_gets_its_response_and_one_to_a_silent_node_fails_at_its_timeout() {
    let mut net = network(3, |_| lan());
    net.connect(0, 1).expect("dial");
    net.connect(0, 2).expect("dial");
    net.settle();
    let (b, c) = (id(&net, 1), id(&net, 2));
    let asked_at = net.now();
    let Ok(Accepted::Request(rid)) = net.command(
        0,
        MessagingCommand::Request {
            to: b,
            payload: Bytes::from_static(b"time?"),
            timeout: Duration::from_secs(1),
        },
    ) else {
        panic!("request refused")
    };
    net.settle();
    answer_requests(&mut net, 1, &mut 0);
    net.settle();
    let response = net.events_of(0).find_map(|e| match e {
        Event::Messaging(MessagingEvent::Response {
            from,
            id,
            payload,
            rtt,
        }) => Some((*from, *id, payload.clone(), *rtt)),
        _ => None,
    });
    assert_eq!(
        response,
        Some((
            b,
            rid,
            Bytes::from_static(b"re: time?"),
            LATENCY.saturating_mul(2)
        ))
    );
    let _ = asked_at;

    // Node 2 goes silent; a request to it fails exactly at its timeout.
    net.crash(2);
    let timeout = Duration::from_secs(2);
    let asked_at = net.now();
    let Ok(Accepted::Request(rid)) = net.command(
        0,
        MessagingCommand::Request {
            to: c,
            payload: Bytes::from_static(b"anyone?"),
            timeout,
        },
    ) else {
        panic!("request refused")
    };
    net.run_for(timeout + timeout);
    let failed: Vec<(Instant, DeliveryError)> = net
        .events()
        .iter()
        .filter_map(
            |Recorded {
                 node: i,
                 at: t,
                 event: e,
             }| match e {
                Event::Messaging(MessagingEvent::RequestFailed { id, reason, .. })
                    if *i == 0 && *id == rid =>
                {
                    Some((*t, *reason))
                }
                _ => None,
            },
        )
        .collect();
    assert_eq!(failed, vec![(asked_at + timeout, DeliveryError::Timeout)]);
    // No response was invented, and the failed request is forgotten.
    assert_eq!(pending(net.node(0)), (0, 0));
}

#[test]
fn a_request_to_a_peer_that_goes_down_fails_as_disconnected() {
    let mut net = network(2, |_| lan());
    net.connect(0, 1).expect("dial");
    net.settle();
    let b = id(&net, 1);
    net.command(
        0,
        MessagingCommand::Request {
            to: b,
            payload: Bytes::new(),
            timeout: Duration::from_secs(60),
        },
    )
    .expect("sent");
    net.command(1, Command::Shutdown).expect("shutdown");
    net.settle();
    assert!(net.events_of(0).any(|e| matches!(
        e,
        Event::Messaging(MessagingEvent::RequestFailed {
            reason: DeliveryError::Disconnected,
            ..
        })
    )));
}

#[test]
fn a_message_to_an_unconnected_node_is_delivered_after_looking_it_up_through_a_neighbour() {
    let mut net = network(3, |_| Config {
        peers: PeersConfig {
            target_peers: 1,
            ..lan().peers
        },
        ..lan()
    });
    net.connect(0, 1).expect("dial");
    net.settle();
    net.connect(1, 2).expect("dial");
    net.settle();
    let c = id(&net, 2);
    assert!(
        net.node(0).known_peers().iter().all(|e| e.id != c),
        "node 0 must not know node 2 yet"
    );
    let accepted = net.command(
        0,
        MessagingCommand::Send {
            to: c,
            payload: Bytes::from_static(b"found you"),
        },
    );
    assert_eq!(accepted, Ok(Accepted::Queued));
    net.settle();
    assert!(net.node(0).is_connected(c));
    let got: Vec<Bytes> = net
        .events_of(2)
        .filter_map(|e| match e {
            Event::Messaging(MessagingEvent::Direct { payload, .. }) => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![Bytes::from_static(b"found you")]);
}

#[test]
fn a_message_to_a_node_nobody_knows_comes_back_at_the_lookup_timeout() {
    let mut net = network(2, |_| lan());
    net.connect(0, 1).expect("dial");
    net.settle();
    let nobody = NodeId::from_u128(42);
    let at = net.now();
    let payload = Bytes::from_static(b"lost?");
    assert_eq!(
        net.command(
            0,
            MessagingCommand::Send {
                to: nobody,
                payload: payload.clone()
            }
        ),
        Ok(Accepted::Queued)
    );
    let timeout = net.node(0).config().messaging.lookup_timeout;
    net.run_for(timeout + timeout);
    let failed: Vec<(Instant, Event)> = net
        .events()
        .iter()
        .filter(
            |Recorded {
                 node: i, event: e, ..
             }| {
                *i == 0 && matches!(e, Event::Messaging(MessagingEvent::SendFailed { .. }))
            },
        )
        .map(|r| (r.at, r.event.clone()))
        .collect();
    assert_eq!(
        failed,
        vec![(
            at + timeout,
            Event::Messaging(MessagingEvent::SendFailed {
                to: nobody,
                payload,
                reason: DeliveryError::Unreachable
            })
        )]
    );
    assert_eq!(pending(net.node(0)), (0, 0));
}

#[test]
fn after_a_full_disconnect_the_nodes_reconnect_from_their_peer_caches_without_the_bootstrap_node() {
    let n = 8;
    let mut net = bootstrapped(n, 3);
    net.crash(0);
    net.disconnect_all();
    net.run_for(Duration::from_secs(5));
    net.run_for(Duration::from_secs(120));
    let rest: Vec<NodeIndex> = (1..n).collect();
    for &i in &rest {
        assert!(
            net.node(i).peer_count() >= 3,
            "node {i} has {} peers",
            net.node(i).peer_count()
        );
        assert!(!net.node(i).is_connected(id(&net, 0)));
    }
    // And the survivors form one network: a broadcast reaches them all.
    let seq = broadcast(&mut net, 1, b"still here");
    net.settle();
    assert_delivered_once_everywhere(&net, &rest, 1, seq);
}

#[test]
fn an_exported_peer_cache_lets_a_new_node_join_without_bootstrap() {
    let mut net = bootstrapped(6, 3);
    let cache = net.node(1).known_peers();
    assert!(cache.len() >= 3, "node 1 knows {} peers", cache.len());
    assert!(cache.iter().all(|e| !e.addrs.is_empty()));
    let newcomer = net
        .add_node(
            Config {
                peers: PeersConfig {
                    target_peers: 3,
                    ..lan().peers
                },
                ..lan()
            },
            secret(99),
            99,
        )
        .expect("valid");
    net.command(newcomer, PeersCommand::AddPeers { peers: cache })
        .expect("imported");
    net.run_for(Duration::from_secs(10));
    assert!(net.node(newcomer).peer_count() >= 3);
}

#[test]
fn a_wanted_peer_is_redialled_with_growing_backoff_until_it_returns() {
    let mut net = network(2, |_| lan());
    let b = id(&net, 1);
    net.command(
        0,
        PeersCommand::Connect {
            addr: Network::addr_of(1),
            peer: Some(b),
        },
    )
    .expect("dial");
    net.settle();
    assert!(net.node(0).is_connected(b));
    net.crash(1);
    net.run_for(Duration::from_secs(90));
    let failures: Vec<Instant> = net
        .events()
        .iter()
        .filter(
            |Recorded {
                 node: i, event: e, ..
             }| {
                *i == 0
                    && matches!(
                        e,
                        Event::Peers(PeersEvent::Closed {
                            reason: CloseReason::DialFailed(_),
                            ..
                        })
                    )
            },
        )
        .map(|r| r.at)
        .collect();
    assert!(failures.len() >= 4, "{failures:?}");
    let config = lan();
    let gaps: Vec<u64> = failures
        .windows(2)
        .map(|w| (w[1] - w[0]).as_micros())
        .collect();
    for (k, gap) in gaps.iter().enumerate() {
        // After k failed redials the next waits between half and all of
        // min·2^k (capped), rounded up to a maintenance round.
        let full = (config.peers.redial_backoff_min.as_micros() << k)
            .min(config.peers.redial_backoff_max.as_micros());
        let (low, high) = (
            full / 2,
            full + config.peers.maintenance_interval.as_micros(),
        );
        assert!(
            *gap >= low && *gap <= high,
            "gap {k}: {gap} not in {low}..={high}"
        );
    }
    net.recover(1);
    net.run_for(Duration::from_secs(60));
    assert!(net.node(0).is_connected(b), "redialled once it came back");
}

#[test]
fn connection_caps_refuse_dials_and_inbound_connections() {
    let mut net = network(4, |i| Config {
        peers: PeersConfig {
            max_outbound: 1,
            max_inbound: if i == 3 { 1 } else { 128 },
            ..lan().peers
        },
        ..lan()
    });
    net.connect(0, 3).expect("first dial");
    assert_eq!(
        net.connect(0, 1),
        Err(CommandError::Peers(PeersError::TooManyOutbound(1)))
    );
    net.settle();
    net.connect(1, 3).expect("dial");
    net.settle();
    assert_eq!(net.node(3).connection_count(), 1);
    assert!(!net.node(1).is_connected(id(&net, 3)));
    assert_eq!(net.node(3).stats().peers.refused_connections, 1);
}

#[test]
fn disconnect_unwants_a_peer_and_peer_down_reports_why() {
    let mut net = network(2, |_| Config {
        peers: PeersConfig {
            target_peers: 0,
            ..lan().peers
        },
        ..lan()
    });
    let b = id(&net, 1);
    net.command(
        0,
        PeersCommand::Connect {
            addr: Network::addr_of(1),
            peer: Some(b),
        },
    )
    .expect("dial");
    net.settle();
    net.command(0, PeersCommand::Disconnect { peer: b })
        .expect("connected");
    net.run_for(Duration::from_secs(30));
    assert!(!net.node(0).is_connected(b), "not redialled");
    let downs: BTreeMap<NodeIndex, CloseReason> = downs_of(&net, b)
        .into_iter()
        .map(|(i, _, r)| (i, r))
        .collect();
    assert_eq!(downs.get(&0), Some(&CloseReason::Local));
}

#[test]
fn request_and_queue_caps_refuse_without_effect() {
    let mut net = network(2, |_| Config {
        messaging: MessagingConfig {
            max_pending_requests: 2,
            max_queued_messages: 3,
            ..lan().messaging
        },
        ..lan()
    });
    net.connect(0, 1).expect("dial");
    net.settle();
    let b = id(&net, 1);
    let request = |to| MessagingCommand::Request {
        to,
        payload: Bytes::new(),
        timeout: Duration::from_secs(5),
    };
    net.command(0, request(b)).expect("first");
    net.command(0, request(b)).expect("second");
    assert_eq!(
        net.command(0, request(b)),
        Err(CommandError::Messaging(MessagingError::TooManyRequests(2)))
    );
    let stranger = NodeId::from_u128(7);
    let send = |to| MessagingCommand::Send {
        to,
        payload: Bytes::new(),
    };
    for _ in 0..3 {
        assert_eq!(net.command(0, send(stranger)), Ok(Accepted::Queued));
    }
    assert_eq!(
        net.command(0, send(stranger)),
        Err(CommandError::Messaging(MessagingError::QueueFull(3)))
    );
    assert_eq!(pending(net.node(0)), (2, 3));
    assert_eq!(
        net.command(
            0,
            MessagingCommand::Request {
                to: b,
                payload: Bytes::new(),
                timeout: Duration::ZERO
            }
        ),
        Err(CommandError::Messaging(MessagingError::ZeroTimeout))
    );
}

#[test]
fn the_peer_cache_stays_at_its_cap_however_much_is_gossiped() {
    let cap = 50;
    let mut net = network(1, |_| Config {
        peers: PeersConfig {
            max_known_peers: cap,
            ..lan().peers
        },
        ..lan()
    });
    for batch in 0..40u128 {
        let peers = (0..32u128)
            .map(|k| ringmesh::wire::PeerEntry {
                id: NodeId::from_u128(1 + batch * 32 + k),
                addrs: [std::net::SocketAddr::from((
                    [10, batch as u8, 0, k as u8],
                    7000,
                ))]
                .into_iter()
                .collect(),
            })
            .collect();
        net.command(0, PeersCommand::AddPeers { peers })
            .expect("imported");
    }
    // Gossip fills the new table (three quarters of the cap; the tried
    // quarter only takes peers this node dialled), and what found no slot
    // is counted.
    let known = net.node(0).known_peers().len();
    assert!(known <= cap && known >= cap / 2, "{known}");
    assert_eq!(net.node(0).tried_peer_count(), 0);
    assert!(net.node(0).stats().peers.known_peers_refused > 0);
}

/// Requests pending and messages queued at `node`.
fn pending(node: &ringmesh::Node) -> (usize, usize) {
    let pending = node.messaging_pending();
    (pending.requests, pending.queued)
}
