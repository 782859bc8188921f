//! The scenario files in `simulator/scenarios/`: each runs and passes (but
//! the deliberately failing one), a failing check fails the run and prints
//! its replay command, a malformed file is an error naming the problem, and
//! the same seed gives the same trace.

use std::path::{Path, PathBuf};

use ringmesh_sim::scenario::script::{Script, run_file};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("simulator/scenarios/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn is_failing_example(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "failing_example.toml")
}

/// The error `Script::parse` gives for `text`.
fn parse_error(text: &str) -> String {
    match Script::parse(text) {
        Ok(_) => panic!("accepted a malformed file:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_example_scenario_passes() {
    let files = scenario_files();
    assert!(
        files.len() >= 3,
        "expected the example scenarios, found {files:?}"
    );
    for path in files.iter().filter(|p| !is_failing_example(p)) {
        let outcome = run_file(path, None).expect("a valid scenario file");
        assert!(
            outcome.passed,
            "{} failed:\n{}replay: {}",
            path.display(),
            outcome.summary,
            outcome.replay
        );
        assert!(!outcome.summary.contains('✗'), "{}", outcome.summary);
        // The report has a line for every check and the automatic ones.
        let checks = outcome.json["checks"].as_array().expect("checks");
        assert_eq!(checks.len(), outcome.summary.lines().count());
        assert!(checks.iter().any(|c| c["kind"] == "no_double_delivery"));
    }
}

#[test]
fn a_failing_check_fails_the_run_and_gives_the_replay_command() {
    let path = scenarios_dir().join("failing_example.toml");
    let outcome = run_file(&path, None).expect("a valid scenario file");
    assert!(!outcome.passed, "{}", outcome.summary);
    assert!(outcome.replay.contains("--seed 3"), "{}", outcome.replay);
    assert!(
        outcome.replay.starts_with("ringmesh-sim run ")
            && outcome.replay.contains("failing_example.toml"),
        "{}",
        outcome.replay
    );
    // Exactly the deliberate check fails, and it says why.
    let failed: Vec<&str> = outcome
        .summary
        .lines()
        .filter(|l| l.starts_with('✗'))
        .collect();
    assert_eq!(failed.len(), 1, "{}", outcome.summary);
    assert!(
        failed[0].contains("not delivered at 4 (crashed)"),
        "{}",
        failed[0]
    );
    assert_eq!(outcome.json["passed"], false);
    assert_eq!(outcome.json["seed"], 3);
    assert_eq!(outcome.json["nodes"][4]["state"], "crashed");
}

#[test]
fn the_seed_option_overrides_the_file_and_the_trace_is_a_function_of_the_seed() {
    let path = scenarios_dir().join("churn.toml");
    let a = run_file(&path, None).expect("valid");
    let b = run_file(&path, None).expect("valid");
    let c = run_file(&path, Some(12)).expect("valid");
    let hash = |o: &ringmesh_sim::scenario::script::ScriptOutcome| {
        o.json["trace_hash"].as_str().expect("hash").to_owned()
    };
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(a.json, b.json);
    assert_ne!(hash(&a), hash(&c));
    assert_eq!(c.json["seed"], 12);
    assert!(c.replay.ends_with("--seed 12"), "{}", c.replay);
}

#[test]
fn a_file_that_cannot_be_read_or_parsed_is_an_error_naming_it() {
    let missing = scenarios_dir().join("no_such_file.toml");
    let e = run_file(&missing, None)
        .expect_err("missing file")
        .to_string();
    assert!(e.contains("no_such_file.toml"), "{e}");

    let dir = std::env::temp_dir().join(format!("ringmesh-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[step]]\nat_ms = 0\nadd_nodes = 2\n[[step]]\nat_ms = 5\nexplode = 1\n",
    )
    .expect("write");
    let e = run_file(&bad, None).expect_err("malformed").to_string();
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert!(e.contains("bad.toml"), "{e}");
    assert!(e.contains("step #1 (at_ms = 5)"), "{e}");
    assert!(e.contains("unknown action `explode`"), "{e}");
}

#[test]
fn malformed_files_are_errors_that_name_the_step_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        // Not TOML at all: the parser's message, with the line.
        ("seed = \n", "line 1"),
        (
            "sede = 3\n[[step]]\nat_ms = 0\nadd_nodes = 1\n",
            "unknown field `sede`",
        ),
        ("seed = 3\n", "no [[step]]"),
        ("[[step]]\nadd_nodes = 1\n", "step #0: missing `at_ms`"),
        (
            "[[step]]\nat_ms = -5\nadd_nodes = 1\n",
            "`at_ms` must be a whole number",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 3\n[[step]]\nat_ms = 1000\ncrash = 9\n",
            "step #1 (at_ms = 1000): `crash`: node 9 is out of range (3 nodes exist by then)",
        ),
        // Steps run in time order: node 1 does not exist yet at 0 ms.
        (
            "[[step]]\nat_ms = 100\nadd_nodes = 2\n[[step]]\nat_ms = 0\nconnect = [0, 1]\n",
            "step #1 (at_ms = 0): `connect`: node 0 is out of range (0 nodes exist by then)",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 2\ncrash = 1\n",
            "step #0 (at_ms = 0): both `add_nodes` and `crash`; one action per step",
        ),
        ("[[step]]\nat_ms = 0\n", "step #0 (at_ms = 0): no action"),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 2\n[[step]]\nat_ms = 1\nbroadcast = { from = 0, paylod = \"x\" }\n",
            "step #1 (at_ms = 1): `broadcast`: unknown field `paylod`",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 2\n[[step]]\nat_ms = 1\nbroadcast = { payload = \"x\" }\n",
            "`broadcast`: missing field `from`",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 2\n[[step]]\nat_ms = 1\ncheck = { kind = \"delivered_everywhere\", broadcast = \"b9\" }\n",
            "step #1 (at_ms = 1): `broadcast`: no step is labelled \"b9\"",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 2\n[[step]]\nat_ms = 1\ncheck = { kind = \"delivered_everywhere\", broadcast = 0 }\n",
            "step #0 is a `add_nodes`, not a `broadcast`",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 2\n[[step]]\nat_ms = 1\ncheck = { kind = \"delivered_everywhere\", broadcast = \"b\" }\n[[step]]\nat_ms = 2\nlabel = \"b\"\nbroadcast = { from = 0 }\n",
            "step #2 runs later (at_ms = 2)",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 2\n[[step]]\nat_ms = 1\ncheck = { kind = \"everything_fine\" }\n",
            "unknown check kind `everything_fine`",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = 4\n[[step]]\nat_ms = 1\npartition = [[0, 1], [1, 2]]\n",
            "`partition`: node 1 is in two groups",
        ),
        (
            "[[step]]\nat_ms = 0\nlabel = \"x\"\nadd_nodes = 2\n[[step]]\nat_ms = 1\nlabel = \"x\"\nheal = true\n",
            "label \"x\" is already step #0's",
        ),
        (
            "[node]\nbootstrap = [2]\n[[step]]\nat_ms = 0\nadd_nodes = 2\n",
            "step #0 (at_ms = 0): `bootstrap`: node 2 is out of range (the file adds 2 nodes)",
        ),
        (
            "[node]\npreset = \"moon\"\n[[step]]\nat_ms = 0\nadd_nodes = 2\n",
            "unknown variant `moon`",
        ),
        (
            "[[step]]\nat_ms = 0\nadd_nodes = { count = 3, bootstrap = [5] }\n",
            "step #0 (at_ms = 0): `bootstrap`: node 5 is out of range (the file adds 3 nodes)",
        ),
    ];
    for (text, expected) in cases {
        let e = parse_error(text);
        assert!(
            e.contains(expected),
            "for\n{text}\nexpected an error containing {expected:?}, got {e:?}"
        );
    }
}

#[test]
fn no_false_positives_fails_when_pongs_cannot_arrive_in_time() {
    // LAN timings (a miss after 500 ms) over 300 ms links: every round trip
    // takes 600 ms, so live peers are declared dead.
    let script = Script::parse(
        r#"
        seed = 5
        [net]
        latency_ms = 300
        jitter_ms = 0
        [node]
        preset = "lan"
        [[step]]
        at_ms = 0
        add_nodes = 3
        [[step]]
        at_ms = 0
        connect = [0, 1]
        [[step]]
        at_ms = 0
        connect = [1, 2]
        [[step]]
        at_ms = 10_000
        check = { kind = "no_false_positives" }
        "#,
    )
    .expect("valid");
    let outcome = script.run("inline.toml", None);
    assert!(!outcome.passed, "{}", outcome.summary);
    assert!(
        outcome
            .summary
            .contains("✗ #3 @ 10000 ms no_false_positives"),
        "{}",
        outcome.summary
    );
    // The same network with WAN timings (a miss after 3 s) is fine.
    let script = Script::parse(
        r#"
        seed = 5
        [net]
        latency_ms = 300
        jitter_ms = 0
        [node]
        preset = "wan"
        [[step]]
        at_ms = 0
        add_nodes = 3
        [[step]]
        at_ms = 0
        connect = [0, 1]
        [[step]]
        at_ms = 0
        connect = [1, 2]
        [[step]]
        at_ms = 30_000
        check = { kind = "no_false_positives" }
        [[step]]
        at_ms = 30_000
        check = { kind = "connected", node = 0, peer = 1 }
        "#,
    )
    .expect("valid");
    let outcome = script.run("inline.toml", None);
    assert!(outcome.passed, "{}", outcome.summary);
}

#[test]
fn refused_commands_and_unanswered_requests_fail_the_run() {
    let script = Script::parse(
        r#"
        [[step]]
        at_ms = 0
        add_nodes = { count = 3, bootstrap = [0] }
        [[step]]
        at_ms = 3_000
        kill = 2
        [[step]]
        at_ms = 3_100
        label = "from-the-dead"
        broadcast = { from = 2, payload = "boo" }
        [[step]]
        at_ms = 3_100
        label = "ask-the-dead"
        request = { from = 0, to = 2, payload = "hello?", timeout_ms = 1_000 }
        [[step]]
        at_ms = 3_100
        label = "ask-the-living"
        request = { from = 0, to = 1, payload = "hello?", timeout_ms = 1_000 }
        [[step]]
        at_ms = 3_100
        label = "tell"
        send = { from = 1, to = 0, payload = "hi" }
        [[step]]
        at_ms = 5_000
        check = { kind = "response", request = "ask-the-dead" }
        [[step]]
        at_ms = 5_000
        check = { kind = "response", request = "ask-the-living" }
        [[step]]
        at_ms = 5_000
        check = { kind = "received", send = "tell" }
        [[step]]
        at_ms = 5_000
        check = { kind = "delivered_everywhere", broadcast = "from-the-dead" }
        [[step]]
        at_ms = 5_000
        check = { kind = "peer_down", node = [0, 1], peer = 2 }
        "#,
    )
    .expect("valid");
    let outcome = script.run("inline.toml", None);
    assert!(!outcome.passed);
    let line = |needle: &str| {
        outcome
            .summary
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", outcome.summary))
            .to_owned()
    };
    assert!(line("action").starts_with('✗'));
    assert!(line("broadcast from 2 refused").contains("shut down"));
    assert!(line("request to 2 failed").starts_with('✗'));
    assert!(line("node 1 answered node 0's request").starts_with('✓'));
    assert!(line("received node 1's message").starts_with('✓'));
    assert!(line("\"from-the-dead\" never left").starts_with('✗'));
    assert!(line("peer_down").starts_with('✓'));
}
