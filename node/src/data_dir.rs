//! The data directory: the identity key and the peer cache.
//!
//! - `identity.key`: the 32 secret bytes of the node's Ed25519 identity
//!   ([`Identity::secret_bytes`]), created from OS randomness on first run,
//!   readable by the owner only.
//! - `peers.json`: the peer cache ([`Node::peer_cache`]) as a JSON list
//!   of `{"id": "<32 hex digits>", "addrs": ["127.0.0.1:4000"], "tried":
//!   true}`, tried entries (peers this node dialled and authenticated)
//!   first, fed back with `PeersCommand::RestorePeers` at the next start
//!   (at most [`MAX_SAVED_PEERS`] entries are read, tried ones first; a
//!   file without `tried` loads as all new).
//!
//! Both are written atomically (a temporary file, synced, then renamed over
//! the old one), so a crash leaves either the old file or the new one,
//! never half of one: a torn key file would silently give the node a new
//! identity.
//!
//! [`Node::peer_cache`]: ringmesh::Node::peer_cache

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ringmesh::wire::MAX_LISTEN_ADDRS;
use ringmesh::{Identity, KnownPeer, NodeId};
use serde::{Deserialize, Serialize};
use tracing::warn;

const IDENTITY_FILE: &str = "identity.key";
const PEER_CACHE_FILE: &str = "peers.json";

/// `n` bytes from the operating system's random source.
pub(crate) fn os_random<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    Ok(bytes)
}

/// A node's data directory.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    path: PathBuf,
}

/// Entries read back from `peers.json`, tried ones first: a file grown
/// or written by someone else cannot make the node hold more than this.
pub(crate) const MAX_SAVED_PEERS: usize = 4096;

/// One peer-cache entry as stored in `peers.json`.
#[derive(Debug, Serialize, Deserialize)]
struct CachedPeer {
    id: String,
    addrs: Vec<SocketAddr>,
    /// Dialled and authenticated by this node (the tried table). Absent in
    /// files written before the tables existed: those load as new.
    #[serde(default)]
    tried: bool,
}

impl DataDir {
    /// Opens `path`, creating it (owner-only on unix) if it is missing.
    pub(crate) fn open(path: &Path) -> io::Result<DataDir> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(path)
            .map_err(|e| annotate(e, "cannot create data directory", path))?;
        Ok(DataDir {
            path: path.to_owned(),
        })
    }

    /// The identity stored here, or a new one from OS randomness (stored
    /// before it is returned, so the node never runs under an id it would
    /// lose). A key file of the wrong size is an error, never overwritten.
    pub(crate) fn load_or_create_identity(&self) -> io::Result<Identity> {
        let path = self.path.join(IDENTITY_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: an identity key is 32 bytes, this file has {}; \
                             move it away to start with a new identity",
                            path.display(),
                            bytes.len()
                        ),
                    )
                })?;
                warn_if_readable_by_others(&path);
                Ok(Identity::from_secret_bytes(secret))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let secret = os_random::<32>()?;
                write_atomically(&path, &secret)
                    .map_err(|e| annotate(e, "cannot write identity key", &path))?;
                Ok(Identity::from_secret_bytes(secret))
            }
            Err(e) => Err(annotate(e, "cannot read identity key", &path)),
        }
    }

    /// The saved peer cache; empty if there is none. A malformed file or
    /// entry is logged and skipped: the cache is a hint, and the node can
    /// still join through `--bootstrap`.
    pub(crate) fn read_peer_cache(&self) -> Vec<KnownPeer> {
        let path = self.path.join(PEER_CACHE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot read the peer cache; starting without it");
                return Vec::new();
            }
        };
        let cached: Vec<CachedPeer> = match serde_json::from_str(&text) {
            Ok(cached) => cached,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "malformed peer cache; starting without it");
                return Vec::new();
            }
        };
        let mut peers: Vec<KnownPeer> = cached
            .into_iter()
            .filter_map(|peer| match peer.id.parse::<NodeId>() {
                Ok(id) if !peer.addrs.is_empty() => Some(KnownPeer {
                    id,
                    addrs: peer.addrs.into_iter().take(MAX_LISTEN_ADDRS).collect(),
                    tried: peer.tried,
                }),
                Ok(_) => None,
                Err(e) => {
                    warn!(error = %e, "skipping a peer-cache entry");
                    None
                }
            })
            .collect();
        // Tried first (stable: the file's order within each part).
        peers.sort_by_key(|p| !p.tried);
        if peers.len() > MAX_SAVED_PEERS {
            warn!(
                entries = peers.len(),
                kept = MAX_SAVED_PEERS,
                "peer cache longer than any node writes; the rest is ignored"
            );
            peers.truncate(MAX_SAVED_PEERS);
        }
        peers
    }

    /// Replaces the saved peer cache with `peers`.
    pub(crate) fn write_peer_cache(&self, peers: &[KnownPeer]) -> io::Result<()> {
        let mut cached: Vec<CachedPeer> = peers
            .iter()
            .map(|p| CachedPeer {
                id: p.id.to_string(),
                addrs: p.addrs.to_vec(),
                tried: p.tried,
            })
            .collect();
        cached.sort_by_key(|p| !p.tried);
        cached.truncate(MAX_SAVED_PEERS);
        let mut json = serde_json::to_vec_pretty(&cached).map_err(io::Error::other)?;
        json.push(b'\n');
        let path = self.path.join(PEER_CACHE_FILE);
        write_atomically(&path, &json).map_err(|e| annotate(e, "cannot write peer cache", &path))
    }
}

