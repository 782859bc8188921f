//! A `ChordNotify` from an id ground to sit just below a ring member does
//! not make the attacker that member's predecessor (issue 13, part 4;
//! spec/chord.md §6.3), over real sockets against the `ringmesh` program.
//!
//! Three `ringmesh` processes form a ring. The attacker is a real
//! `ringmesh::Node` (Noise XX, chord on, never joined) driven over a std
//! `TcpStream`, with an identity ground so that its id lies in the last
//! eighth of the gap between the target and its predecessor. It notifies
//! the target every 300 ms for 3 s, answering whatever the target asks it
//! with the real node code (it is no member, so the target's check gets
//! `member` = 0). The target's `ring:` lines never name the attacker as
//! predecessor, its predecessor is the same afterwards, and its debug log
//! shows the refusals.

mod support;

use std::net::SocketAddr;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use ringmesh::wire::{ChordNotify, Message};
use ringmesh::{ChordConfig, Config, DhtConfig, Identity, Instant, Node, NodeId};
use support::{Intruder, Proc};

/// How long the attacker keeps notifying.
const ATTACK: StdDuration = StdDuration::from_secs(3);
/// Between two notifies.
const EVERY: StdDuration = StdDuration::from_millis(300);

fn as_u128(id: &str) -> u128 {
    u128::from_str_radix(id, 16).expect("hex id")
}

/// An identity whose id lies in the last eighth of (pred, target).
fn ground_below(pred: u128, target: u128) -> Identity {
    let gap = target.wrapping_sub(pred);
    let from = target.wrapping_sub(gap / 8);
    (0u64..)
        .map(|i| {
            let secret =
                *blake3::hash(format!("ground below {target:x} {i}").as_bytes()).as_bytes();
            Identity::from_secret_bytes(secret)
        })
        .find(|identity| {
            let id = identity.node_id().as_u128();
            let d = |a: u128, b: u128| b.wrapping_sub(a);
            d(from, id) > 0 && d(from, id) < d(from, target)
        })
        .expect("an identity")
}

#[test]
fn a_notifier_ground_below_a_member_never_becomes_its_predecessor() {
    let started = StdInstant::now();
    let boot = support::ring_founder();
    let mut nodes: Vec<Proc> = ["n1", "n2"]
        .iter()
        .map(|name| support::ring_joiner(name, &boot, &[]))
        .collect();
    let mut ids: Vec<String> = nodes.iter().map(|p| p.id.clone()).collect();
    ids.push(boot.id.clone());
    let ideal = |id: &str| support::ideal_ring_line(&ids, id);
    for p in &mut nodes {
        p.wait_line(&ideal(&p.id));
    }

    // The target: n1. Its predecessor in the ring of three.
    let target = &mut nodes[0];
    let pred = support::predecessor_in(&ids, &target.id);
    let settled = ideal(&target.id);
    assert!(settled.ends_with(&format!("predecessor <{}>", &pred[..8])));
    target.type_line("debug");

    let identity = ground_below(as_u128(&pred), as_u128(&target.id));
    let attacker_id: NodeId = identity.node_id();
    let attacker_short = attacker_id.short().to_string();
    let config = Config {
        listen_addrs: ["127.0.0.1:9".parse().expect("addr")].into_iter().collect(),
        chord: Some(ChordConfig::lan()),
        dht: Some(DhtConfig::lan()),
        ..Config::lan()
    };
    let node = Node::new(config, identity, 13, Instant::ZERO).expect("valid");
    let addr: SocketAddr = target.addr.parse().expect("target address");
    let target_id: NodeId = target.id.parse().expect("id");
    // The attack's 3 s include the handshake.
    let until = StdInstant::now() + ATTACK;
    let mut attacker = Intruder::connect(addr, target_id, node);
    // A notify every `EVERY`; between them, whatever the target asks is
    // answered and the attacker's own timers run.
    let (mut notifies, mut next) = (0, StdInstant::now());
    while StdInstant::now() < until {
        if StdInstant::now() >= next {
            next = StdInstant::now() + EVERY;
            if attacker.send(target_id, &Message::ChordNotify(ChordNotify)) {
                notifies += 1;
            }
            continue;
        }
        let open = attacker.pump(StdDuration::from_millis(20));
        assert!(open, "the target closed the attacker's connection");
    }
    assert!(notifies >= 5, "only {notifies} notifies went out");

    // The refusal is in the target's debug log; the attacker was never
    // its predecessor, and the predecessor is where it was.
    target.wait_stderr(&["notifier refused as predecessor", &attacker_short]);
    assert_eq!(target.answer("ring", |l| l.starts_with("ring: ")), settled);
    let as_pred = format!("predecessor <{attacker_short}>");
    let taken: Vec<&String> = target
        .lines
        .iter()
        .filter(|l| l.starts_with("ring: ") && l.contains(&as_pred))
        .collect();
    assert!(
        taken.is_empty(),
        "the attacker became predecessor: {taken:?}"
    );
    for p in &mut nodes {
        p.type_line("exit");
        assert!(p.wait_exit().success());
    }
    eprintln!("ring pointers test took {:?}", started.elapsed());
}
