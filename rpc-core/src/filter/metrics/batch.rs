//! What the calls through one metrics site recorded, held per thread and handed to the
//! recorder in batches.
//!
//! A counter, gauge or histogram of the `metrics` recorder is one shared block that every
//! core writes (the Prometheus recorder also writes a generation count and appends each
//! latency to a shared list): with calls on two cores, each of those writes waits for the
//! cache line to come back from the other core. Here each thread writes its own shard of the
//! site, under a lock no other thread takes but for a flush, and a shard hands what it holds
//! to the recorder in one go.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use metrics::{counter, Counter, Gauge, Histogram, Label};

use crate::error::ErrorKind;
use crate::padded::Padded;

/// Shards per site; a thread writes shard (its index mod this). More threads than this share
/// shards, which is correct, only slower.
const SHARDS: usize = 8;
/// Calls a shard holds before it hands them on.
const HOLD_MOST: usize = 64;
/// Longest a shard holds a call when more calls come through it.
const HOLD_FOR: Duration = Duration::from_millis(100);

/// How often what the shards hold is handed to the recorder when no call comes to do it, and
/// how often the Prometheus recorder folds recorded latencies into its histograms.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Name of the thread that does the upkeep.
pub(super) const UPKEEP_THREAD: &str = "rpc-metrics";

/// One site's metric handles and its shards.
pub(super) struct Batch {
    pub(super) labels: Vec<Label>,
    pub(super) calls: Counter,
    pub(super) in_flight: Gauge,
    pub(super) latency: Histogram,
    pub(super) shards: [Shard; SHARDS],
}

/// One thread's share of a site, on cache lines of its own.
pub(super) type Shard = Padded<Mutex<Held>>;

/// What a shard holds.
#[derive(Default)]
pub(super) struct Held {
    calls: u64,
    /// Started less ended (negative when a call started on another thread).
    in_flight: i64,
    latencies: Vec<f64>,
    errors: Vec<ErrorKind>,
    /// When the oldest held record was made; `None` when nothing is held.
    since: Option<Instant>,
}

impl Held {
    /// Whether the shard should hand on what it holds at `now`.
    fn due(&self, now: Instant) -> bool {
        self.latencies.len() >= HOLD_MOST
            || self
                .since
                .is_some_and(|t| now.saturating_duration_since(t) >= HOLD_FOR)
    }
}

/// This thread's shard index.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
    INDEX.with(|i| *i)
}

