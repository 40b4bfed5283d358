//! The consumer side: one HTTP/2 connection per provider address, one stream per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::RecvStream;
use http::{HeaderValue, Request};
use rpc_core::config::keys;
use rpc_core::extension::AdaptiveCache;
use rpc_core::filter::DEFAULT_TIMEOUT_MS;
use rpc_core::proxy::StreamKind;
use rpc_core::serialize::Serialization;
use rpc_core::stream::ValueStream;
use rpc_core::{ErrorKind, Invocation, Invoker, Outcome, Response, RpcError, Url};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::codec::{self, Mode};
use crate::streams::{self, ItemCodec};
use crate::wire;
use crate::{headers, H2Settings};

/// A shared HTTP/2 connection to one provider address, made on first use and again after
/// it broke.
pub(crate) struct Channel {
    address: String,
    current: Mutex<Option<(u64, SendRequest<Bytes>)>>,
    /// The current connection's generation, PINGer, and the switch that closes it: what a
    /// call that timed out checks the connection with ([`Channel::probe`]).
    liveness: tokio::sync::Mutex<Option<(u64, h2::PingPong, Arc<tokio::sync::Notify>)>>,
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    backoff: Mutex<Backoff>,
    settings: H2Settings,
    /// The provider URL (merged with the reference) when it serves TLS: the TLS settings.
    tls: Option<Url>,
}

/// After a failed dial the channel reports itself unavailable for a while (so clusters pick
/// other providers), then available again so that the next call dials: `reconnect.interval`
/// doubled after each consecutive failure, up to `reconnect.max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    interval: Duration,
    max: Duration,
    failures: u32,
    retry_at: Option<std::time::Instant>,
}

impl Backoff {
    pub(crate) fn new(interval: Duration, max: Duration) -> Self {
        Backoff {
            interval,
            max,
            failures: 0,
            retry_at: None,
        }
    }

    fn failed(&mut self) {
        let factor = 1u32 << self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let wait = self.interval.saturating_mul(factor).min(self.max);
        self.retry_at = Some(std::time::Instant::now() + wait);
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    fn ready(&self) -> bool {
        self.retry_at.is_none_or(|t| std::time::Instant::now() >= t)
    }
}

/// How long a connection under suspicion has to answer a PING ([`Channel::probe`]).
const PROBE_WITHIN: Duration = Duration::from_secs(3);

/// An HTTP/2 failure: the connection or the stream broke (or was reset by the peer).
fn h2_error(what: &str, e: h2::Error) -> RpcError {
    RpcError::network(format!("{what}: {e}"))
}

impl Channel {
    pub(crate) fn new(
        address: String,
        settings: H2Settings,
        backoff: Backoff,
        tls: Option<Url>,
    ) -> Arc<Channel> {
        Arc::new(Channel {
            address,
            current: Mutex::new(None),
            liveness: tokio::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            backoff: Mutex::new(backoff),
            settings,
            tls,
        })
    }

    fn current(&self) -> Option<SendRequest<Bytes>> {
        self.current.lock().ok()?.as_ref().map(|(_, s)| s.clone())
    }

    /// Whether calls should be sent here now: connected, or not in the back-off after a
    /// failed dial.
    pub(crate) fn is_healthy(&self) -> bool {
        self.current().is_some() || self.backoff.lock().is_ok_and(|b| b.ready())
    }

    /// Connects now, reporting a failure (used when a reference is made).
    pub(crate) async fn connect(self: &Arc<Self>, deadline: Instant) -> Result<(), RpcError> {
        self.sender(deadline).await.map(drop)
    }

    async fn sender(self: &Arc<Self>, deadline: Instant) -> Result<SendRequest<Bytes>, RpcError> {
        if let Some(s) = self.current() {
            return Ok(s);
        }
        let _one = tokio::time::timeout_at(deadline, self.connecting.lock())
            .await
            .map_err(|_| RpcError::timeout(format!("no connection to {} in time", self.address)))?;
        if let Some(s) = self.current() {
            return Ok(s);
        }
        let r = self.dial(deadline).await;
        if let Ok(mut b) = self.backoff.lock() {
            if r.is_ok() {
                b.succeeded();
            } else {
                b.failed();
            }
        }
        r
    }

