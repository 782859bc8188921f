//! `spec/limits.md` states every cap's default; this checks each one it
//! states for a setting against the code, so the page and the defaults
//! cannot drift apart. A row whose first cell is a setting (`` `a.b` ``)
//! must be here, and every setting here must have its row.

use std::collections::BTreeMap;

use ringmesh::Duration;
use ringmesh::{
    ChordConfig, Config, DhtConfig, HyParViewConfig, PlumtreeConfig, ReachConfig, RelayConfig,
    SyncConfig,
};
use ringmesh_driver::{
    ACCEPTS_PER_TURN, AdapterConfig, DEFAULT_EVENT_CAPACITY, DEFAULT_EVENT_CAPACITY_BYTES,
    DEFAULT_MAX_BACKLOG_BYTES, LISTEN_BACKLOG,
};

/// First cell (a setting in backquotes) → second cell, for every table row
/// of the page.
fn rows() -> BTreeMap<String, String> {
    let page = include_str!("../../spec/limits.md");
    let mut rows = BTreeMap::new();
    for line in page.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| `name` | default | ... |" splits into ["", name, default, ...].
        if cells.len() < 4 || !cells[1].starts_with('`') || !cells[1].ends_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_owned();
        let previous = rows.insert(name.clone(), cells[2].to_owned());
        assert!(previous.is_none(), "two rows for `{name}`");
    }
    rows
}

/// 1024 → "1,024", as the page writes counts.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 64 << 20 → "64 MiB".
fn bytes(n: usize) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        count(n)
    }
}

/// 3 s → "3 s", 0.5 s → "500 ms".
fn duration(d: Duration) -> String {
    let us = d.as_micros();
    if us.is_multiple_of(1_000_000) {
        format!("{} s", us / 1_000_000)
    } else {
        format!("{} ms", us / 1_000)
    }
}

