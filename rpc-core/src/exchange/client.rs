//! The consumer side of the exchange: shared multiplexed connections to one provider address.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use super::guard::{self, Cause, FrameClock};
use super::inlet::{Arrived, Inlet};
use super::outlet::{self, Direct, Outlet};
use super::{
    count_dropped, next_request_id, Frame, FrameCodec, DEFAULT_HEARTBEAT_MS, DEFAULT_PAYLOAD,
};
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::extension;
use crate::padded::Padded;
use crate::transport::{BoxWriter, Connection, Transporter};
use crate::url::Url;

/// Connection settings read from a provider URL.
///
/// Clients are shared per transporter, address and `connections`: the first reference to an
/// address fixes the other settings for every reference that shares its client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `connections`: how many connections to open (default 1).
    pub connections: usize,
    /// `heartbeat`: idle time before a heartbeat is sent; three of them without a byte from
    /// the peer and the connection is declared dead.
    pub heartbeat: Duration,
    /// `payload`: the largest frame body accepted or sent.
    pub payload: usize,
    /// `send.queue`: frames buffered per connection before senders wait (default 1024).
    pub queue: usize,
    /// `reconnect.interval`: first reconnect delay (default 100 ms), doubled on each failure.
    pub reconnect_min: Duration,
    /// `reconnect.max`: the cap of the reconnect delay (default 3000 ms).
    pub reconnect_max: Duration,
    /// `frame.timeout`: a response frame must be complete this long after its first byte,
    /// or the connection is declared broken (a provider stalled mid-frame) and reopened.
    pub frame_timeout: Duration,
}

impl ClientConfig {
    /// Reads the settings from `url`, with the defaults above.
    pub fn from_url(url: &Url) -> Result<Self> {
        let ms = |key: &str, default: u64| -> Result<Duration> {
            Ok(Duration::from_millis(url.param_as(key, default)?.max(1)))
        };
        Ok(ClientConfig {
            connections: url.param_as(keys::CONNECTIONS, 1usize)?.clamp(1, 64),
            heartbeat: ms(keys::HEARTBEAT, DEFAULT_HEARTBEAT_MS)?,
            payload: url.param_as(keys::PAYLOAD, DEFAULT_PAYLOAD)?,
            queue: url.param_as(keys::SEND_QUEUE, 1024usize)?.max(1),
            reconnect_min: ms(keys::RECONNECT_INTERVAL, 100)?,
            reconnect_max: ms(keys::RECONNECT_MAX, 3000)?,
            frame_timeout: ms(keys::FRAME_TIMEOUT, super::guard::DEFAULT_FRAME_TIMEOUT_MS)?,
        })
    }
}

const SHARDS: usize = 16;

/// How often a connection with calls waiting looks for calls past their deadline. A call
/// times out at most this long after its deadline (Dubbo's own timer ticks every 30 ms); one
/// sweep per connection replaces a timer per call.
const DEADLINE_TICK: Duration = Duration::from_millis(10);

/// A call waiting for its response, then holding its answer until the call takes it: the
/// caller's future ([`Answer`]) and the reader meet in the connection's pending table, with
/// no channel per call.
struct Waiter {
    deadline: Instant,
    state: Waiting,
}

impl Waiter {
    /// Whether the call still waits for an answer (one answered but not yet taken does not).
    fn is_pending(&self) -> bool {
        matches!(self.state, Waiting::Pending(_))
    }
}

enum Waiting {
    /// No answer yet; the waker of the call's last poll, if it was polled.
    Pending(Option<Waker>),
    /// The response, or why there is none (the deadline passed, the connection closed).
    Answered(Result<Frame>),
}

/// One shard of a connection's pending calls, by request id. Ids come back from the peer, so
/// the map is seeded per shard (foldhash: fast on a `u64`, and the seed keeps a peer from
/// choosing colliding ids).
type PendingShard = HashMap<u64, Waiter, foldhash::fast::RandomState>;

/// A connection that lived this long resets the reconnect backoff.
const STABLE: Duration = Duration::from_secs(1);

/// One open connection: its send queue and the calls waiting on it.
struct Live {
    peer: String,
    /// The writer task's queue; frames go in through [`Live::try_queue`] or [`queue`], which
    /// count them in the outlet.
    tx: mpsc::Sender<Frame>,
    /// The writing end, for a call alone on the connection to write its frame itself.
    outlet: Arc<Outlet>,
    /// The reading end, for a call alone on the connection to read its answer itself.
    inlet: Inlet,
    pending: [Padded<Mutex<PendingShard>>; SHARDS],
    /// Entries in `pending`: calls waiting, or answered and not yet taken.
    calls: AtomicUsize,
    /// Set by the deadline sweeper when it found nothing waiting and sleeps until woken.
    sweeper_idle: AtomicBool,
    /// Wakes the idle sweeper ([`deadline_task`]).
    wake_sweeper: Arc<tokio::sync::Notify>,
    closed: AtomicBool,
    /// Identifies this connection in its slot's [`Slot::open`] (never 0).
    id: u64,
    /// The [`Slot::open`] of the slot this connection is put in: cleared when it closes,
    /// while it still names this connection.
    open_in: Arc<AtomicU64>,
    dead: CancellationToken,
    started: Instant,
    last_read_ms: AtomicU64,
    /// Why the connection closed, for the calls it fails (a TLS alert names its cause).
    reason: std::sync::OnceLock<String>,
}

