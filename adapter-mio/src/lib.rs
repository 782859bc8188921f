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
//!   socket in the same loop. A loop that also takes the events on its
//!   own thread makes the adapter with [`Adapter::with_event_queue`] and
//!   takes them with [`Adapter::poll_event`] after each turn: a plain
//!   queue, no channel between threads.
//!
//! Either way, other threads talk to the node through a [`Handle`] (Clone +
//! Send: a channel plus a `mio::Waker`), and events come out of a bounded
//! `std::sync::mpsc::Receiver` (if the application stops reading and it
//! fills, events are dropped and counted, with a warning in the log).
//!
//! A round trip costs wake-ups between threads, and on a virtual machine
//! a wake-up is dearer than the protocol's work. So: an embedding loop runs
//! its own commands with [`Adapter::command`] (no channel, no waker); a
//! [`spawn`]ed adapter's [`Handle::submit`] and [`Handle::command`] run the
//! command on the calling thread when the loop is asleep (the adapter is
//! locked for each turn of the loop, never while it sleeps), writing what
//! it sends before they return, and wake the loop only if the command
//! left it something to do sooner than it planned; and a thread waiting
//! in a [`spawn`]ed adapter's [`EventReceiver::recv`] (or `recv_timeout`,
//! `iter`) runs the adapter's loop itself while it waits: it sleeps in the
//! adapter's `Poll`, reads what arrives, and takes the events it produced,
//! so a reply is read and taken on one thread with one wake-up, as with a
//! socket of its own. Meanwhile the loop thread sleeps, looking every
//! [`LOOP_LOOKS_EVERY`] (2 ms) whether a thread still waits, and less
//! often while one wait goes on (up to a quarter of a second; the wait's
//! end wakes it); once none does it drives the node again (so a node
//! whose application stopped waiting is served again within 2 ms). A round trip then wakes one
//! thread on each side, not two. (An embedded adapter's receiver, which
//! has no loop to run, looks for an event for [`EVENT_SPIN`] before it
//! sleeps instead.)
//!
//! To merge the node's events with inputs of your own in one channel, or
//! to watch the node's state as it changes, give [`spawn_with`] (or
//! [`Adapter::with_observer`]) an [`Observer`]: it receives the events on
//! the thread that runs the turn, and looks at the node after every turn.
//! [`Handle::inspect`] runs a closure on the node from any other thread
//! and returns its result.
//!
//! Each connection's write backlog is capped
//! ([`AdapterConfig::max_backlog_bytes`]): a peer that stops reading gets
//! its connection closed (reported as [`BACKLOG_OVERFLOW`]) instead of
//! growing our memory.
//!
//! The configuration, its defaults and validation, the address the node
//! announces ([`announced_addrs`]), the clock, the io-error mapping and
//! [`PeerInfo`] are the driver core's (`ringmesh-driver`), shared with the
//! async adapter, and re-exported here.
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
//!
//! **Blobs** (spec/blobs.md): with [`AdapterConfig::blob_dir`] the node
//! keeps blobs in files there ([`FileStore`]: served after a restart
//! without hashing them again, fetches resumed where they stopped);
//! [`Handle::add_blob_file`], [`Handle::fetch_blob`],
//! [`Handle::blob_held`] and [`Handle::save_blob`] do the rest, and
//! [`BlobsEvent`](ringmesh::BlobsEvent)s report progress:
//!
//! ```no_run
//! use ringmesh::{BlobsConfig, BlobsEvent, Config, Event, Identity};
//! use ringmesh_mio::{AdapterConfig, spawn};
//!
//! let running = spawn(AdapterConfig {
//!     blob_dir: Some("data/blobs".into()),
//!     ..AdapterConfig::new(
//!         "127.0.0.1:0".parse()?,
//!         Config { blobs: Some(BlobsConfig::default()), ..Config::default() },
//!         Identity::from_secret_bytes([7; 32]),
//!         42,
//!     )
//! })?;
//! let hash = running.handle.add_blob_file("film.mkv")?; // peers can fetch it now
//! # let peer = ringmesh::NodeId::from_bytes([1; 16]);
//! running.handle.fetch_blob(hash, vec![peer])?; // a blob a peer holds
//! for event in running.events.iter() {
//!     match event {
//!         Event::Blobs(BlobsEvent::Progress { held, groups, .. }) => println!("{held}/{groups}"),
//!         Event::Blobs(BlobsEvent::Done { hash: done }) if done == hash => break,
//!         _ => {}
//!     }
//! }
//! running.handle.save_blob(hash, "copy.mkv")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod adapter;
mod observer;

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use mio::{Events, Poll, Waker};
use ringmesh::blobs::BlobHash;
use ringmesh::wire::PeerEntry;
use ringmesh::{Accepted, BlobsCommand, Command, CommandError, Node, NodeId};

