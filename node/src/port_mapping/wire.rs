//! The wire format of PCP's MAP opcode (RFC 6887 §7, §11) and of NAT-PMP
//! (RFC 6886 §3.2, §3.3), for TCP mappings of IPv4 addresses: what the
//! node sends to its gateway's port 5351 and what it accepts back.
//!
//! Written here rather than taken from a crate: `crab_nat` (PCP and
//! NAT-PMP) runs on tokio only, and `natpmp` speaks NAT-PMP only (no PCP)
//! and pulls in `netdev`, `async-trait` and a C build step; this program
//! runs no async runtime. The formats are small fixed layouts.
//!
//! Decoding never panics: a short packet, another version or opcode is an
//! error; whether an answer belongs to the request (nonce, protocol,
//! internal port) and succeeded (its result code) is [`PcpMapResponse::check`]'s
//! and [`PmpMapResponse::check`]'s.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The port PCP and NAT-PMP servers listen on (RFC 6887 §19.1, RFC 6886
/// §3.1).
pub(crate) const SERVER_PORT: u16 = 5351;

/// PCP's version number (RFC 6887 §7.1); NAT-PMP's is 0.
const PCP_VERSION: u8 = 2;
/// NAT-PMP's version number.
const PMP_VERSION: u8 = 0;
/// PCP's MAP opcode (RFC 6887 §19.2).
const PCP_OP_MAP: u8 = 1;
/// The R bit: set in responses (RFC 6887 §7.2).
const PCP_RESPONSE: u8 = 0x80;
/// TCP's IANA protocol number, the MAP opcode's protocol field.
const PCP_PROTOCOL_TCP: u8 = 6;
/// NAT-PMP's opcodes: the external address, a TCP mapping (RFC 6886
/// §3.2, §3.3); responses add 128.
const PMP_OP_EXTERNAL_ADDRESS: u8 = 0;
const PMP_OP_MAP_TCP: u8 = 2;
const PMP_RESPONSE: u8 = 128;

/// A PCP MAP request's and response's length (24-byte header, 36-byte
/// MAP body, no options).
const PCP_MAP_LEN: usize = 60;
/// NAT-PMP's answer lengths: the external address, a mapping.
const PMP_EXTERNAL_ADDRESS_LEN: usize = 12;
const PMP_MAP_LEN: usize = 16;
/// The shortest answer that carries a result code: NAT-PMP's version,
/// opcode, result and epoch (RFC 6886 §3.5), or PCP's header up to its
/// result code.
const RESULT_LEN: usize = 4;

/// The result code both protocols use for "unsupported version" (PCP's
/// `UNSUPP_VERSION`, NAT-PMP's 1).
const UNSUPP_VERSION: u16 = 1;

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadAnswer {
    /// Shorter than its layout.
    Short { len: usize },
    /// Not the version asked in.
    Version(u8),
    /// Not the response to the opcode sent.
    Opcode(u8),
    /// The answer to another mapping (PCP's nonce, protocol or internal
    /// port, NAT-PMP's internal port, differ from the request's).
    NotOurs,
    /// The gateway refused: its result code.
    Refused(Refusal),
}

impl fmt::Display for BadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadAnswer::Short { len } => write!(f, "a short answer ({len} bytes)"),
            BadAnswer::Version(v) => write!(f, "an answer of version {v}"),
            BadAnswer::Opcode(op) => write!(f, "an answer with opcode {op}"),
            BadAnswer::NotOurs => f.write_str("the answer to another request"),
            BadAnswer::Refused(refusal) => write!(f, "{refusal}"),
        }
    }
}

