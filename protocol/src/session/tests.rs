//! Handshake attacks, played by a hand-driven Noise peer against a real node.

use bytes::{Bytes, BytesMut};

use super::noise;
use super::*;
use crate::wire::NoiseHandshakePayload;
use crate::{CloseReason, ConnId, Event, Input, Instant, Node, Output, PeersEvent};

const CONN: ConnId = ConnId::inbound(0);

/// A victim node that has accepted a connection; returns it and the bytes
/// it sent first (its preamble).
fn victim() -> (Node, Bytes) {
    let mut node = Node::new(
        Config::default(),
        Identity::from_secret_bytes([0x11; 32]),
        7,
        Instant::ZERO,
    )
    .expect("valid config");
    node.handle_input(
        Instant::ZERO,
        Input::Connected {
            conn: CONN,
            remote: "127.0.0.9:9".parse().expect("addr"),
            direction: Direction::Inbound,
        },
    );
    let sent = sends(&mut node);
    (node, sent)
}

fn sends(node: &mut Node) -> Bytes {
    let mut out = BytesMut::new();
    while let Some(o) = node.poll_output() {
        if let Output::Send { bytes, .. } = o {
            out.extend_from_slice(&bytes);
        }
    }
    out.freeze()
}

fn closes(node: &mut Node) -> Vec<CloseReason> {
    let mut reasons = Vec::new();
    while let Some(o) = node.poll_output() {
        if let Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) = o {
            reasons.push(reason);
        }
    }
    reasons
}

fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    put_frame_header(&mut out, message.len() as u32);
    out.extend_from_slice(message);
    out.freeze()
}

/// Plays a Noise initiator with `static_secret` against a fresh victim;
/// message 3 carries the payload `forge` builds from the initiator's static
/// public key. Returns the victim and the close reasons it reported.
fn play_initiator(
    static_secret: [u8; 32],
    forge: impl FnOnce(&[u8; 32]) -> NoiseHandshakePayload,
) -> (Node, Vec<CloseReason>) {
    let (mut node, preamble) = victim();
    assert_eq!(preamble.len(), PREAMBLE_LEN);
    let mut hs = snow::Builder::with_resolver(
        noise::params(),
        Box::new(noise::SeededResolver::new([0x77; 32])),
    )
    .local_private_key(&static_secret)
    .and_then(|b| b.prologue(&preamble))
    .and_then(|b| b.build_initiator())
    .expect("builder");
    let mut buf = vec![0u8; 65_535];

    let n = hs.write_message(&[], &mut buf).expect("msg 1");
    let mut first = BytesMut::from(&preamble[..]);
    first.extend_from_slice(&frame(&buf[..n]));
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: CONN,
            bytes: first.freeze(),
        },
    );

    let reply = sends(&mut node);
    let mut payload = vec![0u8; reply.len()];
    hs.read_message(&reply[LENGTH_PREFIX_LEN..], &mut payload)
        .expect("victim's message 2 is valid");

    let mut body = BytesMut::new();
    forge(&noise::static_public_key(&static_secret)).encode(&mut body);
    let n = hs.write_message(&body, &mut buf).expect("msg 3");
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: CONN,
            bytes: frame(&buf[..n]),
        },
    );
    let reasons = closes(&mut node);
    (node, reasons)
}

/// An attacker with its own Noise static key.
fn attack(forge: impl FnOnce(&[u8; 32]) -> NoiseHandshakePayload) -> Vec<CloseReason> {
    let (node, reasons) = play_initiator([0x66; 32], forge);
    assert_eq!(node.connection_count(), 0);
    reasons
}

fn hello_of(identity: &Identity) -> Hello {
    SessionContext::new(&Config::default(), identity, 7).hello
}

#[test]
fn a_signature_by_a_different_key_is_rejected_as_bad_signature() {
    let claimed = Identity::from_secret_bytes([0xaa; 32]);
    let attacker = Identity::from_secret_bytes([0xbb; 32]);
    let reasons = attack(|static_pub| NoiseHandshakePayload {
        // Signed by the attacker, but claiming `claimed`'s identity.
        signature: attacker.sign(&noise::signed_message(static_pub)),
        hello: hello_of(&claimed),
    });
    assert_eq!(
        reasons,
        vec![CloseReason::Protocol(ProtocolError::BadSignature)]
    );
}

