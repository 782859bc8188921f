//! The Chord table (spec/chord.md §10): the client side of `Put`, `Get`
//! and `Delete`, the coordinator that versions and replicates a write, the
//! holders, hand-off to a new predecessor, anti-entropy repair and garbage.
//! The store itself (conflict rule, caps) is `crate::dht::store`.

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;
use tracing::{debug, info};

use super::chord::Outcome;
use super::{Deadline, Node};
use crate::chord::ring::in_half_open;
use crate::chord::{ChordRole, DhtError, LookupError, LookupFor, OpId, Pointer, Purpose};
use crate::dht::store::{Merge, Store, key_hash, position};
use crate::time::Duration;
use crate::wire::{
    DhtBody, DhtEntry, DhtGet, DhtGetReply, DhtGetStatus, DhtOp, DhtPut, DhtPutReply, DhtPutStatus,
    DhtReplicate, DhtReplicateAck, DhtReplicateStatus, DhtSync, DhtSyncItem, DhtSyncReply,
    DhtValue, MAX_DHT_BATCH, MAX_DHT_DIGEST, MAX_DHT_KEY, MAX_DHT_VALUE, Message,
};
use crate::{Accepted, CommandError, Event, NodeId};

/// A lookup's result: the list L, the node that answered, hops.
type Found = (Vec<Pointer>, Pointer, u32);

/// Bytes of values one `DhtReplicate` batch carries (a single larger entry
/// goes alone).
const BATCH_BYTES: usize = 1 << 20;

/// Who asked a coordinator to write.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// This node's own command `OpId`.
    Local(u64),
    /// A peer's `DhtPut` with its `req`.
    Remote { peer: NodeId, req: u64 },
}

/// Work in progress, by task id (command ops share the id space).
enum Task {
    /// A `Put`/`Delete` command: look up, send to the coordinator, retry on
    /// `NotOwner` or a dead coordinator.
    Put { key: Bytes, value: Option<Bytes> },
    /// A `Get` command: ask the first `r_d` holders of L.
    Get {
        key: Bytes,
        list: Vec<Pointer>,
        next: usize,
        in_flight: usize,
        answers: usize,
        best: Option<DhtBody>,
    },
    /// Coordinating a write: replicate to the first `r_d − 1` successors.
    Coordinate {
        client: Client,
        entry: DhtEntry,
        candidates: Vec<Pointer>,
        next: usize,
        in_flight: usize,
        acks: usize,
        needed: usize,
    },
    /// `DhtReplicate` batches (hand-off, repair): nothing to continue.
    Push { in_flight: usize },
    /// A `DhtSync` digest: its reply names the entries to send.
    Sync { khs: Vec<[u8; 32]> },
}

/// The table's state in a node.
pub(super) struct DhtState {
    store: Store,
    tasks: HashMap<u64, Task, FixedState>,
    /// The successors repair last synced with, to sync at once with a node
    /// that newly enters those positions.
    synced: SmallVec<[NodeId; 4]>,
}

impl DhtState {
    pub(super) fn new(config: &crate::Config, hasher: FixedState) -> Self {
        DhtState {
            store: Store::new(config.dht_max_entries, config.dht_max_bytes, hasher.clone()),
            tasks: HashMap::with_hasher(hasher),
            synced: SmallVec::new(),
        }
    }

    pub(super) fn has_task(&self, id: u64) -> bool {
        self.tasks.contains_key(&id)
    }
}

fn status_error(status: DhtPutStatus, version: u64, holders: u8) -> DhtError {
    match status {
        DhtPutStatus::Full => DhtError::Full,
        DhtPutStatus::TooLarge => DhtError::TooLarge,
        DhtPutStatus::NotInRing => DhtError::NotInRing,
        DhtPutStatus::NotOwner => DhtError::NotOwner,
        DhtPutStatus::Ok | DhtPutStatus::Incomplete => DhtError::Incomplete { version, holders },
    }
}

impl Node {
    // ----- accessors -----

    /// The version of `key` this node stores (tombstones included), and
    /// whether it is a live value; `None` if it stores nothing for it.
    pub fn dht_holds(&self, key: &[u8]) -> Option<(u64, bool)> {
        self.dht
            .store
            .get_key(key)
            .map(|s| (s.body.version, matches!(s.body.value, DhtValue::Value(_))))
    }

