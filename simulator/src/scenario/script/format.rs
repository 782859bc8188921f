//! The file format: what a scenario file may say, and its validation into
//! [`Step`]s in run order.

use std::collections::HashMap;

use bytes::Bytes;
use ringmesh::{Config, Duration, NodeId, Security};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Script, ScriptError};
use crate::engine::{NetModel, NodeIdx, addr_of};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTop {
    seed: Option<u64>,
    net: Option<NetSection>,
    node: Option<NodeSection>,
    chord: Option<ChordSection>,
    #[serde(default)]
    step: Vec<toml::Table>,
}

/// `[chord]`: every node runs the ring and the table with these settings,
/// and the run watches Zave's invariant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChordSection {
    successors: Option<usize>,
    dht_replicas: Option<usize>,
    stabilize_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    check_every_ms: Option<u64>,
}

/// The ring settings of a `[chord]` file.
#[derive(Debug, Clone, Copy)]
pub(super) struct RingSettings {
    /// `Config::chord_successors` of every node.
    pub(super) r: usize,
    dht_replicas: usize,
    stabilize: Option<Duration>,
    request_timeout: Option<Duration>,
    /// How often the run checks the invariant.
    pub(super) check_every: Duration,
}

/// Largest DHT key and value (spec/chord.md §10.1).
const MAX_DHT_KEY: usize = 256;
const MAX_DHT_VALUE: usize = 1 << 20;

