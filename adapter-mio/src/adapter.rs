//! The adapter: one [`Node`], its TCP listener and connections, on a `mio`
//! registry that either the adapter owns ([`crate::spawn`]) or the caller
//! does (embedding).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, IoSlice, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token, Waker};
use ringmesh::{
    Accepted, Command, CommandError, ConnId, Direction, Event, Input, Instant, Node, Output,
    TransportError,
};
use ringmesh_driver::{
    ACCEPTS_PER_TURN, AdapterConfig, BACKLOG_OVERFLOW, Clock, DirectReadPool, DropLog, Startup,
    admit_to_backlog, event_size, transport_error,
};
use smallvec::SmallVec;
use tracing::{debug, info, warn};

use crate::observer::{ChannelObserver, EventQueue, EventReceiver, NoObserver, Observer};
use crate::{Handle, Request};

/// Tokens an adapter uses: `base` (listener), `base + 1` (waker), then one
/// per connection, up to `base + TOKEN_SPAN`.
pub const TOKEN_SPAN: usize = 1 << 24;

/// A non-blocking listener on `addr` with the driver core's accept backlog
/// ([`ringmesh_driver::LISTEN_BACKLOG`], 4096: see there why not 128).
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    Ok(TcpListener::from_std(ringmesh_driver::listen(addr)?))
}

/// The least room given to a `read` call (it gets the rest of the read
/// pool's allocation, up to [`ringmesh_driver::READS_PER_POOL`] times
/// this): more than a 64 KiB frame, so a big frame usually arrives whole.
const READ_CHUNK: usize = 256 * 1024;

/// Queued bytes that a command served outside the loop writes at once
/// even when it is not the first since the loop's last turn: a system
/// call's worth.
const WRITE_NOW_BYTES: usize = 32 * 1024;

/// Requests served per turn of the loop: a thread that keeps submitting
/// must not keep the adapter from reading its sockets and running its
/// timers.
const REQUESTS_PER_TURN: usize = 256;

/// Room the adapter's output queue starts with (the node writes into it,
/// [`Node::handle_input_into`]): a message's outputs, and some.
const OUTPUTS_ROOM: usize = 16;

/// How long a closing connection may take to flush before it is dropped.
const CLOSE_GRACE: StdDuration = StdDuration::from_secs(5);

/// Inputs of one turn served from one reading of the clock: a long turn
/// (a flood read in many pieces) reads it again after this many, so the
/// node's time lags the wall clock by at most that many inputs' work.
const READING_USES: u32 = 32;

/// A node deadline at least this far ahead (a century) is none: what
/// `Adapter::timeout` reports as `None`.
const NO_DEADLINE_MICROS: u64 = 100 * 365 * 24 * 3600 * 1_000_000;

/// One reading of the clock: the wall-clock instant, the protocol instant
/// it maps to, and how many calls to the node it served.
#[derive(Debug, Clone, Copy)]
struct Reading {
    wall: StdInstant,
    at: Instant,
    uses: u32,
}

/// The hasher of the adapter's maps, whose keys are numbers it hands out
/// itself (connection ids, tokens: counters, not chosen by a peer, so
/// there is no flooding of one bucket to guard against and a fixed seed
/// will do): foldhash's fast hash, a multiply or two per key, where the
/// standard SipHash took about 20 ns, several times per message.
type CounterHash = foldhash::fast::FixedState;

struct Conn {
    id: ConnId,
    stream: TcpStream,
    token: Token,
    /// Dialling: not yet reported `Connected`.
    connecting: bool,
    out: VecDeque<Bytes>,
    /// Bytes of `out.front()` already written.
    written: usize,
    /// Bytes waiting in `out`.
    backlog: usize,
    /// The node has let go of it: flush, then drop.
    closing_since: Option<StdInstant>,
    /// Listed in `Adapter::dirty` (so a connection is listed once).
    dirty: bool,
    /// The loop's turn ([`Adapter::turn`]) in which a command served
    /// outside the loop last wrote to this connection.
    written_outside: u64,
    /// The last write would have blocked: the socket's writable event
    /// (to the loop) writes the rest.
    blocked: bool,
}

