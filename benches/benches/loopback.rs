//! Two nodes over 127.0.0.1 through each adapter, against a raw-TCP
//! baseline measured in the same run. See `benches/README.md`, section
//! "Loopback (adapters vs raw TCP)", for the figures and what limits them.
//!
//! ```sh
//! cargo bench -p ringmesh-benches --bench loopback               # ~1 min
//! cargo bench -p ringmesh-benches --bench loopback -- --quick    # ~10 s
//! cargo bench -p ringmesh-benches --bench loopback -- mio/Noise  # a filter
//! ```
//!
//! A filter is a substring of case names `adapter/security/case/size`, e.g.
//! `raw`, `one-way/1KiB`, `mio-embedded`, `async-std/Noise`. `-- --test`,
//! or running without cargo bench's `--bench` (`cargo test --all-targets`),
//! runs every case once with a few messages, as a smoke test.
//!
//! Round trips run in a child process started on one CPU, raw TCP's as
//! well (`one_cpu_child` says why: a wake-up across the vCPUs of an idle
//! virtual machine costs more than the whole round trip);
//! `-- --rtt-unpinned` runs them in this process, wherever the scheduler
//! places its threads.
//!
//! Not criterion: a one-way stream is timed from its first send to its last
//! delivery, which does not fit criterion's model of repeated independent
//! iterations. This is a plain `main` timing with `std::time::Instant` that
//! prints one Markdown table. An adapter's one-way ratio is the median
//! (with the lowest and highest) of its runs' throughput over that of a
//! raw-TCP run of the same size made just before each ("paired"): the
//! load on a shared machine moves within a minute. Round-trip ratios are
//! to the raw-TCP rows of the same run; a filter that skips the raw cases
//! prints `-`.
//!
//! | case | what is timed |
//! |---|---|
//! | `one-way` | node A sends `count` messages of `size` bytes to node B (`MessagingCommand::Send`) with at most `WINDOW_BYTES` of payload undelivered (far below the adapters' 32 MiB backlog cap); from the first send to B's last `Event::Messaging(MessagingEvent::Direct)`. Median of `reps` runs after a warm-up, with the slowest and fastest |
//! | `request/response` | A sends a 64-byte `Request` to B, B answers each with a `Respond` of the same payload as soon as its application code sees the `Event::Messaging(MessagingEvent::Request)`; one round trip at a time, each timed from the request to A seeing the response. `reps` rounds; the round with the median p50 is reported, with the lowest and highest p50 |
//!
//! The adapters, each driven as its API is meant to be used:
//!
//! - `mio`: `ringmesh_mio::spawn` (the adapter on its own thread).
//!   `Handle::submit` (no answer awaited) for sends, requests and responses
//!   (served on the calling thread when the adapter's loop is asleep);
//!   events from its `Receiver`. One-way: the bench's thread submits and
//!   counts B's events. Request/response: a thread answers for B.
//! - `mio embedded`: `ringmesh_mio::Adapter` in a `mio::Poll` loop the bench
//!   runs, one thread per node, application code in the same loop. One-way:
//!   sends are queued on the `Handle` and served together
//!   (`handle_timeout`); B acknowledges every quarter window with an 8-byte
//!   `Send` back, since A's thread cannot see B's count otherwise.
//!   Request/response: `Adapter::command`, run at once on the loop's
//!   thread. Events are taken from the adapter's own queue
//!   (`Adapter::with_event_queue`, `Adapter::poll_event`), no channel.
//! - `async-std`: `ringmesh_async_std::start`, the driver spawned on
//!   async-std's executor; `NodeHandle::post(..).await` per message (returns
//!   once the node task's queue has taken it, without waiting for the
//!   node's answer), `NodeHandle::request(..).await` and
//!   `respond(..).await`, events from its `Events` stream. The same counts
//!   and runs as the others.
//! - `raw TCP`: a `std::net::TcpStream` pair (`TCP_NODELAY` as the adapters
//!   set it); a frame is a 4-byte big-endian length and the payload, written
//!   with one `write_all`, read through a 64 KiB `BufReader` into a reused
//!   buffer by a second thread; ping-pong echoes the frame back.
//!   `raw TCP batched` (1 KiB only) writes through a 64 KiB `BufWriter`.
//!   `raw TCP epoll` (request/response only, not a baseline): the same
//!   ping-pong with non-blocking sockets, each end waiting in its own
//!   `mio::Poll` before it reads, as an adapter's loop does: the floor of
//!   an event loop's round trip.
//!
//! Both nodes use `Config::lan()` with `compression: false` (the payloads
//! are incompressible anyway; this keeps LZ4 out of it), in plaintext mode
//! and in Noise mode (the default). MB/s counts payload bytes, 1 MB =
//! 10^6 bytes.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use futures_lite::StreamExt;
use mio::{Events, Poll};
use ringmesh::{
    Command, Config, Event, Identity, MessagingCommand, MessagingEvent, NodeId, PeersCommand,
    PeersEvent, Security, SessionConfig,
};
use ringmesh_async_std::NodeHandle;
use ringmesh_benches::{SMALL, incompressible};
use ringmesh_mio::{Adapter, AdapterConfig, Running};

const KIB: usize = 1024;
const LARGE: usize = 64 * KIB;
/// Payload in flight at most in a one-way run: far below the adapter's
/// 32 MiB per-connection backlog cap (which would close the connection), and
/// below B's event buffer for 1 KiB messages (8,192 events; every adapter
/// here raises its buffer to [`EVENT_CAPACITY`], since a full one drops
/// events).
const WINDOW_BYTES: usize = 8 * 1024 * 1024;
/// The adapters' event buffer in this bench: room for a whole one-way
/// window of 1 KiB `Direct`s (8,192) with margin, above the default 1,024
/// (the application here reads in bursts).
const EVENT_CAPACITY: usize = 65_536;
/// How long any one expected event may take before the bench gives up.
const EVENT_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// How much to run (the default, `--quick`, or a smoke test), and which
/// cases.
#[derive(Debug, Clone)]
struct Plan {
    /// One-way runs per case; the median is reported.
    reps: usize,
    /// One-way messages of 64 KiB per run.
    large_count: usize,
    /// One-way messages of 1 KiB per run.
    small_count: usize,
    /// Untimed round trips before the timed ones.
    rtt_warmup: usize,
    /// Timed round trips.
    rtt_count: usize,
    /// Substrings of case names to run (all cases if empty), e.g.
    /// `mio/Noise` or `one-way/1KiB`.
    filters: Vec<String>,
    /// Which cases this process runs: see [`Part`].
    part: Part,
}

/// Which cases a process of the bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Every case, here (`--rtt-unpinned`: round trips wherever the
    /// scheduler puts the threads).
    All,
    /// The one-way cases here, the round trips in a child process started
    /// on one CPU (the default; see [`one_cpu_child`]).
    OneWayHere,
    /// Only the round trips, their rows written to stdout for the parent
    /// (`--rtt-child`, given by the parent).
    RttChild,
}

