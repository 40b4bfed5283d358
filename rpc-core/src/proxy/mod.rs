//! Proxy layer: the runtime behind `#[service]`.
//!
//! The [`service`](crate::service) macro turns a trait of `async fn`s into three things that
//! only call into this module:
//!
//! - a **client proxy** (`GreeterClient`), a [`ServiceClient`] built from any
//!   `Arc<dyn Invoker>` (a cluster, a filter chain, a protocol reference). Each method erases
//!   its arguments once into [`Value::typed`] of a tuple, sends an [`Invocation`] through the
//!   invoker with [`ClientCore`], and decodes the typed result;
//! - a **server skeleton** (`GreeterServer<S>`), a [`ServiceServer`] that dispatches by method
//!   name to the user's implementation. [`ServiceServer::into_invoker`] wraps it in a
//!   [`Skeleton`], the [`Invoker`] a protocol exports;
//! - **service metadata**, a `&'static` [`ServiceDescriptor`] (interface, version, group,
//!   methods with argument and return types, per-method idempotent/oneway/timeout) that
//!   registries publish with [`ServiceDescriptor::url_params`].
//!
//! # The trait the user implements
//!
//! `#[service]` rewrites each `async fn m(&self, a: A) -> R;` of the trait into
//! `fn m(&self, a: A) -> impl Future<Output = R> + Send;` and adds `Send + Sync + 'static`
//! supertraits. Users still write `async fn` in their `impl`; nothing is boxed on their side
//! (no `async_trait`), the skeleton holds the implementation in an `Arc<S>` and its futures
//! are `Send`, so any runtime can poll or spawn them. The trait is not object safe; use the
//! generated server (`GreeterServer<S>`) or `Arc<dyn Invoker>` where erasure is needed.
//!
//! # Client signatures
//!
//! `async fn m(..) -> Result<T, E>` becomes `fn m(..) -> impl Future<Output =
//! Result<Result<T, E>, RpcError>> + Send + 'static` on the client: the outer error is the
//! framework's, the inner one the service's business error (sent as
//! [`Outcome::BizError`](crate::Outcome::BizError), never retried). `-> T` becomes
//! `Result<T, RpcError>`; only a return type written `Result<T, E>` with two type arguments
//! counts as a business result (`io::Result<T>` is a plain value).
//!
//! # Panics in service code
//!
//! [`Skeleton`] polls the method's future inside [`crate::error::catch_panics`] rather
//! than spawning a task per call: no allocation or scheduling on the hot path, and it works
//! whatever runtime polls the skeleton. A panic becomes an [`ErrorKind::Biz`] error naming the
//! method and the panic message; the caller and the connection live on. Caught there, it
//! never unwinds through the provider's filters; the protocols catch what a filter itself
//! throws with the same function.
//!
//! # Per-method timeouts
//!
//! `#[timeout = 300]` on a method is recorded in the descriptor as `{method}.timeout=300`.
//! The consumer's `timeout` filter reads it from the invoker's URL (method level first), so the
//! defaults must be on that URL: [`ServiceDescriptor::apply_to`] merges them into a reference
//! URL without overriding what the user configured, and [`refer`] does that before building
//! the consumer filter chain.
//!
//! # Idempotency and ordering keys
//!
//! `#[idempotency_key]` / `#[idempotency_key(arg)]` are recorded as
//! [`IdempotencyKey`] and published as `{method}.idempotency`; [`ClientCore::invocation`]
//! attaches the key to every call (see [`crate::idempotency`]). `#[ordered_by(arg)]` is
//! published as `{method}.ordered` with `{method}.loadbalance=consistenthash` and
//! `{method}.hash.arguments` (see [`crate::filter::ordered`]). Both name the argument by
//! its index in the descriptor; the macro checks the name exists.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Side;
use crate::invocation::{Invocation, Invoker, Response, ServiceKey, Value};
use crate::protocol::{Exporter, Protocol};
use crate::url::Url;

pub mod protobuf;
pub use protobuf::MessageCodec;

/// One argument of a service method: its name and its Rust type as written in the trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgDescriptor {
    name: &'static str,
    type_name: &'static str,
    java_type: &'static str,
}

