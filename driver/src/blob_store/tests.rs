use super::*;

/// A directory under the system's temp dir, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "ringmesh-filestore-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn blob(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect()
}

fn group_of(data: &[u8], group: u64) -> Bytes {
    let from = (group * GROUP_LEN) as usize;
    Bytes::copy_from_slice(&data[from..(from + GROUP_LEN as usize).min(data.len())])
}

/// Writes `groups` of `data` into `store` as a fetch does: verified into
/// the outboard first, then kept.
fn fetch_into(store: &mut FileStore, data: &[u8], groups: impl Iterator<Item = u64>) -> BlobHash {
    let whole = Outboard::compute(data);
    let hash = whole.root();
    store
        .create(Outboard::empty(hash, data.len() as u64).expect("len"))
        .expect("created");
    for group in groups {
        let proof = whole.proof(group).expect("in range");
        let bytes = group_of(data, group);
        store
            .outboard_mut(&hash)
            .expect("created")
            .insert_group(group, &bytes, &proof)
            .expect("honest");
        store.write_group(&hash, group, bytes).expect("kept");
    }
    hash
}

#[test]
fn an_imported_file_is_served_after_a_restart_without_hashing_it_again() {
    let dir = Dir::new("import");
    let data = blob(5 * GROUP_LEN as usize + 77);
    let source = dir.0.join("source.bin");
    fs::write(&source, &data).expect("source");
    let store_dir = dir.0.join("blobs");
    let (hash, len) = FileStore::import(&store_dir, &source).expect("imported");
    assert_eq!(hash, BlobHash::of(&data));
    assert_eq!(len, data.len() as u64);

    let mut store = FileStore::open(&store_dir).expect("opened");
    assert_eq!(store.adopt(&hash), Ok(len));
    let reopened = FileStore::open(&store_dir).expect("opened");
    let report = reopened.open_report();
    assert_eq!(report.blobs, 1);
    assert_eq!(report.trusted, 1);
    assert_eq!(
        report.groups_verified, 0,
        "a whole blob is not hashed again"
    );
    assert!(reopened.held(&hash).is_some_and(GroupSet::is_full));
    assert_eq!(reopened.outboard(&hash), Some(&Outboard::compute(&data)));
    for group in 0..6 {
        assert_eq!(
            reopened.read_group(&hash, group),
            Some(group_of(&data, group))
        );
    }
    assert_eq!(
        fs::read(FileStore::data_path(&store_dir, &hash)).expect("data"),
        data
    );
}

#[test]
fn a_part_held_blob_reopens_with_the_groups_saved_and_serves_their_proofs() {
    let dir = Dir::new("partial");
    let groups = 2 * FileStore::checkpoint_groups(0) + 10;
    let data = blob((groups * GROUP_LEN) as usize - 5);
    let mut store = FileStore::open(&dir.0).expect("opened");
    // Past one save of the map and not at the next: a process killed now
    // keeps what the first save said.
    let first = FileStore::checkpoint_groups(groups) + 3;
    let hash = fetch_into(&mut store, &data, 0..first);
    drop(store);

    let reopened = FileStore::open(&dir.0).expect("opened");
    let held = reopened.held(&hash).expect("loaded");
    assert_eq!(held.count(), FileStore::checkpoint_groups(groups));
    assert_eq!(
        reopened.open_report().groups_verified,
        FileStore::checkpoint_groups(groups)
    );
    let whole = Outboard::compute(&data);
    for group in 0..held.groups() {
        if held.contains(group) {
            assert_eq!(
                reopened.read_group(&hash, group),
                Some(group_of(&data, group))
            );
            assert_eq!(
                reopened.outboard(&hash).and_then(|o| o.proof(group)),
                whole.proof(group)
            );
        }
    }
}

#[test]
fn damaged_or_truncated_files_drop_only_the_groups_they_touch() {
    let dir = Dir::new("damaged");
    let data = blob(300 * GROUP_LEN as usize);
    let mut store = FileStore::open(&dir.0).expect("opened");
    let hash = fetch_into(&mut store, &data, 0..280);
    drop(store);
    // A flipped byte in group 7, and the file cut inside group 270.
    let path = FileStore::data_path(&dir.0, &hash);
    let mut bytes = fs::read(&path).expect("data");
    bytes[7 * GROUP_LEN as usize + 100] ^= 1;
    bytes.truncate(270 * GROUP_LEN as usize + 9);
    fs::write(&path, &bytes).expect("damaged");

    let reopened = FileStore::open(&dir.0).expect("opened");
    let held = reopened.held(&hash).expect("loaded");
    assert!(!held.contains(7));
    assert!(held.contains(6) && held.contains(8));
    assert_eq!(held.count(), 256 - 1, "saved 256, group 7 damaged");
    assert_eq!(reopened.open_report().groups_dropped, 1);
    assert_eq!(
        fs::metadata(&path).expect("data").len(),
        data.len() as u64,
        "the file is grown back to the blob's length"
    );
}

