//! An in-memory, virtual-time driver for tests, examples and benches.
//!
//! [`Network`] runs several [`Node`]s joined by perfect in-memory links, each
//! with its own latency (a default, overridable per pair of nodes): dials to
//! a node's address connect, dials elsewhere are refused, bytes arrive in
//! order after the link's latency, closes arrive after the bytes sent before
//! them. Time is virtual and only moves when nothing else
//! can happen, so a test runs as fast as the nodes compute. It is itself
//! sans-IO and deterministic: the same calls give the same run.
//!
//! It is deliberately small; the `ringmesh-sim` crate is the full network
//! model (jitter, crashes, partitions, churn).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::BTreeMap;

use bytes::Bytes;

use crate::timer::DeadlineQueue;
use crate::{
    Command, Config, ConfigError, ConnId, Direction, Duration, Event, Identity, Input, Instant,
    Node, Output, PeersCommand, TransportError,
};

/// Index of a node in a [`Network`].
pub type NodeIndex = usize;

/// The next thing that happens in a [`Network`].
enum Next {
    /// The earliest in-flight input arrives.
    Delivery(Instant),
    /// A node's deadline passes.
    Timeout(Instant, NodeIndex),
}

impl Next {
    fn at(&self) -> Instant {
        match *self {
            Next::Delivery(at) | Next::Timeout(at, _) => at,
        }
    }
}

/// What a node wrote on one of its connections, in order (for transcripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The sending node.
    pub node: NodeIndex,
    /// The sender's connection id.
    pub conn: ConnId,
    /// The bytes of one `Output::Send`.
    pub bytes: Bytes,
}

/// An event a node emitted, as [`Network::events`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The node that emitted it.
    pub node: NodeIndex,
    /// When.
    pub at: Instant,
    /// The event.
    pub event: Event,
}

/// Several nodes on perfect in-memory links. See the module docs.
pub struct Network {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    up: Vec<bool>,
    now: Instant,
    latency: Duration,
    /// Per-pair latencies, keyed by (smaller index, larger index).
    link_latency: BTreeMap<(NodeIndex, NodeIndex), Duration>,
    /// Inputs in flight, by arrival time; ties in sending order, which is
    /// what keeps each link FIFO.
    in_flight: DeadlineQueue<(NodeIndex, Input)>,
    /// Both ends of every open link: (node, conn) → (peer node, peer conn).
    links: BTreeMap<(NodeIndex, ConnId), (NodeIndex, ConnId)>,
    next_inbound: Vec<u64>,
    events: Vec<Recorded>,
    sent: Vec<Sent>,
    record_sent: bool,
    /// Whether `Output::DialFromListenPort` is modelled (a TCP
    /// simultaneous open); otherwise it fails at once.
    punchable: bool,
    /// Dials from the listen port waiting for the other end's: (node,
    /// conn, the node dialled).
    punch_waiting: Vec<(NodeIndex, ConnId, NodeIndex)>,
}

impl Network {
    /// An empty network whose links all have `latency`.
    pub fn new(latency: Duration) -> Self {
        Network {
            nodes: Vec::new(),
            addrs: Vec::new(),
            up: Vec::new(),
            now: Instant::ZERO,
            latency,
            link_latency: BTreeMap::new(),
            in_flight: DeadlineQueue::new(),
            links: BTreeMap::new(),
            next_inbound: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            record_sent: false,
            punchable: false,
            punch_waiting: Vec::new(),
        }
    }

    /// Models hole punching: a dial from the listen port
    /// ([`Output::DialFromListenPort`]) from `i` to `j` waits until `j`
    /// dials `i` the same way (neither is delivered to a listener), then
    /// both get one connection, each as its own dial (a TCP simultaneous
    /// open). Off by default: such a dial fails at once.
    pub fn set_punchable(&mut self, on: bool) {
        self.punchable = on;
    }

    /// Sets the latency between nodes `i` and `j` (both ways), for links
    /// opened from now on and bytes sent from now on. Bytes already in
    /// flight keep their arrival time; since a link's latency only matters
    /// per direction and every send on it uses the current value, lowering
    /// it mid-stream could reorder, so set latencies before traffic starts.
    pub fn set_latency(&mut self, i: NodeIndex, j: NodeIndex, latency: Duration) {
        self.link_latency.insert((i.min(j), i.max(j)), latency);
    }

    /// The latency between nodes `i` and `j`.
    pub fn latency(&self, i: NodeIndex, j: NodeIndex) -> Duration {
        self.link_latency
            .get(&(i.min(j), i.max(j)))
            .copied()
            .unwrap_or(self.latency)
    }

