//! The shared conformance suite, run against the mio adapter.

use ringmesh_mio::EventReceiver;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ringmesh::{Accepted, Command, CommandError, Event, NodeId};
use ringmesh_conformance::TestNode;
use ringmesh_mio::{AdapterConfig, PeerInfo, Running, spawn};

struct MioNode(Running);

impl TestNode for MioNode {
    fn try_start(config: AdapterConfig) -> io::Result<Self> {
        spawn(config).map(MioNode)
    }

    fn peers(&self) -> Vec<PeerInfo> {
        self.0.handle.peers()
    }

    fn id(&self) -> NodeId {
        self.0.handle.node_id()
    }

    fn addr(&self) -> SocketAddr {
        self.0.handle.local_addr()
    }

    fn command(&self, command: impl Into<Command>) -> Result<Accepted, CommandError> {
        self.0.handle.command(command)
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        let events: &EventReceiver = &self.0.events;
        if timeout.is_zero() {
            events.try_recv().ok()
        } else {
            events.recv_timeout(timeout).ok()
        }
    }

    fn kill(self) {
        self.0.handle.abort();
        self.0.thread.join().expect("thread").expect("stopped");
    }

    fn shutdown(self) {
        self.0.handle.shutdown();
        self.0.thread.join().expect("thread").expect("stopped");
    }
}

ringmesh_conformance::conformance_suite!(MioNode);
