//! The maintenance round (spec/peers.md, spec/discovery.md): redial wanted
//! and lost peers, fill up to `target_peers` from the peer cache, ask for
//! more peers when the cache has run dry, and fall back to the bootstrap
//! list when alone.

use tracing::info;

use super::cache::LOST_REDIALS;
use super::{BootstrapAddr, Net, redial_delay};
use crate::wire::{Message, PeerRequest};
use crate::{Direction, NodeId};

/// Maintenance rounds between two `PeerRequest`s that brought nothing new.
const PEER_REQUEST_ROUNDS: u64 = 10;

impl Net {
    /// The maintenance round: redial wanted and lost peers, fill up to
    /// `target_peers` from the peer cache, ask for more peers when the
    /// cache has run dry, and fall back to the bootstrap list when alone.
    pub(crate) fn maintain(&mut self) {
        let now = self.now;
        let links = &self.links;
        self.cache.prune_guests(|id| links.contains_key(id));
        if let Some((refused, evicted)) = self.cache.report(now) {
            info!(
                refused,
                evicted,
                known = self.cache.len(),
                tried = self.cache.tried_len(),
                "peer cache: entries refused (their slots hold peers that work) or evicted since the last report"
            );
        }
        let mut dialling: Vec<NodeId> = self
            .conns
            .values()
            .filter(|c| c.peer().is_none())
            .filter_map(|c| c.expected())
            .collect();
        dialling.sort_unstable();
        let mut wanted = Vec::new();
        let mut candidates = Vec::new();
        for (&id, known) in self.cache.iter() {
            if self.links.contains_key(&id)
                || known.addrs.is_empty()
                || known.next_dial_at > now
                || dialling.binary_search(&id).is_ok()
            {
                continue;
            }
            if known.wanted() || (known.lost() && known.failures() < LOST_REDIALS) {
                wanted.push(id);
            } else {
                candidates.push((known.failures(), !known.tried(), id));
            }
        }
        wanted.sort_unstable();
        for peer in wanted {
            self.dial_known(peer);
        }
        let outbound_pending = self
            .conns
            .values()
            .filter(|c| c.direction == Direction::Outbound && c.peer().is_none())
            .count();
        let mut need = self
            .config
            .peers
            .target_peers
            .saturating_sub(self.links.len() + outbound_pending);
        if need == 0 {
            return;
        }
        // Random among the peers with the fewest failures, tried ones (this
        // node dialled and authenticated them: strangers cannot put
        // entries there) before new ones, so a node restarted after an
        // identity flood dials its old peers first. Sort by id first so the
        // shuffle's input does not depend on hash order.
        candidates.sort_unstable_by_key(|&(_, _, id)| id);
        self.rng.shuffle(&mut candidates);
        candidates.sort_by_key(|&(failures, new, _)| (failures, new));
        for (_, _, peer) in candidates {
            if need == 0 {
                break;
            }
            if self.dial_known(peer) {
                need -= 1;
            }
        }
        if need == 0 {
            return;
        }
        if !self.links.is_empty() {
            if self.next_peer_request > now {
                return;
            }
            // The cache has nobody left to try: ask a random peer for more.
            // Again next round if the answer brings news, else after
            // PEER_REQUEST_ROUNDS rounds (a network smaller than the target
            // has nothing more to tell).
            self.next_peer_request = now
                + self
                    .config
                    .peers
                    .maintenance_interval
                    .saturating_mul(PEER_REQUEST_ROUNDS);
            let peers = self.connected_peers();
            let pick = peers[self.rng.below(peers.len() as u64) as usize];
            if let Some(link) = self.links.get(&pick) {
                let conn = link.conn;
                let _ = self.send_message(conn, &Message::PeerRequest(PeerRequest));
            }
        } else if outbound_pending == 0 {
            self.dial_bootstrap();
        }
    }

    /// Alone and with nothing else to dial: try the bootstrap addresses
    /// whose backoff has passed.
    fn dial_bootstrap(&mut self) {
        let now = self.now;
        let due: Vec<usize> = self
            .bootstrap
            .iter()
            .enumerate()
            .filter(|(_, b)| b.next_dial_at <= now)
            .map(|(i, _)| i)
            .collect();
        for i in due {
            if self.dial_refusal(1).is_some() {
                return;
            }
            let BootstrapAddr { addr, id, .. } = self.bootstrap[i];
            if id == Some(self.id) {
                // Our own address in the list: every node can share one list.
                continue;
            }
            let delay = redial_delay(
                &self.config.peers,
                self.bootstrap[i].failures,
                &mut self.rng,
            );
            self.bootstrap[i].next_dial_at = now + delay;
            info!(%addr, "dialling bootstrap node");
            self.dial_all(&[addr], None, false, Some(i));
        }
    }
}
