//! `ringmesh-async-std`: runs a [`ringmesh::Node`] over TCP in async Rust,
//! under **async-std** or **smol** (or any executor: it is built on
//! `async-io` and `futures-lite` and spawns nothing itself).
//!
//! [`start`] binds the listener and returns three things:
//!
//! - a [`NodeHandle`] (`Clone + Send`): `connect`, `broadcast`, `send`,
//!   `request`, `respond`, `peers`, `shutdown`, … as `async` methods;
//! - [`Events`]: a [`Stream`](futures_lite::Stream) of [`ringmesh::Event`];
//! - a [`Driver`]: the future that runs the node. Spawn it on the executor
//!   you use.
//!
//! ```
//! use std::time::Duration;
//! use futures_lite::StreamExt;
//! use ringmesh::{Config, Event, Identity};
//! use ringmesh_async_std::{start, AdapterConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The seed must be random in production (e.g. from the `getrandom`
//! // crate); the identity's 32 secret bytes are what you persist.
//! let config = |secret, seed| {
//!     AdapterConfig::new("127.0.0.1:0".parse().unwrap(), Config::lan(), Identity::from_secret_bytes(secret), seed)
//! };
//! let (alice, _alice_events, alice_driver) = start(config([1; 32], 1))?;
//! let (bob, mut bob_events, bob_driver) = start(config([2; 32], 2))?;
//!
//! // async-std:
//! async_std::task::spawn(alice_driver);
//! // smol (either works; here the two nodes even run on different ones):
//! smol::spawn(bob_driver).detach();
//!
//! smol::block_on(async {
//!     let peer = alice.connect(bob.local_addr(), Some(bob.node_id())).await?;
//!     assert_eq!(peer, bob.node_id());
//!     alice.send(bob.node_id(), "hello").await?;
//!     while let Some(event) = bob_events.next().await {
//!         if let Event::Direct { from, payload } = event {
//!             assert_eq!((from, &payload[..]), (alice.node_id(), &b"hello"[..]));
//!             break;
//!         }
//!     }
//!     alice.shutdown().await;
//!     bob.shutdown().await;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! ## How it is put together
//!
//! - **One task owns the node.** The driver's node loop is the only code
//!   that touches the [`ringmesh::Node`] (no `Arc<Mutex<Node>>`). Handles
//!   send it calls over a bounded channel and get answers on a oneshot;
//!   it feeds the node transport facts and `Input::Timeout`, drains
//!   `poll_output` after every call, and sleeps until `poll_timeout` with an
//!   `async_io::Timer` (protocol time is microseconds since [`start`]).
//! - **One future per connection**, reading into `Bytes` chunks for the
//!   node loop and writing what the node sends, plus one per dial
//!   (`Async::<TcpStream>::connect`) and the accept loop. They run on a
//!   small `async-executor` inside the [`Driver`], so the driver needs no
//!   spawner and works on any runtime. The price: the whole node — protocol
//!   and socket I/O — runs on one thread at a time, like the mio adapter.
//! - **Memory is bounded.** Readers hand chunks to the node loop through a
//!   bounded channel, so a node that falls behind stops reading and TCP
//!   pushes back on the senders. Each connection's write backlog is capped
//!   at [`AdapterConfig::max_backlog_bytes`]: a peer that stops reading is
//!   cut off when its backlog passes the cap (its connection closes with
//!   `CloseReason::Transport(TransportError::TimedOut)` and a warning in
//!   the log). The event stream is bounded too; see [`Events`]. Each open
//!   connection also holds a 64 KiB read buffer.
//! - **Writes go out at once when they can.** When nothing is queued for a
//!   connection, the node loop hands the node's bytes to the socket itself
//!   (the connection's future writes only what the socket does not take at
//!   once), so what the node sent is on the wire before the events that
//!   follow it reach the application.
//! - **Graceful close.** When the node closes a connection, what was sent
//!   on it is written first, then the socket is shut down and the peer
//!   given a moment to close its side, so that its last reads (a
//!   `Goodbye`) are not lost to a reset. [`NodeHandle::shutdown`] does that
//!   for every connection and waits until it is done. Before the node
//!   shuts down, every connection reads what its socket already holds and
//!   the node takes it in: a handshake whose last message has arrived
//!   completes, and its peer gets a `Goodbye` too (a connection without a
//!   session cannot carry one).
//!
//! ## Stopping
//!
//! [`NodeHandle::shutdown`] (or dropping every [`NodeHandle`]) shuts the
//! node down gracefully; the driver future then completes and [`Events`]
//! ends. Dropping the driver future instead stops everything at once.
//!
//! ## Logging
//!
//! Through `tracing`: the listen address and node id at `info`, dial
//! failures at `info`, accept failures, write-backlog overflows and event
//! drops at `warn`, per-connection detail at `debug`.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod connection;
mod driver;
mod events;
mod handle;

