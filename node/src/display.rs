//! The lines the program prints on stdout.
//!
//! Every line starts with a fixed word or sigil, so a script can tell them
//! apart: `<1a2b3c4d> text` is a broadcast, `(direct) <1a2b3c4d> text` a
//! one-way message, `peer up` / `peer down` a peer change, `ring:` the
//! node's place in the ring, `KEY = VALUE (version N)` a table read. Text
//! from the
//! network is made printable first: a peer must not be able to forge a
//! second line, or drive the terminal with escape sequences.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;

use ringmesh::{ChordRole, CloseReason, Direction, Duration, NodeId, ReachStats, TransportError};

use crate::ring_view::RingView;

/// The most characters of one message printed; the rest is summarised.
const MAX_PRINTED_CHARS: usize = 2048;

/// `payload` as one printable line: invalid UTF-8 is replaced, control
/// characters (newlines, escapes) and bidirectional overrides are shown
/// escaped, and a long message is cut at [`MAX_PRINTED_CHARS`].
pub(crate) fn printable(payload: &[u8]) -> String {
    escaped(&String::from_utf8_lossy(payload), MAX_PRINTED_CHARS)
}

/// `text` with control characters and bidirectional overrides escaped,
/// cut after `max` characters with the rest summarised.
fn escaped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (count, (at, c)) in text.char_indices().enumerate() {
        if count == max {
            let _ = write!(out, "… (+{} bytes)", text.len() - at);
            break;
        }
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The most characters of a console line echoed back in an error.
const MAX_ECHOED_CHARS: usize = 40;

/// What the person typed, echoed back in an error: escaped as
/// [`printable`] does (a typed ESC must not drive the terminal), and cut
/// short.
pub(crate) fn echo(typed: &str) -> String {
    escaped(typed, MAX_ECHOED_CHARS)
}

/// Why a connection ended, in words (for `could not reach ADDR: …`).
pub(crate) fn close_reason(reason: &CloseReason) -> String {
    match reason {
        CloseReason::DialFailed(e) => transport_error(*e).to_owned(),
        CloseReason::Transport(e) => {
            format!(
                "connection lost before the handshake ended ({})",
                transport_error(*e)
            )
        }
        other => other.to_string(),
    }
}

/// A transport failure as the OS would word it.
fn transport_error(error: TransportError) -> &'static str {
    match error {
        TransportError::Refused => "connection refused",
        TransportError::TimedOut => "timed out",
        TransportError::Unreachable => "address unreachable",
        TransportError::Reset => "connection reset",
        TransportError::Eof => "connection closed by the other side",
        _ => "I/O error",
    }
}

/// Unicode bidirectional embedding, override and isolate controls: they can
/// make a line read differently from what it contains.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The start line; scripts read the address from it.
pub(crate) fn started(id: NodeId, addr: SocketAddr) -> String {
    format!("node {id} listening on {addr}")
}

/// The addresses the node tells peers to dial it at (`--announce`, else
/// the listen address, else, listening on every interface, the
/// interfaces' addresses: never `0.0.0.0`).
pub(crate) fn announcing(addrs: &[SocketAddr]) -> String {
    if addrs.is_empty() {
        return "announcing no address: peers cannot dial this node back".to_owned();
    }
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!("announcing {}", list.join(" "))
}

/// A node heard on the LAN, about to be dialled.
pub(crate) fn lan_found(id: NodeId, addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!("found <{}> on the LAN at {}", id.short(), list.join(" "))
}

/// Enough peers see this node at `addr`: it announces it from now on.
pub(crate) fn address_adopted(addr: SocketAddr, observers: usize) -> String {
    format!("{observers} peers see this node at {addr}: announcing it")
}

/// A reachability check of `addr` ended: `reached` of `asked` peers
/// dialled this node back there.
pub(crate) fn reachability(
    addr: SocketAddr,
    reachable: bool,
    reached: usize,
    asked: usize,
) -> String {
    let verdict = if reachable {
        "reachable"
    } else {
        "not reachable"
    };
    format!("{verdict} at {addr} ({reached} of {asked} peers dialled it back)")
}

