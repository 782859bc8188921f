//! A holder's store of dht entries, bounded in entries and bytes.
//!
//! Pure rules of spec/chord.md: key hash, position and tag (§10.1), the
//! conflict rule every holder applies (§10.1), the digests and confirmations
//! of repair and the garbage rules (§10.4), and the caps with their eviction
//! order (§10.5). Time comes in as arguments; nothing here does I/O.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use core::cmp::Reverse;
use std::collections::BinaryHeap;

use super::quota::{Charge, Party, Pressure, Quotas, Usage};
use crate::NodeId;
use crate::chord::ring::in_half_open;
use crate::time::{Duration, Instant};
use crate::wire::{DhtBody, DhtEntry, DhtKey, DhtSyncItem, DhtValue};

/// §10.1 kh: BLAKE3-256 of `mode ‖ owner (owned keys) ‖ name`.
pub(crate) fn key_hash(key: &DhtKey) -> [u8; 32] {
    key.hash()
}

/// §10.1: a key's ring position, the first 16 bytes of kh big-endian.
pub(crate) fn position(kh: &[u8; 32]) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(&kh[..16]);
    u128::from_be_bytes(first)
}

/// §10.1: the first 8 bytes, big-endian, of BLAKE3(kind ‖ value); a
/// tombstone hashes its kind byte alone.
pub(crate) fn tag(value: &DhtValue) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[value.kind()]);
    if let DhtValue::Value(bytes) = value {
        hasher.update(bytes);
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// §10.1 conflict rule: of two bodies for one key, the greater
/// (`version`, `writer`, `tag`) wins. The tag breaks the last tie, so two
/// different bodies never compare equal unless their hashes collide.
pub(crate) fn order_key(body: &DhtBody) -> (u64, NodeId, u64) {
    (body.version, body.writer, tag(&body.value))
}

/// What an entry counts against `dht.max_bytes` (§10.5): name and value
/// bytes; a tombstone's value counts zero.
fn cost_of(key: &DhtKey, body: &DhtBody) -> usize {
    let value = match &body.value {
        DhtValue::Value(bytes) => bytes.len(),
        DhtValue::Tombstone => 0,
    };
    key.name().len() + value
}

/// One entry as a holder keeps it (§10.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The key itself (kh is the map key).
    pub(crate) key: DhtKey,
    /// The key's ring position, cached.
    pub(crate) position: u128,
    /// Version, writer (`body.writer`, the id of the signing key), value
    /// or tombstone, signature. Verified before it is merged (§10.4).
    pub(crate) body: DhtBody,
    /// The body's tag, cached for digests and comparisons.
    pub(crate) tag: u64,
    /// The last time the owner sent or listed this entry.
    pub(crate) confirmed_at: Instant,
    /// When this body was stored; a tombstone's age counts from here.
    pub(crate) stored_at: Instant,
    /// The peer that delivered this body (§10.5), `None` if this node
    /// wrote it for its own command.
    pub(crate) sender: Option<NodeId>,
}

impl Stored {
    /// Bytes this entry counts against `dht.max_bytes`.
    pub(crate) fn cost(&self) -> usize {
        cost_of(&self.key, &self.body)
    }

    fn order_key(&self) -> (u64, NodeId, u64) {
        (self.body.version, self.body.writer, self.tag)
    }

    /// What this entry counts for its writer and its sender.
    fn charge(&self) -> Charge {
        Charge {
            writer: self.body.writer,
            sender: self.sender,
            cost: self.cost(),
        }
    }

    pub(crate) fn to_entry(&self) -> DhtEntry {
        DhtEntry {
            key: self.key.clone(),
            body: self.body.clone(),
        }
    }
}

/// An entry that may be evicted, in eviction order: the most pressed
/// first, outside the own range (`false`) first, the oldest confirmed
/// first, then by kh; with its cost.
type Candidate = (Reverse<Pressure>, bool, Instant, [u8; 32], usize);

/// Why [`Store::merge`] refused an entry (§10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The entry's writer is over its quota: its cap
    /// (`dht.max_bytes_per_writer`, `dht.max_entries_per_writer`), or its
    /// fair share of a full store.
    Writer,
    /// The peer that delivered it is over its quota (the `_per_sender`
    /// caps, or its fair share of a full store).
    Sender,
    /// The store is full of entries it protects.
    Full,
}

impl From<Party> for Refusal {
    fn from(party: Party) -> Self {
        match party {
            Party::Writer => Refusal::Writer,
            Party::Sender => Refusal::Sender,
        }
    }
}

/// What [`Store::merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// The entry is new, or replaced a smaller one.
    Stored,
    /// An equal or greater entry was already held; nothing changed.
    Kept,
    /// Refused by a quota or the caps, even after evicting what may go;
    /// nothing changed.
    Refused(Refusal),
}

