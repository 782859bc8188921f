//! Simulated NATs: a node may sit behind a NAT of its own, with a type and
//! a public address, and what it dials out and what reaches it go through
//! the NAT's mappings.
//!
//! Off unless a node is put behind one ([`super::Sim::put_behind_nat`]):
//! with no NAT the engine never consults this module and takes exactly
//! the path it took before it existed (the same trace hashes). Nothing
//! here draws randomness: ports are handed out by counters, so the same
//! calls give the same mappings.
//!
//! The model, per NATed node `i` (one host behind each NAT):
//! - Its public IP is [`public_ip`]`(i)`, in 100.64.0.0/10 (the shared
//!   address space of carrier-grade NATs), distinct from every simulator
//!   listen address (127.0.0.0/8). Its listen address `addr_of(i)` is
//!   private: a dial to it from another node times out.
//! - A dial out from an ephemeral port (`Output::Dial`) creates a mapping
//!   with a fresh external port; the far end sees the NAT's public IP and
//!   that port (so observed addresses, spec/reach.md §1, are the NAT's).
//!   A dial out from the listen port (`Output::DialFromListenPort`) keeps
//!   the port (7000) under the cone types — the mapping is
//!   endpoint-independent — and gets a fresh port per destination under
//!   [`NatType::Symmetric`].
//! - An inbound dial to `public_ip(i):port` reaches `i` only through a
//!   mapping on that port whose filter lets the source in: any source
//!   under [`NatType::FullCone`]; under [`NatType::AddressRestricted`]
//!   any port of the host the mapping was made to; under
//!   [`NatType::PortRestricted`] and [`NatType::Symmetric`] only the host
//!   and port the mapping was made to, which an ordinary dial (from an
//!   ephemeral port) never is. A port
//!   mapping ([`super::Sim::map_port`], what UPnP makes) lets anyone in
//!   on the listen port.
//! - Two `DialFromListenPort`s that cross (each to the address the other's
//!   NAT maps its listen port to) within [`PUNCH_WINDOW`] make one
//!   connection (a TCP simultaneous open); each end sees it as its own
//!   dial. Under a symmetric NAT the other end dialled the wrong port and
//!   the punch fails. A punch toward a node that is not behind a NAT is an
//!   ordinary dial (its listener accepts).
//!
//! Mappings are not expired while their connection lives; each NAT keeps
//! at most [`MAX_MAPPINGS`] (oldest dropped first, counted in
//! [`NatStats::mappings_dropped`]).

use std::collections::VecDeque;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use ringmesh::{ConnId, Instant};

use super::{NodeIdx, addr_of};

/// The port every simulated node listens on.
const LISTEN_PORT: u16 = 7000;

/// Mappings one NAT keeps (the oldest go first).
pub const MAX_MAPPINGS: usize = 512;

/// Punches waiting for the other side at once (the oldest fail first).
pub const MAX_PENDING_PUNCHES: usize = 65_536;

/// How long a dial from the listen port waits for the other side's to
/// cross it before it fails (`TransportError::TimedOut`).
pub const PUNCH_WINDOW: ringmesh::Duration = ringmesh::Duration::from_secs(2);

/// A NAT's behaviour (RFC 4787's mapping and filtering, the four kinds
/// that matter for hole punching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatType {
    /// Endpoint-independent mapping and filtering: once a port is mapped,
    /// anyone can reach it.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering: any port
    /// of a host a mapping was made to gets in.
    AddressRestricted,
    /// Endpoint-independent mapping, address-and-port-dependent filtering:
    /// only the host and port a mapping was made to get in.
    PortRestricted,
    /// Address-and-port-dependent mapping and filtering: every destination
    /// gets its own external port, so hole punching fails.
    Symmetric,
}

impl NatType {
    /// Its name as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            NatType::FullCone => "full-cone",
            NatType::AddressRestricted => "address-restricted",
            NatType::PortRestricted => "port-restricted",
            NatType::Symmetric => "symmetric",
        }
    }
}

/// Counters of the NAT model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NatStats {
    /// Mappings created by dials out.
    pub mappings: u64,
    /// Mappings dropped because a NAT held [`MAX_MAPPINGS`].
    pub mappings_dropped: u64,
    /// Inbound dials a NAT let in through a mapping.
    pub inbound_admitted: u64,
    /// Inbound dials a NAT dropped (no mapping, or its filter said no), or
    /// that were addressed to a NATed node's private address.
    pub inbound_dropped: u64,
    /// Simultaneous opens that made a connection.
    pub punches_ok: u64,
    /// Dials from the listen port that failed (the other side's never
    /// crossed, or crossed at the wrong port).
    pub punches_failed: u64,
}

