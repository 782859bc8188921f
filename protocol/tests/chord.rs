//! The Chord ring driven through the in-memory harness (spec/chord.md):
//! founding, growing by joins, stabilization to the ideal ring, lookups
//! against the true owner, repair after failures, and routing messages
//! through the ring.

use bytes::Bytes;
use ringmesh::testing::{Network, NodeIndex, Recorded};
use ringmesh::wire::PeerEntry;
use ringmesh::{
    Accepted, ChordCommand, ChordConfig, ChordError, ChordEvent, ChordRole, Command, CommandError,
    Config, ConfigError, DeliveryError, DhtCommand, DhtConfig, DhtError, DhtEvent, DhtKey,
    Duration, Event, Identity, LookupError, MessagingCommand, MessagingEvent, NodeId, PeersConfig,
    Security,
};

const LATENCY: Duration = Duration::from_millis(5);

fn config(r: usize) -> Config {
    Config {
        security: Security::Plaintext,
        chord: Some(ChordConfig {
            successors: r,
            ..ChordConfig::lan()
        }),
        dht: Some(DhtConfig {
            replicas: r.min(3),
            ..DhtConfig::lan()
        }),
        ..Config::lan()
    }
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s[8] = 0xc4;
    s
}

fn network(n: usize, config: impl Fn(NodeIndex) -> Config) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        net.add_node(config(i), secret(i), 7000 + i as u64)
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

/// The ideal state of node `i` among the `live` nodes: its next `r`
/// members clockwise (fewer in a small ring) and the one before it.
fn ideal(net: &Network, live: &[NodeIndex], i: NodeIndex, r: usize) -> (Vec<NodeId>, NodeId) {
    let mut ids: Vec<NodeId> = live.iter().map(|&j| net.node(j).node_id()).collect();
    ids.sort_unstable();
    let me = net.node(i).node_id();
    let at = ids.binary_search(&me).expect("i is live");
    let n = ids.len();
    let succs = (1..n.min(r + 1)).map(|k| ids[(at + k) % n]).collect();
    (succs, ids[(at + n - 1) % n])
}

/// Nodes whose successor list or predecessor is not ideal.
fn not_ideal(net: &Network, live: &[NodeIndex], r: usize) -> Vec<NodeIndex> {
    live.iter()
        .copied()
        .filter(|&i| {
            let (succs, pred) = ideal(net, live, i, r);
            let node = net.node(i);
            node.chord_role() != ChordRole::Member
                || node.chord_successors() != succs
                || node.chord_predecessor() != Some(pred)
        })
        .collect()
}

/// The true owner of `key` among `live`: the first member at or after it.
fn owner(net: &Network, live: &[NodeIndex], key: NodeId) -> NodeId {
    let mut ids: Vec<NodeId> = live.iter().map(|&j| net.node(j).node_id()).collect();
    ids.sort_unstable();
    ids.iter().copied().find(|&id| id >= key).unwrap_or(ids[0])
}

/// Node 0 creates a ring; the others connect to it and join through it,
/// `spacing` apart.
fn grown_ring(n: usize, r: usize, spacing: Duration) -> Network {
    let mut net = network(n, |_| config(r));
    net.command(0, ChordCommand::Create).expect("create");
    for i in 1..n {
        net.connect(i, 0).expect("dial");
        net.settle();
        net.command(
            i,
            ChordCommand::Join {
                via: Some(net.node(0).node_id()),
            },
        )
        .expect("join");
        net.run_for(spacing);
    }
    net
}

fn lookup(net: &mut Network, from: NodeIndex, key: NodeId) -> Result<(NodeId, u32), LookupError> {
    let Ok(Accepted::Op(op)) = net.command(from, ChordCommand::Lookup { key }) else {
        panic!("lookup refused");
    };
    net.settle();
    net.run_for(Duration::from_secs(11));
    let result = net.events_of(from).find_map(|e| match e {
        Event::Chord(ChordEvent::LookupDone {
            id, owner, hops, ..
        }) if *id == op => Some(Ok((*owner, *hops))),
        Event::Chord(ChordEvent::LookupFailed { id, reason, .. }) if *id == op => {
            Some(Err(*reason))
        }
        _ => None,
    });
    result.expect("the lookup ended")
}

