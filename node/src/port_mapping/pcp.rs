//! Mapping through the gateway's PCP (RFC 6887) or NAT-PMP (RFC 6886)
//! server: a PCP MAP request first; a gateway answering it with
//! `UNSUPP_VERSION` speaks NAT-PMP, and the client goes on in that (RFC
//! 6887 §9). Each request is sent from a UDP socket connected to the
//! gateway's port 5351 and retransmitted at 250 ms, then twice the wait
//! each time (RFC 6886 §3.1), 4 tries: 3.75 s in all, not the RFC's 9
//! tries over a minute, so that a gateway without the service does not
//! hold up the next method for long. A gateway that refuses the port
//! (ICMP port unreachable) fails the exchange at once.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::wire::{
    BadAnswer, PcpAnswer, PcpMapRequest, PmpExternalAddress, PmpMapRequest, PmpMapResponse,
};
use super::{Gateway, Mapped, local_ip_towards};

/// The first wait for an answer; each retry doubles it.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// Requests sent before giving up.
const TRIES: u32 = 4;

/// Which protocol the gateway speaks, with what that protocol's requests
/// repeat.
enum Speaks {
    /// PCP: the nonce naming this node's mapping.
    Pcp { nonce: [u8; 12] },
    /// NAT-PMP: the external address (asked once).
    NatPmp { external_ip: Ipv4Addr },
}

/// A PCP or NAT-PMP gateway this node has a mapping at.
pub(crate) struct PcpGateway {
    socket: UdpSocket,
    server: SocketAddr,
    local_ip: Ipv4Addr,
    speaks: Speaks,
    /// The external address last granted: a PCP renewal suggests it (RFC
    /// 6887 §11.2.1), so a gateway that lost the mapping (rebooted) gives
    /// the same one back where it can.
    granted: Option<Mapped>,
}

impl PcpGateway {
    /// Maps `port` at the PCP or NAT-PMP server `server` for `lifetime`
    /// seconds: the gateway and its answer.
    pub(crate) fn map(
        server: SocketAddr,
        port: u16,
        lifetime: u32,
    ) -> Result<(PcpGateway, Mapped), String> {
        let IpAddr::V4(local_ip) = local_ip_towards(server).map_err(|e| e.to_string())? else {
            return Err("an IPv6 gateway (IPv4 only)".into());
        };
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
        socket.connect(server).map_err(|e| e.to_string())?;
        let mut nonce = [0; 12];
        getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
        let mut gateway = PcpGateway {
            socket,
            server,
            local_ip,
            speaks: Speaks::Pcp { nonce },
            granted: None,
        };
        match gateway.pcp_map(nonce, port, lifetime)? {
            Some(mapped) => {
                gateway.granted = Some(mapped.clone());
                Ok((gateway, mapped))
            }
            None => {
                let external = gateway
                    .exchange(&super::wire::pmp_external_address_request(), |b| {
                        PmpExternalAddress::decode(b)
                    })?;
                gateway.speaks = Speaks::NatPmp {
                    external_ip: external.ip,
                };
                let mapped = gateway.refresh(port, lifetime)?;
                Ok((gateway, mapped))
            }
        }
    }

    /// A PCP MAP request for `lifetime` (0 deletes); `None` if the gateway
    /// speaks only NAT-PMP.
    fn pcp_map(&self, nonce: [u8; 12], port: u16, lifetime: u32) -> Result<Option<Mapped>, String> {
        let (suggested_ip, suggested_port) = match self.granted.as_ref().map(|m| m.external) {
            Some(SocketAddr::V4(external)) => (*external.ip(), external.port()),
            _ => (Ipv4Addr::UNSPECIFIED, port),
        };
        let request = PcpMapRequest {
            lifetime,
            client: self.local_ip.to_ipv6_mapped(),
            nonce,
            internal_port: port,
            suggested_port,
            suggested_ip: suggested_ip.to_ipv6_mapped(),
        };
        let answer = self.exchange(&request.encode(), |b| match PcpAnswer::decode(b)? {
            PcpAnswer::UnsupportedVersion => Ok(None),
            PcpAnswer::Map(answer) => {
                answer.check(&request)?;
                Ok(Some(answer))
            }
        })?;
        Ok(answer.map(|answer| {
            let ip = answer
                .external_ip
                .to_ipv4_mapped()
                .map_or(IpAddr::V6(answer.external_ip), IpAddr::V4);
            Mapped {
                external: SocketAddr::new(ip, answer.external_port),
                local: SocketAddr::new(self.local_ip.into(), port),
                lifetime: answer.lifetime,
            }
        }))
    }

