//! Context crosses two real network hops: attachments set by the first caller, the trace id,
//! and the shrinking deadline all reach the second provider, which is called by the first
//! provider's implementation.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::bootstrap::{Consumer, Provider, RunningProvider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::RpcContext;
use rpc_tests as _;
use serde::{Deserialize, Serialize};

/// What a provider saw of its call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Seen {
    user: Option<String>,
    trace_id: Option<String>,
    remaining_ms: Option<u64>,
}

fn seen_now() -> Seen {
    let ctx = RpcContext::current();
    Seen {
        user: ctx.get("x-user").map(str::to_string),
        trace_id: ctx.trace().map(|t| t.trace_id_hex()),
        remaining_ms: ctx.remaining().map(|d| d.as_millis() as u64),
    }
}

/// The second hop.
#[rpc_core::service(name = "hop.Inspect")]
pub trait Inspect {
    /// What this hop saw.
    async fn inspect(&self) -> Seen;
}

/// The first hop.
#[rpc_core::service(name = "hop.Relay")]
pub trait Relay {
    /// What this hop saw, and what the next hop saw.
    async fn relay(&self) -> (Seen, Seen);
}

struct Inspector;
impl Inspect for Inspector {
    async fn inspect(&self) -> Seen {
        seen_now()
    }
}

struct Relayer(Arc<InspectClient>);
impl Relay for Relayer {
    async fn relay(&self) -> (Seen, Seen) {
        let mine = seen_now();
        let next = self.0.inspect().await.expect("second hop");
        (mine, next)
    }
}

async fn serve<S: rpc_core::proxy::ServiceServer>(reg: &str, server: S) -> RunningProvider {
    Provider::builder()
        .without_env()
        .registry(reg)
        .expect("url")
        .protocol("dubbo", 0)
        .param(keys::SHUTDOWN_WAIT, 0)
        .expect("key")
        .service(server)
        .start()
        .await
        .expect("provider")
}

async fn consumer(reg: &str) -> Consumer {
    Consumer::builder()
        .without_env()
        .application("hops")
        .registry(reg)
        .expect("url")
        .reference_config(
            "hop.Relay",
            ServiceConfig::default().param(keys::TIMEOUT, 5000),
        )
        .reference_config(
            "hop.Inspect",
            ServiceConfig::default().param(keys::TIMEOUT, 5000),
        )
        .build()
        .await
        .expect("consumer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_trace_and_budget_reach_the_second_hop() {
    let reg = "memory://two-hops";
    let b = serve(reg, InspectServer::new(Inspector)).await;
    let inner: InspectClient = consumer(reg).await.reference().await.expect("inspect ref");
    let a = serve(reg, RelayServer::new(Relayer(Arc::new(inner)))).await;
    let relay: RelayClient = consumer(reg).await.reference().await.expect("relay ref");

    let mut ctx = RpcContext::new();
    ctx.attachments_mut().insert("x-user", "ann");
    ctx.set_deadline(tokio::time::Instant::now() + Duration::from_millis(800));
    let (first, second) = ctx.scope(relay.relay()).await.expect("call");

    assert_eq!(first.user.as_deref(), Some("ann"));
    assert_eq!(
        second.user.as_deref(),
        Some("ann"),
        "attachment crossed the second hop"
    );
    let trace = first.trace_id.expect("first hop has a trace");
    assert_eq!(
        second.trace_id.as_deref(),
        Some(trace.as_str()),
        "same trace id at both hops"
    );
    let (r1, r2) = (
        first.remaining_ms.expect("budget"),
        second.remaining_ms.expect("budget"),
    );
    assert!(r1 <= 800, "first hop budget {r1}");
    assert!(
        r2 <= r1,
        "the second hop inherits what is left: {r2} > {r1}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
