//! Codecs of the dht messages (`0x60`–`0x67`). `spec/chord.md` §10.6 gives
//! each layout, §10.1 the signed entry.

use bytes::{BufMut, Bytes, BytesMut};

use super::overlay::{get_node_id, put_node_id};
use super::{DecodeError, Reader, WireMessage, put_varint};
use crate::{Identity, NodeId, PublicKey};

/// Longest dht key name, in bytes (names are 1..=256 bytes).
pub const MAX_DHT_KEY: usize = 256;
/// Longest dht value, in bytes: 1 MiB.
pub const MAX_DHT_VALUE: usize = 1 << 20;
/// Most entries one `DhtReplicate` may carry.
pub const MAX_DHT_BATCH: usize = 64;
/// Most items one `DhtSync` may carry, and most indices in a `DhtSyncReply`.
pub const MAX_DHT_DIGEST: usize = 256;
/// Most an open key's version may rise in one accepted write above the
/// version a holder or coordinator holds (0 if none): 2^24. A version
/// jump to 2^64 − 1 is refused, so no write can pin an open key
/// (spec/chord.md §10.1).
pub const MAX_OPEN_VERSION_STEP: u64 = 1 << 24;
/// The context string that starts every signed dht entry (spec/chord.md
/// §10.1), so no other signature can be replayed as one.
pub const DHT_ENTRY_CONTEXT: &[u8] = b"ringmesh dht entry v1:";

fn out_of_range(field: &'static str, value: u64) -> DecodeError {
    DecodeError::OutOfRange { field, value }
}

/// `name_len: varint` (1..=256), then `name`.
fn put_name(out: &mut BytesMut, name: &[u8]) {
    put_varint(out, name.len() as u64);
    out.put_slice(name);
}

fn get_name(input: &mut Reader) -> Result<Bytes, DecodeError> {
    let len = input.varint()?;
    if len == 0 || len > MAX_DHT_KEY as u64 {
        return Err(out_of_range("key_len", len));
    }
    input.bytes(len as usize)
}

/// `value_len: varint` (≤ 1 MiB), then `value`.
fn put_value(out: &mut BytesMut, value: &[u8]) {
    put_varint(out, value.len() as u64);
    out.put_slice(value);
}

fn get_value(input: &mut Reader) -> Result<Bytes, DecodeError> {
    let len = input.varint()?;
    if len > MAX_DHT_VALUE as u64 {
        return Err(out_of_range("value_len", len));
    }
    input.bytes(len as usize)
}

/// An entry `version`: a varint ≥ 1.
fn get_version(input: &mut Reader) -> Result<u64, DecodeError> {
    match input.varint()? {
        0 => Err(out_of_range("version", 0)),
        version => Ok(version),
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

/// A table key (spec/chord.md §10.1): an *open* name anyone may write, or
/// an *owned* name that only its owner may write. Layout: `mode: u8`
/// (0 open, 1 owned), for owned `owner: [u8; 16]`, then
/// `key_len: varint` (1..=256) and the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DhtKey {
    /// `mode` 0: anyone may write it; every write is signed by its writer.
    Open(Bytes),
    /// `mode` 1: only the identity whose id is `owner` may write it.
    Owned {
        /// The owner's node id (BLAKE3 of its public key, spec/wire.md).
        owner: NodeId,
        /// 1 to [`MAX_DHT_KEY`] bytes.
        name: Bytes,
    },
}

impl DhtKey {
    /// The wire `mode`: 0 open, 1 owned.
    pub const fn mode(&self) -> u8 {
        match self {
            DhtKey::Open(_) => 0,
            DhtKey::Owned { .. } => 1,
        }
    }

    /// The name (1..=256 bytes on the wire).
    pub fn name(&self) -> &Bytes {
        match self {
            DhtKey::Open(name) | DhtKey::Owned { name, .. } => name,
        }
    }

    /// The owner of an owned key.
    pub const fn owner(&self) -> Option<NodeId> {
        match self {
            DhtKey::Open(_) => None,
            DhtKey::Owned { owner, .. } => Some(*owner),
        }
    }

    /// §10.1 kh: BLAKE3-256 of `mode ‖ owner (owned only) ‖ name`. The mode
    /// byte keeps an open name from ever addressing an owned key's slot.
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[self.mode()]);
        if let DhtKey::Owned { owner, .. } = self {
            hasher.update(&owner.to_bytes());
        }
        hasher.update(self.name());
        *hasher.finalize().as_bytes()
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.mode());
        if let DhtKey::Owned { owner, .. } = self {
            put_node_id(out, *owner);
        }
        put_name(out, self.name());
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        match input.u8()? {
            0 => Ok(DhtKey::Open(get_name(input)?)),
            1 => {
                let owner = get_node_id(input)?;
                let name = get_name(input)?;
                Ok(DhtKey::Owned { owner, name })
            }
            mode => Err(out_of_range("mode", mode.into())),
        }
    }
}