impl Live {
    /// A new open connection to `peer` whose frames go out through `tx` (and its outlet,
    /// once a writer is installed there), encoded by `codec`, nothing waiting, for the slot
    /// whose [`Slot::open`] is `open_in`.
    fn new(
        peer: String,
        tx: mpsc::Sender<Frame>,
        codec: FrameCodec,
        open_in: Arc<AtomicU64>,
    ) -> Live {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Live {
            peer,
            tx,
            outlet: Arc::new(Outlet::new(codec)),
            inlet: Inlet::new(),
            pending: Default::default(),
            calls: AtomicUsize::new(0),
            sweeper_idle: AtomicBool::new(false),
            wake_sweeper: Arc::new(tokio::sync::Notify::new()),
            closed: AtomicBool::new(false),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            open_in,
            dead: CancellationToken::new(),
            started: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            reason: OnceLock::new(),
        }
    }

    fn shard(&self, id: u64) -> Result<MutexGuard<'_, PendingShard>> {
        self.pending[(id as usize) % SHARDS]
            .lock()
            .map_err(|_| poisoned())
    }

    /// Parks a waiter for `id`, failed with `Timeout` by the sweeper once `deadline` passes;
    /// refused once the connection is closed. The call then awaits [`Answer`].
    fn register(&self, id: u64, deadline: Instant) -> Result<()> {
        {
            let mut shard = self.shard(id)?;
            if self.closed.load(Ordering::Acquire) {
                return Err(self.closed_error());
            }
            let replaced = shard.insert(
                id,
                Waiter {
                    deadline,
                    state: Waiting::Pending(None),
                },
            );
            if replaced.is_none() {
                self.calls.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Read on every call, written only when the sweeper goes idle or is woken.
        if self.sweeper_idle.load(Ordering::SeqCst)
            && self.sweeper_idle.swap(false, Ordering::SeqCst)
        {
            self.wake_sweeper.notify_one();
        }
        Ok(())
    }

    /// Answers the waiters of `shard` that `pick` chooses (those still without an answer)
    /// with what `answer` makes, and returns their wakers, to be woken once the lock is let go.
    fn answer_where(
        shard: &mut PendingShard,
        mut pick: impl FnMut(&Waiter) -> bool,
        answer: impl Fn() -> RpcError,
    ) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for w in shard.values_mut() {
            if w.is_pending() && pick(w) {
                if let Waiting::Pending(Some(waker)) =
                    std::mem::replace(&mut w.state, Waiting::Answered(Err(answer())))
                {
                    wakers.push(waker);
                }
            }
        }
        wakers
    }

    /// Fails the calls whose deadline is not after `now`; returns whether any call is left
    /// waiting.
    fn expire(&self, now: Instant) -> bool {
        let mut waiting = false;
        for shard in &self.pending {
            let Ok(mut s) = shard.lock() else { continue };
            let wakers =
                Live::answer_where(&mut s, |w| w.deadline <= now, || self.deadline_error());
            waiting |= s.values().any(Waiter::is_pending);
            drop(s);
            // Woken outside the lock.
            wakers.into_iter().for_each(Waker::wake);
        }
        waiting
    }

    fn deadline_error(&self) -> RpcError {
        RpcError::timeout(format!(
            "no response from {} before the deadline",
            self.peer
        ))
        .with_provider(self.peer.clone())
    }

    fn is_waiting(&self) -> bool {
        self.pending
            .iter()
            .any(|s| s.lock().is_ok_and(|s| s.values().any(Waiter::is_pending)))
    }

    /// Takes the entry of `id` out of the pending table.
    fn unregister(&self, id: u64) {
        let taken = self.shard(id).map(|mut s| s.remove(&id));
        if matches!(taken, Ok(Some(_))) {
            self.calls.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether the pending table holds one entry: the call that just registered is alone.
    fn is_alone(&self) -> bool {
        // Sequentially consistent with the inlet's `lent`: of a call that reads for itself
        // and a second call registering and waiting, at least one sees the other (see
        // `Answer::poll`).
        self.calls.load(Ordering::SeqCst) == 1
    }

    /// Hands `frame` to the writer task without waiting for room in its queue.
    fn try_queue(&self, frame: Frame) -> std::result::Result<(), mpsc::error::TrySendError<Frame>> {
        self.outlet.queueing();
        let sent = self.tx.try_send(frame);
        if sent.is_err() {
            self.outlet.unqueued();
        }
        sent
    }

    /// Hands `answer` to the call waiting for `id`; an answer for no call still waiting (it
    /// gave up, or timed out) is dropped and counted.
    fn complete(&self, id: u64, answer: Result<Frame>) {
        let woken = self.shard(id).ok().and_then(|mut s| {
            let w = s.get_mut(&id)?;
            match &mut w.state {
                Waiting::Pending(waker) => {
                    let waker = waker.take();
                    w.state = Waiting::Answered(answer);
                    Some(waker)
                }
                Waiting::Answered(_) => None,
            }
        });
        match woken {
            Some(waker) => waker.into_iter().for_each(Waker::wake),
            None => {
                count_dropped();
                tracing::debug!(peer = %self.peer, id, "response for no pending call dropped (late or unknown id)");
            }
        }
    }

    /// Marks the connection dead and fails every pending call at once.
    fn close(&self, why: &str) {
        let _ = self.reason.set(why.to_string());
        // Sequentially consistent with `Slot::set`, which stores the slot's `open` and then
        // reads `closed`: one of the two sees the other, so a closed connection never stays
        // named open.
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self
            .open_in
            .compare_exchange(self.id, 0, Ordering::SeqCst, Ordering::SeqCst);
        tracing::debug!(peer = %self.peer, why, "connection closed");
        for shard in &self.pending {
            if let Ok(mut s) = shard.lock() {
                let wakers = Live::answer_where(&mut s, |_| true, || self.closed_error());
                drop(s);
                wakers.into_iter().for_each(Waker::wake);
            }
        }
        self.dead.cancel();
    }

    fn closed_error(&self) -> RpcError {
        let why = self.reason.get().map_or("", String::as_str);
        let text = if why.is_empty() {
            format!("connection to {} closed", self.peer)
        } else {
            format!("connection to {} closed: {why}", self.peer)
        };
        RpcError::network(text).with_provider(self.peer.clone())
    }

    fn touch(&self) {
        self.last_read_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_read_ms.load(Ordering::Relaxed)))
    }
}

