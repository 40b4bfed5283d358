//! The invocation model: what travels down the consumer stack and what comes back.
//!
//! - [`Invocation`]: service key, method, arguments, attachments, deadline and call flags.
//! - [`Response`]: a [`Outcome`] (value or business error) plus attachments.
//! - [`Value`]: a typed value erased once at the proxy (`Typed`), bytes in a known
//!   serialization (`Encoded`), or nothing (`Empty`). Layers below the proxy never see the
//!   user's types; protocols encode `Typed` values with the serialization the URL chose, and
//!   an in-process call hands the typed value straight to the skeleton.
//! - [`Invoker`]: the object-safe unit every layer composes.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
/// An immutable, reference-counted UTF-8 string: attachment keys and values (re-exported from
/// the `bytestring` crate).
pub use bytestring::ByteString;
use serde::de::DeserializeOwned;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::error::{ErrorKind, Result, RpcError};
use crate::serialize::{self, Serialization};
use crate::url::Url;

pub use crate::service_key::ServiceKey;

/// A value whose type was erased at the proxy or skeleton: serializable by any
/// [`Serialization`], and recoverable by downcasting in-process.
pub trait AnyValue: erased_serde::Serialize + Any + Send + Sync {
    /// Upcast for downcasting back to the concrete type.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// The concrete type's name, for error messages.
    fn type_name(&self) -> &'static str;
    /// Appends the value encoded in `ser` to `out`: as its concrete type in the built-in
    /// formats ([`serialize::encode`]), so that the erasure costs one call, not one per field.
    fn encode_in(&self, ser: &dyn Serialization, out: &mut Vec<u8>) -> Result<()>;
}

impl<T: serde::Serialize + Any + Send + Sync> AnyValue for T {
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn encode_in(&self, ser: &dyn Serialization, out: &mut Vec<u8>) -> Result<()> {
        serialize::encode(ser, self, out)
    }
}

/// Bytes in a known serialization, identified by its wire id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The [`Serialization::id`] the bytes are in.
    pub serialization: u8,
    /// The encoded value.
    pub bytes: Bytes,
}

/// Arguments or a result, in whichever form the layers below have it.
#[derive(Clone)]
pub enum Value {
    /// No value: a one-way call's result, or a failsafe cluster's empty answer.
    Empty,
    /// A typed value from the proxy or skeleton, not encoded yet.
    Typed(Arc<dyn AnyValue>),
    /// An encoded value, from the wire or from a generic (typeless) caller.
    Encoded(Payload),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Empty => f.write_str("Empty"),
            Value::Typed(v) => write!(f, "Typed({})", v.type_name()),
            Value::Encoded(p) => write!(
                f,
                "Encoded(serialization {}, {} bytes)",
                p.serialization,
                p.bytes.len()
            ),
        }
    }
}

impl Value {
    /// Erases a typed value.
    pub fn typed<T: serde::Serialize + Any + Send + Sync>(value: T) -> Self {
        Value::Typed(Arc::new(value))
    }

    /// Encodes the value with `ser` (re-encoding an `Encoded` value in another serialization
    /// goes through a self-describing transcode).
    pub fn encode(&self, ser: &dyn Serialization) -> Result<Payload> {
        match self {
            Value::Encoded(p) if p.serialization == ser.id() => Ok(p.clone()),
            Value::Encoded(p) => {
                let from = serialize::by_id(p.serialization)?;
                let mut out = Vec::new();
                serialize::transcode(from, &p.bytes, ser, &mut out)?;
                Ok(Payload {
                    serialization: ser.id(),
                    bytes: out.into(),
                })
            }
            Value::Typed(v) => {
                let mut out = Vec::new();
                v.encode_in(ser, &mut out)?;
                Ok(Payload {
                    serialization: ser.id(),
                    bytes: out.into(),
                })
            }
            Value::Empty => {
                let mut out = Vec::new();
                serialize::encode(ser, &(), &mut out)?;
                Ok(Payload {
                    serialization: ser.id(),
                    bytes: out.into(),
                })
            }
        }
    }

