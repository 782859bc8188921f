//! Writes the test vectors in `spec/vectors/` from this implementation.
//!
//! ```text
//! cargo run -p ringmesh --example gen_vectors
//! ```
//!
//! The vectors are checked by `protocol/tests/vectors.rs`; rerun this only
//! when the wire format changes on purpose, then review the diff by hand.
//! Invalid inputs are written out byte by byte here, not generated.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use ed25519_dalek::{Signer, SigningKey};
use ringmesh::testing::Network;
use ringmesh::wire::{
    Announcement, Broadcast, BroadcastId, Capabilities, ChordFindSuccessor,
    ChordFindSuccessorReply, ChordGetState, ChordNotify, ChordReplyKind, ChordRoute, ChordRouteAck,
    ChordRouteFound, ChordRouteKind, ChordRouteReply, ChordState, DEFAULT_MAX_FRAME_LEN, DhtBody,
    DhtEntry, DhtGet, DhtGetReply, DhtGetStatus, DhtKey, DhtPut, DhtPutReply, DhtPutStatus,
    DhtReplicate, DhtReplicateAck, DhtReplicateStatus, DhtSync, DhtSyncItem, DhtSyncReply,
    DhtValue, DialBack, DialBackResult, DialBackStatus, Direct, Disconnect, FindPeer, ForwardJoin,
    Goodbye, GoodbyeReason, Graft, Hello, HolePunch, HolePunchSync, IHave, Join, MAX_CHORD_LIST,
    MAX_DHT_KEY, MAX_LISTEN_ADDRS, MAX_PEER_LIST, Message, Neighbor, NoiseHandshakePayload,
    ObservedAddr, PROTOCOL_VERSION, PeerEntry, PeerList, PeerRequest, Ping, Pong, Preamble, Prune,
    RelayAddr, RelayAddrs, RelayClose, RelayConnect, RelayConnectResult, RelayData, RelayDeliver,
    RelayEnded, RelayIncoming, RelayReserve, RelayReserveResult, RelayStatus, Request, Response,
    Shuffle, ShuffleReply, dht_signed_bytes, encode_body, put_frame_header, put_varint,
};
use ringmesh::{
    Config, Duration, Identity, Instant, MessagingCommand, NOISE_PATTERN, Node, NodeId,
    PeersCommand, PublicKey, Security,
};

#[path = "../tests/support/fixed_resolver.rs"]
mod fixed_resolver;
use fixed_resolver::FixedResolver;

// ---------------------------------------------------------------- JSON out

/// A JSON value whose objects keep their keys in the order written.
enum J {
    Bool(bool),
    Num(u64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

fn s(text: impl Into<String>) -> J {
    J::Str(text.into())
}

fn n(value: u64) -> J {
    J::Num(value)
}

fn hx(bytes: impl AsRef<[u8]>) -> J {
    J::Str(hex::encode(bytes))
}

fn inline(j: &J) -> Option<String> {
    let mut out = String::new();
    match j {
        J::Bool(b) => write!(out, "{b}").ok()?,
        J::Num(v) => write!(out, "{v}").ok()?,
        J::Str(text) => out.push_str(&serde_json::to_string(text).ok()?),
        J::Arr(items) => {
            let parts: Option<Vec<String>> = items.iter().map(inline).collect();
            write!(out, "[{}]", parts?.join(", ")).ok()?;
        }
        J::Obj(fields) => {
            let parts: Option<Vec<String>> = fields
                .iter()
                .map(|(k, v)| inline(v).map(|v| format!("\"{k}\": {v}")))
                .collect();
            let parts = parts?;
            if parts.is_empty() {
                out.push_str("{}");
            } else {
                write!(out, "{{ {} }}", parts.join(", ")).ok()?;
            }
        }
    }
    // Long hex strings stay on their own line; short composites inline.
    let composite = matches!(j, J::Arr(_) | J::Obj(_));
    (!composite || out.len() <= 80).then_some(out)
}

fn render(j: &J, indent: usize, out: &mut String) {
    if let Some(text) = inline(j) {
        out.push_str(&text);
        return;
    }
    let pad = "  ".repeat(indent + 1);
    let end = "  ".repeat(indent);
    match j {
        J::Arr(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad);
                render(item, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&end);
            out.push(']');
        }
        J::Obj(fields) => {
            out.push_str("{\n");
            for (i, (k, v)) in fields.iter().enumerate() {
                out.push_str(&pad);
                write!(out, "\"{k}\": ").expect("write to String");
                render(v, indent + 1, out);
                out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
            }
            out.push_str(&end);
            out.push('}');
        }
        // Scalars always render inline.
        J::Bool(_) | J::Num(_) | J::Str(_) => {}
    }
}

fn write_file(name: &str, j: &J) {
    let mut text = String::new();
    render(j, 0, &mut text);
    text.push('\n');
    let path = format!("{}/../spec/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&path, text).expect("write vector file");
    println!("wrote {path}");
}

// ------------------------------------------------------------- identities

/// RFC 8032 §7.1 TEST 1 and TEST 2 secrets: their public keys can be checked
/// against the RFC.
const SECRET_A: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const SECRET_B: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
/// RFC 8032 §7.1 TEST 3.
const SECRET_C: &str = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";
const SECRET_ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const NOISE_STATIC_KDF_CONTEXT: &str = "ringmesh 2026 noise static key v1";
const NOISE_STATIC_SIGNATURE_CONTEXT: &[u8] = b"ringmesh noise static key v1:";

fn secret(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).expect("32-byte hex secret");
    out
}

fn public_key(text: &str) -> PublicKey {
    Identity::from_secret_bytes(secret(text)).public_key()
}

fn noise_static_secret(secret: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(NOISE_STATIC_KDF_CONTEXT, secret)
}

fn noise_static_public(static_secret: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*static_secret).to_bytes()
}

fn static_key_signature(secret: &[u8; 32]) -> [u8; 64] {
    let mut message = NOISE_STATIC_SIGNATURE_CONTEXT.to_vec();
    message.extend_from_slice(&noise_static_public(&noise_static_secret(secret)));
    SigningKey::from_bytes(secret).sign(&message).to_bytes()
}

fn identities() -> J {
    let entries = [
        ("rfc8032_test1", SECRET_A),
        ("rfc8032_test2", SECRET_B),
        ("rfc8032_test3", SECRET_C),
        ("all_zero_secret", SECRET_ZERO),
    ]
    .iter()
    .map(|&(name, text)| {
        let sk = secret(text);
        let identity = Identity::from_secret_bytes(sk);
        let static_secret = noise_static_secret(&sk);
        J::Obj(vec![
            ("name", s(name)),
            ("secret", s(text)),
            ("public_key", hx(identity.public_key().to_bytes())),
            ("node_id", s(identity.node_id().to_string())),
            ("noise_static_secret", hx(static_secret)),
            (
                "noise_static_public",
                hx(noise_static_public(&static_secret)),
            ),
            ("static_key_signature", hx(static_key_signature(&sk))),
        ])
    })
    .collect();
    J::Arr(entries)
}

// ----------------------------------------------------------------- frames

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter()
        .map(|a| a.parse().expect("socket address"))
        .collect()
}

fn hello(
    version: u8,
    identity: PublicKey,
    run_nonce: u64,
    capabilities: u64,
    max_frame_len: u32,
    listen: &[&str],
) -> Message {
    Message::Hello(Hello {
        version,
        identity,
        run_nonce,
        capabilities: Capabilities::from_bits(capabilities),
        max_frame_len,
        listen_addrs: addrs(listen).into_iter().collect(),
    })
}

fn message_json(message: &Message) -> J {
    match message {
        Message::Hello(h) => hello_json(h),
        Message::Goodbye(g) => J::Obj(vec![
            ("type", s("Goodbye")),
            ("reason", n(g.reason.code().into())),
        ]),
        Message::Direct(d) => J::Obj(vec![("type", s("Direct")), ("payload", hx(&d.payload))]),
        Message::PeerRequest(PeerRequest) => J::Obj(vec![("type", s("PeerRequest"))]),
        Message::PeerList(list) => J::Obj(vec![
            ("type", s("PeerList")),
            ("peers", entries_json(&list.peers)),
        ]),
        Message::FindPeer(f) => J::Obj(vec![
            ("type", s("FindPeer")),
            ("target", s(f.target.to_string())),
        ]),
        // u64 fields are decimal strings: JSON numbers lose precision above 2^53.
        Message::Ping(p) => J::Obj(vec![("type", s("Ping")), ("nonce", s(p.nonce.to_string()))]),
        Message::Pong(p) => J::Obj(vec![("type", s("Pong")), ("nonce", s(p.nonce.to_string()))]),
        Message::Broadcast(b) => J::Obj(vec![
            ("type", s("Broadcast")),
            ("origin", s(b.origin.to_string())),
            ("key", hx(b.key.to_bytes())),
            ("run", s(b.run.to_string())),
            ("seq", s(b.seq.to_string())),
            ("hops", n(b.hops.into())),
            ("signature", hx(b.signature)),
            ("payload", hx(&b.payload)),
            // What the signature covers (spec/mesh.md, "The signed
            // layout"), written out for implementers.
            (
                "signed",
                hx(broadcast_signed_bytes(b.origin, b.run, b.seq, &b.payload)),
            ),
        ]),
        Message::Request(r) => J::Obj(vec![
            ("type", s("Request")),
            ("id", s(r.id.to_string())),
            ("payload", hx(&r.payload)),
        ]),
        Message::ObservedAddr(o) => J::Obj(vec![
            ("type", s("ObservedAddr")),
            ("addr", s(o.addr.to_string())),
        ]),
        Message::DialBack(d) => J::Obj(vec![
            ("type", s("DialBack")),
            ("nonce", s(d.nonce.to_string())),
            ("port", n(d.port.into())),
        ]),
        Message::DialBackResult(r) => J::Obj(vec![
            ("type", s("DialBackResult")),
            ("nonce", s(r.nonce.to_string())),
            ("status", n(r.status as u64)),
        ]),
        Message::Response(r) => J::Obj(vec![
            ("type", s("Response")),
            ("id", s(r.id.to_string())),
            ("payload", hx(&r.payload)),
        ]),
        Message::RelayReserve(_) => J::Obj(vec![("type", s("RelayReserve"))]),
        Message::RelayReserveResult(r) => J::Obj(vec![
            ("type", s("RelayReserveResult")),
            ("status", n(r.status as u64)),
            ("ttl_secs", n(r.ttl_secs.into())),
        ]),
        Message::RelayConnect(c) => J::Obj(vec![
            ("type", s("RelayConnect")),
            ("req", s(c.req.to_string())),
            ("target", s(c.target.to_string())),
        ]),
        Message::RelayConnectResult(r) => J::Obj(vec![
            ("type", s("RelayConnectResult")),
            ("req", s(r.req.to_string())),
            ("circuit", s(r.circuit.to_string())),
            ("status", n(r.status as u64)),
        ]),
        Message::RelayIncoming(i) => J::Obj(vec![
            ("type", s("RelayIncoming")),
            ("circuit", s(i.circuit.to_string())),
            ("from", s(i.from.to_string())),
        ]),
        Message::RelayData(d) => J::Obj(vec![
            ("type", s("RelayData")),
            ("circuit", s(d.circuit.to_string())),
            ("data", hx(&d.data)),
        ]),
        Message::RelayDeliver(d) => J::Obj(vec![
            ("type", s("RelayDeliver")),
            ("circuit", s(d.circuit.to_string())),
            ("data", hx(&d.data)),
        ]),
        Message::RelayClose(c) => J::Obj(vec![
            ("type", s("RelayClose")),
            ("circuit", s(c.circuit.to_string())),
            ("reason", n(c.reason as u64)),
        ]),
        Message::RelayEnded(c) => J::Obj(vec![
            ("type", s("RelayEnded")),
            ("circuit", s(c.circuit.to_string())),
            ("reason", n(c.reason as u64)),
        ]),
        Message::HolePunch(h) => J::Obj(vec![
            ("type", s("HolePunch")),
            (
                "addrs",
                J::Arr(h.addrs.iter().map(|a| s(a.to_string())).collect()),
            ),
        ]),
        Message::HolePunchSync(_) => J::Obj(vec![("type", s("HolePunchSync"))]),
        Message::RelayAddrs(r) => J::Obj(vec![
            ("type", s("RelayAddrs")),
            (
                "addrs",
                J::Arr(
                    r.addrs
                        .iter()
                        .map(|a| {
                            J::Obj(vec![
                                ("node", s(a.node.to_string())),
                                ("relay", s(a.relay.to_string())),
                                ("relay_addr", s(a.relay_addr.to_string())),
                            ])
                        })
                        .collect(),
                ),
            ),
        ]),
        other => membership_json(other)
            .or_else(|| chord_json(other))
            .unwrap_or_else(|| dht_json(other)),
    }
}

fn broadcast_id_fields(id: &BroadcastId) -> Vec<(&'static str, J)> {
    vec![
        ("origin", s(id.origin.to_string())),
        ("run", s(id.run.to_string())),
        ("seq", s(id.seq.to_string())),
    ]
}

