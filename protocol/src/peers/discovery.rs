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
            let (up, rest) = count_up_and_rest(
                self.cache
                    .iter()
                    .map(|(&id, known)| (id, !known.addrs.is_empty())),
                self.links.keys().copied(),
                to,
            );
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
        let source = self.conns.get(&conn).map(|c| c.remote());
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

/// Of the cache's entries (`(id, has addresses)`, in id order), how many
/// with addresses, `to` left out, are up (have a link: `linked`, in id
/// order) and how many are not: the sizes of `peer_sample`'s two groups.
/// One merge of the two sorted lists, where a lookup in the peer table for
/// every entry cost a binary search each (every handshake of a node that
/// exchanges no peers counts them).
fn count_up_and_rest(
    cached: impl Iterator<Item = (NodeId, bool)>,
    linked: impl Iterator<Item = NodeId>,
    to: NodeId,
) -> (usize, usize) {
    let (mut up, mut rest) = (0, 0);
    let mut linked = linked.peekable();
    for (id, has_addrs) in cached {
        while linked.next_if(|&l| l < id).is_some() {}
        let is_up = linked.next_if_eq(&id).is_some();
        if id == to || !has_addrs {
            continue;
        }
        if is_up {
            up += 1;
        } else {
            rest += 1;
        }
    }
    (up, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The merge counts what a lookup per entry counts.
        #[test]
        fn up_and_rest_are_counted_as_by_lookups(
            cached in proptest::collection::btree_map(0u128..40, proptest::bool::ANY, 0..30),
            linked in proptest::collection::btree_set(0u128..40, 0..12),
            to in 0u128..40,
        ) {
            let mut want = (0, 0);
            for (&id, &has_addrs) in &cached {
                if id == to || !has_addrs {
                    continue;
                }
                if linked.contains(&id) { want.0 += 1 } else { want.1 += 1 }
            }
            let got = count_up_and_rest(
                cached.iter().map(|(&id, &a)| (NodeId::from_u128(id), a)),
                linked.iter().map(|&id| NodeId::from_u128(id)),
                NodeId::from_u128(to),
            );
            proptest::prop_assert_eq!(got, want);
        }
    }
}
