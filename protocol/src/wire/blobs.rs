//! Codecs of the blob messages (`0x80`–`0x82`). `spec/blobs.md` §4 gives
//! each layout; the blob's name and the transfer unit are defined here, the
//! lowest layer that names them, and the verification rule in `blobs`.

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use super::{DecodeError, Reader, WireMessage, put_varint};

/// Bytes in a chunk group, the unit of transfer and of verification: 16
/// BLAKE3 chunks (16 KiB), as iroh-blobs.
pub const GROUP_LEN: u64 = 16 * 1024;

/// The most groups a blob may have: 2^40 groups is 16 PiB, and it keeps
/// every index and offset far from overflow.
pub const MAX_GROUPS: u64 = 1 << 40;

/// The longest blob (`MAX_GROUPS` groups).
pub const MAX_BLOB_LEN: u64 = MAX_GROUPS * GROUP_LEN;

/// The longest proof: the depth of a tree of `MAX_GROUPS` groups.
pub const MAX_PROOF_DEPTH: usize = 40;

/// Most group ranges one `BlobGet` may ask for.
pub const MAX_BLOB_RANGES: usize = 32;

/// A blob's name: the BLAKE3 hash of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The name of `data`: `blake3::hash(data)`.
    pub fn of(data: &[u8]) -> BlobHash {
        BlobHash(*blake3::hash(data).as_bytes())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Display for BlobHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BlobHash({self})")
    }
}

/// A hash that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a blob hash is 64 hex digits")]
pub struct ParseBlobHashError;

impl core::str::FromStr for BlobHash {
    type Err = ParseBlobHashError;

    fn from_str(text: &str) -> Result<BlobHash, ParseBlobHashError> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return Err(ParseBlobHashError);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).ok_or(ParseBlobHashError);
            *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(BlobHash(out))
    }
}

fn out_of_range(field: &'static str, value: u64) -> DecodeError {
    DecodeError::OutOfRange { field, value }
}

/// Asks a provider for groups of one blob. Layout: `req: varint`,
/// `hash: [u8; 32]`, `flags: u8` (bit 0: send the last group first, the
/// proof of the blob's length; other bits 0), `ranges: varint count
/// ≤ 32`, each `start: varint`, `end: varint` with `start < end ≤ 2^40`
/// (group indices, `end` exclusive; a provider clamps them to the blob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobGet {
    /// The asker's request id, echoed in every answer.
    pub req: u64,
    /// The blob.
    pub hash: BlobHash,
    /// Send the last group first (bit 0 of `flags`): a fetch that does not
    /// know the blob's length yet asks for it this way.
    pub last_first: bool,
    /// Group ranges `[start, end)`.
    pub ranges: SmallVec<[(u64, u64); 2]>,
}

impl WireMessage for BlobGet {
    const TAG: u8 = 0x80;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_slice(&self.hash.0);
        out.put_u8(u8::from(self.last_first));
        put_varint(out, self.ranges.len() as u64);
        for &(start, end) in &self.ranges {
            put_varint(out, start);
            put_varint(out, end);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let hash = BlobHash(input.array()?);
        let flags = input.u8()?;
        if flags > 1 {
            return Err(out_of_range("flags", u64::from(flags)));
        }
        let count = input.list_len(MAX_BLOB_RANGES)?;
        let mut ranges = SmallVec::with_capacity(count);
        for _ in 0..count {
            let start = input.varint()?;
            let end = input.varint()?;
            if end > MAX_GROUPS {
                return Err(out_of_range("end", end));
            }
            if start >= end {
                return Err(out_of_range("start", start));
            }
            ranges.push((start, end));
        }
        Ok(BlobGet {
            req,
            hash,
            last_first: flags == 1,
            ranges,
        })
    }
}

/// One chunk group with its proof. Layout: `req: varint`, `len: varint`
/// (the blob's length, ≤ 2^54), `group: varint` (< the blob's group
/// count), `proof: varint count ≤ 40`, each `[u8; 32]` (siblings, root
/// first), `data_len: varint` (≤ 16384), `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobGroup {
    /// The `BlobGet` this answers.
    pub req: u64,
    /// The blob's length as the sender claims it; proven once the last
    /// group verifies.
    pub len: u64,
    /// The group's index.
    pub group: u64,
    /// The sibling chaining values on the group's path, root first.
    pub proof: Vec<[u8; 32]>,
    /// The group's bytes.
    pub data: Bytes,
}

impl WireMessage for BlobGroup {
    const TAG: u8 = 0x81;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        put_varint(out, self.len);
        put_varint(out, self.group);
        put_varint(out, self.proof.len() as u64);
        for sibling in &self.proof {
            out.put_slice(sibling);
        }
        put_varint(out, self.data.len() as u64);
        out.put_slice(&self.data);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let len = input.varint()?;
        if len > MAX_BLOB_LEN {
            return Err(out_of_range("len", len));
        }
        let group = input.varint()?;
        if group >= len.div_ceil(GROUP_LEN).max(1) {
            return Err(out_of_range("group", group));
        }
        let count = input.list_len(MAX_PROOF_DEPTH)?;
        let mut proof = Vec::with_capacity(count);
        for _ in 0..count {
            proof.push(input.array()?);
        }
        let data_len = input.varint()?;
        if data_len > GROUP_LEN {
            return Err(out_of_range("data_len", data_len));
        }
        let data = input.bytes(data_len as usize)?;
        Ok(BlobGroup {
            req,
            len,
            group,
            proof,
            data,
        })
    }
}

/// How a provider ended its answer to a `BlobGet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobEndStatus {
    /// `0`: every requested group the sender holds was sent (those not
    /// sent, it does not hold).
    Done,
    /// `1`: the sender holds no group of the blob (answered at once).
    NotHeld,
    /// `2`: the sender is over its serving budget; ask again later or
    /// elsewhere. Groups sent before it are valid.
    Busy,
}

/// Ends the answer to a `BlobGet`. Layout: `req: varint`, `status: u8`
/// (0 done, 1 not held, 2 busy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEnd {
    /// The `BlobGet` this ends.
    pub req: u64,
    /// How.
    pub status: BlobEndStatus,
}

impl WireMessage for BlobEnd {
    const TAG: u8 = 0x82;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u8(match self.status {
            BlobEndStatus::Done => 0,
            BlobEndStatus::NotHeld => 1,
            BlobEndStatus::Busy => 2,
        });
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let status = match input.u8()? {
            0 => BlobEndStatus::Done,
            1 => BlobEndStatus::NotHeld,
            2 => BlobEndStatus::Busy,
            other => return Err(out_of_range("status", u64::from(other))),
        };
        Ok(BlobEnd { req, status })
    }
}
