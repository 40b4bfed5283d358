//! Per-provider call statistics: in-flight count and recent latencies, keyed by provider
//! (host, port, service path) and method.
//!
//! The cluster invokers record every call here ([`CallGuard`]); the `leastactive`,
//! `shortestresponse` and `p2c` balancers read it. Calls are counted only once a balancer that
//! reads the counts was created ([`read_active`]), and timed only once one that reads
//! latencies was ([`read_latency`]). The map is global (like Dubbo's
//! `RpcStatus`) so that several references to the same provider share what they learn.
//!
//! Each provider's [`ProviderStats`] is looked up in the shared table once, when a directory
//! builds its snapshot ([`crate::cluster::Provider`] keeps the handle); on the call path a
//! method's statistics are found in the provider's own set-once slots, without a lock and
//! without allocating. Nothing here is held across an `.await`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::url::Url;

/// How many recent latencies the sliding window keeps per provider and method.
pub const WINDOW: usize = 32;

/// Time constant of the latency EWMA (Finagle's default decay window is 10 s; we use a shorter
/// one so a provider that turns slow is noticed within a few seconds).
pub const EWMA_TAU: Duration = Duration::from_secs(2);

/// Statistics of one provider for one method.
#[derive(Debug)]
pub struct MethodStats {
    active: AtomicU32,
    /// Published copies of the window mean and the EWMA (f64 bits), read without the lock.
    mean_ns: AtomicU64,
    ewma_bits: AtomicU64,
    latency: Mutex<Latency>,
}

#[derive(Debug)]
struct Latency {
    window: [u64; WINDOW],
    len: usize,
    next: usize,
    sum: u64,
    ewma_ns: f64,
    last: Option<Instant>,
}

impl MethodStats {
    fn new() -> Self {
        MethodStats {
            active: AtomicU32::new(0),
            mean_ns: AtomicU64::new(0),
            ewma_bits: AtomicU64::new(0f64.to_bits()),
            latency: Mutex::new(Latency {
                window: [0; WINDOW],
                len: 0,
                next: 0,
                sum: 0,
                ewma_ns: 0.0,
                last: None,
            }),
        }
    }