pub use adapter::{Adapter, TOKEN_SPAN};
pub use observer::Observer;
pub use observer::{EVENT_SPIN, EventReceiver};
/// The protocol crate this adapter drives.
pub use ringmesh;
pub use ringmesh_driver::{
    AdapterConfig, AdapterConfigError, BACKLOG_OVERFLOW, DEFAULT_EVENT_CAPACITY,
    DEFAULT_EVENT_CAPACITY_BYTES, DEFAULT_MAX_BACKLOG_BYTES, DROP_LOG_INTERVAL, FileStore,
    LanConfig, LanDiscovery, LanStats, MAX_EVENT_CAPACITY, OpenReport, PeerInfo, QueuedBytes,
    add_file_command, announced_addrs, event_size, read_whole, save_blob,
};

/// A closure to run on the node, on the adapter's thread.
type Inspection = Box<dyn FnOnce(&Node) + Send>;

/// The adapter of [`spawn`], shared by its loop and its handles: the loop
/// holds the lock for a turn, never while it sleeps, and a handle that
/// finds it free serves its call on its own thread. `None` once the loop
/// has ended.
type Shared = Arc<Mutex<Option<Adapter>>>;

fn lock(shared: &Mutex<Option<Adapter>>) -> MutexGuard<'_, Option<Adapter>> {
    // A panic in an observer or an inspection leaves the node as it was
    // between two inputs: carry on (the loop's own panic ends it, see
    // `Release`).
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// This thread is serving a call of a [`spawn`]ed adapter's handle
    /// (its observer runs here meanwhile): the calls that wait for the
    /// loop would wait for this very thread.
    static SERVING: Cell<bool> = const { Cell::new(false) };
}

pub(crate) enum Request {
    Command(Command, Option<Sender<Result<Accepted, CommandError>>>),
    Inspect(Inspection),
    Abort,
}

/// Talks to a running adapter from any thread.
///
/// The calls that wait for an answer ([`command`](Handle::command),
/// [`inspect`](Handle::inspect), [`peers`](Handle::peers),
/// [`known_peers`](Handle::known_peers), [`shutdown`](Handle::shutdown))
/// are served by the adapter's loop, so they must not be made on the
/// thread that runs it (an [`Observer`], or an embedding loop): there they
/// would wait for themselves forever, so they panic instead.
/// [`submit`](Handle::submit) and [`abort`](Handle::abort) never wait.
///
/// For a [`spawn`]ed adapter whose loop is asleep, [`submit`](Handle::submit)
/// and [`command`](Handle::command) run the command on the calling thread
/// at once (what was queued before it first), as one turn of the loop
/// would; otherwise they queue it for the loop. Either way, each thread's
/// calls are served in the order it made them.
#[derive(Clone)]
pub struct Handle {
    requests: Sender<Request>,
    /// The adapter itself, for a [`spawn`]ed one: a command finds it idle
    /// and runs at once on the caller's thread.
    direct: Option<Shared>,
    waker: Arc<Waker>,
    wake_pending: Arc<AtomicBool>,
    /// The thread that runs the adapter's loop, once known.
    loop_thread: Arc<OnceLock<ThreadId>>,
    node_id: NodeId,
    local_addr: SocketAddr,
    /// The adapter's count of dropped events.
    dropped_events: Arc<AtomicU64>,
    /// Where the node's blobs live (`None`: in memory).
    blob_dir: Option<Arc<std::path::Path>>,
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

