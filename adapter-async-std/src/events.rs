//! [`Events`]: what the node tells the application, as a `Stream`.

use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::Stream;
use ringmesh::Event;
use tracing::warn;

/// The node's [`Event`]s, in order, as a [`Stream`].
///
/// The stream is bounded ([`AdapterConfig::event_capacity`](crate::AdapterConfig::event_capacity)).
/// The node never waits for the application: when the stream is full, new
/// events are **dropped**, counted in [`Events::dropped`], and a warning is
/// logged. Read it promptly (or drop it if you do not want events: a
/// dropped `Events` costs nothing).
///
/// The stream ends when the node has stopped.
pub struct Events {
    // Boxed because the receiver is `!Unpin`; this way `Events` is `Unpin`
    // and `events.next().await` works without pinning.
    receiver: Pin<Box<Receiver<Event>>>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    /// Events dropped so far because the stream was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("queued", &self.receiver.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.receiver.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.receiver.len(), None)
    }
}

/// The node loop's end of [`Events`].
pub(crate) struct EventSender {
    sender: Sender<Event>,
    dropped: Arc<AtomicU64>,
    /// Whether the drop in progress has been logged: one warning per run of
    /// drops, not one per event.
    warned: bool,
}

impl EventSender {
    pub(crate) fn channel(capacity: usize) -> (EventSender, Events) {
        let (sender, receiver) = async_channel::bounded(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let events = Events {
            receiver: Box::pin(receiver),
            dropped: Arc::clone(&dropped),
        };
        let sender = EventSender {
            sender,
            dropped,
            warned: false,
        };
        (sender, events)
    }

    /// Hands `event` to the application, or drops and counts it if the
    /// stream is full.
    pub(crate) fn emit(&mut self, event: Event) {
        match self.sender.try_send(event) {
            Ok(()) => self.warned = false,
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if !self.warned {
                    self.warned = true;
                    warn!(
                        capacity = self.sender.capacity().unwrap_or(0),
                        dropped_total = dropped,
                        "event stream full: the application is not reading events; dropping them"
                    );
                }
            }
            // Nobody listens; nothing to do.
            Err(TrySendError::Closed(_)) => {}
        }
    }
}
