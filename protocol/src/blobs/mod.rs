//! Blobs: files named by their BLAKE3 hash, moved in verified chunk groups
//! (spec/blobs.md).
//!
//! - `tree.rs`, the verification core: chunk groups, their proofs, and the
//!   outboard over BLAKE3's own tree;
//! - `store.rs`, the storage trait and the in-memory store;
//! - `serve.rs`, a provider's answers within its serving budget;
//! - `fetch.rs`, one fetch from several providers at once;
//! - `mod.rs` (here), the component a `Node` runs: it serves `BlobGet`s
//!   from its store, runs the application's fetches over its peers, and
//!   reports them as [`BlobsEvent`]s.
//!
//! # Example
//!
//! A blob added to one store and fetched into another, every group
//! verified on arrival:
//!
//! ```
//! use bytes::Bytes;
//! use ringmesh::Instant;
//! use ringmesh::blobs::{BlobStore, Fetch, FetchLimits, MemStore, ServeLimits, Server};
//! use ringmesh::wire::Message;
//!
//! let mut seeder = MemStore::new();
//! let hash = seeder.add(Bytes::from(vec![7u8; 100_000])).unwrap();
//! let mut server = Server::new(ServeLimits::default());
//!
//! let mut mine = MemStore::new();
//! let mut fetch = Fetch::new(hash, FetchLimits::default(), &mine);
//! fetch.add_provider("seeder");
//! let now = Instant::from_micros(0);
//! let mut below = |n: u64| n / 2;
//! while !fetch.is_done() {
//!     for (_, get) in fetch.poll_requests(now, &mine, &mut below) {
//!         for answer in server.answer(now, &seeder, &get) {
//!             match answer {
//!                 Message::BlobGroup(g) => drop(fetch.on_group("seeder", g, &mut mine)),
//!                 Message::BlobEnd(e) => drop(fetch.on_end(now, "seeder", e, &mine)),
//!                 _ => {}
//!             }
//!         }
//!     }
//! }
//! assert_eq!(mine.read_all(&hash), Some(vec![7u8; 100_000]));
//! ```

pub(crate) mod api;
pub(crate) mod config;
mod fetch;
mod serve;
mod store;
mod tree;

use std::collections::{BTreeMap, BTreeSet};

pub use crate::wire::{BlobHash, GROUP_LEN, MAX_BLOB_LEN, MAX_GROUPS, MAX_PROOF_DEPTH};
pub use api::{BlobsCommand, BlobsError, BlobsEvent, BlobsStats};
pub use config::BlobsConfig;
pub use fetch::{DropReason, Fetch, FetchEvent, FetchLimits, FetchStats};
pub use serve::{ServeLimits, ServeStats, Server};
pub use store::{BlobStore, GroupSet, MemStore, StoreError};
pub use tree::{
    ChainingValue, Outboard, OutboardBuilder, Proof, VerifyError, group_count, group_len,
    verify_group,
};

use crate::cx::Cx;
use crate::rng::{Rng, Stream};
use crate::timer::DeadlineQueue;
use crate::wire::{Capabilities, Message};
use crate::{Accepted, NodeId};

/// Request ids: a fetch's serial in the high bits, its own count below, so
/// an answer finds its fetch without a table of requests.
const REQ_SERIAL_SHIFT: u32 = 40;

/// Liars remembered (the latest), so that a liar closed and met again is
/// not asked again.
const LIARS_REMEMBERED: usize = 256;

/// The component's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Running fetches check their deadlines and ask again.
    Tick,
}

struct Running {
    fetch: Fetch<NodeId>,
    serial: u64,
    /// Providers named for the fetch that are not connected yet: added
    /// when they come up (bounded by `max_providers`).
    wanted: BTreeSet<NodeId>,
}

/// The blobs component of a node.
pub(crate) struct Blobs {
    config: BlobsConfig,
    store: Box<dyn BlobStore + Send>,
    server: Server,
    fetches: BTreeMap<BlobHash, Running>,
    by_serial: BTreeMap<u64, BlobHash>,
    next_serial: u64,
    rng: Rng,
    pub(crate) timers: DeadlineQueue<Timer>,
    armed: bool,
    stats: BlobsStats,
    /// Peers that sent a group that did not verify, latest last (at most
    /// `LIARS_REMEMBERED`): never made providers again.
    liars: std::collections::VecDeque<NodeId>,
}

impl Blobs {
    pub(crate) fn new(config: &BlobsConfig, seed: u64) -> Blobs {
        Blobs {
            config: config.clone(),
            store: Box::new(MemStore::with_capacity(config.store_bytes)),
            server: Server::new(config.serve),
            fetches: BTreeMap::new(),
            by_serial: BTreeMap::new(),
            next_serial: 1,
            rng: Rng::derive(seed, Stream::Blobs, None),
            timers: DeadlineQueue::new(),
            armed: false,
            stats: BlobsStats::default(),
            liars: std::collections::VecDeque::new(),
        }
    }

