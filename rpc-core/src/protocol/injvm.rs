//! `injvm`: calls a provider exported in the same process, without sockets or serialization.
//!
//! Typed arguments reach the skeleton as the very values the proxy built (see
//! [`Value::decode`](crate::Value::decode)); nothing is encoded unless a value is shared.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::error::{ErrorKind, Result, RpcError};
use crate::invocation::{Invocation, Invoker, Response};
use crate::protocol::{Exporter, Protocol};
use crate::url::Url;

type Table = Arc<RwLock<HashMap<String, Arc<dyn Invoker>>>>;

/// The in-process protocol; one table of exported services per process.
#[derive(Default)]
pub struct Injvm {
    exported: Table,
}

#[async_trait::async_trait]
impl Protocol for Injvm {
    fn default_port(&self) -> u16 {
        0
    }

    /// In process, a stream is handed over as it is.
    fn carries_streams(&self) -> bool {
        true
    }

    async fn export(&self, url: Url, invoker: Arc<dyn Invoker>) -> Result<Box<dyn Exporter>> {
        let key = url.service_key();
        let mut table = self.exported.write().map_err(|_| poisoned())?;
        if table.contains_key(&key) {
            return Err(RpcError::config(format!(
                "service {key} is already exported in this process"
            )));
        }
        table.insert(key.clone(), invoker);
        Ok(Box::new(InjvmExporter {
            url,
            key,
            table: self.exported.clone(),
        }))
    }

    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>> {
        Ok(Arc::new(InjvmInvoker {
            key: url.service_key(),
            url,
            table: self.exported.clone(),
        }))
    }
}

fn poisoned() -> RpcError {
    RpcError::internal("injvm export table poisoned by a panic")
}

struct InjvmExporter {
    url: Url,
    key: String,
    table: Table,
}

#[async_trait::async_trait]
impl Exporter for InjvmExporter {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn unexport(&self) {
        if let Ok(mut t) = self.table.write() {
            t.remove(&self.key);
        }
    }
}

struct InjvmInvoker {
    url: Url,
    key: String,
    table: Table,
}

impl InjvmInvoker {
    fn target(&self) -> Option<Arc<dyn Invoker>> {
        self.table.read().ok()?.get(&self.key).cloned()
    }
}

#[async_trait::async_trait]
impl Invoker for InjvmInvoker {
    fn url(&self) -> &Url {
        &self.url
    }

    fn is_available(&self) -> bool {
        self.target().is_some()
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Response> {
        let target = self.target().ok_or_else(|| {
            invocation.annotate(RpcError::new(
                ErrorKind::ServiceNotFound,
                format!("{} is not exported in this process", self.key),
            ))
        })?;
        // The provider's chain runs on the caller's task: a panic in it must not unwind into
        // the caller.
        crate::error::catch_panics(target.invoke(invocation)).await
    }
}

crate::register!(dyn Protocol, "injvm", || Arc::new(Injvm::default()));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{ServiceKey, Value};

    struct Double(Url);

    #[async_trait::async_trait]
    impl Invoker for Double {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, mut inv: Invocation) -> Result<Response> {
            let (n,): (u64,) = inv.take_args().decode()?;
            Ok(Response::value(Value::typed(n * 2)))
        }
    }

    #[tokio::test]
    async fn export_refer_call_unexport() {
        let p = Injvm::default();
        let url = Url::parse("injvm://127.0.0.1/calc.Double?version=1").expect("url");
        let exp = p
            .export(url.clone(), Arc::new(Double(url.clone())))
            .await
            .expect("export");
        let r = p.refer(url.clone()).await.expect("refer");
        assert!(r.is_available());
        let inv = Invocation::new(
            ServiceKey::new("calc.Double", None, Some("1")),
            "double",
            Value::typed((21u64,)),
        );
        let n: u64 = r
            .invoke(inv.clone())
            .await
            .expect("call")
            .into_value()
            .expect("u64");
        assert_eq!(n, 42);

        let again = p.export(url.clone(), Arc::new(Double(url.clone()))).await;
        assert!(again.is_err(), "double export must be refused");

        exp.unexport().await;
        assert!(!r.is_available());
        let e = r.invoke(inv).await.expect_err("gone");
        assert_eq!(e.kind(), ErrorKind::ServiceNotFound);
    }
}
