//! Admission control (spec/peers.md, Admission): the pure rules the
//! connection table applies to inbound connections.
//!
//! - Address groups: the block one operator typically holds (an IPv4 /24,
//!   an IPv6 /48), as in Bitcoin Core's netgroups. Loopback and private
//!   addresses are grouped like public ones, so tests on 127.0.0.0/8 see
//!   many groups.
//! - Token buckets, node-wide and per group, refilled from `now`: they bound
//!   the handshakes (and so the key exchanges) a flood can force.
//! - Which inbound half-open connection to evict when their table is full.
//! - Which inbound peer a newcomer may displace when the inbound slots are
//!   full, after Bitcoin Core's `SelectNodeToEvict` (node/eviction.cpp):
//!   protect the most group-diverse, the lowest-RTT and the longest
//!   connected peers, then evict from the group with the most connections.
//!
//! Nothing here reads a clock or a socket; every choice is deterministic
//! (ties broken by `ConnId`).

use core::net::IpAddr;
use std::collections::BTreeMap;

use super::AdmissionReason;
use crate::ConnId;
use crate::time::{Duration, Instant};

/// The address block a source belongs to: its /24 (IPv4) or /48 (IPv6).
/// IPv4-mapped IPv6 addresses are grouped as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum AddrGroup {
    /// The first three octets.
    V4([u8; 3]),
    /// The first six octets.
    V6([u8; 6]),
}

/// `ip` with an IPv4-mapped IPv6 address turned back into IPv4, so one host
/// is one source whichever socket family accepted it.
pub(crate) fn source_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The group of `ip` (after [`source_ip`]).
pub(crate) fn group_of(ip: IpAddr) -> AddrGroup {
    match source_ip(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            AddrGroup::V4([a, b, c])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            AddrGroup::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
        }
    }
}

/// Tokens are kept in millionths, so a rate in tokens per second is the
/// refill in millionths per microsecond.
const MICRO: u64 = 1_000_000;

/// A token bucket: `rate` tokens a second, at most `burst` held. Refilled
/// lazily from the `now` of each call, so it needs no timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenBucket {
    /// Tokens × [`MICRO`].
    micro_tokens: u64,
    /// When `micro_tokens` was last brought up to date.
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(burst: u32, now: Instant) -> Self {
        TokenBucket {
            micro_tokens: u64::from(burst) * MICRO,
            at: now,
        }
    }

    /// Adds what `rate` has earned since the last call (time never runs
    /// backwards here: an earlier `now` adds nothing).
    pub(crate) fn refill(&mut self, rate: u32, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_micros();
        let earned = elapsed.saturating_mul(u64::from(rate));
        self.micro_tokens = self
            .micro_tokens
            .saturating_add(earned)
            .min(u64::from(burst) * MICRO);
        self.at = self.at.max(now);
    }

    /// Whether one whole token is there.
    pub(crate) fn has_token(&self) -> bool {
        self.micro_tokens >= MICRO
    }

    /// Takes one token (the caller checked [`TokenBucket::has_token`]).
    pub(crate) fn take(&mut self) {
        self.micro_tokens = self.micro_tokens.saturating_sub(MICRO);
    }

    /// Whether the bucket holds at least half of `burst`: its group has not
    /// been busy lately.
    fn is_rested(&self, burst: u32) -> bool {
        self.micro_tokens.saturating_mul(2) >= u64::from(burst) * MICRO
    }
}

/// Group buckets kept at most. A group's bucket refills in
/// `group_handshake_burst / group_handshake_rate` seconds (2 s by default),
/// after which it is dropped as equal to a fresh one; only admitted
/// connections create one, so at the node-wide rate far fewer than this
/// are ever live. If the table is still full after dropping the rested
/// ones, a connection from a new group is refused as over the node rate
/// (a flood from more groups than this can starve newcomers of
/// handshakes, though never make the node spend more than its rates).
pub(crate) const MAX_GROUP_BUCKETS: usize = 4096;

