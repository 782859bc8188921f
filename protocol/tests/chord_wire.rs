//! The chord (`0x50`–`0x56`) and dht (`0x60`–`0x67`) codecs: every message
//! round-trips byte for byte, and arbitrary bytes after their tags never
//! panic. A node that does not run chord closes a peer that sends one with
//! `UnexpectedMessage` without disturbing its other connections; a ring
//! member takes any sequence of them from a peer without panicking, closing
//! or outgrowing its caps.

#[path = "support/round_trip.rs"]
mod support_round_trip;
use support_round_trip::{peer_entry, round_trip};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringmesh::testing::Network;
use ringmesh::wire::{
    ChordFindSuccessor, ChordFindSuccessorReply, ChordGetState, ChordNotify, ChordReplyKind,
    ChordRoute, ChordRouteFound, ChordRouteKind, ChordRouteReply, ChordState, DhtBody, DhtEntry,
    DhtGet, DhtGetReply, DhtGetStatus, DhtKey, DhtPut, DhtPutReply, DhtPutStatus, DhtReplicate,
    DhtReplicateAck, DhtReplicateStatus, DhtSync, DhtSyncItem, DhtSyncReply, DhtValue,
    GoodbyeReason, MAX_CHORD_LIST, MAX_DHT_BATCH, MAX_DHT_DIGEST, MAX_DHT_KEY, Message, PeerEntry,
    decode_body, encode_body, put_frame_header,
};
use ringmesh::{
    ChordCommand, ChordConfig, ChordEvent, CloseReason, Config, ConnId, DhtConfig, Duration, Event,
    MessagingCommand, MessagingEvent, NodeId, PeersEvent, ProtocolError, PublicKey,
};

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<u128>().prop_map(NodeId::from_u128)
}

fn entries(max: usize) -> impl Strategy<Value = Vec<PeerEntry>> {
    proptest::collection::vec(peer_entry(), 0..=max)
}

fn bytes_up_to(min: usize, max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), min..=max).prop_map(Bytes::from)
}

fn key() -> impl Strategy<Value = DhtKey> {
    prop_oneof![
        bytes_up_to(1, MAX_DHT_KEY).prop_map(DhtKey::Open),
        (node_id(), bytes_up_to(1, MAX_DHT_KEY))
            .prop_map(|(owner, name)| DhtKey::Owned { owner, name }),
    ]
}

fn value() -> impl Strategy<Value = DhtValue> {
    prop_oneof![
        bytes_up_to(0, 600).prop_map(DhtValue::Value),
        Just(DhtValue::Tombstone),
    ]
}

fn body() -> impl Strategy<Value = DhtBody> {
    (1u64.., any::<[u8; 32]>(), value(), any::<[u8; 32]>()).prop_map(
        |(version, writer_key, value, half)| {
            // Any 64 bytes: the codec does not verify signatures.
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&half);
            signature[32..].copy_from_slice(&writer_key);
            DhtBody::with_signature(PublicKey::from_bytes(writer_key), version, value, signature)
        },
    )
}

fn chord_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<u64>().prop_map(|req| Message::ChordGetState(ChordGetState { req })),
        (
            any::<u64>(),
            any::<bool>(),
            proptest::option::of(peer_entry()),
            entries(MAX_CHORD_LIST)
        )
            .prop_map(
                |(req, member, pred, succs)| Message::ChordState(ChordState {
                    req,
                    member,
                    pred,
                    succs
                })
            ),
        Just(Message::ChordNotify(ChordNotify)),
        (any::<u64>(), any::<u128>())
            .prop_map(|(req, key)| Message::ChordFindSuccessor(ChordFindSuccessor { req, key })),
        (
            any::<u64>(),
            prop_oneof![
                Just(ChordReplyKind::Done),
                Just(ChordReplyKind::Next),
                Just(ChordReplyKind::NotInRing)
            ],
            entries(MAX_CHORD_LIST)
        )
            .prop_map(|(req, kind, entries)| Message::ChordFindSuccessorReply(
                ChordFindSuccessorReply { req, kind, entries }
            )),
        (
            any::<u64>(),
            any::<u128>(),
            any::<u8>(),
            proptest::option::of(node_id())
        )
            .prop_map(|(req, key, ttl, avoid)| Message::ChordRoute(ChordRoute {
                req,
                key,
                ttl,
                avoid
            })),
        (
            any::<u64>(),
            any::<u8>(),
            prop_oneof![
                (peer_entry(), entries(MAX_CHORD_LIST))
                    .prop_map(|(by, entries)| Ok(ChordRouteFound { by, entries })),
                Just(Err(ChordRouteKind::Failed)),
                Just(Err(ChordRouteKind::NotInRing)),
            ]
        )
            .prop_map(
                |(req, hops, result)| Message::ChordRouteReply(ChordRouteReply {
                    req,
                    hops,
                    result
                })
            ),
    ]
}

