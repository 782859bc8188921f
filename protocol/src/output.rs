//! What the node asks of its driver: [`Output`] and [`Event`].

use core::net::SocketAddr;

use bytes::Bytes;

use crate::blobs::api::BlobsEvent;
use crate::chord::ChordEvent;
use crate::dht::DhtEvent;
use crate::liveness::LivenessEvent;
use crate::mesh::MeshEvent;
use crate::messaging::MessagingEvent;
use crate::peers::PeersEvent;
use crate::reach::ReachEvent;
use crate::relay::RelayEvent;
use crate::sync::SyncEvent;
use crate::wire::{DecodeError, GoodbyeReason};
use crate::{ConnId, NodeId, TransportError};

/// One thing the driver must do, drained with
/// [`Node::poll_output`](crate::Node::poll_output) after every input and
/// command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a transport connection to `addr` and report the outcome with
    /// [`Input::Connected`](crate::Input::Connected) (direction `Outbound`)
    /// or [`Input::DialFailed`](crate::Input::DialFailed) under this `conn`.
    Dial {
        /// The id the node gave this connection.
        conn: ConnId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Open a transport connection to `addr` **from the port the node
    /// listens on** (`SO_REUSEADDR` and `SO_REUSEPORT` on the listener and
    /// on this socket), for a hole punch: the peer dials this node's
    /// address at the same moment, and the two SYNs cross the NATs (a TCP
    /// simultaneous open, `spec/relay.md` §7). Report it as
    /// [`Output::Dial`]; a driver that cannot bind its dial to the listen
    /// port reports [`Input::DialFailed`](crate::Input::DialFailed).
    DialFromListenPort {
        /// The id the node gave this connection.
        conn: ConnId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Write `bytes` to `conn`, after everything sent before on it. Never
    /// reorder, drop or merge across connections. A frame is usually one
    /// `Send`; with [`Node::set_payload_passthrough`](crate::Node::set_payload_passthrough)
    /// a large payload follows its frame's head as a `Send` of its own.
    Send {
        /// The connection.
        conn: ConnId,
        /// Bytes ready for the wire (framed, and encrypted in Noise mode).
        bytes: Bytes,
    },
    /// Finish writing what was already sent on `conn`, then close it; for a
    /// dial still in progress, abandon it. The node has forgotten the
    /// connection: ignore its later reads, and do not report `Closed` or
    /// `DialFailed` for it.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Something the application should know.
    Event(Event),
}

/// Writes the `Event` enum and a `From` for each component's event, from
/// one list.
macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident($ty:ty),)*) => {
        /// What happened, for the application: one event enum per component.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Event {
            $($(#[$doc])* $variant($ty),)*
        }

        $(impl From<$ty> for Event {
            fn from(event: $ty) -> Event {
                Event::$variant(event)
            }
        })*
    };
}

