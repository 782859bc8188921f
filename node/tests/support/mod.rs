//! The harness the node's process tests share: a real `ringmesh` process
//! on 127.0.0.1, driven through its console (stdin) and watched through
//! what it prints (stdout), and a temporary directory.
//!
//! Every wait is for a line, with a deadline; nothing sleeps. Each process
//! is killed when its guard drops, so a failing test leaves none behind,
//! and prints what the process wrote to help find out why.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one expected line may take.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

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
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command);
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
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("stderr lock").push(line);
            }
        });
        let mut proc = Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            lines: Vec::new(),
            stderr,
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

/// The ring member that owns table key `key` among `ids` (full hex ids):
/// the first at or clockwise after the key's position, the first 16 bytes
/// of BLAKE3(key) read big-endian (spec/chord.md §1, §10.1).
pub(crate) fn owner_of<'a>(key: &str, ids: &[&'a str]) -> &'a str {
    let hash = blake3::hash(key.as_bytes());
    let position = u128::from_be_bytes(hash.as_bytes()[..16].try_into().expect("16 bytes"));
    let as_u128 = |id: &str| u128::from_str_radix(id, 16).expect("hex id");
    let mut sorted = ids.to_vec();
    sorted.sort_by_key(|id| as_u128(id));
    sorted
        .iter()
        .copied()
        .find(|id| as_u128(id) >= position)
        .unwrap_or(sorted[0])
}
