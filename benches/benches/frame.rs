//! Framing, compression and the node send path. See `benches/README.md`.
//!
//! | bench | what is timed |
//! |---|---|
//! | `frame/encode/{64B,64KiB}` | `put_frame_header` + `encode_body` of a `Direct` into a fresh `BytesMut`, no compression |
//! | `frame/decode/{64B,64KiB}` | `FrameDecoder::next_frame` + `decode_body` on one whole frame (zero-copy) |
//! | `frame/decode_mss/64KiB` | the same frame fed in 1460-byte reads, so the decoder reassembles it |
//! | `frame/encode_lz4/64KiB`, `frame/decode_lz4/64KiB` | the same with LZ4 on a compressible payload |
//! | `frame/noise_send/{64B,64KiB}` | `MessagingCommand::Send` on a Noise session until the receiver emitted `Event::Messaging(MessagingEvent::Direct)` |
//! | `frame/noise_send_nolz4/64KiB` | the same with `compression: false` on both nodes |
//! | `frame/plain_send/{64B,64KiB}` | the same path in plaintext mode (framework cost without crypto) |
//!
//! Throughput is counted in payload bytes.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringmesh::wire::DEFAULT_MAX_FRAME_LEN;
use ringmesh::{Config, SessionConfig};
use ringmesh_benches::{
    LARGE, SMALL, compressible, connected_pair, decode_stream, delivered, direct, encode_frame,
    incompressible, send_and_deliver,
};

/// Bench-name suffix for a payload size.
fn size_name(len: usize) -> &'static str {
    match len {
        SMALL => "64B",
        LARGE => "64KiB",
        _ => unreachable!("only two sizes are benched"),
    }
}

/// A typical TCP segment payload on an Ethernet path.
const MSS: usize = 1460;

/// Default LZ4 threshold of `Config` (messages below it stay plain).
const LZ4_THRESHOLD: usize = 512;

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for len in [SMALL, LARGE] {
        let message = direct(incompressible(len));
        let (frame, compressed) = encode_frame(&message, None);
        assert!(!compressed);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("encode/{}", size_name(len)), |b| {
            b.iter(|| encode_frame(black_box(&message), None))
        });
        group.bench_function(format!("decode/{}", size_name(len)), |b| {
            b.iter(|| decode_stream(black_box(&frame), None, DEFAULT_MAX_FRAME_LEN))
        });
        if len == LARGE {
            group.bench_function("decode_mss/64KiB", |b| {
                b.iter(|| decode_stream(black_box(&frame), Some(MSS), DEFAULT_MAX_FRAME_LEN))
            });
        }
    }

    let message = direct(compressible(LARGE));
    let (frame, compressed) = encode_frame(&message, Some(LZ4_THRESHOLD));
    assert!(compressed, "the compressible payload must compress");
    eprintln!(
        "frame: the compressible {LARGE}-byte payload frames to {} bytes with LZ4",
        frame.len()
    );
    group.throughput(Throughput::Bytes(LARGE as u64));
    group.bench_function("encode_lz4/64KiB", |b| {
        b.iter(|| encode_frame(black_box(&message), Some(LZ4_THRESHOLD)))
    });
    group.bench_function("decode_lz4/64KiB", |b| {
        b.iter(|| decode_stream(black_box(&frame), None, DEFAULT_MAX_FRAME_LEN))
    });
    group.finish();
}

/// Times `iters` sends of `payload` from node 0 to node 1, each followed by
/// running the network until idle.
///
/// `testing::Network` keeps every event it sees, and a received payload is a
/// slice of the frame buffer it came in, so every delivered frame stays
/// allocated until the network is dropped. Left alone, that makes each send
/// fault in fresh pages, which a receiving application that drops payloads
/// after use never pays. So a fresh connected pair is built (untimed) once
/// about 1 MiB of payload has been delivered.
fn time_sends(config: &Config, payload: &Bytes, iters: u64) -> StdDuration {
    let per_pair = ((1 << 20) / payload.len()).clamp(16, 4096) as u64;
    let mut total = StdDuration::ZERO;
    let mut done = 0;
    while done < iters {
        let mut net = connected_pair(config);
        let batch = (iters - done).min(per_pair);
        let start = StdInstant::now();
        for _ in 0..batch {
            black_box(send_and_deliver(&mut net, payload));
        }
        total += start.elapsed();
        assert_eq!(delivered(&net) as u64, batch, "every send was delivered");
        done += batch;
    }
    total
}

fn node_send(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let no_lz4 = Config {
        session: SessionConfig {
            compression: false,
            ..Config::default().session
        },
        ..Config::default()
    };
    let cases = [
        ("noise_send", Config::default(), SMALL),
        ("noise_send", Config::default(), LARGE),
        ("noise_send_nolz4", no_lz4, LARGE),
        ("plain_send", Config::plaintext(), SMALL),
        ("plain_send", Config::plaintext(), LARGE),
    ];
    for (name, config, len) in cases {
        let payload = incompressible(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("{name}/{}", size_name(len)), |b| {
            b.iter_custom(|iters| time_sends(&config, &payload, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, codec, node_send);
criterion_main!(benches);
