//! The 6-byte preamble each side sends first.

use crate::config::Security;

/// `RMSH`: identifies a ringmesh stream.
pub const PREAMBLE_MAGIC: [u8; 4] = *b"RMSH";
/// Length of the preamble.
pub const PREAMBLE_LEN: usize = 6;

/// What a side announces before anything else: magic, protocol version and
/// security mode. In Noise mode the preamble is also the Noise prologue, so a
/// tampered preamble fails the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// The sender's protocol version.
    pub version: u8,
    /// The sender's security mode byte (see [`Security::wire_code`]).
    pub security: u8,
}

impl Preamble {
    /// The preamble this node sends.
    pub fn new(version: u8, security: Security) -> Self {
        Preamble {
            version,
            security: security.wire_code(),
        }
    }

    /// The 6 bytes.
    pub fn to_bytes(self) -> [u8; PREAMBLE_LEN] {
        let m = PREAMBLE_MAGIC;
        [m[0], m[1], m[2], m[3], self.version, self.security]
    }

    /// Parses 6 bytes; `None` if the magic is wrong.
    pub fn from_bytes(bytes: [u8; PREAMBLE_LEN]) -> Option<Self> {
        (bytes[..4] == PREAMBLE_MAGIC).then_some(Preamble {
            version: bytes[4],
            security: bytes[5],
        })
    }
}
