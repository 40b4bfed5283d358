//! Providers as the cluster sees them: parsed once per registry notification, read on every
//! call.
//!
//! A [`Provider`] holds one provider's invoker together with what the routers and balancers
//! read from its URL, parsed when the directory builds its snapshot (weight, warm-up, start
//! time, zone, tag, address) and its statistics handle ([`stats::ProviderStats`]), so a pick
//! parses nothing and looks nothing up in a shared table. A [`ProviderList`] is a shared,
//! immutable list of providers (what a directory hands out per call) that also caches, per
//! method, the cumulative weight table of its providers and their statistics, so `random`
//! makes one draw and the load-aware balancers read their numbers without a lookup per
//! provider. A [`CallContext`] carries what a call brings to the pick: the reference's URL,
//! its settings under the override rules in force, and the invocation.

use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::loadbalance::{now_ms, DEFAULT_WARMUP_MS, DEFAULT_WEIGHT};
use super::stats::{self, MethodStats, ProviderStats};
use crate::config::keys;
use crate::invocation::{Invocation, Invoker};
use crate::url::Url;

/// One provider of a reference: its invoker and the parsed parameters of its URL (the URL
/// the consumer calls it with, the reference's settings and the override rules merged in).
/// Cloning is one reference count.
#[derive(Clone)]
pub struct Provider(Arc<Inner>);

struct Inner {
    invoker: Arc<dyn Invoker>,
    /// What answers whether the invoker is available, when not the invoker itself
    /// ([`Invoker::availability_source`]; never a second handle on `invoker`, whose count
    /// tells whether the provider is still in use).
    availability: Option<Arc<dyn Invoker>>,
    /// `weight` (default [`DEFAULT_WEIGHT`]; a malformed value is the default).
    weight: u32,
    /// `{method}.weight` keys, when any.
    method_weights: Box<[(Box<str>, u32)]>,
    /// `timestamp`: when the provider started, ms since the epoch (0: unknown).
    started: u64,
    /// `warmup` in ms (default [`DEFAULT_WARMUP_MS`]).
    warmup: u64,
    zone: Option<Box<str>>,
    tag: Option<Box<str>>,
    /// `host:port` (port 0 when absent), as tag rules name providers.
    address: Box<str>,
    stats: Arc<ProviderStats>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("url", &self.url().to_string())
            .field("weight", &self.0.weight)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Parses the URL of `invoker` (see [`crate::cluster::loadbalance`] for the weight keys)
    /// and takes its statistics handle.
    ///
    /// A malformed `weight`, `warmup` or `timestamp` falls back to the default rather than
    /// failing: a provider's URL is not the caller's to fix, and a bad weight must not take
    /// a provider out of service.
    pub fn new(invoker: Arc<dyn Invoker>) -> Provider {
        let url = invoker.url();
        let method_weights = url
            .params()
            .iter()
            .filter_map(|(k, v)| {
                let method = keys::method_of(k, keys::WEIGHT)?;
                let w = v.trim().parse().unwrap_or(DEFAULT_WEIGHT);
                Some((Box::<str>::from(method), w))
            })
            .collect();
        let text = |k: &str| url.param(k).filter(|t| !t.is_empty()).map(Box::<str>::from);
        Provider(Arc::new(Inner {
            weight: url
                .param_as(keys::WEIGHT, DEFAULT_WEIGHT)
                .unwrap_or(DEFAULT_WEIGHT),
            method_weights,
            started: url.param_as(keys::TIMESTAMP, 0u64).unwrap_or(0),
            warmup: url
                .param_as(keys::WARMUP, DEFAULT_WARMUP_MS)
                .unwrap_or(DEFAULT_WARMUP_MS),
            zone: text(keys::ZONE),
            tag: text(keys::TAG),
            address: format!("{}:{}", url.host(), url.port().unwrap_or(0)).into(),
            stats: stats::provider_stats(url),
            availability: invoker.availability_source(),
            invoker,
        }))
    }

