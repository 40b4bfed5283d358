//! `tri`: Triple, Dubbo 3's gRPC-compatible protocol over HTTP/2, as a [`Protocol`] chosen by
//! URL like `dubbo` (`tri://host:port/org.example.Greeter`). Linking this crate registers it.
//!
//! # Wire
//!
//! Each call is one HTTP/2 stream: `POST /{interface}/{method}`, `te: trailers`,
//! `content-type: application/grpc` (or `+proto`, `+json`), the request as one
//! length-prefixed message (a 0 flag byte, a big-endian u32 length, the bytes), the answer as
//! response headers, one message and trailers with `grpc-status` (and `grpc-message`,
//! percent-encoded, when not 0). A failure before any message is a trailers-only response.
//!
//! | header                   | direction | carries                                            |
//! |--------------------------|-----------|----------------------------------------------------|
//! | `grpc-timeout`           | request   | the caller's remaining budget (`250m`, `3S`, ...)  |
//! | `tri-service-version`    | request   | the service version (absent: see below)            |
//! | `tri-service-group`      | request   | the service group                                  |
//! | `tri-consumer-appname`   | both      | the `application` attachment                       |
//! | any other                | both      | an attachment (request headers, response trailers) |
//! | `rpc-error-kind`         | response  | the exact [`ErrorKind`](rpc_core::ErrorKind) name  |
//! | `rpc-biz-error-bin`      | response  | a business error's value (a response wrapper)      |
//!
//! A call without version and group (a plain gRPC client sends neither) goes to the one
//! service of that interface exported on the port; when several are, the answer is
//! UNIMPLEMENTED naming them.
//!
//! # Codecs
//!
//! - **protobuf mode**: a `#[service]` method whose single argument and result are
//!   `prost::Message`s (see [`rpc_core::proxy::protobuf`]) sends the messages themselves:
//!   plain gRPC, callable by any gRPC stub generated from the same `.proto`. The path names
//!   the method in the `.proto` spelling (`say_hello` is sent as `SayHello`; the provider
//!   accepts either).
//! - **wrapper mode**: every other method sends Triple's `TripleRequestWrapper`
//!   (`serializeType`, one encoded value per argument, argument types) and gets a
//!   `TripleResponseWrapper` back, in the serialization the `serialization` key names
//!   (default msgpack; hessian2 is called `hessian4` there, as Java peers write it).
//! - **JSON**: `application/grpc+json` (gRPC framing) or `application/json` (a bare body, for
//!   `curl --http2-prior-knowledge`): an array of the arguments, or for a method of one
//!   argument that argument alone; the answer is the result as JSON.
//!
//! # Status codes
//!
//! | kind                                   | grpc-status            |
//! |----------------------------------------|------------------------|
//! | Timeout                                | 4 DEADLINE_EXCEEDED    |
//! | NoProvider, Network, CircuitOpen       | 14 UNAVAILABLE         |
//! | Codec, Internal                        | 13 INTERNAL            |
//! | ServiceNotFound, MethodNotFound        | 12 UNIMPLEMENTED       |
//! | Unauthorized                           | 7 PERMISSION_DENIED    |
//! | LimitExceeded                          | 8 RESOURCE_EXHAUSTED   |
//! | Config                                 | 9 FAILED_PRECONDITION  |
//! | Biz, a business error                  | 2 UNKNOWN              |
//!
//! Bad input: a content type that is not gRPC or JSON gets HTTP 415 with INVALID_ARGUMENT;
//! a path that is not `/{interface}/{method}` or names no exported service UNIMPLEMENTED; a
//! truncated message INTERNAL; a message over `payload` RESOURCE_EXHAUSTED (refused from its
//! length prefix, before it is read); a malformed `grpc-timeout` INVALID_ARGUMENT; a
//! compressed message UNIMPLEMENTED (identity only); a unary request that has not arrived by the
//! caller's deadline (30 s without one) DEADLINE_EXCEEDED. A stream the caller resets drops the
//! call on the provider; a consumer whose deadline passes resets its stream.
//!
//! # Keys
//!
//! Consumer: `timeout` (method level first, unless the invocation has a deadline),
//! `serialization` (wrapper mode), `payload`, `reconnect.interval` / `reconnect.max` (after a
//! failed connection the reference reports itself unavailable for the interval, doubled per
//! failure up to the max, then the next call dials again). Provider: `payload` (largest message accepted
//! or sent, default 8 MiB). Services exported on the same host and port share one listener.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::extension::AdaptiveCache;
use rpc_core::filter::DEFAULT_TIMEOUT_MS;
use rpc_core::protocol::{Exporter, Protocol};
use rpc_core::{Invoker, RpcError, Url};

mod client;
mod codec;
mod headers;
mod server;
mod streams;
pub mod wire;

/// The port used when a provider URL gives none (Dubbo's Triple default).
pub const DEFAULT_PORT: u16 = 50051;

