//! Codecs of the relay messages (`0xa_`): reservations at a relay,
//! circuits through it, and the opaque bytes it forwards. `spec/relay.md`
//! §4 gives each layout.

use bytes::{BufMut, Bytes, BytesMut};

use core::net::SocketAddr;

use super::messages::{get_socket_addr, put_socket_addr};
use super::overlay::{get_node_id, put_node_id};
use super::varint::put_varint;
use super::{DecodeError, Reader, WireMessage};
use crate::NodeId;

/// The most bytes one [`RelayData`] carries (a relayed session's longer
/// writes are split over several).
pub const MAX_RELAY_DATA: usize = 64 * 1024;

/// A relay's answer, or why a circuit ended ([`RelayReserveResult`],
/// [`RelayConnectResult`], [`RelayClose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelayStatus {
    /// `0`: accepted.
    Ok = 0,
    /// `1`: the receiver does not serve as a relay.
    NotServing = 1,
    /// `2`: the relay holds `max_reservations` reservations already.
    ReservationLimit = 2,
    /// `3`: the target holds no reservation at this relay (or is not
    /// connected to it).
    NoReservation = 3,
    /// `4`: the relay carries `max_circuits` circuits already.
    CircuitLimit = 4,
    /// `5`: one of the two ends has `max_circuits_per_peer` circuits
    /// through this relay already.
    PeerCircuitLimit = 5,
    /// `6`: the circuit carried `circuit_bytes` bytes.
    ByteLimit = 6,
    /// `7`: the circuit lasted `circuit_duration`.
    DurationLimit = 7,
    /// `8`: the circuit sent faster than `circuit_rate` allows.
    RateLimit = 8,
    /// `9`: the other end closed the circuit, or went down.
    Closed = 9,
    /// `10`: an end refused the circuit (over its own caps, or it asked
    /// for none).
    Refused = 10,
}

impl RelayStatus {
    fn from_u8(value: u8, field: &'static str) -> Result<Self, DecodeError> {
        Ok(match value {
            0 => RelayStatus::Ok,
            1 => RelayStatus::NotServing,
            2 => RelayStatus::ReservationLimit,
            3 => RelayStatus::NoReservation,
            4 => RelayStatus::CircuitLimit,
            5 => RelayStatus::PeerCircuitLimit,
            6 => RelayStatus::ByteLimit,
            7 => RelayStatus::DurationLimit,
            8 => RelayStatus::RateLimit,
            9 => RelayStatus::Closed,
            10 => RelayStatus::Refused,
            other => {
                return Err(DecodeError::OutOfRange {
                    field,
                    value: other.into(),
                });
            }
        })
    }
}

/// `0xa0`: asks the receiver to hold a reservation for the sender, so
/// that others may open circuits to it (`spec/relay.md` §4.1). Sent again
/// before the reservation expires to renew it.
///
/// Layout: empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReserve;

impl WireMessage for RelayReserve {
    const TAG: u8 = 0xa0;

    fn encode(&self, _out: &mut BytesMut) {}

    fn decode(_input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(RelayReserve)
    }
}

/// `0xa1`: the answer to a [`RelayReserve`].
///
/// Layout: `status: u8`, `ttl_secs: u32` BE (how long the reservation
/// holds; 0 unless `status` is `Ok`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReserveResult {
    /// Accepted, or why not.
    pub status: RelayStatus,
    /// Seconds the reservation holds from now.
    pub ttl_secs: u32,
}

impl WireMessage for RelayReserveResult {
    const TAG: u8 = 0xa1;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.status as u8);
        out.put_u32(self.ttl_secs);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let status = RelayStatus::from_u8(input.u8()?, "status")?;
        let ttl_secs = u32::from_be_bytes(input.array()?);
        Ok(RelayReserveResult { status, ttl_secs })
    }
}

/// `0xa2`: asks the relay for a circuit to `target`, which must hold a
/// reservation there.
///
/// Layout: `req: u64` BE (echoed in the answer), `target: node id` (16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConnect {
    /// The sender's request number, echoed in [`RelayConnectResult`].
    pub req: u64,
    /// The node to reach.
    pub target: NodeId,
}

impl WireMessage for RelayConnect {
    const TAG: u8 = 0xa2;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.req);
        put_node_id(out, self.target);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = u64::from_be_bytes(input.array()?);
        let target = get_node_id(input)?;
        Ok(RelayConnect { req, target })
    }
}

