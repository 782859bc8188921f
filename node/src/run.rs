//! Running a node: start the adapter, print what happens, serve the
//! console, keep the peer cache, bring the node into the ring.
//!
//! One loop on the main thread owns everything the program decides. Two
//! other threads only feed it: the adapter's (its events, and the node's
//! place in the ring when it changes; `network.rs`), which runs
//! `ringmesh_mio`'s own loop, and one that reads stdin (`node` mode only).
//! Both send into one channel, so the loop handles console lines and
//! network events in the order they came.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmesh::blobs::BlobHash;
use ringmesh::wire::{Capabilities, GoodbyeReason, PeerEntry};
use ringmesh::{
    Accepted, BlobsCommand, BlobsEvent, ChordCommand, ChordError, ChordEvent, ChordRole,
    CloseReason, CommandError, ConnId, DhtCommand, DhtError, DhtEvent, DhtFailure, DhtKey, Event,
    MeshCommand, MeshEvent, MessagingCommand, MessagingEvent, NodeId, OpId, PeersCommand,
    PeersEvent,
};
use ringmesh::{
    BroadcastMode, HyParViewConfig, KnownPeer, Node, PlumtreeConfig, ReachConfig, ReachEvent,
    RelayCommand, RelayConfig, RelayEvent, SyncCommand, SyncError, SyncEvent,
};
use ringmesh_mio::{
    AdapterConfig, AdapterConfigError, Handle, LanConfig, LanDiscovery, QueuedBytes, Spawned,
    add_file_command, read_whole, save_blob,
};
use tracing::{debug, info, warn};

use crate::console::{self, ConsoleCommand, KeyArg, SyncArg};
use crate::console_lines::{ConsoleLine, ConsoleLines};
use crate::data_dir::{CacheState, DataDir, KeyOrigin, new_identity, os_random};
use crate::display::{self, say};
use crate::logging::LogControl;
use crate::network::{self, Fed};
use crate::ring_view::RingView;
use crate::{BroadcastArg, NodeArgs};

/// How often the peer cache is compared with the saved one (and saved if
/// it changed): often enough that a killed node loses at most a second of
/// peers, rarely enough to cost nothing.
const PEER_CACHE_CHECK: Duration = Duration::from_secs(1);

/// Inputs waiting for the loop: this channel is the node's event buffer,
/// so it is as large as the adapters' default one. Beyond it the stdin
/// thread blocks, and the adapter drops events (counted, with a warning in
/// the log) rather than stall the network or grow our memory.
const INPUT_BACKLOG: usize = ringmesh_mio::DEFAULT_EVENT_CAPACITY;

/// The most bytes of events (their payloads: `ringmesh_mio::event_size`)
/// waiting to be printed: 32 MiB. Messages and broadcasts wait as the
/// lines they print (at most a few KiB each, see `display::printable`),
/// not as their payloads; what else waits is small, or bounded by the
/// table's own caps. With stdout not read (a paused
/// terminal, a pipe nobody drains) the program holds no more than this and
/// [`INPUT_BACKLOG`] events; the adapter drops the rest, counts them and
/// logs a warning (at most one per 10 s), and the console says how many
/// were dropped once it can print again.
const UNPRINTED_BYTES: usize = 32 << 20;

/// The longest wait between two attempts to join the ring. The first wait
/// is one stabilization interval (the pace at which the ring changes),
/// doubled after each failure up to this.
const JOIN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The longest console line: a longer one is read through and dropped
/// (`error: line too long`), never buffered whole.
pub(crate) const MAX_CONSOLE_LINE: usize = 64 * 1024;

/// `connect` dials followed at once, to say how each ended. A further one
/// is still dialled, its failure only logged.
const MAX_CONSOLE_DIALS: usize = 64;

/// Peers remembered as having left with a goodbye, to tell a ring notice
/// about graceful exits from one about failures. Cleared when full.
const MAX_REMEMBERED_EXITS: usize = 1024;

/// Relays a node that is not reachable keeps a reservation at.
const RELAYS_WANTED: usize = 2;

/// What the loop reacts to.
enum Input {
    /// From the adapter's thread.
    Network(Fed),
    Line(String),
    /// A console line longer than [`MAX_CONSOLE_LINE`] was dropped: its
    /// length in bytes.
    LineTooLong(usize),
    /// Stdin is closed: treated as `exit`, once the table commands under
    /// way have printed their outcome.
    StdinClosed,
    /// Ctrl-C (SIGINT) or SIGTERM: treated as `exit`, so peers get a
    /// goodbye and the peer cache is saved.
    Interrupted,
}

/// Where the program stands in bringing the node into the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// `--no-chord`.
    Off,
    /// Not a member: waiting for a chord peer to come up, or until
    /// `retry_at` after a failed join.
    Out {
        retry_at: Option<Instant>,
        /// The wait after the next failure.
        backoff: Duration,
    },
    /// A `ChordJoin` is under way.
    Joining { backoff: Duration },
    /// Created the ring or joined it.
    Member,
}

/// A table command waiting for its event, by [`OpId`]: the key as typed.
enum TableOp {
    Put(String),
    Delete(String),
    Get(String),
}

