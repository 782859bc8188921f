//! Rings that merge (spec/chord.md §6.7), through the in-memory harness:
//! two rings founded apart (both sides of a healed partition) become one
//! ideal ring once two of their members meet, with every key readable from
//! everywhere; a member whose whole successor list failed at once finds its
//! place again instead of staying on its own.

use bytes::Bytes;
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::PeerEntry;
use ringmesh::{
    Accepted, ChordCommand, ChordConfig, ChordEvent, ChordRole, Config, DhtCommand, DhtConfig,
    DhtEvent, DhtKey, Duration, Event, NodeId, Security,
};

const LATENCY: Duration = Duration::from_millis(5);
const R: usize = 3;

fn config() -> Config {
    Config {
        security: Security::Plaintext,
        chord: Some(ChordConfig {
            successors: R,
            ..ChordConfig::lan()
        }),
        dht: Some(DhtConfig {
            replicas: R,
            ..DhtConfig::lan()
        }),
        ..Config::lan()
    }
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s[8] = 0x3e;
    s
}

fn network(n: usize) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        net.add_node(config(), secret(i), 9000 + i as u64)
            .expect("valid config");
    }
    net
}

fn entry(i: NodeIndex, net: &Network) -> PeerEntry {
    PeerEntry {
        id: net.node(i).node_id(),
        addrs: [Network::addr_of(i)].into_iter().collect(),
    }
}

/// Founds one ring of `members` (spec/chord.md §5.1).
fn found(net: &mut Network, members: &[NodeIndex]) {
    let founders: Vec<PeerEntry> = members.iter().map(|&i| entry(i, net)).collect();
    for &i in members {
        net.command(
            i,
            ChordCommand::Found {
                founders: founders.clone(),
            },
        )
        .expect("found");
    }
}

/// Nodes among `live` whose successor list or predecessor is not the
/// ideal one of the ring of all `live`.
fn not_ideal(net: &Network, live: &[NodeIndex]) -> Vec<NodeIndex> {
    let mut ids: Vec<NodeId> = live.iter().map(|&j| net.node(j).node_id()).collect();
    ids.sort_unstable();
    let n = ids.len();
    live.iter()
        .copied()
        .filter(|&i| {
            let node = net.node(i);
            let at = ids.binary_search(&node.node_id()).expect("live");
            let succs: Vec<NodeId> = (1..n.min(R + 1)).map(|k| ids[(at + k) % n]).collect();
            node.chord_role() != ChordRole::Member
                || node.chord_successors() != succs
                || node.chord_predecessor() != Some(ids[(at + n - 1) % n])
        })
        .collect()
}

/// Runs until the ring of `live` is ideal, at most `cap`; how long it took.
fn run_until_ideal(net: &mut Network, live: &[NodeIndex], cap: Duration) -> Option<Duration> {
    let start = net.now();
    while net.now() - start < cap {
        if not_ideal(net, live).is_empty() {
            return Some(net.now() - start);
        }
        net.run_for(Duration::from_millis(500));
    }
    None
}

fn open(key: &str) -> DhtKey {
    DhtKey::Open(Bytes::copy_from_slice(key.as_bytes()))
}

fn op(net: &mut Network, from: NodeIndex, command: DhtCommand) -> ringmesh::OpId {
    match net.command(from, command) {
        Ok(Accepted::Op(op)) => op,
        other => panic!("expected an op, got {other:?}"),
    }
}

fn put(net: &mut Network, from: NodeIndex, key: &str, value: &str) {
    let id = op(
        net,
        from,
        DhtCommand::Put {
            key: open(key),
            value: Bytes::copy_from_slice(value.as_bytes()),
        },
    );
    net.run_for(Duration::from_secs(3));
    let done = net.events_of(from).any(|e| match e {
        Event::Dht(DhtEvent::PutDone { id: i, .. }) => *i == id,
        Event::Dht(DhtEvent::Failed { id: i, reason }) if *i == id => {
            panic!("put of {key} failed: {reason}")
        }
        _ => false,
    });
    assert!(done, "the put of {key} ended");
}

fn get(net: &mut Network, from: NodeIndex, key: &str) -> Option<Bytes> {
    let id = op(net, from, DhtCommand::Get { key: open(key) });
    net.run_for(Duration::from_secs(3));
    net.events_of(from)
        .find_map(|e| match e {
            Event::Dht(DhtEvent::GetDone { id: i, value, .. }) if *i == id => Some(value.clone()),
            Event::Dht(DhtEvent::Failed { id: i, reason }) if *i == id => {
                panic!("get of {key} from node {from} failed: {reason}")
            }
            _ => None,
        })
        .expect("the get ended")
}

