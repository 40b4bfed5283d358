//! The provider side of the exchange: the accept loop, and one task per connection that reads
//! requests and writes their answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::client::{encode_or_log, let_go_if_large, reserve_for_read, write_within};
use super::guard::{self, announced_len, BudgetHold, Cause, FrameClock, PayloadBudget};
use super::{Frame, FrameCodec, FrameError, DEFAULT_HEARTBEAT_MS, DEFAULT_PAYLOAD, HEADER_LEN};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension;
use crate::invocation::ByteString;
use crate::transport::{Acceptor, BoxWriter, Connection, Transporter};
use crate::url::Url;

/// Answers requests; implemented by the protocol (which knows the body layout).
pub trait Handler: Send + Sync + 'static {
    /// Handles one request frame from `peer` (the caller's address as the transport saw it):
    /// called where the connection is read, in arrival order.
    ///
    /// A request that completes without waiting (most do, once their arguments are decoded)
    /// is [`Handled::Done`] with its response frame (none for a one-way request). One that
    /// has to wait hands over the rest of its work as [`Handled::Running`], which runs in a
    /// task of its own. With [`Placement::OwnTask`], a request whose order among the others
    /// does not matter should do no work here but hand over all of it, so that another worker
    /// can take it.
    fn handle(&self, request: Frame, peer: &ByteString, placement: Placement) -> Handled;

    /// The response to a request (header `flag` and `id`) refused before it was handled: its
    /// body is over the payload limit, or the server is saturated. `None` sends nothing.
    fn reject(&self, flag: u8, id: u64, error: RpcError) -> Option<Frame>;
}

/// What [`Handler::handle`] made of a request.
pub enum Handled {
    /// Answered: the response frame (`None`: nothing to send).
    Done(Option<Frame>),
    /// Still running: the rest of the request, whose output is the response frame. Run in a
    /// task of its own, it is polled first with that task's waker.
    Running(std::pin::Pin<Box<dyn std::future::Future<Output = Option<Frame>> + Send>>),
}

/// Where a request's work runs; see [`Handler::handle`].
///
/// A request that completes without waiting (most do, once their arguments are decoded) is
/// answered where its connection is read, without a task of its own and the scheduling it
/// costs. Requests that compute for long without waiting would hold up every request behind
/// them on the connection and keep them all on one core: so once a read's requests computed
/// in place for over the budget (`inplace.budget`, default [`DEFAULT_IN_PLACE_BUDGET_US`]
/// µs) of the thread's CPU time, the rest of the read's requests, and the connection's for
/// [`OFFLOAD_FOR`] after, go to tasks of their own.
///
/// The wall-clock time of each request run in place is read (one clock read per request);
/// only when it says the budget is spent is the thread's CPU time read, and that decides:
/// a thread that waited for a core while a request ran did not compute. The first time, the
/// CPU time is read to start from, and the connection's next reads are measured by it for
/// [`OFFLOAD_FOR`]: requests that keep computing for long go to tasks of their own from the
/// second such read on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Run where the connection is read.
    InPlace,
    /// Run in a task of its own, unless the request must keep its place in arrival order.
    OwnTask,
}

/// CPU microseconds a read's requests may spend where the connection is read before the
/// connection's requests go to tasks of their own ([`Placement`]) when the URL does not set
/// `inplace.budget`.
pub const DEFAULT_IN_PLACE_BUDGET_US: u64 = 1000;

/// How long a connection's requests go to tasks of their own once its requests computed in
/// place for over the budget; also how long its reads are measured by CPU time after their
/// wall-clock time went over it.
pub const OFFLOAD_FOR: Duration = Duration::from_secs(1);

/// The calling thread's CPU time, where the platform has such a clock.
fn thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Some(Duration::new(
            u64::try_from(t.tv_sec).ok()?,
            u32::try_from(t.tv_nsec).ok()?,
        ))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// How long a connection's requests ran in place, deciding the next one's [`Placement`].
struct Pacer {
    /// The CPU time a read's requests may spend in place; zero: none.
    budget: Duration,
    /// Until when the connection's requests go to tasks of their own.
    offload_until: Option<std::time::Instant>,
    /// Until when the connection's reads are measured by CPU time.
    measured_until: Option<std::time::Instant>,
    /// When the last request run in place ended, or the measure began.
    last: std::time::Instant,
    /// Wall-clock time of the requests run in place since the measure began.
    spent: Duration,
    /// The thread's CPU time when the measure began, when it is measured.
    cpu_since: Option<Duration>,
}