    /// Entries (values and tombstones) this node stores, and their bytes.
    pub fn dht_usage(&self) -> (usize, usize) {
        (self.dht.store.len(), self.dht.store.bytes())
    }

    /// The node's own range (*P*, self], when *P* is known.
    fn own_range(&self) -> Option<(u128, u128)> {
        self.chord
            .pred
            .as_ref()
            .map(|p| (p.id.as_u128(), self.id.as_u128()))
    }

    // ----- client: commands -----

    fn check_key(&self, key: &[u8]) -> Result<(), CommandError> {
        if self.chord.role == ChordRole::Off {
            return Err(CommandError::ChordOff);
        }
        if key.is_empty() || key.len() > MAX_DHT_KEY {
            return Err(CommandError::BadKey(key.len()));
        }
        Ok(())
    }

    /// `Command::Put` (`value` some) and `Command::Delete` (none).
    pub(super) fn dht_put(
        &mut self,
        key: Bytes,
        value: Option<Bytes>,
    ) -> Result<Accepted, CommandError> {
        self.check_key(&key)?;
        if let Some(value) = &value
            && value.len() > MAX_DHT_VALUE
        {
            return Err(CommandError::ValueTooLarge {
                len: value.len(),
                max: MAX_DHT_VALUE,
            });
        }
        let position = position(&key_hash(&key));
        self.start_op(position, Task::Put { key, value })
    }

    /// `Command::Get`.
    pub(super) fn dht_get(&mut self, key: Bytes) -> Result<Accepted, CommandError> {
        self.check_key(&key)?;
        let position = position(&key_hash(&key));
        let task = Task::Get {
            key,
            list: Vec::new(),
            next: 0,
            in_flight: 0,
            answers: 0,
            best: None,
        };
        self.start_op(position, task)
    }

    fn start_op(&mut self, position: u128, task: Task) -> Result<Accepted, CommandError> {
        let op = self.next_op();
        self.dht.tasks.insert(op.0, task);
        if let Err(e) = self.start_lookup(position, LookupFor::Dht(op), Vec::new()) {
            self.dht.tasks.remove(&op.0);
            return Err(e);
        }
        self.deadlines.push(
            self.now + self.config.lookup_timeout,
            Deadline::DhtOp { id: op.0 },
        );
        Ok(Accepted::Op(op))
    }

    /// Ends command `id` with `event`.
    fn finish_op(&mut self, id: u64, event: Event) {
        if self.dht.tasks.remove(&id).is_some() {
            self.push_event(event);
        }
    }

    fn fail_op(&mut self, id: u64, reason: DhtError) {
        debug!(op = id, %reason, "table operation failed");
        self.finish_op(
            id,
            Event::DhtFailed {
                id: OpId(id),
                reason,
            },
        );
    }

    /// The op's lookup ended.
    pub(super) fn dht_found(&mut self, op: OpId, result: Result<Found, LookupError>) {
        let id = op.0;
        let list = match result {
            Ok((list, _, _)) => list,
            Err(LookupError::ShutDown) => return self.fail_op(id, DhtError::ShutDown),
            Err(_) => return self.retry_later(id),
        };
        match self.dht.tasks.get_mut(&id) {
            Some(Task::Put { key, value }) => {
                let (key, value) = (key.clone(), value.clone());
                self.send_put(id, list, key, value);
            }
            Some(Task::Get { list: l, next, .. }) => {
                *l = list;
                *next = 0;
                let wanted = self.config.dht_replicas;
                for _ in 0..wanted {
                    self.ask_next_holder(id);
                }
                self.maybe_finish_get(id);
            }
            _ => {}
        }
    }

    /// §10.2 step 1: the coordinator is the first entry of L (this node
    /// itself, when it owns the key).
    fn send_put(&mut self, id: u64, list: Vec<Pointer>, key: Bytes, value: Option<Bytes>) {
        let Some(coordinator) = list.into_iter().next() else {
            return self.retry_later(id);
        };
        let op = match value {
            Some(value) => DhtOp::Put { value },
            None => DhtOp::Delete,
        };
        if coordinator.id == self.id {
            let client = Client::Local(id);
            return self.coordinate(client, self.id, key, op);
        }
        self.chord_request(coordinator, Purpose::Dht(id), |req| {
            Message::DhtPut(DhtPut { req, op, key })
        });
    }

