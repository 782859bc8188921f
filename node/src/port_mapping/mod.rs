//! Port mapping (`--port-mapping`, issue 19): the node's listen port is
//! forwarded by the router, whose external address and port the node then
//! announces (`PeersCommand::Announce`). Three protocols: PCP (RFC 6887),
//! with NAT-PMP (RFC 6886) for gateways that answer PCP with
//! `UNSUPP_VERSION` ([`pcp`], on the wire format of [`wire`]), and UPnP
//! IGD ([`upnp`], through `igd-next`). `auto` tries PCP/NAT-PMP at the
//! default route's gateway, then UPnP. One thread per node makes the
//! mapping, renews it at half the lifetime the gateway granted, and
//! removes it when the program exits, so the node's loop never waits for
//! the router. Every step is a console line: the mapping made (external
//! address, local address, protocol, lifetime), renewed, failed, removed.

mod pcp;
mod route;
mod upnp;
mod wire;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use clap::ValueEnum;
use ringmesh::PeersCommand;
use ringmesh_mio::Handle;
use tracing::warn;

use crate::display::say;

/// The lifetime asked for (RFC 6886 §3.3 recommends two hours; UPnP
/// routers hold one hour well). Renewed at half what is granted.
const LIFETIME_SECS: u32 = 3600;

/// The shortest renewal interval, whatever a gateway grants (a gateway
/// granting seconds would otherwise have the thread spin).
const MIN_RENEW: Duration = Duration::from_secs(30);

/// How soon a failed renewal is tried again.
const RETRY_RENEW: Duration = Duration::from_secs(60);

/// Which protocols ask the router for a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Method {
    /// PCP, then NAT-PMP, at the default gateway; then UPnP IGD.
    Auto,
    /// UPnP IGD only (what `--upnp` asks).
    Upnp,
    /// PCP at the default gateway, NAT-PMP if it answers PCP with
    /// UNSUPP_VERSION.
    #[value(alias = "pcp")]
    Natpmp,
    /// No port mapping (the default).
    Off,
}

/// A mapping a gateway granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapped {
    /// Where peers reach this node.
    external: SocketAddr,
    /// Where the gateway forwards to.
    local: SocketAddr,
    /// Seconds granted.
    lifetime: u32,
}

/// A gateway holding this node's mapping, in whichever protocol.
trait Gateway: Send {
    /// The protocol and the gateway's address, for the operator.
    fn describe(&self) -> String;
    /// Asks for (or renews) the mapping of `port` for `lifetime` seconds.
    fn refresh(&mut self, port: u16, lifetime: u32) -> Result<Mapped, String>;
    /// Deletes the mapping of `port`.
    fn remove(&mut self, port: u16) -> Result<(), String>;
}

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

/// Starts mapping `listen_port` by `method` and announcing the mapped
/// address through `handle`; `None` for [`Method::Off`].
pub(crate) fn start(method: Method, handle: Handle, listen_port: u16) -> Option<PortMapping> {
    if method == Method::Off {
        return None;
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ringmesh-port-mapping".into())
        .spawn(move || {
            if let Some((mut gateway, mapped)) = map(method, listen_port, &stopped) {
                let announce = |addr| {
                    if let Err(error) = handle.command(PeersCommand::Announce { addr }) {
                        warn!(%error, "cannot announce the mapped address");
                    }
                };
                hold(&mut *gateway, mapped, listen_port, &stopped, announce, PACE);
            }
        })
        .ok();
    Some(PortMapping {
        stop: Some(stop),
        thread,
    })
}

/// When the mapping thread renews.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// The shortest wait between renewals.
    min_renew: Duration,
    /// The wait after a failed renewal.
    retry: Duration,
}

const PACE: Pace = Pace {
    min_renew: MIN_RENEW,
    retry: RETRY_RENEW,
};

impl Pace {
    /// Half the granted lifetime, at least `min_renew`.
    fn renew_after(self, lifetime: u32) -> Duration {
        Duration::from_secs(u64::from(lifetime / 2)).max(self.min_renew)
    }
}

/// Announces `mapped`, renews it at half its lifetime (announcing a
/// changed external address) until the program exits (`stopped`'s
/// sender is dropped), then removes it; each step a console line.
fn hold(
    gateway: &mut dyn Gateway,
    mut mapped: Mapped,
    port: u16,
    stopped: &Receiver<()>,
    announce: impl Fn(SocketAddr),
    pace: Pace,
) {
    say(&format!(
        "port mapping: {} -> {} through {} ({} s lease)",
        mapped.external,
        mapped.local,
        gateway.describe(),
        mapped.lifetime
    ));
    announce(mapped.external);
    let mut wait = pace.renew_after(mapped.lifetime);
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
        match gateway.refresh(port, LIFETIME_SECS) {
            Ok(renewed) => {
                say(&format!(
                    "port mapping renewed: {} through {} ({} s lease)",
                    renewed.external,
                    gateway.describe(),
                    renewed.lifetime
                ));
                if renewed.external != mapped.external {
                    announce(renewed.external);
                }
                wait = pace.renew_after(renewed.lifetime);
                mapped = renewed;
            }
            Err(error) => {
                say(&format!(
                    "renewing the port mapping {} failed: {error}",
                    mapped.external
                ));
                wait = pace.retry;
            }
        }
    }
    match gateway.remove(port) {
        Ok(()) => say(&format!(
            "port mapping {} removed from {}",
            mapped.external,
            gateway.describe()
        )),
        Err(error) => say(&format!(
            "removing the port mapping {} failed: {error}",
            mapped.external
        )),
    }
}