/// A non-zero result code, with the protocol that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A PCP result code (RFC 6887 §7.4).
    Pcp(u8),
    /// A NAT-PMP result code (RFC 6886 §3.5).
    Pmp(u16),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (protocol, code, name) = match *self {
            Refusal::Pcp(code) => (
                "PCP",
                u16::from(code),
                match code {
                    1 => "UNSUPP_VERSION",
                    2 => "NOT_AUTHORIZED",
                    3 => "MALFORMED_REQUEST",
                    4 => "UNSUPP_OPCODE",
                    5 => "UNSUPP_OPTION",
                    6 => "MALFORMED_OPTION",
                    7 => "NETWORK_FAILURE",
                    8 => "NO_RESOURCES",
                    9 => "UNSUPP_PROTOCOL",
                    10 => "USER_EX_QUOTA",
                    11 => "CANNOT_PROVIDE_EXTERNAL",
                    12 => "ADDRESS_MISMATCH",
                    13 => "EXCESSIVE_REMOTE_PEERS",
                    _ => "unknown",
                },
            ),
            Refusal::Pmp(code) => (
                "NAT-PMP",
                code,
                match code {
                    1 => "unsupported version",
                    2 => "not authorized",
                    3 => "network failure",
                    4 => "out of resources",
                    5 => "unsupported opcode",
                    _ => "unknown",
                },
            ),
        };
        write!(f, "{protocol} result {code} ({name})")
    }
}

/// A PCP MAP request for a TCP port (RFC 6887 §7.1, §11.1). A lifetime of
/// 0 deletes the mapping with this nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PcpMapRequest {
    /// Seconds asked for.
    pub(crate) lifetime: u32,
    /// The client's address as the server sees it (IPv4-mapped).
    pub(crate) client: Ipv6Addr,
    /// Names the mapping: renewals and the deletion repeat it.
    pub(crate) nonce: [u8; 12],
    pub(crate) internal_port: u16,
    pub(crate) suggested_port: u16,
    /// `::ffff:0.0.0.0` for no preference (§11.1).
    pub(crate) suggested_ip: Ipv6Addr,
}

impl PcpMapRequest {
    pub(crate) fn encode(&self) -> [u8; PCP_MAP_LEN] {
        let mut out = [0; PCP_MAP_LEN];
        out[0] = PCP_VERSION;
        out[1] = PCP_OP_MAP;
        out[4..8].copy_from_slice(&self.lifetime.to_be_bytes());
        out[8..24].copy_from_slice(&self.client.octets());
        out[24..36].copy_from_slice(&self.nonce);
        out[36] = PCP_PROTOCOL_TCP;
        out[40..42].copy_from_slice(&self.internal_port.to_be_bytes());
        out[42..44].copy_from_slice(&self.suggested_port.to_be_bytes());
        out[44..60].copy_from_slice(&self.suggested_ip.octets());
        out
    }

    /// The server's half (the tests' gateway).
    #[cfg(test)]
    pub(crate) fn decode(bytes: &[u8]) -> Result<PcpMapRequest, BadAnswer> {
        let b = fixed::<PCP_MAP_LEN>(bytes)?;
        if b[0] != PCP_VERSION {
            return Err(BadAnswer::Version(b[0]));
        }
        if b[1] != PCP_OP_MAP || b[36] != PCP_PROTOCOL_TCP {
            return Err(BadAnswer::Opcode(b[1]));
        }
        Ok(PcpMapRequest {
            lifetime: be32(&b[4..8]),
            client: ipv6(&b[8..24]),
            nonce: nonce(&b[24..36]),
            internal_port: be16(&b[40..42]),
            suggested_port: be16(&b[42..44]),
            suggested_ip: ipv6(&b[44..60]),
        })
    }
}

/// A PCP MAP response (RFC 6887 §7.2, §11.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PcpMapResponse {
    pub(crate) result: u8,
    /// Seconds granted.
    pub(crate) lifetime: u32,
    pub(crate) epoch: u32,
    pub(crate) nonce: [u8; 12],
    pub(crate) protocol: u8,
    pub(crate) internal_port: u16,
    pub(crate) external_port: u16,
    /// IPv4-mapped for an IPv4 mapping.
    pub(crate) external_ip: Ipv6Addr,
}

/// What a gateway answers a PCP request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PcpAnswer {
    Map(PcpMapResponse),
    /// The gateway speaks an older version: NAT-PMP's `UNSUPP_VERSION`
    /// (version 0), or PCP's naming version 0 or 1. RFC 6887 §9: the
    /// client goes on in NAT-PMP.
    UnsupportedVersion,
}

