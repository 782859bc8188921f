//! [`DhtConfig`]: the Chord table (spec/chord.md §10).

use crate::time::Duration;

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
            repair_interval: Duration::from_secs(60),
            tombstone_ttl: Duration::from_secs(3600),
        }
    }
}
