//! `ringmesh`: a ringmesh node on the mio adapter.
//!
//! - `ringmesh node` joins (or starts) a network and reads console commands
//!   from stdin (`msg`, `send`, `peers`, `connect`, `debug`, `help`,
//!   `exit`). End of stdin means `exit`, so the node can be scripted:
//!   `ringmesh node ... < /dev/null` starts and shuts down at once.
//! - `ringmesh bootstrap` is the daemon form: no console, it never reads
//!   stdin and runs until it is killed. Others join through it.
//!
//! What a person reads goes to stdout, one line per thing that happened
//! (`node <id> listening on <addr>`, `peer up …`, `<1a2b3c4d> hello`);
//! logs go to stderr through `tracing` (`RUST_LOG`, or `--log-level`).
//!
//! With `--data-dir` the node keeps its identity key and its peer cache
//! there, so a restarted node has the same id and rejoins through the peers
//! it knew, without `--bootstrap`.

#![forbid(unsafe_code)]

mod console;
mod data_dir;
mod display;
mod logging;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringmesh::Config;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "ringmesh", version, about = "A ringmesh peer-to-peer node")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// What to run.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Join or start a network, with a console on stdin (type `help`).
    /// End of stdin shuts the node down, as `exit` does.
    Node(NodeArgs),
    /// A node others join through: no console, stdin is never read; runs
    /// until Ctrl-C or SIGTERM, which shut it down gracefully (peers get a
    /// goodbye, the peer cache is saved).
    Bootstrap(NodeArgs),
}

/// Options shared by both modes.
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeArgs {
    /// Where to accept connections, e.g. 127.0.0.1:4001 (port 0 picks a
    /// free one; the start line says which).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// A node to join through; repeat for several.
    #[arg(long = "bootstrap", value_name = "ADDR")]
    pub(crate) bootstrap: Vec<SocketAddr>,
    /// Where peers should dial this node, if not the listen address (e.g.
    /// the public address when listening on 0.0.0.0); repeat for several.
    #[arg(long = "announce", value_name = "ADDR")]
    pub(crate) announce: Vec<SocketAddr>,
    /// Keep the identity key and the peer cache here (created if missing).
    /// Without it the node has a fresh identity and forgets its peers.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Log filter for stderr, e.g. `info` or `ringmesh=debug`; overrides
    /// `RUST_LOG`. Default: `warn`.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Protocol timings: `lan` (fast failure detection, one site) or `wan`
    /// (the internet).
    #[arg(long, value_enum, default_value_t = Preset::Wan)]
    pub(crate) preset: Preset,
}

/// A [`Config`] preset ([`Config::lan`] or [`Config::wan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Preset {
    /// One site: pings every second, a dead peer noticed within 3.5 s.
    Lan,
    /// The internet: pings every 5 s, a dead peer noticed within 23 s.
    Wan,
}

impl Preset {
    /// The preset's configuration.
    pub(crate) fn config(self) -> Config {
        match self {
            Preset::Lan => Config::lan(),
            Preset::Wan => Config::wan(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, console) = match cli.mode {
        Mode::Node(args) => (args, true),
        Mode::Bootstrap(args) => (args, false),
    };
    let log = match logging::init(args.log_level.as_deref()) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("ringmesh: {e}");
            return ExitCode::from(2);
        }
    };
    match run::run(&args, console, log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmesh: {e}");
            ExitCode::FAILURE
        }
    }
}
