//! The provider's side: a `BlobGet` answered from the store, within a
//! serving budget (spec/blobs.md §5).

use smallvec::SmallVec;

use super::store::BlobStore;
use crate::time::Instant;
use crate::wire::{BlobEnd, BlobEndStatus, BlobGet, BlobGroup, Message};

/// What a provider serves: a token bucket of bytes, and a cap per answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Bytes of group data the node sends per second to all askers together
    /// (the bucket's refill rate). Default 256 MiB/s.
    pub bytes_per_sec: u64,
    /// The bucket's depth: the most sent in a burst. Default 16 MiB.
    pub burst: u64,
    /// Most groups one answer carries (an asker asks again for the rest).
    /// Default 64 (1 MiB).
    pub max_groups_per_answer: u64,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            bytes_per_sec: 256 << 20,
            burst: 16 << 20,
            max_groups_per_answer: 64,
        }
    }
}

/// What serving has done, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Groups sent.
    pub groups_sent: u64,
    /// Bytes of group data sent.
    pub bytes_sent: u64,
    /// Requests for a blob held in no part, answered `NotHeld` at once.
    pub not_held: u64,
    /// Requests cut short (or refused) because the budget was spent.
    pub refused_busy: u64,
}

/// The provider's budget and counters.
#[derive(Debug, Clone)]
pub struct Server {
    limits: ServeLimits,
    tokens: u64,
    refilled_at: Option<Instant>,
    /// What serving has done.
    pub stats: ServeStats,
}

impl Server {
    /// A server with a full bucket.
    pub fn new(limits: ServeLimits) -> Server {
        Server {
            limits,
            tokens: limits.burst,
            refilled_at: None,
            stats: ServeStats::default(),
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(then) = self.refilled_at {
            let elapsed = now.saturating_duration_since(then);
            let earned = (u128::from(elapsed.as_micros()) * u128::from(self.limits.bytes_per_sec)
                / 1_000_000) as u64;
            self.tokens = self.tokens.saturating_add(earned).min(self.limits.burst);
        }
        self.refilled_at = Some(now);
    }

    /// The answer to `get`: the held groups it asks for (the last group
    /// first if asked), each with its proof, then a `BlobEnd`. A blob held
    /// in no part is `NotHeld` at once; a spent budget ends with `Busy`.
    pub fn answer(
        &mut self,
        now: Instant,
        store: &dyn BlobStore,
        get: &BlobGet,
    ) -> SmallVec<[Message; 8]> {
        self.refill(now);
        let mut out = SmallVec::new();
        let end = |status| {
            Message::BlobEnd(BlobEnd {
                req: get.req,
                status,
            })
        };
        let (Some(outboard), Some(held)) = (store.outboard(&get.hash), store.held(&get.hash))
        else {
            self.stats.not_held += 1;
            out.push(end(BlobEndStatus::NotHeld));
            return out;
        };
        if held.count() == 0 {
            self.stats.not_held += 1;
            out.push(end(BlobEndStatus::NotHeld));
            return out;
        }
        let groups = outboard.groups();
        let wanted = get
            .last_first
            .then_some(groups - 1)
            .into_iter()
            .chain(
                get.ranges
                    .iter()
                    .flat_map(|&(start, end)| start.min(groups)..end.min(groups))
                    .filter(|&group| !(get.last_first && group == groups - 1)),
            )
            .filter(|&group| held.contains(group));
        let mut sent = 0;
        for group in wanted {
            if sent == self.limits.max_groups_per_answer {
                break;
            }
            let (Some(data), Some(proof)) =
                (store.read_group(&get.hash, group), outboard.proof(group))
            else {
                continue;
            };
            let cost = data.len() as u64;
            if cost > self.tokens {
                self.stats.refused_busy += 1;
                out.push(end(BlobEndStatus::Busy));
                return out;
            }
            self.tokens -= cost;
            self.stats.groups_sent += 1;
            self.stats.bytes_sent += cost;
            sent += 1;
            out.push(Message::BlobGroup(BlobGroup {
                req: get.req,
                len: outboard.len(),
                group,
                proof: proof.into_vec(),
                data,
            }));
        }
        out.push(end(BlobEndStatus::Done));
        out
    }
}
