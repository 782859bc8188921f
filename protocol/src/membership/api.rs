//! The membership component's counters.

/// What HyParView has done ([`Stats::membership`](crate::Stats::membership)).
/// They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MembershipStats {
    /// Membership messages sent (`Join`, `ForwardJoin`, `Neighbor`,
    /// `Disconnect`, `Shuffle`, `ShuffleReply`).
    pub messages_sent: u64,
    /// Their encoded bytes (tag and fields; not the frame's header).
    pub bytes_sent: u64,
    /// Peers taken into the active view.
    pub active_added: u64,
    /// Active peers dropped to make room for another (each was sent a
    /// `Disconnect`).
    pub evicted: u64,
    /// Active peers lost: their link went down or the dial failed.
    pub active_lost: u64,
    /// `Neighbor` requests refused because the view was full.
    pub neighbor_refused: u64,
    /// Passive entries promoted to the active view (a `Neighbor` sent).
    pub promoted: u64,
    /// Passive entries dropped because the passive view was full.
    pub passive_evicted: u64,
    /// Shuffles this node started.
    pub shuffles: u64,
    /// Shuffles that ended here without a link to their origin: merged,
    /// not answered.
    pub shuffle_unanswered: u64,
    /// Dials of active peers lost to failures (spec/membership.md, "A
    /// peer lost to a failure").
    pub lost_redials: u64,
    /// Lost peers linked again once they answered.
    pub lost_relinked: u64,
    /// Joiners this node was the contact of and sent a first passive view
    /// (its linked peers and a passive sample; spec/membership.md,
    /// "Joining").
    pub joiners_seeded: u64,
}