#[test]
fn a_replayed_signature_over_another_static_key_is_rejected() {
    // The attacker copied a real payload of `claimed` (its signature over
    // *its own* Noise static key) but cannot do the DH with that key.
    let claimed = Identity::from_secret_bytes([0xaa; 32]);
    let real_payload = noise::signed_payload(&claimed, &hello_of(&claimed));
    let replayed = NoiseHandshakePayload::decode(real_payload).expect("own payload decodes");
    let reasons = attack(|_| replayed);
    assert_eq!(
        reasons,
        vec![CloseReason::Protocol(ProtocolError::BadSignature)]
    );
}

#[test]
fn an_honest_hand_driven_peer_is_accepted() {
    // The same harness with a correct payload succeeds, so the rejections
    // above are caused by the forgeries and nothing else.
    let honest = Identity::from_secret_bytes([0xcc; 32]);
    let (node, reasons) = play_initiator(honest.noise_static_secret(), |_| {
        NoiseHandshakePayload::decode(noise::signed_payload(&honest, &hello_of(&honest)))
            .expect("own payload decodes")
    });
    assert!(reasons.is_empty(), "{reasons:?}");
    assert!(node.is_connected(honest.node_id()));
}

#[test]
fn an_invalid_identity_key_is_rejected_as_such() {
    let attacker = Identity::from_secret_bytes([0xbb; 32]);
    let reasons = attack(|static_pub| {
        let mut hello = hello_of(&attacker);
        // Not a point on the curve (y = 2 has no valid x).
        let mut bad = [0u8; 32];
        bad[0] = 2;
        hello.identity = crate::PublicKey::from_bytes(bad);
        NoiseHandshakePayload {
            signature: attacker.sign(&noise::signed_message(static_pub)),
            hello,
        }
    });
    assert!(
        matches!(
            reasons[..],
            [CloseReason::Protocol(
                ProtocolError::BadIdentityKey | ProtocolError::BadSignature
            )]
        ),
        "{reasons:?}"
    );
}

#[test]
fn a_preamble_of_another_version_is_refused_with_both_versions() {
    let (mut node, _) = victim();
    let mut other = Preamble::new(PROTOCOL_VERSION + 1, Security::Noise).to_bytes();
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: CONN,
            bytes: Bytes::copy_from_slice(&other[..3]),
        },
    );
    assert!(
        closes(&mut node).is_empty(),
        "half a preamble is no verdict"
    );
    other[..3].fill(0);
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: CONN,
            bytes: Bytes::copy_from_slice(&other[3..]),
        },
    );
    assert_eq!(
        closes(&mut node),
        vec![CloseReason::Protocol(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        })]
    );
}

#[test]
fn a_plaintext_hello_of_another_version_is_refused() {
    let ctx = SessionContext::new(
        &Config::plaintext(),
        &Identity::from_secret_bytes([3; 32]),
        7,
    );
    let mut rng = crate::rng::Rng::derive(1, crate::rng::Stream::Session, None);
    let (mut session, _) = Session::start(&ctx, Direction::Inbound, &mut rng).expect("start");
    let mut hello = ctx.hello.clone();
    hello.version = 9;
    let mut bytes = BytesMut::from(&ctx.preamble[..]);
    encode_frame(&Message::Hello(hello), None, &mut bytes);
    let mut out = SessionOutputs::new();
    let result = session.on_bytes(&ctx, bytes.freeze(), &mut crate::wire::Unlimited, &mut out);
    assert!(
        matches!(
            result,
            Err(ReadError::Protocol(ProtocolError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 9
            }))
        ),
        "{result:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn a_handshake_frame_over_one_noise_message_is_refused_unbuffered() {
    let (mut node, preamble) = victim();
    let mut bytes = BytesMut::from(&preamble[..]);
    put_frame_header(&mut bytes, 65_536);
    bytes.extend_from_slice(&[0u8; 100]);
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: CONN,
            bytes: bytes.freeze(),
        },
    );
    assert_eq!(
        closes(&mut node),
        vec![CloseReason::Protocol(ProtocolError::FrameTooLarge {
            len: 65_536,
            max: 65_535
        })]
    );
}

// ----- the receive budget (peers/budget.rs) as a node applies it -----

