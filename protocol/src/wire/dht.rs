//! Codecs of the dht messages (`0x60`–`0x67`). `spec/chord.md` §10.6 gives
//! each layout; the node does not run the dht yet, so a peer that sends one
//! is closed with `UnexpectedMessage` (`spec/wire.md` §6).

use bytes::{BufMut, Bytes, BytesMut};

use super::overlay::{get_node_id, put_node_id};
use super::{DecodeError, Reader, WireMessage, put_varint};
use crate::NodeId;

/// Longest dht key, in bytes (keys are 1..=256 bytes).
pub const MAX_DHT_KEY: usize = 256;
/// Longest dht value, in bytes: 1 MiB.
pub const MAX_DHT_VALUE: usize = 1 << 20;
/// Most entries one `DhtReplicate` may carry.
pub const MAX_DHT_BATCH: usize = 64;
/// Most items one `DhtSync` may carry, and most indices in a `DhtSyncReply`.
pub const MAX_DHT_DIGEST: usize = 256;

fn out_of_range(field: &'static str, value: u64) -> DecodeError {
    DecodeError::OutOfRange { field, value }
}

/// `key_len: varint` (1..=256), then `key`.
fn put_key(out: &mut BytesMut, key: &[u8]) {
    put_varint(out, key.len() as u64);
    out.put_slice(key);
}

fn get_key(input: &mut Reader) -> Result<Bytes, DecodeError> {
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

/// A **body** (`spec/chord.md` §10.6): an entry without its key. Layout:
/// `version: varint ≥ 1`, `writer: [u8; 16]`, `kind: u8`, and for kind 0
/// `value_len: varint ≤ 1 MiB`, `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtBody {
    /// Set by the coordinator; ≥ 1.
    pub version: u64,
    /// The client that wrote it.
    pub writer: NodeId,
    /// The value or a tombstone (`kind`).
    pub value: DhtValue,
}

impl DhtBody {
    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.version);
        put_node_id(out, self.writer);
        self.value.encode(out);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let version = get_version(input)?;
        let writer = get_node_id(input)?;
        let value = DhtValue::decode(input)?;
        Ok(DhtBody {
            version,
            writer,
            value,
        })
    }
}

/// An **entry** (`spec/chord.md` §10.6): `key_len: varint` (1..=256), `key`,
/// then a body ([`DhtBody`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtEntry {
    /// 1 to [`MAX_DHT_KEY`] bytes.
    pub key: Bytes,
    /// Version, writer, value or tombstone.
    pub body: DhtBody,
}

impl DhtEntry {
    fn encode(&self, out: &mut BytesMut) {
        put_key(out, &self.key);
        self.body.encode(out);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let key = get_key(input)?;
        let body = DhtBody::decode(input)?;
        Ok(DhtEntry { key, body })
    }
}

/// The `op` of a `DhtPut`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtOp {
    /// `op` 0: store `value` (at most [`MAX_DHT_VALUE`] bytes).
    Put {
        /// The value.
        value: Bytes,
    },
    /// `op` 1: store a tombstone.
    Delete,
}

/// `0x60` — a client asks the coordinator to write a key. Layout:
/// `req: varint`, `op: u8` (0 put, 1 delete), `key_len: varint` (1..=256),
/// `key`, and for a put `value_len: varint` (≤ 1 MiB), `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtPut {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
    /// Put (with its value) or delete.
    pub op: DhtOp,
    /// 1 to [`MAX_DHT_KEY`] bytes.
    pub key: Bytes,
}

impl WireMessage for DhtPut {
    const TAG: u8 = 0x60;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        match &self.op {
            DhtOp::Put { value } => {
                out.put_u8(0);
                put_key(out, &self.key);
                put_value(out, value);
            }
            DhtOp::Delete => {
                out.put_u8(1);
                put_key(out, &self.key);
            }
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let op = input.u8()?;
        if op > 1 {
            return Err(out_of_range("op", op.into()));
        }
        let key = get_key(input)?;
        let op = if op == 0 {
            DhtOp::Put {
                value: get_value(input)?,
            }
        } else {
            DhtOp::Delete
        };
        Ok(DhtPut { req, op, key })
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
    /// `6`: the writer (the client) is over its own quota at the receiver
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
            DhtPutStatus::OverQuota => 6,
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
            6 => DhtPutStatus::OverQuota,
            _ => return None,
        })
    }

    /// Whether a reply with this status carries a version (`Ok`,
    /// `Incomplete`).
    pub const fn has_version(self) -> bool {
        matches!(self, DhtPutStatus::Ok | DhtPutStatus::Incomplete)
    }
}

/// `0x61` — the coordinator's answer to `DhtPut`. Layout: `req: varint`,
/// `status: u8` (0–5), `version: varint` (≥ 1 for `Ok` and `Incomplete`,
/// else 0), `holders: u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtPutReply {
    /// The `DhtPut`'s `req`.
    pub req: u64,
    /// The outcome.
    pub status: DhtPutStatus,
    /// The version written (`Ok`, `Incomplete`), else 0.
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
        if (version == 0) == status.has_version() {
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

/// `0x62` — asks a holder for a key. Layout: `req: varint`,
/// `key_len: varint` (1..=256), `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtGet {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
    /// 1 to [`MAX_DHT_KEY`] bytes.
    pub key: Bytes,
}

impl WireMessage for DhtGet {
    const TAG: u8 = 0x62;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        put_key(out, &self.key);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let key = get_key(input)?;
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
}

impl DhtReplicateStatus {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            DhtReplicateStatus::Ok => 0,
            DhtReplicateStatus::Full => 1,
            DhtReplicateStatus::NotInRing => 2,
        }
    }

    /// The status of a wire code, if it names one.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(DhtReplicateStatus::Ok),
            1 => Some(DhtReplicateStatus::Full),
            2 => Some(DhtReplicateStatus::NotInRing),
            _ => None,
        }
    }
}

/// `0x65` — the answer to `DhtReplicate`. Layout: `req: varint`,
/// `status: u8` (0 Ok, 1 Full, 2 NotInRing).
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
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let code = input.u8()?;
        let status =
            DhtReplicateStatus::from_code(code).ok_or(out_of_range("status", code.into()))?;
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
