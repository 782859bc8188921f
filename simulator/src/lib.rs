//! `ringmesh-sim`: drive real [`ringmesh::Node`]s through a simulated
//! network in virtual time.
//!
//! - [`engine`]: the discrete-event engine and network model ([`Sim`]).
//! - [`scenario`]: flood, liveness and scripted runs with their reports.
//! - [`chord_oracle`]: the judge of a Chord ring: Zave's invariants over
//!   ground truth, the failure constraint, and the ground truth of a run.
//! - [`plot`]: SVG figures of a run (`--plot FILE.svg`).
//! - [`show`]: how the command line shows a run: progress, the summary or
//!   the JSON of its [`show::Report`], the failure line and replay command.
//! - [`topology`]: overlay builders (random, random regular, ring, from an
//!   edge list, organic growth through bootstrap nodes).
//! - [`demo`]: the narrated run the README shows, on the in-memory network
//!   of [`ringmesh::testing`].

#![forbid(unsafe_code)]

pub mod chord_oracle;
pub mod demo;
pub mod engine;
pub mod plot;
pub mod scenario;
pub mod show;
pub mod topology;

pub use engine::{
    App, AppCx, AppFactory, NetModel, NodeIdx, Observer, Recorder, Sim, SimConfig, addr_of,
};
