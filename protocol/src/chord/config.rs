//! [`ChordConfig`]: the ring (spec/chord.md §2).

use crate::time::Duration;
use crate::wire::MAX_CHORD_LIST;

/// The Chord ring. Part of [`Config`](crate::Config): `Some` runs the ring
/// (the node offers the `CHORD` capability and answers chord messages),
/// which needs `listen_addrs` (ring pointers must be diallable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChordConfig {
    /// Successor list length *r*, 1..=32. A member keeps working while one
    /// of its *r* successors lives; [`ChordConfig::sized_for`] sizes it for
    /// a ring. Default 8.
    pub successors: usize,
    /// Period of stabilization (2 s; 500 ms in [`ChordConfig::lan`]).
    pub stabilize_interval: Duration,
    /// Timeout of one chord or table request, dial time included; a peer
    /// that misses it is taken as dead (4 s; 1 s in [`ChordConfig::lan`]).
    pub request_timeout: Duration,
    /// One finger is refreshed per tick (10 s; 2 s in
    /// [`ChordConfig::lan`]); after a tick that moved its finger, the next
    /// comes after a quarter of it (spec/chord.md §7.3). This is the
    /// period of a ring that changes; a stable one backs off
    /// ([`ChordConfig::fix_fingers_backoff`]).
    pub fix_fingers_interval: Duration,
    /// How far fix-fingers backs off while nothing moves (spec/chord.md
    /// §7.3): each tick that finds the finger it already had doubles the
    /// period, up to this many times `fix_fingers_interval`; a finger
    /// that moved, a change of the successor list or the predecessor, or
    /// a routing-set peer going down brings the base period back. 1 keeps
    /// the base period always. Default 16 (32 s per tick in
    /// [`ChordConfig::lan`], 160 s in [`ChordConfig::wan`]).
    pub fix_fingers_backoff: u32,
    /// Requests one lookup may send, retries included. Default 64.
    pub max_hops: u32,
    /// Lookups in flight (commands, the table's and internal). Default 256.
    pub max_lookups: usize,
    /// How long a lookup, and a table operation, may take. Default 10 s.
    pub lookup_timeout: Duration,
    /// Forwards one recursive lookup may take (spec/chord.md §7.4): the
    /// `ttl` a member gives its own lookups, and the most it honours in a
    /// peer's (a larger one is cut to it). A lookup whose `ttl` runs out is
    /// answered `Failed`, and its asker falls back to an iterative lookup.
    /// Default 32 (a full ring of 2^32 members takes at most 32).
    pub route_ttl: u8,
    /// Recursive lookups this node holds for others at once (forwarded,
    /// awaiting the next hop's answer). Past it a peer's `ChordRoute` is
    /// answered `Failed` at once and counted
    /// ([`ChordStats::forwards_refused`](crate::ChordStats)). Default 1024.
    pub max_forwards: usize,
    /// Of those, how many one peer may have this node hold: a peer cannot
    /// make a node forward unboundedly. Past it that peer's `ChordRoute` is
    /// answered `Failed` and counted the same way. Default 64; at most
    /// `max_forwards`.
    pub max_forwards_per_peer: usize,
    /// Distinct finger nodes a member keeps (its routing set is its
    /// successors, its predecessor and these; spec/chord.md §7.3). A finger
    /// found beyond it is not kept, and counted
    /// ([`ChordStats::fingers_refused`](crate::ChordStats)). Default 32.
    pub max_fingers: usize,
    /// The static id puzzle (spec/chord.md §6.5): with k > 0, an id takes
    /// part in the ring only if the first k bits of
    /// BLAKE3(`ID_PUZZLE_CONTEXT` ‖ id) are zero
    /// ([`meets_id_puzzle`](crate::meets_id_puzzle)). A node refuses to
    /// adopt any other as predecessor, successor or finger, to follow or
    /// give it in lookups, and to hear its `ChordNotify`; its own identity
    /// must meet it ([`grind_identity`](crate::grind_identity) makes one),
    /// or [`Node::new`](crate::Node::new) refuses the config. Every member
    /// of a ring must use the same k. At most
    /// [`MAX_ID_PUZZLE_BITS`](crate::MAX_ID_PUZZLE_BITS) (24). Default 0
    /// (off).
    pub id_puzzle_bits: u8,
    /// Period of the merge tick (spec/chord.md §6.7): each tick a member
    /// tries at most one suspect (a pointer it lost, or a finger), looking
    /// its own id up in that node's ring and adopting the members it was
    /// missing. A suspect that fails is tried again after this times 2^k
    /// (k ≤ 4) for its k-th failure. 5 s; 1 s in [`ChordConfig::lan`].
    pub merge_interval: Duration,
    /// How long a suspect is kept while it does not answer (a partition
    /// longer than this is only healed by the periodic ring check through a
    /// finger). 1 h.
    pub merge_forget: Duration,
    /// Suspects kept (the oldest goes when a new one comes; each goes
    /// counted in `ChordStats::merge_suspects_dropped`). Default 16.
    pub max_merge_suspects: usize,
}

impl Default for ChordConfig {
    fn default() -> Self {
        ChordConfig::wan()
    }
}

impl ChordConfig {
    /// Timings for a local network.
    pub fn lan() -> Self {
        ChordConfig {
            stabilize_interval: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            fix_fingers_interval: Duration::from_secs(2),
            merge_interval: Duration::from_secs(1),
            ..ChordConfig::wan()
        }
    }

    /// Timings for the internet. The default.
    pub fn wan() -> Self {
        ChordConfig {
            successors: 8,
            stabilize_interval: Duration::from_secs(2),
            request_timeout: Duration::from_secs(4),
            fix_fingers_interval: Duration::from_secs(10),
            fix_fingers_backoff: 16,
            max_hops: 64,
            max_lookups: 256,
            lookup_timeout: Duration::from_secs(10),
            route_ttl: 32,
            max_forwards: 1024,
            max_forwards_per_peer: 64,
            max_fingers: 32,
            id_puzzle_bits: 0,
            merge_interval: Duration::from_secs(5),
            merge_forget: Duration::from_secs(3600),
            max_merge_suspects: 16,
        }
    }

    /// The same, with a successor list sized for a ring of about `n`
    /// members ([`ChordConfig::successors_for`]).
    pub fn sized_for(self, n: u64) -> Self {
        ChordConfig {
            successors: Self::successors_for(n),
            ..self
        }
    }

    /// A successor list length for a ring of about `n` nodes:
    /// clamp(⌈log2 n⌉, 4, 32). If half the ring fails at once, about
    /// n / 2^r members lose their whole list, so this keeps the expected
    /// loss at one node; add 3 or 4 for margin (spec/chord.md §2).
    pub fn successors_for(n: u64) -> usize {
        let log = 64 - n.saturating_sub(1).leading_zeros() as usize;
        log.clamp(4, MAX_CHORD_LIST)
    }
}
