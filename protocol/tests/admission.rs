//! Admission control wired into the connection layer (spec/peers.md,
//! Admission): one node driven directly with attacker connections, and
//! small networks for the inbound eviction. The same rules over real
//! sockets: node/tests/admission.rs.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use ringmesh::testing::Network;
use ringmesh::{
    AdmissionConfig, AdmissionReason, CloseReason, Config, ConnId, Direction, Duration, Event,
    Identity, Input, Instant, Node, Output, PeersCommand, PeersConfig, PeersEvent, Security,
};

fn node() -> Node {
    let config = Config {
        security: Security::Plaintext,
        ..Config::lan()
    };
    Node::new(
        config,
        Identity::from_secret_bytes([1; 32]),
        1,
        Instant::ZERO,
    )
    .expect("valid")
}

fn from(a: u8, b: u8, c: u8, d: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), 40_000)
}

/// Feeds an accepted connection; returns the reason if it was closed at
/// once.
fn accept(node: &mut Node, n: u64, remote: SocketAddr, now: Instant) -> Vec<CloseReason> {
    node.handle_input(
        now,
        Input::Connected {
            conn: ConnId::inbound(n),
            remote,
            direction: Direction::Inbound,
        },
    );
    drain(node)
}

fn drain(node: &mut Node) -> Vec<CloseReason> {
    std::iter::from_fn(|| node.poll_output())
        .filter_map(|o| match o {
            Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_full_inbound_half_open_table_evicts_its_oldest_and_never_blocks_dials() {
    let mut node = node();
    let limit = AdmissionConfig::default().max_inbound_half_open;
    let t = Instant::ZERO;
    for n in 0..limit as u64 {
        let closed = accept(&mut node, n, from(127, 1 + (n % 200) as u8, n as u8, 1), t);
        assert!(closed.is_empty(), "{closed:?}");
    }
    // Ten more: each evicts the oldest, in order.
    for n in limit as u64..limit as u64 + 10 {
        let closed = accept(&mut node, n, from(127, 1 + (n % 200) as u8, n as u8, 1), t);
        assert_eq!(
            closed,
            vec![CloseReason::Admission(AdmissionReason::HalfOpenEvicted)]
        );
    }
    assert_eq!(node.connection_count(), limit);
    assert_eq!(node.stats().peers.evicted_half_open, 10);
    // The node's own dials are not held up by strangers.
    for port in 0..8u16 {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9000 + port);
        node.command(t, PeersCommand::Connect { addr, peer: None })
            .expect("a dial despite a full inbound half-open table");
    }
    drain(&mut node);
    // Strangers get a short deadline of their own.
    let deadline = t + AdmissionConfig::default().inbound_handshake_timeout;
    node.handle_input(deadline, Input::Timeout);
    drain(&mut node);
    assert_eq!(node.stats().peers.inbound_handshake_timeouts, limit as u64);
    assert_eq!(node.connection_count(), 8, "only the dials are left");
}

#[test]
fn one_address_and_one_group_are_held_to_their_caps() {
    let mut node = node();
    let limits = AdmissionConfig::default();
    let t = Instant::ZERO;
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for _ in 0..limits.max_inbound_per_ip {
        assert!(accept(&mut node, next(), from(127, 9, 9, 1), t).is_empty());
    }
    assert_eq!(
        accept(&mut node, next(), from(127, 9, 9, 1), t),
        vec![CloseReason::Admission(AdmissionReason::AddressCap)]
    );
    for d in 2..=(limits.max_inbound_per_group - limits.max_inbound_per_ip + 1) as u8 {
        assert!(accept(&mut node, next(), from(127, 9, 9, d), t).is_empty());
    }
    assert_eq!(
        accept(&mut node, next(), from(127, 9, 9, 200), t),
        vec![CloseReason::Admission(AdmissionReason::GroupCap)]
    );
    // Another group is not affected.
    assert!(accept(&mut node, next(), from(127, 9, 10, 1), t).is_empty());
    let stats = node.stats().peers;
    assert_eq!((stats.refused_address_cap, stats.refused_group_cap), (1, 1));
    assert_eq!(stats.refused_connections, 2);
}

#[test]
fn a_group_over_its_rate_is_refused_on_arrival() {
    let mut node = node();
    let limits = AdmissionConfig::default();
    let t = Instant::ZERO;
    let mut refused = 0;
    for n in 0..100u64 {
        // Each closes itself at once (a transport close), so only the
        // group's rate can refuse it.
        let closed = accept(&mut node, n, from(127, 5, 5, 1 + (n % 8) as u8), t);
        refused += closed.len();
        node.handle_input(
            t,
            Input::Closed {
                conn: ConnId::inbound(n),
                reason: ringmesh::TransportError::Eof,
            },
        );
        drain(&mut node);
    }
    assert_eq!(refused, 100 - limits.group_handshake_burst as usize);
    assert_eq!(node.stats().peers.refused_group_rate, refused as u64);
}

#[test]
fn first_messages_over_the_node_rate_are_refused_before_any_work() {
    let mut node = node();
    let limits = AdmissionConfig::default();
    let t = Instant::ZERO;
    let first = Bytes::from(vec![b'X'; 42]);
    let mut by_rate = 0;
    for n in 0..300u64 {
        // 300 groups, each new (so rested): the node-wide burst, then the
        // reserve's, then no more.
        let remote = from(127, 1 + (n / 250) as u8, (n % 250) as u8, 1);
        assert!(accept(&mut node, n, remote, t).is_empty());
        node.handle_input(
            t,
            Input::Received {
                conn: ConnId::inbound(n),
                bytes: first.clone(),
            },
        );
        let closed = drain(&mut node);
        by_rate += closed
            .iter()
            .filter(|r| **r == CloseReason::Admission(AdmissionReason::NodeRate))
            .count();
    }
    let admitted = (limits.handshake_burst + limits.handshake_burst / 4) as usize;
    assert_eq!(by_rate, 300 - admitted);
    assert_eq!(node.stats().peers.refused_node_rate, by_rate as u64);
    // A second later the node-wide rate has refilled.
    let later = t + Duration::from_secs(1);
    assert!(accept(&mut node, 1000, from(127, 200, 0, 1), later).is_empty());
    node.handle_input(
        later,
        Input::Received {
            conn: ConnId::inbound(1000),
            bytes: first,
        },
    );
    let closed = drain(&mut node);
    assert!(
        !closed.contains(&CloseReason::Admission(AdmissionReason::NodeRate)),
        "{closed:?}"
    );
}

/// Admission without the per-group limits (the test network's nodes share
/// one /24), `max_inbound` slots.
fn with_slots(max_inbound: usize) -> Config {
    Config {
        security: Security::Plaintext,
        peers: PeersConfig {
            max_inbound,
            admission: AdmissionConfig {
                max_inbound_per_group: 1000,
                group_handshake_rate: 1000,
                group_handshake_burst: 1000,
                ..AdmissionConfig::default()
            },
            ..Config::lan().peers
        },
        ..Config::lan()
    }
}

fn plain() -> Config {
    Config {
        security: Security::Plaintext,
        ..Config::lan()
    }
}

#[test]
fn a_newcomer_displaces_the_youngest_unprotected_inbound_peer_never_an_outbound_one() {
    let mut net = Network::new(Duration::from_millis(5));
    net.add_node(with_slots(20), [0; 32], 0).expect("valid");
    for i in 1..=22u8 {
        net.add_node(plain(), [i; 32], u64::from(i)).expect("valid");
    }
    // Node 0 dials node 1 (outbound); nodes 2..=21 fill its 20 inbound
    // slots, one by one, so their ages differ.
    net.connect(0, 1).expect("dial");
    net.settle();
    for i in 2..=21 {
        net.connect(i, 0).expect("dial");
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(3)); // pings measure RTTs
    net.take_events();
    net.connect(22, 0).expect("dial");
    net.run_for(Duration::from_millis(100));
    let stats = net.node(0).stats().peers;
    assert_eq!(stats.displaced_inbound, 1);
    let newcomer = net.node(22).node_id();
    assert!(net.node(0).is_connected(newcomer));
    assert!(
        net.node(0).is_connected(net.node(1).node_id()),
        "outbound kept"
    );
    let displaced: Vec<_> = net
        .events_of(0)
        .filter_map(|e| match e {
            Event::Peers(PeersEvent::Closed {
                peer,
                reason: CloseReason::Admission(AdmissionReason::Displaced),
                ..
            }) => *peer,
            _ => None,
        })
        .collect();
    // All share one group and RTT: the youngest connected goes.
    assert_eq!(displaced, vec![net.node(21).node_id()]);
}

#[test]
fn a_newcomer_is_refused_when_every_inbound_peer_is_protected() {
    let mut net = Network::new(Duration::from_millis(5));
    net.add_node(with_slots(8), [0; 32], 0).expect("valid");
    for i in 1..=9u8 {
        net.add_node(plain(), [i; 32], u64::from(i)).expect("valid");
    }
    for i in 1..=8 {
        net.connect(i, 0).expect("dial");
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(3));
    net.connect(9, 0).expect("dial");
    net.run_for(Duration::from_millis(100));
    let stats = net.node(0).stats().peers;
    assert_eq!(stats.refused_inbound_full, 1);
    assert_eq!(stats.displaced_inbound, 0);
    assert!(!net.node(0).is_connected(net.node(9).node_id()));
    assert_eq!(net.node(0).peer_count(), 8);
}
