//! Lookups: recursive over the routing set (spec/chord.md §7.4), with the
//! iterative walk (§7.2) as fallback; forwarding peers' recursive lookups
//! within bounds; lazy fingers and keeping the routing set connected
//! (§7.3, §4); routing to a node that is not connected (§9).

use smallvec::SmallVec;

use super::ring::{self, dist};
use super::{
    Chord, ChordError, ChordEvent, ChordRole, FINGERS_MOVED_SPEEDUP, Finger, Finished, Found,
    Lookup, LookupError, LookupFor, Pointer, RingCall, RingObserver, RouteStart, Timer,
};
use crate::cx::Cx;
use crate::rpc::Outcome;
use crate::time::Duration;
use crate::wire::{
    Capabilities, ChordFindSuccessor, ChordReplyKind, ChordRoute, ChordRouteAck, ChordRouteFound,
    ChordRouteKind, ChordRouteReply, Message,
};
use crate::{NodeId, OpId};

/// What a hop does with a recursive lookup.
enum RouteStep {
    /// Answer it (found, failed, or not a member).
    Answer(Result<ChordRouteFound, ChordRouteKind>),
    /// Forward it to this pointer.
    Forward(Pointer),
}

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
            recursive: false,
            last_next: None,
            asked_past: false,
            failed: SmallVec::new(),
        };
        if self.is_member() && !matches!(purpose, LookupFor::Merge(_)) {
            match self.local_answer(&*cx, key) {
                Ok(found) => return Ok(Some(self.finish(lookup, Ok(found)))),
                Err(next) => {
                    lookup.candidates = next;
                    lookup.closest = Some(cx.me().as_u128());
                    // A member's lookup goes recursively over its own
                    // routing set first (§7.4).
                    lookup.recursive = true;
                }
            }
        } else {
            if lookup.candidates.is_empty() && !matches!(purpose, LookupFor::Merge(_)) {
                // Not a member: ask the connected chord peers, closest to
                // the key first (§7.2 step 1).
                lookup.candidates = super::maintain::chord_peers(&*cx)
                    .into_iter()
                    .filter_map(|p| cx.entry(p))
                    .filter(|p| self.meets_puzzle(p.id))
                    .collect();
                lookup
                    .candidates
                    .sort_by_key(|c| (dist(c.id.as_u128(), key), c.id));
            }
            if lookup.candidates.is_empty() {
                return Err(ChordError::NoChordPeer);
            }
        }
        let id = self.rpc.fresh_id();
        self.lookups.insert(id, Box::new(lookup));
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
        let untried = |c: &Pointer| !tried.contains(&c.id);
        let Some(i) = lookup
            .candidates
            .iter()
            .position(|c| untried(c) && !passed_over(&*cx, c.id))
            .or_else(|| lookup.candidates.iter().position(untried))
        else {
            return self.ask_past_silent(cx, id);
        };
        let next = lookup.candidates.remove(i);
        lookup.tried.push(next.id);
        lookup.sent += 1;
        let key = lookup.key;
        if lookup.recursive {
            // The first hop is a pointer (the local `Next`): connected, in
            // the routing set, never dialled only for this lookup.
            let ttl = self.settings.route_ttl;
            let to = next.id;
            let call = self.call(cx, next, RingCall::Route(id), |req| {
                Message::ChordRoute(ChordRoute {
                    req,
                    key,
                    ttl,
                    avoid: None,
                })
            });
            self.await_route_ack(cx, call, to);
            return None;
        }
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
            _ => {
                lookup.failed.push(peer.id);
                return self.lookup_next(cx, id);
            }
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
                let lookup = self.take_lookup(id)?;
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
                lookup.last_next = Some(peer);
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

    /// The recursive attempt of lookup `id` answered or failed (§7.4).
    pub(super) fn on_route_outcome(
        &mut self,
        cx: &mut dyn Cx,
        id: u64,
        peer: Pointer,
        outcome: Outcome,
        dead: bool,
    ) -> Option<Finished> {
        if !self.lookups.contains_key(&id) {
            return None; // ended meanwhile (timed out)
        }
        let reply = match outcome {
            Outcome::Reply(Message::ChordRouteReply(reply)) if !dead => reply,
            // Timed out: the path behind the first hop is slow or broken,
            // or the first hop is silent. If it is the first successor and
            // would have answered itself, the key lies past it.
            Outcome::Failed(crate::rpc::Failure::TimedOut) => {
                let key = self.lookups.get(&id)?.key;
                if let Some(found) = self.past_silent_successor(cx, peer.id, key) {
                    self.count_retry(&outcome);
                    let lookup = self.take_lookup(id)?;
                    let found = Found {
                        list: found.entries,
                        by: found.by,
                        hops: 0,
                    };
                    return Some(self.finish(lookup, Ok(found)));
                }
                return self.route_fallback(cx, id);
            }
            // The first hop is dead, refused or not a member (and, if
            // dead, flushed already): ask afresh, still recursively. The
            // key may now lie just after this node, if the dead hop was
            // its first successor.
            _ => {
                self.count_retry(&outcome);
                let key = self.lookups.get(&id)?.key;
                let next = match self.local_answer(&*cx, key) {
                    Ok(found) => {
                        let lookup = self.take_lookup(id)?;
                        return Some(self.finish(lookup, Ok(found)));
                    }
                    Err(next) => next,
                };
                let lookup = self.lookups.get_mut(&id)?;
                lookup.candidates = next;
                return self.lookup_next(cx, id);
            }
        };
        // An iterative lookup asked past a silent candidate (§7.2 step 5)
        // counts the hops it made before.
        let hops = self.lookups.get(&id)?.hops + u32::from(reply.hops);
        let found = match reply.result {
            Ok(found) => found,
            Err(_) => return self.route_fallback(cx, id),
        };
        let list = if found.entries.is_empty() {
            vec![found.by.clone()]
        } else {
            // §6.5: an owner that fails the id puzzle is no answer.
            self.puzzle_prefix(found.entries)
        };
        if list.is_empty() || (self.settings.id_puzzle_bits > 0 && !self.meets_puzzle(found.by.id))
        {
            return self.route_fallback(cx, id);
        }
        let lookup = self.take_lookup(id)?;
        let found = Found {
            list,
            by: found.by,
            hops,
        };
        Some(self.finish(lookup, Ok(found)))
    }

    /// §7.2 step 5: no candidate is left. If a candidate failed that lies
    /// between the remote node that answered `Next` last and the key, that
    /// node is asked once more, by a `ChordRoute` that avoids the failed
    /// candidate nearest after it (its likely first successor): when that
    /// is its first successor and the key lies just past it, the node
    /// answers at once with the rest of its list (§7.4), which
    /// `ChordFindSuccessor` cannot tell it to do. Under churn this was
    /// nearly every failed lookup: a responder whose only candidate was
    /// its just-died first successor. Otherwise the lookup fails.
    fn ask_past_silent(&mut self, cx: &mut dyn Cx, id: u64) -> Option<Finished> {
        let lookup = self.lookups.get_mut(&id)?;
        let (key, from) = (
            lookup.key,
            lookup.last_next.as_ref().map(|p| p.id.as_u128()),
        );
        let silent = from.and_then(|from| {
            lookup
                .failed
                .iter()
                .filter(|f| ring::in_open(from, f.as_u128(), key))
                .min_by_key(|f| dist(from, f.as_u128()))
                .copied()
        });
        let target = match (&lookup.last_next, silent) {
            (Some(p), Some(_))
                if !lookup.recursive
                    && !lookup.asked_past
                    && cx
                        .peer_caps(p.id)
                        .is_none_or(|c| c.contains(Capabilities::CHORD)) =>
            {
                p.clone()
            }
            _ => return self.lookup_failed(id, LookupError::NoCandidate),
        };
        lookup.asked_past = true;
        lookup.recursive = true;
        lookup.sent += 1;
        let (ttl, to) = (self.settings.route_ttl, target.id);
        self.stats.asked_past_silent += 1;
        let call = self.call(cx, target, RingCall::Route(id), |req| {
            Message::ChordRoute(ChordRoute {
                req,
                key,
                ttl,
                avoid: silent,
            })
        });
        self.await_route_ack(cx, call, to);
        None
    }

    /// This member's own answer for `key` (§7.1, asked of itself): the
    /// owner's list, found in no hops, when the key lies just after this
    /// node; otherwise the candidates to ask next.
    fn local_answer(&self, cx: &dyn Cx, key: u128) -> Result<Found, Vec<Pointer>> {
        let me = cx.me();
        let (kind, next) = self.answer_find_successor(me, key, me);
        if kind != ChordReplyKind::Done {
            return Err(next);
        }
        let by = self.self_pointer(cx);
        let list = if next.is_empty() {
            vec![by.clone()]
        } else {
            next
        };
        Ok(Found { list, by, hops: 0 })
    }

    /// Lookup `id`'s recursive attempt failed: it goes on iteratively from
    /// this node's own candidates (§7.2), within its deadline and hop
    /// budget.
    fn route_fallback(&mut self, cx: &mut dyn Cx, id: u64) -> Option<Finished> {
        let me = cx.me();
        let key = self.lookups.get(&id)?.key;
        let answer = self.local_answer(&*cx, key);
        self.stats.route_fallbacks += 1;
        tracing::debug!(key = %NodeId::from_u128(key).short(), "recursive lookup failed; asking hop by hop");
        let next = match answer {
            // The ring changed meanwhile: the key is now just after this
            // node.
            Ok(found) => {
                let lookup = self.take_lookup(id)?;
                return Some(self.finish(lookup, Ok(found)));
            }
            Err(next) => next,
        };
        let lookup = self.lookups.get_mut(&id)?;
        lookup.recursive = false;
        lookup.tried.clear();
        lookup.candidates = next;
        lookup.closest = Some(me.as_u128());
        self.lookup_next(cx, id)
    }

    // ----- forwarding peers' recursive lookups (§7.4) -----

    /// What this node does with a recursive lookup of `key` from `from`
    /// (§7.4), having tried `tried` and told to avoid `avoid`.
    fn route_step(
        &self,
        cx: &dyn Cx,
        key: u128,
        from: NodeId,
        avoid: Option<NodeId>,
        tried: &[NodeId],
    ) -> RouteStep {
        let me = cx.me();
        let (kind, next) = self.answer_find_successor(me, key, from);
        match kind {
            ChordReplyKind::NotInRing => RouteStep::Answer(Err(ChordRouteKind::NotInRing)),
            ChordReplyKind::Done => RouteStep::Answer(Ok(ChordRouteFound {
                by: self.self_pointer(cx),
                entries: self.succs.iter().map(Finger::pointer).collect(),
            })),
            ChordReplyKind::Next => {
                if let Some(silent) = avoid
                    && let Some(found) = self.past_silent_successor(cx, silent, key)
                {
                    return RouteStep::Answer(Ok(found));
                }
                // A suspect pointer, or one being dialled, is passed over
                // while another is left ([`passed_over`]).
                let untried = |c: &&Pointer| !tried.contains(&c.id) && Some(c.id) != avoid;
                let pick = next
                    .iter()
                    .filter(untried)
                    .find(|c| !passed_over(cx, c.id))
                    .or_else(|| next.iter().find(untried))
                    .cloned();
                match pick {
                    Some(next) => RouteStep::Forward(next),
                    None => RouteStep::Answer(Err(ChordRouteKind::Failed)),
                }
            }
        }
    }

    /// `ChordRoute` from `from`: answered here if the key lies just after
    /// this node (or just after its first successor, when that is the
    /// member to avoid), else forwarded to this node's closest pointer,
    /// within the bounds on what it holds.
    pub(super) fn on_route(&mut self, cx: &mut dyn Cx, from: NodeId, route: ChordRoute) {
        let ChordRoute {
            req,
            key,
            ttl,
            avoid,
        } = route;
        let result = match self.route_step(cx, key, from, avoid, &[]) {
            RouteStep::Answer(result) => result,
            RouteStep::Forward(_) => {
                let held = self.forwards_by_peer.get(&from).copied().unwrap_or(0);
                if ttl == 0 {
                    self.stats.route_ttl_exhausted += 1;
                    Err(ChordRouteKind::Failed)
                } else if self.forwards.len() >= self.settings.max_forwards
                    || held >= self.settings.max_forwards_per_peer
                {
                    self.stats.forwards_refused += 1;
                    tracing::debug!(peer = %from.short(), held, "recursive lookup refused: forwarding bound reached");
                    Err(ChordRouteKind::Failed)
                } else {
                    let ttl = ttl.min(self.settings.route_ttl) - 1;
                    let fid = self.rpc.fresh_id();
                    self.forwards.insert(
                        fid,
                        Box::new(super::Forward {
                            from,
                            req,
                            key,
                            ttl,
                            tried: SmallVec::new(),
                            avoid,
                        }),
                    );
                    *self.forwards_by_peer.entry(from).or_default() += 1;
                    self.stats.forwarded += 1;
                    // Acknowledged before it goes on, so the sender
                    // knows within a round trip that this hop holds it.
                    if cx
                        .peer_caps(from)
                        .is_some_and(|c| c.contains(Capabilities::ROUTE_ACK))
                    {
                        let _ = cx.send(from, &Message::ChordRouteAck(ChordRouteAck { req }));
                    }
                    self.forward_next(cx, fid);
                    return;
                }
            }
        };
        let hops = u8::from(result.is_ok());
        let reply = ChordRouteReply { req, hops, result };
        let _ = cx.send(from, &Message::ChordRouteReply(reply));
    }

    /// Sends forward `fid` to the closest pointer not tried yet, answering
    /// afresh each time: a next hop that died was flushed, so if it was
    /// the first successor the key may now lie just after this node
    /// (answered `Done` here). `Failed` when no candidate is left, or after
    /// `ring::NEXT_CANDIDATES` tries.
    fn forward_next(&mut self, cx: &mut dyn Cx, fid: u64) {
        let Some(forward) = self.forwards.get(&fid) else {
            return;
        };
        let step = if forward.tried.len() >= ring::NEXT_CANDIDATES {
            RouteStep::Answer(Err(ChordRouteKind::Failed))
        } else {
            self.route_step(cx, forward.key, forward.from, forward.avoid, &forward.tried)
        };
        let next = match step {
            RouteStep::Answer(result) => {
                let hops = u8::from(result.is_ok());
                self.end_forward(cx, fid, hops, result);
                return;
            }
            RouteStep::Forward(next) => next,
        };
        let Some(forward) = self.forwards.get_mut(&fid) else {
            return;
        };
        forward.tried.push(next.id);
        let (key, ttl, avoid) = (forward.key, forward.ttl, forward.avoid);

        let timeout = self.route_timeout(ttl);
        let to = next.id;
        let call = self.call_timed(cx, next, RingCall::Forward(fid), timeout, |req| {
            Message::ChordRoute(ChordRoute {
                req,
                key,
                ttl,
                avoid,
            })
        });
        self.await_route_ack(cx, call, to);
    }

    /// A `ChordRoute` just sent as `call` to `to` must be acknowledged
    /// (§7.4) if `to` offered `ROUTE_ACK`: within four smoothed round
    /// trips of the link, at least `MIN_ROUTE_ACK` and at most a quarter
    /// of a request's time (that quarter until the link has a round-trip
    /// estimate). Unacknowledged, the call ends as silent at once, and is
    /// retried around `to` long before the hops behind give up.
    fn await_route_ack(&mut self, cx: &mut dyn Cx, call: u64, to: NodeId) {
        if !cx
            .peer_caps(to)
            .is_some_and(|c| c.contains(Capabilities::ROUTE_ACK))
        {
            return;
        }
        let most = Duration::from_micros(self.settings.request_timeout.as_micros() / 4);
        let within = match cx.link(to).and_then(|l| l.liveness.rtt()) {
            Some(srtt) => srtt.saturating_mul(4).max(MIN_ROUTE_ACK).min(most),
            None => most,
        };
        self.rpc.await_ack(cx, call, within);
    }

    /// A `ChordRouteAck` of `req` from `from`: that hop holds the lookup.
    pub(crate) fn on_route_ack(&mut self, from: NodeId, req: u64) {
        self.rpc.on_ack(from, req);
    }

    /// The next hop of forward `fid` answered or failed: relay its answer,
    /// or retry around it if it failed at once or was silent (its own next
    /// hops time out earlier than this one, so a live hop would have
    /// answered).
    pub(super) fn on_forward_outcome(
        &mut self,
        cx: &mut dyn Cx,
        fid: u64,
        peer: NodeId,
        outcome: Outcome,
        dead: bool,
    ) {
        if !self.forwards.contains_key(&fid) {
            return;
        }
        match outcome {
            Outcome::Reply(Message::ChordRouteReply(reply)) if !dead => {
                let hops = reply.hops.saturating_add(1);
                self.end_forward(cx, fid, hops, reply.result);
            }
            Outcome::Failed(crate::rpc::Failure::TimedOut) => {
                self.count_retry(&outcome);
                if let Some(forward) = self.forwards.get_mut(&fid) {
                    forward.avoid = Some(peer);
                }
                self.forward_next(cx, fid);
            }
            _ => {
                self.count_retry(&outcome);
                self.forward_next(cx, fid);
            }
        }
    }

    /// Counts a next hop routed around, by why it failed.
    fn count_retry(&mut self, outcome: &Outcome) {
        use crate::rpc::Failure;
        self.stats.route_retries += 1;
        match outcome {
            Outcome::Failed(Failure::TimedOut) => self.stats.route_retries_timed_out += 1,
            Outcome::Failed(Failure::Dead) => self.stats.route_retries_dead += 1,
            Outcome::Failed(Failure::Refused) => self.stats.route_retries_refused += 1,
            Outcome::Failed(Failure::Lost) => self.stats.route_retries_lost += 1,
            // A reply of the wrong kind, or from a peer found dead.
            Outcome::Reply(_) => {}
        }
    }

    /// A recursive lookup of `key` sent to `silent` got no answer in time.
    /// If `silent` is this node's first successor and `key` lies in
    /// (`silent`, *S*[1]], `silent` would have answered it itself (it
    /// forwards nothing there), so it is unresponsive, and the owner is
    /// the first live member after it: answered `Done` with *S* past
    /// `silent` (its Flush is left to stabilization and liveness, §4).
    fn past_silent_successor(
        &self,
        cx: &dyn Cx,
        silent: NodeId,
        key: u128,
    ) -> Option<ChordRouteFound> {
        let [s1, s2, ..] = self.succs.as_slice() else {
            return None;
        };
        if s1.id != silent || !ring::in_half_open(s1.id.as_u128(), key, s2.id.as_u128()) {
            return None;
        }
        tracing::debug!(successor = %silent.short(), "lookup answered past a silent first successor");
        Some(ChordRouteFound {
            by: self.self_pointer(cx),
            entries: self.succs[1..].iter().map(Finger::pointer).collect(),
        })
    }

    /// Ends forward `fid`, answering its asker.
    fn end_forward(
        &mut self,
        cx: &mut dyn Cx,
        fid: u64,
        hops: u8,
        result: Result<ChordRouteFound, ChordRouteKind>,
    ) {
        let Some(forward) = self.forwards.remove(&fid) else {
            return;
        };
        if let Some(held) = self.forwards_by_peer.get_mut(&forward.from) {
            *held -= 1;
            if *held == 0 {
                self.forwards_by_peer.remove(&forward.from);
            }
        }
        if self.forwards.is_empty() && self.forwards.capacity() > super::KEPT_CAPACITY {
            // A burst of forwards grew the tables; an idle member gives
            // the room back (a ring holds many idle members).
            self.forwards.shrink_to(super::KEPT_CAPACITY);
            self.forwards_by_peer.shrink_to(super::KEPT_CAPACITY);
        }
        let reply = ChordRouteReply {
            req: forward.req,
            hops,
            result,
        };
        let _ = cx.send(forward.from, &Message::ChordRouteReply(reply));
    }

    /// Forgets every forward (shutdown).
    pub(crate) fn clear_forwards(&mut self) {
        self.forwards.clear();
        self.forwards_by_peer.clear();
    }

    /// Ends lookup `id` with `reason`, if it has not ended.
    pub(crate) fn lookup_failed(&mut self, id: u64, reason: LookupError) -> Option<Finished> {
        let lookup = self.take_lookup(id)?;
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
    /// the successor list covers. The next tick comes
    /// `fingers_backoff` × `chord.fix_fingers_interval` later (§7.3): the
    /// base period while the ring moves, up to
    /// `chord.fix_fingers_backoff` times it while it does not.
    pub(super) fn fix_fingers_tick(&mut self, cx: &mut dyn Cx) {
        if !self.is_member() || cx.now() < self.fingers_due {
            // Not a member, or the timer of a tick that was brought
            // forward (`fingers_to_base`): the armed one is later.
            return;
        }
        let next = self
            .settings
            .fix_fingers_interval
            .saturating_mul(u64::from(self.fingers_backoff));
        let at = cx.now() + next;
        self.fingers_due = at;
        self.arm(cx, at, Timer::FixFingers);
        self.keep_routing_set(cx);
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
            self.stats.finger_lookups += 1;
            if let Ok(Some(finished)) =
                self.start_lookup(cx, target, LookupFor::Finger(i), Vec::new())
            {
                self.finish_locally(cx, finished);
            }
            return;
        }
    }

    /// The ring moved around this member (its successor list or its
    /// predecessor changed, a pointer was Flushed, a routing-set peer went
    /// down): fix-fingers leaves its backoff, and its next tick comes
    /// within one `chord.fix_fingers_interval` (§7.3).
    pub(super) fn fingers_to_base(&mut self, cx: &mut dyn Cx) {
        let within = self.settings.fix_fingers_interval;
        self.fingers_sooner(cx, within);
    }

    /// Resets the fix-fingers backoff, and brings the next tick forward
    /// to `within` from now if it was due later (a member only: one that
    /// is not arms its first tick when it becomes one).
    fn fingers_sooner(&mut self, cx: &mut dyn Cx, within: Duration) {
        self.fingers_backoff = 1;
        if !self.is_member() {
            return;
        }
        let at = cx.now() + within;
        if at < self.fingers_due {
            self.fingers_due = at;
            self.arm(cx, at, Timer::FixFingers);
        }
    }

    /// Connects to every member of the routing set that is neither up nor
    /// being dialled (§4): the successors past the first (which
    /// stabilization never asks), the predecessor, and fingers whose
    /// connection closed. Lookups forwarded through them then never wait
    /// for a dial.
    fn keep_routing_set(&mut self, cx: &mut dyn Cx) {
        let unreached = |id: NodeId| !cx.is_up(id) && !cx.is_dialling(id);
        let set: Vec<Pointer> = self
            .succs
            .iter()
            .chain(self.pred.as_ref())
            .filter(|p| unreached(p.id))
            .map(Finger::pointer)
            .chain(
                self.fingers
                    .iter()
                    .filter(|(_, f)| unreached(f.id))
                    .map(|(_, f)| f.pointer()),
            )
            .collect();
        for p in set {
            let _ = cx.dial_pointer(&p);
        }
    }

    pub(super) fn finger_found(&mut self, cx: &mut dyn Cx, i: u8, owner: Option<Pointer>) {
        let before = self
            .fingers
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, p)| p.id);
        self.fingers.retain(|(j, _)| *j != i);
        let kept = owner
            .as_ref()
            .map(|o| o.id)
            .filter(|&o| o != cx.me() && !self.succs.iter().any(|s| s.id == o));
        if kept != before {
            // The ring moved under this finger: the next ones likely moved
            // too (a member that just joined, a ring that grew), so the
            // next tick comes sooner (§7.3).
            let interval = self.settings.fix_fingers_interval;
            let sooner = Duration::from_micros(interval.as_micros() / FINGERS_MOVED_SPEEDUP);
            self.fingers_sooner(cx, sooner);
        } else {
            // Where it was: fingers only serve speed, and a ring that does
            // not move needs them checked less and less often (§7.3).
            self.fingers_backoff = self
                .fingers_backoff
                .saturating_mul(2)
                .min(self.settings.fix_fingers_backoff);
        }
        let Some(owner) = owner else { return };
        if kept.is_none() {
            return;
        }
        let known = self.fingers.iter().any(|(_, f)| f.id == owner.id);
        if !known && self.finger_ids().len() >= self.settings.max_fingers {
            self.stats.fingers_refused += 1;
            tracing::debug!(finger = i, "finger not kept: chord.max_fingers reached");
            return;
        }
        let at = self.fingers.partition_point(|(j, _)| *j < i);
        cx.learn(&owner);
        // A finger joins the routing set: connect now, so that lookups
        // forwarded through it never wait for a dial (§7.4).
        if !cx.is_up(owner.id) && !cx.is_dialling(owner.id) {
            let _ = cx.dial_pointer(&owner);
        }
        // Two more at a time, not double: a member holds ~14 fingers of
        // 40 bytes, and a doubled vector kept up to 16 of them.
        if self.fingers.len() == self.fingers.capacity() {
            self.fingers.reserve_exact(FINGERS_GROW);
        }
        self.fingers.insert(at, (i, Finger::new(owner)));
    }
}

/// Spare slots the finger list grows by when it is full.
const FINGERS_GROW: usize = 2;

/// The shortest wait for a `ChordRouteAck` (§7.4), whatever the link's
/// round trip: a hop's scheduling and its sends take time too.
const MIN_ROUTE_ACK: Duration = Duration::from_millis(50);

/// Whether routing passes `peer` over while another candidate is left
/// (§7.4): it is suspect to liveness (a ping or a request to it went
/// unanswered, and it is being probed), or it has no session and a dial
/// to it is under way (a finger never used yet, or one that went away: a
/// dial to a crashed host takes the transport's connect timeout to fail,
/// longer than a lookup waits).
fn passed_over(cx: &dyn Cx, peer: NodeId) -> bool {
    match cx.link(peer) {
        Some(link) => link.liveness.is_suspect(),
        None => cx.is_dialling(peer),
    }
}
