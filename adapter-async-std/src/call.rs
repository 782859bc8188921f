//! What a handle asks of the node loop ([`Call`]) and how a call fails
//! ([`Error`]): shared by the handle (`handle.rs`) and the node loop
//! (`driver.rs`), which otherwise do not know each other's insides.

use bytes::Bytes;
use futures_channel::oneshot::Sender;
use ringmesh::{Accepted, CloseReason, Command, CommandError, DeliveryError, Node, NodeId};

/// Why a [`NodeHandle`](crate::NodeHandle) call did not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node refused the command; its state is unchanged (see
    /// [`CommandError`]).
    #[error("command refused: {0}")]
    Command(#[from] CommandError),
    /// [`NodeHandle::connect`](crate::NodeHandle::connect) / [`NodeHandle::connect_any`](crate::NodeHandle::connect_any): every dial
    /// ended before a handshake completed; this is why the last one did.
    #[error("connection failed: {0}")]
    ConnectFailed(CloseReason),
    /// [`NodeHandle::request`](crate::NodeHandle::request): no response will come.
    #[error("request failed: {0}")]
    RequestFailed(DeliveryError),
    /// The node task is not running: it was shut down, or its driver future
    /// was dropped.
    #[error("the node has stopped")]
    Stopped,
}

/// A closure to run on the node, in the node loop.
pub(crate) type Inspection = Box<dyn FnOnce(&Node) + Send>;

/// A call from a handle to the node loop, with where to send the answer
/// (a oneshot: its sender wakes the caller only after it has let go of
/// the channel, so a caller woken on the same CPU does not wait for it).
pub(crate) enum Call {
    Command {
        command: Command,
        reply: Sender<Result<Accepted, CommandError>>,
    },
    Connect {
        command: Command,
        reply: Sender<Result<NodeId, Error>>,
    },
    Request {
        to: NodeId,
        payload: Bytes,
        timeout: ringmesh::Duration,
        reply: Sender<Result<Bytes, Error>>,
    },
    Inspect(Inspection),
    Shutdown(Sender<()>),
    /// A command whose answer nobody waits for.
    Post(Command),
}
