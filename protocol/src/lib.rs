//! # ringmesh — a sans-IO peer-to-peer protocol
//!
//! `ringmesh` is a protocol state machine: it consumes network facts and
//! application commands and emits what should be sent, dialled, closed and
//! told. It does no I/O, reads no clock, starts no thread and draws no OS
//! randomness, so the same code runs under the mio adapter
//! (`ringmesh-mio`), the async adapter (`ringmesh-async-std`), the
//! deterministic simulator (`ringmesh-sim`) or your own event loop.
//!
//! ## The driving contract
//!
//! One [`Node`] per peer. Two ways in, two ways out:
//!
//! | call | when |
//! |---|---|
//! | [`Node::handle_input`] | a transport fact ([`Input::Connected`], [`Input::Received`], [`Input::Closed`], [`Input::DialFailed`]) or a deadline passed ([`Input::Timeout`]) |
//! | [`Node::command`] | the application wants something: a [`Command`], or any component's command (`MeshCommand::Broadcast { .. }`) |
//! | [`Node::poll_output`] | after **every** `handle_input` and `command`: call until it returns `None` |
//! | [`Node::poll_timeout`] | after draining: the one instant at which to feed `Input::Timeout` |
//!
//! A driver that keeps a queue of its own can have the node write into it
//! instead: [`Node::handle_input_into`] and [`Node::command_into`] append
//! the call's outputs to the driver's `VecDeque<Output>`, exactly those
//! `poll_output` would have returned, in the same order, without moving
//! each through `poll_output`.
//!
//! What a driver does with each [`Output`]:
//!
//! - [`Output::Dial`]: open a connection to `addr`; later report
//!   `Input::Connected { conn, direction: Outbound, .. }` or
//!   `Input::DialFailed { conn, .. }` with the same `conn`.
//! - [`Output::DialFromListenPort`]: the same, from the port the node
//!   listens on (`SO_REUSEADDR` + `SO_REUSEPORT`), for a hole punch
//!   (only with `Config::relay`); a driver that cannot reports
//!   `DialFailed`.
//! - [`Output::Send`]: write the bytes to `conn` in order after what was
//!   written before. The bytes are complete frames, already encrypted.
//! - [`Output::Close`]: flush what was already sent on `conn`, then close it.
//!   Do not report `Closed` for it afterwards.
//! - [`Output::Event`]: hand to the application. An [`Event`] names its
//!   component: `Event::Messaging(MessagingEvent::Direct { .. })`.
//!
//! Connections the driver *accepts* get ids from [`ConnId::inbound`]; the
//! node's own dials have ids with the top bit set, so the two never collide.
//!
//! **Time** is [`Instant`]/[`Duration`], microseconds from an epoch the
//! driver chooses, passed into every call. **Randomness** comes from the
//! `seed` given to [`Node::new`]; each component draws from its own stream.
//! Same config, identity, seed and inputs ⇒ byte-identical outputs.
//!
//! ## Example: two nodes joined by an in-memory pipe
//!
//! ```
//! use bytes::Bytes;
//! use ringmesh::{
//!     Config, ConnId, Direction, Event, Identity, Input, Instant, MessagingCommand, MessagingEvent,
//!     Node, Output, PeersCommand,
//! };
//!
//! /// Plays driver for one direction of the pipe: everything `from` wants
//! /// sent is delivered to `to` as received on `to_conn`.
//! fn pump(from: &mut Node, to: &mut Node, to_conn: ConnId, now: Instant, events: &mut Vec<Event>) -> bool {
//!     let mut moved = false;
//!     while let Some(output) = from.poll_output() {
//!         match output {
//!             Output::Send { bytes, .. } => {
//!                 to.handle_input(now, Input::Received { conn: to_conn, bytes });
//!                 moved = true;
//!             }
//!             Output::Event(event) => events.push(event),
//!             // A real driver opens and closes sockets here.
//!             Output::Dial { .. } | Output::DialFromListenPort { .. } | Output::Close { .. } => {}
//!         }
//!     }
//!     moved
//! }
//!
//! let now = Instant::ZERO;
//! let mut alice = Node::new(Config::default(), Identity::from_secret_bytes([1; 32]), 1, now)?;
//! let mut bob = Node::new(Config::default(), Identity::from_secret_bytes([2; 32]), 2, now)?;
//! let (mut alice_events, mut bob_events) = (Vec::new(), Vec::new());
//!
//! // Alice dials Bob, insisting on Bob's id; the transport connects.
//! let bob_addr = "127.0.0.2:4000".parse()?;
//! alice.command(now, PeersCommand::Connect { addr: bob_addr, peer: Some(bob.node_id()) })?;
//! let Some(Output::Dial { conn: alice_conn, .. }) = alice.poll_output() else { unreachable!() };
//! let bob_conn = ConnId::inbound(0);
//! alice.handle_input(now, Input::Connected { conn: alice_conn, remote: bob_addr, direction: Direction::Outbound });
//! bob.handle_input(now, Input::Connected { conn: bob_conn, remote: "127.0.0.1:50000".parse()?, direction: Direction::Inbound });
//!
//! // Run the Noise XX handshake to completion.
//! while pump(&mut alice, &mut bob, bob_conn, now, &mut alice_events)
//!     | pump(&mut bob, &mut alice, alice_conn, now, &mut bob_events) {}
//! assert!(alice.is_connected(bob.node_id()) && bob.is_connected(alice.node_id()));
//!
//! // An encrypted one-way message.
//! alice.command(now, MessagingCommand::Send { to: bob.node_id(), payload: Bytes::from_static(b"hi bob") })?;
//! while pump(&mut alice, &mut bob, bob_conn, now, &mut alice_events)
//!     | pump(&mut bob, &mut alice, alice_conn, now, &mut bob_events) {}
//! assert!(bob_events.iter().any(|e| matches!(e,
//!     Event::Messaging(MessagingEvent::Direct { payload, .. }) if payload == "hi bob")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`testing::Network`] is a ready-made driver of this kind for many nodes,
//! with latency and virtual time.
//!
//! ## What a node does by itself
//!
//! A node is a connection layer and components above it, each a small
//! state machine in its own module with its own sub-configuration
//! ([`Config`] holds one per component), commands, events and counters
//! ([`Stats`]). Once created, a node keeps a network together without being
//! told:
//!
//! - **Peers** (`spec/peers.md`, [`PeersConfig`]): one connection per peer —
//!   when two nodes dial each other at once, both keep the connection
//!   dialled by the smaller [`NodeId`] and drain the other without losing
//!   what is in flight on it. [`PeersCommand::ConnectAny`] races several
//!   addresses. Wanted peers are redialled with exponential backoff and
//!   jitter; the node dials from its peer cache until it has
//!   [`PeersConfig::target_peers`]. Caps on inbound, outbound and
//!   half-open connections.
//! - **Discovery** (`spec/discovery.md`): [`PeersConfig::bootstrap`] is
//!   dialled at start and whenever the node is alone; peers exchange
//!   `PeerList`s (ids with addresses) on connect and on request.
//!   [`Node::peer_cache`] and [`PeersCommand::RestorePeers`] persist the
//!   cache across restarts; its *tried* table (peers this node dialled and
//!   authenticated) is kept apart from what gossip and inbound peers bring,
//!   so an identity flood cannot wash it out (spec/peers.md).
//! - **Liveness** (`spec/liveness.md`, [`LivenessConfig`]): pings every
//!   [`LivenessConfig::ping_interval`]; a miss makes a peer suspect
//!   ([`LivenessEvent::Suspect`]); [`LivenessConfig::dead_after_misses`]
//!   misses close it ([`PeersEvent::Down`]) within
//!   [`Config::detection_time`]. Presets: [`Config::lan`], [`Config::wan`].
//! - **Mesh** (`spec/mesh.md`, [`MeshConfig`]): [`MeshCommand::Broadcast`]
//!   floods a payload; every other node delivers it once
//!   ([`MeshEvent::Broadcast`]) and relays it to its peers but the sender,
//!   within [`MeshConfig::max_hops`]. Broadcasts are signed by their
//!   origin and verified before delivery; a per-origin replay window,
//!   capped in origins and runs, refuses replays.
//! - **Messaging** (`spec/messaging.md`, [`MessagingConfig`]):
//!   [`MessagingCommand::Send`] and [`MessagingCommand::Request`] →
//!   [`MessagingEvent::Response`] or [`MessagingEvent::RequestFailed`]; a
//!   peer that is not connected is looked up (peer cache, the ring when the
//!   node is a member, then neighbours) and dialled; nothing waits past its
//!   timeout.
//! - **Chord ring** (`spec/chord.md`, with [`Config::chord`] set): Pamela
//!   Zave's corrected Chord. Start a ring with [`ChordCommand::Found`]
//!   (r + 1 founders in the ideal ring at once) or [`ChordCommand::Create`];
//!   grow it with [`ChordCommand::Join`] ([`ChordEvent::Joined`]). Members
//!   stabilize and rectify on their own; successor lists of
//!   [`ChordConfig::successors`] entries keep the ring whole while fewer
//!   than that many consecutive members fail per repair window.
//!   [`ChordCommand::Lookup`] finds the owner of a position iteratively
//!   ([`ChordEvent::LookupDone`], with the hops it took; fingers make it
//!   O(log n)). [`Config::lan_ring`] and [`Config::wan_ring`] turn it on,
//!   sized for the expected ring.
//! - **Chord table** (`spec/chord.md` §10, with [`Config::dht`] set):
//!   [`DhtCommand::Put`], [`DhtCommand::Get`], [`DhtCommand::Delete`] on
//!   [`DhtKey`]s: *owned* keys only their owner may write, *open* keys
//!   anyone may; every entry is signed by its writer and verified by its
//!   holders and readers. Each key lives on its owner and the next
//!   [`DhtConfig::replicas`] − 1 members; a put is acknowledged
//!   ([`DhtEvent::PutDone`]) once they hold it; holders hand keys to a
//!   joining owner and repair each other; deletes are tombstones that
//!   expire; stores are capped, with quotas per writer and per sending
//!   peer ([`DhtFailure::Full`], [`DhtFailure::OverQuota`]).
//!
//! ```
//! # use bytes::Bytes;
//! # use ringmesh::{Accepted, ChordCommand, ChordConfig, Config, DhtCommand, DhtEvent, DhtKey, Event, Security};
//! use ringmesh::testing::Network;
//! use ringmesh::wire::PeerEntry;
//!
//! // Four nodes found a ring (r = 3), then one stores a key another reads.
//! let mut net = Network::new(ringmesh::Duration::from_millis(5));
//! let mut config = Config { security: Security::Plaintext, ..Config::lan_ring(4) };
//! config.chord = Some(ChordConfig { successors: 3, ..ChordConfig::lan() });
//! for i in 0..4u8 {
//!     net.add_node(config.clone(), [i + 1; 32], u64::from(i))?;
//! }
//! let founders: Vec<PeerEntry> = (0..4)
//!     .map(|i| PeerEntry { id: net.node(i).node_id(), addrs: [Network::addr_of(i)].into_iter().collect() })
//!     .collect();
//! for i in 0..4 {
//!     net.command(i, ChordCommand::Found { founders: founders.clone() })?;
//! }
//! net.command(0, DhtCommand::Put { key: DhtKey::Open(Bytes::from_static(b"colour")), value: Bytes::from_static(b"teal") })?;
//! net.settle();
//! let Accepted::Op(get) = net.command(3, DhtCommand::Get { key: DhtKey::Open(Bytes::from_static(b"colour")) })? else { unreachable!() };
//! net.settle();
//! assert!(net.events_of(3).any(|e| matches!(e,
//!     Event::Dht(DhtEvent::GetDone { id, value: Some(v), .. }) if *id == get && v == "teal")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - **Sync table** (`spec/sync.md`, with [`Config::sync`] set): a
//!   dictionary every node holds. [`SyncCommand::Set`],
//!   [`SyncCommand::Delete`] and [`SyncCommand::Merge`] (a shallow map
//!   merge, [`encode_sync_map`]) sign an entry, apply it and flood it;
//!   [`SyncCommand::Get`] and [`Node::sync_get`] read locally; every
//!   change, this node's or another's, is a [`SyncEvent::Changed`]. The
//!   first writer of a key leases it for [`SyncConfig::lease`]: until then
//!   nobody else may change or delete it ([`SyncError::Leased`]), and
//!   receivers refuse what a tampered node sends anyway. Deletes are
//!   tombstones; anti-entropy on every session and periodically exchanges
//!   only the key ranges whose digests differ, so a node that was away or
//!   joins late catches up.
//!
//! ```
//! # use bytes::Bytes;
//! # use ringmesh::{CommandError, Config, Security, SyncCommand, SyncConfig, SyncError};
//! use ringmesh::testing::Network;
//!
//! let config = Config { security: Security::Plaintext, sync: Some(SyncConfig::lan()), ..Config::lan() };
//! let mut net = Network::new(ringmesh::Duration::from_millis(5));
//! for i in 0..3u8 {
//!     net.add_node(config.clone(), [i + 1; 32], u64::from(i))?;
//! }
//! net.connect(0, 1)?;
//! net.settle();
//! net.command(0, SyncCommand::Set { key: Bytes::from_static(b"colour"), value: Bytes::from_static(b"teal") })?;
//! net.settle();
//! assert_eq!(net.node(1).sync_get(b"colour").and_then(|h| h.value).as_deref(), Some(&b"teal"[..]));
//! // Node 0 holds the lease: node 1 may not overwrite it.
//! let refused = net.command(1, SyncCommand::Set { key: Bytes::from_static(b"colour"), value: Bytes::from_static(b"red") });
//! assert!(matches!(refused, Err(CommandError::Sync(SyncError::Leased { .. }))));
//! // A node that joins later receives the table.
//! net.connect(2, 1)?;
//! net.settle();
//! assert_eq!(net.node(2).sync_digest(), net.node(0).sync_digest());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - **Blobs** (`spec/blobs.md`, with [`Config::blobs`] set): files named
//!   by their BLAKE3 hash. [`BlobsCommand::Add`] hashes a blob once and
//!   serves it; [`BlobsCommand::Fetch`] fetches one from the providers it
//!   names and its neighbours, 16 KiB chunk groups at a time, each
//!   verified against the hash as it arrives (a provider that lies is
//!   dropped at the first bad group); a fetcher serves what it holds, so
//!   fetchers of one blob swarm. [`BlobsEvent`]s report progress;
//!   [`Node::blob_store`] reads what is held. The verification core,
//!   stores and the fetch machine are in [`blobs`].
//!
//! ```
//! # use bytes::Bytes;
//! # use ringmesh::{BlobsCommand, BlobsConfig, BlobsEvent, Config, Event, Security};
//! use ringmesh::blobs::BlobHash;
//! use ringmesh::testing::Network;
//!
//! let config = Config { security: Security::Plaintext, blobs: Some(BlobsConfig::default()), ..Config::lan() };
//! let mut net = Network::new(ringmesh::Duration::from_millis(5));
//! for i in 0..2u8 {
//!     net.add_node(config.clone(), [i + 1; 32], u64::from(i))?;
//! }
//! net.connect(0, 1)?;
//! net.settle();
//! let data = Bytes::from(vec![42u8; 100_000]);
//! let hash = BlobHash::of(&data);
//! net.command(0, BlobsCommand::Add { data })?;
//! let seeder = net.node(0).node_id();
//! net.command(1, BlobsCommand::Fetch { hash, providers: vec![seeder] })?;
//! net.run_for(ringmesh::Duration::from_secs(1));
//! assert!(net.events_of(1).any(|e| matches!(e, Event::Blobs(BlobsEvent::Done { .. }))));
//! assert_eq!(net.node(1).blob_store().and_then(|s| s.read_group(&hash, 0)).map(|g| g.len()), Some(16384));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - **Observed addresses** (`spec/reach.md`, with [`Config::reach`] set):
//!   each peer is told the address it is seen at (`ObservedAddr`); an IP
//!   that [`ReachConfig::observed_threshold`] distinct peers report is
//!   adopted with the node's listen port and announced in every new
//!   session's `Hello` ([`ReachEvent::AddressAdopted`],
//!   [`Node::announced_addrs`]). One peer counts once, so a lone liar
//!   changes nothing. The node then asks those peers to dial it back
//!   there ([`ReachEvent::Reachability`]); a peer dials only the IP it
//!   sees the requester at, a limited number of times.
//!
//! ```
//! # use ringmesh::{Config, ReachConfig, ReachEvent, Event, Security};
//! use ringmesh::testing::Network;
//!
//! let config = Config { security: Security::Plaintext, reach: Some(ReachConfig::default()), ..Config::lan() };
//! let mut net = Network::new(ringmesh::Duration::from_millis(5));
//! // Node 0 knows only its private address; its peers see it at
//! // `Network::addr_of(0)`, as they would see a node behind a NAT.
//! let mut behind_nat = config.clone();
//! behind_nat.listen_addrs.push("10.0.0.1:7000".parse()?);
//! net.add_node(behind_nat, [1; 32], 1)?;
//! for i in 1..4u8 {
//!     net.add_node(config.clone(), [i + 1; 32], u64::from(i))?;
//!     net.connect(0, usize::from(i))?;
//! }
//! net.settle();
//! let public = ringmesh::testing::Network::addr_of(0);
//! assert!(net.events_of(0).any(|e| matches!(e,
//!     Event::Reach(ReachEvent::AddressAdopted { addr, observers: 3 }) if *addr == public)));
//! assert!(net.node(0).announced_addrs().contains(&public));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - **Relays** (`spec/relay.md`, with [`Config::relay`] set): a node
//!   nobody can dial keeps a reservation at a relay
//!   ([`RelayCommand::Reserve`]); a peer reaches it through a circuit
//!   there ([`RelayCommand::Connect`], or by itself when every direct
//!   dial fails). The circuit carries a normal session (Noise, end to
//!   end), which the relay forwards within its limits
//!   ([`RelayConfig`]) and cannot read or alter.
//!
//! The node always has a deadline ahead (its maintenance round every
//! [`PeersConfig::maintenance_interval`], pings), so a driver's loop never idles
//! for good; [`testing::Network::settle`] runs a test network until nothing
//! is in flight instead.
//!
//! ## Robustness
//!
//! Bad bytes never panic: a malformed frame closes that connection with a
//! [`ProtocolError`] in [`PeersEvent::Closed`], and the node carries on.
//! Frame lengths are checked against [`SessionConfig::max_frame_len`] before any
//! buffering. Every table is capped (see [`Config`]).
//!
//! The wire format is specified language-neutrally in `spec/wire.md`, with
//! test vectors in `spec/vectors/` that this crate's tests check byte for
//! byte.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod blobs;
mod chord;
mod command;
mod config;
mod cx;
mod dht;
mod id;
mod identity;
mod input;
mod liveness;
mod membership;
mod mesh;
mod messaging;
mod node;
mod output;
mod peers;
mod reach;
mod relay;
mod rng;
mod rpc;
mod session;
mod sync;
pub mod testing;
mod time;
mod timer;
pub mod wire;