    /// Calls in flight now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Marks the start of a call; the guard ends it (also when the call's future is dropped).
    /// The call's latency is timed only once a balancer that reads latencies exists (see
    /// [`read_latency`]).
    pub fn begin(self: &Arc<Self>) -> CallGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        CallGuard {
            stats: self.clone(),
            started: LATENCY_READ.load(Ordering::Relaxed).then(Instant::now),
        }
    }

    /// Mean of the sliding window of recent latencies, in nanoseconds (0 before any call).
    pub fn window_mean_ns(&self) -> u64 {
        self.mean_ns.load(Ordering::Relaxed)
    }

    /// Exponentially weighted moving average of latency in nanoseconds, decayed by the time
    /// between samples with time constant [`EWMA_TAU`] (0 before any call).
    pub fn ewma_ns(&self) -> f64 {
        f64::from_bits(self.ewma_bits.load(Ordering::Relaxed))
    }

    /// Records one completed call's latency.
    pub fn record(&self, elapsed: Duration) {
        self.record_at(elapsed, Instant::now());
    }

    /// Records one call's latency, completed at `now` (a caller that has just read the clock
    /// passes it on instead of reading it again).
    fn record_at(&self, elapsed: Duration, now: Instant) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let mut l = self.lock();
        if l.len == WINDOW {
            l.sum -= l.window[l.next];
        } else {
            l.len += 1;
        }
        let slot = l.next;
        l.window[slot] = ns;
        l.sum += ns;
        l.next = (l.next + 1) % WINDOW;
        l.ewma_ns = match l.last {
            None => ns as f64,
            Some(prev) => {
                let dt = now.saturating_duration_since(prev).as_secs_f64();
                // A minimum weight per sample so bursts within one instant still move it.
                let w = (-dt / EWMA_TAU.as_secs_f64()).exp().min(0.9);
                l.ewma_ns * w + ns as f64 * (1.0 - w)
            }
        };
        l.last = Some(now);
        self.mean_ns.store(l.sum / l.len as u64, Ordering::Relaxed);
        self.ewma_bits.store(l.ewma_ns.to_bits(), Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Latency> {
        // A panic while holding this lock cannot leave the numbers inconsistent in a way that
        // matters for balancing, so a poisoned lock is simply used.
        self.latency.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An in-flight call: decrements the in-flight count when dropped.
#[derive(Debug)]
#[must_use = "the call counts as in flight until the guard is dropped"]
pub struct CallGuard {
    stats: Arc<MethodStats>,
    /// When the call started, if its latency is wanted.
    started: Option<Instant>,
}

impl CallGuard {
    /// Ends the call and records its latency (a cancelled call records none).
    pub fn finish(self) {
        if let Some(started) = self.started {
            let now = Instant::now();
            self.stats
                .record_at(now.saturating_duration_since(started), now);
        }
    }
}

/// Whether a balancer that reads latencies was created; see [`read_latency`].
static LATENCY_READ: AtomicBool = AtomicBool::new(false);

/// Whether a balancer that reads in-flight counts was created; see [`read_active`].
static ACTIVE_READ: AtomicBool = AtomicBool::new(false);

/// Announces a reader of latencies and in-flight counts (the `shortestresponse` and `p2c`
/// balancers call it when created): from then on every call through a cluster is counted and
/// timed. Until then latencies are not kept, since timing costs each call two clock reads, a
/// lock and an `exp`.
pub fn read_latency() {
    LATENCY_READ.store(true, Ordering::Relaxed);
    read_active();
}

/// Announces a reader of in-flight counts (the `leastactive` balancer calls it when created):
/// from then on every call through a cluster is counted ([`counting`]). Until then none is,
/// since the count is written by every call on every core.
pub fn read_active() {
    ACTIVE_READ.store(true, Ordering::Relaxed);
}

/// Whether the cluster invokers count calls in flight ([`MethodStats::begin`]): once a
/// balancer that reads the counts exists. A call begun before that is never counted, so the
/// counts stay exact for the calls after.
pub fn counting() -> bool {
    ACTIVE_READ.load(Ordering::Relaxed)
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The statistics of one provider (host, port, service path), per method.
///
/// The first [`METHOD_SLOTS`] methods are found by a scan of set-once slots (no lock);
/// further ones in a map behind a lock.
#[derive(Debug, Default)]
pub struct ProviderStats {
    slots: [OnceLock<(Box<str>, Arc<MethodStats>)>; METHOD_SLOTS],
    more: RwLock<HashMap<Box<str>, Arc<MethodStats>>>,
}

/// Methods of a provider whose statistics are found without a lock.
pub const METHOD_SLOTS: usize = 8;

impl ProviderStats {
    /// The statistics for `method` (created on first use).
    pub fn method(&self, method: &str) -> Arc<MethodStats> {
        for slot in &self.slots {
            // Slots fill in order, so a method is in the first slot it finds free or in an
            // earlier one: never in two.
            let (name, stats) =
                slot.get_or_init(|| (Box::from(method), Arc::new(MethodStats::new())));
            if &**name == method {
                return stats.clone();
            }
        }
        if let Some(s) = self
            .more
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(method)
        {
            return s.clone();
        }
        self.more
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(Box::from(method))
            .or_insert_with(|| Arc::new(MethodStats::new()))
            .clone()
    }
}

struct Slot {
    host: String,
    port: Option<u16>,
    path: String,
    stats: Arc<ProviderStats>,
}

type Table = RwLock<HashMap<u64, Vec<Slot>>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn key_hash(url: &Url) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.host().hash(&mut h);
    url.port().hash(&mut h);
    url.path().hash(&mut h);
    h.finish()
}

fn matches(s: &Slot, url: &Url) -> bool {
    s.port == url.port() && s.host == url.host() && s.path == url.path()
}

/// The statistics of the provider at `url` (created on first use), shared by every reference
/// to it. A [`Provider`](crate::cluster::Provider) takes its handle once, when the directory
/// builds its snapshot.
pub fn provider_stats(url: &Url) -> Arc<ProviderStats> {
    let h = key_hash(url);
    {
        let t = table().read().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = t.get(&h).and_then(|b| b.iter().find(|s| matches(s, url))) {
            return s.stats.clone();
        }
    }
    let mut t = table().write().unwrap_or_else(|p| p.into_inner());
    let bucket = t.entry(h).or_default();
    if let Some(s) = bucket.iter().find(|s| matches(s, url)) {
        return s.stats.clone();
    }
    let stats = Arc::new(ProviderStats::default());
    bucket.push(Slot {
        host: url.host().to_string(),
        port: url.port(),
        path: url.path().to_string(),
        stats: stats.clone(),
    });
    stats
}

/// The statistics of the provider at `url` for `method` (created on first use).
pub fn stats(url: &Url, method: &str) -> Arc<MethodStats> {
    provider_stats(url).method(method)
}

/// Forgets every method's statistics of the provider at `url` (it left the directory).
/// Calls still in flight keep their own handle and finish normally.
pub fn forget(url: &Url) {
    let mut t = table().write().unwrap_or_else(|p| p.into_inner());
    t.retain(|_, bucket| {
        bucket.retain(|s| !matches(s, url));
        !bucket.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(q: &str) -> Url {
        Url::parse(&format!("dubbo://10.9.9.9:1/stats.Test?{q}")).expect("url")
    }

    #[tokio::test(start_paused = true)]
    async fn guard_counts_in_flight_and_records_latency() {
        let s = stats(&url(""), "guard");
        assert_eq!(s.active(), 0);
        let g = s.begin();
        let g2 = s.begin();
        assert_eq!(s.active(), 2);
        tokio::time::advance(Duration::from_millis(10)).await;
        g.finish();
        drop(g2); // cancelled: no latency
        assert_eq!(s.active(), 0);
        assert_eq!(s.window_mean_ns(), 10_000_000);
        assert!((s.ewma_ns() - 1e7).abs() < 1.0);
    }

    #[test]
    fn same_provider_and_method_share_stats_and_forget_drops_them() {
        let a = stats(&url("x=1"), "share");
        let b = stats(&url("y=2"), "share");
        assert!(Arc::ptr_eq(&a, &b), "params do not change identity");
        let other = stats(&url(""), "other");
        assert!(!Arc::ptr_eq(&a, &other));
        forget(&url(""));
        assert!(!Arc::ptr_eq(&a, &stats(&url(""), "share")));
    }

    #[test]
    fn window_keeps_only_recent_latencies() {
        let s = MethodStats::new();
        for _ in 0..WINDOW {
            s.record(Duration::from_millis(100));
        }
        for _ in 0..WINDOW {
            s.record(Duration::from_millis(1));
        }
        assert_eq!(s.window_mean_ns(), 1_000_000);
    }
}
