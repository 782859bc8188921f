//! The `chord` component (spec/chord.md): the ring of Zave's corrected
//! Chord, its lookups and fingers.
//!
//! - `ring.rs`: the pure rules (intervals, `clip`, rectify, the lookup
//!   responder).
//! - `maintain.rs`: starting or joining a ring, stabilization, rectify (a
//!   notifier is checked before it becomes the predecessor), and what a
//!   dead peer does to the pointers (§4–§6).
//! - `merge.rs`: rings that merge (§6.7): suspects, merge lookups, and
//!   the union of successor lists.
//! - `puzzle.rs`: the optional static id puzzle (§6.5).
//! - `lookup.rs`: lookups (recursive over the routing set, §7.4, with the
//!   iterative walk of §7.2 as fallback), forwarding peers' recursive
//!   lookups within bounds, lazy fingers, routing to a node (§7, §9).
//! - `respond.rs`: answering the chord messages, and their replies.
//!
//! The ring's requests (chord's own and its clients', the table's) share
//! one table of the request layer ([`Rpc`]): a member that fails one is
//! dead to all of them. The component knows nothing of its clients: a
//! client's lookups and requests carry an opaque `u64` that comes back with
//! their end, and the client hears of ring changes through
//! [`RingObserver`].

mod api;
pub(crate) mod config;
mod lookup;
mod maintain;
mod merge;
mod puzzle;
mod respond;
pub(crate) mod ring;

pub use api::{
    ChordCommand, ChordError, ChordEvent, ChordPending, ChordRole, ChordStats, LookupError,
};
pub use config::ChordConfig;
pub use puzzle::{ID_PUZZLE_CONTEXT, MAX_ID_PUZZLE_BITS, grind_identity, meets_id_puzzle};

use core::net::SocketAddr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::cx::Cx;
use crate::peers::Addrs;
use crate::rng::{Rng, Stream};
use crate::rpc::{Done, OnLost, Rpc};
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::{Capabilities, Message, PeerEntry};
use crate::{NodeId, OpId};

/// A pointer: a ring node and where to dial it.
pub(crate) type Pointer = PeerEntry;

/// A finger as the ring keeps it: the node and its addresses in the peer
/// cache's 16-byte form, 32 bytes where a [`Pointer`] takes 56 (its
/// addresses a `SmallVec` of 40). A member keeps ~14 fingers, and a
/// finger is read back as a pointer only to dial it or to hand it on.
#[derive(Debug, Clone)]
pub(crate) struct Finger {
    pub(crate) id: NodeId,
    addrs: Addrs,
}

impl Finger {
    fn new(pointer: Pointer) -> Self {
        Finger {
            id: pointer.id,
            addrs: pointer.addrs.into_iter().collect(),
        }
    }

    /// The pointer it was made from (the same addresses, in order).
    pub(crate) fn pointer(&self) -> Pointer {
        PeerEntry {
            id: self.id,
            addrs: self.addrs.iter().collect(),
        }
    }
}

/// The entry for `id` with `addrs`.
pub(crate) fn pointer(id: NodeId, addrs: &[SocketAddr]) -> Pointer {
    PeerEntry {
        id,
        addrs: addrs.iter().copied().collect(),
    }
}

/// Positions of a list of pointers.
pub(crate) fn positions(list: &[Pointer]) -> SmallVec<[u128; 8]> {
    list.iter().map(|p| p.id.as_u128()).collect()
}

/// What a ring request is for; its reply or failure continues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingCall {
    /// §6.2 step 1: `ChordGetState` to the first successor.
    Stabilize,
    /// §6.2 step 4: `ChordGetState` to the successor's predecessor.
    StabilizePred,
    /// §6.3: is the old predecessor still a member placing this node?
    Probe,
    /// §6.3: is the notifier a live member placing this node? (Checked
    /// before it is adopted as predecessor.)
    CheckNotifier,
    /// A `ChordNotify` waiting for its connection (no reply).
    Notify,
    /// One hop of lookup `u64`.
    Hop(u64),
    /// Lookup `u64`'s recursive attempt: a `ChordRoute` to its first hop
    /// (§7.4).
    Route(u64),
    /// A peer's recursive lookup that this node forwarded: forward `u64`.
    Forward(u64),
    /// A client's request, with the client's own token.
    Client(u64),
}

