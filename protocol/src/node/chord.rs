//! What the node does as a ring member (spec/chord.md §4–§6): starting or
//! joining a ring, chord requests and their failures, stabilization,
//! rectify, and answering the chord messages. Lookups and fingers are in
//! `lookup.rs`.

use tracing::{debug, info, warn};

use super::{Deadline, Node};
use crate::chord::ring::{self, Rectify};
use crate::chord::{ChordRole, LookupFor, Pointer, Purpose, Request, pointer, positions};
use crate::time::Duration;
use crate::wire::{
    Capabilities, ChordFindSuccessor, ChordFindSuccessorReply, ChordGetState, ChordNotify,
    ChordReplyKind, ChordState, GoodbyeReason, Message, PeerEntry,
};
use crate::{Accepted, CloseReason, CommandError, ConnId, Event, NodeId};

/// How a chord request ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The peer answered.
    Reply(Message),
    /// The peer is dead (spec/chord.md §4): timeout, failed dials, not a
    /// member, declared dead.
    Dead,
    /// A local cap refused the dial; nothing is known about the peer.
    Refused,
}

/// Why a request was failed before its timeout (handled at its next
/// deadline, so that callers never see a continuation run inside the call
/// that sent the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EarlyFailure {
    Dead,
    Refused,
}

impl Node {
    // ----- commands -----

    fn chord_enabled(&self) -> Result<(), CommandError> {
        match self.chord.role {
            ChordRole::Off => Err(CommandError::ChordOff),
            ChordRole::Member => Err(CommandError::AlreadyInRing),
            ChordRole::Out => Ok(()),
        }
    }

    /// §5.1: Zave's initialization from a shared founders list.
    pub(super) fn chord_found(
        &mut self,
        mut founders: Vec<PeerEntry>,
    ) -> Result<Accepted, CommandError> {
        self.chord_enabled()?;
        if founders.len() <= self.chord.r {
            return Err(CommandError::BadFounders(
                "fewer than chord_successors + 1 founders",
            ));
        }
        if founders.iter().any(|f| f.addrs.is_empty()) {
            return Err(CommandError::BadFounders("a founder has no address"));
        }
        founders.sort_unstable_by_key(|f| f.id);
        if founders.windows(2).any(|w| w[0].id == w[1].id) {
            return Err(CommandError::BadFounders("a founder appears twice"));
        }
        let Ok(i) = founders.binary_search_by_key(&self.id, |f| f.id) else {
            return Err(CommandError::BadFounders("this node is not a founder"));
        };
        let n = founders.len();
        for f in &founders {
            self.cache.learn(f, self.now);
        }
        let succs = (1..=self.chord.r)
            .map(|k| founders[(i + k) % n].clone())
            .collect();
        self.chord.set_succs(succs);
        self.chord.pred = Some(founders[(i + n - 1) % n].clone());
        self.become_member(false);
        Ok(Accepted::Done)
    }

    /// §5.2: a ring of one.
    pub(super) fn chord_create(&mut self) -> Result<Accepted, CommandError> {
        self.chord_enabled()?;
        self.become_member(false);
        Ok(Accepted::Done)
    }

    /// §5.3: look up our own id, then adopt the list of the member found.
    pub(super) fn chord_join(&mut self, via: Option<NodeId>) -> Result<Accepted, CommandError> {
        self.chord_enabled()?;
        if self
            .chord
            .lookups
            .values()
            .any(|l| l.purpose == LookupFor::Join)
        {
            return Err(CommandError::AlreadyInRing);
        }
        let start: Vec<Pointer> = match via {
            Some(via) => {
                if !self.chord_peer(via) {
                    return Err(CommandError::NotConnected(via));
                }
                self.cache.entry(via).into_iter().collect()
            }
            None => {
                let mut peers: Vec<NodeId> = self
                    .connected_peers()
                    .into_iter()
                    .filter(|&p| self.chord_peer(p))
                    .collect();
                self.chord_rng.shuffle(&mut peers);
                peers
                    .into_iter()
                    .filter_map(|p| self.cache.entry(p))
                    .collect()
            }
        };
        if start.is_empty() {
            return Err(CommandError::NoChordPeer);
        }
        info!(node = %self.id.short(), "joining the ring");
        self.start_lookup(self.id.as_u128(), LookupFor::Join, start)?;
        Ok(Accepted::Done)
    }