    /// A put whose coordinator was not the owner, or died: look up again
    /// after a stabilization interval (§10.2 step 4).
    fn retry_later(&mut self, id: u64) {
        if self.dht.tasks.contains_key(&id) {
            self.deadlines.push(
                self.now + self.config.chord_stabilize_interval,
                Deadline::DhtRetry { id },
            );
        }
    }

    pub(super) fn dht_retry(&mut self, id: u64) {
        let position = match self.dht.tasks.get(&id) {
            Some(Task::Put { key, .. } | Task::Get { key, .. }) => position(&key_hash(key)),
            _ => return,
        };
        if self
            .start_lookup(position, LookupFor::Dht(OpId(id)), Vec::new())
            .is_err()
        {
            self.retry_later(id);
        }
    }

    /// The op's `lookup_timeout`, or a coordination's deadline.
    pub(super) fn dht_deadline(&mut self, id: u64) {
        match self.dht.tasks.get(&id) {
            Some(Task::Put { .. }) => self.fail_op(id, DhtError::Timeout),
            Some(Task::Get { answers, .. }) => {
                if *answers > 0 {
                    self.finish_get(id);
                } else {
                    self.fail_op(id, DhtError::Timeout);
                }
            }
            Some(Task::Coordinate { .. }) => self.finish_coordination(id),
            _ => {}
        }
    }

    /// §10.3: asks the next unused entry of L.
    fn ask_next_holder(&mut self, id: u64) {
        let Some(Task::Get {
            key,
            list,
            next,
            in_flight,
            ..
        }) = self.dht.tasks.get_mut(&id)
        else {
            return;
        };
        let Some(holder) = list.get(*next).cloned() else {
            return;
        };
        *next += 1;
        *in_flight += 1;
        let key = key.clone();
        if holder.id == self.id {
            let status = self.get_status(&key);
            return self.on_get_answer(id, status);
        }
        self.chord_request(holder, Purpose::Dht(id), |req| {
            Message::DhtGet(DhtGet { req, key })
        });
    }

    fn get_status(&self, key: &[u8]) -> DhtGetStatus {
        if !self.chord.is_member() {
            return DhtGetStatus::NotInRing;
        }
        match self.dht.store.get_key(key) {
            Some(stored) => DhtGetStatus::Found(stored.body.clone()),
            None => DhtGetStatus::NotFound,
        }
    }

    fn on_get_answer(&mut self, id: u64, status: DhtGetStatus) {
        let Some(Task::Get {
            in_flight,
            answers,
            best,
            ..
        }) = self.dht.tasks.get_mut(&id)
        else {
            return;
        };
        *in_flight -= 1;
        match status {
            DhtGetStatus::Found(body) => {
                *answers += 1;
                let greater = best.as_ref().is_none_or(|b| {
                    crate::dht::store::order_key(&body) > crate::dht::store::order_key(b)
                });
                if greater {
                    *best = Some(body);
                }
            }
            DhtGetStatus::NotFound => *answers += 1,
            DhtGetStatus::NotInRing => return self.ask_next_then_finish(id),
        }
        self.maybe_finish_get(id);
    }

    fn ask_next_then_finish(&mut self, id: u64) {
        self.ask_next_holder(id);
        self.maybe_finish_get(id);
    }

    /// Ends a get once `r_d` holders answered, or when L ran out.
    fn maybe_finish_get(&mut self, id: u64) {
        let Some(Task::Get {
            list,
            next,
            in_flight,
            answers,
            ..
        }) = self.dht.tasks.get(&id)
        else {
            return;
        };
        let done = *answers >= self.config.dht_replicas || (*in_flight == 0 && *next >= list.len());
        if !done {
            return;
        }
        if *answers == 0 {
            self.fail_op(id, DhtError::Unreachable);
        } else {
            self.finish_get(id);
        }
    }

    fn finish_get(&mut self, id: u64) {
        let Some(Task::Get { key, best, .. }) = self.dht.tasks.get(&id) else {
            return;
        };
        let (value, version) = match best {
            Some(DhtBody {
                version,
                value: DhtValue::Value(value),
                ..
            }) => (Some(value.clone()), *version),
            Some(body) => (None, body.version),
            None => (None, 0),
        };
        let key = key.clone();
        self.finish_op(
            id,
            Event::DhtGetResult {
                id: OpId(id),
                key,
                value,
                version,
            },
        );
    }

    // ----- replies and failures -----

