//! The data directory: the identity key, the peer cache, the ring marker
//! and the lock.
//!
//! - `lock`: held (an OS file lock: `flock` on unix) for as long as the
//!   process runs, so a second process on the same directory exits with an
//!   error instead of running under the same id. The OS releases it when
//!   the process dies, however it dies: there is no stale lock to remove.
//!   The file holds the holder's process id, for the error message.
//! - `identity.key`: the node's Ed25519 identity, created from OS
//!   randomness on first run, readable by the owner only. Format (88
//!   bytes): `RMSHKEY`, a version byte (1), the 32 secret bytes
//!   ([`Identity::secret_bytes`]), the 16-byte node id they give, and the
//!   BLAKE3 hash of those 56 bytes. A flipped bit fails the checksum (or
//!   the id check) and the node refuses to start: it never runs silently
//!   under another id. A file of exactly 32 bytes (the format before the
//!   checksum) is loaded and rewritten in the new one.
//! - `peers.json`: the peer cache ([`Node::peer_cache`]) as a JSON list
//!   of `{"id": "<32 hex digits>", "addrs": ["127.0.0.1:4000"], "tried":
//!   true}`, tried entries (peers this node dialled and authenticated)
//!   first, fed back with `PeersCommand::RestorePeers` at the next start
//!   (at most [`MAX_SAVED_PEERS`] entries are read, tried ones first; a
//!   file without `tried` loads as all new). Each save first moves
//!   a readable `peers.json` to `peers.json.bak`, so the last good copy
//!   survives a file that is later truncated or garbled; a start that finds
//!   `peers.json` unreadable moves it to `peers.json.corrupt` (for the
//!   operator to look at), says so on the console, and uses the backup.
//! - `ring`: written once this node has founded or joined a ring. A node
//!   whose peer cache is lost (missing, or unreadable with no usable
//!   backup) but that has this marker does not found a ring of its own
//!   (that would split the table): it waits for ring peers, unless started
//!   with `--create-ring`.
//!
//! Everything is written atomically (a temporary file, synced, then
//! renamed over the old one), so a crash leaves either the old file or the
//! new one, never half of one.
//!
//! [`Node::peer_cache`]: ringmesh::Node::peer_cache

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringmesh::wire::MAX_LISTEN_ADDRS;
use ringmesh::{Identity, KnownPeer, NodeId};
use serde::{Deserialize, Serialize};
use tracing::warn;

const IDENTITY_FILE: &str = "identity.key";
const PEER_CACHE_FILE: &str = "peers.json";
/// The last readable `peers.json`, moved aside by each save.
const PEER_CACHE_BACKUP: &str = "peers.json.bak";
/// An unreadable `peers.json`, moved aside at start for the operator.
const PEER_CACHE_CORRUPT: &str = "peers.json.corrupt";
/// Present once this node has been a ring member.
const RING_MARKER: &str = "ring";
/// Locked while a process uses the directory.
const LOCK_FILE: &str = "lock";

/// `identity.key`'s first bytes: what the file is, then its format version.
const KEY_MAGIC: &[u8; 7] = b"RMSHKEY";
const KEY_VERSION: u8 = 1;
/// Magic, version, secret, node id, then the BLAKE3 hash of all that.
const KEY_FILE_LEN: usize = KEY_MAGIC.len() + 1 + 32 + 16 + 32;
/// The key file before the checksummed format: the bare secret.
const LEGACY_KEY_LEN: usize = 32;

/// `n` bytes from the operating system's random source.
pub(crate) fn os_random<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    Ok(bytes)
}

/// A new identity from OS randomness whose id meets the static id puzzle
/// of `puzzle_bits` bits (spec/chord.md §6.5; 0: any id). Grinding takes
/// about 2^`puzzle_bits` key derivations: instant at 8 bits, seconds at 16,
/// minutes at 24.
pub(crate) fn new_identity(puzzle_bits: u8) -> io::Result<Identity> {
    if puzzle_bits == 0 {
        return Ok(Identity::from_secret_bytes(os_random::<32>()?));
    }
    ringmesh::grind_identity(puzzle_bits, &os_random::<32>()?, u64::MAX, |_| true)
        .ok_or_else(|| io::Error::other("no identity meets the id puzzle"))
}

