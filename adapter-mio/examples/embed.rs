//! Embedding: the caller owns the `mio::Poll`, serves its own socket (a
//! UDP echo service here) and drives a ringmesh node in the same loop.
//!
//! ```sh
//! cargo run -p ringmesh-mio --example embed
//! ```
//!
//! It starts a second, ordinary node on its own thread, connects the two,
//! sends one UDP datagram to the echo service and one broadcast through
//! the mesh, and exits once both came back through this one loop.

use std::net::UdpSocket as StdUdp;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use ringmesh::{
    Command, Config, Event, Identity, MeshCommand, MeshEvent, PeersCommand, PeersEvent,
};
use ringmesh_mio::{Adapter, AdapterConfig, spawn};

const ECHO: Token = Token(0);
const RINGMESH_BASE: usize = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut poll = Poll::new()?;

    // The caller's own service.
    let mut echo = UdpSocket::bind("127.0.0.1:0".parse()?)?;
    poll.registry()
        .register(&mut echo, ECHO, Interest::READABLE)?;
    let echo_addr = echo.local_addr()?;

    // The embedded node, on tokens RINGMESH_BASE.. of the same Poll.
    let config = AdapterConfig::new(
        "127.0.0.1:0".parse()?,
        Config::lan(),
        Identity::from_secret_bytes([1; 32]),
        1,
    );
    let (mut node, handle, events) = Adapter::new(poll.registry(), RINGMESH_BASE, config)?;

    // Someone to talk to: a node on its own thread.
    let other = spawn(AdapterConfig::new(
        "127.0.0.1:0".parse()?,
        Config::lan(),
        Identity::from_secret_bytes([2; 32]),
        2,
    ))?;
    other.handle.command(PeersCommand::Connect {
        addr: node.local_addr(),
        peer: Some(handle.node_id()),
    })?;

    // A client of the echo service.
    let client = StdUdp::bind("127.0.0.1:0")?;
    client.send_to(b"ping", echo_addr)?;

    let (mut echoed, mut heard) = (false, false);
    let mut buf = [0u8; 1500];
    let mut mio_events = Events::with_capacity(256);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(echoed && heard) {
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        // Sleep no longer than the node's next deadline.
        let timeout = node.timeout().map_or(Duration::from_millis(100), |t| {
            t.min(Duration::from_millis(100))
        });
        poll.poll(&mut mio_events, Some(timeout))?;
        for event in mio_events.iter() {
            if event.token() == ECHO {
                while let Ok((n, from)) = echo.recv_from(&mut buf) {
                    echo.send_to(&buf[..n], from)?;
                    println!("echo: served {} bytes for {from}", n);
                }
            } else if node.owns(event.token()) {
                node.handle_event(event);
            }
        }
        node.handle_timeout();
        while let Ok(event) = events.try_recv() {
            match event {
                Event::Peers(PeersEvent::Up { peer, .. }) => {
                    println!("ringmesh: peer {} up; broadcasting", peer.short());
                    other.handle.submit(MeshCommand::Broadcast {
                        payload: Bytes::from_static(b"hello, embedded node"),
                    });
                }
                Event::Mesh(MeshEvent::Broadcast {
                    origin, payload, ..
                }) => {
                    println!(
                        "ringmesh: broadcast from {}: {}",
                        origin.short(),
                        String::from_utf8_lossy(&payload)
                    );
                    heard = true;
                }
                _ => {}
            }
        }
        if !echoed {
            client.set_nonblocking(true)?;
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                println!(
                    "client: echo answered {:?}",
                    String::from_utf8_lossy(&buf[..n])
                );
                echoed = true;
            }
        }
    }
    // Graceful shutdown: the node says goodbye to its peers; keep polling
    // until its connections are flushed.
    handle.submit(Command::Shutdown);
    while !node.is_finished() {
        poll.poll(&mut mio_events, node.timeout())?;
        for event in mio_events.iter() {
            if node.owns(event.token()) {
                node.handle_event(event);
            }
        }
        node.handle_timeout();
    }
    other.handle.shutdown();
    println!("done: one loop served the echo socket and the ringmesh node");
    Ok(())
}
