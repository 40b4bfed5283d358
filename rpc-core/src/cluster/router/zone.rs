//! `zone`: prefer the providers of the caller's own zone (data center, availability zone),
//! and go to the other zones only when none of its own is healthy.
//!
//! Providers advertise their zone with the URL parameter `zone` (set it on the provider's
//! application, or `RPC_PARAM_ZONE` in its environment); a consumer names its own with
//! `zone` on the reference or the application. With a consumer zone, every reference gets
//! this router:
//!
//! - calls go to the available providers of that zone;
//! - when none is available, to the available providers of every other zone — a warning is
//!   logged when the reference starts falling back and when it comes back, and every such
//!   call counts in `rpc_zone_fallbacks_total{service, zone}`;
//! - with `zone.force=true` there is no fallback: the call fails with `NoProvider`;
//! - with `zone.sticky=MS`, a reference that fell back returns to its zone only once the zone
//!   has had an available provider for `MS` milliseconds without a break, so a provider that
//!   blinks up and down does not swing the traffic back and forth (default 0: at once).
//!
//! Providers that name no zone belong to no zone: they are used only in a fallback.
//! A `zone://0.0.0.0/{interface}?zone=..&force=..&zone.sticky=..` rule URL builds the same
//! router (`zone.force` may stand for `force`; `sticky`, the cluster's flag, is refused).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{CallContext, Provider, Router, RouterFactory};
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::url::Url;

/// Routes to the caller's zone first; see the [module docs](self).
#[derive(Debug)]
pub struct ZoneRouter {
    zone: String,
    force: bool,
    /// How long the zone must stay available before a fallback ends.
    sticky: Duration,
    /// Whether the last routed call had to leave the zone (for the transition log lines).
    falling_back: AtomicBool,
    /// During a fallback, since when the zone has had available providers without a break.
    back_since: Mutex<Option<Instant>>,
}

impl ZoneRouter {
    /// A router preferring `zone`; with `force`, never leaving it.
    pub fn new(zone: &str, force: bool) -> Result<Self> {
        let zone = zone.trim();
        if zone.is_empty() {
            return Err(RpcError::config("zone routing needs a non-empty 'zone'"));
        }
        Ok(ZoneRouter {
            zone: zone.to_string(),
            force,
            sticky: Duration::ZERO,
            falling_back: AtomicBool::new(false),
            back_since: Mutex::new(None),
        })
    }

    /// This router, returning from a fallback only after the zone was available for `sticky`.
    pub fn with_sticky(mut self, sticky: Duration) -> Self {
        self.sticky = sticky;
        self
    }

    /// Whether a fallback must go on although the zone has available providers again
    /// (`zone.sticky` has not passed since they came back).
    fn still_away(&self) -> bool {
        if self.sticky.is_zero() {
            return false;
        }
        let mut since = self.back_since.lock().unwrap_or_else(|p| p.into_inner());
        let back = *since.get_or_insert_with(Instant::now);
        back.elapsed() < self.sticky
    }

    /// The router a reference URL asks for: one when it names a `zone`.
    pub fn for_reference(url: &Url) -> Result<Option<Arc<dyn Router>>> {
        match url
            .param(keys::ZONE)
            .map(str::trim)
            .filter(|z| !z.is_empty())
        {
            None => Ok(None),
            Some(zone) => Ok(Some(Arc::new(
                ZoneRouter::new(zone, url.param_bool(keys::ZONE_FORCE, false)?)?.with_sticky(
                    Duration::from_millis(url.param_as(keys::ZONE_STICKY, 0u64)?),
                ),
            ))),
        }
    }

    fn note(&self, leaving: bool, service: &str, others: usize) {
        let was = self.falling_back.swap(leaving, Ordering::Relaxed);
        if leaving {
            metrics::counter!(
                "rpc_zone_fallbacks_total",
                "service" => service.to_string(),
                "zone" => self.zone.clone()
            )
            .increment(1);
        }
        match (was, leaving) {
            (false, true) => tracing::warn!(
                service,
                zone = %self.zone,
                providers = others,
                "no available provider in the consumer's zone; calling other zones"
            ),
            (true, false) => tracing::warn!(
                service,
                zone = %self.zone,
                "the consumer's zone has available providers again; calls stay in it"
            ),
            _ => {}
        }
    }
}

