//! The `dht` component (spec/chord.md §10): the Chord table, a key-value
//! table spread over the ring.
//!
//! - `client.rs`: `Put`, `Get` and `Delete` commands: look the key up,
//!   write through its coordinator, read from its holders.
//! - `coordinator.rs`: the owner versions a write and replicates it to the
//!   next `dht_replicas − 1` successors before it answers.
//! - `holder.rs`: answering the table's messages; hand-off to a new
//!   predecessor, anti-entropy repair and garbage (§10.4).
//! - `store.rs`: the holder's bounded store and its pure rules (conflict
//!   order, caps, digests, garbage).
//!
//! The table reads the ring through [`Chord`]'s narrow view (membership,
//! predecessor, successors, a lookup, a request to a member) and hears of
//! its changes as a [`RingObserver`].

mod client;
mod coordinator;
mod holder;
pub(crate) mod store;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::chord::{Chord, Pointer, RingCall, RingObserver};
use crate::cx::Cx;
use crate::rpc::{Done, Outcome};
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::{DhtBody, DhtEntry, DhtValue};
use crate::{Config, NodeId};

use store::Store;

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

/// The component's timers (its requests' deadlines are the ring's request
/// layer's).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// Operation `id`'s deadline: a command's `lookup_timeout`, or a
    /// coordination's.
    Op { id: u64 },
    /// Look operation `id`'s key up again.
    Retry { id: u64 },
    /// Anti-entropy and garbage.
    Repair,
}

/// Who asked a coordinator to write.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// This node's own command `OpId`.
    Local(u64),
    /// A peer's `DhtPut` with its `req`.
    Remote { peer: NodeId, req: u64 },
}

/// Work in progress, by task id (command ops share the id space).
enum Task {
    /// A `Put`/`Delete` command: look up, send to the coordinator, retry on
    /// `NotOwner` or a dead coordinator.
    Put { key: Bytes, value: Option<Bytes> },
    /// A `Get` command: ask the first `r_d` holders of L.
    Get {
        key: Bytes,
        list: Vec<Pointer>,
        next: usize,
        in_flight: usize,
        answers: usize,
        best: Option<DhtBody>,
    },
    /// Coordinating a write: replicate to the first `r_d − 1` successors.
    Coordinate {
        client: Client,
        entry: DhtEntry,
        candidates: Vec<Pointer>,
        next: usize,
        in_flight: usize,
        acks: usize,
        needed: usize,
    },
    /// `DhtReplicate` batches (hand-off, repair): nothing to continue.
    Push { in_flight: usize },
    /// A `DhtSync` digest: its reply names the entries to send.
    Sync { khs: Vec<[u8; 32]> },
}

/// The component's settings, from `Config`.
struct Settings {
    replicas: usize,
    lookup_timeout: Duration,
    stabilize_interval: Duration,
    request_timeout: Duration,
    repair_interval: Duration,
    tombstone_ttl: Duration,
}

/// The table's state in a node.
pub(crate) struct Dht {
    store: Store,
    tasks: HashMap<u64, Task, FixedState>,
    /// The successors repair last synced with, to sync at once with a node
    /// that newly enters those positions.
    synced: SmallVec<[NodeId; 4]>,
    settings: Settings,
    pub(crate) timers: DeadlineQueue<Timer>,
}

impl Dht {
    pub(crate) fn new(config: &Config, hasher: FixedState) -> Self {
        Dht {
            store: Store::new(config.dht_max_entries, config.dht_max_bytes, hasher.clone()),
            tasks: HashMap::with_hasher(hasher),
            synced: SmallVec::new(),
            settings: Settings {
                replicas: config.dht_replicas,
                lookup_timeout: config.lookup_timeout,
                stabilize_interval: config.chord_stabilize_interval,
                request_timeout: config.chord_request_timeout,
                repair_interval: config.dht_repair_interval,
                tombstone_ttl: config.dht_tombstone_ttl,
            },
            timers: DeadlineQueue::new(),
        }
    }

    /// The version of `key` this node stores (tombstones included), and
    /// whether it is a live value; `None` if it stores nothing for it.
    pub(crate) fn holds(&self, key: &[u8]) -> Option<(u64, bool)> {
        self.store
            .get_key(key)
            .map(|s| (s.body.version, matches!(s.body.value, DhtValue::Value(_))))
    }

    /// Entries (values and tombstones) stored, and their bytes.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.store.len(), self.store.bytes())
    }

    fn arm(&mut self, cx: &mut dyn Cx, at: Instant, timer: Timer) {
        let seq = cx.timer_seq();
        self.timers.push_seq(at, seq, timer);
    }

    /// Whether `timer` still guards something (`member`: whether this node
    /// is a ring member).
    pub(crate) fn is_live(&self, timer: &Timer, member: bool) -> bool {
        match *timer {
            Timer::Op { id } | Timer::Retry { id } => self.tasks.contains_key(&id),
            Timer::Repair => member,
        }
    }

    /// Drops cancelled timers (`member`: whether this node is a ring
    /// member).
    pub(crate) fn tidy_timers(&mut self, member: bool) {
        let tasks = &self.tasks;
        self.timers.tidy(|timer| match *timer {
            Timer::Op { id } | Timer::Retry { id } => tasks.contains_key(&id),
            Timer::Repair => member,
        });
    }

    /// A timer fired.
    pub(crate) fn fire(&mut self, cx: &mut dyn Cx, ring: &mut Chord, timer: Timer) {
        match timer {
            Timer::Op { id } => self.op_deadline(cx, id),
            Timer::Retry { id } => self.retry(cx, ring, id),
            Timer::Repair => self.repair_tick(cx, ring),
        }
    }

    /// One of the table's ring requests (task `id`) ended.
    pub(crate) fn call_done(
        &mut self,
        cx: &mut dyn Cx,
        ring: &mut Chord,
        id: u64,
        done: Done<RingCall>,
    ) {
        let reply = match done.outcome {
            Outcome::Reply(message) => Some(message),
            Outcome::Failed(_) => None,
        };
        self.on_answer(cx, ring, id, done.peer, reply);
    }

    /// The node's own range (*P*, self], when *P* is known.
    fn own_range(cx: &dyn Cx, ring: &Chord) -> Option<(u128, u128)> {
        ring.predecessor()
            .map(|p| (p.id.as_u128(), cx.me().as_u128()))
    }
}

impl RingObserver for Dht {
    fn joined(&mut self, cx: &mut dyn Cx) {
        let at = cx.now() + self.settings.repair_interval;
        self.arm(cx, at, Timer::Repair);
    }

    fn ring_changed(&mut self, cx: &mut dyn Cx, ring: &mut Chord) {
        self.sync_new_holders(cx, ring);
    }

    fn predecessor_changed(&mut self, cx: &mut dyn Cx, ring: &mut Chord, old: Option<NodeId>) {
        self.hand_off(cx, ring, old);
    }
}
