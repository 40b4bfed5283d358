//! The one error type of the framework.
//!
//! Every layer reports failures as an [`RpcError`] with an [`ErrorKind`]. Retry decisions are
//! taken from the kind alone ([`RpcError::is_retriable`]); a business error returned by the
//! user's service (`Err(E)` of a `Result<T, E>` method) is *not* an `RpcError`: it travels as a
//! value and reaches the caller as `E`.

use std::fmt;

/// What went wrong, coarse enough to decide on retries and to map to wire status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The call did not complete within its timeout or deadline.
    Timeout,
    /// No provider is available for the service (empty directory, all routed away).
    NoProvider,
    /// The connection failed, was refused, or died while the call was pending.
    Network,
    /// A frame or a value could not be encoded or decoded.
    Codec,
    /// The provider does not export the requested service.
    ServiceNotFound,
    /// The service exists but has no such method.
    MethodNotFound,
    /// The provider refused the caller (missing or wrong token).
    Unauthorized,
    /// A concurrency or rate limit rejected the call.
    LimitExceeded,
    /// A circuit breaker is open and rejected the call without trying.
    CircuitOpen,
    /// The provider's service code failed in a way that is not a declared business error
    /// (for example it panicked).
    Biz,
    /// The configuration is wrong: an unknown extension name or key, a value that does not
    /// parse, a contradictory setting. Fixed by the user, not by a retry.
    Config,
    /// A bug inside the framework or a broken invariant (a poisoned lock, a task that died).
    Internal,
}

impl ErrorKind {
    /// Every kind, for code that maps all of them (wire status, metrics labels).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Timeout,
        ErrorKind::NoProvider,
        ErrorKind::Network,
        ErrorKind::Codec,
        ErrorKind::ServiceNotFound,
        ErrorKind::MethodNotFound,
        ErrorKind::Unauthorized,
        ErrorKind::LimitExceeded,
        ErrorKind::CircuitOpen,
        ErrorKind::Biz,
        ErrorKind::Config,
        ErrorKind::Internal,
    ];

    /// The kind whose [`ErrorKind::as_str`] is `name`.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A short lowercase name, stable for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::NoProvider => "no_provider",
            ErrorKind::Network => "network",
            ErrorKind::Codec => "codec",
            ErrorKind::ServiceNotFound => "service_not_found",
            ErrorKind::MethodNotFound => "method_not_found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Biz => "service_error",
            ErrorKind::Config => "config",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether trying another provider can help. The call may still have run on the provider
    /// (a timeout), which is why failover additionally requires an idempotent method.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout
                | ErrorKind::Network
                | ErrorKind::ServiceNotFound
                | ErrorKind::LimitExceeded
                | ErrorKind::CircuitOpen
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The boxed body of an [`RpcError`]; boxed so that `Result<T, RpcError>` stays one word wide.
#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    service: Option<String>,
    method: Option<String>,
    provider: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// A framework failure: a kind, a message, and where it happened (service, method, provider).
pub struct RpcError(Box<Inner>);

/// Shorthand used across the crate.
pub type Result<T, E = RpcError> = std::result::Result<T, E>;

// The constructors and `with_*` builders are `#[cold]`: the branch that makes an error is
// then laid out away from the code a successful call runs (BENCHMARKS.md, sixteenth pass:
// about 20 fewer cache lines of code per round trip, little beside what layout moves between
// two builds). A failing call pays a few nanoseconds for it.
impl RpcError {
    /// A new error of `kind` with a human-readable `message`.
    #[cold]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RpcError(Box::new(Inner {
            kind,
            message: message.into(),
            service: None,
            method: None,
            provider: None,
            source: None,
        }))
    }

    /// Shorthand for [`ErrorKind::Internal`].
    #[cold]
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Shorthand for [`ErrorKind::Config`].
    #[cold]
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Shorthand for [`ErrorKind::Codec`].
    #[cold]
    pub fn codec(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Codec, message)
    }

    /// Shorthand for [`ErrorKind::Network`].
    #[cold]
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Network, message)
    }

    /// Shorthand for [`ErrorKind::Timeout`].
    #[cold]
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// Records the service key the failing call was for (kept if already set).
    #[cold]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        if self.0.service.is_none() {
            self.0.service = Some(service.into());
        }
        self
    }

    /// Records the method the failing call was for (kept if already set).
    #[cold]
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        if self.0.method.is_none() {
            self.0.method = Some(method.into());
        }
        self
    }

    /// Records the provider address the failing call went to (kept if already set).
    #[cold]
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        if self.0.provider.is_none() {
            self.0.provider = Some(provider.into());
        }
        self
    }

    /// Attaches the lower-level cause.
    #[cold]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    /// The kind, which decides retries and wire status.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message without the location context.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The service key the call was for, if known.
    pub fn service(&self) -> Option<&str> {
        self.0.service.as_deref()
    }

    /// The method the call was for, if known.
    pub fn method(&self) -> Option<&str> {
        self.0.method.as_deref()
    }

    /// The provider address the call went to, if known.
    pub fn provider(&self) -> Option<&str> {
        self.0.provider.as_deref()
    }

    /// Whether another attempt (on another provider) can succeed; see [`ErrorKind::is_retriable`].
    pub fn is_retriable(&self) -> bool {
        self.0.kind.is_retriable()
    }
}

