//! Where blobs live: a small trait the component reads and writes through,
//! and the in-memory store tests and the simulator use. A file-backed store
//! belongs to the program that has a disk (the node program), not here.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::tree::Outboard;
use crate::wire::{BlobHash, GROUP_LEN};

/// Which groups of a blob are held: one bit per group.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct GroupSet {
    bits: Vec<u64>,
    groups: u64,
    count: u64,
}

impl std::fmt::Debug for GroupSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupSet({}/{})", self.count, self.groups)
    }
}

impl GroupSet {
    /// No group of `groups`.
    pub fn empty(groups: u64) -> GroupSet {
        GroupSet {
            bits: vec![0; groups.div_ceil(64) as usize],
            groups,
            count: 0,
        }
    }

    /// Every group of `groups`.
    pub fn full(groups: u64) -> GroupSet {
        let mut set = GroupSet::empty(groups);
        for group in 0..groups {
            set.insert(group);
        }
        set
    }

    /// Whether `group` is in the set (false past the end).
    pub fn contains(&self, group: u64) -> bool {
        group < self.groups && self.bits[(group / 64) as usize] & (1 << (group % 64)) != 0
    }

    /// Adds `group`; false if it was there or is past the end.
    pub fn insert(&mut self, group: u64) -> bool {
        if group >= self.groups || self.contains(group) {
            return false;
        }
        self.bits[(group / 64) as usize] |= 1 << (group % 64);
        self.count += 1;
        true
    }

    /// Removes `group`; false if it was not there.
    pub fn remove(&mut self, group: u64) -> bool {
        if !self.contains(group) {
            return false;
        }
        self.bits[(group / 64) as usize] &= !(1 << (group % 64));
        self.count -= 1;
        true
    }

    /// Groups in the set.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Groups the set ranges over (the blob's group count).
    pub fn groups(&self) -> u64 {
        self.groups
    }

    /// Whether every group is in.
    pub fn is_full(&self) -> bool {
        self.count == self.groups
    }
}

/// Why a store refused to take a blob or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store is at its capacity (blobs or bytes); nothing was changed.
    #[error("store full")]
    Full,
    /// The blob is not in the store.
    #[error("blob not in the store")]
    Unknown,
    /// The store's backing failed (a file-backed store's disk): the group
    /// or blob was not kept.
    #[error("the store's backing failed")]
    Failed,
}

/// Storage for blobs and their outboards. The blobs component verifies every
/// group (through [`Outboard::insert_group`] on [`BlobStore::outboard_mut`])
/// before it writes it, so a store keeps bytes and never judges them.
pub trait BlobStore {
    /// The outboard of a blob held whole or in part (complete for a whole
    /// blob; filled in along the held groups' paths for a partial one).
    fn outboard(&self, hash: &BlobHash) -> Option<&Outboard>;
    /// The same, to fill in as verified groups arrive.
    fn outboard_mut(&mut self, hash: &BlobHash) -> Option<&mut Outboard>;
    /// Which groups of the blob are held.
    fn held(&self, hash: &BlobHash) -> Option<&GroupSet>;
    /// A held group's bytes.
    fn read_group(&self, hash: &BlobHash, group: u64) -> Option<Bytes>;
    /// Starts keeping a blob known by its outboard (empty for a fetch whose
    /// length was just proven), with no group held. A blob already there is
    /// left as it is.
    fn create(&mut self, outboard: Outboard) -> Result<(), StoreError>;
    /// Keeps a verified group.
    fn write_group(&mut self, hash: &BlobHash, group: u64, data: Bytes) -> Result<(), StoreError>;
    /// The blobs held, whole or in part, in hash order.
    fn list(&self) -> Vec<BlobHash>;
    /// Takes in a blob its owner put in the store's backing directly (a
    /// file-backed store imports a file on another thread than the node's,
    /// so that hashing a large file never stalls the node), and serves it
    /// from then on. Returns its length. The default, for a store with no
    /// backing of its own: `Unknown`.
    fn adopt(&mut self, hash: &BlobHash) -> Result<u64, StoreError> {
        let _ = hash;
        Err(StoreError::Unknown)
    }
    /// The whole blob's bytes, `None` unless every group is held: how a
    /// blob is written out or checked once fetched.
    fn read_whole(&self, hash: &BlobHash) -> Option<Vec<u8>> {
        let held = self.held(hash)?;
        if !held.is_full() {
            return None;
        }
        let mut out = Vec::new();
        for group in 0..held.groups() {
            out.extend_from_slice(&self.read_group(hash, group)?);
        }
        Some(out)
    }
}