/// `0xa3`: the answer to a [`RelayConnect`]: the circuit's number (chosen
/// by the relay, the same on both of its sides) or why there is none.
///
/// Layout: `req: u64` BE, `circuit: u64` BE (0 unless `status` is `Ok`),
/// `status: u8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConnectResult {
    /// The request's number.
    pub req: u64,
    /// The circuit, when accepted.
    pub circuit: u64,
    /// Accepted, or why not.
    pub status: RelayStatus,
}

impl WireMessage for RelayConnectResult {
    const TAG: u8 = 0xa3;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.req);
        out.put_u64(self.circuit);
        out.put_u8(self.status as u8);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = u64::from_be_bytes(input.array()?);
        let circuit = u64::from_be_bytes(input.array()?);
        let status = RelayStatus::from_u8(input.u8()?, "status")?;
        Ok(RelayConnectResult {
            req,
            circuit,
            status,
        })
    }
}

/// `0xa4`: the relay tells a node holding a reservation that `from` opened
/// `circuit` to it; the dialer's session bytes follow in [`RelayData`].
///
/// Layout: `circuit: u64` BE, `from: node id` (16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayIncoming {
    /// The circuit.
    pub circuit: u64,
    /// Who opened it (as the relay's session with it proved; the
    /// end-to-end handshake proves it again).
    pub from: NodeId,
}

impl WireMessage for RelayIncoming {
    const TAG: u8 = 0xa4;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.circuit);
        put_node_id(out, self.from);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let circuit = u64::from_be_bytes(input.array()?);
        let from = get_node_id(input)?;
        Ok(RelayIncoming { circuit, from })
    }
}

fn put_data(out: &mut BytesMut, circuit: u64, data: &[u8]) {
    out.put_u64(circuit);
    out.put_slice(data);
}

fn get_data(input: &mut Reader) -> Result<(u64, Bytes), DecodeError> {
    let circuit = u64::from_be_bytes(input.array()?);
    let len = input.remaining();
    if len == 0 || len > MAX_RELAY_DATA {
        return Err(DecodeError::OutOfRange {
            field: "data",
            value: len as u64,
        });
    }
    Ok((circuit, input.rest()))
}

fn get_close(input: &mut Reader) -> Result<(u64, RelayStatus), DecodeError> {
    let circuit = u64::from_be_bytes(input.array()?);
    let reason = RelayStatus::from_u8(input.u8()?, "reason")?;
    if reason == RelayStatus::Ok {
        return Err(DecodeError::OutOfRange {
            field: "reason",
            value: 0,
        });
    }
    Ok((circuit, reason))
}

/// `0xa5`: bytes of the session carried by `circuit`, from one of its
/// ends to the relay, which forwards them unchanged to the other end as
/// [`RelayDeliver`].
///
/// Layout: `circuit: u64` BE, then `data`: the rest of the body, 1 to
/// [`MAX_RELAY_DATA`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayData {
    /// The circuit.
    pub circuit: u64,
    /// Opaque bytes of the end-to-end session (ciphertext in Noise mode).
    pub data: Bytes,
}

impl WireMessage for RelayData {
    const TAG: u8 = 0xa5;

    fn encode(&self, out: &mut BytesMut) {
        put_data(out, self.circuit, &self.data);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let (circuit, data) = get_data(input)?;
        Ok(RelayData { circuit, data })
    }
}

/// `0xa6`: an end closes `circuit` (to the relay, which tells the other
/// end with [`RelayEnded`]).
///
/// Layout: `circuit: u64` BE, `reason: u8` (a status other than `Ok`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayClose {
    /// The circuit.
    pub circuit: u64,
    /// Why it closed.
    pub reason: RelayStatus,
}

impl WireMessage for RelayClose {
    const TAG: u8 = 0xa6;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.circuit);
        out.put_u8(self.reason as u8);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let (circuit, reason) = get_close(input)?;
        Ok(RelayClose { circuit, reason })
    }
}

/// `0xa7`: the relay hands an end the bytes the other end sent on
/// `circuit` ([`RelayData`]'s layout). Distinct from `RelayData` so that
/// two nodes that relay for each other never mistake one circuit for
/// another: circuit numbers are each relay's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayDeliver {
    /// The circuit.
    pub circuit: u64,
    /// The bytes, as the other end sent them.
    pub data: Bytes,
}

impl WireMessage for RelayDeliver {
    const TAG: u8 = 0xa7;

