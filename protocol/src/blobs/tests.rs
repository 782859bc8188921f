//! Fetches against honest, lying, empty and partial providers, driven by a
//! small seeded harness: requests and answers travel through one queue
//! delivered in a random (seeded) order.

use std::collections::VecDeque;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::time::Instant;
use crate::wire::{BlobEndStatus, BlobGet, Message};

/// A tiny seeded generator for the harness (splitmix64).
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

fn blob(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// How a provider in the harness behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Honest,
    /// Flips one byte of every group it sends.
    Liar,
    /// Honest for its first `n` groups, then flips one byte in each.
    LiarFrom(u64),
    /// Flips one byte of one proof sibling of every group it sends.
    ProofLiar,
    /// Holds nothing.
    Empty,
}

struct Peer {
    store: MemStore,
    server: Server,
    kind: Kind,
    /// Groups this peer sent, and how many of them were refused.
    groups_sent: u64,
}

/// One fetcher (index 0 is never a provider) and providers `1..`.
struct Harness {
    peers: Vec<Peer>,
    draw: Draw,
}

impl Harness {
    fn new(data: &Bytes, kinds: &[Kind], seed: u64) -> Harness {
        let mut peers = vec![Peer {
            store: MemStore::new(),
            server: Server::new(ServeLimits::default()),
            kind: Kind::Honest,
            groups_sent: 0,
        }];
        for &kind in kinds {
            let mut store = MemStore::new();
            if kind != Kind::Empty {
                store.add(data.clone()).expect("no cap");
            }
            peers.push(Peer {
                store,
                server: Server::new(ServeLimits::default()),
                kind,
                groups_sent: 0,
            });
        }
        Harness {
            peers,
            draw: Draw(seed),
        }
    }

    fn answer(&mut self, provider: usize, get: &BlobGet) -> Vec<Message> {
        let peer = &mut self.peers[provider];
        let mut answers: Vec<Message> = peer
            .server
            .answer(Instant::from_micros(0), &peer.store, get)
            .into_vec();
        for answer in &mut answers {
            if let Message::BlobGroup(group) = answer {
                peer.groups_sent += 1;
                let lies = match peer.kind {
                    Kind::LiarFrom(n) => peer.groups_sent > n,
                    kind => kind == Kind::Liar,
                };
                match peer.kind {
                    _ if lies && !group.data.is_empty() => {
                        let mut data = group.data.to_vec();
                        let at = (group.group as usize * 7919) % data.len();
                        data[at] ^= 0x20;
                        group.data = data.into();
                    }
                    Kind::ProofLiar if !group.proof.is_empty() => group.proof[0][5] ^= 1,
                    _ => {}
                }
            }
        }
        answers
    }

    /// Runs `fetch` (into peer 0's store) until done or nothing moves;
    /// answers are delivered in a random order per provider batch.
    fn run(&mut self, fetch: &mut Fetch<usize>) -> Vec<FetchEvent<usize>> {
        let now = Instant::from_micros(0);
        let mut events = Vec::new();
        let mut queue: VecDeque<(usize, Message)> = VecDeque::new();
        for _ in 0..100_000 {
            if fetch.is_done() {
                break;
            }
            let Harness { peers, draw } = self;
            let requests = fetch.poll_requests(now, &peers[0].store, &mut |n| draw.below(n));
            for (provider, get) in requests {
                for answer in self.answer(provider, &get) {
                    queue.push_back((provider, answer));
                }
            }
            if queue.is_empty() {
                break;
            }
            // Deliver one answer from a random provider's stream (each
            // provider's own answers stay in order, as on one connection).
            let pick = self.draw.below(queue.len() as u64) as usize;
            let from = queue[pick].0;
            let first = queue.iter().position(|(p, _)| *p == from).expect("there");
            let (from, message) = queue.remove(first).expect("there");
            let store = &mut self.peers[0].store;
            match message {
                Message::BlobGroup(group) => events.extend(fetch.on_group(from, group, store)),
                Message::BlobEnd(end) => events.extend(fetch.on_end(now, from, end, store)),
                other => panic!("unexpected {other:?}"),
            }
        }
        events
    }
}

