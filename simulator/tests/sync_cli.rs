//! `ringmesh-sim sync` as a user runs it: every live node holds the same
//! table after a split network, crashes and late joiners; the JSON fields;
//! the same seed gives the same trace. The 10,000-node run is `#[ignore]`d
//! (about a minute in release):
//! `cargo test --release -p ringmesh-sim --test sync_cli -- --ignored`.

use std::process::Command;

fn sync_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmesh-sim"))
        .arg("sync")
        .args(args)
        .arg("--json")
        .output()
        .expect("ringmesh-sim runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("exactly one JSON object on stdout")
}

#[test]
fn a_split_network_converges_and_replays_from_its_seed() {
    let args = [
        "--nodes",
        "300",
        "--writers",
        "5",
        "--writes",
        "80",
        "--keys",
        "20",
    ];
    let a = sync_json(&args);
    for field in [
        "nodes",
        "live_nodes",
        "applied_writes",
        "refused_leased",
        "keys_held",
        "diverging_nodes",
        "convergence_ms",
        "bytes_per_write_per_node",
        "trace_hash",
        "replay",
    ] {
        assert!(a.get(field).is_some(), "missing {field}: {a}");
    }
    assert_eq!(a["scenario"], "sync");
    assert_eq!(a["diverging_nodes"], 0, "{a}");
    assert_eq!(a["live_nodes"], 310);
    assert!(a["convergence_ms"].as_f64().is_some(), "{a}");
    let b = sync_json(&args);
    assert_eq!(a["trace_hash"], b["trace_hash"]);
    let c = sync_json(&[&args[..], &["--seed", "2"]].concat());
    assert_ne!(a["trace_hash"], c["trace_hash"]);
}

#[test]
#[ignore = "about a minute in release"]
fn ten_thousand_nodes_converge() {
    let a = sync_json(&["--nodes", "10000"]);
    assert_eq!(a["diverging_nodes"], 0, "{a}");
    eprintln!(
        "10,000 nodes: converged {} ms after the last write, {} bytes per applied write per node",
        a["convergence_ms"], a["bytes_per_write_per_node"]
    );
}