/// Whether the loop goes on after a console line.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// Runs a node until `exit`, end of stdin (with `console`), Ctrl-C or
/// SIGTERM (both forms).
pub(crate) fn run(args: &NodeArgs, console: bool, log: LogControl) -> Result<(), Box<dyn Error>> {
    // Locks the directory: a second process on it stops here.
    let data_dir = args.data_dir.as_deref().map(DataDir::open).transpose()?;
    let puzzle_bits = args.id_puzzle_bits.unwrap_or(0);
    let (identity, key_origin) = match &data_dir {
        Some(dir) => dir.load_or_create_identity(puzzle_bits)?,
        None => (new_identity(puzzle_bits)?, KeyOrigin::Created),
    };
    let (cached, cache_state) = match &data_dir {
        Some(dir) => {
            let read = dir.read_peer_cache();
            (read.peers, read.state)
        }
        None => (Vec::new(), CacheState::Missing),
    };
    // A fresh seed every start: determinism is for simulations. The seed
    // also feeds the Noise handshakes' ephemeral keys, which must never
    // repeat across runs.
    let seed = u64::from_le_bytes(os_random()?);

    let mut config = args.preset.config();
    config.peers.bootstrap.clone_from(&args.bootstrap);
    config.listen_addrs = args.announce.iter().copied().collect();
    if args.hand_wired {
        hand_wire(&mut config);
    }
    if args.broadcast == BroadcastArg::Plumtree {
        config.mesh.membership =
            ringmesh::Membership::HyParView(HyParViewConfig::for_network(PLUMTREE_SIZE));
        config.mesh.broadcast = BroadcastMode::Plumtree(PlumtreeConfig::default());
    }
    // The sync table runs on every node of the program: it needs no ring.
    config.sync = Some(args.preset.sync());
    // Blobs too: `add`, `fetch`, `blobs` (in files under the data
    // directory, else in memory while the node runs).
    config.blobs = Some(blobs_config());
    // Peers tell each other where they see them (spec/reach.md): a node
    // behind a NAT learns its public address.
    // A node on loopback has no peer on another host to dial it back, and
    // a burst of dial-backs from one address would spend the admission
    // budget that address shares with its peers' real connections.
    config.reach = Some(ReachConfig {
        probe_peers: if args.listen.ip().is_loopback() { 0 } else { 3 },
        ..ReachConfig::default()
    });
    // Every node can hold reservations at relays and reach peers through
    // them (spec/relay.md); `--relay` serves as one.
    config.relay = Some(RelayConfig {
        serve: args.relay,
        ..RelayConfig::default()
    });
    if !args.no_chord {
        let (mut chord, mut dht) = args.preset.ring();
        if let Some(r) = args.successors {
            chord.successors = r.into();
        }
        dht.replicas = match args.replicas {
            Some(n) => n.into(),
            None => dht.replicas.min(chord.successors),
        };
        if dht.replicas > chord.successors {
            return Err(format!(
                "--replicas {} is more than the {} successors a node keeps (--successors)",
                dht.replicas, chord.successors
            )
            .into());
        }
        chord.id_puzzle_bits = puzzle_bits;
        config.chord = Some(chord);
        config.dht = Some(dht);
    }
    let join_backoff = config.chord.as_ref().map_or(Duration::ZERO, |c| {
        Duration::from_micros(c.stabilize_interval.as_micros())
    });
    let chord = config.chord.is_some();

    // Bounded, so that a flood of messages the console cannot print fast
    // enough (a paused terminal, an unread pipe) backs up into the
    // adapter's own bounded channel, which drops and counts, instead of
    // growing our memory.
    let (tx, rx) = mpsc::sync_channel(INPUT_BACKLOG);
    let unprinted = QueuedBytes::new(UNPRINTED_BYTES);
    let Spawned {
        handle,
        thread: adapter_thread,
    } = network::spawn(
        AdapterConfig {
            // With a data directory, blobs live in files under it: they
            // outlive the process, and a fetch resumes after a restart.
            blob_dir: data_dir.as_ref().map(|dir| dir.path().join(BLOB_DIR)),
            ..AdapterConfig::new(args.listen, config, identity, seed)
        },
        tx.clone(),
        Input::Network,
        unprinted.clone(),
    )
    .map_err(|e| match refusal(&e) {
        Some(AdapterConfigError::UndialableListenAddr { addr }) => {
            format!("--announce {addr}: no peer can dial it (unspecified address or port 0)")
        }
        Some(AdapterConfigError::NothingToAnnounce { bound }) => format!(
            "--listen {bound}: no peer can dial an unspecified address, this machine has no \
             interface address to announce instead, and a ring member must tell peers where \
             to dial it: pass --announce ADDR (or run with --no-chord)"
        ),
        Some(AdapterConfigError::BlobDir { dir, reason }) => {
            format!("cannot open the blob store in {}: {reason}", dir.display())
        }
        _ => format!("cannot listen on {}: {e}", args.listen),
    })?;
    if !cached.is_empty() {
        info!(
            peers = cached.len(),
            "rejoining through the saved peer cache"
        );
        handle.command(PeersCommand::RestorePeers {
            peers: cached.clone(),
        })?;
    }
    say(&display::started(handle.node_id(), handle.local_addr()));
    if let Some(announced) = handle.inspect(|node| node.config().listen_addrs.to_vec()) {
        say(&display::announcing(&announced));
    }
    if args.broadcast == BroadcastArg::Plumtree {
        say("broadcasts spread by Plumtree over HyParView views (--broadcast plumtree)");
    }
    // Stops (within 100 ms) when dropped, at the end of this function.
    // A hand-wired overlay dials only what it is told.
    let _lan = (!args.no_lan && !args.hand_wired)
        .then(|| start_lan_discovery(&handle))
        .flatten();
    if let Some(dir) = &data_dir {
        report_data_dir(dir, &key_origin, &cache_state, cached.len());
    }
    if args.relay {
        say("serving as a relay (--relay)");
    }
    if let Some(addr) = args.via_relay {
        handle.command(PeersCommand::Connect { addr, peer: None })?;
    }
    // Removes the mapping when dropped, at the end of this function.
    let _mapping = crate::port_mapping::start(
        args.port_mapping(),
        handle.clone(),
        handle.local_addr().port(),
    );

    // Two rings merge only after a while (spec/chord.md §6.7), and serve
    // split data meanwhile: only a node with nobody to
    // join through starts one, unless told to. A node that was a ring
    // member and lost its peer cache would split the table by doing so: it
    // waits for ring peers instead.
    let anyone_to_join =
        !args.bootstrap.is_empty() || cached.iter().any(|peer| peer.id != handle.node_id());
    let lost_its_ring = data_dir.as_ref().is_some_and(DataDir::was_ring_member)
        && matches!(cache_state, CacheState::Missing | CacheState::Lost { .. });
    let membership = if !chord {
        Membership::Off
    } else if !args.create_ring && !anyone_to_join && lost_its_ring {
        say(
            "not starting a new ring: this node was a ring member and its peer cache is lost; \
             waiting for ring peers (`connect ADDR`, or restart with --create-ring to found a \
             new ring)",
        );
        Membership::Out {
            retry_at: None,
            backoff: join_backoff,
        }
    } else if args.create_ring || !anyone_to_join {
        handle
            .command(ChordCommand::Create)
            .map_err(|e| format!("cannot start a ring: {e}"))?;
        say("started a new ring: this node is its first member");
        Membership::Member
    } else {
        Membership::Out {
            retry_at: None,
            backoff: join_backoff,
        }
    };

    let interrupt = tx.clone();
    ctrlc::set_handler(move || {
        let _ = interrupt.try_send(Input::Interrupted);
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    if console {
        read_console(tx)?;
    } else {
        drop(tx);
    }

    let mut session = Session {
        handle: handle.clone(),
        log,
        data_dir,
        // Saved at the first check unless `peers.json` holds this already
        // (a restored or missing cache is written anew, even if empty).
        saved_peers: (cache_state == CacheState::Loaded).then_some(cached),
        save_failing: false,
        ring_marked: false,
        console_dials: HashMap::new(),
        bootstrap: args.bootstrap.clone(),
        unreachable_reported: false,
        graceful_exits: HashSet::new(),
        orphaned: None,
        next_cache_check: Instant::now() + PEER_CACHE_CHECK,
        remotes: HashMap::new(),
        reachability: BTreeMap::new(),
        relay_peers: BTreeSet::new(),
        relayed: HashSet::new(),
        via_relay: args.via_relay,
        view: None,
        shown_view: None,
        membership,
        table_ops: HashMap::new(),
        blob_paths: HashMap::new(),
        input_ended: false,
        join_hinted: false,
        unprinted,
        dropped_reported: 0,
    };
    session.mark_ring_member();
    // Joins now if a chord peer is somehow up already; otherwise at the
    // first `PeersEvent::Up`.
    session.try_join();
    let exit = session.serve(&rx);
    // The adapter's thread feeds its last events with blocking sends: with
    // the receiver gone they fail at once instead of waiting for a reader.
    drop(rx);
    if exit {
        // Save before shutting down: a stopped adapter has no peers to give.
        session.check_peer_cache(true);
        handle.shutdown();
    }
    match adapter_thread.join() {
        Ok(Ok(())) if exit => Ok(()),
        Ok(Ok(())) => Err("the adapter stopped unexpectedly".into()),
        Ok(Err(e)) => Err(format!("the adapter failed: {e}").into()),
        Err(_) => Err("the adapter thread panicked".into()),
    }
}

/// Starts LAN discovery (spec: `ringmesh_driver::LanDiscovery`): each node
/// heard on the LAN and not yet connected is dialled at its addresses,
/// its id demanded. `None`, with a log line, where it cannot run (no
/// IPv4 interface but loopback, the group's port not available).
fn start_lan_discovery(handle: &Handle) -> Option<LanDiscovery> {
    // A loopback address means nothing to another host of the LAN.
    let mut announced = handle.inspect(|node| node.announced_addrs().to_vec())?;
    announced.retain(|addr| !addr.ip().is_loopback());
    if announced.is_empty() {
        info!("LAN discovery off: this node announces no address another host could dial");
        return None;
    }
    let dialler = handle.clone();
    let found = move |peer: NodeId, addrs: Vec<SocketAddr>| {
        if dialler.peers().iter().any(|p| p.id == peer) {
            return;
        }
        say(&display::lan_found(peer, &addrs));
        if let Err(error) = dialler.command(PeersCommand::ConnectAny {
            addrs,
            peer: Some(peer),
        }) {
            debug!(peer = %peer.short(), %error, "cannot dial a node found on the LAN");
        }
    };
    match LanDiscovery::start(LanConfig::default(), handle.node_id(), &announced, found) {
        Ok(lan) => Some(lan),
        Err(error) => {
            info!(%error, "LAN discovery off");
            None
        }
    }
}

/// `config` with the node's own growth turned off (`--hand-wired`): no
/// target peer count to fill from the peer cache, no peer lists sent, as
/// the simulator's `topology::hand_wired` does.
/// The network size HyParView's views are sized for under `--broadcast
/// plumtree` (active view 4, passive 24): a few hundred to a few thousand
/// nodes.
const PLUMTREE_SIZE: u64 = 1_000;

fn hand_wire(config: &mut ringmesh::Config) {
    config.peers.target_peers = 0;
    config.peers.peer_exchange_size = 0;
}

/// The adapter's refusal of its configuration, if that is what `error` is.
fn refusal(error: &io::Error) -> Option<&AdapterConfigError> {
    error.get_ref()?.downcast_ref()
}

/// Says on the console what the start found in the data dir, if it is
/// worth saying: a rewritten key file, a peer cache that could not be read.
fn report_data_dir(dir: &DataDir, key: &KeyOrigin, cache: &CacheState, peers: usize) {
    match key {
        KeyOrigin::Upgraded => {
            info!(dir = %dir.path().display(), "identity.key rewritten in the checksummed format");
            say(
                "identity.key rewritten in the checksummed format (version 1); the id is unchanged",
            );
        }
        KeyOrigin::NotUpgraded(e) => {
            warn!(error = %e, "identity.key is in the old format (no checksum) and could not be rewritten");
        }
        KeyOrigin::Loaded | KeyOrigin::Created => {}
    }
    match cache {
        CacheState::Restored { problem } if problem != "missing" => say(&format!(
            "warning: the peer cache peers.json is unreadable: {problem}; using the last \
             good copy, peers.json.bak ({peers} peers)"
        )),
        CacheState::Restored { .. } => say(&format!(
            "warning: the peer cache peers.json is missing; using the last good copy, \
             peers.json.bak ({peers} peers)"
        )),
        CacheState::Lost { problem } => say(&format!(
            "warning: the peer cache peers.json is unreadable: {problem}; no good copy \
             to use: starting without saved peers"
        )),
        CacheState::Missing | CacheState::Loaded => {}
    }
}

fn read_console(tx: SyncSender<Input>) -> io::Result<()> {
    thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            for line in ConsoleLines::new(&mut stdin, MAX_CONSOLE_LINE) {
                let input = match line {
                    ConsoleLine::Line(line) => Input::Line(line),
                    ConsoleLine::TooLong(len) => Input::LineTooLong(len),
                };
                if tx.send(input).is_err() {
                    return;
                }
            }
            let _ = tx.send(Input::StdinClosed);
        })
        .map(drop)
}

