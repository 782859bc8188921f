//! The trace hash: a BLAKE3 digest over every input delivered to every
//! node, in delivery order, with its time and node.

use ringmesh::{Direction, Input, Instant};

use super::NodeIdx;

/// Bytes of records gathered before they are hashed: BLAKE3 hashes a long
/// input many 1 KiB chunks at a time (SIMD), and a 30-byte one a
/// compression at a time, so the records are hashed in batches. The digest
/// is that of the same bytes in the same order, whatever the batching.
const BATCH: usize = 64 * 1024;

/// Folds each delivered input into a running BLAKE3 hash. Two runs with the
/// same hash saw the same inputs at the same times at the same nodes, so
/// (the nodes being deterministic) they did the same things.
pub struct TraceHash {
    hasher: blake3::Hasher,
    /// Records not yet hashed (fewer than [`BATCH`] bytes between calls).
    pending: Vec<u8>,
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
            pending: Vec::with_capacity(BATCH + 256),
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
        self.pending.extend_from_slice(&record);
        if let Input::Received { bytes, .. } = input {
            self.pending
                .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            self.pending.extend_from_slice(bytes);
        }
        if self.pending.len() >= BATCH {
            self.hasher.update(&self.pending);
            self.pending.clear();
        }
    }

    /// The first 16 bytes of the digest so far, in hex.
    pub fn hex(&self) -> String {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.pending);
        let digest = hasher.finalize();
        digest.as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringmesh::ConnId;

    /// The batched trace is the BLAKE3 hash of the records laid end to end,
    /// read before, at and after a batch boundary, and reading it changes
    /// nothing.
    #[test]
    fn batching_gives_the_digest_of_the_records_end_to_end() {
        let mut trace = TraceHash::new();
        let mut direct = blake3::Hasher::new();
        let mut total = 0;
        let hex = |h: &blake3::Hasher| -> String {
            h.finalize().as_bytes()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        for k in 0..300u32 {
            let at = Instant::from_micros(u64::from(k) * 7);
            let conn = ConnId::inbound(u64::from(k % 5));
            let payload = Bytes::from(vec![k as u8; 10 + (k as usize * 37) % 900]);
            let input = Input::Received {
                conn,
                bytes: payload.clone(),
            };
            trace.input(at, k, &input);
            let mut record = [0u8; 22];
            record[..8].copy_from_slice(&at.as_micros().to_le_bytes());
            record[8..12].copy_from_slice(&k.to_le_bytes());
            record[12] = 3;
            record[13..21].copy_from_slice(&conn.as_u64().to_le_bytes());
            direct.update(&record);
            direct.update(&(payload.len() as u32).to_le_bytes());
            direct.update(&payload);
            total += record.len() + 4 + payload.len();
            if k % 50 == 0 {
                assert_eq!(trace.hex(), hex(&direct), "after {k} records");
            }
        }
        assert!(total > 2 * BATCH, "two batches were hashed");
        assert_eq!(trace.hex(), hex(&direct));
        assert_eq!(trace.hex(), trace.hex());
    }
}