impl Pacer {
    fn new(budget: Duration) -> Pacer {
        Pacer {
            budget,
            offload_until: None,
            measured_until: None,
            last: std::time::Instant::now(),
            spent: Duration::ZERO,
            cpu_since: None,
        }
    }

    /// A read's requests are about to run, on this thread, without a wait among them.
    fn read_begins(&mut self) {
        self.last = std::time::Instant::now();
        self.spent = Duration::ZERO;
        let measured = self.measured_until.is_some_and(|t| self.last < t);
        self.cpu_since = if measured { thread_cpu() } else { None };
    }

    /// Where the next request runs.
    fn placement(&self) -> Placement {
        if self.budget.is_zero() || self.offload_until.is_some_and(|t| self.last < t) {
            Placement::OwnTask
        } else {
            Placement::InPlace
        }
    }

    /// A request's first poll (its whole work, when it ran in place) just ended.
    fn ran(&mut self) {
        let now = std::time::Instant::now();
        self.spent += now.saturating_duration_since(self.last);
        self.last = now;
        // A zero budget sends every request to a task already: nothing to measure.
        if self.budget.is_zero() || self.spent <= self.budget {
            return;
        }
        // Over the budget by the wall clock: computation, or a thread that waited for a core.
        let cpu = thread_cpu();
        if let (Some(before), Some(now_cpu)) = (self.cpu_since, cpu) {
            if now_cpu.saturating_sub(before) > self.budget {
                self.offload_until = Some(now + OFFLOAD_FOR);
            }
        }
        // Measured again from here, and the next reads from their start.
        self.spent = Duration::ZERO;
        self.cpu_since = cpu;
        self.measured_until = Some(now + OFFLOAD_FOR);
    }
}

/// Requests executing at once on one server when the URL does not set `threads`. Past it a
/// request is refused at once with status 100 (LimitExceeded, retriable elsewhere) rather
/// than queued: load is shed early, as Dubbo's default thread pool does.
pub const DEFAULT_THREADS: usize = 10_000;

/// Connections open at once on one server when the URL does not set `accepts`.
pub const DEFAULT_ACCEPTS: usize = 4096;

/// Requests executing at once from one connection when the URL does not set
/// `connection.inflight`.
pub const DEFAULT_INFLIGHT: usize = 4096;

/// Bytes of partly received large frames one server holds at once when the URL does not set
/// `payload.budget`.
pub const DEFAULT_PAYLOAD_BUDGET: usize = 64 * 1024 * 1024;

/// Server settings read from the export URL.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `payload`: the largest frame body accepted.
    pub payload: usize,
    /// `idle.timeout`: a connection that sends no byte for this long is closed (default three
    /// heartbeats).
    pub idle: Duration,
    /// `send.queue`: responses buffered per connection before handlers wait.
    pub queue: usize,
    /// `threads`: requests executing at once on this server (default [`DEFAULT_THREADS`]); one over
    /// the limit is answered `SERVER_THREADPOOL_EXHAUSTED_ERROR` at once, as Dubbo does.
    pub threads: usize,
    /// `accepts`: most connections open at once (default [`DEFAULT_ACCEPTS`], 0 = unlimited);
    /// one more is closed as soon as it is accepted.
    pub accepts: usize,
    /// `frame.timeout`: a frame must be complete this long after its first byte arrived, or
    /// the connection is closed (slow-loris, a peer stalled mid-frame).
    pub frame_timeout: Duration,
    /// `connection.inflight`: requests of one connection executing at once; one more is
    /// refused with LimitExceeded.
    pub inflight: usize,
    /// `payload.budget`: bytes of partly received large frames the server holds at once;
    /// a large frame waits for its share (its connection is not read meanwhile) until its
    /// frame deadline, then its connection is closed.
    pub budget: usize,
    /// `inplace.budget` (µs): CPU time one read's requests may spend where their connection
    /// is read before the connection's requests go to tasks of their own ([`Placement`];
    /// zero: always).
    pub in_place: Duration,
}

