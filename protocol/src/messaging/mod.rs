//! The `messaging` component (spec/messaging.md): one-way messages and
//! request/response to one peer, and the queue of messages waiting for a
//! peer that is not connected yet.
//!
//! A message for a peer that is not up waits while the node finds it:
//! cached addresses first, then the ring (when the node is a member), then
//! its neighbours (`FindPeer`). Everything waiting for a peer fails
//! together `lookup_timeout` after the first message queued for it.
//! Requests are calls of the request layer ([`crate::rpc`]): their ids,
//! deadlines and the matching of responses live there; a lost connection
//! fails them ([`DeliveryError::Disconnected`]).

mod api;
pub(crate) mod config;

pub use api::{
    DeliveryError, MessagingCommand, MessagingError, MessagingEvent, MessagingPending,
    MessagingStats, RequestId,
};
pub use config::MessagingConfig;

use std::collections::VecDeque;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use tracing::{debug, info};

use crate::chord::{Found, LookupError, MaybeChord, RouteStart};
use crate::cx::{Cx, SendError};
use crate::rpc::{Done, Failure, OnLost, Outcome, Rpc};
use crate::time::Duration;
use crate::timer::DeadlineQueue;
use crate::wire::{Direct, Message, Request, Response};
use crate::{Accepted, NodeId};

/// The component's timers (its requests' deadlines are the request
/// layer's).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// The wait for `peer` (of this serial) is over.
    Waiting { peer: NodeId, serial: u64 },
}

/// A message held until its peer is connected.
#[derive(Debug)]
enum Queued {
    Send(Bytes),
    Request(RequestId, Bytes),
}

/// Messages for one peer that is being looked up or dialled.
#[derive(Debug)]
struct Waiting {
    /// Distinguishes this wait from a later one for the same peer (for the
    /// lazily cancelled deadline).
    serial: u64,
    messages: VecDeque<Queued>,
}

/// The messaging component.
pub(crate) struct Messaging {
    /// Requests awaiting responses; a call's id is its [`RequestId`].
    pub(crate) requests: Rpc<()>,
    waiting: HashMap<NodeId, Waiting, FixedState>,
    /// Messages across every `waiting` entry.
    queued: usize,
    next_serial: u64,
    max_pending_requests: usize,
    max_queued_messages: usize,
    lookup_timeout: Duration,
    pub(crate) timers: DeadlineQueue<Timer>,
}

impl Messaging {
    pub(crate) fn new(config: &MessagingConfig, hasher: FixedState) -> Self {
        Messaging {
            requests: Rpc::new(0, OnLost::Fail, hasher.clone()),
            waiting: HashMap::with_hasher(hasher),
            queued: 0,
            next_serial: 0,
            max_pending_requests: config.max_pending_requests,
            max_queued_messages: config.max_queued_messages,
            lookup_timeout: config.lookup_timeout,
            timers: DeadlineQueue::new(),
        }
    }

    /// Requests awaiting responses.
    pub(crate) fn pending(&self) -> usize {
        self.requests.len()
    }

    /// Messages waiting for their peers.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Whether messages wait for `peer` (discovery dials it as soon as it
    /// learns where it is).
    pub(crate) fn is_waiting_for(&self, peer: NodeId) -> bool {
        self.waiting.contains_key(&peer)
    }

    /// Whether `timer` still guards a wait.
    pub(crate) fn is_live(&self, timer: &Timer) -> bool {
        match *timer {
            Timer::Waiting { peer, serial } => {
                self.waiting.get(&peer).is_some_and(|w| w.serial == serial)
            }
        }
    }

    /// Drops cancelled timers, its own and its requests'.
    pub(crate) fn tidy_timers(&mut self) {
        let waiting = &self.waiting;
        self.timers.tidy(|timer| match *timer {
            Timer::Waiting { peer, serial } => {
                waiting.get(&peer).is_some_and(|w| w.serial == serial)
            }
        });
        self.requests.tidy_timers();
    }

    /// A timer fired: the wait for a peer is over.
    pub(crate) fn fire(&mut self, cx: &mut dyn Cx, timer: Timer) {
        let Timer::Waiting { peer, .. } = timer;
        info!(peer = %peer.short(), "peer not found in time; failing its queued messages");
        self.fail_waiting(cx, peer, DeliveryError::Unreachable);
    }

    // ----- commands -----

