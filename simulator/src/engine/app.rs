//! Applications: per-node logic that reacts to its node's events and its
//! own timers at virtual time, deterministic from the seed.
//!
//! An [`App`] is what a program built on ringmesh does with its node: it
//! sees every [`Event`] its node emits, at the virtual time it is emitted,
//! and answers with [`Command`]s to that node and with timers that call it
//! back ([`AppCx::at`], [`AppCx::after`]). Timers are events of the
//! engine's queue, ordered with the network's by `(time, seq)`, so a run
//! with applications replays from its seed like any other.
//!
//! An application commands its own node only: what it wants of another
//! node it asks over the network (a message, a request, a broadcast), as
//! a deployed program would. A test harness that must act on any node
//! does so between steps with [`Sim::command`].
//!
//! Registration: [`Sim::set_apps`] gives a factory the engine calls for
//! every node (those already added, those added later, and each restart);
//! [`Sim::set_app`] installs one instance on one node.
//!
//! Faults: an application lives in its node's process. A crash or kill
//! drops the instance, and its pending timers never fire; a restart asks
//! the factory (if one is set) for a fresh instance, whose
//! [`App::on_start`] runs once the new incarnation is up. An instance given
//! with [`Sim::set_app`] is not brought back by a restart unless the
//! factory makes one.
//!
//! Every random choice an application makes should come from
//! [`AppCx::rng`]: a stream of its own, derived from the simulation seed,
//! the node's index and its incarnation, and independent of the streams of
//! the network and of the nodes (so adding an application's draws does not
//! shift the network's).

use core::any::Any;
use core::ops::RangeInclusive;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use ringmesh::{Accepted, Command, CommandError, Duration, Event, Instant, Node, NodeId};

use super::{Ev, NodeIdx, Observer, Sim, queue};

/// A node's application (module docs). Every method has an empty default,
/// so an application implements only what it reacts to. `Send` because a
/// [`Sim`] may be moved to another thread; `Any` so that [`Sim::app`]
/// hands back the concrete type to read what an instance gathered.
pub trait App: Any + Send {
    /// The application starts: when it is installed on a node that is up
    /// (at [`Sim::set_app`], [`Sim::set_apps`] or [`Sim::add_node`]) and
    /// after each restart that made it.
    fn on_start(&mut self, cx: &mut AppCx<'_>) {
        let _ = cx;
    }

    /// The node emitted `event` (at `cx.now()`). The [`Observer`] has seen
    /// it first.
    fn on_event(&mut self, cx: &mut AppCx<'_>, event: &Event) {
        let _ = (cx, event);
    }

    /// A timer this instance armed with `token` fired.
    fn on_timer(&mut self, cx: &mut AppCx<'_>, token: u64) {
        let _ = (cx, token);
    }
}

/// What an [`App`] sees of the simulation while it runs: the time, its
/// node, its random stream, its commands and its timers.
pub struct AppCx<'a> {
    pub(super) now: Instant,
    pub(super) index: NodeIdx,
    pub(super) id: NodeId,
    pub(super) node: &'a mut Node,
    pub(super) rng: &'a mut ChaCha8Rng,
    pub(super) queue: &'a mut queue::EventQueue<Ev>,
    pub(super) epoch: u32,
    pub(super) ids: &'a hashbrown::HashMap<NodeId, NodeIdx, foldhash::fast::FixedState>,
}

impl AppCx<'_> {
    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This node's index in the [`Sim`].
    pub fn index(&self) -> NodeIdx {
        self.index
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node, to read its state (peers, stats, tables).
    pub fn node(&self) -> &Node {
        self.node
    }

    /// Gives this node a command now, as [`Sim::command`] would; what it
    /// sends leaves once the application returns.
    pub fn command(&mut self, command: impl Into<Command>) -> Result<Accepted, CommandError> {
        self.node.command(self.now, command)
    }

    /// Calls [`App::on_timer`] with `token` at `at` (now, if `at` has
    /// passed), unless the node stops first. Timers at the same time fire in
    /// the order they were armed.
    pub fn at(&mut self, at: Instant, token: u64) {
        let ev = Ev::AppTimer {
            node: self.index,
            epoch: self.epoch,
            token,
        };
        self.queue.push(at.max(self.now), self.now, ev);
    }

    /// Calls [`App::on_timer`] with `token` after `delay`.
    pub fn after(&mut self, delay: Duration, token: u64) {
        self.at(self.now + delay, token);
    }

    /// This application's random stream (module docs).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// A uniform draw from `range` off [`AppCx::rng`].
    pub fn random_in(&mut self, range: RangeInclusive<u64>) -> u64 {
        let (lo, hi) = (*range.start(), *range.end());
        match (hi - lo).checked_add(1) {
            None => self.rng.next_u64(),
            Some(span) => lo + self.rng.next_u64() % span,
        }
    }

    /// The index of the node with id `id`, as [`Sim::index_of_id`].
    pub fn index_of_id(&self, id: &NodeId) -> Option<NodeIdx> {
        self.ids.get(id).copied()
    }
}

/// A node's application slot.
pub(super) struct AppSlot {
    pub(super) app: Option<Box<dyn App>>,
    /// Changes whenever the instance is dropped or replaced: timers armed
    /// under another epoch do not fire.
    pub(super) epoch: u32,
    pub(super) rng: Option<ChaCha8Rng>,
}

