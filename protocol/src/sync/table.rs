//! The table (spec/sync.md §3–§5, §7): every key's set of entries seen, the rule that decides which entry may follow which, the caps,
//! tombstone collection and the range digests of anti-entropy. Pure: no
//! `Cx`, no clock (times come in as arguments), so every rule is tested
//! here directly.

use core::cmp::Ordering;
use core::ops::Bound;
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::NodeId;
use crate::wire::{MAX_SYNC_DEPTH, SyncEntry, SyncRange, sync_key_hash};

/// Most entries a key's set holds (spec/sync.md §3).
pub(crate) const SYNC_HISTORY: usize = 8;
/// A differing range with at most this many keys on both sides together is
/// exchanged entry by entry rather than split (spec/sync.md §5).
pub(crate) const SYNC_LEAF: u64 = 16;
/// Bytes an entry costs besides its key and value (writer key, signature,
/// timestamp, bookkeeping).
pub(crate) const ENTRY_OVERHEAD: usize = 128;

/// What an entry costs against the byte caps.
pub(crate) fn cost(entry: &SyncEntry) -> usize {
    entry.key.len() + entry.value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

/// The total order of one key's entries (spec/sync.md §1): `hlc`, then the
/// writer's bytes, then the signature's (only a writer that signed two
/// entries at one `hlc` needs the last).
pub(crate) fn order(a: &SyncEntry, b: &SyncEntry) -> Ordering {
    (a.hlc, a.writer.to_bytes(), a.signature).cmp(&(b.hlc, b.writer.to_bytes(), b.signature))
}

/// Whether `next` may follow `current` (spec/sync.md §3): newer, and by the
/// same writer or after `current`'s lease.
pub(crate) fn follows(current: &SyncEntry, next: &SyncEntry, lease: u64) -> bool {
    order(next, current) == Ordering::Greater
        && (next.writer == current.writer || next.hlc >= current.hlc.saturating_add(lease))
}

/// The caps (spec/sync.md §7).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_bytes_per_writer: usize,
}

/// What became of an offered entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Already in the key's set.
    Duplicate,
    /// Older than every entry of a truncated set.
    Stale,
    /// Lost by the rule (another writer's lease held) and not kept: the
    /// set was full of entries it must keep first.
    LeaseHeld,
    /// Stored in the key's set, but lost by the rule: another writer's
    /// lease held. Relayed like an accepted entry (so that every node
    /// folds the same set), never visible.
    Lost,
    /// The table is at `max_entries` or `max_bytes`.
    Full,
    /// Its writer would pass `max_bytes_per_writer`.
    WriterQuota,
    /// Stored and kept by the rule; `changed`: the key's winner changed.
    Accepted {
        /// Whether the winner changed (an entry can land inside the
        /// set and leave the winner).
        changed: bool,
    },
}

/// One key: the entries seen, in order (spec/sync.md §3), and which one
/// the rule keeps last (the winner).
#[derive(Clone)]
struct KeyState {
    entries: SmallVec<[SyncEntry; 1]>,
    /// Index of the winner in `entries`.
    winner: usize,
    /// Whether the set ever dropped a kept entry to stay within
    /// [`SYNC_HISTORY`]: until then it holds every entry kept, and an older
    /// newcomer is folded in, not stale.
    truncated: bool,
    /// XOR of every entry's fingerprint (spec/sync.md §5).
    fingerprint: u64,
}

impl KeyState {
    fn winner(&self) -> &SyncEntry {
        &self.entries[self.winner]
    }

    /// Which entries the rule keeps: the oldest, then each that follows
    /// the last one kept.
    fn kept(entries: &[SyncEntry], lease: u64) -> SmallVec<[bool; 16]> {
        let mut kept = SmallVec::with_capacity(entries.len());
        let mut last: Option<&SyncEntry> = None;
        for entry in entries {
            let keep = last.is_none_or(|last| follows(last, entry, lease));
            if keep {
                last = Some(entry);
            }
            kept.push(keep);
        }
        kept
    }

