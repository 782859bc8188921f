//! Node configuration.

use core::net::SocketAddr;

use smallvec::SmallVec;

// Each sub-config from its own file, which imports nothing of its
// component: the components read `Config`, not the other way round.
use crate::blobs::config::BlobsConfig;
use crate::chord::config::ChordConfig;
use crate::dht::config::DhtConfig;
use crate::liveness::config::LivenessConfig;
use crate::mesh::config::MeshConfig;
use crate::messaging::config::MessagingConfig;
use crate::peers::config::PeersConfig;
use crate::reach::config::{MIN_OBSERVED_THRESHOLD, ReachConfig};
use crate::relay::config::RelayConfig;
use crate::session::config::SessionConfig;
use crate::sync::config::SyncConfig;
use crate::time::Duration;
use crate::wire::{MAX_LISTEN_ADDRS, MAX_PEER_LIST};

/// How sessions are secured. Both sides must use the same mode: a node never
/// falls back from one to the other. A mismatch closes the connection with
/// [`ProtocolError::SecurityMismatch`](crate::ProtocolError::SecurityMismatch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Security {
    /// Noise `XX_25519_ChaChaPoly_BLAKE2s`, with the Noise static key signed
    /// by the Ed25519 identity: peers' `NodeId`s are authenticated and every
    /// frame after the handshake is encrypted. The default.
    #[default]
    Noise,
    /// No encryption, identities claimed but not proven. For simulations and
    /// tests, where it saves the cost of the cryptography; never for a real
    /// network.
    Plaintext,
}

impl Security {
    /// The preamble byte for this mode.
    pub const fn wire_code(self) -> u8 {
        match self {
            Security::Plaintext => 0,
            Security::Noise => 1,
        }
    }
}

/// Smallest frame cap a node accepts: room for a `Hello` with every address.
pub const MIN_MAX_FRAME_LEN: u32 = 1024;

/// Everything that tunes a [`Node`](crate::Node): the node's own settings,
/// and one sub-configuration per component, each field documented with its
/// effect and default. Build one from a preset and change what you need;
/// [`Node::new`](crate::Node::new) validates it.
///
/// ```
/// use ringmesh::{ChordConfig, Config, DhtConfig, Security};
///
/// // A node of a local network of about 5,000 nodes that runs the ring
/// // and the table.
/// let config = Config {
///     listen_addrs: ["10.0.0.7:7000".parse()?].into_iter().collect(),
///     ..Config::lan_ring(5_000)
/// };
/// assert_eq!(config.chord.as_ref().map(|c| c.successors), Some(13));
/// assert_eq!(config.validate(), Ok(()));
///
/// // Simulations and tests skip the cryptography.
/// let mut config = Config { security: Security::Plaintext, ..Config::lan() };
/// config.peers.target_peers = 4;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Not `#[non_exhaustive]`, so that `Config { field, ..Config::lan() }`
/// works; always build it that way so new fields do not break you.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Session security. Default: [`Security::Noise`].
    pub security: Security,
    /// Where this node accepts connections; announced in `Hello` so peers
    /// can redial it. At most [`MAX_LISTEN_ADDRS`]. Default: none.
    pub listen_addrs: SmallVec<[SocketAddr; 2]>,
    /// Frames, compression, handshakes.
    pub session: SessionConfig,
    /// Connection caps, redials, the peer cache and discovery.
    pub peers: PeersConfig,
    /// Pings and the failure detector.
    pub liveness: LivenessConfig,
    /// Flooding.
    pub mesh: MeshConfig,
    /// Requests and messages for unconnected peers.
    pub messaging: MessagingConfig,
    /// The Chord ring; `None` (the default) does not run it.
    pub chord: Option<ChordConfig>,
    /// The Chord table; `None` (the default) does not run it. Needs the
    /// ring.
    pub dht: Option<DhtConfig>,
    /// The sync table (`spec/sync.md`); `None` (the default) does not run
    /// it. Needs no ring.
    pub sync: Option<SyncConfig>,
    /// Blobs (`spec/blobs.md`): serving and fetching files by content;
    /// `None` (the default) does not run it. Needs `session.max_frame_len`
    /// of at least [`BLOBS_MIN_FRAME_LEN`].
    pub blobs: Option<BlobsConfig>,
    /// Observed addresses (`spec/reach.md`): this node tells its peers
    /// the address it sees each at, and adopts an address that enough of
    /// them see it at. `None` (the library's default) does neither and
    /// does not offer `REACH`; the `ringmesh` program turns it on.
    pub reach: Option<ReachConfig>,
    /// Relays (`spec/relay.md`): reservations at relays, circuits through
    /// them, and serving as one (`RelayConfig::serve`). `None` (the
    /// default) does none of it and does not offer `RELAY`.
    pub relay: Option<RelayConfig>,
}

