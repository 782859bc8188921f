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
        }
    }
}

/// A deterministic random stream.
#[derive(Clone, Debug)]
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream for `component`, keyed by the node seed and, where given,
    /// secret key material.
    pub(crate) fn derive(seed: u64, component: Stream, secret: Option<&[u8; 32]>) -> Self {
        let mut material = [0u8; 40];
        material[..8].copy_from_slice(&seed.to_le_bytes());
        if let Some(secret) = secret {
            material[8..].copy_from_slice(secret);
        }
        let key = blake3::derive_key(component.context(), &material);
        Rng(ChaCha8Rng::from_seed(key))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform value in `0..n` (`n` > 0), without modulo bias worth
    /// caring about for `n` far below 2^64.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    pub(crate) fn fill(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
