//! The sync table over `testing::Network` (spec/sync.md): a write reaches
//! every node and a late joiner; a lease keeps other writers (honest or
//! not) off a key; forged and replayed entries are refused; a deleted key
//! never comes back, not even from a node that was away; the table is off
//! by default and then sends nothing.

use bytes::Bytes;
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{Message, SyncEntry, SyncPublish};
use ringmesh::{
    CloseReason, CommandError, Config, Duration, Event, Identity, PeersCommand, PeersEvent,
    Security, SyncCommand, SyncConfig, SyncError, SyncEvent, decode_sync_map,
};

const LATENCY: Duration = Duration::from_millis(5);
const LEASE: Duration = Duration::from_secs(60);

fn secret(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn config() -> Config {
    Config {
        security: Security::Plaintext,
        sync: Some(SyncConfig {
            lease: LEASE,
            max_skew: Duration::from_secs(5),
            tombstone_ttl: Duration::from_secs(600),
            anti_entropy_interval: Duration::from_secs(2),
            ..SyncConfig::lan()
        }),
        ..Config::lan()
    }
}

/// `n` nodes on a line 0 – 1 – … – n−1 (a write must be relayed to reach
/// the far end).
fn line(n: usize) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        net.add_node(config(), secret(i), 10 + i as u64)
            .expect("as set up");
    }
    for i in 1..n {
        net.connect(i - 1, i).expect("as set up");
    }
    net.settle();
    net
}

fn key(k: &str) -> Bytes {
    Bytes::copy_from_slice(k.as_bytes())
}

fn set(net: &mut Network, i: NodeIndex, k: &str, v: &str) -> Result<(), CommandError> {
    net.command(
        i,
        SyncCommand::Set {
            key: key(k),
            value: key(v),
        },
    )
    .map(|_| ())
}

fn value(net: &Network, i: NodeIndex, k: &str) -> Option<Bytes> {
    net.node(i).sync_get(k.as_bytes()).and_then(|h| h.value)
}

/// Node `from` sends `entries` to node `to` as they are (a tampered
/// member), then the network carries them.
fn adversary_publish(net: &mut Network, from: NodeIndex, to: NodeIndex, entries: Vec<SyncEntry>) {
    let (now, peer) = (net.now(), net.node(to).node_id());
    let message = Message::SyncPublish(SyncPublish { entries });
    assert!(net.node_mut(from).adversary_send(now, peer, &message));
    // A command that does nothing, so the harness takes the outputs now.
    net.command(from, PeersCommand::AddPeers { peers: vec![] })
        .expect("accepted");
    net.settle();
}

fn changes(net: &Network, i: NodeIndex, k: &str) -> usize {
    net.events_of(i)
        .filter(
            |e| matches!(e, Event::Sync(SyncEvent::Changed { key: kk, .. }) if kk == k.as_bytes()),
        )
        .count()
}

#[test]
fn a_write_reaches_every_node_and_a_late_joiner() {
    let mut net = line(5);
    set(&mut net, 0, "colour", "teal").expect("as set up");
    net.settle();
    for i in 0..5 {
        assert_eq!(
            value(&net, i, "colour").as_deref(),
            Some(&b"teal"[..]),
            "node {i}"
        );
        assert_eq!(changes(&net, i, "colour"), 1, "node {i}: one change event");
    }
    let me = net.node(0).node_id();
    assert_eq!(
        net.node(4).sync_get(b"colour").expect("as set up").writer,
        me
    );
    // Every node accepted it once and relayed it once at most.
    let applied: u64 = (0..5).map(|i| net.node(i).stats().sync.applied).sum();
    assert_eq!(applied, 4);
    // Get answers locally, with an event.
    net.command(3, SyncCommand::Get { key: key("colour") })
        .expect("as set up");
    assert!(net.events_of(3).any(|e| matches!(e,
        Event::Sync(SyncEvent::Got { value: Some(v), .. }) if v == "teal")));

    // A node started afterwards receives the table through anti-entropy
    // on its first session.
    let late = net.add_node(config(), secret(9), 99).expect("as set up");
    net.connect(late, 2).expect("as set up");
    net.settle();
    assert_eq!(value(&net, late, "colour").as_deref(), Some(&b"teal"[..]));
    assert_eq!(net.node(late).sync_digest(), net.node(0).sync_digest());
    assert_ne!(net.node(late).sync_digest(), 0);
}

#[test]
fn merge_is_a_shallow_map_merge() {
    let mut net = line(2);
    let delta = |items: &[(&str, Option<&str>)]| {
        items
            .iter()
            .map(|(k, v)| (key(k), v.map(key)))
            .collect::<Vec<_>>()
    };
    net.command(
        0,
        SyncCommand::Merge {
            key: key("m"),
            delta: delta(&[("a", Some("1")), ("b", Some("2"))]),
        },
    )
    .expect("as set up");
    net.command(
        0,
        SyncCommand::Merge {
            key: key("m"),
            delta: delta(&[("b", None), ("c", Some("3"))]),
        },
    )
    .expect("as set up");
    net.settle();
    let map = decode_sync_map(&value(&net, 1, "m").expect("as set up")).expect("as set up");
    let items: Vec<(&[u8], &[u8])> = map.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    assert_eq!(items, [(&b"a"[..], &b"1"[..]), (b"c", b"3")]);
    set(&mut net, 0, "plain", "not a map").expect("as set up");
    let refused = net.command(
        0,
        SyncCommand::Merge {
            key: key("plain"),
            delta: delta(&[("a", Some("1"))]),
        },
    );
    assert_eq!(refused, Err(CommandError::Sync(SyncError::NotAMap)));
}

