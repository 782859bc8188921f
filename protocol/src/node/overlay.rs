//! What the node does with overlay messages and timers: discovery (peer
//! exchange, lookups), liveness (ping/pong), mesh (flooding) and messaging
//! (one-way, request/response, queueing while a peer is found). The spec
//! pages `spec/discovery.md`, `spec/liveness.md`, `spec/mesh.md` and
//! `spec/messaging.md` describe each behaviour.

use bytes::Bytes;
use smallvec::SmallVec;
use tracing::{debug, info};

use super::{Deadline, Node};
use crate::liveness::Verdict;
use crate::messaging::{DeliveryError, Pending, Queued, RequestId};
use crate::session::{EncodeError, Prepared};
use crate::time::Duration;
use crate::wire::{
    Broadcast, Direct, FindPeer, Goodbye, GoodbyeReason, Message, PeerList, Ping, Pong, Request,
    Response,
};
use crate::{Accepted, CommandError, ConnId, Event, NodeId, ProtocolError};

/// Neighbours asked at once when a peer's address is unknown.
const LOOKUP_FANOUT: usize = 8;

impl Node {
    /// Acts on a message from an established session. Returns whether the
    /// connection is still open.
    pub(super) fn on_message(&mut self, conn: ConnId, message: Message) -> bool {
        let Some(from) = self.conns.get(&conn).and_then(|c| c.peer) else {
            return false;
        };
        match message {
            Message::Goodbye(Goodbye {
                reason: GoodbyeReason::Duplicate,
            }) => {
                self.on_duplicate_goodbye(conn, from);
                return self.conns.contains_key(&conn);
            }
            Message::Goodbye(Goodbye { reason }) => {
                self.forget(conn, crate::CloseReason::Goodbye(reason), None, true);
                return false;
            }
            Message::Direct(Direct { payload }) => {
                self.push_event(Event::Direct { from, payload });
            }
            Message::PeerRequest(_) => {
                let list = self.peer_sample(from);
                let _ = self.send_message(conn, &Message::PeerList(list));
            }
            Message::PeerList(list) => self.on_peer_list(list),
            Message::FindPeer(FindPeer { target }) => {
                if let Some(entry) = self.cache.entry(target) {
                    let list = PeerList { peers: vec![entry] };
                    let _ = self.send_message(conn, &Message::PeerList(list));
                }
            }
            Message::Ping(Ping { nonce }) => {
                // Answered even on a connection this node is draining: the
                // peer may still rely on it while the connection we kept
                // comes up (or never does, if it was stale), and its
                // liveness must see that we are alive.
                let pong = Message::Pong(Pong { nonce });
                let _ = self.send_on(conn, &mut Prepared::new(&pong), true);
            }
            Message::Pong(Pong { nonce }) => self.on_pong(from, nonce),
            Message::Broadcast(broadcast) => self.on_broadcast(from, broadcast),
            Message::Request(Request { id, payload }) => {
                let id = RequestId(id);
                self.push_event(Event::Request { from, id, payload });
            }
            Message::Response(Response { id, payload }) => self.on_response(from, id, payload),
            message @ (Message::ChordGetState(_)
            | Message::ChordState(_)
            | Message::ChordNotify(_)
            | Message::ChordFindSuccessor(_)
            | Message::ChordFindSuccessorReply(_)
            | Message::DhtPut(_)
            | Message::DhtPutReply(_)
            | Message::DhtGet(_)
            | Message::DhtGetReply(_)
            | Message::DhtReplicate(_)
            | Message::DhtReplicateAck(_)
            | Message::DhtSync(_)
            | Message::DhtSyncReply(_))
                if self.conn_runs_chord(conn) =>
            {
                self.on_chord_message(from, message);
            }
            other => {
                // `Hello` is refused inside the session; a message of a later
                // component that this node does not run lands here.
                self.forget(
                    conn,
                    ProtocolError::UnexpectedMessage(other.name()).into(),
                    Some(GoodbyeReason::ProtocolViolation),
                    true,
                );
                return false;
            }
        }
        true
    }

    pub(super) fn send_message(
        &mut self,
        conn: ConnId,
        message: &Message,
    ) -> Result<(), EncodeError> {
        self.send_prepared(conn, &mut Prepared::new(message))
    }

    fn send_prepared(
        &mut self,
        conn: ConnId,
        prepared: &mut Prepared<'_>,
    ) -> Result<(), EncodeError> {
        self.send_on(conn, prepared, false)
    }