impl ArgDescriptor {
    /// An argument called `name` of type `type_name` (source text, e.g. `Vec<u8>`), Java
    /// type `java.lang.Object` until [`with_java_type`](Self::with_java_type).
    pub const fn new(name: &'static str, type_name: &'static str) -> Self {
        ArgDescriptor {
            name,
            type_name,
            java_type: "Ljava/lang/Object;",
        }
    }

    /// Sets the Java parameter descriptor (`Ljava/lang/String;`, `I`, ...).
    pub const fn with_java_type(mut self, java_type: &'static str) -> Self {
        self.java_type = java_type;
        self
    }

    /// The Java parameter descriptor of the argument (what a Java peer's method declares).
    pub fn java_type(&self) -> &'static str {
        self.java_type
    }

    /// The parameter name in the trait (`_` for an unnamed one).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The type as written in the trait.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

/// Where the idempotency key of a `#[idempotency_key]` method comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyKey {
    /// A random key made per call (`#[idempotency_key]`): retries of that call by the
    /// cluster carry the same key, a new call gets a new one.
    Generated,
    /// The value of the argument at this index (`#[idempotency_key(order)]`): every call with
    /// that value is the same request, whoever makes it (an order id).
    Argument(usize),
}

/// One method of a service: signature and call defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodDescriptor {
    name: &'static str,
    args: &'static [ArgDescriptor],
    returns: &'static str,
    error: Option<&'static str>,
    idempotent: bool,
    oneway: bool,
    timeout_ms: Option<u64>,
    parameter_types: Option<&'static str>,
    idempotency_key: Option<IdempotencyKey>,
    ordered_by: Option<usize>,
    protobuf: Option<protobuf::ProtobufHook>,
    streaming: StreamKind,
}

/// Whether a method's argument, result, or both are streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamKind {
    /// One value each way.
    #[default]
    Unary,
    /// A stream of arguments, one result.
    Client,
    /// One argument, a stream of results.
    Server,
    /// Streams both ways.
    Bidi,
}

impl StreamKind {
    /// Whether the caller sends a stream.
    pub fn client_streams(self) -> bool {
        matches!(self, StreamKind::Client | StreamKind::Bidi)
    }

    /// Whether the provider answers with a stream.
    pub fn server_streams(self) -> bool {
        matches!(self, StreamKind::Server | StreamKind::Bidi)
    }

    /// Whether anything streams.
    pub fn is_streaming(self) -> bool {
        self != StreamKind::Unary
    }
}

impl MethodDescriptor {
    /// A method `name(args) -> returns`; `returns` is the success type (`()` for none).
    pub const fn new(
        name: &'static str,
        args: &'static [ArgDescriptor],
        returns: &'static str,
    ) -> Self {
        MethodDescriptor {
            name,
            args,
            returns,
            error: None,
            idempotent: false,
            oneway: false,
            timeout_ms: None,
            parameter_types: None,
            idempotency_key: None,
            ordered_by: None,
            protobuf: None,
            streaming: StreamKind::Unary,
        }
    }

    /// Declares that calls carry an idempotency key (`#[idempotency_key]`): the provider
    /// answers a repeated key from its stored result, and failover may retry the method.
    pub const fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Where the method's idempotency key comes from, when it has one.
    pub fn idempotency_key(&self) -> Option<IdempotencyKey> {
        self.idempotency_key
    }

    /// Declares the argument at `index` the method's ordering key (`#[ordered_by(arg)]`).
    pub const fn with_ordered_by(mut self, index: usize) -> Self {
        self.ordered_by = Some(index);
        self
    }

    /// The index of the argument that orders the calls, when declared.
    pub fn ordered_by(&self) -> Option<usize> {
        self.ordered_by
    }

    /// Declares which of the argument and result are streams.
    pub const fn with_streaming(mut self, kind: StreamKind) -> Self {
        self.streaming = kind;
        self
    }

    /// Which of the argument and result are streams.
    pub fn streaming(&self) -> StreamKind {
        self.streaming
    }

    /// Records how to tell whether the method's argument and result are protobuf messages
    /// (generated by `#[service]` for one-argument methods; see [`protobuf`]).
    pub const fn with_protobuf(mut self, probe: fn() -> Option<MessageCodec>) -> Self {
        self.protobuf = Some(protobuf::ProtobufHook(probe));
        self
    }

    /// The protobuf codec of a method whose single argument and result are both
    /// `prost::Message`s, `None` for any other method.
    pub fn protobuf(&self) -> Option<MessageCodec> {
        self.protobuf.and_then(|h| (h.0)())
    }

