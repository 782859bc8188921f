//! Checks every test vector in `spec/vectors/` against this implementation:
//! valid frames decode to the value their JSON fields describe and re-encode
//! byte for byte; invalid ones fail with the named error; the handshake
//! transcripts are reproduced by real nodes (plaintext) or by a from-the-spec
//! Noise peer talking to real nodes (Noise). `spec/wire.md` is the prose.

use core::net::SocketAddr;
use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use ringmesh::testing::Network;
use ringmesh::wire::{
    Announcement, Broadcast, BroadcastId, Capabilities, ChordFindSuccessor,
    ChordFindSuccessorReply, ChordGetState, ChordNotify, ChordReplyKind, ChordRoute, ChordRouteAck,
    ChordRouteFound, ChordRouteKind, ChordRouteReply, ChordState, DEFAULT_MAX_FRAME_LEN,
    DecodeError, DhtBody, DhtEntry, DhtGet, DhtGetReply, DhtGetStatus, DhtKey, DhtPut, DhtPutReply,
    DhtPutStatus, DhtReplicate, DhtReplicateAck, DhtReplicateStatus, DhtSync, DhtSyncItem,
    DhtSyncReply, DhtValue, DialBack, DialBackResult, DialBackStatus, Direct, Disconnect,
    FLAG_COMPRESSED, FindPeer, ForwardJoin, FrameDecoder, FrameError, Goodbye, GoodbyeReason,
    Graft, Hello, HolePunch, HolePunchSync, IHave, Join, MAX_LISTEN_ADDRS, MAX_PEER_LIST, Message,
    Neighbor, NoiseHandshakePayload, ObservedAddr, PREAMBLE_LEN, PeerEntry, PeerList, PeerRequest,
    Ping, Pong, Prune, Reader, RelayAddr, RelayAddrs, RelayClose, RelayConnect, RelayConnectResult,
    RelayData, RelayDeliver, RelayEnded, RelayIncoming, RelayReserve, RelayReserveResult,
    RelayStatus, Request, Response, Shuffle, ShuffleReply, decode_body, encode_body, get_varint,
    put_frame_header, put_varint, varint_len,
};
use ringmesh::{
    CloseReason, Config, ConnId, Direction, Duration, Event, Identity, Input, Instant,
    MessagingCommand, MessagingEvent, NOISE_PATTERN, Node, NodeId, Output, PeersCommand,
    PeersEvent, ProtocolError, PublicKey, SessionConfig,
};
use serde_json::{Value, json};

#[path = "support/fixed_resolver.rs"]
mod fixed_resolver;
use fixed_resolver::FixedResolver;

const VECTOR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/");

/// One test per vector file, and the list the coverage test compares with
/// the directory: a vector file without a checker fails the build's tests.
macro_rules! vector_files {
    ($($test:ident: $file:literal => $check:ident,)*) => {
        const CHECKED_FILES: &[&str] = &[$($file),*];
        $(
            #[test]
            fn $test() {
                $check(&load($file));
            }
        )*
    };
}

vector_files! {
    identities_json: "identities.json" => check_identities,
    dht_entries_json: "dht_entries.json" => check_dht_entries,
    frames_json: "frames.json" => check_frames,
    varints_json: "varints.json" => check_varints,
    invalid_frames_json: "invalid_frames.json" => check_invalid_frames,
    session_errors_json: "session_errors.json" => check_session_errors,
    handshake_plaintext_json: "handshake_plaintext.json" => check_handshake_plaintext,
    handshake_noise_json: "handshake_noise.json" => check_handshake_noise,
    sync_json: "sync.json" => check_sync,
    blobs_json: "blobs.json" => check_blobs,
}

/// spec/blobs.md §2 and §4: each tree's root is BLAKE3 of its input, its
/// outboard and every group's proof are the ones listed, every group
/// verifies with its proof and no longer does with one bit flipped; each
/// frame decodes, re-encodes byte for byte, and its groups verify.
fn check_blobs(v: &Value) {
    use ringmesh::blobs::{GROUP_LEN, Outboard, VerifyError, verify_group};
    use ringmesh::wire::BlobHash;
    let input = |len: usize| (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    let trees = items(field(v, "trees"));
    assert!(trees.len() >= 5);
    names_are_unique(trees);
    let mut roots = std::collections::BTreeMap::new();
    for case in trees {
        let name = text(case, "name");
        let len = num(case, "len");
        let data = input(len as usize);
        let hash = BlobHash(array::<32>(case, "hash"));
        assert_eq!(blake3::hash(&data).as_bytes(), &hash.0, "{name}: root");
        let outboard = Outboard::compute(&data);
        assert_eq!(outboard.root(), hash, "{name}");
        assert_eq!(outboard.groups(), num(case, "groups"), "{name}: groups");
        assert_eq!(
            outboard.as_bytes(),
            bytes(case, "outboard"),
            "{name}: outboard"
        );
        let stored = Outboard::from_bytes(hash, len, &bytes(case, "outboard")).expect(name);
        assert_eq!(
            stored.check(),
            Ok(()),
            "{name}: outboard checks against the root"
        );
        let proofs = items(field(case, "proofs"));
        assert_eq!(proofs.len() as u64, outboard.groups(), "{name}");
        for (group, proof) in proofs.iter().enumerate() {
            let proof: Vec<[u8; 32]> = items(proof)
                .iter()
                .map(|cv| {
                    hex::decode(cv.as_str().expect("hex"))
                        .expect("hex")
                        .try_into()
                        .expect("32 bytes")
                })
                .collect();
            let group = group as u64;
            assert_eq!(
                outboard.proof(group).expect("in range").to_vec(),
                proof,
                "{name}"
            );
            let from = (group * GROUP_LEN) as usize;
            let piece = &data[from..(from + GROUP_LEN as usize).min(data.len())];
            assert!(
                verify_group(&hash, len, group, piece, &proof).is_ok(),
                "{name}"
            );
            if let Some(first) = piece.first() {
                let mut bad = piece.to_vec();
                bad[0] = first ^ 1;
                assert_eq!(
                    verify_group(&hash, len, group, &bad, &proof),
                    Err(VerifyError::HashMismatch),
                    "{name}: a flipped bit"
                );
            }
        }
        roots.insert(len, hash);
    }
    let frames = items(field(v, "frames"));
    assert!(frames.len() >= 5);
    names_are_unique(frames);
    let mut seen = BTreeSet::new();
    for case in frames {
        let name = text(case, "name");
        let wire = bytes(case, "hex");
        let mut input_bytes = Bytes::from(wire.clone());
        let body = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN)
            .next_frame(&mut input_bytes)
            .expect("under the cap")
            .expect("one whole frame");
        assert!(input_bytes.is_empty(), "{name}");
        assert_eq!(body.get(1).copied(), Some(code(case, "tag")), "{name}");
        let (message, _) = decode_body(body, true, DEFAULT_MAX_FRAME_LEN).expect(name);
        seen.insert(message.name());
        let mut out = BytesMut::new();
        encode_body(&message, None, &mut out);
        assert_eq!(plaintext_frame(&out), wire, "{name}: re-encoded");
        if let Message::BlobGroup(group) = &message {
            let root = roots.get(&group.len).expect("a tree of that length");
            let verified = verify_group(root, group.len, group.group, &group.data, &group.proof);
            assert!(verified.is_ok(), "{name}: the group verifies");
        }
    }
    assert_eq!(seen, BTreeSet::from(["BlobGet", "BlobGroup", "BlobEnd"]));
}

/// spec/sync.md §1.1 and §8: each entry's signed bytes rebuilt from the
/// spec's table, its signature (deterministic) and fingerprint and key hash
/// recomputed; each frame decoded, re-encoded, and (for the publish) its
/// entries equal to the entries above.
fn check_sync(v: &Value) {
    use ringmesh::wire::{SyncEntry, SyncPublish, sync_key_hash};
    let cases = items(field(v, "entries"));
    assert!(cases.len() >= 3);
    names_are_unique(cases);
    let mut entries = Vec::new();
    for case in cases {
        let name = text(case, "name");
        let identity = Identity::from_secret_bytes(secret_of(case));
        let key = bytes(case, "key");
        let hlc = decimal(case, "hlc");
        let kind = code(case, "kind");
        let value = (kind == 0).then(|| bytes(case, "value"));
        let mut signed = b"ringmesh sync entry v1:".to_vec();
        signed.extend_from_slice(&u16::try_from(key.len()).expect("short").to_be_bytes());
        signed.extend_from_slice(&key);
        signed.extend_from_slice(&hlc.to_be_bytes());
        signed.push(kind);
        let value_bytes = value.clone().unwrap_or_default();
        signed.extend_from_slice(
            &u32::try_from(value_bytes.len())
                .expect("short")
                .to_be_bytes(),
        );
        signed.extend_from_slice(&value_bytes);
        assert_eq!(
            signed,
            bytes(case, "signed_bytes"),
            "{name}: the spec layout"
        );
        assert_eq!(
            identity.public_key().to_bytes(),
            array::<32>(case, "writer_key")
        );
        assert_eq!(identity.node_id().to_bytes(), array::<16>(case, "writer"));
        let signature = identity.sign(&signed);
        assert_eq!(signature, array::<64>(case, "signature"), "{name}");
        assert!(
            identity.public_key().verify_strict(&signed, &signature),
            "{name}"
        );
        let entry = SyncEntry::signed(
            &identity,
            Bytes::from(key.clone()),
            hlc,
            value.map(Bytes::from),
        );
        assert_eq!(entry.signed_bytes(), signed, "{name}: the crate's layout");
        assert_eq!(entry.signature, signature, "{name}");
        let fingerprint = blake3::hash(&signature);
        let fingerprint =
            u64::from_be_bytes(fingerprint.as_bytes()[..8].try_into().expect("8 bytes"));
        assert_eq!(fingerprint, decimal(case, "fingerprint"), "{name}");
        assert_eq!(entry.fingerprint(), fingerprint, "{name}");
        let kh = blake3::hash(&key);
        let kh = u64::from_be_bytes(kh.as_bytes()[..8].try_into().expect("8 bytes"));
        assert_eq!(kh, decimal(case, "kh"), "{name}");
        assert_eq!(sync_key_hash(&key), kh, "{name}");
        entries.push(entry);
    }
    let frames = items(field(v, "frames"));
    assert_eq!(frames.len(), 3);
    names_are_unique(frames);
    for case in frames {
        let name = text(case, "name");
        let wire = bytes(case, "hex");
        let mut input = Bytes::from(wire.clone());
        let body = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN)
            .next_frame(&mut input)
            .expect("under the cap")
            .expect("one whole frame");
        assert!(input.is_empty(), "{name}");
        assert_eq!(body.get(1).copied(), Some(code(case, "tag")), "{name}");
        let (message, _) = decode_body(body, true, DEFAULT_MAX_FRAME_LEN).expect(name);
        let mut out = BytesMut::new();
        encode_body(&message, None, &mut out);
        let mut frame = BytesMut::new();
        put_frame_header(&mut frame, out.len() as u32);
        frame.extend_from_slice(&out);
        assert_eq!(frame.to_vec(), wire, "{name}: re-encoded");
        if let Message::SyncPublish(SyncPublish { entries: sent }) = &message {
            assert_eq!(sent[..], entries[..2], "{name}");
        }
    }
}

