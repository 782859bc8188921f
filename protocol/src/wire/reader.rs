//! A bounds-checked reader over a frame body.

use bytes::{Buf, Bytes};

use super::{DecodeError, get_varint};

/// Reads fields from a [`Bytes`] without panicking; byte strings are returned
/// as slices of the same buffer (no copy).
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    /// A reader over `buf`.
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::UnexpectedEnd);
        }
        Ok(self.buf.get_u8())
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A canonical varint.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let (value, len) = get_varint(&self.buf)?;
        self.buf.advance(len);
        Ok(value)
    }

    /// Exactly `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        if self.buf.len() < N {
            return Err(DecodeError::UnexpectedEnd);
        }
        let mut out = [0u8; N];
        self.buf.copy_to_slice(&mut out);
        Ok(out)
    }

    /// `len` bytes as a slice of the underlying buffer.
    pub fn bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < len {
            return Err(DecodeError::UnexpectedEnd);
        }
        Ok(self.buf.split_to(len))
    }

    /// Everything left, as a slice of the underlying buffer.
    pub fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.buf)
    }

    /// A list length: a varint no larger than `max`. Checked before any
    /// item is read, so a claimed length never sizes an allocation.
    pub fn list_len(&mut self, max: usize) -> Result<usize, DecodeError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::TooMany { len, max });
        }
        Ok(len as usize)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}