/// HyParView's and Plumtree's messages (`spec/membership.md`,
/// `spec/mesh.md`); `None` for any other.
fn membership_json(message: &Message) -> Option<J> {
    Some(match message {
        Message::Join(Join) => J::Obj(vec![("type", s("Join"))]),
        Message::ForwardJoin(m) => J::Obj(vec![
            ("type", s("ForwardJoin")),
            ("joiner", entry_json(&m.joiner)),
            ("ttl", n(m.ttl.into())),
        ]),
        Message::Neighbor(m) => J::Obj(vec![
            ("type", s("Neighbor")),
            ("high_priority", n(u8::from(m.high_priority).into())),
        ]),
        Message::Disconnect(Disconnect) => J::Obj(vec![("type", s("Disconnect"))]),
        Message::Shuffle(m) => J::Obj(vec![
            ("type", s("Shuffle")),
            ("origin", entry_json(&m.origin)),
            ("ttl", n(m.ttl.into())),
            ("entries", entries_json(&m.entries)),
        ]),
        Message::ShuffleReply(m) => J::Obj(vec![
            ("type", s("ShuffleReply")),
            ("entries", entries_json(&m.entries)),
        ]),
        Message::IHave(m) => J::Obj(vec![
            ("type", s("IHave")),
            (
                "announcements",
                J::Arr(
                    m.announcements
                        .iter()
                        .map(|a| {
                            let mut fields = broadcast_id_fields(&a.id);
                            fields.push(("hops", n(a.hops.into())));
                            J::Obj(fields)
                        })
                        .collect(),
                ),
            ),
        ]),
        Message::Graft(m) => {
            let mut fields = vec![("type", s("Graft")), ("send", n(u8::from(m.send).into()))];
            fields.extend(broadcast_id_fields(&m.id));
            J::Obj(fields)
        }
        Message::Prune(Prune) => J::Obj(vec![("type", s("Prune"))]),
        _ => return None,
    })
}

/// A `PeerList` entry, also a chord pointer: `{ id, addrs }`.
fn entry_json(entry: &PeerEntry) -> J {
    J::Obj(vec![
        ("id", s(entry.id.to_string())),
        (
            "addrs",
            J::Arr(entry.addrs.iter().map(|a| s(a.to_string())).collect()),
        ),
    ])
}

fn entries_json(entries: &[PeerEntry]) -> J {
    J::Arr(entries.iter().map(entry_json).collect())
}

/// The chord messages (`spec/chord.md` §8); `None` for any other.
fn chord_json(message: &Message) -> Option<J> {
    Some(match message {
        Message::ChordGetState(m) => J::Obj(vec![
            ("type", s("ChordGetState")),
            ("req", s(m.req.to_string())),
        ]),
        Message::ChordState(m) => {
            let mut fields = vec![
                ("type", s("ChordState")),
                ("req", s(m.req.to_string())),
                ("member", n(m.member.into())),
            ];
            // `pred` is absent when `has_pred` = 0.
            if let Some(pred) = &m.pred {
                fields.push(("pred", entry_json(pred)));
            }
            fields.push(("succs", entries_json(&m.succs)));
            J::Obj(fields)
        }
        Message::ChordNotify(ChordNotify) => J::Obj(vec![("type", s("ChordNotify"))]),
        Message::ChordFindSuccessor(m) => J::Obj(vec![
            ("type", s("ChordFindSuccessor")),
            ("req", s(m.req.to_string())),
            ("key", hx(m.key.to_be_bytes())),
        ]),
        Message::ChordFindSuccessorReply(m) => J::Obj(vec![
            ("type", s("ChordFindSuccessorReply")),
            ("req", s(m.req.to_string())),
            ("kind", n(m.kind.code().into())),
            ("entries", entries_json(&m.entries)),
        ]),
        Message::ChordRoute(m) => {
            let mut fields = vec![
                ("type", s("ChordRoute")),
                ("req", s(m.req.to_string())),
                ("key", hx(m.key.to_be_bytes())),
                ("ttl", n(m.ttl.into())),
            ];
            // `avoid` is absent when `has_avoid` = 0.
            if let Some(avoid) = m.avoid {
                fields.push(("avoid", hx(avoid.to_bytes())));
            }
            J::Obj(fields)
        }
        Message::ChordRouteAck(m) => J::Obj(vec![
            ("type", s("ChordRouteAck")),
            ("req", s(m.req.to_string())),
        ]),
        Message::ChordRouteReply(m) => {
            let mut fields = vec![
                ("type", s("ChordRouteReply")),
                ("req", s(m.req.to_string())),
                ("kind", n(m.kind().code().into())),
                ("hops", n(m.hops.into())),
            ];
            // `by` and `entries` only for Done.
            if let Ok(found) = &m.result {
                fields.push(("by", entry_json(&found.by)));
                fields.push(("entries", entries_json(&found.entries)));
            }
            J::Obj(fields)
        }
        _ => return None,
    })
}

/// `version`, `writer_key` (and the `writer` id it stands for, not on
/// the wire), `kind`, (for kind 0) `value`, and `signature` of a dht body.
fn body_fields(body: &DhtBody) -> Vec<(&'static str, J)> {
    let mut fields = vec![
        ("version", s(body.version.to_string())),
        ("writer_key", hx(body.writer_key.to_bytes())),
        ("writer", s(body.writer.to_string())),
        ("kind", n(body.value.kind().into())),
    ];
    if let DhtValue::Value(value) = &body.value {
        fields.push(("value", hx(value)));
    }
    fields.push(("signature", hx(body.signature)));
    fields
}

/// `mode`, (owned) `owner`, and `key` (the name) of a dht key.
fn key_fields(key: &DhtKey) -> Vec<(&'static str, J)> {
    let mut fields = vec![("mode", n(key.mode().into()))];
    if let Some(owner) = key.owner() {
        fields.push(("owner", s(owner.to_string())));
    }
    fields.push(("key", hx(key.name())));
    fields
}

/// The dht messages (`spec/chord.md` §10.6).
fn dht_json(message: &Message) -> J {
    match message {
        Message::DhtPut(m) => {
            let mut fields = vec![("type", s("DhtPut")), ("req", s(m.req.to_string()))];
            fields.extend(key_fields(&m.entry.key));
            fields.extend(body_fields(&m.entry.body));
            J::Obj(fields)
        }
        Message::DhtPutReply(m) => J::Obj(vec![
            ("type", s("DhtPutReply")),
            ("req", s(m.req.to_string())),
            ("status", n(m.status.code().into())),
            ("version", s(m.version.to_string())),
            ("holders", n(m.holders.into())),
        ]),
        Message::DhtGet(m) => {
            let mut fields = vec![("type", s("DhtGet")), ("req", s(m.req.to_string()))];
            fields.extend(key_fields(&m.key));
            J::Obj(fields)
        }
        Message::DhtGetReply(m) => {
            let mut fields = vec![
                ("type", s("DhtGetReply")),
                ("req", s(m.req.to_string())),
                ("status", n(m.status.code().into())),
            ];
            if let DhtGetStatus::Found(body) = &m.status {
                fields.push(("body", J::Obj(body_fields(body))));
            }
            J::Obj(fields)
        }
        Message::DhtReplicate(m) => J::Obj(vec![
            ("type", s("DhtReplicate")),
            ("req", s(m.req.to_string())),
            (
                "entries",
                J::Arr(
                    m.entries
                        .iter()
                        .map(|e| {
                            let mut fields = key_fields(&e.key);
                            fields.extend(body_fields(&e.body));
                            J::Obj(fields)
                        })
                        .collect(),
                ),
            ),
        ]),
        Message::DhtReplicateAck(m) => {
            let mut fields = vec![
                ("type", s("DhtReplicateAck")),
                ("req", s(m.req.to_string())),
                ("status", n(m.status.code().into())),
            ];
            if let DhtReplicateStatus::Stale { held } = m.status {
                fields.push(("held", s(held.to_string())));
            }
            J::Obj(fields)
        }
        Message::DhtSync(m) => J::Obj(vec![
            ("type", s("DhtSync")),
            ("req", s(m.req.to_string())),
            (
                "items",
                J::Arr(
                    m.items
                        .iter()
                        .map(|item| {
                            J::Obj(vec![
                                ("kh", hx(item.kh)),
                                ("version", s(item.version.to_string())),
                                ("writer", s(item.writer.to_string())),
                                ("tag", s(item.tag.to_string())),
                            ])
                        })
                        .collect(),
                ),
            ),
        ]),
        Message::DhtSyncReply(m) => J::Obj(vec![
            ("type", s("DhtSyncReply")),
            ("req", s(m.req.to_string())),
            (
                "indices",
                J::Arr(m.indices.iter().map(|i| s(i.to_string())).collect()),
            ),
        ]),
        other => panic!("no JSON form for {other:?}"),
    }
}

fn hello_json(h: &Hello) -> J {
    J::Obj(vec![
        ("type", s("Hello")),
        ("version", n(h.version.into())),
        ("identity", hx(h.identity.to_bytes())),
        // A decimal string, as `Ping.nonce`: a u64 JSON number loses
        // precision in some readers.
        ("run_nonce", s(h.run_nonce.to_string())),
        ("capabilities", n(h.capabilities.bits())),
        ("max_frame_len", n(h.max_frame_len.into())),
        (
            "listen_addrs",
            J::Arr(h.listen_addrs.iter().map(|a| s(a.to_string())).collect()),
        ),
    ])
}

/// A plaintext-mode frame: length prefix, then the body.
fn frame_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_frame_header(&mut out, u32::try_from(body.len()).expect("small body"));
    out.extend_from_slice(body);
    out.to_vec()
}

fn encode_frame(message: &Message, compress_over: Option<usize>) -> (Vec<u8>, bool) {
    let mut body = BytesMut::new();
    let compressed = encode_body(message, compress_over, &mut body);
    (frame_bytes(&body), compressed)
}

