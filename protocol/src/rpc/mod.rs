//! The request layer: calls to a peer that wait for a reply (spec/chord.md
//! §4, spec/messaging.md).
//!
//! An [`Rpc`] is a table of calls, each with an id (the `req` or `id` field
//! of its message), a deadline, the peer it went to, and an opaque
//! continuation `C` that its owner reads back when the call ends. It
//! matches a reply to its call only when it comes from the peer the call
//! went to; anything else is counted as late. Every call ends exactly once,
//! in an [`Outcome`], and never inside the call that made it: a call that
//! fails at once (its peer cannot be dialled, or lacks the capability the
//! call needs) fails at its next deadline, so a continuation never runs
//! inside the code that made the call.
//!
//! Two ways to start a call:
//!
//! - [`Rpc::call`]: the layer delivers it. If the peer is not up it dials
//!   the peer's addresses, demanding its id, and sends on connect. If the
//!   connection it went out on closes without evidence that the peer died,
//!   the layer sends it again ([`OnLost::Resend`]). Chord and the table use
//!   this.
//! - [`Rpc::track`]: the caller delivered the message (or holds it until
//!   the peer is found); the layer keeps the deadline and matches the
//!   reply. Application requests use this: messaging finds unconnected
//!   peers itself, through the peer cache, the ring and its neighbours.
//!
//! Replies to a peer's calls go out on the peer's current connection
//! ([`Cx::send`]), not the one the call came on, which may be a duplicate
//! being retired.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::NodeId;
use crate::cx::Cx;
use crate::peers::Addrs;
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::{Capabilities, Message, PeerEntry};

/// How a call ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The peer answered.
    Reply(Message),
    /// It did not.
    Failed(Failure),
}

/// Why a call ended without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No reply within the call's timeout.
    TimedOut,
    /// The peer is dead to the caller: every dial to it failed, its session
    /// lacks the capability the call needs, or its owner declared it dead.
    Dead,
    /// A local cap refused the dial or the frame; nothing is known about
    /// the peer.
    Refused,
    /// The connection it went out on closed ([`OnLost::Fail`]).
    Lost,
}

/// What a lost connection does to the calls that went out on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLost {
    /// Send them again (dialling if needed): the reply may have been lost
    /// with the connection, and the peer may well be alive.
    Resend,
    /// End them with [`Failure::Lost`].
    Fail,
}

/// The layer's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// Call `id`'s timeout, or its early failure.
    Expire { id: u64 },
    /// Call `id` must have been acknowledged by now ([`Rpc::await_ack`]).
    Ack { id: u64 },
}

/// A call that ended, handed back to its owner.
#[derive(Debug)]
pub(crate) struct Done<C> {
    pub(crate) id: u64,
    /// The peer it went to.
    pub(crate) peer: PeerEntry,
    pub(crate) client: C,
    pub(crate) outcome: Outcome,
    /// When the call was made.
    pub(crate) sent_at: Instant,
}

/// A call that ended, before its outcome is attached ([`Rpc::answered`]).
#[derive(Debug)]
pub(crate) struct Ended<C> {
    pub(crate) id: u64,
    /// The peer it went to.
    pub(crate) peer: PeerEntry,
    pub(crate) client: C,
    /// When the call was made.
    pub(crate) sent_at: Instant,
}

impl<C> Ended<C> {
    fn with(self, outcome: Outcome) -> Done<C> {
        Done {
            id: self.id,
            peer: self.peer,
            client: self.client,
            outcome,
            sent_at: self.sent_at,
        }
    }
}

/// Whether `timer` still guards a call of `calls`.
fn live<C>(calls: &HashMap<u64, Box<Call<C>>, FixedState>, timer: &Timer) -> bool {
    match *timer {
        Timer::Expire { id } => calls.contains_key(&id),
        Timer::Ack { id } => calls.get(&id).is_some_and(|c| c.awaits_ack),
    }
}

/// Calls an empty table keeps room for (see [`Rpc::take`]).
const KEPT_CALLS: usize = 7;

struct Call<C> {
    /// The peer it goes to, and its addresses in the peer cache's 16-byte
    /// form (a `PeerEntry` takes 56: the call 272 bytes, mimalloc's
    /// 288-byte class, where it is 248 now, the 256-byte class; a member
    /// of a ring doing lookups holds a few calls a hop it forwards).
    peer: NodeId,
    addrs: Addrs,
    client: C,
    /// What it sends, kept to send it again; `None` for tracked calls.
    /// (Values are shared, not copied.)
    message: Option<Message>,
    /// What the peer's session must have negotiated.
    needs: Capabilities,
    /// A one-way message waiting for its connection ends once sent.
    expects_reply: bool,
    /// Not sent yet: its peer is being dialled.
    unsent: bool,
    /// Failed before its timeout; handled at its next deadline.
    failed: Option<Failure>,
    /// Awaits an acknowledgement ([`Rpc::await_ack`]).
    awaits_ack: bool,
    sent_at: Instant,
}