    /// A NAT-PMP mapping request for `lifetime` (0 deletes).
    fn pmp_map(&self, external_ip: Ipv4Addr, port: u16, lifetime: u32) -> Result<Mapped, String> {
        let request = PmpMapRequest {
            internal_port: port,
            suggested_port: if lifetime == 0 { 0 } else { port },
            lifetime,
        };
        let answer = self.exchange(&request.encode(), |b| {
            let answer = PmpMapResponse::decode(b)?;
            answer.check(&request)?;
            Ok(answer)
        })?;
        Ok(Mapped {
            external: SocketAddr::new(external_ip.into(), answer.external_port),
            local: SocketAddr::new(self.local_ip.into(), port),
            lifetime: answer.lifetime,
        })
    }

    /// Sends `request` until an answer `take` accepts arrives, or an
    /// answer that is ours says the gateway refused. Other datagrams
    /// (short, another opcode, another nonce) are ignored.
    fn exchange<T>(
        &self,
        request: &[u8],
        take: impl Fn(&[u8]) -> Result<T, BadAnswer>,
    ) -> Result<T, String> {
        let mut wait = FIRST_WAIT;
        let mut buf = [0u8; 1100];
        let mut ignored = None;
        for _ in 0..TRIES {
            self.socket
                .send(request)
                .map_err(|e| self.unreachable(&e))?;
            let deadline = Instant::now() + wait;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.socket
                    .set_read_timeout(Some(left))
                    .map_err(|e| e.to_string())?;
                match self.socket.recv(&mut buf) {
                    Ok(len) => match take(&buf[..len]) {
                        Ok(answer) => return Ok(answer),
                        Err(BadAnswer::Refused(refusal)) => {
                            return Err(format!("{} refused: {refusal}", self.server));
                        }
                        Err(bad) => ignored = Some(bad),
                    },
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.unreachable(&e)),
                }
            }
            wait *= 2;
        }
        Err(match ignored {
            Some(bad) => format!("no answer from {} but {bad}", self.server),
            None => format!("no answer from {}", self.server),
        })
    }

    fn unreachable(&self, error: &std::io::Error) -> String {
        if error.kind() == ErrorKind::ConnectionRefused {
            format!("nothing answers at {} (port unreachable)", self.server)
        } else {
            format!("{}: {error}", self.server)
        }
    }
}

impl Gateway for PcpGateway {
    fn describe(&self) -> String {
        match self.speaks {
            Speaks::Pcp { .. } => format!("PCP at {}", self.server.ip()),
            Speaks::NatPmp { .. } => format!("NAT-PMP at {}", self.server.ip()),
        }
    }

    fn refresh(&mut self, port: u16, lifetime: u32) -> Result<Mapped, String> {
        match self.speaks {
            // RFC 6887 §11.2.1: a renewal repeats the nonce.
            Speaks::Pcp { nonce } => {
                let mapped = self
                    .pcp_map(nonce, port, lifetime)?
                    .ok_or_else(|| format!("{} no longer speaks PCP", self.server))?;
                if lifetime > 0 {
                    self.granted = Some(mapped.clone());
                }
                Ok(mapped)
            }
            Speaks::NatPmp { external_ip } => self.pmp_map(external_ip, port, lifetime),
        }
    }

