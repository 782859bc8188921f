//! Codecs of the reach messages (`0x9_`): what a peer sees of this node's
//! address. `spec/reach.md` §3 gives each layout.

use core::net::SocketAddr;

use bytes::BytesMut;

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
