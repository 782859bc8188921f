//! [`DhtConfig`]: the Chord table (spec/chord.md §10).

use crate::time::Duration;

use super::quota::Usage;
use super::store::Caps;

/// The Chord table. Part of [`Config`](crate::Config): `Some` runs the
/// table (the `DHT` capability; it needs the ring). Its requests use the
/// ring's timings ([`ChordConfig`](crate::ChordConfig)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// Holders per key *r_d*, 1..=`chord.successors`. Default 3.
    pub replicas: usize,
    /// Entries (values and tombstones) one node stores. Default 65,536.
    pub max_entries: usize,
    /// Bytes of keys and values one node stores. Default 64 MiB.
    pub max_bytes: usize,
    /// Bytes of keys and values one writer may have stored in one node's
    /// own range (spec/chord.md §10.5; replicas of other ranges answer to
    /// their owner's quotas). Default 4 MiB, 1/16 of `max_bytes`; a value
    /// at or over `max_bytes` sets no quota. A write past it is refused
    /// with [`DhtFailure::OverQuota`](crate::DhtFailure::OverQuota).
    pub max_bytes_per_writer: usize,
    /// Entries one writer may have stored in one node's own range.
    /// Default 4,096, 1/16 of `max_entries`; a value at or over
    /// `max_entries` sets no quota.
    pub max_entries_per_writer: usize,
    /// Bytes one peer may have delivered (as a client's `DhtPut` or a
    /// `DhtReplicate`) into one node's own range that it still holds.
    /// Default 32 MiB, half of `max_bytes`: a neighbour handing off a range
    /// legitimately delivers about 1/`replicas` of a holder's store, and
    /// ranges are uneven; no one peer fills more than half. A value at or
    /// over `max_bytes` sets no quota.
    pub max_bytes_per_sender: usize,
    /// Entries one peer may have delivered into one node's own range that
    /// it still holds. Default 32,768, half of `max_entries`; a value at or
    /// over `max_entries` sets no quota.
    pub max_entries_per_sender: usize,
    /// Anti-entropy period (60 s; 10 s in [`DhtConfig::lan`]).
    pub repair_interval: Duration,
    /// How long a delete is remembered. Default 1 h.
    pub tombstone_ttl: Duration,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig::wan()
    }
}

impl DhtConfig {
    /// Repair for a local network: every 10 s.
    pub fn lan() -> Self {
        DhtConfig {
            repair_interval: Duration::from_secs(10),
            ..DhtConfig::wan()
        }
    }

    /// Repair for the internet: every 60 s. The default.
    pub fn wan() -> Self {
        DhtConfig {
            replicas: 3,
            max_entries: 65_536,
            max_bytes: 64 << 20,
            max_bytes_per_writer: 4 << 20,
            max_entries_per_writer: 4_096,
            max_bytes_per_sender: 32 << 20,
            max_entries_per_sender: 32_768,
            repair_interval: Duration::from_secs(60),
            tombstone_ttl: Duration::from_secs(3600),
        }
    }
}

impl DhtConfig {
    /// The store's caps, each quota at most the store's own.
    pub(crate) fn caps(&self) -> Caps {
        let total = Usage {
            bytes: self.max_bytes,
            entries: self.max_entries,
        };
        let within = |bytes: usize, entries: usize| Usage {
            bytes: bytes.min(total.bytes),
            entries: entries.min(total.entries),
        };
        Caps {
            total,
            per_writer: within(self.max_bytes_per_writer, self.max_entries_per_writer),
            per_sender: within(self.max_bytes_per_sender, self.max_entries_per_sender),
        }
    }
}
