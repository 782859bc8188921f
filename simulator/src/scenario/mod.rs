//! Scenarios: whole runs with a report, as the CLI offers them.

pub mod blobs;
pub mod chord;
pub mod flood;
pub mod liveness;
pub mod script;
pub mod sync;
