//! Storage quotas (spec/chord.md §10.5) in a ring of 8 members: two members
//! flood one holder's own range with junk, through the real node API
//! (`DhtPut`) and with tampered `DhtReplicate`s (one of them from the
//! holder's successor, which the entitlement rule of §10.4 lets send entries
//! of the holder's own range: only its quota stops it), while the six honest
//! members keep writing there; honest writes keep succeeding, are never
//! evicted, and still succeed at once after the flooders leave; an honest
//! writer past its own quota is told so, not that the store is full.

use bytes::Bytes;
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{DhtBody, DhtEntry, DhtReplicate, DhtValue, MAX_DHT_BATCH, Message};
use ringmesh::{
    Accepted, ChordConfig, Command, Config, DhtCommand, DhtConfig, DhtEvent, DhtFailure, DhtKey,
    Duration, Event, Identity, NodeId, OpId, Security,
};

const N: usize = 8;
const REPAIR: Duration = Duration::from_secs(10);
/// Junk values: 100 bytes, about 110 with their key.
const JUNK: usize = 100;

/// A small store so the flood fills it: 96 entries, 12 KiB; a writer may
/// hold 4 entries (512 bytes), a sender half the store, the ratio of the
/// defaults.
fn config() -> Config {
    Config {
        security: Security::Plaintext,
        chord: Some(ChordConfig {
            successors: 4,
            ..ChordConfig::lan()
        }),
        dht: Some(DhtConfig {
            replicas: 3,
            max_entries: 96,
            max_bytes: 12 << 10,
            max_entries_per_writer: 4,
            max_bytes_per_writer: 512,
            max_entries_per_sender: 48,
            max_bytes_per_sender: 6 << 10,
            repair_interval: REPAIR,
            ..DhtConfig::lan()
        }),
        ..Config::lan()
    }
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s[8] = 0x9a;
    s
}

/// A founded ring of `N` members, settled.
fn ring() -> Network {
    let mut net = Network::new(Duration::from_millis(5));
    for i in 0..N {
        net.add_node(config(), secret(i), 4000 + i as u64)
            .expect("valid config");
    }
    net.found_ring(0..N).expect("found");
    net.run_for(Duration::from_secs(5));
    net
}

/// The members in ring order, by index.
fn ring_order(net: &Network) -> Vec<NodeIndex> {
    let mut order: Vec<NodeIndex> = (0..N).collect();
    order.sort_unstable_by_key(|&i| net.node(i).node_id());
    order
}

/// §10.1: a key's ring position.
fn position(key: &DhtKey) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(&key.hash()[..16]);
    u128::from_be_bytes(first)
}

/// Keys `prefix-i` that fall in the range (`pred`, `owner`], `count` of
/// them, ground by trying successive `i` (one in eight fits).
fn keys_in(prefix: &str, count: usize, pred: NodeId, owner: NodeId) -> Vec<DhtKey> {
    let (p, o) = (pred.as_u128(), owner.as_u128());
    let inside = |x: u128| x.wrapping_sub(p).wrapping_sub(1) < o.wrapping_sub(p);
    (0u64..)
        .map(|i| DhtKey::Open(Bytes::from(format!("{prefix}-{i}"))))
        .filter(|k| inside(position(k)))
        .take(count)
        .collect()
}

fn put(net: &mut Network, from: NodeIndex, key: &DhtKey, value: &[u8]) -> OpId {
    let command = DhtCommand::Put {
        key: key.clone(),
        value: Bytes::copy_from_slice(value),
    };
    match net.command(from, command) {
        Ok(Accepted::Op(id)) => id,
        other => panic!("put refused: {other:?}"),
    }
}

/// How operation `id` of node `from` ended, and when; `None` if not yet.
fn outcome(net: &Network, from: NodeIndex, id: OpId) -> Option<(Result<(), DhtFailure>, u64)> {
    net.events().iter().find_map(|r| match &r.event {
        Event::Dht(DhtEvent::PutDone { id: i, .. }) if r.node == from && *i == id => {
            Some((Ok(()), r.at.as_micros()))
        }
        Event::Dht(DhtEvent::Failed { id: i, reason }) if r.node == from && *i == id => {
            Some((Err(*reason), r.at.as_micros()))
        }
        _ => None,
    })
}

