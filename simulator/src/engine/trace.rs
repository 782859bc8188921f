//! The trace hash: a BLAKE3 digest over every input delivered to every
//! node, in delivery order, with its time and node.

use ringmesh::{Direction, Input, Instant};

use super::NodeIdx;

/// Folds each delivered input into a running BLAKE3 hash. Two runs with the
/// same hash saw the same inputs at the same times at the same nodes, so
/// (the nodes being deterministic) they did the same things.
pub struct TraceHash {
    hasher: blake3::Hasher,
}

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash::new()
    }
}

impl TraceHash {
    /// An empty trace.
    pub fn new() -> Self {
        TraceHash {
            hasher: blake3::Hasher::new(),
        }
    }

    /// Adds one delivered input.
    pub fn input(&mut self, at: Instant, node: NodeIdx, input: &Input) {
        let mut record = [0u8; 22];
        record[..8].copy_from_slice(&at.as_micros().to_le_bytes());
        record[8..12].copy_from_slice(&node.to_le_bytes());
        let (kind, conn) = match input {
            Input::Connected {
                conn, direction, ..
            } => (
                match direction {
                    Direction::Outbound => 1,
                    Direction::Inbound => 2,
                },
                conn.as_u64(),
            ),
            Input::Received { conn, .. } => (3, conn.as_u64()),
            Input::Closed { conn, .. } => (4, conn.as_u64()),
            Input::DialFailed { conn, .. } => (5, conn.as_u64()),
            _ => (6, 0),
        };
        record[12] = kind;
        record[13..21].copy_from_slice(&conn.to_le_bytes());
        self.hasher.update(&record);
        if let Input::Received { bytes, .. } = input {
            self.hasher.update(&(bytes.len() as u32).to_le_bytes());
            self.hasher.update(bytes);
        }
    }

    /// The first 16 bytes of the digest so far, in hex.
    pub fn hex(&self) -> String {
        let digest = self.hasher.finalize();
        digest.as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