    /// A dht request ended.
    pub(super) fn on_dht_outcome(&mut self, id: u64, _req: u64, _peer: Pointer, outcome: Outcome) {
        let reply = match outcome {
            Outcome::Reply(message) => Some(message),
            Outcome::Dead | Outcome::Refused => None,
        };
        match (self.dht.tasks.get_mut(&id), reply) {
            (Some(Task::Put { .. }), Some(Message::DhtPutReply(r))) => match r.status {
                DhtPutStatus::Ok => self.finish_op(
                    id,
                    Event::DhtPutAcked {
                        id: OpId(id),
                        version: r.version,
                    },
                ),
                DhtPutStatus::NotOwner | DhtPutStatus::NotInRing => self.retry_later(id),
                status => self.fail_op(id, status_error(status, r.version, r.holders)),
            },
            (Some(Task::Put { .. }), _) => self.retry_later(id),
            (Some(Task::Get { .. }), Some(Message::DhtGetReply(r))) => {
                self.on_get_answer(id, r.status)
            }
            (Some(Task::Get { in_flight, .. }), _) => {
                *in_flight -= 1;
                self.ask_next_then_finish(id);
            }
            (Some(Task::Coordinate { .. }), reply) => {
                let ok = matches!(
                    reply,
                    Some(Message::DhtReplicateAck(DhtReplicateAck {
                        status: DhtReplicateStatus::Ok,
                        ..
                    }))
                );
                self.on_replica_answer(id, ok);
            }
            (Some(Task::Sync { khs }), Some(Message::DhtSyncReply(r))) => {
                let khs = core::mem::take(khs);
                self.dht.tasks.remove(&id);
                let wanted: Vec<[u8; 32]> = r
                    .indices
                    .iter()
                    .filter_map(|&i| khs.get(usize::try_from(i).ok()?).copied())
                    .collect();
                let entries: Vec<DhtEntry> = wanted
                    .iter()
                    .filter_map(|kh| self.dht.store.get(kh).map(|s| s.to_entry()))
                    .collect();
                self.push_entries(_peer, entries);
            }
            (Some(Task::Sync { .. }), _) => {
                self.dht.tasks.remove(&id);
            }
            (Some(Task::Push { in_flight }), _) => {
                *in_flight -= 1;
                if *in_flight == 0 {
                    self.dht.tasks.remove(&id);
                }
            }
            (None, _) => {}
        }
    }

    // ----- coordinator (§10.2) -----

    fn coordinate(&mut self, client: Client, writer: NodeId, key: Bytes, op: DhtOp) {
        let kh = key_hash(&key);
        let position = position(&kh);
        let refusal = if !self.chord.is_member() {
            Some(DhtPutStatus::NotInRing)
        } else if self
            .own_range()
            .is_some_and(|(p, me)| !in_half_open(p, position, me))
        {
            Some(DhtPutStatus::NotOwner)
        } else {
            None
        };
        if let Some(status) = refusal {
            return self.answer_client(client, status, 0, 0);
        }
        let version = self.dht.store.next_version(&kh);
        let body = DhtBody {
            version,
            writer,
            value: match op {
                DhtOp::Put { value } => DhtValue::Value(value),
                DhtOp::Delete => DhtValue::Tombstone,
            },
        };
        let entry = DhtEntry {
            key: key.clone(),
            body: body.clone(),
        };
        let own = self.own_range();
        if self.dht.store.merge(key, body, self.now, own) == Merge::Full {
            return self.answer_client(client, DhtPutStatus::Full, 0, 0);
        }
        let candidates = self.chord.succs.clone();
        let needed = (self.config.dht_replicas - 1).min(candidates.len());
        let id = self.next_op().0;
        self.dht.tasks.insert(
            id,
            Task::Coordinate {
                client,
                entry,
                candidates,
                next: 0,
                in_flight: 0,
                acks: 0,
                needed,
            },
        );
        // Answered before the client's own request times out.
        self.deadlines.push(
            self.now + Duration::from_micros(self.config.chord_request_timeout.as_micros() / 2),
            Deadline::DhtOp { id },
        );
        for _ in 0..needed {
            self.replicate_next(id);
        }
        self.maybe_finish_coordination(id);
    }

