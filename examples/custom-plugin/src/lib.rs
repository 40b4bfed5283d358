//! An example third-party plugin crate: it adds a load balancer and a filter to the framework
//! without the framework knowing about it.
//!
//! An application links it (`use rpc_custom_plugin as _;` keeps the linker from dropping it)
//! and selects the extensions by name in configuration:
//!
//! ```toml
//! [references."org.example.Greeter"]
//! loadbalance = "keyhash"      # this crate's balancer
//! filter = "requestid"         # this crate's filter, added to the default ones
//! ```

#![forbid(unsafe_code)]

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rpc_core::cluster::{CallContext, LoadBalance, ProviderList};
use rpc_core::filter::Filter;
use rpc_core::{Invocation, Invoker, Response, Result};

/// The attachment whose value [`KeyHash`] routes by.
pub const ROUTE_KEY: &str = "route-key";
/// The attachment [`RequestId`] sets.
pub const REQUEST_ID: &str = "x-request-id";

/// `keyhash`: calls carrying the same `route-key` attachment go to the same provider while
/// the provider list is unchanged (a session's calls land where its cache is warm); calls
/// without the attachment go to the first provider.
#[derive(Debug, Default)]
pub struct KeyHash;

impl LoadBalance for KeyHash {
    fn select(&self, providers: &ProviderList, ctx: &CallContext<'_>) -> Result<Option<usize>> {
        if providers.is_empty() {
            return Ok(None);
        }
        let Some(key) = ctx.invocation().attachments().get(ROUTE_KEY) else {
            return Ok(Some(0));
        };
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        Ok(Some((h.finish() % providers.len() as u64) as usize))
    }
}

rpc_core::register!(dyn LoadBalance, "keyhash", || Arc::new(KeyHash));

/// `requestid`: gives every outgoing call an `x-request-id` attachment (kept if the caller set
/// one), so provider logs can be joined with the consumer's.
#[derive(Debug, Default)]
pub struct RequestId {
    next: AtomicU64,
}

#[async_trait::async_trait]
impl Filter for RequestId {
    async fn invoke(&self, next: &dyn Invoker, mut invocation: Invocation) -> Result<Response> {
        if invocation.attachments().get(REQUEST_ID).is_none() {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            invocation
                .attachments_mut()
                .insert(REQUEST_ID, format!("{}-{n}", std::process::id()));
        }
        next.invoke(invocation).await
    }
}

rpc_core::register!(dyn Filter, "requestid", || Arc::new(RequestId::default()));

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_core::{ServiceKey, Url, Value};

    struct Provider(Url);

    #[async_trait::async_trait]
    impl Invoker for Provider {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, inv: Invocation) -> Result<Response> {
            let id = inv.attachments().get(REQUEST_ID).map(str::to_string);
            Ok(Response::value(Value::typed(id)))
        }
    }

    fn providers(n: usize) -> ProviderList {
        ProviderList::of((0..n).map(|i| {
            let url = Url::new("dubbo", "127.0.0.1", 20880 + i as u16);
            Arc::new(Provider(url)) as Arc<dyn Invoker>
        }))
    }

    fn pick(p: &ProviderList, inv: &Invocation) -> Option<usize> {
        let reference = Url::new("consumer", "127.0.0.1", 0);
        KeyHash
            .select(p, &CallContext::new(&reference, inv))
            .expect("select")
    }

    fn call(key: Option<&str>) -> Invocation {
        let mut inv = Invocation::new(ServiceKey::new("S", None, None), "m", Value::Empty);
        if let Some(k) = key {
            inv.attachments_mut().insert(ROUTE_KEY, k);
        }
        inv
    }

    #[test]
    fn same_key_same_provider() {
        let p = providers(5);
        let first = pick(&p, &call(Some("user-42")));
        for _ in 0..100 {
            assert_eq!(pick(&p, &call(Some("user-42"))), first);
        }
        let spread: std::collections::HashSet<_> = (0..200)
            .filter_map(|i| pick(&p, &call(Some(&format!("user-{i}")))))
            .collect();
        assert!(spread.len() > 1, "keys must spread over providers");
        assert_eq!(pick(&p, &call(None)), Some(0));
        assert_eq!(pick(&providers(0), &call(None)), None);
    }

    #[tokio::test]
    async fn request_id_is_added_once() {
        let p = Provider(Url::new("dubbo", "127.0.0.1", 1));
        let f = RequestId::default();
        let id: Option<String> = f
            .invoke(&p, call(None))
            .await
            .expect("ok")
            .into_value()
            .expect("decode");
        assert!(id.expect("set").ends_with("-0"));
        let mut kept = call(None);
        kept.attachments_mut().insert(REQUEST_ID, "mine");
        let id: Option<String> = f
            .invoke(&p, kept)
            .await
            .expect("ok")
            .into_value()
            .expect("decode");
        assert_eq!(id.as_deref(), Some("mine"));
    }
}