    /// Where the node accepts connections (with the real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Events dropped so far because the application (the event receiver
    /// or the observer) had no room for them: by count
    /// ([`AdapterConfig::event_capacity`]) or by bytes
    /// ([`AdapterConfig::event_capacity_bytes`]). Each run of drops is also
    /// logged, at most once per [`DROP_LOG_INTERVAL`].
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    fn request(&self, request: Request) -> bool {
        if self.requests.send(request).is_err() {
            return false;
        }
        // One wake-up per burst: the adapter clears the flag before it
        // drains the queue.
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            return self.waker.wake().is_ok();
        }
        true
    }

    /// Runs `command` on this thread if the adapter is [`spawn`]ed and
    /// idle (its loop asleep in `poll`); gives it back otherwise.
    fn try_direct(&self, command: Command) -> Result<Result<Accepted, CommandError>, Command> {
        let Some(shared) = &self.direct else {
            return Err(command);
        };
        let mut guard = match shared.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(command),
        };
        let Some(adapter) = guard.as_mut() else {
            return Ok(Err(CommandError::ShutDown));
        };
        struct Serving;
        impl Drop for Serving {
            fn drop(&mut self) {
                SERVING.set(false);
            }
        }
        SERVING.set(true);
        let serving = Serving;
        let result = adapter.command_outside_loop(command);
        drop(serving);
        if adapter.loop_must_wake() && !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        Ok(result)
    }

    /// Panics on the adapter's own thread, where a call that waits for the
    /// loop would wait forever.
    fn check_not_on_loop_thread(&self, call: &str) {
        if self.loop_thread.get() == Some(&std::thread::current().id()) || SERVING.get() {
            panic!(
                "ringmesh_mio::Handle::{call} called on the adapter's own thread: it waits for \
                 that thread, so it would wait forever (read Adapter::node, or use submit)"
            );
        }
    }

    /// Runs `command` on the node and waits for its answer.
    /// `Err(ShutDown)` if the adapter has stopped.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn command(&self, command: impl Into<Command>) -> Result<Accepted, CommandError> {
        let command = command.into();
        self.check_not_on_loop_thread("command");
        let command = match self.try_direct(command) {
            Ok(result) => return result,
            Err(command) => command,
        };
        let (tx, rx) = mpsc::channel();
        if !self.request(Request::Command(command, Some(tx))) {
            return Err(CommandError::ShutDown);
        }
        rx.recv().unwrap_or(Err(CommandError::ShutDown))
    }

    /// Queues `command` without waiting for its answer.
    pub fn submit(&self, command: impl Into<Command>) {
        if let Err(command) = self.try_direct(command.into()) {
            self.request(Request::Command(command, None));
        }
    }

    /// Runs `f` on the node between two inputs, on the thread that serves
    /// the request (the adapter's, or one whose command found the loop
    /// asleep and served the queue first), and returns what it returns;
    /// `None` if the adapter has stopped.
    /// For state the other calls do not cover:
    /// `handle.inspect(|node| node.chord_successors())`.
    ///
    /// `f` sees the node after everything the adapter did before it took
    /// the request: every event that came out before is already delivered.
    /// It holds up the adapter while it runs, so keep it short.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]). A panic in `f`
    /// unwinds the thread that serves it.
    pub fn inspect<T, F>(&self, f: F) -> Option<T>
    where
        F: FnOnce(&Node) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.check_not_on_loop_thread("inspect");
        let (tx, rx) = mpsc::sync_channel(1);
        let inspection: Inspection = Box::new(move |node| {
            let _ = tx.send(f(node));
        });
        if !self.request(Request::Inspect(inspection)) {
            return None;
        }
        rx.recv().ok()
    }

    /// Adds the file at `path` as a blob and returns its name; the node
    /// serves it from then on ([`BlobsEvent::Added`](ringmesh::BlobsEvent::Added)
    /// follows). With [`AdapterConfig::blob_dir`] the file is copied into
    /// the store and hashed on this thread, in pieces, never held in
    /// memory; without, it is read into the node's memory.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn add_blob_file(&self, path: impl AsRef<std::path::Path>) -> io::Result<BlobHash> {
        let (hash, command) = add_file_command(self.blob_dir.as_deref(), path.as_ref())?;
        self.command(command).map_err(io::Error::other)?;
        Ok(hash)
    }

    /// Fetches the blob `hash` from `providers` and the neighbours that
    /// offer blobs, every group verified as it arrives; what the store
    /// holds already is not fetched again (with a blob directory, that
    /// includes what a fetch before a restart got). Progress comes as
    /// [`BlobsEvent`](ringmesh::BlobsEvent)s (`Length`, `Progress`,
    /// `ProviderDropped`, `Done`), or ask [`Handle::blob_held`]; write the
    /// blob out with [`Handle::save_blob`] once `Done`.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn fetch_blob(
        &self,
        hash: BlobHash,
        providers: Vec<NodeId>,
    ) -> Result<Accepted, CommandError> {
        self.command(BlobsCommand::Fetch { hash, providers })
    }

    /// Groups of `hash` held and in all (`None` if none is held, or the
    /// adapter has stopped).
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn blob_held(&self, hash: BlobHash) -> Option<(u64, u64)> {
        self.inspect(move |node| {
            let held = node.blob_store()?.held(&hash)?;
            Some((held.count(), held.groups()))
        })
        .flatten()
    }

    /// Writes the whole blob `hash` to `path`: a hard link to the store's
    /// file (or a copy across file systems) with a blob directory, else
    /// its bytes from memory. `NotFound` unless every group is held.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn save_blob(&self, hash: BlobHash, path: impl AsRef<std::path::Path>) -> io::Result<()> {
        let read = || self.inspect(move |node| read_whole(node, &hash)).flatten();
        save_blob(self.blob_dir.as_deref(), &hash, path.as_ref(), read)
    }

    /// The peers that are up, in id order (empty once the adapter has
    /// stopped).
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.inspect(PeerInfo::list).unwrap_or_default()
    }

    /// The node's peer cache (to save; see [`PeersCommand::AddPeers`](ringmesh::PeersCommand::AddPeers)); empty
    /// once the adapter has stopped.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn known_peers(&self) -> Vec<PeerEntry> {
        self.inspect(Node::known_peers).unwrap_or_default()
    }

    /// The sync table's winner for `key`, read locally (`None` if never
    /// written, collected after a delete, or the adapter has stopped).
    /// Writes go through [`Handle::command`]:
    /// `handle.command(SyncCommand::Set { key, value })`.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn sync_get(&self, key: &[u8]) -> Option<ringmesh::SyncHeld> {
        let key = key.to_vec();
        self.inspect(move |node| node.sync_get(&key)).flatten()
    }

    /// Every key of the sync table and its winner, in key-hash order
    /// (empty once the adapter has stopped).
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn sync_entries(&self) -> Vec<(bytes::Bytes, ringmesh::SyncHeld)> {
        self.inspect(Node::sync_entries).unwrap_or_default()
    }

    /// Stops at once, as if the process died: every socket is dropped
    /// (peers see the connections close), nobody is told goodbye. For
    /// tests and fault drills.
    pub fn abort(&self) {
        self.request(Request::Abort);
    }

    /// Shuts the node down gracefully (every peer gets a `Goodbye`); the
    /// adapter stops once its connections are flushed.
    ///
    /// # Panics
    ///
    /// On the adapter's own thread (see [`Handle`]).
    pub fn shutdown(&self) {
        let _ = self.command(Command::Shutdown);
    }
}

