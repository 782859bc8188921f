//! The `sync` component (spec/sync.md): a table every node that runs it
//! holds. Writes are signed entries with a hybrid-logical timestamp; the
//! first writer of a key leases it; every accepted entry is relayed to the
//! other peers (a flood that ends because a node accepts an entry once);
//! anti-entropy compares range digests on every new session and
//! periodically, and exchanges only what differs.

mod api;
pub(crate) mod config;
mod map;
mod table;

pub use api::{SyncCommand, SyncError, SyncEvent, SyncHeld, SyncStats, SyncUsage};
pub use config::SyncConfig;
pub use map::{decode_sync_map, encode_sync_map};

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use tracing::debug;

use crate::cx::{Conns, Cx};
use crate::session::{EncodeError, Prepared};
use crate::time::Instant;
use crate::timer::DeadlineQueue;
use crate::wire::{
    Capabilities, MAX_SYNC_BATCH, MAX_SYNC_DEPTH, MAX_SYNC_KEY, MAX_SYNC_RANGES, Message,
    SyncDigest, SyncEntry, SyncPublish, SyncPull, SyncRange, sync_signed_bytes,
};
use crate::{Accepted, NodeId};

use table::{Caps, Offer, SYNC_LEAF, Table};

/// Most keys one `SyncPull` is answered with (honest pulls ask for at most
/// 256 leaf ranges of 16 keys).
const MAX_PULL_KEYS: usize = 4_096;
/// Most keys sent for one range at the deepest depth.
const MAX_DEEPEST_KEYS: usize = 256;
/// Forged entries a peer may send before it is closed (an honest node
/// verifies before it relays, so it never sends one).
const MAX_FORGERIES: u32 = 3;
/// A `SyncPublish` is closed once its entries pass this many bytes.
const PUBLISH_BYTES: usize = 256 << 10;

/// The component's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Anti-entropy with the next peer, and tombstone collection.
    Round,
}

/// The sync component.
pub(crate) struct SyncTable {
    config: SyncConfig,
    table: Table,
    pub(crate) timers: DeadlineQueue<Timer>,
    armed: bool,
    /// The driver's wall clock: (`now` then, UNIX µs then).
    clock: Option<(Instant, u64)>,
    /// The peer of the last periodic exchange (round robin in id order).
    last_partner: Option<NodeId>,
    /// Forged entries each up peer has sent (an entry goes when the peer
    /// goes down, so there are at most as many as peers up).
    strikes: HashMap<NodeId, u32, FixedState>,
    pub(crate) stats: SyncStats,
}

impl SyncTable {
    pub(crate) fn new(config: &SyncConfig, hasher: FixedState) -> Self {
        let caps = Caps {
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
            max_bytes_per_writer: config.max_bytes_per_writer,
        };
        SyncTable {
            config: config.clone(),
            table: Table::new(caps, config.lease.as_micros(), hasher.clone()),
            timers: DeadlineQueue::new(),
            armed: false,
            clock: None,
            last_partner: None,
            strikes: HashMap::with_hasher(hasher),
            stats: SyncStats::default(),
        }
    }

    /// This node's wall clock (spec/sync.md §2).
    fn wall(&self, now: Instant) -> u64 {
        match self.clock {
            None => now.as_micros(),
            Some((then, unix)) => unix.saturating_add((now - then).as_micros()),
        }
    }

    /// Tombstones written before this are compacted (spec/sync.md §4): a
    /// peer may collect them before our next round, with a margin for
    /// clocks (`2 · max_skew`) and rounds.
    fn young(&self, now: Instant) -> u64 {
        let margin =
            self.config.max_skew + self.config.max_skew + self.config.anti_entropy_interval;
        let keep = self
            .config
            .tombstone_ttl
            .as_micros()
            .saturating_sub(margin.as_micros());
        self.wall(now).saturating_sub(keep)
    }

