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
//!                                           protocol server: panics caught (catch_panics)
//!  metrics          -20000  calls, errors   metrics          -20000  calls, errors
//!  context          -15000  inherit ctx,    accesslog        -19500  [accesslog=true]
//!                           traceparent,    context          -19000  deadline from budget,
//!                           rpc.client span                          RpcContext, rpc.server
//!  mock             -12000  mock= degrade
//!  timeout          -10000  deadline        token            -17000  [token]
//!  deadline          -9000  send budget     ordered          -16700  [{m}.ordered]
//!  actives           -8500  [actives]       idempotency      -16500  [{m}.idempotency]
//!  circuitbreaker    -8000  per provider    tps              -16000  [tps] per method+app
//!                                           executes         -15000  [executes]
//!                                           isolation        -14000  [isolation]
//!  token             -6000  [token]           |
//!    |                                       skeleton: panics caught -> the user's code
//!  protocol invoker
//! ```
//!
//! `[key]`: active by default only when the URL has that key (name the filter in `filter=` to
//! activate it when only a method-level key such as `greet.executes` is set); `idempotency`
//! and `ordered` are left out of a chain where no method has theirs (see
//! [`crate::idempotency`] and [`ordered`]). `mock` is
//! activated always, so a method-level `greet.mock` works alone, and is left out of a chain
//! whose URL has no `mock` key at all ([`Filter::applies_to`]); a reference runs it once
//! around its cluster, not around each provider ([`Filter::per_reference`]). `deadline` is
//! left out where the protocol carries the budget itself. Each module's docs give the keys
//! and the exact behaviour. The consumer's `metrics`, `context`, `timeout` and
//! `circuitbreaker`, and the provider's `metrics` and `context`, are [stages](stage):
//! adjacent stages run as one layer, in the order above.
//! Every filter is one shared instance; state (counters, breakers, buckets) is kept per service, method
//! and, on the consumer, provider address, and no lock is held across an `.await`.

use std::sync::Arc;

use crate::config::keys;
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
pub mod live;
pub mod metrics;
pub mod mock;
pub mod ordered;
pub mod stage;
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
pub use live::LiveChain;
pub use metrics::MetricsFilter;
pub use mock::{register_fallback, unregister_fallback, MockFilter};
pub use ordered::OrderedFilter;
pub use stage::{Stage, Ticket};
pub use timeout::{TimeoutFilter, DEFAULT_TIMEOUT_MS};
pub use token::TokenFilter;
pub use tps::TpsFilter;

/// An interceptor that can inspect or change a call, short-circuit it, or observe its result.
#[async_trait::async_trait]
pub trait Filter: Send + Sync {
    /// Handles `invocation`, normally by calling `next.invoke(invocation)`.
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response>;

    /// Whether this filter has anything to do around `next`; asked once, when the chain is
    /// built (an invoker's URL never changes), and a filter that answers `false` is left out
    /// of that chain and costs its calls nothing. The default is `true`.
    fn applies_to(&self, next: &dyn Invoker) -> bool {
        let _ = next;
        true
    }

    /// Whether this filter never holds a call past the invocation's deadline (it does not
    /// wait, or waits at most until the deadline). A chain keeps the deadline itself (see
    /// [`Invoker::enforces_deadline`]) only when every filter in it says so and the invoker
    /// it wraps keeps it. The default, `false`, is always safe.
    fn honors_deadline(&self) -> bool {
        false
    }

    /// Whether this filter runs once per reference, around its cluster (so around all the
    /// attempts of a call), rather than around each provider's invoker. A reference leaves it
    /// out of its providers' chains ([`build_member_chain`]) and wraps its cluster in it
    /// ([`build_reference_chain`]). The default is `false`.
    fn per_reference(&self) -> bool {
        false
    }

    /// The filter to put in the chain around `next` in this one's place, when it has one of
    /// its own: a filter that keeps state per call site hands out a layer that finds the
    /// entries of `next`'s calls without a shared lookup, the state itself still shared.
    /// `None` (the default) means this filter itself.
    fn bind(&self, next: &Arc<dyn Invoker>) -> Option<Arc<dyn Filter>> {
        let _ = next;
        None
    }

    /// This filter as a [`Stage`], when all its work is before and after the call: a chain
    /// then runs it in one layer with the stages next to it ([`wrap`]). `None` (the default)
    /// means it runs as a layer of its own, through [`Filter::invoke`].
    fn as_stage(self: Arc<Self>) -> Option<Arc<dyn Stage>> {
        None
    }

    /// The filter that runs in a chain of `side` in this one's place: a filter that does
    /// different work on the two sides under one name ([`Sided`]) hands out the one for that
    /// side; `None` (the default) means this filter itself.
    fn for_side(&self, side: Side) -> Option<Arc<dyn Filter>> {
        let _ = side;
        None
    }
}

