//! `ringmesh`: a ringmesh node on the mio adapter.
//!
//! - `ringmesh node` joins (or starts) a network and reads console commands
//!   from stdin (`msg`, `send`, `peers`, `connect`, `put`, `get`, `del`,
//!   `ring`, `debug`, `help`, `exit`). End of stdin means `exit`, so the
//!   node can be scripted: `ringmesh node ... < /dev/null` starts and shuts
//!   down at once. It first waits for the table commands under way
//!   (`put`, `get`, `del`) to print their outcome.
//! - `ringmesh bootstrap` is the daemon form: no console, it never reads
//!   stdin and runs until it is killed. Others join through it.
//!
//! What a person reads goes to stdout, one line per thing that happened
//! (`node <id> listening on <addr>`, `peer up …`, `<1a2b3c4d> hello`);
//! logs go to stderr through `tracing` (`RUST_LOG`, or `--log-level`).
//!
//! With `--data-dir` the node keeps its identity key and its peer cache
//! there, so a restarted node has the same id and rejoins through the peers
//! it knew, without `--bootstrap`. The directory is locked while the node
//! runs (a second process on it exits with an error); `identity.key` has a
//! checksum (a damaged key is an error, never another id); a damaged
//! `peers.json` is reported and its last good copy, `peers.json.bak`, used
//! (`data_dir.rs` has the details).
//!
//! The console reads lines of up to 64 KiB (a longer one is read through
//! and dropped with an error); what it echoes back is escaped. `connect`
//! says how a dial ended (`could not reach 127.0.0.1:4999: connection
//! refused`, `already connected to <…>`), and a `--bootstrap` that cannot
//! be reached is said once on the console.
//!
//! **The ring and the table are on by default** (spec/chord.md): every
//! node of this program has a listen address, so every node can be a ring
//! member and hold part of the table. `--no-chord` turns both off (the
//! node only chats).
//!
//! - A node with nobody to join through (no `--bootstrap`, no saved peers)
//!   starts a new ring: `started a new ring: this node is its first
//!   member`. Except a node that was a ring member and lost its peer cache
//!   (`peers.json` missing or unreadable, no usable `peers.json.bak`, and
//!   the data dir's `ring` file says it was a member): founding a ring
//!   would split the table, so it prints `not starting a new ring: …` and
//!   joins through the first ring member it reaches (a peer that redials
//!   it, or `connect ADDR`). `--create-ring` founds one anyway. Any other node joins through the first ring member it
//!   connects to, retrying with backoff after a failure (`could not join
//!   the ring: …; retrying in 0.5s`), and prints `joined the ring
//!   (successor <…>, predecessor <…>, N hops)`.
//! - One node starts each network's ring. Two rings that meet merge by
//!   ring unification (spec/chord.md §6.7: a member checks a node of its
//!   peer cache every 30 merge ticks), but a split ring serves split data
//!   until then: a node that should join a network is started with
//!   `--bootstrap`, not alone and `connect`ed later. After
//!   restarting a whole network from saved peer caches (where every node
//!   would wait to join), give one node `--create-ring`.
//! - A member prints `ring: member, successors <…> <…>, predecessor <…>`
//!   whenever its place in the ring changes; `ring` prints it on demand,
//!   with what the node stores of the table.
//! - `put KEY VALUE` writes this node's *owned* key KEY (only this node
//!   may overwrite or delete it; spec/chord.md §10.1) and prints `stored
//!   KEY (version N)` once every replica holds it; `get KEY` prints `KEY =
//!   VALUE (version N, by <writer>)`, `KEY: not found`, or `KEY: not found
//!   (deleted, version N)`; `del KEY` prints `deleted KEY (version N)`.
//!   `get ID/KEY` reads another node's owned key; `put|get|del --open KEY`
//!   work on *open* keys, which anyone may write (each write signed).
//!   Failures print `error: …`. Keys are one word (1 to 256 bytes); values
//!   the rest of the line (up to 1 MiB).
//! - `--successors R` (default 8) is the successor list length. Failure
//!   tolerance holds once the ring has more than R members and has settled
//!   (spec/chord.md §5.2): a test network of four nodes uses
//!   `--successors 2`. `--replicas N` (default 3, at most R) is how many
//!   nodes hold each key.
//! - `--id-puzzle-bits B` (off by default) makes the ring require ids that
//!   meet the static id puzzle of B bits (spec/chord.md §6.5), which prices
//!   every try of an attacker grinding an id next to a target; a new
//!   identity is ground to meet it. Every member must use the same B.
//!
//! `--hand-wired` keeps the overlay as wired: the node dials only what
//! `--bootstrap` and `connect` name, and neither grows to a target peer
//! count nor sends peer lists (with `--no-chord`, as the ring dials its
//! fingers). `node/tests/sim_vs_real.rs` wires 64 processes so, to compare
//! them with a simulation of the same topology.
//!
//! `--broadcast plumtree` spreads broadcasts by Plumtree over HyParView
//! membership (views sized for about 1,000 nodes: 4 active, 24 passive)
//! instead of flooding; every node of a network should use the same.

