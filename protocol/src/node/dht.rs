//! The Chord table (spec/chord.md §10).

use super::Node;
use super::chord::Outcome;
use crate::chord::{LookupError, OpId, Pointer};
use crate::wire::Message;
use crate::{ConnId, NodeId};

type Found = (Vec<Pointer>, Pointer, u32);

impl Node {
    pub(super) fn dht_put(&mut self, _key: bytes::Bytes, _value: Option<bytes::Bytes>) -> Result<crate::Accepted, crate::CommandError> {
        Err(crate::CommandError::ChordOff)
    }

    pub(super) fn dht_get(&mut self, _key: bytes::Bytes) -> Result<crate::Accepted, crate::CommandError> {
        Err(crate::CommandError::ChordOff)
    }

    pub(super) fn on_dht_message(&mut self, _conn: ConnId, _from: NodeId, _message: Message) -> bool {
        true
    }

    pub(super) fn dht_rebuild(&self, _req: u64) -> Option<Message> {
        None
    }

    pub(super) fn on_dht_outcome(&mut self, _op: u64, _req: u64, _peer: Pointer, _outcome: Outcome) {}

    pub(super) fn predecessor_changed(&mut self, _old: Option<NodeId>) {}

    pub(super) fn dht_ring_changed(&mut self) {}

    pub(super) fn dht_found(&mut self, _op: OpId, _result: Result<Found, LookupError>) {}
}