/// The store's counters (§10.5), for the node's stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoreCounts {
    /// Entries refused: their writer over its quota.
    pub(crate) refused_writer: u64,
    /// Entries refused: their sender over its quota.
    pub(crate) refused_sender: u64,
    /// Entries refused: the store full of protected entries.
    pub(crate) refused_full: u64,
    /// Entries evicted to make room.
    pub(crate) evicted: u64,
}

/// The caps of a store: in all, per writer, per sender (`dht.max_bytes`,
/// `dht.max_entries`, and their `_per_writer`, `_per_sender` quotas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// The whole store.
    pub(crate) total: Usage,
    /// One writer.
    pub(crate) per_writer: Usage,
    /// One sender.
    pub(crate) per_sender: Usage,
}

/// A holder's entries, keyed by kh, within `max_entries` and `max_bytes`
/// and the quotas of each writer and each sender.
pub(crate) struct Store {
    entries: HashMap<[u8; 32], Stored, FixedState>,
    /// Sum of the entries' costs, kept up to date on every change.
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// Who holds what, kept up to date on every change.
    quotas: Quotas,
    counts: StoreCounts,
}

impl Store {
    /// An empty store within `caps`.
    pub(crate) fn new(caps: Caps, hasher: FixedState) -> Self {
        Store {
            entries: HashMap::with_hasher(hasher.clone()),
            bytes: 0,
            max_entries: caps.total.entries,
            max_bytes: caps.total.bytes,
            quotas: Quotas::new(caps.total, caps.per_writer, caps.per_sender, hasher),
            counts: StoreCounts::default(),
        }
    }

    /// Merges `body` for `key`, delivered by `sender` (`None`: this node's
    /// own command), by the conflict rule, at `now`. `own` is the node's
    /// range (*P*, self], `None` while *P* is unknown (every entry then
    /// counts as in it).
    ///
    /// In the own range, the entry must keep its writer and its sender
    /// within their caps.
    /// Over a store cap, entries are evicted by the rule of §10.5 (see
    /// [`Store::victims`]). Whether enough can go is settled before
    /// anything is evicted, so a refusal leaves the store as it was.
    pub(crate) fn merge(
        &mut self,
        key: DhtKey,
        body: DhtBody,
        now: Instant,
        own: Option<(u128, u128)>,
        sender: Option<NodeId>,
    ) -> Merge {
        let kh = key_hash(&key);
        let new = order_key(&body);
        let replaced = match self.entries.get(&kh) {
            Some(old) if old.order_key() >= new => return Merge::Kept,
            Some(old) => Some(old.charge()),
            None => None,
        };
        let charge = Charge {
            writer: body.writer,
            sender,
            cost: cost_of(&key, &body),
        };
        // The hard caps guard the own range, where this node is the gate
        // and nothing else would ever remove junk. A replica of another
        // range answers to that range's owner, which admitted it under its
        // own quotas and must keep confirming it or it goes as garbage
        // (§10.4); refusing it here would only fail honest replication.
        let position = position(&kh);
        let foreign = own.is_some_and(|(p, me)| !in_half_open(p, position, me));
        if !foreign && let Err(party) = self.quotas.admits(&charge, replaced.as_ref()) {
            return self.refuse(party.into());
        }
        let freed = replaced.map(|r| r.cost);
        let len = self.entries.len() + usize::from(freed.is_none());
        let bytes = self.bytes - freed.unwrap_or(0) + charge.cost;
        // The common case, under both caps, stays O(1); only a full store
        // pays for sorting its eviction candidates.
        if len > self.max_entries || bytes > self.max_bytes {
            let victims = match self.victims(kh, len, bytes, own, &charge, replaced.as_ref()) {
                Ok(victims) => victims,
                Err(refusal) => return self.refuse(refusal),
            };
            self.counts.evicted += victims.len() as u64;
            for victim in victims {
                self.remove(&victim);
            }
        }
        if let Some(replaced) = &replaced {
            self.quotas.remove(replaced);
        }
        self.quotas.add(&charge);
        self.bytes = self.bytes - freed.unwrap_or(0) + charge.cost;
        let stored = Stored {
            key,
            position,
            body,
            tag: new.2,
            confirmed_at: now,
            stored_at: now,
            sender,
        };
        self.entries.insert(kh, stored);
        Merge::Stored
    }

    fn refuse(&mut self, refusal: Refusal) -> Merge {
        let count = match refusal {
            Refusal::Writer => &mut self.counts.refused_writer,
            Refusal::Sender => &mut self.counts.refused_sender,
            Refusal::Full => &mut self.counts.refused_full,
        };
        *count += 1;
        Merge::Refused(refusal)
    }

