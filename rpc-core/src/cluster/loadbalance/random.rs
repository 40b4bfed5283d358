//! `random`: weighted random choice, the default balancer.
//!
//! Each thread keeps the cumulative weights of the provider list it last picked from (for
//! one second), so repeated picks over the same list cost a binary search.

use std::sync::Arc;

use super::{now_ms, weight_at};
use crate::cluster::LoadBalance;
use crate::invocation::{Invocation, Invoker};

/// Picks a provider at random with probability proportional to its (warmed-up) weight.
#[derive(Debug, Default)]
pub struct Random;

/// How long a thread reuses the weights it computed for one provider list (warm-up moves
/// weights slowly, so one second of staleness is immaterial).
const WEIGHTS_TTL_MS: u64 = 1000;

/// The cumulative weights of the last provider list this thread picked from.
struct Prefix {
    ids: Vec<usize>,
    method: String,
    until_ms: u64,
    /// `prefix[i]` is the sum of the weights of providers `0..=i`.
    prefix: Vec<u64>,
    uniform: bool,
}

thread_local! {
    static LAST: std::cell::RefCell<Option<Prefix>> = const { std::cell::RefCell::new(None) };
}

fn id(i: &Arc<dyn Invoker>) -> usize {
    Arc::as_ptr(i) as *const () as usize
}

impl Prefix {
    fn matches(&self, invokers: &[Arc<dyn Invoker>], method: &str, now: u64) -> bool {
        self.until_ms > now
            && self.method == method
            && self.ids.len() == invokers.len()
            && self.ids.iter().zip(invokers).all(|(a, b)| *a == id(b))
    }

    fn build(invokers: &[Arc<dyn Invoker>], invocation: &Invocation, now: u64) -> Prefix {
        let mut prefix = Vec::with_capacity(invokers.len());
        let mut total = 0u64;
        let mut first = None;
        let mut uniform = true;
        for inv in invokers {
            let w = weight_at(&**inv, invocation, now);
            uniform &= *first.get_or_insert(w) == w;
            total += u64::from(w);
            prefix.push(total);
        }
        Prefix {
            ids: invokers.iter().map(id).collect(),
            method: invocation.method().to_string(),
            until_ms: now + WEIGHTS_TTL_MS,
            uniform: uniform || total == 0,
            prefix,
        }
    }

    fn pick(&self) -> usize {
        let total = self.prefix.last().copied().unwrap_or(0);
        if self.uniform {
            return fastrand::usize(..self.prefix.len());
        }
        let offset = fastrand::u64(..total);
        self.prefix.partition_point(|p| *p <= offset)
    }
}

/// Runs `f` with the cumulative (warmed-up) weights of `invokers` for the method:
/// `prefix[i]` is the sum of the weights of providers `0..=i`. Cached per thread for the last
/// list, as for picks.
pub(super) fn with_prefix<R>(
    invokers: &[Arc<dyn Invoker>],
    invocation: &Invocation,
    f: impl FnOnce(&[u64]) -> R,
) -> R {
    let now = now_ms();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some(p) if p.matches(invokers, invocation.method(), now) => {}
            _ => *last = Some(Prefix::build(invokers, invocation, now)),
        }
        f(last.as_ref().map(|p| &p.prefix[..]).unwrap_or(&[]))
    })
}

impl LoadBalance for Random {
    fn select(&self, invokers: &[Arc<dyn Invoker>], invocation: &Invocation) -> Option<usize> {
        match invokers.len() {
            0 => return None,
            1 => return Some(0),
            _ => {}
        }
        let now = now_ms();
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some(p) if p.matches(invokers, invocation.method(), now) => {}
                _ => *last = Some(Prefix::build(invokers, invocation, now)),
            }
            last.as_ref().map(Prefix::pick)
        })
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
