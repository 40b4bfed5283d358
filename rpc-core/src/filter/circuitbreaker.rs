//! `circuitbreaker` (consumer, on by default): stops sending calls to a provider that keeps
//! failing, so callers fail fast and failover goes elsewhere.
//!
//! One breaker per provider address, service and method. Only failures that say the provider
//! is unhealthy count: [`ErrorKind::Network`], [`ErrorKind::Timeout`],
//! [`ErrorKind::LimitExceeded`] (the provider is overloaded) and
//! [`ErrorKind::ServiceNotFound`]. Business errors, codec errors, unknown methods and refused
//! tokens say nothing about the provider's health and count as successes.
//!
//! - **Closed**: calls go through; outcomes are counted over a sliding window of
//!   `breaker.window` ms (ten buckets). The breaker opens when, with at least
//!   `breaker.min-calls` calls in the window, the failure rate reaches `breaker.error-rate`
//!   percent, or when `breaker.consecutive-failures` calls in a row failed (0 = off).
//! - **Open**: calls fail at once with [`ErrorKind::CircuitOpen`] (retriable, so failover tries
//!   another provider) for `breaker.open` ms.
//! - **Half-open**: then up to `breaker.probes` calls go through as probes while the others are
//!   still rejected. When that many probes succeeded the breaker closes with a fresh window;
//!   a failed probe opens it again.
//!
//! Defaults are conservative (50 % of at least 20 calls in 10 s, open 5 s, 1 probe), so a
//! healthy provider never trips it. A call abandoned after its deadline (the `timeout` filter
//! dropped it) counts as a timeout. Time is `tokio::time::Instant`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use tokio::time::Instant;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::stage::{self, Kind, Stage, Ticket};
use crate::filter::state::{Site, SiteRef, Sites};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};
use crate::url::Url;

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Config {
    error_rate: u64,
    min_calls: u64,
    window: Duration,
    consecutive: u64,
    open: Duration,
    probes: u32,
}