fn dropped(events: &[FetchEvent<usize>]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            FetchEvent::Dropped { provider, .. } => Some(*provider),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fetch_from_one_honest_provider_gets_the_blob() {
    let data = blob(20 * GROUP_LEN as usize + 333, 1);
    let mut harness = Harness::new(&data, &[Kind::Honest], 1);
    let hash = BlobHash::of(&data);
    let mut fetch = Fetch::new(hash, FetchLimits::default(), &harness.peers[0].store);
    fetch.add_provider(1);
    let events = harness.run(&mut fetch);
    assert!(fetch.is_done());
    assert_eq!(fetch.blob_len(), Some(data.len() as u64));
    assert_eq!(
        events.first(),
        Some(&FetchEvent::Length {
            len: data.len() as u64
        })
    );
    assert_eq!(events.last(), Some(&FetchEvent::Done));
    assert_eq!(
        harness.peers[0].store.read_all(&hash).as_deref(),
        Some(&data[..])
    );
    assert_eq!(fetch.stats.groups_verified, 21);
    assert_eq!(harness.peers[1].groups_sent, 21, "no group sent twice");
}

#[test]
fn a_provider_that_corrupts_a_byte_is_dropped_at_its_first_bad_group_and_an_honest_one_completes() {
    let data = blob(40 * GROUP_LEN as usize, 2);
    let hash = BlobHash::of(&data);
    for kind in [
        Kind::Liar,
        Kind::ProofLiar,
        Kind::LiarFrom(5),
        Kind::LiarFrom(17),
    ] {
        for seed in 0..4 {
            let mut harness = Harness::new(&data, &[kind, Kind::Honest], seed);
            let mut fetch = Fetch::new(hash, FetchLimits::default(), &harness.peers[0].store);
            // The liar alone first: it is dropped at the first bad group.
            fetch.add_provider(1);
            let events = harness.run(&mut fetch);
            assert_eq!(dropped(&events), vec![1], "{kind:?} seed {seed}");
            assert_eq!(fetch.stats.groups_refused, 1, "{kind:?} seed {seed}");
            let good = match kind {
                Kind::LiarFrom(n) => n,
                _ => 0,
            };
            assert_eq!(fetch.stats.groups_verified, good, "{kind:?} seed {seed}");
            assert!(fetch.is_stalled());
            // Then an honest one: the fetch completes, keeping what it had.
            fetch.add_provider(2);
            harness.run(&mut fetch);
            assert!(fetch.is_done(), "{kind:?} seed {seed}");
            assert_eq!(
                harness.peers[2].groups_sent,
                40 - good,
                "{kind:?} seed {seed}"
            );
            assert_eq!(
                harness.peers[0].store.read_all(&hash).as_deref(),
                Some(&data[..])
            );
        }
    }
}

#[test]
fn a_provider_that_holds_nothing_is_answered_at_once_and_skipped() {
    let data = blob(5 * GROUP_LEN as usize, 3);
    let mut harness = Harness::new(&data, &[Kind::Empty, Kind::Honest], 9);
    let hash = BlobHash::of(&data);
    let mut fetch = Fetch::new(hash, FetchLimits::default(), &harness.peers[0].store);
    fetch.add_provider(1);
    fetch.add_provider(2);
    harness.run(&mut fetch);
    assert!(fetch.is_done());
    assert_eq!(harness.peers[1].server.stats.not_held, 1);
    assert_eq!(harness.peers[1].groups_sent, 0);
}

#[test]
fn with_only_liars_and_empties_the_fetch_stalls_without_wrong_bytes() {
    let data = blob(3 * GROUP_LEN as usize, 4);
    let mut harness = Harness::new(&data, &[Kind::Liar, Kind::Empty], 3);
    let hash = BlobHash::of(&data);
    let mut fetch = Fetch::new(hash, FetchLimits::default(), &harness.peers[0].store);
    fetch.add_provider(1);
    fetch.add_provider(2);
    harness.run(&mut fetch);
    assert!(!fetch.is_done());
    assert!(fetch.is_stalled());
    // The liar's probe was refused, so the length was never taken as true.
    assert_eq!(fetch.blob_len(), None);
    assert!(harness.peers[0].store.outboard(&hash).is_none());
}

#[test]
fn a_fetch_resumed_over_a_partial_blob_asks_only_for_what_it_lacks() {
    let data = blob(30 * GROUP_LEN as usize + 5, 5);
    let hash = BlobHash::of(&data);
    let mut harness = Harness::new(&data, &[Kind::Honest], 11);
    // A first fetch stopped after some groups (its requests are lost with
    // it: a fresh `Fetch` over the same store is the restart).
    let mut first = Fetch::new(hash, FetchLimits::default(), &harness.peers[0].store);
    first.add_provider(1);
    let now = Instant::from_micros(0);
    let Harness { peers, draw } = &mut harness;
    let requests = first.poll_requests(now, &peers[0].store, &mut |n| draw.below(n));
    for (_, get) in requests {
        for answer in harness.answer(1, &get) {
            match answer {
                Message::BlobGroup(g) => drop(first.on_group(1, g, &mut harness.peers[0].store)),
                Message::BlobEnd(e) => drop(first.on_end(now, 1, e, &harness.peers[0].store)),
                _ => {}
            }
        }
    }
    let Harness { peers, draw } = &mut harness;
    let requests = first.poll_requests(now, &peers[0].store, &mut |n| draw.below(n));
    for (_, get) in requests.into_iter().take(1) {
        for answer in harness.answer(1, &get) {
            if let Message::BlobGroup(g) = answer {
                drop(first.on_group(1, g, &mut harness.peers[0].store));
            }
        }
    }
    let held_before = harness.peers[0].store.held(&hash).expect("created").count();
    assert!(held_before > 1 && held_before < 31, "{held_before}");
    let sent_before = harness.peers[1].groups_sent;

    let mut resumed = Fetch::new(hash, FetchLimits::default(), &harness.peers[0].store);
    assert_eq!(
        resumed.blob_len(),
        Some(data.len() as u64),
        "length known from the store"
    );
    resumed.add_provider(1);
    let events = harness.run(&mut resumed);
    assert!(resumed.is_done());
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, FetchEvent::Length { .. }))
    );
    assert_eq!(harness.peers[1].groups_sent - sent_before, 31 - held_before);
    assert_eq!(
        harness.peers[0].store.read_all(&hash).as_deref(),
        Some(&data[..])
    );
}