#[test]
fn every_vector_file_is_checked() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(VECTOR_DIR)
        .expect("spec/vectors exists")
        .map(|entry| {
            entry
                .expect("readable dir entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file name")
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    let checked: BTreeSet<String> = CHECKED_FILES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        on_disk, checked,
        "every spec/vectors/*.json needs a checker in protocol/tests/vectors.rs (and vice versa)"
    );
}

// ------------------------------------------------------------- JSON access

fn load(name: &str) -> Value {
    let path = format!("{VECTOR_DIR}{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("missing field {key:?} in {v}"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string in {v}"))
}

fn num(v: &Value, key: &str) -> u64 {
    field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("{key:?} is not an unsigned integer in {v}"))
}

fn flag(v: &Value, key: &str) -> bool {
    field(v, key)
        .as_bool()
        .unwrap_or_else(|| panic!("{key:?} is not a boolean in {v}"))
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(text(v, key)).unwrap_or_else(|e| panic!("{key:?} is not hex ({e}) in {v}"))
}

fn array<const N: usize>(v: &Value, key: &str) -> [u8; N] {
    bytes(v, key)
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("{key:?} has {} bytes, expected {N}", b.len()))
}

fn items(v: &Value) -> &[Value] {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
}

fn names_are_unique(cases: &[Value]) {
    let mut seen = BTreeSet::new();
    for case in cases {
        assert!(seen.insert(text(case, "name")), "duplicate vector name");
    }
}

/// A `u64` written as a decimal string (JSON numbers stop at 2^53).
fn decimal(v: &Value, key: &str) -> u64 {
    text(v, key)
        .parse()
        .unwrap_or_else(|e| panic!("{key:?} is not a decimal u64 ({e}) in {v}"))
}

/// A `NodeId` written as its 16 wire bytes in hex.
fn node_id(v: &Value, key: &str) -> NodeId {
    NodeId::from_bytes(array(v, key))
}

fn addr_list(v: &Value, key: &str) -> Vec<SocketAddr> {
    items(field(v, key))
        .iter()
        .map(|a| addr(a.as_str().expect("address string")))
        .collect()
}

fn addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a socket address: {e}"))
}

fn secret_of(side: &Value) -> [u8; 32] {
    array(side, "secret")
}

// --------------------------------------------------- values from the JSON

fn hello_from_json(v: &Value) -> Hello {
    assert_eq!(text(v, "type"), "Hello");
    Hello {
        version: u8::try_from(num(v, "version")).expect("version is a u8"),
        identity: PublicKey::from_bytes(array(v, "identity")),
        run_nonce: decimal(v, "run_nonce"),
        capabilities: Capabilities::from_bits(num(v, "capabilities")),
        max_frame_len: u32::try_from(num(v, "max_frame_len")).expect("max_frame_len is a u32"),
        listen_addrs: addr_list(v, "listen_addrs").into_iter().collect(),
    }
}

fn message_from_json(v: &Value) -> Message {
    match text(v, "type") {
        "Hello" => Message::Hello(hello_from_json(v)),
        "Goodbye" => {
            let code = u8::try_from(num(v, "reason")).expect("reason is a u8");
            let reason = GoodbyeReason::from_code(code);
            let known = [
                GoodbyeReason::Normal,
                GoodbyeReason::Shutdown,
                GoodbyeReason::ProtocolViolation,
                GoodbyeReason::TooManyConnections,
                GoodbyeReason::Duplicate,
            ];
            // Codes 0–4 have names (in this order); the rest are kept as sent.
            match known.get(usize::from(code)) {
                Some(&named) => assert_eq!(reason, named),
                None => assert_eq!(reason, GoodbyeReason::Other(code)),
            }
            Message::Goodbye(Goodbye { reason })
        }
        "Direct" => Message::Direct(Direct {
            payload: Bytes::from(bytes(v, "payload")),
        }),
        "PeerRequest" => Message::PeerRequest(PeerRequest),
        "PeerList" => Message::PeerList(PeerList {
            peers: entries_from_json(v, "peers"),
        }),
        "FindPeer" => Message::FindPeer(FindPeer {
            target: node_id(v, "target"),
        }),
        "Ping" => Message::Ping(Ping {
            nonce: decimal(v, "nonce"),
        }),
        "Pong" => Message::Pong(Pong {
            nonce: decimal(v, "nonce"),
        }),
        "Broadcast" => Message::Broadcast(Broadcast {
            origin: node_id(v, "origin"),
            key: PublicKey::from_bytes(array(v, "key")),
            run: decimal(v, "run"),
            seq: decimal(v, "seq"),
            hops: u8::try_from(num(v, "hops")).expect("hops is a u8"),
            signature: array(v, "signature"),
            payload: Bytes::from(bytes(v, "payload")),
        }),
        "Request" => Message::Request(Request {
            id: decimal(v, "id"),
            payload: Bytes::from(bytes(v, "payload")),
        }),
        "ObservedAddr" => Message::ObservedAddr(ObservedAddr {
            addr: addr(text(v, "addr")),
        }),
        "DialBack" => Message::DialBack(DialBack {
            nonce: decimal(v, "nonce"),
            port: u16::try_from(num(v, "port")).expect("port is a u16"),
        }),
        "DialBackResult" => Message::DialBackResult(DialBackResult {
            nonce: decimal(v, "nonce"),
            status: match num(v, "status") {
                0 => DialBackStatus::Reached,
                1 => DialBackStatus::Unreached,
                2 => DialBackStatus::Refused,
                other => panic!("status {other}"),
            },
        }),
        "Response" => Message::Response(Response {
            id: decimal(v, "id"),
            payload: Bytes::from(bytes(v, "payload")),
        }),
        other if other.starts_with("Relay") || other.starts_with("HolePunch") => {
            relay_from_json(other, v)
        }
        other => membership_from_json(other, v)
            .or_else(|| chord_from_json(other, v))
            .unwrap_or_else(|| dht_from_json(other, v)),
    }
}

fn bit(v: &Value, key: &str) -> bool {
    match num(v, key) {
        0 => false,
        1 => true,
        other => panic!("{key} is {other}, not 0 or 1"),
    }
}

fn broadcast_id_from_json(v: &Value) -> BroadcastId {
    BroadcastId {
        origin: node_id(v, "origin"),
        run: decimal(v, "run"),
        seq: decimal(v, "seq"),
    }
}

/// HyParView's and Plumtree's messages; `None` for any other type.
fn membership_from_json(kind: &str, v: &Value) -> Option<Message> {
    Some(match kind {
        "Join" => Message::Join(Join),
        "ForwardJoin" => Message::ForwardJoin(ForwardJoin {
            joiner: entry_from_json(field(v, "joiner")),
            ttl: u8::try_from(num(v, "ttl")).expect("u8"),
        }),
        "Neighbor" => Message::Neighbor(Neighbor {
            high_priority: bit(v, "high_priority"),
        }),
        "Disconnect" => Message::Disconnect(Disconnect),
        "Shuffle" => Message::Shuffle(Shuffle {
            origin: entry_from_json(field(v, "origin")),
            ttl: u8::try_from(num(v, "ttl")).expect("u8"),
            entries: entries_from_json(v, "entries"),
        }),
        "ShuffleReply" => Message::ShuffleReply(ShuffleReply {
            entries: entries_from_json(v, "entries"),
        }),
        "IHave" => Message::IHave(IHave {
            announcements: items(field(v, "announcements"))
                .iter()
                .map(|a| Announcement {
                    id: broadcast_id_from_json(a),
                    hops: u8::try_from(num(a, "hops")).expect("u8"),
                })
                .collect(),
        }),
        "Graft" => Message::Graft(Graft {
            send: bit(v, "send"),
            id: broadcast_id_from_json(v),
        }),
        "Prune" => Message::Prune(Prune),
        _ => return None,
    })
}

/// spec/wire.md §7.9.1–7.9.9: a broadcast id is `origin: [u8; 16]`,
/// `run: u64` big-endian, `seq: varint`.
fn spec_broadcast_id(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(&array::<16>(v, "origin"));
    out.extend_from_slice(&decimal(v, "run").to_be_bytes());
    put_varint(out, decimal(v, "seq"));
}

fn entry_from_json(entry: &Value) -> PeerEntry {
    PeerEntry {
        id: node_id(entry, "id"),
        addrs: addr_list(entry, "addrs").into_iter().collect(),
    }
}

fn entries_from_json(v: &Value, key: &str) -> Vec<PeerEntry> {
    items(field(v, key)).iter().map(entry_from_json).collect()
}

fn code(v: &Value, key: &str) -> u8 {
    u8::try_from(num(v, key)).unwrap_or_else(|_| panic!("{key:?} is not a u8 in {v}"))
}

/// The chord messages of `spec/chord.md` §8; `None` for another type.
fn chord_from_json(message_type: &str, v: &Value) -> Option<Message> {
    Some(match message_type {
        "ChordGetState" => Message::ChordGetState(ChordGetState {
            req: decimal(v, "req"),
        }),
        "ChordState" => Message::ChordState(ChordState {
            req: decimal(v, "req"),
            member: match code(v, "member") {
                0 => false,
                1 => true,
                other => panic!("member {other}"),
            },
            pred: v.get("pred").map(entry_from_json),
            succs: entries_from_json(v, "succs"),
        }),
        "ChordNotify" => Message::ChordNotify(ChordNotify),
        "ChordFindSuccessor" => Message::ChordFindSuccessor(ChordFindSuccessor {
            req: decimal(v, "req"),
            key: u128::from_be_bytes(array(v, "key")),
        }),
        "ChordFindSuccessorReply" => Message::ChordFindSuccessorReply(ChordFindSuccessorReply {
            req: decimal(v, "req"),
            kind: match code(v, "kind") {
                0 => ChordReplyKind::Done,
                1 => ChordReplyKind::Next,
                2 => ChordReplyKind::NotInRing,
                other => panic!("kind {other}"),
            },
            entries: entries_from_json(v, "entries"),
        }),
        "ChordRoute" => Message::ChordRoute(ChordRoute {
            req: decimal(v, "req"),
            key: u128::from_be_bytes(array(v, "key")),
            ttl: code(v, "ttl"),
            avoid: v
                .get("avoid")
                .map(|_| NodeId::from_bytes(array(v, "avoid"))),
        }),
        "ChordRouteAck" => Message::ChordRouteAck(ChordRouteAck {
            req: decimal(v, "req"),
        }),
        "ChordRouteReply" => Message::ChordRouteReply(ChordRouteReply {
            req: decimal(v, "req"),
            hops: code(v, "hops"),
            result: match code(v, "kind") {
                0 => Ok(ChordRouteFound {
                    by: entry_from_json(field(v, "by")),
                    entries: entries_from_json(v, "entries"),
                }),
                1 => Err(ChordRouteKind::Failed),
                2 => Err(ChordRouteKind::NotInRing),
                other => panic!("kind {other}"),
            },
        }),
        _ => return None,
    })
}

