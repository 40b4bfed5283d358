//! `p2c`: the power of two choices over a latency EWMA and in-flight calls.
//!
//! Two providers are drawn at random (each draw weighted by the providers' warmed-up
//! weights) and the one with the lower load wins, where load is the exponentially weighted
//! moving average of its latency times its calls in flight plus one. (Weight acts through
//! the draws only, so idle providers of equal latency get picks in proportion to weight.)
//! Picking the better of two random choices avoids both the herd behaviour of always taking
//! the global minimum on stale data and the cost of scanning every provider: it is O(1) per
//! pick and still moves load away from slow or overloaded providers.
//!
//! Sources: M. Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
//! IEEE TPDS 12(10), 2001; Twitter Finagle's `P2CPeakEwma` balancer (peak EWMA of latency ×
//! outstanding requests). Our EWMA decays with the time between samples
//! ([`crate::cluster::stats::EWMA_TAU`]); a provider without history is assumed as fast as
//! the one it is compared with, so its calls in flight still count against it.

use std::sync::Arc;

use crate::cluster::{stats, CallContext, LoadBalance, Provider, ProviderList};
use crate::error::Result;

/// Power of two choices on EWMA latency × (in flight + 1); see the [module docs](self).
#[derive(Debug, Default)]
pub struct P2c;

/// EWMA latency (0 without history) and calls in flight.
fn observe(provider: &Provider, method: &str) -> (f64, u32) {
    let s = provider.stats(method);
    (s.ewma_ns(), s.active())
}

fn load(ewma: f64, active: u32) -> f64 {
    ewma * (f64::from(active) + 1.0)
}

impl LoadBalance for P2c {
    fn select(&self, providers: &ProviderList, ctx: &CallContext<'_>) -> Result<Option<usize>> {
        let method = ctx.method();
        match providers.len() {
            0 => return Ok(None),
            1 => return Ok(Some(0)),
            _ => {}
        }
        // Two weighted draws from the list's weight table.
        let Some((a, b)) = providers.with_weights(method, |t| Some((t.pick()?, t.pick()?))) else {
            return Ok(None);
        };
        if a == b {
            return Ok(Some(a));
        }
        let (ea, aa) = observe(&providers[a], method);
        let (eb, ab) = observe(&providers[b], method);
        // A provider without history is assumed as fast as the other one, so that its calls
        // in flight still count (a slow new provider must not look free until its first
        // answer); two without history compare by calls in flight alone.
        let (ea, eb) = match (ea > 0.0, eb > 0.0) {
            (true, true) => (ea, eb),
            (false, true) => (eb, eb),
            (true, false) => (ea, ea),
            (false, false) => (1.0, 1.0),
        };
        let la = load(ea, aa);
        let lb = load(eb, ab);
        // On a tie the first draw wins, which keeps the shares of idle providers equal to
        // their weights.
        Ok(Some(if lb < la { b } else { a }))
    }
}

crate::register!(dyn LoadBalance, "p2c", || {
    stats::read_latency();
    Arc::new(P2c)
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;
    use std::time::Duration;

    /// Without history every load is 0, ties go to the first weighted draw, so shares follow
    /// weights 1/2/7 within 2 points over 10,000 picks (over four standard deviations).
    #[test]
    fn idle_shares_follow_weights() {
        let p = providers_of("pc1.S", &["weight=10", "weight=20", "weight=70"]);
        let s = shares(&P2c, &p, &call_of("pc1.S"), 10_000);
        assert_shares(&s, &[0.1, 0.2, 0.7], 0.02);
    }

    /// One provider of three has a 100× higher latency: it wins only when drawn twice, with
    /// probability 1/9, so its share is 0.111 (± 0.02, over six standard deviations).
    #[test]
    fn slow_provider_wins_only_when_drawn_twice() {
        let p = providers_of("pc2.S", &["", "", ""]);
        for (i, ms) in [(0, 1), (1, 1), (2, 100)] {
            stats::stats(p[i].url(), "m").record(Duration::from_millis(ms));
        }
        let s = shares(&P2c, &p, &call_of("pc2.S"), 10_000);
        assert!((s[2] - 1.0 / 9.0).abs() < 0.02, "{s:?}");
    }
}