/// The handshake rates (from [`AdmissionConfig`](super::AdmissionConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rates {
    pub(crate) node_rate: u32,
    pub(crate) node_burst: u32,
    pub(crate) group_rate: u32,
    pub(crate) group_burst: u32,
}

impl Rates {
    /// The reserve's rate and burst: a quarter of the node's (at least one).
    fn reserve(&self) -> (u32, u32) {
        ((self.node_rate / 4).max(1), (self.node_burst / 4).max(1))
    }
}

/// The handshake rate limits: one node-wide bucket, one per address group,
/// and a reserve for rested groups.
///
/// Two steps. A connection is admitted on arrival if its group's bucket
/// has a token (it takes it). Its first handshake message, once complete
/// and before the node answers it with a key exchange, needs a token of
/// the node-wide bucket; or, when that is empty, one of the reserve if its
/// group was rested on arrival (at least half its burst). Connections that
/// never send a first message (idle, slowloris) so cost no node-wide
/// token: they only hold half-open slots, from which they are evicted.
/// So over any window of `t` seconds at most `(rate + rate/4)·t + burst +
/// burst/4` connections start a handshake, and one group at most
/// `group_rate·t + group_burst`; a flood from busy groups leaves the reserve
/// to groups that have been quiet, such as an honest newcomer's.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    rates: Rates,
    node: TokenBucket,
    reserve: TokenBucket,
    groups: BTreeMap<AddrGroup, TokenBucket>,
    /// No sweep of the group table before this.
    next_sweep: Instant,
}

/// The least time between two sweeps of a full group table.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

impl RateLimiter {
    pub(crate) fn new(rates: Rates, now: Instant) -> Self {
        let (_, reserve_burst) = rates.reserve();
        RateLimiter {
            rates,
            node: TokenBucket::full(rates.node_burst, now),
            reserve: TokenBucket::full(reserve_burst, now),
            groups: BTreeMap::new(),
            next_sweep: now,
        }
    }

    /// A connection from `group` arrives at `now`: takes a token from the
    /// group's bucket, or says it is over the group's rate (or, the group
    /// table being full, over the node's). `Ok` tells whether the group
    /// was rested, for [`RateLimiter::admit_handshake`]. Every arrival
    /// takes a group token, even one the node-wide limit later refuses: a
    /// group's bucket measures how hard the group knocks, so a flooding
    /// group is never rested and cannot use the reserve.
    pub(crate) fn admit_connection(
        &mut self,
        group: AddrGroup,
        now: Instant,
    ) -> Result<bool, AdmissionReason> {
        let r = self.rates;
        if r.group_rate == u32::MAX && r.group_burst == u32::MAX {
            // Unlimited (`AdmissionConfig::unlimited`): a bucket of 2^32
            // tokens refilled at once is always full and rested, so keep
            // no table of them (a simulated node would carry one).
            return Ok(true);
        }
        let known = self.groups.get(&group).copied();
        let mut bucket = known.unwrap_or_else(|| TokenBucket::full(r.group_burst, now));
        bucket.refill(r.group_rate, r.group_burst, now);
        if !bucket.has_token() {
            self.groups.insert(group, bucket);
            return Err(AdmissionReason::GroupRate);
        }
        if known.is_none() && self.groups.len() >= MAX_GROUP_BUCKETS {
            if now >= self.next_sweep {
                // At most one sweep per interval: a flood from more groups
                // than the table holds must not make every arrival a scan.
                self.forget_rested(now);
                self.next_sweep = now + SWEEP_INTERVAL;
            }
            if self.groups.len() >= MAX_GROUP_BUCKETS {
                return Err(AdmissionReason::NodeRate);
            }
        }
        let rested = bucket.is_rested(r.group_burst);
        bucket.take();
        self.groups.insert(group, bucket);
        Ok(rested)
    }

