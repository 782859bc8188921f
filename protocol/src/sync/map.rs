//! The shallow map of [`SyncCommand::Merge`](crate::SyncCommand::Merge)
//! (py2p's `delta`): a value that holds a map of byte strings, in one
//! canonical encoding, so that the same map is always the same bytes.
//!
//! Layout: `count: varint`, then per item, keys strictly increasing,
//! `key_len: varint`, `key`, `value_len: varint`, `value`.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::{Reader, put_varint};

/// Encodes `map` as a sync value (see the module docs).
pub fn encode_sync_map(map: &BTreeMap<Bytes, Bytes>) -> Bytes {
    let mut out = BytesMut::new();
    put_varint(&mut out, map.len() as u64);
    for (key, value) in map {
        put_varint(&mut out, key.len() as u64);
        out.put_slice(key);
        put_varint(&mut out, value.len() as u64);
        out.put_slice(value);
    }
    out.freeze()
}

/// Decodes a sync value written by [`encode_sync_map`]; `None` if it is
/// not one (keys out of order, trailing bytes, a length past the end).
pub fn decode_sync_map(value: &Bytes) -> Option<BTreeMap<Bytes, Bytes>> {
    let mut input = Reader::new(value.clone());
    let count = input.varint().ok()?;
    let mut map = BTreeMap::new();
    let mut last: Option<Bytes> = None;
    for _ in 0..count {
        let len = input.varint().ok()?;
        let key = input.bytes(usize::try_from(len).ok()?).ok()?;
        let len = input.varint().ok()?;
        let item = input.bytes(usize::try_from(len).ok()?).ok()?;
        if last.as_ref().is_some_and(|last| *last >= key) {
            return None;
        }
        last = Some(key.clone());
        map.insert(key, item);
    }
    input.finish().ok()?;
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn maps_round_trip(map in proptest::collection::btree_map(
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
            0..8,
        )) {
            let bytes = encode_sync_map(&map);
            prop_assert_eq!(decode_sync_map(&bytes), Some(map));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = Bytes::from(bytes);
            if let Some(map) = decode_sync_map(&bytes) {
                prop_assert_eq!(encode_sync_map(&map), bytes);
            }
        }
    }
}
