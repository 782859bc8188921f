//! Network models beyond one latency for every link: per-pair latency from
//! regions, per-node upload bandwidth with queueing, and timed link faults
//! (one-way cuts, flaps, delay spikes).
//!
//! Everything here is off by default: with [`LatencyModel::Uniform`], no
//! [`Upload`] limit and no fault, the engine takes exactly the path it took
//! before these models existed (the same draws from the same streams, the
//! same trace hashes). The per-node draws (region, access latency, upload
//! rate) come from a stream of their own (`"network nodes"`), so turning a
//! model on leaves every other stream of the run untouched.
//!
//! Per-pair latency is computed at send time from a region matrix and two
//! per-node offsets, never stored per pair: memory grows with nodes, not
//! with pairs.

use std::fmt;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use ringmesh::{Duration, Instant};

use super::NodeIdx;

/// The built-in geographic model's matrix (also a sample of the file
/// format): seven regions, one-way latencies about half of WonderNetwork's
/// published round-trip times between their cities.
pub const GEO_REGIONS_CSV: &str = include_str!("../../data/regions-7.csv");

/// Where each link's one-way latency comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LatencyModel {
    /// Every link has [`NetModel::latency`](super::NetModel::latency) (the
    /// default, and the model every pinned trace hash was made with).
    #[default]
    Uniform,
    /// Each node is placed in a region (drawn from the seed, in proportion
    /// to the regions' weights) and given an access-link latency (drawn
    /// uniformly from `access`). A send from `a` to `b` takes
    /// `regions.one_way(region(a), region(b)) + access(a) + access(b)`,
    /// plus [`NetModel::jitter`](super::NetModel::jitter);
    /// [`NetModel::latency`](super::NetModel::latency) is not used.
    Regions {
        /// The region matrix ([`Regions::geo`] or a file).
        regions: Arc<Regions>,
        /// The range each node's access-link latency is drawn from.
        access: (Duration, Duration),
    },
}

impl LatencyModel {
    /// The built-in geographic model: [`Regions::geo`] with access links of
    /// 1–10 ms one way.
    pub fn geo() -> Self {
        LatencyModel::Regions {
            regions: Arc::new(Regions::geo()),
            access: (Duration::from_millis(1), Duration::from_millis(10)),
        }
    }

    /// The regions of a matrix file ([`Regions::parse`]) with access links
    /// of 1–10 ms one way.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut regions = Regions::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        regions.source = format!("file:{}", path.display());
        Ok(LatencyModel::Regions {
            regions: Arc::new(regions),
            access: (Duration::from_millis(1), Duration::from_millis(10)),
        })
    }

    /// Its name as the command line's `--latency-model` takes it:
    /// `uniform`, `geo`, `file:PATH` (or `inline` for a matrix parsed from
    /// text).
    pub fn describe(&self) -> String {
        match self {
            LatencyModel::Uniform => "uniform".to_owned(),
            LatencyModel::Regions { regions, .. } => regions.source.clone(),
        }
    }

    /// Parses `--latency-model`: `uniform`, `geo` or `file:PATH`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "uniform" => Ok(LatencyModel::Uniform),
            "geo" => Ok(LatencyModel::geo()),
            _ => match text.strip_prefix("file:") {
                Some(path) => LatencyModel::from_file(std::path::Path::new(path)),
                None => Err(format!(
                    "unknown latency model {text:?} (uniform, geo or file:PATH)"
                )),
            },
        }
    }
}

/// Each node's upload bandwidth: a send occupies the sender's uplink for
/// `bytes / rate`, and sends queue behind each other (one "uplink free at"
/// time per node), so large payloads and fan-outs cost time. A message
/// arrives one latency after its last byte left. Each node's rate is drawn
/// from the seed, uniformly in `min_bytes_per_sec..=max_bytes_per_sec`.
/// Connection setup and closes are not charged; download is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    /// The lowest rate a node may get, bytes per second (at least 1).
    pub min_bytes_per_sec: u64,
    /// The highest rate a node may get, bytes per second.
    pub max_bytes_per_sec: u64,
}

impl Upload {
    /// Every node uploads at `bytes_per_sec`.
    pub fn fixed(bytes_per_sec: u64) -> Self {
        Upload {
            min_bytes_per_sec: bytes_per_sec,
            max_bytes_per_sec: bytes_per_sec,
        }
    }

