//! Verified streaming over BLAKE3's own hash tree (spec/blobs.md §2).
//!
//! A blob is cut into chunk groups of [`GROUP_LEN`] bytes (16 BLAKE3 chunks,
//! as iroh-blobs does); the last group may be short, and the empty blob is
//! one empty group. Every group at a multiple of `GROUP_LEN` is a complete
//! BLAKE3 subtree, so the tree above the groups is the top of BLAKE3's own
//! tree and its root is `blake3::hash(blob)`: a blob's name needs no second
//! hash function. The tree's shape follows BLAKE3 (section 2.1 of its paper):
//! a node over `g > 1` groups has a left child over the largest power of two
//! of groups below `g`, and a right child over the rest.
//!
//! A group travels with its **proof**: the chaining values of the siblings on
//! its path, root first. The receiver hashes the group at its offset (the
//! chunk counter binds the data to its place), merges the siblings up and
//! compares with the root, so a lie costs the liar at most one group. The
//! **outboard** is the tree's parent nodes without the data (64 bytes per
//! parent, pre-order, as in Bao): computed once per blob, it gives any held
//! group's proof without reading other data; a fetcher fills it in as groups
//! arrive, which is what lets it serve the groups it holds.
//!
//! The blob's length is not bound by a proof until the last group verifies:
//! a fetch learns the length from its first answer and takes it as true only
//! when that answer's last group verifies (see `FetchState`).
//!
//! Only `blake3::hazmat` is used (chaining values, `set_input_offset`,
//! `merge_subtrees_*`): the crate that defines the tree builds its nodes, so
//! this file only walks the shape.

use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use smallvec::SmallVec;

use crate::wire::{BlobHash, GROUP_LEN, MAX_BLOB_LEN};

/// A chaining value: a node's 32-byte BLAKE3 hash below the root.
pub type ChainingValue = [u8; 32];

/// The sibling chaining values on a group's path, root first.
pub type Proof = SmallVec<[ChainingValue; 24]>;

/// Why a group or an outboard was refused. Nothing is changed by a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The length is over [`MAX_BLOB_LEN`].
    #[error("blob length over the limit")]
    TooLong,
    /// The group index is past the blob's last group.
    #[error("group index out of range")]
    GroupOutOfRange,
    /// The group's data is not the length its place in the blob implies.
    #[error("group data has the wrong length")]
    WrongGroupLen,
    /// The proof does not have one sibling per level of the group's path.
    #[error("proof has the wrong depth")]
    WrongProofDepth,
    /// Data and proof do not hash to the blob's root: the sender lied or
    /// the bytes were damaged.
    #[error("group does not hash to the root")]
    HashMismatch,
    /// An outboard's bytes are not the size a blob of its length needs.
    #[error("outboard has the wrong size")]
    WrongOutboardLen,
}

/// Groups in a blob of `len` bytes (at least one: the empty blob is one
/// empty group).
pub fn group_count(len: u64) -> u64 {
    len.div_ceil(GROUP_LEN).max(1)
}

/// The length of group `group` in a blob of `len` bytes (the caller checks
/// the index).
pub fn group_len(len: u64, group: u64) -> u64 {
    len.saturating_sub(group * GROUP_LEN).min(GROUP_LEN)
}

/// Groups under a node's left child when the node spans `groups > 1`: the
/// largest power of two below `groups` (BLAKE3's `left_subtree_len` counted
/// in groups, which holds because every group but the last is full).
fn left_groups(groups: u64) -> u64 {
    debug_assert!(groups > 1);
    1 << (63 - (groups - 1).leading_zeros())
}

/// One step of a group's path from the root: the parent's pre-order index
/// in the outboard and whether the group lies under its left child.
#[derive(Clone, Copy)]
struct Step {
    parent: usize,
    left: bool,
}

/// The path from the root down to `group` in a tree of `groups` leaves.
fn path(groups: u64, group: u64) -> SmallVec<[Step; 24]> {
    let mut steps = SmallVec::new();
    let (mut start, mut span, mut parent) = (0u64, groups, 0usize);
    while span > 1 {
        let left = left_groups(span);
        if group < start + left {
            steps.push(Step { parent, left: true });
            span = left;
            parent += 1;
        } else {
            steps.push(Step {
                parent,
                left: false,
            });
            // A subtree over g groups has g - 1 parents, all before its
            // right sibling in pre-order.
            parent += left as usize;
            start += left;
            span -= left;
        }
    }
    steps
}

