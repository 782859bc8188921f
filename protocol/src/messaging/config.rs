//! [`MessagingConfig`]: requests and the queue for unconnected peers.

use crate::time::Duration;

/// Requests and messages for peers that are not connected. Part of
/// [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingConfig {
    /// Cap on requests awaiting a response. Default 1024.
    pub max_pending_requests: usize,
    /// Cap on messages queued for peers that are being looked up or dialled.
    /// Default 1024.
    pub max_queued_messages: usize,
    /// How long a message waits for its peer to be found and connected
    /// before it fails. Default 10 s.
    pub lookup_timeout: Duration,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        MessagingConfig {
            max_pending_requests: 1024,
            max_queued_messages: 1024,
            lookup_timeout: Duration::from_secs(10),
        }
    }
}
