//! The `blobs` component's commands, events, refusals and counters.

use bytes::Bytes;

use super::fetch::DropReason;
use super::serve::ServeStats;
use crate::NodeId;
use crate::wire::BlobHash;

/// Blobs: [`Command::Blobs`](crate::Command::Blobs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobsCommand {
    /// Hashes `data` once (its outboard), keeps it in the store and serves
    /// it. [`BlobsEvent::Added`] names it.
    Add {
        /// The blob's bytes.
        data: Bytes,
    },
    /// Starts serving a blob that the driver put in the store itself (a
    /// file-backed store's import: [`BlobStore::adopt`](crate::blobs::BlobStore::adopt)).
    /// [`BlobsEvent::Added`] names it; a store that does not hold it
    /// refuses with [`BlobsError::NotInStore`].
    Adopt {
        /// The blob.
        hash: BlobHash,
    },
    /// Fetches `hash` from `providers` (and, with `ask_neighbours`, every
    /// connected peer that offers `BLOBS`), verifying every group; what the
    /// store already holds is not fetched again. A fetch of a hash already
    /// being fetched adds the providers to it.
    Fetch {
        /// The blob.
        hash: BlobHash,
        /// Nodes believed to hold it; those not connected are dialled.
        providers: Vec<NodeId>,
    },
    /// Stops fetching `hash`; what was verified stays in the store.
    Cancel {
        /// The blob.
        hash: BlobHash,
    },
}

/// What the blobs component reports: [`Event::Blobs`](crate::Event::Blobs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobsEvent {
    /// A blob was added by this node.
    Added {
        /// Its name.
        hash: BlobHash,
        /// Its length.
        len: u64,
    },
    /// A fetch proved the blob's length.
    Length {
        /// The blob.
        hash: BlobHash,
        /// Its length.
        len: u64,
    },
    /// A fetch holds more groups.
    Progress {
        /// The blob.
        hash: BlobHash,
        /// Groups held (verified).
        held: u64,
        /// Groups in the blob.
        groups: u64,
    },
    /// A provider was dropped from a fetch (it lied, answered for another,
    /// or was slow).
    ProviderDropped {
        /// The blob.
        hash: BlobHash,
        /// The provider.
        provider: NodeId,
        /// Why.
        reason: DropReason,
    },
    /// A fetch holds every group, each verified; it ends.
    Done {
        /// The blob.
        hash: BlobHash,
    },
}

/// Why a blobs command was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobsError {
    /// The node does not run blobs (`Config::blobs` is `None`).
    #[error("blobs are off")]
    Off,
    /// `max_fetches` fetches are running.
    #[error("too many fetches at once")]
    TooManyFetches,
    /// The store refused the blob (full).
    #[error("the blob store is full")]
    StoreFull,
    /// `Adopt` of a blob the store does not hold.
    #[error("the blob store does not hold that blob")]
    NotInStore,
    /// The blob is over the longest a name can cover.
    #[error("blob too long")]
    TooLong,
}

/// The blobs component's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobsStats {
    /// Serving: groups and bytes sent, `NotHeld` answers, budget refusals.
    pub serve: ServeStats,
    /// Fetches that completed.
    pub fetches_done: u64,
    /// Fetches refused (`TooManyFetches`).
    pub fetches_refused: u64,
    /// Groups verified and kept, all fetches.
    pub groups_verified: u64,
    /// Bytes verified and kept, all fetches.
    pub bytes_verified: u64,
    /// Groups that failed verification (each drops its sender).
    pub groups_refused: u64,
    /// Providers dropped from fetches.
    pub providers_dropped: u64,
    /// Providers that sent a group that did not verify, closed as
    /// misbehaving (every connection to them).
    pub liars_closed: u64,
    /// Blob answers for no fetch of this node (late, or after a cancel).
    pub answers_unmatched: u64,
}