fn poisoned() -> RpcError {
    RpcError::internal("pending-call table poisoned by a panic")
}

/// One connection position of a client: the live connection, if any, and whether its
/// supervisor (which reconnects) still runs — it does not once its runtime shut down.
#[derive(Default)]
struct Slot {
    /// Read on every call by every caller thread: an `ArcSwapOption` reads without writing
    /// to a shared cache line (a lock or a reference count would, on each call).
    live: ArcSwapOption<Live>,
    /// The id of the connection in `live` while it is open, else 0: whether the slot can take
    /// calls in one load, as a directory asks on every call (the connection clears it the
    /// moment it closes).
    open: Arc<AtomicU64>,
    supervisor_gone: AtomicBool,
    /// Why the last connection closed or the last attempt failed, for calls made meanwhile.
    last_failure: RwLock<Option<String>>,
}

impl Slot {
    fn get(&self) -> Option<Arc<Live>> {
        self.live.load_full()
    }
    /// Whether the slot holds a connection that is open, without taking a reference to it.
    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) != 0
    }
    /// Puts `live` in the slot (the connection first, then its id in `open`), or empties it
    /// (`open` first): a slot named open always holds the connection.
    fn set(&self, live: Option<Arc<Live>>) {
        match live {
            None => {
                self.open.store(0, Ordering::SeqCst);
                self.live.store(None);
            }
            Some(live) => {
                self.live.store(Some(live.clone()));
                self.open.store(live.id, Ordering::SeqCst);
                // Closed meanwhile: its `close` may have looked at `open` before this store.
                if live.closed.load(Ordering::SeqCst) {
                    let _ =
                        self.open
                            .compare_exchange(live.id, 0, Ordering::SeqCst, Ordering::SeqCst);
                }
            }
        }
    }
    fn failed(&self, why: String) {
        if let Ok(mut s) = self.last_failure.write() {
            *s = Some(why);
        }
    }
    fn last_failure(&self) -> Option<String> {
        self.last_failure.read().ok()?.clone()
    }
}

/// Marks the slot unsupervised when the supervisor task ends or is dropped.
struct SupervisorGuard(Arc<Slot>);

impl Drop for SupervisorGuard {
    fn drop(&mut self) {
        self.0.supervisor_gone.store(true, Ordering::Release);
        if let Some(l) = self.0.get() {
            l.close("connection supervisor stopped");
        }
    }
}

/// Multiplexed connections to one provider address, shared by every reference to it in the
/// process (see [`Client::shared`]). Dropping the last handle closes them.
pub struct Client {
    address: String,
    slots: Vec<Arc<Slot>>,
    next: AtomicUsize,
    payload: usize,
    cancel: CancellationToken,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.cancel.cancel();
        for s in &self.slots {
            if let Some(l) = s.get() {
                l.close("client dropped");
            }
        }
    }
}

type Registry = Mutex<HashMap<String, Weak<Client>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Default::default)
}

impl Client {
    /// The client for `url`'s address: an existing one if any reference in the process already
    /// holds it, else a new one whose first connection attempt must succeed.
    pub async fn shared(url: &Url) -> Result<Arc<Client>> {
        let cfg = ClientConfig::from_url(url)?;
        let transporter_name = url.param(keys::TRANSPORTER).unwrap_or("tcp");
        let mut key = format!("{transporter_name}|{}|{}", url.address(), cfg.connections);
        if crate::transport::tls::enabled(url)? {
            // A TLS client is not shared with a plaintext one, nor with another identity.
            key.push('|');
            key.push_str(&crate::transport::tls::client_identity(url));
        }
        if let Some(c) = registry()
            .lock()
            .map_err(|_| poisoned())?
            .get(&key)
            .and_then(Weak::upgrade)
            .filter(|c| c.is_supervised())
        {
            return Ok(c);
        }
        let client = Arc::new(Client::connect(url, cfg).await?);
        let mut reg = registry().lock().map_err(|_| poisoned())?;
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = reg
            .get(&key)
            .and_then(Weak::upgrade)
            .filter(|c| c.is_supervised())
        {
            // Another reference connected meanwhile; use its client, ours closes on drop.
            return Ok(existing);
        }
        reg.insert(key, Arc::downgrade(&client));
        Ok(client)
    }

