//! [`Events`]: what the node tells the application, as a `Stream`.

use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atomic_waker::AtomicWaker;
use concurrent_queue::{ConcurrentQueue, PushError};
use futures_lite::Stream;
use ringmesh::Event;
use ringmesh_driver::{DropLog, QueuedBytes, event_size};

/// The node's [`Event`]s, in order, as a [`Stream`].
///
/// The stream is bounded by count ([`AdapterConfig::event_capacity`](crate::AdapterConfig::event_capacity))
/// and by bytes ([`AdapterConfig::event_capacity_bytes`](crate::AdapterConfig::event_capacity_bytes),
/// each event's payloads: [`event_size`]).
/// The node never waits for the application: when the stream is full, new
/// events are **dropped**, counted in [`Events::dropped`], and a warning is
/// logged (at most one per [`DROP_LOG_INTERVAL`](crate::DROP_LOG_INTERVAL),
/// with the count). Read it promptly (or drop it if you do not want events: a
/// dropped `Events` costs nothing).
///
/// The stream ends when the node has stopped.
pub struct Events {
    queue: Arc<Queue>,
    bytes: QueuedBytes,
    dropped: Arc<AtomicU64>,
}

/// What the node loop and the stream share: one producer (the node, under
/// its lock) and one consumer (the stream, `&mut`), so a queue and one
/// waker do: a wait for the next event makes no listener and takes no
/// lock, and an event wakes the reader with an atomic swap.
struct Queue {
    events: ConcurrentQueue<Event>,
    /// The stream's task, while it waits.
    reader: AtomicWaker,
    /// The node has stopped: once the queue is empty, the stream ends.
    ended: AtomicBool,
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
            .field("queued", &self.queue.events.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let queue = &self.queue;
        let next = match queue.events.pop() {
            Ok(event) => Some(event),
            Err(_) => {
                // Registered before the second look: an event pushed in
                // between wakes this task.
                queue.reader.register(cx.waker());
                match queue.events.pop() {
                    Ok(event) => Some(event),
                    // Set after the node's last push: what it pushed is
                    // there for this look.
                    Err(_) if queue.ended.load(Ordering::Acquire) => match queue.events.pop() {
                        Ok(event) => Some(event),
                        Err(_) => return Poll::Ready(None),
                    },
                    Err(_) => return Poll::Pending,
                }
            }
        };
        if let Some(event) = &next {
            self.bytes.release(event_size(event));
        }
        Poll::Ready(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.queue.events.len(), None)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        // The node's further events are refused at once (and their bytes
        // never counted); those queued go with the queue.
        self.queue.events.close();
    }
}

/// The node loop's end of [`Events`].
pub(crate) struct EventSender {
    queue: Arc<Queue>,
    bytes: QueuedBytes,
    drops: DropLog,
}

impl EventSender {
    pub(crate) fn channel(capacity: usize, capacity_bytes: usize) -> (EventSender, Events) {
        let queue = Arc::new(Queue {
            events: ConcurrentQueue::bounded(capacity.max(1)),
            reader: AtomicWaker::new(),
            ended: AtomicBool::new(false),
        });
        let drops = DropLog::new();
        let bytes = QueuedBytes::new(capacity_bytes);
        let events = Events {
            queue: Arc::clone(&queue),
            bytes: bytes.clone(),
            dropped: drops.counter(),
        };
        let sender = EventSender {
            queue,
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
        match self.queue.events.push(event) {
            Ok(()) => self.queue.reader.wake(),
            Err(PushError::Full(_)) => {
                self.bytes.release(size);
                self.drops.record(size);
            }
            // Nobody listens; nothing to do.
            Err(PushError::Closed(_)) => self.bytes.release(size),
        }
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        self.queue.ended.store(true, Ordering::Release);
        self.queue.reader.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_lite::{StreamExt, future};
    use ringmesh::{MessagingEvent, NodeId};

    fn direct(byte: u8) -> Event {
        Event::Messaging(MessagingEvent::Direct {
            from: NodeId::from_bytes([1; 16]),
            payload: Bytes::from(vec![byte; 8]),
        })
    }

    fn payload_of(event: Option<Event>) -> Option<u8> {
        match event {
            Some(Event::Messaging(MessagingEvent::Direct { payload, .. })) => Some(payload[0]),
            Some(other) => panic!("unexpected event {other:?}"),
            None => None,
        }
    }

    #[test]
    fn the_stream_gives_what_was_queued_in_order_then_ends_once_the_node_stops() {
        let (mut sender, mut events) = EventSender::channel(8, 1 << 20);
        sender.emit(direct(1));
        sender.emit(direct(2));
        drop(sender);
        future::block_on(async {
            assert_eq!(payload_of(events.next().await), Some(1));
            assert_eq!(payload_of(events.next().await), Some(2));
            assert_eq!(payload_of(events.next().await), None);
        });
        assert_eq!(events.queued_bytes(), 0);
    }

    #[test]
    fn a_waiting_reader_wakes_for_the_next_event_and_for_the_end() {
        let (mut sender, mut events) = EventSender::channel(8, 1 << 20);
        future::block_on(async {
            let read = async {
                let first = payload_of(events.next().await);
                let end = payload_of(events.next().await);
                (first, end)
            };
            let emit = async {
                // The reader waits first.
                future::yield_now().await;
                sender.emit(direct(7));
                future::yield_now().await;
                drop(sender);
            };
            let ((first, end), ()) = future::zip(read, emit).await;
            assert_eq!((first, end), (Some(7), None));
        });
    }

    #[test]
    fn events_past_the_capacity_are_dropped_and_counted_and_a_dropped_stream_takes_none() {
        let (mut sender, events) = EventSender::channel(2, 1 << 20);
        for byte in 0..3 {
            sender.emit(direct(byte));
        }
        assert_eq!(events.dropped(), 1);
        let counted = events.queued_bytes();
        assert_eq!(counted, 2 * event_size(&direct(0)));
        drop(events);
        // Refused at once, its bytes never counted (nor dropped: nobody
        // listens).
        sender.emit(direct(9));
        assert_eq!(sender.bytes.queued(), counted);
    }
}
