//! The relay's side (`spec/relay.md` §2): reservations, circuits between
//! two of its peers, and the limits it holds them to. It forwards
//! `RelayData` unchanged; what a circuit carries is the ends' own session,
//! which it can neither read nor alter undetected.

use std::collections::BTreeMap;

use tracing::debug;

use super::config::RelayConfig;
use super::{RelayStats, Timer};
use crate::cx::Cx;
use crate::wire::{
    Message, RelayConnect, RelayConnectResult, RelayData, RelayDeliver, RelayEnded, RelayIncoming,
    RelayReserveResult, RelayStatus,
};
use crate::{Instant, NodeId};

/// A circuit between `dialer` and `target`.
struct Circuit {
    dialer: NodeId,
    target: NodeId,
    /// Bytes carried so far (both directions).
    bytes: u64,
    /// The rate's token bucket: bytes that may pass now, as of `refilled`.
    tokens: u64,
    refilled: Instant,
}

/// What a relay holds.
pub(super) struct Server {
    /// Holders and when their reservation expires.
    reservations: BTreeMap<NodeId, Instant>,
    circuits: BTreeMap<u64, Circuit>,
    next_circuit: u64,
    /// Tests: flip one bit of the next data forwarded (a relay that alters
    /// what it carries, `Node::relay_flip_next`).
    pub(super) flip_next: bool,
}

impl Server {
    pub(super) fn new() -> Self {
        Server {
            reservations: BTreeMap::new(),
            circuits: BTreeMap::new(),
            // Circuit 0 means "none" in `RelayConnectResult`.
            next_circuit: 1,
            flip_next: false,
        }
    }

    pub(super) fn circuit_count(&self) -> usize {
        self.circuits.len()
    }

    pub(super) fn reservation_count(&self) -> usize {
        self.reservations.len()
    }

    /// `from` asks for a reservation.
    pub(super) fn on_reserve(
        &mut self,
        cx: &mut dyn Cx,
        config: &RelayConfig,
        stats: &mut RelayStats,
        from: NodeId,
    ) {
        let now = cx.now();
        self.reservations.retain(|_, until| *until > now);
        let status = if !config.serve {
            RelayStatus::NotServing
        } else if !self.reservations.contains_key(&from)
            && self.reservations.len() >= config.max_reservations
        {
            RelayStatus::ReservationLimit
        } else {
            RelayStatus::Ok
        };
        let ttl_secs = if status == RelayStatus::Ok {
            self.reservations.insert(from, now + config.reservation_ttl);
            stats.reservations_accepted += 1;
            u32::try_from(config.reservation_ttl.as_micros() / 1_000_000).unwrap_or(u32::MAX)
        } else {
            stats.reservations_refused += 1;
            0
        };
        debug!(peer = %from.short(), ?status, "relay reservation asked");
        let _ = cx.send(
            from,
            &Message::RelayReserveResult(RelayReserveResult { status, ttl_secs }),
        );
    }

    fn ends_of(&self, peer: NodeId) -> usize {
        self.circuits
            .values()
            .filter(|c| c.dialer == peer || c.target == peer)
            .count()
    }

    /// `from` asks for a circuit to `request.target`. Returns the circuit's
    /// duration timer to arm, when one opened.
    pub(super) fn on_connect(
        &mut self,
        cx: &mut dyn Cx,
        config: &RelayConfig,
        stats: &mut RelayStats,
        from: NodeId,
        request: &RelayConnect,
    ) -> Option<(Instant, Timer)> {
        let now = cx.now();
        let target = request.target;
        let reserved = self
            .reservations
            .get(&target)
            .is_some_and(|&until| until > now)
            && cx.is_up(target);
        let status = if !config.serve {
            RelayStatus::NotServing
        } else if !reserved || target == from {
            RelayStatus::NoReservation
        } else if self.circuits.len() >= config.max_circuits {
            RelayStatus::CircuitLimit
        } else if self.ends_of(from) >= config.max_circuits_per_peer
            || self.ends_of(target) >= config.max_circuits_per_peer
        {
            RelayStatus::PeerCircuitLimit
        } else {
            RelayStatus::Ok
        };
        let mut circuit = 0;
        if status == RelayStatus::Ok {
            circuit = self.next_circuit;
            self.next_circuit += 1;
            // The target hears of it first: its session bytes may follow
            // the answer at once, and links are ordered.
            let incoming = Message::RelayIncoming(RelayIncoming { circuit, from });
            if cx.send(target, &incoming).is_err() {
                stats.circuits_refused += 1;
                return self.answer(cx, from, request.req, 0, RelayStatus::NoReservation);
            }
            self.circuits.insert(
                circuit,
                Circuit {
                    dialer: from,
                    target,
                    bytes: 0,
                    tokens: config.circuit_burst,
                    refilled: now,
                },
            );
            stats.circuits_opened += 1;
        } else {
            stats.circuits_refused += 1;
        }
        debug!(peer = %from.short(), target = %target.short(), ?status, circuit, "relay circuit asked");
        self.answer(cx, from, request.req, circuit, status);
        (status == RelayStatus::Ok)
            .then(|| (now + config.circuit_duration, Timer::CircuitEnd { circuit }))
    }