impl PcpAnswer {
    pub(crate) fn decode(bytes: &[u8]) -> Result<PcpAnswer, BadAnswer> {
        if bytes.len() < RESULT_LEN {
            return Err(BadAnswer::Short { len: bytes.len() });
        }
        let version = bytes[0];
        if version < PCP_VERSION {
            // NAT-PMP's error layout (RFC 6886 §3.5): result code in bytes
            // 2..4; a PCP (version 1) server's: in byte 3.
            let result = if version == PMP_VERSION {
                be16(&bytes[2..4])
            } else {
                u16::from(bytes[3])
            };
            return if result == UNSUPP_VERSION {
                Ok(PcpAnswer::UnsupportedVersion)
            } else {
                Err(BadAnswer::Version(version))
            };
        }
        if version != PCP_VERSION {
            return Err(BadAnswer::Version(version));
        }
        if bytes[1] != PCP_RESPONSE | PCP_OP_MAP {
            return Err(BadAnswer::Opcode(bytes[1]));
        }
        if u16::from(bytes[3]) == UNSUPP_VERSION {
            // Our version is the newest; a server naming a newer one
            // still answered UNSUPP_VERSION: nothing to fall back to.
            return Err(BadAnswer::Refused(Refusal::Pcp(bytes[3])));
        }
        let b = fixed::<PCP_MAP_LEN>(bytes)?;
        Ok(PcpAnswer::Map(PcpMapResponse {
            result: b[3],
            lifetime: be32(&b[4..8]),
            epoch: be32(&b[8..12]),
            nonce: nonce(&b[24..36]),
            protocol: b[36],
            internal_port: be16(&b[40..42]),
            external_port: be16(&b[42..44]),
            external_ip: ipv6(&b[44..60]),
        }))
    }
}

impl PcpMapResponse {
    /// Whether this answers `request` (RFC 6887 §11.3: a response whose
    /// nonce, protocol or internal port differ is for someone else) and
    /// succeeded.
    pub(crate) fn check(&self, request: &PcpMapRequest) -> Result<(), BadAnswer> {
        if self.nonce != request.nonce
            || self.protocol != PCP_PROTOCOL_TCP
            || self.internal_port != request.internal_port
        {
            return Err(BadAnswer::NotOurs);
        }
        if self.result != 0 {
            return Err(BadAnswer::Refused(Refusal::Pcp(self.result)));
        }
        Ok(())
    }

    /// The gateway's half (the tests' gateway).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> [u8; PCP_MAP_LEN] {
        let mut out = [0; PCP_MAP_LEN];
        out[0] = PCP_VERSION;
        out[1] = PCP_RESPONSE | PCP_OP_MAP;
        out[3] = self.result;
        out[4..8].copy_from_slice(&self.lifetime.to_be_bytes());
        out[8..12].copy_from_slice(&self.epoch.to_be_bytes());
        out[24..36].copy_from_slice(&self.nonce);
        out[36] = self.protocol;
        out[40..42].copy_from_slice(&self.internal_port.to_be_bytes());
        out[42..44].copy_from_slice(&self.external_port.to_be_bytes());
        out[44..60].copy_from_slice(&self.external_ip.octets());
        out
    }
}

/// NAT-PMP's external address request (RFC 6886 §3.2).
pub(crate) fn pmp_external_address_request() -> [u8; 2] {
    [PMP_VERSION, PMP_OP_EXTERNAL_ADDRESS]
}

/// The header every NAT-PMP answer starts with: version, opcode, result;
/// a non-zero result is a [`BadAnswer::Refused`] (its answer may be only
/// the 8 bytes of RFC 6886 §3.5).
fn pmp_header(bytes: &[u8], opcode: u8) -> Result<(), BadAnswer> {
    if bytes.len() < RESULT_LEN {
        return Err(BadAnswer::Short { len: bytes.len() });
    }
    if bytes[0] != PMP_VERSION {
        return Err(BadAnswer::Version(bytes[0]));
    }
    if bytes[1] != PMP_RESPONSE | opcode {
        return Err(BadAnswer::Opcode(bytes[1]));
    }
    match be16(&bytes[2..4]) {
        0 => Ok(()),
        code => Err(BadAnswer::Refused(Refusal::Pmp(code))),
    }
}

/// NAT-PMP's external address response (RFC 6886 §3.2), result 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PmpExternalAddress {
    pub(crate) epoch: u32,
    pub(crate) ip: Ipv4Addr,
}

