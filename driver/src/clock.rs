//! [`Clock`]: the wall clock mapped onto protocol time.

use std::time::{Duration as StdDuration, Instant as StdInstant};

use ringmesh::Instant;

/// Maps `std::time::Instant` onto protocol time ([`ringmesh::Instant`]):
/// microseconds since the clock started, which the adapters make the
/// moment the node is created (its [`Instant::ZERO`]).
///
/// Both directions saturate instead of panicking: a wall-clock instant
/// before the epoch is [`Instant::ZERO`], one past what `u64` microseconds
/// hold (half a million years) is [`Instant::MAX`], and a protocol instant
/// too far to represent as a wall-clock one is "never".
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: StdInstant,
}

impl Clock {
    /// A clock whose [`Instant::ZERO`] is now.
    pub fn start() -> Clock {
        Clock::with_epoch(StdInstant::now())
    }

    /// A clock whose [`Instant::ZERO`] is `epoch`.
    pub fn with_epoch(epoch: StdInstant) -> Clock {
        Clock { epoch }
    }

    /// The wall-clock instant of protocol [`Instant::ZERO`].
    pub fn epoch(&self) -> StdInstant {
        self.epoch
    }

    /// Protocol time now.
    pub fn now(&self) -> Instant {
        self.instant(StdInstant::now())
    }

    /// The protocol instant of wall-clock `at` (truncated to the
    /// microsecond).
    pub fn instant(&self, at: StdInstant) -> Instant {
        // In `u64`, not through `Duration::as_micros`'s `u128` (read twice
        // a turn by an adapter); the same value, saturating alike.
        let since = at.saturating_duration_since(self.epoch);
        let micros = since
            .as_secs()
            .checked_mul(1_000_000)
            .and_then(|m| m.checked_add(u64::from(since.subsec_micros())))
            .unwrap_or(u64::MAX);
        Instant::from_micros(micros)
    }

    /// When protocol instant `at` falls on the wall clock; `None` if it is
    /// too far to represent (as good as never).
    pub fn to_std(&self, at: Instant) -> Option<StdInstant> {
        self.epoch
            .checked_add(StdDuration::from_micros(at.as_micros()))
    }

    /// How long from now until `at`: zero if it is due; `None` if it is
    /// too far to represent (as good as never). What a poll may sleep for
    /// a deadline from `Node::poll_timeout`.
    pub fn until(&self, at: Instant) -> Option<StdDuration> {
        self.to_std(at)
            .map(|at| at.saturating_duration_since(StdInstant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_and_protocol_time_map_onto_each_other_from_the_epoch() {
        let epoch = StdInstant::now();
        let clock = Clock::with_epoch(epoch);
        let later = epoch + StdDuration::from_micros(1_234_567);
        assert_eq!(clock.instant(epoch), Instant::ZERO);
        assert_eq!(clock.instant(later), Instant::from_micros(1_234_567));
        assert_eq!(clock.to_std(Instant::from_micros(1_234_567)), Some(later));
        // Sub-microsecond parts are truncated, never rounded up: a deadline
        // is not reported due before it is.
        assert_eq!(
            clock.instant(later + StdDuration::from_nanos(999)),
            Instant::from_micros(1_234_567)
        );
    }

    #[test]
    fn out_of_range_instants_saturate_instead_of_panicking() {
        let epoch = StdInstant::now() + StdDuration::from_secs(60);
        let clock = Clock::with_epoch(epoch);
        // Before the epoch.
        assert_eq!(clock.now(), Instant::ZERO);
        // "Never" is half a million years away, or not representable at
        // all (the platform decides): no panic either way.
        let century = StdDuration::from_secs(100 * 365 * 24 * 3600);
        assert!(
            clock
                .to_std(Instant::MAX)
                .is_none_or(|at| at > epoch + century)
        );
        assert!(clock.until(Instant::MAX).is_none_or(|wait| wait > century));
    }

    #[test]
    fn until_is_zero_for_a_deadline_that_is_due() {
        let clock = Clock::with_epoch(StdInstant::now() - StdDuration::from_secs(5));
        assert_eq!(
            clock.until(Instant::from_micros(1_000_000)),
            Some(StdDuration::ZERO)
        );
        let wait = clock
            .until(Instant::from_micros(3_600_000_000))
            .expect("an hour is representable");
        assert!(wait > StdDuration::from_secs(3_500), "{wait:?}");
    }
}