/// An adapter running on its own thread, its events in a channel
/// ([`spawn`]).
#[derive(Debug)]
pub struct Running {
    /// Talks to it.
    pub handle: Handle,
    /// Its events (bounded by [`AdapterConfig::event_capacity`] and
    /// [`AdapterConfig::event_capacity_bytes`]: when full, new events are
    /// dropped and counted).
    pub events: EventReceiver,
    /// The thread; it ends after [`Handle::shutdown`].
    pub thread: JoinHandle<io::Result<()>>,
}

/// An adapter running on its own thread, its events given to an
/// [`Observer`] ([`spawn_with`]).
#[derive(Debug)]
pub struct Spawned {
    /// Talks to it.
    pub handle: Handle,
    /// The thread; it ends after [`Handle::shutdown`].
    pub thread: JoinHandle<io::Result<()>>,
}

/// Starts an adapter on its own thread with its own `mio::Poll`; its
/// events come out of [`Running::events`].
///
/// Fails if the listener cannot be bound, or (as `InvalidInput`, carrying
/// an [`AdapterConfigError`]) if the configuration is refused.
pub fn spawn(config: AdapterConfig) -> io::Result<Running> {
    let poll = Poll::new()?;
    let (adapter, handle, mut events) = Adapter::new(poll.registry(), 0, config)?;
    let (thread, handle, driver) = start_thread(poll, adapter, handle)?;
    events.attach(driver);
    Ok(Running {
        handle,
        events,
        thread,
    })
}

