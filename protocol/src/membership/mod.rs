//! The `membership` component (spec/membership.md): HyParView (Leitão,
//! Pereira, Rodrigues, DSN 2007). The mesh's peers are a small *active
//! view*, symmetric and bounded by `active_view`; a larger *passive view*
//! holds peers known but not linked, refreshed by shuffles, from which the
//! active view is repaired when a link fails. The connection layer is the
//! failure detector (a link down is a failure, as TCP is in the paper).
//!
//! A component of its own rather than a part of `mesh`: it decides who the
//! mesh's peers are, and the mesh (flooding or Plumtree) only reads that
//! (`mesh::MeshPeers`). It returns what the router must do about the
//! links it left ([`Change`]) instead of closing them itself.

mod api;
pub(crate) mod config;

pub use api::MembershipStats;
pub use config::HyParViewConfig;

use smallvec::SmallVec;
use tracing::debug;

use crate::NodeId;
use crate::cx::Cx;
use crate::mesh::MeshPeers;
use crate::rng::{Rng, Stream};
use crate::wire::{
    Disconnect, ForwardJoin, Join, Message, Neighbor, PeerEntry, Shuffle, ShuffleReply,
};

/// Most rounds a refused promotion waits before the next.
const MAX_PROMOTE_BACKOFF: u64 = 64;

/// A change of the active view the router passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// `peer` entered the active view: broadcasts go to it. `asked`: it
    /// asked this node to link (a `Neighbor` this node accepted), because
    /// it lost a mesh peer or its view is not full; it may have missed
    /// broadcasts while its links were failing (a silent crash goes
    /// unnoticed until liveness finds it).
    Joined { peer: NodeId, asked: bool },
    /// `peer` left the active view; `release` says its link is no longer
    /// the mesh's (the router closes it unless another component needs it).
    Left { peer: NodeId, release: bool },
}

/// Active peers lost to failures kept to be dialled again.
const LOST_KEPT: usize = 4;
/// Dials of a lost peer before it is forgotten.
const LOST_TRIES: u32 = 12;
/// The longest wait between two dials of a lost peer, in membership
/// rounds (`shuffle_rounds` maintenance rounds each).
const LOST_WAIT_MAX: u64 = 64;

/// An active peer lost to a failure (its link went down, or every dial
/// failed), dialled again now and then: if it answers, it may be in an
/// overlay a partition split from this one, and linking it again merges
/// the two (spec/membership.md, "A peer lost to a failure").
#[derive(Debug, Clone)]
struct Lost {
    entry: PeerEntry,
    /// The maintenance round of its next dial.
    due: u64,
    /// Dials so far.
    tries: u32,
}

/// One active-view member.
#[derive(Debug, Clone, Copy)]
struct Active {
    peer: NodeId,
    /// Dialled for a `Neighbor` that goes out when the link comes up, with
    /// this priority.
    awaiting: Option<bool>,
}

/// HyParView's state.
pub(crate) struct HyParView {
    config: HyParViewConfig,
    rng: Rng,
    active: SmallVec<[Active; 8]>,
    passive: Vec<PeerEntry>,
    /// Active peers lost to failures, oldest first, at most `LOST_KEPT`.
    lost: Vec<Lost>,
    /// Whether this node is in the network: it sent a `Join`, or was
    /// another's contact.
    joined: bool,
    rounds: u64,
    /// The round from which a non-full active view may ask a passive
    /// peer again: each refusal doubles the wait (up to 64 rounds), so a
    /// network whose views cannot all be full does not ask every round.
    next_promote_round: u64,
    promote_backoff: u64,
    changes: Vec<Change>,
    pub(crate) stats: MembershipStats,
}

impl MeshPeers for HyParView {
    fn is_mesh_peer(&self, peer: NodeId) -> bool {
        self.active
            .iter()
            .any(|a| a.peer == peer && a.awaiting.is_none())
    }
}

