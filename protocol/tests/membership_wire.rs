//! The membership (`0x31`–`0x36`) and Plumtree (`0x37`–`0x39`) codecs:
//! every message round-trips byte for byte, every strict prefix is
//! refused, and arbitrary bytes after their tags never panic.

#[path = "support/round_trip.rs"]
mod support_round_trip;
use support_round_trip::{peer_entry, round_trip};

use bytes::Bytes;
use proptest::prelude::*;
use ringmesh::NodeId;
use ringmesh::wire::{
    Announcement, BroadcastId, Disconnect, ForwardJoin, Graft, IHave, Join, MAX_IHAVE, MAX_SHUFFLE,
    Message, Neighbor, Prune, Shuffle, ShuffleReply, decode_body,
};

fn broadcast_id() -> impl Strategy<Value = BroadcastId> {
    (any::<u128>(), any::<u64>(), any::<u64>()).prop_map(|(origin, run, seq)| BroadcastId {
        origin: NodeId::from_u128(origin),
        run,
        seq,
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Join(Join)),
        (peer_entry(), any::<u8>())
            .prop_map(|(joiner, ttl)| Message::ForwardJoin(ForwardJoin { joiner, ttl })),
        any::<bool>().prop_map(|high_priority| Message::Neighbor(Neighbor { high_priority })),
        Just(Message::Disconnect(Disconnect)),
        (
            peer_entry(),
            any::<u8>(),
            proptest::collection::vec(peer_entry(), 0..=MAX_SHUFFLE)
        )
            .prop_map(|(origin, ttl, entries)| Message::Shuffle(Shuffle {
                origin,
                ttl,
                entries
            })),
        proptest::collection::vec(peer_entry(), 0..=MAX_SHUFFLE)
            .prop_map(|entries| Message::ShuffleReply(ShuffleReply { entries })),
        proptest::collection::vec((broadcast_id(), any::<u8>()), 0..=MAX_IHAVE).prop_map(|a| {
            Message::IHave(IHave {
                announcements: a
                    .into_iter()
                    .map(|(id, hops)| Announcement { id, hops })
                    .collect(),
            })
        }),
        (any::<bool>(), broadcast_id()).prop_map(|(send, id)| Message::Graft(Graft { send, id })),
        Just(Message::Prune(Prune)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn membership_and_plumtree_messages_round_trip_byte_for_byte(
        msg in message(),
        compress in proptest::option::of(0usize..1024),
    ) {
        let (body, compressed) = round_trip(&msg, compress)?;
        if !compressed {
            for cut in 2..body.len() {
                prop_assert!(decode_body(body.slice(..cut), true, u32::MAX).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_membership_or_plumtree_tag_never_panic(
        tag in 0x31u8..=0x39,
        rest in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let body = [&[0u8, tag][..], &rest].concat();
        let _ = decode_body(Bytes::from(body), true, 1 << 20);
    }
}
