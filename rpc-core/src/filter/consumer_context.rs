//! `context` on the consumer side: carries the current [`RpcContext`] into outgoing calls and
//! makes each call a `tracing` span.
//!
//! - the invocation's deadline shrinks to the context's deadline (a nested call never gets
//!   more time than the call being served has left);
//! - attachments of the context that [propagate](crate::context::is_propagated) are copied,
//!   unless the invocation already sets the key;
//! - W3C `traceparent`: a child of the invocation's own `traceparent`, else of the context's
//!   trace, else a new trace; every hop has a new span id and the same trace id;
//! - `application` (the caller's application: [`set_application`](crate::context::set_application),
//!   else the invoker URL's `application` key) is sent unless already set, for
//!   per-application limits and the access log on the provider;
//! - the rest of the call runs in an `rpc.client` span with service, method, provider and
//!   trace id fields.
//!
//! Runs outside `timeout`, so the timeout filter sees the inherited deadline.

use tokio::time::Instant;

use crate::config::keys;
use crate::context::{
    is_propagated, RpcContext, TraceParent, APPLICATION_ATTACHMENT, TRACEPARENT_ATTACHMENT,
};
use crate::error::Result;
use crate::filter::stage::{self, Stage, Ticket};
use crate::filter::Filter;
use crate::invocation::{ByteString, Invocation, Invoker, Response};

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct ConsumerContextFilter;

#[async_trait::async_trait]
impl Filter for ConsumerContextFilter {
    /// It never waits.
    fn honors_deadline(&self) -> bool {
        true
    }

    stage::stage_filter!();
}

impl Stage for ConsumerContextFilter {
    fn before<'s>(
        &'s self,
        next: &dyn Invoker,
        invocation: &mut Invocation,
        _now: Instant,
    ) -> Result<Ticket<'s>> {
        let inherited = RpcContext::with_current(|ctx| {
            let ctx = ctx?;
            if let Some(d) = ctx.deadline() {
                invocation.set_deadline(d);
            }
            for (k, v) in ctx.attachments().iter() {
                if is_propagated(k) && invocation.attachments().get(k).is_none() {
                    invocation.attachments_mut().insert(k, v);
                }
            }
            ctx.trace().copied()
        });
        let parent = invocation
            .attachments()
            .get(TRACEPARENT_ATTACHMENT)
            .and_then(TraceParent::parse)
            .or(inherited);
        let trace = parent.map_or_else(TraceParent::new_root, |p| p.child());
        invocation.attachments_mut().insert(
            ByteString::from_static(TRACEPARENT_ATTACHMENT),
            trace.header(),
        );
        if invocation
            .attachments()
            .get(APPLICATION_ATTACHMENT)
            .is_none()
        {
            if let Some(app) = crate::context::application() {
                invocation
                    .attachments_mut()
                    .insert(ByteString::from_static(APPLICATION_ATTACHMENT), app);
            } else if let Some(app) = next.url().param(keys::APPLICATION) {
                invocation
                    .attachments_mut()
                    .insert(ByteString::from_static(APPLICATION_ATTACHMENT), app);
            }
        }
        // The rest of the call runs in this span.
        Ok(Ticket::span(tracing::info_span!(
            "rpc.client",
            service = %invocation.service(),
            method = invocation.method(),
            provider = %next.url().display_address(),
            trace_id = %Hex128(trace.trace_id),
            span_id = %Hex64(trace.span_id),
        )))
    }

    fn after(&self, _: Ticket<'_>, _: Option<&Result<Response>>, _: Instant) {}
}

/// A trace id formatted lazily (only when a subscriber records it).
pub(crate) struct Hex128(pub(crate) u128);

impl std::fmt::Display for Hex128 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A span id formatted lazily.
pub(crate) struct Hex64(pub(crate) u64);

impl std::fmt::Display for Hex64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceParent;
    use crate::filter::context::ContextFilter;
    use crate::filter::testing::{call, capture, Mock};
    use crate::filter::wrap;
    use std::sync::Arc;

    #[test]
    fn both_sides_are_spans_with_the_same_trace_id() {
        // The process's own application name beats the one in the provider's URL.
        let _one = crate::context::APPLICATION_TESTS
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        crate::context::set_application("shop");
        let (sent, seen) = capture(|| async {
            let provider = wrap(
                Mock::ok("dubbo://p:7/S"),
                vec![("context", Arc::new(ContextFilter) as _)],
            );
            let network = Mock::new("dubbo://p:7/S?application=provider-app", move |inv| {
                let provider = provider.clone();
                async move { provider.invoke(inv).await }
            });
            ConsumerContextFilter
                .invoke(&*network, call("S", "greet"))
                .await
                .expect("ok");
            network.last().expect("sent")
        });
        let tp = TraceParent::parse(
            sent.attachments()
                .get(TRACEPARENT_ATTACHMENT)
                .expect("a new trace is started"),
        )
        .expect("valid traceparent");
        assert_eq!(sent.attachments().get(APPLICATION_ATTACHMENT), Some("shop"));
        let client = seen
            .spans
            .iter()
            .find(|(n, _)| n == "rpc.client")
            .expect("client span");
        let server = seen
            .spans
            .iter()
            .find(|(n, _)| n == "rpc.server")
            .expect("server span");
        let tid = format!("trace_id={:032x}", tp.trace_id);
        assert!(client.1.contains(&tid), "{client:?}");
        assert!(client.1.contains("provider=p:7"), "{client:?}");
        assert!(client.1.contains("method=greet"), "{client:?}");
        assert!(server.1.contains(&tid), "{server:?}");
        assert!(server.1.contains("caller=shop"), "{server:?}");
    }

    #[tokio::test]
    async fn an_explicit_traceparent_is_continued() {
        let p = Mock::ok("dubbo://p:7/S");
        let parent = TraceParent::new_root();
        let mut c = call("S", "m");
        c.attachments_mut()
            .insert(TRACEPARENT_ATTACHMENT, parent.to_string());
        ConsumerContextFilter.invoke(&*p, c).await.expect("ok");
        let sent = p.last().expect("sent");
        let tp = TraceParent::parse(
            sent.attachments()
                .get(TRACEPARENT_ATTACHMENT)
                .expect("traceparent"),
        )
        .expect("valid");
        assert_eq!(tp.trace_id, parent.trace_id);
        assert_ne!(tp.span_id, parent.span_id);
    }
}
