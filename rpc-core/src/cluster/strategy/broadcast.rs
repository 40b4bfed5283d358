//! `broadcast`: call every provider (cache refresh, configuration push).

use std::sync::Arc;

use super::{ClusterBase, ClusterInvoker, Strategy};
use crate::cluster::{Cluster, Directory};
use crate::error::Result;
use crate::invocation::{Invocation, Invoker, Response};

/// Calls every listed provider one after the other. Succeeds only if all succeeded (with the
/// last provider's response); otherwise fails with the last error, after calling them all.
#[derive(Debug, Default)]
pub struct Broadcast;

impl Cluster for Broadcast {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        Ok(ClusterInvoker::join(directory, Broadcast))
    }
}

#[async_trait::async_trait]
impl Strategy for Broadcast {
    async fn invoke(&self, base: &Arc<ClusterBase>, invocation: Invocation) -> Result<Response> {
        let list = base.providers(&base.context(&invocation))?;
        let mut last_ok = None;
        let mut last_err = None;
        for invoker in list.iter() {
            match super::call(invoker, invocation.clone()).await {
                Ok(r) => last_ok = Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "broadcast: one provider failed");
                    last_err = Some(e);
                }
            }
        }
        match (last_err, last_ok) {
            (Some(e), _) => Err(e),
            (None, Some(r)) => Ok(r),
            (None, None) => Ok(Response::empty()),
        }
    }
}

crate::register!(dyn Cluster, "broadcast", || Arc::new(Broadcast));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::testing::*;
    use crate::cluster::StaticDirectory;
    use crate::error::ErrorKind;

    #[tokio::test]
    async fn calls_every_provider() {
        let p: Vec<_> = (0..4u8)
            .map(|i| Scripted::new("bc1.S", i, "", &[Step::Ok]))
            .collect();
        let dir = StaticDirectory::new(reference("bc1.S", ""), as_dyn(&p));
        let inv = Broadcast.join(Arc::new(dir)).expect("join");
        inv.invoke(call("bc1.S", "m")).await.expect("all ok");
        assert!(p.iter().all(|s| s.calls() == 1));
    }

    #[tokio::test]
    async fn one_failure_fails_the_call_after_calling_all_with_the_last_error() {
        let p = [
            Scripted::new("bc2.S", 0, "", &[Step::Fail(ErrorKind::Timeout)]),
            Scripted::new("bc2.S", 1, "", &[Step::Fail(ErrorKind::Network)]),
            Scripted::new("bc2.S", 2, "", &[Step::Ok]),
        ];
        let dir = StaticDirectory::new(reference("bc2.S", ""), as_dyn(&p));
        let inv = Broadcast.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call("bc2.S", "m")).await.expect_err("fails");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert_eq!(e.provider(), Some("10.1.0.1:20880"));
        assert!(p.iter().all(|s| s.calls() == 1));
    }

    #[tokio::test]
    async fn no_provider_is_an_error() {
        let dir = StaticDirectory::new(reference("bc3.S", ""), Vec::new());
        let inv = Broadcast.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call("bc3.S", "m")).await.expect_err("none");
        assert_eq!(e.kind(), ErrorKind::NoProvider);
    }
}