/// As [`spawn`], but the events go to `observer`, on the adapter's thread,
/// which also sees the node after every turn of the loop
/// ([`Observer::after_turn`]) and is told when the loop has ended
/// ([`Observer::stopped`]). `config.event_capacity` does not apply: the
/// observer holds what it takes.
pub fn spawn_with(config: AdapterConfig, observer: impl Observer) -> io::Result<Spawned> {
    let poll = Poll::new()?;
    let (adapter, handle) = Adapter::with_observer(poll.registry(), 0, config, observer)?;
    let (thread, handle, _) = start_thread(poll, adapter, handle)?;
    Ok(Spawned { handle, thread })
}

/// Ends the adapter when the loop's thread ends, however it ends (a panic
/// in an observer included): its sockets close, and the handles' calls
/// return `ShutDown` instead of finding a node nobody drives.
struct Release<'a>(&'a Mutex<Option<Adapter>>);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let adapter = lock(self.0).take();
        drop(adapter);
    }
}

fn start_thread(
    poll: Poll,
    adapter: Adapter,
    mut handle: Handle,
) -> io::Result<(JoinHandle<io::Result<()>>, Handle, Arc<Driver>)> {
    let shared: Shared = Arc::new(Mutex::new(Some(adapter)));
    handle.direct = Some(Arc::clone(&shared));
    let timeout = match lock(&shared).as_mut() {
        Some(adapter) => adapter.plan_sleep(),
        None => None,
    };
    let driver = Arc::new(Driver {
        shared,
        poll: Mutex::new(Polling {
            poll,
            events: Events::with_capacity(1024),
            timeout,
        }),
        wanted: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
        waits: AtomicU64::new(0),
        napping_long: AtomicBool::new(false),
        loop_thread: OnceLock::new(),
        waker: Arc::clone(&handle.waker),
    });
    let ours = Arc::clone(&driver);
    let thread = std::thread::Builder::new()
        .name(format!("ringmesh-{}", handle.node_id().short()))
        .spawn(move || {
            let driver = ours;
            let shared = &driver.shared;
            let release = Release(shared);
            if let Some(adapter) = lock(shared).as_ref() {
                adapter.claim_loop_thread();
            }
            let result = run(&driver);
            // Out of the handles' reach first, so that no call runs on it
            // while the observer is told.
            let adapter = lock(shared).take();
            if let Some(mut adapter) = adapter {
                adapter.stop();
            }
            drop(release);
            // A thread waiting in `EventReceiver::recv` may be in the
            // `Poll`: it wakes, finds the adapter gone and waits on the
            // channel, which is closed now.
            driver.stopped.store(true, Ordering::Release);
            let _ = driver.waker.wake();
            result
        })?;
    // Known before any other thread can run a turn (an application thread
    // waiting in `EventReceiver::recv` runs them too, once `spawn` has
    // returned): the handle's waiting calls panic on this thread only.
    let _ = handle.loop_thread.set(thread.thread().id());
    let _ = driver.loop_thread.set(thread.thread().clone());
    Ok((thread, handle, driver))
}

