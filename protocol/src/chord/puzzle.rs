//! The static id puzzle of S/Kademlia (Baumgart and Mies, 2007), as an
//! option of the ring (spec/chord.md §6.5, `chord.id_puzzle_bits`).
//!
//! A node's id is the hash of its public key (`NodeId::from_public_key`),
//! and the handshake proves the key, so placing a node at a chosen point of
//! the ring means grinding keys. The puzzle makes each try of that grind
//! cost 2^k: an id takes part in the ring only if the first k bits of
//! BLAKE3(`ID_PUZZLE_CONTEXT` ‖ id) are zero. This is S/Kademlia's
//! H(H(public key)) with the id as the inner hash: an id checks without its
//! key, so a node can refuse ids it only reads in another node's list, and
//! an id that does not come from a key (ground directly, for 2^k cheap
//! hashes) can never complete a handshake, so it never becomes a live
//! pointer.

use crate::{Identity, NodeId};

/// Domain separation of the puzzle's hash (spec/chord.md §6.5).
pub const ID_PUZZLE_CONTEXT: &[u8] = b"ringmesh id puzzle v1:";

/// The largest `chord.id_puzzle_bits` a config may ask for: 2^24 key
/// generations (minutes of one core) to make an identity.
pub const MAX_ID_PUZZLE_BITS: u8 = 24;

/// Whether `id` meets the static id puzzle of `bits` bits: the first
/// `bits` bits of BLAKE3([`ID_PUZZLE_CONTEXT`] ‖ the id's 16 bytes) are
/// zero. Every id meets a puzzle of 0 bits; none meets one over 256.
pub fn meets_id_puzzle(id: NodeId, bits: u8) -> bool {
    if bits == 0 {
        return true;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(ID_PUZZLE_CONTEXT);
    hasher.update(&id.to_bytes());
    let hash = hasher.finalize();
    let hash = hash.as_bytes();
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    hash[..whole].iter().all(|&b| b == 0) && (rest == 0 || hash[whole] >> (8 - rest) == 0)
}

/// Grinds an identity whose id meets a puzzle of `bits` bits and
/// `accept`, from `seed`: tries the secrets BLAKE3(`seed` ‖ i) for
/// i = 0, 1, … in turn, at most `max_tries` of them. The same seed gives
/// the same identity. Expect 2^`bits` tries for the puzzle alone (times
/// 1/p when `accept` holds for a fraction p of ids). Key generation is
/// outside the state machine: a program calls this with a seed from the
/// OS random generator, a test with a fixed one.
pub fn grind_identity(
    bits: u8,
    seed: &[u8; 32],
    max_tries: u64,
    mut accept: impl FnMut(NodeId) -> bool,
) -> Option<Identity> {
    (0..max_tries).find_map(|i| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(seed);
        hasher.update(&i.to_le_bytes());
        let identity = Identity::from_secret_bytes(*hasher.finalize().as_bytes());
        let id = identity.node_id();
        (meets_id_puzzle(id, bits) && accept(id)).then_some(identity)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bits_accepts_every_id_and_more_bits_accept_fewer() {
        let ids: Vec<NodeId> = (0..4096u128)
            .map(|i| NodeId::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .collect();
        assert!(ids.iter().all(|&id| meets_id_puzzle(id, 0)));
        let count = |bits| ids.iter().filter(|&&id| meets_id_puzzle(id, bits)).count();
        // 4096 / 2^4 = 256 expected; 4096 / 2^8 = 16.
        assert!((180..340).contains(&count(4)), "{}", count(4));
        assert!((4..40).contains(&count(8)), "{}", count(8));
        // Every id that meets 8 bits meets 4.
        assert!(
            ids.iter()
                .filter(|&&id| meets_id_puzzle(id, 8))
                .all(|&id| meets_id_puzzle(id, 4))
        );
        assert_eq!(count(255), 0);
    }

    #[test]
    fn ground_identities_meet_the_puzzle_and_the_condition() {
        let seed = [7u8; 32];
        let id = grind_identity(8, &seed, 1 << 16, |id| id.as_u128() >> 127 == 1)
            .expect("found")
            .node_id();
        assert!(meets_id_puzzle(id, 8) && id.as_u128() >> 127 == 1);
        // Deterministic.
        let again = grind_identity(8, &seed, 1 << 16, |id| id.as_u128() >> 127 == 1);
        assert_eq!(again.map(|i| i.node_id()), Some(id));
        assert!(grind_identity(8, &seed, 0, |_| true).is_none());
    }
}
