//! Codecs of the session and messaging messages defined so far.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use super::{DecodeError, Reader, WireMessage, put_varint};
use crate::identity::PublicKey;

/// Most listen addresses a `Hello` may carry.
pub const MAX_LISTEN_ADDRS: usize = 8;

/// Optional features a node offers in its `Hello`. A feature is used on a
/// connection only when both sides offer it. Unknown bits are ignored, so a
/// later version can add features without breaking this one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u64);

impl Capabilities {
    /// No optional features.
    pub const NONE: Capabilities = Capabilities(0);
    /// Bit 0: the node accepts LZ4-compressed frame bodies.
    pub const LZ4: Capabilities = Capabilities(1);
    /// Bit 1: the node runs the Chord ring (`spec/chord.md` §4).
    pub const CHORD: Capabilities = Capabilities(1 << 1);
    /// Bit 2: the node runs the Chord table (dht).
    pub const DHT: Capabilities = Capabilities(1 << 2);
    /// Bit 3: the node runs the sync table (`spec/sync.md`).
    pub const SYNC: Capabilities = Capabilities(1 << 3);
    /// Bit 4: the node acknowledges the recursive lookups it forwards
    /// (`ChordRouteAck`, `spec/chord.md` §7.4) and accepts acknowledgements.
    pub const ROUTE_ACK: Capabilities = Capabilities(1 << 4);
    /// Bit 5: the node serves and fetches blobs (`spec/blobs.md` §3).
    pub const BLOBS: Capabilities = Capabilities(1 << 5);
    /// Bit 6: the node tells its peers the address it sees them at and
    /// accepts being told (`ObservedAddr`, `spec/reach.md`).
    pub const REACH: Capabilities = Capabilities(1 << 6);
    /// Bit 7: the node runs the relay component: it holds reservations
    /// at relays, opens and accepts circuits through them, and serves as
    /// a relay if so configured (`spec/relay.md`).
    pub const RELAY: Capabilities = Capabilities(1 << 7);

    /// Capabilities from their wire bits.
    pub const fn from_bits(bits: u64) -> Self {
        Capabilities(bits)
    }

    /// The wire bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Every bit of either.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// The features both sides offer.
    pub const fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }
}

impl core::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.contains(Capabilities::LZ4) {
            write!(f, "Capabilities(LZ4")?;
            if self.0 & !1 != 0 {
                write!(f, " | {:#x}", self.0 & !1)?;
            }
            write!(f, ")")
        } else {
            write!(f, "Capabilities({:#x})", self.0)
        }
    }
}

/// Opens a session: who the sender is and what it offers.
///
/// Layout: `version: u8`, `identity: [u8; 32]`, `run_nonce: u64`
/// big-endian, `capabilities: varint`,
/// `max_frame_len: varint` (≤ 2^32−1), `listen_addrs: varint count ≤ 8`,
/// then each address (`family: u8` = 4 or 6, the IP bytes, `port: u16`
/// big-endian; `spec/wire.md` §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version; must equal the receiver's.
    pub version: u8,
    /// The sender's Ed25519 identity public key; its `NodeId` is derived
    /// from it. Proven by signature in Noise mode, only claimed in plaintext.
    pub identity: PublicKey,
    /// Names this run of the sender: drawn afresh at every start of the node
    /// (from its seed), the same on all its connections. A peer that knows
    /// the identity under another nonce learns that the run it knew is gone
    /// and retires its connections at once (`spec/peers.md`, "Restarts").
    pub run_nonce: u64,
    /// Optional features the sender offers.
    pub capabilities: Capabilities,
    /// The largest frame length the sender accepts; the receiver refuses to
    /// send anything larger to it.
    pub max_frame_len: u32,
    /// Where the sender accepts connections (what peers should redial).
    pub listen_addrs: SmallVec<[SocketAddr; 2]>,
}

