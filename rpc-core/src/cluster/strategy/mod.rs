//! Fault-tolerance strategies, one file each (`cluster=` key, default `failover`).
//!
//! Every strategy is a [`Strategy`]: only its `invoke` logic, run by the generic
//! [`ClusterInvoker`] over a [`ClusterBase`]: one place that asks the directory for the
//! providers, selects one with the load balancer chosen for the method
//! (`{method}.loadbalance` first), keeps a caller on one provider when `sticky=true`, avoids
//! providers already tried by this call, records in-flight counts and latencies for the
//! adaptive balancers, and annotates errors with the provider address, service and method.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::cluster::{CallContext, Directory, LoadBalance, Provider, ProviderList};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::AdaptiveCache;
use crate::invocation::{BoxedCall, Invocation, Invoker, Response};
use crate::lent::{Lent, Slots};
use crate::service_key::same_text;
use crate::url::Url;

pub mod available;
pub mod broadcast;
pub mod failback;
pub mod failfast;
pub mod failover;
pub mod failsafe;
pub mod forking;

pub use available::Available;
pub use broadcast::Broadcast;
pub use failback::Failback;
pub use failfast::Failfast;
pub use failover::Failover;
pub use failsafe::Failsafe;
pub use forking::Forking;

/// What a fault-tolerance strategy does with one call; the [`ClusterInvoker`] around it
/// provides the rest of an invoker (URL, availability, destroy).
#[async_trait::async_trait]
pub trait Strategy: Send + Sync + 'static {
    /// Performs the call through `base` (list, select, call; retry or not, ...).
    async fn invoke(&self, base: &Arc<ClusterBase>, invocation: Invocation) -> Result<Response>;

    /// Called when the cluster invoker is destroyed, before its directory is (stop
    /// background work).
    fn destroy(&self) {}
}

/// A cluster invoker: a [`Strategy`] over a [`ClusterBase`].
pub struct ClusterInvoker<S> {
    base: Arc<ClusterBase>,
    strategy: S,
}

impl<S: Strategy> ClusterInvoker<S> {
    /// The invoker calling through `directory` with `strategy`.
    pub fn join(directory: Arc<dyn Directory>, strategy: S) -> Arc<dyn Invoker> {
        Arc::new(ClusterInvoker {
            base: Arc::new(ClusterBase::new(directory)),
            strategy,
        })
    }
}

// Hands the strategy's future on as its own (no second box per call).
impl<S: Strategy> Invoker for ClusterInvoker<S> {
    fn url(&self) -> &Url {
        self.base.url()
    }

    fn is_available(&self) -> bool {
        self.base.directory().is_available()
    }

    fn invoke<'a, 'f>(&'a self, invocation: Invocation) -> BoxedCall<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        self.strategy.invoke(&self.base, invocation)
    }

    fn destroy(&self) {
        self.strategy.destroy();
        self.base.directory().destroy();
    }
}

/// A method's cluster settings under the settings in force, read from the URL once per
/// settings version and method (see [`ClusterBase::method_settings`]) instead of on every
/// call, each one method-level first (`{method}.key`, else `key`).
pub struct MethodSettings {
    /// `retries`, when the settings name it.
    pub retries: Option<u32>,
    /// `idempotent=true`: configuration declares the method idempotent.
    pub idempotent: bool,
    /// `sticky=true`: keep calling the provider the method last went to.
    pub sticky: bool,
    /// The load balancer (`loadbalance`).
    pub balancer: Arc<dyn LoadBalance>,
}

impl MethodSettings {
    fn read(url: &Url, method: &str, balancer: Arc<dyn LoadBalance>) -> Result<Self> {
        let retries = url.method_param(method, keys::RETRIES);
        Ok(MethodSettings {
            retries: match retries {
                Some(_) => Some(crate::url::parse_value(keys::RETRIES, retries, 0)?),
                None => None,
            },
            idempotent: url.method_param_as(method, keys::IDEMPOTENT, false)?,
            sticky: url.method_param_as(method, keys::STICKY, false)?,
            balancer,
        })
    }
}

/// Most methods whose settings one reference keeps read (the proxy's methods; a generic
/// caller inventing names past it gets them read per call).
const SETTINGS_CACHED: usize = 64;

