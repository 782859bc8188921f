//! Length-prefixed frames and frame bodies (flags, tag, message).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::varint::varint_len;
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
    // The header's room, the flags and the tag in one write (each write
    // to a `BytesMut` is a call to `memcpy`); the flags are set again if
    // the body is compressed.
    let [a, b, c, d] = frame_header(0);
    out.put_slice(&[a, b, c, d, 0, message.tag()]);
    let compressed = encode_body_after_tag(message, compress_over, out, start + LENGTH_PREFIX_LEN);
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
    reader: FrameReader,
    max_frame_len: u32,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame_len`.
    pub fn new(max_frame_len: u32) -> Self {
        FrameDecoder {
            reader: FrameReader::new(),
            max_frame_len,
        }
    }

    /// Changes the cap; applies from the next frame header on.
    pub fn set_max_frame_len(&mut self, max_frame_len: u32) {
        self.max_frame_len = max_frame_len;
    }

    /// Bytes held for an incomplete frame (its header included).
    pub fn buffered(&self) -> usize {
        self.reader.received()
    }

    /// Takes the next complete frame (without its header) from the bytes
    /// buffered so far plus `input`, consuming from `input` only what it
    /// needs. Returns `Ok(None)` once `input` is used up without completing
    /// a frame; the remainder is buffered.
    pub fn next_frame(&mut self, input: &mut Bytes) -> Result<Option<Bytes>, FrameError> {
        match self
            .reader
            .next_frame(input, self.max_frame_len, &mut Unlimited)?
        {
            Next::Frame(frame) => Ok(Some(frame)),
            Next::NeedMore => Ok(None),
            Next::OverBudget => unreachable!("an unlimited grant refuses nothing"),
        }
    }
}

/// Asks the receive budget for room. The session asks before it allocates
/// a partial frame's buffer or a decompressed payload.
pub(crate) trait Grant {
    /// Whether `bytes` more may be held; on `true` they are counted.
    fn try_grow(&mut self, bytes: usize) -> bool;
}

/// A budget that grants everything ([`FrameDecoder`], tests).
pub(crate) struct Unlimited;

impl Grant for Unlimited {
    fn try_grow(&mut self, _: usize) -> bool {
        true
    }
}

/// What [`FrameReader::next_frame`] got to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A complete frame body (without its length prefix).
    Frame(Bytes),
    /// The input is used up; what was left of it is kept.
    NeedMore,
    /// The partial frame needs more room than the budget grants; the input
    /// is left as it was (beyond what was consumed before).
    OverBudget,
}

/// Splits a byte stream into frames, holding a partial frame only within
/// what a [`Grant`] allows. The length prefix is checked against the cap
/// before any byte of the body is kept. A frame that arrives whole in one
/// read is sliced out of it without copying or holding anything. A partial
/// frame's buffer grows by doubling, never past the frame's length, and
/// every growth is asked of the grant first: it counts the buffer's
/// capacity, which is what the memory costs. Sessions use it with the
/// node's receive budget; [`FrameDecoder`] with no limit.
///
/// 8 bytes: a pointer. A frame under way (a partial header, or a header
/// and part of a body) lives in a side record, allocated only while one
/// is; a node holds a reader per connection (a chord member ~38), and
/// nearly all of them sit between frames, where the header and the empty
/// buffer inline took 40 bytes with the cap. The cap is the caller's, given
/// at every read (a session keeps it where it packs with its other
/// 32-bit fields).
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    /// The frame under way, if one is.
    partial: Option<Box<Partial>>,
}

/// A frame of which part has been received (see [`FrameReader`]).
#[derive(Debug)]
struct Partial {
    header: [u8; LENGTH_PREFIX_LEN],
    /// Bytes of `header` received so far (at most [`LENGTH_PREFIX_LEN`]).
    header_len: u8,
    /// The body of the frame under way; its capacity was granted.
    body: Vec<u8>,
}

impl Partial {
    fn new(header: [u8; LENGTH_PREFIX_LEN], header_len: u8) -> Box<Self> {
        Box::new(Partial {
            header,
            header_len,
            body: Vec::new(),
        })
    }
}

impl FrameReader {
    pub(crate) fn new() -> Self {
        FrameReader { partial: None }
    }

    /// Bytes of memory held for the frame under way (the body buffer's
    /// capacity; the 4-byte header is not counted, as it was not when it
    /// lived in the reader itself).
    pub(crate) fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.body.capacity())
    }

    /// Bytes of the frame under way received so far (header included).
    fn received(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |p| usize::from(p.header_len) + p.body.len())
    }

    /// Takes the next frame from what is kept plus `input`, consuming from
    /// `input` only what it uses, refusing a frame longer than
    /// `max_frame_len` (checked at every call, as soon as the header is
    /// known: a cap changed by the caller applies from the next call).
    pub(crate) fn next_frame(
        &mut self,
        input: &mut Bytes,
        max_frame_len: u32,
        grant: &mut dyn Grant,
    ) -> Result<Next, FrameError> {
        let check = |len: u32| {
            if len > max_frame_len {
                return Err(FrameError {
                    len,
                    max: max_frame_len,
                });
            }
            Ok(())
        };
        // The usual cases first, without copying a run-time number of
        // header bytes (a call to `memcpy`, even for none) or allocating:
        // nothing more to read, or a whole header at the front of the
        // input, and then often the whole frame.
        if self.partial.is_none() {
            if input.is_empty() {
                return Ok(Next::NeedMore);
            }
            if let Some(&header) = input.first_chunk::<LENGTH_PREFIX_LEN>() {
                input.advance(LENGTH_PREFIX_LEN);
                let len = u32::from_be_bytes(header);
                if let Err(error) = check(len) {
                    // Kept, so that a further call refuses it again.
                    self.partial = Some(Partial::new(header, LENGTH_PREFIX_LEN as u8));
                    return Err(error);
                }
                if input.len() >= len as usize {
                    return Ok(Next::Frame(input.split_to(len as usize)));
                }
                self.partial = Some(Partial::new(header, LENGTH_PREFIX_LEN as u8));
            } else {
                self.partial = Some(Partial::new([0; LENGTH_PREFIX_LEN], 0));
            }
        }
        let Some(partial) = self.partial.as_deref_mut() else {
            unreachable!("a frame is under way")
        };
        let header_len = usize::from(partial.header_len);
        if header_len < LENGTH_PREFIX_LEN {
            let take = (LENGTH_PREFIX_LEN - header_len).min(input.len());
            partial.header[header_len..header_len + take].copy_from_slice(&input[..take]);
            input.advance(take);
            partial.header_len += take as u8;
            if usize::from(partial.header_len) < LENGTH_PREFIX_LEN {
                return Ok(Next::NeedMore);
            }
        }
        let len = u32::from_be_bytes(partial.header);
        check(len)?;
        let len = len as usize;
        if partial.body.capacity() == 0 && input.len() >= len {
            self.partial = None;
            return Ok(Next::Frame(input.split_to(len)));
        }
        let take = (len - partial.body.len()).min(input.len());
        if take == 0 {
            return Ok(Next::NeedMore);
        }
        let needed = partial.body.len() + take;
        if needed > partial.body.capacity() {
            let capacity = partial.body.capacity();
            let target = needed.max(capacity.saturating_mul(2)).min(len);
            if !grant.try_grow(target - capacity) {
                return Ok(Next::OverBudget);
            }
            partial.body.reserve_exact(target - partial.body.len());
        }
        partial.body.extend_from_slice(&input[..take]);
        input.advance(take);
        if partial.body.len() < len {
            return Ok(Next::NeedMore);
        }
        let body = core::mem::take(&mut partial.body);
        self.partial = None;
        Ok(Next::Frame(Bytes::from(body)))
    }
}

/// Appends a frame body: `flags`, `tag`, then the message.
///
/// With `compress_over = Some(threshold)`, a message of at least `threshold`
/// bytes is LZ4-compressed, and kept compressed only if that makes the body
/// smaller; a `BlobGroup` never is (spec/wire.md §4: file content, mostly
/// compressed already, where trying costs more than it saves). Returns
/// whether it was compressed.
pub fn encode_body(message: &Message, compress_over: Option<usize>, out: &mut BytesMut) -> bool {
    let start = out.len();
    out.put_slice(&[0, message.tag()]);
    encode_body_after_tag(message, compress_over, out, start)
}

/// [`encode_body`] once its flags and tag are written, at `start`.
fn encode_body_after_tag(
    message: &Message,
    compress_over: Option<usize>,
    out: &mut BytesMut,
    start: usize,
) -> bool {
    message.encode(out);
    let body_start = start + 2;
    let Some(threshold) = compress_over else {
        return false;
    };
    if matches!(message, Message::BlobGroup(_)) {
        return false;
    }
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

/// The length of the uncompressed plaintext frame of an application
/// message (`Direct`, `Request`, `Response`: length prefix, flags, tag,
/// the id's varint, the payload), known without encoding it; `None` for
/// the other messages.
pub(crate) fn app_frame_len(message: &Message) -> Option<usize> {
    let fields = match message {
        Message::Direct(m) => m.payload.len(),
        Message::Request(m) => varint_len(m.id) + m.payload.len(),
        Message::Response(m) => varint_len(m.id) + m.payload.len(),
        _ => return None,
    };
    Some(LENGTH_PREFIX_LEN + 2 + fields)
}

/// The application payload a message's body ends with, written as is
/// (`Direct`, `Request`, `Response`), split off: the message with an empty
/// payload, and the payload. The body of the first (uncompressed) followed
/// by the payload's bytes is the body of `message`, so a sender may hand
/// the payload to the transport without copying it into the frame.
///
/// Only a payload of at least `min` bytes is split off: for a shorter one
/// this builds nothing (a small request's frame is not split, and cloning
/// the message to find out cost as much as encoding it).
pub(crate) fn split_payload(message: &Message, min: usize) -> Option<(Message, Bytes)> {
    let len = match message {
        Message::Direct(m) => m.payload.len(),
        Message::Request(m) => m.payload.len(),
        Message::Response(m) => m.payload.len(),
        _ => return None,
    };
    if len < min {
        return None;
    }
    use super::{Direct, Request, Response};
    match message {
        Message::Direct(m) => Some((
            Message::Direct(Direct {
                payload: Bytes::new(),
            }),
            m.payload.clone(),
        )),
        Message::Request(m) => Some((
            Message::Request(Request {
                id: m.id,
                payload: Bytes::new(),
            }),
            m.payload.clone(),
        )),
        Message::Response(m) => Some((
            Message::Response(Response {
                id: m.id,
                payload: Bytes::new(),
            }),
            m.payload.clone(),
        )),
        _ => None,
    }
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

    #[test]
    fn a_blob_group_is_sent_plain_even_when_it_would_shrink() {
        let group = Message::BlobGroup(crate::wire::BlobGroup {
            req: 1,
            len: 16384,
            group: 0,
            proof: Vec::new(),
            data: Bytes::from(vec![0u8; 16384]),
        });
        let mut out = BytesMut::new();
        assert!(!encode_body(&group, Some(512), &mut out));
        assert_eq!(out[0], 0);
        // The same bytes in a message of another kind do shrink.
        let direct = Message::Direct(Direct {
            payload: Bytes::from(vec![0u8; 16384]),
        });
        let mut out = BytesMut::new();
        assert!(encode_body(&direct, Some(512), &mut out));
        assert!(out.len() < 1024);
    }

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

#[cfg(test)]
mod reader_tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Grants up to a limit, and remembers what it granted.
    struct Counting {
        left: usize,
        granted: usize,
    }

    impl Grant for Counting {
        fn try_grow(&mut self, bytes: usize) -> bool {
            if bytes > self.left {
                return false;
            }
            self.left -= bytes;
            self.granted += bytes;
            true
        }
    }

    fn frames_of(
        reader: &mut FrameReader,
        mut input: Bytes,
        max_frame_len: u32,
        grant: &mut dyn Grant,
    ) -> Vec<Bytes> {
        let mut frames = Vec::new();
        loop {
            match reader
                .next_frame(&mut input, max_frame_len, grant)
                .expect("valid")
            {
                Next::Frame(f) => frames.push(f),
                Next::NeedMore => return frames,
                Next::OverBudget => panic!("over budget"),
            }
        }
    }

    #[test]
    fn splits_frames_across_arbitrary_chunk_boundaries() {
        let mut stream = frame(b"first");
        stream.extend(frame(b""));
        stream.extend(frame(&[9u8; 300]));
        for chunk in [1, 2, 3, 5, 7, 64, 1000] {
            let mut reader = FrameReader::new();
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                frames.extend(frames_of(
                    &mut reader,
                    Bytes::copy_from_slice(piece),
                    1024,
                    &mut Unlimited,
                ));
            }
            assert_eq!(frames.len(), 3, "chunk size {chunk}");
            assert_eq!(&frames[0][..], b"first");
            assert!(frames[1].is_empty());
            assert_eq!(&frames[2][..], &[9u8; 300][..]);
            assert_eq!(reader.held(), 0);
        }
    }

    #[test]
    fn a_whole_frame_is_sliced_without_asking_the_budget() {
        let mut grant = Counting {
            left: 0,
            granted: 0,
        };
        let frames = frames_of(
            &mut FrameReader::new(),
            Bytes::from(frame(b"zero copy")),
            64,
            &mut grant,
        );
        assert_eq!(&frames[0][..], b"zero copy");
        assert_eq!(grant.granted, 0);
    }

    #[test]
    fn a_partial_frame_holds_no_more_than_granted_and_stops_at_the_budget() {
        let body = vec![7u8; 10_000];
        let stream = frame(&body);
        let mut grant = Counting {
            left: 3000,
            granted: 0,
        };
        let mut reader = FrameReader::new();
        let mut input = Bytes::copy_from_slice(&stream[..1004]);
        assert_eq!(
            reader.next_frame(&mut input, 20_000, &mut grant),
            Ok(Next::NeedMore)
        );
        assert_eq!(reader.held(), 1000);
        let mut input = Bytes::copy_from_slice(&stream[1004..2004]);
        assert_eq!(
            reader.next_frame(&mut input, 20_000, &mut grant),
            Ok(Next::NeedMore)
        );
        assert_eq!(reader.held(), 2000);
        // Doubling to 4000 would pass the 3000 granted: refused, input kept.
        let mut input = Bytes::copy_from_slice(&stream[2004..3004]);
        assert_eq!(
            reader.next_frame(&mut input, 20_000, &mut grant),
            Ok(Next::OverBudget)
        );
        assert_eq!(input.len(), 1000);
        assert_eq!(reader.held(), grant.granted);
        // With more room it goes on, and the buffer never passes the frame.
        grant.left = usize::MAX;
        let mut input = Bytes::copy_from_slice(&stream[2004..]);
        let Ok(Next::Frame(f)) = reader.next_frame(&mut input, 20_000, &mut grant) else {
            panic!("frame");
        };
        assert_eq!(f.len(), 10_000);
        assert_eq!(grant.granted, 10_000);
    }

    #[test]
    fn refuses_an_oversized_length_before_buffering_it() {
        let mut reader = FrameReader::new();
        let mut input = Bytes::from_static(&[0, 0, 0, 17, 1, 2, 3]);
        assert_eq!(
            reader.next_frame(&mut input, 16, &mut Unlimited),
            Err(FrameError { len: 17, max: 16 })
        );
        let mut reader = FrameReader::new();
        assert_eq!(
            reader.next_frame(&mut Bytes::from_static(&[0xff, 0xff]), 16, &mut Unlimited),
            Ok(Next::NeedMore)
        );
        assert_eq!(
            reader.next_frame(
                &mut Bytes::from_static(&[0xff, 0xff, 0]),
                16,
                &mut Unlimited
            ),
            Err(FrameError {
                len: u32::MAX,
                max: 16
            })
        );
        assert_eq!(reader.held(), 0);
    }

    /// A refused header stays refused: the stream's frame boundaries are
    /// lost, so a further read (a caller that goes on after the error)
    /// must not take the bytes after it for a new header. Whole or in
    /// pieces, the reader keeps the header it refused.
    #[test]
    fn a_refused_header_is_refused_again() {
        for pieces in [
            &[&[0u8, 0, 0, 17, 1, 2, 3][..]][..],
            &[&[0, 0], &[0, 17, 1, 2, 3]],
        ] {
            let mut reader = FrameReader::new();
            let mut result = Ok(Next::NeedMore);
            for piece in pieces {
                result = reader.next_frame(&mut Bytes::copy_from_slice(piece), 16, &mut Unlimited);
            }
            assert_eq!(result, Err(FrameError { len: 17, max: 16 }));
            let mut next = Bytes::from_static(&[0, 0, 0, 1, 9]);
            assert_eq!(
                reader.next_frame(&mut next, 16, &mut Unlimited),
                Err(FrameError { len: 17, max: 16 })
            );
            // A cap raised by the caller lets the frame under way go on.
            assert_eq!(
                reader.next_frame(&mut next, 32, &mut Unlimited),
                Ok(Next::NeedMore)
            );
        }
    }
}
