//! The shared conformance suite, run against the async adapter under both
//! async-std and smol.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use futures_lite::{StreamExt, future};
use ringmesh::{Accepted, Command, CommandError, Config, Event, Identity, NodeId};
use ringmesh_async_std::{AdapterConfig, Error, Events, NodeHandle, start};
use ringmesh_conformance::TestNode;

/// What both runtimes share: the handle, and the node's events forwarded
/// into a channel the suite waits on (as it does with the mio adapter).
struct Common {
    handle: NodeHandle,
    events: Receiver<Event>,
}

impl Common {
    /// Starts a node; returns it, its driver and the task that forwards its
    /// events, both for the caller to spawn on its runtime.
    fn new(
        config: Config,
        secret: [u8; 32],
        seed: u64,
        listen: SocketAddr,
    ) -> (
        Common,
        ringmesh_async_std::Driver,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (handle, events, driver) = start(AdapterConfig::new(
            listen,
            config,
            Identity::from_secret_bytes(secret),
            seed,
        ))
        .expect("adapter starts");
        let (tx, rx) = mpsc::channel();
        (Common { handle, events: rx }, driver, forward(events, tx))
    }

    fn command(&self, command: Command) -> Result<Accepted, CommandError> {
        future::block_on(self.handle.command(command)).map_err(|e| match e {
            Error::Command(e) => e,
            _ => CommandError::ShutDown,
        })
    }

    /// Wakes as soon as the event arrives; `timeout` only bounds a wait
    /// for one that never comes.
    fn next_event(&self, timeout: Duration) -> Option<Event> {
        if timeout.is_zero() {
            self.events.try_recv().ok()
        } else {
            self.events.recv_timeout(timeout).ok()
        }
    }
}

/// Moves every event of the stream into `tx`, until either side ends.
async fn forward(mut events: Events, tx: mpsc::Sender<Event>) {
    while let Some(event) = events.next().await {
        if tx.send(event).is_err() {
            return;
        }
    }
}

/// Runs the driver on async-std's executor.
struct AsyncStdNode(Common, async_std::task::JoinHandle<()>);

impl TestNode for AsyncStdNode {
    fn start(config: Config, secret: [u8; 32], seed: u64, listen: SocketAddr) -> Self {
        let (common, driver, forward) = Common::new(config, secret, seed, listen);
        drop(async_std::task::spawn(forward));
        AsyncStdNode(common, async_std::task::spawn(driver))
    }
    fn id(&self) -> NodeId {
        self.0.handle.node_id()
    }
    fn addr(&self) -> SocketAddr {
        self.0.handle.local_addr()
    }
    fn command(&self, command: Command) -> Result<Accepted, CommandError> {
        self.0.command(command)
    }
    fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.0.next_event(timeout)
    }
    fn kill(self) {
        // Dropping the driver closes every socket at once, without goodbye.
        async_std::task::block_on(self.1.cancel());
    }
    fn shutdown(self) {
        async_std::task::block_on(async {
            self.0.handle.shutdown().await;
            self.1.await;
        });
    }
}

/// Runs the driver on smol's executor.
struct SmolNode(Common, smol::Task<()>);

impl TestNode for SmolNode {
    fn start(config: Config, secret: [u8; 32], seed: u64, listen: SocketAddr) -> Self {
        let (common, driver, forward) = Common::new(config, secret, seed, listen);
        smol::spawn(forward).detach();
        SmolNode(common, smol::spawn(driver))
    }
    fn id(&self) -> NodeId {
        self.0.handle.node_id()
    }
    fn addr(&self) -> SocketAddr {
        self.0.handle.local_addr()
    }
    fn command(&self, command: Command) -> Result<Accepted, CommandError> {
        self.0.command(command)
    }
    fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.0.next_event(timeout)
    }
    fn kill(self) {
        smol::block_on(self.1.cancel());
    }
    fn shutdown(self) {
        smol::block_on(async {
            self.0.handle.shutdown().await;
            self.1.await;
        });
    }
}

mod async_std_runtime {
    ringmesh_conformance::conformance_suite!(super::AsyncStdNode);
}

mod smol_runtime {
    ringmesh_conformance::conformance_suite!(super::SmolNode);
}
