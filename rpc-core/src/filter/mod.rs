//! Filters: interceptors around every call, on the consumer and on the provider side.
//!
//! A [`Filter`] receives the invocation and the next invoker. Which filters run is decided per
//! URL by the SPI's activation rules (see
//! [`ExtensionLoader::activated`](crate::extension::ExtensionLoader::activated)): filters
//! registered with an [`Activate`](crate::extension::Activate) for a side run by default in
//! ascending order; `filter=-name` removes one, `filter=name` adds one, `default` places the
//! defaults.
//!
//! # Built-in filters, outermost first
//!
//! ```text
//! consumer (order)                         provider (order)
//!  metrics          -20000  calls, errors   panic            -30000  panic -> Biz error
//!  consumercontext  -15000  inherit ctx,    providermetrics  -20000  calls, errors
//!                           traceparent,    accesslog        -19500  [accesslog=true]
//!                           rpc.client span context          -19000  deadline from budget,
//!  mock             -12000  mock= degrade                            RpcContext, rpc.server
//!  timeout          -10000  deadline        token            -17000  [token]
//!  deadline          -9000  send budget     tps              -16000  [tps] per method+app
//!  actives           -8500  [actives]       executes         -15000  [executes]
//!  circuitbreaker    -8000  per provider    isolation        -14000  [isolation]
//!  consumertoken     -6000  [token]           |
//!    |                                       skeleton -> the user's implementation
//!  protocol invoker
//! ```
//!
//! `[key]`: active by default only when the URL has that key (name the filter in `filter=` to
//! activate it when only a method-level key such as `greet.executes` is set). `mock` is always
//! in the chain, so a method-level `greet.mock` works alone; without a `mock` key it only
//! passes the call on. Each module's docs give the keys and the exact behaviour. Every filter
//! is one shared instance; state (counters, breakers, buckets) is kept per service, method
//! and, on the consumer, provider address, and no lock is held across an `.await`.

use std::sync::Arc;

use crate::error::Result;
use crate::extension::{ExtensionPoint, Side};
use crate::invocation::{Invocation, Invoker, Response};
use crate::url::Url;

pub mod accesslog;
pub mod actives;
pub mod circuitbreaker;
pub mod consumer_context;
pub mod consumer_token;
pub mod context;
pub mod deadline;
pub mod executes;
pub mod isolation;
pub mod metrics;
pub mod mock;
pub mod panic;
mod state;
#[cfg(test)]
pub(crate) mod testing;
pub mod timeout;
pub mod token;
pub mod tps;

pub use accesslog::AccessLogFilter;
pub use actives::ActivesFilter;
pub use circuitbreaker::CircuitBreakerFilter;
pub use consumer_context::ConsumerContextFilter;
pub use consumer_token::ConsumerTokenFilter;
pub use context::ContextFilter;
pub use deadline::DeadlineFilter;
pub use executes::ExecutesFilter;
pub use isolation::IsolationFilter;
pub use metrics::MetricsFilter;
pub use mock::{register_fallback, unregister_fallback, MockFilter};
pub use panic::PanicFilter;
pub use timeout::{TimeoutFilter, DEFAULT_TIMEOUT_MS};
pub use token::TokenFilter;
pub use tps::TpsFilter;

/// An interceptor that can inspect or change a call, short-circuit it, or observe its result.
#[async_trait::async_trait]
pub trait Filter: Send + Sync {
    /// Handles `invocation`, normally by calling `next.invoke(invocation)`.
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response>;
}

fn _assert_object_safe(_: &dyn Filter) {}

crate::extension_point!(dyn Filter, key = "filter", default = "timeout");

struct FilterInvoker {
    name: &'static str,
    filter: Arc<dyn Filter>,
    next: Arc<dyn Invoker>,
}

// Written out rather than with `#[async_trait]`: the filter's own boxed future is handed on
// as this layer's future, so a layer costs one allocation, not two.
impl Invoker for FilterInvoker {
    fn url(&self) -> &Url {
        self.next.url()
    }

    fn is_available(&self) -> bool {
        self.next.is_available()
    }

    fn invoke<'a, 'f>(&'a self, invocation: Invocation) -> crate::invocation::BoxedCall<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        tracing::trace!(filter = self.name, method = invocation.method(), "filter");
        self.filter.invoke(&*self.next, invocation)
    }

    fn destroy(&self) {
        self.next.destroy();
    }
}

/// Wraps `invoker` in the filters activated for `side` by its URL, first filter outermost.
pub fn build_chain(invoker: Arc<dyn Invoker>, side: Side) -> Result<Arc<dyn Invoker>> {
    let filters = <dyn Filter>::loader().activated(side, invoker.url())?;
    Ok(wrap(invoker, filters))
}