impl core::fmt::Display for DhtKey {
    /// `name` for an open key, `owner/name` for an owned one (names shown
    /// lossily as UTF-8).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = String::from_utf8_lossy(self.name());
        match self {
            DhtKey::Open(_) => write!(f, "{name}"),
            DhtKey::Owned { owner, .. } => write!(f, "{owner}/{name}"),
        }
    }
}

/// What an entry holds: its `kind` (0 value, 1 tombstone) and, for a value,
/// the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DhtValue {
    /// `kind` 0: a value of at most [`MAX_DHT_VALUE`] bytes (possibly empty).
    Value(Bytes),
    /// `kind` 1: the key was deleted.
    Tombstone,
}

impl DhtValue {
    /// The wire `kind`.
    pub const fn kind(&self) -> u8 {
        match self {
            DhtValue::Value(_) => 0,
            DhtValue::Tombstone => 1,
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.kind());
        if let DhtValue::Value(value) = self {
            put_value(out, value);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        match input.u8()? {
            0 => Ok(DhtValue::Value(get_value(input)?)),
            1 => Ok(DhtValue::Tombstone),
            kind => Err(out_of_range("kind", kind.into())),
        }
    }
}

/// The bytes a writer signs for `key` at `version` (spec/chord.md §10.1):
/// [`DHT_ENTRY_CONTEXT`] ‖ `mode: u8` ‖ `owner: [u8; 16]` (zeros for an open
/// key) ‖ `name_len: u16` BE ‖ `name` ‖ `version: u64` BE ‖ `kind: u8` ‖
/// `value_len: u32` BE (0 for a tombstone) ‖ `value`.
pub fn dht_signed_bytes(key: &DhtKey, version: u64, value: &DhtValue) -> Vec<u8> {
    let name = key.name();
    let bytes: &[u8] = match value {
        DhtValue::Value(bytes) => bytes,
        DhtValue::Tombstone => &[],
    };
    let mut out = Vec::with_capacity(DHT_ENTRY_CONTEXT.len() + 32 + name.len() + bytes.len());
    out.extend_from_slice(DHT_ENTRY_CONTEXT);
    out.push(key.mode());
    out.extend_from_slice(&key.owner().unwrap_or_default().to_bytes());
    // Names are ≤ 256 and values ≤ 1 MiB: both fit (checked by callers and
    // decoders; a longer one would only fail to verify).
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&version.to_be_bytes());
    out.push(value.kind());
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A **body** (`spec/chord.md` §10.6): an entry without its key. Layout:
/// `version: varint ≥ 1`, `writer_key: [u8; 32]`, `kind: u8`, for kind 0
/// `value_len: varint ≤ 1 MiB` and `value`, then `signature: [u8; 64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtBody {
    /// Chosen and signed by the writer; ≥ 1.
    pub version: u64,
    /// The writer's id, BLAKE3 of `writer_key` (not on the wire: the
    /// decoder derives it).
    pub writer: NodeId,
    /// The writer's Ed25519 public key.
    pub writer_key: PublicKey,
    /// The value or a tombstone (`kind`).
    pub value: DhtValue,
    /// The writer's signature over [`dht_signed_bytes`] of the key, the
    /// version and the value.
    pub signature: [u8; 64],
}

