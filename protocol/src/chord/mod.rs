//! The `chord` component (spec/chord.md): the ring of Zave's corrected
//! Chord, its lookups and fingers. `ring.rs` holds the pure rules; this
//! module the public vocabulary and the component's state; the node acts
//! on it in `node/chord.rs` (ring maintenance) and `node/lookup.rs`
//! (lookups, fingers, routing).

pub(crate) mod ring;

use core::net::SocketAddr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::NodeId;
use crate::time::Instant;
use crate::wire::{Message, PeerEntry};

/// Identifies one lookup or table operation a command started: the id of
/// its [`Event::LookupDone`](crate::Event::LookupDone),
/// [`Event::DhtGetResult`](crate::Event::DhtGetResult) and the like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Where a node stands towards the ring (spec/chord.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChordRole {
    /// `Config::chord` is off.
    Off,
    /// Chord runs, but the node is not a ring member (not joined yet, or its
    /// join failed).
    Out,
    /// A ring member.
    Member,
}

/// Why a lookup ended without an owner (spec/chord.md §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// `chord_max_hops` requests were sent.
    #[error("hop limit reached")]
    HopLimit,
    /// Every candidate failed.
    #[error("no candidate left to ask")]
    NoCandidate,
    /// `lookup_timeout` passed.
    #[error("timed out")]
    Timeout,
    /// The node shut down.
    #[error("the node shut down")]
    ShutDown,
}

/// Why a table operation failed (spec/chord.md §10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// The node asked is not a ring member.
    #[error("not in the ring")]
    NotInRing,
    /// The coordinator does not own the key (the ring is changing); the
    /// client retried until its time ran out.
    #[error("the coordinator does not own the key")]
    NotOwner,
    /// A holder's store is at its cap.
    #[error("a holder's store is full")]
    Full,
    /// The entry does not fit a peer's frame cap.
    #[error("too large for a peer's frame cap")]
    TooLarge,
    /// The owner stored the entry but fewer than `dht_replicas` holders
    /// acknowledged it in time; repair will spread it.
    #[error("stored as version {version} on {holders} holders only")]
    Incomplete {
        /// The version it was given.
        version: u64,
        /// Holders that acknowledged, the owner included.
        holders: u8,
    },
    /// No holder answered.
    #[error("no holder answered")]
    Unreachable,
    /// `lookup_timeout` passed.
    #[error("timed out")]
    Timeout,
    /// The node shut down.
    #[error("the node shut down")]
    ShutDown,
}

/// A pointer: a ring node and where to dial it.
pub(crate) type Pointer = PeerEntry;

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

/// What a chord request is for; its reply or failure continues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// §6.2 step 1: `ChordGetState` to the first successor.
    Stabilize,
    /// §6.2 step 4: `ChordGetState` to the successor's predecessor.
    StabilizePred,
    /// §6.3: is the old predecessor alive?
    Probe,
    /// A `ChordNotify` waiting for its connection (no reply).
    Notify,
    /// One hop of lookup `u64`.
    Hop(u64),
    /// A dht exchange (`node/dht.rs`).
    Dht(u64),
}

/// A chord or dht request awaiting its reply (spec/chord.md §4).
pub(crate) struct Request {
    pub(crate) peer: Pointer,
    pub(crate) purpose: Purpose,
    /// What it sends (kept to send again when the connection it went out
    /// on closes before the reply; values are shared, not copied).
    pub(crate) message: Message,
    /// Not sent yet: its peer is being dialled.
    pub(crate) unsent: bool,
    /// Failed before its timeout; handled at its next deadline.
    pub(crate) failed: Option<crate::node::EarlyFailure>,
}

/// What started a lookup, and so where its result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupFor {
    /// `Command::Lookup`.
    Command(OpId),
    /// `Command::ChordJoin`: the node's own id.
    Join,
    /// Finger `i`.
    Finger(u8),
    /// A message waits for node `T` (spec/chord.md §9).
    Route(NodeId),
    /// A dht operation.
    Dht(OpId),
}

/// One iterative `find_successor` (spec/chord.md §7.2).
pub(crate) struct Lookup {
    pub(crate) key: u128,
    pub(crate) purpose: LookupFor,
    /// The closest node that answered `Next`.
    pub(crate) closest: Option<u128>,
    /// Still to ask, closest to the key first.
    pub(crate) candidates: Vec<Pointer>,
    pub(crate) tried: SmallVec<[NodeId; 8]>,
    pub(crate) sent: u32,
    pub(crate) hops: u32,
    /// Peers dialled only for this lookup: closed when it ends unless they
    /// became pointers.
    pub(crate) dialled: SmallVec<[NodeId; 8]>,
}