    /// Sets the Java parameter descriptor of the whole method (the arguments' descriptors
    /// concatenated, `Ljava/lang/String;I`), sent in hessian2 requests.
    pub const fn with_parameter_types(mut self, types: &'static str) -> Self {
        self.parameter_types = Some(types);
        self
    }

    /// The Java parameter descriptor, when declared (generated services always declare it).
    pub fn parameter_types(&self) -> Option<&'static str> {
        self.parameter_types
    }

    /// Declares the business error type `E` of a method returning `Result<T, E>`.
    pub const fn with_error(mut self, error: &'static str) -> Self {
        self.error = Some(error);
        self
    }

    /// Declares the method safe to retry (`#[idempotent]`).
    pub const fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Declares the method fire-and-forget (`#[oneway]`).
    pub const fn with_oneway(mut self, oneway: bool) -> Self {
        self.oneway = oneway;
        self
    }

    /// Sets the default timeout in milliseconds (`#[timeout = ms]`).
    pub const fn with_timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// The method name, as sent on the wire.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The arguments, in order.
    pub fn args(&self) -> &'static [ArgDescriptor] {
        self.args
    }

    /// The success type (the `T` of `Result<T, E>`, or the plain return type).
    pub fn returns(&self) -> &'static str {
        self.returns
    }

    /// The business error type `E`, when the method returns `Result<T, E>`.
    pub fn error(&self) -> Option<&'static str> {
        self.error
    }

    /// Whether failover may retry the method after a failure that may have reached the
    /// provider.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Whether the caller waits for no response.
    pub fn is_oneway(&self) -> bool {
        self.oneway
    }

    /// The declared default timeout in milliseconds.
    pub fn timeout_ms(&self) -> Option<u64> {
        self.timeout_ms
    }

    /// The signature for messages and tooling: `greet(name: String) -> Result<String, E>`.
    pub fn signature(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| format!("{}: {}", a.name, a.type_name))
            .collect();
        let ret = match self.error {
            Some(e) => format!("Result<{}, {e}>", self.returns),
            None => self.returns.to_string(),
        };
        format!("{}({}) -> {ret}", self.name, args.join(", "))
    }
}

/// What a service offers: its interface name, version, group and methods.
///
/// Generated by `#[service]` as a `&'static` constant (`GreeterClient::DESCRIPTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDescriptor {
    interface: &'static str,
    version: Option<&'static str>,
    group: Option<&'static str>,
    methods: &'static [MethodDescriptor],
}

impl ServiceDescriptor {
    /// A service called `interface` (e.g. `org.example.Greeter`) with `methods`.
    pub const fn new(interface: &'static str, methods: &'static [MethodDescriptor]) -> Self {
        ServiceDescriptor {
            interface,
            version: None,
            group: None,
            methods,
        }
    }

    /// Sets the default version.
    pub const fn with_version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the default group.
    pub const fn with_group(mut self, group: &'static str) -> Self {
        self.group = Some(group);
        self
    }

