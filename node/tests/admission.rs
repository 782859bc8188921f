//! Admission control against the real `ringmesh` program, played as an
//! attacker would over loopback (spec/peers.md, Admission): floods of idle
//! and slowloris connections, many authenticated sessions from one
//! address, and a flood of Noise first messages. Attackers spread their
//! source addresses over 127.0.0.0/8 (all of it routes to `lo`), honest
//! nodes come from 127.0.0.1.
//!
//! Each test prints what it measured (`cargo test -- --nocapture`).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmesh::{Config, Direction, Event, Identity, Input, Node, Output, PeersCommand, PeersEvent};
use support::Proc;

/// One flood at a time: they measure time, memory and CPU, which floods
/// running side by side (the test threads) would spoil.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace()
        .nth(1)
        .expect("as expected")
        .parse()
        .expect("as expected")
}

/// The process's CPU time (utime + stime), in clock ticks (100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = &stat[stat.rfind(')').expect("as expected") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().expect("as expected")
        + fields[12].parse::<u64>().expect("as expected")
}

/// Raises this process's soft open-file limit to its hard limit: the
/// attackers hold thousands of sockets.
#[allow(unsafe_code)]
fn raise_fd_limit(needed: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur >= needed,
        "open-file hard limit {} below the {needed} this test needs",
        lim.rlim_max
    );
}

/// A TCP connection to `to` from the source address `src`.
fn connect_from(src: Ipv4Addr, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(src), 0).into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    Ok(socket.into())
}

fn addr_of(proc: &Proc) -> SocketAddr {
    proc.addr.parse().expect("listen address")
}

