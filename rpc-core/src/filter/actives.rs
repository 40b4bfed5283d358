//! `actives` (consumer, when `actives` is set): at most `actives` calls of one method in
//! flight to one provider.
//!
//! An excess call waits for a slot until the call's deadline (the `timeout` filter, which
//! runs outside, always sets one), then fails with [`ErrorKind::LimitExceeded`]; a call
//! without a deadline fails at once. `actives=0` (or absent) means no limit. Runs outside the
//! circuit breaker, so a local rejection does not count against the provider's health.
//! To limit only at method level (`greet.actives=2`), also name the filter: `filter=actives`.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::state::{Site, StateMap};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

struct Slots {
    limit: u32,
    sem: Arc<Semaphore>,
}

/// See the [module docs](self).
pub struct ActivesFilter {
    slots: StateMap<Slots>,
}

impl Default for ActivesFilter {
    fn default() -> Self {
        ActivesFilter {
            slots: StateMap::new("actives"),
        }
    }
}

#[async_trait::async_trait]
impl Filter for ActivesFilter {
    /// An excess call waits for a slot only until the deadline.
    fn honors_deadline(&self) -> bool {
        true
    }

    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let limit: u32 = next
            .url()
            .method_param_as(invocation.method(), keys::ACTIVES, 0)
            .map_err(|e| invocation.annotate(e))?;
        if limit == 0 {
            return next.invoke(invocation).await;
        }
        let slots = self
            .slots
            .get_or_insert(
                Site::at(next.url(), &invocation),
                |s| s.limit == limit,
                || Slots {
                    limit,
                    sem: Arc::new(Semaphore::new(limit as usize)),
                },
            )
            .map_err(|e| invocation.annotate(e))?;
        let permit = match slots.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let waited = match invocation.deadline() {
                    Some(d) => tokio::time::timeout_at(d, slots.sem.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(|r| r.ok()),
                    None => None,
                };
                match waited {
                    Some(p) => p,
                    None => {
                        return Err(invocation.annotate(
                            RpcError::new(
                                ErrorKind::LimitExceeded,
                                format!(
                                    "actives limit of {limit} concurrent calls reached \
                                     (no slot freed before the deadline)"
                                ),
                            )
                            .with_provider(next.url().address()),
                        ))
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
    "actives",
    || Arc::new(ActivesFilter::default()),
    activate = Activate::consumer(-8_500).when(keys::ACTIVES)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn excess_calls_wait_for_a_slot_until_the_deadline() {
        let p = Mock::new("dubbo://h:1/S?actives=2", |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Response::empty())
        });
        let f = Arc::new(ActivesFilter::default());
        let timed = |ms: u64| {
            let mut c = call("S", "m");
            c.set_timeout(Duration::from_millis(ms));
            c
        };
        let mut running = Vec::new();
        for _ in 0..2 {
            let (f, p, c) = (f.clone(), p.clone(), timed(1000));
            running.push(tokio::spawn(async move { f.invoke(&*p, c).await }));
        }
        tokio::task::yield_now().await;
        // A third call with a short budget gives up with LimitExceeded.
        let e = f.invoke(&*p, timed(50)).await.expect_err("no slot");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(e.to_string().contains("actives limit of 2"), "{e}");
        // A third call with a longer budget gets a slot when one frees.
        f.invoke(&*p, timed(500)).await.expect("waited for a slot");
        for r in running {
            r.await.expect("join").expect("admitted");
        }
        assert_eq!(p.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_deadline_the_excess_fails_at_once() {
        let p = Mock::new("dubbo://h:1/S?actives=1", |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Response::empty())
        });
        let f = Arc::new(ActivesFilter::default());
        let first = {
            let (f, p) = (f.clone(), p.clone());
            tokio::spawn(async move { f.invoke(&*p, call("S", "m")).await })
        };
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let e = f
            .invoke(&*p, call("S", "m"))
            .await
            .expect_err("no slot, no deadline");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(e.provider(), Some("h:1"));
        // Another provider of the same method has its own slots.
        let other = Mock::ok("dubbo://h:2/S?actives=1");
        f.invoke(&*other, call("S", "m")).await.expect("own slots");
        first.await.expect("join").expect("first call ok");
    }
}
