//! The `peers` component's commands, events, refusals and counters.

use core::net::SocketAddr;

use crate::wire::{Capabilities, ListenAddrs, PeerEntry};
use crate::{CloseReason, ConnId, Direction, NodeId, Security};

/// Connections and the peer cache: [`Command::Peers`](crate::Command::Peers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeersCommand {
    /// Dial `addr`. With `peer`, the handshake must prove that exact id or
    /// the connection closes with `IdentityMismatch`. The peer the
    /// handshake proves becomes *wanted*: redialled with backoff whenever it
    /// is lost, until [`PeersCommand::Disconnect`].
    Connect {
        /// Where to dial.
        addr: SocketAddr,
        /// The id the peer must have, if known.
        peer: Option<NodeId>,
    },
    /// Dial every address at once (1 to 8); the first connection whose
    /// handshake completes is kept and the others are closed. For a node
    /// reachable at several addresses, some of which may be dead. With
    /// `peer`, every dial demands that id, as in `Connect`.
    ConnectAny {
        /// Where to dial.
        addrs: Vec<SocketAddr>,
        /// The id the peer must have, if known.
        peer: Option<NodeId>,
    },
    /// Import peer-cache entries (as exported by
    /// [`Node::known_peers`](crate::Node::known_peers)), e.g. saved by the
    /// previous run. Entries without addresses, and this node's own, are
    /// skipped.
    AddPeers {
        /// The entries.
        peers: Vec<PeerEntry>,
    },
    /// Restore the peer cache saved by a previous run (as exported by
    /// [`Node::peer_cache`](crate::Node::peer_cache)): entries marked
    /// `tried` go back to the tried table (this node dialled and
    /// authenticated them before), the rest are imported as in `AddPeers`.
    /// The maintenance round dials tried entries first.
    RestorePeers {
        /// The entries, tried ones first.
        peers: Vec<KnownPeer>,
    },
    /// Close every connection to `peer` with a `Goodbye`, and stop
    /// redialling it (it is no longer wanted). `Err(NotConnected)` only if
    /// there was neither a connection nor a wish to redial.
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// Announce `addr` as well from now on, in new sessions' `Hello` and
    /// in this node's peer-exchange entry: an address the application
    /// learned peers can dial it at, such as the external address of a
    /// port mapping it made on its router (UPnP IGD). `Err(CannotAnnounce)`
    /// for an unspecified address or port 0, or when the node announces
    /// 8 addresses already; announcing one twice is harmless.
    Announce {
        /// The address.
        addr: SocketAddr,
    },
}

/// One entry of the peer cache, as [`Node::peer_cache`](crate::Node::peer_cache)
/// exports it and [`PeersCommand::RestorePeers`] takes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPeer {
    /// The node.
    pub id: NodeId,
    /// Its listen addresses.
    pub addrs: crate::wire::ListenAddrs,
    /// This node dialled it and authenticated it (the tried table);
    /// otherwise it was only heard of, or it dialled this node (the new
    /// table).
    pub tried: bool,
}

/// Connections and peers coming and going: [`Event::Peers`](crate::Event::Peers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeersEvent {
    /// A handshake completed: `peer` is who is on the other end (proven in
    /// Noise mode, claimed in plaintext mode).
    Established {
        /// The connection.
        conn: ConnId,
        /// The peer's id, derived from its identity key.
        peer: NodeId,
        /// The transport address of the connection.
        remote: SocketAddr,
        /// Who dialled.
        direction: Direction,
        /// How the session is secured.
        security: Security,
        /// Where the peer says it accepts connections (one address inline,
        /// more on the heap: the address inline is what keeps [`Event`] and
        /// [`Output`] at 120 bytes, under the size a move is a `memcpy` call).
        ///
        /// [`Event`]: crate::Event
        /// [`Output`]: crate::Output
        listen_addrs: ListenAddrs,
        /// Features both sides offered (used on this connection).
        capabilities: Capabilities,
    },
    /// A connection (dialling, handshaking or open) is gone, and why.
    Closed {
        /// The connection.
        conn: ConnId,
        /// The peer, if the handshake had told us who it was.
        peer: Option<NodeId>,
        /// Why.
        reason: CloseReason,
    },
    /// `peer` has an established connection (its first); everything sent
    /// to it now goes out at once.
    Up {
        /// The peer.
        peer: NodeId,
        /// The connection's transport address.
        remote: SocketAddr,
        /// Who dialled.
        direction: Direction,
    },
    /// `peer` has no connection any more (its last one closed, or liveness
    /// declared it dead and closed it). Its addresses stay in the peer
    /// cache for redial.
    Down {
        /// The peer.
        peer: NodeId,
        /// Why the last connection ended.
        reason: CloseReason,
    },
}