impl DhtBody {
    /// A body for `key` at `version`, signed by `identity`.
    pub fn signed(identity: &Identity, key: &DhtKey, version: u64, value: DhtValue) -> Self {
        let signature = identity.sign(&dht_signed_bytes(key, version, &value));
        DhtBody::with_signature(identity.public_key(), version, value, signature)
    }

    /// A body from its parts; `writer` is derived from `writer_key`.
    pub fn with_signature(
        writer_key: PublicKey,
        version: u64,
        value: DhtValue,
        signature: [u8; 64],
    ) -> Self {
        DhtBody {
            version,
            writer: writer_key.node_id(),
            writer_key,
            value,
            signature,
        }
    }

    /// The bytes the writer signed, for `key`.
    pub fn signed_bytes(&self, key: &DhtKey) -> Vec<u8> {
        dht_signed_bytes(key, self.version, &self.value)
    }

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.version);
        out.put_slice(&self.writer_key.to_bytes());
        self.value.encode(out);
        out.put_slice(&self.signature);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let version = get_version(input)?;
        let writer_key = PublicKey::from_bytes(input.array()?);
        let value = DhtValue::decode(input)?;
        let signature = input.array()?;
        Ok(DhtBody::with_signature(
            writer_key, version, value, signature,
        ))
    }
}

/// An **entry** (`spec/chord.md` §10.6): a key ([`DhtKey`]), then a body
/// ([`DhtBody`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtEntry {
    /// Open or owned, with its name.
    pub key: DhtKey,
    /// Version, writer, value or tombstone, signature.
    pub body: DhtBody,
}

impl DhtEntry {
    fn encode(&self, out: &mut BytesMut) {
        self.key.encode(out);
        self.body.encode(out);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let key = DhtKey::decode(input)?;
        let body = DhtBody::decode(input)?;
        Ok(DhtEntry { key, body })
    }
}

/// `0x60` — a client asks the coordinator to write a signed entry (a
/// value or a tombstone). Layout: `req: varint`, then an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtPut {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
    /// The entry, signed by its writer (boxed: it is the largest message).
    pub entry: Box<DhtEntry>,
}

impl WireMessage for DhtPut {
    const TAG: u8 = 0x60;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        self.entry.encode(out);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let entry = DhtEntry::decode(input)?;
        Ok(DhtPut {
            req,
            entry: Box::new(entry),
        })
    }
}

/// The `status` of a `DhtPutReply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhtPutStatus {
    /// `0`: stored on every holder.
    Ok,
    /// `1`: the receiver does not own the key.
    NotOwner,
    /// `2`: the receiver's store is full.
    Full,
    /// `3`: stored, but on fewer holders than asked.
    Incomplete,
    /// `4`: the receiver is not a ring member.
    NotInRing,
    /// `5`: the entry does not fit a frame to a holder.
    TooLarge,
    /// `6`: the version does not follow the one held (`version` is the one
    /// held, 0 if none): the writer may sign again with a greater one.
    Stale,
    /// `7`: the write is not authorised: a bad signature, or an owned key
    /// written by another identity.
    Refused,
    /// `8`: the writer (the client) is over its own quota at the receiver
    /// (`spec/chord.md` §10.5).
    OverQuota,
}

impl DhtPutStatus {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            DhtPutStatus::Ok => 0,
            DhtPutStatus::NotOwner => 1,
            DhtPutStatus::Full => 2,
            DhtPutStatus::Incomplete => 3,
            DhtPutStatus::NotInRing => 4,
            DhtPutStatus::TooLarge => 5,
            DhtPutStatus::Stale => 6,
            DhtPutStatus::Refused => 7,
            DhtPutStatus::OverQuota => 8,
        }
    }

    /// The status of a wire code, if it names one.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => DhtPutStatus::Ok,
            1 => DhtPutStatus::NotOwner,
            2 => DhtPutStatus::Full,
            3 => DhtPutStatus::Incomplete,
            4 => DhtPutStatus::NotInRing,
            5 => DhtPutStatus::TooLarge,
            6 => DhtPutStatus::Stale,
            7 => DhtPutStatus::Refused,
            8 => DhtPutStatus::OverQuota,
            _ => return None,
        })
    }

    /// Whether a reply with this status carries a version ≥ 1 (`Ok`,
    /// `Incomplete`).
    pub const fn has_version(self) -> bool {
        matches!(self, DhtPutStatus::Ok | DhtPutStatus::Incomplete)
    }
}

