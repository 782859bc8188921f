//! The conformance suite every ringmesh adapter passes, over real sockets
//! on 127.0.0.1.
//!
//! An adapter implements [`TestNode`] (start a node from an
//! [`AdapterConfig`], command it, list its peers, read its events, kill it,
//! shut it down) and instantiates the suite with [`conformance_suite!`],
//! which writes one `#[test]` per check:
//!
//! ```ignore
//! ringmesh_conformance::conformance_suite!(MyAdapterNode);
//! ```
//!
//! The checks: Noise handshake with authenticated ids; a broadcast across
//! five nodes; request/response; a killed peer reported down within the
//! liveness timing; the killed peer, restarted with the same identity,
//! reconnected by redials; `ConnectAny` with dead addresses and one live
//! one; an 8 MiB message; a frame over the cap closing only its own
//! connection; a peer that stops reading not growing the sender's memory
//! (its connection is closed at the backlog cap, reported as
//! [`BACKLOG_OVERFLOW`]); graceful shutdown seen by peers with its reason;
//! the peer list's rtt and suspicion; and the driver core's rules as each
//! adapter applies them: the address announced in `Hello` (the bound one
//! with its real port; none for `0.0.0.0`; refused for a ring member) and
//! the configuration checks (a backlog that cannot hold a frame, an event
//! capacity out of range, an undiallable `listen_addrs`).

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringmesh::wire::{
    Capabilities, GoodbyeReason, Hello, LENGTH_PREFIX_LEN, Message, PREAMBLE_LEN, PROTOCOL_VERSION,
    Preamble, decode_body, encode_frame,
};
use ringmesh::{
    Accepted, ChordConfig, CloseReason, Command, CommandError, Config, DhtConfig, Event, Identity,
    LivenessEvent, MeshCommand, MeshEvent, MessagingCommand, MessagingError, MessagingEvent,
    NodeId, PeersCommand, PeersEvent, ProtocolError, Security, SessionConfig,
};
pub use ringmesh_driver::{AdapterConfig, AdapterConfigError, PeerInfo};
use ringmesh_driver::{BACKLOG_OVERFLOW, MAX_EVENT_CAPACITY};

/// How long any one expected event may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A node run by the adapter under test.
pub trait TestNode: Sized {
    /// Starts a node as the adapter's own start function does with
    /// `config` (its error included), and gets it running.
    fn try_start(config: AdapterConfig) -> io::Result<Self>;
    /// Starts a node listening on `listen` (port 0: any free port), with
    /// the default caps.
    fn start(config: Config, secret: [u8; 32], seed: u64, listen: SocketAddr) -> Self {
        let identity = Identity::from_secret_bytes(secret);
        Self::try_start(AdapterConfig::new(listen, config, identity, seed)).expect("adapter starts")
    }
    /// The peers it lists.
    fn peers(&self) -> Vec<PeerInfo>;
    /// Its id.
    fn id(&self) -> NodeId;
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// Runs a command and returns its answer.
    fn command(&self, command: impl Into<Command>) -> Result<Accepted, CommandError>;
    /// The next event, waiting up to `timeout`.
    fn next_event(&self, timeout: Duration) -> Option<Event>;
    /// Stops abruptly, as if the process died: sockets close, no goodbye.
    fn kill(self);
    /// Shuts down gracefully and waits until it has stopped.
    fn shutdown(self);
}

/// The config the suite runs nodes with: LAN timings, Noise.
pub fn config() -> Config {
    Config::lan()
}

fn secret(i: u8) -> [u8; 32] {
    let mut s = [0x5a; 32];
    s[0] = i;
    s
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Waits for an event `f` picks, failing the test after [`EVENT_TIMEOUT`].
pub fn wait_for<N: TestNode, T>(node: &N, what: &str, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.next_event(left) {
            Some(event) => {
                if let Some(t) = f(&event) {
                    return t;
                }
            }
            None => panic!("timed out waiting for {what}"),
        }
    }
}

fn wait_up<N: TestNode>(node: &N, peer: NodeId) {
    wait_for(node, "PeerUp", |e| {
        matches!(e, Event::Peers(PeersEvent::Up { peer: p, .. }) if *p == peer).then_some(())
    });
}

fn connect<N: TestNode>(from: &N, to: &N) {
    from.command(PeersCommand::Connect {
        addr: to.addr(),
        peer: Some(to.id()),
    })
    .expect("dial accepted");
}

