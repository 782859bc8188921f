//! Real `ringmesh` processes on 127.0.0.1, driven through their consoles
//! (stdin) and watched through what they print (stdout).
//!
//! Every wait is for a line, with a deadline; nothing sleeps. Each process
//! is killed when its guard drops, so a failing test leaves none behind,
//! and prints what the process wrote to help find out why.

mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use support::{Proc, TempDir};

#[test]
fn nodes_chat_list_peers_and_rejoin_through_their_peer_cache() {
    let started = Instant::now();
    let data = TempDir::new("ringmesh-node-rejoin");
    let mut boot = Proc::spawn("bootstrap", &["bootstrap", "--listen", "127.0.0.1:0"]);
    let boot_addr = boot.addr.clone();
    let node = |name: &str, data_dir: Option<&str>| {
        let mut args = vec!["node", "--listen", "127.0.0.1:0", "--bootstrap", &boot_addr];
        if let Some(dir) = data_dir {
            args.extend(["--data-dir", dir]);
        }
        Proc::spawn(name, &args)
    };

    // n1 joins first, so the bootstrap node hands it to everyone after.
    let mut n1 = node("n1", Some(data.path()));
    n1.wait_peer_up(boot.short());
    let mut others: Vec<Proc> = ["n2", "n3", "n4"].iter().map(|n| node(n, None)).collect();
    let ids: Vec<String> = others.iter().map(|p| p.short().to_owned()).collect();
    for p in &mut others {
        p.wait_peer_up(boot.short());
        p.wait_peer_up(n1.short());
    }
    for id in &ids {
        n1.wait_peer_up(id);
    }

    // A broadcast reaches every other node (the bootstrap node too).
    others[0].type_line("msg hello from n2");
    let hello = format!("<{}> hello from n2", ids[0]);
    for p in [&mut n1, &mut boot]
        .into_iter()
        .chain(others[1..].iter_mut())
    {
        p.wait_line(&hello);
    }

    // `peers` lists all four peers, up, the bootstrap node at its address.
    n1.type_line("peers");
    let header = n1.wait_for("the peers header", |l| l.starts_with("peers: "));
    assert_eq!(n1.lines[header], "peers: 4 connected, 0 more known");
    n1.wait_count(header + 5);
    let rows = n1.lines[header + 1..header + 5].to_vec();
    for p in [&boot].into_iter().chain(others.iter()) {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&p.id))
            .unwrap_or_else(|| panic!("{} missing from {rows:#?}", p.name));
        assert!(row.ends_with(" up") || row.ends_with(" suspect"), "{row}");
        assert!(row.contains(" rtt "), "{row}");
    }
    let boot_row = rows.iter().find(|r| r.starts_with(&boot.id)).expect("row");
    assert!(boot_row.contains(&format!(" {} ", boot.addr)), "{boot_row}");

    // A one-way message addressed by an 8-digit id prefix.
    others[1].type_line(&format!("send {} psst", n1.short()));
    n1.wait_line(&format!("(direct) <{}> psst", ids[1]));

    // n1 leaves gracefully: its peers hear the goodbye, and its cache is on
    // disk.
    n1.type_line("exit");
    assert!(n1.wait_exit().success());
    others[0].wait_line(&format!(
        "peer down <{}> (peer said goodbye: Shutdown)",
        n1.short()
    ));
    let cache = std::fs::read_to_string(data.0.join("peers.json")).expect("peer cache saved");
    for p in [&boot].into_iter().chain(others.iter()) {
        assert!(cache.contains(&p.id), "{} not in {cache}", p.name);
    }

    // With the bootstrap node gone, n1 restarts from its data dir alone: the
    // same id, and back in the mesh through its peer cache.
    drop(boot);
    let old_id = n1.id.clone();
    drop(n1);
    let mut n1 = Proc::spawn(
        "n1 (restarted)",
        &["node", "--listen", "127.0.0.1:0", "--data-dir", data.path()],
    );
    assert_eq!(n1.id, old_id);
    for id in &ids {
        n1.wait_peer_up(id);
    }
    // The sender must have n1 back among its peers too: a broadcast from a
    // node that has no link to n1 yet never reaches it (flooding keeps no
    // backlog for links that come up later), and under load n1's side can
    // be up well before the sender's.
    let sender = &mut others[1];
    let down = sender.wait_for("n1's goodbye", |l| {
        l.starts_with(&format!("peer down <{}> ", n1.short()))
    });
    let up = format!("peer up <{}> ", n1.short());
    sender.wait_for_after(down + 1, &format!("{up}after the restart"), |l| {
        l.starts_with(&up)
    });
    sender.type_line("msg after restart");
    n1.wait_line(&format!("<{}> after restart", ids[1]));

    // Each broadcast was printed exactly once, even with every node relaying
    // it (the later steps gave duplicates ample time to show).
    for p in &mut others[1..] {
        assert_eq!(p.count(&hello), 1, "{}", p.name);
    }

    // `exit` and end of input both shut a node down cleanly.
    others[0].type_line("exit");
    assert!(others[0].wait_exit().success());
    others[2].stdin = None;
    assert!(others[2].wait_exit().success());
    n1.type_line("exit");
    assert!(n1.wait_exit().success());
    eprintln!("multi-process test took {:?}", started.elapsed());
}

