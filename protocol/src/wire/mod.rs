//! The wire format: preamble, length-prefixed frames, frame bodies, message
//! codecs. `spec/wire.md` documents every byte; `spec/vectors/` holds test
//! vectors that this crate's tests decode and re-encode byte for byte.
//!
//! Layers, outermost first:
//!
//! 1. **Preamble** ([`Preamble`]): 6 bytes each side sends once, first:
//!    magic `RMSH`, protocol version, security mode.
//! 2. **Frame** ([`FrameDecoder`], [`put_frame_header`]): a 4-byte big-endian
//!    length, then that many bytes. The length is checked against the cap
//!    before a single byte of the frame is buffered.
//! 3. **Body** ([`encode_body`], [`decode_body`]): `flags` (bit 0 = LZ4
//!    compressed), `tag` (the message type), the message. In Noise mode the
//!    body is encrypted in chunks before framing (see `session`).
//! 4. **Message** ([`Message`]): one codec per type, selected by tag.
//!
//! Adding a message type takes one line in the `messages!` list below and a
//! [`WireMessage`] impl; framing does not change.

mod blobs;
mod chord;
mod dht;
mod frame;
mod membership;
mod messages;
mod overlay;
mod preamble;
mod reach;
mod reader;
mod relay;
mod sync;
mod varint;

pub use blobs::{
    BlobEnd, BlobEndStatus, BlobGet, BlobGroup, BlobHash, GROUP_LEN, MAX_BLOB_LEN, MAX_BLOB_RANGES,
    MAX_GROUPS, MAX_PROOF_DEPTH, ParseBlobHashError,
};
pub use chord::{
    ChordFindSuccessor, ChordFindSuccessorReply, ChordGetState, ChordNotify, ChordReplyKind,
    ChordRoute, ChordRouteAck, ChordRouteFound, ChordRouteKind, ChordRouteReply, ChordState,
    MAX_CHORD_LIST,
};
pub use dht::{
    DHT_ENTRY_CONTEXT, DhtBody, DhtEntry, DhtGet, DhtGetReply, DhtGetStatus, DhtKey, DhtPut,
    DhtPutReply, DhtPutStatus, DhtReplicate, DhtReplicateAck, DhtReplicateStatus, DhtSync,
    DhtSyncItem, DhtSyncReply, DhtValue, MAX_DHT_BATCH, MAX_DHT_DIGEST, MAX_DHT_KEY, MAX_DHT_VALUE,
    MAX_OPEN_VERSION_STEP, dht_signed_bytes,
};
#[cfg(test)]
pub(crate) use frame::Unlimited;
pub use frame::{
    FLAG_COMPRESSED, FrameDecoder, FrameError, LENGTH_PREFIX_LEN, decode_body, encode_body,
    encode_frame, frame_header, put_frame_header,
};
pub(crate) use frame::{FrameReader, Grant, Next, app_frame_len, split_payload};
pub use membership::{
    Announcement, BroadcastId, Disconnect, ForwardJoin, Graft, IHave, Join, MAX_IHAVE, MAX_SHUFFLE,
    Neighbor, Prune, Shuffle, ShuffleReply,
};
pub use messages::{
    Capabilities, Direct, Goodbye, GoodbyeReason, Hello, MAX_LISTEN_ADDRS, NoiseHandshakePayload,
};
pub use overlay::{
    BROADCAST_CONTEXT, BROADCAST_OVERHEAD_MAX, Broadcast, FindPeer, ListenAddrs, MAX_PEER_LIST,
    PeerEntry, PeerList, PeerRequest, Ping, Pong, Request, Response,
};
pub use preamble::{PREAMBLE_LEN, PREAMBLE_MAGIC, Preamble};
pub use reach::{DialBack, DialBackResult, DialBackStatus, ObservedAddr};
pub use reader::Reader;
pub use relay::{
    HolePunch, HolePunchSync, MAX_PUNCH_ADDRS, MAX_RELAY_ADDRS, MAX_RELAY_DATA, RelayAddr,
    RelayAddrs, RelayClose, RelayConnect, RelayConnectResult, RelayData, RelayDeliver, RelayEnded,
    RelayIncoming, RelayReserve, RelayReserveResult, RelayStatus,
};
pub use sync::{
    MAX_SYNC_BATCH, MAX_SYNC_DEPTH, MAX_SYNC_KEY, MAX_SYNC_RANGES, MAX_SYNC_VALUE,
    SYNC_ENTRY_CONTEXT, SyncDigest, SyncEntry, SyncPublish, SyncPull, SyncRange, sync_key_hash,
    sync_signed_bytes,
};
pub use varint::{MAX_VARINT_LEN, get_varint, put_varint, varint_len};

use bytes::BytesMut;