impl ServerConfig {
    /// Reads the settings from `url`.
    pub fn from_url(url: &Url) -> Result<Self> {
        let hb: u64 = url.param_as(keys::HEARTBEAT, DEFAULT_HEARTBEAT_MS)?;
        Ok(ServerConfig {
            payload: url.param_as(keys::PAYLOAD, DEFAULT_PAYLOAD)?,
            idle: Duration::from_millis(
                url.param_as(keys::IDLE_TIMEOUT, hb.saturating_mul(3))?
                    .max(1),
            ),
            queue: url.param_as(keys::SEND_QUEUE, 1024usize)?.max(1),
            threads: url.param_as(keys::THREADS, DEFAULT_THREADS)?.max(1),
            accepts: url.param_as(keys::ACCEPTS, DEFAULT_ACCEPTS)?,
            frame_timeout: Duration::from_millis(
                url.param_as(keys::FRAME_TIMEOUT, guard::DEFAULT_FRAME_TIMEOUT_MS)?
                    .max(1),
            ),
            inflight: url
                .param_as(keys::CONNECTION_INFLIGHT, DEFAULT_INFLIGHT)?
                .max(1),
            budget: url.param_as(keys::PAYLOAD_BUDGET, DEFAULT_PAYLOAD_BUDGET)?,
            in_place: Duration::from_micros(
                url.param_as(keys::INPLACE_BUDGET, DEFAULT_IN_PLACE_BUDGET_US)?,
            ),
        })
    }
}

