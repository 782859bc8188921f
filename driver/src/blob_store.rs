//! [`FileStore`]: blobs in files under a directory, with their outboards
//! and a map of the groups held, so that a node restarted (even after a
//! `SIGKILL`) serves what it held without hashing it again and a fetch
//! resumes where it stopped (spec/blobs.md §9).
//!
//! For a blob named `HASH` (64 hex digits) the directory holds:
//!
//! - `HASH.data`: the blob's bytes at their offsets (sparse while a fetch
//!   fills it in);
//! - `HASH.obao`: the outboard (`Outboard::as_bytes`: 64 bytes per parent,
//!   pre-order), written in place, parent by parent, as groups verify;
//! - `HASH.held`: the map of the groups held (`HELD_MAGIC`, the length and
//!   the data file's modification time as u64 LE, then one bit per group,
//!   LSB first), replaced whole (written aside, then renamed).
//!
//! A group's bytes are written before the map that says it is held, and the
//! map is saved every [`FileStore::checkpoint_groups`] groups and when the
//! blob is whole: a process killed at any point loses at most the groups
//! since the last save, never holds a group it did not write. Groups and
//! saves are written by a thread of the store's own (`writer.rs`), in
//! order, at most 256 queued; a blob is reported whole once they are all
//! done.
//!
//! **On open** each blob is checked. A whole blob whose outboard checks
//! against its name ([`Outboard::check`]) and whose data file has the
//! length and modification time saved with the map is trusted as it is
//! (not hashed again). Anything else (a part-held blob, a data file
//! changed since, a damaged outboard) is verified group by group against
//! its name; groups that fail, or that a truncated data file no longer
//! holds, are dropped from the map, so a fetch asks for them again. A map
//! that cannot be read drops the blob. Nothing read from disk can panic.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use ringmesh::blobs::{
    BlobHash, BlobStore, GROUP_LEN, GroupSet, Outboard, OutboardBuilder, StoreError, group_count,
    group_len, verify_group,
};
use tracing::{debug, warn};

mod writer;

use writer::{OutboardWrite, Save, Writer};

/// The first bytes of a `.held` file (format version 1).
pub const HELD_MAGIC: [u8; 8] = *b"RMHELD01";

/// Bytes read at a time when a file is imported.
const IMPORT_PIECE: usize = 1 << 20;

struct FileBlob {
    outboard: Outboard,
    held: GroupSet,
    /// Shared with the write-behind thread.
    data: Arc<File>,
    /// The outboard as last written to `.obao`, to write only the parents
    /// that changed.
    saved_outboard: Vec<u8>,
    /// Groups written since the map was last saved.
    unsaved: u64,
}

/// What [`FileStore::open`] found: blobs loaded, trusted whole, verified
/// group by group, and groups dropped (damaged, or cut off by a truncated
/// data file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Blobs loaded, whole or in part.
    pub blobs: u64,
    /// Whole blobs trusted without hashing (outboard checked, data file
    /// unchanged).
    pub trusted: u64,
    /// Groups hashed again on open.
    pub groups_verified: u64,
    /// Groups dropped from the maps: to be fetched again.
    pub groups_dropped: u64,
    /// Blobs whose map could not be read: dropped.
    pub blobs_dropped: u64,
}

/// Blobs in files under one directory (see the module docs): a
/// [`BlobStore`] for a node whose program has a disk. Give it to the node
/// with `AdapterConfig::blob_dir` (the adapter opens it) or
/// `Node::set_blob_store`.
pub struct FileStore {
    dir: PathBuf,
    blobs: BTreeMap<BlobHash, FileBlob>,
    report: OpenReport,
    /// The write-behind thread (`writer.rs`), started at the first group
    /// written; `None` until then, or if it could not be started (groups
    /// are then written on the caller's thread).
    writer: Option<Writer>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("blobs", &self.blobs.len())
            .finish()
    }
}

