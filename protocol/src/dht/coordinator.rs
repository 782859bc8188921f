//! The coordinator (spec/chord.md §10.2): the owner of a key's position
//! checks a signed write (signature, owner, version), stores it, and
//! replicates it to the next `dht.replicas − 1` successors before it
//! answers the client.

use tracing::debug;

use super::store::{Merge, Refusal, key_hash, position};
use super::{Client, Dht, DhtFailure, Task, Timer, verify, within_step};
use crate::chord::ring::in_half_open;
use crate::chord::{Chord, Finger};
use crate::cx::Cx;
use crate::time::Duration;
#[cfg(doc)]
use crate::wire::MAX_OPEN_VERSION_STEP;
use crate::wire::{Capabilities, DhtEntry, DhtPutReply, DhtPutStatus, DhtReplicate, Message};

/// The error a client reports for a coordinator's `status`.
pub(super) fn status_error(status: DhtPutStatus, version: u64, holders: u8) -> DhtFailure {
    match status {
        DhtPutStatus::Full => DhtFailure::Full,
        DhtPutStatus::OverQuota => DhtFailure::OverQuota,
        DhtPutStatus::TooLarge => DhtFailure::TooLarge,
        DhtPutStatus::NotInRing => DhtFailure::NotInRing,
        DhtPutStatus::NotOwner => DhtFailure::NotOwner,
        DhtPutStatus::Refused => DhtFailure::Refused,
        DhtPutStatus::Stale => DhtFailure::Stale { held: version },
        DhtPutStatus::Ok | DhtPutStatus::Incomplete => DhtFailure::Incomplete { version, holders },
    }
}

impl Dht {
    /// Writes the signed `entry` for `client`, as its coordinator (§10.2):
    /// it must verify, and its version must be above the one held (and,
    /// for an open key, at most [`MAX_OPEN_VERSION_STEP`] above).
    pub(super) fn coordinate(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        client: Client,
        entry: DhtEntry,
    ) {
        let kh = key_hash(&entry.key);
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
        if let Err(why) = verify(cx, &entry.key, &entry.body) {
            self.stats.entries_unverified += 1;
            debug!(node = %cx.me().short(), key = %entry.key, writer = %entry.body.writer.short(), %why, "refused a table write");
            return self.answer_client(cx, client, DhtPutStatus::Refused, 0, 0);
        }
        let held = self.held_version(&kh);
        let version = entry.body.version;
        if version <= held || !within_step(&entry.key, version, held) {
            if version > held {
                self.stats.versions_jumped += 1;
            }
            return self.answer_client(cx, client, DhtPutStatus::Stale, held, 0);
        }
        // The client is the sender (§10.5); this node's own command has none.
        let sender = match client {
            Client::Remote { peer, .. } => Some(peer),
            Client::Local(_) => None,
        };
        if let Merge::Refused(refusal) =
            self.store
                .merge(entry.key.clone(), entry.body.clone(), cx.now(), own, sender)
        {
            let status = match refusal {
                Refusal::Writer | Refusal::Sender => DhtPutStatus::OverQuota,
                Refusal::Full => DhtPutStatus::Full,
            };
            debug!(node = %cx.me().short(), writer = %entry.body.writer.short(), ?refusal, "write refused");
            return self.answer_client(cx, client, status, 0, 0);
        }
        let candidates: Vec<_> = ring.successors().iter().map(Finger::pointer).collect();
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
                held: None,
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

    /// A replica's answer: `ok` if it merged the entry, with the greater
    /// version it holds if any (`held`).
    pub(super) fn on_replica_answer(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        id: u64,
        ok: bool,
        held: Option<u64>,
    ) {
        let Some(Task::Coordinate {
            in_flight,
            acks,
            held: greatest,
            ..
        }) = self.tasks.get_mut(&id)
        else {
            return;
        };
        *in_flight -= 1;
        if held.is_some() {
            *greatest = (*greatest).max(held);
        }
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
            held,
            ..
        }) = self.tasks.remove(&id)
        else {
            return;
        };
        let holders = u8::try_from(acks + 1).unwrap_or(u8::MAX);
        // A replica holds a greater version (a lost hand-off, or another
        // writer's jump): the writer signs again above it, so its write
        // wins on every holder rather than only here.
        if let Some(held) = held.filter(|&h| h >= entry.body.version) {
            return self.answer_client(cx, client, DhtPutStatus::Stale, held, holders);
        }
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
        let version = if status.has_version() || status == DhtPutStatus::Stale {
            version
        } else {
            0
        };
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
                DhtPutStatus::Stale => self.on_stale(cx, id, version),
                status => self.fail_op(cx, id, status_error(status, version, holders)),
            },
        }
    }
}