impl<C> Call<C> {
    /// The peer's entry, its addresses in the order they were given.
    fn entry(&self) -> PeerEntry {
        PeerEntry {
            id: self.peer,
            addrs: self.addrs.iter().collect(),
        }
    }
}

/// A table of calls. See the module docs.
pub(crate) struct Rpc<C> {
    /// Boxed: a call is about 300 bytes (its message kept for a resend,
    /// its peer's entry), and an idle table keeps room for
    /// [`KEPT_CALLS`] in every member of a ring.
    calls: HashMap<u64, Box<Call<C>>, FixedState>,
    next_id: u64,
    on_lost: OnLost,
    pub(crate) timers: DeadlineQueue<Timer>,
    /// Replies that matched no call (late, or from the wrong peer).
    pub(crate) late_replies: u64,
    /// Calls that ended because their acknowledgement did not come in
    /// time ([`Rpc::await_ack`]).
    pub(crate) acks_missed: u64,
}

impl<C> Rpc<C> {
    /// An empty table whose first id is `first_id`.
    pub(crate) fn new(first_id: u64, on_lost: OnLost, hasher: FixedState) -> Self {
        Rpc {
            calls: HashMap::with_hasher(hasher),
            next_id: first_id,
            on_lost,
            timers: DeadlineQueue::new(),
            late_replies: 0,
            acks_missed: 0,
        }
    }

    /// A fresh id from the calls' id space (lookups share it, so that ids
    /// on the wire never repeat).
    pub(crate) fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The id the next call or [`Rpc::fresh_id`] gets.
    pub(crate) fn peek_id(&self) -> u64 {
        self.next_id
    }