    /// `key`'s winner.
    pub(crate) fn get(&self, key: &[u8]) -> Option<SyncHeld> {
        self.table
            .get(&Bytes::copy_from_slice(key))
            .map(|e| SyncHeld {
                value: e.value.clone(),
                writer: e.writer,
                hlc: e.hlc,
            })
    }

    /// Every winner, in key-hash order.
    pub(crate) fn entries(&self) -> Vec<(Bytes, SyncHeld)> {
        self.table
            .winners()
            .map(|e| {
                let held = SyncHeld {
                    value: e.value.clone(),
                    writer: e.writer,
                    hlc: e.hlc,
                };
                (e.key.clone(), held)
            })
            .collect()
    }

    /// The whole table's digest.
    pub(crate) fn digest(&self) -> u64 {
        self.table.digest()
    }

    /// Keys and bytes held.
    pub(crate) fn usage(&self) -> SyncUsage {
        SyncUsage {
            entries: self.table.len(),
            bytes: self.table.bytes(),
        }
    }

    // ----- commands -----

    /// A [`SyncCommand`].
    pub(crate) fn command(
        &mut self,
        cx: &mut dyn Cx,
        command: SyncCommand,
    ) -> Result<Accepted, SyncError> {
        match command {
            SyncCommand::Set { key, value } => self.write(cx, key, Some(value)),
            SyncCommand::Delete { key } => {
                check_key(&key)?;
                match self.table.get(&key) {
                    Some(held) if held.value.is_some() => self.write(cx, key, None),
                    _ => Err(SyncError::NotFound),
                }
            }
            SyncCommand::Merge { key, delta } => {
                check_key(&key)?;
                let mut map = match self.table.get(&key).and_then(|e| e.value.as_ref()) {
                    None => Default::default(),
                    Some(value) => decode_sync_map(value).ok_or(SyncError::NotAMap)?,
                };
                for (item, value) in delta {
                    match value {
                        Some(value) => map.insert(item, value),
                        None => map.remove(&item),
                    };
                }
                self.write(cx, key, Some(encode_sync_map(&map)))
            }
            SyncCommand::Get { key } => {
                check_key(&key)?;
                let id = cx.next_op();
                let held = self.table.get(&key);
                let event = SyncEvent::Got {
                    id,
                    value: held.and_then(|e| e.value.clone()),
                    writer: held.map(|e| e.writer),
                    hlc: held.map_or(0, |e| e.hlc),
                    key,
                };
                cx.emit(event);
                Ok(Accepted::Op(id))
            }
            SyncCommand::SetWallClock { unix_micros } => {
                self.clock = Some((cx.now(), unix_micros));
                Ok(Accepted::Done)
            }
        }
    }

    /// Signs, applies and floods this node's write of `key`.
    fn write(
        &mut self,
        cx: &mut dyn Cx,
        key: Bytes,
        value: Option<Bytes>,
    ) -> Result<Accepted, SyncError> {
        check_key(&key)?;
        if let Some(value) = &value
            && value.len() > self.config.max_value_len
        {
            return Err(SyncError::ValueTooLarge {
                len: value.len(),
                max: self.config.max_value_len,
            });
        }
        let held = self.table.get(&key);
        let floor = held.map_or(0, |e| e.hlc).max(self.table.highest_hlc);
        let hlc = self.wall(cx.now()).max(floor.saturating_add(1));
        if let Some(held) = held
            && held.writer != cx.me()
        {
            let until = held.hlc.saturating_add(self.config.lease.as_micros());
            if hlc < until {
                return Err(SyncError::Leased {
                    owner: held.writer,
                    until,
                });
            }
        }
        let signature = cx.sign(&sync_signed_bytes(&key, hlc, value.as_deref()));
        let entry = SyncEntry::with_signature(key, cx.public_key(), hlc, value, signature);
        match self.table.offer(&entry) {
            Offer::Accepted { .. } => {}
            Offer::Full => return Err(SyncError::Full),
            Offer::WriterQuota => return Err(SyncError::OverQuota),
            // Newer than everything held and by the lease's holder (or
            // after the lease): the rule cannot refuse it.
            refused => {
                debug!(?refused, "own sync write refused by the table");
                return Err(SyncError::Full);
            }
        }
        self.stats.written += 1;
        emit_changed(cx, &entry);
        self.publish(cx, &[entry], None);
        Ok(Accepted::Done)
    }

