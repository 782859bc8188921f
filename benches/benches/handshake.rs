//! Full session handshakes between two in-memory nodes. See
//! `benches/README.md`.
//!
//! | bench | what is timed |
//! |---|---|
//! | `handshake/noise/connect` | `connect(0, 1)` + `run` until both nodes report `PeersEvent::Established`; the two nodes are built untimed |
//! | `handshake/noise/full` | the same plus building the `Network` and both nodes (identity key derivation, signing the Noise static key) |
//! | `handshake/plaintext/connect`, `handshake/plaintext/full` | the same in plaintext mode |

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ringmesh::Config;
use ringmesh_benches::{handshake, pair};

fn handshakes(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    for (name, config) in [
        ("noise", Config::default()),
        ("plaintext", Config::plaintext()),
    ] {
        group.bench_function(format!("{name}/connect"), |b| {
            b.iter_batched(
                || pair(&config),
                |mut net| {
                    handshake(&mut net);
                    // Returned so that dropping it is not timed.
                    net
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("{name}/full"), |b| {
            b.iter(|| {
                let mut net = pair(black_box(&config));
                handshake(&mut net);
                net
            })
        });
    }
    group.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