#[test]
fn a_spent_serving_budget_answers_busy_and_counts_it() {
    let data = blob(8 * GROUP_LEN as usize, 6);
    let mut store = MemStore::new();
    let hash = store.add(data).expect("no cap");
    let mut server = Server::new(ServeLimits {
        bytes_per_sec: GROUP_LEN,
        burst: 3 * GROUP_LEN,
        max_groups_per_answer: 64,
    });
    let get = BlobGet {
        req: 1,
        hash,
        last_first: false,
        ranges: smallvec::smallvec![(0, 8)],
    };
    let answer = server.answer(Instant::from_micros(0), &store, &get);
    assert_eq!(answer.len(), 4, "three groups, then Busy");
    assert!(matches!(
        answer.last(),
        Some(Message::BlobEnd(end)) if end.status == BlobEndStatus::Busy
    ));
    assert_eq!(server.stats.refused_busy, 1);
    assert_eq!(server.stats.bytes_sent, 3 * GROUP_LEN);
    // Two seconds refill two groups' worth.
    let answer = server.answer(Instant::from_micros(2_000_000), &store, &get);
    assert_eq!(answer.len(), 3);
}

#[test]
fn a_fetch_keeps_within_its_window_and_bytes_in_flight() {
    let data = blob(200 * GROUP_LEN as usize, 7);
    let store = MemStore::new();
    let limits = FetchLimits {
        window: 16,
        max_in_flight: 40,
        ..FetchLimits::default()
    };
    let mut fetch: Fetch<usize> = Fetch::new(BlobHash::of(&data), limits, &store);
    // Length known: a seeder's store lets the fetcher skip the probe.
    let mut mine = MemStore::new();
    mine.create(Outboard::empty(BlobHash::of(&data), data.len() as u64).expect("len"))
        .expect("no cap");
    let mut fetch_known: Fetch<usize> = Fetch::new(BlobHash::of(&data), limits, &mine);
    for provider in 1..=5 {
        fetch.add_provider(provider);
        fetch_known.add_provider(provider);
    }
    let mut draw = Draw(1);
    let requests =
        fetch_known.poll_requests(Instant::from_micros(0), &mine, &mut |n| draw.below(n));
    let per_provider = |p: usize| {
        requests
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, g)| g.ranges.iter().map(|(s, e)| e - s).sum::<u64>())
            .sum::<u64>()
    };
    assert!((1..=5).all(|p| per_provider(p) <= 16));
    assert_eq!((1..=5).map(per_provider).sum::<u64>(), 40);
    assert_eq!(fetch_known.in_flight(), 40);
    // Before the length is known: one probe per provider, nothing else.
    let probes = fetch.poll_requests(Instant::from_micros(0), &store, &mut |n| draw.below(n));
    assert_eq!(probes.len(), 5);
    assert!(
        probes
            .iter()
            .all(|(_, g)| g.last_first && g.ranges.is_empty())
    );
}