    /// Keeps a copy of every `Output::Send` (see [`Network::sent`]).
    pub fn record_sent(&mut self, on: bool) {
        self.record_sent = on;
    }

    /// The address of node `i`: `127.0.x.y:7000` with `x.y` = `i + 1`.
    pub fn addr_of(i: NodeIndex) -> SocketAddr {
        let n = (i + 1) as u32;
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8)),
            7000,
        )
    }

    /// Adds a node with `config`, an identity from `secret` and `seed`;
    /// its listen address is [`Network::addr_of`] its index.
    pub fn add_node(
        &mut self,
        mut config: Config,
        secret: [u8; 32],
        seed: u64,
    ) -> Result<NodeIndex, ConfigError> {
        let index = self.nodes.len();
        let addr = Self::addr_of(index);
        if config.listen_addrs.is_empty() {
            config.listen_addrs.push(addr);
        }
        // As in the simulator: these addresses are a numbering (256 nodes
        // share each "/24") and whole networks join at once, so a config
        // that keeps the default admission control runs without it; one
        // that sets its own keeps it.
        if config.peers.admission == crate::AdmissionConfig::default() {
            config.peers.admission = crate::AdmissionConfig::unlimited();
        }
        let node = Node::new(config, Identity::from_secret_bytes(secret), seed, self.now)?;
        self.nodes.push(node);
        self.addrs.push(addr);
        self.up.push(true);
        self.next_inbound.push(0);
        Ok(index)
    }

    /// The node at `i`.
    pub fn node(&self, i: NodeIndex) -> &Node {
        &self.nodes[i]
    }

    /// The node at `i`, to inspect or command directly (drain it with
    /// [`Network::run`] afterwards).
    pub fn node_mut(&mut self, i: NodeIndex) -> &mut Node {
        &mut self.nodes[i]
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Every event so far: node, time, event.
    pub fn events(&self) -> &[Recorded] {
        &self.events
    }

    /// Removes and returns every event so far. Long runs call this to keep
    /// memory flat: received payloads share the buffers they arrived in.
    pub fn take_events(&mut self) -> Vec<Recorded> {
        core::mem::take(&mut self.events)
    }

    /// Events of node `i`.
    pub fn events_of(&self, i: NodeIndex) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |r| r.node == i)
            .map(|r| &r.event)
    }

    /// Recorded sends (when [`Network::record_sent`] is on).
    pub fn sent(&self) -> &[Sent] {
        &self.sent
    }

    /// Gives node `i` a command now.
    pub fn command(
        &mut self,
        i: NodeIndex,
        command: impl Into<Command>,
    ) -> Result<crate::Accepted, crate::CommandError> {
        let now = self.now;
        let result = self.nodes[i].command(now, command);
        self.drain(i);
        result
    }

    /// Node `i` dials node `j`.
    pub fn connect(&mut self, i: NodeIndex, j: NodeIndex) -> Result<ConnId, crate::CommandError> {
        let addr = self.addrs[j];
        match self.command(i, PeersCommand::Connect { addr, peer: None })? {
            crate::Accepted::Dialing(conn) => Ok(conn),
            _ => unreachable!("Connect answers Dialing"),
        }
    }

    /// Nodes `members` found one ring together (spec/chord.md §5.1): each
    /// of them, in the order given, gets `ChordCommand::Found` with all of
    /// them as founders (their ids and [`Network::addr_of`] addresses, in
    /// that order). Stops at the first command refused, and returns its
    /// error. Nothing is delivered yet: let time pass afterwards
    /// ([`Network::run_for`]) for the founders to link up.
    pub fn found_ring(
        &mut self,
        members: impl IntoIterator<Item = NodeIndex>,
    ) -> Result<(), crate::CommandError> {
        let members: Vec<NodeIndex> = members.into_iter().collect();
        let founders: Vec<crate::wire::PeerEntry> = members
            .iter()
            .map(|&i| crate::wire::PeerEntry {
                id: self.nodes[i].node_id(),
                addrs: [Network::addr_of(i)].into_iter().collect(),
            })
            .collect();
        for &i in &members {
            let founders = founders.clone();
            self.command(i, crate::ChordCommand::Found { founders })?;
        }
        Ok(())
    }

    /// Takes node `i` off the network silently: its links stop carrying
    /// bytes and dials to it are refused; nobody is told.
    pub fn crash(&mut self, i: NodeIndex) {
        self.up[i] = false;
        self.links.retain(|&(a, _), &mut (b, _)| a != i && b != i);
    }

    /// Brings a crashed node back, as after a partition heals: it keeps its
    /// state (its old links are gone; its peers may still hold theirs until
    /// liveness closes them) and is reachable again.
    pub fn recover(&mut self, i: NodeIndex) {
        self.up[i] = true;
    }

    /// Whether node `i` is up (not crashed).
    pub fn is_up(&self, i: NodeIndex) -> bool {
        self.up[i]
    }

    /// Resets every open link of node `i`: both ends are told
    /// (`Input::Closed` with `Reset`) after the link's latency.
    pub fn disconnect_node(&mut self, i: NodeIndex) {
        let ends: Vec<((NodeIndex, ConnId), (NodeIndex, ConnId))> = self
            .links
            .iter()
            .filter(|&(&(a, _), _)| a == i)
            .map(|(&a, &b)| (a, b))
            .collect();
        for ((a, a_conn), (b, b_conn)) in ends {
            self.links.remove(&(a, a_conn));
            self.links.remove(&(b, b_conn));
            let at = self.now + self.latency(a, b);
            let reason = TransportError::Reset;
            self.schedule(
                at,
                a,
                Input::Closed {
                    conn: a_conn,
                    reason,
                },
            );
            self.schedule(
                at,
                b,
                Input::Closed {
                    conn: b_conn,
                    reason,
                },
            );
        }
    }

    /// Resets every open link in the network (see
    /// [`Network::disconnect_node`]).
    pub fn disconnect_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.disconnect_node(i);
        }
    }

    /// Feeds node `i` raw bytes on connection `conn` as if its peer sent
    /// them (for robustness tests).
    pub fn inject(&mut self, i: NodeIndex, conn: ConnId, bytes: Bytes) {
        let now = self.now;
        self.nodes[i].handle_input(now, Input::Received { conn, bytes });
        self.drain(i);
    }

    fn schedule(&mut self, at: Instant, node: NodeIndex, input: Input) {
        self.in_flight.push(at, (node, input));
    }

    /// Links two ends of a new connection (`a` dialled; each end is its
    /// node, its `ConnId`, whom it sees and which way) and tells each
    /// `Connected` one link latency from now.
    fn join_ends(
        &mut self,
        a: (NodeIndex, ConnId, SocketAddr, Direction),
        b: (NodeIndex, ConnId, SocketAddr, Direction),
    ) {
        let at = self.now + self.latency(a.0, b.0);
        self.links.insert((a.0, a.1), (b.0, b.1));
        self.links.insert((b.0, b.1), (a.0, a.1));
        for (node, conn, remote, direction) in [a, b] {
            let connected = Input::Connected {
                conn,
                remote,
                direction,
            };
            self.schedule(at, node, connected);
        }
    }

    fn drain(&mut self, i: NodeIndex) {
        while let Some(output) = self.nodes[i].poll_output() {
            let at = self.now + self.latency;
            match output {
                Output::Dial { conn, addr } => {
                    let target = self.addrs.iter().position(|&a| a == addr);
                    match target.filter(|&j| self.up[j]) {
                        Some(j) => {
                            let inbound = ConnId::inbound(self.next_inbound[j]);
                            self.next_inbound[j] += 1;
                            let from = self.addrs[i];
                            self.join_ends(
                                (i, conn, addr, Direction::Outbound),
                                (j, inbound, from, Direction::Inbound),
                            );
                        }
                        None => {
                            let reason = TransportError::Refused;
                            self.schedule(at, i, Input::DialFailed { conn, reason });
                        }
                    }
                }
                Output::DialFromListenPort { conn, addr } => {
                    let target = self.addrs.iter().position(|&a| a == addr);
                    let target = target.filter(|&j| self.up[j] && self.punchable);
                    let Some(j) = target else {
                        let reason = TransportError::Refused;
                        self.schedule(at, i, Input::DialFailed { conn, reason });
                        continue;
                    };
                    let other = self
                        .punch_waiting
                        .iter()
                        .position(|&(from, _, to)| from == j && to == i);
                    match other {
                        Some(k) => {
                            let (_, theirs, _) = self.punch_waiting.remove(k);
                            // A simultaneous open: both ends dialled out.
                            let from = self.addrs[i];
                            self.join_ends(
                                (i, conn, addr, Direction::Outbound),
                                (j, theirs, from, Direction::Outbound),
                            );
                        }
                        None => self.punch_waiting.push((i, conn, j)),
                    }
                }
                Output::Send { conn, bytes } => {
                    if self.record_sent {
                        self.sent.push(Sent {
                            node: i,
                            conn,
                            bytes: bytes.clone(),
                        });
                    }
                    if let Some(&(j, peer_conn)) = self.links.get(&(i, conn)) {
                        let at = self.now + self.latency(i, j);
                        let conn = peer_conn;
                        self.schedule(at, j, Input::Received { conn, bytes });
                    }
                }
                Output::Close { conn } => {
                    self.punch_waiting
                        .retain(|&(from, c, _)| (from, c) != (i, conn));
                    if let Some((j, peer_conn)) = self.links.remove(&(i, conn)) {
                        self.links.remove(&(j, peer_conn));
                        let at = self.now + self.latency(i, j);
                        let (conn, reason) = (peer_conn, TransportError::Eof);
                        self.schedule(at, j, Input::Closed { conn, reason });
                    }
                }
                Output::Event(event) => self.events.push(Recorded {
                    node: i,
                    at: self.now,
                    event,
                }),
            }
        }
    }

    /// What happens next, if anything: deliveries win ties with timeouts.
    fn next(&self) -> Option<Next> {
        let delivery = self.in_flight.next().map(Next::Delivery);
        let timeout = (0..self.nodes.len())
            .filter(|&i| self.up[i])
            .filter_map(|i| self.nodes[i].poll_timeout().map(|t| (t, i)))
            .min()
            .map(|(t, i)| Next::Timeout(t, i));
        match (delivery, timeout) {
            (Some(d), Some(t)) => Some(if d.at() <= t.at() { d } else { t }),
            (d, t) => d.or(t),
        }
    }

    fn advance(&mut self, next: Next) {
        self.now = self.now.max(next.at());
        let now = self.now;
        let (i, input) = match next {
            Next::Timeout(_, i) => (i, Input::Timeout),
            Next::Delivery(_) => match self.in_flight.pop_due(now) {
                Some(delivery) => delivery,
                None => return,
            },
        };
        if self.up[i] {
            self.nodes[i].handle_input(now, input);
            self.drain(i);
        }
    }

    /// Does the next thing that happens (a delivery or a node's timeout),
    /// advancing virtual time to it. Returns `false` when nothing is left.
    pub fn step(&mut self) -> bool {
        match self.next() {
            Some(next) => {
                self.advance(next);
                true
            }
            None => false,
        }
    }

    /// Steps until nothing is left to do or virtual time would pass
    /// `deadline`, then moves time to `deadline`. Returns the number of
    /// steps taken.
    pub fn run_until(&mut self, deadline: Instant) -> usize {
        let mut steps = 0;
        while let Some(next) = self.next().filter(|n| n.at() <= deadline) {
            self.advance(next);
            steps += 1;
        }
        self.now = self.now.max(deadline);
        steps
    }

    /// Delivers everything in flight, and whatever that causes, firing the
    /// timeouts that come due meanwhile; stops when nothing is in flight.
    /// Timers of an idle network (pings, maintenance) do not keep it going:
    /// use [`Network::run_for`] to let time pass. Returns the steps taken.
    pub fn settle(&mut self) -> usize {
        let mut steps = 0;
        while let Some(next) = self.next() {
            let due = next.at() <= self.now;
            if !due && self.in_flight.next().is_none() {
                break;
            }
            self.advance(next);
            steps += 1;
        }
        steps
    }

    /// Runs everything that happens in the next `duration` of virtual time
    /// (see [`Network::run_until`]).
    pub fn run_for(&mut self, duration: Duration) -> usize {
        self.run_until(self.now + duration)
    }

    /// Steps until nothing is left to do (no deliveries, no timeouts) or
    /// `max_steps` were taken. Running nodes always have a maintenance
    /// round ahead, so this takes `max_steps` unless every node is shut
    /// down or crashed; prefer [`Network::settle`] or
    /// [`Network::run_for`]. Returns the number of steps taken.
    pub fn run(&mut self, max_steps: usize) -> usize {
        let mut steps = 0;
        while steps < max_steps && self.step() {
            steps += 1;
        }
        steps
    }
}

/// A [`SignatureCheck`](crate::SignatureCheck) that verifies as
/// [`Ed25519Check`](crate::Ed25519Check) does and keeps every genuine
/// broadcast it verified: how a test plays an attacker who records what it
/// receives, byte for byte, to replay it later. Give it to a node with
/// [`Node::set_signature_check`].
#[derive(Debug, Default)]
pub struct BroadcastRecorder {
    seen: std::sync::Mutex<Vec<crate::wire::Broadcast>>,
}

impl BroadcastRecorder {
    /// The genuine broadcasts verified so far, in order (`hops` 1).
    pub fn broadcasts(&self) -> Vec<crate::wire::Broadcast> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl crate::SignatureCheck for BroadcastRecorder {
    fn verify(&self, key: &crate::PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        let genuine = crate::Ed25519Check.verify(key, message, signature);
        if genuine
            && let Some(broadcast) =
                crate::wire::Broadcast::from_signed_bytes(*key, message, *signature)
        {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(broadcast);
        }
        genuine
    }
}
