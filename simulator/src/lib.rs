//! `ringmesh-sim`: drive real [`ringmesh::Node`]s through a simulated
//! network in virtual time.
//!
//! Today this crate holds the [`demo`] that the README's run command shows:
//! nodes on the in-memory network of [`ringmesh::testing`] joining through a
//! bootstrap node over Noise, flooding broadcasts, detecting a crash. The discrete-event engine
//! with its fault model, scenarios and invariant checkers grows here next.

#![forbid(unsafe_code)]

pub mod demo;