/// Two nodes connect over Noise; each learns the other's proven id; a dial
/// that demands the wrong id is refused with `IdentityMismatch`.
pub fn noise_handshake_authenticates_ids<N: TestNode>() {
    let a = N::start(config(), secret(1), 1, any_port());
    let b = N::start(config(), secret(2), 2, any_port());
    assert_eq!(b.id(), Identity::from_secret_bytes(secret(2)).node_id());
    connect(&a, &b);
    wait_up(&a, b.id());
    wait_up(&b, a.id());
    let c = N::start(config(), secret(3), 3, any_port());
    a.command(PeersCommand::Connect {
        addr: c.addr(),
        peer: Some(b.id()),
    })
    .expect("dial accepted");
    let reason = wait_for(&a, "the mismatched dial to close", |e| match e {
        Event::Peers(PeersEvent::Closed {
            reason: r @ CloseReason::Protocol(ProtocolError::IdentityMismatch { .. }),
            ..
        }) => Some(r.clone()),
        _ => None,
    });
    assert!(matches!(
        reason,
        CloseReason::Protocol(ProtocolError::IdentityMismatch { expected, actual })
            if expected == b.id() && actual == c.id()
    ));
    for n in [a, b, c] {
        n.shutdown();
    }
}

/// A broadcast from one end of a five-node line reaches the four others
/// exactly once.
pub fn broadcast_reaches_five_nodes<N: TestNode>() {
    let nodes: Vec<N> = (0..5)
        .map(|i| N::start(config(), secret(10 + i), u64::from(i), any_port()))
        .collect();
    for w in nodes.windows(2) {
        connect(&w[0], &w[1]);
        wait_up(&w[1], w[0].id());
    }
    let Ok(Accepted::Broadcast { seq }) = nodes[0].command(MeshCommand::Broadcast {
        payload: Bytes::from_static(b"to everyone"),
    }) else {
        panic!("broadcast refused")
    };
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let (payload, hops) = wait_for(node, "the broadcast", |e| match e {
            Event::Mesh(MeshEvent::Broadcast {
                origin,
                seq: s,
                payload,
                hops,
            }) if *origin == nodes[0].id() && *s == seq => Some((payload.clone(), *hops)),
            _ => None,
        });
        assert_eq!(payload, Bytes::from_static(b"to everyone"));
        assert_eq!(usize::from(hops), i, "node {i} is {i} hops down the line");
    }
    for n in nodes {
        n.shutdown();
    }
}

/// A request gets the response its peer sends.
pub fn request_gets_its_response<N: TestNode>() {
    let a = N::start(config(), secret(20), 20, any_port());
    let b = N::start(config(), secret(21), 21, any_port());
    connect(&a, &b);
    wait_up(&a, b.id());
    let Ok(Accepted::Request(id)) = a.command(MessagingCommand::Request {
        to: b.id(),
        payload: Bytes::from_static(b"question"),
        timeout: ringmesh::Duration::from_secs(10),
    }) else {
        panic!("request refused")
    };
    let (from, rid, payload) = wait_for(&b, "the request", |e| match e {
        Event::Messaging(MessagingEvent::Request { from, id, payload }) => {
            Some((*from, *id, payload.clone()))
        }
        _ => None,
    });
    assert_eq!((from, payload), (a.id(), Bytes::from_static(b"question")));
    b.command(MessagingCommand::Respond {
        to: from,
        id: rid,
        payload: Bytes::from_static(b"answer"),
    })
    .expect("respond");
    let answer = wait_for(&a, "the response", |e| match e {
        Event::Messaging(MessagingEvent::Response { id: i, payload, .. }) if *i == id => {
            Some(payload.clone())
        }
        _ => None,
    });
    assert_eq!(answer, Bytes::from_static(b"answer"));
    a.shutdown();
    b.shutdown();
}

/// A killed peer is reported down within the liveness timing; restarted
/// with the same identity at the same address, it is reconnected by the
/// survivor's redials.
pub fn killed_peer_goes_down_and_is_redialled_after_restart<N: TestNode>() {
    let a = N::start(config(), secret(30), 30, any_port());
    let b = N::start(config(), secret(31), 31, any_port());
    let (b_id, b_addr) = (b.id(), b.addr());
    connect(&a, &b);
    wait_up(&a, b_id);
    let killed_at = Instant::now();
    b.kill();
    wait_for(&a, "PeerDown", |e| {
        matches!(e, Event::Peers(PeersEvent::Down { peer, .. }) if *peer == b_id).then_some(())
    });
    let bound = Duration::from_micros(config().detection_time().as_micros());
    assert!(
        killed_at.elapsed() <= bound,
        "down after {:?}",
        killed_at.elapsed()
    );
    let b = N::start(config(), secret(31), 32, b_addr);
    assert_eq!(b.id(), b_id);
    wait_up(&a, b_id);
    a.shutdown();
    b.shutdown();
}

