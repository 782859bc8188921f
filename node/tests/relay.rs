//! Relays between real processes over loopback, no root needed: two nodes
//! announce addresses where nothing listens (as behind a NAT), so neither
//! can dial the other; both keep a reservation at a relay
//! (`--via-relay`), and reach each other through it over a Noise session
//! of their own (spec/relay.md). The NAT testbed (`tests/nat.rs`, root
//! only) does the same behind real NATs.

mod support;

use support::Proc;

#[test]
fn two_nodes_nobody_can_dial_talk_through_a_relay() {
    let mut relay = Proc::spawn(
        "relay",
        &["node", "--listen", "127.0.0.1:0", "--relay", "--no-chord"],
    );
    let relay_addr = relay.addr.clone();
    // Ports 9 and 11 of loopback: nothing listens there, a dial is refused.
    let behind_nat = |name: &str, announce: &str| {
        Proc::spawn(
            name,
            &[
                "node",
                "--listen",
                "127.0.0.1:0",
                "--announce",
                announce,
                "--via-relay",
                &relay_addr,
                "--no-chord",
            ],
        )
    };
    let mut a = behind_nat("a", "127.0.0.1:9");
    let mut b = behind_nat("b", "127.0.0.1:11");
    let relay_short = relay.short().to_owned();
    for p in [&mut a, &mut b] {
        p.wait_line(&format!(
            "relay <{relay_short}> holds a reservation for this node (3600 s)"
        ));
    }
    // a learns b from the relay's peer list, at b's announced address; the
    // dial is refused, and the fallback opens a circuit at the relay.
    let (a_short, b_short) = (a.short().to_owned(), b.short().to_owned());
    a.type_line(&format!("send {} hello through the relay", b.id));
    b.wait_line(&format!("(direct) <{a_short}> hello through the relay"));
    a.wait_for("b up through the relay", |l| {
        l.starts_with(&format!("peer up <{b_short}> {relay_addr}"))
    });
    b.wait_for("a up through the relay", |l| {
        l.starts_with(&format!("peer up <{a_short}> {relay_addr}"))
    });
    let row = a.answer("peers", |l| l.starts_with(&b.id));
    assert!(row.ends_with("up, relayed"), "{row}");
    let status = relay.answer("status", |l| l.starts_with("as a relay:"));
    assert!(status.contains(" 1 circuits opened"), "{status}");
    assert!(!status.contains(" 0 bytes relayed"), "{status}");
    let held = a.answer("status", |l| l.starts_with("relays holding a reservation:"));
    assert_eq!(
        held,
        format!("relays holding a reservation: <{relay_short}>")
    );
    for p in [&mut a, &mut b, &mut relay] {
        p.type_line("exit");
        assert!(p.wait_exit().success());
    }
}