    /// Parses a rate or a range of rates: `10Mbit`, `1MB`, `500kbit`,
    /// `2Mbit..20Mbit` (units `bit`, `kbit`, `Mbit`, `Gbit` per second, or
    /// `B`, `kB`, `MB`, `GB` per second, decimal multiples; a bare number is
    /// bytes per second).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (parse_rate(a)?, parse_rate(b)?),
            None => {
                let r = parse_rate(text)?;
                (r, r)
            }
        };
        if min > max {
            return Err(format!("upload range {text:?} runs backwards"));
        }
        Ok(Upload {
            min_bytes_per_sec: min,
            max_bytes_per_sec: max,
        })
    }

    /// The range as `parse` reads it back (bytes per second).
    pub fn describe(&self) -> String {
        if self.min_bytes_per_sec == self.max_bytes_per_sec {
            format!("{}B", self.min_bytes_per_sec)
        } else {
            format!("{}B..{}B", self.min_bytes_per_sec, self.max_bytes_per_sec)
        }
    }
}

/// One rate in bytes per second (see [`Upload::parse`]).
fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let units: [(&str, f64); 8] = [
        ("Gbit", 1e9 / 8.0),
        ("Mbit", 1e6 / 8.0),
        ("kbit", 1e3 / 8.0),
        ("bit", 1.0 / 8.0),
        ("GB", 1e9),
        ("MB", 1e6),
        ("kB", 1e3),
        ("B", 1.0),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((text, 1.0));
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a rate: {text:?} (try 10Mbit or 1MB)"))?;
    let bytes = value * scale;
    if !(1.0..=1e15).contains(&bytes) {
        return Err(format!("rate out of range: {text:?} (1 B/s to 1 PB/s)"));
    }
    Ok(bytes.round() as u64)
}

/// A region-to-region one-way latency matrix with a weight per region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    names: Vec<String>,
    weights: Vec<u32>,
    /// Row-major, `len × len`, microseconds; row = sender.
    one_way_us: Vec<u64>,
    /// Where it came from: `geo`, `file:PATH` or `inline`.
    source: String,
}

/// Why a region matrix was refused: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionsError {
    /// The line of the text, from 1 (0 when the whole text is at fault).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RegionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for RegionsError {}

impl Regions {
    /// The built-in geographic matrix ([`GEO_REGIONS_CSV`]).
    pub fn geo() -> Self {
        // The shipped file is checked by a test; it cannot fail to parse.
        let mut geo =
            Regions::parse(GEO_REGIONS_CSV).unwrap_or_else(|e| panic!("regions-7.csv: {e}"));
        geo.source = "geo".to_owned();
        geo
    }