/// The `Poll` of a [`spawn`]ed adapter and whoever waits on it: the loop
/// thread, or an application thread waiting in [`EventReceiver::recv`]
/// (which then runs the turns itself, so that a reply is read and taken
/// on one thread, without waking the loop thread and handing the event
/// over).
pub(crate) struct Driver {
    shared: Shared,
    /// Held by whoever polls (for the poll and the turn that follows).
    poll: Mutex<Polling>,
    /// An application thread waits for the `Poll`: the loop thread lets
    /// go of it after its turn and sleeps.
    wanted: AtomicBool,
    /// The loop has ended and the adapter is gone.
    stopped: AtomicBool,
    /// Waits begun in [`EventReceiver::recv`]: while it does not move, one
    /// wait goes on, and the loop thread naps longer and longer.
    waits: AtomicU64,
    /// The loop thread naps longer than [`LOOP_LOOKS_EVERY`]: a wait that
    /// ends wakes it, so that it takes the node back at once.
    napping_long: AtomicBool,
    loop_thread: OnceLock<std::thread::Thread>,
    waker: Arc<Waker>,
}

pub(crate) struct Polling {
    poll: Poll,
    events: Events,
    /// How long the next poll may sleep (planned after each turn).
    timeout: Option<Duration>,
}

/// How long the loop thread of a [`spawn`]ed adapter sleeps while a
/// thread waiting in [`EventReceiver::recv`] runs the loop, before it
/// looks again whether one still does (it takes the node back once none
/// does: a node is never left undriven for longer).
pub const LOOP_LOOKS_EVERY: Duration = Duration::from_millis(2);

/// The longest the loop thread naps while one wait in
/// [`EventReceiver::recv`] goes on (its naps double from
/// [`LOOP_LOOKS_EVERY`]; the wait's end wakes it).
const LOOP_NAPS_AT_MOST: Duration = Duration::from_millis(256);

/// What a waiting application thread's call to [`Driver::drive`] did.
pub(crate) enum Drove {
    /// It polled and ran a turn (or tried to): look for events again.
    Turned,
    /// The loop thread holds the `Poll`; it was asked for it.
    Asked,
    /// The adapter has stopped.
    Stopped,
}

impl Driver {
    /// A thread begins to wait for events by running the loop.
    pub(crate) fn begin_wait(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Wakes the loop thread from its nap.
    pub(crate) fn wake_loop(&self) {
        if let Some(thread) = self.loop_thread.get() {
            thread.unpark();
        }
    }

    /// The wait has ended: the loop thread, if it naps long, wakes to take
    /// the node back.
    pub(crate) fn end_wait(&self) {
        if self.napping_long.swap(false, Ordering::AcqRel)
            && let Some(thread) = self.loop_thread.get()
        {
            thread.unpark();
        }
    }

    /// For an application thread waiting for an event until `deadline`:
    /// polls and runs one turn if the `Poll` is free, else asks the loop
    /// thread for it.
    pub(crate) fn drive(&self, deadline: Option<std::time::Instant>) -> io::Result<Drove> {
        let mut polling = match self.poll.try_lock() {
            Ok(polling) => polling,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if !self.wanted.swap(true, Ordering::AcqRel) {
                    let _ = self.waker.wake();
                }
                return Ok(Drove::Asked);
            }
        };
        self.wanted.store(false, Ordering::Release);
        if self.stopped.load(Ordering::Acquire) {
            return Ok(Drove::Stopped);
        }
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                Some(polling.timeout.map_or(left, |t| t.min(left)))
            }
            None => polling.timeout,
        };
        let Polling { poll, events, .. } = &mut *polling;
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Drove::Turned),
            Err(e) => return Err(e),
        }
        Ok(match turn(&self.shared, &mut polling) {
            Turn::Planned => Drove::Turned,
            Turn::Finished | Turn::Gone => Drove::Stopped,
        })
    }
}