/// Smallest `max_frame_len` with blobs on: a `BlobGroup` carries 16 KiB of
/// data and a proof of up to 40 × 32 bytes.
pub const BLOBS_MIN_FRAME_LEN: u32 = 32 * 1024;

/// Smallest `max_frame_len` with the ring on: a full `ChordState` (33
/// entries of 8 addresses) takes about 5.5 KiB.
pub const CHORD_MIN_FRAME_LEN: u32 = 16 * 1024;

/// Most bootstrap addresses a [`Config`] may hold.
pub const MAX_BOOTSTRAP: usize = 64;

impl Default for Config {
    fn default() -> Self {
        Config::wan()
    }
}

impl Config {
    /// The default configuration in plaintext mode, for simulations and tests.
    pub fn plaintext() -> Self {
        Config {
            security: Security::Plaintext,
            ..Config::default()
        }
    }

    /// Timings for a local network (one data centre, RTTs under a few
    /// milliseconds), after memberlist's LAN profile: ping every 1 s, a miss
    /// after 500 ms, dead after 3 misses, so a crashed peer is declared dead
    /// within [`Config::detection_time`] = 4 s. Redials start at 500 ms,
    /// capped at 30 s. No ring.
    pub fn lan() -> Self {
        Config {
            peers: PeersConfig::lan(),
            liveness: LivenessConfig::lan(),
            ..Config::wan()
        }
    }

    /// Timings for the internet (RTTs up to a second, lossy paths), after
    /// memberlist's WAN profile: ping every 5 s, a miss after 3 s, dead
    /// after 4 misses (detection within 26 s); redials from 1 s to 60 s.
    /// No ring. The same as [`Config::default`].
    pub fn wan() -> Self {
        Config {
            security: Security::Noise,
            listen_addrs: SmallVec::new(),
            session: SessionConfig::default(),
            peers: PeersConfig::wan(),
            liveness: LivenessConfig::wan(),
            mesh: MeshConfig::default(),
            messaging: MessagingConfig::default(),
            chord: None,
            dht: None,
            sync: None,
            blobs: None,
            reach: None,
            relay: None,
        }
    }

    /// [`Config::lan`] with the ring and the table on, their timings for a
    /// local network and the successor list sized for a ring of about `n`
    /// members ([`ChordConfig::sized_for`]). Set `listen_addrs`: ring
    /// members must be diallable.
    pub fn lan_ring(n: u64) -> Self {
        Config {
            chord: Some(ChordConfig::lan().sized_for(n)),
            dht: Some(DhtConfig::lan()),
            ..Config::lan()
        }
    }

    /// [`Config::wan`] with the ring and the table on, sized for a ring of
    /// about `n` members. Set `listen_addrs`.
    pub fn wan_ring(n: u64) -> Self {
        Config {
            chord: Some(ChordConfig::wan().sized_for(n)),
            dht: Some(DhtConfig::wan()),
            ..Config::wan()
        }
    }

    /// The longest a crashed peer goes undetected
    /// ([`LivenessConfig::detection_time`]).
    pub fn detection_time(&self) -> Duration {
        self.liveness.detection_time()
    }

    /// The smallest [`SessionConfig::receive_budget`] this configuration
    /// allows: its pool (half of it) must hold one frame body of
    /// `max_frame_len` and the payload it decompresses to (at most
    /// `max_frame_len` too), or a frame the node accepts could never be
    /// read: 4 × `max_frame_len` (64 MiB for the default 16 MiB).
    pub fn min_receive_budget(&self) -> usize {
        (self.session.max_frame_len as usize).saturating_mul(4)
    }

