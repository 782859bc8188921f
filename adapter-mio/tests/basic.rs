//! Two and three mio-driven nodes over 127.0.0.1.

use ringmesh_mio::EventReceiver;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmesh::{
    Accepted, CommandError, Config, Event, Identity, MeshCommand, MeshError, MeshEvent,
    MessagingCommand, MessagingError, MessagingEvent, NodeId, PeersCommand, PeersEvent,
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

/// `from` dials `to` by address and id, and waits until `from` has it up.
fn connect(from: &Running, to: &Running) {
    from.handle
        .command(PeersCommand::Connect {
            addr: to.handle.local_addr(),
            peer: Some(to.handle.node_id()),
        })
        .expect("dial");
    up(&from.events, to.handle.node_id());
}

#[test]
fn noise_handshake_broadcast_request_and_shutdown() {
    let (a, b, c) = (node(1), node(2), node(3));
    connect(&a, &b);
    connect(&b, &c);
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

/// An application that does not read its events costs at most
/// `event_capacity_bytes` of them: the rest are dropped and counted.
#[test]
fn unread_events_are_bounded_by_bytes_and_drops_are_counted() {
    let a = node(21);
    let mut config = AdapterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        Config::lan(),
        Identity::from_secret_bytes([22; 32]),
        22,
    );
    config.node.session.max_frame_len = 64 * 1024;
    config.event_capacity_bytes = config.min_event_capacity_bytes() + 1024;
    let cap = config.event_capacity_bytes;
    let b = spawn(config).expect("adapter starts");
    connect(&a, &b);
    // 40 messages of 32 KiB: about two fit in b's buffer.
    for _ in 0..40 {
        a.handle
            .command(MessagingCommand::Send {
                to: b.handle.node_id(),
                payload: Bytes::from(vec![7u8; 32 * 1024]),
            })
            .expect("sent");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.handle.dropped_events() < 35 {
        assert!(
            Instant::now() < deadline,
            "only {} dropped",
            b.handle.dropped_events()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The last few messages may still be arriving while the buffer is
    // read (each read makes room for one more): the bound holds at every
    // moment, which is what is checked, not the sum of what was read.
    let mut held = 0;
    let mut messages = 0;
    loop {
        let queued = b.events.queued_bytes();
        assert!(queued <= cap, "{queued} bytes held, cap {cap}");
        held = held.max(queued);
        let Ok(event) = b.events.try_recv() else {
            break;
        };
        messages += usize::from(matches!(
            event,
            Event::Messaging(MessagingEvent::Direct { .. })
        ));
    }
    // Read from now on, the rest (if still on the way) is delivered: every
    // message was either held or dropped.
    while messages as u64 + b.events.dropped() < 40 {
        let event = b
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the rest in time");
        messages += usize::from(matches!(
            event,
            Event::Messaging(MessagingEvent::Direct { .. })
        ));
    }
    assert_eq!(messages as u64 + b.events.dropped(), 40);
    assert_eq!(b.events.queued_bytes(), 0);
    assert_eq!(b.events.dropped(), b.handle.dropped_events());
    eprintln!(
        "held {messages} messages (at most {held} bytes at once, cap {cap}), dropped {}",
        b.events.dropped()
    );
}

/// A payload that LZ4 squeezes under the peer's frame cap but that the
/// peer would refuse once decompressed fails at the sender, with the
/// sizes, and the link stays up.
#[test]
fn a_payload_too_large_once_decompressed_fails_at_the_sender_and_the_link_stays() {
    let a = node(21);
    let mut small = Config::lan();
    small.session.max_frame_len = 64 * 1024;
    let b = spawn(AdapterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        small,
        Identity::from_secret_bytes([22; 32]),
        22,
    ))
    .expect("adapter starts");
    connect(&a, &b);
    up(&b.events, a.handle.node_id());

    // 1 MB of text compresses to a few KiB: within b's 64 KiB frame cap on
    // the wire, far beyond it decompressed.
    let text = Bytes::from("ringmesh ".repeat(1_000_000 / 9));
    let broadcast = a.handle.command(MeshCommand::Broadcast {
        payload: text.clone(),
    });
    assert!(
        matches!(broadcast, Err(CommandError::Mesh(MeshError::TooLarge { len, max }))
            if len > 1_000_000 && max < 64 * 1024),
        "{broadcast:?}"
    );
    let send = a.handle.command(MessagingCommand::Send {
        to: b.handle.node_id(),
        payload: text,
    });
    assert!(
        matches!(send, Err(CommandError::Messaging(MessagingError::PayloadTooLarge { max, .. }))
            if max == 64 * 1024),
        "{send:?}"
    );
    let refusal = broadcast.expect_err("refused").to_string();
    assert!(refusal.contains("exceeds a peer's frame cap"), "{refusal}");

    // Nothing was sent, nobody was closed: a small broadcast still arrives
    // and neither side saw the other go down.
    a.handle
        .command(MeshCommand::Broadcast {
            payload: Bytes::from_static(b"still here"),
        })
        .expect("small broadcast");
    wait_for(&b.events, |e| match e {
        Event::Peers(PeersEvent::Down { .. }) => panic!("b lost a: {e:?}"),
        Event::Mesh(MeshEvent::Broadcast { payload, .. }) => {
            (payload.as_ref() == b"still here").then_some(())
        }
        _ => None,
    });
    assert_eq!(a.handle.peers().len(), 1);
}

/// A command served on the caller's thread while the loop sleeps (the
/// loop of `spawn` is asleep between turns) may bring the node's next
/// deadline forward; the loop must wake for it rather than sleep on to
/// the deadline it planned. Here the loop's own timers are seconds away,
/// and a request to a peer that never answers must fail at its 100 ms
/// timeout, not at the next maintenance round.
#[test]
fn a_command_served_while_the_loop_sleeps_wakes_it_for_an_earlier_deadline() {
    let mut slow = Config::lan();
    slow.liveness.ping_interval = ringmesh::Duration::from_secs(20);
    slow.peers.maintenance_interval = ringmesh::Duration::from_secs(20);
    let config = |i: u8, node: Config| {
        AdapterConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            node,
            Identity::from_secret_bytes([i; 32]),
            u64::from(i),
        )
    };
    let a = spawn(config(31, slow.clone())).expect("a");
    let b = spawn(config(32, slow)).expect("b");
    let b_id = b.handle.node_id();
    connect(&a, &b);
    // b's application never answers. No event says that a's loop is
    // asleep; a pause makes it all but certain that the request below
    // finds it so and is served on this thread (the path under test). Were
    // it served by the loop instead, the test would pass without testing.
    std::thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    a.handle.submit(MessagingCommand::Request {
        to: b_id,
        payload: Bytes::from_static(b"anyone?"),
        timeout: ringmesh::Duration::from_millis(100),
    });
    wait_for(&a.events, |e| {
        matches!(e, Event::Messaging(MessagingEvent::RequestFailed { .. })).then_some(())
    });
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the request failed {took:?} after it was made: the loop slept through its timeout"
    );
    a.handle.shutdown();
    b.handle.shutdown();
}

/// The payload of message `i` of `large_messages_arrive_whole_and_in_order_while_the_application_holds_some`:
/// its own length (40 to 104 KiB, so that reads cut frames anywhere) and
/// bytes.
fn numbered_payload(i: usize) -> Bytes {
    let len = 40 * 1024 + (i * 7919) % (64 * 1024);
    Bytes::from(
        (0..len)
            .map(|j| (i.wrapping_mul(131) ^ j.wrapping_mul(7)) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Sockets are read straight into a pool whose memory is reused once
/// the application has dropped what was read into it: plaintext payloads
/// (delivered as slices of the reads, no copy) arrive whole and in order,
/// and a payload the application keeps is never overwritten by later
/// reads.
#[test]
fn large_messages_arrive_whole_and_in_order_while_the_application_holds_some() {
    let config = |i: u8| {
        let mut config = AdapterConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            Config {
                security: ringmesh::Security::Plaintext,
                session: ringmesh::SessionConfig {
                    compression: false,
                    ..Config::lan().session
                },
                ..Config::lan()
            },
            Identity::from_secret_bytes([i; 32]),
            u64::from(i),
        );
        config.event_capacity_bytes = 64 * 1024 * 1024;
        config
    };
    let a = spawn(config(31)).expect("adapter starts");
    let b = spawn(config(32)).expect("adapter starts");
    connect(&a, &b);
    const MESSAGES: usize = 300;
    let sender = {
        let handle = a.handle.clone();
        let to = b.handle.node_id();
        std::thread::spawn(move || {
            for i in 0..MESSAGES {
                handle
                    .command(MessagingCommand::Send {
                        to,
                        payload: numbered_payload(i),
                    })
                    .expect("sent");
            }
        })
    };
    let mut held = Vec::new();
    let mut next = 0;
    while next < MESSAGES {
        let payload = wait_for(&b.events, |e| match e {
            Event::Messaging(MessagingEvent::Direct { payload, .. }) => Some(payload.clone()),
            _ => None,
        });
        assert_eq!(
            payload.len(),
            numbered_payload(next).len(),
            "message {next}"
        );
        assert!(payload == numbered_payload(next), "message {next} changed");
        if next % 3 == 0 {
            held.push((next, payload));
        }
        next += 1;
    }
    sender.join().expect("sender");
    for (i, payload) in held {
        assert!(
            payload == numbered_payload(i),
            "held message {i} overwritten"
        );
    }
    assert_eq!(b.events.dropped(), 0);
}

/// An application thread waiting in `recv` runs the adapter's turns itself
/// (it polls the adapter's `Poll`); once it stops waiting, the adapter's
/// own thread must take the `Poll` back and drive the node again.
#[test]
fn the_loop_thread_drives_the_node_again_once_the_application_stops_waiting() {
    let a = node(41);
    let b = node(42);
    // b's application waits in `recv` here (and drives b meanwhile).
    connect(&a, &b);
    up(&b.events, a.handle.node_id());
    // From now on b's application only looks (`try_recv` never drives):
    // whatever reaches b's channel was read by b's loop thread.
    for i in 0..5u8 {
        a.handle
            .command(MessagingCommand::Send {
                to: b.handle.node_id(),
                payload: Bytes::from(vec![i; 16]),
            })
            .expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "b's loop thread did not take the node back: {got:?}"
        );
        match b.events.try_recv() {
            Ok(Event::Messaging(MessagingEvent::Direct { payload, .. })) => got.push(payload[0]),
            Ok(_) => {}
            Err(_) => std::thread::yield_now(),
        }
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    a.handle.shutdown();
    b.handle.shutdown();
}

/// A thread waiting in `recv` (polling the adapter's `Poll`) returns once
/// the adapter has shut down, and the adapter's thread ends.
#[test]
fn a_thread_waiting_for_events_returns_when_the_adapter_shuts_down() {
    let Running {
        handle,
        events,
        thread,
    } = node(43);
    let waiter = std::thread::spawn(move || {
        let mut seen = 0usize;
        while events.recv().is_ok() {
            seen += 1;
        }
        seen
    });
    // No event says the waiter is in `recv`; whether it is yet or not,
    // it must return after the shutdown.
    handle.shutdown();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(waiter.is_finished() && thread.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "after shutdown: waiter returned {}, loop thread ended {}",
            waiter.is_finished(),
            thread.is_finished()
        );
        std::thread::yield_now();
    }
    waiter.join().expect("waiter");
    thread.join().expect("loop thread").expect("clean stop");
}

/// A large message (16 KiB) for the tests of interleaved sends.
const LARGE: usize = 16 * 1024;

/// Message `i` of `large_sends_keep_their_order_among_small_ones`:
/// every fourth one small, the others 16–48 KiB, each holding its index.
fn mixed_payload(i: usize) -> Bytes {
    let len = if i % 4 == 3 {
        16
    } else {
        LARGE + (i * 7919) % (32 * 1024)
    };
    let mut bytes: Vec<u8> = (0..len).map(|j| (i ^ j.wrapping_mul(13)) as u8).collect();
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(bytes)
}

/// A message of the run of large ones: its index, then sevens.
fn run_payload(i: usize) -> Bytes {
    let mut bytes = vec![7; LARGE];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(bytes)
}

/// Large and small messages submitted from one thread, over Noise, some
/// served on the caller's thread (the loop asleep), some queued (the loop
/// busy with the ones before): they all arrive whole and in the order
/// they were submitted, also after a run of 400 large ones (more than the
/// loop serves in a turn) followed by a small one.
#[test]
fn large_sends_keep_their_order_among_small_ones() {
    let config = |i: u8| {
        let mut config = AdapterConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            Config::lan(),
            Identity::from_secret_bytes([i; 32]),
            u64::from(i),
        );
        config.event_capacity = 4096;
        config.event_capacity_bytes = 256 * 1024 * 1024;
        config
    };
    let a = spawn(config(51)).expect("adapter starts");
    let b = spawn(config(52)).expect("adapter starts");
    connect(&a, &b);
    up(&b.events, a.handle.node_id());
    const MIXED: usize = 800;
    const RUN: usize = 400;
    let sender = {
        let handle = a.handle.clone();
        let to = b.handle.node_id();
        std::thread::spawn(move || {
            for i in 0..MIXED {
                let send = MessagingCommand::Send {
                    to,
                    payload: mixed_payload(i),
                };
                if i % 50 == 49 {
                    handle.command(send).expect("sent");
                } else {
                    handle.submit(send);
                }
            }
            // A run longer than a turn's worth of requests (256), then a
            // small one that finds the loop asleep or busy.
            for i in MIXED..MIXED + RUN {
                handle.submit(MessagingCommand::Send {
                    to,
                    payload: run_payload(i),
                });
            }
            handle.submit(MessagingCommand::Send {
                to,
                payload: Bytes::from((MIXED + RUN).to_le_bytes().to_vec()),
            });
        })
    };
    let total = MIXED + RUN + 1;
    let mut next = 0;
    while next < total {
        let payload = wait_for(&b.events, |e| match e {
            Event::Messaging(MessagingEvent::Direct { payload, .. }) => Some(payload.clone()),
            _ => None,
        });
        let index = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(index, next, "message {next} out of order");
        if next < MIXED {
            assert!(payload == mixed_payload(next), "message {next} changed");
        } else if next < MIXED + RUN {
            assert!(payload == run_payload(next), "message {next} changed");
        }
        next += 1;
    }
    sender.join().expect("sender");
    assert_eq!(b.events.dropped(), 0);
    a.handle.shutdown();
    b.handle.shutdown();
}

/// A large message that cannot go is reported: `command` returns the
/// node's refusal (no route to an unknown peer without neighbours);
/// submitted to an unknown peer while the node has a neighbour, it is
/// held, then comes back in `SendFailed` with its bytes once the lookup
/// times out; once the adapter has shut down `command` says so.
#[test]
fn a_large_send_that_cannot_go_is_reported() {
    let mut config = Config::lan();
    config.messaging.lookup_timeout = ringmesh::Duration::from_millis(200);
    let a = spawn(AdapterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        config,
        Identity::from_secret_bytes([61; 32]),
        61,
    ))
    .expect("adapter starts");
    let nobody = NodeId::from_bytes([9; 16]);
    let payload = Bytes::from(vec![5; 3 * LARGE]);
    // No peer to ask: refused at once, and `command` gets the answer.
    assert_eq!(
        a.handle.command(MessagingCommand::Send {
            to: nobody,
            payload: payload.clone(),
        }),
        Err(CommandError::Messaging(MessagingError::NoRoute(nobody)))
    );
    // With a peer, held while the node looks for it, then given back.
    let b = node(62);
    connect(&a, &b);
    a.handle.submit(MessagingCommand::Send {
        to: nobody,
        payload: payload.clone(),
    });
    let failed = wait_for(&a.events, |e| match e {
        Event::Messaging(MessagingEvent::SendFailed { to, payload, .. }) => {
            Some((*to, payload.clone()))
        }
        _ => None,
    });
    assert_eq!(failed, (nobody, payload.clone()));
    b.handle.shutdown();
    a.handle.shutdown();
    let Running { handle, thread, .. } = a;
    thread.join().expect("adapter thread").expect("adapter ran");
    assert_eq!(
        handle.command(MessagingCommand::Send {
            to: nobody,
            payload
        }),
        Err(CommandError::ShutDown)
    );
}