    // ----- messages -----

    /// A sync message from `from`; `Some(from)` if the router must close
    /// it: it sent [`MAX_FORGERIES`] forged entries.
    #[must_use]
    pub(crate) fn on_message(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        message: Message,
    ) -> Option<NodeId> {
        match message {
            Message::SyncPublish(SyncPublish { entries }) => self.on_publish(cx, from, entries),
            Message::SyncDigest(digest) => self.on_digest(cx, from, digest),
            Message::SyncPull(pull) => self.on_pull(cx, from, pull),
            _ => {}
        }
        let strikes = self.strikes.get(&from).copied().unwrap_or(0);
        if strikes < MAX_FORGERIES {
            return None;
        }
        self.strikes.remove(&from);
        self.stats.peers_closed += 1;
        tracing::info!(peer = %from.short(), forgeries = strikes, "closing peer: it sent forged sync entries");
        Some(from)
    }

    /// `peer` went down: its strikes go with it.
    pub(crate) fn peer_down(&mut self, peer: NodeId) {
        self.strikes.remove(&peer);
    }

    /// Entries to apply: each is checked (spec/sync.md §6); what is
    /// accepted is relayed to every other peer.
    fn on_publish(&mut self, cx: &mut dyn Cx, from: NodeId, entries: Vec<SyncEntry>) {
        let wall = self.wall(cx.now());
        let horizon = wall.saturating_add(self.config.max_skew.as_micros());
        let mut accepted = Vec::new();
        for entry in entries {
            if self.table.is_duplicate(&entry) {
                self.stats.duplicate += 1;
                continue;
            }
            if entry.hlc > horizon {
                self.stats.out_of_skew += 1;
                continue;
            }
            // A tombstone past its time would only be collected again.
            if entry.value.is_none()
                && entry
                    .hlc
                    .saturating_add(self.config.tombstone_ttl.as_micros())
                    <= wall
            {
                self.stats.stale += 1;
                continue;
            }
            if entry
                .value
                .as_ref()
                .is_some_and(|v| v.len() > self.config.max_value_len)
            {
                self.stats.too_large += 1;
                continue;
            }
            // Cheap refusals first: a verification costs more than the rule.
            if let Err(refused) = self.table.check(&entry) {
                self.count(refused);
                continue;
            }
            if !cx.verify(&entry.writer_key, &entry.signed_bytes(), &entry.signature) {
                self.stats.forged += 1;
                *self.strikes.entry(from).or_insert(0) += 1;
                debug!(peer = %from.short(), writer = %entry.writer.short(), "forged sync entry dropped");
                continue;
            }
            match self.table.offer(&entry) {
                Offer::Lost => {
                    self.stats.lease_held += 1;
                    accepted.push(entry);
                }
                Offer::Accepted { changed } => {
                    self.stats.applied += 1;
                    if changed && let Some(winner) = self.table.get(&entry.key) {
                        let winner = winner.clone();
                        emit_changed(cx, &winner);
                    }
                    accepted.push(entry);
                }
                refused => self.count(refused),
            }
        }
        if !accepted.is_empty() {
            let copies = self.publish(cx, &accepted, Some(from));
            self.stats.relayed += copies;
        }
    }

