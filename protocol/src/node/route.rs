//! The router: which component a command, a message, a timer and a peer
//! change go to, and in which order when several care. It holds no
//! component's rules; where one fact concerns several components (a peer
//! came up, a ring member died, a lookup ended) it tells each in turn, in
//! the order written here.

use core::net::SocketAddr;

use tracing::debug;

use crate::Direction;
use crate::blobs::{Blobs, BlobsError, BlobsStats};
use crate::chord::{
    Chord, ChordCommand, ChordError, ChordRole, Finished, LookupError, LookupFor, MaybeChord,
    RingCall, Timer as ChordTimer,
};
use crate::cx::Cx;
use crate::dht::{Dht, DhtCommand, DhtError, DhtStats};
use crate::liveness::Liveness;
use crate::membership::{Change, HyParView, MembershipStats};
use crate::mesh::{AllPeers, Membership, Mesh, MeshCommand, MeshEvent, MeshPeers, Verdict};
use crate::messaging::{Messaging, MessagingCommand, MessagingError};
use crate::peers::RelayedOutput;
use crate::peers::{Net, PeersCommand, PeersError, Upcalls};
use crate::reach::Reach;
use crate::relay::{Act, Relay, RelayCommand, RelayError, RelayStats, Via};
use crate::rpc::{Done, Failure, Outcome};
use crate::sync::{SyncError, SyncTable};
use crate::time::Instant;
use crate::wire::{Capabilities, Direct, Message, ObservedAddr, Ping, Pong, Request};
use foldhash::fast::FixedState;

use crate::{
    Accepted, ChordStats, CloseReason, Command, CommandError, Config, ConnId, LivenessStats,
    MeshStats, MessagingStats, NodeId, PeersStats, ReachStats, SyncStats,
};

/// Counters an operator reads to see what a node has been doing, one
/// struct per component. They only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections, frames and bytes.
    pub peers: PeersStats,
    /// Pings and deaths.
    pub liveness: LivenessStats,
    /// Broadcasts (flooding or Plumtree).
    pub mesh: MeshStats,
    /// HyParView (all zero while the mesh's peers are every peer up).
    pub membership: MembershipStats,
    /// Requests.
    pub messaging: MessagingStats,
    /// The ring (and the table's requests, which are ring requests).
    pub chord: ChordStats,
    /// The table: refusals (unverified, unentitled, quotas) and evictions.
    pub dht: DhtStats,
    /// The sync table (all zero while it is off).
    pub sync: SyncStats,
    /// Blobs (all zero while off).
    pub blobs: BlobsStats,
    /// Observed addresses (all zero while `Config::reach` is off).
    pub reach: ReachStats,
    /// Relays (all zero while `Config::relay` is off).
    pub relay: RelayStats,
}

/// The components above the connection layer.
pub(super) struct Parts {
    pub(super) liveness: Liveness,
    pub(super) mesh: Mesh,
    /// HyParView, when `mesh.membership` runs it (boxed: most nodes of a
    /// large flood simulation carry one pointer).
    pub(super) membership: Option<Box<HyParView>>,
    /// Direct messages and requests, allocated at the node's first
    /// messaging command or `Response` (boxed: most nodes of a large flood
    /// simulation send none and carry one pointer). Until then it would
    /// hold nothing: no waiting peer, no call, no deadline.
    pub(super) messaging: Option<Box<Messaging>>,
    /// The ring and the table, allocated only when the config runs chord:
    /// a node without them (a flood-only node, a million of them in a
    /// simulation) saves their ~1.7 KB and never reads their deadlines.
    /// Off, they would be inert: they refuse commands (`Off`), route
    /// nothing and ignore peers, which is what `None` does (a command that
    /// needs them gets a stand-in, [`Ring::off`]).
    pub(super) ring: Option<Box<Ring>>,
    /// The sync table, `None` while `Config::sync` is (boxed like the
    /// ring, so a node without it carries one pointer).
    pub(super) sync: Option<Box<SyncTable>>,
    /// Blobs, `None` while `Config::blobs` is.
    pub(super) blobs: Option<Box<Blobs>>,
    /// Observed addresses, `None` while `Config::reach` is.
    pub(super) reach: Option<Box<Reach>>,
    /// Relays, `None` while `Config::relay` is.
    pub(super) relay: Option<Box<Relay>>,
}

/// The ring and the table it carries.
pub(super) struct Ring {
    pub(super) chord: Chord,
    pub(super) dht: Dht,
}

impl Ring {
    /// A ring that is off, standing in for a node without one where a
    /// command needs one: it refuses every command with `Off` and keeps
    /// nothing.
    fn off() -> Self {
        Ring {
            chord: Chord::new(None, &[], 0, FixedState::default()),
            dht: Dht::new(None, None, FixedState::default()),
        }
    }
}

/// The deadline queues, one per timer owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queue {
    Net,
    Liveness,
    Messaging,
    Requests,
    Chord,
    RingCalls,
    Dht,
    Sync,
    Blobs,
    Mesh,
    Relay,
}

impl Parts {
    /// The components of a node configured by `config` (validated).
    pub(super) fn new(config: &Config, seed: u64, hasher: &FixedState) -> Self {
        Parts {
            liveness: Liveness::new(&config.liveness),
            mesh: Mesh::new(&config.mesh, seed, hasher.clone()),
            membership: match &config.mesh.membership {
                Membership::HyParView(hv) => Some(Box::new(HyParView::new(hv, seed))),
                _ => None,
            },
            messaging: None,
            ring: config.chord.is_some().then(|| {
                Box::new(Ring {
                    chord: Chord::new(
                        config.chord.as_ref(),
                        &config.listen_addrs,
                        seed,
                        hasher.clone(),
                    ),
                    dht: Dht::new(config.dht.as_ref(), config.chord.as_ref(), hasher.clone()),
                })
            }),
            sync: config
                .sync
                .as_ref()
                .map(|sync| Box::new(SyncTable::new(sync, hasher.clone()))),
            blobs: config
                .blobs
                .as_ref()
                .map(|blobs| Box::new(Blobs::new(blobs, seed))),
            reach: config
                .reach
                .as_ref()
                .map(|reach| Box::new(Reach::new(reach.clone()))),
            relay: config
                .relay
                .as_ref()
                .map(|relay| Box::new(Relay::new(relay.clone()))),
        }
    }