    /// A connection admitted by [`RateLimiter::admit_connection`] has sent
    /// its first handshake message: takes a node-wide token before the key
    /// exchange is done, or one from the reserve if its group was
    /// `rested`; else it is over the node's rate.
    pub(crate) fn admit_handshake(
        &mut self,
        rested: bool,
        now: Instant,
    ) -> Result<(), AdmissionReason> {
        let r = self.rates;
        let (reserve_rate, reserve_burst) = r.reserve();
        self.node.refill(r.node_rate, r.node_burst, now);
        self.reserve.refill(reserve_rate, reserve_burst, now);
        if self.node.has_token() {
            self.node.take();
            Ok(())
        } else if rested && self.reserve.has_token() {
            self.reserve.take();
            Ok(())
        } else {
            Err(AdmissionReason::NodeRate)
        }
    }

    /// Both steps at once (for tests).
    #[cfg(test)]
    fn admit(&mut self, group: AddrGroup, now: Instant) -> Result<(), AdmissionReason> {
        let rested = self.admit_connection(group, now)?;
        self.admit_handshake(rested, now)
    }

    /// Drops the group buckets that are full again: the same as none.
    fn forget_rested(&mut self, now: Instant) {
        let r = self.rates;
        self.groups.retain(|_, b| {
            b.refill(r.group_rate, r.group_burst, now);
            b.micro_tokens < u64::from(r.group_burst) * MICRO
        });
    }

    /// Group buckets held (for tests and the memory bound).
    #[cfg(test)]
    fn group_count(&self) -> usize {
        self.groups.len()
    }
}

/// An inbound connection still handshaking, as the half-open eviction sees
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HalfOpen {
    pub(crate) conn: ConnId,
    pub(crate) opened: Instant,
    /// The node has answered its first handshake message (spent a key
    /// exchange on it): an honest peer finishes one round trip later.
    pub(crate) answered: bool,
}

/// The inbound half-open connection to evict for a newcomer: the oldest
/// of those not yet answered (they have cost the attacker a connection
/// and nothing else), else the oldest. `None` for an empty table.
pub(crate) fn half_open_to_evict(table: &[HalfOpen]) -> Option<ConnId> {
    table
        .iter()
        .min_by_key(|h| (h.answered, h.opened, h.conn))
        .map(|h| h.conn)
}

/// An established inbound peer, as the inbound eviction sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboundPeer {
    pub(crate) conn: ConnId,
    pub(crate) group: AddrGroup,
    /// The group hashed with a key of this node's own (its seed): which
    /// groups the diversity rule protects cannot be predicted by others.
    pub(crate) group_key: u64,
    /// Smoothed ping round trip, once measured.
    pub(crate) rtt: Option<Duration>,
    /// When its session was established.
    pub(crate) since: Instant,
    /// Never evicted (e.g. a peer the application asked for).
    pub(crate) protected: bool,
}

/// Peers of distinct groups protected by the keyed group order (Bitcoin
/// Core protects 4 by netgroup).
pub(crate) const PROTECT_BY_GROUP: usize = 4;
/// Lowest-RTT peers protected (Bitcoin Core: 8 by minimum ping).
pub(crate) const PROTECT_BY_RTT: usize = 8;

