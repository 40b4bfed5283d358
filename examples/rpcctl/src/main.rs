//! `rpcctl`: look into and steer a running system from the command line.
//!
//! ```text
//! rpcctl --registry local:// list
//! rpcctl --registry local:// describe org.example.Greeter
//! rpcctl --registry local:// invoke org.example.Greeter greet '["ann"]' --version 1.0.0
//! rpcctl --provider 127.0.0.1:20880 metrics
//! rpcctl --provider 127.0.0.1:20880 offline        # and online
//! ```
//!
//! `invoke` is a generic call: the arguments are a JSON array (one element per parameter),
//! sent in the JSON serialization, so no Rust type is needed; the provider answers in JSON.
//! Exit status: 0 on success, 1 on an error of the tool or of the call, 2 when the service
//! answered with its own business error.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rpc_core::bootstrap::admin::{AdminClient, ADMIN_INTERFACE};
use rpc_core::bootstrap::Consumer;
use rpc_core::config::ServiceConfig;
use rpc_core::registry::{self, Registry};
use rpc_core::serialize::ids;
use rpc_core::{Invocation, Outcome, Payload, ServiceKey, Url, Value};

#[derive(Parser)]
#[command(
    name = "rpcctl",
    about = "Look into and steer services of the RPC framework"
)]
struct Cli {
    /// Registry URL (local://, zookeeper://host:port, etcd://host:port).
    #[arg(long, global = true, env = "RPC_REGISTRY")]
    registry: Option<String>,
    /// A provider address (host:port), to talk to one provider directly.
    #[arg(long, global = true)]
    provider: Option<String>,
    /// Call timeout in milliseconds.
    #[arg(long, global = true, default_value_t = 3000)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the services in the registry and their providers.
    List,
    /// Show a service's methods and signatures.
    Describe {
        /// Interface name, e.g. org.example.Greeter.
        interface: String,
    },
    /// Call a method with JSON arguments (a JSON array, one element per parameter).
    Invoke {
        /// Interface name.
        interface: String,
        /// Method name.
        method: String,
        /// Arguments as a JSON array, e.g. '["ann", 3]'. Default: no arguments.
        #[arg(default_value = "[]")]
        args: String,
        /// Service version.
        #[arg(long)]
        version: Option<String>,
        /// Service group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Print a provider's metrics (Prometheus text).
    Metrics,
    /// Take a provider out of the registry without stopping it.
    Offline,
    /// Put a provider back into the registry.
    Online,
}

type Fallible<T> = Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rpcctl: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("rpcctl: {msg}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Fallible<ExitCode> {
    match &cli.command {
        Command::List => list(&cli).await,
        Command::Describe { interface } => describe(&cli, interface).await,
        Command::Invoke {
            interface,
            method,
            args,
            version,
            group,
        } => {
            invoke(
                &cli,
                interface,
                method,
                args,
                version.as_deref(),
                group.as_deref(),
            )
            .await
        }
        Command::Metrics => {
            let admin = admin(&cli, &one_provider(&cli, None).await?).await?;
            let text = admin
                .metrics()
                .await
                .map_err(|e| format!("{e}\n  try: check the provider address"))??;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Offline | Command::Online => {
            let addr = one_provider(&cli, None).await?;
            let admin = admin(&cli, &addr).await?;
            let online = matches!(cli.command, Command::Online);
            let result = if online {
                admin.online().await
            } else {
                admin.offline().await
            };
            result.map_err(|e| format!("{e}\n  try: check the provider address"))??;
            println!(
                "{addr} is now {}",
                if online { "online" } else { "offline" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(cli: &Cli) -> Fallible<std::sync::Arc<dyn Registry>> {
    let text = cli.registry.as_deref().ok_or(
        "no registry given\n  try: --registry local:// (or zookeeper://host:port), or --provider host:port",
    )?;
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    registry::connect(&url)
        .await
        .map_err(|e| format!("cannot use registry {text}: {e}"))
}

async fn providers_of(reg: &dyn Registry, interface: &str) -> Fallible<Vec<Url>> {
    let probe = Url::new("consumer", "127.0.0.1", 0).with_path(interface);
    reg.lookup(&probe)
        .await
        .map_err(|e| format!("cannot look up {interface}: {e}"))
}

async fn list(cli: &Cli) -> Fallible<ExitCode> {
    let reg = connect(cli).await?;
    let services = reg.services().await.map_err(|e| e.to_string())?;
    if services.is_empty() {
        println!("no services registered");
    }
    for s in services {
        let providers = providers_of(&*reg, &s).await?;
        println!("{s}  ({} providers)", providers.len());
        for p in providers {
            println!(
                "  {}  version={} weight={} application={}",
                p.address(),
                p.param("version").unwrap_or("-"),
                p.param("weight").unwrap_or("100"),
                p.param("application").unwrap_or("-"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The provider to talk to: `--provider`, else the first provider of `interface` (or of any
/// service) in the registry.
async fn one_provider(cli: &Cli, interface: Option<&str>) -> Fallible<String> {
    if let Some(p) = &cli.provider {
        return Ok(p.clone());
    }
    let reg = connect(cli).await?;
    let interfaces = match interface {
        Some(i) => vec![i.to_string()],
        None => reg.services().await.map_err(|e| e.to_string())?,
    };
    for i in &interfaces {
        if let Some(p) = providers_of(&*reg, i).await?.first() {
            return Ok(p.address());
        }
    }
    Err(format!(
        "no provider found{}\n  try: rpcctl list, or give --provider host:port",
        interface.map(|i| format!(" for {i}")).unwrap_or_default()
    ))
}

async fn admin(cli: &Cli, addr: &str) -> Fallible<AdminClient> {
    Consumer::builder()
        .without_env()
        .no_registry()
        .reference_config(
            ADMIN_INTERFACE,
            ServiceConfig::default()
                .param("url", format!("dubbo://{addr}"))
                .param("timeout", cli.timeout)
                .param("retries", 0),
        )
        .build()
        .await
        .map_err(|e| e.to_string())?
        .reference::<AdminClient>()
        .await
        .map_err(|e| format!("cannot reach provider {addr}: {e}\n  try: check that it is running and the address is right"))
}

async fn describe(cli: &Cli, interface: &str) -> Fallible<ExitCode> {
    let addr = one_provider(cli, Some(interface)).await?;
    let admin = admin(cli, &addr).await?;
    let services = admin
        .services()
        .await
        .map_err(|e| format!("{e}\n  try: check the provider address"))?;
    let Some(s) = services.iter().find(|s| s.interface == interface) else {
        let known: Vec<&str> = services.iter().map(|s| s.interface.as_str()).collect();
        return Err(format!(
            "provider {addr} does not export {interface}; it exports: {}",
            known.join(", ")
        ));
    };
    println!("{}  at {}", s.interface, s.url);
    for m in &s.methods {
        let mut notes = Vec::new();
        if m.idempotent {
            notes.push("idempotent".to_string());
        }
        if m.oneway {
            notes.push("oneway".to_string());
        }
        if let Some(t) = m.timeout_ms {
            notes.push(format!("timeout {t} ms"));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join(", "))
        };
        println!("  {}{notes}", m.signature);
    }
    Ok(ExitCode::SUCCESS)
}

async fn invoke(
    cli: &Cli,
    interface: &str,
    method: &str,
    args: &str,
    version: Option<&str>,
    group: Option<&str>,
) -> Fallible<ExitCode> {
    let parsed: serde_json::Value = serde_json::from_str(args)
        .map_err(|e| format!("arguments are not valid JSON ({e})\n  try: '[\"ann\", 3]'"))?;
    if !parsed.is_array() {
        return Err(format!(
            "arguments must be a JSON array, one element per parameter; got {parsed}\n  try: '[{parsed}]'"
        ));
    }
    let mut settings = ServiceConfig::default()
        .param("serialization", "json")
        .param("timeout", cli.timeout)
        .param("check", 1000);
    if let Some(v) = version {
        settings = settings.param("version", v);
    }
    if let Some(g) = group {
        settings = settings.param("group", g);
    }
    let mut builder = Consumer::builder().without_env();
    if let Some(p) = &cli.provider {
        settings = settings.param("url", format!("dubbo://{p}"));
        builder = builder.no_registry();
    } else if let Some(r) = &cli.registry {
        builder = builder.registry(r).map_err(|e| e.to_string())?;
    } else {
        return Err(
            "no registry or provider given\n  try: --registry local:// or --provider host:port"
                .into(),
        );
    }
    let consumer = builder
        .reference_config(interface, settings)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let url = consumer
        .config()
        .reference_url(interface, &[])
        .with_path(interface);
    let invoker = consumer.refer_url(url).await.map_err(|e| e.to_string())?;
    let call = Invocation::new(
        ServiceKey::new(interface, group, version),
        method.to_string(),
        Value::Encoded(Payload {
            serialization: ids::JSON,
            bytes: args.as_bytes().to_vec().into(),
        }),
    );
    let response = invoker.invoke(call).await.map_err(|e| {
        let hint = match e.kind() {
            rpc_core::ErrorKind::MethodNotFound => "rpcctl describe INTERFACE lists the methods",
            rpc_core::ErrorKind::Codec => "check the argument types with rpcctl describe",
            rpc_core::ErrorKind::NoProvider => {
                "rpcctl list shows what is registered; check --version/--group"
            }
            _ => "check the provider is up (rpcctl list)",
        };
        format!("{e}\n  try: {hint}")
    })?;
    let (value, biz) = match response.outcome {
        Outcome::Value(v) => (v, false),
        Outcome::BizError(v) => (v, true),
    };
    let json = match value {
        Value::Empty => "null".to_string(),
        other => {
            let json = rpc_core::extension::get::<dyn rpc_core::serialize::Serialization>("json")
                .map_err(|e| e.to_string())?;
            let payload = other.encode(&*json).map_err(|e| e.to_string())?;
            String::from_utf8_lossy(&payload.bytes).into_owned()
        }
    };
    if biz {
        println!("business error: {json}");
        return Ok(ExitCode::from(2));
    }
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
