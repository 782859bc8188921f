//! [`Observer`]: where an adapter's events go, on the thread that runs the turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{
    Receiver, RecvError, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::time::{Duration, Instant};

use ringmesh::{Event, Node};
use ringmesh_driver::{QueuedBytes, event_size};

use crate::{Driver, Drove};

/// How long [`EventReceiver::recv`] and [`EventReceiver::recv_timeout`] of
/// an embedded adapter ([`Adapter::new`](crate::Adapter::new); a
/// [`spawn`](crate::spawn)ed one's run the loop instead) look for an
/// event, yielding the CPU between looks, before they sleep:
/// a few round trips over loopback, so that a thread waiting for a reply
/// usually takes it without being put to sleep and woken again (a futex
/// call on each side, and on a virtual machine an interrupt between
/// CPUs). The price is at most this much CPU time per wait that finds
/// nothing.
pub const EVENT_SPIN: Duration = Duration::from_micros(50);

/// Receives an adapter's events on the adapter's own thread, and looks at
/// the node after every turn of its loop. Give one to [`spawn_with`]
/// (or [`Adapter::with_observer`]); [`spawn`] and [`Adapter::new`] use a
/// bounded channel instead.
///
/// For an application that waits on one channel for the node's events and
/// for inputs of its own (a console, signals), or that follows state
/// without events of its own (the ring's successors change as the ring
/// stabilizes): what an observer sends from [`after_turn`](Observer::after_turn)
/// comes after the events of that turn, in the same order as it happened.
///
/// Everything here runs on the thread that runs the turn, between inputs:
/// the adapter's, or, for [`spawn_with`], a thread whose
/// [`Handle::submit`] or [`Handle::command`] found the loop asleep and
/// served the command itself (one observer call at a time either way).
/// **It must not block** (the node's sockets and timers wait meanwhile),
/// and it must not make the [`Handle`] calls that wait for an answer (they
/// would wait for this very turn; they panic instead).
///
/// [`Handle::submit`]: crate::Handle::submit
/// [`Handle::command`]: crate::Handle::command
///
/// [`spawn_with`]: crate::spawn_with
/// [`spawn`]: crate::spawn
/// [`Adapter::with_observer`]: crate::Adapter::with_observer
/// [`Adapter::new`]: crate::Adapter::new
/// [`Handle`]: crate::Handle
pub trait Observer: Send + 'static {
    /// Takes one event; `false` if it has no room for it. The adapter then
    /// drops the event and counts it ([`Adapter::dropped_events`],
    /// [`Handle::dropped_events`](crate::Handle::dropped_events)), with a
    /// warning in the log (at most one per
    /// [`DROP_LOG_INTERVAL`](ringmesh_driver::DROP_LOG_INTERVAL), with the
    /// count). An observer that buffers events should bound them by bytes
    /// as well as by count ([`event_size`](ringmesh_driver::event_size)):
    /// payloads go up to `max_frame_len`.
    ///
    /// [`Adapter::dropped_events`]: crate::Adapter::dropped_events
    fn on_event(&mut self, event: Event) -> bool;

    /// Called at the end of every turn (every
    /// [`Adapter::handle_timeout`](crate::Adapter::handle_timeout)), after
    /// the turn's events went to [`on_event`](Observer::on_event), with the
    /// node as the turn left it. The node changes only inside a turn, so
    /// what this sees is never older than the last event. Default: nothing.
    fn after_turn(&mut self, node: &Node) {
        let _ = node;
    }

    /// Called once when the loop of [`spawn_with`](crate::spawn_with) has
    /// ended (shut down, aborted, or failed), after the [`Handle`](crate::Handle)
    /// stopped taking requests: its calls return at once from then on, so
    /// this may block (e.g. to hand over a last message). Not called for an
    /// embedded adapter, whose loop is the caller's. Default: nothing.
    fn stopped(&mut self) {}
}

/// The observer of [`spawn`](crate::spawn) and
/// [`Adapter::new`](crate::Adapter::new): a channel bounded by count and
/// by bytes.
pub(crate) struct ChannelObserver {
    sender: SyncSender<Event>,
    bytes: QueuedBytes,
}

