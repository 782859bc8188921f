//! Relays (`spec/relay.md`): a node nobody can dial keeps a reservation at
//! a relay it is connected to; a peer that cannot dial it asks the relay
//! for a circuit to it; the relay forwards opaque bytes between its two
//! sessions. Shaped after libp2p's circuit relay v2 (reservations, then
//! circuits only to reserved nodes, with limits at the relay).
//!
//! What a circuit carries is a **normal session** between the two ends:
//! the connection layer opens a *relayed connection* (an id of its own,
//! [`ConnId::is_relayed`]) whose bytes this component moves, in
//! `RelayData` out and from `RelayDeliver` in, instead of the driver. In
//! Noise mode the relay sees ciphertext only, and a byte it alters fails
//! the ends' authentication: the relayed session closes.
//!
//! - `server.rs`: the relay's side (reservations, circuits, limits).
//! - `client.rs`: an end's side (reservations held, relayed connections).
//! - `punch.rs`: hole punching over a relayed session (DCUtR's pattern).
//! - `addrs.rs`: relayed addresses, the relays other nodes are reachable
//!   through (`RelayAddrs`).

mod addrs;
mod api;
mod client;
pub(crate) mod config;
mod punch;
mod server;

use core::net::SocketAddr;
use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cx::Cx;
use crate::timer::DeadlineQueue;
use crate::wire::{Capabilities, MAX_RELAY_ADDRS, Message, RelayAddr, RelayAddrs, RelayStatus};
use crate::{CloseReason, ConnId, Instant, NodeId};

pub use api::{RelayCommand, RelayError, RelayEvent, RelayStats};
pub use config::RelayConfig;

/// The component's timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// A circuit this relay carries reached `circuit_duration`.
    CircuitEnd { circuit: u64 },
    /// Renew the reservation at `relay` (set for `at`).
    Renew { relay: NodeId, at: Instant },
    /// The initiator dials `peer` (half the relay round trip after its
    /// `HolePunchSync`).
    PunchDial { peer: NodeId, attempt: u32 },
    /// Hole-punch attempt `attempt` with `peer` is over time.
    PunchTimeout { peer: NodeId, attempt: u32 },
}

/// What the component asks the connection layer to do (the router does it:
/// relayed connections are the layer's).
#[derive(Debug)]
pub(crate) enum Act {
    /// `relay` opened the circuit of relayed dial `conn`: its session
    /// starts.
    Opened { conn: ConnId, relay: NodeId },
    /// A circuit to this node arrived at `relay`: take it as an inbound
    /// relayed connection (then [`Relay::accepted`] or
    /// [`Relay::turn_away`]).
    Accept { relay: NodeId, circuit: u64 },
    /// Session bytes arrived for relayed connection `conn`.
    Deliver { conn: ConnId, data: Bytes },
    /// Relayed connection `conn` ended.
    Close { conn: ConnId, reason: CloseReason },
    /// Dial `peer` at `addrs` from the listen port (a hole punch).
    Punch {
        peer: NodeId,
        addrs: Vec<SocketAddr>,
    },
}

/// Targets waiting for a connection to the relay they are reachable
/// through, over all relays.
const MAX_AWAITING: usize = 64;

/// Where the fallback reaches a target (`Relay::fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// Through `relay`, a peer that is up.
    Up(NodeId),
    /// Through `relay`, announced as the target's at `addr`, not
    /// connected: dial it first, then open the circuit.
    Dial(NodeId, SocketAddr),
}

/// Whether `peer` offers `RELAY`.
fn offers_relay(cx: &dyn Cx, peer: NodeId) -> bool {
    cx.peer_caps(peer)
        .is_some_and(|c| c.contains(Capabilities::RELAY))
}

/// Whether `peer` is up on a relayed connection.
fn link_relayed(cx: &dyn Cx, peer: NodeId) -> bool {
    let mut relayed = false;
    cx.for_each_link(&mut |p, conn| {
        if p == peer {
            relayed = conn.is_relayed();
        }
    });
    relayed
}

