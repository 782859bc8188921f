//! `ringmesh-driver`: the driver core every ringmesh adapter is built on,
//! written once.
//!
//! The mio adapter (`ringmesh-mio`) and the async adapter
//! (`ringmesh-async-std`) differ in how they wait for sockets and
//! deadlines. Everything a user can see besides that is decided here, so
//! the two cannot drift apart:
//!
//! - [`AdapterConfig`]: how to run a node, with one set of defaults
//!   ([`DEFAULT_MAX_BACKLOG_BYTES`], [`DEFAULT_EVENT_CAPACITY`]) and one
//!   validation ([`AdapterConfig::validate`]: the write backlog must hold
//!   a whole frame, the event buffer must be usable).
//! - The **listen-address policy** ([`announced_addrs`]): what a node
//!   announces in its `Hello` when its listener is bound to port 0 or to
//!   an unspecified address such as `0.0.0.0` (never that address: the
//!   machine's interface addresses instead, [`interface_ips`]).
//! - [`Clock`]: `std::time::Instant` ↔ [`ringmesh::Instant`].
//! - [`transport_error`]: the one mapping from `std::io::Error` to
//!   [`ringmesh::TransportError`], and [`BACKLOG_OVERFLOW`], what a write
//!   backlog over its cap is reported as ([`admit_to_backlog`] is the
//!   rule).
//! - [`PeerInfo`]: a connected peer as the adapters' `peers()` list it.
//! - The event buffer's byte bound ([`event_size`], [`QueuedBytes`]) and
//!   the rate-limited report of dropped events ([`DropLog`]).
//! - The listener ([`listen`]: non-blocking, with an accept backlog of
//!   [`LISTEN_BACKLOG`]) and how many connections an adapter accepts
//!   before it turns to other work ([`ACCEPTS_PER_TURN`]).
//! - [`LanDiscovery`]: LAN discovery by a UDP multicast beacon, off unless
//!   an application starts it (the `ringmesh` program does).
//! - [`DirectReadPool`]: a connection's reads, straight from the socket,
//!   handed to the node as `Bytes` without a copy or an allocation per
//!   read.
//! - [`FileStore`]: blobs in files under a directory, with their
//!   outboards and maps of held groups, so a restarted node serves without
//!   hashing again and a fetch resumes (`AdapterConfig::blob_dir`).
//!
//! Both adapters re-export the public items (`ringmesh_mio::AdapterConfig`
//! is `ringmesh_async_std::AdapterConfig` is this crate's), so
//! applications never need to name this crate.
//!
//! An adapter starts a node in three steps: [`AdapterConfig::validate`]
//! before binding anything, bind the listener ([`listen`]), then
//! [`AdapterConfig::into_node`] with the address the listener reports.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod announce;
mod blob_store;
mod clock;
mod config;
mod events;
mod lan;
mod listen;
mod peers;
mod reads;
mod transport;

pub use announce::{
    MAX_INTERFACE_ADDRS, announced_addrs, announced_addrs_among, interface_ips, is_dialable,
    pick_interface_addrs,
};
pub use blob_store::{FileStore, HELD_MAGIC, OpenReport, add_file_command, read_whole, save_blob};
pub use clock::Clock;
pub use config::{
    AdapterConfig, AdapterConfigError, DEFAULT_EVENT_CAPACITY, DEFAULT_MAX_BACKLOG_BYTES,
    MAX_EVENT_CAPACITY, Startup,
};
pub use events::{
    DEFAULT_EVENT_CAPACITY_BYTES, DROP_LOG_INTERVAL, DropLog, QueuedBytes, event_size,
};
pub use lan::{
    BEACON_MAGIC, BEACON_VERSION, DEFAULT_LAN_GROUP, LanConfig, LanDiscovery, LanStats,
    MAX_BEACON_LEN, POLL_INTERVAL, decode_beacon, encode_beacon,
};
pub use listen::{ACCEPTS_PER_TURN, LISTEN_BACKLOG, dial_from, listen};
pub use peers::PeerInfo;
pub use reads::{DirectReadPool, READS_PER_POOL, RETIRED_POOLS};
pub use transport::{BACKLOG_OVERFLOW, admit_to_backlog, transport_error};