    /// A new, unshared client; waits for the first connection of every slot.
    pub async fn connect(url: &Url, cfg: ClientConfig) -> Result<Client> {
        let transporter = extension::adaptive::<dyn Transporter>(url, "")?;
        let cancel = CancellationToken::new();
        let mut slots = Vec::with_capacity(cfg.connections);
        let mut firsts = Vec::with_capacity(cfg.connections);
        for _ in 0..cfg.connections {
            let slot = Arc::new(Slot::default());
            let (tx, rx) = oneshot::channel();
            tokio::spawn(supervise(
                slot.clone(),
                transporter.clone(),
                url.clone(),
                cfg.clone(),
                cancel.clone(),
                tx,
            ));
            slots.push(slot);
            firsts.push(rx);
        }
        let client = Client {
            address: url.address(),
            slots,
            next: AtomicUsize::new(0),
            payload: cfg.payload,
            cancel,
        };
        for rx in firsts {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.with_provider(client.address.clone())),
                Err(_) => return Err(RpcError::internal("connection supervisor stopped")),
            }
        }
        Ok(client)
    }

    /// The provider address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The largest body this client sends or accepts.
    pub fn payload_limit(&self) -> usize {
        self.payload
    }

    fn is_supervised(&self) -> bool {
        self.slots
            .iter()
            .all(|s| !s.supervisor_gone.load(Ordering::Acquire))
    }

    /// Why a connection last closed or failed to open, if one did since the last that opened.
    pub fn last_failure(&self) -> Option<String> {
        self.slots.iter().find_map(|s| s.last_failure())
    }

    /// Whether at least one connection is open.
    pub fn is_connected(&self) -> bool {
        self.slots.iter().any(|s| s.is_open())
    }

    fn pick(&self) -> Result<Arc<Live>> {
        let n = self.slots.len();
        // Round robin over the connections; with one, nothing to turn (the counter is
        // written by every call on every core).
        let start = if n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        for i in 0..n {
            if let Some(l) = self.slots[(start + i) % n].get() {
                if !l.closed.load(Ordering::Acquire) {
                    return Ok(l);
                }
            }
        }
        let last = self
            .last_failure()
            .map_or_else(String::new, |why| format!("; last: {why}"));
        Err(RpcError::network(format!(
            "not connected to {} (reconnecting){last}",
            self.address
        ))
        .with_provider(self.address.clone()))
    }

    /// Sends a two-way request (its id is assigned here) and waits for the response until
    /// `deadline`. Fails with `Network` at once if the connection is or goes down, with
    /// `Timeout` at the deadline, at most one deadline tick (10 ms) after it (the late
    /// response is then dropped).
    pub async fn request(&self, mut frame: Frame, deadline: Instant) -> Result<Frame> {
        let live = self.pick()?;
        let id = next_request_id();
        frame.id = id;
        live.register(id, deadline)?;
        let mut guard = PendingGuard {
            live: &live,
            id,
            armed: true,
        };
        // A call alone on its connection has no others to share a write with: it writes its
        // frame itself, unless another frame is on its way (see `outlet`).
        let frame = if live.is_alone() {
            match live.outlet.write_now(frame) {
                Direct::Sent => None,
                Direct::Busy(frame) => Some(frame),
                Direct::Failed(e) => {
                    live.close(&format!("write failed: {e}"));
                    return Err(live.closed_error());
                }
            }
        } else {
            Some(frame)
        };
        if let Some(frame) = frame {
            queue(&live, frame, deadline).await?;
        }
        // No timer per call: the connection's sweeper fails the waiter at its deadline.
        let answer = Answer { live: &live, id }.await;
        guard.armed = false;
        answer
    }

    /// Sends a one-way frame (id assigned here); returns once it is queued for writing.
    pub async fn send(&self, mut frame: Frame, deadline: Instant) -> Result<()> {
        let live = self.pick()?;
        frame.id = next_request_id();
        queue(&live, frame, deadline).await
    }
}

/// Queues `frame` for writing on `live`, waiting for room until `deadline` (a timer only
/// when the queue is full).
async fn queue(live: &Live, frame: Frame, deadline: Instant) -> Result<()> {
    // Counted until the writer task has it (or it is given up), so that no frame sent after
    // it is written directly before it.
    live.outlet.queueing();
    let failed = match live.tx.try_send(frame) {
        Ok(()) => return Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => live.closed_error(),
        // Boxed: the wait for room (a timer and a send) is rare, and kept inline it would
        // grow every call's future by its size.
        Err(mpsc::error::TrySendError::Full(frame)) => {
            match Box::pin(tokio::time::timeout_at(deadline, live.tx.send(frame))).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(_)) => live.closed_error(),
                Err(_) => RpcError::timeout(format!(
                    "send queue to {} stayed full until the deadline",
                    live.peer
                ))
                .with_provider(live.peer.clone()),
            }
        }
    };
    live.outlet.unqueued();
    Err(failed)
}

/// The wait of one call for its answer in the pending table: ready once the reader, the
/// deadline sweeper or the connection's close answered it (and then takes the entry out). A
/// call alone on its connection reads the socket itself while it waits (see `inlet`).
struct Answer<'a> {
    live: &'a Live,
    id: u64,
}

impl Answer<'_> {
    /// Takes the answer out of the pending table if it is there. Otherwise leaves `waker` to
    /// be woken by whoever answers (none: nobody is woken, the call looks again itself).
    fn look(&self, waker: Option<&Waker>) -> Poll<Result<Frame>> {
        let mut shard = match self.live.shard(self.id) {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let Some(waiter) = shard.get_mut(&self.id) else {
            // Only this future takes the entry out: it is gone only if a panic lost it.
            return Poll::Ready(Err(self.live.closed_error()));
        };
        match &mut waiter.state {
            Waiting::Pending(stored) => {
                match waker {
                    Some(w) if stored.as_ref().is_some_and(|s| s.will_wake(w)) => {}
                    Some(w) => *stored = Some(w.clone()),
                    None => *stored = None,
                }
                Poll::Pending
            }
            Waiting::Answered(_) => {
                let taken = shard.remove(&self.id);
                drop(shard);
                self.live.calls.fetch_sub(1, Ordering::AcqRel);
                match taken {
                    Some(Waiter {
                        state: Waiting::Answered(answer),
                        ..
                    }) => Poll::Ready(answer),
                    _ => Poll::Ready(Err(self.live.closed_error())),
                }
            }
        }
    }
}