/// The protocol version this crate speaks. Sent in the preamble and `Hello`.
pub const PROTOCOL_VERSION: u8 = 3;

/// Default cap on a frame's length field: 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// Why bytes are not a valid message. Decoding never panics; every malformed
/// input maps to one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("input ended inside a field")]
    UnexpectedEnd,
    /// A varint does not fit in 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A varint used more bytes than its value needs.
    #[error("varint is not in its shortest form")]
    NonCanonicalVarint,
    /// Bytes were left after the last field of a message.
    #[error("{0} unexpected trailing bytes after the message")]
    TrailingBytes(usize),
    /// The tag names no known message.
    #[error("unknown message tag {0:#04x}")]
    UnknownTag(u8),
    /// The frame body is shorter than its 2-byte header.
    #[error("frame body shorter than its header")]
    ShortBody,
    /// Flag bits that this version does not define are set.
    #[error("reserved frame flags set: {0:#04x}")]
    ReservedFlags(u8),
    /// A compressed body arrived although compression was not negotiated.
    #[error("compressed frame received but compression was not negotiated")]
    CompressionNotNegotiated,
    /// A compressed body claims to expand beyond the frame cap.
    #[error("compressed body claims {len} bytes, above the {max}-byte cap")]
    DecompressedTooLarge {
        /// Claimed decompressed length.
        len: u64,
        /// The cap.
        max: u32,
    },
    /// The LZ4 block is corrupt or does not expand to its declared size.
    #[error("corrupt LZ4 block")]
    BadCompression,
    /// An address family byte other than 4 or 6.
    #[error("unknown address family {0}")]
    BadAddressFamily(u8),
    /// A list is longer than the protocol allows.
    #[error("list of {len} items exceeds the limit of {max}")]
    TooMany {
        /// Items claimed.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A numeric field is out of its allowed range.
    #[error("field {field} out of range: {value}")]
    OutOfRange {
        /// The field's name in the spec.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}

/// A message type with its own codec.
pub trait WireMessage: Sized {
    /// The tag byte that selects this codec.
    const TAG: u8;
    /// Appends the message (without flags or tag).
    fn encode(&self, out: &mut BytesMut);
    /// Reads the message; must consume `input` exactly.
    fn decode(input: &mut Reader) -> Result<Self, DecodeError>;
}

macro_rules! messages {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Every message this version speaks, selected on the wire by its tag.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Message {
            $($(#[$doc])* $name($name),)*
        }

        impl Message {
            /// The tag byte of this message.
            pub fn tag(&self) -> u8 {
                match self { $(Message::$name(_) => <$name as WireMessage>::TAG,)* }
            }

            /// The message's name as used in the spec.
            pub fn name(&self) -> &'static str {
                match self { $(Message::$name(_) => stringify!($name),)* }
            }

            /// Appends the message bytes (without flags or tag).
            pub fn encode(&self, out: &mut BytesMut) {
                match self { $(Message::$name(m) => m.encode(out),)* }
            }

            /// Decodes the message selected by `tag` from all of `input`.
            pub fn decode(tag: u8, input: &mut Reader) -> Result<Message, DecodeError> {
                // Each arm checks the input used up before it wraps its
                // message: built in the return slot, not in a local copied
                // there afterwards (a `Message` is 176 bytes).
                match tag {
                    $(<$name as WireMessage>::TAG => {
                        let message = <$name>::decode(input)?;
                        input.finish()?;
                        Ok(Message::$name(message))
                    })*
                    other => Err(DecodeError::UnknownTag(other)),
                }
            }
        }

        $(impl From<$name> for Message {
            fn from(m: $name) -> Message { Message::$name(m) }
        })*
    };
}

// Tag ranges by component (spec/wire.md, "Tags"): 0x00–0x0f session,
// 0x10–0x1f peers and discovery, 0x20–0x2f liveness, 0x30–0x3f mesh,
// 0x40–0x4f messaging, 0x50–0x5f chord, 0x60–0x6f dht, 0x70–0x7f sync,
// 0x80–0x8f blobs, 0x90–0x9f reach, 0xa0–0xaf relay.
messages! {
    /// `0x01` — a plaintext-mode session opener. In Noise mode the same
    /// fields travel inside the handshake ([`NoiseHandshakePayload`]).
    Hello,
    /// `0x02` — the sender is closing the connection, and why.
    Goodbye,
    /// `0x10` — asks for a `PeerList`.
    PeerRequest,
    /// `0x11` — nodes the sender knows, with their addresses.
    PeerList,
    /// `0x12` — asks where one node can be reached.
    FindPeer,
    /// `0x20` — a liveness probe.
    Ping,
    /// `0x21` — the answer to a probe.
    Pong,
    /// `0x30` — a flooded message.
    Broadcast,
    /// `0x31` — joins the network through the receiver (HyParView).
    Join,
    /// `0x32` — a join's random walk.
    ForwardJoin,
    /// `0x33` — asks to enter the receiver's active view.
    Neighbor,
    /// `0x34` — leaves the receiver's active view (or refuses a `Neighbor`).
    Disconnect,
    /// `0x35` — a shuffle's random walk with a sample of the views.
    Shuffle,
    /// `0x36` — the answer to a `Shuffle`.
    ShuffleReply,
    /// `0x37` — lazy push: broadcasts the sender has (Plumtree).
    IHave,
    /// `0x38` — asks for a missed broadcast and an eager link.
    Graft,
    /// `0x39` — asks for a lazy link.
    Prune,
    /// `0x40` — a one-way application message to the connected peer.
    Direct,
    /// `0x41` — a request expecting a `Response`.
    Request,
    /// `0x42` — the answer to a `Request`.
    Response,
    /// `0x50` — asks for the receiver's chord state (`spec/chord.md` §8).
    ChordGetState,
    /// `0x51` — a node's ring membership, predecessor and successor list.
    ChordState,
    /// `0x52` — "I may be your predecessor".
    ChordNotify,
    /// `0x53` — one hop of an iterative lookup.
    ChordFindSuccessor,
    /// `0x54` — the answer to a lookup hop: done, closer nodes, or not a member.
    ChordFindSuccessorReply,
    /// `0x55` — a recursive lookup, forwarded hop by hop.
    ChordRoute,
    /// `0x56` — the answer to a recursive lookup, relayed back along its path.
    ChordRouteReply,
    /// `0x57` — a hop acknowledges a recursive lookup it forwards.
    ChordRouteAck,
    /// `0x60` — writes (puts or deletes) a dht key at its coordinator
    /// (`spec/chord.md` §10.6).
    DhtPut,
    /// `0x61` — the coordinator's answer to a `DhtPut`.
    DhtPutReply,
    /// `0x62` — reads a dht key from a holder.
    DhtGet,
    /// `0x63` — a holder's answer to a `DhtGet`.
    DhtGetReply,
    /// `0x64` — dht entries for the receiver to merge and keep.
    DhtReplicate,
    /// `0x65` — the answer to a `DhtReplicate`.
    DhtReplicateAck,
    /// `0x66` — a digest of the owner's range (anti-entropy).
    DhtSync,
    /// `0x67` — the digest items the receiver lacks or holds smaller.
    DhtSyncReply,
    /// `0x70` — signed sync-table entries to apply (`spec/sync.md` §6).
    SyncPublish,
    /// `0x71` — digests of key ranges of the sync table (anti-entropy).
    SyncDigest,
    /// `0x72` — asks for the entries of key ranges of the sync table.
    SyncPull,
    /// `0x80` — asks a provider for chunk groups of a blob (`spec/blobs.md` §4).
    BlobGet,
    /// `0x81` — one chunk group of a blob with its proof.
    BlobGroup,
    /// `0x82` — ends the answer to a `BlobGet`: done, not held, or busy.
    BlobEnd,
    /// `0x90` — the address the sender sees the receiver at
    /// (`spec/reach.md` §3.1).
    ObservedAddr,
    /// `0x91` — asks the receiver to dial the sender back
    /// (`spec/reach.md` §3.2).
    DialBack,
    /// `0x92` — how a dial-back went.
    DialBackResult,
    /// `0xa0` — asks the receiver to hold a relay reservation for the
    /// sender (`spec/relay.md` §4.1).
    RelayReserve,
    /// `0xa1` — the answer to a `RelayReserve`.
    RelayReserveResult,
    /// `0xa2` — asks the relay for a circuit to a node holding a reservation.
    RelayConnect,
    /// `0xa3` — the answer to a `RelayConnect`.
    RelayConnectResult,
    /// `0xa4` — the relay tells a node that a circuit to it was opened.
    RelayIncoming,
    /// `0xa5` — opaque session bytes an end sends on a circuit.
    RelayData,
    /// `0xa6` — an end closes a circuit.
    RelayClose,
    /// `0xa7` — the relay hands an end the other end's session bytes.
    RelayDeliver,
    /// `0xa8` — the relay tells an end that a circuit ended, and why.
    RelayEnded,
    /// `0xa9` — end to end on a relayed session: the sender's candidate
    /// addresses for a hole punch (`spec/relay.md` §7).
    HolePunch,
    /// `0xaa` — end to end on a relayed session: dial now.
    HolePunchSync,
    /// `0xab` — relayed addresses: nodes and the relays they hold
    /// reservations at (`spec/relay.md` §3).
    RelayAddrs,
}
