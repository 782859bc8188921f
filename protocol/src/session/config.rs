//! [`SessionConfig`]: frames, compression and handshakes.

use crate::time::Duration;
use crate::wire::DEFAULT_MAX_FRAME_LEN;

/// How sessions frame, compress and open. Part of
/// [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest frame this node accepts, counted as the frame's length field
    /// (after compression and encryption). A peer's larger frame closes the
    /// connection; it is never buffered. Default 16 MiB; at least
    /// [`MIN_MAX_FRAME_LEN`](crate::MIN_MAX_FRAME_LEN) (and
    /// [`CHORD_MIN_FRAME_LEN`](crate::CHORD_MIN_FRAME_LEN) with the ring
    /// on).
    pub max_frame_len: u32,
    /// Offer LZ4 compression in `Hello`, and compress towards peers that
    /// offer it too. Default: on. (As with any compress-then-encrypt scheme,
    /// an application that mixes secrets and attacker-chosen bytes in one
    /// payload should turn it off.)
    pub compression: bool,
    /// Messages shorter than this are never compressed. Default 512 bytes.
    pub compression_threshold: usize,
    /// A connection that has not completed its handshake this long after it
    /// opened is closed with `HandshakeTimeout`; also how long a duplicate
    /// connection drains. Default 10 s.
    pub handshake_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            compression: true,
            compression_threshold: 512,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}
