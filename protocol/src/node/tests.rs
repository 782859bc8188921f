//! Unit tests of the node internals.

use core::net::SocketAddr;

use super::*;
use crate::{ConnId, Direction, PeersConfig, TransportError};

#[test]
fn cancelled_handshake_deadlines_do_not_pile_up_under_connection_churn() {
    let config = Config {
        peers: PeersConfig {
            max_connections: 8,
            ..Config::plaintext().peers
        },
        ..Config::plaintext()
    };
    // Live deadlines: one per connection plus the maintenance round; the
    // queue may hold twice that plus the sweep floor.
    let max = 2 * (config.peers.max_connections + 1) + 64;
    let identity = Identity::from_secret_bytes([4; 32]);
    let mut node = Node::new(config, identity, 1, Instant::ZERO).expect("valid");
    let remote: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    // One connection stays half-open: its live deadline is the earliest,
    // so the dead ones behind it cannot be popped from the top.
    node.handle_input(
        Instant::ZERO,
        Input::Connected {
            conn: ConnId::inbound(u64::MAX >> 1),
            remote,
            direction: Direction::Inbound,
        },
    );
    for n in 0..10_000u64 {
        let now = Instant::from_micros(n);
        let conn = ConnId::inbound(n);
        node.handle_input(
            now,
            Input::Connected {
                conn,
                remote,
                direction: Direction::Inbound,
            },
        );
        node.handle_input(
            now,
            Input::Closed {
                conn,
                reason: TransportError::Reset,
            },
        );
        while node.poll_output().is_some() {}
        assert!(
            node.deadline_count() <= max,
            "{} deadlines at {n}",
            node.deadline_count()
        );
    }
    assert_eq!(node.connection_count(), 1);
}
