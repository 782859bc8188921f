//! The identifier space: Zave's `between`, the half-open interval of
//! spec/chord.md §1, who owns a key, and where a table key sits.

use ringmesh::NodeId;

/// Zave's `between`: `x` lies strictly inside the clockwise interval from
/// `a` to `b`. When `a == b` the interval is the whole ring but `a`.
pub fn between(a: u128, x: u128, b: u128) -> bool {
    if a < b {
        a < x && x < b
    } else {
        a < x || x < b
    }
}

/// `x ∈ (a, b]` on the ring (spec/chord.md §1); `(a, a]` is every id.
pub fn in_half_open(a: u128, x: u128, b: u128) -> bool {
    x == b || between(a, x, b)
}

/// The live node responsible for `key`: the first live id at or after
/// `key`, wrapping past the top of the identifier space.
///
/// # Panics
///
/// If `live_ids_sorted` is empty: no node is responsible then.
pub fn true_successor(live_ids_sorted: &[u128], key: u128) -> u128 {
    let at = live_ids_sorted.partition_point(|&id| id < key);
    match live_ids_sorted.get(at).or(live_ids_sorted.first()) {
        Some(&id) => id,
        None => panic!("true_successor: no live ids"),
    }
}

/// Where the open table key `key` sits on the ring (spec/chord.md §10.1):
/// the first 16 bytes of BLAKE3(0x00 ‖ `key`), read big-endian, the same
/// derivation as [`NodeId`] over the mode byte and the name.
pub fn key_position(key: &[u8]) -> NodeId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0]);
    hasher.update(key);
    let hash = hasher.finalize();
    let mut first = [0u8; NodeId::LEN];
    first.copy_from_slice(&hash.as_bytes()[..NodeId::LEN]);
    NodeId::from_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_successor_wraps() {
        let ids = [10, 20, 30];
        assert_eq!(true_successor(&ids, 0), 10);
        assert_eq!(true_successor(&ids, 10), 10);
        assert_eq!(true_successor(&ids, 11), 20);
        assert_eq!(true_successor(&ids, 30), 30);
        assert_eq!(true_successor(&ids, 31), 10);
        assert_eq!(true_successor(&ids, u128::MAX), 10);
        assert_eq!(true_successor(&[5], 6), 5);
    }

    #[test]
    fn key_position_matches_node_id_derivation() {
        let mut key = [9u8; 32];
        key[0] = 0;
        assert_eq!(key_position(&key[1..]), NodeId::from_public_key(&key));
        let hash = blake3::hash(b"\x00hello");
        assert_eq!(
            &key_position(b"hello").to_bytes()[..],
            &hash.as_bytes()[..16]
        );
    }

    #[test]
    fn between_follows_zave() {
        assert!(between(10, 15, 20));
        assert!(!between(10, 10, 20) && !between(10, 20, 20));
        assert!(between(20, 25, 10) && between(20, 5, 10) && !between(20, 15, 10));
        assert!(between(7, 8, 7) && between(7, 6, 7) && !between(7, 7, 7));
    }

    #[test]
    fn in_half_open_wraps() {
        assert!(in_half_open(10, 20, 20) && !in_half_open(10, 10, 20));
        assert!(in_half_open(u128::MAX - 1, 3, 5));
        assert!(in_half_open(7, 7, 7));
    }
}
