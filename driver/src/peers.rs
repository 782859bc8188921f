//! [`PeerInfo`]: a connected peer as the adapters list it.

use ringmesh::{Duration, Node, NodeId};

/// A peer with an established session, as the adapters' `peers()` list it
/// (`ringmesh_mio::Handle::peers`, `ringmesh_async_std::NodeHandle::peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer's authenticated id.
    pub id: NodeId,
    /// Smoothed ping round-trip time, once a pong has come back.
    pub rtt: Option<Duration>,
    /// It missed its last ping (`Event::Liveness(LivenessEvent::Suspect)` was reported, no pong
    /// since): it may be gone, and is declared down if it stays silent.
    pub suspect: bool,
}

impl PeerInfo {
    /// `peer` as `node` sees it now. A peer that is not connected is listed
    /// with no rtt and not suspect.
    pub fn of(node: &Node, peer: NodeId) -> PeerInfo {
        PeerInfo {
            id: peer,
            rtt: node.rtt(peer),
            suspect: node.is_suspect(peer),
        }
    }

    /// Every peer `node` has an established session with, in id order.
    pub fn list(node: &Node) -> Vec<PeerInfo> {
        node.connected_peers()
            .into_iter()
            .map(|peer| PeerInfo::of(node, peer))
            .collect()
    }
}
