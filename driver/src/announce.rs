//! The listen-address policy: what a node announces in its `Hello` (and
//! so what peers store in their peer caches, pass on in peer exchange and
//! put in ring pointers) for the address its listener is bound to.
//!
//! The rule is to announce only what a peer can dial:
//!
//! 1. **`listen_addrs` configured**: announced exactly as given, and each
//!    must be diallable ([`is_dialable`]); otherwise the configuration is
//!    refused. The bound address is not added: behind NAT or a proxy it is
//!    not what peers dial.
//! 2. **Nothing configured, bound to a diallable address**: the bound
//!    address is announced, **with the port the system picked** when port 0
//!    was asked for (port 0 is never announced).
//! 3. **Nothing configured, bound to an unspecified address** (`0.0.0.0`,
//!    `::`): the unspecified address itself is **never** announced (it
//!    names no host: a peer that dialled `0.0.0.0` would reach *itself*).
//!    Instead the node announces **this machine's interface addresses**
//!    with the bound port ([`interface_ips`], [`pick_interface_addrs`]):
//!    of the listener's family (`::` also takes IPv4, as [`listen`](crate::listen)
//!    binds it dual-stack), without IPv6 link-local ones (they need a
//!    scope no peer shares), public before private, at most
//!    [`MAX_INTERFACE_ADDRS`] (the rest of `Hello`'s eight are left for
//!    the addresses peers observe). Loopback addresses are announced only
//!    when the machine has no other (a network namespace with only `lo`,
//!    where every peer is local). Only a machine with no usable address at
//!    all announces nothing, with a warning in the log; the node still
//!    dials out and accepts connections, and a ring member, which must be
//!    diallable, is refused
//!    ([`AdapterConfigError::NothingToAnnounce`](crate::AdapterConfigError::NothingToAnnounce)):
//!    set `listen_addrs` (the node program's `--announce`).
//!
//! The interface addresses are read once, when the node starts; an
//! address a NAT gives the node is not among them (a peer behind it sees
//! another): configure it, or let the node learn it from its peers.

use std::net::{IpAddr, SocketAddr};

use if_addrs::IfOperStatus;
use ringmesh::wire::MAX_LISTEN_ADDRS;
use tracing::{info, warn};

use crate::AdapterConfigError;

/// Whether a peer could dial `addr`: its port is not 0 and its IP names
/// one host. Unspecified (`0.0.0.0`, `::`, also IPv4-mapped), multicast
/// and the IPv4 broadcast address do not.
pub fn is_dialable(addr: SocketAddr) -> bool {
    if addr.port() == 0 {
        return false;
    }
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()),
        IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
    }
}

/// How many interface addresses a node bound to an unspecified address
/// announces at most: half of `Hello`'s [`MAX_LISTEN_ADDRS`], so that the
/// addresses its peers observe still fit beside them.
pub const MAX_INTERFACE_ADDRS: usize = MAX_LISTEN_ADDRS / 2;

/// The IP addresses of this machine's network interfaces that are not
/// down, as the system lists them (through the `if-addrs` crate); empty
/// if the system cannot say (logged).
pub fn interface_ips() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .into_iter()
            .filter(|interface| {
                !matches!(
                    interface.oper_status,
                    IfOperStatus::Down | IfOperStatus::NotPresent | IfOperStatus::LowerLayerDown
                )
            })
            .map(|interface| interface.ip())
            .collect(),
        Err(error) => {
            warn!(%error, "cannot list this machine's interface addresses");
            Vec::new()
        }
    }
}

/// Which of `ips` (a machine's interface addresses) a node whose listener
/// is bound to the unspecified address `bound` announces, with `bound`'s
/// port: see rule 3 of the module docs. Sorted (public, then private and
/// unique-local, then link-local IPv4, then loopback; IPv4 before IPv6 in
/// each), without duplicates, at most [`MAX_INTERFACE_ADDRS`].
pub fn pick_interface_addrs(bound: SocketAddr, ips: &[IpAddr]) -> Vec<SocketAddr> {
    let takes_v4 = true; // `0.0.0.0` and a dual-stack `::` alike
    let takes_v6 = bound.is_ipv6();
    let mut usable: Vec<(u8, IpAddr)> = ips
        .iter()
        .map(|ip| ip.to_canonical())
        .filter(|ip| match ip {
            IpAddr::V4(_) => takes_v4,
            IpAddr::V6(v6) => takes_v6 && !v6.is_unicast_link_local(),
        })
        .filter(|ip| is_dialable(SocketAddr::new(*ip, bound.port())))
        .map(|ip| (rank(ip), ip))
        .collect();
    usable.sort_unstable_by_key(|&(rank, ip)| (rank, ip.is_ipv6(), ip));
    usable.dedup();
    // Loopback only when nothing else is there.
    if usable.iter().any(|&(_, ip)| !ip.is_loopback()) {
        usable.retain(|&(_, ip)| !ip.is_loopback());
    }
    usable
        .into_iter()
        .take(MAX_INTERFACE_ADDRS)
        .map(|(_, ip)| SocketAddr::new(ip, bound.port()))
        .collect()
}

