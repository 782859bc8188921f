//! Property tests of relays: every relay message round-trips byte for
//! byte, and whatever relay messages peers send a relay, in any order, it
//! holds its limits and never panics (hole-punch messages outside a
//! relayed session included: they are ignored).

#[path = "support/round_trip.rs"]
mod support_round_trip;
use support_round_trip::round_trip;

use bytes::Bytes;
use proptest::prelude::*;
use ringmesh::testing::Network;
use std::net::SocketAddr;

use ringmesh::wire::{
    HolePunch, HolePunchSync, MAX_PUNCH_ADDRS, MAX_RELAY_DATA, Message, RelayClose, RelayConnect,
    RelayConnectResult, RelayData, RelayDeliver, RelayEnded, RelayIncoming, RelayReserve,
    RelayReserveResult, RelayStatus,
};
use ringmesh::{Config, NodeId, PeersCommand, RelayConfig, Security};

fn status() -> impl Strategy<Value = RelayStatus> {
    prop_oneof![
        Just(RelayStatus::Ok),
        Just(RelayStatus::NotServing),
        Just(RelayStatus::ReservationLimit),
        Just(RelayStatus::NoReservation),
        Just(RelayStatus::CircuitLimit),
        Just(RelayStatus::PeerCircuitLimit),
        Just(RelayStatus::ByteLimit),
        Just(RelayStatus::DurationLimit),
        Just(RelayStatus::RateLimit),
        Just(RelayStatus::Closed),
        Just(RelayStatus::Refused),
    ]
}

fn reason() -> impl Strategy<Value = RelayStatus> {
    status().prop_filter("a close is never Ok", |s| *s != RelayStatus::Ok)
}

fn data() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..512),
        (1usize..=MAX_RELAY_DATA).prop_map(|n| vec![0x5a; n]),
    ]
    .prop_map(Bytes::from)
}

fn relay_message(
    ids: impl Strategy<Value = NodeId> + Clone + 'static,
) -> impl Strategy<Value = Message> {
    let circuit = 0u64..4;
    prop_oneof![
        Just(Message::RelayReserve(RelayReserve)),
        (status(), any::<u32>()).prop_map(|(status, ttl_secs)| Message::RelayReserveResult(
            RelayReserveResult { status, ttl_secs }
        )),
        (any::<u64>(), ids.clone())
            .prop_map(|(req, target)| Message::RelayConnect(RelayConnect { req, target })),
        (0u64..4, circuit.clone(), status()).prop_map(|(req, circuit, status)| {
            Message::RelayConnectResult(RelayConnectResult {
                req,
                circuit,
                status,
            })
        }),
        (circuit.clone(), ids)
            .prop_map(|(circuit, from)| Message::RelayIncoming(RelayIncoming { circuit, from })),
        (circuit.clone(), data())
            .prop_map(|(circuit, data)| Message::RelayData(RelayData { circuit, data })),
        (circuit.clone(), data())
            .prop_map(|(circuit, data)| Message::RelayDeliver(RelayDeliver { circuit, data })),
        (circuit.clone(), reason())
            .prop_map(|(circuit, reason)| Message::RelayClose(RelayClose { circuit, reason })),
        (circuit, reason())
            .prop_map(|(circuit, reason)| Message::RelayEnded(RelayEnded { circuit, reason })),
        proptest::collection::vec(socket_addr(), 1..=MAX_PUNCH_ADDRS)
            .prop_map(|addrs| Message::HolePunch(HolePunch { addrs })),
        Just(Message::HolePunchSync(HolePunchSync)),
    ]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

const NODES: usize = 4;
const RELAY: usize = 0;

fn network(limits: &RelayConfig) -> Network {
    let mut net = Network::new(ringmesh::Duration::from_millis(2));
    for i in 0..NODES {
        let relay = if i == RELAY {
            RelayConfig {
                serve: true,
                ..limits.clone()
            }
        } else {
            RelayConfig::default()
        };
        let config = Config {
            security: Security::Plaintext,
            relay: Some(relay),
            ..Config::lan()
        };
        let mut secret = [0u8; 32];
        secret[0] = i as u8 + 1;
        net.add_node(config, secret, i as u64).expect("config");
    }
    for i in 1..NODES {
        net.connect(i, RELAY).expect("dial");
    }
    net.settle();
    net
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn relay_messages_round_trip_byte_for_byte(
        msg in relay_message(any::<u128>().prop_map(NodeId::from_u128)),
        compress in proptest::option::of(0usize..1024),
    ) {
        round_trip(&msg, compress)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Peers send the relay (and each other) any relay messages in any
    /// order; the relay never holds more than its limits, and forwards no
    /// more than its circuits' byte limit.
    #[test]
    fn a_relay_holds_its_limits_whatever_its_peers_send(
        steps in proptest::collection::vec(
            (1..NODES, 0..NODES, relay_message((0..NODES).prop_map(|i| {
                let mut secret = [0u8; 32];
                secret[0] = i as u8 + 1;
                ringmesh::Identity::from_secret_bytes(secret).node_id()
            }))),
            1..40,
        ),
    ) {
        let limits = RelayConfig {
            max_reservations: 2,
            max_circuits: 2,
            max_circuits_per_peer: 1,
            circuit_bytes: 2048,
            ..RelayConfig::default()
        };
        let mut net = network(&limits);
        for (from, to, message) in steps {
            let (now, peer) = (net.now(), net.node(to).node_id());
            if from != to {
                net.node_mut(from).adversary_send(now, peer, &message);
            }
            // A no-op command so the harness takes the outputs.
            net.command(from, PeersCommand::AddPeers { peers: vec![] }).expect("accepted");
            net.settle();
            let (circuits, reservations) = net.node(RELAY).relay_load();
            prop_assert!(circuits <= limits.max_circuits);
            prop_assert!(reservations <= limits.max_reservations);
        }
        let stats = net.node(RELAY).stats().relay;
        prop_assert!(stats.bytes_relayed <= stats.circuits_opened * limits.circuit_bytes);
        // Hole-punch messages sent on direct sessions (not end to end on a
        // relayed one) are ignored: nobody dials on a stranger's word.
        for i in 0..NODES {
            prop_assert_eq!(net.node(i).stats().relay.punch_attempts, 0);
        }
    }
}
