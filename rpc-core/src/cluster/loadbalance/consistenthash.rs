//! `consistenthash`: calls with the same arguments go to the same provider.
//!
//! Each provider is placed on a 64-bit hash ring at `hash.nodes` points (virtual nodes,
//! default [`DEFAULT_NODES`]), scaled by its `weight` relative to [`DEFAULT_WEIGHT`]
//! (weight 200 gets twice the points). A call hashes the arguments chosen by `hash.arguments`
//! (a comma list of argument indexes, default `0`) and goes to the first provider point at or
//! after that hash, wrapping around. When a provider leaves, only the keys that were on its
//! points move (about 1/n of them); every other key stays where it was.
//!
//! - Hash: XXH3-64 (`xxhash-rust`), fast and well distributed; the ring only needs to be
//!   consistent within one process, but XXH3 is also stable across platforms and versions.
//! - Points of a provider: the hash of `"{host:port}#{i}"`, so the ring depends on addresses,
//!   not on list order or invoker objects.
//! - Arguments: the selected elements' JSON texts, joined by `,`, are the key, read from
//!   the arguments as they are (a typed tuple is walked, encoded arguments are decoded with
//!   the other elements skipped; nothing is encoded again). A non-tuple argument value
//!   counts as element 0. When `hash.arguments` is set (method or service level) and names
//!   an argument the call does not have, the call fails with a configuration error; with
//!   the default (`0`), a call without arguments hashes the empty key. Arguments that
//!   cannot be read fail the call (a codec error) rather than all hashing alike.
//! - Warm-up is deliberately not applied: a ramping weight would move keys while the provider
//!   warms, which defeats the point of consistent hashing.
//! - The ring is cached per service and method and rebuilt only when the provider list (by
//!   invoker identity, in order) or the `hash.*` keys change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::xxh3_64;

use super::{arguments, DEFAULT_WEIGHT};
use crate::cluster::provider::WeakProviderList;
use crate::cluster::{CallContext, LoadBalance, Provider, ProviderList};
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::invocation::{Invocation, ServiceKey};

/// Virtual nodes per provider of default weight when `hash.nodes` is not set.
pub const DEFAULT_NODES: u32 = 160;

/// Consistent hashing over the call's arguments; see the [module docs](self).
#[derive(Debug, Default)]
pub struct ConsistentHash {
    rings: Mutex<HashMap<ServiceKey, HashMap<String, Cached>>>,
}

/// A method's ring and the list it was last used for (the same list object again, as a
/// directory hands out per call, needs no fingerprint).
#[derive(Debug)]
struct Cached {
    list: WeakProviderList,
    ring: Arc<Ring>,
}

impl std::fmt::Debug for WeakProviderList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakProviderList")
    }
}

#[derive(Debug)]
struct Ring {
    fingerprint: u64,
    /// Sorted by hash; the value is an index into the invoker list the ring was built from.
    points: Vec<(u64, usize)>,
    arguments: Vec<usize>,
    /// Whether `hash.arguments` was set (then a missing argument is an error).
    configured: bool,
}

fn fingerprint(providers: &[Provider], nodes: &str, arguments: &str) -> u64 {
    let mut buf = Vec::with_capacity(providers.len() * 8 + nodes.len() + arguments.len() + 1);
    for p in providers {
        buf.extend_from_slice(&p.id().to_le_bytes());
    }
    buf.extend_from_slice(nodes.as_bytes());
    buf.push(b'|');
    buf.extend_from_slice(arguments.as_bytes());
    xxh3_64(&buf)
}

impl Ring {
    fn build(providers: &[Provider], invocation: &Invocation, fp: u64) -> Ring {
        let url = providers
            .first()
            .map(|p| p.url().clone())
            .unwrap_or_else(|| crate::url::Url::new("empty", "", 0));
        let method = invocation.method();
        let nodes: u32 = url
            .method_param_as(method, keys::HASH_NODES, DEFAULT_NODES)
            .unwrap_or(DEFAULT_NODES)
            .clamp(1, 10_000);
        let configured = url.method_param(method, keys::HASH_ARGUMENTS);
        let arguments: Vec<usize> = configured
            .unwrap_or("0")
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        let mut points = Vec::new();
        for (idx, p) in providers.iter().enumerate() {
            let w = p.configured_weight(method);
            if w == 0 {
                continue;
            }
            // Weighted point count, capped so a huge weight cannot exhaust memory.
            let count = (u64::from(nodes) * u64::from(w) / u64::from(DEFAULT_WEIGHT))
                .clamp(1, u64::from(nodes) * 10);
            let addr = p.url().address();
            for i in 0..count {
                points.push((xxh3_64(format!("{addr}#{i}").as_bytes()), idx));
            }
        }
        points.sort_unstable();
        Ring {
            fingerprint: fp,
            points,
            arguments,
            configured: configured.is_some(),
        }
    }