/// One filter name with an implementation per side (`metrics`, `context`, `token`): a
/// chain built for a side ([`build_chain`]) gets that side's filter ([`Filter::for_side`]),
/// so a filter knows which side it runs on and users write one name for both
/// (`filter=-metrics`).
pub struct Sided {
    consumer: Arc<dyn Filter>,
    provider: Arc<dyn Filter>,
}

impl Sided {
    /// The pair: `consumer` for consumer chains, `provider` for provider chains.
    pub fn new(consumer: Arc<dyn Filter>, provider: Arc<dyn Filter>) -> Self {
        Sided { consumer, provider }
    }
}

#[async_trait::async_trait]
impl Filter for Sided {
    /// Only reached when the pair itself is put in a chain by hand ([`wrap`], which knows no
    /// side): it runs as the consumer's filter.
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        self.consumer.invoke(next, invocation).await
    }

    fn for_side(&self, side: Side) -> Option<Arc<dyn Filter>> {
        Some(match side {
            Side::Consumer => self.consumer.clone(),
            Side::Provider => self.provider.clone(),
        })
    }
}

fn _assert_object_safe(_: &dyn Filter) {}

crate::extension_point!(dyn Filter, key = keys::FILTER, default = "timeout");

/// One layer of a chain around `next`.
struct Layer {
    run: Run,
    next: Arc<dyn Invoker>,
    /// Whether the layer keeps the deadline, fixed when built: a filter's when it honors it
    /// and `next` keeps it; a run of stages' when `next` keeps it (stages never wait).
    enforces_deadline: bool,
}

/// What a layer runs.
enum Run {
    /// A filter of its own.
    Filter(&'static str, Arc<dyn Filter>),
    /// Adjacent stages, outermost first.
    Stages(Vec<&'static str>, Vec<Arc<dyn Stage>>),
}

/// Awaits one call through `layer` of `invocation`: the filter's own future, or the layer's
/// run of stages built right in the awaiting future (a function returning the stages would
/// move them, as large as an invocation and its tickets, once more per call).
macro_rules! await_layer_call {
    ($layer:ident, $invocation:ident) => {{
        $layer.trace(&$invocation);
        match &$layer.run {
            Run::Filter(_, filter) => filter.invoke(&*$layer.next, $invocation).await,
            Run::Stages(_, stages) => stage::Staged::many(stages, &*$layer.next, $invocation).await,
        }
    }};
}

impl Layer {
    /// Says at `trace` level which filters a call goes through.
    fn trace(&self, invocation: &Invocation) {
        match &self.run {
            Run::Filter(name, _) => {
                tracing::trace!(filter = name, method = invocation.method(), "filter");
            }
            Run::Stages(names, _) => {
                tracing::trace!(filters = ?names, method = invocation.method(), "filters");
            }
        }
    }
}

// Written out rather than with `#[async_trait]`: the filter's own boxed future is handed on
// as this layer's future, so a layer costs one allocation, not two.
impl Invoker for Layer {
    fn url(&self) -> &Url {
        self.next.url()
    }

    fn is_available(&self) -> bool {
        self.next.is_available()
    }

    fn availability_source(&self) -> Option<Arc<dyn Invoker>> {
        Some(
            self.next
                .availability_source()
                .unwrap_or_else(|| self.next.clone()),
        )
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.next.unavailable_reason()
    }

    fn enforces_deadline(&self) -> bool {
        self.enforces_deadline
    }

    fn descriptor(&self) -> Option<&'static crate::proxy::ServiceDescriptor> {
        self.next.descriptor()
    }

    fn invoke<'a, 'f>(&'a self, invocation: Invocation) -> crate::invocation::BoxedCall<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        self.trace(&invocation);
        match &self.run {
            Run::Filter(_, filter) => filter.invoke(&*self.next, invocation),
            Run::Stages(_, stages) => {
                Box::pin(stage::Staged::many(stages, &*self.next, invocation))
            }
        }
    }

    // The layer's call is this box's own future, not a second box inside it.
    fn invoke_owned(
        self: Arc<Self>,
        invocation: Invocation,
    ) -> crate::invocation::BoxedCall<'static> {
        Box::pin(async move { await_layer_call!(self, invocation) })
    }

    fn invoke_as_member(
        self: Arc<Self>,
        invocation: Invocation,
    ) -> crate::invocation::BoxedCall<'static> {
        Box::pin(async move {
            let label = invocation.label();
            let result = await_layer_call!(self, invocation);
            result.map_err(|e| crate::invocation::member_error(&label, self.url(), e))
        })
    }

    fn destroy(&self) {
        self.next.destroy();
    }
}

