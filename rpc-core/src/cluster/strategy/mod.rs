//! Fault-tolerance strategies, one file each (`cluster=` key, default `failover`).
//!
//! Every strategy is built on [`ClusterBase`]: one place that lists the directory, selects a
//! provider with the load balancer chosen for the method (`{method}.loadbalance` first), keeps
//! a caller on one provider when `sticky=true`, avoids providers already tried by this call,
//! records in-flight counts and latencies for the adaptive balancers, and annotates errors
//! with the provider address, service and method.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cluster::{stats, Directory, LoadBalance};
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::AdaptiveCache;
use crate::invocation::{Invocation, Invoker, Response};
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

/// The URL cluster settings are read from ([`ClusterBase::settings`]).
pub enum Settings<'a> {
    /// The reference URL (no override rule changes it).
    Reference(&'a Url),
    /// The reference URL under the override rules in force.
    Live(Arc<Url>),
}

impl std::ops::Deref for Settings<'_> {
    type Target = Url;

    fn deref(&self) -> &Url {
        match self {
            Settings::Reference(u) => u,
            Settings::Live(u) => u,
        }
    }
}

/// What every cluster invoker shares: the directory, sticky state, and the select/call helper.
pub struct ClusterBase {
    directory: Arc<dyn Directory>,
    /// The provider each method stuck to (`sticky=true`), per reference (this invoker).
    sticky: Mutex<HashMap<String, Arc<dyn Invoker>>>,
    /// The balancer, looked up once unless methods set their own.
    balancer: AdaptiveCache<dyn LoadBalance>,
}

impl ClusterBase {
    /// A base over `directory`.
    pub fn new(directory: Arc<dyn Directory>) -> Self {
        ClusterBase {
            directory,
            sticky: Mutex::new(HashMap::new()),
            balancer: AdaptiveCache::new(),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    /// The reference URL.
    pub fn url(&self) -> &Url {
        self.directory.url()
    }

    /// The URL a call's cluster settings (`retries`, `sticky`, `forks`, ...) are read from:
    /// the reference URL, or what the override rules in force made of it.
    pub fn settings(&self) -> Settings<'_> {
        match self.directory.live_settings() {
            Some(live) => Settings::Live(live),
            None => Settings::Reference(self.url()),
        }
    }

    /// The routed provider list for `invocation`.
    pub fn list(&self, invocation: &Invocation) -> Result<Arc<[Arc<dyn Invoker>]>> {
        self.directory.list_shared(invocation)
    }

    /// The load balancer for the method (`{method}.loadbalance`, else `loadbalance`),
    /// resolved once per reference unless methods set their own.
    pub fn load_balance(&self, invocation: &Invocation) -> Result<Cow<'_, Arc<dyn LoadBalance>>> {
        let method = invocation.method();
        if let Some(live) = self.directory.live_settings() {
            let key = <dyn LoadBalance as crate::extension::ExtensionPoint>::KEY;
            if live.method_param(method, key) != self.url().method_param(method, key) {
                return crate::extension::adaptive::<dyn LoadBalance>(&live, method)
                    .map(Cow::Owned);
            }
        }
        self.balancer.get(self.url(), method)
    }

    /// Chooses a provider from `invokers` for `invocation`:
    ///
    /// 1. with `sticky=true` (method-level first), the provider this reference last used for
    ///    the method, if it is still listed, available and not yet tried by this call;
    /// 2. otherwise the load balancer's pick among the providers not in `tried` (among all
    ///    of them once every one was tried);
    /// 3. a pick that is not available is replaced by the first available untried one.
    pub fn select(
        &self,
        lb: &dyn LoadBalance,
        invokers: &[Arc<dyn Invoker>],
        invocation: &Invocation,
        tried: &[Arc<dyn Invoker>],
    ) -> Result<Arc<dyn Invoker>> {
        let was_tried = |i: &Arc<dyn Invoker>| tried.iter().any(|t| same(t, i));
        let sticky = self
            .settings()
            .method_param_as(invocation.method(), "sticky", false)?;
        if sticky {
            let held = self
                .sticky
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(invocation.method())
                .cloned();
            if let Some(held) = held {
                if held.is_available()
                    && !was_tried(&held)
                    && invokers.iter().any(|i| same(i, &held))
                {
                    return Ok(held);
                }
            }
        }
        let untried: Vec<Arc<dyn Invoker>>;
        let candidates: &[Arc<dyn Invoker>] = if tried.is_empty() {
            invokers
        } else {
            untried = invokers.iter().filter(|i| !was_tried(i)).cloned().collect();
            if untried.is_empty() {
                invokers
            } else {
                &untried
            }
        };
        let mut chosen = lb
            .select(candidates, invocation)
            .and_then(|i| candidates.get(i))
            .cloned()
            .ok_or_else(|| {
                invocation.annotate(RpcError::new(
                    ErrorKind::NoProvider,
                    format!(
                        "no provider to choose from for {}",
                        self.url().service_key()
                    ),
                ))
            })?;
        if !chosen.is_available() {
            if let Some(other) = candidates
                .iter()
                .find(|i| i.is_available() && !same(i, &chosen))
            {
                chosen = other.clone();
            }
        }
        if sticky {
            self.sticky
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(invocation.method().to_string(), chosen.clone());
        }
        Ok(chosen)
    }

    /// Lists, selects (avoiding `tried`) and calls one provider; see [`call`]. A strategy that
    /// needs the invocation again afterwards (to retry it) lends it and the call gets a copy;
    /// one that does not hands it over (`Cow::Owned`) and nothing is copied.
    pub async fn select_and_call(
        &self,
        invocation: Cow<'_, Invocation>,
        tried: &[Arc<dyn Invoker>],
    ) -> (Option<Arc<dyn Invoker>>, Result<Response>) {
        let picked = self.list(&invocation).and_then(|list| {
            let lb = self.load_balance(&invocation)?;
            self.select(&**lb, &list, &invocation, tried)
        });
        match picked {
            Ok(invoker) => {
                let r = call(&invoker, invocation.into_owned()).await;
                (Some(invoker), r)
            }
            Err(e) => (None, Err(e)),
        }
    }
}

/// Whether two invokers are the same provider: the same object, or equal URLs.
pub fn same(a: &Arc<dyn Invoker>, b: &Arc<dyn Invoker>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)) || a.url() == b.url()
}

/// Calls `invoker`, counting the call in flight and recording its latency for the adaptive
/// balancers, and annotating an error with the provider address, service and method.
pub async fn call(invoker: &Arc<dyn Invoker>, invocation: Invocation) -> Result<Response> {
    let guard = stats::stats(invoker.url(), invocation.method()).begin();
    let label = invocation.label();
    let r = invoker.invoke(invocation).await;
    guard.finish();
    r.map_err(|e| label.annotate(e).with_provider(invoker.url().address()))
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
