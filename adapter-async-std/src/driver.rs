//! The node loop: the one task that owns the [`Node`], and the [`Driver`]
//! future that runs it with every connection's I/O.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_executor::{Executor, Task};
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_channel::oneshot;
use futures_lite::future;
use ringmesh::{
    Accepted, CloseReason, Command, CommandError, ConnId, Direction, Event, Input, Instant,
    MessagingCommand, MessagingEvent, Node, NodeId, Output, PeersEvent, RequestId,
};
use ringmesh_driver::{BACKLOG_OVERFLOW, Clock, transport_error};
use tracing::{debug, info, warn};

use crate::call::{Call, Error};
use crate::calls::{CallReceiver, CallSender};
use crate::connection;
use crate::connection::{Feed, Feeder, Link, Transport};
use crate::events::EventSender;

/// Transport reports buffered between the connection futures and the node
/// loop. When it is full, readers wait (and so stop reading their sockets):
/// this is what bounds memory when the node cannot keep up.
pub(crate) const TRANSPORT_CAPACITY: usize = 256;

/// Inputs handled in one go before the node loop yields to the connection
/// futures.
const BATCH: usize = 64;

/// Tasks the driver runs in a row before it yields to its own executor
/// (as `Executor::run` does).
const TICKS_PER_YIELD: usize = 200;

/// How long a caller whose request was sent on its own task looks for
/// the answer before it parks ([`Shared::spin_for`]); as the mio
/// adapter's `EVENT_SPIN`.
const ANSWER_SPIN: Duration = Duration::from_micros(50);

/// How many times a handle's task takes the node again for calls and
/// reports that came while it held it ([`Shared::release`]) before it
/// leaves the rest to the loop.
const RELEASE_ROUNDS: usize = 4;

/// Requests that wait without a spin after a spin that found no answer.
const SPIN_BACKOFF: u32 = 32;

/// At shutdown, how long the node loop waits for its connections to report
/// what their sockets already hold (see [`State::take_in_reads`]) before it
/// shuts the node down regardless.
const SYNC_TIMEOUT: Duration = Duration::from_millis(500);

/// The future that runs a node: its state machine, listener, dials and
/// connections. Returned by [`start`](crate::start); spawn it on any
/// executor (or `block_on` it). It completes once the node has shut down.
///
/// Everything runs inside this one future: the connections' I/O futures run
/// on a small executor of its own (`async-executor`), polled whenever the
/// driver is. It needs no spawner and assumes no runtime; the sockets and
/// timers are `async-io`'s, whose reactor works under async-std, smol or
/// plain `futures_lite::future::block_on`.
///
/// Dropping it stops the node abruptly: sockets close without a `Goodbye`.
/// Prefer [`NodeHandle::shutdown`](crate::NodeHandle::shutdown).
#[must_use = "the node does nothing until its driver is spawned or awaited"]
pub struct Driver {
    future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
}

