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

use crate::cluster::{Router, RouterFactory};
use crate::error::Result;
use crate::extension;
use crate::invocation::{Invocation, Invoker};
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
    extension::get::<dyn RouterFactory>(url.protocol())?.create(url)
}

/// Runs `routers` (already sorted by priority) over `invokers`.
pub fn route_all(
    routers: &[Arc<dyn Router>],
    mut invokers: Vec<Arc<dyn Invoker>>,
    url: &Url,
    invocation: &Invocation,
) -> Vec<Arc<dyn Invoker>> {
    for r in routers {
        if invokers.is_empty() {
            break;
        }
        invokers = r.route(invokers, url, invocation);
    }
    invokers
}
