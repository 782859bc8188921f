//! Authorised table writes over real sockets (issue 13, part 2): against
//! the `ringmesh` program, a peer running the real node code (Noise, its
//! own identity) sends the table messages of the attacks as they
//! are: one `DhtReplicate` at version 2^64 − 1 of an open key to the key's
//! owner, a replica deleting the owner's own key, and `DhtPut`s that jump
//! an open key to 2^64 − 1 and overwrite the owner's key. Each is refused
//! and logged, and honest `put`/`get` from the console still give the
//! honest values, the next version following the honest one.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use ringmesh::wire::{DhtBody, DhtEntry, DhtKey, DhtPut, DhtReplicate, DhtValue, Message};
use ringmesh::{
    ChordConfig, Config, DhtConfig, Direction, Event, Identity, Input, Instant, Node, NodeId,
    Output, PeersCommand, PeersEvent,
};
use support::Proc;

/// Connects a fresh identity to `target` over TCP (Noise), sends each of
/// `messages` once the session is up, and gives the target a moment to
/// answer before it leaves.
fn attack(target: SocketAddr, identity: Identity, messages: &[Message]) {
    let mut stream = TcpStream::connect(target).expect("connect");
    stream
        .set_read_timeout(Some(StdDuration::from_millis(100)))
        .expect("timeout");
    let epoch = StdInstant::now();
    let now = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
    // It runs the table (a peer must, for its table messages to be taken),
    // announcing an address nobody listens on; it never joins the ring.
    let mut config = Config::lan();
    config.listen_addrs = [SocketAddr::from(([127, 0, 0, 1], 9))]
        .into_iter()
        .collect();
    config.chord = Some(ChordConfig::lan());
    config.dht = Some(DhtConfig::lan());
    let mut node = match Node::new(config, identity, 7, now()) {
        Ok(node) => node,
        Err(e) => panic!("attacker config: {e}"),
    };
    node.command(
        now(),
        PeersCommand::Connect {
            addr: target,
            peer: None,
        },
    )
    .expect("dial");
    let (mut conn, mut peer, mut sent_at) = (None, None, None);
    let deadline = StdInstant::now() + StdDuration::from_secs(5);
    let mut buf = vec![0u8; 64 * 1024];
    while StdInstant::now() < deadline {
        while let Some(output) = node.poll_output() {
            match output {
                Output::Dial { conn: c, addr } if addr == target && conn.is_none() => {
                    conn = Some(c);
                    node.handle_input(
                        now(),
                        Input::Connected {
                            conn: c,
                            remote: target,
                            direction: Direction::Outbound,
                        },
                    );
                }
                Output::Send { conn: c, bytes } if Some(c) == conn => {
                    stream.write_all(&bytes).expect("write");
                }
                Output::Event(Event::Peers(PeersEvent::Up { peer: p, .. })) => peer = Some(p),
                _ => {}
            }
        }
        if let (Some(p), None) = (peer, sent_at) {
            for message in messages {
                assert!(node.adversary_send(now(), p, message), "sent {message:?}");
            }
            sent_at = Some(StdInstant::now());
            continue;
        }
        if sent_at.is_some_and(|at| at.elapsed() > StdDuration::from_millis(500)) {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => node.handle_input(
                now(),
                Input::Received {
                    conn: conn.expect("dialled"),
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                },
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                node.handle_input(now(), Input::Timeout)
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(
        sent_at.is_some(),
        "the attack's session came up and was sent"
    );
}

/// Waits for a stderr line of `proc` containing `needle`.
fn wait_stderr(proc: &Proc, needle: &str) {
    let deadline = StdInstant::now() + support::WAIT;
    loop {
        if proc
            .stderr
            .lock()
            .expect("stderr")
            .iter()
            .any(|l| l.contains(needle))
        {
            return;
        }
        assert!(
            StdInstant::now() < deadline,
            "{}: no stderr line with {needle:?}",
            proc.name
        );
        std::thread::sleep(StdDuration::from_millis(20));
    }
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
    attack(target, attacker, &messages);
    wait_stderr(&owner, "refused a replica");
    wait_stderr(&owner, "refused a table write");

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