    /// The node became a member: start its timers. A joiner stabilizes at
    /// once, a founder or creator at a random point of its first interval.
    pub(super) fn become_member(&mut self, joined: bool) {
        self.chord.role = ChordRole::Member;
        self.chord.member_since = Some(self.now);
        let interval = self.config.chord_stabilize_interval;
        let first = if joined {
            Duration::ZERO
        } else {
            Duration::from_micros(self.chord_rng.below(interval.as_micros().max(1)))
        };
        self.schedule_stabilize(first);
        self.deadlines.push(
            self.now + self.config.chord_fix_fingers_interval,
            Deadline::ChordFixFingers,
        );
        self.deadlines.push(
            self.now + self.config.dht_repair_interval,
            Deadline::DhtRepair,
        );
        self.member_changed();
    }

    fn schedule_stabilize(&mut self, after: Duration) {
        self.chord.stabilize_generation += 1;
        let generation = self.chord.stabilize_generation;
        self.deadlines
            .push(self.now + after, Deadline::ChordStabilize { generation });
    }

    /// Whether `peer` is up on a session that negotiated chord.
    pub(super) fn chord_peer(&self, peer: NodeId) -> bool {
        self.links
            .get(&peer)
            .and_then(|l| self.conns.get(&l.conn))
            .and_then(|c| c.session.as_ref())
            .is_some_and(|s| s.capabilities.contains(Capabilities::CHORD))
    }

    /// Whether chord messages are allowed on `conn`: this node runs chord
    /// and the session negotiated it (spec/chord.md §4).
    pub(super) fn conn_runs_chord(&self, conn: ConnId) -> bool {
        self.chord.role != ChordRole::Off
            && self
                .conns
                .get(&conn)
                .and_then(|c| c.session.as_ref())
                .is_some_and(|s| s.capabilities.contains(Capabilities::CHORD))
    }

    /// This node as a pointer.
    pub(super) fn self_pointer(&self) -> Pointer {
        pointer(self.id, &self.config.listen_addrs)
    }

    // ----- requests (§4) -----

    /// Sends the message `build(req)` to `to` (dialling it if it is not
    /// up) and returns `req`. The outcome comes back through
    /// [`Node::chord_request_done`], never within this call.
    pub(super) fn chord_request(
        &mut self,
        to: Pointer,
        purpose: Purpose,
        build: impl FnOnce(u64) -> Message,
    ) -> u64 {
        let req = self.chord.next_req();
        let message = build(req);
        self.chord.requests.insert(
            req,
            Request {
                peer: to,
                purpose,
                message,
                unsent: true,
                failed: None,
            },
        );
        self.deadlines.push(
            self.now + self.config.chord_request_timeout,
            Deadline::ChordRequest { req },
        );
        self.chord_deliver(req);
        req
    }

    /// Sends request `req`'s message now if its peer is up, or dials it.
    fn chord_deliver(&mut self, req: u64) {
        let Some(request) = self.chord.requests.get_mut(&req) else {
            return;
        };
        request.unsent = true;
        let (to, purpose) = (request.peer.id, request.purpose);
        let message = request.message.clone();
        if let Some(conn) = self.links.get(&to).map(|l| l.conn) {
            let failure = if !self.chord_peer(to) {
                // Not a chord node: it cannot be a ring member.
                Some(EarlyFailure::Dead)
            } else if self.send_message(conn, &message).is_err() {
                Some(EarlyFailure::Refused)
            } else {
                None
            };
            match failure {
                Some(failure) => self.fail_early(req, failure),
                None if purpose == Purpose::Notify => {
                    self.chord.requests.remove(&req);
                }
                None => {
                    if let Some(request) = self.chord.requests.get_mut(&req) {
                        request.unsent = false;
                    }
                }
            }
            return;
        }
        let peer = request.peer.clone();
        if !self.is_dialling(to) && !self.dial_pointer(&peer) {
            self.fail_early(req, EarlyFailure::Refused);
        }
    }

    /// Dials a pointer (demanding its id), through the peer cache when it
    /// has room for it.
    pub(super) fn dial_pointer(&mut self, p: &Pointer) -> bool {
        self.cache.learn(p, self.now);
        if self.cache.get(&p.id).is_some() {
            return self.dial_known(p.id);
        }
        if p.addrs.is_empty() || self.dial_refusal(p.addrs.len()).is_some() {
            return false;
        }
        self.dial_all(&p.addrs, Some(p.id), false, None);
        true
    }

    /// Fails `req` at the next deadline check of this call.
    fn fail_early(&mut self, req: u64, failure: EarlyFailure) {
        if let Some(request) = self.chord.requests.get_mut(&req) {
            request.failed = Some(failure);
            self.deadlines
                .push(self.now, Deadline::ChordRequest { req });
        }
    }