impl Plan {
    /// `cargo bench` passes `--bench`; without it (`cargo test
    /// --all-targets`), or with `--test` as criterion takes it, every case
    /// runs once, small, as a smoke test.
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |flag: &str| args.iter().any(|a| a == flag);
        let filters = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        let (reps, large_count, small_count, rtt_warmup, rtt_count) =
            if has("--test") || !has("--bench") {
                (1, 64, 2_000, 10, 100)
            } else if has("--quick") {
                (1, 1024, 50_000, 200, 2_000)
            } else {
                // 256 MiB and 195 MiB of payload per run.
                (3, 4096, 200_000, 1_000, 10_000)
            };
        Plan {
            reps,
            large_count,
            small_count,
            rtt_warmup,
            rtt_count,
            filters,
            part: if has("--rtt-child") {
                Part::RttChild
            } else if has("--rtt-unpinned") {
                Part::All
            } else {
                Part::OneWayHere
            },
        }
    }

    fn count(&self, size: usize) -> usize {
        if size == LARGE {
            self.large_count
        } else {
            self.small_count
        }
    }

    /// Whether case `name` (`adapter/security/case/size`) is to run here.
    fn wants(&self, name: &str) -> bool {
        let rtt = name.contains("/request-response/");
        let here = match self.part {
            Part::All => true,
            Part::OneWayHere => !rtt,
            Part::RttChild => rtt,
        };
        here && self.wants_anywhere(name)
    }

    /// Whether case `name` is to run in this process or its child.
    fn wants_anywhere(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// One measured stream.
#[derive(Debug, Clone, Copy)]
struct Throughput {
    messages: usize,
    bytes: usize,
    elapsed: StdDuration,
}

impl Throughput {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    fn msg_per_s(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sequential round trips: each one's time, and the time for all of them.
#[derive(Debug, Clone)]
struct Rtts {
    /// Sorted.
    samples: Vec<StdDuration>,
    /// From the first timed request to the last timed response.
    elapsed: StdDuration,
}

/// Times `warmup + count` round trips, each one call of `round_trip`
/// (which returns the answer's length, checked against `expected` after
/// the clock stops), and keeps the last `count`.
fn time_round_trips(
    warmup: usize,
    count: usize,
    expected: usize,
    mut round_trip: impl FnMut() -> usize,
) -> Rtts {
    let mut samples = Vec::with_capacity(count);
    let mut timed_from = StdInstant::now();
    for i in 0..warmup + count {
        let start = StdInstant::now();
        if i == warmup {
            timed_from = start;
        }
        let len = round_trip();
        let rtt = start.elapsed();
        assert_eq!(len, expected, "answer of the wrong size");
        if i >= warmup {
            samples.push(rtt);
        }
    }
    Rtts::new(samples, timed_from.elapsed())
}

impl Rtts {
    fn new(mut samples: Vec<StdDuration>, elapsed: StdDuration) -> Rtts {
        assert!(!samples.is_empty(), "no round trips measured");
        samples.sort_unstable();
        Rtts { samples, elapsed }
    }

    fn percentile(&self, p: usize) -> StdDuration {
        self.samples[(self.samples.len() * p / 100).min(self.samples.len() - 1)]
    }

    /// Round trips per second, one at a time.
    fn per_s(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// The timed runs of one one-way case (they all moved the same payload),
/// fastest first, and, for an adapter's case, each run's throughput over
/// that of a raw-TCP run made just before it (sorted).
#[derive(Debug, Clone)]
struct Runs(Vec<Throughput>, Vec<f64>);

impl Runs {
    fn new(mut runs: Vec<Throughput>, mut vs_raw: Vec<f64>) -> Runs {
        assert!(!runs.is_empty(), "no runs measured");
        runs.sort_by_key(|r| r.elapsed);
        vs_raw.sort_by(f64::total_cmp);
        Runs(runs, vs_raw)
    }

    /// The median of the paired ratios to raw TCP, with the lowest and
    /// highest; `None` without raw runs.
    fn vs_raw(&self) -> Option<(f64, f64, f64)> {
        let r = &self.1;
        (!r.is_empty()).then(|| (r[r.len() / 2], r[0], r[r.len() - 1]))
    }

    /// The run whose time is the median.
    fn median(&self) -> Throughput {
        self.0[self.0.len() / 2]
    }

    fn slowest(&self) -> Throughput {
        self.0[self.0.len() - 1]
    }

    fn fastest(&self) -> Throughput {
        self.0[0]
    }
}

/// The round-trip rounds of one case, by p50 (lowest first).
fn sorted_by_p50(mut rounds: Vec<Rtts>) -> Vec<Rtts> {
    assert!(!rounds.is_empty(), "no rounds measured");
    rounds.sort_by_key(|r| r.percentile(50));
    rounds
}

/// The round with the median p50.
fn median_round(rounds: &[Rtts]) -> &Rtts {
    &rounds[rounds.len() / 2]
}

fn secret(i: u8) -> [u8; 32] {
    let mut s = [0x42; 32];
    s[0] = i;
    s
}

fn bench_config(security: Security) -> Config {
    Config {
        security,
        session: SessionConfig {
            compression: false,
            ..Config::lan().session
        },
        ..Config::lan()
    }
}

/// Counts one event at B during a one-way run; anything that means a lost
/// message stops the bench.
fn count_direct(event: Event, from: NodeId, size: usize) -> usize {
    match event {
        Event::Messaging(MessagingEvent::Direct { from: f, payload }) => {
            assert_eq!(f, from, "Direct from an unexpected peer");
            assert_eq!(payload.len(), size, "Direct payload of the wrong size");
            1
        }
        Event::Peers(PeersEvent::Down { .. })
        | Event::Peers(PeersEvent::Closed { .. })
        | Event::Messaging(MessagingEvent::SendFailed { .. }) => {
            panic!("one-way run broken: {event:?}")
        }
        _ => 0,
    }
}

// --- mio, the adapter on its own thread ---

/// The mio adapter on its own thread.
struct MioNode(Running);

impl MioNode {
    fn start(config: Config, secret: [u8; 32], seed: u64) -> MioNode {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config =
            AdapterConfig::new(listen, config, Identity::from_secret_bytes(secret), seed);
        config.event_capacity = EVENT_CAPACITY;
        MioNode(ringmesh_mio::spawn(config).expect("mio adapter starts"))
    }

    fn addr(&self) -> SocketAddr {
        self.0.handle.local_addr()
    }

    /// Queues `command` without waiting for its answer: the fast path.
    fn submit(&self, command: impl Into<Command>) {
        self.0.handle.submit(command);
    }

    /// The next event, waiting up to `timeout`.
    fn next_event(&self, timeout: StdDuration) -> Option<Event> {
        self.0.events.recv_timeout(timeout).ok()
    }

    /// The next event if one is ready.
    fn try_event(&self) -> Option<Event> {
        self.0.events.try_recv().ok()
    }
}

/// A sends `count` messages of `size` bytes to B, keeping at most
/// `WINDOW_BYTES` of payload undelivered. One thread submits and counts.
///
/// Sends go out in bursts: once half the window is delivered, the window
/// is refilled with `Handle::submit`, except for the burst's last message,
/// sent with `Handle::command`, which waits until the adapter has served
/// it and so everything before it. That empties A's request queue once per
/// burst. (It was first a workaround: the adapter used to serve its queue
/// until empty before polling, and this loop starved it until the node
/// declared B unresponsive; it now serves at most 256 requests per turn —
/// see the README. The bursts are kept so the recorded figures stay
/// comparable.)
fn mio_one_way(a: &MioNode, b: &MioNode, size: usize, count: usize) -> Throughput {
    let payload = incompressible(size);
    let window = (WINDOW_BYTES / size).max(2);
    let (a_id, b_id) = (a.id(), b.id());
    let (mut sent, mut delivered) = (0, 0);
    let start = StdInstant::now();
    while delivered < count {
        if sent < count && sent - delivered <= window / 2 {
            let burst_end = (delivered + window).min(count);
            while sent + 1 < burst_end {
                a.submit(MessagingCommand::Send {
                    to: b_id,
                    payload: payload.clone(),
                });
                sent += 1;
            }
            a.0.handle
                .command(MessagingCommand::Send {
                    to: b_id,
                    payload: payload.clone(),
                })
                .expect("send accepted");
            sent += 1;
        }
        let event = b.next_event(EVENT_TIMEOUT).unwrap_or_else(|| {
            panic!("one-way {size} B stalled: {delivered} of {count} delivered, {sent} sent")
        });
        delivered += count_direct(event, a_id, size);
        while let Some(event) = b.try_event() {
            delivered += count_direct(event, a_id, size);
        }
    }
    let elapsed = start.elapsed();
    Throughput {
        messages: count,
        bytes: count * size,
        elapsed,
    }
}

// --- mio embedded in the bench's own loop ---

/// The mio adapter embedded in a loop the bench runs itself
/// ([`ringmesh_mio::Adapter`] on the bench's own `mio::Poll`): the
/// application and the adapter share one thread, so a command and the
/// event it leads to cost no hand-off between threads, and the events
/// wait in the adapter's own queue ([`Adapter::with_event_queue`]), taken
/// on this thread with [`Adapter::poll_event`]: no channel either.
struct Embedded {
    poll: Poll,
    readiness: Events,
    adapter: Adapter,
    handle: ringmesh_mio::Handle,
}

impl Embedded {
    fn start(config: Config, secret: [u8; 32], seed: u64) -> Embedded {
        let poll = Poll::new().expect("poll");
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config =
            AdapterConfig::new(listen, config, Identity::from_secret_bytes(secret), seed);
        config.event_capacity = EVENT_CAPACITY;
        let (adapter, handle) =
            Adapter::with_event_queue(poll.registry(), 0, config).expect("embedded adapter starts");
        Embedded {
            poll,
            readiness: Events::with_capacity(1024),
            adapter,
            handle,
        }
    }

    /// Waits for readiness (at most `max`, and no later than the node's
    /// next deadline) and lets the adapter act on it.
    fn turn(&mut self, max: StdDuration) {
        let timeout = self.adapter.timeout().map_or(max, |t| t.min(max));
        match self.poll.poll(&mut self.readiness, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("poll failed: {e}"),
        }
        for event in self.readiness.iter() {
            self.adapter.handle_event(event);
        }
        self.adapter.handle_timeout();
    }

    /// Queues `command` on the handle; [`Embedded::serve`] runs it.
    fn submit(&self, command: impl Into<Command>) {
        self.handle.submit(command);
    }

    /// Runs the commands submitted so far now, without waiting for the
    /// next poll (`handle_timeout` serves the handle's queue).
    fn serve(&mut self) {
        self.adapter.handle_timeout();
    }

    /// The next event, turning the loop until one comes or `wait` is
    /// over. The clock is read only after a turn that brought nothing
    /// ([`Wait::left_lazily`]): a round trip's wait usually takes one
    /// turn, and reading the clock around it is the bench's cost, not
    /// the adapter's (the `raw TCP epoll` floor reads none).
    fn next_event(&mut self, wait: &mut Wait) -> Option<Event> {
        loop {
            if let Some(event) = self.adapter.poll_event() {
                return Some(event);
            }
            let left = wait.left_lazily();
            if left.is_zero() {
                return None;
            }
            self.turn(left);
        }
    }

    /// The events waiting now.
    fn take_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.adapter.poll_event())
    }
}

/// How long a wait for an event may still last: [`EVENT_TIMEOUT`] from
/// its first reading of the clock.
struct Wait {
    deadline: Option<StdInstant>,
    /// [`Wait::left_lazily`] was called once (without reading the clock).
    looked: bool,
}

impl Wait {
    fn new() -> Wait {
        Wait {
            deadline: None,
            looked: false,
        }
    }

    /// Time left; the first call reads the clock and starts the wait.
    fn left(&mut self) -> StdDuration {
        let now = StdInstant::now();
        self.deadline
            .get_or_insert(now + EVENT_TIMEOUT)
            .saturating_duration_since(now)
    }

    /// As [`Wait::left`], but the first call gives all of
    /// [`EVENT_TIMEOUT`] without reading the clock (the wait then starts
    /// at the second call: it may last up to twice as long).
    fn left_lazily(&mut self) -> StdDuration {
        if !self.looked {
            self.looked = true;
            return EVENT_TIMEOUT;
        }
        self.left()
    }
}

/// Two embedded nodes, A dialled B, both up; set up on this thread by
/// turning both loops in alternation.
fn embedded_pair(security: Security, seed: u64) -> (Embedded, Embedded) {
    let mut a = Embedded::start(bench_config(security), secret(1), seed);
    let mut b = Embedded::start(bench_config(security), secret(2), seed + 1);
    a.submit(PeersCommand::Connect {
        addr: b.adapter.local_addr(),
        peer: Some(b.handle.node_id()),
    });
    let (mut a_up, mut b_up) = (false, false);
    let deadline = StdInstant::now() + EVENT_TIMEOUT;
    while !(a_up && b_up) {
        assert!(
            StdInstant::now() < deadline,
            "embedded pair did not connect"
        );
        a.turn(StdDuration::from_millis(1));
        b.turn(StdDuration::from_millis(1));
        a_up |= a
            .take_events()
            .any(|e| matches!(e, Event::Peers(PeersEvent::Up { .. })));
        b_up |= b
            .take_events()
            .any(|e| matches!(e, Event::Peers(PeersEvent::Up { .. })));
    }
    (a, b)
}

/// Both nodes say goodbye; their loops turn until flushed.
fn embedded_shutdown(mut a: Embedded, mut b: Embedded) {
    a.submit(Command::Shutdown);
    b.submit(Command::Shutdown);
    let deadline = StdInstant::now() + EVENT_TIMEOUT;
    while !(a.adapter.is_finished() && b.adapter.is_finished()) {
        assert!(StdInstant::now() < deadline, "embedded nodes did not stop");
        a.turn(StdDuration::from_millis(1));
        b.turn(StdDuration::from_millis(1));
    }
}

/// One-way with embedded nodes, each loop on its own thread. The sender
/// cannot see the receiver's count, so B acknowledges with a small `Send`
/// back (its count, 8 bytes) every quarter window, and A keeps at most
/// `WINDOW_BYTES` unacknowledged. Timed from A's first send to B's last
/// delivery.
fn embedded_one_way(a: &mut Embedded, b: &mut Embedded, size: usize, count: usize) -> Throughput {
    let payload = incompressible(size);
    let window = (WINDOW_BYTES / size).max(1);
    let ack_every = (window / 4).max(1);
    let (a_id, b_id) = (a.handle.node_id(), b.handle.node_id());
    let elapsed = thread::scope(|s| {
        let sender = s.spawn(|| {
            let start = StdInstant::now();
            let (mut sent, mut acked) = (0, 0);
            while acked < count {
                while sent < count && sent - acked < window {
                    a.submit(MessagingCommand::Send {
                        to: b_id,
                        payload: payload.clone(),
                    });
                    sent += 1;
                }
                a.serve();
                acked = a.wait_for("an ack at A", |e| match e {
                    Event::Messaging(MessagingEvent::Direct { payload, .. }) => {
                        let count: [u8; 8] = payload[..].try_into().expect("8-byte ack");
                        Some(u64::from_le_bytes(count) as usize)
                    }
                    Event::Peers(PeersEvent::Down { .. })
                    | Event::Peers(PeersEvent::Closed { .. }) => {
                        panic!("one-way run broken at A: {e:?}")
                    }
                    _ => None,
                });
            }
            start
        });
        let mut delivered = 0;
        while delivered < count {
            let event = b.next_event(&mut Wait::new()).unwrap_or_else(|| {
                panic!("embedded one-way {size} B stalled: {delivered} of {count} delivered")
            });
            let got = count_direct(event, a_id, size);
            delivered += got;
            if got > 0 && (delivered % ack_every == 0 || delivered == count) {
                b.submit(MessagingCommand::Send {
                    to: a_id,
                    payload: Bytes::copy_from_slice(&(delivered as u64).to_le_bytes()),
                });
                b.serve();
            }
        }
        let end = StdInstant::now();
        let start = sender.join().expect("sender thread");
        end - start
    });
    Throughput {
        messages: count,
        bytes: count * size,
        elapsed,
    }
}

// --- both mio variants: shared cases ---

/// A node driven from the bench's threads, however its adapter runs: what
/// the shared request/response case and [`bench_sync`] need.
trait SyncNode: Send + Sized {
    /// The table's name for this way of running the adapter.
    const ADAPTER: &'static str;
    /// Two connected nodes (A dialled B, both report the other up).
    fn pair(security: Security, seed: u64) -> (Self, Self);
    fn id(&self) -> NodeId;
    /// Hands `command` over and gets it run, without waiting for its answer.
    fn run(&mut self, command: impl Into<Command>);
    /// The next event, waiting until `wait` is over.
    fn next_event_by(&mut self, wait: &mut Wait) -> Option<Event>;
    /// A sends `count` messages of `size` bytes to B.
    fn one_way(a: &mut Self, b: &mut Self, size: usize, count: usize) -> Throughput;
    /// Both nodes say goodbye and stop.
    fn shutdown(a: Self, b: Self);

    /// The next event `f` picks; panics after [`EVENT_TIMEOUT`].
    fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(Event) -> Option<T>) -> T {
        let mut wait = Wait::new();
        loop {
            let event = self
                .next_event_by(&mut wait)
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            if let Some(t) = f(event) {
                return t;
            }
        }
    }
}

impl SyncNode for MioNode {
    const ADAPTER: &'static str = MIO;

    fn pair(security: Security, seed: u64) -> (MioNode, MioNode) {
        let mut a = MioNode::start(bench_config(security), secret(1), seed);
        let mut b = MioNode::start(bench_config(security), secret(2), seed + 1);
        a.0.handle
            .command(PeersCommand::Connect {
                addr: b.addr(),
                peer: Some(b.id()),
            })
            .expect("dial accepted");
        let (a_id, b_id) = (a.id(), b.id());
        a.wait_for("PeerUp at A", |e| {
            matches!(e, Event::Peers(PeersEvent::Up { peer, .. }) if peer == b_id).then_some(())
        });
        b.wait_for("PeerUp at B", |e| {
            matches!(e, Event::Peers(PeersEvent::Up { peer, .. }) if peer == a_id).then_some(())
        });
        (a, b)
    }

    fn id(&self) -> NodeId {
        self.0.handle.node_id()
    }

    fn run(&mut self, command: impl Into<Command>) {
        self.submit(command);
    }

    fn next_event_by(&mut self, wait: &mut Wait) -> Option<Event> {
        self.next_event(wait.left())
    }

    fn one_way(a: &mut MioNode, b: &mut MioNode, size: usize, count: usize) -> Throughput {
        mio_one_way(a, b, size, count)
    }

    fn shutdown(a: MioNode, b: MioNode) {
        for node in [a, b] {
            node.0.handle.shutdown();
            node.0
                .thread
                .join()
                .expect("adapter thread")
                .expect("adapter stopped cleanly");
        }
    }
}

impl SyncNode for Embedded {
    const ADAPTER: &'static str = EMBEDDED;

    fn pair(security: Security, seed: u64) -> (Embedded, Embedded) {
        embedded_pair(security, seed)
    }

    fn id(&self) -> NodeId {
        self.handle.node_id()
    }

    /// Runs `command` at once on this thread (`Adapter::command`: no
    /// channel, no waker).
    fn run(&mut self, command: impl Into<Command>) {
        let _ = self.adapter.command(command);
    }

    fn next_event_by(&mut self, wait: &mut Wait) -> Option<Event> {
        self.next_event(wait)
    }

    fn one_way(a: &mut Embedded, b: &mut Embedded, size: usize, count: usize) -> Throughput {
        embedded_one_way(a, b, size, count)
    }

    fn shutdown(a: Embedded, b: Embedded) {
        embedded_shutdown(a, b);
    }
}

/// Sequential request/response round trips from A to B: B answers on its
/// own thread, A times each round trip.
fn request_response<N: SyncNode>(a: &mut N, b: &mut N, warmup: usize, count: usize) -> Rtts {
    let total = warmup + count;
    let b_id = b.id();
    thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..total {
                let (from, id, payload) = b.wait_for("Request at B", |e| match e {
                    Event::Messaging(MessagingEvent::Request { from, id, payload }) => {
                        Some((from, id, payload))
                    }
                    _ => None,
                });
                b.run(MessagingCommand::Respond {
                    to: from,
                    id,
                    payload,
                });
            }
        });
        let payload = incompressible(SMALL);
        time_round_trips(warmup, count, SMALL, || {
            a.run(MessagingCommand::Request {
                to: b_id,
                payload: payload.clone(),
                timeout: ringmesh::Duration::from_secs(5),
            });
            let answer = a.wait_for("Response at A", |e| match e {
                Event::Messaging(MessagingEvent::Response { payload, .. }) => Some(payload),
                Event::Messaging(MessagingEvent::RequestFailed { reason, .. }) => {
                    panic!("request failed: {reason:?}")
                }
                _ => None,
            });
            answer.len()
        })
    })
}

