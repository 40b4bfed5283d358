//! A directory fed by a registry subscription.
//!
//! [`RegistryDirectory`] is a [`NotifyListener`]: the registry hands it the full provider list
//! of the service whenever it changes (`providers` category) and the routing rules
//! (`routers` category). It keeps the provider URLs and one invoker per URL, and on each
//! notification rebuilds only what changed: invokers of URLs still listed are reused (URLs
//! are compared whole, so a provider whose parameters changed, a new weight for example, gets
//! a new invoker), new URLs are referred through an injectable [`InvokerFactory`], and
//! invokers of departed URLs are destroyed once no call holds them any more (or after a grace
//! period, [`DESTROY_GRACE`]), so a list swap under load loses no call.
//!
//! Provider URLs are filtered before use: `empty://` markers, `enabled=false` providers and,
//! when the reference sets `protocol=`, providers of other protocols are skipped. Each
//! provider's invoker is made for the URL a consumer uses to call it: the provider URL with
//! the reference's settings laid over it ([`merge_provider_url`]) and then the service's
//! override rules (`configurators` category, [`Overrides`]: a rule wins over both). A provider
//! an override sets `disabled=true` is left out. When the rules change, every provider whose
//! URL changed gets a new invoker and the old one retires as below, so a timeout or a weight
//! changed at run time loses no call.
//!
//! # Telling "no providers" from a registry fault
//!
//! The convention, also stated on [`NotifyListener::notify`]:
//!
//! - A notification always carries the **complete** list. An **empty list** means the registry
//!   really holds no provider: the directory empties and calls fail with `NoProvider`. For
//!   compatibility with Dubbo registries, a list made only of `empty://` URLs means the same
//!   (`empty://` entries are otherwise ignored).
//! - A registry that **lost its connection does not notify**: the directory keeps serving its
//!   last good list until the registry is back and notifies again.
//! - A non-empty list none of whose providers can be referred (every `refer` failed, or every
//!   URL is disabled or of another protocol) is treated as a fault and the last good list is
//!   kept, with a warning.
//!
//! # Hot path
//!
//! The snapshot holds one parsed [`Provider`] per provider (its invoker, weight, warm-up,
//! zone, tag and statistics handle), built once per notification: a provider whose URL did
//! not change keeps its `Provider`, and nothing is parsed per call.
//! [`Directory::providers_for`] (what the cluster invokers call) reads an [`ArcSwap`]
//! snapshot (providers and router chain together): nothing is held across an `.await`. When
//! every provider is available and every router is [cacheable](Router::cacheable), the
//! routed list is cached in the snapshot per method and tag and handed out as a shared
//! [`ProviderList`] (no copy per call, and the list's weight table and statistics are
//! computed once); any provider or rule notification builds a new snapshot, which starts
//! with an empty cache. A provider that is not available makes the call take the uncached
//! path, so availability is always current.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::configurator::Overrides;
use super::{router, stats, CallContext, Directory, Provider, ProviderList, Router};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension;
use crate::invocation::{Invocation, Invoker};
use crate::protocol::Protocol;
use crate::registry::{Category, NotifyListener};
use crate::url::Url;

/// The URL a consumer uses to call `provider`, as a registry listed it, for `reference`:
/// [`merge_direct_url`], and without a `serialization` of the reference's, the one the
/// provider advertises (hessian2 for a Java provider, which names none).
pub fn merge_provider_url(provider: &Url, reference: &Url) -> Url {
    let merged = merge_direct_url(provider, reference);
    if reference.param(keys::SERIALIZATION).is_some() {
        return merged;
    }
    let linked = |name: &str| extension::get::<dyn crate::serialize::Serialization>(name).is_ok();
    match crate::registry::dubbo::consumer_serialization(provider, linked) {
        Some(ser) => merged.with_param(keys::SERIALIZATION, ser),
        None => merged,
    }
}

/// The URL a consumer uses to call `provider` for `reference`: the provider's URL with the
/// reference's settings laid over it, except the provider-only keys. Used as it is for a
/// provider the reference names itself (`url=`): its serialization is the reference's, else
/// the one written in that URL, else the protocol's default, as the key table documents.
pub fn merge_direct_url(provider: &Url, reference: &Url) -> Url {
    let remote_app = provider.param(keys::APPLICATION).map(str::to_string);
    let merged = provider.with_params(
        reference
            .params()
            .iter()
            .filter(|(k, _)| !PROVIDER_ONLY.contains(&k.as_str()) && k.as_str() != keys::URL),
    );
    match remote_app {
        Some(app) => merged.with_param(keys::REMOTE_APPLICATION, app),
        None => merged,
    }
}

/// Whether `a` and `b` name the same group and version (an empty value counts as none).
pub(crate) fn same_group_and_version(a: &Url, b: &Url) -> bool {
    let same = |key| a.param(key).unwrap_or("") == b.param(key).unwrap_or("");
    same(keys::GROUP) && same(keys::VERSION)
}

/// Provider URL keys a consumer's settings never override (an override rule may).
const PROVIDER_ONLY: &[&str] = &[
    keys::ZONE,
    keys::WEIGHT,
    keys::WARMUP,
    keys::TIMESTAMP,
    keys::TOKEN,
    keys::METHODS,
    keys::SIDE,
    keys::PID,
    keys::DYNAMIC,
    // Whether the provider serves TLS is its own: a consumer's setting cannot flip it.
    keys::TLS,
];

/// How long a removed provider's invoker may stay alive for calls still using it before it
/// is destroyed anyway.
pub const DESTROY_GRACE: Duration = Duration::from_secs(30);

