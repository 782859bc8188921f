//! The handle's blob methods over real sockets: a file added on one node
//! (kept in a blob directory) is fetched by another (in memory) and saved.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringmesh::{BlobsConfig, BlobsEvent, Config, Event, Identity, PeersCommand};
use ringmesh_mio::{AdapterConfig, spawn};

fn config(i: u8, blob_dir: Option<PathBuf>) -> AdapterConfig {
    AdapterConfig {
        blob_dir,
        ..AdapterConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            Config {
                blobs: Some(BlobsConfig::default()),
                ..Config::lan()
            },
            Identity::from_secret_bytes([i; 32]),
            u64::from(i),
        )
    }
}

#[test]
fn a_file_added_through_a_handle_is_fetched_and_saved_through_another() {
    let dir = std::env::temp_dir().join(format!("ringmesh-mio-blobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let data: Vec<u8> = (0..1_000_003u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect();
    let original = dir.join("original.bin");
    std::fs::write(&original, &data).expect("original");

    let seeder = spawn(config(1, Some(dir.join("seeder")))).expect("seeder");
    let fetcher = spawn(config(2, None)).expect("fetcher");
    let hash = seeder.handle.add_blob_file(&original).expect("added");
    assert_eq!(hash, ringmesh::blobs::BlobHash::of(&data));
    assert_eq!(seeder.handle.blob_held(hash), Some((62, 62)));
    fetcher
        .handle
        .command(PeersCommand::Connect {
            addr: seeder.handle.local_addr(),
            peer: Some(seeder.handle.node_id()),
        })
        .expect("dial");
    fetcher
        .handle
        .fetch_blob(hash, vec![seeder.handle.node_id()])
        .expect("fetching");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut progress = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match fetcher.events.recv_timeout(left).expect("Done in time") {
            Event::Blobs(BlobsEvent::Progress { held, .. }) => progress = held,
            Event::Blobs(BlobsEvent::Done { hash: done }) if done == hash => break,
            _ => {}
        }
    }
    assert_eq!(progress, 62, "progress reached every group");
    let copy = dir.join("copy.bin");
    fetcher.handle.save_blob(hash, &copy).expect("saved");
    assert_eq!(std::fs::read(&copy).expect("copy"), data);
    // The seeder's copy comes out of its store's file.
    let again = dir.join("again.bin");
    seeder.handle.save_blob(hash, &again).expect("saved");
    assert_eq!(std::fs::read(&again).expect("again"), data);
    let missing = ringmesh::blobs::BlobHash([9; 32]);
    assert!(fetcher.handle.save_blob(missing, dir.join("none")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
