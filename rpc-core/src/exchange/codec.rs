//! The frame codec: tokio-util [`Decoder`]/[`Encoder`] for [`Frame`].

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Frame, HEADER_LEN, MAGIC};

/// Why a byte stream is not a valid frame sequence. After [`FrameError::BadMagic`] the stream
/// cannot be resynchronised and the connection is closed; after [`FrameError::TooLarge`] the
/// decoder skips the announced body (without buffering it) and decoding can go on.
#[derive(Debug)]
pub enum FrameError {
    /// The first two bytes are not `0xdabb`.
    BadMagic(u16),
    /// The header announces a body longer than the `payload` limit. The header fields are
    /// known, so a request can still be answered with `BAD_REQUEST`.
    TooLarge {
        /// Flag byte of the offending frame.
        flag: u8,
        /// Its request id.
        id: u64,
        /// The announced body length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The underlying stream failed.
    Io(std::io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic(m) => write!(f, "bad magic 0x{m:04x}, expected 0x{MAGIC:04x}"),
            FrameError::TooLarge { id, len, limit, .. } => write!(
                f,
                "frame {id} announces a {len}-byte body, over the payload limit of {limit} bytes"
            ),
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Encodes and decodes frames, refusing bodies over `max_body` bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_body: usize,
    /// Bytes of a refused body still to be thrown away.
    skip: usize,
}

impl FrameCodec {
    /// A codec accepting bodies of at most `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        FrameCodec {
            max_body: max_body.min(u32::MAX as usize),
            skip: 0,
        }
    }

