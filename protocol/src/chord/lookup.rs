//! Iterative lookups (spec/chord.md §7.2), lazy fingers (§7.3) and routing
//! to a node that is not connected (§9).

use super::ring::{self, dist};
use super::{
    Chord, ChordError, ChordEvent, ChordRole, Finished, Found, Lookup, LookupError, LookupFor,
    Pointer, RingCall, RingObserver, RouteStart, Timer,
};
use crate::cx::Cx;
use crate::rpc::Outcome;
use crate::wire::{ChordFindSuccessor, ChordReplyKind, Message};
use crate::{NodeId, OpId};

impl Chord {
    /// `ChordCommand::Lookup`.
    pub(crate) fn lookup_command(
        &mut self,
        cx: &mut dyn Cx,
        key: NodeId,
    ) -> Result<OpId, ChordError> {
        if self.role == ChordRole::Off {
            return Err(ChordError::Off);
        }
        let op = cx.next_op();
        if let Some(finished) =
            self.start_lookup(cx, key.as_u128(), LookupFor::Command(op), Vec::new())?
        {
            self.finish_locally(cx, finished);
        }
        Ok(op)
    }

    /// A client's lookup of `key`: `Ok(None)` while it runs (its end comes
    /// back as [`LookupFor::Client`] with `token`), `Ok(Some(_))` if this
    /// node knew at once.
    pub(crate) fn lookup(
        &mut self,
        cx: &mut dyn Cx,
        key: u128,
        token: u64,
    ) -> Result<Option<Result<Found, LookupError>>, ChordError> {
        let started = self.start_lookup(cx, key, LookupFor::Client(token), Vec::new())?;
        Ok(started.map(|f| f.result))
    }

    /// Finds node `target` through the ring, for messages waiting for it
    /// (§9).
    pub(crate) fn route(&mut self, cx: &mut dyn Cx, target: NodeId) -> RouteStart {
        if !self.is_member() || self.succs.is_empty() {
            return RouteStart::Unavailable;
        }
        match self.start_lookup(cx, target.as_u128(), LookupFor::Route(target), Vec::new()) {
            Err(_) => RouteStart::Unavailable,
            Ok(None) => RouteStart::Started,
            Ok(Some(finished)) => RouteStart::Found(finished.result),
        }
    }

    /// Starts `find_successor(key)` (§7.2). Answers at once when this node
    /// knows the owner (the lookup is returned, ended); otherwise asks the
    /// closest candidates, starting from its own list and fingers (a
    /// member) or from `start` (not a member).
    pub(super) fn start_lookup(
        &mut self,
        cx: &mut dyn Cx,
        key: u128,
        purpose: LookupFor,
        start: Vec<Pointer>,
    ) -> Result<Option<Finished>, ChordError> {
        if self.lookups.len() >= self.settings.max_lookups {
            return Err(ChordError::TooManyLookups(self.settings.max_lookups));
        }
        let mut lookup = Lookup {
            key,
            purpose,
            closest: None,
            candidates: start,
            tried: Default::default(),
            sent: 0,
            hops: 0,
            dialled: Default::default(),
        };
        if self.is_member() && !matches!(purpose, LookupFor::Merge(_)) {
            let me = cx.me();
            match self.answer_find_successor(me, key, me) {
                (ChordReplyKind::Done, list) => {
                    let by = self.self_pointer(cx);
                    let list = if list.is_empty() {
                        vec![by.clone()]
                    } else {
                        list
                    };
                    let found = Found { list, by, hops: 0 };
                    return Ok(Some(self.finish(lookup, Ok(found))));
                }
                (_, next) => {
                    lookup.candidates = next;
                    lookup.closest = Some(me.as_u128());
                }
            }
        } else if lookup.candidates.is_empty() {
            return Err(ChordError::NoChordPeer);
        }
        let id = self.rpc.fresh_id();
        self.lookups.insert(id, lookup);
        let at = cx.now() + self.settings.lookup_timeout;
        self.arm(cx, at, Timer::Lookup { id });
        Ok(self.lookup_next(cx, id))
    }

    /// §7.2 step 2: ask the closest untried candidate.
    fn lookup_next(&mut self, cx: &mut dyn Cx, id: u64) -> Option<Finished> {
        let lookup = self.lookups.get_mut(&id)?;
        if lookup.sent >= self.settings.max_hops {
            return self.lookup_failed(id, LookupError::HopLimit);
        }
        let tried = &lookup.tried;
        let Some(i) = lookup
            .candidates
            .iter()
            .position(|c| !tried.contains(&c.id))
        else {
            return self.lookup_failed(id, LookupError::NoCandidate);
        };
        let next = lookup.candidates.remove(i);
        lookup.tried.push(next.id);
        lookup.sent += 1;
        let key = lookup.key;
        if !cx.is_up(next.id) {
            lookup.dialled.push(next.id);
        }
        self.call(cx, next, RingCall::Hop(id), |req| {
            Message::ChordFindSuccessor(ChordFindSuccessor { req, key })
        });
        None
    }