/// `0x61` — the coordinator's answer to `DhtPut`. Layout: `req: varint`,
/// `status: u8` (0–8), `version: varint` (≥ 1 for `Ok` and `Incomplete`,
/// the version held for `Stale`, else 0), `holders: u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtPutReply {
    /// The `DhtPut`'s `req`.
    pub req: u64,
    /// The outcome.
    pub status: DhtPutStatus,
    /// The version written (`Ok`, `Incomplete`), the version held
    /// (`Stale`), else 0.
    pub version: u64,
    /// Holders that acknowledged.
    pub holders: u8,
}

impl WireMessage for DhtPutReply {
    const TAG: u8 = 0x61;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u8(self.status.code());
        put_varint(out, self.version);
        out.put_u8(self.holders);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let code = input.u8()?;
        let status = DhtPutStatus::from_code(code).ok_or(out_of_range("status", code.into()))?;
        let version = input.varint()?;
        if status != DhtPutStatus::Stale && (version == 0) == status.has_version() {
            return Err(out_of_range("version", version));
        }
        let holders = input.u8()?;
        Ok(DhtPutReply {
            req,
            status,
            version,
            holders,
        })
    }
}

/// `0x62` — asks a holder for a key. Layout: `req: varint`, a key
/// ([`DhtKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtGet {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
    /// The key.
    pub key: DhtKey,
}

impl WireMessage for DhtGet {
    const TAG: u8 = 0x62;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        self.key.encode(out);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let key = DhtKey::decode(input)?;
        Ok(DhtGet { req, key })
    }
}

/// The `status` of a `DhtGetReply`, with the body when found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtGetStatus {
    /// `0`: the holder's greatest entry for the key (a value or a tombstone).
    Found(DhtBody),
    /// `1`: the holder has no entry for the key.
    NotFound,
    /// `2`: the holder is not a ring member.
    NotInRing,
}

impl DhtGetStatus {
    /// The wire code.
    pub const fn code(&self) -> u8 {
        match self {
            DhtGetStatus::Found(_) => 0,
            DhtGetStatus::NotFound => 1,
            DhtGetStatus::NotInRing => 2,
        }
    }
}

/// `0x63` — a holder's answer to `DhtGet`. Layout: `req: varint`,
/// `status: u8` (0 Found, 1 NotFound, 2 NotInRing), a body if Found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtGetReply {
    /// The `DhtGet`'s `req`.
    pub req: u64,
    /// The outcome, with the body if found.
    pub status: DhtGetStatus,
}

impl WireMessage for DhtGetReply {
    const TAG: u8 = 0x63;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u8(self.status.code());
        if let DhtGetStatus::Found(body) = &self.status {
            body.encode(out);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let status = match input.u8()? {
            0 => DhtGetStatus::Found(DhtBody::decode(input)?),
            1 => DhtGetStatus::NotFound,
            2 => DhtGetStatus::NotInRing,
            code => return Err(out_of_range("status", code.into())),
        };
        Ok(DhtGetReply { req, status })
    }
}

/// `0x64` — entries for the receiver to merge and keep. Layout:
/// `req: varint`, `count: varint` (1..=64), `count` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtReplicate {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
    /// 1 to [`MAX_DHT_BATCH`] entries.
    pub entries: Vec<DhtEntry>,
}

impl WireMessage for DhtReplicate {
    const TAG: u8 = 0x64;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        put_varint(out, self.entries.len() as u64);
        for entry in &self.entries {
            entry.encode(out);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let count = get_nonempty_count(input, MAX_DHT_BATCH)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(DhtEntry::decode(input)?);
        }
        Ok(DhtReplicate { req, entries })
    }
}

/// The `status` of a `DhtReplicateAck`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhtReplicateStatus {
    /// `0`: every entry merged.
    Ok,
    /// `1`: the receiver's store is full.
    Full,
    /// `2`: the receiver is not a ring member.
    NotInRing,
    /// `3`: the receiver refused some entries: the sender is not entitled
    /// to send them by the receiver's view of the ring, or an entry's
    /// signature or version is bad (spec/chord.md §10.4).
    Refused,
    /// `4`: merged, but the receiver holds a greater entry for a key of the
    /// batch (`held` is its version): a coordinator tells its client.
    Stale {
        /// The greatest version held above the batch's entry; ≥ 1.
        held: u64,
    },
}