    /// The ring's role (`Off` without one).
    pub(super) fn chord_role(&self) -> ChordRole {
        self.ring
            .as_ref()
            .map_or(ChordRole::Off, |r| r.chord.role())
    }

    /// Every component's counters.
    pub(super) fn stats(&self, net: &Net) -> Stats {
        Stats {
            peers: net.stats(),
            liveness: self.liveness.stats,
            mesh: self.mesh.stats(),
            membership: self
                .membership
                .as_ref()
                .map(|m| m.stats)
                .unwrap_or_default(),
            messaging: MessagingStats {
                late_responses: self
                    .messaging
                    .as_ref()
                    .map_or(0, |m| m.requests.late_replies),
            },
            chord: self
                .ring
                .as_ref()
                .map_or_else(ChordStats::default, |r| ChordStats {
                    late_replies: r.chord.rpc.late_replies,
                    route_acks_missed: r.chord.rpc.acks_missed,
                    ..r.chord.stats
                }),
            dht: self
                .ring
                .as_ref()
                .map_or_else(DhtStats::default, |r| r.dht.stats()),
            sync: self.sync.as_ref().map(|s| s.stats).unwrap_or_default(),
            blobs: self.blobs.as_ref().map(|b| b.stats()).unwrap_or_default(),
            reach: self.reach.as_ref().map(|r| r.stats).unwrap_or_default(),
            relay: self.relay.as_ref().map(|r| r.stats).unwrap_or_default(),
        }
    }

    // ----- commands -----

    /// Hands `command` to the component that owns it.
    pub(super) fn command(
        &mut self,
        net: &mut Net,
        command: Command,
    ) -> Result<Accepted, CommandError> {
        match command {
            Command::Peers(command) => Ok(self.peers_command(net, command)?),
            Command::Mesh(MeshCommand::Broadcast { payload }) => {
                let peers = mesh_peers(&self.membership);
                Ok(self.mesh.broadcast(net, peers, payload)?)
            }
            Command::Messaging(command) => Ok(self.messaging_command(net, command)?),
            Command::Chord(command) => Ok(self.chord_command(net, command)?),
            Command::Dht(command) => Ok(self.dht_command(net, command)?),
            Command::Sync(command) => match &mut self.sync {
                Some(sync) => Ok(sync.command(net, command)?),
                None => Err(SyncError::Off.into()),
            },
            Command::Blobs(command) => match &mut self.blobs {
                Some(blobs) => Ok(blobs.command(net, command)?),
                None => Err(BlobsError::Off.into()),
            },
            Command::Relay(command) => Ok(self.relay_command(net, command)?),
            Command::Shutdown => {
                self.shutdown(net);
                Ok(Accepted::Done)
            }
        }
    }

    fn peers_command(
        &mut self,
        net: &mut Net,
        command: PeersCommand,
    ) -> Result<Accepted, PeersError> {
        match command {
            PeersCommand::Connect { addr, peer } => net.connect(&[addr], peer),
            PeersCommand::ConnectAny { addrs, peer } => net.connect(&addrs, peer),
            PeersCommand::AddPeers { peers } => {
                net.add_peers(&peers);
                Ok(Accepted::Done)
            }
            PeersCommand::RestorePeers { peers } => {
                net.restore_peers(&peers);
                Ok(Accepted::Done)
            }
            PeersCommand::Disconnect { peer } => net.disconnect(peer, self),
            PeersCommand::Announce { addr } => net.announce(addr),
        }
    }

    fn relay_command(
        &mut self,
        net: &mut Net,
        command: RelayCommand,
    ) -> Result<Accepted, RelayError> {
        let Some(relay) = self.relay.as_deref_mut() else {
            return Err(RelayError::Off);
        };
        let offers = |net: &Net, peer| {
            net.peer_caps(peer)
                .is_some_and(|c| c.contains(Capabilities::RELAY))
        };
        match command {
            RelayCommand::Reserve { relay: via } => {
                if !offers(net, via) {
                    return Err(RelayError::NotARelay(via));
                }
                relay.reserve(net, via)?;
                Ok(Accepted::Done)
            }
            RelayCommand::Connect { relay: via, target } => {
                if target == net.me() || net.is_up(target) {
                    return Err(RelayError::Pointless(target));
                }
                if !offers(net, via) {
                    return Err(RelayError::NotARelay(via));
                }
                let conn = self
                    .relay_dial(net, via, target)
                    .ok_or(RelayError::TooManyConnections)?;
                Ok(Accepted::Dialing(conn))
            }
        }
    }

    /// Opens a relayed dial to `target` through `via` (a connected relay).
    fn relay_dial(&mut self, net: &mut Net, via: NodeId, target: NodeId) -> Option<ConnId> {
        let relay = self.relay.as_deref_mut()?;
        if !relay.has_room() {
            return None;
        }
        let remote = net.link_remote(via)?;
        let conn = net.dial_relayed(target, remote)?;
        if !relay.connect(net, via, target, conn) {
            net.forget(
                conn,
                CloseReason::Relay(crate::wire::RelayStatus::Closed),
                None,
                false,
                self,
            );
            return None;
        }
        Some(conn)
    }