    fn locate(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let at = self.points.partition_point(|(h, _)| *h < hash);
        Some(self.points[at % self.points.len()].1)
    }
}

impl ConsistentHash {
    fn ring(&self, providers: &ProviderList, invocation: &Invocation) -> Arc<Ring> {
        let method = invocation.method();
        let mut rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        let cached = rings
            .get_mut(invocation.service())
            .and_then(|m| m.get_mut(method));
        if let Some(c) = &cached {
            if c.list.is(providers) {
                return c.ring.clone();
            }
        }
        let url = providers[0].url();
        let fp = fingerprint(
            providers,
            url.method_param(method, keys::HASH_NODES).unwrap_or(""),
            url.method_param(method, keys::HASH_ARGUMENTS).unwrap_or(""),
        );
        if let Some(c) = cached {
            if c.ring.fingerprint == fp {
                c.list = providers.downgrade();
                return c.ring.clone();
            }
        }
        let ring = Arc::new(Ring::build(providers, invocation, fp));
        rings
            .entry(invocation.service().clone())
            .or_default()
            .insert(
                method.to_string(),
                Cached {
                    list: providers.downgrade(),
                    ring: ring.clone(),
                },
            );
        ring
    }
}

impl LoadBalance for ConsistentHash {
    fn select(
        &self,
        providers: &crate::cluster::ProviderList,
        ctx: &CallContext<'_>,
    ) -> Result<Option<usize>> {
        let invocation = ctx.invocation();
        match providers.len() {
            0 => return Ok(None),
            1 => return Ok(Some(0)),
            _ => {}
        }
        let ring = self.ring(providers, invocation);
        let selected = arguments::select(invocation.args(), &ring.arguments)
            .map_err(|e| invocation.annotate(e))?;
        if ring.configured {
            if let Some(missing) = selected.missing(&ring.arguments) {
                return Err(invocation.annotate(RpcError::config(format!(
                    "consistenthash: hash.arguments names argument {missing}, but the call of \
                     {} has {} argument(s)",
                    invocation.method(),
                    selected.count
                ))));
            }
        }
        let mut key = String::new();
        selected.write_key(&mut key);
        Ok(ring
            .locate(xxh3_64(key.as_bytes()))
            .or_else(|| Some(fastrand::usize(..providers.len()))))
    }
}

