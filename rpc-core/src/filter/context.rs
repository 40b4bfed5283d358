//! `context` on the provider side: turns what the consumer sent into the call's [`RpcContext`].
//!
//! - reads the caller's remaining budget ([`TIMEOUT_ATTACHMENT`], whole milliseconds) and sets
//!   `deadline = now + budget` on the invocation; a budget of zero or less, or a deadline
//!   already passed, refuses the call with [`ErrorKind::Timeout`] without running it; a value
//!   that is not a whole number is a [`ErrorKind::Codec`] error naming the attachment;
//! - runs the rest of the call (inner filters, skeleton, the user's code) inside a task-local
//!   [`RpcContext`] holding the deadline, the incoming attachments and the trace context, so
//!   calls the implementation makes inherit them (see the consumer side of `context`, [`super::ConsumerContextFilter`]);
//!   it is a [stage](super::Stage), so it shares one layer with the provider's `metrics`;
//! - wraps it in an `rpc.server` `tracing` span with service, method, caller (application),
//!   peer (the caller's address, from [`REMOTE_ADDRESS_ATTACHMENT`] set by the protocol) and
//!   trace id.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::context::{
    RpcContext, APPLICATION_ATTACHMENT, REMOTE_ADDRESS_ATTACHMENT, TIMEOUT_ATTACHMENT,
};
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::consumer_context::{Hex128, Hex64};
use crate::filter::stage::{self, Stage, Ticket};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

/// Longest attachment value quoted in an error message.
const QUOTE_MAX: usize = 32;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct ContextFilter;

#[async_trait::async_trait]
impl Filter for ContextFilter {
    /// It never waits: a call whose budget is spent is refused at once.
    fn honors_deadline(&self) -> bool {
        true
    }

    stage::stage_filter!();
}

impl Stage for ContextFilter {
    fn before<'s>(
        &'s self,
        _next: &dyn Invoker,
        invocation: &mut Invocation,
        now: Instant,
    ) -> Result<Ticket<'s>> {
        if let Some(raw) = invocation.attachments().get(TIMEOUT_ATTACHMENT) {
            let ms: i64 = match raw.trim().parse() {
                Ok(ms) => ms,
                Err(_) => {
                    let quoted: String = raw.chars().take(QUOTE_MAX).collect();
                    return Err(invocation.annotate(RpcError::codec(format!(
                        "attachment '{TIMEOUT_ATTACHMENT}' has value '{quoted}', \
                         which is not a whole number of milliseconds"
                    ))));
                }
            };
            if ms <= 0 {
                return Err(invocation.annotate(RpcError::timeout(format!(
                    "the caller's budget was spent before the call started ({ms} ms left)"
                ))));
            }
            // A huge budget that overflows the clock means "no deadline", not a panic.
            if let Some(d) = now.checked_add(Duration::from_millis(ms.unsigned_abs())) {
                invocation.set_deadline(d);
            }
        }
        if invocation.deadline().is_some_and(|d| d <= now) {
            return Err(invocation.annotate(RpcError::new(
                ErrorKind::Timeout,
                "the caller's deadline passed before the call started",
            )));
        }
        let mut ctx = RpcContext::new();
        if let Some(d) = invocation.deadline() {
            ctx.set_deadline(d);
        }
        *ctx.attachments_mut() = invocation.attachments().clone();
        // The caller's `traceparent` is parsed only when something reads the trace: a span
        // that is recorded, or a call made while serving.
        ctx.set_trace_from_caller();
        let span = tracing::info_span!(
            "rpc.server",
            service = %invocation.service(),
            method = invocation.method(),
            caller = invocation.attachments().get(APPLICATION_ATTACHMENT).unwrap_or(""),
            peer = invocation.attachments().get(REMOTE_ADDRESS_ATTACHMENT).unwrap_or(""),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        if !span.is_disabled() {
            if let Some(trace) = ctx.trace() {
                span.record("trace_id", tracing::field::display(Hex128(trace.trace_id)));
                span.record("span_id", tracing::field::display(Hex64(trace.span_id)));
            }
        }
        // The rest of the call runs with this context current and inside this span.
        Ok(Ticket::scope(ctx, span))
    }

    fn after(&self, _: Ticket<'_>, _: Option<&Result<Response>>, _: Instant) {}
}

