//! Scenarios: whole runs with a report, as the CLI offers them.

pub mod blobs;
pub mod chord;
pub mod flood;
pub mod liveness;
pub mod nat;
pub mod script;
pub mod sync;