    /// Whether the decoder is throwing away the body of a refused frame.
    pub fn is_skipping(&self) -> bool {
        self.skip > 0
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.skip > 0 {
            let n = self.skip.min(src.len());
            src.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let magic = u16::from_be_bytes([src[0], src[1]]);
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let flag = src[2];
        let status = src[3];
        let mut id = [0u8; 8];
        id.copy_from_slice(&src[4..12]);
        let id = u64::from_be_bytes(id);
        let len = u32::from_be_bytes([src[12], src[13], src[14], src[15]]) as usize;
        // The limit is checked before any memory is reserved for the body; the body is then
        // skipped as it arrives, never buffered.
        if len > self.max_body {
            src.advance(HEADER_LEN);
            self.skip = len;
            return Err(FrameError::TooLarge {
                flag,
                id,
                len,
                limit: self.max_body,
            });
        }
        let total = HEADER_LEN + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(len).freeze();
        Ok(Some(Frame {
            flag,
            status,
            id,
            body,
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&frame, dst, self.max_body)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(frame, dst, self.max_body)
    }
}

fn encode_frame(frame: &Frame, dst: &mut BytesMut, max: usize) -> Result<(), FrameError> {
    let len = frame.body.len();
    if len > max {
        return Err(FrameError::TooLarge {
            flag: frame.flag,
            id: frame.id,
            len,
            limit: max,
        });
    }
    dst.reserve(HEADER_LEN + len);
    dst.put_u16(MAGIC);
    dst.put_u8(frame.flag);
    dst.put_u8(frame.status);
    dst.put_u64(frame.id);
    dst.put_u32(len as u32);
    dst.extend_from_slice(&frame.body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{FLAG_REQUEST, FLAG_TWO_WAY};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn frame(id: u64, body: &'static [u8]) -> Frame {
        Frame {
            flag: FLAG_REQUEST | FLAG_TWO_WAY | 24,
            status: 0,
            id,
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn header_is_dubbo_layout() {
        let mut out = BytesMut::new();
        FrameCodec::new(1024)
            .encode(frame(0x0102_0304_0506_0708, b"xyz"), &mut out)
            .expect("encode");
        assert_eq!(
            &out[..],
            &[0xda, 0xbb, 0xd8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3, b'x', b'y', b'z']
        );
    }

    #[test]
    fn decodes_back_to_back_frames_fed_byte_by_byte() {
        let mut codec = FrameCodec::new(1024);
        let mut wire = BytesMut::new();
        codec.encode(frame(1, b"a"), &mut wire).expect("enc");
        codec.encode(frame(2, b""), &mut wire).expect("enc");
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = codec.decode(&mut buf).expect("valid") {
                got.push(f);
            }
        }
        assert_eq!(got, vec![frame(1, b"a"), frame(2, b"")]);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_magic_is_refused() {
        let mut buf = BytesMut::from(&[0u8; 16][..]);
        let e = FrameCodec::new(10).decode(&mut buf).expect_err("bad");
        assert!(matches!(e, FrameError::BadMagic(0)), "{e}");
    }

    #[test]
    fn oversized_body_is_refused_before_reserving() {
        let mut buf = BytesMut::new();
        buf.put_u16(MAGIC);
        buf.put_u8(FLAG_REQUEST | FLAG_TWO_WAY | 24);
        buf.put_u8(0);
        buf.put_u64(77);
        buf.put_u32(u32::MAX);
        let cap = buf.capacity();
        let e = FrameCodec::new(1024).decode(&mut buf).expect_err("big");
        match e {
            FrameError::TooLarge { id, len, limit, .. } => {
                assert_eq!((id, len, limit), (77, u32::MAX as usize, 1024));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(buf.capacity() <= cap, "no memory reserved for the body");
        assert!(buf.is_empty(), "the header was consumed");
    }

    #[test]
    fn a_refused_body_is_skipped_and_the_next_frame_decodes() {
        let mut codec = FrameCodec::new(4);
        let mut wire = BytesMut::new();
        FrameCodec::new(64)
            .encode(frame(1, b"too long body"), &mut wire)
            .expect("enc");
        codec.encode(frame(2, b"ok"), &mut wire).expect("enc");
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut refused = Vec::new();
        for chunk in wire.chunks(3) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => got.push(f.id),
                    Ok(None) => break,
                    Err(FrameError::TooLarge { id, .. }) => refused.push(id),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        }
        assert_eq!((refused, got), (vec![1], vec![2]));
        assert!(!codec.is_skipping());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut codec = FrameCodec::new(256);
            let mut buf = BytesMut::from(&data[..]);
            loop {
                let before = buf.len();
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => {
                        prop_assert!(f.body.len() <= 256);
                        prop_assert_eq!(before - buf.len(), HEADER_LEN + f.body.len());
                    }
                    Ok(None) => break,
                    Err(FrameError::TooLarge { len, .. }) => {
                        prop_assert!(len > 256);
                        prop_assert!(before - buf.len() >= HEADER_LEN, "no progress");
                    }
                    Err(FrameError::BadMagic(_)) => {
                        prop_assert_eq!(before, buf.len());
                        break;
                    }
                    Err(FrameError::Io(_)) => prop_assert!(false, "no i/o here"),
                }
            }
        }

        /// Frames arriving in pieces of any size come out whole, in order, each exactly once
        /// (what the fuzz target checks with arbitrary bytes, here with valid streams).
        #[test]
        fn frames_fed_in_any_chunks_come_out_once_in_order(
            frames in proptest::collection::vec(
                (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)),
                1..6,
            ),
            chunk in 1usize..40,
        ) {
            let mut codec = FrameCodec::new(128);
            let sent: Vec<Frame> = frames
                .into_iter()
                .map(|(id, body)| Frame { flag: FLAG_REQUEST | 24, status: 0, id, body: Bytes::from(body) })
                .collect();
            let mut wire = BytesMut::new();
            for f in &sent {
                codec.encode(f.clone(), &mut wire).expect("enc");
            }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(f) = codec.decode(&mut buf).expect("valid stream") {
                    got.push(f);
                }
            }
            prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
            prop_assert_eq!(got, sent);
        }

        #[test]
        fn mutated_valid_frames_never_panic(
            id in any::<u64>(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let mut codec = FrameCodec::new(128);
            let mut wire = BytesMut::new();
            let f = Frame { flag: FLAG_REQUEST | 24, status: 0, id, body: Bytes::from(body.clone()) };
            codec.encode(f.clone(), &mut wire).expect("enc");
            // Unmutated, the frame round-trips.
            let mut clean = wire.clone();
            prop_assert_eq!(codec.decode(&mut clean).expect("valid"), Some(f));
            for (at, x) in flips {
                let i = at % wire.len();
                wire[i] ^= x;
            }
            let cut = cut % (wire.len() + 1);
            let mut buf = BytesMut::from(&wire[..cut]);
            match codec.decode(&mut buf) {
                Ok(Some(g)) => prop_assert!(g.body.len() <= 128),
                Ok(None) => prop_assert!(buf.len() == cut),
                Err(FrameError::BadMagic(m)) => prop_assert_ne!(m, MAGIC),
                Err(FrameError::TooLarge { len, .. }) => prop_assert!(len > 128),
                Err(FrameError::Io(_)) => prop_assert!(false, "no i/o here"),
            }
        }
    }
}
