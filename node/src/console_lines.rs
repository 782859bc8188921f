//! [`ConsoleLines`]: the console's input, a line at a time, with a bound
//! on how long a line may be.

use std::io::{self, BufRead};

use tracing::warn;

/// One line of the console, or what is left of one that was too long.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConsoleLine {
    /// A line, with its newline if it had one.
    Line(String),
    /// A line longer than the cap was skipped: its length in bytes.
    TooLong(usize),
}

/// The console's lines, read through a buffer of the reader's own size: a
/// line longer than `max` bytes is skipped as it streams in (and reported
/// as [`ConsoleLine::TooLong`]), never held whole.
pub(crate) struct ConsoleLines<R> {
    reader: R,
    max: usize,
    line: Vec<u8>,
    /// Bytes of a too-long line so far; `None` while the line fits.
    skipped: Option<usize>,
    done: bool,
}

impl<R: BufRead> ConsoleLines<R> {
    pub(crate) fn new(reader: R, max: usize) -> Self {
        ConsoleLines {
            reader,
            max,
            line: Vec::new(),
            skipped: None,
            done: false,
        }
    }

    /// The line read so far, as an input, and the reader ready for the next.
    fn finish(&mut self) -> ConsoleLine {
        let input = match self.skipped.take() {
            Some(len) => ConsoleLine::TooLong(len),
            None => ConsoleLine::Line(String::from_utf8_lossy(&self.line).into_owned()),
        };
        self.line.clear();
        input
    }
}

impl<R: BufRead> Iterator for ConsoleLines<R> {
    type Item = ConsoleLine;

    fn next(&mut self) -> Option<ConsoleLine> {
        while !self.done {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(error = %e, "cannot read stdin; treating it as closed");
                    self.done = true;
                    break;
                }
            };
            if buf.is_empty() {
                self.done = true;
                // A last line without its newline still counts.
                if self.line.is_empty() && self.skipped.is_none() {
                    return None;
                }
                return Some(self.finish());
            }
            let (take, ends) = match buf.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buf.len(), false),
            };
            match &mut self.skipped {
                Some(len) => *len += take,
                None if self.line.len() + take > self.max => {
                    self.skipped = Some(self.line.len() + take);
                    self.line.clear();
                }
                None => self.line.extend_from_slice(&buf[..take]),
            }
            self.reader.consume(take);
            if ends {
                return Some(self.finish());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        // A reader buffer smaller than a line: the skipping spans fills.
        let reader = std::io::BufReader::with_capacity(4, input);
        ConsoleLines::new(reader, max)
            .map(|input| match input {
                ConsoleLine::Line(line) => format!("line {line:?}"),
                ConsoleLine::TooLong(len) => format!("too long {len}"),
            })
            .collect()
    }

    #[test]
    fn console_lines_longer_than_the_cap_are_skipped_and_counted() {
        assert_eq!(
            lines(b"peers\nxxxxxxxxxxxxxxxxxxxx\nring\nlast", 10),
            [
                "line \"peers\\n\"",
                "too long 21",
                "line \"ring\\n\"",
                "line \"last\""
            ]
        );
        // Exactly the cap fits; a too-long last line without a newline is
        // reported too.
        assert_eq!(
            lines(b"123456789\nabcdefghijkl", 10),
            ["line \"123456789\\n\"", "too long 12"]
        );
        assert!(lines(b"", 10).is_empty());
    }
}
