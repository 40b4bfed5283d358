//! `panic` (provider, outermost): a panic in the service implementation (or any inner filter)
//! becomes an [`ErrorKind::Biz`] error response `service panicked: <message>` instead of a
//! dead connection or task.
//!
//! The panic hook still runs (and prints, by default); the filter only stops the unwinding at
//! the call's boundary. State the panicking code shared with other calls may be left
//! half-updated, as with any caught panic.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct PanicFilter;

#[async_trait::async_trait]
impl Filter for PanicFilter {
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let service = invocation.service().clone();
        let method = invocation.method().to_string();
        match AssertUnwindSafe(next.invoke(invocation))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(payload) => {
                let msg = panic_message(&*payload);
                tracing::error!(service = %service, method = %method, panic = msg, "service panicked");
                Err(
                    RpcError::new(ErrorKind::Biz, format!("service panicked: {msg}"))
                        .with_service(service.to_string())
                        .with_method(method),
                )
            }
        }
    }
}

crate::register!(
    dyn Filter,
    "panic",
    || Arc::new(PanicFilter),
    activate = Activate::provider(-30_000)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};

    #[tokio::test]
    async fn a_panic_becomes_a_biz_error() {
        let p = Mock::new("dubbo://h:1/S", |inv| async move {
            if inv.method() == "boom" {
                panic!("division by zero in {}", inv.method());
            }
            Ok(Response::empty())
        });
        let e = PanicFilter
            .invoke(&*p, call("S", "boom"))
            .await
            .expect_err("panicked");
        assert_eq!(e.kind(), ErrorKind::Biz);
        assert!(!e.is_retriable());
        assert!(
            e.to_string()
                .contains("service panicked: division by zero in boom"),
            "{e}"
        );
        assert_eq!(e.method(), Some("boom"));
        // The filter (and the process) keep serving.
        PanicFilter
            .invoke(&*p, call("S", "fine"))
            .await
            .expect("still serving");
    }

    #[test]
    fn payload_messages() {
        assert_eq!(panic_message(&"x"), "x");
        assert_eq!(panic_message(&String::from("y")), "y");
        assert_eq!(panic_message(&5u8), "a panic without a message");
    }
}