/// Bytes without repeats for LZ4 to find (xorshift64).
fn noise_bytes(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn direct(payload: impl Into<Bytes>) -> Message {
    Message::Direct(Direct {
        payload: payload.into(),
    })
}

fn node_id(secret_hex: &str) -> NodeId {
    Identity::from_secret_bytes(secret(secret_hex)).node_id()
}

fn peer(id: NodeId, listen: &[&str]) -> PeerEntry {
    PeerEntry {
        id,
        addrs: addrs(listen).into_iter().collect(),
    }
}

fn peer_list(peers: Vec<PeerEntry>) -> Message {
    Message::PeerList(PeerList { peers })
}

/// The bytes a broadcast's origin signs, written from spec/mesh.md (not
/// by the codec): the context string, origin, run and seq (u64
/// big-endian), the payload's length (u64 big-endian), the payload.
fn broadcast_signed_bytes(origin: NodeId, run: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = b"ringmesh broadcast v1:".to_vec();
    out.extend_from_slice(&origin.to_bytes());
    out.extend_from_slice(&run.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A broadcast signed by the fixed key `secret_hex`, as its origin sends
/// it with `hops` 1 and as relays pass it on (hops is not signed).
fn broadcast(secret_hex: &str, run: u64, seq: u64, hops: u8, payload: impl Into<Bytes>) -> Message {
    let identity = Identity::from_secret_bytes(secret(secret_hex));
    let payload = payload.into();
    let origin = identity.node_id();
    let signature = identity.sign(&broadcast_signed_bytes(origin, run, seq, &payload));
    Message::Broadcast(Broadcast {
        origin,
        key: identity.public_key(),
        run,
        seq,
        hops,
        signature,
        payload,
    })
}

fn request(id: u64, payload: impl Into<Bytes>) -> Message {
    Message::Request(Request {
        id,
        payload: payload.into(),
    })
}

fn response(id: u64, payload: impl Into<Bytes>) -> Message {
    Message::Response(Response {
        id,
        payload: payload.into(),
    })
}

/// Valid vectors of the overlay messages (tags `0x10`–`0x42` but `0x40`).
fn overlay_cases() -> Vec<(&'static str, Message, Option<usize>, &'static str)> {
    let (a, b, c) = (node_id(SECRET_A), node_id(SECRET_B), node_id(SECRET_C));
    let eight_addrs: Vec<String> = (0..MAX_LISTEN_ADDRS)
        .map(|i| format!("10.0.0.{}:{}", i + 1, 7000 + i))
        .collect();
    let eight_addrs: Vec<&str> = eight_addrs.iter().map(String::as_str).collect();
    let full_list = (0..MAX_PEER_LIST)
        .map(|i| {
            let id = NodeId::from_u128((i as u128 + 1) << 120 | 0xabcd);
            peer(id, &[&format!("192.0.2.{}:{}", i + 1, 7000 + i)])
        })
        .collect();
    vec![
        (
            "peer_request",
            Message::PeerRequest(PeerRequest),
            None,
            "no message bytes",
        ),
        (
            "peer_list_empty",
            peer_list(vec![]),
            None,
            "count 0: the answer to a FindPeer for an unknown node",
        ),
        (
            "peer_list_ipv4_and_ipv6",
            peer_list(vec![
                peer(a, &["127.0.0.1:7000"]),
                peer(b, &["[2001:db8::2]:7000"]),
            ]),
            None,
            "one entry with an IPv4 address, one with an IPv6 address",
        ),
        (
            "peer_list_entry_with_eight_addrs",
            peer_list(vec![
                peer(c, &eight_addrs),
                peer(a, &["[::ffff:192.0.2.1]:80", "10.1.2.3:65535"]),
            ]),
            None,
            "MAX_LISTEN_ADDRS = 8 addresses in one entry; an IPv4-mapped IPv6 address stays family 6",
        ),
        (
            "peer_list_32_entries",
            peer_list(full_list),
            None,
            "MAX_PEER_LIST = 32 entries",
        ),
        (
            "find_peer",
            Message::FindPeer(FindPeer { target: b }),
            None,
            "",
        ),
        (
            "find_peer_zero_id",
            Message::FindPeer(FindPeer {
                target: NodeId::from_u128(0),
            }),
            None,
            "any 16 bytes are an id",
        ),
        (
            "ping",
            Message::Ping(Ping {
                nonce: 0x0123_4567_89ab_cdef,
            }),
            None,
            "nonce: u64 big-endian, not a varint",
        ),
        (
            "ping_nonce_zero",
            Message::Ping(Ping { nonce: 0 }),
            None,
            "",
        ),
        (
            "pong",
            Message::Pong(Pong {
                nonce: 0x0123_4567_89ab_cdef,
            }),
            None,
            "the answer to vector ping",
        ),
        (
            "pong_nonce_max",
            Message::Pong(Pong { nonce: u64::MAX }),
            None,
            "",
        ),
        (
            "broadcast_small",
            broadcast(SECRET_A, 0x0123_4567_89ab_cdef, 1, 1, &b"hello"[..]),
            None,
            "as its origin sends it: hops 1; signed by rfc8032_test1 (identities.json)",
        ),
        (
            "broadcast_empty_payload_max_hops",
            broadcast(SECRET_B, 0, 300, 255, Bytes::new()),
            None,
            "seq 300 takes two varint bytes",
        ),
        (
            "join",
            Message::Join(Join),
            None,
            "no message bytes: the contact takes the joiner's addresses from its session",
        ),
        (
            "forward_join",
            Message::ForwardJoin(ForwardJoin {
                joiner: peer(a, &["127.0.0.1:7000"]),
                ttl: 6,
            }),
            None,
            "joiner as a PeerList entry, then ttl: u8",
        ),
        (
            "neighbor_high_priority",
            Message::Neighbor(Neighbor {
                high_priority: true,
            }),
            None,
            "",
        ),
        (
            "neighbor_low_priority",
            Message::Neighbor(Neighbor {
                high_priority: false,
            }),
            None,
            "",
        ),
        (
            "disconnect",
            Message::Disconnect(Disconnect),
            None,
            "no message bytes",
        ),
        (
            "shuffle",
            Message::Shuffle(Shuffle {
                origin: peer(a, &["127.0.0.1:7000"]),
                ttl: 6,
                entries: vec![
                    peer(b, &["[2001:db8::2]:7000"]),
                    peer(c, &["10.1.2.3:65535"]),
                ],
            }),
            None,
            "origin entry, ttl, then a PeerList-like count and entries",
        ),
        (
            "shuffle_reply_empty",
            Message::ShuffleReply(ShuffleReply { entries: vec![] }),
            None,
            "",
        ),
        (
            "ihave_two",
            Message::IHave(IHave {
                announcements: vec![
                    Announcement {
                        id: BroadcastId {
                            origin: a,
                            run: 0x0123_4567_89ab_cdef,
                            seq: 1,
                        },
                        hops: 1,
                    },
                    Announcement {
                        id: BroadcastId {
                            origin: b,
                            run: 0,
                            seq: 300,
                        },
                        hops: 9,
                    },
                ],
            }),
            None,
            "run: u64 big-endian, seq: varint (300 takes two bytes)",
        ),
        (
            "graft_send",
            Message::Graft(Graft {
                send: true,
                id: BroadcastId {
                    origin: c,
                    run: u64::MAX,
                    seq: u64::MAX,
                },
            }),
            None,
            "a missed broadcast: send it",
        ),
        (
            "graft_optimisation",
            Message::Graft(Graft {
                send: false,
                id: BroadcastId {
                    origin: a,
                    run: 7,
                    seq: 0,
                },
            }),
            None,
            "a shorter path: eager from now on, nothing to send",
        ),
        ("prune", Message::Prune(Prune), None, "no message bytes"),
        (
            "broadcast_large_seq",
            broadcast(SECRET_C, u64::MAX, u64::MAX, 7, &[0x00u8, 0xff][..]),
            None,
            "seq 2^64-1 takes ten varint bytes",
        ),
        (
            "broadcast_compressed",
            broadcast(
                SECRET_A,
                0x0123_4567_89ab_cdef,
                2,
                3,
                "ringmesh ".repeat(100),
            ),
            Some(512),
            "any message may be compressed, not only Direct",
        ),
        (
            "request_two_byte_id",
            request(300, &b"get"[..]),
            None,
            "id 300 = ac 02",
        ),
        ("request_empty_payload", request(0, Bytes::new()), None, ""),
        (
            "response_two_byte_id",
            response(300, &b"value"[..]),
            None,
            "the answer to vector request_two_byte_id",
        ),
        (
            "response_large_id",
            response(1 << 32, &[0x00u8, 0x01, 0x02][..]),
            None,
            "id 2^32 takes five varint bytes",
        ),
    ]
}

fn chord_state(req: u64, member: bool, pred: Option<PeerEntry>, succs: Vec<PeerEntry>) -> Message {
    Message::ChordState(ChordState {
        req,
        member,
        pred,
        succs,
    })
}

fn find_successor_reply(req: u64, kind: ChordReplyKind, entries: Vec<PeerEntry>) -> Message {
    Message::ChordFindSuccessorReply(ChordFindSuccessorReply { req, kind, entries })
}

/// Valid vectors of the chord messages (tags `0x50`–`0x54`).
fn chord_cases() -> Vec<(&'static str, Message, Option<usize>, &'static str)> {
    let (a, b, c) = (node_id(SECRET_A), node_id(SECRET_B), node_id(SECRET_C));
    let full_list = (0..MAX_CHORD_LIST)
        .map(|i| {
            let id = NodeId::from_u128((i as u128 + 1) << 120 | 0x5151);
            peer(id, &[&format!("198.51.100.{}:{}", i + 1, 7000 + i)])
        })
        .collect();
    vec![
        (
            "chord_get_state",
            Message::ChordGetState(ChordGetState { req: 1 }),
            None,
            "",
        ),
        (
            "chord_get_state_max_req",
            Message::ChordGetState(ChordGetState { req: u64::MAX }),
            None,
            "req 2^64-1 takes ten varint bytes",
        ),
        (
            "chord_state_member_with_pred",
            chord_state(
                7,
                true,
                Some(peer(a, &["127.0.0.1:7000"])),
                vec![
                    peer(b, &["127.0.0.2:7000", "[2001:db8::2]:7000"]),
                    peer(c, &["[2001:db8::3]:7000"]),
                ],
            ),
            None,
            "member 1, has_pred 1, two successors (entries as in PeerList)",
        ),
        (
            "chord_state_member_no_pred_32_succs",
            chord_state(300, true, None, full_list),
            None,
            "has_pred 0 (no pred entry follows); MAX_CHORD_LIST = 32 successors",
        ),
        (
            "chord_state_not_member",
            chord_state(2, false, None, vec![]),
            None,
            "what a non-member answers: member 0, no pred, no successors",
        ),
        (
            "chord_notify",
            Message::ChordNotify(ChordNotify),
            None,
            "no message bytes: the notifier is the session's peer",
        ),
        (
            "chord_find_successor",
            Message::ChordFindSuccessor(ChordFindSuccessor {
                req: 300,
                key: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            }),
            None,
            "key: 16 bytes, big-endian",
        ),
        (
            "chord_find_successor_key_max",
            Message::ChordFindSuccessor(ChordFindSuccessor {
                req: 0,
                key: u128::MAX,
            }),
            None,
            "",
        ),
        (
            "chord_find_successor_reply_done",
            find_successor_reply(
                300,
                ChordReplyKind::Done,
                vec![peer(b, &["127.0.0.2:7000"]), peer(c, &["127.0.0.3:7000"])],
            ),
            None,
            "kind 0 (Done): entries = the responder's successor list",
        ),
        (
            "chord_find_successor_reply_done_empty",
            find_successor_reply(1, ChordReplyKind::Done, vec![]),
            None,
            "kind 0 with no entries: the responder owns every key",
        ),
        (
            "chord_find_successor_reply_next",
            find_successor_reply(
                301,
                ChordReplyKind::Next,
                vec![
                    peer(c, &["[2001:db8::3]:7000", "10.0.0.3:7000"]),
                    peer(a, &["127.0.0.1:7000"]),
                ],
            ),
            None,
            "kind 1 (Next): closer candidates, closest to key first",
        ),
        (
            "chord_find_successor_reply_not_in_ring",
            find_successor_reply(302, ChordReplyKind::NotInRing, vec![]),
            None,
            "kind 2 (NotInRing), no entries",
        ),
        (
            "chord_route",
            Message::ChordRoute(ChordRoute {
                req: 300,
                key: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                ttl: 32,
                avoid: None,
            }),
            None,
            "key: 16 bytes, big-endian; ttl 32 forwards left; has_avoid 0",
        ),
        (
            "chord_route_avoid",
            Message::ChordRoute(ChordRoute {
                req: 7,
                key: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                ttl: 29,
                avoid: Some(b),
            }),
            None,
            "has_avoid 1, then the 16-byte id of the member found silent",
        ),
        (
            "chord_route_ttl_0",
            Message::ChordRoute(ChordRoute {
                req: 1,
                key: u128::MAX,
                ttl: 0,
                avoid: None,
            }),
            None,
            "ttl 0: the receiver answers or fails, never forwards",
        ),
        (
            "chord_route_ack",
            Message::ChordRouteAck(ChordRouteAck { req: 300 }),
            None,
            "req only: the hop holds ChordRoute 300 and forwarded it",
        ),
        (
            "chord_route_reply_done",
            Message::ChordRouteReply(ChordRouteReply {
                req: 300,
                hops: 5,
                result: Ok(ChordRouteFound {
                    by: peer(a, &["127.0.0.1:7000"]),
                    entries: vec![peer(b, &["127.0.0.2:7000"]), peer(c, &["127.0.0.3:7000"])],
                }),
            }),
            None,
            "kind 0 (Done), 5 hops: by (the answerer), then its successor list",
        ),
        (
            "chord_route_reply_done_empty",
            Message::ChordRouteReply(ChordRouteReply {
                req: 2,
                hops: 1,
                result: Ok(ChordRouteFound {
                    by: peer(a, &["127.0.0.1:7000"]),
                    entries: vec![],
                }),
            }),
            None,
            "kind 0 with no entries: by owns every key",
        ),
        (
            "chord_route_reply_failed",
            Message::ChordRouteReply(ChordRouteReply {
                req: 301,
                hops: 3,
                result: Err(ChordRouteKind::Failed),
            }),
            None,
            "kind 1 (Failed): nothing after hops",
        ),
        (
            "chord_route_reply_not_in_ring",
            Message::ChordRouteReply(ChordRouteReply {
                req: 302,
                hops: 0,
                result: Err(ChordRouteKind::NotInRing),
            }),
            None,
            "kind 2 (NotInRing): nothing after hops",
        ),
    ]
}

/// An open key.
fn open(name: &[u8]) -> DhtKey {
    DhtKey::Open(Bytes::copy_from_slice(name))
}

/// `secret`'s owned key `name`.
fn owned(secret_hex: &str, name: &[u8]) -> DhtKey {
    DhtKey::Owned {
        owner: node_id(secret_hex),
        name: Bytes::copy_from_slice(name),
    }
}

/// A body for `key` signed by the identity of `secret_hex`.
fn body(secret_hex: &str, key: &DhtKey, version: u64, value: Option<&[u8]>) -> DhtBody {
    let value = value.map_or(DhtValue::Tombstone, |v| {
        DhtValue::Value(Bytes::copy_from_slice(v))
    });
    DhtBody::signed(
        &Identity::from_secret_bytes(secret(secret_hex)),
        key,
        version,
        value,
    )
}

fn dht_put(req: u64, key: DhtKey, secret_hex: &str, version: u64, value: Option<&[u8]>) -> Message {
    let body = body(secret_hex, &key, version, value);
    Message::DhtPut(DhtPut {
        req,
        entry: Box::new(DhtEntry { key, body }),
    })
}

fn dht_put_reply(req: u64, status: DhtPutStatus, version: u64, holders: u8) -> Message {
    Message::DhtPutReply(DhtPutReply {
        req,
        status,
        version,
        holders,
    })
}

fn dht_get_reply(req: u64, status: DhtGetStatus) -> Message {
    Message::DhtGetReply(DhtGetReply { req, status })
}

fn dht_entry(key: DhtKey, secret_hex: &str, version: u64, value: Option<&[u8]>) -> DhtEntry {
    let body = body(secret_hex, &key, version, value);
    DhtEntry { key, body }
}

/// Valid vectors of the dht messages (tags `0x60`–`0x67`).
fn dht_cases() -> Vec<(&'static str, Message, Option<usize>, &'static str)> {
    let (a, b) = (SECRET_A, SECRET_B);
    let long_key: Vec<u8> = (0..MAX_DHT_KEY).map(|i| i as u8).collect();
    let repeated = "ringmesh ".repeat(100);
    vec![
        (
            "dht_put",
            dht_put(1, owned(a, b"color"), a, 1, Some(b"blue")),
            None,
            "an owned key (mode 1, the owner's id) signed by its owner: version 1, kind 0, value, signature",
        ),
        (
            "dht_put_empty_value",
            dht_put(2, open(b"k"), b, 3, Some(b"")),
            None,
            "an open key (mode 0) signed by B; an empty value is a value (kind 0), not a delete",
        ),
        (
            "dht_put_max_key",
            dht_put(3, open(&long_key), a, 1, Some(&[0xff])),
            None,
            "MAX_DHT_KEY = 256 bytes: key_len 80 02",
        ),
        (
            "dht_delete",
            dht_put(4, owned(a, b"color"), a, 2, None),
            None,
            "kind 1 (tombstone): no value_len or value, then the signature",
        ),
        (
            "dht_put_reply_ok",
            dht_put_reply(1, DhtPutStatus::Ok, 7, 2),
            None,
            "status 0 (Ok) carries the version written",
        ),
        (
            "dht_put_reply_incomplete",
            dht_put_reply(1, DhtPutStatus::Incomplete, 300, 1),
            None,
            "status 3 (Incomplete) carries the version; holders 1",
        ),
        (
            "dht_put_reply_not_owner",
            dht_put_reply(4, DhtPutStatus::NotOwner, 0, 0),
            None,
            "status 1: version 0",
        ),
        (
            "dht_put_reply_too_large",
            dht_put_reply(5, DhtPutStatus::TooLarge, 0, 0),
            None,
            "status 5",
        ),
        (
            "dht_put_reply_stale",
            dht_put_reply(6, DhtPutStatus::Stale, 41, 0),
            None,
            "status 6 (Stale) carries the version held",
        ),
        (
            "dht_put_reply_stale_nothing_held",
            dht_put_reply(7, DhtPutStatus::Stale, 0, 0),
            None,
            "status 6 with version 0: nothing held (an open key's first write must be version 1)",
        ),
        (
            "dht_put_reply_refused",
            dht_put_reply(8, DhtPutStatus::Refused, 0, 0),
            None,
            "status 7 (Refused): version 0",
        ),
        (
            "dht_put_reply_over_quota",
            dht_put_reply(9, DhtPutStatus::OverQuota, 0, 0),
            None,
            "status 8 (OverQuota), the largest: version 0",
        ),
        (
            "dht_get",
            Message::DhtGet(DhtGet {
                req: 9,
                key: owned(a, b"color"),
            }),
            None,
            "mode 1: owner, then the name",
        ),
        (
            "dht_get_reply_found_value",
            dht_get_reply(
                9,
                DhtGetStatus::Found(body(a, &owned(a, b"color"), 7, Some(b"blue"))),
            ),
            None,
            "status 0 then a body of A's key color: version, writer_key, kind 0, value_len, value, signature",
        ),
        (
            "dht_get_reply_found_tombstone",
            dht_get_reply(
                10,
                DhtGetStatus::Found(body(a, &owned(a, b"color"), 8, None)),
            ),
            None,
            "kind 1 (tombstone): no value_len or value",
        ),
        (
            "dht_get_reply_not_found",
            dht_get_reply(11, DhtGetStatus::NotFound),
            None,
            "status 1: no body",
        ),
        (
            "dht_get_reply_not_in_ring",
            dht_get_reply(12, DhtGetStatus::NotInRing),
            None,
            "status 2: no body",
        ),
        (
            "dht_replicate",
            Message::DhtReplicate(DhtReplicate {
                req: 20,
                entries: vec![
                    dht_entry(open(b"color"), b, 7, Some(b"blue")),
                    dht_entry(owned(a, b"shape"), a, u64::MAX, None),
                ],
            }),
            None,
            "an open value and an owned tombstone (version 2^64-1)",
        ),
        (
            "dht_replicate_compressed",
            Message::DhtReplicate(DhtReplicate {
                req: 21,
                entries: vec![dht_entry(open(b"text"), a, 1, Some(repeated.as_bytes()))],
            }),
            Some(512),
            "compressed like any other message",
        ),
        (
            "dht_replicate_ack_ok",
            Message::DhtReplicateAck(DhtReplicateAck {
                req: 20,
                status: DhtReplicateStatus::Ok,
            }),
            None,
            "",
        ),
        (
            "dht_replicate_ack_not_in_ring",
            Message::DhtReplicateAck(DhtReplicateAck {
                req: 21,
                status: DhtReplicateStatus::NotInRing,
            }),
            None,
            "status 2",
        ),
        (
            "dht_replicate_ack_refused",
            Message::DhtReplicateAck(DhtReplicateAck {
                req: 22,
                status: DhtReplicateStatus::Refused,
            }),
            None,
            "status 3",
        ),
        (
            "dht_replicate_ack_stale",
            Message::DhtReplicateAck(DhtReplicateAck {
                req: 23,
                status: DhtReplicateStatus::Stale { held: 300 },
            }),
            None,
            "status 4 then held (varint >= 1)",
        ),
        (
            "dht_sync",
            Message::DhtSync(DhtSync {
                req: 30,
                items: vec![
                    DhtSyncItem {
                        kh: open(b"color").hash(),
                        version: 7,
                        writer: node_id(b),
                        tag: 0x0123_4567_89ab_cdef,
                    },
                    DhtSyncItem {
                        kh: owned(a, b"shape").hash(),
                        version: 300,
                        writer: node_id(a),
                        tag: u64::MAX,
                    },
                ],
            }),
            None,
            "items: kh (32 bytes), version varint, writer, tag u64 big-endian",
        ),
        (
            "dht_sync_reply",
            Message::DhtSyncReply(DhtSyncReply {
                req: 30,
                indices: vec![0, 1, 300],
            }),
            None,
            "index 300 is past the sync's items: valid on the wire, ignored by the receiver",
        ),
        (
            "dht_sync_reply_empty",
            Message::DhtSyncReply(DhtSyncReply {
                req: 31,
                indices: vec![],
            }),
            None,
            "count 0: the receiver lacks nothing",
        ),
    ]
}

fn frames() -> J {
    let a = public_key(SECRET_A);
    let b = public_key(SECRET_B);
    let max = DEFAULT_MAX_FRAME_LEN;
    let mut cases: Vec<(&str, Message, Option<usize>, &str)> = vec![
        (
            "hello_no_addrs",
            hello(1, a, 0, 0, 1024, &[]),
            None,
            "run nonce 0, no capabilities, the smallest allowed frame cap, no listen address",
        ),
        (
            "hello_one_ipv4_addr",
            hello(1, a, 0x0123_4567_89ab_cdef, 1, max, &["127.0.0.1:7000"]),
            None,
            "LZ4 offered, default 16 MiB cap",
        ),
        (
            "hello_several_addrs_ipv4_and_ipv6",
            hello(
                1,
                b,
                u64::MAX,
                1,
                max,
                &[
                    "10.1.2.3:65535",
                    "[::1]:9",
                    "[2001:db8::7]:443",
                    "[::ffff:192.0.2.1]:80",
                ],
            ),
            None,
            "run nonce 2^64-1; an IPv4-mapped IPv6 address stays family 6",
        ),
        (
            "hello_eight_addrs_max_u32_frame_len",
            hello(
                1,
                b,
                0x8000_0000_0000_0001,
                1,
                u32::MAX,
                &[
                    "0.0.0.0:0",
                    "255.255.255.255:65535",
                    "192.168.1.1:1",
                    "[::]:0",
                    "[fe80::1]:7000",
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                    "127.0.0.1:7000",
                    "127.0.0.2:7001",
                ],
            ),
            None,
            "MAX_LISTEN_ADDRS = 8 addresses; max_frame_len = 2^32-1",
        ),
        (
            "hello_unknown_capability_bits",
            hello(1, a, 7, (1 << 40) | 0x81, 65_536, &["127.0.0.1:7000"]),
            None,
            "unknown capability bits are carried as sent (ignored by the receiver)",
        ),
        (
            "hello_version_2",
            hello(2, a, 7, 1, max, &[]),
            None,
            "the codec accepts any version; the session refuses it (VersionMismatch)",
        ),
    ];
    for code in [0u8, 1, 2, 3, 4, 5, 255] {
        let name = match GoodbyeReason::from_code(code) {
            GoodbyeReason::Normal => "goodbye_normal",
            GoodbyeReason::Shutdown => "goodbye_shutdown",
            GoodbyeReason::ProtocolViolation => "goodbye_protocol_violation",
            GoodbyeReason::TooManyConnections => "goodbye_too_many_connections",
            GoodbyeReason::Duplicate => "goodbye_duplicate",
            GoodbyeReason::Other(5) => "goodbye_unknown_code_5",
            GoodbyeReason::Other(_) => "goodbye_unknown_code_255",
        };
        let note = if code > 4 {
            "unknown codes decode and are kept as sent"
        } else {
            ""
        };
        cases.push((
            name,
            Message::Goodbye(Goodbye {
                reason: GoodbyeReason::from_code(code),
            }),
            None,
            note,
        ));
    }
    cases.extend([
        ("direct_empty", direct(Bytes::new()), None, ""),
        ("direct_small", direct(&b"hello"[..]), None, ""),
        (
            "direct_binary",
            direct(&[0x00u8, 0xff, 0x01, 0x80, 0x7f][..]),
            None,
            "",
        ),
        (
            "direct_compressed",
            direct("ringmesh ".repeat(100)),
            Some(512),
            "900 compressible bytes, threshold 512: sent compressed",
        ),
        (
            "direct_at_threshold_compressed",
            direct(vec![b'a'; 512]),
            Some(512),
            "a message of exactly the threshold is compressed",
        ),
        (
            "direct_under_threshold_plain",
            direct(vec![b'a'; 511]),
            Some(512),
            "one byte under the threshold: sent plain although compressible",
        ),
        (
            "direct_incompressible_plain",
            direct(noise_bytes(600, 0x2545_f491_4f6c_dd1d)),
            Some(512),
            "over the threshold but LZ4 does not make it smaller: sent plain",
        ),
    ]);
    cases.extend(overlay_cases());
    cases.extend(reach_cases());
    cases.extend(relay_cases());
    cases.extend(chord_cases());
    cases.extend(dht_cases());
    let mut out: Vec<J> = cases
        .into_iter()
        .map(|(name, message, compress_over, note)| {
            let (bytes, compressed) = encode_frame(&message, compress_over);
            let mut fields = vec![("name", s(name))];
            if !note.is_empty() {
                fields.push(("note", s(note)));
            }
            fields.extend([
                ("hex", hx(&bytes)),
                ("flags", n(u64::from(compressed))),
                ("tag", n(message.tag().into())),
            ]);
            if let Some(threshold) = compress_over {
                fields.push(("compress_threshold", n(threshold as u64)));
            }
            fields.push(("message", message_json(&message)));
            J::Obj(fields)
        })
        .collect();
    // A valid LZ4 block no sender would choose (it is not smaller): every
    // receiver that offered LZ4 must still accept it.
    let literal_block = [&[0x01u8, 0x40, 5, 0, 0, 0, 0x50][..], b"hello".as_slice()].concat();
    out.push(J::Obj(vec![
        ("name", s("direct_compressed_literals_only")),
        (
            "note",
            s("decode only: an LZ4 block of one literal run; senders would not produce it"),
        ),
        ("hex", hx(frame_bytes(&literal_block))),
        ("flags", n(1)),
        ("tag", n(0x40)),
        ("decode_only", J::Bool(true)),
        ("message", message_json(&direct(&b"hello"[..]))),
    ]));
    J::Arr(out)
}

// ---------------------------------------------------------------- varints

fn varints() -> J {
    let values: [u64; 24] = [
        0,
        1,
        127,
        128,
        255,
        300,
        16_383,
        16_384,
        (1 << 21) - 1,
        1 << 21,
        (1 << 28) - 1,
        1 << 28,
        u32::MAX as u64,
        1 << 32,
        1 << 35,
        1 << 42,
        1 << 49,
        (1 << 56) - 1,
        1 << 56,
        (1 << 63) - 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
        0x0123_4567_89ab_cdef,
    ];
    let valid = values
        .iter()
        .map(|&v| {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            J::Obj(vec![("value", s(v.to_string())), ("hex", hx(out))])
        })
        .collect();
    let invalid: Vec<(&str, &str, &str)> = vec![
        ("empty", "", "UnexpectedEnd"),
        ("truncated_after_continuation", "80", "UnexpectedEnd"),
        ("truncated_two_bytes", "ffff", "UnexpectedEnd"),
        (
            "truncated_nine_bytes",
            "808080808080808080",
            "UnexpectedEnd",
        ),
        ("zero_in_two_bytes", "8000", "NonCanonicalVarint"),
        ("127_in_two_bytes", "ff00", "NonCanonicalVarint"),
        ("one_in_four_bytes", "81808000", "NonCanonicalVarint"),
        (
            "zero_in_ten_bytes",
            "80808080808080808000",
            "NonCanonicalVarint",
        ),
        ("tenth_byte_2", "ffffffffffffffffff02", "VarintOverflow"),
        ("tenth_byte_7f", "ffffffffffffffffff7f", "VarintOverflow"),
        (
            "tenth_byte_has_continuation",
            "ffffffffffffffffff81",
            "VarintOverflow",
        ),
        (
            "ten_continuation_bytes",
            "80808080808080808080",
            "VarintOverflow",
        ),
        ("eleven_bytes", "8080808080808080808001", "VarintOverflow"),
    ];
    let invalid = invalid
        .into_iter()
        .map(|(name, hex, error)| {
            J::Obj(vec![
                ("name", s(name)),
                ("hex", s(hex)),
                ("error", s(error)),
            ])
        })
        .collect();
    J::Obj(vec![("valid", J::Arr(valid)), ("invalid", J::Arr(invalid))])
}

// --------------------------------------------------------- invalid frames

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.replace(' ', "")).expect("hex literal")
}

/// The hex of a plaintext frame around the body given in hex.
fn fr(body: &str) -> String {
    hex::encode(frame_bytes(&unhex(body)))
}

/// Valid vectors of the reach messages (tags `0x90`–`0x9f`).
fn reach_cases() -> Vec<(&'static str, Message, Option<usize>, &'static str)> {
    let observed = |addr: &str| {
        Message::ObservedAddr(ObservedAddr {
            addr: addr.parse().expect("addr"),
        })
    };
    vec![
        (
            "observed_addr_ipv4",
            observed("203.0.113.9:51000"),
            None,
            "the address the sender sees the receiver's connection come from",
        ),
        (
            "observed_addr_ipv6",
            observed("[2001:db8::9]:443"),
            None,
            "",
        ),
        (
            "dial_back",
            Message::DialBack(DialBack {
                nonce: 0x0123_4567_89ab_cdef,
                port: 4001,
            }),
            None,
            "dial me back at my IP as you see it, port 4001",
        ),
        (
            "dial_back_result_reached",
            Message::DialBackResult(DialBackResult {
                nonce: 0x0123_4567_89ab_cdef,
                status: DialBackStatus::Reached,
            }),
            None,
            "",
        ),
        (
            "dial_back_result_refused",
            Message::DialBackResult(DialBackResult {
                nonce: 7,
                status: DialBackStatus::Refused,
            }),
            None,
            "over the helper's limits",
        ),
    ]
}

/// Valid vectors of the relay messages (tags `0xa0`–`0xaf`).
fn relay_cases() -> Vec<(&'static str, Message, Option<usize>, &'static str)> {
    let target = node_id("0202020202020202020202020202020202020202020202020202020202020202");
    vec![
        (
            "relay_reserve",
            Message::RelayReserve(RelayReserve),
            None,
            "hold a reservation for me",
        ),
        (
            "relay_reserve_result_ok",
            Message::RelayReserveResult(RelayReserveResult {
                status: RelayStatus::Ok,
                ttl_secs: 3600,
            }),
            None,
            "held for an hour",
        ),
        (
            "relay_reserve_result_limit",
            Message::RelayReserveResult(RelayReserveResult {
                status: RelayStatus::ReservationLimit,
                ttl_secs: 0,
            }),
            None,
            "max_reservations reached",
        ),
        (
            "relay_connect",
            Message::RelayConnect(RelayConnect { req: 5, target }),
            None,
            "a circuit to the target, please",
        ),
        (
            "relay_connect_result_ok",
            Message::RelayConnectResult(RelayConnectResult {
                req: 5,
                circuit: 0x0123_4567_89ab_cdef,
                status: RelayStatus::Ok,
            }),
            None,
            "",
        ),
        (
            "relay_connect_result_no_reservation",
            Message::RelayConnectResult(RelayConnectResult {
                req: 6,
                circuit: 0,
                status: RelayStatus::NoReservation,
            }),
            None,
            "",
        ),
        (
            "relay_incoming",
            Message::RelayIncoming(RelayIncoming {
                circuit: 0x0123_4567_89ab_cdef,
                from: target,
            }),
            None,
            "",
        ),
        (
            "relay_data",
            Message::RelayData(RelayData {
                circuit: 1,
                data: Bytes::from_static(b"RMSH\x03\x01"),
            }),
            None,
            "the end-to-end session's bytes, here its preamble",
        ),
        (
            "relay_deliver",
            Message::RelayDeliver(RelayDeliver {
                circuit: 1,
                data: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
            }),
            None,
            "",
        ),
        (
            "relay_close",
            Message::RelayClose(RelayClose {
                circuit: 1,
                reason: RelayStatus::Closed,
            }),
            None,
            "",
        ),
        (
            "relay_ended_byte_limit",
            Message::RelayEnded(RelayEnded {
                circuit: 1,
                reason: RelayStatus::ByteLimit,
            }),
            None,
            "the circuit carried circuit_bytes",
        ),
        (
            "hole_punch",
            Message::HolePunch(HolePunch {
                addrs: addrs(&["198.18.0.2:40001", "[2001:db8::2]:40001"]),
            }),
            None,
            "end to end on a relayed session: the sender's candidates",
        ),
        (
            "hole_punch_sync",
            Message::HolePunchSync(HolePunchSync),
            None,
            "",
        ),
        (
            "relay_addrs",
            Message::RelayAddrs(RelayAddrs {
                addrs: vec![
                    RelayAddr {
                        node: target,
                        relay: NodeId::from_u128(0x0101_0101_0101_0101_0101_0101_0101_0101),
                        relay_addr: addrs(&["198.18.0.1:7000"])[0],
                    },
                    RelayAddr {
                        node: target,
                        relay: NodeId::from_u128(0x0303_0303_0303_0303_0303_0303_0303_0303),
                        relay_addr: addrs(&["[2001:db8::3]:7000"])[0],
                    },
                ],
            }),
            None,
            "the target is reachable through circuits at two relays",
        ),
    ]
}

/// Name, body hex, the receiver's cap, whether it offered LZ4, error, detail.
type InvalidBody = (&'static str, String, u32, bool, &'static str, J);

/// Malformed overlay message bodies (flags 0, so the cap and LZ4 do not
/// matter).
fn overlay_invalid_cases() -> Vec<InvalidBody> {
    let id = node_id(SECRET_A).to_string();
    let key = hex::encode(public_key(SECRET_A).to_bytes());
    let sig = "00".repeat(64);
    let max = DEFAULT_MAX_FRAME_LEN;
    let cases: Vec<(&'static str, String, &'static str, J)> = vec![
        (
            "peer_request_trailing_byte",
            "00 10 00".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "peer_list_missing_count",
            "00 11".into(),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "peer_list_33_entries",
            "00 11 21".into(),
            "TooMany",
            J::Obj(vec![("len", n(33)), ("max", n(32))]),
        ),
        (
            "peer_list_huge_count",
            "00 11 c0843d".into(),
            "TooMany",
            J::Obj(vec![("len", n(1_000_000)), ("max", n(32))]),
        ),
        (
            "neighbor_flag_two",
            "00 33 02".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("high_priority")), ("value", n(2))]),
        ),
        (
            "join_trailing_byte",
            "00 31 00".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "forward_join_missing_ttl",
            format!("00 32 {id} 01 04 7f000001 1b58"),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "disconnect_trailing_byte",
            "00 34 01".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "shuffle_entry_without_addrs",
            format!("00 35 {id} 00"),
            "OutOfRange",
            J::Obj(vec![("field", s("addr_count")), ("value", n(0))]),
        ),
        (
            "graft_send_flag_three",
            "00 38 03".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("send")), ("value", n(3))]),
        ),
        (
            "ihave_65_announcements",
            "00 37 41".into(),
            "TooMany",
            J::Obj(vec![("len", n(65)), ("max", n(64))]),
        ),
        (
            "shuffle_reply_33_entries",
            "00 36 21".into(),
            "TooMany",
            J::Obj(vec![("len", n(33)), ("max", n(32))]),
        ),
        (
            "prune_trailing_byte",
            "00 39 00".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "peer_list_entry_without_addrs",
            format!("00 11 01 {id} 00"),
            "OutOfRange",
            J::Obj(vec![("field", s("addr_count")), ("value", n(0))]),
        ),
        (
            "peer_list_entry_nine_addrs",
            format!("00 11 01 {id} 09"),
            "TooMany",
            J::Obj(vec![("len", n(9)), ("max", n(8))]),
        ),
        (
            "peer_list_address_family_5",
            format!("00 11 01 {id} 01 05 7f000001 1b58"),
            "BadAddressFamily",
            J::Obj(vec![("family", n(5))]),
        ),
        (
            "peer_list_truncated_id",
            format!("00 11 01 {}", &id[..30]),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "peer_list_missing_entry",
            format!("00 11 02 {id} 01 04 7f000001 1b58"),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "peer_list_trailing_byte",
            format!("00 11 01 {id} 01 04 7f000001 1b58 00"),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "find_peer_truncated_target",
            format!("00 12 {}", &id[..30]),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "find_peer_trailing_bytes",
            format!("00 12 {id} 0000"),
            "TrailingBytes",
            J::Obj(vec![("count", n(2))]),
        ),
        (
            "ping_truncated_nonce",
            "00 20 01234567 89abcd".into(),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "pong_trailing_byte",
            "00 21 01234567 89abcdef 00".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "broadcast_zero_hops",
            format!("00 30 {id} {key} 0000000000000001 01 00 {sig} 68656c6c6f"),
            "OutOfRange",
            J::Obj(vec![("field", s("hops")), ("value", n(0))]),
        ),
        (
            "broadcast_missing_hops",
            format!("00 30 {id} {key} 0000000000000001 01"),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "broadcast_non_canonical_seq",
            format!("00 30 {id} {key} 0000000000000001 8100 01"),
            "NonCanonicalVarint",
            J::Obj(vec![]),
        ),
        (
            "request_missing_id",
            "00 41".into(),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "request_id_overflow",
            "00 41 ffffffffffffffffff02".into(),
            "VarintOverflow",
            J::Obj(vec![]),
        ),
        (
            "response_non_canonical_id",
            "00 42 ff00 68656c6c6f".into(),
            "NonCanonicalVarint",
            J::Obj(vec![]),
        ),
        (
            "observed_addr_family_5",
            "00 90 05 cb007109 c738".into(),
            "BadAddressFamily",
            J::Obj(vec![("family", n(5))]),
        ),
        (
            "observed_addr_truncated_ip",
            "00 90 04 cb00".into(),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "dial_back_port_0",
            "00 91 0123456789abcdef 0000".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("port")), ("value", n(0))]),
        ),
        (
            "dial_back_result_status_3",
            "00 92 0123456789abcdef 03".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("status")), ("value", n(3))]),
        ),
        (
            "relay_data_empty",
            "00 a5 0000000000000001".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("data")), ("value", n(0))]),
        ),
        (
            "relay_close_reason_ok",
            "00 a6 0000000000000001 00".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("reason")), ("value", n(0))]),
        ),
        (
            "hole_punch_no_addrs",
            "00 a9 00".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("addrs")), ("value", n(0))]),
        ),
        (
            "hole_punch_nine_addrs",
            "00 a9 09".into(),
            "TooMany",
            J::Obj(vec![("len", n(9)), ("max", n(8))]),
        ),
        (
            "relay_addrs_empty",
            "00 ab 00".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("addrs")), ("value", n(0))]),
        ),
        (
            "relay_addrs_33_entries",
            "00 ab 21".into(),
            "TooMany",
            J::Obj(vec![("len", n(33)), ("max", n(32))]),
        ),
        (
            "relay_addrs_truncated_relay",
            format!("00 ab 01 {} 0101", "02".repeat(16)),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hole_punch_sync_trailing_byte",
            "00 aa 00".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "relay_ended_reason_11",
            "00 a8 0000000000000001 0b".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("reason")), ("value", n(11))]),
        ),
        (
            "relay_reserve_trailing_byte",
            "00 a0 00".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "relay_connect_truncated_target",
            "00 a2 0000000000000005 0202".into(),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "relay_connect_result_status_11",
            "00 a3 0000000000000005 0000000000000000 0b".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("status")), ("value", n(11))]),
        ),
        (
            "relay_incoming_truncated_circuit",
            "00 a4 000000".into(),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "relay_deliver_empty",
            "00 a7 0000000000000001".into(),
            "OutOfRange",
            J::Obj(vec![("field", s("data")), ("value", n(0))]),
        ),
        (
            "relay_reserve_result_truncated",
            "00 a1 00 0000".into(),
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "observed_addr_trailing_byte",
            "00 90 04 cb007109 c738 00".into(),
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, body, error, detail)| (name, body, max, true, error, detail))
        .collect()
}