    pub(crate) fn set_store(&mut self, store: Box<dyn BlobStore + Send>) {
        self.store = store;
    }

    pub(crate) fn store(&self) -> &dyn BlobStore {
        &*self.store
    }

    pub(crate) fn stats(&self) -> BlobsStats {
        let running = self.fetches.values().map(|r| r.fetch.stats);
        let (groups, bytes) = running.fold((0, 0), |(g, b), s| {
            (g + s.groups_verified, b + s.bytes_verified)
        });
        BlobsStats {
            serve: self.server.stats,
            groups_verified: self.stats.groups_verified + groups,
            bytes_verified: self.stats.bytes_verified + bytes,
            ..self.stats
        }
    }

    /// Hashes being fetched.
    pub(crate) fn fetching(&self) -> Vec<BlobHash> {
        self.fetches.keys().copied().collect()
    }

    pub(crate) fn command(
        &mut self,
        cx: &mut dyn Cx,
        command: BlobsCommand,
    ) -> Result<Accepted, BlobsError> {
        match command {
            BlobsCommand::Add { data } => {
                if data.len() as u64 > MAX_BLOB_LEN {
                    return Err(BlobsError::TooLong);
                }
                let outboard = Outboard::compute(&data);
                let hash = outboard.root();
                let len = outboard.len();
                if !self.store.held(&hash).is_some_and(GroupSet::is_full) {
                    self.store
                        .create(outboard)
                        .map_err(|_| BlobsError::StoreFull)?;
                    for group in 0..group_count(len) {
                        let from = (group * GROUP_LEN) as usize;
                        let to = (from + GROUP_LEN as usize).min(data.len());
                        self.store
                            .write_group(&hash, group, data.slice(from..to))
                            .map_err(|_| BlobsError::StoreFull)?;
                    }
                }
                cx.emit(BlobsEvent::Added { hash, len });
                Ok(Accepted::Done)
            }
            BlobsCommand::Adopt { hash } => {
                let len = self.store.adopt(&hash).map_err(|e| match e {
                    StoreError::Full => BlobsError::StoreFull,
                    StoreError::Unknown | StoreError::Failed => BlobsError::NotInStore,
                })?;
                cx.emit(BlobsEvent::Added { hash, len });
                Ok(Accepted::Done)
            }
            BlobsCommand::Fetch { hash, providers } => {
                if !self.fetches.contains_key(&hash) {
                    if self.fetches.len() >= self.config.max_fetches {
                        self.stats.fetches_refused += 1;
                        return Err(BlobsError::TooManyFetches);
                    }
                    let serial = self.next_serial;
                    self.next_serial += 1;
                    let fetch = Fetch::new(hash, self.config.fetch, &*self.store)
                        .with_first_req(serial << REQ_SERIAL_SHIFT);
                    if fetch.is_done() {
                        cx.emit(BlobsEvent::Done { hash });
                        return Ok(Accepted::Done);
                    }
                    self.by_serial.insert(serial, hash);
                    self.fetches.insert(
                        hash,
                        Running {
                            fetch,
                            serial,
                            wanted: BTreeSet::new(),
                        },
                    );
                }
                let ask_neighbours = self.config.ask_neighbours;
                let max = self.config.fetch.max_providers;
                let liars = &self.liars;
                if let Some(running) = self.fetches.get_mut(&hash) {
                    for peer in providers {
                        if peer == cx.me() || liars.contains(&peer) {
                            continue;
                        }
                        if cx.is_up(peer) {
                            running.fetch.add_provider(peer);
                        } else if running.wanted.len() < max && running.wanted.insert(peer) {
                            cx.dial_known(peer);
                        }
                    }
                    if ask_neighbours {
                        for peer in cx.peers_up() {
                            if offers_blobs(cx, peer) && !liars.contains(&peer) {
                                running.fetch.add_provider(peer);
                            }
                        }
                    }
                }
                self.pump(cx);
                self.arm(cx);
                Ok(Accepted::Done)
            }
            BlobsCommand::Cancel { hash } => {
                if let Some(running) = self.fetches.remove(&hash) {
                    self.by_serial.remove(&running.serial);
                }
                Ok(Accepted::Done)
            }
        }
    }