crate::register!(
    dyn Filter,
    "context",
    || Arc::new(crate::filter::Sided::new(
        Arc::new(crate::filter::ConsumerContextFilter),
        Arc::new(ContextFilter)
    )),
    activate = Activate::sides(-15_000, -19_000)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{TraceParent, TRACEPARENT_ATTACHMENT};
    use crate::filter::consumer_context::ConsumerContextFilter;
    use crate::filter::deadline::DeadlineFilter;
    use crate::filter::testing::{call, Mock};
    use crate::filter::wrap;
    use crate::invocation::Value;
    use crate::Attachments;

    fn provider_call(timeout_ms: &str) -> Invocation {
        let mut c = call("S", "m");
        c.attachments_mut().insert(TIMEOUT_ATTACHMENT, timeout_ms);
        c
    }

    #[tokio::test]
    async fn spent_budget_is_refused_without_running() {
        for budget in ["0", "-5"] {
            let inner = Mock::ok("dubbo://h:1/S");
            let e = ContextFilter
                .invoke(&*inner, provider_call(budget))
                .await
                .expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
            assert_eq!(e.method(), Some("m"));
            assert_eq!(inner.calls(), 0, "budget {budget}");
        }
    }

    #[tokio::test]
    async fn malformed_budget_is_a_codec_error() {
        let inner = Mock::ok("dubbo://h:1/S");
        let e = ContextFilter
            .invoke(&*inner, provider_call("soon"))
            .await
            .expect_err("malformed");
        assert_eq!(e.kind(), ErrorKind::Codec);
        assert!(
            e.to_string().contains("'rpc.timeout-ms' has value 'soon'"),
            "{e}"
        );
        assert_eq!(inner.calls(), 0);
    }

    #[tokio::test]
    async fn huge_budget_does_not_panic() {
        let inner = Mock::ok("dubbo://h:1/S");
        ContextFilter
            .invoke(&*inner, provider_call(&i64::MAX.to_string()))
            .await
            .expect("runs");
        assert_eq!(inner.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_and_context_are_visible_to_the_service() {
        let inner = Mock::new("dubbo://h:1/S", |inv| async move {
            let ctx = RpcContext::current();
            assert_eq!(ctx.deadline(), inv.deadline());
            assert_eq!(ctx.get("tenant"), Some("blue"));
            let left = ctx.remaining().expect("deadline").as_millis();
            Ok(crate::Response::value(Value::typed(left as u64)))
        });
        let mut c = provider_call("300");
        c.attachments_mut().insert("tenant", "blue");
        let left: u64 = ContextFilter
            .invoke(&*inner, c)
            .await
            .expect("runs")
            .into_value()
            .expect("u64");
        assert_eq!(left, 300);
    }

    /// As a stage sharing a layer with the stage outside it, the context is current for the
    /// service across every poll, and only there: not in the task once the call is over.
    #[tokio::test(start_paused = true)]
    async fn the_context_is_current_at_every_poll_of_the_service_and_nowhere_else() {
        let inner = Mock::new("dubbo://h:1/S", |_| async move {
            let before = RpcContext::current().get("tenant").map(str::to_string);
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            let after = RpcContext::current().get("tenant").map(str::to_string);
            Ok(crate::Response::value(Value::typed((before, after))))
        });
        let chain = wrap(
            inner,
            vec![
                (
                    "metrics",
                    Arc::new(crate::filter::MetricsFilter::provider()) as _,
                ),
                ("context", Arc::new(ContextFilter) as _),
            ],
        );
        let mut c = provider_call("300");
        c.attachments_mut().insert("tenant", "blue");
        let seen: (Option<String>, Option<String>) = chain
            .invoke(c)
            .await
            .expect("runs")
            .into_value()
            .expect("pair");
        let blue = Some("blue".to_string());
        assert_eq!(seen, (blue.clone(), blue));
        assert_eq!(RpcContext::current().get("tenant"), None);
        assert_eq!(RpcContext::current().deadline(), None);
    }

    /// Two hops: consumer A → provider B, whose implementation calls provider C. The nested
    /// call inherits B's remaining budget, the propagated attachments and the trace id, with
    /// new span ids.
    #[tokio::test(start_paused = true)]
    async fn nested_call_inherits_budget_attachments_and_trace() {
        let consumer_chain = |inner: Arc<dyn Invoker>| {
            wrap(
                inner,
                vec![
                    ("context", Arc::new(ConsumerContextFilter) as _),
                    (
                        "timeout",
                        Arc::new(crate::filter::TimeoutFilter::default()) as _,
                    ),
                    ("deadline", Arc::new(DeadlineFilter) as _),
                ],
            )
        };
        let provider_chain =
            |inner: Arc<dyn Invoker>| wrap(inner, vec![("context", Arc::new(ContextFilter) as _)]);

        // C: the innermost service reports what it received.
        let c = Mock::ok("dubbo://c:3/C?timeout=5000");
        let c_consumer = consumer_chain(c.clone());
        // B: spends 100 ms, then calls C, then answers.
        let b_impl = {
            let c_consumer = c_consumer.clone();
            Mock::new("dubbo://b:2/B", move |_| {
                let c_consumer = c_consumer.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    c_consumer.invoke(call("C", "leaf")).await
                }
            })
        };
        let b_provider = provider_chain(b_impl.clone());
        // The "network" between A and B: the provider chain receives what A's chain sent.
        let a_to_b = {
            let b_provider = b_provider.clone();
            Mock::new("dubbo://b:2/B?timeout=400", move |inv| {
                let b_provider = b_provider.clone();
                async move {
                    let mut received = call("B", "mid");
                    *received.attachments_mut() = inv.attachments().clone();
                    b_provider.invoke(received).await
                }
            })
        };
        let a = consumer_chain(a_to_b.clone());

        let user: Attachments = [("tenant", "blue"), ("token", "secret")]
            .into_iter()
            .collect();
        RpcContext::scope_with(user, a.invoke(call("B", "mid")))
            .await
            .expect("both hops succeed");

        let sent_to_b = a_to_b.last().expect("A sent");
        let sent_to_c = c.last().expect("B sent");
        // Budget: A gave 400 ms; B spent 100 ms before calling C.
        assert_eq!(sent_to_b.attachments().get(TIMEOUT_ATTACHMENT), Some("400"));
        assert_eq!(sent_to_c.attachments().get(TIMEOUT_ATTACHMENT), Some("300"));
        // Attachments: user-set ones propagate to both hops, per-hop ones do not.
        assert_eq!(sent_to_b.attachments().get("tenant"), Some("blue"));
        assert_eq!(sent_to_c.attachments().get("tenant"), Some("blue"));
        assert_eq!(sent_to_c.attachments().get("token"), None);
        // Trace: same trace id, a new span id per hop.
        let tb = TraceParent::parse(
            sent_to_b
                .attachments()
                .get(TRACEPARENT_ATTACHMENT)
                .expect("traceparent to B"),
        )
        .expect("valid");
        let tc = TraceParent::parse(
            sent_to_c
                .attachments()
                .get(TRACEPARENT_ATTACHMENT)
                .expect("traceparent to C"),
        )
        .expect("valid");
        assert_eq!(tb.trace_id, tc.trace_id);
        assert_ne!(tb.span_id, tc.span_id);
    }

    #[tokio::test(start_paused = true)]
    async fn nested_call_after_budget_is_spent_fails_fast() {
        // B's caller gave 50 ms; B works 80 ms, then its nested call has no budget left.
        let c = Mock::ok("dubbo://c:3/C?timeout=5000");
        let c_consumer = wrap(
            c.clone(),
            vec![
                ("context", Arc::new(ConsumerContextFilter) as _),
                (
                    "timeout",
                    Arc::new(crate::filter::TimeoutFilter::default()) as _,
                ),
                ("deadline", Arc::new(DeadlineFilter) as _),
            ],
        );
        let b_impl = Mock::new("dubbo://b:2/B", move |_| {
            let c_consumer = c_consumer.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(80)).await;
                c_consumer.invoke(call("C", "leaf")).await
            }
        });
        let e = ContextFilter
            .invoke(&*b_impl, provider_call("50"))
            .await
            .expect_err("no budget left");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(c.calls(), 0);
    }
}
