//! Routers: narrow the provider list before load balancing. One file each, registered as
//! [`RouterFactory`] extensions under the rule URL's protocol:
//!
//! - `condition` ([`ConditionRouter`]): Dubbo's condition rules,
//!   `condition://0.0.0.0/{interface}?rule=<url-encoded rule>&force=false&priority=0`;
//! - `tag` ([`TagRouter`]): routes by the request's tag attachment, `tag://0.0.0.0/{interface}`;
//! - `zone` ([`ZoneRouter`]): the consumer's own zone first, other zones only when it has no
//!   available provider; added to every reference whose URL names a `zone`.
//!
//! Rule routers arrive at run time as `routers` category notifications (see
//! [`RegistryDirectory`](crate::cluster::RegistryDirectory)) or are added to a
//! [`StaticDirectory`](crate::cluster::StaticDirectory) with `with_router`.

use std::sync::Arc;

use crate::cluster::{CallContext, Provider, Router, RouterFactory};
use crate::error::Result;
use crate::extension;
use crate::url::Url;

pub mod condition;
pub mod tag;
pub mod zone;

pub use condition::{ConditionRouter, ConditionRouterFactory};
pub use tag::{TagRouter, TagRouterFactory};
pub use zone::{ZoneRouter, ZoneRouterFactory};

/// Builds a router from a rule URL with the factory named by its protocol (`condition://`,
/// `tag://`).
pub fn from_url(url: &Url) -> Result<Arc<dyn Router>> {
    extension::get::<dyn RouterFactory>(router_type(url))?.create(url)
}

/// The type of router a rule URL is for: its `router` parameter, as Dubbo Admin writes
/// `route://` rules (and Dubbo reads them), else its protocol.
pub fn router_type(url: &Url) -> &str {
    url.param(crate::config::keys::ROUTER)
        .filter(|t| !t.is_empty())
        .unwrap_or(url.protocol())
}

/// Whether a router of `url`'s type is linked into this process.
pub fn is_known(url: &Url) -> bool {
    extension::get::<dyn RouterFactory>(router_type(url)).is_ok()
}

/// Runs `routers` (already sorted by priority) over `providers`.
pub fn route_all(
    routers: &[Arc<dyn Router>],
    mut providers: Vec<Provider>,
    ctx: &CallContext<'_>,
) -> Vec<Provider> {
    for r in routers {
        if providers.is_empty() {
            break;
        }
        providers = r.route(providers, ctx);
    }
    providers
}

/// Test support: routing with a consumer URL and an invocation.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::invocation::{Invocation, Invoker};

    /// [`Router::route`] for the call `invocation` through the reference `url`.
    pub(crate) trait RouteWith {
        fn route_with(&self, p: Vec<Provider>, url: &Url, invocation: &Invocation)
            -> Vec<Provider>;
    }

    impl<R: Router + ?Sized> RouteWith for R {
        fn route_with(
            &self,
            p: Vec<Provider>,
            url: &Url,
            invocation: &Invocation,
        ) -> Vec<Provider> {
            self.route(p, &CallContext::new(url, invocation))
        }
    }

    /// A provider per invoker.
    pub(crate) fn wrap(invokers: Vec<Arc<dyn Invoker>>) -> Vec<Provider> {
        invokers.into_iter().map(Provider::new).collect()
    }
}