    /// §10.5, the eviction rule: the entries to evict so that a store of
    /// `len` entries and `bytes` fits the caps once `charge` is stored
    /// (sparing `spare`, the kh being written, whose old body `replaced`
    /// it is).
    ///
    /// A party's *pressure* is how far it is over its fair share: the
    /// store's caps split evenly among the senders held (this node counts
    /// as one for its own writes), and among the writers. An entry whose
    /// sender or writer is over its share may go, if the newcomer's parties
    /// are within theirs or less pressed than the entry's (the sender's
    /// pressure weighs first, then the writer's: a sender can make up
    /// writers, not peers). So may an entry outside the own range that
    /// shares the newcomer's writer or sender (a party may rotate its own
    /// replicas). The most pressed go first, outside the own range first,
    /// then the oldest confirmed, ties by kh. Entries whose sender and
    /// writer are both within their share are never evicted: junk from one
    /// source cannot push them out, wherever it lies.
    ///
    /// If not enough may go: the newcomer's own quota if its writer or its
    /// sender is over its share (and not alone), else `Full`.
    fn victims(
        &self,
        spare: [u8; 32],
        mut len: usize,
        mut bytes: usize,
        own: Option<(u128, u128)>,
        charge: &Charge,
        replaced: Option<&Charge>,
    ) -> Result<Vec<[u8; 32]>, Refusal> {
        let shares = self.quotas.shares(charge);
        let (incoming, party) = self.quotas.pressure_after(charge, replaced, &shares);
        let foreign = |s: &Stored| own.is_some_and(|(p, me)| !in_half_open(p, s.position, me));
        let kin = |s: &Stored| s.body.writer == charge.writer || s.sender == charge.sender;
        let candidates: Vec<Candidate> = self
            .entries
            .iter()
            .filter(|&(kh, _)| *kh != spare)
            .filter_map(|(kh, s)| {
                let pressure = self.quotas.pressure(s.body.writer, s.sender, &shares);
                let far = foreign(s);
                let pressed =
                    pressure.over_share() && (!incoming.over_share() || pressure > incoming);
                (pressed || (far && kin(s))).then_some((
                    Reverse(pressure),
                    !far,
                    s.confirmed_at,
                    *kh,
                    s.cost(),
                ))
            })
            .collect();
        let fits = |len: usize, bytes: usize| len <= self.max_entries && bytes <= self.max_bytes;
        // Whether all of them would do is O(n); only then are the first few
        // taken from a heap (O(n) to build, O(log n) each), not a sort: a
        // flood of refusals must not cost a sort each.
        let evictable: usize = candidates.iter().map(|c| c.4).sum();
        if !fits(len - candidates.len(), bytes - evictable) {
            return Err(party.map_or(Refusal::Full, Refusal::from));
        }
        let mut heap: BinaryHeap<Reverse<Candidate>> =
            candidates.into_iter().map(Reverse).collect();
        let mut victims = Vec::new();
        while !fits(len, bytes) {
            let Some(Reverse((_, _, _, kh, cost))) = heap.pop() else {
                break;
            };
            len -= 1;
            bytes -= cost;
            victims.push(kh);
        }
        Ok(victims)
    }

    fn remove(&mut self, kh: &[u8; 32]) {
        if let Some(old) = self.entries.remove(kh) {
            self.bytes -= old.cost();
            self.quotas.remove(&old.charge());
        }
    }

    /// The store's counters.
    pub(crate) fn counts(&self) -> StoreCounts {
        self.counts
    }

    /// Writers, and senders (this node included), holding an entry here.
    pub(crate) fn parties(&self) -> (usize, usize) {
        self.quotas.parties()
    }

    /// The entry held for kh.
    pub(crate) fn get(&self, kh: &[u8; 32]) -> Option<&Stored> {
        self.entries.get(kh)
    }

    /// The entry held for `key`.
    pub(crate) fn get_key(&self, key: &DhtKey) -> Option<&Stored> {
        self.get(&key_hash(key))
    }

    /// 1 + the version held for kh (tombstones included), or 1 if none:
    /// the least version a writer may sign next (§10.2).
    #[cfg(test)]
    pub(crate) fn next_version(&self, kh: &[u8; 32]) -> u64 {
        self.get(kh).map_or(1, |s| s.body.version.saturating_add(1))
    }

    /// Marks kh's entry as sent or listed by its owner at `now` (the node
    /// does this through [`Store::missing`]; tests set it directly).
    #[cfg(test)]
    pub(crate) fn confirm(&mut self, kh: &[u8; 32], now: Instant) {
        if let Some(s) = self.entries.get_mut(kh) {
            s.confirmed_at = now;
        }
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sum of the entries' costs ([`Stored::cost`]).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every entry with its kh, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8; 32], &Stored)> {
        self.entries.iter()
    }

    /// The entries whose position satisfies `wanted` (e.g. a hand-off range,
    /// §10.4), sorted by (position, kh) so the output is deterministic.
    pub(crate) fn select(&self, wanted: impl Fn(u128) -> bool) -> Vec<DhtEntry> {
        self.select_where(|s| wanted(s.position))
    }

