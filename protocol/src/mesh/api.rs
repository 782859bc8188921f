//! The `mesh` component's command, event and counters.

use bytes::Bytes;

use crate::NodeId;

/// Flooding: [`Command::Mesh`](crate::Command::Mesh).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshCommand {
    /// Flood `payload` to every node of the network. Every other node
    /// delivers it once as [`MeshEvent::Broadcast`]; this node does not.
    Broadcast {
        /// The bytes.
        payload: Bytes,
    },
}

/// A broadcast arrived, or (HyParView) the mesh's neighbours changed:
/// [`Event::Mesh`](crate::Event::Mesh).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshEvent {
    /// Another node's [`MeshCommand::Broadcast`], delivered once.
    Broadcast {
        /// The node that broadcast it.
        origin: NodeId,
        /// Its sequence number, unique per origin.
        seq: u64,
        /// Links it travelled to get here (1 = from the origin directly).
        hops: u8,
        /// Its bytes (shared with every relay; copy to keep a small one
        /// long).
        payload: Bytes,
    },
    /// HyParView only (`mesh.membership = HyParView`): `peer` joined this
    /// node's active view, so broadcasts go to it and come from it.
    NeighborUp {
        /// The new mesh neighbour.
        peer: NodeId,
    },
    /// HyParView only: `peer` left this node's active view (it failed,
    /// was evicted, or asked to leave).
    NeighborDown {
        /// The former mesh neighbour.
        peer: NodeId,
    },
}

/// Why a [`MeshCommand`] was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The broadcast, once encoded (and decompressed by a receiver, if it
    /// was compressed on the way), would exceed the frame cap
    /// (`max_frame_len`, from its `Hello`) of a connected peer: that peer
    /// would refuse it and close the connection.
    #[error(
        "broadcast of {len} bytes (uncompressed) exceeds a peer's frame cap of {max} bytes; \
         not sent"
    )]
    TooLarge {
        /// The encoded message's length, uncompressed.
        len: usize,
        /// The largest message the smallest peer cap allows.
        max: usize,
    },
}

/// What flooding has done. They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeshStats {
    /// Broadcasts this node originated.
    pub sent: u64,
    /// Broadcasts delivered to the application.
    pub delivered: u64,
    /// Broadcast frames sent on behalf of other nodes.
    pub relayed: u64,
    /// Broadcasts dropped as already delivered (the replay window has
    /// them), and copies of this node's own.
    pub duplicate: u64,
    /// Broadcasts delivered but not relayed: they had `mesh.max_hops` hops.
    pub hop_limited: u64,
    /// Broadcast copies not sent because they exceed a peer's frame cap.
    pub oversized: u64,
    /// Broadcasts dropped because their key is not their origin's or their
    /// signature does not verify.
    pub forged: u64,
    /// Broadcasts dropped as too old: below their run's replay window, or
    /// of a run the window retired.
    pub too_old: u64,
    /// Peers closed for relaying `mesh.max_forgeries` forgeries.
    pub peers_closed: u64,
    /// Origins the replay window forgot because it was full (raise
    /// `mesh.replay_origins` if this grows: a forgotten origin's old
    /// broadcasts could be replayed once more).
    pub origins_evicted: u64,
    /// Runs the replay window forgot (and retired) because their origin had
    /// `mesh.replay_runs` newer ones.
    pub runs_evicted: u64,
    /// Plumtree: `IHave` messages sent.
    pub ihave_sent: u64,
    /// Plumtree: announcements they carried.
    pub ihave_announced: u64,
    /// Plumtree: `Graft`s sent (a broadcast announced but not received in
    /// time).
    pub grafts_sent: u64,
    /// Plumtree: `Graft`s answered with the broadcast.
    pub grafts_answered: u64,
    /// Plumtree: `Graft`s for a broadcast no longer kept.
    pub graft_missed: u64,
    /// Plumtree: `Graft`s for a broadcast already answered to the same
    /// peer, not answered again (each peer gets a kept broadcast through
    /// grafts at most once).
    pub grafts_repeated: u64,
    /// Plumtree: links swapped into the tree because an `IHave` showed a
    /// path `optimize_threshold` hops shorter (a `Graft` without the
    /// broadcast to the announcer, a `Prune` to the old parent).
    pub optimized: u64,
    /// Plumtree: `Prune`s sent (a duplicate arrived on an eager link).
    pub prunes_sent: u64,
    /// Plumtree: encoded bytes of the `IHave`, `Graft` and `Prune`
    /// messages sent (tag and fields; not the frame's header).
    pub control_bytes: u64,
    /// Plumtree: broadcasts dropped from the graft cache before their
    /// window ended, to stay within `cache_bytes`.
    pub cache_dropped: u64,
    /// Plumtree: announcements dropped because `max_pending_ihave` were
    /// waiting.
    pub ihave_dropped: u64,
    /// Plumtree: announced broadcasts not tracked because `max_missing`
    /// were.
    pub missing_dropped: u64,
}
