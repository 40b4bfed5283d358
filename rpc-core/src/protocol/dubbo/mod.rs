//! `dubbo`: the native remote protocol, framed like dubbo:// (see [`crate::exchange`]).
//!
//! # Use
//!
//! ```
//! # use std::sync::Arc;
//! # use rpc_core::config::keys;
//! # use rpc_core::protocol::Protocol;
//! # use rpc_core::{extension, Invocation, Invoker, Response, Result, ServiceKey, Url, Value};
//! # struct Echo(Url);
//! # #[async_trait::async_trait]
//! # impl Invoker for Echo {
//! #     fn url(&self) -> &Url { &self.0 }
//! #     async fn invoke(&self, mut inv: Invocation) -> Result<Response> {
//! #         let (s,): (String,) = inv.take_args().decode()?;
//! #         Ok(Response::value(Value::typed(s)))
//! #     }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let dubbo = extension::get::<dyn Protocol>("dubbo")?;
//! // Provider: port 0 binds a free port; the exporter's URL carries the real one.
//! let url = Url::parse("dubbo://127.0.0.1:0/org.example.Echo?version=1.0").expect("url");
//! let exporter = dubbo.export(url.clone(), Arc::new(Echo(url))).await?;
//! // Consumer: one shared connection per provider address.
//! let echo = dubbo.refer(exporter.url().with_param(keys::TIMEOUT, 3000)).await?;
//! let call = Invocation::new(
//!     ServiceKey::new("org.example.Echo", None, Some("1.0")),
//!     "echo",
//!     Value::typed(("hi".to_string(),)),
//! );
//! let answer: String = echo.invoke(call).await?.into_value()?;
//! assert_eq!(answer, "hi");
//! exporter.unexport().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Body layout
//!
//! All integers big-endian; `str` is a u16 length then UTF-8; `section` is a u32 length then
//! bytes. The arguments and the result value are sections in the serialization named by the
//! header's 5-bit id, so the envelope is read without knowing any user type and the skeleton
//! receives `Value::Encoded(Payload { serialization, bytes })` (the bytes are a slice of the
//! frame, not a copy).
//!
//! ```text
//! request       u8 body version (1) | str path | str version | str group | str method
//!               | u32 timeout ms (remaining budget, 0 = none) | attachments | section args
//! response OK   u8 kind (0 business error, 1 value, 2 empty) | attachments | section value
//! response !OK  str error kind name (ErrorKind::as_str) | section message (UTF-8)
//! attachments   u16 count (≤ 256) | (str key (≤ 1024 B) | str value)*
//! ```
//!
//! Names are bounded to 1024 bytes; a body that does not end exactly after its last field is
//! refused.
//!
//! # Body layout in hessian2 (serialization id 2): stock Dubbo 2.x
//!
//! Consecutive top-level Hessian values sharing one set of class definitions:
//!
//! ```text
//! request       dubbo version ("2.0.2") | path | version | method | parameter descriptor
//!               (`Ljava/lang/String;I`) | one value per argument | attachments map
//!               (path, interface, version, group, timeout, ...; `N` values are absent)
//! response OK   int flag (0 exception, 1 value, 2 null; +3: an attachments map follows)
//!               | value or exception object | [attachments map]
//! response !OK  the message as a string
//! heartbeat     `N` (request and reply)
//! ```
//!
//! The with-attachments flags go only to callers of version 2.0.2..2.0.99, and (provider key
//! `response.attachments`, default `auto`) only when there are attachments; `always` sends
//! them as Java does, `never` not at all. A business error is an exception object of class
//! `hessian2.exception` (default `java.lang.RuntimeException`); see the README section
//! "Calling Java Dubbo services". `$invoke` / `$invokeAsync` (Dubbo's `GenericService`) are
//! served through the skeleton's JSON path.
//!
//! # Status codes and error kinds
//!
//! | kind                                  | status sent             |
//! |---------------------------------------|-------------------------|
//! | Timeout                               | 31 SERVER_TIMEOUT       |
//! | Codec                                 | 40 BAD_REQUEST          |
//! | ServiceNotFound                       | 60 SERVICE_NOT_FOUND    |
//! | MethodNotFound, Unauthorized, Biz     | 70 SERVICE_ERROR        |
//! | LimitExceeded                         | 100 THREADPOOL_EXHAUSTED|
//! | other                                 | 80 SERVER_ERROR         |
//!
//! The kind's name travels in the error body, so the consumer gets back the very kind; a
//! body without a known name falls back to the status (50 BAD_RESPONSE → Codec, 90 → Network).
//!
//! # Keys
//!
//! Consumer: `serialization` (default msgpack, method level first), `timeout` (ms, method level
//! first, default 1000, unless the invocation has a deadline), `connections`, `heartbeat`,
//! `payload`, `send.queue`, `reconnect.interval`, `reconnect.max`, `transporter`, and for a
//! provider URL with `tls=true` the TLS keys `tls.ca`, `tls.cert`, `tls.key`,
//! `tls.server.name` ([`crate::transport::tls`]).
//! Provider: `payload`, `idle.timeout`, `heartbeat`, `send.queue`, `threads` (requests
//! executing at once, default 10000, status 100 beyond), `accepts` (most open connections,
//! default unlimited), `transporter`, `tls` with `tls.cert`, `tls.key`, `tls.ca`,
//! `tls.reload`; port 0 binds
//! a free port, reported in the exporter's URL. Services exported on the same host and port
//! share one listener and are dispatched by service key `group/interface:version`.
//! The provider answers in the serialization of the request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::exchange::{
    status, Client, Frame, Handled, Handler, Placement, Server, FLAG_REQUEST, FLAG_TWO_WAY,
    SERIALIZATION_MASK,
};
use crate::extension::AdaptiveCache;
use crate::filter::DEFAULT_TIMEOUT_MS;
use crate::invocation::{
    Attachments, ByteString, Invocation, Invoker, Outcome, Payload, Response, Value,
};
use crate::protocol::listeners::{Listeners, ServiceTable, SharedListener};
use crate::protocol::{Exporter, Protocol};
use crate::proxy::{MethodDescriptor, ServiceDescriptor};
use crate::serialize::{self, ids, Serialization};
use crate::url::Url;