    /// §10.4 strays: the entries outside the own range (*P*, self] whose
    /// last confirmation is more than `after` and at most `after` + `tick`
    /// ago, sorted by (position, kh). Called once a `tick` (the repair
    /// interval), it names each unconfirmed entry once.
    pub(crate) fn strays(
        &self,
        now: Instant,
        (pred, me): (u128, u128),
        after: Duration,
        tick: Duration,
    ) -> Vec<DhtEntry> {
        self.select_where(|s| {
            let age = now - s.confirmed_at;
            !in_half_open(pred, s.position, me) && age > after && age <= after + tick
        })
    }

    /// The entries `wanted` names, sorted by (position, kh).
    fn select_where(&self, wanted: impl Fn(&Stored) -> bool) -> Vec<DhtEntry> {
        let mut held: Vec<_> = self.iter().filter(|(_, s)| wanted(s)).collect();
        // kh order is (position, kh) order: the position is kh's prefix.
        held.sort_unstable_by_key(|&(kh, _)| kh);
        held.into_iter().map(|(_, s)| s.to_entry()).collect()
    }

    /// §10.4 repair: the `DhtSync` items for the entries with position in
    /// (`from`, `to`], sorted by (position, kh). The caller splits them into
    /// messages of at most `MAX_DHT_DIGEST`.
    pub(crate) fn digest(&self, from: u128, to: u128) -> Vec<DhtSyncItem> {
        let mut items: Vec<DhtSyncItem> = self
            .iter()
            .filter(|(_, s)| in_half_open(from, s.position, to))
            .map(|(&kh, s)| DhtSyncItem {
                kh,
                version: s.body.version,
                writer: s.body.writer,
                tag: s.tag,
            })
            .collect();
        items.sort_unstable_by_key(|item| item.kh);
        items
    }

