//! Identifiers: [`NodeId`] (who a peer is) and [`ConnId`] (which transport
//! connection a byte stream belongs to).

use core::fmt;
use core::str::FromStr;

/// A node's identity on the network and its position on the ring.
///
/// `NodeId` is the first 16 bytes of BLAKE3(Ed25519 identity public key),
/// read big-endian. In Noise mode the handshake proves that the peer holds
/// the private key, so the id is authenticated; in plaintext mode it is only
/// claimed. Ordering is numeric, which is also the ring order (2^128 points).
///
/// Held as two 64-bit halves, high first (so the derived order is the
/// numeric one), rather than as a `u128`: a `u128` is 16-aligned, which
/// pads an `Option<NodeId>` and every struct holding an id next to
/// smaller fields (an `Option<NodeId>` is 24 bytes, not 32), and nodes
/// hold ids in every table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NodeId {
    hi: u64,
    lo: u64,
}

impl core::hash::Hash for NodeId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // As the `u128` it is: tables hash ids as they always did.
        state.write_u128(self.as_u128());
    }
}

impl NodeId {
    /// Length of a `NodeId` on the wire.
    pub const LEN: usize = 16;

    /// Derives the id of an Ed25519 identity public key.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let hash = blake3::hash(public_key);
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash.as_bytes()[..16]);
        NodeId::from_u128(u128::from_be_bytes(first))
    }

    /// An id from its numeric value (ring position).
    pub const fn from_u128(value: u128) -> Self {
        NodeId {
            hi: (value >> 64) as u64,
            lo: value as u64,
        }
    }

    /// The numeric value (ring position).
    pub const fn as_u128(self) -> u128 {
        ((self.hi as u128) << 64) | self.lo as u128
    }

    /// The 16 wire bytes, big-endian.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.as_u128().to_be_bytes()
    }

    /// An id from its 16 wire bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        NodeId::from_u128(u128::from_be_bytes(bytes))
    }

    /// The first 8 hex digits, for log lines.
    pub fn short(self) -> ShortId {
        ShortId(self)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.as_u128())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:08x}…)", (self.hi >> 32) as u32)
    }
}

/// Display helper printing the first 8 hex digits of a [`NodeId`].
#[derive(Clone, Copy)]
pub struct ShortId(NodeId);

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", (self.0.hi >> 32) as u32)
    }
}

/// Why a string is not a [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a NodeId is 32 hex digits, got {0:?}")]
pub struct ParseNodeIdError(String);

impl FromStr for NodeId {
    type Err = ParseNodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseNodeIdError(s.to_owned()));
        }
        u128::from_str_radix(s, 16)
            .map(NodeId::from_u128)
            .map_err(|_| ParseNodeIdError(s.to_owned()))
    }
}

/// Identifies one operation a command started (a lookup, a table
/// operation): the id of its [`ChordEvent::LookupDone`](crate::ChordEvent::LookupDone),
/// [`DhtEvent::GetDone`](crate::DhtEvent::GetDone) and the like. Unique
/// within a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Names one transport connection between the driver and the node.
///
/// Two disjoint spaces keep the two sides from ever colliding: the node picks
/// ids for the connections it dials ([`Output::Dial`](crate::Output::Dial)),
/// always with the top bit set; the driver picks ids for the connections it
/// accepts, always with the top bit clear, through [`ConnId::inbound`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

impl ConnId {
    const OUTBOUND_BIT: u64 = 1 << 63;
    /// Within the node's space: a relayed connection, whose bytes travel
    /// in a relay circuit, never through the driver (`spec/relay.md` §3).
    const RELAYED_BIT: u64 = 1 << 62;

    /// The id a driver gives to the `n`th connection it accepted.
    ///
    /// Only the low 63 bits of `n` are used; the top bit is reserved for
    /// connections the node dials. A driver must not reuse an id while the
    /// node still knows the connection (until it has seen `Closed` or sent
    /// `Close` for it).
    pub const fn inbound(n: u64) -> Self {
        ConnId(n & !Self::OUTBOUND_BIT)
    }

    pub(crate) const fn outbound(n: u64) -> Self {
        ConnId(n | Self::OUTBOUND_BIT)
    }

    /// A relayed connection's id (the node's space; the driver never sees
    /// it).
    pub(crate) const fn relayed(n: u64) -> Self {
        ConnId(n | Self::OUTBOUND_BIT | Self::RELAYED_BIT)
    }

    /// Whether this is a relayed connection: a session carried by a relay
    /// circuit (`spec/relay.md` §3). Drivers never see such an id.
    pub const fn is_relayed(self) -> bool {
        self.0 & (Self::OUTBOUND_BIT | Self::RELAYED_BIT) == Self::OUTBOUND_BIT | Self::RELAYED_BIT
    }

    /// Whether the node chose this id for one of its own dials.
    pub const fn is_outbound(self) -> bool {
        self.0 & Self::OUTBOUND_BIT != 0
    }

    /// The raw value, for drivers that index tables by it.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_relayed() {
            write!(
                f,
                "relayed#{}",
                self.0 & !(Self::OUTBOUND_BIT | Self::RELAYED_BIT)
            )
        } else if self.is_outbound() {
            write!(f, "out#{}", self.0 & !Self::OUTBOUND_BIT)
        } else {
            write!(f, "in#{}", self.0)
        }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_orders_and_hashes_as_its_u128() {
        use core::hash::BuildHasher;
        let values = [
            0,
            1,
            u128::from(u64::MAX),
            1 << 64,
            (1 << 64) + 1,
            u128::MAX,
        ];
        let hasher = foldhash::fast::FixedState::with_seed(3);
        for a in values {
            let id = NodeId::from_u128(a);
            assert_eq!(id.as_u128(), a);
            assert_eq!(hasher.hash_one(id), hasher.hash_one(a));
            for b in values {
                assert_eq!(id.cmp(&NodeId::from_u128(b)), a.cmp(&b));
            }
        }
        assert_eq!(core::mem::size_of::<Option<NodeId>>(), 24);
    }

    #[test]
    fn node_id_is_blake3_prefix_big_endian() {
        let key = [7u8; 32];
        let hash = blake3::hash(&key);
        let id = NodeId::from_public_key(&key);
        assert_eq!(&id.to_bytes()[..], &hash.as_bytes()[..16]);
        assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
    }

    #[test]
    fn node_id_parse_rejects_wrong_length_and_non_hex() {
        assert!("abc".parse::<NodeId>().is_err());
        assert!(
            "+0000000000000000000000000000000"
                .parse::<NodeId>()
                .is_err()
        );
        assert!(
            "g0000000000000000000000000000000"
                .parse::<NodeId>()
                .is_err()
        );
    }

    #[test]
    fn conn_id_spaces_are_disjoint() {
        assert!(!ConnId::inbound(u64::MAX).is_outbound());
        assert!(ConnId::outbound(0).is_outbound());
        assert_ne!(ConnId::inbound(5), ConnId::outbound(5));
    }
}