/// The methods' settings read under one version of the rules in force.
struct SettingsCache {
    /// The settings they were read from; held, so that its address cannot be reused by a
    /// later version while the cache names it.
    source: Arc<Url>,
    methods: Vec<(Box<str>, Arc<MethodSettings>)>,
}

impl SettingsCache {
    fn is_for(&self, live: &Arc<Url>) -> bool {
        Arc::ptr_eq(&self.source, live)
    }
}

/// What every cluster invoker shares: the directory, sticky state, and the select/call helper.
pub struct ClusterBase {
    directory: Arc<dyn Directory>,
    /// The provider each method stuck to (`sticky=true`), per reference (this invoker).
    sticky: Mutex<HashMap<String, Provider>>,
    /// The balancer, looked up once unless methods set their own.
    balancer: AdaptiveCache<dyn LoadBalance>,
    /// Each method's settings under rules in force, read once per version of the rules.
    settings: ArcSwapOption<SettingsCache>,
    /// The first methods' settings from the reference URL itself, which never changes.
    reference_settings: Slots<(Box<str>, MethodSettings), LENT_SETTINGS>,
}

/// How many methods' settings a base keeps for the life of the reference and lends.
const LENT_SETTINGS: usize = 32;

impl ClusterBase {
    /// A base over `directory`.
    pub fn new(directory: Arc<dyn Directory>) -> Self {
        ClusterBase {
            directory,
            sticky: Mutex::new(HashMap::new()),
            balancer: AdaptiveCache::new(),
            settings: ArcSwapOption::empty(),
            reference_settings: Slots::new(),
        }
    }

