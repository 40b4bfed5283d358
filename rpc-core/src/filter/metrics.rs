//! `metrics` (both sides, on by default): call metrics
//! through the `metrics` crate facade, and a Prometheus text endpoint.
//!
//! Every call records, with labels `side` (`consumer`/`provider`), `service` and `method`:
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `rpc_calls_total` | counter | calls started |
//! | `rpc_errors_total` | counter | calls that failed with an [`RpcError`](crate::error::RpcError), with a `kind` label ([`ErrorKind::as_str`](crate::error::ErrorKind::as_str)); a panic is counted as `service_error` |
//! | `rpc_in_flight` | gauge | calls in progress |
//! | `rpc_latency_seconds` | histogram | time to the result |
//!
//! Declared business errors are answers, not failures, and are not counted as errors.
//! Each side has its own instance under the one name ([`crate::filter::Sided`]), which sets
//! the `side` label; `filter=-metrics` switches it off on the side whose URL says so.
//!
//! Each thread adds its calls to its own share of a site's counts and hands them to the
//! recorder once it holds 64 calls or has held them for 100 ms, so that calls on different
//! cores do not all write the same counters. A thread started with the first metrics hands on
//! what is left every [`UPKEEP_EVERY`], and [`render`] hands on everything first: a recorder
//! of your own sees counts up to [`UPKEEP_EVERY`] late, a scrape sees them all.
//!
//! Nothing is recorded until a recorder is installed: [`install`] installs the Prometheus one
//! (once per process), [`render`] gives the text exposition in-process, and [`serve`] exposes
//! it over HTTP (`GET /metrics`). The filters register their metric handles once per service
//! and method; after installing another recorder, call [`use_installed_recorder`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ::metrics::{counter, gauge, histogram, Label};
use tokio::time::Instant;

use crate::error::Result;
use crate::extension::Activate;
use crate::filter::stage::{self, Kind, Stage, Ticket};
use crate::filter::state::{Site, SiteRef, Sites};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};
use crate::lent::Lent;
use crate::padded::Padded;

/// Whether a recorder was installed (by [`install`] or announced with
/// [`use_installed_recorder`]); handles registered before that are replaced.
static RECORDER_LIVE: AtomicBool = AtomicBool::new(false);

/// Tells the filters that a `metrics` recorder other than this module's Prometheus one was
/// installed, so that they register their metric handles again with it. Not needed after
/// [`install`], nor when the recorder is installed before the first call.
pub fn use_installed_recorder() {
    RECORDER_LIVE.store(true, Ordering::Release);
}

/// The metric handles of one side, service and method, registered once, and what the
/// calls through them recorded but have not yet handed on.
struct Handles {
    live: bool,
    batch: Arc<Batch>,
}

impl Handles {
    /// Handles for `invocation`'s site; `shared` when they are kept for later calls (so the
    /// flushes that do not wait for a call must reach them).
    fn new(side: &'static str, invocation: &Invocation, live: bool, shared: bool) -> Self {
        let labels = vec![
            Label::new("side", side),
            Label::new("service", invocation.service().to_string()),
            Label::new("method", invocation.method().to_string()),
        ];
        let batch = Arc::new(Batch {
            calls: counter!("rpc_calls_total", labels.iter()),
            in_flight: gauge!("rpc_in_flight", labels.iter()),
            latency: histogram!("rpc_latency_seconds", labels.iter()),
            labels,
            shards: std::array::from_fn(|_| Shard::default()),
        });
        if shared {
            batch::keep(&batch);
        }
        Handles { live, batch }
    }
}

mod batch;
use batch::{Batch, Shard};

/// Records one call's metrics; see the [module docs](self).
pub struct MetricsFilter {
    side: &'static str,
    handles: Sites<Handles>,
}

impl MetricsFilter {
    /// The filter for the consumer side.
    pub fn consumer() -> Self {
        MetricsFilter {
            side: "consumer",
            handles: Sites::new("metrics"),
        }
    }

    /// The filter for the provider side.
    pub fn provider() -> Self {
        MetricsFilter {
            side: "provider",
            handles: Sites::new("metrics (provider)"),
        }
    }
}

/// What the metrics stage keeps from a call's start to its end.
pub(crate) struct Started<'s> {
    handles: SiteRef<'s, Handles>,
    start: Instant,
}