impl PmpExternalAddress {
    pub(crate) fn decode(bytes: &[u8]) -> Result<PmpExternalAddress, BadAnswer> {
        pmp_header(bytes, PMP_OP_EXTERNAL_ADDRESS)?;
        let b = fixed::<PMP_EXTERNAL_ADDRESS_LEN>(bytes)?;
        Ok(PmpExternalAddress {
            epoch: be32(&b[4..8]),
            ip: Ipv4Addr::new(b[8], b[9], b[10], b[11]),
        })
    }

    /// The gateway's half (the tests' gateway).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> [u8; PMP_EXTERNAL_ADDRESS_LEN] {
        let mut out = [0; PMP_EXTERNAL_ADDRESS_LEN];
        out[1] = PMP_RESPONSE | PMP_OP_EXTERNAL_ADDRESS;
        out[4..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..12].copy_from_slice(&self.ip.octets());
        out
    }
}

/// A NAT-PMP TCP mapping request (RFC 6886 §3.3); a lifetime of 0 and
/// suggested port 0 delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PmpMapRequest {
    pub(crate) internal_port: u16,
    pub(crate) suggested_port: u16,
    pub(crate) lifetime: u32,
}

impl PmpMapRequest {
    pub(crate) fn encode(&self) -> [u8; 12] {
        let mut out = [0; 12];
        out[1] = PMP_OP_MAP_TCP;
        out[4..6].copy_from_slice(&self.internal_port.to_be_bytes());
        out[6..8].copy_from_slice(&self.suggested_port.to_be_bytes());
        out[8..12].copy_from_slice(&self.lifetime.to_be_bytes());
        out
    }

    /// The gateway's half (the tests' gateway).
    #[cfg(test)]
    pub(crate) fn decode(bytes: &[u8]) -> Result<PmpMapRequest, BadAnswer> {
        let b = fixed::<12>(bytes)?;
        if b[0] != PMP_VERSION {
            return Err(BadAnswer::Version(b[0]));
        }
        if b[1] != PMP_OP_MAP_TCP {
            return Err(BadAnswer::Opcode(b[1]));
        }
        Ok(PmpMapRequest {
            internal_port: be16(&b[4..6]),
            suggested_port: be16(&b[6..8]),
            lifetime: be32(&b[8..12]),
        })
    }
}

/// NAT-PMP's mapping response (RFC 6886 §3.3), result 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PmpMapResponse {
    pub(crate) epoch: u32,
    pub(crate) internal_port: u16,
    pub(crate) external_port: u16,
    /// Seconds granted.
    pub(crate) lifetime: u32,
}

impl PmpMapResponse {
    pub(crate) fn decode(bytes: &[u8]) -> Result<PmpMapResponse, BadAnswer> {
        pmp_header(bytes, PMP_OP_MAP_TCP)?;
        let b = fixed::<PMP_MAP_LEN>(bytes)?;
        Ok(PmpMapResponse {
            epoch: be32(&b[4..8]),
            internal_port: be16(&b[8..10]),
            external_port: be16(&b[10..12]),
            lifetime: be32(&b[12..16]),
        })
    }

    /// Whether this answers `request` (same internal port).
    pub(crate) fn check(&self, request: &PmpMapRequest) -> Result<(), BadAnswer> {
        if self.internal_port != request.internal_port {
            return Err(BadAnswer::NotOurs);
        }
        Ok(())
    }

    /// The gateway's half (the tests' gateway).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> [u8; PMP_MAP_LEN] {
        let mut out = [0; PMP_MAP_LEN];
        out[1] = PMP_RESPONSE | PMP_OP_MAP_TCP;
        out[4..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..10].copy_from_slice(&self.internal_port.to_be_bytes());
        out[10..12].copy_from_slice(&self.external_port.to_be_bytes());
        out[12..16].copy_from_slice(&self.lifetime.to_be_bytes());
        out
    }
}

/// NAT-PMP's error answer (RFC 6886 §3.5): 8 bytes, for the tests'
/// gateway.
#[cfg(test)]
pub(crate) fn pmp_error(request_opcode: u8, result: u16) -> [u8; 8] {
    let mut out = [0; 8];
    out[1] = PMP_RESPONSE | request_opcode;
    out[2..4].copy_from_slice(&result.to_be_bytes());
    out
}

