//! Exchange: frames, request ids, pending calls, heartbeats and reconnects.
//!
//! This layer sits between the remote protocol ([`crate::protocol`]'s `dubbo`) and the
//! byte streams of a [`Transporter`](crate::transport::Transporter). It knows nothing of
//! services or values: it moves [`Frame`]s.
//!
//! # Frame (byte-compatible with dubbo:// framing)
//!
//! ```text
//!  0      2      3        4                  12            16
//!  +------+------+--------+------------------+-------------+----------------+
//!  | dabb | flag | status |  request id (BE) | body len BE | body ...       |
//!  +------+------+--------+------------------+-------------+----------------+
//!  flag = 0x80 request | 0x40 two-way | 0x20 event | 5-bit serialization id
//! ```
//!
//! The status byte is meaningful in responses only ([`status`]). Heartbeats are event frames
//! with an empty body. The body layout belongs to the protocol (see `protocol::dubbo`).
//!
//! # Consumer side ([`Client`])
//!
//! One multiplexed connection per provider address is shared by every reference in the
//! process (`connections=N` opens N and round-robins over them). Each call takes a request id
//! from a process-wide counter, parks a waiter in a sharded pending table and waits
//! until its deadline; on timeout the entry is removed, so a late response finds nobody and is
//! dropped (counted by [`dropped_responses`]). Writes go through one writer task per
//! connection draining a bounded queue and flushing only when the queue is momentarily empty,
//! so concurrent small calls share system calls; a full queue makes senders wait (within their
//! deadline). Responses are read by one reader task per connection, which hands each to its
//! waiter. A two-way call alone on its connection does without both hand-overs: with nothing
//! queued before it, it writes its frame itself without waiting (what the socket does not
//! take at once, the writer task finishes), and while it waits it reads the socket itself
//! (the reader task takes the socket back as soon as another call waits, when the call is
//! dropped, and at the next 10 ms tick if the call is no longer polled). Idle connections
//! send heartbeats (`heartbeat` ms, default 60000); a peer silent for three heartbeats is declared dead. A dead connection fails its pending calls at once
//! with [`ErrorKind::Network`](crate::ErrorKind::Network) and is reopened with exponential
//! backoff (`reconnect.interval` ms, default 100, doubling up to `reconnect.max` ms, default
//! 3000); calls made while it is down fail fast.
//!
//! # Provider side ([`Server`])
//!
//! An accept loop and one task per connection, which reads requests and writes answers. Each
//! request is polled once by that task: a method that completes without waiting is answered
//! at once, with no task of its own, and the answers to one read go out in one write before
//! the connection is read again; one that waits (I/O, timers, locks) continues in a spawned
//! task, so it never holds up the other calls on its connection, and hands its answer back to
//! the connection's task. Once a connection's requests compute in place for long (over
//! `inplace.budget` of the thread's CPU time), its requests run in tasks of their own for a
//! while ([`Placement`]), so a computation no longer holds up the calls behind it. A method
//! that blocks its thread (a sleep, blocking I/O) uses no CPU time and is not moved: run such
//! work with `tokio::task::spawn_blocking`, as in any async code. A connection that sends
//! nothing for `idle.timeout` ms (default three heartbeats) — for instance one that stalls in
//! the middle of a frame — is closed, and so is one whose answers cannot be written for as
//! long (a peer that stopped reading; on the consumer side the bound is three heartbeats). At most `threads` requests execute at once
//! (status 100 beyond) and at most `accepts` connections are open (unlimited by default).
//! Closing a server stops the listener; connections stop reading, let in-flight requests
//! answer, then close.
//!
//! # Limits
//!
//! `payload` (bytes, default [`DEFAULT_PAYLOAD`]) bounds a frame body; the decoder checks it
//! from the header before reserving any memory for the body, then skips that body as it
//! arrives. The request id is known from the header, so only that call fails: a provider
//! answers `BAD_REQUEST`, a consumer fails the waiting call with `Codec`; the shared connection
//! goes on. A bad magic cannot be resynchronised and closes the connection.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};

use crate::error::Result;

mod client;
mod codec;
pub mod guard;
mod inlet;
mod outlet;
mod server;

pub use client::{Client, ClientConfig};
pub use codec::{FrameCodec, FrameError};
pub use server::{
    Handled, Handler, Placement, Server, ServerConfig, DEFAULT_ACCEPTS, DEFAULT_INFLIGHT,
    DEFAULT_IN_PLACE_BUDGET_US, DEFAULT_PAYLOAD_BUDGET, DEFAULT_THREADS, OFFLOAD_FOR,
};

/// The two magic bytes every frame starts with.
pub const MAGIC: u16 = 0xdabb;
/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 16;
/// Flag bit: the frame is a request (else a response).
pub const FLAG_REQUEST: u8 = 0x80;
/// Flag bit: the request expects a response.
pub const FLAG_TWO_WAY: u8 = 0x40;
/// Flag bit: the frame is an event (heartbeat), not a call.
pub const FLAG_EVENT: u8 = 0x20;
/// Mask of the serialization id in the flag byte.
pub const SERIALIZATION_MASK: u8 = 0x1f;
/// Largest frame body accepted when the URL does not set `payload` (8 MiB, as Dubbo).
pub const DEFAULT_PAYLOAD: usize = 8 * 1024 * 1024;
/// Heartbeat interval when the URL does not set `heartbeat`, in milliseconds.
pub const DEFAULT_HEARTBEAT_MS: u64 = 60_000;

