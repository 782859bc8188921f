//! The holder (spec/chord.md §10.3, §10.4): answering the table's
//! messages, hand-off to a new predecessor, anti-entropy repair and
//! garbage.

use smallvec::SmallVec;
use tracing::{debug, info};

use super::store::{Merge, key_hash, order_key, position};
use super::{Client, Dht, Task, Timer, verify, within_step};
use crate::NodeId;
use crate::chord::ring::{in_half_open, in_open};
use crate::chord::{Chord, Finger, Pointer};
use crate::cx::Cx;
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
        let dropped = self.store.collect_garbage(
            cx.now(),
            own,
            self.settings.repair_interval.saturating_mul(3),
            self.settings.tombstone_ttl,
        );
        if dropped > 0 {
            debug!(node = %cx.me().short(), dropped, "dropped stale table entries");
        }
        if self.stats != self.logged {
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