/// A listening server; [`Server::close`] stops it.
pub struct Server {
    local: String,
    stop: CancellationToken,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    /// Binds at `url` (transporter from `transporter=`; port 0 picks a free port) and serves
    /// every connection with `handler`.
    pub async fn bind(url: &Url, handler: Arc<dyn Handler>) -> Result<Server> {
        let cfg = ServerConfig::from_url(url)?;
        let transporter = extension::adaptive::<dyn Transporter>(url, "")?;
        let acceptor = transporter.bind(url).await?;
        let local = acceptor.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(acceptor, handler, cfg, stop.clone()));
        Ok(Server {
            local,
            stop,
            accept: Mutex::new(Some(task)),
        })
    }

    /// The bound `host:port`.
    pub fn local_addr(&self) -> &str {
        &self.local
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Stops accepting (the port is released when this returns); open connections stop
    /// reading, let in-flight requests answer, then close.
    pub async fn close(&self) {
        self.stop.cancel();
        let task = self.accept.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    acceptor: Box<dyn Acceptor>,
    handler: Arc<dyn Handler>,
    cfg: ServerConfig,
    stop: CancellationToken,
) {
    let permits = Arc::new(Gate::new(cfg.threads));
    let budget = PayloadBudget::new(cfg.budget);
    let connections = (cfg.accepts > 0).then(|| Arc::new(Semaphore::new(cfg.accepts)));
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => break,
            c = acceptor.accept() => c,
        };
        match conn {
            Ok(conn) => {
                let slot = match &connections {
                    None => None,
                    Some(sem) => match sem.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            guard::report(
                                "provider",
                                Cause::TooManyConnections,
                                &conn.peer,
                                &format!(
                                    "{} connections are open, the limit (accepts); refused",
                                    cfg.accepts
                                ),
                            );
                            // Dropping the connection closes it at once.
                            continue;
                        }
                    },
                };
                let (handler, cfg, permits, budget, stop) = (
                    handler.clone(),
                    cfg.clone(),
                    permits.clone(),
                    budget.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    serve(conn, handler, cfg, permits, budget, stop).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(
    conn: Connection,
    handler: Arc<dyn Handler>,
    cfg: ServerConfig,
    permits: Arc<Gate>,
    budget: PayloadBudget,
    stop: CancellationToken,
) {
    let Connection {
        mut reader,
        writer,
        peer,
    } = conn;
    // Answers of requests that had to wait, from their tasks.
    let (tx, mut rx) = mpsc::channel::<Frame>(cfg.queue);
    let mut codec = FrameCodec::new(cfg.payload);
    let mut out = Outbox::new(writer, codec, cfg.idle);
    let peer_name = ByteString::from(peer.as_str());
    let limits = Arc::new(Limits {
        threads: permits,
        connection: Gate::new(cfg.inflight),
    });
    let mut clock = FrameClock::new(cfg.frame_timeout);
    let mut hold = BudgetHold::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut last_read = Instant::now();
    // Waited on across reads: registered with the token once, not once per read.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    // The connection's one timer: its idle deadline, or a frame's (see the read below).
    let timer = tokio::time::sleep_until(guard::later_by(last_read, cfg.idle));
    tokio::pin!(timer);
    let mut pacer = Pacer::new(cfg.in_place);
    'conn: loop {
        let mut completed = false;
        pacer.read_begins();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    completed = true;
                    hold.release();
                    dispatch(
                        frame, &peer_name, &handler, &tx, &limits, &mut pacer, &mut out,
                    );
                    // Many answers to one read go out in pieces, not all held at once.
                    if out.is_full() {
                        if let Err(e) = out.flush().await {
                            tracing::debug!(%peer, error = %e, "write failed; closing");
                            return;
                        }
                        // The task may go on on another thread (another CPU clock).
                        pacer.read_begins();
                    }
                }
                Ok(None) => break,
                Err(FrameError::TooLarge {
                    flag,
                    id,
                    len,
                    limit,
                }) => {
                    // The codec skips the body; the connection goes on.
                    completed = true;
                    tracing::warn!(%peer, id, len, limit, "frame over the payload limit refused");
                    let e = RpcError::codec(format!(
                        "request of {len} bytes is over the payload limit of {limit}"
                    ));
                    if let Some(answer) = handler.reject(flag, id, e) {
                        out.push(answer);
                    }
                }
                Err(e) => {
                    guard::report(
                        "provider",
                        Cause::BadFrame,
                        &peer,
                        &format!("bad frame ({e}); closing the connection"),
                    );
                    break 'conn;
                }
            }
        }
        // Answers that are ready, the ones of this read and any from waiting requests, go
        // out in one write before the connection is read again
        // (or a large frame waits for its share of the payload budget). The queue is fed
        // only by requests running in tasks of their own, which only this loop starts: when
        // none runs (the count is read before the queue is emptied, see `Gate::is_busy`), the
        // waits below leave the queue alone (asking an empty one registers a waker).
        let tasks_running = limits.connection.is_busy();
        while let Ok(answer) = rx.try_recv() {
            out.push(answer);
        }
        if let Err(e) = out.flush().await {
            tracing::debug!(%peer, error = %e, "write failed; closing");
            return;
        }
        clock.update(!buf.is_empty() || codec.is_skipping(), completed);
        // A large frame under way holds its share of the server's budget before more of it
        // is read; while it waits, its connection is not read (the peer feels back-pressure).
        if let Some(len) = announced_len(&buf).filter(|_| !codec.is_skipping()) {
            if len <= cfg.payload.saturating_add(HEADER_LEN) {
                let wait = clock.remaining().unwrap_or(cfg.frame_timeout);
                let got = tokio::select! {
                    _ = &mut stopped => break,
                    got = hold.ensure(&budget, len, wait) => got,
                };
                if !got {
                    guard::report(
                        "provider",
                        Cause::PayloadBudget,
                        &peer,
                        &format!(
                            "a {len}-byte frame found no room in the payload budget of {} bytes \
                             within its frame deadline; closing the connection",
                            cfg.budget
                        ),
                    );
                    break;
                }
            }
        }
        reserve_for_read(&mut buf);
        // Idle is counted from the last byte received, across answers written meanwhile; a
        // frame in progress must also be complete by its own deadline.
        let idle_at = guard::later_by(last_read, cfg.idle);
        let frame_at = clock.deadline();
        let slow_frame = frame_at.is_some_and(|at| at < idle_at);
        let due = frame_at.map_or(idle_at, |at| at.min(idle_at));
        // The timer is moved on lazily: it may be early (when it fires before `due`, it moves
        // to `due`), never late. So it stays armed across reads, not armed and cancelled per
        // read (each a change to the runtime's timer wheel).
        if timer.deadline() > due {
            timer.as_mut().reset(due);
        }
        // Asked first without waiting, so that a server that stops is noticed even while the
        // peer keeps sending; waited on last, when everything else has to wait anyway.
        if stop.is_cancelled() {
            break;
        }
        let read = tokio::select! {
            biased;
            Some(answer) = rx.recv(), if tasks_running => {
                out.push(answer);
                continue;
            }
            r = reader.read_buf(&mut buf) => Some(r),
            () = &mut timer => {
                if Instant::now() < due {
                    timer.as_mut().reset(due);
                    continue;
                }
                None
            }
            _ = &mut stopped => break,
        };
        match read {
            None if slow_frame => {
                guard::report(
                    "provider",
                    Cause::SlowFrame,
                    &peer,
                    &format!(
                        "a frame was not completed within {} ms of its first byte (frame.timeout), \
                         {} bytes received; closing the connection",
                        cfg.frame_timeout.as_millis(),
                        buf.len()
                    ),
                );
                break;
            }
            None => {
                guard::report(
                    "provider",
                    Cause::Idle,
                    &peer,
                    &format!(
                        "nothing received for {} ms (idle.timeout); closing the connection",
                        cfg.idle.as_millis()
                    ),
                );
                break;
            }
            Some(Ok(0)) => {
                if !buf.is_empty() {
                    tracing::warn!(%peer, partial = buf.len(), "connection closed in the middle of a frame");
                }
                break;
            }
            Some(Ok(_)) => last_read = Instant::now(),
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                break;
            }
        }
    }
    // Requests still executing hold clones of `tx`: their answers are written as they come,
    // then the connection closes.
    drop(tx);
    loop {
        while let Ok(answer) = rx.try_recv() {
            out.push(answer);
        }
        if let Err(e) = out.flush().await {
            tracing::debug!(%peer, error = %e, "write failed; closing");
            return;
        }
        match rx.recv().await {
            Some(answer) => out.push(answer),
            None => break,
        }
    }
    out.close().await;
}

