//! The `chord` component's commands, events, refusals and counters.

use crate::wire::PeerEntry;
use crate::{NodeId, OpId};

/// Where a node stands towards the ring (spec/chord.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChordRole {
    /// `Config::chord` is `None`.
    Off,
    /// Chord runs, but the node is not a ring member (not joined yet, or its
    /// join failed).
    Out,
    /// A ring member.
    Member,
}

/// The ring: [`Command::Chord`](crate::Command::Chord).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChordCommand {
    /// Found a ring with Zave's initialization (spec/chord.md §5.1): every
    /// founder gets the same `founders` list, itself included, of at least
    /// `chord.successors + 1` distinct nodes with addresses. Each computes
    /// its place in the ideal ring; no message is needed.
    Found {
        /// All founders, this node included.
        founders: Vec<PeerEntry>,
    },
    /// Start a ring of one (spec/chord.md §5.2); others join it with
    /// [`ChordCommand::Join`]. Failure tolerance holds once the ring has
    /// grown past `chord.successors` members and settled.
    Create,
    /// Join the ring through `via` (a connected ring member), or through any
    /// connected chord peer (spec/chord.md §5.3). Ends in
    /// [`ChordEvent::Joined`] or [`ChordEvent::JoinFailed`].
    Join {
        /// The member to start from.
        via: Option<NodeId>,
    },
    /// Find the owner of ring position `key` (spec/chord.md §7): ends in
    /// [`ChordEvent::LookupDone`] or [`ChordEvent::LookupFailed`].
    Lookup {
        /// The position.
        key: NodeId,
    },
}

/// What the ring did: [`Event::Chord`](crate::Event::Chord).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChordEvent {
    /// This node joined the ring (spec/chord.md §5.3).
    Joined {
        /// Its first successor.
        successor: NodeId,
        /// Its predecessor: the member it joined after.
        predecessor: NodeId,
        /// Hops the join lookup took.
        hops: u32,
    },
    /// [`ChordCommand::Join`] failed; the node is still out of the ring.
    JoinFailed {
        /// Why its lookup failed.
        reason: LookupError,
    },
    /// Failures emptied this member's successor list: more of the ring
    /// failed than the failure constraint allows (spec/chord.md §6.4, §11).
    /// The node stays a member and recovers on a best-effort basis.
    Orphaned,
    /// A [`ChordCommand::Lookup`] found the owner of `key`.
    LookupDone {
        /// The command's id.
        id: OpId,
        /// The position looked up.
        key: NodeId,
        /// The first member at or after `key`.
        owner: NodeId,
        /// The owner and the members after it, as the last hop knew them.
        successors: Vec<NodeId>,
        /// Nodes asked that answered (0: answered locally).
        hops: u32,
    },
    /// A [`ChordCommand::Lookup`] failed.
    LookupFailed {
        /// The command's id.
        id: OpId,
        /// The position looked up.
        key: NodeId,
        /// Why.
        reason: LookupError,
    },
}

/// Why a lookup ended without an owner (spec/chord.md §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// `chord.max_hops` requests were sent.
    #[error("hop limit reached")]
    HopLimit,
    /// Every candidate failed.
    #[error("no candidate left to ask")]
    NoCandidate,
    /// `chord.lookup_timeout` passed.
    #[error("timed out")]
    Timeout,
    /// The node shut down.
    #[error("the node shut down")]
    ShutDown,
}

/// Why a [`ChordCommand`] was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChordError {
    /// `Config::chord` is `None`.
    #[error("chord is not enabled in this node's config")]
    Off,
    /// The founders list is too short, repeats an id, lacks this node, or
    /// has an entry without addresses.
    #[error("bad founders list: {0}")]
    BadFounders(&'static str),
    /// The node is a ring member already, or its join is under way.
    #[error("already a ring member, or joining")]
    AlreadyInRing,
    /// `via` is not a connected chord peer.
    #[error("not connected to {0} (or it does not run chord)")]
    NotConnected(NodeId),
    /// The node is not a ring member and has no chord peer to ask.
    #[error("not in the ring and no chord peer is connected")]
    NoChordPeer,
    /// `chord.max_lookups` lookups are in flight.
    #[error("{0} lookups already in flight")]
    TooManyLookups(usize),
}

