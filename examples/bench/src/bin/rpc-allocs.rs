//! `rpc-allocs`: heap allocations per call of this framework's benchmark targets, consumer
//! and provider in one process, calls one after another on a single-threaded runtime.
//!
//! ```text
//! rpc-allocs [--calls N] [--payload B] [--only rpc|rpc-stack|rpc-service]
//! ```
//!
//! The global allocator here counts every allocation (`stats_alloc` around the system
//! allocator); `rpc-bench` keeps the plain system allocator so that every target is timed
//! alike. The counts include both sides' allocations, the payload's own buffers and the
//! socket path's, so they compare configurations, not absolute costs.

#![forbid(unsafe_code)]

use std::alloc::System;
use std::net::SocketAddr;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The same target code `rpc-bench` runs.
#[path = "../targets/framework.rs"]
#[allow(dead_code)]
mod framework;

/// Errors of this binary: anything, reported as text.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Calls made before counting (connections, caches and lazily built state settle).
const WARMUP_CALLS: u64 = 2_000;

fn main() {
    if let Err(e) = run() {
        eprintln!("rpc-allocs: {e}");
        std::process::exit(1);
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> BoxResult<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let raw = args
                .get(i + 1)
                .ok_or_else(|| format!("{name} needs a value"))?;
            raw.parse()
                .map_err(|_| format!("{name}: '{raw}' is not a valid number").into())
        }
    }
}

fn run() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = args
        .iter()
        .step_by(2)
        .find(|a| *a != "--calls" && *a != "--payload" && *a != "--only")
    {
        return Err(format!(
            "unknown option '{unknown}'; usage: rpc-allocs [--calls N] [--payload B] \
             [--only rpc|rpc-stack|rpc-service]"
        )
        .into());
    }
    let only: String = arg(&args, "--only", String::new())?;
    if !["", "rpc", "rpc-stack", "rpc-service"].contains(&only.as_str()) {
        return Err(format!("--only: '{only}' is not rpc, rpc-stack or rpc-service").into());
    }
    let runs = |target: &str| only.is_empty() || only == target;
    let calls: u64 = arg(&args, "--calls", 20_000)?;
    let payload = vec![7u8; arg(&args, "--payload", 16usize)?];
    if calls == 0 {
        return Err("--calls must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!("| target | allocations per call | bytes allocated per call |");
        println!("|---|---:|---:|");
        let (port, _exporter) = framework::start_server(0, None).await?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if runs("rpc") {
            let rpc = framework::connect(addr, None).await?;
            measure("rpc", calls, || framework::call(&*rpc, &payload)).await?;
        }
        if runs("rpc-stack") {
            let stack = framework::connect_stack(addr).await?;
            measure("rpc-stack", calls, || framework::call(&*stack, &payload)).await?;
        }
        if runs("rpc-service") {
            let (service_port, _provider) = framework::start_service(0).await?;
            let client =
                framework::connect_service(SocketAddr::from(([127, 0, 0, 1], service_port)))
                    .await?;
            measure("rpc-service", calls, || {
                framework::call_service(&client, &payload)
            })
            .await?;
        }
        Ok(())
    })
}

/// Warms `call` up, then prints the allocations of `calls` calls, per call.
async fn measure<F, Fut>(name: &str, calls: u64, mut call: F) -> BoxResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = BoxResult<usize>>,
{
    for _ in 0..WARMUP_CALLS {
        call().await?;
    }
    let region = Region::new(ALLOCATOR);
    for _ in 0..calls {
        call().await?;
    }
    let change = region.change();
    let per_call = |n: usize| n as f64 / calls as f64;
    println!(
        "| {name} | {:.1} | {:.0} |",
        per_call(change.allocations + change.reallocations),
        per_call(change.bytes_allocated)
    );
    Ok(())
}
