//! [`FrameReader`]: splits a session's byte stream into frames, holding a
//! partial frame only within what the receive budget grants.
//!
//! The length prefix is checked against the cap before any byte of the
//! body is kept. A frame that arrives whole in one read is sliced out of
//! it without copying or holding anything. A partial frame's buffer grows
//! by doubling, never past the frame's length, and every growth is asked of
//! the budget first ([`Grant`]): the budget counts the buffer's capacity,
//! which is what the memory costs.

use bytes::{Buf, Bytes};

use crate::wire::{FrameError, LENGTH_PREFIX_LEN};

/// Asks the receive budget for room. The session asks before it allocates
/// a partial frame's buffer or a decompressed payload.
pub(crate) trait Grant {
    /// Whether `bytes` more may be held; on `true` they are counted.
    fn try_grow(&mut self, bytes: usize) -> bool;
}

/// A budget that grants everything (tests, and callers outside the node).
#[cfg(test)]
pub(crate) struct Unlimited;

#[cfg(test)]
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

/// See the module docs.
pub(crate) struct FrameReader {
    header: [u8; LENGTH_PREFIX_LEN],
    header_len: usize,
    /// The body of the frame under way; its capacity was granted.
    body: Vec<u8>,
    max_frame_len: u32,
}

impl FrameReader {
    pub(crate) fn new(max_frame_len: u32) -> Self {
        FrameReader {
            header: [0; LENGTH_PREFIX_LEN],
            header_len: 0,
            body: Vec::new(),
            max_frame_len,
        }
    }

    /// Changes the cap; applies from the next frame header on.
    pub(crate) fn set_max_frame_len(&mut self, max_frame_len: u32) {
        self.max_frame_len = max_frame_len;
    }

    /// Bytes of memory held for the frame under way (the body buffer's
    /// capacity; the 4-byte header lives in the reader itself).
    pub(crate) fn held(&self) -> usize {
        self.body.capacity()
    }

    /// Takes the next frame from what is kept plus `input`, consuming from
    /// `input` only what it uses.
    pub(crate) fn next_frame(
        &mut self,
        input: &mut Bytes,
        grant: &mut dyn Grant,
    ) -> Result<Next, FrameError> {
        if self.header_len < LENGTH_PREFIX_LEN {
            let take = (LENGTH_PREFIX_LEN - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            input.advance(take);
            self.header_len += take;
            if self.header_len < LENGTH_PREFIX_LEN {
                return Ok(Next::NeedMore);
            }
        }
        let len = u32::from_be_bytes(self.header);
        if len > self.max_frame_len {
            return Err(FrameError {
                len,
                max: self.max_frame_len,
            });
        }
        let len = len as usize;
        if self.body.capacity() == 0 && input.len() >= len {
            self.header_len = 0;
            return Ok(Next::Frame(input.split_to(len)));
        }
        let take = (len - self.body.len()).min(input.len());
        if take == 0 {
            return Ok(Next::NeedMore);
        }
        let needed = self.body.len() + take;
        if needed > self.body.capacity() {
            let capacity = self.body.capacity();
            let target = needed.max(capacity.saturating_mul(2)).min(len);
            if !grant.try_grow(target - capacity) {
                return Ok(Next::OverBudget);
            }
            self.body.reserve_exact(target - self.body.len());
        }
        self.body.extend_from_slice(&input[..take]);
        input.advance(take);
        if self.body.len() < len {
            return Ok(Next::NeedMore);
        }
        self.header_len = 0;
        Ok(Next::Frame(Bytes::from(core::mem::take(&mut self.body))))
    }
}

#[cfg(test)]
mod tests {
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

    fn frames_of(reader: &mut FrameReader, mut input: Bytes, grant: &mut dyn Grant) -> Vec<Bytes> {
        let mut frames = Vec::new();
        loop {
            match reader.next_frame(&mut input, grant).expect("valid") {
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
            let mut reader = FrameReader::new(1024);
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                frames.extend(frames_of(
                    &mut reader,
                    Bytes::copy_from_slice(piece),
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
            &mut FrameReader::new(64),
            Bytes::from(frame(b"zero copy")),
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
        let mut reader = FrameReader::new(20_000);
        let mut input = Bytes::copy_from_slice(&stream[..1004]);
        assert_eq!(
            reader.next_frame(&mut input, &mut grant),
            Ok(Next::NeedMore)
        );
        assert_eq!(reader.held(), 1000);
        let mut input = Bytes::copy_from_slice(&stream[1004..2004]);
        assert_eq!(
            reader.next_frame(&mut input, &mut grant),
            Ok(Next::NeedMore)
        );
        assert_eq!(reader.held(), 2000);
        // Doubling to 4000 would pass the 3000 granted: refused, input kept.
        let mut input = Bytes::copy_from_slice(&stream[2004..3004]);
        assert_eq!(
            reader.next_frame(&mut input, &mut grant),
            Ok(Next::OverBudget)
        );
        assert_eq!(input.len(), 1000);
        assert_eq!(reader.held(), grant.granted);
        // With more room it goes on, and the buffer never passes the frame.
        grant.left = usize::MAX;
        let mut input = Bytes::copy_from_slice(&stream[2004..]);
        let Ok(Next::Frame(f)) = reader.next_frame(&mut input, &mut grant) else {
            panic!("frame");
        };
        assert_eq!(f.len(), 10_000);
        assert_eq!(grant.granted, 10_000);
    }

    #[test]
    fn refuses_an_oversized_length_before_buffering_it() {
        let mut reader = FrameReader::new(16);
        let mut input = Bytes::from_static(&[0, 0, 0, 17, 1, 2, 3]);
        assert_eq!(
            reader.next_frame(&mut input, &mut Unlimited),
            Err(FrameError { len: 17, max: 16 })
        );
        let mut reader = FrameReader::new(16);
        assert_eq!(
            reader.next_frame(&mut Bytes::from_static(&[0xff, 0xff]), &mut Unlimited),
            Ok(Next::NeedMore)
        );
        assert_eq!(
            reader.next_frame(&mut Bytes::from_static(&[0xff, 0xff, 0]), &mut Unlimited),
            Err(FrameError {
                len: u32::MAX,
                max: 16
            })
        );
        assert_eq!(reader.held(), 0);
    }
}