    /// The provider's invoker.
    pub fn invoker(&self) -> &Arc<dyn Invoker> {
        &self.0.invoker
    }

    /// The URL the provider is called with.
    pub fn url(&self) -> &Url {
        self.0.invoker.url()
    }

    /// Whether the invoker can take calls now.
    pub fn is_available(&self) -> bool {
        self.availability_source().is_available()
    }

    /// The invoker that answers for this provider's availability.
    fn availability_source(&self) -> &Arc<dyn Invoker> {
        self.0.availability.as_ref().unwrap_or(&self.0.invoker)
    }

    /// `host:port` (port 0 when the URL has none).
    pub fn address(&self) -> &str {
        &self.0.address
    }

    /// The `zone` the provider advertises.
    pub fn zone(&self) -> Option<&str> {
        self.0.zone.as_deref()
    }

    /// The `tag` the provider declares (a non-empty one).
    pub fn tag(&self) -> Option<&str> {
        self.0.tag.as_deref()
    }

    /// The configured weight for `method` (`{method}.weight`, else `weight`), before warm-up.
    pub fn configured_weight(&self, method: &str) -> u32 {
        self.0
            .method_weights
            .iter()
            .find(|(m, _)| &**m == method)
            .map_or(self.0.weight, |(_, w)| *w)
    }

    /// The effective weight for `method` at `now_ms` (ms since the epoch): the configured
    /// weight ramped up linearly over the warm-up after the provider's start, never below 1
    /// while warming so a warming provider still gets some traffic.
    pub fn weight_at(&self, method: &str, now_ms: u64) -> u32 {
        ramp(
            self.configured_weight(method),
            self.0.started,
            self.0.warmup,
            now_ms,
        )
    }

    /// Whether the effective weight may still change after `now_ms` (warming up, or a start
    /// time in the future).
    fn ramping(&self, now_ms: u64) -> bool {
        let i = &self.0;
        i.started != 0 && i.warmup != 0 && now_ms < i.started.saturating_add(i.warmup)
    }

    /// The provider's statistics for `method` (in flight, latencies), shared with every
    /// reference to the same provider.
    pub fn stats(&self, method: &str) -> Arc<MethodStats> {
        self.0.stats.method(method)
    }

    /// Whether a handle on the provider or its invoker exists besides this one (a call in
    /// flight, a list still in use).
    pub(crate) fn held_elsewhere(&self) -> bool {
        Arc::strong_count(&self.0) > 1 || Arc::strong_count(&self.0.invoker) > 1
    }

    /// An identity of the provider's invoker, for balancers that keep state per provider.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0.invoker) as *const () as usize
    }

    /// Whether `self` and `other` are the same provider: the same invoker, or equal URLs.
    pub fn same(&self, other: &Provider) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.id() == other.id() || self.url() == other.url()
    }
}

/// Linear warm-up ramp, never below 1 so a warming provider still gets some traffic.
pub(crate) fn ramp(weight: u32, started: u64, warmup: u64, now_ms: u64) -> u32 {
    if weight == 0 || started == 0 || started > now_ms {
        return weight;
    }
    let uptime = now_ms - started;
    if warmup == 0 || uptime >= warmup {
        return weight;
    }
    let ramped = (uptime as u128 * weight as u128 / warmup as u128) as u32;
    ramped.clamp(1, weight)
}

/// How long a weight table with warming providers is reused (warm-up moves weights slowly,
/// so one second of staleness is immaterial).
const WEIGHTS_TTL_MS: u64 = 1000;

/// Per-method tables a list keeps at most; beyond it the cache starts over.
const PER_METHOD_MAX: usize = 64;

/// The cumulative (warmed-up) weights of a list's providers for one method.
#[derive(Debug)]
pub struct WeightTable {
    /// `prefix[i]` is the sum of the weights of providers `0..=i`.
    prefix: Box<[u64]>,
    /// Every weight equal (or all zero): a uniform draw.
    uniform: bool,
    /// Reusable until then (ms since the epoch); `u64::MAX`: for good.
    until_ms: u64,
}

