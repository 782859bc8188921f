//! `ringmesh-mio`: a single-threaded driver that runs a [`ringmesh::Node`]
//! over real TCP sockets with `mio`.
//!
//! Two ways to run it:
//!
//! - **Its own thread** ([`spawn`]): the adapter owns a `mio::Poll`, sleeps
//!   until the node's next deadline or a socket is ready, and stops after
//!   [`Handle::shutdown`].
//! - **Embedded** ([`Adapter::new`]): your loop owns the `Poll`. Give the
//!   adapter a token range; after each `poll`, hand it the events whose
//!   token it [`owns`](Adapter::owns), then call
//!   [`handle_timeout`](Adapter::handle_timeout), and bound your next `poll`
//!   by [`timeout`](Adapter::timeout). `examples/embed.rs` serves its own
//!   socket in the same loop.
//!
//! Either way, other threads talk to the node through a [`Handle`] (Clone +
//! Send: a channel plus a `mio::Waker`), and events come out of a bounded
//! `std::sync::mpsc::Receiver` (if the application stops reading and it
//! fills, events are dropped and counted, with a warning in the log).
//!
//! Each connection's write backlog is capped
//! ([`AdapterConfig::max_backlog_bytes`]): a peer that stops reading gets
//! its connection closed instead of growing our memory.
//!
//! ```no_run
//! use ringmesh::{Config, Identity};
//! use ringmesh_mio::{AdapterConfig, spawn};
//!
//! let running = spawn(AdapterConfig::new(
//!     "127.0.0.1:0".parse()?,
//!     Config::default(),
//!     Identity::from_secret_bytes([7; 32]), // a real node loads or creates a key
//!     42,                                   // a real node draws a random seed
//! ))?;
//! println!("node {} on {}", running.handle.node_id(), running.handle.local_addr());
//! for event in running.events.iter() {
//!     println!("{event:?}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod adapter;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration as StdDuration;

use mio::{Events, Poll, Waker};
use ringmesh::wire::PeerEntry;
use ringmesh::{Accepted, Command, CommandError, Config, Event, Identity, NodeId};

pub use adapter::{Adapter, TOKEN_SPAN};
/// The protocol crate this adapter drives.
pub use ringmesh;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Where to accept connections (port 0 picks a free one). Announced to
    /// peers unless `node.listen_addrs` is set.
    pub listen: SocketAddr,
    /// The node's configuration.
    pub node: Config,
    /// The node's identity.
    pub identity: Identity,
    /// The node's randomness seed: draw a fresh random one at every start.
    pub seed: u64,
    /// Cap on bytes queued for one connection; over it the connection is
    /// closed. Default 32 MiB (two full-size frames).
    pub max_backlog_bytes: usize,
    /// Events buffered for the application. Default 65,536.
    pub event_capacity: usize,
}

impl AdapterConfig {
    /// A config with the default caps.
    pub fn new(listen: SocketAddr, node: Config, identity: Identity, seed: u64) -> Self {
        AdapterConfig {
            listen,
            node,
            identity,
            seed,
            max_backlog_bytes: 32 * 1024 * 1024,
            event_capacity: 65_536,
        }
    }
}

/// A connected peer, as [`Handle::peers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer.
    pub id: NodeId,
    /// Smoothed ping round-trip time, once measured.
    pub rtt: Option<StdDuration>,
    /// It missed its last ping.
    pub suspect: bool,
}

pub(crate) enum Request {
    Command(Command, Option<Sender<Result<Accepted, CommandError>>>),
    Peers(Sender<Vec<PeerInfo>>),
    KnownPeers(Sender<Vec<PeerEntry>>),
    Abort,
}

/// Talks to a running adapter from any thread.
#[derive(Clone)]
pub struct Handle {
    requests: Sender<Request>,
    waker: Arc<Waker>,
    wake_pending: Arc<std::sync::atomic::AtomicBool>,
    node_id: NodeId,
    local_addr: SocketAddr,
}

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handle")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl Handle {
    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Where the node accepts connections.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn request(&self, request: Request) -> bool {
        if self.requests.send(request).is_err() {
            return false;
        }
        // One wake-up per burst: the adapter clears the flag before it
        // drains the queue.
        if !self
            .wake_pending
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return self.waker.wake().is_ok();
        }
        true
    }

    /// Runs `command` on the node and waits for its answer.
    /// `Err(ShutDown)` if the adapter has stopped.
    pub fn command(&self, command: Command) -> Result<Accepted, CommandError> {
        let (tx, rx) = mpsc::channel();
        if !self.request(Request::Command(command, Some(tx))) {
            return Err(CommandError::ShutDown);
        }
        rx.recv().unwrap_or(Err(CommandError::ShutDown))
    }

    /// Queues `command` without waiting for its answer.
    pub fn submit(&self, command: Command) {
        self.request(Request::Command(command, None));
    }

    /// The peers that are up, in id order.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let (tx, rx) = mpsc::channel();
        if !self.request(Request::Peers(tx)) {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }

    /// The node's peer cache (to save; see [`Command::AddPeers`]).
    pub fn known_peers(&self) -> Vec<PeerEntry> {
        let (tx, rx) = mpsc::channel();
        if !self.request(Request::KnownPeers(tx)) {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }

    /// Stops at once, as if the process died: every socket is dropped
    /// (peers see the connections close), nobody is told goodbye. For
    /// tests and fault drills.
    pub fn abort(&self) {
        self.request(Request::Abort);
    }

    /// Shuts the node down gracefully (every peer gets a `Goodbye`); the
    /// adapter stops once its connections are flushed.
    pub fn shutdown(&self) {
        let _ = self.command(Command::Shutdown);
    }
}

/// An adapter running on its own thread.
pub struct Running {
    /// Talks to it.
    pub handle: Handle,
    /// Its events.
    pub events: Receiver<Event>,
    /// The thread; it ends after [`Handle::shutdown`].
    pub thread: JoinHandle<io::Result<()>>,
}

/// Starts an adapter on its own thread with its own `mio::Poll`.
pub fn spawn(config: AdapterConfig) -> io::Result<Running> {
    let poll = Poll::new()?;
    let (mut adapter, handle, events) = Adapter::new(poll.registry(), 0, config)?;
    let thread = std::thread::Builder::new()
        .name(format!("ringmesh-{}", handle.node_id().short()))
        .spawn(move || run(poll, &mut adapter))?;
    Ok(Running {
        handle,
        events,
        thread,
    })
}

/// The adapter's own loop: poll, dispatch, feed deadlines, until shut
/// down and flushed.
fn run(mut poll: Poll, adapter: &mut Adapter) -> io::Result<()> {
    let mut events = Events::with_capacity(1024);
    loop {
        let timeout = adapter.timeout();
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            adapter.handle_event(event);
        }
        adapter.handle_timeout();
        if adapter.is_finished() {
            return Ok(());
        }
    }
}