/// Writes `bytes` to `path` so that readers (and a crash) see either the
/// old file or the whole new one. The file is owner-only on unix.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    // A stale temporary from a crash may have other permissions; the mode
    // below only applies to a file this call creates.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    // Make the rename itself durable. Directories cannot be opened for
    // syncing on every platform; the write is still atomic without it.
    if let Some(dir) = path.parent()
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "identity key is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let nonce = u64::from_le_bytes(os_random().expect("randomness"));
            let path = std::env::temp_dir().join(format!("ringmesh-node-{name}-{nonce:016x}"));
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn identity_is_created_once_and_then_reloaded() {
        let tmp = TempDir::new("identity");
        let dir = DataDir::open(&tmp.0.join("nested")).expect("open");
        let first = dir.load_or_create_identity().expect("create");
        let again = dir.load_or_create_identity().expect("load");
        assert_eq!(first.node_id(), again.node_id());
        let stored = fs::read(tmp.0.join("nested").join(IDENTITY_FILE)).expect("key file");
        assert_eq!(stored, first.secret_bytes());
        assert!(!tmp.0.join("nested").join("identity.key.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(tmp.0.join("nested").join(IDENTITY_FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn identity_file_of_the_wrong_size_is_refused_and_kept() {
        let tmp = TempDir::new("badkey");
        let dir = DataDir::open(&tmp.0).expect("open");
        fs::write(tmp.0.join(IDENTITY_FILE), b"short").expect("write");
        let err = dir.load_or_create_identity().expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read(tmp.0.join(IDENTITY_FILE)).expect("kept"), b"short");
    }

    #[test]
    fn peer_cache_round_trips_and_skips_bad_entries() {
        let tmp = TempDir::new("peers");
        let dir = DataDir::open(&tmp.0).expect("open");
        assert!(dir.read_peer_cache().is_empty());
        let peers = vec![
            KnownPeer {
                id: NodeId::from_u128(7),
                addrs: ["127.0.0.1:4000".parse().expect("addr")]
                    .into_iter()
                    .collect(),
                tried: true,
            },
            KnownPeer {
                id: NodeId::from_u128(u128::MAX),
                addrs: [
                    "[::1]:4001".parse().expect("addr"),
                    "10.0.0.1:9".parse().expect("addr"),
                ]
                .into_iter()
                .collect(),
                tried: false,
            },
        ];
        dir.write_peer_cache(&peers).expect("write");
        assert_eq!(dir.read_peer_cache(), peers);

        fs::write(
            tmp.0.join(PEER_CACHE_FILE),
            r#"[{"id": "nothex", "addrs": ["127.0.0.1:1"]},
                {"id": "0000000000000000000000000000000a", "addrs": []},
                {"id": "0000000000000000000000000000000b", "addrs": ["127.0.0.1:2"]}]"#,
        )
        .expect("write");
        let read = dir.read_peer_cache();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].id, NodeId::from_u128(0xb));
        assert!(!read[0].tried, "a file without `tried` loads as new");

        // Tried entries come back first, and the file is read only so far.
        let mut many: Vec<KnownPeer> = (0..MAX_SAVED_PEERS as u128 + 10)
            .map(|n| KnownPeer {
                id: NodeId::from_u128(n + 1),
                addrs: ["127.0.0.1:9".parse().expect("addr")].into_iter().collect(),
                tried: false,
            })
            .collect();
        many.push(KnownPeer {
            id: NodeId::from_u128(u128::MAX),
            addrs: ["127.0.0.2:9".parse().expect("addr")].into_iter().collect(),
            tried: true,
        });
        dir.write_peer_cache(&many).expect("write");
        let read = dir.read_peer_cache();
        assert_eq!(read.len(), MAX_SAVED_PEERS);
        assert!(read[0].tried && read[0].id == NodeId::from_u128(u128::MAX));

        fs::write(tmp.0.join(PEER_CACHE_FILE), "{ not json").expect("write");
        assert!(dir.read_peer_cache().is_empty());
    }
}
