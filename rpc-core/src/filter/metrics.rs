//! `metrics` (both sides, on by default): call metrics
//! through the `metrics` crate facade, and a Prometheus text endpoint.
//!
//! Every call records, with labels `side` (`consumer`/`provider`), `service` and `method`:
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `rpc_calls_total` | counter | calls started |
//! | `rpc_errors_total` | counter | calls that failed with an [`RpcError`], with a `kind` label ([`ErrorKind::as_str`]); a panic is counted as `service_error` |
//! | `rpc_in_flight` | gauge | calls in progress |
//! | `rpc_latency_seconds` | histogram | time to the result |
//!
//! Declared business errors are answers, not failures, and are not counted as errors.
//! Each side has its own instance under the one name ([`crate::filter::Sided`]), which sets
//! the `side` label; `filter=-metrics` switches it off on the side whose URL says so.
//!
//! Nothing is recorded until a recorder is installed: [`install`] installs the Prometheus one
//! (once per process), [`render`] gives the text exposition in-process, and [`serve`] exposes
//! it over HTTP (`GET /metrics`). The filters register their metric handles once per service
//! and method; after installing another recorder, call [`use_installed_recorder`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, Label};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::state::{Padded, Site, StateMap};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

/// Latency histogram bucket bounds, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Largest HTTP request head the endpoint reads.
const MAX_REQUEST: usize = 8 * 1024;
/// Most scrapes served at once.
const MAX_CONNECTIONS: usize = 32;
/// Time a scraper gets to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a recorder was installed (by [`install`] or announced with
/// [`use_installed_recorder`]); handles registered before that are replaced.
static RECORDER_LIVE: AtomicBool = AtomicBool::new(false);

/// Tells the filters that a `metrics` recorder other than this module's Prometheus one was
/// installed, so that they register their metric handles again with it. Not needed after
/// [`install`], nor when the recorder is installed before the first call.
pub fn use_installed_recorder() {
    RECORDER_LIVE.store(true, Ordering::Release);
}

/// The metric handles of one side, service and method, registered once.
struct Handles {
    live: bool,
    labels: Vec<Label>,
    calls: Counter,
    in_flight: Gauge,
    latency: Histogram,
}

impl Handles {
    fn new(side: &'static str, invocation: &Invocation, live: bool) -> Self {
        let labels = vec![
            Label::new("side", side),
            Label::new("service", invocation.service().to_string()),
            Label::new("method", invocation.method().to_string()),
        ];
        Handles {
            live,
            calls: counter!("rpc_calls_total", labels.iter()),
            in_flight: gauge!("rpc_in_flight", labels.iter()),
            latency: histogram!("rpc_latency_seconds", labels.iter()),
            labels,
        }
    }

    fn count_error(&self, kind: ErrorKind) {
        let mut labels = self.labels.clone();
        labels.push(Label::new("kind", kind.as_str()));
        counter!("rpc_errors_total", labels.iter()).increment(1);
    }
}

/// Records one call's metrics; see the [module docs](self).
pub struct MetricsFilter {
    side: &'static str,
    handles: StateMap<Handles>,
}

impl MetricsFilter {
    /// The filter for the consumer side.
    pub fn consumer() -> Self {
        MetricsFilter {
            side: "consumer",
            handles: StateMap::new("metrics"),
        }
    }

    /// The filter for the provider side.
    pub fn provider() -> Self {
        MetricsFilter {
            side: "provider",
            handles: StateMap::new("metrics (provider)"),
        }
    }
}

/// Ends the in-flight gauge, and counts a panic unwinding through the call as an error.
struct InFlight<'a> {
    handles: &'a Handles,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.handles.in_flight.decrement(1.0);
        if !self.done && std::thread::panicking() {
            self.handles.count_error(ErrorKind::Biz);
        }
    }
}

#[async_trait::async_trait]
impl Filter for MetricsFilter {
    /// It only counts and times.
    fn honors_deadline(&self) -> bool {
        true
    }

    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let live = RECORDER_LIVE.load(Ordering::Acquire);
        let handles = self
            .handles
            .get_or_insert(
                Site::of(&invocation),
                |h| h.live || !live,
                || Handles::new(self.side, &invocation, live),
            )
            // Metrics never fail a call: past the map's bound, register without caching.
            .unwrap_or_else(|_| Arc::new(Padded::new(Handles::new(self.side, &invocation, live))));
        handles.calls.increment(1);
        handles.in_flight.increment(1.0);
        let mut in_flight = InFlight {
            handles: &handles,
            done: false,
        };
        let start = std::time::Instant::now();
        let result = next.invoke(invocation).await;
        in_flight.done = true;
        handles.latency.record(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            handles.count_error(e.kind());
        }
        result
    }
}

crate::register!(
    dyn Filter,
    "metrics",
    || Arc::new(crate::filter::Sided::new(
        Arc::new(MetricsFilter::consumer()),
        Arc::new(MetricsFilter::provider())
    )),
    activate = Activate::both(-20_000)
);

/// Installs the Prometheus recorder as the process's `metrics` recorder (once; later calls
/// return the same handle). Fails when another recorder was installed first.
pub fn install() -> Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("rpc_latency_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| RpcError::internal(format!("bad latency buckets: {e}")))?
        .install_recorder()
        .map_err(|e| {
            RpcError::internal(format!(
                "cannot install the Prometheus metrics recorder: {e}"
            ))
        })?;
    *slot = Some(handle.clone());
    RECORDER_LIVE.store(true, Ordering::Release);
    start_upkeep(handle.clone());
    Ok(handle)
}

