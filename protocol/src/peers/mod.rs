//! The `peers` component's state: the peer cache (who exists and where) and
//! the redial backoff. The connection table and the one-connection-per-peer
//! rule live in `Node` (`node/connections.rs`), which owns the connections.

mod cache;

pub(crate) use cache::{LOST_REDIALS, PeerCache};

use crate::Config;
use crate::rng::Rng;
use crate::time::Duration;

/// The delay before redial attempt number `failures + 1`: `min × 2^failures`
/// capped at `max`, then jittered down by up to half so that nodes which
/// lost the same peer at the same moment do not redial in lockstep.
pub(crate) fn redial_delay(config: &Config, failures: u32, rng: &mut Rng) -> Duration {
    let min = config.redial_backoff_min.as_micros();
    let max = config.redial_backoff_max.as_micros();
    let full = min.saturating_mul(1u64 << failures.min(32)).min(max);
    let half = full / 2;
    Duration::from_micros(half + rng.below(full - half + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    #[test]
    fn redial_delay_doubles_to_its_cap_and_stays_within_jitter_bounds() {
        let config = Config::default();
        let mut rng = Rng::derive(1, Stream::Peers, None);
        for failures in 0..40 {
            let full = (config.redial_backoff_min.as_micros() << failures.min(20))
                .min(config.redial_backoff_max.as_micros());
            let d = redial_delay(&config, failures, &mut rng).as_micros();
            assert!(d >= full / 2 && d <= full, "{failures}: {d} vs {full}");
        }
    }
}
