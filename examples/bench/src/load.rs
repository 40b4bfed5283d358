//! The client process: N concurrent callers on one connection, a warm-up, then a fixed
//! measuring window; prints one JSON line.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::targets::{Caller, Echo, Target};
use crate::BoxResult;

/// What one client run measured (the JSON line the client prints).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientResult {
    /// Calls completed inside the measuring window, per second.
    pub calls_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Calls completed inside the window.
    pub calls: u64,
    /// Failed calls (or wrong echo lengths) inside the window.
    pub errors: u64,
    /// The first failure seen, if any.
    pub first_error: Option<String>,
    /// The client process's peak RSS (VmHWM), KiB.
    pub client_rss_kib: u64,
    /// Set when the run could not happen at all.
    pub error: Option<String>,
}

/// Settings of one client run.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Outstanding calls (tasks sharing one connection).
    pub concurrency: usize,
    /// Payload bytes per call.
    pub payload: usize,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measuring window.
    pub measure: Duration,
}

/// Latencies a task keeps before recording them into the shared histogram (one lock per batch).
const BATCH: usize = 256;

fn new_histogram() -> BoxResult<Histogram<u64>> {
    // 10 ns .. 60 s at 3 significant digits (0.1 % resolution).
    Ok(Histogram::new_with_bounds(10, 60_000_000_000, 3)?)
}

/// Records a batch of latencies (ns) into the shared histogram and clears it.
fn record(hist: &Mutex<Histogram<u64>>, batch: &mut Vec<u64>) {
    if let Ok(mut h) = hist.lock() {
        for &ns in batch.iter() {
            h.saturating_record(ns);
        }
    }
    batch.clear();
}

struct TaskResult {
    calls: u64,
    errors: u64,
    first_error: Option<String>,
}

/// When the warm-up ends and when the window ends.
#[derive(Clone, Copy)]
struct Window {
    warm_end: Instant,
    end: Instant,
}

/// Starts `concurrency` tasks calling through clones of `client` until the window ends.
fn spawn_tasks<C: Echo>(
    client: C,
    payload: &[u8],
    hist: &Arc<Mutex<Histogram<u64>>>,
    window: Window,
    concurrency: usize,
) -> Vec<tokio::task::JoinHandle<TaskResult>> {
    (0..concurrency.max(1))
        .map(|_| {
            tokio::spawn(drive(
                client.clone(),
                payload.to_vec(),
                hist.clone(),
                window,
            ))
        })
        .collect()
}

/// One task's loop: calls back to back, recording those that end inside the window.
async fn drive<C: Echo>(
    mut client: C,
    payload: Vec<u8>,
    hist: Arc<Mutex<Histogram<u64>>>,
    Window { warm_end, end }: Window,
) -> TaskResult {
    let mut batch = Vec::with_capacity(BATCH);
    let mut calls = 0u64;
    let mut errors = 0u64;
    let mut first_error = None;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let r = client.echo(&payload).await;
        let t1 = Instant::now();
        if t1 < warm_end || t1 > end {
            continue;
        }
        match r {
            Ok(n) if n == payload.len() => {
                let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
                batch.push(ns.max(10));
                if batch.len() == BATCH {
                    record(&hist, &mut batch);
                }
                calls += 1;
            }
            Ok(n) => {
                errors += 1;
                first_error.get_or_insert_with(|| {
                    format!("echo returned {n} bytes for {} sent", payload.len())
                });
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
                // A broken connection fails fast; do not spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    record(&hist, &mut batch);
    TaskResult {
        calls,
        errors,
        first_error,
    }
}

/// Connects, checks one call, then drives the load and measures.
pub async fn run(target: Target, addr: SocketAddr, spec: LoadSpec) -> BoxResult<ClientResult> {
    let mut caller = Caller::connect(target, addr).await?;
    let payload = vec![0x5au8; spec.payload];
    let n = caller.call(&payload).await?;
    if n != spec.payload {
        return Err(format!("echo returned {n} bytes for {} sent", spec.payload).into());
    }
    let start = Instant::now();
    let warm_end = start + spec.warmup;
    let end = warm_end + spec.measure;
    let hist = Arc::new(Mutex::new(new_histogram()?));
    let window = Window { warm_end, end };
    let tasks = match caller {
        Caller::Raw(c) => spawn_tasks(c, &payload, &hist, window, spec.concurrency),
        Caller::Tarpc(c) => spawn_tasks(c, &payload, &hist, window, spec.concurrency),
        Caller::Tonic(c) => spawn_tasks(c, &payload, &hist, window, spec.concurrency),
        Caller::Rpc(c) => spawn_tasks(c, &payload, &hist, window, spec.concurrency),
        Caller::Service(c) => spawn_tasks(c, &payload, &hist, window, spec.concurrency),
        Caller::TriProto(c) => spawn_tasks(c, &payload, &hist, window, spec.concurrency),
    };
    let mut out = ClientResult::default();
    for t in tasks {
        let t = t.await?;
        out.calls += t.calls;
        out.errors += t.errors;
        if out.first_error.is_none() {
            out.first_error = t.first_error;
        }
    }
    out.calls_per_sec = out.calls as f64 / spec.measure.as_secs_f64();
    let hist = hist.lock().map_err(|_| "histogram lock poisoned")?;
    if out.calls > 0 {
        out.p50_us = hist.value_at_quantile(0.50) as f64 / 1000.0;
        out.p99_us = hist.value_at_quantile(0.99) as f64 / 1000.0;
    }
    Ok(out)
}

/// The peak resident set (VmHWM) of process `pid` (or `self`), KiB.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
