//! Convergence of the sync table (spec/sync.md §3): random writes, deletes
//! and merges by random nodes, lease expiries, partitions (a node cut off
//! keeps writing), and late joiners, over 2–20 nodes. Once every node is
//! back and connected and the network is quiet:
//!
//! - every node holds the same table (digests and winners equal);
//! - each key's winner is the one the rule picks from every write made
//!   (an oracle folds them all, spec/sync.md §3): no write that lost by the
//!   rule is visible anywhere, and a deleted key whose tombstone won never
//!   comes back.
//!
//! Also the codec proptests of the three messages.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{
    DecodeError, MAX_SYNC_DEPTH, Message, Reader, SyncDigest, SyncEntry, SyncPublish, SyncPull,
    SyncRange, WireMessage,
};
use ringmesh::{Config, Duration, Identity, NodeId, Security, SyncCommand, SyncConfig};

const KEYS: [&str; 3] = ["a", "b", "c"];
const LEASE: Duration = Duration::from_secs(3);

fn config() -> Config {
    Config {
        security: Security::Plaintext,
        sync: Some(SyncConfig {
            lease: LEASE,
            max_skew: Duration::from_secs(1),
            tombstone_ttl: Duration::from_secs(3600),
            anti_entropy_interval: Duration::from_secs(1),
            ..SyncConfig::lan()
        }),
        ..Config::lan()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set {
        node: usize,
        key: usize,
        value: u8,
    },
    Delete {
        node: usize,
        key: usize,
    },
    Merge {
        node: usize,
        key: usize,
        item: u8,
    },
    /// Let time pass (ms).
    Wait(u64),
    /// Cut a node off (it keeps its table and may keep writing).
    Partition(usize),
    /// Bring a cut-off node back, connected to another.
    Heal(usize, usize),
    /// A new node joins through another.
    Join(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..64usize;
    prop_oneof![
        4 => (n.clone(), 0..KEYS.len(), any::<u8>()).prop_map(|(node, key, value)| Op::Set { node, key, value }),
        1 => (n.clone(), 0..KEYS.len()).prop_map(|(node, key)| Op::Delete { node, key }),
        1 => (n.clone(), 0..KEYS.len(), any::<u8>()).prop_map(|(node, key, item)| Op::Merge { node, key, item }),
        3 => (0..5_000u64).prop_map(Op::Wait),
        1 => n.clone().prop_map(Op::Partition),
        1 => (n.clone(), n.clone()).prop_map(|(a, b)| Op::Heal(a, b)),
        1 => n.prop_map(Op::Join),
    ]
}

/// One write as the writer made it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Write {
    hlc: u64,
    writer: NodeId,
    value: Option<Bytes>,
}

/// The rule over every write of a key, in order (spec/sync.md §3, with an
/// unbounded history): keep each write that follows the last one kept.
fn oracle(mut writes: Vec<Write>) -> Option<Write> {
    writes.sort_by_key(|w| (w.hlc, w.writer.to_bytes()));
    let lease = LEASE.as_micros();
    let mut kept: Option<Write> = None;
    for w in writes {
        let follows = kept
            .as_ref()
            .is_none_or(|k| w.writer == k.writer || w.hlc >= k.hlc + lease);
        if follows {
            kept = Some(w);
        }
    }
    kept
}

struct Run {
    net: Network,
    cut: Vec<bool>,
    writes: Vec<Vec<Write>>,
}

impl Run {
    fn new(nodes: usize) -> Run {
        let mut run = Run {
            net: Network::new(Duration::from_millis(5)),
            cut: Vec::new(),
            writes: vec![Vec::new(); KEYS.len()],
        };
        for _ in 0..nodes {
            run.join(None);
        }
        run.net.settle();
        run
    }

    fn len(&self) -> usize {
        self.cut.len()
    }

    fn join(&mut self, via: Option<NodeIndex>) {
        let i = self.len();
        let secret = [i as u8 + 1; 32];
        self.net
            .add_node(config(), secret, 7 + i as u64)
            .expect("as set up");
        self.cut.push(false);
        let via = via.or(i.checked_sub(1));
        if let Some(via) = via {
            self.net.connect(i, via).expect("as set up");
        }
    }

    fn record(&mut self, node: NodeIndex, key: usize) {
        let held = self
            .net
            .node(node)
            .sync_get(KEYS[key].as_bytes())
            .expect("as set up");
        self.writes[key].push(Write {
            hlc: held.hlc,
            writer: held.writer,
            value: held.value,
        });
    }

    fn apply(&mut self, op: Op) {
        let n = self.len();
        let key_of = |k: usize| Bytes::from_static(KEYS[k].as_bytes());
        match op {
            Op::Set { node, key, value } => {
                let node = node % n;
                let command = SyncCommand::Set {
                    key: key_of(key),
                    value: Bytes::from(vec![value]),
                };
                if self.net.command(node, command).is_ok() {
                    self.record(node, key);
                }
            }
            Op::Delete { node, key } => {
                let node = node % n;
                let command = SyncCommand::Delete { key: key_of(key) };
                if self.net.command(node, command).is_ok() {
                    self.record(node, key);
                }
            }
            Op::Merge { node, key, item } => {
                let node = node % n;
                let command = SyncCommand::Merge {
                    key: key_of(key),
                    delta: vec![(Bytes::from(vec![item]), Some(Bytes::from_static(b"x")))],
                };
                if self.net.command(node, command).is_ok() {
                    self.record(node, key);
                }
            }
            Op::Wait(ms) => {
                self.net.run_for(Duration::from_millis(ms));
            }
            Op::Partition(node) => {
                let node = node % n;
                if !self.cut[node] {
                    self.net.disconnect_node(node);
                    self.net.settle();
                    self.net.crash(node);
                    self.cut[node] = true;
                }
            }
            Op::Heal(node, via) => {
                let (node, via) = (node % n, via % n);
                if self.cut[node] {
                    self.net.recover(node);
                    self.cut[node] = false;
                    if via != node && !self.cut[via] {
                        self.net.connect(node, via).expect("as set up");
                    }
                }
            }
            Op::Join(via) => {
                let via = via % n;
                let via = (!self.cut[via]).then_some(via);
                self.join(via);
            }
        }
        self.net.settle();
    }

    /// Every node back, on a line, quiet.
    fn heal_all(&mut self) {
        for i in 0..self.len() {
            if self.cut[i] {
                self.net.recover(i);
                self.cut[i] = false;
            }
        }
        self.net.disconnect_all();
        self.net.settle();
        for i in 1..self.len() {
            self.net.connect(i, i - 1).expect("as set up");
        }
        // Anti-entropy every second with the next peer, round robin: a
        // difference crosses at least one link per round.
        self.net
            .run_for(Duration::from_secs(4 * self.len() as u64 + 10));
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let first = self.net.node(0).sync_entries();
        for i in 1..self.len() {
            prop_assert_eq!(
                self.net.node(i).sync_digest(),
                self.net.node(0).sync_digest(),
                "node {} differs",
                i
            );
            prop_assert_eq!(&self.net.node(i).sync_entries(), &first, "node {}", i);
        }
        for (k, writes) in self.writes.iter().enumerate() {
            let held = self.net.node(0).sync_get(KEYS[k].as_bytes());
            let expected = oracle(writes.clone());
            let held = held.map(|h| Write {
                hlc: h.hlc,
                writer: h.writer,
                value: h.value,
            });
            if held != expected {
                for i in 0..self.len() {
                    eprintln!(
                        "node {i}: {:?} {:?}",
                        self.net.node(i).sync_get(KEYS[k].as_bytes()),
                        self.net.node(i).stats().sync
                    );
                }
                eprintln!("writes: {writes:?}");
            }
            prop_assert_eq!(held, expected, "key {}", KEYS[k]);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_node_converges_on_the_rules_winner(
        nodes in 2..=8usize,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut run = Run::new(nodes);
        for op in ops {
            run.apply(op);
        }
        run.heal_all();
        run.check()?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn twenty_nodes_converge(ops in proptest::collection::vec(op(), 20..60)) {
        let mut run = Run::new(20);
        for op in ops {
            run.apply(op);
        }
        run.heal_all();
        run.check()?;
    }
}

// ----- codecs -----

fn round_trip<M: WireMessage + PartialEq + core::fmt::Debug>(m: &M) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    m.encode(&mut out);
    let mut input = Reader::new(out.freeze());
    let back = M::decode(&mut input).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    input
        .finish()
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, m);
    Ok(())
}

fn entry() -> impl Strategy<Value = SyncEntry> {
    (
        1..4u8,
        proptest::collection::vec(any::<u8>(), 1..40),
        any::<u64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
    )
        .prop_map(|(who, key, hlc, value)| {
            SyncEntry::signed(
                &Identity::from_secret_bytes([who; 32]),
                Bytes::from(key),
                hlc,
                value.map(Bytes::from),
            )
        })
}

proptest! {
    #[test]
    fn sync_messages_round_trip(
        entries in proptest::collection::vec(entry(), 1..8),
        depth in 1..=MAX_SYNC_DEPTH,
        raw in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 1..20),
    ) {
        let len = entries.iter().map(|e| e.encoded_len()).sum::<usize>();
        let publish = SyncPublish { entries };
        let mut out = BytesMut::new();
        publish.encode(&mut out);
        prop_assert_eq!(out.len(), len + 1);
        round_trip(&publish)?;
        let bits = 4 * u32::from(depth);
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let ranges: Vec<SyncRange> = raw
            .iter()
            .map(|&(prefix, digest, keys)| SyncRange { prefix: prefix & mask, digest, keys })
            .collect();
        round_trip(&SyncDigest { depth, ranges: ranges.clone() })?;
        let prefixes = ranges.iter().map(|r| r.prefix).collect();
        round_trip(&SyncPull { depth, prefixes })?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_sync_decoder(
        tag in 0x70u8..=0x72,
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let _ = Message::decode(tag, &mut Reader::new(Bytes::from(bytes)));
    }
}

#[test]
fn out_of_range_fields_are_refused() {
    let decode = |tag: u8, bytes: &[u8]| {
        Message::decode(tag, &mut Reader::new(Bytes::copy_from_slice(bytes)))
            .expect_err("malformed")
    };
    // A prefix of 16 at depth 1.
    assert_eq!(
        decode(0x72, &[1, 1, 16]),
        DecodeError::OutOfRange {
            field: "prefix",
            value: 16
        }
    );
    // Depth 0 and 17.
    assert!(matches!(
        decode(0x71, &[0, 1]),
        DecodeError::OutOfRange { field: "depth", .. }
    ));
    assert!(matches!(
        decode(0x72, &[17, 1]),
        DecodeError::OutOfRange { field: "depth", .. }
    ));
    // An empty publish, and one over 64 entries.
    assert!(matches!(
        decode(0x70, &[0]),
        DecodeError::OutOfRange { field: "count", .. }
    ));
    assert!(matches!(
        decode(0x70, &[65]),
        DecodeError::TooMany { len: 65, max: 64 }
    ));
    // An empty key.
    assert!(matches!(
        decode(0x70, &[1, 0]),
        DecodeError::OutOfRange {
            field: "key_len",
            ..
        }
    ));
}