/// What started a lookup, and so where its result goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupFor {
    /// `ChordCommand::Lookup`.
    Command(OpId),
    /// `ChordCommand::Join`: the node's own id.
    Join,
    /// Finger `i`.
    Finger(u8),
    /// A message waits for node `T` (spec/chord.md §9).
    Route(NodeId),
    /// A client's lookup, with the client's own token.
    Client(u64),
    /// A merge lookup of the node's own id, started at suspect `NodeId`
    /// (§6.7).
    Merge(NodeId),
}

/// A lookup's result: the list L the last hop gave, the node that answered
/// `Done`, and the hops it took.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) list: Vec<Pointer>,
    pub(crate) by: Pointer,
    pub(crate) hops: u32,
}

/// A lookup that ended, for whatever started it. The peers it dialled
/// only for itself may be closed first, if nothing else needs them.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) key: u128,
    pub(crate) purpose: LookupFor,
    pub(crate) result: Result<Found, LookupError>,
    pub(crate) dialled: SmallVec<[NodeId; 2]>,
}

/// What [`Chord::route`] did.
#[derive(Debug)]
pub(crate) enum RouteStart {
    /// Not a member: the ring cannot help.
    Unavailable,
    /// A lookup is under way; its end comes as [`LookupFor::Route`].
    Started,
    /// The node knew at once.
    Found(Result<Found, LookupError>),
}

/// One iterative `find_successor` (spec/chord.md §7.2).
struct Lookup {
    key: u128,
    purpose: LookupFor,
    /// The closest node that answered `Next`.
    closest: Option<u128>,
    /// Still to ask, closest to the key first.
    candidates: Vec<Pointer>,
    /// Candidates asked (a recursive lookup asks one, its first hop; an
    /// iterative one a few more, spilled to the heap past two).
    tried: SmallVec<[NodeId; 2]>,
    sent: u32,
    hops: u32,
    /// Peers dialled only for this lookup: closed when it ends unless they
    /// became pointers.
    dialled: SmallVec<[NodeId; 2]>,
    /// Still in its recursive attempt (§7.4); an iterative lookup (§7.2)
    /// once that failed, or from the start when not a member.
    recursive: bool,
    /// The remote node that answered `Next` last (`closest`, with its
    /// addresses), asked again past a silent candidate it gave (§7.2
    /// step 5).
    last_next: Option<Pointer>,
    /// That node was asked again already (once per lookup).
    asked_past: bool,
    /// Candidates asked hop by hop that failed (dead, refused, silent).
    failed: SmallVec<[NodeId; 2]>,
}

/// The first hops of a recursive lookup, whose deadlines shrink by more than
/// a round trip each (§7.4).
const ROUTE_HEAD: u8 = 8;

/// A peer's recursive lookup this node holds: forwarded to one of its own
/// pointers, awaiting that hop's answer to relay back (§7.4).
struct Forward {
    /// Who asked, and its `req`.
    from: NodeId,
    req: u64,
    key: u128,
    /// The `ttl` the next hop gets.
    ttl: u8,
    /// Next hops tried (at most `ring::NEXT_CANDIDATES`; one inline, as a
    /// hop is retried only around a failed next hop).
    tried: SmallVec<[NodeId; 1]>,
    /// A member found silent on this lookup's path (by its asker, or by
    /// this node when its next hop timed out): neither forwarded to nor
    /// counted as this node's first successor, and passed on.
    avoid: Option<NodeId>,
}

/// Told of ring changes, synchronously, by the component that keeps the
/// ring (the table: hand-off and repair follow the ring).
pub(crate) trait RingObserver {
    /// The node became a member.
    fn joined(&mut self, cx: &mut dyn Cx);
    /// The successor list or the predecessor changed.
    fn ring_changed(&mut self, cx: &mut dyn Cx, ring: &mut Chord);
    /// The predecessor changed from `old`.
    fn predecessor_changed(&mut self, cx: &mut dyn Cx, ring: &mut Chord, old: Option<NodeId>);
}

