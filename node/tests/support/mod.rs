//! The harness the node's process tests share: a real `ringmesh` process
//! on 127.0.0.1, driven through its console (stdin) and watched through
//! what it prints (stdout), a temporary directory, and an [`Intruder`]: a
//! tampered peer running the real node code in the test's own process.
//!
//! Every wait is for a line, with a deadline; nothing sleeps. Each process
//! is killed when its guard drops, so a failing test leaves none behind,
//! and prints what the process wrote to help find out why.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmesh::wire::Message;
use ringmesh::{
    ConnId, Direction, Event, Input, Node, NodeId, Output, PeersCommand, PeersEvent, TransportError,
};

/// How long any one expected line may take.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Why this machine cannot build network namespaces for a test, if it
/// cannot: not root, or no `ip` (iproute2).
pub(crate) fn cannot_build_netns() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Some("not root (network namespaces need it)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("`ip` (iproute2) is missing".into()),
    }
}

/// One `ringmesh` process.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    /// Stdout lines as the reader thread gets them; disconnected at EOF.
    pub(crate) stdout: Receiver<String>,
    /// Every stdout line so far.
    pub(crate) lines: Vec<String>,
    pub(crate) stderr: Arc<Mutex<Vec<String>>>,
    /// Notified after each stderr line is pushed ([`Proc::wait_stderr`]).
    stderr_pushed: Arc<Condvar>,
    /// The full node id from the start line.
    pub(crate) id: String,
    /// The listen address from the start line.
    pub(crate) addr: String,
}

impl Proc {
    pub(crate) fn spawn(name: &str, args: &[&str]) -> Proc {
        Proc::spawn_with(name, args, |_| {})
    }

    /// As [`Proc::spawn`], with `configure` applied to the command first
    /// (another user, another environment).
    pub(crate) fn spawn_with(
        name: &str,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringmesh"));
        command
            .args(args)
            .args(["--preset", "lan", "--log-level", "info"])
            // Tests' nodes share this host's LAN: each test wires its own.
            .arg("--no-lan");
        configure(&mut command);
        Proc::start(name, command)
    }

    /// A `ringmesh` process run in the network namespace `netns` (through
    /// `ip netns exec`), with LAN discovery on.
    pub(crate) fn spawn_in_netns(name: &str, netns: &str, args: &[&str]) -> Proc {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_ringmesh")])
            .args(args)
            .args(["--preset", "lan", "--log-level", "info"]);
        Proc::start(name, command)
    }

