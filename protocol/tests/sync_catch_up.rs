//! Anti-entropy costs what differs, not what is held (spec/sync.md §5): a
//! node of a 100,000-key table that missed 100 and then 1,000 updates
//! while away catches up after it returns, and the bytes both nodes send
//! for it grow with the missed updates, far below the table's size.

use bytes::Bytes;
use ringmesh::testing::Network;
use ringmesh::{Config, Duration, Security, SyncCommand, SyncConfig};

const TABLE: usize = 100_000;

fn config() -> Config {
    Config {
        security: Security::Plaintext,
        sync: Some(SyncConfig {
            // Only the exchange on the new session: the figure is one
            // catch-up.
            anti_entropy_interval: Duration::from_secs(3600),
            max_bytes_per_writer: 64 << 20,
            ..SyncConfig::lan()
        }),
        ..Config::lan()
    }
}

fn set(net: &mut Network, i: usize, key: usize, value: &str) {
    let command = SyncCommand::Set {
        key: Bytes::from(format!("key-{key:06}")),
        value: Bytes::from(value.to_owned()),
    };
    net.command(i, command).expect("set");
}

/// Node 1 is away while node 0 rewrites `missed` keys spread over the
/// table; then it comes back. Returns the bytes both sent from the new
/// session on, once they hold the same table.
fn away_and_back(net: &mut Network, missed: usize, round: usize) -> usize {
    // Both ends see the links close, then node 1 is unreachable.
    net.disconnect_node(1);
    net.settle();
    net.crash(1);
    for k in 0..missed {
        set(
            net,
            0,
            k * (TABLE / missed) + round,
            &format!("update {round}"),
        );
    }
    net.settle();
    assert_ne!(net.node(0).sync_digest(), net.node(1).sync_digest());
    net.recover(1);
    net.record_sent(true);
    let already = net.sent().len();
    net.connect(1, 0).expect("dial");
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.node(0).sync_digest(), net.node(1).sync_digest());
    assert_eq!(net.node(1).sync_usage().entries, TABLE);
    net.sent()[already..].iter().map(|s| s.bytes.len()).sum()
}

#[test]
fn catch_up_bytes_grow_with_the_missed_updates_not_the_table() {
    let mut net = Network::new(Duration::from_millis(5));
    net.add_node(config(), [1; 32], 1).expect("as set up");
    net.add_node(config(), [2; 32], 2).expect("as set up");
    net.connect(0, 1).expect("as set up");
    net.settle();
    for k in 0..TABLE {
        set(&mut net, 0, k, "first");
        if k % 1_000 == 999 {
            net.settle();
        }
    }
    net.settle();
    assert_eq!(net.node(1).sync_usage().entries, TABLE);
    let table_bytes = net.node(1).sync_usage().bytes;

    let small = away_and_back(&mut net, 100, 1);
    let large = away_and_back(&mut net, 1_000, 2);
    let per_update = large / 1_000;
    eprintln!(
        "catch-up of a {TABLE}-key table ({table_bytes} bytes held): 100 missed → {small} bytes, \
         1,000 missed → {large} bytes ({per_update} bytes per missed update)"
    );
    // Proportional to the difference: ten times the updates, at most about
    // ten times the bytes (a little more at the leaves, which get denser;
    // at least 5×: the cost is not a constant either) …
    assert!(
        (5 * small..=14 * small).contains(&large),
        "100 → {small}, 1,000 → {large}"
    );
    // … and nowhere near the table: under 10 % of it for 1 % of its keys.
    assert!(large * 10 < table_bytes, "{large} vs {table_bytes}");
}