impl Router for ZoneRouter {
    fn route(&self, invokers: Vec<Provider>, ctx: &CallContext<'_>) -> Vec<Provider> {
        let invocation = ctx.invocation();
        let (local, others): (Vec<_>, Vec<_>) = invokers
            .into_iter()
            .filter(|p| p.is_available())
            .partition(|p| p.zone() == Some(self.zone.as_str()));
        if !local.is_empty() {
            if self.falling_back.load(Ordering::Relaxed) {
                if !others.is_empty() && self.still_away() {
                    self.note(true, invocation.service().interface(), others.len());
                    return others;
                }
                self.note(false, invocation.service().interface(), 0);
            }
            return local;
        }
        *self.back_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.force || others.is_empty() {
            return Vec::new();
        }
        self.note(true, invocation.service().interface(), others.len());
        others
    }

    /// Runs first: the other routers narrow the zone's providers.
    fn priority(&self) -> i32 {
        -100
    }

    /// The result depends on which providers are available right now.
    fn cacheable(&self) -> bool {
        false
    }
}

/// Makes [`ZoneRouter`]s from `zone://` rule URLs (`zone`, `force` parameters).
#[derive(Debug, Default)]
pub struct ZoneRouterFactory;

impl RouterFactory for ZoneRouterFactory {
    fn create(&self, url: &Url) -> Result<Arc<dyn Router>> {
        let zone = url.param(keys::ZONE).unwrap_or("");
        let force =
            url.param_bool(keys::FORCE, false)? || url.param_bool(keys::ZONE_FORCE, false)?;
        // `sticky` is the cluster's flag everywhere else; on a zone rule it would be read as
        // a time by one reader and a flag by the next, so it is refused for the one key.
        if url.param(keys::STICKY).is_some() {
            return Err(RpcError::config(format!(
                "zone rule: 'sticky' is the cluster's sticky flag; the time a reference waits \
                 before returning to its zone is 'zone.sticky' (milliseconds): {url}"
            )));
        }
        let sticky = url.param_as(keys::ZONE_STICKY, 0u64)?;
        Ok(Arc::new(
            ZoneRouter::new(zone, force)?.with_sticky(Duration::from_millis(sticky)),
        ))
    }
}