/// Creates the invoker of one provider URL. Injectable so that tests (and custom bootstraps)
/// do not need the network.
#[async_trait::async_trait]
pub trait InvokerFactory: Send + Sync {
    /// An invoker calling the provider at `url`.
    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>>;
}

/// The default factory: `extension::get::<dyn Protocol>(url.protocol())?.refer(url)`.
#[derive(Debug, Default)]
pub struct ProtocolInvokerFactory;

#[async_trait::async_trait]
impl InvokerFactory for ProtocolInvokerFactory {
    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>> {
        extension::get::<dyn Protocol>(url.protocol())?
            .refer(url)
            .await
    }
}

/// Routed lists cached per method, then per (request tag, forced-tag attachment).
type RouteCache = HashMap<String, Vec<(Option<String>, Option<String>, ProviderList)>>;

/// Cached routed lists kept per snapshot at most; beyond it the cache starts over.
const ROUTE_CACHE_MAX: usize = 1024;

#[derive(Default)]
struct Snapshot {
    /// Whether a provider list has been received at all.
    received: bool,
    /// The last provider list as the registry sent it, to apply new override rules to.
    raw: Vec<Url>,
    /// The URL each provider is called with and its provider, in notification order.
    providers: Vec<(Url, Provider)>,
    /// The providers alone, for `providers_for`.
    all: ProviderList,
    /// Router chain, sorted by priority.
    routers: Vec<Arc<dyn Router>>,
    /// Whether every router's result may be cached per method and tag.
    cacheable: bool,
    /// Routed lists for the case where every provider is available; dropped with the
    /// snapshot, so any provider or rule change starts afresh.
    routes: std::sync::RwLock<RouteCache>,
}

impl Snapshot {
    fn new(
        received: bool,
        raw: Vec<Url>,
        providers: Vec<(Url, Provider)>,
        routers: Vec<Arc<dyn Router>>,
    ) -> Self {
        Snapshot {
            received,
            raw,
            all: providers.iter().map(|(_, p)| p.clone()).collect(),
            providers,
            cacheable: routers.iter().all(|r| r.cacheable()),
            routers,
            routes: Default::default(),
        }
    }
}

/// A provider of a new notification: kept from the last one, or just referred.
enum Referred {
    Kept(Provider),
    New(Arc<dyn Invoker>),
}

/// What the next [`RegistryDirectory::refresh`] applies.
enum Pending {
    /// A provider list the registry notified.
    Providers(Vec<Url>),
    /// The list in force again, under changed override rules. It is read when the refresh
    /// runs, not when the rules change: a provider notification being applied at that moment
    /// is then not undone by an older copy of the list.
    Reapply,
}

/// Called with the reference URL under the override rules (`None`: no rule changes it).
pub type SettingsHook = Box<dyn Fn(Option<&Url>) + Send + Sync>;

/// The provider list of one reference, kept current by registry notifications; see the
/// [module docs](self).
pub struct RegistryDirectory {
    url: Url,
    factory: Arc<dyn InvokerFactory>,
    /// Routers of the reference itself (zone routing), kept under every rule chain.
    own_routers: Vec<Arc<dyn Router>>,
    /// The override rules in force (`configurators` category).
    overrides: Mutex<Overrides>,
    /// The reference URL under the rules in force, when they change it.
    live_settings: ArcSwap<Option<Arc<Url>>>,
    /// Told the new live settings whenever they change ([`RegistryDirectory::on_live_settings`]).
    settings_hook: Mutex<Option<SettingsHook>>,
    state: ArcSwap<Snapshot>,
    pending: Mutex<Option<Pending>>,
    refresh: tokio::sync::Mutex<()>,
    destroyed: AtomicBool,
    me: Weak<RegistryDirectory>,
    /// Why the last provider that could not be referred failed (a TLS or configuration
    /// mistake), for the error of a call that finds no provider; cleared when every
    /// provider of a notification was referred.
    refer_failure: Mutex<Option<String>>,
}

impl RegistryDirectory {
    /// A directory for the consumer reference `url`, creating invokers with `factory` (use
    /// [`ProtocolInvokerFactory`] for the real protocols). Subscribe it to a registry to fill
    /// it: `registry.subscribe(&url, dir.clone()).await?`.
    pub fn new(url: Url, factory: Arc<dyn InvokerFactory>) -> Arc<Self> {
        Self::with_routers(url, factory, Vec::new())
    }

    /// [`RegistryDirectory::new`] with routers of the reference's own (zone routing) that
    /// stay in the chain whatever routing rules the registry sends.
    pub fn with_routers(
        url: Url,
        factory: Arc<dyn InvokerFactory>,
        own_routers: Vec<Arc<dyn Router>>,
    ) -> Arc<Self> {
        let mut initial = own_routers.clone();
        initial.sort_by_key(|r| r.priority());
        Arc::new_cyclic(|me| RegistryDirectory {
            url,
            factory,
            own_routers,
            state: ArcSwap::from_pointee(Snapshot::new(false, Vec::new(), Vec::new(), initial)),
            overrides: Mutex::new(Overrides::default()),
            live_settings: ArcSwap::from_pointee(None),
            settings_hook: Mutex::new(None),
            pending: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            destroyed: AtomicBool::new(false),
            me: me.clone(),
            refer_failure: Mutex::new(None),
        })
    }