/// Wraps `invoker` in the filters activated for `side` by its URL, first filter outermost.
pub fn build_chain(invoker: Arc<dyn Invoker>, side: Side) -> Result<Arc<dyn Invoker>> {
    wrap_activated(invoker, side, |_| true)
}

/// Wraps one provider's invoker inside a cluster in the consumer filters activated by its URL,
/// less those that run once per reference ([`Filter::per_reference`]).
pub fn build_member_chain(invoker: Arc<dyn Invoker>) -> Result<Arc<dyn Invoker>> {
    wrap_activated(invoker, Side::Consumer, |f| !f.per_reference())
}

/// Wraps a reference's cluster invoker in the consumer filters activated by its URL that run
/// once per reference ([`Filter::per_reference`]), such as `mock`: a `fail:` fallback then
/// answers only once the cluster has given up, retries included.
pub fn build_reference_chain(cluster: Arc<dyn Invoker>) -> Result<Arc<dyn Invoker>> {
    wrap_activated(cluster, Side::Consumer, |f| f.per_reference())
}

/// Wraps `invoker` in the filters activated for `side` by its URL that `keep` accepts.
fn wrap_activated(
    invoker: Arc<dyn Invoker>,
    side: Side,
    keep: impl Fn(&dyn Filter) -> bool,
) -> Result<Arc<dyn Invoker>> {
    let mut filters = <dyn Filter>::loader().activated(side, invoker.url())?;
    for (_, f) in &mut filters {
        if let Some(own) = f.for_side(side) {
            *f = own;
        }
    }
    filters.retain(|(_, f)| keep(&**f));
    Ok(wrap(invoker, filters))
}

