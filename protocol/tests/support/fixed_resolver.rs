//! A snow resolver for spec-only Noise peers with fixed ephemeral keys,
//! shared by the vector generator (`examples/gen_vectors.rs`) and the vector
//! tests (`tests/vectors.rs`).

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// snow's default primitives with an RNG that refuses every draw: every
/// ephemeral key is fixed, so a draw would be a bug, and it fails the
/// handshake loudly.
pub(crate) struct FixedResolver;

struct NoRandom;

impl Random for NoRandom {
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), snow::Error> {
        Err(snow::Error::Rng)
    }
}

impl CryptoResolver for FixedResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(NoRandom))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}