    /// Calls `hook` with the reference's settings under the override rules every time a
    /// rule changes them (a layer above the cluster that reads them, the reference's
    /// `mock`, rebuilds itself); replaces the hook set before.
    pub fn on_live_settings(&self, hook: SettingsHook) {
        *self.settings_hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// The URLs the providers are currently called with (merged with the reference and the
    /// override rules).
    pub fn providers(&self) -> Vec<Url> {
        self.state
            .load()
            .providers
            .iter()
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// How many routers the chain holds.
    pub fn router_count(&self) -> usize {
        self.state.load().routers.len()
    }

    /// Applies the latest provider notification now, if one is pending, and returns once it
    /// is in effect. [`NotifyListener::notify`] schedules this on the tokio runtime; call it
    /// to wait for a notification to take effect.
    pub async fn refresh(&self) {
        let _serial = self.refresh.lock().await;
        let taken = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match taken {
            Some(Pending::Providers(urls)) => self.apply_providers(urls).await,
            // Nothing to apply the rules to before the first list arrives: it is applied
            // under the rules in force then.
            Some(Pending::Reapply) => {
                let state = self.state.load();
                if state.received {
                    let raw = state.raw.clone();
                    drop(state);
                    self.apply_providers(raw).await;
                }
            }
            None => {}
        }
    }

    /// Whether the reference can call `url`. A registry lists every provider of an
    /// interface, whatever its group and version: only those of the reference's own group
    /// and version serve it (as a Dubbo consumer matches them; a provider answers only
    /// calls for its own).
    fn usable(&self, url: &Url) -> bool {
        if url.protocol() == "empty"
            || !url.param_bool(keys::ENABLED, true).unwrap_or(true)
            || !same_group_and_version(url, &self.url)
        {
            return false;
        }
        match self.url.param(keys::PROTOCOL) {
            Some(wanted) => wanted.split(',').any(|p| p.trim() == url.protocol()),
            None => true,
        }
    }

    /// The URL a provider is called with: [`merge_provider_url`], then the override rules.
    fn effective(&self, provider: &Url) -> Url {
        let merged = merge_provider_url(provider, &self.url);
        let rules = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
        if rules.is_empty() {
            merged
        } else {
            rules.apply(&merged, self.url.host())
        }
    }

    /// The override rules in force.
    pub fn overrides(&self) -> Overrides {
        self.overrides
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Checks a `configurators` notification and, when every rule is valid, puts it in
    /// force: the provider list is applied again under the new rules. A bad rule keeps the
    /// rules in force, with an error in the log naming it.
    fn apply_overrides(&self, urls: Vec<Url>) {
        let rules = match Overrides::parse(&urls) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(service = %self.url.service_key(), error = %e,
                    "bad override rule; keeping the rules in force");
                return;
            }
        };
        {
            let mut current = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
            if *current == rules {
                return;
            }
            *current = rules;
        }
        let live = {
            let rules = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
            let changed = rules.apply_to_consumer(&self.url);
            (changed != self.url).then(|| Arc::new(changed))
        };
        if let Some(hook) = &*self.settings_hook.lock().unwrap_or_else(|p| p.into_inner()) {
            hook(live.as_deref());
        }
        self.live_settings.store(Arc::new(live));
        tracing::info!(service = %self.url.service_key(), rules = urls.len(), "override rules updated");
        {
            // A provider list still waiting is applied under the new rules anyway.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.is_none() {
                *pending = Some(Pending::Reapply);
            }
        }
        self.schedule_refresh();
    }

    /// Runs [`RegistryDirectory::refresh`] on the tokio runtime.
    fn schedule_refresh(&self) {
        let Some(me) = self.me.upgrade() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { me.refresh().await });
            }
            Err(_) => tracing::error!(
                "registry notification outside a tokio runtime; call refresh() to apply it"
            ),
        }
    }

    async fn apply_providers(&self, urls: Vec<Url>) {
        if self.destroyed.load(Ordering::Acquire) {
            return;
        }
        let current = self.state.load_full();
        let mut wanted: Vec<Url> = Vec::with_capacity(urls.len());
        let mut disabled = 0usize;
        for u in urls.iter().filter(|u| self.usable(u)) {
            let effective = self.effective(u);
            if effective.param(keys::DISABLED) == Some("true") {
                disabled += 1;
                continue;
            }
            if !wanted.contains(&effective) {
                wanted.push(effective);
            }
        }
        let really_empty = urls.iter().all(|u| u.protocol() == "empty");
        let old: HashMap<&Url, &Provider> = current.providers.iter().map(|(u, p)| (u, p)).collect();
        // A provider still listed under the same URL keeps its parsed `Provider`; a new one
        // is parsed below, once the departed providers' statistics are forgotten.
        let mut referred: Vec<(Url, Referred)> = Vec::with_capacity(wanted.len());
        let mut failure = None;
        for u in wanted {
            if let Some(p) = old.get(&u) {
                referred.push((u, Referred::Kept((*p).clone())));
                continue;
            }
            match self.factory.refer(u.clone()).await {
                Ok(i) => referred.push((u, Referred::New(i))),
                Err(e) => {
                    tracing::warn!(provider = %u, error = %e, "cannot refer provider");
                    failure = Some(format!("{}: {e}", u.address()));
                }
            }
        }
        if let Ok(mut f) = self.refer_failure.lock() {
            *f = failure;
        }
        // Providers an operator disabled are meant to be gone, even all of them.
        if referred.is_empty() && !really_empty && disabled == 0 {
            tracing::warn!(
                service = %self.url.service_key(),
                listed = urls.len(),
                "no usable provider in a non-empty notification; keeping the last good list"
            );
            return;
        }
        let removed: Vec<(Url, Provider)> = current
            .providers
            .iter()
            .filter(|(u, _)| !referred.iter().any(|(n, _)| n == u))
            .cloned()
            .collect();
        for (url, _) in &removed {
            stats::forget(url);
        }
        let providers: Vec<(Url, Provider)> = referred
            .into_iter()
            .map(|(u, r)| match r {
                Referred::Kept(p) => (u, p),
                Referred::New(i) => (u, Provider::new(i)),
            })
            .collect();
        let count = providers.len();
        drop(old);
        drop(current);
        self.state
            .rcu(|s| Snapshot::new(true, urls.clone(), providers.clone(), s.routers.clone()));
        tracing::info!(
            service = %self.url.service_key(),
            providers = count,
            removed = removed.len(),
            "provider list updated"
        );
        for (_, provider) in removed {
            retire(provider);
        }
    }

    fn apply_routers(&self, urls: Vec<Url>) {
        let mut routers = self.own_routers.clone();
        for u in urls.iter().filter(|u| u.protocol() != "empty") {
            // A rule of a type no router here runs (Dubbo's `script://`, say) cannot be
            // applied; it does not keep the rules beside it out of force.
            if !router::is_known(u) {
                tracing::warn!(rule = %u, router = router::router_type(u), "routing rule of a type this process has no router for; skipped");
                continue;
            }
            match router::from_url(u) {
                Ok(r) => routers.push(r),
                Err(e) => {
                    tracing::error!(rule = %u, error = %e, "bad routing rule; keeping the previous router chain");
                    return;
                }
            }
        }
        routers.sort_by_key(|r| r.priority());
        self.state.rcu(|s| {
            Snapshot::new(
                s.received,
                s.raw.clone(),
                s.providers.clone(),
                routers.clone(),
            )
        });
    }
}