/// Every wanted case on one connected pair of `N` nodes.
fn bench_sync<N: SyncNode>(plan: &Plan, security: Security, seed: u64, rows: &mut Vec<Row>) {
    let name = security_name(security);
    let adapter = N::ADAPTER;
    let one_way_sizes: Vec<usize> = [LARGE, KIB]
        .into_iter()
        .filter(|&size| plan.wants(&case_name(adapter, name, "one-way", size)))
        .collect();
    let rtt = plan.wants(&case_name(adapter, name, "request-response", SMALL));
    if one_way_sizes.is_empty() && !rtt {
        return;
    }
    let (mut a, mut b) = N::pair(security, seed);
    for size in one_way_sizes {
        eprintln!("{adapter} {name}: one-way {}", size_label(size));
        let measured = adapter_runs(plan, size, |count| N::one_way(&mut a, &mut b, size, count));
        rows.push(Row {
            adapter,
            security: name,
            size,
            measured: Measured::OneWay(measured),
        });
    }
    if rtt {
        eprintln!("{adapter} {name}: request/response");
        let rtts = rtt_rounds(plan, |warmup, count| {
            request_response(&mut a, &mut b, warmup, count)
        });
        rows.push(Row {
            adapter,
            security: name,
            size: SMALL,
            measured: Measured::RoundTrip(rtts),
        });
    }
    N::shutdown(a, b);
}

