//! Authorised table writes over real sockets (issue 13, part 2): against
//! the `ringmesh` program, a peer running the real node code (Noise, its
//! own identity) sends the table messages of the attacks as they
//! are: one `DhtReplicate` at version 2^64 − 1 of an open key to the key's
//! owner, a replica deleting the owner's own key, and `DhtPut`s that jump
//! an open key to 2^64 − 1 and overwrite the owner's key. Each is refused
//! and logged, and honest `put`/`get` from the console still give the
//! honest values, the next version following the honest one.

mod support;

use std::net::SocketAddr;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use ringmesh::wire::{DhtBody, DhtEntry, DhtKey, DhtPut, DhtReplicate, DhtValue, Message};
use ringmesh::{ChordConfig, Config, DhtConfig, Identity, Instant, Node, NodeId};
use support::{Intruder, Proc};

/// Connects a fresh identity to `target` (whose id is `target_id`) over
/// TCP (Noise), sends each of `messages` once the session is up, and gives
/// the target a moment to answer before it leaves.
fn attack(target: SocketAddr, target_id: NodeId, identity: Identity, messages: &[Message]) {
    // It runs the table (a peer must, for its table messages to be taken),
    // announcing an address nobody listens on; it never joins the ring.
    let mut config = Config::lan();
    config.listen_addrs = [SocketAddr::from(([127, 0, 0, 1], 9))]
        .into_iter()
        .collect();
    config.chord = Some(ChordConfig::lan());
    config.dht = Some(DhtConfig::lan());
    let node = match Node::new(config, identity, 7, Instant::ZERO) {
        Ok(node) => node,
        Err(e) => panic!("attacker config: {e}"),
    };
    let mut intruder = Intruder::connect(target, target_id, node);
    for message in messages {
        assert!(intruder.send(target_id, message), "sent {message:?}");
    }
    let sent_at = StdInstant::now();
    while sent_at.elapsed() <= StdDuration::from_millis(500)
        && intruder.pump(StdDuration::from_millis(100))
    {}
}

#[test]
fn forged_and_pinning_table_writes_are_refused_and_honest_ones_still_win() {
    let started = StdInstant::now();
    let mut owner = Proc::spawn("owner", &["node", "--listen", "127.0.0.1:0"]);
    owner.wait_line("started a new ring: this node is its first member");
    let me = owner.short().to_owned();
    assert_eq!(
        owner.answer("put --open pin honest", |l| l.contains("pin")),
        "stored open pin (version 1)"
    );
    assert_eq!(
        owner.answer("put colour blue", |l| l.contains("colour")),
        "stored colour (version 1)"
    );
    assert_eq!(
        owner.answer("debug", |l| l.starts_with("debug logs")),
        "debug logs on (stderr)"
    );

    let owner_id: NodeId = owner.id.parse().expect("hex id");
    let pin = DhtKey::Open(Bytes::from_static(b"pin"));
    let colour = DhtKey::Owned {
        owner: owner_id,
        name: Bytes::from_static(b"colour"),
    };
    let attacker = Identity::from_secret_bytes(*blake3::hash(b"table attacker").as_bytes());
    let signed = |key: &DhtKey, version, value: DhtValue| DhtEntry {
        key: key.clone(),
        body: DhtBody::signed(&attacker, key, version, value),
    };
    let stolen = || DhtValue::Value(Bytes::from_static(b"stolen"));
    let messages = [
        // The pin: one replica at 2^64 − 1 to the key's owner only,
        // and a replica deleting the owner's own key.
        Message::DhtReplicate(DhtReplicate {
            req: 1,
            entries: vec![
                signed(&pin, u64::MAX, stolen()),
                signed(&colour, 2, DhtValue::Tombstone),
            ],
        }),
        // The same through the coordinator's door.
        Message::DhtPut(DhtPut {
            req: 2,
            entry: Box::new(signed(&pin, u64::MAX, stolen())),
        }),
        Message::DhtPut(DhtPut {
            req: 3,
            entry: Box::new(signed(&colour, 5, stolen())),
        }),
    ];
    let target: SocketAddr = owner.addr.parse().expect("address");
    attack(target, owner_id, attacker, &messages);
    owner.wait_stderr(&["refused a replica"]);
    owner.wait_stderr(&["refused a table write"]);

    // Honest writes and reads give the honest values; versions follow the
    // honest ones.
    assert_eq!(
        owner.answer("get --open pin", |l| l.contains("pin")),
        format!("open pin = honest (version 1, by <{me}>)")
    );
    assert_eq!(
        owner.answer("put --open pin later", |l| l.contains("pin")),
        "stored open pin (version 2)"
    );
    assert_eq!(
        owner.answer("get --open pin", |l| l.contains("pin")),
        format!("open pin = later (version 2, by <{me}>)")
    );
    assert_eq!(
        owner.answer("get colour", |l| l.contains("colour")),
        format!("colour = blue (version 1, by <{me}>)")
    );
    assert_eq!(
        owner.answer("del colour", |l| l.contains("colour")),
        "deleted colour (version 2)"
    );
    owner.type_line("exit");
    assert!(owner.wait_exit().success());
    eprintln!("table_auth socket test took {:?}", started.elapsed());
}