    fn replicate_next(&mut self, id: u64) {
        let Some(Task::Coordinate {
            entry,
            candidates,
            next,
            in_flight,
            ..
        }) = self.dht.tasks.get_mut(&id)
        else {
            return;
        };
        let Some(holder) = candidates.get(*next).cloned() else {
            return;
        };
        *next += 1;
        *in_flight += 1;
        let entries = vec![entry.clone()];
        self.chord_request(holder, Purpose::Dht(id), |req| {
            Message::DhtReplicate(DhtReplicate { req, entries })
        });
    }

    fn on_replica_answer(&mut self, id: u64, ok: bool) {
        let Some(Task::Coordinate {
            in_flight, acks, ..
        }) = self.dht.tasks.get_mut(&id)
        else {
            return;
        };
        *in_flight -= 1;
        if ok {
            *acks += 1;
        } else {
            // Replaced by the next unused successor.
            self.replicate_next(id);
        }
        self.maybe_finish_coordination(id);
    }

    fn maybe_finish_coordination(&mut self, id: u64) {
        let Some(Task::Coordinate {
            candidates,
            next,
            in_flight,
            acks,
            needed,
            ..
        }) = self.dht.tasks.get(&id)
        else {
            return;
        };
        if acks >= needed || (*in_flight == 0 && *next >= candidates.len()) {
            self.finish_coordination(id);
        }
    }

    fn finish_coordination(&mut self, id: u64) {
        let Some(Task::Coordinate {
            client,
            entry,
            acks,
            needed,
            ..
        }) = self.dht.tasks.remove(&id)
        else {
            return;
        };
        let holders = u8::try_from(acks + 1).unwrap_or(u8::MAX);
        let status = if acks >= needed {
            DhtPutStatus::Ok
        } else {
            DhtPutStatus::Incomplete
        };
        self.answer_client(client, status, entry.body.version, holders);
    }

    fn answer_client(&mut self, client: Client, status: DhtPutStatus, version: u64, holders: u8) {
        let version = if status.has_version() { version } else { 0 };
        match client {
            Client::Remote { peer, req } => {
                let reply = DhtPutReply {
                    req,
                    status,
                    version,
                    holders,
                };
                self.chord_reply(peer, &Message::DhtPutReply(reply));
            }
            Client::Local(id) => match status {
                DhtPutStatus::Ok => self.finish_op(
                    id,
                    Event::DhtPutAcked {
                        id: OpId(id),
                        version,
                    },
                ),
                DhtPutStatus::NotOwner | DhtPutStatus::NotInRing => self.retry_later(id),
                status => self.fail_op(id, status_error(status, version, holders)),
            },
        }
    }

    // ----- holder: messages -----

    /// Acts on a dht message from `from`.
    pub(super) fn on_dht_message(&mut self, from: NodeId, message: Message) {
        match message {
            Message::DhtPut(DhtPut { req, op, key }) => {
                self.coordinate(Client::Remote { peer: from, req }, from, key, op);
            }
            Message::DhtGet(DhtGet { req, key }) => {
                let status = self.get_status(&key);
                self.chord_reply(from, &Message::DhtGetReply(DhtGetReply { req, status }));
            }
            Message::DhtReplicate(DhtReplicate { req, entries }) => {
                let status = self.merge_replicas(entries);
                let ack = DhtReplicateAck { req, status };
                self.chord_reply(from, &Message::DhtReplicateAck(ack));
            }
            Message::DhtSync(DhtSync { req, items }) => {
                let indices = if self.chord.is_member() {
                    self.dht.store.missing(&items, self.now)
                } else {
                    Vec::new()
                };
                let reply = DhtSyncReply { req, indices };
                self.chord_reply(from, &Message::DhtSyncReply(reply));
            }
            Message::DhtPutReply(DhtPutReply { req, .. })
            | Message::DhtGetReply(DhtGetReply { req, .. })
            | Message::DhtReplicateAck(DhtReplicateAck { req, .. })
            | Message::DhtSyncReply(DhtSyncReply { req, .. }) => {
                self.on_chord_reply(from, req, message);
            }
            _ => {}
        }
    }

    fn merge_replicas(&mut self, entries: Vec<DhtEntry>) -> DhtReplicateStatus {
        if !self.chord.is_member() {
            return DhtReplicateStatus::NotInRing;
        }
        let own = self.own_range();
        let mut status = DhtReplicateStatus::Ok;
        for DhtEntry { key, body } in entries {
            if self.dht.store.merge(key, body, self.now, own) == Merge::Full {
                status = DhtReplicateStatus::Full;
            }
        }
        status
    }

