//! The handle's blob methods over real sockets: a file added on one node
//! (kept in a blob directory) is fetched by another (in memory) and saved.

use std::path::PathBuf;

use futures_lite::StreamExt;
use ringmesh::{BlobsConfig, BlobsEvent, Config, Event, Identity};
use ringmesh_async_std::{AdapterConfig, start};

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
    let dir = std::env::temp_dir().join(format!("ringmesh-async-blobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let data: Vec<u8> = (0..700_001u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect();
    let original = dir.join("original.bin");
    std::fs::write(&original, &data).expect("original");
    async_std::task::block_on(async {
        let (seeder, _seeder_events, seeder_driver) =
            start(config(41, Some(dir.join("seeder")))).expect("seeder starts");
        let (fetcher, mut events, fetcher_driver) = start(config(42, None)).expect("starts");
        let _tasks = (
            async_std::task::spawn(seeder_driver),
            async_std::task::spawn(fetcher_driver),
        );
        let hash = seeder.add_blob_file(&original).await.expect("added");
        assert_eq!(hash, ringmesh::blobs::BlobHash::of(&data));
        assert_eq!(seeder.blob_held(hash).await, Ok(Some((43, 43))));
        fetcher
            .connect(seeder.local_addr(), Some(seeder.node_id()))
            .await
            .expect("connected");
        fetcher
            .fetch_blob(hash, vec![seeder.node_id()])
            .await
            .expect("fetching");
        let done = async {
            let mut progress = 0;
            while let Some(event) = events.next().await {
                match event {
                    Event::Blobs(BlobsEvent::Progress { held, .. }) => progress = held,
                    Event::Blobs(BlobsEvent::Done { hash: done }) if done == hash => break,
                    _ => {}
                }
            }
            progress
        };
        let progress = async_std::future::timeout(std::time::Duration::from_secs(20), done)
            .await
            .expect("Done in time");
        assert_eq!(progress, 43, "progress reached every group");
        let copy = dir.join("copy.bin");
        fetcher.save_blob(hash, &copy).await.expect("saved");
        assert_eq!(std::fs::read(&copy).expect("copy"), data);
        let again = dir.join("again.bin");
        seeder.save_blob(hash, &again).await.expect("saved");
        assert_eq!(std::fs::read(&again).expect("again"), data);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