/// Wraps `invoker` in `filters` (first outermost), leaving out each filter that does not
/// [apply](Filter::applies_to) to what it would wrap; each filter put in
/// [binds](Filter::bind) to what it wraps. Adjacent filters that are [stages](Filter::as_stage)
/// run as one layer; a stage is asked whether it applies, and bound, with the invoker below
/// its run of stages (the same URL and service as any layer in between would show).
pub fn wrap(
    invoker: Arc<dyn Invoker>,
    filters: Vec<(&'static str, Arc<dyn Filter>)>,
) -> Arc<dyn Invoker> {
    let mut next = invoker;
    // The current run of stages, innermost first.
    let mut run: Vec<(&'static str, Arc<dyn Stage>)> = Vec::new();
    for (name, filter) in filters.into_iter().rev() {
        if !filter.applies_to(&*next) {
            tracing::trace!(filter = name, service = %next.url().service_key(), "filter left out");
            continue;
        }
        let filter = filter.bind(&next).unwrap_or(filter);
        if let Some(stage) = filter.clone().as_stage() {
            run.push((name, stage));
            continue;
        }
        next = close_run(next, &mut run);
        let enforces_deadline = filter.honors_deadline() && next.enforces_deadline();
        next = Arc::new(Layer {
            run: Run::Filter(name, filter),
            next,
            enforces_deadline,
        });
    }
    close_run(next, &mut run)
}

/// `next` wrapped in the stages of `run` (innermost first), as one layer; `next` itself when
/// there are none.
fn close_run(
    next: Arc<dyn Invoker>,
    run: &mut Vec<(&'static str, Arc<dyn Stage>)>,
) -> Arc<dyn Invoker> {
    if run.is_empty() {
        return next;
    }
    let (names, stages) = run.drain(..).rev().unzip();
    Arc::new(Layer {
        run: Run::Stages(names, stages),
        enforces_deadline: next.enforces_deadline(),
        next,
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

    /// The attachment keys the filters of `chain` added, in the order `Echo` saw them.
    async fn keys_seen(chain: &dyn Invoker) -> Vec<String> {
        let inv = Invocation::new(ServiceKey::new("S", None, None), "m", Value::Empty);
        chain
            .invoke(inv)
            .await
            .expect("ok")
            .into_value()
            .expect("vec")
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
        assert_eq!(keys_seen(&*chain).await, ["a", "b"]);
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
                "context",
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
                "context",
                "mock",
                "timeout",
                "deadline",
                "actives",
                "circuitbreaker",
                "token"
            ]
        );
        assert_eq!(
            active(Side::Provider, ""),
            ["metrics", "context", "ordered", "idempotency"]
        );
        assert_eq!(
            active(
                Side::Provider,
                "accesslog=true&token=t&tps=5&executes=2&isolation=3"
            ),
            [
                "metrics",
                "accesslog",
                "context",
                "token",
                "ordered",
                "idempotency",
                "tps",
                "executes",
                "isolation"
            ]
        );
        assert_eq!(
            active(Side::Provider, "filter=-metrics,executes"),
            ["context", "ordered", "idempotency", "executes"]
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

    /// An invoker that claims to keep the deadline itself, as `dubbo` does, and answers
    /// after `delay` (late, to show who times out).
    struct Keeper {
        url: Url,
        delay: std::time::Duration,
        keeps: bool,
        seen: Mutex<Vec<Invocation>>,
    }

    #[async_trait::async_trait]
    impl Invoker for Keeper {
        fn url(&self) -> &Url {
            &self.url
        }
        fn enforces_deadline(&self) -> bool {
            self.keeps
        }
        async fn invoke(&self, inv: Invocation) -> Result<Response> {
            self.seen.lock().expect("lock").push(inv);
            tokio::time::sleep(self.delay).await;
            Ok(Response::empty())
        }
    }

    fn keeper(keeps: bool) -> Arc<Keeper> {
        Arc::new(Keeper {
            url: Url::parse("dubbo://h:1/S?timeout=100").expect("url"),
            delay: std::time::Duration::from_millis(300),
            keeps,
            seen: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn over_a_protocol_that_keeps_the_deadline_the_chain_does_not_repeat_it() {
        use crate::context::TIMEOUT_ATTACHMENT;
        use crate::error::ErrorKind;
        use crate::filter::testing::call;
        // The default consumer chain over an invoker that keeps deadlines: the timeout
        // filter sets the deadline but arms no timer (this invoker answers late on purpose),
        // and the deadline filter, left out, adds no budget attachment.
        let keeping = keeper(true);
        let chain = build_chain(keeping.clone(), Side::Consumer).expect("chain");
        assert!(chain.enforces_deadline(), "every default filter honors it");
        chain.invoke(call("S", "m")).await.expect("no second timer");
        let sent = keeping.seen.lock().expect("lock").pop().expect("called");
        assert!(
            sent.deadline().is_some(),
            "the timeout filter still sets it"
        );
        assert_eq!(sent.attachments().get(TIMEOUT_ATTACHMENT), None);

        // The same invoker without the claim: the filters do both jobs themselves.
        let plain = keeper(false);
        let chain = build_chain(plain.clone(), Side::Consumer).expect("chain");
        assert!(!chain.enforces_deadline());
        let e = chain.invoke(call("S", "m")).await.expect_err("timed out");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("within 100 ms"), "{e}");
        let sent = plain.seen.lock().expect("lock").pop().expect("called");
        assert_eq!(sent.attachments().get(TIMEOUT_ATTACHMENT), Some("100"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_filter_that_may_wait_makes_the_timeout_filter_keep_its_timer() {
        use crate::error::ErrorKind;
        use crate::filter::testing::call;
        // `Tagger` does not promise to honor deadlines, so the chain inside `timeout` does
        // not keep the deadline even though the protocol does.
        let log = Arc::new(Mutex::new(Vec::new()));
        let inner = wrap(
            keeper(true),
            vec![("tag", Arc::new(Tagger("tag", log)) as Arc<dyn Filter>)],
        );
        assert!(!inner.enforces_deadline());
        let chain = wrap(
            inner,
            vec![(
                "timeout",
                Arc::new(timeout::TimeoutFilter::default()) as Arc<dyn Filter>,
            )],
        );
        let e = chain.invoke(call("S", "m")).await.expect_err("timed out");
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn filters_that_do_not_apply_are_left_out_when_the_chain_is_built() {
        use crate::filter::testing::Mock;
        let mock = MockFilter::default();
        assert!(!mock.applies_to(&*Mock::ok("dubbo://h:1/S?timeout=5")));
        assert!(mock.applies_to(&*Mock::ok("dubbo://h:1/S?mock=true")));
        assert!(mock.applies_to(&*Mock::ok("dubbo://h:1/S?greet.mock=true")));
        assert!(!deadline::DeadlineFilter.applies_to(&*keeper(true)));
        assert!(deadline::DeadlineFilter.applies_to(&*keeper(false)));
    }

    #[tokio::test]
    async fn a_filter_left_out_does_not_run() {
        struct Never;
        #[async_trait::async_trait]
        impl Filter for Never {
            fn applies_to(&self, _: &dyn Invoker) -> bool {
                false
            }
            async fn invoke(&self, _: &dyn Invoker, _: Invocation) -> Result<Response> {
                unreachable!("left out of the chain")
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let chain = wrap(
            Arc::new(Echo(Url::parse("dubbo://h:1/S").expect("url"))),
            vec![
                ("never", Arc::new(Never) as Arc<dyn Filter>),
                ("a", Arc::new(Tagger("a", log.clone()))),
            ],
        );
        assert_eq!(keys_seen(&*chain).await, ["a"]);
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
