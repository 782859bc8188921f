//! The ground truth the checker reads: every node's successor list and
//! predecessor at one instant.

use ringmesh::NodeId;

#[cfg(doc)]
use super::{check, true_successor};
use crate::engine::{NodeIdx, NodeState, Observer, Sim};

/// One node of the ring as the checker needs it: the conversion target for
/// the protocol's chord component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// The node's id, its position on the ring.
    pub id: NodeId,
    /// Whether the node is up (ground truth, not anyone's opinion). Only
    /// live nodes are members; the rest of a dead node's state is ignored.
    pub live: bool,
    /// Its successor list, nearest first; `r` entries when full.
    pub succ_list: Vec<NodeId>,
    /// Its predecessor pointer (`prdc` in Zave's model), if it has one.
    pub prdc: Option<NodeId>,
}

/// The state of every node at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingSnapshot {
    /// Length of a full successor list.
    pub r: usize,
    /// Every node, live or dead, in any order. A live id should appear once;
    /// if it appears again, the later live copies are reported and ignored.
    pub members: Vec<MemberState>,
}

impl RingSnapshot {
    /// The ring a simulation holds now: every node that is up and a ring
    /// member, with its successor list and predecessor. Nodes that are down
    /// or not (yet) members are left out, so their ids count as dead
    /// entries wherever they appear.
    pub fn of_sim<O: Observer>(sim: &Sim<O>, r: usize) -> Self {
        let members = (0..sim.len() as NodeIdx)
            .filter(|&i| sim.state(i) == NodeState::Up)
            .filter_map(|i| sim.node(i))
            .filter(|node| node.chord_role() == ringmesh::ChordRole::Member)
            .map(|node| MemberState {
                id: node.node_id(),
                live: true,
                succ_list: node.chord_successors(),
                prdc: node.chord_predecessor(),
            })
            .collect();
        RingSnapshot { r, members }
    }

    /// The ideal ring over `ids` (duplicates dropped): every node live, its
    /// successor list the next `r` nodes in identifier order, its
    /// predecessor the previous one. With `r >= ids.len()` the lists wrap
    /// around (the node itself and then repeats), as in Zave's `Ideal`.
    pub fn ideal(ids: impl IntoIterator<Item = NodeId>, r: usize) -> Self {
        let mut sorted: Vec<u128> = ids.into_iter().map(NodeId::as_u128).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let n = sorted.len();
        let members = (0..n)
            .map(|i| MemberState {
                id: NodeId::from_u128(sorted[i]),
                live: true,
                succ_list: (1..=r)
                    .map(|k| NodeId::from_u128(sorted[(i + k) % n]))
                    .collect(),
                prdc: Some(NodeId::from_u128(sorted[(i + n - 1) % n])),
            })
            .collect();
        RingSnapshot { r, members }
    }

    /// The ids of the live nodes, sorted and without duplicates: the ground
    /// truth [`true_successor`] looks keys up in.
    pub fn live_ids_sorted(&self) -> Vec<u128> {
        let mut ids: Vec<u128> = self
            .members
            .iter()
            .filter(|m| m.live)
            .map(|m| m.id.as_u128())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
