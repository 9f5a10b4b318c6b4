//! The little MessagePack reader the frame envelope needs.
//!
//! The envelope (`type`, `id`, `method`, `seq`, …) is scanned by hand so that
//! the `params`, `result` and `payload` values can be handed on as byte
//! ranges, undecoded: the host decodes params only for methods it knows,
//! and an unknown event keeps its bytes. Skipping is iterative, so a deeply
//! nested value from an untrusted peer cannot exhaust the stack.

use crate::error::DecodeError;

/// A cursor over one frame's payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Reads a map header.
    pub(crate) fn map_len(&mut self) -> Result<u32, DecodeError> {
        match self.byte()? {
            m @ 0x80..=0x8f => Ok(u32::from(m & 0x0f)),
            0xde => Ok(self.be(2)? as u32),
            0xdf => Ok(self.be(4)? as u32),
            _ => Err(DecodeError::NotAMap),
        }
    }

    /// Reads a string (the envelope's keys and names).
    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = match self.byte()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err(DecodeError::WrongType("string")),
        };
        std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::WrongType("utf-8 string"))
    }

    /// Reads a non-negative integer of any width.
    pub(crate) fn uint(&mut self) -> Result<u64, DecodeError> {
        match self.byte()? {
            m @ 0x00..=0x7f => Ok(u64::from(m)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            // Signed encodings of non-negative values are accepted: some
            // MessagePack libraries always write signed integers.
            0xd0 => self.signed(1),
            0xd1 => self.signed(2),
            0xd2 => self.signed(4),
            0xd3 => self.signed(8),
            _ => Err(DecodeError::WrongType("unsigned integer")),
        }
    }

    fn signed(&mut self, n: usize) -> Result<u64, DecodeError> {
        let raw = self.be(n)?;
        let shift = 64 - 8 * n as u32;
        let v = ((raw << shift) as i64) >> shift;
        u64::try_from(v).map_err(|_| DecodeError::WrongType("unsigned integer"))
    }

    /// Skips one complete value, returning the byte range it occupied.
    pub(crate) fn skip_value(&mut self) -> Result<std::ops::Range<usize>, DecodeError> {
        let start = self.pos;
        // Values still to skip; containers add their children.
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker = self.byte()?;
            let (skip, children): (u64, u64) = match marker {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
                0x90..=0x9f => (0, u64::from(marker & 0x0f)),
                0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
                0xc4 | 0xd9 => (self.be(1)?, 0),
                0xc5 | 0xda => (self.be(2)?, 0),
                0xc6 | 0xdb => (self.be(4)?, 0),
                0xc7 => (self.be(1)? + 1, 0),
                0xc8 => (self.be(2)? + 1, 0),
                0xc9 => (self.be(4)? + 1, 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc | 0xd0 => (1, 0),
                0xcd | 0xd1 => (2, 0),
                0xce | 0xd2 => (4, 0),
                0xcf | 0xd3 => (8, 0),
                0xd4 => (2, 0),
                0xd5 => (3, 0),
                0xd6 => (5, 0),
                0xd7 => (9, 0),
                0xd8 => (17, 0),
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
                0xc1 => return Err(DecodeError::InvalidMarker(marker)),
            };
            let skip = usize::try_from(skip).map_err(|_| DecodeError::Truncated)?;
            self.take(skip)?;
            // Every child needs at least one byte, so a count larger than
            // what is left is a lie; refuse it before looping on it.
            pending = pending.saturating_add(children);
            if pending > (self.buf.len() - self.pos) as u64 {
                return Err(DecodeError::Truncated);
            }
        }
        Ok(start..self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_nested_values_and_reports_their_range() {
        #[derive(serde::Serialize)]
        struct Inner {
            a: Vec<u32>,
            b: Option<String>,
            c: f64,
        }
        let mut bytes = rmp_serde::to_vec_named(&Inner {
            a: vec![1, 300, 70000],
            b: Some("x".into()),
            c: 1.5,
        })
        .unwrap();
        let len = bytes.len();
        bytes.push(0x07);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.skip_value().unwrap(), 0..len);
        assert_eq!(r.uint().unwrap(), 7);
        assert!(r.is_at_end());
    }

    #[test]
    fn lying_lengths_are_refused_without_allocating() {
        // array32 claiming 4 billion elements in a 5-byte buffer
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(r.skip_value(), Err(DecodeError::Truncated)));
        let mut r = Reader::new(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(r.skip_value(), Err(DecodeError::Truncated)));
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut deep = vec![0x91u8; 1_000_000];
        deep.push(0xc0);
        let mut r = Reader::new(&deep);
        assert_eq!(r.skip_value().unwrap().len(), deep.len());
    }

    #[test]
    fn signed_encodings_of_positive_ints_are_accepted() {
        assert_eq!(Reader::new(&[0xd1, 0x01, 0x00]).uint().unwrap(), 256);
        assert!(Reader::new(&[0xd0, 0xff]).uint().is_err());
    }
}
