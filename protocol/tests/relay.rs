//! Relays (`spec/relay.md`) through the in-memory harness: two nodes that
//! cannot dial each other (each announces a private address the harness
//! cannot reach, as behind a NAT) reach each other through a relay both
//! are connected to, over a normal Noise session the relay only forwards;
//! the relay holds its limits; a relay that alters a byte breaks the
//! session.

use bytes::Bytes;
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::RelayStatus;
use ringmesh::{
    CloseReason, Config, Duration, Event, MeshCommand, MeshEvent, MessagingCommand, MessagingEvent,
    NodeId, PeersEvent, ReachConfig, RelayCommand, RelayConfig, RelayEvent, Security,
};

const LATENCY: Duration = Duration::from_millis(5);
const A: NodeIndex = 0;
const RELAY: NodeIndex = 1;
const B: NodeIndex = 2;
const C: NodeIndex = 3;

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 7).to_le_bytes());
    s
}

/// Node `RELAY` serves with `limits`; the others run the component as
/// ends and announce a private address nobody can dial. Every end is
/// connected to the relay, and holds a reservation there.
fn network(n: usize, limits: RelayConfig) -> Network {
    network_with(n, limits, None)
}

/// [`network`], every node running the reach component with `reach`
/// (so each learns from the relay where it is seen: its hole-punch
/// candidates).
fn network_with(n: usize, limits: RelayConfig, reach: Option<ReachConfig>) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        let mut config = Config {
            reach: reach.clone(),
            security: Security::Noise,
            relay: Some(if i == RELAY {
                RelayConfig {
                    serve: true,
                    ..limits.clone()
                }
            } else {
                RelayConfig::default()
            }),
            ..Config::lan()
        };
        if i != RELAY {
            let private = format!("10.0.0.{}:7000", i + 1);
            config.listen_addrs.push(private.parse().expect("addr"));
        }
        net.add_node(config, secret(i), 500 + i as u64)
            .expect("config");
    }
    for i in (0..n).filter(|&i| i != RELAY) {
        net.connect(i, RELAY).expect("dial the relay");
    }
    net.settle();
    for i in (0..n).filter(|&i| i != RELAY) {
        let relay = id(&net, RELAY);
        net.command(i, RelayCommand::Reserve { relay })
            .expect("reserve");
    }
    net.settle();
    net
}

/// `len` bytes LZ4 cannot shrink (so the circuit carries at least that):
/// BLAKE3's output stream.
fn noise(len: usize) -> Bytes {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().finalize_xof().fill(&mut out);
    Bytes::from(out)
}

fn id(net: &Network, i: NodeIndex) -> NodeId {
    net.node(i).node_id()
}

fn connect(net: &mut Network, from: NodeIndex, to: NodeIndex) {
    let (relay, target) = (id(net, RELAY), id(net, to));
    net.command(from, RelayCommand::Connect { relay, target })
        .expect("connect through the relay");
    net.settle();
}