impl Future for Answer<'_> {
    type Output = Result<Frame>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Frame>> {
        let live = self.live;
        if !live.is_alone() {
            // Another call may have read for itself last: this one must not wait for that
            // one's polls.
            live.inlet.take_back_if_lent();
            return self.look(Some(cx.waker()));
        }
        // No waker in the table while this call reads: its own answer, handed out here, does
        // not wake its own task for nothing (an answer the reader task hands out meanwhile
        // is found by the look below).
        if let Poll::Ready(answer) = self.look(None) {
            return Poll::Ready(answer);
        }
        match live.inlet.read_here(cx, &mut |a| arrived(live, a)) {
            Ok(true) => live.touch(),
            Ok(false) => {}
            Err(why) => live.close(&why),
        }
        if !live.is_alone() {
            // A call registered while this one read: it must not wait for this one's polls.
            live.inlet.take_back_if_lent();
        }
        self.look(Some(cx.waker()))
    }
}

/// Removes the pending entry when a call stops waiting (timeout or cancellation).
struct PendingGuard<'a> {
    live: &'a Live,
    id: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.live.unregister(self.id);
            // It may have been reading for itself: the reader task reads from now on.
            self.live.inlet.take_back_if_lent();
        }
    }
}

async fn supervise(
    slot: Arc<Slot>,
    transporter: Arc<dyn Transporter>,
    url: Url,
    cfg: ClientConfig,
    cancel: CancellationToken,
    first: oneshot::Sender<Result<()>>,
) {
    let _guard = SupervisorGuard(slot.clone());
    let mut first = Some(first);
    let mut backoff = cfg.reconnect_min;
    loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            r = transporter.connect(&url) => r,
        };
        match attempt {
            Ok(conn) => {
                let since = Instant::now();
                let live = start(conn, &cfg, slot.open.clone());
                slot.set(Some(live.clone()));
                if let Ok(mut f) = slot.last_failure.write() {
                    *f = None;
                }
                if let Some(f) = first.take() {
                    let _ = f.send(Ok(()));
                }
                tokio::select! {
                    _ = cancel.cancelled() => {
                        live.close("client closed");
                        slot.set(None);
                        return;
                    }
                    _ = live.dead.cancelled() => {}
                }
                slot.set(None);
                if let Some(why) = live.reason.get() {
                    slot.failed(format!("connection closed: {why}"));
                }
                if since.elapsed() >= STABLE {
                    // A connection that served a while: reconnect at once.
                    backoff = cfg.reconnect_min;
                    continue;
                }
                // It died young (a peer that accepts then drops): back off, do not spin.
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(cfg.reconnect_max);
            }
            Err(e) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                    return;
                }
                slot.failed(e.message().to_string());
                tracing::debug!(address = %url.address(), error = %e, delay_ms = backoff.as_millis() as u64, "reconnect failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(cfg.reconnect_max);
            }
        }
    }
}

fn start(conn: Connection, cfg: &ClientConfig, open_in: Arc<AtomicU64>) -> Arc<Live> {
    let (tx, rx) = mpsc::channel(cfg.queue);
    let codec = FrameCodec::new(cfg.payload);
    let live = Arc::new(Live::new(conn.peer, tx, codec, open_in));
    live.outlet.install(conn.writer);
    live.inlet.install(
        live.peer.clone(),
        conn.reader,
        codec,
        FrameClock::new(cfg.frame_timeout),
    );
    tokio::spawn(write_task(live.clone(), rx, cfg.heartbeat * 3));
    tokio::spawn(read_task(live.clone()));
    tokio::spawn(heartbeat_task(Arc::downgrade(&live), cfg.heartbeat));
    tokio::spawn(deadline_task(Arc::downgrade(&live)));
    live
}

async fn write_task(live: Arc<Live>, rx: mpsc::Receiver<Frame>, write_timeout: Duration) {
    let dead = live.dead.clone();
    let peer = live.peer.clone();
    let outlet = live.outlet.clone();
    // The writer must not keep the connection's sender alive.
    drop(live);
    if let Err(e) = outlet::write_loop(outlet, rx, dead.clone(), write_timeout).await {
        tracing::debug!(%peer, error = %e, "write failed");
    }
    // Any exit of the writer means the connection is unusable.
    dead.cancel();
}

/// Writes all of `buf` and flushes (plain TCP has nothing to flush; TLS may hold the end of
/// a record), failing with `TimedOut` when that does not complete within `timeout` (the peer
/// stopped reading).
pub(crate) async fn write_within(
    writer: &mut BoxWriter,
    buf: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let all = async {
        writer.write_all(buf).await?;
        writer.flush().await
    };
    crate::invocation::within_limit(timeout, all)
        .await
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("peer took no data for {} ms", timeout.as_millis()),
            )
        })?
}

/// Lets go of a write buffer that a burst of large frames grew past 1 MiB, for a fresh one
/// of `fresh` bytes: a connection does not keep such a buffer for its life.
pub(crate) fn let_go_if_large(buf: &mut BytesMut, fresh: usize) {
    if buf.capacity() > 1024 * 1024 {
        *buf = BytesMut::with_capacity(fresh);
    }
}

pub(crate) fn encode_or_log(codec: &mut FrameCodec, frame: Frame, buf: &mut BytesMut) {
    let id = frame.id;
    if let Err(e) = codec.encode(frame, buf) {
        tracing::warn!(id, error = %e, "frame not sent");
    }
}

