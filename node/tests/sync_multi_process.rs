//! The sync table across real `ringmesh` processes on 127.0.0.1
//! (spec/sync.md): a key set on one process is read on every other, and on
//! a process started afterwards; another process cannot overwrite it while
//! its writer's lease holds. Driven through the consoles; every wait is for
//! a line, with a deadline.

mod support;

use support::Proc;

#[test]
fn a_synced_key_reaches_every_process_and_a_late_one_and_its_lease_holds() {
    let boot = Proc::spawn("bootstrap", &["bootstrap", "--listen", "127.0.0.1:0"]);
    let boot_addr = boot.addr.clone();
    let node = |name: &str| {
        Proc::spawn(
            name,
            &[
                "node",
                "--listen",
                "127.0.0.1:0",
                "--bootstrap",
                &boot_addr,
                "--no-chord",
            ],
        )
    };
    let mut n1 = node("n1");
    n1.wait_peer_up(boot.short());
    let mut others: Vec<Proc> = ["n2", "n3"].iter().map(|n| node(n)).collect();
    for p in &mut others {
        p.wait_peer_up(boot.short());
    }

    let line = n1.answer("sync set colour teal", |l| l.starts_with("sync: "));
    assert_eq!(line, "sync: set colour");
    let changed = format!("sync: colour = teal (by <{}>)", n1.short());
    let held = format!("colour = teal (by <{}>)", n1.short());
    for p in &mut others {
        p.wait_line(&changed);
        assert_eq!(
            p.answer("sync get colour", |l| l.starts_with("colour")),
            held
        );
    }

    // A process started afterwards receives the table on its first
    // sessions (anti-entropy), not through the flood it missed.
    let mut late = node("late");
    late.wait_line(&changed);
    assert_eq!(
        late.answer("sync get colour", |l| l.starts_with("colour")),
        held
    );

    // n1 holds the lease: n2 may not overwrite or delete the key, and
    // nothing changes anywhere.
    let refused = others[0].answer("sync set colour red", |l| l.starts_with("error: "));
    assert!(
        refused.starts_with(&format!(
            "error: colour is leased by <{}> for another ",
            n1.short()
        )),
        "{refused}"
    );
    let refused = others[0].answer("sync del colour", |l| l.starts_with("error: "));
    assert!(refused.contains("leased by"), "{refused}");
    for p in [&mut n1, &mut late].into_iter().chain(others.iter_mut()) {
        assert_eq!(
            p.answer("sync get colour", |l| l.starts_with("colour")),
            held,
            "{}",
            p.name
        );
    }
    // The owner may change it; everyone sees the change.
    n1.answer("sync set colour blue", |l| l.starts_with("sync: "));
    let blue = format!("sync: colour = blue (by <{}>)", n1.short());
    for p in [&mut late].into_iter().chain(others.iter_mut()) {
        p.wait_line(&blue);
    }
    let listed = late.answer("sync list", |l| {
        l.starts_with("sync: ") && l.ends_with("key(s)")
    });
    assert_eq!(listed, "sync: 1 key(s)");
}