impl WeightTable {
    fn build(providers: &[Provider], method: &str, now: u64) -> WeightTable {
        let mut prefix = Vec::with_capacity(providers.len());
        let mut total = 0u64;
        let mut first = None;
        let mut uniform = true;
        let mut ramping = false;
        for p in providers {
            let w = p.weight_at(method, now);
            ramping |= p.ramping(now);
            uniform &= *first.get_or_insert(w) == w;
            total += u64::from(w);
            prefix.push(total);
        }
        WeightTable {
            uniform: uniform || total == 0,
            prefix: prefix.into(),
            until_ms: if ramping {
                now + WEIGHTS_TTL_MS
            } else {
                u64::MAX
            },
        }
    }

    /// `prefix[i]`: the sum of the weights of providers `0..=i`.
    pub fn prefix(&self) -> &[u64] {
        &self.prefix
    }

    /// The weight of provider `i`.
    pub fn weight(&self, i: usize) -> u64 {
        self.prefix[i] - if i == 0 { 0 } else { self.prefix[i - 1] }
    }

    /// One weighted random draw: an index, `None` for an empty list.
    pub fn pick(&self) -> Option<usize> {
        let n = self.prefix.len();
        if n == 0 {
            return None;
        }
        if self.uniform {
            return Some(fastrand::usize(..n));
        }
        let total = self.prefix[n - 1];
        let offset = fastrand::u64(..total);
        Some(self.prefix.partition_point(|p| *p <= offset))
    }
}

/// The statistics of every provider of a list for one method, in order.
type StatsColumn = Arc<[Arc<MethodStats>]>;

/// An immutable, shared list of providers: what a directory hands out for a call. Cloning
/// is one reference count; it dereferences to `[Provider]`.
#[derive(Clone)]
pub struct ProviderList(Arc<ListInner>);

struct ListInner {
    providers: Box<[Provider]>,
    /// The providers' invokers side by side.
    invokers: Box<[Arc<dyn Invoker>]>,
    /// What answers for each provider's availability ([`Provider::is_available`]), side by
    /// side, for the check of every call.
    availability: Box<[Arc<dyn Invoker>]>,
    /// Whether some provider has `{method}.weight` keys (then tables are per method).
    method_weights: bool,
    /// The table for every method, once it is known that no provider ramps.
    fixed: OnceLock<Arc<WeightTable>>,
    /// Tables per method while providers warm up or weigh methods apart.
    by_method: Mutex<Vec<(Box<str>, Arc<WeightTable>)>>,
    /// Statistics of every provider, per method.
    stats: Mutex<Vec<(Box<str>, StatsColumn)>>,
}

impl Deref for ProviderList {
    type Target = [Provider];

    fn deref(&self) -> &[Provider] {
        &self.0.providers
    }
}

impl std::fmt::Debug for ProviderList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Provider>> for ProviderList {
    fn from(providers: Vec<Provider>) -> Self {
        let method_weights = providers.iter().any(|p| !p.0.method_weights.is_empty());
        ProviderList(Arc::new(ListInner {
            invokers: providers.iter().map(|p| p.invoker().clone()).collect(),
            availability: providers
                .iter()
                .map(|p| p.availability_source().clone())
                .collect(),
            providers: providers.into(),
            method_weights,
            fixed: OnceLock::new(),
            by_method: Mutex::new(Vec::new()),
            stats: Mutex::new(Vec::new()),
        }))
    }
}

impl FromIterator<Provider> for ProviderList {
    fn from_iter<I: IntoIterator<Item = Provider>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<_>>().into()
    }
}

impl Default for ProviderList {
    fn default() -> Self {
        Vec::new().into()
    }
}

/// A handle on a [`ProviderList`] that keeps neither it nor its providers alive, to
/// recognise the list again (a balancer's state built for it).
#[derive(Clone, Default)]
pub(crate) struct WeakProviderList(Weak<ListInner>);

