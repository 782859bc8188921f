//! [`Node`]: the state machine every driver runs.
//!
//! This module holds the driving contract (`handle_input`, `command`,
//! `poll_output`, `poll_timeout`) and the node's accessors. A node is the
//! connection layer ([`Net`], which also implements the components'
//! context) and the components above it; `route.rs` is the router: it
//! hands each message, timer, command and peer change to the component
//! that owns it, and holds no component's rules.

mod route;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use core::net::SocketAddr;
use foldhash::fast::FixedState;
use tracing::info;

use crate::chord::ChordRole;
use crate::cx::Cx;
use crate::peers::Net;
use crate::rng::{Rng, Stream};
use crate::time::{Duration, Instant};
use crate::wire::PeerEntry;
use crate::{
    Accepted, ChordPending, CloseReason, Command, CommandError, Config, ConfigError, DhtHeld,
    DhtUsage, Identity, Input, MessagingPending, NodeId, Output, SignatureCheck,
};

pub use route::Stats;
use route::{Parts, Queue};

/// One ringmesh node: a sans-IO state machine. See the crate docs for the
/// driving contract.
pub struct Node {
    /// The connection layer: connections, peers, discovery, outputs.
    net: Net,
    /// The components above it.
    parts: Parts,
    /// The earliest entry of all deadline queues as the last call left
    /// them (its deadline and sequence number, and its queue): what
    /// [`Node::poll_timeout`] reports.
    deadline: Option<((Instant, u64), Queue)>,
    /// The node's count of deadlines armed when `deadline` was found: while
    /// it stands, no queue gained an entry, so none holds an earlier one.
    armed_then: u64,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.net.me())
            .field("now", &self.net.now())
            .field("connections", &self.net.connection_count())
            .field("peers", &self.net.peer_count())
            .field("known_peers", &self.net.known_count())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node with `identity`, configured by `config`, drawing all its
    /// randomness from `seed`, at time `now`.
    ///
    /// The same config, identity, seed and inputs always produce the same
    /// outputs. In Noise mode the seed keys the ephemeral-key stream (mixed
    /// with the identity secret): real deployments pass a fresh random seed
    /// at every start.
    ///
    /// The node's first deadline is `now`: its first maintenance round,
    /// which dials the bootstrap addresses.
    pub fn new(
        config: Config,
        identity: Identity,
        seed: u64,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        Node::build(Arc::new(config), None, identity, seed, now)
    }

    /// A node as [`Node::new`] builds it, but running a config it shares
    /// with other nodes of the same process, listening on `listen_addrs`
    /// (which replace the shared config's own): a driver of many nodes (the
    /// simulator) keeps one config for all of them rather than one each.
    /// [`Node::config`] is then the shared config.
    pub fn with_shared_config(
        config: Arc<Config>,
        listen_addrs: &[SocketAddr],
        identity: Identity,
        seed: u64,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        Node::build(config, Some(listen_addrs), identity, seed, now)
    }

    fn build(
        config: Arc<Config>,
        listen_addrs: Option<&[SocketAddr]>,
        identity: Identity,
        seed: u64,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        // The config with this node's listen addresses: validated, and read
        // once by the session context and the ring; the node keeps `config`.
        let own = match listen_addrs {
            None => Cow::Borrowed(&*config),
            Some(addrs) => {
                let mut own = (*config).clone();
                own.listen_addrs = addrs.iter().copied().collect();
                Cow::Owned(own)
            }
        };
        own.validate()?;
        if let Some(chord) = &own.chord
            && !crate::meets_id_puzzle(identity.node_id(), chord.id_puzzle_bits)
        {
            return Err(ConfigError::IdFailsPuzzle(chord.id_puzzle_bits));
        }
        let mut tables = Rng::derive(seed, Stream::Tables, None);
        // Seeded from the node seed: deterministic, yet not predictable by a
        // peer that would grind ids to collide in our tables.
        let hasher = FixedState::with_seed(tables.next_u64());
        let parts = Parts::new(&own, seed, &hasher);
        let net = Net::new(config.clone(), &own, &identity, seed, hasher, now);
        let mut node = Node {
            net,
            parts,
            deadline: None,
            armed_then: 0,
        };
        node.find_deadline();
        Ok(node)
    }

    /// Replaces how this node checks the signatures peers send it (signed
    /// broadcasts, table entries). The default verifies each one
    /// ([`Ed25519Check`](crate::Ed25519Check)); a driver of many nodes in
    /// one process may share a memoising [`SignatureCheck`] among them, as
    /// the simulator does. Call it before the first input.
    pub fn set_signature_check(&mut self, check: std::sync::Arc<dyn SignatureCheck>) {
        self.net.set_signature_check(check);
    }

    /// Lets the node hand a large application payload (`Direct`,
    /// `Request`, `Response` of 8 KiB or more, plaintext, not compressed)
    /// to the driver as it came, in an [`Output::Send`](crate::Output::Send)
    /// of its own right after one carrying the frame's head, instead of
    /// copying it into the frame. The bytes on the wire are the same; the
    /// driver must write consecutive `Output::Send`s of a connection back
    /// to back (a stream transport does), and it may hold the
    /// application's buffer until they are written. Off by default: the
    /// simulator delivers each `Output::Send` as an arrival of its own.
    /// Relayed connections always get whole frames.
    pub fn set_payload_passthrough(&mut self, on: bool) {
        self.net.set_payload_passthrough(on);
    }

    /// Lets the output queue keep room for `outputs` outputs once the
    /// driver has drained it ([`Node::poll_output`] returned `None`). By
    /// default it keeps none, so an idle node holds no queue (a simulation
    /// holds a million nodes), and a call that has something to say
    /// allocates it again and frees it when drained: twice per message on a
    /// busy connection. A driver of one node keeps a few, or hands the node
    /// a queue of its own ([`Node::handle_input_into`]), which leaves this
    /// one unused.
    pub fn set_outputs_kept(&mut self, outputs: usize) {
        self.net.set_outputs_kept(outputs);
    }

    /// Puts blobs in `store` (a file-backed store of the program, say)
    /// instead of the in-memory one; blobs already held in memory are
    /// dropped. Call it before the first input. No effect without
    /// `Config::blobs`.
    pub fn set_blob_store(&mut self, store: Box<dyn crate::blobs::BlobStore + Send>) {
        if let Some(blobs) = &mut self.parts.blobs {
            blobs.set_store(store);
        }
        self.find_deadline();
    }

    /// The blob store (`None` without `Config::blobs`): what this node
    /// holds, whole or in part, and serves.
    pub fn blob_store(&self) -> Option<&dyn crate::blobs::BlobStore> {
        self.parts.blobs.as_deref().map(|b| b.store())
    }

    /// The blobs this node is fetching.
    pub fn blob_fetches(&self) -> Vec<crate::blobs::BlobHash> {
        self.parts
            .blobs
            .as_deref()
            .map(|b| b.fetching())
            .unwrap_or_default()
    }

    /// Sends `message` to `peer` as it is, bypassing every rule of the
    /// component that would normally send it: for tests that play a
    /// tampered member running the real node code (hidden from the docs;
    /// it gives an application nothing it could not do with its own
    /// sockets, and a peer's defences must hold against it). Whether it
    /// went out: `peer` must be up and the message fit its frame cap.
    #[doc(hidden)]
    pub fn adversary_send(
        &mut self,
        now: Instant,
        peer: NodeId,
        message: &crate::wire::Message,
    ) -> bool {
        self.net.advance(now);
        let sent = crate::cx::Cx::send(&mut self.net, peer, message).is_ok();
        self.after_call();
        sent
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.net.me()
    }

    /// The nonce that names this run of the node in its `Hello`, drawn
    /// from the seed: a node restarted with a fresh seed announces another,
    /// and its peers retire the connections of the run they knew
    /// (`spec/peers.md`, "Restarts").
    pub fn run_nonce(&self) -> u64 {
        self.net.run_nonce()
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        self.net.config()
    }

    /// The addresses this node announces now: its configured
    /// `listen_addrs`, then those it adopted because enough peers see it
    /// there ([`ReachEvent::AddressAdopted`](crate::ReachEvent::AddressAdopted),
    /// with [`Config::reach`] on). New sessions' `Hello` carries these.
    pub fn announced_addrs(&self) -> &[SocketAddr] {
        self.net.announced_addrs()
    }

    /// Counters since the node was created.
    pub fn stats(&self) -> Stats {
        self.parts.stats(&self.net)
    }

    /// Connections in any state (dialling, handshaking, established,
    /// closing as a duplicate).
    pub fn connection_count(&self) -> usize {
        self.net.connection_count()
    }

    /// Connections whose session is established: one per peer up, plus
    /// any duplicate still being drained (dials and handshakes in flight
    /// are not counted, as [`Node::connection_count`] counts them).
    pub fn established_count(&self) -> usize {
        self.net.established_count()
    }

    /// Bytes counted against
    /// [`SessionConfig::receive_budget`](crate::SessionConfig::receive_budget):
    /// the connections' partial frames, and the payloads the last call
    /// decompressed (released at the next call, when the driver has taken
    /// them).
    pub fn receive_budget_used(&self) -> usize {
        self.net.receive_budget_used()
    }

    /// Connections this node dialled, in any state.
    pub fn outbound_count(&self) -> usize {
        self.net.outbound_count()
    }

    /// Whether `peer` is up (an established session exists).
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.net.is_up(peer)
    }

    /// Peers that are up, in id order.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        self.net.connected_peers()
    }

    /// How many peers are up.
    pub fn peer_count(&self) -> usize {
        self.net.peer_count()
    }

    /// The smoothed ping round-trip time to `peer`, once a pong came back.
    pub fn rtt(&self, peer: NodeId) -> Option<Duration> {
        self.net.rtt(peer)
    }

    /// Whether `peer` missed its last ping.
    pub fn is_suspect(&self, peer: NodeId) -> bool {
        self.net.is_suspect(peer)
    }

    /// The peer cache: every node known with its listen addresses, the
    /// tried ones (dialled and authenticated by this node) first, each part
    /// in id order. [`Node::peer_cache`] says which are tried.
    pub fn known_peers(&self) -> Vec<PeerEntry> {
        self.net.known_peers()
    }

    /// The peer cache with each entry's table (tried or new), tried ones
    /// first, each part in id order. Save it and hand it to
    /// [`PeersCommand::RestorePeers`](crate::PeersCommand::RestorePeers) at
    /// the next start to rejoin without a bootstrap node, tried peers first.
    pub fn peer_cache(&self) -> Vec<crate::KnownPeer> {
        self.net.peer_cache()
    }

    /// Entries in the peer cache's tried table (at most a quarter of
    /// `peers.max_known_peers`).
    pub fn tried_peer_count(&self) -> usize {
        self.net.tried_count()
    }

    /// Origins the broadcast replay window remembers (at most
    /// `mesh.replay_origins`;
    /// [`MeshStats::origins_evicted`](crate::MeshStats::origins_evicted)
    /// counts those forgotten).
    pub fn replay_origins_len(&self) -> usize {
        self.parts.mesh.replay_origins_len()
    }

    /// The mesh's peers now, in id order: HyParView's active view, or
    /// every peer up (`mesh.membership`). Broadcasts go to these alone.
    pub fn mesh_peers(&self) -> Vec<NodeId> {
        match &self.parts.membership {
            Some(hv) => hv.active_view(),
            None => self.net.peers_up(),
        }
    }

    /// Plumtree's graft cache: broadcasts kept and their payload bytes
    /// (bounded by `PlumtreeConfig::cache_bytes`; 0 when flooding).
    pub fn graft_cache(&self) -> (usize, usize) {
        self.parts
            .mesh
            .plumtree
            .as_ref()
            .map_or((0, 0), |pt| pt.cache_len())
    }

    /// The passive view's size (0 without HyParView).
    pub fn passive_view_len(&self) -> usize {
        self.parts
            .membership
            .as_ref()
            .map_or(0, |hv| hv.passive_len())
    }

    /// Deadlines queued, live or cancelled (stays within a constant factor
    /// of what is really pending).
    pub fn deadline_count(&self) -> usize {
        self.parts.deadline_count() + self.net.timers.len()
    }

    /// Requests awaiting responses, and messages waiting for their peers.
    pub fn messaging_pending(&self) -> MessagingPending {
        MessagingPending {
            requests: self.parts.messaging.as_ref().map_or(0, |m| m.pending()),
            queued: self.parts.messaging.as_ref().map_or(0, |m| m.queued()),
        }
    }

    /// Where this node stands towards the ring.
    pub fn chord_role(&self) -> ChordRole {
        self.parts.chord_role()
    }

    /// The successor list, nearest first (empty unless a member).
    pub fn chord_successors(&self) -> Vec<NodeId> {
        self.parts.ring.as_ref().map_or_else(Vec::new, |r| {
            r.chord.successors().iter().map(|p| p.id).collect()
        })
    }

    /// The predecessor, if known.
    pub fn chord_predecessor(&self) -> Option<NodeId> {
        self.parts
            .ring
            .as_ref()
            .and_then(|r| r.chord.predecessor().map(|p| p.id))
    }

    /// Distinct finger targets, by finger index (fingers the successor list
    /// covers are not kept).
    pub fn chord_fingers(&self) -> Vec<NodeId> {
        self.parts
            .ring
            .as_ref()
            .map_or_else(Vec::new, |r| r.chord.finger_ids())
    }

    /// Chord and table requests awaiting replies, and lookups in flight.
    pub fn chord_pending(&self) -> ChordPending {
        self.parts
            .ring
            .as_ref()
            .map_or_else(ChordPending::default, |r| ChordPending {
                requests: r.chord.rpc.len(),
                lookups: r.chord.lookups_in_flight(),
                forwards: r.chord.forwards_held(),
            })
    }

    /// What this node stores for `key` (a value or a tombstone, and its
    /// version); `None` if it stores nothing for it.
    pub fn dht_holds(&self, key: &crate::wire::DhtKey) -> Option<DhtHeld> {
        self.parts.ring.as_ref().and_then(|r| r.dht.holds(key))
    }

    /// Test hook: stores `body` for `key` as it is, unverified, as a holder
    /// with a corrupted or lying store would (it then answers reads with
    /// it); `true` if it replaced what was held (never without a ring).
    /// Not for production use.
    #[doc(hidden)]
    pub fn dht_corrupt(
        &mut self,
        now: Instant,
        key: crate::wire::DhtKey,
        body: crate::wire::DhtBody,
    ) -> bool {
        let replaced = self
            .parts
            .ring
            .as_deref_mut()
            .is_some_and(|r| r.dht.corrupt(now, key, body));
        self.find_deadline();
        replaced
    }

    /// Entries (values and tombstones) this node stores, and their bytes.
    pub fn dht_usage(&self) -> DhtUsage {
        self.parts
            .ring
            .as_ref()
            .map_or_else(DhtUsage::default, |r| r.dht.usage())
    }

    /// The sync table's winner for `key` (`None` if never written,
    /// collected, or the table is off).
    pub fn sync_get(&self, key: &[u8]) -> Option<crate::SyncHeld> {
        self.parts.sync.as_ref().and_then(|s| s.get(key))
    }

    /// Every key of the sync table and its winner, in key-hash order.
    pub fn sync_entries(&self) -> Vec<(bytes::Bytes, crate::SyncHeld)> {
        self.parts
            .sync
            .as_ref()
            .map(|s| s.entries())
            .unwrap_or_default()
    }

    /// The sync table's digest (spec/sync.md §5): the XOR of its winners'
    /// fingerprints; nodes that hold the same table have the same digest
    /// (0 for an empty table or one that is off).
    pub fn sync_digest(&self) -> u64 {
        self.parts.sync.as_ref().map_or(0, |s| s.digest())
    }

    /// Keys and bytes the sync table holds.
    pub fn sync_usage(&self) -> crate::SyncUsage {
        self.parts
            .sync
            .as_ref()
            .map(|s| s.usage())
            .unwrap_or_default()
    }

    /// Relay load: circuits this node carries as a relay, and reservations
    /// it holds for peers (`(0, 0)` without the relay component).
    pub fn relay_load(&self) -> (usize, usize) {
        self.parts.relay.as_ref().map_or((0, 0), |r| r.load())
    }

    /// Relays holding a reservation of this node, in id order.
    pub fn relays(&self) -> Vec<NodeId> {
        self.parts
            .relay
            .as_ref()
            .map_or_else(Vec::new, |r| r.relays())
    }

    /// Tests: as a relay, flip one bit of the next circuit data this node
    /// forwards (a relay that alters what it carries; the ends' session
    /// must fail). Does nothing without the relay component.
    #[doc(hidden)]
    pub fn relay_flip_next(&mut self) {
        if let Some(relay) = self.parts.relay.as_deref_mut() {
            relay.flip_next();
        }
    }

    /// Feeds a network fact or a timeout. Drain [`Node::poll_output`]
    /// afterwards, then re-read [`Node::poll_timeout`].
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.net.advance(now);
        let (net, parts) = (&mut self.net, &mut self.parts);
        match input {
            Input::Connected {
                conn,
                remote,
                direction,
            } => net.on_connected(conn, remote, direction, parts),
            Input::Received { conn, bytes } => net.on_received(conn, bytes, parts),
            Input::Closed { conn, reason } => {
                net.forget(conn, CloseReason::Transport(reason), None, false, parts)
            }
            Input::DialFailed { conn, reason } => {
                net.forget(conn, CloseReason::DialFailed(reason), None, false, parts)
            }
            Input::Timeout => {}
        }
        self.after_call();
    }

    /// Asks the node to do something: a [`Command`], or any component's
    /// command (`MeshCommand::Broadcast { .. }`, …). On `Err` nothing
    /// changed. Drain [`Node::poll_output`] afterwards, then re-read
    /// [`Node::poll_timeout`].
    pub fn command(
        &mut self,
        now: Instant,
        command: impl Into<Command>,
    ) -> Result<Accepted, CommandError> {
        let command = command.into();
        self.net.advance(now);
        let result = if self.net.is_shut_down() && command != Command::Shutdown {
            Err(CommandError::ShutDown)
        } else {
            self.parts.command(&mut self.net, command)
        };
        self.after_call();
        result
    }

    /// The next thing the driver must do, in order. Call until `None` after
    /// every [`handle_input`](Node::handle_input) and
    /// [`command`](Node::command).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.net.poll_output()
    }

    /// [`handle_input`](Node::handle_input), with the call's outputs
    /// appended to `out`, the driver's own queue, instead of held for
    /// [`poll_output`](Node::poll_output). `out` ends up with exactly what
    /// `poll_output` would have returned, in the same order: first any
    /// output still queued from an earlier call, then this call's. Then
    /// re-read [`Node::poll_timeout`].
    ///
    /// The node writes into `out` directly: no output is moved twice, and a
    /// driver that keeps one `out` for all its calls allocates it once
    /// (the node's own queue stays empty, see [`Node::set_outputs_kept`]).
    /// What was in `out` before stays in front.
    ///
    /// ```
    /// use std::collections::VecDeque;
    /// use ringmesh::{Config, Identity, Input, Instant, Node, Output};
    ///
    /// let mut node = Node::new(Config::default(), Identity::from_secret_bytes([1; 32]), 1, Instant::ZERO)?;
    /// // One queue for the driver's whole life, reused at every call.
    /// let mut outputs = VecDeque::new();
    /// while let Some(at) = node.poll_timeout().filter(|&at| at <= Instant::ZERO) {
    ///     node.handle_input_into(at, Input::Timeout, &mut outputs);
    ///     while let Some(output) = outputs.pop_front() {
    ///         match output {
    ///             // A real driver opens, writes and closes sockets here,
    ///             // and reports what became of them with `handle_input_into`
    ///             // (whose outputs join the back of the same queue).
    ///             Output::Dial { .. } | Output::DialFromListenPort { .. } => {}
    ///             Output::Send { .. } | Output::Close { .. } | Output::Event(_) => {}
    ///         }
    ///     }
    /// }
    /// assert!(node.poll_output().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_input_into(&mut self, now: Instant, input: Input, out: &mut VecDeque<Output>) {
        self.with_outputs_in(out, |node| node.handle_input(now, input));
    }

    /// [`command`](Node::command), with the call's outputs appended to
    /// `out`, as [`handle_input_into`](Node::handle_input_into) does.
    pub fn command_into(
        &mut self,
        now: Instant,
        command: impl Into<Command>,
        out: &mut VecDeque<Output>,
    ) -> Result<Accepted, CommandError> {
        let command = command.into();
        self.with_outputs_in(out, |node| node.command(now, command))
    }

    /// Moves every queued output to the back of `out`, in order: what
    /// calling [`poll_output`](Node::poll_output) until `None` and pushing
    /// each would do, in one go. For a driver that mixes the two kinds of
    /// call (or took the node with outputs already queued).
    pub fn drain_outputs(&mut self, out: &mut VecDeque<Output>) {
        self.net.drain_outputs(out);
    }

    /// Runs `call` with `out` as the node's output queue: the node pushes
    /// straight into the driver's queue (swapped in, then back out, so each
    /// keeps its own allocation).
    fn with_outputs_in<R>(
        &mut self,
        out: &mut VecDeque<Output>,
        call: impl FnOnce(&mut Self) -> R,
    ) -> R {
        self.net.drain_outputs(out);
        self.net.swap_outputs(out);
        let result = call(self);
        self.net.swap_outputs(out);
        result
    }

    /// When the driver must next call `handle_input(_, Input::Timeout)`;
    /// `None` if nothing is pending (only after shutdown: a running node
    /// always has its maintenance round ahead). O(1): found at the end of
    /// the last call. Re-read after every call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.map(|((at, _), _)| at)
    }

    /// Fires every deadline that is due, in order, then drops cancelled
    /// ones from the tops of the queues, and notes the earliest left.
    ///
    /// A call that armed nothing, with nothing due when it began, skips
    /// the search: entries only join a queue by being armed (each draws a
    /// sequence number from the node's counter, [`Net::timers_armed`]),
    /// so no queue holds one earlier than the last earliest, which is
    /// after `now`.
    fn after_call(&mut self) {
        let now = self.net.now();
        self.parts.pump_relayed(&mut self.net);
        let mut earliest = self.deadline;
        if self.net.timers_armed() != self.armed_then
            || earliest.is_some_and(|((at, _), _)| at <= now)
        {
            loop {
                earliest = self.parts.earliest(&self.net);
                match earliest {
                    Some(((at, _), queue)) if at <= now => {
                        self.parts.fire_top(&mut self.net, queue);
                        self.parts.pump_relayed(&mut self.net);
                    }
                    _ => break,
                }
            }
        }
        let armed = self.net.timers_armed();
        self.parts.tidy_timers(&mut self.net);
        // If nothing was armed since `earliest` was found (tidying only
        // drops entries), it is still the earliest while its queue has it
        // on top.
        let stands = self.net.timers_armed() == armed
            && earliest.is_none_or(|(top, queue)| self.parts.top(&self.net, queue) == Some(top));
        if stands {
            self.deadline = earliest;
            self.armed_then = armed;
        } else {
            self.find_deadline();
        }
    }

    /// Searches every queue for the earliest deadline.
    fn find_deadline(&mut self) {
        self.deadline = self.parts.earliest(&self.net);
        self.armed_then = self.net.timers_armed();
    }
}

/// Logs the start of a shutdown (kept here: it is the node's, not a
/// component's, event).
fn log_shutdown(net: &Net) {
    info!(node = %net.me().short(), connections = net.connection_count(), "shutting down");
}

#[cfg(test)]
mod tests;
