//! `ringmesh-sim`: drive real [`ringmesh::Node`]s through a simulated
//! network in virtual time.
//!
//! Today this crate holds the [`demo`] that the README's run command shows:
//! nodes on the in-memory network of [`ringmesh::testing`] doing Noise
//! handshakes and exchanging encrypted messages. The discrete-event engine
//! with its fault model, scenarios and invariant checkers grows here next.

#![forbid(unsafe_code)]

pub mod demo;