    fn encode(&self, out: &mut BytesMut) {
        put_data(out, self.circuit, &self.data);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let (circuit, data) = get_data(input)?;
        Ok(RelayDeliver { circuit, data })
    }
}

/// `0xa8`: the relay tells an end that `circuit` ended, and why (the
/// other end closed it or went down, or a limit was reached);
/// [`RelayClose`]'s layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayEnded {
    /// The circuit.
    pub circuit: u64,
    /// Why it ended.
    pub reason: RelayStatus,
}

impl WireMessage for RelayEnded {
    const TAG: u8 = 0xa8;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.circuit);
        out.put_u8(self.reason as u8);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let (circuit, reason) = get_close(input)?;
        Ok(RelayEnded { circuit, reason })
    }
}

/// The most addresses one [`HolePunch`] carries.
pub const MAX_PUNCH_ADDRS: usize = 8;

/// `0xa9`: sent end to end on a relayed session, to coordinate a hole
/// punch (`spec/relay.md` §7): the sender's candidate addresses (each IP
/// a peer reported seeing it at, with its listen port), for the receiver
/// to dial from its own listen port. The end with the smaller node id
/// sends it first and times the answer; the other answers with its own.
///
/// Layout: `count` varint (1 to [`MAX_PUNCH_ADDRS`]), then `count` socket
/// addresses (`spec/wire.md` §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolePunch {
    /// The sender's candidate addresses.
    pub addrs: Vec<SocketAddr>,
}

impl WireMessage for HolePunch {
    const TAG: u8 = 0xa9;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.addrs.len() as u64);
        for addr in &self.addrs {
            put_socket_addr(out, addr);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let count = input.list_len(MAX_PUNCH_ADDRS)?;
        if count == 0 {
            return Err(DecodeError::OutOfRange {
                field: "addrs",
                value: 0,
            });
        }
        let addrs = (0..count)
            .map(|_| get_socket_addr(input))
            .collect::<Result<_, _>>()?;
        Ok(HolePunch { addrs })
    }
}

/// `0xaa`: the end that sent the first [`HolePunch`] dials half a relay
/// round trip after sending this; its receiver dials at once, so both
/// SYNs cross the NATs at about the same moment (`spec/relay.md` §7).
///
/// Layout: empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolePunchSync;

impl WireMessage for HolePunchSync {
    const TAG: u8 = 0xaa;

    fn encode(&self, _out: &mut BytesMut) {}

    fn decode(_input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(HolePunchSync)
    }
}

/// The most entries one [`RelayAddrs`] carries.
pub const MAX_RELAY_ADDRS: usize = 32;

/// One relayed address: `node` holds a reservation at `relay`, which
/// accepts connections at `relay_addr` (`spec/relay.md` §3, "Relayed
/// addresses").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayAddr {
    /// The node reachable through the relay.
    pub node: NodeId,
    /// The relay holding its reservation.
    pub relay: NodeId,
    /// Where the relay accepts connections.
    pub relay_addr: SocketAddr,
}

/// `0xab`: relayed addresses, "`node` is reachable through a circuit at
/// `relay`" (`spec/relay.md` §3): a node holding reservations sends its
/// own to its peers, and a node passes on what it knows of the nodes
/// in a `PeerList` it sends, so a stranger that learns a node it cannot
/// dial also learns the relay to reach it through.
///
/// Layout: `count` varint (1 to [`MAX_RELAY_ADDRS`]), then `count`
/// entries: `node` id, `relay` id, the relay's socket address
/// (`spec/wire.md` §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddrs {
    /// The entries.
    pub addrs: Vec<RelayAddr>,
}

impl WireMessage for RelayAddrs {
    const TAG: u8 = 0xab;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.addrs.len() as u64);
        for entry in &self.addrs {
            put_node_id(out, entry.node);
            put_node_id(out, entry.relay);
            put_socket_addr(out, &entry.relay_addr);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let count = input.list_len(MAX_RELAY_ADDRS)?;
        if count == 0 {
            return Err(DecodeError::OutOfRange {
                field: "addrs",
                value: 0,
            });
        }
        let addrs = (0..count)
            .map(|_| {
                Ok(RelayAddr {
                    node: get_node_id(input)?,
                    relay: get_node_id(input)?,
                    relay_addr: get_socket_addr(input)?,
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(RelayAddrs { addrs })
    }
}
