//! LAN discovery between real processes: two `ringmesh node` processes in
//! one network namespace (a LAN of their own: a veth pair, no route out),
//! started without `--bootstrap`, find each other through the multicast
//! beacon and connect, then a broadcast crosses.
//!
//! Also, in such a LAN, real processes check that they are reachable:
//! their peers report the address they see them at and dial them back
//! (spec/reach.md).
//!
//! Needs root and `ip` (iproute2) to build the namespace; skipped, with a
//! line saying why, otherwise.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Proc, cannot_build_netns};

/// The Done-when figure: both peers up within this of the second start.
const FIND_WITHIN: Duration = Duration::from_secs(2);

/// A network namespace with one LAN address, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Netns {
        let ns = Netns(name.to_owned());
        for args in [
            vec!["netns", "add", name],
            vec!["-n", name, "link", "set", "lo", "up"],
            vec![
                "-n", name, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
            ],
            vec!["-n", name, "addr", "add", "10.77.0.1/24", "dev", "lan0"],
            vec!["-n", name, "link", "set", "lan0", "up"],
            vec!["-n", name, "link", "set", "lan1", "up"],
        ] {
            let status = Command::new("ip").args(&args).status().expect("ip runs");
            assert!(status.success(), "ip {args:?} failed");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn two_nodes_on_one_lan_find_each_other_without_bootstrap() {
    if let Some(why) = cannot_build_netns() {
        eprintln!("SKIPPED two_nodes_on_one_lan_find_each_other_without_bootstrap: {why}");
        return;
    }
    let ns = Netns::create(&format!("rmlan-{}", std::process::id()));
    let mut a = Proc::spawn_in_netns("a", &ns.0, &["node", "--listen", "0.0.0.0:0"]);
    a.wait_line("started a new ring: this node is its first member");
    let started = Instant::now();
    let mut b = Proc::spawn_in_netns("b", &ns.0, &["node", "--listen", "0.0.0.0:0"]);
    // Each announces its LAN address (never 0.0.0.0).
    for p in [&mut a, &mut b] {
        let port = p.addr.rsplit(':').next().expect("port").to_owned();
        p.wait_line(&format!("announcing 10.77.0.1:{port}"));
    }
    let (a_short, b_short) = (a.short().to_owned(), b.short().to_owned());
    a.wait_for("b up", |l| l.starts_with(&format!("peer up <{b_short}>")));
    b.wait_for("a up", |l| l.starts_with(&format!("peer up <{a_short}>")));
    let found_in = started.elapsed();
    eprintln!("two nodes on one LAN connected {found_in:?} after the second started");
    assert!(
        found_in < FIND_WITHIN,
        "found each other in {found_in:?}, not within {FIND_WITHIN:?}"
    );

    // The link carries the mesh: a broadcast crosses.
    a.type_line("msg hello over the lan");
    b.wait_line(&format!("<{a_short}> hello over the lan"));
    for p in [&mut a, &mut b] {
        p.type_line("exit");
        assert!(p.wait_exit().success());
    }
}

#[test]
fn nodes_on_a_lan_learn_from_their_peers_whether_they_are_reachable() {
    if let Some(why) = cannot_build_netns() {
        eprintln!(
            "SKIPPED nodes_on_a_lan_learn_from_their_peers_whether_they_are_reachable: {why}"
        );
        return;
    }
    let ns = Netns::create(&format!("rmreach-{}", std::process::id()));
    // `a` is reachable where it listens; `z` also announces a port where
    // nothing listens, as a node behind a NAT with no mapping would.
    let mut a = Proc::spawn_in_netns("a", &ns.0, &["node", "--listen", "0.0.0.0:0", "--no-chord"]);
    let port = a.addr.rsplit(':').next().expect("port").to_owned();
    let mut z = Proc::spawn_in_netns(
        "z",
        &ns.0,
        &[
            "node",
            "--listen",
            "10.77.0.1:0",
            "--announce",
            "10.77.0.1:9",
            "--no-chord",
        ],
    );
    let _helpers: Vec<Proc> = ["b", "c", "d"]
        .iter()
        .map(|name| {
            Proc::spawn_in_netns(
                name,
                &ns.0,
                &["node", "--listen", "0.0.0.0:0", "--no-chord"],
            )
        })
        .collect();
    // Three peers see `a` at 10.77.0.1 (the threshold), which it announces
    // already: it asks them to dial it back there.
    a.wait_for("a reachable", |l| {
        l.starts_with(&format!("reachable at 10.77.0.1:{port} ("))
            && l.ends_with("peers dialled it back)")
    });
    z.wait_line("not reachable at 10.77.0.1:9 (0 of 3 peers dialled it back)");
    let status = a.answer("status", |l| l.starts_with("reachability:"));
    assert_eq!(
        status,
        format!("reachability: reachable at 10.77.0.1:{port}")
    );
}
