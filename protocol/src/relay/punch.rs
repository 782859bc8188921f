//! Hole punching over a relayed session (`spec/relay.md` §7), after
//! libp2p's DCUtR: the two ends of a relayed session exchange their
//! candidate addresses end to end, time the exchange (the round trip over
//! the relay), and dial each other from their listen ports at about the
//! same moment, so that both SYNs cross the NATs (a TCP simultaneous
//! open). The one-connection rule then keeps the direct connection and
//! drains the relayed one; when every attempt fails the relayed session
//! simply stays.
//!
//! The end with the smaller node id (the *initiator*) sends `HolePunch`
//! and times the answer (not the end that accepted the circuit, as in
//! DCUtR: two ends that dialled each other at once through a relay may
//! both hold their own outbound session); the other (the *responder*)
//! answers with its own; the initiator sends `HolePunchSync` and dials
//! after half the round trip, the responder dials when the sync arrives.
//! The initiator tries up to `punch_attempts` times, each bounded by
//! `punch_timeout`.

use core::net::SocketAddr;
use std::collections::BTreeMap;

use tracing::{debug, info};

use super::{Act, RelayEvent, RelayStats, Timer};
use crate::cx::Cx;
use crate::wire::{HolePunch, HolePunchSync, MAX_PUNCH_ADDRS, Message};
use crate::{Duration, Instant, NodeId};

/// Where one peer's punch stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Initiator: `HolePunch` sent at `sent_at`, its answer awaited.
    Offered { sent_at: Instant },
    /// Initiator: `HolePunchSync` sent; dials when `PunchDial` fires.
    Syncing,
    /// Responder: answered; dials when `HolePunchSync` arrives.
    Answered,
    /// Both: dialled; the direct connection or the timeout is awaited.
    Dialled,
    /// The attempt timed out (responder) or every attempt did
    /// (initiator): nothing more until the relayed session ends.
    Over,
}

/// One peer's punch.
#[derive(Debug)]
struct Punch {
    /// This end sends the first `HolePunch` (it has the smaller id).
    initiator: bool,
    /// The attempt under way, from 1.
    attempt: u32,
    /// This node's candidates, sent in its `HolePunch`.
    mine: Vec<SocketAddr>,
    /// The peer's candidates, from its `HolePunch`.
    theirs: Vec<SocketAddr>,
    phase: Phase,
}

/// The punches in progress, one per peer up on a relayed connection (so
/// at most as many as relayed connections, `max_relayed_conns`).
pub(super) struct Punches {
    by_peer: BTreeMap<NodeId, Punch>,
}

/// The limits a punch runs within (from `RelayConfig`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) attempts: u32,
    pub(super) timeout: Duration,
}

impl Punches {
    pub(super) fn new() -> Self {
        Punches {
            by_peer: BTreeMap::new(),
        }
    }

    /// `peer` came up on a circuit this node accepted: it starts the
    /// punch with its candidates `mine` (nothing when it has none: the
    /// peer would not know where to dial). Returns the timeout to arm.
    pub(super) fn start(
        &mut self,
        cx: &mut dyn Cx,
        limits: Limits,
        peer: NodeId,
        mine: Vec<SocketAddr>,
    ) -> Option<(Instant, Timer)> {
        if mine.is_empty() || self.by_peer.contains_key(&peer) {
            return None;
        }
        let mut punch = Punch {
            initiator: true,
            attempt: 0,
            mine,
            theirs: Vec::new(),
            phase: Phase::Over,
        };
        let timer = offer(cx, limits, peer, &mut punch);
        self.by_peer.insert(peer, punch);
        timer
    }

    /// `peer` sent `HolePunch` on its relayed session (`relayed`: the
    /// router checked that its link is relayed). Returns the timer to arm.
    pub(super) fn on_hole_punch(
        &mut self,
        cx: &mut dyn Cx,
        stats: &mut RelayStats,
        limits: Limits,
        peer: NodeId,
        message: HolePunch,
        mine: Vec<SocketAddr>,
    ) -> Option<(Instant, Timer)> {
        let theirs = message.addrs;
        match self.by_peer.get_mut(&peer) {
            Some(punch) if punch.initiator => {
                let Phase::Offered { sent_at } = punch.phase else {
                    stats.punch_messages_ignored += 1;
                    return None;
                };
                // The round trip over the relay; the peer dials when our
                // sync reaches it, half of it from now.
                let rtt = Duration::from_micros(cx.now().as_micros() - sent_at.as_micros());
                punch.theirs = theirs;
                if cx
                    .send(peer, &Message::HolePunchSync(HolePunchSync))
                    .is_err()
                {
                    punch.phase = Phase::Over;
                    return None;
                }
                punch.phase = Phase::Syncing;
                let at = cx.now() + Duration::from_micros(rtt.as_micros() / 2);
                debug!(peer = %peer.short(), ?rtt, "hole punch: dialling after half the relay round trip");
                Some((
                    at,
                    Timer::PunchDial {
                        peer,
                        attempt: punch.attempt,
                    },
                ))
            }
            _ => {
                // The responder: a new attempt (the first, or the
                // initiator's retry) begins.
                let attempt = self.by_peer.remove(&peer).map_or(0, |old| old.attempt) + 1;
                if mine.is_empty() {
                    stats.punch_failures += 1;
                    return None;
                }
                let mut addrs = mine.clone();
                addrs.truncate(MAX_PUNCH_ADDRS);
                let reply = Message::HolePunch(HolePunch { addrs });
                if cx.send(peer, &reply).is_err() {
                    return None;
                }
                self.by_peer.insert(
                    peer,
                    Punch {
                        initiator: false,
                        attempt,
                        mine,
                        theirs,
                        phase: Phase::Answered,
                    },
                );
                Some((
                    cx.now() + limits.timeout,
                    Timer::PunchTimeout { peer, attempt },
                ))
            }
        }
    }

