//! Running a node: start the adapter, print what happens, serve the
//! console, keep the peer cache.
//!
//! One loop on the main thread owns everything the program decides. Two
//! helper threads only feed it: one forwards the adapter's events, one
//! reads stdin (`node` mode only). Both send into one channel, so the loop
//! handles console lines and network events in the order they came.

use std::collections::HashMap;
use std::error::Error;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmesh::wire::PeerEntry;
use ringmesh::{Accepted, Command, Event, Identity, NodeId};
use ringmesh_mio::{AdapterConfig, Handle, Running, spawn};
use tracing::{debug, info, warn};

use crate::NodeArgs;
use crate::console::{self, ConsoleCommand};
use crate::data_dir::{DataDir, os_random};
use crate::display;
use crate::logging::LogControl;

/// How often the peer cache is compared with the saved one (and saved if
/// it changed): often enough that a killed node loses at most a second of
/// peers, rarely enough to cost nothing.
const PEER_CACHE_CHECK: Duration = Duration::from_secs(1);

/// Inputs waiting for the loop before the helper threads block.
const INPUT_BACKLOG: usize = 1024;

/// What the loop reacts to.
enum Input {
    Event(Event),
    Line(String),
    /// Stdin is closed: treated as `exit`.
    StdinClosed,
    /// Ctrl-C (SIGINT) or SIGTERM: treated as `exit`, so peers get a
    /// goodbye and the peer cache is saved.
    Interrupted,
    /// The adapter's thread has ended (its event channel closed).
    AdapterStopped,
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
    let data_dir = args.data_dir.as_deref().map(DataDir::open).transpose()?;
    let identity = match &data_dir {
        Some(dir) => dir.load_or_create_identity()?,
        None => Identity::from_secret_bytes(os_random()?),
    };
    let cached = data_dir
        .as_ref()
        .map(DataDir::read_peer_cache)
        .unwrap_or_default();
    // A fresh seed every start: determinism is for simulations. The seed
    // also feeds the Noise handshakes' ephemeral keys, which must never
    // repeat across runs.
    let seed = u64::from_le_bytes(os_random()?);

    let mut config = args.preset.config();
    config.bootstrap.clone_from(&args.bootstrap);
    config.listen_addrs = args.announce.iter().copied().collect();
    if args.listen.ip().is_unspecified() && args.announce.is_empty() {
        warn!(listen = %args.listen, "listening on an unspecified address: peers will be told an address they cannot dial; pass --announce");
    }
    let Running {
        handle,
        events,
        thread: adapter_thread,
    } = spawn(AdapterConfig::new(args.listen, config, identity, seed))
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    if !cached.is_empty() {
        info!(
            peers = cached.len(),
            "rejoining through the saved peer cache"
        );
        handle.command(Command::AddPeers {
            peers: cached.clone(),
        })?;
    }
    say(&display::started(handle.node_id(), handle.local_addr()));

    // Bounded, so that a flood of messages the console cannot print fast
    // enough (a paused terminal, an unread pipe) backs up into the
    // adapter's own bounded channel, which drops and counts, instead of
    // growing our memory.
    let (tx, rx) = mpsc::sync_channel(INPUT_BACKLOG);
    forward_events(events, tx.clone())?;
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
        saved_peers: cached,
        next_cache_check: Instant::now() + PEER_CACHE_CHECK,
        remotes: HashMap::new(),
    };
    let exit = session.serve(&rx);
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

/// Prints one line on stdout. A closed stdout is not worth dying for: the
/// node keeps serving its peers.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn forward_events(events: Receiver<Event>, tx: SyncSender<Input>) -> io::Result<()> {
    thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            for event in events.iter() {
                if tx.send(Input::Event(event)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Input::AdapterStopped);
        })
        .map(drop)
}

fn read_console(tx: SyncSender<Input>) -> io::Result<()> {
    thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if tx.send(Input::Line(text)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        warn!(error = %e, "cannot read stdin; treating it as closed");
                        break;
                    }
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
    /// What `peers.json` holds now (in id order, as the node exports it).
    saved_peers: Vec<PeerEntry>,
    next_cache_check: Instant,
    /// Each connected peer's transport address, for `peers` when the peer
    /// cache has no listen address for it.
    remotes: HashMap<NodeId, SocketAddr>,
}

impl Session {
    /// Handles inputs until the console asks to exit (true) or the adapter
    /// stops on its own (false).
    fn serve(&mut self, rx: &Receiver<Input>) -> bool {
        loop {
            let input = if self.data_dir.is_some() {
                let wait = self
                    .next_cache_check
                    .saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
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
                Some(Input::Event(event)) => {
                    self.on_event(event);
                    Flow::Continue
                }
                Some(Input::Line(line)) => self.on_line(&line),
                Some(Input::StdinClosed) => {
                    info!("end of input: shutting down");
                    Flow::Exit
                }
                Some(Input::Interrupted) => {
                    info!("interrupted: shutting down");
                    Flow::Exit
                }
                Some(Input::AdapterStopped) => return false,
            };
            if flow == Flow::Exit {
                return true;
            }
            self.check_peer_cache(false);
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
        let peers = self.handle.known_peers();
        if peers == self.saved_peers {
            return;
        }
        match dir.write_peer_cache(&peers) {
            Ok(()) => {
                debug!(peers = peers.len(), "peer cache saved");
                self.saved_peers = peers;
            }
            Err(e) => warn!(error = %e, "peer cache not saved"),
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::PeerUp {
                peer,
                remote,
                direction,
            } => {
                self.remotes.insert(peer, remote);
                say(&display::peer_up(peer, remote, direction));
            }
            Event::PeerDown { peer, reason } => {
                self.remotes.remove(&peer);
                say(&display::peer_down(peer, &reason));
            }
            Event::Message {
                origin, payload, ..
            } => say(&display::broadcast(origin, &payload)),
            Event::Direct { from, payload } => say(&display::direct(from, &payload)),
            Event::SendFailed { to, reason, .. } => say(&format!(
                "error: message to <{}> not delivered: {reason}",
                to.short()
            )),
            Event::Request { from, .. } => {
                debug!(peer = %from.short(), "request ignored: this program answers none");
            }
            _ => {}
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
            ConsoleCommand::Connect(addr) => {
                match self.handle.command(Command::Connect { addr, peer: None }) {
                    Ok(_) => say(&format!("dialling {addr}")),
                    Err(e) => say(&format!("error: cannot dial {addr}: {e}")),
                }
            }
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

    fn broadcast(&self, text: &str) {
        let payload = Bytes::copy_from_slice(text.as_bytes());
        match self.handle.command(Command::Broadcast { payload }) {
            Ok(_) if self.handle.peers().is_empty() => {
                say("(no peer is connected: nobody got that)");
            }
            Ok(_) => {}
            Err(e) => say(&format!("error: not sent: {e}")),
        }
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
        match self.handle.command(Command::Send { to, payload }) {
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
            let state = if peer.suspect { "suspect" } else { "up" };
            say(&display::peer_row(peer.id, addrs, peer.rtt, state));
        }
        for entry in others {
            say(&display::peer_row(entry.id, &entry.addrs, None, "known"));
        }
    }
}