/// A sans-IO `ringmesh::Node` dialling `target` over a socket bound to
/// `src`, driven until its Noise handshake completes: an authenticated
/// session, as a real node would make. Returns the open stream.
fn authenticate(src: Ipv4Addr, target: SocketAddr, secret: [u8; 32]) -> Result<TcpStream, String> {
    let start = Instant::now();
    let now = || ringmesh::Instant::from_micros(start.elapsed().as_micros() as u64);
    let mut node = Node::new(Config::lan(), Identity::from_secret_bytes(secret), 1, now())
        .map_err(|e| e.to_string())?;
    node.command(
        now(),
        PeersCommand::Connect {
            addr: target,
            peer: None,
        },
    )
    .map_err(|e| e.to_string())?;
    let conn = std::iter::from_fn(|| node.poll_output())
        .find_map(|o| match o {
            Output::Dial { conn, .. } => Some(conn),
            _ => None,
        })
        .ok_or("no dial")?;
    let mut stream =
        connect_from(src, target, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    node.handle_input(
        now(),
        Input::Connected {
            conn,
            remote: target,
            direction: Direction::Outbound,
        },
    );
    let mut buf = [0u8; 4096];
    loop {
        let mut established = false;
        while let Some(output) = node.poll_output() {
            match output {
                Output::Send { bytes, .. } => {
                    stream.write_all(&bytes).map_err(|e| e.to_string())?
                }
                Output::Event(Event::Peers(PeersEvent::Established { .. })) => established = true,
                Output::Event(Event::Peers(PeersEvent::Closed { reason, .. })) => {
                    return Err(reason.to_string());
                }
                _ => {}
            }
        }
        if established {
            return Ok(stream);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err("closed by the node".into()),
            Ok(n) => node.handle_input(
                now(),
                Input::Received {
                    conn,
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                },
            ),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Whether the node still holds `stream` open (nothing read means open;
/// pings may have arrived).
fn still_open(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// The preamble and Noise message 1 a node sends when it dials: what a
/// flood replays (the attacker does no crypto; the node would do a key
/// exchange for each).
fn noise_message_1() -> Vec<u8> {
    let now = ringmesh::Instant::from_micros(0);
    let mut node =
        Node::new(Config::lan(), Identity::from_secret_bytes([7; 32]), 1, now).expect("node");
    let target: SocketAddr = "127.0.0.1:9".parse().expect("as expected");
    node.command(
        now,
        PeersCommand::Connect {
            addr: target,
            peer: None,
        },
    )
    .expect("dial");
    let conn = std::iter::from_fn(|| node.poll_output())
        .find_map(|o| match o {
            Output::Dial { conn, .. } => Some(conn),
            _ => None,
        })
        .expect("a dial");
    node.handle_input(
        now,
        Input::Connected {
            conn,
            remote: target,
            direction: Direction::Outbound,
        },
    );
    std::iter::from_fn(|| node.poll_output())
        .find_map(|o| match o {
            Output::Send { bytes, .. } => Some(bytes.to_vec()),
            _ => None,
        })
        .expect("message 1")
}

/// Attacker connections held open by one thread: each is reopened as soon
/// as the node closes it, and sends `opening` (nothing for idle ones, a
/// few bytes for slowloris) then stalls. Source addresses are
/// `127.<a>.<b>.<c>` from `source(slot)`.
fn hold_connections(
    target: SocketAddr,
    slots: usize,
    opening: &'static [u8],
    source: impl Fn(usize) -> Ipv4Addr + Send + 'static,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut conns: Vec<Option<TcpStream>> = (0..slots).map(|_| None).collect();
        let mut buf = [0u8; 1024];
        while !stop.load(Ordering::Relaxed) {
            for (slot, conn) in conns.iter_mut().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match conn {
                    None => {
                        let Ok(mut s) =
                            connect_from(source(slot), target, Duration::from_millis(50))
                        else {
                            continue;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        let _ = s.write_all(opening);
                        let _ = s.set_nonblocking(true);
                        *conn = Some(s);
                    }
                    Some(s) => match s.read(&mut buf) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Ok(n) if n > 0 => {} // the node's preamble: keep stalling
                        _ => *conn = None,   // closed by the node: reopen
                    },
                }
            }
            // A real attacker has machines of its own; here the attackers
            // share the node's cores, so they must not spin on them. Every
            // closed connection is still reopened within a few ms.
            thread::sleep(Duration::from_millis(2));
        }
    })
}

#[test]
fn idle_and_slowloris_floods_neither_lock_out_newcomers_nor_stop_dials() {
    let _serial = serial();
    raise_fd_limit(4_500);
    let mut target = Proc::spawn("target", &["node", "--listen", "127.0.0.1:0"]);
    let mut other = Proc::spawn("other", &["node", "--listen", "127.0.0.1:0"]);
    let pid = target.child.id();
    let to = addr_of(&target);
    let rss_before = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    // 1,000 idle connections and 3,000 slowloris ones (the preamble's
    // first bytes), over 200 /24 groups of 127.0.0.0/8 (none in
    // 127.0.0.0/24, the honest nodes' group).
    for half in 0..2u8 {
        attackers.push(hold_connections(
            to,
            500,
            b"",
            move |i| Ipv4Addr::new(127, 10 + (i % 100) as u8 + 100 * half, (i / 100) as u8, 1),
            stop.clone(),
            opened.clone(),
        ));
    }
    for third in 0..3u8 {
        attackers.push(hold_connections(
            to,
            1000,
            b"RMS",
            move |i| {
                Ipv4Addr::new(
                    127,
                    10 + (i % 200) as u8,
                    10 + (i / 200) as u8 + 10 * third,
                    2,
                )
            },
            stop.clone(),
            opened.clone(),
        ));
    }
    // Let the flood fill every table the node has.
    let flood_start = Instant::now();
    while opened.load(Ordering::Relaxed) < 4_000 && flood_start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(500));

    // A fresh honest node joins the attacked one within 2 s.
    let joined_at = Instant::now();
    let mut fresh = Proc::spawn(
        "fresh",
        &[
            "node",
            "--listen",
            "127.0.0.1:0",
            "--bootstrap",
            &target.addr,
        ],
    );
    let target_short = target.short().to_owned();
    fresh.wait_peer_up(&target_short);
    let join = joined_at.elapsed();

    // The attacked node's own dial succeeds.
    let dialled_at = Instant::now();
    target.type_line(&format!("connect {}", other.addr));
    let other_short = other.short().to_owned();
    target.wait_peer_up(&other_short);
    let dial = dialled_at.elapsed();
    other.wait_peer_up(&target_short);

    let mut rss_peak = rss_kib(pid);
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        rss_peak = rss_peak.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(50));
    }
    let attack_secs = flood_start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().expect("attacker thread");
    }
    let opened = opened.load(Ordering::Relaxed);
    eprintln!(
        "idle+slowloris flood: {opened} attacker connections opened in {attack_secs:.1} s \
         ({:.0}/s); fresh node joined in {join:?}; the attacked node's dial took {dial:?}; \
         RSS {rss_before} KiB -> peak {rss_peak} KiB (+{} KiB)",
        opened as f64 / attack_secs,
        rss_peak.saturating_sub(rss_before)
    );
    assert!(
        opened >= 4_000,
        "the flood opened only {opened} connections"
    );
    assert!(join <= Duration::from_secs(2), "joining took {join:?}");
    assert!(
        rss_peak.saturating_sub(rss_before) < 16 * 1024,
        "RSS grew by {} KiB",
        rss_peak - rss_before
    );
}

