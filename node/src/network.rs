//! The mio adapter, embedded in a thread of this program's.
//!
//! [`ringmesh_mio::spawn`] would run the same loop, but its [`Handle`] only
//! carries commands and peer lists. The console's `ring` command and the
//! `ring: …` lines need the node's ring state, which only
//! [`Adapter::node`] reads, on the thread that owns the adapter. So this
//! loop copies that state into a [`RingView`] after every turn, and feeds
//! the main loop the turn's events followed by [`Fed::RingChanged`] when
//! the ring part changed: the main loop sees them in the order they
//! happened (a successor's `peer up` before the `ring:` line naming it).

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::{Events, Poll};
use ringmesh::{ChordRole, Event, Node, NodeId};
use ringmesh_mio::{Adapter, AdapterConfig, Handle};

/// How soon the loop retries feeding a full channel. The events wait in
/// the adapter's own bounded channel meanwhile (which drops and counts
/// when that fills too), so a console that cannot keep up never grows our
/// memory and never stalls the network.
const FEED_RETRY: Duration = Duration::from_millis(20);

/// What the adapter's thread feeds the main loop.
#[derive(Debug)]
pub(crate) enum Fed {
    Event(Event),
    /// The node's role, successors or predecessor changed: read
    /// [`Network::view`].
    RingChanged,
    /// The adapter has stopped.
    Stopped,
}

/// The node's place in the ring, as of the adapter's last turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingView {
    pub(crate) role: ChordRole,
    /// Nearest first.
    pub(crate) successors: Vec<NodeId>,
    pub(crate) predecessor: Option<NodeId>,
    /// Table entries (values and tombstones) this node stores, and their
    /// bytes.
    pub(crate) stored: (usize, usize),
}

impl RingView {
    fn of(node: &Node) -> RingView {
        RingView {
            role: node.chord_role(),
            successors: node.chord_successors(),
            predecessor: node.chord_predecessor(),
            stored: node.dht_usage(),
        }
    }

    /// Whether the ring part (not the table usage) differs.
    pub(crate) fn ring_differs(&self, other: &RingView) -> bool {
        self.role != other.role
            || self.successors != other.successors
            || self.predecessor != other.predecessor
    }
}

/// The latest [`RingView`], shared with the adapter's thread.
#[derive(Clone)]
pub(crate) struct SharedView(Arc<Mutex<RingView>>);

impl SharedView {
    /// A copy of the latest view.
    pub(crate) fn get(&self) -> RingView {
        // The view is replaced whole, so a panic mid-write cannot leave
        // half of one.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, view: RingView) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = view;
    }
}

/// An adapter running on its own thread.
pub(crate) struct Network {
    pub(crate) handle: Handle,
    pub(crate) view: SharedView,
    /// Ends after [`Handle::shutdown`], once every connection is flushed.
    pub(crate) thread: JoinHandle<io::Result<()>>,
}

/// Starts the adapter on its own thread, feeding `feed` through `wrap`.
pub(crate) fn spawn<T: Send + 'static>(
    config: AdapterConfig,
    feed: SyncSender<T>,
    wrap: fn(Fed) -> T,
) -> io::Result<Network> {
    let poll = Poll::new()?;
    let (mut adapter, handle, events) = Adapter::new(poll.registry(), 0, config)?;
    let view = SharedView(Arc::new(Mutex::new(RingView::of(adapter.node()))));
    let feeder = Feeder {
        events,
        feed,
        wrap,
        held: None,
        ring_owed: false,
        view: view.clone(),
    };
    let thread = thread::Builder::new()
        .name(format!("ringmesh-{}", handle.node_id().short()))
        .spawn(move || run(poll, &mut adapter, feeder))?;
    Ok(Network {
        handle,
        view,
        thread,
    })
}

/// Moves the adapter's events and the ring nudges into the main loop's
/// channel, in order, without ever blocking the adapter.
struct Feeder<T> {
    events: Receiver<Event>,
    feed: SyncSender<T>,
    wrap: fn(Fed) -> T,
    /// Refused by a full channel: sent before anything else.
    held: Option<T>,
    /// A ring nudge not sent yet: it goes after the events before it.
    ring_owed: bool,
    view: SharedView,
}

impl<T> Feeder<T> {
    /// Feeds what is held, the events waiting in the adapter's channel,
    /// then the ring nudge, until the main loop's channel is full. Events
    /// it cannot take stay in the adapter's channel.
    fn feed(&mut self, ring_changed: bool) {
        self.ring_owed |= ring_changed;
        if let Some(held) = self.held.take()
            && !self.try_send(held)
        {
            return;
        }
        while let Ok(event) = self.events.try_recv() {
            if !self.try_send((self.wrap)(Fed::Event(event))) {
                return;
            }
        }
        if self.ring_owed {
            self.ring_owed = false;
            self.try_send((self.wrap)(Fed::RingChanged));
        }
    }

    /// Sends `item`, or holds it if the channel is full; false if the
    /// channel took nothing.
    fn try_send(&mut self, item: T) -> bool {
        match self.feed.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(item)) => {
                self.held = Some(item);
                false
            }
            // The main loop is gone: nobody to tell.
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// After the adapter stopped: everything left, then [`Fed::Stopped`],
    /// waiting for room. The main loop drops its receiver before it waits
    /// for this thread, so this cannot block it.
    fn finish(mut self) {
        let rest = self
            .held
            .take()
            .into_iter()
            .chain(self.events.try_iter().map(|e| (self.wrap)(Fed::Event(e))))
            .chain([(self.wrap)(Fed::Stopped)]);
        for item in rest {
            if self.feed.send(item).is_err() {
                return;
            }
        }
    }
}

/// The loop of `ringmesh_mio::spawn`, plus the view copied after each
/// turn: the node changes only inside `handle_event` and `handle_timeout`,
/// so the copy is never more than one turn old.
fn run<T>(mut poll: Poll, adapter: &mut Adapter, mut feeder: Feeder<T>) -> io::Result<()> {
    let mut events = Events::with_capacity(1024);
    let mut last = feeder.view.get();
    let result = loop {
        let mut timeout = adapter.timeout();
        if feeder.held.is_some() {
            timeout = Some(timeout.map_or(FEED_RETRY, |t| t.min(FEED_RETRY)));
        }
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
        for event in events.iter() {
            adapter.handle_event(event);
        }
        adapter.handle_timeout();
        let view = RingView::of(adapter.node());
        let mut ring_changed = false;
        if view != last {
            ring_changed = view.ring_differs(&last);
            feeder.view.set(view.clone());
            last = view;
        }
        feeder.feed(ring_changed);
        if adapter.is_finished() {
            break Ok(());
        }
    };
    feeder.finish();
    result
}
