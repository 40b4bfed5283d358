//! `executes` (provider, when `executes` is set): at most `executes` concurrent executions of
//! one method of a service (method level first: `greet.executes=5`).
//!
//! An excess call is rejected at once with [`ErrorKind::LimitExceeded`] naming the limit — an
//! error response, never a dropped connection; the consumer's failover may try another
//! provider. `0` (or absent) means no limit. To limit only at method level, also name the
//! filter: `filter=executes`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::state::{Site, StateMap};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

/// Decrements the in-flight count when the execution ends (or is dropped).
struct Running<'a>(&'a AtomicU32);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// See the [module docs](self).
pub struct ExecutesFilter {
    running: StateMap<AtomicU32>,
}

impl Default for ExecutesFilter {
    fn default() -> Self {
        ExecutesFilter {
            running: StateMap::new("executes"),
        }
    }
}

#[async_trait::async_trait]
impl Filter for ExecutesFilter {
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let limit: u32 = next
            .url()
            .method_param_as(invocation.method(), keys::EXECUTES, 0)
            .map_err(|e| invocation.annotate(e))?;
        if limit == 0 {
            return next.invoke(invocation).await;
        }
        let count = self
            .running
            .get_or_insert(Site::of(&invocation), |_| true, || AtomicU32::new(0))
            .map_err(|e| invocation.annotate(e))?;
        if count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(invocation.annotate(RpcError::new(
                ErrorKind::LimitExceeded,
                format!("executes limit of {limit} concurrent executions reached"),
            )));
        }
        let _running = Running(&count);
        next.invoke(invocation).await
    }
}

crate::register!(
    dyn Filter,
    "executes",
    || Arc::new(ExecutesFilter::default()),
    activate = Activate::provider(-15_000).when(keys::EXECUTES)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn excess_executions_are_rejected_at_once() {
        let p = Mock::new("dubbo://h:1/S?executes=10&slow.executes=2", |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(crate::Response::empty())
        });
        let f = Arc::new(ExecutesFilter::default());
        let mut admitted = Vec::new();
        for _ in 0..2 {
            let (f, p) = (f.clone(), p.clone());
            admitted.push(tokio::spawn(async move {
                f.invoke(&*p, call("S", "slow")).await
            }));
        }
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let e = f
            .invoke(&*p, call("S", "slow"))
            .await
            .expect_err("over the limit");
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "rejected without waiting"
        );
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(e.to_string().contains("executes limit of 2"), "{e}");
        // Another method has its own budget.
        f.invoke(&*p, call("S", "fast")).await.expect("own limit");
        for a in admitted {
            a.await.expect("join").expect("admitted calls succeed");
        }
        // Slots are released when executions end.
        f.invoke(&*p, call("S", "slow")).await.expect("free again");
        assert_eq!(p.calls(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_execution_frees_its_slot() {
        let p = Mock::new("dubbo://h:1/S?executes=1", |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(crate::Response::empty())
        });
        let f = Arc::new(ExecutesFilter::default());
        let stuck = {
            let (f, p) = (f.clone(), p.clone());
            tokio::spawn(async move { f.invoke(&*p, call("S", "m")).await })
        };
        tokio::task::yield_now().await;
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("busy");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        stuck.abort();
        assert!(stuck.await.expect_err("aborted").is_cancelled());
        let next = {
            let (f, p) = (f.clone(), p.clone());
            tokio::spawn(async move { f.invoke(&*p, call("S", "m")).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(
            p.calls(),
            2,
            "the slot was freed and the next call admitted"
        );
        next.abort();
    }
}