#[test]
fn sessions_from_one_address_or_group_are_held_to_its_cap_and_others_still_join() {
    let _serial = serial();
    raise_fd_limit(1_000);
    let target = Proc::spawn("target", &["node", "--listen", "127.0.0.1:0"]);
    let to = addr_of(&target);
    let target_short = target.short().to_owned();

    // 200 authenticated sessions attempted from 127.9.9.1, then 200 from
    // 200 addresses of 127.9.10.0/24, eight threads at a time.
    let attempt = |source: fn(u32) -> Ipv4Addr, tag: u8| {
        let handles: Vec<_> = (0..8u32)
            .map(|t| {
                thread::spawn(move || {
                    let mut held = Vec::new();
                    let mut refused = 0;
                    for i in (t..200).step_by(8) {
                        let mut secret = [tag; 32];
                        secret[..4].copy_from_slice(&i.to_le_bytes());
                        match authenticate(source(i), to, secret) {
                            Ok(stream) => held.push(stream),
                            Err(_) => refused += 1,
                        }
                    }
                    (held, refused)
                })
            })
            .collect();
        let mut held = Vec::new();
        let mut refused = 0;
        for h in handles {
            let (h, r) = h.join().expect("attempt thread");
            held.extend(h);
            refused += r;
        }
        let open = held.iter_mut().map(still_open).filter(|&o| o).count();
        (held, open, refused)
    };
    let started = Instant::now();
    let (_one_ip, one_ip_open, one_ip_refused) = attempt(|_| Ipv4Addr::new(127, 9, 9, 1), 1);
    let (_one_group, group_open, group_refused) =
        attempt(|i| Ipv4Addr::new(127, 9, 10, 1 + i as u8), 2);
    let attempts_took = started.elapsed();

    // Honest peers from other addresses still join.
    let joined_at = Instant::now();
    let mut honest: Vec<Proc> = ["h1", "h2"]
        .iter()
        .map(|n| {
            Proc::spawn(
                n,
                &[
                    "node",
                    "--listen",
                    "127.0.0.1:0",
                    "--bootstrap",
                    &target.addr,
                ],
            )
        })
        .collect();
    for h in &mut honest {
        h.wait_peer_up(&target_short);
    }
    let join = joined_at.elapsed();
    eprintln!(
        "sessions: from one address {one_ip_open} held open, {one_ip_refused} refused; \
         from one /24 {group_open} held open, {group_refused} refused ({attempts_took:?}); \
         two honest nodes joined in {join:?}"
    );
    assert_eq!(one_ip_open, 8, "max_inbound_per_ip");
    assert_eq!(group_open, 16, "max_inbound_per_group");
    assert!(join <= Duration::from_secs(3), "honest nodes took {join:?}");
}