mod body;
mod hessian;

/// The most bytes of an error message a response carries, sent or received: a message is
/// for people, and a peer's is as untrusted as the rest of its answer.
const MAX_ERROR_MESSAGE: usize = 16 * 1024;

/// `message` cut to [`MAX_ERROR_MESSAGE`] bytes, at a character's end.
fn cut_message(message: &str) -> &str {
    let mut at = message.len().min(MAX_ERROR_MESSAGE);
    while !message.is_char_boundary(at) {
        at -= 1;
    }
    &message[..at]
}

use body::{RESPONSE_BIZ_ERROR, RESPONSE_EMPTY, RESPONSE_VALUE};
pub use hessian::split_descriptor;
use hessian::{AttachmentsMode, ReplyStyle};

/// The port used when a provider URL gives none (Dubbo's).
pub const DEFAULT_PORT: u16 = 20880;

/// The status a provider sends for an error of `kind`.
pub fn status_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Timeout => status::SERVER_TIMEOUT,
        ErrorKind::Codec => status::BAD_REQUEST,
        ErrorKind::ServiceNotFound => status::SERVICE_NOT_FOUND,
        ErrorKind::MethodNotFound | ErrorKind::Unauthorized | ErrorKind::Biz => {
            status::SERVICE_ERROR
        }
        ErrorKind::LimitExceeded => status::SERVER_THREADPOOL_EXHAUSTED_ERROR,
        _ => status::SERVER_ERROR,
    }
}

/// The kind a consumer reports for a non-OK `status` whose body names no known kind.
pub fn kind_of_status(code: u8) -> ErrorKind {
    match code {
        status::CLIENT_TIMEOUT | status::SERVER_TIMEOUT => ErrorKind::Timeout,
        status::BAD_REQUEST | status::BAD_RESPONSE => ErrorKind::Codec,
        status::SERVICE_NOT_FOUND => ErrorKind::ServiceNotFound,
        status::SERVICE_ERROR => ErrorKind::Biz,
        status::CLIENT_ERROR => ErrorKind::Network,
        status::SERVER_THREADPOOL_EXHAUSTED_ERROR => ErrorKind::LimitExceeded,
        _ => ErrorKind::Internal,
    }
}

struct Listener {
    server: Server,
    services: ServiceTable,
}

#[async_trait::async_trait]
impl SharedListener for Listener {
    fn services(&self) -> &ServiceTable {
        &self.services
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    async fn close(&self) {
        self.server.close().await;
    }
}

/// The `dubbo` protocol: one listener per bound address, one shared client per provider
/// address. See the [module docs](self).
#[derive(Default)]
pub struct Dubbo {
    listeners: Listeners<Listener>,
}

#[async_trait::async_trait]
impl Protocol for Dubbo {
    fn default_port(&self) -> u16 {
        DEFAULT_PORT
    }