fn key(n: u64) -> NodeId {
    NodeId::from_u128(u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

#[test]
fn founders_start_in_the_ideal_ring_without_a_message() {
    let (n, r) = (6, 4);
    let mut net = network(n, |_| config(r));
    net.found_ring(0..n).expect("found"); // §5.1
    let live: Vec<NodeIndex> = (0..n).collect();
    assert_eq!(not_ideal(&net, &live, r), Vec::<NodeIndex>::new());
    // And it stays ideal as the nodes stabilize with each other.
    net.run_for(Duration::from_secs(20));
    assert_eq!(not_ideal(&net, &live, r), Vec::<NodeIndex>::new());
}

/// The ideal fingers of `me` in the ring `ids` (sorted) with lists of `r`:
/// the first member at or after me + 2^b, for every b whose target lies
/// past the successor list, without self and the successors.
fn ideal_fingers(ids: &[u128], me: u128, r: usize) -> Vec<u128> {
    let n = ids.len();
    let k = ids.binary_search(&me).expect("a member");
    let succs: Vec<u128> = (1..=r).map(|d| ids[(k + d) % n]).collect();
    let last = succs[r - 1];
    let past_list = |t: u128| t.wrapping_sub(me) > last.wrapping_sub(me) || t == me;
    let mut want: Vec<u128> = (0..128u32)
        .map(|b| me.wrapping_add(1u128 << b))
        .filter(|&t| past_list(t))
        .map(|t| ids[ids.partition_point(|&id| id < t) % n])
        .filter(|f| *f != me && !succs.contains(f))
        .collect();
    want.sort_unstable();
    want.dedup();
    want
}

#[test]
fn founders_start_with_the_ideal_fingers_of_the_founded_ring() {
    // §5.1: the fingers of the ring the list shows, not fixed later by
    // lookups that only the successors could route.
    let (n, r) = (40, 3);
    let mut net = network(n, |_| config(r));
    net.found_ring(0..n).expect("found");
    // 40 members and lists of 3: every member has fingers to hold.
    assert_eq!(assert_ideal_fingers(&net, n, r), n);
}

/// Asserts that each of the `n` members holds exactly the fingers the
/// ideal ring gives it; returns how many hold any.
fn assert_ideal_fingers(net: &Network, n: usize, r: usize) -> usize {
    let mut ids: Vec<u128> = (0..n).map(|i| net.node(i).node_id().as_u128()).collect();
    ids.sort_unstable();
    let mut with_fingers = 0;
    for i in 0..n {
        let me = net.node(i).node_id().as_u128();
        let mut got: Vec<u128> = net
            .node(i)
            .chord_fingers()
            .iter()
            .map(|f| f.as_u128())
            .collect();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, ideal_fingers(&ids, me, r), "node {i}");
        with_fingers += usize::from(!got.is_empty());
    }
    with_fingers
}

/// Fix-fingers lookups member `i` has started.
fn finger_lookups(net: &Network, i: NodeIndex) -> u64 {
    net.node(i).stats().chord.finger_lookups
}

#[test]
fn a_stable_ring_backs_off_its_finger_lookups() {
    // §7.3: a finger found where it was doubles the fix-fingers period, up
    // to `fix_fingers_backoff` times `fix_fingers_interval` (2 s in lan).
    // Over 200 s a founded ring that never changes ticks at 2, 4, 8, 16,
    // 32 s, then every 32 s: 10 lookups a member, against 100 at the base
    // period.
    let (n, r) = (40, 3);
    let run = |backoff: u32| {
        let mut net = network(n, |_| {
            let mut c = config(r);
            c.chord.as_mut().expect("chord on").fix_fingers_backoff = backoff;
            c
        });
        net.found_ring(0..n).expect("found");
        net.run_for(Duration::from_secs(200));
        let lookups: Vec<u64> = (0..n).map(|i| finger_lookups(&net, i)).collect();
        (net, lookups)
    };
    let (net, backed_off) = run(16);
    for (i, &c) in backed_off.iter().enumerate() {
        assert!((5..=12).contains(&c), "node {i}: {c} finger lookups");
    }
    // The fingers stay the ideal ones: checking them less often lost none.
    assert_ideal_fingers(&net, n, r);
    // Without the backoff, the same ring refreshes a finger every tick.
    let (_, base) = run(1);
    for (i, &c) in base.iter().enumerate() {
        assert!(c >= 90, "node {i}: {c} finger lookups at the base period");
    }
}

#[test]
fn a_moved_finger_brings_the_base_fix_fingers_period_back() {
    // §7.3: a member backed off to 16 x 2 s finds, at its next tick over
    // the right index, that a joiner took its farthest finger's place:
    // its next ticks come at once (a quarter period), then at the base
    // period, not 32 s later. The join is far from it: its successor list
    // and predecessor do not change, so only the moved finger says so.
    let (n, r) = (32, 3);
    let mut net = network(n, |_| config(r));
    net.found_ring(0..n).expect("found");
    net.run_for(Duration::from_secs(120));
    let x = 0;
    let before = finger_lookups(&net, x);
    net.run_for(Duration::from_secs(60));
    let idle = finger_lookups(&net, x) - before;
    assert!(idle <= 2, "backed off: {idle} finger lookups in 60 s");

    // A joiner just past x's farthest finger target, x + 2^127.
    let mut ids: Vec<u128> = (0..n).map(|i| net.node(i).node_id().as_u128()).collect();
    ids.sort_unstable();
    let me = net.node(x).node_id().as_u128();
    let target = me.wrapping_add(1u128 << 127);
    let finger = ids[ids.partition_point(|&id| id < target) % n];
    assert!(
        net.node(x)
            .chord_fingers()
            .contains(&NodeId::from_u128(finger))
    );
    let in_gap = |id: u128| {
        let d = id.wrapping_sub(target);
        d > 0 && d < finger.wrapping_sub(target)
    };
    let secret = (0..100_000u64)
        .map(|k| {
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&k.to_le_bytes());
            s[8] = 0x5f;
            s
        })
        .find(|&s| in_gap(Identity::from_secret_bytes(s).node_id().as_u128()))
        .expect("an id in the gap");
    let joiner = net.add_node(config(r), secret, 7999).expect("valid config");
    let joiner_id = net.node(joiner).node_id();
    // Through the finger itself: far from x.
    let via = (0..n)
        .find(|&i| net.node(i).node_id().as_u128() == finger)
        .expect("the finger is a node");
    let (succs, pred) = (
        net.node(x).chord_successors(),
        net.node(x).chord_predecessor(),
    );
    net.connect(joiner, via).expect("dial");
    net.settle();
    net.command(
        joiner,
        ChordCommand::Join {
            via: Some(NodeId::from_u128(finger)),
        },
    )
    .expect("join");
    // x finds it when its ticks come round to index 127: at most one
    // 32 s tick per finger index it keeps.
    let deadline = net.now() + Duration::from_secs(240);
    while !net.node(x).chord_fingers().contains(&joiner_id) {
        assert!(net.now() < deadline, "x never found the joiner");
        net.run_for(Duration::from_millis(100));
    }
    assert_eq!(net.node(x).chord_successors(), succs);
    assert_eq!(net.node(x).chord_predecessor(), pred);
    // Then ticks at +0.5 s, +2.5 s, +6.5 s: three in 10 s (none if the
    // next tick stayed 32 s away).
    let found = finger_lookups(&net, x);
    net.run_for(Duration::from_secs(10));
    let after = finger_lookups(&net, x) - found;
    assert!(
        after >= 3,
        "{after} finger lookups in the 10 s after the move"
    );
}