// --- async-std ---

/// A node of the async-std adapter: its driver future spawned on
/// async-std's executor, the bench talking to it through its async
/// `NodeHandle` and `Events` stream (from `block_on` on the bench's
/// threads).
struct AsyncNode {
    handle: NodeHandle,
    events: ringmesh_async_std::Events,
    driver: async_std::task::JoinHandle<()>,
}

impl AsyncNode {
    /// The table's name for this adapter.
    const ADAPTER: &'static str = ASYNC;

    fn start(config: Config, secret: [u8; 32], seed: u64) -> AsyncNode {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = ringmesh_async_std::AdapterConfig::new(
            listen,
            config,
            Identity::from_secret_bytes(secret),
            seed,
        );
        // A full stream drops events, which would stall the run.
        config.event_capacity = EVENT_CAPACITY;
        let (handle, events, driver) =
            ringmesh_async_std::start(config).expect("async-std adapter starts");
        AsyncNode {
            handle,
            events,
            driver: async_std::task::spawn(driver),
        }
    }

    /// The next event, or `None` after [`EVENT_TIMEOUT`] or at the
    /// stream's end.
    async fn next_event(&mut self) -> Option<Event> {
        async_std::future::timeout(EVENT_TIMEOUT, self.events.next())
            .await
            .ok()
            .flatten()
    }

    /// The next event if one is ready.
    async fn ready_event(&mut self) -> Option<Event> {
        futures_lite::future::poll_once(self.events.next())
            .await
            .flatten()
    }

    async fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(Event) -> Option<T>) -> T {
        loop {
            let event = self
                .next_event()
                .await
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            if let Some(t) = f(event) {
                return t;
            }
        }
    }

    async fn shutdown(self) {
        self.handle.shutdown().await;
        self.driver.await;
    }
}