/// Drives one [`Node`] over TCP. See the crate docs for the two ways to
/// run it.
pub struct Adapter {
    node: Node,
    /// What the node asked for and `pump` has yet to carry out, in order:
    /// every call to the node appends to it (`handle_input_into`,
    /// `command_into`), also the calls `pump` makes itself.
    outputs: VecDeque<Output>,
    registry: Registry,
    listener: TcpListener,
    local_addr: SocketAddr,
    base: usize,
    conns: HashMap<ConnId, Conn, CounterHash>,
    by_token: HashMap<Token, ConnId, CounterHash>,
    next_token: usize,
    free_tokens: Vec<Token>,
    next_inbound: u64,
    clock: Clock,
    requests: Receiver<Request>,
    /// The thread that runs the loop, shared with the handles: the calls
    /// that wait for the loop refuse to run there.
    loop_thread: Arc<OnceLock<ThreadId>>,
    /// Set by a `Handle` that woke us; cleared when requests are served,
    /// so a burst of requests costs one wake-up.
    wake_pending: Arc<AtomicBool>,
    /// Requests were left for the next turn.
    more_requests: bool,
    /// The last accept loop stopped at [`ACCEPTS_PER_TURN`]: accept more
    /// next turn (the listener's readiness will not be reported again).
    more_accepts: bool,
    observer: Box<dyn Observer>,
    /// The events, for an adapter made by [`Adapter::with_event_queue`]
    /// (then `observer` is never given one): the caller takes them with
    /// [`Adapter::poll_event`].
    queue: Option<EventQueue>,
    max_backlog: usize,
    /// Where the sockets are read into, each read handed to the node as
    /// it is (no copy; one allocation for many reads).
    reads: DirectReadPool,
    shutting_down: bool,
    /// Connections with bytes queued since the last flush: written once per
    /// turn, many frames per system call.
    dirty: Vec<ConnId>,
    /// Stopped by `Handle::abort`: nothing more happens.
    aborted: bool,
    /// Events the observer had no room for.
    drops: DropLog,
    /// The node's deadline the loop of [`crate::spawn`] sleeps until (it
    /// may wake earlier, never later): a call served on another thread
    /// ([`Adapter::command`]) that moves the deadline earlier wakes it.
    planned_deadline: Option<Instant>,
    /// Connections closing (their `closing_since` set): the turns look
    /// for those past their grace period only when there are some.
    closing: usize,
    /// A connection began closing since the loop planned its sleep (its
    /// grace period is a deadline the loop does not know of yet).
    closed_since_plan: bool,
    /// Turns of the loop so far (counted by `handle_timeout`): commands
    /// served outside the loop write to a connection once per turn.
    turn: u64,
    /// The clock's last reading. Within a turn (from the first
    /// `handle_event` after a poll to the end of `handle_timeout`) every
    /// input is given the turn's reading (up to [`READING_USES`] of them),
    /// not a reading of its own.
    reading: Option<Reading>,
    /// A turn is under way: `handle_event` or `handle_timeout` began it,
    /// `handle_timeout` ends it.
    turn_open: bool,
    /// The reading the last call (`handle_timeout`, a command) began
    /// with, for the `timeout` that follows it: taken once, so a
    /// `timeout` asked later reads the clock.
    sleep_from: Cell<Option<(StdInstant, Instant)>>,
}

impl Adapter {
    /// An adapter whose sources are registered with `registry` under tokens
    /// `token_base .. token_base + TOKEN_SPAN`. Returns it, a [`Handle`]
    /// for other threads, and the event receiver (bounded by
    /// [`AdapterConfig::event_capacity`]).
    ///
    /// Fails if the listener cannot be bound or registered, or (as
    /// `InvalidInput`, carrying an
    /// [`AdapterConfigError`](crate::AdapterConfigError)) if the
    /// configuration is refused.
    pub fn new(
        registry: &Registry,
        token_base: usize,
        config: AdapterConfig,
    ) -> io::Result<(Adapter, Handle, EventReceiver)> {
        // Checked here too, so that a bad capacity is refused before the
        // channel is allocated (the rest is checked again at start).
        config.validate()?;
        let drops = DropLog::new();
        let (observer, event_rx) = ChannelObserver::channel(
            config.event_capacity,
            config.event_capacity_bytes,
            drops.counter(),
        );
        let (adapter, handle) =
            Adapter::with_observer_and_drops(registry, token_base, config, observer, drops)?;
        Ok((adapter, handle, event_rx))
    }

    /// As [`Adapter::new`], but the events go to `observer` (on the thread
    /// that runs the loop), which also sees the node at the end of every
    /// [`handle_timeout`](Adapter::handle_timeout).
    /// [`AdapterConfig::event_capacity`] does not apply.
    pub fn with_observer(
        registry: &Registry,
        token_base: usize,
        config: AdapterConfig,
        observer: impl Observer,
    ) -> io::Result<(Adapter, Handle)> {
        Adapter::with_observer_and_drops(registry, token_base, config, observer, DropLog::new())
    }

