//! Plumtree (Leitão, Pereira, Rodrigues, SRDS 2007; spec/mesh.md,
//! "Plumtree"): broadcasts go eagerly along a spanning tree of the mesh's
//! links and are announced lazily (`IHave`, batched by a timer) on the
//! others. A duplicate prunes the link it came on (`Prune`: both ends push
//! lazily on it from then on); an announced broadcast that does not come
//! within `graft_timeout` is grafted (`Graft`: the announcer sends it and
//! the link becomes eager again), which is how the tree repairs itself
//! after a failure. The tree is shared by every origin.
//!
//! The broadcast ids, signatures, hop limit and replay window are the
//! mesh's (`mod.rs`); this file keeps the eager/lazy split, the
//! announcements waiting to go out, the broadcasts announced but missing,
//! and the delivered broadcasts kept for grafts.

use std::collections::VecDeque;

use foldhash::fast::FixedState;
use hashbrown::{HashMap, HashSet};
use smallvec::SmallVec;

use super::MeshStats;
use super::config::PlumtreeConfig;
use crate::NodeId;
use crate::cx::Cx;
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::{
    Announcement, BROADCAST_OVERHEAD_MAX, Broadcast, BroadcastId, Graft, IHave, MAX_IHAVE, Message,
};

/// Most announcers remembered per missing broadcast (each a graft to try).
const MAX_ANNOUNCERS: usize = 8;

/// What a kept broadcast counts against `cache_bytes`: its payload and
/// its header (so that empty broadcasts cannot fill the cache for free).
fn cost(broadcast: &Broadcast) -> usize {
    broadcast.payload.len() + BROADCAST_OVERHEAD_MAX
}

/// Plumtree's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Send the batched announcements.
    FlushIHave,
    /// Graft this broadcast from its next announcer, if still missing.
    Graft(BroadcastId),
}

/// A delivered broadcast kept for grafts.
struct Kept {
    broadcast: Broadcast,
    /// The peer it came from (`None`: this node's own).
    parent: Option<NodeId>,
    /// The peers a `Graft` of it was answered to: each gets it once, so a
    /// peer repeating a `Graft` cannot make this node send the same
    /// payload over and over (a few bytes in, a broadcast out).
    answered: SmallVec<[NodeId; 2]>,
}

/// What a `Graft` gets ([`Plumtree::grafted`]).
pub(crate) enum GraftAnswer {
    /// The kept broadcast, to send.
    Send(Broadcast),
    /// It is no longer kept (or never was).
    Missed,
    /// It was answered to this peer before.
    Repeated,
}

/// Plumtree's state (the mesh holds it in Plumtree mode).
pub(crate) struct Plumtree {
    config: PlumtreeConfig,
    /// Mesh peers pushed to lazily; the others are eager.
    lazy: HashSet<NodeId, FixedState>,
    /// Delivered broadcasts kept for grafts, with the order they expire in.
    /// Each with the peer it came from (`None`: this node's own).
    cache: HashMap<BroadcastId, Kept, FixedState>,
    cache_order: VecDeque<(Instant, BroadcastId)>,
    cache_held: usize,
    /// Announcements waiting for the `IHave` timer.
    pending: Vec<(NodeId, Announcement)>,
    flush_armed: bool,
    /// Broadcasts announced but not received: who announced them, in order.
    missing: HashMap<BroadcastId, SmallVec<[NodeId; 4]>, FixedState>,
    /// Whether this node's tree is whole: it delivered (or sent) a
    /// broadcast since it last lost an eager mesh link. A new mesh link
    /// then joins lazily ([`Plumtree::link_starts_lazy`]).
    tree_whole: bool,
    pub(crate) timers: DeadlineQueue<Timer>,
}

impl Plumtree {
    pub(crate) fn new(config: &PlumtreeConfig, hasher: FixedState) -> Self {
        Plumtree {
            config: config.clone(),
            lazy: HashSet::with_hasher(hasher.clone()),
            cache: HashMap::with_hasher(hasher.clone()),
            cache_order: VecDeque::new(),
            cache_held: 0,
            pending: Vec::new(),
            flush_armed: false,
            missing: HashMap::with_hasher(hasher),
            tree_whole: false,
            timers: DeadlineQueue::new(),
        }
    }

    /// Whether `peer` is pushed to lazily.
    pub(crate) fn is_lazy(&self, peer: NodeId) -> bool {
        self.lazy.contains(&peer)
    }