use std::io;
use std::net::{SocketAddr, TcpListener};

use async_io::Async;
use ringmesh::{Config, Identity, Instant, Node};
use tracing::warn;

pub use driver::Driver;
pub use events::Events;
pub use handle::{Error, NodeHandle, PeerInfo};
/// The protocol crate this adapter drives.
pub use ringmesh;

/// Default [`AdapterConfig::max_backlog_bytes`]: 32 MiB.
pub const DEFAULT_MAX_BACKLOG_BYTES: usize = 32 << 20;

/// Default [`AdapterConfig::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Calls from handles that may wait for the node loop at once; more wait
/// to be sent.
const CALL_CAPACITY: usize = 64;

/// What [`start`] needs. Build it with [`AdapterConfig::new`], then change
/// fields.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Where to listen. Port 0 picks a free port: read it back with
    /// [`NodeHandle::local_addr`].
    pub listen: SocketAddr,
    /// The node's configuration. If its `listen_addrs` is empty, the bound
    /// address is announced (unless it is unspecified, like `0.0.0.0`:
    /// then set `listen_addrs` to the address peers should dial).
    pub node: Config,
    /// The node's long-term identity; its 32 secret bytes are what to
    /// persist between runs.
    pub identity: Identity,
    /// The node's randomness seed ([`Node::new`]). In Noise mode it keys the
    /// handshake's ephemeral keys: **pass a fresh random value at every
    /// start** (e.g. from `getrandom`). Fixed seeds are for tests.
    pub seed: u64,
    /// Cap on the bytes queued for one connection and not yet accepted by
    /// its socket. A peer that reads too slowly for it is disconnected.
    /// At least the node's `max_frame_len`. Default
    /// [`DEFAULT_MAX_BACKLOG_BYTES`].
    pub max_backlog_bytes: usize,
    /// Events held for the application before new ones are dropped (see
    /// [`Events`]). Default [`DEFAULT_EVENT_CAPACITY`].
    pub event_capacity: usize,
}

impl AdapterConfig {
    /// A configuration with the default caps.
    pub fn new(listen: SocketAddr, node: Config, identity: Identity, seed: u64) -> Self {
        AdapterConfig {
            listen,
            node,
            identity,
            seed,
            max_backlog_bytes: DEFAULT_MAX_BACKLOG_BYTES,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

/// Binds the listener and creates the node; returns its handle, its event
/// stream, and the [`Driver`] future that runs it.
///
/// Nothing happens until the driver is spawned: `async_std::task::spawn(driver)`
/// or `smol::spawn(driver).detach()` (or awaited in a task of your own).
///
/// Fails if the listener cannot be bound, or (as `InvalidInput`) if the
/// node configuration is invalid, `max_backlog_bytes` is below the node's
/// `max_frame_len`, or `event_capacity` is zero.
pub fn start(config: AdapterConfig) -> io::Result<(NodeHandle, Events, Driver)> {
    let AdapterConfig {
        listen,
        node: mut node_config,
        identity,
        seed,
        max_backlog_bytes,
        event_capacity,
    } = config;
    if max_backlog_bytes < node_config.max_frame_len as usize {
        return Err(invalid(format!(
            "max_backlog_bytes {max_backlog_bytes} is below max_frame_len {}",
            node_config.max_frame_len
        )));
    }
    if event_capacity == 0 {
        return Err(invalid("event_capacity must be at least 1".to_owned()));
    }
    let listener = Async::<TcpListener>::bind(listen)?;
    let local_addr = listener.get_ref().local_addr()?;
    if node_config.listen_addrs.is_empty() {
        if local_addr.ip().is_unspecified() {
            warn!(
                %local_addr,
                "listening on an unspecified address: set listen_addrs so peers can redial this node"
            );
        } else {
            node_config.listen_addrs.push(local_addr);
        }
    }
    let clock = driver::Clock::start();
    let node = Node::new(node_config, identity, seed, Instant::ZERO)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let (calls_tx, calls) = async_channel::bounded(CALL_CAPACITY);
    let (events_tx, events) = events::EventSender::channel(event_capacity);
    let handle = NodeHandle::new(calls_tx, node.node_id(), local_addr);
    let driver = Driver::new(driver::NodeLoop {
        node,
        clock,
        listener,
        local_addr,
        calls,
        events: events_tx,
        max_backlog_bytes,
    });
    Ok((handle, events, driver))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
