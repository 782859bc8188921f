//! The transport side: accepting, dialling, and one future per open
//! connection that reads into `Bytes` chunks for the node and writes what
//! the node sends.
//!
//! Every future here runs on the driver's own executor (see the crate docs)
//! and talks to the node loop only through the [`Transport`] channel, so the
//! node loop is the one place that touches the [`ringmesh::Node`].

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use async_executor::{Executor, Task};
use async_io::{Async, Timer};
use atomic_waker::AtomicWaker;
use bytes::{Buf, Bytes};
use concurrent_queue::ConcurrentQueue;
use futures_lite::future;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use ringmesh::{ConnId, TransportError};
use ringmesh_driver::{ACCEPTS_PER_TURN, DirectReadPool, admit_to_backlog, transport_error};
use tracing::{debug, warn};

use crate::calls::CallSender;

/// Bytes asked of the socket per read, at least. Each read goes straight
/// into the connection's [`DirectReadPool`] (as much as is left of its
/// current allocation) and is handed on as a `Bytes` of exactly its size.
const READ_CHUNK: usize = 64 * 1024;

/// Most queued sends handed to one vectored write.
const WRITE_BATCH: usize = 64;

/// After the last byte of a closed connection is written and our side is
/// shut down, how long to keep reading (and discarding) for the peer's own
/// close. Closing a socket with unread bytes makes the kernel send a reset,
/// and a reset can destroy the `Goodbye` the peer has not read yet.
const LINGER: Duration = Duration::from_secs(1);

/// How long a connection the node closed may take to flush what was sent
/// on it and linger; after that it is dropped as it stands.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most chunks one connection reads when the node loop asks it to take in
/// what its socket already holds ([`Link::sync`]): the bound keeps a peer
/// that never stops sending from holding up a shutdown.
const SYNC_READS: usize = 64;

/// How long the acceptor waits after a failed `accept` (e.g. out of file
/// descriptors) before trying again, so that it does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What the transport futures tell the node loop.
pub(crate) enum Transport {
    /// The listener accepted a connection.
    Accepted {
        stream: Async<TcpStream>,
        remote: SocketAddr,
    },
    /// A dial the node asked for finished.
    Dialed {
        conn: ConnId,
        addr: SocketAddr,
        result: io::Result<Async<TcpStream>>,
    },
    /// Bytes read from an open connection.
    Received { conn: ConnId, bytes: Bytes },
    /// An open connection ended on its own (EOF, reset, failed write).
    Closed {
        conn: ConnId,
        reason: TransportError,
    },
    /// An open connection has reported every byte its socket held when the
    /// node loop asked ([`Link::sync`]).
    Synced { conn: ConnId },
}

/// The node loop's end of one open connection.
pub(crate) struct Link {
    /// The socket, shared with the connection's future: at the end of a
    /// node-loop turn, when the writer holds nothing, [`Link::flush`]
    /// writes to it directly.
    stream: Arc<Async<TcpStream>>,
    /// Where what the socket did not take at once goes, in order, for the
    /// connection's future to write: one batch per turn. Unbounded: the
    /// bound is `backlog`, checked by the node loop before each send.
    writes: WriteSender,
    /// Bytes handed to `send` and not yet accepted by the socket (those in
    /// `pending` included).
    backlog: Arc<AtomicUsize>,
    /// What the node sent on this connection during the current turn, not
    /// yet handed to the socket: [`Link::flush`] writes it all at once.
    pending: Vec<Bytes>,
    /// Bytes in `pending`.
    pending_bytes: usize,
    /// Asks the reader to take in what the socket holds now; see
    /// [`Link::sync`].
    sync: Arc<SyncRequest>,
    /// The connection's future. Dropping it cancels the I/O and closes the
    /// socket at once.
    task: Task<()>,
    /// The peer's address, for log lines.
    pub(crate) remote: SocketAddr,
}

