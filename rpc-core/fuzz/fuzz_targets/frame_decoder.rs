//! Feeds arbitrary bytes, in arbitrary chunks, to the frame decoder: it must never panic, never
//! yield a body over the limit, and always make progress after refusing a frame.
//!
//! Run with `cargo +nightly fuzz run frame_decoder` from `rpc-core/`.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::exchange::{FrameCodec, FrameError, HEADER_LEN};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut codec = FrameCodec::new(4096);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.body.len() <= 4096);
                    assert_eq!(before - buf.len(), HEADER_LEN + f.body.len());
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, .. }) => {
                    assert!(len > 4096);
                    assert!(before - buf.len() >= HEADER_LEN);
                }
                Err(_) => return,
            }
        }
    }
});