impl FileStore {
    /// The most verified bytes that wait in memory for the write-behind
    /// thread (4 MiB): part of what a fetch holds, besides its groups in
    /// flight.
    pub const WRITE_QUEUE_BYTES: u64 = writer::MAX_QUEUED as u64 * GROUP_LEN;

    /// Opens (creating it if missing) the store in `dir` and loads every
    /// blob in it, checking each as the module docs say.
    pub fn open(dir: &Path) -> io::Result<FileStore> {
        fs::create_dir_all(dir)?;
        let mut store = FileStore {
            dir: dir.to_owned(),
            blobs: BTreeMap::new(),
            report: OpenReport::default(),
            writer: None,
        };
        let mut hashes = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".held")) else {
                continue;
            };
            if let Ok(hash) = stem.parse::<BlobHash>() {
                hashes.push(hash);
            }
        }
        hashes.sort();
        for hash in hashes {
            let mut report = OpenReport::default();
            match load(dir, hash, &mut report) {
                Ok(blob) => {
                    report.blobs += 1;
                    store.blobs.insert(hash, blob);
                }
                Err(e) => {
                    warn!(%hash, error = %e, "blob store: dropping a blob whose files cannot be read");
                    report.blobs_dropped += 1;
                }
            }
            store.report = add_reports(store.report, report);
        }
        Ok(store)
    }

    /// What [`FileStore::open`] found.
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// The file holding a blob's bytes in the store at `dir` (whole once
    /// the blob is: a program hands it out by a hard link or a copy).
    pub fn data_path(dir: &Path, hash: &BlobHash) -> PathBuf {
        dir.join(format!("{hash}.data"))
    }

    /// Puts the whole blob `hash` of the store at `dir` at `path` (replacing
    /// what is there): a hard link when both are on one file system
    /// (instant, whatever the size), else a copy. Changing the linked file
    /// in place changes the store's copy: the store notices at its next
    /// open (the data file's time) and drops the changed groups, and a peer
    /// served one meanwhile drops this node at the first bad group.
    pub fn export(dir: &Path, hash: &BlobHash, path: &Path) -> io::Result<()> {
        let held = Self::data_path(dir, hash);
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if fs::hard_link(&held, path).is_ok() {
            return Ok(());
        }
        fs::copy(held, path).map(drop)
    }

    /// How many groups a blob of `groups` groups writes between two saves
    /// of its map: at least 256 (4 MiB), and at most 64 saves per blob, so
    /// saving costs a small fraction of the writes and a killed fetch loses
    /// at most 1/64 of the blob (or 4 MiB).
    pub fn checkpoint_groups(groups: u64) -> u64 {
        (groups / 64).max(256)
    }

    /// Copies the file at `source` into the store at `dir`, hashing it on
    /// the way (one read, in pieces: the file is never held in memory), and
    /// saves its outboard and a full map. The node serves it once told
    /// (`BlobsCommand::Adopt`). Returns its name and length. Run it on a
    /// thread of the program's, not the node's: hashing a large file takes
    /// a while.
    pub fn import(dir: &Path, source: &Path) -> io::Result<(BlobHash, u64)> {
        fs::create_dir_all(dir)?;
        let mut input = File::open(source)?;
        static IMPORTS: AtomicU64 = AtomicU64::new(0);
        let serial = IMPORTS.fetch_add(1, Ordering::Relaxed);
        let aside = dir.join(format!("import-{}-{serial}.part", std::process::id()));
        let mut output = File::create(&aside)?;
        let mut builder = OutboardBuilder::new();
        let mut piece = vec![0u8; IMPORT_PIECE];
        loop {
            let n = match input.read(&mut piece) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = fs::remove_file(&aside);
                    return Err(e);
                }
            };
            builder.update(&piece[..n]);
            output.write_all(&piece[..n])?;
        }
        drop(output);
        let outboard = builder
            .finish()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let hash = outboard.root();
        fs::rename(&aside, Self::data_path(dir, &hash))?;
        fs::write(path_of(dir, &hash, "obao"), outboard.as_bytes())?;
        let data = File::open(Self::data_path(dir, &hash))?;
        save_held(
            dir,
            &hash,
            outboard.len(),
            &GroupSet::full(outboard.groups()),
            &data,
        )?;
        Ok((hash, outboard.len()))
    }

    /// Saves a blob's outboard (the parents that changed) and its map: on
    /// the write-behind thread when it runs (after the groups queued
    /// before), else here.
    fn checkpoint(&mut self, hash: &BlobHash) -> io::Result<()> {
        let Some(blob) = self.blobs.get_mut(hash) else {
            return Ok(());
        };
        blob.unsaved = 0;
        let now = blob.outboard.as_bytes();
        let outboard = if now.len() == blob.saved_outboard.len() {
            OutboardWrite::Runs(changed_runs(&now, &blob.saved_outboard))
        } else {
            OutboardWrite::Whole(now.clone())
        };
        blob.saved_outboard = now;
        let save = Save {
            dir: self.dir.clone(),
            hash: *hash,
            len: blob.outboard.len(),
            data: Arc::clone(&blob.data),
            outboard,
            held: blob.held.clone(),
        };
        match &mut self.writer {
            Some(writer) => {
                writer.save(save);
                Ok(())
            }
            None => write_save(&save),
        }
    }

    /// Takes the groups whose writes failed out of the maps held in memory
    /// (the saves on disk already leave them out), so they are fetched
    /// again.
    fn settle(&mut self, failed: Vec<(BlobHash, u64)>) {
        for (hash, group) in failed {
            if let Some(blob) = self.blobs.get_mut(&hash) {
                blob.held.remove(group);
            }
        }
    }
}