impl Driver {
    pub(crate) fn new(node_loop: NodeLoop) -> Self {
        Driver {
            future: Box::pin(async move {
                let executor = Arc::clone(&node_loop.shared.executor);
                // The executor's tasks run beside the node loop, one tick
                // at a time from its shared queue (where a waiting caller's
                // `try_tick` also takes them): `Executor::run` would keep
                // a runner with a local queue of its own, searched and
                // stolen into on every task, for nothing with one runner.
                let tasks = async {
                    loop {
                        for _ in 0..TICKS_PER_YIELD {
                            executor.tick().await;
                        }
                        future::yield_now().await;
                    }
                };
                future::or(node_loop.run(), tasks).await;
            }),
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// A `connect`/`connect_any` call waiting for one of its dials' handshake.
struct ConnectWaiter {
    /// The raw id of the first dial; the others follow consecutively
    /// ([`Accepted::Racing`]).
    first: u64,
    count: u64,
    /// Dials not ended yet.
    open: u64,
    reply: oneshot::Sender<Result<NodeId, Error>>,
}

impl ConnectWaiter {
    fn covers(&self, conn: ConnId) -> bool {
        conn.as_u64().wrapping_sub(self.first) < self.count
    }
}

/// What woke the node loop.
enum Wake {
    /// Calls are queued or a handle asked for a wake-up (`true`), or every
    /// handle is gone (`false`).
    Call(bool),
    /// Transport reports are queued (the queue's senders never all go
    /// while the loop runs: the state holds one).
    Transport,
    Timer,
}

/// What the node loop shares with the handles: the node's state while the
/// loop runs, and the call queue.
///
/// The loop holds the state's lock for a turn and never while it waits. A
/// handle that finds the lock free (the loop idle) serves its call on its
/// own task ([`Shared::try_serve`]): the queue first, then its call, and
/// writes what the node sent before it returns. That saves the hand-off
/// to the loop's task and back, a round trip's biggest cost (as the mio
/// adapter does on the caller's thread).
pub(crate) struct Shared {
    /// `None` until the driver first runs and once it has stopped (or was
    /// dropped): calls then go through the queue.
    state: Mutex<Option<State>>,
    calls: CallReceiver<Call>,
    /// What the connections, dials and listener report. Like the calls,
    /// taken only under the state's lock, so that whoever holds it (the
    /// loop or a waiting caller, [`Shared::help`]) sees a connection's
    /// reads in order.
    transport: CallReceiver<Transport>,
    /// Runs the connections, dials and listener: polled by the driver, and
    /// by a caller waiting for its answer.
    executor: Arc<Executor<'static>>,
    /// Requests left to go without a spin after one that spun in vain
    /// (see [`Shared::spin_for`]).
    spin_skip: AtomicU32,
}

impl Shared {
    /// The shared half and the transport queue's sender (for the loop).
    pub(crate) fn new(calls: CallReceiver<Call>) -> (Arc<Shared>, CallSender<Transport>) {
        let (transport_tx, transport) = crate::calls::channel(TRANSPORT_CAPACITY);
        let shared = Arc::new(Shared {
            state: Mutex::new(None),
            calls,
            transport,
            executor: Arc::new(Executor::new()),
            spin_skip: AtomicU32::new(0),
        });
        (shared, transport_tx)
    }

    /// Works for the node while a caller waits for its answer: runs the
    /// connections' I/O (the driver's executor takes helpers) and, when
    /// the loop is idle, takes in what they report, as a loop turn would.
    /// A caller woken by its socket's readiness then reads it, feeds the
    /// node and gets its answer on its own task, without handing over to
    /// the driver's task and back. Never completes; the caller drops it
    /// once its answer is there.
    pub(crate) async fn help(&self, calls: &CallSender<Call>) {
        loop {
            self.executor.tick().await;
            self.try_turn(calls);
        }
    }

    /// Waits for `answer` without parking, for up to [`ANSWER_SPIN`]: runs
    /// the connections' ready I/O futures and, the loop being idle, takes
    /// in what they report (as [`Shared::help`] does), yielding the CPU
    /// between tries. `None` if no answer came (the caller then waits as
    /// usual).
    ///
    /// A reply from a nearby peer comes within a few tens of microseconds;
    /// parking for it costs the caller a reactor turn (async-io re-arms its
    /// timer and notifier on every `epoll_wait`), a futex wake and the
    /// executor's wakers on both sides. A spin that finds nothing is
    /// wasted, though (a peer far away, or one run by the caller's own
    /// single-threaded runtime, which cannot answer while the caller
    /// spins): after one, the next [`SPIN_BACKOFF`] requests wait without
    /// spinning.
    pub(crate) fn spin_for<T>(
        &self,
        answer: &mut oneshot::Receiver<T>,
        calls: &CallSender<Call>,
    ) -> Option<Result<T, oneshot::Canceled>> {
        let skip = self.spin_skip.load(Ordering::Relaxed);
        if skip > 0 {
            self.spin_skip.store(skip - 1, Ordering::Relaxed);
            return None;
        }
        // Taken after the first look: on one CPU the answer is usually
        // there by then (the caller was preempted in its write while the
        // peer answered), and the clock is not free in a VM.
        let mut spin_until = None;
        loop {
            match answer.try_recv() {
                Ok(Some(value)) => return Some(Ok(value)),
                Ok(None) => {}
                Err(canceled) => return Some(Err(canceled)),
            }
            let deadline =
                *spin_until.get_or_insert_with(|| std::time::Instant::now() + ANSWER_SPIN);
            // A bounded number: a connection that always has data must not
            // keep this caller from looking at its answer.
            for _ in 0..BATCH {
                if !self.executor.try_tick() {
                    break;
                }
            }
            self.try_turn(calls);
            // An answer that came meanwhile is there at once for the
            // caller's wait.
            if std::time::Instant::now() >= deadline {
                self.spin_skip.store(SPIN_BACKOFF, Ordering::Relaxed);
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// Takes in queued transport reports if the loop is idle; see
    /// [`Shared::help`].
    fn try_turn(&self, calls: &CallSender<Call>) {
        let Ok(mut guard) = self.state.try_lock() else {
            return;
        };
        let Some(state) = guard.as_mut() else {
            return;
        };
        let mut wake = false;
        if !state.stopping {
            let mut took = false;
            for _ in 0..BATCH {
                match self.transport.try_recv() {
                    Some(report) => {
                        state.on_transport(report);
                        took = true;
                    }
                    None => break,
                }
            }
            if took {
                state.end_turn();
                wake = state.stopping || state.sooner_than_armed();
            }
        }
        self.release(guard, wake, calls);
    }

    /// Lets go of the node after a handle's task held it. The loop does
    /// not wait for the lock when woken for queued calls or reports (it
    /// leaves them to the holder, see `NodeLoop::run`): what came in while
    /// the holder was done with the queues is taken here, the node held
    /// again for it, unless another task holds it by then (which then
    /// sees to it). The loop is woken when `wake` (it must act sooner than
    /// it planned), when the node is stopping, or when the queues still
    /// hold something after a few rounds.
    fn release<'a, T>(
        &'a self,
        mut guard: MutexGuard<'a, Option<State>>,
        mut wake: bool,
        calls: &CallSender<T>,
    ) {
        let mut rounds = 0;
        loop {
            drop(guard);
            if self.calls.is_empty() && self.transport.is_empty() {
                break;
            }
            rounds += 1;
            if rounds > RELEASE_ROUNDS {
                wake = true;
                break;
            }
            guard = match self.state.try_lock() {
                Ok(guard) => guard,
                // Held again: the holder sees to it.
                Err(std::sync::TryLockError::WouldBlock) => break,
                Err(std::sync::TryLockError::Poisoned(_)) => return,
            };
            let Some(state) = guard.as_mut() else {
                return;
            };
            if state.stopping {
                // The loop takes it from here.
                drop(guard);
                calls.wake();
                return;
            }
            for _ in 0..BATCH {
                // A call may stop the node; the rest are the loop's then.
                if state.stopping {
                    break;
                }
                match self.calls.try_recv() {
                    Some(call) => state.on_call(call),
                    None => break,
                }
            }
            for _ in 0..BATCH {
                match self.transport.try_recv() {
                    Some(report) => state.on_transport(report),
                    None => break,
                }
            }
            state.end_turn();
            if state.stopping {
                // The loop takes it from here.
                drop(guard);
                calls.wake();
                return;
            }
            wake |= state.sooner_than_armed();
        }
        // The lock is free (or another task's) here, so a loop woken now
        // can take it.
        if wake {
            calls.wake();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<State>> {
        // Poisoned only if the node panicked on a handle's task, which the
        // loop cannot recover from either.
        self.state
            .lock()
            .unwrap_or_else(|_| panic!("the node panicked on a handle's task"))
    }

    /// Serves `call` on the caller's task if the node loop is idle (and
    /// running, and not stopping); gives it back for the queue otherwise.
    ///
    /// Calls queued before it are served first, in order. What the node
    /// sent is written (as far as the sockets take it) and its events are
    /// emitted before this returns, as at the end of a loop turn. The loop
    /// is woken when it must act sooner than it planned: an earlier node
    /// deadline than its armed timer, or a shutdown taken from the queue.
    pub(crate) fn try_serve(&self, call: Call, calls: &CallSender<Call>) -> Result<(), Call> {
        let Ok(mut guard) = self.state.try_lock() else {
            return Err(call);
        };
        let Some(state) = guard.as_mut() else {
            return Err(call);
        };
        while !state.stopping
            && let Some(queued) = self.calls.try_recv()
        {
            state.on_call(queued);
        }
        let served = if state.stopping {
            Err(call)
        } else {
            state.on_call(call);
            Ok(())
        };
        state.end_turn();
        let wake = state.stopping || state.sooner_than_armed();
        self.release(guard, wake, calls);
        served
    }

    /// As [`Shared::try_serve`] for a bare command: the node's answer comes
    /// back from this call, with no oneshot channel to make and wait on
    /// (a `respond` on the round trip's path). Gives the command back if
    /// the node is held, stopping or stopped.
    pub(crate) fn try_command(
        &self,
        command: Command,
        calls: &CallSender<Call>,
    ) -> Result<Result<Accepted, CommandError>, Command> {
        let Ok(mut guard) = self.state.try_lock() else {
            return Err(command);
        };
        let Some(state) = guard.as_mut() else {
            return Err(command);
        };
        while !state.stopping
            && let Some(queued) = self.calls.try_recv()
        {
            state.on_call(queued);
        }
        let served = if state.stopping {
            Err(command)
        } else {
            let result = state.node.command(state.clock.now(), command);
            state.drain();
            Ok(result)
        };
        state.end_turn();
        let wake = state.stopping || state.sooner_than_armed();
        self.release(guard, wake, calls);
        served
    }
}

impl Feeder for Shared {
    /// Feeds what a connection's reader just read to the node on the
    /// reader's task, if the node is free (as [`Shared::try_turn`] does for
    /// a waiting caller).
    ///
    /// That saves the hop through the queue: the node loop's wake-up, a
    /// second poll of the driver and a pass of the loop, for every read.
    /// What the queue holds goes first, so the node sees the connection's
    /// reads in order. `wake` wakes the loop when it must act sooner than
    /// it planned (the transport queue's wake-up does: the loop takes calls
    /// on any wake-up).
    fn try_feed(&self, conn: ConnId, bytes: Bytes, wake: &CallSender<Transport>) -> Feed {
        let mut guard = match self.state.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => return Feed::Busy(bytes),
            Err(std::sync::TryLockError::Poisoned(_)) => return Feed::ToLoop(bytes),
        };
        let Some(state) = guard.as_mut() else {
            return Feed::ToLoop(bytes);
        };
        if state.stopping {
            return Feed::ToLoop(bytes);
        }
        // Bounded by the queue's capacity.
        while let Some(report) = self.transport.try_recv() {
            state.on_transport(report);
        }
        state.on_transport(Transport::Received { conn, bytes });
        state.end_turn();
        let sooner = state.stopping || state.sooner_than_armed();
        self.release(guard, sooner, wake);
        Feed::Fed
    }

    /// After a reader queued a read without waking the node loop
    /// ([`Feed::Busy`]): takes the queue in if the node is free by now.
    /// If it is still held, its holder takes the queue in as it lets go
    /// (a handle's task in [`Shared::release`], the loop on its next
    /// wait, which looks at the queue first): the read was queued before
    /// this look found the node held, so before that holder's own look.
    /// The loop is woken if the node stopped taking reads from here.
    fn take_queued(&self, wake: &CallSender<Transport>) {
        let mut guard = match self.state.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => return,
            Err(std::sync::TryLockError::Poisoned(_)) => {
                wake.wake();
                return;
            }
        };
        let Some(state) = guard.as_mut().filter(|state| !state.stopping) else {
            drop(guard);
            wake.wake();
            return;
        };
        while let Some(report) = self.transport.try_recv() {
            state.on_transport(report);
        }
        state.end_turn();
        let sooner = state.stopping || state.sooner_than_armed();
        self.release(guard, sooner, wake);
    }
}

/// Empties [`Shared::state`] when the node loop's future ends or is
/// dropped, so that handles do not keep its sockets open.
struct ClearOnDrop<'a>(&'a Shared);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        let state = match self.0.state.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(state);
    }
}

/// Everything the node task owns.
pub(crate) struct NodeLoop {
    pub(crate) node: Node,
    pub(crate) clock: Clock,
    pub(crate) listener: Async<TcpListener>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    pub(crate) transport_tx: CallSender<Transport>,
    pub(crate) events: EventSender,
    pub(crate) max_backlog_bytes: usize,
}

impl NodeLoop {
    async fn run(self) {
        let executor = Arc::clone(&self.shared.executor);
        let transport_tx = self.transport_tx;
        let acceptor = executor.spawn(connection::accept_loop(self.listener, transport_tx.clone()));
        let mut state = State {
            node: self.node,
            clock: self.clock,
            executor,
            shared: {
                let weak: Weak<Shared> = Arc::downgrade(&self.shared);
                weak
            },
            local_addr: self.local_addr,
            events: self.events,
            max_backlog_bytes: self.max_backlog_bytes,
            transport_tx,
            links: HashMap::new(),
            dialing: HashMap::new(),
            closing: Vec::new(),
            acceptor: Some(acceptor),
            next_inbound: 0,
            requests: HashMap::new(),
            connects: Vec::new(),
            overflowed: Vec::new(),
            shutdown_replies: Vec::new(),
            stopping: false,
            dirty: Vec::new(),
            turn_events: Vec::new(),
            armed: None,
        };
        info!(node = %state.node.node_id(), listen = %state.local_addr, "ringmesh node listening");
        state.drain();
        state.end_turn();
        let shared = &*self.shared;
        let calls = &shared.calls;
        let transport_rx = &shared.transport;
        *shared.lock() = Some(state);
        let clear = ClearOnDrop(shared);
        let mut timer = Timer::never();
        if let Some(state) = shared.lock().as_mut() {
            state.rearm(&mut timer);
        }
        // The last wake-up found a handle's task holding the node: wait
        // for a fresh wake-up, not for the queues to be non-empty (they
        // may still be, until the holder takes them or lets go).
        let mut deferred = false;
        // The last wait found work queued without waiting: the loop lets
        // the connections' futures run before it takes more (see below).
        let mut busy = false;
        loop {
            if busy {
                future::yield_now().await;
            }
            // Polled in place, in this order, on every pass: nothing is
            // built anew for a wait (the wake-ups are a flag and a waker
            // each, the timer is kept), so a pass that waits costs no
            // allocation and no listener.
            let mut waited = false;
            let wake = future::poll_fn(|cx| {
                let calls = if deferred {
                    calls.poll_nudged(cx)
                } else {
                    calls.poll_ready(cx)
                };
                if let Poll::Ready(more) = calls {
                    return Poll::Ready(Wake::Call(more));
                }
                let transport = if deferred {
                    transport_rx.poll_nudged(cx)
                } else {
                    transport_rx.poll_ready(cx)
                };
                if transport.is_ready() {
                    return Poll::Ready(Wake::Transport);
                }
                if Pin::new(&mut timer).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                waited = true;
                Poll::Pending
            })
            .await;
            // Work that was there at once: after this pass the loop yields,
            // so that a stream of calls (or reads) cannot keep the
            // connections' futures from running. A pass that had to wait
            // goes straight back to waiting, which yields anyway when
            // nothing more is queued.
            busy = !waited;
            {
                let mut guard = match wake {
                    // A handle's task holds the node (serving a call, or
                    // taking in reads while it waits for an answer): it
                    // takes what is queued, and wakes the loop again if
                    // anything is left when it lets go (`Shared::release`).
                    // Waiting for the lock here would only put this task
                    // to sleep behind it.
                    Wake::Call(true) | Wake::Transport => match shared.state.try_lock() {
                        Ok(guard) => guard,
                        Err(std::sync::TryLockError::WouldBlock) => {
                            deferred = true;
                            continue;
                        }
                        Err(std::sync::TryLockError::Poisoned(_)) => shared.lock(),
                    },
                    Wake::Call(false) | Wake::Timer => shared.lock(),
                };
                deferred = false;
                let Some(state) = guard.as_mut() else { return };
                match wake {
                    // Every handle is gone: nobody can command the node again.
                    Wake::Call(false) => state.begin_shutdown(),
                    // Taken below.
                    Wake::Call(true) => {}
                    // Taken below.
                    Wake::Transport => {}
                    Wake::Timer => {
                        // A fired timer does not fire again: re-arm below.
                        state.armed = None;
                        state.timeout();
                    }
                }
                // Take what else is ready in one go (calls and reads alike), so
                // that a burst of sends leaves in a few system calls, then let
                // the connections run.
                for _ in 0..BATCH {
                    if state.stopping {
                        break;
                    }
                    match calls.try_recv() {
                        Some(call) => state.on_call(call),
                        None => break,
                    }
                }
                for _ in 0..BATCH {
                    match transport_rx.try_recv() {
                        Some(report) => state.on_transport(report),
                        None => break,
                    }
                }
                // A busy loop must not starve the deadline.
                if state
                    .node
                    .poll_timeout()
                    .is_some_and(|at| at <= state.clock.now())
                {
                    state.timeout();
                }
                state.end_turn();
                if state.stopping {
                    break;
                }
                state.rearm(&mut timer);
            }
        }
        // From here on the loop keeps the state to itself: handles queue
        // their calls (which it no longer takes).
        let Some(mut state) = shared.lock().take() else {
            return;
        };
        drop(clear);
        // Before the node says goodbye: what peers have sent it already is
        // taken in, so that a handshake whose last message is waiting in a
        // socket completes and gets its `Goodbye` too.
        state.take_in_reads(transport_rx).await;
        state.shut_down_node();
        state.finish(transport_rx).await;
        // Calls still queued hold their reply channels, and the handles keep
        // the queue alive: drop them so that their callers see `Stopped`.
        calls.close();
        while calls.try_recv().is_some() {}
    }
}

/// The node task's state while it runs.
struct State {
    node: Node,
    clock: Clock,
    executor: Arc<Executor<'static>>,
    /// Given to the connections' readers, which feed the node on their
    /// own task when it is free ([`Feeder::try_feed`]). Weak: the readers
    /// run on the executor that `Shared` holds.
    shared: Weak<dyn Feeder>,
    local_addr: SocketAddr,
    events: EventSender,
    max_backlog_bytes: usize,
    transport_tx: CallSender<Transport>,
    /// Open connections.
    links: HashMap<ConnId, Link>,
    /// Dials in progress; dropping one abandons it.
    dialing: HashMap<ConnId, Task<()>>,
    /// Connections the node closed that are still flushing.
    closing: Vec<Task<()>>,
    /// The listener's accept loop; dropped at shutdown.
    acceptor: Option<Task<()>>,
    next_inbound: u64,
    /// `request` calls waiting for their response.
    requests: HashMap<RequestId, oneshot::Sender<Result<Bytes, Error>>>,
    /// `connect` calls waiting for a handshake.
    connects: Vec<ConnectWaiter>,
    /// Connections cut for exceeding the write backlog, to report to the
    /// node once the current output is handled.
    overflowed: Vec<ConnId>,
    shutdown_replies: Vec<oneshot::Sender<()>>,
    stopping: bool,
    /// Connections sent on during this turn, to flush at its end.
    dirty: Vec<ConnId>,
    /// Events of this turn, emitted once its sends are flushed.
    turn_events: Vec<Event>,
    /// The node deadline the loop's timer is set for (`None`: none).
    armed: Option<Instant>,
}

impl State {
    /// Sets the loop's `timer` for the node's next deadline, if that is
    /// not what it is set for already.
    fn rearm(&mut self, timer: &mut Timer) {
        let deadline = self.node.poll_timeout();
        if deadline != self.armed {
            *timer = match deadline.and_then(|at| self.clock.to_std(at)) {
                Some(at) => Timer::at(at),
                None => Timer::never(),
            };
            self.armed = deadline;
        }
    }

    /// Whether the node wants the loop sooner than its timer is set for
    /// (after a call served on a handle's task).
    fn sooner_than_armed(&self) -> bool {
        match (self.node.poll_timeout(), self.armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn timeout(&mut self) {
        self.node.handle_input(self.clock.now(), Input::Timeout);
        self.drain();
    }

    fn input(&mut self, input: Input) {
        self.node.handle_input(self.clock.now(), input);
        self.drain();
    }

    fn on_transport(&mut self, report: Transport) {
        match report {
            Transport::Accepted { stream, remote } => {
                if self.stopping {
                    return;
                }
                let conn = ConnId::inbound(self.next_inbound);
                self.next_inbound += 1;
                debug!(%conn, %remote, "accepted connection");
                let link = Link::open(
                    &self.executor,
                    conn,
                    stream,
                    remote,
                    self.transport_tx.clone(),
                    self.shared.clone(),
                );
                self.links.insert(conn, link);
                self.input(Input::Connected {
                    conn,
                    remote,
                    direction: Direction::Inbound,
                });
            }
            Transport::Dialed { conn, addr, result } => {
                // Not there: the node closed the dial meanwhile.
                if self.dialing.remove(&conn).is_none() {
                    return;
                }
                match result {
                    Ok(stream) => {
                        debug!(%conn, %addr, "dialled");
                        let link = Link::open(
                            &self.executor,
                            conn,
                            stream,
                            addr,
                            self.transport_tx.clone(),
                            self.shared.clone(),
                        );
                        self.links.insert(conn, link);
                        self.input(Input::Connected {
                            conn,
                            remote: addr,
                            direction: Direction::Outbound,
                        });
                    }
                    Err(error) => {
                        info!(%conn, %addr, %error, "dial failed");
                        let reason = transport_error(&error);
                        self.input(Input::DialFailed { conn, reason });
                    }
                }
            }
            Transport::Received { conn, bytes } => {
                // Reads after the node closed a connection are ignored.
                if self.links.contains_key(&conn) {
                    self.input(Input::Received { conn, bytes });
                }
            }
            Transport::Closed { conn, reason } => {
                if let Some(link) = self.links.remove(&conn) {
                    debug!(%conn, remote = %link.remote, ?reason, "connection ended");
                    self.input(Input::Closed { conn, reason });
                }
            }
            // Only `take_in_reads` waits for these; a late one means
            // nothing.
            Transport::Synced { .. } => {}
        }
    }

    fn on_call(&mut self, call: Call) {
        let now = self.clock.now();
        match call {
            Call::Command { command, reply } => {
                let result = self.node.command(now, command);
                let _ = reply.send(result);
            }
            Call::Post(command) => {
                if let Err(error) = self.node.command(now, command) {
                    debug!(%error, "posted command refused");
                }
            }
            Call::Connect { command, reply } => match self.node.command(now, command) {
                Ok(Accepted::Dialing(conn)) => self.connects.push(ConnectWaiter {
                    first: conn.as_u64(),
                    count: 1,
                    open: 1,
                    reply,
                }),
                Ok(Accepted::Racing { first, count }) => self.connects.push(ConnectWaiter {
                    first: first.as_u64(),
                    count: count as u64,
                    open: count as u64,
                    reply,
                }),
                // Connect commands always start dials; were one not to,
                // there would be nothing to wait for.
                Ok(_) => {
                    let _ = reply.send(Err(Error::ConnectFailed(CloseReason::Local)));
                }
                Err(error) => {
                    let _ = reply.send(Err(Error::Command(error)));
                }
            },
            Call::Request {
                to,
                payload,
                timeout,
                reply,
            } => {
                let command = MessagingCommand::Request {
                    to,
                    payload,
                    timeout,
                };
                match self.node.command(now, command) {
                    // Registered before the outputs are drained, so even an
                    // immediate answer finds its caller.
                    Ok(Accepted::Request(id)) => {
                        self.requests.insert(id, reply);
                    }
                    // `Request` is always answered with its id; were it
                    // not, no answer could be matched to this call.
                    Ok(_) => {
                        let _ = reply.send(Err(Error::Stopped));
                    }
                    Err(error) => {
                        let _ = reply.send(Err(Error::Command(error)));
                    }
                }
            }
            // Outputs are drained after every input, so the node has
            // nothing pending: `inspect` sees it as the events left it.
            Call::Inspect(inspection) => inspection(&self.node),
            Call::Shutdown(reply) => {
                self.shutdown_replies.push(reply);
                self.begin_shutdown();
            }
        }
        self.drain();
    }

    /// Carries out everything the node asked for, until it asks nothing.
    fn drain(&mut self) {
        loop {
            while let Some(output) = self.node.poll_output() {
                match output {
                    Output::Dial { conn, addr } => {
                        let dial = connection::dial(conn, addr, self.transport_tx.clone());
                        self.dialing.insert(conn, self.executor.spawn(dial));
                    }
                    Output::DialFromListenPort { conn, addr } => {
                        let local = self.local_addr;
                        let tx = self.transport_tx.clone();
                        let dial = connection::dial_from(conn, local, addr, tx);
                        self.dialing.insert(conn, self.executor.spawn(dial));
                    }
                    Output::Send { conn, bytes } => self.send(conn, bytes),
                    Output::Close { conn } => self.close(conn),
                    Output::Event(event) => self.turn_events.push(event),
                }
            }
            let Some(conn) = self.overflowed.pop() else {
                return;
            };
            let now = self.clock.now();
            self.node.handle_input(
                now,
                Input::Closed {
                    conn,
                    reason: BACKLOG_OVERFLOW,
                },
            );
        }
    }

    /// Ends a turn: writes what it sent, each connection once, then hands
    /// its events to the application (so that what the node sent is on the
    /// wire, as far as the sockets took it, before the application hears of
    /// what followed).
    fn end_turn(&mut self) {
        for conn in self.dirty.drain(..) {
            if let Some(link) = self.links.get_mut(&conn) {
                link.flush();
            }
        }
        let mut events = std::mem::take(&mut self.turn_events);
        for event in events.drain(..) {
            self.on_event(event);
        }
        // Keep the allocation; `on_event` adds nothing to it.
        if self.turn_events.is_empty() {
            self.turn_events = events;
        }
    }

    fn send(&mut self, conn: ConnId, bytes: Bytes) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        match link.send(bytes, self.max_backlog_bytes) {
            Ok(true) => self.dirty.push(conn),
            Ok(false) => {}
            Err(backlog) => {
                warn!(
                    %conn,
                    remote = %link.remote,
                    backlog,
                    cap = self.max_backlog_bytes,
                    "peer is not reading: write backlog over the cap, closing the connection"
                );
                // Dropping the link drops its I/O future: the socket closes now,
                // and what was queued for it is freed.
                self.links.remove(&conn);
                self.overflowed.push(conn);
            }
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(link) = self.links.remove(&conn) {
            debug!(%conn, remote = %link.remote, backlog = link.backlog(), "closing connection");
            self.closing.retain(|task| !task.is_finished());
            self.closing.push(link.close(&self.executor));
        } else {
            // A dial in progress is abandoned by dropping it.
            self.dialing.remove(&conn);
        }
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::Messaging(MessagingEvent::Response { id, payload, .. }) => {
                if let Some(reply) = self.requests.remove(id) {
                    let _ = reply.send(Ok(payload.clone()));
                    return;
                }
            }
            Event::Messaging(MessagingEvent::RequestFailed { id, reason, .. }) => {
                if let Some(reply) = self.requests.remove(id) {
                    let _ = reply.send(Err(Error::RequestFailed(*reason)));
                    return;
                }
            }
            Event::Peers(PeersEvent::Established { conn, peer, .. }) => {
                if let Some(i) = self.connects.iter().position(|w| w.covers(*conn)) {
                    let waiter = self.connects.swap_remove(i);
                    let _ = waiter.reply.send(Ok(*peer));
                }
            }
            Event::Peers(PeersEvent::Closed { conn, reason, .. }) => {
                if let Some(i) = self.connects.iter().position(|w| w.covers(*conn)) {
                    let waiter = &mut self.connects[i];
                    waiter.open -= 1;
                    if waiter.open == 0 {
                        let waiter = self.connects.swap_remove(i);
                        let _ = waiter.reply.send(Err(Error::ConnectFailed(reason.clone())));
                    }
                }
            }
            _ => {}
        }
        self.events.emit(event);
    }

    /// Stops taking calls and connections; the node loop then takes in
    /// what the open connections already hold and shuts the node down.
    fn begin_shutdown(&mut self) {
        if self.stopping {
            return;
        }
        info!(node = %self.node.node_id(), connections = self.links.len(), "shutting down");
        self.stopping = true;
        self.acceptor = None;
    }

    /// Has every open connection read what its socket holds now, and feeds
    /// it to the node, before the node shuts down.
    ///
    /// A reader reads when the reactor reports its socket readable, and the
    /// node loop may take a `shutdown` call before that. A dialler reports
    /// its peer up as it sends the handshake's last message; had this node
    /// not read that message yet, its side of the handshake would still be
    /// open, and a connection without a session cannot carry a `Goodbye`:
    /// the peer would see a bare EOF instead of `Goodbye(Shutdown)`.
    async fn take_in_reads(&mut self, transport_rx: &CallReceiver<Transport>) {
        let mut pending: HashSet<ConnId> = self
            .links
            .iter()
            .filter(|(_, link)| link.sync())
            .map(|(conn, _)| *conn)
            .collect();
        let take = async {
            while !pending.is_empty() {
                let Some(report) = transport_rx.recv().await else {
                    return;
                };
                if let Transport::Synced { conn } = report {
                    pending.remove(&conn);
                } else {
                    self.on_transport(report);
                    self.end_turn();
                }
                // Connections that ended or were closed meanwhile report
                // nothing more.
                let links = &self.links;
                pending.retain(|conn| links.contains_key(conn));
            }
        };
        future::or(take, async {
            Timer::after(SYNC_TIMEOUT).await;
        })
        .await;
    }

    /// Shuts the node down: it says `Goodbye` on every connection and
    /// closes them all.
    fn shut_down_node(&mut self) {
        let now = self.clock.now();
        // `Shutdown` is never refused.
        let _ = self.node.command(now, Command::Shutdown);
        self.drain();
        self.end_turn();
    }

    /// After shutdown: waits for the closed connections to flush, then
    /// answers the `shutdown` calls.
    async fn finish(mut self, transport_rx: &CallReceiver<Transport>) {
        // The node closed every connection and dial; what is left is their
        // flushing, each bounded by `CLOSE_TIMEOUT`.
        self.dialing.clear();
        self.links.clear();
        let closing = std::mem::take(&mut self.closing);
        let flushed = async {
            for task in closing {
                task.await;
            }
        };
        // Reads still arriving on closing connections mean nothing now.
        let discard = async { while transport_rx.recv().await.is_some() {} };
        future::or(flushed, discard).await;
        info!(node = %self.node.node_id(), "stopped");
        for reply in self.shutdown_replies.drain(..) {
            let _ = reply.send(());
        }
    }
}
