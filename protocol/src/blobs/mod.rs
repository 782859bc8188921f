//! Blobs: files named by their BLAKE3 hash, moved in verified chunk groups
//! (spec/blobs.md).
//!
//! - `tree.rs`, the verification core: chunk groups, their proofs, and the
//!   outboard over BLAKE3's own tree;
//! - `store.rs`, the storage trait and the in-memory store;
//! - `serve.rs`, a provider's answers within its serving budget;
//! - `fetch.rs`, one fetch from several providers at once.
//!
//! # Example
//!
//! A blob added to one store and fetched into another, every group
//! verified on arrival:
//!
//! ```
//! use bytes::Bytes;
//! use ringmesh::Instant;
//! use ringmesh::blobs::{BlobStore, Fetch, FetchLimits, MemStore, ServeLimits, Server};
//! use ringmesh::wire::Message;
//!
//! let mut seeder = MemStore::new();
//! let hash = seeder.add(Bytes::from(vec![7u8; 100_000])).unwrap();
//! let mut server = Server::new(ServeLimits::default());
//!
//! let mut mine = MemStore::new();
//! let mut fetch = Fetch::new(hash, FetchLimits::default(), &mine);
//! fetch.add_provider("seeder");
//! let now = Instant::from_micros(0);
//! let mut below = |n: u64| n / 2;
//! while !fetch.is_done() {
//!     for (_, get) in fetch.poll_requests(now, &mine, &mut below) {
//!         for answer in server.answer(now, &seeder, &get) {
//!             match answer {
//!                 Message::BlobGroup(g) => drop(fetch.on_group("seeder", g, &mut mine)),
//!                 Message::BlobEnd(e) => drop(fetch.on_end(now, "seeder", e, &mine)),
//!                 _ => {}
//!             }
//!         }
//!     }
//! }
//! assert_eq!(mine.read_all(&hash), Some(vec![7u8; 100_000]));
//! ```

mod fetch;
mod serve;
mod store;
mod tree;

pub use crate::wire::{BlobHash, GROUP_LEN, MAX_BLOB_LEN, MAX_GROUPS, MAX_PROOF_DEPTH};
pub use fetch::{DropReason, Fetch, FetchEvent, FetchLimits, FetchStats};
pub use serve::{ServeLimits, ServeStats, Server};
pub use store::{BlobStore, GroupSet, MemStore, StoreError};
pub use tree::{ChainingValue, Outboard, Proof, VerifyError, group_count, group_len, verify_group};

#[cfg(test)]
mod tests;
