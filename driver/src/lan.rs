//! LAN discovery: nodes on one local network find each other without a
//! bootstrap address, through a small UDP multicast beacon.
//!
//! Off unless asked: an application (the `ringmesh` program does, unless
//! `--no-lan`) starts a [`LanDiscovery`] beside its adapter. It runs on a
//! thread of its own (blocking UDP, no runtime), so it serves the mio and
//! the async adapter alike.
//!
//! Every [`LanConfig::interval`] (and once at start) it multicasts a
//! beacon, on each IPv4 interface that is not loopback, to
//! [`LanConfig::group`]: this node's id and the addresses it announces.
//! A beacon from another node (its own are recognised by id and ignored)
//! is handed to the application's `found` callback, which dials it
//! (`PeersCommand::ConnectAny` with the id demanded): the normal Noise
//! handshake then proves the id, so a forged beacon costs one failed dial.
//! A node that hears a newcomer answers with a beacon of its own at once
//! (at most one answer per [`LanConfig::answer_gap`]), so both learn of
//! each other within a round trip instead of an interval.
//!
//! Bounded: a beacon is at most [`MAX_BEACON_LEN`] bytes with at most 8
//! addresses; at most [`LanConfig::max_beacons_per_sec`] beacons are read
//! a second (the rest are dropped and counted, [`LanStats`]); one node is
//! reported at most once per [`LanConfig::refound_after`]; the table of
//! recently reported nodes holds at most [`LanConfig::max_tracked`] (the
//! oldest is forgotten).
//!
//! Beacon layout: `magic` "RMLB" (4 bytes), `version` u8 = 1, then the
//! body of a `PeerList` (`spec/wire.md` §7.5, without its tag) holding
//! exactly one entry: this node's id and 1 to 8 addresses. Anything else
//! is dropped and counted.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringmesh::NodeId;
use ringmesh::wire::{MAX_LISTEN_ADDRS, Message, PeerEntry, PeerList, Reader, WireMessage};
use tracing::{debug, info, warn};

/// The beacon's first bytes.
pub const BEACON_MAGIC: [u8; 4] = *b"RMLB";
/// The beacon format's version.
pub const BEACON_VERSION: u8 = 1;
/// The longest beacon: header, entry count, id, address count, 8 IPv6
/// addresses.
pub const MAX_BEACON_LEN: usize = 4 + 1 + 1 + 16 + 1 + MAX_LISTEN_ADDRS * 19;
/// The default multicast group: in 239.255.0.0/16, the IPv4
/// organisation-local scope (RFC 2365), which routers do not forward off
/// the site.
pub const DEFAULT_LAN_GROUP: SocketAddrV4 =
    SocketAddrV4::new(Ipv4Addr::new(239, 255, 72, 77), 47_077);

/// How LAN discovery runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanConfig {
    /// Where beacons go (every node of a LAN must use the same).
    /// Default: [`DEFAULT_LAN_GROUP`].
    pub group: SocketAddrV4,
    /// Time between this node's beacons. Default: 5 s.
    pub interval: Duration,
    /// Least time between two answers to newcomers' beacons. Default:
    /// 250 ms.
    pub answer_gap: Duration,
    /// Beacons read per second at most; more are dropped (counted).
    /// Default: 64.
    pub max_beacons_per_sec: u32,
    /// A node reported once is not reported again before this. Default:
    /// 30 s.
    pub refound_after: Duration,
    /// Nodes remembered as recently reported. Default: 256.
    pub max_tracked: usize,
}

impl Default for LanConfig {
    fn default() -> Self {
        LanConfig {
            group: DEFAULT_LAN_GROUP,
            interval: Duration::from_secs(5),
            answer_gap: Duration::from_millis(250),
            max_beacons_per_sec: 64,
            refound_after: Duration::from_secs(30),
            max_tracked: 256,
        }
    }
}

/// What LAN discovery counted. They only grow.
#[derive(Debug, Default)]
pub struct LanStats {
    /// Beacons sent (one per interface per round, answers included).
    pub sent: AtomicU64,
    /// Other nodes' beacons reported to the application.
    pub found: AtomicU64,
    /// Beacons dropped: malformed, over the rate, or a node reported
    /// too recently.
    pub dropped: AtomicU64,
    /// This node's own beacons, heard back and ignored.
    pub own: AtomicU64,
}

