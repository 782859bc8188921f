//! Blobs over `testing::Network` (spec/blobs.md): a blob added on one node
//! is fetched by others, every group verified; a provider whose store
//! corrupts a byte is dropped at its first bad group and the fetch
//! completes from an honest one; a node without blobs refuses the command
//! and sends nothing.

use bytes::Bytes;
use ringmesh::blobs::{
    BlobHash, BlobStore, DropReason, GroupSet, MemStore, Outboard, ServeLimits, StoreError,
    VerifyError,
};
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::{
    BlobsCommand, BlobsConfig, BlobsError, BlobsEvent, CloseReason, CommandError, Config, Duration,
    Event, NodeId, PeersEvent, Security,
};

const LATENCY: Duration = Duration::from_millis(5);

fn secret(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn config() -> Config {
    Config {
        security: Security::Plaintext,
        blobs: Some(BlobsConfig::default()),
        ..Config::lan()
    }
}

fn blob(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// Every node connected to every other.
fn mesh(n: usize, config: impl Fn(usize) -> Config) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        net.add_node(config(i), secret(i), 10 + i as u64)
            .expect("as set up");
    }
    for i in 0..n {
        for j in i + 1..n {
            net.connect(i, j).expect("as set up");
        }
    }
    net.settle();
    net
}

fn id(net: &Network, i: NodeIndex) -> NodeId {
    net.node(i).node_id()
}

fn fetched(net: &Network, i: NodeIndex, hash: &BlobHash) -> Option<Vec<u8>> {
    net.node(i).blob_store()?.read_whole(hash)
}

fn done(net: &Network, i: NodeIndex, hash: BlobHash) -> bool {
    net.events_of(i)
        .any(|e| matches!(e, Event::Blobs(BlobsEvent::Done { hash: h }) if *h == hash))
}

#[test]
fn a_blob_added_on_one_node_is_fetched_by_two_others_with_the_same_bytes() {
    // The seeder serves 4 MiB/s: slow enough that the fetchers, asking
    // each other again every `relook`, find groups there.
    let mut net = mesh(3, |i| {
        let mut config = config();
        if i == 0
            && let Some(blobs) = &mut config.blobs
        {
            blobs.serve = ServeLimits {
                bytes_per_sec: 4 << 20,
                burst: 256 << 10,
                ..ServeLimits::default()
            };
        }
        config
    });
    let data = blob(3 * 1024 * 1024 + 77, 1);
    let hash = BlobHash::of(&data);
    net.command(0, BlobsCommand::Add { data: data.clone() })
        .expect("blobs on");
    assert!(net.events_of(0).any(
        |e| matches!(e, Event::Blobs(BlobsEvent::Added { hash: h, len }) if *h == hash && *len == data.len() as u64)
    ));
    let seeder = id(&net, 0);
    for i in [1, 2] {
        net.command(
            i,
            BlobsCommand::Fetch {
                hash,
                providers: vec![seeder],
            },
        )
        .expect("blobs on");
    }
    net.run_for(Duration::from_secs(30));
    for i in [1, 2] {
        assert!(done(&net, i, hash), "node {i} done");
        assert_eq!(
            fetched(&net, i, &hash).as_deref(),
            Some(&data[..]),
            "node {i}"
        );
        assert!(net.node(i).blob_fetches().is_empty());
        let stats = net.node(i).stats().blobs;
        assert_eq!(stats.fetches_done, 1);
        assert_eq!(stats.groups_refused, 0);
    }
    // The fetchers served each other: the seeder sent fewer than two copies.
    let groups = Outboard::compute(&data).groups();
    let seeder_sent = net.node(0).stats().blobs.serve.groups_sent;
    let swarm_sent: u64 = [1, 2]
        .iter()
        .map(|&i| net.node(i).stats().blobs.serve.groups_sent)
        .sum();
    assert_eq!(
        seeder_sent + swarm_sent,
        2 * groups,
        "each group sent once per fetcher"
    );
    assert!(swarm_sent > 0, "fetchers served each other");
    assert!(
        net.node(0).stats().blobs.serve.refused_busy > 0,
        "the budget held"
    );
}

/// A store whose reads return one byte flipped: a provider with a bad disk,
/// or a liar; its proofs are honest.
struct CorruptingStore(MemStore);

