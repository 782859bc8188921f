//! A `Node` fed arbitrary bytes on one connection.
//!
//! Input: one `mode` byte, then a chunked stream (see the crate docs); each
//! chunk is one `Input::Received`.
//!
//! `mode` bits:
//! - 0: security — 0 plaintext, 1 Noise;
//! - 1: direction of the fuzzed connection — 0 inbound, 1 outbound (the
//!   node dials, then gets `Connected`);
//! - 2: frame cap — 0 the default (16 MiB), 1 the minimum (1 KiB);
//! - 3: first run a real handshake with a second node over that connection,
//!   so the fuzzed bytes arrive on an established session (in plaintext
//!   mode they are then parsed as frames; in Noise mode they hit the
//!   decryption path);
//! - 4: afterwards, jump past the handshake timeout and feed `Timeout`;
//! - 5: afterwards, feed `Closed`;
//! - 6: compression off.
//!
//! Checks, besides "never panics": every call's outputs drain to `None`
//! within a bound, and a connection the node closed stays closed.

#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringmesh::{
    Config, ConnId, Direction, Duration, Identity, Input, Instant, Node, Output,
    PeersCommand, TransportError,
};
use ringmesh_fuzz::chunks;

/// The fuzzed node's and its peer's identities, derived once: key
/// derivation is a large share of a run under the sanitizers.
static IDENTITIES: LazyLock<[Identity; 2]> = LazyLock::new(|| {
    [
        Identity::from_secret_bytes([7; 32]),
        Identity::from_secret_bytes([8; 32]),
    ]
});

/// More outputs than any single call can legitimately produce here.
const MAX_OUTPUTS_PER_CALL: usize = 10_000;

/// Drains `node`; returns what it asked to send on `conn` and whether it
/// closed `conn`.
fn drain(node: &mut Node, conn: ConnId) -> (Vec<Bytes>, bool) {
    let mut sent = Vec::new();
    let mut closed = false;
    for _ in 0..MAX_OUTPUTS_PER_CALL {
        match node.poll_output() {
            None => return (sent, closed),
            Some(Output::Send { conn: c, bytes }) if c == conn => {
                assert!(!closed, "Send after Close on {conn}");
                sent.push(bytes);
            }
            Some(Output::Close { conn: c }) if c == conn => closed = true,
            Some(_) => {}
        }
    }
    panic!("poll_output did not return None after {MAX_OUTPUTS_PER_CALL} outputs");
}

fn config(mode: u8) -> Config {
    let mut config = if mode & 1 == 1 {
        Config::default()
    } else {
        Config::plaintext()
    };
    if mode & 4 != 0 {
        config.session.max_frame_len = ringmesh::MIN_MAX_FRAME_LEN;
    }
    config.session.compression = mode & 0x40 == 0;
    config
}

/// Opens a connection on `node` in `direction`; returns its id and the bytes
/// the node sent right away.
fn open(node: &mut Node, direction: Direction, now: Instant) -> (ConnId, Vec<Bytes>) {
    let remote = "127.0.0.2:7000".parse().expect("valid address");
    let conn = match direction {
        Direction::Inbound => ConnId::inbound(0),
        Direction::Outbound => {
            node.command(
                now,
                PeersCommand::Connect {
                    addr: remote,
                    peer: None,
                },
            )
            .expect("dial accepted");
            let Some(Output::Dial { conn, .. }) = node.poll_output() else {
                panic!("Connect did not dial");
            };
            conn
        }
    };
    node.handle_input(
        now,
        Input::Connected {
            conn,
            remote,
            direction,
        },
    );
    let (sent, closed) = drain(node, conn);
    assert!(!closed);
    (conn, sent)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = Instant::ZERO;
    let config = config(mode);
    let direction = if mode & 2 == 0 {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    let mut node = Node::new(config.clone(), IDENTITIES[0].clone(), 7, now).expect("valid config");
    let (conn, to_peer) = open(&mut node, direction, now);
    let mut closed = false;

    if mode & 8 != 0 {
        // A real peer on the other end; pump until both sides go quiet.
        let mut peer = Node::new(config, IDENTITIES[1].clone(), 8, now).expect("valid config");
        let peer_direction = match direction {
            Direction::Inbound => Direction::Outbound,
            Direction::Outbound => Direction::Inbound,
        };
        let (peer_conn, mut to_node) = open(&mut peer, peer_direction, now);
        let mut to_peer = to_peer;
        while !(to_peer.is_empty() && to_node.is_empty()) {
            for bytes in core::mem::take(&mut to_peer) {
                peer.handle_input(
                    now,
                    Input::Received {
                        conn: peer_conn,
                        bytes,
                    },
                );
                to_node.extend(drain(&mut peer, peer_conn).0);
            }
            for bytes in core::mem::take(&mut to_node) {
                node.handle_input(now, Input::Received { conn, bytes });
                let (sent, c) = drain(&mut node, conn);
                to_peer.extend(sent);
                closed |= c;
            }
        }
        assert!(!closed, "a genuine handshake failed");
        assert_eq!(node.connected_peers(), vec![peer.node_id()]);
    }

    // 1 MiB: room for frames of several Noise messages and above the 1 KiB
    // cap, while a run stays fast.
    for bytes in chunks(rest, 1 << 20) {
        node.handle_input(now, Input::Received { conn, bytes });
        let (sent, c) = drain(&mut node, conn);
        assert!(!closed || sent.is_empty(), "sent on a closed connection");
        closed |= c;
        if closed {
            assert_eq!(node.connection_count(), 0, "closed yet still counted");
        }
    }
    if mode & 0x10 != 0 {
        node.handle_input(now + Duration::from_secs(11), Input::Timeout);
        closed |= drain(&mut node, conn).1;
    }
    if mode & 0x20 != 0 && !closed {
        node.handle_input(
            now,
            Input::Closed {
                conn,
                reason: TransportError::Reset,
            },
        );
        drain(&mut node, conn);
        assert_eq!(node.connection_count(), 0);
    }
    assert!(node.poll_output().is_none());
});
