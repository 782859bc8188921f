//! What a driver tells the node: [`Input`].

use core::net::SocketAddr;

use bytes::Bytes;

use crate::ConnId;

/// A network fact or a timeout, handed to
/// [`Node::handle_input`](crate::Node::handle_input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A transport connection is open. For `Outbound`, `conn` is the id of
    /// the node's earlier [`Output::Dial`](crate::Output::Dial); for
    /// `Inbound`, the driver picks a fresh id with [`ConnId::inbound`].
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer's socket address as the transport sees it.
        remote: SocketAddr,
        /// Who opened it.
        direction: Direction,
    },
    /// Bytes arrived on `conn`, in stream order. Any split is fine: the node
    /// reassembles frames itself.
    Received {
        /// The connection.
        conn: ConnId,
        /// The bytes, exactly as read.
        bytes: Bytes,
    },
    /// The transport connection ended (the peer closed it, it was reset, a
    /// write failed). The driver must not send `Closed` for a connection the
    /// node itself closed with [`Output::Close`](crate::Output::Close).
    Closed {
        /// The connection.
        conn: ConnId,
        /// What the transport saw.
        reason: TransportError,
    },
    /// An [`Output::Dial`](crate::Output::Dial) did not produce a connection.
    DialFailed {
        /// The id the dial was given.
        conn: ConnId,
        /// What the transport saw.
        reason: TransportError,
    },
    /// The deadline returned by [`Node::poll_timeout`](crate::Node::poll_timeout)
    /// has passed. Harmless if sent early or twice.
    Timeout,
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The node dialled it.
    Outbound,
    /// The peer dialled it and the driver accepted it.
    Inbound,
}

/// What the transport saw when a connection ended or a dial failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer closed its side cleanly (EOF).
    Eof,
    /// The connection was reset.
    Reset,
    /// The dial was refused.
    Refused,
    /// The dial or a write timed out in the transport.
    TimedOut,
    /// The address cannot be reached.
    Unreachable,
    /// Any other I/O error.
    Other,
}
