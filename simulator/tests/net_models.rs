//! The richer network models (engine/net.rs) through the public API: what
//! each one does to bytes on a link, and that a flood under them is still
//! one run per seed.

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::{Config, Duration, Event, Instant, MessagingCommand, MessagingEvent, PeersEvent};
use ringmesh_sim::engine::{LatencyModel, Regions, Upload};
use ringmesh_sim::scenario::flood::{self, FloodParams};
use ringmesh_sim::{NetModel, NodeIdx, Recorder, Sim, SimConfig};

fn lan() -> Config {
    Config {
        security: ringmesh::Security::Plaintext,
        ..Config::lan()
    }
}

/// Two connected nodes on `net`, settled.
fn pair(net: NetModel) -> (Sim<Recorder>, NodeIdx, NodeIdx) {
    let mut sim = Sim::with_observer(
        SimConfig {
            seed: 3,
            net,
            echo_requests: false,
        },
        Recorder::default(),
    );
    let a = sim.add_node(lan()).expect("valid");
    let b = sim.add_node(lan()).expect("valid");
    sim.connect(a, b).expect("dial");
    sim.settle(Duration::from_secs(5));
    assert!(
        sim.observer()
            .events
            .iter()
            .any(|(_, i, e)| *i == b && matches!(e, Event::Peers(PeersEvent::Up { .. }))),
        "the pair never connected"
    );
    (sim, a, b)
}

/// `from` sends `payload` to `to` now; returns the send time.
fn send(sim: &mut Sim<Recorder>, from: NodeIdx, to: NodeIdx, payload: Bytes) -> Instant {
    let to = sim.id(to);
    sim.command(from, MessagingCommand::Send { to, payload })
        .expect("connected");
    sim.now()
}

/// When `node` received a direct message of `len` bytes at or after `since`.
fn received(sim: &Sim<Recorder>, node: NodeIdx, len: usize, since: Instant) -> Option<Instant> {
    sim.observer().events.iter().find_map(|(at, i, e)| match e {
        Event::Messaging(MessagingEvent::Direct { payload, .. })
            if *i == node && payload.len() == len && *at >= since =>
        {
            Some(*at)
        }
        _ => None,
    })
}

/// `len` random bytes (LZ4 cannot shrink them on the wire).
fn noise(len: usize) -> Bytes {
    let mut bytes = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(9).fill_bytes(&mut bytes);
    Bytes::from(bytes)
}

#[test]
fn a_megabyte_over_a_megabyte_per_second_uplink_takes_a_second() {
    const MB: usize = 1_000_000;
    let mut took = Vec::new();
    for upload in [None, Some(Upload::fixed(MB as u64))] {
        let (mut sim, a, b) = pair(NetModel {
            upload,
            ..NetModel::default()
        });
        let sent = send(&mut sim, a, b, noise(MB));
        sim.run_for(Duration::from_secs(5));
        let at = received(&sim, b, MB, sent).expect("delivered");
        took.push(at - sent);
    }
    assert!(took[0] < Duration::from_millis(100), "unlimited: {took:?}");
    assert!(took[1] >= Duration::from_secs(1), "1 MB/s: {took:?}");
    assert!(took[1] < Duration::from_millis(1100), "1 MB/s: {took:?}");
}

