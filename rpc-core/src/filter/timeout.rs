//! `timeout`: the consumer-side call budget.
//!
//! Sets the invocation's deadline from the `timeout` key (milliseconds, method level first,
//! default [`DEFAULT_TIMEOUT_MS`]) unless an earlier deadline is already set (a nested call
//! inherits its caller's remaining budget), and fails the call with
//! [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when the deadline passes. Dropping the
//! inner future cancels the call's wait; the exchange discards a late response. When the
//! chain inside keeps the deadline itself ([`Invoker::enforces_deadline`], as the `dubbo`
//! protocol does), this filter only sets the deadline and arms no timer of its own.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::extension::Activate;
use crate::filter::stage::{self, Kind, Stage, Ticket};
use crate::filter::Filter;
use crate::invocation::{BoxedCall, CallLabel, Invocation, Invoker, Response};
use crate::url::Url;

/// Timeout of a call whose URL does not set `timeout`, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;

/// How a method-level `timeout` key ends (`{method}.timeout`).
const METHOD_TIMEOUT_SUFFIX: &str = ".timeout";

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct TimeoutFilter {
    /// The budget of every call through the invoker this filter was [bound](Filter::bind)
    /// to, read once from its URL when that sets no method-level `timeout`; otherwise (or
    /// unbound) the budget is read from the URL per call.
    fixed: Option<(Url, u64)>,
}

impl TimeoutFilter {
    fn budget_ms(&self, url: &Url, method: &str) -> Result<u64> {
        match &self.fixed {
            // The same URL (one pointer comparison): the budget read at bind time.
            Some((bound, ms)) if bound == url => Ok(*ms),
            _ => url.method_param_as(method, keys::TIMEOUT, DEFAULT_TIMEOUT_MS),
        }
    }
}

#[async_trait::async_trait]
impl Filter for TimeoutFilter {
    /// It is what ends a call at the deadline.
    fn honors_deadline(&self) -> bool {
        true
    }

    /// A filter that reads the budget of `next`'s calls once, when `next`'s URL has no
    /// method-level `timeout` (a `{method}.timeout` key) and its `timeout` is well formed.
    fn bind(&self, next: &Arc<dyn Invoker>) -> Option<Arc<dyn Filter>> {
        let url = next.url();
        let per_method = url
            .params()
            .keys()
            .any(|k| k.len() > keys::TIMEOUT.len() + 1 && k.ends_with(METHOD_TIMEOUT_SUFFIX));
        let fixed = if per_method {
            None
        } else {
            url.param_as(keys::TIMEOUT, DEFAULT_TIMEOUT_MS)
                .ok()
                .map(|ms| (url.clone(), ms))
        };
        Some(Arc::new(TimeoutFilter { fixed }))
    }

    stage::stage_filter!();
}

impl Stage for TimeoutFilter {
    /// Sets the deadline; asks for a timer only when the invoker inside does not keep the
    /// deadline itself (the protocol's own wait ends there: a timer would only cost).
    fn before<'s>(
        &'s self,
        next: &dyn Invoker,
        invocation: &mut Invocation,
        now: Instant,
    ) -> Result<Ticket<'s>> {
        let ms = self.budget_ms(next.url(), invocation.method())?;
        invocation.set_deadline(now + Duration::from_millis(ms));
        Ok(
            match invocation.deadline().filter(|_| !next.enforces_deadline()) {
                Some(deadline) => Ticket(Kind::Deadline(Box::new(Timer {
                    deadline,
                    budget: deadline.saturating_duration_since(now),
                    label: invocation.label(),
                }))),
                None => Ticket::none(),
            },
        )
    }

    fn after(&self, _: Ticket<'_>, _: Option<&Result<Response>>, _: Instant) {}
}

/// The wait of a call whose invoker does not keep its deadline: the call is dropped at the
/// deadline and fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
pub(crate) struct Timer {
    deadline: Instant,
    budget: Duration,
    label: CallLabel,
}

