//! Validation: each step's action, read by serde, checked against the
//! nodes that exist when it runs, the steps before it and the `[chord]`
//! settings, and turned into an [`Action`].

use std::collections::HashMap;

use bytes::Bytes;
use ringmesh::{ChordConfig, Config, DhtConfig, Duration, Security, SyncConfig};

use super::spec::{
    ActionSpec, AddNodesSpec, CheckRingSpec, CheckSpec, Founders, GetSpec, KeySpec, LookupSpec,
    NodeSection, OneNode, Pointer, Preset, SecurityName, Short, StepRef, variant, variant_names,
};
use super::step::{Action, Check, LookupKey, Nodes, RingSettings};
use crate::engine::{NodeIdx, addr_of};

/// Largest DHT key and value (spec/chord.md §10.1).
const MAX_DHT_KEY: usize = 256;
const MAX_DHT_VALUE: usize = 1 << 20;

/// What validation tracks while walking the steps in run order.
pub(super) struct Validator {
    pub(super) defaults: NodeSection,
    pub(super) nodes: u32,
    pub(super) labels: HashMap<String, usize>,
    /// File index → action name, for the steps already walked.
    pub(super) done: HashMap<usize, &'static str>,
    pub(super) at_ms: Vec<u64>,
    /// The step being validated, for errors found after the walk.
    pub(super) current: String,
    /// (step, highest bootstrap index it names), checked once every node
    /// is counted.
    pub(super) bootstrap_refs: Vec<(String, NodeIdx)>,
    /// The `[chord]` settings, if the file has them.
    pub(super) ring: Option<RingSettings>,
    /// The sync table every node runs, if the file has `[sync]`.
    pub(super) sync: Option<SyncConfig>,
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