    /// The interface name.
    pub fn interface(&self) -> &'static str {
        self.interface
    }

    /// The default version, if declared.
    pub fn version(&self) -> Option<&'static str> {
        self.version
    }

    /// The default group, if declared.
    pub fn group(&self) -> Option<&'static str> {
        self.group
    }

    /// The methods, in declaration order.
    pub const fn methods(&self) -> &'static [MethodDescriptor] {
        self.methods
    }

    /// The method called `name`.
    /// The name may be text or the bytes a request carries: bytes equal to a declared name
    /// are that name's text, so a request's name needs no UTF-8 check to be matched.
    pub fn method(&self, name: impl AsRef<[u8]>) -> Option<&'static MethodDescriptor> {
        let name = name.as_ref();
        self.methods.iter().find(|m| m.name.as_bytes() == name)
    }

    /// The declared service key (interface, group, version).
    pub fn service_key(&self) -> ServiceKey {
        ServiceKey::new(self.interface, self.group, self.version)
    }

    /// The metadata as URL parameters, the form registries publish:
    /// `interface`, `methods` (sorted, comma-separated), `version` and `group` when declared,
    /// and per method `{m}.timeout`, `{m}.idempotent=true`, `{m}.oneway=true`,
    /// `{m}.idempotency=generated` or `{m}.idempotency=N` (the key's argument index), and for
    /// `#[ordered_by]` `{m}.ordered=N` with `{m}.loadbalance=consistenthash` and
    /// `{m}.hash.arguments=N` (same key, same provider), when declared.
    pub fn url_params(&self) -> Vec<(String, String)> {
        let mut names: Vec<&str> = self.methods.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let mut out = vec![
            (keys::INTERFACE.to_string(), self.interface.to_string()),
            (keys::METHODS.to_string(), names.join(",")),
        ];
        if let Some(v) = self.version {
            out.push((keys::VERSION.into(), v.into()));
        }
        if let Some(g) = self.group {
            out.push((keys::GROUP.into(), g.into()));
        }
        for m in self.methods {
            if let Some(ms) = m.timeout_ms {
                out.push((keys::method_key(m.name, keys::TIMEOUT), ms.to_string()));
            }
            if m.idempotent {
                out.push((keys::method_key(m.name, keys::IDEMPOTENT), "true".into()));
            }
            if m.oneway {
                out.push((keys::method_key(m.name, keys::ONEWAY), "true".into()));
            }
            match m.idempotency_key {
                Some(IdempotencyKey::Generated) => {
                    out.push((
                        keys::method_key(m.name, keys::IDEMPOTENCY),
                        "generated".into(),
                    ));
                }
                Some(IdempotencyKey::Argument(i)) => {
                    out.push((keys::method_key(m.name, keys::IDEMPOTENCY), i.to_string()));
                }
                None => {}
            }
            if let Some(i) = m.ordered_by {
                out.push((keys::method_key(m.name, keys::ORDERED), i.to_string()));
                out.push((
                    keys::method_key(m.name, keys::LOADBALANCE),
                    "consistenthash".into(),
                ));
                out.push((
                    keys::method_key(m.name, keys::HASH_ARGUMENTS),
                    i.to_string(),
                ));
            }
        }
        out
    }

    /// `url` with the [`url_params`](Self::url_params) added where `url` does not set them
    /// already: configuration given by the user wins over the declared defaults.
    pub fn apply_to(&self, url: &Url) -> Url {
        url.with_defaults(self.url_params())
    }

    /// The URL a [`Skeleton`] reports when none is given:
    /// `service://0.0.0.0:0/{interface}?{url_params}`.
    pub fn url(&self) -> Url {
        self.apply_to(&Url::new("service", "0.0.0.0", 0).with_path(self.interface))
    }

    /// The error for a call of a method this service does not have, listing the ones it has.
    pub fn method_not_found(&self, method: &str) -> RpcError {
        let known: Vec<&str> = self.methods.iter().map(|m| m.name).collect();
        RpcError::new(
            ErrorKind::MethodNotFound,
            format!(
                "service {} has no method '{method}'; its methods are: {}",
                self.service_key(),
                known.join(", ")
            ),
        )
    }
}

/// A generated client proxy (`GreeterClient`).
pub trait ServiceClient: Clone + Send + Sync + Sized + 'static {
    /// The service's metadata.
    fn descriptor() -> &'static ServiceDescriptor;

    /// A client sending calls through `invoker`; see [`ClientCore::new`] for the service key.
    fn from_invoker(invoker: Arc<dyn Invoker>) -> Self;

    /// A client sending calls for `key` (another group or version) through `invoker`.
    fn with_service_key(invoker: Arc<dyn Invoker>, key: ServiceKey) -> Self;
}

/// A generated server skeleton (`GreeterServer<S>`): dispatches calls by method name.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a service server",
    label = "expected a server generated by `#[service]`",
    note = "wrap your implementation in the generated server: `GreeterServer::new(MyGreeter)` for `#[service] trait Greeter`"
)]
pub trait ServiceServer: Clone + Send + Sync + Sized + 'static {
    /// The service's metadata.
    fn descriptor() -> &'static ServiceDescriptor;

    /// Decodes `args` for `method` (one of [`descriptor`](Self::descriptor)'s methods), calls
    /// the implementation and wraps what it returned.
    fn call(
        &self,
        method: &'static MethodDescriptor,
        args: Value,
    ) -> impl Future<Output = Result<Response>> + Send + '_;

    /// The skeleton as the invoker a protocol exports, reporting
    /// [`ServiceDescriptor::url`] as its URL.
    fn into_invoker(self) -> Arc<dyn Invoker> {
        Arc::new(Skeleton::new(self))
    }
}

