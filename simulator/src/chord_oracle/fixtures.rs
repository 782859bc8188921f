//! Rings the oracle's tests share.

use ringmesh::NodeId;

use super::{MemberState, RingSnapshot};

/// A spread-out id: `k` tenths of the way round (wrapping matters).
pub(crate) fn at(k: u128) -> u128 {
    k.wrapping_mul(u128::MAX / 100)
}

pub(crate) fn node(k: u128) -> NodeId {
    NodeId::from_u128(at(k))
}

pub(crate) fn member(k: u128, succs: &[u128], prdc: u128) -> MemberState {
    MemberState {
        id: node(k),
        live: true,
        succ_list: succs.iter().map(|&s| node(s)).collect(),
        prdc: Some(node(prdc)),
    }
}

/// Ideal ring over positions 0, 10, …, 90 with lists of length `r`.
pub(crate) fn ring_of_ten(r: usize) -> RingSnapshot {
    RingSnapshot::ideal((0..10).map(|k| node(10 * k)), r)
}
