//! [`AdapterConfig`]: how an adapter runs a node, its defaults and its
//! validation.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use ringmesh::wire::LENGTH_PREFIX_LEN;
use ringmesh::{Config, ConfigError, Identity, Instant, Node};

use crate::announce::announced_addrs_among;
use crate::clock::Clock;
use crate::events::DEFAULT_EVENT_CAPACITY_BYTES;

/// Default [`AdapterConfig::max_backlog_bytes`]: 32 MiB, two frames of the
/// default 16 MiB `max_frame_len`.
pub const DEFAULT_MAX_BACKLOG_BYTES: usize = 32 << 20;

/// Default [`AdapterConfig::event_capacity`]: 1,024 events.
///
/// The buffer is a hand-off between the node and an application that
/// reads it promptly, not storage: both adapters' channels allocate every
/// slot up front (an [`Event`](ringmesh::Event) is 144 bytes on x86-64, so
/// 1,024 slots cost about 150 KiB per node, where 65,536 would cost about
/// 10 MiB per node before a single event). An application that reads in
/// bursts (a bench with a window of 8,192 messages in flight) raises it.
/// The count is one of two caps: the bytes of the events waiting
/// (their payloads) are capped too, by
/// [`AdapterConfig::event_capacity_bytes`].
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Largest [`AdapterConfig::event_capacity`]: 1,048,576 (2^20). The slots
/// are allocated up front, so a larger value is a typo or an attempt to
/// make the adapter allocate gigabytes, not a buffer.
pub const MAX_EVENT_CAPACITY: usize = 1 << 20;

/// How to run a node over TCP: what both adapters take (`ringmesh_mio::spawn`
/// and `Adapter::new`, `ringmesh_async_std::start`). Build it with
/// [`AdapterConfig::new`], then change fields.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Where the listener binds. Port 0 picks a free port (the adapter's
    /// handle reports the real one). What the node announces to peers
    /// follows from this address and `node.listen_addrs`: see
    /// [`announced_addrs`](crate::announced_addrs). No default: [`AdapterConfig::new`] takes it.
    pub listen: SocketAddr,
    /// The node's protocol configuration. If its `listen_addrs` is empty,
    /// the adapter fills it from the bound address ([`announced_addrs`](crate::announced_addrs)).
    pub node: Config,
    /// The node's long-term identity; its 32 secret bytes are what to
    /// persist between runs.
    pub identity: Identity,
    /// The node's randomness seed ([`Node::new`]). In Noise mode it keys
    /// the handshakes' ephemeral keys: **pass a fresh random value at every
    /// start** (e.g. from `getrandom`). Fixed seeds are for tests.
    pub seed: u64,
    /// Cap on the bytes queued for one connection and not yet taken by its
    /// socket. Sending past it closes that connection, reported to the node
    /// as [`BACKLOG_OVERFLOW`](crate::BACKLOG_OVERFLOW): a peer that stops
    /// reading costs at most this much memory. At least one whole frame of
    /// `node.session.max_frame_len` with its header
    /// ([`AdapterConfig::min_backlog_bytes`]), or the node could not relay
    /// a frame it accepted. Default [`DEFAULT_MAX_BACKLOG_BYTES`].
    pub max_backlog_bytes: usize,
    /// Events held for the application before new ones are dropped (and
    /// counted, with a warning in the log): the node never waits for the
    /// application. 1 to [`MAX_EVENT_CAPACITY`]. Default
    /// [`DEFAULT_EVENT_CAPACITY`].
    pub event_capacity: usize,
    /// Bytes of events held for the application (each event's payloads
    /// plus the event itself: [`event_size`](crate::event_size)) before new
    /// ones are dropped, counted and logged (at most one warning per
    /// [`DROP_LOG_INTERVAL`](crate::DROP_LOG_INTERVAL), with the count):
    /// an application that stops reading costs at most this much. At least
    /// one payload of `node.session.max_frame_len` (plus the event), or a
    /// message the node accepted could never be delivered. Default
    /// [`DEFAULT_EVENT_CAPACITY_BYTES`](crate::DEFAULT_EVENT_CAPACITY_BYTES).
    pub event_capacity_bytes: usize,
    /// Where the node keeps its blobs: a [`FileStore`](crate::FileStore)
    /// opened here (created if missing) replaces the in-memory store, so
    /// blobs outlive the process and a fetch resumes after a restart. No
    /// effect without `node.blobs`. Default `None` (in memory).
    pub blob_dir: Option<PathBuf>,
}