    /// Recovers a `T`: downcasts a typed value (moving it out when not shared), decodes an
    /// encoded one with the serialization named by its id, and decodes `Empty` as a unit
    /// (so `()` and `Option<_>` accept it).
    pub fn decode<T: DeserializeOwned + Any + Send + Sync>(self) -> Result<T> {
        match self {
            Value::Typed(v) => {
                let any: &dyn Any = &*v;
                if any.is::<T>() && Arc::strong_count(&v) == 1 {
                    // The only reference: move the value out, no encoding at all.
                    if let Ok(arc) = v.clone().into_any().downcast::<T>() {
                        drop(v);
                        if let Ok(t) = Arc::try_unwrap(arc) {
                            return Ok(t);
                        }
                        return Err(RpcError::internal("typed value shared during decode"));
                    }
                }
                // Shared (a retry or fork still holds it), or another type of the same shape
                // (a generic caller): copy through the default serialization.
                let ser = serialize::default_serialization()?;
                let mut out = Vec::new();
                v.encode_in(&*ser, &mut out)?;
                serialize::decode(&*ser, &out).map_err(|e| {
                    RpcError::codec(format!(
                        "a {} handed over in process: {}",
                        crate::error::label_of_type_name(v.type_name()),
                        e.message()
                    ))
                })
            }
            Value::Encoded(p) => {
                let ser = serialize::by_id(p.serialization)?;
                serialize::decode(ser, &p.bytes)
            }
            Value::Empty => serialize::decode_unit::<T>(),
        }
    }
}

/// String key/value pairs that travel with a call (trace context, tokens, tags, ...).
///
/// Kept as a small vector: calls carry a handful, and a linear scan beats hashing at that size.
/// Keys and values are [`ByteString`]s: a literal key (`ByteString::from_static`) costs no
/// allocation, and the pairs a protocol decodes are slices of the received frame, not copies.
/// The vector is shared between copies until one of them changes (copy on write), so handing
/// a call's attachments to its context, or keeping a copy of a call for a retry, copies no
/// strings.
#[derive(Clone, Default)]
pub struct Attachments(Option<Arc<Pairs>>);

/// Pairs kept inside the shared block itself, so that a call's attachments cost one allocation
/// up to this many (what the default filters add); more move to a vector of their own.
const ATTACHMENTS_INLINE: usize = 4;

type Pairs = SmallVec<[(ByteString, ByteString); ATTACHMENTS_INLINE]>;

impl Attachments {
    /// No attachments.
    pub fn new() -> Self {
        Attachments(None)
    }

    /// Empty, with room for `n` pairs (a decoder that knows the count allocates once).
    pub fn with_capacity(n: usize) -> Self {
        Attachments((n > 0).then(|| Arc::new(Pairs::with_capacity(n))))
    }

    /// Attachments of `n` pairs, each taken from `next` in turn (a later value of a key
    /// replaces an earlier one), with room for `extra` more: the shared block is made once and
    /// filled in place, as a decoder that knows the count wants. The first
    /// error of `next` is returned as it is.
    pub fn from_pairs<E>(
        n: usize,
        extra: usize,
        mut next: impl FnMut() -> std::result::Result<(ByteString, ByteString), E>,
    ) -> std::result::Result<Self, E> {
        if n == 0 {
            return Ok(Attachments(None));
        }
        // Filled where it is shared: the inline pairs are not moved into the block after.
        let mut block = Arc::new(Pairs::with_capacity(n + extra));
        let pairs = Arc::make_mut(&mut block);
        for _ in 0..n {
            let (key, value) = next()?;
            match pairs.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => pairs.push((key, value)),
            }
        }
        Ok(Attachments(Some(block)))
    }

    fn pairs(&self) -> &[(ByteString, ByteString)] {
        self.0.as_deref().map_or(&[], Pairs::as_slice)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs()
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// Sets `key` (replacing an earlier value). A `&str` is copied; a `String` is taken over;
    /// a [`ByteString`] is shared.
    pub fn insert(&mut self, key: impl Into<ByteString>, value: impl Into<ByteString>) {
        let key = key.into();
        let value = value.into();
        let pairs = Arc::make_mut(self.0.get_or_insert_with(|| Arc::new(Pairs::new())));
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key, value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<ByteString> {
        let i = self.pairs().iter().position(|(k, _)| &**k == key)?;
        let pairs = Arc::make_mut(self.0.as_mut()?);
        Some(pairs.swap_remove(i).1)
    }

    /// The pairs in insertion order (until a removal).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().iter().map(|(k, v)| (&**k, &**v))
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        self.pairs().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }
}