    async fn dial(self: &Arc<Self>, deadline: Instant) -> Result<SendRequest<Bytes>, RpcError> {
        let late = || RpcError::timeout(format!("connecting to {} took too long", self.address));
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(&self.address))
            .await
            .map_err(|_| late())?
            .map_err(|e| {
                RpcError::network(format!("cannot connect to {}: {e}", self.address)).with_source(e)
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.handshake(tcp, deadline).await,
            Some(url) => {
                let within = deadline.saturating_duration_since(Instant::now());
                let stream = rpc_core::transport::tls::handshake_client(
                    url,
                    tcp,
                    &self.address,
                    within,
                    &[b"h2"],
                )
                .await?;
                self.handshake(stream, deadline).await
            }
        }
    }

    /// The HTTP/2 handshake on a connected stream (plain TCP or TLS); the connection is then
    /// driven by a task of its own.
    async fn handshake<T>(
        self: &Arc<Self>,
        io: T,
        deadline: Instant,
    ) -> Result<SendRequest<Bytes>, RpcError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let late = || RpcError::timeout(format!("connecting to {} took too long", self.address));
        let s = &self.settings;
        let handshake = h2::client::Builder::new()
            .initial_window_size(s.stream_window)
            .initial_connection_window_size(s.connection_window)
            .max_header_list_size(s.max_header_list)
            .max_send_buffer_size(s.stream_window as usize)
            .handshake::<_, Bytes>(io);
        let (send, mut conn) = tokio::time::timeout_at(deadline, handshake)
            .await
            .map_err(|_| late())?
            .map_err(|e| h2_error(&format!("HTTP/2 handshake with {}", self.address), e))?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let close = Arc::new(tokio::sync::Notify::new());
        if let Some(ping) = conn.ping_pong() {
            *self.liveness.lock().await = Some((generation, ping, close.clone()));
        }
        if let Ok(mut c) = self.current.lock() {
            *c = Some((generation, send.clone()));
        }
        let me: Weak<Channel> = Arc::downgrade(self);
        let address = self.address.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = conn => {
                    if let Err(e) = ended {
                        tracing::debug!(%address, error = %e, "HTTP/2 connection ended");
                    }
                }
                () = close.notified() => {
                    tracing::debug!(%address, "HTTP/2 connection closed: no answer to a PING");
                }
            }
            if let Some(me) = me.upgrade() {
                if let Ok(mut c) = me.current.lock() {
                    if c.as_ref().is_some_and(|(g, _)| *g == generation) {
                        *c = None;
                    }
                }
            }
        });
        Ok(send)
    }

    /// After a call timed out: PINGs the connection it went out on, and closes it when no
    /// answer comes within [`PROBE_WITHIN`] (a provider that vanished without a FIN, a path
    /// that went dark), so that the calls after it dial again instead of timing out one by
    /// one until the system gives the connection up. Only after a timeout, never while idle:
    /// stock gRPC servers refuse frequent PINGs (grpc-go's default allows one in 5 minutes).
    pub(crate) fn probe(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(mut liveness) = me.liveness.try_lock() else {
                return; // another call is probing it
            };
            let Some((generation, ping, close)) = liveness.as_mut() else {
                return;
            };
            let answered = tokio::time::timeout(PROBE_WITHIN, ping.ping(h2::Ping::opaque()))
                .await
                .is_ok_and(|r| r.is_ok());
            if answered {
                return;
            }
            close.notify_one();
            let generation = *generation;
            *liveness = None;
            if let Ok(mut c) = me.current.lock() {
                if c.as_ref().is_some_and(|(g, _)| *g == generation) {
                    *c = None;
                }
            }
        });
    }

    /// Drops the connection after a failure that concerns it, so the next call dials again.
    fn forget(&self) {
        if let Ok(mut c) = self.current.lock() {
            *c = None;
        }
    }
}

