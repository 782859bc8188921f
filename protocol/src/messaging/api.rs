//! The `messaging` component's commands, events, refusals and counters.

use bytes::Bytes;

use crate::NodeId;
use crate::time::Duration;

/// Identifies a request this node sent, in [`MessagingEvent::Response`]
/// and [`MessagingEvent::RequestFailed`]; and, in
/// [`MessagingEvent::Request`], a request a peer sent (ids are chosen by
/// the requester, so only `(peer, id)` is unique on the receiving side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl core::fmt::Display for RequestId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Messages to one peer: [`Command::Messaging`](crate::Command::Messaging).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessagingCommand {
    /// Send a one-way message; it arrives as [`MessagingEvent::Direct`]. If
    /// `to` is not connected, the node finds its address (peer cache, the
    /// ring when it is a member, then its neighbours), dials it and sends
    /// on connect; if that fails within `messaging.lookup_timeout` the
    /// payload comes back in [`MessagingEvent::SendFailed`].
    Send {
        /// The peer.
        to: NodeId,
        /// The bytes.
        payload: Bytes,
    },
    /// Send a request; the answer comes as [`MessagingEvent::Response`], or
    /// [`MessagingEvent::RequestFailed`] at `timeout` (or earlier if the
    /// peer is lost). Unconnected peers are found and dialled as for
    /// `Send`; the timeout covers that too.
    Request {
        /// The peer.
        to: NodeId,
        /// The bytes.
        payload: Bytes,
        /// How long to wait for the response.
        timeout: Duration,
    },
    /// Answer a peer's [`MessagingEvent::Request`].
    Respond {
        /// The requester.
        to: NodeId,
        /// The id from the request.
        id: RequestId,
        /// The bytes.
        payload: Bytes,
    },
}

/// Messages from one peer, and how this node's fared:
/// [`Event::Messaging`](crate::Event::Messaging).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessagingEvent {
    /// A peer sent a one-way message.
    Direct {
        /// The sender.
        from: NodeId,
        /// Its bytes. In plaintext mode this may be a slice of the buffer the
        /// driver read it in, keeping that buffer alive; copy it
        /// (`Bytes::copy_from_slice`) to hold a small payload for long.
        payload: Bytes,
    },
    /// A peer asks something; answer with [`MessagingCommand::Respond`] and
    /// this `id`.
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
}

/// Why a message or request did not get through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No response within the request's timeout.
    #[error("timed out")]
    Timeout,
    /// The peer could not be found or connected within
    /// `messaging.lookup_timeout`.
    #[error("peer unreachable")]
    Unreachable,
    /// The connection to the peer was lost before the response came.
    #[error("peer disconnected")]
    Disconnected,
    /// This node shut down.
    #[error("node shut down")]
    ShutDown,
    /// The message is larger than the peer's frame cap (known only once
    /// connected).
    #[error("message larger than the peer's frame cap")]
    TooLarge,
}

/// Why a [`MessagingCommand`] was refused. Nothing was queued and nothing
/// was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// No open session with that peer (`Respond`).
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
    /// The node is at `messaging.max_pending_requests`.
    #[error("{0} requests already pending")]
    TooManyRequests(usize),
    /// The node is at `messaging.max_queued_messages`.
    #[error("{0} messages already waiting for their peers")]
    QueueFull(usize),
    /// A request timeout of zero could never be met.
    #[error("request timeout must be greater than zero")]
    ZeroTimeout,
}

/// What messaging has done. They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessagingStats {
    /// Responses for requests that had already completed or failed, or
    /// from a peer the request did not go to.
    pub late_responses: u64,
}

/// Requests and messages in flight ([`Node::messaging_pending`](crate::Node::messaging_pending)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessagingPending {
    /// Requests awaiting responses (at most `messaging.max_pending_requests`).
    pub requests: usize,
    /// Messages waiting for their peers to be found and connected (at most
    /// `messaging.max_queued_messages`).
    pub queued: usize,
}
