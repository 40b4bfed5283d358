//! `available`: call the first available provider, without load balancing.

use std::sync::Arc;

use super::{ClusterBase, ClusterInvoker, Strategy};
use crate::cluster::{Cluster, Directory};
use crate::error::{ErrorKind, Result, RpcError};
use crate::invocation::{Invocation, Invoker, Response};

/// Calls the first provider in directory order whose [`Invoker::is_available`] is true; no
/// retry. Useful with a primary/standby list.
#[derive(Debug, Default)]
pub struct Available;

impl Cluster for Available {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        Ok(ClusterInvoker::join(directory, Available))
    }
}

#[async_trait::async_trait]
impl Strategy for Available {
    async fn invoke(&self, base: &Arc<ClusterBase>, invocation: Invocation) -> Result<Response> {
        let list = base.providers(&base.context(&invocation))?;
        let first = list.iter().find(|i| i.is_available()).ok_or_else(|| {
            invocation.annotate(RpcError::new(
                ErrorKind::NoProvider,
                format!("none of the {} listed providers is available", list.len()),
            ))
        })?;
        let first = first.clone();
        drop(list);
        super::call(&first, invocation).await
    }
}

crate::register!(dyn Cluster, "available", || Arc::new(Available));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::testing::*;
    use crate::cluster::StaticDirectory;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn calls_the_first_available_provider() {
        let p: Vec<_> = (0..3u8)
            .map(|i| Scripted::new("av1.S", i, "", &[Step::Ok]))
            .collect();
        p[0].available.store(false, Ordering::SeqCst);
        let dir = StaticDirectory::new(reference("av1.S", ""), as_dyn(&p));
        let inv = Available.join(Arc::new(dir)).expect("join");
        for _ in 0..10 {
            assert_eq!(
                answer(inv.invoke(call("av1.S", "m")).await.expect("ok")),
                "10.1.0.1:20880"
            );
        }
        assert_eq!(p[0].calls(), 0);
        assert_eq!(p[2].calls(), 0);
    }

    #[tokio::test]
    async fn none_available_is_no_provider() {
        let p = [Scripted::new("av2.S", 0, "", &[Step::Ok])];
        p[0].available.store(false, Ordering::SeqCst);
        let dir = StaticDirectory::new(reference("av2.S", ""), as_dyn(&p));
        let inv = Available.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call("av2.S", "m")).await.expect_err("none");
        assert_eq!(e.kind(), ErrorKind::NoProvider);
    }
}