/// A node's data directory, locked for this process while any clone of
/// it lives.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    path: PathBuf,
    /// The locked `lock` file: the lock goes with the last clone (or the
    /// process).
    _lock: Arc<File>,
}

/// How the identity was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyOrigin {
    /// Read from `identity.key` (checksum and id verified).
    Loaded,
    /// None was stored: a new one, now stored.
    Created,
    /// An old 32-byte key file, rewritten in the checksummed format.
    Upgraded,
    /// An old 32-byte key file that could not be rewritten (e.g. a
    /// read-only data dir): the id is the same, the file stays as it was.
    NotUpgraded(String),
}

/// What a start found of the peer cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CacheState {
    /// Neither `peers.json` nor a backup: a node's first start (or one
    /// whose cache was deleted).
    Missing,
    /// `peers.json` read.
    Loaded,
    /// `peers.json` was missing or unreadable (`problem`), and the last good
    /// copy, `peers.json.bak`, was used.
    Restored { problem: String },
    /// `peers.json` was unreadable (`problem`) and there was no usable
    /// backup: the node starts without its cache.
    Lost { problem: String },
}

/// The peer cache as read at start.
#[derive(Debug)]
pub(crate) struct CacheRead {
    pub(crate) peers: Vec<KnownPeer>,
    pub(crate) state: CacheState,
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
        let lock = lock(path)?;
        Ok(DataDir {
            path: path.to_owned(),
            _lock: Arc::new(lock),
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The identity stored here, or a new one from OS randomness (stored
    /// before it is returned, so the node never runs under an id it would
    /// lose). A key file that is corrupted (checksum, id) or of an unknown
    /// format is an error, never overwritten: the node must not run under
    /// another id than the one its peers know. A new identity meets the id
    /// puzzle of `puzzle_bits` bits; a stored one that does not is an error
    /// (the ring would refuse it).
    pub(crate) fn load_or_create_identity(
        &self,
        puzzle_bits: u8,
    ) -> io::Result<(Identity, KeyOrigin)> {
        let (identity, origin) = self.load_or_create_identity_any(puzzle_bits)?;
        if !ringmesh::meets_id_puzzle(identity.node_id(), puzzle_bits) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the identity in {} ({}) does not meet --id-puzzle-bits {puzzle_bits}: \
                     ring members would refuse it (run without the flag, or move the file \
                     away to create an identity that meets it)",
                    self.path.join(IDENTITY_FILE).display(),
                    identity.node_id()
                ),
            ));
        }
        Ok((identity, origin))
    }

    fn load_or_create_identity_any(&self, puzzle_bits: u8) -> io::Result<(Identity, KeyOrigin)> {
        let path = self.path.join(IDENTITY_FILE);
        match fs::read(&path) {
            Ok(bytes) if bytes.len() == LEGACY_KEY_LEN => {
                let mut secret = [0; 32];
                secret.copy_from_slice(&bytes);
                warn_if_readable_by_others(&path);
                let identity = Identity::from_secret_bytes(secret);
                let origin = match write_atomically(&path, &encode_key(&identity)) {
                    Ok(()) => KeyOrigin::Upgraded,
                    Err(e) => KeyOrigin::NotUpgraded(e.to_string()),
                };
                Ok((identity, origin))
            }
            Ok(bytes) => {
                let identity = decode_key(&bytes).map_err(|problem| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: {problem}; refusing to start under another identity \
                             (restore the file from a backup, or move it away to start \
                             with a new identity)",
                            path.display()
                        ),
                    )
                })?;
                warn_if_readable_by_others(&path);
                Ok((identity, KeyOrigin::Loaded))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = new_identity(puzzle_bits)?;
                write_atomically(&path, &encode_key(&identity))
                    .map_err(|e| annotate(e, "cannot write identity key", &path))?;
                Ok((identity, KeyOrigin::Created))
            }
            Err(e) => Err(annotate(e, "cannot read identity key", &path)),
        }
    }

    /// Whether this node has founded or joined a ring (the `ring` marker).
    pub(crate) fn was_ring_member(&self) -> bool {
        self.path.join(RING_MARKER).exists()
    }

    /// Records that this node is a ring member (once; later calls do
    /// nothing).
    pub(crate) fn mark_ring_member(&self) -> io::Result<()> {
        let path = self.path.join(RING_MARKER);
        if path.exists() {
            return Ok(());
        }
        write_atomically(
            &path,
            b"This node has been a member of a ring. If its peer cache is lost it waits\n\
              for ring peers instead of founding a ring of its own (see --create-ring).\n",
        )
        .map_err(|e| annotate(e, "cannot write the ring marker", &path))
    }

    /// The saved peer cache, and what became of it. An unreadable
    /// `peers.json` is moved to `peers.json.corrupt` and the last good copy
    /// (`peers.json.bak`) is used instead, if it reads.
    pub(crate) fn read_peer_cache(&self) -> CacheRead {
        let path = self.path.join(PEER_CACHE_FILE);
        let problem = match read_cache_file(&path) {
            Ok(Some(peers)) => {
                return CacheRead {
                    peers,
                    state: CacheState::Loaded,
                };
            }
            Ok(None) => "missing".to_owned(),
            Err(e) => {
                let mut problem = e.to_string();
                // Keep it for the operator, out of the way of the next save
                // (which would otherwise back it up over the good copy).
                let aside = self.path.join(PEER_CACHE_CORRUPT);
                match fs::rename(&path, &aside) {
                    Ok(()) => problem.push_str(&format!("; moved to {}", aside.display())),
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "cannot move the unreadable peer cache aside")
                    }
                }
                problem
            }
        };
        let backup = self.path.join(PEER_CACHE_BACKUP);
        match read_cache_file(&backup) {
            Ok(Some(peers)) => CacheRead {
                peers,
                state: CacheState::Restored { problem },
            },
            Ok(None) if problem == "missing" => CacheRead {
                peers: Vec::new(),
                state: CacheState::Missing,
            },
            Ok(None) => CacheRead {
                peers: Vec::new(),
                state: CacheState::Lost { problem },
            },
            Err(e) => CacheRead {
                peers: Vec::new(),
                state: CacheState::Lost {
                    problem: format!("{problem}; and its backup: {e}"),
                },
            },
        }
    }

    /// Replaces the saved peer cache with `peers`. A readable `peers.json`
    /// becomes `peers.json.bak` first: the last good copy.
    pub(crate) fn write_peer_cache(&self, peers: &[KnownPeer]) -> io::Result<()> {
        let path = self.path.join(PEER_CACHE_FILE);
        if is_json_list(&path) {
            let backup = self.path.join(PEER_CACHE_BACKUP);
            fs::rename(&path, &backup)
                .map_err(|e| annotate(e, "cannot back up the peer cache to", &backup))?;
        }
        write_entries(&path, peers)
    }
}

