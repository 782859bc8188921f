//! Iterative lookups (spec/chord.md §7.2), lazy fingers (§7.3) and routing
//! messages to unconnected nodes through the ring (§9).

use tracing::{debug, info};

use super::chord::Outcome;
use super::{Deadline, Node};
use crate::chord::ring::{self, dist};
use crate::chord::{ChordRole, Lookup, LookupError, LookupFor, OpId, Pointer, Purpose};
use crate::messaging::DeliveryError;
use crate::wire::{ChordFindSuccessor, ChordReplyKind, Message};
use crate::{CommandError, Event, NodeId};

/// A lookup's result: the list L, the node m that answered `Done`, and the
/// hops it took.
type Found = (Vec<Pointer>, Pointer, u32);

impl Node {
    /// `Command::Lookup`.
    pub(super) fn lookup_command(&mut self, key: NodeId) -> Result<OpId, CommandError> {
        if self.chord.role == ChordRole::Off {
            return Err(CommandError::ChordOff);
        }
        let op = self.next_op();
        self.start_lookup(key.as_u128(), LookupFor::Command(op), Vec::new())?;
        Ok(op)
    }

    pub(super) fn next_op(&mut self) -> OpId {
        self.chord.next_op += 1;
        OpId(self.chord.next_op)
    }

