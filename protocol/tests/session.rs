//! Sessions end to end through the in-memory network: handshakes in both
//! modes, authenticated ids, encrypted traffic, refusals with reasons.

use bytes::Bytes;
use ringmesh::testing::{Network, Recorded};
use ringmesh::wire::{Capabilities, FLAG_COMPRESSED, LENGTH_PREFIX_LEN};
use ringmesh::{
    CloseReason, Command, CommandError, Config, Direction, Duration, Event, Identity, Instant,
    MessagingCommand, MessagingError, MessagingEvent, NodeId, PeersCommand, PeersConfig,
    PeersError, PeersEvent, ProtocolError, Security, SessionConfig,
};

const LATENCY: Duration = Duration::from_millis(5);

fn secret(i: u8) -> [u8; 32] {
    [i; 32]
}

fn pair(a: Config, b: Config) -> Network {
    let mut net = Network::new(LATENCY);
    net.add_node(a, secret(1), 11).expect("valid config");
    net.add_node(b, secret(2), 22).expect("valid config");
    net
}

fn established(net: &Network, i: usize) -> Vec<(NodeId, Direction, Security, Capabilities)> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Peers(PeersEvent::Established {
                peer,
                direction,
                security,
                capabilities,
                ..
            }) => Some((*peer, *direction, *security, *capabilities)),
            _ => None,
        })
        .collect()
}