/// Malformed chord and dht message bodies (`spec/chord.md` §8, §10.6).
fn chord_dht_invalid_cases() -> Vec<InvalidBody> {
    let id = node_id(SECRET_A).to_string();
    let pk = hex::encode(public_key(SECRET_A).to_bytes());
    let sig = "5a".repeat(64);
    let entry = format!("{id} 01 04 7f000001 1b58");
    let kh = "ab".repeat(32);
    let max = DEFAULT_MAX_FRAME_LEN;
    let none = || J::Obj(vec![]);
    let range = |field: &str, value: u64| J::Obj(vec![("field", s(field)), ("value", n(value))]);
    let too_many = |len: u64, max: u64| J::Obj(vec![("len", n(len)), ("max", n(max))]);
    let trailing = |count: u64| J::Obj(vec![("count", n(count))]);
    let cases: Vec<(&'static str, String, &'static str, J)> = vec![
        // ------------------------------------------------------- chord
        (
            "chord_get_state_missing_req",
            "00 50".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_get_state_trailing_byte",
            "00 50 01 00".into(),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "chord_state_member_2",
            "00 51 01 02 00 00".into(),
            "OutOfRange",
            range("member", 2),
        ),
        (
            "chord_state_has_pred_2",
            format!("00 51 01 01 02 {entry} 00"),
            "OutOfRange",
            range("has_pred", 2),
        ),
        (
            "chord_state_missing_has_pred",
            "00 51 01 01".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_state_33_succs",
            "00 51 01 01 00 21".into(),
            "TooMany",
            too_many(33, 32),
        ),
        (
            "chord_state_huge_succ_count",
            "00 51 01 01 00 c0843d".into(),
            "TooMany",
            too_many(1_000_000, 32),
        ),
        (
            "chord_state_pred_without_addrs",
            format!("00 51 01 01 01 {id} 00 00"),
            "OutOfRange",
            range("addr_count", 0),
        ),
        (
            "chord_state_pred_nine_addrs",
            format!("00 51 01 01 01 {id} 09"),
            "TooMany",
            too_many(9, 8),
        ),
        (
            "chord_state_missing_pred",
            "00 51 01 01 01".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_state_succ_address_family_5",
            format!("00 51 01 01 00 01 {id} 01 05 7f000001 1b58"),
            "BadAddressFamily",
            J::Obj(vec![("family", n(5))]),
        ),
        (
            "chord_state_missing_succ_count",
            "00 51 01 01 00".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_state_missing_succ",
            format!("00 51 01 01 00 02 {entry}"),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_state_trailing_byte",
            format!("00 51 01 01 00 01 {entry} 00"),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "chord_notify_trailing_byte",
            "00 52 00".into(),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "chord_find_successor_truncated_key",
            format!("00 53 01 {}", &id[..30]),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_find_successor_non_canonical_req",
            format!("00 53 8000 {id}"),
            "NonCanonicalVarint",
            none(),
        ),
        (
            "chord_find_successor_trailing_byte",
            format!("00 53 01 {id} 00"),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "chord_find_successor_reply_kind_3",
            "00 54 01 03 00".into(),
            "OutOfRange",
            range("kind", 3),
        ),
        (
            "chord_find_successor_reply_missing_kind",
            "00 54 01".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_find_successor_reply_33_entries",
            "00 54 01 01 21".into(),
            "TooMany",
            too_many(33, 32),
        ),
        (
            "chord_find_successor_reply_address_family_0",
            format!("00 54 01 00 01 {id} 01 00 7f000001 1b58"),
            "BadAddressFamily",
            J::Obj(vec![("family", n(0))]),
        ),
        (
            "chord_find_successor_reply_truncated_ipv6",
            format!("00 54 01 01 01 {id} 01 06 20010db8"),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_find_successor_reply_trailing_bytes",
            "00 54 01 02 00 0000".into(),
            "TrailingBytes",
            trailing(2),
        ),
        (
            "chord_route_truncated_key",
            "00 55 01 0123456789".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_route_no_ttl",
            format!("00 55 01 {}", "00".repeat(16)),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_route_has_avoid_2",
            format!("00 55 01 {} 20 02", "00".repeat(16)),
            "OutOfRange",
            range("has_avoid", 2),
        ),
        (
            "chord_route_truncated_avoid",
            format!("00 55 01 {} 20 01 {}", "00".repeat(16), &id[..10]),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_route_reply_kind_3",
            "00 56 01 03 00".into(),
            "OutOfRange",
            range("kind", 3),
        ),
        (
            "chord_route_reply_done_without_by",
            "00 56 01 00 05".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "chord_route_reply_failed_with_entries",
            "00 56 01 01 03 00".into(),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "chord_route_reply_33_entries",
            format!("00 56 01 00 02 {entry} 21"),
            "TooMany",
            too_many(33, 32),
        ),
        // --------------------------------------------------------- dht
        (
            "dht_put_mode_2",
            "00 60 01 02 01 61".into(),
            "OutOfRange",
            range("mode", 2),
        ),
        (
            "dht_put_empty_key",
            "00 60 01 00 00".into(),
            "OutOfRange",
            range("key_len", 0),
        ),
        (
            "dht_put_key_257_bytes",
            "00 60 01 00 8102".into(),
            "OutOfRange",
            range("key_len", 257),
        ),
        (
            "dht_put_truncated_key",
            "00 60 01 00 05 6869".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_put_truncated_owner",
            format!("00 60 01 01 {}", &id[..20]),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_put_version_0",
            format!("00 60 01 00 01 61 00 {pk} 01 {sig}"),
            "OutOfRange",
            range("version", 0),
        ),
        (
            "dht_put_truncated_writer_key",
            format!("00 60 01 00 01 61 01 {}", &pk[..40]),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_put_kind_2",
            format!("00 60 01 00 01 61 01 {pk} 02"),
            "OutOfRange",
            range("kind", 2),
        ),
        (
            "dht_put_value_over_1_mib",
            format!("00 60 01 00 01 61 01 {pk} 00 818040"),
            "OutOfRange",
            range("value_len", 1_048_577),
        ),
        (
            "dht_put_truncated_value",
            format!("00 60 01 00 01 61 01 {pk} 00 05 6869"),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_put_missing_signature",
            format!("00 60 01 00 01 61 01 {pk} 01"),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_put_truncated_signature",
            format!("00 60 01 00 01 61 01 {pk} 01 {}", &sig[..126]),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_put_trailing_byte",
            format!("00 60 01 00 01 61 01 {pk} 01 {sig} 00"),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "dht_put_reply_status_9",
            "00 61 01 09 00 00".into(),
            "OutOfRange",
            range("status", 9),
        ),
        (
            "dht_put_reply_ok_version_0",
            "00 61 01 00 00 02".into(),
            "OutOfRange",
            range("version", 0),
        ),
        (
            "dht_put_reply_not_owner_with_version",
            "00 61 01 01 05 00".into(),
            "OutOfRange",
            range("version", 5),
        ),
        (
            "dht_put_reply_refused_with_version",
            "00 61 01 07 01 00".into(),
            "OutOfRange",
            range("version", 1),
        ),
        (
            "dht_put_reply_missing_holders",
            "00 61 01 00 07".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_get_missing_key",
            "00 62 01".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_get_mode_2",
            "00 62 01 02 01 61".into(),
            "OutOfRange",
            range("mode", 2),
        ),
        (
            "dht_get_key_huge",
            "00 62 01 00 ffffffffffffffffff01".into(),
            "OutOfRange",
            range("key_len", u64::MAX),
        ),
        (
            "dht_get_trailing_byte",
            "00 62 01 00 01 61 00".into(),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "dht_get_reply_status_3",
            "00 63 01 03".into(),
            "OutOfRange",
            range("status", 3),
        ),
        (
            "dht_get_reply_found_missing_body",
            "00 63 01 00".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_get_reply_found_version_0",
            format!("00 63 01 00 00 {pk} 01 {sig}"),
            "OutOfRange",
            range("version", 0),
        ),
        (
            "dht_get_reply_found_kind_2",
            format!("00 63 01 00 01 {pk} 02"),
            "OutOfRange",
            range("kind", 2),
        ),
        (
            "dht_get_reply_found_truncated_writer_key",
            format!("00 63 01 00 01 {}", &pk[..30]),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_get_reply_not_found_with_body",
            format!("00 63 01 01 01 {pk} 01 {sig}"),
            "TrailingBytes",
            trailing(98),
        ),
        (
            "dht_replicate_count_0",
            "00 64 01 00".into(),
            "OutOfRange",
            range("count", 0),
        ),
        (
            "dht_replicate_65_entries",
            "00 64 01 41".into(),
            "TooMany",
            too_many(65, 64),
        ),
        (
            "dht_replicate_huge_count",
            "00 64 01 ffffffff0f".into(),
            "TooMany",
            too_many(u32::MAX.into(), 64),
        ),
        (
            "dht_replicate_missing_entry",
            format!("00 64 01 02 00 01 61 01 {pk} 01 {sig}"),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_replicate_entry_value_over_1_mib",
            format!("00 64 01 01 00 01 61 01 {pk} 00 818040"),
            "OutOfRange",
            range("value_len", 1_048_577),
        ),
        (
            "dht_replicate_entry_empty_key",
            format!("00 64 01 01 00 00 01 {pk} 01 {sig}"),
            "OutOfRange",
            range("key_len", 0),
        ),
        (
            "dht_replicate_trailing_byte",
            format!("00 64 01 01 00 01 61 01 {pk} 01 {sig} 00"),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "dht_replicate_ack_status_5",
            "00 65 01 05".into(),
            "OutOfRange",
            range("status", 5),
        ),
        (
            "dht_replicate_ack_stale_held_0",
            "00 65 01 04 00".into(),
            "OutOfRange",
            range("version", 0),
        ),
        (
            "dht_replicate_ack_stale_missing_held",
            "00 65 01 04".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_replicate_ack_missing_status",
            "00 65 01".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_sync_count_0",
            "00 66 01 00".into(),
            "OutOfRange",
            range("count", 0),
        ),
        (
            "dht_sync_257_items",
            "00 66 01 8102".into(),
            "TooMany",
            too_many(257, 256),
        ),
        (
            "dht_sync_item_version_0",
            format!("00 66 01 01 {kh} 00 {id} 0000000000000001"),
            "OutOfRange",
            range("version", 0),
        ),
        (
            "dht_sync_truncated_tag",
            format!("00 66 01 01 {kh} 01 {id} 00000000000000"),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_sync_trailing_byte",
            format!("00 66 01 01 {kh} 01 {id} 0000000000000001 00"),
            "TrailingBytes",
            trailing(1),
        ),
        (
            "dht_sync_reply_257_indices",
            "00 67 01 8102".into(),
            "TooMany",
            too_many(257, 256),
        ),
        (
            "dht_sync_reply_missing_index",
            "00 67 01 02 00".into(),
            "UnexpectedEnd",
            none(),
        ),
        (
            "dht_sync_reply_index_overflow",
            "00 67 01 01 ffffffffffffffffff02".into(),
            "VarintOverflow",
            none(),
        ),
        (
            "dht_sync_reply_trailing_byte",
            "00 67 01 01 00 00".into(),
            "TrailingBytes",
            trailing(1),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, body, error, detail)| (name, body, max, true, error, detail))
        .collect()
}

