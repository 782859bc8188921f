//! The lines the program prints on stdout.
//!
//! Every line starts with a fixed word or sigil, so a script can tell them
//! apart: `<1a2b3c4d> text` is a broadcast, `(direct) <1a2b3c4d> text` a
//! one-way message, `peer up` / `peer down` a peer change. Text from the
//! network is made printable first: a peer must not be able to forge a
//! second line, or drive the terminal with escape sequences.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use ringmesh::{CloseReason, Direction, NodeId};

/// The most characters of one message printed; the rest is summarised.
const MAX_PRINTED_CHARS: usize = 2048;

/// `payload` as one printable line: invalid UTF-8 is replaced, control
/// characters (newlines, escapes) and bidirectional overrides are shown
/// escaped, and a long message is cut at [`MAX_PRINTED_CHARS`].
pub(crate) fn printable(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let mut out = String::with_capacity(text.len().min(MAX_PRINTED_CHARS));
    for (count, (at, c)) in text.char_indices().enumerate() {
        if count == MAX_PRINTED_CHARS {
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

/// Unicode bidirectional embedding, override and isolate controls: they can
/// make a line read differently from what it contains.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The start line; scripts read the address from it.
pub(crate) fn started(id: NodeId, addr: SocketAddr) -> String {
    format!("node {id} listening on {addr}")
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let row = peer_row(id, &[addr], Some(Duration::from_micros(1500)), "up");
        assert_eq!(
            row,
            "1a2b3c4d00000000000000000000ffff  127.0.0.1:4000         rtt 1.5ms     up"
        );
    }
}