/// `ConnectAny` with dead addresses and one live one connects to the live
/// one.
pub fn connect_any_finds_the_live_address<N: TestNode>() {
    let a = N::start(config(), secret(40), 40, any_port());
    let b = N::start(config(), secret(41), 41, any_port());
    let dead = || {
        // A port nobody listens on: bind, note it, close.
        let l = TcpListener::bind(any_port()).expect("bind");
        l.local_addr().expect("addr")
    };
    let addrs = vec![dead(), dead(), b.addr(), dead()];
    let accepted = a
        .command(PeersCommand::ConnectAny {
            addrs,
            peer: Some(b.id()),
        })
        .expect("dials");
    assert!(matches!(accepted, Accepted::Racing { count: 4, .. }));
    wait_up(&a, b.id());
    a.shutdown();
    b.shutdown();
}

/// An 8 MiB message arrives intact.
pub fn eight_mib_message_arrives_intact<N: TestNode>() {
    let a = N::start(config(), secret(50), 50, any_port());
    let b = N::start(config(), secret(51), 51, any_port());
    connect(&a, &b);
    wait_up(&a, b.id());
    let payload: Bytes = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect::<Vec<u8>>()
        .into();
    a.command(MessagingCommand::Send {
        to: b.id(),
        payload: payload.clone(),
    })
    .expect("sent");
    let got = wait_for(&b, "the 8 MiB message", |e| match e {
        Event::Messaging(MessagingEvent::Direct { payload, .. }) => Some(payload.clone()),
        _ => None,
    });
    assert!(got == payload, "payload differs");
    a.shutdown();
    b.shutdown();
}

/// Opens a raw TCP connection to `node` and completes a plaintext
/// handshake by hand, as node `secret`; returns the stream.
fn raw_plaintext_peer(addr: SocketAddr, secret: [u8; 32]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut out = BytesMut::new();
    out.extend_from_slice(&Preamble::new(PROTOCOL_VERSION, Security::Plaintext).to_bytes());
    let hello = Hello {
        version: PROTOCOL_VERSION,
        identity: Identity::from_secret_bytes(secret).public_key(),
        run_nonce: 1,
        capabilities: Capabilities::NONE,
        max_frame_len: ringmesh::wire::DEFAULT_MAX_FRAME_LEN,
        listen_addrs: Default::default(),
    };
    encode_frame(&Message::Hello(hello), None, &mut out);
    stream.write_all(&out).expect("write hello");
    stream
}

/// A frame over the cap closes that connection and no other.
pub fn oversized_frame_closes_only_its_connection<N: TestNode>() {
    let plain = || Config {
        security: Security::Plaintext,
        session: SessionConfig {
            max_frame_len: 64 * 1024,
            ..config().session
        },
        ..config()
    };
    let a = N::start(plain(), secret(60), 60, any_port());
    let b = N::start(plain(), secret(61), 61, any_port());
    connect(&b, &a);
    wait_up(&a, b.id());
    let rogue_secret = secret(62);
    let rogue_id = Identity::from_secret_bytes(rogue_secret).node_id();
    let mut rogue = raw_plaintext_peer(a.addr(), rogue_secret);
    wait_up(&a, rogue_id);
    // A frame header claiming 1 MiB, over the 64 KiB cap.
    rogue
        .write_all(&(1024 * 1024u32).to_be_bytes())
        .expect("write header");
    let reason = wait_for(&a, "the rogue's connection to close", |e| match e {
        Event::Peers(PeersEvent::Closed {
            peer: Some(p),
            reason,
            ..
        }) if *p == rogue_id => Some(reason.clone()),
        _ => None,
    });
    assert!(matches!(
        reason,
        CloseReason::Protocol(ProtocolError::FrameTooLarge { .. })
    ));
    // The other peer is unaffected.
    a.command(MessagingCommand::Send {
        to: b.id(),
        payload: Bytes::from_static(b"still here"),
    })
    .expect("b still connected");
    wait_for(&b, "a message after the rogue left", |e| {
        matches!(e, Event::Messaging(MessagingEvent::Direct { payload, .. }) if payload == "still here").then_some(())
    });
    a.shutdown();
    b.shutdown();
}

