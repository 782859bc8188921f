//! What a validated scenario file is: its steps, in run order, with every
//! node, step reference and value checked; what `run` and `ring` execute.

use bytes::Bytes;
use ringmesh::{Config, Duration, NodeId};
use serde::Deserialize;

use crate::engine::NodeIdx;

/// The ring settings of a `[chord]` file.
#[derive(Debug, Clone, Copy)]
pub(in crate::scenario::script) struct RingSettings {
    /// `ChordConfig::successors` of every node.
    pub(in crate::scenario::script) r: usize,
    pub(super) dht_replicas: usize,
    pub(super) stabilize: Option<Duration>,
    pub(super) request_timeout: Option<Duration>,
    /// How often the run checks the invariant.
    pub(in crate::scenario::script) check_every: Duration,
}

/// Nodes a check is about: an index, a list of them, or `"all"` as
/// written (see its `TryFrom<toml::Value>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub(in crate::scenario::script) enum Nodes {
    /// Every live node at the time of the check.
    All,
    List(Vec<NodeIdx>),
}

#[derive(Debug, Clone)]
pub(in crate::scenario::script) enum Check {
    DeliveredEverywhere {
        broadcast: usize,
    },
    Delivered {
        broadcast: usize,
        nodes: Nodes,
    },
    Connected {
        min_peers: usize,
    },
    Linked {
        node: NodeIdx,
        peer: NodeIdx,
    },
    PeerDown {
        nodes: Nodes,
        peers: Nodes,
    },
    PeersAtLeast {
        nodes: Nodes,
        n: usize,
    },
    Response {
        request: usize,
    },
    Received {
        send: usize,
    },
    NoFalsePositives,
    NoDoubleDelivery,
    /// The nodes' ids lie clockwise in this order.
    RingOrder(Vec<NodeIdx>),
    /// A node's successor list and/or predecessor are these.
    ChordState {
        node: NodeIdx,
        successors: Option<Vec<NodeIdx>>,
        /// `Some(None)`: no predecessor.
        predecessor: Option<Option<NodeIdx>>,
    },
    /// Every live node holds the same sync table.
    SyncConverged,
    /// The nodes' sync table holds this value under `key` (`None`: no
    /// value).
    SyncValue {
        nodes: Nodes,
        key: Bytes,
        expect: Option<Bytes>,
    },
}

impl Check {
    pub(in crate::scenario::script) fn kind(&self) -> &'static str {
        match self {
            Check::DeliveredEverywhere { .. } => "delivered_everywhere",
            Check::Delivered { .. } => "delivered",
            Check::Connected { .. } | Check::Linked { .. } => "connected",
            Check::PeerDown { .. } => "peer_down",
            Check::PeersAtLeast { .. } => "peers_at_least",
            Check::Response { .. } => "response",
            Check::Received { .. } => "received",
            Check::NoFalsePositives => "no_false_positives",
            Check::NoDoubleDelivery => "no_double_delivery",
            Check::RingOrder(_) => "ring_order",
            Check::ChordState { .. } => "chord_state",
            Check::SyncConverged => "sync_converged",
            Check::SyncValue { .. } => "sync_value",
        }
    }
}

#[derive(Debug, Clone)]
pub(in crate::scenario::script) enum Action {
    AddNodes {
        count: u32,
        config: Box<Config>,
    },
    Connect(NodeIdx, NodeIdx),
    Disconnect(NodeIdx, NodeIdx),
    Crash(NodeIdx),
    Kill(NodeIdx),
    Restart(NodeIdx),
    /// A group for every node that exists by then.
    Partition(Vec<u16>),
    PartitionOneWay {
        from: Vec<NodeIdx>,
        to: Vec<NodeIdx>,
    },
    /// `peer: None`: every link of `node`.
    Flap {
        node: NodeIdx,
        peer: Option<NodeIdx>,
        down_for: Duration,
    },
    DelaySpike {
        node: NodeIdx,
        peer: Option<NodeIdx>,
        extra: Duration,
        lasting: Duration,
    },
    Heal,
    Broadcast {
        from: NodeIdx,
        payload: Bytes,
    },
    Send {
        from: NodeIdx,
        to: NodeIdx,
        payload: Bytes,
    },
    Request {
        from: NodeIdx,
        to: NodeIdx,
        payload: Bytes,
        timeout: Duration,
    },
    ChordCreate(NodeIdx),
    ChordFound(Vec<NodeIdx>),
    Join {
        node: NodeIdx,
        via: NodeIdx,
    },
    Leave(NodeIdx),
    Lookup {
        from: NodeIdx,
        key: LookupKey,
        expect_owner: Option<NodeIdx>,
    },
    Put {
        from: NodeIdx,
        key: Bytes,
        /// `None`: a delete.
        value: Option<Bytes>,
    },
    Get {
        from: NodeIdx,
        key: Bytes,
        /// `Some(None)`: the key must have no value.
        expect: Option<Option<Bytes>>,
    },
    CheckRing {
        ideal: bool,
        members: Option<usize>,
    },
    /// `sync_set` (a value) or `sync_delete` (`None`).
    SyncWrite {
        from: NodeIdx,
        key: Bytes,
        value: Option<Bytes>,
    },
    Check(Check),
}

/// What a `lookup` step looks up.
#[derive(Debug, Clone)]
pub(in crate::scenario::script) enum LookupKey {
    /// A node's own id.
    Node(NodeIdx),
    /// An id written in hex.
    Id(NodeId),
    /// The ring position of a table key.
    Dht(Bytes),
}

impl Action {
    pub(in crate::scenario::script) fn name(&self) -> &'static str {
        match self {
            Action::AddNodes { .. } => "add_nodes",
            Action::Connect(..) => "connect",
            Action::Disconnect(..) => "disconnect",
            Action::Crash(_) => "crash",
            Action::Kill(_) => "kill",
            Action::Restart(_) => "restart",
            Action::Partition(_) => "partition",
            Action::PartitionOneWay { .. } => "partition_one_way",
            Action::Flap { .. } => "flap",
            Action::DelaySpike { .. } => "delay_spike",
            Action::Heal => "heal",
            Action::Broadcast { .. } => "broadcast",
            Action::Send { .. } => "send",
            Action::Request { .. } => "request",
            Action::ChordCreate(_) => "chord_create",
            Action::ChordFound(_) => "chord_found",
            Action::Join { .. } => "join",
            Action::Leave(_) => "leave",
            Action::Lookup { .. } => "lookup",
            Action::Put { value: Some(_), .. } => "put",
            Action::Put { value: None, .. } => "delete",
            Action::Get { .. } => "get",
            Action::CheckRing { .. } => "check_ring",
            Action::SyncWrite { value: Some(_), .. } => "sync_set",
            Action::SyncWrite { value: None, .. } => "sync_delete",
            Action::Check(_) => "check",
        }
    }
}

#[derive(Debug, Clone)]
pub(in crate::scenario::script) struct Step {
    /// Position in the file, from 0.
    pub(in crate::scenario::script) index: usize,
    pub(in crate::scenario::script) at_ms: u64,
    pub(in crate::scenario::script) label: Option<String>,
    pub(in crate::scenario::script) action: Action,
}
