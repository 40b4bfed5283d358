//! Micro-benchmark of the per-call cluster path, as the cluster invokers run it: registry
//! directory `providers_for` (snapshot read, availability check, router chain of one condition
//! rule and one tag router, cached per method and tag) + load balancer pick, over 100
//! providers, for every built-in balancer.
//!
//! Run: `cargo run --release -p rpc-core --example cluster_pick`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use rpc_core::cluster::{CallContext, Directory, InvokerFactory, LoadBalance, RegistryDirectory};
use rpc_core::registry::{Category, NotifyListener};
use rpc_core::{extension, Invocation, Invoker, Response, Result, ServiceKey, Url, Value};

/// A provider invoker that never leaves the process.
struct Local(Url);

#[rpc_core::__private::async_trait]
impl Invoker for Local {
    fn url(&self) -> &Url {
        &self.0
    }
    async fn invoke(&self, _: Invocation) -> Result<Response> {
        Ok(Response::empty())
    }
}

struct LocalFactory;

#[rpc_core::__private::async_trait]
impl InvokerFactory for LocalFactory {
    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>> {
        Ok(Arc::new(Local(url)))
    }
}

const PROVIDERS: usize = 100;
const ITERATIONS: u32 = 200_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let reference =
        Url::parse("consumer://10.9.0.1/bench.Greeter?application=bench&side=consumer")?;
    let dir = RegistryDirectory::new(reference, Arc::new(LocalFactory));
    // Realistic provider URLs: a dozen parameters each.
    let urls: Vec<Url> = (0..PROVIDERS)
        .map(|i| {
            Url::parse(&format!(
                "dubbo://10.0.{}.{}:20880/bench.Greeter?anyhost=true&application=greeter\
                 &dubbo=2.0.2&interface=bench.Greeter&methods=greet,farewell&pid={i}\
                 &release=1.0.0&side=provider&timestamp=1&version=1.0.0&weight={}",
                i / 250,
                i % 250,
                if i % 10 == 0 { 200 } else { 100 }
            ))
        })
        .collect::<std::result::Result<_, _>>()?;
    dir.notify(Category::Providers, urls);
    dir.refresh().await;
    let rule = rpc_core::url::encode_component("method = farewell => host != 10.0.0.1");
    dir.notify(
        Category::Routers,
        vec![
            Url::parse(&format!("condition://0.0.0.0/bench.Greeter?rule={rule}"))?,
            Url::parse("tag://0.0.0.0/bench.Greeter")?,
        ],
    );
    assert_eq!(dir.router_count(), 2);

    let invocation = Invocation::new(
        ServiceKey::new("bench.Greeter", None, Some("1.0.0")),
        "greet",
        Value::typed(("ann".to_string(),)),
    );
    println!("{PROVIDERS} providers, 2 routers, best of 3 rounds of {ITERATIONS} picks");
    println!("{:<26} {:>10}", "path", "ns/pick");
    let best_of = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                f()?;
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
        }
        Ok(best)
    };
    let ns = best_of(&mut || {
        let ctx = CallContext::new(dir.url(), black_box(&invocation));
        black_box(dir.providers_for(&ctx)?);
        Ok(())
    })?;
    println!("{:<26} {ns:>10.0}", "list + route only");
    for name in [
        "random",
        "roundrobin",
        "leastactive",
        "consistenthash",
        "shortestresponse",
        "p2c",
    ] {
        let lb = extension::get::<dyn LoadBalance>(name)?;
        let ns = best_of(&mut || {
            let ctx = CallContext::new(dir.url(), black_box(&invocation));
            let list = dir.providers_for(&ctx)?;
            black_box(lb.select(&list, &ctx)?);
            Ok(())
        })?;
        println!("{:<26} {ns:>10.0}", format!("list + route + {name}"));
    }
    Ok(())
}
