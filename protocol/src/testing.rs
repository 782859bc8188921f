//! An in-memory, virtual-time driver for tests, examples and benches.
//!
//! [`Network`] runs several [`Node`]s joined by perfect in-memory links with a
//! fixed latency: dials to a node's address connect, dials elsewhere are
//! refused, bytes arrive in order after `latency`, closes arrive after the
//! bytes sent before them. Time is virtual and only moves when nothing else
//! can happen, so a test runs as fast as the nodes compute. It is itself
//! sans-IO and deterministic: the same calls give the same run.
//!
//! It is deliberately small; the `ringmesh-sim` crate is the full network
//! model (jitter, crashes, partitions, churn).

use core::cmp::Reverse;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;

use crate::{
    Command, Config, ConfigError, ConnId, Direction, Duration, Event, Identity, Input, Instant,
    Node, Output, TransportError,
};

/// Index of a node in a [`Network`].
pub type NodeIndex = usize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    Input(NodeIndex, InputKind),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum InputKind {
    Connected(ConnId, SocketAddr, bool),
    Received(ConnId, Bytes),
    Closed(ConnId),
    DialFailed(ConnId),
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

/// Several nodes on perfect in-memory links. See the module docs.
pub struct Network {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    up: Vec<bool>,
    now: Instant,
    latency: Duration,
    queue: BinaryHeap<Reverse<(Instant, u64, Delivery)>>,
    seq: u64,
    /// Both ends of every open link: (node, conn) → (peer node, peer conn).
    links: BTreeMap<(NodeIndex, ConnId), (NodeIndex, ConnId)>,
    next_inbound: Vec<u64>,
    events: Vec<(NodeIndex, Instant, Event)>,
    sent: Vec<Sent>,
    record_sent: bool,
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
            queue: BinaryHeap::new(),
            seq: 0,
            links: BTreeMap::new(),
            next_inbound: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            record_sent: false,
        }
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
    pub fn events(&self) -> &[(NodeIndex, Instant, Event)] {
        &self.events
    }

    /// Removes and returns every event so far. Long runs call this to keep
    /// memory flat: received payloads share the buffers they arrived in.
    pub fn take_events(&mut self) -> Vec<(NodeIndex, Instant, Event)> {
        core::mem::take(&mut self.events)
    }

    /// Events of node `i`.
    pub fn events_of(&self, i: NodeIndex) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |(n, _, _)| *n == i)
            .map(|(_, _, e)| e)
    }

    /// Recorded sends (when [`Network::record_sent`] is on).
    pub fn sent(&self) -> &[Sent] {
        &self.sent
    }

    /// Gives node `i` a command now.
    pub fn command(
        &mut self,
        i: NodeIndex,
        command: Command,
    ) -> Result<crate::Accepted, crate::CommandError> {
        let now = self.now;
        let result = self.nodes[i].command(now, command);
        self.drain(i);
        result
    }

    /// Node `i` dials node `j`.
    pub fn connect(&mut self, i: NodeIndex, j: NodeIndex) -> Result<ConnId, crate::CommandError> {
        let addr = self.addrs[j];
        match self.command(i, Command::Connect { addr, peer: None })? {
            crate::Accepted::Dialing(conn) => Ok(conn),
            _ => unreachable!("Connect answers Dialing"),
        }
    }

    /// Takes node `i` off the network silently: its links stop carrying
    /// bytes and dials to it are refused; nobody is told.
    pub fn crash(&mut self, i: NodeIndex) {
        self.up[i] = false;
        self.links.retain(|&(a, _), &mut (b, _)| a != i && b != i);
    }

    /// Feeds node `i` raw bytes on connection `conn` as if its peer sent
    /// them (for robustness tests).
    pub fn inject(&mut self, i: NodeIndex, conn: ConnId, bytes: Bytes) {
        let now = self.now;
        self.nodes[i].handle_input(now, Input::Received { conn, bytes });
        self.drain(i);
    }

    fn schedule(&mut self, at: Instant, delivery: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, delivery)));
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
                            self.links.insert((i, conn), (j, inbound));
                            self.links.insert((j, inbound), (i, conn));
                            let from = self.addrs[i];
                            self.schedule(
                                at,
                                Delivery::Input(i, InputKind::Connected(conn, addr, true)),
                            );
                            self.schedule(
                                at,
                                Delivery::Input(j, InputKind::Connected(inbound, from, false)),
                            );
                        }
                        None => self.schedule(at, Delivery::Input(i, InputKind::DialFailed(conn))),
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
                        self.schedule(
                            at,
                            Delivery::Input(j, InputKind::Received(peer_conn, bytes)),
                        );
                    }
                }
                Output::Close { conn } => {
                    if let Some((j, peer_conn)) = self.links.remove(&(i, conn)) {
                        self.links.remove(&(j, peer_conn));
                        self.schedule(at, Delivery::Input(j, InputKind::Closed(peer_conn)));
                    }
                }
                Output::Event(event) => self.events.push((i, self.now, event)),
            }
        }
    }

    /// Does the next thing that happens (a delivery or a node's timeout),
    /// advancing virtual time to it. Returns `false` when nothing is left.
    pub fn step(&mut self) -> bool {
        let next_delivery = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let next_timeout = (0..self.nodes.len())
            .filter(|&i| self.up[i])
            .filter_map(|i| self.nodes[i].poll_timeout().map(|t| (t, i)))
            .min();
        let deliver = match (next_delivery, next_timeout) {
            (None, None) => return false,
            (Some(at), Some((t, _))) => at <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        match next_timeout {
            Some((t, i)) if !deliver => {
                self.now = self.now.max(t);
                let now = self.now;
                self.nodes[i].handle_input(now, Input::Timeout);
                self.drain(i);
                true
            }
            _ => {
                let Some(Reverse((at, _, Delivery::Input(i, kind)))) = self.queue.pop() else {
                    return false;
                };
                self.now = self.now.max(at);
                if !self.up[i] {
                    return true;
                }
                let input = match kind {
                    InputKind::Connected(conn, remote, outbound) => Input::Connected {
                        conn,
                        remote,
                        direction: if outbound {
                            Direction::Outbound
                        } else {
                            Direction::Inbound
                        },
                    },
                    InputKind::Received(conn, bytes) => Input::Received { conn, bytes },
                    InputKind::Closed(conn) => Input::Closed {
                        conn,
                        reason: TransportError::Eof,
                    },
                    InputKind::DialFailed(conn) => Input::DialFailed {
                        conn,
                        reason: TransportError::Refused,
                    },
                };
                let now = self.now;
                self.nodes[i].handle_input(now, input);
                self.drain(i);
                true
            }
        }
    }

    /// Steps until nothing is left to do or virtual time would pass
    /// `deadline`. Returns the number of steps taken.
    pub fn run_until(&mut self, deadline: Instant) -> usize {
        let mut steps = 0;
        loop {
            let next_delivery = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let next_timeout = (0..self.nodes.len())
                .filter(|&i| self.up[i])
                .filter_map(|i| self.nodes[i].poll_timeout())
                .min();
            let next = match (next_delivery, next_timeout) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > deadline || !self.step() {
                break;
            }
            steps += 1;
        }
        self.now = self.now.max(deadline);
        steps
    }

    /// Steps until nothing is left to do (no deliveries, no timeouts) or
    /// `max_steps` were taken. Returns the number of steps taken.
    pub fn run(&mut self, max_steps: usize) -> usize {
        let mut steps = 0;
        while steps < max_steps && self.step() {
            steps += 1;
        }
        steps
    }
}
