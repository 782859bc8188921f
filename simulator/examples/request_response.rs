//! A request/response service on the simulator: node 0 is a server that
//! answers each request with a digest of it; every other node is a client
//! that sends a few requests at random times and checks every answer.
//!
//! ```text
//! cargo run --release -p ringmesh-sim --example request_response -- [NODES] [SEED]
//! ```
//!
//! Ends with a check that could fail: every request answered, every answer
//! right, the server's count equal to the clients' (exit status 1 and the
//! reason otherwise).

use bytes::Bytes;
use rand_core::SeedableRng;
use ringmesh::{
    Config, Duration, Event, MessagingCommand, MessagingEvent, NodeId, PeersCommand, Security,
};
use ringmesh_sim::topology::{self, Bootstrap, Organic};
use ringmesh_sim::{App, AppCx, NodeIdx, Sim, SimConfig, addr_of};

/// Requests each client sends.
const REQUESTS: u32 = 3;

/// What the server answers to `request`.
fn answer(request: &[u8]) -> Bytes {
    Bytes::copy_from_slice(&blake3::hash(request).as_bytes()[..16])
}

/// Answers every request.
#[derive(Default)]
struct Server {
    answered: u64,
}

impl App for Server {
    fn on_event(&mut self, cx: &mut AppCx<'_>, event: &Event) {
        if let Event::Messaging(MessagingEvent::Request { from, id, payload }) = event {
            let respond = MessagingCommand::Respond {
                to: *from,
                id: *id,
                payload: answer(payload),
            };
            if cx.command(respond).is_ok() {
                self.answered += 1;
            }
        }
    }
}

/// Sends [`REQUESTS`] requests, one at a time, at random moments, and
/// checks the answers.
struct Client {
    server: NodeId,
    sent: u32,
    /// The request under way and its expected answer.
    pending: Option<(ringmesh::RequestId, Bytes)>,
    right: u32,
    wrong: u32,
    failed: u32,
}

impl Client {
    fn next_in(&mut self, cx: &mut AppCx<'_>) {
        let delay = cx.random_in(10..=500);
        cx.after(Duration::from_millis(delay), 0);
    }
}

impl App for Client {
    fn on_start(&mut self, cx: &mut AppCx<'_>) {
        self.next_in(cx);
    }

    fn on_timer(&mut self, cx: &mut AppCx<'_>, _token: u64) {
        if !cx.node().is_connected(self.server) {
            // Like a real client configured with the server's address:
            // (re)connect, and try again shortly.
            let connect = PeersCommand::Connect {
                addr: addr_of(0),
                peer: Some(self.server),
            };
            let _ = cx.command(connect);
            cx.after(Duration::from_millis(200), 0);
            return;
        }
        let payload = Bytes::from(format!("client {} request {}", cx.index(), self.sent));
        let request = MessagingCommand::Request {
            to: self.server,
            payload: payload.clone(),
            timeout: Duration::from_secs(5),
        };
        self.sent += 1;
        match cx.command(request) {
            Ok(ringmesh::Accepted::Request(id)) => self.pending = Some((id, answer(&payload))),
            _ => self.failed += 1,
        }
    }

    fn on_event(&mut self, cx: &mut AppCx<'_>, event: &Event) {
        let done = match event {
            Event::Messaging(MessagingEvent::Response { id, payload, .. }) => {
                match self.pending.take() {
                    Some((want_id, want)) if want_id == *id && want == *payload => self.right += 1,
                    _ => self.wrong += 1,
                }
                true
            }
            Event::Messaging(MessagingEvent::RequestFailed { .. }) => {
                self.pending = None;
                self.failed += 1;
                true
            }
            _ => false,
        };
        if done && self.sent < REQUESTS {
            self.next_in(cx);
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Clients.
    pub(crate) clients: u32,
    /// Right answers received.
    pub(crate) right: u64,
    /// Requests the server answered.
    pub(crate) answered: u64,
    /// Virtual time of the run, ms.
    pub(crate) virtual_ms: u64,
    /// The trace hash.
    pub(crate) trace: String,
}

/// Runs the service with `n` nodes (one server) from `seed`.
pub(crate) fn run(n: u32, seed: u64) -> Result<Summary, String> {
    if n < 2 {
        return Err("need a server and at least one client".into());
    }
    let mut sim = Sim::new(SimConfig {
        seed,
        // The server is an application: the engine must not answer too.
        echo_requests: false,
        ..SimConfig::default()
    });
    // Every node joins through the server (node 0) and keeps that one
    // peer; the server takes every client in.
    let mut config = Config {
        security: Security::Plaintext,
        ..Config::lan()
    };
    config.peers.max_connections = n as usize + 8;
    config.peers.max_inbound = n as usize;
    let admission = &mut config.peers.admission;
    admission.max_inbound_per_group = n as usize;
    // All clients share the server's /24 address group: lift the per-group
    // handshake rate too.
    admission.group_handshake_rate = admission.handshake_rate;
    admission.group_handshake_burst = admission.handshake_burst;
    let organic = Organic {
        target_peers: 1,
        join_interval: Duration::from_millis(5),
        bootstrap: Bootstrap::First(1),
        settle: Duration::from_secs(1),
    };
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(blake3::derive_key(
        "request_response example topology",
        &seed.to_le_bytes(),
    ));
    topology::organic(&mut sim, &mut rng, n, &organic, &config, |_, _, _| {})
        .map_err(|e| e.to_string())?;
    let server = sim.id(0);
    sim.set_apps(move |i: NodeIdx| -> Option<Box<dyn App>> {
        if i == 0 {
            Some(Box::new(Server::default()))
        } else {
            Some(Box::new(Client {
                server,
                sent: 0,
                pending: None,
                right: 0,
                wrong: 0,
                failed: 0,
            }))
        }
    });
    sim.run_for(Duration::from_secs(10));

    let (mut right, mut wrong, mut failed, mut unsent) = (0u64, 0u64, 0u64, 0u64);
    for i in 1..n {
        let client = sim
            .app::<Client>(i)
            .ok_or(format!("node {i} lost its client"))?;
        right += u64::from(client.right);
        wrong += u64::from(client.wrong);
        failed += u64::from(client.failed);
        unsent += u64::from(REQUESTS - client.sent) + u64::from(client.pending.is_some());
    }
    let answered = sim.app::<Server>(0).ok_or("the server is gone")?.answered;
    let want = u64::from(n - 1) * u64::from(REQUESTS);
    if right != want || wrong + failed + unsent > 0 || answered != want {
        return Err(format!(
            "{right} of {want} right answers ({wrong} wrong, {failed} failed, {unsent} not done); \
             the server answered {answered}"
        ));
    }
    Ok(Summary {
        clients: n - 1,
        right,
        answered,
        virtual_ms: sim.now().as_micros() / 1000,
        trace: sim.trace_hash(),
    })
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() {
    let mut args = std::env::args().skip(1);
    let n = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let wall = std::time::Instant::now();
    match run(n, seed) {
        Ok(s) => println!(
            "request_response: {} clients, {} right answers, server answered {}; \
             {} ms virtual in {:.2} s wall; trace {}",
            s.clients,
            s.right,
            s.answered,
            s.virtual_ms,
            wall.elapsed().as_secs_f64(),
            s.trace
        ),
        Err(why) => {
            eprintln!("request_response FAILED (nodes {n}, seed {seed}): {why}");
            std::process::exit(1);
        }
    }
}
