//! One peer's liveness: pings in flight, misses, the RTT estimate, and the
//! suspect → dead progression. Pure rules; `mod.rs` schedules the pings.

use smallvec::SmallVec;

use crate::time::{Duration, Instant};

/// What a pong or a miss changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing worth telling.
    Unchanged,
    /// The first miss: the peer is suspect.
    Suspect,
    /// A pong from a suspect peer.
    Recovered,
    /// Too many misses: the peer is dead.
    Dead,
}

/// An optional count of microseconds in 8 bytes rather than the 16 of an
/// `Option<u64>`: `u64::MAX` (half a million years) stands for none. A
/// node holds one liveness record per peer, and a simulation a million
/// nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Micros(u64);

impl Micros {
    const NONE: Micros = Micros(u64::MAX);

    fn get(self) -> Option<u64> {
        (self != Micros::NONE).then_some(self.0)
    }
}

impl Default for Micros {
    fn default() -> Self {
        Micros::NONE
    }
}

/// Liveness of one peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerLiveness {
    /// Pings in flight: nonce and when each left. At most
    /// `dead_after_misses + 1` (older ones have been counted as misses).
    /// One inline: a second is in flight only after a miss, and this
    /// record sits in every link of every node (24 bytes, not 40).
    outstanding: SmallVec<[(u64, Instant); 1]>,
    misses: u32,
    /// The smoothed round-trip time (a `Duration`), once a pong came back.
    srtt: Micros,
    /// When the last frame from the peer arrived (any message on any of
    /// its established connections): it was alive then.
    heard: Micros,
    /// When the last traffic that makes this node's own ping unneeded
    /// arrived: a frame other than a `Ping`, or (at the end with the
    /// higher id) the peer's `Ping`, counted `ping_timeout` late
    /// ([`Liveness::on_frame`](super::Liveness::on_frame)), so it may lie
    /// ahead.
    traffic: Micros,
    /// The link's generation, its low 31 bits (all a lazily cancelled
    /// `Ping` timer compares, see `low_bits` in the module above). Held
    /// here, in room `misses` leaves, rather than as a 64-bit field of the
    /// link: a link is 64 bytes, not 72.
    generation: u32,
}

impl PeerLiveness {
    /// The state of a link that just came up with `generation`.
    pub(crate) fn new(generation: u64) -> Self {
        PeerLiveness {
            generation: super::low_bits(generation),
            ..PeerLiveness::default()
        }
    }

    /// The link's generation, its low 31 bits.
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    /// Records a ping sent now.
    pub(crate) fn ping_sent(&mut self, nonce: u64, now: Instant) {
        self.outstanding.push((nonce, now));
    }

    /// The nonce of the ping still awaited whose low
    /// [`NONCE_BITS`](super::NONCE_BITS) bits are `low`, if any (what a
    /// queued `PongDue` keeps of its nonce: the pings awaited at once are a
    /// peer's last few, apart by far less than 2^30).
    pub(crate) fn awaited(&self, low: u64) -> Option<u64> {
        let mask = (1u64 << super::NONCE_BITS) - 1;
        self.outstanding
            .iter()
            .map(|&(n, _)| n)
            .find(|n| n & mask == low)
    }

    /// A pong arrived. A late pong (already counted as a miss) gives no
    /// RTT sample; as any frame, it still proves the peer alive
    /// ([`PeerLiveness::heard`], called for every message).
    pub(crate) fn pong(&mut self, nonce: u64, now: Instant) -> Verdict {
        let Some(i) = self.outstanding.iter().position(|&(n, _)| n == nonce) else {
            return Verdict::Unchanged;
        };
        let (_, sent) = self.outstanding.remove(i);
        let sample = now - sent;
        // RFC 6298's smoothing: srtt = 7/8 srtt + 1/8 sample.
        self.srtt = Micros(match self.srtt.get() {
            None => sample.as_micros(),
            Some(srtt) => (srtt * 7 + sample.as_micros()) / 8,
        });
        let was_suspect = self.misses > 0;
        self.misses = 0;
        if was_suspect {
            Verdict::Recovered
        } else {
            Verdict::Unchanged
        }
    }