/// The runs of 64-byte parents that differ between two outboards of one
/// length, each with its offset: one write per run, not per parent.
fn changed_runs(now: &[u8], saved: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, (new, old)) in now.chunks_exact(64).zip(saved.chunks_exact(64)).enumerate() {
        if new == old {
            continue;
        }
        let offset = i as u64 * 64;
        match runs.last_mut() {
            Some((start, run)) if *start + run.len() as u64 == offset => {
                run.extend_from_slice(new);
            }
            _ => runs.push((offset, new.to_vec())),
        }
    }
    runs
}

/// Writes a save (see [`FileStore::checkpoint`]): the outboard, then the
/// map.
fn write_save(save: &Save) -> io::Result<()> {
    let obao = path_of(&save.dir, &save.hash, "obao");
    match &save.outboard {
        OutboardWrite::Whole(bytes) => fs::write(obao, bytes)?,
        OutboardWrite::Runs(runs) => {
            if !runs.is_empty() {
                let file = OpenOptions::new().write(true).open(obao)?;
                for (offset, run) in runs {
                    write_all_at(&file, run, *offset)?;
                }
            }
        }
    }
    save_held(&save.dir, &save.hash, save.len, &save.held, &save.data)
}

/// How an application adds the file at `path` to a node whose blobs are
/// in `blob_dir` (its [`AdapterConfig::blob_dir`](crate::AdapterConfig::blob_dir)):
/// with a directory, the file is imported there ([`FileStore::import`]:
/// copied and hashed in pieces) and the command is `Adopt`; without, its
/// bytes are read and the command is `Add`. Returns the blob's name and the
/// command to run; the adapters' handles use it (`add_blob_file`).
pub fn add_file_command(
    blob_dir: Option<&Path>,
    path: &Path,
) -> io::Result<(BlobHash, ringmesh::BlobsCommand)> {
    match blob_dir {
        Some(dir) => {
            let (hash, _) = FileStore::import(dir, path)?;
            Ok((hash, ringmesh::BlobsCommand::Adopt { hash }))
        }
        None => {
            let data = Bytes::from(fs::read(path)?);
            let hash = BlobHash::of(&data);
            Ok((hash, ringmesh::BlobsCommand::Add { data }))
        }
    }
}