    /// Opens a session to `target` through a relay (`Relay::fallback`):
    /// a circuit at once through a relay that is up, or a dial to the
    /// relay announced for `target`, the circuit to follow when it is up.
    fn dial_through_relay(&mut self, net: &mut Net, target: NodeId) -> bool {
        let Some(via) = self
            .relay
            .as_deref_mut()
            .filter(|r| r.has_room())
            .and_then(|r| r.fallback(net, target))
        else {
            return false;
        };
        match via {
            Via::Up(via) => self.relay_dial(net, via, target).is_some(),
            Via::Dial(via, addr) => {
                let dialling = net.is_dialling(via)
                    || (!net.is_shut_down() && net.dial_refusal(1).is_none() && {
                        net.dial_all(&[addr], Some(via), false, None);
                        true
                    });
                dialling
                    && self
                        .relay
                        .as_deref_mut()
                        .is_some_and(|r| r.await_relay(via, target))
            }
        }
    }

    /// Relay work when `peer` comes up: this node's own relayed
    /// addresses, and the circuits that waited for `peer` as their relay.
    fn relay_peer_up(&mut self, net: &mut Net, peer: NodeId) {
        let Some(relay) = self.relay.as_deref_mut() else {
            return;
        };
        relay.announce_to(net, peer);
        for target in relay.take_awaiting(peer) {
            if !net.is_up(target)
                && self.relay_dial(net, peer, target).is_none()
                && let Some(messaging) = &mut self.messaging
            {
                messaging.dial_failed(net, target);
            }
        }
    }

    /// Does what the relay component asked of the connection layer.
    fn relay_act(&mut self, net: &mut Net, act: Act) {
        match act {
            Act::Opened { conn, relay } => match net.link_remote(relay) {
                Some(remote) => net.on_connected(conn, remote, Direction::Outbound, self),
                None => net.forget(
                    conn,
                    CloseReason::Relay(crate::wire::RelayStatus::Closed),
                    None,
                    false,
                    self,
                ),
            },
            Act::Accept { relay, circuit } => {
                let conn = match net.link_remote(relay) {
                    Some(remote) => net.accept_relayed(remote, self),
                    None => None,
                };
                if let Some(r) = self.relay.as_deref_mut() {
                    r.accepted(net, relay, circuit, conn);
                }
            }
            Act::Deliver { conn, data } => net.on_received(conn, data, self),
            Act::Close { conn, reason } => net.forget(conn, reason, None, false, self),
            Act::Punch { peer, addrs } => {
                if net.dial_punch(&addrs, peer).is_none()
                    && let Some(r) = self.relay.as_deref_mut()
                {
                    r.punch_refused();
                }
            }
        }
    }

    /// This node's hole-punch candidates (`spec/relay.md` §7): each IP a
    /// peer reported seeing it at, with its listen port.
    fn punch_candidates(&self, net: &Net) -> Vec<SocketAddr> {
        let (Some(reach), Some(port)) = (
            self.reach.as_deref(),
            net.announced_addrs().first().map(|a| a.port()),
        ) else {
            return Vec::new();
        };
        let mut addrs: Vec<SocketAddr> = reach
            .reported_ips()
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        addrs.truncate(crate::wire::MAX_PUNCH_ADDRS);
        addrs
    }

    /// Hands what relayed connections' sessions wrote or closed to the
    /// relay component, which carries it in their circuits (called before
    /// every call returns; a node without relayed connections has none).
    pub(super) fn pump_relayed(&mut self, net: &mut Net) {
        // Called after every call; nearly always nothing is relayed.
        if !net.has_relayed() {
            return;
        }
        while let Some(out) = net.take_relayed() {
            let Some(relay) = self.relay.as_deref_mut() else {
                continue;
            };
            let act = match out {
                RelayedOutput::Send { conn, bytes } => relay.send(net, conn, bytes),
                RelayedOutput::Close { conn } => {
                    relay.close(net, conn);
                    None
                }
            };
            if let Some(act) = act {
                self.relay_act(net, act);
            }
        }
    }

    fn messaging_command(
        &mut self,
        net: &mut Net,
        command: MessagingCommand,
    ) -> Result<Accepted, MessagingError> {
        // Without a ring, an off one is built only if a lookup needs it.
        let chord = &mut MaybeChord::new(self.ring.as_deref_mut().map(|ring| &mut ring.chord));
        let messaging = self.messaging.get_or_insert_with(|| {
            Box::new(Messaging::new(
                &net.config().messaging,
                net.hasher().clone(),
            ))
        });
        match command {
            MessagingCommand::Send { to, payload } => messaging.send(net, chord, to, payload),
            MessagingCommand::Request {
                to,
                payload,
                timeout,
            } => messaging.request(net, chord, to, payload, timeout),
            MessagingCommand::Respond { to, id, payload } => {
                Messaging::respond(net, to, id, payload)
            }
        }
    }

    fn chord_command(
        &mut self,
        net: &mut Net,
        command: ChordCommand,
    ) -> Result<Accepted, ChordError> {
        let mut off = None;
        let Ring { chord, dht } = match self.ring.as_deref_mut() {
            Some(ring) => ring,
            None => off.insert(Ring::off()),
        };
        match command {
            ChordCommand::Found { founders } => chord.found(net, dht, founders),
            ChordCommand::Create => chord.create(net, dht),
            ChordCommand::Join { via } => chord.join(net, via),
            ChordCommand::Lookup { key } => chord.lookup_command(net, key).map(Accepted::Op),
        }
    }

    fn dht_command(&mut self, net: &mut Net, command: DhtCommand) -> Result<Accepted, DhtError> {
        let mut off = None;
        let Ring { chord, dht } = match self.ring.as_deref_mut() {
            Some(ring) => ring,
            None => off.insert(Ring::off()),
        };
        match command {
            DhtCommand::Put { key, value } => dht.put(net, chord, key, Some(value)),
            DhtCommand::Delete { key } => dht.put(net, chord, key, None),
            DhtCommand::Get { key } => dht.get(net, chord, key),
        }
    }