    /// Steps 3 and 4: a hop answered or failed.
    pub(super) fn on_hop_outcome(
        &mut self,
        cx: &mut dyn Cx,
        id: u64,
        peer: Pointer,
        outcome: Outcome,
        dead: bool,
    ) -> Option<Finished> {
        // Ended meanwhile (timed out)?
        let lookup = self.lookups.get_mut(&id)?;
        let reply = match outcome {
            Outcome::Reply(Message::ChordFindSuccessorReply(reply)) if !dead => reply,
            _ => return self.lookup_next(cx, id),
        };
        lookup.hops += 1;
        match reply.kind {
            ChordReplyKind::Done => {
                let list = if reply.entries.is_empty() {
                    vec![peer.clone()]
                } else {
                    // §6.5: an owner that fails the id puzzle is no answer;
                    // the hop counts as failed and the next candidate goes.
                    let list = self.puzzle_prefix(reply.entries);
                    if list.is_empty() {
                        return self.lookup_next(cx, id);
                    }
                    list
                };
                let lookup = self.lookups.get_mut(&id)?;
                let hops = lookup.hops;
                let lookup = self.lookups.remove(&id)?;
                let found = Found {
                    list,
                    by: peer,
                    hops,
                };
                Some(self.finish(lookup, Ok(found)))
            }
            ChordReplyKind::Next | ChordReplyKind::NotInRing => {
                // Only nodes strictly closer to the key than the one that
                // answered: every hop makes progress, so no lookup loops.
                let (from, key, me) = (peer.id.as_u128(), lookup.key, cx.me());
                lookup.closest = Some(from);
                lookup.candidates.extend(reply.entries);
                lookup
                    .candidates
                    .retain(|c| c.id != me && ring::in_open(from, c.id.as_u128(), key));
                if self.settings.id_puzzle_bits > 0 {
                    let bits = self.settings.id_puzzle_bits;
                    let before = lookup.candidates.len();
                    lookup
                        .candidates
                        .retain(|c| super::meets_id_puzzle(c.id, bits));
                    self.stats.puzzle_refused += (before - lookup.candidates.len()) as u64;
                }
                lookup
                    .candidates
                    .sort_by_key(|c| (dist(c.id.as_u128(), key), c.id));
                lookup.candidates.dedup_by_key(|c| c.id);
                self.lookup_next(cx, id)
            }
        }
    }

    /// Ends lookup `id` with `reason`, if it has not ended.
    pub(crate) fn lookup_failed(&mut self, id: u64, reason: LookupError) -> Option<Finished> {
        let lookup = self.lookups.remove(&id)?;
        Some(self.finish(lookup, Err(reason)))
    }

    /// Ids of the lookups in flight, in order (to fail them at shutdown).
    pub(crate) fn lookup_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.lookups.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn finish(&mut self, lookup: Lookup, result: Result<Found, LookupError>) -> Finished {
        match &result {
            Ok(_) => self.stats.lookups += 1,
            Err(_) => self.stats.lookups_failed += 1,
        }
        Finished {
            key: lookup.key,
            purpose: lookup.purpose,
            result,
            dialled: lookup.dialled,
        }
    }

    /// Delivers an ended lookup that chord started for itself (the caller
    /// has closed the connections it opened that nothing needs). A client's
    /// lookup is handed back.
    pub(crate) fn deliver(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        finished: Finished,
    ) -> Option<Finished> {
        match finished.purpose {
            LookupFor::Join => {
                self.join_found(cx, obs, finished.result);
                None
            }
            LookupFor::Command(_) | LookupFor::Finger(_) => {
                self.finish_locally(cx, finished);
                None
            }
            LookupFor::Merge(via) => {
                self.merge_found(cx, obs, via, finished.result);
                None
            }
            LookupFor::Route(_) | LookupFor::Client(_) => Some(finished),
        }
    }

    /// Delivers a command's or a finger's lookup.
    fn finish_locally(&mut self, cx: &mut dyn Cx, finished: Finished) {
        let key = NodeId::from_u128(finished.key);
        match finished.purpose {
            LookupFor::Command(id) => {
                let event = match finished.result {
                    Ok(found) => ChordEvent::LookupDone {
                        id,
                        key,
                        owner: found.list[0].id,
                        successors: found.list.iter().map(|p| p.id).collect(),
                        hops: found.hops,
                    },
                    Err(reason) => ChordEvent::LookupFailed { id, key, reason },
                };
                cx.emit(event);
            }
            LookupFor::Finger(i) => {
                if let Ok(found) = finished.result {
                    self.finger_found(cx, i, found.list.into_iter().next());
                }
            }
            LookupFor::Join | LookupFor::Route(_) | LookupFor::Client(_) | LookupFor::Merge(_) => {
                debug_assert!(false, "never answered locally");
            }
        }
    }

    // ----- fingers (§7.3) -----

    /// The fix-fingers timer: one finger lookup per tick, skipping targets
    /// the successor list covers.
    pub(super) fn fix_fingers_tick(&mut self, cx: &mut dyn Cx) {
        if !self.is_member() {
            return;
        }
        let at = cx.now() + self.settings.fix_fingers_interval;
        self.arm(cx, at, Timer::FixFingers);
        let busy = self
            .lookups
            .values()
            .any(|l| matches!(l.purpose, LookupFor::Finger(_)));
        let Some(last) = self.succs.last().map(|p| p.id.as_u128()) else {
            return;
        };
        if busy {
            return;
        }
        let me = cx.me().as_u128();
        for _ in 0..128 {
            let i = self.next_finger;
            self.next_finger = if i == 0 { 127 } else { i - 1 };
            let target = me.wrapping_add(1u128 << i);
            if ring::in_half_open(me, target, last) {
                self.fingers.retain(|(j, _)| *j != i);
                continue;
            }
            if let Ok(Some(finished)) =
                self.start_lookup(cx, target, LookupFor::Finger(i), Vec::new())
            {
                self.finish_locally(cx, finished);
            }
            return;
        }
    }

    fn finger_found(&mut self, cx: &mut dyn Cx, i: u8, owner: Option<Pointer>) {
        self.fingers.retain(|(j, _)| *j != i);
        let Some(owner) = owner else { return };
        if owner.id == cx.me() || self.succs.iter().any(|s| s.id == owner.id) {
            return;
        }
        let at = self.fingers.partition_point(|(j, _)| *j < i);
        cx.learn(&owner);
        self.fingers.insert(at, (i, owner));
    }
}
