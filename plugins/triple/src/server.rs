//! The provider side: an HTTP/2 listener dispatching `/{interface}/{method}` streams to the
//! exported invokers.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response as HttpResponse, StatusCode};
use rpc_core::config::keys;
use rpc_core::context::{APPLICATION_ATTACHMENT, REMOTE_ADDRESS_ATTACHMENT};
use rpc_core::invocation::ByteString;
use rpc_core::proxy::{ServiceDescriptor, StreamKind};
use rpc_core::serialize::Serialization;
use rpc_core::stream::ValueStream;
use rpc_core::transport::tls::ServerTls;
use rpc_core::{ErrorKind, Invocation, Invoker, Outcome, RpcError, ServiceKey, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::codec::{self, Mode};
use crate::streams::{self, ItemCodec};
use crate::wire::{self, code};
use crate::{headers, H2Settings};

/// The longest a unary request may take to arrive when the caller set no deadline.
const REQUEST_READ_LIMIT: Duration = Duration::from_secs(30);

use rpc_core::protocol::listeners::{ExportedService as Exported, ServiceTable as Table};

/// A bound listener and what it serves.
pub(crate) struct Listener {
    pub(crate) services: Table,
    pub(crate) port: u16,
    /// Whether it serves TLS (every service on one port is served the same way).
    pub(crate) tls: bool,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct State {
    services: Table,
    payload: usize,
    settings: H2Settings,
    tls: Option<ServerTls>,
}

impl Listener {
    /// Binds `host:port` (0: a free port) and starts accepting connections.
    pub(crate) async fn bind(
        host: &str,
        port: u16,
        payload: usize,
        settings: H2Settings,
        tls: Option<ServerTls>,
    ) -> Result<Listener, RpcError> {
        let tcp = TcpListener::bind((host, port)).await.map_err(|e| {
            RpcError::network(format!("cannot listen on {host}:{port}: {e}")).with_source(e)
        })?;
        let port = tcp
            .local_addr()
            .map_err(|e| RpcError::network(format!("no local address: {e}")))?
            .port();
        let services: Table = Default::default();
        let (stop, stopped) = watch::channel(false);
        let tls_on = tls.is_some();
        let state = Arc::new(State {
            services: services.clone(),
            payload,
            settings,
            tls,
        });
        let task = tokio::spawn(accept_loop(tcp, state, stopped));
        Ok(Listener {
            services,
            port,
            tls: tls_on,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
        })
    }
}

#[async_trait::async_trait]
impl rpc_core::protocol::listeners::SharedListener for Listener {
    fn services(&self) -> &Table {
        &self.services
    }

    fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting; open connections are sent GOAWAY and finish their streams.
    async fn close(&self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn accept_loop(tcp: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((io, peer)) => {
                    let _ = io.set_nodelay(true);
                    tokio::spawn(secured(io, peer.to_string(), state.clone(), stopped.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// How long a client has for its TLS handshake and its HTTP/2 preface.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// Serves one accepted connection, after its TLS handshake when the listener serves TLS (a
/// failed or stalled handshake closes that connection only).
async fn secured(io: TcpStream, peer: String, state: Arc<State>, stopped: watch::Receiver<bool>) {
    let Some(tls) = &state.tls else {
        return connection(io, peer, state, stopped).await;
    };
    let acceptor = tls.acceptor();
    match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(io)).await {
        Ok(Ok(stream)) => connection(stream, peer, state, stopped).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed; connection closed"),
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not completed within 10 s; connection closed")
        }
    }
}

async fn connection<T>(io: T, peer: String, state: Arc<State>, mut stopped: watch::Receiver<bool>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let s = &state.settings;
    let handshake = h2::server::Builder::new()
        .initial_window_size(s.stream_window)
        .initial_connection_window_size(s.connection_window)
        .max_concurrent_streams(s.max_streams)
        .max_header_list_size(s.max_header_list)
        .max_send_buffer_size(s.stream_window as usize)
        .handshake::<_, Bytes>(io);
    let mut conn = match tokio::time::timeout(HANDSHAKE_WITHIN, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no HTTP/2 preface within 10 s");
            return;
        }
    };
    let peer = ByteString::from(peer);
    let mut closing = false;
    let alive = keepalive(conn.ping_pong(), s.heartbeat);
    tokio::pin!(alive);
    loop {
        let next = tokio::select! {
            next = conn.accept() => next,
            _ = stopped.changed(), if !closing => {
                closing = true;
                conn.graceful_shutdown();
                continue;
            }
            () = &mut alive => {
                tracing::debug!(%peer, "no answer to a PING within two heartbeats; connection closed");
                return;
            }
        };
        match next {
            Some(Ok((req, respond))) => {
                let state = state.clone();
                let peer = peer.clone();
                tokio::spawn(async move { stream(req, respond, &state, peer).await });
            }
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "HTTP/2 connection error");
                return;
            }
            None => return,
        }
    }
}

/// PINGs the peer every `every`; returns when one is not answered within two more (the
/// connection is dead), never when the connection has no pinger.
pub(crate) async fn keepalive(ping: Option<h2::PingPong>, every: Duration) {
    let Some(mut ping) = ping else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every * 2, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// A failed call as the provider answers it: the gRPC status and the error.
struct Failure {
    status: u32,
    http: StatusCode,
    error: RpcError,
    /// A business error's value in a response wrapper (the `rpc-biz-error-bin` trailer).
    biz: Option<Vec<u8>>,
}

impl From<RpcError> for Failure {
    fn from(error: RpcError) -> Self {
        Failure {
            status: wire::status_of(error.kind()),
            http: StatusCode::OK,
            error,
            biz: None,
        }
    }
}

fn fail(status: u32, kind: ErrorKind, message: impl Into<String>) -> Failure {
    Failure {
        status,
        http: StatusCode::OK,
        error: RpcError::new(kind, message),
        biz: None,
    }
}

/// What a request's content type asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    Grpc,
    GrpcJson,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Result<(Body, HeaderValue), Failure> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ct.split(';').next().unwrap_or("").trim();
    let kind = match base {
        "application/grpc" | "application/grpc+proto" => Body::Grpc,
        "application/grpc+json" => Body::GrpcJson,
        "application/json" => Body::Json,
        _ => {
            return Err(Failure {
                status: code::INVALID_ARGUMENT,
                http: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                error: RpcError::codec(format!(
                    "unsupported content-type '{ct}': expected application/grpc, \
                     application/grpc+proto, application/grpc+json or application/json"
                )),
                biz: None,
            })
        }
    };
    let answer = HeaderValue::from_static(match kind {
        Body::Grpc if base == "application/grpc" => "application/grpc",
        Body::Grpc => "application/grpc+proto",
        Body::GrpcJson => "application/grpc+json",
        Body::Json => "application/json",
    });
    Ok((kind, answer))
}

async fn stream(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    state: &State,
    peer: ByteString,
) {
    let (parts, body) = req.into_parts();
    let content_type = match body_kind(&parts.headers) {
        Ok(ct) => ct,
        Err(f) => {
            send_failure(
                &mut respond,
                &f,
                HeaderValue::from_static("application/grpc"),
                false,
            );
            return;
        }
    };
    let json = content_type.0 == Body::Json;
    let answer_type = content_type.1.clone();
    let mut body = Some(body);
    let served = serve(parts, &mut body, content_type.0, &mut respond, state, peer).await;
    if let (Err(f), Some(rest)) = (&served, body.as_mut()) {
        if f.error.kind() != ErrorKind::LimitExceeded {
            drain(rest).await;
        }
    }
    match served {
        Ok(Some(Reply::Stream {
            items,
            codec,
            attachments,
            deadline,
        })) => {
            let mut head = HttpResponse::new(());
            *head.headers_mut() = attachments;
            head.headers_mut()
                .insert(http::header::CONTENT_TYPE, answer_type);
            head.headers_mut().insert(
                headers::GRPC_ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            let Ok(mut send) = respond.send_response(head, false) else {
                return;
            };
            let mut trailers = HeaderMap::new();
            match streams::write_items(&mut send, items, &codec, state.payload, deadline).await {
                streams::Written::Done => {
                    trailers.insert(headers::GRPC_STATUS, HeaderValue::from_static("0"));
                }
                streams::Written::Failed(e) => {
                    tracing::debug!(error = %e, "response stream failed");
                    headers::put_status(&mut trailers, wire::status_of(e.kind()), &e);
                }
                streams::Written::Reset => {
                    tracing::debug!("the caller reset the response stream; items dropped");
                    return;
                }
            }
            let _ = send.send_trailers(trailers);
        }
        Ok(Some(Reply::Unary(message, trailers))) => {
            let mut head = HttpResponse::new(());
            head.headers_mut()
                .insert(http::header::CONTENT_TYPE, answer_type);
            if !json {
                head.headers_mut().insert(
                    headers::GRPC_ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
            }
            let Ok(mut send) = respond.send_response(head, false) else {
                return;
            };
            // `message` is already framed (gRPC) or the bare body (JSON).
            if send.send_data(message, json).is_err() || json {
                return;
            }
            let mut trailers = trailers;
            headers::bound_trailers(&mut trailers);
            let _ = send.send_trailers(trailers);
        }
        Ok(None) => {} // the caller reset the stream: nobody to answer
        Err(f) => send_failure(&mut respond, &f, answer_type, json),
    }
}

/// Answers a failure: a trailers-only response (gRPC), or an HTTP error with a JSON body.
fn send_failure(respond: &mut SendResponse<Bytes>, f: &Failure, ct: HeaderValue, json: bool) {
    tracing::debug!(status = f.status, error = %f.error, "answering a failed call");
    let mut head = HttpResponse::new(());
    let http = if json && f.http == StatusCode::OK {
        http_status_of(f.status)
    } else {
        f.http
    };
    *head.status_mut() = http;
    let h = head.headers_mut();
    h.insert(http::header::CONTENT_TYPE, ct);
    headers::put_status(h, f.status, &f.error);
    if !json {
        // Which encodings a caller may use (required with an unsupported grpc-encoding's
        // UNIMPLEMENTED, harmless elsewhere).
        h.insert(
            headers::GRPC_ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    if let Some(b) = &f.biz {
        headers::put_biz_error(h, b);
    }
    headers::bound_trailers(h);
    if !json {
        let _ = respond.send_response(head, true);
        return;
    }
    let body = serde_json::json!({
        "status": f.status,
        "kind": f.error.kind().as_str(),
        "message": f.error.message(),
    });
    if let Ok(mut send) = respond.send_response(head, false) {
        let _ = send.send_data(Bytes::from(body.to_string()), true);
    }
}

/// The HTTP status a JSON caller gets for a gRPC status.
fn http_status_of(status: u32) -> StatusCode {
    match status {
        code::INVALID_ARGUMENT => StatusCode::BAD_REQUEST,
        code::UNIMPLEMENTED | code::NOT_FOUND => StatusCode::NOT_FOUND,
        code::DEADLINE_EXCEEDED => StatusCode::GATEWAY_TIMEOUT,
        code::PERMISSION_DENIED => StatusCode::FORBIDDEN,
        code::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        code::RESOURCE_EXHAUSTED => StatusCode::TOO_MANY_REQUESTS,
        code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The interface and method of a `/{interface}/{method}` path.
fn split_path(path: &str) -> Result<(&str, &str), Failure> {
    let bad = || {
        fail(
            code::UNIMPLEMENTED,
            ErrorKind::ServiceNotFound,
            format!("malformed path '{path}': expected /{{interface}}/{{method}}"),
        )
    };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    let (interface, method) = rest.split_once('/').ok_or_else(bad)?;
    if interface.is_empty() || method.is_empty() || method.contains('/') {
        return Err(bad());
    }
    Ok((interface, method))
}

/// The exported service a call is for: by version and group when the caller sent them;
/// otherwise the one service of that interface on this port (a plain gRPC client sends
/// neither).
fn find_service(
    table: &Table,
    interface: &str,
    version: Option<&str>,
    group: Option<&str>,
) -> Result<(ServiceKey, Arc<dyn Invoker>), Failure> {
    let found = table.find(
        interface.as_bytes(),
        group.map(str::as_bytes),
        version.map(str::as_bytes),
        |e| (e.key.clone(), e.invoker.clone()),
    );
    if let Some(found) = found {
        return Ok(found);
    }
    let key = ServiceKey::new(interface, group, version);
    let all = table.of_interface(interface);
    let same: Vec<&Exported> = all
        .iter()
        .map(|e| &**e)
        .filter(|e| version.is_none_or(|v| e.key.version() == Some(v)))
        .filter(|e| group.is_none_or(|g| e.key.group() == Some(g)))
        .collect();
    match same.as_slice() {
        [one] if version.is_none() || group.is_none() => Ok((one.key.clone(), one.invoker.clone())),
        [] => Err(fail(
            code::UNIMPLEMENTED,
            ErrorKind::ServiceNotFound,
            format!("service {key} is not exported on this port"),
        )),
        many => {
            let keys: Vec<String> = many.iter().map(|e| e.key.to_string()).collect();
            Err(fail(
                code::UNIMPLEMENTED,
                ErrorKind::ServiceNotFound,
                format!(
                    "service {key} is not exported on this port; {} are: choose one with the \
                     tri-service-version and tri-service-group headers",
                    keys.join(", ")
                ),
            ))
        }
    }
}

/// The method a gRPC path names: exactly, else the one whose name matches ignoring case and
/// underscores (the `.proto` spelling `SayHello` of a Rust `say_hello`).
fn find_method(
    descriptor: Option<&'static ServiceDescriptor>,
    invoker: &dyn Invoker,
    name: &str,
) -> String {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let wanted = fold(name);
    let found = match descriptor {
        Some(d) => {
            if d.method(name).is_some() {
                return name.to_string();
            }
            d.methods()
                .iter()
                .find(|m| fold(m.name()) == wanted)
                .map(|m| m.name().to_string())
        }
        None => invoker.url().param(keys::METHODS).and_then(|ms| {
            ms.split(',')
                .find(|m| *m == name)
                .or_else(|| ms.split(',').find(|m| fold(m) == wanted))
                .map(str::to_string)
        }),
    };
    found.unwrap_or_else(|| name.to_string())
}

fn frame_failure(e: wire::FrameError) -> Failure {
    Failure {
        status: match e {
            wire::FrameError::TooLarge { .. } => code::RESOURCE_EXHAUSTED,
            // Identity is the only encoding accepted, so a compressed message is one without
            // an agreed encoding: a protocol error (the gRPC compression spec).
            wire::FrameError::Compressed => code::INTERNAL,
            wire::FrameError::BadFlag(_) => code::INTERNAL,
        },
        http: StatusCode::OK,
        error: e.to_error(),
        biz: None,
    }
}

/// Reads what is left of a request answered early (an error before its body was read), a
/// little and briefly: some HTTP/2 clients (curl) report the reset that follows a response
/// sent before their request ended as a failure of the call, rather than the response.
async fn drain(body: &mut RecvStream) {
    if body.is_end_stream() {
        return;
    }
    let mut left: usize = 64 << 10;
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                return;
            }
        }
    })
    .await;
}

/// Reads the one message of a unary request (or a JSON body), bounded by `limit`.
/// `Ok(None)`: the caller reset the stream.
async fn read_message(
    body: &mut RecvStream,
    limit: usize,
    framed: bool,
) -> Result<Option<Bytes>, Failure> {
    let mut buf = BytesMut::new();
    let mut message: Option<Bytes> = None;
    while let Some(chunk) = body.data().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "request stream ended early");
                return Ok(None);
            }
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        if !framed {
            if buf.len() + chunk.len() > limit {
                return Err(fail(
                    code::RESOURCE_EXHAUSTED,
                    ErrorKind::LimitExceeded,
                    format!("request body over the limit of {limit} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk);
            continue;
        }
        if buf.is_empty() && message.is_none() {
            if let Some(m) = wire::whole_message(&chunk, limit) {
                message = Some(m.map_err(frame_failure)?);
                continue;
            }
        }
        buf.extend_from_slice(&chunk);
        while let Some(m) = wire::take_message(&mut buf, limit).map_err(frame_failure)? {
            if message.is_some() {
                return Err(fail(
                    code::INTERNAL,
                    ErrorKind::Codec,
                    "more than one request message for a unary method",
                ));
            }
            message = Some(m);
        }
    }
    if !framed {
        return Ok(Some(buf.freeze()));
    }
    if !buf.is_empty() {
        return Err(fail(
            code::INTERNAL,
            ErrorKind::Codec,
            format!(
                "truncated request message: the stream ended {} byte(s) into a message",
                buf.len()
            ),
        ));
    }
    message.map(Some).ok_or_else(|| {
        fail(
            code::INTERNAL,
            ErrorKind::Codec,
            "the request stream ended without a message",
        )
    })
}

/// What the provider answers a call with (`None` in [`serve`]'s result: the caller reset the
/// stream, nobody to answer).
enum Reply {
    /// One message, then trailers.
    Unary(Bytes, HeaderMap),
    /// A stream of messages, then trailers.
    Stream {
        items: rpc_core::stream::ValueItems,
        codec: ItemCodec,
        attachments: HeaderMap,
        deadline: Option<tokio::time::Instant>,
    },
}

type Answer = Option<Reply>;

async fn serve(
    parts: http::request::Parts,
    body: &mut Option<RecvStream>,
    kind: Body,
    respond: &mut SendResponse<Bytes>,
    state: &State,
    peer: ByteString,
) -> Result<Answer, Failure> {
    if parts.method != http::Method::POST {
        return Err(Failure {
            status: code::UNIMPLEMENTED,
            http: StatusCode::METHOD_NOT_ALLOWED,
            error: RpcError::new(
                ErrorKind::MethodNotFound,
                format!("method {} not allowed: calls are POST", parts.method),
            ),
            biz: None,
        });
    }
    let (interface, method_name) = split_path(parts.uri.path())?;
    let h = &parts.headers;
    let header = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let (service, invoker) = find_service(
        &state.services,
        interface,
        header(headers::SERVICE_VERSION),
        header(headers::SERVICE_GROUP),
    )?;
    let descriptor = invoker.descriptor();
    let method = find_method(descriptor, &*invoker, method_name);
    let method_desc = descriptor.and_then(|d| d.method(&method));
    if let (Some(d), None) = (descriptor, method_desc) {
        return Err(d.method_not_found(method_name).into());
    }
    // The caller's budget counts from when its request arrived, not from when its body was
    // read.
    let arrived = tokio::time::Instant::now();
    let timeout = match h.get(headers::GRPC_TIMEOUT) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| RpcError::codec("grpc-timeout is not ASCII"))
                .and_then(wire::parse_timeout)
                .map_err(|e| Failure {
                    status: code::INVALID_ARGUMENT,
                    http: StatusCode::OK,
                    error: e,
                    biz: None,
                })?,
        ),
        None => None,
    };
    if let Some(enc) = header(headers::GRPC_ENCODING) {
        if enc != "identity" {
            return Err(fail(
                code::UNIMPLEMENTED,
                ErrorKind::Codec,
                format!("grpc-encoding '{enc}' is not supported (identity only)"),
            ));
        }
    }
    let streaming = method_desc.map_or(StreamKind::Unary, |m| m.streaming());
    if streaming.is_streaming() && kind != Body::Grpc {
        return Err(fail(
            code::UNIMPLEMENTED,
            ErrorKind::MethodNotFound,
            format!("method {method} streams: call it with content-type application/grpc"),
        ));
    }
    let protobuf = method_desc.and_then(|m| m.protobuf());
    let mode = match (kind, protobuf) {
        (Body::Json, _) => Mode::Json,
        (Body::GrpcJson, _) => Mode::GrpcJson,
        (Body::Grpc, Some(c)) => Mode::Protobuf(c),
        (Body::Grpc, None) => Mode::Wrapper,
    };
    // Wrapper mode answers in the request's serialization, known from its first message.
    let answer_slot: Arc<OnceLock<Arc<dyn Serialization>>> = Arc::new(OnceLock::new());
    let fallback = rpc_core::serialize::default_serialization()?;
    let (args, answer_in): (Value, Option<Arc<dyn Serialization>>) = if streaming.client_streams() {
        let codec = ItemCodec::for_method(
            method_desc,
            protobuf,
            answer_slot.clone(),
            fallback.clone(),
            true,
        );
        let body = body
            .take()
            .ok_or_else(|| RpcError::internal("request body taken twice"))?;
        let items = streams::read_items(body, state.payload, codec, false, None, ());
        (Value::Typed(Arc::new(ValueStream::new(items))), None)
    } else {
        // The request must arrive within the caller's deadline, and without one within
        // REQUEST_READ_LIMIT: a stream that never ends its request holds no task forever.
        let read_by = arrived
            + timeout
                .unwrap_or(REQUEST_READ_LIMIT)
                .min(REQUEST_READ_LIMIT);
        let read = tokio::time::timeout_at(
            read_by,
            read_message(
                body.as_mut()
                    .ok_or_else(|| RpcError::internal("request body taken twice"))?,
                state.payload,
                kind != Body::Json,
            ),
        );
        let Some(message) = read.await.map_err(|_| {
            fail(
                code::DEADLINE_EXCEEDED,
                ErrorKind::Timeout,
                "the request message did not arrive in time",
            )
        })??
        else {
            return Ok(None);
        };
        match mode {
            Mode::Protobuf(c) => (c.decode_args(&message)?, None),
            Mode::Wrapper => {
                let (args, ser) = codec::decode_request_wrapper(&message)?;
                (args, Some(ser))
            }
            Mode::GrpcJson | Mode::Json => (
                codec::json_args(message, method_desc.map(|m| m.args().len()))?,
                None,
            ),
        }
    };
    if let Some(ser) = &answer_in {
        let _ = answer_slot.set(ser.clone());
    }
    let mut inv = Invocation::new(service, method.clone(), args);
    if let Some(m) = method_desc {
        inv.set_method_descriptor(m);
    }
    *inv.attachments_mut() = headers::attachments_of(h);
    if let Some(app) = header(headers::CONSUMER_APPNAME) {
        inv.attachments_mut().insert(APPLICATION_ATTACHMENT, app);
    }
    inv.attachments_mut()
        .insert(ByteString::from_static(REMOTE_ADDRESS_ATTACHMENT), peer);
    if let Some(t) = timeout {
        inv.set_deadline(arrived + t);
    }
    let deadline = inv.deadline();
    let call = rpc_core::invocation::serve(
        invoker.invoke(inv),
        deadline,
        "the provider did not finish before the caller's deadline (grpc-timeout)",
    );
    // The caller resetting the stream (a cancelled call, a dropped stream) drops the call.
    let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
    let response = tokio::select! {
        r = call => r?,
        reason = reset => {
            tracing::debug!(?reason, "the caller reset the stream; call dropped");
            return Ok(None);
        }
    };
    let returns = method_desc.map_or("", |m| m.returns());
    let mut trailers = HeaderMap::new();
    headers::put_attachments(&mut trailers, &response.attachments);
    let value = match response.outcome {
        Outcome::Value(v) => v,
        Outcome::BizError(e) => {
            return Err(biz_failure(&e, answer_slot.get().map(|s| &**s)));
        }
    };
    if streaming.server_streams() {
        let items = ValueStream::take_from(value)?;
        let codec = ItemCodec::for_method(method_desc, protobuf, answer_slot, fallback, false);
        return Ok(Some(Reply::Stream {
            items,
            codec,
            attachments: trailers,
            deadline,
        }));
    }
    let answer_in = answer_slot.get().cloned();
    // Encoded right after the prefix (gRPC) so that the frame is the message's own buffer.
    let framed = !matches!(mode, Mode::Json);
    let mut encoded = if framed {
        wire::frame_buffer(64)
    } else {
        Vec::new()
    };
    match mode {
        Mode::Protobuf(c) => c.encode_result(&value, &mut encoded)?,
        Mode::Wrapper => {
            let ser =
                answer_in.ok_or_else(|| RpcError::internal("wrapper without serialization"))?;
            codec::append_response_wrapper(&value, &*ser, returns, &mut encoded)?
        }
        Mode::GrpcJson | Mode::Json => {
            encoded.extend_from_slice(&value.encode(codec::json()?)?.bytes)
        }
    };
    let len = encoded.len() - if framed { wire::PREFIX } else { 0 };
    if len > state.payload {
        return Err(fail(
            code::RESOURCE_EXHAUSTED,
            ErrorKind::LimitExceeded,
            format!(
                "result of {len} bytes is over the payload limit of {}",
                state.payload
            ),
        ));
    }
    trailers.insert(headers::GRPC_STATUS, HeaderValue::from_static("0"));
    let body = if framed {
        wire::finish_frame(encoded)
    } else {
        Bytes::from(encoded)
    };
    Ok(Some(Reply::Unary(body, trailers)))
}

/// A business error: status UNKNOWN with the error as JSON text in `grpc-message` (what a
/// stock gRPC client shows), and the value itself in a response wrapper in the
/// `rpc-biz-error-bin` trailer (what our consumer decodes into the method's `E`).
fn biz_failure(e: &Value, ser: Option<&dyn Serialization>) -> Failure {
    let text = codec::json()
        .and_then(|j| e.encode(j))
        .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
        .unwrap_or_else(|_| "(not representable as JSON)".into());
    let error = RpcError::new(ErrorKind::Biz, format!("business error: {text}"));
    let wrapper = match ser {
        Some(s) => codec::encode_response_wrapper(e, s, ""),
        None => codec::json().and_then(|j| codec::encode_response_wrapper(e, j, "")),
    };
    Failure {
        status: code::UNKNOWN,
        http: StatusCode::OK,
        error,
        biz: wrapper
            .inspect_err(|err| tracing::debug!(error = %err, "business error not encodable"))
            .ok(),
    }
}