#![forbid(unsafe_code)]

mod console;
mod console_lines;
mod data_dir;
mod display;
mod logging;
mod network;
mod port_mapping;
mod ring_view;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringmesh::{ChordConfig, Config, DhtConfig, SyncConfig};

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
    /// the public address behind a port forward); repeat for several.
    /// Without it a node listening on 0.0.0.0 (or [::]) announces this
    /// machine's interface addresses, never 0.0.0.0 itself.
    #[arg(long = "announce", value_name = "ADDR")]
    pub(crate) announce: Vec<SocketAddr>,
    /// Keep the identity key and the peer cache here (created if missing;
    /// locked: one process per directory). Without it the node has a fresh
    /// identity and forgets its peers.
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
    /// Run without the ring and the table (`put`, `get`, `del`, `ring`):
    /// the node only chats.
    #[arg(long)]
    pub(crate) no_chord: bool,
    /// Start a new ring even though there are peers to join through. A
    /// node without --bootstrap and saved peers does so by itself, unless
    /// its data dir says it was a ring member and its peer cache is lost:
    /// then it waits for ring peers. This is for restarting a whole network
    /// from saved peer caches, or a lone member whose cache is gone (one
    /// node only: two rings merge only after a while, spec/chord.md §6.7).
    #[arg(long, conflicts_with = "no_chord")]
    pub(crate) create_ring: bool,
    /// Successor list length (1 to 32; default 8): a member keeps working
    /// while one of its R successors lives. Failure tolerance starts once
    /// the ring has R + 1 members.
    #[arg(long, value_name = "R", conflicts_with = "no_chord", value_parser = clap::value_parser!(u8).range(1..=32))]
    pub(crate) successors: Option<u8>,
    /// Require ring members' ids to meet the static id puzzle of B bits (1
    /// to 24; spec/chord.md §6.5): every member of a ring must use the same
    /// B. A new identity is ground to meet it (about 2^B key derivations:
    /// instant at 8, seconds at 16, minutes at 24); a stored one that does
    /// not is an error. Off by default.
    #[arg(long, value_name = "B", conflicts_with = "no_chord", value_parser = clap::value_parser!(u8).range(1..=24))]
    pub(crate) id_puzzle_bits: Option<u8>,
    /// Nodes that hold each key of the table (1 to R; default 3, or R if
    /// that is smaller).
    #[arg(long, value_name = "N", conflicts_with = "no_chord", value_parser = clap::value_parser!(u8).range(1..=32))]
    pub(crate) replicas: Option<u8>,
    /// Keep the overlay as wired by hand: dial only the nodes named by
    /// `--bootstrap` and `connect` (and redial them), never grow to a
    /// target peer count from the peer cache, and send no peer lists
    /// (the simulator's `topology::hand_wired`). For tests and for
    /// comparing a network of processes with a simulation of the same
    /// topology. Use with --no-chord: the ring dials its fingers.
    #[arg(long)]
    pub(crate) hand_wired: bool,
    /// How `msg` broadcasts spread: `flood` (every peer relays to every
    /// peer) or `plumtree` (a spanning tree over HyParView's small active
    /// views, announcements on the other links; spec/mesh.md "Plumtree",
    /// spec/membership.md). Every node of a network should use the same.
    #[arg(long, value_enum, default_value_t = BroadcastArg::Flood)]
    pub(crate) broadcast: BroadcastArg,
    /// Do not look for nodes on the local network. By default the node
    /// multicasts a small beacon (its id and announced addresses) to
    /// 239.255.72.77:47077 on each IPv4 interface but loopback, and dials
    /// the nodes whose beacons it hears (the handshake proves their ids),
    /// so nodes of one LAN find each other without --bootstrap. Off with
    /// --hand-wired, and for a node that announces only loopback
    /// addresses.
    #[arg(long)]
    pub(crate) no_lan: bool,
    /// Serve as a relay (spec/relay.md): hold reservations for peers that
    /// cannot be dialled and forward circuits to them, within the relay's
    /// limits (64 circuits, 8 per peer, 64 MiB and 30 min per circuit,
    /// 1 MiB/s each). Every node can use relays; only this one serves.
    #[arg(long)]
    pub(crate) relay: bool,
    /// Dial this relay at start and keep a reservation there, so that
    /// peers that cannot dial this node reach it through the relay. Without
    /// it a node reserves at up to two connected relays once a
    /// reachability check says it is not reachable.
    #[arg(long, value_name = "ADDR")]
    pub(crate) via_relay: Option<SocketAddr>,
    /// Ask the router to forward the listen port, and announce the
    /// router's external address and port it maps: `natpmp` (PCP at the
    /// default route's gateway, NAT-PMP if it speaks only that; alias
    /// `pcp`), `upnp` (UPnP IGD), `auto` (PCP/NAT-PMP, then UPnP) or `off`
    /// (the default). The mapping is renewed at half its lease (one hour
    /// asked) and removed at exit; each step is a console line.
    #[arg(long, value_enum, value_name = "METHOD", default_value_t = port_mapping::Method::Off)]
    pub(crate) port_mapping: port_mapping::Method,
    /// The same as `--port-mapping upnp` (kept for earlier command lines).
    #[arg(long, conflicts_with = "port_mapping")]
    pub(crate) upnp: bool,
}

