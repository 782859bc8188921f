//! The `mesh` component: flooding with a bounded seen-cache and a hop limit.
//! `Node` relays; this module decides what is new.

mod seen_cache;

pub(crate) use seen_cache::SeenCache;