/// A dht body: `version`, `writer_key` (and `writer`, its id), `kind`,
/// (kind 0) `value`, `signature`.
fn body_from_json(v: &Value) -> DhtBody {
    let writer_key = PublicKey::from_bytes(array(v, "writer_key"));
    assert_eq!(writer_key.node_id(), node_id(v, "writer"));
    let value = match code(v, "kind") {
        0 => DhtValue::Value(Bytes::from(bytes(v, "value"))),
        1 => {
            assert!(v.get("value").is_none(), "a tombstone has no value: {v}");
            DhtValue::Tombstone
        }
        other => panic!("kind {other}"),
    };
    DhtBody::with_signature(
        writer_key,
        decimal(v, "version"),
        value,
        array(v, "signature"),
    )
}

/// A dht key: `mode`, (mode 1) `owner`, `key` (the name).
fn key_from_json(v: &Value) -> DhtKey {
    let name = Bytes::from(bytes(v, "key"));
    match code(v, "mode") {
        0 => {
            assert!(v.get("owner").is_none(), "an open key has no owner: {v}");
            DhtKey::Open(name)
        }
        1 => DhtKey::Owned {
            owner: node_id(v, "owner"),
            name,
        },
        other => panic!("mode {other}"),
    }
}

/// The bytes a dht writer signs, written from `spec/chord.md` §10.1 (not
/// by the crate's function).
fn spec_signed_bytes(v: &Value) -> Vec<u8> {
    let mut out = b"ringmesh dht entry v1:".to_vec();
    let mode = code(v, "mode");
    out.push(mode);
    match mode {
        1 => out.extend_from_slice(&array::<16>(v, "owner")),
        _ => out.extend_from_slice(&[0; 16]),
    }
    let name = bytes(v, "key");
    out.extend_from_slice(&u16::try_from(name.len()).expect("short").to_be_bytes());
    out.extend_from_slice(&name);
    out.extend_from_slice(&decimal(v, "version").to_be_bytes());
    let kind = code(v, "kind");
    out.push(kind);
    let value = if kind == 0 { bytes(v, "value") } else { vec![] };
    out.extend_from_slice(&u32::try_from(value.len()).expect("short").to_be_bytes());
    out.extend_from_slice(&value);
    out
}

/// Whether the JSON entry's signature verifies over its spec bytes.
fn entry_signature_verifies(v: &Value) -> bool {
    PublicKey::from_bytes(array(v, "writer_key"))
        .verify_strict(&spec_signed_bytes(v), &array(v, "signature"))
}

fn check_dht_entries(v: &Value) {
    let cases = items(v);
    assert!(cases.len() >= 4);
    names_are_unique(cases);
    for case in cases {
        let name = text(case, "name");
        let identity = Identity::from_secret_bytes(secret_of(case));
        let key = key_from_json(case);
        let body = body_from_json(case);
        assert_eq!(identity.public_key(), body.writer_key, "{name}");
        // kh: BLAKE3(mode ‖ owner (owned only) ‖ name).
        let mut table_key = vec![code(case, "mode")];
        if let Some(owner) = key.owner() {
            table_key.extend_from_slice(&owner.to_bytes());
        }
        table_key.extend_from_slice(key.name());
        assert_eq!(
            blake3::hash(&table_key).as_bytes(),
            &array::<32>(case, "kh"),
            "{name}"
        );
        assert_eq!(key.hash(), array::<32>(case, "kh"), "{name}");
        let signed = spec_signed_bytes(case);
        assert_eq!(
            signed,
            bytes(case, "signed_bytes"),
            "{name}: the spec layout"
        );
        assert_eq!(
            body.signed_bytes(&key),
            signed,
            "{name}: the crate's layout"
        );
        assert_eq!(
            identity.sign(&signed),
            body.signature,
            "{name}: Ed25519 signatures are deterministic"
        );
        assert!(entry_signature_verifies(case), "{name}");
        assert_eq!(
            DhtBody::signed(&identity, &key, body.version, body.value.clone()),
            body,
            "{name}"
        );
    }
}

/// The dht messages of `spec/chord.md` §10.6.
fn dht_from_json(message_type: &str, v: &Value) -> Message {
    let req = decimal(v, "req");
    match message_type {
        "DhtPut" => Message::DhtPut(DhtPut {
            req,
            entry: Box::new(DhtEntry {
                key: key_from_json(v),
                body: body_from_json(v),
            }),
        }),
        "DhtPutReply" => Message::DhtPutReply(DhtPutReply {
            req,
            status: match code(v, "status") {
                0 => DhtPutStatus::Ok,
                1 => DhtPutStatus::NotOwner,
                2 => DhtPutStatus::Full,
                3 => DhtPutStatus::Incomplete,
                4 => DhtPutStatus::NotInRing,
                5 => DhtPutStatus::TooLarge,
                6 => DhtPutStatus::Stale,
                7 => DhtPutStatus::Refused,
                8 => DhtPutStatus::OverQuota,
                other => panic!("status {other}"),
            },
            version: decimal(v, "version"),
            holders: code(v, "holders"),
        }),
        "DhtGet" => Message::DhtGet(DhtGet {
            req,
            key: key_from_json(v),
        }),
        "DhtGetReply" => Message::DhtGetReply(DhtGetReply {
            req,
            status: match code(v, "status") {
                0 => DhtGetStatus::Found(body_from_json(field(v, "body"))),
                1 => DhtGetStatus::NotFound,
                2 => DhtGetStatus::NotInRing,
                other => panic!("status {other}"),
            },
        }),
        "DhtReplicate" => Message::DhtReplicate(DhtReplicate {
            req,
            entries: items(field(v, "entries"))
                .iter()
                .map(|e| DhtEntry {
                    key: key_from_json(e),
                    body: body_from_json(e),
                })
                .collect(),
        }),
        "DhtReplicateAck" => Message::DhtReplicateAck(DhtReplicateAck {
            req,
            status: match code(v, "status") {
                0 => DhtReplicateStatus::Ok,
                1 => DhtReplicateStatus::Full,
                2 => DhtReplicateStatus::NotInRing,
                3 => DhtReplicateStatus::Refused,
                4 => DhtReplicateStatus::Stale {
                    held: decimal(v, "held"),
                },
                other => panic!("status {other}"),
            },
        }),
        "DhtSync" => Message::DhtSync(DhtSync {
            req,
            items: items(field(v, "items"))
                .iter()
                .map(|item| DhtSyncItem {
                    kh: array(item, "kh"),
                    version: decimal(item, "version"),
                    writer: node_id(item, "writer"),
                    tag: decimal(item, "tag"),
                })
                .collect(),
        }),
        "DhtSyncReply" => Message::DhtSyncReply(DhtSyncReply {
            req,
            indices: items(field(v, "indices"))
                .iter()
                .map(|i| i.as_str().expect("index").parse().expect("decimal u64"))
                .collect(),
        }),
        other => panic!("unknown message type {other:?}"),
    }
}

// ------------------------------------------------ layouts from the spec

/// A socket address as `spec/wire.md` §7.1 lays it out.
fn spec_addr(out: &mut Vec<u8>, text: &str) {
    match addr(text) {
        SocketAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.ip().octets());
        }
    }
    out.extend_from_slice(&addr(text).port().to_be_bytes());
}

fn spec_addrs(out: &mut Vec<u8>, v: &Value, key: &str) {
    let list = items(field(v, key));
    put_varint(out, list.len() as u64);
    for a in list {
        spec_addr(out, a.as_str().expect("address string"));
    }
}

/// A `PeerList` entry (`spec/wire.md` §7.5), also a chord pointer
/// (`spec/chord.md` §8): `id`, `addr_count` (1..=8), the addresses.
fn spec_entry(out: &mut Vec<u8>, entry: &Value) {
    out.extend_from_slice(&array::<16>(entry, "id"));
    let count = items(field(entry, "addrs")).len();
    assert!((1..=MAX_LISTEN_ADDRS).contains(&count));
    spec_addrs(out, entry, "addrs");
}

/// A list of entries: `count` varint (at most `max`), then the entries.
fn spec_entry_list(out: &mut Vec<u8>, v: &Value, key: &str, max: usize) {
    let list = items(field(v, key));
    assert!(list.len() <= max);
    put_varint(out, list.len() as u64);
    for entry in list {
        spec_entry(out, entry);
    }
}

/// A dht key: `mode` u8, (mode 1) `owner` 16 bytes, `key_len` varint
/// (1..=256), `key`.
fn spec_dht_key(out: &mut Vec<u8>, v: &Value) {
    let mode = code(v, "mode");
    out.push(mode);
    match mode {
        0 => {}
        1 => out.extend_from_slice(&array::<16>(v, "owner")),
        other => panic!("mode {other}"),
    }
    let key = bytes(v, "key");
    assert!((1..=256).contains(&key.len()));
    put_varint(out, key.len() as u64);
    out.extend_from_slice(&key);
}

/// A dht value: `value_len` varint (≤ 1 048 576), `value`.
fn spec_dht_value(out: &mut Vec<u8>, v: &Value) {
    let value = bytes(v, "value");
    assert!(value.len() <= 1_048_576);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(&value);
}

/// A dht body (`spec/chord.md` §10.6): `version` varint ≥ 1,
/// `writer_key` 32 bytes, `kind` u8, for kind 0 `value_len` and `value`,
/// `signature` 64 bytes.
fn spec_dht_body(out: &mut Vec<u8>, v: &Value) {
    let version = decimal(v, "version");
    assert!(version >= 1);
    put_varint(out, version);
    out.extend_from_slice(&array::<32>(v, "writer_key"));
    let kind = code(v, "kind");
    out.push(kind);
    match kind {
        0 => spec_dht_value(out, v),
        1 => {}
        other => panic!("kind {other}"),
    }
    out.extend_from_slice(&array::<64>(v, "signature"));
}