fn relay_events(net: &Network, i: NodeIndex) -> Vec<RelayEvent> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Relay(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn two_nodes_that_cannot_dial_each_other_talk_over_a_relay() {
    let mut net = network(3, RelayConfig::default());
    let (a, b, r) = (id(&net, A), id(&net, B), id(&net, RELAY));
    assert_eq!(net.node(A).relays(), vec![r]);
    assert_eq!(net.node(RELAY).relay_load(), (0, 2));
    assert!(!net.node(A).is_connected(b), "no direct path");

    connect(&mut net, A, B);
    assert!(net.node(A).is_connected(b), "A reached B");
    assert!(net.node(B).is_connected(a), "B sees A");
    // The session is end to end (the handshake proved B's id to A), and
    // its remote is the relay's address: no connection between A and B.
    let relay_addr = Network::addr_of(RELAY);
    let established = net.events_of(A).any(|e| {
        matches!(e, Event::Peers(PeersEvent::Established { peer, remote, .. })
            if *peer == b && *remote == relay_addr)
    });
    assert!(established, "A's session with B runs through the relay");
    assert_eq!(net.node(RELAY).relay_load(), (1, 2));

    // A one-way message and a request cross, on the relayed link.
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: Bytes::from_static(b"over the relay"),
        },
    )
    .expect("send");
    net.command(
        A,
        MessagingCommand::Request {
            to: b,
            payload: Bytes::from_static(b"ping?"),
            timeout: Duration::from_secs(5),
        },
    )
    .expect("request");
    net.settle();
    let mut request = None;
    let mut direct = false;
    for e in net.events_of(B) {
        match e {
            Event::Messaging(MessagingEvent::Direct { from, payload }) => {
                direct |= *from == a && &payload[..] == b"over the relay";
            }
            Event::Messaging(MessagingEvent::Request { from, id, .. }) if *from == a => {
                request = Some(*id);
            }
            _ => {}
        }
    }
    assert!(direct, "the message crossed");
    let id_ = request.expect("the request crossed");
    net.command(
        B,
        MessagingCommand::Respond {
            to: a,
            id: id_,
            payload: Bytes::from_static(b"pong"),
        },
    )
    .expect("respond");
    net.settle();
    assert!(net.events_of(A).any(|e| matches!(e,
        Event::Messaging(MessagingEvent::Response { from, payload, .. })
            if *from == b && &payload[..] == b"pong")));

    // A broadcast crosses, and travels the relayed link too.
    let before = net.node(B).stats().relay.relayed_bytes_received;
    let payload = noise(3000);
    net.command(A, MeshCommand::Broadcast { payload })
        .expect("broadcast");
    net.settle();
    assert!(net.events_of(B).any(|e| matches!(e,
        Event::Mesh(MeshEvent::Broadcast { origin, .. }) if *origin == a)));
    let stats = net.node(B).stats().relay;
    assert!(
        stats.relayed_bytes_received >= before + 3000,
        "the broadcast came over the circuit too: {before} -> {}",
        stats.relayed_bytes_received
    );
    let relayed = net.node(RELAY).stats().relay;
    assert_eq!(relayed.circuits_opened, 1);
    assert!(relayed.bytes_relayed >= 3000, "{relayed:?}");
    assert_eq!(
        relayed.bytes_relayed,
        net.node(A).stats().relay.relayed_bytes_sent + net.node(B).stats().relay.relayed_bytes_sent,
        "the relay forwards every byte the ends send, and nothing else"
    );
}

#[test]
fn a_failed_direct_dial_falls_back_to_a_relay() {
    let mut net = network(3, RelayConfig::default());
    let b = id(&net, B);
    // A knows B only at its private address (peer exchange through the
    // relay told it): the message waits while the dial fails, then goes
    // through the relay.
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: Bytes::from_static(b"find me"),
        },
    )
    .expect("send");
    net.run_for(Duration::from_secs(10));
    assert!(net.node(A).is_connected(b));
    assert!(net.events_of(B).any(|e| matches!(e,
        Event::Messaging(MessagingEvent::Direct { payload, .. }) if &payload[..] == b"find me")));
    assert_eq!(net.node(A).stats().relay.circuits_dialled, 1);
}

#[test]
fn a_relay_refuses_reservations_and_circuits_beyond_its_limits() {
    let limits = RelayConfig {
        max_reservations: 2,
        max_circuits_per_peer: 1,
        ..RelayConfig::default()
    };
    let mut net = network(4, limits);
    let (r, b) = (id(&net, RELAY), id(&net, B));
    // The third reservation (C's) is over `max_reservations`.
    assert!(relay_events(&net, C).contains(&RelayEvent::ReserveRefused {
        relay: r,
        status: RelayStatus::ReservationLimit,
    }));
    assert_eq!(net.node(RELAY).relay_load(), (0, 2));

    connect(&mut net, A, B);
    assert!(net.node(A).is_connected(b));
    // B is an end of one circuit: C's is over `max_circuits_per_peer`.
    connect(&mut net, C, B);
    assert!(!net.node(C).is_connected(b));
    assert!(relay_events(&net, C).contains(&RelayEvent::ConnectRefused {
        relay: r,
        target: b,
        status: RelayStatus::PeerCircuitLimit,
    }));
    // A node without a reservation cannot be reached at all.
    let c = id(&net, C);
    connect(&mut net, A, C);
    assert!(!net.node(A).is_connected(c));
    assert!(relay_events(&net, A).contains(&RelayEvent::ConnectRefused {
        relay: r,
        target: c,
        status: RelayStatus::NoReservation,
    }));
    let stats = net.node(RELAY).stats().relay;
    assert_eq!(stats.reservations_refused, 1);
    // (and the fallback's attempts to reach the others' private
    // addresses through the relay, refused too)
    assert!(stats.circuits_refused >= 2, "{stats:?}");
    assert_eq!(stats.circuits_opened, 1);
}

