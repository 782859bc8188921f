//! Real processes behind real NATs (issue 19's testbed): Linux network
//! namespaces, a public network with a relay, two NAT routers
//! (`iptables` MASQUERADE) each with a host behind it.
//!
//! ```text
//!   host-a 10.1.0.2 ── nat-a (10.1.0.1 | 198.18.0.2) ─┐
//!                                                    br0 198.18.0.1 (public: the relay)
//!   host-b 10.2.0.2 ── nat-b (10.2.0.1 | 198.18.0.3) ─┘
//! ```
//!
//! Neither host can be dialled, and each announces only its private
//! address. Both keep a reservation at the relay (`--via-relay`); each
//! reaches the other through a circuit at the relay, over a Noise session
//! of their own, and then tries a hole punch over it (`spec/relay.md` §7).
//! Behind port-restricted NATs (plain `MASQUERADE`, which keeps the
//! source port) the punch connects them directly; behind symmetric NATs
//! (`MASQUERADE --random-fully`: each connection gets a random public
//! port) it fails, and the session stays relayed.
//!
//! Needs root, `ip` and `iptables` (installed with apt when missing and
//! possible); skipped, with a line saying why, otherwise.

mod support;

use std::process::Command;
use std::time::Instant;

use support::Proc;

/// Runs `ip` with `args`; panics if it fails.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?} failed");
}

/// Runs `command` in namespace `ns`; panics if it fails.
fn exec(ns: &str, command: &[&str]) {
    let status = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(command)
        .status()
        .expect("ip netns exec runs");
    assert!(status.success(), "{command:?} in {ns} failed");
}

/// The namespaces of one testbed, deleted on drop.
struct Testbed {
    public: String,
    nat_a: String,
    host_a: String,
    nat_b: String,
    host_b: String,
}

/// How a NAT router maps its hosts' connections.
#[derive(Clone, Copy)]
enum Nat {
    /// `MASQUERADE --random-fully`: a random public port per connection.
    Symmetric,
    /// Plain `MASQUERADE`: the source port kept where it is free (one
    /// mapping per local port), replies only from the address and port
    /// dialled (conntrack): a port-restricted cone.
    PortRestricted,
}

