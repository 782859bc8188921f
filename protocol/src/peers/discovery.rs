//! Discovery (spec/discovery.md): peer exchange on connect and on request,
//! and `FindPeer` for a node whose address is unknown.

use super::{Net, Upcalls};
use crate::session::Prepared;
use crate::wire::{FindPeer, Message, PeerList};
use crate::{ConnId, NodeId};

/// Neighbours asked at once when a peer's address is unknown.
const LOOKUP_FANOUT: usize = 8;

impl Net {
    /// Peers that are up, in id order.
    pub(crate) fn connected_peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self.links.keys().copied().collect();
        peers.sort_unstable();
        peers
    }

    /// Peer exchange with a peer that just came up on `conn` (the relay
    /// component sends the relayed addresses of the list's nodes first).
    pub(crate) fn exchange_peers(&mut self, peer: NodeId, conn: ConnId, up: &mut dyn Upcalls) {
        let list = self.peer_sample(peer);
        if !list.peers.is_empty() {
            let ids: Vec<NodeId> = list.peers.iter().map(|entry| entry.id).collect();
            up.peers_shared(self, peer, &ids);
            let _ = self.send_message(conn, &Message::PeerList(list));
        }
    }

    /// Up to `peer_exchange_size` entries for `to`: peers that are up first
    /// (they are known to work), then the rest of the cache, each group in
    /// random order. Never `to` itself, never entries without addresses.
    pub(super) fn peer_sample(&mut self, to: NodeId) -> PeerList {
        if self.config.peers.peer_exchange_size == 0 {
            // Nothing to give, but the random stream moves as the two
            // shuffles below would move it (every handshake of a node that
            // exchanges no peers, as in a hand-wired simulation).
            let (mut up, mut rest) = (0, 0);
            for (&id, known) in self.cache.iter() {
                if id == to || known.addrs.is_empty() {
                    continue;
                }
                if self.links.contains_key(&id) {
                    up += 1;
                } else {
                    rest += 1;
                }
            }
            self.rng.skip_shuffle(up);
            self.rng.skip_shuffle(rest);
            return PeerList { peers: Vec::new() };
        }
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
        let mut ids = Vec::with_capacity(self.config.peers.peer_exchange_size);
        for mut group in [up, rest] {
            let room = self.config.peers.peer_exchange_size - ids.len();
            if room == 0 {
                // None of it is sent: spend the shuffle's draws only.
                self.rng.skip_shuffle(group.len());
                continue;
            }
            group.sort_unstable();
            self.rng.shuffle(&mut group);
            ids.extend(group.into_iter().take(room));
        }
        PeerList {
            peers: ids
                .into_iter()
                .filter_map(|id| self.cache.entry(id))
                .collect(),
        }
    }

    /// A `PeerList` arrived on `conn`: its entries are bucketed by the
    /// sender's address group, so one sender fills only its own buckets
    /// of the new table.
    pub(super) fn on_peer_list(&mut self, conn: ConnId, list: PeerList, up: &mut dyn Upcalls) {
        let source = self.conns.get(&conn).map(|c| c.remote);
        for entry in &list.peers {
            if self.cache.learn(entry, source, self.now) {
                // News: worth asking again at the next round.
                self.next_peer_request = self.now;
            }
            // A message was waiting for exactly this: dial it, through the
            // cache if it found a slot there, else at the addresses given.
            if up.waiting_for(entry.id)
                && !self.links.contains_key(&entry.id)
                && !self.is_dialling(entry.id)
            {
                if self.cache.get(&entry.id).is_some() {
                    self.dial_known(entry.id);
                } else if !entry.addrs.is_empty() && self.dial_refusal(entry.addrs.len()).is_none()
                {
                    self.dial_all(&entry.addrs, Some(entry.id), false, None);
                }
            }
        }
    }

    /// Asks up to [`LOOKUP_FANOUT`] neighbours where `peer` is.
    pub(crate) fn find_peer(&mut self, peer: NodeId) {
        let mut neighbours = self.connected_peers();
        self.rng.shuffle(&mut neighbours);
        let message = Message::FindPeer(FindPeer { target: peer });
        let mut prepared = Prepared::new(&message);
        for neighbour in neighbours.into_iter().take(LOOKUP_FANOUT) {
            if let Some(conn) = self.links.get(&neighbour).map(|l| l.conn) {
                let _ = self.send_on(conn, &mut prepared, false);
            }
        }
    }
}
