//! The `dht` component (spec/chord.md §10): the Chord table, a key-value
//! table spread over the ring.
//!
//! - `client.rs`: `Put`, `Get` and `Delete` commands: look the key up,
//!   write through its coordinator, read from its holders.
//! - `coordinator.rs`: the owner checks a signed write (its signature, its
//!   owner, its version) and replicates it to the next `dht.replicas − 1`
//!   successors before it answers.
//! - `holder.rs`: answering the table's messages, accepting replicas only
//!   from entitled senders and only verified entries; hand-off to a new
//!   predecessor, anti-entropy repair and garbage (§10.4).
//! - `store.rs`: the holder's bounded store and its pure rules (conflict
//!   order, caps and eviction, digests, garbage).
//! - `quota.rs`: what each writer and each sending peer holds, their
//!   quotas and fair shares (§10.5).
//!
//! The table reads the ring through [`Chord`]'s narrow view (membership,
//! predecessor, successors, a lookup, a request to a member) and hears of
//! its changes as a [`RingObserver`].

mod api;
mod client;
pub(crate) mod config;
mod coordinator;
mod holder;
pub(crate) mod quota;
pub(crate) mod store;

pub use api::{DhtCommand, DhtError, DhtEvent, DhtFailure, DhtHeld, DhtStats, DhtUsage};
pub use config::DhtConfig;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::NodeId;
use crate::chord::ChordConfig;
use crate::chord::{Chord, Pointer, RingCall, RingObserver};
use crate::cx::Cx;
use crate::rpc::{Done, Outcome};
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::{DhtBody, DhtEntry, DhtKey, DhtValue, MAX_OPEN_VERSION_STEP};

use store::{Store, StoreCounts};

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
    /// A `Put`/`Delete` command: look up, sign at `version`, send to the
    /// coordinator, retry on `NotOwner` or a dead coordinator, sign again
    /// above the version held on `Stale` (`stale` tries so far).
    Put {
        key: DhtKey,
        value: Option<Bytes>,
        version: u64,
        stale: u8,
    },
    /// A `Get` command: ask the first `r_d` holders of L.
    Get {
        key: DhtKey,
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
        /// The greatest version a replica held above the entry's.
        held: Option<u64>,
    },
    /// `DhtReplicate` batches (hand-off, repair): nothing to continue.
    Push { in_flight: usize },
    /// A `DhtSync` digest: its reply names the entries to send.
    Sync { khs: Vec<[u8; 32]> },
    /// Entries no owner confirms, by position in ring order from the own
    /// range, each going back to its owner (§10.4, "Strays").
    Strays { strays: Vec<(u128, DhtEntry)> },
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
    /// The node runs the table.
    enabled: bool,
    store: Store,
    /// The store's counters at the last info summary (repair tick).
    reported: StoreCounts,
    tasks: HashMap<u64, Task, FixedState>,
    /// The successors repair last synced with, to sync at once with a node
    /// that newly enters those positions.
    synced: SmallVec<[NodeId; 4]>,
    settings: Settings,
    pub(crate) timers: DeadlineQueue<Timer>,
    /// Refusals of what did not verify or was not entitled (the quota
    /// counters are the store's; [`Dht::stats`] joins the two).
    pub(crate) stats: DhtStats,
    /// `stats` at the last repair tick, for the info summary.
    logged: DhtStats,
}

/// Signed re-tries of a put whose coordinator answers `Stale`.
const STALE_TRIES: u8 = 4;

/// Why an entry does not verify (§10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unverified {
    /// The signature is not the writer key's over the entry's bytes, or
    /// `writer` is not the id of `writer_key`.
    Signature,
    /// An owned key signed by a key that is not its owner's.
    NotOwner,
}

impl core::fmt::Display for Unverified {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Unverified::Signature => "bad signature",
            Unverified::NotOwner => "owned key signed by another identity",
        })
    }
}

/// §10.1: whether `body` is a write of `key` its writer signed, by the
/// owner if the key is owned.
pub(crate) fn verify(cx: &dyn Cx, key: &DhtKey, body: &DhtBody) -> Result<(), Unverified> {
    if body.writer != body.writer_key.node_id() {
        return Err(Unverified::Signature);
    }
    if key.owner().is_some_and(|owner| owner != body.writer) {
        return Err(Unverified::NotOwner);
    }
    if !cx.verify(&body.writer_key, &body.signed_bytes(key), &body.signature) {
        return Err(Unverified::Signature);
    }
    Ok(())
}

/// §10.1: whether an open key's `version` rises at most
/// [`MAX_OPEN_VERSION_STEP`] above `held` (0 if nothing is held). Owned
/// keys may take any version: only their owner signs them.
pub(crate) fn within_step(key: &DhtKey, version: u64, held: u64) -> bool {
    matches!(key, DhtKey::Owned { .. }) || version <= held.saturating_add(MAX_OPEN_VERSION_STEP)
}

impl Dht {
    /// The component; `config` is `None` when the node does not run the
    /// table (`chord` then need not be `Some`).
    pub(crate) fn new(
        config: Option<&DhtConfig>,
        chord: Option<&ChordConfig>,
        hasher: FixedState,
    ) -> Self {
        let enabled = config.is_some();
        let (config, chord) = (
            config.cloned().unwrap_or_default(),
            chord.cloned().unwrap_or_default(),
        );
        Dht {
            enabled,
            store: Store::new(config.caps(), hasher.clone()),
            reported: StoreCounts::default(),
            tasks: HashMap::with_hasher(hasher),
            synced: SmallVec::new(),
            settings: Settings {
                replicas: config.replicas,
                lookup_timeout: chord.lookup_timeout,
                stabilize_interval: chord.stabilize_interval,
                request_timeout: chord.request_timeout,
                repair_interval: config.repair_interval,
                tombstone_ttl: config.tombstone_ttl,
            },
            timers: DeadlineQueue::new(),
            stats: DhtStats::default(),
            logged: DhtStats::default(),
        }
    }

    /// The version of `key` this node stores (tombstones included), and
    /// whether it is a live value; `None` if it stores nothing for it.
    pub(crate) fn holds(&self, key: &DhtKey) -> Option<DhtHeld> {
        self.store.get_key(key).map(|s| DhtHeld {
            version: s.body.version,
            live: matches!(s.body.value, DhtValue::Value(_)),
            writer: s.body.writer,
        })
    }

    /// The version held for kh, 0 if none.
    fn held_version(&self, kh: &[u8; 32]) -> u64 {
        self.store.get(kh).map_or(0, |s| s.body.version)
    }

    /// Test hook: merges `body` for `key` unverified, as a holder with a
    /// corrupted (or lying) store would hold it; `true` if stored.
    pub(crate) fn corrupt(&mut self, now: Instant, key: DhtKey, body: DhtBody) -> bool {
        self.store.merge(key, body, now, None, None) == store::Merge::Stored
    }

    /// Entries (values and tombstones) stored, and their bytes.
    pub(crate) fn usage(&self) -> DhtUsage {
        DhtUsage {
            entries: self.store.len(),
            bytes: self.store.bytes(),
        }
    }

    /// The table's counters.
    pub(crate) fn stats(&self) -> DhtStats {
        let counts = self.store.counts();
        DhtStats {
            refused_writer_quota: counts.refused_writer,
            refused_sender_quota: counts.refused_sender,
            refused_full: counts.refused_full,
            evicted: counts.evicted,
            ..self.stats
        }
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
        if !self.enabled {
            return;
        }
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