/// Answers encoded and waiting for the connection's next write: everything one read's
/// requests answered goes out in one system call.
struct Outbox {
    writer: BoxWriter,
    codec: FrameCodec,
    buf: BytesMut,
    /// A write that cannot complete in this long (a peer that stopped reading) fails.
    write_timeout: Duration,
}

impl Outbox {
    fn new(writer: BoxWriter, codec: FrameCodec, write_timeout: Duration) -> Self {
        Outbox {
            writer,
            codec,
            buf: BytesMut::with_capacity(16 * 1024),
            write_timeout,
        }
    }

    /// Whether enough is waiting to write it out before answering more.
    fn is_full(&self) -> bool {
        self.buf.len() >= 256 * 1024
    }

    fn push(&mut self, frame: Frame) {
        encode_or_log(&mut self.codec, frame, &mut self.buf);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        write_within(&mut self.writer, &self.buf, self.write_timeout).await?;
        self.buf.clear();
        let_go_if_large(&mut self.buf, 16 * 1024);
        Ok(())
    }

    /// Flushes and shuts the write side down.
    async fn close(mut self) {
        let _ = self.writer.flush().await;
        let _ = self.writer.shutdown().await;
    }
}

/// A count of requests executing against a limit. It never waits: a request over the limit
/// is refused at once.
struct Gate {
    running: AtomicUsize,
    limit: usize,
}

impl Gate {
    fn new(limit: usize) -> Gate {
        Gate {
            running: AtomicUsize::new(0),
            limit,
        }
    }

    /// Counts one more request in, unless the limit is reached.
    fn enter(&self) -> bool {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether half the limit or more is in.
    fn is_half_full(&self) -> bool {
        self.running.load(Ordering::Acquire) >= self.limit / 2
    }

    /// Whether any request is in. Read where none runs in place, it tells whether a task of
    /// its own may still queue an answer: such a task leaves only after queuing it (acquire:
    /// an answer queued before the leave is then visible to the reader).
    fn is_busy(&self) -> bool {
        self.running.load(Ordering::Acquire) > 0
    }
}

/// The execution limits a request must pass: the server's `threads` and its connection's
/// `connection.inflight`.
struct Limits {
    threads: Arc<Gate>,
    connection: Gate,
}

impl Limits {
    /// Counts a request out of both gates.
    fn leave(&self) {
        self.threads.leave();
        self.connection.leave();
    }
}

/// A request counted in both gates of its [`Limits`]; leaves them when dropped.
struct Entered<'a>(&'a Arc<Limits>);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Entered<'_> {
    /// The same admission, held by a request that goes on in a task of its own.
    fn into_owned(self) -> Admitted {
        let owned = Admitted(self.0.clone());
        std::mem::forget(self);
        owned
    }
}