/// A plaintext node with a small frame cap (so budgets are small), and
/// `peers` fake peers connected and past their `Hello`.
fn budgeted_node(peers: u64) -> (Node, Config) {
    let mut config = Config::plaintext();
    config.session.max_frame_len = 64 * 1024;
    config.session.receive_budget = config.min_receive_budget(); // 256 KiB
    config.peers.max_connections = 16; // shares of 8 KiB, a pool of 128 KiB
    let mut node = Node::new(
        config.clone(),
        Identity::from_secret_bytes([0x11; 32]),
        7,
        Instant::ZERO,
    )
    .expect("valid config");
    for i in 0..peers {
        let conn = ConnId::inbound(i);
        node.handle_input(
            Instant::ZERO,
            Input::Connected {
                conn,
                remote: format!("127.0.{i}.1:9").parse().expect("addr"),
                direction: Direction::Inbound,
            },
        );
        let mut secret = [0x40; 32];
        secret[0] = i as u8;
        let ctx = SessionContext::new(&config, &Identity::from_secret_bytes(secret), 0);
        node.handle_input(
            Instant::ZERO,
            Input::Received {
                conn,
                bytes: ctx.plaintext_opening.clone(),
            },
        );
    }
    assert_eq!(node.peer_count() as u64, peers);
    let _ = closes(&mut node);
    (node, config)
}

/// A frame header claiming `len` bytes, then `sent` bytes of it.
fn partial_frame(len: u32, sent: usize) -> Bytes {
    let mut out = BytesMut::new();
    put_frame_header(&mut out, len);
    out.extend_from_slice(&vec![0u8; sent]);
    out.freeze()
}

#[test]
fn stalled_partial_frames_stay_within_the_budget_and_the_greediest_is_closed() {
    let (mut node, config) = budgeted_node(12);
    let budget = config.session.receive_budget;
    let mut closed = Vec::new();
    // Twelve peers each send all but one byte of a maximal frame, in 4 KiB
    // reads, round after round.
    let max = config.session.max_frame_len;
    for round in 0..16 {
        for i in 0..12 {
            let bytes = if round == 0 {
                partial_frame(max, 4096 - 4)
            } else {
                Bytes::from(vec![0u8; 4096])
            };
            node.handle_input(
                Instant::ZERO,
                Input::Received {
                    conn: ConnId::inbound(i),
                    bytes,
                },
            );
            assert!(node.receive_budget_used() <= budget);
            closed.extend(closes(&mut node));
        }
    }
    // 12 × 64 KiB would be 768 KiB: some had to go, each for holding the most.
    assert!(!closed.is_empty());
    for reason in &closed {
        let CloseReason::ReceiveBudget { held, budget: b } = reason else {
            panic!("closed for {reason:?}");
        };
        assert_eq!(*b, budget);
        assert!(*held > 8 * 1024, "a connection within its share was closed");
    }
    assert_eq!(
        node.stats().peers.receive_budget_closes,
        closed.len() as u64
    );
    // Only the greedy were closed: the others are still up.
    assert!(node.peer_count() >= 1);
    assert_eq!(node.peer_count() + closed.len(), 12);
}

#[test]
fn a_burst_of_compressed_messages_waits_for_budget_and_nobody_is_closed() {
    let (mut node, config) = budgeted_node(2);
    // Peer 0 holds a partial frame of 62 KiB (its 8 KiB share and 54 KiB
    // of the 128 KiB pool).
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: ConnId::inbound(0),
            bytes: partial_frame(config.session.max_frame_len, 62 * 1024),
        },
    );
    let _ = closes(&mut node);
    // Peer 1 sends three bombs in one read: a few hundred bytes each, 60
    // KiB decompressed. The first fits; the second waits for the next turn
    // (the first is handed over by then), and so on.
    let mut one = BytesMut::new();
    put_frame_header(&mut one, bomb().len() as u32);
    one.extend_from_slice(&bomb());
    let mut three = BytesMut::new();
    for _ in 0..3 {
        three.extend_from_slice(&one);
    }
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: ConnId::inbound(1),
            bytes: three.freeze(),
        },
    );
    let mut delivered = delivered_and_closed(&mut node).0;
    assert_eq!(delivered, 1);
    let mut turns = 0;
    while let Some(at) = node
        .poll_timeout()
        .filter(|&at| at < Instant::from_micros(1000))
    {
        node.handle_input(at, Input::Timeout);
        let (n, closed) = delivered_and_closed(&mut node);
        assert!(closed.is_empty(), "{closed:?}");
        delivered += n;
        turns += 1;
        assert!(node.receive_budget_used() <= config.session.receive_budget);
    }
    assert_eq!(delivered, 3);
    assert_eq!(turns, 2);
    assert_eq!(node.stats().peers.receive_budget_waits, 2);
    assert_eq!(node.peer_count(), 2);
}