    /// Starts `find_successor(key)` (§7.2). Answers at once when this node
    /// knows the owner; otherwise asks the closest candidates, starting from
    /// its own list and fingers (a member) or from `start` (not a member).
    pub(super) fn start_lookup(
        &mut self,
        key: u128,
        purpose: LookupFor,
        start: Vec<Pointer>,
    ) -> Result<(), CommandError> {
        if self.chord.lookups.len() >= self.config.chord_max_lookups {
            return Err(CommandError::TooManyLookups(self.config.chord_max_lookups));
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
        if self.chord.is_member() {
            let me = self.id.as_u128();
            match self.answer_find_successor(key, self.id) {
                (ChordReplyKind::Done, list) => {
                    let list = if list.is_empty() {
                        vec![self.self_pointer()]
                    } else {
                        list
                    };
                    self.lookup_finished(lookup, Ok((list, self.self_pointer(), 0)));
                    return Ok(());
                }
                (_, next) => {
                    lookup.candidates = next;
                    lookup.closest = Some(me);
                }
            }
        } else if lookup.candidates.is_empty() {
            return Err(CommandError::NoChordPeer);
        }
        self.chord.next_req += 1;
        let id = self.chord.next_req;
        self.chord.lookups.insert(id, lookup);
        self.deadlines.push(
            self.now + self.config.lookup_timeout,
            Deadline::ChordLookup { id },
        );
        self.lookup_next(id);
        Ok(())
    }

    /// §7.2 step 2: ask the closest untried candidate.
    fn lookup_next(&mut self, id: u64) {
        let Some(lookup) = self.chord.lookups.get_mut(&id) else {
            return;
        };
        if lookup.sent >= self.config.chord_max_hops {
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
        if !self.links.contains_key(&next.id)
            && let Some(lookup) = self.chord.lookups.get_mut(&id)
        {
            lookup.dialled.push(next.id);
        }
        self.chord_request(next, Purpose::Hop(id), |req| {
            Message::ChordFindSuccessor(ChordFindSuccessor { req, key })
        });
    }

    /// Steps 3 and 4: a hop answered or failed.
    pub(super) fn on_hop_outcome(&mut self, id: u64, peer: Pointer, outcome: Outcome, dead: bool) {
        let Some(lookup) = self.chord.lookups.get_mut(&id) else {
            return; // ended meanwhile (timed out)
        };
        let reply = match outcome {
            Outcome::Reply(Message::ChordFindSuccessorReply(reply)) if !dead => reply,
            _ => return self.lookup_next(id),
        };
        lookup.hops += 1;
        match reply.kind {
            ChordReplyKind::Done => {
                let list = if reply.entries.is_empty() {
                    vec![peer.clone()]
                } else {
                    reply.entries
                };
                let hops = lookup.hops;
                if let Some(lookup) = self.chord.lookups.remove(&id) {
                    self.lookup_finished(lookup, Ok((list, peer, hops)));
                }
            }
            ChordReplyKind::Next | ChordReplyKind::NotInRing => {
                // Only nodes strictly closer to the key than the one that
                // answered: every hop makes progress, so no lookup loops.
                let (from, key, me) = (peer.id.as_u128(), lookup.key, self.id);
                lookup.closest = Some(from);
                lookup.candidates.extend(reply.entries);
                lookup
                    .candidates
                    .retain(|c| c.id != me && ring::in_open(from, c.id.as_u128(), key));
                lookup
                    .candidates
                    .sort_by_key(|c| (dist(c.id.as_u128(), key), c.id));
                lookup.candidates.dedup_by_key(|c| c.id);
                self.lookup_next(id);
            }
        }
    }

    /// The lookup deadline passed.
    pub(super) fn lookup_timed_out(&mut self, id: u64) {
        self.lookup_failed(id, LookupError::Timeout);
    }

    fn lookup_failed(&mut self, id: u64, reason: LookupError) {
        if let Some(lookup) = self.chord.lookups.remove(&id) {
            self.lookup_finished(lookup, Err(reason));
        }
    }

    /// Fails every lookup (shutdown).
    pub(super) fn fail_all_lookups(&mut self) {
        let mut ids: Vec<u64> = self.chord.lookups.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.lookup_failed(id, LookupError::ShutDown);
        }
        self.chord.requests.clear();
    }

    /// Delivers a lookup's result to what started it, and closes the
    /// connections it opened that nothing else needs.
    fn lookup_finished(&mut self, lookup: Lookup, result: Result<Found, LookupError>) {
        match &result {
            Ok(_) => self.stats.chord_lookups += 1,
            Err(_) => self.stats.chord_lookups_failed += 1,
        }
        for peer in lookup.dialled {
            let needed = self.chord.is_pointer(peer)
                || self.chord.requests.values().any(|r| r.peer.id == peer)
                || self.cache.get(&peer).is_some_and(|k| k.wanted)
                || self.messaging.waiting.contains_key(&peer);
            if !needed && self.links.len() > self.config.target_peers {
                let _ = self.disconnect(peer);
            }
        }
        let key = NodeId::from_u128(lookup.key);
        match lookup.purpose {
            LookupFor::Command(id) => {
                let event = match result {
                    Ok((list, _, hops)) => Event::LookupDone {
                        id,
                        key,
                        owner: list[0].id,
                        successors: list.iter().map(|p| p.id).collect(),
                        hops,
                    },
                    Err(reason) => Event::LookupFailed { id, key, reason },
                };
                self.push_event(event);
            }
            LookupFor::Join => self.join_found(result),
            LookupFor::Finger(i) => {
                if let Ok((list, _, _)) = result {
                    self.finger_found(i, list.into_iter().next());
                }
            }
            LookupFor::Route(target) => self.route_found(target, result),
            LookupFor::Dht(op) => self.dht_found(op, result),
        }
    }

    /// §5.3: adopt the list of the member the join lookup found.
    fn join_found(&mut self, result: Result<Found, LookupError>) {
        if self.chord.role != ChordRole::Out {
            return;
        }
        let (list, m, hops) = match result {
            Ok(found) => found,
            Err(reason) => {
                info!(node = %self.id.short(), %reason, "ring join failed");
                self.push_event(Event::ChordJoinFailed { reason });
                return;
            }
        };
        let me = self.id;
        let mut succs = self.chord.clip(me, list.into_iter().filter(|p| p.id != me));
        if succs.is_empty() {
            succs.push(m.clone());
        }
        for p in succs.iter().chain([&m]) {
            self.cache.learn(p, self.now);
        }
        let successor = succs[0].id;
        self.chord.set_succs(succs);
        self.chord.pred = Some(m.clone());
        info!(node = %me.short(), successor = %successor.short(), predecessor = %m.id.short(), hops, "joined the ring");
        self.push_event(Event::ChordJoined {
            successor,
            predecessor: m.id,
            hops,
        });
        self.become_member(true);
        self.predecessor_changed(None);
    }

    // ----- fingers (§7.3) -----

    /// The fix-fingers timer: one finger lookup per tick, skipping targets
    /// the successor list covers.
    pub(super) fn fix_fingers_tick(&mut self) {
        if !self.chord.is_member() {
            return;
        }
        self.deadlines.push(
            self.now + self.config.chord_fix_fingers_interval,
            Deadline::ChordFixFingers,
        );
        let busy = self
            .chord
            .lookups
            .values()
            .any(|l| matches!(l.purpose, LookupFor::Finger(_)));
        let Some(last) = self.chord.succs.last().map(|p| p.id.as_u128()) else {
            return;
        };
        if busy {
            return;
        }
        let me = self.id.as_u128();
        for _ in 0..128 {
            let i = self.chord.next_finger;
            self.chord.next_finger = if i == 0 { 127 } else { i - 1 };
            let target = me.wrapping_add(1u128 << i);
            if ring::in_half_open(me, target, last) {
                self.chord.fingers.retain(|(j, _)| *j != i);
                continue;
            }
            let _ = self.start_lookup(target, LookupFor::Finger(i), Vec::new());
            return;
        }
    }

    fn finger_found(&mut self, i: u8, owner: Option<Pointer>) {
        self.chord.fingers.retain(|(j, _)| *j != i);
        let Some(owner) = owner else { return };
        if owner.id == self.id || self.chord.succs.iter().any(|s| s.id == owner.id) {
            return;
        }
        let at = self.chord.fingers.partition_point(|(j, _)| *j < i);
        self.cache.learn(&owner, self.now);
        self.chord.fingers.insert(at, (i, owner));
    }

    // ----- routing (§9) -----

    /// Finds `target` through the ring, for messages waiting for it.
    /// Returns false when the ring cannot help (not a member).
    pub(super) fn route_through_ring(&mut self, target: NodeId) -> bool {
        if !self.chord.is_member() || self.chord.succs.is_empty() {
            return false;
        }
        self.start_lookup(target.as_u128(), LookupFor::Route(target), Vec::new())
            .is_ok()
    }

    fn route_found(&mut self, target: NodeId, result: Result<Found, LookupError>) {
        if !self.messaging.waiting.contains_key(&target) || self.links.contains_key(&target) {
            return;
        }
        match result {
            Ok((list, _, _)) => match list.iter().find(|p| p.id == target) {
                Some(entry) => {
                    let entry = entry.clone();
                    if !self.is_dialling(target) && !self.dial_pointer(&entry) {
                        self.find_peer(target);
                    }
                }
                None => {
                    debug!(peer = %target.short(), "not in the ring: failing its messages");
                    self.fail_waiting(target, DeliveryError::Unreachable);
                }
            },
            Err(_) => self.find_peer(target),
        }
    }
}