/// The message bytes of the chord (`spec/chord.md` §8) and dht (§10.6)
/// messages, field by field from those tables; `false` for another type.
fn spec_chord_dht_bytes(out: &mut Vec<u8>, v: &Value) -> bool {
    const MAX_CHORD_LIST: usize = 32;
    let message_type = text(v, "type");
    if message_type == "ChordNotify" {
        return true;
    }
    if !message_type.starts_with("Chord") && !message_type.starts_with("Dht") {
        return false;
    }
    put_varint(out, decimal(v, "req"));
    match message_type {
        "ChordGetState" => {}
        "ChordState" => {
            let member = code(v, "member");
            assert!(member <= 1);
            out.push(member);
            match v.get("pred") {
                Some(pred) => {
                    out.push(1);
                    spec_entry(out, pred);
                }
                None => out.push(0),
            }
            spec_entry_list(out, v, "succs", MAX_CHORD_LIST);
        }
        "ChordFindSuccessor" => out.extend_from_slice(&array::<16>(v, "key")),
        "ChordFindSuccessorReply" => {
            let kind = code(v, "kind");
            assert!(kind <= 2);
            out.push(kind);
            spec_entry_list(out, v, "entries", MAX_CHORD_LIST);
        }
        "ChordRoute" => {
            out.extend_from_slice(&array::<16>(v, "key"));
            out.push(code(v, "ttl"));
            // `avoid` is absent when `has_avoid` = 0.
            match v.get("avoid") {
                Some(_) => {
                    out.push(1);
                    out.extend_from_slice(&array::<16>(v, "avoid"));
                }
                None => out.push(0),
            }
        }
        // The body is `req` alone (written above).
        "ChordRouteAck" => {}
        "ChordRouteReply" => {
            let kind = code(v, "kind");
            assert!(kind <= 2);
            out.push(kind);
            out.push(code(v, "hops"));
            if kind == 0 {
                spec_entry(out, field(v, "by"));
                spec_entry_list(out, v, "entries", MAX_CHORD_LIST);
            }
        }
        "DhtPut" => {
            spec_dht_key(out, v);
            spec_dht_body(out, v);
            assert!(entry_signature_verifies(v), "vectors are signed: {v}");
        }
        "DhtPutReply" => {
            let status = code(v, "status");
            assert!(status <= 8);
            out.push(status);
            let version = decimal(v, "version");
            // ≥ 1 for Ok (0) and Incomplete (3), any for Stale (6), else 0.
            if status != 6 {
                assert_eq!(version >= 1, status == 0 || status == 3);
            }
            put_varint(out, version);
            out.push(code(v, "holders"));
        }
        "DhtGet" => spec_dht_key(out, v),
        "DhtGetReply" => {
            let status = code(v, "status");
            assert!(status <= 2);
            out.push(status);
            match v.get("body") {
                Some(body) => {
                    assert_eq!(status, 0, "a body only if Found");
                    spec_dht_body(out, body);
                }
                None => assert_ne!(status, 0, "Found carries a body"),
            }
        }
        "DhtReplicate" => {
            let entries = items(field(v, "entries"));
            assert!((1..=64).contains(&entries.len()));
            put_varint(out, entries.len() as u64);
            for entry in entries {
                spec_dht_key(out, entry);
                spec_dht_body(out, entry);
                assert!(
                    entry_signature_verifies(entry),
                    "vectors are signed: {entry}"
                );
            }
        }
        "DhtReplicateAck" => {
            let status = code(v, "status");
            assert!(status <= 4);
            out.push(status);
            if status == 4 {
                let held = decimal(v, "held");
                assert!(held >= 1);
                put_varint(out, held);
            }
        }
        "DhtSync" => {
            let list = items(field(v, "items"));
            assert!((1..=256).contains(&list.len()));
            put_varint(out, list.len() as u64);
            for item in list {
                out.extend_from_slice(&array::<32>(item, "kh"));
                let version = decimal(item, "version");
                assert!(version >= 1);
                put_varint(out, version);
                out.extend_from_slice(&array::<16>(item, "writer"));
                out.extend_from_slice(&decimal(item, "tag").to_be_bytes());
            }
        }
        "DhtSyncReply" => {
            let indices = items(field(v, "indices"));
            assert!(indices.len() <= 256);
            put_varint(out, indices.len() as u64);
            for index in indices {
                put_varint(out, index.as_str().expect("index").parse().expect("u64"));
            }
        }
        other => panic!("no spec layout for {other:?}"),
    }
    true
}

/// The message bytes (after the tag) of a JSON message, written field by
/// field from the layouts of `spec/wire.md` §7 (and, for chord and dht,
/// `spec/chord.md` §8 and §10.6, where those layouts live) — not by the
/// codecs — so a codec change fails here even if the vectors were
/// regenerated with it.
fn spec_message_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if spec_chord_dht_bytes(&mut out, v) {
        return out;
    }
    match text(v, "type") {
        "Hello" => {
            out.push(u8::try_from(num(v, "version")).expect("u8"));
            out.extend_from_slice(&bytes(v, "identity"));
            out.extend_from_slice(&decimal(v, "run_nonce").to_be_bytes());
            put_varint(&mut out, num(v, "capabilities"));
            put_varint(&mut out, num(v, "max_frame_len"));
            spec_addrs(&mut out, v, "listen_addrs");
        }
        "Goodbye" => out.push(u8::try_from(num(v, "reason")).expect("u8")),
        "Direct" => out.extend_from_slice(&bytes(v, "payload")),
        "PeerRequest" => {}
        "PeerList" => {
            let peers = items(field(v, "peers"));
            assert!(peers.len() <= MAX_PEER_LIST);
            put_varint(&mut out, peers.len() as u64);
            for entry in peers {
                spec_entry(&mut out, entry);
            }
        }
        "FindPeer" => out.extend_from_slice(&array::<16>(v, "target")),
        "Ping" | "Pong" => out.extend_from_slice(&decimal(v, "nonce").to_be_bytes()),
        "Broadcast" => {
            out.extend_from_slice(&array::<16>(v, "origin"));
            out.extend_from_slice(&array::<32>(v, "key"));
            out.extend_from_slice(&decimal(v, "run").to_be_bytes());
            put_varint(&mut out, decimal(v, "seq"));
            let hops = u8::try_from(num(v, "hops")).expect("u8");
            assert!(hops >= 1);
            out.push(hops);
            out.extend_from_slice(&array::<64>(v, "signature"));
            out.extend_from_slice(&bytes(v, "payload"));
        }
        "Request" | "Response" => {
            put_varint(&mut out, decimal(v, "id"));
            out.extend_from_slice(&bytes(v, "payload"));
        }
        "Join" | "Disconnect" | "Prune" => {}
        "ForwardJoin" => {
            spec_entry(&mut out, field(v, "joiner"));
            out.push(u8::try_from(num(v, "ttl")).expect("u8"));
        }
        "Neighbor" => out.push(u8::from(bit(v, "high_priority"))),
        "Shuffle" | "ShuffleReply" => {
            if text(v, "type") == "Shuffle" {
                spec_entry(&mut out, field(v, "origin"));
                out.push(u8::try_from(num(v, "ttl")).expect("u8"));
            }
            let entries = items(field(v, "entries"));
            assert!(entries.len() <= 32);
            put_varint(&mut out, entries.len() as u64);
            for entry in entries {
                spec_entry(&mut out, entry);
            }
        }
        "IHave" => {
            let announcements = items(field(v, "announcements"));
            assert!(announcements.len() <= 64);
            put_varint(&mut out, announcements.len() as u64);
            for a in announcements {
                spec_broadcast_id(&mut out, a);
                out.push(u8::try_from(num(a, "hops")).expect("u8"));
            }
        }
        "Graft" => {
            out.push(u8::from(bit(v, "send")));
            spec_broadcast_id(&mut out, v);
        }
        // spec/reach.md §3.1: one socket address.
        "ObservedAddr" => spec_addr(&mut out, text(v, "addr")),
        // §3.2 and §3.3: a u64 BE, then a u16 BE port or a u8 status.
        "DialBack" => {
            out.extend_from_slice(&decimal(v, "nonce").to_be_bytes());
            let port = u16::try_from(num(v, "port")).expect("u16");
            assert_ne!(port, 0);
            out.extend_from_slice(&port.to_be_bytes());
        }
        "DialBackResult" => {
            out.extend_from_slice(&decimal(v, "nonce").to_be_bytes());
            out.push(u8::try_from(num(v, "status")).expect("u8"));
        }
        // spec/relay.md §4: u64 BE numbers, 16-byte ids, u8 codes, and
        // the data as the rest of the body.
        "RelayReserve" => {}
        "RelayReserveResult" => {
            out.push(u8::try_from(num(v, "status")).expect("u8"));
            let ttl = u32::try_from(num(v, "ttl_secs")).expect("u32");
            out.extend_from_slice(&ttl.to_be_bytes());
        }
        "RelayConnect" => {
            out.extend_from_slice(&decimal(v, "req").to_be_bytes());
            out.extend_from_slice(&array::<16>(v, "target"));
        }
        "RelayConnectResult" => {
            out.extend_from_slice(&decimal(v, "req").to_be_bytes());
            out.extend_from_slice(&decimal(v, "circuit").to_be_bytes());
            out.push(u8::try_from(num(v, "status")).expect("u8"));
        }
        "RelayIncoming" => {
            out.extend_from_slice(&decimal(v, "circuit").to_be_bytes());
            out.extend_from_slice(&array::<16>(v, "from"));
        }
        "RelayData" | "RelayDeliver" => {
            out.extend_from_slice(&decimal(v, "circuit").to_be_bytes());
            let data = bytes(v, "data");
            assert!((1..=65536).contains(&data.len()));
            out.extend_from_slice(&data);
        }
        "RelayClose" | "RelayEnded" => {
            out.extend_from_slice(&decimal(v, "circuit").to_be_bytes());
            let reason = u8::try_from(num(v, "reason")).expect("u8");
            assert!((1..=10).contains(&reason));
            out.push(reason);
        }
        "HolePunch" => {
            let count = items(field(v, "addrs")).len();
            assert!((1..=8).contains(&count));
            spec_addrs(&mut out, v, "addrs");
        }
        "HolePunchSync" => {}
        "RelayAddrs" => {
            let list = items(field(v, "addrs"));
            assert!((1..=32).contains(&list.len()));
            put_varint(&mut out, list.len() as u64);
            for entry in list {
                out.extend_from_slice(&array::<16>(entry, "node"));
                out.extend_from_slice(&array::<16>(entry, "relay"));
                spec_addr(
                    &mut out,
                    field(entry, "relay_addr").as_str().expect("address"),
                );
            }
        }
        other => panic!("no spec layout for {other:?}"),
    }
    out
}

