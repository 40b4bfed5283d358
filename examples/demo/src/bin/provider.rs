//! A provider of the example services (`Greeter`, `IdService`), until Ctrl-C or SIGTERM,
//! then a graceful shutdown (unregister, drain, close).
//!
//! ```text
//! cargo run -p rpc-examples --bin provider -- --registry local:// --port 20880 --name p1
//! cargo run -p rpc-examples --bin provider -- --registry zookeeper://127.0.0.1:2181 --weight 200
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rpc_core::bootstrap::Provider;
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_examples::idgen::{FileStore, SegmentAllocator, Snowflake};
use rpc_examples::{GreeterServer, IdServer, IdServiceServer, SignedGreeter};

#[derive(Parser)]
#[command(about = "Serve the example Greeter and IdService")]
struct Args {
    /// Registry URL (local://, zookeeper://host:port, etcd://host:port).
    #[arg(long, default_value = "local://")]
    registry: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 20880)]
    port: u16,
    /// Host to bind and announce.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Load-balancing weight of this provider.
    #[arg(long, default_value_t = 100)]
    weight: u32,
    /// Application name.
    #[arg(long, default_value = "example-provider")]
    application: String,
    /// Name shown in replies.
    #[arg(long, default_value = "provider")]
    name: String,
    /// Snowflake worker id (0-1023), unique per provider.
    #[arg(long, default_value_t = 1)]
    worker: u16,
    /// Directory of the shared segment store.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Optional TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provider: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = args
        .store
        .unwrap_or_else(|| std::env::temp_dir().join("rpc-example-segments"));
    let weighted = || ServiceConfig::default().param(keys::WEIGHT, args.weight);
    let mut builder = Provider::builder()
        .application(&args.application)
        .registry(&args.registry)?
        .host(&args.host)
        .protocol("dubbo", args.port);
    if let Some(path) = &args.config {
        builder = builder.config_file(path)?;
    }
    let running = builder
        .service_with(
            GreeterServer::new(SignedGreeter {
                name: args.name.clone(),
            }),
            weighted(),
        )
        .service_with(
            IdServiceServer::new(IdServer {
                name: args.name.clone(),
                snowflake: Snowflake::new(args.worker)?,
                segments: Arc::new(SegmentAllocator::new(
                    Arc::new(FileStore::new(store)?),
                    1000,
                )),
            }),
            weighted(),
        )
        .start()
        .await?;
    println!(
        "{} serving on {}:{} (registry {}); Ctrl-C to stop",
        args.name,
        args.host,
        running.port().unwrap_or(0),
        args.registry
    );
    running.wait_for_shutdown_signal().await;
    println!("{} stopped", args.name);
    Ok(())
}
