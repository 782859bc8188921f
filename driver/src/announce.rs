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
//!    `::`): **nothing is announced**, with a warning in the log. An
//!    unspecified address names no host: a peer that dialled `0.0.0.0`
//!    would reach *itself* (Linux treats it as the local host), and which
//!    of this machine's interfaces a given peer can reach is not knowable
//!    here. The node still dials out and accepts connections; peers just
//!    cannot redial it or hand it on. A ring member must be diallable, so
//!    with the ring on this is refused
//!    ([`AdapterConfigError::NothingToAnnounce`](crate::AdapterConfigError::NothingToAnnounce)):
//!    set `listen_addrs` (the node program's `--announce`).

use std::net::{IpAddr, SocketAddr};

use tracing::warn;

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

/// The addresses a node announces, given the address its listener is bound
/// to (`bound`, as the socket reports it) and the configured
/// `listen_addrs`. See the module docs above for the policy; in short:
/// the configured ones if any (each must be diallable), else `bound` if it
/// is diallable, else none.
///
/// The result is empty only in the third case; the caller decides whether
/// a node may run without an address (a ring member may not).
pub fn announced_addrs(
    bound: SocketAddr,
    configured: &[SocketAddr],
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
    warn!(
        %bound,
        "listening on an address no peer can dial: announcing none, so peers cannot redial \
         this node; set listen_addrs to the address peers should dial"
    );
    Ok(Vec::new())
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

    #[test]
    fn an_unspecified_bound_address_announces_nothing() {
        for bound in ["0.0.0.0:4000", "[::]:4000", "[::ffff:0.0.0.0]:4000"] {
            assert_eq!(announced_addrs(addr(bound), &[]), Ok(vec![]), "{bound}");
        }
    }

    #[test]
    fn port_zero_is_never_announced() {
        // An adapter passes the port the socket got; were it to pass the
        // asked-for 0, nothing would be announced rather than port 0.
        assert_eq!(announced_addrs(addr("127.0.0.1:0"), &[]), Ok(vec![]));
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