    async fn export(&self, url: Url, invoker: Arc<dyn Invoker>) -> Result<Box<dyn Exporter>> {
        let payload = url.param_as(keys::PAYLOAD, crate::exchange::DEFAULT_PAYLOAD)?;
        let bind_url = url.clone();
        self.listeners
            .export(
                &url,
                DEFAULT_PORT,
                invoker,
                |_, _| Ok(()),
                |host, port| async move {
                    let services: ServiceTable = Default::default();
                    let handler = Arc::new(Dispatcher {
                        services: services.clone(),
                        payload,
                    });
                    let server =
                        Server::bind(&bind_url.with_host(&host).with_port(port), handler).await?;
                    Ok(Listener { server, services })
                },
            )
            .await
    }

    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>> {
        let client = Client::shared(&url).await?;
        let timeout = Duration::from_millis(url.param_as(keys::TIMEOUT, DEFAULT_TIMEOUT_MS)?);
        Ok(Arc::new(DubboInvoker {
            url,
            client,
            timeout,
            serialization: AdaptiveCache::new(),
        }))
    }
}

/// The provider side: decodes envelopes and calls the exported invokers.
struct Dispatcher {
    services: ServiceTable,
    payload: usize,
}

fn error_frame(ser_id: u8, id: u64, e: &RpcError) -> Frame {
    let ser_id = ser_id & SERIALIZATION_MASK;
    Frame {
        flag: ser_id,
        status: status_of(e.kind()),
        id,
        // The kind travels by name; service and method are the caller's own, so only the
        // message is sent (the caller adds its context once). In hessian2 the body is the
        // message as a Hessian string, what Java peers read.
        body: Bytes::from(if ser_id == ids::HESSIAN2 {
            hessian::encode_error(e.message())
        } else {
            body::encode_error(e.kind(), e.message())
        }),
    }
}

/// How the provider encodes the answer to one request.
enum Reply {
    /// Our envelope, the value in this serialization.
    Native(&'static dyn Serialization),
    /// The Dubbo 2.x hessian2 body (boxed: it is the rarer reply, and every request's future
    /// holds a reply).
    Hessian(Box<ReplyStyle>),
}

/// A request body of either layout, decoded.
struct Envelope {
    names: Names,
    timeout_ms: u32,
    attachments: Attachments,
    args: Value,
    parameter_types: Option<ByteString>,
}

/// The service path, version, group and method of a request: read in place in a native
/// body, decoded strings from a Hessian one.
enum Names {
    Native(body::Names),
    Decoded {
        path: ByteString,
        version: ByteString,
        group: ByteString,
        method: ByteString,
    },
}

impl Names {
    /// The service path, version, group and method name as they came, unchecked: matched
    /// against exported names, which are text, they need no UTF-8 check of their own.
    fn bytes(&self) -> [&[u8]; 4] {
        match self {
            Names::Native(n) => n.bytes(),
            Names::Decoded {
                path,
                version,
                group,
                method,
            } => [
                path.as_bytes(),
                version.as_bytes(),
                group.as_bytes(),
                method.as_bytes(),
            ],
        }
    }

    /// The service path, version and group as text: for the error of a request whose
    /// service is not exported (one that is not UTF-8 fails naming its field).
    fn service_texts(&self) -> Result<[&str; 3]> {
        Ok(match self {
            Names::Native(n) => [n.path()?, n.version()?, n.group()?],
            Names::Decoded {
                path,
                version,
                group,
                ..
            } => [path, version, group],
        })
    }