impl RegistryDirectory {
    fn cached_route(&self, s: &Snapshot, ctx: &CallContext<'_>) -> Result<ProviderList> {
        let invocation = ctx.invocation();
        let a = invocation.attachments();
        let tag = a.get("dubbo.tag").or_else(|| a.get("tag"));
        let force = a.get("dubbo.force.tag");
        let method = invocation.method();
        let hit = s
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(method)
            .and_then(|v| {
                v.iter()
                    .find(|(t, f, _)| t.as_deref() == tag && f.as_deref() == force)
                    .map(|(_, _, l)| l.clone())
            });
        let list = match hit {
            Some(l) => l,
            None => {
                let routed: ProviderList =
                    router::route_all(&s.routers, s.all.to_vec(), ctx).into();
                let mut routes = s.routes.write().unwrap_or_else(|p| p.into_inner());
                if routes.values().map(Vec::len).sum::<usize>() >= ROUTE_CACHE_MAX {
                    routes.clear();
                }
                routes.entry(method.to_string()).or_default().push((
                    tag.map(str::to_string),
                    force.map(str::to_string),
                    routed.clone(),
                ));
                routed
            }
        };
        self.non_empty(s, list, invocation)
    }

    fn non_empty(
        &self,
        s: &Snapshot,
        list: ProviderList,
        invocation: &Invocation,
    ) -> Result<ProviderList> {
        if !list.is_empty() {
            return Ok(list);
        }
        let refer_failure = self
            .refer_failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .map_or_else(String::new, |f| {
                format!("; a listed provider could not be referred: {f}")
            });
        let why = if self.destroyed.load(Ordering::Acquire) {
            "the reference was destroyed".to_string()
        } else if !s.received && !refer_failure.is_empty() {
            format!("no provider could be referred yet{refer_failure}")
        } else if !s.received {
            "no provider list received from the registry yet".to_string()
        } else {
            format!(
                "no available provider ({} registered, after routing){}{refer_failure}",
                s.all.len(),
                crate::cluster::unavailable_reasons(&s.all)
            )
        };
        Err(invocation.annotate(RpcError::new(ErrorKind::NoProvider, why)))
    }
}

/// Destroys a removed provider's invoker once no call holds it (only this function's handle
/// is left), or after [`DESTROY_GRACE`].
fn retire(provider: Provider) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        provider.invoker().destroy();
        return;
    };
    handle.spawn(async move {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while provider.held_elsewhere() && waited < DESTROY_GRACE {
            tokio::time::sleep(step).await;
            waited += step;
        }
        provider.invoker().destroy();
    });
}

impl NotifyListener for RegistryDirectory {
    fn notify(&self, category: Category, urls: Vec<Url>) {
        match category {
            Category::Providers => {
                *self.pending.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Pending::Providers(urls));
                self.schedule_refresh();
            }
            Category::Routers => self.apply_routers(urls),
            Category::Configurators => self.apply_overrides(urls),
            Category::Consumers => {}
        }
    }
}

impl Directory for RegistryDirectory {
    fn url(&self) -> &Url {
        &self.url
    }

    /// Routes over the snapshot; when every provider is available and every router is
    /// cacheable, the routed list is cached per method and tag and handed out shared.
    fn providers_for(&self, ctx: &CallContext<'_>) -> Result<ProviderList> {
        let s = self.state.load();
        if !s.all.is_empty() && s.all.all_available() {
            if s.routers.is_empty() {
                return Ok(s.all.clone());
            }
            if s.cacheable {
                return self.cached_route(&s, ctx);
            }
        }
        let list: Vec<Provider> = s.all.iter().filter(|p| p.is_available()).cloned().collect();
        let routed = router::route_all(&s.routers, list, ctx);
        self.non_empty(&s, routed.into(), ctx.invocation())
    }

    fn is_available(&self) -> bool {
        self.state.load().all.iter().any(|p| p.is_available())
    }

    fn live_settings(&self) -> Option<Arc<Url>> {
        self.live_settings.load().as_ref().clone()
    }

