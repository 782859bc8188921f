//! Running a validated script: the actions, the checks, the report.

use std::collections::{BTreeMap, HashMap};

use super::format::{Action, Check, Nodes, RingSettings, Step};
use super::ledger::Ledger;
use super::report::{ChordNodeReport, EventCounts, NodeReport, ScriptReport, Verdict};
use super::ring::Ring;
use crate::engine::{NetModel, NodeIdx, NodeState, Sim, SimConfig};
use bytes::Bytes;
use ringmesh::{
    Accepted, CloseReason, Config, Duration, Event, Instant, LivenessEvent, MeshCommand, MeshEvent,
    MessagingCommand, MessagingEvent, NodeId, PeersCommand, PeersEvent, SyncCommand,
};

/// What became of a broadcast step.
struct SentBroadcast {
    origin: NodeIdx,
    seq: u64,
    /// Each node's incarnation when it left, if the node was up.
    up: Vec<Option<u32>>,
}

struct SentRequest {
    from: NodeIdx,
    to: NodeIdx,
    incarnation: u32,
    id: ringmesh::RequestId,
    payload: Bytes,
}

struct SentMessage {
    from: NodeIdx,
    to: NodeIdx,
    at: Instant,
    payload: Bytes,
}

/// A partition while it lasts: each node's group.
struct Epoch {
    from: Instant,
    until: Option<Instant>,
    groups: Vec<u16>,
}

pub(super) struct Run {
    pub(super) sim: Sim<Ledger>,
    net: NetModel,
    configs: Vec<Config>,
    index_of: HashMap<NodeId, NodeIdx>,
    /// Per node: the intervals it was down.
    down: Vec<Vec<(Instant, Option<Instant>)>>,
    epochs: Vec<Epoch>,
    broadcasts: HashMap<usize, Result<SentBroadcast, String>>,
    requests: HashMap<usize, Result<SentRequest, String>>,
    sends: HashMap<usize, Result<SentMessage, String>>,
    verdicts: Vec<Verdict>,
    /// Step labels by file index, to name references in reports.
    labels: HashMap<usize, String>,
    /// The ring side of a file with `[chord]`.
    ring: Option<Ring>,
}

fn ms(at: Instant) -> f64 {
    at.as_micros() as f64 / 1e3
}

fn node_list(nodes: &[NodeIdx]) -> String {
    const SHOWN: usize = 12;
    let mut s = nodes
        .iter()
        .take(SHOWN)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if nodes.len() > SHOWN {
        s.push_str(&format!(" and {} more", nodes.len() - SHOWN));
    }
    s
}

impl Run {
    pub(super) fn new(
        seed: u64,
        net: NetModel,
        ring: Option<RingSettings>,
        steps: &[Step],
    ) -> Self {
        Run {
            ring: ring.map(|settings| Ring::new(settings, &net)),
            sim: Sim::with_observer(
                SimConfig {
                    seed,
                    net: net.clone(),
                    echo_requests: true,
                },
                Ledger::new(),
            ),
            net,
            configs: Vec::new(),
            index_of: HashMap::new(),
            down: Vec::new(),
            epochs: Vec::new(),
            broadcasts: HashMap::new(),
            requests: HashMap::new(),
            sends: HashMap::new(),
            verdicts: Vec::with_capacity(steps.len()),
            labels: steps
                .iter()
                .filter_map(|s| Some((s.index, s.label.clone()?)))
                .collect(),
        }
    }

    fn now(&self) -> Instant {
        self.sim.now()
    }

    /// Runs every event up to `until`. A ring run stops on the way to
    /// collect outcomes and to check the invariant.
    pub(super) fn advance_to(&mut self, until: Instant) {
        let Some(ring) = self.ring.as_mut() else {
            return self.sim.run_until(until);
        };
        loop {
            let stop = ring.next_stop(self.sim.now(), until);
            self.sim.run_until(stop);
            ring.after_slice(&mut self.sim, &mut self.verdicts);
            if stop >= until {
                return;
            }
        }
    }

    /// How a report names step `index`: its label, else its number.
    fn name(&self, index: usize) -> String {
        match self.labels.get(&index) {
            Some(label) => format!("\"{label}\""),
            None => format!("#{index}"),
        }
    }

    fn up(&self, i: NodeIdx) -> bool {
        self.sim.state(i) == NodeState::Up
    }