    /// `peer` sent `HolePunchSync`: the responder dials now.
    pub(super) fn on_sync(&mut self, stats: &mut RelayStats, peer: NodeId) -> Option<Act> {
        let Some(punch) = self
            .by_peer
            .get_mut(&peer)
            .filter(|p| !p.initiator && p.phase == Phase::Answered)
        else {
            stats.punch_messages_ignored += 1;
            return None;
        };
        Some(dial(stats, peer, punch))
    }

    /// Whether `timer` still guards a punch.
    pub(super) fn is_live(&self, timer: &Timer) -> bool {
        match *timer {
            Timer::PunchDial { peer, attempt } => self
                .by_peer
                .get(&peer)
                .is_some_and(|p| p.attempt == attempt && p.phase == Phase::Syncing),
            Timer::PunchTimeout { peer, attempt } => self
                .by_peer
                .get(&peer)
                .is_some_and(|p| p.attempt == attempt && p.phase != Phase::Over),
            _ => false,
        }
    }

    /// The initiator's `PunchDial` fired: it dials now.
    pub(super) fn fire_dial(&mut self, stats: &mut RelayStats, peer: NodeId) -> Option<Act> {
        let punch = self.by_peer.get_mut(&peer)?;
        Some(dial(stats, peer, punch))
    }

    /// An attempt's `PunchTimeout` fired with `peer` still relayed: the
    /// attempt failed; the initiator tries again while attempts remain.
    pub(super) fn fire_timeout(
        &mut self,
        cx: &mut dyn Cx,
        stats: &mut RelayStats,
        limits: Limits,
        peer: NodeId,
    ) -> Option<(Instant, Timer)> {
        let punch = self.by_peer.get_mut(&peer)?;
        stats.punch_failures += 1;
        if punch.initiator && punch.attempt < limits.attempts {
            return offer(cx, limits, peer, punch);
        }
        punch.phase = Phase::Over;
        if punch.initiator {
            info!(peer = %peer.short(), attempts = punch.attempt, "hole punch failed: the session stays relayed");
            cx.emit(RelayEvent::PunchFailed {
                peer,
                attempts: punch.attempt,
            });
        }
        None
    }

    /// `peer`'s link moved to a direct connection from `remote`: if this
    /// node was punching to it, the punch succeeded.
    pub(super) fn succeeded(
        &mut self,
        cx: &mut dyn Cx,
        stats: &mut RelayStats,
        peer: NodeId,
        remote: SocketAddr,
    ) {
        let Some(punch) = self.by_peer.remove(&peer) else {
            return;
        };
        stats.punch_successes += 1;
        info!(peer = %peer.short(), %remote, attempt = punch.attempt, "hole punch succeeded: direct connection");
        cx.emit(RelayEvent::Punched {
            peer,
            remote,
            attempt: punch.attempt,
        });
    }

    /// `peer` went down: its punch ends.
    pub(super) fn peer_down(&mut self, peer: NodeId) {
        self.by_peer.remove(&peer);
    }
}

/// The initiator begins an attempt: `HolePunch` with its candidates, timed.
fn offer(
    cx: &mut dyn Cx,
    limits: Limits,
    peer: NodeId,
    punch: &mut Punch,
) -> Option<(Instant, Timer)> {
    let mut addrs = punch.mine.clone();
    addrs.truncate(MAX_PUNCH_ADDRS);
    if cx
        .send(peer, &Message::HolePunch(HolePunch { addrs }))
        .is_err()
    {
        punch.phase = Phase::Over;
        return None;
    }
    punch.attempt += 1;
    punch.phase = Phase::Offered { sent_at: cx.now() };
    Some((
        cx.now() + limits.timeout,
        Timer::PunchTimeout {
            peer,
            attempt: punch.attempt,
        },
    ))
}

/// Dial the peer's candidates from the listen port (the router does it).
fn dial(stats: &mut RelayStats, peer: NodeId, punch: &mut Punch) -> Act {
    stats.punch_attempts += 1;
    punch.phase = Phase::Dialled;
    let mut addrs = punch.theirs.clone();
    addrs.truncate(MAX_PUNCH_ADDRS);
    Act::Punch { peer, addrs }
}
