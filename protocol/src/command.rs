//! What the application asks of the node: [`Command`].

use crate::blobs::api::{BlobsCommand, BlobsError};
use crate::chord::{ChordCommand, ChordError};
use crate::dht::{DhtCommand, DhtError};
use crate::mesh::{MeshCommand, MeshError};
use crate::messaging::{MessagingCommand, MessagingError, RequestId};
use crate::peers::{PeersCommand, PeersError};
use crate::relay::{RelayCommand, RelayError};
use crate::sync::{SyncCommand, SyncError};
use crate::{ConnId, OpId};

/// Writes the `Command` enum (the components' commands, then `Shutdown`)
/// and a `From` for each component's command, from one list.
macro_rules! commands {
    ($($(#[$doc:meta])* $variant:ident($ty:ty),)*) => {
        /// An application request, handed to
        /// [`Node::command`](crate::Node::command): one command enum per
        /// component, and the node's own `Shutdown`. Each component's command
        /// converts into it, so
        /// `node.command(now, MeshCommand::Broadcast { payload })` works.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Command {
            $($(#[$doc])* $variant($ty),)*
            /// Close every connection with a `Goodbye`, fail everything
            /// pending; the node then refuses new work. Idempotent.
            Shutdown,
        }

        $(impl From<$ty> for Command {
            fn from(command: $ty) -> Command {
                Command::$variant(command)
            }
        })*
    };
}

commands! {
    /// Connections and the peer cache.
    Peers(PeersCommand),
    /// Flooding.
    Mesh(MeshCommand),
    /// Messages to one peer.
    Messaging(MessagingCommand),
    /// The Chord ring.
    Chord(ChordCommand),
    /// The Chord table.
    Dht(DhtCommand),
    /// The sync table.
    Sync(SyncCommand),
    /// Blobs.
    Blobs(BlobsCommand),
    /// Relays: reservations and circuits (`spec/relay.md`).
    Relay(RelayCommand),
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
    /// [`MessagingCommand::Send`]).
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

/// Why a command was refused: the component's own reason, or the node's.
/// The node's state is unchanged: nothing was queued and nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The node is shut down.
    #[error("the node is shut down")]
    ShutDown,
    /// Refused by the connection layer.
    #[error(transparent)]
    Peers(#[from] PeersError),
    /// Refused by flooding.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// Refused by messaging.
    #[error(transparent)]
    Messaging(#[from] MessagingError),
    /// Refused by the ring.
    #[error(transparent)]
    Chord(#[from] ChordError),
    /// Refused by the table.
    #[error(transparent)]
    Dht(#[from] DhtError),
    /// Refused by the sync table.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Refused by blobs.
    #[error(transparent)]
    Blobs(#[from] BlobsError),
    /// Refused by the relay component.
    #[error(transparent)]
    Relay(#[from] RelayError),
}
