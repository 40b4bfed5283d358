//! `deadline` (consumer): sends the call's remaining budget to the provider.
//!
//! Runs just inside `timeout`, so the invocation's deadline is set. It writes the time left,
//! in whole milliseconds, to the [`TIMEOUT_ATTACHMENT`] attachment: a relative duration, so
//! the two machines' clocks need not agree. The provider's `context` filter turns it back
//! into a deadline. A call whose deadline has already passed is not sent at all. A chain
//! whose protocol keeps the deadline and sends the budget itself
//! ([`Invoker::enforces_deadline`], as `dubbo` does in its request header) leaves this
//! filter out.

use std::sync::Arc;

use crate::context::TIMEOUT_ATTACHMENT;
use crate::error::{Result, RpcError};
use crate::extension::Activate;
use crate::filter::Filter;
use crate::invocation::{ByteString, Invocation, Invoker, Response};

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct DeadlineFilter;

#[async_trait::async_trait]
impl Filter for DeadlineFilter {
    /// Left out where the protocol sends the budget itself (`dubbo` has a field for it).
    fn applies_to(&self, next: &dyn Invoker) -> bool {
        !next.enforces_deadline()
    }

    /// It never waits.
    fn honors_deadline(&self) -> bool {
        true
    }

    async fn invoke(&self, next: &dyn Invoker, mut invocation: Invocation) -> Result<Response> {
        if let Some(left) = invocation.remaining() {
            if left.is_zero() {
                return Err(invocation.annotate(
                    RpcError::timeout("the deadline passed before the call was sent")
                        .with_provider(next.url().address()),
                ));
            }
            invocation.attachments_mut().insert(
                ByteString::from_static(TIMEOUT_ATTACHMENT),
                left.as_millis().to_string(),
            );
        }
        next.invoke(invocation).await
    }
}

crate::register!(
    dyn Filter,
    "deadline",
    || Arc::new(DeadlineFilter),
    activate = Activate::consumer(-9_000)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::filter::testing::{call, Mock};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn remaining_budget_travels_as_milliseconds() {
        let inner = Mock::ok("dubbo://h:1/S");
        let mut c = call("S", "m");
        c.set_timeout(Duration::from_millis(750));
        tokio::time::advance(Duration::from_millis(250)).await;
        DeadlineFilter.invoke(&*inner, c).await.expect("sent");
        let seen = inner.last().expect("seen");
        assert_eq!(seen.attachments().get(TIMEOUT_ATTACHMENT), Some("500"));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_call_is_not_sent() {
        let inner = Mock::ok("dubbo://h:1/S");
        let mut c = call("S", "m");
        c.set_timeout(Duration::from_millis(10));
        tokio::time::advance(Duration::from_millis(20)).await;
        let e = DeadlineFilter
            .invoke(&*inner, c)
            .await
            .expect_err("expired");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(inner.calls(), 0);
    }

    #[tokio::test]
    async fn no_deadline_no_attachment() {
        let inner = Mock::ok("dubbo://h:1/S");
        DeadlineFilter
            .invoke(&*inner, call("S", "m"))
            .await
            .expect("sent");
        let seen = inner.last().expect("seen");
        assert_eq!(seen.attachments().get(TIMEOUT_ATTACHMENT), None);
    }
}
