//! Codecs of the membership messages (HyParView, `spec/membership.md`) and
//! of Plumtree's control messages (`spec/mesh.md`, "Plumtree"): tags
//! `0x31`–`0x3a`, in the mesh's range. `spec/wire.md` §7.9.1–7.9.10 give
//! each layout.

use bytes::{BufMut, BytesMut};

use super::overlay::{
    get_entry_list, get_flag, get_node_id, get_peer_entry, put_entry_list, put_node_id,
    put_peer_entry,
};
use super::{DecodeError, PeerEntry, Reader, WireMessage, put_varint};
use crate::NodeId;

/// Most entries one `Shuffle` or `ShuffleReply` may carry.
pub const MAX_SHUFFLE: usize = 32;

/// Most announcements one `IHave` may carry.
pub const MAX_IHAVE: usize = 64;

/// `0x31` — the sender joins the network through the receiver, its
/// contact node. Layout: empty (the contact takes the joiner's addresses
/// from its session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Join;

impl WireMessage for Join {
    const TAG: u8 = 0x31;

    fn encode(&self, _out: &mut BytesMut) {}

    fn decode(_input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Join)
    }
}

/// `0x32` — a join's random walk. Layout: `joiner: PeerEntry`, `ttl: u8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardJoin {
    /// The node that joined, with its addresses.
    pub joiner: PeerEntry,
    /// Steps the walk may still take.
    pub ttl: u8,
}

impl WireMessage for ForwardJoin {
    const TAG: u8 = 0x32;

    fn encode(&self, out: &mut BytesMut) {
        put_peer_entry(out, &self.joiner);
        out.put_u8(self.ttl);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ForwardJoin {
            joiner: get_peer_entry(input)?,
            ttl: input.u8()?,
        })
    }
}

/// `0x33` — asks the receiver to take the sender into its active view.
/// Layout: `high_priority: u8` (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// The sender has no active peer left (or a join's walk ended at it):
    /// the receiver must accept, evicting a peer if its view is full.
    pub high_priority: bool,
}

impl WireMessage for Neighbor {
    const TAG: u8 = 0x33;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(u8::from(self.high_priority));
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Neighbor {
            high_priority: get_flag(input, "high_priority")?,
        })
    }
}

/// `0x34` — the sender drops the receiver from its active view (or
/// refuses its `Neighbor`). Layout: empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Disconnect;

impl WireMessage for Disconnect {
    const TAG: u8 = 0x34;

    fn encode(&self, _out: &mut BytesMut) {}

    fn decode(_input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Disconnect)
    }
}

/// `0x35` — a shuffle's random walk: a sample of its origin's views.
/// Layout: `origin: PeerEntry`, `ttl: u8`, `count: varint ≤ 32`, entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shuffle {
    /// The node that started the shuffle (the reply goes to it).
    pub origin: PeerEntry,
    /// Steps the walk may still take.
    pub ttl: u8,
    /// Its sample.
    pub entries: Vec<PeerEntry>,
}

impl WireMessage for Shuffle {
    const TAG: u8 = 0x35;

    fn encode(&self, out: &mut BytesMut) {
        put_peer_entry(out, &self.origin);
        out.put_u8(self.ttl);
        put_entry_list(out, &self.entries);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Shuffle {
            origin: get_peer_entry(input)?,
            ttl: input.u8()?,
            entries: get_entry_list(input, MAX_SHUFFLE)?,
        })
    }
}

/// `0x36` — the answer to a `Shuffle`: a sample of the answering node's
/// passive view. Layout: `count: varint ≤ 32`, entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShuffleReply {
    /// The sample.
    pub entries: Vec<PeerEntry>,
}

impl WireMessage for ShuffleReply {
    const TAG: u8 = 0x36;

    fn encode(&self, out: &mut BytesMut) {
        put_entry_list(out, &self.entries);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ShuffleReply {
            entries: get_entry_list(input, MAX_SHUFFLE)?,
        })
    }
}

/// A broadcast's id, as Plumtree's control messages name it: the origin,
/// its run and its sequence number (the replay window's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BroadcastId {
    /// The node that broadcast it.
    pub origin: NodeId,
    /// Its run nonce.
    pub run: u64,
    /// Its sequence number.
    pub seq: u64,
}

fn put_broadcast_id(out: &mut BytesMut, id: &BroadcastId) {
    put_node_id(out, id.origin);
    out.put_u64(id.run);
    put_varint(out, id.seq);
}

fn get_broadcast_id(input: &mut Reader) -> Result<BroadcastId, DecodeError> {
    Ok(BroadcastId {
        origin: get_node_id(input)?,
        run: u64::from_be_bytes(input.array()?),
        seq: input.varint()?,
    })
}

/// One announcement of an `IHave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// The broadcast the sender has.
    pub id: BroadcastId,
    /// Its `hops` when the sender delivered it.
    pub hops: u8,
}

/// `0x37` — lazy push: the sender has delivered these broadcasts.
/// Layout: `count: varint ≤ 64`, then each: `origin: [u8; 16]`,
/// `run: u64` big-endian, `seq: varint`, `hops: u8`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IHave {
    /// The announcements.
    pub announcements: Vec<Announcement>,
}

impl WireMessage for IHave {
    const TAG: u8 = 0x37;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.announcements.len() as u64);
        for a in &self.announcements {
            put_broadcast_id(out, &a.id);
            out.put_u8(a.hops);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let count = input.list_len(MAX_IHAVE)?;
        let mut announcements = Vec::with_capacity(count);
        for _ in 0..count {
            announcements.push(Announcement {
                id: get_broadcast_id(input)?,
                hops: input.u8()?,
            });
        }
        Ok(IHave { announcements })
    }
}

/// `0x38` — push eagerly to the sender from now on, and (if `send`) send
/// it the broadcast `id`, which it missed. Without `send` it is the tree's
/// optimisation (the receiver's path is shorter). Layout: `send: u8` (0 or
/// 1), `origin: [u8; 16]`, `run: u64` big-endian, `seq: varint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graft {
    /// Whether the broadcast is wanted.
    pub send: bool,
    /// The broadcast (missed, or announced by a shorter path).
    pub id: BroadcastId,
}

impl WireMessage for Graft {
    const TAG: u8 = 0x38;

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(u8::from(self.send));
        put_broadcast_id(out, &self.id);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Graft {
            send: get_flag(input, "send")?,
            id: get_broadcast_id(input)?,
        })
    }
}

/// `0x39` — the sender received a duplicate from the receiver: push to it
/// lazily from now on. Layout: empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prune;

impl WireMessage for Prune {
    const TAG: u8 = 0x39;

    fn encode(&self, _out: &mut BytesMut) {}

    fn decode(_input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Prune)
    }
}