    /// Sends on `conn`; a draining connection only carries what
    /// `even_draining` allows (pongs).
    fn send_on(
        &mut self,
        conn: ConnId,
        prepared: &mut Prepared<'_>,
        even_draining: bool,
    ) -> Result<(), EncodeError> {
        let session = self
            .conns
            .get_mut(&conn)
            .filter(|c| even_draining || !c.draining)
            .and_then(|c| c.session.as_mut())
            .ok_or(EncodeError::NotEstablished)?;
        let (bytes, compressed) = session.encode_prepared(&self.ctx, prepared)?;
        self.stats.compressed_frames_sent += u64::from(compressed);
        self.push_send(conn, bytes);
        Ok(())
    }

    fn send_to_peer(&mut self, to: NodeId, message: &Message) -> Result<(), CommandError> {
        let conn = self
            .links
            .get(&to)
            .map(|l| l.conn)
            .ok_or(CommandError::NotConnected(to))?;
        self.send_message(conn, message).map_err(|e| match e {
            EncodeError::TooLarge { len, max } => CommandError::PayloadTooLarge { len, max },
            EncodeError::NotEstablished | EncodeError::Crypto => CommandError::NotConnected(to),
        })
    }

    // ----- peers coming and going -----

    /// Peer exchange on connect, and whatever was waiting for this peer.
    pub(super) fn on_peer_up(&mut self, peer: NodeId, conn: ConnId) {
        self.chord_peer_up(peer);
        let list = self.peer_sample(peer);
        if !list.peers.is_empty() {
            let _ = self.send_message(conn, &Message::PeerList(list));
        }
        for queued in self.messaging.take_waiting(peer) {
            match queued {
                Queued::Send(payload) => {
                    let message = Message::Direct(Direct {
                        payload: payload.clone(),
                    });
                    if self.send_to_peer(peer, &message).is_err() {
                        self.push_event(Event::SendFailed {
                            to: peer,
                            payload,
                            reason: DeliveryError::TooLarge,
                        });
                    }
                }
                Queued::Request(id, payload) => {
                    if !self.messaging.pending.contains_key(&id) {
                        continue; // timed out while waiting
                    }
                    let message = Message::Request(Request { id: id.0, payload });
                    if self.send_to_peer(peer, &message).is_err() {
                        self.messaging.pending.remove(&id);
                        self.push_event(Event::RequestFailed {
                            to: peer,
                            id,
                            reason: DeliveryError::TooLarge,
                        });
                    }
                }
            }
        }
    }

    pub(super) fn on_peer_down(&mut self, peer: NodeId, reason: &crate::CloseReason) {
        self.chord_peer_down(peer, reason);
        for id in self.messaging.pending_to(peer) {
            self.messaging.pending.remove(&id);
            self.push_event(Event::RequestFailed {
                to: peer,
                id,
                reason: DeliveryError::Disconnected,
            });
        }
    }

    // ----- discovery -----

    /// Up to `peer_exchange_size` entries for `to`: peers that are up first
    /// (they are known to work), then the rest of the cache, each group in
    /// random order. Never `to` itself, never entries without addresses.
    fn peer_sample(&mut self, to: NodeId) -> PeerList {
        let mut up = Vec::new();
        let mut rest = Vec::new();
        for (&id, known) in self.cache.iter() {
            if id == to || known.addrs.is_empty() {
                continue;
            }
            if self.links.contains_key(&id) {
                up.push(id);
            } else {
                rest.push(id);
            }
        }
        let mut ids = Vec::with_capacity(self.config.peer_exchange_size);
        for mut group in [up, rest] {
            group.sort_unstable();
            self.peers_rng.shuffle(&mut group);
            let room = self.config.peer_exchange_size - ids.len();
            ids.extend(group.into_iter().take(room));
        }
        PeerList {
            peers: ids
                .into_iter()
                .filter_map(|id| self.cache.entry(id))
                .collect(),
        }
    }

    fn on_peer_list(&mut self, list: PeerList) {
        for entry in &list.peers {
            if self.cache.learn(entry, self.now) {
                // News: worth asking again at the next round.
                self.next_peer_request = self.now;
            }
            // A lookup was waiting for exactly this.
            if self.messaging.waiting.contains_key(&entry.id)
                && !self.links.contains_key(&entry.id)
                && !self.is_dialling(entry.id)
            {
                self.dial_known(entry.id);
            }
        }
    }

    /// Asks up to [`LOOKUP_FANOUT`] neighbours where `peer` is.
    pub(super) fn find_peer(&mut self, peer: NodeId) {
        let mut neighbours = self.connected_peers();
        self.peers_rng.shuffle(&mut neighbours);
        let message = Message::FindPeer(FindPeer { target: peer });
        let mut prepared = Prepared::new(&message);
        for neighbour in neighbours.into_iter().take(LOOKUP_FANOUT) {
            if let Some(conn) = self.links.get(&neighbour).map(|l| l.conn) {
                let _ = self.send_prepared(conn, &mut prepared);
            }
        }
    }