/// The component's timers (its requests' deadlines are the request
/// layer's).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// Stabilize (this generation of the timer).
    Stabilize { generation: u64 },
    /// Refresh one finger.
    FixFingers,
    /// Lookup `id`'s deadline.
    Lookup { id: u64 },
    /// The merge tick (§6.7).
    Merge,
}

/// The component's settings, from `Config`.
struct Settings {
    stabilize_interval: Duration,
    request_timeout: Duration,
    fix_fingers_interval: Duration,
    fix_fingers_backoff: u32,
    max_hops: u32,
    max_lookups: usize,
    lookup_timeout: Duration,
    route_ttl: u8,
    max_forwards: usize,
    max_forwards_per_peer: usize,
    max_fingers: usize,
    id_puzzle_bits: u8,
    merge_interval: Duration,
    merge_forget: Duration,
    max_merge_suspects: usize,
    /// This member's own pointer's addresses (one inline, as a pointer's).
    listen_addrs: crate::wire::ListenAddrs,
}

/// A fix-fingers tick comes this many times sooner after one that moved a
/// finger (spec/chord.md §7.3): a table that is still wrong is fixed in a
/// quarter of the time; a stable one backs off instead
/// (`chord.fix_fingers_backoff`).
pub(crate) const FINGERS_MOVED_SPEEDUP: u64 = 4;

/// Entries an empty table of lookups, forwards or requests keeps room for;
/// a larger one, grown by a burst, gives the rest back when it empties.
pub(crate) const KEPT_CAPACITY: usize = 7;

/// A ring request in flight, by its id: the ring's ids start at 1
/// (`Rpc::new(1, ..)` in [`Chord::new`]) and only grow, so none is 0, and
/// an `Option<NonZeroU64>` takes 8 bytes where an `Option<u64>` takes 16.
type InFlight = Option<core::num::NonZeroU64>;

/// The [`InFlight`] of request `req`.
fn in_flight(req: u64) -> InFlight {
    let id = core::num::NonZeroU64::new(req);
    debug_assert!(id.is_some(), "ring request ids start at 1");
    id
}

/// The component (spec/chord.md §3).
///
/// Boxed in every member: its 1,008 bytes fit the allocator's 1,024-byte
/// class (mimalloc's; 1,088 took a 1,280-byte block), kept so by
/// `layout_tests`.
pub(crate) struct Chord {
    role: ChordRole,
    r: usize,
    /// The successor list, nearest first, and the predecessor, each kept
    /// as a finger is (32 bytes where a [`Pointer`] takes 56; read back as
    /// a pointer only to dial it, hand it on or suspect it): a member keeps
    /// `r` successors, and a grown list was a vector of `Pointer`s.
    succs: Vec<Finger>,
    pred: Option<Finger>,
    /// Finger index → pointer, sorted by index; only fingers outside the
    /// successor list are kept.
    fingers: Vec<(u8, Finger)>,
    /// The request of the stabilization in flight.
    stabilizing: InFlight,
    /// Stabilizations started at once in a row after dropping a dead first
    /// successor (at most `r`).
    quick_restabilize: usize,
    /// Bumped whenever a stabilize timer is set, so older ones lapse.
    stabilize_generation: u64,
    /// The rectify request in flight (§6.3): a probe of the old
    /// predecessor, or the check of `checking`.
    rectifying: InFlight,
    /// The notifier whose state is being checked (kept as a finger is).
    checking: Option<Finger>,
    /// The closest notifier that arrived while a rectify request was in
    /// flight; rectified when it ends (kept as a finger is).
    waiting_notifier: Option<Finger>,
    /// The finger index the next fix-fingers tick starts from.
    next_finger: u8,
    /// The fix-fingers period now, in multiples of
    /// `chord.fix_fingers_interval` (§7.3): doubled by each finger found
    /// where it was, up to `chord.fix_fingers_backoff`; back to 1 when a
    /// finger moves or the ring changes around this member.
    fingers_backoff: u32,
    /// When the armed fix-fingers tick is due. A tick brought forward
    /// leaves its older timer behind, which finds this later than its own
    /// time and does nothing.
    fingers_due: Instant,
    /// Boxed: a lookup is over 500 bytes, and an idle table keeps room
    /// for [`KEPT_CAPACITY`] in every member of a ring.
    lookups: HashMap<u64, Box<Lookup>, FixedState>,
    /// Peers' recursive lookups held, by the id of the call forwarding
    /// each (at most `chord.max_forwards`); boxed, as lookups are (144
    /// bytes each).
    forwards: HashMap<u64, Box<Forward>, FixedState>,
    /// Forwards held per asking peer (at most `chord.max_forwards_per_peer`
    /// each); a peer leaves the map at zero.
    forwards_by_peer: HashMap<NodeId, usize, FixedState>,
    /// The ring's requests (chord's and its clients').
    pub(crate) rpc: Rpc<RingCall>,
    /// Suspects and the merge lookup (§6.7).
    merge: merge::MergeState,
    rng: Rng,
    settings: Settings,
    pub(crate) timers: DeadlineQueue<Timer>,
    pub(crate) stats: ChordStats,
}

