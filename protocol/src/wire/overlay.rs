//! Codecs of the overlay messages: discovery (`0x1_`), liveness (`0x2_`),
//! mesh (`0x3_`) and messaging (`0x4_`). `spec/wire.md` §7 gives each layout.

use core::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use super::messages::{get_socket_addr, put_socket_addr};
use super::{DecodeError, MAX_LISTEN_ADDRS, Reader, WireMessage, put_varint};
use crate::{NodeId, PublicKey};

/// Most entries one `PeerList` may carry.
pub const MAX_PEER_LIST: usize = 32;

pub(super) fn put_node_id(out: &mut BytesMut, id: NodeId) {
    out.put_slice(&id.to_bytes());
}

pub(super) fn get_node_id(input: &mut Reader) -> Result<NodeId, DecodeError> {
    Ok(NodeId::from_bytes(input.array()?))
}

/// A `PeerList` entry (`spec/wire.md` §7.5): `id`, `addr_count`, addresses.
/// Also the chord pointer (`spec/chord.md` §8).
pub(super) fn put_peer_entry(out: &mut BytesMut, entry: &PeerEntry) {
    put_node_id(out, entry.id);
    put_varint(out, entry.addrs.len() as u64);
    for addr in &entry.addrs {
        put_socket_addr(out, addr);
    }
}

/// Reads one entry; `addr_count` is checked (1..=8) before any address.
pub(super) fn get_peer_entry(input: &mut Reader) -> Result<PeerEntry, DecodeError> {
    let id = get_node_id(input)?;
    let addr_count = input.list_len(MAX_LISTEN_ADDRS)?;
    if addr_count == 0 {
        return Err(DecodeError::OutOfRange {
            field: "addr_count",
            value: 0,
        });
    }
    let mut addrs = SmallVec::with_capacity(addr_count);
    for _ in 0..addr_count {
        addrs.push(get_socket_addr(input)?);
    }
    Ok(PeerEntry { id, addrs })
}

/// An entry list: `count: varint`, then `count` entries
/// ([`put_peer_entry`]).
pub(super) fn put_entry_list(out: &mut BytesMut, entries: &[PeerEntry]) {
    put_varint(out, entries.len() as u64);
    for entry in entries {
        put_peer_entry(out, entry);
    }
}

/// Reads an entry list whose `count` is checked against `max` before any
/// entry is read.
pub(super) fn get_entry_list(
    input: &mut Reader,
    max: usize,
) -> Result<Vec<PeerEntry>, DecodeError> {
    let count = input.list_len(max)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(get_peer_entry(input)?);
    }
    Ok(entries)
}

/// A `u8` flag that must be 0 or 1.
pub(super) fn get_flag(input: &mut Reader, field: &'static str) -> Result<bool, DecodeError> {
    match input.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::OutOfRange {
            field,
            value: value.into(),
        }),
    }
}

/// `0x10` — asks the receiver for a `PeerList`. Layout: empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerRequest;

impl WireMessage for PeerRequest {
    const TAG: u8 = 0x10;

    fn encode(&self, _out: &mut BytesMut) {}

    fn decode(_input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PeerRequest)
    }
}

/// A node's listen addresses as a [`PeerEntry`] or a
/// [`KnownPeer`](crate::KnownPeer) holds them: one inline (a node listens
/// on one address as a rule; more spill to the heap). A chord member keeps
/// ~22 pointers (its fingers and successor list) and a lookup carries a few,
/// so an entry is 56 bytes where two inline addresses made it 88.
pub type ListenAddrs = SmallVec<[SocketAddr; 1]>;

/// One node the sender knows: its id and where it accepts connections.
/// Addresses always travel with the id they belong to, so a dial can demand
/// that id (a lying list costs a failed dial, never an impersonation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// The node.
    pub id: NodeId,
    /// Its listen addresses (1 to [`MAX_LISTEN_ADDRS`]).
    pub addrs: ListenAddrs,
}

