//! `forking`: call several providers at once; the first success wins.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use super::{ClusterBase, ClusterInvoker, Strategy};
use crate::cluster::{Cluster, Directory, Provider};
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::invocation::{Invocation, Invoker, Response};

/// Calls `forks` distinct providers concurrently (default [`DEFAULT_FORKS`], method-level
/// first) and returns the first success. The other calls are cancelled by dropping their
/// futures as soon as a winner is known. Fails with the last error if every call failed.
/// For latency-critical reads, at the price of extra load.
#[derive(Debug, Default)]
pub struct Forking;

/// How many providers are called when the URL does not say.
pub const DEFAULT_FORKS: usize = 2;

impl Cluster for Forking {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        Ok(ClusterInvoker::join(directory, Forking))
    }
}

type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Response>> + Send + 'a>>;

#[async_trait::async_trait]
impl Strategy for Forking {
    async fn invoke(&self, base: &Arc<ClusterBase>, invocation: Invocation) -> Result<Response> {
        let chosen = {
            let ctx = base.context(&invocation);
            let forks: usize =
                ctx.settings()
                    .method_param_as(invocation.method(), keys::FORKS, DEFAULT_FORKS)?;
            let list = base.providers(&ctx)?;
            let lb = base.load_balance(&ctx)?;
            let mut chosen: Vec<Provider> = Vec::new();
            if forks == 0 || forks >= list.len() {
                chosen = list.to_vec();
            } else {
                while chosen.len() < forks {
                    let pick = base.select(&*lb, &list, &ctx, &chosen)?;
                    if chosen.iter().any(|c| c.same(&pick)) {
                        break;
                    }
                    chosen.push(pick);
                }
            }
            chosen
        };
        let mut calls: Vec<CallFuture<'_>> = chosen
            .iter()
            .map(|i| Box::pin(super::call(i, invocation.clone())) as CallFuture<'_>)
            .collect();
        let mut last_err: Option<RpcError> = None;
        let result = std::future::poll_fn(|cx| {
            let mut i = 0;
            while i < calls.len() {
                match calls[i].as_mut().poll(cx) {
                    Poll::Ready(Ok(r)) => return Poll::Ready(Ok(r)),
                    Poll::Ready(Err(e)) => {
                        last_err = Some(e);
                        drop(calls.swap_remove(i));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if calls.is_empty() {
                Poll::Ready(Err(last_err.take()))
            } else {
                Poll::Pending
            }
        })
        .await;
        // The losers still running are cancelled here.
        drop(calls);
        result.map_err(|e| {
            e.unwrap_or_else(|| {
                invocation.annotate(RpcError::internal("forking: no call was started"))
            })
        })
    }
}

crate::register!(dyn Cluster, "forking", || Arc::new(Forking));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::testing::*;
    use crate::cluster::StaticDirectory;
    use crate::error::ErrorKind;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn first_success_wins_and_losers_are_cancelled() {
        // Calls are counted in flight (so that the end shows the cancelled ones uncounted).
        crate::cluster::stats::read_active();
        let p = [
            Scripted::new("fk1.S", 0, "", &[Step::Hang]),
            Scripted::new("fk1.S", 1, "", &[Step::Slow(Duration::from_millis(50))]),
            Scripted::new("fk1.S", 2, "", &[Step::Slow(Duration::from_millis(10))]),
        ];
        let dir = StaticDirectory::new(reference("fk1.S", "forks=3"), as_dyn(&p));
        let inv = Forking.join(Arc::new(dir)).expect("join");
        let r = inv.invoke(call("fk1.S", "m")).await.expect("one wins");
        assert_eq!(answer(r), "10.1.0.2:20880");
        assert!(p.iter().all(|s| s.calls() == 1));
        assert_eq!(p[0].cancelled(), 1, "the hanging call was dropped");
        assert_eq!(p[1].cancelled(), 1, "the slower call was dropped");
        assert_eq!(p[2].cancelled(), 0);
        let s = crate::cluster::stats::stats(p[0].url(), "m");
        assert_eq!(s.active(), 0, "cancelled calls leave no in-flight count");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_outwaited_by_a_success() {
        let p = [
            Scripted::new("fk2.S", 0, "", &[Step::Fail(ErrorKind::Network)]),
            Scripted::new("fk2.S", 1, "", &[Step::Slow(Duration::from_millis(30))]),
        ];
        let dir = StaticDirectory::new(reference("fk2.S", ""), as_dyn(&p));
        let inv = Forking.join(Arc::new(dir)).expect("join");
        let r = inv.invoke(call("fk2.S", "m")).await.expect("success wins");
        assert_eq!(answer(r), "10.1.0.1:20880");
    }

    #[tokio::test]
    async fn all_failing_gives_the_last_error() {
        let p = [
            Scripted::new("fk3.S", 0, "", &[Step::Fail(ErrorKind::Network)]),
            Scripted::new("fk3.S", 1, "", &[Step::Fail(ErrorKind::Network)]),
        ];
        let dir = StaticDirectory::new(reference("fk3.S", ""), as_dyn(&p));
        let inv = Forking.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call("fk3.S", "m")).await.expect_err("all fail");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert!(e.provider().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_exactly_forks_distinct_providers() {
        let slow = Step::Slow(Duration::from_millis(10));
        let p: Vec<_> = (0..5u8)
            .map(|i| Scripted::new("fk4.S", i, "", &[slow]))
            .collect();
        let dir = StaticDirectory::new(reference("fk4.S", "forks=3"), as_dyn(&p));
        let inv = Forking.join(Arc::new(dir)).expect("join");
        inv.invoke(call("fk4.S", "m")).await.expect("ok");
        assert_eq!(p.iter().map(|s| s.calls()).sum::<usize>(), 3);
        assert!(p.iter().all(|s| s.calls() <= 1));
    }
}