impl Link {
    /// Starts the I/O future of a freshly opened connection.
    pub(crate) fn open(
        executor: &Executor<'static>,
        conn: ConnId,
        stream: Async<TcpStream>,
        remote: SocketAddr,
        transport: CallSender<Transport>,
        node: Weak<dyn Feeder>,
    ) -> Link {
        // Frames are whole messages already; waiting to coalesce them only
        // delays pings and small requests.
        if let Err(error) = stream.get_ref().set_nodelay(true) {
            debug!(%conn, %remote, %error, "could not set TCP_NODELAY");
        }
        let stream = Arc::new(stream);
        let queue = Arc::new(WriteQueue::default());
        let writes = WriteSender(Arc::clone(&queue));
        let sync = Arc::new(SyncRequest::default());
        let backlog = Arc::new(AtomicUsize::new(0));
        let task = executor.spawn(run_connection(
            conn,
            Arc::clone(&stream),
            queue,
            Arc::clone(&backlog),
            Arc::clone(&sync),
            transport,
            node,
        ));
        Link {
            stream,
            writes,
            backlog,
            pending: Vec::new(),
            pending_bytes: 0,
            sync,
            task,
            remote,
        }
    }

    /// Queues `bytes` after what was sent before, for [`Link::flush`] at the
    /// end of the turn, unless that would put more than `cap` bytes in the
    /// backlog: then nothing is queued and the backlog that would have been
    /// is returned. `Ok(true)` when this is the turn's first send on the
    /// connection (the node loop then has it to flush).
    pub(crate) fn send(&mut self, bytes: Bytes, cap: usize) -> Result<bool, usize> {
        if bytes.is_empty() {
            return Ok(false);
        }
        let len = bytes.len();
        // Only this (the node loop) adds to the backlog; the writer only
        // takes away. So what was admitted here stays within the cap, and
        // the counter never wraps.
        admit_to_backlog(self.backlog.load(Ordering::Relaxed), len, cap)?;
        self.backlog.fetch_add(len, Ordering::Relaxed);
        let first = self.pending.is_empty();
        self.pending.push(bytes);
        self.pending_bytes += len;
        Ok(first)
    }

    /// Hands what this turn sent to the socket: many frames per system
    /// call, as the mio adapter does.
    ///
    /// When the writer holds nothing, the bytes go to the socket right
    /// here: what the node sent is then on the wire before the events of
    /// the same turn reach the application (the node loop emits them after
    /// flushing). A dialler reports `PeersEvent::Up` as it sends the
    /// handshake's last message; the responder must have that message to
    /// say `Goodbye` if it shuts down in response. What the socket does not
    /// take is queued for the connection's future.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        let pending_bytes = std::mem::take(&mut self.pending_bytes);
        // The writer only counts down what it holds, and the node loop (the
        // only one adding) is here: a backlog of just this turn's bytes
        // means the writer holds nothing, and writing now keeps the order.
        let mut done = 0;
        if self.backlog.load(Ordering::Relaxed) == pending_bytes {
            let mut socket: &TcpStream = self.stream.get_ref();
            while done < pending.len() {
                // On the stack: a turn's frames usually fit, and this runs
                // once a turn per connection written to.
                let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
                let count = (pending.len() - done).min(WRITE_BATCH);
                for (slice, bytes) in slices.iter_mut().zip(&pending[done..done + count]) {
                    *slice = IoSlice::new(bytes);
                }
                // On an error (`WouldBlock`, or one the writer meets again
                // and reports), the rest is queued for the writer.
                let Ok(mut written) = socket.write_vectored(&slices[..count]) else {
                    break;
                };
                if written == 0 {
                    break;
                }
                self.backlog.fetch_sub(written, Ordering::Relaxed);
                while written > 0 {
                    let front = &mut pending[done];
                    if front.len() <= written {
                        written -= front.len();
                        done += 1;
                    } else {
                        front.advance(written);
                        written = 0;
                    }
                }
            }
        }
        if done == pending.len() {
            // Keep the allocation for the next turn.
            pending.clear();
            self.pending = pending;
            return;
        }
        pending.drain(..done);
        // Should the connection's future have ended already, this lies
        // unwritten until the link goes; its `Closed` report is on its way
        // to the node loop.
        self.writes.0.push(pending);
    }

    /// Asks the connection to read what its socket holds now (without
    /// waiting for more) and report it, followed by
    /// [`Transport::Synced`]. Returns whether the request was taken; if
    /// not, the connection is ending and its `Closed` report follows.
    ///
    /// Readers otherwise read when the reactor tells them the socket is
    /// readable, which may come after the node loop has moved on: before
    /// the node shuts down, this makes sure it has seen what its peers sent
    /// it (such as the last handshake message, without which it cannot say
    /// `Goodbye`).
    pub(crate) fn sync(&self) -> bool {
        if self.task.is_finished() {
            return false;
        }
        self.sync.requested.store(true, Ordering::Release);
        self.sync.waker.wake();
        true
    }

    /// Bytes queued and not yet written.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Closes gracefully: what was sent is written, our side is shut down,
    /// and the peer gets [`LINGER`] to close its own. The returned task
    /// finishes when that is done or after [`CLOSE_TIMEOUT`], whichever
    /// comes first.
    pub(crate) fn close(mut self, executor: &Executor<'static>) -> Task<()> {
        self.flush();
        // With its only sender gone, the write queue ends once drained.
        let Link { writes, task, .. } = self;
        drop(writes);
        executor.spawn(future::or(task, async {
            Timer::after(CLOSE_TIMEOUT).await;
        }))
    }
}

