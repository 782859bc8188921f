//! [`MeshConfig`]: flooding's replay window, hop limit and forgery
//! tolerance.

/// How broadcasts flood. Part of [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// Cap on origins the replay window remembers (`spec/mesh.md`, "Replay
    /// window"); when full, the least recently active origin is forgotten
    /// (counted in [`MeshStats::origins_evicted`](crate::MeshStats::origins_evicted)).
    /// Default 4,096: about 0.7 MiB when full of origins with one run each,
    /// 2 MiB at worst (each with `replay_runs` runs of 56 bytes and 16
    /// retired run nonces, plus its table slots). ≥ 1.
    pub replay_origins: usize,
    /// Runs (restarts) remembered per origin; a newer run evicts the least
    /// recently active (counted in
    /// [`MeshStats::runs_evicted`](crate::MeshStats::runs_evicted)).
    /// Default 4. ≥ 1.
    pub replay_runs: usize,
    /// Links a broadcast may travel; a node that receives one with this many
    /// hops delivers it but does not relay it. Default 32.
    pub max_hops: u8,
    /// Forged broadcasts (bad key or signature) a peer may relay before
    /// this node closes it as misbehaving. Default 3. ≥ 1.
    pub max_forgeries: u32,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            replay_origins: 4_096,
            replay_runs: 4,
            max_hops: 32,
            max_forgeries: 3,
        }
    }
}