/// A `Broadcast` vector's signature: the signed bytes written from
/// spec/mesh.md ("The signed layout") match the vector's `signed` field and
/// the codec's, verify under the vector's key (with ed25519-dalek directly,
/// strictly), and the key is the origin's. Changing any signed field breaks
/// it; `hops` is not signed.
fn check_broadcast_signature(name: &str, v: &Value) {
    let origin = array::<16>(v, "origin");
    let (run, seq) = (decimal(v, "run"), decimal(v, "seq"));
    let payload = bytes(v, "payload");
    let mut signed = b"ringmesh broadcast v1:".to_vec();
    signed.extend_from_slice(&origin);
    signed.extend_from_slice(&run.to_be_bytes());
    signed.extend_from_slice(&seq.to_be_bytes());
    signed.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    signed.extend_from_slice(&payload);
    assert_eq!(
        hex::encode(&signed),
        text(v, "signed"),
        "{name}: signed bytes"
    );
    assert_eq!(
        Broadcast::signed_bytes(NodeId::from_bytes(origin), run, seq, &payload),
        signed,
        "{name}: the codec's signed bytes"
    );
    let key_bytes = array::<32>(v, "key");
    assert_eq!(
        PublicKey::from_bytes(key_bytes).node_id().to_bytes(),
        origin,
        "{name}: the key is the origin's"
    );
    let key = VerifyingKey::from_bytes(&key_bytes).expect("a valid key");
    let signature = ed25519_dalek::Signature::from_bytes(&array::<64>(v, "signature"));
    assert!(
        key.verify_strict(&signed, &signature).is_ok(),
        "{name}: the signature verifies"
    );
    let mut tampered = signed.clone();
    *tampered.last_mut().expect("not empty") ^= 1;
    assert!(
        key.verify_strict(&tampered, &signature).is_err(),
        "{name}: a changed byte does not"
    );
}

/// The tags of `spec/wire.md` §6 (chord and dht: `spec/chord.md` §8, §10.6).
fn spec_tag(message_type: &str) -> u8 {
    match message_type {
        "Hello" => 0x01,
        "Goodbye" => 0x02,
        "PeerRequest" => 0x10,
        "PeerList" => 0x11,
        "FindPeer" => 0x12,
        "Ping" => 0x20,
        "Pong" => 0x21,
        "Broadcast" => 0x30,
        "Join" => 0x31,
        "ForwardJoin" => 0x32,
        "Neighbor" => 0x33,
        "Disconnect" => 0x34,
        "Shuffle" => 0x35,
        "ShuffleReply" => 0x36,
        "IHave" => 0x37,
        "Graft" => 0x38,
        "Prune" => 0x39,
        "Direct" => 0x40,
        "Request" => 0x41,
        "Response" => 0x42,
        "ChordGetState" => 0x50,
        "ChordState" => 0x51,
        "ChordNotify" => 0x52,
        "ChordFindSuccessor" => 0x53,
        "ChordFindSuccessorReply" => 0x54,
        "ChordRoute" => 0x55,
        "ChordRouteReply" => 0x56,
        "ChordRouteAck" => 0x57,
        "DhtPut" => 0x60,
        "DhtPutReply" => 0x61,
        "DhtGet" => 0x62,
        "DhtGetReply" => 0x63,
        "DhtReplicate" => 0x64,
        "DhtReplicateAck" => 0x65,
        "DhtSync" => 0x66,
        "DhtSyncReply" => 0x67,
        "ObservedAddr" => 0x90,
        "DialBack" => 0x91,
        "DialBackResult" => 0x92,
        "RelayReserve" => 0xa0,
        "RelayReserveResult" => 0xa1,
        "RelayConnect" => 0xa2,
        "RelayConnectResult" => 0xa3,
        "RelayIncoming" => 0xa4,
        "RelayData" => 0xa5,
        "RelayClose" => 0xa6,
        "RelayDeliver" => 0xa7,
        "RelayEnded" => 0xa8,
        "HolePunch" => 0xa9,
        "HolePunchSync" => 0xaa,
        "RelayAddrs" => 0xab,
        other => panic!("no tag for {other:?}"),
    }
}

/// The relay messages (`spec/relay.md` §4) from their JSON fields.
fn relay_from_json(kind: &str, v: &Value) -> Message {
    match kind {
        "RelayReserve" => Message::RelayReserve(RelayReserve),
        "RelayReserveResult" => Message::RelayReserveResult(RelayReserveResult {
            status: relay_status(num(v, "status")),
            ttl_secs: u32::try_from(num(v, "ttl_secs")).expect("u32"),
        }),
        "RelayConnect" => Message::RelayConnect(RelayConnect {
            req: decimal(v, "req"),
            target: node_id(v, "target"),
        }),
        "RelayConnectResult" => Message::RelayConnectResult(RelayConnectResult {
            req: decimal(v, "req"),
            circuit: decimal(v, "circuit"),
            status: relay_status(num(v, "status")),
        }),
        "RelayIncoming" => Message::RelayIncoming(RelayIncoming {
            circuit: decimal(v, "circuit"),
            from: node_id(v, "from"),
        }),
        "RelayData" => Message::RelayData(RelayData {
            circuit: decimal(v, "circuit"),
            data: Bytes::from(bytes(v, "data")),
        }),
        "RelayDeliver" => Message::RelayDeliver(RelayDeliver {
            circuit: decimal(v, "circuit"),
            data: Bytes::from(bytes(v, "data")),
        }),
        "RelayClose" => Message::RelayClose(RelayClose {
            circuit: decimal(v, "circuit"),
            reason: relay_status(num(v, "reason")),
        }),
        "RelayEnded" => Message::RelayEnded(RelayEnded {
            circuit: decimal(v, "circuit"),
            reason: relay_status(num(v, "reason")),
        }),
        "HolePunch" => Message::HolePunch(HolePunch {
            addrs: addr_list(v, "addrs"),
        }),
        "HolePunchSync" => Message::HolePunchSync(HolePunchSync),
        "RelayAddrs" => Message::RelayAddrs(RelayAddrs {
            addrs: items(field(v, "addrs"))
                .iter()
                .map(|entry| RelayAddr {
                    node: node_id(entry, "node"),
                    relay: node_id(entry, "relay"),
                    relay_addr: addr(field(entry, "relay_addr").as_str().expect("address")),
                })
                .collect(),
        }),
        other => panic!("no relay message {other:?}"),
    }
}

/// A relay status code (`spec/relay.md` §4.8), as the spec lists them.
fn relay_status(code: u64) -> RelayStatus {
    [
        RelayStatus::Ok,
        RelayStatus::NotServing,
        RelayStatus::ReservationLimit,
        RelayStatus::NoReservation,
        RelayStatus::CircuitLimit,
        RelayStatus::PeerCircuitLimit,
        RelayStatus::ByteLimit,
        RelayStatus::DurationLimit,
        RelayStatus::RateLimit,
        RelayStatus::Closed,
        RelayStatus::Refused,
    ]
    .get(usize::try_from(code).expect("small"))
    .copied()
    .unwrap_or_else(|| panic!("status {code}"))
}

// ------------------------------------------------------------- error names