/// A peer that stops reading gets its connection closed at the sender's
/// backlog cap; the sender keeps working.
pub fn a_peer_that_stops_reading_is_cut_off<N: TestNode>() {
    let plain = Config {
        security: Security::Plaintext,
        session: SessionConfig {
            compression: false,
            ..config().session
        },
        ..config()
    };
    let a = N::start(plain, secret(70), 70, any_port());
    let sloth_secret = secret(71);
    let sloth_id = Identity::from_secret_bytes(sloth_secret).node_id();
    let mut sloth = raw_plaintext_peer(a.addr(), sloth_secret);
    wait_up(&a, sloth_id);
    // Read only the node's opening, then never again.
    let mut opening = [0u8; 64];
    let _ = sloth.read(&mut opening);
    let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
    let mut sent = 0usize;
    let mut down = None;
    // Far more than any sane backlog cap plus socket buffers.
    while sent < 2 * 1024 * 1024 * 1024 {
        match a.command(MessagingCommand::Send {
            to: sloth_id,
            payload: chunk.clone(),
        }) {
            Ok(_) => sent += chunk.len(),
            Err(CommandError::Messaging(MessagingError::NotConnected(_))) => break,
            Err(CommandError::Messaging(MessagingError::NoRoute(_))) => break,
            Err(other) => panic!("unexpected {other:?}"),
        }
        while let Some(event) = a.next_event(Duration::ZERO) {
            if let Event::Peers(PeersEvent::Down { peer, reason }) = event
                && peer == sloth_id
            {
                down = Some(reason);
            }
        }
        if down.is_some() {
            break;
        }
    }
    let reason = down.unwrap_or_else(|| {
        wait_for(&a, "the sloth to be cut off", |e| match e {
            Event::Peers(PeersEvent::Down { peer, reason }) if *peer == sloth_id => {
                Some(reason.clone())
            }
            _ => None,
        })
    });
    assert_eq!(
        reason,
        CloseReason::Transport(BACKLOG_OVERFLOW),
        "cut off by the transport for its backlog"
    );
    assert!(sent < 1024 * 1024 * 1024, "cut off after {sent} bytes");
    drop(sloth);
    a.shutdown();
}

/// Graceful shutdown: peers see the connection close with
/// `Goodbye(Shutdown)`.
pub fn graceful_shutdown_says_why<N: TestNode>() {
    let a = N::start(config(), secret(80), 80, any_port());
    let b = N::start(config(), secret(81), 81, any_port());
    connect(&a, &b);
    wait_up(&a, b.id());
    // Both ends established: a goodbye needs a session to travel in.
    wait_up(&b, a.id());
    let b_id = b.id();
    b.shutdown();
    let reason = wait_for(&a, "PeerDown", |e| match e {
        Event::Peers(PeersEvent::Down { peer, reason }) if *peer == b_id => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason, CloseReason::Goodbye(GoodbyeReason::Shutdown));
    a.shutdown();
}

/// Reads what a node says first on a plaintext connection: its preamble,
/// then its `Hello` frame.
fn read_hello(stream: &mut TcpStream) -> Hello {
    stream
        .set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("read timeout");
    let mut preamble = [0u8; PREAMBLE_LEN];
    stream
        .read_exact(&mut preamble)
        .expect("the node's preamble");
    let mut header = [0u8; LENGTH_PREFIX_LEN];
    stream
        .read_exact(&mut header)
        .expect("the Hello's frame header");
    let len = u32::from_be_bytes(header);
    assert!(len <= 64 * 1024, "a Hello of {len} bytes");
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).expect("the Hello frame");
    match decode_body(body.into(), false, len) {
        Ok((Message::Hello(hello), _)) => hello,
        other => panic!("expected a Hello, got {other:?}"),
    }
}

fn plaintext() -> Config {
    Config {
        security: Security::Plaintext,
        ..config()
    }
}

/// Bound to port 0 of 127.0.0.1, a node announces the address the system
/// gave it, real port included.
pub fn announces_its_bound_address_with_the_real_port<N: TestNode>() {
    let a = N::start(plaintext(), secret(90), 90, any_port());
    assert_ne!(a.addr().port(), 0);
    let mut peer = raw_plaintext_peer(a.addr(), secret(91));
    let hello = read_hello(&mut peer);
    assert_eq!(&hello.listen_addrs[..], &[a.addr()]);
    drop(peer);
    a.shutdown();
}

