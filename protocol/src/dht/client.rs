//! The client side of the table (spec/chord.md §10.2, §10.3): `Put`,
//! `Get` and `Delete`.

use bytes::Bytes;
use tracing::debug;

use super::coordinator::status_error;
use super::store::{key_hash, order_key, position};
use super::{Client, Dht, DhtError, DhtEvent, DhtFailure, STALE_TRIES, Task, Timer, verify};
use crate::chord::{Chord, ChordRole, Found, LookupError, Pointer};
use crate::cx::Cx;
use crate::wire::{
    Capabilities, DhtBody, DhtEntry, DhtGet, DhtGetStatus, DhtKey, DhtPut, DhtPutStatus,
    DhtReplicateAck, DhtReplicateStatus, DhtValue, MAX_DHT_KEY, MAX_DHT_VALUE, Message,
};
use crate::{Accepted, OpId};

impl Dht {
    fn check_key(&self, ring: &Chord, key: &DhtKey) -> Result<(), DhtError> {
        if !self.enabled || ring.role() == ChordRole::Off {
            return Err(DhtError::Off);
        }
        let name = key.name();
        if name.is_empty() || name.len() > MAX_DHT_KEY {
            return Err(DhtError::BadKey(name.len()));
        }
        Ok(())
    }

    /// `DhtCommand::Put` (`value` some) and `DhtCommand::Delete` (none).
    pub(crate) fn put(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        key: DhtKey,
        value: Option<Bytes>,
    ) -> Result<Accepted, DhtError> {
        self.check_key(ring, &key)?;
        if let Some(owner) = key.owner()
            && owner != cx.me()
        {
            return Err(DhtError::NotYourKey { owner });
        }
        if let Some(value) = &value
            && value.len() > MAX_DHT_VALUE
        {
            return Err(DhtError::ValueTooLarge {
                len: value.len(),
                max: MAX_DHT_VALUE,
            });
        }
        let kh = key_hash(&key);
        let version = self.held_version(&kh).saturating_add(1);
        let task = Task::Put {
            key,
            value,
            version,
            stale: 0,
        };
        self.start_op(cx, ring, position(&kh), task)
    }

    /// `DhtCommand::Get`.
    pub(crate) fn get(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        key: DhtKey,
    ) -> Result<Accepted, DhtError> {
        self.check_key(ring, &key)?;
        let position = position(&key_hash(&key));
        let task = Task::Get {
            key,
            list: Vec::new(),
            next: 0,
            in_flight: 0,
            answers: 0,
            best: None,
        };
        self.start_op(cx, ring, position, task)
    }

    fn start_op(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        position: u128,
        task: Task,
    ) -> Result<Accepted, DhtError> {
        let op = cx.next_op();
        self.tasks.insert(op.0, task);
        match ring.lookup(cx, position, op.0) {
            Err(e) => {
                self.tasks.remove(&op.0);
                return Err(DhtError::Ring(e));
            }
            Ok(Some(result)) => self.found(cx, ring, op.0, result),
            Ok(None) => {}
        }
        let at = cx.now() + self.settings.lookup_timeout;
        self.arm(cx, at, Timer::Op { id: op.0 });
        Ok(Accepted::Op(op))
    }

    /// Ends command `id` with `event`.
    pub(super) fn finish_op(&mut self, cx: &mut dyn Cx, id: u64, event: DhtEvent) {
        if self.tasks.remove(&id).is_some() {
            cx.emit(event);
        }
    }

    /// Ends write command `id`, acknowledged at `version`: a put's or a
    /// delete's end, named after the command.
    pub(super) fn write_done(&mut self, cx: &mut dyn Cx, id: u64, version: u64) {
        let event = match self.tasks.get(&id) {
            Some(Task::Put { value: None, .. }) => DhtEvent::DeleteDone {
                id: OpId(id),
                version,
            },
            _ => DhtEvent::PutDone {
                id: OpId(id),
                version,
            },
        };
        self.finish_op(cx, id, event);
    }

    pub(super) fn fail_op(&mut self, cx: &mut dyn Cx, id: u64, reason: DhtFailure) {
        debug!(op = id, %reason, "table operation failed");
        self.finish_op(
            cx,
            id,
            DhtEvent::Failed {
                id: OpId(id),
                reason,
            },
        );
    }

