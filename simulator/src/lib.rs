//! `ringmesh-sim`: drive real [`ringmesh::Node`]s through a simulated
//! network in virtual time.
//!
//! - [`engine`]: the discrete-event engine and network model ([`Sim`]).
//! - [`scenario`]: flood, liveness and scripted runs with their reports.
//! - [`chord_oracle`]: the judge of a Chord ring: Zave's invariants over
//!   ground truth, the failure constraint, and the ground truth of a run.
//! - [`check`]: property tests for a user's protocol: fault-schedule and
//!   topology strategies, a runner that checks safety during the faults and
//!   liveness after, shrinks a failure and prints its replay.
//! - [`plot`]: SVG figures of a run (`--plot FILE.svg`).
//! - [`show`]: how the command line shows a run: progress, the summary or
//!   the JSON of its [`show::Report`], the failure line and replay command.
//! - [`topology`]: overlay builders (random, random regular, ring, from an
//!   edge list, organic growth through bootstrap nodes).
//! - [`demo`]: the narrated run the README shows, on the in-memory network
//!   of [`ringmesh::testing`].
//!
//! # Simulate your application
//!
//! A program built on ringmesh is, per node, a reaction to the node's
//! [`Event`](ringmesh::Event)s: it answers requests, starts broadcasts,
//! reads and writes tables, and does things later. Write that as an
//! [`App`] and the simulator runs it on every node, in virtual time,
//! reproducibly:
//!
//! 1. Build a [`Sim`] from a [`SimConfig`] (its `seed` decides every random
//!    choice; set `echo_requests: false` if your application answers
//!    requests itself, or the engine answers them too).
//! 2. Add nodes and wire them: [`Sim::add_node`] / [`Sim::add_nodes`] and
//!    [`Sim::connect`], or a builder of [`topology`] (random, random
//!    regular, ring, from an edge list, organic growth through bootstrap
//!    nodes; [`topology::hand_wired`] keeps a wired overlay as wired).
//! 3. Register the application: [`Sim::set_apps`] with a factory (called
//!    for every node, those added later and each restart) or
//!    [`Sim::set_app`] for one node. The application gets an [`AppCx`]:
//!    the time, its node's index and id, its own random stream
//!    ([`AppCx::rng`], derived from the seed, the node's index and its
//!    incarnation), [`AppCx::command`] for its node, and timers
//!    ([`AppCx::at`], [`AppCx::after`], with a token of your choice) that
//!    go through the engine's event queue.
//! 4. Run ([`Sim::run_for`], [`Sim::run_until`], [`Sim::step`]; note that
//!    [`Sim::settle`] waits only for messages in flight, not for
//!    application timers), inject faults ([`Sim::crash`], [`Sim::kill`],
//!    [`Sim::restart`], [`Sim::partition`]), then check what the
//!    applications gathered with [`Sim::app`] (the concrete type back) or
//!    what the nodes hold with [`Sim::node`]. [`Sim::index_of_id`] maps a
//!    [`NodeId`](ringmesh::NodeId) back to its index.
//!
//! A crash or kill drops the node's application with its pending timers;
//! a restart makes a fresh one from the factory ([`engine::App`] has the
//! details). Without any application the engine runs exactly as before
//! (same traces, same speed).
//!
//! Here node 1 runs a service that answers each request with its bytes
//! reversed, and node 0 runs a client that asks it every 100 ms:
//!
//! ```
//! use bytes::Bytes;
//! use ringmesh::{Config, Duration, Event, MessagingCommand, MessagingEvent, NodeId, Security};
//! use ringmesh_sim::{App, AppCx, NodeIdx, Sim, SimConfig};
//!
//! struct Reverser;
//! impl App for Reverser {
//!     fn on_event(&mut self, cx: &mut AppCx<'_>, event: &Event) {
//!         if let Event::Messaging(MessagingEvent::Request { from, id, payload }) = event {
//!             let reversed: Vec<u8> = payload.iter().rev().copied().collect();
//!             let respond = MessagingCommand::Respond { to: *from, id: *id, payload: reversed.into() };
//!             cx.command(respond).expect("connected");
//!         }
//!     }
//! }
//!
//! struct Client { server: NodeId, answers: Vec<Bytes> }
//! impl App for Client {
//!     fn on_start(&mut self, cx: &mut AppCx<'_>) {
//!         cx.after(Duration::from_millis(100), 0);
//!     }
//!     fn on_timer(&mut self, cx: &mut AppCx<'_>, _token: u64) {
//!         let payload = Bytes::from(format!("ping {}", cx.random_in(0..=9)));
//!         let timeout = Duration::from_secs(1);
//!         let _ = cx.command(MessagingCommand::Request { to: self.server, payload, timeout });
//!         cx.after(Duration::from_millis(100), 0);
//!     }
//!     fn on_event(&mut self, _cx: &mut AppCx<'_>, event: &Event) {
//!         if let Event::Messaging(MessagingEvent::Response { payload, .. }) = event {
//!             self.answers.push(payload.clone());
//!         }
//!     }
//! }
//!
//! let mut sim = Sim::new(SimConfig { seed: 7, echo_requests: false, ..SimConfig::default() });
//! let config = Config { security: Security::Plaintext, ..Config::lan() };
//! let (client, server) = (sim.add_node(config.clone())?, sim.add_node(config)?);
//! sim.connect(client, server)?;
//! sim.settle(Duration::from_secs(1));
//! let server_id = sim.id(server);
//! assert_eq!(sim.index_of_id(&server_id), Some(server));
//! sim.set_apps(move |i: NodeIdx| -> Option<Box<dyn App>> {
//!     if i == server {
//!         Some(Box::new(Reverser))
//!     } else {
//!         Some(Box::new(Client { server: server_id, answers: Vec::new() }))
//!     }
//! });
//! sim.run_for(Duration::from_millis(1050));
//! let answers = &sim.app::<Client>(client).expect("a client").answers;
//! assert_eq!(answers.len(), 10); // asked at 100, 200, …, 1000 ms
//! assert!(answers.iter().all(|a| a.ends_with(b" gnip")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Larger, runnable programs are in `simulator/examples/`, each ending in a
//! check that can fail (exit status 1 and the reason):
//!
//! ```text
//! cargo run --release -p ringmesh-sim --example request_response -- 1000   # clients, one server
//! cargo run --release -p ringmesh-sim --example gossip_counter -- 200 6     # G-counter over floods
//! cargo run --release -p ringmesh-sim --example dht_app -- 200              # puts and gets on the Chord table
//! ```
//!
//! ## Build profile of a crate that uses the simulator
//!
//! A simulation runs the nodes' crypto, codecs and tables millions of
//! times. Cargo's `dev` profile builds every dependency at `opt-level = 0`,
//! and a downstream crate does not inherit this workspace's profile
//! settings, so a debug build of your simulation is an order of magnitude
//! slower than it needs to be. Put this in your workspace's `Cargo.toml`
//! (your own code stays quick to build and debug; the dependencies are
//! compiled optimised once):
//!
//! ```toml
//! [profile.dev.package."*"]
//! opt-level = 3
//! ```
//!
//! or run large simulations with `--release`. Measured on the
//! `gossip_counter` example (200 nodes, degree 6, seed 1, 119,400
//! deliveries; copied into a crate outside this workspace; CPU seconds,
//! on a shared two-core machine, median of 3 to 5 runs):
//!
//! | build | CPU seconds |
//! |---|---:|
//! | `cargo run` (dev profile as Cargo ships it: everything at `opt-level = 0`) | 10.8 |
//! | `cargo run` with the `[profile.dev.package."*"]` lines above | 1.76 |
//! | `cargo run --release` | 0.99 |

#![forbid(unsafe_code)]

pub mod check;
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