    /// Sends `entries` to `to` in `DhtReplicate` batches.
    fn push_entries(&mut self, to: Pointer, entries: Vec<DhtEntry>) {
        if entries.is_empty() {
            return;
        }
        let id = self.next_op().0;
        self.dht.tasks.insert(id, Task::Push { in_flight: 0 });
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
        if let Some(Task::Push { in_flight }) = self.dht.tasks.get_mut(&id) {
            *in_flight = batches.len();
        }
        for entries in batches {
            self.chord_request(to.clone(), Purpose::Dht(id), |req| {
                Message::DhtReplicate(DhtReplicate { req, entries })
            });
        }
    }

    // ----- ring changes: hand-off and repair (§10.4) -----

    /// *P* changed from `old`: hand the new predecessor the entries it now
    /// owns.
    pub(super) fn predecessor_changed(&mut self, old: Option<NodeId>) {
        let Some(new) = self.chord.pred.clone() else {
            return;
        };
        let me = self.id.as_u128();
        let n = new.id.as_u128();
        let entries = match old {
            Some(old) if crate::chord::ring::in_open(old.as_u128(), n, me) => {
                let o = old.as_u128();
                self.dht.store.select(|p| in_half_open(o, p, n))
            }
            None => self.dht.store.select(|p| !in_half_open(n, p, me)),
            Some(_) => return,
        };
        if !entries.is_empty() {
            info!(node = %self.id.short(), to = %new.id.short(), entries = entries.len(), "handing entries to the new predecessor");
            self.push_entries(new, entries);
        }
    }

    /// The successor list changed: sync at once with a node that newly
    /// became one of the first `r_d − 1` successors.
    pub(super) fn dht_ring_changed(&mut self) {
        if !self.chord.is_member() || self.dht.store.len() == 0 {
            return;
        }
        let holders: SmallVec<[NodeId; 4]> = self
            .chord
            .succs
            .iter()
            .take(self.config.dht_replicas - 1)
            .map(|p| p.id)
            .collect();
        let new: Vec<Pointer> = self
            .chord
            .succs
            .iter()
            .take(self.config.dht_replicas - 1)
            .filter(|p| !self.dht.synced.contains(&p.id))
            .cloned()
            .collect();
        self.dht.synced = holders;
        for holder in new {
            self.sync_with(holder);
        }
    }

    /// The repair timer: sync with every holder, then collect garbage.
    pub(super) fn dht_repair_tick(&mut self) {
        if self.shut_down {
            return;
        }
        self.deadlines.push(
            self.now + self.config.dht_repair_interval,
            Deadline::DhtRepair,
        );
        if !self.chord.is_member() {
            return;
        }
        let holders: Vec<Pointer> = self
            .chord
            .succs
            .iter()
            .take(self.config.dht_replicas - 1)
            .cloned()
            .collect();
        for holder in holders {
            self.sync_with(holder);
        }
        let own = self.own_range();
        let dropped = self.dht.store.collect_garbage(
            self.now,
            own,
            self.config.dht_repair_interval.saturating_mul(3),
            self.config.dht_tombstone_ttl,
        );
        if dropped > 0 {
            debug!(node = %self.id.short(), dropped, "dropped stale table entries");
        }
    }

    /// Sends `holder` digests of this node's range.
    fn sync_with(&mut self, holder: Pointer) {
        let Some((p, me)) = self.own_range() else {
            return;
        };
        let items = self.dht.store.digest(p, me);
        for chunk in items.chunks(MAX_DHT_DIGEST) {
            let items: Vec<DhtSyncItem> = chunk.to_vec();
            let khs = items.iter().map(|i| i.kh).collect();
            let id = self.next_op().0;
            self.dht.tasks.insert(id, Task::Sync { khs });
            self.chord_request(holder.clone(), Purpose::Dht(id), |req| {
                Message::DhtSync(DhtSync { req, items })
            });
        }
    }

    /// Fails every command (shutdown).
    pub(super) fn fail_all_dht(&mut self) {
        let mut ids: Vec<u64> = self
            .dht
            .tasks
            .iter()
            .filter(|(_, t)| matches!(t, Task::Put { .. } | Task::Get { .. }))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.fail_op(id, DhtError::ShutDown);
        }
        self.dht.tasks.clear();
    }
}
