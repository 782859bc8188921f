//! Mapping through the router's UPnP IGD service, with `igd-next`'s
//! blocking client (no async runtime in this program): the listen port is
//! forwarded from the same port of the router's external address.

use std::net::SocketAddr;
use std::time::Duration;

use igd_next::{PortMappingProtocol, SearchOptions};

use super::{Gateway, Mapped, local_ip_towards};

/// How long one gateway search waits for an answer.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Gateway searches before giving up (a router may answer late: busy, or
/// starting).
const SEARCHES: u32 = 3;

/// A UPnP IGD gateway found by SSDP search.
pub(crate) struct UpnpGateway {
    gateway: igd_next::Gateway,
}

impl UpnpGateway {
    /// Finds the gateway and maps `port` for `lifetime` seconds; gives up
    /// between searches once `give_up` says so.
    pub(crate) fn map(
        port: u16,
        lifetime: u32,
        give_up: impl Fn() -> bool,
    ) -> Result<(UpnpGateway, Mapped), String> {
        let search = || {
            let mut options = SearchOptions::default();
            options.timeout = Some(SEARCH_TIMEOUT);
            igd_next::search_gateway(options)
        };
        let mut found = search();
        for _ in 1..SEARCHES {
            if found.is_ok() || give_up() {
                break;
            }
            found = search();
        }
        let gateway = found.map_err(|e| format!("no UPnP gateway found: {e}"))?;
        let mut gateway = UpnpGateway { gateway };
        let mapped = gateway.refresh(port, lifetime)?;
        Ok((gateway, mapped))
    }
}

impl Gateway for UpnpGateway {
    fn describe(&self) -> String {
        format!("the UPnP gateway at {}", self.gateway.addr)
    }

    /// Asks the gateway to forward `port` to this host's address on the
    /// gateway's network (the one this host reaches it from); UPnP
    /// renews by adding the same mapping again.
    fn refresh(&mut self, port: u16, lifetime: u32) -> Result<Mapped, String> {
        let external_ip = self
            .gateway
            .get_external_ip()
            .map_err(|e| format!("the UPnP gateway gave no external address: {e}"))?;
        let local_ip = local_ip_towards(self.gateway.addr).map_err(|e| e.to_string())?;
        let local = SocketAddr::new(local_ip, port);
        self.gateway
            .add_port(PortMappingProtocol::TCP, port, local, lifetime, "ringmesh")
            .map_err(|e| format!("the UPnP gateway refused a port mapping: {e}"))?;
        Ok(Mapped {
            external: SocketAddr::new(external_ip, port),
            local,
            lifetime,
        })
    }

    fn remove(&mut self, port: u16) -> Result<(), String> {
        self.gateway
            .remove_port(PortMappingProtocol::TCP, port)
            .map_err(|e| e.to_string())
    }
}