/// The invoker around a [`ServiceServer`]: finds the method, runs it with panics caught,
/// and adds the service and method to errors.
///
/// A one-way invocation is answered with an empty response at once while the method runs on
/// its own task (when a tokio runtime is present; otherwise it is awaited).
pub struct Skeleton<S> {
    server: S,
    url: Url,
}

impl<S: ServiceServer> Skeleton<S> {
    /// A skeleton reporting [`ServiceDescriptor::url`].
    pub fn new(server: S) -> Self {
        Skeleton {
            url: S::descriptor().url(),
            server,
        }
    }

    /// A skeleton reporting `url` (for instance the provider URL it is exported at), with the
    /// descriptor's parameters added where `url` lacks them.
    pub fn with_url(server: S, url: Url) -> Self {
        Skeleton {
            url: S::descriptor().apply_to(&url),
            server,
        }
    }

    /// The wrapped server.
    pub fn server(&self) -> &S {
        &self.server
    }
}

impl<S> fmt::Debug for Skeleton<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Skeleton").field("url", &self.url).finish()
    }
}

/// Runs `server.call` with panics turned into [`ErrorKind::Biz`] errors
/// ([`crate::error::catch_panics`]).
async fn call_caught<S: ServiceServer>(
    server: &S,
    method: &'static MethodDescriptor,
    args: Value,
) -> Result<Response> {
    crate::error::catch_panics(server.call(method, args)).await
}

#[async_trait::async_trait]
impl<S: ServiceServer> Invoker for Skeleton<S> {
    fn url(&self) -> &Url {
        &self.url
    }

    fn descriptor(&self) -> Option<&'static ServiceDescriptor> {
        Some(S::descriptor())
    }

    async fn invoke(&self, mut invocation: Invocation) -> Result<Response> {
        let descriptor = S::descriptor();
        // The declaration the protocol found (one of this service's), else by name.
        let declared = invocation
            .method_descriptor()
            .filter(|m| descriptor.methods.iter().any(|d| std::ptr::eq(d, *m)));
        let Some(method) = declared.or_else(|| descriptor.method(invocation.method())) else {
            return Err(invocation.annotate(descriptor.method_not_found(invocation.method())));
        };
        if let Some(types) = invocation.parameter_types() {
            if let Err(e) = check_parameter_types(method, types) {
                return Err(invocation.annotate(e));
            }
        }
        let args = invocation.take_args();
        if invocation.is_oneway() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let server = self.server.clone();
                let service = invocation.service().to_string();
                rt.spawn(async move {
                    if let Err(e) = call_caught(&server, method, args).await {
                        tracing::warn!(%service, method = method.name(), error = %e, "one-way call failed");
                    }
                });
                return Ok(Response::empty());
            }
        }
        call_caught(&self.server, method, args)
            .await
            .map_err(|e| invocation.annotate(e))
    }
}

/// A caller's Java parameter descriptor is accepted when it names as many parameters as the
/// method has: Rust services have no overloads, so name and arity identify the method; a
/// different descriptor of the same arity (a caller's `Ljava/lang/Integer;` for our `I`) is
/// logged at debug level and the arguments decide.
fn check_parameter_types(method: &MethodDescriptor, types: &str) -> Result<()> {
    let given = crate::protocol::dubbo::split_descriptor(types)?;
    if given.len() != method.args().len() {
        return Err(RpcError::new(
            ErrorKind::MethodNotFound,
            format!(
                "no method {}({types}): the caller's parameter types name {} parameter(s), `{}` takes {}",
                method.name(),
                given.len(),
                method.signature(),
                method.args().len()
            ),
        ));
    }
    if method.parameter_types().is_some_and(|ours| ours != types) {
        tracing::debug!(
            method = method.name(),
            caller = types,
            ours = method.parameter_types().unwrap_or(""),
            "parameter types differ; name and arity match"
        );
    }
    Ok(())
}

/// What a generated client holds: the invoker, the service key, and the call helpers the
/// generated methods use.
#[derive(Clone)]
pub struct ClientCore {
    invoker: Arc<dyn Invoker>,
    key: ServiceKey,
}

impl fmt::Debug for ClientCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCore")
            .field("service", &self.key)
            .field("url", self.invoker.url())
            .finish()
    }
}

