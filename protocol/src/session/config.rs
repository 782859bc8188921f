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
    /// Node-wide budget, in bytes, for what connections hold while they
    /// receive: partial frames (their buffers' capacity) and the payloads a
    /// read decompresses. Half of it is shared out evenly over
    /// `peers.max_connections` (each connection may always hold its share);
    /// the other half is a pool for what connections hold beyond their
    /// shares. When a connection needs more than is left, the connection
    /// holding the most is closed ([`CloseReason::ReceiveBudget`], counted
    /// in `PeersStats::receive_budget_closes`, logged at WARN), so the sum
    /// never exceeds the budget. Default 64 MiB; at least
    /// [`Config::min_receive_budget`] (the pool must hold a frame of
    /// `max_frame_len` and its decompressed payload).
    ///
    /// [`CloseReason::ReceiveBudget`]: crate::CloseReason::ReceiveBudget
    /// [`Config::min_receive_budget`]: crate::Config::min_receive_budget
    pub receive_budget: usize,
}

/// Default [`SessionConfig::receive_budget`]: 64 MiB.
pub const DEFAULT_RECEIVE_BUDGET: usize = 64 << 20;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            compression: true,
            compression_threshold: 512,
            handshake_timeout: Duration::from_secs(10),
            receive_budget: DEFAULT_RECEIVE_BUDGET,
        }
    }
}