/// Wraps `invoker` in `filters` (first outermost).
pub fn wrap(
    invoker: Arc<dyn Invoker>,
    filters: Vec<(&'static str, Arc<dyn Filter>)>,
) -> Arc<dyn Invoker> {
    filters
        .into_iter()
        .rev()
        .fold(invoker, |next, (name, filter)| {
            Arc::new(FilterInvoker { name, filter, next })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{ServiceKey, Value};
    use std::sync::Mutex;

    /// Records the order filters ran in.
    struct Tagger(&'static str, Arc<Mutex<Vec<&'static str>>>);

    #[async_trait::async_trait]
    impl Filter for Tagger {
        async fn invoke(&self, next: &dyn Invoker, mut inv: Invocation) -> Result<Response> {
            self.1.lock().expect("lock").push(self.0);
            inv.attachments_mut().insert(self.0, "seen");
            next.invoke(inv).await
        }
    }

    struct Echo(Url);

    #[async_trait::async_trait]
    impl Invoker for Echo {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, inv: Invocation) -> Result<Response> {
            let keys: Vec<String> = inv
                .attachments()
                .iter()
                .map(|(k, _)| k.to_string())
                .collect();
            Ok(Response::value(Value::typed(keys)))
        }
    }

    #[tokio::test]
    async fn first_filter_is_outermost() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let url = Url::parse("dubbo://h:1/S").expect("url");
        let chain = wrap(
            Arc::new(Echo(url)),
            vec![
                ("a", Arc::new(Tagger("a", log.clone())) as Arc<dyn Filter>),
                ("b", Arc::new(Tagger("b", log.clone()))),
            ],
        );
        let inv = Invocation::new(ServiceKey::new("S", None, None), "m", Value::Empty);
        let keys: Vec<String> = chain
            .invoke(inv)
            .await
            .expect("ok")
            .into_value()
            .expect("vec");
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(*log.lock().expect("lock"), ["a", "b"]);
    }

    fn active(side: Side, q: &str) -> Vec<&'static str> {
        let url = Url::parse(&format!("dubbo://h:1/S?{q}")).expect("url");
        <dyn Filter>::loader()
            .activated(side, &url)
            .expect("activation")
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn default_chains_in_documented_order() {
        assert_eq!(
            active(Side::Consumer, ""),
            [
                "metrics",
                "consumercontext",
                "mock",
                "timeout",
                "deadline",
                "circuitbreaker"
            ]
        );
        assert_eq!(
            active(Side::Consumer, "mock=force:return%201&actives=2&token=t"),
            [
                "metrics",
                "consumercontext",
                "mock",
                "timeout",
                "deadline",
                "actives",
                "circuitbreaker",
                "consumertoken"
            ]
        );
        assert_eq!(
            active(Side::Provider, ""),
            ["panic", "providermetrics", "context"]
        );
        assert_eq!(
            active(
                Side::Provider,
                "accesslog=true&token=t&tps=5&executes=2&isolation=3"
            ),
            [
                "panic",
                "providermetrics",
                "accesslog",
                "context",
                "token",
                "tps",
                "executes",
                "isolation"
            ]
        );
        assert_eq!(
            active(Side::Provider, "filter=-providermetrics,executes"),
            ["panic", "context", "executes"]
        );
    }

    /// A provider chain built from its URL: an expired call is refused before any inner
    /// filter or the service runs, a wrong token is refused, a good call passes.
    #[tokio::test]
    async fn provider_chain_from_url_enforces_deadline_and_token() {
        use crate::context::{TIMEOUT_ATTACHMENT, TOKEN_ATTACHMENT};
        use crate::error::ErrorKind;
        use crate::filter::testing::{call, Mock};
        let service = Mock::ok("dubbo://h:1/S?token=t0k&executes=4");
        let chain = build_chain(service.clone(), Side::Provider).expect("chain");
        let mut expired = call("S", "m");
        expired.attachments_mut().insert(TIMEOUT_ATTACHMENT, "0");
        expired.attachments_mut().insert(TOKEN_ATTACHMENT, "t0k");
        let e = chain.invoke(expired).await.expect_err("expired");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        let e = chain.invoke(call("S", "m")).await.expect_err("no token");
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert_eq!(service.calls(), 0);
        let mut good = call("S", "m");
        good.attachments_mut().insert(TIMEOUT_ATTACHMENT, "500");
        good.attachments_mut().insert(TOKEN_ATTACHMENT, "t0k");
        chain.invoke(good).await.expect("served");
        assert_eq!(service.calls(), 1);
    }

    /// Both default chains built from URLs, joined by a pass-through "network": the
    /// consumer sends the published token, its budget and its application; the provider
    /// limits per application.
    #[tokio::test]
    async fn consumer_and_provider_chains_work_together() {
        use crate::context::{APPLICATION_ATTACHMENT, TIMEOUT_ATTACHMENT};
        use crate::error::ErrorKind;
        use crate::filter::testing::{call, Mock};
        let provider_url = "dubbo://h:1/S?token=abc&tps=1&tps.burst=2&timeout=700";
        let service = Mock::new(provider_url, |inv| async move {
            let budget = crate::context::RpcContext::current()
                .remaining()
                .expect("deadline from the consumer's budget");
            assert!(budget.as_millis() <= 700, "{budget:?}");
            assert!(inv.deadline().is_some());
            Ok(Response::empty())
        });
        let served = build_chain(service.clone(), Side::Provider).expect("provider chain");
        let network = Mock::new(provider_url, move |inv| {
            let served = served.clone();
            async move { served.invoke(inv).await }
        });
        let consumer = build_chain(network.clone(), Side::Consumer).expect("consumer chain");
        let from = |app: &str| {
            let mut c = call("S", "m");
            c.attachments_mut().insert(APPLICATION_ATTACHMENT, app);
            c
        };
        consumer.invoke(from("a")).await.expect("a 1");
        consumer.invoke(from("a")).await.expect("a 2");
        let e = consumer.invoke(from("a")).await.expect_err("a limited");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        consumer.invoke(from("b")).await.expect("b unaffected");
        assert_eq!(service.calls(), 3);
        let sent = network.last().expect("sent");
        assert!(sent.attachments().get(TIMEOUT_ATTACHMENT).is_some());
    }

    #[test]
    fn timeout_filter_is_a_consumer_default_and_can_be_removed() {
        let on = |q: &str| {
            let url = Url::parse(&format!("consumer://h/S?{q}")).expect("url");
            <dyn Filter>::loader()
                .activated(Side::Consumer, &url)
                .expect("activation")
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert!(on("").contains(&"timeout"));
        assert!(!on("filter=-timeout").contains(&"timeout"));
    }
}
