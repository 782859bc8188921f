//! Node configuration.

use core::net::SocketAddr;

use smallvec::SmallVec;

use crate::time::Duration;
use crate::wire::{DEFAULT_MAX_FRAME_LEN, MAX_LISTEN_ADDRS, MAX_PEER_LIST};

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

/// Everything that tunes a [`Node`](crate::Node). Build one with
/// [`Config::default`] and change fields; [`Node::new`](crate::Node::new)
/// validates it.
///
/// Not `#[non_exhaustive]`, so that `Config { field, ..Config::default() }`
/// works; always build it that way so new fields do not break you.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Session security. Default: [`Security::Noise`].
    pub security: Security,
    /// Largest frame this node accepts, counted as the frame's length field
    /// (after compression and encryption). A peer's larger frame closes the
    /// connection; it is never buffered. Default 16 MiB; at least
    /// [`MIN_MAX_FRAME_LEN`].
    pub max_frame_len: u32,
    /// Offer LZ4 compression in `Hello`, and compress towards peers that
    /// offer it too. Default: on. (As with any compress-then-encrypt scheme,
    /// an application that mixes secrets and attacker-chosen bytes in one
    /// payload should turn it off.)
    pub compression: bool,
    /// Messages shorter than this are never compressed. Default 512 bytes.
    pub compression_threshold: usize,
    /// A connection that has not completed its handshake this long after it
    /// opened is closed with `HandshakeTimeout`. Default 10 s.
    pub handshake_timeout: Duration,
    /// Cap on connections in any state (dialling, handshaking, open).
    /// Inbound connections over the cap are closed at once; dials over it
    /// are refused. Default 256.
    pub max_connections: usize,
    /// Where this node accepts connections; announced in `Hello` so peers
    /// can redial it. At most [`MAX_LISTEN_ADDRS`]. Default: none.
    pub listen_addrs: SmallVec<[SocketAddr; 2]>,

    // --- peers ---
    /// Cap on inbound connections in any state; more are closed at once.
    /// Default 128.
    pub max_inbound: usize,
    /// Cap on connections this node dials, in any state; dials over it are
    /// refused. Default 64.
    pub max_outbound: usize,
    /// Cap on connections still dialling or handshaking, both directions.
    /// Inbound ones over it are closed at once (a handshake flood costs
    /// this many sessions, no more). Default 32.
    pub max_half_open: usize,
    /// The node keeps dialling peers it knows until it has this many
    /// established peers (inbound ones count). Default 8.
    pub target_peers: usize,
    /// Cap on the peer cache ([`Node::known_peers`](crate::Node::known_peers)).
    /// Default 1024.
    pub max_known_peers: usize,
    /// First redial delay after a peer is lost or a dial fails; doubles with
    /// each failure up to `redial_backoff_max`, and each delay is jittered
    /// down by up to half. Default 1 s.
    pub redial_backoff_min: Duration,
    /// Cap on the redial delay. Default 60 s.
    pub redial_backoff_max: Duration,
    /// How often the node checks its peer count, redials and expires
    /// caches. Default 1 s.
    pub maintenance_interval: Duration,

    // --- discovery ---
    /// Addresses dialled at start, and again whenever the node has no peer
    /// and nothing else to dial. Any node can be one. At most
    /// [`MAX_BOOTSTRAP`]. Default: none.
    pub bootstrap: Vec<SocketAddr>,
    /// Entries in the `PeerList` a node sends to each new peer and in
    /// answer to `PeerRequest`. At most
    /// [`MAX_PEER_LIST`](crate::wire::MAX_PEER_LIST). Default 16.
    pub peer_exchange_size: usize,

    // --- liveness ---
    /// A `Ping` goes to every peer this often. Default (WAN) 5 s.
    pub ping_interval: Duration,
    /// A ping unanswered this long is a miss; one miss makes the peer
    /// suspect. Default (WAN) 3 s.
    pub ping_timeout: Duration,
    /// Consecutive misses that make a peer dead: its connections close and
    /// `PeerDown { reason: Unresponsive }` is emitted. Default (WAN) 4.
    pub dead_after_misses: u32,

    // --- mesh ---
    /// Cap on remembered broadcast ids. Default 65,536 (about 7 MiB when
    /// full: a hash set entry and an expiry-queue entry per id).
    pub seen_cache_capacity: usize,
    /// How long a broadcast id is remembered. Default 120 s.
    pub seen_cache_ttl: Duration,
    /// Links a broadcast may travel; a node that receives one with this many
    /// hops delivers it but does not relay it. Default 32.
    pub max_hops: u8,

    // --- messaging ---
    /// Cap on requests awaiting a response. Default 1024.
    pub max_pending_requests: usize,
    /// Cap on messages queued for peers that are being looked up or dialled.
    /// Default 1024.
    pub max_queued_messages: usize,
    /// How long a message waits for its peer to be found and connected
    /// before it fails. Default 10 s.
    pub lookup_timeout: Duration,

    // --- chord and dht (spec/chord.md §2) ---
    /// Run the Chord ring and the Chord table: offer their capability bits
    /// and answer their messages. Needs `listen_addrs` (ring pointers must
    /// be diallable). Default: off.
    pub chord: bool,
    /// Successor list length *r*, 1..=32. A member keeps working while one
    /// of its *r* successors lives; see
    /// [`Config::chord_successors_for`] to size it. Default 8.
    pub chord_successors: usize,
    /// Period of stabilization (2 s; 500 ms in [`Config::lan`]).
    pub chord_stabilize_interval: Duration,
    /// Timeout of one chord or dht request, dial time included; a peer that
    /// misses it is taken as dead (4 s; 1 s in [`Config::lan`]).
    pub chord_request_timeout: Duration,
    /// One finger is refreshed per tick (10 s; 2 s in [`Config::lan`]).
    pub chord_fix_fingers_interval: Duration,
    /// Requests one lookup may send, retries included. Default 64.
    pub chord_max_hops: u32,
    /// Lookups in flight (commands and internal). Default 256.
    pub chord_max_lookups: usize,
    /// Holders per key *r_d*, 1..=*r*. Default 3.
    pub dht_replicas: usize,
    /// Entries (values and tombstones) one node stores. Default 65,536.
    pub dht_max_entries: usize,
    /// Bytes of keys and values one node stores. Default 64 MiB.
    pub dht_max_bytes: usize,
    /// Anti-entropy period (60 s; 10 s in [`Config::lan`]).
    pub dht_repair_interval: Duration,
    /// How long a delete is remembered. Default 1 h.
    pub dht_tombstone_ttl: Duration,
}

