//! The shared conformance suite, run against the async adapter under both
//! async-std and smol.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures_lite::{FutureExt, StreamExt, future};
use ringmesh::{Accepted, Command, CommandError, Config, Event, Identity, NodeId};
use ringmesh_async_std::{AdapterConfig, Error, Events, NodeHandle, start};
use ringmesh_conformance::TestNode;

/// What both runtimes share: the handle and the event stream.
struct Common {
    handle: NodeHandle,
    events: Mutex<Events>,
}

impl Common {
    fn new(
        config: Config,
        secret: [u8; 32],
        seed: u64,
        listen: SocketAddr,
    ) -> (Common, ringmesh_async_std::Driver) {
        let (handle, events, driver) = start(AdapterConfig::new(
            listen,
            config,
            Identity::from_secret_bytes(secret),
            seed,
        ))
        .expect("adapter starts");
        (
            Common {
                handle,
                events: Mutex::new(events),
            },
            driver,
        )
    }

    fn command(&self, command: Command) -> Result<Accepted, CommandError> {
        future::block_on(self.handle.command(command)).map_err(|e| match e {
            Error::Command(e) => e,
            _ => CommandError::ShutDown,
        })
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        let mut events = self.events.lock().expect("not poisoned");
        if timeout.is_zero() {
            return future::block_on(future::poll_once(events.next())).flatten();
        }
        future::block_on(events.next().or(async {
            async_io::Timer::after(timeout).await;
            None
        }))
    }
}

/// Runs the driver on async-std's executor.
struct AsyncStdNode(Common, async_std::task::JoinHandle<()>);

impl TestNode for AsyncStdNode {
    fn start(config: Config, secret: [u8; 32], seed: u64, listen: SocketAddr) -> Self {
        let (common, driver) = Common::new(config, secret, seed, listen);
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
        let (common, driver) = Common::new(config, secret, seed, listen);
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
