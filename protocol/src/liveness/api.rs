//! The `liveness` component's events and counters.

use crate::NodeId;

/// What liveness saw: [`Event::Liveness`](crate::Event::Liveness).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LivenessEvent {
    /// `peer` missed a ping: it may be gone. Purely informative;
    /// [`PeersEvent::Down`](crate::PeersEvent::Down) follows if it stays
    /// silent.
    Suspect {
        /// The peer.
        peer: NodeId,
    },
}

/// What liveness has done. They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LivenessStats {
    /// Pings sent.
    pub pings_sent: u64,
    /// Pings not sent because the peer had been heard from within the
    /// last `ping_interval` (liveness riding on traffic).
    pub pings_skipped: u64,
    /// Peers declared dead.
    pub peers_declared_dead: u64,
    /// Probes started because a request went unanswered with nothing
    /// heard from its peer since it left (a recursive lookup's silent next
    /// hop): the peer is pinged at once, and again after each miss.
    pub probes: u64,
}
