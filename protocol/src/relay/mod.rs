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

mod api;
mod client;
pub(crate) mod config;
mod punch;
mod server;

use core::net::SocketAddr;

use bytes::Bytes;

use crate::cx::Cx;
use crate::timer::DeadlineQueue;
use crate::wire::Message;
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
    /// failed: the first (in id order) relay holding a reservation of this
    /// node that is up, else the first peer up that offers `RELAY`; at
    /// most once a minute per target.
    pub(crate) fn fallback(&mut self, cx: &mut dyn Cx, target: NodeId) -> Option<NodeId> {
        let reserved = self
            .client
            .relays()
            .find(|&relay| relay != target && cx.is_up(relay));
        let relay = reserved.or_else(|| {
            cx.peers_up().into_iter().find(|&peer| {
                peer != target
                    && cx
                        .peer_caps(peer)
                        .is_some_and(|c| c.contains(crate::wire::Capabilities::RELAY))
            })
        })?;
        self.client.may_try(target, cx.now()).then_some(relay)
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
                let renew = self.client.on_reserve_result(cx, from, &result);
                self.arm(cx, renew);
            }
            Message::RelayConnect(request) => {
                let end = self
                    .server
                    .on_connect(cx, &self.config, &mut self.stats, from, &request);
                self.arm(cx, end);
            }
            Message::RelayConnectResult(result) => {
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

    /// `peer` came up on the relayed connection `conn`: if this node
    /// accepted its circuit, it starts a hole punch with its candidate
    /// addresses `mine` (`spec/relay.md` §7).
    pub(crate) fn relayed_up(
        &mut self,
        cx: &mut dyn Cx,
        peer: NodeId,
        inbound: bool,
        mine: Vec<SocketAddr>,
    ) {
        if !self.config.hole_punch || !inbound {
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