/// How often a provider PINGs each connection when the `heartbeat` key does not say.
const DEFAULT_HEARTBEAT_MS: u64 = 60_000;

/// HTTP/2 settings of both sides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct H2Settings {
    stream_window: u32,
    connection_window: u32,
    max_streams: u32,
    max_header_list: u32,
    /// A provider PINGs each connection this often (the `heartbeat` key), and closes one
    /// whose peer does not answer within two more: a client that vanished without a FIN
    /// (power lost, a NAT that forgot it) holds no connection and no calls for ever.
    heartbeat: Duration,
}

impl Default for H2Settings {
    fn default() -> Self {
        H2Settings {
            stream_window: 1 << 20,
            connection_window: 4 << 20,
            max_streams: 1024,
            max_header_list: 16 << 10,
            heartbeat: Duration::from_millis(DEFAULT_HEARTBEAT_MS),
        }
    }
}

/// The `tri` protocol: one listener per bound address, one shared HTTP/2 connection per
/// provider address. See the [crate docs](crate).
#[derive(Default)]
pub struct Triple {
    listeners: rpc_core::protocol::listeners::Listeners<server::Listener>,
    channels: std::sync::Mutex<HashMap<String, Weak<client::Channel>>>,
}

#[async_trait::async_trait]
impl Protocol for Triple {
    fn default_port(&self) -> u16 {
        DEFAULT_PORT
    }

    fn carries_streams(&self) -> bool {
        true
    }

    async fn export(
        &self,
        url: Url,
        invoker: Arc<dyn Invoker>,
    ) -> Result<Box<dyn Exporter>, RpcError> {
        let payload = url.param_as(keys::PAYLOAD, rpc_core::exchange::DEFAULT_PAYLOAD)?;
        let tls = rpc_core::transport::tls::enabled(&url)?;
        let tls_url = url.clone();
        let settings = H2Settings {
            heartbeat: Duration::from_millis(
                url.param_as(keys::HEARTBEAT, DEFAULT_HEARTBEAT_MS)?
                    .max(100),
            ),
            ..H2Settings::default()
        };
        self.listeners
            .export(
                &url,
                DEFAULT_PORT,
                invoker,
                |l: &server::Listener, address| {
                    if l.tls == tls {
                        return Ok(());
                    }
                    Err(RpcError::config(format!(
                        "{address} already serves tri {}; export this service with tls={} or on another port",
                        if l.tls { "over TLS" } else { "in plaintext" },
                        l.tls
                    )))
                },
                |host, port| async move {
                    let server_tls = tls
                        .then(|| rpc_core::transport::tls::ServerTls::start(&tls_url, &[b"h2"]))
                        .transpose()?;
                    server::Listener::bind(&host, port, payload, settings, server_tls).await
                },
            )
            .await
    }

    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>, RpcError> {
        let timeout = Duration::from_millis(url.param_as(keys::TIMEOUT, DEFAULT_TIMEOUT_MS)?);
        let payload = url.param_as(keys::PAYLOAD, rpc_core::exchange::DEFAULT_PAYLOAD)?;
        let address = url.address();
        // Connections are shared per address and, over TLS, per client identity.
        let tls = rpc_core::transport::tls::enabled(&url)?;
        let channel_key = if tls {
            format!(
                "{address}|tls|{}",
                rpc_core::transport::tls::client_identity(&url)
            )
        } else {
            address.clone()
        };
        let channel = {
            let mut channels = self
                .channels
                .lock()
                .map_err(|_| RpcError::internal("channel table poisoned"))?;
            channels.retain(|_, c| c.strong_count() > 0);
            match channels.get(&channel_key).and_then(Weak::upgrade) {
                Some(c) => c,
                None => {
                    let ms = |key: &str, default: u64| -> Result<Duration, RpcError> {
                        Ok(Duration::from_millis(url.param_as(key, default)?))
                    };
                    let backoff = client::Backoff::new(
                        ms(keys::RECONNECT_INTERVAL, 100)?,
                        ms(keys::RECONNECT_MAX, 3000)?,
                    );
                    let tls_url = tls.then(|| url.clone());
                    let c = client::Channel::new(
                        address.clone(),
                        H2Settings::default(),
                        backoff,
                        tls_url,
                    );
                    channels.insert(channel_key, Arc::downgrade(&c));
                    c
                }
            }
        };
        // Connected at once, so that a wrong address shows when the reference is made; a
        // provider that is down is dialled again on the next call.
        let connect_by = tokio::time::Instant::now() + timeout.max(Duration::from_secs(1));
        if let Err(e) = channel.connect(connect_by).await {
            tracing::debug!(%address, error = %e, "first connection failed");
        }
        Ok(Arc::new(client::TriInvoker {
            url,
            channel,
            timeout,
            payload,
            serialization: AdaptiveCache::new(),
        }))
    }
}

rpc_core::register!(dyn Protocol, "tri", || Arc::new(Triple::default()));