/// The relay component: both sides. See the module docs.
pub(crate) struct Relay {
    config: RelayConfig,
    server: server::Server,
    client: client::Client,
    punches: punch::Punches,
    /// Relayed addresses peers announced (`spec/relay.md` §3).
    relay_addrs: addrs::RelayAddrTable,
    /// Targets waiting for this node's dial to the relay announced for
    /// them, by relay: at most [`MAX_AWAITING`] in all.
    awaiting: BTreeMap<NodeId, Vec<NodeId>>,
    pub(crate) timers: DeadlineQueue<Timer>,
    pub(crate) stats: RelayStats,
}

impl Relay {
    pub(crate) fn new(config: RelayConfig) -> Self {
        Relay {
            config,
            server: server::Server::new(),
            client: client::Client::new(),
            punches: punch::Punches::new(),
            relay_addrs: addrs::RelayAddrTable::new(),
            awaiting: BTreeMap::new(),
            timers: DeadlineQueue::new(),
            stats: RelayStats::default(),
        }
    }

    fn arm(&mut self, cx: &mut dyn Cx, timer: Option<(Instant, Timer)>) {
        if let Some((at, timer)) = timer {
            let seq = cx.timer_seq();
            self.timers.push_seq(at, seq, timer);
        }
    }

    /// Circuits this relay carries, and reservations it holds.
    pub(crate) fn load(&self) -> (usize, usize) {
        (self.server.circuit_count(), self.server.reservation_count())
    }

    /// Tests: flip one bit of the next data this relay forwards.
    pub(crate) fn flip_next(&mut self) {
        self.server.flip_next = true;
    }

    /// Relays holding a reservation of this node.
    pub(crate) fn relays(&self) -> Vec<NodeId> {
        self.client.relays().collect()
    }

    /// Asks `relay` for a reservation.
    pub(crate) fn reserve(&mut self, cx: &mut dyn Cx, relay: NodeId) -> Result<(), RelayError> {
        if !self.client.reserve(cx, relay) {
            return Err(RelayError::TooManyRelays);
        }
        Ok(())
    }

    /// Whether another relayed connection fits `max_relayed_conns`.
    pub(crate) fn has_room(&self) -> bool {
        self.client.relayed_conns() < self.config.max_relayed_conns
    }

    /// Asks `relay` for a circuit to `target` for relayed dial `conn`.
    pub(crate) fn connect(
        &mut self,
        cx: &mut dyn Cx,
        relay: NodeId,
        target: NodeId,
        conn: ConnId,
    ) -> bool {
        self.client.connect(cx, relay, target, conn)
    }

    /// The relay to try `target` through after every direct dial to it
    /// failed, or to reach a node known only by its relayed addresses:
    /// a relay announced as `target`'s (the newest that is up, else the
    /// newest, to be dialled first), else the first (in id order) relay
    /// holding a reservation of this node that is up, else the first
    /// peer up that offers `RELAY`; at most once a minute per target.
    pub(crate) fn fallback(&mut self, cx: &mut dyn Cx, target: NodeId) -> Option<Via> {
        let me = cx.me();
        let now = cx.now();
        let announced = self.relay_addrs.relays_of(target);
        let mut candidates: Vec<(Via, bool)> = Vec::new();
        for &(relay, _) in announced {
            if cx.is_up(relay) && offers_relay(cx, relay) {
                candidates.push((Via::Up(relay), true));
            }
        }
        for &(relay, addr) in announced {
            if relay != me && !cx.is_up(relay) {
                candidates.push((Via::Dial(relay, addr), true));
            }
        }
        if let Some(relay) = self
            .client
            .relays()
            .find(|&relay| relay != target && cx.is_up(relay))
        {
            candidates.push((Via::Up(relay), false));
        }
        if let Some(peer) = cx
            .peers_up()
            .into_iter()
            .find(|&peer| peer != target && offers_relay(cx, peer))
        {
            candidates.push((Via::Up(peer), false));
        }
        let (via, announced) = candidates.into_iter().find(|&(via, _)| {
            let relay = match via {
                Via::Up(relay) | Via::Dial(relay, _) => relay,
            };
            self.client.may_try(target, relay, now)
        })?;
        if announced {
            self.stats.dials_via_announced_relay += 1;
        }
        Some(via)
    }

