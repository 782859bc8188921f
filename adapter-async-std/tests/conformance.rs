//! The shared conformance suite, run against the async adapter under
//! async-std, smol, and tokio (its multi-thread runtime, and a
//! current-thread runtime per node).

use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use futures_lite::{StreamExt, future};
use ringmesh::{Accepted, Command, CommandError, Event, NodeId};
use ringmesh_async_std::{AdapterConfig, Driver, Error, Events, NodeHandle, PeerInfo, start};
use ringmesh_conformance::TestNode;

/// What every runtime shares: the handle, and the node's events forwarded
/// into a channel the suite waits on (as it does with the mio adapter).
struct Common {
    handle: NodeHandle,
    events: Receiver<Event>,
}

/// A started node's two futures, for the runtime to run: the driver, and
/// the task that forwards its events.
struct Futures {
    driver: Driver,
    forward: Forward,
}

type Forward = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

impl Common {
    fn new(config: AdapterConfig) -> io::Result<(Common, Futures)> {
        let (handle, events, driver) = start(config)?;
        let (tx, rx) = mpsc::channel();
        let forward = Box::pin(forward(events, tx));
        Ok((Common { handle, events: rx }, Futures { driver, forward }))
    }

    fn command(&self, command: impl Into<Command>) -> Result<Accepted, CommandError> {
        future::block_on(self.handle.command(command)).map_err(|e| match e {
            Error::Command(e) => e,
            _ => CommandError::ShutDown,
        })
    }

    fn peers(&self) -> Vec<PeerInfo> {
        future::block_on(self.handle.peers()).unwrap_or_default()
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

/// The runtime a node's futures run on.
trait Runtime {
    /// The running driver.
    type Task;
    /// Starts both futures; the forwarder ends with the event stream.
    fn spawn(futures: Futures) -> Self::Task;
    /// Drops the driver's future: every socket closes at once, without
    /// goodbye. Returns once it is dropped.
    fn cancel(task: Self::Task);
    /// Waits until the driver has completed.
    fn join(task: Self::Task);
}

struct AsyncStd;

impl Runtime for AsyncStd {
    type Task = async_std::task::JoinHandle<()>;
    fn spawn(futures: Futures) -> Self::Task {
        drop(async_std::task::spawn(futures.forward));
        async_std::task::spawn(futures.driver)
    }
    fn cancel(task: Self::Task) {
        async_std::task::block_on(task.cancel());
    }
    fn join(task: Self::Task) {
        async_std::task::block_on(task);
    }
}

struct Smol;

impl Runtime for Smol {
    type Task = smol::Task<()>;
    fn spawn(futures: Futures) -> Self::Task {
        smol::spawn(futures.forward).detach();
        smol::spawn(futures.driver)
    }
    fn cancel(task: Self::Task) {
        smol::block_on(task.cancel());
    }
    fn join(task: Self::Task) {
        smol::block_on(task);
    }
}

/// Tokio's multi-thread runtime, one for the whole test binary (as an
/// application would have), its workers polling every node's driver.
struct TokioMultiThread;

fn tokio_multi_thread() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("tokio-conformance")
            .build()
            .expect("tokio runtime")
    })
}

impl Runtime for TokioMultiThread {
    type Task = tokio::task::JoinHandle<()>;
    fn spawn(futures: Futures) -> Self::Task {
        let runtime = tokio_multi_thread();
        drop(runtime.spawn(futures.forward));
        runtime.spawn(futures.driver)
    }
    fn cancel(task: Self::Task) {
        task.abort();
        // Resolves once the aborted future has been dropped.
        let _ = future::block_on(task);
    }
    fn join(task: Self::Task) {
        future::block_on(task).expect("driver task completes");
    }
}

/// A tokio current-thread runtime per node, on a thread of its own that
/// runs it until the driver completes: the driver and its forwarder are
/// `tokio::spawn`ed tasks sharing that one thread.
struct TokioCurrentThread;

struct CurrentThreadTask {
    abort: tokio::task::AbortHandle,
    thread: thread::JoinHandle<()>,
}

impl Runtime for TokioCurrentThread {
    type Task = CurrentThreadTask;
    fn spawn(futures: Futures) -> Self::Task {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime");
        let forward = runtime.spawn(futures.forward);
        let driver = runtime.spawn(futures.driver);
        let abort = driver.abort_handle();
        let thread = thread::spawn(move || {
            runtime.block_on(async {
                // Aborted (a kill) or completed (a shutdown): either way
                // the event stream then ends, and so does the forwarder.
                let _ = driver.await;
                let _ = forward.await;
            });
        });
        CurrentThreadTask { abort, thread }
    }
    fn cancel(task: Self::Task) {
        task.abort.abort();
        task.thread.join().expect("runtime thread");
    }
    fn join(task: Self::Task) {
        task.thread.join().expect("runtime thread");
    }
}

/// A node whose driver runs on `R`.
struct AsyncNode<R: Runtime>(Common, R::Task);

impl<R: Runtime> TestNode for AsyncNode<R> {
    fn try_start(config: AdapterConfig) -> io::Result<Self> {
        let (common, futures) = Common::new(config)?;
        Ok(AsyncNode(common, R::spawn(futures)))
    }
    fn peers(&self) -> Vec<PeerInfo> {
        self.0.peers()
    }
    fn id(&self) -> NodeId {
        self.0.handle.node_id()
    }
    fn addr(&self) -> SocketAddr {
        self.0.handle.local_addr()
    }
    fn command(&self, command: impl Into<Command>) -> Result<Accepted, CommandError> {
        self.0.command(command)
    }
    fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.0.next_event(timeout)
    }
    fn kill(self) {
        R::cancel(self.1);
    }
    fn shutdown(self) {
        future::block_on(self.0.handle.shutdown());
        R::join(self.1);
    }
}

mod async_std_runtime {
    ringmesh_conformance::conformance_suite!(super::AsyncNode<super::AsyncStd>);
}

mod smol_runtime {
    ringmesh_conformance::conformance_suite!(super::AsyncNode<super::Smol>);
}

mod tokio_multi_thread_runtime {
    ringmesh_conformance::conformance_suite!(super::AsyncNode<super::TokioMultiThread>);
}

mod tokio_current_thread_runtime {
    ringmesh_conformance::conformance_suite!(super::AsyncNode<super::TokioCurrentThread>);
}
