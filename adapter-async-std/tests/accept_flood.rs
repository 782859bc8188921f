//! A flood of connections that never speak, against the async adapter's
//! listener: the kernel's accept queue (4096 deep, see
//! `ringmesh_driver::LISTEN_BACKLOG`) takes every one at once, and an
//! honest peer from another address group, dialling in the middle of the
//! flood, still completes its handshake within a couple of seconds while
//! the node accepts the flood (64 at a time) and its admission closes it.

// The other helpers there serve `loopback.rs`.
#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use ringmesh::{
    Config, Direction, Event, Identity, Input, Instant, Node, NodeId, Output, PeersCommand,
    PeersEvent,
};

use common::{Runtime, config, next_event, start_node, with_watchdog};

/// Connections the flood opens, one after the other, as fast as the
/// kernel completes them, and holds until the end.
const FLOOD: usize = 2_000;

/// The honest peer dials once this many flood connections are open.
const HONEST_AFTER: usize = 200;

/// A SYN the kernel dropped for a full accept queue is sent again after a
/// second: a connect slower than this was dropped at least once.
const CONNECT_LIMIT: Duration = Duration::from_millis(900);

/// How long the honest peer may take from its connect to its established
/// session, on both ends.
const HONEST_LIMIT: Duration = Duration::from_secs(3);

/// The honest peer's source address: another /24 than the flood's
/// (127.0.0.1), so the node's per-group admission caps, which close the
/// flood, do not apply to it. All of 127.0.0.0/8 routes to loopback.
const HONEST_SOURCE: [u8; 4] = [127, 0, 1, 1];

#[test]
fn async_std() {
    run(Runtime::AsyncStd);
}

#[test]
fn smol() {
    run(Runtime::Smol);
}

fn run(rt: Runtime) {
    // The kernel caps the listen backlog at `net.core.somaxconn`: below the
    // flood's size, dropped SYNs are the kernel's setting, not the
    // adapter's doing, and the connect check would fail for that reason.
    if let Ok(text) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        && let Ok(max) = text.trim().parse::<usize>()
        && max < FLOOD
    {
        eprintln!(
            "skipped: net.core.somaxconn is {max}, below the {FLOOD} connections of the flood \
             (raise it with `sysctl -w net.core.somaxconn=4096` to run this test)"
        );
        return;
    }
    let started = StdInstant::now();
    with_watchdog("honest_peer_gets_through_an_accept_flood", || {
        rt.block_on(honest_peer_gets_through_an_accept_flood(rt))
    });
    eprintln!("accept flood under {rt:?}: {:?}", started.elapsed());
}

struct FloodReport {
    took: Duration,
    slowest: Duration,
    held: Vec<TcpStream>,
}

async fn honest_peer_gets_through_an_accept_flood(rt: Runtime) {
    let mut node = start_node(rt, config(1));
    let target = node.addr();
    let target_id = node.id();

    let (flooding, flood_started) = mpsc::channel::<()>();
    let flood = std::thread::spawn(move || {
        let began = StdInstant::now();
        let mut slowest = Duration::ZERO;
        let mut held = Vec::with_capacity(FLOOD);
        for i in 0..FLOOD {
            let at = StdInstant::now();
            // Never blocks for long: a dropped SYN makes this time out
            // (or take a second) instead of hanging.
            let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("flood connection {i} failed: {e}"));
            slowest = slowest.max(at.elapsed());
            held.push(stream);
            if i + 1 == HONEST_AFTER {
                let _ = flooding.send(());
            }
        }
        FloodReport {
            took: began.elapsed(),
            slowest,
            held,
        }
    });

    flood_started
        .recv()
        .expect("the flood thread opened its first connections");
    let honest_identity = Identity::from_secret_bytes([0x42; 32]);
    let honest_id = honest_identity.node_id();
    let honest = std::thread::spawn(move || handshake(honest_identity, target, target_id));

    // The node's side: the honest peer's session, whatever else arrives
    // meanwhile (the flood's admission refusals).
    let waiting = StdInstant::now();
    next_event(&mut node.events, "the honest peer's session", |event| {
        matches!(
            event,
            Event::Peers(PeersEvent::Established { peer, direction: Direction::Inbound, .. })
                if *peer == honest_id
        )
    })
    .await;
    let node_side = waiting.elapsed();

    let (peer_side, _stream) = honest.join().expect("the honest peer's handshake");
    let report = flood.join().expect("the flood thread");
    eprintln!(
        "{FLOOD} flood connects in {:?}, slowest {:?}; honest peer established in {peer_side:?} \
         (node side {node_side:?})",
        report.took, report.slowest
    );
    assert_eq!(report.held.len(), FLOOD);
    assert!(
        report.slowest < CONNECT_LIMIT,
        "a flood connect took {:?}: the accept queue overflowed and the kernel dropped SYNs",
        report.slowest
    );
    assert!(
        peer_side < HONEST_LIMIT,
        "the honest peer took {peer_side:?} to establish its session during the flood"
    );
    assert!(
        node_side < HONEST_LIMIT,
        "the node took {node_side:?} to report the honest peer's session"
    );
    drop(report);
    node.handle.shutdown().await;
}

/// Dials `target` from [`HONEST_SOURCE`] over a blocking socket, runs the
/// handshake by hand, and returns how long it took from the connect to
/// the established session, with the open socket.
fn handshake(identity: Identity, target: SocketAddr, target_id: NodeId) -> (Duration, TcpStream) {
    let epoch = StdInstant::now();
    let now = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut node = Node::new(Config::lan(), identity, 0x42, now()).expect("honest peer config");
    let connect = PeersCommand::Connect {
        addr: target,
        peer: Some(target_id),
    };
    node.command(now(), connect).expect("honest peer dials");
    let conn = std::iter::from_fn(|| node.poll_output())
        .find_map(|output| match output {
            Output::Dial { conn, .. } => Some(conn),
            _ => None,
        })
        .expect("a dial");
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .expect("a socket");
    socket
        .bind(&SocketAddr::from((HONEST_SOURCE, 0)).into())
        .expect("bind the honest peer's source address");
    let began = StdInstant::now();
    socket
        .connect_timeout(&target.into(), HONEST_LIMIT)
        .expect("honest peer connects");
    let mut stream: TcpStream = socket.into();
    // A stalled handshake fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(HONEST_LIMIT))
        .expect("read timeout");
    node.handle_input(
        now(),
        Input::Connected {
            conn,
            remote: target,
            direction: Direction::Outbound,
        },
    );
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(output) = node.poll_output() {
            match output {
                Output::Send { bytes, .. } => stream.write_all(&bytes).expect("handshake write"),
                Output::Event(Event::Peers(PeersEvent::Established { .. })) => {
                    return (began.elapsed(), stream);
                }
                Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) => {
                    panic!("the honest peer's handshake failed: {reason}")
                }
                _ => {}
            }
        }
        let n = stream.read(&mut buf).expect("handshake read");
        assert!(n > 0, "the node closed the honest peer's handshake");
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        node.handle_input(now(), Input::Received { conn, bytes });
    }
}