/// Makes the application of each node (or none: `None`).
pub type AppFactory = Box<dyn FnMut(NodeIdx) -> Option<Box<dyn App>> + Send>;

impl<O: Observer> Sim<O> {
    /// Gives every node an application made by `factory`: the nodes
    /// already added now (in index order), nodes added later as they are
    /// added, and each node again, with a fresh instance, when it restarts.
    /// Nodes for which it returns `None` run without one. Replaces any
    /// earlier factory; instances already installed are replaced by the
    /// factory's.
    pub fn set_apps(
        &mut self,
        factory: impl FnMut(NodeIdx) -> Option<Box<dyn App>> + Send + 'static,
    ) {
        self.app_factory = Some(Box::new(factory));
        for i in 0..self.len() as NodeIdx {
            if self.state(i) == super::NodeState::Up {
                self.install_from_factory(i);
            }
        }
    }

    /// Installs `app` on node `i` (replacing its application; the old
    /// one's timers will not fire) and runs its [`App::on_start`]. `false`
    /// if the node is not up (nothing is installed).
    pub fn set_app(&mut self, i: NodeIdx, app: Box<dyn App>) -> bool {
        if self.machines[i as usize].is_none() {
            return false;
        }
        self.install(i, app);
        true
    }

    /// Whether node `i` has an application now.
    pub fn has_app(&self, i: NodeIdx) -> bool {
        self.apps.get(i as usize).is_some_and(|s| s.app.is_some())
    }

    /// Node `i`'s application, if it has one and it is an `A`.
    pub fn app<A: App>(&self, i: NodeIdx) -> Option<&A> {
        let app: &dyn Any = self.apps.get(i as usize)?.app.as_deref()?;
        app.downcast_ref()
    }

    /// Node `i`'s application, if it has one and it is an `A`, to change it
    /// between steps (a change that should send something belongs in the
    /// application's own callbacks, or in a [`Sim::command`]).
    pub fn app_mut<A: App>(&mut self, i: NodeIdx) -> Option<&mut A> {
        let app: &mut dyn Any = self.apps.get_mut(i as usize)?.app.as_deref_mut()?;
        app.downcast_mut()
    }

    pub(super) fn install_from_factory(&mut self, i: NodeIdx) {
        let Some(factory) = self.app_factory.as_mut() else {
            return;
        };
        match factory(i) {
            Some(app) => self.install(i, app),
            None => self.drop_app(i),
        }
    }

    fn install(&mut self, i: NodeIdx, app: Box<dyn App>) {
        if self.apps.len() < self.nodes.len() {
            self.apps.resize_with(self.nodes.len(), || AppSlot {
                app: None,
                epoch: 0,
                rng: None,
            });
        }
        let incarnation = self.nodes[i as usize].incarnation;
        let seed = self.config.seed;
        let slot = &mut self.apps[i as usize];
        slot.epoch = slot.epoch.wrapping_add(1);
        slot.app = Some(app);
        slot.rng = Some(app_rng(seed, i, incarnation));
        self.call_app(i, |app, cx| app.on_start(cx));
    }

    /// Drops node `i`'s application (its timers will not fire).
    pub(super) fn drop_app(&mut self, i: NodeIdx) {
        if let Some(slot) = self.apps.get_mut(i as usize)
            && slot.app.is_some()
        {
            slot.app = None;
            slot.rng = None;
            slot.epoch = slot.epoch.wrapping_add(1);
        }
    }

    /// Runs `f` on node `i`'s application, if it has one and the node is
    /// up, then reads the node's outputs.
    pub(super) fn call_app(&mut self, i: NodeIdx, f: impl FnOnce(&mut dyn App, &mut AppCx<'_>)) {
        self.with_app(i, f);
        self.after_node_call(i);
    }

    /// [`Sim::call_app`] without reading the outputs (inside the loop that
    /// reads them).
    pub(super) fn with_app(&mut self, i: NodeIdx, f: impl FnOnce(&mut dyn App, &mut AppCx<'_>)) {
        let Some(slot) = self.apps.get_mut(i as usize) else {
            return;
        };
        let (Some(app), Some(rng), Some(node)) = (
            slot.app.as_mut(),
            slot.rng.as_mut(),
            self.machines[i as usize].as_mut(),
        ) else {
            return;
        };
        let mut cx = AppCx {
            now: self.now,
            index: i,
            id: self.records[i as usize].id,
            node,
            rng,
            queue: &mut self.queue,
            epoch: slot.epoch,
            ids: &self.ids,
        };
        f(app.as_mut(), &mut cx);
    }

    /// An application timer fired.
    pub(super) fn app_timer(&mut self, i: NodeIdx, epoch: u32, token: u64) {
        let live = self
            .apps
            .get(i as usize)
            .is_some_and(|s| s.epoch == epoch && s.app.is_some());
        if live {
            self.call_app(i, |app, cx| app.on_timer(cx, token));
        }
    }
}

/// The random stream of node `i`'s application in incarnation
/// `incarnation`.
fn app_rng(seed: u64, i: NodeIdx, incarnation: u32) -> ChaCha8Rng {
    let mut material = [0u8; 16];
    material[..8].copy_from_slice(&seed.to_le_bytes());
    material[8..12].copy_from_slice(&i.to_le_bytes());
    material[12..].copy_from_slice(&incarnation.to_le_bytes());
    ChaCha8Rng::from_seed(blake3::derive_key("ringmesh-sim v1 app", &material))
}
