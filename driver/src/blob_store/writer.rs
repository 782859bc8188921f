//! Write-behind for [`FileStore`](super::FileStore): verified groups and
//! map saves are written by a thread of the store's own, in the order they
//! were queued, so the node's loop never waits for the page cache.
//!
//! Why: writing a fetched blob through the page cache costs the writer
//! about as much CPU as decrypting it (at 1 GiB over loopback, a third of
//! the fetcher's loop; each new page of the file is memory the kernel
//! hands out fresh, and on a virtual machine the host faults it in on the
//! first write). On this thread it runs beside the loop instead of in it.
//!
//! Bounds and order:
//! - groups go to the thread in batches of [`BATCH`] (a batch is handed
//!   over early when the thread is idle): waking the thread for every
//!   group cost both threads a context switch per group;
//! - at most [`MAX_QUEUED`] groups are between the loop and the disk (the
//!   batch being filled, the batches waiting, the one being written:
//!   4 MiB); a full queue makes the loop wait, as a slow disk made it
//!   wait before;
//! - jobs run in order, so a group's bytes are on their way to the disk
//!   before any map saved after it says it is held (spec/blobs.md §9);
//! - until its write is done a group is read from the bytes queued, so a
//!   node serves what it holds at once;
//! - a write that fails takes its group out of the map, on disk (the saves
//!   after it leave it out) and in memory (at the next
//!   [`Writer::reap`]), so the blob is fetched again where it lacks;
//! - dropping the writer writes everything queued, then joins the thread.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use ringmesh::blobs::{BlobHash, GroupSet};
use tracing::warn;

/// Groups between the loop and the disk, at most (4 MiB).
pub(super) const MAX_QUEUED: usize = 256;

/// Groups handed to the thread at a time.
pub(super) const BATCH: usize = 16;

/// Batches (or saves) that may wait for the thread: with the batch being
/// filled and the one being written, [`MAX_QUEUED`] groups.
const WAITING_JOBS: usize = MAX_QUEUED / BATCH - 2;

/// A save of a blob's outboard (the parents that changed) and its map.
pub(super) struct Save {
    pub(super) dir: PathBuf,
    pub(super) hash: BlobHash,
    pub(super) len: u64,
    pub(super) data: Arc<File>,
    /// `.obao` written whole, or runs of it at their offsets.
    pub(super) outboard: OutboardWrite,
    pub(super) held: GroupSet,
}

/// What of an outboard a save writes.
pub(super) enum OutboardWrite {
    /// The whole file, replaced.
    Whole(Vec<u8>),
    /// Runs of changed parents, each at its offset in the file.
    Runs(Vec<(u64, Vec<u8>)>),
}

/// One group's write.
struct GroupWrite {
    hash: BlobHash,
    group: u64,
    file: Arc<File>,
    offset: u64,
    data: Bytes,
}

enum Job {
    /// Groups written in order; `seq` is the last one's.
    Groups {
        seq: u64,
        groups: Vec<GroupWrite>,
    },
    Save {
        seq: u64,
        save: Box<Save>,
    },
}

/// What the thread has done, read by the loop without taking a lock at
/// every group (the loop and the thread would contend for it at every
/// job).
#[derive(Default)]
struct Shared {
    /// The sequence number of the last finished job.
    done: AtomicU64,
    /// Groups whose writes failed, not yet reaped; `any_failed` says
    /// whether to look.
    failed: Mutex<Vec<(BlobHash, u64)>>,
    any_failed: AtomicBool,
    /// Whether the loop waits in [`Writer::flush`]: the thread then
    /// signals each job done.
    flushing: AtomicBool,
    wait: Mutex<()>,
    changed: Condvar,
}

impl Shared {
    fn finished(&self, seq: u64) {
        self.done.store(seq, Ordering::SeqCst);
        if self.flushing.load(Ordering::SeqCst) {
            let _wait = lock(&self.wait);
            self.changed.notify_all();
        }
    }

    fn failed(&self, hash: BlobHash, group: u64) {
        lock(&self.failed).push((hash, group));
        self.any_failed.store(true, Ordering::SeqCst);
    }

    fn take_failed(&self) -> Vec<(BlobHash, u64)> {
        if self.any_failed.swap(false, Ordering::SeqCst) {
            std::mem::take(&mut *lock(&self.failed))
        } else {
            Vec::new()
        }
    }
}

/// A group queued and perhaps not yet written.
struct Queued {
    seq: u64,
    hash: BlobHash,
    group: u64,
    data: Bytes,
}

/// The loop's side of the write-behind thread.
pub(super) struct Writer {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Groups queued and not known written, oldest first.
    queued: VecDeque<Queued>,
    /// The last sequence number given to a job (a group or a save).
    seq: u64,
    /// Groups not yet handed to the thread.
    batch: Vec<GroupWrite>,
    /// The last sequence number handed to the thread.
    sent: u64,
    /// Groups whose write failed here, once the thread is gone (it cannot
    /// end but by a panic).
    failed_here: BTreeSet<(BlobHash, u64)>,
}