/// Response status codes, the values Dubbo uses.
pub mod status {
    /// The call completed (value or business error in the body).
    pub const OK: u8 = 20;
    /// The consumer gave up waiting.
    pub const CLIENT_TIMEOUT: u8 = 30;
    /// The provider ran out of time.
    pub const SERVER_TIMEOUT: u8 = 31;
    /// The request could not be decoded or its arguments did not fit the method.
    pub const BAD_REQUEST: u8 = 40;
    /// The response could not be encoded.
    pub const BAD_RESPONSE: u8 = 50;
    /// No such service is exported on this port.
    pub const SERVICE_NOT_FOUND: u8 = 60;
    /// The service failed (unknown method, refused caller, panic, ...).
    pub const SERVICE_ERROR: u8 = 70;
    /// The provider's framework failed.
    pub const SERVER_ERROR: u8 = 80;
    /// The consumer's framework failed.
    pub const CLIENT_ERROR: u8 = 90;
    /// The provider is saturated and refused the call.
    pub const SERVER_THREADPOOL_EXHAUSTED_ERROR: u8 = 100;
}

/// Bodies up to this many bytes are carved from a per-thread block ([`Frame::body_with`]).
pub const CARVE_UP_TO: usize = 4 * 1024;

/// The size of the per-thread block small bodies are carved from ([`Frame::body_with`]).
pub const CARVE_BLOCK: usize = 64 * 1024;

/// One frame: the 16-byte header's fields and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Flag byte: request / two-way / event bits and the serialization id.
    pub flag: u8,
    /// Status byte (responses).
    pub status: u8,
    /// Request id, echoed by the response.
    pub id: u64,
    /// The body, laid out by the protocol.
    pub body: Bytes,
}

impl Frame {
    /// A body from a freshly encoded vector. Up to [`CARVE_UP_TO`] bytes it is copied into
    /// the calling thread's block, as [`Frame::body_with`] writes bodies, and the vector is
    /// freed here, on the thread that made it. A larger one is kept as it is, trimmed to its
    /// length (`Bytes::from` a vector with spare capacity would allocate a second block to
    /// track it).
    pub fn body_of(encoded: Vec<u8>) -> Bytes {
        if encoded.len() > CARVE_UP_TO {
            return Bytes::from(encoded.into_boxed_slice());
        }
        Frame::carved(&encoded)
    }

    /// A copy of `bytes` carved from the calling thread's block when it is small, as
    /// [`Frame::body_with`] writes bodies: for a small value that lives about as long as a
    /// call (a body, an attachment the framework writes on every call), without an
    /// allocation of its own.
    pub fn carved(bytes: &[u8]) -> Bytes {
        // Writing a slice cannot fail.
        Frame::body_with(bytes.len(), |out| {
            out.extend_from_slice(bytes);
            Ok(())
        })
        .unwrap_or_else(|_| Bytes::copy_from_slice(bytes))
    }

    /// A body of about `len` bytes written by `fill`. A small body is carved from a block the
    /// calling thread keeps ([`CARVE_BLOCK`] bytes): one allocation per block instead of one
    /// per body, and the body's release, often by the thread that writes the frame, is a
    /// count on the block instead of a free into glibc's arenas (taken under their lock when
    /// bodies are freed by one thread and allocated by another, as requests and answers are).
    /// A block lives until its last body is released. A body over [`CARVE_UP_TO`] bytes, or one
    /// written while the block is in use further up the stack, gets an allocation of its own.
    pub fn body_with(len: usize, fill: impl FnOnce(&mut BytesMut) -> Result<()>) -> Result<Bytes> {
        thread_local! {
            static BLOCK: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
        }
        BLOCK.with(|cell| {
            let Some(mut block) = cell.try_borrow_mut().ok().filter(|_| len <= CARVE_UP_TO) else {
                let mut body = BytesMut::with_capacity(len);
                return fill(&mut body).map(|()| body.freeze());
            };
            if block.capacity() < len {
                *block = BytesMut::with_capacity(CARVE_BLOCK);
            }
            match fill(&mut block) {
                Ok(()) => Ok(block.split().freeze()),
                Err(e) => {
                    block.clear();
                    Err(e)
                }
            }
        })
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        self.flag & FLAG_REQUEST != 0
    }

    /// Whether the request expects a response.
    pub fn is_two_way(&self) -> bool {
        self.flag & FLAG_TWO_WAY != 0
    }

    /// Whether this is an event (heartbeat).
    pub fn is_event(&self) -> bool {
        self.flag & FLAG_EVENT != 0
    }

