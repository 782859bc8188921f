//! Ground-truth invariant checks for a Chord ring, after Pamela Zave,
//! "Reasoning about identifier spaces: How to make Chord correct", IEEE
//! Transactions on Software Engineering 43(12), 2017 (arXiv:1610.01140),
//! and the Alloy model of correct Chord that accompanies it
//! (`correctChord.als`), whose predicates carry the names used here.
//!
//! The simulator sees the state of every node at once: it is the oracle
//! that judges a ring. One place holds it all, a file per concern:
//!
//! - `ids`: the identifier space ([`between`], [`in_half_open`]), who owns
//!   a key ([`true_successor`]) and where a table key sits
//!   ([`key_position`]);
//! - `snapshot`: the state of every node at one instant ([`RingSnapshot`]);
//! - `invariant`: the checker ([`check`] → [`InvariantReport`]);
//! - `constraint`: the failure constraint of spec/chord.md §11, which
//!   failures keep the ring within Zave's contract ([`FailureConstraint`],
//!   [`may_fail`], [`failed_run`]);
//! - `truth`: the ground truth a long run keeps up to date (the live
//!   members in ring order, and who each one's best successor was a moment
//!   ago), so that judging a lookup does not cost O(N).
//!
//! [`check`] takes a [`RingSnapshot`] and evaluates:
//!
//! - Zave's inductive invariant, [`InvariantReport::safe`]:
//!   *OneLiveSuccessor* and *SufficientPrincipals*;
//! - the properties it implies, [`InvariantReport::all_implied`]:
//!   *AtLeastOneRing*, *AtMostOneRing*, *OrderedRing*,
//!   *ConnectedAppendages* and *OrderedSuccessorLists*;
//! - whether the ring is ideal (every list and predecessor exactly right).
//!
//! # Vocabulary (Zave 2017 and `correctChord.als`)
//!
//! - **Identifier space**: the 2^128 points of [`NodeId`](ringmesh::NodeId), in numeric order,
//!   wrapping from the largest to 0. [`between`]`(a, x, b)` is Zave's
//!   `between`: `x` lies strictly inside the interval that goes clockwise
//!   from `a` to `b`; when `a == b` that is every point but `a`.
//! - **Member**: a *live* node. In Zave's model a node that fails leaves the
//!   set of members, so the state of a dead node is ignored here, and any id
//!   that is not the id of a live member is a dead entry wherever it appears.
//! - **Extended successor list** (ESL) of a member `m`: `m` followed by its
//!   successor list, `[m, s1, …, sk]` (`k = r` when the list is full).
//! - **Best successor** of a member: the first live entry of its successor
//!   list, if any.
//! - **Ring member**: a member that reaches itself by following best
//!   successors (`m in m.^bestSucc`). A **ring** is a cycle of best
//!   successors. **Appendage**: a member that is not a ring member.
//! - **Principal**: "a member that is not skipped by any member's extended
//!   successor list" (Zave 2017). `p` is skipped by an ESL when
//!   `between(x, p, y)` for two *adjacent* entries `x, y` of it; dead entries
//!   count as entries. The model spells it out: `p` is a principal when, for
//!   all members `m`, `! between[m, p, m.succ.list[0]]` and, for every `j`,
//!   `! between[m.succ.list[j], p, m.succ.list[j+1]]`.
//!
//! Lists shorter than `r` (a list that is still filling) are taken as they
//! are: they have fewer adjacent pairs, so they skip less. Zave's model has
//! only full lists, and her proofs that the invariant implies the other
//! properties count on ESLs of length `r + 1` (§VI-B, as corrected in her
//! erratum).
//!
//! # Cost
//!
//! `O(n log n + n·r)` for `n` members and lists of length `r`: one sort, one
//! hash lookup per list entry (a binary search for dead entries), a
//! difference array for the principals and a linear walk over the
//! best-successor graph. A million members take about a second.

mod constraint;
#[cfg(test)]
mod fixtures;
mod ids;
mod invariant;
mod snapshot;
pub(crate) mod truth;

pub use constraint::{
    Breach, FailureConstraint, failed_run, may_fail, precondition, repair_window, reply_in_flight,
};
pub use ids::{between, in_half_open, key_position, true_successor};
pub use invariant::{InvariantReport, MAX_VIOLATIONS, check};
pub use snapshot::{MemberState, RingSnapshot};
