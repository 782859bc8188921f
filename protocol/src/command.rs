//! What the application asks of the node: [`Command`].

use core::net::SocketAddr;

use bytes::Bytes;

use crate::messaging::RequestId;
use crate::time::Duration;
use crate::wire::PeerEntry;
use crate::{ConnId, NodeId};

/// An application request, handed to [`Node::command`](crate::Node::command).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Dial `addr`. With `peer`, the handshake must prove that exact id or
    /// the connection closes with `IdentityMismatch`. The peer the
    /// handshake proves becomes *wanted*: redialled with backoff whenever it
    /// is lost, until [`Command::Disconnect`].
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
    /// Send a one-way message; it arrives as
    /// [`Event::Direct`](crate::Event::Direct). If `to` is not connected,
    /// the node finds its address (peer cache, then its neighbours), dials
    /// it and sends on connect; if that fails within
    /// [`Config::lookup_timeout`](crate::Config::lookup_timeout) the payload
    /// comes back in [`Event::SendFailed`](crate::Event::SendFailed).
    Send {
        /// The peer.
        to: NodeId,
        /// The bytes.
        payload: Bytes,
    },
    /// Send a request; the answer comes as
    /// [`Event::Response`](crate::Event::Response), or
    /// [`Event::RequestFailed`](crate::Event::RequestFailed) at `timeout`
    /// (or earlier if the peer is lost). Unconnected peers are found and
    /// dialled as for `Send`; the timeout covers that too.
    Request {
        /// The peer.
        to: NodeId,
        /// The bytes.
        payload: Bytes,
        /// How long to wait for the response.
        timeout: Duration,
    },
    /// Answer a peer's [`Event::Request`](crate::Event::Request).
    Respond {
        /// The requester.
        to: NodeId,
        /// The id from the request.
        id: RequestId,
        /// The bytes.
        payload: Bytes,
    },
    /// Flood `payload` to every node of the network. Every other node
    /// delivers it once as [`Event::Message`](crate::Event::Message); this
    /// node does not.
    Broadcast {
        /// The bytes.
        payload: Bytes,
    },
    /// Import peer-cache entries (as exported by
    /// [`Node::known_peers`](crate::Node::known_peers)), e.g. saved by the
    /// previous run. Entries without addresses, and this node's own, are
    /// skipped.
    AddPeers {
        /// The entries.
        peers: Vec<PeerEntry>,
    },
    /// Close every connection to `peer` with a `Goodbye`, and stop
    /// redialling it (it is no longer wanted). `Err(NotConnected)` only if
    /// there was neither a connection nor a wish to redial.
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// Close every connection with a `Goodbye`, fail everything pending;
    /// the node then refuses new work. Idempotent.
    Shutdown,
}

/// What an accepted command started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// The command's work is queued in the outputs.
    Done,
    /// A dial is under way on this connection.
    Dialing(ConnId),
    /// `ConnectAny`: `count` dials under way on consecutive connection ids
    /// starting at `first`.
    Racing {
        /// The first dial's connection.
        first: ConnId,
        /// How many dials.
        count: usize,
    },
    /// The peer is not connected yet: the message waits until it is (see
    /// [`Command::Send`]).
    Queued,
    /// A request is under way (sent, or queued as for `Queued`).
    Request(RequestId),
    /// A broadcast left with this sequence number (its id is this node's id
    /// and `seq`).
    Broadcast {
        /// Unique among this node's broadcasts.
        seq: u64,
    },
}

/// Why a command was refused. The node's state is unchanged: nothing was
/// queued and nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No open session with that peer.
    #[error("not connected to {0}")]
    NotConnected(NodeId),
    /// The peer is not connected, its address is unknown, and there is no
    /// neighbour to ask.
    #[error("no route to {0}: not connected, address unknown, no neighbour to ask")]
    NoRoute(NodeId),
    /// The encoded message would exceed the peer's frame cap.
    #[error("message of {len} bytes exceeds the peer's frame cap of {max}")]
    PayloadTooLarge {
        /// The frame length it would need.
        len: usize,
        /// The peer's cap.
        max: u32,
    },
    /// The node is at `max_connections`.
    #[error("at the connection cap of {0}")]
    TooManyConnections(usize),
    /// The node is at `max_outbound`.
    #[error("at the outbound connection cap of {0}")]
    TooManyOutbound(usize),
    /// The node is at `max_half_open`.
    #[error("at the half-open connection cap of {0}")]
    TooManyHalfOpen(usize),
    /// `ConnectAny` needs 1 to 8 addresses.
    #[error("{0} addresses given; ConnectAny takes 1 to 8")]
    BadAddressCount(usize),
    /// The node is at `max_pending_requests`.
    #[error("{0} requests already pending")]
    TooManyRequests(usize),
    /// The node is at `max_queued_messages`.
    #[error("{0} messages already waiting for their peers")]
    QueueFull(usize),
    /// A request timeout of zero could never be met.
    #[error("request timeout must be greater than zero")]
    ZeroTimeout,
    /// The node is shut down.
    #[error("the node is shut down")]
    ShutDown,
}