#[async_trait::async_trait]
impl Filter for MetricsFilter {
    /// It only counts and times.
    fn honors_deadline(&self) -> bool {
        true
    }

    /// A layer that finds its chain's handles without a shared lookup (labels do not name the
    /// provider: every chain of a service shares them).
    fn bind(&self, _next: &Arc<dyn Invoker>) -> Option<Arc<dyn Filter>> {
        Some(Arc::new(MetricsFilter {
            side: self.side,
            handles: self.handles.bind(None),
        }))
    }

    stage::stage_filter!();
}

impl Stage for MetricsFilter {
    fn before<'s>(
        &'s self,
        _next: &dyn Invoker,
        invocation: &mut Invocation,
        now: Instant,
    ) -> Result<Ticket<'s>> {
        let live = RECORDER_LIVE.load(Ordering::Acquire);
        let handles = self
            .handles
            .get(
                Site::of(invocation),
                |h| h.live || !live,
                || Handles::new(self.side, invocation, live, true),
            )
            // Metrics never fail a call: past the map's bound, register without caching.
            .unwrap_or_else(|_| {
                Lent::Shared(Arc::new(Padded::new(Handles::new(
                    self.side, invocation, live, false,
                ))))
            });
        handles.batch.started(now);
        Ok(Ticket(Kind::Metrics(Started {
            handles,
            start: now,
        })))
    }

    fn after(&self, ticket: Ticket<'_>, result: Option<&Result<Response>>, now: Instant) {
        let Kind::Metrics(Started { handles, start }) = ticket.0 else {
            return;
        };
        let batch = &*handles.batch;
        match result {
            Some(result) => {
                batch.ended(
                    now,
                    now.saturating_duration_since(start),
                    result.as_ref().err().map(|e| e.kind()),
                );
            }
            // A panic unwinding through the call counts as an error; a call given up on
            // only leaves the in-flight count.
            None if std::thread::panicking() => batch.panicked(),
            None => batch.cancelled(),
        }
        if matches!(handles, Lent::Shared(_)) {
            // Nothing else will reach these handles.
            batch.flush();
        }
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

#[cfg(feature = "prometheus")]
mod prometheus;
pub use batch::UPKEEP_EVERY;
#[cfg(feature = "prometheus")]
pub use prometheus::{install, render, serve};

/// Without the `prometheus` feature: what [`install`], [`render`] and [`serve`] answer.
#[cfg(not(feature = "prometheus"))]
fn without_exporter() -> crate::error::RpcError {
    crate::error::RpcError::config(
        "rpc-core was built without its `prometheus` feature: no Prometheus recorder or \
         endpoint (install a `metrics` recorder of your own, then call use_installed_recorder)",
    )
}

/// Installs the Prometheus recorder (needs the `prometheus` feature; without it, an error
/// saying so).
#[cfg(not(feature = "prometheus"))]
pub fn install() -> Result<()> {
    Err(without_exporter())
}

/// The metrics in the Prometheus text format (needs the `prometheus` feature; without it, an
/// error saying so).
#[cfg(not(feature = "prometheus"))]
pub fn render() -> Result<String> {
    Err(without_exporter())
}

/// Serves the Prometheus endpoint (needs the `prometheus` feature; without it, an error
/// saying so).
#[cfg(not(feature = "prometheus"))]
pub async fn serve(_addr: std::net::SocketAddr) -> Result<std::net::SocketAddr> {
    Err(without_exporter())
}

#[cfg(all(test, not(feature = "prometheus")))]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::filter::testing::{call, Mock};

    #[tokio::test]
    async fn without_the_exporter_calls_go_on_and_the_endpoint_says_why() {
        let p = Mock::ok("dubbo://h:1/metrics.Probe");
        MetricsFilter::consumer()
            .invoke(&*p, call("metrics.Probe", "ok"))
            .await
            .expect("a call does not need a recorder");
        for e in [
            install().expect_err("no exporter"),
            render().expect_err("no exporter"),
            serve("127.0.0.1:0".parse().expect("addr"))
                .await
                .expect_err("no exporter"),
        ] {
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(e.to_string().contains("`prometheus` feature"), "{e}");
        }
    }
}
