//! Unsigned LEB128 varints (at most 10 bytes for a `u64`).
//!
//! Decoding accepts only the canonical (shortest) form, so that every value
//! has exactly one encoding and a decoded frame re-encodes byte for byte.

use bytes::BufMut;

use super::DecodeError;

/// Longest encoding of a `u64`.
pub const MAX_VARINT_LEN: usize = 10;

/// Bytes needed to encode `value`.
pub const fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` as a varint, in one write (a `BytesMut`'s `put_u8`
/// is a `put_slice` of one byte, a call to `memcpy` each).
pub fn put_varint(out: &mut impl BufMut, mut value: u64) {
    let mut bytes = [0u8; MAX_VARINT_LEN];
    let mut len = 0;
    while value >= 0x80 {
        bytes[len] = (value as u8) | 0x80;
        value >>= 7;
        len += 1;
    }
    bytes[len] = value as u8;
    out.put_slice(&bytes[..=len]);
}

/// Reads a varint from the front of `input`, returning it and its length.
pub fn get_varint(input: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(MAX_VARINT_LEN) {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(DecodeError::VarintOverflow);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            // A final zero byte after the first means a longer-than-needed
            // encoding of the same value.
            if byte == 0 && i > 0 {
                return Err(DecodeError::NonCanonicalVarint);
            }
            return Ok((value, i + 1));
        }
    }
    if input.len() >= MAX_VARINT_LEN {
        Err(DecodeError::VarintOverflow)
    } else {
        Err(DecodeError::UnexpectedEnd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "encode {value}");
            assert_eq!(
                get_varint(bytes),
                Ok((value, bytes.len())),
                "decode {value}"
            );
            assert_eq!(varint_len(value), bytes.len());
        }
    }

    #[test]
    fn rejects_overlong_overflowing_and_truncated() {
        assert_eq!(
            get_varint(&[0x80, 0x00]),
            Err(DecodeError::NonCanonicalVarint)
        );
        assert_eq!(
            get_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(get_varint(&[0x80; 11]), Err(DecodeError::VarintOverflow));
        assert_eq!(get_varint(&[0x80, 0x80]), Err(DecodeError::UnexpectedEnd));
        assert_eq!(get_varint(&[]), Err(DecodeError::UnexpectedEnd));
    }

    proptest! {
        #[test]
        fn round_trips(value: u64) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            prop_assert_eq!(get_varint(&out), Ok((value, out.len())));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = get_varint(&bytes);
        }
    }
}
