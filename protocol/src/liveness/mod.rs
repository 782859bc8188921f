//! The `liveness` component (spec/liveness.md): ping/pong per peer, an RTT
//! estimate, and the suspect → dead progression (SWIM's direct probe,
//! without indirect probes: every peer here is a direct neighbour with its
//! own connection).
//!
//! Liveness rides on traffic: any frame received from a peer proves it
//! alive, so only idle links are pinged, and an idle link from one end.
//! Timing (all from `Config`): a `Ping` leaves when nothing but pings was
//! heard from the peer for `ping_interval` (its `Ping` timer, due then,
//! finds such a frame heard more recently and waits until that frame is
//! `ping_interval` old instead; until a first pong has measured the round
//! trip, pings go on whatever the traffic). The peer's pings spare ours
//! only at the end with the higher id, and for `ping_interval +
//! ping_timeout`: the lower id pings an idle link, the higher answers and
//! pings only if those pings stop (it keeps the RTT its first pings
//! measured); so a crashed peer is found one `ping_timeout` later at that
//! end. One unanswered
//! after `ping_timeout`, with nothing else heard from the peer since it
//! left, is a miss; the first miss makes the peer suspect,
//! `dead_after_misses` consecutive misses make it dead. A pong or any
//! other frame clears the misses. So a crashed peer is declared dead at
//! most [`Config::detection_time`](crate::Config::detection_time) after it
//! crashed (it sends nothing after it), a peer whose pongs arrive within
//! `ping_timeout` never is, and a busy link carries no pings at all.
//!
//! Each peer's state ([`peer::PeerLiveness`]) lives in the peer table's slot for
//! that peer; this module schedules the pings and judges the answers. A
//! verdict of death goes back to the node, which closes the peer's
//! connections.

mod api;
pub(crate) mod config;
pub(crate) mod peer;

pub use api::{LivenessEvent, LivenessStats};
pub use config::LivenessConfig;

pub(crate) use peer::Verdict;

use tracing::info;

use crate::cx::Cx;
use crate::time::{Duration, Instant};
use crate::timer::DeadlineQueue;
use crate::wire::{Message, Ping, Pong};
use crate::{ConnId, NodeId};

/// A link's generation as a timer keeps it: its low 31 bits. A timer only
/// needs to tell its link from the links to the same peer before and after
/// it, and it lives a ping interval or timeout (seconds), while 2^31
/// generations (a node-wide serial that counts connections and links) are
/// years of work; the low bits fit a `Ping` in the word of a
/// [`QueuedTimer`], beside the bit that tells it from a `PongDue`.
pub(super) fn low_bits(generation: u64) -> u32 {
    generation as u32 & GENERATION
}

/// The component's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Time to ping `peer` (its link of this generation, see [`low_bits`]).
    Ping { peer: NodeId, generation: u32 },
    /// Ping `nonce` to `peer` is answered by now or missed. No generation:
    /// nonces are node-wide and never reused, and a new link starts with
    /// no ping outstanding, so a link that awaits `nonce` is the one it
    /// was sent on. Out of the queue, `nonce` is the ping's low
    /// [`NONCE_BITS`] bits (see [`QueuedTimer`]).
    PongDue {
        peer: NodeId,
        nonce: u64,
        /// A probe ([`Liveness::request_missed`]): missed, it is followed
        /// at once by another, until the peer answers or is dead.
        probe: bool,
    },
}

/// A [`Timer`] as its queue holds it: the peer's id as bytes and one
/// 32-bit word, 20 bytes aligned to 4 where the enum takes 32 (a queue
/// entry 32 bytes rather than 48, one or two per link of every node). The
/// word's top bit tells a `PongDue`, whose next bit is `probe` and whose
/// low [`NONCE_BITS`] bits the nonce's low bits; a `Ping`'s low 31 bits
/// are its generation's ([`low_bits`]). A nonce is a counter of the
/// node's pings, and the pings awaited from one peer at once are its last
/// few (at most `dead_after_misses + 1`): their low 30 bits tell them
/// apart, so a `PongDue` finds its ping by them
/// ([`PeerLiveness::awaited`](peer::PeerLiveness::awaited)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueuedTimer {
    peer: [u8; 16],
    word: u32,
}

