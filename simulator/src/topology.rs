//! Overlay builders: add nodes to a [`Sim`] and wire them into a shape.
//!
//! | builder | shape |
//! |---|---|
//! | [`random`] | every node dials `degree / 2` random others: a random graph of mean degree `degree` (the flood scenario's `--topology random`) |
//! | [`random_regular`] | every node has exactly `degree` neighbours ([`random_regular_edges`]) |
//! | [`ring`] | node `i` is linked to its `k` next nodes around a ring ([`ring_edges`]) |
//! | [`from_edges`] | the edges given, between nodes already added |
//! | [`organic`] | nodes join one after another through one or a few bootstrap nodes, and bootstrap, peer exchange and maintenance grow their neighbourhoods (the flood scenario's `--topology organic`) |
//!
//! The wired shapes ([`random`], [`random_regular`], [`ring`],
//! [`from_edges`]) are real dials and handshakes; to keep the overlay as
//! wired, run the nodes with [`hand_wired`]`(config)`, which stops them
//! from dialling more on their own. Random choices come from the `rng`
//! the caller passes (derive it from the simulation seed, as the flood
//! scenario does), so a build replays from its seed.

use core::ops::Range;

use rand_core::RngCore;
use ringmesh::{CommandError, Config, ConfigError, Duration, PeersConfig};

use crate::engine::{NodeIdx, Observer, Sim, addr_of};

/// An undirected link: the first node dials the second.
pub type Edge = (NodeIdx, NodeIdx);

/// Why a build failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A node's config was refused.
    Config(ConfigError),
    /// A dial was refused.
    Command(CommandError),
    /// The shape asked for cannot exist (for example an odd `n × degree`
    /// for a regular graph, or a degree of `n` or more).
    Impossible(String),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Config(e) => write!(f, "node config refused: {e}"),
            BuildError::Command(e) => write!(f, "dial refused: {e}"),
            BuildError::Impossible(why) => write!(f, "impossible topology: {why}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

impl From<CommandError> for BuildError {
    fn from(e: CommandError) -> Self {
        BuildError::Command(e)
    }
}

/// `config` with the node's own growth turned off (`target_peers` 0, no
/// peer exchange), so that an overlay stays the one wired by hand.
pub fn hand_wired(config: Config) -> Config {
    Config {
        peers: PeersConfig {
            target_peers: 0,
            peer_exchange_size: 0,
            ..config.peers
        },
        ..config
    }
}

/// Adds `n` nodes running `config`, and every node dials `degree / 2`
/// (at least 1) distinct random others: a random graph of mean degree
/// about `degree`. Then runs until the handshakes settle (at most 60 s).
/// `progress` is called with (phase, done, total) now and then. Draws
/// from `rng` in node order (the flood scenario's trace depends on it).
pub fn random<O: Observer>(
    sim: &mut Sim<O>,
    rng: &mut impl RngCore,
    n: u32,
    degree: u32,
    config: &Config,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<Range<NodeIdx>, BuildError> {
    sim.reserve(n as usize);
    let nodes = sim.add_nodes(config, n, |done| {
        progress("nodes", u64::from(done), u64::from(n))
    })?;
    let first = nodes.start;
    let dials = (degree / 2).max(1);
    for k in 0..n {
        let i = first + k;
        let mut picked = Vec::with_capacity(dials as usize);
        while picked.len() < dials.min(n - 1) as usize {
            let j = first + (rng.next_u64() % u64::from(n)) as NodeIdx;
            if j != i && !picked.contains(&j) {
                picked.push(j);
            }
        }
        for j in picked {
            sim.connect(i, j)?;
        }
        if k % 1024 == 0 {
            // Keep the queue short: let these handshakes run.
            sim.run_for(Duration::from_micros(1));
            progress("wiring", u64::from(k), u64::from(n));
        }
    }
    sim.settle(Duration::from_secs(60));
    Ok(nodes)
}

/// How the nodes of an [`organic`] build find the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// Each node's bootstrap list holds up to this many earlier nodes drawn
    /// at random (with repetition): the flood scenario's organic overlay.
    RandomEarlier(u32),
    /// The first this-many nodes are the bootstrap nodes: the first joins
    /// alone, each later node's list holds all of them (those already
    /// added).
    First(u32),
}

/// An [`organic`] build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organic {
    /// Each node's `peers.target_peers`: how many neighbours it grows to.
    pub target_peers: u32,
    /// Time between two joins.
    pub join_interval: Duration,
    /// Where the nodes join.
    pub bootstrap: Bootstrap,
    /// How long to run once the last node joined (discovery goes on).
    pub settle: Duration,
}

impl Default for Organic {
    fn default() -> Self {
        Organic {
            target_peers: 8,
            join_interval: Duration::from_millis(10),
            bootstrap: Bootstrap::RandomEarlier(3),
            settle: Duration::from_secs(10),
        }
    }
}