    /// As [`Adapter::new`], for a loop that takes the events on its own
    /// thread: they wait in a plain queue inside the adapter (bounded by
    /// [`AdapterConfig::event_capacity`] and
    /// [`AdapterConfig::event_capacity_bytes`], what does not fit is
    /// dropped and counted as with the channel) and the loop takes them
    /// with [`Adapter::poll_event`], after each turn or command. No
    /// channel between threads: the cheapest way to the events when the
    /// application and the adapter share a thread (a request/response
    /// round trip spends about a tenth of its user-space instructions on
    /// the channel otherwise).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mio::{Events, Poll};
    /// use ringmesh::{Config, Event, Identity, MessagingCommand, MessagingEvent};
    /// use ringmesh_mio::{Adapter, AdapterConfig};
    ///
    /// let mut poll = Poll::new()?;
    /// let config = AdapterConfig::new(
    ///     "127.0.0.1:0".parse()?,
    ///     Config::default(),
    ///     Identity::from_secret_bytes([7; 32]), // a real node loads or creates a key
    ///     42,                                   // a real node draws a random seed
    /// );
    /// let (mut node, _handle) = Adapter::with_event_queue(poll.registry(), 0, config)?;
    /// let mut readiness = Events::with_capacity(256);
    /// loop {
    ///     let timeout = node.timeout().map_or(Duration::from_secs(1), |t| t.min(Duration::from_secs(1)));
    ///     poll.poll(&mut readiness, Some(timeout))?;
    ///     for event in readiness.iter() {
    ///         node.handle_event(event);
    ///     }
    ///     node.handle_timeout();
    ///     // The turn's events, on this thread: answer each request at once.
    ///     while let Some(event) = node.poll_event() {
    ///         if let Event::Messaging(MessagingEvent::Request { from, id, payload }) = event {
    ///             let _ = node.command(MessagingCommand::Respond { to: from, id, payload });
    ///         }
    ///     }
    /// #   break;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Fails as [`Adapter::new`] does.
    pub fn with_event_queue(
        registry: &Registry,
        token_base: usize,
        config: AdapterConfig,
    ) -> io::Result<(Adapter, Handle)> {
        config.validate()?;
        let queue = EventQueue::new(config.event_capacity, config.event_capacity_bytes);
        let (mut adapter, handle) = Adapter::with_observer_and_drops(
            registry,
            token_base,
            config,
            NoObserver,
            DropLog::new(),
        )?;
        adapter.queue = Some(queue);
        Ok((adapter, handle))
    }

