//! Seeded randomness, one independent stream per component.
//!
//! A node gets one `u64` seed. Each component draws from its own ChaCha8
//! stream whose key is BLAKE3 `derive_key("ringmesh rng v1 <component>",
//! seed)`, so adding a draw in one component never shifts another's choices.
//! The session stream, which seeds Noise ephemeral keys, also mixes in the
//! identity secret: ephemerals stay unpredictable to anyone who does not hold
//! the identity key, even if the seed is known (the simulator publishes its
//! seeds). Adapters still draw a fresh seed from the OS at every start so that
//! a restarted node never repeats its ephemerals.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The components that draw randomness. Each has its own stream.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// Hash-table seeds.
    Tables,
    /// Noise ephemeral keys (mixed with the identity secret).
    Session,
    /// Dial choices and backoff jitter.
    Peers,
    /// Broadcast sequence numbers.
    Mesh,
    /// Chord timer jitter and start-peer order.
    Chord,
    /// The run nonce announced in `Hello` (one draw at start).
    Run,
    /// HyParView's walks, evictions and samples.
    Membership,
    /// Blob fetches' group selection.
    Blobs,
}

impl Stream {
    fn context(self) -> &'static str {
        match self {
            Stream::Tables => "ringmesh rng v1 tables",
            Stream::Session => "ringmesh rng v1 session",
            Stream::Peers => "ringmesh rng v1 peers",
            Stream::Mesh => "ringmesh rng v1 mesh",
            Stream::Chord => "ringmesh rng v1 chord",
            Stream::Run => "ringmesh rng v1 run",
            Stream::Membership => "ringmesh rng v1 membership",
            Stream::Blobs => "ringmesh rng v1 blobs",
        }
    }
}

/// A deterministic random stream: ChaCha8 kept as its key and word
/// position (40 bytes) rather than as a live generator with its 256-byte
/// block buffer (320 bytes). A node keeps several streams and draws from
/// them rarely (a dial, a jitter, a sample), and a simulation holds a
/// million nodes; each call regenerates the block it draws from (a few
/// hundred nanoseconds) and draws exactly what the live generator would.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    key: [u8; 32],
    /// 32-bit words drawn so far.
    word_pos: u64,
}

impl Rng {
    /// The stream for `component`, keyed by the node seed and, where given,
    /// secret key material.
    pub(crate) fn derive(seed: u64, component: Stream, secret: Option<&[u8; 32]>) -> Self {
        let mut material = [0u8; 40];
        material[..8].copy_from_slice(&seed.to_le_bytes());
        if let Some(secret) = secret {
            material[8..].copy_from_slice(secret);
        }
        Rng {
            key: blake3::derive_key(component.context(), &material),
            word_pos: 0,
        }
    }

    /// Runs `draw` on the live generator at this stream's position, then
    /// keeps the position it reached.
    fn with<T>(&mut self, draw: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_word_pos(u128::from(self.word_pos));
        let out = draw(&mut rng);
        // 2^64 words are 2^66 bytes: never reached.
        self.word_pos = rng.get_word_pos() as u64;
        out
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.with(|rng| rng.next_u64())
    }

    /// A uniform value in `0..n` (`n` > 0), without modulo bias worth
    /// caring about for `n` far below 2^64.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.with(|rng| below(rng, n))
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        if items.len() < 2 {
            return;
        }
        self.with(|rng| {
            for i in (1..items.len()).rev() {
                let j = below(rng, i as u64 + 1) as usize;
                items.swap(i, j);
            }
        });
    }

    /// Moves the stream on exactly as [`Rng::shuffle`] of `len` items
    /// would (one `u64`, two words, per item after the first), for a
    /// caller that needs the draws spent but not the order.
    pub(crate) fn skip_shuffle(&mut self, len: usize) {
        if len >= 2 {
            self.word_pos += 2 * (len as u64 - 1);
        }
    }

    pub(crate) fn fill(&mut self, dest: &mut [u8]) {
        self.with(|rng| rng.fill_bytes(dest));
    }
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_shuffle_leaves_the_stream_where_shuffle_does() {
        for len in [0, 1, 2, 3, 8, 31, 32, 33, 100] {
            let (mut a, mut b) = (
                Rng::derive(9, Stream::Tables, None),
                Rng::derive(9, Stream::Tables, None),
            );
            // Start mid-block and at an odd word, as a stream in use may.
            let _ = (a.next_u64(), b.next_u64());
            let mut byte = [0u8; 4];
            a.fill(&mut byte);
            b.fill(&mut byte);
            let mut items: Vec<usize> = (0..len).collect();
            a.shuffle(&mut items);
            b.skip_shuffle(len);
            assert_eq!(a.next_u64(), b.next_u64(), "len {len}");
        }
    }

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a = Rng::derive(1, Stream::Tables, None).next_u64();
        assert_eq!(a, Rng::derive(1, Stream::Tables, None).next_u64());
        assert_ne!(a, Rng::derive(2, Stream::Tables, None).next_u64());
        assert_ne!(a, Rng::derive(1, Stream::Session, None).next_u64());
        assert_ne!(
            Rng::derive(1, Stream::Session, None).next_u64(),
            Rng::derive(1, Stream::Session, Some(&[1; 32])).next_u64()
        );
    }

    proptest::proptest! {
        /// The stream kept as key and position draws exactly what one live
        /// generator would, whatever the mix of draws (word-aligned or not,
        /// across block boundaries).
        #[test]
        fn the_compact_stream_draws_what_a_live_generator_draws(
            ops in proptest::collection::vec((0u8..4, 1u64..100), 1..200)
        ) {
            let mut compact = Rng::derive(7, Stream::Peers, None);
            let mut live = ChaCha8Rng::from_seed(compact.key);
            for (op, n) in ops {
                match op {
                    0 => proptest::prop_assert_eq!(compact.next_u64(), live.next_u64()),
                    1 => proptest::prop_assert_eq!(compact.below(n), below(&mut live, n)),
                    2 => {
                        let (mut a, mut b) = (vec![0u8; n as usize], vec![0u8; n as usize]);
                        compact.fill(&mut a);
                        live.fill_bytes(&mut b);
                        proptest::prop_assert_eq!(a, b);
                    }
                    _ => {
                        let mut a: Vec<u64> = (0..n).collect();
                        let mut b = a.clone();
                        compact.shuffle(&mut a);
                        for i in (1..b.len()).rev() {
                            let j = below(&mut live, i as u64 + 1) as usize;
                            b.swap(i, j);
                        }
                        proptest::prop_assert_eq!(a, b);
                    }
                }
            }
        }
    }
}
