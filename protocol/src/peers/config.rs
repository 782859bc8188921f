//! [`PeersConfig`]: connection caps, redials, the peer cache, discovery.

use core::net::SocketAddr;

use crate::time::Duration;

/// Connection caps, redials, the peer cache and discovery. Part of
/// [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersConfig {
    /// Cap on connections in any state (dialling, handshaking, open).
    /// Inbound connections over the cap are closed at once; dials over it
    /// are refused, but inbound half-open connections do not count against
    /// dials (they have their own cap, [`AdmissionConfig::max_inbound_half_open`]).
    /// Default 256.
    pub max_connections: usize,
    /// Cap on established inbound connections (inbound slots). A newcomer
    /// that completes its handshake when they are full displaces an inbound
    /// peer only if the eviction rule finds one that is not protected
    /// (spec/peers.md, Admission); otherwise it is closed. Inbound
    /// connections still handshaking are capped by
    /// [`AdmissionConfig::max_inbound_half_open`]. Default 128.
    pub max_inbound: usize,
    /// Cap on connections this node dials, in any state; dials over it are
    /// refused. Default 64.
    pub max_outbound: usize,
    /// Cap on this node's dials still connecting or handshaking (outbound
    /// half-open connections); dials over it are refused. Inbound ones never
    /// count: a flood of strangers cannot stop this node dialling out.
    /// Default 32.
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
    /// Admission control for inbound connections: caps per source address
    /// and address group, handshake rate limits, the inbound handshake
    /// deadline. Default [`AdmissionConfig::default`].
    pub admission: AdmissionConfig,
}

/// Admission control: what an inbound connection must pass before this node
/// spends any work on it, and how long it may take to prove who it is. Part
/// of [`PeersConfig`]. The defaults suit a public node; every limit is
/// described, with what happens when it is reached, in spec/peers.md
/// (Admission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// An inbound connection not established this long after it was
    /// accepted is closed (`HandshakeTimeout`). An honest peer answers
    /// within a few round trips (well under a second even across the
    /// world); a connection that stalls only holds a slot. Default 3 s.
    pub inbound_handshake_timeout: Duration,
    /// Cap on inbound connections still handshaking. When it is full, a
    /// new one evicts the oldest (one the node has not yet answered
    /// first), so an attacker holding slots must keep paying for new
    /// connections and an honest handshake, a few milliseconds long, is
    /// rarely the oldest. Default 64.
    pub max_inbound_half_open: usize,
    /// Cap on inbound connections (any state) from one source IP address;
    /// more are closed at once. Several honest nodes may share an address
    /// (NAT, one host), rarely more than a few. Default 8.
    pub max_inbound_per_ip: usize,
    /// Cap on inbound connections (any state) from one address group: an
    /// IPv4 /24 or an IPv6 /48, the blocks one operator typically holds
    /// (as in Bitcoin Core's netgroups). More are closed at once, so one
    /// attacker's block fills at most this many of the `max_inbound`
    /// slots. Default 16.
    pub max_inbound_per_group: usize,
    /// Node-wide rate of inbound connections allowed to start a handshake,
    /// per second (a token bucket refilled continuously). Each costs the
    /// node a key exchange (about 0.3 ms of CPU), so the default bounds a
    /// flood to a few percent of a core. Over it, a connection is closed at
    /// once, before any crypto. A further quarter of this rate (and of the
    /// burst) is reserved for address groups that have not connected
    /// lately, so a flood from many busy groups cannot starve a newcomer.
    /// Default 200/s.
    pub handshake_rate: u32,
    /// Burst of the node-wide handshake bucket (its capacity): a node
    /// restarted in a busy network is redialled by many peers at once.
    /// Default 50.
    pub handshake_burst: u32,
    /// Rate of inbound connections from one address group, per second.
    /// Over it, a connection is closed at once. Default 10/s.
    pub group_handshake_rate: u32,
    /// Burst of each group's bucket. Default 20.
    pub group_handshake_burst: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            inbound_handshake_timeout: Duration::from_secs(3),
            max_inbound_half_open: 64,
            max_inbound_per_ip: 8,
            max_inbound_per_group: 16,
            handshake_rate: 200,
            handshake_burst: 50,
            group_handshake_rate: 10,
            group_handshake_burst: 20,
        }
    }
}

impl AdmissionConfig {
    /// No caps per address or group and no rate limits; inbound handshakes
    /// get 10 s (the session default). For simulations, where node
    /// addresses are a numbering rather than networks (thousands of nodes
    /// share a "/24") and every node joins in the same second.
    pub fn unlimited() -> Self {
        AdmissionConfig {
            inbound_handshake_timeout: Duration::from_secs(10),
            max_inbound_half_open: usize::MAX,
            max_inbound_per_ip: usize::MAX,
            max_inbound_per_group: usize::MAX,
            handshake_rate: u32::MAX,
            handshake_burst: u32::MAX,
            group_handshake_rate: u32::MAX,
            group_handshake_burst: u32::MAX,
        }
    }
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
            admission: AdmissionConfig::default(),
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
