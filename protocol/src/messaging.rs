//! The `messaging` component's state: requests awaiting responses, and
//! messages waiting for their peer to be found and connected.

use std::collections::VecDeque;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::NodeId;
use crate::time::Instant;

/// Identifies a request this node sent, in [`Event::Response`] and
/// [`Event::RequestFailed`](crate::Event::RequestFailed); and, in
/// [`Event::Request`], a request a peer sent (ids are chosen by the
/// requester, so only `(peer, id)` is unique on the receiving side).
///
/// [`Event::Response`]: crate::Event::Response
/// [`Event::Request`]: crate::Event::Request
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl core::fmt::Display for RequestId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a message or request did not get through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No response within the request's timeout.
    #[error("timed out")]
    Timeout,
    /// The peer could not be found or connected within `lookup_timeout`.
    #[error("peer unreachable")]
    Unreachable,
    /// The connection to the peer was lost before the response came.
    #[error("peer disconnected")]
    Disconnected,
    /// This node shut down.
    #[error("node shut down")]
    ShutDown,
    /// The message is larger than the peer's frame cap (known only once
    /// connected).
    #[error("message larger than the peer's frame cap")]
    TooLarge,
}

/// A message held until its peer is connected.
#[derive(Debug)]
pub(crate) enum Queued {
    Send(Bytes),
    Request(RequestId, Bytes),
}

/// Messages for one peer that is being looked up or dialled.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// Distinguishes this wait from a later one for the same peer (for the
    /// lazily cancelled deadline).
    pub(crate) serial: u64,
    pub(crate) messages: VecDeque<Queued>,
}

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub(crate) to: NodeId,
    pub(crate) sent_at: Instant,
}

/// Both tables, each capped by `Config`.
pub(crate) struct Messaging {
    pub(crate) pending: HashMap<RequestId, Pending, FixedState>,
    pub(crate) waiting: HashMap<NodeId, Waiting, FixedState>,
    /// Messages across every `waiting` entry.
    pub(crate) queued: usize,
    pub(crate) next_request: u64,
    pub(crate) next_serial: u64,
}

impl Messaging {
    pub(crate) fn new(hasher: FixedState) -> Self {
        Messaging {
            pending: HashMap::with_hasher(hasher.clone()),
            waiting: HashMap::with_hasher(hasher),
            queued: 0,
            next_request: 0,
            next_serial: 0,
        }
    }

    /// Requests pending towards `peer`, in id order.
    pub(crate) fn pending_to(&self, peer: NodeId) -> Vec<RequestId> {
        let mut ids: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.to == peer)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Starts (or joins) the wait for `peer`; returns whether it is new
    /// and its serial.
    pub(crate) fn wait_for(&mut self, peer: NodeId, message: Queued) -> (bool, u64) {
        self.queued += 1;
        if let Some(w) = self.waiting.get_mut(&peer) {
            w.messages.push_back(message);
            return (false, w.serial);
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        let mut messages = VecDeque::new();
        messages.push_back(message);
        self.waiting.insert(peer, Waiting { serial, messages });
        (true, serial)
    }

    /// Ends the wait for `peer`, returning what was queued.
    pub(crate) fn take_waiting(&mut self, peer: NodeId) -> VecDeque<Queued> {
        let messages = self
            .waiting
            .remove(&peer)
            .map(|w| w.messages)
            .unwrap_or_default();
        self.queued -= messages.len();
        messages
    }

    pub(crate) fn is_waiting(&self, peer: NodeId, serial: u64) -> bool {
        self.waiting.get(&peer).is_some_and(|w| w.serial == serial)
    }
}
