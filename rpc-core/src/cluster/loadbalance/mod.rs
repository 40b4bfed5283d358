//! Load balancers. Each lives in its own file and only registers itself.
//!
//! All of them are weight-aware: a provider's weight is its `weight` parameter (default
//! [`DEFAULT_WEIGHT`]), ramped up linearly over `warmup` milliseconds (default
//! [`DEFAULT_WARMUP_MS`]) after the provider's start time (`timestamp`, milliseconds since the
//! Unix epoch), so a freshly started provider is not flooded while it warms its caches.
//!
//! | name | picks | state |
//! |---|---|---|
//! | `random` (default) | weighted random | none |
//! | `roundrobin` | smooth weighted round robin (nginx) | per service + method |
//! | `leastactive` | fewest calls in flight, ties by weight then random | [`crate::cluster::stats`] |
//! | `consistenthash` | same arguments → same provider (`hash.arguments`, `hash.nodes`) | ring per service + method |
//! | `shortestresponse` | smallest mean latency × (in flight + 1) | [`crate::cluster::stats`] |
//! | `p2c` | the better of two weighted random picks by EWMA latency × (in flight + 1) | [`crate::cluster::stats`] |

use std::time::{SystemTime, UNIX_EPOCH};

use crate::cluster::{Provider, ProviderList};
use crate::invocation::Invocation;

mod arguments;
pub mod consistenthash;
pub mod leastactive;
pub mod p2c;
pub mod random;
pub mod roundrobin;
pub mod shortestresponse;

pub(crate) use arguments::argument_key;
pub use consistenthash::ConsistentHash;
pub use leastactive::LeastActive;
pub use p2c::P2c;
pub use random::Random;
pub use roundrobin::RoundRobin;
pub use shortestresponse::ShortestResponse;

/// Weight of a provider that does not say.
pub const DEFAULT_WEIGHT: u32 = 100;
/// Warm-up time of a provider that does not say: ten minutes, as in Dubbo.
pub const DEFAULT_WARMUP_MS: u64 = 10 * 60 * 1000;

/// The effective weight of `provider` for `invocation` at `now_ms` (ms since the epoch); see
/// [`Provider::weight_at`].
pub fn weight_at(provider: &Provider, invocation: &Invocation, now_ms: u64) -> u32 {
    provider.weight_at(invocation.method(), now_ms)
}

/// The effective weight now; see [`weight_at`].
pub fn weight(provider: &Provider, invocation: &Invocation) -> u32 {
    weight_at(provider, invocation, now_ms())
}

/// Picks one of `candidates` (indices into `providers`) at random with probability
/// proportional to its weight for `method`; uniformly when all weights are equal or zero.
/// `None` when `candidates` is empty. Used by the balancers to break ties.
pub fn weighted_among(
    providers: &ProviderList,
    candidates: &[usize],
    method: &str,
) -> Option<usize> {
    match candidates.len() {
        0 => return None,
        1 => return Some(candidates[0]),
        // Everyone tied: one draw from the list's weight table.
        n if n == providers.len() => return providers.pick(method),
        _ => {}
    }
    providers.with_weights(method, |table| {
        let weight = |c: usize| table.weight(c);
        let total: u64 = candidates.iter().map(|&c| weight(c)).sum();
        let first = weight(candidates[0]);
        if total == 0 || candidates.iter().all(|&c| weight(c) == first) {
            return Some(candidates[fastrand::usize(..candidates.len())]);
        }
        let mut offset = fastrand::u64(..total);
        for &c in candidates {
            let w = weight(c);
            if offset < w {
                return Some(c);
            }
            offset -= w;
        }
        candidates.last().copied()
    })
}

