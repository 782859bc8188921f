//! A ring member frozen and restarted at once under the same identity: its
//! peers still hold connections to the run that stopped. The new run's
//! `Hello` carries a new run nonce, so they retire the old run at once
//! (spec/peers.md, "Restarts"; spec/chord.md §12.4), and the restarted node
//! serves `get` and `put` right after it rejoins, through its saved peer
//! cache alone.
//!
//! Two restarts: while the old process is frozen (SIGSTOP: it keeps its
//! sockets, as a hung host does, so the new run starts from a copy of its
//! data dir on another port), and killed then restarted at once on the
//! same data dir and port. Every wait is for a line, or a file polled with
//! a deadline. Measured times are printed (`--nocapture`).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Proc, TempDir};

/// The "Done when" bound: from the rejoin to `get` and `put` served.
const SERVED_WITHIN: Duration = Duration::from_secs(2);

/// A key `owner` owns among `ids`, with `tag` in its name.
fn key_owned_by(tag: &str, owner: &str, ids: &[&str]) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|key| support::open_key_owner(key, ids) == owner)
        .expect("some key")
}

fn signal(proc: &Proc, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &proc.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {}", proc.name);
}

/// Copies the files of data dir `from` (identity key, peer cache) into a
/// new dir `to`: the same node, for a second process while the first one
/// still holds `from` (frozen, as a hung host holds its sockets).
fn copy_data_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the data dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// Waits until the peer cache in `dir` names every id in `ids`.
fn wait_cache_names(dir: &Path, ids: &[&str]) {
    let deadline = Instant::now() + support::WAIT;
    loop {
        let cache = std::fs::read_to_string(dir.join("peers.json")).unwrap_or_default();
        if ids.iter().all(|id| cache.contains(id)) {
            return;
        }
        assert!(Instant::now() < deadline, "peer cache in {dir:?}: {cache}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `name` from `dir` (no bootstrap address) and waits until it has
/// rejoined the ring; returns it and when it printed that it joined.
fn restart(name: &str, dir: &str, listen: &str, restarted: Instant) -> (Proc, Instant) {
    let mut p = Proc::spawn(
        name,
        &[
            "node",
            "--listen",
            listen,
            "--data-dir",
            dir,
            "--successors",
            "2",
        ],
    );
    let joined = p.wait_for("the join line", |l| l.starts_with("joined the ring ("));
    let rejoined = Instant::now();
    // Its first join succeeds: no member answers it on the old run's
    // connections ("no candidate left to ask" before run nonces).
    let failed: Vec<&String> = p.lines[..joined]
        .iter()
        .filter(|l| l.starts_with("could not join the ring"))
        .collect();
    assert!(failed.is_empty(), "{name}: {failed:?}");
    eprintln!(
        "restart: {name} rejoined the ring {:?} after the restart began",
        rejoined - restarted
    );
    (p, rejoined)
}

/// Table commands (on open keys, so that any node may write any) on the
/// restarted node `n1` and on `others` (n2, n3), each answered as
/// expected, all within [`SERVED_WITHIN`] of `rejoined`. `old` is a key n1
/// owns, written as `old = old (version 1)` by n2 before the restart (the
/// new run's store is empty: it comes from the replicas).
fn assert_served(
    phase: &str,
    n1: &mut Proc,
    others: &mut [Proc],
    members: &[&str],
    old: &str,
    rejoined: Instant,
) {
    let (s1, s2, s3) = (
        n1.short().to_owned(),
        others[0].short().to_owned(),
        others[1].short().to_owned(),
    );
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let mut timed = |what: &str, proc: &mut Proc, command: String, expected: String| {
        // `put --open KEY ...`, `get --open KEY`.
        let key = command.split(' ').nth(2).expect("a key").to_owned();
        let asked = Instant::now();
        assert_eq!(
            proc.answer(&command, |l| l.contains(&key)),
            expected,
            "{phase}: {what}"
        );
        timings.push((what.to_owned(), asked.elapsed()));
    };
    timed(
        "get on n1 of a key n1 owned before",
        n1,
        format!("get --open {old}"),
        format!("open {old} = old (version 1, by <{s2}>)"),
    );
    let by_n1 = key_owned_by(&format!("{phase}-n1"), &n1.id, members);
    timed(
        "put on n1 of a key n1 owns",
        n1,
        format!("put --open {by_n1} new"),
        format!("stored open {by_n1} (version 1)"),
    );
    let far = key_owned_by(&format!("{phase}-far"), &others[1].id, members);
    timed(
        "put on n1 of a key n3 owns",
        n1,
        format!("put --open {far} far"),
        format!("stored open {far} (version 1)"),
    );
    timed(
        "get on n2 of n1's new key",
        &mut others[0],
        format!("get --open {by_n1}"),
        format!("open {by_n1} = new (version 1, by <{s1}>)"),
    );
    let from_n3 = key_owned_by(&format!("{phase}-n3"), &n1.id, members);
    timed(
        "put on n3 of a key n1 owns",
        &mut others[1],
        format!("put --open {from_n3} near"),
        format!("stored open {from_n3} (version 1)"),
    );
    timed(
        "get on n1 of n3's key",
        n1,
        format!("get --open {from_n3}"),
        format!("open {from_n3} = near (version 1, by <{s3}>)"),
    );
    timed(
        "get on n2 of the key n1 owned before",
        &mut others[0],
        format!("get --open {old}"),
        format!("open {old} = old (version 1, by <{s2}>)"),
    );
    let served = rejoined.elapsed();
    for (what, took) in &timings {
        eprintln!("restart: {phase}: {what}: {took:?}");
    }
    eprintln!("restart: {phase}: all served {served:?} after rejoining");
    assert!(
        served <= SERVED_WITHIN,
        "{phase}: get and put served {served:?} after rejoining; {timings:?}"
    );
}

#[test]
fn a_member_frozen_and_restarted_at_once_serves_get_and_put_within_2s_of_rejoining() {
    let started = Instant::now();
    let data = TempDir::new("ringmesh-node-restart");
    // Four members, two successors each: one may fail (spec/chord.md §5.2).
    let mut boot = support::ring_founder();
    let mut n1 = support::ring_joiner("n1", &boot, &["--data-dir", data.path()]);
    let mut others = vec![
        support::ring_joiner("n2", &boot, &[]),
        support::ring_joiner("n3", &boot, &[]),
    ];
    for p in std::iter::once(&mut n1).chain(others.iter_mut()) {
        support::wait_joined(p);
    }

    // The ring settles into the ideal one.
    let mut ids: Vec<String> = others.iter().map(|p| p.id.clone()).collect();
    ids.extend([n1.id.clone(), boot.id.clone()]);
    let ideal = |id: &str| support::ideal_ring_line(&ids, id);
    boot.wait_line(&ideal(&boot.id));
    for p in std::iter::once(&mut n1).chain(others.iter_mut()) {
        let line = ideal(&p.id);
        p.wait_line(&line);
    }
    let members: Vec<&str> = ids.iter().map(String::as_str).collect();

    // A key n1 owns, written before the restarts.
    let old = key_owned_by("old", &n1.id, &members);
    assert_eq!(
        others[0].answer(&format!("put --open {old} old"), |l| l.contains(&old)),
        format!("stored open {old} (version 1)")
    );
    let not_n1: Vec<&str> = members.iter().copied().filter(|id| *id != n1.id).collect();
    wait_cache_names(&data.0, &not_n1);

    // 1. Frozen, and restarted at once: the frozen process keeps its
    //    sockets (its peers' connections to it stay open, as to a hung
    //    host) and its data dir, so the new run starts from a copy of that
    //    dir (the same identity and peer cache) on another port.
    let old_id = n1.id.clone();
    signal(&n1, "STOP");
    let restarted = Instant::now();
    let copy = TempDir::new("ringmesh-node-restart-copy");
    copy_data_dir(&data.0, &copy.0);
    let (mut n1b, rejoined) = restart(
        "n1 (restarted, old run frozen)",
        copy.path(),
        "127.0.0.1:0",
        restarted,
    );
    assert_eq!(n1b.id, old_id);
    assert_served("frozen", &mut n1b, &mut others, &members, &old, rejoined);
    for p in &mut others {
        let line = format!(
            "peer down <{}> (peer restarted: a new run under the same id)",
            &old_id[..8]
        );
        p.wait_line(&line);
    }

    // The frozen run dies: its sockets close, which its peers already did
    // on their side; nothing changes for the new run.
    n1.child.kill().expect("SIGKILL");
    n1.child.wait().expect("reaped");
    drop(n1);

    // 2. Killed and restarted at once on the same data dir and port.
    wait_cache_names(&copy.0, &not_n1);
    let port = n1b.addr.rsplit(':').next().expect("a port").to_owned();
    signal(&n1b, "STOP");
    n1b.child.kill().expect("SIGKILL");
    n1b.child.wait().expect("reaped");
    let restarted = Instant::now();
    let (mut n1c, rejoined) = restart(
        "n1 (killed and restarted)",
        copy.path(),
        &format!("127.0.0.1:{port}"),
        restarted,
    );
    assert_eq!(n1c.id, old_id);
    assert_served("killed", &mut n1c, &mut others, &members, &old, rejoined);

    n1c.type_line("exit");
    assert!(n1c.wait_exit().success());
    eprintln!("restart test took {:?}", started.elapsed());
}