    /// Operation `id`'s lookup ended.
    pub(crate) fn found(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        id: u64,
        result: Result<Found, LookupError>,
    ) {
        if matches!(self.tasks.get(&id), Some(Task::Strays { .. })) {
            // An internal task: no command to end, nothing to retry (the
            // strays stay until garbage drops them).
            match result {
                Ok(found) => self.strays_found(cx, ring, id, found.list.into_iter().next()),
                Err(_) => {
                    self.tasks.remove(&id);
                }
            }
            return;
        }
        let list = match result {
            Ok(found) => found.list,
            Err(LookupError::ShutDown) => return self.fail_op(cx, id, DhtFailure::ShutDown),
            Err(_) => return self.retry_later(cx, id),
        };
        match self.tasks.get_mut(&id) {
            Some(Task::Put { .. }) => self.send_put(cx, ring, id, list),
            Some(Task::Get { list: l, next, .. }) => {
                *l = list;
                *next = 0;
                for _ in 0..self.settings.replicas {
                    self.ask_next_holder(cx, ring, id);
                }
                self.maybe_finish_get(cx, id);
            }
            _ => {}
        }
    }

    /// §10.2 step 1: signs the entry and sends it to the coordinator, the
    /// first entry of L (this node itself, when it owns the key).
    fn send_put(&mut self, cx: &mut dyn Cx, ring: &mut Chord, id: u64, list: Vec<Pointer>) {
        let Some(Task::Put {
            key,
            value,
            version,
            ..
        }) = self.tasks.get(&id)
        else {
            return;
        };
        let Some(coordinator) = list.into_iter().next() else {
            return self.retry_later(cx, id);
        };
        let key = key.clone();
        let value = value.clone().map_or(DhtValue::Tombstone, DhtValue::Value);
        // Above what this node holds, whatever an earlier try guessed.
        let held = self.held_version(&key_hash(&key));
        let version = (*version).max(held.saturating_add(1));
        let signature = cx.sign(&crate::wire::dht_signed_bytes(&key, version, &value));
        let body = DhtBody::with_signature(cx.public_key(), version, value, signature);
        let entry = DhtEntry { key, body };
        if coordinator.id == cx.me() {
            return self.coordinate(cx, ring, Client::Local(id), entry);
        }
        ring.client_call(cx, coordinator, id, Capabilities::DHT, |req| {
            Message::DhtPut(DhtPut {
                req,
                entry: Box::new(entry),
            })
        });
    }

    /// The coordinator holds version `held` (or a replica does): sign again
    /// at `held + 1` and look up again at once, up to [`STALE_TRIES`]
    /// times.
    pub(super) fn on_stale(&mut self, cx: &mut dyn Cx, id: u64, held: u64) {
        let Some(Task::Put { version, stale, .. }) = self.tasks.get_mut(&id) else {
            return;
        };
        *stale += 1;
        match held.checked_add(1) {
            Some(next) if *stale <= STALE_TRIES => {
                debug!(
                    op = id,
                    held, "the key's version moved; signing again above it"
                );
                *version = next;
                let at = cx.now();
                self.arm(cx, at, Timer::Retry { id });
            }
            _ => self.fail_op(cx, id, DhtFailure::Stale { held }),
        }
    }

    /// A put whose coordinator was not the owner, or died: look up again
    /// after a stabilization interval (§10.2 step 4).
    pub(super) fn retry_later(&mut self, cx: &mut dyn Cx, id: u64) {
        if self.tasks.contains_key(&id) {
            let at = cx.now() + self.settings.stabilize_interval;
            self.arm(cx, at, Timer::Retry { id });
        }
    }

    pub(super) fn retry(&mut self, cx: &mut dyn Cx, ring: &mut Chord, id: u64) {
        let position = match self.tasks.get(&id) {
            Some(Task::Put { key, .. } | Task::Get { key, .. }) => position(&key_hash(key)),
            _ => return,
        };
        match ring.lookup(cx, position, id) {
            Err(_) => self.retry_later(cx, id),
            Ok(Some(result)) => self.found(cx, ring, id, result),
            Ok(None) => {}
        }
    }

