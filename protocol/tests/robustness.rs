//! Property tests: every message round-trips; no input makes decoding or a
//! node panic, or buffer more than the frame cap.

#[path = "support/round_trip.rs"]
mod support_round_trip;
use support_round_trip::{round_trip, socket_addr};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringmesh::testing::Network;
use ringmesh::wire::{
    Capabilities, Direct, FrameDecoder, Goodbye, GoodbyeReason, Hello, LENGTH_PREFIX_LEN,
    MAX_LISTEN_ADDRS, Message, NoiseHandshakePayload, PROTOCOL_VERSION, decode_body,
    put_frame_header,
};
use ringmesh::{
    CloseReason, Config, ConnId, Direction, Duration, Event, Identity, Input, Instant, Node,
    Output, PeersEvent, PublicKey,
};
use smallvec::SmallVec;

fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u8>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(socket_addr(), 0..=MAX_LISTEN_ADDRS),
    )
        .prop_map(|(version, key, run_nonce, caps, max, addrs)| Hello {
            version,
            identity: PublicKey::from_bytes(key),
            run_nonce,
            capabilities: Capabilities::from_bits(caps),
            max_frame_len: max,
            listen_addrs: SmallVec::from_vec(addrs),
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello().prop_map(Message::Hello),
        prop_oneof![
            (0u8..=4).prop_map(GoodbyeReason::from_code),
            (5u8..).prop_map(GoodbyeReason::Other)
        ]
        .prop_map(|reason| Message::Goodbye(Goodbye { reason })),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            // Compressible payloads, so the compressed path is exercised.
            (any::<u8>(), 0usize..4096).prop_map(|(b, n)| vec![b; n]),
        ]
        .prop_map(|p| Message::Direct(Direct {
            payload: Bytes::from(p)
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips_byte_for_byte(
        msg in message(),
        compress in proptest::option::of(0usize..1024),
    ) {
        round_trip(&msg, compress)?;
    }

    #[test]
    fn noise_handshake_payload_round_trips(sig in proptest::collection::vec(any::<u8>(), 64), hello in hello()) {
        let payload = NoiseHandshakePayload { signature: sig.try_into().expect("64"), hello };
        let mut out = BytesMut::new();
        payload.encode(&mut out);
        prop_assert_eq!(NoiseHandshakePayload::decode(out.freeze()), Ok(payload));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics_and_never_buffers_past_the_cap(
        stream in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(1usize..512, 1..16),
        cap in 0u32..2048,
    ) {
        let mut decoder = FrameDecoder::new(cap);
        let mut rest = Bytes::from(stream);
        let mut cuts = cuts.into_iter().cycle();
        'feed: while !rest.is_empty() {
            let n = cuts.next().unwrap_or(1).min(rest.len());
            let mut input = rest.split_to(n);
            loop {
                match decoder.next_frame(&mut input) {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.len() <= cap as usize);
                        let _ = decode_body(frame, true, cap);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        prop_assert!(e.len > cap);
                        break 'feed;
                    }
                }
                prop_assert!(decoder.buffered() <= LENGTH_PREFIX_LEN + cap as usize);
            }
            prop_assert!(input.is_empty());
        }
    }

    #[test]
    fn decode_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512), accept: bool) {
        let _ = decode_body(Bytes::from(body), accept, 1 << 20);
    }
}

/// Drives a fresh node through `Connected` and then `chunks` of bytes;
/// returns whether it ever closed the connection, and checks it never emits
/// anything for a connection it forgot.
fn feed_node(config: Config, direction: Direction, chunks: Vec<Vec<u8>>) -> bool {
    let conn = match direction {
        Direction::Inbound => ConnId::inbound(3),
        Direction::Outbound => ConnId::inbound(0), // replaced below
    };
    let mut node = Node::new(
        config,
        Identity::from_secret_bytes([5; 32]),
        1,
        Instant::ZERO,
    )
    .expect("valid config");
    let conn = if direction == Direction::Outbound {
        let Ok(ringmesh::Accepted::Dialing(c)) = node.command(
            Instant::ZERO,
            ringmesh::PeersCommand::Connect {
                addr: "127.0.0.1:1".parse().expect("addr"),
                peer: None,
            },
        ) else {
            panic!("dial refused");
        };
        c
    } else {
        conn
    };
    node.handle_input(
        Instant::ZERO,
        Input::Connected {
            conn,
            remote: "127.0.0.1:1".parse().expect("addr"),
            direction,
        },
    );
    let mut closed = false;
    let mut t = 0;
    for chunk in chunks {
        t += 1_000;
        node.handle_input(
            Instant::from_micros(t),
            Input::Received {
                conn,
                bytes: Bytes::from(chunk),
            },
        );
        while let Some(out) = node.poll_output() {
            match out {
                Output::Close { .. } => closed = true,
                Output::Send { .. } => assert!(!closed, "sent after close"),
                Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) => {
                    assert!(matches!(
                        reason,
                        CloseReason::Protocol(_) | CloseReason::Goodbye(_)
                    ));
                }
                _ => {}
            }
        }
    }
    assert_eq!(node.connection_count(), usize::from(!closed));
    closed
}

fn valid_preamble(noise: bool) -> Vec<u8> {
    vec![b'R', b'M', b'S', b'H', PROTOCOL_VERSION, u8::from(noise)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_node_fed_arbitrary_bytes_never_panics(
        noise: bool,
        outbound: bool,
        with_preamble: bool,
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
    ) {
        let config = if noise { Config::default() } else { Config::plaintext() };
        let mut chunks = chunks;
        if with_preamble {
            chunks.insert(0, valid_preamble(noise));
        }
        let direction = if outbound { Direction::Outbound } else { Direction::Inbound };
        feed_node(config, direction, chunks);
    }

    #[test]
    fn an_established_plaintext_session_survives_or_closes_cleanly_on_arbitrary_frames(
        frames in proptest::collection::vec((any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64)), 1..10),
    ) {
        // A real handshake first, then well-framed bodies with random flags,
        // tags and contents.
        let mut net = Network::new(Duration::from_millis(1));
        net.add_node(Config::plaintext(), [1; 32], 1).expect("valid");
        net.add_node(Config::plaintext(), [2; 32], 2).expect("valid");
        net.connect(0, 1).expect("dial");
        net.settle();
        prop_assert!(net.node(1).is_connected(net.node(0).node_id()));
        let mut bytes = BytesMut::new();
        for (flags, tag, body) in &frames {
            put_frame_header(&mut bytes, (body.len() + 2) as u32);
            bytes.extend_from_slice(&[*flags, *tag]);
            bytes.extend_from_slice(body);
        }
        net.inject(1, ConnId::inbound(0), bytes.freeze());
        net.settle();
        let closed = net.events_of(1).any(|e| matches!(e, Event::Peers(PeersEvent::Closed { .. })));
        prop_assert_eq!(closed, !net.node(1).is_connected(net.node(0).node_id()));
    }
}