    /// `entries` (in order) folded and pruned to [`SYNC_HISTORY`]: losers
    /// go first, oldest first (dropping one never changes what the rule
    /// keeps); then, if every entry is kept, the oldest (and the set is
    /// truncated).
    fn build(mut entries: SmallVec<[SyncEntry; 1]>, mut truncated: bool, lease: u64) -> KeyState {
        let mut kept = Self::kept(&entries, lease);
        while entries.len() > SYNC_HISTORY {
            match kept.iter().position(|&k| !k) {
                Some(loser) => {
                    entries.remove(loser);
                    kept.remove(loser);
                }
                None => {
                    entries.remove(0);
                    kept.remove(0);
                    truncated = true;
                }
            }
        }
        let winner = kept.iter().rposition(|&k| k).unwrap_or(0);
        let fingerprint = entries.iter().fold(0, |f, e| f ^ e.fingerprint());
        KeyState {
            entries,
            winner,
            truncated,
            fingerprint,
        }
    }
}

/// A range's digest and key count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) digest: u64,
    pub(crate) keys: u64,
}

impl Bucket {
    fn toggle(&mut self, fingerprint: u64, add: bool) {
        self.digest ^= fingerprint;
        if add {
            self.keys += 1;
        } else {
            self.keys -= 1;
        }
    }
}

/// The table. See the module docs.
pub(crate) struct Table {
    /// By key hash, then key: a range is a contiguous run.
    keys: BTreeMap<(u64, Bytes), KeyState>,
    /// Depth-1 and depth-2 ranges, kept up to date on every change.
    depth1: [Bucket; 16],
    depth2: Box<[Bucket; 256]>,
    bytes: usize,
    per_writer: HashMap<NodeId, usize, FixedState>,
    /// Keys whose winner is a tombstone, by its `hlc`: collected in order.
    tombstones: BTreeSet<(u64, u64, Bytes)>,
    caps: Caps,
    /// The lease, in µs.
    lease: u64,
    /// The greatest `hlc` ever accepted (spec/sync.md §2).
    pub(crate) highest_hlc: u64,
}

/// The bounds of the range `prefix` at `depth` in key-hash space.
fn range_bounds(depth: u8, prefix: u64) -> (u64, Option<u64>) {
    let shift = 64 - 4 * u32::from(depth);
    if shift == 64 {
        return (0, None);
    }
    let low = prefix << shift;
    let end = low.checked_add(1u64 << shift);
    (low, end)
}