/// Bound to `0.0.0.0`, a node never announces `0.0.0.0` (no peer can
/// dial an unspecified address): it announces this machine's interface
/// addresses with its real port (the driver's listen-address policy), a
/// peer reaches it at each of them, and a ring member bound so starts.
/// Configured `listen_addrs` are announced as given.
pub fn announces_interface_addresses_never_unspecified<N: TestNode>() {
    let everywhere = SocketAddr::from(([0, 0, 0, 0], 0));
    let a = N::start(plaintext(), secret(92), 92, everywhere);
    let port = a.addr().port();
    assert_ne!(port, 0);
    let expected = ringmesh_driver::pick_interface_addrs(
        SocketAddr::from(([0, 0, 0, 0], port)),
        &ringmesh_driver::interface_ips(),
    );
    assert!(!expected.is_empty(), "every machine has at least lo");
    let mut peer = raw_plaintext_peer(SocketAddr::from(([127, 0, 0, 1], port)), secret(93));
    let announced = read_hello(&mut peer).listen_addrs;
    assert_eq!(&announced[..], &expected[..]);
    assert!(
        announced
            .iter()
            .all(|addr| !addr.ip().is_unspecified() && addr.port() == port),
        "{announced:?}"
    );
    drop(peer);
    // What it announces is where peers reach it.
    for &addr in &announced {
        let mut peer = raw_plaintext_peer(addr, secret(93));
        assert_eq!(
            read_hello(&mut peer).identity,
            Identity::from_secret_bytes(secret(92)).public_key()
        );
    }
    a.shutdown();

    let public = SocketAddr::from(([192, 0, 2, 7], 4000));
    let mut told = plaintext();
    told.listen_addrs.push(public);
    let b = N::start(told, secret(94), 94, everywhere);
    let local = SocketAddr::from(([127, 0, 0, 1], b.addr().port()));
    let mut peer = raw_plaintext_peer(local, secret(95));
    assert_eq!(&read_hello(&mut peer).listen_addrs[..], &[public]);
    drop(peer);
    b.shutdown();

    // A ring member must be diallable: bound to 0.0.0.0 it announces the
    // interface addresses too (it is refused only on a machine without any,
    // `AdapterConfigError::NothingToAnnounce`, which the driver's tests play).
    let member = Config {
        chord: Some(ChordConfig::default()),
        dht: Some(DhtConfig::default()),
        ..plaintext()
    };
    let c = N::start(member, secret(96), 96, everywhere);
    let mut peer = raw_plaintext_peer(
        SocketAddr::from(([127, 0, 0, 1], c.addr().port())),
        secret(97),
    );
    let announced = read_hello(&mut peer).listen_addrs;
    assert!(
        !announced.is_empty() && announced.iter().all(|addr| !addr.ip().is_unspecified()),
        "{announced:?}"
    );
    drop(peer);
    c.shutdown();
}