fn closed(net: &Network, i: usize) -> Vec<CloseReason> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Peers(PeersEvent::Closed { reason, .. }) => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn direct(net: &Network, i: usize) -> Vec<(NodeId, Bytes)> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Messaging(MessagingEvent::Direct { from, payload }) => {
                Some((*from, payload.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn noise_handshake_authenticates_both_ids_and_carries_encrypted_frames() {
    let mut net = pair(Config::default(), Config::default());
    net.record_sent(true);
    let (id_a, id_b) = (net.node(0).node_id(), net.node(1).node_id());
    assert_eq!(id_a, Identity::from_secret_bytes(secret(1)).node_id());

    net.connect(0, 1).expect("dial");
    net.settle();
    assert_eq!(
        established(&net, 0),
        vec![(
            id_b,
            Direction::Outbound,
            Security::Noise,
            Capabilities::LZ4
        )]
    );
    assert_eq!(
        established(&net, 1),
        vec![(id_a, Direction::Inbound, Security::Noise, Capabilities::LZ4)]
    );
    // XX takes 1.5 round trips; the initiator is done after reading message 2.
    assert!(net.now() <= Instant::from_micros(4 * LATENCY.as_micros()));

    let secret_text = b"attack at dawn, attack at dawn";
    net.command(
        0,
        MessagingCommand::Send {
            to: id_b,
            payload: Bytes::from_static(secret_text),
        },
    )
    .expect("connected");
    net.settle();
    assert_eq!(
        direct(&net, 1),
        vec![(id_a, Bytes::from_static(secret_text))]
    );
    // Nothing on the wire carries the plaintext.
    for sent in net.sent() {
        assert!(
            !sent
                .bytes
                .windows(secret_text.len())
                .any(|w| w == secret_text),
            "plaintext leaked on the wire"
        );
    }
}

#[test]
fn plaintext_mode_establishes_with_claimed_ids_when_both_choose_it() {
    let mut net = pair(Config::plaintext(), Config::plaintext());
    net.connect(1, 0).expect("dial");
    net.settle();
    let (id_a, id_b) = (net.node(0).node_id(), net.node(1).node_id());
    assert_eq!(
        established(&net, 1),
        vec![(
            id_a,
            Direction::Outbound,
            Security::Plaintext,
            Capabilities::LZ4
        )]
    );
    assert_eq!(established(&net, 0)[0].0, id_b);
    net.command(
        1,
        MessagingCommand::Send {
            to: id_a,
            payload: Bytes::from_static(b"clear"),
        },
    )
    .expect("connected");
    net.settle();
    assert_eq!(direct(&net, 0), vec![(id_b, Bytes::from_static(b"clear"))]);
}

#[test]
fn noise_never_falls_back_to_plaintext() {
    for (a, b) in [
        (Config::default(), Config::plaintext()),
        (Config::plaintext(), Config::default()),
    ] {
        let (ours_a, ours_b) = (a.security.wire_code(), b.security.wire_code());
        let mut net = pair(a, b);
        net.connect(0, 1).expect("dial");
        net.settle();
        assert!(established(&net, 0).is_empty() && established(&net, 1).is_empty());
        assert_eq!(
            closed(&net, 0),
            vec![CloseReason::Protocol(ProtocolError::SecurityMismatch {
                ours: ours_a,
                theirs: ours_b
            })]
        );
        assert_eq!(
            closed(&net, 1),
            vec![CloseReason::Protocol(ProtocolError::SecurityMismatch {
                ours: ours_b,
                theirs: ours_a
            })]
        );
    }
}

#[test]
fn dial_for_an_expected_id_refuses_anyone_else() {
    let mut net = pair(Config::default(), Config::default());
    let wrong = Identity::from_secret_bytes(secret(9)).node_id();
    net.command(
        0,
        PeersCommand::Connect {
            addr: Network::addr_of(1),
            peer: Some(wrong),
        },
    )
    .expect("dial");
    net.settle();
    assert_eq!(
        closed(&net, 0),
        vec![CloseReason::Protocol(ProtocolError::IdentityMismatch {
            expected: wrong,
            actual: net.node(1).node_id()
        })]
    );
    assert!(!net.node(0).is_connected(net.node(1).node_id()));
}

#[test]
fn a_node_that_dials_itself_closes_the_connection() {
    let mut net = Network::new(LATENCY);
    net.add_node(Config::default(), secret(1), 1)
        .expect("valid");
    net.connect(0, 0).expect("dial");
    net.settle();
    let reasons = closed(&net, 0);
    assert_eq!(reasons.len(), 2, "both ends of the loop close: {reasons:?}");
    assert!(reasons.contains(&CloseReason::Protocol(ProtocolError::SelfConnection)));
    assert_eq!(net.node(0).connection_count(), 0);
}

#[test]
fn a_silent_peer_is_closed_at_the_handshake_timeout_and_not_before() {
    let mut net = pair(Config::default(), Config::default());
    let timeout = net.node(0).config().session.handshake_timeout;
    // Node 1 vanishes after accepting: no byte ever comes back.
    net.connect(0, 1).expect("dial");
    net.crash(1);
    net.run_for(timeout + timeout);
    let closes: Vec<(Instant, CloseReason)> = net
        .events()
        .iter()
        .filter_map(
            |Recorded {
                 node: n,
                 at: t,
                 event: e,
             }| match e {
                Event::Peers(PeersEvent::Closed { reason, .. }) if *n == 0 => {
                    Some((*t, reason.clone()))
                }
                _ => None,
            },
        )
        .collect();
    assert_eq!(
        closes,
        vec![(
            Instant::ZERO + timeout,
            CloseReason::Protocol(ProtocolError::HandshakeTimeout)
        )]
    );
}

#[test]
fn a_dial_to_nowhere_reports_the_failure() {
    let mut net = pair(Config::default(), Config::default());
    net.command(
        0,
        PeersCommand::Connect {
            addr: "10.9.9.9:1".parse().expect("addr"),
            peer: None,
        },
    )
    .expect("dial");
    net.settle();
    assert!(matches!(closed(&net, 0)[..], [CloseReason::DialFailed(_)]));
    assert_eq!(net.node(0).connection_count(), 0);
}

#[test]
fn compressible_payloads_shrink_on_the_wire_and_incompressible_ones_do_not() {
    let mut net = pair(Config::plaintext(), Config::plaintext());
    net.record_sent(true);
    net.connect(0, 1).expect("dial");
    net.settle();
    let to = net.node(1).node_id();

    let text = Bytes::from("the quick brown fox jumps over the lazy dog. ".repeat(100));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Bytes = (0..4500)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into();
    for payload in [text.clone(), noise.clone()] {
        net.command(0, MessagingCommand::Send { to, payload })
            .expect("connected");
    }
    net.settle();
    let wire: Vec<&Bytes> = net
        .sent()
        .iter()
        .filter(|s| s.node == 0)
        .map(|s| &s.bytes)
        .collect();
    let (text_frame, noise_frame) = (wire[wire.len() - 2], wire[wire.len() - 1]);
    assert_eq!(text_frame[LENGTH_PREFIX_LEN], FLAG_COMPRESSED);
    assert!(
        text_frame.len() < text.len() / 4,
        "{} bytes",
        text_frame.len()
    );
    assert_eq!(noise_frame[LENGTH_PREFIX_LEN], 0);
    assert_eq!(noise_frame.len(), LENGTH_PREFIX_LEN + 2 + noise.len());
    // Both arrive intact.
    let got: Vec<Bytes> = direct(&net, 1).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, vec![text, noise]);
    assert_eq!(net.node(1).stats().peers.compressed_frames_received, 1);
}

#[test]
fn a_peer_that_did_not_offer_compression_never_gets_compressed_frames() {
    let no_lz4 = Config {
        session: SessionConfig {
            compression: false,
            ..Config::plaintext().session
        },
        ..Config::plaintext()
    };
    for security in [Security::Plaintext, Security::Noise] {
        let mut net = pair(
            Config {
                security,
                ..Config::plaintext()
            },
            Config {
                security,
                ..no_lz4.clone()
            },
        );
        net.record_sent(true);
        net.connect(0, 1).expect("dial");
        net.settle();
        assert_eq!(established(&net, 0)[0].3, Capabilities::NONE);
        let to = net.node(1).node_id();
        let text = Bytes::from("aaaaaaaaaaaaaaaa".repeat(1000));
        net.command(
            0,
            MessagingCommand::Send {
                to,
                payload: text.clone(),
            },
        )
        .expect("connected");
        net.settle();
        assert_eq!(net.node(0).stats().peers.compressed_frames_sent, 0);
        assert_eq!(net.node(1).stats().peers.compressed_frames_received, 0);
        assert_eq!(direct(&net, 1)[0].1, text);
        if security == Security::Plaintext {
            let last = &net
                .sent()
                .iter()
                .rev()
                .find(|s| s.node == 0)
                .expect("sent")
                .bytes;
            assert_eq!(last[LENGTH_PREFIX_LEN], 0, "flags must be clear");
            assert!(last.len() > text.len());
        }
    }
}

#[test]
fn send_to_an_unknown_peer_or_over_the_peer_cap_is_refused_without_effect() {
    let small = Config {
        session: SessionConfig {
            max_frame_len: 4096,
            compression: false,
            ..Config::default().session
        },
        ..Config::default()
    };
    let mut net = pair(Config::default(), small);
    net.connect(0, 1).expect("dial");
    net.settle();
    let stranger = Identity::from_secret_bytes(secret(7)).node_id();
    // A node with no neighbour to ask and no address for it.
    let lonely = net
        .add_node(Config::default(), secret(3), 33)
        .expect("valid");
    assert_eq!(
        net.command(
            lonely,
            MessagingCommand::Send {
                to: stranger,
                payload: Bytes::new()
            }
        ),
        Err(CommandError::Messaging(MessagingError::NoRoute(stranger)))
    );
    let to = net.node(1).node_id();
    let sent_before = net.node(0).stats().peers.frames_sent;
    let err = net
        .command(
            0,
            MessagingCommand::Send {
                to,
                payload: Bytes::from(vec![0u8; 5000]),
            },
        )
        .expect_err("over the peer's cap");
    assert!(matches!(
        err,
        CommandError::Messaging(MessagingError::PayloadTooLarge { max: 4096, .. })
    ));
    assert_eq!(net.node(0).stats().peers.frames_sent, sent_before);
    // The session still works.
    net.command(
        0,
        MessagingCommand::Send {
            to,
            payload: Bytes::from_static(b"fits"),
        },
    )
    .expect("fits");
    net.settle();
    assert_eq!(direct(&net, 1).len(), 1);
}

#[test]
fn disconnect_says_goodbye_and_both_sides_learn_why() {
    let mut net = pair(Config::default(), Config::default());
    net.connect(0, 1).expect("dial");
    net.settle();
    let b = net.node(1).node_id();
    net.command(0, PeersCommand::Disconnect { peer: b })
        .expect("connected");
    net.settle();
    assert_eq!(closed(&net, 0), vec![CloseReason::Local]);
    assert_eq!(
        closed(&net, 1),
        vec![CloseReason::Goodbye(ringmesh::wire::GoodbyeReason::Normal)]
    );
    assert_eq!(net.node(0).connection_count(), 0);
    assert_eq!(net.node(1).connection_count(), 0);
}

#[test]
fn garbage_instead_of_a_preamble_closes_with_bad_magic() {
    let mut net = pair(Config::default(), Config::default());
    let conn = net.connect(0, 1).expect("dial");
    net.run_for(LATENCY); // both ends see Connected
    net.inject(0, conn, Bytes::from_static(b"GET / HTTP/1.1\r\n"));
    assert_eq!(
        closed(&net, 0),
        vec![CloseReason::Protocol(ProtocolError::BadMagic)]
    );
}

#[test]
fn inbound_connections_over_the_cap_are_refused_and_counted() {
    let capped = Config {
        peers: PeersConfig {
            max_connections: 1,
            ..Config::default().peers
        },
        ..Config::default()
    };
    let mut net = Network::new(LATENCY);
    net.add_node(capped, secret(1), 1).expect("valid");
    net.add_node(Config::default(), secret(2), 2)
        .expect("valid");
    net.add_node(Config::default(), secret(3), 3)
        .expect("valid");
    net.connect(1, 0).expect("dial");
    net.settle();
    net.connect(2, 0).expect("dial");
    net.settle();
    assert!(net.node(0).is_connected(net.node(1).node_id()));
    assert!(!net.node(0).is_connected(net.node(2).node_id()));
    assert!(closed(&net, 0).contains(&CloseReason::TooManyConnections));
    assert_eq!(net.node(0).stats().peers.refused_connections, 1);
    // Its own dials are refused too, without side effects.
    assert_eq!(
        net.connect(0, 2),
        Err(CommandError::Peers(PeersError::TooManyConnections(1)))
    );
}

#[test]
fn shutdown_closes_everything_with_a_reason_and_refuses_new_work() {
    let mut net = pair(Config::default(), Config::default());
    net.connect(0, 1).expect("dial");
    net.settle();
    net.command(0, Command::Shutdown).expect("shutdown");
    net.settle();
    assert_eq!(closed(&net, 0), vec![CloseReason::Shutdown]);
    assert_eq!(
        closed(&net, 1),
        vec![CloseReason::Goodbye(
            ringmesh::wire::GoodbyeReason::Shutdown
        )]
    );
    assert_eq!(net.connect(0, 1), Err(CommandError::ShutDown));
    // Dials towards it are refused as well.
    net.connect(1, 0).expect("dial");
    net.settle();
    assert!(closed(&net, 0).contains(&CloseReason::Shutdown));
    assert_eq!(net.node(0).connection_count(), 0);
}

/// Node 0's `Output::Send`s of a plaintext pair without compression, after
/// a 64 KiB and a 100-byte `Direct`, a 20 KiB `Request` and node 1's
/// 9 KiB `Response`; with node 0's payload passthrough on or off. Returns
/// node 0's and node 1's sends, the payloads sent, and what arrived.
fn passthrough_run(on: bool) -> (Vec<Bytes>, Vec<Bytes>, Vec<Bytes>, Vec<Bytes>) {
    let plain = || Config {
        session: SessionConfig {
            compression: false,
            ..Config::plaintext().session
        },
        ..Config::plaintext()
    };
    let mut net = pair(plain(), plain());
    net.node_mut(0).set_payload_passthrough(on);
    net.record_sent(true);
    net.connect(0, 1).expect("dial");
    net.settle();
    let (id_a, id_b) = (net.node(0).node_id(), net.node(1).node_id());
    let pattern = |len: usize, seed: u8| -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    };
    let (big, small, asked, answer) = (
        pattern(64 * 1024, 1),
        pattern(100, 2),
        pattern(20 * 1024, 3),
        pattern(9 * 1024, 4),
    );
    for payload in [big.clone(), small.clone()] {
        net.command(0, MessagingCommand::Send { to: id_b, payload })
            .expect("connected");
    }
    net.command(
        0,
        MessagingCommand::Request {
            to: id_b,
            payload: asked.clone(),
            timeout: Duration::from_secs(5),
        },
    )
    .expect("connected");
    net.settle();
    let id = net
        .events_of(1)
        .find_map(|e| match e {
            Event::Messaging(MessagingEvent::Request { id, .. }) => Some(*id),
            _ => None,
        })
        .expect("the request arrived");
    net.command(
        1,
        MessagingCommand::Respond {
            to: id_a,
            id,
            payload: answer.clone(),
        },
    )
    .expect("connected");
    net.settle();
    let sends = |node| {
        net.sent()
            .iter()
            .filter(|s| s.node == node)
            .map(|s| s.bytes.clone())
            .collect::<Vec<_>>()
    };
    let mut arrived: Vec<Bytes> = direct(&net, 1).into_iter().map(|(_, p)| p).collect();
    arrived.extend(net.events_of(1).filter_map(|e| match e {
        Event::Messaging(MessagingEvent::Request { payload, .. }) => Some(payload.clone()),
        _ => None,
    }));
    arrived.extend(net.events_of(0).filter_map(|e| match e {
        Event::Messaging(MessagingEvent::Response { payload, .. }) => Some(payload.clone()),
        _ => None,
    }));
    (sends(0), sends(1), vec![big, small, asked, answer], arrived)
}

#[test]
fn payload_passthrough_sends_the_same_bytes_without_copying_large_payloads() {
    let (whole, whole_b, payloads, arrived_whole) = passthrough_run(false);
    let (split, split_b, sent, arrived_split) = passthrough_run(true);
    // The same stream on the wire, both ways.
    assert_eq!(whole.concat(), split.concat());
    assert_eq!(whole_b.concat(), split_b.concat());
    assert_eq!(arrived_whole, payloads);
    assert_eq!(arrived_split, sent);
    // Off: every frame one `Output::Send`, no payload's own buffer on the
    // wire. On: the 64 KiB `Direct` and the 20 KiB `Request` leave as the
    // application's own buffers (same memory), right after their heads;
    // the 100-byte one is copied into its frame as before.
    let own = |sends: &[Bytes], payload: &Bytes| {
        sends
            .iter()
            .position(|s| s.as_ptr() == payload.as_ptr() && s.len() == payload.len())
    };
    assert_eq!(own(&whole, &payloads[0]), None);
    let (big, small, asked) = (&sent[0], &sent[1], &sent[2]);
    let at = own(&split, big).expect("the 64 KiB payload passed through");
    assert_eq!(
        &split[at - 1][..],
        &[0x00, 0x01, 0x00, 0x02, 0x00, 0x40][..]
    );
    assert!(
        own(&split, asked).is_some(),
        "the 20 KiB request passed through"
    );
    assert_eq!(own(&split, small), None);
    assert_eq!(split.len(), whole.len() + 2);
    // Node 1 left passthrough off: its 9 KiB response was copied.
    assert_eq!(split_b.len(), whole_b.len());
}