/// Reads the connection for every call not reading for itself (see `inlet`), until it
/// closes; then closes it for everyone.
async fn read_task(live: Arc<Live>) {
    // Waited on across reads: registered with the token once, not once per read.
    let dead = live.dead.cancelled();
    tokio::pin!(dead);
    let why: std::borrow::Cow<'static, str> = loop {
        // Asked first without waiting, so that a closed connection is noticed even while the
        // peer keeps sending; waited on last, when the read has to wait anyway.
        if live.dead.is_cancelled() {
            break "closed".into();
        }
        let turn = std::future::poll_fn(|cx| live.inlet.poll_turn(cx, &mut |a| arrived(&live, a)));
        // Between frames the heartbeat watches the connection; inside a frame, its deadline.
        // (No timer at all between frames: the common case costs nothing.)
        let read = match live.inlet.frame_time_left() {
            None => tokio::select! {
                biased;
                r = turn => Ok(r),
                _ = live.inlet.nudged() => continue,
                _ = &mut dead => break "closed".into(),
            },
            Some(left) => tokio::select! {
                biased;
                r = tokio::time::timeout(left, turn) => r,
                _ = live.inlet.nudged() => continue,
                _ = &mut dead => break "closed".into(),
            },
        };
        match read {
            Ok(Ok(_)) => live.touch(),
            Ok(Err(why)) => break why,
            // A call reading for itself may have completed the frame meanwhile: only a frame
            // still incomplete at its deadline closes the connection.
            Err(_) if live.inlet.frame_time_left().is_some_and(|d| d.is_zero()) => {
                let (limit, buffered) = live.inlet.late_frame();
                guard::report(
                    "consumer",
                    Cause::SlowFrame,
                    &live.peer,
                    &format!(
                        "the provider did not complete a frame within {} ms of its first byte \
                         (frame.timeout), {buffered} bytes received; reconnecting",
                        limit.as_millis(),
                    ),
                );
                break "a frame was not completed in time".into();
            }
            Err(_) => {}
        }
    };
    live.close(&why);
}

/// Keeps room for a large read, so a busy connection is drained in few system calls.
pub(crate) fn reserve_for_read(buf: &mut BytesMut) {
    const MIN_ROOM: usize = 8 * 1024;
    if buf.capacity() - buf.len() < MIN_ROOM {
        buf.reserve(64 * 1024);
    }
}

/// Hands what the reading end took out to the calls: a response to its call (a response
/// over the payload limit fails only its call), a heartbeat its reply.
fn arrived(live: &Live, what: Arrived) {
    match what {
        Arrived::Frame(frame) => on_frame(live, frame),
        Arrived::TooLarge { id, len, limit } => live.complete(
            id,
            Err(RpcError::codec(format!(
                "response of {len} bytes is over the payload limit of {limit}"
            ))
            .with_provider(live.peer.clone())),
        ),
    }
}

fn on_frame(live: &Live, frame: Frame) {
    if frame.is_request() {
        if frame.is_event() && frame.is_two_way() {
            let _ = live.try_queue(frame.heartbeat_reply());
        } else {
            tracing::debug!(peer = %live.peer, "unexpected request from provider ignored");
        }
    } else if frame.is_event() {
        // A heartbeat answer: reading it already refreshed the liveness clock.
    } else {
        live.complete(frame.id, Ok(frame));
    }
}

/// Fails the calls of `live` past their deadline, looking every [`DEADLINE_TICK`] while
/// calls wait and sleeping until the next call when none does. At each look, and before it
/// sleeps, it has the reader task take back a read side a call read for itself (see
/// `inlet`): a call that stops being polled leaves the connection unread one tick at most.
/// Ends with the connection.
async fn deadline_task(live: Weak<Live>) {
    loop {
        let Some(l) = live.upgrade() else { return };
        let dead = l.dead.clone();
        if !l.expire(Instant::now()) {
            // Idle: say so first, then look again, so that a call registered in between
            // either is seen here or wakes the sweeper (a wake-up before the wait is kept).
            l.sweeper_idle.store(true, Ordering::SeqCst);
            if !l.is_waiting() {
                // After the look: a call that read for itself and is answered by now is
                // seen here.
                l.inlet.take_back_if_lent();
                let wake = l.wake_sweeper.clone();
                drop(l);
                tokio::select! {
                    _ = dead.cancelled() => return,
                    _ = wake.notified() => {}
                }
                continue;
            }
            l.sweeper_idle.store(false, Ordering::SeqCst);
        }
        l.inlet.take_back_if_lent();
        drop(l);
        tokio::select! {
            _ = dead.cancelled() => return,
            _ = tokio::time::sleep(DEADLINE_TICK) => {}
        }
    }
}

