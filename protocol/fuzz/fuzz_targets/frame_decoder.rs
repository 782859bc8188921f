//! `FrameDecoder::next_frame` + `decode_body` on arbitrary bytes.
//!
//! Input: `cap` (1 byte: the frame cap is `cap * 4`), `mode` (1 byte: bit 0
//! = accept compressed bodies), then a chunked stream (see the crate docs).
//!
//! Checks, besides "never panics":
//! - feeding the stream in the fuzzer's chunks gives exactly the frames (and
//!   the same error, at the same point) as feeding it in one piece;
//! - `Ok(None)` means the input was used up; the decoder never buffers more
//!   than one frame and its header;
//! - a body that decodes uncompressed re-encodes byte for byte (the wire
//!   format is canonical), and a compressed one decodes to a message that
//!   round-trips.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringmesh::wire::{FrameDecoder, FrameError, LENGTH_PREFIX_LEN, decode_body, encode_body};
use ringmesh_fuzz::chunks;

/// Runs a decoder over `reads`; returns the frames and the error that
/// stopped it, if any.
fn split(reads: &[Bytes], cap: u32) -> (Vec<Bytes>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new(cap);
    let mut frames = Vec::new();
    for read in reads {
        let mut input = read.clone();
        loop {
            match decoder.next_frame(&mut input) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= cap as usize, "frame above the cap");
                    frames.push(frame);
                }
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) with input left");
                    break;
                }
                Err(e) => return (frames, Some(e)),
            }
            assert!(decoder.buffered() <= LENGTH_PREFIX_LEN + cap as usize);
        }
        assert!(decoder.buffered() <= LENGTH_PREFIX_LEN + cap as usize);
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let [cap, mode, rest @ ..] = data else {
        return;
    };
    let cap = u32::from(*cap) * 4;
    let accept_compressed = mode & 1 == 1;
    // Beyond a few frame caps' worth, more bytes find nothing new.
    let reads = chunks(rest, 4 * 1024);
    let (frames, error) = split(&reads, cap);

    let mut whole = BytesMut::new();
    for read in &reads {
        whole.extend_from_slice(read);
    }
    let (whole_frames, whole_error) = split(&[whole.freeze()], cap);
    assert_eq!(frames, whole_frames, "chunking changed the frames");
    assert_eq!(error, whole_error, "chunking changed the error");

    for frame in frames {
        let Ok((message, compressed)) = decode_body(frame.clone(), accept_compressed, cap) else {
            continue;
        };
        assert!(accept_compressed || !compressed);
        let mut again = BytesMut::new();
        assert!(!encode_body(&message, None, &mut again));
        if compressed {
            let (back, _) = decode_body(again.freeze(), false, u32::MAX)
                .expect("a decoded message re-encodes to a valid body");
            assert_eq!(back, message);
        } else {
            assert_eq!(&again[..], &frame[..], "body is not canonical");
        }
    }
});
