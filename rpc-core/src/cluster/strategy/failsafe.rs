//! `failsafe`: a failure is logged and swallowed; the caller gets an empty response.

use std::sync::Arc;

use super::{ClusterBase, ClusterInvoker, Strategy};
use crate::cluster::{Cluster, Directory};
use crate::error::Result;
use crate::invocation::{Invocation, Invoker, Response};

/// Calls one provider; on any error logs it at `warn` and returns [`Response::empty`]. For
/// calls whose failure must not disturb the caller (audit logs, metrics reports).
#[derive(Debug, Default)]
pub struct Failsafe;

impl Cluster for Failsafe {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        Ok(ClusterInvoker::join(directory, Failsafe))
    }
}

#[async_trait::async_trait]
impl Strategy for Failsafe {
    async fn invoke(&self, base: &Arc<ClusterBase>, invocation: Invocation) -> Result<Response> {
        let called = match base.pick(&invocation, &[]) {
            Ok(provider) => super::call(&provider, invocation).await,
            Err(e) => Err(e),
        };
        match called {
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::warn!(error = %e, "failsafe: call failed, returning an empty response");
                Ok(Response::empty())
            }
        }
    }
}

crate::register!(dyn Cluster, "failsafe", || Arc::new(Failsafe));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::testing::*;
    use crate::cluster::StaticDirectory;
    use crate::error::ErrorKind;
    use crate::invocation::{Outcome, Value};

    #[tokio::test]
    async fn failure_becomes_an_empty_response() {
        let p = [Scripted::new(
            "fs1.S",
            0,
            "",
            &[Step::Fail(ErrorKind::Network)],
        )];
        let dir = StaticDirectory::new(reference("fs1.S", ""), as_dyn(&p));
        let inv = Failsafe.join(Arc::new(dir)).expect("join");
        let r = inv.invoke(call("fs1.S", "m")).await.expect("swallowed");
        assert!(matches!(r.outcome, Outcome::Value(Value::Empty)));
        assert_eq!(p[0].calls(), 1);
    }

    #[tokio::test]
    async fn absent_providers_also_give_an_empty_response_and_success_passes_through() {
        let dir = StaticDirectory::new(reference("fs2.S", ""), Vec::new());
        let inv = Failsafe.join(Arc::new(dir)).expect("join");
        let r = inv.invoke(call("fs2.S", "m")).await.expect("swallowed");
        assert!(matches!(r.outcome, Outcome::Value(Value::Empty)));

        let p = [Scripted::new("fs2.S", 0, "", &[Step::Ok])];
        let dir = StaticDirectory::new(reference("fs2.S", ""), as_dyn(&p));
        let inv = Failsafe.join(Arc::new(dir)).expect("join");
        assert_eq!(
            answer(inv.invoke(call("fs2.S", "m")).await.expect("ok")),
            "10.1.0.0:20880"
        );
    }
}