/// The peer cache in `path`: `None` if there is no such file. A malformed
/// entry is logged and skipped (the cache is a hint); a file that is not a
/// JSON list of entries (truncated, garbage) is an error.
fn read_cache_file(path: &Path) -> io::Result<Option<Vec<KnownPeer>>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(annotate(e, "cannot read", path)),
    };
    let cached: Vec<CachedPeer> = serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a peer list ({e})", path.display()),
        )
    })?;
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
    Ok(Some(peers))
}

/// Whether `path` holds a JSON list (a readable peer cache, worth keeping
/// as the last good copy).
fn is_json_list(path: &Path) -> bool {
    fs::read(path)
        .is_ok_and(|text| serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&text).is_ok())
}

/// Writes `peers` to `path` as the peer cache.
fn write_entries(path: &Path, peers: &[KnownPeer]) -> io::Result<()> {
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
    write_atomically(path, &json).map_err(|e| annotate(e, "cannot write peer cache", path))
}

/// Takes the directory's lock, or says who holds it.
fn lock(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE);
    // Not truncated before the lock is ours: it names the holder. A
    // read-only directory that already has the file can still be locked
    // (flock needs no write access).
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
        .map_err(|e| annotate(e, "cannot open the lock file", &path))?;
    // Explicitly fs4's: std's inherent `File::try_lock` needs Rust 1.89.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {
            // Best effort: the holder's pid is only for the message.
            let _ = file
                .set_len(0)
                .and_then(|()| writeln!(file, "{}", std::process::id()))
                .and_then(|()| file.flush());
            Ok(file)
        }
        Err(fs4::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.rewind().and_then(|_| file.read_to_string(&mut holder));
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!(" (process {pid})"),
                Err(_) => String::new(),
            };
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "data directory {} is in use by another ringmesh process{holder}; \
                     two processes on one directory would run under the same id. \
                     Stop the other one, or give this one another --data-dir",
                    dir.display()
                ),
            ))
        }
        Err(fs4::TryLockError::Error(e)) => Err(annotate(e, "cannot lock", &path)),
    }
}