fn dht_message() -> impl Strategy<Value = Message> {
    let put_status = (0u8..=7).prop_map(|c| DhtPutStatus::from_code(c).expect("0..=7"));
    prop_oneof![
        (any::<u64>(), key(), body()).prop_map(|(req, key, body)| Message::DhtPut(DhtPut {
            req,
            entry: Box::new(DhtEntry { key, body }),
        })),
        (any::<u64>(), put_status, any::<u64>(), any::<u8>()).prop_map(
            |(req, status, version, holders)| Message::DhtPutReply(DhtPutReply {
                req,
                status,
                version: match status {
                    DhtPutStatus::Stale => version,
                    s if s.has_version() => version.max(1),
                    _ => 0,
                },
                holders,
            })
        ),
        (any::<u64>(), key()).prop_map(|(req, key)| Message::DhtGet(DhtGet { req, key })),
        (
            any::<u64>(),
            prop_oneof![
                body().prop_map(DhtGetStatus::Found),
                Just(DhtGetStatus::NotFound),
                Just(DhtGetStatus::NotInRing)
            ]
        )
            .prop_map(|(req, status)| Message::DhtGetReply(DhtGetReply { req, status })),
        (
            any::<u64>(),
            proptest::collection::vec(
                (key(), body()).prop_map(|(key, body)| DhtEntry { key, body }),
                1..=8
            )
        )
            .prop_map(|(req, entries)| Message::DhtReplicate(DhtReplicate { req, entries })),
        (
            any::<u64>(),
            prop_oneof![
                Just(DhtReplicateStatus::Ok),
                Just(DhtReplicateStatus::Full),
                Just(DhtReplicateStatus::NotInRing),
                Just(DhtReplicateStatus::Refused),
                (1u64..).prop_map(|held| DhtReplicateStatus::Stale { held }),
            ]
        )
            .prop_map(|(req, status)| Message::DhtReplicateAck(DhtReplicateAck { req, status })),
        (
            any::<u64>(),
            proptest::collection::vec(
                (any::<[u8; 32]>(), 1u64.., node_id(), any::<u64>()).prop_map(
                    |(kh, version, writer, tag)| DhtSyncItem {
                        kh,
                        version,
                        writer,
                        tag,
                    }
                ),
                1..=MAX_DHT_DIGEST
            )
        )
            .prop_map(|(req, items)| Message::DhtSync(DhtSync { req, items })),
        (
            any::<u64>(),
            proptest::collection::vec(any::<u64>(), 0..=MAX_DHT_DIGEST)
        )
            .prop_map(|(req, indices)| Message::DhtSyncReply(DhtSyncReply { req, indices })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chord_and_dht_messages_round_trip_byte_for_byte(
        msg in prop_oneof![chord_message(), dht_message()],
        compress in proptest::option::of(0usize..1024),
    ) {
        let (body, compressed) = round_trip(&msg, compress)?;
        // Every strict prefix of the message bytes is refused, not a panic.
        if !compressed {
            for cut in 2..body.len() {
                prop_assert!(decode_body(body.slice(..cut), true, u32::MAX).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_chord_or_dht_tag_never_panic(
        tag in prop_oneof![0x50u8..=0x56, 0x60u8..=0x67],
        rest in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let body = [&[0u8, tag][..], &rest].concat();
        let _ = decode_body(Bytes::from(body), true, 1 << 20);
    }
}

#[test]
fn caps_are_checked_before_items_are_read() {
    // count fields one over their cap, with no items behind them.
    for (tag, body, len, max) in [
        (0x51u8, vec![1, 1, 0, 33], 33, MAX_CHORD_LIST),
        (0x54, vec![1, 0, 33], 33, MAX_CHORD_LIST),
        (0x64, vec![1, 65], 65, MAX_DHT_BATCH),
        (0x66, vec![1, 0x81, 0x02], 257, MAX_DHT_DIGEST),
        (0x67, vec![1, 0x81, 0x02], 257, MAX_DHT_DIGEST),
    ] {
        let frame = [&[0u8, tag][..], &body].concat();
        assert_eq!(
            decode_body(Bytes::from(frame), true, 1 << 20),
            Err(ringmesh::wire::DecodeError::TooMany { len, max }),
            "tag {tag:#04x}"
        );
    }
}

fn frame_of(message: &Message) -> Bytes {
    let mut body = BytesMut::new();
    encode_body(message, None, &mut body);
    let mut frame = BytesMut::new();
    put_frame_header(&mut frame, u32::try_from(body.len()).expect("small"));
    frame.extend_from_slice(&body);
    frame.freeze()
}

fn closes(net: &Network, i: usize) -> Vec<(Option<NodeId>, CloseReason)> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Peers(PeersEvent::Closed { peer, reason, .. }) => Some((*peer, reason.clone())),
            _ => None,
        })
        .collect()
}

fn chord_config() -> Config {
    Config {
        chord: Some(ChordConfig {
            successors: 2,
            max_lookups: 4,
            ..ChordConfig::wan()
        }),
        dht: Some(DhtConfig {
            replicas: 2,
            max_entries: 16,
            max_bytes: 4096,
            ..DhtConfig::wan()
        }),
        ..Config::plaintext()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever valid chord and dht messages a peer sends (replies to
    /// requests never made, lists of strangers, entries for any key), a
    /// member neither panics nor closes the peer, its store stays within
    /// its caps, and the ring it belongs to still answers lookups.
    #[test]
    fn a_ring_member_takes_arbitrary_chord_and_dht_messages_in_its_stride(
        messages in proptest::collection::vec(prop_oneof![chord_message(), dht_message()], 1..24),
    ) {
        let mut net = Network::new(Duration::from_millis(1));
        for i in 0..4u8 {
            net.add_node(chord_config(), [i + 1; 32], u64::from(i)).expect("valid config");
        }
        let founders: Vec<PeerEntry> = (0..3)
            .map(|i| PeerEntry {
                id: net.node(i).node_id(),
                addrs: [Network::addr_of(i)].into_iter().collect(),
            })
            .collect();
        for i in 0..3 {
            let founders = founders.clone();
            net.command(i, ChordCommand::Found { founders }).expect("found");
        }
        // Node 3 (chord on, not a member) dials node 1: inbound 0 there.
        net.connect(3, 1).expect("dial");
        net.settle();
        let attacker = net.node(3).node_id();
        prop_assert!(net.node(1).is_connected(attacker));
        for message in &messages {
            net.inject(1, ConnId::inbound(0), frame_of(message));
        }
        net.settle();
        net.run_for(Duration::from_secs(30));
        prop_assert!(closes(&net, 1).iter().all(|(peer, _)| *peer != Some(attacker)));
        let usage = net.node(1).dht_usage();
        let (entries, bytes) = (usage.entries, usage.bytes);
        prop_assert!(entries <= 16 && bytes <= 4096);
        let pending = net.node(1).chord_pending();
        let (requests, lookups) = (pending.requests, pending.lookups);
        prop_assert!(lookups <= 4 && requests <= 64, "{requests} requests, {lookups} lookups");
        // The ring still works: a lookup from node 1 ends with a member.
        let key = NodeId::from_u128(1 << 100);
        net.command(1, ChordCommand::Lookup { key }).expect("lookup");
        net.settle();
        let members: Vec<NodeId> = (0..3).map(|i| net.node(i).node_id()).collect();
        let done = net.events_of(1).any(|e| matches!(e, Event::Chord(ChordEvent::LookupDone { owner, .. }) if members.contains(owner)));
        prop_assert!(done);
    }
}

/// The node does not run chord or the dht: a peer that sends one of their
/// messages is closed with `UnexpectedMessage` (and `Goodbye(2)`), and the
/// node's other connections carry on.
#[test]
fn a_chord_or_dht_message_closes_only_that_connection_with_unexpected_message() {
    let samples = [
        Message::ChordGetState(ChordGetState { req: 1 }),
        Message::ChordNotify(ChordNotify),
        Message::ChordFindSuccessor(ChordFindSuccessor { req: 2, key: 7 }),
        Message::DhtGet(DhtGet {
            req: 3,
            key: DhtKey::Open(Bytes::from_static(b"k")),
        }),
        Message::DhtSyncReply(DhtSyncReply {
            req: 4,
            indices: vec![0],
        }),
    ];
    for message in samples {
        let mut net = Network::new(Duration::from_millis(1));
        for i in 0..3u8 {
            net.add_node(Config::plaintext(), [i + 1; 32], u64::from(i))
                .expect("valid config");
        }
        let ids: Vec<NodeId> = (0..3).map(|i| net.node(i).node_id()).collect();
        // Node 0 dials node 1 first: on node 1 that is inbound connection 0.
        net.connect(0, 1).expect("dial");
        net.settle();
        net.connect(2, 1).expect("dial");
        net.settle();
        assert!(net.node(1).is_connected(ids[0]) && net.node(1).is_connected(ids[2]));

        net.inject(1, ConnId::inbound(0), frame_of(&message));
        net.settle();

        assert_eq!(
            closes(&net, 1),
            vec![(
                Some(ids[0]),
                CloseReason::Protocol(ProtocolError::UnexpectedMessage(message.name()))
            )],
            "{}",
            message.name()
        );
        assert!(
            closes(&net, 0).contains(&(
                Some(ids[1]),
                CloseReason::Goodbye(GoodbyeReason::ProtocolViolation)
            )),
            "{}: the sender hears Goodbye(ProtocolViolation): {:?}",
            message.name(),
            closes(&net, 0)
        );
        // The other connection is untouched and still carries traffic.
        assert!(net.node(1).is_connected(ids[2]), "{}", message.name());
        assert!(closes(&net, 2).is_empty());
        net.command(
            2,
            MessagingCommand::Send {
                to: ids[1],
                payload: Bytes::from_static(b"still here"),
            },
        )
        .expect("connected");
        net.settle();
        assert!(
            net.events_of(1).any(|e| matches!(
                e,
                Event::Messaging(MessagingEvent::Direct { from, payload }) if *from == ids[2] && payload[..] == b"still here"[..]
            )),
            "{}",
            message.name()
        );
    }
}
