//! Shared helpers for the ringmesh criterion benches.
//!
//! The benches themselves live in `benches/benches/` (`frame`, `handshake`,
//! `relay`);
//! see `benches/README.md` for what each one measures and the figures
//! measured so far. This library only holds what more than one bench needs:
//! deterministic payloads, a frame encoder/decoder that mirrors what a
//! plaintext session does, and in-memory node pairs and stars built on
//! [`ringmesh::testing::Network`].
//!
//! Everything here panics on failure: a bench that silently measures a
//! refused command or a failed handshake would report nonsense.

use bytes::{Bytes, BytesMut};
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{self, Broadcast, Direct, FrameDecoder, LENGTH_PREFIX_LEN, Message};
use ringmesh::{
    Config, ConnId, Duration, Event, Identity, Input, Instant, MeshCommand, MeshEvent,
    MessagingCommand, MessagingEvent, Node, Output, PeersEvent,
};

/// 64 bytes: a small control-sized message.
pub const SMALL: usize = 64;
/// 64 KiB: a bulk message (two Noise chunks once framed and encrypted).
pub const LARGE: usize = 64 * 1024;

/// `len` bytes that LZ4 cannot shrink (a xorshift64 stream), so that a node
/// with compression on tries LZ4 and falls back to the plain body, exactly
/// as it would for encrypted or already-compressed application data.
pub fn incompressible(len: usize) -> Bytes {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// `len` bytes of log-like text that LZ4 compresses well (about 3.5:1), but
/// not trivially: every line carries a changing counter and a pseudo-random
/// field.
pub fn compressible(len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len + 128);
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut line = 0u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let level = ["INFO", "DEBUG", "WARN"][(x % 3) as usize];
        let entry = format!(
            "2025-01-01T00:00:{:02}Z {level} ringmesh::mesh: relayed message id={:016x} hops={} peers={}\n",
            line % 60,
            x,
            x % 8,
            line % 32
        );
        out.extend_from_slice(entry.as_bytes());
        line += 1;
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A `Direct` message carrying `payload`.
pub fn direct(payload: Bytes) -> Message {
    Message::Direct(Direct { payload })
}

/// Frames `message` the way a plaintext session does ([`wire::encode_frame`]
/// into a buffer sized for it), compressing messages of at least
/// `compress_over` bytes, if given. Returns the frame and whether the body
/// was compressed.
pub fn encode_frame(message: &Message, compress_over: Option<usize>) -> (Bytes, bool) {
    let mut out = BytesMut::with_capacity(LENGTH_PREFIX_LEN + 2 + encoded_len_hint(message));
    let compressed = wire::encode_frame(message, compress_over, &mut out);
    (out.freeze(), compressed)
}

fn encoded_len_hint(message: &Message) -> usize {
    match message {
        Message::Direct(d) => d.payload.len(),
        Message::Broadcast(b) => wire::BROADCAST_OVERHEAD_MAX + b.payload.len(),
        _ => 64,
    }
}

/// The plaintext frame of a `Broadcast` signed by `origin` (run `run`)
/// with sequence number `seq` that has travelled one link (`hops` = 1),
/// i.e. what `origin` itself sends its neighbours, uncompressed. (For an
/// incompressible payload this is byte for byte what a plaintext node sends
/// for `MeshCommand::Broadcast`, LZ4 negotiated or not.)
pub fn broadcast_frame(origin: &Identity, run: u64, seq: u64, payload: Bytes) -> Bytes {
    let id = origin.node_id();
    let signature = origin.sign(&Broadcast::signed_bytes(id, run, seq, &payload));
    let message = Message::Broadcast(Broadcast {
        origin: id,
        key: origin.public_key(),
        run,
        seq,
        hops: 1,
        signature,
        payload,
    });
    encode_frame(&message, None).0
}

/// Splits `stream` into frames with a [`FrameDecoder`] capped at
/// `max_frame_len`, feeding it `chunk`-byte reads (`None`: the whole stream
/// in one read), and decodes every body with [`wire::decode_body`]
/// (accepting compression). Returns the messages.
pub fn decode_stream(stream: &Bytes, chunk: Option<usize>, max_frame_len: u32) -> Vec<Message> {
    let mut decoder = FrameDecoder::new(max_frame_len);
    let mut messages = Vec::new();
    let chunk = chunk.unwrap_or(stream.len()).max(1);
    let mut at = 0;
    while at < stream.len() {
        let end = (at + chunk).min(stream.len());
        let mut input = stream.slice(at..end);
        at = end;
        while let Some(frame) = decoder.next_frame(&mut input).expect("frame within cap") {
            let (message, _compressed) =
                wire::decode_body(frame, true, max_frame_len).expect("valid body");
            messages.push(message);
        }
    }
    messages
}

/// A two-node [`Network`] with zero latency, nodes not yet connected. Node 0
/// and node 1 both run `config`; their identities and seeds are fixed.
pub fn pair(config: &Config) -> Network {
    let mut net = Network::new(Duration::ZERO);
    net.add_node(config.clone(), [1; 32], 1)
        .expect("valid config");
    net.add_node(config.clone(), [2; 32], 2)
        .expect("valid config");
    net
}

/// A zero-latency star: node 0 (the hub) has dialled nodes `1..=leaves` and
/// the network ran until idle, so the hub has an established session with
/// each leaf. Every node runs `config`; node `i` has identity secret
/// `[i + 1; 32]` and seed `i + 1` (as in [`pair`]). Panics unless the hub
/// ended with exactly `leaves` peers.
pub fn star(config: &Config, leaves: usize) -> Network {
    let mut net = Network::new(Duration::ZERO);
    for i in 0..=leaves {
        let secret = [u8::try_from(i + 1).expect("at most 254 leaves"); 32];
        net.add_node(config.clone(), secret, i as u64 + 1)
            .expect("valid config");
    }
    for leaf in 1..=leaves {
        net.connect(0, leaf).expect("dial accepted");
    }
    net.settle();
    assert_eq!(
        (net.node(0).peer_count(), net.node(0).connection_count()),
        (leaves, leaves),
        "the hub did not connect to every leaf: {:?}",
        net.events()
    );
    net
}

/// The connection node `i` uses for its session with node `j`, from its
/// `PeersEvent::Established` events. Panics if there is none.
pub fn conn_to(net: &Network, i: NodeIndex, j: NodeIndex) -> ConnId {
    let peer = net.node(j).node_id();
    net.events_of(i)
        .find_map(|e| match e {
            Event::Peers(PeersEvent::Established { conn, peer: p, .. }) if *p == peer => {
                Some(*conn)
            }
            _ => None,
        })
        .expect("a session between the two nodes")
}

/// Node `i` broadcasts `payload` `count` times (`MeshCommand::Broadcast`, given
/// to the node directly, not through the network) and returns the bytes it
/// wrote on its connection `conn`, one `Output::Send` per broadcast, in
/// order. Nothing is delivered: in Noise mode these are the next frames of
/// that session's cipher stream, to be fed to the peer in order, once.
/// Panics unless every broadcast produced exactly one send on `conn`.
pub fn own_broadcasts(
    net: &mut Network,
    i: NodeIndex,
    conn: ConnId,
    payload: &Bytes,
    count: usize,
) -> Vec<Bytes> {
    let now = net.now();
    let node = net.node_mut(i);
    let mut frames = Vec::with_capacity(count);
    for _ in 0..count {
        let payload = payload.clone();
        node.command(now, MeshCommand::Broadcast { payload })
            .expect("broadcast accepted");
        while let Some(output) = node.poll_output() {
            if let Output::Send { conn: c, bytes } = output
                && c == conn
            {
                frames.push(bytes);
            }
        }
    }
    assert_eq!(frames.len(), count, "one frame per broadcast on `conn`");
    frames
}

/// Feeds `node` the bytes `bytes` received on `conn` and drains its outputs,
/// dropping them as a driver would after writing them. Returns the number of
/// `Output::Send`s. Panics on any output other than a send or an
/// `Event::Mesh(MeshEvent::Broadcast)` (a closed connection or a refused frame must not pass
/// for a cheap relay).
pub fn receive(node: &mut Node, now: Instant, conn: ConnId, bytes: Bytes) -> usize {
    node.handle_input(now, Input::Received { conn, bytes });
    let mut sends = 0;
    while let Some(output) = node.poll_output() {
        match output {
            Output::Send { .. } => sends += 1,
            Output::Event(Event::Mesh(MeshEvent::Broadcast { .. })) => {}
            other => panic!("unexpected output while relaying: {other:?}"),
        }
    }
    sends
}

/// Node 0 dials node 1 and the network runs until idle. Panics unless both
/// nodes reported `PeersEvent::Established`.
pub fn handshake(net: &mut Network) {
    net.connect(0, 1).expect("dial accepted");
    net.settle();
    assert!(
        established(net, 0) && established(net, 1),
        "handshake did not complete: {:?}",
        net.events()
    );
}

/// Whether node `i` has reported a `PeersEvent::Established` event.
pub fn established(net: &Network, i: NodeIndex) -> bool {
    net.events_of(i)
        .any(|e| matches!(e, Event::Peers(PeersEvent::Established { .. })))
}

/// [`pair`] followed by [`handshake`]: two nodes with an open session.
pub fn connected_pair(config: &Config) -> Network {
    let mut net = pair(config);
    handshake(&mut net);
    net
}

/// Node 0 sends `payload` to node 1 with `MessagingCommand::Send`, and the network
/// runs until idle, so node 1 has framed-decoded (and decrypted, in Noise
/// mode) it. Returns the number of steps taken; panics if the command is
/// refused.
pub fn send_and_deliver(net: &mut Network, payload: &Bytes) -> usize {
    let to = net.node(1).node_id();
    net.command(
        0,
        MessagingCommand::Send {
            to,
            payload: payload.clone(),
        },
    )
    .expect("send accepted");
    net.settle()
}

/// How many `Direct` messages node 1 has received (to check that a bench
/// delivered what it sent).
pub fn delivered(net: &Network) -> usize {
    net.events_of(1)
        .filter(|e| matches!(e, Event::Messaging(MessagingEvent::Direct { .. })))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_plain_and_compressed() {
        for (payload, compress) in [
            (incompressible(SMALL), None),
            (incompressible(LARGE), Some(512)),
            (compressible(LARGE), Some(512)),
        ] {
            let message = direct(payload);
            let (frame, compressed) = encode_frame(&message, compress);
            assert_eq!(compressed, compress.is_some() && frame.len() < LARGE / 2);
            for chunk in [None, Some(1460)] {
                assert_eq!(
                    decode_stream(&frame, chunk, wire::DEFAULT_MAX_FRAME_LEN),
                    vec![message.clone()]
                );
            }
        }
    }

    #[test]
    fn hub_relays_crafted_and_own_broadcasts() {
        let payload = incompressible(1024);
        // Plaintext: the crafted frame is what node 1 sends itself, and the
        // hub relays it to every other leaf.
        let mut net = star(&Config::plaintext(), 9);
        let (hub_conn, leaf_conn) = (conn_to(&net, 0, 1), conn_to(&net, 1, 0));
        let origin = net.node(1).node_id();
        let (key, run) = (
            Identity::from_secret_bytes([2; 32]),
            net.node(1).run_nonce(),
        );
        let own = own_broadcasts(&mut net, 1, leaf_conn, &payload, 2);
        for frame in &own {
            let [Message::Broadcast(b)] = &decode_stream(frame, None, u32::MAX)[..] else {
                panic!("one broadcast per frame");
            };
            assert_eq!((b.origin, b.hops), (origin, 1));
            assert_eq!(*frame, broadcast_frame(&key, run, b.seq, payload.clone()));
        }
        let now = net.now();
        for seq in [2, 3] {
            let frame = broadcast_frame(&key, run, seq, payload.clone());
            assert_eq!(receive(net.node_mut(0), now, hub_conn, frame), 8);
        }
        // A duplicate is dropped.
        let frame = broadcast_frame(&key, run, 3, payload.clone());
        assert_eq!(receive(net.node_mut(0), now, hub_conn, frame), 0);
        assert_eq!(net.node(0).stats().mesh.relayed, 16);

        // Noise: node 1's own frames, fed in order.
        let mut net = star(&Config::default(), 9);
        let (hub_conn, leaf_conn) = (conn_to(&net, 0, 1), conn_to(&net, 1, 0));
        let now = net.now();
        for frame in own_broadcasts(&mut net, 1, leaf_conn, &payload, 3) {
            assert_eq!(receive(net.node_mut(0), now, hub_conn, frame), 8);
        }
        assert_eq!(net.node(0).stats().mesh.relayed, 24);
    }

    #[test]
    fn pairs_connect_and_deliver_in_both_modes() {
        for config in [Config::default(), Config::plaintext()] {
            let mut net = connected_pair(&config);
            send_and_deliver(&mut net, &incompressible(LARGE));
            assert_eq!(delivered(&net), 1);
        }
    }
}
