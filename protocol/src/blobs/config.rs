//! The `blobs` component's configuration.

use super::fetch::FetchLimits;
use super::serve::ServeLimits;
use crate::time::Duration;

/// Blobs (`spec/blobs.md`): [`Config::blobs`](crate::Config::blobs);
/// `None` (the default) does not run the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobsConfig {
    /// What this node serves, and how fast (§5).
    pub serve: ServeLimits,
    /// Each fetch's windows, caps and timeouts (§6).
    pub fetch: FetchLimits,
    /// Fetches at once; another is refused (`TooManyFetches`) and counted.
    /// Default 8.
    pub max_fetches: usize,
    /// How often running fetches check their deadlines and ask again.
    /// Default 100 ms.
    pub tick: Duration,
    /// How long a provider's "I lack these groups" or "I hold none" is
    /// believed: afterwards it is asked again, because a fetcher that
    /// serves what it holds gains groups as it goes (the swarm). Default
    /// 500 ms.
    pub relook: Duration,
    /// Every connected peer that offers `BLOBS` is asked as well as the
    /// providers a fetch names (a holder answers with groups, the others
    /// `NotHeld` at once). Default true.
    pub ask_neighbours: bool,
    /// The bytes the node's own in-memory store keeps, in all: a blob
    /// added or a group fetched past it is refused (`StoreError::Full`).
    /// A store set with `Node::set_blob_store` has its own bound. Default
    /// 2 GiB.
    pub store_bytes: u64,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        BlobsConfig {
            serve: ServeLimits::default(),
            fetch: FetchLimits::default(),
            max_fetches: 8,
            tick: Duration::from_millis(100),
            relook: Duration::from_millis(500),
            ask_neighbours: true,
            store_bytes: 2 << 30,
        }
    }
}
