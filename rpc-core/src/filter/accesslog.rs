//! `accesslog` (provider, when `accesslog=true`): one structured `tracing` event per call.
//!
//! The event is at `INFO` under the target `rpc::accesslog` (route it with the subscriber's
//! filter, e.g. `RUST_LOG=rpc::accesslog=info`), with the fields `service`, `method`,
//! `caller` (the calling application), `peer` (the caller's address, when the protocol sets
//! [`REMOTE_ADDRESS_ATTACHMENT`]), `trace_id`, `duration_ms` and `outcome` (`ok`,
//! `business_error`, or the [`ErrorKind::as_str`](crate::ErrorKind::as_str) of the failure).
//! Runs outside the token and limit filters, so refused calls are logged too.

use std::sync::Arc;

use crate::config::keys;
use crate::context::{
    TraceParent, APPLICATION_ATTACHMENT, REMOTE_ADDRESS_ATTACHMENT, TRACEPARENT_ATTACHMENT,
};
use crate::error::Result;
use crate::extension::Activate;
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Outcome, Response};

/// The `tracing` target of access-log events.
pub const ACCESSLOG_TARGET: &str = "rpc::accesslog";

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct AccessLogFilter;

#[async_trait::async_trait]
impl Filter for AccessLogFilter {
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        if !next
            .url()
            .param_bool(keys::ACCESSLOG, false)
            .map_err(|e| invocation.annotate(e))?
        {
            return next.invoke(invocation).await;
        }
        let service = invocation.service().clone();
        let method = invocation.method().to_string();
        let caller = invocation
            .attachments()
            .get(APPLICATION_ATTACHMENT)
            .unwrap_or("")
            .to_string();
        let peer = invocation
            .attachments()
            .get(REMOTE_ADDRESS_ATTACHMENT)
            .unwrap_or("")
            .to_string();
        let trace_id = invocation
            .attachments()
            .get(TRACEPARENT_ATTACHMENT)
            .and_then(TraceParent::parse)
            .map(|t| t.trace_id_hex())
            .unwrap_or_default();
        let start = std::time::Instant::now();
        let result = next.invoke(invocation).await;
        let outcome = match &result {
            Ok(Response {
                outcome: Outcome::BizError(_),
                ..
            }) => "business_error",
            Ok(_) => "ok",
            Err(e) => e.kind().as_str(),
        };
        tracing::info!(
            target: "rpc::accesslog",
            service = %service,
            method = %method,
            caller = %caller,
            peer = %peer,
            trace_id = %trace_id,
            duration_ms = start.elapsed().as_secs_f64() * 1000.0,
            outcome,
            "call"
        );
        result
    }
}

crate::register!(
    dyn Filter,
    "accesslog",
    || Arc::new(AccessLogFilter),
    activate = Activate::provider(-19_500).when(keys::ACCESSLOG)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RpcError;
    use crate::filter::testing::{call, capture, Mock};

    #[test]
    fn one_event_per_call_with_outcome_when_enabled() {
        let (_, seen) = capture(|| async {
            let on = Mock::new("dubbo://h:1/S?accesslog=true", |inv| async move {
                match inv.method() {
                    "bad" => Err(RpcError::network("reset")),
                    _ => Ok(Response::empty()),
                }
            });
            let mut c = call("S", "good");
            c.attachments_mut().insert(APPLICATION_ATTACHMENT, "shop");
            c.attachments_mut()
                .insert(REMOTE_ADDRESS_ATTACHMENT, "10.1.2.3:40000");
            AccessLogFilter.invoke(&*on, c).await.expect("ok");
            AccessLogFilter
                .invoke(&*on, call("S", "bad"))
                .await
                .expect_err("fails");
            let off = Mock::ok("dubbo://h:1/S?accesslog=false");
            AccessLogFilter
                .invoke(&*off, call("S", "quiet"))
                .await
                .expect("ok");
        });
        let logs: Vec<&String> = seen
            .events
            .iter()
            .filter(|(t, _)| t == ACCESSLOG_TARGET)
            .map(|(_, f)| f)
            .collect();
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert!(logs[0].contains("service=S"), "{}", logs[0]);
        assert!(logs[0].contains("method=good"), "{}", logs[0]);
        assert!(logs[0].contains("caller=shop"), "{}", logs[0]);
        assert!(logs[0].contains("peer=10.1.2.3:40000"), "{}", logs[0]);
        assert!(logs[0].contains("outcome=ok"), "{}", logs[0]);
        assert!(logs[0].contains("duration_ms="), "{}", logs[0]);
        assert!(logs[1].contains("outcome=network"), "{}", logs[1]);
    }
}
