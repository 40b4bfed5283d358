//! A consumer connection's writing end: shared by the connection's writer task and by a call
//! that is alone on the connection.
//!
//! Frames normally reach the socket through the connection's send queue and its writer task,
//! which encodes whatever is queued into one buffer and writes it in one system call: under
//! concurrency, many calls share each write. A call alone on its connection gains nothing
//! from that and pays for it: its frame leaves only once the writer task has been scheduled
//! and polled, after the call's own poll has returned through every layer above it. So a
//! call that is alone writes its frame itself ([`Outlet::write_now`]), without waiting: when
//! the socket takes the whole frame at once (nearly always), the writer task is not involved;
//! when it does not, the writer task is told to finish the rest.
//!
//! Frames of one connection go out in the order they were sent: a frame is written directly
//! only when no other frame is queued or being written. Every frame is counted from the
//! moment it is handed to the send queue until the writer task has it in its buffer, and the
//! writer task holds the writer (taken out of the [`Outlet`]) until that buffer is written.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::client::{encode_or_log, let_go_if_large, write_within};
use super::{Frame, FrameCodec};
use crate::transport::BoxWriter;

/// A connection's writer, the bytes a direct write left, and the count of queued frames; see
/// the [module docs](self).
pub(super) struct Outlet {
    state: Mutex<State>,
    /// Frames handed to the send queue and not yet in the writer task's buffer.
    queued: AtomicUsize,
    /// Tells the writer task that a direct write left bytes, or a flush, to finish.
    nudge: Notify,
}

struct State {
    /// `None` while the writer task writes, before a writer is installed, and after a write
    /// failed.
    writer: Option<BoxWriter>,
    codec: FrameCodec,
    /// What a direct write could not write at once, for the writer task.
    left: BytesMut,
    /// A direct write's flush did not complete at once.
    unflushed: bool,
}

/// What [`Outlet::write_now`] did with a frame.
pub(super) enum Direct {
    /// Written, or handed to the writer task to finish.
    Sent,
    /// Not written: another frame is queued or being written. Queue it.
    Busy(Frame),
    /// The write failed: the connection is unusable.
    Failed(std::io::Error),
}

impl Outlet {
    /// An outlet with no writer yet (every frame is [`Direct::Busy`] until one is installed).
    pub(super) fn new(codec: FrameCodec) -> Outlet {
        Outlet {
            state: Mutex::new(State {
                writer: None,
                codec,
                left: BytesMut::new(),
                unflushed: false,
            }),
            queued: AtomicUsize::new(0),
            nudge: Notify::new(),
        }
    }