impl PartialEq for Attachments {
    fn eq(&self, other: &Self) -> bool {
        self.pairs() == other.pairs()
    }
}

impl Eq for Attachments {}

impl fmt::Debug for Attachments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<ByteString>, V: Into<ByteString>> FromIterator<(K, V)> for Attachments {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut a = Attachments::new();
        for (k, v) in iter {
            a.insert(k, v);
        }
        a
    }
}

/// Runs `call` until `deadline`; `None` when the deadline came first. A call that is done
/// on its first poll (most calls, once their arguments are decoded) arms no timer and does
/// not look up the runtime's timer; one that has to wait gets a timer then, as
/// `tokio::time::timeout_at` would have given it from the start.
pub async fn within_deadline<F: std::future::Future>(
    deadline: Instant,
    call: F,
) -> Option<F::Output> {
    let mut call = std::pin::pin!(call);
    match first_poll(call.as_mut()).await {
        std::task::Poll::Ready(out) => Some(out),
        // Boxed: a timer is large, and kept inline it would grow the future of every call,
        // most of which never wait.
        std::task::Poll::Pending => Box::pin(tokio::time::timeout_at(deadline, call)).await.ok(),
    }
}

/// Runs `work` for at most `limit` from when it first has to wait; `None` when the limit
/// came first. Like [`within_deadline`], work done on its first poll (a write the socket
/// has room for) neither reads the clock nor arms a timer.
pub(crate) async fn within_limit<F: std::future::Future>(
    limit: std::time::Duration,
    work: F,
) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    match first_poll(work.as_mut()).await {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => tokio::time::timeout(limit, work).await.ok(),
    }
}

/// Polls `f` once, with the waker of the task awaiting this.
async fn first_poll<F: std::future::Future>(
    mut f: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx))).await
}

/// Runs a provider's `call` (an invoker's future) until `deadline` (`None`: to its end), as a
/// protocol server does for each request: a panic (in a filter or the service) becomes an
/// error, and a call still running at the deadline is dropped and answered with a timeout
/// saying `late`.
pub async fn serve(
    call: BoxedCall<'_>,
    deadline: Option<Instant>,
    late: &'static str,
) -> Result<Response> {
    let call = crate::error::catch_panics(call);
    match deadline {
        Some(d) => within_deadline(d, call)
            .await
            .unwrap_or_else(|| Err(RpcError::timeout(late))),
        None => call.await,
    }
}

/// One call on its way down the consumer stack (or up the provider stack).
///
/// Cheap to clone: retries and forks clone it.
#[derive(Clone, Debug)]
pub struct Invocation {
    service: ServiceKey,
    method: ByteString,
    args: Value,
    attachments: Attachments,
    deadline: Option<Instant>,
    oneway: bool,
    idempotent: bool,
    parameter_types: Option<ByteString>,
    method_descriptor: Option<&'static crate::proxy::MethodDescriptor>,
}

impl Invocation {
    /// A call of `method` on `service` with `args` (a typed tuple, or encoded bytes).
    pub fn new(service: ServiceKey, method: impl Into<Cow<'static, str>>, args: Value) -> Self {
        let method = match method.into() {
            Cow::Borrowed(name) => ByteString::from_static(name),
            Cow::Owned(name) => ByteString::from(name),
        };
        Self::with_method(service, method, args)
    }

    /// Like [`Invocation::new`] with a method name that is already shared, such as a slice of
    /// a received frame: the decoding protocol copies nothing.
    pub fn with_method(service: ServiceKey, method: ByteString, args: Value) -> Self {
        Invocation {
            service,
            method,
            args,
            attachments: Attachments::new(),
            deadline: None,
            oneway: false,
            idempotent: false,
            parameter_types: None,
            method_descriptor: None,
        }
    }

