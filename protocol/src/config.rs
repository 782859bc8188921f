//! Node configuration.

use core::net::SocketAddr;

use smallvec::SmallVec;

use crate::time::Duration;
use crate::wire::{DEFAULT_MAX_FRAME_LEN, MAX_LISTEN_ADDRS};

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
}

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
    }
}