/// Two async-std nodes, A dialled B (`connect` returns once the handshake
/// is done), B reports A up.
async fn async_pair(security: Security, seed: u64) -> (AsyncNode, AsyncNode) {
    let a = AsyncNode::start(bench_config(security), secret(1), seed);
    let mut b = AsyncNode::start(bench_config(security), secret(2), seed + 1);
    let (a_id, b_id) = (a.handle.node_id(), b.handle.node_id());
    let peer = a
        .handle
        .connect(b.handle.local_addr(), Some(b_id))
        .await
        .expect("A connects to B");
    assert_eq!(peer, b_id);
    b.wait_for("PeerUp at B", |e| {
        matches!(e, Event::Peers(PeersEvent::Up { peer, .. }) if peer == a_id).then_some(())
    })
    .await;
    (a, b)
}

/// One-way through the async API: one task awaits `NodeHandle::post` of a
/// `MessagingCommand::Send` for each message (it returns once the node task's queue
/// has taken it, without waiting for the node's answer), keeping at
/// most `WINDOW_BYTES` undelivered, and counts B's `Direct`s between sends.
async fn async_one_way(a: &AsyncNode, b: &mut AsyncNode, size: usize, count: usize) -> Throughput {
    let payload = incompressible(size);
    let window = (WINDOW_BYTES / size).max(1);
    let (a_id, b_id) = (a.handle.node_id(), b.handle.node_id());
    let (mut sent, mut delivered) = (0, 0);
    let start = StdInstant::now();
    while delivered < count {
        if sent < count && sent - delivered < window {
            a.handle
                .post(ringmesh::MessagingCommand::Send {
                    to: b_id,
                    payload: payload.clone(),
                })
                .await
                .expect("send posted");
            sent += 1;
        } else {
            let event = b.next_event().await.unwrap_or_else(|| {
                panic!("async one-way {size} B stalled: {delivered} of {count} delivered")
            });
            delivered += count_direct(event, a_id, size);
        }
        while let Some(event) = b.ready_event().await {
            delivered += count_direct(event, a_id, size);
        }
    }
    Throughput {
        messages: count,
        bytes: count * size,
        elapsed: start.elapsed(),
    }
}

/// Request/response through the async API: `NodeHandle::request` on A
/// (returns the response's payload), a task on the executor answers each
/// `Event::Messaging(MessagingEvent::Request)` on B with `NodeHandle::respond`.
async fn async_request_response(
    a: &AsyncNode,
    mut b: AsyncNode,
    warmup: usize,
    count: usize,
) -> (AsyncNode, Rtts) {
    let total = warmup + count;
    let b_id = b.handle.node_id();
    let responder = async_std::task::spawn(async move {
        for _ in 0..total {
            // No timer per event (`AsyncNode::wait_for` arms one, and
            // async-io wakes its reactor to insert every timer: a reactor
            // turn per round trip that no application pays): a stalled
            // responder fails the requester's `request` after its 5 s
            // timeout instead.
            let (from, id, payload) = loop {
                match b.events.next().await.expect("B's event stream ended") {
                    Event::Messaging(MessagingEvent::Request { from, id, payload }) => {
                        break (from, id, payload);
                    }
                    _ => continue,
                }
            };
            b.handle
                .respond(from, id, payload)
                .await
                .expect("respond accepted");
        }
        b
    });
    let payload = incompressible(SMALL);
    let mut samples = Vec::with_capacity(count);
    let mut timed_from = StdInstant::now();
    for i in 0..total {
        let start = StdInstant::now();
        if i == warmup {
            timed_from = start;
        }
        let answer = a
            .handle
            .request(b_id, payload.clone(), StdDuration::from_secs(5))
            .await
            .expect("request answered");
        let rtt = start.elapsed();
        assert_eq!(answer.len(), SMALL, "response of the wrong size");
        if i >= warmup {
            samples.push(rtt);
        }
    }
    let elapsed = timed_from.elapsed();
    (responder.await, Rtts::new(samples, elapsed))
}

/// Every wanted case on one pair of async-std nodes.
fn bench_async_std(plan: &Plan, security: Security, seed: u64, rows: &mut Vec<Row>) {
    let name = security_name(security);
    let adapter = AsyncNode::ADAPTER;
    let one_way_sizes: Vec<usize> = [LARGE, KIB]
        .into_iter()
        .filter(|&size| plan.wants(&case_name(adapter, name, "one-way", size)))
        .collect();
    let rtt = plan.wants(&case_name(adapter, name, "request-response", SMALL));
    if one_way_sizes.is_empty() && !rtt {
        return;
    }
    async_std::task::block_on(async {
        let (a, mut b) = async_pair(security, seed).await;
        for size in one_way_sizes {
            eprintln!("{adapter} {name}: one-way {}", size_label(size));
            // The same counts, warm-up, runs and raw pairing as
            // `adapter_runs`.
            let count = plan.count(size);
            async_one_way(&a, &mut b, size, (count / 8).max(1)).await;
            let (mut runs, mut vs_raw) = (Vec::new(), Vec::new());
            for _ in 0..plan.reps {
                let raw = paired_raw(plan, size, count);
                let t = async_one_way(&a, &mut b, size, count).await;
                if let Some(raw) = raw {
                    vs_raw.push(t.mb_per_s() / raw.mb_per_s());
                }
                runs.push(t);
            }
            rows.push(Row {
                adapter,
                security: name,
                size,
                measured: Measured::OneWay(Runs::new(runs, vs_raw)),
            });
        }
        if rtt {
            eprintln!("{adapter} {name}: request/response");
            let mut rounds = Vec::new();
            for _ in 0..plan.reps {
                let rtts;
                (b, rtts) = async_request_response(&a, b, plan.rtt_warmup, plan.rtt_count).await;
                rounds.push(rtts);
            }
            rows.push(Row {
                adapter,
                security: name,
                size: SMALL,
                measured: Measured::RoundTrip(sorted_by_p50(rounds)),
            });
        }
        a.shutdown().await;
        b.shutdown().await;
    });
}

// --- raw TCP ---

/// A connected `TcpStream` pair on 127.0.0.1, Nagle off on both ends (as
/// the adapter sets it).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

/// A 4-byte big-endian length, then the payload.
fn raw_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads one frame's payload into `buf` (resized to it).
fn read_raw_frame(reader: &mut impl Read, buf: &mut Vec<u8>) {
    let mut len = [0; 4];
    reader.read_exact(&mut len).expect("frame length");
    buf.resize(u32::from_be_bytes(len) as usize, 0);
    reader.read_exact(buf).expect("frame payload");
}

/// Raw TCP, one way: a writer thread writes `count` frames, the timing
/// thread reads them. Each frame is one `write_all` (one `write(2)`), or,
/// `batched`, goes through a 64 KiB `BufWriter` (one `write(2)` per 64 KiB:
/// what coalescing small frames would give).
fn raw_one_way(size: usize, count: usize, batched: bool) -> Throughput {
    let (writer, reader) = tcp_pair();
    let mut frame = Vec::new();
    raw_frame(&incompressible(size), &mut frame);
    let go = Barrier::new(2);
    let elapsed = thread::scope(|s| {
        s.spawn(|| {
            go.wait();
            if batched {
                let mut writer = BufWriter::with_capacity(64 * KIB, writer);
                for _ in 0..count {
                    writer.write_all(&frame).expect("write");
                }
                writer.flush().expect("flush");
            } else {
                let mut writer = writer;
                for _ in 0..count {
                    writer.write_all(&frame).expect("write");
                }
            }
        });
        let mut reader = BufReader::with_capacity(64 * KIB, reader);
        let mut buf = Vec::with_capacity(size);
        go.wait();
        let start = StdInstant::now();
        for _ in 0..count {
            read_raw_frame(&mut reader, &mut buf);
            assert_eq!(buf.len(), size, "raw frame of the wrong size");
        }
        start.elapsed()
    });
    Throughput {
        messages: count,
        bytes: count * size,
        elapsed,
    }
}

