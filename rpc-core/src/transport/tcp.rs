//! `tcp`: tokio TCP with `TCP_NODELAY` (small RPC frames must not wait for Nagle), with TLS
//! when the URL says `tls=true` (see [`super::tls`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::{Acceptor, Connection, Transporter, DEFAULT_CONNECT_TIMEOUT};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::url::Url;

/// The default transporter.
#[derive(Debug, Default)]
pub struct Tcp;

fn split(stream: TcpStream, peer: String) -> Result<Connection> {
    stream
        .set_nodelay(true)
        .map_err(|e| RpcError::network(format!("cannot set TCP_NODELAY: {e}")))?;
    let (r, w) = stream.into_split();
    Ok(Connection {
        reader: Box::new(r),
        writer: Box::new(w),
        peer,
    })
}

#[async_trait::async_trait]
impl Transporter for Tcp {
    async fn connect(&self, url: &Url) -> Result<Connection> {
        let addr = url.address();
        let ms: u64 = url.param_as(
            keys::CONNECT_TIMEOUT,
            DEFAULT_CONNECT_TIMEOUT.as_millis() as u64,
        )?;
        let started = tokio::time::Instant::now();
        let stream = tokio::time::timeout(Duration::from_millis(ms), TcpStream::connect(&addr))
            .await
            .map_err(|_| {
                RpcError::new(
                    ErrorKind::Network,
                    format!("connecting to {addr} took longer than {ms} ms"),
                )
            })?
            .map_err(|e| {
                RpcError::network(format!("cannot connect to {addr}: {e}")).with_source(e)
            })?;
        if super::tls::enabled(url)? {
            stream
                .set_nodelay(true)
                .map_err(|e| RpcError::network(format!("cannot set TCP_NODELAY: {e}")))?;
            let left = Duration::from_millis(ms).saturating_sub(started.elapsed());
            return super::tls::connect(url, stream, addr, left).await;
        }
        split(stream, addr)
    }

    async fn bind(&self, url: &Url) -> Result<Box<dyn Acceptor>> {
        let host = if url.host().is_empty() {
            "127.0.0.1"
        } else {
            url.host()
        };
        let addr = Url::new("tcp", host, url.port().unwrap_or(0)).address();
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            RpcError::network(format!("cannot listen on {addr}: {e}")).with_source(e)
        })?;
        if super::tls::enabled(url)? {
            let local = listener
                .local_addr()
                .map(|a| a.to_string())
                .map_err(|e| RpcError::network(format!("no local address: {e}")))?;
            return Ok(Box::new(super::tls::TlsAcceptor::new(
                listener, url, local,
            )?));
        }
        Ok(Box::new(TcpAcceptor(listener)))
    }
}

struct TcpAcceptor(TcpListener);

#[async_trait::async_trait]
impl Acceptor for TcpAcceptor {
    async fn accept(&self) -> Result<Connection> {
        let (stream, peer) = self
            .0
            .accept()
            .await
            .map_err(|e| RpcError::network(format!("accept failed: {e}")).with_source(e))?;
        split(stream, peer.to_string())
    }

    fn local_addr(&self) -> Result<String> {
        self.0
            .local_addr()
            .map(|a| a.to_string())
            .map_err(|e| RpcError::network(format!("no local address: {e}")))
    }
}

crate::register!(dyn Transporter, "tcp", || Arc::new(Tcp));

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connects_and_carries_bytes_on_loopback() {
        let acceptor = Tcp
            .bind(&Url::parse("tcp://127.0.0.1:0").expect("url"))
            .await
            .expect("bind");
        let addr = acceptor.local_addr().expect("addr");
        let url = Url::parse(&format!("tcp://{addr}")).expect("url");
        let client = tokio::spawn(async move {
            let mut c = Tcp.connect(&url).await.expect("connect");
            c.writer.write_all(b"ping").await.expect("write");
            let mut buf = [0u8; 4];
            c.reader.read_exact(&mut buf).await.expect("read");
            buf
        });
        let mut s = acceptor.accept().await.expect("accept");
        let mut buf = [0u8; 4];
        s.reader.read_exact(&mut buf).await.expect("read");
        s.writer.write_all(b"pong").await.expect("write");
        assert_eq!(&client.await.expect("join"), b"pong");
    }

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let url = Url::new("tcp", "127.0.0.1", port);
        let e = Tcp.connect(&url).await.err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        // The operating system's error stays reachable as the source, for callers that
        // match on it.
        let io = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("an io::Error source");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