/// The state the loop keeps between inputs.
struct Session {
    handle: Handle,
    log: LogControl,
    data_dir: Option<DataDir>,
    /// What `peers.json` holds now (in id order, as the node exports it);
    /// `None` before the first save if the start did not read it.
    saved_peers: Option<Vec<KnownPeer>>,
    /// The last save failed (and was reported: once, not at every retry).
    save_failing: bool,
    /// The data dir's `ring` marker is written (or its failure reported).
    ring_marked: bool,
    /// `connect` dials under way (or established but not yet up), to say
    /// how each ended.
    console_dials: HashMap<ConnId, ConsoleDial>,
    /// `--bootstrap`.
    bootstrap: Vec<SocketAddr>,
    /// A failed dial while no peer is connected was reported; again only
    /// once a peer has come up in between.
    unreachable_reported: bool,
    /// Peers whose last connection ended with a goodbye (they left, rather
    /// than failed). At most [`MAX_REMEMBERED_EXITS`].
    graceful_exits: HashSet<NodeId>,
    /// `ChordEvent::Orphaned` came: the successors the node had before,
    /// until the ring view that follows the event's turn says it is over
    /// (the peers' `Down` events of that turn may come after it).
    orphaned: Option<Vec<NodeId>>,
    next_cache_check: Instant,
    /// Each connected peer's transport address, for `peers` when the peer
    /// cache has no listen address for it.
    remotes: HashMap<NodeId, SocketAddr>,
    /// The last reachability check of each address checked (a `Hello`
    /// carries at most 8, so this holds at most 8).
    reachability: BTreeMap<SocketAddr, bool>,
    /// Connected peers that offer `RELAY` (at most the peers up).
    relay_peers: BTreeSet<NodeId>,
    /// Peers whose latest session runs through a relay (at most the peers
    /// up).
    relayed: HashSet<NodeId>,
    /// `--via-relay`: reserve at the peer that answers there.
    via_relay: Option<SocketAddr>,
    /// The node's place in the ring, as last fed (it follows the events
    /// fed before it).
    view: Option<RingView>,
    /// The view the last `ring:` line showed.
    shown_view: Option<RingView>,
    membership: Membership,
    /// Table commands waiting for their events.
    table_ops: HashMap<OpId, TableOp>,
    /// Where each running fetch is written when done.
    blob_paths: HashMap<BlobHash, std::path::PathBuf>,
    /// Stdin closed while table commands were under way: exit when they
    /// have ended.
    input_ended: bool,
    /// The hint that follows the first failed join was printed.
    join_hinted: bool,
    /// Bytes of events fed by the adapter and not handled yet.
    unprinted: QueuedBytes,
    /// The adapter's count of dropped events when it was last reported.
    dropped_reported: u64,
}

