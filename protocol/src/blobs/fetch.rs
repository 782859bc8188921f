//! The fetcher's side: one blob fetched from several providers at once
//! (spec/blobs.md §6).
//!
//! A fetch first learns the blob's length: it asks for the last group, whose
//! proof binds the length, and creates the blob in the store only once that
//! group verified. Then it asks each provider for runs of groups it still
//! lacks, within a window per provider, starting each run at a random
//! missing group (so fetchers spread over a blob and serve each other
//! different groups). Every group is verified before it is written; a group
//! that does not verify drops its sender at once and its groups go back to
//! be asked of another provider. What the store already holds is never
//! asked for again, so a fetch started over a partial blob resumes.
//!
//! The machine is generic over the provider's name (`NodeId` in a node, a
//! plain number in tests) and takes time and randomness as inputs.

use std::collections::BTreeMap;

use bytes::Bytes;
use smallvec::SmallVec;

use super::store::{BlobStore, GroupSet};
use super::tree::{Outboard, VerifyError, group_count};
use crate::time::{Duration, Instant};
use crate::wire::{BlobEnd, BlobEndStatus, BlobGet, BlobGroup, BlobHash};

/// The fetcher's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Groups asked of one provider and not yet answered (its window).
    /// Default 32 (512 KiB in flight per provider).
    pub window: u32,
    /// Groups in one `BlobGet`. Default 8.
    pub groups_per_request: u32,
    /// Providers one fetch uses at once; more are refused and counted.
    /// Default 16.
    pub max_providers: usize,
    /// Groups in flight per fetch, all providers together (the fetch's
    /// bytes in flight ≤ this × 16 KiB). Default 256 (4 MiB).
    pub max_in_flight: u32,
    /// A request not ended by then marks its provider slow: it is dropped
    /// and its groups asked elsewhere. Default 10 s.
    pub request_timeout: Duration,
    /// How long a provider that answered `Busy` is left alone. Default 1 s.
    pub busy_backoff: Duration,
    /// How long a provider's "I lack these groups" (or "I hold none") is
    /// believed; afterwards it is asked again, since a fetcher that serves
    /// what it holds gains groups as it goes (the swarm). Default 500 ms.
    pub relook: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            window: 32,
            groups_per_request: 8,
            max_providers: 16,
            max_in_flight: 256,
            request_timeout: Duration::from_secs(10),
            busy_backoff: Duration::from_secs(1),
            relook: Duration::from_millis(500),
        }
    }
}

/// Why a provider was dropped from a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// It sent a group that did not verify (or one not asked for, or a
    /// length other than the proven one).
    Lied(VerifyError),
    /// It sent a group or an end for no request of its own.
    Unsolicited,
    /// A request stayed unanswered past the timeout.
    Slow,
}

/// What a fetch reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent<P> {
    /// The length is proven: the blob has `len` bytes.
    Length {
        /// Bytes in the blob.
        len: u64,
    },
    /// Groups held now, of how many.
    Progress {
        /// Groups held.
        held: u64,
        /// Groups in the blob.
        groups: u64,
    },
    /// A provider was dropped; its groups are asked of others.
    Dropped {
        /// The provider.
        provider: P,
        /// Why.
        reason: DropReason,
    },
    /// Every group is held and verified.
    Done,
}

/// What a fetch has done, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Groups verified and written.
    pub groups_verified: u64,
    /// Bytes verified and written.
    pub bytes_verified: u64,
    /// Groups that failed verification.
    pub groups_refused: u64,
    /// Groups that arrived twice or were not asked for (ignored).
    pub groups_unwanted: u64,
    /// Providers dropped (lied, unsolicited, slow).
    pub providers_dropped: u64,
    /// Providers refused because `max_providers` were in use.
    pub providers_refused: u64,
    /// Groups the store would not take (full).
    pub store_refused: u64,
}

struct Pending<P> {
    provider: P,
    groups: SmallVec<[u64; 8]>,
    /// Asked for the last group (the length); `groups` is empty then.
    length_probe: bool,
    sent_at: Instant,
}

struct Provider {
    in_flight: u32,
    /// Groups it answered without: not asked of it again.
    lacks: Option<GroupSet>,
    /// It holds none of the blob, or is left alone until then.
    idle_until: Option<Instant>,
    not_held: bool,
    /// When `lacks` or `not_held` was last learned (they expire after
    /// `relook`).
    learned_at: Instant,
    /// Its length probe is unanswered: it is asked nothing more until it
    /// has shown it holds the blob.
    probing: bool,
}