    /// The oldest event waiting, for an adapter made by
    /// [`Adapter::with_event_queue`]: take them after each turn
    /// ([`handle_timeout`](Adapter::handle_timeout)) and each
    /// [`command`](Adapter::command), until `None`. Always `None` for an
    /// adapter made otherwise (its events go to its channel or observer).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.queue.as_mut()?.pop()
    }

    /// Events waiting for [`Adapter::poll_event`], and their bytes
    /// ([`event_size`](ringmesh_driver::event_size)); `(0, 0)` for an
    /// adapter made otherwise than by [`Adapter::with_event_queue`].
    pub fn queued_events(&self) -> (usize, usize) {
        self.queue.as_ref().map_or((0, 0), |q| (q.len(), q.bytes()))
    }

    fn with_observer_and_drops(
        registry: &Registry,
        token_base: usize,
        config: AdapterConfig,
        observer: impl Observer,
        drops: DropLog,
    ) -> io::Result<(Adapter, Handle)> {
        config.validate()?;
        let mut listener = bind_listener(config.listen)?;
        let local_addr = listener.local_addr()?;
        let Startup {
            mut node,
            clock,
            max_backlog_bytes,
            blob_dir,
            ..
        } = config.into_node(local_addr)?;
        // Large payloads go to the socket as the application gave them
        // (`writev` of the frame's head and the payload), not copied.
        node.set_payload_passthrough(true);
        // The node writes its outputs straight into the adapter's queue,
        // allocated once (`pump` carries them out); anything the node
        // queued before it had one goes first.
        let mut outputs = VecDeque::with_capacity(OUTPUTS_ROOM);
        node.drain_outputs(&mut outputs);
        registry.register(&mut listener, Token(token_base), Interest::READABLE)?;
        let waker = Arc::new(Waker::new(registry, Token(token_base + 1))?);
        info!(node = %node.node_id(), %local_addr, announced = ?node.config().listen_addrs, "listening");
        let (request_tx, requests) = mpsc::channel();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let loop_thread = Arc::new(OnceLock::new());
        let handle = Handle {
            requests: request_tx,
            direct: None,
            wake_pending: wake_pending.clone(),
            waker,
            loop_thread: loop_thread.clone(),
            node_id: node.node_id(),
            local_addr,
            dropped_events: drops.counter(),
            blob_dir: blob_dir.map(std::sync::Arc::from),
        };
        let adapter = Adapter {
            node,
            outputs,
            registry: registry.try_clone()?,
            listener,
            local_addr,
            base: token_base,
            conns: HashMap::default(),
            by_token: HashMap::default(),
            next_token: token_base + 2,
            free_tokens: Vec::new(),
            next_inbound: 0,
            clock,
            requests,
            loop_thread,
            wake_pending,
            more_requests: false,
            more_accepts: false,
            observer: Box::new(observer),
            queue: None,
            max_backlog: max_backlog_bytes,
            reads: DirectReadPool::new(READ_CHUNK),
            shutting_down: false,
            dirty: Vec::new(),
            aborted: false,
            drops,
            planned_deadline: None,
            closed_since_plan: false,
            closing: 0,
            turn: 0,
            reading: None,
            turn_open: false,
            sleep_from: Cell::new(None),
        };
        Ok((adapter, handle))
    }

    /// Records the calling thread as the one that runs the loop (once): the
    /// handle's waiting calls panic there instead of waiting forever.
    pub(crate) fn claim_loop_thread(&self) {
        self.loop_thread.get_or_init(|| std::thread::current().id());
    }

    /// After [`spawn_with`](crate::spawn_with)'s loop: the handles stop
    /// waiting (requests queued or to come are refused), then the observer
    /// is told.
    pub(crate) fn stop(&mut self) {
        // A fresh receiver whose sender is gone: dropping the old one
        // drops the queued requests' reply channels, so their callers
        // return, and later requests fail at once.
        self.requests = mpsc::channel().1;
        self.observer.stopped();
    }

    /// Where the adapter accepts connections.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node (read-only: ask for changes through the [`Handle`]).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Whether `token` is one of the adapter's.
    pub fn owns(&self, token: Token) -> bool {
        (self.base..self.base + TOKEN_SPAN).contains(&token.0)
    }

    /// Whether the node has shut down and every connection is flushed:
    /// the loop can stop.
    pub fn is_finished(&self) -> bool {
        self.shutting_down && self.conns.is_empty()
    }

    /// Events dropped because the observer (the event receiver) had no
    /// room for them.
    pub fn dropped_events(&self) -> u64 {
        self.drops.dropped()
    }

    /// How long the caller's `poll` may sleep: until the node's next
    /// deadline (or a closing connection's grace period ends).
    ///
    /// Asked right after [`handle_timeout`](Adapter::handle_timeout) or
    /// [`command`](Adapter::command), it measures from the clock reading
    /// that call began with instead of reading the clock again (so a
    /// deadline may be served late by that call's length); asked again,
    /// or after anything else, it reads the clock.
    pub fn timeout(&self) -> Option<StdDuration> {
        // The common loop is `handle_timeout`, `timeout`, `poll`: one
        // reading of the clock a turn.
        let from = self.sleep_from.take();
        if self.more_requests || self.more_accepts {
            return Some(StdDuration::ZERO);
        }
        let (wall, now) = from.unwrap_or_else(|| {
            let wall = StdInstant::now();
            (wall, self.clock.instant(wall))
        });
        // In protocol time (microseconds: `now` is truncated, so the wait
        // is never short). A deadline a century away or more (`Instant::MAX`
        // when nothing is due) is no deadline.
        let node = self
            .node
            .poll_timeout()
            .map(|at| at.saturating_duration_since(now).as_micros())
            .filter(|&wait| wait < NO_DEADLINE_MICROS)
            .map(StdDuration::from_micros);
        // Most turns have no closing connection: no walk over them all.
        let closing = (self.closing > 0)
            .then(|| self.conns.values().filter_map(|c| c.closing_since))
            .into_iter()
            .flatten()
            .map(|since| (since + CLOSE_GRACE).saturating_duration_since(wall))
            .min();
        match (node, closing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on one readiness event for a token the adapter owns.
    pub fn handle_event(&mut self, event: &mio::event::Event) {
        self.claim_loop_thread();
        self.open_turn();
        let token = event.token();
        if token.0 == self.base {
            self.accept();
        } else if token.0 == self.base + 1 {
            self.serve_requests();
        } else if let Some(&conn) = self.by_token.get(&token) {
            if event.is_writable() || event.is_error() || event.is_write_closed() {
                self.on_writable(conn);
            }
            if event.is_readable() || event.is_read_closed() {
                // A peer's close already reported must be read to the
                // end: no new edge comes for it.
                self.on_readable(conn, event.is_read_closed() || event.is_error());
            }
        }
        self.pump();
        self.flush_dirty();
    }

    /// Writes what this turn queued, each connection once.
    fn flush_dirty(&mut self) {
        let mut dirty = core::mem::take(&mut self.dirty);
        for conn in dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.dirty = false;
            }
            self.flush(conn);
        }
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Call after every `poll` returns (it ends the turn): feeds due
    /// deadlines to the node, serves queued requests, drops closing
    /// connections past their grace period, then shows the node to the
    /// observer ([`Observer::after_turn`]).
    ///
    /// The clock is read once a turn: the inputs of one turn (from the
    /// first [`handle_event`](Adapter::handle_event) after a `poll` to the
    /// end of this call, up to 32 of them) are all stamped with the time of
    /// its first, so a deadline that falls due during a turn is served the
    /// next one.
    pub fn handle_timeout(&mut self) {
        if self.aborted {
            return;
        }
        self.claim_loop_thread();
        self.turn += 1;
        self.open_turn();
        let now = self.now();
        self.sleep_from.set(self.reading.map(|r| (r.wall, r.at)));
        if self.node.poll_timeout().is_some_and(|at| at <= now) {
            self.node
                .handle_input_into(now, Input::Timeout, &mut self.outputs);
        }
        self.serve_requests();
        if self.more_accepts {
            self.accept();
        }
        debug_assert_eq!(
            self.closing,
            self.conns
                .values()
                .filter(|c| c.closing_since.is_some())
                .count(),
            "the count of closing connections is off"
        );
        let expired: Vec<ConnId> = if self.closing == 0 {
            Vec::new()
        } else {
            self.conns
                .values()
                .filter(|c| c.closing_since.is_some_and(|s| s.elapsed() >= CLOSE_GRACE))
                .map(|c| c.id)
                .collect()
        };
        for conn in expired {
            debug!(%conn, "closing connection did not flush in time; dropping it");
            self.drop_conn(conn);
        }
        self.pump();
        self.flush_dirty();
        self.observer.after_turn(&self.node);
        self.turn_open = false;
    }

    /// Begins a turn (if none is under way): its first input reads the
    /// clock, the others use that reading.
    fn open_turn(&mut self) {
        if !self.turn_open {
            self.turn_open = true;
            self.reading = None;
            self.sleep_from.set(None);
        }
    }

    /// Protocol time for a call to the node: the turn's reading of the
    /// clock if a turn is under way and the reading has served fewer than
    /// [`READING_USES`] calls, else a fresh one.
    fn now(&mut self) -> Instant {
        if self.turn_open
            && let Some(reading) = &mut self.reading
            && reading.uses < READING_USES
        {
            reading.uses += 1;
            return reading.at;
        }
        let wall = StdInstant::now();
        let at = self.clock.instant(wall);
        self.reading = Some(Reading { wall, at, uses: 1 });
        at
    }

    /// Runs `command` on the node now, on the calling thread, and returns
    /// its answer: first what [`Handle`]s queued before it (so each
    /// thread's calls keep their order), then `command`; its outputs are
    /// carried out and its writes flushed before this returns, and the
    /// observer sees the node after it ([`Observer::after_turn`]).
    ///
    /// For an embedding loop, this is the way in without the handle's
    /// channel and waker: no system call besides the writes, no extra
    /// turn of the loop. `Err(ShutDown)` once the adapter was aborted.
    pub fn command(&mut self, command: impl Into<Command>) -> Result<Accepted, CommandError> {
        let result = self.serve_now(command.into());
        self.flush_dirty();
        self.observer.after_turn(&self.node);
        result
    }

    /// As [`Adapter::command`], for a [`Handle`] whose call found the loop
    /// of [`crate::spawn`] asleep: the same, except that each connection is
    /// written at most once between two turns of the loop. The first
    /// command after a turn (a request, the answer to one) goes out at
    /// once; a stream of small ones is left queued for the loop, which
    /// writes it many frames per system call (a write per message would
    /// cost the receiver a wake-up per message), and
    /// [`Adapter::loop_must_wake`] says so, until [`WRITE_NOW_BYTES`] are
    /// queued.
    pub(crate) fn command_outside_loop(
        &mut self,
        command: Command,
    ) -> Result<Accepted, CommandError> {
        // Everything queued before it, however much (a turn of the loop
        // serves at most `REQUESTS_PER_TURN`): a call served here must not
        // overtake what this thread queued while the loop was busy.
        if !self.aborted {
            self.serve_requests();
            while self.more_requests && !self.aborted {
                self.serve_requests();
            }
        }
        let result = self.serve_now(command);
        let mut dirty = core::mem::take(&mut self.dirty);
        dirty.retain(|&conn| {
            let Some(c) = self.conns.get_mut(&conn) else {
                return false;
            };
            if c.blocked {
                // Its writable event will have the loop write it.
                c.dirty = false;
                return false;
            }
            if c.written_outside == self.turn && c.backlog < WRITE_NOW_BYTES {
                return true;
            }
            c.written_outside = self.turn;
            c.dirty = false;
            self.flush(conn);
            false
        });
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
        self.observer.after_turn(&self.node);
        result
    }

    /// Serves what the handles queued, then `command`, and carries out its
    /// outputs (the writes only queued).
    fn serve_now(&mut self, command: Command) -> Result<Accepted, CommandError> {
        if !self.aborted {
            self.serve_requests();
        }
        if self.aborted {
            return Err(CommandError::ShutDown);
        }
        if command == Command::Shutdown {
            self.shutting_down = true;
        }
        let now = self.now();
        self.sleep_from.set(self.reading.map(|r| (r.wall, r.at)));
        let result = self.node.command_into(now, command, &mut self.outputs);
        self.pump();
        result
    }

    /// For the loop of [`crate::spawn`]: how long to sleep, noting which
    /// deadline that is for [`Adapter::loop_must_wake`].
    pub(crate) fn plan_sleep(&mut self) -> Option<StdDuration> {
        self.planned_deadline = self.node.poll_timeout();
        self.closed_since_plan = false;
        self.timeout()
    }

    /// After a call served outside the loop of [`crate::spawn`]: whether
    /// the sleeping loop must wake, because the call left it something to
    /// do sooner than it planned (an earlier deadline, requests left over,
    /// a closing connection's grace period, the end).
    pub(crate) fn loop_must_wake(&self) -> bool {
        let earlier = match (self.node.poll_timeout(), self.planned_deadline) {
            (Some(now), Some(planned)) => now < planned,
            (Some(_), None) => true,
            (None, _) => false,
        };
        earlier
            || !self.dirty.is_empty()
            || self.more_requests
            || self.more_accepts
            || self.closed_since_plan
            || self.shutting_down
    }

    fn serve_requests(&mut self) {
        // Nothing queued since the last drain: a `Handle` raises the flag
        // after it queues a request, and wakes the loop if the flag was
        // down, so a request whose flag is not up yet comes with a
        // wake-up (served by `handle_event`). Spares the channel's
        // `try_recv` at every command and turn.
        if !self.more_requests && !self.wake_pending.load(Ordering::Acquire) {
            return;
        }
        // Cleared first: a request sent from now on wakes the loop again.
        self.wake_pending.store(false, Ordering::Release);
        self.more_requests = false;
        for _ in 0..REQUESTS_PER_TURN {
            match self.requests.try_recv() {
                Ok(request) => self.serve(request),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return,
            }
        }
        // More are waiting: come back right after the next poll.
        self.more_requests = true;
    }

    fn serve(&mut self, request: Request) {
        let now = self.now();
        match request {
            Request::Command(command, reply) => {
                if command == Command::Shutdown {
                    self.shutting_down = true;
                }
                let result = self.node.command_into(now, command, &mut self.outputs);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            // Outputs are drained after every input, so the node has
            // nothing pending: `inspect` sees it as the events left it.
            Request::Inspect(inspection) => inspection(&self.node),
            Request::Abort => {
                info!(node = %self.node.node_id(), "aborting: dropping every connection");
                let conns: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in conns {
                    self.drop_conn(conn);
                }
                let _ = self.registry.deregister(&mut self.listener);
                self.shutting_down = true;
                self.aborted = true;
                return;
            }
        }
        self.pump();
    }

    fn accept(&mut self) {
        self.more_accepts = false;
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((stream, remote)) => {
                    let conn = ConnId::inbound(self.next_inbound);
                    self.next_inbound += 1;
                    if self.add_conn(conn, stream, false).is_err() {
                        continue;
                    }
                    let now = self.now();
                    self.node.handle_input_into(
                        now,
                        Input::Connected {
                            conn,
                            remote,
                            direction: Direction::Inbound,
                        },
                        &mut self.outputs,
                    );
                    self.pump();
                    // What it sent already (a peer's first handshake
                    // message) goes to the node before the next accept:
                    // under a flood, the node judges connections in the
                    // order they came, and an honest handshake is answered
                    // before a thousand later arrivals can evict it.
                    self.on_readable(conn, true);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
        self.more_accepts = true;
    }

    fn add_conn(
        &mut self,
        conn: ConnId,
        mut stream: TcpStream,
        connecting: bool,
    ) -> io::Result<()> {
        let token = match self.free_tokens.pop() {
            Some(token) => token,
            None => {
                if self.next_token >= self.base + TOKEN_SPAN {
                    return Err(io::Error::other("out of tokens"));
                }
                self.next_token += 1;
                Token(self.next_token - 1)
            }
        };
        self.registry
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let _ = stream.set_nodelay(true);
        self.by_token.insert(token, conn);
        self.conns.insert(
            conn,
            Conn {
                id: conn,
                stream,
                token,
                connecting,
                out: VecDeque::new(),
                written: 0,
                backlog: 0,
                closing_since: None,
                dirty: false,
                written_outside: 0,
                blocked: false,
            },
        );
        Ok(())
    }

    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(mut c) = self.conns.remove(&conn) {
            self.closing -= usize::from(c.closing_since.is_some());
            let _ = self.registry.deregister(&mut c.stream);
            self.by_token.remove(&c.token);
            self.free_tokens.push(c.token);
        }
    }

    /// The transport failed: tell the node (unless it already let go).
    fn transport_closed(&mut self, conn: ConnId, reason: TransportError) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (closing, connecting) = (c.closing_since.is_some(), c.connecting);
        self.drop_conn(conn);
        if closing {
            return;
        }
        let now = self.now();
        let input = if connecting {
            Input::DialFailed { conn, reason }
        } else {
            Input::Closed { conn, reason }
        };
        self.node.handle_input_into(now, input, &mut self.outputs);
    }

    fn on_writable(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.blocked = false;
        if c.connecting {
            match c.stream.take_error() {
                Ok(Some(error)) | Err(error) => {
                    debug!(%conn, %error, "dial failed");
                    self.transport_closed(conn, transport_error(&error));
                    return;
                }
                Ok(None) => {}
            }
            match c.stream.peer_addr() {
                Ok(remote) => {
                    c.connecting = false;
                    let now = self.now();
                    self.node.handle_input_into(
                        now,
                        Input::Connected {
                            conn,
                            remote,
                            direction: Direction::Outbound,
                        },
                        &mut self.outputs,
                    );
                    self.pump();
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(error) => {
                    self.transport_closed(conn, transport_error(&error));
                    return;
                }
            }
        }
        self.flush(conn);
    }

    /// Writes queued bytes until the socket would block.
    fn flush(&mut self, conn: ConnId) {
        enum Outcome {
            Blocked,
            Flushed,
            Failed(TransportError),
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.connecting {
            return;
        }
        let outcome = loop {
            if c.out.is_empty() {
                break Outcome::Flushed;
            }
            let written = if c.out.len() == 1 {
                // One frame (a request, its answer): a plain write, without
                // the list of slices.
                c.stream.write(&c.out[0][c.written..])
            } else {
                // Up to 64 queued frames in one system call.
                let mut slices: SmallVec<[IoSlice<'_>; 64]> = SmallVec::new();
                for (i, bytes) in c.out.iter().take(64).enumerate() {
                    let from = if i == 0 { c.written } else { 0 };
                    slices.push(IoSlice::new(&bytes[from..]));
                }
                c.stream.write_vectored(&slices)
            };
            match written {
                Ok(0) => break Outcome::Failed(transport_error(&ErrorKind::WriteZero.into())),
                Ok(mut n) => {
                    c.backlog -= n;
                    while n > 0 {
                        let Some(front) = c.out.front() else { break };
                        let left = front.len() - c.written;
                        if n >= left {
                            n -= left;
                            c.out.pop_front();
                            c.written = 0;
                        } else {
                            c.written += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Outcome::Blocked,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(error) => break Outcome::Failed(transport_error(&error)),
            }
        };
        match outcome {
            Outcome::Blocked => c.blocked = true,
            Outcome::Failed(reason) => self.transport_closed(conn, reason),
            Outcome::Flushed => {
                if c.closing_since.is_some() {
                    let _ = c.stream.shutdown(std::net::Shutdown::Write);
                    self.drop_conn(conn);
                }
            }
        }
    }

    /// Reads what the socket holds; until it would block if
    /// `to_the_end`, else until a read that does not fill the buffer.
    fn on_readable(&mut self, conn: ConnId, to_the_end: bool) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.connecting {
                return;
            }
            match self.reads.read_from(&mut c.stream) {
                Ok((bytes, _)) if bytes.is_empty() => {
                    self.transport_closed(conn, TransportError::Eof);
                    return;
                }
                Ok((bytes, filled)) => {
                    if c.closing_since.is_some() {
                        continue; // the node has let go: discard
                    }
                    let now = self.now();
                    self.node.handle_input_into(
                        now,
                        Input::Received { conn, bytes },
                        &mut self.outputs,
                    );
                    self.pump();
                    // A read that did not fill the buffer emptied the
                    // socket: what arrives after it raises a new readiness
                    // event (mio's registrations are edge-triggered, and
                    // epoll queues an edge for every arrival, a close
                    // included), so the read that would only return
                    // `WouldBlock` is skipped, as tokio does on epoll.
                    if !filled && !to_the_end {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    self.transport_closed(conn, transport_error(&error));
                    return;
                }
            }
        }
    }

    /// Carries out everything the node asked for.
    fn pump(&mut self) {
        if self.aborted {
            return;
        }
        while let Some(output) = self.outputs.pop_front() {
            match output {
                Output::Dial { conn, addr } => self.dial(conn, addr),
                Output::DialFromListenPort { conn, addr } => self.dial_from_listen_port(conn, addr),
                Output::Send { conn, bytes } => self.send(conn, bytes),
                Output::Close { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if c.closing_since.is_none() {
                            self.closing += 1;
                        }
                        c.closing_since = Some(StdInstant::now());
                        self.closed_since_plan = true;
                        if c.connecting {
                            self.drop_conn(conn);
                        } else {
                            self.flush(conn);
                        }
                    }
                }
                Output::Event(event) => {
                    if let Some(queue) = &mut self.queue {
                        if let Err(size) = queue.push(event) {
                            self.drops.record(size);
                        }
                    } else {
                        let size = event_size(&event);
                        if !self.observer.on_event(event) {
                            self.drops.record(size);
                        }
                    }
                }
            }
        }
    }

    fn dial(&mut self, conn: ConnId, addr: SocketAddr) {
        let dialled = TcpStream::connect(addr);
        self.dialled(conn, addr, dialled);
    }

    /// A hole punch's dial: from the listen port (`spec/relay.md` §7).
    fn dial_from_listen_port(&mut self, conn: ConnId, addr: SocketAddr) {
        let dialled = ringmesh_driver::dial_from(self.local_addr, addr).map(TcpStream::from_std);
        self.dialled(conn, addr, dialled);
    }

    fn dialled(&mut self, conn: ConnId, addr: SocketAddr, dialled: io::Result<TcpStream>) {
        match dialled.and_then(|stream| self.add_conn(conn, stream, true)) {
            Ok(()) => debug!(%conn, %addr, "dialling"),
            Err(e) => {
                debug!(%conn, %addr, error = %e, "dial failed at once");
                let now = self.now();
                let reason = transport_error(&e);
                self.node.handle_input_into(
                    now,
                    Input::DialFailed { conn, reason },
                    &mut self.outputs,
                );
            }
        }
    }

    fn send(&mut self, conn: ConnId, bytes: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match admit_to_backlog(c.backlog, bytes.len(), self.max_backlog) {
            Ok(backlog) => {
                c.backlog = backlog;
                c.out.push_back(bytes);
            }
            Err(backlog) => {
                // A peer that does not read must not make our memory grow.
                warn!(%conn, backlog, cap = self.max_backlog, "peer is not reading: write backlog over the cap, closing the connection");
                self.transport_closed(conn, BACKLOG_OVERFLOW);
                return;
            }
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmesh::{Config, Identity};

    /// An embedded adapter on loopback, with the `Poll` it is registered
    /// with (kept alive by the caller).
    fn an_adapter() -> (mio::Poll, Adapter) {
        let poll = mio::Poll::new().expect("poll");
        let config = AdapterConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            Config::default(),
            Identity::from_secret_bytes([9; 32]),
            9,
        );
        let (adapter, _handle, _events) =
            Adapter::new(poll.registry(), 0, config).expect("adapter");
        (poll, adapter)
    }

    /// Spins until the wall clock is at least a millisecond past `from`.
    fn a_millisecond_after(from: StdInstant) {
        while from.elapsed() < StdDuration::from_millis(1) {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn the_clock_is_read_once_a_turn_and_again_after_it() {
        let (_poll, mut adapter) = an_adapter();

        // Outside a turn, every call reads the clock.
        let outside = adapter.now();
        a_millisecond_after(StdInstant::now());
        assert!(adapter.now() > outside);

        // Within a turn, its first reading serves READING_USES calls...
        adapter.open_turn();
        let first = adapter.now();
        for _ in 1..READING_USES {
            a_millisecond_after(StdInstant::now());
            assert_eq!(adapter.now(), first);
        }
        // ... and the next one reads the clock again.
        let refreshed = adapter.now();
        assert!(refreshed > first);
        assert_eq!(adapter.now(), refreshed);

        // The turn ends with `handle_timeout`, whose reading the next
        // `timeout` measures from, once.
        adapter.handle_timeout();
        assert!(!adapter.turn_open);
        assert!(adapter.sleep_from.get().is_some());
        let _ = adapter.timeout();
        assert!(adapter.sleep_from.get().is_none());
        a_millisecond_after(StdInstant::now());
        assert!(adapter.now() > refreshed);

        // A new turn does not reuse the last one's reading.
        let before = adapter.reading.expect("a reading").at;
        a_millisecond_after(StdInstant::now());
        adapter.open_turn();
        assert!(adapter.now() > before);
    }

    #[test]
    fn timeout_measures_from_the_reading_handle_timeout_began_with() {
        let (_poll, mut adapter) = an_adapter();
        adapter.handle_timeout();
        let deadline = adapter.node.poll_timeout();
        let wait = adapter.timeout();
        match deadline {
            Some(at) => {
                let now = adapter.reading.expect("a reading").at;
                let expected = at.saturating_duration_since(now).as_micros();
                assert_eq!(wait, Some(StdDuration::from_micros(expected)));
            }
            None => assert_eq!(wait, None),
        }
    }
}
