//! Length-prefixed frames and frame bodies (flags, tag, message).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{DecodeError, Message, Reader};

/// Length of the frame header: a big-endian `u32` counting the bytes after it.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Body flag: the message bytes are an LZ4 block prefixed by its
/// decompressed length (`u32`, little-endian).
pub const FLAG_COMPRESSED: u8 = 0x01;
const KNOWN_FLAGS: u8 = FLAG_COMPRESSED;
/// Length of the decompressed-size prefix of a compressed body.
const COMPRESSED_SIZE_LEN: usize = 4;

/// A frame the decoder refused. The connection cannot continue: the stream's
/// frame boundaries are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes exceeds the {max}-byte cap")]
pub struct FrameError {
    /// The length the header claimed.
    pub len: u32,
    /// The cap in force.
    pub max: u32,
}

/// The header of a frame of `len` bytes: `len` as a big-endian `u32`.
pub const fn frame_header(len: u32) -> [u8; LENGTH_PREFIX_LEN] {
    len.to_be_bytes()
}

/// Appends a frame header for a frame of `len` bytes.
pub fn put_frame_header(out: &mut BytesMut, len: u32) {
    out.put_slice(&frame_header(len));
}

/// Appends a whole plaintext frame: header, then the body of `message`
/// (see [`encode_body`] for `compress_over`), the length filled in last.
/// Returns whether the body was compressed.
pub fn encode_frame(message: &Message, compress_over: Option<usize>, out: &mut BytesMut) -> bool {
    let start = out.len();
    put_frame_header(out, 0);
    let compressed = encode_body(message, compress_over, out);
    let len = (out.len() - start - LENGTH_PREFIX_LEN) as u32;
    out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&frame_header(len));
    compressed
}