#[test]
fn a_relay_closes_a_circuit_beyond_its_byte_limit() {
    let limits = RelayConfig {
        circuit_bytes: 16 * 1024,
        ..RelayConfig::default()
    };
    let mut net = network(3, limits);
    let b = id(&net, B);
    connect(&mut net, A, B);
    assert!(net.node(A).is_connected(b));
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: noise(32 * 1024),
        },
    )
    .expect("send");
    net.settle();
    assert!(!net.node(A).is_connected(b), "the circuit was closed");
    assert!(net.events_of(A).any(|e| matches!(e,
        Event::Peers(PeersEvent::Down { peer, reason: CloseReason::Relay(RelayStatus::ByteLimit) })
            if *peer == b)));
    assert!(
        !net.events_of(B)
            .any(|e| matches!(e, Event::Messaging(MessagingEvent::Direct { .. }))),
        "nothing beyond the limit arrived"
    );
    let stats = net.node(RELAY).stats().relay;
    assert_eq!(stats.circuits_limited, 1);
    assert!(stats.bytes_relayed <= 16 * 1024, "{stats:?}");
    assert_eq!(net.node(RELAY).relay_load(), (0, 2));
}

#[test]
fn a_relay_closes_a_circuit_that_outlives_its_duration() {
    let limits = RelayConfig {
        circuit_duration: Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let mut net = network(3, limits);
    let b = id(&net, B);
    connect(&mut net, A, B);
    assert!(net.node(A).is_connected(b));
    net.run_for(Duration::from_secs(61));
    assert!(net.events_of(A).any(|e| matches!(e,
        Event::Peers(PeersEvent::Down { peer, reason: CloseReason::Relay(RelayStatus::DurationLimit) })
            if *peer == b)));
    assert_eq!(net.node(RELAY).stats().relay.circuits_limited, 1);
}

#[test]
fn a_relay_that_flips_one_byte_breaks_the_relayed_session() {
    let mut net = network(3, RelayConfig::default());
    let (a, b) = (id(&net, A), id(&net, B));
    connect(&mut net, A, B);
    assert!(net.node(B).is_connected(a));
    net.node_mut(RELAY).relay_flip_next();
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: Bytes::from_static(b"do not touch"),
        },
    )
    .expect("send");
    net.settle();
    assert!(
        !net.events_of(B)
            .any(|e| matches!(e, Event::Messaging(MessagingEvent::Direct { .. }))),
        "the altered message was not delivered"
    );
    assert!(!net.node(B).is_connected(a), "B closed the session");
    assert!(
        net.events_of(B).any(|e| matches!(e,
        Event::Peers(PeersEvent::Closed { peer: Some(p), reason: CloseReason::Protocol(_), .. })
            if *p == a)),
        "as a protocol error (authentication failed)"
    );
    // The relay itself stays connected to both.
    let r = id(&net, RELAY);
    assert!(net.node(A).is_connected(r) && net.node(B).is_connected(r));
}

#[test]
fn a_relay_closes_a_circuit_that_sends_faster_than_its_rate() {
    let limits = RelayConfig {
        circuit_rate: 1024,
        circuit_burst: 8 * 1024,
        ..RelayConfig::default()
    };
    let mut net = network(3, limits);
    let b = id(&net, B);
    connect(&mut net, A, B);
    assert!(net.node(A).is_connected(b), "the handshake fits the burst");
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: noise(16 * 1024),
        },
    )
    .expect("send");
    net.settle();
    assert!(net.events_of(A).any(|e| matches!(e,
        Event::Peers(PeersEvent::Down { peer, reason: CloseReason::Relay(RelayStatus::RateLimit) })
            if *peer == b)));
    let stats = net.node(RELAY).stats().relay;
    assert_eq!(stats.circuits_limited, 1);
    assert!(stats.bytes_relayed <= 8 * 1024, "{stats:?}");
}

#[test]
fn a_direct_connection_replaces_a_relayed_one() {
    let mut net = network(3, RelayConfig::default());
    let (a, b) = (id(&net, A), id(&net, B));
    connect(&mut net, A, B);
    assert!(net.node(A).is_connected(b));
    assert_eq!(net.node(RELAY).relay_load().0, 1);
    // A becomes reachable (say a port mapping): B dials it directly.
    net.command(
        B,
        ringmesh::PeersCommand::Connect {
            addr: Network::addr_of(A),
            peer: Some(a),
        },
    )
    .expect("dial");
    net.settle();
    // Both kept the direct connection; the circuit is closed.
    assert!(net.node(A).is_connected(b) && net.node(B).is_connected(a));
    assert_eq!(
        net.node(RELAY).relay_load().0,
        0,
        "the circuit was released"
    );
    assert!(
        !net.events_of(A).any(|e| matches!(e,
        Event::Peers(PeersEvent::Down { peer, .. }) if *peer == b)),
        "never down meanwhile"
    );
    let before = net.node(RELAY).stats().relay.bytes_relayed;
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: Bytes::from_static(b"direct now"),
        },
    )
    .expect("send");
    net.settle();
    assert!(
        net.events_of(B).any(|e| matches!(e,
        Event::Messaging(MessagingEvent::Direct { payload, .. }) if &payload[..] == b"direct now"))
    );
    assert_eq!(
        net.node(RELAY).stats().relay.bytes_relayed,
        before,
        "not through the relay"
    );
}