/// The run nonce of the hand-written `Hello` bodies.
const RUN_NONCE_HEX: &str = "0011223344556677";

fn invalid_frames() -> J {
    let a = hex::encode(public_key(SECRET_A).to_bytes());
    let r = RUN_NONCE_HEX;
    // A valid Hello body: version 1, identity A, run nonce, LZ4, 16 MiB cap,
    // one address.
    let hello_body = format!("00 01 01 {a} {r} 01 80808008 01 04 7f000001 1b58");
    let (compressed_direct, compressed) = encode_frame(&direct("ringmesh ".repeat(100)), Some(512));
    assert!(compressed);
    let max = DEFAULT_MAX_FRAME_LEN;
    // (name, body hex, cap, accept_compressed, error, detail)
    let mut body_cases: Vec<InvalidBody> = vec![
        (
            "reserved_flag_bit_1",
            "02 40".into(),
            max,
            true,
            "ReservedFlags",
            J::Obj(vec![("flags", n(0x02))]),
        ),
        (
            "reserved_flag_bit_7_with_compressed",
            "81 40 05000000 50 68656c6c6f".into(),
            max,
            true,
            "ReservedFlags",
            J::Obj(vec![("flags", n(0x80))]),
        ),
        (
            "reserved_flags_checked_before_tag",
            "fe ee".into(),
            max,
            true,
            "ReservedFlags",
            J::Obj(vec![("flags", n(0xfe))]),
        ),
        (
            "unknown_tag_0x00",
            "00 00".into(),
            max,
            true,
            "UnknownTag",
            J::Obj(vec![("tag", n(0x00))]),
        ),
        (
            "unknown_tag_0xee",
            "00 ee 0102".into(),
            max,
            true,
            "UnknownTag",
            J::Obj(vec![("tag", n(0xee))]),
        ),
        (
            "empty_body",
            "".into(),
            max,
            true,
            "ShortBody",
            J::Obj(vec![]),
        ),
        (
            "one_byte_body",
            "00".into(),
            max,
            true,
            "ShortBody",
            J::Obj(vec![]),
        ),
        (
            "goodbye_missing_reason",
            "00 02".into(),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "goodbye_trailing_byte",
            "00 02 00 00".into(),
            max,
            true,
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "hello_trailing_bytes",
            format!("{hello_body} 0000"),
            max,
            true,
            "TrailingBytes",
            J::Obj(vec![("count", n(2))]),
        ),
        (
            "hello_missing_version",
            "00 01".into(),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_truncated_identity",
            format!("00 01 01 {}", &a[..32]),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_truncated_run_nonce",
            format!("00 01 01 {a} 00112233"),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_missing_capabilities",
            format!("00 01 01 {a} {r}"),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_missing_listen_count",
            format!("00 01 01 {a} {r} 01 80808008"),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_missing_address",
            format!("00 01 01 {a} {r} 01 80808008 02 04 7f000001 1b58"),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_missing_port",
            format!("00 01 01 {a} {r} 01 80808008 01 04 7f000001"),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_truncated_ipv6_address",
            format!("00 01 01 {a} {r} 01 80808008 01 06 00000000000000000000"),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "hello_address_family_0",
            format!("00 01 01 {a} {r} 01 80808008 01 00 7f000001 1b58"),
            max,
            true,
            "BadAddressFamily",
            J::Obj(vec![("family", n(0))]),
        ),
        (
            "hello_address_family_5",
            format!("00 01 01 {a} {r} 01 80808008 01 05 7f000001 1b58"),
            max,
            true,
            "BadAddressFamily",
            J::Obj(vec![("family", n(5))]),
        ),
        (
            "hello_nine_listen_addrs",
            format!("00 01 01 {a} {r} 01 80808008 09"),
            max,
            true,
            "TooMany",
            J::Obj(vec![("len", n(9)), ("max", n(8))]),
        ),
        (
            "hello_huge_listen_count",
            format!("00 01 01 {a} {r} 01 80808008 c0843d"),
            max,
            true,
            "TooMany",
            J::Obj(vec![("len", n(1_000_000)), ("max", n(8))]),
        ),
        (
            "hello_max_frame_len_over_u32",
            format!("00 01 01 {a} {r} 01 8080808010 00"),
            max,
            true,
            "OutOfRange",
            J::Obj(vec![("field", s("max_frame_len")), ("value", n(1 << 32))]),
        ),
        (
            "hello_non_canonical_capabilities",
            format!("00 01 01 {a} {r} 8100 80808008 00"),
            max,
            true,
            "NonCanonicalVarint",
            J::Obj(vec![]),
        ),
        (
            "hello_capabilities_overflow",
            format!("00 01 01 {a} {r} ffffffffffffffffff02 80808008 00"),
            max,
            true,
            "VarintOverflow",
            J::Obj(vec![]),
        ),
        (
            "compressed_not_negotiated",
            hex::encode(&compressed_direct[4..]),
            max,
            false,
            "CompressionNotNegotiated",
            J::Obj(vec![]),
        ),
        (
            "compressed_claims_over_default_cap",
            "01 40 01000001 00".into(),
            max,
            true,
            "DecompressedTooLarge",
            J::Obj(vec![("len", n(16_777_217)), ("max", n(max.into()))]),
        ),
        (
            "compressed_claims_over_receiver_cap",
            "01 40 01040000 50 68656c6c6f".into(),
            1024,
            true,
            "DecompressedTooLarge",
            J::Obj(vec![("len", n(1025)), ("max", n(1024))]),
        ),
        (
            "compressed_size_truncated",
            "01 40 0500".into(),
            max,
            true,
            "UnexpectedEnd",
            J::Obj(vec![]),
        ),
        (
            "compressed_ratio_impossible",
            "01 40 e8030000 00".into(),
            max,
            true,
            "BadCompression",
            J::Obj(vec![]),
        ),
        (
            "compressed_expands_short",
            "01 40 06000000 50 68656c6c6f".into(),
            max,
            true,
            "BadCompression",
            J::Obj(vec![]),
        ),
        (
            "compressed_expands_long",
            "01 40 04000000 50 68656c6c6f".into(),
            max,
            true,
            "BadCompression",
            J::Obj(vec![]),
        ),
        (
            "compressed_literals_run_past_block",
            "01 40 05000000 50 6865".into(),
            max,
            true,
            "BadCompression",
            J::Obj(vec![]),
        ),
        (
            "compressed_goodbye_trailing_byte",
            "01 02 02000000 20 0000".into(),
            max,
            true,
            "TrailingBytes",
            J::Obj(vec![("count", n(1))]),
        ),
        (
            "compressed_unknown_tag",
            "01 ee 05000000 50 68656c6c6f".into(),
            max,
            true,
            "UnknownTag",
            J::Obj(vec![("tag", n(0xee))]),
        ),
    ];
    body_cases.extend(overlay_invalid_cases());
    body_cases.extend(chord_dht_invalid_cases());
    let mut out: Vec<J> = body_cases
        .into_iter()
        .map(|(name, body, cap, accept, error, detail)| {
            J::Obj(vec![
                ("name", s(name)),
                ("hex", hx(frame_bytes(&unhex(&body)))),
                ("max_frame_len", n(cap.into())),
                ("accept_compressed", J::Bool(accept)),
                ("error", s(error)),
                ("error_detail", detail),
            ])
        })
        .collect();
    for (name, header, cap) in [
        ("frame_over_default_cap", "01000001", max),
        ("frame_over_handshake_cap", "00010000", 65_535),
        ("frame_length_u32_max", "ffffffff", max),
    ] {
        let len = u32::from_str_radix(header, 16).expect("hex u32");
        out.push(J::Obj(vec![
            ("name", s(name)),
            (
                "note",
                s("only the 4-byte header: refused before any of the frame arrives"),
            ),
            ("hex", s(header)),
            ("max_frame_len", n(cap.into())),
            ("accept_compressed", J::Bool(true)),
            ("error", s("FrameTooLarge")),
            (
                "error_detail",
                J::Obj(vec![("len", n(len.into())), ("max", n(cap.into()))]),
            ),
        ]));
    }
    J::Arr(out)
}

