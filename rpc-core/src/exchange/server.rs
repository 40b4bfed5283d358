//! The provider side of the exchange: accept loop, per-connection reader and writer.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::client::{reserve_for_read, write_loop};
use super::{Frame, FrameCodec, FrameError, DEFAULT_HEARTBEAT_MS, DEFAULT_PAYLOAD};
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension;
use crate::invocation::ByteString;
use crate::transport::{Acceptor, Connection, Transporter};
use crate::url::Url;

/// Answers requests; implemented by the protocol (which knows the body layout).
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one request frame from `peer` (the caller's address as the transport saw it);
    /// returns the response frame for two-way requests.
    async fn handle(&self, request: Frame, peer: ByteString) -> Option<Frame>;

    /// The response to a request (header `flag` and `id`) refused before it was handled: its
    /// body is over the payload limit, or the server is saturated. `None` sends nothing.
    fn reject(&self, flag: u8, id: u64, error: RpcError) -> Option<Frame>;
}

/// Requests executing at once on one server when the URL does not set `threads`. Past it a
/// request is refused at once with status 100 (LimitExceeded, retriable elsewhere) rather
/// than queued: load is shed early, as Dubbo's default thread pool does.
pub const DEFAULT_THREADS: usize = 10_000;

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
    /// `accepts`: most connections open at once (default 0, unlimited); one more is closed
    /// as soon as it is accepted.
    pub accepts: usize,
}

impl ServerConfig {
    /// Reads the settings from `url`.
    pub fn from_url(url: &Url) -> Result<Self> {
        let hb: u64 = url.param_as("heartbeat", DEFAULT_HEARTBEAT_MS)?;
        Ok(ServerConfig {
            payload: url.param_as("payload", DEFAULT_PAYLOAD)?,
            idle: Duration::from_millis(url.param_as("idle.timeout", hb.saturating_mul(3))?.max(1)),
            queue: url.param_as("send.queue", 1024usize)?.max(1),
            threads: url.param_as("threads", DEFAULT_THREADS)?.max(1),
            accepts: url.param_as("accepts", 0usize)?,
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
    let permits = Arc::new(Semaphore::new(cfg.threads));
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
                            tracing::warn!(peer = %conn.peer, limit = cfg.accepts, "too many connections; refused");
                            continue;
                        }
                    },
                };
                let (handler, cfg, permits, stop) =
                    (handler.clone(), cfg.clone(), permits.clone(), stop.clone());
                tokio::spawn(async move {
                    serve(conn, handler, cfg, permits, stop).await;
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
    permits: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let Connection {
        mut reader,
        writer,
        peer,
    } = conn;
    let (tx, rx) = mpsc::channel::<Frame>(cfg.queue);
    let mut codec = FrameCodec::new(cfg.payload);
    let writer_peer = peer.clone();
    // Fires when the writer gives up (write error, or a peer that stopped reading): the
    // reader then stops taking requests it could not answer.
    let writer_gone = CancellationToken::new();
    let gone = writer_gone.clone();
    let idle = cfg.idle;
    let writer = tokio::spawn(async move {
        if let Err(e) = write_loop(rx, writer, codec, None, idle).await {
            tracing::debug!(peer = %writer_peer, error = %e, "write failed; closing");
        }
        gone.cancel();
    });
    let peer_name = ByteString::from(peer.as_str());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    'conn: loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => dispatch(frame, &peer_name, &handler, &tx, &permits).await,
                Ok(None) => break,
                Err(FrameError::TooLarge {
                    flag,
                    id,
                    len,
                    limit,
                }) => {
                    // The codec skips the body; the connection goes on.
                    tracing::warn!(%peer, id, len, limit, "frame over the payload limit refused");
                    let e = RpcError::codec(format!(
                        "request of {len} bytes is over the payload limit of {limit}"
                    ));
                    if let Some(answer) = handler.reject(flag, id, e) {
                        let _ = tx.send(answer).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                    break 'conn;
                }
            }
        }
        reserve_for_read(&mut buf);
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            _ = writer_gone.cancelled() => break,
            r = tokio::time::timeout(cfg.idle, reader.read_buf(&mut buf)) => r,
        };
        match read {
            Err(_) => {
                tracing::warn!(%peer, idle_ms = cfg.idle.as_millis() as u64, partial = buf.len(), "connection idle too long; closing");
                break;
            }
            Ok(Ok(0)) => {
                if !buf.is_empty() {
                    tracing::warn!(%peer, partial = buf.len(), "connection closed in the middle of a frame");
                }
                break;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                break;
            }
        }
    }
    // In-flight handlers hold clones of `tx`: the writer flushes their answers, then closes.
    drop(tx);
    let _ = writer.await;
}

async fn dispatch(
    frame: Frame,
    peer: &ByteString,
    handler: &Arc<dyn Handler>,
    tx: &mpsc::Sender<Frame>,
    permits: &Arc<Semaphore>,
) {
    if !frame.is_request() {
        // Answers to heartbeats we never send, or noise: nothing to do.
        return;
    }
    if frame.is_event() {
        if frame.is_two_way() {
            let _ = tx.send(frame.heartbeat_reply()).await;
        }
        return;
    }
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        let e = RpcError::new(
            ErrorKind::LimitExceeded,
            "the provider is executing its maximum of concurrent requests (threads)",
        );
        if let Some(answer) = handler.reject(frame.flag, frame.id, e) {
            let _ = tx.send(answer).await;
        }
        return;
    };
    // The request is polled once right here: a method that completes without waiting (most
    // do, once their arguments are decoded) is answered without a task of its own and the
    // scheduling it costs. One that has to wait (I/O, a timer, a lock) continues in its own
    // task, so it never holds up the other calls on this connection.
    let handler = handler.clone();
    let peer = peer.clone();
    let mut call = Box::pin(async move { handler.handle(frame, peer).await });
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(answer) => {
            if let Some(answer) = answer {
                let _ = tx.send(answer).await;
            }
            drop(permit);
        }
        Poll::Pending => {
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