pub use blobs::{BlobsCommand, BlobsConfig, BlobsError, BlobsEvent, BlobsStats};
pub use chord::{
    ChordCommand, ChordConfig, ChordError, ChordEvent, ChordPending, ChordRole, ChordStats,
    LookupError,
};
pub use chord::{ID_PUZZLE_CONTEXT, MAX_ID_PUZZLE_BITS, grind_identity, meets_id_puzzle};
pub use command::{Accepted, Command, CommandError};
pub use config::{
    BLOBS_MIN_FRAME_LEN, CHORD_MIN_FRAME_LEN, Config, ConfigError, MAX_BOOTSTRAP,
    MIN_MAX_FRAME_LEN, Security,
};
pub use dht::{DhtCommand, DhtConfig, DhtError, DhtEvent, DhtFailure, DhtHeld, DhtStats, DhtUsage};
pub use id::{ConnId, NodeId, OpId, ParseNodeIdError, ShortId};
pub use identity::{Ed25519Check, Identity, PublicKey, SignatureCheck};
pub use input::{Direction, Input, TransportError};
pub use liveness::{LivenessConfig, LivenessEvent, LivenessStats};
pub use membership::{HyParViewConfig, MembershipStats};
pub use mesh::{
    BroadcastMode, Membership, MeshCommand, MeshConfig, MeshError, MeshEvent, MeshStats,
    PlumtreeConfig,
};
pub use messaging::{
    DeliveryError, MessagingCommand, MessagingConfig, MessagingError, MessagingEvent,
    MessagingPending, MessagingStats, RequestId,
};
pub use node::{Node, Stats};
pub use output::{CloseReason, Event, Output, ProtocolError};
pub use peers::{
    AdmissionConfig, AdmissionReason, KnownPeer, PeersCommand, PeersConfig, PeersError, PeersEvent,
    PeersStats,
};
pub use reach::{MIN_OBSERVED_THRESHOLD, ReachConfig, ReachEvent, ReachStats};
pub use relay::{RelayCommand, RelayConfig, RelayError, RelayEvent, RelayStats};
pub use session::SessionConfig;
pub use session::config::DEFAULT_RECEIVE_BUDGET;
pub use sync::{
    SyncCommand, SyncConfig, SyncError, SyncEvent, SyncHeld, SyncStats, SyncUsage, decode_sync_map,
    encode_sync_map,
};
pub use time::{Duration, Instant};
pub use wire::DhtKey;

/// The Noise protocol name used in [`Security::Noise`] mode.
pub const NOISE_PATTERN: &str = session::NOISE_PATTERN;