    /// Hands the connection's writer to the outlet.
    pub(super) fn install(&self, writer: BoxWriter) {
        self.lock().writer = Some(writer);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing done under the lock can leave the state half changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a frame about to be handed to the send queue. Every such frame is either
    /// received by the writer task, which uncounts it, or [`Outlet::unqueued`].
    pub(super) fn queueing(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// Uncounts a frame that [`Outlet::queueing`] counted and the send queue did not take.
    pub(super) fn unqueued(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// Writes `frame` without waiting, when nothing else is queued or being written; see the
    /// [module docs](self).
    pub(super) fn write_now(&self, frame: Frame) -> Direct {
        // Another caller writing, or the writer task taking the writer: queue.
        let Ok(mut state) = self.state.try_lock() else {
            return Direct::Busy(frame);
        };
        let State {
            writer: Some(writer),
            codec,
            left,
            unflushed: false,
        } = &mut *state
        else {
            return Direct::Busy(frame);
        };
        if !left.is_empty() || self.queued.load(Ordering::Acquire) != 0 {
            return Direct::Busy(frame);
        }
        encode_or_log(codec, frame, left);
        match poll_out(&mut **writer, left) {
            Err(e) => {
                state.writer = None;
                return Direct::Failed(e);
            }
            Ok(Out::All) => {
                left.clear();
                let_go_if_large(left, 0);
                return Direct::Sent;
            }
            Ok(Out::Unflushed) => {
                left.clear();
                state.unflushed = true;
            }
            Ok(Out::Part(written)) => left.advance(written),
        }
        drop(state);
        self.nudge.notify_one();
        Direct::Sent
    }
}

/// How far [`poll_out`] got.
enum Out {
    /// Written and flushed.
    All,
    /// Written; the flush did not complete at once.
    Unflushed,
    /// This many bytes written; the socket took no more at once.
    Part(usize),
}

/// Writes `buf` to `writer` and flushes it as far as that goes without waiting. Polled with a
/// waker that does nothing: what cannot be done at once is the writer task's, which polls
/// again with its own. Plain TCP has nothing to flush; TLS may hold the end of a record.
fn poll_out(
    writer: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    buf: &[u8],
) -> std::io::Result<Out> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut written = 0;
    while written < buf.len() {
        match Pin::new(&mut *writer).poll_write(&mut cx, &buf[written..]) {
            Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(e)) if e.kind() != std::io::ErrorKind::Interrupted => return Err(e),
            Poll::Ready(Err(_)) | Poll::Pending => return Ok(Out::Part(written)),
        }
    }
    match Pin::new(writer).poll_flush(&mut cx) {
        Poll::Ready(Ok(())) => Ok(Out::All),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(Out::Unflushed),
    }
}

/// The connection's writer task: drains the send queue `rx` into the outlet's writer,
/// encoding frames into one buffer and writing it only when the queue is momentarily empty
/// (or the buffer is large), so that concurrent calls share system calls; also finishes what
/// a direct write left. Ends when every sender is gone (after writing what is left) or `stop`
/// fires; fails when one write cannot complete within `write_timeout` (a peer that stopped
/// reading).
pub(super) async fn write_loop(
    outlet: Arc<Outlet>,
    mut rx: mpsc::Receiver<Frame>,
    stop: CancellationToken,
    write_timeout: Duration,
) -> std::io::Result<()> {
    const FLUSH_AT: usize = 256 * 1024;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut last_batch = 1usize;
    let mut batches = 0u32;
    // Waited on across batches: registered with the token once, not once per batch.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let first = tokio::select! {
            biased;
            f = rx.recv() => match f {
                Some(f) => Some(f),
                None => break,
            },
            () = outlet.nudge.notified() => None,
            () = &mut stopped => break,
        };
        // The writer, and with it what a direct write left: no direct write meanwhile.
        let (mut writer, mut codec, flush) = {
            let mut state = outlet.lock();
            let Some(writer) = state.writer.take() else {
                return Err(std::io::Error::other("the connection's writer is gone"));
            };
            std::mem::swap(&mut state.left, &mut buf);
            let flush = std::mem::take(&mut state.unflushed);
            (writer, state.codec, flush)
        };
        let mut frames = 0usize;
        let mut take = |f: Frame, buf: &mut BytesMut| {
            frames += 1;
            encode_or_log(&mut codec, f, buf);
            outlet.unqueued();
        };
        if let Some(f) = first {
            take(f, &mut buf);
        }
        // Drain what is queued. Under concurrency (the last batch held more than one frame,
        // or one batch in 64, to notice concurrency starting), then let the tasks that are
        // about to queue more (the callers) run once before writing, so that concurrent
        // frames share one write instead of a syscall each. A lone caller does not pay for
        // the extra scheduling: a yielding writer goes to the back of the run queue, which
        // wakes an idle worker thread (a futex call) for nothing.
        batches = batches.wrapping_add(1);
        let mut yielded = last_batch <= 1 && !batches.is_multiple_of(64);
        loop {
            while buf.len() < FLUSH_AT {
                match rx.try_recv() {
                    Ok(f) => take(f, &mut buf),
                    Err(_) => break,
                }
            }
            if yielded || buf.len() >= FLUSH_AT {
                break;
            }
            yielded = true;
            tokio::task::yield_now().await;
        }
        last_batch = frames;
        if !buf.is_empty() || flush {
            write_within(&mut writer, &buf, write_timeout).await?;
            buf.clear();
            let_go_if_large(&mut buf, 64 * 1024);
        }
        outlet.lock().writer = Some(writer);
    }
    // Every sender is gone, or the connection stops: what a direct write left, then the end
    // of the stream.
    let (writer, left) = {
        let mut state = outlet.lock();
        (state.writer.take(), std::mem::take(&mut state.left))
    };
    if let Some(mut writer) = writer {
        write_within(&mut writer, &left, write_timeout).await?;
        writer.shutdown().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::exchange::{DEFAULT_PAYLOAD, FLAG_REQUEST, FLAG_TWO_WAY};

    fn request(id: u64, body_len: usize) -> Frame {
        Frame {
            flag: FLAG_REQUEST | FLAG_TWO_WAY | 2,
            status: 0,
            id,
            body: bytes::Bytes::from(vec![id as u8; body_len]),
        }
    }

    /// An outlet writing into one end of an in-memory pipe of `room` bytes, and the other end.
    fn outlet(room: usize) -> (Arc<Outlet>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(room);
        let outlet = Arc::new(Outlet::new(FrameCodec::new(DEFAULT_PAYLOAD)));
        outlet.install(Box::new(ours));
        (outlet, theirs)
    }

    /// The ids of the next `n` frames read from `from`.
    async fn read_ids(from: &mut tokio::io::DuplexStream, n: usize) -> Vec<u64> {
        let mut codec = FrameCodec::new(DEFAULT_PAYLOAD);
        let mut buf = BytesMut::new();
        let mut ids = Vec::new();
        while ids.len() < n {
            while let Some(f) = codec.decode(&mut buf).expect("well-formed frames") {
                assert!(
                    f.body.iter().all(|b| *b == f.id as u8),
                    "body of {} intact",
                    f.id
                );
                ids.push(f.id);
            }
            if ids.len() < n {
                let read = tokio::time::timeout(Duration::from_secs(5), from.read_buf(&mut buf))
                    .await
                    .expect("frames arrive")
                    .expect("read");
                assert!(read > 0, "the pipe closed after {ids:?}");
            }
        }
        ids
    }

    #[tokio::test]
    async fn a_frame_written_at_once_needs_no_writer_task() {
        let (outlet, mut theirs) = outlet(64 * 1024);
        assert!(matches!(outlet.write_now(request(1, 100)), Direct::Sent));
        assert!(matches!(outlet.write_now(request(2, 100)), Direct::Sent));
        // No writer task runs: the socket took both frames from the callers themselves.
        assert_eq!(read_ids(&mut theirs, 2).await, [1, 2]);
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_at_once_the_writer_task_finishes_in_order() {
        // Room for less than one frame: the direct write leaves most of it.
        let (outlet, mut theirs) = outlet(64);
        let (tx, rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let writer = tokio::spawn(write_loop(
            outlet.clone(),
            rx,
            stop.clone(),
            Duration::from_secs(5),
        ));
        assert!(matches!(outlet.write_now(request(1, 1000)), Direct::Sent));
        // The rest is not written yet: another frame may not go directly, it is queued...
        let Direct::Busy(second) = outlet.write_now(request(2, 10)) else {
            panic!("a frame went out in the middle of another");
        };
        outlet.queueing();
        tx.try_send(second).expect("queued");
        // ...and while it is queued, no later frame overtakes it.
        assert!(matches!(outlet.write_now(request(3, 10)), Direct::Busy(_)));
        assert_eq!(read_ids(&mut theirs, 2).await, [1, 2]);
        // Once everything is written, a frame goes directly again.
        let mut sent = false;
        for _ in 0..100 {
            if matches!(outlet.write_now(request(4, 10)), Direct::Sent) {
                sent = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(sent, "the writer task gave the writer back");
        assert_eq!(read_ids(&mut theirs, 1).await, [4]);
        stop.cancel();
        writer.await.expect("writer task").expect("closes cleanly");
    }

    #[tokio::test]
    async fn a_frame_is_not_written_directly_before_one_queued_earlier() {
        let (outlet, mut theirs) = outlet(64 * 1024);
        let (tx, rx) = mpsc::channel(8);
        outlet.queueing();
        tx.try_send(request(1, 10)).expect("queued");
        // The writer task has not run yet: the queued frame is counted.
        let Direct::Busy(second) = outlet.write_now(request(2, 10)) else {
            panic!("a frame overtook one queued before it");
        };
        outlet.queueing();
        tx.try_send(second).expect("queued");
        drop(tx);
        write_loop(outlet, rx, CancellationToken::new(), Duration::from_secs(5))
            .await
            .expect("written");
        assert_eq!(read_ids(&mut theirs, 2).await, [1, 2]);
    }

    /// A writer whose every write fails.
    struct Broken;

    impl tokio::io::AsyncWrite for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_failed_write_says_why_and_gives_up_the_writer() {
        let outlet = Outlet::new(FrameCodec::new(DEFAULT_PAYLOAD));
        assert!(
            matches!(outlet.write_now(request(1, 10)), Direct::Busy(_)),
            "no writer installed yet"
        );
        outlet.install(Box::new(Broken));
        match outlet.write_now(request(2, 10)) {
            Direct::Failed(e) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
            _ => panic!("the write failed"),
        }
        assert!(matches!(outlet.write_now(request(3, 10)), Direct::Busy(_)));
    }
}
