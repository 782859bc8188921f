//! Authorised table writes (spec/chord.md §10.1–§10.4, §10.7), with a
//! malicious member that runs the real node code and sends tampered table
//! messages through `Node::adversary_send`: an owned key cannot be
//! overwritten or deleted by another identity, an open key cannot be
//! pinned at version 2^64 − 1 and a later honest write wins, a replica
//! from a peer the receiver's view of the ring does not entitle is refused
//! and counted, and a reader rejects a fabricated value and returns the
//! genuine one from another holder.

use bytes::Bytes;
use proptest::prelude::*;
use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{
    DhtBody, DhtEntry, DhtKey, DhtPut, DhtReplicate, DhtValue, MAX_OPEN_VERSION_STEP, Message,
    dht_signed_bytes,
};
use ringmesh::{
    ChordConfig, CommandError, Config, DhtCommand, DhtConfig, DhtError, DhtEvent, DhtStats,
    Duration, Event, Identity, NodeId, OpId, PeersCommand, PublicKey, Security,
};

const LATENCY: Duration = Duration::from_millis(5);
/// Ring members: more than successors + 1, so that not every member is in
/// every successor list.
const N: usize = 8;

fn config() -> Config {
    Config {
        security: Security::Plaintext,
        chord: Some(ChordConfig {
            successors: 3,
            ..ChordConfig::lan()
        }),
        dht: Some(DhtConfig {
            replicas: 3,
            ..DhtConfig::lan()
        }),
        ..Config::lan()
    }
}

fn secret(i: NodeIndex) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s[8] = 0x7a;
    s
}

fn identity(i: NodeIndex) -> Identity {
    Identity::from_secret_bytes(secret(i))
}

/// `N` members founding one ring, settled.
fn ring() -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..N {
        net.add_node(config(), secret(i), 4000 + i as u64)
            .expect("valid config");
    }
    net.found_ring(0..N).expect("found");
    net.run_for(Duration::from_secs(10));
    net
}

fn open(name: &str) -> DhtKey {
    DhtKey::Open(Bytes::copy_from_slice(name.as_bytes()))
}

fn owned(net: &Network, owner: NodeIndex, name: &str) -> DhtKey {
    DhtKey::Owned {
        owner: net.node(owner).node_id(),
        name: Bytes::copy_from_slice(name.as_bytes()),
    }
}

fn position(key: &DhtKey) -> u128 {
    u128::from_be_bytes(key.hash()[..16].try_into().expect("16 bytes"))
}

/// Members by id, ring order.
fn by_id(net: &Network) -> Vec<NodeIndex> {
    let mut nodes: Vec<NodeIndex> = (0..N).collect();
    nodes.sort_by_key(|&i| net.node(i).node_id());
    nodes
}

/// The holders of `key`: its owner (the first member at or after its
/// position) and the next two.
fn holders(net: &Network, key: &DhtKey) -> Vec<NodeIndex> {
    let ring = by_id(net);
    let p = position(key);
    let at = ring
        .iter()
        .position(|&i| net.node(i).node_id().as_u128() >= p)
        .unwrap_or(0);
    (0..3).map(|k| ring[(at + k) % N]).collect()
}

/// The member just before `i` on the ring.
fn predecessor(net: &Network, i: NodeIndex) -> NodeIndex {
    let ring = by_id(net);
    let at = ring.iter().position(|&j| j == i).expect("a member");
    ring[(at + N - 1) % N]
}

fn op(result: Result<ringmesh::Accepted, CommandError>) -> OpId {
    match result {
        Ok(ringmesh::Accepted::Op(op)) => op,
        other => panic!("expected an op, got {other:?}"),
    }
}

/// Runs `command` on `from` to its end: `Ok(version)` or the failure.
fn write(net: &mut Network, from: NodeIndex, command: DhtCommand) -> Result<u64, String> {
    let id = op(net.command(from, command));
    net.run_for(Duration::from_secs(12));
    net.events_of(from)
        .find_map(|e| match e {
            Event::Dht(
                DhtEvent::PutDone { id: i, version } | DhtEvent::DeleteDone { id: i, version },
            ) if *i == id => Some(Ok(*version)),
            Event::Dht(DhtEvent::Failed { id: i, reason }) if *i == id => {
                Some(Err(reason.to_string()))
            }
            _ => None,
        })
        .expect("the write ended")
}

fn put(net: &mut Network, from: NodeIndex, key: &DhtKey, value: &str) -> Result<u64, String> {
    let value = Bytes::copy_from_slice(value.as_bytes());
    let key = key.clone();
    write(net, from, DhtCommand::Put { key, value })
}

