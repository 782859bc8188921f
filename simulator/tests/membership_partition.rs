//! HyParView across a partition: the halves become one overlay again
//! after the heal (spec/membership.md, "A peer lost to a failure").

use std::collections::BTreeMap;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use ringmesh::{
    Config, Duration, Event, HyParViewConfig, Membership, MeshCommand, MeshConfig, MeshEvent,
    Security,
};
use ringmesh_sim::{Recorder, Sim, SimConfig, topology};

/// Nodes reached from node 0 over mesh links (either end's view).
fn reached(sim: &Sim<Recorder>, n: u32) -> usize {
    let ids: BTreeMap<_, _> = (0..n)
        .filter_map(|i| sim.node(i).map(|node| (node.node_id(), i)))
        .collect();
    let mut seen = vec![false; n as usize];
    let mut stack = vec![0u32];
    seen[0] = true;
    let mut count = 0;
    while let Some(i) = stack.pop() {
        count += 1;
        let Some(node) = sim.node(i) else { continue };
        for peer in node.mesh_peers() {
            if let Some(&j) = ids.get(&peer)
                && !seen[j as usize]
            {
                seen[j as usize] = true;
                stack.push(j);
            }
        }
    }
    count
}

/// Broadcasts from `from` and counts the nodes that deliver it within 30 s.
fn broadcast(sim: &mut Sim<Recorder>, from: u32) -> usize {
    sim.observer_mut().events.clear();
    sim.command(
        from,
        MeshCommand::Broadcast {
            payload: Bytes::from_static(b"after the heal"),
        },
    )
    .expect("broadcast accepted");
    sim.run_for(Duration::from_secs(30));
    sim.observer()
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::Mesh(MeshEvent::Broadcast { .. })))
        .count()
}

/// A 200-node overlay grown through node 0 (connected), split in two
/// halves for two minutes, then healed: three minutes later a broadcast
/// reaches every node. While cut off, each half repairs its
/// active views from its own side and drops the passive entries of the
/// other as their dials fail; only the lost peers, dialled again, link the
/// halves after the heal (without them: 99 of 199 reached).
#[test]
fn a_healed_partition_leaves_one_overlay() {
    let n = 200;
    let mut sim = Sim::with_observer(
        SimConfig {
            seed: 7,
            ..SimConfig::default()
        },
        Recorder::default(),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let config = Config {
        security: Security::Plaintext,
        mesh: MeshConfig {
            membership: Membership::HyParView(HyParViewConfig::for_network(u64::from(n))),
            ..Config::wan().mesh
        },
        ..Config::wan()
    };
    let grown = topology::Organic {
        target_peers: 1,
        join_interval: Duration::from_millis(50),
        bootstrap: topology::Bootstrap::First(1),
        settle: Duration::from_secs(30),
    };
    topology::organic(&mut sim, &mut rng, n, &grown, &config, |_, _, _| {}).expect("built");
    assert_eq!(
        reached(&sim, n),
        n as usize,
        "the overlay is whole before the cut"
    );
    let halves: Vec<u16> = (0..n).map(|i| (i % 2) as u16).collect();
    sim.partition(&halves);
    sim.run_for(Duration::from_secs(120));
    sim.heal();
    // The lost peers' dials back off while the cut lasts (10 s, then 20,
    // 40, 80 s): the first after the heal comes within about as long as
    // the cut lasted.
    sim.run_for(Duration::from_secs(180));
    let got = broadcast(&mut sim, 1);
    assert_eq!(
        got,
        n as usize - 1,
        "after the heal: {got} of {} delivered; {} nodes reachable over the mesh from node 0",
        n - 1,
        reached(&sim, n)
    );
}
