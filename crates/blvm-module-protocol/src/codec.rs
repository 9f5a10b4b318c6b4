//! The framing codec: a 4-byte big-endian length, then that many bytes of
//! payload. Sans-I/O: push bytes in, take frames out; the SDK, the host,
//! the fuzz targets and the benchmarks share it and tests need no socket.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::FrameError;
use crate::frame::Frame;

/// The default maximum payload: room for a 4 MB block with its envelope,
/// and for batches of large responses.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Splits a byte stream into frames, refusing any frame longer than its
/// maximum *before* allocating for it.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder refusing payloads longer than `max_frame_len`.
    pub const fn new(max_frame_len: usize) -> Self {
        FrameDecoder { max_frame_len }
    }

    /// The configured maximum.
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Takes the next complete payload off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed (and `buf` has been reserved
    /// for the rest of the frame, so the next read fills it).
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] when the length prefix exceeds the maximum;
    /// the stream cannot be resynchronised after that.
    pub fn next_payload(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// Takes and decodes the next complete frame.
    pub fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.next_payload(buf)? {
            Some(payload) => Ok(Some(Frame::decode(payload)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_any_boundary() {
        let mut wire = Vec::new();
        crate::frame::encode::request(&mut wire, 1, "ping", &crate::Empty {}).unwrap();
        crate::frame::encode::request(&mut wire, 2, "ping", &crate::Empty {}).unwrap();
        let dec = FrameDecoder::default();
        for split in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..split]);
            let mut got = Vec::new();
            while let Some(f) = dec.next_frame(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&wire[split..]);
            while let Some(f) = dec.next_frame(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let dec = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let cap = buf.capacity();
        assert_eq!(
            dec.next_payload(&mut buf),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 1024
            })
        );
        assert_eq!(buf.capacity(), cap);
    }
}