/// `status`: what the node announces, what its peers told it, and the
/// last reachability check of each address checked.
pub(crate) fn status(
    announced: &[SocketAddr],
    reach: &ReachStats,
    checked: &BTreeMap<SocketAddr, bool>,
) -> String {
    let mut out = format!(
        "{}\nobserved addresses: {} reports from peers, {} adopted",
        announcing(announced),
        reach.observations,
        reach.adopted
    );
    if checked.is_empty() {
        out.push_str("\nreachability: not checked yet");
    }
    for (addr, &reachable) in checked {
        let verdict = if reachable {
            "reachable"
        } else {
            "not reachable"
        };
        let _ = write!(out, "\nreachability: {verdict} at {addr}");
    }
    out
}

/// What `status` says of relays: this node's reservations, the circuits
/// it is an end of, and what it carries as a relay.
pub(crate) struct RelayView {
    /// Relays holding a reservation of this node.
    pub(crate) relays: Vec<NodeId>,
    /// As a relay: circuits carried, reservations held.
    pub(crate) load: (usize, usize),
    /// The counters.
    pub(crate) stats: ringmesh::RelayStats,
}

/// `status`'s relay lines.
pub(crate) fn relay_status(view: &RelayView) -> String {
    let s = &view.stats;
    let relays = if view.relays.is_empty() {
        "none".to_owned()
    } else {
        view.relays
            .iter()
            .map(|r| format!("<{}>", r.short()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "relays holding a reservation: {relays}\n\
         relayed sessions: {} dialled, {} accepted; {} bytes sent, {} received through relays\n\
         hole punches: {} attempts, {} succeeded, {} failed\n\
         as a relay: {} circuits, {} reservations now; {} circuits opened, {} refused, {} closed at a limit; {} bytes relayed",
        s.circuits_dialled,
        s.circuits_accepted,
        s.relayed_bytes_sent,
        s.relayed_bytes_received,
        s.punch_attempts,
        s.punch_successes,
        s.punch_failures,
        view.load.0,
        view.load.1,
        s.circuits_opened,
        s.circuits_refused,
        s.circuits_limited,
        s.bytes_relayed,
    )
}

/// A broadcast from `origin`.
pub(crate) fn broadcast(origin: NodeId, payload: &[u8]) -> String {
    format!("<{}> {}", origin.short(), printable(payload))
}

/// A one-way message from `from`.
pub(crate) fn direct(from: NodeId, payload: &[u8]) -> String {
    format!("(direct) <{}> {}", from.short(), printable(payload))
}

/// `peer` is connected.
pub(crate) fn peer_up(peer: NodeId, remote: SocketAddr, direction: Direction) -> String {
    let direction = match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    };
    format!("peer up <{}> {remote} ({direction})", peer.short())
}

/// `peer` is no longer connected.
pub(crate) fn peer_down(peer: NodeId, reason: &CloseReason) -> String {
    format!("peer down <{}> ({reason})", peer.short())
}

/// This node joined the ring.
pub(crate) fn joined(successor: NodeId, predecessor: NodeId, hops: u32) -> String {
    let s = if hops == 1 { "" } else { "s" };
    format!(
        "joined the ring (successor <{}>, predecessor <{}>, {hops} hop{s})",
        successor.short(),
        predecessor.short()
    )
}

/// The node's place in the ring: printed by `ring`, and whenever it
/// changes while the node is a member.
pub(crate) fn ring(view: &RingView) -> String {
    match view.role {
        ChordRole::Off => "ring: off (this node runs with --no-chord)".to_owned(),
        ChordRole::Out => "ring: not a member (yet)".to_owned(),
        ChordRole::Member => {
            let successors = if view.successors.is_empty() {
                "none".to_owned()
            } else {
                view.successors
                    .iter()
                    .map(|id| format!("<{}>", id.short()))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let predecessor = match view.predecessor {
                Some(id) => format!("<{}>", id.short()),
                None => "none".to_owned(),
            };
            format!("ring: member, successors {successors}, predecessor {predecessor}")
        }
    }
}

/// What this node stores of the table (the second line of `ring`).
pub(crate) fn stored(view: &RingView) -> String {
    let (entries, bytes) = view.stored;
    let s = if entries == 1 { "y" } else { "ies" };
    format!("table: {entries} entr{s} ({bytes} bytes) stored on this node")
}

/// A `put` or `del` every replica acknowledged.
pub(crate) fn put_acked(key: &str, deleted: bool, version: u64) -> String {
    let done = if deleted { "deleted" } else { "stored" };
    format!("{done} {} (version {version})", printable(key.as_bytes()))
}

/// The answer to a `get`, naming who signed the entry. Version 0 means
/// the key was never written; a missing value with a version is a delete.
pub(crate) fn got(key: &str, value: Option<&[u8]>, version: u64, writer: Option<NodeId>) -> String {
    let key = printable(key.as_bytes());
    let by = writer.map_or(String::new(), |w| format!(", by <{}>", w.short()));
    match value {
        Some(value) => format!("{key} = {} (version {version}{by})", printable(value)),
        None if version == 0 => format!("{key}: not found"),
        None => format!("{key}: not found (deleted, version {version}{by})"),
    }
}

/// A sync-table key as this node holds it (`sync get`, `sync list`).
pub(crate) fn sync_got(key: &str, held: Option<&ringmesh::SyncHeld>) -> String {
    let key = printable(key.as_bytes());
    match held {
        Some(ringmesh::SyncHeld {
            value: Some(value),
            writer,
            ..
        }) => format!("{key} = {} (by <{}>)", printable(value), writer.short()),
        Some(held) => format!("{key}: not found (deleted by <{}>)", held.writer.short()),
        None => format!("{key}: not found"),
    }
}

/// Another node changed a sync-table key.
pub(crate) fn sync_changed(key: &[u8], value: Option<&[u8]>, writer: NodeId) -> String {
    match value {
        Some(value) => format!(
            "sync: {} = {} (by <{}>)",
            printable(key),
            printable(value),
            writer.short()
        ),
        None => format!("sync: {} deleted (by <{}>)", printable(key), writer.short()),
    }
}

/// One line of the `peers` listing.
pub(crate) fn peer_row(
    id: NodeId,
    addrs: &[SocketAddr],
    rtt: Option<Duration>,
    state: &str,
) -> String {
    let addrs = if addrs.is_empty() {
        "-".to_owned()
    } else {
        addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let rtt = match rtt {
        Some(rtt) => format!("{:.1}ms", rtt.as_secs_f64() * 1000.0),
        None => "-".to_owned(),
    };
    format!("{id}  {addrs:<21}  rtt {rtt:<8}  {state}")
}

/// Prints one line on stdout. A closed stdout is not worth dying for: the
/// node keeps serving its peers.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_lines_say_how_many_peers_reached_the_node() {
        let addr: SocketAddr = "203.0.113.9:4001".parse().expect("addr");
        assert_eq!(
            reachability(addr, true, 2, 3),
            "reachable at 203.0.113.9:4001 (2 of 3 peers dialled it back)"
        );
        let mut checked = BTreeMap::new();
        assert!(status(&[addr], &ReachStats::default(), &checked).ends_with("not checked yet"));
        checked.insert(addr, false);
        assert_eq!(
            status(&[addr], &ReachStats::default(), &checked),
            "announcing 203.0.113.9:4001\nobserved addresses: 0 reports from peers, 0 adopted\n\
             reachability: not reachable at 203.0.113.9:4001"
        );
    }

    #[test]
    fn network_text_cannot_forge_lines_or_escape_sequences() {
        assert_eq!(printable(b"hello mesh"), "hello mesh");
        assert_eq!(printable("héllo ✓".as_bytes()), "héllo ✓");
        let forged = printable(b"hi\n<00000000> fake\r\x1b[2J");
        assert!(!forged.contains('\n') && !forged.contains('\r') && !forged.contains('\x1b'));
        assert_eq!(forged, "hi\\n<00000000> fake\\r\\u{1b}[2J");
        assert_eq!(printable("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(printable(b"bad \xff utf8"), "bad \u{fffd} utf8");
    }

    #[test]
    fn echoes_are_escaped_and_short() {
        assert_eq!(echo("fl\x1b[2Jy"), "fl\\u{1b}[2Jy");
        let long = "y".repeat(MAX_ECHOED_CHARS + 5);
        assert_eq!(
            echo(&long),
            format!("{}… (+5 bytes)", "y".repeat(MAX_ECHOED_CHARS))
        );
        assert_eq!(
            close_reason(&CloseReason::DialFailed(TransportError::Refused)),
            "connection refused"
        );
    }

    #[test]
    fn long_messages_are_cut_with_the_rest_counted() {
        let long = "x".repeat(MAX_PRINTED_CHARS + 10);
        let shown = printable(long.as_bytes());
        assert!(shown.starts_with(&"x".repeat(MAX_PRINTED_CHARS)));
        assert!(shown.ends_with("… (+10 bytes)"), "{shown}");
    }

    #[test]
    fn lines_carry_the_short_sender_id() {
        let id = NodeId::from_u128(0x1a2b3c4d_u128 << 96 | 0xffff);
        assert_eq!(broadcast(id, b"hello"), "<1a2b3c4d> hello");
        assert_eq!(direct(id, b"psst"), "(direct) <1a2b3c4d> psst");
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        assert_eq!(
            started(id, addr),
            "node 1a2b3c4d00000000000000000000ffff listening on 127.0.0.1:4000"
        );
        assert_eq!(
            peer_up(id, addr, Direction::Inbound),
            "peer up <1a2b3c4d> 127.0.0.1:4000 (inbound)"
        );
        assert_eq!(
            joined(id, NodeId::from_u128(7 << 96), 1),
            "joined the ring (successor <1a2b3c4d>, predecessor <00000007>, 1 hop)"
        );
        let row = peer_row(id, &[addr], Some(Duration::from_micros(1500)), "up");
        assert_eq!(
            row,
            "1a2b3c4d00000000000000000000ffff  127.0.0.1:4000         rtt 1.5ms     up"
        );
    }

    #[test]
    fn ring_lines_name_successors_nearest_first() {
        let a = NodeId::from_u128(0xaaaa_aaaa << 96);
        let b = NodeId::from_u128(0xbbbb_bbbb << 96);
        let c = NodeId::from_u128(0xcccc_cccc << 96);
        let mut view = RingView {
            role: ChordRole::Member,
            successors: vec![b, c],
            predecessor: Some(a),
            stored: (1, 12),
        };
        assert_eq!(
            ring(&view),
            "ring: member, successors <bbbbbbbb> <cccccccc>, predecessor <aaaaaaaa>"
        );
        assert_eq!(
            stored(&view),
            "table: 1 entry (12 bytes) stored on this node"
        );
        view.successors.clear();
        view.predecessor = None;
        assert_eq!(
            ring(&view),
            "ring: member, successors none, predecessor none"
        );
        view.role = ChordRole::Out;
        assert_eq!(ring(&view), "ring: not a member (yet)");
    }

    #[test]
    fn table_answers_tell_values_deletes_and_absence_apart() {
        assert_eq!(put_acked("colour", false, 1), "stored colour (version 1)");
        assert_eq!(put_acked("colour", true, 2), "deleted colour (version 2)");
        let writer = Some(NodeId::from_u128(0x1a2b_3c4d << 96));
        assert_eq!(
            got("colour", Some(b"deep blue"), 1, writer),
            "colour = deep blue (version 1, by <1a2b3c4d>)"
        );
        assert_eq!(
            got("colour", None, 2, writer),
            "colour: not found (deleted, version 2, by <1a2b3c4d>)"
        );
        assert_eq!(got("shape", None, 0, None), "shape: not found");
        assert_eq!(
            got("k", Some(b"v\n<x> y"), 3, None),
            "k = v\\n<x> y (version 3)"
        );
    }
}
