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

/// The executor a node's driver runs on.
trait Executor {
    type Task: Future<Output = ()>;
    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Self::Task;
    fn detach(future: impl Future<Output = ()> + Send + 'static);
    fn block_on<T>(future: impl Future<Output = T>) -> T;
    /// Drops the task's future: for a driver, every socket closes at once,
    /// without goodbye.
    fn cancel(task: Self::Task);
}

struct AsyncStd;

impl Executor for AsyncStd {
    type Task = async_std::task::JoinHandle<()>;
    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Self::Task {
        async_std::task::spawn(future)
    }
    fn detach(future: impl Future<Output = ()> + Send + 'static) {
        drop(async_std::task::spawn(future));
    }
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }
    fn cancel(task: Self::Task) {
        async_std::task::block_on(task.cancel());
    }
}

struct Smol;

impl Executor for Smol {
    type Task = smol::Task<()>;
    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Self::Task {
        smol::spawn(future)
    }
    fn detach(future: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(future).detach();
    }
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
    fn cancel(task: Self::Task) {
        smol::block_on(task.cancel());
    }
}

/// A node whose driver runs on `E`.
struct AsyncNode<E: Executor>(Common, E::Task);

impl<E: Executor> TestNode for AsyncNode<E> {
    fn start(config: Config, secret: [u8; 32], seed: u64, listen: SocketAddr) -> Self {
        let (common, driver, forward) = Common::new(config, secret, seed, listen);
        E::detach(forward);
        AsyncNode(common, E::spawn(driver))
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
        E::cancel(self.1);
    }
    fn shutdown(self) {
        E::block_on(async {
            self.0.handle.shutdown().await;
            self.1.await;
        });
    }
}

mod async_std_runtime {
    ringmesh_conformance::conformance_suite!(super::AsyncNode<super::AsyncStd>);
}

mod smol_runtime {
    ringmesh_conformance::conformance_suite!(super::AsyncNode<super::Smol>);
}
