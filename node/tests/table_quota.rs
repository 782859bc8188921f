//! Storage quotas over real sockets (spec/chord.md §10.5): a peer that runs
//! the real node code floods one member of a 3-process ring with tampered
//! `DhtReplicate`s for keys in that member's own range, more than its whole
//! store (the attack that once filled it for good); honest `put`s into that
//! range still succeed, during the flood's aftermath and after the peer
//! leaves, and the junk it left is bounded by its sender quota.
//!
//! The flooder's id is ground to sit inside the target's range, so that by
//! the entitlement rule (§10.4) it may be a newly joined owner of the
//! positions at or before it: those reach the store and only the quota
//! holds them. Junk past its id is refused outright (not entitled). Every
//! junk entry is signed by an identity made up for it.

mod support;

use std::net::SocketAddr;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use ringmesh::wire::{DhtBody, DhtEntry, DhtReplicate, DhtValue, Message};
use ringmesh::{Config, DhtKey, Identity, Instant, Node, NodeId};
use support::{Intruder, Proc};

/// Junk values: 64 KiB each, 16 to a `DhtReplicate` (1 MiB a batch).
const VALUE: usize = 64 << 10;
const BATCH: usize = 16;
/// 80 batches, 80 MiB: more than the target's whole store (64 MiB).
const BATCHES: usize = 80;

/// §10.1: an open key's ring position.
fn position(key: &str) -> u128 {
    let key = DhtKey::Open(Bytes::copy_from_slice(key.as_bytes()));
    u128::from_be_bytes(key.hash()[..16].try_into().expect("16"))
}

/// Whether `x` is in the ring interval (`a`, `b`].
fn inside(a: u128, x: u128, b: u128) -> bool {
    x.wrapping_sub(a).wrapping_sub(1) < b.wrapping_sub(a)
}

fn id_of(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).expect("hex id")
}

/// Keys `prefix-i` with position in (`pred`, `owner`].
fn keys_in(prefix: &str, pred: u128, owner: u128) -> impl Iterator<Item = String> {
    let prefix = prefix.to_owned();
    (0u64..)
        .map(move |i| format!("{prefix}-{i}"))
        .filter(move |k| inside(pred, position(k), owner))
}

/// `count` junk entries of `keys`, each signed by an identity of its own.
fn junk(keys: &mut impl Iterator<Item = String>, count: usize) -> Vec<DhtEntry> {
    keys.take(count)
        .map(|name| {
            let key = DhtKey::Open(Bytes::from(name));
            let writer = Identity::from_secret_bytes(key.hash());
            let value = DhtValue::Value(Bytes::from(vec![0xee; VALUE]));
            DhtEntry {
                body: DhtBody::signed(&writer, &key, 1, value),
                key,
            }
        })
        .collect()
}

/// The tampered member: an in-process node whose id is ground into the
/// ring interval `within`, connected to `target`. It offers the ring and
/// the table, so the session carries table messages.
fn connect_flooder(target: SocketAddr, target_id: NodeId, within: (u128, u128)) -> Intruder {
    let mut config = Config::lan_ring(3);
    // Never dialled: it only needs one to offer the ring.
    config.listen_addrs = ["127.0.0.1:9".parse().expect("addr")].into_iter().collect();
    let secret = (0u64..)
        .map(|i| *blake3::hash(format!("table quota flooder {i}").as_bytes()).as_bytes())
        .find(|s| {
            let id = Identity::from_secret_bytes(*s).node_id().as_u128();
            inside(within.0, id, within.1)
        })
        .expect("an id in range");
    let node = Node::new(
        config,
        Identity::from_secret_bytes(secret),
        1,
        Instant::ZERO,
    )
    .expect("valid config");
    Intruder::connect(target, target_id, node)
}

/// The bytes a node's `ring` command says it stores.
fn stored_bytes(p: &mut Proc) -> usize {
    let line = p.answer("ring", |l| l.starts_with("table: "));
    // "table: N entries (B bytes) stored on this node"
    let open = line.find('(').expect("(") + 1;
    let close = line[open..].find(' ').expect("space") + open;
    line[open..close].parse().expect("a byte count")
}

#[test]
fn junk_replicated_into_a_members_own_range_never_blocks_honest_puts() {
    let started = StdInstant::now();
    let boot = support::ring_founder();
    let mut nodes: Vec<Proc> = ["n1", "n2"]
        .iter()
        .map(|name| support::ring_joiner(name, &boot, &[]))
        .collect();
    for p in &mut nodes {
        support::wait_joined(p);
    }
    let mut ids: Vec<String> = nodes.iter().map(|p| p.id.clone()).collect();
    ids.push(boot.id.clone());
    for p in &mut nodes {
        p.wait_line(&support::ideal_ring_line(&ids, &p.id));
    }
    let (mut target, mut honest) = (nodes.remove(0), nodes.remove(0));
    let pred = id_of(&support::predecessor_in(&ids, &target.id));
    let me = id_of(&target.id);

    // The flood: 80 MiB of junk for the target's own range, each entry
    // under a writer of its own, from an id ground into the upper half of
    // that range.
    let target_id = NodeId::from_u128(me);
    let half = pred.wrapping_add(me.wrapping_sub(pred) / 2);
    let mut flooder = connect_flooder(target.addr.parse().expect("addr"), target_id, (half, me));
    let f = flooder.node().node_id().as_u128();
    // Past the flooder's id, nothing is taken from it.
    let refused = junk(&mut keys_in("beyond", f, me), 4);
    let message = Message::DhtReplicate(DhtReplicate {
        req: 1,
        entries: refused,
    });
    assert!(flooder.send(target_id, &message), "sent");
    let mut keys = keys_in("junk", pred, f);
    for batch in 0..BATCHES {
        let entries = junk(&mut keys, BATCH);
        let message = Message::DhtReplicate(DhtReplicate {
            req: batch as u64 + 2,
            entries,
        });
        assert!(flooder.send(target_id, &message), "sent");
        let open = flooder.read(StdDuration::from_millis(1));
        assert!(open, "the target closed the flooder");
    }
    // Every batch answered: the target took the whole flood in.
    let deadline = StdInstant::now() + support::WAIT;
    while flooder.node().stats().chord.late_replies < BATCHES as u64 + 1 {
        assert!(StdInstant::now() < deadline, "every batch acknowledged");
        let open = flooder.read(StdDuration::from_millis(50));
        assert!(open, "the target closed the flooder");
    }

    // An honest put into the flooded range is stored, and the target holds
    // at most the flooder's sender quota of junk (32 MiB of its 64 MiB).
    let mut honest_keys = keys_in("honest", pred, me);
    let key = honest_keys.next().expect("a key");
    assert_eq!(
        honest.answer(&format!("put --open {key} still here"), |l| l
            .contains(&key)),
        format!("stored open {key} (version 1)")
    );
    let held = stored_bytes(&mut target);
    assert!(held <= 32 << 20, "the target stores {held} bytes");
    assert!(
        held >= 16 << 20,
        "the flood reached the target: {held} bytes"
    );

    // The flooder leaves; puts still succeed at once.
    drop(flooder);
    let key = honest_keys.next().expect("a key");
    assert_eq!(
        honest.answer(&format!("put --open {key} after it left"), |l| l
            .contains(&key)),
        format!("stored open {key} (version 1)")
    );
    eprintln!(
        "table quota socket test took {:?}; target held {held} bytes",
        started.elapsed()
    );
}
