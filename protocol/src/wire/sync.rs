//! Codecs of the sync-table messages (`0x70`–`0x72`). `spec/sync.md` §8
//! gives each layout, §1.1 the signed entry.

use bytes::{BufMut, Bytes, BytesMut};

use super::{DecodeError, Reader, WireMessage, put_varint};
use crate::{Identity, NodeId, PublicKey};

/// Longest sync key, in bytes (keys are 1..=256 bytes).
pub const MAX_SYNC_KEY: usize = 256;
/// Longest sync value the wire carries, in bytes: 1 MiB (a node's own cap,
/// `SyncConfig::max_value_len`, is usually smaller).
pub const MAX_SYNC_VALUE: usize = 1 << 20;
/// Most entries one `SyncPublish` may carry.
pub const MAX_SYNC_BATCH: usize = 64;
/// Most items one `SyncDigest` or `SyncPull` may carry.
pub const MAX_SYNC_RANGES: usize = 256;
/// The deepest range (`spec/sync.md` §5): 16 nibbles, the whole 64-bit
/// key hash.
pub const MAX_SYNC_DEPTH: u8 = 16;
/// The context string that starts every signed sync entry (spec/sync.md
/// §1.1), so no other signature can be replayed as one.
pub const SYNC_ENTRY_CONTEXT: &[u8] = b"ringmesh sync entry v1:";

fn out_of_range(field: &'static str, value: u64) -> DecodeError {
    DecodeError::OutOfRange { field, value }
}

/// The bytes a writer signs (spec/sync.md §1.1): [`SYNC_ENTRY_CONTEXT`] ‖
/// `key_len: u16` BE ‖ `key` ‖ `hlc: u64` BE ‖ `kind: u8` ‖ `value_len: u32`
/// BE (0 for a tombstone) ‖ `value`.
pub fn sync_signed_bytes(key: &[u8], hlc: u64, value: Option<&[u8]>) -> Vec<u8> {
    let bytes = value.unwrap_or_default();
    let mut out = Vec::with_capacity(SYNC_ENTRY_CONTEXT.len() + 15 + key.len() + bytes.len());
    out.extend_from_slice(SYNC_ENTRY_CONTEXT);
    // Keys are ≤ 256 bytes and values ≤ 1 MiB on the wire: both fit (a
    // longer one would only fail to verify).
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&hlc.to_be_bytes());
    out.push(u8::from(value.is_none()));
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// The 64-bit key hash that places `key` in the anti-entropy ranges
/// (spec/sync.md §5): the first 8 bytes of BLAKE3 of the key, big-endian.
pub fn sync_key_hash(key: &[u8]) -> u64 {
    let hash = blake3::hash(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// One signed write of one key (spec/sync.md §1). Layout:
/// `key_len: varint` (1..=256), `key`, `writer_key: [u8; 32]`,
/// `hlc: varint`, `kind: u8` (0 value, 1 tombstone), for kind 0
/// `value_len: varint` (≤ 1 MiB) and `value`, `signature: [u8; 64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    /// 1 to [`MAX_SYNC_KEY`] bytes.
    pub key: Bytes,
    /// The writer's id, BLAKE3 of `writer_key` (not on the wire: the
    /// decoder derives it).
    pub writer: NodeId,
    /// The writer's Ed25519 public key.
    pub writer_key: PublicKey,
    /// The hybrid-logical timestamp (microseconds since the UNIX epoch, in
    /// the writer's clock; spec/sync.md §2).
    pub hlc: u64,
    /// The value; `None` is a tombstone (a delete).
    pub value: Option<Bytes>,
    /// The writer's signature over [`sync_signed_bytes`].
    pub signature: [u8; 64],
}

impl SyncEntry {
    /// An entry signed by `identity`.
    pub fn signed(identity: &Identity, key: Bytes, hlc: u64, value: Option<Bytes>) -> Self {
        let signature = identity.sign(&sync_signed_bytes(&key, hlc, value.as_deref()));
        SyncEntry::with_signature(key, identity.public_key(), hlc, value, signature)
    }

    /// An entry from its parts; `writer` is derived from `writer_key`.
    pub fn with_signature(
        key: Bytes,
        writer_key: PublicKey,
        hlc: u64,
        value: Option<Bytes>,
        signature: [u8; 64],
    ) -> Self {
        SyncEntry {
            key,
            writer: writer_key.node_id(),
            writer_key,
            hlc,
            value,
            signature,
        }
    }

    /// The bytes the writer signed.
    pub fn signed_bytes(&self) -> Vec<u8> {
        sync_signed_bytes(&self.key, self.hlc, self.value.as_deref())
    }

    /// The wire `kind`: 0 a value, 1 a tombstone.
    pub fn kind(&self) -> u8 {
        u8::from(self.value.is_none())
    }

    /// The entry's fingerprint in range digests (spec/sync.md §5): the
    /// first 8 bytes of BLAKE3 of its signature, big-endian.
    pub fn fingerprint(&self) -> u64 {
        let hash = blake3::hash(&self.signature);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_be_bytes(first)
    }

    /// Its length on the wire.
    pub fn encoded_len(&self) -> usize {
        let value = self
            .value
            .as_ref()
            .map_or(0, |v| super::varint_len(v.len() as u64) + v.len());
        super::varint_len(self.key.len() as u64)
            + self.key.len()
            + 32
            + super::varint_len(self.hlc)
            + 1
            + value
            + 64
    }

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.key.len() as u64);
        out.put_slice(&self.key);
        out.put_slice(&self.writer_key.to_bytes());
        put_varint(out, self.hlc);
        out.put_u8(self.kind());
        if let Some(value) = &self.value {
            put_varint(out, value.len() as u64);
            out.put_slice(value);
        }
        out.put_slice(&self.signature);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let key_len = input.varint()?;
        if key_len == 0 || key_len > MAX_SYNC_KEY as u64 {
            return Err(out_of_range("key_len", key_len));
        }
        let key = input.bytes(key_len as usize)?;
        let writer_key = PublicKey::from_bytes(input.array()?);
        let hlc = input.varint()?;
        let value = match input.u8()? {
            0 => {
                let len = input.varint()?;
                if len > MAX_SYNC_VALUE as u64 {
                    return Err(out_of_range("value_len", len));
                }
                Some(input.bytes(len as usize)?)
            }
            1 => None,
            kind => return Err(out_of_range("kind", kind.into())),
        };
        let signature = input.array()?;
        Ok(SyncEntry::with_signature(
            key, writer_key, hlc, value, signature,
        ))
    }
}