/// Raw TCP ping-pong: the client writes a 64-byte frame, a thread echoes
/// it, the client reads it back.
fn raw_request_response(warmup: usize, count: usize) -> Rtts {
    let total = warmup + count;
    let (mut client, server) = tcp_pair();
    thread::scope(|s| {
        s.spawn(move || {
            let mut reader = BufReader::with_capacity(64 * KIB, server.try_clone().expect("clone"));
            let mut writer = server;
            let (mut buf, mut out) = (Vec::new(), Vec::new());
            for _ in 0..total {
                read_raw_frame(&mut reader, &mut buf);
                raw_frame(&buf, &mut out);
                writer.write_all(&out).expect("echo");
            }
        });
        let mut reader = BufReader::with_capacity(64 * KIB, client.try_clone().expect("clone"));
        let mut frame = Vec::new();
        raw_frame(&incompressible(SMALL), &mut frame);
        let mut buf = Vec::new();
        time_round_trips(warmup, count, SMALL, || {
            client.write_all(&frame).expect("request");
            read_raw_frame(&mut reader, &mut buf);
            buf.len()
        })
    })
}

/// Raw TCP ping-pong through an event loop: as [`raw_request_response`],
/// but both ends use non-blocking sockets and wait in `epoll_wait` (a
/// `mio::Poll` each) before they read, as every adapter's loop does. The
/// floor of a round trip for a loop on epoll: one `epoll_wait` more per
/// side than the blocking baseline.
fn raw_epoll_request_response(warmup: usize, count: usize) -> Rtts {
    /// Reads one 4-byte-length frame, waiting in `poll` whenever the
    /// socket has nothing (the first read of a wait is taken only after
    /// readiness, as the adapters do).
    fn read_frame(
        poll: &mut Poll,
        events: &mut Events,
        stream: &mut mio::net::TcpStream,
        buf: &mut Vec<u8>,
    ) {
        buf.clear();
        let mut chunk = [0u8; 256];
        loop {
            if buf.len() >= 4 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if buf.len() >= 4 + len {
                    return;
                }
            }
            poll.poll(events, None).expect("poll");
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => panic!("closed"),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if n < chunk.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
    fn side(stream: TcpStream) -> (Poll, Events, mio::net::TcpStream) {
        stream.set_nonblocking(true).expect("non-blocking");
        let mut stream = mio::net::TcpStream::from_std(stream);
        let poll = Poll::new().expect("poll");
        poll.registry()
            .register(&mut stream, mio::Token(0), mio::Interest::READABLE)
            .expect("register");
        (poll, Events::with_capacity(16), stream)
    }
    let total = warmup + count;
    let (client, server) = tcp_pair();
    thread::scope(|s| {
        s.spawn(move || {
            let (mut poll, mut events, mut stream) = side(server);
            let mut buf = Vec::new();
            for _ in 0..total {
                read_frame(&mut poll, &mut events, &mut stream, &mut buf);
                stream.write_all(&buf).expect("echo");
            }
        });
        let (mut poll, mut events, mut stream) = side(client);
        let mut frame = Vec::new();
        raw_frame(&incompressible(SMALL), &mut frame);
        let mut buf = Vec::new();
        time_round_trips(warmup, count, 4 + SMALL, || {
            stream.write_all(&frame).expect("request");
            read_frame(&mut poll, &mut events, &mut stream, &mut buf);
            buf.len()
        })
    })
}

/// The raw TCP cases.
fn bench_raw(plan: &Plan, rows: &mut Vec<Row>) -> Baseline {
    let mut baseline = Baseline::default();
    for size in [LARGE, KIB] {
        if plan.wants(&case_name(RAW, "-", "one-way", size)) {
            eprintln!("{RAW}: one-way {}", size_label(size));
            let t = one_way_runs(plan, size, |count| raw_one_way(size, count, false));
            if size == LARGE {
                baseline.large = Some(t.median());
            } else {
                baseline.small = Some(t.median());
            }
            rows.push(Row {
                adapter: RAW,
                security: "-",
                size,
                measured: Measured::OneWay(t),
            });
        }
    }
    if plan.wants(&case_name(RAW_BATCHED, "-", "one-way", KIB)) {
        eprintln!("{RAW_BATCHED}: one-way {}", size_label(KIB));
        let t = one_way_runs(plan, KIB, |count| raw_one_way(KIB, count, true));
        rows.push(Row {
            adapter: RAW_BATCHED,
            security: "-",
            size: KIB,
            measured: Measured::OneWay(t),
        });
    }
    if plan.wants(&case_name(RAW, "-", "request-response", SMALL)) {
        eprintln!("{RAW}: request/response");
        let rtts = rtt_rounds(plan, raw_request_response);
        baseline.rtt = Some(median_round(&rtts).clone());
        rows.push(Row {
            adapter: RAW,
            security: "-",
            size: SMALL,
            measured: Measured::RoundTrip(rtts),
        });
    }
    if plan.wants(&case_name(RAW_EPOLL, "-", "request-response", SMALL)) {
        eprintln!("{RAW_EPOLL}: request/response");
        let rtts = rtt_rounds(plan, raw_epoll_request_response);
        rows.push(Row {
            adapter: RAW_EPOLL,
            security: "-",
            size: SMALL,
            measured: Measured::RoundTrip(rtts),
        });
    }
    baseline
}

// --- where the round trips run ---

/// Runs the round-trip cases in a child process of the bench (this
/// executable with the same arguments and `--rtt-child`) started on one
/// CPU, the first this process may use, and reads back its rows.
///
/// Why round trips run on one CPU: on this kind of machine (a virtual
/// machine with a few vCPUs, mostly idle) a wake-up sent to another vCPU
/// that is halted costs tens of microseconds (the raw-TCP ping-pong
/// measures ~14 µs on one CPU and ~35–50 µs spread over two when the
/// machine is idle, ~17 µs when it is busy), and whether the two ends of a
/// round trip land on one CPU or two changes from run to run. That swamps
/// what the bench compares, the software's own path. On one CPU every
/// case, raw TCP included, pays the same context switches and no
/// cross-CPU wake-up, so the ratio to raw TCP is the software's (and the
/// stricter one: unpinned, raw TCP's own slow wake-ups pull every ratio
/// towards 1). A child process rather than this one pinned: a runtime
/// sizes itself by the CPUs it may use when it starts (async-std runs one
/// executor thread per CPU), so the child sees one CPU from its start, as
/// under `taskset -c 0`, where this process's runtimes were sized for
/// the one-way cases. Returns `None` (and says why on stderr) if the
/// child could not run; its stderr is the bench's.
fn one_cpu_child() -> Option<Vec<Row>> {
    let exe = std::env::current_exe().ok()?;
    let pinned = ThisThreadOnOneCpu::pin();
    if pinned.is_none() {
        eprintln!("round trips: could not pin a CPU; the child runs unpinned");
    }
    let output = std::process::Command::new(exe)
        .args(std::env::args().skip(1))
        .arg("--rtt-child")
        .stderr(std::process::Stdio::inherit())
        .output();
    // The child inherited the one CPU; this thread gets its set back.
    drop(pinned);
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!("round trips: the child process failed ({})", output.status);
            return None;
        }
        Err(e) => {
            eprintln!("round trips: could not start the child process: {e}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let rows = parse_rtt_rows(&text);
    if rows.is_none() {
        eprintln!("round trips: the child's rows did not parse");
    }
    rows
}

/// The calling thread on one CPU (the first it may use) until dropped,
/// when it gets its set back. A process it starts meanwhile inherits the
/// one CPU.
struct ThisThreadOnOneCpu {
    original: libc::cpu_set_t,
}

// The workspace denies `unsafe`; these calls into libc are the only way
// to a thread's CPU set.
#[allow(unsafe_code)]
impl ThisThreadOnOneCpu {
    /// `None` where the system refuses.
    fn pin() -> Option<ThisThreadOnOneCpu> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `cpu_set_t` is plain bits; zeroed is the empty set.
        let mut original: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a set of the size passed.
        if unsafe { libc::sched_getaffinity(0, size, &mut original) } != 0 {
            return None;
        }
        let cpu = (0..libc::CPU_SETSIZE as usize).find(|&c| {
            // SAFETY: `c` is below `CPU_SETSIZE`.
            unsafe { libc::CPU_ISSET(c, &original) }
        })?;
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below `CPU_SETSIZE`.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: a valid pointer to a set of the size passed.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return None;
        }
        Some(ThisThreadOnOneCpu { original })
    }
}