    /// Request `req`'s deadline: its timeout, or an early failure.
    pub(super) fn chord_request_expired(&mut self, req: u64) {
        let failed = self.chord.requests.get(&req).and_then(|r| r.failed);
        let outcome = match failed {
            Some(EarlyFailure::Refused) => Outcome::Refused,
            Some(EarlyFailure::Dead) | None => Outcome::Dead,
        };
        if failed.is_none()
            && let Some(r) = self.chord.requests.get(&req)
        {
            debug!(peer = %r.peer.id.short(), req, "chord request timed out");
        }
        self.chord_request_done(req, outcome);
    }

    /// Requests to `peer`, in id order, that `keep` selects.
    fn requests_to(&self, peer: NodeId, keep: impl Fn(&Request) -> bool) -> Vec<u64> {
        let mut reqs: Vec<u64> = self
            .chord
            .requests
            .iter()
            .filter(|(_, r)| r.peer.id == peer && keep(r))
            .map(|(&req, _)| req)
            .collect();
        reqs.sort_unstable();
        reqs
    }

    /// `peer` came up: send what waited for it.
    pub(super) fn chord_peer_up(&mut self, peer: NodeId) {
        if self.chord.requests.is_empty() {
            return;
        }
        for req in self.requests_to(peer, |r| r.unsent) {
            self.chord_deliver(req);
        }
    }

    /// Every dial to `peer` ended without a session: it is dead to chord.
    pub(super) fn chord_dial_failed(&mut self, peer: NodeId) {
        if !self.requests_to(peer, |r| r.unsent).is_empty() {
            self.chord_peer_dead(peer);
        }
    }

    /// `peer`'s last connection closed. Declared dead (liveness) or shut
    /// down: dead to chord. Otherwise (a reset, a normal goodbye) the
    /// replies in flight are lost: the requests go again, and the dial
    /// decides.
    pub(super) fn chord_peer_down(&mut self, peer: NodeId, reason: &CloseReason) {
        if self.chord.role == ChordRole::Off {
            return;
        }
        if matches!(
            reason,
            CloseReason::Unresponsive | CloseReason::Goodbye(GoodbyeReason::Shutdown)
        ) {
            self.chord_peer_dead(peer);
            return;
        }
        for req in self.requests_to(peer, |r| !r.unsent) {
            self.chord_deliver(req);
        }
    }

    /// §4: `peer` is dead for every pointer and lookup: Flush it and fail
    /// every request to it.
    pub(super) fn chord_peer_dead(&mut self, peer: NodeId) {
        if self.chord.is_pointer(peer) {
            self.stats.chord_flushes += 1;
            debug!(node = %self.id.short(), peer = %peer.short(), "flushing dead pointer");
        }
        let pred_before = self.chord.pred.as_ref().map(|p| p.id);
        if self.chord.flush(peer) {
            warn!(node = %self.id.short(), "successor list emptied: orphaned (too many failures)");
            self.push_event(Event::ChordOrphaned);
        }
        if pred_before == Some(peer) {
            self.predecessor_changed(Some(peer));
        }
        for req in self.requests_to(peer, |_| true) {
            if let Some(request) = self.chord.requests.remove(&req) {
                self.continue_request(req, request, Outcome::Dead, true);
            }
        }
    }

    /// A chord or dht reply arrived from `from`.
    pub(super) fn on_chord_reply(&mut self, from: NodeId, req: u64, message: Message) {
        match self.chord.requests.get(&req) {
            Some(r) if r.peer.id == from && !r.unsent => {
                self.chord_request_done(req, Outcome::Reply(message));
            }
            _ => self.stats.chord_late_replies += 1,
        }
    }

    /// Request `req` ended: continue what it was for.
    pub(super) fn chord_request_done(&mut self, req: u64, outcome: Outcome) {
        let Some(request) = self.chord.requests.remove(&req) else {
            return;
        };
        // A non-member answer is death too (§4).
        let dead = match &outcome {
            Outcome::Dead => true,
            Outcome::Reply(Message::ChordState(s)) => !s.member,
            Outcome::Reply(Message::ChordFindSuccessorReply(r)) => {
                r.kind == ChordReplyKind::NotInRing
            }
            _ => false,
        };
        if dead {
            self.chord_peer_dead(request.peer.id);
        }
        self.continue_request(req, request, outcome, dead);
    }

