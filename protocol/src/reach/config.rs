//! The reach component's configuration (`spec/reach.md` §4).

use crate::Duration;

/// How a node learns the addresses its peers see it at
/// ([`Config::reach`](crate::Config::reach)).
///
/// ```
/// use ringmesh::{Config, ReachConfig};
/// let config = Config { reach: Some(ReachConfig::default()), ..Config::lan() };
/// assert_eq!(config.reach.map(|r| r.observed_threshold), Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachConfig {
    /// How many distinct peers must report the same IP address
    /// (`ObservedAddr`) before the node adopts it, with its own listen
    /// port, as an address it announces. At least 2, so that a single
    /// peer's word never changes what the node announces. Default: 3.
    pub observed_threshold: usize,
    /// How many peers' reports are held at once (one per peer, its
    /// latest, forgotten when the peer goes down); a report beyond it is
    /// dropped and counted (`ReachStats::observations_dropped`).
    /// Default: 64.
    pub max_observers: usize,
    /// How many peers a node asks to dial it back when it checks an
    /// address (peers that see it at that address's IP); 0 runs no
    /// checks. Default: 3.
    pub probe_peers: usize,
    /// Dial-backs this node runs for its peers at once; a request beyond
    /// it is refused (`DialBackStatus::Refused`, counted). Default: 4.
    pub max_probes: usize,
    /// Least time between two dial-backs this node runs for one peer; a
    /// request sooner is refused (counted). Default: 30 s.
    pub probe_gap: Duration,
}

impl Default for ReachConfig {
    fn default() -> Self {
        ReachConfig {
            observed_threshold: 3,
            max_observers: 64,
            probe_peers: 3,
            max_probes: 4,
            probe_gap: Duration::from_secs(30),
        }
    }
}

/// The smallest allowed [`ReachConfig::observed_threshold`].
pub const MIN_OBSERVED_THRESHOLD: usize = 2;