    /// Every dial to `peer` failed; if messages wait for it, ask around.
    pub(super) fn dial_to_waiting_peer_failed(&mut self, peer: NodeId) {
        self.chord_dial_failed(peer);
        if self.messaging.waiting.contains_key(&peer) {
            self.find_peer(peer);
        }
    }

    // ----- liveness -----

    pub(super) fn ping(&mut self, peer: NodeId) {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let Some(link) = self.links.get(&peer) else {
            return;
        };
        let (conn, generation) = (link.conn, link.generation);
        // Also on a connection the peer is retiring as a duplicate: it
        // still answers pings there, so a peer that dies meanwhile is
        // detected in time.
        if let Some(link) = self.links.get_mut(&peer) {
            link.liveness.ping_sent(nonce, self.now);
        }
        self.stats.pings_sent += 1;
        let _ = self.send_message(conn, &Message::Ping(Ping { nonce }));
        self.deadlines.push(
            self.now + self.config.ping_timeout,
            Deadline::PongDue {
                peer,
                generation,
                nonce,
            },
        );
        self.deadlines.push(
            self.now + self.config.ping_interval,
            Deadline::Ping { peer, generation },
        );
    }

    fn on_pong(&mut self, from: NodeId, nonce: u64) {
        let now = self.now;
        if let Some(link) = self.links.get_mut(&from)
            && link.liveness.pong(nonce, now) == Verdict::Recovered
        {
            info!(peer = %from.short(), "suspect peer answered again");
        }
    }

    pub(super) fn pong_missed(&mut self, peer: NodeId, nonce: u64) {
        let dead_after = self.config.dead_after_misses;
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        match link.liveness.timed_out(nonce, dead_after) {
            Verdict::Suspect => {
                info!(peer = %peer.short(), "peer missed a ping: suspect");
                self.push_event(Event::PeerSuspect { peer });
            }
            Verdict::Dead => {
                info!(peer = %peer.short(), misses = dead_after, "peer unresponsive: dead");
                self.declare_dead(peer);
            }
            Verdict::Unchanged | Verdict::Recovered => {}
        }
    }

    // ----- mesh -----

    pub(super) fn broadcast(&mut self, payload: Bytes) -> Accepted {
        let seq = self.next_broadcast;
        self.next_broadcast += 1;
        self.seen.insert((self.id, seq), self.now);
        self.stats.broadcasts_sent += 1;
        let broadcast = Broadcast {
            origin: self.id,
            seq,
            hops: 1,
            payload,
        };
        self.relay(broadcast, None);
        Accepted::Broadcast { seq }
    }

    fn on_broadcast(&mut self, from: NodeId, broadcast: Broadcast) {
        if broadcast.origin == self.id
            || !self
                .seen
                .insert((broadcast.origin, broadcast.seq), self.now)
        {
            self.stats.broadcasts_duplicate += 1;
            return;
        }
        self.stats.broadcasts_delivered += 1;
        self.push_event(Event::Message {
            origin: broadcast.origin,
            seq: broadcast.seq,
            hops: broadcast.hops,
            payload: broadcast.payload.clone(),
        });
        if broadcast.hops >= self.config.max_hops {
            self.stats.broadcasts_hop_limited += 1;
            return;
        }
        let relayed = Broadcast {
            hops: broadcast.hops + 1,
            ..broadcast
        };
        self.relay(relayed, Some(from));
    }

    /// Sends `broadcast` to every peer that is up except `from` and its
    /// origin. The message is encoded once for all of them (once per
    /// compression variant; in plaintext mode the very same frame buffer
    /// goes to every peer).
    fn relay(&mut self, broadcast: Broadcast, from: Option<NodeId>) {
        let origin = broadcast.origin;
        let mut targets: SmallVec<[ConnId; 16]> = self
            .links
            .iter()
            .filter(|(id, _)| Some(**id) != from && **id != origin)
            .map(|(_, l)| l.conn)
            .collect();
        // Hash order is fixed by the seed, but sorting keeps the output
        // order independent of the table's history.
        targets.sort_unstable();
        let relaying = from.is_some();
        let message = Message::Broadcast(broadcast);
        let mut prepared = Prepared::new(&message);
        for conn in targets {
            match self.send_prepared(conn, &mut prepared) {
                Ok(()) => self.stats.broadcasts_relayed += u64::from(relaying),
                Err(EncodeError::TooLarge { .. }) => self.stats.broadcasts_oversized += 1,
                Err(_) => {}
            }
        }
    }

    // ----- messaging -----

    pub(super) fn send_direct(
        &mut self,
        to: NodeId,
        payload: Bytes,
    ) -> Result<Accepted, CommandError> {
        if self.links.contains_key(&to) {
            self.send_to_peer(to, &Message::Direct(Direct { payload }))?;
            return Ok(Accepted::Done);
        }
        self.enqueue(to, Queued::Send(payload))?;
        Ok(Accepted::Queued)
    }

