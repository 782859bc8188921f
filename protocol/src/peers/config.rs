//! [`PeersConfig`]: connection caps, redials, the peer cache, discovery.

use core::net::SocketAddr;

use crate::time::Duration;

/// Connection caps, redials, the peer cache and discovery. Part of
/// [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersConfig {
    /// Cap on connections in any state (dialling, handshaking, open).
    /// Inbound connections over the cap are closed at once; dials over it
    /// are refused. Default 256.
    pub max_connections: usize,
    /// Cap on inbound connections in any state; more are closed at once.
    /// Default 128.
    pub max_inbound: usize,
    /// Cap on connections this node dials, in any state; dials over it are
    /// refused. Default 64.
    pub max_outbound: usize,
    /// Cap on connections still dialling or handshaking, both directions.
    /// Inbound ones over it are closed at once (a handshake flood costs
    /// this many sessions, no more). Default 32.
    pub max_half_open: usize,
    /// The node keeps dialling peers it knows until it has this many
    /// established peers (inbound ones count). Default 8.
    pub target_peers: usize,
    /// Cap on the peer cache ([`Node::known_peers`](crate::Node::known_peers)).
    /// A quarter of it is the *tried* table (peers this node dialled and
    /// authenticated), the rest the *new* table (heard of, or inbound
    /// only), each in buckets of 16 by address group (spec/peers.md,
    /// "Peer cache"); gossip and inbound peers never displace tried ones,
    /// and an entry that finds no slot is dropped and counted
    /// ([`PeersStats::known_peers_refused`](crate::PeersStats::known_peers_refused)).
    /// Connected peers without a slot are also kept while connected (at
    /// most `max_connections` of them). Default 1024.
    pub max_known_peers: usize,
    /// First redial delay after a peer is lost or a dial fails; doubles with
    /// each failure up to `redial_backoff_max`, and each delay is jittered
    /// down by up to half. Default (WAN) 1 s; 500 ms in
    /// [`PeersConfig::lan`].
    pub redial_backoff_min: Duration,
    /// Cap on the redial delay. Default (WAN) 60 s; 30 s in
    /// [`PeersConfig::lan`].
    pub redial_backoff_max: Duration,
    /// How often the node checks its peer count, redials and expires
    /// caches. Default 1 s.
    pub maintenance_interval: Duration,
    /// Addresses dialled at start, and again whenever the node has no peer
    /// and nothing else to dial. Any node can be one. At most
    /// [`MAX_BOOTSTRAP`](crate::MAX_BOOTSTRAP). Default: none.
    pub bootstrap: Vec<SocketAddr>,
    /// Entries in the `PeerList` a node sends to each new peer and in
    /// answer to `PeerRequest`. At most
    /// [`MAX_PEER_LIST`](crate::wire::MAX_PEER_LIST). Default 16.
    pub peer_exchange_size: usize,
}

impl Default for PeersConfig {
    fn default() -> Self {
        PeersConfig {
            max_connections: 256,
            max_inbound: 128,
            max_outbound: 64,
            max_half_open: 32,
            target_peers: 8,
            max_known_peers: 1024,
            redial_backoff_min: Duration::from_secs(1),
            redial_backoff_max: Duration::from_secs(60),
            maintenance_interval: Duration::from_secs(1),
            bootstrap: Vec::new(),
            peer_exchange_size: 16,
        }
    }
}

impl PeersConfig {
    /// Redials for a local network: from 500 ms, capped at 30 s.
    pub fn lan() -> Self {
        PeersConfig {
            redial_backoff_min: Duration::from_millis(500),
            redial_backoff_max: Duration::from_secs(30),
            ..PeersConfig::default()
        }
    }

    /// Redials for the internet: from 1 s, capped at 60 s. The default.
    pub fn wan() -> Self {
        PeersConfig::default()
    }
}
