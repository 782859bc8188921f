//! A peer that restarts under the same identity: its new run's `Hello`
//! carries another run nonce, and the peers that still hold connections to
//! its previous run retire them at once (spec/peers.md, "Restarts").

use bytes::Bytes;
use ringmesh::testing::Network;
use ringmesh::{
    CloseReason, Config, Duration, Event, MessagingCommand, MessagingEvent, PeersEvent, Security,
};

const LATENCY: Duration = Duration::from_millis(5);

fn lan() -> Config {
    Config {
        security: Security::Plaintext,
        ..Config::lan()
    }
}

/// What node `i` saw of `peer` going down and up, in order.
fn ups_and_downs(net: &Network, i: usize) -> Vec<String> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Peers(PeersEvent::Down { reason, .. }) => Some(format!("down {reason:?}")),
            Event::Peers(PeersEvent::Up { .. }) => Some("up".to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_peer_restarted_under_a_new_run_nonce_replaces_its_old_run_at_once() {
    let mut net = Network::new(LATENCY);
    let a = net.add_node(lan(), [1; 32], 1).expect("valid config");
    let b = net.add_node(lan(), [2; 32], 2).expect("valid config");
    net.connect(b, a).expect("dial");
    net.settle();
    let b_id = net.node(b).node_id();
    assert!(net.node(a).is_connected(b_id));

    // b's process dies silently; a new run (same identity, fresh seed)
    // starts at once and dials a, long before a's liveness would notice.
    net.crash(b);
    let b2 = net.add_node(lan(), [2; 32], 3).expect("valid config");
    assert_eq!(net.node(b2).node_id(), b_id);
    assert_ne!(net.node(b2).run_nonce(), net.node(b).run_nonce());
    let restarted_at = net.now();
    net.connect(b2, a).expect("dial");
    net.run_for(Duration::from_millis(50));

    assert_eq!(
        ups_and_downs(&net, a),
        ["up", "down Restarted", "up"],
        "a sees the old run go down as Restarted, then the new run come up"
    );
    let closed: Vec<_> = net
        .events_of(a)
        .filter_map(|e| match e {
            Event::Peers(PeersEvent::Closed { reason, .. }) => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(closed, [CloseReason::Restarted]);
    assert_eq!(net.node(a).stats().peers.peer_restarts, 1);
    assert_eq!(net.node(a).connection_count(), 1);
    let down_at = net
        .events()
        .iter()
        .find(|r| {
            r.node == a
                && matches!(
                    r.event,
                    Event::Peers(PeersEvent::Down {
                        reason: CloseReason::Restarted,
                        ..
                    })
                )
        })
        .map(|r| r.at)
        .expect("down");
    assert!(
        down_at - restarted_at <= Duration::from_millis(20),
        "retired within the handshake"
    );

    // What a sends to b now reaches the new run.
    net.command(
        a,
        MessagingCommand::Send {
            to: b_id,
            payload: Bytes::from_static(b"to the new run"),
        },
    )
    .expect("connected");
    net.run_for(Duration::from_millis(50));
    let got: Vec<_> = net
        .events_of(b2)
        .filter_map(|e| match e {
            Event::Messaging(MessagingEvent::Direct { payload, .. }) => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got, [Bytes::from_static(b"to the new run")]);
}

#[test]
fn a_second_connection_of_the_same_run_is_a_duplicate_not_a_restart() {
    let mut net = Network::new(LATENCY);
    let a = net.add_node(lan(), [1; 32], 1).expect("valid config");
    let b = net.add_node(lan(), [2; 32], 2).expect("valid config");
    net.connect(b, a).expect("dial");
    net.settle();
    net.connect(a, b).expect("dial");
    net.settle();
    for i in [a, b] {
        assert_eq!(net.node(i).stats().peers.peer_restarts, 0);
        assert_eq!(ups_and_downs(&net, i), ["up"]);
        assert!(net.node(i).stats().peers.duplicate_connections >= 1);
    }
}