    /// Calls awaiting their end.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether call `id` has not ended.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.calls.contains_key(&id)
    }

    /// Whether any call to `peer` has not ended.
    pub(crate) fn has_call_to(&self, peer: NodeId) -> bool {
        self.calls.values().any(|c| c.peer == peer)
    }

    fn arm(&mut self, cx: &mut dyn Cx, at: Instant, timer: Timer) {
        let seq = cx.timer_seq();
        self.timers.push_seq(at, seq, timer);
    }

    /// Calls `to` with the message `build(id)` and returns `id`; the layer
    /// delivers it (see the module docs). `needs` is what `to`'s session
    /// must have negotiated; without `expects_reply` the call ends once
    /// sent. The outcome comes back through [`Rpc::on_reply`],
    /// [`Rpc::fire`] or [`Rpc::take`], never within this call.
    #[allow(clippy::too_many_arguments)] // each says something different about the call
    pub(crate) fn call(
        &mut self,
        cx: &mut dyn Cx,
        to: PeerEntry,
        client: C,
        needs: Capabilities,
        expects_reply: bool,
        timeout: Duration,
        build: impl FnOnce(u64) -> Message,
    ) -> u64 {
        let id = self.fresh_id();
        let message = build(id);
        self.calls.insert(
            id,
            Box::new(Call {
                peer: to.id,
                addrs: to.addrs.into_iter().collect(),
                client,
                message: Some(message),
                needs,
                expects_reply,
                unsent: true,
                failed: None,
                awaits_ack: false,
                sent_at: cx.now(),
            }),
        );
        let at = cx.now() + timeout;
        self.arm(cx, at, Timer::Expire { id });
        self.deliver(cx, id);
        id
    }

    /// Records a call the caller has sent (or will send once its peer is
    /// found) as the next id, with its deadline; returns the id.
    pub(crate) fn track(
        &mut self,
        cx: &mut dyn Cx,
        to: NodeId,
        client: C,
        timeout: Duration,
    ) -> u64 {
        let id = self.fresh_id();
        self.calls.insert(
            id,
            Box::new(Call {
                peer: to,
                addrs: Addrs::None,
                client,
                message: None,
                needs: Capabilities::NONE,
                expects_reply: true,
                unsent: false,
                failed: None,
                awaits_ack: false,
                sent_at: cx.now(),
            }),
        );
        let at = cx.now() + timeout;
        self.arm(cx, at, Timer::Expire { id });
        id
    }

    /// Call `id`, sent already, must be acknowledged within `within`
    /// ([`Rpc::on_ack`]), or it ends then as `TimedOut` (counted in
    /// `acks_missed`): the peer did not even take it. Nothing for a call
    /// not sent yet (its peer is being dialled) or ended already.
    pub(crate) fn await_ack(&mut self, cx: &mut dyn Cx, id: u64, within: Duration) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.unsent || call.failed.is_some() {
            return;
        }
        call.awaits_ack = true;
        let at = cx.now() + within;
        self.arm(cx, at, Timer::Ack { id });
    }

    /// An acknowledgement of call `id` arrived from `from`: the call waits
    /// on for its reply until its deadline. Ignored unless it is a call of
    /// ours that went to `from`.
    pub(crate) fn on_ack(&mut self, from: NodeId, id: u64) {
        if let Some(call) = self.calls.get_mut(&id)
            && call.peer == from
        {
            call.awaits_ack = false;
        }
    }

    /// Sends call `id`'s message now if its peer is up, or dials the peer.
    fn deliver(&mut self, cx: &mut dyn Cx, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.unsent = true;
        let to = call.peer;
        if cx.is_up(to) {
            let failure = if !cx.peer_caps(to).is_some_and(|c| c.contains(call.needs)) {
                // A peer without the capability cannot be what the call
                // wants (a chord call to a node that is not a ring member).
                Some(Failure::Dead)
            } else if call
                .message
                .as_ref()
                .is_some_and(|m| cx.send(to, m).is_err())
            {
                Some(Failure::Refused)
            } else {
                None
            };
            match failure {
                Some(failure) => self.fail_early(cx, id, failure),
                None if !call.expects_reply => {
                    self.calls.remove(&id);
                }
                None => call.unsent = false,
            }
            return;
        }
        // Wait only on a dial begun since the call was made: an older one
        // (a redial) may have gone out before the peer restarted, and its
        // failure, or the call's timeout while waiting on it, would make a
        // live peer dead (spec/chord.md §12.4). Otherwise dial afresh.
        if !cx.is_dialling_since(to, call.sent_at) && !cx.dial_pointer(&call.entry()) {
            self.fail_early(cx, id, Failure::Refused);
        }
    }

    /// Fails call `id` at its next deadline, now.
    fn fail_early(&mut self, cx: &mut dyn Cx, id: u64, failure: Failure) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.failed = Some(failure);
            let now = cx.now();
            self.arm(cx, now, Timer::Expire { id });
        }
    }

    /// Whether `timer` still guards a call.
    pub(crate) fn is_live(&self, timer: &Timer) -> bool {
        live(&self.calls, timer)
    }

    /// Drops cancelled timers.
    pub(crate) fn tidy_timers(&mut self) {
        let calls = &self.calls;
        self.timers.tidy(|timer| live(calls, timer));
    }

    /// A timer fired: the call's timeout, its early failure, or its
    /// acknowledgement missed.
    pub(crate) fn fire(&mut self, timer: Timer) -> Option<Done<C>> {
        match timer {
            Timer::Expire { id } => {
                let failure = self.calls.get(&id)?.failed.unwrap_or(Failure::TimedOut);
                self.take(id, Outcome::Failed(failure))
            }
            Timer::Ack { id } => {
                if !self.calls.get(&id)?.awaits_ack {
                    return None;
                }
                self.acks_missed += 1;
                self.take(id, Outcome::Failed(Failure::TimedOut))
            }
        }
    }

    /// Ends call `id` with `outcome`, if it has not ended.
    pub(crate) fn take(&mut self, id: u64, outcome: Outcome) -> Option<Done<C>> {
        self.remove(id).map(|ended| ended.with(outcome))
    }

    /// Ends call `id`, if it has not ended, handing back what the owner
    /// needs of it.
    fn remove(&mut self, id: u64) -> Option<Ended<C>> {
        let call = self.calls.remove(&id)?;
        if self.calls.is_empty() && self.calls.capacity() > KEPT_CALLS {
            // A burst of calls grew the table; an idle node gives the room
            // back (a simulation holds many idle nodes).
            self.calls.shrink_to(KEPT_CALLS);
        }
        Some(Ended {
            id,
            peer: call.entry(),
            client: call.client,
            sent_at: call.sent_at,
        })
    }

    /// A reply to call `id` arrived from `from`: the call's end, if it is
    /// one of ours that went to `from` (a peer cannot end another peer's
    /// call).
    pub(crate) fn on_reply(&mut self, from: NodeId, id: u64, message: Message) -> Option<Done<C>> {
        self.answered(from, id)
            .map(|ended| ended.with(Outcome::Reply(message)))
    }

    /// [`Rpc::on_reply`] without the reply: for an owner that takes the
    /// reply apart itself (a `Message` is 176 bytes, and every move of it
    /// through `Outcome` and `Done` is a `memcpy` call).
    pub(crate) fn answered(&mut self, from: NodeId, id: u64) -> Option<Ended<C>> {
        match self.calls.get(&id) {
            Some(c) if c.peer == from && !c.unsent => self.remove(id),
            _ => {
                self.late_replies += 1;
                None
            }
        }
    }

    /// Calls to `peer`, in id order, that `keep` selects.
    fn calls_to(&self, peer: NodeId, keep: impl Fn(&Call<C>) -> bool) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.peer == peer && keep(c))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every call to `peer`, in id order (to end them all when it dies: end
    /// each with [`Rpc::take`] in turn, as earlier ones' continuations may
    /// make new calls).
    pub(crate) fn all_to(&self, peer: NodeId) -> Vec<u64> {
        self.calls_to(peer, |_| true)
    }

    /// `peer` came up: send what waited for it.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        if self.calls.is_empty() {
            return;
        }
        for id in self.calls_to(peer, |c| c.unsent) {
            self.deliver(cx, id);
        }
    }

    /// Whether a call waits for a connection to `peer` (when every dial to
    /// it failed, the peer is dead to the caller).
    pub(crate) fn waits_for(&self, peer: NodeId) -> bool {
        self.calls.values().any(|c| c.peer == peer && c.unsent)
    }

    /// `peer`'s last connection closed without evidence of death: the
    /// replies in flight are lost. With [`OnLost::Resend`] the calls go
    /// again (and the dial decides); with [`OnLost::Fail`] they end, in id
    /// order.
    pub(crate) fn peer_down(&mut self, cx: &mut dyn Cx, peer: NodeId) -> Vec<Done<C>> {
        let ids = self.calls_to(peer, |c| !c.unsent);
        match self.on_lost {
            OnLost::Resend => {
                for id in ids {
                    self.deliver(cx, id);
                }
                Vec::new()
            }
            OnLost::Fail => ids
                .into_iter()
                .filter_map(|id| self.take(id, Outcome::Failed(Failure::Lost)))
                .collect(),
        }
    }

    /// Ends every call, in id order, with `failure` (shutdown).
    pub(crate) fn drain(&mut self, failure: Failure) -> Vec<Done<C>> {
        let mut ids: Vec<u64> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.take(id, Outcome::Failed(failure)))
            .collect()
    }

    /// Ends call `id` without an outcome (its owner already told the
    /// application); whether it had not ended.
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        self.calls.remove(&id).is_some()
    }

    /// Forgets every call without ending it.
    pub(crate) fn clear(&mut self) {
        self.calls.clear();
    }
}

