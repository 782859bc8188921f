//! A frame that claims 4 GiB closes the connection without allocating it.
//!
//! This binary counts every allocation (its own global allocator), so it
//! holds exactly one test: parallel tests would pollute the count. The
//! allocator is the only unsafe code in the workspace: it forwards to
//! `System` unchanged.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, BytesMut};
use ringmesh::testing::Network;
use ringmesh::{CloseReason, Config, ConnId, Duration, Event, ProtocolError};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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

        let before = CURRENT.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        net.inject(1, ConnId::inbound(0), bytes);
        let grew = PEAK.load(Ordering::Relaxed) - before;

        assert!(!net.node(1).is_connected(a));
        assert!(net.events_of(1).any(|e| matches!(
            e,
            Event::ConnectionClosed {
                reason: CloseReason::Protocol(ProtocolError::FrameTooLarge { len: u32::MAX, .. }),
                ..
            }
        )));
        // Closing costs a Goodbye frame and an event, nothing near the claim.
        assert!(grew < 64 * 1024, "peak grew by {grew} bytes");
    }
}