    /// Fails everything pending, leaves the ring and closes every
    /// connection with a goodbye. Idempotent.
    fn shutdown(&mut self, net: &mut Net) {
        if net.is_shut_down() {
            return;
        }
        net.set_shut_down();
        super::log_shutdown(net);
        if let Some(messaging) = &mut self.messaging {
            messaging.shutdown(net);
        }
        let lookups = self.ring.as_ref().map(|r| r.chord.lookup_ids());
        for id in lookups.into_iter().flatten() {
            if let Some(finished) = self
                .ring
                .as_deref_mut()
                .and_then(|r| r.chord.lookup_failed(id, LookupError::ShutDown))
            {
                self.lookup_finished(net, finished);
            }
        }
        if let Some(Ring { chord, dht }) = self.ring.as_deref_mut() {
            chord.clear_requests();
            dht.shutdown(net);
            chord.leave();
        }
        net.close_all(self);
    }

    // ----- the ring's requests and lookups -----

    /// A ring request ended: if that shows its peer dead, every pointer
    /// and request to it goes first (§4), then its own continuation.
    fn ring_done(&mut self, net: &mut Net, done: Done<RingCall>) {
        let dead = Chord::is_death(&done);
        if dead {
            self.ring_peer_dead(net, done.peer.id);
        } else if Chord::is_silent_hop(&done)
            && let Some(peer) = self
                .liveness
                .request_missed(net, done.peer.id, done.sent_at)
        {
            // A recursive lookup's next hop that left it unanswered, with
            // nothing heard from it since, is a liveness miss (suspect,
            // probed at once; spec/chord.md §7.4): dead if that was its
            // last. Its connections close; the ring hears it as any death.
            net.declare_dead(peer, self);
        }
        self.ring_continue(net, done, dead);
    }

    /// `peer` is dead to the ring: flush it, then end every request to it,
    /// in id order.
    fn ring_peer_dead(&mut self, net: &mut Net, peer: NodeId) {
        let Some(ring) = self.ring.as_deref_mut() else {
            return;
        };
        ring.chord.flush_dead(net, peer);
        for id in ring.chord.rpc.all_to(peer) {
            if let Some(done) = self
                .ring
                .as_deref_mut()
                .and_then(|r| r.chord.rpc.take(id, Outcome::Failed(Failure::Dead)))
            {
                self.ring_continue(net, done, true);
            }
        }
    }

    /// Hands an ended ring request to whoever made it.
    fn ring_continue(&mut self, net: &mut Net, done: Done<RingCall>, dead: bool) {
        let Some(Ring { chord, dht }) = self.ring.as_deref_mut() else {
            return;
        };
        match done.client {
            RingCall::Client(task) => dht.call_done(net, chord, task, done),
            _ => {
                if let Some(finished) = chord.call_done(net, dht, done, dead) {
                    self.lookup_finished(net, finished);
                }
            }
        }
    }

    /// Closes the connections chord dialled to nodes that left its routing
    /// set, unless messages wait for them (spec/chord.md §4): once per
    /// fix-fingers tick, so the links a growing ring leaves behind do not
    /// pile up (each costs its pings and its memory on both ends).
    fn release_unneeded(&mut self, net: &mut Net) {
        let Some(ring) = self.ring.as_deref() else {
            return;
        };
        for peer in ring.chord.unneeded_links(net) {
            let needed = self.waiting_for(peer);
            net.release(peer, needed, self);
        }
    }

    /// A lookup ended: close the connections it opened that nothing needs,
    /// then hand its result to whatever started it.
    fn lookup_finished(&mut self, net: &mut Net, finished: Finished) {
        for &peer in &finished.dialled {
            let needed =
                self.ring.as_ref().is_some_and(|r| r.chord.needs(peer)) || self.waiting_for(peer);
            net.release(peer, needed, self);
        }
        let Some(Ring { chord, dht }) = self.ring.as_deref_mut() else {
            return;
        };
        let Some(finished) = chord.deliver(net, dht, finished) else {
            return;
        };
        match finished.purpose {
            LookupFor::Route(target) => {
                if let Some(messaging) = &mut self.messaging {
                    messaging.route_found(net, target, finished.result);
                }
            }
            LookupFor::Client(task) => dht.found(net, chord, task, finished.result),
            LookupFor::Command(_)
            | LookupFor::Join
            | LookupFor::Finger(_)
            | LookupFor::Merge(_) => {}
        }
    }

    // ----- timers -----