impl Timer {
    /// Calls `next` until the deadline.
    pub(crate) fn run<'f>(self, next: &'f dyn Invoker, invocation: Invocation) -> BoxedCall<'f> {
        Box::pin(async move {
            match crate::invocation::within_deadline(self.deadline, next.invoke(invocation)).await {
                Some(result) => result,
                None => Err(self
                    .label
                    .annotate(RpcError::timeout(format!(
                        "no response within {} ms",
                        self.budget.as_millis()
                    )))
                    .with_provider(next.url().address())),
            }
        })
    }
}

crate::register!(
    dyn Filter,
    "timeout",
    || Arc::new(TimeoutFilter::default()),
    activate = Activate::consumer(-10_000)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::error::Result;
    use crate::invocation::Response;
    use crate::invocation::{ServiceKey, Value};
    use crate::url::Url;

    struct Sleepy(Url, Duration);

    #[async_trait::async_trait]
    impl Invoker for Sleepy {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, _: Invocation) -> Result<Response> {
            tokio::time::sleep(self.1).await;
            Ok(Response::empty())
        }
    }

    fn call(method: &'static str) -> Invocation {
        Invocation::new(ServiceKey::new("S", None, None), method, Value::Empty)
    }

    #[tokio::test(start_paused = true)]
    async fn method_level_timeout_fires() {
        let url = Url::parse("dubbo://h:1/S?timeout=5000&slow.timeout=100").expect("url");
        let inv = Sleepy(url, Duration::from_millis(1000));
        let e = TimeoutFilter::default()
            .invoke(&inv, call("slow"))
            .await
            .expect_err("times out");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("within 100 ms"), "{e}");
        assert_eq!(e.method(), Some("slow"));
        TimeoutFilter::default()
            .invoke(&inv, call("other"))
            .await
            .expect("5 s is enough");
    }

    #[tokio::test(start_paused = true)]
    async fn inherited_shorter_deadline_wins() {
        let url = Url::parse("dubbo://h:1/S?timeout=5000").expect("url");
        let inv = Sleepy(url, Duration::from_millis(1000));
        let mut c = call("m");
        c.set_timeout(Duration::from_millis(50));
        let e = TimeoutFilter::default()
            .invoke(&inv, c)
            .await
            .expect_err("inherited budget");
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }

    #[tokio::test]
    async fn bad_timeout_value_is_reported() {
        let url = Url::parse("dubbo://h:1/S?timeout=fast").expect("url");
        let inv = Sleepy(url, Duration::ZERO);
        let e = TimeoutFilter::default()
            .invoke(&inv, call("m"))
            .await
            .expect_err("bad");
        assert!(e.to_string().contains("'timeout' has value 'fast'"), "{e}");
    }

    /// In a chain the filter is bound to the invoker it wraps: the budget read once is the
    /// one a per-call read gives, method-level keys still win, and a malformed `timeout`
    /// still fails each call.
    #[tokio::test(start_paused = true)]
    async fn a_bound_filter_keeps_every_budget_rule() {
        let chain = |url: &str| {
            let url = Url::parse(url).expect("url");
            crate::filter::wrap(
                Arc::new(Sleepy(url, Duration::from_millis(1500))),
                vec![("timeout", Arc::new(TimeoutFilter::default()) as _)],
            )
        };
        let e = chain("dubbo://h:1/S?timeout=200")
            .invoke(call("m"))
            .await
            .expect_err("times out");
        assert!(e.to_string().contains("within 200 ms"), "{e}");
        chain("dubbo://h:1/S")
            .invoke(call("m"))
            .await
            .expect_err("the default budget, 1000 ms, is less than the sleep");
        let per_method = chain("dubbo://h:1/S?timeout=5000&slow.timeout=100");
        let e = per_method
            .invoke(call("slow"))
            .await
            .expect_err("method level");
        assert!(e.to_string().contains("within 100 ms"), "{e}");
        per_method.invoke(call("m")).await.expect("5 s is enough");
        let e = chain("dubbo://h:1/S?timeout=fast")
            .invoke(call("m"))
            .await
            .expect_err("bad");
        assert!(e.to_string().contains("'timeout' has value 'fast'"), "{e}");
    }
}
