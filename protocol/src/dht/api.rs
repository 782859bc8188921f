//! The `dht` component's commands, events, refusals and views.

use bytes::Bytes;

use crate::wire::DhtKey;
use crate::{NodeId, OpId};

/// The Chord table: [`Command::Dht`](crate::Command::Dht).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhtCommand {
    /// Store `value` under `key` (spec/chord.md §10.2), signed by this
    /// node: an open key, or an owned key whose owner is this node. Ends in
    /// [`DhtEvent::PutDone`] once every replica holds it, or
    /// [`DhtEvent::Failed`].
    Put {
        /// Open or owned by this node; a name of 1 to 256 bytes.
        key: DhtKey,
        /// At most 1 MiB.
        value: Bytes,
    },
    /// Read `key` (spec/chord.md §10.3), any node's owned key or an open
    /// one: ends in [`DhtEvent::GetDone`] or [`DhtEvent::Failed`].
    Get {
        /// A name of 1 to 256 bytes.
        key: DhtKey,
    },
    /// Delete `key`: a put of a tombstone, signed by this node; ends in
    /// [`DhtEvent::DeleteDone`] or [`DhtEvent::Failed`].
    Delete {
        /// Open or owned by this node; a name of 1 to 256 bytes.
        key: DhtKey,
    },
}

/// How the table's operations ended: [`Event::Dht`](crate::Event::Dht).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhtEvent {
    /// A [`DhtCommand::Put`] is held by every replica.
    PutDone {
        /// The command's id.
        id: OpId,
        /// The version this node signed.
        version: u64,
    },
    /// A [`DhtCommand::Delete`] is held by every replica.
    DeleteDone {
        /// The command's id.
        id: OpId,
        /// The version this node signed for the tombstone.
        version: u64,
    },
    /// The answer to a [`DhtCommand::Get`]: the greatest entry the holders
    /// had.
    GetDone {
        /// The command's id.
        id: OpId,
        /// The key.
        key: DhtKey,
        /// The value; `None` if the key was never written or was deleted.
        value: Option<Bytes>,
        /// The entry's version (0 if never written).
        version: u64,
        /// Who signed the entry (`None` if never written). For an owned
        /// key it is always the owner.
        writer: Option<NodeId>,
    },
    /// A table operation failed.
    Failed {
        /// The command's id.
        id: OpId,
        /// Why.
        reason: DhtFailure,
    },
}

/// Why a table operation failed (spec/chord.md §10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtFailure {
    /// The node asked is not a ring member.
    #[error("not in the ring")]
    NotInRing,
    /// The coordinator does not own the key (the ring is changing); the
    /// client retried until its time ran out.
    #[error("the coordinator does not own the key")]
    NotOwner,
    /// A holder's store is at its cap, full of entries it protects
    /// (spec/chord.md §10.5): no quota of this writer's is the cause.
    #[error("a holder's store is full")]
    Full,
    /// This writer is over its own quota at the key's owner: it already
    /// stores `dht.max_bytes_per_writer` (or `_entries_`) there, or more
    /// than its fair share of a full store. Deleting some of its entries
    /// makes room; others' writes are not refused for it.
    #[error("over this writer's own quota at the key's owner")]
    OverQuota,
    /// The entry does not fit a peer's frame cap.
    #[error("too large for a peer's frame cap")]
    TooLarge,
    /// The owner stored the entry but fewer than `dht.replicas` holders
    /// acknowledged it in time; repair will spread it.
    #[error("stored as version {version} on {holders} holders only")]
    Incomplete {
        /// The version it was given.
        version: u64,
        /// Holders that acknowledged, the owner included.
        holders: u8,
    },
    /// No holder answered.
    #[error("no holder answered")]
    Unreachable,
    /// `chord.lookup_timeout` passed.
    #[error("timed out")]
    Timeout,
    /// The node shut down.
    #[error("the node shut down")]
    ShutDown,
    /// The key's version kept moving (other writers, or holders that held
    /// a greater version than the coordinator) through every re-signed try.
    #[error("the key's version kept moving; {held} is held")]
    Stale {
        /// The last version a holder reported.
        held: u64,
    },
    /// The coordinator refused the write as not authorised (a bad
    /// signature, or an owned key of another node).
    #[error("the coordinator refused the write as not authorised")]
    Refused,
}

/// Why a [`DhtCommand`] was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// `Config::dht` is `None`.
    #[error("the table is not enabled in this node's config")]
    Off,
    /// A key is empty or longer than 256 bytes.
    #[error("key of {0} bytes; keys have 1 to 256")]
    BadKey(usize),
    /// A value is over 1 MiB.
    #[error("value of {len} bytes over the {max}-byte limit")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A write of an owned key whose owner is another node: only the owner
    /// may write or delete it (spec/chord.md §10.1).
    #[error("the key is owned by {owner}; only its owner may write it")]
    NotYourKey {
        /// The key's owner.
        owner: NodeId,
    },
    /// The key's lookup could not start.
    #[error("the key's lookup could not start: {0}")]
    Ring(crate::ChordError),
}

/// What a node stores for one key ([`Node::dht_holds`](crate::Node::dht_holds)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhtHeld {
    /// The entry's version.
    pub version: u64,
    /// A value (`true`) or a tombstone.
    pub live: bool,
    /// Who signed it.
    pub writer: NodeId,
}

/// What a node's store holds ([`Node::dht_usage`](crate::Node::dht_usage)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhtUsage {
    /// Entries, values and tombstones (at most `dht.max_entries`).
    pub entries: usize,
    /// Bytes of keys and values (at most `dht.max_bytes`).
    pub bytes: usize,
}

/// The table's counters (part of [`Stats`](crate::Stats)`::dht`): what a
/// node refused because a peer was not entitled to send it or it did not
/// verify (spec/chord.md §10.7), and what its quotas refused or evicted
/// (§10.5). They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhtStats {
    /// Entries refused because their writer was over its quota (the
    /// `dht.*_per_writer` caps, or its fair share of a full store).
    pub refused_writer_quota: u64,
    /// Entries refused because the peer that delivered them was over its
    /// quota (the `dht.*_per_sender` caps, or its fair share).
    pub refused_sender_quota: u64,
    /// Entries refused because the store was full of entries it protects.
    pub refused_full: u64,
    /// Entries evicted to make room (those of the parties most over their
    /// fair share first).
    pub evicted: u64,
    /// `DhtReplicate` entries refused because the receiver's view of the
    /// ring does not entitle the sender to send them (§10.4).
    pub replicas_unentitled: u64,
    /// Entries refused by a holder or a coordinator: a bad signature, a
    /// writer key that is not the owner's, a key that does not match.
    pub entries_unverified: u64,
    /// Open-key entries refused for a version more than
    /// [`MAX_OPEN_VERSION_STEP`](crate::wire::MAX_OPEN_VERSION_STEP) above
    /// the one held.
    pub versions_jumped: u64,
    /// `DhtGetReply` bodies this node's reads rejected (unsigned,
    /// forged, another key's, or an owned key by another writer).
    pub replies_rejected: u64,
    /// Entries this node held outside its own range that no owner had
    /// confirmed for a repair interval and a quarter, sent back to the
    /// owner a lookup found (once each; §10.4, "Strays").
    pub strays_returned: u64,
    /// Gets whose first `r_d` answers all said "not held", which then
    /// asked the rest of the lookup's list (§10.3).
    pub gets_widened: u64,
}
