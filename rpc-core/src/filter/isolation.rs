//! `isolation` (provider, when `isolation` is set): gives a service, or one of its methods,
//! its own concurrency budget, so a slow service cannot take every execution slot.
//!
//! `isolation=N` limits the whole service to `N` concurrent executions; `greet.isolation=N`
//! gives method `greet` a budget of its own. Up to `isolation.queue` further calls wait for a
//! slot (until their deadline, failing with [`ErrorKind::Timeout`] then); beyond that a call
//! fails at once with [`ErrorKind::LimitExceeded`]. A dedicated runtime per service is not
//! offered: budgets isolate without the cost of extra threads on small machines.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::state::{Site, StateMap};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

struct Budget {
    limit: u32,
    queue: u32,
    sem: Arc<Semaphore>,
    waiting: AtomicU32,
}

/// Leaves the queue when the wait ends or is dropped.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// See the [module docs](self).
pub struct IsolationFilter {
    budgets: StateMap<Budget>,
}

impl Default for IsolationFilter {
    fn default() -> Self {
        IsolationFilter {
            budgets: StateMap::new("isolation"),
        }
    }
}

#[async_trait::async_trait]
impl Filter for IsolationFilter {
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let url = next.url();
        let method = invocation.method();
        let limit: u32 = url
            .method_param_as(method, keys::ISOLATION, 0)
            .map_err(|e| invocation.annotate(e))?;
        if limit == 0 {
            return next.invoke(invocation).await;
        }
        let queue: u32 = url
            .method_param_as(method, keys::ISOLATION_QUEUE, 0)
            .map_err(|e| invocation.annotate(e))?;
        // A method-level value makes a budget of the method's own; else one per service.
        let per_method = match (
            url.method_param(method, keys::ISOLATION),
            url.param(keys::ISOLATION),
        ) {
            (Some(m), Some(s)) => !std::ptr::eq(m, s),
            (Some(_), None) => true,
            _ => false,
        };
        let site = Site {
            peer: "",
            port: None,
            service: invocation.service(),
            method: if per_method { method } else { "" },
        };
        let scope = if per_method { "method" } else { "service" };
        let budget = self
            .budgets
            .get_or_insert(
                site,
                |b| b.limit == limit && b.queue == queue,
                || Budget {
                    limit,
                    queue,
                    sem: Arc::new(Semaphore::new(limit as usize)),
                    waiting: AtomicU32::new(0),
                },
            )
            .map_err(|e| invocation.annotate(e))?;
        let permit = match budget.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if budget
                    .waiting
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < queue).then_some(n + 1)
                    })
                    .is_err()
                {
                    return Err(invocation.annotate(RpcError::new(
                        ErrorKind::LimitExceeded,
                        format!(
                            "isolation limit of {limit} concurrent executions for this \
                             {scope} reached and {queue} calls already queued"
                        ),
                    )));
                }
                let _waiting = Waiting(&budget.waiting);
                let acquire = budget.sem.clone().acquire_owned();
                let got = match invocation.deadline() {
                    Some(d) => tokio::time::timeout_at(d, acquire).await.ok(),
                    None => Some(acquire.await),
                };
                match got {
                    Some(Ok(p)) => p,
                    _ => {
                        return Err(invocation.annotate(RpcError::timeout(format!(
                            "deadline passed while queued for one of the {limit} execution \
                             slots of this {scope}"
                        ))))
                    }
                }
            }
        };
        let result = next.invoke(invocation).await;
        drop(permit);
        result
    }
}

crate::register!(
    dyn Filter,
    "isolation",
    || Arc::new(IsolationFilter::default()),
    activate = Activate::provider(-14_000).when(keys::ISOLATION)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};
    use std::time::Duration;
    use tokio::time::Instant;

    /// A provider process exporting a slow service and a fast one, each behind the shared
    /// `isolation` filter instance with its own budget.
    #[tokio::test(start_paused = true)]
    async fn a_saturated_slow_service_leaves_another_unaffected() {
        let f = Arc::new(IsolationFilter::default());
        let slow = Mock::new(
            "dubbo://h:1/Slow?isolation=2&isolation.queue=1",
            |_| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(crate::Response::empty())
            },
        );
        let fast = Mock::new("dubbo://h:1/Fast?isolation=4", |_| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(crate::Response::empty())
        });
        let fast_latency = || {
            let (f, fast) = (f.clone(), fast.clone());
            async move {
                let start = Instant::now();
                f.invoke(&*fast, call("Fast", "get"))
                    .await
                    .expect("fast ok");
                start.elapsed()
            }
        };
        let baseline = fast_latency().await;

        // Saturate Slow: two running, one queued.
        let mut slow_calls = Vec::new();
        for _ in 0..3 {
            let (f, slow) = (f.clone(), slow.clone());
            slow_calls.push(tokio::spawn(async move {
                f.invoke(&*slow, call("Slow", "get")).await
            }));
        }
        tokio::task::yield_now().await;
        assert_eq!(slow.calls(), 2, "two executing, one queued");
        let e = f
            .invoke(&*slow, call("Slow", "get"))
            .await
            .expect_err("budget and queue full");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(e.to_string().contains("isolation limit of 2"), "{e}");

        // Fast keeps its latency while Slow is saturated.
        let mut fast_calls = Vec::new();
        for _ in 0..4 {
            fast_calls.push(tokio::spawn(fast_latency()));
        }
        for c in fast_calls {
            let l = c.await.expect("join");
            assert!(
                l <= baseline * 2,
                "fast call took {l:?}, baseline {baseline:?}"
            );
        }
        for c in slow_calls {
            c.await.expect("join").expect("slow calls finish");
        }
        assert_eq!(slow.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn method_budget_is_separate_and_queue_wait_ends_at_deadline() {
        let f = Arc::new(IsolationFilter::default());
        let svc = Mock::new(
            "dubbo://h:1/S?isolation=5&report.isolation=1&report.isolation.queue=1",
            |_| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(crate::Response::empty())
            },
        );
        let running = {
            let (f, svc) = (f.clone(), svc.clone());
            tokio::spawn(async move { f.invoke(&*svc, call("S", "report")).await })
        };
        tokio::task::yield_now().await;
        let mut queued = call("S", "report");
        queued.set_timeout(Duration::from_millis(100));
        let e = f
            .invoke(&*svc, queued)
            .await
            .expect_err("deadline in queue");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        // Other methods use the service budget, not report's.
        f.invoke(&*svc, call("S", "other"))
            .await
            .expect("service budget");
        running.await.expect("join").expect("ok");
    }
}