    /// `MessagingCommand::Send`.
    pub(crate) fn send(
        &mut self,
        cx: &mut dyn Cx,
        chord: &mut MaybeChord<'_>,
        to: NodeId,
        payload: Bytes,
    ) -> Result<Accepted, MessagingError> {
        if cx.is_up(to) {
            send_to_peer(cx, to, &Message::Direct(Direct { payload }))?;
            return Ok(Accepted::Done);
        }
        self.enqueue(cx, chord, to, Queued::Send(payload))?;
        Ok(Accepted::Queued)
    }

    /// `MessagingCommand::Request`.
    pub(crate) fn request(
        &mut self,
        cx: &mut dyn Cx,
        chord: &mut MaybeChord<'_>,
        to: NodeId,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Accepted, MessagingError> {
        if timeout == Duration::ZERO {
            return Err(MessagingError::ZeroTimeout);
        }
        if self.requests.len() >= self.max_pending_requests {
            return Err(MessagingError::TooManyRequests(self.max_pending_requests));
        }
        let id = RequestId(self.requests.peek_id());
        if cx.is_up(to) {
            send_to_peer(cx, to, &Message::Request(Request { id: id.0, payload }))?;
        } else {
            self.enqueue(cx, chord, to, Queued::Request(id, payload))?;
        }
        self.requests.track(cx, to, (), timeout);
        Ok(Accepted::Request(id))
    }

    /// `MessagingCommand::Respond`.
    pub(crate) fn respond(
        cx: &mut dyn Cx,
        to: NodeId,
        id: RequestId,
        payload: Bytes,
    ) -> Result<Accepted, MessagingError> {
        send_to_peer(cx, to, &Message::Response(Response { id: id.0, payload }))?;
        Ok(Accepted::Done)
    }

    /// Holds a message for an unconnected peer and starts finding it. On
    /// `Err` nothing was queued.
    fn enqueue(
        &mut self,
        cx: &mut dyn Cx,
        chord: &mut MaybeChord<'_>,
        to: NodeId,
        message: Queued,
    ) -> Result<(), MessagingError> {
        if self.queued >= self.max_queued_messages {
            return Err(MessagingError::QueueFull(self.max_queued_messages));
        }
        let known = cx.knows(to);
        let waiting = self.waiting.contains_key(&to);
        if !known && !waiting && !cx.has_peers() {
            return Err(MessagingError::NoRoute(to));
        }
        let (new, serial) = self.wait_for(to, message);
        if new {
            debug!(peer = %to.short(), known, "queueing for a peer that is not connected");
            let at = cx.now() + self.lookup_timeout;
            let seq = cx.timer_seq();
            self.timers
                .push_seq(at, seq, Timer::Waiting { peer: to, serial });
            if cx.is_dialling(to) {
                return Ok(());
            }
            // Cached addresses first, then the ring, then the neighbours.
            let dialled = known && cx.dial_known(to);
            if !dialled {
                match chord.get().route(cx, to) {
                    RouteStart::Unavailable => cx.find_peer(to),
                    RouteStart::Started => {}
                    RouteStart::Found(result) => self.route_found(cx, to, result),
                }
            }
        }
        Ok(())
    }

    /// Starts (or joins) the wait for `peer`; returns whether it is new
    /// and its serial.
    fn wait_for(&mut self, peer: NodeId, message: Queued) -> (bool, u64) {
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
    fn take_waiting(&mut self, peer: NodeId) -> VecDeque<Queued> {
        let messages = self
            .waiting
            .remove(&peer)
            .map(|w| w.messages)
            .unwrap_or_default();
        self.queued -= messages.len();
        messages
    }

    // ----- messages -----

    /// A `Direct` arrived from `from`.
    pub(crate) fn on_direct(cx: &mut dyn Cx, from: NodeId, payload: Bytes) {
        cx.emit(MessagingEvent::Direct { from, payload });
    }

    /// A `Request` arrived from `from`.
    pub(crate) fn on_request(cx: &mut dyn Cx, from: NodeId, id: u64, payload: Bytes) {
        let id = RequestId(id);
        cx.emit(MessagingEvent::Request { from, id, payload });
    }

    /// A `Response` arrived from `from`: the end of one of our requests,
    /// if it answers one.
    pub(crate) fn on_response(&mut self, cx: &mut dyn Cx, from: NodeId, response: Response) {
        // What `request_done` makes of an `Outcome::Reply` of a
        // `Response`, without wrapping the response in one.
        if let Some(call) = self.requests.answered(from, response.id) {
            cx.emit(MessagingEvent::Response {
                from: call.peer.id,
                id: RequestId(call.id),
                payload: response.payload,
                rtt: cx.now() - call.sent_at,
            });
        }
    }

    /// A request ended: tell the application.
    pub(crate) fn request_done(&mut self, cx: &mut dyn Cx, done: Done<()>) {
        let (to, id) = (done.peer.id, RequestId(done.id));
        let event = match done.outcome {
            Outcome::Reply(Message::Response(Response { payload, .. })) => {
                MessagingEvent::Response {
                    from: to,
                    id,
                    payload,
                    rtt: cx.now() - done.sent_at,
                }
            }
            Outcome::Reply(_) => return,
            // Tracked calls end by their timeout or a lost connection; the
            // other failures belong to calls the layer delivers itself.
            Outcome::Failed(failure) => MessagingEvent::RequestFailed {
                to,
                id,
                reason: match failure {
                    Failure::TimedOut => DeliveryError::Timeout,
                    Failure::Lost | Failure::Dead => DeliveryError::Disconnected,
                    Failure::Refused => DeliveryError::TooLarge,
                },
            },
        };
        cx.emit(event);
    }

    // ----- peers coming and going -----

    /// `peer` came up: send whatever waited for it, in order.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        for queued in self.take_waiting(peer) {
            match queued {
                Queued::Send(payload) => {
                    let message = Message::Direct(Direct {
                        payload: payload.clone(),
                    });
                    if send_to_peer(cx, peer, &message).is_err() {
                        cx.emit(MessagingEvent::SendFailed {
                            to: peer,
                            payload,
                            reason: DeliveryError::TooLarge,
                        });
                    }
                }
                Queued::Request(id, payload) => {
                    if !self.requests.contains(id.0) {
                        continue; // timed out while waiting
                    }
                    let message = Message::Request(Request { id: id.0, payload });
                    if send_to_peer(cx, peer, &message).is_err() {
                        self.requests.cancel(id.0);
                        cx.emit(MessagingEvent::RequestFailed {
                            to: peer,
                            id,
                            reason: DeliveryError::TooLarge,
                        });
                    }
                }
            }
        }
    }

