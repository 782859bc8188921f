//! [`DirectReadPool`]: where an adapter reads a socket into, each read
//! handed to the node as the `Bytes` it takes, without a copy and without
//! a fresh allocation per read.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

/// How many reads' worth a [`DirectReadPool`] allocates at a time: a read
/// whose bytes are still held (a frame the node has not finished with)
/// then does not force a new allocation at the next one.
pub const READS_PER_POOL: usize = 4;

/// Allocations a [`DirectReadPool`] made with [`DirectReadPool::new`]
/// keeps after it moved on from them, to reuse once the application has
/// dropped what was read into them.
pub const RETIRED_POOLS: usize = 3;

/// A buffer that a socket is read into directly, each read split off as
/// `Bytes` of exactly its length: no copy between the socket's read and the
/// node (the adapters used to read into a scratch buffer and copy each read
/// into a pool like this one).
///
/// Safe code can only read into initialized memory, so an allocation is
/// zeroed once when it is made or reused (`calloc`, or a `memset` of the
/// reused allocation): half the memory traffic of a copy, and none of the
/// copy's reads. Each allocation is [`READS_PER_POOL`] reads; once its
/// unread rest is smaller than a read it is retired, and the pool keeps the
/// last [`RETIRED_POOLS`] of them (or as many as
/// [`with_retired`](DirectReadPool::with_retired) says) to reuse as soon as every `Bytes` split
/// off one is dropped (a delivered payload lives as long as the application
/// holds the event). Reusing memory already faulted in spares the page
/// faults of a fresh allocation (with 64 KiB messages, the allocator hands
/// freed memory back to the system, and it is faulted in and zeroed by the
/// kernel again). At most `(retired + 1) × READS_PER_POOL` reads' worth is
/// kept beyond what the node and the application hold: one pool per
/// adapter can afford the default, one per connection should keep fewer
/// (it is held for as long as the connection lives, idle or not).
#[derive(Debug)]
pub struct DirectReadPool {
    /// The rest of the current allocation, zeroed or read before: the next
    /// read goes to its start.
    ready: BytesMut,
    retired: Vec<BytesMut>,
    /// `ready` is (the rest of) an allocation, not the empty start.
    allocated: bool,
    read_size: usize,
    capacity: usize,
    /// How many retired allocations are kept.
    keep: usize,
}

impl DirectReadPool {
    /// An empty pool for reads of up to `read_size` bytes; it allocates at
    /// its first read.
    pub fn new(read_size: usize) -> Self {
        Self::with_retired(read_size, RETIRED_POOLS)
    }

    /// As [`new`](DirectReadPool::new), keeping at most `retired` spent
    /// allocations for reuse (0: each is freed with its last `Bytes`).
    pub fn with_retired(read_size: usize, retired: usize) -> Self {
        DirectReadPool {
            ready: BytesMut::new(),
            retired: Vec::new(),
            allocated: false,
            read_size,
            capacity: read_size.saturating_mul(READS_PER_POOL),
            keep: retired,
        }
    }

    /// One `read` from `reader` straight into the pool, of at least the
    /// `read_size` given to [`new`](DirectReadPool::new) and at most what is
    /// left of the current allocation (a read that drains a socket then
    /// rarely cuts a frame in two: the node copies a frame that arrives in
    /// pieces). Returns what it read, as `Bytes` of exactly its length
    /// (empty at the end of the stream), and whether it filled the room it
    /// was given (if not, it emptied the socket at that moment). An error
    /// (`WouldBlock` included) consumes nothing.
    pub fn read_from(&mut self, reader: &mut impl Read) -> io::Result<(Bytes, bool)> {
        if self.ready.len() < self.read_size {
            self.refill();
        }
        let room = self.ready.len();
        let n = reader.read(&mut self.ready[..])?;
        Ok((self.ready.split_to(n).freeze(), n == room))
    }