/// One blob being fetched.
pub struct Fetch<P> {
    hash: BlobHash,
    limits: FetchLimits,
    len: Option<u64>,
    /// Groups asked and not yet answered, any provider.
    asked: Option<GroupSet>,
    in_flight: u32,
    pending: BTreeMap<u64, Pending<P>>,
    providers: BTreeMap<P, Provider>,
    next_req: u64,
    done: bool,
    /// What the fetch has done.
    pub stats: FetchStats,
}

impl<P: Copy + Ord + core::fmt::Debug> Fetch<P> {
    /// A fetch of `hash`. If `store` already holds part of it (its length
    /// proven earlier), only the groups it lacks are asked for.
    pub fn new(hash: BlobHash, limits: FetchLimits, store: &dyn BlobStore) -> Fetch<P> {
        let mut fetch = Fetch {
            hash,
            limits,
            len: None,
            asked: None,
            in_flight: 0,
            pending: BTreeMap::new(),
            providers: BTreeMap::new(),
            next_req: 0,
            done: false,
            stats: FetchStats::default(),
        };
        if let Some(outboard) = store.outboard(&hash) {
            fetch.length_known(outboard.len());
            fetch.done = store.held(&hash).is_some_and(GroupSet::is_full);
        }
        fetch
    }

    fn length_known(&mut self, len: u64) {
        self.len = Some(len);
        self.asked = Some(GroupSet::empty(group_count(len)));
    }

    /// Numbers this fetch's requests from `first` on, so that a node's
    /// fetches use disjoint request ids (call before the first request).
    pub fn with_first_req(mut self, first: u64) -> Fetch<P> {
        self.next_req = first;
        self
    }

    /// The blob.
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    /// The proven length, once known.
    pub fn blob_len(&self) -> Option<u64> {
        self.len
    }