/// `count` tampered `DhtReplicate` entries in the target's own range, each
/// signed by an identity made up for it alone (identities are free; the
/// sender is the peer that sends them).
fn junk_batch(prefix: &str, count: usize, pred: NodeId, owner: NodeId) -> Vec<DhtEntry> {
    keys_in(prefix, count, pred, owner)
        .into_iter()
        .map(|key| {
            let writer = Identity::from_secret_bytes(key.hash());
            let value = DhtValue::Value(Bytes::from(vec![0xee; JUNK]));
            DhtEntry {
                body: DhtBody::signed(&writer, &key, 1, value),
                key,
            }
        })
        .collect()
}

#[test]
fn a_flood_of_junk_neither_blocks_nor_evicts_honest_writes_nor_outlasts_the_flooders() {
    let mut net = ring();
    let order = ring_order(&net);
    // The target: a holder whose predecessor is honest. One flooder is its
    // successor (entitled to hand it entries of its own range, §10.4), the
    // other sits across the ring (its replicas are refused as unentitled;
    // its puts go through).
    let (target, pred) = (order[0], order[N - 1]);
    let flooders = [order[1], order[5]];
    let honest: Vec<NodeIndex> = order
        .iter()
        .copied()
        .filter(|i| !flooders.contains(i))
        .collect();
    assert_eq!(honest.len(), 6);
    let (pred_id, target_id) = (net.node(pred).node_id(), net.node(target).node_id());
    assert_eq!(net.node(target).chord_predecessor(), Some(pred_id));
    for &a in &flooders {
        if !net.node(a).is_connected(target_id) {
            net.connect(a, target).expect("dial");
        }
    }
    net.run_for(Duration::from_secs(1));

    // The flood: each round, each flooder sends a full batch of junk and
    // puts junk through the API, and one honest member writes.
    let mut honest_ops: Vec<(NodeIndex, OpId, DhtKey)> = Vec::new();
    let honest_keys = keys_in("honest", 2 * honest.len(), pred_id, target_id);
    let mut junk_puts = Vec::new();
    let mut junk_keys: [Vec<DhtKey>; 2] = [Vec::new(), Vec::new()];
    let mut req = 1u64 << 40;
    for round in 0..12 {
        for (f, &a) in flooders.iter().enumerate() {
            let prefix = format!("junk{f}-{round}");
            // Flooder 0, the target's successor, hands it junk of its own
            // range (only the sender quota stops it). Flooder 1 sends a few
            // entries of the target's range (refused: not entitled) and a
            // full batch of "replicas" of its own range (entitled: it may
            // own them), which no hard quota holds but which fill the store.
            let mut batches = vec![junk_batch(&prefix, 8, pred_id, target_id)];
            if f == 0 {
                batches[0] = junk_batch(&prefix, MAX_DHT_BATCH, pred_id, target_id);
            } else {
                let (lo, hi) = (net.node(order[4]).node_id(), net.node(a).node_id());
                batches.push(junk_batch(&format!("own-{prefix}"), MAX_DHT_BATCH, lo, hi));
            }
            for entries in batches {
                junk_keys[f].extend(entries.iter().map(|e| e.key.clone()));
                req += 1;
                let message = Message::DhtReplicate(DhtReplicate { req, entries });
                let now = net.now();
                assert!(net.node_mut(a).adversary_send(now, target_id, &message));
            }
            for key in keys_in(&format!("put{f}-{round}"), 2, pred_id, target_id) {
                junk_keys[f].push(key.clone());
                junk_puts.push((a, put(&mut net, a, &key, &[0xdd; JUNK])));
            }
        }
        let writer = honest[round % honest.len()];
        let key = honest_keys[round].clone();
        honest_ops.push((writer, put(&mut net, writer, &key, b"honest value"), key));
        net.run_for(Duration::from_millis(300));
    }
    net.run_for(Duration::from_secs(12));

    // Junk went in up to the quotas and filled the store; it never stood in
    // the way of an honest write.
    let stats = net.node(target).stats().dht;
    let usage = net.node(target).dht_usage();
    assert!(stats.refused_sender_quota > 0, "{stats:?}");
    assert!(stats.replicas_unentitled > 0, "{stats:?}");
    assert!(stats.evicted > 0, "the store filled: {stats:?} {usage:?}");
    assert!(usage.entries <= 96 && usage.bytes <= 12 << 10, "{usage:?}");
    // The successor, as a sender, holds at most its quota in the target's
    // own range: 48 entries. (Flooder 1's "replicas" are evicted by fair
    // share instead, and go as garbage once nobody confirms them.)
    for keys in &junk_keys[..1] {
        let held = keys
            .iter()
            .filter(|k| net.node(target).dht_holds(k).is_some())
            .count();
        assert!(held <= 48, "{held} of {} junk entries held", keys.len());
    }
    let flooder_puts = junk_puts
        .iter()
        .filter_map(|&(a, id)| outcome(&net, a, id))
        .collect::<Vec<_>>();
    assert!(
        flooder_puts
            .iter()
            .any(|(r, _)| *r == Err(DhtFailure::OverQuota)),
        "{flooder_puts:?}"
    );
    for (writer, id, key) in &honest_ops {
        let result = outcome(&net, *writer, *id).map(|(r, _)| r);
        assert_eq!(result, Some(Ok(())), "honest put of {key:?} by {writer}");
        // Held by the target: honest entries within their share are never
        // evicted for junk.
        assert!(net.node(target).dht_holds(key).is_some(), "{key:?} evicted");
    }

    // The flooders leave (shut down: the ring learns it at once; a crashed
    // successor would first cost the liveness bound, which is not what is
    // measured here). Honest writes from every honest member succeed, all
    // of them, within one repair interval.
    for &a in &flooders {
        net.command(a, Command::Shutdown).expect("shutdown");
    }
    net.run_for(Duration::from_millis(100));
    for &a in &flooders {
        net.crash(a);
    }
    let left = net.now();
    let after: Vec<(NodeIndex, OpId)> = honest
        .iter()
        .zip(keys_in("after", honest.len(), pred_id, target_id))
        .map(|(&writer, key)| (writer, put(&mut net, writer, &key, b"after they left")))
        .collect();
    net.run_for(REPAIR);
    for (writer, id) in after {
        let (result, at) = outcome(&net, writer, id).expect("ended within a repair interval");
        assert_eq!(result, Ok(()), "put by {writer}");
        assert!(at <= (left + REPAIR).as_micros());
    }
}

