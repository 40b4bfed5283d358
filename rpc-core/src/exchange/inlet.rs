//! A consumer connection's reading end: shared by the connection's reader task and by a call
//! that is alone on the connection.
//!
//! Responses normally reach their calls through the connection's reader task: it reads the
//! socket, decodes the frames and hands each to the call waiting for it, which is then woken
//! and polled in turn. A call alone on its connection pays for that hand-over on every round
//! trip: its answer waits for the reader task to be polled, then for its own task. So a call
//! that is alone reads the socket itself while it waits ([`Inlet::read_here`]): the socket
//! then wakes the call's task, not the reader task, and the call decodes its answer (and any
//! other frame that came with it) where it is polled.
//!
//! A socket wakes one task per direction: the last one that polled it. While a call reads for
//! itself, the reader task is not woken by the socket, so the connection is read only as long
//! as that call is polled. A call stops being polled without being dropped when, for example,
//! another branch of a `select!` won; the connection's other calls, heartbeats and its close
//! must not wait on it. So the read side is "lent" from the moment a call polls the socket,
//! and the reader task is told to take it back (its next poll makes the socket wake it again):
//! - when a call waits that is not alone on the connection (a second call came);
//! - when the call that read stops waiting without its answer (dropped);
//! - by the connection's deadline sweeper, at each of its ticks while calls wait and before it
//!   goes idle. A connection is thus never left unread for longer than one tick (10 ms).

use std::borrow::Cow;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio_util::codec::Decoder;

use super::client::reserve_for_read;
use super::guard::FrameClock;
use super::{Frame, FrameCodec, FrameError, FLAG_REQUEST};
use crate::transport::BoxReader;

/// Why a connection must close, from its reading end.
pub(super) type Stop = Cow<'static, str>;

/// What the reading end took out of the bytes it read.
pub(super) enum Arrived {
    /// A whole frame.
    Frame(Frame),
    /// A response over the payload limit, its body skipped: only the call it answers fails.
    TooLarge {
        /// The id of the call it answers.
        id: u64,
        /// Its announced body length.
        len: usize,
        /// The payload limit.
        limit: usize,
    },
}

/// A connection's reader, its read buffer and decoder; see the [module docs](self).
pub(super) struct Inlet {
    side: Mutex<Option<ReadSide>>,
    /// A call polled the socket after the reader task last did: the socket may wake that
    /// call's task instead of the reader task.
    lent: AtomicBool,
    /// Tells the reader task to poll the socket again, taking the read side back.
    nudge: Notify,
}

struct ReadSide {
    /// The provider's address, for the log.
    peer: String,
    reader: BoxReader,
    buf: BytesMut,
    codec: FrameCodec,
    clock: FrameClock,
}

impl ReadSide {
    /// Hands out every whole frame buffered, then reads once: `Ready(Ok(n))` when `n` bytes
    /// came (and the whole frames among them are handed out too, so that the frame clock
    /// tells whether one is left half received), `Pending` when the socket has nothing (it
    /// wakes `cx` when it has), `Ready(Err(why))` when the connection must close.
    fn turn(
        &mut self,
        cx: &mut Context<'_>,
        arrived: &mut dyn FnMut(Arrived),
    ) -> Poll<Result<usize, Stop>> {
        self.hand_out(arrived)?;
        reserve_for_read(&mut self.buf);
        match pin!(self.reader.read_buf(&mut self.buf)).poll(cx) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err("peer closed the connection".into())),
            Poll::Ready(Ok(n)) => Poll::Ready(self.hand_out(arrived).map(|()| n)),
            // The error's text: a TLS alert from the provider says what it refused.
            Poll::Ready(Err(e)) => Poll::Ready(Err(format!("read failed: {e}").into())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Decodes and hands out the whole frames buffered, then updates the frame clock.
    fn hand_out(&mut self, arrived: &mut dyn FnMut(Arrived)) -> Result<(), Stop> {
        let mut completed = false;
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    completed = true;
                    arrived(Arrived::Frame(frame));
                }
                Ok(None) => break,
                Err(FrameError::TooLarge {
                    flag,
                    id,
                    len,
                    limit,
                }) if flag & FLAG_REQUEST == 0 => {
                    completed = true;
                    arrived(Arrived::TooLarge { id, len, limit });
                }
                Err(e) => {
                    tracing::warn!(peer = %self.peer, error = %e, "bad frame from provider; closing");
                    // The calls this closes fail saying what was wrong with the frame.
                    return Err(format!("bad frame ({e})").into());
                }
            }
        }
        self.clock
            .update(!self.buf.is_empty() || self.codec.is_skipping(), completed);
        Ok(())
    }
}

