//! The codec property every message obeys, shared by the test binaries
//! that generate messages: encoding then decoding gives the message back,
//! and re-encoding gives the same bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringmesh::wire::{Message, decode_body, encode_body};

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
