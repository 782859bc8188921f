//! Churn schedules: Poisson joins and leaves over a stretch of virtual time.

use rand_core::RngCore;
use ringmesh::{Config, Duration};

use super::{NodeIdx, NodeState, Observer, Sim, stream};

/// Joins and leaves as two Poisson processes.
#[derive(Debug, Clone, PartialEq)]
pub struct Churn {
    /// Mean joins per second of virtual time (new nodes, running the
    /// join config).
    pub joins_per_sec: f64,
    /// Mean leaves per second (a random live node stops).
    pub leaves_per_sec: f64,
    /// Share of leaves that are silent crashes; the rest are kills (their
    /// connections reset).
    pub crash_share: f64,
    /// Nodes below this index never leave (e.g. bootstrap nodes).
    pub protected: NodeIdx,
}

/// What a churn run did, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChurnLog {
    /// Nodes added.
    pub joined: Vec<NodeIdx>,
    /// Nodes that crashed silently.
    pub crashed: Vec<NodeIdx>,
    /// Nodes that were killed.
    pub killed: Vec<NodeIdx>,
}

/// One draw from an exponential distribution of mean `1 / rate` seconds.
fn exponential(rng: &mut impl RngCore, rate: f64) -> Duration {
    if rate <= 0.0 {
        return Duration::from_secs(u64::MAX / 2_000_000);
    }
    // 53 random bits → a uniform in (0, 1].
    let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    Duration::from_micros((-u.ln() / rate * 1e6) as u64)
}

impl<O: Observer> Sim<O> {
    /// Runs `duration` of virtual time with `churn`: joins add nodes
    /// running `join`, leaves stop a random live unprotected node. The
    /// schedule is drawn from the simulation seed (its own stream, so it
    /// does not shift the network's choices).
    pub fn run_churn(
        &mut self,
        churn: &Churn,
        join: &Config,
        duration: Duration,
    ) -> Result<ChurnLog, ringmesh::ConfigError> {
        let mut rng = stream(self.config.seed, "churn");
        let end = self.now + duration;
        let mut log = ChurnLog::default();
        let mut next_join = self.now + exponential(&mut rng, churn.joins_per_sec);
        let mut next_leave = self.now + exponential(&mut rng, churn.leaves_per_sec);
        loop {
            let at = next_join.min(next_leave);
            if at > end {
                break;
            }
            self.run_until(at);
            if next_join <= next_leave {
                log.joined.push(self.add_node(join.clone())?);
                next_join = at + exponential(&mut rng, churn.joins_per_sec);
            } else {
                let candidates: Vec<NodeIdx> = (churn.protected..self.len() as NodeIdx)
                    .filter(|&i| self.state(i) == NodeState::Up)
                    .collect();
                if !candidates.is_empty() {
                    let victim = candidates[(rng.next_u64() % candidates.len() as u64) as usize];
                    let crash =
                        ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < churn.crash_share;
                    if crash {
                        self.crash(victim);
                        log.crashed.push(victim);
                    } else {
                        self.kill(victim);
                        log.killed.push(victim);
                    }
                }
                next_leave = at + exponential(&mut rng, churn.leaves_per_sec);
            }
        }
        self.run_until(end);
        Ok(log)
    }
}