const PONG_DUE: u32 = 1 << 31;
const PROBE: u32 = 1 << 30;
/// The bits of a nonce a queued `PongDue` keeps.
pub(crate) const NONCE_BITS: u32 = 30;
const NONCE: u32 = PROBE - 1;
const GENERATION: u32 = PONG_DUE - 1;

impl From<Timer> for QueuedTimer {
    fn from(timer: Timer) -> Self {
        match timer {
            Timer::Ping { peer, generation } => QueuedTimer {
                peer: peer.to_bytes(),
                word: generation & GENERATION,
            },
            Timer::PongDue { peer, nonce, probe } => {
                let probe = if probe { PROBE } else { 0 };
                QueuedTimer {
                    peer: peer.to_bytes(),
                    word: PONG_DUE | probe | (nonce as u32 & NONCE),
                }
            }
        }
    }
}

impl From<QueuedTimer> for Timer {
    fn from(queued: QueuedTimer) -> Self {
        let QueuedTimer { peer, word } = queued;
        let peer = NodeId::from_bytes(peer);
        if word & PONG_DUE == 0 {
            Timer::Ping {
                peer,
                generation: word,
            }
        } else {
            Timer::PongDue {
                peer,
                nonce: u64::from(word & NONCE),
                probe: word & PROBE != 0,
            }
        }
    }
}

/// The liveness component.
pub(crate) struct Liveness {
    ping_interval: Duration,
    ping_timeout: Duration,
    dead_after_misses: u32,
    next_nonce: u64,
    pub(crate) timers: DeadlineQueue<QueuedTimer>,
    pub(crate) stats: LivenessStats,
}

impl Liveness {
    pub(crate) fn new(config: &LivenessConfig) -> Self {
        Liveness {
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            dead_after_misses: config.dead_after_misses,
            next_nonce: 0,
            timers: DeadlineQueue::new(),
            stats: LivenessStats::default(),
        }
    }

    fn arm(&mut self, cx: &mut dyn Cx, at: Instant, timer: Timer) {
        let seq = cx.timer_seq();
        self.timers.push_seq(at, seq, timer.into());
    }

    /// `peer` came up (its link has `generation`): its first ping leaves
    /// one interval from now.
    pub(crate) fn peer_up(&mut self, cx: &mut dyn Cx, peer: NodeId, generation: u64) {
        let at = cx.now() + self.ping_interval;
        let generation = low_bits(generation);
        self.arm(cx, at, Timer::Ping { peer, generation });
    }

    /// Whether `timer` still guards something (cancelled timers stay queued
    /// until they surface). Generic so that the node's tidying after every call (with the
    /// `Net` itself) looks the link up without a virtual call.
    pub(crate) fn is_live<C: Cx + ?Sized>(cx: &C, timer: &QueuedTimer) -> bool {
        match Timer::from(*timer) {
            Timer::Ping { peer, generation } => {
                cx.link(peer).is_some_and(|l| l.generation == generation)
            }
            Timer::PongDue { peer, nonce, .. } => cx
                .link(peer)
                .is_some_and(|l| l.liveness.awaited(nonce).is_some()),
        }
    }

    /// A timer fired. Returns the peer to declare dead, if it now is.
    pub(crate) fn fire(&mut self, cx: &mut dyn Cx, timer: QueuedTimer) -> Option<NodeId> {
        match Timer::from(timer) {
            Timer::Ping { peer, .. } => {
                self.ping(cx, peer);
                None
            }
            Timer::PongDue { peer, nonce, probe } => {
                let dead = self.pong_missed(cx, peer, nonce);
                // A probe missed is followed by another while the peer is
                // still suspect (not heard from since) and not yet dead.
                if probe && dead.is_none() && cx.link(peer).is_some_and(|l| l.liveness.is_suspect())
                {
                    self.probe(cx, peer);
                }
                dead
            }
        }
    }

