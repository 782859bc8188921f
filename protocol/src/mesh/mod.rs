//! The `mesh` component (spec/mesh.md): signed broadcasts with a bounded
//! replay window and a hop limit, spread by flooding or by Plumtree
//! (`plumtree.rs`) over the mesh's peers (every peer that is up, or
//! HyParView's active view: [`MeshPeers`]). A broadcast is verified before
//! it is delivered or relayed; a verified one is relayed to the mesh peers
//! except the one it came from and its origin (in Plumtree mode, to the
//! eager ones, and announced to the lazy ones), encoded once for all of
//! them. A peer that relays forgeries is closed after a few.

mod api;
pub(crate) mod config;
pub(crate) mod plumtree;
mod replay;

pub use api::{MeshCommand, MeshError, MeshEvent, MeshStats};
pub use config::{BroadcastMode, Membership, MeshConfig, PlumtreeConfig};

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use tracing::{debug, info};

use crate::cx::{Conns, Cx};
use crate::rng::{Rng, Stream};
use crate::session::{EncodeError, Prepared};
use crate::wire::{BROADCAST_OVERHEAD_MAX, Broadcast, Graft, IHave, Message, Prune};
use crate::{Accepted, NodeId};

use plumtree::{GraftAnswer, Plumtree};
use replay::{ReplayWindow, Seen};

/// Who the mesh's peers are: the membership's narrow view, as the mesh
/// reads it.
pub(crate) trait MeshPeers {
    /// Whether broadcasts go to (and are taken from) `peer`, a peer that
    /// is up.
    fn is_mesh_peer(&self, peer: NodeId) -> bool;
}

/// Every peer that is up is a mesh peer ([`Membership::AllPeers`]).
pub(crate) struct AllPeers;

impl MeshPeers for AllPeers {
    fn is_mesh_peer(&self, _peer: NodeId) -> bool {
        true
    }
}

/// The mesh component.
pub(crate) struct Mesh {
    window: ReplayWindow,
    next_broadcast: u64,
    max_hops: u8,
    max_forgeries: u32,
    /// Forgeries each up peer has relayed (an entry goes when the peer
    /// goes down, so there are at most as many as peers up).
    strikes: HashMap<NodeId, u32, FixedState>,
    /// Plumtree's state, in Plumtree mode.
    pub(crate) plumtree: Option<Box<Plumtree>>,
    /// Plumtree's `optimize_threshold` (0: off).
    optimize_threshold: u8,
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
            strikes: HashMap::with_hasher(hasher.clone()),
            optimize_threshold: match &config.broadcast {
                BroadcastMode::Plumtree(pt) => pt.optimize_threshold,
                BroadcastMode::Flood => 0,
            },
            plumtree: match &config.broadcast {
                BroadcastMode::Flood => None,
                BroadcastMode::Plumtree(pt) => Some(Box::new(Plumtree::new(pt, hasher))),
            },
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

    /// `peer` went down: its strikes go with it, and an eager mesh link
    /// with it was a tree link lost.
    pub(crate) fn peer_down(&mut self, peers: &dyn MeshPeers, peer: NodeId) {
        self.strikes.remove(&peer);
        if let Some(pt) = &mut self.plumtree
            && peers.is_mesh_peer(peer)
            && !pt.is_lazy(peer)
        {
            pt.tree_link_lost();
        }
        self.neighbor_changed(peer);
    }

    /// `peer` entered or left the mesh: Plumtree pushes eagerly to it when
    /// it is next a mesh peer.
    pub(crate) fn neighbor_changed(&mut self, peer: NodeId) {
        if let Some(pt) = &mut self.plumtree {
            pt.forget(peer);
        }
    }

    /// `peer` entered the mesh: Plumtree pushes to it eagerly, or lazily
    /// if this node is on a tree already ([`Plumtree::link_starts_lazy`]),
    /// and announces its newest kept broadcasts to it (every one kept if
    /// it `asked` to link: [`Plumtree::announce_kept`]).
    pub(crate) fn neighbor_joined(
        &mut self,
        cx: &mut dyn Cx,
        peers: &dyn MeshPeers,
        peer: NodeId,
        asked: bool,
    ) {
        if let Some(pt) = &mut self.plumtree {
            pt.forget(peer);
            let mut eager_elsewhere = false;
            cx.for_each_link(&mut |id, _| {
                eager_elsewhere |= id != peer && peers.is_mesh_peer(id) && !pt.is_lazy(id);
            });
            if pt.link_starts_lazy(eager_elsewhere) {
                pt.make_lazy(peer);
            }
            pt.announce_kept(cx, peer, asked, &mut self.stats);
        }
    }