/// The variant name of an error, from its `Debug` form.
fn variant_name(debug: &str) -> String {
    debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn decode_error_json(e: &DecodeError) -> (String, Value) {
    let detail = match e {
        DecodeError::UnknownTag(tag) => json!({ "tag": tag }),
        DecodeError::ReservedFlags(flags) => json!({ "flags": flags }),
        DecodeError::TrailingBytes(count) => json!({ "count": count }),
        DecodeError::BadAddressFamily(family) => json!({ "family": family }),
        DecodeError::TooMany { len, max } => json!({ "len": len, "max": max }),
        DecodeError::DecompressedTooLarge { len, max } => json!({ "len": len, "max": max }),
        DecodeError::OutOfRange { field, value } => json!({ "field": field, "value": value }),
        _ => json!({}),
    };
    (variant_name(&format!("{e:?}")), detail)
}

fn protocol_error_json(e: &ProtocolError) -> (String, Value) {
    let detail = match e {
        ProtocolError::VersionMismatch { ours, theirs }
        | ProtocolError::SecurityMismatch { ours, theirs } => {
            json!({ "ours": ours, "theirs": theirs })
        }
        ProtocolError::FrameTooLarge { len, max } => json!({ "len": len, "max": max }),
        ProtocolError::UnexpectedMessage(message) => json!({ "message": message }),
        ProtocolError::Decode(inner) => json!({ "decode_error": decode_error_json(inner).0 }),
        _ => json!({}),
    };
    (variant_name(&format!("{e:?}")), detail)
}

// ------------------------------------------------------------- identities

const NOISE_STATIC_KDF_CONTEXT: &str = "ringmesh 2026 noise static key v1";
const NOISE_STATIC_SIGNATURE_CONTEXT: &[u8] = b"ringmesh noise static key v1:";

fn noise_static_secret(secret: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(NOISE_STATIC_KDF_CONTEXT, secret)
}

fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

fn signed_message(static_public: &[u8]) -> Vec<u8> {
    [NOISE_STATIC_SIGNATURE_CONTEXT, static_public].concat()
}

fn check_identities(v: &Value) {
    let cases = items(v);
    assert!(cases.len() >= 3);
    names_are_unique(cases);
    for case in cases {
        let name = text(case, "name");
        let secret = secret_of(case);
        let public: [u8; 32] = array(case, "public_key");
        let identity = Identity::from_secret_bytes(secret);
        assert_eq!(identity.public_key().to_bytes(), public, "{name}");
        assert_eq!(identity.secret_bytes(), secret, "{name}");

        // NodeId: the first 16 bytes of BLAKE3(public key), big-endian.
        let node_id = text(case, "node_id");
        assert_eq!(identity.node_id().to_string(), node_id, "{name}");
        assert_eq!(
            hex::encode(&blake3::hash(&public).as_bytes()[..16]),
            node_id,
            "{name}"
        );
        assert_eq!(
            identity.node_id().as_u128(),
            u128::from_str_radix(node_id, 16).expect("hex node id"),
            "{name}"
        );
        assert_eq!(PublicKey::from_bytes(public).node_id(), identity.node_id());

        // The Noise static key and the identity's signature over it.
        let static_secret = array(case, "noise_static_secret");
        assert_eq!(noise_static_secret(&secret), static_secret, "{name}");
        let static_public: [u8; 32] = array(case, "noise_static_public");
        assert_eq!(x25519_public(&static_secret), static_public, "{name}");
        let signature: [u8; 64] = array(case, "static_key_signature");
        let signing = SigningKey::from_bytes(&secret);
        assert_eq!(
            signing.sign(&signed_message(&static_public)).to_bytes(),
            signature,
            "{name}: Ed25519 signatures are deterministic"
        );
        VerifyingKey::from_bytes(&public)
            .expect("valid key")
            .verify_strict(
                &signed_message(&static_public),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .expect("signature verifies strictly");
    }
}

// ----------------------------------------------------------------- frames

fn plaintext_frame(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_frame_header(&mut out, u32::try_from(body.len()).expect("small body"));
    out.extend_from_slice(body);
    out.to_vec()
}

fn check_frames(v: &Value) {
    let cases = items(v);
    names_are_unique(cases);
    let mut seen_types = BTreeSet::new();
    let mut compressed_count = 0;
    let mut signed_broadcasts = 0;
    for case in cases {
        let name = text(case, "name");
        let wire = bytes(case, "hex");
        let flags = u8::try_from(num(case, "flags")).expect("flags byte");
        let tag = u8::try_from(num(case, "tag")).expect("tag byte");
        let expected = message_from_json(field(case, "message"));
        seen_types.insert(expected.name());
        assert_eq!(expected.tag(), tag, "{name}: tag");
        assert_eq!(spec_tag(expected.name()), tag, "{name}: tag in the spec");

        // The codec writes the layout the spec gives.
        let layout = spec_message_bytes(field(case, "message"));
        let mut encoded = BytesMut::new();
        expected.encode(&mut encoded);
        assert_eq!(
            hex::encode(&encoded),
            hex::encode(&layout),
            "{name}: spec layout"
        );
        if flags == 0 {
            assert_eq!(
                hex::encode(&wire[4..]),
                hex::encode([&[0, tag][..], &layout].concat()),
                "{name}: frame = length, flags, tag, message"
            );
        }

        if expected.name() == "Broadcast" {
            check_broadcast_signature(name, field(case, "message"));
            signed_broadcasts += 1;
        }

        // Frame: a u32 big-endian length, then exactly that many bytes.
        assert!(wire.len() >= 4, "{name}");
        let len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
        assert_eq!(len, wire.len() - 4, "{name}: length prefix");
        let mut input = Bytes::from(wire.clone());
        let body = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN)
            .next_frame(&mut input)
            .expect("under the cap")
            .expect("one whole frame");
        assert!(input.is_empty(), "{name}: one frame, nothing after it");
        assert_eq!(body.first(), Some(&flags), "{name}: flags byte");
        assert_eq!(body.get(1), Some(&tag), "{name}: tag byte");

        // The same bytes one at a time give the same frame.
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut frames = Vec::new();
        for byte in &wire {
            let mut piece = Bytes::copy_from_slice(&[*byte]);
            if let Some(frame) = decoder.next_frame(&mut piece).expect("under the cap") {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![body.clone()], "{name}: byte-at-a-time framing");

        // Decode: the value the JSON fields describe.
        let (message, was_compressed) =
            decode_body(body.clone(), true, DEFAULT_MAX_FRAME_LEN).expect(name);
        assert_eq!(message, expected, "{name}: decoded message");
        assert_eq!(was_compressed, flags == FLAG_COMPRESSED, "{name}");
        // A receiver that did not offer LZ4 refuses compressed bodies only.
        let without_lz4 = decode_body(body, false, DEFAULT_MAX_FRAME_LEN);
        if flags == FLAG_COMPRESSED {
            compressed_count += 1;
            assert_eq!(
                without_lz4,
                Err(DecodeError::CompressionNotNegotiated),
                "{name}"
            );
        } else {
            assert_eq!(without_lz4, Ok((expected.clone(), false)), "{name}");
        }

        // Encode: byte for byte, with the threshold the vector names.
        if case.get("decode_only").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let threshold = case
            .get("compress_threshold")
            .map(|t| usize::try_from(t.as_u64().expect("threshold")).expect("usize"));
        let mut out = BytesMut::new();
        let compressed = encode_body(&expected, threshold, &mut out);
        assert_eq!(compressed, flags == FLAG_COMPRESSED, "{name}: compress?");
        assert_eq!(
            hex::encode(plaintext_frame(&out)),
            hex::encode(&wire),
            "{name}: re-encoding"
        );
    }
    assert_eq!(
        seen_types,
        BTreeSet::from([
            "Hello",
            "Goodbye",
            "PeerRequest",
            "PeerList",
            "FindPeer",
            "Ping",
            "Pong",
            "Broadcast",
            "Join",
            "ForwardJoin",
            "Neighbor",
            "Disconnect",
            "Shuffle",
            "ShuffleReply",
            "IHave",
            "Graft",
            "Prune",
            "Direct",
            "Request",
            "Response",
            "ChordGetState",
            "ChordState",
            "ChordNotify",
            "ChordFindSuccessor",
            "ChordFindSuccessorReply",
            "ChordRoute",
            "ChordRouteReply",
            "ChordRouteAck",
            "DhtPut",
            "DhtPutReply",
            "DhtGet",
            "DhtGetReply",
            "DhtReplicate",
            "DhtReplicateAck",
            "DhtSync",
            "DhtSyncReply",
            "ObservedAddr",
            "DialBack",
            "DialBackResult",
            "RelayReserve",
            "RelayReserveResult",
            "RelayConnect",
            "RelayConnectResult",
            "RelayIncoming",
            "RelayData",
            "RelayClose",
            "RelayDeliver",
            "RelayEnded",
            "HolePunch",
            "HolePunchSync",
            "RelayAddrs",
        ]),
        "a vector for every message type"
    );
    assert!(compressed_count >= 4);
    assert!(signed_broadcasts >= 3, "signed broadcast vectors");
}

// ---------------------------------------------------------------- varints

fn check_varints(v: &Value) {
    let valid = items(field(v, "valid"));
    let mut lengths = BTreeSet::new();
    for case in valid {
        let value: u64 = text(case, "value").parse().expect("decimal u64");
        let wire = bytes(case, "hex");
        lengths.insert(wire.len());
        let mut out = Vec::new();
        put_varint(&mut out, value);
        assert_eq!(hex::encode(&out), hex::encode(&wire), "encode {value}");
        assert_eq!(varint_len(value), wire.len(), "length of {value}");
        assert_eq!(get_varint(&wire), Ok((value, wire.len())), "decode {value}");
        // A varint is self-delimiting: what follows it is not read.
        let mut longer = wire.clone();
        longer.extend_from_slice(&[0xff, 0x00]);
        assert_eq!(get_varint(&longer), Ok((value, wire.len())));
        let mut reader = Reader::new(Bytes::from(longer));
        assert_eq!(reader.varint(), Ok(value));
        assert_eq!(reader.remaining(), 2);
    }
    assert_eq!(
        lengths,
        (1..=10).collect::<BTreeSet<_>>(),
        "every length 1..=10 appears"
    );

    let invalid = items(field(v, "invalid"));
    names_are_unique(invalid);
    let mut errors = BTreeSet::new();
    for case in invalid {
        let name = text(case, "name");
        let wire = bytes(case, "hex");
        let expected = text(case, "error");
        errors.insert(expected);
        let error = get_varint(&wire).expect_err(name);
        assert_eq!(decode_error_json(&error).0, expected, "{name}: {error:?}");
        let error = Reader::new(Bytes::from(wire)).varint().expect_err(name);
        assert_eq!(decode_error_json(&error).0, expected, "{name}: {error:?}");
    }
    assert_eq!(
        errors,
        BTreeSet::from(["UnexpectedEnd", "NonCanonicalVarint", "VarintOverflow"])
    );
}

// --------------------------------------------------------- invalid frames

fn check_invalid_frames(v: &Value) {
    let cases = items(v);
    names_are_unique(cases);
    let mut errors = BTreeSet::new();
    let mut out_of_range_fields = BTreeSet::new();
    let mut failing_tags = BTreeSet::new();
    for case in cases {
        let name = text(case, "name");
        let wire = bytes(case, "hex");
        let cap = u32::try_from(num(case, "max_frame_len")).expect("u32 cap");
        let accept = flag(case, "accept_compressed");
        let expected = (
            text(case, "error").to_owned(),
            field(case, "error_detail").clone(),
        );
        errors.insert(expected.0.clone());
        if expected.0 == "OutOfRange" {
            out_of_range_fields.insert(text(&expected.1, "field").to_owned());
        }
        // A plain body whose message codec refused it: note the tag.
        if wire.len() >= 6
            && wire[4] == 0
            && !["UnknownTag", "ShortBody", "ReservedFlags", "FrameTooLarge"]
                .contains(&expected.0.as_str())
        {
            failing_tags.insert(wire[5]);
        }

        let mut input = Bytes::from(wire.clone());
        let actual = match FrameDecoder::new(cap).next_frame(&mut input) {
            Err(FrameError { len, max }) => {
                // The cap is enforced as soon as the header is whole, even
                // when it arrives a byte at a time: nothing more is buffered.
                let mut decoder = FrameDecoder::new(cap);
                let mut refused = false;
                for (i, byte) in wire.iter().enumerate() {
                    let result = decoder.next_frame(&mut Bytes::copy_from_slice(&[*byte]));
                    if result.is_err() {
                        assert_eq!(i, 3, "{name}: refused on the 4th byte");
                        refused = true;
                        break;
                    }
                    assert!(decoder.buffered() <= 4);
                }
                assert!(refused, "{name}");
                protocol_error_json(&ProtocolError::FrameTooLarge { len, max })
            }
            Ok(Some(body)) => {
                assert!(input.is_empty(), "{name}: exactly one frame");
                match decode_body(body, accept, cap) {
                    Err(error) => decode_error_json(&error),
                    Ok(message) => panic!("{name}: decoded {message:?}"),
                }
            }
            Ok(None) => panic!("{name}: not a whole frame"),
        };
        assert_eq!(actual, expected, "{name}");
    }
    assert_eq!(
        errors,
        BTreeSet::from(
            [
                "UnexpectedEnd",
                "VarintOverflow",
                "NonCanonicalVarint",
                "TrailingBytes",
                "UnknownTag",
                "ShortBody",
                "ReservedFlags",
                "CompressionNotNegotiated",
                "DecompressedTooLarge",
                "BadCompression",
                "BadAddressFamily",
                "TooMany",
                "OutOfRange",
                "FrameTooLarge",
            ]
            .map(String::from)
        ),
        "a vector for every error"
    );
    assert_eq!(
        out_of_range_fields,
        BTreeSet::from(
            [
                "max_frame_len",
                "addr_count",
                "hops",
                "member",
                "has_pred",
                "has_avoid",
                "kind",
                "mode",
                "key_len",
                "value_len",
                "version",
                "status",
                "count",
                "high_priority",
                "send",
                "port",
                "data",
                "reason",
                "addrs",
            ]
            .map(String::from)
        ),
        "a vector for every range check"
    );
    // Every message whose decoding can fail (all but `Direct`) has an
    // invalid vector.
    assert_eq!(
        failing_tags,
        BTreeSet::from([
            0x01, 0x02, 0x10, 0x11, 0x12, 0x20, 0x21, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36,
            0x37, 0x38, 0x39, 0x41, 0x42, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x60, 0x61,
            0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x90, 0x91, 0x92, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4,
            0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
        ]),
        "an invalid vector for every message that can be malformed"
    );
}

// ------------------------------------------------------ session refusals

/// Every `Output` the node has queued.
fn drain(node: &mut Node) -> Vec<Output> {
    core::iter::from_fn(|| node.poll_output()).collect()
}

fn sends(outputs: &[Output]) -> Vec<Bytes> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

fn events(outputs: &[Output]) -> Vec<Event> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn config_for(security: &str) -> Config {
    match security {
        "plaintext" => Config::plaintext(),
        "noise" => Config::default(),
        other => panic!("unknown security mode {other:?}"),
    }
}

/// Feeds `input` (in pieces of `chunk` bytes) to a fresh node on an inbound
/// connection; returns what it did after its opening bytes.
fn refuse(config: Config, input: &[u8], chunk: usize) -> Vec<Output> {
    let conn = ConnId::inbound(0);
    let identity = Identity::from_secret_bytes([0x42; 32]);
    let mut node = Node::new(config, identity, 7, Instant::ZERO).expect("valid config");
    node.handle_input(
        Instant::ZERO,
        Input::Connected {
            conn,
            remote: addr("192.0.2.7:40000"),
            direction: Direction::Inbound,
        },
    );
    let opening = drain(&mut node);
    assert_eq!(sends(&opening).len(), 1, "the node speaks first");
    let mut outputs = Vec::new();
    for piece in input.chunks(chunk) {
        node.handle_input(
            Instant::ZERO,
            Input::Received {
                conn,
                bytes: Bytes::copy_from_slice(piece),
            },
        );
        outputs.extend(drain(&mut node));
    }
    outputs
}

fn check_session_errors(v: &Value) {
    let cases = items(v);
    names_are_unique(cases);
    for case in cases {
        let name = text(case, "name");
        let config = Config {
            session: SessionConfig {
                compression: flag(case, "compression"),
                ..config_for(text(case, "security")).session
            },
            ..config_for(text(case, "security"))
        };
        let input = bytes(case, "input");
        let expected = (
            text(case, "error").to_owned(),
            field(case, "error_detail").clone(),
        );
        let goodbye = match field(case, "goodbye") {
            Value::String(s) if s == "none" => None,
            code => Some(u8::try_from(code.as_u64().expect("goodbye code")).expect("u8")),
        };
        for chunk in [input.len().max(1), 1] {
            let outputs = refuse(config.clone(), &input, chunk);
            let closes: Vec<CloseReason> = events(&outputs)
                .into_iter()
                .filter_map(|e| match e {
                    Event::Peers(PeersEvent::Closed { reason, .. }) => Some(reason),
                    _ => None,
                })
                .collect();
            let [CloseReason::Protocol(error)] = &closes[..] else {
                panic!("{name}: expected one protocol-error close, got {closes:?}");
            };
            assert_eq!(protocol_error_json(error), expected, "{name}: {error:?}");
            assert!(
                outputs.iter().any(|o| matches!(o, Output::Close { .. })),
                "{name}: the transport is closed"
            );
            // Only an established session says Goodbye before closing.
            let sent_after: Vec<Bytes> = sends(&outputs)
                .into_iter()
                .filter(|b| !b.starts_with(b"RMSH"))
                .collect();
            let expected_sent: Vec<Bytes> = goodbye
                .map(|code| Bytes::from(plaintext_frame(&[0x00, 0x02, code])))
                .into_iter()
                .collect();
            assert_eq!(sent_after, expected_sent, "{name}: goodbye");
        }
    }
}

// ------------------------------------------------- plaintext handshake

/// Splits one side's byte stream the way the spec says: an optional 6-byte
/// preamble, then u32-big-endian-length frames.
fn split_stream(mut stream: &[u8], with_preamble: bool) -> (Option<[u8; 6]>, Vec<Vec<u8>>) {
    let preamble = with_preamble.then(|| {
        let (head, rest) = stream.split_at(PREAMBLE_LEN);
        stream = rest;
        head.try_into().expect("6 bytes")
    });
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let (len, rest) = stream.split_at(4);
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let (frame, rest) = rest.split_at(len);
        frames.push(frame.to_vec());
        stream = rest;
    }
    (preamble, frames)
}

fn check_handshake_plaintext(v: &Value) {
    let sides = [field(v, "initiator"), field(v, "responder")];
    let mut net = Network::new(Duration::from_millis(5));
    net.record_sent(true);
    let mut ids = Vec::new();
    for (index, side) in sides.iter().enumerate() {
        let config = Config {
            listen_addrs: items(field(side, "listen_addrs"))
                .iter()
                .map(|a| addr(a.as_str().expect("address")))
                .collect(),
            ..Config::plaintext()
        };
        let added = net
            .add_node(config, secret_of(side), num(side, "seed"))
            .expect("valid config");
        assert_eq!(added, index);
        let id = net.node(index).node_id();
        assert_eq!(id.to_string(), text(side, "node_id"));
        ids.push(id);
    }
    let index_of = |who: &str| match who {
        "initiator" => 0,
        "responder" => 1,
        other => panic!("unknown side {other:?}"),
    };

    // What each side should say, in order, derived from the steps.
    let mut expected: [Vec<Message>; 2] = [Vec::new(), Vec::new()];
    for step in items(field(v, "steps")) {
        let from = index_of(text(step, "from"));
        let to = 1 - from;
        match text(step, "action") {
            "connect" => {
                net.connect(from, to).expect("dial");
                for (i, side) in sides.iter().enumerate() {
                    expected[i].push(message_from_json(field(side, "hello")));
                }
            }
            "send" => {
                let payload = Bytes::from(bytes(step, "payload"));
                net.command(
                    from,
                    MessagingCommand::Send {
                        to: ids[to],
                        payload: payload.clone(),
                    },
                )
                .expect("connected");
                expected[from].push(Message::Direct(Direct { payload }));
            }
            "disconnect" => {
                net.command(from, PeersCommand::Disconnect { peer: ids[to] })
                    .expect("connected");
                expected[from].push(Message::Goodbye(Goodbye {
                    reason: GoodbyeReason::Normal,
                }));
            }
            other => panic!("unknown action {other:?}"),
        }
        net.settle();
    }

    // The nodes wrote exactly the transcript, write by write.
    let transcript = items(field(v, "sent"));
    let actual: Vec<(usize, String)> = net
        .sent()
        .iter()
        .map(|s| (s.node, hex::encode(&s.bytes)))
        .collect();
    let wanted: Vec<(usize, String)> = transcript
        .iter()
        .map(|s| (index_of(text(s, "from")), text(s, "hex").to_owned()))
        .collect();
    assert_eq!(actual, wanted, "transcript");

    // And the transcript says what the spec says: each side's stream is its
    // preamble, then frames decoding to the expected messages.
    for (i, expected) in expected.iter().enumerate() {
        let stream: Vec<u8> = transcript
            .iter()
            .filter(|s| index_of(text(s, "from")) == i)
            .flat_map(|s| bytes(s, "hex"))
            .collect();
        let (preamble, frames) = split_stream(&stream, true);
        assert_eq!(preamble, Some(*b"RMSH\x03\x00"), "plaintext preamble");
        let messages: Vec<Message> = frames
            .into_iter()
            .map(|f| {
                decode_body(Bytes::from(f), true, DEFAULT_MAX_FRAME_LEN)
                    .expect("valid frame")
                    .0
            })
            .collect();
        assert_eq!(&messages, expected, "side {i}");
    }

    // Both learnt the other's claimed id and listen addresses.
    for (i, side) in sides.iter().enumerate() {
        let other = sides[1 - i];
        let established: Vec<_> = net
            .events_of(i)
            .filter_map(|e| match e {
                Event::Peers(PeersEvent::Established {
                    peer, listen_addrs, ..
                }) => Some((*peer, listen_addrs.to_vec())),
                _ => None,
            })
            .collect();
        assert_eq!(
            established,
            vec![(
                ids[1 - i],
                hello_from_json(field(other, "hello")).listen_addrs.to_vec()
            )],
            "{}",
            text(side, "name")
        );
    }
}

// ----------------------------------------------------- noise handshake

const NOISE_MAX_MESSAGE: usize = 65_535;
const NOISE_TAG_LEN: usize = 16;

/// A handshake state built from the spec: pattern, prologue = preamble,
/// static key derived from the identity secret, the given ephemeral key.
fn spec_handshake(side: &Value, prologue: &[u8], initiator: bool) -> snow::HandshakeState {
    let static_secret = noise_static_secret(&secret_of(side));
    assert_eq!(
        hex::encode(static_secret),
        text(side, "noise_static_secret")
    );
    let ephemeral = bytes(side, "ephemeral_secret");
    let builder = snow::Builder::with_resolver(
        NOISE_PATTERN.parse().expect("pattern"),
        Box::new(FixedResolver),
    )
    .local_private_key(&static_secret)
    .and_then(|b| b.prologue(prologue))
    .expect("builder")
    .fixed_ephemeral_key_for_testing_only(&ephemeral);
    if initiator {
        builder.build_initiator().expect("initiator")
    } else {
        builder.build_responder().expect("responder")
    }
}

/// The spec's handshake payload for a side: its signature over its Noise
/// static key, then its Hello.
fn spec_payload(side: &Value) -> Vec<u8> {
    let secret = secret_of(side);
    let static_public = x25519_public(&noise_static_secret(&secret));
    assert_eq!(
        hex::encode(static_public),
        text(side, "noise_static_public")
    );
    let signature = SigningKey::from_bytes(&secret)
        .sign(&signed_message(&static_public))
        .to_bytes();
    let mut out = BytesMut::new();
    NoiseHandshakePayload {
        signature,
        hello: hello_from_json(field(side, "hello")),
    }
    .encode(&mut out);
    let mut layout = signature.to_vec();
    let mut hello = BytesMut::new();
    Message::Hello(hello_from_json(field(side, "hello"))).encode(&mut hello);
    layout.extend_from_slice(&hello);
    assert_eq!(out[..], layout[..], "payload = signature ‖ Hello");
    out.to_vec()
}

/// Checks a peer's handshake payload the way the spec says a receiver
/// must; returns its hello.
fn spec_verify_payload(payload: &[u8], remote_static: &[u8]) -> Hello {
    let decoded = NoiseHandshakePayload::decode(Bytes::copy_from_slice(payload)).expect("payload");
    VerifyingKey::from_bytes(&decoded.hello.identity.to_bytes())
        .expect("identity key")
        .verify_strict(
            &signed_message(remote_static),
            &ed25519_dalek::Signature::from_bytes(&decoded.signature),
        )
        .expect("signature over the Noise static key");
    decoded.hello
}

fn handshake_write(state: &mut snow::HandshakeState, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; NOISE_MAX_MESSAGE];
    let len = state.write_message(payload, &mut buf).expect("write");
    plaintext_frame(&buf[..len])
}