    /// `peer` left the mesh (or came into it): it starts eager next time.
    pub(crate) fn forget(&mut self, peer: NodeId) {
        self.lazy.remove(&peer);
    }

    /// `peer` sent us a broadcast first or grafted: push eagerly to it.
    pub(crate) fn make_eager(&mut self, peer: NodeId) {
        self.lazy.remove(&peer);
    }

    /// Whether a mesh link that just came up to a new neighbour starts
    /// lazy (spec/mesh.md, "A new link"): yes when this node's tree is
    /// whole (it delivered or sent a broadcast, and lost no eager link
    /// since) and another of its links is eager. Such a node is reached
    /// over its tree links already; an eager new link would close a cycle
    /// that the next broadcast must prune again, cutting whichever of the
    /// cycle's links that broadcast's copy crossed last, so that a network
    /// whose views keep changing drifts towards deep trees. A node before
    /// its first broadcast, one that lost a tree link, or one with no
    /// eager link left takes the link eagerly, as the paper's
    /// `NeighborUp` does: it may be cut off from the tree.
    pub(crate) fn link_starts_lazy(&self, eager_elsewhere: bool) -> bool {
        self.tree_whole && eager_elsewhere
    }

    /// An eager mesh link went down: this node may be cut off from the
    /// tree, so its next links start eager.
    pub(crate) fn tree_link_lost(&mut self) {
        self.tree_whole = false;
    }

    /// A `Prune` from `peer`, or a duplicate it sent: push lazily to it.
    pub(crate) fn make_lazy(&mut self, peer: NodeId) {
        self.lazy.insert(peer);
    }

    /// A broadcast was delivered (or originated): keep it for grafts, and
    /// stop waiting for it.
    pub(crate) fn delivered(
        &mut self,
        now: Instant,
        broadcast: &Broadcast,
        from: Option<NodeId>,
        stats: &mut MeshStats,
    ) {
        let id = BroadcastId {
            origin: broadcast.origin,
            run: broadcast.run,
            seq: broadcast.seq,
        };
        self.tree_whole = true;
        self.missing.remove(&id);
        while let Some(&(at, old)) = self.cache_order.front()
            && (at <= now || self.cache_held + cost(broadcast) > self.config.cache_bytes)
        {
            self.cache_order.pop_front();
            if let Some(kept) = self.cache.remove(&old) {
                self.cache_held -= cost(&kept.broadcast);
                if at > now {
                    stats.cache_dropped += 1;
                }
            }
        }
        if cost(broadcast) > self.config.cache_bytes {
            stats.cache_dropped += 1;
            return;
        }
        self.cache_held += cost(broadcast);
        self.cache_order
            .push_back((now + self.config.cache_window, id));
        self.cache.insert(
            id,
            Kept {
                broadcast: broadcast.clone(),
                parent: from,
                answered: SmallVec::new(),
            },
        );
    }

    /// Queues an announcement of `broadcast` for `peer`.
    pub(crate) fn announce(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        broadcast: &Broadcast,
        stats: &mut MeshStats,
    ) {
        let announcement = Announcement {
            id: BroadcastId {
                origin: broadcast.origin,
                run: broadcast.run,
                seq: broadcast.seq,
            },
            hops: broadcast.hops,
        };
        self.queue(cx, peer, announcement, stats);
    }

    /// Queues `announcement` for `peer`, arming the flush.
    fn queue(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        announcement: Announcement,
        stats: &mut MeshStats,
    ) {
        if self.pending.len() >= self.config.max_pending_ihave {
            stats.ihave_dropped += 1;
            return;
        }
        self.pending.push((peer, announcement));
        if !self.flush_armed {
            self.flush_armed = true;
            let at = cx.now() + self.config.ihave_interval;
            let seq = cx.timer_seq();
            self.timers.push_seq(at, seq, Timer::FlushIHave);
        }
    }