impl HyParView {
    pub(crate) fn new(config: &HyParViewConfig, seed: u64) -> Self {
        let config = HyParViewConfig {
            active_view: config.active_view.max(1),
            passive_view: config.passive_view.max(1),
            ..config.clone()
        };
        HyParView {
            rng: Rng::derive(seed, Stream::Membership, None),
            active: SmallVec::new(),
            passive: Vec::with_capacity(config.passive_view),
            lost: Vec::new(),
            joined: false,
            rounds: 0,
            next_promote_round: 0,
            promote_backoff: 1,
            changes: Vec::new(),
            stats: MembershipStats::default(),
            config,
        }
    }

    /// The active view's members whose link is up and greeted, in id order.
    pub(crate) fn active_view(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self
            .active
            .iter()
            .filter(|a| a.awaiting.is_none())
            .map(|a| a.peer)
            .collect();
        peers.sort_unstable();
        peers
    }

    /// The passive view's size.
    pub(crate) fn passive_len(&self) -> usize {
        self.passive.len()
    }

    /// What the router must pass on since the last call.
    pub(crate) fn take_changes(&mut self) -> Vec<Change> {
        core::mem::take(&mut self.changes)
    }

    fn is_active(&self, peer: NodeId) -> bool {
        self.active.iter().any(|a| a.peer == peer)
    }

    fn send(&mut self, cx: &mut dyn Cx, peer: NodeId, message: Message) {
        let len = crate::session::Prepared::new(&message).message_len();
        if cx.send(peer, &message).is_ok() {
            self.stats.messages_sent += 1;
            self.stats.bytes_sent += len as u64;
        }
    }

    /// Active members that are up and greeted, except `but`, in id order.
    fn linked_except(&self, but: &[NodeId]) -> SmallVec<[NodeId; 8]> {
        let mut peers: SmallVec<[NodeId; 8]> = self
            .active
            .iter()
            .filter(|a| a.awaiting.is_none() && !but.contains(&a.peer))
            .map(|a| a.peer)
            .collect();
        peers.sort_unstable();
        peers
    }

    fn pick(&mut self, peers: &[NodeId]) -> Option<NodeId> {
        (!peers.is_empty()).then(|| peers[self.rng.below(peers.len() as u64) as usize])
    }

    /// Takes `peer` into the active view (greeted), evicting a random
    /// member if the view is full (paper, `addNodeActiveView`).
    fn add_active(&mut self, cx: &mut dyn Cx, peer: NodeId, awaiting: Option<bool>) {
        self.add_active_as(cx, peer, awaiting, false);
    }

    /// [`HyParView::add_active`], `asked` as in [`Change::Joined`].
    fn add_active_as(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        awaiting: Option<bool>,
        asked: bool,
    ) {
        if peer == cx.me() || self.is_active(peer) {
            return;
        }
        if self.active.len() >= self.config.active_view {
            let victim = self.rng.below(self.active.len() as u64) as usize;
            let victim = self.active.remove(victim);
            self.stats.evicted += 1;
            if victim.awaiting.is_none() {
                self.send(cx, victim.peer, Message::Disconnect(Disconnect));
            }
            if let Some(entry) = cx.entry(victim.peer) {
                self.add_passive(cx, entry);
            }
            self.changes.push(Change::Left {
                peer: victim.peer,
                release: true,
            });
        }
        self.passive.retain(|e| e.id != peer);
        self.active.push(Active { peer, awaiting });
        self.stats.active_added += 1;
        if awaiting.is_none() {
            self.changes.push(Change::Joined { peer, asked });
        }
    }

    fn add_passive(&mut self, cx: &dyn Cx, entry: PeerEntry) {
        if entry.id == cx.me()
            || entry.addrs.is_empty()
            || self.is_active(entry.id)
            || self.passive.iter().any(|e| e.id == entry.id)
        {
            return;
        }
        if self.passive.len() >= self.config.passive_view {
            let victim = self.rng.below(self.passive.len() as u64) as usize;
            self.passive.swap_remove(victim);
            self.stats.passive_evicted += 1;
        }
        self.passive.push(entry);
    }

