//! Ring membership and maintenance (spec/chord.md §4–§6): founding,
//! creating and joining a ring, stabilization, rectify, and what a dead
//! peer does to the pointers.

use tracing::{debug, info, warn};

use super::ring::{self, Rectify};
use super::{
    Chord, ChordError, ChordEvent, ChordRole, Finger, Found, LookupFor, Pointer, RingCall,
    RingObserver, Timer,
};
use crate::cx::Cx;
use crate::rpc::{Done, Failure, Outcome};
use crate::time::Duration;
use crate::wire::{Capabilities, ChordGetState, ChordNotify, GoodbyeReason, Message, PeerEntry};
use crate::{Accepted, CloseReason, NodeId};

impl Chord {
    // ----- commands -----

    fn check_can_start(&self) -> Result<(), ChordError> {
        match self.role {
            ChordRole::Off => Err(ChordError::Off),
            ChordRole::Member => Err(ChordError::AlreadyInRing),
            ChordRole::Out => Ok(()),
        }
    }

    /// `ChordCommand::Found`: Zave's initialization from a shared founders
    /// list (§5.1).
    pub(crate) fn found(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        mut founders: Vec<PeerEntry>,
    ) -> Result<Accepted, ChordError> {
        self.check_can_start()?;
        if founders.len() <= self.r {
            return Err(ChordError::BadFounders(
                "fewer than chord_successors + 1 founders",
            ));
        }
        if founders.iter().any(|f| f.addrs.is_empty()) {
            return Err(ChordError::BadFounders("a founder has no address"));
        }
        if founders.iter().any(|f| !self.meets_puzzle(f.id)) {
            return Err(ChordError::BadFounders(
                "a founder's id fails chord.id_puzzle_bits",
            ));
        }
        founders.sort_unstable_by_key(|f| f.id);
        if founders.windows(2).any(|w| w[0].id == w[1].id) {
            return Err(ChordError::BadFounders("a founder appears twice"));
        }
        let Ok(i) = founders.binary_search_by_key(&cx.me(), |f| f.id) else {
            return Err(ChordError::BadFounders("this node is not a founder"));
        };
        let n = founders.len();
        for f in &founders {
            cx.learn(f);
        }
        let succs = (1..=self.r)
            .map(|k| founders[(i + k) % n].clone())
            .collect();
        self.set_succs(cx, succs);
        self.pred = Some(Finger::new(founders[(i + n - 1) % n].clone()));
        // The fingers of the founded ring, as far as the list shows it:
        // the first founder at or after each target beyond the successor
        // list (the ideal fingers when every founder is listed). A node
        // given only its neighbourhood and its fingers (a simulated
        // million-member ring) starts with them too, instead of fixing
        // its far fingers by lookups that only its successors can route.
        let me = cx.me().as_u128();
        let last = self.succs.last().map_or(me, |p| p.id.as_u128());
        for bit in (0..128u8).rev() {
            let target = me.wrapping_add(1u128 << bit);
            if ring::in_half_open(me, target, last) {
                break;
            }
            let at = founders.partition_point(|f| f.id.as_u128() < target) % n;
            self.finger_found(cx, bit, Some(founders[at].clone()));
        }
        self.become_member(cx, obs, false);
        Ok(Accepted::Done)
    }

    /// `ChordCommand::Create`: a ring of one (§5.2).
    pub(crate) fn create(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
    ) -> Result<Accepted, ChordError> {
        self.check_can_start()?;
        self.become_member(cx, obs, false);
        Ok(Accepted::Done)
    }