impl WeakProviderList {
    /// Whether `list` is the list this handle was taken from. (While the handle exists the
    /// list's allocation is not reused, so no other list can match.)
    pub(crate) fn is(&self, list: &ProviderList) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&list.0))
    }
}

impl ProviderList {
    /// A handle that recognises this list without keeping it alive.
    pub(crate) fn downgrade(&self) -> WeakProviderList {
        WeakProviderList(Arc::downgrade(&self.0))
    }

    /// A list of a provider per invoker, in order.
    pub fn of(invokers: impl IntoIterator<Item = Arc<dyn Invoker>>) -> Self {
        invokers.into_iter().map(Provider::new).collect()
    }

    /// Whether both are the same list object.
    pub fn ptr_eq(a: &ProviderList, b: &ProviderList) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The invokers, in order.
    pub fn invokers(&self) -> Vec<Arc<dyn Invoker>> {
        self.0.invokers.to_vec()
    }

    /// Whether every provider is available now (what a directory checks on every call
    /// before handing out a shared list; reads the invokers side by side).
    pub fn all_available(&self) -> bool {
        self.0.availability.iter().all(|i| i.is_available())
    }

    /// Runs `f` with the cumulative weight table of the providers for `method`, built once
    /// per list (again each second while a provider warms up).
    pub fn with_weights<R>(&self, method: &str, f: impl FnOnce(&WeightTable) -> R) -> R {
        let inner = &self.0;
        if let Some(t) = inner.fixed.get() {
            return f(t);
        }
        let now = now_ms();
        let key = if inner.method_weights { method } else { "" };
        let table = {
            let mut tables = inner.by_method.lock().unwrap_or_else(|p| p.into_inner());
            match tables.iter().position(|(m, _)| &**m == key) {
                Some(at) if tables[at].1.until_ms > now => tables[at].1.clone(),
                found => {
                    if let Some(at) = found {
                        tables.swap_remove(at);
                    }
                    if tables.len() >= PER_METHOD_MAX {
                        tables.clear();
                    }
                    let t = Arc::new(WeightTable::build(&inner.providers, method, now));
                    if !inner.method_weights && t.until_ms == u64::MAX {
                        // No provider ramps any more: one table for good, read lock-free.
                        let _ = inner.fixed.set(t.clone());
                    } else {
                        tables.push((key.into(), t.clone()));
                    }
                    t
                }
            }
        };
        f(&table)
    }

    /// One weighted random draw among the providers for `method` (see
    /// [`ProviderList::with_weights`]); `None` for an empty list.
    pub fn pick(&self, method: &str) -> Option<usize> {
        match self.len() {
            0 => None,
            1 => Some(0),
            _ => self.with_weights(method, WeightTable::pick),
        }
    }

    /// The statistics of every provider for `method`, in order (gathered once per list and
    /// method).
    pub fn stats(&self, method: &str) -> Arc<[Arc<MethodStats>]> {
        let mut cols = self.0.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = cols.iter().find(|(m, _)| &**m == method) {
            return s.clone();
        }
        if cols.len() >= PER_METHOD_MAX {
            cols.clear();
        }
        let s: Arc<[Arc<MethodStats>]> = self.iter().map(|p| p.stats(method)).collect();
        cols.push((method.into(), s.clone()));
        s
    }
}

/// What a call brings to routing and balancing: the reference's URL, its settings under the
/// override rules in force (`retries`, `sticky`, `loadbalance`, ... changed at run time) and
/// the invocation.
pub struct CallContext<'a> {
    reference: &'a Url,
    live: Option<Arc<Url>>,
    invocation: &'a Invocation,
}

impl<'a> CallContext<'a> {
    /// A context for `invocation` through the reference `reference`, without rules in force.
    pub fn new(reference: &'a Url, invocation: &'a Invocation) -> Self {
        CallContext {
            reference,
            live: None,
            invocation,
        }
    }

    /// This context with the reference's settings under the rules in force (`None`: the
    /// reference URL itself).
    pub fn with_settings(mut self, live: Option<Arc<Url>>) -> Self {
        self.live = live;
        self
    }