impl ClientCore {
    /// Calls of `descriptor`'s service through `invoker`. The key's group and version are the
    /// invoker URL's `group`/`version` parameters when set (what the consumer configured),
    /// else the descriptor's declared ones.
    pub fn new(descriptor: &'static ServiceDescriptor, invoker: Arc<dyn Invoker>) -> Self {
        let url = invoker.url();
        let key = ServiceKey::interned(
            descriptor.interface(),
            url.param(keys::GROUP).or(descriptor.group()),
            url.param(keys::VERSION).or(descriptor.version()),
        );
        ClientCore { invoker, key }
    }

    /// Calls for `key` through `invoker`.
    pub fn with_service_key(invoker: Arc<dyn Invoker>, key: ServiceKey) -> Self {
        ClientCore { invoker, key }
    }

    /// The invoker calls go through.
    pub fn invoker(&self) -> &Arc<dyn Invoker> {
        &self.invoker
    }

    /// The service key calls carry.
    pub fn service_key(&self) -> &ServiceKey {
        &self.key
    }

    /// The invocation of `method` with `args`, flagged idempotent/oneway as declared.
    pub fn invocation(&self, method: &'static MethodDescriptor, args: Value) -> Invocation {
        let mut inv = Invocation::new(self.key.clone(), method.name(), args);
        if let Some(types) = method.parameter_types() {
            inv.set_parameter_types(crate::invocation::ByteString::from_static(types));
        }
        inv.set_idempotent(method.is_idempotent());
        inv.set_oneway(method.is_oneway());
        if let Some(source) = method.idempotency_key() {
            crate::idempotency::attach_key(&mut inv, source);
        }
        inv.set_method_descriptor(method);
        inv
    }

    /// Sends a call of `method` and hands its answer to `decode`; any error, the invoker's or
    /// the decoder's, names the service and the method. (One copy of the service key per call
    /// besides the invocation's own, and one future.)
    fn send<T: Send + 'static>(
        &self,
        method: &'static MethodDescriptor,
        args: Value,
        decode: fn(Response) -> Result<T>,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let inv = self.invocation(method, args);
        let label = inv.label();
        let invoker = self.invoker.clone();
        async move {
            invoker
                .invoke(inv)
                .await
                .and_then(decode)
                .map_err(|e| label.annotate(e))
        }
    }

    /// Calls a method returning a plain `T`.
    pub fn call_value<T: DeserializeOwned + Any + Send + Sync>(
        &self,
        method: &'static MethodDescriptor,
        args: Value,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        self.send(method, args, Response::into_value::<T>)
    }

    /// Calls a method returning `Result<T, E>`: the outer result is the framework's, the inner
    /// one the service's.
    pub fn call_result<
        T: DeserializeOwned + Any + Send + Sync,
        E: DeserializeOwned + Any + Send + Sync,
    >(
        &self,
        method: &'static MethodDescriptor,
        args: Value,
    ) -> impl Future<Output = Result<std::result::Result<T, E>>> + Send + 'static {
        self.send(method, args, Response::into_result::<T, E>)
    }

    /// Calls a method returning a stream of `T`.
    pub fn call_stream<T: RpcType>(
        &self,
        method: &'static MethodDescriptor,
        args: Value,
    ) -> impl Future<Output = Result<crate::Streaming<T>>> + Send + 'static {
        self.send(method, args, |r| match r.outcome {
            crate::Outcome::Value(v) => crate::Streaming::from_value(v),
            crate::Outcome::BizError(_) => Err(RpcError::codec(
                "the provider returned a business error for a streaming method",
            )),
        })
    }

    /// Calls a one-way method: done once the invoker has taken the request.
    pub fn call_oneway(
        &self,
        method: &'static MethodDescriptor,
        args: Value,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.send(method, args, |_| Ok(()))
    }
}

/// Decodes a method's argument tuple; a mismatch is a [`ErrorKind::Codec`] error naming the
/// method and its signature.
pub fn decode_args<T: DeserializeOwned + Any + Send + Sync>(
    method: &'static MethodDescriptor,
    args: Value,
) -> Result<T> {
    args.decode().map_err(|e| {
        RpcError::codec(format!(
            "the arguments of {} do not match `{}`: {}",
            method.name(),
            method.signature(),
            e.message()
        ))
    })
}