    pub(super) fn request(
        &mut self,
        to: NodeId,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Accepted, CommandError> {
        if timeout == Duration::ZERO {
            return Err(CommandError::ZeroTimeout);
        }
        if self.messaging.pending.len() >= self.config.max_pending_requests {
            return Err(CommandError::TooManyRequests(
                self.config.max_pending_requests,
            ));
        }
        let id = RequestId(self.messaging.next_request);
        if self.links.contains_key(&to) {
            self.send_to_peer(to, &Message::Request(Request { id: id.0, payload }))?;
        } else {
            self.enqueue(to, Queued::Request(id, payload))?;
        }
        self.messaging.next_request += 1;
        self.messaging.pending.insert(
            id,
            Pending {
                to,
                sent_at: self.now,
            },
        );
        self.deadlines
            .push(self.now + timeout, Deadline::Request { id });
        Ok(Accepted::Request(id))
    }

    pub(super) fn respond(
        &mut self,
        to: NodeId,
        id: RequestId,
        payload: Bytes,
    ) -> Result<Accepted, CommandError> {
        self.send_to_peer(to, &Message::Response(Response { id: id.0, payload }))?;
        Ok(Accepted::Done)
    }

    fn on_response(&mut self, from: NodeId, id: u64, payload: Bytes) {
        let id = RequestId(id);
        match self.messaging.pending.get(&id) {
            Some(p) if p.to == from => {
                let rtt = self.now - p.sent_at;
                self.messaging.pending.remove(&id);
                self.push_event(Event::Response {
                    from,
                    id,
                    payload,
                    rtt,
                });
            }
            // Late, or not ours to answer: a peer cannot complete another
            // peer's request.
            _ => self.stats.late_responses += 1,
        }
    }

    /// Holds a message for an unconnected peer and starts finding it. On
    /// `Err` nothing was queued.
    fn enqueue(&mut self, to: NodeId, message: Queued) -> Result<(), CommandError> {
        if self.messaging.queued >= self.config.max_queued_messages {
            return Err(CommandError::QueueFull(self.config.max_queued_messages));
        }
        let known = self.cache.get(&to).is_some_and(|k| !k.addrs.is_empty());
        let waiting = self.messaging.waiting.contains_key(&to);
        if !known && !waiting && self.links.is_empty() {
            return Err(CommandError::NoRoute(to));
        }
        let (new, serial) = self.messaging.wait_for(to, message);
        if new {
            debug!(peer = %to.short(), known, "queueing for a peer that is not connected");
            self.deadlines.push(
                self.now + self.config.lookup_timeout,
                Deadline::Waiting { peer: to, serial },
            );
            if self.is_dialling(to) {
                return Ok(());
            }
            // Cached addresses first, then the ring, then the neighbours.
            let dialled = known && self.dial_known(to);
            if !dialled && !self.route_through_ring(to) {
                self.find_peer(to);
            }
        }
        Ok(())
    }

    pub(super) fn request_timed_out(&mut self, id: RequestId) {
        if let Some(p) = self.messaging.pending.remove(&id) {
            self.push_event(Event::RequestFailed {
                to: p.to,
                id,
                reason: DeliveryError::Timeout,
            });
        }
    }

    pub(super) fn waiting_expired(&mut self, peer: NodeId) {
        info!(peer = %peer.short(), "peer not found in time; failing its queued messages");
        self.fail_waiting(peer, DeliveryError::Unreachable);
    }

    pub(super) fn fail_waiting(&mut self, peer: NodeId, reason: DeliveryError) {
        for queued in self.messaging.take_waiting(peer) {
            match queued {
                Queued::Send(payload) => self.push_event(Event::SendFailed {
                    to: peer,
                    payload,
                    reason,
                }),
                Queued::Request(id, _) => {
                    if self.messaging.pending.remove(&id).is_some() {
                        self.push_event(Event::RequestFailed {
                            to: peer,
                            id,
                            reason,
                        });
                    }
                }
            }
        }
    }

    pub(super) fn fail_everything_pending(&mut self) {
        let mut waiting: Vec<NodeId> = self.messaging.waiting.keys().copied().collect();
        waiting.sort_unstable();
        for peer in waiting {
            self.fail_waiting(peer, DeliveryError::ShutDown);
        }
        let mut pending: Vec<(RequestId, NodeId)> = self
            .messaging
            .pending
            .iter()
            .map(|(&id, p)| (id, p.to))
            .collect();
        pending.sort_unstable();
        self.messaging.pending.clear();
        for (id, to) in pending {
            self.push_event(Event::RequestFailed {
                to,
                id,
                reason: DeliveryError::ShutDown,
            });
        }
    }
}