    /// The settings of the call of `ctx`'s method under the settings in force; read from the
    /// URL on the first call of the method and again after the rules in force change. A
    /// setting that does not parse is an error naming it, on every call.
    ///
    /// Without rules in force (the usual case) the settings of the reference's first methods
    /// are kept for the life of this base and lent, so a call takes no reference count.
    pub fn method_settings(&self, ctx: &CallContext<'_>) -> Result<Lent<'_, MethodSettings>> {
        let method = ctx.method();
        let Some(live) = ctx.live_settings() else {
            let is_method = |(m, _): &(Box<str>, MethodSettings)| same_text(m, method);
            if let Some((_, kept)) = self.reference_settings.find(is_method) {
                return Ok(Lent::Borrowed(kept));
            }
            let fresh = MethodSettings::read(ctx.settings(), method, self.read_balancer(ctx)?)?;
            return Ok(
                match self
                    .reference_settings
                    .keep((method.into(), fresh), is_method)
                {
                    Ok((_, kept)) => Lent::Borrowed(kept),
                    // Every slot holds another method.
                    Err((_, fresh)) => Lent::Shared(Arc::new(fresh)),
                },
            );
        };
        self.live_method_settings(ctx, live).map(Lent::Shared)
    }

    /// [`ClusterBase::method_settings`] under the rules in force `live`: kept per version of
    /// the rules.
    fn live_method_settings(
        &self,
        ctx: &CallContext<'_>,
        live: &Arc<Url>,
    ) -> Result<Arc<MethodSettings>> {
        let method = ctx.method();
        let cache = self.settings.load();
        let current = cache.as_deref().filter(|c| c.is_for(live));
        if let Some((_, s)) =
            current.and_then(|c| c.methods.iter().find(|(m, _)| same_text(m, method)))
        {
            return Ok(s.clone());
        }
        let read = Arc::new(MethodSettings::read(
            ctx.settings(),
            method,
            self.read_balancer(ctx)?,
        )?);
        if current.is_none_or(|c| c.methods.len() < SETTINGS_CACHED) {
            // Concurrent first calls may each publish; the last copy wins and every copy
            // holds the same values.
            self.settings.rcu(|current| {
                let mut next = SettingsCache {
                    source: live.clone(),
                    methods: match current.as_deref().filter(|c| c.is_for(live)) {
                        Some(c) => c.methods.clone(),
                        None => Vec::new(),
                    },
                };
                if next.methods.len() < SETTINGS_CACHED
                    && !next.methods.iter().any(|(m, _)| same_text(m, method))
                {
                    next.methods.push((method.into(), read.clone()));
                }
                Some(Arc::new(next))
            });
        }
        Ok(read)
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    /// The reference URL.
    pub fn url(&self) -> &Url {
        self.directory.url()
    }

    /// The context of a call of `invocation`: the reference URL and its settings under the
    /// override rules in force (`retries`, `sticky`, `forks`, ... are read from
    /// [`CallContext::settings`]).
    pub fn context<'a>(&'a self, invocation: &'a Invocation) -> CallContext<'a> {
        CallContext::new(self.url(), invocation).with_settings(self.directory.live_settings())
    }

    /// The routed providers for the call of `ctx`.
    pub fn providers(&self, ctx: &CallContext<'_>) -> Result<ProviderList> {
        self.directory.providers_for(ctx)
    }

    /// The load balancer for the method (`{method}.loadbalance`, else `loadbalance`), from
    /// [`ClusterBase::method_settings`].
    pub fn load_balance(&self, ctx: &CallContext<'_>) -> Result<Arc<dyn LoadBalance>> {
        Ok(self.method_settings(ctx)?.balancer.clone())
    }

    /// Resolves the method's balancer (the reference's shared one unless the method or the
    /// rules in force set another).
    fn read_balancer(&self, ctx: &CallContext<'_>) -> Result<Arc<dyn LoadBalance>> {
        let method = ctx.method();
        if let Some(live) = ctx.live_settings() {
            let key = <dyn LoadBalance as crate::extension::ExtensionPoint>::KEY;
            if live.method_param(method, key) != self.url().method_param(method, key) {
                return crate::extension::adaptive::<dyn LoadBalance>(live, method);
            }
        }
        Ok(self.balancer.get(self.url(), method)?.into_owned())
    }

    /// Chooses a provider from `providers` for the call of `ctx`:
    ///
    /// 1. with `sticky=true` (method-level first), the provider this reference last used for
    ///    the method, if it is still listed, available and not yet tried by this call;
    /// 2. otherwise the load balancer's pick among the providers not in `tried` (among all
    ///    of them once every one was tried);
    /// 3. a pick that is not available is replaced by the first available untried one.
    pub fn select(
        &self,
        lb: &dyn LoadBalance,
        providers: &ProviderList,
        ctx: &CallContext<'_>,
        tried: &[Provider],
    ) -> Result<Provider> {
        let sticky = self.method_settings(ctx)?.sticky;
        self.select_among(lb, sticky, providers, ctx, tried)
    }

    /// [`ClusterBase::select`] with the method's `sticky` setting given.
    fn select_among(
        &self,
        lb: &dyn LoadBalance,
        sticky: bool,
        providers: &ProviderList,
        ctx: &CallContext<'_>,
        tried: &[Provider],
    ) -> Result<Provider> {
        self.choose(lb, sticky, providers, ctx, tried)
            .map(Cow::into_owned)
    }

    /// [`ClusterBase::select_among`]'s choice, borrowed from `providers` when it is taken
    /// from them as listed: a caller that needs only the provider's invoker then takes no
    /// handle on the provider itself (a reference count every caller thread writes).
    fn choose<'l>(
        &self,
        lb: &dyn LoadBalance,
        sticky: bool,
        providers: &'l ProviderList,
        ctx: &CallContext<'_>,
        tried: &[Provider],
    ) -> Result<Cow<'l, Provider>> {
        let method = ctx.method();
        let was_tried = |p: &Provider| tried.iter().any(|t| t.same(p));
        if sticky {
            let held = self
                .sticky
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(method)
                .cloned();
            if let Some(held) = held {
                if held.is_available()
                    && !was_tried(&held)
                    && providers.iter().any(|p| p.same(&held))
                {
                    return Ok(Cow::Owned(held));
                }
            }
        }
        // The providers not tried yet, when some were tried and some were not.
        let untried: Option<ProviderList> = if tried.is_empty() {
            None
        } else {
            let rest: ProviderList = providers
                .iter()
                .filter(|p| !was_tried(p))
                .cloned()
                .collect();
            (!rest.is_empty()).then_some(rest)
        };
        let candidates: &ProviderList = untried.as_ref().unwrap_or(providers);
        let mut chosen = lb
            .select(candidates, ctx)?
            .filter(|&i| i < candidates.len())
            .ok_or_else(|| {
                ctx.invocation().annotate(RpcError::new(
                    ErrorKind::NoProvider,
                    format!(
                        "no provider to choose from for {}",
                        self.url().service_key()
                    ),
                ))
            })?;
        if !candidates[chosen].is_available() {
            let picked = &candidates[chosen];
            if let Some(other) = candidates
                .iter()
                .position(|p| p.is_available() && !p.same(picked))
            {
                chosen = other;
            }
        }
        let chosen = match &untried {
            None => Cow::Borrowed(&providers[chosen]),
            Some(rest) => Cow::Owned(rest[chosen].clone()),
        };
        if sticky {
            self.sticky
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(method.to_string(), chosen.clone().into_owned());
        }
        Ok(chosen)
    }