fn handshake_read(state: &mut snow::HandshakeState, frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; NOISE_MAX_MESSAGE];
    let len = state.read_message(frame, &mut buf).expect("read");
    buf.truncate(len);
    buf
}

/// Transport encryption from the spec: the body in chunks of at most
/// 65,519 bytes, each its own Noise message, under one length prefix.
fn spec_encrypt(state: &mut snow::TransportState, body: &[u8]) -> Vec<u8> {
    let mut ciphertext = Vec::new();
    let mut chunks: Vec<&[u8]> = body.chunks(NOISE_MAX_MESSAGE - NOISE_TAG_LEN).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let mut buf = vec![0u8; chunk.len() + NOISE_TAG_LEN];
        let len = state.write_message(chunk, &mut buf).expect("encrypt");
        ciphertext.extend_from_slice(&buf[..len]);
    }
    plaintext_frame(&ciphertext)
}

fn spec_decrypt(state: &mut snow::TransportState, frame: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for chunk in frame.chunks(NOISE_MAX_MESSAGE) {
        let mut buf = vec![0u8; chunk.len()];
        let len = state.read_message(chunk, &mut buf).expect("decrypt");
        body.extend_from_slice(&buf[..len]);
    }
    body
}

/// Bytes without repeats for LZ4 to find (xorshift64).
fn noise_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn check_handshake_noise(v: &Value) {
    assert_eq!(text(v, "protocol_name"), NOISE_PATTERN);
    assert_eq!(NOISE_PATTERN, "Noise_XX_25519_ChaChaPoly_BLAKE2s");
    let prologue = bytes(v, "prologue");
    assert_eq!(
        prologue, b"RMSH\x03\x01",
        "prologue = the Noise-mode preamble"
    );
    let (a, b) = (field(v, "initiator"), field(v, "responder"));
    for side in [a, b] {
        let identity = Identity::from_secret_bytes(secret_of(side));
        assert_eq!(
            hex::encode(identity.public_key().to_bytes()),
            text(side, "public_key")
        );
        assert_eq!(identity.node_id().to_string(), text(side, "node_id"));
        assert_eq!(
            hex::encode(spec_payload(side)),
            text(side, "handshake_payload")
        );
    }
    let sent = items(field(v, "sent"));
    let sent_hex = |i: usize| bytes(&sent[i], "hex");

    // 1. The transcript follows from the spec and the fixed keys.
    let mut init = spec_handshake(a, &prologue, true);
    let mut resp = spec_handshake(b, &prologue, false);
    let m1 = handshake_write(&mut init, &[]);
    assert_eq!(
        [&prologue[..], &m1].concat(),
        sent_hex(0),
        "preamble + message 1"
    );
    assert_eq!(sent_hex(1), prologue, "the responder's preamble");
    assert_eq!(m1.len(), 4 + 32, "message 1 is e with an empty payload");
    assert!(handshake_read(&mut resp, &m1[4..]).is_empty());
    let m2 = handshake_write(&mut resp, &spec_payload(b));
    assert_eq!(m2, sent_hex(2), "message 2");
    let payload = handshake_read(&mut init, &m2[4..]);
    let remote = init.get_remote_static().expect("s").to_vec();
    assert_eq!(hex::encode(&remote), text(b, "noise_static_public"));
    assert_eq!(
        spec_verify_payload(&payload, &remote),
        hello_from_json(field(b, "hello"))
    );
    let m3 = handshake_write(&mut init, &spec_payload(a));
    assert_eq!(m3, sent_hex(3), "message 3");
    let payload = handshake_read(&mut resp, &m3[4..]);
    let remote = resp.get_remote_static().expect("s").to_vec();
    assert_eq!(
        spec_verify_payload(&payload, &remote),
        hello_from_json(field(a, "hello"))
    );
    assert_eq!(
        hex::encode(init.get_handshake_hash()),
        text(v, "handshake_hash")
    );
    let mut init = init.into_transport_mode().expect("transport");
    let mut resp = resp.into_transport_mode().expect("transport");
    for message in items(field(v, "transport")) {
        let body = bytes(message, "body");
        let (sender, receiver) = match text(message, "from") {
            "initiator" => (&mut init, &mut resp),
            _ => (&mut resp, &mut init),
        };
        let frame = spec_encrypt(sender, &body);
        assert_eq!(hex::encode(&frame), text(message, "hex"));
        assert_eq!(frame.len(), 4 + body.len() + NOISE_TAG_LEN);
        assert_eq!(spec_decrypt(receiver, &frame[4..]), body);
        assert!(matches!(
            decode_body(Bytes::from(body), true, DEFAULT_MAX_FRAME_LEN),
            Ok((Message::Direct(_), false))
        ));
    }

    // 2. A real node completes the handshake with a from-the-spec peer, in
    //    either role, and exchanges multi-chunk frames with it.
    noise_interop(v, &prologue, true);
    noise_interop(v, &prologue, false);
}