/// A reference to one remote provider over Triple.
pub(crate) struct TriInvoker {
    pub(crate) url: Url,
    pub(crate) channel: Arc<Channel>,
    pub(crate) timeout: Duration,
    pub(crate) payload: usize,
    pub(crate) serialization: AdaptiveCache<dyn Serialization>,
}

/// The gRPC spelling of a Rust method name: `say_hello` → `SayHello` (what a `.proto`
/// declares and stock gRPC servers route by).
pub(crate) fn grpc_method_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl TriInvoker {
    fn deadline(&self, inv: &Invocation, start: Instant) -> Result<Instant, RpcError> {
        if let Some(d) = inv.deadline() {
            return Ok(d);
        }
        let t = match self.url.method_param(inv.method(), keys::TIMEOUT) {
            Some(_) => Duration::from_millis(self.url.method_param_as(
                inv.method(),
                keys::TIMEOUT,
                DEFAULT_TIMEOUT_MS,
            )?),
            None => self.timeout,
        };
        Ok(start + t)
    }

    async fn call(&self, inv: &Invocation) -> Result<Response, RpcError> {
        let start = Instant::now();
        let deadline = self.deadline(inv, start)?;
        let method = inv.method_descriptor();
        let streaming = method.map_or(StreamKind::Unary, |m| m.streaming());
        let protobuf = method.and_then(|m| m.protobuf());
        let ser: Arc<dyn Serialization> =
            Arc::clone(&*self.serialization.get(&self.url, inv.method())?);
        let mode = match protobuf {
            Some(c) => Mode::Protobuf(c),
            None => Mode::Wrapper,
        };
        // The request: one message, or a stream of them.
        let body = if streaming.client_streams() {
            Body::Items(ValueStream::take_from(inv.args().clone())?)
        } else {
            // Encoded right after the prefix: the frame is the message's own buffer.
            let mut framed = wire::frame_buffer(64);
            match mode {
                Mode::Protobuf(c) => c.encode_args(inv.args(), &mut framed)?,
                _ => codec::encode_request_wrapper(inv.args(), &*ser, method, &mut framed)?,
            }
            let len = framed.len() - wire::PREFIX;
            if len > self.payload {
                return Err(RpcError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "request message of {len} bytes is over the payload limit of {}",
                        self.payload
                    ),
                ));
            }
            Body::One(wire::finish_frame(framed))
        };
        let path_method = match mode {
            Mode::Protobuf(_) => grpc_method_name(inv.method()),
            _ => inv.method().to_string(),
        };
        let budget = deadline.saturating_duration_since(start);
        let req = self.request(inv, &path_method, budget)?;
        let slot = Arc::new(OnceLock::from(ser.clone()));
        let exchange = async {
            let mut send = match self.channel.sender(deadline).await?.ready().await {
                Ok(send) => send,
                // The connection is going away (the provider sent GOAWAY, or closed it) and
                // this request has not left: it goes out once on a new connection, whatever
                // the method (nothing of it reached the provider).
                Err(first) => {
                    tracing::debug!(error = %first, "connection gone before the request left; dialling again");
                    self.channel.forget();
                    self.channel
                        .sender(deadline)
                        .await?
                        .ready()
                        .await
                        .map_err(|e| {
                            self.channel.forget();
                            h2_error("the connection is closed", e)
                        })?
                }
            };
            let (response, mut stream) = send
                .send_request(req, false)
                .map_err(|e| h2_error("cannot open a stream", e))?;
            let pump = match body {
                Body::One(framed) => {
                    // A provider may answer (an error) before the request is sent: the answer
                    // tells why, so a failed send is not the call's error.
                    if let Err(e) = stream.send_data(framed, true) {
                        tracing::debug!(error = %e, "request not sent; reading the answer");
                    }
                    None
                }
                Body::Items(items) => {
                    let codec =
                        ItemCodec::for_method(method, protobuf, slot.clone(), ser.clone(), true);
                    let limit = self.payload;
                    Some(AbortOnDrop(tokio::spawn(async move {
                        match streams::write_items(&mut stream, items, &codec, limit, None).await {
                            streams::Written::Done => {
                                let _ = stream.send_data(Bytes::new(), true);
                            }
                            streams::Written::Failed(e) => {
                                tracing::debug!(error = %e, "request stream failed; call cancelled");
                                stream.send_reset(h2::Reason::CANCEL);
                            }
                            streams::Written::Reset => {}
                        }
                    })))
                }
            };
            let response = response.await.map_err(|e| h2_error("no response", e))?;
            if !streaming.server_streams() {
                let answer = read_response(response, mode, self.payload).await;
                drop(pump);
                return answer;
            }
            let (parts, body) = response.into_parts();
            check_head(&parts)?;
            if let Some(answer) = finished(&parts.headers)? {
                return Ok(answer);
            }
            // An OK status in the headers is a trailers-only answer: a stream that ended with
            // no message (how grpc-go, grpc-java and Dubbo answer an empty server stream).
            let trailers = parts.headers.get(headers::GRPC_STATUS).is_none();
            let codec = ItemCodec::for_method(method, protobuf, slot, ser.clone(), false);
            let items =
                streams::read_items(body, self.payload, codec, trailers, Some(deadline), pump);
            Ok(Response {
                outcome: Outcome::Value(rpc_core::Value::Typed(Arc::new(ValueStream::new(items)))),
                attachments: headers::attachments_of(&parts.headers),
            })
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(r) => r,
            // Dropping the stream resets it (CANCEL): the provider drops the call. The
            // connection may be what failed it: it is checked.
            Err(_) => {
                self.channel.probe();
                Err(RpcError::timeout(format!(
                    "no answer within {} ms",
                    budget.as_millis()
                )))
            }
        }
    }

    /// The request head: path, content type, deadline, service version and group,
    /// attachments.
    fn request(
        &self,
        inv: &Invocation,
        path_method: &str,
        budget: Duration,
    ) -> Result<Request<()>, RpcError> {
        let uri = format!(
            "http://{}/{}/{}",
            self.channel.address,
            inv.service().interface(),
            path_method
        );
        let mut req = Request::post(uri)
            .body(())
            .map_err(|e| RpcError::config(format!("not a valid request path: {e}")))?;
        let h = req.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        h.insert(http::header::TE, HeaderValue::from_static("trailers"));
        if let Ok(v) = HeaderValue::from_str(&wire::format_timeout(budget)) {
            h.insert(headers::GRPC_TIMEOUT, v);
        }
        let service = inv.service();
        if let Some(v) = service
            .version()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            h.insert(headers::SERVICE_VERSION, v);
        }
        if let Some(g) = service.group().and_then(|g| HeaderValue::from_str(g).ok()) {
            h.insert(headers::SERVICE_GROUP, g);
        }
        headers::put_attachments(h, inv.attachments());
        Ok(req)
    }
}