/// Adds `n` nodes running `config` (with `target_peers` and the bootstrap
/// list set as `organic` says), one every `organic.join_interval`, then
/// runs `organic.settle` more: the overlay is what bootstrap, peer exchange
/// and maintenance make of it.
pub fn organic<O: Observer>(
    sim: &mut Sim<O>,
    rng: &mut impl RngCore,
    n: u32,
    organic: &Organic,
    config: &Config,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<Range<NodeIdx>, BuildError> {
    sim.reserve(n as usize);
    let first = sim.len() as NodeIdx;
    for k in 0..n {
        let bootstrap = match organic.bootstrap {
            Bootstrap::RandomEarlier(count) => (0..count.min(k))
                .map(|_| addr_of(first + (rng.next_u64() % u64::from(k)) as NodeIdx))
                .collect(),
            Bootstrap::First(count) => (0..count.min(k)).map(|b| addr_of(first + b)).collect(),
        };
        sim.add_node(Config {
            peers: PeersConfig {
                target_peers: organic.target_peers as usize,
                bootstrap,
                ..config.clone().peers
            },
            ..config.clone()
        })?;
        sim.run_for(organic.join_interval);
        if k % 256 == 0 {
            progress("joining", u64::from(k), u64::from(n));
        }
    }
    sim.run_for(organic.settle);
    Ok(first..first + n)
}

/// Each edge's first node dials its second (nodes already added), a
/// thousand dials at a time, then runs until the handshakes settle (at
/// most 60 s). List each link once.
pub fn from_edges<O: Observer>(sim: &mut Sim<O>, edges: &[Edge]) -> Result<(), BuildError> {
    for (k, &(a, b)) in edges.iter().enumerate() {
        if a == b || a as usize >= sim.len() || b as usize >= sim.len() {
            return Err(BuildError::Impossible(format!(
                "edge ({a}, {b}) in a simulation of {} nodes",
                sim.len()
            )));
        }
        sim.connect(a, b)?;
        if k % 1024 == 1023 {
            sim.run_for(Duration::from_micros(1));
        }
    }
    sim.settle(Duration::from_secs(60));
    Ok(())
}

/// Adds `n` nodes running `config` and links each to its `k` next nodes
/// around a ring ([`ring_edges`]).
pub fn ring<O: Observer>(
    sim: &mut Sim<O>,
    n: u32,
    k: u32,
    config: &Config,
) -> Result<Range<NodeIdx>, BuildError> {
    let nodes = sim.add_nodes(config, n, |_| {})?;
    let edges = ring_edges(n, k)
        .into_iter()
        .map(|(a, b)| (nodes.start + a, nodes.start + b))
        .collect::<Vec<_>>();
    from_edges(sim, &edges)?;
    Ok(nodes)
}

/// Adds `n` nodes running `config` wired as a random `degree`-regular
/// graph ([`random_regular_edges`]).
pub fn random_regular<O: Observer>(
    sim: &mut Sim<O>,
    rng: &mut impl RngCore,
    n: u32,
    degree: u32,
    config: &Config,
) -> Result<Range<NodeIdx>, BuildError> {
    let edges = random_regular_edges(rng, n, degree)?;
    let nodes = sim.add_nodes(config, n, |_| {})?;
    let edges = edges
        .into_iter()
        .map(|(a, b)| (nodes.start + a, nodes.start + b))
        .collect::<Vec<_>>();
    from_edges(sim, &edges)?;
    Ok(nodes)
}

/// The edges of a ring over nodes `0..n` where node `i` links to
/// `i + 1, …, i + k` (mod `n`): degree `2k` when `n > 2k`; each link once.
pub fn ring_edges(n: u32, k: u32) -> Vec<Edge> {
    let mut edges = Vec::new();
    for i in 0..n {
        for d in 1..=k.min(n.saturating_sub(1) / 2) {
            edges.push((i, (i + d) % n));
        }
    }
    if n > 1 && n.is_multiple_of(2) && k >= n / 2 {
        // The opposite node, once per pair.
        edges.extend((0..n / 2).map(|i| (i, i + n / 2)));
    }
    edges
}

/// A random simple `degree`-regular graph over nodes `0..n` (no loops, no
/// double links), each link once: stubs are paired at random, skipping
/// pairs that would make a loop or a double link, and the pairing starts
/// over in the rare case it gets stuck (Steger and Wormald's method, nearly
/// uniform for small degrees). Needs `n × degree` even and `degree < n`.
pub fn random_regular_edges(
    rng: &mut impl RngCore,
    n: u32,
    degree: u32,
) -> Result<Vec<Edge>, BuildError> {
    if degree >= n.max(1) || (u64::from(n) * u64::from(degree)) % 2 == 1 {
        return Err(BuildError::Impossible(format!(
            "no {degree}-regular graph on {n} nodes"
        )));
    }
    let d = degree as usize;
    'attempt: for _ in 0..1000 {
        let mut stubs: Vec<NodeIdx> = (0..n).flat_map(|i| (0..d).map(move |_| i)).collect();
        let mut adjacency: Vec<Vec<NodeIdx>> = vec![Vec::with_capacity(d); n as usize];
        let mut edges = Vec::with_capacity(stubs.len() / 2);
        let ok =
            |adj: &[Vec<NodeIdx>], a: NodeIdx, b: NodeIdx| a != b && !adj[a as usize].contains(&b);
        let mut misses = 0;
        while !stubs.is_empty() {
            let x = (rng.next_u64() % stubs.len() as u64) as usize;
            let y = (rng.next_u64() % stubs.len() as u64) as usize;
            let (a, b) = (stubs[x], stubs[y]);
            if x == y || !ok(&adjacency, a, b) {
                misses += 1;
                if misses > 64 {
                    // Is any pair left that could be linked?
                    let any = stubs
                        .iter()
                        .enumerate()
                        .any(|(p, &a)| stubs[p + 1..].iter().any(|&b| ok(&adjacency, a, b)));
                    if !any {
                        continue 'attempt;
                    }
                    misses = 0;
                }
                continue;
            }
            misses = 0;
            adjacency[a as usize].push(b);
            adjacency[b as usize].push(a);
            edges.push((a, b));
            let (hi, lo) = (x.max(y), x.min(y));
            stubs.swap_remove(hi);
            stubs.swap_remove(lo);
        }
        return Ok(edges);
    }
    Err(BuildError::Impossible(format!(
        "no {degree}-regular graph on {n} nodes found in 1000 tries"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn degrees(n: u32, edges: &[Edge]) -> Vec<u32> {
        let mut deg = vec![0; n as usize];
        for &(a, b) in edges {
            deg[a as usize] += 1;
            deg[b as usize] += 1;
        }
        deg
    }

    #[test]
    fn random_regular_edges_are_simple_and_regular() {
        for (seed, n, d) in [(1, 10, 3), (2, 100, 8), (3, 7, 6), (4, 1000, 4)] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let edges = random_regular_edges(&mut rng, n, d).expect("possible");
            assert!(degrees(n, &edges).iter().all(|&k| k == d), "n {n} d {d}");
            let mut seen: Vec<Edge> = edges.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), edges.len());
            assert!(edges.iter().all(|&(a, b)| a != b));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(random_regular_edges(&mut rng, 5, 3).is_err());
        assert!(random_regular_edges(&mut rng, 4, 4).is_err());
    }

    fn lan() -> Config {
        hand_wired(Config {
            security: ringmesh::Security::Plaintext,
            ..Config::lan()
        })
    }

    #[test]
    fn wired_overlays_have_the_degrees_asked() {
        let mut sim = Sim::new(crate::SimConfig::default());
        let ring_nodes = ring(&mut sim, 12, 2, &lan()).expect("builds");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let regular = random_regular(&mut sim, &mut rng, 20, 3, &lan()).expect("builds");
        sim.run_for(Duration::from_secs(5));
        for i in ring_nodes {
            assert_eq!(
                sim.node(i).map(|n| n.peer_count()),
                Some(4),
                "ring node {i}"
            );
        }
        for i in regular {
            assert_eq!(
                sim.node(i).map(|n| n.peer_count()),
                Some(3),
                "regular node {i}"
            );
        }
        // The two overlays are apart.
        assert!(!sim.node(0).expect("up").is_connected(sim.id(12)));
    }

    #[test]
    fn organic_nodes_grow_from_the_bootstrap_nodes() {
        let mut sim = Sim::new(crate::SimConfig::default());
        let organic = Organic {
            target_peers: 4,
            bootstrap: Bootstrap::First(2),
            ..Organic::default()
        };
        let config = Config {
            security: ringmesh::Security::Plaintext,
            ..Config::lan()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let nodes =
            self::organic(&mut sim, &mut rng, 30, &organic, &config, |_, _, _| {}).expect("builds");
        for i in nodes {
            let peers = sim.node(i).map_or(0, |n| n.peer_count());
            assert!(peers >= 4, "node {i} has {peers} peers");
        }
    }

    #[test]
    fn ring_edges_have_degree_two_k() {
        assert!(degrees(10, &ring_edges(10, 2)).iter().all(|&k| k == 4));
        assert!(degrees(4, &ring_edges(4, 2)).iter().all(|&k| k == 3));
        assert!(degrees(5, &ring_edges(5, 1)).iter().all(|&k| k == 2));
    }
}