/// The chaining value of one group at its place in the blob.
fn group_cv(group: u64, data: &[u8]) -> ChainingValue {
    blake3::Hasher::new()
        .set_input_offset(group * GROUP_LEN)
        .update(data)
        .finalize_non_root()
}

fn merge(left: &ChainingValue, right: &ChainingValue, root: bool) -> ChainingValue {
    if root {
        *merge_subtrees_root(left, right, Mode::Hash).as_bytes()
    } else {
        merge_subtrees_non_root(left, right, Mode::Hash)
    }
}

/// Checks one group against a blob's root: `data` must be group `group` of
/// a blob of `len` bytes whose hash is `root`, and `proof` its siblings,
/// root first. On success returns the parent nodes on its path (root first,
/// each the left and right chaining values), which an outboard being filled
/// in keeps.
pub fn verify_group(
    root: &BlobHash,
    len: u64,
    group: u64,
    data: &[u8],
    proof: &[ChainingValue],
) -> Result<SmallVec<[[u8; 64]; 24]>, VerifyError> {
    let steps = checked_path(len, group, data, proof)?;
    if steps.is_empty() {
        // One group is the whole tree: its hash is the root, with the root
        // flag BLAKE3 sets on it.
        return if BlobHash::of(data) == *root {
            Ok(SmallVec::new())
        } else {
            Err(VerifyError::HashMismatch)
        };
    }
    let mut pairs: SmallVec<[[u8; 64]; 24]> = SmallVec::from_elem([0; 64], steps.len());
    let mut cv = group_cv(group, data);
    for (level, (step, sibling)) in steps.iter().zip(proof).enumerate().rev() {
        let (left, right) = if step.left {
            (&cv, sibling)
        } else {
            (sibling, &cv)
        };
        pairs[level][..32].copy_from_slice(left);
        pairs[level][32..].copy_from_slice(right);
        cv = merge(left, right, level == 0);
    }
    if cv == root.0 {
        Ok(pairs)
    } else {
        Err(VerifyError::HashMismatch)
    }
}

/// The checks of the verification rule that need no hashing (its steps 1
/// to 3, in that order); on success, the group's path from the root (empty
/// for a one-group blob).
fn checked_path(
    len: u64,
    group: u64,
    data: &[u8],
    proof: &[ChainingValue],
) -> Result<SmallVec<[Step; 24]>, VerifyError> {
    if len > MAX_BLOB_LEN {
        return Err(VerifyError::TooLong);
    }
    let groups = group_count(len);
    if group >= groups {
        return Err(VerifyError::GroupOutOfRange);
    }
    if data.len() as u64 != group_len(len, group) {
        return Err(VerifyError::WrongGroupLen);
    }
    let steps = path(groups, group);
    if proof.len() != steps.len() {
        return Err(VerifyError::WrongProofDepth);
    }
    Ok(steps)
}

/// A blob's hash tree without its data: the parent nodes in pre-order, 64
/// bytes each (left and right chaining values), `groups - 1` of them.
///
/// A complete outboard ([`Outboard::compute`]) gives the proof of every
/// group; one being filled in ([`Outboard::empty`] then
/// [`Outboard::insert_group`]) gives the proof of every group inserted.
#[derive(Clone, PartialEq, Eq)]
pub struct Outboard {
    root: BlobHash,
    len: u64,
    parents: Vec<[u8; 64]>,
}

impl std::fmt::Debug for Outboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outboard")
            .field("root", &self.root)
            .field("len", &self.len)
            .field("parents", &self.parents.len())
            .finish()
    }
}

impl Outboard {
    /// Hashes `data` once and keeps every parent node: `root()` is then
    /// `blake3::hash(data)`.
    ///
    /// # Panics
    /// If `data` is longer than [`MAX_BLOB_LEN`] (no memory holds that).
    pub fn compute(data: &[u8]) -> Outboard {
        let len = data.len() as u64;
        assert!(len <= MAX_BLOB_LEN, "blob over MAX_BLOB_LEN");
        let groups = group_count(len);
        let mut parents = vec![[0u8; 64]; (groups - 1) as usize];
        let root = if groups == 1 {
            BlobHash::of(data)
        } else {
            let leaf = |group: u64| {
                let from = (group * GROUP_LEN) as usize;
                let to = (from + GROUP_LEN as usize).min(data.len());
                group_cv(group, &data[from..to])
            };
            BlobHash(subtree(&leaf, 0, groups, 0, &mut parents, true))
        };
        Outboard { root, len, parents }
    }