    /// Parses a matrix in the format of `simulator/data/regions-7.csv`:
    /// comma-separated (tabs also accepted), `#` comments and blank lines
    /// ignored, a header `region,weight,<name>,...`, then one row per region
    /// in header order: name, weight (a positive integer), then the one-way
    /// latency to each region in milliseconds (decimals allowed). At most
    /// 255 regions.
    pub fn parse(text: &str) -> Result<Self, RegionsError> {
        let err = |line: usize, message: String| RegionsError { line, message };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(k, l)| (k + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let split = |l: &str| -> Vec<String> {
            l.split([',', '\t']).map(|f| f.trim().to_owned()).collect()
        };
        let (header_line, header) = lines
            .next()
            .ok_or_else(|| err(0, "no header line (region,weight,<regions>...)".into()))?;
        let header = split(header);
        if header.len() < 3
            || !header[0].eq_ignore_ascii_case("region")
            || !header[1].eq_ignore_ascii_case("weight")
        {
            return Err(err(
                header_line,
                "the header must be region,weight, then the region names".into(),
            ));
        }
        let names: Vec<String> = header[2..].to_vec();
        if names.len() > 255 {
            return Err(err(header_line, "more than 255 regions".into()));
        }
        for (k, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(err(header_line, format!("region {} has no name", k + 1)));
            }
            if names[..k].contains(name) {
                return Err(err(header_line, format!("region {name:?} named twice")));
            }
        }
        let k = names.len();
        let mut weights = vec![0u32; k];
        let mut one_way_us = vec![0u64; k * k];
        let mut seen = vec![false; k];
        for (line, row) in lines {
            let fields = split(row);
            if fields.len() != k + 2 {
                return Err(err(
                    line,
                    format!(
                        "{} fields, expected {} (name, weight, {k} latencies)",
                        fields.len(),
                        k + 2
                    ),
                ));
            }
            let r = names
                .iter()
                .position(|n| *n == fields[0])
                .ok_or_else(|| err(line, format!("region {:?} is not in the header", fields[0])))?;
            if seen[r] {
                return Err(err(line, format!("region {:?} has two rows", fields[0])));
            }
            seen[r] = true;
            weights[r] = fields[1].parse().ok().filter(|&w| w > 0).ok_or_else(|| {
                err(
                    line,
                    format!("weight {:?} is not a positive integer", fields[1]),
                )
            })?;
            for (c, field) in fields[2..].iter().enumerate() {
                let ms: f64 = field
                    .parse()
                    .ok()
                    .filter(|ms: &f64| ms.is_finite() && *ms >= 0.0 && *ms <= 3_600_000.0)
                    .ok_or_else(|| {
                        err(
                            line,
                            format!("latency to {:?}: {field:?} is not a number of milliseconds in 0..=3600000", names[c]),
                        )
                    })?;
                one_way_us[r * k + c] = (ms * 1e3).round() as u64;
            }
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(err(0, format!("region {:?} has no row", names[missing])));
        }
        Ok(Regions {
            names,
            weights,
            one_way_us,
            source: "inline".to_owned(),
        })
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there is no region (never, for a parsed matrix).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Region names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Region weights, in file order.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// One-way latency from region `from` to region `to`.
    pub fn one_way(&self, from: usize, to: usize) -> Duration {
        Duration::from_micros(self.one_way_us[from * self.len() + to])
    }

    /// A region drawn in proportion to the weights.
    fn draw(&self, rng: &mut ChaCha8Rng) -> u8 {
        let total: u64 = self.weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = rng.next_u64() % total;
        for (r, &w) in self.weights.iter().enumerate() {
            if x < u64::from(w) {
                return r as u8;
            }
            x -= u64::from(w);
        }
        (self.len() - 1) as u8
    }
}

/// A node's draws under a non-uniform model, and its uplink queue.
#[derive(Debug, Clone, Copy)]
struct NetNode {
    region: u8,
    access_us: u32,
    /// Bytes per second; 0 = unlimited.
    upload: u64,
    /// When its uplink has sent everything queued so far.
    uplink_free_at: Instant,
}

/// A timed fault on a link (both directions) or on every link of a node.
#[derive(Debug, Clone, Copy)]
struct Window {
    node: NodeIdx,
    /// The other end, or every peer of `node`.
    peer: Option<NodeIdx>,
    until: Instant,
    kind: WindowKind,
}

#[derive(Debug, Clone, Copy)]
enum WindowKind {
    /// The link is down: bytes are held and arrive after it comes back.
    Down,
    /// Extra one-way delay.
    Delay(Duration),
}

impl Window {
    fn covers(&self, from: NodeIdx, to: NodeIdx) -> bool {
        (from == self.node && self.peer.is_none_or(|p| p == to))
            || (to == self.node && self.peer.is_none_or(|p| p == from))
    }
}

/// What the path from one node to another does to bytes sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathState {
    /// Bytes go through (after `extra` delay), not before `held_until` plus
    /// one latency if the link is flapping.
    Open {
        extra: Duration,
        held_until: Option<Instant>,
    },
    /// Bytes vanish (a one-way cut).
    Cut,
}

/// The engine's network-model state: per-node draws, uplink queues and
/// faults. Empty (and never consulted beyond a flag) under the default
/// model.
pub(super) struct NetState {
    /// A per-node model (regions or upload) is on.
    per_node: bool,
    regions: Option<(Arc<Regions>, u64, u64)>,
    upload: Option<Upload>,
    nodes: Vec<NetNode>,
    draws: ChaCha8Rng,
    /// One-way cuts: bit `k` of `out_cuts[a]` and of `in_cuts[b]` both set
    /// means bytes from `a` to `b` vanish.
    out_cuts: Vec<u32>,
    in_cuts: Vec<u32>,
    cuts_used: u32,
    windows: Vec<Window>,
}