    fn answer(
        &mut self,
        cx: &mut dyn Cx,
        to: NodeId,
        req: u64,
        circuit: u64,
        status: RelayStatus,
    ) -> Option<(Instant, Timer)> {
        let answer = RelayConnectResult {
            req,
            circuit,
            status,
        };
        let _ = cx.send(to, &Message::RelayConnectResult(answer));
        None
    }

    /// `from` sends `data` on a circuit it is an end of: forwarded to the
    /// other end unchanged, within the circuit's limits.
    pub(super) fn on_data(
        &mut self,
        cx: &mut dyn Cx,
        config: &RelayConfig,
        stats: &mut RelayStats,
        from: NodeId,
        data: RelayData,
    ) {
        let now = cx.now();
        let Some(c) = self.circuits.get_mut(&data.circuit) else {
            stats.data_dropped += 1;
            return;
        };
        let to = if c.dialer == from {
            c.target
        } else if c.target == from {
            c.dialer
        } else {
            stats.data_dropped += 1;
            return;
        };
        let len = data.data.len() as u64;
        // Refill the bucket for the time passed, up to the burst.
        let elapsed = now.saturating_duration_since(c.refilled).as_micros();
        let earned = (u128::from(elapsed) * u128::from(config.circuit_rate) / 1_000_000) as u64;
        c.tokens = c.tokens.saturating_add(earned).min(config.circuit_burst);
        c.refilled = now;
        c.bytes += len;
        let limit = if c.bytes > config.circuit_bytes {
            Some(RelayStatus::ByteLimit)
        } else if len > c.tokens {
            Some(RelayStatus::RateLimit)
        } else {
            None
        };
        if let Some(reason) = limit {
            stats.circuits_limited += 1;
            debug!(
                circuit = data.circuit,
                ?reason,
                "relay circuit over its limits: closing it"
            );
            self.close(cx, data.circuit, reason, None);
            return;
        }
        c.tokens -= len;
        stats.bytes_relayed += len;
        let circuit = data.circuit;
        let mut bytes = data.data;
        if core::mem::take(&mut self.flip_next) {
            let mut flipped = bytes.to_vec();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            bytes = flipped.into();
        }
        let deliver = RelayDeliver {
            circuit,
            data: bytes,
        };
        if cx.send(to, &Message::RelayDeliver(deliver)).is_err() {
            self.close(cx, circuit, RelayStatus::Closed, None);
        }
    }

    /// An end closed `circuit`: the other end is told.
    pub(super) fn on_close(&mut self, cx: &mut dyn Cx, from: NodeId, circuit: u64) {
        if self
            .circuits
            .get(&circuit)
            .is_some_and(|c| c.dialer == from || c.target == from)
        {
            self.close(cx, circuit, RelayStatus::Closed, Some(from));
        }
    }

    /// The circuit's duration ran out.
    pub(super) fn expire(&mut self, cx: &mut dyn Cx, stats: &mut RelayStats, circuit: u64) {
        if self.circuits.contains_key(&circuit) {
            stats.circuits_limited += 1;
            self.close(cx, circuit, RelayStatus::DurationLimit, None);
        }
    }

    /// Whether `circuit` is still carried (its timer is live).
    pub(super) fn carries(&self, circuit: u64) -> bool {
        self.circuits.contains_key(&circuit)
    }

    /// `peer` went down: its reservation goes, and its circuits close.
    pub(super) fn peer_down(&mut self, cx: &mut dyn Cx, peer: NodeId) {
        self.reservations.remove(&peer);
        let gone: Vec<u64> = self
            .circuits
            .iter()
            .filter(|(_, c)| c.dialer == peer || c.target == peer)
            .map(|(&id, _)| id)
            .collect();
        for circuit in gone {
            self.close(cx, circuit, RelayStatus::Closed, Some(peer));
        }
    }

    /// Drops `circuit` and tells its ends (but `except`) why.
    fn close(
        &mut self,
        cx: &mut dyn Cx,
        circuit: u64,
        reason: RelayStatus,
        except: Option<NodeId>,
    ) {
        let Some(c) = self.circuits.remove(&circuit) else {
            return;
        };
        let message = Message::RelayEnded(RelayEnded { circuit, reason });
        for end in [c.dialer, c.target] {
            if Some(end) != except {
                let _ = cx.send(end, &message);
            }
        }
    }
}
