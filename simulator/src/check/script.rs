//! A run written down as a scenario file, for `ringmesh-sim run`.

use core::fmt::Write as _;

use ringmesh::Instant;

use super::Fault;

/// Writes what a scenario does as a scenario file
/// ([`crate::scenario::script`]), so that a failing case also replays as a
/// command line: `ringmesh-sim run case.toml`, with the CLI's report,
/// `--plot` and `--json`.
///
/// A scenario file knows the network, the faults, broadcasts, messages and
/// the checks of its format (and checks broadcast safety at the end of
/// every run), not an application's logic: a scenario whose predicates or
/// reactions go beyond that replays exactly only through
/// [`Runner::replay`](super::Runner::replay); the file still replays its
/// network under the same faults. The scenario records each thing it does
/// as it does it (in [`Scenario::build`](super::Scenario::build),
/// [`Scenario::apply`](super::Scenario::apply) and so on), and shows
/// [`ScriptWriter::finish`] in [`Scenario::describe`](super::Scenario::describe).
///
/// The file replays the run input for input (the same trace hash) when
/// the scenario builds its [`crate::Sim`] as a file does: the nodes of one
/// `add_nodes` step in one batch, and every event due at a step's time run
/// before the step (`sim.run_until(sim.now())` between two additions at the
/// same time). ringmesh's `tests/props.rs` checks this on a case.
#[derive(Debug, Clone)]
pub struct ScriptWriter {
    out: String,
    nodes: u32,
}

impl ScriptWriter {
    /// A file that starts with `header` (the top-level keys and tables:
    /// `seed`, `[net]`, `[node]`…, each on its own lines).
    pub fn new(header: &str) -> Self {
        let mut out = header.trim_end().to_owned();
        out.push('\n');
        ScriptWriter { out, nodes: 0 }
    }

    /// A step at `at` with one action, written as TOML (`broadcast = {
    /// from = 0, payload = "x" }`). An `add_nodes` action must go through
    /// [`ScriptWriter::add_nodes`], so fault selectors resolve.
    pub fn step(&mut self, at: Instant, action: &str) {
        let _ = write!(
            self.out,
            "\n[[step]]\nat_ms = {}\n{action}\n",
            at.as_micros() / 1000
        );
    }

    /// `count` nodes join at `at`; `spec` is the `add_nodes` table's other
    /// fields (`target_peers = 3, bootstrap = [0]`), or empty.
    pub fn add_nodes(&mut self, at: Instant, count: u32, spec: &str) {
        self.nodes += count;
        if spec.is_empty() {
            self.step(at, &format!("add_nodes = {count}"));
        } else {
            self.step(at, &format!("add_nodes = {{ count = {count}, {spec} }}"));
        }
    }

    /// A [`Fault`] at `at`, its selector resolved over the nodes added so
    /// far, as [`Fault::apply`] resolves it. [`Fault::Join`] adds a node
    /// with the file's `[node]` defaults; [`Fault::Leave`] has no action
    /// outside `[chord]` and becomes a comment.
    pub fn fault(&mut self, at: Instant, fault: &Fault) {
        let target = fault.target(self.nodes as usize);
        let action = match (fault, target) {
            (Fault::Crash(_), Some(i)) => format!("crash = {i}"),
            (Fault::Kill(_), Some(i)) => format!("kill = {i}"),
            (Fault::Restart(_), Some(i)) => format!("restart = {i}"),
            (Fault::Leave(_), Some(i)) => {
                let _ = write!(
                    self.out,
                    "\n# at {} ms node {i} leaves (Command::Shutdown): no scenario-file \
                     action outside [chord]\n",
                    at.as_micros() / 1000
                );
                return;
            }
            (Fault::Partition(groups), _) => {
                let mut ids: Vec<u16> = groups.iter().take(self.nodes as usize).copied().collect();
                // Nodes past the end of `groups` are in group 0, and a
                // scenario file puts nodes listed nowhere in its first
                // group: list group 0 first.
                ids.push(0);
                ids.sort_unstable();
                ids.dedup();
                let lists: Vec<Vec<u32>> = ids
                    .into_iter()
                    .map(|g| {
                        (0..self.nodes)
                            .filter(|&i| groups.get(i as usize).copied().unwrap_or(0) == g)
                            .collect()
                    })
                    .filter(|list: &Vec<u32>| !list.is_empty())
                    .collect();
                format!("partition = {lists:?}")
            }
            (Fault::Heal, _) => "heal = true".to_owned(),
            (Fault::Join, _) => {
                self.add_nodes(at, 1, "");
                return;
            }
            (_, None) => return,
        };
        self.step(at, &action);
    }

    /// The default end of the faults
    /// ([`Scenario::end_faults`](super::Scenario::end_faults)): heal, and
    /// restart every node (a node that is up stays as it is).
    pub fn end_faults(&mut self, at: Instant) {
        self.step(at, "heal = true");
        for i in 0..self.nodes {
            self.step(at, &format!("restart = {i}"));
        }
    }

    /// The file.
    pub fn finish(&self) -> String {
        self.out.clone()
    }
}