/// Four threads, as fast as they can: connect from one of 64 /24 groups
/// (16,384 addresses), send `first`, close, again. Returns how many were
/// sent, and the node's CPU share of one core, over `window` (after a
/// warm-up past the node's bursts); `during` runs meanwhile.
fn flood_first_messages(
    target: &Proc,
    first: &'static [u8],
    window: Duration,
    during: impl FnOnce(),
) -> (f64, f64) {
    let pid = target.child.id();
    let to = addr_of(target);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..4u8)
        .map(|t| {
            let (stop, sent) = (stop.clone(), sent.clone());
            thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i = i.wrapping_add(1);
                    let src = Ipv4Addr::new(127, 30 + t, (i % 16) as u8, 1 + (i / 16 % 250) as u8);
                    if let Ok(mut s) = connect_from(src, to, Duration::from_millis(100))
                        && s.write_all(first).is_ok()
                    {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let (ticks0, sent0, t0) = (cpu_ticks(pid), sent.load(Ordering::Relaxed), Instant::now());
    during();
    thread::sleep(window.saturating_sub(t0.elapsed()));
    let (ticks1, sent1, secs) = (
        cpu_ticks(pid),
        sent.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().expect("attacker thread");
    }
    (
        (sent1 - sent0) as f64 / secs,
        (ticks1 - ticks0) as f64 / 100.0 / secs,
    )
}

#[test]
fn a_noise_message_1_flood_costs_at_most_a_quarter_core_and_newcomers_still_join() {
    let _serial = serial();
    raise_fd_limit(1_000);
    let target = Proc::spawn("target", &["node", "--listen", "127.0.0.1:0"]);
    let target_short = target.short().to_owned();
    let message_1: &'static [u8] = Vec::leak(noise_message_1());

    // The control: the same flood with a first message of the same length
    // that the node rejects at its preamble, before any handshake. What the
    // node spends there is the cost of accepting and closing connections
    // (the kernel's and the event loop's), which no handshake rule can cut.
    let garbage: &'static [u8] = Vec::leak(vec![b'X'; message_1.len()]);
    let (control_rate, control_cpu) =
        flood_first_messages(&target, garbage, Duration::from_secs(2), || {});

    // The message-1 flood, while an honest node joins.
    let mut join = Duration::MAX;
    let (rate, cpu) = flood_first_messages(&target, message_1, Duration::from_secs(3), || {
        let joined_at = Instant::now();
        let mut fresh = Proc::spawn(
            "fresh",
            &[
                "node",
                "--listen",
                "127.0.0.1:0",
                "--bootstrap",
                &target.addr,
            ],
        );
        fresh.wait_peer_up(&target_short);
        join = joined_at.elapsed();
    });
    // The accept-and-close cost scales with the connections made: take the
    // control's cost per connection times this flood's connections away.
    let handshakes = cpu - control_cpu / control_rate * rate;
    eprintln!(
        "message-1 flood: {rate:.0} first messages/s, the node at {:.1}% of a core; \
         control flood of rejected first messages: {control_rate:.0}/s, {:.1}%; \
         so handshakes cost {:.1}% of a core; a fresh node joined in {join:?}",
        cpu * 100.0,
        control_cpu * 100.0,
        handshakes * 100.0
    );
    assert!(rate > 1_000.0, "the flood was not at full speed");
    assert!(
        handshakes <= 0.25,
        "handshakes cost {:.1}% of a core",
        handshakes * 100.0
    );
    assert!(join <= Duration::from_secs(3), "joining took {join:?}");
}
