//! The `dht` component (spec/chord.md §10): a key-value table spread over
//! the Chord ring. So far: the holder's bounded store and its pure rules
//! (conflict order, caps, anti-entropy digests, garbage), each unit-tested;
//! the message exchanges that drive them come next.

// Not wired into `Node` yet; the store is tested here so the component can
// be built on it.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod store;