    /// The serialization id from the flag byte.
    pub fn serialization(&self) -> u8 {
        self.flag & SERIALIZATION_MASK
    }

    /// A heartbeat request.
    pub fn heartbeat(id: u64, serialization: u8) -> Frame {
        Frame {
            flag: FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | (serialization & SERIALIZATION_MASK),
            status: 0,
            id,
            body: heartbeat_body(serialization & SERIALIZATION_MASK),
        }
    }

    /// The answer to a heartbeat request, in its serialization.
    pub fn heartbeat_reply(&self) -> Frame {
        Frame {
            flag: FLAG_EVENT | self.serialization(),
            status: status::OK,
            id: self.id,
            body: heartbeat_body(self.serialization()),
        }
    }
}

/// The body of a heartbeat (its data is null): `N` in hessian2, as stock Dubbo peers write
/// it; empty in the other serializations.
fn heartbeat_body(serialization: u8) -> Bytes {
    if serialization == crate::serialize::ids::HESSIAN2 {
        Bytes::from_static(b"N")
    } else {
        Bytes::new()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Ids a thread takes from the process-wide counter at a time: every call takes an id, and
/// threads taking them one by one would all write one shared counter's cache line per call.
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// The calling thread's block of ids: the next one and the end of the block.
    static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A fresh request id, unique in the process (as Dubbo's); ids of one thread increase, and
/// threads take them in blocks of 1024.
pub fn next_request_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            return next;
        }
        let start = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
        ids.set((start + 1, start + ID_BLOCK));
        start
    })
}

/// How many responses arrived for no pending call (late after a timeout, or unknown ids)
/// since the process started.
pub fn dropped_responses() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

pub(crate) fn count_dropped() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn end(b: &Bytes) -> usize {
        b.as_ptr() as usize + b.len()
    }

    #[test]
    fn small_bodies_share_a_block_and_outlive_it() {
        // A thread of its own: a fresh block.
        std::thread::spawn(|| {
            let first = Frame::carved(b"one");
            let second = Frame::carved(b"two");
            assert_eq!(end(&first), second.as_ptr() as usize, "side by side");
            // A body over the limit is an allocation of its own; the block goes on after it.
            let large = Frame::carved(&[7u8; CARVE_UP_TO + 1]);
            let third = Frame::carved(b"three");
            assert_eq!(end(&second), third.as_ptr() as usize);
            assert_eq!(large.len(), CARVE_UP_TO + 1);
            // An encoded vector is copied in as well, up to the limit; a larger one is kept.
            let copied = Frame::body_of(b"four".to_vec());
            assert_eq!(end(&third), copied.as_ptr() as usize);
            assert_eq!(&copied[..], b"four");
            let big = vec![9u8; CARVE_UP_TO + 1];
            let at = big.as_ptr() as usize;
            assert_eq!(Frame::body_of(big).as_ptr() as usize, at);
            // Filling the block: the next body starts a new one, and the bodies carved from
            // the old one keep their bytes.
            let mut kept = Vec::new();
            for i in 0..(CARVE_BLOCK / CARVE_UP_TO + 2) {
                kept.push((i, Frame::carved(&[i as u8; CARVE_UP_TO])));
            }
            for (i, b) in &kept {
                assert!(b.iter().all(|x| *x == *i as u8));
            }
            assert_eq!(
                (&first[..], &second[..], &third[..]),
                (&b"one"[..], &b"two"[..], &b"three"[..])
            );
            // A fill that writes more than it announced still gets all its bytes.
            let grown = Frame::body_with(2, |out| {
                out.put_slice(&[1u8; 100]);
                Ok(())
            })
            .expect("body");
            assert_eq!(&grown[..], &[1u8; 100][..]);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_body_written_inside_another_or_failing_is_kept_apart() {
        std::thread::spawn(|| {
            let mut inner = None;
            let outer = Frame::body_with(5, |out| {
                out.put_slice(b"out");
                inner = Some(Frame::carved(b"in"));
                out.put_slice(b"er");
                Ok(())
            })
            .expect("body");
            assert_eq!(&outer[..], b"outer");
            assert_eq!(inner.as_deref(), Some(&b"in"[..]));
            // A failed fill leaves no bytes behind: the next body starts where it began.
            let before = Frame::carved(b"a");
            let e = Frame::body_with(3, |out| {
                out.put_slice(b"xyz");
                Err(crate::RpcError::codec("no"))
            })
            .expect_err("failed fill");
            assert_eq!(e.kind(), crate::ErrorKind::Codec);
            let after = Frame::carved(b"b");
            assert_eq!(end(&before), after.as_ptr() as usize);
            assert_eq!(&after[..], b"b");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn request_ids_are_unique_across_threads() {
        let per_thread: Vec<Vec<u64>> = (0..4)
            .map(|_| std::thread::spawn(|| (0..3000).map(|_| next_request_id()).collect()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        for ids in &per_thread {
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "a thread's ids increase"
            );
        }
        let mut all: Vec<u64> = per_thread.into_iter().flatten().collect();
        assert!(all.iter().all(|&id| id != 0));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no id given twice");
    }
}