/// Smallest `max_frame_len` with `chord` on: a full `ChordState` (33
/// entries of 8 addresses) takes about 5.5 KiB.
pub const CHORD_MIN_FRAME_LEN: u32 = 16 * 1024;

/// Most bootstrap addresses a [`Config`] may hold.
pub const MAX_BOOTSTRAP: usize = 64;

impl Default for Config {
    fn default() -> Self {
        Config {
            security: Security::Noise,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            compression: true,
            compression_threshold: 512,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
            listen_addrs: SmallVec::new(),
            max_inbound: 128,
            max_outbound: 64,
            max_half_open: 32,
            target_peers: 8,
            max_known_peers: 1024,
            redial_backoff_min: Duration::from_secs(1),
            redial_backoff_max: Duration::from_secs(60),
            maintenance_interval: Duration::from_secs(1),
            bootstrap: Vec::new(),
            peer_exchange_size: 16,
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(3),
            dead_after_misses: 4,
            seen_cache_capacity: 65_536,
            seen_cache_ttl: Duration::from_secs(120),
            max_hops: 32,
            max_pending_requests: 1024,
            max_queued_messages: 1024,
            lookup_timeout: Duration::from_secs(10),
            chord: false,
            chord_successors: 8,
            chord_stabilize_interval: Duration::from_secs(2),
            chord_request_timeout: Duration::from_secs(4),
            chord_fix_fingers_interval: Duration::from_secs(10),
            chord_max_hops: 64,
            chord_max_lookups: 256,
            dht_replicas: 3,
            dht_max_entries: 65_536,
            dht_max_bytes: 64 << 20,
            dht_repair_interval: Duration::from_secs(60),
            dht_tombstone_ttl: Duration::from_secs(3600),
        }
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
    /// within [`Config::detection_time`] = 3.5 s. Redials start at 500 ms,
    /// capped at 30 s.
    pub fn lan() -> Self {
        Config {
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_millis(500),
            dead_after_misses: 3,
            redial_backoff_min: Duration::from_millis(500),
            redial_backoff_max: Duration::from_secs(30),
            chord_stabilize_interval: Duration::from_millis(500),
            chord_request_timeout: Duration::from_secs(1),
            chord_fix_fingers_interval: Duration::from_secs(2),
            dht_repair_interval: Duration::from_secs(10),
            ..Config::default()
        }
    }

    /// Timings for the internet (RTTs up to a second, lossy paths), after
    /// memberlist's WAN profile: ping every 5 s, a miss after 3 s, dead
    /// after 4 misses (detection within 23 s); redials from 1 s to 60 s.
    /// The same as [`Config::default`].
    pub fn wan() -> Self {
        Config::default()
    }

    /// The longest a crashed peer goes undetected: the first ping after the
    /// crash leaves within `ping_interval`, and `dead_after_misses` misses
    /// later (each `ping_timeout` after its ping, pings `ping_interval`
    /// apart) the peer is dead: `dead_after_misses × ping_interval +
    /// ping_timeout`. A live peer whose pongs arrive within `ping_timeout`
    /// is never declared dead.
    pub fn detection_time(&self) -> Duration {
        self.ping_interval
            .saturating_mul(u64::from(self.dead_after_misses))
            + self.ping_timeout
    }

    /// A successor list length for a ring of about `n` nodes:
    /// clamp(⌈log2 n⌉, 4, 32). If half the ring fails at once, about
    /// n / 2^r members lose their whole list, so this keeps the expected
    /// loss at one node; add 3 or 4 for margin (spec/chord.md §2).
    pub fn chord_successors_for(n: u64) -> usize {
        let log = 64 - n.saturating_sub(1).leading_zeros() as usize;
        log.clamp(4, crate::wire::MAX_CHORD_LIST)
    }

    /// Checks every field; [`Node::new`](crate::Node::new) calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_len < MIN_MAX_FRAME_LEN {
            return Err(ConfigError::MaxFrameLenTooSmall {
                value: self.max_frame_len,
                min: MIN_MAX_FRAME_LEN,
            });
        }
        if self.listen_addrs.len() > MAX_LISTEN_ADDRS {
            return Err(ConfigError::TooManyListenAddrs {
                len: self.listen_addrs.len(),
                max: MAX_LISTEN_ADDRS,
            });
        }
        if self.handshake_timeout == Duration::ZERO {
            return Err(ConfigError::ZeroHandshakeTimeout);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroMaxConnections);
        }
        if self.bootstrap.len() > MAX_BOOTSTRAP {
            return Err(ConfigError::TooManyBootstrapAddrs {
                len: self.bootstrap.len(),
                max: MAX_BOOTSTRAP,
            });
        }
        if self.peer_exchange_size > MAX_PEER_LIST {
            return Err(ConfigError::PeerExchangeTooLarge {
                value: self.peer_exchange_size,
                max: MAX_PEER_LIST,
            });
        }
        let zero = [
            ("ping_interval", self.ping_interval),
            ("ping_timeout", self.ping_timeout),
            ("maintenance_interval", self.maintenance_interval),
            ("redial_backoff_min", self.redial_backoff_min),
            ("seen_cache_ttl", self.seen_cache_ttl),
            ("lookup_timeout", self.lookup_timeout),
            ("chord_stabilize_interval", self.chord_stabilize_interval),
            ("chord_request_timeout", self.chord_request_timeout),
            (
                "chord_fix_fingers_interval",
                self.chord_fix_fingers_interval,
            ),
            ("dht_repair_interval", self.dht_repair_interval),
            ("dht_tombstone_ttl", self.dht_tombstone_ttl),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, d)| *d == Duration::ZERO) {
            return Err(ConfigError::Zero(field));
        }
        let counts = [
            ("max_inbound", self.max_inbound),
            ("max_outbound", self.max_outbound),
            ("max_half_open", self.max_half_open),
            ("max_known_peers", self.max_known_peers),
            ("seen_cache_capacity", self.seen_cache_capacity),
            ("dead_after_misses", self.dead_after_misses as usize),
            ("max_hops", usize::from(self.max_hops)),
            ("chord_max_hops", self.chord_max_hops as usize),
            ("chord_max_lookups", self.chord_max_lookups),
            ("dht_max_entries", self.dht_max_entries),
            ("dht_max_bytes", self.dht_max_bytes),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::Zero(field));
        }
        if self.ping_timeout > self.ping_interval {
            return Err(ConfigError::PingTimeoutAboveInterval);
        }
        if self.redial_backoff_max < self.redial_backoff_min {
            return Err(ConfigError::BackoffMaxBelowMin);
        }
        if !(1..=crate::wire::MAX_CHORD_LIST).contains(&self.chord_successors) {
            return Err(ConfigError::ChordSuccessors(self.chord_successors));
        }
        if !(1..=self.chord_successors).contains(&self.dht_replicas) {
            return Err(ConfigError::DhtReplicas(self.dht_replicas));
        }
        if self.chord && self.listen_addrs.is_empty() {
            return Err(ConfigError::ChordWithoutListenAddr);
        }
        if self.chord && self.max_frame_len < CHORD_MIN_FRAME_LEN {
            return Err(ConfigError::ChordFrameTooSmall {
                value: self.max_frame_len,
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
    /// `chord_successors` is outside 1..=32.
    #[error("chord_successors {0} is outside 1..=32")]
    ChordSuccessors(usize),
    /// `dht_replicas` is outside 1..=`chord_successors`.
    #[error("dht_replicas {0} is outside 1..=chord_successors")]
    DhtReplicas(usize),
    /// A ring member must be diallable: `chord` needs `listen_addrs`.
    #[error("chord is on but no listen_addrs are configured")]
    ChordWithoutListenAddr,
    /// `max_frame_len` cannot carry a full `ChordState`.
    #[error("max_frame_len {value} is below the {min} bytes chord needs")]
    ChordFrameTooSmall {
        /// The configured value.
        value: u32,
        /// What chord needs.
        min: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_field_is_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::plaintext().validate(), Ok(()));
        let bad = |c: Config| c.validate().expect_err("invalid");
        assert!(matches!(
            bad(Config {
                max_frame_len: 10,
                ..Config::default()
            }),
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
        assert_eq!(
            bad(Config {
                handshake_timeout: Duration::ZERO,
                ..Config::default()
            }),
            ConfigError::ZeroHandshakeTimeout
        );
        assert_eq!(
            bad(Config {
                max_connections: 0,
                ..Config::default()
            }),
            ConfigError::ZeroMaxConnections
        );
        assert_eq!(
            bad(Config {
                ping_interval: Duration::ZERO,
                ..Config::default()
            }),
            ConfigError::Zero("ping_interval")
        );
        assert_eq!(
            bad(Config {
                ping_timeout: Duration::from_secs(9),
                ..Config::lan()
            }),
            ConfigError::PingTimeoutAboveInterval
        );
        assert!(matches!(
            bad(Config {
                peer_exchange_size: 33,
                ..Config::default()
            }),
            ConfigError::PeerExchangeTooLarge { value: 33, max: 32 }
        ));
        assert_eq!(
            bad(Config {
                max_hops: 0,
                ..Config::default()
            }),
            ConfigError::Zero("max_hops")
        );
    }

    #[test]
    fn presets_state_their_detection_time() {
        assert_eq!(Config::lan().detection_time(), Duration::from_millis(3_500));
        assert_eq!(Config::wan().detection_time(), Duration::from_secs(23));
        assert_eq!(Config::lan().validate(), Ok(()));
    }
}