#[test]
fn every_default_on_the_limits_page_is_the_codes() {
    let c = Config::default();
    let lan = Config::lan();
    let a = &c.peers.admission;
    let chord = ChordConfig::default();
    let dht = DhtConfig::default();
    let sync = SyncConfig::default();
    let adapter = AdapterConfig::new(
        "127.0.0.1:1".parse().expect("addr"),
        Config::default(),
        ringmesh::Identity::from_secret_bytes([1; 32]),
        1,
    );
    assert_eq!(adapter.event_capacity, DEFAULT_EVENT_CAPACITY);
    assert_eq!(adapter.event_capacity_bytes, DEFAULT_EVENT_CAPACITY_BYTES);
    assert_eq!(adapter.max_backlog_bytes, DEFAULT_MAX_BACKLOG_BYTES);
    let expected: Vec<(&str, String)> = vec![
        ("peers.max_connections", count(c.peers.max_connections)),
        ("peers.max_outbound", count(c.peers.max_outbound)),
        ("peers.max_half_open", count(c.peers.max_half_open)),
        ("peers.max_inbound", count(c.peers.max_inbound)),
        ("peers.target_peers", count(c.peers.target_peers)),
        ("peers.max_known_peers", count(c.peers.max_known_peers)),
        (
            "peers.admission.max_inbound_half_open",
            count(a.max_inbound_half_open),
        ),
        (
            "peers.admission.inbound_handshake_timeout",
            duration(a.inbound_handshake_timeout),
        ),
        (
            "peers.admission.max_inbound_per_ip",
            count(a.max_inbound_per_ip),
        ),
        (
            "peers.admission.max_inbound_per_group",
            count(a.max_inbound_per_group),
        ),
        (
            "peers.admission.group_handshake_rate",
            a.group_handshake_rate.to_string(),
        ),
        (
            "peers.admission.group_handshake_burst",
            a.group_handshake_burst.to_string(),
        ),
        (
            "peers.admission.handshake_rate",
            a.handshake_rate.to_string(),
        ),
        (
            "peers.admission.handshake_burst",
            a.handshake_burst.to_string(),
        ),
        (
            "session.handshake_timeout",
            duration(c.session.handshake_timeout),
        ),
        (
            "session.max_frame_len",
            bytes(c.session.max_frame_len as usize),
        ),
        ("session.receive_budget", bytes(c.session.receive_budget)),
        (
            "adapter.max_backlog_bytes",
            bytes(adapter.max_backlog_bytes),
        ),
        ("adapter.event_capacity", count(adapter.event_capacity)),
        (
            "adapter.event_capacity_bytes",
            bytes(adapter.event_capacity_bytes),
        ),
        ("mesh.replay_origins", count(c.mesh.replay_origins)),
        ("mesh.replay_runs", count(c.mesh.replay_runs)),
        ("mesh.max_forgeries", count(c.mesh.max_forgeries as usize)),
        ("mesh.max_hops", c.mesh.max_hops.to_string()),
        (
            "mesh.plumtree.cache_bytes",
            bytes(PlumtreeConfig::default().cache_bytes),
        ),
        (
            "mesh.plumtree.cache_window",
            duration(PlumtreeConfig::default().cache_window),
        ),
        (
            "mesh.plumtree.max_pending_ihave",
            count(PlumtreeConfig::default().max_pending_ihave),
        ),
        (
            "mesh.plumtree.max_missing",
            count(PlumtreeConfig::default().max_missing),
        ),
        (
            "mesh.plumtree.link_announce",
            duration(PlumtreeConfig::default().link_announce),
        ),
        (
            "mesh.hyparview.active_view",
            count(HyParViewConfig::default().active_view),
        ),
        (
            "mesh.hyparview.passive_view",
            count(HyParViewConfig::default().passive_view),
        ),
        (
            "messaging.max_pending_requests",
            count(c.messaging.max_pending_requests),
        ),
        (
            "messaging.max_queued_messages",
            count(c.messaging.max_queued_messages),
        ),
        ("chord.max_lookups", count(chord.max_lookups)),
        ("chord.max_forwards", count(chord.max_forwards)),
        (
            "chord.max_forwards_per_peer",
            count(chord.max_forwards_per_peer),
        ),
        ("chord.route_ttl", chord.route_ttl.to_string()),
        ("chord.max_fingers", count(chord.max_fingers)),
        (
            "chord.fix_fingers_backoff",
            chord.fix_fingers_backoff.to_string(),
        ),
        ("chord.max_merge_suspects", count(chord.max_merge_suspects)),
        ("dht.max_entries", count(dht.max_entries)),
        ("dht.max_bytes", bytes(dht.max_bytes)),
        (
            "dht.max_entries_per_writer",
            count(dht.max_entries_per_writer),
        ),
        ("dht.max_bytes_per_writer", bytes(dht.max_bytes_per_writer)),
        (
            "dht.max_entries_per_sender",
            count(dht.max_entries_per_sender),
        ),
        ("dht.max_bytes_per_sender", bytes(dht.max_bytes_per_sender)),
        ("sync.max_entries", count(sync.max_entries)),
        (
            "reach.max_observers",
            count(ReachConfig::default().max_observers),
        ),
        ("reach.max_probes", count(ReachConfig::default().max_probes)),
        (
            "relay.max_reservations",
            count(RelayConfig::default().max_reservations),
        ),
        (
            "relay.max_circuits",
            count(RelayConfig::default().max_circuits),
        ),
        (
            "relay.max_circuits_per_peer",
            count(RelayConfig::default().max_circuits_per_peer),
        ),
        (
            "relay.circuit_bytes",
            bytes(RelayConfig::default().circuit_bytes as usize),
        ),
        (
            "relay.circuit_duration",
            duration(RelayConfig::default().circuit_duration),
        ),
        (
            "relay.circuit_rate",
            format!("{}/s", bytes(RelayConfig::default().circuit_rate as usize)),
        ),
        (
            "relay.max_relayed_conns",
            count(RelayConfig::default().max_relayed_conns),
        ),
        (
            "relay.punch_attempts",
            count(RelayConfig::default().punch_attempts as usize),
        ),
        (
            "relay.punch_timeout",
            duration(RelayConfig::default().punch_timeout),
        ),
        (
            "relay.max_relay_addrs",
            count(RelayConfig::default().max_relay_addrs),
        ),
        ("sync.max_bytes", bytes(sync.max_bytes)),
        (
            "sync.max_bytes_per_writer",
            bytes(sync.max_bytes_per_writer),
        ),
        ("sync.max_value_len", bytes(sync.max_value_len)),
        (
            "liveness.ping_interval",
            format!(
                "{} ({})",
                duration(c.liveness.ping_interval),
                duration(lan.liveness.ping_interval)
            ),
        ),
        (
            "liveness.ping_timeout",
            format!(
                "{} ({})",
                duration(c.liveness.ping_timeout),
                duration(lan.liveness.ping_timeout)
            ),
        ),
        (
            "LISTEN_BACKLOG",
            count(usize::try_from(LISTEN_BACKLOG).expect("a positive backlog")),
        ),
        ("ACCEPTS_PER_TURN", count(ACCEPTS_PER_TURN)),
        (
            "liveness.dead_after_misses",
            format!(
                "{} ({})",
                c.liveness.dead_after_misses, lan.liveness.dead_after_misses
            ),
        ),
    ];
    let mut rows = rows();
    for (name, want) in expected {
        let got = rows
            .remove(name)
            .unwrap_or_else(|| panic!("spec/limits.md has no row for `{name}`"));
        assert_eq!(got, want, "spec/limits.md: the default of `{name}`");
    }
    // Rows for constants and the program (not settings) are not checked
    // here; a setting's row must be.
    const SECTIONS: [&str; 9] = [
        "peers.",
        "session.",
        "mesh.",
        "messaging.",
        "chord.",
        "dht.",
        "sync.",
        "liveness.",
        "adapter.",
    ];
    let unchecked: Vec<&String> = rows
        .keys()
        .filter(|k| SECTIONS.iter().any(|s| k.starts_with(s)))
        .collect();
    assert!(
        unchecked.is_empty(),
        "rows of settings this test does not check: {unchecked:?}"
    );
}
