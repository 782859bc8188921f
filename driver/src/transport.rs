//! How transport failures reach the node: the io-error mapping and the
//! write-backlog rule.

use std::io;

use ringmesh::TransportError;

/// What a connection whose write backlog went over
/// [`AdapterConfig::max_backlog_bytes`](crate::AdapterConfig::max_backlog_bytes)
/// is closed with: [`TransportError::TimedOut`]. The peer did not take our
/// bytes as fast as we had them to send: a write that timed out, measured
/// in bytes instead of seconds (and unlike [`TransportError::Other`], a
/// reason a peer's operator can act on). The node sees
/// `Input::Closed { reason: BACKLOG_OVERFLOW }`, the application
/// `CloseReason::Transport(BACKLOG_OVERFLOW)`.
pub const BACKLOG_OVERFLOW: TransportError = TransportError::TimedOut;

/// The protocol's view of an I/O error on a dial, a read or a write: the
/// one mapping both adapters use.
///
/// | `io::ErrorKind` | `TransportError` |
/// |---|---|
/// | `ConnectionRefused` | `Refused` |
/// | `ConnectionReset`, `ConnectionAborted`, `BrokenPipe` | `Reset` |
/// | `TimedOut` | `TimedOut` |
/// | `HostUnreachable`, `NetworkUnreachable`, `NetworkDown`, `AddrNotAvailable` | `Unreachable` |
/// | `UnexpectedEof` | `Eof` |
/// | anything else (`WriteZero` included) | `Other` |
///
/// A read of zero bytes is the peer's clean close: [`TransportError::Eof`],
/// not an error kind.
pub fn transport_error(error: &io::Error) -> TransportError {
    use io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused => TransportError::Refused,
        ConnectionReset | ConnectionAborted | BrokenPipe => TransportError::Reset,
        TimedOut => TransportError::TimedOut,
        HostUnreachable | NetworkUnreachable | NetworkDown | AddrNotAvailable => {
            TransportError::Unreachable
        }
        UnexpectedEof => TransportError::Eof,
        _ => TransportError::Other,
    }
}

/// The write-backlog rule: a connection holding `queued` bytes not yet
/// taken by its socket may queue `len` more if the total stays within
/// `cap`. Returns the new total, or (`Err`) the total it would have been,
/// saturating: then the adapter drops what was queued and closes the
/// connection with [`BACKLOG_OVERFLOW`].
///
/// A frame that exactly fills the cap is admitted, so a cap of
/// [`AdapterConfig::min_backlog_bytes`](crate::AdapterConfig::min_backlog_bytes)
/// takes one maximal frame into an empty backlog. The sum never wraps,
/// however large `cap` is.
pub fn admit_to_backlog(queued: usize, len: usize, cap: usize) -> Result<usize, usize> {
    match queued.checked_add(len) {
        Some(total) if total <= cap => Ok(total),
        Some(total) => Err(total),
        None => Err(usize::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io::ErrorKind::*;

    #[test]
    fn io_errors_map_onto_transport_errors() {
        let cases = [
            (ConnectionRefused, TransportError::Refused),
            (ConnectionReset, TransportError::Reset),
            (ConnectionAborted, TransportError::Reset),
            (BrokenPipe, TransportError::Reset),
            (TimedOut, TransportError::TimedOut),
            (HostUnreachable, TransportError::Unreachable),
            (NetworkUnreachable, TransportError::Unreachable),
            (NetworkDown, TransportError::Unreachable),
            (AddrNotAvailable, TransportError::Unreachable),
            (UnexpectedEof, TransportError::Eof),
            (WriteZero, TransportError::Other),
            (PermissionDenied, TransportError::Other),
            (InvalidInput, TransportError::Other),
        ];
        for (kind, expected) in cases {
            assert_eq!(
                transport_error(&io::Error::from(kind)),
                expected,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_refused_dial_on_loopback_maps_to_refused() {
        // What a real socket returns (a raw OS error), not a constructed kind.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let error = std::net::TcpStream::connect(addr).expect_err("nobody listens");
        assert!(error.raw_os_error().is_some(), "{error:?}");
        assert_eq!(transport_error(&error), TransportError::Refused);
    }

    #[test]
    fn a_backlog_overflow_is_a_write_that_timed_out() {
        assert_eq!(BACKLOG_OVERFLOW, TransportError::TimedOut);
    }

    #[test]
    fn the_backlog_admits_up_to_its_cap_and_not_a_byte_more() {
        assert_eq!(admit_to_backlog(0, 100, 100), Ok(100));
        assert_eq!(admit_to_backlog(60, 40, 100), Ok(100));
        assert_eq!(admit_to_backlog(60, 41, 100), Err(101));
        assert_eq!(admit_to_backlog(0, 101, 100), Err(101));
        assert_eq!(admit_to_backlog(0, 0, 0), Ok(0));
    }

    #[test]
    fn the_backlog_sum_never_wraps_past_a_huge_cap() {
        // A wrapping add would make this total tiny and let it through.
        assert_eq!(
            admit_to_backlog(usize::MAX - 1, 2, usize::MAX),
            Err(usize::MAX)
        );
        assert_eq!(
            admit_to_backlog(usize::MAX, usize::MAX, usize::MAX),
            Err(usize::MAX)
        );
        assert_eq!(
            admit_to_backlog(usize::MAX - 1, 1, usize::MAX),
            Ok(usize::MAX)
        );
    }
}
