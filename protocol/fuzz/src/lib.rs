//! Input decoding shared by the ringmesh fuzz targets.
//!
//! Both targets read a *chunked stream* from the fuzzer's bytes, so that the
//! fuzzer chooses where a byte stream is split into reads:
//!
//! - a byte `n` in `0..=0xfe` starts a literal chunk: the next `n` bytes
//!   (fewer if the input ends);
//! - `0xff` starts a run chunk: the next three bytes `lo hi fill` stand for
//!   `u16::from_le_bytes([lo, hi]) * 8` copies of `fill`, so that a small
//!   input can still describe a frame longer than a Noise message (64 KiB)
//!   or than the frame cap.
//!
//! The stream described by one input is capped by the caller (see
//! [`chunks`]); a target whose frame cap is small passes a small limit so
//! that runs do not waste executions on bytes it refuses anyway.

use bytes::Bytes;

/// Splits `data` into chunks as described in the crate docs, stopping once
/// they hold `max_stream` bytes (keeps memory and time per run bounded).
pub fn chunks(mut data: &[u8], max_stream: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut total = 0;
    while let Some((&n, rest)) = data.split_first() {
        data = rest;
        let chunk = if n == 0xff {
            let Some((head, rest)) = data.split_first_chunk::<3>() else {
                break;
            };
            data = rest;
            let len = usize::from(u16::from_le_bytes([head[0], head[1]])) * 8;
            Bytes::from(vec![head[2]; len.min(max_stream - total)])
        } else {
            let len = usize::from(n).min(data.len());
            let (chunk, rest) = data.split_at(len);
            data = rest;
            Bytes::copy_from_slice(&chunk[..chunk.len().min(max_stream - total)])
        };
        total += chunk.len();
        out.push(chunk);
        if total >= max_stream {
            break;
        }
    }
    out
}