    /// A request to `peer` sent at `sent` went unanswered until its
    /// deadline (a recursive lookup's next hop, spec/chord.md §7.4): if
    /// nothing at all was heard from `peer` since, that is a miss, as an
    /// unanswered ping is (the peer becomes suspect, and may reach
    /// `dead_after_misses`); the miss that makes it suspect starts the
    /// probes: a ping now, and after each probe missed another, so a
    /// silent peer is dead `dead_after_misses − 1` ping timeouts later
    /// rather than after as many ping intervals. Returns the peer to declare dead, if it
    /// now is. Something heard since `sent` (the peer is alive, the path
    /// behind it slow) changes nothing.
    pub(crate) fn request_missed(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        sent: Instant,
    ) -> Option<NodeId> {
        let dead_after = self.dead_after_misses;
        let verdict = cx.liveness_mut(peer)?.request_missed(sent, dead_after)?;
        if verdict == Verdict::Suspect {
            // The first miss starts the probes (one chain per suspicion:
            // later misses only count).
            self.stats.probes += 1;
            self.probe(cx, peer);
        }
        self.judge(cx, peer, verdict, "left a request unanswered")
    }

    /// Pings `peer` now, as a probe (even if a scheduled ping is in
    /// flight: that one does not call for the next when missed).
    fn probe(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        if cx.link(peer).is_some() {
            self.send_ping(cx, peer, true);
        }
    }

    fn ping(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        let Some((generation, heard, measured)) = cx.link(peer).map(|l| {
            (
                l.generation,
                l.liveness.last_traffic(),
                l.liveness.rtt().is_some(),
            )
        }) else {
            return;
        };
        let now = cx.now();
        if let Some(heard) = heard
            && heard + self.ping_interval > now
            && measured
        {
            // Heard from within the interval: the link is not idle, so no
            // ping; look again when that frame is an interval old. (Pings
            // go on until a first pong has measured the round trip.)
            self.stats.pings_skipped += 1;
            self.arm(
                cx,
                heard + self.ping_interval,
                Timer::Ping { peer, generation },
            );
            return;
        }
        self.send_ping(cx, peer, false);
        self.arm(
            cx,
            now + self.ping_interval,
            Timer::Ping { peer, generation },
        );
    }

    /// Sends a ping to `peer` now and arms its `PongDue`.
    fn send_ping(&mut self, cx: &mut dyn Cx, peer: NodeId, probe: bool) {
        let now = cx.now();
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        if let Some(liveness) = cx.liveness_mut(peer) {
            liveness.ping_sent(nonce, now);
        }
        self.stats.pings_sent += 1;
        // Also on a connection the peer is retiring as a duplicate: it
        // still answers pings there, so a peer that dies meanwhile is
        // detected in time.
        let _ = cx.send(peer, &Message::Ping(Ping { nonce }));
        self.arm(
            cx,
            now + self.ping_timeout,
            Timer::PongDue { peer, nonce, probe },
        );
    }

    /// The `PongDue` of the ping to `peer` whose nonce ends in `low` (its
    /// low [`NONCE_BITS`] bits) fired.
    fn pong_missed(&mut self, cx: &mut dyn Cx, peer: NodeId, low: u64) -> Option<NodeId> {
        let dead_after = self.dead_after_misses;
        let liveness = cx.liveness_mut(peer)?;
        let nonce = liveness.awaited(low)?;
        let verdict = liveness.timed_out(nonce, dead_after);
        self.judge(cx, peer, verdict, "missed a ping")
    }

    /// Acts on a miss's `verdict` for `peer` (`what` it did): the first
    /// miss is told as `Suspect`; the last returns the peer to declare
    /// dead.
    fn judge(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        verdict: Verdict,
        what: &str,
    ) -> Option<NodeId> {
        match verdict {
            Verdict::Suspect => {
                info!(peer = %peer.short(), "peer {what}: suspect");
                cx.emit(LivenessEvent::Suspect { peer });
                None
            }
            Verdict::Dead => {
                let misses = self.dead_after_misses;
                info!(peer = %peer.short(), misses, "peer unresponsive: dead");
                self.stats.peers_declared_dead += 1;
                Some(peer)
            }
            Verdict::Unchanged | Verdict::Recovered => None,
        }
    }