    /// Whether a peer announced a relay of `node`.
    pub(crate) fn knows_relay_of(&self, node: NodeId) -> bool {
        !self.relay_addrs.relays_of(node).is_empty()
    }

    /// `target` waits for this node's dial to `relay` (the relay announced
    /// for it); `false` when [`MAX_AWAITING`] targets wait already.
    pub(crate) fn await_relay(&mut self, relay: NodeId, target: NodeId) -> bool {
        let waiting: usize = self.awaiting.values().map(Vec::len).sum();
        let list = self.awaiting.entry(relay).or_default();
        if list.contains(&target) {
            return true;
        }
        if waiting >= MAX_AWAITING {
            if list.is_empty() {
                self.awaiting.remove(&relay);
            }
            return false;
        }
        list.push(target);
        true
    }

    /// The targets that waited for `relay`: it came up (open their
    /// circuits) or its dial failed.
    pub(crate) fn take_awaiting(&mut self, relay: NodeId) -> Vec<NodeId> {
        self.awaiting.remove(&relay).unwrap_or_default()
    }

    /// This node's own relayed addresses: each relay holding its
    /// reservation, at the address that relay announced.
    fn own_addrs(&self, cx: &dyn Cx) -> Vec<RelayAddr> {
        let me = cx.me();
        self.client
            .relays()
            .filter_map(|relay| {
                let relay_addr = *cx.entry(relay)?.addrs.first()?;
                Some(RelayAddr {
                    node: me,
                    relay,
                    relay_addr,
                })
            })
            .take(MAX_RELAY_ADDRS)
            .collect()
    }

    /// Tells `peer` (if it offers `RELAY`) the relays holding this node's
    /// reservations (when `peer` comes up, and when a reservation is
    /// first accepted).
    pub(crate) fn announce_to(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        if !offers_relay(cx, peer) {
            return;
        }
        let addrs = self.own_addrs(cx);
        if !addrs.is_empty() {
            let _ = cx.send(peer, &Message::RelayAddrs(RelayAddrs { addrs }));
        }
    }

    /// A `PeerList` of `ids` went to `to`: follow it with the relayed
    /// addresses this node knows of them (if `to` offers `RELAY`).
    pub(crate) fn share(&mut self, cx: &mut dyn Cx, to: NodeId, ids: &[NodeId]) {
        if ids.is_empty() || !offers_relay(cx, to) {
            return;
        }
        let addrs: Vec<RelayAddr> = ids
            .iter()
            .filter(|&&node| node != to)
            .flat_map(|&node| {
                self.relay_addrs
                    .relays_of(node)
                    .iter()
                    .filter(move |&&(relay, _)| relay != to)
                    .map(move |&(relay, relay_addr)| RelayAddr {
                        node,
                        relay,
                        relay_addr,
                    })
            })
            .take(MAX_RELAY_ADDRS)
            .collect();
        if !addrs.is_empty() {
            let _ = cx.send(to, &Message::RelayAddrs(RelayAddrs { addrs }));
        }
    }