#[test]
fn a_ring_grown_by_joins_through_one_node_becomes_ideal() {
    for (n, r, spacing) in [(3, 4, 2000), (12, 4, 300), (20, 3, 0)] {
        let mut net = grown_ring(n, r, Duration::from_millis(spacing));
        let live: Vec<NodeIndex> = (0..n).collect();
        net.run_for(Duration::from_secs(30));
        assert_eq!(
            not_ideal(&net, &live, r),
            Vec::<NodeIndex>::new(),
            "{n} nodes, r = {r}, joins {spacing} ms apart"
        );
        let joined = net
            .events()
            .iter()
            .filter(|Recorded { event: e, .. }| {
                matches!(e, Event::Chord(ChordEvent::Joined { .. }))
            })
            .count();
        assert_eq!(joined, n - 1);
    }
}

#[test]
fn every_lookup_finds_the_true_owner() {
    let (n, r) = (24, 4);
    let mut net = grown_ring(n, r, Duration::from_millis(100));
    net.run_for(Duration::from_secs(60)); // fingers settle too
    let live: Vec<NodeIndex> = (0..n).collect();
    assert!(not_ideal(&net, &live, r).is_empty());
    let mut hops = 0;
    for k in 0..48 {
        let from = (k as usize * 7) % n;
        let key = key(k);
        let (found, h) = lookup(&mut net, from, key).expect("lookup");
        assert_eq!(found, owner(&net, &live, key), "key {k} from node {from}");
        hops += h;
    }
    // Fingers make paths short: well under the n / r of successor lists.
    let mean = f64::from(hops) / 48.0;
    assert!(mean < 4.0, "mean hops {mean}");
    // A member's own id is owned by itself.
    let me = net.node(3).node_id();
    assert_eq!(lookup(&mut net, 5, me).expect("lookup").0, me);
}

#[test]
fn crashed_members_are_flushed_and_the_ring_repairs() {
    let (n, r) = (16, 4);
    let mut net = grown_ring(n, r, Duration::from_millis(100));
    net.run_for(Duration::from_secs(30));
    let all: Vec<NodeIndex> = (0..n).collect();
    assert!(not_ideal(&net, &all, r).is_empty());
    // Two neighbours on the ring fail at once (fewer than r consecutive).
    let mut by_id = all.clone();
    by_id.sort_by_key(|&i| net.node(i).node_id());
    let dead = [by_id[5], by_id[6]];
    for &d in &dead {
        net.crash(d);
    }
    net.run_for(Duration::from_secs(40));
    let live: Vec<NodeIndex> = all.iter().copied().filter(|i| !dead.contains(i)).collect();
    assert_eq!(not_ideal(&net, &live, r), Vec::<NodeIndex>::new());
    for k in 0..16 {
        let key = key(k + 100);
        let (found, _) = lookup(&mut net, live[k as usize % live.len()], key).expect("lookup");
        assert_eq!(found, owner(&net, &live, key));
    }
    assert!(
        !net.events()
            .iter()
            .any(|Recorded { event: e, .. }| matches!(e, Event::Chord(ChordEvent::Orphaned)))
    );
}