    /// `ChordCommand::Join` (§5.3): look up our own id, then adopt the list
    /// of the member found.
    pub(crate) fn join(
        &mut self,
        cx: &mut dyn Cx,
        via: Option<NodeId>,
    ) -> Result<Accepted, ChordError> {
        self.check_can_start()?;
        if self.lookups.values().any(|l| l.purpose == LookupFor::Join) {
            return Err(ChordError::AlreadyInRing);
        }
        let start: Vec<Pointer> = match via {
            Some(via) => {
                if !runs_chord(cx, via) {
                    return Err(ChordError::NotConnected(via));
                }
                cx.entry(via).into_iter().collect()
            }
            None => {
                let mut peers = chord_peers(cx);
                self.rng.shuffle(&mut peers);
                peers.into_iter().filter_map(|p| cx.entry(p)).collect()
            }
        };
        let mut start = start;
        start.retain(|p| self.meets_puzzle(p.id));
        if start.is_empty() {
            return Err(ChordError::NoChordPeer);
        }
        info!(node = %cx.me().short(), "joining the ring");
        // A join lookup is never answered locally (the node is no member).
        let me = cx.me().as_u128();
        self.start_lookup(cx, me, LookupFor::Join, start)?;
        Ok(Accepted::Done)
    }

    /// §5.3: adopt the list of the member the join lookup found.
    pub(super) fn join_found(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        result: Result<Found, super::LookupError>,
    ) {
        if self.role != ChordRole::Out {
            return;
        }
        let Found { list, by: m, hops } = match result {
            Ok(found) => found,
            Err(reason) => {
                info!(node = %cx.me().short(), %reason, "ring join failed");
                cx.emit(ChordEvent::JoinFailed { reason });
                return;
            }
        };
        let me = cx.me();
        let mut succs = self.clip(me, list.into_iter().filter(|p| p.id != me));
        if succs.is_empty() {
            succs.push(m.clone());
        }
        for p in succs.iter().chain([&m]) {
            cx.learn(p);
        }
        let successor = succs[0].id;
        self.set_succs(cx, succs);
        self.pred = Some(Finger::new(m.clone()));
        info!(node = %me.short(), successor = %successor.short(), predecessor = %m.id.short(), hops, "joined the ring");
        cx.emit(ChordEvent::Joined {
            successor,
            predecessor: m.id,
            hops,
        });
        self.become_member(cx, obs, true);
        obs.predecessor_changed(cx, self, None);
    }

    /// The node became a member: start its timers. A joiner stabilizes at
    /// once, a founder or creator at a random point of its first interval.
    fn become_member(&mut self, cx: &mut dyn Cx, obs: &mut dyn RingObserver, joined: bool) {
        self.role = ChordRole::Member;
        let interval = self.settings.stabilize_interval;
        let first = if joined {
            Duration::ZERO
        } else {
            Duration::from_micros(self.rng.below(interval.as_micros().max(1)))
        };
        self.schedule_stabilize(cx, first);
        self.fingers_backoff = 1;
        let at = cx.now() + self.settings.fix_fingers_interval;
        self.fingers_due = at;
        self.arm(cx, at, Timer::FixFingers);
        let merge = self.settings.merge_interval;
        self.schedule_merge(cx, merge);
        obs.joined(cx);
        obs.ring_changed(cx, self);
    }

    /// Leaves the ring without a word (shutdown: the goodbyes say it).
    pub(crate) fn leave(&mut self) {
        if self.role == ChordRole::Member {
            self.role = ChordRole::Out;
        }
    }

    fn schedule_stabilize(&mut self, cx: &mut dyn Cx, after: Duration) {
        self.stabilize_generation += 1;
        let generation = self.stabilize_generation;
        let at = cx.now() + after;
        self.arm(cx, at, Timer::Stabilize { generation });
    }

    // ----- peers coming and going (§4) -----

