//! `shortestresponse`: send the call where it is expected to finish first.
//!
//! The expected time of a provider is the mean of its recent latencies (a sliding window of
//! the last [`crate::cluster::stats::WINDOW`] calls per provider and method) multiplied by
//! its calls in flight plus one: a fast provider that is already busy can lose to a slower
//! idle one. A provider with no history is assumed to have the mean latency of the others,
//! so it is tried soon but its calls in flight still count.
//! Ties are broken by weight, then at random. The statistics are recorded by the cluster
//! invokers after every call.

use std::sync::Arc;

use super::least_weighted;
use crate::cluster::{stats, CallContext, LoadBalance, ProviderList};
use crate::error::Result;

/// Smallest expected latency × (in flight + 1) wins; see the [module docs](self).
#[derive(Debug, Default)]
pub struct ShortestResponse;

impl LoadBalance for ShortestResponse {
    fn select(&self, providers: &ProviderList, ctx: &CallContext<'_>) -> Result<Option<usize>> {
        match providers.len() {
            0 => return Ok(None),
            1 => return Ok(Some(0)),
            _ => {}
        }
        let stats = providers.stats(ctx.method());
        // One reading of every provider's numbers, which the ties are counted over.
        let observed: Vec<(u64, u32)> = stats
            .iter()
            .map(|s| (s.window_mean_ns(), s.active()))
            .collect();
        // Providers without history are assumed to have the mean latency of those with some
        // (1 ns when none has any), so their calls in flight still count.
        let (sum, known) = observed
            .iter()
            .filter(|o| o.0 > 0)
            .fold((0u64, 0u64), |(s, n), o| (s + o.0, n + 1));
        let assumed = sum.checked_div(known).unwrap_or(1);
        Ok(least_weighted(providers, ctx.method(), |i| {
            let (mean, active) = observed[i];
            let mean = if mean == 0 { assumed } else { mean };
            u128::from(mean) * (u128::from(active) + 1)
        }))
    }
}

crate::register!(dyn LoadBalance, "shortestresponse", || {
    stats::read_latency();
    Arc::new(ShortestResponse)
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;
    use std::time::Duration;

    #[test]
    fn prefers_the_faster_provider_unless_it_is_busy() {
        let p = providers_of("sr1.S", &["", ""]);
        let inv = call_of("sr1.S");
        stats::stats(p[0].url(), "m").record(Duration::from_millis(10));
        stats::stats(p[1].url(), "m").record(Duration::from_millis(30));
        for _ in 0..100 {
            assert_eq!(pick(&ShortestResponse, &p, &inv), Some(0));
        }
        // Three calls in flight: 10 ms × 4 = 40 ms > 30 ms × 1.
        let busy: Vec<_> = (0..3)
            .map(|_| stats::stats(p[0].url(), "m").begin())
            .collect();
        assert_eq!(pick(&ShortestResponse, &p, &inv), Some(1));
        drop(busy);
    }

    /// Creating the balancer through the SPI switches on the timing of calls, so it learns
    /// from real calls, not only from recorded samples.
    #[test]
    fn created_through_the_spi_it_gets_calls_timed() {
        let _lb = crate::extension::get::<dyn LoadBalance>("shortestresponse").expect("lb");
        let p = providers_of("sr3.S", &[""]);
        let s = stats::stats(p[0].url(), "m");
        let call = s.begin();
        std::thread::sleep(Duration::from_millis(2));
        call.finish();
        assert!(s.window_mean_ns() >= 2_000_000, "{}", s.window_mean_ns());
        assert_eq!(s.active(), 0);
    }

    /// Without history all providers tie and shares follow weights 1/2/7 within 2 points
    /// over 10,000 picks (over four standard deviations).
    #[test]
    fn ties_follow_weights() {
        let p = providers_of("sr2.S", &["weight=10", "weight=20", "weight=70"]);
        let s = shares(&ShortestResponse, &p, &call_of("sr2.S"), 10_000);
        assert_shares(&s, &[0.1, 0.2, 0.7], 0.02);
    }
}
