//! Unit tests of the node internals.

use core::net::SocketAddr;

use super::*;
use crate::{ConnId, Direction, PeersConfig, TransportError};

#[test]
fn cancelled_handshake_deadlines_do_not_pile_up_under_connection_churn() {
    let config = Config {
        peers: PeersConfig {
            max_connections: 8,
            ..Config::plaintext().peers
        },
        ..Config::plaintext()
    };
    // Live deadlines: one per connection plus the maintenance round; the
    // queue may hold twice that plus the sweep floor.
    let max = 2 * (config.peers.max_connections + 1) + 64;
    let identity = Identity::from_secret_bytes([4; 32]);
    let mut node = Node::new(config, identity, 1, Instant::ZERO).expect("valid");
    let remote: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    // One connection stays half-open: its live deadline is the earliest,
    // so the dead ones behind it cannot be popped from the top.
    node.handle_input(
        Instant::ZERO,
        Input::Connected {
            conn: ConnId::inbound(u64::MAX >> 1),
            remote,
            direction: Direction::Inbound,
        },
    );
    for n in 0..10_000u64 {
        let now = Instant::from_micros(n);
        let conn = ConnId::inbound(n);
        node.handle_input(
            now,
            Input::Connected {
                conn,
                remote,
                direction: Direction::Inbound,
            },
        );
        node.handle_input(
            now,
            Input::Closed {
                conn,
                reason: TransportError::Reset,
            },
        );
        while node.poll_output().is_some() {}
        assert!(
            node.deadline_count() <= max,
            "{} deadlines at {n}",
            node.deadline_count()
        );
    }
    assert_eq!(node.connection_count(), 1);
}

/// How the driver in `outputs_into_the_drivers_queue_match_poll_output`
/// takes a call's outputs.
#[derive(Debug, Clone, Copy)]
enum Take {
    /// `handle_input`/`command`, then `poll_output` until `None`.
    Poll,
    /// `handle_input_into`/`command_into` the driver's queue.
    Into,
    /// `handle_input`/`command`, then `drain_outputs` into the queue.
    Drain,
}

/// A step of the scripted run.
#[derive(Debug, Clone)]
enum Step {
    Send { from: usize, to: usize, len: usize },
    Request { from: usize, to: usize },
    Advance { millis: u64 },
    Close { from: usize, to: usize },
}

