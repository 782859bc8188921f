//! A global allocator that forwards to `System` unchanged and counts live
//! and peak heap bytes, for the tests that measure memory. A test binary
//! that includes it counts every allocation, so such a binary holds one
//! test: parallel tests would pollute the count. This is the only unsafe
//! code in the workspace.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes allocated and not yet freed.
pub(crate) fn live() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Restarts peak tracking from the current live size; returns it.
#[allow(dead_code)] // not every including binary tracks peaks
pub(crate) fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most heap bytes live at once since [`reset_peak`].
#[allow(dead_code)]
pub(crate) fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}
