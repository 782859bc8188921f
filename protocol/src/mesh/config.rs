//! [`MeshConfig`]: flooding's seen-cache and hop limit.

use crate::time::Duration;

/// How broadcasts flood. Part of [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// Cap on remembered broadcast ids. Default 65,536 (about 7 MiB when
    /// full: a hash set entry and an expiry-queue entry per id).
    pub seen_cache_capacity: usize,
    /// How long a broadcast id is remembered. Default 120 s.
    pub seen_cache_ttl: Duration,
    /// Links a broadcast may travel; a node that receives one with this many
    /// hops delivers it but does not relay it. Default 32.
    pub max_hops: u8,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            seen_cache_capacity: 65_536,
            seen_cache_ttl: Duration::from_secs(120),
            max_hops: 32,
        }
    }
}