impl Config {
    fn read(url: &Url, method: &str) -> Result<Config> {
        let error_rate: u64 = url.method_param_as(method, keys::BREAKER_ERROR_RATE, 50)?;
        if error_rate > 100 {
            return Err(RpcError::config(format!(
                "parameter 'breaker.error-rate' has value '{error_rate}', which is not a percentage (0-100)"
            )));
        }
        Ok(Config {
            error_rate,
            min_calls: url.method_param_as(method, keys::BREAKER_MIN_CALLS, 20)?,
            window: Duration::from_millis(
                url.method_param_as::<u64>(method, keys::BREAKER_WINDOW, 10_000)?
                    .max(BUCKETS as u64),
            ),
            consecutive: url.method_param_as(method, keys::BREAKER_CONSECUTIVE_FAILURES, 0)?,
            open: Duration::from_millis(url.method_param_as(method, keys::BREAKER_OPEN, 5_000)?),
            probes: url
                .method_param_as::<u32>(method, keys::BREAKER_PROBES, 1)?
                .max(1),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, succeeded: u32 },
}

/// One tenth of the window: calls and failures counted in its epoch (the time since the
/// breaker's origin divided by the bucket width).
#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

impl Bucket {
    fn reset(&self, epoch: u64) {
        self.calls.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.epoch.store(epoch, Ordering::Release);
    }
}

/// What a finished call says about the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Good,
    Bad,
    /// Cancelled before its deadline: says nothing.
    Unknown,
}

/// Whether a call may go through a breaker.
enum Admission {
    /// It may; `probe` when it tests a half-open circuit.
    Go { probe: bool },
    /// It may not: the circuit stays open this long (zero: half-open, probes in flight).
    Refused { open_for: Duration },
}

/// One breaker (one provider + service + method).
///
/// A closed circuit, the state of almost every call, is admitted and counted without a
/// lock: the phase is mirrored in `closed`, the window's buckets and the run of failures are
/// atomics. The lock serialises the rest: opening, the open and half-open phases, and
/// starting a bucket's new epoch.
#[derive(Debug)]
struct Breaker {
    origin: Instant,
    /// Whether `phase` is `Closed`; written only under the lock.
    closed: AtomicBool,
    /// The configuration read from the URL last seen (read again when the URL changes).
    config: ArcSwapOption<(Url, Config)>,
    buckets: [Bucket; BUCKETS],
    /// Failed calls in a row, while closed.
    consecutive: AtomicU64,
    /// One more than the latest epoch a failure was counted in (0: none yet). A successful
    /// call while no failure is in the window cannot open the circuit, so it skips adding the
    /// window up (reading every bucket, which calls on other cores keep writing).
    last_failure: AtomicU64,
    phase: Mutex<Phase>,
}

impl Breaker {
    fn new() -> Self {
        Breaker {
            origin: Instant::now(),
            closed: AtomicBool::new(true),
            config: ArcSwapOption::empty(),
            buckets: Default::default(),
            consecutive: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            phase: Mutex::new(Phase::Closed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration for calls through `url`, read once per URL (comparing a URL with
    /// the one cached is a pointer comparison while it is the same URL).
    fn config(&self, url: &Url, method: &str) -> Result<Config> {
        if let Some(cached) = &*self.config.load() {
            if cached.0 == *url {
                return Ok(cached.1);
            }
        }
        let c = Config::read(url, method)?;
        self.config.store(Some(Arc::new((url.clone(), c))));
        Ok(c)
    }

    /// The configuration the last admitted call was read with (what its outcome is counted
    /// by): kept by the breaker, so a call's ticket need not carry it.
    fn admitted_config(&self) -> Option<Config> {
        self.config.load().as_ref().map(|cached| cached.1)
    }

    /// Decides whether a call through `url` may go. No lock and no clock while the circuit
    /// is closed.
    fn admit(&self, url: &Url, method: &str) -> Result<Admission> {
        let cfg = self.config(url, method)?;
        if self.closed.load(Ordering::Acquire) {
            return Ok(Admission::Go { probe: false });
        }
        let mut phase = self.lock();
        Ok(match *phase {
            Phase::Closed => Admission::Go { probe: false },
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    Admission::Refused {
                        open_for: until - now,
                    }
                } else {
                    *phase = Phase::HalfOpen {
                        in_flight: 1,
                        succeeded: 0,
                    };
                    Admission::Go { probe: true }
                }
            }
            Phase::HalfOpen {
                in_flight,
                succeeded,
            } if in_flight + succeeded < cfg.probes => {
                *phase = Phase::HalfOpen {
                    in_flight: in_flight + 1,
                    succeeded,
                };
                Admission::Go { probe: true }
            }
            Phase::HalfOpen { .. } => Admission::Refused {
                open_for: Duration::ZERO,
            },
        })
    }

    fn epoch(&self, cfg: &Config, now: Instant) -> u64 {
        // In 64 bits (centuries of nanoseconds): a 128-bit division is a library call.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let width = (nanos(cfg.window) / BUCKETS as u64).max(1);
        nanos(now.duration_since(self.origin)) / width
    }

    /// A fresh window (under the lock).
    fn clear_window(&self) {
        for b in &self.buckets {
            b.reset(0);
        }
        self.consecutive.store(0, Ordering::Relaxed);
    }

    fn record(&self, cfg: &Config, probe: bool, health: Health, now: Instant) {
        if probe {
            self.record_probe(cfg, health, now);
            return;
        }
        // A call admitted while closed that ends after the breaker changed state says
        // nothing about the new state.
        if health == Health::Unknown || !self.closed.load(Ordering::Acquire) {
            return;
        }
        let epoch = self.epoch(cfg, now);
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch.load(Ordering::Acquire) != epoch {
            // The bucket's first call of a new epoch starts it (once, under the lock).
            let _phase = self.lock();
            if bucket.epoch.load(Ordering::Acquire) != epoch {
                bucket.reset(epoch);
            }
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        let consecutive = if health == Health::Bad {
            self.last_failure.fetch_max(epoch + 1, Ordering::AcqRel);
            bucket.failures.fetch_add(1, Ordering::Relaxed);
            self.consecutive.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            // Written only when it changes: most calls leave the line unshared.
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            // No failure in the window: neither the rate nor the run can open it.
            let last = self.last_failure.load(Ordering::Acquire);
            if last == 0 || last - 1 + BUCKETS as u64 <= epoch {
                return;
            }
            0
        };
        let (calls, failures) = self
            .buckets
            .iter()
            .filter(|b| b.epoch.load(Ordering::Acquire) + BUCKETS as u64 > epoch)
            .fold((0, 0), |(c, f), b| {
                (
                    c + b.calls.load(Ordering::Relaxed),
                    f + b.failures.load(Ordering::Relaxed),
                )
            });
        let by_rate = cfg.error_rate > 0
            && calls >= cfg.min_calls.max(1)
            && failures * 100 >= cfg.error_rate * calls;
        let by_run = cfg.consecutive > 0 && consecutive >= cfg.consecutive;
        if by_rate || by_run {
            let mut phase = self.lock();
            if *phase == Phase::Closed {
                tracing::warn!(calls, failures, consecutive, "circuit opens");
                *phase = Phase::Open {
                    until: now + cfg.open,
                };
                self.closed.store(false, Ordering::Release);
                self.clear_window();
            }
        }
    }

    fn record_probe(&self, cfg: &Config, health: Health, now: Instant) {
        let mut phase = self.lock();
        let Phase::HalfOpen {
            in_flight,
            succeeded,
        } = *phase
        else {
            return;
        };
        *phase = match health {
            Health::Bad => Phase::Open {
                until: now + cfg.open,
            },
            Health::Unknown => Phase::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
                succeeded,
            },
            Health::Good if succeeded + 1 >= cfg.probes => {
                self.clear_window();
                self.closed.store(true, Ordering::Release);
                Phase::Closed
            }
            Health::Good => Phase::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
                succeeded: succeeded + 1,
            },
        };
    }
}

fn health_of(result: &Result<Response>) -> Health {
    match result {
        Ok(_) => Health::Good,
        Err(e) => match e.kind() {
            ErrorKind::Network
            | ErrorKind::Timeout
            | ErrorKind::LimitExceeded
            | ErrorKind::ServiceNotFound => Health::Bad,
            _ => Health::Good,
        },
    }
}

/// What the breaker stage keeps from admitting a call to recording its outcome.
pub(crate) struct Admitted<'s> {
    breaker: SiteRef<'s, Breaker>,
    probe: bool,
    deadline: Option<Instant>,
}

/// See the [module docs](self).
pub struct CircuitBreakerFilter {
    breakers: Sites<Breaker>,
}

impl Default for CircuitBreakerFilter {
    fn default() -> Self {
        CircuitBreakerFilter {
            breakers: Sites::new("circuitbreaker"),
        }
    }
}

#[async_trait::async_trait]
impl Filter for CircuitBreakerFilter {
    /// It never waits: an open circuit fails the call at once.
    fn honors_deadline(&self) -> bool {
        true
    }

