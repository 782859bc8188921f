//! One signature check shared by every node of a simulation, remembering
//! its answers: a broadcast's signature is verified once, not by each of
//! the 10,000 nodes it reaches.
//!
//! Sound because [`SignatureCheck::verify`] is a pure function of its
//! three inputs: the memo is keyed by a BLAKE3 hash of all three (the key,
//! the signature and the whole message), so a forged copy (another message
//! or signature under the same key) is a different entry and is verified
//! on its own. The memo is bounded: when full it starts again empty, which
//! changes how often the real check runs, never an answer.

use std::sync::Mutex;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use ringmesh::{Ed25519Check, PublicKey, SignatureCheck};

/// Answers kept before the memo starts again (about 40 MiB).
const MEMO_CAPACITY: usize = 1 << 20;

/// A memoising [`SignatureCheck`] (module docs).
#[derive(Debug, Default)]
pub(crate) struct MemoCheck {
    memo: Mutex<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    /// Keyed by a BLAKE3 digest: a fixed hasher is as good as any.
    answers: HashMap<[u8; 32], bool, FixedState>,
    /// Checks answered from the memo, and by a real verification.
    hits: u64,
    misses: u64,
}

impl MemoCheck {
    /// (answered from the memo, verified).
    #[allow(dead_code)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        (memo.hits, memo.misses)
    }
}

impl SignatureCheck for MemoCheck {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&key.to_bytes());
        hasher.update(signature);
        hasher.update(message);
        let digest = *hasher.finalize().as_bytes();
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&answer) = memo.answers.get(&digest) {
            memo.hits += 1;
            return answer;
        }
        memo.misses += 1;
        let answer = Ed25519Check.verify(key, message, signature);
        if memo.answers.len() >= MEMO_CAPACITY {
            memo.answers.clear();
        }
        memo.answers.insert(digest, answer);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmesh::Identity;

    #[test]
    fn memo_answers_as_the_real_check_does_for_genuine_and_forged_triples() {
        let check = MemoCheck::default();
        let alice = Identity::from_secret_bytes([1; 32]);
        let mallory = Identity::from_secret_bytes([2; 32]);
        let sig = alice.sign(b"hello");
        for _ in 0..2 {
            assert!(check.verify(&alice.public_key(), b"hello", &sig));
            assert!(!check.verify(&alice.public_key(), b"hellO", &sig));
            assert!(!check.verify(&mallory.public_key(), b"hello", &sig));
            let forged = mallory.sign(b"hello");
            assert!(!check.verify(&alice.public_key(), b"hello", &forged));
        }
        assert_eq!(check.counts(), (4, 4));
    }
}
