//! The newcomer's demo: three providers and a consumer on the embedded registry, on this
//! machine only, with nothing to install. It shows which provider serves each call, routes id
//! requests by tag with consistent hashing, then kills one provider in the middle of a load
//! and shows that every call still succeeded. It finishes by itself.
//!
//! Run: `cargo run -p rpc-examples --bin demo`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rpc_core::bootstrap::{Consumer, Provider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_examples::idgen::{FileStore, SegmentAllocator, Snowflake};
use rpc_examples::{
    GreeterClient, GreeterServer, IdServer, IdServiceClient, IdServiceServer, SignedGreeter,
};

#[derive(Parser)]
#[command(
    about = "Providers and a consumer on the embedded registry, with a provider killed mid-load"
)]
struct Args {
    #[command(subcommand)]
    role: Option<Role>,
    /// How many providers to start.
    #[arg(long, default_value_t = 3)]
    providers: u16,
    /// Calls made during the failover phase.
    #[arg(long, default_value_t = 300)]
    calls: u32,
}

#[derive(Subcommand)]
enum Role {
    /// Internal: run one provider until stdin closes.
    Provider {
        #[arg(long)]
        name: String,
        #[arg(long)]
        worker: u16,
        #[arg(long)]
        registry: String,
        #[arg(long)]
        store: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.role {
        Some(Role::Provider {
            name,
            worker,
            registry,
            store,
        }) => rt.block_on(run_provider(name, worker, registry, store)),
        None => rt.block_on(run_demo(args.providers, args.calls)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The demo's scratch directory (registry, segment store, provider-list cache), removed
/// when the demo ends, however it ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

async fn run_provider(
    name: String,
    worker: u16,
    registry: String,
    store: PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let segments = SegmentAllocator::new(std::sync::Arc::new(FileStore::new(store)?), 100);
    let running = Provider::builder()
        .application("demo-provider")
        .registry(&registry)?
        .protocol("dubbo", 0)
        .param(keys::SHUTDOWN_WAIT, 300)?
        .service(GreeterServer::new(SignedGreeter { name: name.clone() }))
        .service(IdServiceServer::new(IdServer {
            name: name.clone(),
            snowflake: Snowflake::new(worker)?,
            segments: std::sync::Arc::new(segments),
        }))
        .start()
        .await?;
    println!("ready {}", running.port().unwrap_or(0));
    std::io::stdout().flush()?;
    // Stop when the demo closes our stdin (or exits), whichever comes first.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            sink.clear();
        }
    })
    .await?;
    running.shutdown().await;
    Ok(())
}

struct Child_ {
    name: String,
    child: Child,
    port: u16,
}

fn spawn_provider(
    name: &str,
    worker: u16,
    registry: &str,
    store: &Path,
) -> Result<Child_, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "provider",
            "--name",
            name,
            "--worker",
            &worker.to_string(),
            "--registry",
            registry,
        ])
        .arg("--store")
        .arg(store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("provider {name} did not start: {line:?}"))?;
    Ok(Child_ {
        name: name.to_string(),
        child,
        port,
    })
}

fn step(title: &str) {
    println!("\n== {title}");
}

async fn run_demo(providers: u16, calls: u32) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let work = WorkDir(std::env::temp_dir().join(format!("rpc-demo-{}", std::process::id())));
    let work = &work.0;
    let registry = format!(
        "local://{}?lease=1000&poll=100",
        work.join("registry").display()
    );
    // The consumer's provider-list cache lives in the scratch directory too, so the demo
    // leaves nothing behind in the home directory.
    let consumer_registry = format!(
        "{registry}&cache.file={}",
        work.join("cache.json").display()
    );
    let store = work.join("segments");
    println!(
        "Registry: the embedded one, a shared directory under {}",
        work.display()
    );

    step(&format!("Starting {providers} provider processes"));
    let mut children = Vec::new();
    for i in 1..=providers {
        let c = spawn_provider(&format!("provider-{i}"), i, &registry, &store)?;
        println!(
            "  {} (pid {}) listening on 127.0.0.1:{}",
            c.name,
            c.child.id(),
            c.port
        );
        children.push(c);
    }

    let consumer = Consumer::builder()
        .application("demo-consumer")
        .registry(&consumer_registry)?
        .reference_config(
            "org.example.Greeter",
            ServiceConfig::default()
                .param(keys::TIMEOUT, 1000)
                .param(keys::RETRIES, 2),
        )
        .reference_config(
            "org.example.IdService",
            ServiceConfig::default()
                .method_param("segment", keys::LOADBALANCE, "consistenthash")
                .method_param("segment", keys::HASH_ARGUMENTS, "0"),
        )
        .build()
        .await?;
    let greeter: GreeterClient = consumer.reference().await?;
    let ids: IdServiceClient = consumer.reference().await?;
    wait_until_all_seen(&greeter, providers).await;

    step("Ten calls, balanced at random over the providers");
    for i in 1..=10 {
        let reply = greeter.greet(format!("caller-{i}")).await??;
        println!("  greet(caller-{i}) -> {reply}");
    }

    step("Distributed ids: snowflake, and segments routed by tag (consistent hashing)");
    for _ in 0..3 {
        let id = ids.snowflake().await??;
        let parts = rpc_examples::idgen::parts(id);
        println!(
            "  snowflake() -> {id} (worker {}, sequence {})",
            parts.worker, parts.sequence
        );
    }
    for tag in ["orders", "users", "invoices"] {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(ids.segment(tag.to_string()).await??);
        }
        println!("  segment({tag}) x3 -> {got:?} (one provider per tag; blocks of 100 from a shared store)");
    }

    let victim = children.len() / 2;
    step(&format!(
        "{calls} calls while {} is killed (SIGKILL) a third of the way in",
        children[victim].name
    ));
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    let mut lost = 0u32;
    for i in 0..calls {
        if i == calls / 3 {
            children[victim].child.kill()?;
            children[victim].child.wait()?;
            println!("  [call {i}] killed {} (pid gone)", children[victim].name);
        }
        match greeter.greet(format!("load-{i}")).await {
            Ok(Ok(reply)) => {
                let who = reply.rsplit("from ").next().unwrap_or("?").to_string();
                *served.entry(who).or_default() += 1;
            }
            Ok(Err(e)) => {
                lost += 1;
                println!("  [call {i}] business error: {e}");
            }
            Err(e) => {
                lost += 1;
                println!("  [call {i}] FAILED: {e}");
            }
        }
        if i % 50 == 49 {
            println!("  ... {} calls done", i + 1);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (who, n) in &served {
        println!("  {who} served {n} calls");
    }
    println!("  lost calls: {lost}");

    step("Stopping the remaining providers gracefully");
    for (i, c) in children.iter_mut().enumerate() {
        if i == victim {
            continue;
        }
        drop(c.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.child.try_wait()?.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if c.child.try_wait()?.is_none() {
            c.child.kill()?;
            c.child.wait()?;
        }
        println!("  {} stopped", c.name);
    }
    println!(
        "\nDemo finished in {:.1} s: {} calls during failover, {} lost.",
        started.elapsed().as_secs_f64(),
        calls,
        lost
    );
    if lost > 0 {
        return Err(format!("{lost} calls were lost").into());
    }
    Ok(())
}

/// Waits (bounded) until the consumer has seen every provider, so the first calls spread.
async fn wait_until_all_seen(greeter: &GreeterClient, providers: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < usize::from(providers) && Instant::now() < deadline {
        if let Ok(Ok(reply)) = greeter.greet("probe".into()).await {
            seen.insert(reply.rsplit("from ").next().unwrap_or("?").to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