/// The ring for a call that may need one: the node's, or on a node
/// without a ring an off [`Chord`] (as [`Chord::new`] without a config
/// builds it), built only when [`MaybeChord::get`] is called. Building
/// one derives a key: a message to a connected peer, which never asks,
/// costs none.
pub(crate) struct MaybeChord<'a> {
    ring: Option<&'a mut Chord>,
    off: Option<Chord>,
}

impl<'a> MaybeChord<'a> {
    pub(crate) fn new(ring: Option<&'a mut Chord>) -> Self {
        MaybeChord { ring, off: None }
    }

    /// The node's ring, or the off one (built at the first call).
    pub(crate) fn get(&mut self) -> &mut Chord {
        match &mut self.ring {
            Some(chord) => chord,
            None => self
                .off
                .get_or_insert_with(|| Chord::new(None, &[], 0, FixedState::default())),
        }
    }
}

impl Chord {
    /// The component; `config` is `None` when the node does not run the
    /// ring.
    pub(crate) fn new(
        config: Option<&ChordConfig>,
        listen_addrs: &[SocketAddr],
        seed: u64,
        hasher: FixedState,
    ) -> Self {
        let role = if config.is_some() {
            ChordRole::Out
        } else {
            ChordRole::Off
        };
        let config = config.cloned().unwrap_or_default();
        Chord {
            role,
            r: config.successors,
            succs: Vec::new(),
            pred: None,
            fingers: Vec::new(),
            stabilizing: None,
            quick_restabilize: 0,
            stabilize_generation: 0,
            rectifying: None,
            checking: None,
            waiting_notifier: None,
            next_finger: 127,
            fingers_backoff: 1,
            fingers_due: Instant::ZERO,
            lookups: HashMap::with_hasher(hasher.clone()),
            forwards: HashMap::with_hasher(hasher.clone()),
            forwards_by_peer: HashMap::with_hasher(hasher.clone()),
            rpc: Rpc::new(1, OnLost::Resend, hasher),
            merge: merge::MergeState::default(),
            rng: Rng::derive(seed, Stream::Chord, None),
            settings: Settings {
                stabilize_interval: config.stabilize_interval,
                request_timeout: config.request_timeout,
                fix_fingers_interval: config.fix_fingers_interval,
                fix_fingers_backoff: config.fix_fingers_backoff.max(1),
                max_hops: config.max_hops,
                max_lookups: config.max_lookups,
                lookup_timeout: config.lookup_timeout,
                route_ttl: config.route_ttl,
                max_forwards: config.max_forwards,
                max_forwards_per_peer: config.max_forwards_per_peer,
                max_fingers: config.max_fingers,
                id_puzzle_bits: config.id_puzzle_bits,
                merge_interval: config.merge_interval,
                merge_forget: config.merge_forget,
                max_merge_suspects: config.max_merge_suspects,
                listen_addrs: listen_addrs.iter().copied().collect(),
            },
            timers: DeadlineQueue::new(),
            stats: ChordStats::default(),
        }
    }