#[test]
fn the_table_serves_a_key_from_every_node_also_after_its_owner_exits() {
    let started = Instant::now();
    // Four members and two successors each: once the ring has settled (it
    // has more than r = 2 members), one node may leave (spec/chord.md §5.2).
    // Each key then has two holders (--replicas defaults to r when r < 3).
    let mut boot = support::ring_founder();
    let mut nodes: Vec<Proc> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| support::ring_joiner(name, &boot, &[]))
        .collect();
    for p in &mut nodes {
        support::wait_joined(p);
    }

    // The ring settles into the ideal one: each node's successors are the
    // next two ids clockwise, its predecessor the one before.
    let mut ids: Vec<String> = nodes.iter().map(|p| p.id.clone()).collect();
    ids.push(boot.id.clone());
    let ideal = |id: &str| support::ideal_ring_line(&ids, id);
    boot.wait_line(&ideal(&boot.id));
    for p in &mut nodes {
        let line = ideal(&p.id);
        p.wait_line(&line);
        // `ring` shows the same, now.
        assert_eq!(p.answer("ring", |l| l.starts_with("ring: ")), line);
        p.wait_for("the table line", |l| {
            l.starts_with("table: ") && l.ends_with(" stored on this node")
        });
    }

    // An open key (any node may write it) whose position a console node
    // owns, so that the node that stores it can also be the one that
    // exits.
    let members: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (key, owner) = (0..)
        .map(|i| format!("colour-{i}"))
        .find_map(|key| {
            let owner = support::open_key_owner(&key, &members);
            let at = nodes.iter().position(|p| p.id == owner)?;
            Some((key, at))
        })
        .expect("some key is owned by a console node");
    let mut a = nodes.remove(owner);
    let (mut b, mut c) = (nodes.remove(0), nodes.remove(0));

    let a_short = a.short().to_owned();
    // Stored on one node, read on another.
    assert_eq!(
        a.answer(&format!("put --open {key} deep  blue"), |l| l
            .contains(&key)),
        format!("stored open {key} (version 1)")
    );
    // The owner coordinated the write, so it holds the entry itself.
    let bytes = key.len() + "deep  blue".len();
    assert_eq!(
        a.answer("ring", |l| l.starts_with("table: ")),
        format!("table: 1 entry ({bytes} bytes) stored on this node")
    );
    assert_eq!(
        b.answer(&format!("get --open {key}"), |l| l.contains(&key)),
        format!("open {key} = deep  blue (version 1, by <{a_short}>)")
    );
    assert_eq!(
        b.answer("get never-written", |l| l.contains("never-written")),
        "never-written: not found"
    );
    // Keys the table refuses are refused before anything is sent.
    assert!(
        b.answer("put lonely-key", |l| l.starts_with("error: "))
            .starts_with("error: usage: put [--open] KEY VALUE")
    );
    let long_key = "k".repeat(257);
    assert_eq!(
        b.answer(&format!("get {long_key}"), |l| l.starts_with("error: ")),
        format!("error: cannot read {long_key}: key of 257 bytes; keys have 1 to 256")
    );

    // The owner, which stored it, leaves; the key is still there.
    a.type_line("exit");
    assert!(a.wait_exit().success());
    let goodbye = format!("peer down <{}> (peer said goodbye: Shutdown)", a.short());
    c.wait_line(&goodbye);
    assert_eq!(
        c.answer(&format!("get --open {key}"), |l| l.contains(&key)),
        format!("open {key} = deep  blue (version 1, by <{a_short}>)")
    );

    // A delete (by another node: the key is open) is a newer version that
    // reads as absent everywhere.
    let c_short = c.short().to_owned();
    assert_eq!(
        c.answer(&format!("del --open {key}"), |l| l.contains(&key)),
        format!("deleted open {key} (version 2)")
    );
    b.wait_line(&goodbye);
    assert_eq!(
        b.answer(&format!("get --open {key}"), |l| l.contains(&key)),
        format!("open {key}: not found (deleted, version 2, by <{c_short}>)")
    );
    // This node's own key of the same name is another key: b's, and only
    // b may write it; c reads it as <b>/KEY.
    let b_short = b.short().to_owned();
    assert_eq!(
        b.answer(&format!("put {key} mine"), |l| l.contains(&key)),
        format!("stored {key} (version 1)")
    );
    assert_eq!(
        c.answer(&format!("get {}/{key}", b.id), |l| l.contains(&key)),
        format!("{b_short}/{key} = mine (version 1, by <{b_short}>)")
    );

    // End of input waits for the table command under way: a script's last
    // `get` prints its answer.
    c.type_line(&format!("get --open {key}"));
    c.stdin = None;
    assert!(c.wait_exit().success());
    let gone = format!("open {key}: not found (deleted, version 2, by <{c_short}>)");
    assert!(c.lines.contains(&gone), "{:#?}", c.lines);
    b.type_line("exit");
    assert!(b.wait_exit().success());
    eprintln!("table multi-process test took {:?}", started.elapsed());
}

