//! Cluster: turns many providers into one reliable invoker.
//!
//! A [`Cluster`] strategy (`cluster=`, default `failover`) wraps a [`Directory`] (the live
//! provider list). Per call it asks the directory for the providers, lets the
//! [`Router`] chain narrow them, lets a [`LoadBalance`] (`loadbalance=`, default `random`) pick
//! one, and decides what to do when the call fails.
//!
//! ```text
//!  cluster invoker (failover, failfast, failsafe, failback, forking, broadcast, available)
//!    │  ClusterInvoker<Strategy>: the strategy's own `invoke` over ClusterBase:
//!    │  providers_for → route → select (loadbalance, sticky, skip tried) → call + stats
//!    ├─ Directory: StaticDirectory | RegistryDirectory (NotifyListener, ArcSwap snapshot of
//!    │  parsed Providers, rebuilt once per notification)
//!    ├─ Router chain: condition rules, tag routing (RouterFactory "condition", "tag")
//!    └─ LoadBalance: random, roundrobin, leastactive, consistenthash, shortestresponse, p2c
//! ```
//!
//! Building a consumer invoker from a registry:
//!
//! ```ignore
//! let dir = RegistryDirectory::new(reference_url.clone(), Arc::new(ProtocolInvokerFactory));
//! registry.subscribe(&reference_url, dir.clone()).await?;
//! let invoker = extension::adaptive::<dyn Cluster>(&reference_url, "")?.join(dir)?;
//! ```

use std::sync::Arc;

use crate::config::keys;
use crate::error::Result;
use crate::invocation::{Invocation, Invoker};
use crate::url::Url;

pub mod configurator;
pub mod directory;
pub mod loadbalance;
pub mod provider;
pub mod registry_directory;
pub mod router;
pub mod stats;
pub mod strategy;

pub use configurator::{Override, Overrides};
pub use directory::StaticDirectory;
pub use provider::{CallContext, Provider, ProviderList, WeightTable};
pub use registry_directory::{
    merge_direct_url, merge_provider_url, InvokerFactory, ProtocolInvokerFactory, RegistryDirectory,
};
pub use strategy::{ClusterBase, ClusterInvoker, Strategy};

/// Picks one provider among several for a call.
pub trait LoadBalance: Send + Sync {
    /// The index in `providers` to call for the call of `ctx`; `Ok(None)` when the list is
    /// empty; an error when the call cannot be placed (a consistent-hash argument the call
    /// does not have).
    fn select(&self, providers: &ProviderList, ctx: &CallContext<'_>) -> Result<Option<usize>>;
}

/// A fault-tolerance strategy: joins a directory into one invoker.
pub trait Cluster: Send + Sync {
    /// An invoker that calls through `directory` with this strategy.
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>>;
}

/// The current provider list of one service reference.
pub trait Directory: Send + Sync {
    /// The consumer's reference URL (carries `loadbalance`, `retries`, ...).
    fn url(&self) -> &Url;

    /// The available providers the call of `ctx` may go to, already narrowed by the router
    /// chain: the snapshot's own list, shared, when nothing narrows it (or a routed list the
    /// directory cached), so the usual call copies nothing. An empty result is an error
    /// (`NoProvider`) saying why.
    fn providers_for(&self, ctx: &CallContext<'_>) -> Result<ProviderList>;

    /// The invokers of [`Directory::providers_for`] for `invocation`, without rules in force.
    fn list(&self, invocation: &Invocation) -> Result<Vec<Arc<dyn Invoker>>> {
        let ctx = CallContext::new(self.url(), invocation);
        self.providers_for(&ctx).map(|l| l.invokers())
    }

    /// Whether any provider is available.
    fn is_available(&self) -> bool;

    /// The reference URL as changed by override rules in force (`retries`, `loadbalance`,
    /// `sticky`, ... set at run time), when any rule changes it; `None`: [`Directory::url`].
    fn live_settings(&self) -> Option<Arc<Url>> {
        None
    }

    /// Closes every provider invoker.
    fn destroy(&self) {}
}

/// Narrows a provider list for one call (condition rules, tags, ...).
pub trait Router: Send + Sync {
    /// The providers that may serve the call of `ctx`, a subset of `providers`.
    fn route(&self, providers: Vec<Provider>, ctx: &CallContext<'_>) -> Vec<Provider>;

    /// Routers run in ascending priority.
    fn priority(&self) -> i32 {
        0
    }

    /// Whether the result depends only on the provider list, the consumer URL, the method
    /// and the tag attachments (`dubbo.tag`, `tag`, `dubbo.force.tag`), so that a directory
    /// may cache it per method and tag until the providers or rules change. Default `false`.
    fn cacheable(&self) -> bool {
        false
    }
}

/// Makes routers from rule URLs (`condition://...`, `tag://...`).
pub trait RouterFactory: Send + Sync {
    /// A router for the rule in `url`; a malformed rule is an error naming what is wrong.
    fn create(&self, url: &Url) -> Result<Arc<dyn Router>>;
}

fn _assert_object_safe(
    _: &dyn LoadBalance,
    _: &dyn Cluster,
    _: &dyn Directory,
    _: &dyn Router,
    _: &dyn RouterFactory,
) {
}

crate::extension_point!(dyn LoadBalance, key = keys::LOADBALANCE, default = "random");
crate::extension_point!(dyn Cluster, key = keys::CLUSTER, default = "failover");
crate::extension_point!(dyn RouterFactory, key = "router", default = "condition");

/// `": addr: why; addr: why"` for the providers of `providers` that are unavailable and say
/// why (at most three), or nothing.
pub(crate) fn unavailable_reasons(providers: &[Provider]) -> String {
    let reasons: Vec<String> = providers
        .iter()
        .filter(|p| !p.is_available())
        .filter_map(|p| {
            Some(format!(
                "{}: {}",
                p.url().address(),
                p.invoker().unavailable_reason()?
            ))
        })
        .take(3)
        .collect();
    if reasons.is_empty() {
        String::new()
    } else {
        format!("; {}", reasons.join("; "))
    }
}