/// What a read on `from` returns: value, version, writer.
fn get(net: &mut Network, from: NodeIndex, key: &DhtKey) -> (Option<Bytes>, u64, Option<NodeId>) {
    let id = op(net.command(from, DhtCommand::Get { key: key.clone() }));
    net.run_for(Duration::from_secs(12));
    net.events_of(from)
        .find_map(|e| match e {
            Event::Dht(DhtEvent::GetDone {
                id: i,
                value,
                version,
                writer,
                ..
            }) if *i == id => Some((value.clone(), *version, *writer)),
            Event::Dht(DhtEvent::Failed { id: i, reason }) if *i == id => {
                panic!("get failed: {reason}")
            }
            _ => None,
        })
        .expect("the get ended")
}

/// Node `from`, running the real node code, sends `message` to `to` as it
/// is (connecting first if it must), and the network runs on.
fn tampered_send(net: &mut Network, from: NodeIndex, to: NodeIndex, message: &Message) {
    let peer = net.node(to).node_id();
    if !net.node(from).connected_peers().contains(&peer) {
        net.connect(from, to).expect("dial");
        net.run_for(Duration::from_millis(200));
    }
    let now = net.now();
    assert!(
        net.node_mut(from).adversary_send(now, peer, message),
        "node {from} is connected to node {to}"
    );
    // A harmless command drains what adversary_send queued.
    net.command(from, PeersCommand::AddPeers { peers: vec![] })
        .expect("add no peers");
    net.run_for(Duration::from_secs(1));
}

fn value(text: &str) -> DhtValue {
    DhtValue::Value(Bytes::copy_from_slice(text.as_bytes()))
}

fn stats(net: &Network, i: NodeIndex) -> DhtStats {
    net.node(i).stats().dht
}

fn replicate(entries: Vec<DhtEntry>) -> Message {
    Message::DhtReplicate(DhtReplicate {
        req: 900_001,
        entries,
    })
}

#[test]
fn an_owned_key_cannot_be_overwritten_or_deleted_by_another_identity() {
    let mut net = ring();
    let (owner, thief, reader) = (0, 1, 2);
    let key = owned(&net, owner, "colour");
    assert_eq!(put(&mut net, owner, &key, "blue"), Ok(1));

    // The thief's own node refuses the command outright.
    let owner_id = net.node(owner).node_id();
    assert_eq!(
        net.command(
            thief,
            DhtCommand::Put {
                key: key.clone(),
                value: Bytes::from_static(b"stolen")
            }
        ),
        Err(CommandError::Dht(DhtError::NotYourKey { owner: owner_id }))
    );

    // The thief's tampered node sends the coordinator a write of the
    // owner's key signed by itself, then one that claims the owner's public
    // key with a signature the thief made: both refused.
    let holders = holders(&net, &key);
    let coordinator = holders[0];
    let signed_by_thief = DhtBody::signed(&identity(thief), &key, 2, value("stolen"));
    let claims_owner = DhtBody::with_signature(
        identity(owner).public_key(),
        3,
        DhtValue::Tombstone,
        identity(thief).sign(&dht_signed_bytes(&key, 3, &DhtValue::Tombstone)),
    );
    for body in [signed_by_thief.clone(), claims_owner.clone()] {
        let entry = DhtEntry {
            key: key.clone(),
            body,
        };
        if coordinator != thief {
            tampered_send(
                &mut net,
                thief,
                coordinator,
                &Message::DhtPut(DhtPut {
                    req: 77,
                    entry: Box::new(entry),
                }),
            );
        }
    }
    // And every holder a replica of each (a delete among them), from the
    // thief whatever its place on the ring.
    for &holder in holders.iter().filter(|&&h| h != thief) {
        let entries = [&signed_by_thief, &claims_owner]
            .map(|body| DhtEntry {
                key: key.clone(),
                body: body.clone(),
            })
            .to_vec();
        tampered_send(&mut net, thief, holder, &replicate(entries));
    }
    let refused: u64 = holders
        .iter()
        .map(|&h| stats(&net, h).entries_unverified + stats(&net, h).replicas_unentitled)
        .sum();
    assert!(
        refused >= 4,
        "holders refused the forged entries: {refused}"
    );
    for &holder in &holders {
        let held = net.node(holder).dht_holds(&key).expect("still held");
        assert_eq!((held.version, held.live), (1, true), "node {holder}");
        assert_eq!(held.writer, net.node(owner).node_id());
    }
    assert_eq!(
        get(&mut net, reader, &key),
        (Some(Bytes::from_static(b"blue")), 1, Some(owner_id))
    );

    // The owner itself may overwrite and delete.
    assert_eq!(put(&mut net, owner, &key, "green"), Ok(2));
    let id = op(net.command(owner, DhtCommand::Delete { key: key.clone() }));
    net.run_for(Duration::from_secs(12));
    assert!(
        net.events_of(owner).any(
            |e| matches!(e, Event::Dht(DhtEvent::DeleteDone { id: i, version: 3 }) if *i == id)
        )
    );
    assert_eq!(get(&mut net, reader, &key), (None, 3, Some(owner_id)));
}