#[allow(unsafe_code)]
impl Drop for ThisThreadOnOneCpu {
    fn drop(&mut self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: a valid pointer to a set of the size passed.
        let _ = unsafe { libc::sched_setaffinity(0, size, &self.original) };
    }
}

/// The round-trip rows as the child writes them for its parent: a line
/// `row<TAB>adapter<TAB>security<TAB>size` per row, then one line per
/// round, `round<TAB>elapsed ns<TAB>sample ns,sample ns,...`.
fn write_rtt_rows(rows: &[Row]) {
    let mut out = String::new();
    for row in rows {
        let Measured::RoundTrip(rounds) = &row.measured else {
            continue;
        };
        out.push_str(&format!(
            "row\t{}\t{}\t{}\n",
            row.adapter, row.security, row.size
        ));
        for round in rounds {
            let samples: Vec<String> = round
                .samples
                .iter()
                .map(|s| s.as_nanos().to_string())
                .collect();
            out.push_str(&format!(
                "round\t{}\t{}\n",
                round.elapsed.as_nanos(),
                samples.join(",")
            ));
        }
    }
    print!("{out}");
}

/// What [`write_rtt_rows`] wrote; `None` if anything is off.
fn parse_rtt_rows(text: &str) -> Option<Vec<Row>> {
    let names = [RAW, RAW_EPOLL, MIO, EMBEDDED, ASYNC];
    let securities = ["-", "plaintext", "Noise"];
    let nanos = |t: &str| t.parse::<u64>().ok().map(StdDuration::from_nanos);
    let mut rows: Vec<Row> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["row", adapter, security, size] => rows.push(Row {
                adapter: names.into_iter().find(|n| n == adapter)?,
                security: securities.into_iter().find(|s| s == security)?,
                size: size.parse().ok()?,
                measured: Measured::RoundTrip(Vec::new()),
            }),
            ["round", elapsed, samples] => {
                let samples = samples.split(',').map(nanos).collect::<Option<Vec<_>>>()?;
                let Measured::RoundTrip(rounds) = &mut rows.last_mut()?.measured else {
                    return None;
                };
                rounds.push(Rtts::new(samples, nanos(elapsed)?));
            }
            _ => return None,
        }
    }
    for row in &mut rows {
        let Measured::RoundTrip(rounds) = &mut row.measured else {
            return None;
        };
        *rounds = sorted_by_p50(std::mem::take(rounds));
    }
    Some(rows)
}

// --- the table ---

/// What a row measured.
enum Measured {
    OneWay(Runs),
    /// Rounds sorted by p50.
    RoundTrip(Vec<Rtts>),
}

/// One line of the table.
struct Row {
    adapter: &'static str,
    security: &'static str,
    size: usize,
    measured: Measured,
}

impl Row {
    fn case(&self) -> &'static str {
        match self.measured {
            Measured::OneWay(_) => "one-way",
            Measured::RoundTrip(_) => "request/response",
        }
    }
}

/// A case's name for filters: `adapter/security/case/size`.
fn case_name(adapter: &str, security: &str, case: &str, size: usize) -> String {
    format!(
        "{}/{security}/{case}/{}",
        adapter.replace(' ', "-"),
        size_label(size).replace(' ', "")
    )
}

/// The raw-TCP figures the other rows are divided by (those run).
#[derive(Default)]
struct Baseline {
    large: Option<Throughput>,
    small: Option<Throughput>,
    rtt: Option<Rtts>,
}

impl Baseline {
    fn one_way(&self, size: usize) -> Option<Throughput> {
        if size == LARGE {
            self.large
        } else {
            self.small
        }
    }
}

/// `reps` timed one-way runs after an untimed warm-up of an eighth of one.
fn one_way_runs(plan: &Plan, size: usize, mut run: impl FnMut(usize) -> Throughput) -> Runs {
    let count = plan.count(size);
    run((count / 8).max(1));
    Runs::new((0..plan.reps).map(|_| run(count)).collect(), Vec::new())
}

/// Whether an adapter's one-way runs of `size` are each paired with a
/// raw-TCP run just before (when the raw case is wanted too).
fn pairs_with_raw(plan: &Plan, size: usize) -> bool {
    plan.wants(&case_name(RAW, "-", "one-way", size))
}

/// A raw-TCP run made just before an adapter's run, when paired: the
/// load on this shared machine changes within a minute, so each run is
/// compared with the baseline measured next to it.
fn paired_raw(plan: &Plan, size: usize, count: usize) -> Option<Throughput> {
    pairs_with_raw(plan, size).then(|| raw_one_way(size, count, false))
}

/// `one_way_runs` for an adapter: each timed run right after a raw-TCP run
/// of the same size and count.
fn adapter_runs(plan: &Plan, size: usize, mut run: impl FnMut(usize) -> Throughput) -> Runs {
    let count = plan.count(size);
    run((count / 8).max(1));
    let (mut runs, mut vs_raw) = (Vec::new(), Vec::new());
    for _ in 0..plan.reps {
        let raw = paired_raw(plan, size, count);
        let started = StdInstant::now();
        let t = run(count);
        if std::env::var_os("LOOPBACK_REP_TIMES").is_some() {
            // For lining a rep up with a profile taken with `perf record
            // -k CLOCK_MONOTONIC` (an `Instant` is that clock on Linux).
            eprintln!(
                "rep {:?} .. {:?}: {:.0} MB/s (raw TCP just before: {})",
                started,
                StdInstant::now(),
                t.mb_per_s(),
                raw.as_ref()
                    .map_or("-".to_string(), |raw| format!("{:.0} MB/s", raw.mb_per_s()))
            );
        }
        if let Some(raw) = raw {
            vs_raw.push(t.mb_per_s() / raw.mb_per_s());
        }
        runs.push(t);
    }
    Runs::new(runs, vs_raw)
}

/// `reps` rounds of timed round trips, each after its untimed warm-up.
fn rtt_rounds(plan: &Plan, mut round: impl FnMut(usize, usize) -> Rtts) -> Vec<Rtts> {
    sorted_by_p50(
        (0..plan.reps)
            .map(|_| round(plan.rtt_warmup, plan.rtt_count))
            .collect(),
    )
}

fn security_name(security: Security) -> &'static str {
    match security {
        Security::Noise => "Noise",
        Security::Plaintext => "plaintext",
    }
}

fn size_label(size: usize) -> String {
    if size >= KIB {
        format!("{} KiB", size / KIB)
    } else {
        format!("{size} B")
    }
}

