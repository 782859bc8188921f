//! Node identity: an Ed25519 key pair.
//!
//! Key *generation* happens outside the state machine (the adapters use the
//! OS RNG and store the 32 secret bytes); the protocol only ever receives a
//! finished [`Identity`]. The Noise static key (X25519) is derived from the
//! identity secret, so one 32-byte secret is all a node has to keep.

use core::fmt;
use std::sync::Arc;

use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
use ed25519_dalek::{Sha512, Signer, SigningKey, VerifyingKey};

use zeroize::Zeroizing;

use crate::NodeId;

/// Domain separation for the signature over the Noise static key.
pub(crate) const NOISE_STATIC_SIGNATURE_CONTEXT: &[u8] = b"ringmesh noise static key v1:";
/// BLAKE3 `derive_key` context for the X25519 static key.
const NOISE_STATIC_KDF_CONTEXT: &str = "ringmesh 2026 noise static key v1";

/// A node's long-term Ed25519 key pair. Its [`NodeId`] is derived from the
/// public half.
///
/// It keeps the 32 secret bytes (wiped when dropped) and the public key,
/// 64 bytes, not a `SigningKey` (224 bytes with its decompressed public
/// point): a node holds its identity for its whole life and signs rarely
/// (what it originates), so each signature expands the secret and
/// decompresses the public key again (~29,000 instructions more a
/// signature).
#[derive(Clone)]
pub struct Identity {
    secret: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl Identity {
    /// The identity whose Ed25519 secret key is `secret` (32 bytes, as stored
    /// by [`Identity::secret_bytes`]). Any 32 bytes are a valid secret.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&secret);
        let public = PublicKey(signing.verifying_key().to_bytes());
        Identity {
            secret: Zeroizing::new(secret),
            public,
        }
    }

    /// The 32 secret bytes, for persisting the identity. Keep them private.
    pub fn secret_bytes(&self) -> [u8; 32] {
        *self.secret
    }

    /// The public key peers see.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// This identity's [`NodeId`].
    pub fn node_id(&self) -> NodeId {
        self.public.node_id()
    }

    /// An Ed25519 signature over `message` with this identity's key.
    /// Every signed layout of the protocol starts with a context string of
    /// its own (`spec/`), so a signature made for one can never be
    /// replayed as another.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        // What `SigningKey::sign` does, from the kept public key: the
        // secret's expansion (one SHA-512) and the public key's
        // decompression, where a `SigningKey` rebuilt from the secret
        // would compute the public key again (a base-point
        // multiplication). The public key is the secret's own (derived
        // from it in `from_secret_bytes`): the pairing `raw_sign` needs.
        let expanded = ExpandedSecretKey::from(&*self.secret);
        match VerifyingKey::from_bytes(&self.public.0) {
            Ok(public) => raw_sign::<Sha512>(&expanded, message, &public).to_bytes(),
            // Unreachable: the key was computed from the secret.
            Err(_) => SigningKey::from_bytes(&self.secret)
                .sign(message)
                .to_bytes(),
        }
    }

    /// The X25519 private key for Noise, derived from the identity secret.
    pub(crate) fn noise_static_secret(&self) -> [u8; 32] {
        blake3::derive_key(NOISE_STATIC_KDF_CONTEXT, &self.secret[..])
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Identity")
            .field("node_id", &self.node_id())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key as sent in `Hello`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub(crate) [u8; 32]);

impl PublicKey {
    /// The key from its 32 bytes. Whether it is a valid curve point is only
    /// checked when a signature is verified.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        PublicKey(bytes)
    }

    /// The 32 bytes.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The [`NodeId`] this key stands for.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(&self.0)
    }

    /// Strict Ed25519 verification (rejects small-order keys and
    /// malleable signatures).
    pub fn verify_strict(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.verify(message, signature).is_ok()
    }

    /// [`verify_strict`](Self::verify_strict), saying which half failed.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), BadKeyOrSig> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| BadKeyOrSig::Key)?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig)
            .map_err(|_| BadKeyOrSig::Signature)
    }
}

/// How a node checks the signatures on what peers send it (signed
/// broadcasts, table entries): a pure function of its three inputs.
///
/// The default, [`Ed25519Check`], verifies every signature. A driver that
/// runs many nodes in one process may share one implementation that
/// remembers its answers (the simulator does: 10,000 nodes verify the same
/// broadcast once between them), which is sound because the answer depends
/// on nothing but the inputs. Set it with
/// [`Node::set_signature_check`](crate::Node::set_signature_check).
pub trait SignatureCheck: Send + Sync {
    /// Whether `signature` is `key`'s strict Ed25519 signature of `message`.
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool;
}

/// [`SignatureCheck`] by strict Ed25519 verification, every time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ed25519Check;

impl SignatureCheck for Ed25519Check {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        key.verify_strict(message, signature)
    }
}

/// The check a node starts with.
pub(crate) fn default_check() -> Arc<dyn SignatureCheck> {
    Arc::new(Ed25519Check)
}

/// Which half of a signed claim failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadKeyOrSig {
    Key,
    Signature,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_only_for_the_signed_message_and_key() {
        let a = Identity::from_secret_bytes([1; 32]);
        let b = Identity::from_secret_bytes([2; 32]);
        let sig = a.sign(b"hello");
        assert_eq!(a.public_key().verify(b"hello", &sig), Ok(()));
        assert_eq!(
            a.public_key().verify(b"hellO", &sig),
            Err(BadKeyOrSig::Signature)
        );
        assert_eq!(
            b.public_key().verify(b"hello", &sig),
            Err(BadKeyOrSig::Signature)
        );
    }

    #[test]
    fn signatures_are_ed25519_dalek_signing_keys_own() {
        // `sign` goes through `raw_sign` with the kept public key: the
        // bytes must be exactly what a `SigningKey` of the same secret
        // signs (Ed25519 signatures are deterministic).
        for seed in [0u8, 1, 0x5a, 0xff] {
            let secret = [seed; 32];
            let ours = Identity::from_secret_bytes(secret);
            let theirs = SigningKey::from_bytes(&secret);
            for message in [&b""[..], b"hello", &[seed; 1000][..]] {
                assert_eq!(ours.sign(message), theirs.sign(message).to_bytes());
            }
            let copy = ours.clone();
            assert_eq!(copy.sign(b"x"), theirs.sign(b"x").to_bytes());
            assert_eq!(copy.secret_bytes(), secret);
        }
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let a = Identity::from_secret_bytes([0xab; 32]);
        assert!(!format!("{a:?}").contains("ab, ab"));
        assert!(!format!("{a:?}").to_lowercase().contains("abab"));
    }
}
