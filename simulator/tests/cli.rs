//! The `ringmesh-sim` binary as a user runs it: the flood command,
//! its JSON fields, and the trace hash as a function of the seed.

use std::process::Command;

fn flood_json(seed: u64) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmesh-sim"))
        .args([
            "flood",
            "--nodes",
            "10000",
            "--seed",
            &seed.to_string(),
            "--json",
        ])
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
fn flood_of_ten_thousand_reaches_every_node_and_replays_from_its_seed() {
    let a = flood_json(1);
    for field in [
        "nodes",
        "live_nodes",
        "delivered",
        "delivery_ratio",
        "duplicates",
        "rmr",
        "mean_hops",
        "max_hops",
        "last_delivery_ms",
        "events",
        "events_per_sec",
        "wall_ms",
        "peak_rss_mib",
        "trace_hash",
        "seed",
    ] {
        assert!(a.get(field).is_some(), "missing {field}: {a}");
    }
    assert_eq!(a["nodes"], 10_000);
    assert_eq!(a["delivery_ratio"], 1.0);
    assert_eq!(a["double_deliveries"], 0);
    let b = flood_json(1);
    assert_eq!(a["trace_hash"], b["trace_hash"]);
    let c = flood_json(2);
    assert_ne!(a["trace_hash"], c["trace_hash"]);
}

#[test]
fn a_failed_invariant_exits_non_zero_with_the_replay_command() {
    // Degree 2 with a fifth of the nodes crashed cannot reach everyone.
    let out = Command::new(env!("CARGO_BIN_EXE_ringmesh-sim"))
        .args([
            "flood", "--nodes", "500", "--degree", "2", "--crash", "100", "--seed", "3",
        ])
        .output()
        .expect("ringmesh-sim runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ringmesh-sim flood --seed 3 --nodes 500"),
        "{stderr}"
    );
}