    /// A layer that finds the breakers of `next`'s provider without a shared lookup (they
    /// stay shared with every chain to that provider).
    fn bind(&self, next: &Arc<dyn Invoker>) -> Option<Arc<dyn Filter>> {
        Some(Arc::new(CircuitBreakerFilter {
            breakers: self.breakers.bind(Some(next.url())),
        }))
    }

    stage::stage_filter!();
}

impl Stage for CircuitBreakerFilter {
    fn before<'s>(
        &'s self,
        next: &dyn Invoker,
        invocation: &mut Invocation,
        _now: Instant,
    ) -> Result<Ticket<'s>> {
        let breaker = self
            .breakers
            .get(Site::at(next.url(), invocation), |_| true, Breaker::new)
            .map_err(|e| invocation.annotate(e))?;
        let admitted = breaker
            .admit(next.url(), invocation.method())
            .map_err(|e| invocation.annotate(e))?;
        let probe = match admitted {
            Admission::Go { probe } => probe,
            Admission::Refused { open_for: left } => {
                let msg = if left.is_zero() {
                    "circuit half-open: probe calls in flight, call rejected".to_string()
                } else {
                    format!(
                        "circuit open after repeated failures; next probe in {} ms",
                        left.as_millis()
                    )
                };
                return Err(invocation.annotate(
                    RpcError::new(ErrorKind::CircuitOpen, msg).with_provider(next.url().address()),
                ));
            }
        };
        Ok(Ticket(Kind::Breaker(Admitted {
            breaker,
            probe,
            deadline: invocation.deadline(),
        })))
    }

    /// Records the outcome, also of a call dropped before it had one: a call dropped at or
    /// past its deadline (by the `timeout` filter) counts as a failure, one dropped before
    /// as nothing.
    fn after(&self, ticket: Ticket<'_>, result: Option<&Result<Response>>, now: Instant) {
        let Kind::Breaker(a) = ticket.0 else {
            return;
        };
        let health = match result {
            Some(result) => health_of(result),
            None => match a.deadline {
                Some(d) if now >= d => Health::Bad,
                _ => Health::Unknown,
            },
        };
        if let Some(cfg) = a.breaker.admitted_config() {
            a.breaker.record(&cfg, a.probe, health, now);
        }
    }
}

