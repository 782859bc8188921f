//! [`HyParViewConfig`]: the views' sizes, the random walks' lengths and
//! the shuffle.

/// HyParView membership (`spec/membership.md`): the mesh's peers are a
/// small active view, kept full from a larger passive view. Part of
/// [`MeshConfig::membership`](crate::MeshConfig::membership).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyParViewConfig {
    /// The active view's bound: the most mesh peers this node holds.
    /// Default 5 (`log10 n + 1` at 10,000 nodes, the paper's setting);
    /// [`HyParViewConfig::for_network`] scales it. ≥ 1.
    pub active_view: usize,
    /// The passive view's bound: peers known but not linked, from which
    /// the active view is repaired. Default 30 (6 × the active view). ≥ 1.
    pub passive_view: usize,
    /// Active random walk length (ARWL): steps a `ForwardJoin` and a
    /// `Shuffle` take. Default 6.
    pub active_walk: u8,
    /// Passive random walk length (PRWL): the step of a `ForwardJoin` at
    /// which the joiner enters the passive view of the node it reaches.
    /// Default 3.
    pub passive_walk: u8,
    /// Maintenance rounds (`peers.maintenance_interval`, 1 s by default)
    /// between two shuffles: the membership round. Default 10.
    pub shuffle_rounds: u32,
    /// Active-view entries a shuffle carries. Default 3.
    pub shuffle_active: usize,
    /// Passive-view entries a shuffle carries. Default 4.
    pub shuffle_passive: usize,
}

impl Default for HyParViewConfig {
    fn default() -> Self {
        HyParViewConfig::for_network(10_000)
    }
}

impl HyParViewConfig {
    /// Views sized for a network of about `nodes` nodes: an active view of
    /// `⌈log10 nodes⌉ + 1` (at least 3; 5 at 10,000 nodes, 6 at 100,000)
    /// and a passive view 6 times larger, as in the paper (§5: 5 and 30
    /// at 10,000 nodes).
    pub fn for_network(nodes: u64) -> Self {
        let log10 = (nodes.max(1) as f64).log10().ceil() as usize;
        let active_view = (log10 + 1).max(3);
        HyParViewConfig {
            active_view,
            passive_view: 6 * active_view,
            active_walk: 6,
            passive_walk: 3,
            shuffle_rounds: 10,
            shuffle_active: 3,
            shuffle_passive: 4,
        }
    }
}