    /// A `Ping` arrived on `conn`.
    pub(crate) fn on_ping(cx: &mut dyn Cx, conn: ConnId, nonce: u64) {
        // Answered on the connection it came on, even one this node is
        // draining: the peer may still rely on it while the connection we
        // kept comes up (or never does, if it was stale), and its liveness
        // must see that we are alive.
        let _ = cx.send_even_draining(conn, &Message::Pong(Pong { nonce }));
    }

    /// A frame (any message) arrived from `from`: it is alive now.
    /// `ping`: it was a `Ping`, which spares this node its own ping only
    /// when `from` has the lower id (the lower id pings an idle link, the
    /// higher answers), and then until `ping_timeout` past one interval:
    /// the peer's next ping, one interval and its pong's round trip
    /// later, comes first while the round trip is under `ping_timeout`,
    /// and if it does not come this node pings on its own
    /// (spec/liveness.md §2).
    /// `liveness` is the link's to `from`, `now` and `me` the node's.
    pub(crate) fn on_frame(
        liveness: &mut peer::PeerLiveness,
        now: Instant,
        me: NodeId,
        from: NodeId,
        ping: bool,
        ping_timeout: Duration,
    ) {
        let traffic = if !ping {
            Some(now)
        } else if from < me {
            Some(now + ping_timeout)
        } else {
            None
        };
        if liveness.heard(now, traffic) == Verdict::Recovered {
            info!(peer = %from.short(), "suspect peer was heard from again");
        }
    }

    /// A `Pong` arrived from `from`.
    pub(crate) fn on_pong(cx: &mut dyn Cx, from: NodeId, nonce: u64) {
        let now = cx.now();
        if let Some(liveness) = cx.liveness_mut(from)
            && liveness.pong(nonce, now) == Verdict::Recovered
        {
            info!(peer = %from.short(), "suspect peer answered again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_timer_gives_back_the_timer_it_was_made_from() {
        let peer = NodeId::from_u128(u128::MAX);
        for timer in [
            Timer::Ping {
                peer,
                generation: 0,
            },
            Timer::Ping {
                peer,
                generation: GENERATION,
            },
            Timer::PongDue {
                peer,
                nonce: 0,
                probe: false,
            },
            Timer::PongDue {
                peer,
                nonce: 0,
                probe: true,
            },
            Timer::PongDue {
                peer,
                nonce: u64::from(NONCE),
                probe: false,
            },
            Timer::PongDue {
                peer,
                nonce: u64::from(NONCE),
                probe: true,
            },
            Timer::PongDue {
                peer: NodeId::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
                nonce: 7,
                probe: true,
            },
        ] {
            assert_eq!(Timer::from(QueuedTimer::from(timer)), timer);
        }
    }

    /// A queued `PongDue` keeps its nonce's low 30 bits and a `Ping` its
    /// generation's low 31; the link's liveness finds the ping awaited by
    /// those bits, and only that one.
    #[test]
    fn a_queued_timer_keeps_low_bits_that_find_their_ping() {
        let peer = NodeId::from_u128(42);
        let nonce = (5u64 << NONCE_BITS) | 9;
        let queued = QueuedTimer::from(Timer::PongDue {
            peer,
            nonce,
            probe: false,
        });
        let Timer::PongDue { nonce: low, .. } = Timer::from(queued) else {
            panic!("a PongDue comes back as one");
        };
        assert_eq!(low, 9);
        let mut liveness = peer::PeerLiveness::new(u64::from(u32::MAX) + 3);
        assert_eq!(liveness.generation(), 2);
        assert_eq!(liveness.awaited(low), None);
        liveness.ping_sent(nonce - 1, crate::time::Instant::from_micros(1));
        liveness.ping_sent(nonce, crate::time::Instant::from_micros(2));
        assert_eq!(liveness.awaited(low), Some(nonce));
        assert_eq!(liveness.awaited(8), Some(nonce - 1));
        assert_eq!(liveness.awaited(10), None);
        let ping = Timer::from(QueuedTimer::from(Timer::Ping {
            peer,
            generation: low_bits(u64::MAX),
        }));
        assert_eq!(
            ping,
            Timer::Ping {
                peer,
                generation: GENERATION
            }
        );
    }
}