/// How often the recorder folds recorded latencies into its histograms.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Name of the thread that runs the recorder's upkeep.
const UPKEEP_THREAD: &str = "rpc-metrics";

/// Runs the recorder's upkeep every [`UPKEEP_EVERY`] on a small thread of its own, for as
/// long as the process lives. The recorder keeps each latency sample until upkeep (or a
/// scrape) folds it into the histogram buckets: without this, a process that records calls
/// but is never scraped would hold every sample it ever took.
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; samples are folded only when scraped");
    }
}

/// The current metrics in the Prometheus text format (installing the recorder if needed).
pub fn render() -> Result<String> {
    let handle = install()?;
    handle.run_upkeep();
    Ok(handle.render())
}

/// Serves [`render`] over HTTP at `addr` (`127.0.0.1:0` picks a free port) on the current
/// tokio runtime, answering `GET /metrics` (and `GET /`); returns the bound address. The
/// endpoint lives as long as the runtime.
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr> {
    install()?;
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        RpcError::network(format!("cannot bind the metrics endpoint to {addr}: {e}"))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| RpcError::network(format!("metrics endpoint address: {e}")))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream).await {
                            tracing::debug!(error = %e, "metrics scrape failed");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

/// Reads one request head (bounded in size and time) and writes one response.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_complete = |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n");
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head_complete(&buf) {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_REQUEST {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    let (status, content_type, body) = match read {
        Ok(Ok(())) if head_complete(&buf) => {
            let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut parts = line.split(' ');
            match (parts.next(), parts.next()) {
                (Some("GET"), Some("/metrics" | "/")) => match render() {
                    Ok(text) => ("200 OK", "text/plain; version=0.0.4", text),
                    Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
                },
                (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "only GET is served\n".into(),
                ),
            }
        }
        _ => (
            "400 Bad Request",
            "text/plain",
            "incomplete or oversized request\n".into(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};

    async fn scrape(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    fn line_value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[tokio::test]
    async fn calls_show_up_on_the_http_endpoint() {
        let addr = serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serving");
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let p = Mock::new("dubbo://h:1/metrics.Probe", |inv| async move {
            match inv.method() {
                "fail" => Err(RpcError::timeout("slow")),
                _ => Ok(Response::empty()),
            }
        });
        let consumer = MetricsFilter::consumer();
        for _ in 0..3 {
            consumer
                .invoke(&*p, call("metrics.Probe", "ok"))
                .await
                .expect("ok");
        }
        consumer
            .invoke(&*p, call("metrics.Probe", "fail"))
            .await
            .expect_err("fails");
        MetricsFilter::provider()
            .invoke(&*p, call("metrics.Probe", "ok"))
            .await
            .expect("ok");

        let text = scrape(addr, "/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        let svc = r#"service="metrics.Probe""#;
        let consumer_ok = [svc, r#"side="consumer""#, r#"method="ok""#];
        assert_eq!(
            line_value(&text, "rpc_calls_total", &consumer_ok),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            line_value(
                &text,
                "rpc_calls_total",
                &[svc, r#"side="provider""#, r#"method="ok""#]
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                "rpc_errors_total",
                &[
                    svc,
                    r#"side="consumer""#,
                    r#"method="fail""#,
                    r#"kind="timeout""#
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, "rpc_errors_total", &[svc, r#"method="ok""#]),
            None
        );
        assert_eq!(line_value(&text, "rpc_in_flight", &consumer_ok), Some(0.0));
        assert_eq!(
            line_value(&text, "rpc_latency_seconds_count", &consumer_ok),
            Some(3.0)
        );
        // The in-process rendering shows the same.
        assert!(render().expect("render").contains("rpc_calls_total"));
        // Unknown paths and methods get clear answers.
        assert!(scrape(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }

    /// Installing the recorder starts the thread that folds samples into histograms, once.
    #[cfg(target_os = "linux")]
    #[test]
    fn install_starts_one_upkeep_thread() {
        install().expect("recorder");
        install().expect("again");
        let upkeep = || {
            std::fs::read_dir("/proc/self/task")
                .expect("tasks")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim_end() == UPKEEP_THREAD)
                .count()
        };
        // The new thread names itself once it runs: give it a moment (bounded).
        let mut seen = upkeep();
        for _ in 0..200 {
            if seen > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            seen = upkeep();
        }
        assert_eq!(seen, 1);
    }

    #[tokio::test]
    async fn a_panic_through_the_filter_is_counted() {
        install().expect("recorder");
        let p = Mock::new("dubbo://h:1/metrics.Panicky", |_| async {
            panic!("boom");
        });
        let f = MetricsFilter::provider();
        let caught = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            f.invoke(&*p, call("metrics.Panicky", "m")),
        ))
        .await;
        assert!(caught.is_err());
        let text = render().expect("render");
        let labels = [r#"service="metrics.Panicky""#, r#"kind="service_error""#];
        assert_eq!(
            line_value(&text, "rpc_errors_total", &labels),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            line_value(&text, "rpc_in_flight", &[r#"service="metrics.Panicky""#]),
            Some(0.0)
        );
    }
}
