//! `roundrobin`: smooth weighted round robin, as in nginx's upstream module.
//!
//! Each pick adds every provider's (warmed-up) weight to its running `current` value, takes
//! the provider with the largest `current`, and subtracts the total weight from the winner.
//! Over any window of `total` picks each provider is chosen exactly `weight` times, and the
//! picks are interleaved (weights 5/1/1 give `a a b a c a a`) rather than bunched.
//!
//! State is kept per service and method. It is rebuilt whenever the provider list handed in
//! differs from the last one (providers are identified by the invoker object), which is how
//! departed providers are cleaned out; providers still present keep their `current` value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cluster::{CallContext, LoadBalance, ProviderList};
use crate::error::Result;
use crate::invocation::ServiceKey;

/// Smooth weighted round robin; see the [module docs](self).
#[derive(Debug, Default)]
pub struct RoundRobin {
    states: Mutex<HashMap<ServiceKey, HashMap<String, Vec<Entry>>>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: usize,
    current: i64,
}

impl LoadBalance for RoundRobin {
    fn select(&self, providers: &ProviderList, ctx: &CallContext<'_>) -> Result<Option<usize>> {
        let invocation = ctx.invocation();
        match providers.len() {
            0 => return Ok(None),
            1 => return Ok(Some(0)),
            _ => {}
        }
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let by_method = match states.get_mut(invocation.service()) {
            Some(m) => m,
            None => states.entry(invocation.service().clone()).or_default(),
        };
        let entries = match by_method.get_mut(invocation.method()) {
            Some(e) => e,
            None => by_method
                .entry(invocation.method().to_string())
                .or_default(),
        };
        let unchanged = entries.len() == providers.len()
            && entries
                .iter()
                .zip(providers.iter())
                .all(|(e, p)| e.id == p.id());
        if !unchanged {
            let old: HashMap<usize, i64> = entries.iter().map(|e| (e.id, e.current)).collect();
            *entries = providers
                .iter()
                .map(|p| Entry {
                    id: p.id(),
                    current: old.get(&p.id()).copied().unwrap_or(0),
                })
                .collect();
        }
        let (total, best) = providers.with_weights(invocation.method(), |table| {
            let prefix = table.prefix();
            let mut total: i64 = 0;
            let mut best: Option<(usize, i64)> = None;
            let mut before = 0u64;
            for (idx, (e, cumulative)) in entries.iter_mut().zip(prefix).enumerate() {
                let w = (*cumulative - before) as i64;
                before = *cumulative;
                if w == 0 {
                    continue;
                }
                e.current += w;
                total += w;
                if best.is_none_or(|(_, c)| e.current > c) {
                    best = Some((idx, e.current));
                }
            }
            (total, best)
        });
        Ok(match best {
            Some((b, _)) => {
                entries[b].current -= total;
                Some(b)
            }
            // Every weight is zero: no provider is preferred, pick uniformly.
            None => Some(fastrand::usize(..providers.len())),
        })
    }
}

crate::register!(dyn LoadBalance, "roundrobin", || Arc::new(
    RoundRobin::default()
));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;

    #[test]
    fn interleaves_like_nginx() {
        let p = providers_of("rr1.S", &["weight=5", "weight=1", "weight=1"]);
        let lb = RoundRobin::default();
        let inv = call_of("rr1.S");
        let seq: Vec<usize> = (0..7).map(|_| pick(&lb, &p, &inv).expect("pick")).collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    /// Smooth WRR is deterministic: over 10,000 picks with weights 1/2/7 (total 10) each share
    /// is exact to within one pick per provider, so the tolerance is 0.0001.
    #[test]
    fn shares_follow_weights_exactly() {
        let p = providers_of("rr2.S", &["weight=1", "weight=2", "weight=7"]);
        let lb = RoundRobin::default();
        let s = shares(&lb, &p, &call_of("rr2.S"), 10_000);
        assert_shares(&s, &[0.1, 0.2, 0.7], 0.0001);
    }

    /// Warm-up: a provider started 250 s into a 1000 s warm-up has weight 25 of 100, so it
    /// gets 25/125 = 20% of the picks (exact to one pick, as above).
    #[test]
    fn warming_provider_gets_its_ramped_share() {
        let started = crate::cluster::loadbalance::now_ms() - 250_000;
        let warm = format!("weight=100&warmup=1000000&timestamp={started}");
        // The weight ramps by 0.1 per second of test time: negligible.
        let p = providers_of("rr3.S", &["weight=100", &warm]);
        let lb = RoundRobin::default();
        let s = shares(&lb, &p, &call_of("rr3.S"), 10_000);
        assert_shares(&s, &[0.8, 0.2], 0.02);
    }

    #[test]
    fn departed_providers_are_forgotten_and_zero_weight_is_skipped() {
        let p = providers_of("rr4.S", &["weight=1", "weight=1", "weight=0"]);
        let lb = RoundRobin::default();
        let inv = call_of("rr4.S");
        for _ in 0..10 {
            assert_ne!(pick(&lb, &p, &inv), Some(2));
        }
        let fewer: ProviderList = vec![p[1].clone(), p[0].clone()].into();
        assert!(pick(&lb, &fewer, &inv).is_some());
        let states = lb.states.lock().expect("lock");
        assert_eq!(
            states[inv.service()]["m"].len(),
            2,
            "departed entries dropped"
        );
    }

    #[test]
    fn per_method_state() {
        let p = providers_of("rr5.S", &["weight=1", "weight=1"]);
        let lb = RoundRobin::default();
        let a = call_of("rr5.S");
        let b =
            crate::invocation::Invocation::new(a.service().clone(), "other", crate::Value::Empty);
        assert_eq!(pick(&lb, &p, &a), Some(0));
        assert_eq!(pick(&lb, &p, &b), Some(0), "the other method starts afresh");
        assert_eq!(pick(&lb, &p, &a), Some(1));
    }

    #[test]
    fn found_by_name() {
        assert!(crate::extension::get::<dyn LoadBalance>("roundrobin").is_ok());
    }
}
