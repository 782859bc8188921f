//! The `mesh` component (spec/mesh.md): flooding with a bounded seen-cache
//! and a hop limit. A broadcast is relayed to every peer that is up except
//! the one it came from and its origin, encoded once for all of them.

mod api;
pub(crate) mod config;
mod seen_cache;

pub use api::{MeshCommand, MeshError, MeshEvent, MeshStats};
pub use config::MeshConfig;

use bytes::Bytes;

use crate::cx::{Conns, Cx};
use crate::rng::{Rng, Stream};
use crate::session::{EncodeError, Prepared};
use crate::wire::{Broadcast, Message};
use crate::{Accepted, NodeId};

use seen_cache::SeenCache;

/// The mesh component.
pub(crate) struct Mesh {
    seen: SeenCache,
    next_broadcast: u64,
    max_hops: u8,
    pub(crate) stats: MeshStats,
}

impl Mesh {
    pub(crate) fn new(config: &MeshConfig, seed: u64, hasher: foldhash::fast::FixedState) -> Self {
        let mut rng = Rng::derive(seed, Stream::Mesh, None);
        Mesh {
            seen: SeenCache::new(config.seen_cache_capacity, config.seen_cache_ttl, hasher),
            // A random start, so a restarted node's broadcasts are not taken
            // for the ones its previous run sent (48 bits keep the varint
            // at 7 bytes).
            next_broadcast: rng.next_u64() >> 16,
            max_hops: config.max_hops,
            stats: MeshStats::default(),
        }
    }

    /// Broadcast ids remembered.
    pub(crate) fn seen_len(&self) -> usize {
        self.seen.len()
    }

    /// Broadcast ids forgotten early because the seen-cache was full.
    pub(crate) fn seen_evicted_early(&self) -> u64 {
        self.seen.evicted_early
    }

    /// Ages the seen-cache (the node's maintenance round).
    pub(crate) fn expire(&mut self, cx: &dyn Cx) {
        self.seen.expire(cx.now());
    }

    /// `MeshCommand::Broadcast`. Refused, with nothing sent, if the message
    /// would exceed a connected peer's frame cap (decompressed, as the
    /// receiver checks it): rather than have that peer close on us.
    pub(crate) fn broadcast(
        &mut self,
        cx: &mut dyn Cx,
        payload: Bytes,
    ) -> Result<Accepted, MeshError> {
        // A `Broadcast` adds its origin, sequence number, hop count and the
        // payload's length: far less than this.
        const HEADER_MAX: usize = 64;
        let mut smallest: Option<usize> = None;
        cx.for_each_link(&mut |_, conn| {
            if let Some(max) = cx.max_message_len(conn) {
                smallest = Some(smallest.map_or(max, |s| s.min(max)));
            }
        });
        if let Some(max) = smallest
            && payload.len() + HEADER_MAX > max
        {
            let message = Message::Broadcast(Broadcast {
                origin: cx.me(),
                seq: self.next_broadcast,
                hops: 1,
                payload: payload.clone(),
            });
            let len = Prepared::new(&message).message_len();
            if len > max {
                return Err(MeshError::TooLarge { len, max });
            }
        }
        let seq = self.next_broadcast;
        self.next_broadcast += 1;
        self.seen.insert((cx.me(), seq), cx.now());
        self.stats.sent += 1;
        let broadcast = Broadcast {
            origin: cx.me(),
            seq,
            hops: 1,
            payload,
        };
        self.relay(cx, broadcast, None);
        Ok(Accepted::Broadcast { seq })
    }

    /// A `Broadcast` arrived from `from`.
    pub(crate) fn on_broadcast(&mut self, cx: &mut dyn Cx, from: NodeId, broadcast: Broadcast) {
        if broadcast.origin == cx.me()
            || !self
                .seen
                .insert((broadcast.origin, broadcast.seq), cx.now())
        {
            self.stats.duplicate += 1;
            return;
        }
        self.stats.delivered += 1;
        cx.emit(MeshEvent::Broadcast {
            origin: broadcast.origin,
            seq: broadcast.seq,
            hops: broadcast.hops,
            payload: broadcast.payload.clone(),
        });
        if broadcast.hops >= self.max_hops {
            self.stats.hop_limited += 1;
            return;
        }
        let relayed = Broadcast {
            hops: broadcast.hops + 1,
            ..broadcast
        };
        self.relay(cx, relayed, Some(from));
    }

    /// Sends `broadcast` to every peer that is up except `from` and its
    /// origin. The message is encoded once for all of them (once per
    /// compression variant; in plaintext mode the very same frame buffer
    /// goes to every peer).
    fn relay(&mut self, cx: &mut dyn Cx, broadcast: Broadcast, from: Option<NodeId>) {
        let origin = broadcast.origin;
        let mut targets = Conns::new();
        cx.for_each_link(&mut |id, conn| {
            if Some(id) != from && id != origin {
                targets.push(conn);
            }
        });
        // Hash order is fixed by the seed, but sorting keeps the output
        // order independent of the table's history.
        targets.sort_unstable();
        let relaying = from.is_some();
        let message = Message::Broadcast(broadcast);
        let mut prepared = Prepared::new(&message);
        for conn in targets {
            match cx.send_prepared(conn, &mut prepared) {
                Ok(()) => self.stats.relayed += u64::from(relaying),
                Err(EncodeError::TooLarge { .. }) => self.stats.oversized += 1,
                Err(_) => {}
            }
        }
    }
}