/// A request body: one framed message, or a stream of items.
enum Body {
    One(Bytes),
    Items(rpc_core::stream::ValueItems),
}

/// Stops the task writing a request stream when the call is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Refuses a response whose HTTP status is not 200 (or whose content type is not gRPC).
fn check_head(parts: &http::response::Parts) -> Result<(), RpcError> {
    if parts.status != http::StatusCode::OK {
        if let Some(e) = headers::error_of(&parts.headers) {
            return Err(e?.1);
        }
        let status = wire::status_of_http(parts.status.as_u16());
        return Err(RpcError::new(
            wire::kind_of_status(status),
            format!("the provider answered HTTP {}", parts.status),
        ));
    }
    if headers::error_of(&parts.headers).is_some() {
        return Ok(()); // trailers-only: the caller reads the status
    }
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/grpc") {
        return Err(RpcError::codec(format!(
            "the provider answered content-type '{ct}', not application/grpc"
        )));
    }
    Ok(())
}

async fn read_response(
    response: http::Response<RecvStream>,
    mode: Mode,
    limit: usize,
) -> Result<Response, RpcError> {
    let (parts, mut body) = response.into_parts();
    check_head(&parts)?;
    // Trailers-only: the status is in the headers.
    if let Some(answer) = finished(&parts.headers)? {
        return Ok(answer);
    }
    let mut buf = BytesMut::new();
    let mut message: Option<Bytes> = None;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| h2_error("the response stream broke", e))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.is_empty() && message.is_none() {
            if let Some(m) = wire::whole_message(&chunk, limit) {
                message = Some(m.map_err(|e| e.to_error())?);
                continue;
            }
        }
        buf.extend_from_slice(&chunk);
        while let Some(m) = wire::take_message(&mut buf, limit).map_err(|e| e.to_error())? {
            if message.replace(m).is_some() {
                return Err(RpcError::codec(
                    "more than one response message for a unary call",
                ));
            }
        }
    }
    if !buf.is_empty() {
        return Err(RpcError::codec("truncated response message"));
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| h2_error("the response trailers", e))?
        .unwrap_or_default();
    if let Some(answer) = finished(&trailers)? {
        return Ok(answer);
    }
    if trailers.get(headers::GRPC_STATUS).is_none() {
        return Err(RpcError::network(
            "the response ended without a grpc-status",
        ));
    }
    let message = message.ok_or_else(|| RpcError::codec("an OK response without a message"))?;
    let value = match mode {
        Mode::Protobuf(c) => c.decode_result(&message)?,
        Mode::Wrapper => codec::decode_response_wrapper(&message)?,
        Mode::GrpcJson | Mode::Json => rpc_core::Value::Encoded(rpc_core::Payload {
            serialization: rpc_core::serialize::ids::JSON,
            bytes: message,
        }),
    };
    let mut attachments = headers::attachments_of(&parts.headers);
    for (k, v) in headers::attachments_of(&trailers).iter() {
        attachments.insert(k, v);
    }
    Ok(Response {
        outcome: Outcome::Value(value),
        attachments,
    })
}