/// What the socket did not take at once, in order, for the connection's
/// writer: one producer (the node, under its lock) and one consumer (the
/// writer), so a queue and one waker do. The writer's wait is polled every
/// time the connection's future is (for each read too); a channel would
/// take its listener's lock on each of those polls.
struct WriteQueue {
    batches: ConcurrentQueue<Vec<Bytes>>,
    writer: AtomicWaker,
    /// The link is gone (closed by the node): once drained, the writer
    /// ends.
    closed: AtomicBool,
}

impl Default for WriteQueue {
    fn default() -> Self {
        WriteQueue {
            batches: ConcurrentQueue::unbounded(),
            writer: AtomicWaker::new(),
            closed: AtomicBool::new(false),
        }
    }
}

impl WriteQueue {
    fn push(&self, batch: Vec<Bytes>) {
        // Unbounded: the node loop bounds what it queues by the backlog.
        let _ = self.batches.push(batch);
        self.writer.wake();
    }

    /// The next batch; `None` once the link is gone and all is drained.
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<Bytes>>> {
        if let Ok(batch) = self.batches.pop() {
            return Poll::Ready(Some(batch));
        }
        self.writer.register(cx.waker());
        if let Ok(batch) = self.batches.pop() {
            return Poll::Ready(Some(batch));
        }
        if self.closed.load(Ordering::Acquire) {
            // Set after the link's last push.
            return Poll::Ready(self.batches.pop().ok());
        }
        Poll::Pending
    }
}

/// The link's end of its [`WriteQueue`]: dropping it (closing the link)
/// ends the writer once what is queued is written.
struct WriteSender(Arc<WriteQueue>);

impl Drop for WriteSender {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.writer.wake();
    }
}

/// A [`Link::sync`] request: a flag and the reader's waker, polled in
/// place by the reader beside its socket's readiness (no channel, so no
/// listener is made for it on every read).
#[derive(Default)]
struct SyncRequest {
    requested: AtomicBool,
    waker: AtomicWaker,
}