    /// A frame from the peer arrived now: it is alive, so a suspect peer
    /// recovers (its misses are cleared) as a pong would make it.
    /// `traffic`: the frame postpones this node's next ping until an
    /// interval after that time (none for a `Ping` at the lower id).
    pub(crate) fn heard(&mut self, now: Instant, traffic: Option<Instant>) -> Verdict {
        self.heard = Micros(now.as_micros());
        if let Some(at) = traffic {
            let at = at.as_micros();
            if self.traffic.get().is_none_or(|t| t < at) {
                self.traffic = Micros(at);
            }
        }
        if self.misses > 0 {
            self.misses = 0;
            Verdict::Recovered
        } else {
            Verdict::Unchanged
        }
    }

    /// When the last traffic arrived from the peer, if any has (see
    /// `traffic`: a `Ping` heard at the higher id counts `ping_timeout`
    /// late).
    pub(crate) fn last_traffic(&self) -> Option<Instant> {
        self.traffic.get().map(Instant::from_micros)
    }

    /// The ping `nonce` reached its timeout. Not a miss if a frame from
    /// the peer arrived since the ping left (the peer was alive then).
    pub(crate) fn timed_out(&mut self, nonce: u64, dead_after: u32) -> Verdict {
        let Some(i) = self.outstanding.iter().position(|&(n, _)| n == nonce) else {
            return Verdict::Unchanged;
        };
        let (_, sent) = self.outstanding.remove(i);
        if self.heard_since(sent) {
            return Verdict::Unchanged;
        }
        self.miss(dead_after)
    }

    /// A request sent at `sent` went unanswered until its deadline: a miss
    /// if nothing was heard from the peer since (as for a ping); `None`
    /// if something was (no miss).
    pub(crate) fn request_missed(&mut self, sent: Instant, dead_after: u32) -> Option<Verdict> {
        if self.heard_since(sent) {
            return None;
        }
        Some(self.miss(dead_after))
    }

    /// Whether a frame from the peer arrived at or after `at`.
    fn heard_since(&self, at: Instant) -> bool {
        self.heard
            .get()
            .is_some_and(|heard| heard >= at.as_micros())
    }

    /// Counts one miss.
    fn miss(&mut self, dead_after: u32) -> Verdict {
        self.misses += 1;
        if self.misses >= dead_after {
            Verdict::Dead
        } else if self.misses == 1 {
            Verdict::Suspect
        } else {
            Verdict::Unchanged
        }
    }

    /// The smoothed round-trip time, once a pong has arrived.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.srtt.get().map(Duration::from_micros)
    }

    /// Whether the last ping (at least) went unanswered.
    pub(crate) fn is_suspect(&self) -> bool {
        self.misses > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_make_a_peer_suspect_then_dead_and_a_pong_clears_them() {
        let mut l = PeerLiveness::default();
        let t = Instant::from_micros;
        l.ping_sent(1, t(0));
        assert_eq!(l.timed_out(1, 3), Verdict::Suspect);
        l.ping_sent(2, t(10));
        assert_eq!(l.pong(2, t(30)), Verdict::Recovered);
        assert_eq!(l.rtt(), Some(Duration::from_micros(20)));
        for n in 3..5 {
            l.ping_sent(n, t(n * 100));
            assert_ne!(l.timed_out(n, 3), Verdict::Dead);
        }
        l.ping_sent(5, t(500));
        assert_eq!(l.pong(4, t(501)), Verdict::Unchanged, "late pong ignored");
        assert_eq!(l.timed_out(5, 3), Verdict::Dead);
        assert_eq!(l.timed_out(5, 3), Verdict::Unchanged, "counted once");
    }

    #[test]
    fn a_frame_heard_clears_misses_and_saves_a_ping_sent_before_it() {
        let mut l = PeerLiveness::default();
        let t = Instant::from_micros;
        l.ping_sent(1, t(0));
        assert_eq!(l.timed_out(1, 3), Verdict::Suspect);
        assert_eq!(l.heard(t(50), None), Verdict::Recovered);
        assert!(!l.is_suspect());
        assert_eq!(l.last_traffic(), None, "a ping is no traffic");
        assert_eq!(l.heard(t(55), Some(t(55))), Verdict::Unchanged);
        assert_eq!(l.last_traffic(), Some(t(55)));
        // A ping sent before a frame arrived is no miss when it times out.
        l.ping_sent(2, t(40));
        assert_eq!(l.timed_out(2, 1), Verdict::Unchanged);
        // One sent after the last frame is.
        l.ping_sent(3, t(60));
        assert_eq!(l.timed_out(3, 1), Verdict::Dead);
    }
}