    /// Pops the top of `queue` and fires it if it still applies (the
    /// router found it the earliest of all queues, and due).
    pub(super) fn fire_top(&mut self, net: &mut Net, queue: Queue) {
        match queue {
            Queue::Net => {
                if let Some(timer) = net.timers.pop()
                    && net.is_live(&timer)
                {
                    net.fire(timer, self);
                }
            }
            Queue::Liveness => {
                if let Some(timer) = self.liveness.timers.pop()
                    && Liveness::is_live(net, &timer)
                    && let Some(dead) = self.liveness.fire(net, timer)
                {
                    net.declare_dead(dead, self);
                }
            }
            Queue::Messaging => {
                if let Some(messaging) = self.messaging.as_deref_mut()
                    && let Some(timer) = messaging.timers.pop()
                    && messaging.is_live(&timer)
                {
                    messaging.fire(net, timer);
                }
            }
            Queue::Requests => {
                if let Some(messaging) = self.messaging.as_deref_mut()
                    && let Some(timer) = messaging.requests.timers.pop()
                    && messaging.requests.is_live(&timer)
                    && let Some(done) = messaging.requests.fire(timer)
                {
                    messaging.request_done(net, done);
                }
            }
            Queue::Chord => {
                let mut finished = None;
                let mut fix_fingers = false;
                if let Some(Ring { chord, dht }) = self.ring.as_deref_mut()
                    && let Some(timer) = chord.timers.pop()
                    && chord.is_live(&timer)
                {
                    fix_fingers = matches!(timer, ChordTimer::FixFingers);
                    finished = chord.fire(net, dht, timer);
                }
                if let Some(finished) = finished {
                    self.lookup_finished(net, finished);
                }
                if fix_fingers {
                    self.release_unneeded(net);
                }
            }
            Queue::RingCalls => {
                if let Some(Ring { chord, .. }) = self.ring.as_deref_mut()
                    && let Some(timer) = chord.rpc.timers.pop()
                    && chord.rpc.is_live(&timer)
                    && let Some(done) = chord.rpc.fire(timer)
                {
                    if matches!(done.outcome, Outcome::Failed(Failure::TimedOut)) {
                        debug!(peer = %done.peer.id.short(), req = done.id, "chord request timed out");
                    }
                    self.ring_done(net, done);
                }
            }
            Queue::Dht => {
                if let Some(Ring { chord, dht }) = self.ring.as_deref_mut()
                    && let Some(timer) = dht.timers.pop()
                    && dht.is_live(&timer, chord.is_member())
                {
                    dht.fire(net, chord, timer);
                }
            }
            Queue::Sync => {
                if let Some(sync) = &mut self.sync
                    && let Some(timer) = sync.timers.pop()
                {
                    sync.fire(net, timer);
                }
            }
            Queue::Blobs => {
                if let Some(blobs) = &mut self.blobs
                    && let Some(timer) = blobs.timers.pop()
                {
                    blobs.fire(net, timer);
                }
            }
            Queue::Mesh => {
                let peers = mesh_peers(&self.membership);
                self.mesh.fire_next(net, peers);
            }
            Queue::Relay => {
                if let Some(relay) = &mut self.relay
                    && let Some(timer) = relay.timers.pop()
                    && relay.is_live(&timer)
                    && let Some(act) = relay.fire(net, timer)
                {
                    self.relay_act(net, act);
                }
            }
        }
    }

    /// The top entry of `queue` (deadline and sequence number).
    pub(super) fn top(&self, net: &Net, queue: Queue) -> Option<(Instant, u64)> {
        let ring = self.ring.as_deref();
        match queue {
            Queue::Net => net.timers.peek(),
            Queue::Liveness => self.liveness.timers.peek(),
            Queue::Messaging => self.messaging.as_ref().and_then(|m| m.timers.peek()),
            Queue::Requests => self
                .messaging
                .as_ref()
                .and_then(|m| m.requests.timers.peek()),
            Queue::Chord => ring.and_then(|r| r.chord.timers.peek()),
            Queue::RingCalls => ring.and_then(|r| r.chord.rpc.timers.peek()),
            Queue::Dht => ring.and_then(|r| r.dht.timers.peek()),
            Queue::Sync => self.sync.as_ref().and_then(|s| s.timers.peek()),
            Queue::Blobs => self.blobs.as_ref().and_then(|b| b.timers.peek()),
            Queue::Mesh => self.mesh.peek_timer(),
            Queue::Relay => self.relay.as_ref().and_then(|r| r.timers.peek()),
        }
    }

    /// The earliest entry of all queues (the node's and the components'),
    /// and its queue. Sequence numbers come from one counter, so no two
    /// entries tie. A plain scan, no array of candidates: it runs at every
    /// call that armed or fired a deadline.
    pub(super) fn earliest(&self, net: &Net) -> Option<((Instant, u64), Queue)> {
        let mut best: Option<((Instant, u64), Queue)> = None;
        let mut consider = |top: Option<(Instant, u64)>, queue: Queue| {
            if let Some(top) = top
                && best.is_none_or(|(b, _)| top < b)
            {
                best = Some((top, queue));
            }
        };
        consider(net.timers.peek(), Queue::Net);
        consider(self.liveness.timers.peek(), Queue::Liveness);
        if let Some(messaging) = &self.messaging {
            consider(messaging.timers.peek(), Queue::Messaging);
            consider(messaging.requests.timers.peek(), Queue::Requests);
        }
        if let Some(ring) = self.ring.as_deref() {
            consider(ring.chord.timers.peek(), Queue::Chord);
            consider(ring.chord.rpc.timers.peek(), Queue::RingCalls);
            consider(ring.dht.timers.peek(), Queue::Dht);
        }
        if let Some(sync) = &self.sync {
            consider(sync.timers.peek(), Queue::Sync);
        }
        if let Some(blobs) = &self.blobs {
            consider(blobs.timers.peek(), Queue::Blobs);
        }
        consider(self.mesh.peek_timer(), Queue::Mesh);
        if let Some(relay) = &self.relay {
            consider(relay.timers.peek(), Queue::Relay);
        }
        best
    }

    /// Deadlines queued in the components' queues.
    pub(super) fn deadline_count(&self) -> usize {
        self.liveness.timers.len()
            + self
                .messaging
                .as_ref()
                .map_or(0, |m| m.timers.len() + m.requests.timers.len())
            + self.ring.as_ref().map_or(0, |r| {
                r.chord.timers.len() + r.chord.rpc.timers.len() + r.dht.timers.len()
            })
            + self.sync.as_ref().map_or(0, |s| s.timers.len())
            + self.blobs.as_ref().map_or(0, |b| b.timers.len())
            + self.mesh.deadline_count()
            + self.relay.as_ref().map_or(0, |r| r.timers.len())
    }

