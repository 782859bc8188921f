//! The graph of best successors: its cycles (rings) and where the
//! appendages that reach none of them stop.

/// The graph of best successors, one out-edge at most per member.
pub(super) struct Graph {
    /// Whether each member is on a cycle (a ring member).
    pub(super) on_ring: Vec<bool>,
    /// Each cycle: a member on it and its length.
    pub(super) cycles: Vec<(usize, usize)>,
    /// For a member whose best successors never reach a cycle, the member
    /// where they stop (it has no best successor).
    pub(super) dead_end: Vec<Option<usize>>,
}

impl Graph {
    pub(super) fn new(best: &[Option<usize>]) -> Self {
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let n = best.len();
        let mut state = vec![NEW; n];
        let mut on_ring = vec![false; n];
        let mut dead_end = vec![None; n];
        let mut cycles = Vec::new();
        let mut path = Vec::new();
        for start in 0..n {
            if state[start] != NEW {
                continue;
            }
            path.clear();
            let mut v = start;
            let end = loop {
                match state[v] {
                    NEW => {
                        state[v] = ON_PATH;
                        path.push(v);
                        match best[v] {
                            Some(next) => v = next,
                            None => break Some(v),
                        }
                    }
                    ON_PATH => {
                        // The path from v's first visit on is a new cycle.
                        let mut len = 0;
                        for &p in path.iter().rev() {
                            on_ring[p] = true;
                            len += 1;
                            if p == v {
                                break;
                            }
                        }
                        cycles.push((v, len));
                        break None;
                    }
                    _ => break dead_end[v],
                }
            };
            for &p in &path {
                state[p] = DONE;
                dead_end[p] = end;
            }
        }
        Graph {
            on_ring,
            cycles,
            dead_end,
        }
    }
}