/// `bytes` as an array of `N`, extra bytes ignored (RFC 6887 §7: options
/// may follow a PCP response; none are asked for).
fn fixed<const N: usize>(bytes: &[u8]) -> Result<&[u8; N], BadAnswer> {
    bytes
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or(BadAnswer::Short { len: bytes.len() })
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn ipv6(b: &[u8]) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(b);
    Ipv6Addr::from(octets)
}

fn nonce(b: &[u8]) -> [u8; 12] {
    let mut n = [0; 12];
    n.copy_from_slice(b);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pcp_request() -> impl Strategy<Value = PcpMapRequest> {
        (
            any::<u32>(),
            any::<[u8; 16]>(),
            any::<[u8; 12]>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 16]>(),
        )
            .prop_map(
                |(lifetime, client, nonce, internal_port, suggested_port, ip)| PcpMapRequest {
                    lifetime,
                    client: client.into(),
                    nonce,
                    internal_port,
                    suggested_port,
                    suggested_ip: ip.into(),
                },
            )
    }

    fn pcp_response() -> impl Strategy<Value = PcpMapResponse> {
        (
            // UNSUPP_VERSION has its own answer (`PcpAnswer::decode`).
            any::<u8>().prop_filter("not UNSUPP_VERSION", |r| *r != 1),
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 12]>(),
            any::<u8>(),
            any::<(u16, u16)>(),
            any::<[u8; 16]>(),
        )
            .prop_map(
                |(result, lifetime, epoch, nonce, protocol, (internal_port, external_port), ip)| {
                    PcpMapResponse {
                        result,
                        lifetime,
                        epoch,
                        nonce,
                        protocol,
                        internal_port,
                        external_port,
                        external_ip: ip.into(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn pcp_map_requests_round_trip(request in pcp_request()) {
            prop_assert_eq!(PcpMapRequest::decode(&request.encode()), Ok(request));
        }

        #[test]
        fn pcp_map_responses_round_trip(response in pcp_response()) {
            prop_assert_eq!(
                PcpAnswer::decode(&response.encode()),
                Ok(PcpAnswer::Map(response))
            );
        }

        #[test]
        fn pmp_map_requests_round_trip(
            internal_port: u16, suggested_port: u16, lifetime: u32,
        ) {
            let request = PmpMapRequest { internal_port, suggested_port, lifetime };
            prop_assert_eq!(PmpMapRequest::decode(&request.encode()), Ok(request));
        }

        #[test]
        fn pmp_answers_round_trip(
            epoch: u32, ip: [u8; 4], internal_port: u16, external_port: u16, lifetime: u32,
        ) {
            let address = PmpExternalAddress { epoch, ip: ip.into() };
            prop_assert_eq!(PmpExternalAddress::decode(&address.encode()), Ok(address));
            let map = PmpMapResponse { epoch, internal_port, external_port, lifetime };
            prop_assert_eq!(PmpMapResponse::decode(&map.encode()), Ok(map));
        }

        /// Whatever a gateway (or anyone on the LAN) sends, decoding
        /// returns: an answer or an error, never a panic.
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = PcpAnswer::decode(&bytes);
            let _ = PmpExternalAddress::decode(&bytes);
            let _ = PmpMapResponse::decode(&bytes);
        }

        /// A truncated answer is refused as short, whatever its cut.
        #[test]
        fn truncated_answers_are_short(response in pcp_response(), cut in 0usize..60) {
            let bytes = response.encode();
            let decoded = PcpAnswer::decode(&bytes[..cut]);
            prop_assert!(
                matches!(decoded, Err(BadAnswer::Short { len }) if len == cut),
                "{:?}", decoded
            );
        }
    }

    fn granted(request: &PcpMapRequest) -> PcpMapResponse {
        PcpMapResponse {
            result: 0,
            lifetime: 3600,
            epoch: 7,
            nonce: request.nonce,
            protocol: PCP_PROTOCOL_TCP,
            internal_port: request.internal_port,
            external_port: request.internal_port,
            external_ip: Ipv4Addr::new(11, 0, 0, 2).to_ipv6_mapped(),
        }
    }

    fn request() -> PcpMapRequest {
        PcpMapRequest {
            lifetime: 3600,
            client: Ipv4Addr::new(10, 1, 0, 2).to_ipv6_mapped(),
            nonce: [9; 12],
            internal_port: 4001,
            suggested_port: 4001,
            suggested_ip: Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(),
        }
    }

    #[test]
    fn a_pcp_answer_for_another_nonce_protocol_or_port_is_not_ours() {
        let request = request();
        assert_eq!(granted(&request).check(&request), Ok(()));
        let mut other_nonce = granted(&request);
        other_nonce.nonce[0] ^= 1;
        let mut udp = granted(&request);
        udp.protocol = 17;
        let mut other_port = granted(&request);
        other_port.internal_port = 4002;
        for answer in [other_nonce, udp, other_port] {
            assert_eq!(answer.check(&request), Err(BadAnswer::NotOurs));
        }
    }

    #[test]
    fn a_pcp_refusal_names_its_result_code() {
        let request = request();
        let mut refused = granted(&request);
        refused.result = 2;
        let decoded = PcpAnswer::decode(&refused.encode()).expect("decodes");
        let PcpAnswer::Map(answer) = decoded else {
            panic!("a MAP answer: {decoded:?}");
        };
        let error = answer.check(&request).expect_err("refused");
        assert_eq!(error, BadAnswer::Refused(Refusal::Pcp(2)));
        assert_eq!(error.to_string(), "PCP result 2 (NOT_AUTHORIZED)");
    }

    #[test]
    fn a_nat_pmp_unsupp_version_answer_to_pcp_means_fall_back() {
        // RFC 6886 §3.5's 8-byte error, to the opcode byte we sent (1).
        assert_eq!(
            PcpAnswer::decode(&pmp_error(PCP_OP_MAP, 1)),
            Ok(PcpAnswer::UnsupportedVersion)
        );
        // A PCP version 1 server's UNSUPP_VERSION too.
        let mut v1 = [0u8; 24];
        v1[0] = 1;
        v1[1] = PCP_RESPONSE | PCP_OP_MAP;
        v1[3] = 1;
        assert_eq!(PcpAnswer::decode(&v1), Ok(PcpAnswer::UnsupportedVersion));
        // Another NAT-PMP error is no reason to fall back.
        assert_eq!(
            PcpAnswer::decode(&pmp_error(PCP_OP_MAP, 3)),
            Err(BadAnswer::Version(0))
        );
    }

    #[test]
    fn wrong_opcodes_and_versions_are_refused() {
        let request = request();
        let mut bytes = granted(&request).encode();
        bytes[1] = PCP_RESPONSE | 2; // PEER
        assert_eq!(PcpAnswer::decode(&bytes), Err(BadAnswer::Opcode(0x82)));
        bytes[0] = 3;
        assert_eq!(PcpAnswer::decode(&bytes), Err(BadAnswer::Version(3)));
        // Our own request echoed back is not an answer.
        assert_eq!(
            PcpAnswer::decode(&request.encode()),
            Err(BadAnswer::Opcode(PCP_OP_MAP))
        );
        let map = PmpMapResponse {
            epoch: 1,
            internal_port: 4001,
            external_port: 4001,
            lifetime: 3600,
        }
        .encode();
        assert_eq!(
            PmpExternalAddress::decode(&map),
            Err(BadAnswer::Opcode(PMP_RESPONSE | PMP_OP_MAP_TCP))
        );
        assert_eq!(
            PmpMapResponse::decode(&map[..15]),
            Err(BadAnswer::Short { len: 15 })
        );
    }

    #[test]
    fn nat_pmp_refusals_name_their_result_code() {
        let error = PmpMapResponse::decode(&pmp_error(PMP_OP_MAP_TCP, 2)).expect_err("refused");
        assert_eq!(error, BadAnswer::Refused(Refusal::Pmp(2)));
        assert_eq!(error.to_string(), "NAT-PMP result 2 (not authorized)");
        let answer = PmpMapResponse {
            epoch: 1,
            internal_port: 4002,
            external_port: 4002,
            lifetime: 3600,
        };
        let request = PmpMapRequest {
            internal_port: 4001,
            suggested_port: 4001,
            lifetime: 3600,
        };
        assert_eq!(answer.check(&request), Err(BadAnswer::NotOurs));
    }
}
