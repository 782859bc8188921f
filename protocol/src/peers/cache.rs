//! The peer cache: nodes this node has heard of, with their listen
//! addresses, capped at `PeersConfig::max_known_peers`, kept so that
//! strangers cannot wash out the peers that worked (eclipse resistance,
//! after Bitcoin Core's addrman).
//!
//! Two tables, each a fixed grid of buckets × slots:
//!
//! - **tried**: nodes this node dialled itself and authenticated (this run,
//!   or a previous one it was restored from). A quarter of the cap.
//! - **new**: nodes heard of (gossip, `AddPeers`, chord pointers) and nodes
//!   that dialled us (inbound-only: they proved an id, but we did not choose
//!   them, so they are "new" at most). The rest of the cap.
//!
//! An entry's slot is a keyed hash: in tried, of the group (/16 for IPv4,
//! /32 for IPv6; 127.x.y.z like any public address) of its address, spread
//! over at most [`BUCKETS_PER_GROUP`] buckets; in new, of the group of the
//! *source* that told us (the peer that sent the `PeerList`, the inbound
//! connection's address), spread by the entry's address over at most
//! [`BUCKETS_PER_GROUP`] buckets. The key is derived from the node seed and its identity secret,
//! so an attacker cannot aim at a slot. Hence:
//!
//! - one source group can fill only its own few buckets of the new table;
//! - nothing that arrives by gossip or inbound ever enters the tried table,
//!   so it can never displace a tried entry;
//! - a tried entry that fails is not dropped at once: only a newly tried
//!   peer that lands on its slot displaces it, and only after
//!   [`TRIED_EVICT_FAILURES`] dials in a row failed; it then moves back to
//!   new.
//!
//! A connected peer that finds no cell (its slot held by entries that work)
//! is kept as a *guest* while it is connected, at most
//! `peers.max_connections` of them: the ring and the request layer need the
//! address of every peer that is up. The maintenance round drops guests
//! that are gone.
//!
//! Wanted peers (the application's) are never evicted, and take the slot
//! of any unwanted entry; one whose slot another wanted peer holds is not
//! cached (as before: the application's earlier choices stand).

use core::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;
use tracing::debug;

use super::api::KnownPeer;
use super::table::IdMap;
use crate::NodeId;
use crate::time::{Duration, Instant};
use crate::wire::{MAX_LISTEN_ADDRS, PeerEntry};

/// What the node knows about one other node.
#[derive(Debug, Clone)]
pub(crate) struct CacheEntry {
    /// Where it accepts connections: one IPv4 address inline (a node
    /// listens on one address as a rule), anything else on the heap; 16
    /// bytes where a `SmallVec` of one took 40, in every entry of every
    /// node's cache.
    pub(crate) addrs: Addrs,
    /// No dial before this.
    pub(crate) next_dial_at: Instant,
    /// When a session with it was last established, in microseconds;
    /// `u64::MAX` if never (8 bytes rather than the 16 of an
    /// `Option<Instant>`: see [`CacheEntry::last_connected`]).
    last_connected: u64,
    /// Its cell in its table's grid, or [`NO_CELL`] for a *guest*: a
    /// connected peer that found no cell, kept only while it is connected
    /// (the other components need the address of every peer that is up).
    /// A `u32` (a grid has `max_known_peers` cells, far fewer than 2^32)
    /// and a sentinel: 4 bytes where an `Option<u32>` takes 8.
    cell: u32,
    /// Failed dials since the last established session
    /// ([`CacheEntry::failures`]): a `u16` that saturates. What reads it
    /// compares it with 3 and 8 (`TRIED_EVICT_FAILURES`, `LOST_REDIALS`),
    /// caps the redial backoff's exponent at 32, and orders entries by it;
    /// 65,535 failed dials in a row are days of redials at the backoff's
    /// cap, and past them the order among such entries is by the next key.
    failures: u16,
    /// `CONFIRMED`, `WANTED`, `LOST` and `TRIED` (one byte where four
    /// `bool`s took four: with the `u16` and the sentinel, an entry is 40
    /// bytes, was 48; a chord member holds ~50 entries, guests included).
    flags: u8,
}

/// [`CacheEntry::confirmed`].
const CONFIRMED: u8 = 1;
/// [`CacheEntry::wanted`].
const WANTED: u8 = 2;
/// [`CacheEntry::lost`].
const LOST: u8 = 4;
/// [`CacheEntry::tried`].
const TRIED: u8 = 8;
/// [`CacheEntry::cell`]: none (a guest).
const NO_CELL: u32 = u32::MAX;

/// A cache entry's listen addresses (at most [`MAX_LISTEN_ADDRS`]) in 16
/// bytes: none, one IPv4 address inline, or any other list (IPv6, several
/// addresses) boxed. A `SmallVec<[SocketAddr; 1]>` took 40 bytes (a
/// `SocketAddr` is 32) and a cache entry 72; this makes it 48.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Addrs {
    #[default]
    None,
    V4(core::net::SocketAddrV4),
    // A thin pointer (a `Box<[SocketAddr]>` is two words, and would make
    // the list 24 bytes); the rare case (IPv6, several addresses).
    #[allow(clippy::box_collection)]
    Other(Box<Vec<SocketAddr>>),
}

impl Addrs {
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Addrs::None)
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Addrs::None => 0,
            Addrs::V4(_) => 1,
            Addrs::Other(list) => list.len(),
        }
    }

    pub(crate) fn first(&self) -> Option<SocketAddr> {
        match self {
            Addrs::None => None,
            Addrs::V4(v4) => Some(SocketAddr::V4(*v4)),
            Addrs::Other(list) => list.first().copied(),
        }
    }

    /// The addresses, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let (one, list): (Option<SocketAddr>, &[SocketAddr]) = match self {
            Addrs::None => (None, &[]),
            Addrs::V4(v4) => (Some(SocketAddr::V4(*v4)), &[]),
            Addrs::Other(list) => (None, list),
        };
        one.into_iter().chain(list.iter().copied())
    }

    /// Whether these are `addrs`, in order.
    pub(crate) fn is(&self, addrs: &[SocketAddr]) -> bool {
        self.len() == addrs.len() && self.iter().eq(addrs.iter().copied())
    }
}