#[test]
fn a_shut_down_member_is_flushed_at_once() {
    let (n, r) = (8, 3);
    let mut net = grown_ring(n, r, Duration::from_millis(100));
    net.run_for(Duration::from_secs(20));
    net.command(4, Command::Shutdown).expect("shutdown");
    net.settle();
    let gone = net.node(4).node_id();
    for i in (0..n).filter(|&i| i != 4) {
        let node = net.node(i);
        assert!(!node.chord_successors().contains(&gone), "node {i}");
        assert_ne!(node.chord_predecessor(), Some(gone), "node {i}");
    }
    net.run_for(Duration::from_secs(10));
    let live: Vec<NodeIndex> = (0..n).filter(|&i| i != 4).collect();
    assert!(not_ideal(&net, &live, r).is_empty());
}

#[test]
fn a_message_to_a_node_outside_the_ring_fails_at_once_as_unreachable() {
    let (n, r) = (6, 3);
    let mut net = grown_ring(n, r, Duration::from_millis(100));
    net.run_for(Duration::from_secs(10));
    let stranger = NodeId::from_u128(0x1234);
    let at = net.now();
    net.command(
        2,
        MessagingCommand::Send {
            to: stranger,
            payload: Bytes::from_static(b"hi"),
        },
    )
    .expect("queued");
    net.settle();
    let failed = net.events().iter().find_map(
        |Recorded {
             node: i,
             at: t,
             event: e,
         }| match e {
            Event::Messaging(MessagingEvent::SendFailed { to, reason, .. })
                if *i == 2 && *to == stranger =>
            {
                Some((*t, *reason))
            }
            _ => None,
        },
    );
    let (t, reason) = failed.expect("the send failed");
    assert_eq!(reason, DeliveryError::Unreachable);
    // Not at lookup_timeout (10 s): as soon as the ring said so.
    assert!(t - at < Duration::from_secs(1), "took {:?}", t - at);
}

#[test]
fn a_message_to_a_member_missing_from_the_peer_cache_is_routed_by_the_ring() {
    // Tiny peer caches: most members do not know most others.
    let (n, r) = (24, 3);
    let mut net = network(n, |_| Config {
        peers: PeersConfig {
            max_known_peers: 4,
            peer_exchange_size: 2,
            target_peers: 2,
            ..config(r).peers
        },
        ..config(r)
    });
    net.command(0, ChordCommand::Create).expect("create");
    for i in 1..n {
        net.connect(i, 0).expect("dial");
        net.settle();
        let via = Some(net.node(0).node_id());
        net.command(i, ChordCommand::Join { via }).expect("join");
        net.run_for(Duration::from_millis(300));
    }
    net.run_for(Duration::from_secs(30));
    let live: Vec<NodeIndex> = (0..n).collect();
    assert!(not_ideal(&net, &live, r).is_empty());
    let from = 7;
    let unknown: Vec<NodeIndex> = (0..n)
        .filter(|&j| {
            j != from
                && !net
                    .node(from)
                    .known_peers()
                    .iter()
                    .any(|e| e.id == net.node(j).node_id())
        })
        .collect();
    assert!(!unknown.is_empty());
    for &j in &unknown {
        let to = net.node(j).node_id();
        net.command(
            from,
            MessagingCommand::Send {
                to,
                payload: Bytes::from_static(b"through the ring"),
            },
        )
        .expect("queued");
    }
    net.settle();
    net.run_for(Duration::from_secs(5));
    for &j in &unknown {
        let got = net.events_of(j).any(
            |e| matches!(e, Event::Messaging(MessagingEvent::Direct { payload, .. }) if &payload[..] == b"through the ring"),
        );
        assert!(got, "node {j} got the message");
    }
}

