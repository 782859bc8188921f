//! [`SyncConfig`]: the sync table (spec/sync.md).

use crate::time::Duration;

/// The sync table. Part of [`Config`](crate::Config): `Some` runs it (the
/// `SYNC` capability). `lease`, `max_skew` and `tombstone_ttl` must be the
/// same on every node of a network (they decide which writes win); the
/// caps should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// How long a key stays owned by its last writer (spec/sync.md §3):
    /// only it may change or delete the key until `lease` after its last
    /// write. Default 1 h (py2p's 3,600 s).
    pub lease: Duration,
    /// How far ahead of this node's wall clock a received entry's
    /// timestamp may be (spec/sync.md §2); further is refused and counted
    /// ([`SyncStats::out_of_skew`](crate::SyncStats::out_of_skew)).
    /// Default 60 s.
    pub max_skew: Duration,
    /// How long a delete is remembered (spec/sync.md §4); at least
    /// `lease + 2 · max_skew`. Default 24 h.
    pub tombstone_ttl: Duration,
    /// Period of anti-entropy with one peer, round robin (spec/sync.md §5).
    /// Default 30 s; 5 s in [`SyncConfig::lan`].
    pub anti_entropy_interval: Duration,
    /// Keys held (values and tombstones). Default 131,072.
    pub max_entries: usize,
    /// Bytes of the keys' sets held (key + value + 128 per entry). Default
    /// 64 MiB.
    pub max_bytes: usize,
    /// Bytes of the entries one writer signed that this node holds.
    /// Default 8 MiB.
    pub max_bytes_per_writer: usize,
    /// Longest value, at most [`MAX_SYNC_VALUE`](crate::wire::MAX_SYNC_VALUE)
    /// (1 MiB). Default 64 KiB.
    pub max_value_len: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig::wan()
    }
}

impl SyncConfig {
    /// Anti-entropy every 5 s, for a local network.
    pub fn lan() -> Self {
        SyncConfig {
            anti_entropy_interval: Duration::from_secs(5),
            ..SyncConfig::wan()
        }
    }

    /// Anti-entropy every 30 s, for the internet. The default.
    pub fn wan() -> Self {
        SyncConfig {
            lease: Duration::from_secs(3600),
            max_skew: Duration::from_secs(60),
            tombstone_ttl: Duration::from_secs(24 * 3600),
            anti_entropy_interval: Duration::from_secs(30),
            max_entries: 131_072,
            max_bytes: 64 << 20,
            max_bytes_per_writer: 8 << 20,
            max_value_len: 64 << 10,
        }
    }
}
