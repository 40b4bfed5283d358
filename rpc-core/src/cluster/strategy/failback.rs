//! `failback`: on failure, answer empty at once and retry in the background.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{ClusterBase, ClusterInvoker, Strategy};
use crate::cluster::{Cluster, Directory};
use crate::config::keys;
use crate::error::Result;
use crate::invocation::{Invocation, Invoker, Response};

/// Calls one provider; on failure the caller gets [`Response::empty`] at once and the
/// invocation is retried in the background every `failback.interval` milliseconds (default
/// [`DEFAULT_INTERVAL_MS`]) up to `retries` times (default [`DEFAULT_RETRIES`]), each time on a
/// freshly listed and selected provider, then dropped with an error log.
///
/// At most `failback.tasks` invocations (default [`DEFAULT_TASKS`]) wait for a retry at once;
/// a failure beyond that is dropped at once with an error log, so a provider outage cannot
/// grow memory without bound. For notifications whose delivery may be late but should happen.
/// Keys are read from the reference URL (method level first). Retries stop when the invoker
/// is destroyed.
#[derive(Debug, Default)]
pub struct Failback;

/// Milliseconds between background retries when the URL does not say.
pub const DEFAULT_INTERVAL_MS: u64 = 5000;
/// Background retries of one invocation when the URL does not say.
pub const DEFAULT_RETRIES: u32 = 3;
/// Invocations waiting for a retry at once when the URL does not say.
pub const DEFAULT_TASKS: usize = 100;

impl Cluster for Failback {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        let tasks: usize = directory
            .url()
            .param_as(keys::FAILBACK_TASKS, DEFAULT_TASKS)?;
        Ok(ClusterInvoker::join(
            directory,
            FailbackStrategy {
                slots: Arc::new(Semaphore::new(tasks)),
                destroyed: Arc::new(AtomicBool::new(false)),
            },
        ))
    }
}

/// The state of one failback reference: its retry slots, and whether it was destroyed.
struct FailbackStrategy {
    slots: Arc<Semaphore>,
    destroyed: Arc<AtomicBool>,
}

async fn retry(
    base: Arc<ClusterBase>,
    destroyed: Arc<AtomicBool>,
    invocation: Invocation,
    interval: Duration,
    retries: u32,
) {
    for attempt in 1..=retries {
        tokio::time::sleep(interval).await;
        if destroyed.load(Ordering::Acquire) {
            return;
        }
        match base
            .select_and_call(Cow::Borrowed(&invocation), &[], None)
            .await
            .1
        {
            Ok(_) => {
                tracing::info!(
                    service = %invocation.service(),
                    method = invocation.method(),
                    attempt,
                    "failback: background retry succeeded"
                );
                return;
            }
            Err(e) if attempt == retries => {
                tracing::error!(error = %e, attempt, "failback: giving up on the invocation");
            }
            Err(e) => tracing::warn!(error = %e, attempt, "failback: retry failed"),
        }
    }
}

#[async_trait::async_trait]
impl Strategy for FailbackStrategy {
    async fn invoke(&self, base: &Arc<ClusterBase>, invocation: Invocation) -> Result<Response> {
        let e = match base
            .select_and_call(Cow::Borrowed(&invocation), &[], None)
            .await
            .1
        {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let method = invocation.method();
        let url = base.url();
        let interval: u64 =
            url.method_param_as(method, keys::FAILBACK_INTERVAL, DEFAULT_INTERVAL_MS)?;
        let retries: u32 = url.method_param_as(method, keys::RETRIES, DEFAULT_RETRIES)?;
        if retries == 0 {
            tracing::error!(error = %e, "failback: call failed and retries=0, dropping it");
            return Ok(Response::empty());
        }
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                tracing::warn!(error = %e, "failback: call failed, will retry in the background");
                let (base, destroyed) = (base.clone(), self.destroyed.clone());
                tokio::spawn(async move {
                    let interval = Duration::from_millis(interval);
                    retry(base, destroyed, invocation, interval, retries).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::error!(
                    error = %e,
                    "failback: retry queue is full (failback.tasks), dropping the invocation"
                );
            }
        }
        Ok(Response::empty())
    }

    fn destroy(&self) {
        self.destroyed.store(true, Ordering::Release);
    }
}

crate::register!(dyn Cluster, "failback", || Arc::new(Failback));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::testing::*;
    use crate::cluster::StaticDirectory;
    use crate::error::ErrorKind;
    use crate::invocation::{Outcome, Value};

    const NET: Step = Step::Fail(ErrorKind::Network);

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn caller_gets_empty_at_once_and_the_call_is_retried_on_the_interval() {
        let p = [Scripted::new("fb1.S", 0, "", &[NET, NET, Step::Ok])];
        let dir = StaticDirectory::new(reference("fb1.S", "failback.interval=1000"), as_dyn(&p));
        let inv = Failback.join(Arc::new(dir)).expect("join");
        let r = inv.invoke(call("fb1.S", "m")).await.expect("empty");
        settle().await;
        assert!(matches!(r.outcome, Outcome::Value(Value::Empty)));
        assert_eq!(p[0].calls(), 1);
        tokio::time::advance(Duration::from_millis(999)).await;
        settle().await;
        assert_eq!(p[0].calls(), 1, "not before the interval");
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(p[0].calls(), 2);
        tokio::time::advance(Duration::from_millis(1000)).await;
        settle().await;
        assert_eq!(p[0].calls(), 3, "third attempt succeeds");
        tokio::time::advance(Duration::from_millis(10_000)).await;
        settle().await;
        assert_eq!(p[0].calls(), 3, "no retry after success");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_retries_attempts() {
        let p = [Scripted::new("fb2.S", 0, "", &[NET])];
        let dir = StaticDirectory::new(reference("fb2.S", "retries=2"), as_dyn(&p));
        let inv = Failback.join(Arc::new(dir)).expect("join");
        inv.invoke(call("fb2.S", "m")).await.expect("empty");
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(DEFAULT_INTERVAL_MS)).await;
            settle().await;
        }
        assert_eq!(p[0].calls(), 3, "first call plus two retries");
    }

    #[tokio::test(start_paused = true)]
    async fn queue_is_bounded() {
        let p = [Scripted::new("fb3.S", 0, "", &[NET])];
        let url = reference("fb3.S", "failback.tasks=2&retries=1");
        let dir = StaticDirectory::new(url, as_dyn(&p));
        let inv = Failback.join(Arc::new(dir)).expect("join");
        for _ in 0..5 {
            inv.invoke(call("fb3.S", "m")).await.expect("empty");
        }
        settle().await;
        assert_eq!(p[0].calls(), 5);
        tokio::time::advance(Duration::from_millis(DEFAULT_INTERVAL_MS)).await;
        settle().await;
        assert_eq!(
            p[0].calls(),
            7,
            "only two invocations were queued for retry"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn destroy_stops_pending_retries() {
        let p = [Scripted::new("fb4.S", 0, "", &[NET])];
        let dir = StaticDirectory::new(reference("fb4.S", ""), as_dyn(&p));
        let inv = Failback.join(Arc::new(dir)).expect("join");
        inv.invoke(call("fb4.S", "m")).await.expect("empty");
        inv.destroy();
        tokio::time::advance(Duration::from_millis(DEFAULT_INTERVAL_MS * 5)).await;
        settle().await;
        assert_eq!(p[0].calls(), 1);
    }
}