    /// The consumer's reference URL.
    pub fn reference(&self) -> &'a Url {
        self.reference
    }

    /// The reference's settings: the reference URL under the override rules in force.
    pub fn settings(&self) -> &Url {
        self.live.as_deref().unwrap_or(self.reference)
    }

    /// The settings under the rules in force, when a rule changes them.
    pub fn live_settings(&self) -> Option<&Arc<Url>> {
        self.live.as_ref()
    }

    /// The call.
    pub fn invocation(&self) -> &'a Invocation {
        self.invocation
    }

    /// The invoked method.
    pub fn method(&self) -> &'a str {
        self.invocation.method()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::{call, invokers};

    #[test]
    fn availability_is_asked_of_the_invoker_under_the_filter_layers() {
        use crate::cluster::strategy::testing::{Scripted, Step};
        use crate::filter::Filter;
        use crate::invocation::{Invocation, Response};

        struct Pass;
        #[async_trait::async_trait]
        impl Filter for Pass {
            async fn invoke(
                &self,
                next: &dyn Invoker,
                inv: Invocation,
            ) -> crate::error::Result<Response> {
                next.invoke(inv).await
            }
        }
        let inner = Scripted::new("av.S", 1, "", &[Step::Ok]);
        let chain = crate::filter::wrap(
            inner.clone(),
            vec![("a", Arc::new(Pass) as _), ("b", Arc::new(Pass) as _)],
        );
        let source = chain
            .availability_source()
            .expect("a filter layer passes the question on");
        assert!(std::ptr::addr_eq(Arc::as_ptr(&source), Arc::as_ptr(&inner)));
        let list = ProviderList::of([chain]);
        assert!(list[0].is_available() && list.all_available());
        inner
            .available
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(!list[0].is_available() && !list.all_available());
    }

    #[test]
    fn a_provider_parses_its_url_once() {
        let p = Provider::new(invokers(&["weight=7&m.weight=3&zone=east&tag=gray"]).remove(0));
        assert_eq!(p.configured_weight("m"), 3);
        assert_eq!(p.configured_weight("other"), 7);
        assert_eq!((p.zone(), p.tag()), (Some("east"), Some("gray")));
        assert_eq!(p.address(), "10.0.0.0:20880");
        let blank = Provider::new(invokers(&["zone=&tag=&weight=x"]).remove(0));
        assert_eq!((blank.zone(), blank.tag()), (None, None));
        assert_eq!(blank.configured_weight("m"), DEFAULT_WEIGHT);
        assert!(Arc::ptr_eq(&p.stats("m"), &p.stats("m")));
        assert!(Arc::ptr_eq(&p.stats("m"), &stats::stats(p.url(), "m")));
    }

    /// A list without warming providers computes its weight table once; one with a warming
    /// provider reuses its table for a second at most.
    #[test]
    fn weight_tables_are_computed_once_per_list() {
        let fixed = ProviderList::of(invokers(&["weight=1", "weight=3"]));
        let a = fixed.with_weights("m", |t| t as *const WeightTable);
        let b = fixed.with_weights("other", |t| t as *const WeightTable);
        assert_eq!(a, b);
        fixed.with_weights("m", |t| assert_eq!(t.prefix(), [1, 4]));
        let started = now_ms() - 1000;
        let warm = format!("weight=100&warmup=1000000&timestamp={started}");
        let warming = ProviderList::of(invokers(&["weight=100", &warm]));
        warming.with_weights("m", |t| {
            assert_eq!(t.weight(1), 1, "0.1% into its warm-up");
            assert!(t.until_ms < u64::MAX);
        });
        assert!(warming.0.fixed.get().is_none());
        let reference = Url::parse("consumer://127.0.0.1/S").expect("url");
        let inv = call();
        let ctx = CallContext::new(&reference, &inv);
        assert_eq!(ctx.settings(), &reference);
        assert_eq!(ctx.method(), "m");
    }
}
