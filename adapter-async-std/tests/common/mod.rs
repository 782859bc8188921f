//! Helpers for the loopback tests: the two runtimes, nodes on 127.0.0.1,
//! waiting for events against a deadline, and a hand-driven peer that
//! completes its handshake and then never reads again.

use std::cell::RefCell;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt;
use ringmesh::{
    Config, Direction, Event, Identity, Input, Instant, Node, NodeId, Output, PeersCommand,
    PeersEvent,
};
use ringmesh_async_std::{AdapterConfig, Events, NodeHandle, start};

/// How long a whole scenario may take before the watchdog fails it.
pub(crate) const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

thread_local! {
    /// What the scenario running on this thread is waiting for, shared with
    /// its watchdog.
    static WAITING_FOR: RefCell<Option<Arc<Mutex<String>>>> = const { RefCell::new(None) };
}

/// Runs `scenario` to completion on this thread. Waits inside it await the
/// event or answer itself; a watchdog thread, woken by the scenario's end,
/// fails the whole test binary (naming what was awaited) if it takes longer
/// than [`SCENARIO_LIMIT`], so a hang cannot pass for a slow run.
pub(crate) fn with_watchdog<T>(name: &str, scenario: impl FnOnce() -> T) -> T {
    let waiting = Arc::new(Mutex::new(String::from("the start")));
    WAITING_FOR.with(|w| *w.borrow_mut() = Some(waiting.clone()));
    let (done, finished) = mpsc::channel::<()>();
    let name = name.to_owned();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(SCENARIO_LIMIT) {
            let what = waiting.lock().map(|w| w.clone()).unwrap_or_default();
            // Straight to stderr: the test harness's capture would be lost
            // with the process.
            let _ = writeln!(
                std::io::stderr(),
                "{name}: no progress after {SCENARIO_LIMIT:?}, waiting for {what}"
            );
            std::process::exit(101);
        }
    });
    let out = scenario();
    drop(done);
    let _ = watchdog.join();
    WAITING_FOR.with(|w| *w.borrow_mut() = None);
    out
}

/// The executor a scenario runs under.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Runtime {
    AsyncStd,
    Smol,
}

impl Runtime {
    pub(crate) fn block_on<T>(self, future: impl Future<Output = T>) -> T {
        match self {
            Runtime::AsyncStd => async_std::task::block_on(future),
            Runtime::Smol => smol::block_on(future),
        }
    }

    pub(crate) fn spawn(self, future: impl Future<Output = ()> + Send + 'static) {
        match self {
            // Dropping the join handle detaches the task.
            Runtime::AsyncStd => drop(async_std::task::spawn(future)),
            Runtime::Smol => smol::spawn(future).detach(),
        }
    }
}

/// A running adapter node.
pub(crate) struct TestNode {
    pub(crate) handle: NodeHandle,
    pub(crate) events: Events,
}

impl TestNode {
    pub(crate) fn id(&self) -> NodeId {
        self.handle.node_id()
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }
}

/// A node on 127.0.0.1 with a free port, LAN timings, Noise, and an
/// identity and seed derived from `n`.
pub(crate) fn config(n: u8) -> AdapterConfig {
    AdapterConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Config::lan(),
        Identity::from_secret_bytes([n; 32]),
        u64::from(n),
    )
}

/// Starts a node and spawns its driver on `rt`.
pub(crate) fn start_node(rt: Runtime, config: AdapterConfig) -> TestNode {
    let (handle, events, driver) = start(config).expect("start a node");
    rt.spawn(driver);
    TestNode { handle, events }
}

/// Awaits `future`, telling the scenario's watchdog that `what` is what
/// it waits for (see [`with_watchdog`]).
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    WAITING_FOR.with(|w| {
        if let Some(waiting) = w.borrow().as_ref()
            && let Ok(mut label) = waiting.lock()
        {
            label.clear();
            label.push_str(what);
        }
    });
    future.await
}

/// The next event that `wanted` picks, skipping others; fails the test if
/// the stream ends first.
pub(crate) async fn next_event(
    events: &mut Events,
    what: &str,
    mut wanted: impl FnMut(&Event) -> bool,
) -> Event {
    within(what, async {
        loop {
            match events.next().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => {}
                None => panic!("event stream ended while waiting for {what}"),
            }
        }
    })
    .await
}

/// Waits until `node` has seen `PeersEvent::Up` for every one of `peers`.
pub(crate) async fn await_peers_up(node: &mut TestNode, peers: &[NodeId]) {
    let mut missing: Vec<NodeId> = peers.to_vec();
    while !missing.is_empty() {
        let event = next_event(
            &mut node.events,
            "PeerUp",
            |e| matches!(e, Event::Peers(PeersEvent::Up { peer, .. }) if missing.contains(peer)),
        )
        .await;
        if let Event::Peers(PeersEvent::Up { peer, .. }) = event {
            missing.retain(|p| *p != peer);
        }
    }
}

/// `len` bytes that do not compress (xorshift64*), so sizes on the wire are
/// what the test says.
pub(crate) fn incompressible(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A ringmesh peer driven by hand over a blocking socket: it dials, runs
/// the handshake, and then never reads again, so everything sent to it
/// piles up. Dropping it closes its socket.
pub(crate) struct StalledPeer {
    pub(crate) id: NodeId,
    _release: mpsc::Sender<()>,
}

impl StalledPeer {
    /// Dials `target` (which must prove `target_id`) from a thread of its
    /// own.
    pub(crate) fn dial(target: SocketAddr, target_id: NodeId) -> StalledPeer {
        let identity = Identity::from_secret_bytes([0xee; 32]);
        let id = identity.node_id();
        let (release, released) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let stream = handshake(identity, target, target_id);
            // Hold the socket open, unread, until the test is done.
            let _ = released.recv();
            drop(stream);
        });
        StalledPeer {
            id,
            _release: release,
        }
    }
}

fn handshake(identity: Identity, target: SocketAddr, target_id: NodeId) -> TcpStream {
    let epoch = std::time::Instant::now();
    let now = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut node = Node::new(Config::lan(), identity, 0xee, now()).expect("stalled peer config");
    let connect = PeersCommand::Connect {
        addr: target,
        peer: Some(target_id),
    };
    node.command(now(), connect).expect("stalled peer dials");
    let conn = std::iter::from_fn(|| node.poll_output())
        .find_map(|output| match output {
            Output::Dial { conn, .. } => Some(conn),
            _ => None,
        })
        .expect("a dial");
    let mut stream = TcpStream::connect(target).expect("stalled peer connects");
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
        let mut established = false;
        while let Some(output) = node.poll_output() {
            match output {
                Output::Send { bytes, .. } => stream.write_all(&bytes).expect("handshake write"),
                Output::Event(Event::Peers(PeersEvent::Established { .. })) => established = true,
                Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) => {
                    panic!("stalled peer's handshake failed: {reason}")
                }
                _ => {}
            }
        }
        // Everything the handshake needed is written: stop here.
        if established {
            return stream;
        }
        let n = stream.read(&mut buf).expect("handshake read");
        assert!(n > 0, "the adapter closed the stalled peer's handshake");
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        node.handle_input(now(), Input::Received { conn, bytes });
    }
}
