//! [`ReadPool`]: where an adapter puts what it read from a socket, as the
//! `Bytes` the node takes, without a fresh allocation per read.

use bytes::{Bytes, BytesMut};

/// How many reads' worth a [`ReadPool`] allocates at a time: a read whose
/// bytes are still held (a frame the node has not finished with) then does
/// not force a new allocation at the next one.
pub const READS_PER_POOL: usize = 4;

/// A buffer that each read is copied into and split off from.
///
/// A read used to become a `Bytes` of its own (`Bytes::copy_from_slice`):
/// one allocation per read, and since the allocator hands memory back to the
/// system as it is freed, fresh pages to fault in at each big read. Here the
/// reads share one allocation of [`READS_PER_POOL`] reads; once every `Bytes`
/// split off it is dropped (the node usually drops a read as soon as it has
/// framed it; a plaintext payload it delivers is a slice of it until the
/// application drops that), the next reads reuse it from the start.
/// Otherwise a new one is allocated and the old one lives on as long as
/// its slices: memory is what the node holds, as before.
#[derive(Debug)]
pub struct ReadPool {
    buf: BytesMut,
    /// Bytes allocated at a time.
    capacity: usize,
}

impl ReadPool {
    /// An empty pool for reads of up to `read_size` bytes; it allocates at
    /// its first read.
    pub fn new(read_size: usize) -> Self {
        ReadPool {
            buf: BytesMut::new(),
            capacity: read_size.saturating_mul(READS_PER_POOL),
        }
    }

    /// `data` (one read) as `Bytes` of exactly its length.
    pub fn take(&mut self, data: &[u8]) -> Bytes {
        if self.buf.capacity() < data.len() {
            // Reclaims the allocation if nothing else holds it, else makes
            // a new one.
            self.buf.reserve(data.len().max(self.capacity));
        }
        self.buf.extend_from_slice(data);
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_CHUNK: usize = 64 * 1024;
    const READ_POOL_CAPACITY: usize = READS_PER_POOL * READ_CHUNK;

    #[test]
    fn each_read_comes_back_as_itself() {
        let mut pool = ReadPool::new(READ_CHUNK);
        let reads: Vec<Vec<u8>> = (0..40u8)
            .map(|i| vec![i; 1000 + 997 * i as usize])
            .collect();
        let taken: Vec<Bytes> = reads.iter().map(|r| pool.take(r)).collect();
        for (read, bytes) in reads.iter().zip(&taken) {
            assert_eq!(&bytes[..], &read[..]);
        }
    }

    #[test]
    fn a_read_bigger_than_the_pool_still_fits() {
        let mut pool = ReadPool::new(READ_CHUNK);
        let big = vec![9u8; READ_POOL_CAPACITY * 2 + 3];
        assert_eq!(&pool.take(&big)[..], &big[..]);
        assert_eq!(&pool.take(b"after")[..], b"after");
    }

    #[test]
    fn reads_reuse_the_allocation_once_their_bytes_are_dropped() {
        let mut pool = ReadPool::new(READ_CHUNK);
        let first = pool.take(&[1; READ_CHUNK]);
        let start = first.as_ptr();
        drop(first);
        // Fill the rest of the allocation, dropping as the node would.
        for _ in 1..READ_POOL_CAPACITY / READ_CHUNK {
            drop(pool.take(&[2; READ_CHUNK]));
        }
        // Full: the next read reclaims the allocation from its start.
        assert_eq!(pool.take(&[3; READ_CHUNK]).as_ptr(), start);
    }

    #[test]
    fn a_held_read_is_never_overwritten() {
        let mut pool = ReadPool::new(READ_CHUNK);
        let held = pool.take(&[7; READ_CHUNK]);
        for _ in 0..2 * READ_POOL_CAPACITY / READ_CHUNK {
            drop(pool.take(&[8; READ_CHUNK]));
        }
        assert!(held.iter().all(|&b| b == 7));
    }
}