impl BlobStore for CorruptingStore {
    fn outboard(&self, hash: &BlobHash) -> Option<&Outboard> {
        self.0.outboard(hash)
    }
    fn outboard_mut(&mut self, hash: &BlobHash) -> Option<&mut Outboard> {
        self.0.outboard_mut(hash)
    }
    fn held(&self, hash: &BlobHash) -> Option<&GroupSet> {
        self.0.held(hash)
    }
    fn read_group(&self, hash: &BlobHash, group: u64) -> Option<Bytes> {
        let mut data = self.0.read_group(hash, group)?.to_vec();
        if let Some(byte) = data.get_mut(100) {
            *byte ^= 0x01;
        }
        Some(data.into())
    }
    fn create(&mut self, outboard: Outboard) -> Result<(), StoreError> {
        self.0.create(outboard)
    }
    fn write_group(&mut self, hash: &BlobHash, group: u64, data: Bytes) -> Result<(), StoreError> {
        self.0.write_group(hash, group, data)
    }
    fn list(&self) -> Vec<BlobHash> {
        self.0.list()
    }
}

#[test]
fn a_provider_that_corrupts_one_byte_is_dropped_at_its_first_group_and_the_fetch_completes() {
    let data = blob(2 * 1024 * 1024, 2);
    let hash = BlobHash::of(&data);
    for seed_offset in 0..3 {
        let mut net = Network::new(LATENCY);
        for i in 0..3 {
            net.add_node(config(), secret(i), 10 * seed_offset + i as u64)
                .expect("as set up");
        }
        let mut liar_store = MemStore::new();
        liar_store.add(data.clone()).expect("no cap");
        net.node_mut(1)
            .set_blob_store(Box::new(CorruptingStore(liar_store)));
        net.connect(0, 2).expect("as set up");
        net.connect(1, 2).expect("as set up");
        net.settle();
        net.command(0, BlobsCommand::Add { data: data.clone() })
            .expect("blobs on");
        // The liar first and alone: the fetch asks it before it meets the
        // honest seeder.
        let liar = id(&net, 1);
        net.command(
            2,
            BlobsCommand::Fetch {
                hash,
                providers: vec![liar],
            },
        )
        .expect("blobs on");
        net.run_for(Duration::from_secs(30));
        let dropped: Vec<(NodeId, DropReason)> = net
            .events_of(2)
            .filter_map(|e| match e {
                Event::Blobs(BlobsEvent::ProviderDropped {
                    provider, reason, ..
                }) => Some((*provider, *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            dropped,
            vec![(liar, DropReason::Lied(VerifyError::HashMismatch))]
        );
        assert!(done(&net, 2, hash));
        assert_eq!(fetched(&net, 2, &hash).as_deref(), Some(&data[..]));
        let stats = net.node(2).stats().blobs;
        assert_eq!(
            stats.groups_refused, 1,
            "one bad group, then the liar is dropped"
        );
        // And closed as misbehaving, counted.
        assert_eq!(stats.liars_closed, 1);
        assert!(net.events_of(2).any(|e| matches!(e,
            Event::Peers(PeersEvent::Down { peer, reason: CloseReason::Misbehaving(_) }) if *peer == liar)));
    }
}

#[test]
fn a_node_without_blobs_refuses_the_command_and_a_fetch_of_an_unknown_blob_waits() {
    let mut net = mesh(2, |i| {
        if i == 0 {
            Config {
                security: Security::Plaintext,
                ..Config::lan()
            }
        } else {
            config()
        }
    });
    let refused = net.command(0, BlobsCommand::Add { data: blob(10, 0) });
    assert!(matches!(refused, Err(CommandError::Blobs(BlobsError::Off))));
    let hash = BlobHash::of(b"nobody has this");
    net.command(
        1,
        BlobsCommand::Fetch {
            hash,
            providers: vec![id(&net, 0)],
        },
    )
    .expect("blobs on");
    net.run_for(Duration::from_secs(5));
    assert!(!done(&net, 1, hash));
    assert_eq!(net.node(1).blob_fetches(), vec![hash]);
    // Node 0 does not offer BLOBS, so it was never asked (no close).
    assert!(net.node(0).stats().peers.frames_received > 0);
    assert_eq!(net.node(1).stats().blobs.serve.not_held, 0);
}

#[test]
fn the_nodes_own_store_refuses_blobs_past_its_bound() {
    let mut net = mesh(1, |_| Config {
        blobs: Some(BlobsConfig {
            store_bytes: 64 << 10,
            ..BlobsConfig::default()
        }),
        ..config()
    });
    net.command(
        0,
        BlobsCommand::Add {
            data: blob(40 << 10, 1),
        },
    )
    .expect("40 KiB fits in 64");
    let refused = net.command(
        0,
        BlobsCommand::Add {
            data: blob(40 << 10, 2),
        },
    );
    assert!(
        matches!(refused, Err(CommandError::Blobs(BlobsError::StoreFull))),
        "{refused:?}"
    );
    // The default bound is what the limits page says.
    assert_eq!(BlobsConfig::default().store_bytes, 2 << 30);
}
