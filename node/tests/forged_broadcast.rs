//! Signed broadcasts over real sockets (issue 13, part 1): the real
//! `ringmesh` program A, connected to B, and an attacker M that runs the
//! real node code (the harness's `Intruder`: a `ringmesh::Node` driven
//! over a `TcpStream`) but sends what it likes with `Node::adversary_send`.
//!
//! M captures one of B's genuine broadcasts as it arrives (exactly: through
//! the signature check it is asked to run) and replays it; then sends a
//! broadcast claiming B's id at B's next `seq`, and squats the seqs after
//! it. A prints the genuine one once, never the forged text, prints all of
//! B's later broadcasts, and closes M for its forgeries.

mod support;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use ringmesh::testing::BroadcastRecorder;
use ringmesh::wire::{Broadcast, Message};
use ringmesh::{Config, Event, Identity, Instant, MeshCommand, MeshEvent, Node, NodeId, PublicKey};
use support::{Intruder, Proc};

/// M: a real node over one TCP connection to `a`, its signature check
/// capturing what it verifies.
fn connect_m(a: &Proc) -> (Intruder, Arc<BroadcastRecorder>) {
    let secret = *blake3::hash(format!("forger {}", std::process::id()).as_bytes()).as_bytes();
    let mut node = Node::new(
        Config::lan(),
        Identity::from_secret_bytes(secret),
        7,
        Instant::ZERO,
    )
    .expect("valid config");
    let capture = Arc::new(BroadcastRecorder::default());
    node.set_signature_check(capture.clone());
    let m = Intruder::connect(a.addr.parse().expect("A's address"), node_id(&a.id), node);
    (m, capture)
}

/// The captured broadcasts from `origin`.
fn captured_from(capture: &BroadcastRecorder, origin: NodeId) -> Vec<Broadcast> {
    let mut broadcasts = capture.broadcasts();
    broadcasts.retain(|b| b.origin == origin);
    broadcasts
}

/// Whether M's node delivered a broadcast of `payload`.
fn delivered(m: &Intruder, payload: &[u8]) -> bool {
    m.events().iter().any(
        |e| matches!(e, Event::Mesh(MeshEvent::Broadcast { payload: p, .. }) if p[..] == *payload),
    )
}

fn node_id(hex_id: &str) -> NodeId {
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex_id[2 * i..2 * i + 2], 16).expect("hex id");
    }
    NodeId::from_bytes(bytes)
}

#[test]
fn a_forged_origin_is_never_printed_squats_block_nothing_and_a_replay_prints_once() {
    let started = StdInstant::now();
    let mut a = Proc::spawn("A", &["node", "--listen", "127.0.0.1:0"]);
    let mut b = Proc::spawn("B", &["node", "--listen", "127.0.0.1:0"]);
    b.type_line(&format!("connect {}", a.addr));
    a.wait_peer_up(b.short());
    let a_id = node_id(&a.id);
    let (mut m, capture) = connect_m(&a);
    let m_short = m.node().node_id().short().to_string();
    a.wait_peer_up(&m_short);
    let b_id = node_id(&b.id);
    let b_short = b.short().to_owned();
    let b_line = |text: &str| format!("<{b_short}> {text}");

    // 1. B's genuine broadcast reaches A and M; M captures it.
    b.type_line("msg B says 0");
    a.wait_line(&b_line("B says 0"));
    m.pump_until("B's broadcast", |m| delivered(m, b"B says 0"));
    let recorded = captured_from(&capture, b_id)
        .pop()
        .expect("M verified B's broadcast");
    assert_eq!(recorded.payload, Bytes::from_static(b"B says 0"));

    // 2. The replay, then M's own broadcast: A takes a connection's
    // messages in order, so once it prints M's, it has seen the replay.
    assert!(m.send(a_id, &Message::Broadcast(recorded.clone())));
    let now = m.now();
    m.node_mut()
        .command(
            now,
            MeshCommand::Broadcast {
                payload: Bytes::from_static(b"M sync"),
            },
        )
        .expect("broadcast");
    m.flush();
    a.wait_line(&format!("<{m_short}> M sync"));
    assert_eq!(
        a.count(&b_line("B says 0")),
        1,
        "the replay was not printed"
    );

    // 3. A broadcast claiming B's id at B's next seq (M's key and
    // signature), then B's next 20 seqs squatted with B's key and a
    // signature that is not B's. A closes M after its third forgery
    // (mesh.max_forgeries), so the rest do not get through.
    let mallory = Identity::from_secret_bytes(
        *blake3::hash(format!("forger {}", std::process::id()).as_bytes()).as_bytes(),
    );
    let forge = |key: PublicKey, seq: u64, text: &[u8]| {
        let signature = mallory.sign(&Broadcast::signed_bytes(b_id, recorded.run, seq, text));
        Message::Broadcast(Broadcast {
            origin: b_id,
            key,
            run: recorded.run,
            seq,
            hops: 1,
            signature,
            payload: Bytes::copy_from_slice(text),
        })
    };
    let next = recorded.seq + 1;
    assert!(m.send(a_id, &forge(mallory.public_key(), next, b"I am B (forged)")));
    let mut squats = 0;
    for seq in next..next + 20 {
        if m.send(a_id, &forge(recorded.key, seq, b"squatted")) {
            squats += 1;
        }
    }
    assert!(
        squats >= 2,
        "at least two squats went out before A closed M"
    );
    m.pump_until("A closing M", |m| m.is_closed());
    let down = a.wait_for("A closing M", |l| {
        l.starts_with(&format!("peer down <{m_short}> ")) && l.contains("misbehaving")
    });
    assert!(a.lines[down].contains("forged"), "{}", a.lines[down]);

    // 4. B's next six broadcasts all reach A.
    for k in 1..=6 {
        b.type_line(&format!("msg B says {k}"));
    }
    for k in 1..=6 {
        a.wait_line(&b_line(&format!("B says {k}")));
    }
    assert_eq!(a.count(&b_line("B says 0")), 1);
    for forged in ["I am B (forged)", "squatted"] {
        assert!(
            !a.lines.iter().any(|l| l.contains(forged)),
            "A printed a forgery: {forged}"
        );
    }
    assert!(
        started.elapsed() < StdDuration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
