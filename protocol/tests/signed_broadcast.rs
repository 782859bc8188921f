//! Signed broadcasts against a tampered member (spec/mesh.md, "Threat
//! model"): node `M` runs the real node code but sends what it likes with
//! `Node::adversary_send`. A forged-origin broadcast is delivered by no
//! node and its relaying member is closed after `mesh.max_forgeries`;
//! squatting another node's next `seq` numbers with forged copies blocks
//! none of its broadcasts; a genuine broadcast captured and replayed after
//! 200 s of virtual time is not delivered again. Also proptests of the
//! `Broadcast` codec and of a node's delivery rule.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringmesh::testing::{BroadcastRecorder, Network, NodeIndex};
use ringmesh::wire::{Broadcast, DecodeError, Message, Reader, WireMessage};
use ringmesh::{
    Accepted, CloseReason, Config, Duration, Event, Identity, MeshCommand, MeshConfig, MeshEvent,
    NodeId, PeersCommand, PeersEvent, PublicKey, Security,
};

const LATENCY: Duration = Duration::from_millis(5);

fn secret(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn config(max_forgeries: u32) -> Config {
    Config {
        security: Security::Plaintext,
        mesh: MeshConfig {
            max_forgeries,
            ..Config::lan().mesh
        },
        ..Config::lan()
    }
}

/// Victim `V` = 0, honest 1, 2, 3, attacker `M` = 4. Links: V–1, 1–2,
/// 2–3, 3–V (a ring), and M–1, M–2: every honest node hears V's
/// broadcasts, and M hears them through 1 and 2.
const V: NodeIndex = 0;
const M: NodeIndex = 4;
const HONEST: [NodeIndex; 4] = [0, 1, 2, 3];

fn network(max_forgeries: u32) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..5 {
        net.add_node(config(max_forgeries), secret(i), 100 + i as u64)
            .expect("valid config");
    }
    for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 0), (M, 1), (M, 2)] {
        net.connect(a, b).expect("dial");
    }
    net.settle();
    for (a, b) in [(M, 1), (M, 2), (V, 1)] {
        let peer = net.node(b).node_id();
        assert!(net.node(a).is_connected(peer), "{a} – {b}");
    }
    net
}

fn id(net: &Network, i: NodeIndex) -> NodeId {
    net.node(i).node_id()
}

fn broadcast(net: &mut Network, i: NodeIndex, payload: &[u8]) -> u64 {
    let payload = Bytes::copy_from_slice(payload);
    match net.command(i, MeshCommand::Broadcast { payload }) {
        Ok(Accepted::Broadcast { seq }) => seq,
        other => panic!("broadcast: {other:?}"),
    }
}

/// Payloads node `i` delivered from `origin`, in order.
fn delivered_from(net: &Network, i: NodeIndex, origin: NodeId) -> Vec<Bytes> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Mesh(MeshEvent::Broadcast {
                origin: o, payload, ..
            }) if *o == origin => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

/// `M` sends `message` to node `to` as it is, then the network carries it.
fn adversary_send(net: &mut Network, to: NodeIndex, message: &Message) -> bool {
    let (now, peer) = (net.now(), id(net, to));
    let sent = net.node_mut(M).adversary_send(now, peer, message);
    // A command that does nothing, so the harness takes M's outputs now.
    net.command(M, PeersCommand::AddPeers { peers: vec![] })
        .expect("accepted");
    net.settle();
    sent
}

/// A broadcast claiming `origin` (with `key`), signed by `signer` over the
/// layout of spec/mesh.md.
fn signed_as(
    origin: NodeId,
    key: PublicKey,
    signer: &Identity,
    run: u64,
    seq: u64,
    payload: &[u8],
) -> Message {
    let signature = signer.sign(&Broadcast::signed_bytes(origin, run, seq, payload));
    Message::Broadcast(Broadcast {
        origin,
        key,
        run,
        seq,
        hops: 1,
        signature,
        payload: Bytes::copy_from_slice(payload),
    })
}

fn closed_misbehaving(net: &Network, i: NodeIndex, peer: NodeId) -> bool {
    net.events_of(i).any(|e| {
        matches!(e, Event::Peers(PeersEvent::Down { peer: p, reason: CloseReason::Misbehaving(_) }) if *p == peer)
    })
}