/// `identity`'s key file: magic, version, secret, node id, checksum.
fn encode_key(identity: &Identity) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(KEY_FILE_LEN);
    bytes.extend_from_slice(KEY_MAGIC);
    bytes.push(KEY_VERSION);
    bytes.extend_from_slice(&identity.secret_bytes());
    bytes.extend_from_slice(&identity.node_id().to_bytes());
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    bytes
}

/// The identity in a key file, if its format, checksum and id all hold.
fn decode_key(bytes: &[u8]) -> Result<Identity, String> {
    if bytes.len() < KEY_MAGIC.len() + 1 || &bytes[..KEY_MAGIC.len()] != KEY_MAGIC {
        return Err(format!(
            "not an identity key ({} bytes; a key file is {KEY_FILE_LEN} bytes starting \
             with RMSHKEY, or 32 bytes in the old format)",
            bytes.len()
        ));
    }
    let version = bytes[KEY_MAGIC.len()];
    if version != KEY_VERSION {
        return Err(format!(
            "identity key format version {version}; this program reads version {KEY_VERSION}"
        ));
    }
    if bytes.len() != KEY_FILE_LEN {
        return Err(format!(
            "identity key is {} bytes, not {KEY_FILE_LEN}: truncated or corrupted",
            bytes.len()
        ));
    }
    let (body, checksum) = bytes.split_at(KEY_FILE_LEN - 32);
    if blake3::hash(body).as_bytes() != checksum {
        return Err("identity key is corrupted (its checksum does not match)".to_owned());
    }
    let at = KEY_MAGIC.len() + 1;
    let mut secret = [0; 32];
    secret.copy_from_slice(&body[at..at + 32]);
    let identity = Identity::from_secret_bytes(secret);
    if identity.node_id().to_bytes()[..] != body[at + 32..] {
        return Err("identity key is corrupted (the stored id is not the key's)".to_owned());
    }
    Ok(identity)
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
        let (first, origin) = dir.load_or_create_identity(0).expect("create");
        assert_eq!(origin, KeyOrigin::Created);
        let (again, origin) = dir.load_or_create_identity(0).expect("load");
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(first.node_id(), again.node_id());
        let stored = fs::read(tmp.0.join("nested").join(IDENTITY_FILE)).expect("key file");
        assert_eq!(stored.len(), KEY_FILE_LEN);
        assert_eq!(&stored[..8], b"RMSHKEY\x01");
        assert_eq!(stored[8..40], first.secret_bytes());
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
    fn identity_file_of_an_unknown_format_is_refused_and_kept() {
        let tmp = TempDir::new("badkey");
        let dir = DataDir::open(&tmp.0).expect("open");
        fs::write(tmp.0.join(IDENTITY_FILE), b"short").expect("write");
        let err = dir.load_or_create_identity(0).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("not an identity key"), "{err}");
        assert_eq!(fs::read(tmp.0.join(IDENTITY_FILE)).expect("kept"), b"short");
    }

    #[test]
    fn every_flipped_bit_of_the_key_file_is_refused() {
        let tmp = TempDir::new("flipped");
        let dir = DataDir::open(&tmp.0).expect("open");
        dir.load_or_create_identity(0).expect("create");
        let path = tmp.0.join(IDENTITY_FILE);
        let good = fs::read(&path).expect("key");
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            fs::write(&path, &bad).expect("write");
            let err = dir.load_or_create_identity(0).expect_err("a flipped bit");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "bit {bit}");
            assert_eq!(fs::read(&path).expect("kept"), bad, "bit {bit}");
        }
        // Cut short, it is refused too.
        fs::write(&path, &good[..KEY_FILE_LEN - 1]).expect("write");
        let err = dir.load_or_create_identity(0).expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn an_old_32_byte_key_keeps_its_id_and_is_rewritten_with_a_checksum() {
        let tmp = TempDir::new("oldkey");
        let dir = DataDir::open(&tmp.0).expect("open");
        let old = Identity::from_secret_bytes([7; 32]);
        fs::write(tmp.0.join(IDENTITY_FILE), old.secret_bytes()).expect("write");
        let (loaded, origin) = dir.load_or_create_identity(0).expect("load");
        assert_eq!(origin, KeyOrigin::Upgraded);
        assert_eq!(loaded.node_id(), old.node_id());
        let (again, origin) = dir.load_or_create_identity(0).expect("reload");
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(again.node_id(), old.node_id());
    }

    #[test]
    fn a_second_open_of_a_locked_dir_fails_and_names_the_holder() {
        let tmp = TempDir::new("lock");
        let first = DataDir::open(&tmp.0).expect("open");
        let err = DataDir::open(&tmp.0).expect_err("locked");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let text = err.to_string();
        assert!(
            text.contains("in use by another ringmesh process"),
            "{text}"
        );
        assert!(
            text.contains(&format!("(process {})", std::process::id())),
            "{text}"
        );
        drop(first);
        DataDir::open(&tmp.0).expect("free again");
    }

    fn two_peers() -> Vec<KnownPeer> {
        vec![
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
        ]
    }

    #[test]
    fn peer_cache_round_trips_and_skips_bad_entries() {
        let tmp = TempDir::new("peers");
        let dir = DataDir::open(&tmp.0).expect("open");
        let read = dir.read_peer_cache();
        assert!(read.peers.is_empty());
        assert_eq!(read.state, CacheState::Missing);
        let peers = two_peers();
        dir.write_peer_cache(&peers).expect("write");
        let read = dir.read_peer_cache();
        assert_eq!(read.peers, peers);
        assert_eq!(read.state, CacheState::Loaded);

        fs::write(
            tmp.0.join(PEER_CACHE_FILE),
            r#"[{"id": "nothex", "addrs": ["127.0.0.1:1"]},
                {"id": "0000000000000000000000000000000a", "addrs": []},
                {"id": "0000000000000000000000000000000b", "addrs": ["127.0.0.1:2"]}]"#,
        )
        .expect("write");
        let read = dir.read_peer_cache();
        assert_eq!(read.peers.len(), 1);
        assert_eq!(read.peers[0].id, NodeId::from_u128(0xb));
        assert!(!read.peers[0].tried, "a file without `tried` loads as new");

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
        assert_eq!(read.peers.len(), MAX_SAVED_PEERS);
        assert!(read.peers[0].tried && read.peers[0].id == NodeId::from_u128(u128::MAX));
    }

    #[test]
    fn a_truncated_peer_cache_is_set_aside_and_the_last_good_copy_used() {
        let tmp = TempDir::new("truncated");
        let dir = DataDir::open(&tmp.0).expect("open");
        let peers = two_peers();
        dir.write_peer_cache(&peers[..1]).expect("first save");
        // The second save keeps the first as the last good copy.
        dir.write_peer_cache(&peers).expect("second save");
        let path = tmp.0.join(PEER_CACHE_FILE);
        let full = fs::read(&path).expect("cache");
        fs::write(&path, &full[..full.len() / 2]).expect("truncate");

        let read = dir.read_peer_cache();
        assert_eq!(read.peers, peers[..1]);
        let CacheState::Restored { problem } = &read.state else {
            panic!("{:?}", read.state);
        };
        assert!(problem.contains("is not a peer list"), "{problem}");
        assert_eq!(
            fs::read(tmp.0.join(PEER_CACHE_CORRUPT)).expect("set aside"),
            full[..full.len() / 2]
        );
        // The next save must not back up garbage over the good copy.
        fs::write(&path, "{ not json").expect("garbage");
        dir.write_peer_cache(&peers).expect("save");
        assert_eq!(
            read_cache_file(&tmp.0.join(PEER_CACHE_BACKUP))
                .expect("backup")
                .expect("there"),
            peers[..1]
        );
    }

    #[test]
    fn garbage_without_a_backup_is_a_lost_cache() {
        let tmp = TempDir::new("garbage");
        let dir = DataDir::open(&tmp.0).expect("open");
        fs::write(tmp.0.join(PEER_CACHE_FILE), "\u{0}\u{1}garbage").expect("write");
        let read = dir.read_peer_cache();
        assert!(read.peers.is_empty());
        assert!(
            matches!(read.state, CacheState::Lost { .. }),
            "{:?}",
            read.state
        );
        assert!(!dir.was_ring_member());
        dir.mark_ring_member().expect("mark");
        dir.mark_ring_member().expect("again");
        assert!(dir.was_ring_member());
    }
}