impl NetState {
    pub(super) fn new(model: &super::NetModel, draws: ChaCha8Rng) -> Self {
        let regions = match &model.links {
            LatencyModel::Uniform => None,
            LatencyModel::Regions { regions, access } => Some((
                regions.clone(),
                access.0.as_micros(),
                access.1.as_micros().max(access.0.as_micros()),
            )),
        };
        NetState {
            per_node: regions.is_some() || model.upload.is_some(),
            regions,
            upload: model.upload,
            nodes: Vec::new(),
            draws,
            out_cuts: Vec::new(),
            in_cuts: Vec::new(),
            cuts_used: 0,
            windows: Vec::new(),
        }
    }

    /// Whether anything beyond the uniform model is on (the engine's fast
    /// path is taken when not).
    pub(super) fn active(&self) -> bool {
        self.per_node || self.cuts_used != 0 || !self.windows.is_empty()
    }

    /// Draws node `i`'s region, access latency and upload rate (in index
    /// order: the draws depend on the seed and the index only).
    pub(super) fn add_node(&mut self, i: NodeIdx) {
        if !self.per_node {
            return;
        }
        debug_assert_eq!(self.nodes.len(), i as usize);
        let (region, access_us) = match &self.regions {
            Some((regions, lo, hi)) => {
                let region = regions.draw(&mut self.draws);
                let access = lo + self.draws.next_u64() % (hi - lo + 1);
                (region, access as u32)
            }
            None => (0, 0),
        };
        let upload = match self.upload {
            Some(u) => {
                let lo = u.min_bytes_per_sec.max(1);
                let hi = u.max_bytes_per_sec.max(lo);
                lo + self.draws.next_u64() % (hi - lo + 1)
            }
            None => 0,
        };
        self.nodes.push(NetNode {
            region,
            access_us,
            upload,
            uplink_free_at: Instant::ZERO,
        });
    }

    /// The one-way latency from `from` to `to` before jitter and faults.
    pub(super) fn latency(&self, uniform: Duration, from: NodeIdx, to: NodeIdx) -> Duration {
        match &self.regions {
            None => uniform,
            Some((regions, _, _)) => {
                let (a, b) = (&self.nodes[from as usize], &self.nodes[to as usize]);
                regions.one_way(a.region as usize, b.region as usize)
                    + Duration::from_micros(u64::from(a.access_us) + u64::from(b.access_us))
            }
        }
    }

    /// When `bytes` sent by `from` now have left its uplink (now if its
    /// upload is unlimited), queueing them behind what it sent before.
    pub(super) fn uplink(&mut self, now: Instant, from: NodeIdx, bytes: usize) -> Instant {
        let Some(node) = self.nodes.get_mut(from as usize) else {
            return now;
        };
        if node.upload == 0 || bytes == 0 {
            return now;
        }
        let start = node.uplink_free_at.max(now);
        let us = (bytes as u128 * 1_000_000).div_ceil(u128::from(node.upload));
        node.uplink_free_at =
            start + Duration::from_micros(us.min(u128::from(u64::MAX / 4)) as u64);
        node.uplink_free_at
    }

    /// What the path `from → to` does to bytes sent at `now`.
    pub(super) fn path(&mut self, now: Instant, from: NodeIdx, to: NodeIdx) -> PathState {
        if self.cuts_used != 0 {
            let out = self.out_cuts.get(from as usize).copied().unwrap_or(0);
            let into = self.in_cuts.get(to as usize).copied().unwrap_or(0);
            if out & into != 0 {
                return PathState::Cut;
            }
        }
        let mut extra = Duration::ZERO;
        let mut held_until = None;
        if !self.windows.is_empty() {
            self.windows.retain(|w| w.until > now);
            for w in self.windows.iter().filter(|w| w.covers(from, to)) {
                match w.kind {
                    WindowKind::Down => {
                        held_until = Some(held_until.map_or(w.until, |h: Instant| h.max(w.until)))
                    }
                    WindowKind::Delay(d) => extra = extra + d,
                }
            }
        }
        PathState::Open { extra, held_until }
    }

    /// Cuts every path from a node of `senders` to a node of `receivers`
    /// (bits are reused after [`NetState::heal_cuts`]). `false` if 32 cuts
    /// are already in place.
    pub(super) fn cut_one_way(
        &mut self,
        nodes: usize,
        senders: &[NodeIdx],
        receivers: &[NodeIdx],
    ) -> bool {
        if self.cuts_used == u32::MAX {
            return false;
        }
        let bit = 1u32 << (!self.cuts_used).trailing_zeros();
        self.cuts_used |= bit;
        self.out_cuts.resize(nodes, 0);
        self.in_cuts.resize(nodes, 0);
        for &s in senders {
            self.out_cuts[s as usize] |= bit;
        }
        for &r in receivers {
            self.in_cuts[r as usize] |= bit;
        }
        true
    }

