//! Observed addresses (`spec/reach.md`) through the in-memory harness:
//! a node behind a "NAT" (it announces a private address; its peers see
//! it at its harness address) learns where it is reached and announces
//! it, and one peer alone cannot make it announce anything.

use std::net::SocketAddr;

use ringmesh::testing::{Network, NodeIndex};
use ringmesh::wire::{DialBack, Message, ObservedAddr};
use ringmesh::{
    CloseReason, Config, Duration, Event, NodeId, PeersCommand, PeersEvent, ProtocolError,
    ReachConfig, ReachEvent, Security,
};

const LATENCY: Duration = Duration::from_millis(5);
const PRIVATE: &str = "10.0.0.1:7000";

fn config(reach: bool) -> Config {
    Config {
        security: Security::Plaintext,
        reach: reach.then(|| ReachConfig {
            observed_threshold: 2,
            ..ReachConfig::default()
        }),
        ..Config::lan()
    }
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s
}

/// Node 0 announces only [`PRIVATE`] (what a node behind a NAT knows of
/// itself); the harness delivers its connections from
/// `Network::addr_of(0)`, which is therefore what its peers see.
fn network(n: usize, reach: impl Fn(NodeIndex) -> bool) -> Network {
    build(n, PRIVATE, Security::Plaintext, reach)
}

/// `n` nodes, node 0 announcing only `private` (its port is the one
/// dialled back), the nodes `reach` picks running reach.
fn build(
    n: usize,
    private: &str,
    security: Security,
    reach: impl Fn(NodeIndex) -> bool,
) -> Network {
    let mut net = Network::new(LATENCY);
    for i in 0..n {
        let mut c = Config {
            security,
            ..config(reach(i))
        };
        if i == 0 {
            c.listen_addrs.push(private.parse().expect("addr"));
        }
        net.add_node(c, secret(i), 1000 + i as u64).expect("config");
    }
    net
}

fn id(net: &Network, i: NodeIndex) -> NodeId {
    net.node(i).node_id()
}

/// Node `from` sends `message` to node `to` as it is, and the harness
/// delivers it.
fn adversary_send(net: &mut Network, from: NodeIndex, to: NodeIndex, message: &Message) {
    let (now, peer) = (net.now(), id(net, to));
    assert!(
        net.node_mut(from).adversary_send(now, peer, message),
        "sent"
    );
    // A command that does nothing, so the harness takes the outputs now.
    net.command(from, PeersCommand::AddPeers { peers: vec![] })
        .expect("accepted");
    net.settle();
}

fn adopted(net: &Network, i: NodeIndex) -> Vec<SocketAddr> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Reach(ReachEvent::AddressAdopted { addr, .. }) => Some(*addr),
            _ => None,
        })
        .collect()
}

/// What node `at` was told `about` announces, in its last session.
fn announced_to(net: &Network, at: NodeIndex, about: NodeId) -> Vec<SocketAddr> {
    net.events_of(at)
        .filter_map(|e| match e {
            Event::Peers(PeersEvent::Established {
                peer, listen_addrs, ..
            }) if *peer == about => Some(listen_addrs.to_vec()),
            _ => None,
        })
        .last()
        .expect("a session")
}

#[test]
fn an_address_seen_by_enough_peers_is_adopted_and_announced() {
    let mut net = network(4, |_| true);
    let public = Network::addr_of(0);
    net.connect(0, 1).expect("dial");
    net.settle();
    assert!(adopted(&net, 0).is_empty(), "one peer's word is not enough");
    assert_eq!(net.node(0).stats().reach.observations, 1);

    net.connect(0, 2).expect("dial");
    net.settle();
    assert_eq!(adopted(&net, 0), vec![public]);
    let private: SocketAddr = PRIVATE.parse().expect("addr");
    assert_eq!(net.node(0).announced_addrs(), &[private, public]);
    assert_eq!(net.node(0).stats().reach.adopted, 1);

    // A session opened from now on carries it: its peer can redial node 0
    // where it is reached.
    net.connect(0, 3).expect("dial");
    net.settle();
    let zero = id(&net, 0);
    assert_eq!(announced_to(&net, 3, zero), vec![private, public]);
    // ... and so does node 0's own peer-exchange entry, which node 3 keeps.
    assert!(
        net.node(3)
            .known_peers()
            .iter()
            .any(|k| k.id == zero && k.addrs.contains(&public)),
        "node 3 knows node 0 at its public address"
    );
    // Told once more, nothing changes.
    assert_eq!(adopted(&net, 0), vec![public]);
}

#[test]
fn a_single_liar_cannot_make_a_node_announce_anything() {
    let mut net = network(3, |_| true);
    net.connect(0, 1).expect("dial");
    net.settle();
    // Node 1 claims, over and over, to see node 0 at an address of its
    // choosing (with a different port each time).
    for port in 1..=50 {
        let lie = Message::ObservedAddr(ObservedAddr {
            addr: SocketAddr::from(([198, 51, 100, 7], port)),
        });
        adversary_send(&mut net, 1, 0, &lie);
    }
    assert!(adopted(&net, 0).is_empty());
    let private: SocketAddr = PRIVATE.parse().expect("addr");
    assert_eq!(net.node(0).announced_addrs(), &[private]);
    assert_eq!(
        net.node(0).stats().reach.observations,
        51,
        "all held, as one"
    );
    // A second peer confirms what it sees, never the lie.
    net.connect(0, 2).expect("dial");
    net.settle();
    assert!(
        adopted(&net, 0)
            .iter()
            .all(|a| a.ip() != std::net::Ipv4Addr::new(198, 51, 100, 7)),
        "{:?}",
        adopted(&net, 0)
    );
    assert!(
        net.node(0).is_connected(id(&net, 1)),
        "a report is no fault"
    );
}

