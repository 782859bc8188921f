//! The `mesh` component (spec/mesh.md): flooding of signed broadcasts with
//! a bounded replay window and a hop limit. A broadcast is verified before
//! it is delivered or relayed; a verified one is relayed to every peer that
//! is up except the one it came from and its origin, encoded once for all
//! of them. A peer that relays forgeries is closed after a few.

mod api;
pub(crate) mod config;
mod replay;

pub use api::{MeshCommand, MeshError, MeshEvent, MeshStats};
pub use config::MeshConfig;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use tracing::{debug, info};

use crate::cx::{Conns, Cx};
use crate::rng::{Rng, Stream};
use crate::session::{EncodeError, Prepared};
use crate::wire::{BROADCAST_OVERHEAD_MAX, Broadcast, Message};
use crate::{Accepted, NodeId};

use replay::{ReplayWindow, Seen};

/// The mesh component.
pub(crate) struct Mesh {
    window: ReplayWindow,
    next_broadcast: u64,
    max_hops: u8,
    max_forgeries: u32,
    /// Forgeries each up peer has relayed (an entry goes when the peer
    /// goes down, so there are at most as many as peers up).
    strikes: HashMap<NodeId, u32, FixedState>,
    pub(crate) stats: MeshStats,
}

/// What the router must do after a received broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Verdict {
    /// Nothing more.
    Done,
    /// Close this peer: it relayed `max_forgeries` forgeries.
    Misbehaving(NodeId),
}

impl Mesh {
    pub(crate) fn new(config: &MeshConfig, seed: u64, hasher: FixedState) -> Self {
        let mut rng = Rng::derive(seed, Stream::Mesh, None);
        Mesh {
            window: ReplayWindow::new(config.replay_origins, config.replay_runs, hasher.clone()),
            // A random start, so a node restarted under the same run nonce
            // (the same seed) is still unlikely to reuse a `seq` (48 bits
            // keep the varint at 7 bytes).
            next_broadcast: rng.next_u64() >> 16,
            max_hops: config.max_hops,
            max_forgeries: config.max_forgeries.max(1),
            strikes: HashMap::with_hasher(hasher),
            stats: MeshStats::default(),
        }
    }

    /// Origins the replay window remembers.
    pub(crate) fn replay_origins_len(&self) -> usize {
        self.window.len()
    }

    /// The counters, with the window's.
    pub(crate) fn stats(&self) -> MeshStats {
        MeshStats {
            origins_evicted: self.window.origins_evicted,
            runs_evicted: self.window.runs_evicted,
            ..self.stats
        }
    }

    /// `peer` went down: its strikes go with it.
    pub(crate) fn peer_down(&mut self, peer: NodeId) {
        self.strikes.remove(&peer);
    }

    /// `MeshCommand::Broadcast`: signs it and sends it to every up peer.
    /// Refused, with nothing sent, if the message would exceed a connected
    /// peer's frame cap (decompressed, as the receiver checks it): rather
    /// than have that peer close on us.
    pub(crate) fn broadcast(
        &mut self,
        cx: &mut dyn Cx,
        payload: Bytes,
    ) -> Result<Accepted, MeshError> {
        let (origin, run, seq) = (cx.me(), cx.run_nonce(), self.next_broadcast);
        let signature = cx.sign(&Broadcast::signed_bytes(origin, run, seq, &payload));
        let broadcast = Broadcast {
            origin,
            key: cx.public_key(),
            run,
            seq,
            hops: 1,
            signature,
            payload,
        };
        let mut smallest: Option<usize> = None;
        cx.for_each_link(&mut |_, conn| {
            if let Some(max) = cx.max_message_len(conn) {
                smallest = Some(smallest.map_or(max, |s| s.min(max)));
            }
        });
        // `BROADCAST_OVERHEAD_MAX` bounds what the header (origin, key,
        // run, seq, hops, signature) adds: encode only when it may not fit.
        if let Some(max) = smallest
            && broadcast.payload.len() + BROADCAST_OVERHEAD_MAX > max
        {
            let message = Message::Broadcast(broadcast.clone());
            let len = Prepared::new(&message).message_len();
            if len > max {
                return Err(MeshError::TooLarge { len, max });
            }
        }
        self.next_broadcast += 1;
        self.stats.sent += 1;
        self.relay(cx, broadcast, None);
        Ok(Accepted::Broadcast { seq })
    }

    /// A `Broadcast` arrived from `from`: dropped if our own, already
    /// delivered or too old (without verifying); verified; a forgery is
    /// dropped and counted against `from`; a genuine one is recorded,
    /// delivered and relayed.
    pub(crate) fn on_broadcast(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        broadcast: Broadcast,
    ) -> Verdict {
        let (origin, run, seq) = (broadcast.origin, broadcast.run, broadcast.seq);
        if origin == cx.me() {
            self.stats.duplicate += 1;
            return Verdict::Done;
        }
        match self.window.seen(origin, run, seq) {
            Seen::Fresh => {}
            Seen::Duplicate => {
                self.stats.duplicate += 1;
                return Verdict::Done;
            }
            Seen::TooOld => {
                self.stats.too_old += 1;
                debug!(peer = %from.short(), origin = %origin.short(), run, seq, "broadcast too old for the replay window: dropped");
                return Verdict::Done;
            }
        }
        let genuine = broadcast.key.node_id() == origin
            && cx.verify(
                &broadcast.key,
                &Broadcast::signed_bytes(origin, run, seq, &broadcast.payload),
                &broadcast.signature,
            );
        if !genuine {
            return self.forgery(from, origin, seq);
        }
        self.window.record(origin, run, seq);
        self.stats.delivered += 1;
        cx.emit(MeshEvent::Broadcast {
            origin,
            seq,
            hops: broadcast.hops,
            payload: broadcast.payload.clone(),
        });
        if broadcast.hops >= self.max_hops {
            self.stats.hop_limited += 1;
            return Verdict::Done;
        }
        let relayed = Broadcast {
            hops: broadcast.hops + 1,
            ..broadcast
        };
        self.relay(cx, relayed, Some(from));
        Verdict::Done
    }

    /// `from` relayed a broadcast whose key or signature is not `origin`'s.
    fn forgery(&mut self, from: NodeId, origin: NodeId, seq: u64) -> Verdict {
        self.stats.forged += 1;
        let strikes = self.strikes.entry(from).or_insert(0);
        *strikes += 1;
        debug!(peer = %from.short(), origin = %origin.short(), seq, strikes = *strikes, "forged broadcast dropped");
        if *strikes < self.max_forgeries {
            return Verdict::Done;
        }
        self.strikes.remove(&from);
        self.stats.peers_closed += 1;
        info!(peer = %from.short(), forgeries = self.max_forgeries, "closing peer: it relayed forged broadcasts");
        Verdict::Misbehaving(from)
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
