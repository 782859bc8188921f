//! The live members of a snapshot, indexed by their rank in identifier
//! order, and the principals among them.

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use ringmesh::NodeId;

use super::Log;
use crate::chord_oracle::ids::between;
use crate::chord_oracle::snapshot::{MemberState, RingSnapshot};

/// The live members, indexed by rank: their position in identifier order.
pub(super) struct Live<'a> {
    snapshot: &'a RingSnapshot,
    /// Sorted, distinct live ids.
    pub(super) ids: Vec<u128>,
    /// Rank to index in `snapshot.members`.
    index: Vec<usize>,
    /// Live id to rank.
    rank: HashMap<u128, usize, FixedState>,
    /// Whether some live id appeared more than once.
    pub(super) duplicates: bool,
}

impl<'a> Live<'a> {
    pub(super) fn new(snapshot: &'a RingSnapshot, log: &mut Log) -> Self {
        let mut live: Vec<(u128, usize)> = snapshot
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.live)
            .map(|(i, m)| (m.id.as_u128(), i))
            .collect();
        // By id, then by position: the first live copy of an id is kept.
        live.sort_unstable();
        let before = live.len();
        live.dedup_by_key(|&mut (id, _)| id);
        let duplicates = live.len() != before;
        if duplicates {
            log.add(|| {
                format!(
                    "snapshot: {} live entries repeat an id already listed; ignored",
                    before - live.len()
                )
            });
        }
        let mut rank = HashMap::with_capacity_and_hasher(live.len(), FixedState::default());
        rank.extend(live.iter().enumerate().map(|(k, &(id, _))| (id, k)));
        Live {
            snapshot,
            ids: live.iter().map(|&(id, _)| id).collect(),
            index: live.iter().map(|&(_, i)| i).collect(),
            rank,
            duplicates,
        }
    }

    pub(super) fn member(&self, rank: usize) -> &'a MemberState {
        &self.snapshot.members[self.index[rank]]
    }

    pub(super) fn list(&self, rank: usize) -> &'a [NodeId] {
        &self.member(rank).succ_list
    }

    /// The rank of a live id; `None` for a dead or unknown one.
    pub(super) fn rank_of(&self, id: u128) -> Option<usize> {
        self.rank.get(&id).copied()
    }

    /// How many live ids are `<= id`.
    fn count_le(&self, id: u128) -> usize {
        match self.rank_of(id) {
            Some(k) => k + 1,
            None => self.ids.partition_point(|&v| v <= id),
        }
    }

    /// How many live ids are `< id`.
    fn count_lt(&self, id: u128) -> usize {
        match self.rank_of(id) {
            Some(k) => k,
            None => self.ids.partition_point(|&v| v < id),
        }
    }

    /// Each adjacent pair `(x, y)` of member `rank`'s extended successor
    /// list.
    fn esl_pairs(&self, rank: usize) -> impl Iterator<Item = (u128, u128)> + 'a {
        let list = self.list(rank);
        let first = self.ids[rank];
        list.iter().scan(first, |prev, e| {
            let pair = (*prev, e.as_u128());
            *prev = pair.1;
            Some(pair)
        })
    }

    /// Which members are principals. Every adjacent ESL pair `(x, y)` skips
    /// the members strictly between `x` and `y`, one or two ranges of ranks;
    /// a difference array counts how many pairs skip each member.
    pub(super) fn principals(&self) -> Vec<bool> {
        let n = self.ids.len();
        let mut diff = vec![0i64; n + 1];
        for m in 0..n {
            for (x, y) in self.esl_pairs(m) {
                // Ranks strictly after x, and ranks strictly before y.
                let after_x = self.count_le(x);
                let before_y = self.count_lt(y);
                if x < y {
                    if after_x < before_y {
                        diff[after_x] += 1;
                        diff[before_y] -= 1;
                    }
                } else {
                    // The interval wraps (x == y: all but x).
                    diff[after_x] += 1;
                    diff[n] -= 1;
                    diff[0] += 1;
                    diff[before_y] -= 1;
                }
            }
        }
        let mut skips = 0;
        diff[..n]
            .iter()
            .map(|d| {
                skips += d;
                skips == 0
            })
            .collect()
    }

    /// Up to `limit` members that are not principals, each with a witness:
    /// `(skipped, member, x, y)` where `(x, y)` are adjacent in `member`'s
    /// ESL and the skipped member lies between them.
    pub(super) fn skip_witnesses(
        &self,
        principal: &[bool],
        limit: usize,
    ) -> Vec<(usize, usize, u128, u128)> {
        let mut targets: Vec<usize> = (0..self.ids.len())
            .filter(|&p| !principal[p])
            .take(limit)
            .collect();
        let mut found = Vec::new();
        for m in 0..self.ids.len() {
            if targets.is_empty() {
                break;
            }
            for (x, y) in self.esl_pairs(m) {
                targets.retain(|&p| {
                    let skipped = between(x, self.ids[p], y);
                    if skipped {
                        found.push((p, m, x, y));
                    }
                    !skipped
                });
            }
        }
        found
    }
}
