//! A consumer of the example services: makes a bounded number of calls and prints who
//! answered each.
//!
//! ```text
//! cargo run -p rpc-examples --bin consumer -- --registry local:// --calls 10
//! cargo run -p rpc-examples --bin consumer -- --url dubbo://127.0.0.1:20880 --loadbalance roundrobin
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rpc_core::bootstrap::Consumer;
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_examples::{GreeterClient, IdServiceClient};

#[derive(Parser)]
#[command(about = "Call the example Greeter and IdService")]
struct Args {
    /// Registry URL (local://, zookeeper://host:port, etcd://host:port).
    #[arg(long, default_value = "local://")]
    registry: String,
    /// Call one provider directly instead (dubbo://host:port).
    #[arg(long)]
    url: Option<String>,
    /// Application name.
    #[arg(long, default_value = "example-consumer")]
    application: String,
    /// Load balancer.
    #[arg(long, default_value = "random")]
    loadbalance: String,
    /// Calls to make.
    #[arg(long, default_value_t = 10)]
    calls: u32,
    /// Pause between calls, in milliseconds.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// Call timeout, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout: u64,
    /// How long a reference waits for its first providers from the registry, in
    /// milliseconds (the `check` key; 0: do not wait).
    #[arg(long, default_value_t = 3000)]
    check: u64,
    /// Optional TOML configuration file (see the README for its layout).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consumer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = ServiceConfig::default()
        .param(keys::LOADBALANCE, &args.loadbalance)
        .param(keys::TIMEOUT, args.timeout)
        .param(keys::CHECK, args.check);
    let mut builder = Consumer::builder().application(&args.application);
    if let Some(path) = &args.config {
        builder = builder.config_file(path)?;
    }
    if let Some(url) = &args.url {
        settings = settings.param(keys::URL, url);
        builder = builder.no_registry();
    } else {
        builder = builder.registry(&args.registry)?;
    }
    let consumer = builder
        .reference_config("org.example.Greeter", settings.clone())
        .reference_config("org.example.IdService", settings)
        .build()
        .await?;
    // Both references wait for their providers at the same time, not one after the other.
    let (greeter, ids) = tokio::join!(
        consumer.reference::<GreeterClient>(),
        consumer.reference::<IdServiceClient>()
    );
    let (greeter, ids) = (greeter?, ids?);
    let mut failed = 0;
    for i in 1..=args.calls {
        match greeter.greet(format!("caller-{i}")).await {
            Ok(Ok(reply)) => println!("{i:>4}  {reply}"),
            Ok(Err(e)) => println!("{i:>4}  business error: {e}"),
            Err(e) => {
                failed += 1;
                println!("{i:>4}  failed: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    match ids.snowflake().await {
        Ok(Ok(id)) => println!("a snowflake id: {id}"),
        Ok(Err(e)) => println!("id service refused: {e}"),
        Err(e) => println!("id service failed: {e}"),
    }
    if failed > 0 {
        return Err(format!("{failed} of {} calls failed", args.calls).into());
    }
    Ok(())
}
