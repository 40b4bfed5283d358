//! Per-layer micro-benchmarks of the framework's consumer path, without a network:
//! serialization of a request, the default consumer filter chain, and a cluster pick.

use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::cluster::{CallContext, Cluster, LoadBalance, ProviderList, StaticDirectory};
use rpc_core::config::keys;
use rpc_core::extension::{self, ExtensionPoint, Side};
use rpc_core::filter::{self, Filter};
use rpc_core::serialize::Serialization;
use rpc_core::{Invocation, Invoker, Response, ServiceKey, Url, Value};
use serde_bytes::ByteBuf;

use crate::targets::framework;
use crate::BoxResult;

/// A provider that answers at once with an empty value.
struct Noop(Url);

#[async_trait::async_trait]
impl Invoker for Noop {
    fn url(&self) -> &Url {
        &self.0
    }

    async fn invoke(&self, _: Invocation) -> rpc_core::Result<Response> {
        Ok(Response::empty())
    }
}

struct Timing {
    iters: u64,
    elapsed: Duration,
}

impl Timing {
    fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.iters.max(1) as f64
    }
}

/// Runs `f` in batches until `min` has passed (after a short warm-up).
fn time_sync(min: Duration, mut f: impl FnMut() -> BoxResult<()>) -> BoxResult<Timing> {
    for _ in 0..1000 {
        f()?;
    }
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < min {
        for _ in 0..1000 {
            f()?;
        }
        iters += 1000;
    }
    Ok(Timing {
        iters,
        elapsed: start.elapsed(),
    })
}

/// [`time_sync`] for an async operation, on a single-threaded runtime.
fn time_async<F, Fut>(min: Duration, mut f: F) -> BoxResult<Timing>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BoxResult<()>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for _ in 0..1000 {
            f().await?;
        }
        let start = Instant::now();
        let mut iters = 0u64;
        while start.elapsed() < min {
            for _ in 0..1000 {
                f().await?;
            }
            iters += 1000;
        }
        Ok(Timing {
            iters,
            elapsed: start.elapsed(),
        })
    })
}

fn row(s: &mut String, name: &str, t: &Timing) {
    let _ = writeln!(
        s,
        "| {name} | {:.0} | {:.2} M |",
        t.ns_per_op(),
        1e3 / t.ns_per_op()
    );
}

/// Runs every micro-benchmark for about `min` each; returns a Markdown table.
pub fn run(min: Duration) -> BoxResult<String> {
    let mut s = String::new();
    let _ = writeln!(s, "| micro-benchmark | ns/op | ops/s |");
    let _ = writeln!(s, "|---|---:|---:|");

    // Serialization: the request argument tuple, typed -> bytes -> typed.
    for name in ["msgpack", "bincode", "hessian2"] {
        let ser = extension::get::<dyn Serialization>(name)?;
        for size in [16usize, 4096] {
            let data = vec![0x5au8; size];
            let t = time_sync(min, || {
                let v = Value::typed((ByteBuf::from(black_box(&data).clone()),));
                black_box(v.encode(&*ser)?);
                Ok(())
            })?;
            row(&mut s, &format!("{name} encode request ({size} B)"), &t);
            let payload = Value::typed((ByteBuf::from(data.clone()),)).encode(&*ser)?;
            let t = time_sync(min, || {
                let (b,): (ByteBuf,) = Value::Encoded(black_box(&payload).clone()).decode()?;
                black_box(b);
                Ok(())
            })?;
            row(&mut s, &format!("{name} decode request ({size} B)"), &t);
            let t = time_sync(min, || {
                let v = Value::typed((ByteBuf::from(black_box(&data).clone()),));
                let p = v.encode(&*ser)?;
                let (b,): (ByteBuf,) = Value::Encoded(p).decode()?;
                black_box(b);
                Ok(())
            })?;
            row(
                &mut s,
                &format!("{name} encode+decode request ({size} B)"),
                &t,
            );
        }
    }

    let url = Url::parse("dubbo://127.0.0.1:20880/bench.Echo")?;
    let key = ServiceKey::new("bench.Echo", None, None);
    let invocation = || Invocation::new(key.clone(), "echo", Value::Empty);

    // Filter chain: the consumer defaults around a no-op invoker, against the bare invoker.
    let bare: Arc<dyn Invoker> = Arc::new(Noop(url.clone()));
    let t = time_async(min, || {
        let bare = bare.clone();
        let inv = invocation();
        async move {
            black_box(bare.invoke(inv).await?);
            Ok(())
        }
    })?;
    row(&mut s, "bare no-op invoker", &t);
    let names: Vec<&str> = <dyn Filter>::loader()
        .activated(Side::Consumer, &url)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let chain = filter::build_chain(bare.clone(), Side::Consumer)?;
    let t = time_async(min, || {
        let chain = chain.clone();
        let inv = invocation();
        async move {
            black_box(chain.invoke(inv).await?);
            Ok(())
        }
    })?;
    row(
        &mut s,
        &format!("consumer filter chain [{}] + no-op", names.join(", ")),
        &t,
    );

    // Cluster: failfast + random over 100 no-op providers.
    let providers: Vec<Arc<dyn Invoker>> = (0..100u16)
        .map(|i| {
            Arc::new(Noop(url.with_port(20000 + i).with_param(keys::WEIGHT, 100)))
                as Arc<dyn Invoker>
        })
        .collect();
    let lb = extension::get::<dyn LoadBalance>("random")?;
    let pick_inv = invocation();
    let list = ProviderList::of(providers.iter().cloned());
    let ctx = CallContext::new(&url, &pick_inv);
    let t = time_sync(min, || {
        black_box(lb.select(black_box(&list), &ctx)?);
        Ok(())
    })?;
    row(&mut s, "random balancer select over 100 providers", &t);
    let directory = Arc::new(StaticDirectory::new(
        url.with_param(keys::LOADBALANCE, "random"),
        providers,
    ));
    let cluster = extension::get::<dyn Cluster>("failfast")?.join(directory)?;
    let t = time_async(min, || {
        let cluster = cluster.clone();
        let inv = invocation();
        async move {
            black_box(cluster.invoke(inv).await?);
            Ok(())
        }
    })?;
    row(
        &mut s,
        "failfast + random over 100 providers (pick + no-op call)",
        &t,
    );

    // The framework targets' own provider and call code, in process (injvm), per payload.
    for size in [16usize, 4096] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (echo, exporter) = rt.block_on(framework::in_process())?;
        let data = vec![0x5au8; size];
        let t = time_async(min, || {
            let echo = echo.clone();
            let data = &data;
            async move {
                let n = framework::call(&*echo, data).await?;
                if n != data.len() {
                    return Err(format!("echo returned {n} bytes for {}", data.len()).into());
                }
                Ok(())
            }
        })?;
        row(
            &mut s,
            &format!("injvm echo call through the rpc target's code ({size} B)"),
            &t,
        );
        rt.block_on(exporter.unexport());
    }
    Ok(s)
}