impl SyncRequest {
    /// Ready (taking the request) once one is made.
    fn poll_requested(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.requested.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.requested.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// How a connection's I/O ended.
enum End {
    /// The node closed it and everything queued was written.
    Flushed,
    /// The peer closed it, or reading or writing failed.
    Failed(TransportError),
}

async fn run_connection(
    conn: ConnId,
    stream: Arc<Async<TcpStream>>,
    queue: Arc<WriteQueue>,
    backlog: Arc<AtomicUsize>,
    sync: Arc<SyncRequest>,
    transport: CallSender<Transport>,
    node: Weak<dyn Feeder>,
) {
    let end = future::or(
        read_until_end(conn, &stream, &sync, &transport, &node),
        write_until_end(&stream, &queue, &backlog),
    )
    .await;
    match end {
        End::Flushed => {
            // FIN after the last byte; then wait for the peer to close, so
            // that our close does not turn into a reset (see `LINGER`).
            let _ = stream.get_ref().shutdown(Shutdown::Write);
            future::or(discard_until_eof(&stream), async {
                Timer::after(LINGER).await;
            })
            .await;
        }
        End::Failed(reason) => {
            // Ignored by the node loop if the node closed the connection
            // meanwhile.
            let _ = transport.send(Transport::Closed { conn, reason }).await;
        }
    }
}

/// What woke a reader.
enum ReadStep {
    /// What one read got, and whether it filled the room it was given.
    Read(io::Result<(Bytes, bool)>),
    /// A [`Link::sync`] request.
    Sync,
}

async fn read_until_end(
    conn: ConnId,
    stream: &Async<TcpStream>,
    sync: &SyncRequest,
    transport: &CallSender<Transport>,
    node: &Weak<dyn Feeder>,
) -> End {
    // One pool per connection, held while it lives: one spent allocation
    // kept for reuse (the default's three are for one pool per adapter),
    // so a connection holds at most two allocations beyond what the node
    // and the application hold.
    let mut pool = DirectReadPool::with_retired(READ_CHUNK, 1);
    // The last read did not fill the room it was given, so it emptied the
    // socket: the next one waits for the reactor's word first. Reading
    // first would only get `WouldBlock` (a system call), and then register
    // for readiness anyway (another); it would also do both every time
    // this future is polled for another reason (its writer's queue, a sync
    // request). What arrives after a read that emptied the socket raises
    // a new readiness event, so nothing is missed.
    let mut drained = false;
    loop {
        let step = {
            let read = async {
                if drained && let Err(error) = stream.readable().await {
                    return ReadStep::Read(Err(error));
                }
                ReadStep::Read(read_into(stream, &mut pool).await)
            };
            // Polled in place: no listener is made for it on every read.
            let sync = future::poll_fn(|cx| sync.poll_requested(cx).map(|()| ReadStep::Sync));
            future::or(read, sync).await
        };
        match step {
            ReadStep::Read(result) => {
                drained = matches!(result, Ok((_, false)));
                if let Err(end) = deliver(conn, result, transport, node).await {
                    return end;
                }
            }
            ReadStep::Sync => {
                drained = false;
                // Reading an `Async` socket tries the read first and only
                // then waits: a single poll takes what is there now.
                for _ in 0..SYNC_READS {
                    let Some(result) = future::poll_once(read_into(stream, &mut pool)).await else {
                        break;
                    };
                    if let Err(end) = deliver(conn, result, transport, node).await {
                        return end;
                    }
                }
                if transport.send(Transport::Synced { conn }).await.is_err() {
                    return End::Failed(TransportError::Other);
                }
            }
        }
        // A socket that always has data would otherwise keep this future
        // (and the writer beside it) from ever yielding. After a read that
        // emptied the socket, the wait for its readiness yields anyway:
        // no turn through the executor's queue for nothing.
        if !drained {
            future::yield_now().await;
        }
    }
}

/// One read of `stream` straight into `pool` (no copy from a scratch
/// buffer; see [`DirectReadPool`]), trying first and waiting for
/// readiness only on `WouldBlock`: what it read, and whether it filled the
/// room it was given (if not, the socket was empty after it).
async fn read_into(
    stream: &Async<TcpStream>,
    pool: &mut DirectReadPool,
) -> io::Result<(Bytes, bool)> {
    stream
        .read_with(|socket| {
            let mut socket = socket;
            pool.read_from(&mut socket)
        })
        .await
}

/// The node as a connection's reader sees it: something to hand a read
/// to on the reader's own task (the node loop's shared state, in
/// `driver.rs`). A trait, so that this module does not import the
/// driver's, which imports this one.
pub(crate) trait Feeder: Send + Sync {
    /// Feeds what a read got to the node if it is free; `wake` wakes the
    /// node loop when it must act sooner than it planned.
    fn try_feed(&self, conn: ConnId, bytes: Bytes, wake: &CallSender<Transport>) -> Feed;

    /// After a [`Feed::Busy`] read was queued: takes the queue in if the
    /// node is free now (its holder takes it in as it lets go otherwise).
    fn take_queued(&self, wake: &CallSender<Transport>);
}

/// What became of a read offered to the node on its reader's task
/// ([`Feeder::try_feed`]).
pub(crate) enum Feed {
    /// The node took it.
    Fed,
    /// Another task holds the node: queue the read without waking the
    /// loop, then [`Feeder::take_queued`].
    Busy(Bytes),
    /// The node is stopping or stopped: queue the read for the loop, and
    /// wake it.
    ToLoop(Bytes),
}

/// Hands what one read got to the node: on this task if the node is free
/// ([`Feeder::try_feed`]), else through the node loop's queue. `Err` if the
/// connection has ended.
async fn deliver(
    conn: ConnId,
    result: io::Result<(Bytes, bool)>,
    transport: &CallSender<Transport>,
    node: &Weak<dyn Feeder>,
) -> Result<(), End> {
    let bytes = match result {
        Ok((bytes, _)) if bytes.is_empty() => return Err(End::Failed(TransportError::Eof)),
        Ok((bytes, _)) => bytes,
        Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(()),
        Err(error) => {
            debug!(%conn, %error, "read failed");
            return Err(End::Failed(transport_error(&error)));
        }
    };
    let bytes = match node.upgrade() {
        Some(shared) => match shared.try_feed(conn, bytes, transport) {
            Feed::Fed => return Ok(()),
            Feed::Busy(bytes) => {
                // Whoever holds the node takes the queue in as it lets go:
                // no wake-up of the loop (and pass of it) for this read.
                transport
                    .send_quietly(Transport::Received { conn, bytes })
                    .await
                    .map_err(|_| End::Failed(TransportError::Other))?;
                shared.take_queued(transport);
                return Ok(());
            }
            Feed::ToLoop(bytes) => bytes,
        },
        None => bytes,
    };
    // Waits while the node loop is behind: reading stops, TCP flow control
    // pushes back on the peer, and memory stays bounded.
    transport
        .send(Transport::Received { conn, bytes })
        .await
        .map_err(|_| End::Failed(TransportError::Other))
}

async fn write_until_end(
    stream: &Async<TcpStream>,
    queue: &WriteQueue,
    backlog: &AtomicUsize,
) -> End {
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    let mut writer = stream;
    loop {
        if batch.is_empty() {
            match future::poll_fn(|cx| queue.poll_next(cx)).await {
                Some(bytes) => batch.extend(bytes),
                // The node closed the connection and all it sent is out.
                None => return End::Flushed,
            }
        }
        while batch.len() < WRITE_BATCH {
            match queue.batches.pop() {
                Ok(bytes) => batch.extend(bytes),
                Err(_) => break,
            }
        }
        let slices: Vec<IoSlice<'_>> = batch
            .iter()
            .take(WRITE_BATCH)
            .map(|b| IoSlice::new(b))
            .collect();
        let written = match writer.write_vectored(&slices).await {
            Ok(0) => return End::Failed(transport_error(&io::ErrorKind::WriteZero.into())),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                debug!(%error, "write failed");
                return End::Failed(transport_error(&error));
            }
        };
        backlog.fetch_sub(written, Ordering::Relaxed);
        let mut left = written;
        while left > 0 {
            let Some(front) = batch.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                batch.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
        future::yield_now().await;
    }
}

async fn discard_until_eof(stream: &Async<TcpStream>) {
    let mut buf = [0u8; 4096];
    let mut reader = stream;
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Accepts connections for as long as the node loop holds its task.
///
/// While the kernel's accept queue is not empty, `accept` and a `send` into
/// a channel with room both complete at once, so without a pause this task
/// would run on through a flood, accepting (and registering with the
/// reactor) until the channel is full, while the connections' futures and
/// the node loop wait for the executor. So after [`ACCEPTS_PER_TURN`]
/// accepts it yields: the executor runs what else is ready (reads from
/// peers, the node loop's turn, which takes in and judges what was
/// accepted) before it accepts more. The rest wait in the kernel's backlog
/// ([`ringmesh_driver::LISTEN_BACKLOG`]).
pub(crate) async fn accept_loop(listener: Async<TcpListener>, transport: CallSender<Transport>) {
    let mut accepted = 0;
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if transport
                    .send(Transport::Accepted { stream, remote })
                    .await
                    .is_err()
                {
                    return;
                }
                accepted += 1;
                if accepted == ACCEPTS_PER_TURN {
                    accepted = 0;
                    future::yield_now().await;
                }
            }
            Err(error) => {
                warn!(%error, "accepting a connection failed; retrying shortly");
                Timer::after(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Opens a connection for the node's `Output::Dial`. The node's
/// `handshake_timeout` bounds it: past that the node closes the dial and the
/// node loop drops this future.
pub(crate) async fn dial(conn: ConnId, addr: SocketAddr, transport: CallSender<Transport>) {
    let result = Async::<TcpStream>::connect(addr).await;
    let _ = transport
        .send(Transport::Dialed { conn, addr, result })
        .await;
}

/// Opens a connection for the node's `Output::DialFromListenPort` (a hole
/// punch, `spec/relay.md` §7): from `local`, the listener's address, so
/// both ends' SYNs cross. Bounded like [`dial`].
pub(crate) async fn dial_from(
    conn: ConnId,
    local: SocketAddr,
    addr: SocketAddr,
    transport: CallSender<Transport>,
) {
    let connect = async {
        let stream = Async::new(ringmesh_driver::dial_from(local, addr)?)?;
        stream.writable().await?;
        if let Some(e) = stream.get_ref().take_error()? {
            return Err(e);
        }
        // Writable without an error can still be a refused connect on
        // some systems: a connected socket has a peer.
        stream.get_ref().peer_addr()?;
        Ok(stream)
    };
    let result = connect.await;
    let _ = transport
        .send(Transport::Dialed { conn, addr, result })
        .await;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A hole punch's dial leaves from the listener's port (which the
    /// listener keeps) and reports the connection as any dial does.
    #[test]
    fn a_dial_from_the_listen_port_connects_from_that_port() {
        let listen =
            |addr: &str| ringmesh_driver::listen(addr.parse().expect("addr")).expect("listen");
        let (ours, theirs) = (listen("127.0.0.1:0"), listen("127.0.0.1:0"));
        let (local, remote) = (
            ours.local_addr().expect("ours"),
            theirs.local_addr().expect("theirs"),
        );
        let (tx, rx) = crate::calls::channel(2);
        let conn = ConnId::inbound(1); // any id: only echoed here
        async_io::block_on(dial_from(conn, local, remote, tx));
        let Some(Transport::Dialed {
            conn: dialled,
            addr,
            result,
        }) = rx.try_recv()
        else {
            panic!("no Dialed report");
        };
        assert_eq!((dialled, addr), (conn, remote));
        let stream = result.expect("connected");
        assert_eq!(stream.get_ref().local_addr().expect("local"), local);
        assert_eq!(stream.get_ref().peer_addr().expect("peer"), remote);
    }
}
