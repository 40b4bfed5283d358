//! A consumer of the example services: makes a bounded number of calls and prints who
//! answered each.
//!
//! ```text
//! cargo run -p rpc-examples --bin consumer -- --registry local:// --calls 10
//! cargo run -p rpc-examples --bin consumer -- --url dubbo://127.0.0.1:20880 --loadbalance roundrobin
//! ```

use std::time::Duration;

use clap::Parser;
use rpc_core::bootstrap::Consumer;
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut settings = ServiceConfig::default()
        .param("loadbalance", &args.loadbalance)
        .param("timeout", args.timeout);
    let mut builder = Consumer::builder().application(&args.application);
    if let Some(url) = &args.url {
        settings = settings.param("url", url);
        builder = builder.no_registry();
    } else {
        builder = builder.registry(&args.registry)?;
    }
    let consumer = builder
        .reference_config("org.example.Greeter", settings.clone())
        .reference_config("org.example.IdService", settings)
        .build()
        .await?;
    let greeter: GreeterClient = consumer.reference().await?;
    let ids: IdServiceClient = consumer.reference().await?;
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
