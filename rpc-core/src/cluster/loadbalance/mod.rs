//! Load balancers. Each lives in its own file and only registers itself.
//!
//! All of them are weight-aware: a provider's weight is its `weight` parameter (default
//! [`DEFAULT_WEIGHT`]), ramped up linearly over `warmup` milliseconds (default
//! [`DEFAULT_WARMUP_MS`]) after the provider's start time (`timestamp`, milliseconds since the
//! Unix epoch), so a freshly started provider is not flooded while it warms its caches.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::invocation::{Invocation, Invoker};

mod random;

pub use random::Random;

/// Weight of a provider that does not say.
pub const DEFAULT_WEIGHT: u32 = 100;
/// Warm-up time of a provider that does not say: ten minutes, as in Dubbo.
pub const DEFAULT_WARMUP_MS: u64 = 10 * 60 * 1000;

/// The effective weight of `invoker` for `invocation` at `now_ms` (ms since the epoch).
///
/// A malformed `weight`, `warmup` or `timestamp` falls back to the default rather than failing
/// the call: a provider's URL is not the caller's to fix, and a bad weight must not take a
/// provider out of service.
pub fn weight_at(invoker: &dyn Invoker, invocation: &Invocation, now_ms: u64) -> u32 {
    let url = invoker.url();
    let method = invocation.method();
    let weight: u32 = url
        .method_param_as(method, "weight", DEFAULT_WEIGHT)
        .unwrap_or(DEFAULT_WEIGHT);
    if weight == 0 {
        return 0;
    }
    let started: u64 = url.param_as("timestamp", 0u64).unwrap_or(0);
    if started == 0 || started > now_ms {
        return weight;
    }
    let warmup: u64 = url
        .param_as("warmup", DEFAULT_WARMUP_MS)
        .unwrap_or(DEFAULT_WARMUP_MS);
    let uptime = now_ms - started;
    if warmup == 0 || uptime >= warmup {
        return weight;
    }
    // Linear ramp, never below 1 so a warming provider still gets some traffic.
    let ramped = (uptime as u128 * weight as u128 / warmup as u128) as u32;
    ramped.clamp(1, weight)
}

/// The effective weight now; see [`weight_at`].
pub fn weight(invoker: &dyn Invoker, invocation: &Invocation) -> u32 {
    weight_at(invoker, invocation, now_ms())
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
}