/// A running LAN discovery; dropping it stops it (within
/// [`POLL_INTERVAL`]).
pub struct LanDiscovery {
    stop: Arc<AtomicBool>,
    stats: Arc<LanStats>,
    thread: Option<JoinHandle<()>>,
}

/// How often the discovery thread checks whether it should stop.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

impl LanDiscovery {
    /// Starts beaconing `me` at `addrs` (what the node announces; at most
    /// 8 are sent) and listening for other nodes; `found` is called, on
    /// the discovery thread, with each other node heard (id and
    /// addresses). Fails if the group's port cannot be bound or no
    /// interface can join the group (no IPv4 interface but loopback).
    pub fn start(
        config: LanConfig,
        me: NodeId,
        addrs: &[SocketAddr],
        found: impl FnMut(NodeId, Vec<SocketAddr>) + Send + 'static,
    ) -> io::Result<LanDiscovery> {
        let interfaces: Vec<Ipv4Addr> = crate::interface_ips()
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
                _ => None,
            })
            .collect();
        let socket = bind(&config, &interfaces)?;
        let beacon = encode_beacon(me, addrs);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LanStats::default());
        let mut run = Beaconing {
            config,
            me,
            socket,
            interfaces,
            beacon,
            stats: stats.clone(),
            recent: BTreeMap::new(),
            found,
        };
        let thread = std::thread::Builder::new()
            .name("ringmesh-lan".into())
            .spawn({
                let stop = stop.clone();
                move || run.run(&stop)
            })?;
        Ok(LanDiscovery {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// What it counted so far.
    pub fn stats(&self) -> &LanStats {
        &self.stats
    }
}

impl Drop for LanDiscovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The group's socket: bound to its port on every address (shared with
/// other nodes of this host: `SO_REUSEADDR`), a member of the group on
/// each interface, hearing its own host's beacons (multicast loop on).
fn bind(config: &LanConfig, interfaces: &[Ipv4Addr]) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.group.port()));
    socket.bind(&any.into())?;
    let mut joined = 0;
    for interface in interfaces {
        match socket.join_multicast_v4(config.group.ip(), interface) {
            Ok(()) => joined += 1,
            Err(error) => debug!(%interface, %error, "cannot join the LAN discovery group here"),
        }
    }
    if joined == 0 {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no IPv4 interface but loopback can join the LAN discovery group",
        ));
    }
    socket.set_multicast_loop_v4(true)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    Ok(socket.into())
}

/// The discovery thread's state.
struct Beaconing<F> {
    config: LanConfig,
    me: NodeId,
    socket: UdpSocket,
    interfaces: Vec<Ipv4Addr>,
    beacon: Vec<u8>,
    stats: Arc<LanStats>,
    /// Nodes reported, and when (bounded by `max_tracked`).
    recent: BTreeMap<NodeId, Instant>,
    found: F,
}