    /// An outboard for a blob known only by its root and length, to be filled
    /// in by [`Outboard::insert_group`] as verified groups arrive.
    pub fn empty(root: BlobHash, len: u64) -> Result<Outboard, VerifyError> {
        if len > MAX_BLOB_LEN {
            return Err(VerifyError::TooLong);
        }
        let parents = vec![[0u8; 64]; (group_count(len) - 1) as usize];
        Ok(Outboard { root, len, parents })
    }

    /// Rebuilds an outboard from [`Outboard::as_bytes`] (for instance read
    /// back from disk, so a file is not hashed again). The bytes are not
    /// checked against the root here; [`Outboard::check`] does that.
    pub fn from_bytes(root: BlobHash, len: u64, bytes: &[u8]) -> Result<Outboard, VerifyError> {
        if len > MAX_BLOB_LEN {
            return Err(VerifyError::TooLong);
        }
        let parents_len = (group_count(len) - 1) as usize;
        if bytes.len() != parents_len * 64 {
            return Err(VerifyError::WrongOutboardLen);
        }
        let parents = bytes
            .chunks_exact(64)
            .map(|pair| {
                let mut node = [0u8; 64];
                node.copy_from_slice(pair);
                node
            })
            .collect();
        Ok(Outboard { root, len, parents })
    }

    /// The parent nodes, pre-order, 64 bytes each.
    pub fn as_bytes(&self) -> Vec<u8> {
        self.parents.concat()
    }

    /// The blob's name.
    pub fn root(&self) -> BlobHash {
        self.root
    }

    /// The blob's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Groups in the blob.
    pub fn groups(&self) -> u64 {
        group_count(self.len)
    }

    /// The proof of `group`: its siblings, root first. Meaningful for a
    /// complete outboard, or for a group already inserted.
    pub fn proof(&self, group: u64) -> Option<Proof> {
        if group >= self.groups() {
            return None;
        }
        Some(
            path(self.groups(), group)
                .iter()
                .map(|step| {
                    let node = &self.parents[step.parent];
                    let half = if step.left { &node[32..] } else { &node[..32] };
                    let mut cv = [0u8; 32];
                    cv.copy_from_slice(half);
                    cv
                })
                .collect(),
        )
    }

    /// Verifies `data` as group `group` with `proof`, and on success keeps
    /// the parents on its path, so this outboard can give the group's proof
    /// to others. A refusal changes nothing.
    ///
    /// It decides as [`verify_group`] does, with less hashing: the parents
    /// this outboard already holds were verified through the root (by an
    /// earlier insert, or [`Outboard::compute`], or [`Outboard::check`] on
    /// bytes read back), so the merges stop at the first parent on the path
    /// it holds. There the group is accepted if and only if the chaining
    /// value reached is the one that parent holds for it and every sibling
    /// of the proof from there up is the one held; any other proof or data
    /// would merge to another root (BLAKE3's collision resistance). A
    /// parent is held once it is not all zeros (64 zero bytes are no
    /// parent's value but by a collision). An outboard made by
    /// [`Outboard::from_bytes`] and not checked gives no such assurance.
    pub fn insert_group(
        &mut self,
        group: u64,
        data: &[u8],
        proof: &[ChainingValue],
    ) -> Result<(), VerifyError> {
        let steps = checked_path(self.len, group, data, proof)?;
        // How many levels from the root down are held, their siblings
        // being the proof's (a held parent's ancestors are all held: an
        // insert keeps the whole path).
        let mut held = 0;
        for (step, sibling) in steps.iter().zip(proof) {
            let node = &self.parents[step.parent];
            if *node == [0; 64] {
                break;
            }
            let theirs = if step.left { &node[32..] } else { &node[..32] };
            if theirs != sibling {
                return Err(VerifyError::HashMismatch);
            }
            held += 1;
        }
        if held == 0 {
            let pairs = verify_group(&self.root, self.len, group, data, proof)?;
            for (step, pair) in steps.iter().zip(pairs) {
                self.parents[step.parent] = pair;
            }
            return Ok(());
        }
        // Merge up to the lowest held parent, keeping the pairs below it.
        let mut pairs: SmallVec<[[u8; 64]; 24]> = SmallVec::new();
        let mut cv = group_cv(group, data);
        for (step, sibling) in steps[held..].iter().zip(&proof[held..]).rev() {
            let (left, right) = if step.left {
                (&cv, sibling)
            } else {
                (sibling, &cv)
            };
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(left);
            pair[32..].copy_from_slice(right);
            pairs.push(pair);
            cv = merge(left, right, false);
        }
        let lowest = steps[held - 1];
        let node = &self.parents[lowest.parent];
        let mine = if lowest.left {
            &node[..32]
        } else {
            &node[32..]
        };
        if mine != cv {
            return Err(VerifyError::HashMismatch);
        }
        // `pairs` runs from the bottom up.
        for (step, pair) in steps[held..].iter().rev().zip(pairs) {
            self.parents[step.parent] = pair;
        }
        Ok(())
    }