impl Batch {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.shards[shard_index()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A call started at `now`.
    pub(super) fn started(&self, now: Instant) {
        let mut held = self.held();
        held.calls += 1;
        held.in_flight += 1;
        held.since.get_or_insert(now);
    }

    /// A call ended at `now` after `took`, failed with `error` if any.
    pub(super) fn ended(&self, now: Instant, took: Duration, error: Option<ErrorKind>) {
        let mut held = self.held();
        held.in_flight -= 1;
        held.latencies.push(took.as_secs_f64());
        if let Some(kind) = error {
            held.errors.push(kind);
        }
        held.since.get_or_insert(now);
        if held.due(now) {
            self.hand_on(&mut held);
        }
    }

    /// A call's future was dropped before its result: it is no longer in flight (no latency,
    /// no error: the caller gave up, and the layer that made it give up counts that).
    pub(super) fn cancelled(&self) {
        self.held().in_flight -= 1;
    }

    /// A call's future was dropped by a panic unwinding through it: it ended, as a service
    /// error, and the shard hands on at once (the process may be going down).
    pub(super) fn panicked(&self) {
        let mut held = self.held();
        held.in_flight -= 1;
        held.errors.push(ErrorKind::Biz);
        self.hand_on(&mut held);
    }

    /// Hands what every shard holds to the recorder.
    pub(super) fn flush(&self) {
        for shard in &self.shards {
            let mut held = shard.lock().unwrap_or_else(PoisonError::into_inner);
            self.hand_on(&mut held);
        }
    }

    /// Hands `held` to the recorder: calls first, so a reader never sees more errors or
    /// latencies than calls.
    fn hand_on(&self, held: &mut Held) {
        if held.calls > 0 {
            self.calls.increment(held.calls);
        }
        for kind in held.errors.drain(..) {
            let mut labels = self.labels.clone();
            labels.push(Label::new("kind", kind.as_str()));
            counter!("rpc_errors_total", labels.iter()).increment(1);
        }
        for took in held.latencies.drain(..) {
            self.latency.record(took);
        }
        match held.in_flight {
            0 => {}
            n if n > 0 => self.in_flight.increment(n as f64),
            n => self.in_flight.decrement(n.unsigned_abs() as f64),
        }
        held.calls = 0;
        held.in_flight = 0;
        held.since = None;
    }
}

impl Drop for Batch {
    /// A site's handles replaced or dropped still hand on what their calls recorded.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Every site whose handles are kept, for the flushes no call makes.
static KEPT: Mutex<Vec<Weak<Batch>>> = Mutex::new(Vec::new());

/// Puts `batch` on the list the upkeep flushes, starting the upkeep thread with the first.
pub(super) fn keep(batch: &Arc<Batch>) {
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    kept.retain(|b| b.strong_count() > 0);
    kept.push(Arc::downgrade(batch));
    drop(kept);
    start_upkeep();
}

/// Hands what every kept site holds to the recorder.
pub(super) fn flush_all() {
    let kept: Vec<Arc<Batch>> = KEPT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for batch in kept {
        batch.flush();
    }
}

/// Starts, once per process, the thread that every [`UPKEEP_EVERY`] flushes the kept sites and
/// lets the Prometheus recorder fold its samples. Without it, what a thread holds when its
/// calls stop would never reach the recorder, and a process that records calls but is never
/// scraped would keep every latency sample it took.
pub(super) fn start_upkeep() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name(UPKEEP_THREAD.into())
            .spawn(|| loop {
                std::thread::sleep(UPKEEP_EVERY);
                flush_all();
                #[cfg(feature = "prometheus")]
                super::prometheus::upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread; counts are handed on only by calls and scrapes");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{
        gauge, histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;

    /// A recorder that keeps every value, by metric name and `kind` label.
    #[derive(Default)]
    struct Tally {
        counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
        gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
        samples: Arc<Samples>,
    }

    #[derive(Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().expect("samples").push(value);
        }
    }

    fn name(key: &Key) -> String {
        let kind = key.labels().find(|l| l.key() == "kind");
        format!(
            "{}{}",
            key.name(),
            kind.map_or(String::new(), |l| format!("/{}", l.value()))
        )
    }

    impl Tally {
        fn counter(&self, name: &str) -> u64 {
            let counters = self.counters.lock().expect("counters");
            counters.get(name).map_or(0, |c| c.load(Ordering::Relaxed))
        }
        fn gauge(&self, name: &str) -> f64 {
            let gauges = self.gauges.lock().expect("gauges");
            gauges
                .get(name)
                .map_or(f64::NAN, |g| f64::from_bits(g.load(Ordering::Relaxed)))
        }
        fn samples(&self) -> Vec<f64> {
            self.samples.0.lock().expect("samples").clone()
        }
    }