    /// The declared method, when the call comes from a generated client: what a protocol
    /// that encodes by type (Triple's protobuf mode) needs to know about the arguments.
    pub fn method_descriptor(&self) -> Option<&'static crate::proxy::MethodDescriptor> {
        self.method_descriptor
    }

    /// Records the declared method (see [`Invocation::method_descriptor`]).
    pub fn set_method_descriptor(&mut self, method: &'static crate::proxy::MethodDescriptor) {
        self.method_descriptor = Some(method);
    }

    /// The Java parameter descriptor of the method (`Ljava/lang/String;I`), when known: set
    /// by generated clients from `#[service]`, and by the `dubbo` protocol from a hessian2
    /// request. A hessian2 request without one describes the arguments by their values.
    pub fn parameter_types(&self) -> Option<&str> {
        self.parameter_types.as_deref()
    }

    /// Sets the Java parameter descriptor (see [`Invocation::parameter_types`]).
    pub fn set_parameter_types(&mut self, types: impl Into<ByteString>) {
        self.parameter_types = Some(types.into());
    }

    /// The service key.
    pub fn service(&self) -> &ServiceKey {
        &self.service
    }

    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The arguments (a tuple of the method's parameters).
    pub fn args(&self) -> &Value {
        &self.args
    }

    /// Takes the arguments out, leaving [`Value::Empty`].
    pub fn take_args(&mut self) -> Value {
        std::mem::replace(&mut self.args, Value::Empty)
    }

    /// The attachments.
    pub fn attachments(&self) -> &Attachments {
        &self.attachments
    }

    /// The attachments, for filters that add to them.
    pub fn attachments_mut(&mut self) -> &mut Attachments {
        &mut self.attachments
    }

    /// The instant after which the caller no longer waits, if set.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Sets the deadline; an earlier existing deadline is kept (nested budgets only shrink).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(match self.deadline {
            Some(d) if d < deadline => d,
            _ => deadline,
        });
    }

    /// Sets the deadline to `timeout` from now (keeping an earlier one).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.set_deadline(Instant::now() + timeout);
    }

    /// Time left before the deadline (`None` without a deadline, zero when passed).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the caller expects no response.
    pub fn is_oneway(&self) -> bool {
        self.oneway
    }

    /// Marks the call fire-and-forget.
    pub fn set_oneway(&mut self, oneway: bool) {
        self.oneway = oneway;
    }

    /// Whether the method was declared idempotent (safe to retry after a failure that may
    /// have reached the provider).
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Declares the call idempotent.
    pub fn set_idempotent(&mut self, idempotent: bool) {
        self.idempotent = idempotent;
    }

    /// Adds the service and method to an error about this call.
    pub fn annotate(&self, e: RpcError) -> RpcError {
        annotate(e, &self.service, &self.method)
    }

    /// What names this call in errors, kept by a layer that hands the invocation on and may
    /// have to annotate an error afterwards: cheaper than cloning the whole invocation.
    pub fn label(&self) -> CallLabel {
        CallLabel {
            service: self.service.clone(),
            method: self.method.clone(),
        }
    }
}

fn annotate(e: RpcError, service: &ServiceKey, method: &str) -> RpcError {
    e.with_service(service.to_string()).with_method(method)
}

/// `e`, from a call of the provider at `provider` inside a cluster, naming the call's service
/// and method and the provider's address (each unless `e` names one already).
pub fn member_error(label: &CallLabel, provider: &Url, e: RpcError) -> RpcError {
    label.annotate(e).with_provider(provider.address())
}

/// The service and method of a call, for annotating errors; see [`Invocation::label`].
#[derive(Clone, Debug)]
pub struct CallLabel {
    service: ServiceKey,
    method: ByteString,
}

impl CallLabel {
    /// Adds the service and method to an error about this call.
    pub fn annotate(&self, e: RpcError) -> RpcError {
        annotate(e, &self.service, &self.method)
    }
}

/// What a call produced: a value or the service's declared business error.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The method's `Ok` value (or its plain return value).
    Value(Value),
    /// The method's `Err(E)`: a business error that is a value, never retried.
    BizError(Value),
}

/// A completed call.
#[derive(Clone, Debug)]
pub struct Response {
    /// Value or business error.
    pub outcome: Outcome,
    /// Attachments the provider sent back.
    pub attachments: Attachments,
}

impl Response {
    /// A successful response.
    pub fn value(value: Value) -> Self {
        Response {
            outcome: Outcome::Value(value),
            attachments: Attachments::new(),
        }
    }

    /// A business-error response.
    pub fn biz_error(error: Value) -> Self {
        Response {
            outcome: Outcome::BizError(error),
            attachments: Attachments::new(),
        }
    }

    /// An empty response (one-way calls, failsafe).
    pub fn empty() -> Self {
        Self::value(Value::Empty)
    }

