//! `--hand-wired`: the node dials only what it is told and learns no
//! peers from its peers, so an overlay wired by hand stays as wired (the
//! sim-vs-real comparison, `sim_vs_real.rs`, relies on it).

mod support;

use support::Proc;

/// A chain a – b – c wired by hand (every process with `extra`): a dials
/// b, then c dials b. Returns c's answer to `peers` once c has read b's
/// peer list (which names a).
fn chain(extra: &[&str]) -> String {
    let args = [
        &["node", "--listen", "127.0.0.1:0", "--no-chord"][..],
        extra,
    ]
    .concat();
    let mut a = Proc::spawn("a", &args);
    let mut b = Proc::spawn("b", &args);
    let mut c = Proc::spawn("c", &args);
    a.type_line(&format!("connect {}", b.addr));
    a.wait_peer_up(b.short());
    b.wait_peer_up(a.short());
    c.type_line(&format!("connect {}", b.addr));
    c.wait_peer_up(b.short());
    b.wait_peer_up(c.short());
    // b sent c its peer list when their session came up, before this
    // broadcast and on the same connection: once c prints the broadcast,
    // it has read the list.
    b.type_line("msg ready");
    c.wait_line(&format!("<{}> ready", b.short()));
    c.answer("peers", |l| l.starts_with("peers: "))
}

#[test]
fn a_hand_wired_node_learns_no_peers_from_its_peers() {
    assert_eq!(chain(&["--hand-wired"]), "peers: 1 connected, 0 more known");
}

/// The control: without the option the same chain grows (c learns of a
/// from b's list, and may have dialled it already).
#[test]
fn without_it_a_node_learns_its_peers_peers() {
    assert_ne!(chain(&[]), "peers: 1 connected, 0 more known");
}