    /// Removes `peer` from the active view; whether it was there.
    fn remove_active(&mut self, peer: NodeId) -> bool {
        let before = self.active.len();
        self.active.retain(|a| a.peer != peer);
        before != self.active.len()
    }

    // ----- links -----

    /// `peer` is up on a connection this node dialled (`outbound`) or
    /// accepted.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId, outbound: bool) {
        if let Some(a) = self.active.iter_mut().find(|a| a.peer == peer) {
            let high_priority = match a.awaiting.take() {
                Some(high_priority) => {
                    self.changes.push(Change::Joined { peer, asked: false });
                    high_priority
                }
                // A member linked again (its earlier link failed on its
                // side only, e.g. while this node was cut off): greet it
                // again, so that it holds this node too or says it does
                // not (views stay symmetric).
                None => self.active.len() == 1,
            };
            self.send(cx, peer, Message::Neighbor(Neighbor { high_priority }));
            return;
        }
        if let Some(i) = self.lost.iter().position(|l| l.entry.id == peer) {
            // A peer lost to a failure answers again: link it again, with
            // priority (it may be across a healed partition, where nothing
            // else would ever link the two overlays).
            let lost = self.lost.remove(i);
            self.stats.lost_relinked += 1;
            self.link(cx, lost.entry, true);
            return;
        }
        if !self.joined && self.active.is_empty() && outbound {
            // The first link a new node dialled: its contact node.
            self.joined = true;
            self.send(cx, peer, Message::Join(Join));
            self.add_active(cx, peer, None);
        }
    }

    /// `peer`'s link is down (or every dial to it failed): a failure, as
    /// TCP's in the paper. Repaired from the passive view at once.
    pub(crate) fn peer_down(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        let linked = self
            .active
            .iter()
            .any(|a| a.peer == peer && a.awaiting.is_none());
        if self.remove_active(peer) {
            self.stats.active_lost += 1;
            if linked {
                // Not a member whose dial failed: that is no sign of a
                // partition, and a dead entry kept by others' passive
                // views would be remembered again at every promotion.
                self.remember_lost(cx, peer);
            }
            self.changes.push(Change::Left {
                peer,
                release: false,
            });
            self.passive.retain(|e| e.id != peer);
            self.promote(cx);
        }
    }

    /// Keeps `peer`, a linked active peer just lost to a failure, to dial
    /// it again from the next membership round on (the oldest kept is
    /// forgotten past `LOST_KEPT`; one kept already keeps its schedule).
    fn remember_lost(&mut self, cx: &dyn Cx, peer: NodeId) {
        let Some(entry) = cx.entry(peer).filter(|e| !e.addrs.is_empty()) else {
            return;
        };
        if self.lost.iter().any(|l| l.entry.id == peer) {
            return; // its dials go on as planned
        }
        if self.lost.len() >= LOST_KEPT {
            self.lost.remove(0);
        }
        self.lost.push(Lost {
            entry,
            due: self.rounds + self.membership_round(),
            tries: 0,
        });
    }

    /// Maintenance rounds in a membership round.
    fn membership_round(&self) -> u64 {
        u64::from(self.config.shuffle_rounds.max(1))
    }

    /// Dials one lost peer whose turn has come (the first due), waiting
    /// twice as long before its next dial, up to `LOST_WAIT_MAX`
    /// membership rounds; a peer dialled `LOST_TRIES` times is forgotten.
    /// One that is up already is linked again at once.
    fn redial_lost(&mut self, cx: &mut dyn Cx) {
        let Some(i) = self.lost.iter().position(|l| l.due <= self.rounds) else {
            return;
        };
        let peer = self.lost[i].entry.id;
        if self.is_active(peer) {
            self.lost.remove(i);
            return;
        }
        if cx.is_up(peer) {
            let lost = self.lost.remove(i);
            self.stats.lost_relinked += 1;
            self.link(cx, lost.entry, true);
            return;
        }
        if self.lost[i].tries >= LOST_TRIES {
            self.lost.remove(i);
            return;
        }
        let lost = &mut self.lost[i];
        lost.tries += 1;
        let wait = (1u64 << lost.tries.min(6)).min(LOST_WAIT_MAX);
        lost.due = self.rounds + wait * u64::from(self.config.shuffle_rounds.max(1));
        let entry = lost.entry.clone();
        if !cx.is_dialling(peer) && cx.dial_pointer(&entry) {
            self.stats.lost_redials += 1;
        }
    }

    // ----- messages -----

    /// `Join` from `from`: this node is its contact.
    pub(crate) fn on_join(&mut self, cx: &mut dyn Cx, from: NodeId) {
        self.joined = true;
        self.add_active(cx, from, None);
        self.seed_joiner(cx, from);
        let Some(joiner) = cx.entry(from) else {
            debug!(peer = %from.short(), "join from a peer without a known address: not forwarded");
            return;
        };
        for peer in self.linked_except(&[from]) {
            let message = Message::ForwardJoin(ForwardJoin {
                joiner: joiner.clone(),
                ttl: self.config.active_walk,
            });
            self.send(cx, peer, message);
        }
    }

    /// Sends the joiner `joiner` this node's linked peers and a sample of
    /// its passive view (`shuffle_active` + `shuffle_passive` entries) in
    /// a `ShuffleReply`: its passive view starts with names from outside
    /// the few nodes its walks link it to (spec/membership.md, "Joining").
    /// A joiner's passive view was empty until its first shuffle was
    /// answered, so a joiner whose links died, or were evicted, before
    /// then had nobody to promote, and joiners that came in through each
    /// other under churn closed into islands.
    fn seed_joiner(&mut self, cx: &mut dyn Cx, joiner: NodeId) {
        let mut entries: Vec<PeerEntry> = self
            .linked_except(&[joiner])
            .into_iter()
            .filter_map(|p| cx.entry(p))
            .collect();
        entries
            .extend(self.passive_sample(self.config.shuffle_active + self.config.shuffle_passive));
        entries.retain(|e| e.id != joiner);
        entries.truncate(crate::wire::MAX_SHUFFLE);
        if !entries.is_empty() {
            self.stats.joiners_seeded += 1;
            self.send(cx, joiner, Message::ShuffleReply(ShuffleReply { entries }));
        }
    }

    /// `ForwardJoin` from `from`: the walk ends here (its ttl is spent, or
    /// this node has no other peer) and the joiner enters the active view,
    /// or it goes on to a random active peer.
    pub(crate) fn on_forward_join(&mut self, cx: &mut dyn Cx, from: NodeId, fj: ForwardJoin) {
        let joiner = fj.joiner.id;
        if joiner == cx.me() {
            return;
        }
        let others = self.linked_except(&[from, joiner]);
        if fj.ttl == 0 || others.is_empty() {
            self.accept_joiner(cx, fj.joiner);
            return;
        }
        if fj.ttl == self.config.passive_walk {
            self.add_passive(cx, fj.joiner.clone());
        }
        let next = self.pick(&others).expect("others is not empty");
        self.send(
            cx,
            next,
            Message::ForwardJoin(ForwardJoin {
                joiner: fj.joiner,
                ttl: fj.ttl - 1,
            }),
        );
    }

    fn accept_joiner(&mut self, cx: &mut dyn Cx, joiner: PeerEntry) {
        if self.is_active(joiner.id) {
            return;
        }
        self.link(cx, joiner, true);
    }

    /// Adds `entry` to the active view and greets it with a `Neighbor`:
    /// now if its link is up, else once the dial this starts succeeds.
    /// Whether it was added.
    fn link(&mut self, cx: &mut dyn Cx, entry: PeerEntry, high_priority: bool) -> bool {
        let peer = entry.id;
        if cx.is_up(peer) {
            self.add_active(cx, peer, None);
            self.send(cx, peer, Message::Neighbor(Neighbor { high_priority }));
            return true;
        }
        if cx.is_dialling(peer) || cx.dial_pointer(&entry) {
            self.add_active(cx, peer, Some(high_priority));
            return true;
        }
        false
    }

    /// `Neighbor` from `from`: accepted if it has priority or the view has
    /// room, refused with a `Disconnect` otherwise.
    pub(crate) fn on_neighbor(&mut self, cx: &mut dyn Cx, from: NodeId, n: Neighbor) {
        self.joined = true;
        self.promote_backoff = 1;
        if self.is_active(from) {
            // Both sides asked at once, or a join walk met a promotion.
            if let Some(a) = self.active.iter_mut().find(|a| a.peer == from)
                && a.awaiting.take().is_some()
            {
                self.changes.push(Change::Joined {
                    peer: from,
                    asked: true,
                });
            }
            return;
        }
        if n.high_priority || self.active.len() < self.config.active_view {
            self.add_active_as(cx, from, None, true);
        } else {
            self.stats.neighbor_refused += 1;
            self.send(cx, from, Message::Disconnect(Disconnect));
            self.changes.push(Change::Left {
                peer: from,
                release: true,
            });
        }
    }

    /// `Disconnect` from `from`: it left this node's active view; it goes
    /// to the passive view (it is alive), and the next round repairs.
    pub(crate) fn on_disconnect(&mut self, cx: &mut dyn Cx, from: NodeId) {
        if self.remove_active(from) {
            // Refused, or dropped for another: wait longer before asking
            // again.
            self.next_promote_round = self.rounds + self.promote_backoff;
            self.promote_backoff = (self.promote_backoff * 2).min(MAX_PROMOTE_BACKOFF);
            if let Some(entry) = cx.entry(from) {
                self.add_passive(cx, entry);
            }
            self.changes.push(Change::Left {
                peer: from,
                release: true,
            });
        }
    }

    /// `Shuffle` from `from`: forwarded on its walk, or merged here and
    /// answered with a sample of the passive view.
    pub(crate) fn on_shuffle(&mut self, cx: &mut dyn Cx, from: NodeId, shuffle: Shuffle) {
        let origin = shuffle.origin.id;
        if origin == cx.me() {
            return;
        }
        let others = self.linked_except(&[from, origin]);
        if shuffle.ttl > 1 && !others.is_empty() {
            let next = self.pick(&others).expect("others is not empty");
            let forwarded = Shuffle {
                ttl: shuffle.ttl - 1,
                ..shuffle
            };
            self.send(cx, next, Message::Shuffle(forwarded));
            return;
        }
        let reply = self.passive_sample(shuffle.entries.len());
        if cx.is_up(origin) {
            self.send(
                cx,
                origin,
                Message::ShuffleReply(ShuffleReply { entries: reply }),
            );
        } else {
            self.stats.shuffle_unanswered += 1;
        }
        self.add_passive(cx, shuffle.origin);
        for entry in shuffle.entries {
            self.add_passive(cx, entry);
        }
    }

    /// `ShuffleReply`: merged into the passive view.
    pub(crate) fn on_shuffle_reply(&mut self, cx: &mut dyn Cx, reply: ShuffleReply) {
        for entry in reply.entries {
            self.add_passive(cx, entry);
        }
    }

    fn passive_sample(&mut self, count: usize) -> Vec<PeerEntry> {
        let mut sample = self.passive.clone();
        sample.sort_unstable_by_key(|e| e.id);
        self.rng.shuffle(&mut sample);
        sample.truncate(count.min(crate::wire::MAX_SHUFFLE));
        sample
    }

    // ----- rounds -----

    /// The maintenance round: repair the active view from the passive one
    /// (one `Neighbor` per round), rejoin if both are empty, and every
    /// `shuffle_rounds` rounds start a shuffle.
    pub(crate) fn round(&mut self, cx: &mut dyn Cx) {
        self.rounds += 1;
        if !self.joined {
            return;
        }
        if self.active.is_empty()
            || (self.active.len() < self.config.active_view
                && self.rounds >= self.next_promote_round)
        {
            self.promote(cx);
        }
        self.redial_lost(cx);
        if self.active.is_empty() && self.passive.is_empty() {
            // Cut off with nobody to ask: rejoin through any link up.
            let up = cx.peers_up();
            if let Some(contact) = self.pick(&up) {
                self.send(cx, contact, Message::Join(Join));
                self.add_active(cx, contact, None);
            }
        }
        if self
            .rounds
            .is_multiple_of(u64::from(self.config.shuffle_rounds.max(1)))
        {
            self.shuffle(cx);
            self.greet_next(cx);
        }
    }

    /// Promotes a random passive entry: a `Neighbor`, with priority when
    /// the active view holds fewer than two (paper §4.3 says empty; see
    /// spec/membership.md, "Promotion"). An entry that cannot be
    /// dialled is dropped and the next tried.
    fn promote(&mut self, cx: &mut dyn Cx) {
        if self.active.iter().any(|a| a.awaiting.is_some()) {
            return;
        }
        while self.active.len() < self.config.active_view && !self.passive.is_empty() {
            let k = self.rng.below(self.passive.len() as u64) as usize;
            let entry = self.passive.swap_remove(k);
            // Paper §4.3 asks with priority only when the view is empty
            // (an isolated node must be accepted). A node on one link is a
            // single failure away from that, and under churn views full
            // everywhere refuse it until then: a crash it has not yet
            // detected would cut it off from every broadcast meanwhile.
            let high_priority = self.active.len() < 2;
            if self.link(cx, entry, high_priority) {
                self.stats.promoted += 1;
                return;
            }
        }
    }

    /// Greets one linked member again, in turn (each is greeted once every
    /// `active_view` membership rounds): a `Disconnect` or `Neighbor` lost
    /// on a link that stayed up (a partition shorter than liveness's
    /// verdict) would otherwise leave one side holding a peer that does
    /// not hold it. The member keeps this node, takes it, or refuses it
    /// with a `Disconnect`.
    fn greet_next(&mut self, cx: &mut dyn Cx) {
        let linked = self.linked_except(&[]);
        if linked.is_empty() {
            return;
        }
        let peer = linked
            [(self.rounds / u64::from(self.config.shuffle_rounds.max(1))) as usize % linked.len()];
        let high_priority = linked.len() == 1;
        self.send(cx, peer, Message::Neighbor(Neighbor { high_priority }));
    }

    fn shuffle(&mut self, cx: &mut dyn Cx) {
        let linked = self.linked_except(&[]);
        let Some(to) = self.pick(&linked) else {
            return;
        };
        let Some(me) = cx.listen_entry() else {
            return;
        };
        let mut sample: Vec<NodeId> = linked.iter().copied().filter(|&p| p != to).collect();
        self.rng.shuffle(&mut sample);
        sample.truncate(self.config.shuffle_active);
        let mut entries: Vec<PeerEntry> = sample.into_iter().filter_map(|p| cx.entry(p)).collect();
        entries.extend(self.passive_sample(self.config.shuffle_passive));
        entries.truncate(crate::wire::MAX_SHUFFLE);
        self.stats.shuffles += 1;
        let message = Message::Shuffle(Shuffle {
            origin: me,
            ttl: self.config.active_walk,
            entries,
        });
        self.send(cx, to, message);
    }
}