    /// A blob message from `from` (on a session that negotiated `BLOBS`).
    /// Returns `from` if it sent a group that does not verify: a liar,
    /// which the router closes as misbehaving.
    pub(crate) fn on_message(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        message: Message,
    ) -> Option<NodeId> {
        match message {
            Message::BlobGet(get) => {
                for answer in self.server.answer(cx.now(), &*self.store, &get) {
                    if cx.send(from, &answer).is_err() {
                        break;
                    }
                }
            }
            Message::BlobGroup(group) => {
                let Some(hash) = self.fetch_of(group.req) else {
                    self.stats.answers_unmatched += 1;
                    return None;
                };
                let events = match self.fetches.get_mut(&hash) {
                    Some(running) => running.fetch.on_group(from, group, &mut *self.store),
                    None => return None,
                };
                let lied = events.iter().any(|event| {
                    matches!(event, FetchEvent::Dropped { provider, reason: DropReason::Lied(_) }
                        if *provider == from)
                });
                self.report(cx, hash, events);
                if lied {
                    // Every fetch forgets it: the router closes it.
                    self.stats.liars_closed += 1;
                    if !self.liars.contains(&from) {
                        if self.liars.len() == LIARS_REMEMBERED {
                            self.liars.pop_front();
                        }
                        self.liars.push_back(from);
                    }
                    self.peer_down(from);
                    self.pump(cx);
                    return Some(from);
                }
                self.pump(cx);
            }
            Message::BlobEnd(end) => {
                let Some(hash) = self.fetch_of(end.req) else {
                    self.stats.answers_unmatched += 1;
                    return None;
                };
                let now = cx.now();
                let events = match self.fetches.get_mut(&hash) {
                    Some(running) => running.fetch.on_end(now, from, end, &*self.store),
                    None => return None,
                };
                self.report(cx, hash, events);
                self.pump(cx);
            }
            _ => {}
        }
        None
    }

    fn fetch_of(&self, req: u64) -> Option<BlobHash> {
        self.by_serial.get(&(req >> REQ_SERIAL_SHIFT)).copied()
    }

    /// `peer` came up: a fetch that named it, or asks its neighbours, adds
    /// it as a provider.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        if self.fetches.is_empty() || self.liars.contains(&peer) {
            return;
        }
        let blobs = offers_blobs(cx, peer);
        let ask_neighbours = self.config.ask_neighbours;
        for running in self.fetches.values_mut() {
            if running.wanted.remove(&peer) || (ask_neighbours && blobs) {
                running.fetch.add_provider(peer);
            }
        }
        self.pump(cx);
    }

    /// `peer` went down: its requests are asked of others.
    pub(crate) fn peer_down(&mut self, peer: NodeId) {
        for running in self.fetches.values_mut() {
            running.fetch.provider_gone(peer);
        }
    }

    pub(crate) fn fire(&mut self, cx: &mut dyn Cx, timer: Timer) {
        match timer {
            Timer::Tick => {
                self.armed = false;
                let now = cx.now();
                let hashes: Vec<BlobHash> = self.fetches.keys().copied().collect();
                for hash in hashes {
                    let events = match self.fetches.get_mut(&hash) {
                        Some(running) => running.fetch.on_timeout(now),
                        None => continue,
                    };
                    self.report(cx, hash, events);
                }
                self.pump(cx);
                self.arm(cx);
            }
        }
    }

    fn arm(&mut self, cx: &mut dyn Cx) {
        if self.armed || self.fetches.is_empty() {
            return;
        }
        self.armed = true;
        let at = cx.now() + self.config.tick;
        let seq = cx.timer_seq();
        self.timers.push_seq(at, seq, Timer::Tick);
    }

    /// Every fetch sends what its windows allow.
    fn pump(&mut self, cx: &mut dyn Cx) {
        let now = cx.now();
        let Blobs {
            fetches,
            store,
            rng,
            ..
        } = self;
        for running in fetches.values_mut() {
            let requests = running
                .fetch
                .poll_requests(now, &**store, &mut |n| rng.below(n));
            for (peer, get) in requests {
                if cx.send(peer, &Message::BlobGet(get)).is_err() {
                    running.fetch.provider_gone(peer);
                }
            }
        }
    }

    fn report(&mut self, cx: &mut dyn Cx, hash: BlobHash, events: Vec<FetchEvent<NodeId>>) {
        for event in events {
            match event {
                FetchEvent::Length { len } => cx.emit(BlobsEvent::Length { hash, len }),
                FetchEvent::Progress { held, groups } => {
                    cx.emit(BlobsEvent::Progress { hash, held, groups })
                }
                FetchEvent::Dropped { provider, reason } => {
                    if matches!(reason, DropReason::Lied(_)) {
                        self.stats.groups_refused += 1;
                    }
                    self.stats.providers_dropped += 1;
                    cx.emit(BlobsEvent::ProviderDropped {
                        hash,
                        provider,
                        reason,
                    });
                }
                FetchEvent::Done => {
                    if let Some(running) = self.fetches.remove(&hash) {
                        self.by_serial.remove(&running.serial);
                        self.stats.groups_verified += running.fetch.stats.groups_verified;
                        self.stats.bytes_verified += running.fetch.stats.bytes_verified;
                    }
                    self.stats.fetches_done += 1;
                    cx.emit(BlobsEvent::Done { hash });
                }
            }
        }
    }
}

fn offers_blobs(cx: &dyn Cx, peer: NodeId) -> bool {
    cx.peer_caps(peer)
        .is_some_and(|c| c.contains(Capabilities::BLOBS))
}

#[cfg(test)]
mod tests;