/// The response for a method's plain return value.
pub fn respond_value<T: serde::Serialize + Any + Send + Sync>(value: T) -> Response {
    Response::value(Value::typed(value))
}

/// The response for a method's `Result`: `Err(e)` is a business error, not an [`RpcError`].
pub fn respond_result<T, E>(result: std::result::Result<T, E>) -> Response
where
    T: serde::Serialize + Any + Send + Sync,
    E: serde::Serialize + Any + Send + Sync,
{
    match result {
        Ok(v) => Response::value(Value::typed(v)),
        Err(e) => Response::biz_error(Value::typed(e)),
    }
}

/// Refers to a service over `protocol` at `url` and builds its client: the descriptor's
/// defaults (`methods`, `{m}.timeout`, ...) are merged into `url` (user settings win), then
/// the reference is wrapped in the consumer filters activated by that URL.
pub async fn refer<C: ServiceClient>(protocol: &dyn Protocol, url: Url) -> Result<C> {
    crate::protocol::check_streams(protocol, url.protocol(), C::descriptor())?;
    let url = C::descriptor().apply_to(&url);
    let invoker = protocol.refer(url).await?;
    let chain = crate::filter::build_chain(invoker, Side::Consumer)?;
    Ok(C::from_invoker(chain))
}

/// Exports `server` over `protocol` at `url` (with the descriptor's parameters merged in),
/// wrapped in the provider filters activated by that URL.
pub async fn export<S: ServiceServer>(
    protocol: &dyn Protocol,
    url: Url,
    server: S,
) -> Result<Box<dyn Exporter>> {
    crate::protocol::check_streams(protocol, url.protocol(), S::descriptor())?;
    let url = S::descriptor().apply_to(&url);
    let skeleton: Arc<dyn Invoker> = Arc::new(Skeleton::with_url(server, url.clone()));
    let chain = crate::filter::build_chain(skeleton, Side::Provider)?;
    protocol.export(url, chain).await
}

/// Compile-time check that an argument or return type can travel: spanned at the user's type
/// by the generated code so the error points there.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent in an RPC call",
    label = "arguments and results must be owned serde types",
    note = "derive `serde::Serialize` and `serde::Deserialize` on it, and make it `Send + Sync + 'static`"
)]
pub trait RpcType: serde::Serialize + DeserializeOwned + Any + Send + Sync {}

impl<T: serde::Serialize + DeserializeOwned + Any + Send + Sync> RpcType for T {}