/// A whole blob's bytes from a node's store (`None` unless it holds every
/// group): how a blob in memory is written out.
pub fn read_whole(node: &ringmesh::Node, hash: &BlobHash) -> Option<Vec<u8>> {
    node.blob_store()?.read_whole(hash)
}

/// Writes the whole blob `hash` to `path`: from the store at `blob_dir`
/// ([`FileStore::export`]) or, without one, from the node's memory (read
/// by `read`, which runs [`read_whole`] on the node). `NotFound` if the
/// blob is not held whole.
pub fn save_blob(
    blob_dir: Option<&Path>,
    hash: &BlobHash,
    path: &Path,
    read: impl FnOnce() -> Option<Vec<u8>>,
) -> io::Result<()> {
    match blob_dir {
        Some(dir) => FileStore::export(dir, hash, path),
        None => match read() {
            Some(data) => fs::write(path, data),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {hash} is not held whole"),
            )),
        },
    }
}

fn add_reports(a: OpenReport, b: OpenReport) -> OpenReport {
    OpenReport {
        blobs: a.blobs + b.blobs,
        trusted: a.trusted + b.trusted,
        groups_verified: a.groups_verified + b.groups_verified,
        groups_dropped: a.groups_dropped + b.groups_dropped,
        blobs_dropped: a.blobs_dropped + b.blobs_dropped,
    }
}