    /// Drops cancelled deadlines from the tops of every queue (so that
    /// `poll_timeout` names one somebody waits for), and sweeps a queue
    /// that has doubled.
    pub(super) fn tidy_timers(&mut self, net: &mut Net) {
        net.tidy_timers();
        self.liveness
            .timers
            .tidy(|timer| Liveness::is_live(net, timer));
        if let Some(messaging) = &mut self.messaging {
            messaging.tidy_timers();
        }
        self.mesh.tidy_timers();
        if let Some(relay) = self.relay.as_deref_mut() {
            let mut timers = core::mem::take(&mut relay.timers);
            timers.tidy(|timer| relay.is_live(timer));
            relay.timers = timers;
        }
        if let Some(Ring { chord, dht }) = self.ring.as_deref_mut() {
            let member = chord.is_member();
            chord.tidy_timers();
            dht.tidy_timers(member);
        }
    }
}

/// The request id a reply message answers, for the ring's replies.
fn reply_req(message: &Message) -> Option<u64> {
    Some(match message {
        Message::ChordState(m) => m.req,
        Message::ChordFindSuccessorReply(m) => m.req,
        Message::ChordRouteReply(m) => m.req,
        Message::DhtPutReply(m) => m.req,
        Message::DhtGetReply(m) => m.req,
        Message::DhtReplicateAck(m) => m.req,
        Message::DhtSyncReply(m) => m.req,
        _ => return None,
    })
}

impl Upcalls for Parts {
    fn peer_up(&mut self, net: &mut Net, peer: NodeId, conn: ConnId, generation: u64) {
        self.liveness.peer_up(net, peer, generation);
        if let Some(ring) = self.ring.as_deref_mut() {
            ring.chord.peer_up(net, peer);
        }
        net.exchange_peers(peer, conn, self);
        self.relay_peer_up(net, peer);
        if let Some(hv) = &mut self.membership {
            let outbound = net.conn_direction(conn) == Some(Direction::Outbound);
            hv.peer_up(net, peer, outbound);
            self.membership_changed(net);
        }
        if let Some(messaging) = &mut self.messaging {
            messaging.peer_up(net, peer);
        }
        if let Some(sync) = &mut self.sync {
            sync.peer_up(net, peer);
        }
        if let Some(blobs) = &mut self.blobs {
            blobs.peer_up(net, peer);
        }
        // A relayed connection's remote is its relay's: nothing to report.
        if let (Some(reach), Some(remote), false) =
            (&mut self.reach, net.conn_remote(conn), conn.is_relayed())
        {
            reach.peer_up(net, peer, remote);
        }
        if conn.is_relayed() && self.relay.is_some() {
            let mine = self.punch_candidates(net);
            if let Some(relay) = self.relay.as_deref_mut() {
                relay.relayed_up(net, peer, mine);
            }
        }
    }

    fn peer_down(&mut self, net: &mut Net, peer: NodeId, reason: &CloseReason) {
        if let Some(ring) = self.ring.as_deref_mut()
            && ring.chord.peer_down(net, peer, reason)
        {
            self.ring_peer_dead(net, peer);
        }
        if let Some(messaging) = &mut self.messaging {
            messaging.peer_down(net, peer);
        }
        self.mesh.peer_down(mesh_peers(&self.membership), peer);
        if let Some(hv) = &mut self.membership {
            hv.peer_down(net, peer);
            self.membership_changed(net);
        }
        if let Some(sync) = &mut self.sync {
            sync.peer_down(peer);
        }
        if let Some(blobs) = &mut self.blobs {
            blobs.peer_down(peer);
        }
        if let Some(reach) = &mut self.reach {
            reach.peer_down(net, peer);
        }
        if let Some(relay) = &mut self.relay {
            for act in relay.peer_down(net, peer) {
                self.relay_act(net, act);
            }
        }
    }

    fn dial_failed(&mut self, net: &mut Net, peer: NodeId) {
        if self
            .ring
            .as_ref()
            .is_some_and(|r| r.chord.dial_failed(peer))
        {
            self.ring_peer_dead(net, peer);
        }
        // Every direct dial failed: try the relay announced for the peer,
        // else one holding a reservation of this node (peers that reserve
        // there too can be reached through it); messages waiting for the
        // peer wait for that dial.
        // With no relay announced for it, the neighbours are asked
        // (`FindPeer`): an answer naming its relay opens a circuit there.
        if self.waiting_for(peer)
            && self
                .relay
                .as_deref()
                .is_some_and(|r| !r.knows_relay_of(peer))
        {
            net.find_peer(peer);
        }
        if !self.dial_through_relay(net, peer)
            && let Some(messaging) = &mut self.messaging
        {
            messaging.dial_failed(net, peer);
        }
        // Targets that waited for a dial to `peer` as their relay.
        let waiting = self
            .relay
            .as_deref_mut()
            .map_or_else(Vec::new, |r| r.take_awaiting(peer));
        for target in waiting {
            if let Some(messaging) = &mut self.messaging {
                messaging.dial_failed(net, target);
            }
        }
        if let Some(hv) = &mut self.membership {
            hv.peer_down(net, peer);
            self.membership_changed(net);
        }
    }