    /// `RelayAddrs` from a peer: stored, within `max_relay_addrs`.
    /// Returns the nodes it named (for a dial waiting for one of them).
    /// An entry can be false: it costs a refused circuit
    /// (`NoReservation`, then forgotten), never an impersonation, since
    /// the relayed session proves the target's id.
    pub(crate) fn on_relay_addrs(&mut self, cx: &dyn Cx, message: RelayAddrs) -> Vec<NodeId> {
        let me = cx.me();
        let mut nodes = Vec::new();
        for entry in &message.addrs {
            if entry.node == me || entry.relay == me || entry.relay == entry.node {
                self.stats.relay_addrs_ignored += 1;
                continue;
            }
            match self.relay_addrs.learn(entry, self.config.max_relay_addrs) {
                addrs::Learned::Stored => self.stats.relay_addrs_learned += 1,
                addrs::Learned::Evicted => {
                    self.stats.relay_addrs_learned += 1;
                    self.stats.relay_addrs_evicted += 1;
                }
                addrs::Learned::Dropped => {
                    self.stats.relay_addrs_ignored += 1;
                    continue;
                }
            }
            if !nodes.contains(&entry.node) {
                nodes.push(entry.node);
            }
        }
        nodes
    }

    /// A relay message from `from`.
    pub(crate) fn on_message(
        &mut self,
        cx: &mut dyn Cx,
        from: NodeId,
        message: Message,
    ) -> Option<Act> {
        match message {
            Message::RelayReserve(_) => {
                self.server
                    .on_reserve(cx, &self.config, &mut self.stats, from);
            }
            Message::RelayReserveResult(result) => {
                let had = self.client.relays().any(|relay| relay == from);
                let renew = self.client.on_reserve_result(cx, from, &result);
                self.arm(cx, renew);
                if !had && self.client.relays().any(|relay| relay == from) {
                    // A new relayed address: every peer hears of it.
                    for peer in cx.peers_up() {
                        self.announce_to(cx, peer);
                    }
                }
            }
            Message::RelayConnect(request) => {
                let end = self
                    .server
                    .on_connect(cx, &self.config, &mut self.stats, from, &request);
                self.arm(cx, end);
            }
            Message::RelayConnectResult(result) => {
                if result.status != RelayStatus::Ok
                    && let Some(target) = self.client.pending_target(from, result.req)
                {
                    // The announcement was stale (or false).
                    self.relay_addrs.forget(target, from);
                }
                return self
                    .client
                    .on_connect_result(cx, &mut self.stats, from, &result);
            }
            Message::RelayIncoming(incoming) => {
                return self
                    .client
                    .on_incoming(cx, &self.config, &mut self.stats, from, &incoming);
            }
            Message::RelayData(data) => {
                self.server
                    .on_data(cx, &self.config, &mut self.stats, from, data);
            }
            Message::RelayClose(close) => self.server.on_close(cx, from, close.circuit),
            Message::RelayDeliver(deliver) => {
                let Some(conn) = self.client.conn_of(from, deliver.circuit) else {
                    self.stats.data_dropped += 1;
                    return None;
                };
                self.stats.relayed_bytes_received += deliver.data.len() as u64;
                return Some(Act::Deliver {
                    conn,
                    data: deliver.data,
                });
            }
            Message::RelayEnded(ended) => {
                return self.client.on_ended(from, ended.circuit, ended.reason);
            }
            _ => {}
        }
        None
    }

    /// The connection layer took the incoming `circuit` at `relay` as
    /// `conn` (`None`: its caps refused it).
    pub(crate) fn accepted(
        &mut self,
        cx: &mut dyn Cx,
        relay: NodeId,
        circuit: u64,
        conn: Option<ConnId>,
    ) {
        match conn {
            Some(conn) => self.client.accepted(&mut self.stats, relay, circuit, conn),
            None => self.client.turn_away(cx, &mut self.stats, relay, circuit),
        }
    }

    /// The session of relayed connection `conn` wrote `bytes`.
    pub(crate) fn send(&mut self, cx: &mut dyn Cx, conn: ConnId, bytes: Bytes) -> Option<Act> {
        self.client.send(cx, &mut self.stats, conn, bytes)
    }

    /// The connection layer closed relayed connection `conn`.
    pub(crate) fn close(&mut self, cx: &mut dyn Cx, conn: ConnId) {
        self.client.close(cx, conn);
    }

