//! The codec property every message obeys, shared by the test binaries
//! that generate messages: encoding then decoding gives the message back,
//! and re-encoding gives the same bytes. With the strategies for the fields
//! many messages share (addresses, peer entries).

use bytes::{Bytes, BytesMut};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use proptest::prelude::*;

use ringmesh::NodeId;
use ringmesh::wire::{MAX_LISTEN_ADDRS, Message, PeerEntry, decode_body, encode_body};
use smallvec::SmallVec;

/// Any IPv4 or IPv6 socket address.
pub(crate) fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

/// A peer entry: any id, 1 to `MAX_LISTEN_ADDRS` addresses.
#[allow(dead_code)] // not every test binary that includes this uses it
pub(crate) fn peer_entry() -> impl Strategy<Value = PeerEntry> {
    (
        any::<u128>(),
        proptest::collection::vec(socket_addr(), 1..=MAX_LISTEN_ADDRS),
    )
        .prop_map(|(id, addrs)| PeerEntry {
            id: NodeId::from_u128(id),
            addrs: SmallVec::from_vec(addrs),
        })
}

/// Checks the round trip of `msg` (compressed when `compress` says so and
/// it pays); returns the encoded body and whether it came out compressed.
pub(crate) fn round_trip(
    msg: &Message,
    compress: Option<usize>,
) -> Result<(Bytes, bool), TestCaseError> {
    let mut body = BytesMut::new();
    let compressed = encode_body(msg, compress, &mut body);
    let body = body.freeze();
    let (back, was_compressed) =
        decode_body(body.clone(), true, u32::MAX).expect("own encoding decodes");
    prop_assert_eq!(&back, msg);
    prop_assert_eq!(was_compressed, compressed);
    let mut again = BytesMut::new();
    encode_body(&back, compress, &mut again);
    prop_assert_eq!(&again[..], &body[..]);
    Ok((body, compressed))
}