impl core::fmt::Debug for Driver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

enum Turn {
    Planned,
    Finished,
    Gone,
}

/// One turn after a poll: the ready sources, the deadlines, the plan for
/// the next poll.
fn turn(shared: &Mutex<Option<Adapter>>, polling: &mut Polling) -> Turn {
    let mut guard = lock(shared);
    let Some(adapter) = guard.as_mut() else {
        polling.timeout = Some(Duration::ZERO);
        return Turn::Gone;
    };
    for event in polling.events.iter() {
        adapter.handle_event(event);
    }
    adapter.handle_timeout();
    if adapter.is_finished() {
        // Whoever polls next (the loop thread) returns at once and ends.
        polling.timeout = Some(Duration::ZERO);
        return Turn::Finished;
    }
    polling.timeout = adapter.plan_sleep();
    Turn::Planned
}

/// The adapter's own loop: poll, dispatch, feed deadlines, until shut
/// down and flushed. The adapter is locked for each turn and free while
/// the loop sleeps: a handle's command then runs on its caller's thread
/// ([`Handle::submit`]), and wakes the loop only if it left it something
/// to do sooner than planned. While an application thread waits for
/// events ([`EventReceiver::recv`]) it holds the `Poll` and runs the
/// turns; the loop thread looks every [`LOOP_LOOKS_EVERY`] and takes the
/// `Poll` back once nobody waits on it.
fn run(driver: &Driver) -> io::Result<()> {
    let mut nap = LOOP_LOOKS_EVERY;
    let mut waits = driver.waits.load(Ordering::Relaxed);
    loop {
        // Asked for the `Poll` by a waiting application thread: sleep once
        // (it takes the `Poll` meanwhile, and clears the flag); a flag
        // left by a thread that found its event before it got the `Poll`
        // is cleared here, so it holds the loop up once at most.
        let polling = if driver.wanted.swap(false, Ordering::AcqRel) {
            None
        } else {
            match driver.poll.try_lock() {
                Ok(polling) => Some(polling),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        };
        let Some(mut polling) = polling else {
            // Never waits for the lock: a waiting thread's turn holds it,
            // and would have to wake this thread when it let go.
            let finished = match driver.shared.try_lock() {
                Ok(adapter) => adapter.as_ref().is_none_or(Adapter::is_finished),
                Err(TryLockError::Poisoned(poisoned)) => poisoned
                    .into_inner()
                    .as_ref()
                    .is_none_or(Adapter::is_finished),
                Err(TryLockError::WouldBlock) => false,
            };
            if finished {
                return Ok(());
            }
            // One wait going on since the last look: nap longer (an idle
            // application waiting for events costs a few wake-ups a
            // second); waits coming and going: look often.
            let now = driver.waits.load(Ordering::Relaxed);
            nap = if now == waits {
                (nap * 2).min(LOOP_NAPS_AT_MOST)
            } else {
                LOOP_LOOKS_EVERY
            };
            waits = now;
            driver
                .napping_long
                .store(nap > LOOP_LOOKS_EVERY, Ordering::Release);
            std::thread::park_timeout(nap);
            continue;
        };
        nap = LOOP_LOOKS_EVERY;
        driver.napping_long.store(false, Ordering::Relaxed);
        let timeout = polling.timeout;
        let Polling { poll, events, .. } = &mut *polling;
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        match turn(&driver.shared, &mut polling) {
            Turn::Planned => {}
            Turn::Finished | Turn::Gone => return Ok(()),
        }
    }
}