    /// Decodes the value of a method returning plain `T`; a business error here means the
    /// provider and consumer disagree about the signature.
    pub fn into_value<T: DeserializeOwned + Any + Send + Sync>(self) -> Result<T> {
        match self.outcome {
            Outcome::Value(v) => v.decode(),
            Outcome::BizError(_) => Err(RpcError::new(
                ErrorKind::Codec,
                "the provider returned a business error for a method that declares none",
            )),
        }
    }

    /// Decodes the outcome of a method returning `Result<T, E>`.
    pub fn into_result<
        T: DeserializeOwned + Any + Send + Sync,
        E: DeserializeOwned + Any + Send + Sync,
    >(
        self,
    ) -> Result<std::result::Result<T, E>> {
        match self.outcome {
            Outcome::Value(v) => Ok(Ok(v.decode()?)),
            Outcome::BizError(e) => Ok(Err(e.decode()?)),
        }
    }
}

/// The unit every layer composes: something that can perform an [`Invocation`].
///
/// The future an [`Invoker::invoke`] (or a filter) returns, boxed: what a layer that only
/// forwards a call can hand on as its own future without boxing it again.
pub type BoxedCall<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response>> + Send + 'a>>;

/// A protocol's remote reference, a cluster over a directory, a filter wrapping the next
/// invoker, and a service skeleton are all invokers.
#[async_trait::async_trait]
pub trait Invoker: Send + Sync {
    /// The URL describing this invoker (a provider URL for remote references).
    fn url(&self) -> &Url;

    /// Whether it can take calls now (a connected client, a non-empty directory).
    fn is_available(&self) -> bool {
        true
    }

    /// The invoker whose [`is_available`](Invoker::is_available) answer this one passes on
    /// unchanged (a filter layer asks the invoker it wraps), so that a directory, which asks
    /// every provider on every call, asks that one directly instead of through each layer.
    /// `None` (the default): this invoker answers itself.
    fn availability_source(&self) -> Option<Arc<dyn Invoker>> {
        None
    }

    /// Why it cannot take calls, when it knows (a remote reference: why its connection closed
    /// or its last connection attempt failed), for the error of a call that found no
    /// available provider. The default: `None`.
    fn unavailable_reason(&self) -> Option<String> {
        None
    }

    /// Performs the call.
    async fn invoke(&self, invocation: Invocation) -> Result<Response>;

    /// Performs the call in a future that keeps the invoker alive itself: what a protocol
    /// server that may move a started call into a task of its own needs. The default wraps
    /// [`Invoker::invoke`]; a layer that runs its call in a future of its own overrides it to
    /// need no second box.
    fn invoke_owned(self: Arc<Self>, invocation: Invocation) -> BoxedCall<'static>
    where
        Self: 'static,
    {
        Box::pin(async move { self.invoke(invocation).await })
    }

    /// Performs a cluster's call of this invoker as one of its providers: the returned future
    /// keeps the invoker alive itself, so a cluster strategy that neither retries nor needs to
    /// know which provider answered hands it on as its own future. An error of the call names
    /// the service, the method and this invoker's address ([`member_error`]). The default
    /// wraps [`Invoker::invoke`]; a layer that runs its call in a future of its own overrides
    /// it to need no second box.
    fn invoke_as_member(self: Arc<Self>, invocation: Invocation) -> BoxedCall<'static>
    where
        Self: 'static,
    {
        Box::pin(async move {
            let label = invocation.label();
            let result = self.invoke(invocation).await;
            result.map_err(|e| member_error(&label, self.url(), e))
        })
    }

    /// Whether this invoker keeps the invocation's deadline itself: it ends the call with
    /// [`ErrorKind::Timeout`] once the deadline passes, and sends the provider the remaining
    /// budget. The `timeout` filter then arms no timer of its own and the `deadline` filter
    /// is left out of the chain. `false` (the default) is always safe.
    fn enforces_deadline(&self) -> bool {
        false
    }

    /// The metadata of the service behind this invoker, when it is (or wraps) a generated
    /// skeleton: what a protocol that decodes by type (Triple's protobuf mode) consults.
    /// Layers that wrap another invoker hand on its answer.
    fn descriptor(&self) -> Option<&'static crate::proxy::ServiceDescriptor> {
        None
    }

    /// Releases resources (connections); later calls fail.
    fn destroy(&self) {}
}

