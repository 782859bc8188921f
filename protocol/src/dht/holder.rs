//! The holder (spec/chord.md §10.3, §10.4): answering the table's
//! messages, hand-off to a new predecessor, anti-entropy repair and
//! garbage.

use smallvec::SmallVec;
use tracing::{debug, info};

use super::store::{Merge, key_hash, order_key, position};
use super::{Client, Dht, DhtStats, Task, Timer, verify, within_step};
use crate::NodeId;
use crate::chord::ring::{in_half_open, in_open};
use crate::chord::{Chord, Finger, Pointer};
use crate::cx::Cx;
use crate::time::Duration;
use crate::wire::{
    Capabilities, DhtEntry, DhtGet, DhtGetReply, DhtPut, DhtReplicate, DhtReplicateAck,
    DhtReplicateStatus, DhtSync, DhtSyncItem, DhtSyncReply, DhtValue, MAX_DHT_BATCH,
    MAX_DHT_DIGEST, Message,
};

/// Bytes of values one `DhtReplicate` batch carries (a single larger entry
/// goes alone).
const BATCH_BYTES: usize = 1 << 20;

impl Dht {
    /// A table request (`DhtPut`, `DhtGet`, `DhtReplicate`, `DhtSync`)
    /// from `from`. Replies go to `from`'s current connection.
    pub(crate) fn on_request(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        from: NodeId,
        message: Message,
    ) {
        match message {
            Message::DhtPut(DhtPut { req, entry }) => {
                self.coordinate(cx, ring, Client::Remote { peer: from, req }, *entry);
            }
            Message::DhtGet(DhtGet { req, key }) => {
                let status = self.get_status(ring, &key);
                let _ = cx.send(from, &Message::DhtGetReply(DhtGetReply { req, status }));
            }
            Message::DhtReplicate(DhtReplicate { req, entries }) => {
                let status = self.merge_replicas(cx, ring, from, entries);
                let ack = DhtReplicateAck { req, status };
                let _ = cx.send(from, &Message::DhtReplicateAck(ack));
            }
            Message::DhtSync(DhtSync { req, items }) => {
                let indices = if ring.is_member() {
                    self.sync_items(cx, ring, from, &items)
                } else {
                    Vec::new()
                };
                let reply = DhtSyncReply { req, indices };
                let _ = cx.send(from, &Message::DhtSyncReply(reply));
            }
            _ => {}
        }
    }

    /// §10.4: merges the entries of a `DhtReplicate` from `from` that
    /// `from` is entitled to send and that verify; counts and logs the
    /// others.
    ///
    /// Entitled: `from` is one of this node's successors (a hand-off to a
    /// new predecessor), or the entry's position is not in (`from`, self]
    /// (by this node's view, `from` may own it: a coordinator's replica or
    /// its repair).
    fn merge_replicas(
        &mut self,
        cx: &mut dyn Cx,
        ring: &Chord,
        from: NodeId,
        entries: Vec<DhtEntry>,
    ) -> DhtReplicateStatus {
        if !ring.is_member() {
            return DhtReplicateStatus::NotInRing;
        }
        let own = Self::own_range(cx, ring);
        let me = cx.me().as_u128();
        let successor = ring.successors().iter().any(|p| p.id == from);
        let (mut refused, mut full, mut held_above) = (0u64, false, None::<u64>);
        for DhtEntry { key, body } in entries {
            let kh = key_hash(&key);
            if !successor && in_half_open(from.as_u128(), position(&kh), me) {
                self.stats.replicas_unentitled += 1;
                refused += 1;
                debug!(node = %cx.me().short(), from = %from.short(), %key, "refused a replica its sender is not entitled to send");
                continue;
            }
            if let Err(why) = verify(cx, &key, &body) {
                self.stats.entries_unverified += 1;
                refused += 1;
                debug!(node = %cx.me().short(), from = %from.short(), %key, %why, "refused a replica");
                continue;
            }
            let held = self
                .store
                .get(&kh)
                .map(|s| (s.body.version, order_key(&s.body)));
            let version = body.version;
            if !within_step(&key, version, held.map_or(0, |h| h.0)) {
                self.stats.versions_jumped += 1;
                refused += 1;
                debug!(node = %cx.me().short(), from = %from.short(), %key, version, "refused a replica whose version jumps");
                continue;
            }
            if let Some((held, order)) = held
                && order > order_key(&body)
            {
                held_above = held_above.max(Some(held));
            }
            // Counted against `from`'s quota as sender (§10.5).
            if let Merge::Refused(refusal) = self.store.merge(key, body, cx.now(), own, Some(from))
            {
                debug!(node = %cx.me().short(), from = %from.short(), ?refusal, "replicated entry refused");
                full = true;
            }
        }
        if refused > 0 {
            debug!(node = %cx.me().short(), from = %from.short(), refused, "refused entries of a DhtReplicate");
            DhtReplicateStatus::Refused
        } else if full {
            DhtReplicateStatus::Full
        } else if let Some(held) = held_above {
            DhtReplicateStatus::Stale { held }
        } else {
            DhtReplicateStatus::Ok
        }
    }