    /// The method name (`name`, as [`Names::bytes`] gave it) as the invocation keeps it, and
    /// the method's declaration when the service declares it: then the name is the
    /// declaration's static one (no reference to the body kept, no UTF-8 check); else it is
    /// checked and kept.
    fn method(
        &self,
        name: &[u8],
        service: Option<&'static ServiceDescriptor>,
    ) -> Result<(ByteString, Option<&'static MethodDescriptor>)> {
        if let Some(declared) = service.and_then(|d| d.method(name)) {
            return Ok((ByteString::from_static(declared.name()), Some(declared)));
        }
        let name = match self {
            Names::Native(n) => n.method_string()?,
            Names::Decoded { method, .. } => method.clone(),
        };
        Ok((name, None))
    }
}

/// The error of a request for a service this port does not export (or whose names are not
/// UTF-8: then the error names the field).
#[cold]
fn not_exported(names: &Names) -> RpcError {
    let [path, version, group] = match names.service_texts() {
        Ok(texts) => texts,
        Err(e) => return e,
    };
    fn opt(s: &str) -> Option<&str> {
        Some(s).filter(|s| !s.is_empty())
    }
    let key = crate::ServiceKey::new(path, opt(group), opt(version));
    RpcError::new(
        ErrorKind::ServiceNotFound,
        format!("service {key} is not exported on this port"),
    )
}

/// The methods of Dubbo's `GenericService`.
fn is_generic_method(method: &str) -> bool {
    method == "$invoke" || method == "$invokeAsync"
}

fn decode_envelope(ser_id: u8, body: Bytes) -> Result<(Envelope, Reply)> {
    if ser_id != ids::HESSIAN2 {
        let ser = serialize::by_id(ser_id)?;
        let env = body::decode_request(body)?;
        return Ok((
            Envelope {
                names: Names::Native(env.names),
                timeout_ms: env.timeout_ms,
                attachments: env.attachments,
                args: Value::Encoded(Payload {
                    serialization: ser_id,
                    bytes: env.args,
                }),
                parameter_types: None,
            },
            Reply::Native(ser),
        ));
    }
    let r = hessian::decode_request(body)?;
    let mut style = ReplyStyle {
        dubbo_version: r.dubbo_version,
        attachments: AttachmentsMode::Auto,
        exception_class: hessian::DEFAULT_EXCEPTION.to_string(),
        generic: false,
    };
    let (method, args, types) =
        if is_generic_method(&r.method) && &*r.parameter_types == hessian::GENERIC_DESCRIPTOR {
            // GenericService: the target method, its Java types and the arguments as JSON,
            // the skeleton's generic path.
            let (method, types, json) = hessian::decode_generic(&r.args)?;
            style.generic = true;
            (
                ByteString::from(method),
                Value::Encoded(Payload {
                    serialization: ids::JSON,
                    bytes: Bytes::from(json),
                }),
                ByteString::from(types),
            )
        } else {
            (
                r.method,
                Value::Encoded(Payload {
                    serialization: ids::HESSIAN2_ARGS,
                    bytes: r.args,
                }),
                r.parameter_types,
            )
        };
    Ok((
        Envelope {
            names: Names::Decoded {
                path: r.path,
                version: r.version,
                group: r.group,
                method,
            },
            timeout_ms: r.timeout_ms,
            attachments: r.attachments,
            args,
            parameter_types: Some(types),
        },
        Reply::Hessian(Box::new(style)),
    ))
}

/// Why a provider's call ended with a timeout while the call was still running.
const LATE: &str = "the provider did not finish before the caller's deadline";

/// A request decoded and matched to its service, ready to run: all of a request that comes
/// before the wait, done before its future is built (which then holds only this).
struct Started {
    invoker: Arc<dyn Invoker>,
    inv: Invocation,
    /// Until when the call may run (the caller's budget, or an idempotent call's run time).
    deadline: Option<Instant>,
    reply: Reply,
}

impl Started {
    /// Runs the call; a panic (in a filter or the service) becomes an error response and the
    /// connection lives on.
    async fn run(self) -> Result<(Response, Reply)> {
        let response =
            crate::invocation::serve(self.invoker.invoke(self.inv), self.deadline, LATE).await?;
        Ok((response, self.reply))
    }
}

impl Dispatcher {
    fn start(&self, req: Frame, peer: &ByteString) -> Result<Started> {
        let ser_id = req.serialization();
        let two_way = req.is_two_way();
        let (env, mut reply) = decode_envelope(ser_id, req.body)?;
        let [path, version, group, method] = env.names.bytes();
        let found = self.services.find(path, Some(group), Some(version), |s| {
            (s.invoker.clone(), s.key.clone(), s.descriptor)
        });
        let Some((invoker, service, descriptor)) = found else {
            return Err(not_exported(&env.names));
        };
        if let Reply::Hessian(style) = &mut reply {
            let url = invoker.url();
            style.attachments = AttachmentsMode::from_param(url.param(keys::RESPONSE_ATTACHMENTS))?;
            if let Some(class) = url.param(keys::HESSIAN2_EXCEPTION) {
                style.exception_class = class.to_string();
            }
        }
        let (method, declared) = env.names.method(method, descriptor)?;
        let mut inv = Invocation::with_method(service, method, env.args);
        // Found once here; the skeleton takes it instead of looking the name up again.
        if let Some(declared) = declared {
            inv.set_method_descriptor(declared);
        }
        if let Some(types) = env.parameter_types {
            inv.set_parameter_types(types);
        }
        *inv.attachments_mut() = env.attachments;
        // The caller's address as the transport saw it; whatever the caller claimed is replaced.
        inv.attachments_mut().insert(
            ByteString::from_static(crate::context::REMOTE_ADDRESS_ATTACHMENT),
            peer.clone(),
        );
        inv.set_oneway(!two_way);
        if env.timeout_ms > 0 {
            inv.set_timeout(Duration::from_millis(env.timeout_ms.into()));
        }
        // A call with an idempotency key runs on past its caller's deadline, so a retry
        // finds its result.
        let deadline = crate::idempotency::run_until(invoker.url(), &inv, inv.deadline());
        Ok(Started {
            invoker,
            inv,
            deadline,
            reply,
        })
    }
}

/// The response frame of a two-way request `id` in serialization `ser_id`; a body over
/// `payload` bytes is refused.
fn answer(payload: usize, ser_id: u8, id: u64, result: Result<(Response, Reply)>) -> Frame {
    match result {
        Ok((resp, reply)) => {
            let encoded = match reply {
                Reply::Native(ser) => {
                    let (kind, value) = match &resp.outcome {
                        Outcome::Value(Value::Empty) => (RESPONSE_EMPTY, &Value::Empty),
                        Outcome::Value(v) => (RESPONSE_VALUE, v),
                        Outcome::BizError(v) => (RESPONSE_BIZ_ERROR, v),
                    };
                    body::encode_response(kind, value, &resp.attachments, ser)
                }
                Reply::Hessian(style) => {
                    hessian::encode_response(&resp.outcome, &resp.attachments, &style)
                        .map(Frame::body_of)
                }
            };
            let encoded = encoded.and_then(|b| {
                if b.len() > payload {
                    Err(RpcError::codec(format!(
                        "result of {} bytes is over the payload limit of {}",
                        b.len(),
                        payload
                    )))
                } else {
                    Ok(b)
                }
            });
            match encoded {
                Ok(body) => Frame {
                    flag: ser_id,
                    status: status::OK,
                    id,
                    body,
                },
                Err(e) => {
                    let text = format!("the provider could not encode its result: {e}");
                    Frame {
                        flag: ser_id,
                        status: status::BAD_RESPONSE,
                        id,
                        body: Bytes::from(if ser_id == ids::HESSIAN2 {
                            hessian::encode_error(&text)
                        } else {
                            body::encode_error(ErrorKind::Codec, &text)
                        }),
                    }
                }
            }
        }
        Err(e) => error_frame(ser_id, id, &e),
    }
}

impl Handler for Dispatcher {
    fn handle(&self, req: Frame, peer: &ByteString, placement: Placement) -> Handled {
        let two_way = req.is_two_way();
        let ser_id = req.serialization();
        let id = req.id;
        let payload = self.payload;
        let reply_with = move |result: Result<(Response, Reply)>| {
            if !two_way {
                if let Err(e) = result {
                    tracing::debug!(id, error = %e, "one-way call failed");
                }
                return None;
            }
            Some(answer(payload, ser_id, id, result))
        };
        let started = match self.start(req, peer) {
            Ok(started) => started,
            Err(e) => return Handled::Done(reply_with(Err(e))),
        };
        // Sent to a task of its own, a call of an ordered method would start after calls that
        // arrived later: those keep their place.
        if placement == Placement::OwnTask
            && crate::filter::ordered::ordering_argument(
                started.invoker.url(),
                started.inv.method(),
            )
            .is_none()
        {
            return Handled::Running(Box::pin(async move {
                tokio::task::yield_now().await;
                reply_with(started.run().await)
            }));
        }
        // Polled once here, where a call that completes at once needs no future of its own
        // around it; polled with a waker that does nothing: a call that has to wait is polled
        // again, with its own task's waker, as soon as that task starts.
        let Started {
            invoker,
            inv,
            deadline,
            reply,
        } = started;
        let mut call = invoker.invoke_owned(inv);
        let first = crate::error::poll_caught(
            call.as_mut(),
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
        );
        match first {
            std::task::Poll::Ready(result) => Handled::Done(reply_with(result.map(|r| (r, reply)))),
            std::task::Poll::Pending => Handled::Running(Box::pin(async move {
                let result = crate::invocation::serve(call, deadline, LATE).await;
                reply_with(result.map(|r| (r, reply)))
            })),
        }
    }