    fn verdict(&mut self, step: &Step, kind: &'static str, result: Result<String, String>) {
        let (passed, detail) = match result {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        self.verdicts.push(Verdict {
            step: Some(step.index),
            at_ms: step.at_ms,
            kind,
            label: step.label.clone(),
            passed,
            detail,
        });
    }

    fn refused(&mut self, step: &Step, what: String) {
        self.verdict(step, "action", Err(what));
    }

    fn stop(&mut self, i: NodeIdx, killed: bool) {
        if !self.up(i) {
            return;
        }
        if let Some(ring) = self.ring.as_mut() {
            ring.before_failure(&self.sim, i, if killed { "kill" } else { "crash" });
        }
        if killed {
            self.sim.kill(i);
        } else {
            self.sim.crash(i);
        }
        let now = self.now();
        self.down[i as usize].push((now, None));
    }

    pub(super) fn apply(&mut self, step: &Step) {
        match &step.action {
            Action::AddNodes { count, config } => {
                for _ in 0..*count {
                    match self.sim.add_node(Config::clone(config)) {
                        Ok(i) => {
                            self.index_of.insert(self.sim.id(i), i);
                            self.configs.push(Config::clone(config));
                            self.down.push(Vec::new());
                        }
                        // Validated at parse time; kept as a report line
                        // rather than a panic all the same.
                        Err(e) => return self.refused(step, format!("add_nodes: {e}")),
                    }
                }
            }
            Action::Connect(a, b) => {
                if let Err(e) = self.sim.connect(*a, *b) {
                    self.refused(step, format!("connect {a} → {b} refused: {e}"));
                }
            }
            Action::Disconnect(a, b) => {
                let peer = self.sim.id(*b);
                if let Err(e) = self.sim.command(*a, PeersCommand::Disconnect { peer }) {
                    self.refused(step, format!("disconnect {a} from {b} refused: {e}"));
                }
            }
            Action::Crash(i) => self.stop(*i, false),
            Action::Kill(i) => self.stop(*i, true),
            Action::Restart(i) => {
                if !self.up(*i) {
                    self.sim.observer_mut().restarting(*i);
                    if let Err(e) = self.sim.restart(*i) {
                        return self.refused(step, format!("restart {i}: {e}"));
                    }
                    let now = self.now();
                    if let Some(last) = self.down[*i as usize].last_mut() {
                        last.1 = Some(now);
                    }
                }
            }
            Action::Partition(groups) => {
                self.end_epoch();
                let mut groups = groups.clone();
                groups.resize(self.sim.len(), 0);
                self.sim.partition(&groups);
                self.epochs.push(Epoch {
                    from: self.now(),
                    until: None,
                    groups,
                });
            }
            Action::PartitionOneWay { from, to } => {
                if !self.sim.partition_one_way(from, to) {
                    self.refused(step, "more than 32 one-way partitions at once".to_owned());
                }
            }
            Action::Flap {
                node,
                peer: Some(peer),
                down_for,
            } => self.sim.flap_link(*node, *peer, *down_for),
            Action::Flap {
                node,
                peer: None,
                down_for,
            } => self.sim.flap_node(*node, *down_for),
            Action::DelaySpike {
                node,
                peer: Some(peer),
                extra,
                lasting,
            } => self.sim.delay_link(*node, *peer, *extra, *lasting),
            Action::DelaySpike {
                node,
                peer: None,
                extra,
                lasting,
            } => self.sim.delay_node(*node, *extra, *lasting),
            Action::Heal => {
                self.end_epoch();
                self.sim.heal();
            }
            Action::Broadcast { from, payload } => self.send_broadcast(step, *from, payload),
            Action::Send { from, to, payload } => self.send_message(step, *from, *to, payload),
            Action::Request {
                from,
                to,
                payload,
                timeout,
            } => self.send_request(step, *from, *to, payload, *timeout),
            Action::Check(check) => {
                let result = self.check(check);
                self.verdict(step, check.kind(), result);
            }
            Action::SyncWrite { from, key, value } => {
                let command = match value {
                    Some(value) => SyncCommand::Set {
                        key: key.clone(),
                        value: value.clone(),
                    },
                    None => SyncCommand::Delete { key: key.clone() },
                };
                if let Err(e) = self.sim.command(*from, command) {
                    let key = String::from_utf8_lossy(key);
                    self.refused(
                        step,
                        format!("{} {key} from {from} refused: {e}", step.action.name()),
                    );
                }
            }
            Action::ChordCreate(_)
            | Action::ChordFound(_)
            | Action::Join { .. }
            | Action::Leave(_)
            | Action::Lookup { .. }
            | Action::Put { .. }
            | Action::Get { .. }
            | Action::CheckRing { .. } => match self.ring.as_mut() {
                Some(ring) => ring.apply(&mut self.sim, step, &mut self.verdicts),
                // The format accepts these only with `[chord]`.
                None => self.refused(step, format!("{} needs [chord]", step.action.name())),
            },
        }
    }

    fn send_broadcast(&mut self, step: &Step, from: NodeIdx, payload: &Bytes) {
        let up = (0..self.sim.len() as NodeIdx)
            .map(|i| self.up(i).then(|| self.sim.observer().incarnation(i)))
            .collect();
        let result = self.sim.command(
            from,
            MeshCommand::Broadcast {
                payload: payload.clone(),
            },
        );
        let sent = match result {
            Ok(Accepted::Broadcast { seq }) => {
                let origin = self.sim.id(from);
                self.sim.observer_mut().broadcast_sent(origin, seq);
                Ok(SentBroadcast {
                    origin: from,
                    seq,
                    up,
                })
            }
            Ok(other) => Err(format!("broadcast from {from}: unexpected {other:?}")),
            Err(e) => Err(format!("broadcast from {from} refused: {e}")),
        };
        if let Err(e) = &sent {
            self.refused(step, e.clone());
        }
        self.broadcasts.insert(step.index, sent);
    }

    fn send_message(&mut self, step: &Step, from: NodeIdx, to: NodeIdx, payload: &Bytes) {
        let command = MessagingCommand::Send {
            to: self.sim.id(to),
            payload: payload.clone(),
        };
        let sent = match self.sim.command(from, command) {
            Ok(_) => Ok(SentMessage {
                from,
                to,
                at: self.now(),
                payload: payload.clone(),
            }),
            Err(e) => Err(format!("send {from} → {to} refused: {e}")),
        };
        if let Err(e) = &sent {
            self.refused(step, e.clone());
        }
        self.sends.insert(step.index, sent);
    }

    fn send_request(
        &mut self,
        step: &Step,
        from: NodeIdx,
        to: NodeIdx,
        payload: &Bytes,
        timeout: Duration,
    ) {
        let command = MessagingCommand::Request {
            to: self.sim.id(to),
            payload: payload.clone(),
            timeout,
        };
        let sent = match self.sim.command(from, command) {
            Ok(Accepted::Request(id)) => Ok(SentRequest {
                from,
                to,
                incarnation: self.sim.observer().incarnation(from),
                id,
                payload: payload.clone(),
            }),
            Ok(other) => Err(format!("request {from} → {to}: unexpected {other:?}")),
            Err(e) => Err(format!("request {from} → {to} refused: {e}")),
        };
        if let Err(e) = &sent {
            self.refused(step, e.clone());
        }
        self.requests.insert(step.index, sent);
    }

    fn end_epoch(&mut self) {
        let now = self.now();
        if let Some(epoch) = self.epochs.last_mut()
            && epoch.until.is_none()
        {
            epoch.until = Some(now);
        }
    }

    fn resolve(&self, nodes: &Nodes) -> Vec<NodeIdx> {
        match nodes {
            Nodes::All => self.sim.live_nodes(),
            Nodes::List(list) => list.clone(),
        }
    }

    fn check(&self, check: &Check) -> Result<String, String> {
        match check {
            Check::DeliveredEverywhere { broadcast } => self.delivered_everywhere(*broadcast),
            Check::Delivered { broadcast, nodes } => self.delivered(*broadcast, nodes),
            Check::Connected { min_peers } => self.connected(*min_peers),
            Check::Linked { node, peer } => self.linked(*node, *peer),
            Check::PeerDown { nodes, peers } => self.peer_down(nodes, peers),
            Check::PeersAtLeast { nodes, n } => self.peers_at_least(nodes, *n),
            Check::Response { request } => self.response(*request),
            Check::Received { send } => self.received(*send),
            Check::NoFalsePositives => self.no_false_positives(),
            Check::NoDoubleDelivery => self.no_double_delivery(),
            Check::RingOrder(nodes) => self.ring_order(nodes),
            Check::ChordState {
                node,
                successors,
                predecessor,
            } => self.chord_state(*node, successors.as_deref(), *predecessor),
            Check::SyncConverged => self.sync_converged(),
            Check::SyncValue { nodes, key, expect } => self.sync_value(nodes, key, expect.as_ref()),
        }
    }

    /// Every live node holds the same sync table (digest and key count).
    fn sync_converged(&self) -> Result<String, String> {
        let live = self.sim.live_nodes();
        let tables: Vec<(NodeIdx, u64, usize)> = live
            .iter()
            .filter_map(|&i| {
                self.sim
                    .node(i)
                    .map(|n| (i, n.sync_digest(), n.sync_usage().entries))
            })
            .collect();
        let Some(&(_, digest, keys)) = tables.first() else {
            return Err("no live node".into());
        };
        let odd: Vec<String> = tables
            .iter()
            .filter(|t| (t.1, t.2) != (digest, keys))
            .map(|t| t.0.to_string())
            .collect();
        if odd.is_empty() {
            Ok(format!(
                "{} live nodes hold one table of {keys} keys",
                tables.len()
            ))
        } else {
            Err(format!(
                "nodes {} hold another table than node {}",
                odd.join(", "),
                tables[0].0
            ))
        }
    }

    /// The nodes' sync tables hold `expect` under `key`.
    fn sync_value(
        &self,
        nodes: &Nodes,
        key: &Bytes,
        expect: Option<&Bytes>,
    ) -> Result<String, String> {
        let shown = |v: Option<&Bytes>| {
            v.map_or_else(
                || "no value".to_owned(),
                |v| format!("{:?}", String::from_utf8_lossy(v)),
            )
        };
        let mut wrong = Vec::new();
        let nodes = self.resolve(nodes);
        for &i in &nodes {
            let Some(node) = self.sim.node(i) else {
                wrong.push(format!("node {i} is {}", state_name(self.sim.state(i))));
                continue;
            };
            let held = node.sync_get(key).and_then(|h| h.value);
            if held.as_ref() != expect {
                wrong.push(format!("node {i} holds {}", shown(held.as_ref())));
            }
        }
        let key = String::from_utf8_lossy(key);
        if wrong.is_empty() {
            Ok(format!(
                "{} nodes hold {} under {key}",
                nodes.len(),
                shown(expect)
            ))
        } else {
            Err(format!(
                "{key}: want {}; {}",
                shown(expect),
                wrong.join("; ")
            ))
        }
    }

    /// How a report names a ring pointer: the node's index, or its short
    /// id if no node has it.
    fn pointer_name(&self, id: NodeId) -> String {
        match self.index_of.get(&id) {
            Some(i) => i.to_string(),
            None => id.short().to_string(),
        }
    }

    fn chord_state(
        &self,
        i: NodeIdx,
        successors: Option<&[NodeIdx]>,
        predecessor: Option<Option<NodeIdx>>,
    ) -> Result<String, String> {
        let Some(node) = self.sim.node(i) else {
            return Err(format!("node {i} is {}", state_name(self.sim.state(i))));
        };
        let actual_succs = node.chord_successors();
        let actual_pred = node.chord_predecessor();
        let shown = format!(
            "node {i} ({:?}): successors [{}], predecessor {}",
            node.chord_role(),
            actual_succs
                .iter()
                .map(|&id| self.pointer_name(id))
                .collect::<Vec<_>>()
                .join(", "),
            actual_pred.map_or_else(|| "none".to_owned(), |p| self.pointer_name(p))
        );
        let succs_ok = successors.is_none_or(|want| {
            want.iter().map(|&j| self.sim.id(j)).collect::<Vec<_>>() == actual_succs
        });
        let pred_ok = predecessor.is_none_or(|want| want.map(|j| self.sim.id(j)) == actual_pred);
        if succs_ok && pred_ok {
            Ok(shown)
        } else {
            let mut want = Vec::new();
            if let Some(s) = successors {
                want.push(format!("successors [{}]", node_list(s)));
            }
            if let Some(p) = predecessor {
                want.push(format!(
                    "predecessor {}",
                    p.map_or_else(|| "none".to_owned(), |p| p.to_string())
                ));
            }
            Err(format!("{shown}; expected {}", want.join(", ")))
        }
    }

    /// Whether the nodes' ids lie clockwise in the order given: a ring
    /// scenario's shape depends on the ids, which the seed picks.
    fn ring_order(&self, nodes: &[NodeIdx]) -> Result<String, String> {
        let ids: Vec<u128> = nodes.iter().map(|&i| self.sim.id(i).as_u128()).collect();
        // Clockwise from the first: distances from it strictly increase.
        let from = ids[0];
        let clockwise = ids
            .windows(2)
            .all(|w| w[0].wrapping_sub(from) < w[1].wrapping_sub(from));
        let listed = node_list(nodes);
        if clockwise {
            return Ok(format!("nodes {listed} lie clockwise in that order"));
        }
        let mut actual = nodes.to_vec();
        actual.sort_by_key(|&i| self.sim.id(i).as_u128().wrapping_sub(from));
        Err(format!(
            "nodes {listed} are not in that order on the ring: clockwise they are {}. \
             The ids come from the seed; this scenario's shape needs its own seed",
            node_list(&actual)
        ))
    }

    fn broadcast(&self, step: usize) -> Result<&SentBroadcast, String> {
        match self.broadcasts.get(&step) {
            Some(Ok(sent)) => Ok(sent),
            Some(Err(why)) => Err(format!("{} never left: {why}", self.name(step))),
            None => Err(format!("{} did not run", self.name(step))),
        }
    }

    fn delivered_everywhere(&self, step: usize) -> Result<String, String> {
        let sent = self.broadcast(step)?;
        let ledger = self.sim.observer();
        let origin = self.sim.id(sent.origin);
        let (mut expected, mut missing, mut twice) = (0, Vec::new(), Vec::new());
        for (i, was) in sent.up.iter().enumerate() {
            let i = i as NodeIdx;
            let Some(incarnation) = *was else { continue };
            if i == sent.origin || !self.up(i) || ledger.incarnation(i) != incarnation {
                continue;
            }
            expected += 1;
            match ledger.deliveries(i, Some(incarnation), origin, sent.seq) {
                0 => missing.push(i),
                1 => {}
                _ => twice.push(i),
            }
        }
        let head = format!(
            "broadcast {} from node {}: {} of {expected} nodes delivered it once",
            self.name(step),
            sent.origin,
            expected - missing.len() - twice.len()
        );
        if missing.is_empty() && twice.is_empty() {
            if expected == 0 {
                return Err(format!(
                    "broadcast {}: no other node was up to deliver it",
                    self.name(step)
                ));
            }
            return Ok(head);
        }
        let mut detail = head;
        if !missing.is_empty() {
            detail.push_str(&format!("; missing at {}", node_list(&missing)));
        }
        if !twice.is_empty() {
            detail.push_str(&format!("; more than once at {}", node_list(&twice)));
        }
        Err(detail)
    }

    fn delivered(&self, step: usize, nodes: &Nodes) -> Result<String, String> {
        let sent = self.broadcast(step)?;
        let origin = self.sim.id(sent.origin);
        let nodes = self.resolve(nodes);
        let missing: Vec<NodeIdx> = nodes
            .iter()
            .copied()
            .filter(|&i| self.sim.observer().deliveries(i, None, origin, sent.seq) == 0)
            .collect();
        if missing.is_empty() {
            Ok(format!(
                "broadcast {} delivered at {}",
                self.name(step),
                node_list(&nodes)
            ))
        } else {
            let states: Vec<String> = missing
                .iter()
                .map(|&i| format!("{i} ({})", state_name(self.sim.state(i))))
                .collect();
            Err(format!(
                "broadcast {} not delivered at {}",
                self.name(step),
                states.join(", ")
            ))
        }
    }

    /// Whether both `a` and `b` see their link as up.
    fn link(&self, a: NodeIdx, b: NodeIdx) -> bool {
        let sees = |x: NodeIdx, y: NodeIdx| {
            self.sim
                .node(x)
                .is_some_and(|n| n.is_connected(self.sim.id(y)))
        };
        sees(a, b) && sees(b, a)
    }

    fn connected(&self, min_peers: usize) -> Result<String, String> {
        let live = self.sim.live_nodes();
        if live.is_empty() {
            return Err("no node is up".into());
        }
        // Components of the graph of links both ends see as up.
        let mut component: HashMap<NodeIdx, usize> = HashMap::new();
        let mut components: Vec<Vec<NodeIdx>> = Vec::new();
        for &start in &live {
            if component.contains_key(&start) {
                continue;
            }
            let c = components.len();
            let mut members = vec![start];
            component.insert(start, c);
            let mut k = 0;
            while k < members.len() {
                let a = members[k];
                k += 1;
                let peers = self.sim.node(a).map(|n| n.connected_peers());
                for peer in peers.unwrap_or_default() {
                    let Some(&b) = self.index_of.get(&peer) else {
                        continue;
                    };
                    if !component.contains_key(&b) && self.up(b) && self.link(a, b) {
                        component.insert(b, c);
                        members.push(b);
                    }
                }
            }
            members.sort_unstable();
            components.push(members);
        }
        let peers = |i: NodeIdx| self.sim.node(i).map_or(0, |n| n.peer_count());
        let (fewest, at) = live.iter().map(|&i| (peers(i), i)).min().unwrap_or((0, 0));
        if components.len() > 1 {
            let shown: Vec<String> = components
                .iter()
                .take(4)
                .map(|c| format!("[{}]", node_list(c)))
                .collect();
            return Err(format!(
                "{} live nodes in {} components: {}",
                live.len(),
                components.len(),
                shown.join(" ")
            ));
        }
        if fewest < min_peers {
            let short: Vec<NodeIdx> = live
                .iter()
                .copied()
                .filter(|&i| peers(i) < min_peers)
                .collect();
            return Err(format!(
                "fewer than {min_peers} peers at {} (node {at} has {fewest})",
                node_list(&short)
            ));
        }
        Ok(format!(
            "{} live nodes in one component; fewest peers {fewest} (node {at})",
            live.len()
        ))
    }

    fn linked(&self, a: NodeIdx, b: NodeIdx) -> Result<String, String> {
        for i in [a, b] {
            if !self.up(i) {
                return Err(format!("node {i} is {}", state_name(self.sim.state(i))));
            }
        }
        let sees = |x: NodeIdx, y: NodeIdx| {
            self.sim
                .node(x)
                .is_some_and(|n| n.is_connected(self.sim.id(y)))
        };
        match (sees(a, b), sees(b, a)) {
            (true, true) => Ok(format!("nodes {a} and {b} are connected")),
            (false, false) => Err(format!("nodes {a} and {b} are not connected")),
            (true, false) => Err(format!("node {a} sees node {b} up, but not the reverse")),
            (false, true) => Err(format!("node {b} sees node {a} up, but not the reverse")),
        }
    }

    /// The last `PeersEvent::Up`/`PeersEvent::Down` about `peer` at `node` in its current
    /// incarnation.
    fn last_word(&self, node: NodeIdx, peer: NodeId) -> Option<(Instant, &Event)> {
        let ledger = self.sim.observer();
        let incarnation = ledger.incarnation(node);
        ledger
            .events()
            .iter()
            .rev()
            .filter(|e| e.node == node && e.incarnation == incarnation)
            .find(|e| match &e.event {
                Event::Peers(PeersEvent::Up { peer: p, .. })
                | Event::Peers(PeersEvent::Down { peer: p, .. }) => *p == peer,
                _ => false,
            })
            .map(|e| (e.at, &e.event))
    }

    fn peer_down(&self, nodes: &Nodes, peers: &Nodes) -> Result<String, String> {
        let everyone = *nodes == Nodes::All;
        let nodes: Vec<NodeIdx> = self
            .resolve(nodes)
            .into_iter()
            .filter(|&i| self.up(i))
            .collect();
        let peers = match peers {
            Nodes::All => (0..self.sim.len() as NodeIdx).collect(),
            Nodes::List(list) => list.clone(),
        };
        let (mut pairs, mut bad) = (0, Vec::new());
        for &a in &nodes {
            for &b in &peers {
                if a == b {
                    continue;
                }
                let peer = self.sim.id(b);
                let word = self.last_word(a, peer);
                if word.is_none() && everyone {
                    // "all": only the nodes that had `b` up are asked.
                    continue;
                }
                pairs += 1;
                match word {
                    Some((_, Event::Peers(PeersEvent::Down { .. }))) => {}
                    Some((at, _)) => bad.push(format!("{a} has {b} up since {} ms", ms(at))),
                    None => bad.push(if self.sim.node(a).is_some_and(|n| n.is_connected(peer)) {
                        format!("{a} has {b} up")
                    } else {
                        format!("{a} never had {b} up")
                    }),
                }
            }
        }
        if pairs == 0 {
            return Err(if everyone {
                "no live node ever had these peers up".into()
            } else {
                "no live node to ask".into()
            });
        }
        if bad.is_empty() {
            Ok(format!("{pairs} of {pairs} node→peer pairs declared down"))
        } else {
            let shown = bad.iter().take(6).cloned().collect::<Vec<_>>().join("; ");
            Err(format!(
                "{} of {pairs} pairs not declared down: {shown}{}",
                bad.len(),
                if bad.len() > 6 { "; …" } else { "" }
            ))
        }
    }

    fn peers_at_least(&self, nodes: &Nodes, n: usize) -> Result<String, String> {
        let nodes = self.resolve(nodes);
        let mut short = Vec::new();
        for &i in &nodes {
            match self.sim.node(i) {
                Some(node) if node.peer_count() >= n => {}
                Some(node) => short.push(format!("{i} has {}", node.peer_count())),
                None => short.push(format!("{i} is {}", state_name(self.sim.state(i)))),
            }
        }
        if nodes.is_empty() {
            Err("no live node to ask".into())
        } else if short.is_empty() {
            Ok(format!("{} node(s) with ≥ {n} peers", nodes.len()))
        } else {
            Err(format!("fewer than {n} peers: {}", short.join(", ")))
        }
    }

    fn response(&self, step: usize) -> Result<String, String> {
        let sent = match self.requests.get(&step) {
            Some(Ok(sent)) => sent,
            Some(Err(why)) => return Err(format!("{} never left: {why}", self.name(step))),
            None => return Err(format!("{} did not run", self.name(step))),
        };
        let ledger = self.sim.observer();
        let answer = ledger
            .events()
            .iter()
            .filter(|e| e.node == sent.from && e.incarnation == sent.incarnation)
            .find_map(|e| match &e.event {
                Event::Messaging(MessagingEvent::Response {
                    id, payload, rtt, ..
                }) if *id == sent.id => Some(Ok((payload, *rtt))),
                Event::Messaging(MessagingEvent::RequestFailed { id, reason, .. })
                    if *id == sent.id =>
                {
                    Some(Err(*reason))
                }
                _ => None,
            });
        match answer {
            Some(Ok((payload, rtt))) if *payload == sent.payload => Ok(format!(
                "node {} answered node {}'s request in {} ms",
                sent.to,
                sent.from,
                rtt.as_micros() as f64 / 1e3
            )),
            Some(Ok(_)) => Err(format!("node {} answered with another payload", sent.to)),
            Some(Err(reason)) => Err(format!(
                "node {}'s request to {} failed: {reason}",
                sent.from, sent.to
            )),
            None => Err(format!(
                "node {}'s request to {} has no answer yet",
                sent.from, sent.to
            )),
        }
    }

    fn received(&self, step: usize) -> Result<String, String> {
        let sent = match self.sends.get(&step) {
            Some(Ok(sent)) => sent,
            Some(Err(why)) => return Err(format!("{} never left: {why}", self.name(step))),
            None => return Err(format!("{} did not run", self.name(step))),
        };
        let from = self.sim.id(sent.from);
        let ledger = self.sim.observer();
        let arrived = ledger.events().iter().find(|e| {
            e.node == sent.to
                && e.at >= sent.at
                && matches!(&e.event, Event::Messaging(MessagingEvent::Direct { from: f, payload }) if *f == from && *payload == sent.payload)
        });
        let failed = ledger.events().iter().find_map(|e| match &e.event {
            Event::Messaging(MessagingEvent::SendFailed {
                payload, reason, ..
            }) if e.node == sent.from && e.at >= sent.at && *payload == sent.payload => {
                Some(*reason)
            }
            _ => None,
        });
        match (arrived, failed) {
            (Some(e), _) => Ok(format!(
                "node {} received node {}'s message after {} ms",
                sent.to,
                sent.from,
                ms(e.at) - ms(sent.at)
            )),
            (None, Some(reason)) => Err(format!(
                "node {}'s message to {} failed: {reason}",
                sent.from, sent.to
            )),
            (None, None) => Err(format!(
                "node {}'s message to {} has not arrived",
                sent.from, sent.to
            )),
        }
    }

    /// Whether `peer` was down, or partitioned from `node`, at some time in
    /// `[from, until]`.
    fn disturbed(&self, node: NodeIdx, peer: NodeIdx, from: Instant, until: Instant) -> bool {
        let now = self.now();
        let overlaps =
            |start: Instant, end: Option<Instant>| start <= until && end.unwrap_or(now) >= from;
        let down = self.down[peer as usize]
            .iter()
            .any(|&(start, end)| overlaps(start, end));
        let split = self.epochs.iter().any(|e| {
            overlaps(e.from, e.until)
                && e.groups.get(node as usize).copied().unwrap_or(0)
                    != e.groups.get(peer as usize).copied().unwrap_or(0)
        });
        down || split
    }

    fn no_false_positives(&self) -> Result<String, String> {
        let net = &self.net;
        let slack = Duration::from_secs(1) + (net.max_latency() + net.jitter).saturating_mul(2);
        let mut declared = 0;
        let mut wrong = Vec::new();
        for e in self.sim.observer().events() {
            let Event::Peers(PeersEvent::Down {
                peer,
                reason: CloseReason::Unresponsive,
            }) = &e.event
            else {
                continue;
            };
            declared += 1;
            let Some(&p) = self.index_of.get(peer) else {
                continue;
            };
            let window = self.configs[e.node as usize].detection_time() + slack;
            if !self.disturbed(e.node, p, e.at - window, e.at) {
                wrong.push(format!("{} declared {p} dead at {} ms", e.node, ms(e.at)));
            }
        }
        if wrong.is_empty() {
            Ok(format!(
                "{declared} peer(s) declared dead, each down or cut off at the time"
            ))
        } else {
            Err(format!(
                "{} false positive(s): {}",
                wrong.len(),
                wrong.iter().take(6).cloned().collect::<Vec<_>>().join("; ")
            ))
        }
    }

    fn no_double_delivery(&self) -> Result<String, String> {
        let double = self.sim.observer().double_deliveries();
        match double.first() {
            None => Ok("no node delivered a broadcast twice".into()),
            Some(d) => Err(format!(
                "{} double deliveries; first: node {} delivered {}:{} again at {} ms",
                double.len(),
                d.node,
                d.origin.short(),
                d.seq,
                ms(d.at)
            )),
        }
    }

    fn only_broadcasts_delivered(&self) -> Result<String, String> {
        let unknown = self.sim.observer().unknown_deliveries();
        match unknown.first() {
            None => Ok("every delivery was of a broadcast sent".into()),
            Some(d) => Err(format!(
                "{} deliveries of broadcasts never sent; first: node {} delivered {}:{} at {} ms",
                unknown.len(),
                d.node,
                d.origin.short(),
                d.seq,
                ms(d.at)
            )),
        }
    }

    pub(super) fn finish(mut self, seed: u64, source: &str) -> ScriptReport {
        let end_ms = self.now().as_micros() / 1000;
        if let Some(ring) = self.ring.as_mut() {
            ring.finish(&self.sim, &mut self.verdicts);
        }
        let automatic: [(&'static str, Result<String, String>); 2] = [
            ("no_double_delivery", self.no_double_delivery()),
            (
                "only_broadcasts_delivered",
                self.only_broadcasts_delivered(),
            ),
        ];
        for (kind, result) in automatic {
            let (passed, detail) = match result {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            self.verdicts.push(Verdict {
                step: None,
                at_ms: end_ms,
                kind,
                label: None,
                passed,
                detail,
            });
        }
        let ledger = self.sim.observer();
        let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
        for e in ledger.events() {
            *by_kind.entry(event_name(&e.event)).or_default() += 1;
        }
        let events = EventCounts {
            total: ledger.events().len(),
            by_kind,
        };
        let nodes = (0..self.sim.len() as NodeIdx)
            .map(|i| self.node_report(i))
            .collect();
        let ring = self.ring.as_ref().map(|ring| ring.report(&self.sim));
        ScriptReport {
            seed,
            trace_hash: self.sim.trace_hash(),
            passed: self.verdicts.iter().all(|v| v.passed),
            checks: self.verdicts,
            events,
            nodes,
            virtual_ms: end_ms,
            sim: self.sim.stats(),
            replay: format!("ringmesh-sim run {source} --seed {seed}"),
            ring,
        }
    }

    /// Node `i` at the end of the run.
    fn node_report(&self, i: NodeIdx) -> NodeReport {
        let node = self.sim.node(i);
        let chord = node.filter(|_| self.ring.is_some()).map(|node| {
            let index = |id: NodeId| self.index_of.get(&id).copied();
            ChordNodeReport {
                role: format!("{:?}", node.chord_role()),
                successors: node.chord_successors().into_iter().map(index).collect(),
                predecessor: node.chord_predecessor().map(index),
                flushes: node.stats().chord.flushes,
                lookups: node.stats().chord.lookups,
                lookups_failed: node.stats().chord.lookups_failed,
            }
        });
        NodeReport {
            index: i,
            id: self.sim.id(i).short().to_string(),
            state: state_name(self.sim.state(i)),
            incarnation: self.sim.observer().incarnation(i),
            peers: node.map(|n| n.peer_count()),
            broadcasts_delivered: node.map(|n| n.stats().mesh.delivered),
            chord,
        }
    }
}

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Up => "up",
        NodeState::Crashed => "crashed",
        NodeState::Killed => "killed",
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Peers(PeersEvent::Established { .. }) => "session_established",
        Event::Peers(PeersEvent::Closed { .. }) => "connection_closed",
        Event::Peers(PeersEvent::Up { .. }) => "peer_up",
        Event::Liveness(LivenessEvent::Suspect { .. }) => "peer_suspect",
        Event::Peers(PeersEvent::Down { .. }) => "peer_down",
        Event::Mesh(MeshEvent::Broadcast { .. }) => "message",
        Event::Messaging(MessagingEvent::Request { .. }) => "request",
        Event::Messaging(MessagingEvent::Response { .. }) => "response",
        Event::Messaging(MessagingEvent::RequestFailed { .. }) => "request_failed",
        Event::Messaging(MessagingEvent::SendFailed { .. }) => "send_failed",
        Event::Messaging(MessagingEvent::Direct { .. }) => "direct",
        _ => "other",
    }
}
