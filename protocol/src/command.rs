//! What the application asks of the node: [`Command`].

use core::net::SocketAddr;

use bytes::Bytes;

use crate::OpId;
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
    /// Found a ring with Zave's initialization (spec/chord.md §5.1): every
    /// founder gets the same `founders` list, itself included, of at least
    /// `chord_successors + 1` distinct nodes with addresses. Each computes
    /// its place in the ideal ring; no message is needed.
    ChordFound {
        /// All founders, this node included.
        founders: Vec<PeerEntry>,
    },
    /// Start a ring of one (spec/chord.md §5.2); others join it with
    /// [`Command::ChordJoin`]. Failure tolerance holds once the ring has
    /// grown past `chord_successors` members and settled.
    ChordCreate,
    /// Join the ring through `via` (a connected ring member), or through any
    /// connected chord peer (spec/chord.md §5.3). Ends in
    /// [`Event::ChordJoined`](crate::Event::ChordJoined) or
    /// [`Event::ChordJoinFailed`](crate::Event::ChordJoinFailed).
    ChordJoin {
        /// The member to start from.
        via: Option<NodeId>,
    },
    /// Find the owner of ring position `key` (spec/chord.md §7): ends in
    /// [`Event::LookupDone`](crate::Event::LookupDone) or
    /// [`Event::LookupFailed`](crate::Event::LookupFailed).
    Lookup {
        /// The position.
        key: NodeId,
    },
    /// Store `value` under `key` in the Chord table (spec/chord.md §10.2):
    /// ends in [`Event::DhtPutAcked`](crate::Event::DhtPutAcked) once every
    /// replica holds it, or [`Event::DhtFailed`](crate::Event::DhtFailed).
    Put {
        /// 1 to 256 bytes.
        key: Bytes,
        /// At most 1 MiB.
        value: Bytes,
    },
    /// Read `key` (spec/chord.md §10.3): ends in
    /// [`Event::DhtGetResult`](crate::Event::DhtGetResult) or
    /// [`Event::DhtFailed`](crate::Event::DhtFailed).
    Get {
        /// 1 to 256 bytes.
        key: Bytes,
    },
    /// Delete `key`: a put of a tombstone, acknowledged like
    /// [`Command::Put`].
    Delete {
        /// 1 to 256 bytes.
        key: Bytes,
    },
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
    /// A lookup, join or table operation is under way; its event carries
    /// this id.
    Op(OpId),
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
    /// `Config::chord` is off.
    #[error("chord is not enabled in this node's config")]
    ChordOff,
    /// The founders list is too short, repeats an id, lacks this node, or
    /// has an entry without addresses.
    #[error("bad founders list: {0}")]
    BadFounders(&'static str),
    /// The node is a ring member already, or its join is under way.
    #[error("already a ring member, or joining")]
    AlreadyInRing,
    /// The node is not a ring member and has no chord peer to ask.
    #[error("not in the ring and no chord peer is connected")]
    NoChordPeer,
    /// `chord_max_lookups` lookups are in flight.
    #[error("{0} lookups already in flight")]
    TooManyLookups(usize),
    /// A table key is empty or longer than 256 bytes.
    #[error("key of {0} bytes; keys have 1 to 256")]
    BadKey(usize),
    /// A table value is over 1 MiB.
    #[error("value of {len} bytes over the {max}-byte limit")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