    /// §10.4, a `DhtSync` from `from`: confirms and asks for the listed
    /// entries `from` is entitled to send (the rule of
    /// [`Dht::merge_replicas`]; the others are ignored, so a peer cannot
    /// keep entries alive that it could not send), and returns the indices
    /// of those this node lacks or holds smaller.
    fn sync_items(
        &mut self,
        cx: &dyn Cx,
        ring: &Chord,
        from: NodeId,
        items: &[DhtSyncItem],
    ) -> Vec<u64> {
        let me = cx.me().as_u128();
        if ring.successors().iter().any(|p| p.id == from) {
            return self.store.missing(items, cx.now());
        }
        let (index, entitled): (Vec<u64>, Vec<DhtSyncItem>) = items
            .iter()
            .enumerate()
            .filter(|(_, item)| !in_half_open(from.as_u128(), position(&item.kh), me))
            .map(|(i, item)| (i as u64, *item))
            .unzip();
        if entitled.len() < items.len() {
            debug!(node = %cx.me().short(), from = %from.short(), ignored = items.len() - entitled.len(), "ignored digest items its sender is not entitled to send");
        }
        self.store
            .missing(&entitled, cx.now())
            .into_iter()
            .filter_map(|i| index.get(usize::try_from(i).ok()?).copied())
            .collect()
    }

    /// A `DhtSyncReply` from `to` named the digest items (of `khs`) it
    /// lacks: send them.
    pub(super) fn send_missing(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        to: Pointer,
        khs: &[[u8; 32]],
        indices: &[u64],
    ) {
        let entries: Vec<DhtEntry> = indices
            .iter()
            .filter_map(|&i| khs.get(usize::try_from(i).ok()?))
            .filter_map(|kh| self.store.get(kh).map(|s| s.to_entry()))
            .collect();
        self.push_entries(cx, ring, to, entries);
    }