    fn count(&mut self, refused: Offer) {
        let counter = match refused {
            Offer::Duplicate => &mut self.stats.duplicate,
            Offer::Stale => &mut self.stats.stale,
            Offer::LeaseHeld | Offer::Lost => &mut self.stats.lease_held,
            Offer::Full => &mut self.stats.refused_full,
            Offer::WriterQuota => &mut self.stats.refused_writer_quota,
            Offer::Accepted { .. } => return,
        };
        *counter += 1;
    }

    /// Sends `entries` to every up peer with `SYNC` except `except`,
    /// encoded once; the entry copies queued.
    fn publish(&mut self, cx: &mut dyn Cx, entries: &[SyncEntry], except: Option<NodeId>) -> u64 {
        let mut targets = Conns::new();
        cx.for_each_link(&mut |id, conn| {
            if Some(id) != except
                && cx
                    .peer_caps(id)
                    .is_some_and(|c| c.contains(Capabilities::SYNC))
            {
                targets.push(conn);
            }
        });
        if targets.is_empty() {
            return 0;
        }
        targets.sort_unstable();
        let mut copies = 0;
        for batch in batches(entries) {
            let count = batch.entries.len() as u64;
            let message = Message::SyncPublish(batch);
            let mut prepared = Prepared::new(&message);
            for &conn in &targets {
                match cx.send_prepared(conn, &mut prepared) {
                    Ok(()) => copies += count,
                    Err(EncodeError::TooLarge { .. }) => self.stats.oversized += count,
                    Err(_) => {}
                }
            }
        }
        copies
    }

    /// Sends `entries` to `peer` alone.
    fn send_entries(&mut self, cx: &mut dyn Cx, peer: NodeId, entries: &[SyncEntry]) {
        for batch in batches(entries) {
            let count = batch.entries.len() as u64;
            match cx.send(peer, &Message::SyncPublish(batch)) {
                Ok(()) => self.stats.entries_sent += count,
                Err(crate::cx::SendError::TooLarge { .. }) => self.stats.oversized += count,
                Err(_) => return,
            }
        }
    }

    /// Starts an anti-entropy exchange with `peer`: our 16 depth-1 ranges.
    fn start_exchange(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        self.stats.exchanges += 1;
        let digest = SyncDigest {
            depth: 1,
            ranges: self.table.top(),
        };
        if cx.send(peer, &Message::SyncDigest(digest)).is_ok() {
            self.stats.digests_sent += 1;
        }
    }

    /// A peer's digests (spec/sync.md §5): equal ranges end there; small or
    /// deepest ones are exchanged entry by entry; others are split.
    fn on_digest(&mut self, cx: &mut dyn Cx, from: NodeId, digest: SyncDigest) {
        let depth = digest.depth;
        let mut deeper: Vec<SyncRange> = Vec::new();
        let mut pull: Vec<u64> = Vec::new();
        let mut push: Vec<SyncEntry> = Vec::new();
        for theirs in digest.ranges {
            let mine = self.table.range(depth, theirs.prefix);
            if (mine.digest, mine.keys) == (theirs.digest, theirs.keys) {
                continue;
            }
            let small = mine.keys.saturating_add(theirs.keys) <= SYNC_LEAF;
            if small || depth >= MAX_SYNC_DEPTH {
                if mine.keys > 0 {
                    let (entries, _) =
                        self.table
                            .entries_in(depth, theirs.prefix, MAX_DEEPEST_KEYS);
                    push.extend(entries);
                }
                if theirs.keys > 0 {
                    pull.push(theirs.prefix);
                }
            } else {
                deeper.extend(self.table.children(depth, theirs.prefix));
            }
        }
        if !push.is_empty() {
            self.send_entries(cx, from, &push);
        }
        for ranges in deeper.chunks(MAX_SYNC_RANGES) {
            let message = Message::SyncDigest(SyncDigest {
                depth: depth + 1,
                ranges: ranges.to_vec(),
            });
            if cx.send(from, &message).is_err() {
                return;
            }
            self.stats.digests_sent += 1;
        }
        for prefixes in pull.chunks(MAX_SYNC_RANGES) {
            let message = Message::SyncPull(SyncPull {
                depth,
                prefixes: prefixes.to_vec(),
            });
            if cx.send(from, &message).is_err() {
                return;
            }
            self.stats.pulls_sent += 1;
        }
    }