    /// The op's `lookup_timeout`, or a coordination's deadline.
    pub(super) fn op_deadline(&mut self, cx: &mut dyn Cx, id: u64) {
        match self.tasks.get(&id) {
            Some(Task::Put { .. }) => self.fail_op(cx, id, DhtFailure::Timeout),
            Some(Task::Get { answers, .. }) => {
                if *answers > 0 {
                    self.finish_get(cx, id);
                } else {
                    self.fail_op(cx, id, DhtFailure::Timeout);
                }
            }
            Some(Task::Coordinate { .. }) => self.finish_coordination(cx, id),
            // Strays not handed back within a repair interval stay where
            // they are (garbage drops them later).
            Some(Task::Strays { .. }) => {
                self.tasks.remove(&id);
            }
            _ => {}
        }
    }

    /// §10.3: asks the next unused entry of L.
    fn ask_next_holder(&mut self, cx: &mut dyn Cx, ring: &mut Chord, id: u64) {
        let Some(Task::Get {
            key,
            list,
            next,
            in_flight,
            ..
        }) = self.tasks.get_mut(&id)
        else {
            return;
        };
        let Some(holder) = list.get(*next).cloned() else {
            return;
        };
        *next += 1;
        *in_flight += 1;
        let key = key.clone();
        if holder.id == cx.me() {
            let status = self.get_status(ring, &key);
            return self.on_get_answer(cx, ring, id, status);
        }
        ring.client_call(cx, holder, id, Capabilities::DHT, |req| {
            Message::DhtGet(DhtGet { req, key })
        });
    }

    pub(super) fn get_status(&self, ring: &Chord, key: &DhtKey) -> DhtGetStatus {
        if !ring.is_member() {
            return DhtGetStatus::NotInRing;
        }
        match self.store.get_key(key) {
            Some(stored) => DhtGetStatus::Found(stored.body.clone()),
            None => DhtGetStatus::NotFound,
        }
    }

    fn on_get_answer(&mut self, cx: &mut dyn Cx, ring: &mut Chord, id: u64, status: DhtGetStatus) {
        let Some(Task::Get { key, .. }) = self.tasks.get(&id) else {
            return;
        };
        // §10.3: the reader checks what a holder returns.
        let rejected = match &status {
            DhtGetStatus::Found(body) => verify(cx, key, body).err(),
            _ => None,
        };
        if let Some(why) = rejected {
            self.stats.replies_rejected += 1;
            debug!(node = %cx.me().short(), op = id, key = %key, %why, "rejected a holder's answer; asking the next");
        }
        let Some(Task::Get {
            in_flight,
            answers,
            best,
            ..
        }) = self.tasks.get_mut(&id)
        else {
            return;
        };
        *in_flight -= 1;
        if rejected.is_some() {
            return self.ask_next_then_finish(cx, ring, id);
        }
        match status {
            DhtGetStatus::Found(body) => {
                *answers += 1;
                let greater = best
                    .as_ref()
                    .is_none_or(|b| order_key(&body) > order_key(b));
                if greater {
                    *best = Some(body);
                }
            }
            DhtGetStatus::NotFound => *answers += 1,
            DhtGetStatus::NotInRing => return self.ask_next_then_finish(cx, ring, id),
        }
        self.widen_get(cx, ring, id);
        self.maybe_finish_get(cx, id);
    }

    /// §10.3: `r_d` holders answered and none holds the key: the rest of
    /// L is asked too. Copies of a range whose owner failed before its
    /// hand-off can sit beyond the first `r_d` (§10.4, "Strays") until
    /// they are back with the owner; a key is called absent only when
    /// every entry of L that answers says so.
    fn widen_get(&mut self, cx: &mut dyn Cx, ring: &mut Chord, id: u64) {
        let Some(Task::Get {
            list,
            next,
            answers,
            best: None,
            ..
        }) = self.tasks.get(&id)
        else {
            return;
        };
        if *answers < self.settings.replicas || *next >= list.len() {
            return;
        }
        let rest = list.len() - *next;
        self.stats.gets_widened += 1;
        for _ in 0..rest {
            self.ask_next_holder(cx, ring, id);
        }
    }