/// `0x11` — peers the sender knows, sent on connect and in answer to
/// `PeerRequest` or `FindPeer`. Layout: `count: varint ≤ 32`, then each
/// entry: `id: [u8; 16]`, `addr_count: varint` (1..=8), the addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerList {
    /// The entries.
    pub peers: Vec<PeerEntry>,
}

impl WireMessage for PeerList {
    const TAG: u8 = 0x11;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.peers.len() as u64);
        for entry in &self.peers {
            put_peer_entry(out, entry);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let count = input.list_len(MAX_PEER_LIST)?;
        let mut peers = Vec::with_capacity(count);
        for _ in 0..count {
            peers.push(get_peer_entry(input)?);
        }
        Ok(PeerList { peers })
    }
}

/// `0x12` — asks the receiver where `target` accepts connections; answered
/// with a `PeerList` holding `target`'s entry (no answer if the receiver
/// does not know it). Layout:
/// `target: [u8; 16]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindPeer {
    /// The node sought.
    pub target: NodeId,
}

impl WireMessage for FindPeer {
    const TAG: u8 = 0x12;

    fn encode(&self, out: &mut BytesMut) {
        put_node_id(out, self.target);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(FindPeer {
            target: get_node_id(input)?,
        })
    }
}

/// `0x20` — a liveness probe; the receiver answers `Pong` with the same
/// nonce. Layout: `nonce: u64` big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Chosen by the sender, echoed in the pong.
    pub nonce: u64,
}

/// `0x21` — the answer to a `Ping`. Layout: `nonce: u64` big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The ping's nonce.
    pub nonce: u64,
}

impl WireMessage for Ping {
    const TAG: u8 = 0x20;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.nonce);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Ping {
            nonce: u64::from_be_bytes(input.array()?),
        })
    }
}

impl WireMessage for Pong {
    const TAG: u8 = 0x21;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.nonce);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Pong {
            nonce: u64::from_be_bytes(input.array()?),
        })
    }
}

/// `0x30` — a flooded message, signed by its origin (`spec/mesh.md`).
/// Layout: `origin: [u8; 16]`, `key: [u8; 32]` (the origin's public key),
/// `run: u64` big-endian (the origin's run nonce), `seq: varint`,
/// `hops: u8` (links travelled, including the one it arrives on; ≥ 1),
/// `signature: [u8; 64]`, then the payload (the rest of the body).
/// `(origin, run, seq)` identifies the message network-wide; the signature
/// covers [`Broadcast::signed_bytes`] (everything but `hops` and the key,
/// which `origin` names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// The node that broadcast it.
    pub origin: NodeId,
    /// The origin's public key (`key.node_id()` must be `origin`).
    pub key: PublicKey,
    /// The origin's run nonce (its `Hello.run_nonce`): a restarted origin
    /// numbers its broadcasts afresh under another run.
    pub run: u64,
    /// Unique per origin and run.
    pub seq: u64,
    /// Links travelled so far, counting the one it arrives on. Not signed:
    /// each relay adds one.
    pub hops: u8,
    /// The origin's Ed25519 signature over [`Broadcast::signed_bytes`].
    pub signature: [u8; 64],
    /// Application bytes.
    pub payload: Bytes,
}

/// The context string every signed broadcast starts with.
pub const BROADCAST_CONTEXT: &[u8] = b"ringmesh broadcast v1:";

/// What [`Broadcast`] adds to its payload on the wire, at most: tag 1,
/// origin 16, key 32, run 8, seq ≤ 10, hops 1, signature 64.
pub const BROADCAST_OVERHEAD_MAX: usize = 1 + 16 + 32 + 8 + 10 + 1 + 64;