    /// `MeshCommand::Broadcast`: signs it and sends it to every up peer.
    /// Refused, with nothing sent, if the message would exceed a connected
    /// peer's frame cap (decompressed, as the receiver checks it): rather
    /// than have that peer close on us.
    pub(crate) fn broadcast(
        &mut self,
        cx: &mut dyn Cx,
        peers: &dyn MeshPeers,
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
        self.spread(cx, peers, broadcast, None);
        Ok(Accepted::Broadcast { seq })
    }

    /// A `Broadcast` arrived from `from`: dropped if our own, already
    /// delivered or too old (without verifying); verified; a forgery is
    /// dropped and counted against `from`; a genuine one is recorded,
    /// delivered and relayed.
    pub(crate) fn on_broadcast(
        &mut self,
        cx: &mut dyn Cx,
        peers: &dyn MeshPeers,
        from: NodeId,
        broadcast: Broadcast,
    ) -> Verdict {
        let (origin, run, seq) = (broadcast.origin, broadcast.run, broadcast.seq);
        if origin == cx.me() {
            self.stats.duplicate += 1;
            self.prune(cx, peers, from);
            return Verdict::Done;
        }
        match self.window.seen(origin, run, seq) {
            Seen::Fresh => {}
            Seen::Duplicate => {
                self.stats.duplicate += 1;
                self.prune(cx, peers, from);
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
        if let Some(pt) = &mut self.plumtree
            && peers.is_mesh_peer(from)
        {
            // The first copy came over this link: it is the tree's.
            pt.make_eager(from);
        }
        if broadcast.hops >= self.max_hops {
            self.stats.hop_limited += 1;
            return Verdict::Done;
        }
        let relayed = Broadcast {
            hops: broadcast.hops + 1,
            ..broadcast
        };
        self.spread(cx, peers, relayed, Some(from));
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

    /// Plumtree: a duplicate came from the mesh peer `from`; the link
    /// leaves the tree (both ends push lazily on it). The `Prune` goes
    /// even if this end was lazy already: `from` pushed eagerly, so it
    /// holds the link eager (a link that came up lazy on this end only,
    /// [`Plumtree::link_starts_lazy`]), and would go on pushing.
    fn prune(&mut self, cx: &mut dyn Cx, peers: &dyn MeshPeers, from: NodeId) {
        if let Some(pt) = &mut self.plumtree
            && peers.is_mesh_peer(from)
        {
            pt.make_lazy(from);
            let message = Message::Prune(Prune);
            let len = Prepared::new(&message).message_len();
            if cx.send(from, &message).is_ok() {
                self.stats.prunes_sent += 1;
                self.stats.control_bytes += len as u64;
            }
        }
    }

    /// `IHave` from `from`: the announced broadcasts this node has not
    /// delivered are awaited, and grafted if they do not come.
    pub(crate) fn on_ihave(
        &mut self,
        cx: &mut dyn Cx,
        peers: &dyn MeshPeers,
        from: NodeId,
        ihave: IHave,
    ) {
        let Some(pt) = &mut self.plumtree else {
            return;
        };
        if !peers.is_mesh_peer(from) {
            return;
        }
        let me = cx.me();
        let threshold = self.optimize_threshold;
        for a in ihave.announcements {
            if a.id.origin == me {
                continue;
            }
            match self.window.seen(a.id.origin, a.id.run, a.id.seq) {
                Seen::Fresh => pt.missing(cx, from, a.id, &mut self.stats),
                Seen::Duplicate => {
                    if let Some(parent) = pt.shorter_path(from, a.id, a.hops, threshold) {
                        let graft = Message::Graft(Graft {
                            send: false,
                            id: a.id,
                        });
                        let prune = Message::Prune(Prune);
                        let glen = Prepared::new(&graft).message_len();
                        let plen = Prepared::new(&prune).message_len();
                        if cx.send(from, &graft).is_ok() {
                            self.stats.control_bytes += glen as u64;
                            self.stats.grafts_sent += 1;
                        }
                        if cx.send(parent, &prune).is_ok() {
                            self.stats.control_bytes += plen as u64;
                            self.stats.prunes_sent += 1;
                        }
                        self.stats.optimized += 1;
                    }
                }
                Seen::TooOld => {}
            }
        }
    }

    /// `Graft` from `from`: the link joins the tree; the broadcast is sent
    /// if it is still kept.
    pub(crate) fn on_graft(
        &mut self,
        cx: &mut dyn Cx,
        peers: &dyn MeshPeers,
        from: NodeId,
        graft: Graft,
    ) {
        let Some(pt) = &mut self.plumtree else {
            return;
        };
        if !peers.is_mesh_peer(from) {
            return;
        }
        let kept = pt.grafted(from, graft.id);
        if !graft.send {
            return;
        }
        match kept {
            GraftAnswer::Send(broadcast) => {
                if cx.send(from, &Message::Broadcast(broadcast)).is_ok() {
                    self.stats.grafts_answered += 1;
                }
            }
            GraftAnswer::Missed => self.stats.graft_missed += 1,
            GraftAnswer::Repeated => self.stats.grafts_repeated += 1,
        }
    }

    /// `Prune` from `from`: push lazily to it.
    pub(crate) fn on_prune(&mut self, peers: &dyn MeshPeers, from: NodeId) {
        if let Some(pt) = &mut self.plumtree
            && peers.is_mesh_peer(from)
        {
            pt.make_lazy(from);
        }
    }

    /// The earliest deadline and its sequence number (Plumtree's timers).
    pub(crate) fn peek_timer(&self) -> Option<(crate::time::Instant, u64)> {
        self.plumtree.as_ref().and_then(|pt| pt.timers.peek())
    }

    /// Deadlines queued.
    pub(crate) fn deadline_count(&self) -> usize {
        self.plumtree.as_ref().map_or(0, |pt| pt.timers.len())
    }

    /// Drops dead deadlines from the top, and sweeps the queue when it
    /// has doubled.
    pub(crate) fn tidy_timers(&mut self) {
        if let Some(pt) = self.plumtree.as_deref_mut() {
            pt.tidy();
        }
    }

    /// Fires the earliest Plumtree deadline (the router found it due).
    pub(crate) fn fire_next(&mut self, cx: &mut dyn Cx, peers: &dyn MeshPeers) {
        let Some(pt) = self.plumtree.as_deref_mut() else {
            return;
        };
        if let Some(timer) = pt.timers.pop()
            && pt.is_live(&timer)
        {
            pt.fire(cx, timer, &|peer| peers.is_mesh_peer(peer), &mut self.stats);
        }
    }

    /// Sends `broadcast` on: flooding, to every mesh peer but `from` and
    /// its origin; Plumtree, to the eager ones, announcing it to the lazy
    /// ones (and keeping it for their grafts).
    fn spread(
        &mut self,
        cx: &mut dyn Cx,
        peers: &dyn MeshPeers,
        broadcast: Broadcast,
        from: Option<NodeId>,
    ) {
        let Some(pt) = self.plumtree.as_deref_mut() else {
            relay(cx, &mut self.stats, broadcast, from, &|id| {
                peers.is_mesh_peer(id)
            });
            return;
        };
        pt.delivered(cx.now(), &broadcast, from, &mut self.stats);
        let origin = broadcast.origin;
        for peer in cx.peers_up() {
            if Some(peer) != from && peer != origin && peers.is_mesh_peer(peer) && pt.is_lazy(peer)
            {
                pt.announce(cx, peer, &broadcast, &mut self.stats);
            }
        }
        let pt = &*pt;
        relay(cx, &mut self.stats, broadcast, from, &|id| {
            peers.is_mesh_peer(id) && !pt.is_lazy(id)
        });
    }
}

/// Sends `broadcast` to every peer that is up and that `keep` names, except
/// `from` and its origin. The message is encoded once for all of them (once
/// per compression variant; in plaintext mode the very same frame buffer
/// goes to every peer).
fn relay(
    cx: &mut dyn Cx,
    stats: &mut MeshStats,
    broadcast: Broadcast,
    from: Option<NodeId>,
    keep: &dyn Fn(NodeId) -> bool,
) {
    let origin = broadcast.origin;
    let mut targets = Conns::new();
    cx.for_each_link(&mut |id, conn| {
        if Some(id) != from && id != origin && keep(id) {
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
            Ok(()) => stats.relayed += u64::from(relaying),
            Err(EncodeError::TooLarge { .. }) => stats.oversized += 1,
            Err(_) => {}
        }
    }
}
