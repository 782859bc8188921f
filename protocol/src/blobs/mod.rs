//! Blobs: files named by their BLAKE3 hash, moved in verified chunk groups
//! (spec/blobs.md).
//!
//! `tree.rs` is the verification core: the chunk groups, their proofs and the
//! outboard over BLAKE3's own tree.

mod tree;

pub use tree::{
    BlobHash, ChainingValue, GROUP_LEN, MAX_BLOB_LEN, MAX_GROUPS, MAX_PROOF_DEPTH, Outboard,
    ParseBlobHashError, Proof, VerifyError, group_count, group_len, verify_group,
};