impl Broadcast {
    /// The bytes the origin signs: [`BROADCAST_CONTEXT`] ‖ `origin` (16) ‖
    /// `run` (u64 BE) ‖ `seq` (u64 BE) ‖ payload length (u64 BE) ‖ payload.
    pub fn signed_bytes(origin: NodeId, run: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(BROADCAST_CONTEXT.len() + 16 + 24 + payload.len());
        out.extend_from_slice(BROADCAST_CONTEXT);
        out.extend_from_slice(&origin.to_bytes());
        out.extend_from_slice(&run.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The broadcast whose [`signed_bytes`](Broadcast::signed_bytes) are
    /// `signed`, with `key` and `signature` (and `hops` 1, which is not
    /// signed); `None` if `signed` is not that layout. How a test replays a
    /// broadcast it saw verified ([`crate::testing::BroadcastRecorder`]).
    pub fn from_signed_bytes(key: PublicKey, signed: &[u8], signature: [u8; 64]) -> Option<Self> {
        let rest = signed.strip_prefix(BROADCAST_CONTEXT)?;
        if rest.len() < 40 {
            return None;
        }
        let u64_at = |at: usize| u64::from_be_bytes(rest[at..at + 8].try_into().expect("8 bytes"));
        let payload = &rest[40..];
        if u64_at(32) != payload.len() as u64 {
            return None;
        }
        Some(Broadcast {
            origin: NodeId::from_bytes(rest[..16].try_into().expect("16 bytes")),
            key,
            run: u64_at(16),
            seq: u64_at(24),
            hops: 1,
            signature,
            payload: Bytes::copy_from_slice(payload),
        })
    }
}

impl WireMessage for Broadcast {
    const TAG: u8 = 0x30;

    fn encode(&self, out: &mut BytesMut) {
        put_node_id(out, self.origin);
        out.put_slice(&self.key.to_bytes());
        out.put_u64(self.run);
        put_varint(out, self.seq);
        out.put_u8(self.hops);
        out.put_slice(&self.signature);
        out.put_slice(&self.payload);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let origin = get_node_id(input)?;
        let key = PublicKey::from_bytes(input.array()?);
        let run = u64::from_be_bytes(input.array()?);
        let seq = input.varint()?;
        let hops = input.u8()?;
        if hops == 0 {
            return Err(DecodeError::OutOfRange {
                field: "hops",
                value: 0,
            });
        }
        let signature = input.array()?;
        Ok(Broadcast {
            origin,
            key,
            run,
            seq,
            hops,
            signature,
            payload: input.rest(),
        })
    }
}

/// `0x41` — a request the receiver should answer with `Response` carrying
/// the same id. Layout: `id: varint`, then the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the requester, unique among its pending requests.
    pub id: u64,
    /// Application bytes.
    pub payload: Bytes,
}

/// `0x42` — the answer to a `Request`. Layout: `id: varint`, then the
/// payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// Application bytes.
    pub payload: Bytes,
}

impl WireMessage for Request {
    const TAG: u8 = 0x41;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.id);
        out.put_slice(&self.payload);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Request {
            id: input.varint()?,
            payload: input.rest(),
        })
    }
}

impl WireMessage for Response {
    const TAG: u8 = 0x42;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.id);
        out.put_slice(&self.payload);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Response {
            id: input.varint()?,
            payload: input.rest(),
        })
    }
}

#[cfg(test)]
mod signed_layout_tests {
    use super::*;
    use crate::Identity;

    #[test]
    fn from_signed_bytes_inverts_signed_bytes_and_refuses_other_layouts() {
        let origin = Identity::from_secret_bytes([3; 32]);
        let id = origin.node_id();
        let signed = Broadcast::signed_bytes(id, 7, 42, b"hello");
        let signature = origin.sign(&signed);
        let b = Broadcast::from_signed_bytes(origin.public_key(), &signed, signature)
            .expect("the layout");
        assert_eq!((b.origin, b.run, b.seq, b.hops), (id, 7, 42, 1));
        assert_eq!(&b.payload[..], b"hello");
        assert_eq!(
            Broadcast::signed_bytes(b.origin, b.run, b.seq, &b.payload),
            signed
        );
        // Another context, a short body, a length that lies: not a broadcast.
        let mut other = signed.clone();
        other[0] ^= 1;
        let key = origin.public_key();
        assert!(Broadcast::from_signed_bytes(key, &other, signature).is_none());
        assert!(Broadcast::from_signed_bytes(key, &signed[..50], signature).is_none());
        assert!(
            Broadcast::from_signed_bytes(key, &signed[..signed.len() - 1], signature).is_none()
        );
    }
}