#[test]
fn a_lease_keeps_other_writers_off_until_it_expires() {
    let mut net = line(3);
    set(&mut net, 0, "k", "mine").expect("as set up");
    net.settle();
    let owner = net.node(0).node_id();
    // An honest node is refused locally.
    match set(&mut net, 2, "k", "theirs") {
        Err(CommandError::Sync(SyncError::Leased { owner: o, .. })) => assert_eq!(o, owner),
        other => panic!("{other:?}"),
    }
    // A tampered node signs its own write anyway and sends it: every node
    // refuses it by the rule.
    let now = net.now().as_micros();
    let attacker = Identity::from_secret_bytes(secret(2));
    let entry = SyncEntry::signed(&attacker, key("k"), now + 1, Some(key("theirs")));
    adversary_publish(&mut net, 2, 1, vec![entry]);
    assert_eq!(net.node(1).stats().sync.lease_held, 1);
    for i in 0..3 {
        assert_eq!(
            value(&net, i, "k").as_deref(),
            Some(&b"mine"[..]),
            "node {i}"
        );
    }
    // The owner renews by writing; the lease counts from its last write.
    net.run_for(Duration::from_secs(40));
    set(&mut net, 0, "k", "renewed").expect("as set up");
    net.run_for(Duration::from_secs(40));
    assert!(matches!(
        set(&mut net, 2, "k", "theirs"),
        Err(CommandError::Sync(SyncError::Leased { .. }))
    ));
    // After the lease anyone may take the key, and it is theirs everywhere.
    net.run_for(Duration::from_secs(30));
    set(&mut net, 2, "k", "theirs").expect("as set up");
    net.settle();
    let taker = net.node(2).node_id();
    for i in 0..3 {
        let held = net.node(i).sync_get(b"k").expect("as set up");
        assert_eq!(
            (held.value.as_deref(), held.writer),
            (Some(&b"theirs"[..]), taker)
        );
    }
    assert!(matches!(
        net.command(0, SyncCommand::Delete { key: key("k") }),
        Err(CommandError::Sync(SyncError::Leased { .. }))
    ));
}

#[test]
fn forged_and_replayed_entries_are_refused() {
    let mut net = line(3);
    set(&mut net, 0, "k", "v1").expect("as set up");
    net.settle();
    let recorded = {
        let held = net.node(1).sync_get(b"k").expect("as set up");
        (held.hlc, held.writer)
    };
    net.run_for(Duration::from_secs(1));
    set(&mut net, 0, "k", "v2").expect("as set up");
    net.settle();

    let before = net.node(1).stats().sync;
    // Forged: node 0's key, a value it never signed.
    let owner = Identity::from_secret_bytes(secret(0));
    let genuine = SyncEntry::signed(&owner, key("k"), net.now().as_micros() + 10, Some(key("x")));
    let mut forged = genuine.clone();
    forged.value = Some(key("forged"));
    // Replayed: node 0's first write again, byte for byte.
    let replayed = SyncEntry::signed(&owner, key("k"), recorded.0, Some(key("v1")));
    assert_eq!(replayed.writer, recorded.1);
    adversary_publish(&mut net, 2, 1, vec![forged, replayed]);
    let stats = net.node(1).stats().sync;
    assert_eq!(
        (stats.forged, stats.duplicate, stats.applied),
        (before.forged + 1, before.duplicate + 1, before.applied),
        "{stats:?}"
    );
    for i in 0..3 {
        assert_eq!(value(&net, i, "k").as_deref(), Some(&b"v2"[..]), "node {i}");
        assert_eq!(
            changes(&net, i, "k"),
            2,
            "node {i}: v1 then v2, nothing else"
        );
    }
}

#[test]
fn a_peer_that_sends_forged_entries_is_closed_after_three() {
    let mut net = line(3);
    let owner = Identity::from_secret_bytes(secret(0));
    let forged = |n: u64| {
        let mut entry = SyncEntry::signed(&owner, key("k"), n, Some(key("v")));
        entry.value = Some(key("forged"));
        entry
    };
    adversary_publish(&mut net, 2, 1, vec![forged(1), forged(2)]);
    let forger = net.node(2).node_id();
    assert!(
        net.node(1).is_connected(forger),
        "two forgeries are tolerated"
    );
    adversary_publish(&mut net, 2, 1, vec![forged(3)]);
    let stats = net.node(1).stats().sync;
    assert_eq!((stats.forged, stats.peers_closed), (3, 1), "{stats:?}");
    assert!(!net.node(1).is_connected(forger));
    assert!(net.events_of(1).any(|e| matches!(e,
        Event::Peers(PeersEvent::Down { peer, reason: CloseReason::Misbehaving(_) }) if *peer == forger)));
    assert_eq!(net.node(1).sync_get(b"k"), None);
}