#[test]
fn a_whole_blob_changed_on_disk_is_checked_and_its_bad_group_dropped() {
    let dir = Dir::new("changed");
    let data = blob(20 * GROUP_LEN as usize);
    let mut store = FileStore::open(&dir.0).expect("opened");
    let hash = fetch_into(&mut store, &data, 0..20);
    assert!(store.held(&hash).is_some_and(GroupSet::is_full));
    drop(store);
    let path = FileStore::data_path(&dir.0, &hash);
    let mut bytes = fs::read(&path).expect("data");
    bytes[3 * GROUP_LEN as usize] ^= 0x80;
    fs::write(&path, &bytes).expect("changed");

    let reopened = FileStore::open(&dir.0).expect("opened");
    let held = reopened.held(&hash).expect("loaded");
    assert_eq!(held.count(), 19);
    assert!(!held.contains(3));
}

#[test]
fn garbage_store_files_never_panic() {
    let dir = Dir::new("garbage");
    let data = blob(40 * GROUP_LEN as usize);
    let mut store = FileStore::open(&dir.0).expect("opened");
    let hash = fetch_into(&mut store, &data, 0..40);
    let other = fetch_into(&mut store, &blob(3 * GROUP_LEN as usize), 0..3);
    drop(store);
    // A damaged outboard on a whole blob: the data is hashed again.
    fs::write(dir.0.join(format!("{hash}.obao")), vec![0xab; 39 * 64]).expect("obao");
    // A map that is not one.
    fs::write(dir.0.join(format!("{other}.held")), b"RMHELD01 short").expect("held");
    fs::write(dir.0.join("zz.held"), b"not a hash").expect("stray");

    let reopened = FileStore::open(&dir.0).expect("opened");
    assert!(reopened.held(&hash).is_some_and(GroupSet::is_full));
    assert_eq!(reopened.outboard(&hash), Some(&Outboard::compute(&data)));
    assert!(reopened.held(&other).is_none());
    assert_eq!(reopened.open_report().blobs_dropped, 1);
}

#[test]
fn groups_still_queued_are_served_and_a_whole_blob_is_on_disk_when_its_last_group_returns() {
    let dir = Dir::new("behind");
    let data = blob(700 * GROUP_LEN as usize + 9);
    let mut store = FileStore::open(&dir.0).expect("opened");
    let hash = fetch_into(&mut store, &data, 0..600);
    // Whatever the thread has written by now, every group reads back.
    for group in 0..600 {
        assert_eq!(store.read_group(&hash, group), Some(group_of(&data, group)));
    }
    fetch_into(&mut store, &data, 600..701);
    assert!(store.held(&hash).is_some_and(GroupSet::is_full));
    // Without dropping the store: the file and the map are written.
    assert_eq!(
        fs::read(FileStore::data_path(&dir.0, &hash)).expect("data"),
        data
    );
    let reopened = FileStore::open(&dir.0).expect("opened");
    assert!(reopened.held(&hash).is_some_and(GroupSet::is_full));
    assert_eq!(reopened.open_report().trusted, 1);
}

#[test]
fn a_group_whose_write_fails_is_not_held_in_memory_or_in_the_saved_map() {
    let dir = Dir::new("write-fails");
    let data = blob(300 * GROUP_LEN as usize);
    let mut store = FileStore::open(&dir.0).expect("opened");
    let hash = fetch_into(&mut store, &data, 0..10);
    // The data file swapped for a read-only handle: every write fails.
    let path = FileStore::data_path(&dir.0, &hash);
    let good = std::mem::replace(
        &mut store.blobs.get_mut(&hash).expect("created").data,
        Arc::new(File::open(&path).expect("read-only")),
    );
    fetch_into(&mut store, &data, 10..11);
    store.blobs.get_mut(&hash).expect("created").data = good;
    fetch_into(&mut store, &data, 11..300);
    // The failure is learned at a later write (at the latest when the
    // blob would be whole): the group is not held, the blob not whole.
    let held = store.held(&hash).expect("created");
    assert_eq!(held.count(), 299);
    assert!(!held.contains(10));
    assert_eq!(store.read_group(&hash, 10), None);
    drop(store);
    let reopened = FileStore::open(&dir.0).expect("opened");
    let held = reopened.held(&hash).expect("loaded");
    assert!(
        !held.contains(10),
        "the saved map leaves the failed group out"
    );
    assert_eq!(
        held.count(),
        255,
        "the save at 256 groups written, less group 10"
    );
}

/// A blob larger than the disk's free room is refused when it is created,
/// not part way through its fetch. Needs root to mount a small tmpfs;
/// skipped with a message otherwise.
#[cfg(target_os = "linux")]
#[test]
fn a_blob_the_disk_has_no_room_for_is_refused_at_once() {
    let dir = Dir::new("full");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "ringmesh-test"])
        .arg(&dir.0)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a 1 MiB tmpfs needs root");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        let mut store = FileStore::open(&dir.0).expect("open");
        let outboard = Outboard::empty(BlobHash([7; 32]), 4 << 20).expect("len");
        let refused = store.create(outboard);
        // A blob that fits is still taken.
        let small = blob(100_000);
        let hash = fetch_into(&mut store, &small, 0..Outboard::compute(&small).groups());
        (refused, store.held(&hash).map(GroupSet::is_full))
    });
    let _ = std::process::Command::new("umount").arg(&dir.0).status();
    let (refused, small_whole) = result.expect("no panic");
    assert_eq!(refused, Err(StoreError::Failed));
    assert_eq!(small_whole, Some(true));
}