#[test]
fn an_honest_writer_past_its_own_quota_is_told_so_and_others_still_write() {
    let mut net = ring();
    let order = ring_order(&net);
    let (target, pred) = (order[0], order[N - 1]);
    let (pred_id, target_id) = (net.node(pred).node_id(), net.node(target).node_id());
    let writer = order[2];
    let keys = keys_in("mine", 5, pred_id, target_id);
    let mut results = Vec::new();
    for key in &keys {
        let id = put(&mut net, writer, key, b"v");
        net.run_for(Duration::from_secs(2));
        results.push(outcome(&net, writer, id).map(|(r, _)| r));
    }
    // 4 entries per writer: the fifth is its own quota, not a full store.
    let ok = Some(Ok(()));
    assert_eq!(results, [ok, ok, ok, ok, Some(Err(DhtFailure::OverQuota))]);
    assert_eq!(net.node(target).stats().dht.refused_writer_quota, 1);
    assert_eq!(net.node(target).stats().dht.refused_full, 0);
    // Another writer, same range: stored.
    let other = order[4];
    let key = &keys_in("theirs", 1, pred_id, target_id)[0];
    let id = put(&mut net, other, key, b"v");
    net.run_for(Duration::from_secs(2));
    assert_eq!(outcome(&net, other, id).map(|(r, _)| r), ok);
}