    fn reject(&self, flag: u8, id: u64, error: RpcError) -> Option<Frame> {
        let two_way_request = flag & FLAG_REQUEST != 0 && flag & FLAG_TWO_WAY != 0;
        two_way_request.then(|| error_frame(flag, id, &error))
    }
}

/// A reference to one remote provider.
struct DubboInvoker {
    url: Url,
    client: Arc<Client>,
    timeout: Duration,
    serialization: AdaptiveCache<dyn Serialization>,
}

impl DubboInvoker {
    fn deadline(&self, inv: &Invocation, start: Instant) -> Result<Instant> {
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

    /// The request frame of `inv` and its deadline: all of a call that comes before the
    /// wait, done before the call's future is built (which then holds only the wait).
    fn prepare(&self, inv: &Invocation) -> Result<(Frame, Instant)> {
        let start = Instant::now();
        let deadline = self.deadline(inv, start)?;
        let ser = self.serialization.get(&self.url, inv.method())?;
        let budget = deadline.saturating_duration_since(start).as_millis();
        // A one-way call has no caller waiting: the provider gets no budget to cancel it by.
        let timeout_ms = if inv.is_oneway() {
            0
        } else {
            u32::try_from(budget).unwrap_or(u32::MAX).max(1)
        };
        let body = if ser.id() == ids::HESSIAN2 {
            Frame::body_of(hessian::encode_request(inv, timeout_ms)?)
        } else {
            body::encode_request(inv, &**ser, timeout_ms)?
        };
        if body.len() > self.client.payload_limit() {
            return Err(RpcError::codec(format!(
                "request body of {} bytes is over the payload limit of {}",
                body.len(),
                self.client.payload_limit()
            )));
        }
        let ser_id = ser.id() & SERIALIZATION_MASK;
        let two_way = if inv.is_oneway() { 0 } else { FLAG_TWO_WAY };
        let frame = Frame {
            flag: FLAG_REQUEST | two_way | ser_id,
            status: 0,
            id: 0,
            body,
        };
        Ok((frame, deadline))
    }
}

fn decode_answer(answer: Frame) -> Result<Response> {
    if answer.serialization() == ids::HESSIAN2 {
        if answer.status != status::OK {
            return Err(RpcError::new(
                kind_of_status(answer.status),
                format!(
                    "provider answered status {}: {}",
                    answer.status,
                    hessian::decode_error(&answer.body)
                ),
            ));
        }
        let a = hessian::decode_response(answer.body)?;
        return Ok(Response {
            outcome: a.outcome,
            attachments: a.attachments,
        });
    }
    if answer.status != status::OK {
        let fallback = kind_of_status(answer.status);
        return Err(match body::decode_error(answer.body) {
            Ok((name, msg)) => match ErrorKind::from_name(&name) {
                Some(kind) => RpcError::new(kind, msg),
                None => RpcError::new(
                    fallback,
                    format!("provider answered status {}: {msg}", answer.status),
                ),
            },
            Err(_) => RpcError::new(
                fallback,
                format!("provider answered status {}", answer.status),
            ),
        });
    }
    let ser_id = answer.serialization();
    let (kind, attachments, bytes) = body::decode_response(answer.body)?;
    let value = || {
        Value::Encoded(Payload {
            serialization: ser_id,
            bytes,
        })
    };
    let outcome = match kind {
        RESPONSE_EMPTY => Outcome::Value(Value::Empty),
        RESPONSE_BIZ_ERROR => Outcome::BizError(value()),
        _ => Outcome::Value(value()),
    };
    Ok(Response {
        outcome,
        attachments,
    })
}

#[async_trait::async_trait]
impl Invoker for DubboInvoker {
    fn url(&self) -> &Url {
        &self.url
    }