impl ChannelObserver {
    /// The observer and its receiving end: at most `capacity` events and
    /// `capacity_bytes` bytes of them; `dropped` is the adapter's count.
    pub(crate) fn channel(
        capacity: usize,
        capacity_bytes: usize,
        dropped: Arc<AtomicU64>,
    ) -> (ChannelObserver, EventReceiver) {
        let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
        let bytes = QueuedBytes::new(capacity_bytes);
        let observer = ChannelObserver {
            sender,
            bytes: bytes.clone(),
        };
        let receiver = EventReceiver {
            receiver,
            bytes,
            dropped,
            driver: None,
        };
        (observer, receiver)
    }
}

impl Observer for ChannelObserver {
    fn on_event(&mut self, event: Event) -> bool {
        let size = event_size(&event);
        if !self.bytes.try_admit(size) {
            return false;
        }
        match self.sender.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.bytes.release(size);
                false
            }
            // Nobody listens: nothing to count.
            Err(TrySendError::Disconnected(_)) => {
                self.bytes.release(size);
                true
            }
        }
    }
}

/// The node's events, as [`spawn`](crate::spawn) and
/// [`Adapter::new`](crate::Adapter::new) hand them out: a channel bounded
/// by count ([`AdapterConfig::event_capacity`](crate::AdapterConfig::event_capacity))
/// and by bytes ([`AdapterConfig::event_capacity_bytes`](crate::AdapterConfig::event_capacity_bytes)).
/// The node never waits for the application: when either bound is reached,
/// new events are dropped and counted ([`EventReceiver::dropped`]), with a
/// rate-limited warning in the log. Its methods are those of
/// [`std::sync::mpsc::Receiver`].
#[derive(Debug)]
pub struct EventReceiver {
    receiver: Receiver<Event>,
    bytes: QueuedBytes,
    dropped: Arc<AtomicU64>,
    /// For a [`spawn`](crate::spawn)ed adapter: its `Poll`, which a
    /// waiting thread polls itself.
    driver: Option<Arc<Driver>>,
}

impl EventReceiver {
    /// Waits by polling the [`spawn`](crate::spawn)ed adapter's `Poll`
    /// (see [`EventReceiver::recv`]).
    pub(crate) fn attach(&mut self, driver: Arc<Driver>) {
        self.driver = Some(driver);
    }

    /// Waits for an event until `deadline` by running the adapter's turns
    /// on this thread.
    fn drive(&self, driver: &Driver, deadline: Option<Instant>) -> Result<Event, RecvTimeoutError> {
        driver.begin_wait();
        let result = self.drive_until(driver, deadline);
        driver.end_wait();
        result
    }