// ------------------------------------------------------ session refusals

/// Name, security mode, compression offered, input hex, error, error detail,
/// Goodbye code the node sends (if any).
type SessionCase = (
    &'static str,
    &'static str,
    bool,
    String,
    &'static str,
    J,
    Option<u64>,
);

fn session_errors() -> J {
    let a = hex::encode(public_key(SECRET_A).to_bytes());
    let r = RUN_NONCE_HEX;
    let plain = "524d5348 03 00";
    let noise = "524d5348 03 01";
    let hello = fr(&format!("00 01 03 {a} {r} 01 80808008 01 04 7f000001 1b58"));
    let hello_v4 = fr(&format!("00 01 04 {a} {r} 01 80808008 01 04 7f000001 1b58"));
    // (name, security, compression, input hex, error, detail, goodbye code)
    let cases: Vec<SessionCase> = vec![
        (
            "bad_magic",
            "plaintext",
            true,
            "524d5349 03 00".into(),
            "BadMagic",
            J::Obj(vec![]),
            None,
        ),
        (
            "preamble_version_4",
            "plaintext",
            true,
            "524d5348 04 00".into(),
            "VersionMismatch",
            J::Obj(vec![("ours", n(3)), ("theirs", n(4))]),
            None,
        ),
        (
            "plaintext_node_gets_noise_preamble",
            "plaintext",
            true,
            noise.into(),
            "SecurityMismatch",
            J::Obj(vec![("ours", n(0)), ("theirs", n(1))]),
            None,
        ),
        (
            "noise_node_gets_plaintext_preamble",
            "noise",
            true,
            format!("{plain} {hello}"),
            "SecurityMismatch",
            J::Obj(vec![("ours", n(1)), ("theirs", n(0))]),
            None,
        ),
        (
            "unknown_security_byte",
            "plaintext",
            true,
            "524d5348 03 02".into(),
            "SecurityMismatch",
            J::Obj(vec![("ours", n(0)), ("theirs", n(2))]),
            None,
        ),
        (
            "handshake_frame_over_65535",
            "plaintext",
            true,
            format!("{plain} 00010000"),
            "FrameTooLarge",
            J::Obj(vec![("len", n(65_536)), ("max", n(65_535))]),
            None,
        ),
        (
            "first_frame_not_hello",
            "plaintext",
            true,
            format!("{plain} {}", fr("00 02 00")),
            "UnexpectedMessage",
            J::Obj(vec![("message", s("Goodbye"))]),
            None,
        ),
        (
            "hello_version_4",
            "plaintext",
            true,
            format!("{plain} {hello_v4}"),
            "VersionMismatch",
            J::Obj(vec![("ours", n(3)), ("theirs", n(4))]),
            None,
        ),
        (
            "hello_max_frame_len_below_minimum",
            "plaintext",
            true,
            format!(
                "{plain} {}",
                fr(&format!("00 01 03 {a} {r} 01 ff07 01 04 7f000001 1b58"))
            ),
            "Decode",
            J::Obj(vec![("decode_error", s("OutOfRange"))]),
            None,
        ),
        (
            "compressed_hello",
            "plaintext",
            true,
            format!("{plain} {}", fr("01 01 05000000 50 68656c6c6f")),
            "Decode",
            J::Obj(vec![("decode_error", s("CompressionNotNegotiated"))]),
            None,
        ),
        (
            "malformed_hello",
            "plaintext",
            true,
            format!("{plain} {}", fr("00 01 01")),
            "Decode",
            J::Obj(vec![("decode_error", s("UnexpectedEnd"))]),
            None,
        ),
        (
            "second_hello",
            "plaintext",
            true,
            format!("{plain} {hello} {hello}"),
            "UnexpectedMessage",
            J::Obj(vec![("message", s("Hello"))]),
            Some(2),
        ),
        (
            "established_frame_over_cap",
            "plaintext",
            true,
            format!("{plain} {hello} 01000001"),
            "FrameTooLarge",
            J::Obj(vec![("len", n(16_777_217)), ("max", n(16_777_216))]),
            Some(2),
        ),
        (
            "established_reserved_flag",
            "plaintext",
            true,
            format!("{plain} {hello} {}", fr("02 40")),
            "Decode",
            J::Obj(vec![("decode_error", s("ReservedFlags"))]),
            Some(2),
        ),
        (
            "compressed_direct_to_node_without_lz4",
            "plaintext",
            false,
            format!("{plain} {hello} {}", fr("01 40 05000000 50 68656c6c6f")),
            "Decode",
            J::Obj(vec![("decode_error", s("CompressionNotNegotiated"))]),
            Some(2),
        ),
        (
            "compressed_direct_from_peer_that_did_not_offer_lz4",
            "plaintext",
            true,
            format!(
                "{plain} {} {}",
                fr(&format!("00 01 03 {a} {r} 00 80808008 01 04 7f000001 1b58")),
                fr("01 40 05000000 50 68656c6c6f")
            ),
            "Decode",
            J::Obj(vec![("decode_error", s("CompressionNotNegotiated"))]),
            Some(2),
        ),
        (
            "noise_message_1_with_payload",
            "noise",
            true,
            format!("{noise} {}", fr(&"09".repeat(33))),
            "HandshakeFailed",
            J::Obj(vec![]),
            None,
        ),
        (
            "noise_message_1_too_short",
            "noise",
            true,
            format!("{noise} {}", fr(&"09".repeat(16))),
            "HandshakeFailed",
            J::Obj(vec![]),
            None,
        ),
    ];
    let entries = cases
        .into_iter()
        .map(
            |(name, security, compression, input, error, detail, goodbye)| {
                let mut fields = vec![
                    ("name", s(name)),
                    ("security", s(security)),
                    ("compression", J::Bool(compression)),
                    ("input", hx(unhex(&input))),
                    ("error", s(error)),
                    ("error_detail", detail),
                ];
                fields.push(("goodbye", goodbye.map_or(J::Str("none".into()), J::Num)));
                J::Obj(fields)
            },
        )
        .collect();
    J::Arr(entries)
}