    /// Checks a complete outboard against its root: every parent must hash
    /// to the chaining value its own parent holds for it (the leaves are not
    /// checked: that needs the data). Use it on an outboard read from disk.
    pub fn check(&self) -> Result<(), VerifyError> {
        let groups = self.groups();
        if groups == 1 {
            return Ok(());
        }
        let top = &self.parents[0];
        let (left, right) = split(top);
        if merge(&left, &right, true) != self.root.0 {
            return Err(VerifyError::HashMismatch);
        }
        self.check_subtree(0, groups)
    }

    fn check_subtree(&self, parent: usize, span: u64) -> Result<(), VerifyError> {
        let left_span = left_groups(span);
        let (left_cv, right_cv) = split(&self.parents[parent]);
        for (child, child_span, expected) in [
            (parent + 1, left_span, left_cv),
            (parent + left_span as usize, span - left_span, right_cv),
        ] {
            if child_span > 1 {
                let (l, r) = split(&self.parents[child]);
                if merge(&l, &r, false) != expected {
                    return Err(VerifyError::HashMismatch);
                }
                self.check_subtree(child, child_span)?;
            }
        }
        Ok(())
    }
}

fn split(node: &[u8; 64]) -> (ChainingValue, ChainingValue) {
    let mut left = [0u8; 32];
    let mut right = [0u8; 32];
    left.copy_from_slice(&node[..32]);
    right.copy_from_slice(&node[32..]);
    (left, right)
}

/// Chaining value of the subtree over `span` groups from `start`, filling its
/// parents from pre-order index `parent`; `leaf` gives a group's chaining
/// value.
fn subtree(
    leaf: &dyn Fn(u64) -> ChainingValue,
    start: u64,
    span: u64,
    parent: usize,
    parents: &mut [[u8; 64]],
    root: bool,
) -> ChainingValue {
    if span == 1 {
        return leaf(start);
    }
    let left = left_groups(span);
    let left_cv = subtree(leaf, start, left, parent + 1, parents, false);
    let right_cv = subtree(
        leaf,
        start + left,
        span - left,
        parent + left as usize,
        parents,
        false,
    );
    parents[parent][..32].copy_from_slice(&left_cv);
    parents[parent][32..].copy_from_slice(&right_cv);
    merge(&left_cv, &right_cv, root)
}

/// Builds a blob's [`Outboard`] from its bytes given piece by piece (a file
/// read in pieces), holding 32 bytes per group and one group of data, never
/// the blob: what a file-backed store uses to add a file of any size.
///
/// ```
/// use ringmesh::blobs::{Outboard, OutboardBuilder};
///
/// let data = vec![3u8; 100_000];
/// let mut builder = OutboardBuilder::new();
/// for piece in data.chunks(7_000) {
///     builder.update(piece);
/// }
/// assert_eq!(builder.finish().unwrap(), Outboard::compute(&data));
/// ```
#[derive(Debug, Default)]
pub struct OutboardBuilder {
    /// The chaining values of the groups before `pending`.
    cvs: Vec<ChainingValue>,
    /// The group being read: hashed once it is known not to be the only
    /// one (a one-group blob's hash is its root, with the root flag).
    pending: Vec<u8>,
    len: u64,
}

impl OutboardBuilder {
    /// Nothing read yet.
    pub fn new() -> OutboardBuilder {
        OutboardBuilder::default()
    }