    fn is_available(&self) -> bool {
        self.client.is_connected()
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.client.last_failure()
    }

    /// The exchange waits only until the deadline, and the header carries the budget.
    fn enforces_deadline(&self) -> bool {
        true
    }

    // Written out: the request is encoded before the future is built, so the future (one
    // allocation per call) holds only the wait, not the invocation.
    fn invoke<'a, 'f>(&'a self, invocation: Invocation) -> crate::invocation::BoxedCall<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        let label = invocation.label();
        let prepared = self.prepare(&invocation);
        drop(invocation);
        Box::pin(async move {
            let answer = match prepared {
                Ok((frame, deadline)) if frame.is_two_way() => self
                    .client
                    .request(frame, deadline)
                    .await
                    .and_then(decode_answer),
                Ok((frame, deadline)) => self
                    .client
                    .send(frame, deadline)
                    .await
                    .map(|()| Response::empty()),
                Err(e) => Err(e),
            };
            answer.map_err(|e| label.annotate(e).with_provider(self.client.address()))
        })
    }
}

crate::register!(dyn Protocol, "dubbo", || Arc::new(Dubbo::default()));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::ServiceKey;

    #[test]
    fn every_kind_crosses_the_wire_as_itself() {
        for kind in ErrorKind::ALL {
            let f = error_frame(24, 9, &RpcError::new(kind, "why"));
            assert_eq!(f.status, status_of(kind));
            let e = decode_answer(f).expect_err("error answer");
            assert_eq!(e.kind(), kind);
            assert!(e.message().contains("why"), "{e}");
        }
        assert_eq!(status_of(ErrorKind::Biz), status::SERVICE_ERROR);
        assert_eq!(status_of(ErrorKind::LimitExceeded), 100);
        // Without a kind name, the status decides.
        let bare = Frame {
            flag: 24,
            status: status::SERVICE_NOT_FOUND,
            id: 1,
            body: Bytes::new(),
        };
        assert_eq!(
            decode_answer(bare).expect_err("err").kind(),
            ErrorKind::ServiceNotFound
        );
    }