#[test]
fn an_unspecified_listen_address_announces_the_interface_addresses() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ringmesh"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ringmesh runs")
    };
    // No peer can dial 0.0.0.0: the node announces where it can be
    // reached instead, and so runs the ring.
    let everywhere = run(&["node", "--listen", "0.0.0.0:0"]);
    assert!(everywhere.status.success(), "{everywhere:?}");
    let stdout = String::from_utf8_lossy(&everywhere.stdout);
    let port = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("node ")?
                .split(" listening on 0.0.0.0:")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("start line: {stdout}"))
        .to_owned();
    let announced: Vec<std::net::SocketAddr> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("announcing "))
        .unwrap_or_else(|| panic!("announcing line: {stdout}"))
        .split(' ')
        .map(|a| a.parse().expect("announced address"))
        .collect();
    assert!(!announced.is_empty());
    for addr in &announced {
        assert!(!addr.ip().is_unspecified(), "{stdout}");
        assert_eq!(addr.port().to_string(), port, "{stdout}");
    }
    // Told where peers dial it, it starts (and, stdin closed, stops).
    let announced = run(&[
        "node",
        "--listen",
        "0.0.0.0:0",
        "--announce",
        "127.0.0.1:4999",
    ]);
    assert!(announced.status.success(), "{announced:?}");
    let stdout = String::from_utf8_lossy(&announced.stdout);
    assert!(stdout.starts_with("node "), "{stdout}");
    assert!(stdout.contains("\nannouncing 127.0.0.1:4999\n"), "{stdout}");
    // An address no peer can dial is refused as an announcement.
    let bad = run(&[
        "node",
        "--listen",
        "127.0.0.1:0",
        "--announce",
        "0.0.0.0:4000",
    ]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--announce 0.0.0.0:4000: no peer can dial it"),
        "{stderr}"
    );
}

