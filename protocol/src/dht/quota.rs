//! What each writer and each sending peer holds in a holder's store, and
//! the quotas that bound it (spec/chord.md §10.5).
//!
//! Pure accounting: the store tells the [`Quotas`] of every entry it adds
//! or removes (a [`Charge`]); the quotas answer whether a new entry fits
//! its writer's and its sender's caps, and how far each party is over its
//! fair share of a full store (its *pressure*), which orders eviction.
//!
//! Two dimensions, because one alone is cheap to dodge: a writer is a
//! claim in the entry (any number of them can be made up), a sender is the
//! authenticated peer that delivered it (the client of a `DhtPut`, the
//! peer of a `DhtReplicate`). Entries the node writes itself as
//! coordinator of its own command count for the sender `None`, this node:
//! it has a fair share like any sender, and no hard cap.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::NodeId;

/// Pressure of a party exactly at its fair share: pressures are in parts
/// per million of the share, so integer arithmetic orders them exactly.
pub(crate) const AT_SHARE: u128 = 1_000_000;

/// What one party holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Bytes of keys and values (as `dht.max_bytes` counts them).
    pub(crate) bytes: usize,
    /// Entries, values and tombstones.
    pub(crate) entries: usize,
}

/// Which party a refusal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Party {
    /// The entry's `writer`.
    Writer,
    /// The peer that delivered the entry.
    Sender,
}

/// One entry's share of the accounting: who wrote it, who delivered it
/// (`None`: this node, for its own command) and what it costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charge {
    /// The entry's writer.
    pub(crate) writer: NodeId,
    /// The peer it came from, `None` for the node's own writes.
    pub(crate) sender: Option<NodeId>,
    /// Its cost against `dht.max_bytes`.
    pub(crate) cost: usize,
}

/// Usage of one dimension (writers or senders), party by party. A party
/// with no entry left is forgotten, so the map holds at most as many
/// parties as the store holds entries.
struct Ledger<P> {
    parties: HashMap<P, Usage, FixedState>,
    /// The hard caps of one party.
    cap: Usage,
}

impl<P: Copy + Eq + core::hash::Hash> Ledger<P> {
    fn new(cap: Usage, hasher: FixedState) -> Self {
        Ledger {
            parties: HashMap::with_hasher(hasher),
            cap,
        }
    }

    fn usage(&self, party: P) -> Usage {
        self.parties.get(&party).copied().unwrap_or_default()
    }

    fn add(&mut self, party: P, cost: usize) {
        let usage = self.parties.entry(party).or_default();
        usage.bytes += cost;
        usage.entries += 1;
    }

    /// Takes back what [`Ledger::add`] charged. Every removal matches an
    /// earlier addition (the store charges and refunds the same
    /// [`Charge`]), so nothing here can go below zero.
    fn remove(&mut self, party: P, cost: usize) {
        let Some(usage) = self.parties.get_mut(&party) else {
            debug_assert!(false, "a refund for a party never charged");
            return;
        };
        debug_assert!(usage.bytes >= cost && usage.entries >= 1);
        usage.bytes = usage.bytes.saturating_sub(cost);
        usage.entries = usage.entries.saturating_sub(1);
        if usage.entries == 0 {
            self.parties.remove(&party);
        }
    }

    /// `party`'s usage once an entry of `cost` is added and `replaced`
    /// (the entry it replaces, if the same party's) is taken back.
    fn after(&self, party: P, cost: usize, replaced: Option<usize>) -> Usage {
        let now = self.usage(party);
        let (freed, gone) = replaced.map_or((0, 0), |c| (c, 1));
        Usage {
            bytes: now.bytes - freed + cost,
            entries: now.entries - gone + 1,
        }
    }

    /// Whether `usage` is within the party's hard caps. A cap at or above
    /// the store's own (`total`) is none: the store's cap and its eviction
    /// rule govern then, as for a party with no quota.
    fn within_cap(&self, usage: Usage, total: Usage) -> bool {
        (usage.bytes <= self.cap.bytes || self.cap.bytes >= total.bytes)
            && (usage.entries <= self.cap.entries || self.cap.entries >= total.entries)
    }