    /// Runs `command` (a `ringmesh` command line) with its standard streams
    /// piped, and waits for its start line.
    fn start(name: &str, mut command: Command) -> Proc {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("ringmesh starts");
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("stdout piped");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&stderr);
        let stderr_pushed = Arc::new(Condvar::new());
        let pushed = Arc::clone(&stderr_pushed);
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("stderr lock").push(line);
                pushed.notify_all();
            }
        });
        let mut proc = Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            lines: Vec::new(),
            stderr,
            stderr_pushed,
            id: String::new(),
            addr: String::new(),
        };
        let start = proc.wait_for("the start line", |l| l.starts_with("node "));
        // `node <id> listening on <addr>`
        let words: Vec<&str> = proc.lines[start].split(' ').collect();
        assert_eq!(words.len(), 5, "start line: {}", proc.lines[start]);
        assert_eq!(&words[2..4], ["listening", "on"]);
        proc.id = words[1].to_owned();
        proc.addr = words[4].to_owned();
        assert_eq!(proc.id.len(), 32, "full id: {}", proc.id);
        proc
    }

    /// The id as printed beside messages.
    pub(crate) fn short(&self) -> &str {
        &self.id[..8]
    }

    pub(crate) fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to console");
        stdin.flush().expect("flush console");
    }

    /// The index of the first stdout line (seen before or arriving within
    /// [`WAIT`]) that matches.
    pub(crate) fn wait_for(&mut self, what: &str, matches: impl FnMut(&str) -> bool) -> usize {
        self.wait_for_after(0, what, matches)
    }

    /// As [`Proc::wait_for`], among the lines from index `from` on.
    pub(crate) fn wait_for_after(
        &mut self,
        from: usize,
        what: &str,
        mut matches: impl FnMut(&str) -> bool,
    ) -> usize {
        if let Some(i) = self.lines[from..].iter().position(|l| matches(l)) {
            return from + i;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line);
                    if matches(self.lines.last().expect("just pushed")) {
                        return self.lines.len() - 1;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {what} within {WAIT:?}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: stdout closed while waiting for {what}", self.name)
                }
            }
        }
    }

    /// Types `command` and returns the first line that matches among those
    /// printed after it (or at least not received before it).
    pub(crate) fn answer(&mut self, command: &str, matches: impl FnMut(&str) -> bool) -> String {
        while let Ok(line) = self.stdout.try_recv() {
            self.lines.push(line);
        }
        let from = self.lines.len();
        self.type_line(command);
        let at = self.wait_for_after(from, &format!("an answer to {command:?}"), matches);
        self.lines[at].clone()
    }

    /// Waits (up to [`WAIT`]) for a stderr (log) line that contains every
    /// one of `needles`, and returns it.
    pub(crate) fn wait_stderr(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.stderr.lock().expect("stderr lock");
        loop {
            if let Some(line) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: no stderr line with {needles:?} within {WAIT:?}",
                self.name
            );
            lines = self
                .stderr_pushed
                .wait_timeout(lines, left)
                .expect("stderr lock")
                .0;
        }
    }

    /// Waits for the exact line `line`.
    pub(crate) fn wait_line(&mut self, line: &str) -> usize {
        self.wait_for(&format!("line {line:?}"), |l| l == line)
    }

    /// Waits until there are `count` stdout lines.
    pub(crate) fn wait_count(&mut self, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.lines.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(_) => panic!("{}: only {} of {count} lines", self.name, self.lines.len()),
            }
        }
    }

    pub(crate) fn wait_peer_up(&mut self, peer: &str) {
        let prefix = format!("peer up <{peer}> ");
        self.wait_for(&prefix, |l| l.starts_with(&prefix));
    }

    /// Takes in what the process printed within `wait` (no panic if
    /// nothing: the caller decides what it waits for).
    pub(crate) fn read_for(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        while let Ok(line) = self
            .stdout
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.lines.push(line);
        }
    }

    /// How many times `line` was printed so far (including lines no wait
    /// has looked at yet).
    pub(crate) fn count(&mut self, line: &str) -> usize {
        while let Ok(more) = self.stdout.try_recv() {
            self.lines.push(more);
        }
        self.lines.iter().filter(|l| *l == line).count()
    }

    /// Waits for the process to end on its own (stdout closes), and returns
    /// how it ended.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("{}: did not exit in time", self.name),
            }
        }
        self.child.wait().expect("wait for exit")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("----- {} stdout:", self.name);
            for line in &self.lines {
                eprintln!("{line}");
            }
            eprintln!("----- {} stderr:", self.name);
            if let Ok(lines) = self.stderr.lock() {
                for line in lines.iter() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A fresh directory under cargo's temp dir for tests, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}-{nanos}", std::process::id()));
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `ring:` line a member of the ideal ring of `ids` (full ids) prints,
/// with 2 successors: the next two ids clockwise, and the one before.
pub(crate) fn ideal_ring_line(ids: &[String], id: &str) -> String {
    let mut ids = ids.to_vec();
    ids.sort();
    let i = ids.iter().position(|x| x == id).expect("a member");
    let short = |k: usize| ids[k % ids.len()][..8].to_owned();
    format!(
        "ring: member, successors <{}> <{}>, predecessor <{}>",
        short(i + 1),
        short(i + 2),
        short(i + ids.len() - 1)
    )
}

/// The ring member that owns the open table key named `name` among `ids`
/// (full hex ids): the first at or clockwise after the key's position, the
/// first 16 bytes of its hash (spec/chord.md §1, §10.1) read big-endian.
pub(crate) fn open_key_owner<'a>(name: &str, ids: &[&'a str]) -> &'a str {
    let key = ringmesh::DhtKey::Open(Bytes::copy_from_slice(name.as_bytes()));
    let position = u128::from_be_bytes(key.hash()[..16].try_into().expect("16 bytes"));
    let as_u128 = |id: &str| u128::from_str_radix(id, 16).expect("hex id");
    let mut sorted = ids.to_vec();
    sorted.sort_by_key(|id| as_u128(id));
    sorted
        .iter()
        .copied()
        .find(|id| as_u128(id) >= position)
        .unwrap_or(sorted[0])
}