/// A list `count` in 1..=`max`: over the cap is `TooMany` (checked before
/// any item is read), zero is `OutOfRange { field: "count" }`.
fn get_nonempty_count(input: &mut Reader, max: usize) -> Result<usize, DecodeError> {
    match input.list_len(max)? {
        0 => Err(out_of_range("count", 0)),
        count => Ok(count),
    }
}

/// `depth: u8` in 1..=16.
fn get_depth(input: &mut Reader) -> Result<u8, DecodeError> {
    match input.u8()? {
        depth @ 1..=MAX_SYNC_DEPTH => Ok(depth),
        depth => Err(out_of_range("depth", depth.into())),
    }
}

/// A range `prefix` at `depth`: a varint below 16^`depth`.
fn get_prefix(input: &mut Reader, depth: u8) -> Result<u64, DecodeError> {
    let prefix = input.varint()?;
    if u128::from(prefix) >= 1u128 << (4 * u32::from(depth)) {
        return Err(out_of_range("prefix", prefix));
    }
    Ok(prefix)
}

/// `0x70` — entries for the receiver to apply: a flooded write, or what
/// anti-entropy found the receiver may lack. Layout: `count: varint`
/// (1..=64), then `count` entries ([`SyncEntry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPublish {
    /// 1 to [`MAX_SYNC_BATCH`] entries.
    pub entries: Vec<SyncEntry>,
}

impl WireMessage for SyncPublish {
    const TAG: u8 = 0x70;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.entries.len() as u64);
        for entry in &self.entries {
            entry.encode(out);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let count = get_nonempty_count(input, MAX_SYNC_BATCH)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(SyncEntry::decode(input)?);
        }
        Ok(SyncPublish { entries })
    }
}

/// One range of a [`SyncDigest`]: its `prefix` at the message's depth, the
/// XOR of its winners' fingerprints and how many keys it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRange {
    /// Below 16^depth.
    pub prefix: u64,
    /// XOR of the fingerprints of the range's winners (0 if empty).
    pub digest: u64,
    /// Keys (winners, tombstones included) in the range.
    pub keys: u64,
}

/// `0x71` — the sender's digests of some ranges at one depth (anti-entropy,
/// spec/sync.md §5). Layout: `depth: u8` (1..=16), `count: varint`
/// (1..=256), then per item `prefix: varint` (< 16^depth),
/// `digest: [u8; 8]`, `keys: varint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDigest {
    /// 1 to [`MAX_SYNC_DEPTH`].
    pub depth: u8,
    /// 1 to [`MAX_SYNC_RANGES`] ranges.
    pub ranges: Vec<SyncRange>,
}

impl WireMessage for SyncDigest {
    const TAG: u8 = 0x71;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.depth);
        put_varint(out, self.ranges.len() as u64);
        for range in &self.ranges {
            put_varint(out, range.prefix);
            out.put_u64(range.digest);
            put_varint(out, range.keys);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let depth = get_depth(input)?;
        let count = get_nonempty_count(input, MAX_SYNC_RANGES)?;
        let mut ranges = Vec::with_capacity(count);
        for _ in 0..count {
            let prefix = get_prefix(input, depth)?;
            let digest = u64::from_be_bytes(input.array()?);
            let keys = input.varint()?;
            ranges.push(SyncRange {
                prefix,
                digest,
                keys,
            });
        }
        Ok(SyncDigest { depth, ranges })
    }
}

/// `0x72` — asks for the receiver's entries of some ranges at one depth.
/// Layout: `depth: u8` (1..=16), `count: varint` (1..=256), then `count` ×
/// `prefix: varint` (< 16^depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPull {
    /// 1 to [`MAX_SYNC_DEPTH`].
    pub depth: u8,
    /// 1 to [`MAX_SYNC_RANGES`] prefixes.
    pub prefixes: Vec<u64>,
}

impl WireMessage for SyncPull {
    const TAG: u8 = 0x72;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.depth);
        put_varint(out, self.prefixes.len() as u64);
        for &prefix in &self.prefixes {
            put_varint(out, prefix);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let depth = get_depth(input)?;
        let count = get_nonempty_count(input, MAX_SYNC_RANGES)?;
        let mut prefixes = Vec::with_capacity(count);
        for _ in 0..count {
            prefixes.push(get_prefix(input, depth)?);
        }
        Ok(SyncPull { depth, prefixes })
    }
}