/// Why a [`PeersCommand`] was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeersError {
    /// No connection to that peer, and no wish to redial it.
    #[error("not connected to {0}")]
    NotConnected(NodeId),
    /// The node is at `peers.max_connections`.
    #[error("at the connection cap of {0}")]
    TooManyConnections(usize),
    /// The node is at `peers.max_outbound`.
    #[error("at the outbound connection cap of {0}")]
    TooManyOutbound(usize),
    /// The node is at `peers.max_half_open`.
    #[error("at the half-open connection cap of {0}")]
    TooManyHalfOpen(usize),
    /// `ConnectAny` needs 1 to 8 addresses.
    #[error("{0} addresses given; ConnectAny takes 1 to 8")]
    BadAddressCount(usize),
    /// `Announce`: the address is unspecified or has port 0, or the node
    /// announces 8 addresses already. Nothing was changed.
    #[error("cannot announce {0}")]
    CannotAnnounce(SocketAddr),
}

/// Why admission control closed an inbound connection
/// ([`CloseReason::Admission`]); spec/peers.md, Admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionReason {
    /// Its source IP was at `admission.max_inbound_per_ip`.
    #[error("too many connections from its address")]
    AddressCap,
    /// Its address group was at `admission.max_inbound_per_group`.
    #[error("too many connections from its address group")]
    GroupCap,
    /// Its address group was over `admission.group_handshake_rate`.
    #[error("its address group is over the handshake rate")]
    GroupRate,
    /// The node was over `admission.handshake_rate`.
    #[error("over the node's handshake rate")]
    NodeRate,
    /// It was the oldest of `admission.max_inbound_half_open` inbound
    /// connections still handshaking, and a new one arrived.
    #[error("evicted from a full inbound half-open table")]
    HalfOpenEvicted,
    /// Its handshake completed with every inbound slot
    /// (`peers.max_inbound`) taken by protected peers.
    #[error("inbound slots full")]
    InboundFull,
    /// An established inbound peer displaced by a newcomer when the
    /// inbound slots were full.
    #[error("displaced by a newcomer")]
    Displaced,
}

/// What the connection layer has done. They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeersStats {
    /// Frames written (handshake and transport).
    pub frames_sent: u64,
    /// Transport frames decoded.
    pub frames_received: u64,
    /// Bytes handed to the driver in `Output::Send`.
    pub bytes_sent: u64,
    /// Bytes received from the driver.
    pub bytes_received: u64,
    /// Transport frames sent with a compressed body.
    pub compressed_frames_sent: u64,
    /// Transport frames received with a compressed body.
    pub compressed_frames_received: u64,
    /// Handshakes that completed.
    pub sessions_established: u64,
    /// Connections closed because the peer broke the protocol or the
    /// handshake failed (including timeouts).
    pub protocol_errors: u64,
    /// Inbound connections refused (at a connection cap, by admission
    /// control before their handshake, or after shutdown). The admission
    /// counters below say which limit.
    pub refused_connections: u64,
    /// Inbound connections refused: their source IP was at
    /// `admission.max_inbound_per_ip`.
    pub refused_address_cap: u64,
    /// Inbound connections refused: their address group was at
    /// `admission.max_inbound_per_group`.
    pub refused_group_cap: u64,
    /// Inbound connections refused: their group was over
    /// `admission.group_handshake_rate`.
    pub refused_group_rate: u64,
    /// Inbound connections refused: the node was over
    /// `admission.handshake_rate`.
    pub refused_node_rate: u64,
    /// Inbound half-open connections evicted (the oldest) to make room for
    /// a new one.
    pub evicted_half_open: u64,
    /// Inbound connections whose handshake did not complete within
    /// `admission.inbound_handshake_timeout` (also counted in
    /// `protocol_errors`).
    pub inbound_handshake_timeouts: u64,
    /// Newcomers closed after their handshake: inbound slots full and every
    /// inbound peer protected.
    pub refused_inbound_full: u64,
    /// Inbound peers displaced by a newcomer when the inbound slots were
    /// full.
    pub displaced_inbound: u64,
    /// Dials started (by commands, redials and bootstrap).
    pub dials: u64,
    /// Connections closed as duplicates of another to the same peer.
    pub duplicate_connections: u64,
    /// Connections closed because the receive budget had no room left and
    /// they held the most ([`CloseReason::ReceiveBudget`]).
    pub receive_budget_closes: u64,
    /// Reads that paused until the next turn for receive budget to
    /// decompress a payload (a burst of compressed messages).
    pub receive_budget_waits: u64,
    /// Times a known peer came back under a new run nonce (it restarted):
    /// the connections of its previous run were closed at once.
    pub peer_restarts: u64,
    /// Peer-cache entries not stored (gossiped, inbound, or a failing tried
    /// entry moved back to new) because their slot held an entry that
    /// works or was never tried.
    pub known_peers_refused: u64,
    /// Peer-cache entries dropped to make room: failing ones, and
    /// unwanted ones in the slot of a wanted peer.
    pub known_peers_evicted: u64,
}