/// What the ring has done. They only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChordStats {
    /// Chord and table replies that matched no pending request (late, or
    /// from the wrong peer).
    pub late_replies: u64,
    /// Ring pointers removed (spec/chord.md §4 Flush): dead, or a
    /// predecessor that no longer answered as a member placing this node
    /// (§6.3).
    pub flushes: u64,
    /// `ChordNotify` senders not adopted as predecessor because the check
    /// of §6.3 failed: no `ChordState` within `chord.request_timeout`, not
    /// a member, a successor list that does not place this node, or an id
    /// that fails `chord.id_puzzle_bits`. None of them displaced the
    /// predecessor or was handed a key.
    pub notifiers_refused: u64,
    /// Successor candidates of stabilization (§6.2 step 4: the successor's
    /// predecessor) not adopted because they answered as a member whose
    /// list does not place the successor, or failed the id puzzle; and
    /// nodes of a successor check (§6.7) refused for the same reason.
    pub successors_refused: u64,
    /// Ids refused anywhere for failing `chord.id_puzzle_bits` (§6.5):
    /// notifiers, successor-list entries, lookup candidates and answers,
    /// founders.
    pub puzzle_refused: u64,
    /// Fix-fingers lookups started (spec/chord.md §7.3): one per tick at
    /// most, fewer while a stable ring backs off.
    pub finger_lookups: u64,
    /// Lookups that found an owner (commands and internal).
    pub lookups: u64,
    /// Lookups that failed.
    pub lookups_failed: u64,
    /// Own lookups whose recursive attempt failed (`Failed` answered, or
    /// no answer in twice `chord.request_timeout`) and that went on
    /// iteratively (spec/chord.md §7.4).
    pub route_fallbacks: u64,
    /// Iterative lookups left with no candidate after one failed, that
    /// asked the node which gave it again, by a `ChordRoute` avoiding it
    /// (spec/chord.md §7.2 step 5).
    pub asked_past_silent: u64,
    /// Peers' recursive lookups this node forwarded to a pointer of its own.
    pub forwarded: u64,
    /// Next hops of recursive lookups that failed (dead, refused, not a
    /// member, or silent past their deadline) and were routed around: the
    /// next pointer closer to the key, or, past a silent first successor,
    /// an answer from this node's successor list.
    pub route_retries: u64,
    /// Of `route_retries`, those whose next hop was silent past its
    /// deadline.
    pub route_retries_timed_out: u64,
    /// Of `route_retries`, those whose next hop was dead to this node
    /// (every dial failed, no chord capability, or declared dead).
    pub route_retries_dead: u64,
    /// Of `route_retries`, those refused locally (a cap refused the dial
    /// or the frame).
    pub route_retries_refused: u64,
    /// Of `route_retries`, those whose connection to the next hop closed
    /// under the call.
    pub route_retries_lost: u64,
    /// Recursive lookups (this node's own, and those it forwarded) whose
    /// next hop did not acknowledge them in time (`ChordRouteAck`,
    /// spec/chord.md §7.4): found silent within a few round trips rather
    /// than at the lookup's deadline, then handled as a silent hop.
    pub route_acks_missed: u64,
    /// Peers' recursive lookups answered `Failed` at once because this
    /// node held `chord.max_forwards` forwards, or
    /// `chord.max_forwards_per_peer` for that peer.
    pub forwards_refused: u64,
    /// Peers' recursive lookups answered `Failed` because their `ttl` ran
    /// out.
    pub route_ttl_exhausted: u64,
    /// Fingers not kept because the node held `chord.max_fingers` distinct
    /// ones.
    pub fingers_refused: u64,
    /// Merge lookups started (spec/chord.md §6.7): this node looked its own
    /// id up in a suspect's ring.
    pub merge_lookups: u64,
    /// Merges: a merge lookup found members this node's list skipped, and
    /// the list took them in.
    pub merges: u64,
    /// Suspects dropped unanswered: the oldest when the list was full
    /// (`chord.max_merge_suspects`), or after `chord.merge_forget`.
    pub merge_suspects_dropped: u64,
    /// Successor checks started (spec/chord.md §6.7): the peer cache knew
    /// a node between this node and its first successor, whose list was
    /// then read.
    pub successor_checks: u64,
    /// Successor checks that found members this node's list skipped, and
    /// the list took them in (counted in `merges` too).
    pub successor_check_merges: u64,
    /// Orphan recoveries: a member whose successor list emptied found its
    /// place again through a merge lookup.
    pub orphans_recovered: u64,
}

/// The ring's work in flight ([`Node::chord_pending`](crate::Node::chord_pending)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChordPending {
    /// Chord and table requests awaiting replies.
    pub requests: usize,
    /// Lookups in flight.
    pub lookups: usize,
    /// Peers' recursive lookups held, forwarded and awaiting the next
    /// hop's answer (at most `chord.max_forwards`).
    pub forwards: usize,
}
