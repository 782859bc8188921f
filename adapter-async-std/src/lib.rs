//! `ringmesh-async-std`: runs a [`ringmesh::Node`] over TCP in async Rust,
//! under **async-std**, **smol** or **tokio** (multi-thread or
//! current-thread runtime), or any other executor: it is built on
//! `async-io` and `futures-lite`, spawns nothing itself, and its sockets
//! and timers run on `async-io`'s own reactor thread, so the executor only
//! has to poll the [`Driver`] future. The conformance suite runs it under
//! all three.
//!
//! async-std is discontinued upstream (its authors point to smol); the
//! crate keeps its name and keeps working under it, because users still
//! run it, and nothing in it depends on async-std.
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
//! use ringmesh::{Config, Event, Identity, MessagingEvent};
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
//! // smol (any works; here the two nodes even run on different ones; under
//! // tokio it is `tokio::spawn(driver)`):
//! smol::spawn(bob_driver).detach();
//!
//! smol::block_on(async {
//!     let peer = alice.connect(bob.local_addr(), Some(bob.node_id())).await?;
//!     assert_eq!(peer, bob.node_id());
//!     alice.send(bob.node_id(), "hello").await?;
//!     while let Some(event) = bob_events.next().await {
//!         if let Event::Messaging(MessagingEvent::Direct { from, payload }) = event {
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
//! - **The node loop owns the node, and lends it to idle callers.** The
//!   driver's node loop feeds the node transport facts and
//!   `Input::Timeout`, drains `poll_output` after every input, and sleeps
//!   until `poll_timeout` with an `async_io::Timer` (protocol time is
//!   microseconds since [`start`]). Its state sits behind a mutex that the
//!   loop holds for a turn and never while it sleeps. Handles queue calls
//!   for it (a bounded queue; answers come on a oneshot), except that a
//!   command or request that finds the loop idle is served on the
//!   caller's task: the queue first, then the call, its frames written
//!   before it returns; the loop is woken only when the node's next
//!   deadline moved earlier than its timer. While it waits for its answer
//!   a caller also runs the connections' I/O futures and, the loop being
//!   idle, takes in what they read, so that a response is usually read
//!   and delivered on the task that asked for it. A request sent on the
//!   caller's task first looks for its answer that way without parking,
//!   yielding the CPU between tries, for up to 50 µs (a reply from a
//!   nearby peer comes sooner than a park and a wake-up would take);
//!   after a spin in vain the next 32 requests park at once, so a far
//!   peer, or one on the caller's own single-threaded runtime, costs
//!   little CPU. Calls and transport reports are taken from their queues
//!   only under the lock, so order is kept whoever takes them. The loop
//!   does not wait for the lock when a caller holds it: the caller takes
//!   what was queued meanwhile as it lets go, and wakes the loop only if
//!   something is left (waiting would put the loop's thread to sleep
//!   behind a caller that a context switch interrupted mid-`writev`).
//! - **One future per connection**, reading into `Bytes` chunks for the
//!   node (fed to it on the reader's own task when the node is free,
//!   queued for whoever holds it otherwise) and writing what the node
//!   sends, plus one per dial (`Async::<TcpStream>::connect`) and the
//!   accept loop. They run on a
//!   small `async-executor` that the [`Driver`] runs (and waiting callers
//!   help run), so the driver needs no spawner and works on any runtime.
//!   The node itself — the protocol — runs on one thread at a time, like
//!   the mio adapter.
//! - **Memory is bounded.** Readers that find the node busy queue their
//!   chunks in a bounded channel, so a node that falls behind stops
//!   reading and TCP pushes back on the senders. Each connection's write backlog is capped
//!   at [`AdapterConfig::max_backlog_bytes`]: a peer that stops reading is
//!   cut off when its backlog passes the cap (its connection closes with
//!   `CloseReason::Transport(`[`BACKLOG_OVERFLOW`]`)` and a warning in the
//!   log). The event stream is bounded too; see [`Events`]. Each open
//!   connection also holds a 64 KiB read buffer.
//! - **A flood of connections cannot crowd out peers.** The listener asks
//!   the kernel for an accept backlog of 4096
//!   ([`ringmesh_driver::LISTEN_BACKLOG`]; async-io's own bind asks for
//!   128, and a full queue makes the kernel drop honest SYNs too), and the
//!   accept loop yields to the executor after every 64 accepts
//!   ([`ringmesh_driver::ACCEPTS_PER_TURN`]), so connections' reads and the
//!   node loop (which judges each accepted connection through the node's
//!   admission control) run between batches.
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
//! ## Shared with the mio adapter
//!
//! The configuration ([`AdapterConfig`], its defaults and validation), the
//! listener and its backlog, the address the node announces ([`announced_addrs`]: never an unspecified
//! one such as `0.0.0.0`, never port 0), the clock, the io-error mapping
//! and [`PeerInfo`] are the driver core's (`ringmesh-driver`), written once
//! for both adapters and re-exported here.
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

