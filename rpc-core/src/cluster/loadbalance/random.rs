//! `random`: weighted random choice, the default balancer.
//!
//! The cumulative weights of a provider list are computed once per list (each second while a
//! provider warms up, see [`ProviderList::with_weights`]), so a pick is one draw and a
//! binary search.

use std::sync::Arc;

use crate::cluster::{CallContext, LoadBalance, ProviderList};
use crate::error::Result;

/// Picks a provider at random with probability proportional to its (warmed-up) weight.
#[derive(Debug, Default)]
pub struct Random;

impl LoadBalance for Random {
    fn select(&self, providers: &ProviderList, ctx: &CallContext<'_>) -> Result<Option<usize>> {
        Ok(providers.pick(ctx.method()))
    }
}

crate::register!(dyn LoadBalance, "random", || Arc::new(Random));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;

    #[test]
    fn empty_and_single() {
        assert_eq!(pick(&Random, &providers(&[]), &call()), None);
        assert_eq!(pick(&Random, &providers(&[""]), &call()), Some(0));
    }

    /// 10,000 picks over weights 100/200/700: each share within 2 percentage points
    /// (the standard deviation of a 0.7 share over 10,000 draws is 0.46 points, so this is
    /// over four sigma).
    #[test]
    fn shares_follow_weights() {
        let p = providers(&["weight=100", "weight=200", "weight=700"]);
        let inv = call();
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[pick(&Random, &p, &inv).expect("pick")] += 1;
        }
        for (c, expected) in counts.iter().zip([0.1, 0.2, 0.7]) {
            let share = f64::from(*c) / 10_000.0;
            assert!((share - expected).abs() < 0.02, "{counts:?}");
        }
    }

    #[test]
    fn zero_weight_provider_is_never_picked_unless_all_are_zero() {
        let p = providers(&["weight=0", "weight=5"]);
        for _ in 0..1000 {
            assert_eq!(pick(&Random, &p, &call()), Some(1));
        }
        let all_zero = providers(&["weight=0", "weight=0"]);
        assert!(pick(&Random, &all_zero, &call()).is_some());
    }

    #[test]
    fn found_by_name() {
        let lb = crate::extension::get::<dyn LoadBalance>("random").expect("registered");
        assert_eq!(pick(&*lb, &providers(&[""]), &call()), Some(0));
    }
}