#[test]
fn sends_queue_behind_each_other_on_the_uplink_and_keep_their_order() {
    let (mut sim, a, b) = pair(NetModel {
        upload: Some(Upload::fixed(100_000)),
        ..NetModel::default()
    });
    // Three 50 kB messages at 100 kB/s: the last leaves 1.5 s after the
    // first was sent.
    let sent = send(&mut sim, a, b, noise(50_000));
    send(&mut sim, a, b, noise(50_001));
    send(&mut sim, a, b, noise(50_002));
    sim.run_for(Duration::from_secs(5));
    let times: Vec<Instant> = [50_000, 50_001, 50_002]
        .iter()
        .map(|&len| received(&sim, b, len, sent).expect("delivered"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(times[2] - sent >= Duration::from_millis(1500), "{times:?}");
    assert!(times[0] - sent < Duration::from_millis(600), "{times:?}");
}

#[test]
fn a_one_way_partition_delivers_one_way_only() {
    let (mut sim, a, b) = pair(NetModel::default());
    assert!(sim.partition_one_way(&[a], &[b]));
    let sent = send(&mut sim, a, b, Bytes::from_static(b"a to b"));
    send(&mut sim, b, a, Bytes::from_static(b"b to a!"));
    sim.run_for(Duration::from_millis(500));
    assert_eq!(
        received(&sim, b, 6, sent),
        None,
        "a's bytes crossed the cut"
    );
    assert!(received(&sim, a, 7, sent).is_some(), "b's bytes did not");
    assert!(sim.stats().lost_sends > 0);
}

#[test]
fn a_delay_spike_delays_while_it_lasts() {
    let (mut sim, a, b) = pair(NetModel::default());
    sim.delay_link(a, b, Duration::from_secs(2), Duration::from_secs(1));
    let sent = send(&mut sim, a, b, Bytes::from_static(b"during"));
    sim.run_for(Duration::from_secs(3));
    let at = received(&sim, b, 6, sent).expect("delivered late");
    assert!(at - sent >= Duration::from_secs(2), "{:?}", at - sent);
    let after = send(&mut sim, a, b, Bytes::from_static(b"after!!"));
    sim.run_for(Duration::from_millis(500));
    let at = received(&sim, b, 7, after).expect("delivered");
    assert!(at - after <= Duration::from_millis(25), "{:?}", at - after);
}

#[test]
fn a_link_flap_holds_bytes_until_the_link_is_back_and_keeps_the_connection() {
    let (mut sim, a, b) = pair(NetModel::default());
    let downs_before = sim.stats().lost_sends;
    sim.flap_link(a, b, Duration::from_millis(800));
    let sent = send(&mut sim, a, b, Bytes::from_static(b"held"));
    sim.run_for(Duration::from_secs(2));
    let at = received(&sim, b, 4, sent).expect("delivered after the flap");
    assert!(at - sent >= Duration::from_millis(820), "{:?}", at - sent);
    assert_eq!(sim.stats().lost_sends, downs_before, "a flap loses nothing");
    let again = send(&mut sim, a, b, Bytes::from_static(b"again"));
    sim.run_for(Duration::from_millis(500));
    assert!(received(&sim, b, 5, again).is_some(), "the connection died");
}

#[test]
fn a_node_flap_longer_than_the_dial_timeout_makes_dials_time_out() {
    let mut sim = Sim::with_observer(SimConfig::default(), Recorder::default());
    let a = sim.add_node(lan()).expect("valid");
    let b = sim.add_node(lan()).expect("valid");
    sim.flap_node(b, Duration::from_secs(10));
    sim.connect(a, b).expect("dial");
    sim.run_for(Duration::from_secs(5));
    let up = sim
        .observer()
        .events
        .iter()
        .any(|(_, _, e)| matches!(e, Event::Peers(PeersEvent::Up { .. })));
    assert!(!up, "a dial went through a link that was down");
}

#[test]
fn geo_latency_is_the_region_matrix_plus_two_access_links() {
    let geo = Regions::geo();
    let mut sim = Sim::new(SimConfig {
        net: NetModel {
            links: LatencyModel::geo(),
            ..NetModel::default()
        },
        ..SimConfig::default()
    });
    for _ in 0..64 {
        sim.add_node(lan()).expect("valid");
    }
    let mut regions = std::collections::BTreeSet::new();
    for a in 0..64 {
        let (ra, name) = sim.region_of(a).expect("placed");
        assert_eq!(geo.names()[ra], name);
        regions.insert(ra);
        for b in 0..64 {
            let (rb, _) = sim.region_of(b).expect("placed");
            let base = geo.one_way(ra, rb);
            let latency = sim.latency_between(a, b);
            assert!(
                latency >= base + Duration::from_millis(2)
                    && latency <= base + Duration::from_millis(20),
                "{a} -> {b}: {latency:?} over {base:?}"
            );
        }
    }
    assert!(regions.len() >= 5, "64 nodes in {} regions", regions.len());
    // São Paulo to Mumbai, and two 10 ms access links.
    let model = NetModel {
        links: LatencyModel::geo(),
        ..NetModel::default()
    };
    assert_eq!(model.max_latency(), Duration::from_millis(170));
    assert_eq!(NetModel::default().max_latency(), Duration::from_millis(20));
}

#[test]
fn the_shipped_matrix_file_loads_and_a_bad_path_says_so() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/regions-7.csv");
    let LatencyModel::Regions { regions, .. } = LatencyModel::from_file(&path).expect("loads")
    else {
        panic!("not a region model");
    };
    assert_eq!(regions.names(), Regions::geo().names());
    let spec = format!("file:{}", path.display());
    assert_eq!(LatencyModel::parse(&spec).expect("parses").describe(), spec);
    let missing = LatencyModel::parse("file:/no/such/matrix.csv").expect_err("missing");
    assert!(missing.contains("/no/such/matrix.csv"), "{missing}");
    assert!(LatencyModel::parse("moon").is_err());
}

fn geo_flood(seed: u64, upload: Option<Upload>) -> flood::FloodReport {
    let params = FloodParams {
        nodes: 200,
        seed,
        payload_len: 16_384,
        net: NetModel {
            links: LatencyModel::geo(),
            upload,
            ..NetModel::default()
        },
        ..FloodParams::default()
    };
    flood::run(&params, |_, _, _| {}).expect("runs")
}

#[test]
fn a_geo_flood_with_bandwidth_limits_replays_from_its_seed() {
    let limit = Some(Upload::fixed(1_250_000));
    let a = geo_flood(1, limit);
    let b = geo_flood(1, limit);
    let c = geo_flood(2, limit);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.curve, b.curve);
    assert_ne!(a.trace_hash, c.trace_hash);
    assert_eq!(a.delivery_ratio, 1.0, "{a:?}");
    assert!(
        a.replay
            .contains("--latency-model geo --upload-bandwidth 1250000B")
    );
}

#[test]
fn geography_and_bandwidth_each_slow_the_flood() {
    let uniform = flood::run(
        &FloodParams {
            nodes: 200,
            payload_len: 16_384,
            ..FloodParams::default()
        },
        |_, _, _| {},
    )
    .expect("runs");
    let geo = geo_flood(1, None);
    let limited = geo_flood(1, Some(Upload::fixed(1_250_000)));
    for r in [&uniform, &geo, &limited] {
        assert_eq!(r.delivery_ratio, 1.0, "{r:?}");
    }
    assert!(
        geo.p90_ms > uniform.p90_ms,
        "{} vs {}",
        geo.p90_ms,
        uniform.p90_ms
    );
    // 16 kB to 8 peers at 1.25 MB/s: 13 ms per copy, up to 105 ms more
    // per hop (each copy waits for those sent before it).
    assert!(
        limited.p90_ms > geo.p90_ms + 100.0,
        "{} vs {}",
        limited.p90_ms,
        geo.p90_ms
    );
}
