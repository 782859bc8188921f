//! The node-wide budget for what connections hold while they receive:
//! partial frames, and the payloads decompressed while a read is handled.
//!
//! [`SessionConfig::receive_budget`](crate::SessionConfig::receive_budget)
//! is split in two halves. The first is shared out evenly over
//! `peers.max_connections`: each connection's *share*, which it may always
//! hold, so a peer sending frames of ordinary size is never disturbed by
//! others. The second half is the *pool*: what a connection holds beyond
//! its share is drawn from it. The sum over connections therefore never
//! exceeds the budget while there are at most `max_connections` of them
//! (the connection caps see to that).
//!
//! When a connection needs more than the pool has left, the layer closes
//! the *greediest* connection (the one holding the most; the asking one on
//! a tie) and tries again: a peer that starts 16 MiB frames and stalls
//! loses its connection once others need the room, and never makes the
//! node hold more than the budget. Waiting for budget instead would need
//! read backpressure, which the driving contract does not have (the driver
//! reads whenever the socket is readable); closing keeps the node sans-IO
//! and the bound exact.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::ConnId;

/// The receive budget's accounting. See the module docs.
pub(crate) struct ReceiveBudget {
    /// What each connection may always hold.
    share: usize,
    /// What connections may hold beyond their shares, all together.
    pool: usize,
    /// The part of `pool` in use: the sum of every connection's excess over
    /// its share.
    pool_used: usize,
    /// Bytes each connection holds (only connections holding some).
    held: HashMap<ConnId, usize, FixedState>,
}

impl ReceiveBudget {
    /// A budget of `total` bytes for at most `max_connections` connections.
    pub(crate) fn new(total: usize, max_connections: usize, hasher: FixedState) -> Self {
        let pool = total / 2;
        ReceiveBudget {
            share: (total - pool) / max_connections.max(1),
            pool,
            pool_used: 0,
            held: HashMap::with_hasher(hasher),
        }
    }

    /// What each connection may always hold.
    #[cfg(test)]
    pub(crate) fn share(&self) -> usize {
        self.share
    }

    /// Bytes held by all connections together.
    pub(crate) fn used(&self) -> usize {
        self.held.values().sum()
    }

    /// Bytes `conn` holds.
    pub(crate) fn held(&self, conn: ConnId) -> usize {
        self.held.get(&conn).copied().unwrap_or(0)
    }

    fn excess(&self, held: usize) -> usize {
        held.saturating_sub(self.share)
    }

    /// Lets `conn` hold `extra` more bytes if its share or the pool has
    /// room; otherwise changes nothing and returns false.
    pub(crate) fn try_grow(&mut self, conn: ConnId, extra: usize) -> bool {
        let held = self.held(conn);
        let Some(grown) = held.checked_add(extra) else {
            return false;
        };
        let more = self.excess(grown) - self.excess(held);
        if more > self.pool - self.pool_used {
            return false;
        }
        self.pool_used += more;
        if grown > 0 {
            self.held.insert(conn, grown);
        }
        true
    }

    /// Records what `conn` really holds now (after a read was handled: its
    /// partial frame, if any; what the read decompressed is handed on).
    /// Never more than it was granted.
    pub(crate) fn settle(&mut self, conn: ConnId, holds: usize) {
        let held = self.held(conn);
        let holds = holds.min(held);
        self.pool_used -= self.excess(held) - self.excess(holds);
        if holds == 0 {
            self.held.remove(&conn);
        } else {
            self.held.insert(conn, holds);
        }
    }

    /// `conn` is gone: everything it held is free again.
    pub(crate) fn release(&mut self, conn: ConnId) {
        self.settle(conn, 0);
    }