    fn message(
        &mut self,
        net: &mut Net,
        conn: ConnId,
        from: NodeId,
        message: Message,
    ) -> Result<(), &'static str> {
        // Chord and the table speak only where both sides negotiated them
        // (spec/chord.md §4).
        let runs = |caps| {
            self.chord_role() != ChordRole::Off
                && net.conn_caps(conn).is_some_and(|c| c.contains(caps))
        };
        match message {
            Message::Ping(Ping { nonce }) => Liveness::on_ping(net, conn, nonce),
            Message::Pong(Pong { nonce }) => Liveness::on_pong(net, from, nonce),
            Message::Broadcast(broadcast) => {
                let peers = mesh_peers(&self.membership);
                if let Verdict::Misbehaving(peer) =
                    self.mesh.on_broadcast(net, peers, from, broadcast)
                {
                    net.close_misbehaving(peer, "relayed forged broadcasts", self);
                }
            }
            Message::IHave(ihave) => {
                let peers = mesh_peers(&self.membership);
                self.mesh.on_ihave(net, peers, from, ihave);
            }
            Message::Graft(graft) => {
                let peers = mesh_peers(&self.membership);
                self.mesh.on_graft(net, peers, from, graft);
            }
            Message::Prune(_) => {
                let peers = mesh_peers(&self.membership);
                self.mesh.on_prune(peers, from);
            }
            Message::Join(_)
            | Message::ForwardJoin(_)
            | Message::Neighbor(_)
            | Message::Disconnect(_)
            | Message::Shuffle(_)
            | Message::ShuffleReply(_) => {
                // A node that does not run HyParView ignores them: a mixed
                // network still floods over its links.
                if let Some(hv) = &mut self.membership {
                    match message {
                        Message::Join(_) => hv.on_join(net, from),
                        Message::ForwardJoin(m) => hv.on_forward_join(net, from, m),
                        Message::Neighbor(m) => hv.on_neighbor(net, from, m),
                        Message::Disconnect(_) => hv.on_disconnect(net, from),
                        Message::Shuffle(m) => hv.on_shuffle(net, from, m),
                        Message::ShuffleReply(m) => hv.on_shuffle_reply(net, m),
                        _ => {}
                    }
                    self.membership_changed(net);
                }
            }
            // Taken apart here: handing the whole message on moved it (176
            // bytes, a `memcpy` call) once more.
            Message::Direct(Direct { payload }) => Messaging::on_direct(net, from, payload),
            Message::Request(Request { id, payload }) => {
                Messaging::on_request(net, from, id, payload)
            }
            Message::Response(response) => {
                let messaging = self.messaging.get_or_insert_with(|| {
                    Box::new(Messaging::new(
                        &net.config().messaging,
                        net.hasher().clone(),
                    ))
                });
                messaging.on_response(net, from, response);
            }
            Message::ChordGetState(_)
            | Message::ChordNotify(_)
            | Message::ChordFindSuccessor(_)
            | Message::ChordRoute(_)
                if runs(Capabilities::CHORD) =>
            {
                if let Some(Ring { chord, dht }) = self.ring.as_deref_mut() {
                    chord.on_request(net, dht, from, message);
                }
            }
            Message::DhtPut(_)
            | Message::DhtGet(_)
            | Message::DhtReplicate(_)
            | Message::DhtSync(_)
                if runs(Capabilities::DHT) =>
            {
                if let Some(Ring { chord, dht }) = self.ring.as_deref_mut() {
                    dht.on_request(net, chord, from, message);
                }
            }
            Message::ChordState(_)
            | Message::ChordFindSuccessorReply(_)
            | Message::ChordRouteReply(_)
                if runs(Capabilities::CHORD) =>
            {
                self.ring_reply(net, from, message)
            }
            Message::ChordRouteAck(ack)
                if runs(Capabilities::CHORD.union(Capabilities::ROUTE_ACK)) =>
            {
                if let Some(ring) = self.ring.as_deref_mut() {
                    ring.chord.on_route_ack(from, ack.req);
                }
            }
            Message::DhtPutReply(_)
            | Message::DhtGetReply(_)
            | Message::DhtReplicateAck(_)
            | Message::DhtSyncReply(_)
                if runs(Capabilities::DHT) =>
            {
                self.ring_reply(net, from, message)
            }
            Message::SyncPublish(_) | Message::SyncDigest(_) | Message::SyncPull(_)
                if net
                    .conn_caps(conn)
                    .is_some_and(|c| c.contains(Capabilities::SYNC)) =>
            {
                let forger = self
                    .sync
                    .as_mut()
                    .and_then(|sync| sync.on_message(net, from, message));
                if let Some(peer) = forger {
                    net.close_misbehaving(peer, "sent forged sync entries", self);
                }
            }
            Message::BlobGet(_) | Message::BlobGroup(_) | Message::BlobEnd(_)
                if self.blobs.is_some()
                    && net
                        .conn_caps(conn)
                        .is_some_and(|c| c.contains(Capabilities::BLOBS)) =>
            {
                let liar = self
                    .blobs
                    .as_mut()
                    .and_then(|blobs| blobs.on_message(net, from, message));
                if let Some(peer) = liar {
                    net.close_misbehaving(peer, "sent blob groups that do not verify", self);
                }
            }
            Message::ObservedAddr(_) | Message::DialBack(_) | Message::DialBackResult(_)
                if net
                    .conn_caps(conn)
                    .is_some_and(|c| c.contains(Capabilities::REACH)) =>
            {
                if let Some(reach) = self.reach.as_deref_mut() {
                    reach_message(reach, net, conn, from, message);
                }
            }
            Message::RelayReserve(_)
            | Message::RelayReserveResult(_)
            | Message::RelayConnect(_)
            | Message::RelayConnectResult(_)
            | Message::RelayIncoming(_)
            | Message::RelayData(_)
            | Message::RelayClose(_)
            | Message::RelayDeliver(_)
            | Message::RelayEnded(_)
                if self.relay.is_some()
                    && net
                        .conn_caps(conn)
                        .is_some_and(|c| c.contains(Capabilities::RELAY)) =>
            {
                let act = self
                    .relay
                    .as_deref_mut()
                    .and_then(|relay| relay.on_message(net, from, message));
                if let Some(act) = act {
                    self.relay_act(net, act);
                }
            }
            Message::RelayAddrs(addrs)
                if self.relay.is_some()
                    && net
                        .conn_caps(conn)
                        .is_some_and(|c| c.contains(Capabilities::RELAY)) =>
            {
                let nodes = self
                    .relay
                    .as_deref_mut()
                    .map_or_else(Vec::new, |relay| relay.on_relay_addrs(net, addrs));
                // A node messages wait for, not dialled yet: through its
                // relay at once. It announces relays because it found
                // itself unreachable; the session may still punch to a
                // direct one (§7).
                for node in nodes {
                    if self.waiting_for(node) && !net.is_up(node) {
                        self.dial_through_relay(net, node);
                    }
                }
            }
            Message::HolePunch(_) | Message::HolePunchSync(_)
                if self.relay.is_some()
                    && net
                        .conn_caps(conn)
                        .is_some_and(|c| c.contains(Capabilities::RELAY)) =>
            {
                let mine = self.punch_candidates(net);
                let act = self.relay.as_deref_mut().and_then(|relay| {
                    relay.on_punch_message(net, from, message, conn.is_relayed(), mine)
                });
                if let Some(act) = act {
                    self.relay_act(net, act);
                }
            }
            other => return Err(other.name()),
        }
        Ok(())
    }

    fn peers_shared(&mut self, net: &mut Net, to: NodeId, ids: &[NodeId]) {
        if let Some(relay) = self.relay.as_deref_mut() {
            relay.share(net, to, ids);
        }
    }

    fn relayed_link_replaced(&mut self, net: &mut Net, peer: NodeId, conn: ConnId) {
        if let (Some(relay), Some(remote)) = (self.relay.as_deref_mut(), net.conn_remote(conn)) {
            relay.direct(net, peer, remote);
        }
    }

    fn take_dial_back(&mut self, peer: NodeId, now: Instant) -> bool {
        self.reach
            .as_mut()
            .is_some_and(|reach| reach.take_dial_back(peer, now))
    }

    fn probe_ended(&mut self, net: &mut Net, conn: ConnId, reached: bool) {
        if let Some(reach) = &mut self.reach {
            reach.probe_ended(net, conn, reached);
        }
    }

    fn waiting_for(&self, peer: NodeId) -> bool {
        self.messaging
            .as_ref()
            .is_some_and(|m| m.is_waiting_for(peer))
    }

    fn maintenance(&mut self, net: &mut Net) {
        // The mesh's replay window is bounded by count, not time; the
        // membership's round (repair, shuffle) runs on this one.
        if let Some(hv) = &mut self.membership {
            hv.round(net);
            self.membership_changed(net);
        }
    }
}