    /// `peer` just became a mesh peer: announce to it the kept broadcasts
    /// delivered in the last `link_announce`, this node's own still kept,
    /// and, if `peer` `asked` to link (it lost a mesh peer, or its view is
    /// not full), every one still kept; at most `MAX_IHAVE`, none it sent
    /// or originated, as if it had been a lazy peer when they were
    /// relayed. A node whose tree path broke while a broadcast was on its
    /// way, and whose repair link came up after its new neighbour had
    /// relayed it, would otherwise never hear of that broadcast: no
    /// `IHave` was sent on a link that did not exist yet. A node whose
    /// mesh peers crashed silently is cut off until liveness finds it
    /// (up to 26 s with the WAN preset), longer than `link_announce`: it
    /// asks for its new links, so it hears of every broadcast kept. Those
    /// it already holds it ignores.
    pub(crate) fn announce_kept(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        asked: bool,
        stats: &mut MeshStats,
    ) {
        let now = cx.now();
        let mut newest: SmallVec<[Announcement; 16]> = SmallVec::new();
        for &(expires, id) in self.cache_order.iter().rev() {
            // Kept from delivery until `expires`: delivered at
            // `expires - cache_window`.
            if newest.len() >= MAX_IHAVE || expires <= now {
                break;
            }
            let Some(kept) = self.cache.get(&id) else {
                continue;
            };
            let recent = expires - self.config.cache_window + self.config.link_announce > now;
            // Its own for as long as they are kept (it may be their only
            // holder), and every one kept to a peer that asked to link
            // (it may have missed them), unless announcing is off
            // (spec/mesh.md, "A new link").
            let whole_window =
                (kept.parent.is_none() || asked) && self.config.link_announce > Duration::ZERO;
            if !recent && !whole_window {
                continue;
            }
            if kept.parent == Some(peer) || kept.broadcast.origin == peer {
                continue;
            }
            // No path is offered: the link is new, and the tree's
            // optimisation must not rebuild the tree for broadcasts that
            // are over (hops 255 never shows a shorter path).
            newest.push(Announcement { id, hops: u8::MAX });
        }
        // Oldest first, as they were relayed.
        for announcement in newest.into_iter().rev() {
            self.queue(cx, peer, announcement, stats);
        }
    }

    /// An `IHave` announced `id` (which the replay window calls fresh) from
    /// the mesh peer `from`: remember the announcer and arm its graft.
    pub(crate) fn missing(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        id: BroadcastId,
        stats: &mut MeshStats,
    ) {
        if let Some(announcers) = self.missing.get_mut(&id) {
            if announcers.len() < MAX_ANNOUNCERS && !announcers.contains(&from) {
                announcers.push(from);
            }
            return;
        }
        if self.missing.len() >= self.config.max_missing {
            stats.missing_dropped += 1;
            return;
        }
        self.missing.insert(id, SmallVec::from_slice(&[from]));
        let at = cx.now() + self.config.graft_timeout;
        let seq = cx.timer_seq();
        self.timers.push_seq(at, seq, Timer::Graft(id));
    }

    /// A `Graft` for `id` from the mesh peer `from`: the link is eager
    /// again; the broadcast, if still kept and not answered to `from`
    /// before.
    pub(crate) fn grafted(&mut self, from: NodeId, id: BroadcastId) -> GraftAnswer {
        self.lazy.remove(&from);
        let Some(kept) = self.cache.get_mut(&id) else {
            return GraftAnswer::Missed;
        };
        if kept.answered.contains(&from) {
            return GraftAnswer::Repeated;
        }
        kept.answered.push(from);
        GraftAnswer::Send(kept.broadcast.clone())
    }

    /// The tree's optimisation (paper §3.8): an `IHave` from `from` shows
    /// a path to `id` at least `threshold` hops shorter than the one it
    /// came by; returns the parent to prune, after making `from` eager.
    pub(crate) fn shorter_path(
        &mut self,
        from: NodeId,
        id: BroadcastId,
        announced_hops: u8,
        threshold: u8,
    ) -> Option<NodeId> {
        let kept = self.cache.get(&id)?;
        let (broadcast, parent) = (&kept.broadcast, kept.parent?);
        // The cached copy is the relayed one: it came with one hop less.
        let came_with = broadcast.hops.saturating_sub(1);
        if parent == from
            || threshold == 0
            || came_with < announced_hops.saturating_add(1).saturating_add(threshold)
        {
            return None;
        }
        self.lazy.remove(&from);
        self.lazy.insert(parent);
        // Later broadcasts' parent is `from` now; this one's stays.
        Some(parent)
    }