// ------------------------------------------------- plaintext handshake

fn hex_payload(text: &str) -> J {
    hx(text.as_bytes())
}

fn handshake_plaintext() -> J {
    let listen_a = ["127.0.0.1:7000"];
    let listen_b = ["127.0.0.2:7000", "[2001:db8::2]:7000"];
    let (seed_a, seed_b) = (1u64, 2u64);
    let config = |listen: &[&str]| Config {
        listen_addrs: addrs(listen).into_iter().collect(),
        ..Config::plaintext()
    };
    let mut net = Network::new(Duration::from_millis(5));
    net.record_sent(true);
    let ia = net
        .add_node(config(&listen_a), secret(SECRET_A), seed_a)
        .expect("valid config");
    let ib = net
        .add_node(config(&listen_b), secret(SECRET_B), seed_b)
        .expect("valid config");
    let (id_a, id_b) = (net.node(ia).node_id(), net.node(ib).node_id());
    let steps = vec![
        J::Obj(vec![("action", s("connect")), ("from", s("initiator"))]),
        J::Obj(vec![
            ("action", s("send")),
            ("from", s("initiator")),
            ("payload", hex_payload("hello from the initiator")),
        ]),
        J::Obj(vec![
            ("action", s("send")),
            ("from", s("responder")),
            ("payload", hex_payload("hello from the responder")),
        ]),
        J::Obj(vec![("action", s("disconnect")), ("from", s("initiator"))]),
    ];
    net.connect(ia, ib).expect("dial");
    net.settle();
    for (from, to, text) in [
        (ia, id_b, "hello from the initiator"),
        (ib, id_a, "hello from the responder"),
    ] {
        net.command(
            from,
            MessagingCommand::Send {
                to,
                payload: Bytes::from(text),
            },
        )
        .expect("connected");
        net.settle();
    }
    net.command(ia, PeersCommand::Disconnect { peer: id_b })
        .expect("connected");
    net.settle();
    let contents = [
        "preamble 524d5348 03 00, then the initiator's Hello frame",
        "preamble 524d5348 03 00, then the responder's Hello frame",
        "Direct frame",
        "Direct frame",
        "Goodbye frame, reason 0 (Normal)",
    ];
    assert_eq!(net.sent().len(), contents.len());
    let sent = net
        .sent()
        .iter()
        .zip(contents)
        .map(|(sent, what)| {
            J::Obj(vec![
                (
                    "from",
                    s(if sent.node == ia {
                        "initiator"
                    } else {
                        "responder"
                    }),
                ),
                ("contents", s(what)),
                ("hex", hx(&sent.bytes)),
            ])
        })
        .collect();
    let (nonce_a, nonce_b) = (net.node(ia).run_nonce(), net.node(ib).run_nonce());
    let side = |name: &str, text: &str, seed: u64, run_nonce: u64, listen: &[&str]| {
        let identity = Identity::from_secret_bytes(secret(text));
        let hello = Hello {
            version: PROTOCOL_VERSION,
            identity: identity.public_key(),
            run_nonce,
            capabilities: Capabilities::LZ4,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            listen_addrs: addrs(listen).into_iter().collect(),
        };
        J::Obj(vec![
            ("name", s(name)),
            ("secret", s(text)),
            ("public_key", hx(identity.public_key().to_bytes())),
            ("node_id", s(identity.node_id().to_string())),
            ("seed", n(seed)),
            (
                "listen_addrs",
                J::Arr(listen.iter().map(|a| s(*a)).collect()),
            ),
            ("hello", hello_json(&hello)),
        ])
    };
    J::Obj(vec![
        (
            "description",
            s(
                "Two nodes in plaintext mode (Config::plaintext(): LZ4 offered, threshold 512, \
               max_frame_len 16777216) with the listen addresses and seeds below (each \
               Hello's run_nonce is the first draw of the node's \"ringmesh rng v1 run\" \
               stream, spec/peers.md). The initiator dials \
               the responder; both send their preamble and Hello at once; then one Direct \
               each way; then the initiator disconnects. `sent` lists every Output::Send in \
               order: each entry is exactly the bytes one side wrote.",
            ),
        ),
        (
            "initiator",
            side("initiator", SECRET_A, seed_a, nonce_a, &listen_a),
        ),
        (
            "responder",
            side("responder", SECRET_B, seed_b, nonce_b, &listen_b),
        ),
        ("steps", J::Arr(steps)),
        ("sent", J::Arr(sent)),
    ])
}

// ---------------------------------------------------- noise handshake

const EPHEMERAL_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const EPHEMERAL_B: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

fn noise_frame(message: &[u8]) -> Vec<u8> {
    frame_bytes(message)
}