#[test]
fn chord_commands_refuse_bad_input_without_effect() {
    let mut net = network(5, |i| {
        if i == 4 {
            Config::plaintext()
        } else {
            config(3)
        }
    });
    let off = net.command(4, ChordCommand::Create);
    assert_eq!(off, Err(CommandError::Chord(ChordError::Off)));
    assert_eq!(
        net.command(4, ChordCommand::Lookup { key: key(1) }),
        Err(CommandError::Chord(ChordError::Off))
    );
    let founders: Vec<PeerEntry> = (0..3).map(|i| entry(i, &net)).collect();
    assert!(matches!(
        net.command(0, ChordCommand::Found { founders }),
        Err(CommandError::Chord(ChordError::BadFounders(_)))
    ));
    let others: Vec<PeerEntry> = (1..5).map(|i| entry(i, &net)).collect();
    assert!(matches!(
        net.command(0, ChordCommand::Found { founders: others }),
        Err(CommandError::Chord(ChordError::BadFounders(_)))
    ));
    assert_eq!(
        net.command(1, ChordCommand::Join { via: None }),
        Err(CommandError::Chord(ChordError::NoChordPeer))
    );
    let stranger = net.node(2).node_id();
    assert_eq!(
        net.command(
            1,
            ChordCommand::Join {
                via: Some(stranger)
            }
        ),
        Err(CommandError::Chord(ChordError::NotConnected(stranger)))
    );
    assert_eq!(net.node(1).chord_role(), ChordRole::Out);
    net.command(0, ChordCommand::Create).expect("create");
    assert_eq!(
        net.command(0, ChordCommand::Create),
        Err(CommandError::Chord(ChordError::AlreadyInRing))
    );
    // A node without chord closes a peer that sends it chord messages: it
    // never offered the capability, so a chord node never sends one.
    net.connect(4, 0).expect("dial");
    net.settle();
    assert!(net.node(0).is_connected(net.node(4).node_id()));
}

#[test]
fn chord_config_is_validated() {
    let bad = [
        (
            Config {
                chord: Some(ChordConfig {
                    successors: 0,
                    ..ChordConfig::wan()
                }),
                dht: Some(DhtConfig::wan()),
                ..Config::default()
            },
            ConfigError::ChordSuccessors(0),
        ),
        (
            Config {
                chord: Some(ChordConfig {
                    successors: 33,
                    ..ChordConfig::wan()
                }),
                dht: Some(DhtConfig::wan()),
                ..Config::default()
            },
            ConfigError::ChordSuccessors(33),
        ),
        (
            Config {
                chord: Some(ChordConfig::wan()),
                dht: Some(DhtConfig {
                    replicas: 9,
                    ..DhtConfig::wan()
                }),
                ..Config::default()
            },
            ConfigError::DhtReplicas(9),
        ),
        (
            Config {
                chord: Some(ChordConfig::wan()),
                dht: Some(DhtConfig::wan()),
                ..Config::default()
            },
            ConfigError::ChordWithoutListenAddr,
        ),
        (
            Config {
                chord: Some(ChordConfig {
                    request_timeout: Duration::ZERO,
                    ..ChordConfig::wan()
                }),
                dht: Some(DhtConfig::wan()),
                ..Config::default()
            },
            ConfigError::Zero("chord.request_timeout"),
        ),
        (
            Config {
                chord: Some(ChordConfig {
                    fix_fingers_backoff: 0,
                    ..ChordConfig::wan()
                }),
                dht: Some(DhtConfig::wan()),
                ..Config::default()
            },
            ConfigError::Zero("chord.fix_fingers_backoff"),
        ),
    ];
    for (config, error) in bad {
        assert_eq!(config.validate(), Err(error));
    }
    assert_eq!(ChordConfig::successors_for(1), 4);
    assert_eq!(ChordConfig::successors_for(1000), 10);
    assert_eq!(ChordConfig::successors_for(1 << 20), 20);
    assert_eq!(ChordConfig::successors_for(u64::MAX), 32);
}

// ----- the Chord table -----

fn op(result: Result<Accepted, CommandError>) -> ringmesh::OpId {
    match result {
        Ok(Accepted::Op(op)) => op,
        other => panic!("expected an op, got {other:?}"),
    }
}

fn put(net: &mut Network, from: NodeIndex, key: &str, value: Option<&str>) -> Result<u64, String> {
    let key = DhtKey::Open(Bytes::copy_from_slice(key.as_bytes()));
    let command = match value {
        Some(v) => DhtCommand::Put {
            key,
            value: Bytes::copy_from_slice(v.as_bytes()),
        },
        None => DhtCommand::Delete { key },
    };
    let id = op(net.command(from, command));
    // Settled first: an acknowledged put is held by its replicas at once,
    // before any repair round could have spread it.
    net.settle();
    let ended = |net: &Network| {
        net.events_of(from).find_map(|e| match e {
            // A put ends in `PutDone`, a delete in `DeleteDone`.
            Event::Dht(DhtEvent::PutDone { id: i, version }) if *i == id && value.is_some() => {
                Some(Ok(*version))
            }
            Event::Dht(DhtEvent::DeleteDone { id: i, version }) if *i == id && value.is_none() => {
                Some(Ok(*version))
            }
            Event::Dht(DhtEvent::Failed { id: i, reason }) if *i == id => {
                Some(Err(reason.to_string()))
            }
            _ => None,
        })
    };
    if let Some(result) = ended(net) {
        return result;
    }
    net.run_for(Duration::from_secs(11));
    ended(net).expect("the put ended")
}