events! {
    /// Connections and peers coming and going.
    Peers(PeersEvent),
    /// The failure detector.
    Liveness(LivenessEvent),
    /// A flood arrived.
    Mesh(MeshEvent),
    /// Messages from one peer, and how this node's fared.
    Messaging(MessagingEvent),
    /// The Chord ring.
    Chord(ChordEvent),
    /// The Chord table.
    Dht(DhtEvent),
    /// The sync table.
    Sync(SyncEvent),
    /// Blobs.
    Blobs(BlobsEvent),
    /// What peers see of this node's address (`spec/reach.md`).
    Reach(ReachEvent),
    /// Relays: reservations and circuits (`spec/relay.md`).
    Relay(RelayEvent),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// This node's application closed it.
    #[error("closed locally")]
    Local,
    /// This node is shutting down.
    #[error("local shutdown")]
    Shutdown,
    /// This node was over its connection cap.
    #[error("too many connections")]
    TooManyConnections,
    /// The transport reported an error or end of stream.
    #[error("transport: {0:?}")]
    Transport(TransportError),
    /// The dial failed.
    #[error("dial failed: {0:?}")]
    DialFailed(TransportError),
    /// The peer said goodbye.
    #[error("peer said goodbye: {0:?}")]
    Goodbye(GoodbyeReason),
    /// Another connection to the same peer was kept (one connection per
    /// peer; see `spec/peers.md`).
    #[error("duplicate connection to the same peer")]
    Duplicate,
    /// A `ConnectAny` race was won by another of its dials.
    #[error("lost a ConnectAny race")]
    RaceLost,
    /// Liveness declared the peer dead (`dead_after_misses` pings missed).
    #[error("peer unresponsive")]
    Unresponsive,
    /// The node's receive budget
    /// ([`SessionConfig::receive_budget`](crate::SessionConfig::receive_budget))
    /// had no room left for what connections were receiving, and this
    /// connection held the most (`held` bytes, of partial frames and
    /// payloads being decompressed).
    #[error("over the receive budget of {budget} bytes: held {held} bytes of partial frames")]
    ReceiveBudget {
        /// What the connection held.
        held: usize,
        /// The node's budget.
        budget: usize,
    },
    /// The peer restarted: a session with a new run of the same id (another
    /// `Hello.run_nonce`) was established, so this run is gone
    /// (`spec/peers.md`, "Restarts").
    #[error("peer restarted: a new run under the same id")]
    Restarted,
    /// The peer broke the protocol; the connection was closed by this node.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A component found the peer misbehaving (e.g. relaying forged
    /// broadcasts, spec/mesh.md) and closed it; says what it did.
    #[error("peer misbehaving: {0}")]
    Misbehaving(&'static str),
    /// Admission control closed an inbound connection (spec/peers.md,
    /// Admission).
    #[error("admission: {0}")]
    Admission(crate::peers::AdmissionReason),
    /// A relayed connection's circuit ended, or the relay refused it
    /// (`spec/relay.md`).
    #[error("relay circuit: {0:?}")]
    Relay(crate::wire::RelayStatus),
}

/// A peer's violation of the protocol, or a handshake that cannot succeed.
/// The connection is closed; the node is otherwise unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream does not start with `RMSH`.
    #[error("not a ringmesh stream (bad preamble magic)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u8,
        /// The peer's.
        theirs: u8,
    },
    /// The peer uses another security mode (never silently downgraded).
    #[error("security mode mismatch: ours {ours}, theirs {theirs}")]
    SecurityMismatch {
        /// Our preamble byte.
        ours: u8,
        /// The peer's.
        theirs: u8,
    },
    /// A frame's length is over the cap (not buffered).
    #[error("frame of {len} bytes over the {max}-byte cap")]
    FrameTooLarge {
        /// The claimed length.
        len: u32,
        /// The cap.
        max: u32,
    },
    /// The handshake did not complete within `handshake_timeout`.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The Noise handshake failed (bad message or decryption).
    #[error("noise handshake failed")]
    HandshakeFailed,
    /// A transport frame failed to decrypt (tampered or out of order).
    #[error("frame failed to decrypt")]
    DecryptFailed,
    /// The identity key in the peer's hello is not a valid Ed25519 key.
    #[error("peer's identity key is not a valid Ed25519 key")]
    BadIdentityKey,
    /// The peer's signature over its Noise static key does not verify under
    /// the identity key it presented: it may be claiming another's identity.
    #[error("peer's signature over its Noise static key does not verify")]
    BadSignature,
    /// The peer is not the node this connection was dialled for.
    #[error("expected peer {expected}, got {actual}")]
    IdentityMismatch {
        /// The id the dial asked for.
        expected: NodeId,
        /// The id the peer proved.
        actual: NodeId,
    },
    /// The connection leads back to this node.
    #[error("connected to ourselves")]
    SelfConnection,
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// A valid message arrived where it has no meaning (e.g. a `Hello` after
    /// the handshake).
    #[error("unexpected {0} message")]
    UnexpectedMessage(&'static str),
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::{Event, Output};
    use crate::Input;

    /// Every output and event is moved several times on its way to the
    /// application (the node's queue, the driver's, an event channel):
    /// 26 moves of one or the other in a request/response round trip of the
    /// mio adapter, both ends (callgrind). A move of more than
    /// 128 bytes is a call to `memcpy` (~29 instructions, whatever the
    /// size); one of 128 or less is inlined as a few vector moves. Both
    /// enums were 144 bytes because of one rare variant,
    /// `PeersEvent::Established` (its `listen_addrs`, two addresses held
    /// inline); with one held inline they are 120. Pinned, so that a
    /// variant that grows them past 128 is a choice (benches/README.md,
    /// "Round trips without the moves").
    #[test]
    fn outputs_events_and_inputs_keep_their_sizes() {
        assert_eq!(size_of::<Output>(), 120);
        assert_eq!(size_of::<Event>(), 120);
        assert_eq!(size_of::<Input>(), 48);
        assert_eq!(size_of::<crate::MessagingEvent>(), 72);
        assert!(size_of::<crate::DhtEvent>() <= 120);
    }
}