async fn heartbeat_task(live: Weak<Live>, every: Duration) {
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let dead = match live.upgrade() {
            Some(l) => l.dead.clone(),
            None => return,
        };
        tokio::select! {
            _ = dead.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(l) = live.upgrade() else { return };
        let silent = l.silent_for();
        if silent >= every * 3 {
            tracing::warn!(peer = %l.peer, silent_ms = silent.as_millis() as u64, "peer silent for three heartbeats; closing");
            l.close("heartbeat timeout");
            return;
        }
        if silent >= every {
            // In hessian2 with a null body: what every stock Dubbo peer decodes (ours answer
            // any serialization).
            let _ = l.try_queue(Frame::heartbeat(
                next_request_id(),
                crate::serialize::ids::HESSIAN2,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// A connection's state with no socket behind it: the pending table alone.
    fn live() -> Arc<Live> {
        let (tx, _rx) = mpsc::channel(8);
        Arc::new(Live::new(
            "127.0.0.1:1".into(),
            tx,
            FrameCodec::new(DEFAULT_PAYLOAD),
            Arc::default(),
        ))
    }

    #[test]
    fn a_slot_is_open_exactly_while_its_connection_is() {
        let slot = Slot::default();
        let live_in = |slot: &Slot| {
            let (tx, _rx) = mpsc::channel(8);
            Arc::new(Live::new(
                "127.0.0.1:1".into(),
                tx,
                FrameCodec::new(DEFAULT_PAYLOAD),
                slot.open.clone(),
            ))
        };
        assert!(!slot.is_open(), "empty");
        let first = live_in(&slot);
        slot.set(Some(first.clone()));
        assert!(slot.is_open());
        first.close("peer went away");
        assert!(
            !slot.is_open(),
            "closed before its supervisor empties the slot"
        );

        // A newer connection is not marked closed by the old one closing again or late.
        let second = live_in(&slot);
        slot.set(Some(second.clone()));
        assert!(slot.is_open());
        first.close("again");
        assert!(
            slot.is_open(),
            "the old connection does not close the new one"
        );
        slot.set(None);
        assert!(!slot.is_open(), "emptied");

        // A connection that closed before it was put in the slot is not open.
        let dead = live_in(&slot);
        dead.close("refused at once");
        slot.set(Some(dead));
        assert!(!slot.is_open());
    }

    fn response(id: u64) -> Frame {
        Frame {
            flag: 0,
            status: 20,
            id,
            body: bytes::Bytes::from_static(b"answer"),
        }
    }

    /// The entries of the pending table, waiting or answered.
    fn entries(live: &Live) -> usize {
        live.pending
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    /// A call's wait for `id`, as a task of its own.
    async fn wait(live: Arc<Live>, id: u64) -> Result<Frame> {
        Answer { live: &live, id }.await
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn an_answer_that_comes_before_the_wait_is_kept_for_it() {
        let live = live();
        live.register(7, later()).expect("registered");
        live.complete(7, Ok(response(7)));
        let frame = Answer { live: &live, id: 7 }.await.expect("answered");
        assert_eq!((frame.id, &frame.body[..]), (7, &b"answer"[..]));
        assert_eq!(entries(&live), 0, "the entry is taken out with the answer");
    }

    #[tokio::test]
    async fn an_answer_wakes_the_waiting_call() {
        let live = live();
        live.register(8, later()).expect("registered");
        let waiting = tokio::spawn(wait(live.clone(), 8));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        live.complete(8, Ok(response(8)));
        let frame = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("joined")
            .expect("answered");
        assert_eq!(frame.id, 8);
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_times_out_and_its_late_answer_is_dropped() {
        let live = live();
        live.register(9, Instant::now()).expect("registered");
        live.register(10, later()).expect("registered");
        assert!(live.expire(Instant::now()), "call 10 still waits");
        assert!(live.is_waiting());
        let before = super::super::dropped_responses();
        live.complete(9, Ok(response(9)));
        assert!(
            super::super::dropped_responses() > before,
            "a response after the deadline is counted as dropped"
        );
        let e = Answer { live: &live, id: 9 }.await.expect_err("timed out");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        live.complete(10, Ok(response(10)));
        assert!(
            !live.is_waiting(),
            "an answer not yet taken keeps no sweeper busy"
        );
        assert_eq!(
            Answer {
                live: &live,
                id: 10
            }
            .await
            .expect("answered")
            .id,
            10
        );
        assert!(!live.expire(Instant::now()), "nothing waits any more");
    }

    #[tokio::test]
    async fn closing_fails_every_waiting_call_and_refuses_new_ones() {
        let live = live();
        let waiting: Vec<_> = (20..24)
            .map(|id| {
                live.register(id, later()).expect("registered");
                tokio::spawn(wait(live.clone(), id))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        live.close("provider went away");
        for w in waiting {
            let e = tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("woken")
                .expect("joined")
                .expect_err("failed");
            assert_eq!(e.kind(), ErrorKind::Network, "{e}");
            assert!(e.to_string().contains("provider went away"), "{e}");
        }
        let e = live.register(30, later()).expect_err("closed");
        assert_eq!(e.kind(), ErrorKind::Network);
    }

    #[tokio::test]
    async fn a_call_that_stops_waiting_leaves_no_entry() {
        let live = live();
        live.register(40, later()).expect("registered");
        {
            let _guard = PendingGuard {
                live: &live,
                id: 40,
                armed: true,
            };
            let wait = Answer {
                live: &live,
                id: 40,
            };
            assert!(
                tokio::time::timeout(Duration::from_millis(10), wait)
                    .await
                    .is_err(),
                "no answer yet"
            );
        }
        assert_eq!(entries(&live), 0);
        let before = super::super::dropped_responses();
        live.complete(40, Ok(response(40)));
        assert!(super::super::dropped_responses() > before);
    }

    /// A connection's state reading from an in-memory socket, with no reader task unless a
    /// test starts one; returns the provider's end.
    fn live_on_socket(frame_timeout: Duration) -> (Arc<Live>, tokio::io::DuplexStream) {
        let live = live();
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (reader, _writer) = tokio::io::split(ours);
        live.inlet.install(
            live.peer.clone(),
            Box::new(reader),
            FrameCodec::new(DEFAULT_PAYLOAD),
            FrameClock::new(frame_timeout),
        );
        (live, theirs)
    }

    fn encoded(id: u64) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::new(DEFAULT_PAYLOAD)
            .encode(response(id), &mut buf)
            .expect("encoded");
        buf
    }

    /// Whether `answer` is still waiting after a short while (it reads for itself meanwhile,
    /// when alone).
    async fn still_waiting(answer: Pin<&mut Answer<'_>>) -> bool {
        tokio::time::timeout(Duration::from_millis(20), answer)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_call_alone_reads_its_own_answer_from_the_socket() {
        // No reader task at all: the call reads for itself.
        let (live, mut provider) = live_on_socket(Duration::from_secs(10));
        live.register(50, later()).expect("registered");
        let mut answer = std::pin::pin!(Answer {
            live: &live,
            id: 50
        });
        assert!(still_waiting(answer.as_mut()).await, "no answer yet");
        provider.write_all(&encoded(50)).await.expect("written");
        let frame = tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .expect("read by the call itself")
            .expect("answered");
        assert_eq!((frame.id, &frame.body[..]), (50, &b"answer"[..]));
        assert_eq!(entries(&live), 0);
        assert!(
            live.silent_for() < Duration::from_secs(1),
            "the read counts as life"
        );
    }

    /// A frame the codec refuses closes the connection, and the calls on it fail saying
    /// what was wrong with it.
    #[tokio::test]
    async fn calls_closed_by_a_bad_frame_say_what_was_wrong() {
        let (live, mut provider) = live_on_socket(Duration::from_secs(10));
        live.register(55, later()).expect("registered");
        provider.write_all(&[0u8; 16]).await.expect("written");
        let e = tokio::time::timeout(Duration::from_secs(5), wait(live.clone(), 55))
            .await
            .expect("failed at once")
            .expect_err("closed");
        assert_eq!(e.kind(), ErrorKind::Network, "{e}");
        assert!(e.to_string().contains("bad magic 0x0000"), "{e}");
    }

    #[tokio::test]
    async fn a_second_call_has_the_reader_task_take_the_socket_back() {
        let (live, mut provider) = live_on_socket(Duration::from_secs(10));
        tokio::spawn(read_task(live.clone()));
        live.register(60, later()).expect("registered");
        let mut first = std::pin::pin!(Answer {
            live: &live,
            id: 60
        });
        // The first call reads for itself, then is not polled for a while (as in a
        // `select!` whose other branch won): the socket would wake only its task.
        assert!(still_waiting(first.as_mut()).await);
        live.register(61, later()).expect("registered");
        let second = tokio::spawn(wait(live.clone(), 61));
        provider.write_all(&encoded(61)).await.expect("written");
        provider.write_all(&encoded(60)).await.expect("written");
        let frame = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the reader task read for the second call")
            .expect("joined")
            .expect("answered");
        assert_eq!(frame.id, 61);
        let frame = tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("answered meanwhile")
            .expect("answered");
        assert_eq!(frame.id, 60);
    }

    #[tokio::test]
    async fn a_call_that_stops_being_polled_leaves_the_socket_unread_for_a_tick_at_most() {
        let (live, provider) = live_on_socket(Duration::from_secs(10));
        tokio::spawn(read_task(live.clone()));
        tokio::spawn(deadline_task(Arc::downgrade(&live)));
        live.register(70, later()).expect("registered");
        let mut answer = std::pin::pin!(Answer {
            live: &live,
            id: 70
        });
        assert!(still_waiting(answer.as_mut()).await);
        // The provider goes away while the call that read last is not polled: the sweeper
        // has the reader task read again, which sees the end of the stream.
        drop(provider);
        tokio::time::timeout(Duration::from_secs(5), live.dead.cancelled())
            .await
            .expect("the close is noticed without the call being polled");
        let e = answer.await.expect_err("closed");
        assert_eq!(e.kind(), ErrorKind::Network, "{e}");
        assert!(e.to_string().contains("peer closed"), "{e}");
    }

    #[tokio::test]
    async fn a_call_that_stops_waiting_gives_the_socket_back_to_the_reader_task() {
        let (live, provider) = live_on_socket(Duration::from_secs(10));
        tokio::spawn(read_task(live.clone()));
        live.register(80, later()).expect("registered");
        {
            let _guard = PendingGuard {
                live: &live,
                id: 80,
                armed: true,
            };
            let mut answer = std::pin::pin!(Answer {
                live: &live,
                id: 80
            });
            assert!(still_waiting(answer.as_mut()).await);
        }
        // No sweeper here: only the dropped call hands the socket back. The provider going
        // away is then seen by the reader task.
        drop(provider);
        tokio::time::timeout(Duration::from_secs(5), live.dead.cancelled())
            .await
            .expect("the reader task reads again");
    }

    #[tokio::test]
    async fn a_frame_completed_by_a_call_reading_for_itself_is_not_late() {
        let limit = Duration::from_millis(300);
        let (live, mut provider) = live_on_socket(limit);
        tokio::spawn(read_task(live.clone()));
        let whole = encoded(90);
        // The reader task sees the first half: its frame clock starts.
        provider.write_all(&whole[..10]).await.expect("written");
        tokio::time::sleep(Duration::from_millis(10)).await;
        live.register(90, later()).expect("registered");
        let mut answer = std::pin::pin!(Answer {
            live: &live,
            id: 90
        });
        assert!(still_waiting(answer.as_mut()).await);
        provider.write_all(&whole[10..]).await.expect("written");
        let frame = tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .expect("read")
            .expect("answered");
        assert_eq!(frame.id, 90);
        // The reader task's timer for that frame fires: the frame is complete, so the
        // connection stays open.
        tokio::time::sleep(limit * 2).await;
        assert!(
            !live.dead.is_cancelled(),
            "closed for a frame that was not late"
        );
    }
}