    /// Sends `entries` to `to` in `DhtReplicate` batches.
    fn push_entries(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        to: Pointer,
        entries: Vec<DhtEntry>,
    ) {
        if entries.is_empty() {
            return;
        }
        let id = cx.next_op().0;
        self.tasks.insert(id, Task::Push { in_flight: 0 });
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut batches = Vec::new();
        for entry in entries {
            let size = entry.key.name().len()
                + match &entry.body.value {
                    DhtValue::Value(v) => v.len(),
                    DhtValue::Tombstone => 0,
                };
            if !batch.is_empty() && (batch.len() == MAX_DHT_BATCH || bytes + size > BATCH_BYTES) {
                batches.push(core::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push(entry);
        }
        batches.push(batch);
        if let Some(Task::Push { in_flight }) = self.tasks.get_mut(&id) {
            *in_flight = batches.len();
        }
        for entries in batches {
            ring.client_call(cx, to.clone(), id, Capabilities::DHT, |req| {
                Message::DhtReplicate(DhtReplicate { req, entries })
            });
        }
    }

    // ----- ring changes: hand-off and repair (§10.4) -----

    /// *P* changed from `old`: hand the new predecessor the entries it now
    /// owns.
    pub(super) fn hand_off(&mut self, cx: &mut dyn Cx, ring: &mut Chord, old: Option<NodeId>) {
        let Some(new) = ring.predecessor().map(Finger::pointer) else {
            return;
        };
        let me = cx.me().as_u128();
        let n = new.id.as_u128();
        let entries = match old {
            Some(old) if in_open(old.as_u128(), n, me) => {
                let o = old.as_u128();
                self.store.select(|p| in_half_open(o, p, n))
            }
            None => self.store.select(|p| !in_half_open(n, p, me)),
            Some(_) => return,
        };
        if !entries.is_empty() {
            info!(node = %cx.me().short(), to = %new.id.short(), entries = entries.len(), "handing entries to the new predecessor");
            self.push_entries(cx, ring, new, entries);
        }
    }

    /// The successor list changed: sync at once with a node that newly
    /// became one of the first `r_d − 1` successors.
    pub(super) fn sync_new_holders(&mut self, cx: &mut dyn Cx, ring: &mut Chord) {
        if !ring.is_member() || self.store.len() == 0 {
            return;
        }
        let first = self.settings.replicas - 1;
        let holders: SmallVec<[NodeId; 4]> =
            ring.successors().iter().take(first).map(|p| p.id).collect();
        let new: Vec<Pointer> = ring
            .successors()
            .iter()
            .take(first)
            .filter(|p| !self.synced.contains(&p.id))
            .map(Finger::pointer)
            .collect();
        self.synced = holders;
        for holder in new {
            self.sync_with(cx, ring, holder);
        }
    }

    /// The repair timer: sync with every holder, then collect garbage.
    pub(super) fn repair_tick(&mut self, cx: &mut dyn Cx, ring: &mut Chord) {
        if cx.is_shut_down() {
            return;
        }
        let at = cx.now() + self.settings.repair_interval;
        self.arm(cx, at, Timer::Repair);
        if !ring.is_member() {
            return;
        }
        let holders: Vec<Pointer> = ring
            .successors()
            .iter()
            .take(self.settings.replicas - 1)
            .map(Finger::pointer)
            .collect();
        for holder in holders {
            self.sync_with(cx, ring, holder);
        }
        let own = Self::own_range(cx, ring);
        self.return_strays(cx, ring);
        let dropped = self.store.collect_garbage(
            cx.now(),
            own,
            self.settings.repair_interval.saturating_mul(3),
            self.settings.tombstone_ttl,
        );
        if dropped > 0 {
            debug!(node = %cx.me().short(), dropped, "dropped stale table entries");
        }
        let refusals = |s: &DhtStats| {
            (
                s.replicas_unentitled,
                s.entries_unverified,
                s.versions_jumped,
                s.replies_rejected,
            )
        };
        if refusals(&self.stats) != refusals(&self.logged) {
            let (now, then) = (self.stats, self.logged);
            info!(
                node = %cx.me().short(),
                unentitled = now.replicas_unentitled - then.replicas_unentitled,
                unverified = now.entries_unverified - then.entries_unverified,
                jumped = now.versions_jumped - then.versions_jumped,
                rejected_replies = now.replies_rejected - then.replies_rejected,
                "refused table data since the last repair"
            );
            self.logged = now;
        }
        self.report_quotas(cx);
    }

    /// §10.4 strays: entries outside the own range that no owner confirmed
    /// for more than a repair interval (and a quarter, for the sync's way)
    /// are sent back to their owner, once each. An owner that failed
    /// before it synced the members that joined after it leaves its
    /// range's copies on its old holders, which hold no one's range now:
    /// no sync confirms them, and garbage would drop them. The owner is
    /// found by a lookup of the first stray's position; it gets every
    /// stray up to its id, and the next lookup goes on from there. The
    /// owner takes them only from one of its successors (the hand-off
    /// rule of [`Dht::merge_replicas`]): strays come back from at most
    /// `chord.successors` members after it.
    fn return_strays(&mut self, cx: &mut dyn Cx, ring: &mut Chord) {
        let Some(own) = Self::own_range(cx, ring) else {
            return;
        };
        let interval = self.settings.repair_interval;
        let after = Duration::from_micros(interval.as_micros() * 5 / 4);
        let mut strays: Vec<(u128, DhtEntry)> = self
            .store
            .strays(cx.now(), own, after, interval)
            .into_iter()
            .map(|e| (position(&key_hash(&e.key)), e))
            .collect();
        // In ring order from the first one after the own range.
        let me = own.1;
        strays.sort_by_key(|&(p, _)| p.wrapping_sub(me));
        let Some(&(at, _)) = strays.first() else {
            return;
        };
        debug!(node = %cx.me().short(), entries = strays.len(), "looking up the owners of entries no owner confirms");
        let id = cx.next_op().0;
        self.tasks.insert(id, Task::Strays { strays });
        match ring.lookup(cx, at, id) {
            Err(_) => {
                self.tasks.remove(&id);
            }
            Ok(Some(result)) => self.found(cx, ring, id, result),
            Ok(None) => {}
        }
        if self.tasks.contains_key(&id) {
            let at = cx.now() + interval;
            self.arm(cx, at, Timer::Op { id });
        }
    }

    /// The lookup of task `id`'s first stray found `owner`: it gets the
    /// strays up to its id; lookups go on for the rest. A lookup this node
    /// answers itself is handled in the same loop, not by recursion: a
    /// store may hold many strays of many owners.
    pub(super) fn strays_found(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        id: u64,
        mut owner: Option<Pointer>,
    ) {
        loop {
            let Some(Task::Strays { strays }) = self.tasks.get_mut(&id) else {
                return;
            };
            let (Some(to), Some(&(first, _))) = (owner.take(), strays.first()) else {
                self.tasks.remove(&id);
                return;
            };
            // Strays from `first` clockwise to the owner's id are its (the
            // first one at least: the loop ends).
            let span = to.id.as_u128().wrapping_sub(first);
            let split = strays
                .iter()
                .position(|&(p, _)| p.wrapping_sub(first) > span)
                .unwrap_or(strays.len());
            let rest = strays.split_off(split);
            let batch: Vec<DhtEntry> = core::mem::replace(strays, rest)
                .into_iter()
                .map(|(_, e)| e)
                .collect();
            let next = strays.first().map(|&(p, _)| p);
            if next.is_none() {
                self.tasks.remove(&id);
            }
            if to.id != cx.me() {
                self.stats.strays_returned += batch.len() as u64;
                info!(node = %cx.me().short(), to = %to.id.short(), entries = batch.len(), "handing entries no owner confirms back to their owner");
                self.push_entries(cx, ring, to, batch);
            }
            let Some(at) = next else {
                return;
            };
            match ring.lookup(cx, at, id) {
                Ok(Some(Ok(found))) => owner = found.list.into_iter().next(),
                Ok(Some(Err(_))) | Err(_) => {
                    self.tasks.remove(&id);
                    return;
                }
                Ok(None) => return,
            }
        }
    }

    /// Once a repair interval, an info line if the store refused or evicted
    /// anything since the last one (§10.5).
    fn report_quotas(&mut self, cx: &dyn Cx) {
        let now = self.store.counts();
        let was = core::mem::replace(&mut self.reported, now);
        if now == was {
            return;
        }
        let (writers, senders) = self.store.parties();
        info!(
            node = %cx.me().short(),
            refused_writer_quota = now.refused_writer - was.refused_writer,
            refused_sender_quota = now.refused_sender - was.refused_sender,
            refused_full = now.refused_full - was.refused_full,
            evicted = now.evicted - was.evicted,
            entries = self.store.len(),
            bytes = self.store.bytes(),
            writers,
            senders,
            "table quotas since the last repair round"
        );
    }

    /// Sends `holder` digests of this node's range.
    fn sync_with(&mut self, cx: &mut dyn Cx, ring: &mut Chord, holder: Pointer) {
        let Some((p, me)) = Self::own_range(cx, ring) else {
            return;
        };
        let items = self.store.digest(p, me);
        for chunk in items.chunks(MAX_DHT_DIGEST) {
            let items: Vec<DhtSyncItem> = chunk.to_vec();
            let khs = items.iter().map(|i| i.kh).collect();
            let id = cx.next_op().0;
            self.tasks.insert(id, Task::Sync { khs });
            ring.client_call(cx, holder.clone(), id, Capabilities::DHT, |req| {
                Message::DhtSync(DhtSync { req, items })
            });
        }
    }
}