    /// Whether every group is held.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Providers in use.
    pub fn providers(&self) -> impl Iterator<Item = P> + '_ {
        self.providers.keys().copied()
    }

    /// Whether no provider is left that could still send a missing group:
    /// the fetch waits for new providers.
    pub fn is_stalled(&self) -> bool {
        !self.done && self.pending.is_empty() && self.providers.values().all(|p| p.not_held)
    }

    /// Groups in flight (bytes in flight ≤ this × 16 KiB).
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Adds a provider (found in the table, by a neighbour, or told by the
    /// application). False if it is already in use or the fetch is at its
    /// cap of providers (counted).
    pub fn add_provider(&mut self, provider: P) -> bool {
        if self.providers.contains_key(&provider) {
            return false;
        }
        if self.providers.len() >= self.limits.max_providers {
            // A provider that holds nothing makes room.
            let idle = self
                .providers
                .iter()
                .find(|(peer, p)| {
                    p.not_held && !self.pending.values().any(|q| q.provider == **peer)
                })
                .map(|(peer, _)| *peer);
            match idle {
                Some(peer) => {
                    self.providers.remove(&peer);
                }
                None => {
                    self.stats.providers_refused += 1;
                    return false;
                }
            }
        }
        self.providers.insert(
            provider,
            Provider {
                in_flight: 0,
                lacks: None,
                idle_until: None,
                not_held: false,
                learned_at: Instant::from_micros(0),
                probing: false,
            },
        );
        true
    }

    /// The requests to send now: each provider's window filled with runs of
    /// missing groups not already asked (before the length is known, one
    /// probe for the last group per provider). `below(n)` draws a number
    /// in `0..n` from the caller's seeded stream.
    pub fn poll_requests(
        &mut self,
        now: Instant,
        store: &dyn BlobStore,
        below: &mut dyn FnMut(u64) -> u64,
    ) -> Vec<(P, BlobGet)> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let relook = self.limits.relook;
        for provider in self.providers.values_mut() {
            if provider.learned_at.saturating_add(relook) <= now {
                provider.lacks = None;
                provider.not_held = false;
            }
        }
        let peers: Vec<P> = self.providers.keys().copied().collect();
        for peer in peers {
            let Some(provider) = self.providers.get(&peer) else {
                continue;
            };
            if provider.not_held || provider.probing || provider.idle_until.is_some_and(|t| t > now)
            {
                continue;
            }
            if self.len.is_none() {
                if provider.in_flight == 0 {
                    out.push((peer, self.ask(now, peer, SmallVec::new(), true)));
                }
                continue;
            }
            while self.in_flight < self.limits.max_in_flight {
                let room = self
                    .limits
                    .window
                    .saturating_sub(self.provider_in_flight(peer));
                let room = room
                    .min(self.limits.groups_per_request)
                    .min(self.limits.max_in_flight - self.in_flight);
                // A provider still answering is asked again only for a
                // whole request: refilling its window a group at a time
                // would cost a request (and its end) per group.
                let whole = self.limits.groups_per_request.min(self.limits.window);
                if room == 0 || (room < whole && self.provider_in_flight(peer) > 0) {
                    break;
                }
                let run = self.pick_run(peer, store, room, below);
                if run.is_empty() {
                    break;
                }
                out.push((peer, self.ask(now, peer, run, false)));
            }
        }
        out
    }

    fn provider_in_flight(&self, peer: P) -> u32 {
        self.providers.get(&peer).map_or(0, |p| p.in_flight)
    }

    /// A run of up to `room` consecutive groups that are missing, not asked,
    /// and not known lacking at `peer`, from a random start.
    fn pick_run(
        &self,
        peer: P,
        store: &dyn BlobStore,
        room: u32,
        below: &mut dyn FnMut(u64) -> u64,
    ) -> SmallVec<[u64; 8]> {
        let mut run = SmallVec::new();
        let (Some(asked), Some(held)) = (&self.asked, store.held(&self.hash)) else {
            return run;
        };
        let lacks = self.providers.get(&peer).and_then(|p| p.lacks.as_ref());
        let wanted = |group: u64| {
            !held.contains(group)
                && !asked.contains(group)
                && !lacks.is_some_and(|l| l.contains(group))
        };
        let groups = asked.groups();
        let start = below(groups);
        let Some(first) = (0..groups)
            .map(|i| (start + i) % groups)
            .find(|&g| wanted(g))
        else {
            return run;
        };
        let mut group = first;
        while run.len() < room as usize && group < groups && wanted(group) {
            run.push(group);
            group += 1;
        }
        run
    }

    fn ask(&mut self, now: Instant, peer: P, groups: SmallVec<[u64; 8]>, probe: bool) -> BlobGet {
        let req = self.next_req;
        self.next_req += 1;
        let count = if probe { 1 } else { groups.len() as u32 };
        if let Some(asked) = &mut self.asked {
            for &group in &groups {
                asked.insert(group);
            }
        }
        self.in_flight += count;
        if let Some(provider) = self.providers.get_mut(&peer) {
            provider.in_flight += count;
            provider.probing |= probe;
        }
        let ranges = match (groups.first(), groups.last()) {
            (Some(&first), Some(&last)) => SmallVec::from_slice(&[(first, last + 1)]),
            _ => SmallVec::new(),
        };
        self.pending.insert(
            req,
            Pending {
                provider: peer,
                groups,
                length_probe: probe,
                sent_at: now,
            },
        );
        BlobGet {
            req,
            hash: self.hash,
            last_first: probe,
            ranges,
        }
    }

    /// A group arrived from `from`. It is verified against the root before
    /// anything is kept; a group that fails drops `from`.
    pub fn on_group(
        &mut self,
        from: P,
        group: BlobGroup,
        store: &mut dyn BlobStore,
    ) -> Vec<FetchEvent<P>> {
        let mut events = Vec::new();
        let Some(pending) = self.pending.get(&group.req) else {
            self.stats.groups_unwanted += 1;
            return events;
        };
        if pending.provider != from {
            self.drop_provider(from, DropReason::Unsolicited, &mut events);
            return events;
        }
        let probe = pending.length_probe;
        let asked_here = pending.groups.contains(&group.group);
        match self.len {
            None if probe => {
                // The length: taken as true only if this is the last group
                // of a blob that long and it verifies.
                let verified = Outboard::empty(self.hash, group.len).and_then(|mut outboard| {
                    if group.group + 1 != outboard.groups() {
                        return Err(VerifyError::GroupOutOfRange);
                    }
                    outboard.insert_group(group.group, &group.data, &group.proof)?;
                    Ok(outboard)
                });
                match verified {
                    Ok(outboard) => {
                        if store.create(outboard).is_err() {
                            self.stats.store_refused += 1;
                            return events;
                        }
                        self.length_known(group.len);
                        events.push(FetchEvent::Length { len: group.len });
                        self.keep(group.group, group.data, store, &mut events);
                    }
                    Err(error) => {
                        self.stats.groups_refused += 1;
                        self.drop_provider(from, DropReason::Lied(error), &mut events);
                    }
                }
            }
            None => self.stats.groups_unwanted += 1,
            Some(len) => {
                let held = store
                    .held(&self.hash)
                    .is_some_and(|h| h.contains(group.group));
                if group.len != len {
                    self.stats.groups_refused += 1;
                    let reason = DropReason::Lied(VerifyError::WrongGroupLen);
                    self.drop_provider(from, reason, &mut events);
                    return events;
                }
                if held || !(asked_here || probe) {
                    self.stats.groups_unwanted += 1;
                    return events;
                }
                let result = match store.outboard_mut(&self.hash) {
                    Some(outboard) => outboard.insert_group(group.group, &group.data, &group.proof),
                    None => return events,
                };
                match result {
                    Ok(()) => self.keep(group.group, group.data, store, &mut events),
                    Err(error) => {
                        self.stats.groups_refused += 1;
                        self.drop_provider(from, DropReason::Lied(error), &mut events);
                    }
                }
            }
        }
        events
    }

    fn keep(
        &mut self,
        group: u64,
        data: Bytes,
        store: &mut dyn BlobStore,
        events: &mut Vec<FetchEvent<P>>,
    ) {
        let bytes = data.len() as u64;
        if store.write_group(&self.hash, group, data).is_err() {
            self.stats.store_refused += 1;
            return;
        }
        self.stats.groups_verified += 1;
        self.stats.bytes_verified += bytes;
        let Some(held) = store.held(&self.hash) else {
            return;
        };
        events.push(FetchEvent::Progress {
            held: held.count(),
            groups: held.groups(),
        });
        if held.is_full() && !self.done {
            self.done = true;
            events.push(FetchEvent::Done);
        }
    }

    /// A provider ended its answer to one request: what it did not send of
    /// it, it lacks (or it holds nothing, or is busy for a while).
    pub fn on_end(
        &mut self,
        now: Instant,
        from: P,
        end: BlobEnd,
        store: &dyn BlobStore,
    ) -> Vec<FetchEvent<P>> {
        let mut events = Vec::new();
        match self.pending.get(&end.req) {
            Some(pending) if pending.provider == from => {}
            Some(_) => {
                self.drop_provider(from, DropReason::Unsolicited, &mut events);
                return events;
            }
            None => return events,
        }
        let Some(pending) = self.pending.remove(&end.req) else {
            return events;
        };
        self.release(&pending);
        let held = store.held(&self.hash);
        let busy_backoff = self.limits.busy_backoff;
        let Some(provider) = self.providers.get_mut(&from) else {
            return events;
        };
        match end.status {
            BlobEndStatus::NotHeld => {
                provider.not_held = true;
                provider.learned_at = now;
            }
            BlobEndStatus::Busy => provider.idle_until = Some(now.saturating_add(busy_backoff)),
            BlobEndStatus::Done => {
                if let (Some(held), Some(len)) = (held, self.len) {
                    let missing: SmallVec<[u64; 8]> = pending
                        .groups
                        .iter()
                        .copied()
                        .filter(|&g| !held.contains(g))
                        .collect();
                    if !missing.is_empty() {
                        provider.learned_at = now;
                        let lacks = provider
                            .lacks
                            .get_or_insert_with(|| GroupSet::empty(group_count(len)));
                        for group in missing {
                            lacks.insert(group);
                        }
                        // Lacking every group we still need is holding none.
                        if held.count() + lacks.count() >= held.groups()
                            && (0..held.groups()).all(|g| held.contains(g) || lacks.contains(g))
                        {
                            provider.not_held = true;
                        }
                    }
                }
            }
        }
        events
    }

    /// Requests past their deadline drop their provider (slow); call at
    /// [`Fetch::next_deadline`].
    pub fn on_timeout(&mut self, now: Instant) -> Vec<FetchEvent<P>> {
        let mut events = Vec::new();
        let late: Vec<P> = self
            .pending
            .values()
            .filter(|p| p.sent_at.saturating_add(self.limits.request_timeout) <= now)
            .map(|p| p.provider)
            .collect();
        for peer in late {
            self.drop_provider(peer, DropReason::Slow, &mut events);
        }
        events
    }

    /// When the oldest request times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.sent_at.saturating_add(self.limits.request_timeout))
            .min()
    }

    /// The provider is gone (its connection closed): its requests are
    /// released, to be asked of others.
    pub fn provider_gone(&mut self, peer: P) {
        self.forget(peer);
    }

    fn release(&mut self, pending: &Pending<P>) {
        let count = if pending.length_probe {
            1
        } else {
            pending.groups.len() as u32
        };
        self.in_flight -= count;
        if let Some(provider) = self.providers.get_mut(&pending.provider) {
            provider.in_flight -= count;
            provider.probing &= !pending.length_probe;
        }
        if let Some(asked) = &mut self.asked {
            for &group in &pending.groups {
                asked.remove(group);
            }
        }
    }

    fn forget(&mut self, peer: P) {
        let reqs: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.provider == peer)
            .map(|(req, _)| *req)
            .collect();
        for req in reqs {
            if let Some(pending) = self.pending.remove(&req) {
                self.release(&pending);
            }
        }
        self.providers.remove(&peer);
    }

    fn drop_provider(&mut self, peer: P, reason: DropReason, events: &mut Vec<FetchEvent<P>>) {
        if !self.providers.contains_key(&peer) {
            return;
        }
        self.forget(peer);
        self.stats.providers_dropped += 1;
        events.push(FetchEvent::Dropped {
            provider: peer,
            reason,
        });
    }
}
