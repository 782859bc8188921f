//! Two and three mio-driven nodes over 127.0.0.1.

use ringmesh_mio::EventReceiver;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmesh::{
    Accepted, Config, Event, Identity, MeshCommand, MeshEvent, MessagingCommand, MessagingEvent,
    NodeId, PeersCommand, PeersEvent,
};
use ringmesh_mio::{AdapterConfig, Running, spawn};

fn node(i: u8) -> Running {
    spawn(AdapterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        Config::lan(),
        Identity::from_secret_bytes([i; 32]),
        u64::from(i),
    ))
    .expect("adapter starts")
}

/// Waits (up to 10 s) for an event matching `f`.
fn wait_for<T>(events: &EventReceiver, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.recv_timeout(left).expect("event in time");
        if let Some(t) = f(&event) {
            return t;
        }
    }
}

fn up(events: &EventReceiver, peer: NodeId) {
    wait_for(events, |e| {
        matches!(e, Event::Peers(PeersEvent::Up { peer: p, .. }) if *p == peer).then_some(())
    });
}

#[test]
fn noise_handshake_broadcast_request_and_shutdown() {
    let (a, b, c) = (node(1), node(2), node(3));
    for (from, to) in [(&a, &b), (&b, &c)] {
        from.handle
            .command(PeersCommand::Connect {
                addr: to.handle.local_addr(),
                peer: Some(to.handle.node_id()),
            })
            .expect("dial");
    }
    up(&a.events, b.handle.node_id());
    up(&c.events, b.handle.node_id());
    assert_eq!(
        a.handle.peers().iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![b.handle.node_id()]
    );

    let Ok(Accepted::Broadcast { seq }) = a.handle.command(MeshCommand::Broadcast {
        payload: Bytes::from_static(b"hello mesh"),
    }) else {
        panic!("broadcast refused")
    };
    let got = wait_for(&c.events, |e| match e {
        Event::Mesh(MeshEvent::Broadcast {
            origin,
            seq: s,
            payload,
            hops,
        }) if *s == seq => Some((*origin, payload.clone(), *hops)),
        _ => None,
    });
    assert_eq!(
        got,
        (a.handle.node_id(), Bytes::from_static(b"hello mesh"), 2)
    );

    let Ok(Accepted::Request(id)) = a.handle.command(MessagingCommand::Request {
        to: b.handle.node_id(),
        payload: Bytes::from_static(b"ping?"),
        timeout: ringmesh::Duration::from_secs(5),
    }) else {
        panic!("request refused")
    };
    let (from, rid) = wait_for(&b.events, |e| match e {
        Event::Messaging(MessagingEvent::Request { from, id, .. }) => Some((*from, *id)),
        _ => None,
    });
    b.handle
        .command(MessagingCommand::Respond {
            to: from,
            id: rid,
            payload: Bytes::from_static(b"pong!"),
        })
        .expect("respond");
    let answer = wait_for(&a.events, |e| match e {
        Event::Messaging(MessagingEvent::Response { id: i, payload, .. }) if *i == id => {
            Some(payload.clone())
        }
        _ => None,
    });
    assert_eq!(answer, Bytes::from_static(b"pong!"));

    b.handle.shutdown();
    let reason = wait_for(&a.events, |e| match e {
        Event::Peers(PeersEvent::Down { peer, reason }) if *peer == b.handle.node_id() => {
            Some(reason.clone())
        }
        _ => None,
    });
    assert_eq!(
        reason,
        ringmesh::CloseReason::Goodbye(ringmesh::wire::GoodbyeReason::Shutdown)
    );
    b.thread.join().expect("thread").expect("clean stop");
    a.handle.shutdown();
    c.handle.shutdown();
}
