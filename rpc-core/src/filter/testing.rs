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