impl Testbed {
    fn build(tag: &str, nat: Nat) -> Testbed {
        let pid = std::process::id();
        let name = |role: &str| format!("rm{tag}{role}-{pid}");
        let bed = Testbed {
            public: name("pub"),
            nat_a: name("na"),
            host_a: name("ha"),
            nat_b: name("nb"),
            host_b: name("hb"),
        };
        for ns in bed.all() {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let public = bed.public.as_str();
        ip(&["-n", public, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", public, "addr", "add", "198.18.0.1/24", "dev", "br0"]);
        ip(&["-n", public, "link", "set", "br0", "up"]);
        for (router, host, wan_ip, lan, port) in [
            (&bed.nat_a, &bed.host_a, "198.18.0.2/24", "10.1.0", "upa"),
            (&bed.nat_b, &bed.host_b, "198.18.0.3/24", "10.2.0", "upb"),
        ] {
            // The router's uplink, on the public bridge.
            ip(&[
                "link", "add", "wan0", "netns", router, "type", "veth", "peer", "name", port,
                "netns", public,
            ]);
            ip(&["-n", public, "link", "set", port, "master", "br0"]);
            ip(&["-n", public, "link", "set", port, "up"]);
            ip(&["-n", router, "addr", "add", wan_ip, "dev", "wan0"]);
            ip(&["-n", router, "link", "set", "wan0", "up"]);
            // Its LAN, with the host behind it.
            ip(&[
                "link", "add", "lan0", "netns", router, "type", "veth", "peer", "name", "eth0",
                "netns", host,
            ]);
            let gateway = format!("{lan}.1");
            ip(&[
                "-n",
                router,
                "addr",
                "add",
                &format!("{gateway}/24"),
                "dev",
                "lan0",
            ]);
            ip(&["-n", router, "link", "set", "lan0", "up"]);
            ip(&[
                "-n",
                host,
                "addr",
                "add",
                &format!("{lan}.2/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", host, "link", "set", "eth0", "up"]);
            ip(&["-n", host, "route", "add", "default", "via", &gateway]);
            exec(router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
            let mut masquerade = vec![
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "wan0",
                "-j",
                "MASQUERADE",
            ];
            match nat {
                Nat::Symmetric => masquerade.push("--random-fully"),
                Nat::PortRestricted => {}
            }
            exec(router, &masquerade);
            // Nothing from outside reaches the LAN but replies; what is
            // sent to the router itself unasked is dropped, not refused
            // (as a home router does: a hole punch's early SYN is lost,
            // and sent again, rather than answered with a reset).
            for rule in [
                &[
                    "-A",
                    "INPUT",
                    "-i",
                    "wan0",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "NEW,INVALID",
                    "-j",
                    "DROP",
                ][..],
                &[
                    "-A",
                    "FORWARD",
                    "-i",
                    "wan0",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "ESTABLISHED,RELATED",
                    "-j",
                    "ACCEPT",
                ][..],
                &["-A", "FORWARD", "-i", "wan0", "-j", "DROP"][..],
            ] {
                let mut command = vec!["iptables"];
                command.extend_from_slice(rule);
                exec(router, &command);
            }
        }
        bed
    }

    fn all(&self) -> [&str; 5] {
        [
            &self.public,
            &self.nat_a,
            &self.host_a,
            &self.nat_b,
            &self.host_b,
        ]
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for ns in self.all() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Why this machine cannot build the testbed, if it cannot. Installs
/// `iptables` with apt when it is missing and this is root.
fn cannot_build_testbed() -> Option<String> {
    if let Some(why) = support::cannot_build_netns() {
        return Some(why);
    }
    let has_iptables = || {
        Command::new("iptables")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has_iptables() {
        eprintln!("iptables is missing: installing it with apt-get");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "iptables"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        if !has_iptables() {
            return Some("`iptables` is missing and apt-get could not install it".into());
        }
    }
    None
}

/// The relay's line, then the counter in it named by `label` (`N label`).
fn figure(line: &str, label: &str) -> u64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {line:?}"));
    line[..at]
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number before {label:?} in {line:?}"))
}

#[test]
fn symmetric_nat_to_symmetric_nat_falls_back_to_the_relay() {
    if let Some(why) = cannot_build_testbed() {
        eprintln!("SKIPPED symmetric_nat_to_symmetric_nat_falls_back_to_the_relay: {why}");
        return;
    }
    across_the_nats("s", Nat::Symmetric, "symmetric");
}

#[test]
fn port_restricted_nat_to_port_restricted_nat_connects_directly_by_hole_punching() {
    if let Some(why) = cannot_build_testbed() {
        eprintln!(
            "SKIPPED port_restricted_nat_to_port_restricted_nat_connects_directly_by_hole_punching: {why}"
        );
        return;
    }
    across_the_nats("p", Nat::PortRestricted, "port-restricted");
}

/// The `hole punches: N attempts, N succeeded, N failed` counts of a
/// `status` answer.
fn punches(p: &mut Proc) -> (u64, u64, u64) {
    let line = p.answer("status", |l| l.starts_with("hole punches:"));
    (
        figure(&line, "attempts"),
        figure(&line, "succeeded"),
        figure(&line, "failed"),
    )
}

/// Builds the testbed with `nat` on both sides; the two hosts reach each
/// other through the relay, then try a hole punch: behind port-restricted
/// NATs they end up connected directly (each at the other NAT's public
/// address), behind symmetric ones the punch fails and the session stays
/// relayed. Either way a message, a broadcast and a table read cross.
/// Prints the time to the relayed session, to the direct one, and the
/// relay's bytes.
fn across_the_nats(tag: &str, nat: Nat, label: &str) {
    let punchable = matches!(nat, Nat::PortRestricted);
    let bed = Testbed::build(tag, nat);
    let mut relay = Proc::spawn_in_netns(
        "relay",
        &bed.public,
        &["node", "--listen", "198.18.0.1:0", "--relay"],
    );
    relay.wait_line("started a new ring: this node is its first member");
    let relay_addr = relay.addr.clone();
    let host = |name: &str, ns: &str| {
        Proc::spawn_in_netns(
            name,
            ns,
            &[
                "node",
                "--listen",
                "0.0.0.0:0",
                "--bootstrap",
                &relay_addr,
                "--via-relay",
                &relay_addr,
            ],
        )
    };
    let mut a = host("a", &bed.host_a);
    let b_started = Instant::now();
    let mut b = host("b", &bed.host_b);
    let relay_short = relay.short().to_owned();
    for p in [&mut a, &mut b] {
        // Each sees the relay from behind its NAT, and reserves there.
        p.wait_line(&format!(
            "relay <{relay_short}> holds a reservation for this node (3600 s)"
        ));
    }
    // The relay sees each at its NAT's public address, never the private
    // one.
    for (p, public) in [(&a, "198.18.0.2:"), (&b, "198.18.0.3:")] {
        relay.wait_for("a host behind its NAT up", |l| {
            l.starts_with(&format!("peer up <{}> {public}", p.short()))
        });
    }

    // Each learns the other from the relay's peer list, at its private
    // address only; the direct dial fails, and the fallback opens a
    // circuit at the relay carrying a session of their own. Its remote is
    // the relay's address: there is no direct connection.
    let (a_short, b_short) = (a.short().to_owned(), b.short().to_owned());
    a.wait_for("b up through the relay", |l| {
        l.starts_with(&format!("peer up <{b_short}> {relay_addr}"))
    });
    b.wait_for("a up through the relay", |l| {
        l.starts_with(&format!("peer up <{a_short}> {relay_addr}"))
    });
    let session_in = b_started.elapsed();
    // The end that accepted the circuit starts a hole punch over it.
    let direct_in = if punchable {
        // Each dials the other's public address from its listen port;
        // the SYNs cross the NATs, and the direct session replaces the
        // relayed one on both ends.
        for (p, other, public) in [
            (&mut a, &b_short, "198.18.0.3:"),
            (&mut b, &a_short, "198.18.0.2:"),
        ] {
            p.wait_for("the punched direct connection", |l| {
                l.starts_with(&format!(
                    "hole punch with <{other}> succeeded: direct connection to {public}"
                ))
            });
        }
        let direct_in = b_started.elapsed();
        let row = a.answer("peers", |l| l.starts_with(&b.id));
        assert!(row.ends_with(" up"), "direct, not relayed: {row}");
        Some(direct_in)
    } else {
        // The NATs give each dial a port of their own: the SYNs find no
        // mapping, every attempt fails, and the session stays relayed.
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (pa, pb) = (punches(&mut a), punches(&mut b));
            if pa.2 + pb.2 >= 1 {
                assert_eq!((pa.1, pb.1), (0, 0), "no punch succeeds: {pa:?} {pb:?}");
                assert!(pa.0 + pb.0 >= 1, "a punch was tried: {pa:?} {pb:?}");
                break;
            }
            assert!(Instant::now() < deadline, "no punch failed: {pa:?} {pb:?}");
            a.read_for(std::time::Duration::from_millis(500));
        }
        let row = a.answer("peers", |l| l.starts_with(&b.id));
        assert!(row.ends_with("up, relayed"), "{row}");
        None
    };
    let relayed_before = figure(
        &relay.answer("status", |l| l.starts_with("as a relay:")),
        "bytes relayed",
    );
    // A direct message crosses on that session.
    a.type_line(&format!("send {} across the nats", b.id));
    b.wait_line(&format!("(direct) <{a_short}> across the nats"));
    // A broadcast crosses too.
    b.type_line(&format!("msg hello from behind a {label} nat"));
    a.wait_line(&format!("<{b_short}> hello from behind a {label} nat"));

    // A table read crosses: b writes a key, a reads it (each joined the
    // ring through the relay; ring links between them go through it too).
    support::wait_joined(&mut a);
    support::wait_joined(&mut b);
    b.type_line("put --open colour blue");
    b.wait_for("the put acknowledged", |l| {
        l.starts_with("stored open colour")
    });
    // The ring settles after the joins (stabilization rounds): read
    // until the value is there, within a deadline.
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let read = loop {
        let read = a.answer("get --open colour", |l| l.contains("colour"));
        if read.contains("colour = blue") || Instant::now() > deadline {
            break read;
        }
        a.read_for(std::time::Duration::from_millis(500));
    };
    assert!(read.contains("colour = blue"), "{read}");

    let relayed = relay.answer("status", |l| l.starts_with("as a relay:"));
    let circuits = figure(&relayed, "circuits opened");
    let bytes = figure(&relayed, "bytes relayed");
    let through = a.answer("status", |l| l.starts_with("relayed sessions:"));
    let (attempts, succeeded, failed) = punches(&mut a);
    eprintln!(
        "{label} <-> {label}: session through the relay within {session_in:?} of b's start, \
         direct connection: {direct_in:?}; relay: {relayed}; a: {through}; \
         a's hole punches: {attempts} attempts, {succeeded} succeeded, {failed} failed"
    );
    assert!(circuits >= 1, "{relayed}");
    assert!(bytes > 0, "{relayed}");
    if punchable {
        // Once direct, the message, broadcast and table traffic went
        // around the relay: at most the relayed session's last goodbyes
        // crossed it after the punch.
        assert!(
            bytes - relayed_before < 256,
            "{relayed_before} then {relayed}"
        );
        let row = b.answer("peers", |l| l.starts_with(&a.id));
        assert!(row.ends_with(" up"), "still direct: {row}");
    }
    for p in [&mut a, &mut b, &mut relay] {
        p.type_line("exit");
        assert!(p.wait_exit().success());
    }
}
