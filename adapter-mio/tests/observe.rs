//! Looking at a running node: `Handle::inspect`, an `Observer`'s events
//! and turns, and the waiting calls refused on the adapter's own thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use mio::Poll;
use ringmesh::{Command, Config, Event, Identity, Node, NodeId, PeersCommand, PeersEvent};
use ringmesh_mio::{Adapter, AdapterConfig, Observer, Running, Spawned, spawn, spawn_with};

fn config(i: u8) -> AdapterConfig {
    AdapterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        Config::lan(),
        Identity::from_secret_bytes([i; 32]),
        u64::from(i),
    )
}

/// Waits (up to 10 s) for an item matching `f`.
fn wait_for<E, T>(items: &Receiver<E>, what: &str, mut f: impl FnMut(&E) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = items
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what} in time"));
        if let Some(t) = f(&item) {
            return t;
        }
    }
}

fn connect(from: &Running, to_addr: std::net::SocketAddr, to: NodeId) {
    from.handle
        .command(PeersCommand::Connect {
            addr: to_addr,
            peer: Some(to),
        })
        .expect("dial");
}

#[test]
fn inspect_answers_from_the_node_and_none_once_it_stopped() {
    let (a, b) = (spawn(config(1)).expect("a"), spawn(config(2)).expect("b"));
    let b_id = b.handle.node_id();
    connect(&a, b.handle.local_addr(), b_id);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = a.events.recv_timeout(left).expect("PeerUp in time");
        if matches!(e, Event::Peers(PeersEvent::Up { peer, .. }) if peer == b_id) {
            break;
        }
    }
    // Every event that came out before the inspection is delivered, so the
    // node it sees has the peer that PeerUp announced.
    assert_eq!(a.handle.inspect(Node::connected_peers), Some(vec![b_id]));
    assert_eq!(
        a.handle.inspect(|node| node.config().listen_addrs.to_vec()),
        Some(vec![a.handle.local_addr()])
    );
    let peers = a.handle.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].id, b_id);
    let handle = a.handle.clone();
    a.handle.shutdown();
    a.thread.join().expect("thread").expect("clean stop");
    assert_eq!(handle.inspect(|node| node.node_id()), None);
    assert!(handle.peers().is_empty());
    b.handle.shutdown();
}

/// What the test observer saw, in order.
#[derive(Debug)]
enum Seen {
    Event(Event),
    /// The connected peers changed during the turn that just ended.
    Turn(Vec<NodeId>),
    Stopped,
}

struct Recorder {
    seen: Sender<Seen>,
    connected: Vec<NodeId>,
}

impl Observer for Recorder {
    fn on_event(&mut self, event: Event) -> bool {
        let _ = self.seen.send(Seen::Event(event));
        true
    }

    fn after_turn(&mut self, node: &Node) {
        let connected = node.connected_peers();
        if connected != self.connected {
            self.connected.clone_from(&connected);
            let _ = self.seen.send(Seen::Turn(connected));
        }
    }

    fn stopped(&mut self) {
        let _ = self.seen.send(Seen::Stopped);
    }
}

#[test]
fn an_observer_gets_a_turns_events_before_the_node_as_the_turn_left_it() {
    let (tx, seen) = mpsc::channel();
    let Spawned { handle, thread } = spawn_with(
        config(3),
        Recorder {
            seen: tx,
            connected: Vec::new(),
        },
    )
    .expect("a");
    let b = spawn(config(4)).expect("b");
    let b_id = b.handle.node_id();
    connect(&b, handle.local_addr(), handle.node_id());
    // The first turn that leaves b connected comes after b's PeerUp.
    let mut peer_up_seen = false;
    wait_for(&seen, "a turn with b connected", |s| match s {
        Seen::Event(Event::Peers(PeersEvent::Up { peer, .. })) if *peer == b_id => {
            peer_up_seen = true;
            None
        }
        Seen::Turn(connected) if connected.contains(&b_id) => Some(()),
        Seen::Stopped => panic!("stopped early"),
        _ => None,
    });
    assert!(
        peer_up_seen,
        "the PeerUp came before the turn that shows it"
    );
    // Told once the loop has ended, after everything else.
    handle.shutdown();
    wait_for(&seen, "the stop", |s| {
        matches!(s, Seen::Stopped).then_some(())
    });
    thread.join().expect("thread").expect("clean stop");
    assert!(seen.try_iter().all(|s| !matches!(s, Seen::Stopped)));
    b.handle.shutdown();
}

#[test]
fn waiting_calls_on_the_adapter_thread_panic_instead_of_waiting_forever() {
    let mut poll = Poll::new().expect("poll");
    let (mut adapter, handle, _events) =
        Adapter::new(poll.registry(), 0, config(5)).expect("embedded adapter");
    // This thread runs the loop from here on.
    adapter.handle_timeout();
    let inspect = catch_unwind(AssertUnwindSafe(|| handle.inspect(|n| n.node_id())));
    let message = inspect.expect_err("inspect refused");
    let message = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(message.contains("adapter's own thread"), "{message}");
    assert!(catch_unwind(AssertUnwindSafe(|| handle.peers())).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| handle.command(Command::Shutdown))).is_err());
    // Another thread may wait: the loop here serves it when the waker
    // fires.
    let other = handle.clone();
    let answer = std::thread::spawn(move || other.inspect(|n| n.node_id()));
    let mut readiness = mio::Events::with_capacity(64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answer.is_finished() {
        assert!(Instant::now() < deadline, "the other thread got no answer");
        poll.poll(&mut readiness, Some(Duration::from_millis(100)))
            .expect("poll");
        for event in readiness.iter() {
            adapter.handle_event(event);
        }
        adapter.handle_timeout();
    }
    assert_eq!(answer.join().expect("other thread"), Some(handle.node_id()));
    // A call that does not wait is fine on this thread.
    handle.submit(Command::Shutdown);
    while !adapter.is_finished() {
        assert!(Instant::now() < deadline, "did not shut down");
        poll.poll(&mut readiness, adapter.timeout()).expect("poll");
        for event in readiness.iter() {
            adapter.handle_event(event);
        }
        adapter.handle_timeout();
    }
}
