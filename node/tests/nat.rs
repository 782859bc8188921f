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
//! Two more cases run Debian's `miniupnpd` on a router: the host behind
//! it maps its listen port there, by UPnP IGD (`--upnp`) in one and by PCP
//! (`--port-mapping natpmp`) in the other, is reached at the mapping from
//! the public network, and removes the mapping when it exits.
//!
//! Needs root, `ip`, `iptables` and `miniupnpd` (installed with apt when
//! missing and possible); skipped, with a line saying why, otherwise.

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
    /// The testbed, its public network `public`.0/24 (the routers at .2
    /// and .3, the public namespace's bridge at .1).
    fn build(tag: &str, nat: Nat, public_net: &str) -> Testbed {
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
        let bridge_ip = format!("{public_net}.1/24");
        ip(&["-n", public, "addr", "add", &bridge_ip, "dev", "br0"]);
        let (wan_a, wan_b) = (format!("{public_net}.2/24"), format!("{public_net}.3/24"));
        ip(&["-n", public, "link", "set", "br0", "up"]);
        for (router, host, wan_ip, lan, port) in [
            (&bed.nat_a, &bed.host_a, wan_a.as_str(), "10.1.0", "upa"),
            (&bed.nat_b, &bed.host_b, wan_b.as_str(), "10.2.0", "upb"),
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
            // Nothing from outside reaches the LAN but replies and what a
            // port mapping forwards; what is sent to the router itself
            // unasked is dropped, not refused (as a home router does: a
            // hole punch's early SYN is lost, and sent again, rather than
            // answered with a reset).
            for rule in [
                "-A FORWARD -i wan0 -m conntrack --ctstate DNAT -j ACCEPT",
                "-A INPUT -i wan0 -m conntrack --ctstate NEW,INVALID -j DROP",
                "-A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                "-A FORWARD -i wan0 -j DROP",
            ] {
                let mut command = vec!["iptables"];
                command.extend(rule.split_whitespace());
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
    let bed = Testbed::build(tag, nat, "198.18.0");
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
    table_read_crosses(&mut b, &mut a, "blue");

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

/// Once both have joined the ring, `writer` stores `colour = value` and
/// `reader` reads it back. The ring settles after the joins
/// (stabilization rounds): the reader reads until the value is there,
/// within a deadline.
fn table_read_crosses(writer: &mut Proc, reader: &mut Proc, value: &str) {
    support::wait_joined(writer);
    support::wait_joined(reader);
    writer.type_line(&format!("put --open colour {value}"));
    writer.wait_for("the put acknowledged", |l| {
        l.starts_with("stored open colour")
    });
    let want = format!("colour = {value}");
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let read = loop {
        let read = reader.answer("get --open colour", |l| l.contains("colour"));
        if read.contains(&want) || Instant::now() > deadline {
            break read;
        }
        reader.read_for(std::time::Duration::from_millis(500));
    };
    assert!(read.contains(&want), "{read}");
}

/// Why this machine cannot run `miniupnpd` in the testbed, if it cannot.
/// Installs it (Debian's `miniupnpd`, nftables backend) with apt when it
/// is missing and this is root.
fn cannot_run_miniupnpd() -> Option<String> {
    if let Some(why) = cannot_build_testbed() {
        return Some(why);
    }
    let present = || {
        std::path::Path::new("/usr/sbin/miniupnpd").exists()
            && Command::new("nft")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
    };
    if !present() {
        eprintln!("miniupnpd is missing: installing it with apt-get");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "miniupnpd", "nftables"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        if !present() {
            return Some("`miniupnpd` is missing and apt-get could not install it".into());
        }
    }
    None
}

/// A `miniupnpd` running on a NAT router of the testbed, killed on drop.
struct Miniupnpd {
    child: std::process::Child,
    files: [String; 2],
    router: String,
}

/// The protocol a `miniupnpd` serves mappings by.
#[derive(Clone, Copy)]
enum Serves {
    /// UPnP IGD only (SSDP on UDP 1900).
    Upnp,
    /// NAT-PMP and PCP only (UDP 5351).
    NatPmpAndPcp,
}

impl Miniupnpd {
    /// Starts it in `router`, its external interface `wan0`, its LAN
    /// `lan0` (hosts of `lan`.0/24 may map ports 1024–65535 to
    /// themselves), on the nftables chains it expects (made here:
    /// Debian's `nft_init.sh` does the same on a real router).
    fn start(router: &str, lan: &str, serves: Serves) -> Miniupnpd {
        let (conf, pidfile) = (
            format!("/tmp/ringmesh-miniupnpd-{router}.conf"),
            format!("/tmp/ringmesh-miniupnpd-{router}.pid"),
        );
        let ruleset = "table inet filter {\n\
             chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }\n\
             chain miniupnpd { }\n\
             chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }\n\
             chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }\n\
             chain prerouting_miniupnpd { }\n\
             chain postrouting_miniupnpd { }\n\
             }\n";
        let rules = format!("/tmp/ringmesh-miniupnpd-{router}.nft");
        std::fs::write(&rules, ruleset).expect("write the nft ruleset");
        exec(router, &["nft", "-f", &rules]);
        let _ = std::fs::remove_file(&rules);
        std::fs::write(
            &conf,
            format!(
                "ext_ifname=wan0\n\
                 listening_ip=lan0\n\
                 port=0\n\
                 enable_upnp={upnp}\n\
                 enable_natpmp={natpmp}\n\
                 secure_mode=yes\n\
                 system_uptime=yes\n\
                 uuid=3f1c5a0e-9b1d-4c1e-8f55-2f4b7d2a9c01\n\
                 upnp_table_name=filter\n\
                 upnp_nat_table_name=filter\n\
                 upnp_forward_chain=miniupnpd\n\
                 upnp_nat_chain=prerouting_miniupnpd\n\
                 upnp_nat_postrouting_chain=postrouting_miniupnpd\n\
                 allow 1024-65535 {lan}.0/24 1024-65535\n\
                 deny 0-65535 0.0.0.0/0 0-65535\n",
                upnp = if matches!(serves, Serves::Upnp) {
                    "yes"
                } else {
                    "no"
                },
                natpmp = if matches!(serves, Serves::NatPmpAndPcp) {
                    "yes"
                } else {
                    "no"
                },
            ),
        )
        .expect("write the miniupnpd config");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                router,
                "miniupnpd",
                "-d",
                "-f",
                &conf,
                "-P",
                &pidfile,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("miniupnpd starts");
        let upnpd = Miniupnpd {
            child,
            files: [conf, pidfile],
            router: router.to_owned(),
        };
        // Ready once it listens for SSDP searches (UDP 1900), or for
        // NAT-PMP and PCP requests (UDP 5351), on the LAN.
        let socket = match serves {
            Serves::Upnp => ":1900 ",
            Serves::NatPmpAndPcp => ":5351 ",
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let sockets = Command::new("ip")
                .args(["netns", "exec", router, "ss", "-lnu"])
                .output()
                .expect("ss runs");
            if String::from_utf8_lossy(&sockets.stdout).contains(socket) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "miniupnpd never listened on {socket}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        upnpd
    }

    /// The port forwards it has made: the rules of its nftables chain
    /// (`… tcp dport P dnat ip to 10.1.0.2:P`), one per line.
    fn forwards(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.router])
            .args([
                "nft",
                "list",
                "chain",
                "inet",
                "filter",
                "prerouting_miniupnpd",
            ])
            .output()
            .expect("nft runs");
        assert!(out.status.success(), "nft list chain failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("dnat"))
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

impl Drop for Miniupnpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A node behind a NAT whose router runs `miniupnpd` maps its listen port
/// there by UPnP IGD (through `igd-next`) and announces the mapping; a
/// node on the public network that knows only that address reaches it
/// there, and the mapping is gone once the node exits. The node asks
/// `--port-mapping auto`: PCP first, which this `miniupnpd` does not
/// serve (the router answers port unreachable), then UPnP. (`--upnp`, the
/// older flag, is `--port-mapping upnp`: the program's unit tests.)
#[test]
fn a_node_behind_a_nat_with_miniupnpd_becomes_reachable_through_its_mapping() {
    if let Some(why) = cannot_run_miniupnpd() {
        eprintln!(
            "SKIPPED a_node_behind_a_nat_with_miniupnpd_becomes_reachable_through_its_mapping: {why}"
        );
        return;
    }
    reachable_through_a_mapping(
        "u",
        Serves::Upnp,
        &["--port-mapping", "auto"],
        Some("no PCP or NAT-PMP port mapping: nothing answers at 10.1.0.1:5351 (port unreachable)"),
        "the UPnP gateway at 10.1.0.1:",
    );
}

/// The same through `miniupnpd`'s PCP server (`--port-mapping natpmp`:
/// PCP MAP first, which `miniupnpd` answers; NAT-PMP only for gateways
/// that answer PCP with UNSUPP_VERSION, which the unit tests play).
#[test]
fn a_node_behind_a_nat_maps_its_port_by_pcp_and_is_reached_through_it() {
    if let Some(why) = cannot_run_miniupnpd() {
        eprintln!(
            "SKIPPED a_node_behind_a_nat_maps_its_port_by_pcp_and_is_reached_through_it: {why}"
        );
        return;
    }
    reachable_through_a_mapping(
        "m",
        Serves::NatPmpAndPcp,
        &["--port-mapping", "natpmp"],
        None,
        "PCP at 10.1.0.1 ",
    );
}

/// Host a, behind a NAT whose router runs `miniupnpd` serving `serves`,
/// maps its listen port there (its options `mapping`; its line names
/// `through`, after the line `fallback` if given) and announces the
/// mapping; a node on the public network that
/// knows only that address reaches it there, directly, and a message, a
/// broadcast and a table read cross. When a exits, `miniupnpd`'s forward
/// is gone. (The public network here is 11.0.0.0/24: `miniupnpd` refuses
/// to forward from a reserved external address such as 198.18.0.0/15's.)
fn reachable_through_a_mapping(
    tag: &str,
    serves: Serves,
    mapping: &[&str],
    fallback: Option<&str>,
    through: &str,
) {
    let bed = Testbed::build(tag, Nat::PortRestricted, "11.0.0");
    let upnpd = Miniupnpd::start(&bed.nat_a, "10.1.0", serves);
    assert_eq!(upnpd.forwards(), Vec::<String>::new(), "no forward yet");
    let mut founder =
        Proc::spawn_in_netns("founder", &bed.public, &["node", "--listen", "11.0.0.1:0"]);
    founder.wait_line("started a new ring: this node is its first member");
    let founder_addr = founder.addr.clone();
    let started = Instant::now();
    let mut args = vec![
        "node",
        "--listen",
        "0.0.0.0:0",
        "--bootstrap",
        &founder_addr,
    ];
    args.extend_from_slice(mapping);
    let mut a = Proc::spawn_in_netns("a", &bed.host_a, &args);
    let at = a.wait_for("the port mapping", |l| {
        l.starts_with("port mapping: 11.0.0.2:")
    });
    let mapped_line = a.lines[at].clone();
    if let Some(fallback) = fallback {
        assert!(
            a.lines[..at].iter().any(|l| l == fallback),
            "{fallback:?} before {mapped_line:?}"
        );
    }
    assert!(
        mapped_line.contains(&format!(
            " -> 10.1.0.2:{} through {through}",
            a.addr.rsplit(':').next().expect("port")
        )),
        "{mapped_line}"
    );
    let mapped = mapped_line["port mapping: ".len()..]
        .split(' ')
        .next()
        .expect("the mapped address")
        .to_owned();
    let mapped_in = started.elapsed();
    // The router forwards the mapped port to a.
    let mapped_port = mapped.rsplit(':').next().expect("port");
    let forwards = upnpd.forwards();
    assert!(
        forwards.len() == 1 && forwards[0].contains(&format!("dport {mapped_port} ")),
        "{forwards:?}"
    );
    // A public node that knows only the mapped address dials it there:
    // the router forwards the connection to a (its remote is the
    // router's public address and a's port, not a relay's).
    let mut c = Proc::spawn_in_netns(
        "c",
        &bed.public,
        &["node", "--listen", "11.0.0.1:0", "--bootstrap", &mapped],
    );
    let a_short = a.short().to_owned();
    c.wait_for("a up at its mapped address", |l| {
        l.starts_with(&format!("peer up <{a_short}> {mapped}"))
    });
    let reached_in = started.elapsed();
    // a announces the mapped address in its sessions from the mapping on
    // (its `Hello` to c lists it).
    let row = c.answer("peers", |l| l.starts_with(&a.id));
    assert!(row.contains(&mapped), "a announces the mapping: {row}");
    // A message, a broadcast and a table read cross.
    let c_short = c.short().to_owned();
    c.type_line(&format!("send {} through the mapping", a.id));
    a.wait_line(&format!("(direct) <{c_short}> through the mapping"));
    a.type_line("msg hello from behind a mapped nat");
    c.wait_line(&format!("<{a_short}> hello from behind a mapped nat"));
    table_read_crosses(&mut a, &mut c, "green");
    eprintln!(
        "miniupnpd ({}): mapping {mapped} made within {mapped_in:?} of a's start; \
         a reached there from the public network within {reached_in:?}",
        through.trim_end_matches([' ', ':'])
    );
    // a removes its mapping on the way out (before its process ends).
    a.type_line("exit");
    assert!(a.wait_exit().success());
    assert!(
        a.lines
            .iter()
            .any(|l| l.starts_with(&format!("port mapping {mapped} removed from"))),
        "a says it removed the mapping"
    );
    assert_eq!(
        upnpd.forwards(),
        Vec::<String>::new(),
        "the forward is gone"
    );
    for p in [&mut c, &mut founder] {
        p.type_line("exit");
        assert!(p.wait_exit().success());
    }
}
