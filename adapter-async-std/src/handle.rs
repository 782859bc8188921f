//! [`NodeHandle`]: the application's way to talk to the node task.

use core::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_channel::oneshot::{self, Sender};
use ringmesh::wire::PeerEntry;
use ringmesh::{
    Accepted, Command, MeshCommand, MessagingCommand, Node, NodeId, PeersCommand, RequestId, Stats,
};

use crate::PeerInfo;
use crate::call::{Call, Error};
use crate::calls::CallSender;
use crate::driver::Shared;
use futures_lite::future;

/// The application's handle on a running node: cheap to clone, `Send`, and
/// usable from any task or executor.
///
/// A call is a message to the node task and an answer back, or, when the
/// node task is idle, a command or request served on the caller's task
/// (which briefly holds the node's lock: the node task never waits on it
/// while it sleeps). Calls fail with [`Error::Stopped`] once the node task
/// has ended.
///
/// Dropping the last handle shuts the node down gracefully, as
/// [`NodeHandle::shutdown`] does (the node can take no more commands, so
/// it could not even answer requests).
#[derive(Clone)]
pub struct NodeHandle {
    calls: CallSender<Call>,
    /// The node loop's state, for calls served on the caller's task.
    shared: std::sync::Arc<Shared>,
    node_id: NodeId,
    local_addr: SocketAddr,
    /// Where the node's blobs live (`None`: in memory).
    blob_dir: Option<std::sync::Arc<std::path::Path>>,
}