#[test]
fn an_open_key_cannot_be_pinned_and_a_later_honest_write_wins() {
    let mut net = ring();
    let key = open("pin");
    let holders = holders(&net, &key);
    let coordinator = holders[0];
    // The attacker is the coordinator's successor (its second holder):
    // entitled to send it entries, so only the version rule stands.
    let attacker = holders[1];
    let (writer, reader) = (
        (0..N).find(|i| !holders.contains(i)).expect("a non-holder"),
        (0..N)
            .rev()
            .find(|i| !holders.contains(i))
            .expect("another"),
    );
    assert_eq!(put(&mut net, writer, &key, "honest"), Ok(1));

    // The attack: one replica at version 2^64 − 1, correctly signed
    // by the attacker, to the key's owner only.
    let pin = DhtBody::signed(&identity(attacker), &key, u64::MAX, value("pinned"));
    let entry = DhtEntry {
        key: key.clone(),
        body: pin,
    };
    tampered_send(&mut net, attacker, coordinator, &replicate(vec![entry]));
    assert_eq!(stats(&net, coordinator).versions_jumped, 1);
    assert_eq!(stats(&net, coordinator).replicas_unentitled, 0);
    assert_eq!(
        net.node(coordinator).dht_holds(&key).map(|h| h.version),
        Some(1)
    );

    // The largest jump a holder takes, to every holder but the coordinator:
    // a valid open write (attributable to the attacker), not a pin.
    let jump = 1 + MAX_OPEN_VERSION_STEP;
    let body = DhtBody::signed(&identity(attacker), &key, jump, value("attacker"));
    for &holder in holders
        .iter()
        .filter(|&&h| h != attacker && h != coordinator)
    {
        let entry = DhtEntry {
            key: key.clone(),
            body: body.clone(),
        };
        tampered_send(&mut net, attacker, holder, &replicate(vec![entry]));
    }

    // A later honest write wins on every holder: the coordinator holds
    // version 1, a replica the jump; the writer signs again above it.
    let version = put(&mut net, writer, &key, "later").expect("the honest write succeeds");
    assert_eq!(version, jump + 1);
    let writer_id = net.node(writer).node_id();
    for &holder in &holders {
        let held = net.node(holder).dht_holds(&key).expect("held");
        assert_eq!(
            (held.version, held.writer),
            (jump + 1, writer_id),
            "node {holder}"
        );
    }
    assert_eq!(
        get(&mut net, reader, &key),
        (
            Some(Bytes::from_static(b"later")),
            jump + 1,
            Some(writer_id)
        )
    );
    // Anyone may still write an open key; the attacker's one is signed.
    assert_eq!(put(&mut net, attacker, &key, "mine now"), Ok(jump + 2));
}

#[test]
fn a_replica_from_a_peer_not_entitled_to_send_it_is_refused_and_counted() {
    let mut net = ring();
    let target = 3;
    let sender = predecessor(&net, target);
    let p = net.node(predecessor(&net, target)).node_id().as_u128();
    let me = net.node(target).node_id().as_u128();
    // An open key in the target's own range (P, target]: only a successor
    // of the target (handing off) may send it.
    let key = (0..)
        .map(|i| open(&format!("own-{i}")))
        .find(|k| {
            let x = position(k);
            if p < me {
                p < x && x <= me
            } else {
                x > p || x <= me
            }
        })
        .expect("a key in the range");
    let body = DhtBody::signed(&identity(sender), &key, 1, value("pushed"));
    let entry = DhtEntry {
        key: key.clone(),
        body,
    };
    tampered_send(&mut net, sender, target, &replicate(vec![entry.clone()]));
    assert_eq!(stats(&net, target).replicas_unentitled, 1);
    assert!(net.node(target).dht_holds(&key).is_none());

    // The same entry from the target's successor (a hand-off) is taken.
    let successor = by_id(&net)[(by_id(&net)
        .iter()
        .position(|&i| i == target)
        .expect("member")
        + 1)
        % N];
    tampered_send(&mut net, successor, target, &replicate(vec![entry]));
    assert_eq!(stats(&net, target).replicas_unentitled, 1);
    assert_eq!(net.node(target).dht_holds(&key).map(|h| h.version), Some(1));
}