/// The component's state (spec/chord.md §3).
pub(crate) struct Chord {
    pub(crate) role: ChordRole,
    pub(crate) r: usize,
    pub(crate) succs: Vec<Pointer>,
    pub(crate) pred: Option<Pointer>,
    /// Finger index → pointer, sorted by index; only fingers outside the
    /// successor list are kept.
    pub(crate) fingers: Vec<(u8, Pointer)>,
    /// The request of the stabilization in flight.
    pub(crate) stabilizing: Option<u64>,
    /// Stabilizations started at once in a row after dropping a dead first
    /// successor (at most `r`).
    pub(crate) quick_restabilize: usize,
    /// Bumped whenever a stabilize timer is set, so older ones lapse.
    pub(crate) stabilize_generation: u64,
    /// The rectify probe in flight, and the notifier waiting on it.
    pub(crate) probing: Option<u64>,
    pub(crate) waiting_notifier: Option<Pointer>,
    /// The finger index the next fix-fingers tick starts from.
    pub(crate) next_finger: u8,
    pub(crate) requests: HashMap<u64, Request, FixedState>,
    pub(crate) lookups: HashMap<u64, Lookup, FixedState>,
    pub(crate) next_req: u64,
    pub(crate) next_op: u64,
    /// When this node became a member (for the status line).
    pub(crate) member_since: Option<Instant>,
}

impl Chord {
    pub(crate) fn new(enabled: bool, r: usize, hasher: FixedState) -> Self {
        Chord {
            role: if enabled {
                ChordRole::Out
            } else {
                ChordRole::Off
            },
            r,
            succs: Vec::new(),
            pred: None,
            fingers: Vec::new(),
            stabilizing: None,
            quick_restabilize: 0,
            stabilize_generation: 0,
            probing: None,
            waiting_notifier: None,
            next_finger: 127,
            requests: HashMap::with_hasher(hasher.clone()),
            lookups: HashMap::with_hasher(hasher),
            next_req: 0,
            next_op: 0,
            member_since: None,
        }
    }

    pub(crate) fn is_member(&self) -> bool {
        self.role == ChordRole::Member
    }

    /// A fresh request id.
    pub(crate) fn next_req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// Whether `id` is a pointer: predecessor, successor or finger.
    pub(crate) fn is_pointer(&self, id: NodeId) -> bool {
        self.pred.as_ref().is_some_and(|p| p.id == id)
            || self.succs.iter().any(|p| p.id == id)
            || self.fingers.iter().any(|(_, p)| p.id == id)
    }

    /// The pointer entry for `id`, if `id` is one.
    pub(crate) fn pointer(&self, id: NodeId) -> Option<&Pointer> {
        self.succs
            .iter()
            .chain(self.pred.as_ref())
            .chain(self.fingers.iter().map(|(_, p)| p))
            .find(|p| p.id == id)
    }

    /// §4 Flush(X): forget `id` wherever it is a pointer. Returns whether
    /// this emptied the successor list of a member (an orphan, §6.4).
    pub(crate) fn flush(&mut self, id: NodeId) -> bool {
        let had = !self.succs.is_empty();
        self.succs.retain(|p| p.id != id);
        self.fingers.retain(|(_, p)| p.id != id);
        if self.pred.as_ref().is_some_and(|p| p.id == id) {
            self.pred = None;
        }
        had && self.succs.is_empty() && self.is_member()
    }

    /// Adopts `list` (already clipped) as the successor list, and drops
    /// fingers the list now covers.
    pub(crate) fn set_succs(&mut self, list: Vec<Pointer>) {
        self.succs = list;
        let succs = &self.succs;
        self.fingers
            .retain(|(_, f)| !succs.iter().any(|s| s.id == f.id));
    }

    /// Finger positions, for the responder.
    pub(crate) fn finger_positions(&self) -> SmallVec<[u128; 16]> {
        self.fingers.iter().map(|(_, p)| p.id.as_u128()).collect()
    }

    /// `clip` over pointers: keeps the entries `ring::clip` keeps.
    pub(crate) fn clip(&self, me: NodeId, list: impl IntoIterator<Item = Pointer>) -> Vec<Pointer> {
        let list: Vec<Pointer> = list.into_iter().collect();
        let kept = ring::clip(me.as_u128(), list.iter().map(|p| p.id.as_u128()), self.r);
        list.into_iter().take(kept.len()).collect()
    }
}
