//! Codecs of the chord messages (`0x50`–`0x57`). `spec/chord.md` §8 gives
//! each layout; a peer that sends one on a session without the `CHORD`
//! capability is closed with `UnexpectedMessage` (`spec/wire.md` §6).

use bytes::{BufMut, BytesMut};

use super::overlay::{get_entry_list, get_flag, get_peer_entry, put_entry_list, put_peer_entry};
use super::{DecodeError, PeerEntry, Reader, WireMessage, put_varint};
use crate::NodeId;

/// Most pointers one entry list (`succs`, `entries`) may carry; also the
/// largest successor list length `r`.
pub const MAX_CHORD_LIST: usize = 32;

/// `0x50` — asks for the receiver's chord state; always answered with
/// `ChordState`. Layout: `req: varint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordGetState {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
}

impl WireMessage for ChordGetState {
    const TAG: u8 = 0x50;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ChordGetState {
            req: input.varint()?,
        })
    }
}

/// `0x51` — the answer to `ChordGetState`. Layout: `req: varint`,
/// `member: u8` (0/1), `has_pred: u8` (0/1), `pred` entry if `has_pred` = 1,
/// `succs` entry list (≤ 32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChordState {
    /// The `ChordGetState`'s `req`.
    pub req: u64,
    /// Whether the sender is a ring member (`member` = 1).
    pub member: bool,
    /// The sender's predecessor (`has_pred` = 1), if it has one.
    pub pred: Option<PeerEntry>,
    /// The sender's successor list.
    pub succs: Vec<PeerEntry>,
}

impl WireMessage for ChordState {
    const TAG: u8 = 0x51;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u8(self.member.into());
        out.put_u8(self.pred.is_some().into());
        if let Some(pred) = &self.pred {
            put_peer_entry(out, pred);
        }
        put_entry_list(out, &self.succs);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let member = get_flag(input, "member")?;
        let pred = if get_flag(input, "has_pred")? {
            Some(get_peer_entry(input)?)
        } else {
            None
        };
        let succs = get_entry_list(input, MAX_CHORD_LIST)?;
        Ok(ChordState {
            req,
            member,
            pred,
            succs,
        })
    }
}

/// `0x52` — "I may be your predecessor": the notifier is the session's peer,
/// at its `Hello` addresses. Layout: empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChordNotify;

impl WireMessage for ChordNotify {
    const TAG: u8 = 0x52;

    fn encode(&self, _out: &mut BytesMut) {}

    fn decode(_input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ChordNotify)
    }
}

/// `0x53` — one hop of an iterative lookup. Layout: `req: varint`,
/// `key: [u8; 16]` (the ring position, big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordFindSuccessor {
    /// Unique among the requester's pending chord and dht requests.
    pub req: u64,
    /// The position looked up.
    pub key: u128,
}

impl WireMessage for ChordFindSuccessor {
    const TAG: u8 = 0x53;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u128(self.key);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let key = u128::from_be_bytes(input.array()?);
        Ok(ChordFindSuccessor { req, key })
    }
}

/// The `kind` of a `ChordFindSuccessorReply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChordReplyKind {
    /// `0`: the key lies between the responder and its first successor;
    /// `entries` is the responder's successor list.
    Done,
    /// `1`: `entries` are closer candidates.
    Next,
    /// `2`: the responder is not a ring member (no entries).
    NotInRing,
}

impl ChordReplyKind {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            ChordReplyKind::Done => 0,
            ChordReplyKind::Next => 1,
            ChordReplyKind::NotInRing => 2,
        }
    }

    /// The kind of a wire code, if it names one.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(ChordReplyKind::Done),
            1 => Some(ChordReplyKind::Next),
            2 => Some(ChordReplyKind::NotInRing),
            _ => None,
        }
    }
}

/// `0x54` — the answer to `ChordFindSuccessor`. Layout: `req: varint`,
/// `kind: u8` (0 `Done`, 1 `Next`, 2 `NotInRing`), `entries` entry list
/// (≤ 32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChordFindSuccessorReply {
    /// The `ChordFindSuccessor`'s `req`.
    pub req: u64,
    /// What `entries` means.
    pub kind: ChordReplyKind,
    /// Pointers, as `kind` says.
    pub entries: Vec<PeerEntry>,
}

impl WireMessage for ChordFindSuccessorReply {
    const TAG: u8 = 0x54;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u8(self.kind.code());
        put_entry_list(out, &self.entries);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let code = input.u8()?;
        let kind = ChordReplyKind::from_code(code).ok_or(DecodeError::OutOfRange {
            field: "kind",
            value: code.into(),
        })?;
        let entries = get_entry_list(input, MAX_CHORD_LIST)?;
        Ok(ChordFindSuccessorReply { req, kind, entries })
    }
}