/// Whether the program is exiting (the sender was dropped): the
/// mapping thread gives up between attempts, so that an exit waits for
/// one attempt at most (3.75 s for PCP/NAT-PMP, 3 s for a UPnP search).
fn stopping(stopped: &Receiver<()>) -> bool {
    !matches!(stopped.try_recv(), Err(TryRecvError::Empty))
}

/// Makes the mapping by `method`; each failure is a console line.
fn map(method: Method, port: u16, stopped: &Receiver<()>) -> Option<(Box<dyn Gateway>, Mapped)> {
    if matches!(method, Method::Auto | Method::Natpmp) {
        match route::default_gateway() {
            Ok(ip) => {
                let server = SocketAddr::new(IpAddr::V4(ip), wire::SERVER_PORT);
                match pcp::PcpGateway::map(server, port, LIFETIME_SECS) {
                    Ok((gateway, mapped)) => return Some((Box::new(gateway), mapped)),
                    Err(error) => say(&format!("no PCP or NAT-PMP port mapping: {error}")),
                }
            }
            Err(error) => say(&format!("no PCP or NAT-PMP port mapping: {error}")),
        }
    }
    if matches!(method, Method::Auto | Method::Upnp) && !stopping(stopped) {
        match upnp::UpnpGateway::map(port, LIFETIME_SECS, || stopping(stopped)) {
            Ok((gateway, mapped)) => return Some((Box::new(gateway), mapped)),
            Err(error) => say(&format!("no UPnP port mapping: {error}")),
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;

    #[test]
    fn renewals_come_at_half_the_granted_lifetime_but_not_too_often() {
        assert_eq!(PACE.renew_after(3600), Duration::from_secs(1800));
        assert_eq!(PACE.renew_after(7), MIN_RENEW);
        assert_eq!(
            PACE.renew_after(u32::MAX),
            Duration::from_secs(u64::from(u32::MAX / 2))
        );
    }

    /// A gateway answering renewals from a script, recording the calls.
    struct Scripted {
        answers: Vec<Result<Mapped, String>>,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Gateway for Scripted {
        fn describe(&self) -> String {
            "a scripted gateway".into()
        }

        fn refresh(&mut self, port: u16, lifetime: u32) -> Result<Mapped, String> {
            self.calls
                .lock()
                .expect("calls")
                .push(format!("refresh {port} {lifetime}"));
            if self.answers.is_empty() {
                return Err("script over".into());
            }
            self.answers.remove(0)
        }

        fn remove(&mut self, port: u16) -> Result<(), String> {
            self.calls
                .lock()
                .expect("calls")
                .push(format!("remove {port}"));
            Ok(())
        }
    }

    fn mapped(external: &str) -> Mapped {
        Mapped {
            external: external.parse().expect("addr"),
            local: "10.1.0.2:4001".parse().expect("addr"),
            lifetime: 0,
        }
    }

    #[test]
    fn a_mapping_is_renewed_reannounced_when_it_moves_retried_and_removed_at_exit() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut gateway = Scripted {
            // Renewed as it was, failed, renewed at another port.
            answers: vec![
                Ok(mapped("11.0.0.2:4001")),
                Err("no answer".into()),
                Ok(mapped("11.0.0.2:5001")),
            ],
            calls: Arc::clone(&calls),
        };
        let announced = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = mpsc::channel::<()>();
        let pace = Pace {
            min_renew: Duration::from_millis(5),
            retry: Duration::from_millis(5),
        };
        let record = Arc::clone(&announced);
        let thread = std::thread::spawn(move || {
            hold(
                &mut gateway,
                mapped("11.0.0.2:4001"),
                4001,
                &stopped,
                |addr| record.lock().expect("announced").push(addr),
                pace,
            );
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.lock().expect("calls").len() < 4 {
            assert!(Instant::now() < deadline, "{:?}", calls.lock());
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(stop);
        thread.join().expect("the mapping thread");
        let calls = calls.lock().expect("calls").clone();
        let renewals = calls.len() - 1;
        assert!(renewals >= 4, "{calls:?}");
        assert!(
            calls[..renewals].iter().all(|c| c == "refresh 4001 3600"),
            "{calls:?}"
        );
        assert_eq!(calls[renewals], "remove 4001", "removed last, once");
        assert_eq!(
            *announced.lock().expect("announced"),
            [
                "11.0.0.2:4001".parse::<SocketAddr>().expect("addr"),
                "11.0.0.2:5001".parse().expect("addr")
            ],
            "announced when made and when it moved, not at every renewal"
        );
    }
}