/// The argument every small test ring uses: two successors, so a ring of
/// four members tolerates one failure (spec/chord.md §5.2).
const SMALL_RING: [&str; 2] = ["--successors", "2"];

/// A `bootstrap` process that has started a new ring (two successors).
pub(crate) fn ring_founder() -> Proc {
    let args = [&["bootstrap", "--listen", "127.0.0.1:0"][..], &SMALL_RING].concat();
    let mut boot = Proc::spawn("bootstrap", &args);
    boot.wait_line("started a new ring: this node is its first member");
    boot
}

/// A console node `name` joining the ring of `founder` (two successors),
/// with `extra` arguments; not yet waited on: see [`wait_joined`].
pub(crate) fn ring_joiner(name: &str, founder: &Proc, extra: &[&str]) -> Proc {
    let base = [
        "node",
        "--listen",
        "127.0.0.1:0",
        "--bootstrap",
        &founder.addr,
    ];
    Proc::spawn(name, &[&base[..], &SMALL_RING, extra].concat())
}

/// Waits for `p`'s `joined the ring (…)` line.
pub(crate) fn wait_joined(p: &mut Proc) {
    p.wait_for("the join line", |l| l.starts_with("joined the ring ("));
}

/// The id just before `id` on the ring of `ids` (full hex ids).
pub(crate) fn predecessor_in(ids: &[String], id: &str) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort();
    let at = sorted.iter().position(|x| x == id).expect("a member");
    sorted[(at + sorted.len() - 1) % sorted.len()].clone()
}

/// How long [`Intruder::pump_until`] waits for bytes at a time.
const PUMP_READ: Duration = Duration::from_millis(50);

/// A tampered peer: an in-process [`Node`] (Noise, its own identity, the
/// real node code) on a blocking `TcpStream` to one target, which sends
/// what it likes with [`Node::adversary_send`] ([`Intruder::send`]) and
/// answers everything else as the node would. Only its dial to the target
/// is real; other dials the node asks for go nowhere.
///
/// Nothing runs in the background: the test drives it with
/// [`Intruder::read`] (bytes from the target; the node fires its due
/// deadlines with each input) or [`Intruder::pump`] (its timers too).
pub(crate) struct Intruder {
    node: Node,
    stream: TcpStream,
    /// The node's connection to the target, once it dialled.
    conn: Option<ConnId>,
    target: SocketAddr,
    /// Where the node's clock starts.
    epoch: Instant,
    /// Every event the node emitted, in order.
    events: Vec<Event>,
    /// The target closed the connection, a write to it failed, or the node
    /// saw its peer go down.
    closed: bool,
    buf: Vec<u8>,
}

impl Intruder {
    /// Dials `target`, whose id is `target_id`, with `node` and runs the
    /// handshake until the session is up (panics if it is not within
    /// [`WAIT`]). `node` is fresh, made at `ringmesh::Instant::ZERO`: its
    /// clock starts here. A node with chord and table on (and a listen
    /// address, which nobody need dial) carries table messages.
    pub(crate) fn connect(target: SocketAddr, target_id: NodeId, node: Node) -> Intruder {
        let stream = TcpStream::connect(target).expect("connect to the target");
        stream.set_nodelay(true).expect("nodelay");
        let mut intruder = Intruder {
            node,
            stream,
            conn: None,
            target,
            epoch: Instant::now(),
            events: Vec::new(),
            closed: false,
            buf: vec![0u8; 64 << 10],
        };
        let now = intruder.now();
        let dial = PeersCommand::Connect {
            addr: target,
            peer: None,
        };
        intruder.node.command(now, dial).expect("dial the target");
        intruder.flush();
        assert!(intruder.conn.is_some(), "the node dials the target");
        intruder.pump_until("the session with the target", |i| {
            i.node.is_connected(target_id)
        });
        intruder
    }

