//! The adapter, observed: what feeds the main loop from the network.
//!
//! The program runs [`ringmesh_mio::spawn_with`]'s loop (it has none of its
//! own). Its [`Feeder`] is that loop's [`Observer`]: on the adapter's
//! thread it puts the node's events into the main loop's channel, and
//! after every turn it compares the node's place in the ring with the one
//! it last fed; when that changed (successor lists change as the ring
//! stabilizes, which no event says), it feeds [`Fed::Ring`] with the new
//! [`RingView`]. Events and views go into one channel from one thread, so
//! the main loop sees them in the order they happened: a successor's `peer
//! up` before the `ring:` line naming it. The console's `ring` command
//! reads the node on demand through [`ringmesh_mio::Handle::inspect`].
//!
//! Nothing here waits on the adapter's thread: when the main loop's
//! channel is full (a console that cannot keep up), events are dropped and
//! counted by the adapter, and a ring view is fed again after the next
//! turn. The network never stalls and memory stays bounded.

use std::io;
use std::sync::mpsc::{SyncSender, TrySendError};

use ringmesh::{BlobsEvent, Event, MeshEvent, MessagingEvent, Node, PeersEvent};
use ringmesh_mio::{AdapterConfig, Observer, QueuedBytes, Spawned, event_size};
use tracing::debug;

use crate::ring_view::RingView;

/// What the adapter's thread feeds the main loop.
#[derive(Debug)]
pub(crate) enum Fed {
    Event(Event),
    /// A line to print, made from an event on the adapter's thread: a
    /// message or broadcast, whose payload (up to 16 MiB) is not kept
    /// beyond the part [`display`](crate::display) shows.
    Print(String),
    /// The node's role, successors or predecessor changed: this is where
    /// it stands now.
    Ring(RingView),
    /// The adapter has stopped.
    Stopped,
}

impl Fed {
    /// What it costs while it waits for the main loop, as counted against
    /// the program's bound on unprinted output.
    pub(crate) fn size(&self) -> usize {
        match self {
            Fed::Event(event) => event_size(event),
            Fed::Print(line) => size_of::<Event>() + line.len(),
            Fed::Ring(_) | Fed::Stopped => 0,
        }
    }
}

/// Whether a fetch holding `held` of `groups` groups has just reached
/// another tenth: the progress lines the console prints.
pub(crate) fn progress_line_due(held: u64, groups: u64) -> bool {
    let groups = groups.max(1);
    held * 10 / groups != held.saturating_sub(1) * 10 / groups
}

/// Starts the adapter on its own thread, feeding `feed` through `wrap`;
/// the events fed and not yet handled may hold at most `unprinted`'s
/// capacity in bytes (the main loop releases each event it handled).
pub(crate) fn spawn<T: Send + 'static>(
    config: AdapterConfig,
    feed: SyncSender<T>,
    wrap: fn(Fed) -> T,
    unprinted: QueuedBytes,
) -> io::Result<Spawned> {
    ringmesh_mio::spawn_with(
        config,
        Feeder {
            feed,
            wrap,
            fed_view: None,
            unprinted,
        },
    )
}

/// Moves the node's events and ring changes into the main loop's channel,
/// in order, without ever blocking the adapter.
struct Feeder<T> {
    feed: SyncSender<T>,
    wrap: fn(Fed) -> T,
    /// The last view the main loop was fed.
    fed_view: Option<RingView>,
    /// Bytes of events fed and not yet handled by the main loop.
    unprinted: QueuedBytes,
}

impl<T: Send + 'static> Observer for Feeder<T> {
    fn on_event(&mut self, event: Event) -> bool {
        let fed = match event {
            // An inbound connection closed before its session: admission
            // refusals, mostly. Under a flood that is thousands a second,
            // and the console has nothing to say about them (they are
            // counted in the node's stats and logged): waking the main
            // loop for each would cost more than refusing them.
            Event::Peers(PeersEvent::Closed {
                conn, peer: None, ..
            }) if !conn.is_outbound() => return true,
            // A fetch reports every group (65,536 per GiB); the console
            // prints a line per tenth. Feeding only those keeps the main
            // loop asleep and the channel free for the `Done` that
            // matters.
            Event::Blobs(BlobsEvent::Progress { held, groups, .. })
                if !progress_line_due(held, groups) =>
            {
                return true;
            }
            Event::Mesh(MeshEvent::Broadcast {
                origin,
                seq,
                hops,
                payload,
            }) => {
                // The hop count is for tests and measurements
                // (`--log-level ringmesh::network=debug`), not the console.
                debug!(origin = %origin.short(), seq, hops, "broadcast delivered");
                Fed::Print(crate::display::broadcast(origin, &payload))
            }
            Event::Messaging(MessagingEvent::Direct { from, payload }) => {
                Fed::Print(crate::display::direct(from, &payload))
            }
            event => Fed::Event(event),
        };
        let size = fed.size();
        if !self.unprinted.try_admit(size) {
            return false;
        }
        match self.feed.try_send((self.wrap)(fed)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.unprinted.release(size);
                false
            }
            // The main loop is gone: nobody to tell.
            Err(TrySendError::Disconnected(_)) => {
                self.unprinted.release(size);
                true
            }
        }
    }

    fn after_turn(&mut self, node: &Node) {
        let view = RingView::of(node);
        if self
            .fed_view
            .as_ref()
            .is_some_and(|fed| !fed.ring_differs(&view))
        {
            return;
        }
        match self.feed.try_send((self.wrap)(Fed::Ring(view.clone()))) {
            Ok(()) => self.fed_view = Some(view),
            // Fed again after the next turn, behind the events of this
            // one, which were fed (or dropped) first.
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The handle no longer waits for the adapter, so neither does the main
    /// loop: it reads this, or has dropped its receiver (the send fails).
    fn stopped(&mut self) {
        let _ = self.feed.send((self.wrap)(Fed::Stopped));
    }
}