/// The inbound peer a newcomer may displace, after Bitcoin Core's
/// `SelectNodeToEvict`; `None` if every candidate is protected (then the
/// newcomer is refused). In order, each step removing peers from the
/// candidates:
///
/// 1. peers marked `protected`;
/// 2. one peer from each of the [`PROTECT_BY_GROUP`] groups first in the
///    node's keyed order of groups (an attacker cannot make its groups
///    come first);
/// 3. the [`PROTECT_BY_RTT`] lowest RTTs (unmeasured ones are not
///    protected this way): an attacker cannot be closer than the honest
///    peers near the node;
/// 4. half of the rest, the longest connected: an attacker must hold its
///    connections longer than honest peers have been up.
///
/// Of the peers left, evict the youngest of the group with the most
/// (ties: the group whose youngest connection is youngest), so the
/// attacker's biggest group pays first.
pub(crate) fn select_to_evict(peers: &[InboundPeer]) -> Option<ConnId> {
    let mut left: Vec<InboundPeer> = peers.iter().filter(|p| !p.protected).copied().collect();
    // 2. Group diversity.
    left.sort_by_key(|p| (p.group_key, p.group, p.since, p.conn));
    let mut protected_groups: Vec<AddrGroup> = Vec::new();
    left.retain(|p| {
        if protected_groups.len() < PROTECT_BY_GROUP && !protected_groups.contains(&p.group) {
            protected_groups.push(p.group);
            false
        } else {
            true
        }
    });
    // 3. Lowest RTT.
    left.sort_by_key(|p| (p.rtt.is_none(), p.rtt, p.since, p.conn));
    let measured = left.iter().filter(|p| p.rtt.is_some()).count();
    left.drain(..PROTECT_BY_RTT.min(measured));
    // 4. Longest connected: half of the rest.
    left.sort_by_key(|p| (p.since, p.conn));
    left.drain(..left.len() / 2);
    // The youngest of the biggest group.
    let mut groups: BTreeMap<AddrGroup, (usize, InboundPeer)> = BTreeMap::new();
    for p in &left {
        let entry = groups.entry(p.group).or_insert((0, *p));
        entry.0 += 1;
        if (p.since, p.conn) > (entry.1.since, entry.1.conn) {
            entry.1 = *p;
        }
    }
    groups
        .values()
        .max_by_key(|(count, youngest)| (*count, youngest.since, youngest.conn))
        .map(|(_, youngest)| youngest.conn)
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    fn rates() -> Rates {
        Rates {
            node_rate: 200,
            node_burst: 50,
            group_rate: 10,
            group_burst: 20,
        }
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn groups_are_slash_24_and_slash_48_and_mapped_addresses_are_ipv4() {
        assert_eq!(group_of(v4(127, 0, 0, 1)), group_of(v4(127, 0, 0, 200)));
        assert_ne!(group_of(v4(127, 0, 0, 1)), group_of(v4(127, 0, 1, 1)));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
        assert_eq!(source_ip(mapped), v4(10, 1, 2, 3));
        assert_eq!(group_of(mapped), AddrGroup::V4([10, 1, 2]));
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().expect("as built");
        let b: Ipv6Addr = "2001:db8:1:ffff::9".parse().expect("as built");
        let c: Ipv6Addr = "2001:db8:2::1".parse().expect("as built");
        assert_eq!(group_of(IpAddr::V6(a)), group_of(IpAddr::V6(b)));
        assert_ne!(group_of(IpAddr::V6(a)), group_of(IpAddr::V6(c)));
    }

    #[test]
    fn a_bucket_gives_its_burst_at_once_then_its_rate() {
        let mut b = TokenBucket::full(3, at(0));
        for _ in 0..3 {
            assert!(b.has_token());
            b.take();
        }
        assert!(!b.has_token());
        b.refill(10, 3, at(99));
        assert!(!b.has_token(), "0.99 of a token after 99 ms at 10/s");
        b.refill(10, 3, at(100));
        assert!(b.has_token());
        b.refill(10, 3, at(10_000));
        assert_eq!(b.micro_tokens, 3 * MICRO, "capped at the burst");
        b.refill(10, 3, at(5_000));
        assert_eq!(b.at, at(10_000), "time does not run backwards");
    }

    #[test]
    fn one_group_is_held_to_its_rate_and_others_still_pass() {
        let mut limiter = RateLimiter::new(rates(), at(0));
        let g = group_of(v4(127, 9, 9, 1));
        let admitted = (0..100).filter(|_| limiter.admit(g, at(0)).is_ok()).count();
        assert_eq!(admitted, 20, "the group burst");
        assert_eq!(limiter.admit(g, at(0)), Err(AdmissionReason::GroupRate));
        assert_eq!(limiter.admit(group_of(v4(127, 0, 0, 1)), at(0)), Ok(()));
        assert_eq!(limiter.admit(g, at(100)), Ok(()), "one more after 100 ms");
    }

    #[test]
    fn a_flood_from_busy_groups_leaves_the_reserve_to_a_quiet_group() {
        let mut limiter = RateLimiter::new(rates(), at(0));
        // 100 groups, each sending until its own bucket is low: they empty
        // the node-wide bucket and the reserve (a fresh group is rested).
        let mut t = 0;
        let mut refused_node = 0;
        for round in 0..40u8 {
            for g in 0..100u8 {
                t += 1;
                if limiter
                    .admit(group_of(v4(127, 50, g, round)), at(t / 10))
                    .is_err()
                {
                    refused_node += 1;
                }
            }
        }
        assert!(refused_node > 0, "the flood was over the node-wide rate");
        // A quiet group's newcomer still gets in from the reserve, shortly.
        let quiet = group_of(v4(127, 0, 0, 1));
        let ok = (0..20).any(|i| limiter.admit(quiet, at(t / 10 + 10 * i)).is_ok());
        assert!(ok);
    }

    #[test]
    fn the_group_table_drops_rested_groups_and_stays_bounded() {
        let mut limiter = RateLimiter::new(
            Rates {
                node_rate: u32::MAX,
                node_burst: u32::MAX,
                ..rates()
            },
            at(0),
        );
        for i in 0..(MAX_GROUP_BUCKETS as u32 + 10) {
            let [_, b, c, d] = i.to_be_bytes();
            let _ = limiter.admit(group_of(v4(b, c, d, 1)), at(0));
        }
        assert_eq!(limiter.group_count(), MAX_GROUP_BUCKETS);
        // 2 s later every group has refilled: room again.
        assert_eq!(limiter.admit(group_of(v4(200, 0, 0, 1)), at(2_000)), Ok(()));
        assert_eq!(limiter.group_count(), 1);
    }

    #[test]
    fn half_open_eviction_takes_the_oldest_unanswered_first() {
        let h = |n, ms, answered| HalfOpen {
            conn: ConnId::inbound(n),
            opened: at(ms),
            answered,
        };
        assert_eq!(half_open_to_evict(&[]), None);
        let table = [h(1, 5, true), h(2, 9, false), h(3, 7, false)];
        assert_eq!(half_open_to_evict(&table), Some(ConnId::inbound(3)));
        let table = [h(1, 5, true), h(2, 3, true)];
        assert_eq!(half_open_to_evict(&table), Some(ConnId::inbound(2)));
    }

    fn peer(n: u64, group: u8, rtt_ms: Option<u64>, since_ms: u64) -> InboundPeer {
        InboundPeer {
            conn: ConnId::inbound(n),
            group: AddrGroup::V4([127, group, 0]),
            group_key: u64::from(group).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            rtt: rtt_ms.map(Duration::from_millis),
            since: at(since_ms),
            protected: false,
        }
    }

    #[test]
    fn eviction_takes_the_youngest_of_the_biggest_group() {
        // 4 diverse peers, 8 fast ones, 8 old ones, and an attacker's
        // group of 10 young, slow ones plus a young single.
        let mut peers = Vec::new();
        for i in 0..4 {
            peers.push(peer(i, 100 + i as u8, Some(50), 1000));
        }
        for i in 4..12 {
            peers.push(peer(i, 1, Some(1), 2000));
        }
        for i in 12..20 {
            peers.push(peer(i, 2, None, 10 + i));
        }
        for i in 20..30 {
            peers.push(peer(i, 66, None, 5000 + i));
        }
        peers.push(peer(30, 3, None, 9000));
        let victim = select_to_evict(&peers).expect("as built");
        assert_eq!(victim, ConnId::inbound(29), "the youngest of group 66");
    }

    #[test]
    fn too_few_peers_are_all_protected() {
        let peers: Vec<_> = (0..4).map(|i| peer(i, i as u8, None, i)).collect();
        assert_eq!(
            select_to_evict(&peers),
            None,
            "one per group, all protected"
        );
    }

    fn arb_peer() -> impl Strategy<Value = InboundPeer> {
        (
            0u64..1000,
            0u8..6,
            proptest::option::of(0u64..500),
            0u64..10_000,
            any::<bool>(),
        )
            .prop_map(|(n, g, rtt, since, protected)| InboundPeer {
                protected,
                ..peer(n, g, rtt, since)
            })
    }

    proptest! {
        /// The victim is a candidate, never a protected one, never one of
        /// the lowest-RTT or longest-connected protected by the rules; and
        /// with enough unprotected candidates someone is evicted.
        #[test]
        fn eviction_never_picks_a_protected_peer(
            mut peers in proptest::collection::vec(arb_peer(), 0..60),
        ) {
            peers.sort_by_key(|p| p.conn);
            peers.dedup_by_key(|p| p.conn);
            let unprotected = peers.iter().filter(|p| !p.protected).count();
            match select_to_evict(&peers) {
                None => prop_assert!(unprotected <= PROTECT_BY_GROUP + PROTECT_BY_RTT),
                Some(victim) => {
                    let v = peers.iter().find(|p| p.conn == victim).expect("as built");
                    prop_assert!(!v.protected);
                    // Never one of the PROTECT_BY_RTT fastest candidates.
                    let mut fastest: Vec<_> = peers.iter()
                        .filter(|p| !p.protected && p.rtt.is_some()).collect();
                    fastest.sort_by_key(|p| (p.rtt, p.since, p.conn));
                    prop_assert!(fastest.iter().take(PROTECT_BY_RTT).all(|p| p.conn != victim));
                    // Never the longest connected, once at least two
                    // candidates outlast the group and RTT protections.
                    let oldest = peers.iter().filter(|p| !p.protected)
                        .min_by_key(|p| (p.since, p.conn)).expect("as built");
                    if unprotected >= PROTECT_BY_GROUP + PROTECT_BY_RTT + 2 {
                        prop_assert!(oldest.conn != victim);
                    }
                }
            }
        }

        /// Over any run of calls, a bucket admits at most rate·t + burst.
        #[test]
        fn a_bucket_never_admits_more_than_rate_times_t_plus_burst(
            rate in 1u32..2000,
            burst in 1u32..100,
            steps in proptest::collection::vec(0u64..20_000, 1..300),
        ) {
            let mut b = TokenBucket::full(burst, at(0));
            let mut now = 0u64;
            let mut admitted = 0u64;
            for step in steps {
                now += step;
                b.refill(rate, burst, Instant::from_micros(now));
                if b.has_token() {
                    b.take();
                    admitted += 1;
                }
                let bound = (u128::from(now) * u128::from(rate)) / 1_000_000 + u128::from(burst);
                prop_assert!(u128::from(admitted) <= bound);
            }
        }

        /// The limiter as a whole: node-wide at most (rate + reserve)·t +
        /// bursts, each group at most group_rate·t + group_burst.
        #[test]
        fn the_limiter_holds_its_node_and_group_bounds(
            arrivals in proptest::collection::vec((0u64..5_000, 0u8..40), 1..400),
        ) {
            let r = rates();
            let mut limiter = RateLimiter::new(r, at(0));
            let mut now = 0u64;
            let mut total = 0u128;
            let mut per_group = [0u128; 40];
            for (step, g) in arrivals {
                now += step;
                if limiter.admit(AddrGroup::V4([127, g, 0]), Instant::from_micros(now)).is_ok() {
                    total += 1;
                    per_group[usize::from(g)] += 1;
                }
                let t = u128::from(now);
                let (rr, rb) = r.reserve();
                let node_bound = t * u128::from(r.node_rate + rr) / 1_000_000
                    + u128::from(r.node_burst + rb);
                prop_assert!(total <= node_bound);
                let group_bound = t * u128::from(r.group_rate) / 1_000_000 + u128::from(r.group_burst);
                prop_assert!(per_group.iter().all(|&n| n <= group_bound));
            }
        }
    }
}