    fn ask_next_then_finish(&mut self, cx: &mut dyn Cx, ring: &mut Chord, id: u64) {
        self.ask_next_holder(cx, ring, id);
        self.maybe_finish_get(cx, id);
    }

    /// Ends a get once `r_d` holders answered and one of them holds the
    /// key, or when every entry of L asked has answered or failed (after
    /// [`Dht::widen_get`], all of L).
    fn maybe_finish_get(&mut self, cx: &mut dyn Cx, id: u64) {
        let Some(Task::Get {
            list,
            next,
            in_flight,
            answers,
            best,
            ..
        }) = self.tasks.get(&id)
        else {
            return;
        };
        let done = (*answers >= self.settings.replicas && best.is_some())
            || (*in_flight == 0 && *next >= list.len());
        if !done {
            return;
        }
        if *answers == 0 {
            self.fail_op(cx, id, DhtFailure::Unreachable);
        } else {
            self.finish_get(cx, id);
        }
    }

    fn finish_get(&mut self, cx: &mut dyn Cx, id: u64) {
        let Some(Task::Get { key, best, .. }) = self.tasks.get(&id) else {
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
        let writer = best.as_ref().map(|b| b.writer);
        let key = key.clone();
        self.finish_op(
            cx,
            id,
            DhtEvent::GetDone {
                id: OpId(id),
                key,
                value,
                version,
                writer,
            },
        );
    }

    // ----- replies and failures -----

    /// A request of task `id` to `peer` ended, with the peer's `reply` (or
    /// none: dead, refused).
    pub(super) fn on_answer(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        id: u64,
        peer: Pointer,
        reply: Option<Message>,
    ) {
        match (self.tasks.get_mut(&id), reply) {
            (Some(Task::Put { .. }), Some(Message::DhtPutReply(r))) => match r.status {
                DhtPutStatus::Ok => self.write_done(cx, id, r.version),
                DhtPutStatus::NotOwner | DhtPutStatus::NotInRing => self.retry_later(cx, id),
                DhtPutStatus::Stale => self.on_stale(cx, id, r.version),
                status => self.fail_op(cx, id, status_error(status, r.version, r.holders)),
            },
            (Some(Task::Put { .. }), _) => self.retry_later(cx, id),
            (Some(Task::Get { .. }), Some(Message::DhtGetReply(r))) => {
                self.on_get_answer(cx, ring, id, r.status)
            }
            (Some(Task::Get { in_flight, .. }), _) => {
                *in_flight -= 1;
                self.ask_next_then_finish(cx, ring, id);
            }
            (Some(Task::Coordinate { .. }), reply) => {
                let (ok, held) = match reply {
                    Some(Message::DhtReplicateAck(DhtReplicateAck { status, .. })) => {
                        match status {
                            DhtReplicateStatus::Ok => (true, None),
                            DhtReplicateStatus::Stale { held } => (true, Some(held)),
                            _ => (false, None),
                        }
                    }
                    _ => (false, None),
                };
                self.on_replica_answer(cx, ring, id, ok, held);
            }
            (Some(Task::Sync { khs }), Some(Message::DhtSyncReply(r))) => {
                let khs = core::mem::take(khs);
                self.tasks.remove(&id);
                self.send_missing(cx, ring, peer, &khs, &r.indices);
            }
            (Some(Task::Sync { .. }), _) => {
                self.tasks.remove(&id);
            }
            (Some(Task::Push { in_flight }), _) => {
                *in_flight -= 1;
                if *in_flight == 0 {
                    self.tasks.remove(&id);
                }
            }
            // A strays task sends nothing itself (its batches are pushes).
            (Some(Task::Strays { .. }) | None, _) => {}
        }
    }

    /// Fails every command (shutdown).
    pub(crate) fn shutdown(&mut self, cx: &mut dyn Cx) {
        let mut ids: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| matches!(t, Task::Put { .. } | Task::Get { .. }))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.fail_op(cx, id, DhtFailure::ShutDown);
        }
        self.tasks.clear();
    }
}