/// The `kind` of a `ChordRouteReply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChordRouteKind {
    /// `0`: found; `by` and `entries` follow (`by` is the member whose
    /// first successor follows the key, `entries` its successor list).
    Done,
    /// `1`: the lookup could not be forwarded further (hop limit, a bound
    /// on forwarded lookups, no live next hop, or a next hop timed out).
    Failed,
    /// `2`: the responder is not a ring member.
    NotInRing,
}

impl ChordRouteKind {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            ChordRouteKind::Done => 0,
            ChordRouteKind::Failed => 1,
            ChordRouteKind::NotInRing => 2,
        }
    }

    /// The kind of a wire code, if it names one.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(ChordRouteKind::Done),
            1 => Some(ChordRouteKind::Failed),
            2 => Some(ChordRouteKind::NotInRing),
            _ => None,
        }
    }
}

/// `0x55` — a recursive lookup: the receiver answers it if the key lies
/// between it and its first successor, or forwards it to its own closest
/// pointer and relays the answer back (spec/chord.md §7.4). Layout:
/// `req: varint`, `key: [u8; 16]` (big-endian), `ttl: u8` (forwards left),
/// `has_avoid: u8` (0/1), `avoid: [u8; 16]` if `has_avoid` = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordRoute {
    /// Unique among the sender's pending chord and dht requests.
    pub req: u64,
    /// The position looked up.
    pub key: u128,
    /// How many more times the lookup may be forwarded.
    pub ttl: u8,
    /// A member the sender found silent (its hop timed out): the receiver
    /// neither forwards to it nor counts it as its first successor.
    pub avoid: Option<NodeId>,
}

impl WireMessage for ChordRoute {
    const TAG: u8 = 0x55;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u128(self.key);
        out.put_u8(self.ttl);
        out.put_u8(self.avoid.is_some().into());
        if let Some(avoid) = self.avoid {
            out.put_u128(avoid.as_u128());
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let key = u128::from_be_bytes(input.array()?);
        let ttl = input.u8()?;
        let avoid = if get_flag(input, "has_avoid")? {
            Some(NodeId::from_u128(u128::from_be_bytes(input.array()?)))
        } else {
            None
        };
        Ok(ChordRoute {
            req,
            key,
            ttl,
            avoid,
        })
    }
}

/// `0x57` — "I hold your `ChordRoute` `req` and forwarded it": a hop that
/// forwards a recursive lookup acknowledges it at once, so its sender
/// knows within a round trip that the hop is alive (spec/chord.md §7.4).
/// Sent and accepted only on sessions where both ends offered
/// `ROUTE_ACK`. Layout: `req: varint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordRouteAck {
    /// The `ChordRoute`'s `req`.
    pub req: u64,
}

impl WireMessage for ChordRouteAck {
    const TAG: u8 = 0x57;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ChordRouteAck {
            req: input.varint()?,
        })
    }
}

/// The answer a `ChordRouteReply` carries when it is `Done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChordRouteFound {
    /// The member that found the key between itself and its first
    /// successor.
    pub by: PeerEntry,
    /// Its successor list: the owner is the first live entry (empty: `by`
    /// owns every key).
    pub entries: Vec<PeerEntry>,
}

/// `0x56` — the answer to `ChordRoute`, relayed back along the path.
/// Layout: `req: varint`, `kind: u8` (0 `Done`, 1 `Failed`,
/// 2 `NotInRing`), `hops: u8` (members that handled the lookup, the
/// answerer included), then for `Done` only: `by` entry, `entries` entry
/// list (≤ 32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChordRouteReply {
    /// The `ChordRoute`'s `req`.
    pub req: u64,
    /// Members that handled the lookup downstream of the receiver.
    pub hops: u8,
    /// The answer: `Ok` for `Done`, else the kind (`Failed`, `NotInRing`).
    pub result: Result<ChordRouteFound, ChordRouteKind>,
}

impl ChordRouteReply {
    /// The reply's kind.
    pub fn kind(&self) -> ChordRouteKind {
        match &self.result {
            Ok(_) => ChordRouteKind::Done,
            Err(kind) => *kind,
        }
    }
}

impl WireMessage for ChordRouteReply {
    const TAG: u8 = 0x56;

    fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.req);
        out.put_u8(self.kind().code());
        out.put_u8(self.hops);
        if let Ok(found) = &self.result {
            put_peer_entry(out, &found.by);
            put_entry_list(out, &found.entries);
        }
    }

    fn decode(input: &mut Reader) -> Result<Self, DecodeError> {
        let req = input.varint()?;
        let code = input.u8()?;
        let kind = ChordRouteKind::from_code(code).ok_or(DecodeError::OutOfRange {
            field: "kind",
            value: code.into(),
        })?;
        let hops = input.u8()?;
        let result = match kind {
            ChordRouteKind::Done => {
                let by = get_peer_entry(input)?;
                let entries = get_entry_list(input, MAX_CHORD_LIST)?;
                Ok(ChordRouteFound { by, entries })
            }
            // A `Done` written as another kind is no answer: its kind
            // decides, anything after `hops` is trailing.
            other => Err(other),
        };
        Ok(ChordRouteReply { req, hops, result })
    }
}
