//! The `dht` component (spec/chord.md §10): a key-value table spread over
//! the Chord ring. `store.rs` is the holder's bounded store and its pure
//! rules (conflict order, caps, anti-entropy digests, garbage); the node
//! drives it in `node/dht.rs`.

pub(crate) mod store;
