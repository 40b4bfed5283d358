//! `failfast`: one attempt; any failure goes straight back to the caller.

use std::sync::Arc;

use crate::cluster::{Cluster, Directory, LoadBalance};
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension;
use crate::invocation::{Invocation, Invoker, Response};
use crate::url::Url;

/// Calls one provider chosen by the load balancer and never retries. For non-idempotent
/// writes where a duplicate is worse than an error.
#[derive(Debug, Default)]
pub struct Failfast;

impl Cluster for Failfast {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        Ok(Arc::new(FailfastInvoker { directory }))
    }
}

struct FailfastInvoker {
    directory: Arc<dyn Directory>,
}

#[async_trait::async_trait]
impl Invoker for FailfastInvoker {
    fn url(&self) -> &Url {
        self.directory.url()
    }

    fn is_available(&self) -> bool {
        self.directory.is_available()
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Response> {
        let invokers = self.directory.list(&invocation)?;
        let lb = extension::adaptive::<dyn LoadBalance>(self.url(), invocation.method())?;
        let chosen = lb
            .select(&invokers, &invocation)
            .and_then(|i| invokers.get(i))
            .ok_or_else(|| {
                invocation.annotate(RpcError::new(
                    ErrorKind::NoProvider,
                    "the load balancer chose no provider",
                ))
            })?
            .clone();
        let provider = chosen.url().address();
        chosen
            .invoke(invocation.clone())
            .await
            .map_err(|e| invocation.annotate(e).with_provider(provider))
    }

    fn destroy(&self) {
        self.directory.destroy();
    }
}

crate::register!(dyn Cluster, "failfast", || Arc::new(Failfast));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;
    use crate::cluster::StaticDirectory;

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
        let dir = StaticDirectory::new(reference(), providers(&[""]));
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
        let url = reference().with_param("loadbalance", "rr");
        let dir = StaticDirectory::new(url, providers(&[""]));
        let inv = Failfast.join(Arc::new(dir)).expect("join");
        let e = inv.invoke(call()).await.expect_err("unknown");
        assert!(
            e.to_string().contains("unknown loadbalance 'rr'; known:"),
            "{e}"
        );
    }
}
