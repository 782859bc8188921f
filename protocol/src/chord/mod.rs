//! The `chord` component (spec/chord.md). So far: the ring arithmetic and
//! the pure decision rules of Zave's corrected protocol, each unit-tested;
//! the message exchanges that drive them come next.

// Not wired into `Node` yet (spec/chord.md: "Design, not yet implemented");
// the rules are tested here so the component can be built on them.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod ring;
