//! [`Events`]: what the node tells the application, as a `Stream`.

use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::Stream;
use ringmesh::Event;
use ringmesh_driver::{DropLog, QueuedBytes, event_size};

/// The node's [`Event`]s, in order, as a [`Stream`].
///
/// The stream is bounded by count ([`AdapterConfig::event_capacity`](crate::AdapterConfig::event_capacity))
/// and by bytes ([`AdapterConfig::event_capacity_bytes`](crate::AdapterConfig::event_capacity_bytes),
/// each event's payloads: [`event_size`](crate::event_size)).
/// The node never waits for the application: when the stream is full, new
/// events are **dropped**, counted in [`Events::dropped`], and a warning is
/// logged (at most one per [`DROP_LOG_INTERVAL`](crate::DROP_LOG_INTERVAL),
/// with the count). Read it promptly (or drop it if you do not want events: a
/// dropped `Events` costs nothing).
///
/// The stream ends when the node has stopped.
pub struct Events {
    // Boxed because the receiver is `!Unpin`; this way `Events` is `Unpin`
    // and `events.next().await` works without pinning.
    receiver: Pin<Box<Receiver<Event>>>,
    bytes: QueuedBytes,
    dropped: Arc<AtomicU64>,
}

impl Events {
    /// Events dropped so far because the stream was full (by count or by
    /// bytes).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes of events waiting to be read.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.queued()
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
        let next = self.receiver.as_mut().poll_next(cx);
        if let Poll::Ready(Some(event)) = &next {
            self.bytes.release(event_size(event));
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.receiver.len(), None)
    }
}

/// The node loop's end of [`Events`].
pub(crate) struct EventSender {
    sender: Sender<Event>,
    bytes: QueuedBytes,
    drops: DropLog,
}

impl EventSender {
    pub(crate) fn channel(capacity: usize, capacity_bytes: usize) -> (EventSender, Events) {
        let (sender, receiver) = async_channel::bounded(capacity);
        let drops = DropLog::new();
        let bytes = QueuedBytes::new(capacity_bytes);
        let events = Events {
            receiver: Box::pin(receiver),
            bytes: bytes.clone(),
            dropped: drops.counter(),
        };
        let sender = EventSender {
            sender,
            bytes,
            drops,
        };
        (sender, events)
    }

    /// Hands `event` to the application, or drops and counts it if the
    /// stream is full (by count or by bytes).
    pub(crate) fn emit(&mut self, event: Event) {
        let size = event_size(&event);
        if !self.bytes.try_admit(size) {
            self.drops.record(size);
            return;
        }
        match self.sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.bytes.release(size);
                self.drops.record(size);
            }
            // Nobody listens; nothing to do.
            Err(TrySendError::Closed(_)) => self.bytes.release(size),
        }
    }
}