#[test]
fn a_bomb_that_cannot_fit_closes_the_greediest_connection() {
    let (mut node, config) = budgeted_node(3);
    // Peers 0 and 1 hold 62 KiB each: 108 KiB of the 128 KiB pool.
    for i in 0..2 {
        node.handle_input(
            Instant::ZERO,
            Input::Received {
                conn: ConnId::inbound(i),
                bytes: partial_frame(config.session.max_frame_len, 62 * 1024),
            },
        );
    }
    let _ = closes(&mut node);
    // Peer 2's bomb (52 KiB beyond its share) fits only once one of them
    // is gone: the greediest (a tie, so the newest, peer 1) is closed.
    let mut bytes = BytesMut::new();
    put_frame_header(&mut bytes, bomb().len() as u32);
    bytes.extend_from_slice(&bomb());
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: ConnId::inbound(2),
            bytes: bytes.freeze(),
        },
    );
    let (delivered, closed) = delivered_and_closed(&mut node);
    assert_eq!(delivered, 1);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].0, ConnId::inbound(1));
    assert!(matches!(
        closed[0].1,
        CloseReason::ReceiveBudget { held, .. } if held == 62 * 1024
    ));
    assert_eq!(node.stats().peers.receive_budget_closes, 1);
}

/// A compressed `Direct` body of 60 KiB of zeros (a few hundred bytes).
fn bomb() -> Bytes {
    let message = Message::Direct(crate::wire::Direct {
        payload: Bytes::from(vec![0u8; 60 * 1024]),
    });
    let mut body = BytesMut::new();
    assert!(crate::wire::encode_body(&message, Some(0), &mut body));
    assert!(body.len() < 1024);
    body.freeze()
}

/// Messages of 60 KiB delivered, and connections closed (with why).
fn delivered_and_closed(node: &mut Node) -> (usize, Vec<(ConnId, CloseReason)>) {
    let mut delivered = 0;
    let mut closed = Vec::new();
    while let Some(o) = node.poll_output() {
        match o {
            Output::Event(Event::Messaging(crate::MessagingEvent::Direct { payload, .. })) => {
                assert_eq!(payload.len(), 60 * 1024);
                delivered += 1;
            }
            Output::Event(Event::Peers(PeersEvent::Closed { conn, reason, .. })) => {
                closed.push((conn, reason));
            }
            _ => {}
        }
    }
    (delivered, closed)
}

#[test]
fn a_sender_refuses_what_the_receiver_would_refuse_decompressed() {
    use crate::testing::Network;
    use crate::time::Duration;
    use crate::{CommandError, MeshCommand, MeshError, MessagingCommand, MessagingError};
    let mut net = Network::new(Duration::from_millis(1));
    let a = net.add_node(Config::default(), [1; 32], 1).expect("a");
    let mut small = Config::default();
    small.session.max_frame_len = 64 * 1024;
    let b = net.add_node(small, [2; 32], 2).expect("b");
    net.connect(a, b).expect("dial");
    net.settle();
    let b_id = net.node(b).node_id();
    assert!(net.node(a).is_connected(b_id));
    // 1 MiB of text compresses far below b's 64 KiB cap, but b would
    // decompress it past its cap and close the connection.
    let payload = Bytes::from("ringmesh ".repeat(120_000));
    let sent = net.command(
        a,
        MessagingCommand::Send {
            to: b_id,
            payload: payload.clone(),
        },
    );
    assert!(
        matches!(
            sent,
            Err(CommandError::Messaging(MessagingError::PayloadTooLarge { len, max: 65_536 })) if len >= payload.len()
        ),
        "{sent:?}"
    );
    let broadcast = net.command(a, MeshCommand::Broadcast { payload });
    assert!(
        matches!(
            broadcast,
            Err(CommandError::Mesh(MeshError::TooLarge { len, max })) if len > 1_000_000 && max < 65_536
        ),
        "{broadcast:?}"
    );
    net.settle();
    assert!(net.node(a).is_connected(b_id));
    assert_eq!(net.node(b).stats().peers.protocol_errors, 0);
}