    /// Lists and selects (avoiding `tried`) one provider for `invocation`.
    pub fn pick(&self, invocation: &Invocation, tried: &[Provider]) -> Result<Provider> {
        let ctx = self.context(invocation);
        let settings = self.method_settings(&ctx)?;
        self.pick_with(&ctx, &settings, tried)
    }

    /// Lists and selects (avoiding `tried`) one provider for the call of `ctx`, whose
    /// method's settings are `settings`.
    pub fn pick_with(
        &self,
        ctx: &CallContext<'_>,
        settings: &MethodSettings,
        tried: &[Provider],
    ) -> Result<Provider> {
        let providers = self.providers(ctx)?;
        self.select_among(&*settings.balancer, settings.sticky, &providers, ctx, tried)
    }

    /// Lists, selects (avoiding `tried`) and calls one provider; see [`call`]. A strategy that
    /// needs the invocation again afterwards (to retry it) lends it and the call gets a copy;
    /// one that does not hands it over (`Cow::Owned`) and nothing is copied. `settings`: the
    /// method's, when the strategy read them already.
    ///
    /// The provider is chosen before the returned future is first polled, so the future holds
    /// only the chosen provider and its call (a strategy's future stays small).
    pub fn select_and_call<'a>(
        &'a self,
        invocation: Cow<'_, Invocation>,
        tried: &[Provider],
        settings: Option<&MethodSettings>,
    ) -> impl Future<Output = (Option<Provider>, Result<Response>)> + Send + 'a {
        let picked = match settings {
            Some(settings) => self.pick_with(&self.context(&invocation), settings, tried),
            None => self.pick(&invocation, tried),
        };
        // Either future, not an `async` block matching on the pick: that would keep the call's
        // future twice in its state (where it is made and where it is awaited), pushing a
        // strategy's future past the allocator's per-thread cache.
        use futures_util::future::{ready, Either, FutureExt};
        match picked {
            Ok(provider) => Either::Left(
                call_owned(provider, invocation.into_owned())
                    .map(|(provider, result)| (Some(provider), result)),
            ),
            Err(e) => Either::Right(ready((None, Err(e)))),
        }
    }

    /// Lists, selects and calls one provider, the call's future handed back as the strategy's
    /// own: for a strategy that neither retries nor needs to know which provider answered.
    /// Without a balancer that counts calls, the provider's own future
    /// ([`Invoker::invoke_as_member`]) is the whole of it: no box of the cluster's around the
    /// provider's. `settings`: the method's, when the strategy read them already.
    pub fn select_and_hand_over(
        &self,
        invocation: Invocation,
        settings: Option<&MethodSettings>,
    ) -> BoxedCall<'static> {
        let failed = |e| -> BoxedCall<'static> { Box::pin(std::future::ready(Err(e))) };
        let ctx = self.context(&invocation);
        let mut read = None;
        let settings = match settings {
            Some(settings) => settings,
            None => match self.method_settings(&ctx) {
                Ok(settings) => &**read.insert(settings),
                Err(e) => return failed(e),
            },
        };
        let providers = match self.providers(&ctx) {
            Ok(providers) => providers,
            Err(e) => return failed(e),
        };
        let chosen = match self.choose(&*settings.balancer, settings.sticky, &providers, &ctx, &[])
        {
            Ok(chosen) => chosen,
            Err(e) => return failed(e),
        };
        if crate::cluster::stats::counting() {
            let provider = chosen.into_owned();
            return Box::pin(call(&provider, invocation));
        }
        // Only the invoker is handed on (the provider's own count is left alone).
        let invoker = chosen.invoker().clone();
        invoker.invoke_as_member(invocation)
    }
}