    fn punch_limits(&self) -> punch::Limits {
        punch::Limits {
            attempts: self.config.punch_attempts,
            timeout: self.config.punch_timeout,
        }
    }

    /// `peer` came up on a relayed connection: if this node has the
    /// smaller id of the two, it starts a hole punch with its candidate
    /// addresses `mine` (`spec/relay.md` §7). The ids decide, not who
    /// dialled: two nodes that open relayed sessions to each other at
    /// once may each keep their own outbound one (the one-connection
    /// rule), and then neither accepted the session they share.
    pub(crate) fn relayed_up(&mut self, cx: &mut dyn Cx, peer: NodeId, mine: Vec<SocketAddr>) {
        if !self.config.hole_punch || cx.me() > peer {
            return;
        }
        let limits = self.punch_limits();
        let timer = self.punches.start(cx, limits, peer, mine);
        self.arm(cx, timer);
    }

    /// `HolePunch` or `HolePunchSync` from `peer`, taken only when it came
    /// on a relayed connection (`on_relayed`) while the peer's link is
    /// relayed: it travels end to end on that session.
    pub(crate) fn on_punch_message(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        message: Message,
        on_relayed: bool,
        mine: Vec<SocketAddr>,
    ) -> Option<Act> {
        if !self.config.hole_punch || !on_relayed || !link_relayed(cx, peer) {
            self.stats.punch_messages_ignored += 1;
            return None;
        }
        match message {
            Message::HolePunch(punch) => {
                let limits = self.punch_limits();
                let timer =
                    self.punches
                        .on_hole_punch(cx, &mut self.stats, limits, peer, punch, mine);
                self.arm(cx, timer);
                None
            }
            Message::HolePunchSync(_) => self.punches.on_sync(&mut self.stats, peer),
            _ => None,
        }
    }

    /// `peer`'s link moved from a relayed connection to a direct one from
    /// `remote`.
    pub(crate) fn direct(&mut self, cx: &mut dyn Cx, peer: NodeId, remote: SocketAddr) {
        self.punches.succeeded(cx, &mut self.stats, peer, remote);
    }

    /// The hole-punch dial to `peer` could not start (the connection
    /// caps): the attempt failed.
    pub(crate) fn punch_refused(&mut self) {
        self.stats.punch_failures += 1;
    }

    /// `peer` went down: as a relay, what it carried for this node closes;
    /// as an end, its reservation and circuits here go.
    pub(crate) fn peer_down(&mut self, cx: &mut dyn Cx, peer: NodeId) -> Vec<Act> {
        self.punches.peer_down(peer);
        self.server.peer_down(cx, peer);
        self.awaiting.remove(&peer);
        self.client.peer_down(peer)
    }

    /// Whether `timer` still guards something.
    pub(crate) fn is_live(&self, timer: &Timer) -> bool {
        match *timer {
            Timer::CircuitEnd { circuit } => self.server.carries(circuit),
            Timer::Renew { relay, at } => self.client.renews(relay, at),
            Timer::PunchDial { .. } | Timer::PunchTimeout { .. } => self.punches.is_live(timer),
        }
    }

    /// A timer fired.
    pub(crate) fn fire(&mut self, cx: &mut dyn Cx, timer: Timer) -> Option<Act> {
        match timer {
            Timer::CircuitEnd { circuit } => self.server.expire(cx, &mut self.stats, circuit),
            Timer::Renew { relay, .. } => {
                let _ = self.client.reserve(cx, relay);
            }
            Timer::PunchDial { peer, .. } => {
                return self.punches.fire_dial(&mut self.stats, peer);
            }
            Timer::PunchTimeout { peer, .. } => {
                if !link_relayed(cx, peer) {
                    // Down, or direct already.
                    self.punches.peer_down(peer);
                    return None;
                }
                let limits = self.punch_limits();
                let timer = self.punches.fire_timeout(cx, &mut self.stats, limits, peer);
                self.arm(cx, timer);
            }
        }
        None
    }
}
