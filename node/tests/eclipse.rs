//! An identity flood cannot eclipse a node (issue 12, part 3): after
//! handshakes from 2,000 fresh identities, each announcing an undialable
//! listen address and gossiping a `PeerList` of junk, the node's tried peers
//! survive in its cache and in `peers.json`; restarted without
//! `--bootstrap`, it dials them first and is back with them.
//!
//! The attacker is a real `ringmesh::Node` per identity (Noise XX, a fresh
//! Ed25519 key each), driven over a std `TcpStream` whose source address is
//! spread over 127.0.0.0/8 (bound with `socket2` before connecting), so
//! that per-address admission limits are not what holds the flood back.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use ringmesh::wire::PeerEntry;
use ringmesh::{
    Config, Direction, Event, Identity, Input, Instant, Node, NodeId, Output, PeersCommand,
    PeersEvent,
};
use socket2::{Domain, Socket, Type};
use support::{Proc, TempDir};

/// Fresh identities that complete a handshake with the victim.
const IDENTITIES: usize = 2_000;
/// Client threads (the machine has 2 cores, shared with the victim).
const THREADS: usize = 4;
/// How long the whole flood may take.
const FLOOD_DEADLINE: StdDuration = StdDuration::from_secs(40);

/// The source address of attacker `i`: 200 /16 groups, a /24 each; past
/// 50,000 attempts (a victim that turns most away at its handshake rate
/// is dialled that often within the deadline) the addresses come round
/// again.
fn source_of(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1 + (i % 200) as u8, 1 + ((i / 200) % 250) as u8, 1)
}

/// Sixteen invented entries for attacker `i` to gossip.
fn junk(i: usize) -> Vec<PeerEntry> {
    (0..16u128)
        .map(|k| PeerEntry {
            id: NodeId::from_u128(0x5eed_0000_0000 + (i as u128) * 16 + k),
            addrs: [SocketAddr::from((
                [10, (k * 13 + i as u128) as u8, 7, 7],
                7000,
            ))]
            .into_iter()
            .collect(),
        })
        .collect()
}

/// One fresh identity completes a Noise handshake with `target` from
/// `source_of(i)`, gossips its junk, and leaves. Returns whether the
/// session was established.
fn handshake(i: usize, target: SocketAddr, epoch: StdInstant) -> bool {
    let source = source_of(i);
    let Ok(socket) = Socket::new(Domain::IPV4, Type::STREAM, None) else {
        return false;
    };
    if socket
        .bind(&SocketAddr::from((source, 0)).into())
        .and_then(|()| socket.connect_timeout(&target.into(), StdDuration::from_secs(2)))
        .is_err()
    {
        return false;
    }
    let mut stream: TcpStream = socket.into();
    let _ = stream.set_read_timeout(Some(StdDuration::from_secs(3)));
    let _ = stream.set_nodelay(true);
    let secret =
        *blake3::hash(format!("eclipse flood {} {i}", std::process::id()).as_bytes()).as_bytes();
    let mut config = Config::lan();
    // An address nobody listens on: what the victim caches of it is junk.
    config.listen_addrs = [SocketAddr::from((source, 9))].into_iter().collect();
    let now = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let Ok(mut node) = Node::new(config, Identity::from_secret_bytes(secret), i as u64, now())
    else {
        return false;
    };
    let _ = node.command(now(), PeersCommand::AddPeers { peers: junk(i) });
    if node
        .command(
            now(),
            PeersCommand::Connect {
                addr: target,
                peer: None,
            },
        )
        .is_err()
    {
        return false;
    }
    let mut conn = None;
    let mut up = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(output) = node.poll_output() {
            match output {
                // Only the dial to the victim is real; the client's own
                // maintenance round dials its junk too, and goes nowhere.
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
                Output::Send { conn: c, bytes }
                    if Some(c) == conn && stream.write_all(&bytes).is_err() =>
                {
                    return up;
                }
                Output::Event(Event::Peers(PeersEvent::Up { .. })) => up = true,
                _ => {}
            }
        }
        if up {
            // Its PeerList went out with the outputs above; leave.
            return true;
        }
        let Some(c) = conn else {
            return false;
        };
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => node.handle_input(
                now(),
                Input::Received {
                    conn: c,
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                },
            ),
        }
    }
}