/// Lower is announced first: who can reach it.
fn rank(ip: IpAddr) -> u8 {
    match ip {
        _ if ip.is_loopback() => 3,
        IpAddr::V4(v4) if v4.is_link_local() => 2,
        // 100.64.0.0/10: carrier-grade NAT's shared space, private too.
        IpAddr::V4(v4)
            if v4.is_private() || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64) =>
        {
            1
        }
        IpAddr::V6(v6) if v6.is_unique_local() => 1,
        _ => 0,
    }
}

/// The addresses a node announces, given the address its listener is bound
/// to (`bound`, as the socket reports it) and the configured
/// `listen_addrs`. See the module docs above for the policy; in short:
/// the configured ones if any (each must be diallable), else `bound` if it
/// is diallable, else this machine's interface addresses with `bound`'s
/// port ([`interface_ips`] read only then).
///
/// The result is empty only when bound to an unspecified address on a
/// machine with no usable interface address; the caller decides whether
/// a node may run without an address (a ring member may not).
pub fn announced_addrs(
    bound: SocketAddr,
    configured: &[SocketAddr],
) -> Result<Vec<SocketAddr>, AdapterConfigError> {
    announced_addrs_among(bound, configured, interface_ips)
}

/// [`announced_addrs`] with the machine's interface addresses from
/// `interfaces` (called only when `bound` is not diallable).
pub fn announced_addrs_among(
    bound: SocketAddr,
    configured: &[SocketAddr],
    interfaces: impl FnOnce() -> Vec<IpAddr>,
) -> Result<Vec<SocketAddr>, AdapterConfigError> {
    if !configured.is_empty() {
        if let Some(&addr) = configured.iter().find(|addr| !is_dialable(**addr)) {
            return Err(AdapterConfigError::UndialableListenAddr { addr });
        }
        return Ok(configured.to_vec());
    }
    if is_dialable(bound) {
        return Ok(vec![bound]);
    }
    let picked = if bound.port() == 0 {
        Vec::new()
    } else {
        pick_interface_addrs(bound, &interfaces())
    };
    if picked.is_empty() {
        warn!(
            %bound,
            "listening on an address no peer can dial, on a machine with no usable interface \
             address: announcing none, so peers cannot redial this node; set listen_addrs to \
             the address peers should dial"
        );
    } else {
        info!(%bound, announced = ?picked, "listening on every interface: announcing their addresses");
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn a_specific_bound_address_is_announced_with_its_real_port() {
        for bound in ["127.0.0.1:40001", "192.0.2.1:4000", "[::1]:40002"] {
            assert_eq!(announced_addrs(addr(bound), &[]), Ok(vec![addr(bound)]));
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip address")
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| ip(s)).collect()
    }

    #[test]
    fn an_unspecified_bound_address_announces_the_interface_addresses_instead() {
        let machine = ips(&[
            "127.0.0.1",
            "192.168.1.20",
            "203.0.113.5",
            "::1",
            "2001:db8::5",
        ]);
        let v4 = announced_addrs_among(addr("0.0.0.0:4000"), &[], || machine.clone());
        assert_eq!(
            v4,
            Ok(vec![addr("203.0.113.5:4000"), addr("192.168.1.20:4000")]),
            "IPv4 only, public first, loopback left out"
        );
        let dual = announced_addrs_among(addr("[::]:4000"), &[], || machine.clone());
        assert_eq!(
            dual,
            Ok(vec![
                addr("203.0.113.5:4000"),
                addr("[2001:db8::5]:4000"),
                addr("192.168.1.20:4000"),
            ]),
            "a dual-stack listener announces both families"
        );
        for announced in [v4, dual] {
            assert!(announced.expect("addrs").iter().all(|a| is_dialable(*a)));
        }
    }

    #[test]
    fn loopback_is_announced_only_when_the_machine_has_nothing_else() {
        let lo_only = ips(&["127.0.0.1", "::1"]);
        assert_eq!(
            announced_addrs_among(addr("0.0.0.0:4000"), &[], || lo_only.clone()),
            Ok(vec![addr("127.0.0.1:4000")])
        );
        assert_eq!(
            announced_addrs_among(addr("[::]:4000"), &[], || lo_only),
            Ok(vec![addr("127.0.0.1:4000"), addr("[::1]:4000")])
        );
    }

    #[test]
    fn unusable_interface_addresses_are_never_announced() {
        // Link-local IPv6 needs a scope no peer shares; unspecified and
        // multicast name no host; duplicates collapse.
        let odd = ips(&[
            "fe80::1",
            "::",
            "0.0.0.0",
            "224.0.0.1",
            "10.0.0.1",
            "10.0.0.1",
        ]);
        assert_eq!(
            announced_addrs_among(addr("[::]:4000"), &[], || odd),
            Ok(vec![addr("10.0.0.1:4000")])
        );
        // With nothing usable, nothing is announced (and no unspecified
        // address ever is).
        for bound in ["0.0.0.0:4000", "[::]:4000", "[::ffff:0.0.0.0]:4000"] {
            assert_eq!(
                announced_addrs_among(addr(bound), &[], || ips(&["fe80::1"])),
                Ok(vec![]),
                "{bound}"
            );
        }
    }

    #[test]
    fn at_most_half_of_hello_s_addresses_come_from_interfaces() {
        let many: Vec<IpAddr> = (1..=20).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let announced = pick_interface_addrs(addr("0.0.0.0:4000"), &many);
        assert_eq!(announced.len(), MAX_INTERFACE_ADDRS);
        assert_eq!(announced[0], addr("10.0.0.1:4000"));
    }

    #[test]
    fn the_interfaces_are_not_read_when_the_bound_address_is_dialable() {
        let announced = announced_addrs_among(addr("127.0.0.1:4000"), &[], || {
            panic!("interfaces read for a specific bind")
        });
        assert_eq!(announced, Ok(vec![addr("127.0.0.1:4000")]));
    }

    #[test]
    fn this_machine_lists_at_least_its_loopback_address() {
        // Every machine that runs the tests has `lo`; a bind to 0.0.0.0
        // therefore announces something, and never 0.0.0.0.
        let announced = announced_addrs(addr("0.0.0.0:4000"), &[]).expect("addrs");
        assert!(!announced.is_empty());
        assert!(
            announced
                .iter()
                .all(|a| is_dialable(*a) && a.port() == 4000)
        );
    }

    #[test]
    fn port_zero_is_never_announced() {
        // An adapter passes the port the socket got; were it to pass the
        // asked-for 0, nothing would be announced rather than port 0.
        assert_eq!(announced_addrs(addr("127.0.0.1:0"), &[]), Ok(vec![]));
        assert_eq!(
            announced_addrs_among(addr("0.0.0.0:0"), &[], || ips(&["10.0.0.1"])),
            Ok(vec![])
        );
        assert_eq!(
            announced_addrs(addr("127.0.0.1:4000"), &[addr("127.0.0.1:0")]),
            Err(AdapterConfigError::UndialableListenAddr {
                addr: addr("127.0.0.1:0")
            })
        );
    }

    #[test]
    fn configured_addresses_win_over_the_bound_one_and_are_kept_in_order() {
        let configured = [addr("198.51.100.9:4000"), addr("[2001:db8::1]:4000")];
        assert_eq!(
            announced_addrs(addr("0.0.0.0:4000"), &configured),
            Ok(configured.to_vec())
        );
        assert_eq!(
            announced_addrs(addr("127.0.0.1:4000"), &configured),
            Ok(configured.to_vec())
        );
    }

    #[test]
    fn a_configured_address_no_peer_can_dial_is_refused() {
        for bad in [
            "0.0.0.0:4000",
            "[::]:4000",
            "[::ffff:0.0.0.0]:4000",
            "224.0.0.1:4000",
            "[ff02::1]:4000",
            "255.255.255.255:4000",
        ] {
            let configured = [addr("127.0.0.1:4000"), addr(bad)];
            assert_eq!(
                announced_addrs(addr("127.0.0.1:4000"), &configured),
                Err(AdapterConfigError::UndialableListenAddr { addr: addr(bad) }),
                "{bad}"
            );
        }
    }
}