    /// Reads the next bytes of the blob.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len = self.len.saturating_add(bytes.len() as u64);
        while !bytes.is_empty() {
            if self.pending.len() == GROUP_LEN as usize {
                let group = self.cvs.len() as u64;
                self.cvs.push(group_cv(group, &self.pending));
                self.pending.clear();
            }
            let take = (GROUP_LEN as usize - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
    }

    /// The outboard of every byte read; `TooLong` past [`MAX_BLOB_LEN`].
    pub fn finish(mut self) -> Result<Outboard, VerifyError> {
        let len = self.len;
        if len > MAX_BLOB_LEN {
            return Err(VerifyError::TooLong);
        }
        if self.cvs.is_empty() {
            return Ok(Outboard {
                root: BlobHash::of(&self.pending),
                len,
                parents: Vec::new(),
            });
        }
        let last = self.cvs.len() as u64;
        self.cvs.push(group_cv(last, &self.pending));
        let groups = self.cvs.len() as u64;
        let mut parents = vec![[0u8; 64]; (groups - 1) as usize];
        let cvs = &self.cvs;
        let leaf = |group: u64| cvs[group as usize];
        let root = BlobHash(subtree(&leaf, 0, groups, 0, &mut parents, true));
        Ok(Outboard { root, len, parents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
            .collect()
    }

    fn group_of(data: &[u8], group: u64) -> &[u8] {
        let from = (group * GROUP_LEN) as usize;
        &data[from..(from + GROUP_LEN as usize).min(data.len())]
    }

    /// Lengths around the shapes that matter: empty, one byte, one group,
    /// a group and a byte, powers of two of groups and one past them.
    fn lengths() -> impl Strategy<Value = usize> {
        let g = GROUP_LEN as usize;
        prop_oneof![
            Just(0),
            1..=g + 1,
            (1usize..=9).prop_flat_map(move |k| {
                let base = (1 << k) * g / 2;
                (base - 1)..=(base + 1)
            }),
            0..=40 * g,
        ]
    }

    #[test]
    fn root_is_blake3_of_the_blob_at_every_shape() {
        let g = GROUP_LEN as usize;
        for len in [
            0,
            1,
            1024,
            g - 1,
            g,
            g + 1,
            2 * g,
            3 * g + 7,
            4 * g,
            5 * g,
            17 * g + 3,
        ] {
            let data = blob(len, 7);
            let outboard = Outboard::compute(&data);
            assert_eq!(outboard.root(), BlobHash::of(&data), "len {len}");
            assert_eq!(
                outboard.as_bytes().len(),
                (group_count(len as u64) as usize - 1) * 64
            );
            assert_eq!(outboard.check(), Ok(()));
        }
    }

    #[test]
    fn hash_round_trips_through_hex() {
        let hash = BlobHash::of(b"ringmesh");
        assert_eq!(hash.to_string().parse::<BlobHash>(), Ok(hash));
        assert_eq!(
            "00".parse::<BlobHash>(),
            Err(crate::wire::ParseBlobHashError)
        );
        assert!("zz".repeat(32).parse::<BlobHash>().is_err());
    }

    #[test]
    fn empty_blob_is_one_empty_group() {
        let outboard = Outboard::compute(b"");
        assert_eq!(outboard.groups(), 1);
        let proof = outboard.proof(0).expect("group 0");
        assert!(proof.is_empty());
        assert!(verify_group(&outboard.root(), 0, 0, b"", &proof).is_ok());
        assert_eq!(
            verify_group(&outboard.root(), 0, 0, b"x", &proof),
            Err(VerifyError::WrongGroupLen)
        );
    }

    #[test]
    fn a_stored_outboard_with_one_flipped_bit_fails_its_check() {
        let data = blob(9 * GROUP_LEN as usize + 5, 1);
        let outboard = Outboard::compute(&data);
        let mut bytes = outboard.as_bytes();
        bytes[3 * 64 + 40] ^= 1;
        let damaged = Outboard::from_bytes(outboard.root(), outboard.len(), &bytes).expect("size");
        assert_eq!(damaged.check(), Err(VerifyError::HashMismatch));
        assert_eq!(
            Outboard::from_bytes(outboard.root(), outboard.len(), &bytes[1..]),
            Err(VerifyError::WrongOutboardLen)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Built piece by piece, at any cut, the outboard is the one
        /// computed from the whole blob.
        #[test]
        fn an_outboard_built_in_pieces_equals_the_computed_one(
            len in lengths(), seed: u8, piece in 1usize..40_000,
        ) {
            let data = blob(len, seed);
            let mut builder = OutboardBuilder::new();
            for part in data.chunks(piece) {
                builder.update(part);
            }
            prop_assert_eq!(builder.finish().expect("short"), Outboard::compute(&data));
        }

        /// Any blob, any range of groups: honest groups verify, an outboard
        /// filled in from them gives the same proofs, and the bytes put
        /// together equal the original.
        #[test]
        fn honest_groups_verify_and_rebuild_the_blob(
            len in lengths(), seed: u8, from in 0u64..64, count in 1u64..64,
        ) {
            let data = blob(len, seed);
            let outboard = Outboard::compute(&data);
            let groups = outboard.groups();
            let from = from % groups;
            let to = (from + count).min(groups);
            let mut fetched = Outboard::empty(outboard.root(), len as u64).expect("len");
            let mut rebuilt = Vec::new();
            for group in from..to {
                let proof = outboard.proof(group).expect("in range");
                let piece = group_of(&data, group);
                prop_assert!(verify_group(&outboard.root(), len as u64, group, piece, &proof).is_ok());
                fetched.insert_group(group, piece, &proof).expect("honest");
                prop_assert_eq!(fetched.proof(group), Some(proof));
                rebuilt.extend_from_slice(piece);
            }
            let start = (from * GROUP_LEN) as usize;
            prop_assert_eq!(&rebuilt[..], &data[start..start + rebuilt.len()]);
            if from == 0 && to == groups {
                prop_assert_eq!(fetched, outboard);
            }
        }

        /// Any flipped bit in a group's data or its proof is refused in
        /// that group, and a refusal leaves the outboard as it was.
        #[test]
        fn a_flipped_bit_in_data_or_proof_is_refused(
            len in lengths(), seed: u8, group in 0u64..64, at: usize, bit in 0u8..8,
        ) {
            let data = blob(len, seed);
            let outboard = Outboard::compute(&data);
            let group = group % outboard.groups();
            let proof = outboard.proof(group).expect("in range");
            let piece = group_of(&data, group).to_vec();
            let mut fetched = Outboard::empty(outboard.root(), len as u64).expect("len");
            let before = fetched.clone();
            let places = piece.len() + proof.len() * 32;
            prop_assume!(places > 0);
            let at = at % places;
            let (mut bad_piece, mut bad_proof) = (piece.clone(), proof.clone());
            if at < piece.len() {
                bad_piece[at] ^= 1 << bit;
            } else {
                let at = at - piece.len();
                bad_proof[at / 32][at % 32] ^= 1 << bit;
            }
            prop_assert_eq!(
                fetched.insert_group(group, &bad_piece, &bad_proof),
                Err(VerifyError::HashMismatch)
            );
            prop_assert_eq!(&fetched, &before);
            // A group claimed at another place does not verify either.
            if outboard.groups() > 1 {
                let other = (group + 1) % outboard.groups();
                let result = verify_group(&outboard.root(), len as u64, other, &piece, &proof);
                prop_assert!(result.is_err());
            }
        }

        /// An outboard partly filled in decides every group, honest or
        /// with a flipped bit in data or proof, as `verify_group` does
        /// (though it hashes less), keeps what `verify_group` gives on
        /// success and changes nothing on a refusal.
        #[test]
        fn a_partly_filled_outboard_decides_as_verify_group_does(
            len in lengths(), seed: u8, held in proptest::collection::vec(0u64..64, 0..8),
            group in 0u64..64, flip in proptest::option::of((any::<usize>(), 0u8..8)),
        ) {
            let data = blob(len, seed);
            let outboard = Outboard::compute(&data);
            let groups = outboard.groups();
            let mut fetched = Outboard::empty(outboard.root(), len as u64).expect("len");
            for g in held {
                let g = g % groups;
                let proof = outboard.proof(g).expect("in range");
                fetched.insert_group(g, group_of(&data, g), &proof).expect("honest");
            }
            let group = group % groups;
            let (mut piece, mut proof) =
                (group_of(&data, group).to_vec(), outboard.proof(group).expect("in range"));
            let places = piece.len() + proof.len() * 32;
            if let Some((at, bit)) = flip.filter(|_| places > 0) {
                let at = at % places;
                if at < piece.len() {
                    piece[at] ^= 1 << bit;
                } else {
                    let at = at - piece.len();
                    proof[at / 32][at % 32] ^= 1 << bit;
                }
            }
            let reference = verify_group(&outboard.root(), len as u64, group, &piece, &proof);
            let before = fetched.clone();
            let result = fetched.insert_group(group, &piece, &proof);
            prop_assert_eq!(result, reference.as_ref().map(|_| ()).map_err(|e| *e));
            match reference {
                Ok(pairs) => {
                    for (step, pair) in path(groups, group).iter().zip(pairs) {
                        prop_assert_eq!(fetched.parents[step.parent], pair);
                    }
                    prop_assert_eq!(fetched.proof(group), outboard.proof(group));
                }
                Err(_) => prop_assert_eq!(&fetched, &before),
            }
        }
    }
}
