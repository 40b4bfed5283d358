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

use crate::invocation::{Invocation, Invoker};
use crate::url::Url;

pub mod consistenthash;
pub mod leastactive;
pub mod p2c;
pub mod random;
pub mod roundrobin;
pub mod shortestresponse;

pub(crate) use consistenthash::argument_key;
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

/// The effective weight of `invoker` for `invocation` at `now_ms` (ms since the epoch).
///
/// A malformed `weight`, `warmup` or `timestamp` falls back to the default rather than failing
/// the call: a provider's URL is not the caller's to fix, and a bad weight must not take a
/// provider out of service.
///
/// The parsed parameters of each provider URL are cached per thread (keyed by the URL's
/// identity and checked against it), so a pick over many providers does not re-parse them.
pub fn weight_at(invoker: &dyn Invoker, invocation: &Invocation, now_ms: u64) -> u32 {
    let url = invoker.url();
    let key = url as *const Url as usize;
    let cached = WEIGHTS.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(e) = c.get(&key).filter(|e| e.url == *url) {
            return e.params;
        }
        if c.len() >= WEIGHT_CACHE_MAX {
            c.clear();
        }
        let params = WeightParams::read(url);
        c.insert(
            key,
            CachedWeight {
                url: url.clone(),
                params,
            },
        );
        params
    });
    let weight = if cached.method_level {
        url.method_param_as(invocation.method(), "weight", DEFAULT_WEIGHT)
            .unwrap_or(DEFAULT_WEIGHT)
    } else {
        cached.weight
    };
    ramp(weight, cached.started, cached.warmup, now_ms)
}

/// Linear warm-up ramp, never below 1 so a warming provider still gets some traffic.
fn ramp(weight: u32, started: u64, warmup: u64, now_ms: u64) -> u32 {
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

const WEIGHT_CACHE_MAX: usize = 4096;

#[derive(Clone, Copy)]
struct WeightParams {
    weight: u32,
    started: u64,
    warmup: u64,
    /// Whether some `{method}.weight` key exists (then the weight is read per method).
    method_level: bool,
}

impl WeightParams {
    fn read(url: &Url) -> Self {
        WeightParams {
            weight: url
                .param_as("weight", DEFAULT_WEIGHT)
                .unwrap_or(DEFAULT_WEIGHT),
            started: url.param_as("timestamp", 0u64).unwrap_or(0),
            warmup: url
                .param_as("warmup", DEFAULT_WARMUP_MS)
                .unwrap_or(DEFAULT_WARMUP_MS),
            method_level: url.params().keys().any(|k| k.ends_with(".weight")),
        }
    }
}

struct CachedWeight {
    url: Url,
    params: WeightParams,
}

thread_local! {
    static WEIGHTS: std::cell::RefCell<std::collections::HashMap<usize, CachedWeight>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The effective weight now; see [`weight_at`].
pub fn weight(invoker: &dyn Invoker, invocation: &Invocation) -> u32 {
    weight_at(invoker, invocation, now_ms())
}

/// Picks one of `candidates` (indices into `invokers`) at random with probability proportional
/// to its weight; uniformly when all weights are equal or zero. `None` when `candidates` is
/// empty. Used by the balancers to break ties.
pub fn weighted_among(
    invokers: &[std::sync::Arc<dyn Invoker>],
    candidates: &[usize],
    invocation: &Invocation,
) -> Option<usize> {
    match candidates.len() {
        0 => return None,
        1 => return Some(candidates[0]),
        n if n == invokers.len() => {
            // Everyone tied: a weighted pick over the whole list (cached cumulative weights).
            use crate::cluster::LoadBalance;
            return Random.select(invokers, invocation);
        }
        _ => {}
    }
    let now = now_ms();
    let weights: Vec<u64> = candidates
        .iter()
        .map(|&i| u64::from(weight_at(&*invokers[i], invocation, now)))
        .collect();
    let total: u64 = weights.iter().sum();
    if total == 0 || weights.iter().all(|w| *w == weights[0]) {
        return Some(candidates[fastrand::usize(..candidates.len())]);
    }
    let mut offset = fastrand::u64(..total);
    for (c, w) in candidates.iter().zip(&weights) {
        if offset < *w {
            return Some(*c);
        }
        offset -= w;
    }
    candidates.last().copied()
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
    use super::*;
    use crate::error::Result;
    use crate::invocation::{Response, ServiceKey, Value};
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

    pub(crate) fn providers(params: &[&str]) -> Vec<Arc<dyn Invoker>> {
        params
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let url = Url::parse(&format!("dubbo://10.0.0.{i}:20880/S?{q}")).expect("url");
                Arc::new(Fixed(url)) as Arc<dyn Invoker>
            })
            .collect()
    }

    pub(crate) fn call() -> Invocation {
        Invocation::new(ServiceKey::new("S", None, None), "m", Value::Empty)
    }

    /// Providers of their own service `service` (so per-provider statistics of one test do
    /// not mix with another's).
    pub(crate) fn providers_of(service: &str, params: &[&str]) -> Vec<Arc<dyn Invoker>> {
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

    pub(crate) fn call_of(service: &str) -> Invocation {
        Invocation::new(ServiceKey::new(service, None, None), "m", Value::Empty)
    }

    /// Picks `n` times and returns each provider's share of the picks.
    pub(crate) fn shares(
        lb: &dyn crate::cluster::LoadBalance,
        p: &[Arc<dyn Invoker>],
        inv: &Invocation,
        n: usize,
    ) -> Vec<f64> {
        let mut counts = vec![0usize; p.len()];
        for _ in 0..n {
            counts[lb.select(p, inv).expect("pick")] += 1;
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
        let w: Vec<u32> = p.iter().map(|i| weight(&**i, &inv)).collect();
        assert_eq!(w, [100, 7, 3, 100]);
    }

    #[test]
    fn warmup_ramps_linearly() {
        let p = providers(&["weight=100&warmup=1000&timestamp=10000"]);
        let inv = call();
        assert_eq!(weight_at(&*p[0], &inv, 10_000), 1);
        assert_eq!(weight_at(&*p[0], &inv, 10_250), 25);
        assert_eq!(weight_at(&*p[0], &inv, 10_500), 50);
        assert_eq!(weight_at(&*p[0], &inv, 11_000), 100);
        assert_eq!(weight_at(&*p[0], &inv, 99_000), 100);
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
