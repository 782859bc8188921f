//! An embedded adapter whose events wait in its own queue
//! (`Adapter::with_event_queue`), taken by the loop with `poll_event`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll};
use ringmesh::{
    Config, Event, Identity, MessagingCommand, MessagingEvent, NodeId, PeersCommand, PeersEvent,
};
use ringmesh_mio::{Adapter, AdapterConfig, Running, spawn};

/// An embedded node on its own `Poll`, events in the adapter's queue.
struct Embedded {
    poll: Poll,
    readiness: Events,
    adapter: Adapter,
}

impl Embedded {
    fn start(config: AdapterConfig) -> Embedded {
        let poll = Poll::new().expect("poll");
        let (adapter, _handle) =
            Adapter::with_event_queue(poll.registry(), 0, config).expect("adapter starts");
        Embedded {
            poll,
            readiness: Events::with_capacity(64),
            adapter,
        }
    }

    /// One turn of the loop: at most 10 ms of waiting.
    fn turn(&mut self) {
        let max = Duration::from_millis(10);
        let timeout = self.adapter.timeout().map_or(max, |t| t.min(max));
        self.poll
            .poll(&mut self.readiness, Some(timeout))
            .expect("poll");
        for event in self.readiness.iter() {
            self.adapter.handle_event(event);
        }
        self.adapter.handle_timeout();
    }
}

fn config(i: u8) -> AdapterConfig {
    AdapterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        Config::lan(),
        Identity::from_secret_bytes([i; 32]),
        u64::from(i),
    )
}

/// `a` (spawned) dials `b` (embedded); `b`'s loop turns until it has `a`
/// up, and its events are taken meanwhile.
fn connect(a: &Running, b: &mut Embedded, b_id: NodeId) {
    a.handle
        .command(PeersCommand::Connect {
            addr: b.adapter.local_addr(),
            peer: Some(b_id),
        })
        .expect("dial");
    let a_id = a.handle.node_id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no PeerUp at the embedded node");
        b.turn();
        let mut up = false;
        while let Some(event) = b.adapter.poll_event() {
            up |= matches!(event, Event::Peers(PeersEvent::Up { peer, .. }) if peer == a_id);
        }
        if up {
            return;
        }
    }
}

#[test]
fn an_embedded_loop_takes_its_events_from_the_adapter_and_answers_requests() {
    let a = spawn(config(31)).expect("adapter starts");
    let mut b = Embedded::start(config(32));
    let b_id = b.adapter.node().node_id();
    connect(&a, &mut b, b_id);

    const REQUESTS: usize = 20;
    std::thread::scope(|s| {
        let asker = s.spawn(move || {
            for i in 0..REQUESTS {
                let sent = Bytes::from(vec![i as u8; 64]);
                a.handle
                    .command(MessagingCommand::Request {
                        to: b_id,
                        payload: sent.clone(),
                        timeout: ringmesh::Duration::from_secs(5),
                    })
                    .expect("request accepted");
                let answer = loop {
                    match a.events.recv_timeout(Duration::from_secs(10)) {
                        Ok(Event::Messaging(MessagingEvent::Response { payload, .. })) => {
                            break payload;
                        }
                        Ok(Event::Messaging(MessagingEvent::RequestFailed { reason, .. })) => {
                            panic!("request {i} failed: {reason:?}")
                        }
                        Ok(_) => {}
                        Err(e) => panic!("no answer to request {i}: {e}"),
                    }
                };
                assert_eq!(answer, sent, "request {i} answered with another payload");
            }
            a.handle.shutdown();
        });
        // The embedded side: its loop, its events, its answers, all on
        // this thread.
        let mut answered = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !asker.is_finished() {
            assert!(Instant::now() < deadline, "{answered} requests answered");
            b.turn();
            while let Some(event) = b.adapter.poll_event() {
                if let Event::Messaging(MessagingEvent::Request { from, id, payload }) = event {
                    b.adapter
                        .command(MessagingCommand::Respond {
                            to: from,
                            id,
                            payload,
                        })
                        .expect("respond");
                    answered += 1;
                }
            }
        }
        asker.join().expect("asker");
        assert_eq!(answered, REQUESTS);
    });
    assert_eq!(b.adapter.queued_events(), (0, 0));
    assert_eq!(b.adapter.dropped_events(), 0);
}

#[test]
fn events_the_adapter_queue_has_no_room_for_are_dropped_and_counted() {
    let a = spawn(config(33)).expect("adapter starts");
    let mut b_config = config(34);
    b_config.node.session.max_frame_len = 64 * 1024;
    b_config.event_capacity = 64;
    b_config.event_capacity_bytes = b_config.min_event_capacity_bytes() + 1024;
    let cap = b_config.event_capacity_bytes;
    let mut b = Embedded::start(b_config);
    let b_id = b.adapter.node().node_id();
    connect(&a, &mut b, b_id);

    // 40 messages of 32 KiB: about two fit in b's queue by bytes.
    const SENT: u64 = 40;
    for _ in 0..SENT {
        a.handle
            .command(MessagingCommand::Send {
                to: b_id,
                payload: Bytes::from(vec![7u8; 32 * 1024]),
            })
            .expect("sent");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut delivered = 0;
    while delivered + b.adapter.dropped_events() < SENT {
        assert!(
            Instant::now() < deadline,
            "{delivered} delivered, {} dropped",
            b.adapter.dropped_events()
        );
        b.turn();
        // The bound holds at every turn, events untaken.
        let (count, bytes) = b.adapter.queued_events();
        assert!(
            count <= 64 && bytes <= cap,
            "{count} events of {bytes} bytes held, cap {cap}"
        );
        if b.adapter.dropped_events() > 30 {
            while let Some(event) = b.adapter.poll_event() {
                delivered += u64::from(matches!(
                    event,
                    Event::Messaging(MessagingEvent::Direct { .. })
                ));
            }
        }
    }
    assert_eq!(delivered + b.adapter.dropped_events(), SENT);
    assert!(delivered >= 1, "the queue held none");
    assert_eq!(b.adapter.queued_events(), (0, 0));
    a.handle.shutdown();
}