/// The provider with the smallest `key` (an index into `providers`), ties broken by
/// [`weighted_among`]; `None` for an empty list. Allocates only when some but not all
/// providers tie. `key` may be read twice per provider; should a value change in between
/// (a call starting), the first least one found is taken.
pub(crate) fn least_weighted<K: Ord>(
    providers: &ProviderList,
    method: &str,
    key: impl Fn(usize) -> K,
) -> Option<usize> {
    let mut least: Option<(K, usize, usize)> = None; // (key, first index, how many tie)
    for i in 0..providers.len() {
        let k = key(i);
        match &mut least {
            Some((best, _, n)) if k == *best => *n += 1,
            Some((best, _, _)) if k > *best => {}
            _ => least = Some((k, i, 1)),
        }
    }
    let (best, first, tied) = least?;
    if tied == 1 {
        return Some(first);
    }
    if tied == providers.len() {
        return providers.pick(method);
    }
    let candidates: Vec<usize> = (first..providers.len())
        .filter(|&i| key(i) == best)
        .collect();
    weighted_among(providers, &candidates, method).or(Some(first))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Test support: invokers that only carry a URL.
#[cfg(test)]
pub(crate) mod testing {
    use crate::cluster::{CallContext, LoadBalance, ProviderList};
    use crate::error::Result;
    use crate::invocation::{Invocation, Invoker, Response, ServiceKey, Value};
    use crate::url::Url;
    use std::sync::Arc;

    pub(crate) struct Fixed(pub(crate) Url);

    #[async_trait::async_trait]
    impl Invoker for Fixed {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, _: Invocation) -> Result<Response> {
            Ok(Response::value(Value::typed(self.0.address())))
        }
    }

    pub(crate) fn invokers(params: &[&str]) -> Vec<Arc<dyn Invoker>> {
        invokers_of("S", params)
    }

    pub(crate) fn invokers_of(service: &str, params: &[&str]) -> Vec<Arc<dyn Invoker>> {
        params
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let url =
                    Url::parse(&format!("dubbo://10.0.0.{i}:20880/{service}?{q}")).expect("url");
                Arc::new(Fixed(url)) as Arc<dyn Invoker>
            })
            .collect()
    }

    pub(crate) fn providers(params: &[&str]) -> ProviderList {
        ProviderList::of(invokers(params))
    }

    pub(crate) fn call() -> Invocation {
        Invocation::new(ServiceKey::new("S", None, None), "m", Value::Empty)
    }

    /// Providers of their own service `service` (so per-provider statistics of one test do
    /// not mix with another's).
    pub(crate) fn providers_of(service: &str, params: &[&str]) -> ProviderList {
        ProviderList::of(invokers_of(service, params))
    }

    pub(crate) fn call_of(service: &str) -> Invocation {
        Invocation::new(ServiceKey::new(service, None, None), "m", Value::Empty)
    }

    /// The consumer URL the test calls go through.
    pub(crate) fn consumer() -> Url {
        Url::parse("consumer://127.0.0.1/S").expect("url")
    }

    /// One pick of `lb` for `inv` over `p`.
    pub(crate) fn pick(lb: &dyn LoadBalance, p: &ProviderList, inv: &Invocation) -> Option<usize> {
        let reference = consumer();
        lb.select(p, &CallContext::new(&reference, inv))
            .expect("select")
    }

    /// Picks `n` times and returns each provider's share of the picks.
    pub(crate) fn shares(
        lb: &dyn LoadBalance,
        p: &ProviderList,
        inv: &Invocation,
        n: usize,
    ) -> Vec<f64> {
        let mut counts = vec![0usize; p.len()];
        for _ in 0..n {
            counts[pick(lb, p, inv).expect("pick")] += 1;
        }
        counts.iter().map(|c| *c as f64 / n as f64).collect()
    }

    /// Asserts each share is within `tol` of the expected one.
    pub(crate) fn assert_shares(got: &[f64], expected: &[f64], tol: f64) {
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (g - e).abs() <= tol,
                "shares {got:?}, expected {expected:?} ± {tol}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn weight_defaults_and_reads_method_level() {
        let p = providers(&["", "weight=7", "weight=7&m.weight=3", "weight=bad"]);
        let inv = call();
        let w: Vec<u32> = p.iter().map(|i| weight(i, &inv)).collect();
        assert_eq!(w, [100, 7, 3, 100]);
    }

    #[test]
    fn warmup_ramps_linearly() {
        let p = providers(&["weight=100&warmup=1000&timestamp=10000"]);
        let inv = call();
        assert_eq!(weight_at(&p[0], &inv, 10_000), 1);
        assert_eq!(weight_at(&p[0], &inv, 10_250), 25);
        assert_eq!(weight_at(&p[0], &inv, 10_500), 50);
        assert_eq!(weight_at(&p[0], &inv, 11_000), 100);
        assert_eq!(weight_at(&p[0], &inv, 99_000), 100);
    }

    /// Every weight-aware balancer honours warm-up when providers are idle: two providers of
    /// weight 100, one 250 s into a 1000 s warm-up (effective weight 25), so the shares are
    /// 0.8/0.2. Over 10,000 picks the standard deviation is 0.4 points; the tolerance is 2.
    #[test]
    fn warm_up_applies_to_every_weighted_balancer() {
        let started = now_ms() - 250_000;
        let warm = format!("weight=100&warmup=1000000&timestamp={started}");
        for name in [
            "random",
            "roundrobin",
            "leastactive",
            "shortestresponse",
            "p2c",
        ] {
            let service = format!("warm.{name}");
            let p = providers_of(&service, &["weight=100", &warm]);
            let lb = crate::extension::get::<dyn crate::cluster::LoadBalance>(name).expect(name);
            let s = shares(&*lb, &p, &call_of(&service), 10_000);
            assert!((s[1] - 0.2).abs() < 0.02, "{name}: {s:?}");
        }
    }
}
