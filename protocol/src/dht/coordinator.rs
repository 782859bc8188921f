//! The coordinator (spec/chord.md §10.2): the owner of a key versions a
//! write, stores it, and replicates it to the next `dht.replicas − 1`
//! successors before it answers the client.

use bytes::Bytes;
use tracing::debug;

use super::store::{Merge, Refusal, key_hash, position};
use super::{Client, Dht, DhtFailure, Task, Timer};
use crate::NodeId;
use crate::chord::Chord;
use crate::chord::ring::in_half_open;
use crate::cx::Cx;
use crate::time::Duration;
use crate::wire::{
    Capabilities, DhtBody, DhtEntry, DhtOp, DhtPutReply, DhtPutStatus, DhtReplicate, DhtValue,
    Message,
};

/// The error a client reports for a coordinator's `status`.
pub(super) fn status_error(status: DhtPutStatus, version: u64, holders: u8) -> DhtFailure {
    match status {
        DhtPutStatus::Full => DhtFailure::Full,
        DhtPutStatus::OverQuota => DhtFailure::OverQuota,
        DhtPutStatus::TooLarge => DhtFailure::TooLarge,
        DhtPutStatus::NotInRing => DhtFailure::NotInRing,
        DhtPutStatus::NotOwner => DhtFailure::NotOwner,
        DhtPutStatus::Ok | DhtPutStatus::Incomplete => DhtFailure::Incomplete { version, holders },
    }
}

impl Dht {
    /// Writes `op` on `key` for `client`, as its coordinator.
    pub(super) fn coordinate(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        client: Client,
        writer: NodeId,
        key: Bytes,
        op: DhtOp,
    ) {
        let kh = key_hash(&key);
        let position = position(&kh);
        let own = Self::own_range(cx, ring);
        let refusal = if !ring.is_member() {
            Some(DhtPutStatus::NotInRing)
        } else if own.is_some_and(|(p, me)| !in_half_open(p, position, me)) {
            Some(DhtPutStatus::NotOwner)
        } else {
            None
        };
        if let Some(status) = refusal {
            return self.answer_client(cx, client, status, 0, 0);
        }
        let version = self.store.next_version(&kh);
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
        // The client is the sender (§10.5); this node's own command has none.
        let sender = match client {
            Client::Remote { peer, .. } => Some(peer),
            Client::Local(_) => None,
        };
        if let Merge::Refused(refusal) = self.store.merge(key, body, cx.now(), own, sender) {
            let status = match refusal {
                Refusal::Writer | Refusal::Sender => DhtPutStatus::OverQuota,
                Refusal::Full => DhtPutStatus::Full,
            };
            debug!(node = %cx.me().short(), writer = %writer.short(), ?refusal, "write refused");
            return self.answer_client(cx, client, status, 0, 0);
        }
        let candidates = ring.successors().to_vec();
        let needed = (self.settings.replicas - 1).min(candidates.len());
        let id = cx.next_op().0;
        self.tasks.insert(
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
        let at = cx.now() + Duration::from_micros(self.settings.request_timeout.as_micros() / 2);
        self.arm(cx, at, Timer::Op { id });
        for _ in 0..needed {
            self.replicate_next(cx, ring, id);
        }
        self.maybe_finish_coordination(cx, id);
    }

    fn replicate_next(&mut self, cx: &mut dyn Cx, ring: &mut Chord, id: u64) {
        let Some(Task::Coordinate {
            entry,
            candidates,
            next,
            in_flight,
            ..
        }) = self.tasks.get_mut(&id)
        else {
            return;
        };
        let Some(holder) = candidates.get(*next).cloned() else {
            return;
        };
        *next += 1;
        *in_flight += 1;
        let entries = vec![entry.clone()];
        ring.client_call(cx, holder, id, Capabilities::DHT, |req| {
            Message::DhtReplicate(DhtReplicate { req, entries })
        });
    }

    pub(super) fn on_replica_answer(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        id: u64,
        ok: bool,
    ) {
        let Some(Task::Coordinate {
            in_flight, acks, ..
        }) = self.tasks.get_mut(&id)
        else {
            return;
        };
        *in_flight -= 1;
        if ok {
            *acks += 1;
        } else {
            // Replaced by the next unused successor.
            self.replicate_next(cx, ring, id);
        }
        self.maybe_finish_coordination(cx, id);
    }

    fn maybe_finish_coordination(&mut self, cx: &mut dyn Cx, id: u64) {
        let Some(Task::Coordinate {
            candidates,
            next,
            in_flight,
            acks,
            needed,
            ..
        }) = self.tasks.get(&id)
        else {
            return;
        };
        if acks >= needed || (*in_flight == 0 && *next >= candidates.len()) {
            self.finish_coordination(cx, id);
        }
    }

    pub(super) fn finish_coordination(&mut self, cx: &mut dyn Cx, id: u64) {
        let Some(Task::Coordinate {
            client,
            entry,
            acks,
            needed,
            ..
        }) = self.tasks.remove(&id)
        else {
            return;
        };
        let holders = u8::try_from(acks + 1).unwrap_or(u8::MAX);
        let status = if acks >= needed {
            DhtPutStatus::Ok
        } else {
            DhtPutStatus::Incomplete
        };
        self.answer_client(cx, client, status, entry.body.version, holders);
    }

    fn answer_client(
        &mut self,
        cx: &mut dyn Cx,
        client: Client,
        status: DhtPutStatus,
        version: u64,
        holders: u8,
    ) {
        let version = if status.has_version() { version } else { 0 };
        match client {
            Client::Remote { peer, req } => {
                let reply = DhtPutReply {
                    req,
                    status,
                    version,
                    holders,
                };
                let _ = cx.send(peer, &Message::DhtPutReply(reply));
            }
            Client::Local(id) => match status {
                DhtPutStatus::Ok => self.write_done(cx, id, version),
                DhtPutStatus::NotOwner | DhtPutStatus::NotInRing => self.retry_later(cx, id),
                status => self.fail_op(cx, id, status_error(status, version, holders)),
            },
        }
    }
}
