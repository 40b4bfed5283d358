//! Directories: where a cluster gets its provider list.

use std::sync::Arc;

use crate::error::{ErrorKind, Result, RpcError};
use crate::invocation::Invoker;
use crate::url::Url;

use super::{router, CallContext, Directory, ProviderList, Router};

/// A fixed provider list: direct connections given in configuration (`url=` of a reference).
pub struct StaticDirectory {
    url: Url,
    providers: ProviderList,
    routers: Vec<Arc<dyn Router>>,
}

impl StaticDirectory {
    /// A directory over `invokers` for the reference `url` (their URLs are parsed once, here).
    pub fn new(url: Url, invokers: Vec<Arc<dyn Invoker>>) -> Self {
        StaticDirectory {
            url,
            providers: ProviderList::of(invokers),
            routers: Vec::new(),
        }
    }

    /// Adds a router to the chain (kept sorted by priority).
    pub fn with_router(mut self, router: Arc<dyn Router>) -> Self {
        self.routers.push(router);
        self.routers.sort_by_key(|r| r.priority());
        self
    }
}

impl Directory for StaticDirectory {
    fn url(&self) -> &Url {
        &self.url
    }

    /// The configured list itself, shared, when no router narrows it and every provider is
    /// available (the usual case: no copy per call); else a routed copy.
    fn providers_for(&self, ctx: &CallContext<'_>) -> Result<ProviderList> {
        if self.routers.is_empty() && !self.providers.is_empty() && self.providers.all_available() {
            return Ok(self.providers.clone());
        }
        let list = self
            .providers
            .iter()
            .filter(|p| p.is_available())
            .cloned()
            .collect();
        let list = router::route_all(&self.routers, list, ctx);
        if list.is_empty() {
            return Err(ctx.invocation().annotate(RpcError::new(
                ErrorKind::NoProvider,
                format!(
                    "none of the {} configured providers is available{}",
                    self.providers.len(),
                    crate::cluster::unavailable_reasons(&self.providers)
                ),
            )));
        }
        Ok(list.into())
    }

    fn is_available(&self) -> bool {
        self.providers.iter().any(|p| p.is_available())
    }

    fn destroy(&self) {
        for p in self.providers.iter() {
            p.invoker().destroy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::testing::{as_dyn, call, reference, Scripted};
    use std::sync::atomic::Ordering;

    /// With every provider up, each call gets the configured list itself; a provider that
    /// goes down is left out of the lists handed out after that, and an empty result is
    /// an error naming the service.
    #[test]
    fn shares_the_configured_list_and_leaves_out_unavailable_providers() {
        let p = [
            Scripted::new("sd1.S", 0, "", &[]),
            Scripted::new("sd1.S", 1, "", &[]),
        ];
        let dir = StaticDirectory::new(reference("sd1.S", ""), as_dyn(&p));
        let inv = call("sd1.S", "m");
        let ctx = CallContext::new(dir.url(), &inv);
        let a = dir.providers_for(&ctx).expect("list");
        let b = dir.providers_for(&ctx).expect("list");
        assert!(ProviderList::ptr_eq(&a, &b));
        assert_eq!(a.len(), 2);
        p[0].available.store(false, Ordering::SeqCst);
        let up = dir.providers_for(&ctx).expect("list");
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].url(), p[1].url());
        p[1].available.store(false, Ordering::SeqCst);
        let e = dir.providers_for(&ctx).expect_err("none up");
        assert_eq!(e.kind(), ErrorKind::NoProvider);
    }
}