crate::register!(dyn RouterFactory, "zone", || Arc::new(ZoneRouterFactory));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::call;
    use crate::cluster::router::testing::{wrap, RouteWith};
    use crate::invocation::{Invocation, Invoker, Response, Value};

    /// A provider whose availability a test switches.
    struct Switch(Url, AtomicBool);

    #[async_trait::async_trait]
    impl Invoker for Switch {
        fn url(&self) -> &Url {
            &self.0
        }
        fn is_available(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
        async fn invoke(&self, _: Invocation) -> Result<Response> {
            Ok(Response::value(Value::Empty))
        }
    }

    fn switches(zones: &[&str]) -> Vec<Arc<Switch>> {
        zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let q = if z.is_empty() {
                    String::new()
                } else {
                    format!("zone={z}")
                };
                let url = Url::parse(&format!("dubbo://10.0.0.{i}:20880/S?{q}")).expect("url");
                Arc::new(Switch(url, AtomicBool::new(true)))
            })
            .collect()
    }

    fn route(r: &(impl Router + ?Sized), p: &[Arc<Switch>]) -> Vec<String> {
        let list: Vec<Arc<dyn Invoker>> = p.iter().map(|s| s.clone() as Arc<dyn Invoker>).collect();
        let reference = Url::parse("consumer://1.1.1.1/S").expect("url");
        r.route_with(wrap(list), &reference, &call())
            .iter()
            .map(|i| i.url().host().to_string())
            .collect()
    }

    #[test]
    fn calls_stay_in_the_zone_and_leave_it_only_when_it_has_no_available_provider() {
        let p = switches(&["east", "west", "east", "", "west"]);
        let r = ZoneRouter::new("east", false).expect("router");
        assert_eq!(route(&r, &p), ["10.0.0.0", "10.0.0.2"]);
        // One of the two down: the other takes the zone's calls.
        p[0].1.store(false, Ordering::Relaxed);
        assert_eq!(route(&r, &p), ["10.0.0.2"]);
        // Both down: every available provider of the other zones (and the zoneless one).
        p[2].1.store(false, Ordering::Relaxed);
        assert_eq!(route(&r, &p), ["10.0.0.1", "10.0.0.3", "10.0.0.4"]);
        assert!(r.falling_back.load(Ordering::Relaxed));
        // Back again: the calls come home.
        p[2].1.store(true, Ordering::Relaxed);
        assert_eq!(route(&r, &p), ["10.0.0.2"]);
        assert!(!r.falling_back.load(Ordering::Relaxed));
    }

    #[test]
    fn a_sticky_fallback_returns_only_once_the_zone_stayed_up() {
        let p = switches(&["east", "west"]);
        let r = ZoneRouter::new("east", false)
            .expect("router")
            .with_sticky(Duration::from_millis(150));
        p[0].1.store(false, Ordering::Relaxed);
        assert_eq!(route(&r, &p), ["10.0.0.1"]);
        // East blinks up: the calls stay away until it has been up for 150 ms.
        p[0].1.store(true, Ordering::Relaxed);
        assert_eq!(route(&r, &p), ["10.0.0.1"]);
        // Down again before that: the clock starts over.
        p[0].1.store(false, Ordering::Relaxed);
        assert_eq!(route(&r, &p), ["10.0.0.1"]);
        p[0].1.store(true, Ordering::Relaxed);
        assert_eq!(route(&r, &p), ["10.0.0.1"]);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(route(&r, &p), ["10.0.0.0"]);
        assert!(!r.falling_back.load(Ordering::Relaxed));
        // Not sticky: at once.
        let now = ZoneRouter::new("east", false).expect("router");
        p[0].1.store(false, Ordering::Relaxed);
        assert_eq!(route(&now, &p), ["10.0.0.1"]);
        p[0].1.store(true, Ordering::Relaxed);
        assert_eq!(route(&now, &p), ["10.0.0.0"]);
        let bad = Url::parse("consumer://1.1.1.1/S?zone=east&zone.sticky=soon").expect("url");
        assert!(ZoneRouter::for_reference(&bad).is_err());
    }

    #[test]
    fn a_forced_zone_never_falls_back() {
        let p = switches(&["east", "west"]);
        p[0].1.store(false, Ordering::Relaxed);
        let r = ZoneRouter::new("east", true).expect("router");
        assert!(route(&r, &p).is_empty());
        let from_rule = ZoneRouterFactory
            .create(&Url::parse("zone://0.0.0.0/S?zone=east&force=true").expect("url"))
            .expect("router");
        let list: Vec<Arc<dyn Invoker>> = p.iter().map(|s| s.clone() as Arc<dyn Invoker>).collect();
        let reference = Url::parse("consumer://1.1.1.1/S").expect("url");
        assert!(from_rule
            .route_with(wrap(list), &reference, &call())
            .is_empty());
    }

    #[test]
    fn a_reference_gets_the_router_only_with_a_zone() {
        let none = Url::parse("consumer://1.1.1.1/S").expect("url");
        assert!(ZoneRouter::for_reference(&none).expect("ok").is_none());
        let blank = Url::parse("consumer://1.1.1.1/S?zone=").expect("url");
        assert!(ZoneRouter::for_reference(&blank).expect("ok").is_none());
        let east = Url::parse("consumer://1.1.1.1/S?zone=east&zone.force=nope").expect("url");
        let e = ZoneRouter::for_reference(&east).err().expect("bad bool");
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(ZoneRouterFactory
            .create(&Url::parse("zone://0.0.0.0/S").expect("url"))
            .is_err());
    }

    #[test]
    fn a_zone_rule_takes_its_return_delay_as_zone_sticky_only() {
        let p = switches(&["east", "west"]);
        let rule = |q: &str| Url::parse(&format!("zone://0.0.0.0/S?zone=east&{q}")).expect("url");
        let from_rule = ZoneRouterFactory
            .create(&rule("zone.sticky=60000"))
            .expect("router");
        p[0].1.store(false, Ordering::Relaxed);
        assert_eq!(route(&*from_rule, &p), ["10.0.0.1"], "fell back");
        p[0].1.store(true, Ordering::Relaxed);
        assert_eq!(
            route(&*from_rule, &p),
            ["10.0.0.1"],
            "stays away for zone.sticky"
        );
        // The cluster's flag is refused by name on a zone rule, as is a time that is not one.
        for q in ["sticky=true", "sticky=5000", "zone.sticky=soon"] {
            let e = ZoneRouterFactory.create(&rule(q)).err().expect(q);
            assert_eq!(e.kind(), crate::ErrorKind::Config, "{q}");
            if q.starts_with("sticky") {
                assert!(
                    e.to_string()
                        .contains("waits before returning to its zone is 'zone.sticky'"),
                    "{e}"
                );
            }
        }
    }
}