impl FromIterator<SocketAddr> for Addrs {
    fn from_iter<I: IntoIterator<Item = SocketAddr>>(iter: I) -> Self {
        let list: SmallVec<[SocketAddr; 2]> = iter.into_iter().collect();
        match list[..] {
            [] => Addrs::None,
            [SocketAddr::V4(v4)] => Addrs::V4(v4),
            _ => Addrs::Other(Box::new(list.into_vec())),
        }
    }
}

impl CacheEntry {
    /// When a session with it was last established, if one was.
    pub(crate) fn last_connected(&self) -> Option<Instant> {
        (self.last_connected != u64::MAX).then(|| Instant::from_micros(self.last_connected))
    }

    fn cell(&self) -> Option<usize> {
        (self.cell != NO_CELL).then_some(self.cell as usize)
    }

    fn set_cell(&mut self, cell: usize) {
        debug_assert!(cell < NO_CELL as usize);
        self.cell = cell as u32;
    }

    /// Makes it a guest (no cell).
    fn clear_cell(&mut self) {
        self.cell = NO_CELL;
    }

    fn flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// The addresses came from the node itself (its `Hello`), not from
    /// gossip.
    pub(crate) fn confirmed(&self) -> bool {
        self.flag(CONFIRMED)
    }

    pub(crate) fn set_confirmed(&mut self, on: bool) {
        self.set_flag(CONFIRMED, on);
    }

    /// The application asked for this peer: it is redialled whenever it is
    /// not connected, whatever the peer count.
    pub(crate) fn wanted(&self) -> bool {
        self.flag(WANTED)
    }

    pub(crate) fn set_wanted(&mut self, on: bool) {
        self.set_flag(WANTED, on);
    }

    /// It was up and was lost to a fault (reset, silence): it is redialled
    /// even when the node is at its target, until it is back or
    /// [`LOST_REDIALS`] dials have failed. This is what reconnects two
    /// halves of a network that each filled up on their own side (py2p
    /// issue #58).
    pub(crate) fn lost(&self) -> bool {
        self.flag(LOST)
    }

    pub(crate) fn set_lost(&mut self, on: bool) {
        self.set_flag(LOST, on);
    }

    /// This node dialled it and authenticated it: it is in the tried
    /// table (else in the new one).
    pub(crate) fn tried(&self) -> bool {
        self.flag(TRIED)
    }

    fn set_tried(&mut self, on: bool) {
        self.set_flag(TRIED, on);
    }

    /// Failed dials since the last established session (saturating at
    /// `u16::MAX`).
    pub(crate) fn failures(&self) -> u32 {
        u32::from(self.failures)
    }

    /// A dial failed.
    pub(crate) fn dial_failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// A session was established: no failures since.
    pub(crate) fn clear_failures(&mut self) {
        self.failures = 0;
    }
}

/// Redials of a peer lost to a fault, whatever the peer count.
pub(crate) const LOST_REDIALS: u32 = 8;

/// Slots per bucket (fewer when the table is smaller). A newcomer takes the
/// first free slot of its bucket.
pub(crate) const BUCKET_SIZE: usize = 16;

/// Buckets one address group can reach in the tried table, and one source
/// group in the new table.
pub(crate) const BUCKETS_PER_GROUP: u64 = 4;

/// Dials in a row a tried entry must have failed before a newly tried peer
/// may take its slot (test-before-evict by failure count).
pub(crate) const TRIED_EVICT_FAILURES: u32 = 3;

/// At most one log line about refused and evicted entries this often.
const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The share of `max_known_peers` that is the tried table: one in
/// `TRIED_SHARE`.
const TRIED_SHARE: usize = 4;

/// An address group: `[4, a, b]` for IPv4 a.b.x.y, `[6, …]` for the first
/// 32 bits of IPv6 (IPv4-mapped IPv6 counts as IPv4).
type Group = [u8; 5];

fn group(addr: &SocketAddr) -> Group {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [4, o[0], o[1], 0, 0]
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [6, o[0], o[1], o[2], o[3]]
        }
    }
}