#[test]
fn a_forged_origin_is_delivered_by_no_node_and_its_relay_is_closed() {
    let mut net = network(3);
    let (v, m) = (id(&net, V), id(&net, M));
    let mallory = Identity::from_secret_bytes(secret(M));
    let victim_key = Identity::from_secret_bytes(secret(V)).public_key();
    let run = net.node(V).run_nonce();
    let forgeries = [
        // M's own key and signature under V's id: the key is not V's.
        signed_as(
            v,
            mallory.public_key(),
            &mallory,
            run,
            1,
            b"I am V (forged 1)",
        ),
        // V's key, M's signature: does not verify.
        signed_as(v, victim_key, &mallory, run, 2, b"I am V (forged 2)"),
        // V's key, a signature of zeros.
        Message::Broadcast(Broadcast {
            origin: v,
            key: victim_key,
            run,
            seq: 3,
            hops: 4,
            signature: [0; 64],
            payload: Bytes::from_static(b"I am V (forged 3)"),
        }),
    ];
    for (k, forged) in forgeries.iter().enumerate() {
        assert!(adversary_send(&mut net, 1, forged), "forgery {k} sent");
        assert!(adversary_send(&mut net, 2, forged), "forgery {k} sent");
    }
    for i in HONEST {
        assert!(
            delivered_from(&net, i, v).is_empty(),
            "node {i} delivered a forgery"
        );
    }
    for i in [1, 2] {
        let stats = net.node(i).stats().mesh;
        assert_eq!(stats.forged, 3, "node {i}: {stats:?}");
        assert_eq!(stats.peers_closed, 1, "node {i}");
        assert!(closed_misbehaving(&net, i, m), "node {i} closed M");
        assert!(
            !net.node(i).is_connected(m),
            "node {i} is no longer connected to M"
        );
        // Nothing was relayed: the other honest nodes never saw one.
        assert_eq!(stats.delivered, 0);
    }
    for i in [0, 3] {
        assert_eq!(
            net.node(i).stats().mesh.forged,
            0,
            "node {i}: not relayed to"
        );
    }
    // The honest links are intact, and V still reaches everyone.
    broadcast(&mut net, V, b"the real V");
    net.settle();
    for i in 1..4 {
        assert_eq!(
            delivered_from(&net, i, v),
            vec![Bytes::from_static(b"the real V")]
        );
    }
}

#[test]
fn squatting_the_next_seqs_blocks_none_of_the_origins_broadcasts() {
    // A high threshold, so M stays connected and all its squats land.
    let mut net = network(1_000);
    let v = id(&net, V);
    let mallory = Identity::from_secret_bytes(secret(M));
    let victim_key = Identity::from_secret_bytes(secret(V)).public_key();
    let run = net.node(V).run_nonce();
    let first = broadcast(&mut net, V, b"V 0");
    net.settle();
    for seq in first + 1..=first + 20 {
        let forged = signed_as(v, victim_key, &mallory, run, seq, b"squatted");
        assert!(adversary_send(&mut net, 1, &forged));
        assert!(adversary_send(&mut net, 2, &forged));
    }
    assert_eq!(net.node(1).stats().mesh.forged, 20);
    let sent: Vec<Bytes> = (1..=6).map(|k| Bytes::from(format!("V {k}"))).collect();
    for payload in &sent {
        assert_eq!(
            broadcast(&mut net, V, payload),
            first + sent.iter().position(|p| p == payload).expect("sent") as u64 + 1
        );
        net.settle();
    }
    let mut expected = vec![Bytes::from_static(b"V 0")];
    expected.extend(sent);
    for i in 1..5 {
        assert_eq!(delivered_from(&net, i, v), expected, "node {i}");
    }
}