/// Three plaintext nodes joined in a triangle by an in-memory transport,
/// driven through `script`; every call's outputs taken as `takes` says
/// (cycled). Returns every output, by node, in the order the driver took
/// them. Requests are answered as they arrive (a `command` made while the
/// outputs of another call are carried out).
fn scripted_run(script: &[Step], takes: &[Take]) -> Vec<(usize, Output)> {
    use bytes::Bytes;
    use std::collections::HashMap;

    use crate::{Event, MessagingCommand, MessagingEvent, PeersCommand};

    const NODES: usize = 3;
    let addr = |i: usize| -> SocketAddr { SocketAddr::from(([10, 0, 0, i as u8 + 1], 4000)) };
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            let identity = Identity::from_secret_bytes([i as u8 + 1; 32]);
            Node::new(Config::plaintext(), identity, i as u64, Instant::ZERO).expect("valid")
        })
        .collect();
    let ids: Vec<NodeId> = nodes.iter().map(Node::node_id).collect();
    let mut now = Instant::ZERO;
    let mut log = Vec::new();
    let mut take = takes.iter().copied().cycle();
    let mut out = VecDeque::new();
    // (node, conn) -> (peer node, peer's conn)
    let mut links = HashMap::new();
    let mut next_inbound = 0;
    // Inputs and commands waiting for their node, in order.
    enum Call {
        Input(Input),
        Command(Command),
    }
    let mut calls: VecDeque<(usize, Call)> = VecDeque::new();
    type Links = HashMap<(usize, ConnId), (usize, ConnId)>;
    let mut run = |calls: &mut VecDeque<(usize, Call)>,
                   links: &mut Links,
                   nodes: &mut Vec<Node>,
                   out: &mut VecDeque<Output>,
                   log: &mut Vec<(usize, Output)>,
                   now: Instant| {
        while let Some((i, call)) = calls.pop_front() {
            let how = take.next().unwrap_or(Take::Poll);
            let node = &mut nodes[i];
            match (how, call) {
                (Take::Into, Call::Input(input)) => node.handle_input_into(now, input, out),
                (Take::Into, Call::Command(command)) => {
                    let _ = node.command_into(now, command, out);
                }
                (_, Call::Input(input)) => node.handle_input(now, input),
                (_, Call::Command(command)) => {
                    let _ = node.command(now, command);
                }
            }
            match how {
                Take::Poll => out.extend(core::iter::from_fn(|| node.poll_output())),
                Take::Drain => node.drain_outputs(out),
                Take::Into => {}
            }
            assert!(node.poll_output().is_none(), "an output left behind");
            for output in out.drain(..) {
                match &output {
                    Output::Dial { conn, addr: to }
                    | Output::DialFromListenPort { conn, addr: to } => {
                        let j = (0..NODES)
                            .find(|&j| addr(j) == *to)
                            .expect("a node's address");
                        let theirs = ConnId::inbound(next_inbound);
                        next_inbound += 1;
                        links.insert((i, *conn), (j, theirs));
                        links.insert((j, theirs), (i, *conn));
                        let connected = |conn, remote, direction| Input::Connected {
                            conn,
                            remote,
                            direction,
                        };
                        calls.push_back((
                            i,
                            Call::Input(connected(*conn, *to, Direction::Outbound)),
                        ));
                        calls.push_back((
                            j,
                            Call::Input(connected(theirs, addr(i), Direction::Inbound)),
                        ));
                    }
                    Output::Send { conn, bytes } => {
                        if let Some(&(j, theirs)) = links.get(&(i, *conn)) {
                            let received = Input::Received {
                                conn: theirs,
                                bytes: bytes.clone(),
                            };
                            calls.push_back((j, Call::Input(received)));
                        }
                    }
                    Output::Close { conn } => {
                        if let Some((j, theirs)) = links.remove(&(i, *conn)) {
                            links.remove(&(j, theirs));
                            let closed = Input::Closed {
                                conn: theirs,
                                reason: TransportError::Eof,
                            };
                            calls.push_back((j, Call::Input(closed)));
                        }
                    }
                    Output::Event(Event::Messaging(MessagingEvent::Request {
                        from,
                        id,
                        payload,
                    })) => {
                        let respond = MessagingCommand::Respond {
                            to: *from,
                            id: *id,
                            payload: payload.clone(),
                        };
                        calls.push_back((i, Call::Command(respond.into())));
                    }
                    Output::Event(_) => {}
                }
                log.push((i, output));
            }
        }
    };
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        let connect = PeersCommand::Connect {
            addr: addr(b),
            peer: Some(ids[b]),
        };
        calls.push_back((a, Call::Command(connect.into())));
    }
    run(&mut calls, &mut links, &mut nodes, &mut out, &mut log, now);
    for step in script {
        match *step {
            Step::Send { from, to, len } => {
                let send = MessagingCommand::Send {
                    to: ids[to],
                    payload: Bytes::from(vec![from as u8; len]),
                };
                calls.push_back((from, Call::Command(send.into())));
            }
            Step::Request { from, to } => {
                let request = MessagingCommand::Request {
                    to: ids[to],
                    payload: Bytes::from_static(b"ping"),
                    timeout: crate::Duration::from_secs(5),
                };
                calls.push_back((from, Call::Command(request.into())));
            }
            Step::Advance { millis } => {
                now += crate::Duration::from_millis(millis);
                for (i, node) in nodes.iter().enumerate() {
                    if node.poll_timeout().is_some_and(|at| at <= now) {
                        calls.push_back((i, Call::Input(Input::Timeout)));
                    }
                }
            }
            Step::Close { from, to } => {
                // The transport under `from`'s link to `to` drops.
                let link = links
                    .iter()
                    .find(|&(&(i, _), &(j, _))| i == from && j == to)
                    .map(|(&mine, &theirs)| (mine, theirs));
                if let Some(((i, conn), (j, theirs))) = link {
                    links.remove(&(i, conn));
                    links.remove(&(j, theirs));
                    let reason = TransportError::Reset;
                    calls.push_back((i, Call::Input(Input::Closed { conn, reason })));
                    calls.push_back((
                        j,
                        Call::Input(Input::Closed {
                            conn: theirs,
                            reason,
                        }),
                    ));
                }
            }
        }
        run(&mut calls, &mut links, &mut nodes, &mut out, &mut log, now);
    }
    log
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let pair = (0..3usize, 1..3usize).prop_map(|(from, d)| (from, (from + d) % 3));
    prop_oneof![
        (pair.clone(), 0..200usize).prop_map(|((from, to), len)| Step::Send { from, to, len }),
        pair.clone()
            .prop_map(|(from, to)| Step::Request { from, to }),
        (1..20_000u64).prop_map(|millis| Step::Advance { millis }),
        pair.prop_map(|(from, to)| Step::Close { from, to }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// `handle_input_into`, `command_into` and `drain_outputs`, in any mix
    /// with `poll_output`, give the driver exactly the outputs `poll_output`
    /// alone gives, in the same order.
    #[test]
    fn outputs_into_the_drivers_queue_match_poll_output(
        script in proptest::collection::vec(step(), 1..24),
        takes in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(Take::Poll),
                proptest::strategy::Just(Take::Into),
                proptest::strategy::Just(Take::Drain),
            ],
            1..8,
        ),
    ) {
        let polled = scripted_run(&script, &[Take::Poll]);
        let taken = scripted_run(&script, &takes);
        proptest::prop_assert!(polled.len() > 6, "the nodes said little: {}", polled.len());
        proptest::prop_assert_eq!(polled, taken);
    }
}

#[test]
fn queued_outputs_come_before_the_next_calls_in_the_drivers_queue() {
    use crate::PeersCommand;
    let node = || {
        let identity = Identity::from_secret_bytes([9; 32]);
        Node::new(Config::plaintext(), identity, 7, Instant::ZERO).expect("valid")
    };
    let (mut polled, mut into) = (node(), node());
    let dial = |port| PeersCommand::Connect {
        addr: SocketAddr::from(([10, 0, 0, 2], port)),
        peer: None,
    };
    // The first call's outputs are left queued; the second goes into the
    // driver's queue, behind what the driver already holds.
    let _ = polled.command(Instant::ZERO, dial(1));
    let _ = polled.command(Instant::ZERO, dial(2));
    let expected: Vec<Output> = core::iter::from_fn(|| polled.poll_output()).collect();
    let _ = into.command(Instant::ZERO, dial(1));
    let held = Output::Close {
        conn: ConnId::inbound(77),
    };
    let mut out = VecDeque::from([held.clone()]);
    let _ = into.command_into(Instant::ZERO, dial(2), &mut out);
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert_eq!(out.pop_front(), Some(held));
    assert_eq!(Vec::from(out), expected);
    assert!(into.poll_output().is_none());
}