impl<F: FnMut(NodeId, Vec<SocketAddr>)> Beaconing<F> {
    fn run(&mut self, stop: &AtomicBool) {
        let mut next_beacon = Instant::now();
        let mut last_answer: Option<Instant> = None;
        let mut window = (Instant::now(), 0u32);
        let mut buf = [0u8; MAX_BEACON_LEN + 1];
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_beacon {
                self.send_beacon();
                next_beacon = now + self.config.interval;
            }
            let len = match self.socket.recv_from(&mut buf) {
                Ok((len, _)) => len,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(error) => {
                    warn!(%error, "LAN discovery stops: the socket failed");
                    return;
                }
            };
            let now = Instant::now();
            if now.duration_since(window.0) >= Duration::from_secs(1) {
                window = (now, 0);
            }
            window.1 += 1;
            if window.1 > self.config.max_beacons_per_sec {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some((id, addrs)) = decode_beacon(&buf[..len]) else {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if id == self.me {
                self.stats.own.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if self
                .recent
                .get(&id)
                .is_some_and(|&at| now.duration_since(at) < self.config.refound_after)
            {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.remember(id, now);
            self.stats.found.fetch_add(1, Ordering::Relaxed);
            info!(peer = %id.short(), ?addrs, "found on the LAN");
            (self.found)(id, addrs);
            // A newcomer: answer at once, so it need not wait an interval.
            if last_answer.is_none_or(|at| now.duration_since(at) >= self.config.answer_gap) {
                last_answer = Some(now);
                self.send_beacon();
            }
        }
    }

    fn remember(&mut self, id: NodeId, now: Instant) {
        if !self.recent.contains_key(&id) && self.recent.len() >= self.config.max_tracked {
            let oldest = self
                .recent
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.recent.remove(&oldest);
            }
        }
        self.recent.insert(id, now);
    }

    fn send_beacon(&self) {
        let socket = socket2::SockRef::from(&self.socket);
        for interface in &self.interfaces {
            let sent = socket
                .set_multicast_if_v4(interface)
                .and_then(|()| self.socket.send_to(&self.beacon, self.config.group));
            match sent {
                Ok(_) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => debug!(%interface, %error, "LAN beacon not sent"),
            }
        }
    }
}

/// A beacon for `me` at `addrs` (the first 8): the header, then the body
/// of a one-entry `PeerList` (the protocol's own codec, `spec/wire.md`
/// §7.5).
pub fn encode_beacon(me: NodeId, addrs: &[SocketAddr]) -> Vec<u8> {
    let entry = PeerEntry {
        id: me,
        addrs: addrs.iter().take(MAX_LISTEN_ADDRS).copied().collect(),
    };
    let mut out = BytesMut::with_capacity(MAX_BEACON_LEN);
    out.extend_from_slice(&BEACON_MAGIC);
    out.extend_from_slice(&[BEACON_VERSION]);
    Message::PeerList(PeerList { peers: vec![entry] }).encode(&mut out);
    out.to_vec()
}

/// The id and addresses of a beacon; `None` for anything malformed
/// (wrong magic or version, not exactly one entry, no or too many
/// addresses, an address no peer can dial, bytes missing or left over).
pub fn decode_beacon(bytes: &[u8]) -> Option<(NodeId, Vec<SocketAddr>)> {
    let rest = bytes.strip_prefix(&BEACON_MAGIC)?;
    let (&version, rest) = rest.split_first()?;
    if version != BEACON_VERSION || rest.len() > MAX_BEACON_LEN {
        return None;
    }
    let mut reader = Reader::new(Bytes::copy_from_slice(rest));
    let Ok(Message::PeerList(PeerList { peers })) =
        Message::decode(<PeerList as WireMessage>::TAG, &mut reader)
    else {
        return None;
    };
    let [entry] = <[PeerEntry; 1]>::try_from(peers).ok()?;
    let addrs = entry.addrs.to_vec();
    (!addrs.is_empty() && addrs.iter().all(|a| crate::is_dialable(*a))).then_some((entry.id, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().expect("addr")).collect()
    }

    #[test]
    fn a_beacon_round_trips() {
        let id = NodeId::from_u128(0x1234_5678);
        let sent = addrs(&["10.0.0.1:4000", "[2001:db8::1]:4000"]);
        let beacon = encode_beacon(id, &sent);
        assert!(beacon.len() <= MAX_BEACON_LEN);
        assert_eq!(decode_beacon(&beacon), Some((id, sent)));
    }

    #[test]
    fn at_most_eight_addresses_are_sent() {
        let many: Vec<SocketAddr> = (1..=12)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 4000)))
            .collect();
        let beacon = encode_beacon(NodeId::from_u128(1), &many);
        let (_, got) = decode_beacon(&beacon).expect("beacon");
        assert_eq!(got, many[..8]);
    }

    #[test]
    fn malformed_beacons_are_refused() {
        let id = NodeId::from_u128(7);
        let good = encode_beacon(id, &addrs(&["10.0.0.1:4000"]));
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            encode_beacon(id, &[]),
            encode_beacon(id, &addrs(&["0.0.0.0:4000"])),
            encode_beacon(id, &addrs(&["10.0.0.1:0"])),
        ];
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut bad_version = good.clone();
        bad_version[4] = 2;
        let mut bad_family = good.clone();
        bad_family[23] = 5;
        let mut too_many = good.clone();
        too_many[22] = 9;
        let mut two_entries = good.clone();
        two_entries[5] = 2;
        cases.extend([bad_magic, bad_version, bad_family, too_many, two_entries]);
        for (i, case) in cases.iter().enumerate() {
            assert_eq!(decode_beacon(case), None, "case {i}");
        }
        assert!(decode_beacon(&good).is_some());
    }
}