fn path_of(dir: &Path, hash: &BlobHash, ext: &str) -> PathBuf {
    dir.join(format!("{hash}.{ext}"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The data file's modification time in nanoseconds since the epoch (0 if
/// the platform has none).
fn modified_nanos(data: &File) -> io::Result<u64> {
    let modified = data.metadata()?.modified()?;
    Ok(modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

/// Writes a blob's map aside and renames it over the old one.
fn save_held(
    dir: &Path,
    hash: &BlobHash,
    len: u64,
    held: &GroupSet,
    data: &File,
) -> io::Result<()> {
    let groups = held.groups();
    let mut bytes = Vec::with_capacity(24 + groups.div_ceil(8) as usize);
    bytes.extend_from_slice(&HELD_MAGIC);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&modified_nanos(data)?.to_le_bytes());
    let mut bits = vec![0u8; groups.div_ceil(8) as usize];
    for group in 0..groups {
        if held.contains(group) {
            bits[(group / 8) as usize] |= 1 << (group % 8);
        }
    }
    bytes.extend_from_slice(&bits);
    let aside = path_of(dir, hash, "held.part");
    fs::write(&aside, &bytes)?;
    fs::rename(&aside, path_of(dir, hash, "held"))
}

/// Reads a blob back (see the module docs for what is checked).
fn load(dir: &Path, hash: BlobHash, report: &mut OpenReport) -> io::Result<FileBlob> {
    let map = fs::read(path_of(dir, &hash, "held"))?;
    if map.len() < 24 || map[..8] != HELD_MAGIC {
        return Err(invalid("not a map of held groups"));
    }
    let len = u64::from_le_bytes(map[8..16].try_into().expect("8 bytes"));
    let saved_mtime = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes"));
    let empty = Outboard::empty(hash, len).map_err(|_| invalid("blob length over the limit"))?;
    let groups = group_count(len);
    if (map.len() - 24) as u64 != groups.div_ceil(8) {
        return Err(invalid("map of held groups has the wrong size"));
    }
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path_of(dir, &hash, "data"))?;
    let data_len = data.metadata()?.len();
    let mut held = GroupSet::empty(groups);
    let mut cut_off = 0;
    for group in 0..groups {
        if map[24 + (group / 8) as usize] & (1 << (group % 8)) == 0 {
            continue;
        }
        if group * GROUP_LEN + group_len(len, group) <= data_len {
            held.insert(group);
        } else {
            cut_off += 1;
        }
    }
    report.groups_dropped += cut_off;
    let saved = fs::read(path_of(dir, &hash, "obao"))
        .ok()
        .and_then(|bytes| Outboard::from_bytes(hash, len, &bytes).ok());
    let unchanged = data_len == len && modified_nanos(&data)? == saved_mtime;
    let trusted = held.is_full() && unchanged && saved.as_ref().is_some_and(|o| o.check().is_ok());
    // Whole, but changed since or with a damaged outboard: if the data
    // still hashes to the name, the outboard is made again.
    let rehashed = if !trusted && held.is_full() && data_len == len {
        report.groups_verified += groups;
        rehash(&data, len).ok().filter(|again| again.root() == hash)
    } else {
        None
    };
    let outboard = match (saved, rehashed) {
        (Some(outboard), _) if trusted => {
            report.trusted += 1;
            outboard
        }
        (_, Some(again)) => again,
        (saved, None) => {
            // Every held group is hashed against the name, with the proof
            // the saved outboard gives for it; the outboard is rebuilt from
            // the groups that pass.
            let mut fresh = empty;
            let mut piece = vec![0u8; GROUP_LEN as usize];
            for group in 0..groups {
                if !held.contains(group) {
                    continue;
                }
                report.groups_verified += 1;
                let bytes = &mut piece[..group_len(len, group) as usize];
                let proof = saved.as_ref().and_then(|o| o.proof(group));
                let good = read_exact_at(&data, bytes, group * GROUP_LEN).is_ok()
                    && proof.is_some_and(|proof| {
                        verify_group(&hash, len, group, bytes, &proof).is_ok()
                            && fresh.insert_group(group, bytes, &proof).is_ok()
                    });
                if !good {
                    held.remove(group);
                    report.groups_dropped += 1;
                }
            }
            fresh
        }
    };
    if data_len < len {
        data.set_len(len)?;
    }
    FileBlob::saved(dir, outboard, held, data)
}

impl FileBlob {
    /// A blob whose outboard and map are written out whole now.
    fn saved(dir: &Path, outboard: Outboard, held: GroupSet, data: File) -> io::Result<FileBlob> {
        let hash = outboard.root();
        let saved_outboard = outboard.as_bytes();
        fs::write(path_of(dir, &hash, "obao"), &saved_outboard)?;
        save_held(dir, &hash, outboard.len(), &held, &data)?;
        Ok(FileBlob {
            outboard,
            held,
            data: Arc::new(data),
            saved_outboard,
            unsaved: 0,
        })
    }
}

/// Asks the file system for `len` bytes of blocks for a new blob's data
/// file at once (Linux `fallocate`), so that writing the fetched groups in
/// does not allocate block by block (ext4 took a good part of a 1 GiB
/// fetch's CPU there), and a disk without room for the blob refuses it now
/// (`StorageFull`) rather than part way through the fetch. A file system
/// that cannot reserve (`EOPNOTSUPP`) allocates as the groups arrive, as
/// before.
fn reserve(data: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    match rustix::fs::fallocate(data, rustix::fs::FallocateFlags::empty(), 0, len) {
        Err(rustix::io::Errno::NOSPC) => return Err(io::ErrorKind::StorageFull.into()),
        Err(e) => debug!(error = %e, "blob store: cannot reserve a data file's blocks"),
        Ok(()) => {}
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (data, len);
    Ok(())
}

/// The outboard of the first `len` bytes of `data`, read in pieces.
fn rehash(data: &File, len: u64) -> io::Result<Outboard> {
    let mut builder = OutboardBuilder::new();
    let mut piece = vec![0u8; IMPORT_PIECE];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(IMPORT_PIECE as u64) as usize;
        read_exact_at(data, &mut piece[..n], at)?;
        builder.update(&piece[..n]);
        at += n as u64;
    }
    builder
        .finish()
        .map_err(|_| invalid("blob length over the limit"))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(offset))?;
    file.write_all(buf)
}

impl BlobStore for FileStore {
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
        let blob = self.blobs.get(hash)?;
        if !blob.held.contains(group) {
            return None;
        }
        if let Some(queued) = self.writer.as_ref().and_then(|w| w.queued(hash, group)) {
            return Some(queued);
        }
        let mut bytes = vec![0u8; group_len(blob.outboard.len(), group) as usize];
        match read_exact_at(&blob.data, &mut bytes, group * GROUP_LEN) {
            Ok(()) => Some(Bytes::from(bytes)),
            Err(e) => {
                warn!(%hash, group, error = %e, "blob store: cannot read a held group");
                None
            }
        }
    }

    fn create(&mut self, outboard: Outboard) -> Result<(), StoreError> {
        let hash = outboard.root();
        if self.blobs.contains_key(&hash) {
            return Ok(());
        }
        let create = || -> io::Result<FileBlob> {
            let data = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path_of(&self.dir, &hash, "data"))?;
            data.set_len(outboard.len())?;
            reserve(&data, outboard.len())?;
            let held = GroupSet::empty(outboard.groups());
            FileBlob::saved(&self.dir, outboard, held, data)
        };
        match create() {
            Ok(blob) => {
                self.blobs.insert(hash, blob);
                Ok(())
            }
            Err(e) => {
                warn!(%hash, error = %e, "blob store: cannot create a blob's files");
                Err(StoreError::Failed)
            }
        }
    }

    fn write_group(&mut self, hash: &BlobHash, group: u64, data: Bytes) -> Result<(), StoreError> {
        if let Some(writer) = &mut self.writer {
            let failed = writer.reap();
            self.settle(failed);
        } else {
            match Writer::start() {
                Ok(writer) => self.writer = Some(writer),
                Err(e) => {
                    warn!(error = %e, "blob store: no write-behind thread; writing on the node's thread");
                }
            }
        }
        let blob = self.blobs.get_mut(hash).ok_or(StoreError::Unknown)?;
        if group >= blob.held.groups() {
            return Err(StoreError::Unknown);
        }
        if blob.held.contains(group) {
            return Ok(());
        }
        match &mut self.writer {
            Some(writer) => writer.write_group(*hash, group, &blob.data, group * GROUP_LEN, data),
            None => {
                if let Err(e) = write_all_at(&blob.data, &data, group * GROUP_LEN) {
                    warn!(%hash, group, error = %e, "blob store: cannot write a group");
                    return Err(StoreError::Failed);
                }
            }
        }
        blob.held.insert(group);
        blob.unsaved += 1;
        let whole = blob.held.is_full();
        let due = whole || blob.unsaved >= Self::checkpoint_groups(blob.held.groups());
        if due && let Err(e) = self.checkpoint(hash) {
            // The group is written and held in memory; the next save (or a
            // restart's check) settles the map.
            warn!(%hash, error = %e, "blob store: cannot save the map of held groups");
        }
        if whole && let Some(writer) = &mut self.writer {
            // A blob is whole only once it is on its way to the disk, map
            // included: the program hands its file out at once. A write
            // that failed makes it not whole, and the fetch asks again.
            let failed = writer.flush();
            self.settle(failed);
        }
        Ok(())
    }

    fn list(&self) -> Vec<BlobHash> {
        self.blobs.keys().copied().collect()
    }

    fn adopt(&mut self, hash: &BlobHash) -> Result<u64, StoreError> {
        let mut report = OpenReport::default();
        match load(&self.dir, *hash, &mut report) {
            Ok(blob) => {
                let len = blob.outboard.len();
                self.blobs.insert(*hash, blob);
                Ok(len)
            }
            Err(e) => {
                warn!(%hash, error = %e, "blob store: cannot adopt a blob");
                Err(StoreError::Unknown)
            }
        }
    }
}

#[cfg(test)]
mod tests;