    /// `peer`'s last connection closed: its requests will get no answer.
    pub(crate) fn peer_down(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        for done in self.requests.peer_down(cx, peer) {
            self.request_done(cx, done);
        }
    }

    /// Every dial to `peer` failed; if messages wait for it, ask around.
    pub(crate) fn dial_failed(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        if self.waiting.contains_key(&peer) {
            cx.find_peer(peer);
        }
    }

    /// The ring lookup for `target` ended (spec/chord.md §9).
    pub(crate) fn route_found(
        &mut self,
        cx: &mut dyn Cx,
        target: NodeId,
        result: Result<Found, LookupError>,
    ) {
        if !self.waiting.contains_key(&target) || cx.is_up(target) {
            return;
        }
        match result {
            Ok(found) => match found.list.iter().find(|p| p.id == target) {
                Some(entry) => {
                    let entry = entry.clone();
                    if !cx.is_dialling(target) && !cx.dial_pointer(&entry) {
                        cx.find_peer(target);
                    }
                }
                None => {
                    debug!(peer = %target.short(), "not in the ring: failing its messages");
                    self.fail_waiting(cx, target, DeliveryError::Unreachable);
                }
            },
            Err(_) => cx.find_peer(target),
        }
    }

    fn fail_waiting(&mut self, cx: &mut dyn Cx, peer: NodeId, reason: DeliveryError) {
        for queued in self.take_waiting(peer) {
            match queued {
                Queued::Send(payload) => cx.emit(MessagingEvent::SendFailed {
                    to: peer,
                    payload,
                    reason,
                }),
                Queued::Request(id, _) => {
                    if self.requests.cancel(id.0) {
                        cx.emit(MessagingEvent::RequestFailed {
                            to: peer,
                            id,
                            reason,
                        });
                    }
                }
            }
        }
    }

    /// Fails everything queued and pending (shutdown).
    pub(crate) fn shutdown(&mut self, cx: &mut dyn Cx) {
        let mut waiting: Vec<NodeId> = self.waiting.keys().copied().collect();
        waiting.sort_unstable();
        for peer in waiting {
            self.fail_waiting(cx, peer, DeliveryError::ShutDown);
        }
        for done in self.requests.drain(Failure::Lost) {
            cx.emit(MessagingEvent::RequestFailed {
                to: done.peer.id,
                id: RequestId(done.id),
                reason: DeliveryError::ShutDown,
            });
        }
    }
}

/// Sends `message` to `to` on its current connection.
fn send_to_peer(cx: &mut dyn Cx, to: NodeId, message: &Message) -> Result<(), MessagingError> {
    cx.send(to, message).map_err(|e| match e {
        SendError::TooLarge { len, max } => MessagingError::PayloadTooLarge { len, max },
        SendError::NotConnected => MessagingError::NotConnected(to),
    })
}