impl WireMessage for Hello {
    const TAG: u8 = 0x01;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.version);
        out.put_slice(&self.identity.to_bytes());
        out.put_u64(self.run_nonce);
        put_varint(out, self.capabilities.bits());
        put_varint(out, u64::from(self.max_frame_len));
        put_varint(out, self.listen_addrs.len() as u64);
        for addr in &self.listen_addrs {
            put_socket_addr(out, addr);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let version = input.u8()?;
        let identity = PublicKey::from_bytes(input.array()?);
        let run_nonce = u64::from_be_bytes(input.array()?);
        let capabilities = Capabilities::from_bits(input.varint()?);
        let max_frame_len = input.varint()?;
        let max_frame_len = u32::try_from(max_frame_len).map_err(|_| DecodeError::OutOfRange {
            field: "max_frame_len",
            value: max_frame_len,
        })?;
        let count = input.list_len(MAX_LISTEN_ADDRS)?;
        let mut listen_addrs = SmallVec::with_capacity(count);
        for _ in 0..count {
            listen_addrs.push(get_socket_addr(input)?);
        }
        Ok(Hello {
            version,
            identity,
            run_nonce,
            capabilities,
            max_frame_len,
            listen_addrs,
        })
    }
}

/// Why a peer closed the connection, as it said in `Goodbye`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoodbyeReason {
    /// `0`: the application closed the connection.
    Normal,
    /// `1`: the node is shutting down.
    Shutdown,
    /// `2`: the receiver broke the protocol.
    ProtocolViolation,
    /// `3`: the sender has too many connections.
    TooManyConnections,
    /// `4`: the sender already has a connection to the receiver.
    Duplicate,
    /// A code this version does not know (kept as sent).
    Other(u8),
}

impl GoodbyeReason {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            GoodbyeReason::Normal => 0,
            GoodbyeReason::Shutdown => 1,
            GoodbyeReason::ProtocolViolation => 2,
            GoodbyeReason::TooManyConnections => 3,
            GoodbyeReason::Duplicate => 4,
            GoodbyeReason::Other(code) => code,
        }
    }

    /// The reason for a wire code.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => GoodbyeReason::Normal,
            1 => GoodbyeReason::Shutdown,
            2 => GoodbyeReason::ProtocolViolation,
            3 => GoodbyeReason::TooManyConnections,
            4 => GoodbyeReason::Duplicate,
            other => GoodbyeReason::Other(other),
        }
    }
}

/// The sender is closing the connection. Layout: `reason: u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goodbye {
    /// Why.
    pub reason: GoodbyeReason,
}

impl WireMessage for Goodbye {
    const TAG: u8 = 0x02;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.reason.code());
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Goodbye {
            reason: GoodbyeReason::from_code(input.u8()?),
        })
    }
}

/// A one-way application message to the connected peer. Layout: the payload
/// is the rest of the body (the frame already says how long it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    /// Application bytes, opaque to ringmesh.
    pub payload: Bytes,
}

impl WireMessage for Direct {
    const TAG: u8 = 0x40;

    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.payload);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Direct {
            payload: input.rest(),
        })
    }
}

/// The payload of Noise handshake messages 2 and 3: the sender's Ed25519
/// signature over `"ringmesh noise static key v1:" ‖ noise_static_public_key`,
/// then its `Hello` (without flags or tag). Binding the Noise static key to
/// the identity key is what makes the `NodeId` authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseHandshakePayload {
    /// Ed25519 signature by `hello.identity`.
    pub signature: [u8; 64],
    /// The sender's hello.
    pub hello: Hello,
}

impl NoiseHandshakePayload {
    /// Appends `signature ‖ hello`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.signature);
        self.hello.encode(out);
    }

    /// Decodes all of `input`.
    pub fn decode(input: Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(input);
        let signature = reader.array()?;
        let hello = Hello::decode(&mut reader)?;
        reader.finish()?;
        Ok(NoiseHandshakePayload { signature, hello })
    }
}

/// Appends a socket address: `family: u8` (4 or 6), the IP address (4 or 16
/// bytes, network order), `port: u16` big-endian. IPv6 flow info and scope id
/// are not sent.
pub(crate) fn put_socket_addr(out: &mut BytesMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.put_u8(4);
            out.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.put_u8(6);
            out.put_slice(&ip.octets());
        }
    }
    out.put_u16(addr.port());
}

/// Reads a socket address written by [`put_socket_addr`].
pub(crate) fn get_socket_addr(input: &mut Reader) -> Result<SocketAddr, DecodeError> {
    match input.u8()? {
        4 => {
            let ip = Ipv4Addr::from(input.array::<4>()?);
            Ok(SocketAddr::new(IpAddr::V4(ip), input.u16()?))
        }
        6 => {
            let ip = Ipv6Addr::from(input.array::<16>()?);
            Ok(SocketAddr::V6(SocketAddrV6::new(ip, input.u16()?, 0, 0)))
        }
        family => Err(DecodeError::BadAddressFamily(family)),
    }
}