struct MemBlob {
    outboard: Outboard,
    held: GroupSet,
    groups: Vec<Option<Bytes>>,
}

/// Blobs in memory, within a byte capacity.
#[derive(Default)]
pub struct MemStore {
    blobs: BTreeMap<BlobHash, MemBlob>,
    bytes: u64,
    capacity: Option<u64>,
}

impl MemStore {
    /// An empty store without a cap.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// An empty store that refuses groups past `bytes` in all.
    pub fn with_capacity(bytes: u64) -> MemStore {
        MemStore {
            capacity: Some(bytes),
            ..MemStore::default()
        }
    }

    /// Adds a whole blob: hashes it once (its outboard) and keeps its bytes
    /// without copying them. Returns its name.
    pub fn add(&mut self, data: Bytes) -> Result<BlobHash, StoreError> {
        let outboard = Outboard::compute(&data);
        let hash = outboard.root();
        if self.held(&hash).is_some_and(GroupSet::is_full) {
            return Ok(hash);
        }
        if self
            .capacity
            .is_some_and(|cap| self.bytes + data.len() as u64 > cap)
        {
            return Err(StoreError::Full);
        }
        let groups = outboard.groups();
        let pieces = (0..groups)
            .map(|group| {
                let from = (group * GROUP_LEN) as usize;
                Some(data.slice(from..(from + GROUP_LEN as usize).min(data.len())))
            })
            .collect();
        if let Some(old) = self.blobs.remove(&hash) {
            self.bytes -= old
                .groups
                .iter()
                .flatten()
                .map(|g| g.len() as u64)
                .sum::<u64>();
        }
        self.bytes += data.len() as u64;
        self.blobs.insert(
            hash,
            MemBlob {
                outboard,
                held: GroupSet::full(groups),
                groups: pieces,
            },
        );
        Ok(hash)
    }

    /// A whole blob's bytes, put together.
    pub fn read_all(&self, hash: &BlobHash) -> Option<Vec<u8>> {
        let blob = self.blobs.get(hash)?;
        if !blob.held.is_full() {
            return None;
        }
        Some(
            blob.groups
                .iter()
                .flatten()
                .flat_map(|g| g.iter().copied())
                .collect(),
        )
    }

    /// Bytes held in all.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl BlobStore for MemStore {
    fn outboard(&self, hash: &BlobHash) -> Option<&Outboard> {
        self.blobs.get(hash).map(|b| &b.outboard)
    }

    fn outboard_mut(&mut self, hash: &BlobHash) -> Option<&mut Outboard> {
        self.blobs.get_mut(hash).map(|b| &mut b.outboard)
    }

    fn held(&self, hash: &BlobHash) -> Option<&GroupSet> {
        self.blobs.get(hash).map(|b| &b.held)
    }

    fn read_group(&self, hash: &BlobHash, group: u64) -> Option<Bytes> {
        self.blobs.get(hash)?.groups.get(group as usize)?.clone()
    }

    fn create(&mut self, outboard: Outboard) -> Result<(), StoreError> {
        let groups = outboard.groups();
        self.blobs
            .entry(outboard.root())
            .or_insert_with(|| MemBlob {
                outboard,
                held: GroupSet::empty(groups),
                groups: vec![None; groups as usize],
            });
        Ok(())
    }

    fn write_group(&mut self, hash: &BlobHash, group: u64, data: Bytes) -> Result<(), StoreError> {
        let len = data.len() as u64;
        if self.capacity.is_some_and(|cap| self.bytes + len > cap) {
            return Err(StoreError::Full);
        }
        let blob = self.blobs.get_mut(hash).ok_or(StoreError::Unknown)?;
        let slot = blob
            .groups
            .get_mut(group as usize)
            .ok_or(StoreError::Unknown)?;
        if slot.is_none() {
            *slot = Some(data);
            blob.held.insert(group);
            self.bytes += len;
        }
        Ok(())
    }

    fn list(&self) -> Vec<BlobHash> {
        self.blobs.keys().copied().collect()
    }
}