/// Both ends run reach (the relay tells each where it sees it); the
/// harness carries dials from the listen port as simultaneous opens.
fn punching_network(punchable: bool) -> Network {
    let mut net = network_with(3, RelayConfig::default(), Some(ReachConfig::default()));
    net.set_punchable(punchable);
    net
}

#[test]
fn a_hole_punch_upgrades_a_relayed_session_to_a_direct_one() {
    let mut net = punching_network(true);
    let (a, b) = (id(&net, A), id(&net, B));
    connect(&mut net, A, B);
    net.run_for(Duration::from_secs(2));
    assert!(net.node(A).is_connected(b) && net.node(B).is_connected(a));
    // Both ends report the punch, each with the other's address.
    for (me, peer, their) in [(A, b, B), (B, a, A)] {
        let punched = relay_events(&net, me).into_iter().any(|e| {
            matches!(e, RelayEvent::Punched { peer: p, remote, attempt: 1 }
                if p == peer && remote == Network::addr_of(their))
        });
        assert!(punched, "{me}: {:?}", relay_events(&net, me));
        let stats = net.node(me).stats().relay;
        assert_eq!(
            (
                stats.punch_attempts,
                stats.punch_successes,
                stats.punch_failures
            ),
            (1, 1, 0),
            "{me}: {stats:?}"
        );
    }
    // The relayed session was drained and its circuit closed; a message
    // now travels directly.
    assert_eq!(
        net.node(RELAY).relay_load().0,
        0,
        "the circuit was released"
    );
    let before = net.node(RELAY).stats().relay.bytes_relayed;
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: Bytes::from_static(b"punched"),
        },
    )
    .expect("send");
    net.settle();
    assert!(net.events_of(B).any(|e| matches!(e,
        Event::Messaging(MessagingEvent::Direct { payload, .. }) if &payload[..] == b"punched")));
    assert_eq!(net.node(RELAY).stats().relay.bytes_relayed, before);
    assert!(
        !net.events_of(A).any(|e| matches!(e,
            Event::Peers(PeersEvent::Down { peer, .. }) if *peer == b)),
        "never down meanwhile"
    );
}

#[test]
fn a_hole_punch_that_cannot_succeed_keeps_the_relay_after_three_attempts() {
    let mut net = punching_network(false);
    let (a, b) = (id(&net, A), id(&net, B));
    connect(&mut net, A, B);
    net.run_for(Duration::from_secs(60));
    assert!(net.node(A).is_connected(b) && net.node(B).is_connected(a));
    assert_eq!(net.node(RELAY).relay_load().0, 1, "still relayed");
    // The end with the smaller id drove three attempts and gave up.
    let (driver, other) = if a < b { (A, b) } else { (B, a) };
    let stats = net.node(driver).stats().relay;
    assert_eq!(
        (
            stats.punch_attempts,
            stats.punch_successes,
            stats.punch_failures
        ),
        (3, 0, 3),
        "{stats:?}"
    );
    assert!(
        relay_events(&net, driver)
            .iter()
            .any(|e| matches!(e, RelayEvent::PunchFailed { peer, attempts: 3 } if *peer == other))
    );
    assert_eq!(net.node(A).stats().relay.punch_successes, 0);
    // The relayed session still carries messages.
    net.command(
        A,
        MessagingCommand::Send {
            to: b,
            payload: Bytes::from_static(b"still relayed"),
        },
    )
    .expect("send");
    net.settle();
    assert!(net.events_of(B).any(|e| matches!(e,
        Event::Messaging(MessagingEvent::Direct { payload, .. }) if &payload[..] == b"still relayed")));
}

