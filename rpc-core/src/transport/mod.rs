//! Transports: byte streams between consumer and provider (`transporter=`, default `tcp`;
//! TLS with `tls=true`, see [`tls`]).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::keys;
use crate::error::Result;
use crate::url::Url;

mod tcp;
pub mod tls;

pub use tcp::Tcp;

/// The read half of a connection.
pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection.
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// An open connection, already split so reader and writer can run in separate tasks.
pub struct Connection {
    /// Bytes from the peer.
    pub reader: BoxReader,
    /// Bytes to the peer.
    pub writer: BoxWriter,
    /// The peer's address, for messages.
    pub peer: String,
}

/// Opens and accepts connections.
#[async_trait::async_trait]
pub trait Transporter: Send + Sync {
    /// Connects to the provider at `url` (`connect.timeout` ms, default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    async fn connect(&self, url: &Url) -> Result<Connection>;

    /// Listens at `url`'s host and port (port 0 picks a free one).
    async fn bind(&self, url: &Url) -> Result<Box<dyn Acceptor>>;
}

/// A listening socket.
#[async_trait::async_trait]
pub trait Acceptor: Send + Sync {
    /// The next incoming connection.
    async fn accept(&self) -> Result<Connection>;

    /// The bound address (`host:port`), with the real port when 0 was asked for.
    fn local_addr(&self) -> Result<String>;
}

/// Connect timeout when the URL does not set `connect.timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn _assert_object_safe(_: &dyn Transporter, _: &dyn Acceptor) {}

crate::extension_point!(dyn Transporter, key = keys::TRANSPORTER, default = "tcp");