impl Writer {
    /// Starts the thread.
    pub(super) fn start() -> io::Result<Writer> {
        let (jobs, rx) = sync_channel::<Job>(WAITING_JOBS);
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ringmesh-blob-writer".to_owned())
            .spawn(move || {
                let mut failed = BTreeSet::new();
                for job in rx {
                    let seq = run(job, &mut failed, &theirs);
                    theirs.finished(seq);
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            shared,
            queued: VecDeque::new(),
            seq: 0,
            batch: Vec::with_capacity(BATCH),
            sent: 0,
            failed_here: BTreeSet::new(),
        })
    }

    /// Queues group `group` of `hash`, to be written at `offset` of `file`.
    pub(super) fn write_group(
        &mut self,
        hash: BlobHash,
        group: u64,
        file: &Arc<File>,
        offset: u64,
        data: Bytes,
    ) {
        self.seq += 1;
        self.queued.push_back(Queued {
            seq: self.seq,
            hash,
            group,
            data: data.clone(),
        });
        self.batch.push(GroupWrite {
            hash,
            group,
            file: Arc::clone(file),
            offset,
            data,
        });
        if self.batch.len() >= BATCH || self.shared.done.load(Ordering::SeqCst) == self.sent {
            self.send_batch();
        }
    }

    /// Hands the groups batched so far to the thread.
    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let groups = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.send(Job::Groups {
            seq: self.seq,
            groups,
        });
    }

    /// Queues a save of a blob's outboard and map, after every group
    /// queued before it.
    pub(super) fn save(&mut self, save: Save) {
        self.send_batch();
        self.seq += 1;
        self.send(Job::Save {
            seq: self.seq,
            save: Box::new(save),
        });
    }

    fn send(&mut self, job: Job) {
        self.sent = match &job {
            Job::Groups { seq, .. } | Job::Save { seq, .. } => *seq,
        };
        let job = match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return,
                Err(unsent) => {
                    warn!("blob store: the writer thread is gone; writing on the node's thread");
                    self.jobs = None;
                    unsent.0
                }
            },
            None => job,
        };
        let seq = run(job, &mut self.failed_here, &self.shared);
        self.shared.finished(seq);
    }

    /// The bytes of a group queued and not yet known written.
    pub(super) fn queued(&self, hash: &BlobHash, group: u64) -> Option<Bytes> {
        self.queued
            .iter()
            .rev()
            .find(|q| q.group == group && q.hash == *hash)
            .map(|q| q.data.clone())
    }

    /// Forgets the groups written, and returns those whose write failed.
    pub(super) fn reap(&mut self) -> Vec<(BlobHash, u64)> {
        self.forget_until(self.shared.done.load(Ordering::SeqCst));
        self.shared.take_failed()
    }

    /// Waits until every job queued so far is done; returns the groups
    /// whose write failed.
    pub(super) fn flush(&mut self) -> Vec<(BlobHash, u64)> {
        self.send_batch();
        self.shared.flushing.store(true, Ordering::SeqCst);
        {
            let mut wait = lock(&self.shared.wait);
            while self.shared.done.load(Ordering::SeqCst) < self.seq
                && self.jobs.is_some()
                && self.thread.as_ref().is_some_and(|t| !t.is_finished())
            {
                // A timeout only to notice a thread that died.
                wait = self
                    .shared
                    .changed
                    .wait_timeout(wait, Duration::from_millis(100))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        self.shared.flushing.store(false, Ordering::SeqCst);
        self.reap()
    }

    fn forget_until(&mut self, done: u64) {
        while self.queued.front().is_some_and(|q| q.seq <= done) {
            self.queued.pop_front();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.send_batch();
        // Closing the channel ends the thread once it has written the rest.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one job; returns its sequence number. `failed` holds the groups
/// whose write failed, per blob: every later save of that blob's map
/// leaves them out.
fn run(job: Job, failed: &mut BTreeSet<(BlobHash, u64)>, shared: &Shared) -> u64 {
    match job {
        Job::Groups { seq, groups } => {
            for write in groups {
                let GroupWrite {
                    hash,
                    group,
                    file,
                    offset,
                    data,
                } = write;
                if let Err(e) = super::write_all_at(&file, &data, offset) {
                    warn!(%hash, group, error = %e, "blob store: cannot write a group");
                    failed.insert((hash, group));
                    shared.failed(hash, group);
                }
            }
            seq
        }
        Job::Save { seq, save } => {
            run_save(*save, failed);
            seq
        }
    }
}

fn run_save(mut save: Save, failed: &BTreeSet<(BlobHash, u64)>) {
    for &(_, group) in failed.range((save.hash, 0)..=(save.hash, u64::MAX)) {
        save.held.remove(group);
    }
    if let Err(e) = super::write_save(&save) {
        // The groups are written and held in memory; the next save (or a
        // restart's check) settles the map.
        warn!(hash = %save.hash, error = %e, "blob store: cannot save the map of held groups");
    }
}
