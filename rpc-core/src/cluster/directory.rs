//! Directories: where a cluster gets its provider list.

use std::sync::Arc;

use crate::error::{ErrorKind, Result, RpcError};
use crate::invocation::{Invocation, Invoker};
use crate::url::Url;

use super::{Directory, Router};

/// A fixed provider list: direct connections given in configuration (`url=` of a reference).
pub struct StaticDirectory {
    url: Url,
    invokers: Arc<[Arc<dyn Invoker>]>,
    routers: Vec<Arc<dyn Router>>,
}

impl StaticDirectory {
    /// A directory over `invokers` for the reference `url`.
    pub fn new(url: Url, invokers: Vec<Arc<dyn Invoker>>) -> Self {
        StaticDirectory {
            url,
            invokers: invokers.into(),
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

    fn list(&self, invocation: &Invocation) -> Result<Vec<Arc<dyn Invoker>>> {
        let mut list: Vec<Arc<dyn Invoker>> = self
            .invokers
            .iter()
            .filter(|i| i.is_available())
            .cloned()
            .collect();
        for r in &self.routers {
            list = r.route(list, &self.url, invocation);
        }
        if list.is_empty() {
            return Err(invocation.annotate(RpcError::new(
                ErrorKind::NoProvider,
                format!(
                    "none of the {} configured providers is available{}",
                    self.invokers.len(),
                    crate::cluster::unavailable_reasons(&self.invokers)
                ),
            )));
        }
        Ok(list)
    }

    /// The configured list itself, shared, when no router narrows it and every provider is
    /// available (the usual case: no copy per call); else a routed copy.
    fn list_shared(&self, invocation: &Invocation) -> Result<Arc<[Arc<dyn Invoker>]>> {
        if self.routers.is_empty()
            && !self.invokers.is_empty()
            && self.invokers.iter().all(|i| i.is_available())
        {
            return Ok(self.invokers.clone());
        }
        self.list(invocation).map(Arc::from)
    }

    fn is_available(&self) -> bool {
        self.invokers.iter().any(|i| i.is_available())
    }

    fn destroy(&self) {
        for i in self.invokers.iter() {
            i.destroy();
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
        let a = dir.list_shared(&call("sd1.S", "m")).expect("list");
        let b = dir.list_shared(&call("sd1.S", "m")).expect("list");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.len(), 2);
        p[0].available.store(false, Ordering::SeqCst);
        let up = dir.list_shared(&call("sd1.S", "m")).expect("list");
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].url(), p[1].url());
        p[1].available.store(false, Ordering::SeqCst);
        let e = dir.list_shared(&call("sd1.S", "m")).err().expect("none up");
        assert_eq!(e.kind(), ErrorKind::NoProvider);
    }
}