/// The public IP of node `i`'s NAT: `100.(64 + a).b.c` with `a.b.c` =
/// `i + 1` (up to 4,194,303 nodes).
pub fn public_ip(i: NodeIdx) -> Option<Ipv4Addr> {
    let n = i.checked_add(1)?;
    (n < 64 << 16).then(|| Ipv4Addr::new(100, 64 + (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

/// The node whose NAT has public IP `ip`, if `ip` is one.
pub fn nat_owner(ip: IpAddr) -> Option<NodeIdx> {
    let IpAddr::V4(v4) = ip else { return None };
    let [a, b, c, d] = v4.octets();
    if a != 100 || !(64..128).contains(&b) {
        return None;
    }
    let n = (u32::from(b - 64) << 16) | (u32::from(c) << 8) | u32::from(d);
    (n > 0).then(|| n - 1)
}

/// One mapping: external port, and the destination it was made to.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    port: u16,
    dest: SocketAddr,
}

#[derive(Debug)]
struct Nat {
    kind: NatType,
    ip: Ipv4Addr,
    /// The next external port handed out (wraps within 10000..=65535).
    next_port: u16,
    mappings: VecDeque<Mapping>,
    /// A port mapping (UPnP) of the listen port: anyone gets in on it.
    port_mapped: bool,
}

impl Nat {
    fn fresh_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX { 10_000 } else { port + 1 };
        if port == LISTEN_PORT {
            return self.fresh_port();
        }
        port
    }

    fn admits(&self, port: u16, src: SocketAddr) -> bool {
        if port == LISTEN_PORT && self.port_mapped {
            return true;
        }
        self.mappings.iter().any(|m| {
            m.port == port
                && match self.kind {
                    NatType::FullCone => true,
                    NatType::AddressRestricted => m.dest.ip() == src.ip(),
                    NatType::PortRestricted | NatType::Symmetric => m.dest == src,
                }
        })
    }
}

/// A dial from the listen port waiting for the other side's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Punch {
    pub(super) node: NodeIdx,
    pub(super) incarnation: u32,
    pub(super) conn: ConnId,
    /// The node it punches toward.
    pub(super) to: NodeIdx,
    /// The address it dialled.
    pub(super) dialled: SocketAddr,
    /// Where its SYN came from, as the far side sees it.
    pub(super) source: SocketAddr,
    pub(super) until: Instant,
}

/// The NATs of a run, by node (empty when no node is behind one).
#[derive(Debug, Default)]
pub(super) struct NatState {
    nats: Vec<Option<Nat>>,
    pending: VecDeque<Punch>,
    pub(super) stats: NatStats,
}

impl NatState {
    /// Whether any node is behind a NAT.
    pub(super) fn active(&self) -> bool {
        !self.nats.is_empty()
    }

    /// Puts node `i` behind a NAT of type `kind`; `false` if its index has
    /// no public IP ([`public_ip`]).
    pub(super) fn put_behind(&mut self, i: NodeIdx, kind: NatType) -> bool {
        let Some(ip) = public_ip(i) else {
            return false;
        };
        if self.nats.len() <= i as usize {
            self.nats.resize_with(i as usize + 1, || None);
        }
        self.nats[i as usize] = Some(Nat {
            kind,
            ip,
            next_port: 10_000,
            mappings: VecDeque::new(),
            port_mapped: false,
        });
        true
    }

    fn nat(&self, i: NodeIdx) -> Option<&Nat> {
        self.nats.get(i as usize)?.as_ref()
    }

    /// Node `i`'s NAT type, if it is behind one.
    pub(super) fn kind(&self, i: NodeIdx) -> Option<NatType> {
        self.nat(i).map(|n| n.kind)
    }

    /// Maps node `i`'s listen port on its NAT (UPnP): the public address
    /// anyone can now dial it at, if it is behind a NAT.
    pub(super) fn map_port(&mut self, i: NodeIdx) -> Option<SocketAddr> {
        let nat = self.nats.get_mut(i as usize)?.as_mut()?;
        nat.port_mapped = true;
        Some(SocketAddr::new(IpAddr::V4(nat.ip), LISTEN_PORT))
    }

    /// Whether node `i`'s listen port is mapped.
    pub(super) fn port_mapped(&self, i: NodeIdx) -> bool {
        self.nat(i).is_some_and(|n| n.port_mapped)
    }

    /// The address node `i`'s SYN to `dest` comes from as the far side
    /// sees it, creating the NAT mapping it needs: its listen address when
    /// it is not behind a NAT.
    pub(super) fn outbound(
        &mut self,
        i: NodeIdx,
        dest: SocketAddr,
        listen_port: bool,
    ) -> SocketAddr {
        let Some(nat) = self.nats.get_mut(i as usize).and_then(Option::as_mut) else {
            return addr_of(i);
        };
        let port = if listen_port && nat.kind != NatType::Symmetric {
            LISTEN_PORT
        } else {
            nat.fresh_port()
        };
        if nat.mappings.len() >= MAX_MAPPINGS {
            nat.mappings.pop_front();
            self.stats.mappings_dropped += 1;
        }
        nat.mappings.push_back(Mapping { port, dest });
        self.stats.mappings += 1;
        SocketAddr::new(IpAddr::V4(nat.ip), port)
    }

    /// Where a SYN from `src` to `dest` lands, given the simulator's
    /// addresses: `Ok(node)` when it reaches a node's listener, `Err(true)`
    /// when it vanishes (a NATed node's private address, or a NAT that
    /// drops it: the dial times out), `Err(false)` when `dest` is nobody's.
    pub(super) fn inbound(&mut self, src: SocketAddr, dest: SocketAddr) -> Result<NodeIdx, bool> {
        if let Some(j) = super::index_of(dest) {
            if self.nat(j).is_some() {
                self.stats.inbound_dropped += 1;
                return Err(true);
            }
            return Ok(j);
        }
        let Some(j) = nat_owner(dest.ip()) else {
            return Err(false);
        };
        match self.nat(j) {
            Some(nat) if nat.admits(dest.port(), src) => {
                self.stats.inbound_admitted += 1;
                Ok(j)
            }
            Some(_) => {
                self.stats.inbound_dropped += 1;
                Err(true)
            }
            None => Err(false),
        }
    }

    /// Node `j`, if `addr` is where its NAT would take a punch to (its
    /// public IP) or its own listen address.
    pub(super) fn owner(&self, addr: SocketAddr) -> Option<NodeIdx> {
        super::index_of(addr).or_else(|| nat_owner(addr.ip()).filter(|&j| self.nat(j).is_some()))
    }

    /// Takes the punch waiting from `from` toward `to` that crosses one
    /// whose SYN comes from `source` and goes to `dialled`: it dialled
    /// `source` and came from `dialled`.
    pub(super) fn take_crossing(
        &mut self,
        from: NodeIdx,
        to: NodeIdx,
        source: SocketAddr,
        dialled: SocketAddr,
        now: Instant,
    ) -> Option<Punch> {
        let k = self.pending.iter().position(|p| {
            p.node == from
                && p.to == to
                && p.dialled == source
                && p.source == dialled
                && p.until >= now
        })?;
        self.pending.remove(k)
    }

    /// Queues a punch to wait for the other side's; returns one that had
    /// to give way (the queue was full), to be failed now.
    pub(super) fn wait(&mut self, punch: Punch) -> Option<Punch> {
        let evicted = if self.pending.len() >= MAX_PENDING_PUNCHES {
            self.pending.pop_front()
        } else {
            None
        };
        self.pending.push_back(punch);
        evicted
    }

    /// Takes node `node`'s punch on `conn` if it is still waiting.
    pub(super) fn take_pending(&mut self, node: NodeIdx, conn: ConnId) -> Option<Punch> {
        let k = self
            .pending
            .iter()
            .position(|p| p.node == node && p.conn == conn)?;
        self.pending.remove(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(i: NodeIdx, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(public_ip(i).expect("ip")), port)
    }

    #[test]
    fn public_ips_round_trip_and_never_collide_with_listen_addresses() {
        for i in [0, 1, 255, 256, 65_535, 65_536, 4_194_302] {
            let ip = public_ip(i).expect("in range");
            assert_eq!(nat_owner(IpAddr::V4(ip)), Some(i));
            assert_eq!(
                super::super::index_of(SocketAddr::new(IpAddr::V4(ip), 7000)),
                None
            );
        }
        assert_eq!(public_ip(4_194_303), None);
        assert_eq!(nat_owner(addr_of(3).ip()), None);
    }

    #[test]
    fn filters_follow_the_nat_type() {
        let mut nats = NatState::default();
        nats.put_behind(0, NatType::FullCone);
        nats.put_behind(1, NatType::PortRestricted);
        nats.put_behind(2, NatType::Symmetric);
        let server = addr_of(9);
        let stranger = SocketAddr::new(addr_of(8).ip(), 40_000);
        for i in 0..3 {
            let seen = nats.outbound(i, server, false);
            assert_eq!(seen.ip(), IpAddr::V4(public_ip(i).expect("ip")));
            assert_ne!(seen.port(), 7000);
            // The server itself answers through the mapping.
            assert_eq!(nats.inbound(server, seen), Ok(i));
            // A stranger gets in only through a full cone.
            let stranger_in = nats.inbound(stranger, seen);
            assert_eq!(stranger_in.is_ok(), i == 0, "{i}: {stranger_in:?}");
            // The private address is never reachable.
            assert_eq!(nats.inbound(stranger, addr_of(i)), Err(true));
        }
        // The listen port, unmapped, admits nobody; mapped, everybody.
        assert_eq!(nats.inbound(stranger, public(1, 7000)), Err(true));
        assert_eq!(nats.map_port(1), Some(public(1, 7000)));
        assert_eq!(nats.inbound(stranger, public(1, 7000)), Ok(1));
        assert_eq!(nats.map_port(5), None);
        // Not a NAT of this run, and not an address of the simulator.
        assert_eq!(nats.inbound(stranger, public(7, 7000)), Err(false));
    }

    #[test]
    fn an_address_restricted_nat_admits_any_port_of_a_host_it_sent_to() {
        let mut nats = NatState::default();
        nats.put_behind(0, NatType::AddressRestricted);
        let server = addr_of(9);
        let seen = nats.outbound(0, server, false);
        // The host it dialled, from its listen port or any other.
        assert_eq!(nats.inbound(server, seen), Ok(0));
        let other_port = SocketAddr::new(server.ip(), 40_000);
        assert_eq!(nats.inbound(other_port, seen), Ok(0));
        // Another host, whatever its port, is dropped.
        let stranger = SocketAddr::new(addr_of(8).ip(), server.port());
        assert_eq!(nats.inbound(stranger, seen), Err(true));
        // Only on the mapped port: another port of the NAT admits nobody.
        let elsewhere = SocketAddr::new(seen.ip(), seen.port() + 1);
        assert_eq!(nats.inbound(server, elsewhere), Err(true));
        // It keeps the listen port for a punch, as every cone NAT does.
        assert_eq!(nats.outbound(0, addr_of(5), true).port(), 7000);
        assert_eq!(nats.outbound(0, addr_of(6), true).port(), 7000);
        assert_eq!(
            nats.inbound(SocketAddr::new(addr_of(6).ip(), 51_000), public(0, 7000)),
            Ok(0)
        );
    }

    #[test]
    fn cone_nats_keep_the_listen_port_and_symmetric_ones_do_not() {
        let mut nats = NatState::default();
        nats.put_behind(0, NatType::PortRestricted);
        nats.put_behind(1, NatType::Symmetric);
        let a = nats.outbound(0, addr_of(5), true);
        let b = nats.outbound(0, addr_of(6), true);
        assert_eq!((a.port(), b.port()), (7000, 7000));
        let c = nats.outbound(1, addr_of(5), true);
        let d = nats.outbound(1, addr_of(6), true);
        assert_ne!(c.port(), d.port());
        assert_ne!(c.port(), 7000);
    }

    #[test]
    fn a_nat_keeps_at_most_its_cap_of_mappings() {
        let mut nats = NatState::default();
        nats.put_behind(0, NatType::FullCone);
        let first = nats.outbound(0, addr_of(1), false);
        for _ in 0..MAX_MAPPINGS {
            nats.outbound(0, addr_of(1), false);
        }
        assert_eq!(nats.stats.mappings_dropped, 1);
        assert_eq!(nats.inbound(addr_of(1), first), Err(true));
    }
}