#[test]
fn a_genuine_broadcast_replayed_after_200_s_is_not_delivered_again() {
    let mut net = network(3);
    let v = id(&net, V);
    let recorder = Arc::new(BroadcastRecorder::default());
    net.node_mut(M).set_signature_check(recorder.clone());
    broadcast(&mut net, V, b"pay 10 coins");
    net.settle();
    let recorded = recorder.broadcasts()[0].clone();
    assert_eq!(recorded.origin, v);
    assert_eq!(recorded.payload, Bytes::from_static(b"pay 10 coins"));
    for i in 1..4 {
        assert_eq!(delivered_from(&net, i, v).len(), 1, "node {i}");
    }

    net.run_for(Duration::from_secs(200));
    let replay = Message::Broadcast(recorded.clone());
    assert!(adversary_send(&mut net, 1, &replay), "M is still connected");
    assert!(adversary_send(&mut net, 2, &replay));
    for i in 1..4 {
        assert_eq!(
            delivered_from(&net, i, v).len(),
            1,
            "node {i}: delivered once"
        );
    }
    assert_eq!(net.node(1).stats().mesh.forged, 0, "a replay is no forgery");

    // After 300 more of V's broadcasts it is below the window: too old.
    for k in 0..300 {
        broadcast(&mut net, V, format!("more {k}").as_bytes());
    }
    net.settle();
    let too_old = net.node(1).stats().mesh.too_old;
    assert!(adversary_send(&mut net, 1, &replay));
    assert_eq!(net.node(1).stats().mesh.too_old, too_old + 1);
    assert_eq!(delivered_from(&net, 1, v).len(), 301);
    assert!(
        net.node(1).is_connected(id(&net, M)),
        "a replay costs M no strike"
    );
}

#[test]
fn a_restarted_origin_is_a_new_run() {
    let mut net = network(3);
    let v = id(&net, V);
    broadcast(&mut net, V, b"first run");
    net.settle();
    // Another node with V's identity and another seed: another run nonce
    // (and another first seq); 1 hears it as a restart.
    let w = net
        .add_node(config(3), secret(V), 999)
        .expect("valid config");
    assert_ne!(net.node(w).run_nonce(), net.node(V).run_nonce());
    net.crash(V);
    net.connect(w, 1).expect("dial");
    net.settle();
    broadcast(&mut net, w, b"second run");
    net.settle();
    assert_eq!(
        delivered_from(&net, 2, v),
        vec![
            Bytes::from_static(b"first run"),
            Bytes::from_static(b"second run")
        ]
    );
}

// ----------------------------------------------------------------- codec

fn arb_broadcast() -> impl Strategy<Value = Broadcast> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u64>(),
        1u8..=255,
        proptest::collection::vec(any::<u8>(), 64),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(origin, key, run, seq, hops, sig, payload)| Broadcast {
            origin: NodeId::from_bytes(origin),
            key: PublicKey::from_bytes(key),
            run,
            seq,
            hops,
            signature: sig.try_into().expect("64 bytes"),
            payload: Bytes::from(payload),
        })
}

fn decode(bytes: &[u8]) -> Result<Broadcast, DecodeError> {
    Broadcast::decode(&mut Reader::new(Bytes::copy_from_slice(bytes)))
}

proptest! {
    /// Every broadcast survives encode → decode; every cut short of its
    /// signature is refused, never a panic.
    #[test]
    fn broadcast_codec_round_trips(b in arb_broadcast()) {
        let mut out = BytesMut::new();
        b.encode(&mut out);
        prop_assert_eq!(decode(&out).expect("valid"), b.clone());
        let header = out.len() - b.payload.len();
        for cut in 0..header {
            prop_assert!(decode(&out[..cut]).is_err(), "cut at {}", cut);
        }
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn broadcast_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A node fed the same origin's genuine broadcasts in any order, each
    /// any number of times, delivers each exactly once when they are within
    /// the window (here all 64 are).
    #[test]
    fn a_node_delivers_each_genuine_broadcast_once(
        order in proptest::collection::vec(0u64..64, 1..150)
    ) {
        let mut net = network(3);
        let origin = Identity::from_secret_bytes([77; 32]);
        for &seq in &order {
            let message = signed_as(origin.node_id(), origin.public_key(), &origin, 5, seq, &seq.to_be_bytes());
            prop_assert!(adversary_send(&mut net, 1, &message));
        }
        let got = delivered_from(&net, 1, origin.node_id());
        let mut distinct: Vec<u64> = order.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(got.len(), distinct.len());
        let mut seqs: Vec<u64> = got.iter().map(|p| u64::from_be_bytes(p[..].try_into().expect("valid"))).collect();
        seqs.sort_unstable();
        prop_assert_eq!(seqs, distinct);
    }
}
