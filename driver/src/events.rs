//! The event buffer's byte bound and the drop log, shared by both
//! adapters.
//!
//! An adapter hands the node's events to the application through a
//! buffer bounded by count ([`AdapterConfig::event_capacity`]) and by bytes
//! ([`AdapterConfig::event_capacity_bytes`]): an event's size is
//! [`event_size`], its payloads plus the event itself. An event that does
//! not fit is dropped, counted, and reported by a [`DropLog`]: one warning
//! at the first drop, then at most one per [`DROP_LOG_INTERVAL`] with the
//! count since the last, so an application that stopped reading neither
//! grows the node's memory nor floods its log.
//!
//! [`AdapterConfig::event_capacity`]: crate::AdapterConfig::event_capacity
//! [`AdapterConfig::event_capacity_bytes`]: crate::AdapterConfig::event_capacity_bytes

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringmesh::{DhtEvent, Event, MeshEvent, MessagingEvent};
use tracing::warn;

/// Default [`AdapterConfig::event_capacity_bytes`](crate::AdapterConfig::event_capacity_bytes):
/// 64 MiB, four payloads of the default 16 MiB `max_frame_len`.
pub const DEFAULT_EVENT_CAPACITY_BYTES: usize = 64 << 20;

/// The longest a run of dropped events goes unreported in the log.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What an event costs while it waits for the application: the event
/// itself and the payloads it carries (messages, broadcasts, table values).
pub fn event_size(event: &Event) -> usize {
    let payload = match event {
        Event::Mesh(MeshEvent::Broadcast { payload, .. })
        | Event::Messaging(
            MessagingEvent::Direct { payload, .. }
            | MessagingEvent::Request { payload, .. }
            | MessagingEvent::Response { payload, .. }
            | MessagingEvent::SendFailed { payload, .. },
        ) => payload.len(),
        Event::Dht(DhtEvent::GetDone { key, value, .. }) => {
            key.name().len() + value.as_ref().map_or(0, |v| v.len())
        }
        _ => 0,
    };
    size_of::<Event>() + payload
}

/// The bytes of events waiting in an event buffer, shared by the side that
/// fills it and the side that reads it.
#[derive(Debug, Clone)]
pub struct QueuedBytes {
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl QueuedBytes {
    /// A buffer that holds at most `capacity` bytes of events.
    pub fn new(capacity: usize) -> Self {
        QueuedBytes {
            queued: Arc::new(AtomicUsize::new(0)),
            capacity,
        }
    }

    /// Counts `size` more bytes if they fit; otherwise changes nothing and
    /// returns false. (One side admits, so a check-then-add cannot
    /// overshoot; the reading side only subtracts.)
    pub fn try_admit(&self, size: usize) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        if queued.saturating_add(size) > self.capacity {
            return false;
        }
        self.queued.fetch_add(size, Ordering::AcqRel);
        true
    }

    /// `size` bytes left the buffer (read by the application, or not sent
    /// after all).
    pub fn release(&self, size: usize) {
        self.queued.fetch_sub(size, Ordering::AcqRel);
    }

    /// Bytes waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The cap.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Counts dropped events and logs them, rate-limited (see the module
/// docs). The count is shared: an adapter's handle or event receiver reads
/// it ([`DropLog::counter`]).
#[derive(Debug)]
pub struct DropLog {
    dropped: Arc<AtomicU64>,
    /// Drops since the last warning.
    unreported: u64,
    last_warning: Option<Instant>,
}

impl Default for DropLog {
    fn default() -> Self {
        DropLog::new()
    }
}

impl DropLog {
    /// A log with no drop yet.
    pub fn new() -> Self {
        DropLog {
            dropped: Arc::new(AtomicU64::new(0)),
            unreported: 0,
            last_warning: None,
        }
    }

    /// The shared count of drops.
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// Drops so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// One event of `size` bytes was dropped: the buffer was full (by
    /// count or by bytes).
    pub fn record(&mut self, size: usize) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|at| now.duration_since(at) < DROP_LOG_INTERVAL)
        {
            return;
        }
        warn!(
            dropped = self.unreported,
            dropped_total = total,
            size,
            "event buffer full (event_capacity or event_capacity_bytes): the application is not reading events fast enough; events dropped"
        );
        self.unreported = 0;
        self.last_warning = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringmesh::NodeId;

    #[test]
    fn an_event_costs_its_payload_and_the_bytes_bound_holds() {
        let event = Event::Messaging(MessagingEvent::Direct {
            from: NodeId::from_bytes([1; 16]),
            payload: Bytes::from(vec![0u8; 1000]),
        });
        let size = event_size(&event);
        assert_eq!(size, size_of::<Event>() + 1000);
        let queued = QueuedBytes::new(2 * size + 10);
        assert!(queued.try_admit(size));
        assert!(queued.try_admit(size));
        assert!(!queued.try_admit(size));
        assert_eq!(queued.queued(), 2 * size);
        queued.release(size);
        assert!(queued.try_admit(size));
    }

    #[test]
    fn drops_are_all_counted_and_warned_once_per_interval() {
        let mut log = DropLog::new();
        for _ in 0..1000 {
            log.record(1);
        }
        assert_eq!(log.dropped(), 1000);
        // The first drop was reported at once; the rest wait for the
        // interval.
        assert_eq!(log.unreported, 999);
    }
}