impl Inlet {
    /// An inlet with no reader yet (nothing is read until one is installed).
    pub(super) fn new() -> Inlet {
        Inlet {
            side: Mutex::new(None),
            lent: AtomicBool::new(false),
            nudge: Notify::new(),
        }
    }

    /// Hands the connection's reader (from `peer`) to the inlet, with its decoder and frame
    /// clock.
    pub(super) fn install(
        &self,
        peer: String,
        reader: BoxReader,
        codec: FrameCodec,
        clock: FrameClock,
    ) {
        *self.lock() = Some(ReadSide {
            peer,
            reader,
            buf: BytesMut::with_capacity(64 * 1024),
            codec,
            clock,
        });
    }

    fn lock(&self) -> MutexGuard<'_, Option<ReadSide>> {
        // A panic under the lock leaves at worst a buffer the decoder rejects: the
        // connection then closes as for any bad frame.
        self.side
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One turn of the reader task (see [`ReadSide::turn`]); the socket then wakes the
    /// reader task, whatever call polled it before.
    pub(super) fn poll_turn(
        &self,
        cx: &mut Context<'_>,
        arrived: &mut dyn FnMut(Arrived),
    ) -> Poll<Result<usize, Stop>> {
        let mut side = self.lock();
        let Some(side) = side.as_mut() else {
            return Poll::Ready(Err("no reader installed".into()));
        };
        // Set only under this lock: read here, it is current. Written only when set, so that
        // a busy connection's reader task does not write a shared flag on every read.
        if self.lent.load(Ordering::Relaxed) {
            self.lent.store(false, Ordering::SeqCst);
        }
        side.turn(cx, arrived)
    }

    /// Reads for a call alone on the connection, until the socket has nothing more (it then
    /// wakes `cx`), handing out what arrives. Does nothing while the reader task is in its
    /// own turn (it hands out what arrives then). `Ok(true)` when bytes came; `Err(why)` when
    /// the connection must close.
    pub(super) fn read_here(
        &self,
        cx: &mut Context<'_>,
        arrived: &mut dyn FnMut(Arrived),
    ) -> Result<bool, Stop> {
        let Ok(mut side) = self.side.try_lock() else {
            return Ok(false);
        };
        let Some(side) = side.as_mut() else {
            return Ok(false);
        };
        self.lent.store(true, Ordering::SeqCst);
        let mut read = false;
        loop {
            match side.turn(cx, arrived) {
                Poll::Ready(Ok(_)) => read = true,
                Poll::Ready(Err(why)) => return Err(why),
                Poll::Pending => return Ok(read),
            }
        }
    }

    /// Tells the reader task to take the read side back if a call may hold the socket's
    /// wake-up (see the [module docs](self)).
    pub(super) fn take_back_if_lent(&self) {
        if self.lent.load(Ordering::SeqCst) {
            self.nudge.notify_one();
        }
    }

    /// Completes when the reader task is told to take the read side back.
    pub(super) async fn nudged(&self) {
        self.nudge.notified().await
    }

    /// The time left for the frame being received, `None` when none is.
    pub(super) fn frame_time_left(&self) -> Option<Duration> {
        self.lock().as_ref().and_then(|s| s.clock.remaining())
    }

    /// The `frame.timeout` and how many bytes of the late frame are buffered, for the report
    /// of a frame not completed in time.
    pub(super) fn late_frame(&self) -> (Duration, usize) {
        self.lock()
            .as_ref()
            .map_or((Duration::ZERO, 0), |s| (s.clock.limit(), s.buf.len()))
    }
}
