//! An end's side (`spec/relay.md` §3): reservations this node holds at
//! relays, and the circuits it is an end of, each the carrier of one of
//! its connections (a *relayed* connection: the connection layer runs a
//! normal session over it, and this side moves its bytes in `RelayData`
//! and out of `RelayDeliver`).

use std::collections::BTreeMap;

use bytes::Bytes;
use tracing::{debug, info};

use super::config::RelayConfig;
use super::{Act, RelayEvent, RelayStats, Timer};
use crate::cx::Cx;
use crate::wire::{
    MAX_RELAY_DATA, Message, RelayClose, RelayConnect, RelayConnectResult, RelayData,
    RelayIncoming, RelayReserve, RelayReserveResult, RelayStatus,
};
use crate::{CloseReason, ConnId, Duration, Instant, NodeId};

/// Relays at which a node holds (or asks for) reservations at once.
pub(super) const MAX_RESERVATIONS_HELD: usize = 8;

/// Target and relay pairs remembered as tried (the fallback's pace).
const MAX_TRIED: usize = 256;

/// Least time between two fallback attempts to reach one target through
/// one relay.
const RETRY_GAP: Duration = Duration::from_secs(60);

/// What an end holds.
pub(super) struct Client {
    /// Relays asked for a reservation: when it is renewed (`None` while
    /// the relay has not answered).
    reserved: BTreeMap<NodeId, Option<Instant>>,
    /// Circuits this node is an end of, by relay and the relay's number.
    by_circuit: BTreeMap<(NodeId, u64), ConnId>,
    /// Each relayed connection's relay and circuit (0 until the relay
    /// opened it).
    by_conn: BTreeMap<ConnId, (NodeId, u64)>,
    /// Circuits asked for and not answered: by relay and request number,
    /// the connection waiting and its target.
    pending: BTreeMap<(NodeId, u64), (ConnId, NodeId)>,
    next_req: u64,
    /// When each target was last tried through each relay by the
    /// fallback.
    tried: BTreeMap<(NodeId, NodeId), Instant>,
}

impl Client {
    pub(super) fn new() -> Self {
        Client {
            reserved: BTreeMap::new(),
            by_circuit: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_req: 0,
            tried: BTreeMap::new(),
        }
    }

    /// Relays that accepted a reservation of this node.
    pub(super) fn relays(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.reserved
            .iter()
            .filter(|(_, renew)| renew.is_some())
            .map(|(&relay, _)| relay)
    }

    pub(super) fn relayed_conns(&self) -> usize {
        self.by_conn.len()
    }

    /// Asks `relay` for a reservation. `false` when this node holds
    /// [`MAX_RESERVATIONS_HELD`] at other relays.
    pub(super) fn reserve(&mut self, cx: &mut dyn Cx, relay: NodeId) -> bool {
        if !self.reserved.contains_key(&relay) && self.reserved.len() >= MAX_RESERVATIONS_HELD {
            return false;
        }
        if cx.send(relay, &Message::RelayReserve(RelayReserve)).is_ok() {
            self.reserved.entry(relay).or_insert(None);
        }
        true
    }

    /// Whether `timer` (a renewal of `relay`'s reservation at `at`) still
    /// stands.
    pub(super) fn renews(&self, relay: NodeId, at: Instant) -> bool {
        self.reserved.get(&relay) == Some(&Some(at))
    }

    /// `relay` answered a reservation. Returns the renewal timer to arm.
    pub(super) fn on_reserve_result(
        &mut self,
        cx: &mut dyn Cx,
        relay: NodeId,
        result: &RelayReserveResult,
    ) -> Option<(Instant, Timer)> {
        if !self.reserved.contains_key(&relay) {
            return None; // not asked
        }
        if result.status != RelayStatus::Ok || result.ttl_secs == 0 {
            self.reserved.remove(&relay);
            cx.emit(RelayEvent::ReserveRefused {
                relay,
                status: result.status,
            });
            return None;
        }
        let ttl = Duration::from_secs(u64::from(result.ttl_secs));
        let renew = cx.now() + Duration::from_micros(ttl.as_micros() / 2);
        let first = self.reserved.insert(relay, Some(renew)) == Some(None);
        if first {
            info!(relay = %relay.short(), ?ttl, "relay holds a reservation for this node");
        }
        cx.emit(RelayEvent::Reserved { relay, ttl });
        Some((renew, Timer::Renew { relay, at: renew }))
    }