mod call;
mod calls;
mod connection;
mod driver;
mod events;
mod handle;

use std::io;

use async_io::Async;
use ringmesh_driver::Startup;

pub use call::Error;
pub use driver::Driver;
pub use events::Events;
pub use handle::NodeHandle;
/// The protocol crate this adapter drives.
pub use ringmesh;
pub use ringmesh_driver::{
    AdapterConfig, AdapterConfigError, BACKLOG_OVERFLOW, DEFAULT_EVENT_CAPACITY,
    DEFAULT_EVENT_CAPACITY_BYTES, DEFAULT_MAX_BACKLOG_BYTES, DROP_LOG_INTERVAL, FileStore,
    LanConfig, LanDiscovery, LanStats, MAX_EVENT_CAPACITY, OpenReport, PeerInfo, add_file_command,
    announced_addrs, event_size, read_whole, save_blob,
};

/// Calls from handles that may wait for the node loop at once; more wait
/// to be sent.
const CALL_CAPACITY: usize = 64;

/// Binds the listener and creates the node; returns its handle, its event
/// stream, and the [`Driver`] future that runs it.
///
/// Nothing happens until the driver is spawned: `async_std::task::spawn(driver)`,
/// `smol::spawn(driver).detach()` or `tokio::spawn(driver)` (or awaited in
/// a task of your own).
///
/// Fails if the listener cannot be bound, or (as `InvalidInput`, carrying
/// an [`AdapterConfigError`]) if the configuration is refused: an invalid
/// node configuration, `max_backlog_bytes` below one frame, an
/// `event_capacity` out of range, `event_capacity_bytes` below one
/// payload of `max_frame_len`, or no address to announce for a ring
/// member.
pub fn start(config: AdapterConfig) -> io::Result<(NodeHandle, Events, Driver)> {
    config.validate()?;
    // Not `Async::<TcpListener>::bind`: its backlog is 128. See
    // `ringmesh_driver::LISTEN_BACKLOG`.
    let listener = Async::new(ringmesh_driver::listen(config.listen)?)?;
    let local_addr = listener.get_ref().local_addr()?;
    let Startup {
        node,
        clock,
        max_backlog_bytes,
        event_capacity,
        event_capacity_bytes,
        blob_dir,
    } = config.into_node(local_addr)?;
    let (calls_tx, calls) = calls::channel(CALL_CAPACITY);
    let (events_tx, events) = events::EventSender::channel(event_capacity, event_capacity_bytes);
    let (shared, transport_tx) = driver::Shared::new(calls);
    let handle = NodeHandle::new(
        calls_tx,
        std::sync::Arc::clone(&shared),
        node.node_id(),
        local_addr,
        blob_dir,
    );
    let driver = Driver::new(driver::NodeLoop {
        node,
        clock,
        listener,
        local_addr,
        shared,
        transport_tx,
        events: events_tx,
        max_backlog_bytes,
    });
    Ok((handle, events, driver))
}
