//! What the relay component is asked, tells the application and counts.

use core::net::SocketAddr;

use crate::wire::RelayStatus;
use crate::{Duration, NodeId};

/// Relays: [`Command::Relay`](crate::Command::Relay).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayCommand {
    /// Asks `relay` (a connected peer) to hold a reservation for this
    /// node, renewed at half its lifetime while the relay stays up.
    /// [`RelayEvent::Reserved`] or [`RelayEvent::ReserveRefused`] tells
    /// how it went.
    Reserve {
        /// The relay.
        relay: NodeId,
    },
    /// Opens a session with `target` through a circuit at `relay` (a
    /// connected peer at which `target` holds a reservation). The session
    /// is a normal one (Noise in Noise mode, end to end): the peer comes
    /// up as any other (`PeersEvent::Up`).
    Connect {
        /// The relay.
        relay: NodeId,
        /// The node to reach.
        target: NodeId,
    },
}

/// Why a relay command was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The node does not run the relay component (`Config::relay` is
    /// `None`).
    #[error("relays are off")]
    Off,
    /// The relay is not a connected peer offering `RELAY`.
    #[error("{0} is not a connected relay")]
    NotARelay(NodeId),
    /// The connection caps (or `max_relayed_conns`) leave no room for
    /// another connection.
    #[error("no room for another connection")]
    TooManyConnections,
    /// This node asks (or holds) reservations at 8 relays already.
    #[error("reservations are held at 8 relays already")]
    TooManyRelays,
    /// The target is this node, or is connected already.
    #[error("{0} is connected already, or is this node")]
    Pointless(NodeId),
}

/// What the relay component tells the application:
/// [`Event::Relay`](crate::Event::Relay).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// `relay` holds a reservation for this node for `ttl`: peers can
    /// reach this node through it.
    Reserved {
        /// The relay.
        relay: NodeId,
        /// How long it holds (renewed at half).
        ttl: Duration,
    },
    /// `relay` refused this node's reservation.
    ReserveRefused {
        /// The relay.
        relay: NodeId,
        /// Why.
        status: RelayStatus,
    },
    /// A circuit this node asked `relay` for, to `target`, was refused.
    ConnectRefused {
        /// The relay.
        relay: NodeId,
        /// The node it was to reach.
        target: NodeId,
        /// Why.
        status: RelayStatus,
    },
    /// A hole punch with `peer` succeeded (`spec/relay.md` §7): its
    /// session is direct now, from `remote`; the relayed one is drained.
    Punched {
        /// The peer.
        peer: NodeId,
        /// The direct connection's remote address.
        remote: SocketAddr,
        /// The attempt that succeeded, from 1.
        attempt: u32,
    },
    /// Every hole-punch attempt with `peer` failed: its session stays
    /// relayed.
    PunchFailed {
        /// The peer.
        peer: NodeId,
        /// Attempts made.
        attempts: u32,
    },
}

/// The relay component's counters (`spec/relay.md` §6). They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Reservations this relay accepted (renewals included).
    pub reservations_accepted: u64,
    /// Reservations this node refused: not serving, or `max_reservations`.
    pub reservations_refused: u64,
    /// Circuits this relay opened.
    pub circuits_opened: u64,
    /// Circuits this relay refused: no reservation, `max_circuits`,
    /// `max_circuits_per_peer`, not serving.
    pub circuits_refused: u64,
    /// Circuits this relay closed at a limit: bytes, duration or rate.
    pub circuits_limited: u64,
    /// Bytes this relay forwarded (session bytes of circuits).
    pub bytes_relayed: u64,
    /// `RelayData` for a circuit this relay does not carry, or from a peer
    /// that is not its end: dropped.
    pub data_dropped: u64,
    /// Circuits this node opened through relays (as dialer).
    pub circuits_dialled: u64,
    /// Circuits to this node it accepted (as target).
    pub circuits_accepted: u64,
    /// Circuits to this node it refused (`max_relayed_conns`, caps, no
    /// reservation asked).
    pub circuits_turned_away: u64,
    /// Session bytes this node sent through circuits.
    pub relayed_bytes_sent: u64,
    /// Session bytes this node received through circuits.
    pub relayed_bytes_received: u64,
    /// Hole-punch dials this node made (each attempt, on either end).
    pub punch_attempts: u64,
    /// Hole punches that gave this node a direct connection.
    pub punch_successes: u64,
    /// Hole-punch attempts that timed out, or could not start.
    pub punch_failures: u64,
    /// `HolePunch`/`HolePunchSync` out of turn, or not on a relayed
    /// session: ignored.
    pub punch_messages_ignored: u64,
    /// Relayed addresses (`RelayAddrs` entries) this node stored.
    pub relay_addrs_learned: u64,
    /// Relayed addresses ignored: about this node, a relay naming itself
    /// as its own relay, or any while `max_relay_addrs` is 0.
    pub relay_addrs_ignored: u64,
    /// Nodes whose relayed addresses were evicted at `max_relay_addrs`.
    pub relay_addrs_evicted: u64,
    /// Dials that went through a relay a peer announced for the target
    /// (the fallback, or a node known only by its relayed addresses).
    pub dials_via_announced_relay: u64,
}
