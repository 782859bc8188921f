//! The examples of `simulator/examples/` at small sizes: each must pass its
//! own check.

#[path = "../examples/request_response.rs"]
mod request_response;

#[path = "../examples/gossip_counter.rs"]
mod gossip_counter;

#[path = "../examples/dht_app.rs"]
mod dht_app;

#[test]
fn request_response_answers_every_client() {
    let summary = request_response::run(40, 1).expect("passes its check");
    assert_eq!(summary.right, 39 * 3);
    assert_eq!(summary.answered, 39 * 3);
}

#[test]
fn gossip_counter_converges() {
    let summary = gossip_counter::run(40, 4, 2).expect("passes its check");
    assert!(summary.total >= 40 * 3);
    // Every node delivered every other node's broadcasts.
    assert_eq!(summary.delivered, 40 * 39 * 3);
}

#[test]
fn dht_app_reads_what_was_written() {
    let summary = dht_app::run(24, 3).expect("passes its check");
    assert_eq!((summary.puts, summary.reads), (24 * 3, 24 * 3));
}

#[test]
fn examples_replay_from_their_seed() {
    let a = gossip_counter::run(20, 4, 9).expect("passes");
    let b = gossip_counter::run(20, 4, 9).expect("passes");
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.total, b.total);
}