/// Calls `provider`, counting the call in flight and recording its latency for the adaptive
/// balancers (once one exists: [`stats::counting`](crate::cluster::stats::counting)), and annotating an error with the provider address, service and method.
pub fn call(
    provider: &Provider,
    invocation: Invocation,
) -> impl Future<Output = Result<Response>> + Send + 'static {
    let call = call_owned(provider.clone(), invocation);
    async move { call.await.1 }
}

/// [`call`] on a provider handed over, and handed back with the result.
fn call_owned(
    provider: Provider,
    invocation: Invocation,
) -> impl Future<Output = (Provider, Result<Response>)> + Send + 'static {
    let guard =
        crate::cluster::stats::counting().then(|| provider.stats(invocation.method()).begin());
    let label = invocation.label();
    async move {
        let r = provider.invoker().invoke(invocation).await;
        if let Some(guard) = guard {
            guard.finish();
        }
        let r = r.map_err(|e| crate::invocation::member_error(&label, provider.url(), e));
        (provider, r)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Scripted provider invokers for the strategy tests.

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::error::{ErrorKind, Result, RpcError};
    use crate::invocation::{Invocation, Invoker, Response, ServiceKey, Value};
    use crate::url::Url;

    /// One scripted step.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum Step {
        /// Answer with the provider's address.
        Ok,
        /// Fail with this kind.
        Fail(ErrorKind),
        /// Sleep, then answer.
        Slow(Duration),
        /// Never answer.
        Hang,
    }

    /// A provider that follows a script (the last step repeats) and counts its calls and the
    /// calls whose future was dropped before finishing.
    pub(crate) struct Scripted {
        url: Url,
        script: Mutex<VecDeque<Step>>,
        pub(crate) calls: AtomicUsize,
        pub(crate) cancelled: Arc<AtomicUsize>,
        pub(crate) available: std::sync::atomic::AtomicBool,
    }

    struct CancelFlag(Arc<AtomicUsize>, bool);
    impl Drop for CancelFlag {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    impl Scripted {
        pub(crate) fn new(service: &str, n: u8, q: &str, script: &[Step]) -> Arc<Scripted> {
            Arc::new(Scripted {
                url: Url::parse(&format!("dubbo://10.1.0.{n}:20880/{service}?{q}")).expect("url"),
                script: Mutex::new(script.iter().copied().collect()),
                calls: AtomicUsize::new(0),
                cancelled: Arc::new(AtomicUsize::new(0)),
                available: std::sync::atomic::AtomicBool::new(true),
            })
        }

        pub(crate) fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        pub(crate) fn cancelled(&self) -> usize {
            self.cancelled.load(Ordering::SeqCst)
        }

        fn next(&self) -> Step {
            let mut s = self.script.lock().expect("script");
            if s.len() > 1 {
                s.pop_front().expect("step")
            } else {
                s.front().copied().unwrap_or(Step::Ok)
            }
        }
    }

    #[async_trait::async_trait]
    impl Invoker for Scripted {
        fn url(&self) -> &Url {
            &self.url
        }
        fn is_available(&self) -> bool {
            self.available.load(Ordering::SeqCst)
        }
        async fn invoke(&self, _: Invocation) -> Result<Response> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut flag = CancelFlag(self.cancelled.clone(), false);
            let r = match self.next() {
                Step::Ok => Ok(()),
                Step::Fail(kind) => Err(RpcError::new(kind, "scripted failure")),
                Step::Slow(d) => {
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                Step::Hang => std::future::pending().await,
            };
            flag.1 = true;
            r.map(|()| Response::value(Value::typed(self.url.address())))
        }
    }

    pub(crate) fn as_dyn(p: &[Arc<Scripted>]) -> Vec<Arc<dyn Invoker>> {
        p.iter().map(|s| s.clone() as Arc<dyn Invoker>).collect()
    }

    pub(crate) fn reference(service: &str, q: &str) -> Url {
        Url::parse(&format!("consumer://127.0.0.1/{service}?{q}")).expect("url")
    }

    pub(crate) fn call(service: &str, method: &'static str) -> Invocation {
        Invocation::new(ServiceKey::new(service, None, None), method, Value::Empty)
    }

    pub(crate) fn answer(r: Response) -> String {
        r.into_value::<String>().expect("address")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{self, answer, as_dyn, reference, Scripted, Step};
    use super::*;
    use crate::cluster::{Cluster, StaticDirectory};

    /// Once a balancer that reads in-flight counts exists, a call through a cluster is
    /// counted while it runs and no longer once it has ended.
    #[tokio::test(start_paused = true)]
    async fn calls_are_counted_in_flight_once_a_balancer_reads_the_counts() {
        crate::cluster::stats::read_active();
        assert!(crate::cluster::stats::counting());
        let p = [Scripted::new(
            "inflight.S",
            0,
            "",
            &[Step::Slow(std::time::Duration::from_millis(100))],
        )];
        let dir = StaticDirectory::new(reference("inflight.S", ""), as_dyn(&p));
        let cluster = super::failfast::Failfast.join(Arc::new(dir)).expect("join");
        let s = crate::cluster::stats::stats(p[0].url(), "m");
        let call =
            tokio::spawn(async move { cluster.invoke(testing::call("inflight.S", "m")).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(s.active(), 1, "the call is in flight");
        answer(call.await.expect("task").expect("answered"));
        assert_eq!(s.active(), 0);
    }

    /// A method's settings are read once per version of the settings in force: the same
    /// copy on the next call, another method its own, and new values once a rule changes
    /// them; a value that does not parse fails every call and is never kept.
    #[test]
    fn method_settings_are_read_once_per_settings_version() {
        let p = Scripted::new("ms.S", 0, "", &[Step::Ok]);
        let reference = reference("ms.S", "retries=1&m.retries=4&m.sticky=true&bad.retries=x");
        let base = ClusterBase::new(Arc::new(StaticDirectory::new(
            reference.clone(),
            as_dyn(&[p]),
        )));
        let m = testing::call("ms.S", "m");
        let other = testing::call("ms.S", "other");
        let read = |inv: &Invocation, live: Option<Arc<Url>>| {
            base.method_settings(&CallContext::new(&reference, inv).with_settings(live))
        };
        let first = read(&m, None).expect("m");
        assert!(
            matches!(first, Lent::Borrowed(_)),
            "lent without rules in force"
        );
        assert_eq!(
            (first.retries, first.sticky, first.idempotent),
            (Some(4), true, false)
        );
        assert!(std::ptr::eq(&*first, &*read(&m, None).expect("m again")));
        let o = read(&other, None).expect("other");
        assert_eq!((o.retries, o.sticky), (Some(1), false));
        assert!(std::ptr::eq(
            &*first,
            &*read(&m, None).expect("m kept beside other")
        ));

        let rule = Arc::new(
            reference
                .with_param("m.retries", "0")
                .with_param("m.idempotent", "true"),
        );
        let live = read(&m, Some(rule.clone())).expect("m under the rule");
        assert_eq!((live.retries, live.idempotent), (Some(0), true));
        assert!(std::ptr::eq(&*live, &*read(&m, Some(rule)).expect("kept")));
        assert!(matches!(live, Lent::Shared(_)));
        let back = read(&m, None).expect("rule withdrawn");
        assert_eq!(back.retries, Some(4));
        // Methods past the lent slots are read all the same.
        for i in 0..2 * LENT_SETTINGS {
            let name: &'static str = Box::leak(format!("x{i}").into_boxed_str());
            let s = read(&testing::call("ms.S", name), None).expect("another method");
            assert_eq!(s.retries, Some(1));
        }

        let bad = testing::call("ms.S", "bad");
        for _ in 0..2 {
            let e = read(&bad, None).err().expect("unparsable retries");
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(e.to_string().contains("retries"), "{e}");
        }
    }

    #[tokio::test]
    async fn sticky_keeps_one_provider_while_it_stays_available() {
        let p: Vec<_> = (0..4u8)
            .map(|i| Scripted::new("sticky.S", i, "", &[Step::Ok]))
            .collect();
        let dir = StaticDirectory::new(reference("sticky.S", "sticky=true"), as_dyn(&p));
        let inv = Failover.join(Arc::new(dir)).expect("join");
        let first = answer(
            inv.invoke(testing::call("sticky.S", "m"))
                .await
                .expect("ok"),
        );
        for _ in 0..50 {
            assert_eq!(
                answer(
                    inv.invoke(testing::call("sticky.S", "m"))
                        .await
                        .expect("ok")
                ),
                first
            );
        }
        let idx = p
            .iter()
            .position(|s| s.url().address() == first)
            .expect("known");
        p[idx]
            .available
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let moved = answer(
            inv.invoke(testing::call("sticky.S", "m"))
                .await
                .expect("ok"),
        );
        assert_ne!(moved, first);
        for _ in 0..20 {
            assert_eq!(
                answer(
                    inv.invoke(testing::call("sticky.S", "m"))
                        .await
                        .expect("ok")
                ),
                moved
            );
        }
    }

    #[tokio::test]
    async fn without_sticky_calls_spread() {
        let p: Vec<_> = (0..4u8)
            .map(|i| Scripted::new("spread.S", i, "", &[Step::Ok]))
            .collect();
        let dir = StaticDirectory::new(reference("spread.S", ""), as_dyn(&p));
        let inv = Failover.join(Arc::new(dir)).expect("join");
        for _ in 0..200 {
            inv.invoke(testing::call("spread.S", "m"))
                .await
                .expect("ok");
        }
        assert!(p.iter().all(|s| s.calls() > 10));
    }

    #[tokio::test]
    async fn method_level_loadbalance_overrides_service_level() {
        let p: Vec<_> = (0..3u8)
            .map(|i| Scripted::new("mlb.S", i, "", &[Step::Ok]))
            .collect();
        let url = reference("mlb.S", "loadbalance=random&m.loadbalance=nosuch");
        let dir = StaticDirectory::new(url, as_dyn(&p));
        let inv = Failfast.join(Arc::new(dir)).expect("join");
        let e = inv
            .invoke(testing::call("mlb.S", "m"))
            .await
            .expect_err("unknown");
        assert!(
            e.to_string().contains("unknown loadbalance 'nosuch'"),
            "{e}"
        );
        inv.invoke(testing::call("mlb.S", "other"))
            .await
            .expect("service level");
    }

    /// Four providers, one ten times slower (50 ms against 5 ms); 800 calls arrive at four
    /// per millisecond. Returns the slow provider's share of the calls.
    async fn slow_share(lb: &str, service: &str) -> f64 {
        use std::time::Duration;
        let slow = Scripted::new(service, 0, "", &[Step::Slow(Duration::from_millis(50))]);
        let mut all = vec![slow.clone()];
        for i in 1..4u8 {
            all.push(Scripted::new(
                service,
                i,
                "",
                &[Step::Slow(Duration::from_millis(5))],
            ));
        }
        let url = reference(service, &format!("loadbalance={lb}"));
        let inv = Failfast
            .join(Arc::new(StaticDirectory::new(url, as_dyn(&all))))
            .expect("join");
        let mut running = Vec::new();
        for _ in 0..200 {
            for _ in 0..4 {
                let inv = inv.clone();
                let service = service.to_string();
                running.push(tokio::spawn(async move {
                    let c = crate::invocation::Invocation::new(
                        crate::invocation::ServiceKey::new(&service, None, None),
                        "m",
                        crate::Value::Empty,
                    );
                    inv.invoke(c).await
                }));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for r in running {
            r.await.expect("task").expect("call");
        }
        slow.calls() as f64 / 800.0
    }

    /// Random would give the slow provider a quarter of the calls; the load-aware balancers
    /// equalise in-flight calls (or expected latency), which leaves it about 3%.
    #[tokio::test(start_paused = true)]
    async fn load_aware_balancers_steer_away_from_a_slow_provider() {
        for (lb, service) in [
            ("leastactive", "steer.la"),
            ("p2c", "steer.p2c"),
            ("shortestresponse", "steer.sr"),
        ] {
            let share = slow_share(lb, service).await;
            assert!(share < 0.12, "{lb}: slow provider got {share}");
        }
        let share = slow_share("random", "steer.random").await;
        assert!(share > 0.15, "random ignores load: {share}");
    }
}