    /// Checks every field; [`Node::new`](crate::Node::new) calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (session, peers, liveness) = (&self.session, &self.peers, &self.liveness);
        if session.max_frame_len < MIN_MAX_FRAME_LEN {
            return Err(ConfigError::MaxFrameLenTooSmall {
                value: session.max_frame_len,
                min: MIN_MAX_FRAME_LEN,
            });
        }
        if self.listen_addrs.len() > MAX_LISTEN_ADDRS {
            return Err(ConfigError::TooManyListenAddrs {
                len: self.listen_addrs.len(),
                max: MAX_LISTEN_ADDRS,
            });
        }
        if session.receive_budget < self.min_receive_budget() {
            return Err(ConfigError::ReceiveBudgetTooSmall {
                value: session.receive_budget,
                min: self.min_receive_budget(),
            });
        }
        if session.handshake_timeout == Duration::ZERO {
            return Err(ConfigError::ZeroHandshakeTimeout);
        }
        if peers.max_connections == 0 {
            return Err(ConfigError::ZeroMaxConnections);
        }
        if peers.bootstrap.len() > MAX_BOOTSTRAP {
            return Err(ConfigError::TooManyBootstrapAddrs {
                len: peers.bootstrap.len(),
                max: MAX_BOOTSTRAP,
            });
        }
        if peers.peer_exchange_size > MAX_PEER_LIST {
            return Err(ConfigError::PeerExchangeTooLarge {
                value: peers.peer_exchange_size,
                max: MAX_PEER_LIST,
            });
        }
        let mut zero = vec![
            ("liveness.ping_interval", liveness.ping_interval),
            ("liveness.ping_timeout", liveness.ping_timeout),
            ("peers.maintenance_interval", peers.maintenance_interval),
            ("peers.redial_backoff_min", peers.redial_backoff_min),
            ("messaging.lookup_timeout", self.messaging.lookup_timeout),
            (
                "peers.admission.inbound_handshake_timeout",
                peers.admission.inbound_handshake_timeout,
            ),
        ];
        let mut counts = vec![
            ("peers.max_inbound", peers.max_inbound),
            ("peers.max_outbound", peers.max_outbound),
            ("peers.max_half_open", peers.max_half_open),
            ("peers.max_known_peers", peers.max_known_peers),
            ("mesh.replay_origins", self.mesh.replay_origins),
            ("mesh.replay_runs", self.mesh.replay_runs),
            ("mesh.max_forgeries", self.mesh.max_forgeries as usize),
            (
                "liveness.dead_after_misses",
                liveness.dead_after_misses as usize,
            ),
            ("mesh.max_hops", usize::from(self.mesh.max_hops)),
            // Admission: a zero cap or rate would refuse every inbound
            // connection.
            (
                "peers.admission.max_inbound_half_open",
                peers.admission.max_inbound_half_open,
            ),
            (
                "peers.admission.max_inbound_per_ip",
                peers.admission.max_inbound_per_ip,
            ),
            (
                "peers.admission.max_inbound_per_group",
                peers.admission.max_inbound_per_group,
            ),
            (
                "peers.admission.handshake_rate",
                peers.admission.handshake_rate as usize,
            ),
            (
                "peers.admission.handshake_burst",
                peers.admission.handshake_burst as usize,
            ),
            (
                "peers.admission.group_handshake_rate",
                peers.admission.group_handshake_rate as usize,
            ),
            (
                "peers.admission.group_handshake_burst",
                peers.admission.group_handshake_burst as usize,
            ),
        ];
        if let Some(chord) = &self.chord {
            zero.extend([
                ("chord.stabilize_interval", chord.stabilize_interval),
                ("chord.request_timeout", chord.request_timeout),
                ("chord.fix_fingers_interval", chord.fix_fingers_interval),
                ("chord.lookup_timeout", chord.lookup_timeout),
                ("chord.merge_interval", chord.merge_interval),
                ("chord.merge_forget", chord.merge_forget),
            ]);
            counts.extend([
                ("chord.max_hops", chord.max_hops as usize),
                (
                    "chord.fix_fingers_backoff",
                    chord.fix_fingers_backoff as usize,
                ),
                ("chord.max_lookups", chord.max_lookups),
                ("chord.route_ttl", usize::from(chord.route_ttl)),
                ("chord.max_forwards", chord.max_forwards),
                ("chord.max_forwards_per_peer", chord.max_forwards_per_peer),
                ("chord.max_fingers", chord.max_fingers),
                ("chord.max_merge_suspects", chord.max_merge_suspects),
            ]);
        }
        if let Some(dht) = &self.dht {
            zero.extend([
                ("dht.repair_interval", dht.repair_interval),
                ("dht.tombstone_ttl", dht.tombstone_ttl),
            ]);
            counts.extend([
                ("dht.max_entries", dht.max_entries),
                ("dht.max_bytes", dht.max_bytes),
                ("dht.max_bytes_per_writer", dht.max_bytes_per_writer),
                ("dht.max_entries_per_writer", dht.max_entries_per_writer),
                ("dht.max_bytes_per_sender", dht.max_bytes_per_sender),
                ("dht.max_entries_per_sender", dht.max_entries_per_sender),
            ]);
        }
        if let Some(reach) = &self.reach {
            if reach.observed_threshold < MIN_OBSERVED_THRESHOLD {
                return Err(ConfigError::ReachThreshold(reach.observed_threshold));
            }
            counts.extend([
                ("reach.max_observers", reach.max_observers),
                ("reach.max_probes", reach.max_probes),
            ]);
        }
        if let Some(relay) = &self.relay {
            counts.extend([("relay.max_relayed_conns", relay.max_relayed_conns)]);
            if relay.serve {
                counts.extend([
                    ("relay.max_reservations", relay.max_reservations),
                    ("relay.max_circuits", relay.max_circuits),
                    ("relay.max_circuits_per_peer", relay.max_circuits_per_peer),
                ]);
                zero.extend([
                    ("relay.reservation_ttl", relay.reservation_ttl),
                    ("relay.circuit_duration", relay.circuit_duration),
                ]);
            }
        }
        if let Some(sync) = &self.sync {
            zero.extend([
                ("sync.lease", sync.lease),
                ("sync.anti_entropy_interval", sync.anti_entropy_interval),
            ]);
            counts.extend([
                ("sync.max_entries", sync.max_entries),
                ("sync.max_bytes", sync.max_bytes),
                ("sync.max_bytes_per_writer", sync.max_bytes_per_writer),
            ]);
            if sync.max_value_len > crate::wire::MAX_SYNC_VALUE {
                return Err(ConfigError::SyncValueTooLarge(sync.max_value_len));
            }
            let floor = sync.lease + sync.max_skew + sync.max_skew;
            if sync.tombstone_ttl < floor {
                return Err(ConfigError::SyncTombstoneTtl);
            }
        }
        if let Some(blobs) = &self.blobs {
            zero.extend([
                ("blobs.tick", blobs.tick),
                ("blobs.fetch.request_timeout", blobs.fetch.request_timeout),
            ]);
            counts.extend([
                ("blobs.max_fetches", blobs.max_fetches),
                ("blobs.fetch.window", blobs.fetch.window as usize),
                (
                    "blobs.fetch.groups_per_request",
                    blobs.fetch.groups_per_request as usize,
                ),
                ("blobs.fetch.max_providers", blobs.fetch.max_providers),
                (
                    "blobs.fetch.max_in_flight",
                    blobs.fetch.max_in_flight as usize,
                ),
                (
                    "blobs.serve.max_groups_per_answer",
                    blobs.serve.max_groups_per_answer as usize,
                ),
                (
                    "blobs.serve.bytes_per_sec",
                    blobs.serve.bytes_per_sec as usize,
                ),
            ]);
            if self.session.max_frame_len < BLOBS_MIN_FRAME_LEN {
                return Err(ConfigError::BlobsFrameTooSmall(self.session.max_frame_len));
            }
            if blobs.serve.burst < crate::wire::GROUP_LEN {
                return Err(ConfigError::BlobsBurstBelowGroup);
            }
        }
        if let Some((field, _)) = zero.iter().find(|(_, d)| *d == Duration::ZERO) {
            return Err(ConfigError::Zero(field));
        }
        if let Some((field, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::Zero(field));
        }
        if liveness.ping_timeout > liveness.ping_interval {
            return Err(ConfigError::PingTimeoutAboveInterval);
        }
        if peers.redial_backoff_max < peers.redial_backoff_min {
            return Err(ConfigError::BackoffMaxBelowMin);
        }
        match (&self.chord, &self.dht) {
            (None, Some(_)) => return Err(ConfigError::DhtWithoutChord),
            (None, None) => return Ok(()),
            (Some(chord), dht) => {
                if !(1..=crate::wire::MAX_CHORD_LIST).contains(&chord.successors) {
                    return Err(ConfigError::ChordSuccessors(chord.successors));
                }
                if chord.id_puzzle_bits > crate::MAX_ID_PUZZLE_BITS {
                    return Err(ConfigError::IdPuzzleBits(chord.id_puzzle_bits));
                }
                if chord.max_forwards_per_peer > chord.max_forwards {
                    return Err(ConfigError::ForwardsPerPeerAboveTotal);
                }
                if let Some(dht) = dht
                    && !(1..=chord.successors).contains(&dht.replicas)
                {
                    return Err(ConfigError::DhtReplicas(dht.replicas));
                }
            }
        }
        if self.listen_addrs.is_empty() {
            return Err(ConfigError::ChordWithoutListenAddr);
        }
        if session.max_frame_len < CHORD_MIN_FRAME_LEN {
            return Err(ConfigError::ChordFrameTooSmall {
                value: session.max_frame_len,
                min: CHORD_MIN_FRAME_LEN,
            });
        }
        Ok(())
    }
}