impl NodeArgs {
    /// The port mapping asked for: `--port-mapping`, or `--upnp`.
    pub(crate) fn port_mapping(&self) -> port_mapping::Method {
        if self.upnp {
            port_mapping::Method::Upnp
        } else {
            self.port_mapping
        }
    }
}

/// How broadcasts spread (`--broadcast`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BroadcastArg {
    /// Flooding over every peer: the default.
    Flood,
    /// Plumtree over HyParView membership.
    Plumtree,
}

/// A [`Config`] preset ([`Config::lan`] or [`Config::wan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Preset {
    /// One site: pings every second, a dead peer noticed within 4 s.
    Lan,
    /// The internet: pings every 5 s, a dead peer noticed within 26 s.
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

    /// The sync table's settings at this preset's pace.
    pub(crate) fn sync(self) -> SyncConfig {
        match self {
            Preset::Lan => SyncConfig::lan(),
            Preset::Wan => SyncConfig::wan(),
        }
    }

    /// The ring's and the table's settings at this preset's pace.
    pub(crate) fn ring(self) -> (ChordConfig, DhtConfig) {
        match self {
            Preset::Lan => (ChordConfig::lan(), DhtConfig::lan()),
            Preset::Wan => (ChordConfig::wan(), DhtConfig::wan()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn port_mapping(args: &[&str]) -> Result<port_mapping::Method, clap::Error> {
        let line = ["ringmesh", "node", "--listen", "127.0.0.1:0"];
        let cli = Cli::try_parse_from(line.iter().chain(args))?;
        let Mode::Node(args) = cli.mode else {
            unreachable!("a node command line")
        };
        Ok(args.port_mapping())
    }

    #[test]
    fn upnp_is_the_old_name_of_port_mapping_upnp() {
        use port_mapping::Method;
        assert_eq!(port_mapping(&[]).ok(), Some(Method::Off));
        assert_eq!(port_mapping(&["--upnp"]).ok(), Some(Method::Upnp));
        for (value, method) in [
            ("auto", Method::Auto),
            ("upnp", Method::Upnp),
            ("natpmp", Method::Natpmp),
            ("pcp", Method::Natpmp),
            ("off", Method::Off),
        ] {
            assert_eq!(port_mapping(&["--port-mapping", value]).ok(), Some(method));
        }
        // Both at once is a mistake, not a silent choice.
        assert!(port_mapping(&["--upnp", "--port-mapping", "natpmp"]).is_err());
        assert!(port_mapping(&["--port-mapping", "igd"]).is_err());
    }
}