fn _assert_object_safe(_: &dyn Invoker) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_from_pairs_keep_the_last_value_of_a_key_and_stop_at_an_error() {
        let mut wire = vec![("a", "1"), ("b", "2"), ("a", "3")].into_iter();
        let a = Attachments::from_pairs(3, 1, || {
            let (k, v) = wire.next().ok_or("short")?;
            Ok::<_, &str>((ByteString::from(k), ByteString::from(v)))
        })
        .expect("pairs");
        assert_eq!(a.iter().collect::<Vec<_>>(), [("a", "3"), ("b", "2")]);
        assert!(Attachments::from_pairs(0, 4, || Err("never read"))
            .expect("none")
            .is_empty());
        let mut read = 0;
        let e = Attachments::from_pairs(5, 0, || {
            read += 1;
            if read == 2 {
                Err("bad pair")
            } else {
                Ok((ByteString::from("k"), ByteString::from("v")))
            }
        })
        .expect_err("stops");
        assert_eq!((e, read), ("bad pair", 2));
    }

    #[tokio::test(start_paused = true)]
    async fn within_deadline_times_out_only_calls_that_wait_past_it() {
        let start = Instant::now();
        let past = start - Duration::from_millis(1);
        // Done on the first poll: its result, even with the deadline gone.
        assert_eq!(within_deadline(past, async { 7 }).await, Some(7));
        // Waits, and finishes before the deadline.
        let soon = within_deadline(start + Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            8
        });
        assert_eq!(soon.await, Some(8));
        // Waits past it: given up at the deadline, not later.
        let deadline = Instant::now() + Duration::from_millis(100);
        let late = within_deadline(deadline, std::future::pending::<()>()).await;
        assert_eq!(late, None);
        assert_eq!(Instant::now(), deadline);
    }

    /// Work done at its first poll needs no timer at all (this runtime has none: arming one
    /// would panic); work that waits is limited from when it first waited.
    #[test]
    fn within_limit_arms_a_timer_only_for_work_that_waits() {
        let no_timers = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let done = no_timers.block_on(within_limit(Duration::from_millis(1), async { 7 }));
        assert_eq!(done, Some(7));

        let timers = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        timers.block_on(async {
            let waits = within_limit(Duration::from_millis(50), async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                8
            });
            assert_eq!(waits.await, Some(8));
            let start = Instant::now();
            let stuck = within_limit(Duration::from_millis(100), std::future::pending::<()>());
            assert_eq!(stuck.await, None);
            assert_eq!(Instant::now(), start + Duration::from_millis(100));
        });
    }

    #[test]
    fn service_keys_compare_and_hash_by_text() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let a = ServiceKey::new("org.Demo", Some("g"), Some("1.0"));
        let same_text = ServiceKey::new("org.Demo", Some("g"), Some("1.0"));
        assert_eq!(a, a.clone());
        assert_eq!(a, same_text);
        assert_eq!(hasher.hash_one(&a), hasher.hash_one(&same_text));
        assert_ne!(a, ServiceKey::new("org.Demo", Some("g"), None));
        assert_ne!(a, ServiceKey::new("org.Demo", None, Some("1.0")));
        assert_ne!(a, ServiceKey::new("org.Other", Some("g"), Some("1.0")));
    }
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }

    /// Copies share their pairs until one changes; a change never shows in another copy.
    #[test]
    fn attachment_copies_are_independent() {
        let mut a = Attachments::new();
        a.insert("k", "1");
        let mut b = a.clone();
        b.insert("k", "2");
        b.insert("j", "3");
        assert_eq!(a.get("k"), Some("1"));
        assert_eq!(a.len(), 1);
        assert_eq!(b.get("k"), Some("2"));
        let c = b.clone();
        assert_eq!(b.remove("j"), Some(ByteString::from_static("3")));
        assert_eq!(c.get("j"), Some("3"));
        assert_eq!(b.remove("absent"), None);
        assert_eq!(b.remove("k"), Some(ByteString::from_static("2")));
        assert!(b.is_empty());
        assert_eq!(b, Attachments::new());
    }

    #[test]
    fn service_key_formats_like_dubbo() {
        assert_eq!(ServiceKey::new("a.B", None, None).to_string(), "a.B");
        assert_eq!(
            ServiceKey::new("a.B", Some("g"), Some("1.0")).to_string(),
            "g/a.B:1.0"
        );
        assert_eq!(
            ServiceKey::new("a.B", Some(""), Some("")).to_string(),
            "a.B"
        );
    }

    #[test]
    fn typed_value_moves_out_without_encoding() {
        let v = Value::typed(Point { x: 1, y: 2 });
        assert_eq!(
            v.decode::<Point>().expect("same type"),
            Point { x: 1, y: 2 }
        );
    }

    #[test]
    fn shared_typed_value_is_copied() {
        let v = Value::typed(Point { x: 1, y: 2 });
        let keep = v.clone();
        assert_eq!(v.decode::<Point>().expect("copy"), Point { x: 1, y: 2 });
        drop(keep);
    }

    #[test]
    fn typed_value_of_same_shape_decodes_through_bytes() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Other {
            x: i32,
            y: i32,
        }
        let v = Value::typed(Point { x: 3, y: 4 });
        assert_eq!(
            v.decode::<Other>().expect("same shape"),
            Other { x: 3, y: 4 }
        );
        let e = Value::typed(5u8)
            .decode::<Point>()
            .expect_err("wrong shape");
        assert_eq!(e.kind(), ErrorKind::Codec);
    }

    #[test]
    fn encoded_value_round_trips_in_every_builtin_serialization() {
        for name in ["msgpack", "json"] {
            let ser = crate::extension::get::<dyn Serialization>(name).expect(name);
            let p = Value::typed(Point { x: 5, y: 6 })
                .encode(&*ser)
                .expect("encode");
            assert_eq!(p.serialization, ser.id());
            let back = Value::Encoded(p).decode::<Point>().expect("decode");
            assert_eq!(back, Point { x: 5, y: 6 });
        }
    }

    #[test]
    fn encoded_value_transcodes_between_serializations() {
        let json = crate::extension::get::<dyn Serialization>("json").expect("json");
        let msgpack = crate::extension::get::<dyn Serialization>("msgpack").expect("msgpack");
        let p = Value::Encoded(Payload {
            serialization: json.id(),
            bytes: Bytes::from_static(br#"{"x":7,"y":8}"#),
        });
        let m = p.encode(&*msgpack).expect("transcode");
        assert_eq!(m.serialization, msgpack.id());
        assert_eq!(
            Value::Encoded(m).decode::<Point>().expect("decode"),
            Point { x: 7, y: 8 }
        );
    }

    #[test]
    fn empty_decodes_as_unit_and_none() {
        Value::Empty.decode::<()>().expect("unit");
        assert_eq!(Value::Empty.decode::<Option<u32>>().expect("none"), None);
        assert!(Value::Empty.decode::<u32>().is_err());
    }

    #[test]
    fn attachments_replace_and_remove() {
        let mut a: Attachments = [("k", "1"), ("t", "x")].into_iter().collect();
        a.insert("k", "2");
        assert_eq!(a.get("k"), Some("2"));
        assert_eq!(a.len(), 2);
        assert_eq!(a.remove("k").as_deref(), Some("2"));
        assert_eq!(a.get("k"), None);
    }

    #[tokio::test]
    async fn nested_deadlines_only_shrink() {
        let mut inv = Invocation::new(ServiceKey::new("S", None, None), "m", Value::Empty);
        inv.set_timeout(Duration::from_millis(100));
        let first = inv.deadline().expect("set");
        inv.set_timeout(Duration::from_secs(10));
        assert_eq!(inv.deadline(), Some(first));
        inv.set_timeout(Duration::from_millis(10));
        assert!(inv.deadline().expect("set") < first);
        assert!(inv.remaining().expect("set") <= Duration::from_millis(10));
    }

    #[test]
    fn business_error_and_value_decode_separately() {
        let ok = Response::value(Value::typed(1u32));
        assert_eq!(ok.into_result::<u32, String>().expect("decoded"), Ok(1));
        let err = Response::biz_error(Value::typed("nope".to_string()));
        assert_eq!(
            err.into_result::<u32, String>().expect("decoded"),
            Err("nope".to_string())
        );
        let e = Response::biz_error(Value::typed(1u8))
            .into_value::<u32>()
            .expect_err("mismatch");
        assert_eq!(e.kind(), ErrorKind::Codec);
    }
}