#[test]
fn nodes_without_reach_neither_send_nor_take_reports() {
    // Node 1 runs without it: it offers no REACH, so node 0 sends it no
    // report, and a report it sends anyway is a protocol violation of a
    // capability it never negotiated.
    let mut net = network(2, |i| i == 0);
    net.connect(0, 1).expect("dial");
    net.settle();
    assert_eq!(net.node(0).stats().reach.observations_sent, 0);
    assert_eq!(net.node(1).stats().reach, Default::default());
    let one = id(&net, 1);
    let report = Message::ObservedAddr(ObservedAddr {
        addr: Network::addr_of(0),
    });
    adversary_send(&mut net, 1, 0, &report);
    let closed = net.events_of(0).any(|e| {
        matches!(e, Event::Peers(PeersEvent::Closed {
            peer: Some(p),
            reason: CloseReason::Protocol(ProtocolError::UnexpectedMessage("ObservedAddr")),
            ..
        }) if *p == one)
    });
    assert!(closed, "an unnegotiated report closes its connection");
    assert_eq!(net.node(0).stats().reach.observations, 0);
}

fn reachability(net: &Network, i: NodeIndex) -> Vec<(SocketAddr, bool, usize, usize)> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Reach(ReachEvent::Reachability {
                addr,
                reachable,
                reached,
                unreached,
                ..
            }) => Some((*addr, *reachable, *reached, *unreached)),
            _ => None,
        })
        .collect()
}

#[test]
fn peers_dial_an_adopted_address_back_and_it_is_reachable() {
    for security in [Security::Plaintext, Security::Noise] {
        dial_back_reaches_an_adopted_address(security);
    }
}

fn dial_back_reaches_an_adopted_address(security: Security) {
    let mut net = build(3, PRIVATE, security, |_| true);
    net.connect(0, 1).expect("dial");
    net.connect(0, 2).expect("dial");
    net.settle();
    let public = Network::addr_of(0);
    assert_eq!(adopted(&net, 0), vec![public]);
    // Both peers that see it there dialled it back and reached it.
    assert_eq!(reachability(&net, 0), vec![(public, true, 2, 0)]);
    for helper in [1, 2] {
        assert_eq!(net.node(helper).stats().reach.probes_run, 1);
    }
    // The probes became no links: each helper still has one peer in node 0.
    assert!(net.node(1).is_connected(id(&net, 0)));
    assert_eq!(net.node(0).stats().reach.checks, 1);
}

#[test]
fn an_address_nobody_can_dial_back_is_reported_unreachable() {
    // Node 0 listens on 7001 by its own account, but the harness reaches it
    // only at 7000 (as a NAT with no mapping for 7001 would): dials back to
    // 127.0.0.1:7001 fail.
    let mut net = build(3, "10.0.0.1:7001", Security::Plaintext, |_| true);
    net.connect(0, 1).expect("dial");
    net.connect(0, 2).expect("dial");
    net.settle();
    let candidate: SocketAddr = "127.0.0.1:7001".parse().expect("addr");
    assert_eq!(adopted(&net, 0), vec![candidate]);
    assert_eq!(reachability(&net, 0), vec![(candidate, false, 0, 2)]);
}

#[test]
fn dial_back_requests_are_rate_limited_per_peer() {
    let mut net = network(2, |_| true);
    net.connect(0, 1).expect("dial");
    net.settle();
    let request = Message::DialBack(DialBack {
        nonce: 77,
        port: 7000,
    });
    adversary_send(&mut net, 0, 1, &request);
    adversary_send(&mut net, 0, 1, &request);
    let stats = net.node(1).stats().reach;
    assert_eq!((stats.probes_run, stats.probes_refused), (1, 1));
    // Past the gap, it is served again.
    net.run_for(Duration::from_secs(31));
    adversary_send(&mut net, 0, 1, &request);
    assert_eq!(net.node(1).stats().reach.probes_run, 2);
}

/// `PeersCommand::Announce` (a port mapping's external address, say):
/// the address is announced in the sessions that begin after it;
/// an unspecified address or port 0 is refused and changes nothing.
#[test]
fn an_announced_address_reaches_the_peers_of_later_sessions() {
    let mut net = network(2, |_| false);
    let mapped: SocketAddr = "203.0.113.7:7000".parse().expect("addr");
    for bad in ["0.0.0.0:7000", "203.0.113.7:0"] {
        let addr: SocketAddr = bad.parse().expect("addr");
        assert_eq!(
            net.command(0, PeersCommand::Announce { addr }),
            Err(ringmesh::PeersError::CannotAnnounce(addr).into())
        );
    }
    net.command(0, PeersCommand::Announce { addr: mapped })
        .expect("announced");
    // Twice is harmless.
    net.command(0, PeersCommand::Announce { addr: mapped })
        .expect("announced again");
    assert_eq!(
        net.node(0).announced_addrs(),
        &[PRIVATE.parse().expect("addr"), mapped]
    );
    net.connect(1, 0).expect("dial");
    net.settle();
    let a = id(&net, 0);
    assert_eq!(
        announced_to(&net, 1, a),
        vec![PRIVATE.parse().expect("addr"), mapped]
    );
}