/// `1234567.8` as `1,234,568`.
fn grouped(x: f64) -> String {
    let digits = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn micros(d: StdDuration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ratio(ours: f64, raw: f64) -> String {
    format!("{:.2}", ours / raw)
}

fn print_table(rows: &[Row], baseline: &Baseline) {
    println!(
        "| case | adapter | security | size | MB/s | msg/s | RTT p50 | RTT p99 | min–max over reps | ratio to raw TCP |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let (mb_s, msg_s, p50, p99, spread, vs_raw) = match &row.measured {
            Measured::OneWay(runs) => {
                let t = runs.median();
                let (slow, fast) = (runs.slowest(), runs.fastest());
                // The headline figure: MB/s for big messages, msg/s for
                // small ones.
                let spread = if row.size == LARGE {
                    format!(
                        "{}–{} MB/s",
                        grouped(slow.mb_per_s()),
                        grouped(fast.mb_per_s())
                    )
                } else {
                    format!(
                        "{}–{} msg/s",
                        grouped(slow.msg_per_s()),
                        grouped(fast.msg_per_s())
                    )
                };
                (
                    grouped(t.mb_per_s()),
                    grouped(t.msg_per_s()),
                    String::new(),
                    String::new(),
                    spread,
                    match runs.vs_raw() {
                        Some((median, low, high)) => {
                            format!("{median:.2} ({low:.2}–{high:.2}), paired")
                        }
                        None => baseline
                            .one_way(row.size)
                            .map_or("-".to_string(), |raw| ratio(t.mb_per_s(), raw.mb_per_s())),
                    },
                )
            }
            Measured::RoundTrip(rounds) => {
                let r = median_round(rounds);
                let (p50, p99) = (r.percentile(50), r.percentile(99));
                let vs_raw = baseline.rtt.as_ref().map_or("-".to_string(), |raw| {
                    format!(
                        "p50 {}, p99 {}",
                        ratio(p50.as_secs_f64(), raw.percentile(50).as_secs_f64()),
                        ratio(p99.as_secs_f64(), raw.percentile(99).as_secs_f64())
                    )
                });
                let spread = format!(
                    "p50 {}–{}",
                    micros(rounds[0].percentile(50)),
                    micros(rounds[rounds.len() - 1].percentile(50))
                );
                (
                    String::new(),
                    grouped(r.per_s()),
                    micros(p50),
                    micros(p99),
                    spread,
                    vs_raw,
                )
            }
        };
        println!(
            "| {} | {} | {} | {} | {mb_s} | {msg_s} | {p50} | {p99} | {spread} | {vs_raw} |",
            row.case(),
            row.adapter,
            row.security,
            size_label(row.size),
        );
    }
}

/// Issue 20's "done when" lines, met or not, from the medians (ratios to
/// the raw-TCP rows of this run).
fn print_targets(rows: &[Row], baseline: &Baseline) {
    println!();
    println!("Targets (issue 20):");
    for row in rows.iter().filter(|r| !r.adapter.starts_with(RAW)) {
        let threaded = row.adapter != EMBEDDED;
        let target = match (&row.measured, row.security, row.size) {
            (Measured::OneWay(runs), "plaintext", LARGE) if threaded => baseline.large.map(|raw| {
                let r = runs.vs_raw().map_or_else(
                    || runs.median().mb_per_s() / raw.mb_per_s(),
                    |(median, _, _)| median,
                );
                (format!("{r:.2} × raw TCP (target ≥ 0.80)"), r >= 0.8)
            }),
            (Measured::OneWay(runs), "Noise", LARGE) if threaded => {
                let want = if row.adapter == ASYNC { 900.0 } else { 1000.0 };
                let got = runs.median().mb_per_s();
                Some((format!("{got:.0} MB/s (target ≥ {want:.0})"), got >= want))
            }
            (Measured::OneWay(runs), security, KIB) if row.adapter == ASYNC => {
                let want = if security == "Noise" {
                    300_000.0
                } else {
                    500_000.0
                };
                let got = runs.median().msg_per_s();
                Some((
                    format!("{} msg/s (target ≥ {})", grouped(got), grouped(want)),
                    got >= want,
                ))
            }
            (Measured::RoundTrip(rounds), _, _) => baseline.rtt.as_ref().map(|raw| {
                let want = if threaded { 2.0 } else { 1.2 };
                let r = median_round(rounds).percentile(50).as_secs_f64()
                    / raw.percentile(50).as_secs_f64();
                (
                    format!("p50 {r:.2} × raw TCP (target ≤ {want:.1})"),
                    r <= want,
                )
            }),
            _ => None,
        };
        let Some((what, met)) = target else {
            continue;
        };
        println!(
            "- {} {} {} {}: {what}: {}",
            row.adapter,
            row.security,
            row.case(),
            size_label(row.size),
            if met { "met" } else { "NOT met" }
        );
    }
}

/// The mio adapter's name in the table (on its own thread).
const MIO: &str = "mio";
/// The embedded mio adapter's name in the table.
const EMBEDDED: &str = "mio embedded";
/// The async adapter's name in the table.
const ASYNC: &str = "async-std";

/// The baseline's name in the table.
const RAW: &str = "raw TCP";
/// Raw TCP with small frames coalesced into 64 KiB writes: not the
/// baseline, a reference for what batching writes is worth.
const RAW_BATCHED: &str = "raw TCP batched";
/// Raw TCP request/response with both ends waiting in `epoll_wait`: not
/// the baseline, the floor of an event loop's round trip.
const RAW_EPOLL: &str = "raw TCP epoll";

fn main() {
    let plan = Plan::from_args();
    let started = StdInstant::now();
    let load_at_start = load_average();
    let mut rows = Vec::new();
    let mut baseline = bench_raw(&plan, &mut rows);
    bench_sync::<MioNode>(&plan, Security::Plaintext, 10, &mut rows);
    bench_sync::<MioNode>(&plan, Security::Noise, 20, &mut rows);
    bench_sync::<Embedded>(&plan, Security::Plaintext, 30, &mut rows);
    bench_sync::<Embedded>(&plan, Security::Noise, 40, &mut rows);
    bench_async_std(&plan, Security::Plaintext, 50, &mut rows);
    bench_async_std(&plan, Security::Noise, 60, &mut rows);
    if plan.part == Part::RttChild {
        write_rtt_rows(&rows);
        return;
    }
    let mut rtt_note = "unpinned";
    if plan.part == Part::OneWayHere && wants_any_rtt(&plan) {
        eprintln!("request/response cases: in a child process on one CPU");
        match one_cpu_child() {
            Some(child_rows) => {
                rtt_note = "in a child process on one CPU";
                for row in &child_rows {
                    if let (RAW, Measured::RoundTrip(rounds)) = (row.adapter, &row.measured) {
                        baseline.rtt = Some(median_round(rounds).clone());
                    }
                }
                rows.extend(child_rows);
            }
            None => rtt_note = "not run: the child process failed",
        }
    }

    print_table(&rows, &baseline);
    print_targets(&rows, &baseline);
    println!();
    println!(
        "reps {} (median, min–max), one-way {} × 64 KiB and {} × 1 KiB per run, window {} MiB, {} timed round trips per rep ({rtt_note}); whole run {:.1} s",
        plan.reps,
        plan.large_count,
        plan.small_count,
        WINDOW_BYTES >> 20,
        plan.rtt_count,
        started.elapsed().as_secs_f64()
    );
    println!("{}", machine_line(&load_at_start));
}

/// The system's load averages (1, 5, 15 minutes), as Linux gives them in
/// `/proc/loadavg`; `None` elsewhere.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

/// The footer's line on the machine: how many CPUs this process may use
/// and the load before and after the run. The same binary moves by half
/// between one CPU and two, and with what else runs (benches/README.md),
/// so a table is read with it.
fn machine_line(load_at_start: &Option<String>) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let load = |l: &Option<String>| l.clone().unwrap_or_else(|| "unknown".into());
    format!(
        "machine: {cpus} CPUs available to the bench; load average {} at the start, {} at the end",
        load(load_at_start),
        load(&load_average())
    )
}

/// Whether any round-trip case passes the filters.
fn wants_any_rtt(plan: &Plan) -> bool {
    let cases = [
        (RAW, "-"),
        (RAW_EPOLL, "-"),
        (MIO, "plaintext"),
        (MIO, "Noise"),
        (EMBEDDED, "plaintext"),
        (EMBEDDED, "Noise"),
        (ASYNC, "plaintext"),
        (ASYNC, "Noise"),
    ];
    cases
        .iter()
        .any(|&(a, s)| plan.wants_anywhere(&case_name(a, s, "request-response", SMALL)))
}