/// Used by the generated code; see [`RpcType`].
pub fn assert_rpc_type<T: RpcType>() {}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGS: &[ArgDescriptor] = &[ArgDescriptor::new("name", "String")];
    const DESC: &ServiceDescriptor = &ServiceDescriptor::new(
        "org.example.Greeter",
        &[
            MethodDescriptor::new("greet", ARGS, "String")
                .with_error("GreetError")
                .with_idempotent(true)
                .with_timeout_ms(300),
            MethodDescriptor::new("hello", &[], "()").with_oneway(true),
        ],
    )
    .with_version("1.0.0");

    #[test]
    fn descriptor_renders_url_params() {
        let params = DESC.url_params();
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("methods"), Some("greet,hello"));
        assert_eq!(get("interface"), Some("org.example.Greeter"));
        assert_eq!(get("version"), Some("1.0.0"));
        assert_eq!(get("group"), None);
        assert_eq!(get("greet.timeout"), Some("300"));
        assert_eq!(get("greet.idempotent"), Some("true"));
        assert_eq!(get("hello.oneway"), Some("true"));
        assert_eq!(get("hello.timeout"), None);
    }

    #[test]
    fn keyed_and_ordered_methods_publish_their_keys_and_routing() {
        const ARGS2: &[ArgDescriptor] = &[
            ArgDescriptor::new("order", "String"),
            ArgDescriptor::new("amount", "u64"),
        ];
        const KEYED: &ServiceDescriptor = &ServiceDescriptor::new(
            "org.example.Pay",
            &[
                MethodDescriptor::new("charge", ARGS2, "String")
                    .with_idempotency_key(IdempotencyKey::Argument(0)),
                MethodDescriptor::new("fresh", &[], "()")
                    .with_idempotency_key(IdempotencyKey::Generated),
                MethodDescriptor::new("apply", ARGS2, "()").with_ordered_by(1),
            ],
        );
        let params = KEYED.url_params();
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("charge.idempotency"), Some("0"));
        assert_eq!(get("fresh.idempotency"), Some("generated"));
        assert_eq!(get("apply.ordered"), Some("1"));
        assert_eq!(get("apply.loadbalance"), Some("consistenthash"));
        assert_eq!(get("apply.hash.arguments"), Some("1"));
        assert_eq!(get("charge.loadbalance"), None);
        // A user's balancer for the method wins over the declared one.
        let url = Url::parse("consumer://h/org.example.Pay?apply.loadbalance=random").expect("url");
        assert_eq!(
            KEYED.apply_to(&url).param("apply.loadbalance"),
            Some("random")
        );
        // The client attaches the key: the argument's text, or a fresh one per call.
        let core =
            ClientCore::with_service_key(Arc::new(Skeleton::new(NoServer)), KEYED.service_key());
        let inv = core.invocation(&KEYED.methods()[0], Value::typed(("o-9".to_string(), 5u64)));
        assert_eq!(crate::idempotency::key_of(&inv), Some("\"o-9\""));
        assert!(
            !inv.is_idempotent(),
            "a key is not a declaration of idempotency"
        );
        let a = core.invocation(&KEYED.methods()[1], Value::typed(()));
        let b = core.invocation(&KEYED.methods()[1], Value::typed(()));
        assert_ne!(
            crate::idempotency::key_of(&a),
            crate::idempotency::key_of(&b)
        );
        assert_eq!(
            crate::idempotency::key_of(&core.invocation(&KEYED.methods()[2], Value::Empty)),
            None
        );
    }

    /// A server with no methods, only to have an invoker to build a client on.
    #[derive(Clone)]
    struct NoServer;

    impl ServiceServer for NoServer {
        fn descriptor() -> &'static ServiceDescriptor {
            DESC
        }

        async fn call(&self, method: &'static MethodDescriptor, _: Value) -> Result<Response> {
            Err(DESC.method_not_found(method.name()))
        }
    }

    /// The skeleton takes the declaration the protocol recorded on the call only when it is
    /// one of its own service's; another service's is ignored and the method found by name.
    #[tokio::test]
    async fn a_recorded_declaration_is_taken_only_from_the_skeletons_own_service() {
        static FOREIGN: &[MethodDescriptor] = &[MethodDescriptor::new("other", &[], "()")];
        let skeleton = NoServer.into_invoker();
        let own = &NoServer::descriptor().methods()[0];
        let mut call = Invocation::new(DESC.service_key(), "greet", Value::Empty);
        call.set_method_descriptor(own);
        let e = skeleton.invoke(call).await.expect_err("no server");
        assert!(e.message().contains("'greet'"), "{e}");
        let mut call = Invocation::new(DESC.service_key(), "hello", Value::Empty);
        call.set_method_descriptor(&FOREIGN[0]);
        let e = skeleton.invoke(call).await.expect_err("no server");
        assert!(e.message().contains("'hello'"), "{e}");
        assert!(!e.message().contains("'other'"), "{e}");
    }

    #[test]
    fn user_settings_win_over_declared_defaults() {
        let url = Url::parse("dubbo://h:1/org.example.Greeter?greet.timeout=50").expect("url");
        let merged = DESC.apply_to(&url);
        assert_eq!(merged.param("greet.timeout"), Some("50"));
        assert_eq!(merged.param(keys::VERSION), Some("1.0.0"));
        assert_eq!(merged.method_param("greet", keys::IDEMPOTENT), Some("true"));
    }

    #[test]
    fn signature_and_unknown_method_message() {
        assert_eq!(
            DESC.methods()[0].signature(),
            "greet(name: String) -> Result<String, GreetError>"
        );
        let e = DESC.method_not_found("bye");
        assert_eq!(e.kind(), ErrorKind::MethodNotFound);
        assert!(e.message().contains("org.example.Greeter:1.0.0"), "{e}");
        assert!(e.message().contains("'bye'"), "{e}");
        assert!(e.message().contains("greet, hello"), "{e}");
    }

    #[test]
    fn wrong_arguments_name_the_method() {
        let e = decode_args::<(String,)>(&DESC.methods()[0], Value::typed((1u8, 2u8)))
            .expect_err("wrong shape");
        assert_eq!(e.kind(), ErrorKind::Codec);
        assert!(e.message().contains("greet(name: String)"), "{e}");
    }
}