impl DhtReplicateStatus {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            DhtReplicateStatus::Ok => 0,
            DhtReplicateStatus::Full => 1,
            DhtReplicateStatus::NotInRing => 2,
            DhtReplicateStatus::Refused => 3,
            DhtReplicateStatus::Stale { .. } => 4,
        }
    }
}

/// `0x65` — the answer to `DhtReplicate`. Layout: `req: varint`,
/// `status: u8` (0 Ok, 1 Full, 2 NotInRing, 3 Refused, 4 Stale), and for
/// Stale `held: varint ≥ 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtReplicateAck {
    /// The `DhtReplicate`'s `req`.
    pub req: u64,
    /// The outcome.
    pub status: DhtReplicateStatus,
}

impl WireMessage for DhtReplicateAck {
    const TAG: u8 = 0x65;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u8(self.status.code());
        if let DhtReplicateStatus::Stale { held } = self.status {
            put_varint(out, held);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let status = match input.u8()? {
            0 => DhtReplicateStatus::Ok,
            1 => DhtReplicateStatus::Full,
            2 => DhtReplicateStatus::NotInRing,
            3 => DhtReplicateStatus::Refused,
            4 => DhtReplicateStatus::Stale {
                held: get_version(input)?,
            },
            code => return Err(out_of_range("status", code.into())),
        };
        Ok(DhtReplicateAck { req, status })
    }
}

/// One `DhtSync` item: which entry the owner holds for a key. Layout:
/// `kh: [u8; 32]`, `version: varint ≥ 1`, `writer: [u8; 16]`, `tag: u64`
/// big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DhtSyncItem {
    /// BLAKE3-256 of the key.
    pub kh: [u8; 32],
    /// The entry's version; ≥ 1.
    pub version: u64,
    /// The entry's writer.
    pub writer: NodeId,
    /// The entry's tag (first 8 bytes of BLAKE3(kind ‖ value), big-endian).
    pub tag: u64,
}

/// `0x66` — a digest of the owner's range for anti-entropy. Layout:
/// `req: varint`, `count: varint` (1..=256), `count` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtSync {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
    /// 1 to [`MAX_DHT_DIGEST`] items.
    pub items: Vec<DhtSyncItem>,
}

impl WireMessage for DhtSync {
    const TAG: u8 = 0x66;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        put_varint(out, self.items.len() as u64);
        for item in &self.items {
            out.put_slice(&item.kh);
            put_varint(out, item.version);
            put_node_id(out, item.writer);
            out.put_u64(item.tag);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let count = get_nonempty_count(input, MAX_DHT_DIGEST)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let kh = input.array()?;
            let version = get_version(input)?;
            let writer = get_node_id(input)?;
            let tag = u64::from_be_bytes(input.array()?);
            items.push(DhtSyncItem {
                kh,
                version,
                writer,
                tag,
            });
        }
        Ok(DhtSync { req, items })
    }
}

/// `0x67` — the answer to `DhtSync`: the items the receiver lacks or holds
/// smaller. Layout: `req: varint`, `count: varint` (≤ 256), `count` indices
/// (varints). An index ≥ the sync's count is not a decode error (the receiver
/// ignores it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DhtSyncReply {
    /// The `DhtSync`'s `req`.
    pub req: u64,
    /// Indices into the `DhtSync`'s items; at most [`MAX_DHT_DIGEST`].
    pub indices: Vec<u64>,
}

impl WireMessage for DhtSyncReply {
    const TAG: u8 = 0x67;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        put_varint(out, self.indices.len() as u64);
        for &index in &self.indices {
            put_varint(out, index);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let count = input.list_len(MAX_DHT_DIGEST)?;
        let mut indices = Vec::with_capacity(count);
        for _ in 0..count {
            indices.push(input.varint()?);
        }
        Ok(DhtSyncReply { req, indices })
    }
}