/// How often a ring run checks the invariant unless `check_every_ms` says.
const DEFAULT_CHECK_EVERY: Duration = Duration::from_millis(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetSection {
    latency_ms: Option<u64>,
    jitter_ms: Option<u64>,
    dial_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    preset: Option<Preset>,
    security: Option<SecurityName>,
    target_peers: Option<usize>,
    bootstrap: Option<Vec<NodeIdx>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Preset {
    Lan,
    Wan,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum SecurityName {
    Plaintext,
    Noise,
}

const ACTIONS: &[&str] = &[
    "add_nodes",
    "connect",
    "disconnect",
    "crash",
    "kill",
    "restart",
    "partition",
    "heal",
    "broadcast",
    "send",
    "request",
    "chord_create",
    "chord_found",
    "join",
    "leave",
    "lookup",
    "put",
    "get",
    "delete",
    "check_ring",
    "check",
];

const CHECKS: &[&str] = &[
    "delivered_everywhere",
    "delivered",
    "connected",
    "peer_down",
    "peers_at_least",
    "response",
    "received",
    "no_false_positives",
    "no_double_delivery",
    "ring_order",
    "chord_state",
];

/// Nodes a check is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Nodes {
    /// Every live node at the time of the check.
    All,
    List(Vec<NodeIdx>),
}

#[derive(Debug, Clone)]
pub(super) enum Check {
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
}

impl Check {
    pub(super) fn kind(&self) -> &'static str {
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
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum Action {
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
    Check(Check),
}

/// What a `lookup` step looks up.
#[derive(Debug, Clone)]
pub(super) enum LookupKey {
    /// A node's own id.
    Node(NodeIdx),
    /// An id written in hex.
    Id(NodeId),
    /// The ring position of a table key.
    Dht(Bytes),
}

impl Action {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Action::AddNodes { .. } => "add_nodes",
            Action::Connect(..) => "connect",
            Action::Disconnect(..) => "disconnect",
            Action::Crash(_) => "crash",
            Action::Kill(_) => "kill",
            Action::Restart(_) => "restart",
            Action::Partition(_) => "partition",
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
            Action::Check(_) => "check",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Step {
    /// Position in the file, from 0.
    pub(super) index: usize,
    pub(super) at_ms: u64,
    pub(super) label: Option<String>,
    pub(super) action: Action,
}

fn step_name(index: usize, label: Option<&str>, at_ms: u64) -> String {
    match label {
        Some(label) => format!("step #{index} \"{label}\" (at_ms = {at_ms})"),
        None => format!("step #{index} (at_ms = {at_ms})"),
    }
}

/// The fields of one table (a step's action value or a check), taken one by
/// one so that whatever is left over can be named.
struct Fields {
    table: toml::Table,
    what: String,
}

impl Fields {
    fn new(value: toml::Value, what: impl Into<String>) -> Result<Self, String> {
        let what = what.into();
        match value {
            toml::Value::Table(table) => Ok(Fields { table, what }),
            other => Err(format!(
                "{what} must be a table ({{ ... }}), not a {}",
                other.type_str()
            )),
        }
    }

    fn opt<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, String> {
        self.table
            .remove(key)
            .map(|v| {
                v.try_into::<T>()
                    .map_err(|e| format!("{}: `{key}`: {}", self.what, e.message()))
            })
            .transpose()
    }

    fn req<T: DeserializeOwned>(&mut self, key: &str) -> Result<T, String> {
        self.opt(key)?
            .ok_or_else(|| format!("{}: missing field `{key}`", self.what))
    }

    fn value(&mut self, key: &str) -> Result<toml::Value, String> {
        self.table
            .remove(key)
            .ok_or_else(|| format!("{}: missing field `{key}`", self.what))
    }

    fn finish(self, expected: &[&str]) -> Result<(), String> {
        match self.table.keys().next() {
            None => Ok(()),
            Some(key) => Err(format!(
                "{}: unknown field `{key}` (expected {})",
                self.what,
                list(expected)
            )),
        }
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reference to an earlier step, as written.
enum StepRef {
    Index(usize),
    Label(String),
}

fn step_ref(value: toml::Value, key: &str) -> Result<StepRef, String> {
    match value {
        toml::Value::Integer(i) if i >= 0 => Ok(StepRef::Index(i as usize)),
        toml::Value::String(s) => Ok(StepRef::Label(s)),
        other => Err(format!(
            "`{key}` must be a step label or a step number, not {other}"
        )),
    }
}

/// A node set as written: an index, a list, or "all".
fn node_set(value: toml::Value, key: &str) -> Result<Nodes, String> {
    let index = |v: &toml::Value| match v {
        toml::Value::Integer(i) if (0..=i64::from(u32::MAX)).contains(i) => Ok(*i as NodeIdx),
        other => Err(format!(
            "`{key}` must be a node index, a list of them or \"all\", not {other}"
        )),
    };
    match value {
        toml::Value::String(s) if s == "all" => Ok(Nodes::All),
        toml::Value::Array(items) => Ok(Nodes::List(
            items.iter().map(index).collect::<Result<_, _>>()?,
        )),
        other => Ok(Nodes::List(vec![index(&other)?])),
    }
}

/// What validation tracks while walking the steps in run order.
struct Validator {
    defaults: NodeSection,
    nodes: u32,
    labels: HashMap<String, usize>,
    /// File index → action name, for the steps already walked.
    done: HashMap<usize, &'static str>,
    at_ms: Vec<u64>,
    /// The step being validated, for errors found after the walk.
    current: String,
    /// (step, highest bootstrap index it names), checked once every node
    /// is counted.
    bootstrap_refs: Vec<(String, NodeIdx)>,
    /// The `[chord]` settings, if the file has them.
    ring: Option<RingSettings>,
}

/// A node given as `i` or as `{ node = i }`.
fn one_node(value: toml::Value, key: &str) -> Result<NodeIdx, String> {
    let value = match value {
        toml::Value::Table(table) => {
            let mut f = Fields::new(toml::Value::Table(table), format!("`{key}`"))?;
            let node = f.value("node")?;
            f.finish(&["node"])?;
            node
        }
        other => other,
    };
    value
        .try_into::<NodeIdx>()
        .map_err(|_| format!("`{key}` must be a node index or {{ node = i }}"))
}

/// A table key or value as written: a string of bytes.
fn dht_bytes(text: String, what: &str, max: usize, empty_ok: bool) -> Result<Bytes, String> {
    if text.len() > max || (!empty_ok && text.is_empty()) {
        let least = if empty_ok { 0 } else { 1 };
        return Err(format!(
            "{what} of {} bytes; it takes {least} to {max}",
            text.len()
        ));
    }
    Ok(Bytes::from(text))
}

impl Validator {
    fn node(&self, i: NodeIdx, key: &str) -> Result<NodeIdx, String> {
        if i < self.nodes {
            Ok(i)
        } else {
            Err(format!(
                "`{key}`: node {i} is out of range ({} by then)",
                match self.nodes {
                    1 => "1 node exists".to_owned(),
                    n => format!("{n} nodes exist"),
                }
            ))
        }
    }

    fn nodes(&self, nodes: Nodes, key: &str) -> Result<Nodes, String> {
        if let Nodes::List(list) = &nodes {
            if list.is_empty() {
                return Err(format!("`{key}` lists no node"));
            }
            for &i in list {
                self.node(i, key)?;
            }
        }
        Ok(nodes)
    }

    fn pair(&self, value: toml::Value, key: &str) -> Result<(NodeIdx, NodeIdx), String> {
        let [a, b]: [NodeIdx; 2] = value
            .try_into()
            .map_err(|_| format!("`{key}` must be a pair of node indices, like [0, 1]"))?;
        let (a, b) = (self.node(a, key)?, self.node(b, key)?);
        if a == b {
            return Err(format!("`{key}`: both ends are node {a}"));
        }
        Ok((a, b))
    }

    /// Resolves a reference to an earlier step of kind `want`.
    fn earlier(&self, r: StepRef, key: &str, want: &str) -> Result<usize, String> {
        let index = match r {
            StepRef::Index(i) => i,
            StepRef::Label(label) => *self
                .labels
                .get(&label)
                .ok_or_else(|| format!("`{key}`: no step is labelled \"{label}\""))?,
        };
        if index >= self.at_ms.len() {
            return Err(format!(
                "`{key}`: there is no step #{index} (the file has {})",
                self.at_ms.len()
            ));
        }
        match self.done.get(&index) {
            Some(&kind) if kind == want => Ok(index),
            Some(&kind) => Err(format!(
                "`{key}`: step #{index} is a `{kind}`, not a `{want}`"
            )),
            None => Err(format!(
                "`{key}`: step #{index} runs later (at_ms = {})",
                self.at_ms[index]
            )),
        }
    }

    fn config(&mut self, overrides: NodeSection) -> Result<Config, String> {
        let preset = overrides.preset.or(self.defaults.preset);
        let mut config = match preset.unwrap_or(Preset::Lan) {
            Preset::Lan => Config::lan(),
            Preset::Wan => Config::wan(),
        };
        config.security = match overrides.security.or(self.defaults.security) {
            Some(SecurityName::Noise) => Security::Noise,
            Some(SecurityName::Plaintext) | None => Security::Plaintext,
        };
        if let Some(n) = overrides.target_peers.or(self.defaults.target_peers) {
            config.target_peers = n;
        }
        let bootstrap = overrides
            .bootstrap
            .or_else(|| self.defaults.bootstrap.clone())
            .unwrap_or_default();
        // Any node the file adds may be named, even one added later: the
        // node retries its bootstrap list until someone answers.
        if let Some(&top) = bootstrap.iter().max() {
            self.bootstrap_refs.push((self.current.clone(), top));
        }
        config.bootstrap = bootstrap.into_iter().map(addr_of).collect();
        if let Some(ring) = self.ring {
            config.chord = true;
            config.chord_successors = ring.r;
            config.dht_replicas = ring.dht_replicas;
            if let Some(d) = ring.stabilize {
                config.chord_stabilize_interval = d;
            }
            if let Some(d) = ring.request_timeout {
                config.chord_request_timeout = d;
            }
            // The engine sets each node's own address; validation only
            // needs to see that there is one.
            config.listen_addrs = [addr_of(0)].into_iter().collect();
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    fn action(&mut self, key: &str, value: toml::Value) -> Result<Action, String> {
        let index = |v: toml::Value| -> Result<NodeIdx, String> {
            v.try_into::<NodeIdx>()
                .map_err(|_| format!("`{key}` must be a node index"))
        };
        Ok(match key {
            "add_nodes" => {
                let (count, overrides) = match value {
                    toml::Value::Integer(n) => (
                        u32::try_from(n).map_err(|_| format!("`add_nodes` = {n}: not a count"))?,
                        NodeSection::default(),
                    ),
                    table => {
                        let mut f = Fields::new(table, "`add_nodes`")?;
                        let count = f.req::<u32>("count")?;
                        let overrides = NodeSection {
                            preset: f.opt("preset")?,
                            security: f.opt("security")?,
                            target_peers: f.opt("target_peers")?,
                            bootstrap: f.opt("bootstrap")?,
                        };
                        f.finish(&["count", "preset", "security", "target_peers", "bootstrap"])?;
                        (count, overrides)
                    }
                };
                if count == 0 {
                    return Err("`add_nodes` adds no node".into());
                }
                let config = self.config(overrides)?;
                self.nodes = self
                    .nodes
                    .checked_add(count)
                    .ok_or("`add_nodes`: too many nodes")?;
                Action::AddNodes {
                    count,
                    config: Box::new(config),
                }
            }
            "connect" => {
                let (a, b) = self.pair(value, key)?;
                Action::Connect(a, b)
            }
            "disconnect" => {
                let (a, b) = self.pair(value, key)?;
                Action::Disconnect(a, b)
            }
            "crash" => Action::Crash(self.node(index(value)?, key)?),
            "kill" => Action::Kill(self.node(index(value)?, key)?),
            "restart" => Action::Restart(self.node(index(value)?, key)?),
            "heal" => match value {
                toml::Value::Boolean(true) => Action::Heal,
                _ => return Err("write `heal = true`".into()),
            },
            "partition" => {
                let groups: Vec<Vec<NodeIdx>> = value.try_into().map_err(|_| {
                    "`partition` must be a list of node lists, like [[0, 1], [2, 3]]".to_owned()
                })?;
                if groups.len() < 2 {
                    return Err("`partition` needs at least two groups".into());
                }
                // Groups beyond the node count would be empty; the engine
                // numbers groups with a u16.
                if groups.len() > (self.nodes as usize).min(usize::from(u16::MAX)) {
                    return Err(format!(
                        "`partition`: {} groups for {} nodes",
                        groups.len(),
                        self.nodes
                    ));
                }
                let mut of = vec![None; self.nodes as usize];
                for (g, members) in groups.iter().enumerate() {
                    for &i in members {
                        self.node(i, key)?;
                        if of[i as usize].replace(g as u16).is_some() {
                            return Err(format!("`partition`: node {i} is in two groups"));
                        }
                    }
                }
                Action::Partition(of.into_iter().map(Option::unwrap_or_default).collect())
            }
            "broadcast" => {
                let mut f = Fields::new(value, "`broadcast`")?;
                let from = self.node(f.req("from")?, "from")?;
                let payload = f.opt::<String>("payload")?.unwrap_or_default();
                f.finish(&["from", "payload"])?;
                Action::Broadcast {
                    from,
                    payload: Bytes::from(payload),
                }
            }
            "send" | "request" => {
                let mut f = Fields::new(value, format!("`{key}`"))?;
                let from = self.node(f.req("from")?, "from")?;
                let to = self.node(f.req("to")?, "to")?;
                if from == to {
                    return Err(format!("`{key}`: `from` and `to` are both node {from}"));
                }
                let payload = Bytes::from(f.opt::<String>("payload")?.unwrap_or_default());
                if key == "send" {
                    f.finish(&["from", "to", "payload"])?;
                    Action::Send { from, to, payload }
                } else {
                    let timeout_ms = f.opt::<u64>("timeout_ms")?.unwrap_or(5_000);
                    f.finish(&["from", "to", "payload", "timeout_ms"])?;
                    if timeout_ms == 0 {
                        return Err("`request`: `timeout_ms` must be above 0".into());
                    }
                    Action::Request {
                        from,
                        to,
                        payload,
                        timeout: Duration::from_millis(timeout_ms),
                    }
                }
            }
            "chord_create" | "chord_found" | "join" | "leave" | "lookup" | "put" | "get"
            | "delete" | "check_ring" => self.ring_action(key, value)?,
            "check" => Action::Check(self.check(value)?),
            _ => {
                return Err(format!(
                    "unknown action `{key}` (expected one of {})",
                    list(ACTIONS)
                ));
            }
        })
    }

    /// The ring and table actions; they need `[chord]`.
    fn ring_action(&mut self, key: &str, value: toml::Value) -> Result<Action, String> {
        let Some(ring) = self.ring else {
            return Err(format!(
                "`{key}` needs a [chord] section (the nodes must run the ring)"
            ));
        };
        Ok(match key {
            "chord_create" => Action::ChordCreate(self.node(one_node(value, key)?, key)?),
            "leave" => Action::Leave(self.node(one_node(value, key)?, key)?),
            "chord_found" => {
                let value = match value {
                    toml::Value::Table(table) => {
                        let mut f = Fields::new(toml::Value::Table(table), "`chord_found`")?;
                        let nodes = f.value("nodes")?;
                        f.finish(&["nodes"])?;
                        nodes
                    }
                    other => other,
                };
                let mut nodes: Vec<NodeIdx> = value.try_into().map_err(|_| {
                    "`chord_found` must be a list of node indices, or { nodes = [...] }".to_owned()
                })?;
                for &i in &nodes {
                    self.node(i, key)?;
                }
                let listed = nodes.len();
                nodes.sort_unstable();
                nodes.dedup();
                if nodes.len() != listed {
                    return Err("`chord_found` names a node twice".into());
                }
                if nodes.len() <= ring.r {
                    return Err(format!(
                        "`chord_found`: {} founders; a ring needs at least successors + 1 = {} \
                         (spec/chord.md §5.1)",
                        nodes.len(),
                        ring.r + 1
                    ));
                }
                Action::ChordFound(nodes)
            }
            "join" => {
                let mut f = Fields::new(value, "`join`")?;
                let node = self.node(f.req("node")?, "node")?;
                let via = self.node(f.req("via")?, "via")?;
                f.finish(&["node", "via"])?;
                if node == via {
                    return Err(format!("`join`: node {node} cannot join through itself"));
                }
                Action::Join { node, via }
            }
            "lookup" => {
                let mut f = Fields::new(value, "`lookup`")?;
                let from = self.node(f.req("from")?, "from")?;
                let key_value = f.table.remove("key");
                let dht_key = f.opt::<String>("dht_key")?;
                let expect_owner = f.opt::<NodeIdx>("expect_owner")?;
                f.finish(&["from", "key", "dht_key", "expect_owner"])?;
                let key = match (key_value, dht_key) {
                    (Some(toml::Value::Integer(i)), None) => {
                        let i = NodeIdx::try_from(i)
                            .map_err(|_| format!("`lookup`: `key` = {i} is not a node index"))?;
                        LookupKey::Node(self.node(i, "key")?)
                    }
                    (Some(toml::Value::String(hex)), None) => LookupKey::Id(
                        hex.parse::<NodeId>()
                            .map_err(|e| format!("`lookup`: `key`: {e}"))?,
                    ),
                    (Some(other), None) => {
                        return Err(format!(
                            "`lookup`: `key` must be a node index or 32 hex digits, not {other}"
                        ));
                    }
                    (None, Some(text)) => {
                        LookupKey::Dht(dht_bytes(text, "`dht_key`", MAX_DHT_KEY, false)?)
                    }
                    (None, None) => {
                        return Err("`lookup`: give `key` or `dht_key`".into());
                    }
                    (Some(_), Some(_)) => {
                        return Err("`lookup`: give `key` or `dht_key`, not both".into());
                    }
                };
                let expect_owner = expect_owner
                    .map(|i| self.node(i, "expect_owner"))
                    .transpose()?;
                Action::Lookup {
                    from,
                    key,
                    expect_owner,
                }
            }
            "put" | "delete" | "get" => {
                let mut f = Fields::new(value, format!("`{key}`"))?;
                let from = self.node(f.req("from")?, "from")?;
                let table_key = dht_bytes(
                    f.req("key")?,
                    &format!("`{key}`: `key`"),
                    MAX_DHT_KEY,
                    false,
                )?;
                match key {
                    "put" => {
                        let value = f.req::<String>("value")?;
                        f.finish(&["from", "key", "value"])?;
                        Action::Put {
                            from,
                            key: table_key,
                            value: Some(dht_bytes(value, "`put`: `value`", MAX_DHT_VALUE, true)?),
                        }
                    }
                    "delete" => {
                        f.finish(&["from", "key"])?;
                        Action::Put {
                            from,
                            key: table_key,
                            value: None,
                        }
                    }
                    _ => {
                        let expect = f.opt::<String>("expect")?;
                        let expect_none = f.opt::<bool>("expect_none")?;
                        f.finish(&["from", "key", "expect", "expect_none"])?;
                        let expect = match (expect, expect_none) {
                            (Some(_), Some(_)) => {
                                return Err(
                                    "`get`: give `expect` or `expect_none`, not both".into()
                                );
                            }
                            (Some(v), None) => Some(Some(Bytes::from(v))),
                            (None, Some(true)) => Some(None),
                            (None, Some(false)) => {
                                return Err(
                                    "`get`: write `expect_none = true`, or leave it out".into()
                                );
                            }
                            (None, None) => None,
                        };
                        Action::Get {
                            from,
                            key: table_key,
                            expect,
                        }
                    }
                }
            }
            "check_ring" => {
                let (ideal, members) = match value {
                    toml::Value::Boolean(true) => (false, None),
                    table @ toml::Value::Table(_) => {
                        let mut f = Fields::new(table, "`check_ring`")?;
                        let ideal = f.opt::<bool>("ideal")?.unwrap_or(false);
                        let members = f.opt::<usize>("members")?;
                        f.finish(&["ideal", "members"])?;
                        (ideal, members)
                    }
                    _ => {
                        return Err(
                            "write `check_ring = true` or `check_ring = { ideal = true, members = N }`"
                                .into(),
                        );
                    }
                };
                Action::CheckRing { ideal, members }
            }
            _ => unreachable!("ring_action is called for ring actions only"),
        })
    }

    fn check(&self, value: toml::Value) -> Result<Check, String> {
        let mut f = Fields::new(value, "`check`")?;
        let kind: String = f.req("kind")?;
        f.what = format!("check `{kind}`");
        let check = match kind.as_str() {
            "delivered_everywhere" => {
                let broadcast = step_ref(f.value("broadcast")?, "broadcast")?;
                f.finish(&["kind", "broadcast"])?;
                Check::DeliveredEverywhere {
                    broadcast: self.earlier(broadcast, "broadcast", "broadcast")?,
                }
            }
            "delivered" => {
                let broadcast = step_ref(f.value("broadcast")?, "broadcast")?;
                let nodes = node_set(f.value("node")?, "node")?;
                f.finish(&["kind", "broadcast", "node"])?;
                Check::Delivered {
                    broadcast: self.earlier(broadcast, "broadcast", "broadcast")?,
                    nodes: self.nodes(nodes, "node")?,
                }
            }
            "connected" => {
                let node = f.opt::<NodeIdx>("node")?;
                let peer = f.opt::<NodeIdx>("peer")?;
                let min_peers = f.opt::<usize>("min_peers")?;
                f.finish(&["kind", "node", "peer", "min_peers"])?;
                match (node, peer) {
                    (Some(node), Some(peer)) => {
                        if min_peers.is_some() {
                            return Err(
                                "check `connected`: `min_peers` goes without `node` and `peer`"
                                    .into(),
                            );
                        }
                        let (node, peer) = (self.node(node, "node")?, self.node(peer, "peer")?);
                        if node == peer {
                            return Err(format!("check `connected`: node {node} with itself"));
                        }
                        Check::Linked { node, peer }
                    }
                    (None, None) => Check::Connected {
                        min_peers: min_peers.unwrap_or(1),
                    },
                    _ => {
                        return Err(
                            "check `connected`: give both `node` and `peer`, or neither".into()
                        );
                    }
                }
            }
            "peer_down" => {
                let nodes = node_set(f.value("node")?, "node")?;
                let peers = node_set(f.value("peer")?, "peer")?;
                f.finish(&["kind", "node", "peer"])?;
                Check::PeerDown {
                    nodes: self.nodes(nodes, "node")?,
                    peers: self.nodes(peers, "peer")?,
                }
            }
            "peers_at_least" => {
                let nodes = node_set(f.value("node")?, "node")?;
                let n = f.req::<usize>("n")?;
                f.finish(&["kind", "node", "n"])?;
                Check::PeersAtLeast {
                    nodes: self.nodes(nodes, "node")?,
                    n,
                }
            }
            "response" => {
                let request = step_ref(f.value("request")?, "request")?;
                f.finish(&["kind", "request"])?;
                Check::Response {
                    request: self.earlier(request, "request", "request")?,
                }
            }
            "received" => {
                let send = step_ref(f.value("send")?, "send")?;
                f.finish(&["kind", "send"])?;
                Check::Received {
                    send: self.earlier(send, "send", "send")?,
                }
            }
            "no_false_positives" => {
                f.finish(&["kind"])?;
                Check::NoFalsePositives
            }
            "no_double_delivery" => {
                f.finish(&["kind"])?;
                Check::NoDoubleDelivery
            }
            "ring_order" => {
                let nodes = node_set(f.value("node")?, "node")?;
                f.finish(&["kind", "node"])?;
                let Nodes::List(nodes) = self.nodes(nodes, "node")? else {
                    return Err("check `ring_order`: `node` must list the nodes in order".into());
                };
                let mut distinct = nodes.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() != nodes.len() || nodes.len() < 3 {
                    return Err(
                        "check `ring_order`: list at least three distinct nodes (any two are in order)"
                            .into(),
                    );
                }
                Check::RingOrder(nodes)
            }
            "chord_state" => {
                if self.ring.is_none() {
                    return Err("check `chord_state` needs a [chord] section".into());
                }
                let node = self.node(f.req("node")?, "node")?;
                let successors = f.opt::<Vec<NodeIdx>>("successors")?;
                let predecessor = match f.table.remove("predecessor") {
                    None => None,
                    Some(toml::Value::String(s)) if s == "none" => Some(None),
                    Some(v) => Some(Some(self.node(
                        v.try_into::<NodeIdx>().map_err(|_| {
                            "check `chord_state`: `predecessor` must be a node index or \"none\""
                                .to_owned()
                        })?,
                        "predecessor",
                    )?)),
                };
                f.finish(&["kind", "node", "successors", "predecessor"])?;
                for &i in successors.iter().flatten() {
                    self.node(i, "successors")?;
                }
                if successors.is_none() && predecessor.is_none() {
                    return Err(
                        "check `chord_state`: give `successors`, `predecessor` or both".into(),
                    );
                }
                Check::ChordState {
                    node,
                    successors,
                    predecessor,
                }
            }
            other => {
                return Err(format!(
                    "unknown check kind `{other}` (expected one of {})",
                    list(CHECKS)
                ));
            }
        };
        Ok(check)
    }
}

impl Script {
    /// Parses and validates a scenario file's text.
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        let top: FileTop = toml::from_str(text).map_err(|e| ScriptError::new(e.to_string()))?;
        let mut net = NetModel::default();
        if let Some(section) = top.net {
            if let Some(ms) = section.latency_ms {
                net.latency = Duration::from_millis(ms);
            }
            if let Some(ms) = section.jitter_ms {
                net.jitter = Duration::from_millis(ms);
            }
            if let Some(ms) = section.dial_timeout_ms {
                net.dial_timeout = Duration::from_millis(ms);
            }
        }
        if top.step.is_empty() {
            return Err(ScriptError::new("the file has no [[step]]"));
        }
        let ring = top
            .chord
            .map(|section| {
                let r = section.successors.unwrap_or(3);
                let ms = |field: &str, value: Option<u64>| match value {
                    Some(0) => Err(ScriptError::new(format!(
                        "[chord]: `{field}` must be above 0"
                    ))),
                    other => Ok(other.map(Duration::from_millis)),
                };
                Ok(RingSettings {
                    r,
                    dht_replicas: section.dht_replicas.unwrap_or(r.min(3)),
                    stabilize: ms("stabilize_ms", section.stabilize_ms)?,
                    request_timeout: ms("request_timeout_ms", section.request_timeout_ms)?,
                    check_every: ms("check_every_ms", section.check_every_ms)?
                        .unwrap_or(DEFAULT_CHECK_EVERY),
                })
            })
            .transpose()?;

        // First pass, file order: times and labels.
        let mut raw = Vec::with_capacity(top.step.len());
        let mut labels = HashMap::new();
        for (index, mut table) in top.step.into_iter().enumerate() {
            let at_ms = match table.remove("at_ms") {
                Some(toml::Value::Integer(ms)) if ms >= 0 => ms as u64,
                Some(other) => {
                    return Err(ScriptError::new(format!(
                        "step #{index}: `at_ms` must be a whole number of milliseconds ≥ 0, not {other}"
                    )));
                }
                None => {
                    return Err(ScriptError::new(format!("step #{index}: missing `at_ms`")));
                }
            };
            let label = match table.remove("label") {
                Some(toml::Value::String(label)) => Some(label),
                Some(other) => {
                    return Err(ScriptError::new(format!(
                        "{}: `label` must be a string, not {other}",
                        step_name(index, None, at_ms)
                    )));
                }
                None => None,
            };
            if let Some(label) = &label
                && let Some(first) = labels.insert(label.clone(), index)
            {
                return Err(ScriptError::new(format!(
                    "{}: label \"{label}\" is already step #{first}'s",
                    step_name(index, None, at_ms)
                )));
            }
            raw.push((index, at_ms, label, table));
        }

        // Second pass, run order: actions, with the nodes that exist then.
        raw.sort_by_key(|(index, at_ms, ..)| (*at_ms, *index));
        let mut validator = Validator {
            defaults: top.node.unwrap_or_default(),
            nodes: 0,
            labels,
            done: HashMap::new(),
            at_ms: Vec::new(),
            current: "[node]".into(),
            bootstrap_refs: Vec::new(),
            ring,
        };
        validator.at_ms = {
            let mut at = vec![0; raw.len()];
            for (index, at_ms, ..) in &raw {
                at[*index] = *at_ms;
            }
            at
        };
        // Defaults are checked once up front, so that a bad `[node]` is
        // reported as such (bootstrap indices are checked per batch).
        validator.config(NodeSection::default()).map_err(|e| {
            let section = if ring.is_some() {
                "[node] or [chord]"
            } else {
                "[node]"
            };
            ScriptError::new(format!("{section}: {e}"))
        })?;
        validator.bootstrap_refs.clear();
        let mut steps = Vec::with_capacity(raw.len());
        for (index, at_ms, label, table) in raw {
            let name = step_name(index, label.as_deref(), at_ms);
            let mut entries = table.into_iter();
            let (key, value) = match (entries.next(), entries.next()) {
                (Some(entry), None) => entry,
                (None, _) => {
                    return Err(ScriptError::new(format!(
                        "{name}: no action (expected one of {})",
                        list(ACTIONS)
                    )));
                }
                (Some((a, _)), Some((b, _))) => {
                    let known = [&a, &b].iter().all(|k| ACTIONS.contains(&k.as_str()));
                    return Err(ScriptError::new(if known {
                        format!("{name}: both `{a}` and `{b}`; one action per step")
                    } else {
                        let unknown = if ACTIONS.contains(&a.as_str()) { b } else { a };
                        format!(
                            "{name}: unknown action `{unknown}` (expected one of {})",
                            list(ACTIONS)
                        )
                    }));
                }
            };
            validator.current = name.clone();
            let action = validator
                .action(&key, value)
                .map_err(|e| ScriptError::new(format!("{name}: {e}")))?;
            validator.done.insert(index, action.name());
            steps.push(Step {
                index,
                at_ms,
                label,
                action,
            });
        }
        if let Some((step, i)) = validator
            .bootstrap_refs
            .iter()
            .find(|(_, i)| *i >= validator.nodes)
        {
            return Err(ScriptError::new(format!(
                "{step}: `bootstrap`: node {i} is out of range (the file adds {} nodes)",
                validator.nodes
            )));
        }
        Ok(Script {
            seed: top.seed.unwrap_or(1),
            net,
            ring,
            steps,
        })
    }
}