    fn continue_request(&mut self, req: u64, request: Request, outcome: Outcome, dead: bool) {
        let peer = request.peer;
        match request.purpose {
            Purpose::Stabilize => self.on_stabilize_outcome(req, peer, outcome, dead),
            Purpose::StabilizePred => self.on_stabilize_pred_outcome(req, peer, outcome, dead),
            Purpose::Probe => self.on_probe_outcome(req, dead),
            Purpose::Notify => {}
            Purpose::Hop(lookup) => self.on_hop_outcome(lookup, peer, outcome, dead),
            Purpose::Dht(op) => self.on_dht_outcome(op, req, peer, outcome),
        }
    }

    // ----- stabilization (§6.2) -----

    /// The stabilize timer.
    pub(super) fn stabilize_tick(&mut self, generation: u64) {
        if generation != self.chord.stabilize_generation || !self.chord.is_member() {
            return;
        }
        let interval = self.config.chord_stabilize_interval;
        let jitter = self.chord_rng.below(interval.as_micros() / 10 + 1);
        self.schedule_stabilize(Duration::from_micros(interval.as_micros() - jitter));
        self.chord.quick_restabilize = 0;
        self.stabilize();
    }

    /// `StabilizeFromSuccessor`, step 1.
    fn stabilize(&mut self) {
        if !self.chord.is_member() || self.chord.stabilizing.is_some() {
            return;
        }
        let Some(s1) = self.chord.succs.first().cloned() else {
            if let Some(p) = self.chord.pred.clone() {
                // §5.2: a ring of one adopts its first joiner.
                self.chord.set_succs(vec![p]);
                self.member_changed();
            }
            return;
        };
        let req = self.chord_request(s1, Purpose::Stabilize, |req| {
            Message::ChordGetState(ChordGetState { req })
        });
        self.chord.stabilizing = Some(req);
    }

    /// Steps 2 and 3.
    fn on_stabilize_outcome(&mut self, req: u64, s1: Pointer, outcome: Outcome, dead: bool) {
        if self.chord.stabilizing != Some(req) {
            return;
        }
        self.chord.stabilizing = None;
        match outcome {
            Outcome::Reply(Message::ChordState(state)) if !dead => {
                let me = self.id.as_u128();
                let list = self
                    .chord
                    .clip(self.id, core::iter::once(s1.clone()).chain(state.succs));
                self.chord.set_succs(list);
                let pred = state
                    .pred
                    .filter(|p| ring::in_open(me, p.id.as_u128(), s1.id.as_u128()));
                match pred {
                    Some(p) => {
                        let req = self.chord_request(p, Purpose::StabilizePred, |req| {
                            Message::ChordGetState(ChordGetState { req })
                        });
                        self.chord.stabilizing = Some(req);
                    }
                    None => self.notify(s1),
                }
                self.member_changed();
            }
            Outcome::Refused => {}
            _ => {
                // Step 2: s1 was flushed; notify the new first entry and
                // go on at once, at most r times in a row.
                if let Some(first) = self.chord.succs.first().cloned() {
                    self.notify(first);
                }
                self.member_changed();
                if self.chord.quick_restabilize < self.chord.r {
                    self.chord.quick_restabilize += 1;
                    self.stabilize();
                }
            }
        }
    }

    /// Step 4.
    fn on_stabilize_pred_outcome(&mut self, req: u64, p: Pointer, outcome: Outcome, dead: bool) {
        if self.chord.stabilizing != Some(req) {
            return;
        }
        self.chord.stabilizing = None;
        match outcome {
            Outcome::Reply(Message::ChordState(state)) if !dead => {
                let list = self
                    .chord
                    .clip(self.id, core::iter::once(p.clone()).chain(state.succs));
                self.chord.set_succs(list);
                self.notify(p);
            }
            _ => {
                if let Some(first) = self.chord.succs.first().cloned() {
                    self.notify(first);
                }
            }
        }
        self.member_changed();
    }

    fn notify(&mut self, to: Pointer) {
        self.chord_request(to, Purpose::Notify, |_| Message::ChordNotify(ChordNotify));
    }

    // ----- rectify (§6.3) -----

    fn on_chord_notify(&mut self, from: NodeId) {
        if !self.chord.is_member() || from == self.id {
            return;
        }
        let Some(n) = self.cache.entry(from) else {
            return;
        };
        self.rectify(n);
    }