    fn pair(&self, [a, b]: [NodeIdx; 2], key: &str) -> Result<(NodeIdx, NodeIdx), String> {
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

    pub(super) fn config(&mut self, overrides: NodeSection) -> Result<Config, String> {
        let preset = overrides.preset.or(self.defaults.preset);
        let (mut config, chord, dht) = match preset.unwrap_or(Preset::Lan) {
            Preset::Lan => (Config::lan(), ChordConfig::lan(), DhtConfig::lan()),
            Preset::Wan => (Config::wan(), ChordConfig::wan(), DhtConfig::wan()),
        };
        config.security = match overrides.security.or(self.defaults.security) {
            Some(SecurityName::Noise) => Security::Noise,
            Some(SecurityName::Plaintext) | None => Security::Plaintext,
        };
        if let Some(n) = overrides.target_peers.or(self.defaults.target_peers) {
            config.peers.target_peers = n;
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
        config.peers.bootstrap = bootstrap.into_iter().map(addr_of).collect();
        if let Some(ring) = self.ring {
            config.chord = Some(ChordConfig {
                successors: ring.r,
                stabilize_interval: ring.stabilize.unwrap_or(chord.stabilize_interval),
                request_timeout: ring.request_timeout.unwrap_or(chord.request_timeout),
                ..chord
            });
            config.dht = Some(DhtConfig {
                replicas: ring.dht_replicas,
                ..dht
            });
            // The engine sets each node's own address; validation only
            // needs to see that there is one.
            config.listen_addrs = [addr_of(0)].into_iter().collect();
        }
        config.sync.clone_from(&self.sync);
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Validates one action read from the file, written as `key`.
    pub(super) fn action(&mut self, key: &str, spec: ActionSpec) -> Result<Action, String> {
        Ok(match spec {
            ActionSpec::AddNodes(spec) => self.add_nodes(spec)?,
            ActionSpec::Connect(pair) => {
                let (a, b) = self.pair(pair, "connect")?;
                Action::Connect(a, b)
            }
            ActionSpec::Disconnect(pair) => {
                let (a, b) = self.pair(pair, "disconnect")?;
                Action::Disconnect(a, b)
            }
            ActionSpec::Crash(i) => Action::Crash(self.node(i, "crash")?),
            ActionSpec::Kill(i) => Action::Kill(self.node(i, "kill")?),
            ActionSpec::Restart(i) => Action::Restart(self.node(i, "restart")?),
            ActionSpec::Heal(true) => Action::Heal,
            ActionSpec::Heal(false) => return Err("write `heal = true`".into()),
            ActionSpec::Partition(groups) => self.partition(groups)?,
            ActionSpec::PartitionOneWay(spec) => {
                if spec.from.is_empty() || spec.to.is_empty() {
                    return Err("`partition_one_way`: `from` and `to` need a node each".into());
                }
                for &i in spec.from.iter().chain(&spec.to) {
                    self.node(i, key)?;
                }
                Action::PartitionOneWay {
                    from: spec.from,
                    to: spec.to,
                }
            }
            ActionSpec::Flap(spec) | ActionSpec::DelaySpike(spec) => {
                let node = self.node(spec.node, key)?;
                let peer = match spec.peer {
                    Some(p) => Some(self.pair([node, p], key)?.1),
                    None => None,
                };
                if spec.for_ms == 0 {
                    return Err(format!("`{key}`: `for_ms` must be above 0"));
                }
                let lasting = Duration::from_millis(spec.for_ms);
                match (key, spec.extra_ms) {
                    ("flap", None) => Action::Flap {
                        node,
                        peer,
                        down_for: lasting,
                    },
                    ("flap", Some(_)) => {
                        return Err("`flap`: `extra_ms` belongs to `delay_spike`".into());
                    }
                    (_, Some(ms)) if ms > 0 => Action::DelaySpike {
                        node,
                        peer,
                        extra: Duration::from_millis(ms),
                        lasting,
                    },
                    _ => return Err("`delay_spike`: `extra_ms` (above 0) is required".into()),
                }
            }
            ActionSpec::Broadcast(spec) => Action::Broadcast {
                from: self.node(spec.from, "from")?,
                payload: Bytes::from(spec.payload.unwrap_or_default()),
            },
            ActionSpec::Send(spec) => {
                let (from, to) = self.message_ends(spec.from, spec.to, "send")?;
                let payload = Bytes::from(spec.payload.unwrap_or_default());
                Action::Send { from, to, payload }
            }
            ActionSpec::Request(spec) => {
                let (from, to) = self.message_ends(spec.from, spec.to, "request")?;
                let timeout_ms = spec.timeout_ms.unwrap_or(5_000);
                if timeout_ms == 0 {
                    return Err("`request`: `timeout_ms` must be above 0".into());
                }
                Action::Request {
                    from,
                    to,
                    payload: Bytes::from(spec.payload.unwrap_or_default()),
                    timeout: Duration::from_millis(timeout_ms),
                }
            }
            ActionSpec::Check(table) => Action::Check(self.check(table)?),
            ActionSpec::ChordCreate(node) => {
                self.ring(key)?;
                Action::ChordCreate(self.node(one_node(node), key)?)
            }
            ActionSpec::Leave(node) => {
                self.ring(key)?;
                Action::Leave(self.node(one_node(node), key)?)
            }
            ActionSpec::ChordFound(founders) => self.chord_found(key, founders)?,
            ActionSpec::Join(spec) => {
                self.ring(key)?;
                let node = self.node(spec.node, "node")?;
                let via = self.node(spec.via, "via")?;
                if node == via {
                    return Err(format!("`join`: node {node} cannot join through itself"));
                }
                Action::Join { node, via }
            }
            ActionSpec::Lookup(spec) => self.lookup(key, spec)?,
            ActionSpec::Put(spec) => {
                self.ring(key)?;
                Action::Put {
                    from: self.node(spec.from, "from")?,
                    key: dht_bytes(spec.key, "`put`: `key`", MAX_DHT_KEY, false)?,
                    value: Some(dht_bytes(
                        spec.value,
                        "`put`: `value`",
                        MAX_DHT_VALUE,
                        true,
                    )?),
                }
            }
            ActionSpec::Delete(spec) => {
                self.ring(key)?;
                Action::Put {
                    from: self.node(spec.from, "from")?,
                    key: dht_bytes(spec.key, "`delete`: `key`", MAX_DHT_KEY, false)?,
                    value: None,
                }
            }
            ActionSpec::Get(spec) => self.get(key, spec)?,
            ActionSpec::CheckRing(spec) => {
                self.ring(key)?;
                check_ring(spec)?
            }
            ActionSpec::SyncSet(spec) => {
                self.sync_on(key)?;
                Action::SyncWrite {
                    from: self.node(spec.from, "from")?,
                    key: dht_bytes(spec.key, "`sync_set`: `key`", MAX_DHT_KEY, false)?,
                    value: Some(dht_bytes(
                        spec.value,
                        "`sync_set`: `value`",
                        MAX_DHT_VALUE,
                        true,
                    )?),
                }
            }
            ActionSpec::SyncDelete(spec) => {
                self.sync_on(key)?;
                Action::SyncWrite {
                    from: self.node(spec.from, "from")?,
                    key: dht_bytes(spec.key, "`sync_delete`: `key`", MAX_DHT_KEY, false)?,
                    value: None,
                }
            }
        })
    }

    /// The sync actions and checks need `[sync]`.
    fn sync_on(&self, key: &str) -> Result<(), String> {
        match self.sync {
            Some(_) => Ok(()),
            None => Err(format!(
                "`{key}` needs a [sync] section (the nodes must run the sync table)"
            )),
        }
    }

    /// The `[chord]` settings the ring and table actions need.
    fn ring(&self, key: &str) -> Result<RingSettings, String> {
        self.ring
            .ok_or_else(|| format!("`{key}` needs a [chord] section (the nodes must run the ring)"))
    }

    fn add_nodes(&mut self, spec: Short<u32, AddNodesSpec>) -> Result<Action, String> {
        let (count, overrides) = match spec {
            Short::Short(count) => (count, NodeSection::default()),
            Short::Full(spec) => (
                spec.count,
                NodeSection {
                    preset: spec.preset,
                    security: spec.security,
                    target_peers: spec.target_peers,
                    bootstrap: spec.bootstrap,
                },
            ),
        };
        if count == 0 {
            return Err("`add_nodes` adds no node".into());
        }
        let config = self.config(overrides)?;
        self.nodes = self
            .nodes
            .checked_add(count)
            .ok_or("`add_nodes`: too many nodes")?;
        Ok(Action::AddNodes {
            count,
            config: Box::new(config),
        })
    }

    fn partition(&self, groups: Vec<Vec<NodeIdx>>) -> Result<Action, String> {
        if groups.len() < 2 {
            return Err("`partition` needs at least two groups".into());
        }
        // Groups beyond the node count would be empty; the engine numbers
        // groups with a u16.
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
                self.node(i, "partition")?;
                if of[i as usize].replace(g as u16).is_some() {
                    return Err(format!("`partition`: node {i} is in two groups"));
                }
            }
        }
        Ok(Action::Partition(
            of.into_iter().map(Option::unwrap_or_default).collect(),
        ))
    }

    /// The two ends of a message (`send`, `request`).
    fn message_ends(
        &self,
        from: NodeIdx,
        to: NodeIdx,
        key: &str,
    ) -> Result<(NodeIdx, NodeIdx), String> {
        let (from, to) = (self.node(from, "from")?, self.node(to, "to")?);
        if from == to {
            return Err(format!("`{key}`: `from` and `to` are both node {from}"));
        }
        Ok((from, to))
    }

    fn chord_found(
        &self,
        key: &str,
        founders: Short<Vec<NodeIdx>, Founders>,
    ) -> Result<Action, String> {
        let r = self.ring(key)?.r;
        let mut nodes = match founders {
            Short::Short(nodes) => nodes,
            Short::Full(spec) => spec.nodes,
        };
        for &i in &nodes {
            self.node(i, "chord_found")?;
        }
        let listed = nodes.len();
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.len() != listed {
            return Err("`chord_found` names a node twice".into());
        }
        if nodes.len() <= r {
            return Err(format!(
                "`chord_found`: {} founders; a ring needs at least successors + 1 = {} \
                 (spec/chord.md §5.1)",
                nodes.len(),
                r + 1
            ));
        }
        Ok(Action::ChordFound(nodes))
    }

    fn lookup(&self, key: &str, spec: LookupSpec) -> Result<Action, String> {
        self.ring(key)?;
        let from = self.node(spec.from, "from")?;
        let lookup_key = match (spec.key, spec.dht_key) {
            (Some(KeySpec::Node(i)), None) => LookupKey::Node(self.node(i, "key")?),
            (Some(KeySpec::Id(id)), None) => LookupKey::Id(id),
            (None, Some(text)) => LookupKey::Dht(dht_bytes(text, "`dht_key`", MAX_DHT_KEY, false)?),
            (None, None) => return Err("`lookup`: give `key` or `dht_key`".into()),
            (Some(_), Some(_)) => {
                return Err("`lookup`: give `key` or `dht_key`, not both".into());
            }
        };
        let expect_owner = spec
            .expect_owner
            .map(|i| self.node(i, "expect_owner"))
            .transpose()?;
        Ok(Action::Lookup {
            from,
            key: lookup_key,
            expect_owner,
        })
    }

    fn get(&self, key: &str, spec: GetSpec) -> Result<Action, String> {
        self.ring(key)?;
        let from = self.node(spec.from, "from")?;
        let table_key = dht_bytes(spec.key, "`get`: `key`", MAX_DHT_KEY, false)?;
        let expect = match (spec.expect, spec.expect_none) {
            (Some(_), Some(_)) => {
                return Err("`get`: give `expect` or `expect_none`, not both".into());
            }
            (Some(v), None) => Some(Some(Bytes::from(v))),
            (None, Some(true)) => Some(None),
            (None, Some(false)) => {
                return Err("`get`: write `expect_none = true`, or leave it out".into());
            }
            (None, None) => None,
        };
        Ok(Action::Get {
            from,
            key: table_key,
            expect,
        })
    }

    /// A check's table: its `kind`, then the kind's fields.
    fn check(&self, mut table: toml::Table) -> Result<Check, String> {
        let kind = match table.remove("kind") {
            Some(toml::Value::String(kind)) => kind,
            Some(other) => return Err(format!("`check`: `kind` must be a string, not {other}")),
            None => return Err("`check`: missing field `kind`".into()),
        };
        let kinds = variant_names::<CheckSpec>();
        if !kinds.contains(&kind.as_str()) {
            return Err(format!(
                "unknown check kind `{kind}` (expected one of {})",
                list(kinds)
            ));
        }
        let what = format!("check `{kind}`");
        let spec = variant(&what, &kind, toml::Value::Table(table))?;
        self.check_spec(spec)
    }

    fn check_spec(&self, spec: CheckSpec) -> Result<Check, String> {
        Ok(match spec {
            CheckSpec::DeliveredEverywhere { broadcast } => Check::DeliveredEverywhere {
                broadcast: self.earlier(broadcast, "broadcast", "broadcast")?,
            },
            CheckSpec::Delivered { broadcast, node } => Check::Delivered {
                broadcast: self.earlier(broadcast, "broadcast", "broadcast")?,
                nodes: self.nodes(node, "node")?,
            },
            CheckSpec::Connected {
                node,
                peer,
                min_peers,
            } => self.connected(node, peer, min_peers)?,
            CheckSpec::PeerDown { node, peer } => Check::PeerDown {
                nodes: self.nodes(node, "node")?,
                peers: self.nodes(peer, "peer")?,
            },
            CheckSpec::PeersAtLeast { node, n } => Check::PeersAtLeast {
                nodes: self.nodes(node, "node")?,
                n,
            },
            CheckSpec::Response { request } => Check::Response {
                request: self.earlier(request, "request", "request")?,
            },
            CheckSpec::Received { send } => Check::Received {
                send: self.earlier(send, "send", "send")?,
            },
            CheckSpec::NoFalsePositives {} => Check::NoFalsePositives,
            CheckSpec::NoDoubleDelivery {} => Check::NoDoubleDelivery,
            CheckSpec::RingOrder { node } => self.ring_order(node)?,
            CheckSpec::ChordState {
                node,
                successors,
                predecessor,
            } => self.chord_state(node, successors, predecessor)?,
            CheckSpec::SyncConverged {} => {
                self.sync_on("sync_converged")?;
                Check::SyncConverged
            }
            CheckSpec::SyncValue {
                node,
                key,
                expect,
                expect_none,
            } => {
                self.sync_on("sync_value")?;
                let expect = match (expect, expect_none) {
                    (Some(v), None) => Some(Bytes::from(v)),
                    (None, Some(true)) => None,
                    _ => {
                        return Err(
                            "check `sync_value`: give `expect = \"…\"` or `expect_none = true`"
                                .into(),
                        );
                    }
                };
                Check::SyncValue {
                    nodes: self.nodes(node, "node")?,
                    key: dht_bytes(key, "check `sync_value`: `key`", MAX_DHT_KEY, false)?,
                    expect,
                }
            }
        })
    }

    fn connected(
        &self,
        node: Option<NodeIdx>,
        peer: Option<NodeIdx>,
        min_peers: Option<usize>,
    ) -> Result<Check, String> {
        match (node, peer) {
            (Some(node), Some(peer)) => {
                if min_peers.is_some() {
                    return Err(
                        "check `connected`: `min_peers` goes without `node` and `peer`".into(),
                    );
                }
                let (node, peer) = (self.node(node, "node")?, self.node(peer, "peer")?);
                if node == peer {
                    return Err(format!("check `connected`: node {node} with itself"));
                }
                Ok(Check::Linked { node, peer })
            }
            (None, None) => Ok(Check::Connected {
                min_peers: min_peers.unwrap_or(1),
            }),
            _ => Err("check `connected`: give both `node` and `peer`, or neither".into()),
        }
    }

    fn ring_order(&self, nodes: Nodes) -> Result<Check, String> {
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
        Ok(Check::RingOrder(nodes))
    }

    fn chord_state(
        &self,
        node: NodeIdx,
        successors: Option<Vec<NodeIdx>>,
        predecessor: Option<Pointer>,
    ) -> Result<Check, String> {
        if self.ring.is_none() {
            return Err("check `chord_state` needs a [chord] section".into());
        }
        let node = self.node(node, "node")?;
        for &i in successors.iter().flatten() {
            self.node(i, "successors")?;
        }
        let predecessor = match predecessor {
            None => None,
            Some(Pointer::None) => Some(None),
            Some(Pointer::Node(i)) => Some(Some(self.node(i, "predecessor")?)),
        };
        if successors.is_none() && predecessor.is_none() {
            return Err("check `chord_state`: give `successors`, `predecessor` or both".into());
        }
        Ok(Check::ChordState {
            node,
            successors,
            predecessor,
        })
    }
}

/// `chord_create` and `leave`: `i` or `{ node = i }`.
fn one_node(spec: Short<NodeIdx, OneNode>) -> NodeIdx {
    match spec {
        Short::Short(node) => node,
        Short::Full(spec) => spec.node,
    }
}

/// `check_ring = true` or `check_ring = { ideal, members }`.
fn check_ring(spec: Short<bool, CheckRingSpec>) -> Result<Action, String> {
    let (ideal, members) = match spec {
        Short::Short(true) => (false, None),
        Short::Full(spec) => (spec.ideal.unwrap_or(false), spec.members),
        Short::Short(false) => {
            return Err(
                "write `check_ring = true` or `check_ring = { ideal = true, members = N }`".into(),
            );
        }
    };
    Ok(Action::CheckRing { ideal, members })
}

/// `names` as `` `a`, `b`, `c` ``.
pub(super) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