    /// `peer` came up: send the ring requests that waited for it.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        self.rpc.peer_up(cx, peer);
    }

    /// `peer`'s last connection closed. Returns whether that makes it dead
    /// to the ring (declared dead by liveness, shut down, or restarted: the
    /// run that was a member is gone, and the new run starts `Out`): the caller
    /// then ends every ring request to it ([`Chord::flush_dead`]).
    /// Otherwise (a reset, a normal goodbye) the replies in flight are
    /// lost: the requests go again, and the dial decides.
    pub(crate) fn peer_down(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        reason: &CloseReason,
    ) -> bool {
        if self.role == ChordRole::Off {
            return false;
        }
        if self.in_routing_set(peer) {
            // Its link is redialled at the next fix-fingers tick (§4), and
            // a routing-set peer lost says the ring may be moving (§7.3):
            // that tick comes within the base period.
            self.fingers_to_base(cx);
        }
        if matches!(
            reason,
            CloseReason::Unresponsive
                | CloseReason::Goodbye(GoodbyeReason::Shutdown)
                | CloseReason::Restarted
        ) {
            return true;
        }
        let resent = self.rpc.peer_down(cx, peer);
        debug_assert!(resent.is_empty(), "ring requests are resent, never failed");
        false
    }

    /// Every dial to `peer` ended without a session: whether that makes it
    /// dead to the ring (a request was waiting for it, or it is a finger:
    /// a finger is dialled when a lookup first goes over it, and a dial to
    /// a crashed host fails only after the transport's connect timeout,
    /// when the lookup has long been retried around it; kept, it would be
    /// dialled again by every lookup through this node until fix-fingers
    /// came round to it).
    pub(crate) fn dial_failed(&self, peer: NodeId) -> bool {
        self.rpc.waits_for(peer) || self.fingers.iter().any(|(_, p)| p.id == peer)
    }

    /// §4: `peer` is dead for every pointer: Flush it. The caller then ends
    /// every ring request to it, in id order ([`crate::rpc::Rpc::all_to`]).
    pub(crate) fn flush_dead(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        if let Some(lost) = self.pointer(peer) {
            self.stats.flushes += 1;
            debug!(node = %cx.me().short(), peer = %peer.short(), "flushing dead pointer");
            // §6.7: a pointer lost may come back in another ring (a
            // partition), so it becomes a suspect, tried from the next
            // merge tick on.
            let at = cx.now() + self.settings.merge_interval;
            self.add_suspect(cx, lost, at);
            // A pointer gone: the ring changed under this member, and so
            // may its fingers (§7.3).
            self.fingers_to_base(cx);
        }
        // A dead predecessor is simply forgotten: the next notifier is
        // adopted (nothing is handed over to nobody).
        if self.flush(peer) {
            warn!(node = %cx.me().short(), "successor list emptied: orphaned (too many failures)");
            cx.emit(ChordEvent::Orphaned);
            // §6.7: look for the ring at once, through the fingers and the
            // predecessor (the merge tick adds them).
            self.orphaned(cx);
        }
    }

    // ----- requests ending -----

    /// One of chord's own requests ended (`dead`: [`Chord::is_death`]). A
    /// lookup that ended is handed back.
    pub(crate) fn call_done(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        done: Done<RingCall>,
        dead: bool,
    ) -> Option<super::Finished> {
        let Done {
            id,
            peer,
            client,
            outcome,
            ..
        } = done;
        match client {
            RingCall::Stabilize => self.on_stabilize_outcome(cx, obs, id, peer, outcome, dead),
            RingCall::StabilizePred => {
                self.on_stabilize_pred_outcome(cx, obs, id, peer, outcome, dead)
            }
            RingCall::Probe => self.on_probe_outcome(cx, id, peer.id, &outcome, dead),
            RingCall::CheckNotifier => self.on_check_outcome(cx, obs, id, &outcome, dead),
            RingCall::Notify | RingCall::Client(_) => {}
            RingCall::Hop(lookup) => return self.on_hop_outcome(cx, lookup, peer, outcome, dead),
            RingCall::Route(lookup) => {
                return self.on_route_outcome(cx, lookup, peer, outcome, dead);
            }
            RingCall::Forward(fid) => self.on_forward_outcome(cx, fid, peer.id, outcome, dead),
        }
        None
    }

    // ----- stabilization (§6.2) -----

    /// The stabilize timer.
    pub(super) fn stabilize_tick(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        generation: u64,
    ) {
        if generation != self.stabilize_generation || !self.is_member() {
            return;
        }
        let interval = self.settings.stabilize_interval;
        let jitter = self.rng.below(interval.as_micros() / 10 + 1);
        self.schedule_stabilize(cx, Duration::from_micros(interval.as_micros() - jitter));
        self.quick_restabilize = 0;
        self.stabilize(cx, obs);
    }

    /// `StabilizeFromSuccessor`, step 1.
    fn stabilize(&mut self, cx: &mut dyn Cx, obs: &mut dyn RingObserver) {
        if !self.is_member() || self.stabilizing.is_some() {
            return;
        }
        let Some(s1) = self.succs.first().map(Finger::pointer) else {
            if let Some(p) = self.pred.as_ref().map(Finger::pointer) {
                // §5.2: a ring of one adopts its first joiner.
                self.set_succs(cx, vec![p]);
                obs.ring_changed(cx, self);
            }
            return;
        };
        let req = self.ask_state(cx, s1, RingCall::Stabilize);
        self.stabilizing = super::in_flight(req);
    }

    /// Steps 2 and 3.
    fn on_stabilize_outcome(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        req: u64,
        s1: Pointer,
        outcome: Outcome,
        dead: bool,
    ) {
        if self.stabilizing != super::in_flight(req) {
            return;
        }
        self.stabilizing = None;
        match outcome {
            Outcome::Reply(Message::ChordState(state)) if !dead => {
                let me = cx.me();
                // s1 names this node its predecessor already: a notify
                // would change nothing (§6.2, step 3).
                let named = state.pred.as_ref().is_some_and(|p| p.id == me);
                let list = self.clip(me, core::iter::once(s1.clone()).chain(state.succs));
                let list = self.puzzle_prefix(list);
                self.set_succs(cx, list);
                let pred = state
                    .pred
                    .filter(|p| ring::in_open(me.as_u128(), p.id.as_u128(), s1.id.as_u128()))
                    .filter(|p| {
                        let ok = self.meets_puzzle(p.id);
                        if !ok {
                            self.stats.successors_refused += 1;
                        }
                        ok
                    });
                match pred {
                    Some(p) => {
                        let req = self.ask_state(cx, p, RingCall::StabilizePred);
                        self.stabilizing = super::in_flight(req);
                    }
                    None if named => {}
                    None => self.notify(cx, s1),
                }
                obs.ring_changed(cx, self);
            }
            Outcome::Failed(Failure::Refused) => {}
            _ => {
                // Step 2: s1 was flushed; notify the new first entry and
                // go on at once, at most r times in a row.
                if let Some(first) = self.succs.first().map(Finger::pointer) {
                    self.notify(cx, first);
                }
                obs.ring_changed(cx, self);
                if self.quick_restabilize < self.r {
                    self.quick_restabilize += 1;
                    self.stabilize(cx, obs);
                }
            }
        }
    }

    /// Step 4.
    fn on_stabilize_pred_outcome(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        req: u64,
        p: Pointer,
        outcome: Outcome,
        dead: bool,
    ) {
        if self.stabilizing != super::in_flight(req) {
            return;
        }
        self.stabilizing = None;
        match outcome {
            Outcome::Reply(Message::ChordState(state))
                if !dead && self.places_successor(cx, &p, &state.succs) =>
            {
                let list = self.clip(cx.me(), core::iter::once(p.clone()).chain(state.succs));
                let list = self.puzzle_prefix(list);
                self.set_succs(cx, list);
                self.notify(cx, p);
            }
            _ => {
                if let Some(first) = self.succs.first().map(Finger::pointer) {
                    self.notify(cx, first);
                }
            }
        }
        obs.ring_changed(cx, self);
    }

    /// Step 4's check (§6.2): the successor's predecessor `p` is adopted
    /// only if its list places the successor s1 after it, its first entry
    /// lying in (p, s1]. Its state is then a part of the ring this node
    /// already sees; a node that only told s1 it was a member (§6.3) and
    /// tells this node something else is not put in front of s1.
    fn places_successor(&mut self, cx: &dyn Cx, p: &Pointer, list: &[Pointer]) -> bool {
        let Some(s1) = self.succs.first() else {
            return false;
        };
        let ok = ring::places(p.id.as_u128(), &super::positions(list), s1.id.as_u128());
        if !ok {
            self.stats.successors_refused += 1;
            debug!(node = %cx.me().short(), candidate = %p.id.short(), successor = %s1.id.short(), "successor's predecessor does not place it: not adopted");
        }
        ok
    }

    /// Asks `to` for its ring state (`ChordGetState`) for `call`.
    fn ask_state(&mut self, cx: &mut dyn Cx, to: Pointer, call: RingCall) -> u64 {
        self.call(cx, to, call, |req| {
            Message::ChordGetState(ChordGetState { req })
        })
    }

    pub(super) fn notify(&mut self, cx: &mut dyn Cx, to: Pointer) {
        self.call(cx, to, RingCall::Notify, |_| {
            Message::ChordNotify(ChordNotify)
        });
    }

    // ----- rectify (§6.3) -----

    /// A `ChordNotify` from `from`.
    pub(super) fn on_notify(&mut self, cx: &mut dyn Cx, from: NodeId) {
        if !self.is_member() || from == cx.me() {
            return;
        }
        let Some(n) = cx.entry(from) else {
            return;
        };
        if !self.meets_puzzle(from) {
            self.refuse_notifier(cx, &n, "its id fails chord.id_puzzle_bits");
            return;
        }
        self.rectify(cx, n);
    }

    /// §6.3 with the check: the table says whether `n` would be adopted;
    /// a notifier that would be is asked for its state first, and adopted
    /// only if it answers as a member whose list places this node. The
    /// predecessor it would displace keeps its place meanwhile, so a
    /// notifier that fails never displaced it and was never handed a key.
    fn rectify(&mut self, cx: &mut dyn Cx, n: Pointer) {
        let me = cx.me().as_u128();
        if self.pred.as_ref().is_some_and(|p| p.id == n.id) {
            // The predecessor notifying again: the usual case, free.
            return;
        }
        if self.rectifying.is_some() {
            // One rectify request at a time; keep the closest notifier
            // for when it ends.
            let busy_with = |p: &Option<Finger>| p.as_ref().is_some_and(|p| p.id == n.id);
            if busy_with(&self.checking) || busy_with(&self.waiting_notifier) {
                return;
            }
            let closer = self
                .waiting_notifier
                .as_ref()
                .is_none_or(|w| ring::in_open(w.id.as_u128(), n.id.as_u128(), me));
            if closer {
                self.waiting_notifier = Some(Finger::new(n));
            }
            return;
        }
        let pred = self.pred.as_ref().map(|p| p.id.as_u128());
        match ring::rectify(me, pred, n.id.as_u128()) {
            Rectify::Nothing => {}
            Rectify::Adopt => {
                let req = self.ask_state(cx, n.clone(), RingCall::CheckNotifier);
                self.rectifying = super::in_flight(req);
                self.checking = Some(Finger::new(n));
            }
            Rectify::CheckOld => {
                // The old predecessor must still answer as a member that
                // places this node; liveness alone is not enough (a peer
                // can answer pings and nothing else).
                let Some(old) = self.pred.as_ref().map(Finger::pointer) else {
                    return;
                };
                self.waiting_notifier = Some(Finger::new(n));
                let req = self.ask_state(cx, old, RingCall::Probe);
                self.rectifying = super::in_flight(req);
            }
        }
    }

    /// Whether a rectify request's outcome shows a member whose list places
    /// this node (dead: [`Chord::is_death`]).
    fn answers_placing_me(cx: &dyn Cx, of: NodeId, outcome: &Outcome, dead: bool) -> bool {
        match outcome {
            Outcome::Reply(Message::ChordState(state)) if !dead && state.member => {
                let list = super::positions(&state.succs);
                ring::places(of.as_u128(), &list, cx.me().as_u128())
            }
            _ => false,
        }
    }

    /// The check of a notifier ended.
    fn on_check_outcome(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        req: u64,
        outcome: &Outcome,
        dead: bool,
    ) {
        if self.rectifying != super::in_flight(req) {
            return;
        }
        self.rectifying = None;
        let Some(n) = self.checking.take().map(|f| f.pointer()) else {
            return;
        };
        if matches!(outcome, Outcome::Failed(Failure::Refused)) {
            // A local cap refused the request: nothing is known of n, and
            // its next notify tries again.
        } else if Self::answers_placing_me(cx, n.id, outcome, dead) {
            // The predecessor may have been flushed meanwhile, never
            // replaced (rectify requests go one at a time).
            let me = cx.me().as_u128();
            let pred = self.pred.as_ref().map(|p| p.id.as_u128());
            if ring::rectify(me, pred, n.id.as_u128()) == Rectify::Adopt {
                self.set_pred(cx, obs, n);
            }
        } else {
            let why = match outcome {
                Outcome::Reply(Message::ChordState(s)) if s.member => {
                    "its successor list does not place this node"
                }
                Outcome::Reply(_) => "it is not a ring member",
                _ => "it did not answer",
            };
            self.refuse_notifier(cx, &n, why);
        }
        self.rectify_waiting(cx);
    }

    /// The probe of the old predecessor ended.
    fn on_probe_outcome(
        &mut self,
        cx: &mut dyn Cx,
        req: u64,
        old: NodeId,
        outcome: &Outcome,
        dead: bool,
    ) {
        if self.rectifying != super::in_flight(req) {
            return;
        }
        self.rectifying = None;
        let still_pred = self.pred.as_ref().is_some_and(|p| p.id == old);
        let refused = matches!(outcome, Outcome::Failed(Failure::Refused));
        if still_pred && !refused && !Self::answers_placing_me(cx, old, outcome, dead) {
            // Alive but no longer placing this node (dead ones the router
            // flushed already): it is not the predecessor any more.
            self.stats.flushes += 1;
            debug!(node = %cx.me().short(), pred = %old.short(), "predecessor no longer places this node: dropped");
            self.pred = None;
            self.fingers_to_base(cx);
        }
        // The waiting notifier is checked if the table (with the
        // predecessor as it now is) would adopt it.
        self.rectify_waiting(cx);
    }

    /// Rectifies the notifier that waited, if any.
    fn rectify_waiting(&mut self, cx: &mut dyn Cx) {
        if let Some(n) = self.waiting_notifier.take().map(|f| f.pointer()) {
            let me = cx.me().as_u128();
            let pred = self.pred.as_ref().map(|p| p.id.as_u128());
            // Only a notifier the table would adopt now: one that merely
            // lost against a live predecessor is dropped (its next notify
            // brings it back if it should).
            if ring::rectify(me, pred, n.id.as_u128()) == Rectify::Adopt {
                self.rectify(cx, n);
            }
        }
    }

    fn refuse_notifier(&mut self, cx: &dyn Cx, n: &Pointer, why: &'static str) {
        self.stats.notifiers_refused += 1;
        debug!(node = %cx.me().short(), notifier = %n.id.short(), why, "notifier refused as predecessor");
    }

    fn set_pred(&mut self, cx: &mut dyn Cx, obs: &mut dyn RingObserver, p: Pointer) {
        let old = self.pred.replace(Finger::new(p.clone())).map(|o| o.id);
        if old != Some(p.id) {
            self.fingers_to_base(cx);
        }
        cx.learn(&p);
        debug!(node = %cx.me().short(), pred = %p.id.short(), "new predecessor");
        obs.predecessor_changed(cx, self, old);
        obs.ring_changed(cx, self);
    }

    /// Drops every lookup and request (shutdown), after the caller failed
    /// the lookups one by one.
    pub(crate) fn clear_requests(&mut self) {
        self.rpc.clear();
        self.clear_forwards();
    }
}

/// Whether `peer` is up on a session that negotiated chord.
/// The connected peers that run chord, in the order `Cx::peers_up` gives.
pub(super) fn chord_peers(cx: &dyn Cx) -> Vec<NodeId> {
    cx.peers_up()
        .into_iter()
        .filter(|&p| runs_chord(cx, p))
        .collect()
}

fn runs_chord(cx: &dyn Cx, peer: NodeId) -> bool {
    cx.peer_caps(peer)
        .is_some_and(|c| c.contains(Capabilities::CHORD))
}