/// A configuration [`Node::new`](crate::Node::new) refuses. No node is
/// created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `session.receive_budget` is below [`Config::min_receive_budget`].
    #[error(
        "receive_budget {value} is below {min} bytes: its pool (half) must hold a frame \
         of max_frame_len and its decompressed payload"
    )]
    ReceiveBudgetTooSmall {
        /// The configured value.
        value: usize,
        /// The smallest allowed.
        min: usize,
    },
    /// `max_frame_len` cannot hold a `Hello`.
    #[error("max_frame_len {value} is below the minimum of {min} bytes")]
    MaxFrameLenTooSmall {
        /// The configured value.
        value: u32,
        /// The minimum.
        min: u32,
    },
    /// More listen addresses than a `Hello` can carry.
    #[error("{len} listen addresses configured, at most {max} allowed")]
    TooManyListenAddrs {
        /// How many were configured.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A zero handshake timeout would close every connection at once.
    #[error("handshake_timeout must be greater than zero")]
    ZeroHandshakeTimeout,
    /// A node that may hold no connection can do nothing.
    #[error("max_connections must be at least 1")]
    ZeroMaxConnections,
    /// More bootstrap addresses than [`MAX_BOOTSTRAP`].
    #[error("{len} bootstrap addresses configured, at most {max} allowed")]
    TooManyBootstrapAddrs {
        /// How many were configured.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `peer_exchange_size` is over what a `PeerList` can carry.
    #[error("peer_exchange_size {value} is above the PeerList limit of {max}")]
    PeerExchangeTooLarge {
        /// The configured value.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// A field that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// Pings would overlap their own timeouts' meaning: a miss must be
    /// decided before the next ping leaves.
    #[error("ping_timeout must not exceed ping_interval")]
    PingTimeoutAboveInterval,
    /// The backoff cap is below its start.
    #[error("redial_backoff_max must not be below redial_backoff_min")]
    BackoffMaxBelowMin,
    /// `chord.successors` is outside 1..=32.
    #[error("chord.successors {0} is outside 1..=32")]
    ChordSuccessors(usize),
    /// `dht.replicas` is outside 1..=`chord.successors`.
    #[error("dht.replicas {0} is outside 1..=chord.successors")]
    DhtReplicas(usize),
    /// A ring member must be diallable: `chord` needs `listen_addrs`.
    #[error("chord is on but no listen_addrs are configured")]
    ChordWithoutListenAddr,
    /// `sync.max_value_len` is over the 1 MiB the wire carries.
    #[error("sync.max_value_len {0} is over the wire's 1 MiB")]
    SyncValueTooLarge(usize),
    /// `sync.tombstone_ttl` is below `lease + 2 · max_skew`: a straggler
    /// could outlive the delete that beat it.
    #[error("sync.tombstone_ttl is below sync.lease + 2 × sync.max_skew")]
    SyncTombstoneTtl,
    /// Blobs are on and `session.max_frame_len` is below
    /// [`BLOBS_MIN_FRAME_LEN`]: a chunk group would not fit a frame.
    #[error("blobs need session.max_frame_len ≥ 32 KiB, not {0}")]
    BlobsFrameTooSmall(u32),
    /// `blobs.serve.burst` is below one chunk group: nothing would be served.
    #[error("blobs.serve.burst is below one chunk group (16 KiB)")]
    BlobsBurstBelowGroup,
    /// `reach.observed_threshold` is below [`MIN_OBSERVED_THRESHOLD`]: one
    /// peer's report would decide what the node announces.
    #[error(
        "reach.observed_threshold {0} is below 2: one peer would decide what this node announces"
    )]
    ReachThreshold(usize),
    /// The table lives on the ring: `dht` needs `chord`.
    #[error("dht is on but chord is off")]
    DhtWithoutChord,
    /// `max_frame_len` cannot carry a full `ChordState`.
    #[error("max_frame_len {value} is below the {min} bytes chord needs")]
    ChordFrameTooSmall {
        /// The configured value.
        value: u32,
        /// What chord needs.
        min: u32,
    },
    /// `chord.max_forwards_per_peer` is above `chord.max_forwards`.
    #[error("chord.max_forwards_per_peer is above chord.max_forwards")]
    ForwardsPerPeerAboveTotal,
    /// `chord.id_puzzle_bits` is above `MAX_ID_PUZZLE_BITS` (24).
    #[error("chord.id_puzzle_bits {0} is above 24")]
    IdPuzzleBits(u8),
    /// With `chord.id_puzzle_bits` k > 0, this node's own id does not meet
    /// the puzzle (spec/chord.md §6.5): no member would adopt it. Found by
    /// [`Node::new`](crate::Node::new), which sees the identity.
    #[error("this node's id does not meet chord.id_puzzle_bits {0} (grind an identity that does)")]
    IdFailsPuzzle(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_field_is_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::plaintext().validate(), Ok(()));
        let bad = |c: Config| c.validate().expect_err("invalid");
        let mut c = Config::default();
        c.session.max_frame_len = 10;
        assert!(matches!(
            bad(c),
            ConfigError::MaxFrameLenTooSmall { value: 10, .. }
        ));
        let many: SmallVec<[SocketAddr; 2]> = (0..9)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        assert!(matches!(
            bad(Config {
                listen_addrs: many,
                ..Config::default()
            }),
            ConfigError::TooManyListenAddrs { len: 9, max: 8 }
        ));
        let mut c = Config::default();
        c.session.handshake_timeout = Duration::ZERO;
        assert_eq!(bad(c), ConfigError::ZeroHandshakeTimeout);
        let mut c = Config::default();
        c.peers.max_connections = 0;
        assert_eq!(bad(c), ConfigError::ZeroMaxConnections);
        let mut c = Config::default();
        c.liveness.ping_interval = Duration::ZERO;
        assert_eq!(bad(c), ConfigError::Zero("liveness.ping_interval"));
        let mut c = Config::lan();
        c.liveness.ping_timeout = Duration::from_secs(9);
        assert_eq!(bad(c), ConfigError::PingTimeoutAboveInterval);
        let mut c = Config::default();
        c.peers.peer_exchange_size = 33;
        assert!(matches!(
            bad(c),
            ConfigError::PeerExchangeTooLarge { value: 33, max: 32 }
        ));
        let mut c = Config::default();
        c.mesh.max_hops = 0;
        assert_eq!(bad(c), ConfigError::Zero("mesh.max_hops"));
    }

    #[test]
    fn the_ring_and_the_table_are_checked_only_when_on() {
        let addr = SocketAddr::from(([10, 0, 0, 1], 7000));
        let ring = |n| Config {
            listen_addrs: [addr].into_iter().collect(),
            ..Config::lan_ring(n)
        };
        assert_eq!(ring(1000).validate(), Ok(()));
        let bad = |c: Config| c.validate().expect_err("invalid");
        assert_eq!(
            bad(Config::lan_ring(1000)),
            ConfigError::ChordWithoutListenAddr
        );
        let mut c = ring(1000);
        c.chord = None;
        assert_eq!(bad(c), ConfigError::DhtWithoutChord);
        let mut c = ring(1000);
        c.dht = Some(DhtConfig {
            replicas: 11,
            ..DhtConfig::lan()
        });
        assert_eq!(bad(c), ConfigError::DhtReplicas(11));
        let mut c = ring(1000);
        c.session.max_frame_len = 4096;
        assert!(matches!(bad(c), ConfigError::ChordFrameTooSmall { .. }));
        let mut c = ring(1000);
        if let Some(chord) = c.chord.as_mut() {
            chord.stabilize_interval = Duration::ZERO;
        }
        assert_eq!(bad(c), ConfigError::Zero("chord.stabilize_interval"));
        // Off, the ring's fields are not looked at.
        let mut c = Config::lan();
        c.session.max_frame_len = 4096;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn presets_state_their_detection_time_and_size_the_ring() {
        assert_eq!(Config::lan().detection_time(), Duration::from_millis(4_000));
        assert_eq!(Config::wan().detection_time(), Duration::from_secs(26));
        assert_eq!(Config::lan().validate(), Ok(()));
        let successors = |n| Config::wan_ring(n).chord.map(|c| c.successors);
        assert_eq!(successors(2), Some(4));
        assert_eq!(successors(1_000), Some(10));
        assert_eq!(successors(1 << 20), Some(20));
        assert_eq!(successors(u64::MAX), Some(32));
        assert_eq!(
            Config::lan_ring(10).chord.map(|c| c.stabilize_interval),
            Some(Duration::from_millis(500))
        );
    }
}