    fn drive_until(
        &self,
        driver: &Driver,
        deadline: Option<Instant>,
    ) -> Result<Event, RecvTimeoutError> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Ok(self.took(event)),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvTimeoutError::Timeout);
            }
            match driver.drive(deadline) {
                Ok(Drove::Turned) => {}
                // The loop thread lets go of the `Poll` after its turn.
                Ok(Drove::Asked) => std::thread::yield_now(),
                // The loop has ended (its last events are in the channel)
                // or the poll failed: wait on the channel.
                Ok(Drove::Stopped) | Err(_) => {
                    // The loop thread ends the adapter (closing the
                    // channel) at once, not after its nap.
                    driver.wake_loop();
                    return match deadline {
                        None => self
                            .receiver
                            .recv()
                            .map(|e| self.took(e))
                            .map_err(|_| RecvTimeoutError::Disconnected),
                        Some(d) => self
                            .receiver
                            .recv_timeout(d.saturating_duration_since(Instant::now()))
                            .map(|e| self.took(e)),
                    };
                }
            }
        }
    }

    fn took(&self, event: Event) -> Event {
        self.bytes.release(event_size(&event));
        event
    }

    /// The next event if one comes within `limit`, without sleeping
    /// ([`EVENT_SPIN`]); `None` if none came.
    fn spin(&self, limit: Duration) -> Option<Result<Event, RecvTimeoutError>> {
        let start = Instant::now();
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(Ok(self.took(event))),
                Err(TryRecvError::Disconnected) => {
                    return Some(Err(RecvTimeoutError::Disconnected));
                }
                Err(TryRecvError::Empty) => {}
            }
            if start.elapsed() >= limit {
                return None;
            }
            // Lets the adapter's thread run if it shares this CPU.
            std::thread::yield_now();
        }
    }

    /// Waits for the next event; `Err` once the adapter has stopped and
    /// every event was read.
    ///
    /// For a [`spawn`](crate::spawn)ed adapter the waiting thread runs the
    /// adapter's loop meanwhile (it polls the sockets and runs the turns,
    /// see the crate docs); otherwise it looks for [`EVENT_SPIN`], then
    /// sleeps until an event comes.
    pub fn recv(&self) -> Result<Event, RecvError> {
        if let Some(driver) = &self.driver {
            return self.drive(driver, None).map_err(|_| RecvError);
        }
        match self.spin(EVENT_SPIN) {
            Some(Ok(event)) => return Ok(event),
            Some(Err(_)) => return Err(RecvError),
            None => {}
        }
        self.receiver.recv().map(|e| self.took(e))
    }

    /// The next event if there is one (it never runs the loop).
    pub fn try_recv(&self) -> Result<Event, TryRecvError> {
        self.receiver.try_recv().map(|e| self.took(e))
    }

    /// Waits at most `timeout` for the next event (running the loop
    /// meanwhile, as [`recv`](EventReceiver::recv) does).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        let start = Instant::now();
        if let Some(driver) = &self.driver {
            return self.drive(driver, start.checked_add(timeout));
        }
        if let Some(result) = self.spin(EVENT_SPIN.min(timeout)) {
            return result;
        }
        let left = timeout.saturating_sub(start.elapsed());
        self.receiver.recv_timeout(left).map(|e| self.took(e))
    }

    /// The events as they come, until the adapter stops.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.recv().ok())
    }

    /// The events waiting now.
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.try_recv().ok())
    }

    /// Events dropped so far because the buffer was full (by count or by
    /// bytes).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes of events waiting to be read ([`event_size`](ringmesh_driver::event_size)).
    pub fn queued_bytes(&self) -> usize {
        self.bytes.queued()
    }
}

/// The events of an adapter made by
/// [`Adapter::with_event_queue`](crate::Adapter::with_event_queue): a
/// plain queue inside the adapter, which the caller drains on the loop's
/// own thread ([`Adapter::poll_event`](crate::Adapter::poll_event)).
/// Bounded as the channel is, by count and by bytes: no lock, no atomic,
/// no hand-off between threads.
#[derive(Debug)]
pub(crate) struct EventQueue {
    events: std::collections::VecDeque<Event>,
    capacity: usize,
    capacity_bytes: usize,
    bytes: usize,
}

/// Room an event queue starts with: a turn's events, usually; it grows up
/// to the configured count if the caller lets events pile up.
const QUEUE_ROOM: usize = 16;

impl EventQueue {
    /// A queue of at most `capacity` events and `capacity_bytes` bytes of
    /// them ([`event_size`]).
    pub(crate) fn new(capacity: usize, capacity_bytes: usize) -> Self {
        EventQueue {
            events: std::collections::VecDeque::with_capacity(QUEUE_ROOM.min(capacity)),
            capacity,
            capacity_bytes,
            bytes: 0,
        }
    }

    /// Queues `event`, or gives back its size if either bound is reached.
    pub(crate) fn push(&mut self, event: Event) -> Result<(), usize> {
        let size = event_size(&event);
        if self.events.len() >= self.capacity || self.bytes + size > self.capacity_bytes {
            return Err(size);
        }
        self.bytes += size;
        self.events.push_back(event);
        Ok(())
    }

    /// The oldest event.
    pub(crate) fn pop(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        self.bytes -= event_size(&event);
        Some(event)
    }

    /// Events waiting.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Bytes of events waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The observer of an adapter whose events go to its own [`EventQueue`]:
/// it is never given an event, and looks at nothing.
pub(crate) struct NoObserver;

impl Observer for NoObserver {
    fn on_event(&mut self, _: Event) -> bool {
        // The adapter queues its events itself; nothing comes here.
        true
    }
}
