//! The listener both adapters accept on: a deep accept backlog, and how
//! many connections an adapter takes per turn.

use std::io;
use std::net::{SocketAddr, TcpListener};

/// The listen backlog asked of the kernel (Linux caps it at
/// `net.core.somaxconn`, 4096 by default since 5.4). The usual 128 (what
/// `std`, mio and async-io bind with) lets a flood of a few hundred
/// connecting strangers fill the accept queue, and then the kernel drops
/// every newcomer's SYN, honest or not, for a second at a time; the node's
/// admission control can only judge connections it accepts.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Connections an adapter accepts before it turns to its other work (the
/// mio adapter: per turn of its loop; the async adapter: per poll of its
/// acceptor, which then yields to the connections and the node loop). A
/// flood of connecting strangers, reopening as fast as the node closes
/// them, must not keep an adapter accepting, away from its peers' sockets
/// and its timers; the rest wait in the kernel's backlog.
pub const ACCEPTS_PER_TURN: usize = 64;

/// A non-blocking TCP listener bound to `addr` with [`LISTEN_BACKLOG`],
/// built with `socket2` (the standard library cannot choose the backlog).
/// Like `std`'s own bind it sets `SO_REUSEADDR` (not on Windows, where
/// that option means something else), so that a restarted node can take
/// its port back at once; and `SO_REUSEPORT` (Unix), so that a hole
/// punch can dial from the listen port ([`dial_from`]). `SO_REUSEPORT`
/// alone would also let a second process of the same user listen on a
/// port a node already holds and take half its connections, silently; so
/// a port another socket listens on is refused first, with `AddrInUse`,
/// as a plain bind would refuse it. An IPv6 listener is dual-stack (it
/// takes IPv4 connections too). Each adapter hands it to its own listener
/// type (`mio::net::TcpListener::from_std`, `async_io::Async::new`).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if addr.port() != 0 {
        // A bind without SO_REUSEPORT fails while any socket listens on
        // the port (SO_REUSEADDR still lets it past a restarted node's
        // TIME_WAIT connections); the probe is closed before the real bind.
        bare_socket(addr)?.bind(&addr.into())?;
    }
    let socket = bare_socket(addr)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// An unbound TCP socket for `addr`, with `SO_REUSEADDR` (not on
/// Windows) and, for IPv6, dual-stack ([`listen`]).
fn bare_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `[::]` takes IPv4 too, whatever the system's default
        // (`net.ipv6.bindv6only`): the listen-address policy announces
        // the IPv4 interface addresses of such a listener.
        socket.set_only_v6(false)?;
    }
    Ok(socket)
}

/// A non-blocking TCP connection to `remote` begun from `local` (the
/// listener's address: same port), for `Output::DialFromListenPort`
/// (a hole punch, `spec/relay.md` §7): `SO_REUSEADDR` and `SO_REUSEPORT`
/// let it share the listener's port, so the NAT maps it to the port the
/// peer dials, and the two SYNs cross (a TCP simultaneous open). The
/// connection completes like any non-blocking connect (writable, then
/// `take_error`). Not on Windows: there it fails with `Unsupported`, and
/// the node counts the punch failed.
pub fn dial_from(local: SocketAddr, remote: SocketAddr) -> io::Result<std::net::TcpStream> {
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    {
        // A dual-stack listener's port is dialled from with IPv6, to the
        // IPv4 peer's mapped address.
        let remote = match (local, remote) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => remote,
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(local),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        if local.is_ipv6() {
            socket.set_only_v6(false)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&local.into())?;
        match socket.connect(&remote.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(socket.into())
    }
    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    {
        let _ = (local, remote);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "dialling from the listen port needs SO_REUSEPORT",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_non_blocking_on_a_free_port() {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
        let addr = listener.local_addr().expect("local addr");
        assert_ne!(addr.port(), 0);
        // Nothing waiting: a non-blocking accept says so instead of blocking.
        let err = listener.accept().expect_err("nothing to accept");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // A connection is accepted.
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match listener.accept() {
                Ok((_, remote)) => {
                    assert_eq!(remote.ip(), addr.ip());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "never accepted");
                    std::thread::yield_now();
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_dial_from_the_listen_port_leaves_from_that_port() {
        // The dial shares a's listen port with its listener (both set
        // SO_REUSEPORT) and reaches b's listener.
        let a = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
        let b = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
        let (a_addr, b_addr) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        let ab = dial_from(a_addr, b_addr).expect("a dials b");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match ab.peer_addr() {
                Ok(peer) => {
                    assert_eq!(peer, b_addr);
                    break;
                }
                Err(_) => {
                    assert!(std::time::Instant::now() < deadline, "never connected");
                    std::thread::yield_now();
                }
            }
        }
        assert_eq!(
            ab.local_addr().expect("local"),
            a_addr,
            "from a's listen port"
        );
    }

    #[test]
    fn a_port_another_listener_holds_is_refused() {
        // Both would set SO_REUSEPORT: without the probe the second bind
        // succeeds and the kernel splits the connections between them.
        let a = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
        let addr = a.local_addr().expect("a");
        let err = listen(addr).expect_err("the port is taken");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        // Once it is free again, it is taken back at once.
        drop(a);
        let again = listen(addr).expect("the port is free again");
        assert_eq!(again.local_addr().expect("again"), addr);
    }
}
