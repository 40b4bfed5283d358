//! Scripted mock invokers for filter tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::invocation::{Invocation, Invoker, Response, ServiceKey, Value};
use crate::url::Url;

type Script =
    dyn Fn(Invocation) -> Pin<Box<dyn Future<Output = Result<Response>> + Send>> + Send + Sync;

/// An invoker that counts calls, remembers what it saw and answers by a script.
pub(crate) struct Mock {
    url: Url,
    calls: AtomicUsize,
    seen: Mutex<Vec<Invocation>>,
    script: Box<Script>,
}

impl Mock {
    /// Answers every call with the script's result.
    pub(crate) fn new<F, Fut>(url: &str, script: F) -> Arc<Mock>
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        Arc::new(Mock {
            url: Url::parse(url).expect("test url"),
            calls: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            script: Box::new(move |inv| Box::pin(script(inv))),
        })
    }

    /// Answers every call with an empty value.
    pub(crate) fn ok(url: &str) -> Arc<Mock> {
        Mock::new(url, |_| async { Ok(Response::empty()) })
    }

    /// How many calls reached it.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The last invocation it saw.
    pub(crate) fn last(&self) -> Option<Invocation> {
        self.seen.lock().expect("lock").last().cloned()
    }
}

#[async_trait::async_trait]
impl Invoker for Mock {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Response> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().expect("lock").push(invocation.clone());
        (self.script)(invocation).await
    }
}

/// A call of `method` on service `service`.
pub(crate) fn call(service: &str, method: &'static str) -> Invocation {
    Invocation::new(ServiceKey::new(service, None, None), method, Value::Empty)
}

/// What a [`Capture`] subscriber saw: span names and events, each with its fields as text.
#[derive(Default, Debug)]
pub(crate) struct Captured {
    /// `(span name, "field=value ...")`.
    pub(crate) spans: Vec<(String, String)>,
    /// `(target, "field=value ...")`.
    pub(crate) events: Vec<(String, String)>,
}

/// A minimal `tracing` subscriber that records every span and event.
pub(crate) struct Capture(pub(crate) Arc<Mutex<Captured>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut f = Fields(String::new());
        span.record(&mut f);
        let mut c = self.0.lock().expect("lock");
        c.spans.push((span.metadata().name().to_string(), f.0));
        tracing::span::Id::from_u64(c.spans.len() as u64)
    }
    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut f = Fields(String::new());
        values.record(&mut f);
        let mut c = self.0.lock().expect("lock");
        let slot = usize::try_from(id.into_u64())
            .ok()
            .and_then(|i| i.checked_sub(1));
        if let Some(span) = slot.and_then(|i| c.spans.get_mut(i)) {
            span.1.push_str(&f.0);
        }
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.0
            .lock()
            .expect("lock")
            .events
            .push((event.metadata().target().to_string(), f.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs the future made by `make` on a fresh current-thread runtime with a [`Capture`]
/// subscriber as this thread's default, and returns its output and what it captured.
///
/// `tracing` caches per call site whether any subscriber is interested, and a call site
/// first hit by a test on another thread at the same moment can be cached as uninteresting.
/// So the future runs twice: the first run registers every call site, the cache is rebuilt
/// while the capturing subscriber exists, and only the second run is recorded.
pub(crate) fn capture<F: Future>(make: impl Fn() -> F) -> (F::Output, Captured) {
    let seen = Arc::new(Mutex::new(Captured::default()));
    let dispatch = tracing::Dispatch::new(Capture(seen.clone()));
    let out = tracing::dispatcher::with_default(&dispatch, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(make());
        tracing::callsite::rebuild_interest_cache();
        *seen.lock().expect("lock") = Captured::default();
        rt.block_on(make())
    });
    let captured = std::mem::take(&mut *seen.lock().expect("lock"));
    (out, captured)
}