    // ----- the view other components read -----

    /// Where this node stands towards the ring.
    pub(crate) fn role(&self) -> ChordRole {
        self.role
    }

    pub(crate) fn is_member(&self) -> bool {
        self.role == ChordRole::Member
    }

    /// The successor list, nearest first.
    pub(crate) fn successors(&self) -> &[Finger] {
        &self.succs
    }

    /// The predecessor, if known.
    pub(crate) fn predecessor(&self) -> Option<&Finger> {
        self.pred.as_ref()
    }

    /// Distinct finger targets, by finger index.
    pub(crate) fn finger_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.fingers.iter().map(|(_, p)| p.id).collect();
        ids.dedup();
        ids
    }

    /// Lookup `id`, no longer in flight. The table gives its room back
    /// when it empties: a lookup is over 500 bytes, a burst of them (a join,
    /// a table operation's retries) grows it, and a ring holds many idle
    /// members.
    fn take_lookup(&mut self, id: u64) -> Option<Lookup> {
        let lookup = self.lookups.remove(&id).map(|boxed| *boxed);
        if self.lookups.is_empty() && self.lookups.capacity() > KEPT_CAPACITY {
            self.lookups.shrink_to(KEPT_CAPACITY);
        }
        lookup
    }

    /// Lookups in flight.
    pub(crate) fn lookups_in_flight(&self) -> usize {
        self.lookups.len()
    }

    /// Whether `id` is a pointer: predecessor, successor or finger.
    pub(crate) fn is_pointer(&self, id: NodeId) -> bool {
        self.pred.as_ref().is_some_and(|p| p.id == id)
            || self.succs.iter().any(|p| p.id == id)
            || self.fingers.iter().any(|(_, p)| p.id == id)
    }

    /// Recursive lookups held for peers.
    pub(crate) fn forwards_held(&self) -> usize {
        self.forwards.len()
    }

    /// Whether `peer` is in the routing set: the successors, the
    /// predecessor and the fingers (at most `r + 1 + chord.max_fingers`
    /// nodes). Their connections are kept: every component reuses them,
    /// and no lookup closes one as unneeded (§4).
    pub(crate) fn in_routing_set(&self, peer: NodeId) -> bool {
        self.is_pointer(peer)
    }

    /// Whether this node needs its connection to `peer`: in the routing
    /// set, a ring request to it is in flight, or it waits for the answer
    /// of a recursive lookup this node holds for it.
    pub(crate) fn needs(&self, peer: NodeId) -> bool {
        self.in_routing_set(peer)
            || self.rpc.has_call_to(peer)
            || self.forwards_by_peer.contains_key(&peer)
    }

    /// The peers this member dialled that it no longer needs (§4): nodes
    /// that left its routing set (a finger replaced, a successor pushed
    /// out of the list by a joiner) and that no ring request waits for,
    /// in id order. The router closes them unless another component needs
    /// them. Only connections this node dialled: one it accepted is the
    /// dialler's to close (the dialler needed it, and may still).
    pub(crate) fn unneeded_links(&self, cx: &dyn Cx) -> Vec<NodeId> {
        if !self.is_member() {
            return Vec::new();
        }
        let mut unneeded = Vec::new();
        cx.for_each_link(&mut |peer, conn| {
            if conn.is_outbound() && !self.needs(peer) {
                unneeded.push(peer);
            }
        });
        unneeded.sort_unstable();
        unneeded
    }

    /// A client's request to a ring member: `build(req)` goes to `to`
    /// (dialled if needed), needing `needs` on its session; its end comes
    /// back as [`RingCall::Client`] with `token`.
    pub(crate) fn client_call(
        &mut self,
        cx: &mut dyn Cx,
        to: Pointer,
        token: u64,
        needs: Capabilities,
        build: impl FnOnce(u64) -> Message,
    ) -> u64 {
        let timeout = self.settings.request_timeout;
        self.rpc
            .call(cx, to, RingCall::Client(token), needs, true, timeout, build)
    }

    /// A chord request of chord's own.
    fn call(
        &mut self,
        cx: &mut dyn Cx,
        to: Pointer,
        call: RingCall,
        build: impl FnOnce(u64) -> Message,
    ) -> u64 {
        let timeout = match call {
            RingCall::Route(_) => self.route_timeout(self.settings.route_ttl),
            _ => self.settings.request_timeout,
        };
        self.call_timed(cx, to, call, timeout, build)
    }

    /// How long a `ChordRoute` sent with `ttl` is awaited (§7.4): a
    /// request's time, plus a share of another that shrinks along the
    /// whole path, so every hop gives up after the hops behind it. The
    /// asker waits twice a request's time. The first `ROUTE_HEAD` hops
    /// each wait three quarters of a request's time over `ROUTE_HEAD` less
    /// than the hop before (more than a round trip: a hop that finds its
    /// first successor silent answers itself, and that answer reaches its
    /// asker in time); the hops after them share the last quarter. A
    /// deadline that stopped shrinking after the first hops had every hop
    /// past them give up on a long but live path before the hop after it,
    /// each retrying it, then the hops before in turn (16,174 retries while
    /// a 10,000-member ring grew, its newest members lacking fingers).
    fn route_timeout(&self, ttl: u8) -> Duration {
        let base = self.settings.request_timeout.as_micros();
        let max = self.settings.route_ttl;
        let t = ttl.min(max);
        let head = ROUTE_HEAD.min(max);
        let tail = u64::from(max - head);
        let extra = if t > max - head {
            base / 4 + base * 3 / 4 / u64::from(head) * u64::from(t - (max - head))
        } else {
            (base / 4)
                .checked_div(tail)
                .map_or(base / 4, |per_hop| per_hop * u64::from(t))
        };
        Duration::from_micros(base + extra)
    }

    /// A chord request of chord's own, awaited `timeout`.
    fn call_timed(
        &mut self,
        cx: &mut dyn Cx,
        to: Pointer,
        call: RingCall,
        timeout: Duration,
        build: impl FnOnce(u64) -> Message,
    ) -> u64 {
        let expects_reply = call != RingCall::Notify;
        self.rpc.call(
            cx,
            to,
            call,
            Capabilities::CHORD,
            expects_reply,
            timeout,
            build,
        )
    }

    fn arm(&mut self, cx: &mut dyn Cx, at: Instant, timer: Timer) {
        let seq = cx.timer_seq();
        self.timers.push_seq(at, seq, timer);
    }

    /// Whether `timer` still guards something.
    pub(crate) fn is_live(&self, timer: &Timer) -> bool {
        match *timer {
            Timer::Stabilize { generation } => generation == self.stabilize_generation,
            Timer::FixFingers | Timer::Merge => true,
            Timer::Lookup { id } => self.lookups.contains_key(&id),
        }
    }

    /// Drops cancelled timers, its own and its requests'.
    pub(crate) fn tidy_timers(&mut self) {
        let (generation, lookups) = (self.stabilize_generation, &self.lookups);
        self.timers.tidy(|timer| match *timer {
            Timer::Stabilize { generation: g } => g == generation,
            Timer::FixFingers | Timer::Merge => true,
            Timer::Lookup { id } => lookups.contains_key(&id),
        });
        self.rpc.tidy_timers();
    }

    /// A timer fired. A lookup that ended is handed back.
    pub(crate) fn fire(
        &mut self,
        cx: &mut dyn Cx,
        obs: &mut dyn RingObserver,
        timer: Timer,
    ) -> Option<Finished> {
        match timer {
            Timer::Stabilize { generation } => {
                self.stabilize_tick(cx, obs, generation);
                None
            }
            Timer::FixFingers => {
                self.fix_fingers_tick(cx);
                None
            }
            Timer::Lookup { id } => self.lookup_failed(id, LookupError::Timeout),
            Timer::Merge => {
                self.merge_tick(cx);
                None
            }
        }
    }

    /// Whether a ring request that ended means its peer is dead (§4):
    /// timeout, failed dials, or a non-member answer.
    /// A recursive lookup's call that times out says nothing of its next
    /// hop alone (the path behind it may be slow), so it is no death: it is
    /// a silent hop ([`Chord::is_silent_hop`]), which liveness judges.
    pub(crate) fn is_death(done: &Done<RingCall>) -> bool {
        use crate::rpc::{Failure, Outcome};
        use crate::wire::{ChordReplyKind, ChordRouteKind};
        match &done.outcome {
            Outcome::Failed(Failure::TimedOut) if Self::is_silent_hop(done) => false,
            Outcome::Reply(Message::ChordRouteReply(r)) => r.kind() == ChordRouteKind::NotInRing,
            Outcome::Failed(Failure::TimedOut | Failure::Dead | Failure::Lost) => true,
            Outcome::Failed(Failure::Refused) => false,
            Outcome::Reply(Message::ChordState(s)) => !s.member,
            Outcome::Reply(Message::ChordFindSuccessorReply(r)) => {
                r.kind == ChordReplyKind::NotInRing
            }
            Outcome::Reply(_) => false,
        }
    }

    /// Whether a ring request that ended is a recursive lookup's hop left
    /// unanswered until its deadline (not a death by itself, §7.4: the
    /// router asks liveness whether the hop itself was silent).
    pub(crate) fn is_silent_hop(done: &Done<RingCall>) -> bool {
        matches!(done.client, RingCall::Route(_) | RingCall::Forward(_))
            && matches!(
                done.outcome,
                crate::rpc::Outcome::Failed(crate::rpc::Failure::TimedOut)
            )
    }

    /// §4 Flush(X): forget `id` wherever it is a pointer. Returns whether
    /// this emptied the successor list of a member (an orphan, §6.4).
    fn flush(&mut self, id: NodeId) -> bool {
        let had = !self.succs.is_empty();
        self.succs.retain(|p| p.id != id);
        self.fingers.retain(|(_, p)| p.id != id);
        if self.pred.as_ref().is_some_and(|p| p.id == id) {
            self.pred = None;
        }
        had && self.succs.is_empty() && self.is_member()
    }

    /// Adopts `list` (already clipped) as the successor list, and drops
    /// fingers the list now covers. A list that changed (other members,
    /// or in another order) means the ring moved around this member: the
    /// fix-fingers period goes back to its base (§7.3).
    fn set_succs(&mut self, cx: &mut dyn Cx, list: Vec<Pointer>) {
        let same = self.succs.len() == list.len()
            && self.succs.iter().zip(&list).all(|(a, b)| a.id == b.id);
        if !same {
            self.fingers_to_base(cx);
        }
        // Collected into a vector of its own length: an in-place collect
        // would keep the pointers' larger allocation.
        let mut succs = Vec::with_capacity(list.len());
        succs.extend(list.into_iter().map(Finger::new));
        self.succs = succs;
        let succs = &self.succs;
        self.fingers
            .retain(|(_, f)| !succs.iter().any(|s| s.id == f.id));
    }

    /// Finger positions, for the responder.
    fn finger_positions(&self) -> SmallVec<[u128; 16]> {
        self.fingers.iter().map(|(_, p)| p.id.as_u128()).collect()
    }

    /// The pointer entry for `id`, if `id` is one (a successor first,
    /// then the predecessor, then a finger).
    fn pointer(&self, id: NodeId) -> Option<Pointer> {
        self.succs
            .iter()
            .chain(self.pred.as_ref())
            .find(|p| p.id == id)
            .map(Finger::pointer)
            .or_else(|| {
                self.fingers
                    .iter()
                    .find(|(_, f)| f.id == id)
                    .map(|(_, f)| f.pointer())
            })
    }

    /// `clip` over pointers: keeps the entries `ring::clip` keeps.
    fn clip(&self, me: NodeId, list: impl IntoIterator<Item = Pointer>) -> Vec<Pointer> {
        let list: Vec<Pointer> = list.into_iter().collect();
        let kept = ring::clip(me.as_u128(), list.iter().map(|p| p.id.as_u128()), self.r);
        list.into_iter().take(kept.len()).collect()
    }

    /// Whether `id` meets the id puzzle (§6.5); a refusal is counted.
    fn meets_puzzle(&mut self, id: NodeId) -> bool {
        let ok = puzzle::meets_id_puzzle(id, self.settings.id_puzzle_bits);
        if !ok {
            self.stats.puzzle_refused += 1;
        }
        ok
    }

    /// The longest prefix of `list` whose ids meet the id puzzle (§6.5).
    /// Cutting a list only drops pairs, which keeps Zave's invariant
    /// (§11), as `clip` does.
    fn puzzle_prefix(&mut self, mut list: Vec<Pointer>) -> Vec<Pointer> {
        if self.settings.id_puzzle_bits == 0 {
            return list;
        }
        if let Some(bad) = list.iter().position(|p| !self.meets_puzzle(p.id)) {
            list.truncate(bad);
        }
        list
    }

    /// This node as a pointer: with what it announces now, so that an
    /// address it adopted later (`spec/reach.md` §2) reaches its ring
    /// neighbours too.
    fn self_pointer(&self, cx: &dyn Cx) -> Pointer {
        cx.listen_entry()
            .unwrap_or_else(|| pointer(cx.me(), &self.settings.listen_addrs))
    }
}

