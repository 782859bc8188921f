//! The two adapters side by side: what they share is the driver core's,
//! not two copies that could drift apart. The suite's checks (run by each
//! adapter) hold both to the same values at run time; this holds them to
//! the same types, and fails to compile if either grows its own.

use std::net::SocketAddr;

use ringmesh::{Config, Identity};
use ringmesh_driver as core;

#[test]
fn both_adapters_take_one_config_and_list_one_peer_info() {
    // Each line compiles only while both paths name the same type.
    let config: fn(ringmesh_mio::AdapterConfig) -> ringmesh_async_std::AdapterConfig = |c| c;
    let error: fn(ringmesh_mio::AdapterConfigError) -> ringmesh_async_std::AdapterConfigError =
        |e| e;
    let peer: fn(ringmesh_mio::PeerInfo) -> ringmesh_async_std::PeerInfo = |p| p;
    let _ = (error, peer);
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let built = config(ringmesh_mio::AdapterConfig::new(
        listen,
        Config::lan(),
        Identity::from_secret_bytes([1; 32]),
        1,
    ));
    assert_eq!(built.max_backlog_bytes, core::DEFAULT_MAX_BACKLOG_BYTES);
    assert_eq!(built.event_capacity, core::DEFAULT_EVENT_CAPACITY);
}

#[test]
fn both_adapters_export_the_cores_defaults_and_overflow_reason() {
    assert_eq!(
        ringmesh_mio::DEFAULT_EVENT_CAPACITY,
        ringmesh_async_std::DEFAULT_EVENT_CAPACITY
    );
    assert_eq!(
        ringmesh_mio::DEFAULT_MAX_BACKLOG_BYTES,
        ringmesh_async_std::DEFAULT_MAX_BACKLOG_BYTES
    );
    assert_eq!(
        ringmesh_mio::MAX_EVENT_CAPACITY,
        ringmesh_async_std::MAX_EVENT_CAPACITY
    );
    assert_eq!(
        ringmesh_mio::BACKLOG_OVERFLOW,
        ringmesh_async_std::BACKLOG_OVERFLOW
    );
}