#[test]
fn two_rings_that_meet_merge_into_one_ideal_ring_and_keep_their_keys() {
    let n = 12;
    let mut net = network(n);
    let a: Vec<NodeIndex> = (0..n / 2).collect();
    let b: Vec<NodeIndex> = (n / 2..n).collect();
    found(&mut net, &a);
    found(&mut net, &b);
    net.run_for(Duration::from_secs(5));
    assert!(not_ideal(&net, &a).is_empty(), "ring A is ideal on its own");
    assert!(not_ideal(&net, &b).is_empty(), "ring B is ideal on its own");
    // Each ring stores its own keys (as both sides of a partition would).
    let keys: Vec<(String, String)> = (0..12)
        .map(|k| (format!("key-{k}"), format!("value-{k}")))
        .collect();
    for (k, (key, value)) in keys.iter().enumerate() {
        let from = if k % 2 == 0 {
            a[k % a.len()]
        } else {
            b[k % b.len()]
        };
        put(&mut net, from, key, value);
    }
    let all: Vec<NodeIndex> = (0..n).collect();
    assert!(!not_ideal(&net, &all).is_empty(), "two rings, not one");

    // One member of each ring meet (through the mesh).
    net.connect(a[0], b[0]).expect("dial");
    let took = run_until_ideal(&mut net, &all, Duration::from_secs(180));
    assert!(
        took.is_some(),
        "one ideal ring within 180 s; not ideal: {:?}",
        not_ideal(&net, &all)
    );
    let merges: u64 = all.iter().map(|&i| net.node(i).stats().chord.merges).sum();
    assert!(merges > 0, "members merged ({merges})");
    // Every key is readable from both former rings, after a repair round.
    net.run_for(Duration::from_secs(12));
    for (k, (key, value)) in keys.iter().enumerate() {
        let from = all[(k * 5) % n];
        assert_eq!(
            get(&mut net, from, key).as_deref(),
            Some(value.as_bytes()),
            "{key} read from node {from}"
        );
    }
    // And the ring stays one.
    net.run_for(Duration::from_secs(10));
    assert_eq!(not_ideal(&net, &all), Vec::<NodeIndex>::new());
}

#[test]
fn a_member_whose_successors_all_failed_finds_its_place_again() {
    let n = 12;
    let mut net = network(n);
    let all: Vec<NodeIndex> = (0..n).collect();
    found(&mut net, &all);
    net.run_for(Duration::from_secs(30));
    assert!(not_ideal(&net, &all).is_empty());
    // The r successors of one member fail at once: beyond the constraint.
    let mut by_id = all.clone();
    by_id.sort_by_key(|&i| net.node(i).node_id());
    let orphan = by_id[2];
    let dead: Vec<NodeIndex> = by_id[3..3 + R].to_vec();
    for &d in &dead {
        net.crash(d);
    }
    let live: Vec<NodeIndex> = all.iter().copied().filter(|i| !dead.contains(i)).collect();
    let took = run_until_ideal(&mut net, &live, Duration::from_secs(120));
    assert!(
        net.events_of(orphan)
            .any(|e| matches!(e, Event::Chord(ChordEvent::Orphaned))),
        "node {orphan} lost its whole list"
    );
    assert!(
        took.is_some(),
        "the ring is ideal again; not ideal: {:?}",
        not_ideal(&net, &live)
    );
    // The orphan looked for its place through merge lookups (§6.7). Which
    // mechanism closes the gap first depends on timing: a merge that takes
    // in the skipped members (`orphans_recovered`), or stabilization over
    // the list it rebuilt from its predecessor (§6.2 step 1) while the
    // merge lookups came back inconclusive. The outcome is the same and is
    // what is asserted: one ideal ring with the orphan in its place.
    let stats = net.node(orphan).stats().chord;
    assert!(stats.merge_lookups >= 1, "{stats:?}");
    assert_eq!(
        net.node(orphan).chord_successors()[0],
        net.node(by_id[3 + R]).node_id()
    );
}

/// An orphan takes its predecessor for successor (§6.4) and so skips
/// nearly the whole ring. Stabilization alone walks it back one member a
/// round (a ring of 48 needs about 20 s of 500 ms rounds), and a lookup of
/// its own place ends at its predecessor, whose list it copied. The
/// successor check (§6.7) reads the list of the first node its peer cache
/// knows after it, which closes the gap within a few merge ticks.
#[test]
fn an_orphan_that_skips_most_of_the_ring_finds_its_successor_through_the_peer_cache() {
    let n = 48;
    let mut net = network(n);
    let all: Vec<NodeIndex> = (0..n).collect();
    found(&mut net, &all);
    net.run_for(Duration::from_secs(20));
    assert!(not_ideal(&net, &all).is_empty());
    let mut by_id = all.clone();
    by_id.sort_by_key(|&i| net.node(i).node_id());
    let orphan = by_id[10];
    let dead: Vec<NodeIndex> = by_id[11..11 + R].to_vec();
    for &d in &dead {
        net.crash(d);
    }
    let live: Vec<NodeIndex> = all.iter().copied().filter(|i| !dead.contains(i)).collect();
    let took = run_until_ideal(&mut net, &live, Duration::from_secs(60));
    assert!(
        net.events_of(orphan)
            .any(|e| matches!(e, Event::Chord(ChordEvent::Orphaned))),
        "node {orphan} lost its whole list"
    );
    let took = took.unwrap_or_else(|| panic!("not ideal: {:?}", not_ideal(&net, &live)));
    assert!(
        took <= Duration::from_secs(8),
        "ideal {} ms after the failures",
        took.as_millis()
    );
    let stats = net.node(orphan).stats().chord;
    assert!(stats.successor_check_merges >= 1, "{stats:?}");
}