    /// A peer asks for our entries of some ranges.
    fn on_pull(&mut self, cx: &mut dyn Cx, from: NodeId, pull: SyncPull) {
        let mut entries = Vec::new();
        let mut budget = MAX_PULL_KEYS;
        for prefix in pull.prefixes {
            if budget == 0 {
                break;
            }
            let (range, keys) = self.table.entries_in(pull.depth, prefix, budget);
            budget = budget.saturating_sub(keys);
            entries.extend(range);
        }
        if !entries.is_empty() {
            self.send_entries(cx, from, &entries);
        }
    }

    // ----- peers and timers -----

    /// `peer` came up: the node with the smaller id starts an exchange
    /// (spec/sync.md §5); the periodic round starts with the first peer.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        if !cx
            .peer_caps(peer)
            .is_some_and(|c| c.contains(Capabilities::SYNC))
        {
            return;
        }
        if !self.armed {
            self.armed = true;
            self.arm(cx);
        }
        if cx.me() < peer {
            self.start_exchange(cx, peer);
        }
    }

    fn arm(&mut self, cx: &mut dyn Cx) {
        let at = cx.now() + self.config.anti_entropy_interval;
        let seq = cx.timer_seq();
        self.timers.push_seq(at, seq, Timer::Round);
    }

    /// A timer fired: collect old tombstones, start an exchange with the
    /// next peer, arm the next round.
    pub(crate) fn fire(&mut self, cx: &mut dyn Cx, timer: Timer) {
        match timer {
            Timer::Round => {
                let before = self
                    .wall(cx.now())
                    .saturating_sub(self.config.tombstone_ttl.as_micros());
                self.stats.tombstones_collected += self.table.collect_tombstones(before);
                self.table.compact_tombstones(self.young(cx.now()));
                let peers: Vec<NodeId> = cx
                    .peers_up()
                    .into_iter()
                    .filter(|&p| {
                        cx.peer_caps(p)
                            .is_some_and(|c| c.contains(Capabilities::SYNC))
                    })
                    .collect();
                let next = self
                    .last_partner
                    .and_then(|last| peers.iter().find(|&&p| p > last))
                    .or(peers.first())
                    .copied();
                if let Some(peer) = next {
                    self.last_partner = Some(peer);
                    self.start_exchange(cx, peer);
                }
                self.arm(cx);
            }
        }
    }
}

/// Splits `entries` into `SyncPublish` messages of at most
/// [`MAX_SYNC_BATCH`] entries and about [`PUBLISH_BYTES`] bytes.
fn batches(entries: &[SyncEntry]) -> Vec<SyncPublish> {
    let mut out = Vec::new();
    let mut batch: Vec<SyncEntry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let len = entry.encoded_len();
        if !batch.is_empty() && (batch.len() == MAX_SYNC_BATCH || bytes + len > PUBLISH_BYTES) {
            out.push(SyncPublish {
                entries: core::mem::take(&mut batch),
            });
            bytes = 0;
        }
        bytes += len;
        batch.push(entry.clone());
    }
    if !batch.is_empty() {
        out.push(SyncPublish { entries: batch });
    }
    out
}

fn check_key(key: &Bytes) -> Result<(), SyncError> {
    if key.is_empty() || key.len() > MAX_SYNC_KEY {
        return Err(SyncError::BadKey(key.len()));
    }
    Ok(())
}

fn emit_changed(cx: &mut dyn Cx, entry: &SyncEntry) {
    cx.emit(SyncEvent::Changed {
        key: entry.key.clone(),
        value: entry.value.clone(),
        writer: entry.writer,
        hlc: entry.hlc,
    });
}
