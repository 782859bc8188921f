//! [`Cx`]: what a component may see of the node and do through it.
//!
//! A component (liveness, mesh, messaging, chord, dht) is a state machine of
//! its own: the node hands it what concerns it (a message of its tags, a
//! timer of its kind, a command of its kind, a peer up or down) together
//! with a `&mut dyn Cx`. Through it the component reads the time and the
//! peer table, and emits its effects: send a message to a peer, dial, emit
//! an event, draw a timer sequence number. The connection layer
//! ([`crate::peers::Net`]) implements it and applies each effect at once, in
//! the order the component asks: the outputs a node produces are exactly
//! the order its components' rules produce them in, which is what keeps a
//! run reproducible byte for byte. The few effects that can fail (a frame
//! over the peer's cap, a dial over a connection cap) answer at once.
//!
//! Nothing here lets a component reach another component: those meet in
//! the router (`node/`), or through a narrow view one hands the other (the
//! table reads the ring through [`crate::chord::Chord`]'s public methods).

use smallvec::SmallVec;

use crate::OpId;
use crate::liveness::peer::PeerLiveness;
use crate::session::{EncodeError, Prepared};
use crate::time::Instant;
use crate::wire::{Capabilities, Message, PeerEntry};
use crate::{ConnId, Event, NodeId, PublicKey};

/// Why [`Cx::send`] did not send. Nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The peer has no usable connection.
    NotConnected,
    /// The frame would exceed the peer's frame cap.
    TooLarge {
        /// The frame length it would need.
        len: usize,
        /// The peer's cap.
        max: u32,
    },
}

impl From<EncodeError> for SendError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::TooLarge { len, max } => SendError::TooLarge { len, max },
            EncodeError::NotEstablished | EncodeError::Crypto => SendError::NotConnected,
        }
    }
}

/// One established peer as the peer table holds it.
pub(crate) struct LinkView<'a> {
    /// Changes each time the peer comes up, for lazily cancelled timers:
    /// its low 31 bits (what the liveness timers compare).
    pub(crate) generation: u32,
    /// Its liveness state (owned by the liveness component, kept here so a
    /// peer costs one table slot).
    pub(crate) liveness: &'a PeerLiveness,
}

/// The narrow context of a component. See the module docs.
pub(crate) trait Cx {
    // ----- time, identity, ordering -----

    /// The node's current time.
    fn now(&self) -> Instant;
    /// This node's id.
    fn me(&self) -> NodeId;
    /// A sequence number for a timer armed now: components' timers fire
    /// in one order, earliest first, then in the order they were armed.
    fn timer_seq(&mut self) -> u64;
    /// A fresh operation id (commands that end in an event, and the
    /// components' own tasks), unique within the node.
    fn next_op(&mut self) -> OpId;
    /// Whether the node has shut down.
    fn is_shut_down(&self) -> bool;

    // ----- signatures -----

    /// This node's public key (what its id is the hash of).
    fn public_key(&self) -> PublicKey;
    /// This run's nonce (its `Hello.run_nonce`; a restarted node has
    /// another).
    fn run_nonce(&self) -> u64;
    /// This node's Ed25519 signature over `message` (which starts with its
    /// layout's context string, spec/).
    fn sign(&self, message: &[u8]) -> [u8; 64];
    /// Whether `signature` is `key`'s signature over `message`, through the
    /// node's [`SignatureCheck`](crate::SignatureCheck).
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool;

    // ----- the peer table -----

    /// Whether `peer` is up (an established session exists).
    fn is_up(&self, peer: NodeId) -> bool;
    /// Peers that are up, in id order.
    fn peers_up(&self) -> Vec<NodeId>;
    /// Whether any peer is up.
    fn has_peers(&self) -> bool;
    /// Calls `f` with every peer that is up and the connection that reaches
    /// it, in no particular order.
    fn for_each_link(&self, f: &mut dyn FnMut(NodeId, ConnId));
    /// `peer`'s link, if it is up.
    fn link(&self, peer: NodeId) -> Option<LinkView<'_>>;
    /// `peer`'s liveness state, if it is up.
    fn liveness_mut(&mut self, peer: NodeId) -> Option<&mut PeerLiveness>;
    /// The features negotiated on `peer`'s connection, if it is up.
    fn peer_caps(&self, peer: NodeId) -> Option<Capabilities>;
    /// Whether a dial to `peer` is in flight.
    fn is_dialling(&self, peer: NodeId) -> bool;
    /// Whether a dial to `peer` begun at or after `since` is in flight.
    fn is_dialling_since(&self, peer: NodeId, since: Instant) -> bool;

    // ----- the peer cache -----

    /// Whether the peer cache has addresses for `peer`.
    fn knows(&self, peer: NodeId) -> bool;
    /// `peer`'s peer-cache entry.
    fn entry(&self, peer: NodeId) -> Option<PeerEntry>;
    /// Adds or refreshes a peer-cache entry (gossip rules apply).
    fn learn(&mut self, entry: &PeerEntry);
    /// The peer-cache entry (with addresses, not this node; failed dials
    /// do not exclude it: a partition fails them) whose id comes first at or clockwise
    /// after `key`: a random sample that does not depend on the cache's
    /// order (the ring check of spec/chord.md §6.7).
    fn known_after(&self, key: u128) -> Option<PeerEntry>;

    /// This node's own entry (its id and listen addresses), if it listens.
    fn listen_entry(&self) -> Option<PeerEntry>;

    // ----- effects -----

    /// Sends `message` to `peer` on its current connection (replies go this
    /// way too: the connection a request came on may be a duplicate being
    /// retired).
    fn send(&mut self, peer: NodeId, message: &Message) -> Result<(), SendError>;
    /// Sends a message prepared once for several connections on `conn`; a
    /// connection this node is draining carries nothing.
    fn send_prepared(
        &mut self,
        conn: ConnId,
        prepared: &mut Prepared<'_>,
    ) -> Result<(), EncodeError>;
    /// The largest encoded message `conn`'s peer accepts, compressed or
    /// not (its `max_frame_len` less the frame's overhead); `None` if the
    /// connection is not established.
    fn max_message_len(&self, conn: ConnId) -> Option<usize>;
    /// Sends `message` on `conn` even if this node is draining it (pongs:
    /// the peer may still rely on that connection).
    fn send_even_draining(&mut self, conn: ConnId, message: &Message) -> Result<(), EncodeError>;
    /// Dials a peer-cache entry at all its addresses if the caps allow;
    /// whether a dial started.
    fn dial_known(&mut self, peer: NodeId) -> bool;
    /// Dials `entry` (demanding its id), through the peer cache when it has
    /// room for it; whether a dial started.
    fn dial_pointer(&mut self, entry: &PeerEntry) -> bool;
    /// Asks neighbours where `peer` is (discovery's `FindPeer`).
    fn find_peer(&mut self, peer: NodeId);
    /// Hands `event` to the application (components call
    /// [`emit`](#method.emit), which takes any component's event).
    fn push_event(&mut self, event: Event);
}

impl dyn Cx + '_ {
    /// Hands a component's event to the application.
    pub(crate) fn emit(&mut self, event: impl Into<Event>) {
        self.push_event(event.into());
    }
}

/// The up-to-16 connections a relay usually goes to, without allocating.
pub(crate) type Conns = SmallVec<[ConnId; 16]>;
