//! What the reach component tells the application and counts.

use core::net::SocketAddr;

/// What a node learned about its own reachability:
/// [`Event::Reach`](crate::Event::Reach).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReachEvent {
    /// `observers` distinct peers (at least
    /// [`ReachConfig::observed_threshold`](crate::ReachConfig::observed_threshold))
    /// see this node at `addr`'s IP: the node announces `addr` (that IP
    /// with its own listen port) from now on, in the `Hello` of every new
    /// session and in its peer-exchange entry.
    AddressAdopted {
        /// The address now announced.
        addr: SocketAddr,
        /// How many peers reported its IP.
        observers: usize,
    },
    /// A reachability check of `addr` ended: peers that see this node at
    /// `addr`'s IP were asked to dial it back there (`spec/reach.md` §3.2).
    /// `reachable` if at least one dial-back reached this node.
    Reachability {
        /// The address checked.
        addr: SocketAddr,
        /// Whether any peer reached this node there.
        reachable: bool,
        /// Peers whose dial-back reached this node.
        reached: usize,
        /// Peers whose dial-back failed.
        unreached: usize,
        /// Peers that refused, or went down before they answered.
        unanswered: usize,
    },
}

/// The reach component's counters (`spec/reach.md` §5). They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReachStats {
    /// `ObservedAddr` messages sent (one per session with a peer that
    /// offers `REACH`).
    pub observations_sent: u64,
    /// `ObservedAddr` messages received and held.
    pub observations: u64,
    /// Reports not held because `max_observers` peers' reports were held.
    pub observations_dropped: u64,
    /// Reports of an address no peer can dial (unspecified, multicast,
    /// broadcast, port 0): ignored.
    pub observations_undialable: u64,
    /// Addresses adopted and announced.
    pub adopted: u64,
    /// Addresses that reached the threshold but could not be announced:
    /// the node has no listen port to pair them with, or its `Hello`
    /// already carries `MAX_LISTEN_ADDRS` addresses.
    pub adopt_refused: u64,
    /// Reachability checks this node began (one per confirmed address).
    pub checks: u64,
    /// Dial-backs this node ran for its peers.
    pub probes_run: u64,
    /// Dial-back requests refused: over `max_probes` at once, or sooner
    /// than `probe_gap` after the same peer's last.
    pub probes_refused: u64,
}
