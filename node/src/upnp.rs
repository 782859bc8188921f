//! Port mapping through the router's UPnP IGD service (`--upnp`, issue
//! 19): the node's listen port is forwarded from the same port of the
//! router's external address, which the node then announces
//! (`PeersCommand::Announce`). The mapping is renewed at half its lease
//! and removed when the program exits. `igd-next`'s blocking client runs
//! on a thread of its own, so the node's loop never waits for the router.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use igd_next::{Gateway, PortMappingProtocol, SearchOptions};
use ringmesh::PeersCommand;
use ringmesh_mio::Handle;
use tracing::{info, warn};

use crate::display::say;

/// The lease asked for; the mapping is renewed at half of it.
const LEASE_SECS: u32 = 3600;

/// How long one gateway search waits for an answer.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Gateway searches before the program gives up mapping a port.
const SEARCHES: u32 = 3;

/// The mapping thread; dropping it removes the mapping (if one was made)
/// and waits for the thread.
pub(crate) struct PortMapping {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for PortMapping {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts mapping `listen_port` on the router and announcing the mapped
/// address through `handle`.
pub(crate) fn start(handle: Handle, listen_port: u16) -> PortMapping {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ringmesh-upnp".into())
        .spawn(move || {
            let Some((gateway, external)) = map(listen_port) else {
                return;
            };
            if let Err(error) = handle.command(PeersCommand::Announce { addr: external }) {
                warn!(%error, "cannot announce the mapped address");
            }
            let renew_every = Duration::from_secs(u64::from(LEASE_SECS / 2));
            // Until the program exits (the sender is dropped).
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(renew_every) {
                if let Err(error) = add(&gateway, listen_port) {
                    warn!(%error, "renewing the port mapping failed");
                }
            }
            match gateway.remove_port(PortMappingProtocol::TCP, listen_port) {
                Ok(()) => info!(%external, "port mapping removed"),
                Err(error) => warn!(%error, "removing the port mapping failed"),
            }
        })
        .ok();
    PortMapping {
        stop: Some(stop),
        thread,
    }
}

/// Finds the gateway, maps the port; the gateway and the external address.
fn map(port: u16) -> Option<(Gateway, SocketAddr)> {
    // A router may answer late (busy, or starting): a few searches.
    let search = || {
        let mut options = SearchOptions::default();
        options.timeout = Some(SEARCH_TIMEOUT);
        igd_next::search_gateway(options)
    };
    let mut found = search();
    for _ in 1..SEARCHES {
        if found.is_ok() {
            break;
        }
        found = search();
    }
    let gateway = match found {
        Ok(gateway) => gateway,
        Err(error) => {
            say(&format!("no UPnP gateway found: {error}"));
            return None;
        }
    };
    let external_ip = match gateway.get_external_ip() {
        Ok(ip) => ip,
        Err(error) => {
            say(&format!(
                "the UPnP gateway gave no external address: {error}"
            ));
            return None;
        }
    };
    let local = match add(&gateway, port) {
        Ok(local) => local,
        Err(error) => {
            say(&format!("the UPnP gateway refused a port mapping: {error}"));
            return None;
        }
    };
    let external = SocketAddr::new(external_ip, port);
    say(&format!(
        "port mapping: {external} -> {local} through the UPnP gateway at {} ({LEASE_SECS} s lease)",
        gateway.addr
    ));
    Some((gateway, external))
}

/// Asks `gateway` to forward `port` to this host's address on the
/// gateway's network (the one this host reaches it from).
fn add(gateway: &Gateway, port: u16) -> Result<SocketAddr, String> {
    let local_ip = local_ip_towards(gateway.addr).map_err(|e| e.to_string())?;
    let local = SocketAddr::new(local_ip, port);
    gateway
        .add_port(
            PortMappingProtocol::TCP,
            port,
            local,
            LEASE_SECS,
            "ringmesh",
        )
        .map_err(|e| e.to_string())?;
    Ok(local)
}

/// The address this host sends from to reach `to` (a UDP socket's
/// connect only picks the route: nothing is sent).
fn local_ip_towards(to: SocketAddr) -> std::io::Result<IpAddr> {
    let socket = UdpSocket::bind(SocketAddr::new(
        match to {
            SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        },
        0,
    ))?;
    socket.connect(to)?;
    Ok(socket.local_addr()?.ip())
}