/// The entries of a saved `peers.json`: (id, tried).
fn saved_cache(dir: &TempDir) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(dir.0.join("peers.json")).expect("peers.json written");
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("peers.json is JSON");
    list.iter()
        .map(|e| {
            (
                e["id"].as_str().expect("id").to_owned(),
                e["tried"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn an_identity_flood_leaves_the_tried_peers_and_a_restart_rejoins_them() {
    let data = TempDir::new("eclipse");
    let mut b = Proc::spawn("B", &["node", "--listen", "127.0.0.1:0"]);
    let mut c = Proc::spawn("C", &["node", "--listen", "127.0.0.1:0"]);
    let mut a = Proc::spawn(
        "A",
        &["node", "--listen", "127.0.0.1:0", "--data-dir", data.path()],
    );
    // A dials B and C itself: they are tried.
    for peer in [&b, &c] {
        a.type_line(&format!("connect {}", peer.addr));
    }
    let (b_short, c_short) = (b.short().to_owned(), c.short().to_owned());
    a.wait_peer_up(&b_short);
    a.wait_peer_up(&c_short);
    b.wait_peer_up(a.short());
    c.wait_peer_up(a.short());

    // The flood.
    let target: SocketAddr = a.addr.parse().expect("A's address");
    let started = StdInstant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (next, done) = (Arc::clone(&next), Arc::clone(&done));
            thread::spawn(move || {
                let mut failed = 0usize;
                while done.load(Ordering::Relaxed) < IDENTITIES
                    && started.elapsed() < FLOOD_DEADLINE
                {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if handshake(i, target, started) {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let failed: usize = workers
        .into_iter()
        .map(|w| w.join().expect("flood thread"))
        .sum();
    let established = done.load(Ordering::Relaxed);
    eprintln!(
        "flood: {established} fresh identities authenticated with A in {:?} ({failed} attempts failed)",
        started.elapsed()
    );
    assert!(
        established >= IDENTITIES,
        "only {established} of {IDENTITIES} handshakes within {FLOOD_DEADLINE:?}"
    );

    // A still holds B and C, and says so in its saved cache: `exit` saves
    // it.
    a.type_line("exit");
    assert!(a.wait_exit().success(), "A exits cleanly");
    let saved = saved_cache(&data);
    let tried: Vec<&String> = saved.iter().filter(|e| e.1).map(|e| &e.0).collect();
    eprintln!(
        "A's saved cache: {} entries, {} tried, {} new",
        saved.len(),
        tried.len(),
        saved.len() - tried.len()
    );
    for peer in [&b, &c] {
        assert!(
            tried.contains(&&peer.id),
            "{} is no longer a tried entry of A's cache",
            peer.name
        );
    }
    // Tried entries first, and none of the flood among them.
    assert!(saved.iter().take(tried.len()).all(|e| e.1));
    assert_eq!(tried.len(), 2, "only A's own dials are tried");
    assert!(saved.len() <= 1024, "the cache stays at its cap");

    // Restarted without --bootstrap, on a new port: B and C cannot know
    // where it is, so A must dial them from its cache.
    let restarted = StdInstant::now();
    let mut a = Proc::spawn(
        "A (restarted)",
        &["node", "--listen", "127.0.0.1:0", "--data-dir", data.path()],
    );
    for short in [&b_short, &c_short] {
        let prefix = format!("peer up <{short}> ");
        let line = a.wait_for(&prefix, |l| l.starts_with(&prefix));
        assert!(
            a.lines[line].ends_with("(outbound)"),
            "A dialled {short}: {}",
            a.lines[line]
        );
    }
    let rejoin = restarted.elapsed();
    eprintln!("A rejoined B and C {rejoin:?} after its restart");
    assert!(
        rejoin < StdDuration::from_secs(3),
        "tried peers are dialled first, at once"
    );
    a.type_line("exit");
    assert!(a.wait_exit().success());
}