#[test]
fn a_slow_provider_is_dropped_and_its_groups_asked_elsewhere() {
    let data = blob(4 * GROUP_LEN as usize, 8);
    let hash = BlobHash::of(&data);
    let mut mine = MemStore::new();
    mine.create(Outboard::empty(hash, data.len() as u64).expect("len"))
        .expect("no cap");
    let mut fetch: Fetch<usize> = Fetch::new(hash, FetchLimits::default(), &mine);
    fetch.add_provider(1);
    let mut draw = Draw(2);
    let t0 = Instant::from_micros(0);
    let asked = fetch.poll_requests(t0, &mine, &mut |n| draw.below(n));
    assert!(asked.iter().all(|(p, _)| *p == 1));
    assert_eq!(fetch.in_flight(), 4);
    let deadline = fetch.next_deadline().expect("pending");
    assert!(fetch.on_timeout(t0).is_empty());
    let events = fetch.on_timeout(deadline);
    assert_eq!(
        events,
        vec![FetchEvent::Dropped {
            provider: 1,
            reason: DropReason::Slow
        }]
    );
    assert_eq!(fetch.in_flight(), 0);
    fetch.add_provider(2);
    let again = fetch.poll_requests(deadline, &mine, &mut |n| draw.below(n));
    assert!(again.iter().all(|(p, _)| *p == 2));
    assert_eq!(
        fetch.in_flight(),
        4,
        "the slow provider's groups, asked again"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any blob, any mix of liars and empty providers with at least one
    /// honest one, any delivery order: the fetch completes with the
    /// original bytes, and every liar that sent a group was dropped after
    /// exactly one refused group.
    #[test]
    fn a_fetch_with_one_honest_provider_always_gets_the_right_bytes(
        len in 0usize..(24 * GROUP_LEN as usize),
        kinds in proptest::collection::vec(
            prop_oneof![Just(Kind::Liar), Just(Kind::ProofLiar), Just(Kind::Empty), Just(Kind::Honest)],
            0..5,
        ),
        honest_at in 0usize..6,
        seed: u64,
    ) {
        let data = blob(len, seed as u8);
        let mut kinds = kinds;
        kinds.insert(honest_at.min(kinds.len()), Kind::Honest);
        let mut harness = Harness::new(&data, &kinds, seed);
        let hash = BlobHash::of(&data);
        let mut fetch = Fetch::new(hash, FetchLimits::default(), &harness.peers[0].store);
        for provider in 1..=kinds.len() {
            fetch.add_provider(provider);
        }
        let events = harness.run(&mut fetch);
        prop_assert!(fetch.is_done());
        let fetched = harness.peers[0].store.read_all(&hash);
        prop_assert_eq!(fetched.as_deref(), Some(&data[..]));
        let dropped = dropped(&events);
        for provider in &dropped {
            let kind = kinds[provider - 1];
            prop_assert!(kind == Kind::Liar || kind == Kind::ProofLiar, "{:?} dropped", kind);
        }
        prop_assert_eq!(fetch.stats.groups_refused, dropped.len() as u64);
    }
}