impl fmt::Debug for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.message)?;
        let mut sep = " (";
        if let Some(s) = &self.0.service {
            write!(f, "{sep}service {s}")?;
            sep = ", ";
        }
        if let Some(m) = &self.0.method {
            write!(f, "{sep}method {m}")?;
            sep = ", ";
        }
        if let Some(p) = &self.0.provider {
            write!(f, "{sep}provider {p}")?;
            sep = ", ";
        }
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Runs `call` with panics caught: the one panic boundary of the framework, used where
/// service code runs (the skeleton) and where a protocol hands a received call to the
/// exported chain (so a panicking filter is caught too). A panic becomes an
/// [`ErrorKind::Biz`] error `the service panicked: <message>`, logged once here; the caller
/// and the connection live on. Polling happens in place, with no task or allocation.
///
/// The panic hook still runs (and prints, by default); state the panicking code shared with
/// other calls may be left half-updated, as with any caught panic.
pub async fn catch_panics<T>(call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| poll_caught(call.as_mut(), cx)).await
}

/// Polls `call` once with a panic caught as [`catch_panics`] catches it: for a caller that
/// polls a call itself, where an `async` wrapper would cost a future of its own. A call that
/// panicked is over (`Ready` with the error) and must not be polled again.
pub(crate) fn poll_caught<F: std::future::Future<Output = Result<T>> + ?Sized, T>(
    call: std::pin::Pin<&mut F>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<T>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.poll(cx)))
        .unwrap_or_else(|payload| std::task::Poll::Ready(Err(panicked(&*payload))))
}

/// The error a caught panic becomes, logged once here.
fn panicked(payload: &(dyn std::any::Any + Send)) -> RpcError {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "service panicked");
    RpcError::new(ErrorKind::Biz, format!("the service panicked: {message}"))
}

/// `T`'s name as a user writes it, for messages: module paths dropped at every level
/// (`Vec<String>`, not `alloc::vec::Vec<alloc::string::String>`).
pub fn type_label<T: ?Sized>() -> String {
    label_of_type_name(std::any::type_name::<T>())
}

/// [`type_label`] of a name `std::any::type_name` returned.
pub fn label_of_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (i, c) in full.char_indices() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            continue;
        }
        push_last_segment(&mut out, &full[segment_start..i]);
        out.push(c);
        segment_start = i + c.len_utf8();
    }
    push_last_segment(&mut out, &full[segment_start..]);
    out
}

fn push_last_segment(out: &mut String, path: &str) {
    out.push_str(path.rsplit("::").next().unwrap_or(path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_become_biz_errors_with_their_message() {
        let e = catch_panics(async { panic!("out of {}", "coffee") as Result<()> })
            .await
            .expect_err("caught");
        assert_eq!(e.kind(), ErrorKind::Biz);
        assert_eq!(e.message(), "the service panicked: out of coffee");
        let e = catch_panics(async { std::panic::panic_any(7u8) as Result<()> })
            .await
            .expect_err("caught");
        assert!(e.message().ends_with("a panic without a message"), "{e}");
        assert_eq!(catch_panics(async { Ok(3) }).await.expect("value"), 3);
    }

    #[test]
    fn type_labels_drop_module_paths_at_every_level() {
        assert_eq!(type_label::<String>(), "String");
        assert_eq!(
            type_label::<Vec<std::collections::HashMap<String, Option<u8>>>>(),
            "Vec<HashMap<String, Option<u8>>>"
        );
        assert_eq!(type_label::<(u8, [String; 2])>(), "(u8, [String; 2])");
        assert_eq!(type_label::<&str>(), "&str");
    }

    #[test]
    fn message_names_service_method_and_provider() {
        let e = RpcError::timeout("no answer after 1000ms")
            .with_service("org.example.Greeter:1.0.0")
            .with_method("greet")
            .with_provider("10.0.0.5:20880");
        assert_eq!(
            e.to_string(),
            "timeout: no answer after 1000ms (service org.example.Greeter:1.0.0, method greet, provider 10.0.0.5:20880)"
        );
    }

    #[test]
    fn first_location_wins() {
        let e = RpcError::network("reset")
            .with_provider("a:1")
            .with_provider("b:2");
        assert_eq!(e.provider(), Some("a:1"));
        assert_eq!(e.to_string(), "network: reset (provider a:1)");
    }

    #[test]
    fn retriable_is_decided_by_kind() {
        assert!(RpcError::network("x").is_retriable());
        assert!(RpcError::timeout("x").is_retriable());
        assert!(RpcError::new(ErrorKind::LimitExceeded, "x").is_retriable());
        assert!(!RpcError::codec("x").is_retriable());
        assert!(!RpcError::new(ErrorKind::Biz, "x").is_retriable());
        assert!(!RpcError::new(ErrorKind::MethodNotFound, "x").is_retriable());
        assert!(!RpcError::new(ErrorKind::Unauthorized, "x").is_retriable());
    }

    #[test]
    fn names_map_back_to_kinds() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("nope"), None);
    }

    #[test]
    fn error_is_one_word() {
        assert_eq!(
            std::mem::size_of::<RpcError>(),
            std::mem::size_of::<usize>()
        );
    }
}