    /// Asks `relay` for a circuit to `target`, for the relayed connection
    /// `conn` the connection layer opened. `false` if the relay is not up.
    pub(super) fn connect(
        &mut self,
        cx: &mut dyn Cx,
        relay: NodeId,
        target: NodeId,
        conn: ConnId,
    ) -> bool {
        let req = self.next_req;
        self.next_req += 1;
        let request = Message::RelayConnect(RelayConnect { req, target });
        if cx.send(relay, &request).is_err() {
            return false;
        }
        self.pending.insert((relay, req), (conn, target));
        self.by_conn.insert(conn, (relay, 0));
        debug!(relay = %relay.short(), target = %target.short(), %conn, "asking a relay for a circuit");
        true
    }

    /// Whether the fallback may try `target` through `relay` now (it has
    /// not in the last [`RETRY_GAP`]); records the attempt.
    pub(super) fn may_try(&mut self, target: NodeId, relay: NodeId, now: Instant) -> bool {
        let key = (target, relay);
        if self.tried.get(&key).is_some_and(|&at| now < at + RETRY_GAP) {
            return false;
        }
        if !self.tried.contains_key(&key) && self.tried.len() >= MAX_TRIED {
            let oldest = self
                .tried
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.tried.remove(&oldest);
            }
        }
        self.tried.insert(key, now);
        true
    }

    /// The target of circuit request `req` at `relay`, if it waits.
    pub(super) fn pending_target(&self, relay: NodeId, req: u64) -> Option<NodeId> {
        self.pending.get(&(relay, req)).map(|&(_, target)| target)
    }

    /// `relay` answered a circuit request.
    pub(super) fn on_connect_result(
        &mut self,
        cx: &mut dyn Cx,
        stats: &mut RelayStats,
        relay: NodeId,
        result: &RelayConnectResult,
    ) -> Option<Act> {
        let Some((conn, target)) = self.pending.remove(&(relay, result.req)) else {
            if result.status == RelayStatus::Ok {
                // Its connection closed meanwhile.
                let close = RelayClose {
                    circuit: result.circuit,
                    reason: RelayStatus::Closed,
                };
                let _ = cx.send(relay, &Message::RelayClose(close));
            }
            return None;
        };
        if result.status != RelayStatus::Ok {
            self.by_conn.remove(&conn);
            cx.emit(RelayEvent::ConnectRefused {
                relay,
                target,
                status: result.status,
            });
            return Some(Act::Close {
                conn,
                reason: CloseReason::Relay(result.status),
            });
        }
        stats.circuits_dialled += 1;
        self.by_conn.insert(conn, (relay, result.circuit));
        self.by_circuit.insert((relay, result.circuit), conn);
        Some(Act::Opened { conn, relay })
    }

    /// `relay` says `incoming.from` opened a circuit to this node.
    pub(super) fn on_incoming(
        &mut self,
        cx: &mut dyn Cx,
        config: &RelayConfig,
        stats: &mut RelayStats,
        relay: NodeId,
        incoming: &RelayIncoming,
    ) -> Option<Act> {
        let asked = self.reserved.contains_key(&relay);
        if !asked
            || self.by_conn.len() >= config.max_relayed_conns
            || self.by_circuit.contains_key(&(relay, incoming.circuit))
        {
            self.turn_away(cx, stats, relay, incoming.circuit);
            return None;
        }
        Some(Act::Accept {
            relay,
            circuit: incoming.circuit,
        })
    }

    /// The connection layer took the incoming `circuit` as `conn`.
    pub(super) fn accepted(
        &mut self,
        stats: &mut RelayStats,
        relay: NodeId,
        circuit: u64,
        conn: ConnId,
    ) {
        stats.circuits_accepted += 1;
        self.by_conn.insert(conn, (relay, circuit));
        self.by_circuit.insert((relay, circuit), conn);
    }

    /// Refuses the incoming `circuit` (over this node's caps).
    pub(super) fn turn_away(
        &mut self,
        cx: &mut dyn Cx,
        stats: &mut RelayStats,
        relay: NodeId,
        circuit: u64,
    ) {
        stats.circuits_turned_away += 1;
        let close = RelayClose {
            circuit,
            reason: RelayStatus::Refused,
        };
        let _ = cx.send(relay, &Message::RelayClose(close));
    }

    /// The relayed connection that `circuit` at `relay` carries, if any.
    pub(super) fn conn_of(&self, relay: NodeId, circuit: u64) -> Option<ConnId> {
        self.by_circuit.get(&(relay, circuit)).copied()
    }

    /// `relay` says `circuit` ended: its connection closes.
    pub(super) fn on_ended(
        &mut self,
        relay: NodeId,
        circuit: u64,
        reason: RelayStatus,
    ) -> Option<Act> {
        let conn = self.by_circuit.remove(&(relay, circuit))?;
        self.by_conn.remove(&conn);
        Some(Act::Close {
            conn,
            reason: CloseReason::Relay(reason),
        })
    }

    /// The session of relayed connection `conn` wrote `bytes`: into the
    /// circuit, in pieces of at most [`MAX_RELAY_DATA`].
    pub(super) fn send(
        &mut self,
        cx: &mut dyn Cx,
        stats: &mut RelayStats,
        conn: ConnId,
        bytes: Bytes,
    ) -> Option<Act> {
        let &(relay, circuit) = self.by_conn.get(&conn)?;
        if circuit == 0 {
            return None; // a session starts only once its circuit is open
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(MAX_RELAY_DATA));
            let len = piece.len() as u64;
            let data = RelayData {
                circuit,
                data: piece,
            };
            if cx.send(relay, &Message::RelayData(data)).is_err() {
                self.forget(conn);
                return Some(Act::Close {
                    conn,
                    reason: CloseReason::Relay(RelayStatus::Closed),
                });
            }
            stats.relayed_bytes_sent += len;
        }
        None
    }

    /// The connection layer closed relayed connection `conn`: its circuit
    /// closes at the relay.
    pub(super) fn close(&mut self, cx: &mut dyn Cx, conn: ConnId) {
        let Some((relay, circuit)) = self.forget(conn) else {
            return;
        };
        if circuit != 0 {
            let close = RelayClose {
                circuit,
                reason: RelayStatus::Closed,
            };
            let _ = cx.send(relay, &Message::RelayClose(close));
        }
    }

    fn forget(&mut self, conn: ConnId) -> Option<(NodeId, u64)> {
        let (relay, circuit) = self.by_conn.remove(&conn)?;
        self.by_circuit.remove(&(relay, circuit));
        self.pending.retain(|_, (c, _)| *c != conn);
        Some((relay, circuit))
    }

    /// `peer` went down: if it was a relay, its reservation is gone and
    /// every connection it carried closes.
    pub(super) fn peer_down(&mut self, peer: NodeId) -> Vec<Act> {
        self.reserved.remove(&peer);
        let conns: Vec<ConnId> = self
            .by_conn
            .iter()
            .filter(|(_, (relay, _))| *relay == peer)
            .map(|(&conn, _)| conn)
            .collect();
        conns
            .into_iter()
            .filter_map(|conn| {
                self.forget(conn)?;
                Some(Act::Close {
                    conn,
                    reason: CloseReason::Relay(RelayStatus::Closed),
                })
            })
            .collect()
    }
}