    /// A dispatcher exporting `t.Calc:1.0` (declaring `add`) behind a mock at `url`.
    fn calc_dispatcher(url: &str) -> Dispatcher {
        calc_served_by(crate::filter::testing::Mock::ok(url))
    }

    /// A dispatcher of `t.Calc:1.0` (method `add`) served by `invoker`.
    fn calc_served_by(invoker: Arc<dyn Invoker>) -> Dispatcher {
        use crate::protocol::listeners::ExportedService;
        const CALC: &ServiceDescriptor =
            &ServiceDescriptor::new("t.Calc", &[MethodDescriptor::new("add", &[], "i32")])
                .with_version("1.0");
        let services = ServiceTable::default();
        assert!(services.insert(ExportedService {
            key: ServiceKey::new("t.Calc", None, Some("1.0")),
            invoker,
            descriptor: Some(CALC),
        }));
        Dispatcher {
            services,
            payload: 1 << 20,
        }
    }

    /// The body of a request for `method` of `path` at `version`.
    fn request_body(path: &str, version: Option<&str>, method: &str) -> Vec<u8> {
        let key = ServiceKey::new(path, None, version);
        let inv = Invocation::new(key, method.to_owned(), Value::Empty);
        body::encode_request(&inv, &crate::serialize::MsgPack, 100)
            .expect("encode")
            .to_vec()
    }

    /// A two-way msgpack request frame with `body`.
    fn request(body: Vec<u8>) -> Frame {
        Frame {
            flag: FLAG_REQUEST | FLAG_TWO_WAY | ids::MSGPACK,
            status: 0,
            id: 7,
            body: Bytes::from(body),
        }
    }

    /// A request's names are matched as the bytes it carries: a declared method gets its
    /// static name and declaration without a UTF-8 check; an undeclared one is checked and
    /// kept; a service that is not exported is refused naming its key, and a name that is
    /// not UTF-8 naming its field.
    #[test]
    fn requests_are_matched_by_the_bytes_of_their_names() {
        let dispatcher = calc_dispatcher("dubbo://127.0.0.1:1/t.Calc");
        let start = |body: Vec<u8>| {
            dispatcher.start(request(body), &ByteString::from_static("127.0.0.1:9"))
        };

        let declared = start(request_body("t.Calc", Some("1.0"), "add")).expect("found");
        assert_eq!(declared.inv.method(), "add");
        assert!(declared.inv.method_descriptor().is_some(), "declared");
        let other = start(request_body("t.Calc", Some("1.0"), "sub")).expect("found");
        assert_eq!(other.inv.method(), "sub");
        assert!(other.inv.method_descriptor().is_none(), "not declared");

        let missing = start(request_body("t.Calc", Some("2.0"), "add"))
            .err()
            .expect("refused");
        assert_eq!(missing.kind(), ErrorKind::ServiceNotFound);
        assert!(missing.message().contains("t.Calc:2.0"), "{missing}");

        // The body: version, then the path's length and text.
        let mut bad_path = request_body("t.Calc", Some("1.0"), "add");
        bad_path[3] = 0xff;
        let e = start(bad_path).err().expect("refused");
        assert!(e.message().contains("service path is not UTF-8"), "{e}");
        // An undeclared method name that is not UTF-8 (its last byte made a lead byte).
        let mut bad_method = request_body("t.Calc", Some("1.0"), "sub");
        let at = 1 + 2 + "t.Calc".len() + 2 + "1.0".len() + 2 + 2 + "sub".len() - 1;
        bad_method[at] = 0xc3;
        let e = start(bad_method).err().expect("refused");
        assert!(e.message().contains("method name is not UTF-8"), "{e}");
    }

