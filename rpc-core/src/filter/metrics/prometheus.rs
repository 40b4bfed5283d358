//! The Prometheus side of the `metrics` filter (the `prometheus` feature, on by default): the
//! recorder, its upkeep, the text rendering and a small HTTP endpoint.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[cfg(test)]
use super::batch::UPKEEP_THREAD;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::RECORDER_LIVE;
use crate::error::{Result, RpcError};

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

/// Installs the Prometheus recorder as the process's `metrics` recorder (once; later calls
/// do nothing). Fails when another recorder was installed first.
pub fn install() -> Result<()> {
    handle().map(|_| ())
}

/// The installed recorder's handle, once installed.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The installed recorder's handle, installing it first if needed.
fn handle() -> Result<PrometheusHandle> {
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
    super::batch::start_upkeep();
    Ok(handle)
}

/// The recorder's upkeep, run by the metrics upkeep thread: folds the recorded latencies into
/// the histogram buckets (the recorder keeps each sample until then).
pub(super) fn upkeep() {
    let handle = HANDLE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(h) = handle {
        h.run_upkeep();
    }
}

/// The current metrics in the Prometheus text format (installing the recorder if needed).
pub fn render() -> Result<String> {
    let handle = handle()?;
    super::batch::flush_all();
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
    use crate::filter::metrics::MetricsFilter;
    use crate::filter::testing::{call, Mock};
    use crate::filter::Filter;
    use crate::invocation::Response;

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

    #[tokio::test]
    async fn a_call_dropped_before_its_result_is_no_longer_in_flight() {
        install().expect("recorder");
        let p = Mock::new("dubbo://h:1/metrics.Dropped", |_| {
            std::future::pending::<crate::error::Result<Response>>()
        });
        let f = MetricsFilter::consumer();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            f.invoke(&*p, call("metrics.Dropped", "m")),
        )
        .await;
        assert!(gave_up.is_err(), "the call never answers");
        let text = render().expect("render");
        let labels = [r#"service="metrics.Dropped""#];
        assert_eq!(
            line_value(&text, "rpc_calls_total", &labels),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            line_value(&text, "rpc_in_flight", &labels),
            Some(0.0),
            "{text}"
        );
    }
}
