//! A holder's store of dht entries, bounded in entries and bytes.
//!
//! Pure rules of spec/chord.md: key hash, position and tag (§10.1), the
//! conflict rule every holder applies (§10.1), the digests and confirmations
//! of repair and the garbage rules (§10.4), and the caps with their eviction
//! order (§10.5). Time comes in as arguments; nothing here does I/O.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

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
}

impl Stored {
    /// Bytes this entry counts against `dht.max_bytes`.
    pub(crate) fn cost(&self) -> usize {
        cost_of(&self.key, &self.body)
    }

    fn order_key(&self) -> (u64, NodeId, u64) {
        (self.body.version, self.body.writer, self.tag)
    }

    pub(crate) fn to_entry(&self) -> DhtEntry {
        DhtEntry {
            key: self.key.clone(),
            body: self.body.clone(),
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
    /// The caps refuse it even after evicting what may go; nothing changed.
    Full,
}

/// A holder's entries, keyed by kh, within `max_entries` and `max_bytes`.
pub(crate) struct Store {
    entries: HashMap<[u8; 32], Stored, FixedState>,
    /// Sum of the entries' costs, kept up to date on every change.
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Store {
    /// An empty store holding at most `max_entries` entries and `max_bytes`
    /// of keys and values (`dht.max_entries`, `dht.max_bytes`).
    pub(crate) fn new(max_entries: usize, max_bytes: usize, hasher: FixedState) -> Self {
        Store {
            entries: HashMap::with_hasher(hasher),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Merges `body` for `key` by the conflict rule, at `now`. `own` is the
    /// node's range (*P*, self], `None` while *P* is unknown: then every
    /// entry counts as its own and none may be evicted (§10.5).
    ///
    /// Over a cap, entries outside `own` go first, oldest `confirmed_at`
    /// first (ties by kh). Whether enough can go is settled before anything
    /// is evicted, so `Full` leaves the store as it was.
    pub(crate) fn merge(
        &mut self,
        key: DhtKey,
        body: DhtBody,
        now: Instant,
        own: Option<(u128, u128)>,
    ) -> Merge {
        let kh = key_hash(&key);
        let new = order_key(&body);
        let freed = match self.entries.get(&kh) {
            Some(old) if old.order_key() >= new => return Merge::Kept,
            Some(old) => Some(old.cost()),
            None => None,
        };
        let cost = cost_of(&key, &body);
        let len = self.entries.len() + usize::from(freed.is_none());
        let bytes = self.bytes - freed.unwrap_or(0) + cost;
        // The common case, under both caps, stays O(1); only a full store
        // pays for sorting its eviction candidates.
        if len > self.max_entries || bytes > self.max_bytes {
            let Some(victims) = self.victims(kh, len, bytes, own) else {
                return Merge::Full;
            };
            for victim in victims {
                self.remove(&victim);
            }
        }
        self.bytes = self.bytes - freed.unwrap_or(0) + cost;
        let position = position(&kh);
        let stored = Stored {
            key,
            position,
            body,
            tag: new.2,
            confirmed_at: now,
            stored_at: now,
        };
        self.entries.insert(kh, stored);
        Merge::Stored
    }

    /// The entries to evict so that a store of `len` entries and `bytes`
    /// fits the caps, sparing `spare` (the kh being written); `None` if
    /// evicting every candidate would not be enough.
    fn victims(
        &self,
        spare: [u8; 32],
        mut len: usize,
        mut bytes: usize,
        own: Option<(u128, u128)>,
    ) -> Option<Vec<[u8; 32]>> {
        let (pred, me) = own?;
        let mut candidates: Vec<(Instant, [u8; 32], usize)> = self
            .entries
            .iter()
            .filter(|&(kh, s)| *kh != spare && !in_half_open(pred, s.position, me))
            .map(|(kh, s)| (s.confirmed_at, *kh, s.cost()))
            .collect();
        candidates.sort_unstable_by_key(|&(at, kh, _)| (at, kh));
        let mut victims = Vec::new();
        for (_, kh, cost) in candidates {
            if len <= self.max_entries && bytes <= self.max_bytes {
                break;
            }
            len -= 1;
            bytes -= cost;
            victims.push(kh);
        }
        (len <= self.max_entries && bytes <= self.max_bytes).then_some(victims)
    }

    fn remove(&mut self, kh: &[u8; 32]) {
        if let Some(old) = self.entries.remove(kh) {
            self.bytes -= old.cost();
        }
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
        let mut held: Vec<_> = self.iter().filter(|(_, s)| wanted(s.position)).collect();
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
        self.entries.retain(|_, s| {
            let expired_tombstone =
                matches!(s.body.value, DhtValue::Tombstone) && now - s.stored_at >= tombstone_ttl;
            let stale_foreign = own.is_some_and(|(pred, me)| {
                !in_half_open(pred, s.position, me) && now - s.confirmed_at > confirm_ttl
            });
            let drop = expired_tombstone || stale_foreign;
            if drop {
                *bytes -= s.cost();
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

    fn store(max_entries: usize, max_bytes: usize) -> Store {
        Store::new(max_entries, max_bytes, FixedState::with_seed(7))
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
        s.merge(open(key), body, at(secs), own)
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
            Merge::Full
        );
        // Nothing is evictable while P is unknown.
        assert_eq!(put(&mut s, b"e", val(1, 1, b"0"), 3, None), Merge::Full);
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
            holder.merge(key_of(i), body, T0, None);
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
        s.merge(DhtKey::Open(Bytes::from(vec![b'k', k])), body, now, own)
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