#[test]
fn a_deleted_key_never_comes_back_from_a_node_that_was_away() {
    let mut net = line(3);
    set(&mut net, 0, "k", "old").expect("as set up");
    net.settle();
    assert_eq!(value(&net, 2, "k").as_deref(), Some(&b"old"[..]));
    // Node 2 is away while the key is deleted.
    net.crash(2);
    net.command(0, SyncCommand::Delete { key: key("k") })
        .expect("as set up");
    net.settle();
    assert_eq!(value(&net, 1, "k"), None);
    assert!(net.node(1).sync_get(b"k").is_some(), "a tombstone is held");
    // It comes back holding the old value; anti-entropy runs both ways.
    net.run_for(Duration::from_secs(3));
    net.recover(2);
    net.disconnect_node(2);
    net.settle();
    net.connect(2, 1).expect("as set up");
    net.run_for(Duration::from_secs(10));
    for i in 0..3 {
        assert_eq!(value(&net, i, "k"), None, "node {i}");
    }
    assert_eq!(net.node(2).sync_digest(), net.node(0).sync_digest());
    // And after the tombstone's time every node forgets the key, at once
    // on every node's next round.
    net.run_for(Duration::from_secs(600));
    for i in 0..3 {
        assert_eq!(
            net.node(i).sync_usage().entries,
            0,
            "node {i}: {:?} {:?} at {:?}",
            net.node(i).sync_entries(),
            net.node(i).stats().sync,
            net.now()
        );
        assert_eq!(net.node(i).stats().sync.tombstones_collected, 1);
    }
}

#[test]
fn entries_too_far_in_the_future_are_refused_until_their_time() {
    let mut net = line(2);
    let writer = Identity::from_secret_bytes(secret(0));
    let ahead = net.now().as_micros() + Duration::from_secs(30).as_micros();
    let entry = SyncEntry::signed(&writer, key("k"), ahead, Some(key("soon")));
    adversary_publish(&mut net, 0, 1, vec![entry.clone()]);
    assert_eq!(net.node(1).stats().sync.out_of_skew, 1);
    assert_eq!(value(&net, 1, "k"), None);
    net.run_for(Duration::from_secs(26));
    adversary_publish(&mut net, 0, 1, vec![entry]);
    assert_eq!(value(&net, 1, "k").as_deref(), Some(&b"soon"[..]));
}

#[test]
fn caps_refuse_commands_with_clear_errors() {
    let mut cfg = config();
    let sync = cfg.sync.as_mut().expect("as set up");
    sync.max_entries = 2;
    sync.max_value_len = 8;
    let mut net = Network::new(LATENCY);
    net.add_node(cfg, secret(0), 1).expect("as set up");
    assert_eq!(
        set(&mut net, 0, "k", "123456789"),
        Err(CommandError::Sync(SyncError::ValueTooLarge {
            len: 9,
            max: 8
        }))
    );
    assert_eq!(
        set(&mut net, 0, "", "v"),
        Err(CommandError::Sync(SyncError::BadKey(0)))
    );
    set(&mut net, 0, "a", "1").expect("as set up");
    set(&mut net, 0, "b", "1").expect("as set up");
    assert_eq!(
        set(&mut net, 0, "c", "1"),
        Err(CommandError::Sync(SyncError::Full))
    );
    set(&mut net, 0, "a", "2").expect("as set up");
    assert_eq!(
        net.command(0, SyncCommand::Delete { key: key("zz") }),
        Err(CommandError::Sync(SyncError::NotFound))
    );
}

#[test]
fn the_table_is_off_by_default_and_refuses_commands() {
    let mut net = Network::new(LATENCY);
    let cfg = Config {
        security: Security::Plaintext,
        ..Config::lan()
    };
    net.add_node(cfg, secret(0), 1).expect("as set up");
    assert_eq!(
        set(&mut net, 0, "k", "v"),
        Err(CommandError::Sync(SyncError::Off))
    );
    assert_eq!(net.node(0).sync_digest(), 0);
}

#[test]
fn a_node_without_the_table_gets_no_sync_traffic() {
    let mut net = Network::new(LATENCY);
    net.add_node(config(), secret(0), 1).expect("as set up");
    let plain = Config {
        security: Security::Plaintext,
        ..Config::lan()
    };
    net.add_node(plain, secret(1), 2).expect("as set up");
    net.connect(0, 1).expect("as set up");
    net.settle();
    set(&mut net, 0, "k", "v").expect("as set up");
    net.run_for(Duration::from_secs(10));
    assert!(net.node(0).is_connected(net.node(1).node_id()));
    assert_eq!(net.node(0).stats().sync.digests_sent, 0);
}