/// An address's IP as 16 bytes (IPv4 as IPv4-mapped IPv6).
fn ip_bytes(addr: &SocketAddr) -> [u8; 16] {
    match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// One table: `buckets` × `slots` cells, each empty or an id.
///
/// The ids and which cells hold one are kept apart: an `Option<NodeId>` is
/// 24 bytes, an id 16, and every id is possible (a claimed id in plaintext
/// mode can be anything, zero included), so no id can stand for "empty".
/// A bit a cell costs 2 bytes per 16 cells; the 32 cells of a node with the
/// default settings take 520 bytes rather than 768.
struct Grid {
    buckets: usize,
    slots: usize,
    /// The cells' ids; an empty cell's is stale and never read.
    ids: Box<[NodeId]>,
    /// Bit `c % 64` of word `c / 64`: whether cell `c` holds an id.
    occupied: Box<[u64]>,
    used: usize,
}

impl Grid {
    /// A grid of at most `capacity` cells in buckets of at most
    /// [`BUCKET_SIZE`].
    fn new(capacity: usize) -> Self {
        let buckets = capacity.div_ceil(BUCKET_SIZE);
        let slots = capacity.checked_div(buckets).unwrap_or(0);
        let cells = buckets * slots;
        Grid {
            buckets,
            slots,
            ids: vec![NodeId::default(); cells].into_boxed_slice(),
            occupied: vec![0; cells.div_ceil(64)].into_boxed_slice(),
            used: 0,
        }
    }

    fn is_empty_grid(&self) -> bool {
        self.ids.is_empty()
    }

    /// How many cells the grid has, empty or not.
    #[cfg(test)]
    fn cells(&self) -> usize {
        self.ids.len()
    }

    /// The id in `cell`, if any.
    fn get(&self, cell: usize) -> Option<NodeId> {
        (self.occupied[cell / 64] & (1 << (cell % 64)) != 0).then(|| self.ids[cell])
    }

    fn put(&mut self, cell: usize, id: NodeId) {
        let (word, bit) = (cell / 64, 1u64 << (cell % 64));
        if self.occupied[word] & bit == 0 {
            self.occupied[word] |= bit;
            self.used += 1;
        }
        self.ids[cell] = id;
    }

    fn clear(&mut self, cell: usize) {
        let (word, bit) = (cell / 64, 1u64 << (cell % 64));
        if self.occupied[word] & bit != 0 {
            self.occupied[word] &= !bit;
            self.used -= 1;
        }
    }
}

/// The new table's bucket for each of one source group's
/// [`BUCKETS_PER_GROUP`] spreads, as far as they were hashed: the middle
/// of a new cell's three keyed hashes (`"new bucket"`, of the source
/// group and the spread) computed once per group rather than at every
/// placement. New entries come in runs from one source group: the up to
/// `peer_exchange_size` entries of a `PeerList` all count as told by its
/// sender, and inbound peers come from a LAN, a cloud region, or (every
/// simulated node) one group. A placement then costs two keyed hashes,
/// not three. (A table of one bucket, as small caches have, needs neither
/// the spread nor the bucket hash: see `PeerCache::new_cell`.)
///
/// Why a memoised bucket is as good as a recomputed one: the hash is a
/// pure function of the cache's key, the table, the group and the spread,
/// reduced modulo the table's bucket count; the key and the grids are
/// fixed when the cache is made and never change while it lives (a
/// new cache gets an empty memo). Nothing can make the memo stale, so
/// nothing invalidates it; another group only replaces it. The cells
/// are the same as without it, bit for bit, so what the keyed hashes
/// guard against (an attacker choosing ids or addresses to aim at
/// cells) is untouched: the memo holds hash outputs of the node's own,
/// never sent anywhere, and an attacker who could read it would learn
/// no more than the cells its entries already sit in.
#[derive(Clone, Copy)]
struct BucketMemo {
    group: Group,
    /// Per spread, its bucket; [`BucketMemo::UNKNOWN`] until hashed. A
    /// `u16`: 14 bytes in every node.
    buckets: [u16; BUCKETS_PER_GROUP as usize],
}

impl BucketMemo {
    /// A spread whose bucket was not hashed yet. Buckets from this one on
    /// (a cache of a million entries) are simply not memoised.
    const UNKNOWN: u16 = u16::MAX;

    const EMPTY: BucketMemo = BucketMemo {
        group: [0; 5],
        buckets: [Self::UNKNOWN; BUCKETS_PER_GROUP as usize],
    };

    fn get(&self, group: &Group, spread: u64) -> Option<u64> {
        let bucket = self.buckets[spread as usize];
        (self.group == *group && bucket != Self::UNKNOWN).then_some(u64::from(bucket))
    }

    fn put(&mut self, group: &Group, spread: u64, bucket: u64) {
        if self.group != *group {
            *self = BucketMemo {
                group: *group,
                ..Self::EMPTY
            };
        }
        if let Ok(bucket) = u16::try_from(bucket) {
            self.buckets[spread as usize] = bucket;
        }
    }
}

/// Known nodes by id, placed in the tried and new tables. See the module
/// docs.
pub(crate) struct PeerCache {
    /// By id (`table.rs`): a hash map's slots spent 11 KB a chord member.
    entries: IdMap<CacheEntry>,
    tried: Grid,
    new: Grid,
    /// Keys the cell hashes: secret, derived from the node seed.
    key: [u8; 32],
    /// The new table's buckets for the source group last placed there.
    new_buckets: BucketMemo,
    me: NodeId,
    /// Guests (connected peers without a cell) held now.
    guests: usize,
    /// Cap on guests: `peers.max_connections`.
    guest_cap: usize,
    /// Newcomers refused because their cell held a better entry.
    pub(crate) refused: u64,
    /// Entries dropped to make room for another.
    pub(crate) evicted: u64,
    /// `refused` and `evicted` when last reported in the log.
    reported: (u64, u64),
    /// No report in the log before this.
    next_report: Instant,
}

impl PeerCache {
    /// A cache of at most `cap` entries in its tables (plus at most
    /// `guest_cap` connected peers that found no cell) for node `me`, its
    /// cells keyed by `key` (secret, derived from the node seed and
    /// identity).
    pub(crate) fn new(me: NodeId, cap: usize, guest_cap: usize, key: [u8; 32]) -> Self {
        let tried = cap / TRIED_SHARE;
        PeerCache {
            entries: IdMap::default(),
            tried: Grid::new(tried),
            new: Grid::new(cap - tried),
            key,
            new_buckets: BucketMemo::EMPTY,
            me,
            guests: 0,
            guest_cap,
            refused: 0,
            evicted: 0,
            reported: (0, 0),
            next_report: Instant::ZERO,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries in the tried table (and tried ones pinned).
    pub(crate) fn tried_len(&self) -> usize {
        self.entries.values().filter(|e| e.tried()).count()
    }

    pub(crate) fn get(&self, id: &NodeId) -> Option<&CacheEntry> {
        self.entries.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &NodeId) -> Option<&mut CacheEntry> {
        self.entries.get_mut(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &CacheEntry)> {
        self.entries.iter()
    }

    // ----- cells -----

    /// The first 8 bytes of the keyed BLAKE3 hash of `parts`, each part
    /// preceded by its length (u32 LE). The parts are laid end to end in a
    /// stack buffer and hashed in one call (every cell's input fits one
    /// 64-byte block: a tenth of the work of feeding a `Hasher` piece by
    /// piece; the digest is the same).
    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut buf = [0u8; 128];
        let mut len = 0;
        let bytes = if parts.iter().map(|p| 4 + p.len()).sum::<usize>() <= buf.len() {
            for part in parts {
                buf[len..len + 4].copy_from_slice(&(part.len() as u32).to_le_bytes());
                buf[len + 4..len + 4 + part.len()].copy_from_slice(part);
                len += 4 + part.len();
            }
            blake3::keyed_hash(&self.key, &buf[..len])
        } else {
            let mut hasher = blake3::Hasher::new_keyed(&self.key);
            for part in parts {
                hasher.update(&(part.len() as u32).to_le_bytes());
                hasher.update(part);
            }
            hasher.finalize()
        };
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    /// The tried cell of `id` whose address group is `entry_group`.
    fn tried_cell(&self, id: NodeId, entry_group: &Group) -> usize {
        let id = &id.to_bytes();
        let bucket = if self.tried.buckets == 1 {
            // Any hash modulo 1 is 0: the spread and the bucket hashes
            // (which only pick the bucket) are not needed to know it.
            0
        } else {
            // No memo here (unlike `new_cell`): the tried table takes the
            // peers this node chose to dial, one at a time and from any
            // group; runs from one group are the new table's (a
            // `PeerList`'s entries all share their sender's group).
            let spread = self.hash(&[b"tried spread", id]) % BUCKETS_PER_GROUP;
            self.hash(&[b"tried bucket", entry_group, &spread.to_le_bytes()])
                % self.tried.buckets as u64
        };
        let slot = self.hash(&[b"tried slot", &bucket.to_le_bytes(), id]) % self.tried.slots as u64;
        self.probe(true, bucket as usize, slot as usize)
    }

    /// The new cell of `id` (first address `entry_ip`, if any) heard of
    /// from a source in `source_group`: the bucket is one of the source
    /// group's [`BUCKETS_PER_GROUP`], picked by the entry's address (so a
    /// network inside one group, a LAN, still spreads over all four).
    fn new_cell(&mut self, id: NodeId, entry_ip: Option<[u8; 16]>, source_group: &Group) -> usize {
        let bucket = if self.new.buckets == 1 {
            // As in `tried_cell`: one bucket needs no hash to be found.
            0
        } else {
            let entry_key = entry_ip.unwrap_or_default();
            let spread = self.hash(&[b"new spread", &entry_key, source_group]) % BUCKETS_PER_GROUP;
            match self.new_buckets.get(source_group, spread) {
                Some(bucket) => bucket,
                None => {
                    let bucket = self.hash(&[b"new bucket", source_group, &spread.to_le_bytes()])
                        % self.new.buckets as u64;
                    self.new_buckets.put(source_group, spread, bucket);
                    bucket
                }
            }
        };
        let slot = self.hash(&[b"new slot", &bucket.to_le_bytes(), &id.to_bytes()])
            % self.new.slots as u64;
        self.probe(false, bucket as usize, slot as usize)
    }

    /// The cell a newcomer to `bucket` of a table gets: the first free one
    /// from `slot` on, else the cell of the bucket's least useful entry
    /// (most failures, then never or longest ago connected, then lowest
    /// id), which the caller evicts only if it yields.
    fn probe(&self, tried: bool, bucket: usize, slot: usize) -> usize {
        let grid = if tried { &self.tried } else { &self.new };
        let base = bucket * grid.slots;
        let cells = (0..grid.slots).map(|k| base + (slot + k) % grid.slots);
        if let Some(free) = cells.clone().find(|&c| grid.get(c).is_none()) {
            return free;
        }
        cells
            .filter_map(|c| {
                grid.get(c)
                    .and_then(|id| self.entries.get(&id).map(|e| (c, id, e)))
            })
            .max_by_key(|(_, id, e)| {
                (
                    !e.wanted(),
                    e.failures(),
                    core::cmp::Reverse(e.last_connected()),
                    core::cmp::Reverse(*id),
                )
            })
            .map_or(base + slot, |(c, _, _)| c)
    }

    /// Whether the entry in a new cell may give way to a newcomer: not
    /// wanted, and its last dial failed (or is in flight with an earlier
    /// failure). Entries never dialled, and those that worked, stay.
    fn new_occupant_yields(&self, id: &NodeId, force: bool) -> bool {
        self.entries
            .get(id)
            .is_none_or(|e| !e.wanted() && (force || e.failures() > 0))
    }

    /// Whether a tried entry may give way to a newly tried peer: not wanted,
    /// and [`TRIED_EVICT_FAILURES`] dials in a row failed.
    fn tried_occupant_yields(&self, id: &NodeId, force: bool) -> bool {
        self.entries
            .get(id)
            .is_none_or(|e| !e.wanted() && (force || e.failures() >= TRIED_EVICT_FAILURES))
    }

    /// Removes `id` from its cell and the index.
    fn take(&mut self, id: &NodeId) -> Option<CacheEntry> {
        let entry = self.entries.remove(id)?;
        match entry.cell() {
            Some(cell) if entry.tried() => self.tried.clear(cell),
            Some(cell) => self.new.clear(cell),
            None => self.guests -= 1,
        }
        Some(entry)
    }

    /// Drops the guests that are no longer connected (`is_up` says who is).
    pub(crate) fn prune_guests(&mut self, is_up: impl Fn(&NodeId) -> bool) {
        if self.guests == 0 {
            return;
        }
        let mut gone: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|(id, e)| e.cell().is_none() && !is_up(id))
            .map(|(&id, _)| id)
            .collect();
        gone.sort_unstable();
        for id in gone {
            self.take(&id);
        }
    }

    /// Keeps a connected peer that found no cell as a guest, if there is
    /// room for one; else counts a refusal.
    fn admit_guest(&mut self, id: NodeId, mut entry: CacheEntry) {
        if self.guests >= self.guest_cap {
            self.refused += 1;
            debug!(peer = %id.short(), "peer cache: no slot and no guest room; entry dropped");
            return;
        }
        entry.set_tried(false);
        entry.clear_cell();
        self.guests += 1;
        self.entries.insert(id, entry);
    }

    /// Places `entry` (not in the index) in the new table, heard of from a
    /// source in `source_group`, if its cell is free or its occupant yields
    /// (any unwanted one when `force`). Counts a refusal otherwise.
    fn place_new(
        &mut self,
        id: NodeId,
        entry: CacheEntry,
        source_group: &Group,
        force: bool,
    ) -> bool {
        match self.try_place_new(id, entry, source_group, force) {
            Ok(()) => true,
            Err(_) => {
                self.refused += 1;
                debug!(peer = %id.short(), "peer cache: new slot taken; entry dropped");
                false
            }
        }
    }

    /// [`PeerCache::place_new`] without counting: gives the entry back if
    /// it found no cell.
    fn try_place_new(
        &mut self,
        id: NodeId,
        mut entry: CacheEntry,
        source_group: &Group,
        force: bool,
    ) -> Result<(), CacheEntry> {
        if self.new.is_empty_grid() {
            return Err(entry);
        }
        let cell = self.new_cell(id, entry.addrs.first().as_ref().map(ip_bytes), source_group);
        if let Some(occupant) = self.new.get(cell) {
            if !self.new_occupant_yields(&occupant, force) {
                return Err(entry);
            }
            self.take(&occupant);
            self.evicted += 1;
            debug!(peer = %occupant.short(), "peer cache: entry replaced in new");
        }
        entry.set_tried(false);
        entry.set_cell(cell);
        self.new.put(cell, id);
        self.entries.insert(id, entry);
        Ok(())
    }

    /// Frees the tried cell for `id` (address group `entry_group`): empty,
    /// or its occupant yields (any unwanted one when `force`) and moves back
    /// to new. Returns the cell, or `None` if the occupant stays.
    fn free_tried_cell(&mut self, id: NodeId, group_of_id: &Group, force: bool) -> Option<usize> {
        if self.tried.is_empty_grid() {
            return None;
        }
        let cell = self.tried_cell(id, group_of_id);
        let Some(occupant) = self.tried.get(cell) else {
            return Some(cell);
        };
        if occupant == id {
            return None;
        }
        if !self.tried_occupant_yields(&occupant, force) {
            debug!(peer = %id.short(), "peer cache: tried slot held by a working peer; stays new");
            return None;
        }
        // Back to new, as if it had told us about itself. Never at the cost
        // of an entry that worked (no force), so not of `id`'s own.
        if let Some(old) = self.take(&occupant) {
            let own = entry_group(old.addrs.first(), group_of_id);
            debug!(peer = %occupant.short(), "peer cache: failing tried entry moved back to new");
            self.place_new(occupant, old, &own, false);
        }
        Some(cell)
    }

    /// Moves `id` (in the new table, `failures` = 0 or restored) into the
    /// tried table if its cell can be had. Returns whether it is tried now.
    fn promote(&mut self, id: NodeId, force: bool) -> bool {
        let Some(entry) = self.entries.get(&id) else {
            return false;
        };
        if entry.tried() {
            return true;
        }
        let own = entry_group(entry.addrs.first(), &[0; 5]);
        let Some(cell) = self.free_tried_cell(id, &own, force) else {
            return false;
        };
        let Some(mut entry) = self.take(&id) else {
            return false;
        };
        entry.set_tried(true);
        entry.set_cell(cell);
        self.tried.put(cell, id);
        self.entries.insert(id, entry);
        true
    }

    /// Places a new entry (not in the index) that this node dialled and
    /// authenticated: in tried if its cell can be had, else in new as told
    /// by `source_group`.
    fn try_place_dialled(
        &mut self,
        id: NodeId,
        mut entry: CacheEntry,
        source_group: &Group,
        force: bool,
    ) -> Result<(), CacheEntry> {
        let own = entry_group(entry.addrs.first(), source_group);
        if let Some(cell) = self.free_tried_cell(id, &own, force) {
            entry.set_tried(true);
            entry.set_cell(cell);
            self.tried.put(cell, id);
            self.entries.insert(id, entry);
            return Ok(());
        }
        self.try_place_new(id, entry, source_group, force)
    }

    fn fresh(addrs: &[SocketAddr], now: Instant) -> CacheEntry {
        CacheEntry {
            addrs: addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect(),
            next_dial_at: now,
            last_connected: u64::MAX,
            cell: NO_CELL,
            failures: 0,
            flags: 0,
        }
    }

    // ----- what the layer tells the cache -----

    /// Records a completed handshake: `addrs` are what the node announced
    /// itself (its `Hello`), `remote` the connection's address. A node this
    /// node dialled (`outbound`) goes to the tried table; one that dialled
    /// us to the new table (source: `remote`), never displacing an entry
    /// that works. `wanted` marks the application's peer, which takes the
    /// slot of any unwanted entry.
    pub(crate) fn confirm(
        &mut self,
        id: NodeId,
        addrs: &[SocketAddr],
        outbound: bool,
        remote: SocketAddr,
        wanted: bool,
        now: Instant,
    ) {
        if id == self.me {
            return;
        }
        let source = group(&remote);
        if let Some(entry) = self.entries.get_mut(&id) {
            if !addrs.is_empty() {
                entry.addrs = addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect();
                entry.set_confirmed(true);
            }
            entry.clear_failures();
            entry.last_connected = now.as_micros();
            entry.set_lost(false);
            if wanted {
                entry.set_wanted(true);
            }
            let force = entry.wanted();
            if outbound {
                self.promote(id, force);
            }
            return;
        }
        let mut entry = Self::fresh(addrs, now);
        entry.set_confirmed(!addrs.is_empty());
        entry.last_connected = now.as_micros();
        entry.set_wanted(wanted);
        let placed = if outbound {
            self.try_place_dialled(id, entry, &source, wanted)
        } else {
            self.try_place_new(id, entry, &source, wanted)
        };
        if let Err(entry) = placed {
            self.admit_guest(id, entry);
        }
    }

    /// Records a gossiped entry (a `PeerList` from a peer at `source`;
    /// `AddPeers` and ring pointers have none, and count as told by the
    /// entry itself). Returns whether the cache changed.
    pub(crate) fn learn(
        &mut self,
        entry: &PeerEntry,
        source: Option<SocketAddr>,
        now: Instant,
    ) -> bool {
        if entry.id == self.me || entry.addrs.is_empty() {
            return false;
        }
        if let Some(known) = self.entries.get_mut(&entry.id) {
            // A node's own word beats gossip; gossip fills a blank.
            if known.confirmed() || known.addrs.is(&entry.addrs) {
                return false;
            }
            known.addrs = entry.addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect();
            return true;
        }
        let source_group = source.map_or_else(|| group(&entry.addrs[0]), |s| group(&s));
        self.place_new(
            entry.id,
            Self::fresh(&entry.addrs, now),
            &source_group,
            false,
        )
    }

    /// Restores an entry saved by a previous run
    /// ([`PeersCommand::RestorePeers`](crate::PeersCommand::RestorePeers)):
    /// a tried one goes back to the tried table (to new if its slot is
    /// taken), a new one is learnt as told by itself. Returns whether the
    /// cache changed.
    pub(crate) fn restore(&mut self, peer: &KnownPeer, now: Instant) -> bool {
        let entry = PeerEntry {
            id: peer.id,
            addrs: peer.addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect(),
        };
        let learnt = self.learn(&entry, None, now);
        if !peer.tried {
            return learnt;
        }
        if self.entries.get(&peer.id).is_some_and(|e| e.tried()) {
            return learnt;
        }
        if self.entries.contains_key(&peer.id) {
            return self.promote(peer.id, false) || learnt;
        }
        // Its new slot was taken: its tried one may not be.
        if peer.id == self.me || entry.addrs.is_empty() {
            return false;
        }
        let own = group(&entry.addrs[0]);
        let fresh = Self::fresh(&entry.addrs, now);
        match self.free_tried_cell(peer.id, &own, false) {
            Some(cell) => {
                let mut fresh = fresh;
                fresh.set_tried(true);
                fresh.set_cell(cell);
                self.tried.put(cell, peer.id);
                self.entries.insert(peer.id, fresh);
                true
            }
            None => false,
        }
    }

    /// Entries refused and evicted since the last report, if any and if
    /// [`REPORT_INTERVAL`] has passed since it (the maintenance round logs
    /// them: a flood of identities or gossip shows in the log once a
    /// minute, not once an entry).
    pub(crate) fn report(&mut self, now: Instant) -> Option<(u64, u64)> {
        let since = (
            self.refused - self.reported.0,
            self.evicted - self.reported.1,
        );
        if now < self.next_report || since == (0, 0) {
            return None;
        }
        self.reported = (self.refused, self.evicted);
        self.next_report = now + REPORT_INTERVAL;
        Some(since)
    }

    // ----- reading -----

    /// The entries with addresses in the tables (not guests: they are
    /// kept only while connected): tried ones first, then new ones, each
    /// part in id order (for `Node::peer_cache`).
    pub(crate) fn export_known(&self) -> Vec<KnownPeer> {
        let mut out: Vec<KnownPeer> = self
            .entries
            .iter()
            .filter(|(_, p)| !p.addrs.is_empty() && p.cell().is_some())
            .map(|(&id, p)| KnownPeer {
                id,
                addrs: p.addrs.iter().collect(),
                tried: p.tried(),
            })
            .collect();
        out.sort_unstable_by_key(|e| (!e.tried, e.id));
        out
    }

    /// The entries with addresses, tried ones first, each part in id order
    /// (for `Node::known_peers`).
    pub(crate) fn export(&self) -> Vec<PeerEntry> {
        self.export_known()
            .into_iter()
            .map(|k| PeerEntry {
                id: k.id,
                addrs: k.addrs,
            })
            .collect()
    }

    /// The entry for `id` as gossip, if it has addresses.
    pub(crate) fn entry(&self, id: NodeId) -> Option<PeerEntry> {
        self.entries
            .get(&id)
            .filter(|p| !p.addrs.is_empty())
            .map(|p| PeerEntry {
                id,
                addrs: p.addrs.iter().collect(),
            })
    }
}

/// The group an entry is bucketed by: its first address's, or (no address)
/// `fallback`'s.
fn entry_group(first: Option<SocketAddr>, fallback: &Group) -> Group {
    first.as_ref().map_or(*fallback, group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7; 32];

    fn cache(cap: usize) -> PeerCache {
        PeerCache::new(NodeId::from_u128(0), cap, 0, KEY)
    }

    fn addr(a: u8, b: u8, c: u8, d: u8) -> SocketAddr {
        SocketAddr::from(([a, b, c, d], 7000))
    }

    /// The compact list gives back what it was made of, whatever its
    /// form: none, one IPv4 address (inline), an IPv6 one, several.
    #[test]
    fn compact_addrs_hold_any_list_in_order() {
        let v6 = SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 9000));
        let v6_scoped = SocketAddr::V6(core::net::SocketAddrV6::new(
            core::net::Ipv6Addr::LOCALHOST,
            9001,
            7,
            3,
        ));
        let lists: [&[SocketAddr]; 5] = [
            &[],
            &[addr(10, 0, 0, 1)],
            &[v6],
            &[v6_scoped, addr(10, 0, 0, 2)],
            &[addr(10, 0, 0, 3), addr(10, 0, 0, 4), v6],
        ];
        for list in lists {
            let addrs: Addrs = list.iter().copied().collect();
            assert_eq!(addrs.len(), list.len());
            assert_eq!(addrs.is_empty(), list.is_empty());
            assert_eq!(addrs.first(), list.first().copied());
            assert_eq!(addrs.iter().collect::<Vec<_>>(), list.to_vec());
            assert!(addrs.is(list));
            assert!(!addrs.is(&[addr(10, 9, 9, 9)]));
        }
        assert!(matches!(
            [addr(10, 0, 0, 1)].into_iter().collect::<Addrs>(),
            Addrs::V4(_)
        ));
    }

    fn entry(n: u128, at: SocketAddr) -> PeerEntry {
        PeerEntry {
            id: NodeId::from_u128(n),
            addrs: [at].into_iter().collect(),
        }
    }

    #[test]
    fn groups_are_16_bit_for_ipv4_and_32_bit_for_ipv6_and_loopback_is_public() {
        assert_eq!(group(&addr(127, 3, 4, 5)), group(&addr(127, 3, 9, 9)));
        assert_ne!(group(&addr(127, 3, 4, 5)), group(&addr(127, 4, 4, 5)));
        let v6: SocketAddr = "[2001:db8:1:2::1]:1".parse().expect("addr");
        let v6b: SocketAddr = "[2001:db8:ffff::1]:1".parse().expect("addr");
        assert_eq!(group(&v6), group(&v6b));
        let mapped: SocketAddr = "[::ffff:127.3.1.1]:1".parse().expect("addr");
        assert_eq!(group(&mapped), group(&addr(127, 3, 4, 5)));
    }

    #[test]
    fn layout_stays_within_the_cap() {
        for cap in 1..300 {
            let c = cache(cap);
            assert!(c.tried.cells() + c.new.cells() <= cap, "{cap}");
            assert!(c.new.cells() + c.tried.cells() + c.new.buckets + c.tried.buckets >= cap);
        }
        let c = cache(1024);
        assert_eq!((c.tried.buckets, c.tried.slots), (16, 16));
        assert_eq!((c.new.buckets, c.new.slots), (48, 16));
    }

    #[test]
    fn a_grid_cell_holds_any_id_zero_included_and_costs_16_bytes_and_a_bit() {
        let mut g = Grid::new(128);
        assert_eq!(g.cells(), 128);
        assert_eq!(g.get(0), None);
        g.put(0, NodeId::from_u128(0));
        g.put(127, NodeId::from_u128(u128::MAX));
        g.put(127, NodeId::from_u128(5));
        assert_eq!(g.get(0), Some(NodeId::from_u128(0)));
        assert_eq!(g.get(127), Some(NodeId::from_u128(5)));
        assert_eq!((g.get(1), g.get(64), g.used), (None, None, 2));
        g.clear(0);
        g.clear(0);
        assert_eq!(
            (g.get(0), g.get(127), g.used),
            (None, Some(NodeId::from_u128(5)), 1)
        );
        // The heap the cells take: 16 bytes an id, a 64-bit word per 64 cells.
        let heap = |g: &Grid| g.ids.len() * size_of::<NodeId>() + g.occupied.len() * 8;
        assert_eq!(heap(&g), 128 * 16 + 2 * 8);
        assert_eq!(heap(&Grid::new(32)), 520);
    }

    /// A cell as the module docs define it: the three keyed hashes, every
    /// time (no memo, no shortcut).
    fn cell_by_three_hashes(
        c: &PeerCache,
        tried: bool,
        id: NodeId,
        entry_ip: Option<[u8; 16]>,
        g: &Group,
    ) -> usize {
        let id = id.to_bytes();
        let (grid, spread, bucket_label, slot_label): (_, _, &[u8], &[u8]) = if tried {
            let spread = c.hash(&[b"tried spread", &id]);
            (&c.tried, spread, b"tried bucket", b"tried slot")
        } else {
            let spread = c.hash(&[b"new spread", &entry_ip.unwrap_or_default(), g]);
            (&c.new, spread, b"new bucket", b"new slot")
        };
        let spread = spread % BUCKETS_PER_GROUP;
        let bucket = c.hash(&[bucket_label, g, &spread.to_le_bytes()]) % grid.buckets as u64;
        let slot = c.hash(&[slot_label, &bucket.to_le_bytes(), &id]) % grid.slots as u64;
        c.probe(tried, bucket as usize, slot as usize)
    }

    #[test]
    fn memoised_buckets_and_one_bucket_tables_give_the_cells_of_three_hashes() {
        // Runs of one group (the memo's hits), then another (its
        // replacement), an IPv6 one and the no-address fallback; tables of
        // one bucket (cap 8 and 32: tried, and new too at 8) and of many.
        let groups = [
            group(&addr(10, 1, 0, 1)),
            group(&addr(10, 2, 0, 1)),
            group(&"[2001:db8::1]:1".parse().expect("addr")),
            [0; 5],
            group(&addr(10, 1, 0, 1)),
        ];
        for cap in [8, 32, 100, 1024] {
            let mut c = cache(cap);
            let mut hits = 0;
            for n in 0..500u128 {
                let g = groups[(n / 100) as usize];
                let id =
                    NodeId::from_u128(n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
                let ip = (n % 7 != 0).then(|| ip_bytes(&addr(10, 1, (n / 256) as u8, n as u8)));
                hits += usize::from(c.new_buckets.group == g);
                let tried = c.tried_cell(id, &g);
                assert_eq!(
                    tried,
                    cell_by_three_hashes(&c, true, id, ip, &g),
                    "{cap} {n}"
                );
                let new = c.new_cell(id, ip, &g);
                assert_eq!(
                    new,
                    cell_by_three_hashes(&c, false, id, ip, &g),
                    "{cap} {n}"
                );
            }
            // The memo is used where the new table has several buckets.
            if c.new.buckets > 1 {
                assert!(hits > 450, "cap {cap}: {hits}");
            }
        }
    }

    #[test]
    fn a_dialled_peer_is_tried_and_an_inbound_one_new() {
        let mut c = cache(64);
        let now = Instant::ZERO;
        let a = addr(10, 0, 0, 1);
        c.confirm(NodeId::from_u128(1), &[a], true, a, false, now);
        let b = addr(10, 1, 0, 1);
        c.confirm(NodeId::from_u128(2), &[b], false, b, false, now);
        assert!(c.get(&NodeId::from_u128(1)).is_some_and(|e| e.tried()));
        assert!(c.get(&NodeId::from_u128(2)).is_some_and(|e| !e.tried()));
        let known = c.export_known();
        assert_eq!(known[0].id, NodeId::from_u128(1));
        assert!(known[0].tried && !known[1].tried);
    }

    #[test]
    fn gossip_never_displaces_a_working_peer_and_replaces_failing_ones() {
        let mut c = cache(8);
        let now = Instant::ZERO;
        let source = Some(addr(10, 9, 9, 9));
        let mut stored = Vec::new();
        for n in 1..200 {
            if c.learn(&entry(n, addr(10, 0, 0, n as u8)), source, now) {
                stored.push(n);
            }
        }
        assert!(c.len() <= 8);
        assert!(c.refused > 0);
        // Nothing displaced an untried entry.
        let before: Vec<NodeId> = c.export().iter().map(|e| e.id).collect();
        assert_eq!(before.len(), stored.len());
        // A failing one gives way.
        for id in &before {
            let e = c.get_mut(id).expect("known");
            e.dial_failed();
            e.dial_failed();
        }
        let evicted = c.evicted;
        for n in 200..400 {
            c.learn(&entry(n, addr(10, 0, 1, n as u8)), source, now);
        }
        assert!(c.evicted > evicted);
    }

    #[test]
    fn gossip_does_not_override_what_a_node_said_about_itself() {
        let mut c = cache(64);
        let own = entry(1, addr(10, 0, 0, 1));
        c.confirm(own.id, &own.addrs, true, own.addrs[0], false, Instant::ZERO);
        let lie = entry(1, addr(6, 6, 6, 6));
        assert!(!c.learn(&lie, Some(addr(9, 9, 9, 9)), Instant::ZERO));
        assert_eq!(c.entry(own.id), Some(own));
        assert!(
            !c.learn(&entry(0, addr(1, 1, 1, 1)), None, Instant::ZERO),
            "never itself"
        );
    }

    #[test]
    fn a_tried_peer_yields_only_after_failed_dials_and_goes_back_to_new() {
        // A tiny tried table: one bucket of two slots.
        let mut c = cache(8);
        assert_eq!(c.tried.cells(), 2);
        let now = Instant::ZERO;
        let mut tried = Vec::new();
        let mut n = 1u128;
        while tried.len() < 2 {
            let a = addr(10, n as u8, 0, 1);
            c.confirm(NodeId::from_u128(n), &[a], true, a, false, now);
            if c.get(&NodeId::from_u128(n)).is_some_and(|e| e.tried()) {
                tried.push(NodeId::from_u128(n));
            }
            n += 1;
        }
        // Working tried peers hold their slots against any newly dialled one.
        for m in 100..140u128 {
            let a = addr(11, m as u8, 0, 1);
            c.confirm(NodeId::from_u128(m), &[a], true, a, false, now);
        }
        assert!(tried.iter().all(|id| c.get(id).is_some_and(|e| e.tried())));
        // Once failing, one gives way and stays known, in new.
        for id in &tried {
            let e = c.get_mut(id).expect("known");
            for _ in 0..TRIED_EVICT_FAILURES {
                e.dial_failed();
            }
        }
        for m in 200..240u128 {
            let a = addr(12, m as u8, 0, 1);
            c.confirm(NodeId::from_u128(m), &[a], true, a, false, now);
        }
        assert!(tried.iter().all(|id| c.get(id).is_none_or(|e| !e.tried())));
        assert_eq!(c.tried_len(), 2);
    }

    #[test]
    fn restore_puts_tried_entries_back_in_tried() {
        let mut c = cache(64);
        let k = KnownPeer {
            id: NodeId::from_u128(5),
            addrs: [addr(10, 0, 0, 5)].into_iter().collect(),
            tried: true,
        };
        assert!(c.restore(&k, Instant::ZERO));
        assert!(c.get(&k.id).is_some_and(|e| e.tried()));
        assert_eq!(c.export_known(), vec![k]);
    }

    #[test]
    fn a_wanted_peer_takes_the_slot_of_an_unwanted_one() {
        let mut c = cache(8);
        let now = Instant::ZERO;
        for n in 1..100u128 {
            c.learn(
                &entry(n, addr(10, 0, 0, n as u8)),
                Some(addr(10, 9, 9, 9)),
                now,
            );
        }
        let refused = c.refused;
        let wanted = NodeId::from_u128(1000);
        let a = addr(10, 7, 0, 1);
        c.confirm(wanted, &[a], false, a, true, now);
        assert!(c.get(&wanted).is_some_and(|e| e.wanted()));
        assert_eq!(c.refused, refused);
        assert!(c.len() <= 8);
    }

    #[test]
    fn a_connected_peer_without_a_slot_is_a_guest_until_it_is_gone() {
        let mut c = PeerCache::new(NodeId::from_u128(0), 4, 2, KEY);
        let now = Instant::ZERO;
        let at = addr(10, 0, 0, 1);
        for n in 1..10u128 {
            c.confirm(NodeId::from_u128(n), &[at], false, at, false, now);
        }
        // One new bucket of three cells, then two guests; the rest refused.
        assert_eq!(c.len(), 5);
        assert_eq!(c.guests, 2);
        assert_eq!(c.refused, 4);
        let up = [NodeId::from_u128(1), NodeId::from_u128(4)];
        c.prune_guests(|id| up.contains(id));
        assert!(c.len() <= 4 && c.guests <= 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A `PeerList` entry from the one attacking source.
        Gossip(u128, [u8; 4]),
        /// An inbound handshake from `addr`, announcing it.
        Inbound(u128, [u8; 4]),
        /// A dial to a tried peer failed.
        Fail(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u128>(), any::<[u8; 4]>()).prop_map(|(n, a)| Op::Gossip(n, a)),
            2 => (any::<u128>(), any::<[u8; 4]>()).prop_map(|(n, a)| Op::Inbound(n, a)),
            1 => any::<u8>().prop_map(Op::Fail),
        ]
    }

    proptest! {
        /// Whatever one source gossips and whoever dials in, a tried entry
        /// stays tried, the gossip lands only in the source's own buckets,
        /// and the tables never exceed their caps.
        #[test]
        fn gossip_and_inbound_never_evict_tried_entries(
            cap in 8usize..300,
            honest in 1u128..10,
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let mut c = cache(cap);
            let now = Instant::ZERO;
            for n in 0..honest {
                let a = addr(20, n as u8, 0, 1);
                c.confirm(NodeId::from_u128(1 << 100 | n), &[a], true, a, false, now);
            }
            let tried: Vec<NodeId> = c.export_known().into_iter().filter(|k| k.tried).map(|k| k.id).collect();
            prop_assert!(tried.len() as u128 <= honest);
            let source = addr(66, 66, 1, 1);
            let mut gossip = std::collections::BTreeSet::new();
            for op in ops {
                match op {
                    Op::Gossip(n, a) => {
                        let e = entry(n, SocketAddr::from((a, 1)));
                        if c.learn(&e, Some(source), now) && !c.get(&e.id).is_some_and(|k| k.confirmed()) {
                            gossip.insert(e.id);
                        }
                    }
                    Op::Inbound(n, a) => {
                        let at = SocketAddr::from((a, 1));
                        c.confirm(NodeId::from_u128(n), &[at], false, at, false, now);
                    }
                    Op::Fail(i) => {
                        // Failing tried entries still never give way to
                        // gossip or inbound peers.
                        if let Some(id) = tried.get(usize::from(i) % tried.len().max(1))
                            && let Some(e) = c.get_mut(id)
                        {
                            e.dial_failed();
                        }
                    }
                }
                prop_assert!(c.len() <= cap);
                prop_assert!(c.tried.used <= c.tried.cells());
                prop_assert!(c.new.used <= c.new.cells());
            }
            for id in &tried {
                prop_assert!(c.get(id).is_some_and(|e| e.tried()), "tried entry lost");
            }
            // Gossip from one source fills at most its own buckets.
            let sg = group(&source);
            let mut buckets: Vec<usize> = gossip
                .iter()
                .filter_map(|id| c.get(id))
                .filter(|e| !e.tried())
                .filter_map(|e| e.cell().map(|cell| cell / c.new.slots))
                .collect();
            buckets.sort_unstable();
            buckets.dedup();
            prop_assert!(buckets.len() as u64 <= BUCKETS_PER_GROUP);
            let allowed: Vec<usize> = (0..BUCKETS_PER_GROUP)
                .map(|s| (c.hash(&[b"new bucket", &sg, &s.to_le_bytes()]) % c.new.buckets as u64) as usize)
                .collect();
            prop_assert!(buckets.iter().all(|b| allowed.contains(b)));
        }
    }
}