    impl Recorder for Tally {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut counters = self.counters.lock().expect("counters");
            Counter::from_arc(counters.entry(name(key)).or_default().clone())
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let mut gauges = self.gauges.lock().expect("gauges");
            Gauge::from_arc(gauges.entry(name(key)).or_default().clone())
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.samples.clone())
        }
    }

    fn batch() -> Batch {
        let labels = vec![Label::new("service", "S")];
        Batch {
            calls: counter!("rpc_calls_total", labels.iter()),
            in_flight: gauge!("rpc_in_flight", labels.iter()),
            latency: histogram!("rpc_latency_seconds", labels.iter()),
            labels,
            shards: std::array::from_fn(|_| Shard::default()),
        }
    }

    #[test]
    fn held_calls_reach_the_recorder_calls_first_when_flushed() {
        let tally = Tally::default();
        metrics::with_local_recorder(&tally, || {
            let b = batch();
            let t0 = Instant::now();
            for i in 0..3 {
                b.started(t0);
                let error = (i == 2).then_some(ErrorKind::Timeout);
                b.ended(t0, Duration::from_millis(5), error);
            }
            b.started(t0);
            // Held by this thread's shard: the recorder has seen nothing yet.
            assert_eq!(tally.counter("rpc_calls_total"), 0);
            b.flush();
            assert_eq!(tally.counter("rpc_calls_total"), 4);
            assert_eq!(tally.counter("rpc_errors_total/timeout"), 1);
            assert_eq!(tally.samples(), vec![0.005; 3]);
            assert_eq!(tally.gauge("rpc_in_flight"), 1.0, "one call still running");
            b.ended(t0, Duration::from_millis(1), None);
            b.flush();
            assert_eq!(tally.gauge("rpc_in_flight"), 0.0);
            assert_eq!(tally.samples().len(), 4);
        });
    }

    #[test]
    fn a_shard_hands_on_when_full_or_when_it_has_held_long_enough() {
        let tally = Tally::default();
        metrics::with_local_recorder(&tally, || {
            let b = batch();
            let t0 = Instant::now();
            for _ in 0..HOLD_MOST {
                b.started(t0);
                b.ended(t0, Duration::ZERO, None);
            }
            assert_eq!(tally.counter("rpc_calls_total"), HOLD_MOST as u64);
            b.started(t0);
            assert_eq!(tally.counter("rpc_calls_total"), HOLD_MOST as u64);
            // The next call to end after the hold time hands on both.
            b.ended(t0 + HOLD_FOR, Duration::ZERO, None);
            assert_eq!(tally.counter("rpc_calls_total"), HOLD_MOST as u64 + 1);
            assert_eq!(tally.gauge("rpc_in_flight"), 0.0);
        });
    }

    #[test]
    fn calls_on_more_threads_than_shards_are_all_counted_and_a_dropped_site_hands_on() {
        let tally = Tally::default();
        metrics::with_local_recorder(&tally, || {
            let b = batch();
            std::thread::scope(|s| {
                for _ in 0..SHARDS * 2 {
                    s.spawn(|| {
                        for _ in 0..10 {
                            b.started(Instant::now());
                            b.ended(Instant::now(), Duration::ZERO, None);
                        }
                        // A call that starts here and ends on another thread.
                        b.started(Instant::now());
                    });
                }
            });
            for _ in 0..SHARDS * 2 {
                b.ended(Instant::now(), Duration::ZERO, Some(ErrorKind::Network));
            }
            drop(b);
            let calls = SHARDS as u64 * 2 * 11;
            assert_eq!(tally.counter("rpc_calls_total"), calls);
            assert_eq!(tally.counter("rpc_errors_total/network"), SHARDS as u64 * 2);
            assert_eq!(tally.samples().len() as u64, calls);
            assert_eq!(tally.gauge("rpc_in_flight"), 0.0);
        });
    }

    #[test]
    fn a_cancelled_call_is_no_longer_in_flight() {
        let tally = Tally::default();
        metrics::with_local_recorder(&tally, || {
            let b = batch();
            b.started(Instant::now());
            b.cancelled();
            b.flush();
            assert_eq!(tally.counter("rpc_calls_total"), 1);
            assert_eq!(tally.gauge("rpc_in_flight"), 0.0);
            assert!(
                tally.samples().is_empty(),
                "no latency for a call that did not end"
            );
        });
    }

    #[test]
    fn a_panic_ends_the_call_and_counts_a_service_error_at_once() {
        let tally = Tally::default();
        metrics::with_local_recorder(&tally, || {
            let b = batch();
            b.started(Instant::now());
            b.panicked();
            assert_eq!(tally.counter("rpc_calls_total"), 1);
            assert_eq!(tally.counter("rpc_errors_total/service_error"), 1);
            assert_eq!(tally.gauge("rpc_in_flight"), 0.0);
        });
    }
}