fn get(net: &mut Network, from: NodeIndex, key: &str) -> (Option<Bytes>, u64) {
    let key = DhtKey::Open(Bytes::copy_from_slice(key.as_bytes()));
    let id = op(net.command(from, DhtCommand::Get { key }));
    net.settle();
    net.run_for(Duration::from_secs(11));
    net.events_of(from)
        .find_map(|e| match e {
            Event::Dht(DhtEvent::GetDone {
                id: i,
                value,
                version,
                ..
            }) if *i == id => Some((value.clone(), *version)),
            Event::Dht(DhtEvent::Failed { id: i, reason }) if *i == id => {
                panic!("get failed: {reason}")
            }
            _ => None,
        })
        .expect("the get ended")
}

fn open(key: &str) -> DhtKey {
    DhtKey::Open(Bytes::copy_from_slice(key.as_bytes()))
}

fn holders(net: &Network, live: &[NodeIndex], key: &str) -> Vec<NodeIndex> {
    live.iter()
        .copied()
        .filter(|&i| net.node(i).dht_holds(&open(key)).is_some())
        .collect()
}

/// The `r_d` true holders of `key` among `live`: its owner and the next
/// members after it.
fn true_holders(net: &Network, live: &[NodeIndex], key: &str, rd: usize) -> Vec<NodeIndex> {
    let hash = open(key).hash();
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    let position = NodeId::from_bytes(first);
    let mut by_id: Vec<NodeIndex> = live.to_vec();
    by_id.sort_by_key(|&i| net.node(i).node_id());
    let owner = owner(net, live, position);
    let at = by_id
        .iter()
        .position(|&i| net.node(i).node_id() == owner)
        .expect("owner is live");
    let mut out: Vec<NodeIndex> = (0..rd).map(|k| by_id[(at + k) % by_id.len()]).collect();
    out.sort_unstable();
    out
}

#[test]
fn a_put_is_acknowledged_once_its_replicas_hold_it_and_any_node_reads_it() {
    let (n, r) = (10, 4);
    let mut net = grown_ring(n, r, Duration::from_millis(100));
    net.run_for(Duration::from_secs(20));
    let live: Vec<NodeIndex> = (0..n).collect();
    for k in 0..12 {
        let key = format!("key-{k}");
        assert_eq!(put(&mut net, k % n, &key, Some(&format!("v{k}"))), Ok(1));
        // Exactly the owner and the next r_d − 1 members hold it.
        assert_eq!(
            holders(&net, &live, &key),
            true_holders(&net, &live, &key, 3)
        );
        for from in [0, 5, 9] {
            let (value, version) = get(&mut net, from, &key);
            assert_eq!(value.as_deref(), Some(format!("v{k}").as_bytes()));
            assert_eq!(version, 1);
        }
    }
    // Overwrite, then delete: versions grow; a deleted key reads as absent.
    assert_eq!(put(&mut net, 3, "key-1", Some("again")), Ok(2));
    assert_eq!(
        get(&mut net, 7, "key-1"),
        (Some(Bytes::from_static(b"again")), 2)
    );
    assert_eq!(put(&mut net, 8, "key-1", None), Ok(3));
    assert_eq!(get(&mut net, 2, "key-1"), (None, 3));
    assert_eq!(get(&mut net, 2, "never-written"), (None, 0));
}