#[test]
fn ten_maximal_bombs_in_one_read_are_all_delivered_turn_by_turn() {
    let mut config = Config::plaintext();
    config.peers.max_connections = 256;
    let mut node = Node::new(
        config.clone(),
        Identity::from_secret_bytes([0x11; 32]),
        7,
        Instant::ZERO,
    )
    .expect("valid config");
    let conn = ConnId::inbound(0);
    node.handle_input(
        Instant::ZERO,
        Input::Connected {
            conn,
            remote: "127.0.0.9:9".parse().expect("addr"),
            direction: Direction::Inbound,
        },
    );
    let ctx = SessionContext::new(&config, &Identity::from_secret_bytes([0x42; 32]), 0);
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn,
            bytes: ctx.plaintext_opening.clone(),
        },
    );
    let message = Message::Direct(crate::wire::Direct {
        payload: Bytes::from(vec![0u8; (16 << 20) - 64]),
    });
    let mut body = BytesMut::new();
    assert!(crate::wire::encode_body(&message, Some(0), &mut body));
    let mut bytes = BytesMut::new();
    for _ in 0..10 {
        put_frame_header(&mut bytes, body.len() as u32);
        bytes.extend_from_slice(&body);
    }
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn,
            bytes: bytes.freeze(),
        },
    );
    let mut delivered = 0;
    let mut turns = 0;
    loop {
        while let Some(o) = node.poll_output() {
            match o {
                Output::Event(Event::Messaging(crate::MessagingEvent::Direct { .. })) => {
                    delivered += 1
                }
                Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) => {
                    panic!("closed: {reason:?}")
                }
                _ => {}
            }
        }
        match node.poll_timeout() {
            Some(at) if at < Instant::from_micros(1000) && turns < 100 => {
                node.handle_input(at, Input::Timeout);
                turns += 1;
            }
            _ => break,
        }
    }
    assert_eq!(delivered, 10, "after {turns} turns");
}

/// A queued frame holds about what it counts: a message encoded in many
/// small writes (a `SyncPublish` of 33 entries, ~8.5 KB) grows its buffer
/// by doubling, and is queued in a buffer of its size, not in the grown
/// one; a message encoded in one write (a `Direct` payload) or a small one
/// keeps its buffer (no copy).
#[test]
fn a_frame_is_queued_in_a_buffer_about_its_size() {
    let capacity = |bytes: Bytes| bytes.try_into_mut().expect("the only handle").capacity();
    let writer = Identity::from_secret_bytes([3; 32]);
    let entries = (0..33u64)
        .map(|i| {
            let key = Bytes::from(format!("key-{i}"));
            crate::wire::SyncEntry::signed(&writer, key, i, Some(Bytes::from(vec![5u8; 150])))
        })
        .collect();
    let publish = Message::SyncPublish(crate::wire::SyncPublish { entries });
    let direct = |len: usize| {
        Message::Direct(crate::wire::Direct {
            payload: Bytes::from(vec![7u8; len]),
        })
    };
    for (message, len) in [
        (publish, 33 * 150),
        (direct(6_000), 6_000),
        (direct(40), 40),
    ] {
        let mut prepared = Prepared::new(&message);
        let _ = prepared.frame(0, None);
        let (frame, _) = prepared.frames[0].take().expect("encoded");
        let frame_len = frame.len();
        assert!(frame_len > len, "the frame carries the payload");
        let held = capacity(frame);
        assert!(
            held <= frame_len + frame_len / 4 + FRAME_CAPACITY,
            "a {frame_len}-byte frame holds {held} bytes"
        );
    }
    // What `fit` keeps and what it copies.
    let mut grown = BytesMut::with_capacity(1 << 20);
    grown.extend_from_slice(&[1u8; 10_000]);
    assert_eq!(capacity(fit(grown)), 10_000);
    let mut small = BytesMut::with_capacity(FRAME_CAPACITY);
    small.extend_from_slice(&[1u8; 40]);
    assert_eq!(capacity(fit(small)), FRAME_CAPACITY);
}

#[test]
fn a_preamble_in_single_bytes_is_read_as_a_whole_one() {
    // Each byte but the last is kept in the session's side record; a byte
    // lost or misplaced would fail the preamble's check (or take the
    // first frame's bytes for the preamble) and close the connection.
    let (mut node, preamble) = victim();
    let mut hs = snow::Builder::with_resolver(
        noise::params(),
        Box::new(noise::SeededResolver::new([0x77; 32])),
    )
    .local_private_key(&[0x66; 32])
    .and_then(|b| b.prologue(&preamble))
    .and_then(|b| b.build_initiator())
    .expect("builder");
    for &byte in preamble.iter() {
        node.handle_input(
            Instant::ZERO,
            Input::Received {
                conn: CONN,
                bytes: Bytes::copy_from_slice(&[byte]),
            },
        );
        assert!(closes(&mut node).is_empty(), "a byte is no verdict");
    }
    let mut buf = vec![0u8; 65_535];
    let n = hs.write_message(&[], &mut buf).expect("msg 1");
    node.handle_input(
        Instant::ZERO,
        Input::Received {
            conn: CONN,
            bytes: frame(&buf[..n]),
        },
    );
    let reply = sends(&mut node);
    let mut payload = vec![0u8; reply.len()];
    hs.read_message(&reply[LENGTH_PREFIX_LEN..], &mut payload)
        .expect("the victim answers message 1: it read the preamble");
}
