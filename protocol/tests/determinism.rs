//! Same config, identities, seeds and inputs ⇒ the same outputs, byte for
//! byte; another seed changes the Noise bytes but not what happens.

use bytes::Bytes;
use ringmesh::testing::{Network, Recorded, Sent};
use ringmesh::{
    ChordCommand, ChordConfig, ChordEvent, Config, DhtCommand, DhtConfig, DhtEvent, DhtKey,
    Duration, Event, MeshCommand, MeshEvent, MessagingCommand, MessagingEvent, PeersCommand,
    PeersConfig,
};

/// Three Noise nodes: handshakes, messages both ways (one compressible),
/// a disconnect, a dial that times out.
fn scenario(seed: u64) -> (Vec<Sent>, Vec<Recorded>) {
    let mut net = Network::new(Duration::from_millis(3));
    net.record_sent(true);
    for i in 0..3u8 {
        net.add_node(
            Config::default(),
            [i + 1; 32],
            seed.wrapping_add(u64::from(i)),
        )
        .expect("valid");
    }
    net.connect(0, 1).expect("dial");
    net.connect(2, 1).expect("dial");
    net.connect(0, 2).expect("dial");
    net.settle();
    let ids: Vec<_> = (0..3).map(|i| net.node(i).node_id()).collect();
    for (from, to) in [(0, 1), (1, 2), (2, 0), (1, 0)] {
        let payload = Bytes::from(format!("{from}->{to} ").repeat(100 * (from + 1)));
        net.command(
            from,
            MessagingCommand::Send {
                to: ids[to],
                payload,
            },
        )
        .expect("connected");
    }
    net.settle();
    net.command(2, PeersCommand::Disconnect { peer: ids[1] })
        .expect("connected");
    net.crash(1);
    net.connect(0, 1).expect("dial to a crashed node");
    net.settle();
    (net.sent().to_vec(), net.events().to_vec())
}

#[test]
fn the_same_seed_gives_byte_identical_outputs() {
    let (sent_a, events_a) = scenario(42);
    let (sent_b, events_b) = scenario(42);
    assert!(
        sent_a.len() >= 15,
        "the scenario does something: {} sends",
        sent_a.len()
    );
    assert!(
        events_a
            .iter()
            .any(|r| matches!(r.event, Event::Messaging(MessagingEvent::Direct { .. })))
    );
    assert_eq!(sent_a, sent_b);
    assert_eq!(events_a, events_b);
}

#[test]
fn another_seed_changes_the_noise_bytes_but_not_the_story() {
    let (sent_a, events_a) = scenario(42);
    let (sent_b, events_b) = scenario(43);
    // Ephemeral keys come from the seed, so ciphertexts differ …
    assert_ne!(sent_a, sent_b);
    // … while the same things happen at the same times.
    assert_eq!(events_a, events_b);
    assert_eq!(
        sent_a.iter().map(|s| s.bytes.len()).collect::<Vec<_>>(),
        sent_b.iter().map(|s| s.bytes.len()).collect::<Vec<_>>()
    );
}

/// Twelve nodes joining through a bootstrap node, broadcasting, one crash:
/// every seeded choice (dial order, backoff jitter, peer samples, broadcast
/// sequence numbers) is taken.
fn overlay_scenario(seed: u64) -> (Vec<Sent>, Vec<Recorded>) {
    let mut net = Network::new(Duration::from_millis(2));
    net.record_sent(true);
    for i in 0..12u8 {
        let config = Config {
            peers: PeersConfig {
                target_peers: 3,
                bootstrap: vec![Network::addr_of(0)],
                ..Config::plaintext().peers
            },
            ..Config::plaintext()
        };
        net.add_node(config, [i + 1; 32], seed.wrapping_add(u64::from(i)))
            .expect("valid");
    }
    net.run_for(Duration::from_secs(10));
    for i in 0..12 {
        net.command(
            i,
            MeshCommand::Broadcast {
                payload: Bytes::from_static(b"b"),
            },
        )
        .expect("broadcast");
    }
    net.settle();
    net.crash(5);
    net.run_for(Duration::from_secs(60));
    (net.sent().to_vec(), net.events().to_vec())
}

#[test]
fn an_overlay_run_replays_exactly_from_its_seed() {
    let (sent_a, events_a) = overlay_scenario(7);
    let (sent_b, events_b) = overlay_scenario(7);
    let messages = events_a
        .iter()
        .filter(|r| matches!(r.event, Event::Mesh(MeshEvent::Broadcast { .. })))
        .count();
    assert_eq!(
        messages,
        12 * 11,
        "every broadcast reached every other node"
    );
    assert_eq!(sent_a, sent_b);
    assert_eq!(events_a, events_b);
    let (_, events_c) = overlay_scenario(8);
    assert_ne!(events_a, events_c, "the seed drives the overlay's choices");
}

/// A ring grown by joins, fingers, lookups, puts and gets, and a crash:
/// every seeded choice of chord (timer jitter, join start order) is taken.
fn chord_scenario(seed: u64) -> (Vec<Sent>, Vec<Recorded>) {
    let mut net = Network::new(Duration::from_millis(2));
    net.record_sent(true);
    for i in 0..10u8 {
        let config = Config {
            chord: Some(ChordConfig {
                successors: 3,
                ..ChordConfig::lan()
            }),
            dht: Some(DhtConfig::lan()),
            ..Config::lan()
        };
        net.add_node(config, [i + 1; 32], seed.wrapping_add(u64::from(i)))
            .expect("valid");
    }
    net.command(0, ChordCommand::Create).expect("create");
    for i in 1..10 {
        net.connect(i, 0).expect("dial");
        net.settle();
        net.command(i, ChordCommand::Join { via: None })
            .expect("join");
        net.run_for(Duration::from_millis(200));
    }
    net.run_for(Duration::from_secs(10));
    for k in 0..10u64 {
        let key = ringmesh::NodeId::from_u128(u128::from(k) << 124);
        net.command(k as usize, ChordCommand::Lookup { key })
            .expect("lookup");
        net.command(
            k as usize,
            DhtCommand::Put {
                key: DhtKey::Open(Bytes::from(format!("k{k}"))),
                value: Bytes::from_static(b"v"),
            },
        )
        .expect("put");
    }
    net.settle();
    net.crash(4);
    net.run_for(Duration::from_secs(10));
    net.command(
        1,
        DhtCommand::Get {
            key: DhtKey::Open(Bytes::from_static(b"k4")),
        },
    )
    .expect("get");
    net.run_for(Duration::from_secs(5));
    (net.sent().to_vec(), net.events().to_vec())
}

#[test]
fn a_chord_run_replays_exactly_from_its_seed() {
    let (sent_a, events_a) = chord_scenario(11);
    let (sent_b, events_b) = chord_scenario(11);
    let count = |f: fn(&Event) -> bool| events_a.iter().filter(|r| f(&r.event)).count();
    assert_eq!(
        count(|e| matches!(e, Event::Chord(ChordEvent::Joined { .. }))),
        9
    );
    assert_eq!(
        count(|e| matches!(e, Event::Chord(ChordEvent::LookupDone { .. }))),
        10
    );
    assert_eq!(
        count(|e| matches!(e, Event::Dht(DhtEvent::PutDone { .. }))),
        10
    );
    assert_eq!(
        count(|e| matches!(e, Event::Dht(DhtEvent::GetDone { value: Some(_), .. }))),
        1
    );
    assert_eq!(sent_a, sent_b);
    assert_eq!(events_a, events_b);
    let (_, events_c) = chord_scenario(12);
    assert_ne!(events_a, events_c, "the seed drives chord's timers");
}