#[cfg(test)]
mod layout_tests {
    use core::mem::size_of;
    use core::net::SocketAddr;

    use super::{Finger, pointer};
    use crate::NodeId;

    /// A member keeps ~14 fingers: 40 bytes each with their index (a
    /// `Pointer` made them 64; benches/README.md, "A ring member's
    /// memory"), and its `r` successors and its predecessor as fingers.
    #[test]
    fn a_finger_keeps_its_size() {
        assert_eq!(size_of::<Finger>(), 32);
        assert_eq!(size_of::<(u8, Finger)>(), 40);
        // The successors and the predecessor are kept as fingers too: 32
        // bytes each where a `Pointer` takes 56.
        assert_eq!(size_of::<Option<Finger>>(), 32);
        assert_eq!(size_of::<super::Pointer>(), 56);
    }

    /// The ring's state, boxed in every member, fits the allocator's
    /// 1,024-byte class (1,088 bytes took mimalloc's 1,280).
    #[test]
    fn the_ring_fits_its_size_class() {
        assert_eq!(size_of::<super::Chord>(), 1008);
        assert_eq!(size_of::<super::InFlight>(), 8);
    }

    /// A lookup in flight and a peer's lookup held (boxed; a member of a
    /// ring doing lookups holds about one of the first and two of the
    /// second at a time): their lists of tried and dialled peers inline
    /// for the one or two a recursive lookup uses, where room for eight
    /// (four) made them 496 and 144 bytes (mimalloc's 512 and 160-byte
    /// classes; benches/README.md, "A member's links, compacted").
    #[test]
    fn a_lookup_in_flight_keeps_its_size() {
        assert_eq!(size_of::<super::Lookup>(), 304);
        assert_eq!(size_of::<super::Forward>(), 96);
    }

    /// A finger gives back the pointer it was made from: the same id and
    /// the same addresses in the same order, whatever their number and
    /// family.
    #[test]
    fn a_finger_gives_back_its_pointer() {
        let v4: SocketAddr = "10.0.0.1:4000".parse().expect("an address");
        let v6: SocketAddr = "[2001:db8::1]:4001".parse().expect("an address");
        let other: SocketAddr = "192.0.2.7:4002".parse().expect("an address");
        for addrs in [
            vec![],
            vec![v4],
            vec![v6],
            vec![v4, v6],
            vec![v6, v4, other],
        ] {
            let p = pointer(NodeId::from_u128(77), &addrs);
            let back = Finger::new(p.clone()).pointer();
            assert_eq!(back, p);
            assert_eq!(back.addrs.as_slice(), addrs.as_slice());
        }
    }
}