/// Why an [`AdapterConfig`] was refused. Nothing was started: no node
/// exists and the adapter holds no listener.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterConfigError {
    /// `max_backlog_bytes` cannot hold one frame of the node's
    /// `max_frame_len` with its header.
    #[error(
        "max_backlog_bytes {value} cannot hold one frame of max_frame_len {max_frame_len} \
         (at least {min} bytes with its header)"
    )]
    BacklogBelowFrame {
        /// The configured cap.
        value: usize,
        /// The node's `max_frame_len`.
        max_frame_len: u32,
        /// The smallest cap that holds such a frame.
        min: usize,
    },
    /// `event_capacity` is 0 (no event could ever be delivered) or above
    /// [`MAX_EVENT_CAPACITY`].
    #[error("event_capacity {value} is outside 1..={max}")]
    EventCapacity {
        /// The configured value.
        value: usize,
        /// [`MAX_EVENT_CAPACITY`].
        max: usize,
    },
    /// `event_capacity_bytes` cannot hold one event with a payload of the
    /// node's `max_frame_len`.
    #[error(
        "event_capacity_bytes {value} cannot hold one event with a payload of max_frame_len \
         (at least {min} bytes)"
    )]
    EventCapacityBytes {
        /// The configured value.
        value: usize,
        /// The smallest allowed.
        min: usize,
    },
    /// `node.listen_addrs` lists an address no peer can dial
    /// ([`is_dialable`](crate::is_dialable)).
    #[error(
        "listen_addrs lists {addr}, which no peer can dial \
         (unspecified address, port 0, multicast or broadcast)"
    )]
    UndialableListenAddr {
        /// The address.
        addr: SocketAddr,
    },
    /// The ring is on, `node.listen_addrs` is empty and the listener is
    /// bound to an address no peer can dial (such as `0.0.0.0`) on a
    /// machine with no usable interface address, so there is nothing to
    /// announce, and a ring member must be diallable.
    #[error(
        "the listener is bound to {bound}, which no peer can dial, this machine has no \
         interface address to announce instead, and a ring member must announce an \
         address: set listen_addrs to the address peers should dial"
    )]
    NothingToAnnounce {
        /// The bound address.
        bound: SocketAddr,
    },
    /// The blob directory ([`AdapterConfig::blob_dir`]) cannot be opened.
    #[error("cannot open the blob store in {dir}: {reason}")]
    BlobDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// The node's own configuration is invalid.
    #[error("invalid node configuration: {0}")]
    Node(#[from] ConfigError),
}

