//! The holder (spec/chord.md §10.3, §10.4): answering the table's
//! messages, hand-off to a new predecessor, anti-entropy repair and
//! garbage.

use smallvec::SmallVec;
use tracing::{debug, info};

use super::store::Merge;
use super::{Client, Dht, Task, Timer};
use crate::NodeId;
use crate::chord::ring::{in_half_open, in_open};
use crate::chord::{Chord, Pointer};
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
            Message::DhtPut(DhtPut { req, op, key }) => {
                self.coordinate(cx, ring, Client::Remote { peer: from, req }, from, key, op);
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
                    self.store.missing(&items, cx.now())
                } else {
                    Vec::new()
                };
                let reply = DhtSyncReply { req, indices };
                let _ = cx.send(from, &Message::DhtSyncReply(reply));
            }
            _ => {}
        }
    }

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
        let mut status = DhtReplicateStatus::Ok;
        for DhtEntry { key, body } in entries {
            // Counted against `from`'s quota as sender (§10.5).
            if let Merge::Refused(refusal) = self.store.merge(key, body, cx.now(), own, Some(from))
            {
                debug!(node = %cx.me().short(), from = %from.short(), ?refusal, "replicated entry refused");
                status = DhtReplicateStatus::Full;
            }
        }
        status
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
            let size = entry.key.len()
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
        let Some(new) = ring.predecessor().cloned() else {
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
            .cloned()
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
            .cloned()
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
