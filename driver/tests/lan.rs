//! LAN discovery over this machine's real interfaces: two discoveries
//! on one group hear each other, never themselves, and a forged or
//! malformed beacon is only counted. Skipped (with a line saying so) on a
//! machine with no IPv4 interface but loopback.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use ringmesh::NodeId;
use ringmesh_driver::{LanConfig, LanDiscovery, encode_beacon};

/// A group of this test's own (the port from the process id), so that
/// other runs on the machine do not mix in.
fn config() -> LanConfig {
    let port = 40_000 + (std::process::id() % 20_000) as u16;
    LanConfig {
        group: SocketAddrV4::new(Ipv4Addr::new(239, 255, 72, 78), port),
        interval: Duration::from_millis(200),
        ..LanConfig::default()
    }
}

#[test]
fn two_discoveries_hear_each_other_and_not_themselves() {
    let (a_id, b_id) = (NodeId::from_u128(0xa), NodeId::from_u128(0xb));
    let a_addr: SocketAddr = "10.9.9.1:4001".parse().expect("addr");
    let b_addr: SocketAddr = "10.9.9.2:4002".parse().expect("addr");
    let (tx, rx) = mpsc::channel();
    let tx_a = tx.clone();
    let a = match LanDiscovery::start(config(), a_id, &[a_addr], move |id, addrs| {
        let _ = tx_a.send((a_id, id, addrs));
    }) {
        Ok(a) => a,
        Err(error) => {
            eprintln!("SKIPPED two_discoveries_hear_each_other_and_not_themselves: {error}");
            return;
        }
    };
    let b = LanDiscovery::start(config(), b_id, &[b_addr], move |id, addrs| {
        let _ = tx.send((b_id, id, addrs));
    })
    .expect("b starts where a did");

    let mut heard = Vec::new();
    while heard.len() < 2 {
        let (by, id, addrs) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a beacon in time");
        assert_ne!(by, id, "a node reported itself");
        heard.push((by, id, addrs));
    }
    heard.sort();
    assert_eq!(
        heard,
        vec![(a_id, b_id, vec![b_addr]), (b_id, a_id, vec![a_addr])]
    );

    // A malformed beacon and a forged one (someone else's id) to the group:
    // the malformed one is counted and dropped; the forged one is
    // reported like any beacon (the dial's handshake is what proves an id).
    let forger = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
    forger.set_multicast_loop_v4(true).expect("loop");
    // Out of an interface that joined (the host may have no default route).
    let interface = ringmesh_driver::interface_ips()
        .into_iter()
        .find_map(|ip| match ip {
            std::net::IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
            _ => None,
        })
        .expect("a started discovery had an interface");
    socket2::SockRef::from(&forger)
        .set_multicast_if_v4(&interface)
        .expect("multicast interface");
    let group = config().group;
    let dropped_before = a.stats().dropped.load(Ordering::Relaxed);
    forger.send_to(b"RMLB\x09garbage", group).expect("send");
    let forged = NodeId::from_u128(0xf);
    forger
        .send_to(
            &encode_beacon(forged, &["10.9.9.9:1".parse().expect("addr")]),
            group,
        )
        .expect("send");
    let mut forged_seen = 0;
    while forged_seen < 2 {
        let (_, id, _) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the forged beacon");
        if id == forged {
            forged_seen += 1;
        }
    }
    assert!(a.stats().dropped.load(Ordering::Relaxed) > dropped_before);
    assert!(
        a.stats().own.load(Ordering::Relaxed) > 0,
        "its own beacons came back and were ignored"
    );
    drop((a, b));
}