crate::register!(
    dyn Filter,
    "circuitbreaker",
    || Arc::new(CircuitBreakerFilter::default()),
    activate = Activate::consumer(-8_000)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A provider whose health the test switches.
    fn switchable(url: &str) -> (Arc<Mock>, Arc<AtomicBool>) {
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        let mock = Mock::new(url, move |_| {
            let ok = h.load(Ordering::SeqCst);
            async move {
                if ok {
                    Ok(Response::empty())
                } else {
                    Err(RpcError::network("connection reset"))
                }
            }
        });
        (mock, healthy)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_rejects_half_opens_and_closes() {
        let (p, healthy) = switchable(
            "dubbo://h:1/S?breaker.min-calls=4&breaker.error-rate=50&breaker.open=1000&breaker.probes=2",
        );
        let f = CircuitBreakerFilter::default();
        // Healthy: nothing trips.
        for _ in 0..10 {
            f.invoke(&*p, call("S", "m")).await.expect("healthy");
        }
        // A burst of failures: 10 ok + 10 bad is 50 % of 20 calls.
        healthy.store(false, Ordering::SeqCst);
        let mut failures = 0;
        loop {
            let e = f.invoke(&*p, call("S", "m")).await.expect_err("down");
            if e.kind() == ErrorKind::CircuitOpen {
                break;
            }
            assert_eq!(e.kind(), ErrorKind::Network);
            failures += 1;
            assert!(failures <= 10, "breaker never opened");
        }
        assert_eq!(failures, 10);
        // Open: rejected fast, provider not called, error is retriable and names it.
        let before = p.calls();
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("open");
        assert_eq!(e.kind(), ErrorKind::CircuitOpen);
        assert!(e.is_retriable());
        assert_eq!(e.provider(), Some("h:1"));
        assert_eq!(p.calls(), before);
        // Another method of the same provider is not affected.
        healthy.store(true, Ordering::SeqCst);
        f.invoke(&*p, call("S", "other"))
            .await
            .expect("own breaker");

        // After the open time, probes go through; a failed probe reopens.
        tokio::time::advance(Duration::from_millis(1001)).await;
        healthy.store(false, Ordering::SeqCst);
        let e = f
            .invoke(&*p, call("S", "m"))
            .await
            .expect_err("probe fails");
        assert_eq!(e.kind(), ErrorKind::Network);
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("reopened");
        assert_eq!(e.kind(), ErrorKind::CircuitOpen);

        // Recovery: two successful probes close it.
        tokio::time::advance(Duration::from_millis(1001)).await;
        healthy.store(true, Ordering::SeqCst);
        f.invoke(&*p, call("S", "m")).await.expect("probe 1");
        f.invoke(&*p, call("S", "m")).await.expect("probe 2");
        for _ in 0..5 {
            f.invoke(&*p, call("S", "m")).await.expect("closed");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_are_each_counted_and_open_it_once() {
        let (p, healthy) = switchable("dubbo://h:1/S?breaker.min-calls=1000&breaker.error-rate=50");
        let f = Arc::new(CircuitBreakerFilter::default());
        let run = |f: Arc<CircuitBreakerFilter>, p: Arc<Mock>, n: usize| async move {
            let mut kinds = Vec::new();
            for _ in 0..n {
                kinds.push(f.invoke(&*p, call("S", "m")).await.err().map(|e| e.kind()));
            }
            kinds
        };
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(run(f.clone(), p.clone(), 100)))
            .collect();
        for t in tasks {
            assert!(t.await.expect("task").iter().all(Option::is_none));
        }
        let breaker = f
            .breakers
            .get(Site::at(p.url(), &call("S", "m")), |_| true, Breaker::new)
            .expect("breaker");
        let counted: u64 = breaker
            .buckets
            .iter()
            .map(|b| b.calls.load(Ordering::Relaxed))
            .sum();
        assert_eq!(counted, 800, "every call counted once");
        // Failures from 8 callers at once: 800 of them make 50 % of 1600 calls. The calls
        // already admitted when it opens (at most one per caller) still fail on the network.
        healthy.store(false, Ordering::SeqCst);
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(run(f.clone(), p.clone(), 150)))
            .collect();
        let mut network = 0;
        let mut open = 0;
        for t in tasks {
            for kind in t.await.expect("task") {
                match kind {
                    Some(ErrorKind::Network) => network += 1,
                    Some(ErrorKind::CircuitOpen) => open += 1,
                    other => panic!("unexpected outcome {other:?}"),
                }
            }
        }
        assert!(
            (800..808).contains(&network),
            "{network} calls reached the provider"
        );
        assert_eq!(network + open, 1200);
        assert!(!breaker.closed.load(Ordering::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_only_the_probes_through() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let g = gate.clone();
        let down = Arc::new(AtomicBool::new(true));
        let d = down.clone();
        let p = Mock::new(
            "dubbo://h:1/S?breaker.consecutive-failures=2&breaker.open=100",
            move |_| {
                let g = g.clone();
                let fail = d.load(Ordering::SeqCst);
                async move {
                    if fail {
                        return Err(RpcError::timeout("slow"));
                    }
                    g.notified().await;
                    Ok(Response::empty())
                }
            },
        );
        let f = Arc::new(CircuitBreakerFilter::default());
        for _ in 0..2 {
            f.invoke(&*p, call("S", "m")).await.expect_err("timeout");
        }
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("open");
        assert_eq!(e.kind(), ErrorKind::CircuitOpen);
        tokio::time::advance(Duration::from_millis(101)).await;
        down.store(false, Ordering::SeqCst);
        let probe = {
            let (f, p) = (f.clone(), p.clone());
            tokio::spawn(async move { f.invoke(&*p, call("S", "m")).await })
        };
        tokio::task::yield_now().await;
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("probe busy");
        assert_eq!(e.kind(), ErrorKind::CircuitOpen);
        gate.notify_one();
        probe.await.expect("join").expect("probe ok");
        // Closed again: the next call reaches the provider (which now fails at once).
        down.store(true, Ordering::SeqCst);
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("admitted");
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn business_and_codec_failures_do_not_trip() {
        let p = Mock::new(
            "dubbo://h:1/S?breaker.consecutive-failures=1&breaker.min-calls=1",
            |_| async { Err(RpcError::codec("bad frame")) },
        );
        let f = CircuitBreakerFilter::default();
        for _ in 0..5 {
            let e = f.invoke(&*p, call("S", "m")).await.expect_err("codec");
            assert_eq!(e.kind(), ErrorKind::Codec);
        }
        assert_eq!(p.calls(), 5);
    }

    #[tokio::test]
    async fn bad_breaker_settings_are_reported() {
        let f = CircuitBreakerFilter::default();
        for (q, want) in [
            ("breaker.error-rate=150", "not a percentage"),
            ("breaker.open=soon", "'breaker.open' has value 'soon'"),
        ] {
            let p = Mock::ok(&format!("dubbo://h:1/S?{q}"));
            let e = f.invoke(&*p, call("S", "m")).await.expect_err("bad");
            assert!(e.to_string().contains(want), "{q}: {e}");
            assert_eq!(p.calls(), 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let (p, healthy) = switchable(
            "dubbo://h:1/S?breaker.min-calls=4&breaker.error-rate=50&breaker.window=1000",
        );
        let f = CircuitBreakerFilter::default();
        healthy.store(false, Ordering::SeqCst);
        for _ in 0..3 {
            f.invoke(&*p, call("S", "m")).await.expect_err("down");
        }
        tokio::time::advance(Duration::from_millis(1500)).await;
        healthy.store(true, Ordering::SeqCst);
        f.invoke(&*p, call("S", "m")).await.expect("ok");
        healthy.store(false, Ordering::SeqCst);
        // 1 ok + 1 bad in the window: below min-calls, still closed.
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("down");
        assert_eq!(e.kind(), ErrorKind::Network);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_that_reaches_min_calls_with_failures_in_the_window_opens_it() {
        let (p, healthy) = switchable(
            "dubbo://h:1/S?breaker.min-calls=4&breaker.error-rate=50&breaker.window=1000",
        );
        let f = CircuitBreakerFilter::default();
        healthy.store(false, Ordering::SeqCst);
        for _ in 0..2 {
            f.invoke(&*p, call("S", "m")).await.expect_err("down");
        }
        healthy.store(true, Ordering::SeqCst);
        f.invoke(&*p, call("S", "m")).await.expect("ok");
        // The fourth call, a success, makes 2 failures in 4 calls: 50 %.
        f.invoke(&*p, call("S", "m")).await.expect("ok");
        let e = f.invoke(&*p, call("S", "m")).await.expect_err("open");
        assert_eq!(e.kind(), ErrorKind::CircuitOpen);

        // Another site: once the failures have left the window, successes never open it.
        let f = CircuitBreakerFilter::default();
        healthy.store(false, Ordering::SeqCst);
        for _ in 0..2 {
            f.invoke(&*p, call("S", "m")).await.expect_err("down");
        }
        tokio::time::advance(Duration::from_millis(1500)).await;
        healthy.store(true, Ordering::SeqCst);
        for _ in 0..10 {
            f.invoke(&*p, call("S", "m")).await.expect("closed");
        }
    }
}