#[test]
fn msg_is_delivered_once_everywhere_through_plumtree() {
    // Every node in Plumtree mode: broadcasts go over HyParView's active
    // views as a tree (spec/mesh.md "Plumtree"). Each `msg` reaches every
    // other node exactly once, from two senders in turn.
    let mode = ["--broadcast", "plumtree", "--no-chord"];
    let mut boot_args = vec!["bootstrap", "--listen", "127.0.0.1:0"];
    boot_args.extend(mode);
    let mut boot = Proc::spawn("bootstrap", &boot_args);
    boot.wait_line("broadcasts spread by Plumtree over HyParView views (--broadcast plumtree)");
    let boot_addr = boot.addr.clone();
    let mut nodes: Vec<Proc> = ["p1", "p2", "p3", "p4", "p5"]
        .iter()
        .map(|name| {
            let mut args = vec!["node", "--listen", "127.0.0.1:0", "--bootstrap", &boot_addr];
            args.extend(mode);
            Proc::spawn(name, &args)
        })
        .collect();
    for p in &mut nodes {
        p.wait_line("broadcasts spread by Plumtree over HyParView views (--broadcast plumtree)");
        p.wait_peer_up(boot.short());
    }
    let ids: Vec<String> = nodes.iter().map(|p| p.short().to_owned()).collect();
    // Plumtree delivers to the mesh that is there when a broadcast is sent.
    // Six nodes joining one bootstrap whose active view holds four evict
    // and re-link each other for a moment: wait until the mesh the
    // processes print is connected, every link held at both ends.
    let mut all: Vec<&mut Proc> = nodes.iter_mut().chain([&mut boot]).collect();
    await_connected_mesh(&mut all);
    for (sender, text) in [(0, "first through the tree"), (3, "second from elsewhere")] {
        nodes[sender].type_line(&format!("msg {text}"));
        let line = format!("<{}> {text}", ids[sender]);
        boot.wait_line(&line);
        for (i, p) in nodes.iter_mut().enumerate() {
            if i != sender {
                p.wait_line(&line);
            }
        }
    }
    // Once each: the first reached every node, and the later steps gave a
    // duplicate time to show.
    let first = format!("<{}> first through the tree", ids[0]);
    for p in nodes[1..].iter_mut().chain([&mut boot]) {
        assert_eq!(p.count(&first), 1, "{}", p.name);
    }
    for p in &mut nodes {
        p.type_line("exit");
        assert!(p.wait_exit().success());
    }
}

/// Waits (up to `support::WAIT`) until the mesh neighbours the processes
/// print (`mesh neighbour up: X` / `mesh neighbour down: X`, the latest line
/// for X counting) form one connected graph of links held at both ends.
fn await_connected_mesh(procs: &mut [&mut Proc]) {
    let deadline = Instant::now() + support::WAIT;
    loop {
        let ids: Vec<String> = procs.iter().map(|p| p.short().to_owned()).collect();
        let held: Vec<std::collections::BTreeSet<String>> =
            procs.iter().map(|p| neighbours(&p.lines)).collect();
        let linked = |a: usize, b: usize| held[a].contains(&ids[b]) && held[b].contains(&ids[a]);
        let mut reached = vec![false; procs.len()];
        let mut todo = vec![0];
        reached[0] = true;
        while let Some(a) = todo.pop() {
            let next: Vec<usize> = (0..procs.len())
                .filter(|&b| !reached[b] && linked(a, b))
                .collect();
            for b in next {
                reached[b] = true;
                todo.push(b);
            }
        }
        if reached.iter().all(|&r| r) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mesh did not connect: {:?}",
            ids.iter().zip(&held).collect::<Vec<_>>()
        );
        for p in procs.iter_mut() {
            p.read_for(std::time::Duration::from_millis(20));
        }
    }
}

/// The mesh neighbours a process's lines leave it with.
fn neighbours(lines: &[String]) -> std::collections::BTreeSet<String> {
    let mut held = std::collections::BTreeSet::new();
    for line in lines {
        if let Some(peer) = line.strip_prefix("mesh neighbour up: ") {
            held.insert(peer.to_owned());
        } else if let Some(peer) = line.strip_prefix("mesh neighbour down: ") {
            held.remove(peer);
        }
    }
    held
}