    /// Whether `party` is the only party held (or none is): its share is
    /// then the whole store.
    fn alone(&self, party: P) -> bool {
        self.parties.is_empty() || (self.parties.len() == 1 && self.parties.contains_key(&party))
    }

    /// The fair share of one party when the store's `total` is split evenly
    /// among the parties held, counting `newcomer` if it holds nothing yet.
    fn share(&self, total: Usage, newcomer: P) -> Usage {
        let new = !self.parties.contains_key(&newcomer);
        let parties = self.parties.len() + usize::from(new);
        Usage {
            bytes: (total.bytes / parties).max(1),
            entries: (total.entries / parties).max(1),
        }
    }
}

/// How far `usage` is over `share`, in millionths of the share: the
/// greater of its bytes and its entries.
fn pressure(usage: Usage, share: Usage) -> u128 {
    let ratio = |used: usize, share: usize| used as u128 * AT_SHARE / share.max(1) as u128;
    ratio(usage.bytes, share.bytes).max(ratio(usage.entries, share.entries))
}

/// The fair shares of one decision, for writers and for senders.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shares {
    writer: Usage,
    sender: Usage,
}

/// How far an entry's parties are over their fair shares, in millionths
/// of the share ([`AT_SHARE`] is exactly at it). Ordered by the sender's
/// first: the sender is authenticated, a writer is any claim a sender
/// makes, so junk made up under many writers still weighs on its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pressure {
    /// The sender's (this node counts as one for its own writes).
    pub(crate) sender: u128,
    /// The writer's.
    pub(crate) writer: u128,
}

impl Pressure {
    /// Whether either party holds more than its fair share: only such an
    /// entry may be evicted for another party's.
    pub(crate) fn over_share(self) -> bool {
        self.sender > AT_SHARE || self.writer > AT_SHARE
    }
}

/// The quotas of a holder's store: per writer and per sender, the hard
/// caps (`dht.max_bytes_per_writer`, …) and the usage they are held to.
/// Entries this node wrote for its own commands count for the sender
/// `None` (this node), which has no hard cap but a fair share.
pub(crate) struct Quotas {
    writers: Ledger<NodeId>,
    senders: Ledger<Option<NodeId>>,
    /// The store's own caps, split into fair shares.
    total: Usage,
}

impl Quotas {
    /// Empty quotas: one writer may hold `per_writer`, one sender
    /// `per_sender`, of a store of `total`.
    pub(crate) fn new(
        total: Usage,
        per_writer: Usage,
        per_sender: Usage,
        hasher: FixedState,
    ) -> Self {
        Quotas {
            writers: Ledger::new(per_writer, hasher.clone()),
            senders: Ledger::new(per_sender, hasher),
            total,
        }
    }

    /// Counts an entry that was stored.
    pub(crate) fn add(&mut self, charge: &Charge) {
        self.writers.add(charge.writer, charge.cost);
        self.senders.add(charge.sender, charge.cost);
    }

    /// Takes back an entry that went (replaced, evicted, garbage).
    pub(crate) fn remove(&mut self, charge: &Charge) {
        self.writers.remove(charge.writer, charge.cost);
        self.senders.remove(charge.sender, charge.cost);
    }

    /// What a writer holds.
    #[cfg(test)]
    pub(crate) fn writer(&self, writer: NodeId) -> Usage {
        self.writers.usage(writer)
    }

    /// What a sender (`None`: this node) delivered that is still held.
    #[cfg(test)]
    pub(crate) fn sender(&self, sender: Option<NodeId>) -> Usage {
        self.senders.usage(sender)
    }

    /// Writers, and senders (this node included), holding an entry.
    pub(crate) fn parties(&self) -> (usize, usize) {
        (self.writers.parties.len(), self.senders.parties.len())
    }

    /// The usage of `charge`'s writer and sender if it were stored in
    /// place of `replaced`.
    fn after(&self, charge: &Charge, replaced: Option<&Charge>) -> (Usage, Usage) {
        let same_writer = replaced.filter(|r| r.writer == charge.writer);
        let same_sender = replaced.filter(|r| r.sender == charge.sender);
        (
            self.writers
                .after(charge.writer, charge.cost, same_writer.map(|r| r.cost)),
            self.senders
                .after(charge.sender, charge.cost, same_sender.map(|r| r.cost)),
        )
    }

