//! What the application asks of the node: [`Command`].

use core::net::SocketAddr;

use bytes::Bytes;

use crate::{ConnId, NodeId};

/// An application request, handed to [`Node::command`](crate::Node::command).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Dial `addr`. With `peer`, the handshake must prove that exact id or
    /// the connection closes with `IdentityMismatch`.
    Connect {
        /// Where to dial.
        addr: SocketAddr,
        /// The id the peer must have, if known.
        peer: Option<NodeId>,
    },
    /// Send a one-way message to a connected peer; it arrives as
    /// [`Event::Direct`](crate::Event::Direct).
    Send {
        /// The peer.
        to: NodeId,
        /// The bytes.
        payload: Bytes,
    },
    /// Close every connection to `peer` with a `Goodbye`.
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// Close every connection with a `Goodbye`; the node then refuses new
    /// work. Idempotent.
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
}

/// Why a command was refused. The node's state is unchanged: nothing was
/// queued and nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No open session with that peer.
    #[error("not connected to {0}")]
    NotConnected(NodeId),
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
    /// The node is shut down.
    #[error("the node is shut down")]
    ShutDown,
}
