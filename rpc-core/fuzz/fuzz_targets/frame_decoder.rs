//! Feeds arbitrary bytes, in arbitrary chunks, to the frame decoder: it must never panic, never
//! yield a body over the limit, and account for every byte it consumed.
//!
//! Run with `cargo +nightly fuzz run frame_decoder` from `rpc-core/`.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::exchange::{FrameCodec, HEADER_LEN};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut codec = FrameCodec::new(4096);
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.body.len() <= 4096);
                    consumed += HEADER_LEN + f.body.len();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert_eq!(consumed + buf.len(), fed);
    }
});