#[cfg(test)]
mod layout_tests {
    use core::mem::size_of;

    /// A call in flight is boxed, a few of them for every hop a member
    /// forwards: the peer's addresses in 16 bytes make it 248 bytes
    /// (mimalloc's 256-byte class), where a `PeerEntry` made it 272 (the
    /// 288; benches/README.md, "A member's links, compacted").
    #[test]
    fn a_call_keeps_its_size() {
        assert_eq!(size_of::<super::Call<crate::chord::RingCall>>(), 256);
    }

    /// What a call gives back of its peer (to dial it, and in its end) is
    /// the entry it was made with: the same id, the same addresses in the
    /// same order, whatever their number and family.
    #[test]
    fn a_call_gives_back_its_peers_entry() {
        use core::net::SocketAddr;

        use crate::NodeId;
        use crate::time::Instant;
        use crate::wire::{Capabilities, PeerEntry};

        let v4: SocketAddr = "10.0.0.1:4000".parse().expect("an address");
        let v6: SocketAddr = "[2001:db8::1]:4001".parse().expect("an address");
        for addrs in [vec![], vec![v4], vec![v6], vec![v6, v4, v4]] {
            let entry = PeerEntry {
                id: NodeId::from_u128(9),
                addrs: addrs.iter().copied().collect(),
            };
            let call = super::Call {
                peer: entry.id,
                addrs: entry.addrs.clone().into_iter().collect(),
                client: (),
                message: None,
                needs: Capabilities::NONE,
                expects_reply: true,
                unsent: false,
                failed: None,
                awaits_ack: false,
                sent_at: Instant::ZERO,
            };
            assert_eq!(call.entry(), entry);
            assert_eq!(call.entry().addrs.as_slice(), addrs.as_slice());
        }
    }
}