/// A reach message (`spec/reach.md` §3) from `from` on `conn`: a report
/// that may confirm an address (announced unless it is, then checked), a
/// request to be dialled back, or how a dial-back went.
fn reach_message(reach: &mut Reach, net: &mut Net, conn: ConnId, from: NodeId, message: Message) {
    match message {
        Message::ObservedAddr(ObservedAddr { addr }) => {
            let Some(confirmed) = reach.on_observed(from, addr, net.announced_addrs()) else {
                return;
            };
            let checked = if confirmed.announced {
                net.announced_addrs()
                    .iter()
                    .copied()
                    .find(|a| a.ip().to_canonical() == confirmed.ip)
            } else {
                let announced = net.announce_observed(confirmed.ip);
                reach.adopted(net, &confirmed, announced);
                announced
            };
            if let Some(addr) = checked {
                reach.check(net, addr);
            }
        }
        Message::DialBack(request) => {
            let Some(remote) = net.conn_remote(conn) else {
                return;
            };
            if let Some(addr) = reach.on_dial_back(net, from, remote, &request) {
                let probe = net.dial_probe(addr, from);
                reach.probe_started(net, from, request.nonce, probe);
            }
        }
        Message::DialBackResult(result) => reach.on_dial_back_result(net, from, &result),
        _ => {}
    }
}

/// The mesh's peers: HyParView's active view, or every peer up.
fn mesh_peers(membership: &Option<Box<HyParView>>) -> &dyn MeshPeers {
    match membership {
        Some(hv) => &**hv,
        None => &AllPeers,
    }
}

impl Parts {
    /// Passes the active view's changes on: the mesh hears who entered or
    /// left, and a link the view left is released unless another
    /// component needs it (which may bring more changes, passed on too).
    fn membership_changed(&mut self, net: &mut Net) {
        loop {
            let changes = match &mut self.membership {
                Some(hv) => hv.take_changes(),
                None => return,
            };
            if changes.is_empty() {
                return;
            }
            for change in changes {
                match change {
                    Change::Joined { peer, asked } => {
                        let peers = mesh_peers(&self.membership);
                        self.mesh.neighbor_joined(net, peers, peer, asked);
                        (net as &mut dyn Cx).emit(MeshEvent::NeighborUp { peer });
                    }
                    Change::Left { peer, release } => {
                        self.mesh.neighbor_changed(peer);
                        (net as &mut dyn Cx).emit(MeshEvent::NeighborDown { peer });
                        if release && net.is_up(peer) {
                            let needed = self.ring.as_ref().is_some_and(|r| r.chord.needs(peer))
                                || self.waiting_for(peer)
                                || self
                                    .membership
                                    .as_ref()
                                    .is_some_and(|hv| hv.is_mesh_peer(peer));
                            net.release(peer, needed, self);
                        }
                    }
                }
            }
        }
    }

    /// A reply to one of the ring's requests.
    fn ring_reply(&mut self, net: &mut Net, from: NodeId, message: Message) {
        if let Some(req) = reply_req(&message)
            && let Some(ring) = self.ring.as_deref_mut()
            && let Some(done) = ring.chord.on_reply(from, req, message)
        {
            self.ring_done(net, done);
        }
    }
}