/// Runs the spec peer against a real `Node`: the node is the responder when
/// `node_responds`, else the initiator.
fn noise_interop(v: &Value, prologue: &[u8], node_responds: bool) {
    let (spec_side, node_side) = if node_responds {
        (field(v, "initiator"), field(v, "responder"))
    } else {
        (field(v, "responder"), field(v, "initiator"))
    };
    let node_hello = hello_from_json(field(node_side, "hello"));
    let config = Config {
        listen_addrs: node_hello.listen_addrs.clone(),
        ..Config::default()
    };
    let now = Instant::ZERO;
    // The side's seed: it gives the run nonce of the side's `Hello`.
    let mut node = Node::new(
        config,
        Identity::from_secret_bytes(secret_of(node_side)),
        num(node_side, "seed"),
        now,
    )
    .expect("valid config");
    let remote = addr("192.0.2.9:5000");
    let conn = if node_responds {
        let conn = ConnId::inbound(0);
        node.handle_input(
            now,
            Input::Connected {
                conn,
                remote,
                direction: Direction::Inbound,
            },
        );
        conn
    } else {
        let Ok(ringmesh::Accepted::Dialing(conn)) = node.command(
            now,
            PeersCommand::Connect {
                addr: remote,
                peer: Some(Identity::from_secret_bytes(secret_of(spec_side)).node_id()),
            },
        ) else {
            panic!("dial refused");
        };
        drain(&mut node);
        node.handle_input(
            now,
            Input::Connected {
                conn,
                remote,
                direction: Direction::Outbound,
            },
        );
        conn
    };
    let mut from_node: Vec<u8> = sends(&drain(&mut node)).concat();
    let feed = |node: &mut Node, bytes: Vec<u8>| -> Vec<Output> {
        node.handle_input(
            now,
            Input::Received {
                conn,
                bytes: Bytes::from(bytes),
            },
        );
        drain(node)
    };

    let mut spec = spec_handshake(spec_side, prologue, node_responds);
    let mut outputs;
    assert_eq!(&from_node[..PREAMBLE_LEN], prologue, "the node's preamble");
    from_node.drain(..PREAMBLE_LEN);
    if node_responds {
        assert!(from_node.is_empty(), "a responder sends only its preamble");
        // -> preamble, e
        let m1 = handshake_write(&mut spec, &[]);
        outputs = feed(&mut node, [prologue, &m1].concat());
        // <- e, ee, s, es, payload
        let (_, frames) = split_stream(&sends(&outputs).concat(), false);
        let [m2] = &frames[..] else {
            panic!("expected message 2, got {} frames", frames.len())
        };
        let payload = handshake_read(&mut spec, m2);
        let remote = spec.get_remote_static().expect("s").to_vec();
        assert_eq!(hex::encode(&remote), text(node_side, "noise_static_public"));
        assert_eq!(spec_verify_payload(&payload, &remote), node_hello);
        // -> s, se, payload
        let m3 = handshake_write(&mut spec, &spec_payload(spec_side));
        outputs = feed(&mut node, m3);
    } else {
        // The node sent its preamble and message 1 together.
        let (_, frames) = split_stream(&from_node, false);
        let [m1] = &frames[..] else {
            panic!("expected message 1")
        };
        assert_eq!(m1.len(), 32, "e, empty payload");
        assert!(handshake_read(&mut spec, m1).is_empty());
        let m2 = handshake_write(&mut spec, &spec_payload(spec_side));
        outputs = feed(&mut node, [prologue, &m2].concat());
        let (_, frames) = split_stream(&sends(&outputs).concat(), false);
        let [m3] = &frames[..] else {
            panic!("expected message 3")
        };
        let payload = handshake_read(&mut spec, m3);
        let remote = spec.get_remote_static().expect("s").to_vec();
        assert_eq!(hex::encode(&remote), text(node_side, "noise_static_public"));
        assert_eq!(spec_verify_payload(&payload, &remote), node_hello);
    }
    let spec_id = Identity::from_secret_bytes(secret_of(spec_side)).node_id();
    assert!(
        events(&outputs).iter().any(|e| matches!(
            e,
            Event::Peers(PeersEvent::Established { peer, capabilities, .. })
                if *peer == spec_id && *capabilities == Capabilities::LZ4
        )),
        "node established with the spec peer: {outputs:?}"
    );
    let mut spec = spec.into_transport_mode().expect("transport");

    // Spec peer -> node: a small body and one spanning two chunks.
    for payload in [b"hello, node".to_vec(), noise_bytes(70_000)] {
        let mut body = BytesMut::new();
        encode_body(
            &Message::Direct(Direct {
                payload: Bytes::from(payload.clone()),
            }),
            None,
            &mut body,
        );
        outputs = feed(&mut node, spec_encrypt(&mut spec, &body));
        assert_eq!(
            events(&outputs),
            vec![Event::Messaging(MessagingEvent::Direct {
                from: spec_id,
                payload: Bytes::from(payload)
            })]
        );
    }
    // Node -> spec peer: incompressible, so sent plain, in two chunks.
    let payload = noise_bytes(70_000);
    node.command(
        now,
        MessagingCommand::Send {
            to: spec_id,
            payload: Bytes::from(payload.clone()),
        },
    )
    .expect("connected");
    let (_, frames) = split_stream(&sends(&drain(&mut node)).concat(), false);
    let [frame] = &frames[..] else {
        panic!("expected one frame")
    };
    assert_eq!(frame.len(), 2 + 70_000 + 2 * NOISE_TAG_LEN, "two chunks");
    let body = spec_decrypt(&mut spec, frame);
    assert_eq!(
        decode_body(Bytes::from(body), true, DEFAULT_MAX_FRAME_LEN),
        Ok((
            Message::Direct(Direct {
                payload: Bytes::from(payload)
            }),
            false
        ))
    );
}