    fn remove(&mut self, port: u16) -> Result<(), String> {
        self.refresh(port, 0).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{PcpMapResponse, PmpExternalAddress, pmp_error};
    use super::*;

    /// A gateway on 127.0.0.1 answering each datagram it gets with what
    /// `answer` returns for it (nothing for `None`), on a thread of its
    /// own, for `datagrams` datagrams.
    fn fake_gateway(
        datagrams: usize,
        answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("addr");
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 1100];
            for _ in 0..datagrams {
                let (len, from) = socket.recv_from(&mut buf).expect("recv");
                got.push(buf[..len].to_vec());
                for reply in answer(&buf[..len]) {
                    socket.send_to(&reply, from).expect("send");
                }
            }
            got
        });
        (addr, thread)
    }

    fn grant(request: &PcpMapRequest, result: u8) -> Vec<u8> {
        PcpMapResponse {
            result,
            lifetime: request.lifetime.min(1800),
            epoch: 1,
            nonce: request.nonce,
            protocol: 6,
            internal_port: request.internal_port,
            external_port: 40_000,
            external_ip: Ipv4Addr::new(11, 0, 0, 2).to_ipv6_mapped(),
        }
        .encode()
        .to_vec()
    }

    #[test]
    fn a_pcp_gateway_maps_renews_with_the_same_nonce_and_deletes() {
        // Before the real answer: a short packet, and one for another
        // nonce; both are ignored.
        let (server, gateway) = fake_gateway(3, |b| {
            let request = PcpMapRequest::decode(b).expect("a PCP MAP request");
            let mut other = request.clone();
            other.nonce[0] ^= 1;
            vec![vec![2, 0x81], grant(&other, 0), grant(&request, 0)]
        });
        let (mut mapping, mapped) = PcpGateway::map(server, 4001, 3600).expect("mapped");
        assert_eq!(mapping.describe(), "PCP at 127.0.0.1");
        assert_eq!(mapped.external, "11.0.0.2:40000".parse().expect("addr"));
        assert_eq!(mapped.local, "127.0.0.1:4001".parse().expect("addr"));
        assert_eq!(mapped.lifetime, 1800);
        assert_eq!(mapping.refresh(4001, 3600).expect("renewed"), mapped);
        mapping.remove(4001).expect("removed");
        let got = gateway.join().expect("gateway");
        let requests: Vec<PcpMapRequest> = got
            .iter()
            .map(|b| PcpMapRequest::decode(b).expect("PCP"))
            .collect();
        assert_eq!(
            requests.iter().map(|r| r.lifetime).collect::<Vec<_>>(),
            [3600, 3600, 0]
        );
        // The first asks for the internal port at any address; the
        // renewal suggests what was granted.
        assert_eq!(
            (requests[0].suggested_ip, requests[0].suggested_port),
            (Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(), 4001)
        );
        assert_eq!(
            (requests[1].suggested_ip, requests[1].suggested_port),
            (Ipv4Addr::new(11, 0, 0, 2).to_ipv6_mapped(), 40_000)
        );
        assert!(requests.iter().all(|r| r.nonce == requests[0].nonce));
        assert_eq!(
            requests[0].client,
            Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
            "the client address as the gateway sees it"
        );
    }

    #[test]
    fn a_nat_pmp_gateway_answers_unsupp_version_and_the_client_falls_back() {
        let (server, gateway) = fake_gateway(4, |b| match b[0] {
            2 => vec![pmp_error(b[1], 1).to_vec()],
            0 if b[1] == 0 => vec![
                PmpExternalAddress {
                    epoch: 5,
                    ip: Ipv4Addr::new(11, 0, 0, 2),
                }
                .encode()
                .to_vec(),
            ],
            _ => {
                let request = PmpMapRequest::decode(b).expect("a NAT-PMP map request");
                vec![
                    PmpMapResponse {
                        epoch: 5,
                        internal_port: request.internal_port,
                        external_port: if request.lifetime == 0 { 0 } else { 40_001 },
                        lifetime: request.lifetime,
                    }
                    .encode()
                    .to_vec(),
                ]
            }
        });
        let (mut mapping, mapped) = PcpGateway::map(server, 4001, 3600).expect("mapped");
        assert_eq!(mapping.describe(), "NAT-PMP at 127.0.0.1");
        assert_eq!(mapped.external, "11.0.0.2:40001".parse().expect("addr"));
        assert_eq!(mapped.lifetime, 3600);
        mapping.remove(4001).expect("removed");
        let got = gateway.join().expect("gateway");
        assert_eq!(got[0][0], 2, "PCP first");
        assert_eq!(got[1], [0, 0], "then NAT-PMP's external address");
        let delete = PmpMapRequest::decode(&got[3]).expect("a NAT-PMP request");
        assert_eq!(
            delete,
            PmpMapRequest {
                internal_port: 4001,
                suggested_port: 0,
                lifetime: 0
            }
        );
    }

    #[test]
    fn a_refusal_fails_the_mapping_with_its_result_code() {
        let (server, gateway) = fake_gateway(1, |b| {
            vec![grant(&PcpMapRequest::decode(b).expect("PCP"), 2)]
        });
        let error = PcpGateway::map(server, 4001, 3600).err().expect("refused");
        assert!(
            error.ends_with("refused: PCP result 2 (NOT_AUTHORIZED)"),
            "{error}"
        );
        gateway.join().expect("gateway");
    }

    #[test]
    fn a_silent_gateway_is_retried_with_doubling_waits_and_given_up() {
        let (server, gateway) = fake_gateway(TRIES as usize, |_| Vec::new());
        let started = Instant::now();
        let error = PcpGateway::map(server, 4001, 3600)
            .err()
            .expect("no answer");
        let took = started.elapsed();
        assert!(error.starts_with("no answer from"), "{error}");
        // 250 + 500 + 1000 + 2000 ms.
        assert!(took >= Duration::from_millis(3750), "{took:?}");
        assert!(took < Duration::from_secs(6), "{took:?}");
        assert_eq!(gateway.join().expect("gateway").len(), TRIES as usize);
    }

    #[test]
    fn a_gateway_without_the_service_fails_at_once() {
        // A port nothing listens on: the kernel answers port unreachable.
        let free = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let server = free.local_addr().expect("addr");
        drop(free);
        let started = Instant::now();
        let error = PcpGateway::map(server, 4001, 3600).err().expect("refused");
        assert!(error.contains("port unreachable"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
