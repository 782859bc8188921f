//! [`LivenessConfig`]: pings and the failure detector's timing.

use crate::time::Duration;

/// When peers are pinged and declared dead. Part of
/// [`Config`](crate::Config); the presets follow memberlist's profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessConfig {
    /// A `Ping` goes to a peer when nothing was heard from it for this
    /// long (any frame received proves it alive: busy links carry no
    /// pings). Default (WAN) 5 s; 1 s in [`LivenessConfig::lan`].
    pub ping_interval: Duration,
    /// A ping unanswered this long is a miss; one miss makes the peer
    /// suspect. At most `ping_interval`. Default (WAN) 3 s; 500 ms in
    /// [`LivenessConfig::lan`].
    pub ping_timeout: Duration,
    /// Consecutive misses that make a peer dead: its connections close and
    /// `PeersEvent::Down { reason: Unresponsive }` is emitted. Default (WAN) 4; 3 in
    /// [`LivenessConfig::lan`].
    pub dead_after_misses: u32,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig::wan()
    }
}

impl LivenessConfig {
    /// A local network (RTTs under a few milliseconds): ping every 1 s, a
    /// miss after 500 ms, dead after 3 misses, so a crashed peer is
    /// declared dead within 4 s.
    pub fn lan() -> Self {
        LivenessConfig {
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_millis(500),
            dead_after_misses: 3,
        }
    }

    /// The internet (RTTs up to a second, lossy paths): ping every 5 s, a
    /// miss after 3 s, dead after 4 misses (detection within 26 s).
    pub fn wan() -> Self {
        LivenessConfig {
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(3),
            dead_after_misses: 4,
        }
    }

    /// The longest a crashed peer goes undetected after the last frame it
    /// sent arrived (liveness rides on traffic, so add one transport trip
    /// to count from the crash): the first ping after that frame leaves
    /// within `ping_interval` (`ping_interval + ping_timeout` at the end
    /// with the higher id, where the peer's pings count as traffic that
    /// much later: an idle link is pinged from one end), and
    /// `dead_after_misses` misses later (each `ping_timeout` after its
    /// ping, pings `ping_interval` apart) the peer is dead:
    /// `dead_after_misses × ping_interval + 2 × ping_timeout`. A live peer
    /// whose pongs arrive within `ping_timeout` is never declared dead.
    pub fn detection_time(&self) -> Duration {
        self.ping_interval
            .saturating_mul(u64::from(self.dead_after_misses))
            + self.ping_timeout.saturating_mul(2)
    }
}
