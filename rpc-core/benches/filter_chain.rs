//! Per-call cost of the default filter chains (consumer and provider) around an invoker that
//! answers at once, against the bare invoker. Run with `cargo bench -p rpc-core --bench
//! filter_chain`; prints nanoseconds per call.

use std::sync::Arc;
use std::time::Instant;

use rpc_core::config::keys;
use rpc_core::extension::Side;
use rpc_core::filter::build_chain;
use rpc_core::{Invocation, Invoker, Response, Result, ServiceKey, Url, Value};

struct Answer(Url);

#[async_trait::async_trait]
impl Invoker for Answer {
    fn url(&self) -> &Url {
        &self.0
    }
    async fn invoke(&self, _: Invocation) -> Result<Response> {
        Ok(Response::empty())
    }
}

async fn per_call_ns(invoker: &dyn Invoker, calls: u32) -> f64 {
    let service = ServiceKey::new("bench.Greeter", None, Some("1.0.0"));
    let start = Instant::now();
    for _ in 0..calls {
        let inv = Invocation::new(service.clone(), "greet", Value::Empty);
        invoker.invoke(inv).await.expect("bench call");
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url =
            Url::parse("dubbo://127.0.0.1:20880/bench.Greeter?version=1.0.0").expect("bench url");
        let bare: Arc<dyn Invoker> = Arc::new(Answer(url));
        let consumer = build_chain(bare.clone(), Side::Consumer).expect("consumer chain");
        let provider = build_chain(bare.clone(), Side::Provider).expect("provider chain");
        let calls = 200_000;
        // Warm up caches and lazily built state.
        per_call_ns(&*consumer, 1_000).await;
        per_call_ns(&*provider, 1_000).await;
        let b = per_call_ns(&*bare, calls).await;
        let c = per_call_ns(&*consumer, calls).await;
        let p = per_call_ns(&*provider, calls).await;
        println!("bare invoker:            {b:8.0} ns/call");
        println!("default consumer chain:  {c:8.0} ns/call");
        println!("default provider chain:  {p:8.0} ns/call");
        // Each filter alone, to see where the time goes.
        for (side, names) in [
            (
                Side::Consumer,
                &[
                    "metrics",
                    "context",
                    "mock",
                    "timeout",
                    "deadline",
                    "circuitbreaker",
                ][..],
            ),
            (Side::Provider, &["metrics", "context"][..]),
        ] {
            for name in names {
                let url = bare
                    .url()
                    .with_param(keys::FILTER, format!("-default,{name}"));
                let one: Arc<dyn Invoker> = Arc::new(Answer(url));
                let chain = build_chain(one, side).expect("one-filter chain");
                per_call_ns(&*chain, 1_000).await;
                let ns = per_call_ns(&*chain, calls / 4).await;
                println!("  {name:<24}{:8.0} ns/call", ns - b);
            }
        }
        // With a metrics recorder installed the metrics filters do real work.
        rpc_core::filter::metrics::install().expect("recorder");
        let c = per_call_ns(&*consumer, calls).await;
        let p = per_call_ns(&*provider, calls).await;
        println!("consumer chain + metrics:{c:8.0} ns/call");
        println!("provider chain + metrics:{p:8.0} ns/call");
    });
}
