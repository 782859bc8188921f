//! What the node asks of its driver: [`Output`] and [`Event`].

use core::net::SocketAddr;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::OpId;
use crate::chord::LookupError;
use crate::dht::DhtError;
use crate::messaging::{DeliveryError, RequestId};
use crate::time::Duration;
use crate::wire::{Capabilities, DecodeError, GoodbyeReason};
use crate::{ConnId, Direction, NodeId, Security, TransportError};

/// One thing the driver must do, drained with
/// [`Node::poll_output`](crate::Node::poll_output) after every input and
/// command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a transport connection to `addr` and report the outcome with
    /// [`Input::Connected`](crate::Input::Connected) (direction `Outbound`)
    /// or [`Input::DialFailed`](crate::Input::DialFailed) under this `conn`.
    Dial {
        /// The id the node gave this connection.
        conn: ConnId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Write `bytes` to `conn`, after everything sent before on it. Never
    /// reorder, drop or merge across connections.
    Send {
        /// The connection.
        conn: ConnId,
        /// Bytes ready for the wire (framed, and encrypted in Noise mode).
        bytes: Bytes,
    },
    /// Finish writing what was already sent on `conn`, then close it; for a
    /// dial still in progress, abandon it. The node has forgotten the
    /// connection: ignore its later reads, and do not report `Closed` or
    /// `DialFailed` for it.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Something the application should know.
    Event(Event),
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A handshake completed: `peer` is who is on the other end (proven in
    /// Noise mode, claimed in plaintext mode).
    SessionEstablished {
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
        /// Where the peer says it accepts connections.
        listen_addrs: SmallVec<[SocketAddr; 2]>,
        /// Features both sides offered (used on this connection).
        capabilities: Capabilities,
    },
    /// A connection (dialling, handshaking or open) is gone, and why.
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
        /// The peer, if the handshake had told us who it was.
        peer: Option<NodeId>,
        /// Why.
        reason: CloseReason,
    },
    /// `peer` has an established connection (its first); everything sent
    /// to it now goes out at once.
    PeerUp {
        /// The peer.
        peer: NodeId,
        /// The connection's transport address.
        remote: SocketAddr,
        /// Who dialled.
        direction: Direction,
    },
    /// The liveness checks on `peer` missed a ping: it may be gone. Purely
    /// informative; `PeerDown` follows if it stays silent.
    PeerSuspect {
        /// The peer.
        peer: NodeId,
    },
    /// `peer` has no connection any more (its last one closed, or liveness
    /// declared it dead and closed it). Its addresses stay in the peer
    /// cache for redial.
    PeerDown {
        /// The peer.
        peer: NodeId,
        /// Why the last connection ended.
        reason: CloseReason,
    },
    /// A broadcast from another node, delivered once.
    Message {
        /// The node that broadcast it.
        origin: NodeId,
        /// Its sequence number, unique per origin.
        seq: u64,
        /// Links it travelled to get here (1 = from the origin directly).
        hops: u8,
        /// Its bytes (shared with every relay; copy to keep a small one
        /// long, as for `Direct`).
        payload: Bytes,
    },
    /// A peer asks something; answer with
    /// [`Command::Respond`](crate::Command::Respond) and this `id`.
    Request {
        /// The requester.
        from: NodeId,
        /// The requester's id for it.
        id: RequestId,
        /// Its bytes.
        payload: Bytes,
    },
    /// The answer to this node's request `id`.
    Response {
        /// Who answered.
        from: NodeId,
        /// The request.
        id: RequestId,
        /// Its bytes.
        payload: Bytes,
        /// From sending the request to this response.
        rtt: Duration,
    },
    /// This node's request `id` will get no answer.
    RequestFailed {
        /// The peer it was for.
        to: NodeId,
        /// The request.
        id: RequestId,
        /// Why.
        reason: DeliveryError,
    },
    /// A queued one-way message could not be sent; the payload is handed
    /// back.
    SendFailed {
        /// The peer it was for.
        to: NodeId,
        /// Its bytes.
        payload: Bytes,
        /// Why.
        reason: DeliveryError,
    },
    /// This node joined the ring (spec/chord.md §5.3).
    ChordJoined {
        /// Its first successor.
        successor: NodeId,
        /// Its predecessor: the member it joined after.
        predecessor: NodeId,
        /// Hops the join lookup took.
        hops: u32,
    },
    /// `Command::ChordJoin` failed; the node is still out of the ring.
    ChordJoinFailed {
        /// Why its lookup failed.
        reason: LookupError,
    },
    /// Failures emptied this member's successor list: more of the ring
    /// failed than the failure constraint allows (spec/chord.md §6.4, §11).
    /// The node stays a member and recovers on a best-effort basis.
    ChordOrphaned,
    /// A `Command::Lookup` found the owner of `key`.
    LookupDone {
        /// The command's id.
        id: OpId,
        /// The position looked up.
        key: NodeId,
        /// The first member at or after `key`.
        owner: NodeId,
        /// The owner and the members after it, as the last hop knew them.
        successors: Vec<NodeId>,
        /// Nodes asked that answered (0: answered locally).
        hops: u32,
    },
    /// A `Command::Lookup` failed.
    LookupFailed {
        /// The command's id.
        id: OpId,
        /// The position looked up.
        key: NodeId,
        /// Why.
        reason: LookupError,
    },
    /// A `Command::Put` or `Delete` is held by every replica.
    DhtPutAcked {
        /// The command's id.
        id: OpId,
        /// The version the owner gave it.
        version: u64,
    },
    /// The answer to a `Command::Get`: the greatest entry the holders had.
    DhtGetResult {
        /// The command's id.
        id: OpId,
        /// The key.
        key: Bytes,
        /// The value; `None` if the key was never written or was deleted.
        value: Option<Bytes>,
        /// The entry's version (0 if never written).
        version: u64,
    },
    /// A table operation failed.
    DhtFailed {
        /// The command's id.
        id: OpId,
        /// Why.
        reason: DhtError,
    },
    /// A peer sent a one-way message.
    Direct {
        /// The sender.
        from: NodeId,
        /// Its bytes. In plaintext mode this may be a slice of the buffer the
        /// driver read it in, keeping that buffer alive; copy it
        /// (`Bytes::copy_from_slice`) to hold a small payload for long.
        payload: Bytes,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// This node's application closed it.
    #[error("closed locally")]
    Local,
    /// This node is shutting down.
    #[error("local shutdown")]
    Shutdown,
    /// This node was over its connection cap.
    #[error("too many connections")]
    TooManyConnections,
    /// The transport reported an error or end of stream.
    #[error("transport: {0:?}")]
    Transport(TransportError),
    /// The dial failed.
    #[error("dial failed: {0:?}")]
    DialFailed(TransportError),
    /// The peer said goodbye.
    #[error("peer said goodbye: {0:?}")]
    Goodbye(GoodbyeReason),
    /// Another connection to the same peer was kept (one connection per
    /// peer; see `spec/peers.md`).
    #[error("duplicate connection to the same peer")]
    Duplicate,
    /// A `ConnectAny` race was won by another of its dials.
    #[error("lost a ConnectAny race")]
    RaceLost,
    /// Liveness declared the peer dead (`dead_after_misses` pings missed).
    #[error("peer unresponsive")]
    Unresponsive,
    /// The peer broke the protocol; the connection was closed by this node.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
}

/// A peer's violation of the protocol, or a handshake that cannot succeed.
/// The connection is closed; the node is otherwise unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream does not start with `RMSH`.
    #[error("not a ringmesh stream (bad preamble magic)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u8,
        /// The peer's.
        theirs: u8,
    },
    /// The peer uses another security mode (never silently downgraded).
    #[error("security mode mismatch: ours {ours}, theirs {theirs}")]
    SecurityMismatch {
        /// Our preamble byte.
        ours: u8,
        /// The peer's.
        theirs: u8,
    },
    /// A frame's length is over the cap (not buffered).
    #[error("frame of {len} bytes over the {max}-byte cap")]
    FrameTooLarge {
        /// The claimed length.
        len: u32,
        /// The cap.
        max: u32,
    },
    /// The handshake did not complete within `handshake_timeout`.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The Noise handshake failed (bad message or decryption).
    #[error("noise handshake failed")]
    HandshakeFailed,
    /// A transport frame failed to decrypt (tampered or out of order).
    #[error("frame failed to decrypt")]
    DecryptFailed,
    /// The identity key in the peer's hello is not a valid Ed25519 key.
    #[error("peer's identity key is not a valid Ed25519 key")]
    BadIdentityKey,
    /// The peer's signature over its Noise static key does not verify under
    /// the identity key it presented: it may be claiming another's identity.
    #[error("peer's signature over its Noise static key does not verify")]
    BadSignature,
    /// The peer is not the node this connection was dialled for.
    #[error("expected peer {expected}, got {actual}")]
    IdentityMismatch {
        /// The id the dial asked for.
        expected: NodeId,
        /// The id the peer proved.
        actual: NodeId,
    },
    /// The connection leads back to this node.
    #[error("connected to ourselves")]
    SelfConnection,
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// A valid message arrived where it has no meaning (e.g. a `Hello` after
    /// the handshake).
    #[error("unexpected {0} message")]
    UnexpectedMessage(&'static str),
}