crate::register!(dyn LoadBalance, "consistenthash", || Arc::new(
    ConsistentHash::default()
));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;
    use crate::invocation::Value;

    fn call_with(service: &str, args: Value) -> Invocation {
        Invocation::new(ServiceKey::new(service, None, None), "m", args)
    }

    fn addr(p: &[Provider], i: Option<usize>) -> String {
        p[i.expect("pick")].url().address()
    }

    #[test]
    fn same_arguments_same_provider_and_other_arguments_ignored() {
        let p = providers_of("ch1.S", &["", "", "", ""]);
        let lb = ConsistentHash::default();
        for k in 0..50u32 {
            let a = pick(&lb, &p, &call_with("ch1.S", Value::typed((k, "x"))));
            let b = pick(&lb, &p, &call_with("ch1.S", Value::typed((k, "y"))));
            assert_eq!(a, b, "only argument 0 is hashed by default");
        }
    }

    #[test]
    fn hash_arguments_selects_which_arguments_count() {
        let q = "hash.arguments=1";
        let p = providers_of("ch2.S", &[q, q, q, q]);
        let lb = ConsistentHash::default();
        let mut differ = 0;
        for k in 0..50u32 {
            let a = pick(&lb, &p, &call_with("ch2.S", Value::typed((k, "same"))));
            let b = pick(
                &lb,
                &p,
                &call_with("ch2.S", Value::typed((k + 1000, "same"))),
            );
            assert_eq!(a, b, "argument 0 is ignored");
            let c = pick(
                &lb,
                &p,
                &call_with("ch2.S", Value::typed((k, format!("v{k}")))),
            );
            differ += usize::from(a != c);
        }
        assert!(differ > 10, "argument 1 decides: {differ}");
    }

    /// 10,000 distinct keys over four equal providers with 160 points each: the expected share
    /// is 0.25; the spread of a provider's ring share with 160 points is about 0.02, plus
    /// 0.004 of sampling noise, so ±0.07 is about three standard deviations.
    #[test]
    fn keys_spread_evenly_and_by_weight() {
        let p = providers_of("ch3.S", &["", "", "", ""]);
        let lb = ConsistentHash::default();
        let mut counts = [0usize; 4];
        for k in 0..10_000u32 {
            counts[pick(&lb, &p, &call_with("ch3.S", Value::typed((k,)))).expect("pick")] += 1;
        }
        let s: Vec<f64> = counts.iter().map(|c| *c as f64 / 10_000.0).collect();
        assert_shares(&s, &[0.25; 4], 0.07);

        // Weight 300 gets three times the points of weight 100: shares 0.25/0.75 ± 0.07.
        let p = providers_of("ch4.S", &["weight=100", "weight=300"]);
        let mut counts = [0usize; 2];
        for k in 0..10_000u32 {
            counts[pick(&lb, &p, &call_with("ch4.S", Value::typed((k,)))).expect("pick")] += 1;
        }
        let s: Vec<f64> = counts.iter().map(|c| *c as f64 / 10_000.0).collect();
        assert_shares(&s, &[0.25, 0.75], 0.07);
    }

    #[test]
    fn a_departing_provider_moves_only_its_own_keys() {
        let p = providers_of("ch5.S", &["", "", "", "", ""]);
        let lb = ConsistentHash::default();
        let before: Vec<String> = (0..10_000u32)
            .map(|k| addr(&p, pick(&lb, &p, &call_with("ch5.S", Value::typed((k,))))))
            .collect();
        let gone = p[2].url().address();
        let fewer: crate::cluster::ProviderList = p
            .iter()
            .filter(|i| i.url().address() != gone)
            .cloned()
            .collect();
        let mut moved = 0;
        for (k, was) in before.iter().enumerate() {
            let now = addr(
                &fewer,
                pick(&lb, &fewer, &call_with("ch5.S", Value::typed((k as u32,)))),
            );
            if &now != was {
                moved += 1;
                assert_eq!(was, &gone, "only keys of the departed provider move");
            }
        }
        // About 1/5 of the keys move: 0.2 ± 0.07 (see the spread above).
        let frac = moved as f64 / 10_000.0;
        assert!((frac - 0.2).abs() < 0.07, "moved {frac}");
    }

    #[test]
    fn ring_is_cached_until_the_provider_set_changes() {
        let p = providers_of("ch6.S", &["", "", ""]);
        let lb = ConsistentHash::default();
        let inv = call_with("ch6.S", Value::typed((1u8,)));
        let a = lb.ring(&p, &inv);
        let b = lb.ring(&p, &inv);
        assert!(Arc::ptr_eq(&a, &b));
        let copy: crate::cluster::ProviderList = p.to_vec().into();
        assert!(Arc::ptr_eq(&a, &lb.ring(&copy, &inv)), "the same providers");
        let c = lb.ring(&p[..2].to_vec().into(), &inv);
        assert!(!Arc::ptr_eq(&a, &c));
    }

    /// A configured `hash.arguments` naming an argument the call does not have is an error
    /// naming it, as are arguments that cannot be read; the default (`0`) over a call
    /// without arguments hashes the empty key.
    #[test]
    fn a_missing_or_unreadable_argument_is_an_error() {
        let lb = ConsistentHash::default();
        let reference = consumer();
        let select = |p: &crate::cluster::ProviderList, args: Value| {
            let inv = call_with("ch7.S", args);
            lb.select(p, &CallContext::new(&reference, &inv))
        };
        let p = providers_of("ch7.S", &["hash.arguments=0,2", "hash.arguments=0,2"]);
        let e = select(&p, Value::typed((1u8, 2u8))).expect_err("no argument 2");
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(e.to_string().contains("argument 2"), "{e}");
        assert!(select(&p, Value::typed((1u8, 2u8, 3u8))).is_ok());
        let garbage = Value::Encoded(crate::invocation::Payload {
            serialization: crate::extension::get::<dyn crate::serialize::Serialization>("msgpack")
                .expect("msgpack")
                .id(),
            bytes: bytes::Bytes::from_static(&[0xc1]),
        });
        let e = select(&p, garbage).expect_err("unreadable");
        assert_eq!(e.kind(), crate::ErrorKind::Codec);
        let default = providers_of("ch8.S", &["", ""]);
        let a = select(&default, Value::Empty).expect("empty key");
        assert_eq!(a, select(&default, Value::Empty).expect("empty key"));
    }
}
