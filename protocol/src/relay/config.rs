//! The relay component's configuration (`spec/relay.md` §5).

use crate::Duration;

/// Relays: reservations, circuits and their limits
/// ([`Config::relay`](crate::Config::relay)).
///
/// Every node that runs the component can hold reservations at relays and
/// open or accept circuits through them; only one with `serve` set relays
/// for others, within the limits below.
///
/// ```
/// use ringmesh::{Config, RelayConfig};
/// let relay = Config { relay: Some(RelayConfig { serve: true, ..RelayConfig::default() }), ..Config::lan() };
/// assert_eq!(relay.relay.map(|r| r.max_circuits), Some(64));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Serve as a relay: hold reservations and forward circuits for peers.
    /// Default: `false`.
    pub serve: bool,
    /// Reservations held at once; one more is refused
    /// (`RelayStatus::ReservationLimit`, counted). Default: 128.
    pub max_reservations: usize,
    /// How long a reservation holds; its holder renews it at half this.
    /// Default: 1 h.
    pub reservation_ttl: Duration,
    /// Circuits carried at once; one more is refused
    /// (`RelayStatus::CircuitLimit`, counted). Default: 64.
    pub max_circuits: usize,
    /// Circuits one peer may be an end of at once (as dialer or target);
    /// one more is refused (`RelayStatus::PeerCircuitLimit`). Default: 8.
    pub max_circuits_per_peer: usize,
    /// Bytes one circuit carries (both directions together) before the
    /// relay closes it (`RelayStatus::ByteLimit`). Default: 64 MiB.
    pub circuit_bytes: u64,
    /// How long a circuit lasts before the relay closes it
    /// (`RelayStatus::DurationLimit`). Default: 30 min.
    pub circuit_duration: Duration,
    /// Bytes per second one circuit may carry on average; data beyond the
    /// rate and its burst closes the circuit (`RelayStatus::RateLimit`: a
    /// relay that dropped bytes would break the stream it carries, and it
    /// cannot hold them back without holding memory for them). Default:
    /// 1 MiB/s.
    pub circuit_rate: u64,
    /// Bytes a circuit may send at once above its rate. Default: 4 MiB.
    pub circuit_burst: u64,
    /// Circuits this node is an end of at once (its relayed connections);
    /// an incoming circuit beyond it is refused. Default: 32.
    pub max_relayed_conns: usize,
    /// Upgrade relayed sessions to direct connections by hole punching
    /// (`spec/relay.md` §7): the end with the smaller node id starts it
    /// once the session is up. Default: `true`.
    pub hole_punch: bool,
    /// Hole-punch attempts per relayed session before it stays relayed.
    /// Default: 3.
    pub punch_attempts: u32,
    /// How long one hole-punch attempt may take, from its `HolePunch` to
    /// the direct session (a dropped first SYN is sent again after 1 s,
    /// then 3 s). Default: 10 s.
    pub punch_timeout: Duration,
    /// Nodes whose relays this node remembers, as peers announced them
    /// (`RelayAddrs`, `spec/relay.md` §3), at most 4 relays each; one
    /// more evicts the least recently heard (`relay_addrs_evicted`).
    /// Default: 1024.
    pub max_relay_addrs: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            serve: false,
            max_reservations: 128,
            reservation_ttl: Duration::from_secs(3600),
            max_circuits: 64,
            max_circuits_per_peer: 8,
            circuit_bytes: 64 * 1024 * 1024,
            circuit_duration: Duration::from_secs(30 * 60),
            circuit_rate: 1024 * 1024,
            circuit_burst: 4 * 1024 * 1024,
            max_relayed_conns: 32,
            hole_punch: true,
            punch_attempts: 3,
            punch_timeout: Duration::from_secs(10),
            max_relay_addrs: 1024,
        }
    }
}