    /// Fires `timer`. `is_mesh_peer` says who may still be grafted.
    pub(crate) fn fire(
        &mut self,
        cx: &mut dyn Cx,
        timer: Timer,
        is_mesh_peer: &dyn Fn(NodeId) -> bool,
        stats: &mut MeshStats,
    ) {
        match timer {
            Timer::FlushIHave => {
                self.flush_armed = false;
                let mut pending = core::mem::take(&mut self.pending);
                // Stable by peer: each peer's announcements keep their order.
                pending.sort_by_key(|&(peer, _)| peer);
                for group in pending.chunk_by(|a, b| a.0 == b.0) {
                    let peer = group[0].0;
                    if !is_mesh_peer(peer) {
                        continue;
                    }
                    for chunk in group.chunks(MAX_IHAVE) {
                        let message = Message::IHave(IHave {
                            announcements: chunk.iter().map(|&(_, a)| a).collect(),
                        });
                        let len = crate::session::Prepared::new(&message).message_len();
                        if cx.send(peer, &message).is_ok() {
                            stats.ihave_sent += 1;
                            stats.ihave_announced += chunk.len() as u64;
                            stats.control_bytes += len as u64;
                        }
                    }
                }
            }
            Timer::Graft(id) => {
                let Some(announcers) = self.missing.get_mut(&id) else {
                    return;
                };
                while !announcers.is_empty() {
                    let peer = announcers.remove(0);
                    if !is_mesh_peer(peer) {
                        continue;
                    }
                    self.lazy.remove(&peer);
                    let message = Message::Graft(Graft { send: true, id });
                    let len = crate::session::Prepared::new(&message).message_len();
                    if cx.send(peer, &message).is_ok() {
                        stats.grafts_sent += 1;
                        stats.control_bytes += len as u64;
                        let at = cx.now() + self.config.graft_retry;
                        let seq = cx.timer_seq();
                        self.timers.push_seq(at, seq, Timer::Graft(id));
                        return;
                    }
                }
                // Nobody left to ask: the broadcast is lost to this node
                // unless another announcement comes.
                self.missing.remove(&id);
            }
        }
    }

    /// Drops dead deadlines from the top, and sweeps the queue when it
    /// has doubled.
    pub(crate) fn tidy(&mut self) {
        let missing = &self.missing;
        self.timers.tidy(|timer| match timer {
            Timer::FlushIHave => true,
            Timer::Graft(id) => missing.contains_key(id),
        });
    }

    /// Whether `timer` still applies.
    pub(crate) fn is_live(&self, timer: &Timer) -> bool {
        match timer {
            Timer::FlushIHave => true,
            Timer::Graft(id) => self.missing.contains_key(id),
        }
    }

    /// Broadcasts kept for grafts, and the bytes they count (payload and
    /// header each).
    pub(crate) fn cache_len(&self) -> (usize, usize) {
        (self.cache.len(), self.cache_held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PublicKey;
    use bytes::Bytes;

    fn broadcast(seq: u64, len: usize) -> Broadcast {
        Broadcast {
            origin: NodeId::from_u128(7),
            key: PublicKey::from_bytes([0; 32]),
            run: 1,
            seq,
            hops: 1,
            signature: [0; 64],
            payload: Bytes::from(vec![0; len]),
        }
    }

    #[test]
    fn the_graft_cache_stays_within_its_bytes_and_counts_what_it_drops() {
        let config = PlumtreeConfig {
            cache_bytes: 3 * (100 + BROADCAST_OVERHEAD_MAX),
            ..PlumtreeConfig::default()
        };
        let mut pt = Plumtree::new(&config, FixedState::default());
        let mut stats = MeshStats::default();
        let now = Instant::ZERO;
        for seq in 0..5 {
            pt.delivered(now, &broadcast(seq, 100), None, &mut stats);
            assert!(pt.cache_len().1 <= config.cache_bytes);
        }
        assert_eq!(pt.cache_len().0, 3, "the three newest are kept");
        assert_eq!(stats.cache_dropped, 2);
        // Empty payloads count their header: they cannot fill it for free.
        for seq in 5..100 {
            pt.delivered(now, &broadcast(seq, 0), None, &mut stats);
        }
        assert!(pt.cache_len().0 <= config.cache_bytes / BROADCAST_OVERHEAD_MAX);
        // Past the window everything old goes, without counting a drop.
        let later = now + config.cache_window + Duration::from_secs(1);
        let dropped = stats.cache_dropped;
        pt.delivered(later, &broadcast(100, 0), None, &mut stats);
        assert_eq!(pt.cache_len().0, 1);
        assert_eq!(stats.cache_dropped, dropped);
    }
}