/// The configuration checks of the driver core, as the adapter's start
/// applies them: each refusal is `InvalidInput` carrying the
/// [`AdapterConfigError`], and the boundary values start.
pub fn refuses_configurations_it_cannot_honour<N: TestNode>() {
    let base = |seed: u8| {
        AdapterConfig::new(
            any_port(),
            Config {
                session: SessionConfig {
                    max_frame_len: 64 * 1024,
                    ..config().session
                },
                ..config()
            },
            Identity::from_secret_bytes(secret(seed)),
            u64::from(seed),
        )
    };
    // A backlog one byte short of a whole frame with its header.
    let mut c = base(100);
    c.max_backlog_bytes = 64 * 1024 + LENGTH_PREFIX_LEN - 1;
    assert_eq!(
        refusal::<N>(c),
        AdapterConfigError::BacklogBelowFrame {
            value: 64 * 1024 + LENGTH_PREFIX_LEN - 1,
            max_frame_len: 64 * 1024,
            min: 64 * 1024 + LENGTH_PREFIX_LEN,
        }
    );
    // An event buffer that could hold nothing, or would be gigabytes.
    for value in [0, MAX_EVENT_CAPACITY + 1] {
        let mut c = base(101);
        c.event_capacity = value;
        assert_eq!(
            refusal::<N>(c),
            AdapterConfigError::EventCapacity {
                value,
                max: MAX_EVENT_CAPACITY
            }
        );
    }
    // An address no peer can dial, announced on purpose.
    for bad in [
        SocketAddr::from(([0, 0, 0, 0], 4000)),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    ] {
        let mut c = base(102);
        c.node.listen_addrs.push(bad);
        assert_eq!(
            refusal::<N>(c),
            AdapterConfigError::UndialableListenAddr { addr: bad }
        );
    }
    // The smallest backlog allowed runs a node that works.
    let mut c = base(103);
    c.max_backlog_bytes = 64 * 1024 + LENGTH_PREFIX_LEN;
    let a = N::try_start(c).expect("the smallest backlog starts");
    let b = N::start(config(), secret(104), 104, any_port());
    connect(&a, &b);
    wait_up(&a, b.id());
    a.command(MessagingCommand::Send {
        to: b.id(),
        payload: Bytes::from(vec![5u8; 1024]),
    })
    .expect("sent");
    wait_for(&b, "a message from the smallest backlog", |e| {
        matches!(e, Event::Messaging(MessagingEvent::Direct { from, payload }) if *from == a.id() && payload.len() == 1024)
            .then_some(())
    });
    a.shutdown();
    b.shutdown();
    // And the smallest event buffer.
    let mut c = base(105);
    c.event_capacity = 1;
    N::try_start(c).expect("one event slot starts").shutdown();
}

/// What `try_start` refused `config` with.
fn refusal<N: TestNode>(config: AdapterConfig) -> AdapterConfigError {
    let Err(error) = N::try_start(config) else {
        panic!("started with a configuration it should refuse")
    };
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<AdapterConfigError>())
        .unwrap_or_else(|| panic!("not an AdapterConfigError: {error}"))
        .clone()
}

/// The peer list: a peer that answers pings has an rtt; one that stops
/// answering is listed as suspect once it missed a ping (and has none).
pub fn peers_show_rtt_and_suspicion<N: TestNode>() {
    let a = N::start(plaintext(), secret(110), 110, any_port());
    let b = N::start(plaintext(), secret(111), 111, any_port());
    connect(&b, &a);
    wait_up(&a, b.id());
    // Up after b, so pinged after b: b's first pong (on loopback) is back
    // long before this peer's first ping times out.
    let silent_secret = secret(112);
    let silent_id = Identity::from_secret_bytes(silent_secret).node_id();
    let silent = raw_plaintext_peer(a.addr(), silent_secret);
    wait_up(&a, silent_id);
    wait_for(&a, "the silent peer's suspicion", |e| {
        matches!(e, Event::Liveness(LivenessEvent::Suspect { peer }) if *peer == silent_id)
            .then_some(())
    });
    let peers = a.peers();
    let ids: Vec<NodeId> = peers.iter().map(|p| p.id).collect();
    let mut expected = vec![b.id(), silent_id];
    expected.sort();
    assert_eq!(ids, expected, "connected peers in id order");
    let of = |id: NodeId| peers.iter().find(|p| p.id == id).expect("listed");
    assert!(of(silent_id).suspect, "{peers:?}");
    assert_eq!(of(silent_id).rtt, None, "{peers:?}");
    assert!(!of(b.id()).suspect, "{peers:?}");
    let rtt = of(b.id()).rtt.expect("b answered a ping");
    assert!(
        rtt < ringmesh::Duration::from_millis(500),
        "{rtt:?} on loopback"
    );
    drop(silent);
    a.shutdown();
    b.shutdown();
}

/// Writes one `#[test]` per conformance check for `$node: TestNode`.
#[macro_export]
macro_rules! conformance_suite {
    ($node:ty) => {
        $crate::conformance_suite!(@tests $node;
            noise_handshake_authenticates_ids,
            broadcast_reaches_five_nodes,
            request_gets_its_response,
            killed_peer_goes_down_and_is_redialled_after_restart,
            connect_any_finds_the_live_address,
            eight_mib_message_arrives_intact,
            oversized_frame_closes_only_its_connection,
            a_peer_that_stops_reading_is_cut_off,
            graceful_shutdown_says_why,
            peers_show_rtt_and_suspicion,
            announces_its_bound_address_with_the_real_port,
            announces_interface_addresses_never_unspecified,
            refuses_configurations_it_cannot_honour,
        );
    };
    (@tests $node:ty; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::$check::<$node>();
            }
        )*
    };
}