    fn rectify(&mut self, n: Pointer) {
        let me = self.id.as_u128();
        let pred = self.chord.pred.as_ref().map(|p| p.id.as_u128());
        match ring::rectify(me, pred, n.id.as_u128()) {
            Rectify::Adopt => self.set_pred(n),
            Rectify::Nothing => {}
            Rectify::CheckOld => {
                if self.chord.probing.is_some() {
                    let closer = self
                        .chord
                        .waiting_notifier
                        .as_ref()
                        .is_none_or(|w| ring::in_open(w.id.as_u128(), n.id.as_u128(), me));
                    if closer {
                        self.chord.waiting_notifier = Some(n);
                    }
                    return;
                }
                let Some(old) = self.chord.pred.clone() else {
                    return;
                };
                if self.links.contains_key(&old.id) && !self.is_suspect(old.id) {
                    return;
                }
                self.chord.waiting_notifier = Some(n);
                let req = self.chord_request(old, Purpose::Probe, |req| {
                    Message::ChordGetState(ChordGetState { req })
                });
                self.chord.probing = Some(req);
            }
        }
    }

    fn on_probe_outcome(&mut self, req: u64, dead: bool) {
        if self.chord.probing != Some(req) {
            return;
        }
        self.chord.probing = None;
        let Some(waiting) = self.chord.waiting_notifier.take() else {
            return;
        };
        // Dead: the flush already cleared the predecessor, so the waiting
        // notifier is adopted. Alive: only a notifier closer than it wins.
        let me = self.id.as_u128();
        let pred = self.chord.pred.as_ref().map(|p| p.id.as_u128());
        if dead || ring::rectify(me, pred, waiting.id.as_u128()) == Rectify::Adopt {
            self.set_pred(waiting);
        }
    }

    fn set_pred(&mut self, p: Pointer) {
        let old = self.chord.pred.replace(p.clone()).map(|o| o.id);
        self.cache.learn(&p, self.now);
        debug!(node = %self.id.short(), pred = %p.id.short(), "new predecessor");
        self.predecessor_changed(old);
        self.member_changed();
    }

    // ----- responders -----

    /// Acts on a chord or dht message from `from`.
    pub(super) fn on_chord_message(&mut self, from: NodeId, message: Message) {
        match message {
            Message::ChordGetState(ChordGetState { req }) => {
                let state = ChordState {
                    req,
                    member: self.chord.is_member(),
                    pred: self.chord.pred.clone().filter(|_| self.chord.is_member()),
                    succs: if self.chord.is_member() {
                        self.chord.succs.clone()
                    } else {
                        Vec::new()
                    },
                };
                self.chord_reply(from, &Message::ChordState(state));
            }
            Message::ChordNotify(_) => self.on_chord_notify(from),
            Message::ChordFindSuccessor(ChordFindSuccessor { req, key }) => {
                let (kind, entries) = self.answer_find_successor(key, from);
                let reply = ChordFindSuccessorReply { req, kind, entries };
                self.chord_reply(from, &Message::ChordFindSuccessorReply(reply));
            }
            Message::ChordState(ChordState { req, .. })
            | Message::ChordFindSuccessorReply(ChordFindSuccessorReply { req, .. }) => {
                self.on_chord_reply(from, req, message);
            }
            other => self.on_dht_message(from, other),
        }
    }

    /// Sends a reply to `to` on its current connection: not necessarily the
    /// one the request came on, which may be a duplicate being retired.
    pub(super) fn chord_reply(&mut self, to: NodeId, message: &Message) {
        if let Some(conn) = self.links.get(&to).map(|l| l.conn) {
            let _ = self.send_message(conn, message);
        }
    }

    /// §7.1, over pointers.
    pub(super) fn answer_find_successor(
        &self,
        key: u128,
        from: NodeId,
    ) -> (ChordReplyKind, Vec<Pointer>) {
        let succs = positions(&self.chord.succs);
        let fingers = self.chord.finger_positions();
        let reply = ring::respond(
            self.id.as_u128(),
            self.chord.is_member(),
            &succs,
            &fingers,
            key,
            from.as_u128(),
            |_| false,
        );
        match reply {
            ring::Reply::NotInRing => (ChordReplyKind::NotInRing, Vec::new()),
            ring::Reply::Done(_) => (ChordReplyKind::Done, self.chord.succs.clone()),
            ring::Reply::Next(ids) => (
                ChordReplyKind::Next,
                ids.iter()
                    .filter_map(|&id| self.chord.pointer(NodeId::from_u128(id)).cloned())
                    .collect(),
            ),
        }
    }

    /// Something in the ring state changed (for the dht's holder set).
    fn member_changed(&mut self) {
        self.dht_ring_changed();
    }
}