/// Splits a byte stream into frames.
///
/// The length field is checked against the cap as soon as its 4 bytes are
/// known, before any of the frame is buffered, so a peer claiming a 4 GiB
/// frame costs 4 bytes of memory. At most one incomplete frame is buffered.
/// A frame that arrives whole in one input is returned as a slice of that
/// input, without copying.
#[derive(Debug)]
pub struct FrameDecoder {
    partial: BytesMut,
    max_frame_len: u32,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame_len`.
    pub fn new(max_frame_len: u32) -> Self {
        FrameDecoder {
            partial: BytesMut::new(),
            max_frame_len,
        }
    }

    /// Changes the cap; applies from the next frame header on.
    pub fn set_max_frame_len(&mut self, max_frame_len: u32) {
        self.max_frame_len = max_frame_len;
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    fn check(&self, len: u32) -> Result<usize, FrameError> {
        if len > self.max_frame_len {
            Err(FrameError {
                len,
                max: self.max_frame_len,
            })
        } else {
            Ok(len as usize)
        }
    }

    /// Takes the next complete frame (without its header) from the bytes
    /// buffered so far plus `input`, consuming from `input` only what it
    /// needs. Returns `Ok(None)` once `input` is used up without completing
    /// a frame; the remainder is buffered.
    pub fn next_frame(&mut self, input: &mut Bytes) -> Result<Option<Bytes>, FrameError> {
        if self.partial.is_empty() {
            if input.len() >= LENGTH_PREFIX_LEN {
                let len =
                    self.check(u32::from_be_bytes([input[0], input[1], input[2], input[3]]))?;
                if input.len() >= LENGTH_PREFIX_LEN + len {
                    let mut frame = input.split_to(LENGTH_PREFIX_LEN + len);
                    frame.advance(LENGTH_PREFIX_LEN);
                    return Ok(Some(frame));
                }
            }
            // Fewer than a whole frame: everything left belongs to it, and if
            // the header is complete its length was checked above.
            self.partial.extend_from_slice(input);
            input.clear();
            return Ok(None);
        }
        if self.partial.len() < LENGTH_PREFIX_LEN {
            let take = (LENGTH_PREFIX_LEN - self.partial.len()).min(input.len());
            self.partial.extend_from_slice(&input.split_to(take));
            if self.partial.len() < LENGTH_PREFIX_LEN {
                return Ok(None);
            }
        }
        let p = &self.partial;
        let len = self.check(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))?;
        let total = LENGTH_PREFIX_LEN + len;
        let take = (total - self.partial.len()).min(input.len());
        self.partial.extend_from_slice(&input.split_to(take));
        if self.partial.len() < total {
            return Ok(None);
        }
        let mut frame = self.partial.split().freeze();
        frame.advance(LENGTH_PREFIX_LEN);
        Ok(Some(frame))
    }
}

/// Appends a frame body: `flags`, `tag`, then the message.
///
/// With `compress_over = Some(threshold)`, a message of at least `threshold`
/// bytes is LZ4-compressed, and kept compressed only if that makes the body
/// smaller. Returns whether it was compressed.
pub fn encode_body(message: &Message, compress_over: Option<usize>, out: &mut BytesMut) -> bool {
    let start = out.len();
    out.put_u8(0);
    out.put_u8(message.tag());
    message.encode(out);
    let body_start = start + 2;
    let Some(threshold) = compress_over else {
        return false;
    };
    let plain_len = out.len() - body_start;
    if plain_len < threshold || plain_len > u32::MAX as usize {
        return false;
    }
    let compressed = lz4_flex::block::compress(&out[body_start..]);
    if compressed.len() + COMPRESSED_SIZE_LEN >= plain_len {
        return false;
    }
    out.truncate(body_start);
    out.put_u32_le(plain_len as u32);
    out.extend_from_slice(&compressed);
    out[start] = FLAG_COMPRESSED;
    true
}

/// Decodes a frame body. `accept_compressed` is whether this side offered
/// compression; `max_len` caps the decompressed size (checked before the
/// output buffer is allocated). Returns the message and whether it came
/// compressed.
pub fn decode_body(
    body: Bytes,
    accept_compressed: bool,
    max_len: u32,
) -> Result<(Message, bool), DecodeError> {
    let mut reader = Reader::new(body);
    let flags = reader.u8().map_err(|_| DecodeError::ShortBody)?;
    let tag = reader.u8().map_err(|_| DecodeError::ShortBody)?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::ReservedFlags(flags & !KNOWN_FLAGS));
    }
    if flags & FLAG_COMPRESSED == 0 {
        return Message::decode(tag, &mut reader).map(|m| (m, false));
    }
    if !accept_compressed {
        return Err(DecodeError::CompressionNotNegotiated);
    }
    let plain_len = u32::from_le_bytes(reader.array()?);
    if plain_len > max_len {
        return Err(DecodeError::DecompressedTooLarge {
            len: u64::from(plain_len),
            max: max_len,
        });
    }
    let block = reader.rest();
    // LZ4 cannot expand a block by more than 255x; a claim beyond that is a
    // lie we can refuse before allocating for it.
    if u64::from(plain_len) > (block.len() as u64).saturating_mul(255) + 16 {
        return Err(DecodeError::BadCompression);
    }
    let mut plain = vec![0u8; plain_len as usize];
    let written = lz4_flex::block::decompress_into(&block, &mut plain)
        .map_err(|_| DecodeError::BadCompression)?;
    if written != plain.len() {
        return Err(DecodeError::BadCompression);
    }
    Message::decode(tag, &mut Reader::new(Bytes::from(plain))).map(|m| (m, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Direct;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn splits_frames_across_arbitrary_chunk_boundaries() {
        let mut stream = frame(b"first");
        stream.extend(frame(b""));
        stream.extend(frame(&[9u8; 300]));
        for chunk in [1, 2, 3, 5, 7, 64, 1000] {
            let mut decoder = FrameDecoder::new(1024);
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                let mut input = Bytes::copy_from_slice(piece);
                while let Some(f) = decoder.next_frame(&mut input).expect("valid") {
                    frames.push(f);
                }
                assert!(input.is_empty());
            }
            assert_eq!(frames.len(), 3, "chunk size {chunk}");
            assert_eq!(&frames[0][..], b"first");
            assert!(frames[1].is_empty());
            assert_eq!(&frames[2][..], &[9u8; 300][..]);
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn a_whole_frame_is_sliced_from_the_input_without_copying() {
        let input = Bytes::from(frame(b"zero copy"));
        let base = input.as_ptr() as usize;
        let mut input2 = input.clone();
        let f = FrameDecoder::new(64)
            .next_frame(&mut input2)
            .expect("valid")
            .expect("complete");
        assert_eq!(f.as_ptr() as usize, base + LENGTH_PREFIX_LEN);
    }

    #[test]
    fn refuses_an_oversized_length_before_buffering_it() {
        let mut decoder = FrameDecoder::new(16);
        let mut input = Bytes::from_static(&[0, 0, 0, 17, 1, 2, 3]);
        assert_eq!(
            decoder.next_frame(&mut input),
            Err(FrameError { len: 17, max: 16 })
        );
        // Header split across inputs: refused as soon as it is whole.
        let mut decoder = FrameDecoder::new(16);
        assert_eq!(
            decoder.next_frame(&mut Bytes::from_static(&[0xff, 0xff])),
            Ok(None)
        );
        assert_eq!(
            decoder.next_frame(&mut Bytes::from_static(&[0xff, 0xff, 0])),
            Err(FrameError {
                len: u32::MAX,
                max: 16
            })
        );
        assert!(decoder.buffered() <= LENGTH_PREFIX_LEN);
    }

    #[test]
    fn compressible_bodies_shrink_and_incompressible_ones_stay_plain() {
        let text = Message::Direct(Direct {
            payload: Bytes::from("ringmesh ".repeat(200)),
        });
        let mut out = BytesMut::new();
        assert!(encode_body(&text, Some(64), &mut out));
        assert!(out.len() < 1800 / 4, "compressed to {}", out.len());
        assert_eq!(out[0], FLAG_COMPRESSED);
        let (back, compressed) = decode_body(out.freeze(), true, 1 << 20).expect("valid");
        assert!(compressed);
        assert_eq!(back, text);

        // A xorshift stream: no repeats for LZ4 to find.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let noise = Message::Direct(Direct {
            payload: Bytes::from(noise),
        });
        let mut out = BytesMut::new();
        assert!(!encode_body(&noise, Some(64), &mut out));
        assert_eq!(out.len(), 2 + 2048);
        assert_eq!(out[0], 0);
    }

    #[test]
    fn compressed_body_is_refused_unless_negotiated_or_within_cap() {
        let text = Message::Direct(Direct {
            payload: Bytes::from(vec![b'a'; 4096]),
        });
        let mut out = BytesMut::new();
        assert!(encode_body(&text, Some(1), &mut out));
        let body = out.freeze();
        assert_eq!(
            decode_body(body.clone(), false, 1 << 20),
            Err(DecodeError::CompressionNotNegotiated)
        );
        assert!(matches!(
            decode_body(body, true, 1024),
            Err(DecodeError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn reserved_flags_and_short_bodies_are_refused() {
        assert_eq!(
            decode_body(Bytes::from_static(&[0x02, 0x40]), true, 64),
            Err(DecodeError::ReservedFlags(0x02))
        );
        assert_eq!(
            decode_body(Bytes::from_static(&[0x00]), true, 64),
            Err(DecodeError::ShortBody)
        );
        assert_eq!(
            decode_body(Bytes::from_static(&[0x00, 0xee]), true, 64),
            Err(DecodeError::UnknownTag(0xee))
        );
    }
}
