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
    let mut out = Vec::new();
    assert_eq!(
        session.on_bytes(&ctx, bytes.freeze(), &mut out),
        Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: 9
        })
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