    fn destroy(&self) {
        self.destroyed.store(true, Ordering::Release);
        let old = self.state.swap(Arc::new(Snapshot::default()));
        for (_, p) in &old.providers {
            p.invoker().destroy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::Failfast;
    use crate::cluster::Cluster;
    use crate::invocation::{Response, ServiceKey, Value};
    use std::sync::atomic::AtomicUsize;

    /// A provider invoker that fails if called after being destroyed.
    struct Fake {
        url: Url,
        destroyed: Arc<AtomicBool>,
        down: Arc<AtomicBool>,
        calls: AtomicUsize,
    }

    /// What the factory made: the URL and the invoker's destroyed flag (the factory keeps no
    /// handle on the invoker itself, so that retiring sees the calls' handles only).
    #[derive(Clone)]
    struct Made {
        url: Url,
        destroyed: Arc<AtomicBool>,
        down: Arc<AtomicBool>,
    }

    #[async_trait::async_trait]
    impl Invoker for Fake {
        fn url(&self) -> &Url {
            &self.url
        }
        fn is_available(&self) -> bool {
            !self.down.load(Ordering::SeqCst)
        }
        async fn invoke(&self, _: Invocation) -> Result<Response> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.destroyed.load(Ordering::SeqCst) {
                return Err(RpcError::network("called after destroy"));
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
            if self.destroyed.load(Ordering::SeqCst) {
                return Err(RpcError::network("destroyed during the call"));
            }
            Ok(Response::value(Value::typed(self.url.address())))
        }
        fn destroy(&self) {
            self.destroyed.store(true, Ordering::SeqCst);
        }
    }

    /// Records every invoker it makes; refuses URLs with `broken=true`, takes 200 ms for
    /// URLs with `slow=true`.
    #[derive(Default)]
    struct Factory {
        made: Mutex<Vec<Made>>,
    }

    impl Factory {
        fn made(&self) -> Vec<Made> {
            self.made.lock().expect("lock").clone()
        }
    }

    #[async_trait::async_trait]
    impl InvokerFactory for Factory {
        async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>> {
            if url.param("broken").is_some() {
                return Err(RpcError::network("connection refused"));
            }
            if url.param("slow").is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let destroyed = Arc::new(AtomicBool::new(false));
            let down = Arc::new(AtomicBool::new(false));
            self.made.lock().expect("lock").push(Made {
                url: url.clone(),
                destroyed: destroyed.clone(),
                down: down.clone(),
            });
            Ok(Arc::new(Fake {
                url,
                destroyed,
                down,
                calls: AtomicUsize::new(0),
            }))
        }
    }

    fn provider(i: u8, q: &str) -> Url {
        Url::parse(&format!("dubbo://10.2.0.{i}:20880/rd.S?{q}")).expect("url")
    }

    fn setup() -> (Arc<RegistryDirectory>, Arc<Factory>) {
        let f = Arc::new(Factory::default());
        let url = Url::parse("consumer://127.0.0.1/rd.S").expect("url");
        (RegistryDirectory::new(url, f.clone()), f)
    }

    fn call() -> Invocation {
        Invocation::new(ServiceKey::new("rd.S", None, None), "m", Value::Empty)
    }

    fn addrs(dir: &RegistryDirectory) -> Vec<String> {
        let mut v: Vec<String> = dir
            .list(&call())
            .map(|l| l.iter().map(|i| i.url().address()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    #[tokio::test]
    async fn nothing_received_yet_is_no_provider() {
        let (dir, _) = setup();
        let e = dir.list(&call()).err().expect("empty");
        assert_eq!(e.kind(), ErrorKind::NoProvider);
        assert!(e.to_string().contains("no provider list received"), "{e}");
    }

    #[tokio::test]
    async fn rebuilds_only_what_changed_and_destroys_removed() {
        let (dir, f) = setup();
        dir.notify(Category::Providers, vec![provider(1, ""), provider(2, "")]);
        dir.refresh().await;
        assert_eq!(addrs(&dir), ["10.2.0.1:20880", "10.2.0.2:20880"]);
        assert_eq!(f.made().len(), 2);

        dir.notify(Category::Providers, vec![provider(2, ""), provider(3, "")]);
        dir.refresh().await;
        assert_eq!(addrs(&dir), ["10.2.0.2:20880", "10.2.0.3:20880"]);
        let made = f.made();
        assert_eq!(made.len(), 3, "provider 2 was reused, only 3 was referred");
        // The removed invoker is destroyed once no call holds it.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            made[0].destroyed.load(Ordering::SeqCst),
            "provider 1 destroyed"
        );
        assert!(!made[1].destroyed.load(Ordering::SeqCst));

        // A changed URL (new weight) is a new invoker.
        dir.notify(
            Category::Providers,
            vec![provider(2, "weight=5"), provider(3, "")],
        );
        dir.refresh().await;
        assert_eq!(f.made().len(), 4);
    }

    #[tokio::test]
    async fn empty_list_means_really_empty_and_failed_refers_keep_the_last_good_list() {
        let (dir, _) = setup();
        dir.notify(Category::Providers, vec![provider(1, "")]);
        dir.refresh().await;
        // Every listed provider fails to connect: a fault, keep what works.
        dir.notify(Category::Providers, vec![provider(7, "broken=1")]);
        dir.refresh().await;
        assert_eq!(addrs(&dir), ["10.2.0.1:20880"]);
        // Some fail, some work: use those that work.
        dir.notify(
            Category::Providers,
            vec![provider(7, "broken=1"), provider(8, "")],
        );
        dir.refresh().await;
        assert_eq!(addrs(&dir), ["10.2.0.8:20880"]);
        // `empty://` alone means no providers, as an empty list does.
        let empty = Url::parse("empty://0.0.0.0/rd.S?category=providers").expect("url");
        dir.notify(Category::Providers, vec![empty]);
        dir.refresh().await;
        assert_eq!(
            dir.list(&call()).err().expect("none").kind(),
            ErrorKind::NoProvider
        );
        dir.notify(Category::Providers, vec![provider(1, "")]);
        dir.refresh().await;
        dir.notify(Category::Providers, Vec::new());
        dir.refresh().await;
        assert!(dir.providers().is_empty());
        assert!(!dir.is_available());
    }

    #[tokio::test]
    async fn provider_invokers_get_the_references_settings() {
        let f = Arc::new(Factory::default());
        let url = Url::parse("consumer://127.0.0.1/rd.S?hash.arguments=1&m.hash.nodes=8&timeout=5")
            .expect("url");
        let dir = RegistryDirectory::new(url, f.clone());
        dir.notify(
            Category::Providers,
            vec![provider(1, "hash.nodes=99&timeout=70&weight=3")],
        );
        dir.refresh().await;
        let made = &f.made()[0].url;
        assert_eq!(made.param(keys::HASH_ARGUMENTS), Some("1"));
        assert_eq!(made.param("m.hash.nodes"), Some("8"));
        assert_eq!(
            made.param(keys::HASH_NODES),
            Some("99"),
            "provider keys not set stay"
        );
        assert_eq!(made.param(keys::TIMEOUT), Some("5"), "the reference wins");
        assert_eq!(
            made.param(keys::WEIGHT),
            Some("3"),
            "a provider-only key stays"
        );
        // The same registry URL again: the invoker is reused.
        dir.notify(
            Category::Providers,
            vec![provider(1, "hash.nodes=99&timeout=70&weight=3")],
        );
        dir.refresh().await;
        assert_eq!(f.made().len(), 1);
    }

    fn rule(q: &str) -> Url {
        Url::parse(&format!("override://{q}")).expect("rule")
    }

    #[tokio::test]
    async fn override_rules_change_providers_live_and_a_bad_rule_changes_nothing() {
        let f = Arc::new(Factory::default());
        let url = Url::parse("consumer://10.9.0.1/rd.S?timeout=5&application=shop").expect("url");
        let dir = RegistryDirectory::new(url, f.clone());
        dir.notify(Category::Providers, vec![provider(1, ""), provider(2, "")]);
        dir.refresh().await;
        assert_eq!(f.made().len(), 2);
        // A timeout for every consumer, a weight of 0 for one provider.
        dir.notify(
            Category::Configurators,
            vec![
                rule("0.0.0.0/rd.S?category=configurators&timeout=3000"),
                rule("10.2.0.2:20880/rd.S?category=configurators&weight=0"),
            ],
        );
        dir.refresh().await;
        let urls = dir.providers();
        assert!(
            urls.iter().all(|u| u.param(keys::TIMEOUT) == Some("3000")),
            "{urls:?}"
        );
        let two = urls.iter().find(|u| u.host() == "10.2.0.2").expect("p2");
        assert_eq!(two.param(keys::WEIGHT), Some("0"));
        assert_eq!(f.made().len(), 4, "both providers' URLs changed");
        let old = &f.made()[..2];
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            old.iter().all(|m| m.destroyed.load(Ordering::SeqCst)),
            "old invokers retire"
        );

        // A malformed list is refused whole: the rules in force stay.
        dir.notify(
            Category::Configurators,
            vec![
                rule("0.0.0.0/rd.S?timeout=3000"),
                rule("0.0.0.0/rd.S?retries=many"),
            ],
        );
        dir.refresh().await;
        assert_eq!(dir.overrides().rules().len(), 2);
        assert_eq!(f.made().len(), 4);

        // Disabling a provider leaves it out; disabling all empties the list.
        dir.notify(
            Category::Configurators,
            vec![rule("10.2.0.1:20880/rd.S?disabled=true")],
        );
        dir.refresh().await;
        assert_eq!(addrs(&dir), ["10.2.0.2:20880"]);
        assert_eq!(
            dir.providers()[0].param(keys::TIMEOUT),
            Some("5"),
            "back to the reference's"
        );
        dir.notify(
            Category::Configurators,
            vec![rule("0.0.0.0/rd.S?side=provider&disabled=true")],
        );
        dir.refresh().await;
        assert_eq!(
            dir.list(&call()).err().expect("none").kind(),
            ErrorKind::NoProvider
        );

        // Removing the rules restores every provider as the registry lists it.
        dir.notify(Category::Configurators, Vec::new());
        dir.refresh().await;
        assert_eq!(addrs(&dir), ["10.2.0.1:20880", "10.2.0.2:20880"]);
        assert!(dir
            .providers()
            .iter()
            .all(|u| u.param(keys::WEIGHT).is_none()));
    }

    #[tokio::test]
    async fn a_rule_change_during_a_provider_update_keeps_the_newer_list() {
        let (dir, _) = setup();
        dir.notify(
            Category::Configurators,
            vec![rule("0.0.0.0/rd.S?category=configurators&timeout=300")],
        );
        dir.notify(Category::Providers, vec![provider(1, "weight=0")]);
        dir.refresh().await;
        // The provider registers again under a new URL; referring it takes a while, and
        // the rule goes away meanwhile.
        dir.notify(Category::Providers, vec![provider(1, "slow=true")]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        dir.notify(Category::Configurators, Vec::new());
        tokio::time::sleep(Duration::from_millis(400)).await;
        dir.refresh().await;
        let urls = dir.providers();
        assert_eq!(urls.len(), 1, "{urls:?}");
        assert_eq!(
            urls[0].param("slow"),
            Some("true"),
            "the newer list: {urls:?}"
        );
        assert_eq!(
            urls[0].param(keys::TIMEOUT),
            None,
            "without the rule: {urls:?}"
        );
    }

    #[tokio::test]
    async fn cached_routes_follow_availability_tags_and_methods() {
        let (dir, f) = setup();
        dir.notify(
            Category::Providers,
            vec![provider(1, "tag=gray"), provider(2, ""), provider(3, "")],
        );
        dir.refresh().await;
        let rule = crate::url::encode_component("method = other => host = 10.2.0.3");
        dir.notify(
            Category::Routers,
            vec![
                Url::parse(&format!("condition://0.0.0.0/rd.S?rule={rule}")).expect("url"),
                Url::parse("tag://0.0.0.0/rd.S").expect("url"),
            ],
        );
        let mut gray = call();
        gray.attachments_mut().insert("dubbo.tag", "gray");
        let other = Invocation::new(ServiceKey::new("rd.S", None, None), "other", Value::Empty);
        for _ in 0..3 {
            assert_eq!(addrs(&dir), ["10.2.0.2:20880", "10.2.0.3:20880"]);
            assert_eq!(dir.list(&gray).expect("gray").len(), 1);
            assert_eq!(dir.list(&other).expect("other")[0].url().host(), "10.2.0.3");
        }
        // A provider going down is seen at once, cache or not.
        f.made()[1].down.store(true, Ordering::SeqCst);
        assert_eq!(addrs(&dir), ["10.2.0.3:20880"]);
        f.made()[1].down.store(false, Ordering::SeqCst);
        assert_eq!(addrs(&dir).len(), 2);
        // A shared list is the cached one: no copy per call.
        let inv = call();
        let ctx = CallContext::new(dir.url(), &inv);
        let a = dir.providers_for(&ctx).expect("list");
        let b = dir.providers_for(&ctx).expect("list");
        assert!(ProviderList::ptr_eq(&a, &b));
    }

    #[tokio::test]
    async fn disabled_and_other_protocol_providers_are_skipped() {
        let f = Arc::new(Factory::default());
        let url = Url::parse("consumer://127.0.0.1/rd.S?protocol=dubbo").expect("url");
        let dir = RegistryDirectory::new(url, f);
        let grpc = Url::parse("grpc://10.2.0.5:50051/rd.S").expect("url");
        dir.notify(
            Category::Providers,
            vec![provider(1, "enabled=false"), grpc, provider(2, "")],
        );
        dir.refresh().await;
        assert_eq!(addrs(&dir), ["10.2.0.2:20880"]);
    }

    /// A registry lists the providers of every group and version of an interface; a
    /// reference calls only those of its own.
    #[tokio::test]
    async fn only_providers_of_the_references_group_and_version_are_used() {
        for (reference, expected) in [
            ("version=1.0.0", "10.2.0.1:20880"),
            ("version=2.0.0", "10.2.0.2:20880"),
            ("", "10.2.0.3:20880"),
            ("group=blue&version=1.0.0", "10.2.0.4:20880"),
        ] {
            let url = Url::parse(&format!("consumer://127.0.0.1/rd.S?{reference}")).expect("url");
            let dir = RegistryDirectory::new(url, Arc::new(Factory::default()));
            dir.notify(
                Category::Providers,
                vec![
                    provider(1, "version=1.0.0"),
                    provider(2, "version=2.0.0"),
                    provider(3, "version="),
                    provider(4, "version=1.0.0&group=blue"),
                ],
            );
            dir.refresh().await;
            assert_eq!(addrs(&dir), [expected], "reference {reference:?}");
        }
    }

    #[tokio::test]
    async fn routing_rules_arrive_at_run_time() {
        let (dir, _) = setup();
        dir.notify(
            Category::Providers,
            (1..=3).map(|i| provider(i, "")).collect(),
        );
        dir.refresh().await;
        let rule = crate::url::encode_component("method = m => host = 10.2.0.2,10.2.0.3");
        let cond = Url::parse(&format!("condition://0.0.0.0/rd.S?rule={rule}")).expect("url");
        dir.notify(Category::Routers, vec![cond]);
        assert_eq!(dir.router_count(), 1);
        assert_eq!(addrs(&dir), ["10.2.0.2:20880", "10.2.0.3:20880"]);

        // A bad rule keeps the previous chain.
        let bad = Url::parse("condition://0.0.0.0/rd.S?rule=host%20%3D").expect("url");
        dir.notify(Category::Routers, vec![bad]);
        assert_eq!(addrs(&dir).len(), 2);

        // Dubbo Admin's form of a condition rule (`route://`, the type in `router`) is run;
        // a rule of a type no router here runs is skipped, not a reason to refuse the rest.
        let only3 = crate::url::encode_component("=> host = 10.2.0.3");
        let route = Url::parse(&format!(
            "route://0.0.0.0/rd.S?category=routers&router=condition&dynamic=false&rule={only3}"
        ))
        .expect("url");
        let script = Url::parse("script://0.0.0.0/rd.S?category=routers&rule=x").expect("url");
        let cond = Url::parse(&format!("condition://0.0.0.0/rd.S?rule={rule}")).expect("url");
        dir.notify(Category::Routers, vec![route, script, cond.clone()]);
        assert_eq!(dir.router_count(), 2);
        assert_eq!(addrs(&dir), ["10.2.0.3:20880"]);
        dir.notify(Category::Routers, vec![cond]);
        assert_eq!(addrs(&dir).len(), 2);

        // Providers change under the rule; the chain stays.
        dir.notify(
            Category::Providers,
            (1..=4).map(|i| provider(i, "")).collect(),
        );
        dir.refresh().await;
        assert_eq!(addrs(&dir).len(), 2);

        // An empty routers list clears the chain.
        dir.notify(Category::Routers, Vec::new());
        assert_eq!(addrs(&dir).len(), 4);

        // Tag rules too.
        dir.notify(
            Category::Providers,
            vec![provider(1, "tag=gray"), provider(2, "")],
        );
        dir.refresh().await;
        let tag = Url::parse("tag://0.0.0.0/rd.S").expect("url");
        dir.notify(Category::Routers, vec![tag]);
        let mut c = call();
        c.attachments_mut().insert("dubbo.tag", "gray");
        let l = dir.list(&c).expect("tagged");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].url().address(), "10.2.0.1:20880");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn swapping_providers_under_load_loses_no_call() {
        let (dir, f) = setup();
        dir.notify(
            Category::Providers,
            (1..=4).map(|i| provider(i, "")).collect(),
        );
        dir.refresh().await;
        let invoker = Failfast.join(dir.clone()).expect("join");
        let mut calls = Vec::new();
        for _ in 0..400 {
            let invoker = invoker.clone();
            calls.push(tokio::spawn(async move { invoker.invoke(call()).await }));
        }
        // Replace the whole list several times while the calls run.
        for round in 0..6u8 {
            let base = 10 + round * 4;
            dir.notify(
                Category::Providers,
                (base..base + 4).map(|i| provider(i, "")).collect(),
            );
            dir.refresh().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut ok = 0;
        for c in calls {
            c.await.expect("task").expect("no call lost");
            ok += 1;
        }
        assert_eq!(ok, 400);
        // Every replaced invoker is eventually destroyed, none of the live ones is.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let live: Vec<Url> = dir.providers();
        for made in f.made() {
            let is_live = live.contains(&made.url);
            assert_eq!(
                made.destroyed.load(Ordering::SeqCst),
                !is_live,
                "{}",
                made.url
            );
        }
    }

    #[test]
    fn consumer_settings_win_but_provider_only_keys_stay() {
        let provider = Url::parse(
            "dubbo://10.0.0.1:20880/a.B?weight=50&timeout=5000&token=s3&application=prov&warmup=1",
        )
        .expect("url");
        let reference = Url::parse(
            "consumer://127.0.0.1/a.B?timeout=300&weight=1&token=x&application=cons&retries=0",
        )
        .expect("url");
        let merged = merge_provider_url(&provider, &reference);
        assert_eq!(merged.param(keys::TIMEOUT), Some("300"));
        assert_eq!(merged.param(keys::RETRIES), Some("0"));
        let zoned = merge_provider_url(
            &provider.with_param(keys::ZONE, "west"),
            &reference.with_param(keys::ZONE, "east"),
        );
        assert_eq!(
            zoned.param(keys::ZONE),
            Some("west"),
            "a provider's zone is its own"
        );
        assert_eq!(merged.param(keys::WEIGHT), Some("50"));
        assert_eq!(merged.param(keys::TOKEN), Some("s3"));
        assert_eq!(merged.param(keys::APPLICATION), Some("cons"));
        assert_eq!(merged.param(keys::REMOTE_APPLICATION), Some("prov"));
        assert_eq!(merged.address(), "10.0.0.1:20880");
    }

    #[test]
    fn the_serialization_is_the_references_else_the_providers_own_else_hessian2() {
        let reference = Url::parse("consumer://127.0.0.1/a.B").expect("url");
        let ours = crate::registry::dubbo::advertise_serialization(
            &Url::parse("dubbo://10.0.0.1:20880/a.B").expect("url"),
            "msgpack",
        );
        let ser = |p: &Url, r: &Url| {
            merge_provider_url(p, r)
                .param(keys::SERIALIZATION)
                .map(str::to_string)
        };
        assert_eq!(ser(&ours, &reference).as_deref(), Some("msgpack"));
        let java = Url::parse("dubbo://10.0.0.1:20880/a.B?dubbo=2.0.2").expect("url");
        assert_eq!(ser(&java, &reference).as_deref(), Some("hessian2"));
        let json = reference.with_param(keys::SERIALIZATION, "json");
        assert_eq!(ser(&ours, &json).as_deref(), Some("json"));
        assert_eq!(ser(&java, &json).as_deref(), Some("json"));
        let unlinked = ours.with_param(
            crate::registry::dubbo::NATIVE_SERIALIZATION,
            "no-such-codec",
        );
        assert_eq!(ser(&unlinked, &reference).as_deref(), Some("hessian2"));
    }

    #[test]
    fn a_direct_url_keeps_the_default_serialization_unless_one_is_named() {
        let reference = Url::parse("consumer://127.0.0.1/a.B").expect("url");
        let ser = |p: &str, r: &Url| {
            merge_direct_url(&Url::parse(p).expect("url"), r)
                .param(keys::SERIALIZATION)
                .map(str::to_string)
        };
        // Nothing named: the protocol's default (msgpack), as the key table says.
        assert_eq!(ser("dubbo://10.0.0.1:20880/a.B", &reference), None);
        assert_eq!(
            ser(
                "dubbo://10.0.0.1:20880/a.B?serialization=hessian2",
                &reference
            )
            .as_deref(),
            Some("hessian2"),
            "written in the direct URL"
        );
        let json = reference.with_param(keys::SERIALIZATION, "json");
        assert_eq!(
            ser("dubbo://10.0.0.1:20880/a.B?serialization=hessian2", &json).as_deref(),
            Some("json"),
            "the reference's wins"
        );
    }

    #[tokio::test]
    async fn destroy_closes_every_invoker() {
        let (dir, f) = setup();
        dir.notify(Category::Providers, vec![provider(1, ""), provider(2, "")]);
        dir.refresh().await;
        dir.destroy();
        assert!(f.made().iter().all(|i| i.destroyed.load(Ordering::SeqCst)));
        let e = dir.list(&call()).err().expect("destroyed");
        assert!(e.to_string().contains("destroyed"), "{e}");
    }
}