impl fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    pub(crate) fn new(
        calls: CallSender<Call>,
        shared: std::sync::Arc<Shared>,
        node_id: NodeId,
        local_addr: SocketAddr,
        blob_dir: Option<std::path::PathBuf>,
    ) -> Self {
        NodeHandle {
            calls,
            shared,
            node_id,
            local_addr,
            blob_dir: blob_dir.map(std::sync::Arc::from),
        }
    }

    /// Adds the file at `path` as a blob and returns its name; the node
    /// serves it from then on ([`BlobsEvent::Added`](ringmesh::BlobsEvent::Added)
    /// follows). With [`AdapterConfig::blob_dir`](crate::AdapterConfig::blob_dir)
    /// the file is copied into the store and hashed in pieces, never held
    /// in memory; without, it is read into the node's memory. The disk
    /// work runs on a blocking thread pool, not the executor's threads.
    pub async fn add_blob_file(
        &self,
        path: impl Into<std::path::PathBuf>,
    ) -> std::io::Result<ringmesh::blobs::BlobHash> {
        let (dir, path) = (self.blob_dir.clone(), path.into());
        let (hash, command) =
            blocking::unblock(move || ringmesh_driver::add_file_command(dir.as_deref(), &path))
                .await?;
        self.command(command).await.map_err(std::io::Error::other)?;
        Ok(hash)
    }

    /// Fetches the blob `hash` from `providers` and the neighbours that
    /// offer blobs, every group verified as it arrives; what the store
    /// holds already is not fetched again. Progress comes on the event
    /// stream as [`BlobsEvent`](ringmesh::BlobsEvent)s (`Length`,
    /// `Progress`, `ProviderDropped`, `Done`), or ask
    /// [`NodeHandle::blob_held`]; write the blob out with
    /// [`NodeHandle::save_blob`] once `Done`.
    pub async fn fetch_blob(
        &self,
        hash: ringmesh::blobs::BlobHash,
        providers: Vec<NodeId>,
    ) -> Result<Accepted, Error> {
        self.command(ringmesh::BlobsCommand::Fetch { hash, providers })
            .await
    }

    /// Groups of `hash` held and in all (`None` if none is held).
    pub async fn blob_held(
        &self,
        hash: ringmesh::blobs::BlobHash,
    ) -> Result<Option<(u64, u64)>, Error> {
        self.inspect(move |node| {
            let held = node.blob_store()?.held(&hash)?;
            Some((held.count(), held.groups()))
        })
        .await
    }

    /// Writes the whole blob `hash` to `path`: a hard link to the store's
    /// file (or a copy across file systems) with a blob directory, else
    /// its bytes from memory. `NotFound` unless every group is held.
    pub async fn save_blob(
        &self,
        hash: ringmesh::blobs::BlobHash,
        path: impl Into<std::path::PathBuf>,
    ) -> std::io::Result<()> {
        let path = path.into();
        let data = match &self.blob_dir {
            Some(_) => None,
            None => self
                .inspect(move |node| ringmesh_driver::read_whole(node, &hash))
                .await
                .map_err(std::io::Error::other)?,
        };
        let dir = self.blob_dir.clone();
        blocking::unblock(move || ringmesh_driver::save_blob(dir.as_deref(), &hash, &path, || data))
            .await
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the node's listener is bound to (with the real port when
    /// the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Dials `addr` and waits for the handshake; returns the peer's
    /// authenticated id. With `peer`, the handshake must prove that id or
    /// the connection closes (`ConnectFailed(Protocol(IdentityMismatch))`).
    /// The peer becomes *wanted*: the node redials it whenever it is lost
    /// (see [`PeersCommand::Connect`](ringmesh::PeersCommand::Connect)).
    ///
    /// The node's `handshake_timeout` bounds the wait, dial included.
    pub async fn connect(&self, addr: SocketAddr, peer: Option<NodeId>) -> Result<NodeId, Error> {
        let command = PeersCommand::Connect { addr, peer }.into();
        self.call(|reply| Call::Connect { command, reply })
            .await
            .and_then(|r| r)
    }

    /// Dials every address at once (1 to 8) and returns the id proven by
    /// the first handshake that completes; the other dials are closed (see
    /// [`PeersCommand::ConnectAny`](ringmesh::PeersCommand::ConnectAny)). Fails with the last dial's reason if none
    /// completes.
    pub async fn connect_any(
        &self,
        addrs: Vec<SocketAddr>,
        peer: Option<NodeId>,
    ) -> Result<NodeId, Error> {
        let command = PeersCommand::ConnectAny { addrs, peer }.into();
        self.call(|reply| Call::Connect { command, reply })
            .await
            .and_then(|r| r)
    }

    /// Closes every connection to `peer` with a `Goodbye` and stops
    /// redialling it (see [`PeersCommand::Disconnect`](ringmesh::PeersCommand::Disconnect)).
    pub async fn disconnect(&self, peer: NodeId) -> Result<(), Error> {
        self.command(PeersCommand::Disconnect { peer })
            .await
            .map(drop)
    }

    /// Floods `payload` to every node of the network; returns its sequence
    /// number. Every other node delivers it once as
    /// [`Event::Mesh(MeshEvent::Broadcast)`](ringmesh::MeshEvent::Broadcast); this one does not.
    pub async fn broadcast(&self, payload: impl Into<Bytes>) -> Result<u64, Error> {
        let payload = payload.into();
        match self.command(MeshCommand::Broadcast { payload }).await? {
            Accepted::Broadcast { seq } => Ok(seq),
            // `Broadcast` is always answered with its sequence number.
            _ => Err(Error::Stopped),
        }
    }

    /// Sends a one-way message, delivered as
    /// [`Event::Messaging(MessagingEvent::Direct)`](ringmesh::MessagingEvent::Direct). Returns once the node has
    /// taken it: sent, or queued while an unconnected peer is looked up and
    /// dialled (if that fails, [`Event::Messaging(MessagingEvent::SendFailed)`](ringmesh::MessagingEvent::SendFailed)
    /// hands the payload back on the event stream).
    pub async fn send(&self, to: NodeId, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(MessagingCommand::Send { to, payload })
            .await
            .map(drop)
    }

    /// Writes `value` under `key` in the sync table (spec/sync.md), signed
    /// by this node, and floods it; every node then sees
    /// [`Event::Sync(SyncEvent::Changed)`](ringmesh::SyncEvent::Changed).
    /// Refused ([`SyncError::Leased`](ringmesh::SyncError::Leased)) while
    /// another node's lease on the key holds.
    pub async fn sync_set(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let (key, value) = (key.into(), value.into());
        self.command(ringmesh::SyncCommand::Set { key, value })
            .await
            .map(drop)
    }

    /// Deletes `key` from the sync table (a tombstone that holds the lease
    /// like a value).
    pub async fn sync_delete(&self, key: impl Into<Bytes>) -> Result<(), Error> {
        let key = key.into();
        self.command(ringmesh::SyncCommand::Delete { key })
            .await
            .map(drop)
    }

    /// Merges `delta` into the map held under `key` (a shallow merge:
    /// `Some` sets an item, `None` removes it; see
    /// [`ringmesh::decode_sync_map`]).
    pub async fn sync_merge(
        &self,
        key: impl Into<Bytes>,
        delta: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), Error> {
        let key = key.into();
        self.command(ringmesh::SyncCommand::Merge { key, delta })
            .await
            .map(drop)
    }

    /// The sync table's winner for `key`, read locally (`None` if never
    /// written, or collected after a delete).
    pub async fn sync_get(
        &self,
        key: impl Into<Bytes>,
    ) -> Result<Option<ringmesh::SyncHeld>, Error> {
        let key = key.into();
        self.inspect(move |node| node.sync_get(&key)).await
    }

    /// Every key of the sync table and its winner, in key-hash order.
    pub async fn sync_entries(&self) -> Result<Vec<(Bytes, ringmesh::SyncHeld)>, Error> {
        self.inspect(Node::sync_entries).await
    }

    /// Hands `command` to the node without waiting for its answer: returns
    /// once the node task's queue has taken it (so a fast sender is paced
    /// by the queue, not by a round trip per command). A refusal is logged
    /// at debug level, not returned; failures that come later arrive on the
    /// event stream as usual. For streams of messages:
    /// `handle.post(MessagingCommand::Send { to, payload }).await`.
    pub async fn post(&self, command: impl Into<Command>) -> Result<(), Error> {
        let command = command.into();
        self.calls
            .send(Call::Post(command))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Sends a request and waits for the answer's payload. Fails with
    /// [`Error::RequestFailed`] when no answer comes within `timeout`
    /// (lookup and dial of an unconnected peer included) or the peer is
    /// lost first. `timeout` is a [`ringmesh::Duration`], or anything that
    /// converts into one (a `std::time::Duration`).
    ///
    /// The matching [`Event::Messaging(MessagingEvent::Response)`](ringmesh::MessagingEvent::Response) or
    /// [`Event::Messaging(MessagingEvent::RequestFailed)`](ringmesh::MessagingEvent::RequestFailed) is consumed
    /// here and does not appear on the event stream.
    pub async fn request(
        &self,
        to: NodeId,
        payload: impl Into<Bytes>,
        timeout: impl Into<ringmesh::Duration>,
    ) -> Result<Bytes, Error> {
        let (payload, timeout) = (payload.into(), timeout.into());
        self.call(|reply| Call::Request {
            to,
            payload,
            timeout,
            reply,
        })
        .await
        .and_then(|r| r)
    }

    /// Answers a peer's [`Event::Messaging(MessagingEvent::Request)`](ringmesh::MessagingEvent::Request) with
    /// its `from` and `id`.
    pub async fn respond(
        &self,
        to: NodeId,
        id: RequestId,
        payload: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let payload = payload.into();
        self.command(MessagingCommand::Respond { to, id, payload })
            .await
            .map(drop)
    }

    /// Imports peer-cache entries, e.g. the previous run's
    /// [`NodeHandle::known_peers`].
    pub async fn add_peers(&self, peers: Vec<PeerEntry>) -> Result<(), Error> {
        self.command(PeersCommand::AddPeers { peers })
            .await
            .map(drop)
    }

    /// The peer cache: every node known, with its listen addresses. Save it
    /// to rejoin without a bootstrap node next time.
    pub async fn known_peers(&self) -> Result<Vec<PeerEntry>, Error> {
        self.inspect(Node::known_peers).await
    }

    /// The peers with an established session, in id order, with their
    /// round-trip times and whether they are suspect.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.inspect(PeerInfo::list).await
    }

    /// The node's counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.inspect(|node| node.stats().clone()).await
    }

    /// Runs `f` on the node, in the node loop between two inputs, and
    /// returns what it returns. For state the other calls do not cover:
    /// `handle.inspect(|node| node.chord_successors()).await`.
    ///
    /// `f` sees the node after everything the node loop did before it took
    /// the call: every event that came out before is already on the
    /// [`Events`](crate::Events) stream (unless dropped as the stream was
    /// full). It holds up the node while it runs, so keep it short.
    pub async fn inspect<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&Node) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.call(|reply: Sender<T>| {
            Call::Inspect(Box::new(move |node| {
                let _ = reply.send(f(node));
            }))
        })
        .await
    }

    /// Gives the node any [`Command`]; returns what it started. The typed
    /// methods above cover every command; this is for code that already
    /// speaks `Command`.
    pub async fn command(&self, command: impl Into<Command>) -> Result<Accepted, Error> {
        // Served here if the node is free (see `Shared::try_command`),
        // else queued for the loop.
        let command = match self.shared.try_command(command.into(), &self.calls) {
            Ok(result) => return result.map_err(Error::Command),
            Err(command) => command,
        };
        self.call(|reply| Call::Command { command, reply })
            .await?
            .map_err(Error::Command)
    }

    /// Shuts the node down gracefully and waits until it has stopped: every
    /// connection gets a `Goodbye(Shutdown)` (peers see
    /// `CloseReason::Goodbye(Shutdown)`), pending requests fail, what was
    /// sent is flushed (each connection gets at most a few seconds), the
    /// listener closes, the driver future completes and the event stream
    /// ends. Returns at once if the node has already stopped.
    pub async fn shutdown(&self) {
        // `Stopped` means it is already done.
        let _ = self.call(Call::Shutdown).await;
    }

    /// Serves the call on this task when the node loop is idle (commands
    /// and requests: the round-trip path; see `Shared::try_serve`), else
    /// queues it for the loop; then waits for the answer.
    async fn call<T>(&self, call: impl FnOnce(Sender<T>) -> Call) -> Result<T, Error> {
        let (reply, mut answer) = oneshot::channel();
        let call = match call(reply) {
            call @ Call::Request { .. } => match self.shared.try_serve(call, &self.calls) {
                // Sent on this task: its answer is a peer's reply, which
                // usually comes sooner than parking and waking would take.
                Ok(()) => match self.shared.spin_for(&mut answer, &self.calls) {
                    Some(answer) => return answer.map_err(|_| Error::Stopped),
                    None => Ok(()),
                },
                queued => queued,
            },
            call @ Call::Command { .. } => self.shared.try_serve(call, &self.calls),
            call => Err(call),
        };
        if let Err(call) = call {
            self.calls.send(call).await.map_err(|_| Error::Stopped)?;
        }
        // While it waits, the caller does the node's I/O work (see
        // `Shared::help`): its answer usually comes from a read it can do
        // itself.
        future::or(answer, async {
            self.shared.help(&self.calls).await;
            // Helping never ends; were it to, the call would count as lost.
            Err(oneshot::Canceled)
        })
        .await
        .map_err(|_| Error::Stopped)
    }
}