/// S (0) and P (3) are public, R (1) serves, T (2) announces a private
/// address nobody can dial. T is connected to R (its reservation) and to
/// P; S is connected to P only.
fn stranger_network() -> Network {
    const T: NodeIndex = 2;
    const P: NodeIndex = 3;
    let mut net = Network::new(LATENCY);
    for i in 0..4 {
        let mut config = Config {
            security: Security::Noise,
            relay: Some(RelayConfig {
                serve: i == RELAY,
                ..RelayConfig::default()
            }),
            ..Config::lan()
        };
        if i == T {
            config
                .listen_addrs
                .push("10.0.0.3:7000".parse().expect("addr"));
        }
        // Nobody dials more than it is told to (T could dial S, S could
        // dial R, as soon as peer exchange names them).
        config.peers.target_peers = if i == T { 2 } else { 1 };
        net.add_node(config, secret(i), 900 + i as u64)
            .expect("config");
    }
    net.connect(T, RELAY).expect("dial the relay");
    net.connect(T, P).expect("dial P");
    net.connect(0, P).expect("dial P");
    net.settle();
    let relay = id(&net, RELAY);
    net.command(T, RelayCommand::Reserve { relay })
        .expect("reserve");
    net.settle();
    net
}

#[test]
fn a_stranger_reaches_a_node_through_the_relay_its_peers_announced() {
    const S: NodeIndex = 0;
    const T: NodeIndex = 2;
    const P: NodeIndex = 3;
    let mut net = stranger_network();
    let (t, r) = (id(&net, T), id(&net, RELAY));
    // T told its peers where it holds its reservation.
    assert!(net.node(P).stats().relay.relay_addrs_learned >= 1);
    assert!(!net.node(S).is_connected(r), "S knows nothing of R");

    // S knows T by id only: it asks its neighbour P (FindPeer), which
    // answers T's private address and its relayed address. The direct
    // dial fails; S dials R, then opens a circuit through it to T.
    net.command(
        S,
        MessagingCommand::Send {
            to: t,
            payload: Bytes::from_static(b"through your relay"),
        },
    )
    .expect("send");
    net.run_for(Duration::from_secs(10));
    assert!(net.node(S).is_connected(t), "S reached T");
    assert!(net.node(S).is_connected(r), "S dialled T's relay");
    assert!(net.events_of(T).any(|e| matches!(e,
        Event::Messaging(MessagingEvent::Direct { payload, .. })
            if &payload[..] == b"through your relay")));
    let stats = net.node(S).stats().relay;
    assert_eq!(stats.circuits_dialled, 1, "{stats:?}");
    assert_eq!(stats.dials_via_announced_relay, 1, "{stats:?}");
    assert_eq!(net.node(RELAY).stats().relay.circuits_opened, 1);
}

#[test]
fn relayed_addresses_about_the_receiver_or_a_relay_itself_are_ignored() {
    use ringmesh::wire::{Message, RelayAddr, RelayAddrs};
    const P: NodeIndex = 3;
    let mut net = stranger_network();
    let (s, p, r) = (id(&net, 0), id(&net, P), id(&net, RELAY));
    let before = net.node(P).stats().relay;
    let bogus = RelayAddrs {
        addrs: vec![
            // About P itself.
            RelayAddr {
                node: p,
                relay: r,
                relay_addr: Network::addr_of(RELAY),
            },
            // A node that is its own relay.
            RelayAddr {
                node: s,
                relay: s,
                relay_addr: Network::addr_of(0),
            },
        ],
    };
    let now = net.now();
    assert!(
        net.node_mut(0)
            .adversary_send(now, p, &Message::RelayAddrs(bogus))
    );
    // A command that does nothing, so the harness takes the outputs now.
    net.command(0, ringmesh::PeersCommand::AddPeers { peers: vec![] })
        .expect("accepted");
    net.settle();
    let after = net.node(P).stats().relay;
    assert_eq!(after.relay_addrs_ignored, before.relay_addrs_ignored + 2);
    assert_eq!(after.relay_addrs_learned, before.relay_addrs_learned);
    assert!(net.node(P).is_connected(s), "ignored, not a violation");
}

#[test]
fn two_nodes_that_open_relayed_sessions_to_each_other_at_once_still_punch() {
    let mut net = punching_network(true);
    let (a, b, r) = (id(&net, A), id(&net, B), id(&net, RELAY));
    // Both dial through the relay in the same instant: two circuits, two
    // outbound sessions; the one-connection rule keeps one, which each
    // end may have seen as its own outbound one.
    net.command(
        A,
        RelayCommand::Connect {
            relay: r,
            target: b,
        },
    )
    .expect("A connects");
    net.command(
        B,
        RelayCommand::Connect {
            relay: r,
            target: a,
        },
    )
    .expect("B connects");
    net.run_for(Duration::from_secs(30));
    assert!(net.node(A).is_connected(b) && net.node(B).is_connected(a));
    for me in [A, B] {
        let stats = net.node(me).stats().relay;
        assert_eq!(stats.punch_successes, 1, "{me}: {stats:?}");
    }
    assert_eq!(net.node(RELAY).relay_load().0, 0, "no circuit left");
}
