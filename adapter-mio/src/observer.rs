//! [`Observer`]: where an adapter's events go, on the adapter's thread.

use std::sync::mpsc::{SyncSender, TrySendError};

use ringmesh::{Event, Node};

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
/// Everything here runs on the adapter's thread, between inputs: **it must
/// not block** (the node's sockets and timers wait meanwhile), and it must
/// not make the [`Handle`] calls that wait for an answer (they would wait
/// for this very thread; they panic instead).
///
/// [`spawn_with`]: crate::spawn_with
/// [`spawn`]: crate::spawn
/// [`Adapter::with_observer`]: crate::Adapter::with_observer
/// [`Adapter::new`]: crate::Adapter::new
/// [`Handle`]: crate::Handle
pub trait Observer: Send + 'static {
    /// Takes one event; `false` if it has no room for it. The adapter then
    /// drops the event and counts it ([`Adapter::dropped_events`]), with a
    /// warning in the log.
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
/// [`Adapter::new`](crate::Adapter::new): a bounded channel.
pub(crate) struct ChannelObserver(pub(crate) SyncSender<Event>);

impl Observer for ChannelObserver {
    fn on_event(&mut self, event: Event) -> bool {
        match self.0.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            // Nobody listens: nothing to count.
            Err(TrySendError::Disconnected(_)) => true,
        }
    }
}