/// A non-OK status in `h` as the call's end: a business error (`Ok`) or a failure.
fn finished(h: &http::HeaderMap) -> Result<Option<Response>, RpcError> {
    let Some(e) = headers::error_of(h) else {
        return Ok(None);
    };
    let (_, e) = e?;
    if let Some(biz) = headers::biz_error(h) {
        let value = codec::decode_response_wrapper(&biz?)?;
        return Ok(Some(Response {
            outcome: Outcome::BizError(value),
            attachments: headers::attachments_of(h),
        }));
    }
    Err(e)
}

#[async_trait::async_trait]
impl Invoker for TriInvoker {
    fn url(&self) -> &Url {
        &self.url
    }

    fn is_available(&self) -> bool {
        self.channel.is_healthy()
    }

    /// The call waits only until the deadline, and `grpc-timeout` carries the budget.
    fn enforces_deadline(&self) -> bool {
        true
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Response, RpcError> {
        let oneway = invocation.is_oneway();
        let r = self.call(&invocation).await.map_err(|e| {
            invocation
                .annotate(e)
                .with_provider(self.channel.address.clone())
        })?;
        // Triple has no one-way calls: the answer was awaited, and is dropped here.
        Ok(if oneway { Response::empty() } else { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_method_names_are_upper_camel_case() {
        assert_eq!(grpc_method_name("greet"), "Greet");
        assert_eq!(grpc_method_name("say_hello"), "SayHello");
        assert_eq!(grpc_method_name("Greet"), "Greet");
    }
}
