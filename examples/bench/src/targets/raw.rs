//! `raw`: a hand-written tokio echo, the practical ceiling.
//!
//! Frames are tokio-util length-delimited; a frame is an 8-byte big-endian request id followed
//! by the payload. The server echoes each frame back unchanged, batching writes while more
//! frames are already buffered. The client multiplexes every outstanding call over one
//! connection: a writer task drains a queue of frames (one flush per batch) and a reader task
//! completes the pending call whose id the response carries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::BoxResult;

/// Largest frame either side accepts (ids plus the largest benchmark payload, with room).
const MAX_FRAME: usize = 1 << 20;

/// Bytes buffered before a write is forced out (tokio-util's default of 8 KiB would flush
/// every second 4 KiB frame of a batch).
const WRITE_BATCH: usize = 64 * 1024;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Binds `127.0.0.1:port` and serves echo connections in the background; returns the port.
pub async fn start_server(port: u16) -> BoxResult<u16> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Err(e) = serve_conn(sock).await {
                    eprintln!("raw server: connection closed: {e}");
                }
            });
        }
    });
    Ok(port)
}

async fn serve_conn(sock: TcpStream) -> BoxResult<()> {
    sock.set_nodelay(true)?;
    let (r, w) = sock.into_split();
    let mut rd = FramedRead::new(r, codec());
    let mut wr = FramedWrite::new(w, codec());
    wr.set_backpressure_boundary(WRITE_BATCH);
    while let Some(frame) = rd.next().await {
        let frame = frame?;
        if frame.len() < 8 {
            return Err(format!("frame of {} bytes has no 8-byte request id", frame.len()).into());
        }
        wr.feed(frame.freeze()).await?;
        // Echo whatever is already decoded before paying for a flush (write batching).
        while let Some(Some(next)) = rd.next().now_or_never() {
            let next = next?;
            if next.len() < 8 {
                return Err(
                    format!("frame of {} bytes has no 8-byte request id", next.len()).into(),
                );
            }
            wr.feed(next.freeze()).await?;
        }
        SinkExt::<Bytes>::flush(&mut wr).await?;
    }
    Ok(())
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>;

/// One multiplexed connection; cheap to clone, every clone shares it.
#[derive(Clone)]
pub struct Client {
    next_id: Arc<AtomicU64>,
    pending: Pending,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Client {
    /// Connects and starts the writer and reader tasks.
    pub async fn connect(addr: SocketAddr) -> BoxResult<Client> {
        let sock = TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        let (r, w) = sock.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        tokio::spawn(async move {
            let mut wr = FramedWrite::new(w, codec());
            wr.set_backpressure_boundary(WRITE_BATCH);
            while let Some(frame) = rx.recv().await {
                if wr.feed(frame).await.is_err() {
                    return;
                }
                while let Ok(frame) = rx.try_recv() {
                    if wr.feed(frame).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<Bytes>::flush(&mut wr).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::default();
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            let mut rd = FramedRead::new(r, codec());
            while let Some(Ok(frame)) = rd.next().await {
                if frame.len() < 8 {
                    break;
                }
                let mut id = [0u8; 8];
                id.copy_from_slice(&frame[..8]);
                let id = u64::from_be_bytes(id);
                let payload = frame.freeze().slice(8..);
                let waiter = reader_pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(payload);
                }
            }
            // Connection gone: fail every waiting call by dropping its sender.
            if let Ok(mut p) = reader_pending.lock() {
                p.clear();
            }
        });
        Ok(Client {
            next_id: Arc::new(AtomicU64::new(0)),
            pending,
            tx,
        })
    }

    /// Sends `payload` and waits for its echo.
    pub async fn call(&self, payload: &[u8]) -> BoxResult<Bytes> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| "pending map poisoned")?
            .insert(id, done);
        let mut frame = BytesMut::with_capacity(8 + payload.len());
        frame.put_u64(id);
        frame.extend_from_slice(payload);
        if self.tx.send(frame.freeze()).is_err() {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&id);
            }
            return Err("raw connection writer stopped".into());
        }
        Ok(wait.await.map_err(|_| "raw connection closed")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_on_one_connection_get_their_own_answers() {
        let port = start_server(0).await.expect("server");
        let client = Client::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("connect");
        let mut calls = Vec::new();
        for i in 0..64u32 {
            let client = client.clone();
            calls.push(tokio::spawn(async move {
                let payload = i.to_be_bytes().repeat(i as usize + 1);
                let back = client.call(&payload).await.expect("call");
                assert_eq!(
                    &back[..],
                    &payload[..],
                    "call {i} got another call's answer"
                );
            }));
        }
        for c in calls {
            c.await.expect("task");
        }
    }

    #[tokio::test]
    async fn a_frame_without_a_request_id_closes_the_connection() {
        let port = start_server(0).await.expect("server");
        let mut sock = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // Length prefix 3, then 3 bytes: too short to hold the 8-byte id.
        sock.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.expect("write");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
            .await
            .expect("server answered or closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "server echoed a frame without an id");
    }

    #[tokio::test]
    async fn calls_fail_once_the_server_is_gone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let client = Client::connect(addr).await.expect("connect");
        drop(accept.await.expect("task").expect("accepted"));
        let r = tokio::time::timeout(Duration::from_secs(10), client.call(b"x"))
            .await
            .expect("failed in time");
        assert!(r.is_err(), "a call on a closed connection succeeded");
    }
}
