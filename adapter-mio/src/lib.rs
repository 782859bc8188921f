//! `ringmesh-mio`: a single-threaded driver that runs a [`ringmesh::Node`]
//! over real TCP sockets with `mio`.
//!
//! Not built yet: this crate reserves its place in the workspace. Until it
//! lands, drive a node yourself by following the contract in the
//! [`ringmesh`] crate docs.

#![forbid(unsafe_code)]

/// The protocol crate this adapter drives.
pub use ringmesh;