    /// The connection to close when `asking` cannot grow: the one holding
    /// the most, `asking` itself on a tie (it is the one that wants more),
    /// then the highest id (the newest of its kind). Independent of the
    /// table's order.
    pub(crate) fn greediest(&self, asking: ConnId) -> ConnId {
        let mut best = (self.held(asking), true, asking);
        for (&conn, &held) in &self.held {
            let candidate = (held, conn == asking, conn);
            if candidate > best {
                best = candidate;
            }
        }
        best.2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget(total: usize, conns: usize) -> ReceiveBudget {
        ReceiveBudget::new(total, conns, FixedState::with_seed(7))
    }

    #[test]
    fn a_share_is_always_granted_and_the_pool_is_first_come() {
        let mut b = budget(1000, 5); // share 100, pool 500
        assert_eq!(b.share(), 100);
        assert!(b.try_grow(ConnId::inbound(1), 400)); // 300 from the pool
        assert!(b.try_grow(ConnId::inbound(2), 300)); // 200 more: pool full
        assert!(!b.try_grow(ConnId::inbound(2), 1));
        assert!(b.try_grow(ConnId::inbound(3), 100)); // its share, whatever the pool
        assert!(!b.try_grow(ConnId::inbound(3), 1));
        assert_eq!(b.used(), 800);
        assert_eq!(b.greediest(ConnId::inbound(3)), ConnId::inbound(1));
        b.release(ConnId::inbound(1));
        assert!(b.try_grow(ConnId::inbound(3), 300));
        assert_eq!(b.greediest(ConnId::inbound(2)), ConnId::inbound(3));
    }

    #[test]
    fn the_asking_connection_is_the_greediest_on_a_tie() {
        let mut b = budget(1000, 5);
        assert!(b.try_grow(ConnId::inbound(1), 350));
        assert!(b.try_grow(ConnId::inbound(2), 350));
        assert_eq!(b.greediest(ConnId::inbound(1)), ConnId::inbound(1));
        assert_eq!(b.greediest(ConnId::inbound(2)), ConnId::inbound(2));
        assert_eq!(b.greediest(ConnId::inbound(9)), ConnId::inbound(2));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Grow(u64, usize),
        Settle(u64, usize),
        Release(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..8u64, 0..400usize).prop_map(|(c, n)| Op::Grow(c, n)),
            (0..8u64, 0..400usize).prop_map(|(c, n)| Op::Settle(c, n)),
            (0..8u64).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// With at most `max_connections` connections the sum held never
        /// exceeds the budget; the pool's count matches the holdings; a
        /// grant within the share always succeeds; a release frees all.
        #[test]
        fn never_over_budget(total in 100usize..5000, ops in prop::collection::vec(op(), 0..200)) {
            let mut b = budget(total, 8);
            for op in ops {
                match op {
                    Op::Grow(c, n) => {
                        let before = b.held(ConnId::inbound(c));
                        let fits_share = before + n <= b.share();
                        let granted = b.try_grow(ConnId::inbound(c), n);
                        prop_assert!(granted || !fits_share);
                        prop_assert_eq!(b.held(ConnId::inbound(c)), if granted { before + n } else { before });
                        if !granted {
                            // Whoever is chosen holds at least as much as the asker.
                            let g = b.greediest(ConnId::inbound(c));
                            prop_assert!(b.held(g) >= before);
                        }
                    }
                    Op::Settle(c, n) => {
                        let before = b.held(ConnId::inbound(c));
                        b.settle(ConnId::inbound(c), n);
                        prop_assert_eq!(b.held(ConnId::inbound(c)), n.min(before));
                    }
                    Op::Release(c) => {
                        b.release(ConnId::inbound(c));
                        prop_assert_eq!(b.held(ConnId::inbound(c)), 0);
                    }
                }
                prop_assert!(b.used() <= total);
                let excess: usize = b.held.values().map(|&h| h.saturating_sub(b.share)).sum();
                prop_assert_eq!(excess, b.pool_used);
                prop_assert!(b.pool_used <= b.pool);
            }
            for c in 0..8 {
                b.release(ConnId::inbound(c));
            }
            prop_assert_eq!(b.used(), 0);
            prop_assert_eq!(b.pool_used, 0);
        }
    }
}