/// [`Entered`] owned by a spawned request.
struct Admitted(Arc<Limits>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Answers one request: at once into `out` when its handler completes without waiting (or
/// it is refused), else from a task of its own through `tx`.
fn dispatch(
    frame: Frame,
    peer: &ByteString,
    handler: &Arc<dyn Handler>,
    tx: &mpsc::Sender<Frame>,
    limits: &Arc<Limits>,
    pacer: &mut Pacer,
    out: &mut Outbox,
) {
    if !frame.is_request() {
        // Answers to heartbeats we never send, or a request without its request flag (a
        // peer's bug: nothing can answer it, and its caller waits for its own timeout).
        if !frame.is_event() {
            tracing::debug!(%peer, id = frame.id, flag = frame.flag, "a frame without the request flag; ignored");
        }
        return;
    }
    if frame.is_event() {
        if frame.is_two_way() {
            out.push(frame.heartbeat_reply());
        }
        return;
    }
    if !limits.connection.enter() {
        guard::report(
            "provider",
            Cause::TooManyInflight,
            peer,
            &format!(
                "{} requests of this connection are executing, the limit (connection.inflight); \
                 refusing more",
                limits.connection.limit
            ),
        );
        let e = RpcError::new(
            ErrorKind::LimitExceeded,
            format!(
                "this connection already has {} requests executing (connection.inflight)",
                limits.connection.limit
            ),
        );
        if let Some(answer) = handler.reject(frame.flag, frame.id, e) {
            out.push(answer);
        }
        return;
    }
    if !limits.threads.enter() {
        limits.connection.leave();
        let e = RpcError::new(
            ErrorKind::LimitExceeded,
            "the provider is executing its maximum of concurrent requests (threads)",
        );
        if let Some(answer) = handler.reject(frame.flag, frame.id, e) {
            out.push(answer);
        }
        return;
    };
    let entered = Entered(limits);
    // The request starts right here: a method that completes without waiting (most do, once
    // their arguments are decoded) is answered without a task of its own and the scheduling it
    // costs. One that has to wait (I/O, a timer, a lock), or that the pacer sends to a task of
    // its own ([`Placement`]), continues in its own task, so it does not hold up the other
    // calls on this connection.
    // A request sent to a task of its own counts as executing until that task has run: past
    // half the connection's limit, a burst of requests runs in place instead of piling up
    // tasks that have not started and being refused at the limit.
    let placement = match pacer.placement() {
        Placement::OwnTask if limits.connection.is_half_full() => Placement::InPlace,
        placement => placement,
    };
    let handled = handler.handle(frame, peer, placement);
    pacer.ran();
    match handled {
        Handled::Done(answer) => {
            if let Some(answer) = answer {
                out.push(answer);
            }
            drop(entered);
        }
        Handled::Running(call) => {
            let permit = entered.into_owned();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(answer) = call.await {
                    let _ = tx.send(answer).await;
                }
                // Held until the answer is queued: a peer that does not read its answers runs
                // into the limit instead of piling up tasks.
                drop(permit);
            });
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Computes for `d` of the thread's CPU time (however long a loaded machine makes it).
    fn compute(d: Duration) {
        let start = thread_cpu().expect("a thread CPU clock");
        while thread_cpu().expect("a thread CPU clock") - start < d {
            std::hint::spin_loop();
        }
    }

    /// Requests go to tasks of their own once reads computed in place for over the budget by
    /// the thread's CPU time, not when the thread only waited (slept here, as a thread waits
    /// for a core) while they ran.
    #[test]
    fn requests_that_computed_long_in_place_send_the_next_ones_to_tasks() {
        let budget = Duration::from_micros(DEFAULT_IN_PLACE_BUDGET_US);
        let over = budget * 3;
        let mut pacer = Pacer::new(budget);
        pacer.read_begins();
        pacer.ran();
        assert_eq!(pacer.placement(), Placement::InPlace, "a quick request");
        // Over the budget by the wall clock: measured by CPU time from here on.
        pacer.read_begins();
        std::thread::sleep(over);
        pacer.ran();
        assert_eq!(pacer.placement(), Placement::InPlace);
        // Waited again, computed nothing.
        pacer.read_begins();
        std::thread::sleep(over);
        pacer.ran();
        assert_eq!(pacer.placement(), Placement::InPlace, "it only waited");
        // Computed.
        pacer.read_begins();
        compute(over);
        pacer.ran();
        assert_eq!(pacer.placement(), Placement::OwnTask, "it computed");
        // Many quick requests of one read add up the same way.
        let mut pacer = Pacer::new(budget);
        pacer.read_begins();
        std::thread::sleep(over);
        pacer.ran();
        pacer.read_begins();
        for _ in 0..30 {
            compute(budget / 10);
            pacer.ran();
        }
        assert_eq!(
            pacer.placement(),
            Placement::OwnTask,
            "together over the budget"
        );
        // A budget of zero: every request in a task of its own.
        let pacer = Pacer::new(Duration::ZERO);
        assert_eq!(pacer.placement(), Placement::OwnTask);
    }
}
