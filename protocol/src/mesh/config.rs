//! [`MeshConfig`]: flooding's replay window, hop limit and forgery
//! tolerance; who the mesh's peers are ([`Membership`]) and how a
//! broadcast spreads over them ([`BroadcastMode`], [`PlumtreeConfig`]).

use crate::membership::config::HyParViewConfig;
use crate::time::Duration;

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
    /// hops delivers it but does not relay it. Default 64: flooding's
    /// paths are the overlay's shortest (about 8 at 10,000 nodes), but
    /// Plumtree's shared tree runs deeper, and under churn a 1,000-node
    /// tree reached 45 hops, where a limit of 32 cut off whole subtrees.
    pub max_hops: u8,
    /// Forged broadcasts (bad key or signature) a peer may relay before
    /// this node closes it as misbehaving. Default 3. ≥ 1.
    pub max_forgeries: u32,
    /// Who the mesh's peers are: every peer that is up (the default), or
    /// HyParView's active view.
    pub membership: Membership,
    /// How a broadcast spreads over the mesh's peers: flooding (the
    /// default) or Plumtree.
    pub broadcast: BroadcastMode,
}

/// Who the mesh's peers are (`spec/membership.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Membership {
    /// Every peer that is up, whoever connected it. The default.
    #[default]
    AllPeers,
    /// HyParView's active view: at most `active_view` peers, chosen by the
    /// membership protocol; other links (the ring's, the application's)
    /// carry no broadcast.
    HyParView(HyParViewConfig),
}

/// How a broadcast spreads (`spec/mesh.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BroadcastMode {
    /// Every mesh peer but the sender gets every broadcast. The default.
    #[default]
    Flood,
    /// Plumtree: eager push along a spanning tree, lazy `IHave` on the
    /// other links, `Graft` and `Prune` to repair and trim it.
    Plumtree(PlumtreeConfig),
}

/// Plumtree's timers and budgets (`spec/mesh.md`, "Plumtree").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlumtreeConfig {
    /// How long announcements wait to be batched into one `IHave` per
    /// lazy peer. Default 100 ms.
    pub ihave_interval: Duration,
    /// How long after the first `IHave` of a broadcast not received this
    /// node sends a `Graft` for it. Longer than the tree's usual lead
    /// over the lazy path, or the tree grows needless eager links.
    /// Default 1 s.
    pub graft_timeout: Duration,
    /// How long after a `Graft` this node grafts the next announcer if the
    /// broadcast still has not come. Default 500 ms.
    pub graft_retry: Duration,
    /// The tree's optimisation (paper §3.8): when an `IHave` shows a path
    /// to a delivered broadcast this many hops shorter than the one it
    /// came by, the announcer's link joins the tree and the old parent's
    /// leaves it. 0 turns it off. Default 0: over one tree shared by
    /// every origin, a path shorter for this broadcast's origin is often
    /// longer for the next one's, and re-parenting nodes close cycles
    /// that later broadcasts prune; with new links lazy on a whole tree
    /// (spec/mesh.md, "A new link") the tree the first broadcast built
    /// keeps a shorter last-delivery hop without it (spec/mesh.md, "How
    /// far a shared tree reaches").
    pub optimize_threshold: u8,
    /// How long a delivered broadcast is kept to answer grafts (the graft
    /// window). Default 30 s.
    pub cache_window: Duration,
    /// Cap on the bytes kept for grafts (each broadcast's payload and its
    /// 132-byte header, `BROADCAST_OVERHEAD_MAX`); the oldest go first
    /// (counted in [`MeshStats::cache_dropped`](crate::MeshStats::cache_dropped)).
    /// Default 4 MiB.
    pub cache_bytes: usize,
    /// Cap on announcements waiting for the `IHave` timer; more are dropped
    /// (counted in [`MeshStats::ihave_dropped`](crate::MeshStats::ihave_dropped)).
    /// Default 4,096.
    pub max_pending_ihave: usize,
    /// Cap on broadcasts announced but not received that this node tracks
    /// for grafting; more are ignored (counted in
    /// [`MeshStats::missing_dropped`](crate::MeshStats::missing_dropped)).
    /// Default 1,024.
    pub max_missing: usize,
    /// When a peer becomes a mesh peer, this node announces to it the
    /// broadcasts it delivered this recently (spec/mesh.md, "A new link"),
    /// so that a node whose tree path broke while a broadcast was on its
    /// way still grafts it over the link that repaired the path. Default
    /// 5 s (a broadcast crosses 10,000 nodes in well under that); zero
    /// turns it off (all of it). At most `cache_window` counts. This
    /// node's own broadcasts, and every broadcast to a peer that asked to
    /// link (it lost a mesh peer, or its view is not full), are announced
    /// for as long as they are kept (`cache_window`), whatever this is: a
    /// broadcast sent while every mesh link was dead (silent crashes not
    /// yet found) gets out that way, and a node cut off that way hears of
    /// what it missed.
    pub link_announce: Duration,
}

impl Default for PlumtreeConfig {
    fn default() -> Self {
        PlumtreeConfig {
            ihave_interval: Duration::from_millis(100),
            graft_timeout: Duration::from_secs(1),
            graft_retry: Duration::from_millis(500),
            optimize_threshold: 0,
            cache_window: Duration::from_secs(30),
            cache_bytes: 4 * 1024 * 1024,
            max_pending_ihave: 4_096,
            max_missing: 1_024,
            link_announce: Duration::from_secs(5),
        }
    }
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            replay_origins: 4_096,
            replay_runs: 4,
            max_hops: 64,
            max_forgeries: 3,
            membership: Membership::AllPeers,
            broadcast: BroadcastMode::Flood,
        }
    }
}