    /// Moves on to an allocation with room for a whole read: a retired one
    /// that nothing holds any more, else a new one.
    fn refill(&mut self) {
        let mut spent = core::mem::take(&mut self.ready);
        spent.clear();
        let reusable = self
            .retired
            .iter_mut()
            .position(|pool| pool.try_reclaim(self.capacity));
        let next = match reusable {
            Some(i) => {
                let mut pool = self.retired.swap_remove(i);
                pool.resize(self.capacity, 0);
                pool
            }
            None => BytesMut::zeroed(self.capacity),
        };
        if self.allocated && self.keep > 0 {
            if self.retired.len() == self.keep {
                // The oldest goes: its memory is freed with its last
                // `Bytes`.
                self.retired.remove(0);
            }
            self.retired.push(spent);
        }
        self.ready = next;
        self.allocated = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_CHUNK: usize = 64 * 1024;
    const READ_POOL_CAPACITY: usize = READS_PER_POOL * READ_CHUNK;

    /// A reader that hands out `data` in reads of at most `step` bytes.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn stream(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn direct_reads_give_the_stream_back_in_order_and_whole() {
        let data = stream(READ_POOL_CAPACITY * 5 + 12_345);
        for step in [1000, READ_CHUNK - 1, READ_CHUNK, READ_POOL_CAPACITY] {
            let mut pool = DirectReadPool::new(READ_CHUNK);
            let mut reader = Trickle { data: &data, step };
            let mut got = Vec::new();
            let mut held = Vec::new();
            loop {
                match pool.read_from(&mut reader) {
                    Ok((bytes, _)) => {
                        assert!(!bytes.is_empty() && bytes.len() <= READ_POOL_CAPACITY);
                        got.extend_from_slice(&bytes);
                        held.push(bytes); // every read held: nothing is reused
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(got, data, "step {step}");
            // What was held is still what was read.
            let again: Vec<u8> = held.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(again, data, "step {step}");
        }
    }

    #[test]
    fn a_direct_read_says_whether_it_filled_its_room() {
        let mut pool = DirectReadPool::new(READ_CHUNK);
        // A fresh allocation: the whole of it is the room.
        let data = stream(READ_POOL_CAPACITY + 10);
        let mut reader = Trickle {
            data: &data,
            step: usize::MAX,
        };
        let (first, filled) = pool.read_from(&mut reader).expect("read");
        assert_eq!((first.len(), filled), (READ_POOL_CAPACITY, true));
        let (rest, filled) = pool.read_from(&mut reader).expect("read");
        assert_eq!((rest.len(), filled), (10, false));
        assert_eq!([&first[..], &rest[..]].concat(), data);
    }

    #[test]
    fn a_direct_read_at_the_end_of_the_stream_is_empty() {
        let mut pool = DirectReadPool::new(READ_CHUNK);
        let (bytes, filled) = pool.read_from(&mut io::empty()).expect("read");
        assert!(bytes.is_empty());
        assert!(!filled);
    }

    #[test]
    fn direct_reads_reuse_an_allocation_once_its_bytes_are_dropped() {
        let mut pool = DirectReadPool::new(READ_CHUNK);
        let data = stream(READ_POOL_CAPACITY);
        let whole = || Trickle {
            data: &data,
            step: usize::MAX,
        };
        let (first, _) = pool.read_from(&mut whole()).expect("read");
        let start = first.as_ptr();
        drop(first);
        // The allocation is used up: the next read retires it and takes a
        // new one; the one after that finds the first free again.
        let (second, _) = pool.read_from(&mut whole()).expect("read");
        assert_ne!(second.as_ptr(), start);
        let (third, _) = pool.read_from(&mut whole()).expect("read");
        assert_eq!(third.as_ptr(), start);
        assert_eq!(&third[..], &data[..]);
        drop(second);
    }

    #[test]
    fn a_direct_read_pool_keeps_no_more_spent_allocations_than_it_was_told() {
        let data = stream(READ_POOL_CAPACITY);
        for keep in [0, 1, RETIRED_POOLS] {
            let mut pool = DirectReadPool::with_retired(READ_CHUNK, keep);
            let mut held = Vec::new();
            for _ in 0..2 * (RETIRED_POOLS + 2) {
                let (bytes, _) = pool
                    .read_from(&mut Trickle {
                        data: &data,
                        step: usize::MAX,
                    })
                    .expect("read");
                held.push(bytes);
            }
            assert_eq!(pool.retired.len(), keep, "keep {keep}");
            drop(held);
        }
    }

    #[test]
    fn a_held_direct_read_is_never_overwritten() {
        let mut pool = DirectReadPool::new(READ_CHUNK);
        let sevens = vec![7u8; READ_CHUNK];
        let (held, _) = pool
            .read_from(&mut Trickle {
                data: &sevens,
                step: usize::MAX,
            })
            .expect("read");
        let eights = vec![8u8; READ_POOL_CAPACITY];
        for _ in 0..4 * (RETIRED_POOLS + 2) {
            let (bytes, _) = pool
                .read_from(&mut Trickle {
                    data: &eights,
                    step: READ_CHUNK,
                })
                .expect("read");
            assert!(bytes.iter().all(|&b| b == 8));
        }
        assert!(held.iter().all(|&b| b == 7));
    }
}