impl Session {
    /// Handles inputs until the console asks to exit (true) or the adapter
    /// stops on its own (false).
    fn serve(&mut self, rx: &Receiver<Input>) -> bool {
        loop {
            self.show_ring_change();
            let input = if let Some(at) = self.next_wakeup() {
                match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(input) => Some(input),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return false,
                }
            } else {
                match rx.recv() {
                    Ok(input) => Some(input),
                    Err(_) => return false,
                }
            };
            let flow = match input {
                None => Flow::Continue,
                Some(Input::Network(Fed::Ring(view))) => {
                    self.view = Some(view);
                    self.report_orphaned();
                    Flow::Continue
                }
                Some(Input::Network(fed @ (Fed::Event(_) | Fed::Print(_)))) => {
                    let size = fed.size();
                    match fed {
                        Fed::Event(event) => self.on_event(event),
                        Fed::Print(line) => say(&line),
                        Fed::Ring(_) | Fed::Stopped => {}
                    }
                    self.unprinted.release(size);
                    self.report_drops();
                    Flow::Continue
                }
                Some(Input::Line(line)) => self.on_line(&line),
                Some(Input::LineTooLong(len)) => {
                    say(&format!(
                        "error: line too long ({len} bytes; a console line is at most \
                         {MAX_CONSOLE_LINE}): ignored"
                    ));
                    Flow::Continue
                }
                Some(Input::StdinClosed) if self.table_ops.is_empty() => {
                    info!("end of input: shutting down");
                    Flow::Exit
                }
                // A script's last `get` should print its answer. Every
                // table command ends within `lookup_timeout`.
                Some(Input::StdinClosed) => {
                    info!(
                        pending = self.table_ops.len(),
                        "end of input: shutting down once the table commands under way end"
                    );
                    self.input_ended = true;
                    Flow::Continue
                }
                Some(Input::Interrupted) => {
                    info!("interrupted: shutting down");
                    Flow::Exit
                }
                Some(Input::Network(Fed::Stopped)) => return false,
            };
            if flow == Flow::Exit || (self.input_ended && self.table_ops.is_empty()) {
                return true;
            }
            self.check_peer_cache(false);
            if let Membership::Out {
                retry_at: Some(at), ..
            } = self.membership
                && at <= Instant::now()
            {
                self.try_join();
            }
        }
    }

    /// Says how many events the adapter dropped since the last report
    /// because this loop (stdout) could not keep up.
    fn report_drops(&mut self) {
        let dropped = self.handle.dropped_events();
        if dropped > self.dropped_reported {
            say(&format!(
                "({} events dropped: output was not read fast enough; {dropped} in all)",
                dropped - self.dropped_reported
            ));
            self.dropped_reported = dropped;
        }
    }

    /// When the loop must wake up without an input: the next peer-cache
    /// check (with a data dir), the next join attempt.
    fn next_wakeup(&self) -> Option<Instant> {
        let cache = self.data_dir.as_ref().map(|_| self.next_cache_check);
        let join = match self.membership {
            Membership::Out { retry_at, .. } => retry_at,
            _ => None,
        };
        cache.into_iter().chain(join).min()
    }

    /// Asks the node to join the ring through any connected chord peer, if
    /// it is out and no join is under way. Without a chord peer it waits
    /// for the next `PeersEvent::Up`.
    fn try_join(&mut self) {
        let Membership::Out { backoff, .. } = self.membership else {
            return;
        };
        match self.handle.command(ChordCommand::Join { via: None }) {
            Ok(_) => self.membership = Membership::Joining { backoff },
            Err(CommandError::Chord(ChordError::NoChordPeer)) => {
                debug!("no chord peer is up yet: joining the ring at the next one");
                self.membership = Membership::Out {
                    retry_at: None,
                    backoff,
                };
            }
            // A join the program lost track of is under way (or done):
            // its event says which.
            Err(CommandError::Chord(ChordError::AlreadyInRing)) => {
                self.membership = Membership::Joining { backoff };
            }
            Err(e) => {
                warn!(error = %e, "cannot join the ring");
                self.join_failed(&e.to_string());
            }
        }
    }

    /// Schedules the next join attempt, with a doubled wait after it.
    fn join_failed(&mut self, reason: &str) {
        let backoff = match self.membership {
            Membership::Out { backoff, .. } | Membership::Joining { backoff } => backoff,
            Membership::Off | Membership::Member => return,
        };
        say(&format!(
            "could not join the ring: {reason}; retrying in {:.1}s",
            backoff.as_secs_f64()
        ));
        if !self.join_hinted {
            self.join_hinted = true;
            say(
                "(a node joins through a ring member; if no node of this network is one, \
                 restart one node with --create-ring)",
            );
        }
        self.membership = Membership::Out {
            retry_at: Some(Instant::now() + backoff),
            backoff: (backoff * 2).min(JOIN_BACKOFF_MAX),
        };
    }

    /// Prints a `ring:` line if the node's successors, predecessor or role
    /// changed since the last one, once it is a member (so the line comes
    /// after the one saying it joined).
    fn show_ring_change(&mut self) {
        if self.membership != Membership::Member {
            return;
        }
        let Some(view) = &self.view else {
            return;
        };
        if view.role == ChordRole::Member
            && self
                .shown_view
                .as_ref()
                .is_none_or(|shown| shown.ring_differs(view))
        {
            say(&display::ring(view));
            self.shown_view = Some(view.clone());
        }
    }

    /// Saves the peer cache if it changed, at most once per
    /// [`PEER_CACHE_CHECK`] unless `now`.
    fn check_peer_cache(&mut self, now: bool) {
        let Some(dir) = &self.data_dir else {
            return;
        };
        if !now && Instant::now() < self.next_cache_check {
            return;
        }
        self.next_cache_check = Instant::now() + PEER_CACHE_CHECK;
        let peers = self.handle.inspect(Node::peer_cache).unwrap_or_default();
        if self.saved_peers.as_ref() == Some(&peers) {
            return;
        }
        match dir.write_peer_cache(&peers) {
            Ok(()) => {
                debug!(peers = peers.len(), "peer cache saved");
                if self.save_failing {
                    self.save_failing = false;
                    say("the peer cache is saved again");
                }
                self.saved_peers = Some(peers);
            }
            // Retried every check; said once (a read-only data dir would
            // otherwise fill the log).
            Err(e) if self.save_failing => debug!(error = %e, "peer cache still not saved"),
            Err(e) => {
                self.save_failing = true;
                warn!(error = %e, "peer cache not saved");
                say(&format!(
                    "warning: cannot save the peer cache: {e} (retrying quietly; the node runs on)"
                ));
            }
        }
    }

    /// Writes the data dir's `ring` marker once the node is a member.
    fn mark_ring_member(&mut self) {
        if self.ring_marked || self.membership != Membership::Member {
            return;
        }
        self.ring_marked = true;
        if let Some(dir) = &self.data_dir
            && let Err(e) = dir.mark_ring_member()
        {
            warn!(error = %e, "ring membership not recorded");
            say(&format!(
                "warning: {e}: if this node's peer cache is lost, it may found a ring of its own"
            ));
        }
    }

    /// Prints the notice for an `Orphaned` event once the ring view after
    /// it came: whether the lost successors left (a goodbye) or failed.
    fn report_orphaned(&mut self) {
        let Some(lost) = self.orphaned.take() else {
            return;
        };
        if !lost.is_empty() && lost.iter().all(|id| self.graceful_exits.contains(id)) {
            say("ring: every successor of this node left the network; carrying on without them");
        } else {
            say(
                "ring: every successor of this node failed (more than the ring tolerates); recovering",
            );
        }
    }

    /// A dial ended without a session (or a session ended before its peer
    /// was up): what the console says, if it dialled, or if nobody is
    /// connected and the node waits for its `--bootstrap`.
    fn on_closed(&mut self, conn: ConnId, reason: &CloseReason) {
        if let Some(dial) = self.console_dials.remove(&conn) {
            match (reason, dial.peer) {
                (CloseReason::Duplicate, Some(peer)) => say(&format!(
                    "already connected to <{}> (dialled {})",
                    peer.short(),
                    dial.addr
                )),
                (CloseReason::Duplicate, None) => {
                    say(&format!("already connected to {}", dial.addr))
                }
                // Its session ended after it was up: `peer down` says so.
                (_, Some(peer)) if self.remotes.contains_key(&peer) => {}
                _ => say(&format!(
                    "could not reach {}: {}",
                    dial.addr,
                    display::close_reason(reason)
                )),
            }
            return;
        }
        if let CloseReason::DialFailed(_) = reason
            && self.remotes.is_empty()
            && !self.bootstrap.is_empty()
            && !self.unreachable_reported
        {
            self.unreachable_reported = true;
            let addrs: Vec<String> = self.bootstrap.iter().map(ToString::to_string).collect();
            say(&format!(
                "could not reach {} (--bootstrap): {}; retrying with backoff",
                addrs.join(", "),
                display::close_reason(reason)
            ));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Peers(PeersEvent::Up {
                peer,
                remote,
                direction,
            }) => {
                self.remotes.insert(peer, remote);
                self.graceful_exits.remove(&peer);
                self.console_dials.retain(|_, dial| dial.peer != Some(peer));
                self.unreachable_reported = false;
                say(&display::peer_up(peer, remote, direction));
                // Maybe a chord peer to join through: a new fact, so no
                // need to wait out a backoff.
                if let Membership::Out { backoff, .. } = self.membership {
                    self.membership = Membership::Out {
                        retry_at: None,
                        backoff,
                    };
                    self.try_join();
                }
            }
            Event::Peers(PeersEvent::Down { peer, reason }) => {
                self.remotes.remove(&peer);
                self.relay_peers.remove(&peer);
                self.relayed.remove(&peer);
                if matches!(reason, CloseReason::Goodbye(GoodbyeReason::Shutdown)) {
                    if self.graceful_exits.len() >= MAX_REMEMBERED_EXITS {
                        self.graceful_exits.clear();
                    }
                    self.graceful_exits.insert(peer);
                } else {
                    self.graceful_exits.remove(&peer);
                }
                say(&display::peer_down(peer, &reason));
            }
            Event::Peers(PeersEvent::Established {
                conn,
                peer,
                remote,
                capabilities,
                ..
            }) => {
                if let Some(dial) = self.console_dials.get_mut(&conn) {
                    dial.peer = Some(peer);
                }
                if conn.is_relayed() {
                    self.relayed.insert(peer);
                } else {
                    self.relayed.remove(&peer);
                }
                if capabilities.contains(Capabilities::RELAY) && !conn.is_relayed() {
                    self.relay_peers.insert(peer);
                    if self.via_relay == Some(remote) {
                        self.reserve_at(peer);
                    }
                }
            }
            Event::Relay(event) => self.on_relay_event(event),
            Event::Peers(PeersEvent::Closed { conn, reason, .. }) => self.on_closed(conn, &reason),
            Event::Mesh(MeshEvent::Broadcast {
                origin, payload, ..
            }) => say(&display::broadcast(origin, &payload)),
            Event::Messaging(MessagingEvent::Direct { from, payload }) => {
                say(&display::direct(from, &payload))
            }
            Event::Messaging(MessagingEvent::SendFailed { to, reason, .. }) => say(&format!(
                "error: message to <{}> not delivered: {reason}",
                to.short()
            )),
            Event::Messaging(MessagingEvent::Request { from, .. }) => {
                debug!(peer = %from.short(), "request ignored: this program answers none");
            }
            Event::Chord(ChordEvent::Joined {
                successor,
                predecessor,
                hops,
            }) => {
                self.membership = Membership::Member;
                say(&display::joined(successor, predecessor, hops));
                self.mark_ring_member();
            }
            Event::Chord(ChordEvent::JoinFailed { reason }) => {
                self.join_failed(&reason.to_string())
            }
            // Said once the turn's `Down` events are in: they tell a
            // graceful exit from a failure, which this event does not.
            Event::Chord(ChordEvent::Orphaned) => {
                let before = self.view.as_ref().map(|v| v.successors.clone());
                self.orphaned = Some(before.unwrap_or_default());
            }
            Event::Dht(
                DhtEvent::PutDone { id, version } | DhtEvent::DeleteDone { id, version },
            ) => match self.table_ops.remove(&id) {
                Some(TableOp::Put(key)) => say(&display::put_acked(&key, false, version)),
                Some(TableOp::Delete(key)) => say(&display::put_acked(&key, true, version)),
                Some(TableOp::Get(key)) => {
                    warn!(op = id.0, %key, "a get was answered as a put; ignored");
                }
                None => debug!(op = id.0, "put acknowledged for an unknown operation"),
            },
            Event::Dht(DhtEvent::GetDone {
                id,
                value,
                version,
                writer,
                ..
            }) => match self.table_ops.remove(&id) {
                Some(TableOp::Get(key)) => {
                    say(&display::got(&key, value.as_deref(), version, writer))
                }
                Some(other) => {
                    warn!(
                        op = id.0,
                        key = other.key(),
                        "a put was answered as a get; ignored"
                    );
                }
                None => debug!(op = id.0, "get result for an unknown operation"),
            },
            Event::Sync(SyncEvent::Changed {
                key, value, writer, ..
            }) if writer != self.handle.node_id() => {
                say(&display::sync_changed(&key, value.as_deref(), writer));
            }
            Event::Blobs(event) => self.on_blob_event(event),
            // Plumtree mode: who this node's broadcasts go to. An operator
            // sees the mesh form and heal; tests wait for it.
            Event::Mesh(MeshEvent::NeighborUp { peer }) => {
                say(&format!("mesh neighbour up: {}", peer.short()));
            }
            Event::Mesh(MeshEvent::NeighborDown { peer }) => {
                say(&format!("mesh neighbour down: {}", peer.short()));
            }
            Event::Reach(ReachEvent::AddressAdopted { addr, observers }) => {
                say(&display::address_adopted(addr, observers));
            }
            Event::Reach(ReachEvent::Reachability {
                addr,
                reachable,
                reached,
                unreached,
                unanswered,
            }) => {
                say(&display::reachability(
                    addr,
                    reachable,
                    reached,
                    reached + unreached + unanswered,
                ));
                self.reachability.insert(addr, reachable);
                if !reachable {
                    self.reserve_at_relays();
                }
            }
            Event::Dht(DhtEvent::Failed { id, reason }) => match self.table_ops.remove(&id) {
                Some(op) => say(&table_failure(&op, &reason)),
                None => debug!(op = id.0, %reason, "failure of an unknown table operation"),
            },
            _ => {}
        }
    }

    /// Asks `relay` to hold a reservation for this node.
    fn reserve_at(&mut self, relay: NodeId) {
        if let Err(e) = self.handle.command(RelayCommand::Reserve { relay }) {
            say(&format!(
                "error: cannot reserve at relay <{}>: {e}",
                relay.short()
            ));
        }
    }

    /// Not reachable: reserve at up to [`RELAYS_WANTED`] connected relays
    /// (those holding a reservation already count).
    fn reserve_at_relays(&mut self) {
        let held = self
            .handle
            .inspect(|node| node.relays())
            .unwrap_or_default();
        let wanted = RELAYS_WANTED.saturating_sub(held.len());
        let more: Vec<NodeId> = self
            .relay_peers
            .iter()
            .copied()
            .filter(|peer| !held.contains(peer))
            .take(wanted)
            .collect();
        for relay in more {
            self.reserve_at(relay);
        }
    }

    fn on_relay_event(&mut self, event: RelayEvent) {
        match event {
            RelayEvent::Reserved { relay, ttl } => say(&format!(
                "relay <{}> holds a reservation for this node ({} s)",
                relay.short(),
                ttl.as_micros() / 1_000_000
            )),
            RelayEvent::ReserveRefused { relay, status } => say(&format!(
                "relay <{}> refused a reservation: {status:?}",
                relay.short()
            )),
            RelayEvent::ConnectRefused {
                relay,
                target,
                status,
            } => say(&format!(
                "relay <{}> refused a circuit to <{}>: {status:?}",
                relay.short(),
                target.short()
            )),
            RelayEvent::Punched {
                peer,
                remote,
                attempt,
            } => say(&format!(
                "hole punch with <{}> succeeded: direct connection to {remote} (attempt {attempt})",
                peer.short()
            )),
            RelayEvent::PunchFailed { peer, attempts } => say(&format!(
                "hole punch with <{}> failed after {attempts} attempts: the session stays relayed",
                peer.short()
            )),
            _ => {}
        }
    }

    /// The blob store's directory, when blobs live in files.
    fn blob_dir(&self) -> Option<std::path::PathBuf> {
        self.data_dir.as_ref().map(|dir| dir.path().join(BLOB_DIR))
    }

    fn add_blob(&mut self, path: &str) {
        // With a data directory the file is copied into the store and
        // hashed here, in pieces, off the node's thread; the node then
        // serves it from the file. Without one it is read into memory.
        let dir = self.blob_dir();
        match add_file_command(dir.as_deref(), std::path::Path::new(path)) {
            // `Added` prints the hash.
            Ok((_, command)) => match self.handle.command(command) {
                Ok(_) => info!(path, "blob added"),
                Err(e) => say(&format!("error: cannot add {path}: {e}")),
            },
            Err(e) => say(&format!("error: cannot add {path}: {e}")),
        }
    }

    fn fetch_blob(&mut self, hash: &str, path: Option<&str>) {
        let Ok(parsed) = hash.parse::<BlobHash>() else {
            return say("error: a blob hash is 64 hex digits");
        };
        let path = std::path::PathBuf::from(path.unwrap_or(hash));
        match self.handle.command(BlobsCommand::Fetch {
            hash: parsed,
            providers: Vec::new(),
        }) {
            Ok(_) => {
                say(&format!("fetching {parsed} into {}", path.display()));
                self.blob_paths.insert(parsed, path);
            }
            Err(e) => say(&format!("error: cannot fetch {parsed}: {e}")),
        }
    }

    fn list_blobs(&self) {
        let listed = self.handle.inspect(|node| {
            let fetching = node.blob_fetches();
            let store = node.blob_store();
            store
                .map(|store| {
                    store
                        .list()
                        .into_iter()
                        .filter_map(|hash| {
                            let held = store.held(&hash)?;
                            let len = store.outboard(&hash)?.len();
                            Some((
                                hash,
                                len,
                                held.count(),
                                held.groups(),
                                fetching.contains(&hash),
                            ))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        });
        let listed = listed.unwrap_or_default();
        say(&format!("blobs: {} held (whole or in part)", listed.len()));
        for (hash, len, held, groups, fetching) in listed {
            say(&format!(
                "  {hash} {len} bytes, {held}/{groups} groups{}",
                if fetching { ", fetching" } else { "" }
            ));
        }
    }

    fn on_blob_event(&mut self, event: BlobsEvent) {
        match event {
            BlobsEvent::Added { hash, len } => say(&format!("added {hash} ({len} bytes)")),
            BlobsEvent::Length { hash, len } => {
                say(&format!("fetch {}: {len} bytes", short_hash(&hash)))
            }
            // A line per tenth: enough of a progress bar for a console that
            // other lines share.
            BlobsEvent::Progress { hash, held, groups }
                if crate::network::progress_line_due(held, groups) =>
            {
                say(&format!(
                    "fetch {}: {}% ({held}/{groups} groups)",
                    short_hash(&hash),
                    held * 100 / groups.max(1)
                ))
            }
            BlobsEvent::ProviderDropped {
                hash,
                provider,
                reason,
            } => say(&format!(
                "fetch {}: dropped <{}>: {reason:?}",
                short_hash(&hash),
                provider.short()
            )),
            BlobsEvent::Done { hash } => {
                let received = self
                    .handle
                    .inspect(|node| node.stats().blobs.bytes_verified)
                    .unwrap_or(0);
                let Some(path) = self.blob_paths.remove(&hash) else {
                    return say(&format!("fetched {hash}"));
                };
                let dir = self.blob_dir();
                let handle = self.handle.clone();
                let read = move || {
                    handle
                        .inspect(move |node| read_whole(node, &hash))
                        .flatten()
                };
                match save_blob(dir.as_deref(), &hash, &path, read) {
                    Ok(()) => {
                        say(&format!("fetched {hash} into {}", path.display()));
                        say(&format!(
                            "blobs: {received} bytes received and verified since start"
                        ));
                    }
                    Err(e) => say(&format!("error: cannot write {}: {e}", path.display())),
                }
            }
            _ => {}
        }
    }

    /// Starts a table command (`command` is `op`'s); its event prints the
    /// outcome.
    fn start_table_op(&mut self, command: DhtCommand, op: TableOp) {
        match self.handle.command(command) {
            Ok(Accepted::Op(id)) => {
                self.table_ops.insert(id, op);
            }
            Ok(other) => warn!(?other, "table command accepted without an operation id"),
            Err(CommandError::Dht(DhtError::Off)) => {
                say("error: the table needs the ring, and this node runs with --no-chord");
            }
            Err(e) => say(&format!(
                "error: cannot {} {}: {e}",
                op.verb(),
                display::printable(op.key().as_bytes())
            )),
        }
    }

    fn on_line(&mut self, line: &str) -> Flow {
        let command = match console::parse(line) {
            Ok(command) => command,
            Err(e) => {
                say(&format!("error: {e}"));
                return Flow::Continue;
            }
        };
        match command {
            ConsoleCommand::Nothing => {}
            ConsoleCommand::Msg(text) => self.broadcast(text),
            ConsoleCommand::Send { to, text } => self.send(to, text),
            ConsoleCommand::Peers => self.list_peers(),
            ConsoleCommand::Status => match self.handle.inspect(|node| {
                (
                    node.announced_addrs().to_vec(),
                    node.stats().reach,
                    display::RelayView {
                        relays: node.relays(),
                        load: node.relay_load(),
                        stats: node.stats().relay,
                    },
                )
            }) {
                Some((announced, reach, relay)) => {
                    say(&display::status(&announced, &reach, &self.reachability));
                    say(&display::relay_status(&relay));
                }
                None => say("error: the node has stopped"),
            },
            ConsoleCommand::Connect(addr) => self.connect(addr),
            ConsoleCommand::Put { key, value } => {
                if let Some((key, label)) = self.table_key(key) {
                    let value = Bytes::copy_from_slice(value.as_bytes());
                    let command = DhtCommand::Put { key, value };
                    self.start_table_op(command, TableOp::Put(label));
                }
            }
            ConsoleCommand::Get(key) => {
                if let Some((key, label)) = self.table_key(key) {
                    self.start_table_op(DhtCommand::Get { key }, TableOp::Get(label));
                }
            }
            ConsoleCommand::Del(key) => {
                if let Some((key, label)) = self.table_key(key) {
                    self.start_table_op(DhtCommand::Delete { key }, TableOp::Delete(label));
                }
            }
            ConsoleCommand::Sync(arg) => self.sync(arg),
            ConsoleCommand::Add(path) => self.add_blob(path),
            ConsoleCommand::Fetch { hash, path } => self.fetch_blob(hash, path),
            ConsoleCommand::Blobs => self.list_blobs(),
            ConsoleCommand::Ring => match self.handle.inspect(RingView::of) {
                Some(view) => {
                    say(&display::ring(&view));
                    say(&display::stored(&view));
                }
                None => say("error: the node has stopped"),
            },
            ConsoleCommand::Debug => match self.log.toggle_debug() {
                Ok(true) => say("debug logs on (stderr)"),
                Ok(false) => say("debug logs off"),
                Err(e) => say(&format!("error: cannot change the log filter: {e}")),
            },
            ConsoleCommand::Help => say(console::HELP),
            ConsoleCommand::Exit => return Flow::Exit,
        }
        Flow::Continue
    }

    /// `sync set|get|del|list`: the sync table (spec/sync.md), written and
    /// read locally; writes flood to every node.
    fn sync(&self, arg: SyncArg<'_>) {
        let bytes = |text: &str| Bytes::copy_from_slice(text.as_bytes());
        let (key, command) = match arg {
            SyncArg::Set { key, value } => (
                key,
                SyncCommand::Set {
                    key: bytes(key),
                    value: bytes(value),
                },
            ),
            SyncArg::Del(key) => (key, SyncCommand::Delete { key: bytes(key) }),
            SyncArg::Get(key) => {
                let held = self
                    .handle
                    .inspect({
                        let key = bytes(key);
                        move |node| node.sync_get(&key)
                    })
                    .flatten();
                say(&display::sync_got(key, held.as_ref()));
                return;
            }
            SyncArg::List => {
                let entries = self.handle.sync_entries();
                let live: Vec<_> = entries.iter().filter(|(_, h)| h.value.is_some()).collect();
                say(&format!("sync: {} key(s)", live.len()));
                for (key, held) in live {
                    say(&display::sync_got(
                        &String::from_utf8_lossy(key),
                        Some(held),
                    ));
                }
                return;
            }
        };
        match self.handle.command(command) {
            Ok(_) => say(&format!(
                "sync: {} {}",
                if matches!(arg, SyncArg::Del(_)) {
                    "deleted"
                } else {
                    "set"
                },
                display::printable(key.as_bytes())
            )),
            Err(CommandError::Sync(SyncError::Leased { owner, until })) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                say(&format!(
                    "error: {} is leased by <{}> for another {} s: only it may change it",
                    display::printable(key.as_bytes()),
                    owner.short(),
                    until.saturating_sub(now).div_ceil(1_000_000)
                ));
            }
            Err(e) => say(&format!(
                "error: sync {}: {e}",
                display::printable(key.as_bytes())
            )),
        }
    }

    /// `connect ADDR`: dials, unless ADDR is this node's or a connected
    /// peer's; the dial's end is said when it comes ([`Session::on_closed`]).
    fn connect(&mut self, addr: SocketAddr) {
        if addr == self.handle.local_addr() {
            say(&format!("error: {addr} is this node's own address"));
            return;
        }
        let known = self.handle.known_peers();
        let connected = self.handle.peers().into_iter().find(|peer| {
            self.remotes.get(&peer.id) == Some(&addr)
                || known
                    .iter()
                    .any(|entry| entry.id == peer.id && entry.addrs.contains(&addr))
        });
        if let Some(peer) = connected {
            say(&format!(
                "already connected to <{}> at {addr}",
                peer.id.short()
            ));
            return;
        }
        match self
            .handle
            .command(PeersCommand::Connect { addr, peer: None })
        {
            Ok(Accepted::Dialing(conn)) => {
                if self.console_dials.len() < MAX_CONSOLE_DIALS {
                    self.console_dials
                        .insert(conn, ConsoleDial { addr, peer: None });
                }
                say(&format!("dialling {addr}"));
            }
            Ok(_) => say(&format!("dialling {addr}")),
            Err(e) => say(&format!("error: cannot dial {addr}: {e}")),
        }
    }

    fn broadcast(&self, text: &str) {
        let payload = Bytes::copy_from_slice(text.as_bytes());
        match self.handle.command(MeshCommand::Broadcast { payload }) {
            Ok(_) if self.handle.peers().is_empty() => {
                say("(no peer is connected: nobody got that)");
            }
            Ok(_) => {}
            Err(e) => say(&format!("error: not sent: {e}")),
        }
    }

    /// The table key `key` names, and how results print it: `KEY` for
    /// this node's, `<owner>/KEY` for another node's, `open KEY`; `None`
    /// (said) if `ID` names no node.
    fn table_key(&self, key: KeyArg<'_>) -> Option<(DhtKey, String)> {
        let name = Bytes::copy_from_slice(key.name().as_bytes());
        let me = self.handle.node_id();
        let owner = match key {
            KeyArg::Open(text) => return Some((DhtKey::Open(name), format!("open {text}"))),
            KeyArg::Mine(_) => me,
            KeyArg::Of { owner, .. } => {
                let candidates = self
                    .handle
                    .peers()
                    .into_iter()
                    .map(|p| p.id)
                    .chain(self.handle.known_peers().into_iter().map(|p| p.id))
                    .chain([me]);
                match console::resolve_peer(owner, candidates) {
                    Ok(id) => id,
                    Err(e) => {
                        say(&format!("error: {e}"));
                        return None;
                    }
                }
            }
        };
        let label = if owner == me {
            key.name().to_owned()
        } else {
            format!("{}/{}", owner.short(), key.name())
        };
        Some((DhtKey::Owned { owner, name }, label))
    }

    fn send(&self, to: &str, text: &str) {
        let candidates = self
            .handle
            .peers()
            .into_iter()
            .map(|p| p.id)
            .chain(self.handle.known_peers().into_iter().map(|p| p.id));
        let to = match console::resolve_peer(to, candidates) {
            Ok(id) if id == self.handle.node_id() => {
                say("error: that is this node");
                return;
            }
            Ok(id) => id,
            Err(e) => {
                say(&format!("error: {e}"));
                return;
            }
        };
        let payload = Bytes::copy_from_slice(text.as_bytes());
        match self.handle.command(MessagingCommand::Send { to, payload }) {
            Ok(Accepted::Queued) => say(&format!(
                "(<{}> is not connected: finding and dialling it)",
                to.short()
            )),
            Ok(_) => {}
            Err(e) => say(&format!("error: not sent: {e}")),
        }
    }

    /// `peers`: a count line, then the connected peers (state `up` or
    /// `suspect`), then those only known from the peer cache (`known`).
    fn list_peers(&self) {
        let connected = self.handle.peers();
        let known = self.handle.known_peers();
        let me = self.handle.node_id();
        let listen: HashMap<NodeId, &[SocketAddr]> =
            known.iter().map(|e| (e.id, &e.addrs[..])).collect();
        let others: Vec<&PeerEntry> = known
            .iter()
            .filter(|e| e.id != me && !connected.iter().any(|p| p.id == e.id))
            .collect();
        say(&format!(
            "peers: {} connected, {} more known",
            connected.len(),
            others.len()
        ));
        for peer in &connected {
            let remote;
            let addrs = match (listen.get(&peer.id), self.remotes.get(&peer.id)) {
                (Some(addrs), _) => *addrs,
                (None, Some(addr)) => {
                    remote = [*addr];
                    &remote[..]
                }
                (None, None) => &[],
            };
            let state = match (peer.suspect, self.relayed.contains(&peer.id)) {
                (true, _) => "suspect",
                (false, true) => "up, relayed",
                (false, false) => "up",
            };
            say(&display::peer_row(peer.id, addrs, peer.rtt, state));
        }
        for entry in others {
            say(&display::peer_row(entry.id, &entry.addrs, None, "known"));
        }
    }
}

/// A `connect` dial the console waits on.
struct ConsoleDial {
    addr: SocketAddr,
    /// Who answered, once the handshake is done.
    peer: Option<NodeId>,
}

impl TableOp {
    fn key(&self) -> &str {
        match self {
            TableOp::Put(key) | TableOp::Delete(key) | TableOp::Get(key) => key,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            TableOp::Put(_) => "store",
            TableOp::Delete(_) => "delete",
            TableOp::Get(_) => "read",
        }
    }
}

/// The line for a failed table command. An incomplete write is stored,
/// only on fewer holders than asked: repair copies it to the rest.
fn table_failure(op: &TableOp, reason: &DhtFailure) -> String {
    let key = display::printable(op.key().as_bytes());
    match reason {
        DhtFailure::Incomplete { .. } => {
            format!("warning: {key}: {reason}; repair will copy it to the rest")
        }
        _ => format!("error: cannot {} {key}: {reason}", op.verb()),
    }
}

/// The program's blobs: the protocol's defaults, but serving up to 1 GiB/s
/// (the default 256 MiB/s is a provider's budget among many askers; a
/// node a user runs by hand serves what its disk and CPU can) with a
/// window of 128 groups (2 MiB) per provider, so that one provider fills
/// a fast link (spec/blobs.md §9).
fn blobs_config() -> ringmesh::BlobsConfig {
    let mut blobs = ringmesh::BlobsConfig::default();
    blobs.serve.bytes_per_sec = 1 << 30;
    blobs.fetch.window = 128;
    blobs
}

/// Where blobs live under the data directory.
const BLOB_DIR: &str = "blobs";

/// The first 16 hex digits of a blob hash, for progress lines.
fn short_hash(hash: &BlobHash) -> String {
    hash.to_string()[..16].to_owned()
}