impl Table {
    pub(crate) fn new(caps: Caps, lease: u64, hasher: FixedState) -> Self {
        Table {
            keys: BTreeMap::new(),
            depth1: [Bucket::default(); 16],
            depth2: Box::new([Bucket::default(); 256]),
            bytes: 0,
            per_writer: HashMap::with_hasher(hasher),
            tombstones: BTreeSet::new(),
            caps,
            lease,
            highest_hlc: 0,
        }
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// `key`'s winner.
    pub(crate) fn get(&self, key: &Bytes) -> Option<&SyncEntry> {
        self.keys
            .get(&(sync_key_hash(key), key.clone()))
            .map(KeyState::winner)
    }

    /// Every winner, in key-hash order.
    pub(crate) fn winners(&self) -> impl Iterator<Item = &SyncEntry> {
        self.keys.values().map(KeyState::winner)
    }

    /// The whole table's digest: the XOR of every winner's fingerprint.
    pub(crate) fn digest(&self) -> u64 {
        self.depth1.iter().fold(0, |d, b| d ^ b.digest)
    }

    /// Whether `entry` is already in its key's set (checked before any
    /// signature is verified).
    pub(crate) fn is_duplicate(&self, entry: &SyncEntry) -> bool {
        self.keys
            .get(&(sync_key_hash(&entry.key), entry.key.clone()))
            .is_some_and(|state| {
                state
                    .entries
                    .iter()
                    .any(|held| order(held, entry) == Ordering::Equal)
            })
    }

    /// The state `entry` would leave its key in (spec/sync.md §3), or why
    /// it is refused.
    fn next_state(&self, held: Option<&KeyState>, entry: &SyncEntry) -> Result<KeyState, Offer> {
        let Some(state) = held else {
            return Ok(KeyState::build(
                SmallVec::from_elem(entry.clone(), 1),
                false,
                self.lease,
            ));
        };
        let entries = &state.entries;
        if entries.iter().any(|e| order(e, entry) == Ordering::Equal) {
            return Err(Offer::Duplicate);
        }
        if state.truncated && order(entry, &entries[0]) == Ordering::Less {
            return Err(Offer::Stale);
        }
        let at = entries
            .iter()
            .position(|e| order(entry, e) == Ordering::Less)
            .unwrap_or(entries.len());
        let mut next = entries.clone();
        next.insert(at, entry.clone());
        let next = KeyState::build(next, state.truncated, self.lease);
        if !next
            .entries
            .iter()
            .any(|e| order(e, entry) == Ordering::Equal)
        {
            // Pruned at once: as the oldest of a full chain, or as a loser.
            return Err(if order(entry, &next.entries[0]) == Ordering::Less {
                Offer::Stale
            } else {
                Offer::LeaseHeld
            });
        }
        Ok(next)
    }

    /// What offering `entry` would do, without doing it.
    pub(crate) fn check(&self, entry: &SyncEntry) -> Result<(), Offer> {
        let slot = (sync_key_hash(&entry.key), entry.key.clone());
        let held = self.keys.get(&slot);
        let next = self.next_state(held, entry)?;
        self.check_caps(held, &next.entries, entry)
    }

    fn check_caps(
        &self,
        held: Option<&KeyState>,
        next: &[SyncEntry],
        entry: &SyncEntry,
    ) -> Result<(), Offer> {
        if held.is_none() && self.keys.len() >= self.caps.max_entries {
            return Err(Offer::Full);
        }
        let old: usize = held.map_or(0, |s| s.entries.iter().map(cost).sum());
        let new: usize = next.iter().map(cost).sum();
        if new > old && self.bytes + (new - old) > self.caps.max_bytes {
            return Err(Offer::Full);
        }
        let writer_bytes = |history: &[SyncEntry]| -> usize {
            history
                .iter()
                .filter(|e| e.writer == entry.writer)
                .map(cost)
                .sum()
        };
        let (old_w, new_w) = (
            held.map_or(0, |s| writer_bytes(&s.entries)),
            writer_bytes(next),
        );
        let has = self.per_writer.get(&entry.writer).copied().unwrap_or(0);
        if new_w > old_w && has + (new_w - old_w) > self.caps.max_bytes_per_writer {
            return Err(Offer::WriterQuota);
        }
        Ok(())
    }

    /// Offers `entry` (already verified) to the table.
    pub(crate) fn offer(&mut self, entry: &SyncEntry) -> Offer {
        let slot = (sync_key_hash(&entry.key), entry.key.clone());
        let held = self.keys.get(&slot);
        let next = match self.next_state(held, entry) {
            Ok(next) => next,
            Err(refused) => return refused,
        };
        if let Err(refused) = self.check_caps(held, &next.entries, entry) {
            return refused;
        }
        let changed = held.is_none_or(|s| order(s.winner(), next.winner()) != Ordering::Equal);
        let kept = order(next.winner(), entry) == Ordering::Equal
            || KeyState::kept(&next.entries, self.lease)
                .iter()
                .zip(&next.entries)
                .any(|(&k, e)| k && order(e, entry) == Ordering::Equal);
        self.replace(slot, Some(next));
        self.highest_hlc = self.highest_hlc.max(entry.hlc);
        if kept {
            Offer::Accepted { changed }
        } else {
            Offer::Lost
        }
    }

    /// Puts `state` (or nothing) in `slot`, keeping the accounts.
    fn replace(&mut self, slot: (u64, Bytes), state: Option<KeyState>) {
        if let Some(old) = self.keys.remove(&slot) {
            self.account(slot.0, &slot.1, &old, false);
        }
        if let Some(state) = state {
            self.account(slot.0, &slot.1, &state, true);
            self.keys.insert(slot, state);
        }
    }

    /// Drops all but the tombstone of every key deleted before `before`
    /// (spec/sync.md §4): older entries are stale from then on, so that
    /// nothing the tombstone beat reaches a node that collects it.
    pub(crate) fn compact_tombstones(&mut self, before: u64) {
        let due: Vec<(u64, u64, Bytes)> = self
            .tombstones
            .range(..(before, 0, Bytes::new()))
            .cloned()
            .collect();
        for (_, kh, key) in due {
            let slot = (kh, key);
            if let Some(state) = self.keys.get(&slot)
                && state.entries.len() > 1
            {
                let tombstone = SmallVec::from_elem(state.winner().clone(), 1);
                let compacted = KeyState::build(tombstone, true, self.lease);
                self.replace(slot, Some(compacted));
            }
        }
    }

    /// Adds or removes `state`'s bytes, writer quotas, buckets and
    /// tombstone slot.
    fn account(&mut self, kh: u64, key: &Bytes, state: &KeyState, add: bool) {
        for entry in &state.entries {
            let c = cost(entry);
            let writer = self.per_writer.entry(entry.writer).or_insert(0);
            if add {
                self.bytes += c;
                *writer += c;
            } else {
                self.bytes -= c;
                *writer -= c;
                if *writer == 0 {
                    self.per_writer.remove(&entry.writer);
                }
            }
        }
        self.depth1[(kh >> 60) as usize].toggle(state.fingerprint, add);
        self.depth2[(kh >> 56) as usize].toggle(state.fingerprint, add);
        let winner = state.winner();
        if winner.value.is_none() {
            let slot = (winner.hlc, kh, key.clone());
            if add {
                self.tombstones.insert(slot);
            } else {
                self.tombstones.remove(&slot);
            }
        }
    }

    /// Forgets every tombstone winner written at or before `before`
    /// (spec/sync.md §4); how many.
    pub(crate) fn collect_tombstones(&mut self, before: u64) -> u64 {
        let mut collected = 0;
        while let Some(first) = self.tombstones.first()
            && first.0 <= before
        {
            let (_, kh, key) = first.clone();
            if self.keys.contains_key(&(kh, key.clone())) {
                self.replace((kh, key), None);
                collected += 1;
            } else {
                self.tombstones.pop_first();
            }
        }
        collected
    }

    /// The range `prefix` at `depth` (1..=16).
    pub(crate) fn range(&self, depth: u8, prefix: u64) -> Bucket {
        match depth {
            1 => self.depth1[prefix as usize & 15],
            2 => self.depth2[prefix as usize & 255],
            _ => self
                .scan(depth, prefix)
                .fold(Bucket::default(), |mut b, s| {
                    b.toggle(s.fingerprint, true);
                    b
                }),
        }
    }

    /// The 16 sub-ranges of `prefix` at `depth` (< 16), at `depth + 1`.
    pub(crate) fn children(&self, depth: u8, prefix: u64) -> [SyncRange; 16] {
        let child = depth + 1;
        let mut out = [SyncRange {
            prefix: 0,
            digest: 0,
            keys: 0,
        }; 16];
        for (i, range) in out.iter_mut().enumerate() {
            range.prefix = (prefix << 4) | i as u64;
        }
        if child <= 2 {
            for range in &mut out {
                let bucket = self.range(child, range.prefix);
                (range.digest, range.keys) = (bucket.digest, bucket.keys);
            }
        } else {
            let shift = 64 - 4 * u32::from(child);
            for ((kh, _), state) in self.scan_slots(depth, prefix) {
                let range = &mut out[((kh >> shift) & 15) as usize];
                range.digest ^= state.fingerprint;
                range.keys += 1;
            }
        }
        out
    }

    /// The 16 ranges at depth 1.
    pub(crate) fn top(&self) -> Vec<SyncRange> {
        (0..16u64)
            .map(|prefix| {
                let bucket = self.depth1[prefix as usize];
                SyncRange {
                    prefix,
                    digest: bucket.digest,
                    keys: bucket.keys,
                }
            })
            .collect()
    }

    /// Every entry (whole sets) of the range `prefix` at `depth`, up to
    /// `max_keys` keys, and how many keys.
    pub(crate) fn entries_in(
        &self,
        depth: u8,
        prefix: u64,
        max_keys: usize,
    ) -> (Vec<SyncEntry>, usize) {
        let mut keys = 0;
        let entries = self
            .scan(depth, prefix)
            .take(max_keys)
            .inspect(|_| keys += 1)
            .flat_map(|state| state.entries.iter().cloned())
            .collect();
        (entries, keys)
    }

    fn scan(&self, depth: u8, prefix: u64) -> impl Iterator<Item = &KeyState> {
        self.scan_slots(depth, prefix).map(|(_, state)| state)
    }

    fn scan_slots(
        &self,
        depth: u8,
        prefix: u64,
    ) -> impl Iterator<Item = (&(u64, Bytes), &KeyState)> {
        let depth = depth.clamp(1, MAX_SYNC_DEPTH);
        let (low, end) = range_bounds(depth, prefix);
        let start = Bound::Included((low, Bytes::new()));
        let end = match end {
            Some(end) => Bound::Excluded((end, Bytes::new())),
            None => Bound::Unbounded,
        };
        self.keys.range((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    const LEASE: u64 = 1_000;

    fn who(n: u8) -> Identity {
        Identity::from_secret_bytes([n; 32])
    }

    fn entry(n: u8, key: &'static [u8], hlc: u64, value: Option<&'static [u8]>) -> SyncEntry {
        SyncEntry::signed(
            &who(n),
            Bytes::from_static(key),
            hlc,
            value.map(Bytes::from_static),
        )
    }

    fn table() -> Table {
        let caps = Caps {
            max_entries: 1_000,
            max_bytes: 1 << 20,
            max_bytes_per_writer: 1 << 20,
        };
        Table::new(caps, LEASE, FixedState::with_seed(1))
    }

    fn winner(t: &Table, key: &'static [u8]) -> (u64, NodeId) {
        let e = t.get(&Bytes::from_static(key)).expect("as set up");
        (e.hlc, e.writer)
    }

    #[test]
    fn the_owner_renews_and_others_wait_for_the_lease() {
        let mut t = table();
        let a = who(1).node_id();
        assert_eq!(
            t.offer(&entry(1, b"k", 10, Some(b"a1"))),
            Offer::Accepted { changed: true }
        );
        // Another writer within the lease: kept in the set, never the winner.
        assert_eq!(t.offer(&entry(2, b"k", 500, Some(b"b"))), Offer::Lost);
        assert_eq!(winner(&t, b"k"), (10, a));
        assert_eq!(
            t.offer(&entry(1, b"k", 600, Some(b"a2"))),
            Offer::Accepted { changed: true }
        );
        // The lease counts from the owner's last write.
        assert_eq!(t.offer(&entry(2, b"k", 1_200, Some(b"b"))), Offer::Lost);
        assert_eq!(winner(&t, b"k"), (600, a));
        assert_eq!(
            t.offer(&entry(2, b"k", 1_600, Some(b"b"))),
            Offer::Accepted { changed: true }
        );
        assert_eq!(winner(&t, b"k").1, who(2).node_id());
        assert_eq!(
            t.offer(&entry(2, b"k", 1_600, Some(b"b"))),
            Offer::Duplicate
        );
    }

    #[test]
    fn a_race_for_an_expired_key_folds_the_same_in_any_order() {
        // a1, then b1 takes the expired key, while a2 (the owner, too late)
        // is written concurrently: b1 was first and keeps it.
        let a1 = entry(1, b"k", 10, Some(b"a1"));
        let b1 = entry(2, b"k", 1_100, Some(b"b1"));
        let a2 = entry(1, b"k", 1_150, Some(b"a2"));
        let orders = [
            [&a1, &b1, &a2],
            [&a1, &a2, &b1],
            [&b1, &a1, &a2],
            [&a2, &a1, &b1],
            [&a2, &b1, &a1],
            [&b1, &a2, &a1],
        ];
        for order in orders {
            let mut t = table();
            for e in order {
                t.offer(e);
            }
            assert_eq!(winner(&t, b"k"), (1_100, who(2).node_id()), "{order:?}");
        }
    }

    #[test]
    fn a_tombstone_beats_older_stragglers_and_is_collected_after_its_ttl() {
        let mut t = table();
        let v = entry(1, b"k", 10, Some(b"v"));
        t.offer(&v);
        t.offer(&entry(1, b"k", 20, None));
        assert_eq!(t.offer(&v), Offer::Duplicate);
        assert_eq!(
            t.offer(&entry(1, b"k", 15, Some(b"late"))),
            Offer::Accepted { changed: false }
        );
        assert!(
            t.get(&Bytes::from_static(b"k"))
                .expect("as set up")
                .value
                .is_none()
        );
        assert_eq!(t.collect_tombstones(19), 0);
        assert_eq!(t.collect_tombstones(20), 1);
        assert_eq!((t.len(), t.bytes(), t.digest()), (0, 0, 0));
    }

    #[test]
    fn an_entry_older_than_a_truncated_set_is_stale() {
        let mut t = table();
        for hlc in [20, 30, 40, 50, 60, 70, 80] {
            t.offer(&entry(1, b"k", hlc, Some(b"v")));
        }
        // Every entry kept so far is held: an older one is folded in.
        assert_eq!(
            t.offer(&entry(1, b"k", 10, Some(b"old"))),
            Offer::Accepted { changed: false }
        );
        // A ninth: the oldest goes, and the set is truncated.
        assert_eq!(
            t.offer(&entry(1, b"k", 90, Some(b"v"))),
            Offer::Accepted { changed: true }
        );
        assert_eq!(t.offer(&entry(1, b"k", 5, Some(b"older"))), Offer::Stale);
        // A loser in a set full of kept entries is not stored.
        assert_eq!(t.offer(&entry(2, b"k", 25, Some(b"x"))), Offer::LeaseHeld);
    }

    #[test]
    fn caps_refuse_the_same_way() {
        let caps = Caps {
            max_entries: 2,
            max_bytes: 10_000,
            max_bytes_per_writer: 2 * (ENTRY_OVERHEAD + 2),
        };
        let mut t = Table::new(caps, LEASE, FixedState::with_seed(1));
        assert!(matches!(
            t.offer(&entry(1, b"a", 1, Some(b"1"))),
            Offer::Accepted { .. }
        ));
        assert!(matches!(
            t.offer(&entry(1, b"b", 1, Some(b"1"))),
            Offer::Accepted { .. }
        ));
        assert_eq!(t.offer(&entry(2, b"c", 1, Some(b"1"))), Offer::Full);
        // A third entry of a passes its writer quota.
        assert_eq!(t.offer(&entry(1, b"a", 2, Some(b"2"))), Offer::WriterQuota);
        assert_eq!(
            t.check(&entry(1, b"a", 2, Some(b"2"))),
            Err(Offer::WriterQuota)
        );
    }

    #[test]
    fn range_digests_agree_at_every_depth() {
        let mut t = table();
        for i in 0..200u32 {
            let key = Bytes::from(format!("key{i}"));
            t.offer(&SyncEntry::signed(&who(1), key, 1, Some(Bytes::new())));
        }
        let whole: u64 = t.top().iter().fold(0, |d, r| d ^ r.digest);
        assert_eq!(whole, t.digest());
        for depth in 1..4u8 {
            for prefix in 0..16u64.pow(u32::from(depth)).min(64) {
                let children = t.children(depth, prefix);
                let (d, k) = children
                    .iter()
                    .fold((0, 0), |(d, k), c| (d ^ c.digest, k + c.keys));
                let range = t.range(depth, prefix);
                assert_eq!((d, k), (range.digest, range.keys), "{depth} {prefix}");
                let scanned = t.entries_in(depth, prefix, usize::MAX).1 as u64;
                assert_eq!(scanned, range.keys);
            }
        }
    }
}
