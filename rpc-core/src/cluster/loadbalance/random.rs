//! `random`: weighted random choice, the default balancer.

use std::sync::Arc;

use super::{now_ms, weight_at};
use crate::cluster::LoadBalance;
use crate::invocation::{Invocation, Invoker};

/// Picks a provider at random with probability proportional to its (warmed-up) weight.
#[derive(Debug, Default)]
pub struct Random;

impl LoadBalance for Random {
    fn select(&self, invokers: &[Arc<dyn Invoker>], invocation: &Invocation) -> Option<usize> {
        match invokers.len() {
            0 => return None,
            1 => return Some(0),
            _ => {}
        }
        // Weights are read once per pick; up to 16 on the stack, more on the heap.
        let mut small = [0u32; 16];
        let mut large = Vec::new();
        let weights: &mut [u32] = if invokers.len() <= small.len() {
            &mut small[..invokers.len()]
        } else {
            large.resize(invokers.len(), 0);
            &mut large
        };
        let now = now_ms();
        let mut total: u64 = 0;
        let mut same = true;
        for (slot, inv) in weights.iter_mut().zip(invokers) {
            *slot = weight_at(&**inv, invocation, now);
            total += u64::from(*slot);
        }
        if let Some(first) = weights.first() {
            same = weights.iter().all(|w| w == first);
        }
        if total == 0 || same {
            return Some(fastrand::usize(..invokers.len()));
        }
        let mut offset = fastrand::u64(..total);
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if offset < w {
                return Some(i);
            }
            offset -= w;
        }
        Some(invokers.len() - 1)
    }
}

crate::register!(dyn LoadBalance, "random", || Arc::new(Random));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;

    #[test]
    fn empty_and_single() {
        assert_eq!(Random.select(&[], &call()), None);
        assert_eq!(Random.select(&providers(&[""]), &call()), Some(0));
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
            counts[Random.select(&p, &inv).expect("pick")] += 1;
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
            assert_eq!(Random.select(&p, &call()), Some(1));
        }
        let all_zero = providers(&["weight=0", "weight=0"]);
        assert!(Random.select(&all_zero, &call()).is_some());
    }

    #[test]
    fn found_by_name() {
        let lb = crate::extension::get::<dyn LoadBalance>("random").expect("registered");
        assert_eq!(lb.select(&providers(&[""]), &call()), Some(0));
    }
}