    /// Whether `charge`, stored in place of `replaced`, keeps its writer
    /// and its sender within their hard caps; else whose cap it breaks.
    /// This node's own writes have no sender cap.
    pub(crate) fn admits(&self, charge: &Charge, replaced: Option<&Charge>) -> Result<(), Party> {
        let (writer, sender) = self.after(charge, replaced);
        if !self.writers.within_cap(writer, self.total) {
            Err(Party::Writer)
        } else if charge.sender.is_some() && !self.senders.within_cap(sender, self.total) {
            Err(Party::Sender)
        } else {
            Ok(())
        }
    }

    /// The fair shares when `charge`'s parties are counted too.
    pub(crate) fn shares(&self, charge: &Charge) -> Shares {
        Shares {
            writer: self.writers.share(self.total, charge.writer),
            sender: self.senders.share(self.total, charge.sender),
        }
    }

    /// The pressure of an entry held, by its writer and its sender.
    pub(crate) fn pressure(
        &self,
        writer: NodeId,
        sender: Option<NodeId>,
        shares: &Shares,
    ) -> Pressure {
        Pressure {
            sender: pressure(self.senders.usage(sender), shares.sender),
            writer: pressure(self.writers.usage(writer), shares.writer),
        }
    }

    /// The pressure `charge`'s parties would have once it is stored in
    /// place of `replaced`, and which of them is over its share by its own
    /// doing (the writer named first). A party alone in its dimension has
    /// the whole store as its share: its being over it is the store being
    /// full, not a quota of its own.
    pub(crate) fn pressure_after(
        &self,
        charge: &Charge,
        replaced: Option<&Charge>,
        shares: &Shares,
    ) -> (Pressure, Option<Party>) {
        let (writer, sender) = self.after(charge, replaced);
        let pressure = Pressure {
            sender: pressure(sender, shares.sender),
            writer: pressure(writer, shares.writer),
        };
        let own = if pressure.writer > AT_SHARE && !self.writers.alone(charge.writer) {
            Some(Party::Writer)
        } else if pressure.sender > AT_SHARE && !self.senders.alone(charge.sender) {
            Some(Party::Sender)
        } else {
            None
        };
        (pressure, own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usage(bytes: usize, entries: usize) -> Usage {
        Usage { bytes, entries }
    }

    fn quotas(per_writer: Usage, per_sender: Usage) -> Quotas {
        Quotas::new(
            usage(1_000, 100),
            per_writer,
            per_sender,
            FixedState::with_seed(3),
        )
    }

    fn charge(writer: u128, sender: Option<u128>, cost: usize) -> Charge {
        Charge {
            writer: NodeId::from_u128(writer),
            sender: sender.map(NodeId::from_u128),
            cost,
        }
    }

    #[test]
    fn caps_bound_each_writer_and_each_sender_and_a_replacement_frees_its_own() {
        let mut q = quotas(usage(100, 3), usage(150, 10));
        let a = charge(1, Some(9), 60);
        assert_eq!(q.admits(&a, None), Ok(()));
        q.add(&a);
        // 60 + 50 bytes is over the writer's 100.
        assert_eq!(q.admits(&charge(1, Some(9), 50), None), Err(Party::Writer));
        // In place of its own 60-byte entry it fits.
        assert_eq!(q.admits(&charge(1, Some(9), 50), Some(&a)), Ok(()));
        // Another writer through the same sender: 60 + 95 over its 150.
        assert_eq!(q.admits(&charge(2, Some(9), 95), None), Err(Party::Sender));
        // The node's own writes have no sender cap.
        assert_eq!(q.admits(&charge(2, None, 95), None), Ok(()));
        for _ in 0..2 {
            q.add(&charge(1, None, 1));
        }
        // A fourth entry breaks the writer's 3 entries.
        assert_eq!(q.admits(&charge(1, None, 1), None), Err(Party::Writer));
        q.remove(&a);
        assert_eq!(q.writer(NodeId::from_u128(1)), usage(2, 2));
        assert_eq!(q.sender(Some(NodeId::from_u128(9))), Usage::default());
        assert_eq!(q.sender(None), usage(2, 2));
        assert_eq!(q.parties(), (1, 1));
    }

    #[test]
    fn pressure_names_the_party_over_its_fair_share() {
        let big = usage(10_000, 1_000);
        let mut q = quotas(big, big);
        // Writer 1 holds 600 of 1,000 bytes, writer 2 holds 100.
        q.add(&charge(1, Some(9), 600));
        q.add(&charge(2, None, 100));
        let newcomer = charge(3, None, 10);
        let shares = q.shares(&newcomer);
        let id = NodeId::from_u128;
        // Three writers: a share is 333 bytes, 33 entries; two senders
        // (9 and this node): 500 bytes, 50 entries.
        let of_1 = q.pressure(id(1), Some(id(9)), &shares);
        assert!(of_1.writer > AT_SHARE && of_1.sender > AT_SHARE);
        assert!(!q.pressure(id(2), None, &shares).over_share());
        assert_eq!(q.pressure(id(2), Some(id(9)), &shares).sender, 1_200_000);
        assert_eq!(q.pressure_after(&newcomer, None, &shares).1, None);
        // Writer 1 writing more is over its share, and it is its own.
        let more = charge(1, None, 10);
        let (p, party) = q.pressure_after(&more, None, &q.shares(&more));
        assert!(p.writer > AT_SHARE);
        assert_eq!(party, Some(Party::Writer));
    }

    #[test]
    fn a_party_alone_is_never_over_a_quota_of_its_own() {
        let big = usage(10_000, 1_000);
        let mut q = quotas(big, big);
        q.add(&charge(1, Some(9), 990));
        let more = charge(1, Some(9), 20);
        let (p, party) = q.pressure_after(&more, None, &q.shares(&more));
        assert!(p.writer > AT_SHARE && p.sender > AT_SHARE);
        assert_eq!(party, None);
    }

    proptest! {
        /// Whatever is added and removed (each removal of something added),
        /// every party's usage is the sum of its entries, parties with
        /// nothing are forgotten, and an admitted entry is within the caps.
        #[test]
        fn usage_is_the_sum_of_what_is_held_and_never_over_the_caps(
            ops in prop::collection::vec((0u128..4, prop::option::of(0u128..3), 0usize..40, any::<bool>()), 0..60),
        ) {
            let cap = usage(100, 5);
            let mut q = quotas(cap, usage(150, 7));
            let mut held: Vec<Charge> = Vec::new();
            for (i, (writer, sender, cost, remove)) in ops.into_iter().enumerate() {
                if remove && !held.is_empty() {
                    let gone = held.remove(i % held.len());
                    q.remove(&gone);
                } else {
                    let c = charge(writer, sender, cost);
                    if q.admits(&c, None).is_ok() {
                        q.add(&c);
                        held.push(c);
                    }
                }
                for w in 0u128..4 {
                    let id = NodeId::from_u128(w);
                    let mine: Vec<_> = held.iter().filter(|c| c.writer == id).collect();
                    let want = usage(mine.iter().map(|c| c.cost).sum(), mine.len());
                    prop_assert_eq!(q.writer(id), want);
                    prop_assert!(want.bytes <= cap.bytes && want.entries <= cap.entries);
                }
                for s in [None, Some(0u128), Some(1), Some(2)] {
                    let id = s.map(NodeId::from_u128);
                    let mine: Vec<_> = held.iter().filter(|c| c.sender == id).collect();
                    let want = usage(mine.iter().map(|c| c.cost).sum(), mine.len());
                    prop_assert_eq!(q.sender(id), want);
                    prop_assert!(id.is_none() || (want.bytes <= 150 && want.entries <= 7));
                }
                let writers: std::collections::BTreeSet<_> = held.iter().map(|c| c.writer).collect();
                let senders: std::collections::BTreeSet<_> = held.iter().map(|c| c.sender).collect();
                prop_assert_eq!(q.parties(), (writers.len(), senders.len()));
            }
        }
    }
}