    /// §10.4, a `DhtSync` received: confirms every listed entry held (the
    /// owner still lists it) and returns the indices of the items held
    /// smaller or not at all, for the `DhtSyncReply`.
    pub(crate) fn missing(&mut self, items: &[DhtSyncItem], now: Instant) -> Vec<u64> {
        let mut wanted = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match self.entries.get_mut(&item.kh) {
                Some(s) => {
                    s.confirmed_at = now;
                    if s.order_key() < (item.version, item.writer, item.tag) {
                        wanted.push(index as u64);
                    }
                }
                None => wanted.push(index as u64),
            }
        }
        wanted
    }

    /// §10.4 garbage: drops tombstones stored `tombstone_ttl` or more ago,
    /// wherever they lie, and, when `own` = (*P*, self) is known, entries
    /// outside it confirmed longer than `confirm_ttl` ago. Live entries in
    /// the own range stay. Returns how many entries went.
    pub(crate) fn collect_garbage(
        &mut self,
        now: Instant,
        own: Option<(u128, u128)>,
        confirm_ttl: Duration,
        tombstone_ttl: Duration,
    ) -> usize {
        let before = self.entries.len();
        let bytes = &mut self.bytes;
        let quotas = &mut self.quotas;
        self.entries.retain(|_, s| {
            let expired_tombstone =
                matches!(s.body.value, DhtValue::Tombstone) && now - s.stored_at >= tombstone_ttl;
            let stale_foreign = own.is_some_and(|(pred, me)| {
                !in_half_open(pred, s.position, me) && now - s.confirmed_at > confirm_ttl
            });
            let drop = expired_tombstone || stale_foreign;
            if drop {
                *bytes -= s.cost();
                quotas.remove(&s.charge());
            }
            !drop
        });
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PublicKey;
    use bytes::Bytes;
    use proptest::prelude::*;

    const T0: Instant = Instant::ZERO;

    /// A store with no quota below its caps (the quotas' own tests are
    /// further down).
    fn store(max_entries: usize, max_bytes: usize) -> Store {
        let total = Usage {
            bytes: max_bytes,
            entries: max_entries,
        };
        let caps = Caps {
            total,
            per_writer: total,
            per_sender: total,
        };
        Store::new(caps, FixedState::with_seed(7))
    }

    fn val(version: u64, writer: u128, value: &'static [u8]) -> DhtBody {
        let value = DhtValue::Value(Bytes::from_static(value));
        unsigned(version, writer, value)
    }

    /// A body the store takes as it is (holders verify before merging).
    fn unsigned(version: u64, writer: u128, value: DhtValue) -> DhtBody {
        DhtBody {
            version,
            writer: NodeId::from_u128(writer),
            writer_key: PublicKey::from_bytes([0; 32]),
            value,
            signature: [0; 64],
        }
    }

    fn open(key: &'static [u8]) -> DhtKey {
        DhtKey::Open(Bytes::from_static(key))
    }

    fn tomb(version: u64, writer: u128) -> DhtBody {
        DhtBody {
            value: DhtValue::Tombstone,
            ..val(version, writer, b"")
        }
    }

    fn at(secs: u64) -> Instant {
        T0 + Duration::from_secs(secs)
    }

    type Own = Option<(u128, u128)>;

    fn put(s: &mut Store, key: &'static [u8], body: DhtBody, secs: u64, own: Own) -> Merge {
        s.merge(open(key), body, at(secs), own, None)
    }

    fn held(s: &Store, key: &'static [u8]) -> Option<DhtBody> {
        s.get_key(&open(key)).map(|e| e.body.clone())
    }

    /// The own range (p, me] holding just `key`'s position.
    fn only(key: &'static [u8]) -> Own {
        let pos = position(&key_hash(&open(key)));
        Some((pos.wrapping_sub(1), pos))
    }

    /// Keys and bodies, independent of times and map order.
    fn contents(s: &Store) -> Vec<DhtEntry> {
        s.select(|_| true)
    }

    #[test]
    fn hashes_follow_the_spec_definitions() {
        let kh = key_hash(&open(b"k"));
        assert_eq!(kh, *blake3::hash(b"\x00k").as_bytes());
        let owner = NodeId::from_u128(7);
        let owned = DhtKey::Owned {
            owner,
            name: Bytes::from_static(b"k"),
        };
        let mut table_key = vec![1];
        table_key.extend_from_slice(&owner.to_bytes());
        table_key.push(b'k');
        assert_eq!(key_hash(&owned), *blake3::hash(&table_key).as_bytes());
        assert_eq!(position(&kh).to_be_bytes(), kh[..16]);
        let first8 = |bytes: &[u8]| blake3::hash(bytes).as_bytes()[..8].to_vec();
        let value = DhtValue::Value(Bytes::from_static(b"v"));
        assert_eq!(tag(&value).to_be_bytes().to_vec(), first8(b"\x00v"));
        assert_eq!(
            tag(&DhtValue::Tombstone).to_be_bytes().to_vec(),
            first8(b"\x01")
        );
    }

    #[test]
    fn version_beats_writer_beats_tag_in_either_order() {
        let (value, tombstone) = (val(3, 5, b"x"), tomb(3, 5));
        // Same version and writer: the tag decides, tombstone or not.
        let by_tag = match tag(&value.value) > tag(&tombstone.value) {
            true => (value.clone(), tombstone.clone()),
            false => (tombstone, value),
        };
        let cases = [
            (val(2, 1, b"a"), val(1, 9, b"b")),
            (val(1, 9, b"a"), val(1, 1, b"b")),
            by_tag,
        ];
        for (greater, smaller) in cases {
            for (first, second) in [(&greater, &smaller), (&smaller, &greater)] {
                let mut s = store(10, 100);
                put(&mut s, b"k", first.clone(), 0, None);
                put(&mut s, b"k", second.clone(), 0, None);
                assert_eq!(held(&s, b"k"), Some(greater.clone()));
            }
        }
    }

    #[test]
    fn merging_the_same_entry_again_is_kept_and_changes_nothing() {
        let mut s = store(10, 100);
        assert_eq!(put(&mut s, b"k", val(1, 1, b"v"), 0, None), Merge::Stored);
        assert_eq!(put(&mut s, b"k", val(1, 1, b"v"), 5, None), Merge::Kept);
        assert_eq!(put(&mut s, b"k", val(1, 0, b"w"), 5, None), Merge::Kept);
        let stored_at = s.get_key(&open(b"k")).map(|e| e.stored_at);
        assert_eq!((s.len(), s.bytes(), stored_at), (1, 2, Some(T0)));
    }

    #[test]
    fn replacing_frees_the_old_cost_and_next_version_follows() {
        let mut s = store(10, 8);
        let kh = key_hash(&open(b"k"));
        assert_eq!(s.next_version(&kh), 1);
        put(&mut s, b"k", val(1, 1, b"1234567"), 0, None);
        assert_eq!((s.bytes(), s.next_version(&kh)), (8, 2));
        // 1 + 7 bytes over 1 + 7: fits only because the old cost is freed.
        assert_eq!(
            put(&mut s, b"k", val(2, 1, b"abcdefg"), 0, None),
            Merge::Stored
        );
        assert_eq!(put(&mut s, b"k", tomb(3, 1), 1, None), Merge::Stored);
        assert_eq!((s.len(), s.bytes(), s.next_version(&kh)), (1, 1, 4));
        assert_eq!(s.get(&kh).map(|e| e.stored_at), Some(at(1)));
    }

    #[test]
    fn over_the_entry_cap_the_oldest_confirmed_foreign_entry_goes() {
        let mut s = store(3, 100);
        for (secs, key) in [b"a", b"b", b"c"].into_iter().enumerate() {
            put(&mut s, key, val(1, 1, b"v"), secs as u64, None);
        }
        s.confirm(&key_hash(&open(b"b")), at(3));
        // a is own; of the foreign b and c, c is now the oldest confirmed.
        assert_eq!(put(&mut s, b"d", tomb(1, 1), 4, only(b"a")), Merge::Stored);
        let kept: Vec<bool> = [b"a", b"b", b"c", b"d"]
            .map(|k| s.get_key(&open(k)).is_some())
            .into();
        assert_eq!(kept, [true, true, false, true]);
        assert_eq!((s.len(), s.bytes()), (3, 5));
    }

    #[test]
    fn over_the_byte_cap_several_may_go_but_full_changes_nothing() {
        let mut s = store(10, 12);
        for (secs, key) in [b"a", b"b", b"c"].into_iter().enumerate() {
            put(&mut s, key, val(1, 1, b"xyz"), secs as u64, None);
        }
        let before = contents(&s);
        // 12 bytes more: evicting b and c (8 bytes) is not enough.
        assert_eq!(
            put(&mut s, b"e", val(1, 1, b"0123456789a"), 3, only(b"a")),
            Merge::Refused(Refusal::Full)
        );
        // Nothing is evictable while P is unknown.
        assert_eq!(
            put(&mut s, b"e", val(1, 1, b"0"), 3, None),
            Merge::Refused(Refusal::Full)
        );
        assert_eq!((contents(&s), s.bytes()), (before, 12));
        // 6 bytes more: both foreign entries must go.
        assert_eq!(
            put(&mut s, b"e", val(1, 1, b"01234"), 3, only(b"a")),
            Merge::Stored
        );
        assert!(held(&s, b"b").is_none() && held(&s, b"c").is_none());
        assert_eq!((s.len(), s.bytes()), (2, 10));
    }

    #[test]
    fn digests_list_the_range_and_missing_names_what_is_lacking_or_smaller() {
        let mut owner = store(10, 100);
        for key in [b"a", b"b", b"c", b"d"] {
            put(&mut owner, key, val(2, 1, b"v"), 0, None);
        }
        let all = owner.digest(0, 0);
        assert_eq!(all.len(), 4);
        assert!(
            all.windows(2)
                .all(|w| position(&w[0].kh) < position(&w[1].kh))
        );
        let (from, to) = (position(&all[0].kh), position(&all[2].kh));
        let part: Vec<_> = owner.digest(from, to).iter().map(|i| i.kh).collect();
        assert_eq!(part, [all[1].kh, all[2].kh]);

        let mut holder = store(10, 100);
        let key_of = |i: usize| owner.get(&all[i].kh).map(|e| e.key.clone()).expect("held");
        let bodies = [val(2, 1, b"v"), val(1, 1, b"v"), tomb(3, 1)];
        for (i, body) in bodies.into_iter().enumerate() {
            holder.merge(key_of(i), body, T0, None, None);
        }
        // Equal and greater are not wanted; smaller and absent are.
        assert_eq!(holder.missing(&all, at(9)), [1, 3]);
        for item in &all[..3] {
            assert_eq!(holder.get(&item.kh).map(|e| e.confirmed_at), Some(at(9)));
        }
    }

    #[test]
    fn garbage_drops_old_tombstones_and_stale_foreign_entries_only() {
        let ttls = (Duration::from_secs(30), Duration::from_secs(60));
        let mut s = store(10, 100);
        put(&mut s, b"a", val(1, 1, b"v"), 0, None); // own, live
        put(&mut s, b"b", val(1, 1, b"v"), 0, None); // foreign, stale
        put(&mut s, b"c", val(1, 1, b"v"), 0, None); // foreign, confirmed
        put(&mut s, b"d", tomb(1, 1), 10, None); // foreign tombstone
        s.confirm(&key_hash(&open(b"c")), at(20));
        s.confirm(&key_hash(&open(b"d")), at(45));
        let mut collect = |secs, own| s.collect_garbage(at(secs), own, ttls.0, ttls.1);
        // Without P only tombstones age: d is 40 s old, under 60.
        assert_eq!(collect(50, None), 0);
        // b was confirmed 50 s ago, c exactly 30 s ago: only b goes.
        assert_eq!(collect(50, only(b"a")), 1);
        // Confirming does not extend a tombstone: 60 s after stored_at it goes.
        assert_eq!(collect(70, None), 1);
        assert_eq!(collect(1_000, only(b"a")), 1);
        assert_eq!((s.len(), s.bytes()), (1, 2));
        assert!(held(&s, b"a").is_some());
        // What went is refunded to its parties.
        assert_eq!(s.quotas.writer(NodeId::from_u128(1)).entries, 1);
        assert_eq!(s.parties(), (1, 1));
    }

    /// A store of `entries` and 1,000 bytes, each writer held to
    /// `per_writer` entries and each sender to `per_sender`.
    fn quota_store(entries: usize, per_writer: usize, per_sender: usize) -> Store {
        let usage = |entries| Usage {
            bytes: 1_000,
            entries,
        };
        let caps = Caps {
            total: usage(entries),
            per_writer: usage(per_writer),
            per_sender: usage(per_sender),
        };
        Store::new(caps, FixedState::with_seed(7))
    }

    /// Writes `key` as `writer` delivered by `sender` (`None`: this node).
    fn put_by(s: &mut Store, key: &str, writer: u128, sender: Option<u128>, secs: u64) -> Merge {
        let key = DhtKey::Open(Bytes::copy_from_slice(key.as_bytes()));
        let sender = sender.map(NodeId::from_u128);
        s.merge(key, val(1, writer, b"v"), at(secs), None, sender)
    }

    #[test]
    fn hard_caps_refuse_a_writer_and_a_sender_past_their_quota() {
        let mut s = quota_store(100, 3, 5);
        for i in 0..3 {
            assert_eq!(
                put_by(&mut s, &format!("a{i}"), 1, Some(9), 0),
                Merge::Stored
            );
        }
        assert_eq!(
            put_by(&mut s, "a3", 1, Some(9), 0),
            Merge::Refused(Refusal::Writer)
        );
        // A new body for a key it holds replaces, within the quota.
        let key = open(b"a0");
        let sender = Some(NodeId::from_u128(9));
        assert_eq!(
            s.merge(key, val(2, 1, b"w"), at(1), None, sender),
            Merge::Stored
        );
        // Writers made up by sender 9 still count against it.
        for (i, writer) in [2, 3].into_iter().enumerate() {
            assert_eq!(
                put_by(&mut s, &format!("b{i}"), writer, Some(9), 0),
                Merge::Stored
            );
        }
        assert_eq!(
            put_by(&mut s, "b2", 4, Some(9), 0),
            Merge::Refused(Refusal::Sender)
        );
        // Another sender, and this node's own writes, are not held back.
        assert_eq!(put_by(&mut s, "c0", 4, Some(8), 0), Merge::Stored);
        assert_eq!(put_by(&mut s, "c1", 5, None, 0), Merge::Stored);
        let counts = s.counts();
        assert_eq!((counts.refused_writer, counts.refused_sender), (1, 1));
        assert_eq!(s.quotas.sender(sender).entries, 5);
        assert_eq!(s.parties(), (5, 3));
    }

    #[test]
    fn replicas_of_other_ranges_answer_to_their_owner_not_to_the_quotas() {
        let mut s = quota_store(100, 1, 1);
        let (first, second) = (b"r1", b"r2");
        // The own range holds `first` only: `second` is a replica.
        let sender = Some(NodeId::from_u128(9));
        let merge = |s: &mut Store, key: &'static [u8]| {
            s.merge(open(key), val(1, 1, b"v"), T0, only(first), sender)
        };
        assert_eq!(merge(&mut s, first), Merge::Stored);
        assert_eq!(merge(&mut s, second), Merge::Stored);
        // But in the own range writer 1 is at its one entry.
        let third = s.merge(open(b"r3"), val(1, 1, b"v"), T0, None, sender);
        assert_eq!(third, Merge::Refused(Refusal::Writer));
    }

    #[test]
    fn a_full_store_evicts_the_most_pressed_sender_even_in_the_own_range() {
        // 10 entries, no quota below: sender 100 delivers 8 entries under 8
        // made-up writers, all in the own range (P unknown: all own).
        let mut s = quota_store(10, 10, 10);
        for w in 0..8 {
            assert_eq!(
                put_by(&mut s, &format!("junk{w}"), w, Some(100), w as u64),
                Merge::Stored
            );
        }
        assert_eq!(put_by(&mut s, "mine", 50, None, 9), Merge::Stored);
        assert_eq!(put_by(&mut s, "theirs", 51, Some(51), 9), Merge::Stored);
        // Full. Four senders: a share is 2 entries, and 100 holds 8.
        for (i, writer) in [52, 53, 54].into_iter().enumerate() {
            let key = format!("honest{i}");
            assert_eq!(
                put_by(&mut s, &key, writer, Some(writer), 10),
                Merge::Stored
            );
        }
        // The oldest confirmed junk went; every honest entry stayed.
        for key in ["junk0", "junk1", "junk2"] {
            assert!(held(&s, key.as_bytes()).is_none(), "{key}");
        }
        for key in ["junk3", "mine", "theirs", "honest0", "honest1", "honest2"] {
            assert!(held(&s, key.as_bytes()).is_some(), "{key}");
        }
        assert_eq!((s.len(), s.counts().evicted), (10, 3));
    }

    #[test]
    fn entries_within_their_share_are_protected_and_the_full_store_says_so() {
        let mut s = quota_store(10, 10, 10);
        for w in 0..10 {
            assert_eq!(
                put_by(&mut s, &format!("k{w}"), w, Some(w), 0),
                Merge::Stored
            );
        }
        // Eleven parties: each holding one entry is at its share.
        let before = contents(&s);
        assert_eq!(
            put_by(&mut s, "new", 11, Some(11), 1),
            Merge::Refused(Refusal::Full)
        );
        assert_eq!(contents(&s), before);
        assert_eq!(s.counts().refused_full, 1);
    }

    #[test]
    fn a_writer_over_its_share_of_a_full_store_is_refused_as_its_own_quota() {
        let mut s = quota_store(10, 10, 10);
        for i in 0..8 {
            assert_eq!(
                put_by(&mut s, &format!("big{i}"), 1, Some(1), i),
                Merge::Stored
            );
        }
        for i in 0..2 {
            assert_eq!(
                put_by(&mut s, &format!("small{i}"), 2, Some(2), 0),
                Merge::Stored
            );
        }
        // Writer 1 holds 8 of 10 with two writers: over its share of 5.
        assert_eq!(
            put_by(&mut s, "big8", 1, Some(1), 9),
            Merge::Refused(Refusal::Writer)
        );
        // Writer 2, within its share, displaces writer 1's oldest.
        assert_eq!(put_by(&mut s, "small2", 2, Some(2), 9), Merge::Stored);
        assert!(held(&s, b"big0").is_none() && held(&s, b"big1").is_some());
    }

    /// (key index, version, writer, value: None for a tombstone).
    type Op = (u8, u64, u128, Option<Vec<u8>>);

    fn op() -> impl Strategy<Value = Op> {
        let value = prop::option::of(prop::collection::vec(any::<u8>(), 0..3));
        (0u8..5, 1u64..4, 0u128..3, value)
    }

    fn apply(s: &mut Store, op: &Op, now: Instant, own: Own) -> Merge {
        let (k, version, writer, value) = op.clone();
        let value = value.map_or(DhtValue::Tombstone, |v| DhtValue::Value(v.into()));
        let body = unsigned(version, writer, value);
        s.merge(
            DhtKey::Open(Bytes::from(vec![b'k', k])),
            body,
            now,
            own,
            None,
        )
    }

    proptest! {
        #[test]
        fn merging_is_commutative_and_idempotent(
            (ops, shuffled) in prop::collection::vec(op(), 0..24)
                .prop_flat_map(|ops| (Just(ops.clone()), Just(ops).prop_shuffle())),
        ) {
            let (mut one, mut two) = (store(100, 1_000), store(100, 1_000));
            for op in &ops {
                apply(&mut one, op, T0, None);
            }
            for op in &shuffled {
                apply(&mut two, op, at(1), None);
            }
            prop_assert_eq!(contents(&one), contents(&two));
            let before = contents(&one);
            for op in &ops {
                prop_assert_ne!(apply(&mut one, op, at(2), None), Merge::Stored);
            }
            prop_assert_eq!(contents(&one), before);
        }

        /// Whoever writes through whichever sender, each party's usage is
        /// the sum of what the store holds of it, within its quota, and a
        /// refusal changes nothing.
        #[test]
        fn quotas_track_the_store_and_hold(
            ops in prop::collection::vec((op(), prop::option::of(0u128..3), 0u64..50), 0..40),
            max_entries in 1usize..8,
            per_writer in 1usize..8,
            per_sender in 1usize..8,
        ) {
            let mut s = quota_store(max_entries, per_writer, per_sender);
            for (op, sender, secs) in &ops {
                let (k, version, writer, value) = op.clone();
                let value = value.map_or(DhtValue::Tombstone, |v| DhtValue::Value(v.into()));
                let body = unsigned(version, writer, value);
                let sender = sender.map(NodeId::from_u128);
                let before = contents(&s);
                let key = DhtKey::Open(Bytes::from(vec![b'k', k]));
                if s.merge(key, body, at(*secs), None, sender) != Merge::Stored {
                    prop_assert_eq!(contents(&s), before);
                }
                prop_assert!(s.len() <= max_entries);
                for w in 0u128..3 {
                    let id = NodeId::from_u128(w);
                    let n = s.iter().filter(|(_, e)| e.body.writer == id).count();
                    prop_assert_eq!(s.quotas.writer(id).entries, n);
                    prop_assert!(per_writer >= max_entries || n <= per_writer);
                }
                for id in [None, Some(0u128), Some(1), Some(2)].map(|s| s.map(NodeId::from_u128)) {
                    let n = s.iter().filter(|(_, e)| e.sender == id).count();
                    prop_assert_eq!(s.quotas.sender(id).entries, n);
                    prop_assert!(id.is_none() || per_sender >= max_entries || n <= per_sender);
                }
            }
        }

        #[test]
        fn caps_and_byte_count_hold_and_full_changes_nothing(
            ops in prop::collection::vec((op(), 0u64..50), 0..40),
            max_entries in 0usize..5,
            max_bytes in 0usize..12,
            own in prop::option::of((any::<u128>(), any::<u128>())),
        ) {
            let mut s = store(max_entries, max_bytes);
            for (op, secs) in &ops {
                let before = contents(&s);
                if apply(&mut s, op, at(*secs), own) != Merge::Stored {
                    prop_assert_eq!(contents(&s), before);
                }
                prop_assert_eq!(s.bytes(), s.iter().map(|(_, e)| e.cost()).sum::<usize>());
                prop_assert!(s.bytes() <= max_bytes && s.len() <= max_entries);
            }
        }
    }
}
