//! `failfast`: one attempt; any failure goes straight back to the caller.

use std::sync::Arc;

use super::{ClusterBase, ClusterInvoker, Strategy};
use crate::cluster::{Cluster, Directory};
use crate::error::Result;
use crate::invocation::{BoxedCall, Invocation, Invoker};

/// Calls one provider chosen by the load balancer and never retries. For non-idempotent
/// writes where a duplicate is worse than an error.
#[derive(Debug, Default)]
pub struct Failfast;

impl Cluster for Failfast {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        Ok(ClusterInvoker::join(directory, Failfast))
    }
}

#[async_trait::async_trait]
impl Strategy for Failfast {
    // The provider's call is this strategy's future (no box of its own around it).
    fn invoke<'s, 'b, 'f>(
        &'s self,
        base: &'b Arc<ClusterBase>,
        invocation: Invocation,
    ) -> BoxedCall<'f>
    where
        's: 'f,
        'b: 'f,
        Self: 'f,
    {
        base.select_and_hand_over(invocation, None)
    }
}

crate::register!(dyn Cluster, "failfast", || Arc::new(Failfast));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;
    use crate::cluster::StaticDirectory;
    use crate::config::keys;
    use crate::error::{ErrorKind, RpcError};
    use crate::invocation::Response;
    use crate::url::Url;

    struct Broken(Url);

    #[async_trait::async_trait]
    impl Invoker for Broken {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, _: Invocation) -> Result<Response> {
            Err(RpcError::network("connection reset"))
        }
    }

    fn reference() -> Url {
        Url::parse("consumer://127.0.0.1/S").expect("url")
    }

    #[tokio::test]
    async fn calls_one_provider() {
        let dir = StaticDirectory::new(reference(), invokers(&[""]));
        let inv = Failfast.join(Arc::new(dir)).expect("join");
        let addr: String = inv
            .invoke(call())
            .await
            .expect("ok")
            .into_value()
            .expect("str");
        assert_eq!(addr, "10.0.0.0:20880");
    }

    #[tokio::test]
    async fn failure_is_returned_with_provider_service_and_method() {
        let url = Url::parse("dubbo://10.0.0.9:20880/S").expect("url");
        let dir = StaticDirectory::new(reference(), vec![Arc::new(Broken(url))]);
        let inv = Failfast.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call()).await.expect_err("fails");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert_eq!(e.provider(), Some("10.0.0.9:20880"));
        assert_eq!(e.service(), Some("S"));
        assert_eq!(e.method(), Some("m"));
    }

    #[tokio::test]
    async fn no_provider_is_an_error() {
        let dir = StaticDirectory::new(reference(), Vec::new());
        let inv = Failfast.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call()).await.expect_err("none");
        assert_eq!(e.kind(), ErrorKind::NoProvider);
    }

    #[tokio::test]
    async fn unknown_loadbalance_in_url_is_reported() {
        let url = reference().with_param(keys::LOADBALANCE, "rr");
        let dir = StaticDirectory::new(url, invokers(&[""]));
        let inv = Failfast.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call()).await.expect_err("unknown");
        assert!(
            e.to_string().contains("unknown loadbalance 'rr'; known:"),
            "{e}"
        );
    }
}
