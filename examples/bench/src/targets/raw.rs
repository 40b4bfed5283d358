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