impl From<AdapterConfigError> for io::Error {
    /// `InvalidInput`, carrying the error (`get_ref()` and `downcast_ref`
    /// give it back).
    fn from(error: AdapterConfigError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

/// A node ready for an adapter to drive ([`AdapterConfig::into_node`]),
/// with the clock its protocol time runs on and the caps it runs under.
#[derive(Debug)]
pub struct Startup {
    /// The node, created at [`Instant::ZERO`] of `clock`.
    pub node: Node,
    /// Protocol time for this node: its epoch is the node's creation.
    pub clock: Clock,
    /// [`AdapterConfig::max_backlog_bytes`], validated.
    pub max_backlog_bytes: usize,
    /// [`AdapterConfig::event_capacity`], validated.
    pub event_capacity: usize,
    /// [`AdapterConfig::event_capacity_bytes`], validated.
    pub event_capacity_bytes: usize,
    /// The blob directory the node's store was opened in (`None`: blobs
    /// in memory), for the handles' blob methods.
    pub blob_dir: Option<PathBuf>,
}

impl AdapterConfig {
    /// A configuration with the default caps.
    pub fn new(listen: SocketAddr, node: Config, identity: Identity, seed: u64) -> Self {
        AdapterConfig {
            listen,
            node,
            identity,
            seed,
            max_backlog_bytes: DEFAULT_MAX_BACKLOG_BYTES,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            event_capacity_bytes: DEFAULT_EVENT_CAPACITY_BYTES,
            blob_dir: None,
        }
    }

    /// The smallest `event_capacity_bytes` this configuration allows: one
    /// event carrying a payload of `node.session.max_frame_len`.
    pub fn min_event_capacity_bytes(&self) -> usize {
        usize::try_from(self.node.session.max_frame_len)
            .unwrap_or(usize::MAX)
            .saturating_add(size_of::<ringmesh::Event>())
    }

    /// The smallest `max_backlog_bytes` this configuration allows: one frame
    /// of `node.session.max_frame_len` plus its length prefix, as the adapters count
    /// backlog in bytes on the wire.
    pub fn min_backlog_bytes(&self) -> usize {
        usize::try_from(self.node.session.max_frame_len)
            .unwrap_or(usize::MAX)
            .saturating_add(LENGTH_PREFIX_LEN)
    }

    /// Checks what can be checked before the listener is bound: the caps
    /// and the explicitly configured `node.listen_addrs`. The node's own
    /// [`Config`] is checked by [`AdapterConfig::into_node`] (by
    /// [`Node::new`]).
    pub fn validate(&self) -> Result<(), AdapterConfigError> {
        let min = self.min_backlog_bytes();
        if self.max_backlog_bytes < min {
            return Err(AdapterConfigError::BacklogBelowFrame {
                value: self.max_backlog_bytes,
                max_frame_len: self.node.session.max_frame_len,
                min,
            });
        }
        if !(1..=MAX_EVENT_CAPACITY).contains(&self.event_capacity) {
            return Err(AdapterConfigError::EventCapacity {
                value: self.event_capacity,
                max: MAX_EVENT_CAPACITY,
            });
        }
        let min = self.min_event_capacity_bytes();
        if self.event_capacity_bytes < min {
            return Err(AdapterConfigError::EventCapacityBytes {
                value: self.event_capacity_bytes,
                min,
            });
        }
        if let Some(&addr) = self
            .node
            .listen_addrs
            .iter()
            .find(|addr| !crate::is_dialable(**addr))
        {
            return Err(AdapterConfigError::UndialableListenAddr { addr });
        }
        Ok(())
    }

    /// Creates the node for a listener bound at `bound` (as the socket
    /// reports it, so with the real port when port 0 was asked for): the
    /// configuration is validated, `node.listen_addrs` is filled by the
    /// listen-address policy ([`announced_addrs`](crate::announced_addrs)), the clock starts and
    /// the node is created at its [`Instant::ZERO`]; a node with the sync
    /// table is told the wall clock (`SyncCommand::SetWallClock`).
    pub fn into_node(self, bound: SocketAddr) -> Result<Startup, AdapterConfigError> {
        self.into_node_among(bound, crate::interface_ips)
    }

    /// [`AdapterConfig::into_node`] with the machine's interface addresses
    /// from `interfaces` (tests play machines without any).
    fn into_node_among(
        self,
        bound: SocketAddr,
        interfaces: impl FnOnce() -> Vec<std::net::IpAddr>,
    ) -> Result<Startup, AdapterConfigError> {
        self.validate()?;
        let AdapterConfig {
            node: mut config,
            identity,
            seed,
            max_backlog_bytes,
            event_capacity,
            event_capacity_bytes,
            blob_dir,
            ..
        } = self;
        let store_dir = blob_dir.clone().filter(|_| config.blobs.is_some());
        let announced = announced_addrs_among(bound, &config.listen_addrs, interfaces)?;
        if announced.is_empty() && config.chord.is_some() {
            return Err(AdapterConfigError::NothingToAnnounce { bound });
        }
        config.listen_addrs = announced.into_iter().collect();
        let clock = Clock::start();
        let mut node = Node::new(config, identity, seed, Instant::ZERO)?;
        if let Some(dir) = blob_dir.filter(|_| node.config().blobs.is_some()) {
            let store = crate::FileStore::open(&dir).map_err(|e| AdapterConfigError::BlobDir {
                reason: e.to_string(),
                dir,
            })?;
            let report = store.open_report();
            tracing::info!(?report, "blob store opened");
            node.set_blob_store(Box::new(store));
        }
        if node.config().sync.is_some() {
            // The sync table's timestamps count from the wall clock
            // (spec/sync.md §2); the protocol reads none, so it is told.
            let unix_micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            // Accepted whenever the table is on; nothing to drain.
            let _ = node.command(
                Instant::ZERO,
                ringmesh::SyncCommand::SetWallClock { unix_micros },
            );
        }
        Ok(Startup {
            node,
            clock,
            max_backlog_bytes,
            event_capacity,
            event_capacity_bytes,
            blob_dir: store_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str) -> AdapterConfig {
        AdapterConfig::new(
            listen.parse().expect("addr"),
            Config::lan(),
            Identity::from_secret_bytes([3; 32]),
            3,
        )
    }

    #[test]
    fn defaults_hold_two_default_frames_and_pass_validation() {
        let c = config("127.0.0.1:0");
        assert_eq!(c.max_backlog_bytes, DEFAULT_MAX_BACKLOG_BYTES);
        assert_eq!(c.event_capacity, DEFAULT_EVENT_CAPACITY);
        assert_eq!(
            DEFAULT_MAX_BACKLOG_BYTES,
            2 * ringmesh::wire::DEFAULT_MAX_FRAME_LEN as usize
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn backlog_must_hold_one_whole_frame_with_its_header() {
        let mut c = config("127.0.0.1:0");
        c.node.session.max_frame_len = 64 * 1024;
        c.max_backlog_bytes = 64 * 1024 + LENGTH_PREFIX_LEN;
        assert_eq!(c.validate(), Ok(()));
        c.max_backlog_bytes -= 1;
        assert_eq!(
            c.validate(),
            Err(AdapterConfigError::BacklogBelowFrame {
                value: 64 * 1024 + 3,
                max_frame_len: 64 * 1024,
                min: 64 * 1024 + 4,
            })
        );
    }

    #[test]
    fn the_largest_frame_cap_needs_a_backlog_that_cannot_overflow_the_sum() {
        // u32::MAX + 4 fits a 64-bit usize; the sum saturates instead of
        // wrapping to a tiny minimum on a 32-bit one.
        let mut c = config("127.0.0.1:0");
        c.node.session.max_frame_len = u32::MAX;
        assert!(c.min_backlog_bytes() > u32::MAX as usize || c.min_backlog_bytes() == usize::MAX);
        c.max_backlog_bytes = u32::MAX as usize;
        assert!(matches!(
            c.validate(),
            Err(AdapterConfigError::BacklogBelowFrame { .. })
        ));
        c.max_backlog_bytes = usize::MAX;
        c.event_capacity_bytes = usize::MAX;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn event_capacity_bytes_below_one_maximal_payload_is_refused() {
        let mut c = config("127.0.0.1:0");
        assert_eq!(c.event_capacity_bytes, DEFAULT_EVENT_CAPACITY_BYTES);
        c.event_capacity_bytes = c.min_event_capacity_bytes() - 1;
        assert_eq!(
            c.validate(),
            Err(AdapterConfigError::EventCapacityBytes {
                value: c.event_capacity_bytes,
                min: c.min_event_capacity_bytes(),
            })
        );
        c.event_capacity_bytes += 1;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn event_capacity_zero_or_past_the_cap_is_refused() {
        for value in [0, MAX_EVENT_CAPACITY + 1, usize::MAX] {
            let mut c = config("127.0.0.1:0");
            c.event_capacity = value;
            assert_eq!(
                c.validate(),
                Err(AdapterConfigError::EventCapacity {
                    value,
                    max: MAX_EVENT_CAPACITY
                })
            );
        }
        let mut c = config("127.0.0.1:0");
        c.event_capacity = MAX_EVENT_CAPACITY;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_refusal_travels_inside_an_invalid_input_io_error() {
        let mut c = config("127.0.0.1:0");
        c.event_capacity = 0;
        let error: io::Error = c.validate().expect_err("refused").into();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let inner = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<AdapterConfigError>());
        assert!(matches!(
            inner,
            Some(AdapterConfigError::EventCapacity { value: 0, .. })
        ));
    }

    #[test]
    fn into_node_announces_the_bound_address_with_its_real_port() {
        let bound: SocketAddr = "127.0.0.1:40123".parse().expect("addr");
        let started = config("127.0.0.1:0").into_node(bound).expect("starts");
        assert_eq!(&started.node.config().listen_addrs[..], &[bound]);
        assert_eq!(started.max_backlog_bytes, DEFAULT_MAX_BACKLOG_BYTES);
        assert_eq!(started.event_capacity, DEFAULT_EVENT_CAPACITY);
    }

    #[test]
    fn into_node_with_the_ring_on_announces_the_interfaces_of_an_unspecified_bind() {
        let bound: SocketAddr = "0.0.0.0:40124".parse().expect("addr");
        let mut c = config("0.0.0.0:0");
        c.node.chord = Some(ringmesh::ChordConfig::default());
        let lan = || {
            vec![
                "127.0.0.1".parse().expect("ip"),
                "10.1.2.3".parse().expect("ip"),
            ]
        };
        let started = c.clone().into_node_among(bound, lan).expect("starts");
        assert_eq!(
            &started.node.config().listen_addrs[..],
            &["10.1.2.3:40124".parse::<SocketAddr>().expect("addr")]
        );
        // A machine with no usable address has nothing to announce.
        assert_eq!(
            c.clone().into_node_among(bound, Vec::new).map(drop),
            Err(AdapterConfigError::NothingToAnnounce { bound })
        );
        // Told where peers dial, it starts and announces exactly that.
        let public: SocketAddr = "192.0.2.7:4000".parse().expect("addr");
        c.node.listen_addrs.push(public);
        let started = c.into_node_among(bound, lan).expect("starts");
        assert_eq!(&started.node.config().listen_addrs[..], &[public]);
    }

    #[test]
    fn into_node_reports_an_invalid_node_config_as_such() {
        let mut c = config("127.0.0.1:0");
        c.node.peers.max_connections = 0;
        let bound: SocketAddr = "127.0.0.1:40125".parse().expect("addr");
        assert_eq!(
            c.into_node(bound).map(drop),
            Err(AdapterConfigError::Node(ConfigError::ZeroMaxConnections))
        );
    }
}