#[test]
fn keys_survive_the_failure_of_their_holders_and_are_re_replicated() {
    let (n, r) = (12, 4);
    let mut net = network(n, |_| {
        let mut config = config(r);
        if let Some(dht) = config.dht.as_mut() {
            dht.repair_interval = Duration::from_secs(2);
        }
        config
    });
    net.found_ring(0..n).expect("found"); // §5.1
    net.run_for(Duration::from_secs(5));
    let keys: Vec<String> = (0..30).map(|k| format!("k{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        assert_eq!(put(&mut net, k % n, key, Some(key)), Ok(1));
    }
    // Two adjacent members fail: every key keeps at least one holder.
    let all: Vec<NodeIndex> = (0..n).collect();
    let mut by_id = all.clone();
    by_id.sort_by_key(|&i| net.node(i).node_id());
    let dead = [by_id[3], by_id[4]];
    for &d in &dead {
        net.crash(d);
    }
    net.run_for(Duration::from_secs(30));
    let live: Vec<NodeIndex> = all.iter().copied().filter(|i| !dead.contains(i)).collect();
    assert!(not_ideal(&net, &live, r).is_empty());
    for key in &keys {
        assert_eq!(
            get(&mut net, live[0], key).0.as_deref(),
            Some(key.as_bytes())
        );
        // Repair brought every key back to r_d live holders.
        let held = holders(&net, &live, key);
        for h in true_holders(&net, &live, key, 3) {
            assert!(held.contains(&h), "{key}: holder {h} lacks it");
        }
    }
}

#[test]
fn a_joining_node_is_handed_the_keys_it_now_owns() {
    let (n, r) = (8, 3);
    let mut net = grown_ring(n, r, Duration::from_millis(100));
    net.run_for(Duration::from_secs(10));
    let keys: Vec<String> = (0..40).map(|k| format!("h{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        assert_eq!(put(&mut net, k % n, key, Some("x")), Ok(1));
    }
    let newcomer = net.add_node(config(r), secret(99), 99).expect("node");
    net.connect(newcomer, 0).expect("dial");
    net.settle();
    let via = Some(net.node(0).node_id());
    net.command(newcomer, ChordCommand::Join { via })
        .expect("join");
    net.run_for(Duration::from_secs(20));
    let live: Vec<NodeIndex> = (0..=newcomer).collect();
    assert!(not_ideal(&net, &live, r).is_empty());
    let owned: Vec<&String> = keys
        .iter()
        .filter(|k| true_holders(&net, &live, k, 3).contains(&newcomer))
        .collect();
    assert!(!owned.is_empty(), "the newcomer holds some keys");
    for key in owned {
        assert!(net.node(newcomer).dht_holds(&open(key)).is_some(), "{key}");
    }
}

/// A founded ring of 8 (5 successors, `r_d` = 3) with 40 keys and `repair` as the table's
/// repair interval; then `newcomers` members join between the member that
/// owns the most keys and its successor, and that owner fails in the step
/// it takes one of them as its successor, before its sync to it is
/// delivered (§10.4, "Strays"). Returns the network, the live members and
/// the keys.
fn owner_fails_as_members_join_after_it(
    newcomers: usize,
    repair: Duration,
) -> (Network, Vec<NodeIndex>, Vec<String>) {
    let (n, r) = (8, 5);
    let with_repair = |r| {
        let mut config = config(r);
        if let Some(dht) = config.dht.as_mut() {
            dht.repair_interval = repair;
        }
        config
    };
    let mut net = network(n, |_| with_repair(r));
    net.found_ring(0..n).expect("found"); // §5.1
    net.run_for(Duration::from_secs(5));
    let keys: Vec<String> = (0..40).map(|k| format!("s{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        assert_eq!(put(&mut net, k % n, key, Some(key)), Ok(1));
    }
    let members: Vec<NodeIndex> = (0..n).collect();
    let mut by_id = members.clone();
    by_id.sort_by_key(|&i| net.node(i).node_id());
    let owned = |o: usize| {
        keys.iter()
            .filter(|k| true_holders(&net, &members, k, 1) == vec![by_id[o]])
            .count()
    };
    let o = (0..n).max_by_key(|&o| owned(o)).expect("members");
    assert!(owned(o) > 0);
    let (owner, next) = (by_id[o], by_id[(o + 1) % n]);
    let (lo, hi) = (net.node(owner).node_id(), net.node(next).node_id());
    let between = |id: NodeId| {
        if lo < hi {
            lo < id && id < hi
        } else {
            id > lo || id < hi
        }
    };
    let secrets: Vec<[u8; 32]> = (100..10_000)
        .map(secret)
        .filter(|s| between(Identity::from_secret_bytes(*s).node_id()))
        .take(newcomers)
        .collect();
    assert_eq!(secrets.len(), newcomers, "ids in the gap");
    let via = Some(net.node(next).node_id());
    let mut joined = Vec::new();
    for (k, s) in secrets.into_iter().enumerate() {
        let i = net
            .add_node(with_repair(r), s, 99 + k as u64)
            .expect("node");
        net.connect(i, next).expect("dial");
        joined.push(i);
    }
    net.settle();
    for &i in &joined {
        net.command(i, ChordCommand::Join { via }).expect("join");
    }
    let ids: Vec<NodeId> = joined.iter().map(|&i| net.node(i).node_id()).collect();
    let deadline = net.now() + Duration::from_secs(10);
    while !net
        .node(owner)
        .chord_successors()
        .first()
        .is_some_and(|s| ids.contains(s))
    {
        assert!(
            net.now() < deadline,
            "no newcomer became the owner's successor"
        );
        assert!(net.step());
    }
    net.crash(owner);
    let live: Vec<NodeIndex> = (0..net_len(&joined, n)).filter(|&i| i != owner).collect();
    (net, live, keys)
}

fn net_len(joined: &[NodeIndex], n: usize) -> usize {
    joined.iter().max().map_or(n, |&m| m + 1)
}

/// Every key is held by its `r_d` true holders among `live`.
fn every_key_at_its_holders(net: &Network, live: &[NodeIndex], keys: &[String]) {
    for key in keys {
        let held = holders(net, live, key);
        for h in true_holders(net, live, key, 3) {
            assert!(
                held.contains(&h),
                "{key}: holder {h} lacks it (held by {held:?})"
            );
        }
    }
}

/// §10.4, "Strays": an owner that fails before it syncs the member that
/// just joined after it leaves its keys on its old holders, which are no
/// longer the holders of anyone's range: no sync confirms them, and
/// garbage would drop them after three repair intervals. They go back to
/// the new owner instead, whose repair spreads them again.
#[test]
fn keys_outlive_an_owner_that_fails_before_it_syncs_its_new_successor() {
    let repair = Duration::from_secs(2);
    let (mut net, live, keys) = owner_fails_as_members_join_after_it(1, repair);
    // Past the garbage's three repair intervals, twice over.
    net.run_for(repair.saturating_mul(6));
    assert!(not_ideal(&net, &live, 5).is_empty());
    every_key_at_its_holders(&net, &live, &keys);
    for key in &keys {
        assert_eq!(
            get(&mut net, live[0], key).0.as_deref(),
            Some(key.as_bytes()),
            "{key}"
        );
    }
    let returned: u64 = live
        .iter()
        .map(|&i| net.node(i).stats().dht.strays_returned)
        .sum();
    assert!(returned > 0, "the keys came back as strays");
}

/// §10.3 and §10.4: three members join after the owner, which fails
/// before it syncs them. Its keys' copies now sit on the 4th and 5th
/// members from their new owner, beyond the `r_d` holders a read asks.
/// Before they are back (a repair interval and a quarter after the last
/// sync), a read finds them by asking the rest of the lookup's list;
/// afterwards the true holders hold them again.
#[test]
fn a_read_finds_keys_beyond_their_holders_until_they_are_back() {
    let repair = Duration::from_secs(60);
    let (mut net, live, keys) = owner_fails_as_members_join_after_it(3, repair);
    net.run_for(Duration::from_secs(20));
    assert!(not_ideal(&net, &live, 5).is_empty());
    let beyond: Vec<&String> = keys
        .iter()
        .filter(|k| {
            let held = holders(&net, &live, k);
            true_holders(&net, &live, k, 3)
                .iter()
                .all(|h| !held.contains(h))
        })
        .collect();
    assert!(!beyond.is_empty(), "some keys sit beyond their holders");
    let reader = live[0];
    for key in &beyond {
        assert_eq!(
            get(&mut net, reader, key).0.as_deref(),
            Some(key.as_bytes()),
            "{key}"
        );
    }
    assert!(net.node(reader).stats().dht.gets_widened > 0);
    net.run_for(repair.saturating_mul(3));
    every_key_at_its_holders(&net, &live, &keys);
}

#[test]
fn table_commands_refuse_bad_input_and_a_full_store_says_so() {
    let (n, r) = (4, 3);
    let mut net = network(n, |_| {
        let mut config = config(r);
        if let Some(dht) = config.dht.as_mut() {
            dht.max_entries = 2;
        }
        config
    });
    net.found_ring(0..n).expect("found"); // §5.1
    let empty = net.command(
        0,
        DhtCommand::Get {
            key: DhtKey::Open(Bytes::new()),
        },
    );
    assert_eq!(empty, Err(CommandError::Dht(DhtError::BadKey(0))));
    let long = Bytes::from(vec![b'k'; 257]);
    assert_eq!(
        net.command(
            0,
            DhtCommand::Delete {
                key: DhtKey::Open(long)
            }
        ),
        Err(CommandError::Dht(DhtError::BadKey(257)))
    );
    let huge = Bytes::from(vec![0u8; (1 << 20) + 1]);
    assert!(matches!(
        net.command(
            0,
            DhtCommand::Put {
                key: DhtKey::Open(Bytes::from_static(b"k")),
                value: huge
            }
        ),
        Err(CommandError::Dht(DhtError::ValueTooLarge { .. }))
    ));
    // Each node holds at most 2 entries, and 3 holders per key with 4
    // nodes: the table fills quickly, and a full store answers Full.
    let results: Vec<Result<u64, String>> = (0..8)
        .map(|k| put(&mut net, k % n, &format!("f{k}"), Some("v")))
        .collect();
    assert!(results.iter().any(|r| r.is_ok()));
    assert!(
        results.iter().any(|r| r
            .as_ref()
            .is_err_and(|e| e.contains("full") || e.contains("holders"))),
        "{results:?}"
    );
    for i in 0..n {
        assert!(net.node(i).dht_usage().entries <= 2);
    }
}

/// Founders dial each other at once, so duplicate connections are retired
/// while the first requests are in flight: replies must go out on the
/// connection each side keeps, not the one the request came on.
#[test]
fn requests_sent_while_duplicate_connections_resolve_are_answered() {
    let (n, r) = (5, 3);
    let mut net = network(n, |_| config(r));
    net.found_ring(0..n).expect("found"); // §5.1
    for i in 0..n {
        let key = format!("early-{i}");
        // Only what is in flight is run: no timer, no retry can help.
        let id = op(net.command(
            i,
            DhtCommand::Put {
                key: DhtKey::Open(Bytes::from(key)),
                value: Bytes::from_static(b"v"),
            },
        ));
        net.settle();
        assert!(
            net.events_of(i)
                .any(|e| matches!(e, Event::Dht(DhtEvent::PutDone { id: a, .. }) if *a == id)),
            "node {i}'s put was acknowledged without a retry"
        );
    }
    assert!(net.node(0).stats().peers.duplicate_connections > 0);
}
