//! Codecs of the reach messages (`0x9_`): what a peer sees of this node's
//! address. `spec/reach.md` §3 gives each layout.

use core::net::SocketAddr;

use bytes::{BufMut, BytesMut};

use super::messages::{get_socket_addr, put_socket_addr};
use super::{DecodeError, Reader, WireMessage};

/// `0x90`: the address the sender sees the receiver's connection come
/// from (`spec/reach.md` §3.1). Sent once per session, right after it is
/// established, to peers that offer [`Capabilities::REACH`](super::Capabilities::REACH).
///
/// Layout: `addr: socket address` (`spec/wire.md` §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAddr {
    /// The receiver's address as the sender's socket reports it (behind a
    /// NAT, the NAT's public address and the port it chose).
    pub addr: SocketAddr,
}

impl WireMessage for ObservedAddr {
    const TAG: u8 = 0x90;

    fn encode(&self, out: &mut BytesMut) {
        put_socket_addr(out, &self.addr);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ObservedAddr {
            addr: get_socket_addr(input)?,
        })
    }
}

/// `0x91`: asks the receiver to dial the sender back, at the sender's IP
/// as the receiver sees it and `port`, to learn whether the sender is
/// reachable there (`spec/reach.md` §3.2). Answered by [`DialBackResult`].
///
/// Layout: `nonce: u64` BE, `port: u16` BE (not 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialBack {
    /// Echoed in the answer.
    pub nonce: u64,
    /// The port to dial (the sender's listen port).
    pub port: u16,
}

impl WireMessage for DialBack {
    const TAG: u8 = 0x91;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.nonce);
        out.put_u16(self.port);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let nonce = u64::from_be_bytes(input.array()?);
        let port = input.u16()?;
        if port == 0 {
            return Err(DecodeError::OutOfRange {
                field: "port",
                value: 0,
            });
        }
        Ok(DialBack { nonce, port })
    }
}

/// How a dial-back went ([`DialBackResult::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialBackStatus {
    /// `0`: the dial reached the sender of the `DialBack` (its handshake
    /// proved its id).
    Reached = 0,
    /// `1`: the dial failed, or reached someone else.
    Unreached = 1,
    /// `2`: not tried (over the helper's limits, or it does not serve
    /// dial-backs).
    Refused = 2,
}

/// `0x92`: the answer to a [`DialBack`] (`spec/reach.md` §3.3).
///
/// Layout: `nonce: u64` BE, `status: u8` (0..=2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialBackResult {
    /// The request's nonce.
    pub nonce: u64,
    /// How it went.
    pub status: DialBackStatus,
}

impl WireMessage for DialBackResult {
    const TAG: u8 = 0x92;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u64(self.nonce);
        out.put_u8(self.status as u8);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let nonce = u64::from_be_bytes(input.array()?);
        let status = match input.u8()? {
            0 => DialBackStatus::Reached,
            1 => DialBackStatus::Unreached,
            2 => DialBackStatus::Refused,
            other => {
                return Err(DecodeError::OutOfRange {
                    field: "status",
                    value: other.into(),
                });
            }
        };
        Ok(DialBackResult { nonce, status })
    }
}
