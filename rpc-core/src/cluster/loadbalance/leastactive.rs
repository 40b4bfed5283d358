//! `leastactive`: send the call to the provider with the fewest calls in flight.
//!
//! A slow provider accumulates in-flight calls, so it naturally gets fewer new ones. The
//! in-flight counts come from [`crate::cluster::stats`] (per provider and method), which the
//! cluster invokers maintain around every call. Ties are broken by weight (weighted random
//! among the tied providers), then uniformly at random when the weights are equal too.

use std::sync::Arc;

use super::least_weighted;
use crate::cluster::{CallContext, LoadBalance, ProviderList};
use crate::error::Result;

/// Fewest in-flight calls wins; see the [module docs](self).
#[derive(Debug, Default)]
pub struct LeastActive;

impl LoadBalance for LeastActive {
    fn select(&self, providers: &ProviderList, ctx: &CallContext<'_>) -> Result<Option<usize>> {
        match providers.len() {
            0 => return Ok(None),
            1 => return Ok(Some(0)),
            _ => {}
        }
        let stats = providers.stats(ctx.method());
        Ok(least_weighted(providers, ctx.method(), |i| {
            stats[i].active()
        }))
    }
}

crate::register!(dyn LoadBalance, "leastactive", || {
    crate::cluster::stats::read_active();
    Arc::new(LeastActive)
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;
    use crate::cluster::stats;

    #[test]
    fn picks_the_provider_with_fewest_calls_in_flight() {
        let p = providers_of("la1.S", &["", "", ""]);
        let inv = call_of("la1.S");
        let busy0: Vec<_> = (0..3)
            .map(|_| stats::stats(p[0].url(), "m").begin())
            .collect();
        let busy2 = stats::stats(p[2].url(), "m").begin();
        for _ in 0..100 {
            assert_eq!(pick(&LeastActive, &p, &inv), Some(1));
        }
        drop(busy0);
        drop(busy2);
    }

    /// With no calls in flight every provider ties, so shares follow weights 1/2/7: each share
    /// within 2 points over 10,000 picks (over four standard deviations, as for `random`).
    #[test]
    fn ties_follow_weights() {
        let p = providers_of("la2.S", &["weight=10", "weight=20", "weight=70"]);
        let s = shares(&LeastActive, &p, &call_of("la2.S"), 10_000);
        assert_shares(&s, &[0.1, 0.2, 0.7], 0.02);
    }

    #[test]
    fn ties_among_the_least_only() {
        let p = providers_of("la3.S", &["", "", ""]);
        let inv = call_of("la3.S");
        let busy = stats::stats(p[1].url(), "m").begin();
        let s = shares(&LeastActive, &p, &inv, 10_000);
        assert_eq!(s[1], 0.0);
        // Uniform between the two others: 0.5 ± 0.03 (six standard deviations of 0.005).
        assert_shares(&s, &[0.5, 0.0, 0.5], 0.03);
        drop(busy);
    }
}