    /// Sent to a task of its own, a request yields before its work, so its first poll (where
    /// the connection is read) does nothing; a call of an ordered method keeps its place in
    /// arrival order and runs at once. In place, every request runs at once.
    #[tokio::test]
    async fn a_request_for_its_own_task_yields_first_unless_its_method_is_ordered() {
        let dispatcher = Arc::new(calc_dispatcher("dubbo://127.0.0.1:1/t.Calc?add.ordered=0"));
        let done_at_first_poll = |method: &str, placement| {
            let handled = dispatcher.handle(
                request(request_body("t.Calc", Some("1.0"), method)),
                &ByteString::from_static("127.0.0.1:9"),
                placement,
            );
            match handled {
                Handled::Done(answer) => {
                    assert!(answer.is_some(), "a two-way request is answered");
                    true
                }
                Handled::Running(mut rest) => {
                    // Handed over before any work: its first poll does it.
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    assert!(rest.as_mut().poll(&mut cx).is_pending(), "yields first");
                    false
                }
            }
        };
        assert!(done_at_first_poll("sub", Placement::InPlace));
        assert!(done_at_first_poll("add", Placement::InPlace));
        assert!(
            !done_at_first_poll("sub", Placement::OwnTask),
            "yields first"
        );
        assert!(
            done_at_first_poll("add", Placement::OwnTask),
            "ordered: keeps its place"
        );
    }

    /// A panic in the exported chain (a filter or the service) is answered as the service's
    /// error, both where the request starts (answered at once) and after it waited (answered
    /// from its own task).
    #[tokio::test]
    async fn a_call_that_panics_is_answered_with_the_panic_at_once_or_after_waiting() {
        use crate::filter::testing::Mock;
        let url = "dubbo://127.0.0.1:1/t.Calc";
        let peer = ByteString::from_static("127.0.0.1:9");
        let add = || request(request_body("t.Calc", Some("1.0"), "add"));
        let error_of = |answer: Option<Frame>| {
            decode_answer(answer.expect("a two-way request is answered")).expect_err("an error")
        };

        let at_once = calc_served_by(Mock::new(url, |_| async { panic!("at once") }));
        let e = match at_once.handle(add(), &peer, Placement::InPlace) {
            Handled::Done(answer) => error_of(answer),
            Handled::Running(_) => panic!("a call that ended at once is answered at once"),
        };
        assert_eq!(e.kind(), ErrorKind::Biz);
        assert!(e.message().contains("the service panicked: at once"), "{e}");

        let later = calc_served_by(Mock::new(url, |_| async {
            tokio::task::yield_now().await;
            panic!("after waiting")
        }));
        let e = match later.handle(add(), &peer, Placement::InPlace) {
            Handled::Running(rest) => error_of(rest.await),
            Handled::Done(_) => panic!("a call that waits goes on in a task of its own"),
        };
        assert_eq!(e.kind(), ErrorKind::Biz);
        assert!(
            e.message().contains("the service panicked: after waiting"),
            "{e}"
        );
    }

    struct Slow(Url);

    #[async_trait::async_trait]
    impl Invoker for Slow {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, mut inv: Invocation) -> Result<Response> {
            let (ms,): (u64,) = inv.take_args().decode()?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Response::value(Value::typed(ms)))
        }
    }

    #[tokio::test]
    async fn unexport_lets_in_flight_calls_finish_and_releases_the_port() {
        let p = Dubbo::default();
        let url = Url::parse("dubbo://127.0.0.1:0/t.Slow").expect("url");
        let exp = p
            .export(url.clone(), Arc::new(Slow(url.clone())))
            .await
            .expect("export");
        let port = exp.url().port().expect("port");
        assert_ne!(port, 0);
        let inv = p
            .refer(url.with_port(port).with_param(keys::TIMEOUT, 5000))
            .await
            .expect("refer");
        let call = Invocation::new(
            ServiceKey::new("t.Slow", None, None),
            "s",
            Value::typed((300u64,)),
        );
        let pending = tokio::spawn({
            let inv = inv.clone();
            async move { inv.invoke(call).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        exp.unexport().await;
        // The listener is gone: the port can be bound again.
        let again = std::net::TcpListener::bind(("127.0.0.1", port));
        assert!(again.is_ok(), "port still held after unexport");
        drop(again);
        let ms: u64 = pending
            .await
            .expect("join")
            .expect("in-flight call finished")
            .into_value()
            .expect("u64");
        assert_eq!(ms, 300);
    }
}
