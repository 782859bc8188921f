//! A frame that claims 4 GiB closes the connection without allocating it.
//!
//! This binary counts every allocation (`support/counting_alloc.rs`), so it
//! holds exactly one test.

use bytes::{BufMut, BytesMut};
use ringmesh::testing::Network;
use ringmesh::{CloseReason, Config, ConnId, Duration, Event, PeersEvent, ProtocolError};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[test]
fn a_frame_claiming_4_gib_closes_the_connection_without_allocating_it() {
    for config in [Config::default(), Config::plaintext()] {
        let mut net = Network::new(Duration::from_millis(1));
        net.add_node(config.clone(), [1; 32], 1).expect("valid");
        net.add_node(config, [2; 32], 2).expect("valid");
        net.connect(0, 1).expect("dial");
        net.settle();
        let a = net.node(0).node_id();
        assert!(net.node(1).is_connected(a));

        let mut bytes = BytesMut::new();
        bytes.put_u32(u32::MAX);
        bytes.put_slice(&[0xab; 1024]);
        let bytes = bytes.freeze();

        let before = counting_alloc::reset_peak();
        net.inject(1, ConnId::inbound(0), bytes);
        let grew = counting_alloc::peak() - before;

        assert!(!net.node(1).is_connected(a));
        assert!(net.events_of(1).any(|e| matches!(
            e,
            Event::Peers(PeersEvent::Closed {
                reason: CloseReason::Protocol(ProtocolError::FrameTooLarge { len: u32::MAX, .. }),
                ..
            })
        )));
        // Closing costs a Goodbye frame and an event, nothing near the claim.
        assert!(grew < 64 * 1024, "peak grew by {grew} bytes");
    }
}