    /// Lifts every one-way cut.
    pub(super) fn heal_cuts(&mut self) {
        self.cuts_used = 0;
        self.out_cuts.clear();
        self.in_cuts.clear();
    }

    /// Takes the link `node`–`peer` (or every link of `node`) down until
    /// `until`.
    pub(super) fn down(&mut self, node: NodeIdx, peer: Option<NodeIdx>, until: Instant) {
        self.windows.push(Window {
            node,
            peer,
            until,
            kind: WindowKind::Down,
        });
    }

    /// Adds `extra` one-way delay to the link `node`–`peer` (or every link
    /// of `node`) until `until`.
    pub(super) fn delay(
        &mut self,
        node: NodeIdx,
        peer: Option<NodeIdx>,
        extra: Duration,
        until: Instant,
    ) {
        self.windows.push(Window {
            node,
            peer,
            until,
            kind: WindowKind::Delay(extra),
        });
    }

    /// Node `i`'s region index, if a region model is on.
    pub(super) fn region(&self, i: NodeIdx) -> Option<(usize, &str)> {
        let (regions, _, _) = self.regions.as_ref()?;
        let r = self.nodes.get(i as usize)?.region as usize;
        Some((r, regions.names()[r].as_str()))
    }

    /// Node `i`'s upload rate in bytes per second, if limited.
    pub(super) fn upload_of(&self, i: NodeIdx) -> Option<u64> {
        self.nodes
            .get(i as usize)
            .map(|n| n.upload)
            .filter(|&u| u != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_matrix_parses_with_seven_weighted_regions() {
        let geo = Regions::geo();
        assert_eq!(geo.len(), 7);
        assert_eq!(geo.names()[3], "eu-west");
        assert_eq!(geo.one_way(0, 3), Duration::from_millis(38));
        assert!(geo.weights().iter().all(|&w| w > 0));
    }

    #[test]
    fn bad_matrices_are_refused_with_the_line_at_fault() {
        let cases = [
            ("", 0, "no header"),
            ("name,weight,a\n", 1, "header"),
            ("region,weight,a,b\na,1,0,5\n", 0, "\"b\" has no row"),
            ("region,weight,a,b\na,1,0\n", 2, "3 fields, expected 4"),
            ("region,weight,a\n# c\nb,1,0\n", 3, "not in the header"),
            ("region,weight,a\na,0,1\n", 2, "positive integer"),
            ("region,weight,a\na,1,-3\n", 2, "not a number"),
            ("region,weight,a\na,1,x\n", 2, "not a number"),
            ("region,weight,a,a\n", 1, "named twice"),
            ("region,weight,a\na,1,1\na,1,1\n", 3, "two rows"),
        ];
        for (text, line, words) in cases {
            let e = Regions::parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(words), "{text:?}: {e}");
        }
        let ok = Regions::parse("region\tweight\ta\tb\nb\t1\t4\t2.5\na\t3\t1\t4\n").expect("tabs");
        assert_eq!(ok.one_way(1, 0), Duration::from_micros(4000));
        assert_eq!(ok.one_way(1, 1), Duration::from_micros(2500));
        assert_eq!(ok.weights(), &[3, 1]);
    }

    #[test]
    fn rates_parse_in_bits_and_bytes() {
        assert_eq!(Upload::parse("10Mbit"), Ok(Upload::fixed(1_250_000)));
        assert_eq!(Upload::parse("1MB"), Ok(Upload::fixed(1_000_000)));
        assert_eq!(Upload::parse("500kbit"), Ok(Upload::fixed(62_500)));
        assert_eq!(Upload::parse("4096"), Ok(Upload::fixed(4096)));
        assert_eq!(
            Upload::parse("2Mbit..20Mbit"),
            Ok(Upload {
                min_bytes_per_sec: 250_000,
                max_bytes_per_sec: 2_500_000
            })
        );
        let back = Upload::parse("2Mbit..20Mbit").expect("parses").describe();
        assert_eq!(Upload::parse(&back), Upload::parse("2Mbit..20Mbit"));
        assert!(Upload::parse("fast").is_err());
        assert!(Upload::parse("0bit").is_err());
        assert!(Upload::parse("20Mbit..2Mbit").is_err());
    }
}