fn handshake_noise() -> J {
    let preamble = Preamble::new(PROTOCOL_VERSION, Security::Noise).to_bytes();
    let params: snow::params::NoiseParams = NOISE_PATTERN.parse().expect("pattern");
    let (sa, sb) = (secret(SECRET_A), secret(SECRET_B));
    let (ea, eb) = (secret(EPHEMERAL_A), secret(EPHEMERAL_B));
    let (nsa, nsb) = (noise_static_secret(&sa), noise_static_secret(&sb));
    let listen_a = ["127.0.0.1:7000"];
    let listen_b = ["127.0.0.2:7000"];
    // The nonce a node seeded with `seed` announces (the interop check runs
    // a real node with the side's seed).
    let (seed_a, seed_b) = (1u64, 2u64);
    let run_nonce = |sk: &[u8; 32], seed: u64| {
        let config = Config {
            listen_addrs: addrs(&["127.0.0.1:7000"]).into_iter().collect(),
            ..Config::default()
        };
        Node::new(
            config,
            Identity::from_secret_bytes(*sk),
            seed,
            Instant::ZERO,
        )
        .expect("valid config")
        .run_nonce()
    };
    let (nonce_a, nonce_b) = (run_nonce(&sa, seed_a), run_nonce(&sb, seed_b));
    let hello_of = |sk: &[u8; 32], listen: &[&str]| Hello {
        version: PROTOCOL_VERSION,
        identity: Identity::from_secret_bytes(*sk).public_key(),
        run_nonce: if *sk == sa { nonce_a } else { nonce_b },
        capabilities: Capabilities::LZ4,
        max_frame_len: DEFAULT_MAX_FRAME_LEN,
        listen_addrs: addrs(listen).into_iter().collect(),
    };
    let payload_of = |sk: &[u8; 32], listen: &[&str]| {
        let mut out = BytesMut::new();
        NoiseHandshakePayload {
            signature: static_key_signature(sk),
            hello: hello_of(sk, listen),
        }
        .encode(&mut out);
        out.to_vec()
    };
    let (payload_a, payload_b) = (payload_of(&sa, &listen_a), payload_of(&sb, &listen_b));
    let mut init = snow::Builder::with_resolver(params.clone(), Box::new(FixedResolver))
        .local_private_key(&nsa)
        .and_then(|b| b.prologue(&preamble))
        .expect("builder")
        .fixed_ephemeral_key_for_testing_only(&ea)
        .build_initiator()
        .expect("initiator");
    let mut resp = snow::Builder::with_resolver(params, Box::new(FixedResolver))
        .local_private_key(&nsb)
        .and_then(|b| b.prologue(&preamble))
        .expect("builder")
        .fixed_ephemeral_key_for_testing_only(&eb)
        .build_responder()
        .expect("responder");
    let mut buf = vec![0u8; 65_535];
    let mut scratch = vec![0u8; 65_535];
    let len = init.write_message(&[], &mut buf).expect("m1");
    let m1 = buf[..len].to_vec();
    assert_eq!(resp.read_message(&m1, &mut scratch).expect("m1"), 0);
    let len = resp.write_message(&payload_b, &mut buf).expect("m2");
    let m2 = buf[..len].to_vec();
    let got = init.read_message(&m2, &mut scratch).expect("m2");
    assert_eq!(scratch[..got], payload_b[..]);
    let len = init.write_message(&payload_a, &mut buf).expect("m3");
    let m3 = buf[..len].to_vec();
    let got = resp.read_message(&m3, &mut scratch).expect("m3");
    assert_eq!(scratch[..got], payload_a[..]);
    let hash = init.get_handshake_hash().to_vec();
    assert_eq!(hash, resp.get_handshake_hash());
    let mut init = init.into_transport_mode().expect("transport");
    let mut resp = resp.into_transport_mode().expect("transport");

    let mut transport = Vec::new();
    for (from, text) in [
        ("initiator", "hello from the initiator"),
        ("responder", "hello from the responder"),
    ] {
        let mut body = BytesMut::new();
        encode_body(&direct(Bytes::from(text)), Some(512), &mut body);
        let state = if from == "initiator" {
            &mut init
        } else {
            &mut resp
        };
        let len = state.write_message(&body, &mut buf).expect("transport");
        transport.push(J::Obj(vec![
            ("from", s(from)),
            ("body", hx(&body)),
            ("hex", hx(noise_frame(&buf[..len]))),
        ]));
    }

    let side = |name: &str, sk_text: &str, e_text: &str, listen: &[&str], payload: &[u8]| {
        let sk = secret(sk_text);
        let ns = noise_static_secret(&sk);
        J::Obj(vec![
            ("name", s(name)),
            ("secret", s(sk_text)),
            ("seed", n(if sk == sa { seed_a } else { seed_b })),
            (
                "public_key",
                hx(Identity::from_secret_bytes(sk).public_key().to_bytes()),
            ),
            (
                "node_id",
                s(Identity::from_secret_bytes(sk).node_id().to_string()),
            ),
            ("noise_static_secret", hx(ns)),
            ("noise_static_public", hx(noise_static_public(&ns))),
            ("ephemeral_secret", s(e_text)),
            ("hello", hello_json(&hello_of(&sk, listen))),
            ("handshake_payload", hx(payload)),
        ])
    };
    J::Obj(vec![
        (
            "description",
            s(
                "A Noise_XX_25519_ChaChaPoly_BLAKE2s handshake between two Security::Noise nodes \
               with fixed ephemeral keys (real nodes draw them from their seeded stream, so a \
               live handshake differs after message 1's key). Prologue = the 6-byte preamble. \
               `sent` lists each side's writes in order; then one Direct each way in transport \
               mode (one chunk each). Each side's seed gives the run_nonce of its Hello \
               (the interop check drives a real node with that seed).",
            ),
        ),
        ("protocol_name", s(NOISE_PATTERN)),
        ("prologue", hx(preamble)),
        (
            "initiator",
            side("initiator", SECRET_A, EPHEMERAL_A, &listen_a, &payload_a),
        ),
        (
            "responder",
            side("responder", SECRET_B, EPHEMERAL_B, &listen_b, &payload_b),
        ),
        (
            "sent",
            J::Arr(vec![
                J::Obj(vec![
                    ("from", s("initiator")),
                    ("contents", s("preamble, then message 1 (-> e) framed")),
                    ("hex", hx([&preamble[..], &noise_frame(&m1)].concat())),
                ]),
                J::Obj(vec![
                    ("from", s("responder")),
                    ("contents", s("preamble")),
                    ("hex", hx(preamble)),
                ]),
                J::Obj(vec![
                    ("from", s("responder")),
                    (
                        "contents",
                        s("message 2 (<- e, ee, s, es + responder payload) framed"),
                    ),
                    ("hex", hx(noise_frame(&m2))),
                ]),
                J::Obj(vec![
                    ("from", s("initiator")),
                    (
                        "contents",
                        s("message 3 (-> s, se + initiator payload) framed"),
                    ),
                    ("hex", hx(noise_frame(&m3))),
                ]),
            ]),
        ),
        ("handshake_hash", hx(hash)),
        ("transport", J::Arr(transport)),
    ])
}

/// A signed-entry vector: name, writer's secret, key, version, value
/// (`None`: a tombstone), note.
type SignedCase = (
    &'static str,
    &'static str,
    DhtKey,
    u64,
    Option<&'static [u8]>,
    &'static str,
);

/// Signed dht entries (`spec/chord.md` §10.1): the bytes a writer signs
/// and its signature, from the fixed identities.
fn dht_entries() -> J {
    let cases: [SignedCase; 5] = [
        (
            "owned_value",
            SECRET_A,
            owned(SECRET_A, b"color"),
            1,
            Some(b"blue"),
            "A writes its own key color",
        ),
        (
            "owned_tombstone",
            SECRET_A,
            owned(SECRET_A, b"color"),
            2,
            None,
            "A deletes it: kind 1, value_len 0",
        ),
        (
            "open_empty_value",
            SECRET_B,
            open(b"k"),
            3,
            Some(b""),
            "B writes the open key k: owner is 16 zero bytes",
        ),
        (
            "open_max_version",
            SECRET_C,
            open(b"pin"),
            u64::MAX,
            Some(b"x"),
            "signed, but a holder refuses it unless it holds a version within 2^24 below",
        ),
        (
            "owned_by_a_signed_by_b",
            SECRET_B,
            owned(SECRET_A, b"color"),
            9,
            Some(b"forged"),
            "a valid signature by B over A's key: every holder and reader refuses it (writer is not the owner)",
        ),
    ];
    J::Arr(
        cases
            .into_iter()
            .map(|(name, secret_hex, key, version, value, note)| {
                let body = body(secret_hex, &key, version, value);
                let mut fields = vec![("name", s(name)), ("secret", s(secret_hex))];
                fields.extend(key_fields(&key));
                fields.extend(body_fields(&body));
                fields.push(("kh", hx(key.hash())));
                fields.push((
                    "signed_bytes",
                    hx(dht_signed_bytes(&key, version, &body.value)),
                ));
                fields.push(("note", s(note)));
                J::Obj(fields)
            })
            .collect(),
    )
}

/// Signed sync-table entries (spec/sync.md §1.1) and one frame of each
/// sync message (§8).
fn sync_vectors() -> J {
    use ringmesh::wire::{
        SyncDigest, SyncEntry, SyncPublish, SyncPull, SyncRange, sync_key_hash, sync_signed_bytes,
    };
    type SyncCase = (
        &'static str,
        &'static str,
        &'static [u8],
        u64,
        Option<&'static [u8]>,
        &'static str,
    );
    let cases: [SyncCase; 3] = [
        (
            "value",
            SECRET_A,
            b"colour",
            1_764_672_000_000_000,
            Some(b"teal"),
            "A writes colour at 2025-12-02T10:40:00Z",
        ),
        (
            "tombstone",
            SECRET_A,
            b"colour",
            1_764_672_000_000_001,
            None,
            "A deletes it one microsecond later: kind 1, value_len 0 in the signed bytes, no value on the wire",
        ),
        (
            "empty_value",
            SECRET_B,
            b"k",
            0,
            Some(b""),
            "B writes an empty value at hlc 0",
        ),
    ];
    let entries: Vec<SyncEntry> = cases
        .iter()
        .map(|&(_, secret_hex, key, hlc, value, _)| {
            SyncEntry::signed(
                &Identity::from_secret_bytes(secret(secret_hex)),
                Bytes::from_static(key),
                hlc,
                value.map(Bytes::from_static),
            )
        })
        .collect();
    let entry_cases = cases
        .iter()
        .zip(&entries)
        .map(|(&(name, secret_hex, key, hlc, value, note), entry)| {
            let mut fields = vec![
                ("name", s(name)),
                ("secret", s(secret_hex)),
                ("key", hx(key)),
                ("hlc", s(hlc.to_string())),
                ("kind", n(u64::from(entry.kind()))),
            ];
            if let Some(value) = value {
                fields.push(("value", hx(value)));
            }
            fields.extend([
                ("writer_key", hx(entry.writer_key.to_bytes())),
                ("writer", hx(entry.writer.to_bytes())),
                ("signed_bytes", hx(sync_signed_bytes(key, hlc, value))),
                ("signature", hx(entry.signature)),
                ("fingerprint", s(entry.fingerprint().to_string())),
                ("kh", s(sync_key_hash(key).to_string())),
                ("note", s(note)),
            ]);
            J::Obj(fields)
        })
        .collect();
    let messages = [
        (
            "sync_publish_two",
            Message::SyncPublish(SyncPublish {
                entries: entries[..2].to_vec(),
            }),
            "the value and the tombstone of colour",
        ),
        (
            "sync_digest",
            Message::SyncDigest(SyncDigest {
                depth: 2,
                ranges: vec![
                    SyncRange {
                        prefix: 0,
                        digest: 0,
                        keys: 0,
                    },
                    SyncRange {
                        prefix: 255,
                        digest: entries[0].fingerprint(),
                        keys: 1,
                    },
                ],
            }),
            "two depth-2 ranges: an empty one, and one with colour's value",
        ),
        (
            "sync_pull",
            Message::SyncPull(SyncPull {
                depth: 16,
                prefixes: vec![0, u64::MAX],
            }),
            "the deepest ranges: the first and the last key hash",
        ),
    ];
    let frames = plain_frame_cases(messages);
    J::Obj(vec![
        ("entries", J::Arr(entry_cases)),
        ("frames", J::Arr(frames)),
    ])
}

/// One vector per message: its plaintext frame (no compression), tag and
/// note (the `frames` of `sync.json` and `blobs.json`).
fn plain_frame_cases<const N: usize>(messages: [(&str, Message, &str); N]) -> Vec<J> {
    messages
        .into_iter()
        .map(|(name, message, note)| {
            let (frame, _) = encode_frame(&message, None);
            J::Obj(vec![
                ("name", s(name)),
                ("tag", n(u64::from(message.tag()))),
                ("hex", hx(frame)),
                ("note", s(note)),
            ])
        })
        .collect()
}

// ------------------------------------------------------------------ blobs

/// spec/blobs.md §2 and §4: trees over inputs whose byte `i` is `i mod 251`
/// (the input of BLAKE3's own test vectors, so the roots can be checked
/// there), and one frame of each blob message.
fn blob_vectors() -> J {
    use ringmesh::blobs::Outboard;
    use ringmesh::wire::{BlobEnd, BlobEndStatus, BlobGet, BlobGroup, BlobHash};
    let input = |len: usize| (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    let trees = [0usize, 1, 16384, 16385, 50000, 81921]
        .into_iter()
        .map(|len| {
            let outboard = Outboard::compute(&input(len));
            let proofs = (0..outboard.groups())
                .map(|group| {
                    let proof = outboard.proof(group).expect("in range");
                    J::Arr(proof.iter().map(hx).collect())
                })
                .collect();
            J::Obj(vec![
                ("name", s(format!("len_{len}"))),
                ("len", n(len as u64)),
                ("hash", s(outboard.root().to_string())),
                ("groups", n(outboard.groups())),
                ("outboard", hx(outboard.as_bytes())),
                ("proofs", J::Arr(proofs)),
            ])
        })
        .collect();
    let two_groups = input(16385);
    let two_groups_tree = Outboard::compute(&two_groups);
    let end = |req, status| Message::BlobEnd(BlobEnd { req, status });
    let messages = [
        (
            "blob_get",
            Message::BlobGet(BlobGet {
                req: 7,
                hash: BlobHash::of(&input(50000)),
                last_first: true,
                ranges: [(0, 2), (3, 4)].into_iter().collect(),
            }),
            "req 7 asks len_50000 for its last group first, then groups 0-1 and 3",
        ),
        (
            "blob_group_single",
            Message::BlobGroup(BlobGroup {
                req: 7,
                len: 1,
                group: 0,
                proof: Vec::new(),
                data: Bytes::from(input(1)),
            }),
            "the whole of len_1: one group, no proof",
        ),
        (
            "blob_group_last",
            Message::BlobGroup(BlobGroup {
                req: 9,
                len: 16385,
                group: 1,
                proof: two_groups_tree.proof(1).expect("in range").into_vec(),
                data: Bytes::from(two_groups[16384..].to_vec()),
            }),
            "the last group of len_16385 (one byte) with its one-sibling proof: it proves the length",
        ),
        ("blob_end_done", end(7, BlobEndStatus::Done), "status 0"),
        (
            "blob_end_not_held",
            end(8, BlobEndStatus::NotHeld),
            "status 1",
        ),
        (
            "blob_end_busy",
            end(300, BlobEndStatus::Busy),
            "status 2, req as a two-byte varint",
        ),
    ];
    let frames = plain_frame_cases(messages);
    J::Obj(vec![
        (
            "input",
            s("byte i of every blob is i mod 251, as in BLAKE3's own test vectors"),
        ),
        ("trees", J::Arr(trees)),
        ("frames", J::Arr(frames)),
    ])
}

fn main() {
    write_file("blobs.json", &blob_vectors());
    write_file("sync.json", &sync_vectors());
    write_file("identities.json", &identities());
    write_file("dht_entries.json", &dht_entries());
    write_file("frames.json", &frames());
    write_file("varints.json", &varints());
    write_file("invalid_frames.json", &invalid_frames());
    write_file("session_errors.json", &session_errors());
    write_file("handshake_plaintext.json", &handshake_plaintext());
    write_file("handshake_noise.json", &handshake_noise());
}