    /// The node's clock: time since [`Intruder::connect`] began.
    pub(crate) fn now(&self) -> ringmesh::Instant {
        ringmesh::Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    /// The node, to inspect.
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// The node, to command directly at [`Intruder::now`];
    /// [`Intruder::flush`] afterwards.
    pub(crate) fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// Every event the node emitted so far.
    pub(crate) fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether the connection to the target is gone (closed by it, a write
    /// failed, or the node's session with it went down).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Writes what the node sends the target, keeps its events, and answers
    /// its (first) dial to the target as connected.
    pub(crate) fn flush(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Dial { conn, addr } if addr == self.target && self.conn.is_none() => {
                    self.conn = Some(conn);
                    let now = self.now();
                    let connected = Input::Connected {
                        conn,
                        remote: addr,
                        direction: Direction::Outbound,
                    };
                    self.node.handle_input(now, connected);
                }
                // The write is in the guard: only a failed one has more to do.
                Output::Send { conn, bytes }
                    if Some(conn) == self.conn
                        && !self.closed
                        && self.stream.write_all(&bytes).is_err() =>
                {
                    self.closed = true;
                }
                Output::Event(event) => {
                    if let Event::Peers(PeersEvent::Down { .. }) = &event {
                        self.closed = true;
                    }
                    self.events.push(event);
                }
                _ => {}
            }
        }
    }

    /// Feeds the node what arrives from the target within `wait` (if
    /// anything does) and flushes; the target's close (end of stream, or a
    /// read error) is fed to the node as `Input::Closed`. Whether the
    /// connection is still open.
    pub(crate) fn read(&mut self, wait: Duration) -> bool {
        let conn = self.conn.expect("dialled");
        if self.closed {
            return false;
        }
        self.stream
            .set_read_timeout(Some(wait))
            .expect("read timeout");
        let read = self.stream.read(&mut self.buf);
        let now = self.now();
        let input = match read {
            Ok(0) => Some(TransportError::Eof),
            Ok(n) => {
                let bytes = Bytes::copy_from_slice(&self.buf[..n]);
                self.node.handle_input(now, Input::Received { conn, bytes });
                None
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(_) => Some(TransportError::Reset),
        };
        if let Some(reason) = input {
            self.closed = true;
            self.node.handle_input(now, Input::Closed { conn, reason });
        }
        self.flush();
        !self.closed
    }

    /// Fires the node's timers if one is due, else [`Intruder::read`]s for
    /// up to `wait`. Whether the connection is still open.
    pub(crate) fn pump(&mut self, wait: Duration) -> bool {
        let now = self.now();
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_input(now, Input::Timeout);
            self.flush();
            return !self.closed;
        }
        self.read(wait)
    }

    /// [`Intruder::pump`]s until `done`; panics if that takes more than
    /// [`WAIT`], or if the connection closes first.
    pub(crate) fn pump_until(&mut self, what: &str, mut done: impl FnMut(&Intruder) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(!self.closed, "the connection closed before {what}");
            assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
            self.pump(PUMP_READ);
        }
    }

    /// Sends `message` to `peer` as it is, through the node's session
    /// ([`Node::adversary_send`]), and flushes. Whether it went out: the
    /// session with `peer` is up, the message fits its frame, and the
    /// connection is still open.
    pub(crate) fn send(&mut self, peer: NodeId, message: &Message) -> bool {
        let now = self.now();
        let sent = self.node.adversary_send(now, peer, message);
        self.flush();
        sent && !self.closed
    }
}
