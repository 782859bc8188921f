//! The `sync` component's commands, events, refusals and counters.

use bytes::Bytes;

use crate::{NodeId, OpId};

/// The sync table: [`Command::Sync`](crate::Command::Sync).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncCommand {
    /// Writes `value` under `key`, signed by this node, and floods it.
    /// Refused while another node's lease on the key holds. Applied at
    /// once ([`SyncEvent::Changed`]).
    Set {
        /// 1 to 256 bytes.
        key: Bytes,
        /// At most `sync.max_value_len` bytes.
        value: Bytes,
    },
    /// Deletes `key`: writes a tombstone (which holds the lease like a
    /// value), signed by this node, and floods it.
    Delete {
        /// 1 to 256 bytes.
        key: Bytes,
    },
    /// A shallow map merge (py2p's `delta`): reads the key's value as a
    /// map ([`decode_sync_map`](crate::decode_sync_map); absent or deleted
    /// is empty), sets each `Some` of `delta` and removes each `None`, and
    /// writes the result as [`SyncCommand::Set`] would.
    Merge {
        /// 1 to 256 bytes.
        key: Bytes,
        /// Map keys to set (`Some`) or remove (`None`).
        delta: Vec<(Bytes, Option<Bytes>)>,
    },
    /// Reads `key` locally: answered at once with [`SyncEvent::Got`]
    /// (`Accepted::Op` carries its id). [`Node::sync_get`](crate::Node::sync_get)
    /// reads without an event.
    Get {
        /// 1 to 256 bytes.
        key: Bytes,
    },
    /// The driver's wall clock now, in microseconds since the UNIX epoch
    /// (spec/sync.md §2): entry timestamps and leases count from it. The
    /// adapters send it when they create the node; a node never told uses
    /// its `Instant` as wall time (right when all nodes share one virtual
    /// clock, as in the simulator).
    SetWallClock {
        /// Microseconds since 1970-01-01 UTC.
        unix_micros: u64,
    },
}

/// A change of the sync table: [`Event::Sync`](crate::Event::Sync).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncEvent {
    /// The winner of `key` changed, by this node's write or another's.
    Changed {
        /// The key.
        key: Bytes,
        /// The value; `None` if the key was deleted.
        value: Option<Bytes>,
        /// Who signed the write.
        writer: NodeId,
        /// Its timestamp (microseconds since the UNIX epoch, writer's clock).
        hlc: u64,
    },
    /// The answer to a [`SyncCommand::Get`].
    Got {
        /// The command's id.
        id: OpId,
        /// The key.
        key: Bytes,
        /// The value; `None` if never written or deleted.
        value: Option<Bytes>,
        /// Who wrote it last (`None` if never written or collected).
        writer: Option<NodeId>,
        /// Its timestamp (0 if never written).
        hlc: u64,
    },
}

/// Why a [`SyncCommand`] was refused. Nothing changed and nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// `Config::sync` is `None`.
    #[error("the sync table is not enabled in this node's config")]
    Off,
    /// A key is empty or longer than 256 bytes.
    #[error("key of {0} bytes; keys have 1 to 256")]
    BadKey(usize),
    /// A value is over `sync.max_value_len`.
    #[error("value of {len} bytes over the {max}-byte limit")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Another node leases the key: only it may write until `until`.
    #[error("the key is leased by {owner} until {until} (µs since the UNIX epoch)")]
    Leased {
        /// The lease holder.
        owner: NodeId,
        /// When its lease ends, in its timestamps' clock.
        until: u64,
    },
    /// `Delete` of a key that holds no value.
    #[error("no such key")]
    NotFound,
    /// `Merge` on a value that is not a map.
    #[error("the key's value is not a map")]
    NotAMap,
    /// The table holds `sync.max_entries` keys or `sync.max_bytes` bytes.
    #[error("the sync table is full")]
    Full,
    /// This node's entries would pass `sync.max_bytes_per_writer`.
    #[error("over this writer's quota of the sync table")]
    OverQuota,
}

/// One key's winner ([`Node::sync_get`](crate::Node::sync_get)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncHeld {
    /// The value; `None` for a tombstone (deleted, not yet collected).
    pub value: Option<Bytes>,
    /// Who signed it.
    pub writer: NodeId,
    /// Its timestamp.
    pub hlc: u64,
}

/// What the table holds ([`Node::sync_usage`](crate::Node::sync_usage)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncUsage {
    /// Keys (values and tombstones), at most `sync.max_entries`.
    pub entries: usize,
    /// Bytes of the keys' sets, at most `sync.max_bytes`.
    pub bytes: usize,
}

/// The sync table's counters (spec/sync.md §9). They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStats {
    /// Writes this node signed (`Set`, `Delete`, `Merge`).
    pub written: u64,
    /// Received entries accepted into the table.
    pub applied: u64,
    /// Entry copies relayed to peers after acceptance.
    pub relayed: u64,
    /// Received entries already held.
    pub duplicate: u64,
    /// Received entries older than every entry of their key's truncated set.
    pub stale: u64,
    /// Received entries that lost by the rule (another writer's lease held):
    /// refused, or stored as losers, never visible.
    pub lease_held: u64,
    /// Received entries whose signature does not verify.
    pub forged: u64,
    /// Peers closed for sending 3 forged entries.
    pub peers_closed: u64,
    /// Received entries timestamped more than `sync.max_skew` ahead.
    pub out_of_skew: u64,
    /// Received entries with a value over `sync.max_value_len`.
    pub too_large: u64,
    /// Received entries refused because the table was full.
    pub refused_full: u64,
    /// Received entries refused because their writer was over its quota.
    pub refused_writer_quota: u64,
    /// Tombstones forgotten after `sync.tombstone_ttl`.
    pub tombstones_collected: u64,
    /// Anti-entropy exchanges this node started.
    pub exchanges: u64,
    /// `SyncDigest` messages sent.
    pub digests_sent: u64,
    /// `SyncPull` messages sent.
    pub pulls_sent: u64,
    /// Entries sent in answer to anti-entropy (digests and pulls).
    pub entries_sent: u64,
    /// Entry copies not sent because they exceed a peer's frame cap.
    pub oversized: u64,
}