#[test]
fn a_reader_rejects_fabricated_values_and_returns_the_genuine_one() {
    let mut net = ring();
    let owner = 5;
    let key = owned(&net, owner, "colour");
    assert_eq!(put(&mut net, owner, &key, "blue"), Ok(1));
    let holders = holders(&net, &key);
    let reader = (0..N).find(|i| !holders.contains(i)).expect("a non-holder");
    // Two of the three holders lie: one with a greater version claiming the
    // owner's key over a signature by someone else, one with an unsigned
    // body.
    let forged = DhtBody::with_signature(
        identity(owner).public_key(),
        50,
        value("evil"),
        identity(reader).sign(&dht_signed_bytes(&key, 50, &value("evil"))),
    );
    let unsigned =
        DhtBody::with_signature(PublicKey::from_bytes([9; 32]), 60, value("junk"), [0; 64]);
    let now = net.now();
    assert!(
        net.node_mut(holders[0])
            .dht_corrupt(now, key.clone(), forged)
    );
    assert!(
        net.node_mut(holders[1])
            .dht_corrupt(now, key.clone(), unsigned)
    );
    let owner_id = net.node(owner).node_id();
    assert_eq!(
        get(&mut net, reader, &key),
        (Some(Bytes::from_static(b"blue")), 1, Some(owner_id))
    );
    assert_eq!(stats(&net, reader).replies_rejected, 2);

    // An open key: a holder's body signed by B but claiming A's key.
    let open_key = open("shared");
    assert_eq!(put(&mut net, 2, &open_key, "fine"), Ok(1));
    let holders = holders_of(&net, &open_key);
    let lie = DhtBody::with_signature(
        identity(2).public_key(),
        9,
        value("lie"),
        identity(6).sign(&dht_signed_bytes(&open_key, 9, &value("lie"))),
    );
    let now = net.now();
    assert!(
        net.node_mut(holders[0])
            .dht_corrupt(now, open_key.clone(), lie)
    );
    let reader = (0..N).find(|i| !holders.contains(i)).expect("a non-holder");
    let before = stats(&net, reader).replies_rejected;
    let writer = net.node(2).node_id();
    assert_eq!(
        get(&mut net, reader, &open_key),
        (Some(Bytes::from_static(b"fine")), 1, Some(writer))
    );
    assert_eq!(stats(&net, reader).replies_rejected, before + 1);
}

fn holders_of(net: &Network, key: &DhtKey) -> Vec<NodeIndex> {
    holders(net, key)
}

proptest! {
    /// The signed bytes are the spec's layout for any key, version and
    /// value, and a body signed over them verifies only for its own key.
    #[test]
    fn signed_bytes_follow_the_layout_and_bind_the_key(
        owner in proptest::option::of(any::<u128>()),
        name in proptest::collection::vec(any::<u8>(), 1..=256),
        other in proptest::collection::vec(any::<u8>(), 1..=256),
        version in 1u64..,
        data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    ) {
        let make = |name: &[u8]| match owner {
            Some(o) => DhtKey::Owned { owner: NodeId::from_u128(o), name: Bytes::copy_from_slice(name) },
            None => DhtKey::Open(Bytes::copy_from_slice(name)),
        };
        let key = make(&name);
        let value = data.clone().map_or(DhtValue::Tombstone, |d| DhtValue::Value(d.into()));
        let bytes = dht_signed_bytes(&key, version, &value);
        let mut expected = b"ringmesh dht entry v1:".to_vec();
        expected.push(u8::from(owner.is_some()));
        expected.extend_from_slice(&owner.unwrap_or(0).to_be_bytes());
        expected.extend_from_slice(&(name.len() as u16).to_be_bytes());
        expected.extend_from_slice(&name);
        expected.extend_from_slice(&version.to_be_bytes());
        expected.push(value.kind());
        let data = data.unwrap_or_default();
        expected.extend_from_slice(&(data.len() as u32).to_be_bytes());
        expected.extend_from_slice(&data);
        prop_assert_eq!(&bytes, &expected);
        let signer = identity(1);
        let body = DhtBody::signed(&signer, &key, version, value);
        prop_assert!(signer.public_key().verify_strict(&body.signed_bytes(&key), &body.signature));
        if other != name {
            prop_assert!(!signer.public_key().verify_strict(&body.signed_bytes(&make(&other)), &body.signature));
        }
    }
}
