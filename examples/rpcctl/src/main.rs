//! `rpcctl`: look into and steer a running system from the command line.
//!
//! ```text
//! rpcctl --registry local:// list
//! rpcctl --registry local:// describe org.example.Greeter
//! rpcctl --registry local:// invoke org.example.Greeter greet '["ann"]' --version 1.0.0
//! rpcctl --provider 127.0.0.1:20880 metrics        # per-method summary; --raw for Prometheus text
//! rpcctl --provider 127.0.0.1:20880 offline        # and online
//! rpcctl --registry local:// override org.example.Greeter timeout=3000 [--at HOST:PORT] [--dry-run] [--remove]
//! rpcctl --registry local:// weight org.example.Greeter 10.0.0.5:20880 0 [--dry-run] [--remove]
//! rpcctl --registry local:// route org.example.Greeter '=> host != 10.0.0.5' [--force] [--dry-run] [--remove]
//! rpcctl --registry local:// rules org.example.Greeter
//! rpcctl --registry local:// console --listen 127.0.0.1:8088 --admin-token SECRET
//! ```
//!
//! `override`, `weight` and `route` write rules into the registry that consumers apply at
//! once (Dubbo's `configurators` and `routers`); each is checked as consumers will check it
//! before it is written, `--dry-run` prints what would change (per provider, for overrides)
//! and writes nothing, `--remove` with the same arguments takes the rule away. `rules` and
//! `describe` show the rules in force.
//!
//! `metrics`, `offline` and `online` act on one provider: `--provider`, or the only one in
//! the registry (with several, rpcctl lists them and asks). `invoke` without `--version`
//! or `--group` uses the only ones the service is served under, and lists them if several.
//!
//! `invoke` is a generic call: the arguments are a JSON array (one element per parameter),
//! sent in the JSON serialization, so no Rust type is needed; the provider answers in JSON.
//! Exit status: 0 on success, 1 on an error of the tool or of the call, 2 when the service
//! answered with its own business error.

#![forbid(unsafe_code)]

mod summary;

// Every registry the README names works from the command line.
#[cfg(feature = "etcd")]
use rpc_registry_etcd as _;
#[cfg(feature = "nacos")]
use rpc_registry_nacos as _;
#[cfg(feature = "zookeeper")]
use rpc_registry_zookeeper as _;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rpc_core::bootstrap::admin::{AdminClient, ADMIN_INTERFACE};
use rpc_core::bootstrap::Consumer;
use rpc_core::config::keys;
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
    /// Registry URL (local://, zookeeper://host:port, etcd://host:port, nacos://host:port).
    #[arg(long, global = true, env = "RPC_REGISTRY")]
    registry: Option<String>,
    /// A provider address (host:port), to talk to one provider directly.
    #[arg(long, global = true)]
    provider: Option<String>,
    /// Call timeout in milliseconds.
    #[arg(long, global = true, default_value_t = 3000)]
    timeout: u64,
    /// The `admin.token` of the providers, for their admin service (describe, metrics,
    /// offline, online); without one, a provider takes offline/online from its own host only.
    #[arg(
        long,
        global = true,
        env = "RPC_PROVIDER_ADMIN_TOKEN",
        hide_env_values = true
    )]
    provider_admin_token: Option<String>,
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
    /// Summarize a provider's call metrics per method (calls, errors, p50/p99 latency).
    Metrics {
        /// Print the provider's raw Prometheus text instead.
        #[arg(long)]
        raw: bool,
    },
    /// Take a provider out of the registry without stopping it.
    Offline,
    /// Put a provider back into the registry.
    Online,
    /// Change settings of a service at run time (an override rule): for every consumer, or
    /// for one provider with --at.
    Override {
        /// Interface name.
        interface: String,
        /// Settings as KEY=VALUE: timeout=3000, retries=0, loadbalance=roundrobin,
        /// greet.timeout=500, disabled=true, ...
        #[arg(required = true)]
        settings: Vec<String>,
        /// Only for the provider at this address (host:port).
        #[arg(long)]
        at: Option<String>,
        /// Only for consumers of this application.
        #[arg(long)]
        application: Option<String>,
        #[command(flatten)]
        mode: Mode,
    },
    /// Give one provider a load-balancing weight (0 drains it; the default is 100).
    Weight {
        /// Interface name.
        interface: String,
        /// The provider (host:port).
        address: String,
        /// The weight.
        weight: u32,
        #[command(flatten)]
        mode: Mode,
    },
    /// Add a condition routing rule, e.g. '=> host != 10.0.0.5' or 'method = find* => host = 10.0.1.*'.
    Route {
        /// Interface name.
        interface: String,
        /// The rule: `when => then`.
        rule: String,
        /// Leave calls with no provider rather than ignore a rule that matches none.
        #[arg(long)]
        force: bool,
        /// Higher runs first.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        #[command(flatten)]
        mode: Mode,
    },
    /// Show the override and routing rules in force for a service.
    Rules {
        /// Interface name.
        interface: String,
    },
    /// Read, write or remove a rule document of the config center (Dubbo 2.7+ YAML), e.g.
    /// `org.example.Greeter:1.0.0:.configurators`, `shop.condition-router`.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Serve the web console: services, providers, consumers, rules and live metrics in a
    /// browser, with the actions of the other commands.
    Console {
        /// The address to listen on, and only it (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
        /// The token every change made through the console needs (at least 8 characters);
        /// without one the console is read-only.
        #[arg(long, env = "RPC_CONSOLE_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
}

/// What `rpcctl config` does.
#[derive(Subcommand)]
enum ConfigAction {
    /// Print a document and the rules it converts to.
    Get {
        /// The key: `{interface}:{version}:{group}.configurators`, `{application}.configurators`,
        /// `....condition-router` or `{provider application}.tag-router`.
        key: String,
    },
    /// Write a document (from FILE, or `-` for standard input) after checking that it
    /// converts to rules consumers accept.
    Put {
        /// The key.
        key: String,
        /// The YAML file, `-` for standard input.
        file: String,
        /// Print the rules it converts to and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a document (its rules stop applying).
    Rm {
        /// The key.
        key: String,
    },
}

/// How a rule command acts.
#[derive(clap::Args)]
struct Mode {
    /// Take the rule given by the same arguments away.
    #[arg(long)]
    remove: bool,
    /// Print what would change and write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Mode {
    fn change(&self, rule: Url) -> rules::Change {
        rules::Change {
            rule,
            remove: self.remove,
            dry_run: self.dry_run,
        }
    }
}

type Fallible<T> = Result<T, String>;

/// `println!` that never panics: a reader that went away (`rpcctl list | head -3`) ends the
/// program quietly, as other command-line tools do.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to standard output; see [`say!`].
fn emit(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rpcctl: cannot write the output: {e}");
        std::process::exit(1);
    }
}

mod console;
mod rules;

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
        Command::Metrics { raw } => {
            let admin = admin(&cli, &the_provider(&cli).await?).await?;
            let text = admin
                .metrics()
                .await
                .map_err(|e| format!("{e}\n  try: check the provider address"))??;
            if *raw {
                emit(format_args!("{text}"));
            } else {
                say!("{}", summary::render(&summary::parse(&text)));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Override {
            interface,
            settings,
            at,
            application,
            mode,
        } => {
            let settings = rules::settings(settings)?;
            let rule = rpc_core::registry::rules::override_rule(
                interface,
                at.as_deref(),
                application.as_deref(),
                &settings,
            )
            .map_err(|e| e.to_string())?;
            rules::apply(&cli, interface, mode.change(rule)).await
        }
        Command::Weight {
            interface,
            address,
            weight,
            mode,
        } => {
            let rule = rpc_core::registry::rules::weight_rule(interface, address, *weight)
                .map_err(|e| e.to_string())?;
            rules::apply(&cli, interface, mode.change(rule)).await
        }
        Command::Route {
            interface,
            rule,
            force,
            priority,
            mode,
        } => {
            let rule = rpc_core::registry::rules::route_rule(interface, rule, *force, *priority)
                .map_err(|e| e.to_string())?;
            rules::apply(&cli, interface, mode.change(rule)).await
        }
        Command::Rules { interface } => rules::list(&cli, interface).await,
        Command::Config { action } => rules::config(&cli, action).await,
        Command::Console {
            listen,
            admin_token,
        } => {
            console::serve(&cli, listen, admin_token.clone()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Offline | Command::Online => {
            let addr = the_provider(&cli).await?;
            let admin = admin(&cli, &addr).await?;
            let online = matches!(cli.command, Command::Online);
            let result = if online {
                admin.online().await
            } else {
                admin.offline().await
            };
            result.map_err(|e| format!("{e}\n  try: check the provider address"))??;
            say!(
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
        say!("no services registered");
    }
    for s in services {
        let providers = providers_of(&*reg, &s).await?;
        say!("{s}  ({} providers)", providers.len());
        for p in providers {
            say!(
                "  {}  version={} weight={} application={}",
                p.address(),
                p.param(keys::VERSION).unwrap_or("-"),
                p.param(keys::WEIGHT).unwrap_or("100"),
                p.param(keys::APPLICATION).unwrap_or("-"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A provider of `interface` to read its description from: `--provider`, else any provider
/// of `interface` in the registry (they all serve the same interface).
async fn one_provider(cli: &Cli, interface: &str) -> Fallible<String> {
    if let Some(p) = &cli.provider {
        return Ok(p.clone());
    }
    let reg = connect(cli).await?;
    match providers_of(&*reg, interface).await?.first() {
        Some(p) => Ok(p.address()),
        None => Err(format!(
            "no provider found for {interface}\n  try: rpcctl list, or give --provider host:port"
        )),
    }
}

/// The one provider a command that acts on a provider (metrics, offline, online) is about:
/// `--provider`, else the only provider address in the registry. With several it refuses and
/// lists them: acting on a guessed provider is worse than asking.
async fn the_provider(cli: &Cli) -> Fallible<String> {
    if let Some(p) = &cli.provider {
        return Ok(p.clone());
    }
    let reg = connect(cli).await?;
    let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for interface in reg.services().await.map_err(|e| e.to_string())? {
        for p in providers_of(&*reg, &interface).await? {
            found
                .entry(p.address())
                .or_default()
                .push(interface.clone());
        }
    }
    let mut addresses = found.keys();
    match (addresses.next(), addresses.next()) {
        (Some(only), None) => Ok(only.clone()),
        (None, _) => Err(
            "no provider is registered\n  try: rpcctl list, or give --provider host:port".into(),
        ),
        (Some(_), Some(_)) => {
            let list: Vec<String> = found
                .iter()
                .map(|(addr, services)| format!("  {addr}  ({})", services.join(", ")))
                .collect();
            Err(format!(
                "{} providers are registered; say which one:\n{}\n  try: --provider HOST:PORT",
                found.len(),
                list.join("\n")
            ))
        }
    }
}

/// The (group, version) pairs `interface` is served under: from the provider's own
/// description with `--provider`, else from the registry.
async fn service_keys_of(cli: &Cli, interface: &str) -> Fallible<Vec<(String, String)>> {
    let urls: Vec<Url> = if let Some(addr) = &cli.provider {
        let services = admin(cli, addr)
            .await?
            .services()
            .await
            .map_err(|e| format!("{e}\n  try: check the provider address"))?;
        services
            .iter()
            .filter(|s| s.interface == interface)
            .filter_map(|s| Url::parse(&s.url).ok())
            .collect()
    } else {
        providers_of(&*connect(cli).await?, interface).await?
    };
    let mut keys: Vec<(String, String)> = urls
        .iter()
        .map(|u| {
            let get = |k| u.param(k).unwrap_or("").to_string();
            (get(keys::GROUP), get(keys::VERSION))
        })
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// The group and version to call when the command line gave neither or one of them: the
/// only ones `interface` is served under; several choices are listed, not guessed.
async fn resolve_service_key(
    cli: &Cli,
    interface: &str,
    group: Option<&str>,
    version: Option<&str>,
) -> Fallible<(Option<String>, Option<String>)> {
    if version.is_some() && group.is_some() {
        return Ok((group.map(String::from), version.map(String::from)));
    }
    let keys: Vec<(String, String)> = service_keys_of(cli, interface)
        .await?
        .into_iter()
        .filter(|(g, v)| group.is_none_or(|x| x == g) && version.is_none_or(|x| x == v))
        .collect();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    match keys.as_slice() {
        // Nothing known: call as given, and let the call report what is missing.
        [] => Ok((group.map(String::from), version.map(String::from))),
        [(g, v)] => Ok((non_empty(g), non_empty(v))),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|(g, v)| {
                    let mut flags = Vec::new();
                    if !v.is_empty() {
                        flags.push(format!("--version {v}"));
                    }
                    if !g.is_empty() {
                        flags.push(format!("--group {g}"));
                    }
                    if flags.is_empty() {
                        flags.push("(no version or group)".into());
                    }
                    format!("  {}", flags.join(" "))
                })
                .collect();
            Err(format!(
                "{interface} is served under {} versions/groups; say which one:\n{}",
                many.len(),
                list.join("\n")
            ))
        }
    }
}

async fn admin(cli: &Cli, addr: &str) -> Fallible<AdminClient> {
    admin_at(addr, cli.timeout, cli.provider_admin_token.as_deref()).await
}

/// A client of the admin service of the provider at `addr`, calls cut off after `timeout_ms`
/// and carrying the provider's admin `token`, if one is given.
pub(crate) async fn admin_at(
    addr: &str,
    timeout_ms: u64,
    token: Option<&str>,
) -> Fallible<AdminClient> {
    // The token is the provider's, so it is written into the provider's URL (a reference's
    // own settings never override a provider's token).
    let provider = match token.filter(|t| !t.is_empty()) {
        Some(t) => format!(
            "dubbo://{addr}?{}={}",
            keys::TOKEN,
            rpc_core::url::encode_component(t)
        ),
        None => format!("dubbo://{addr}"),
    };
    Consumer::builder()
        .without_env()
        .no_registry()
        .reference_config(
            ADMIN_INTERFACE,
            ServiceConfig::default()
                .param(keys::URL, provider)
                .param(keys::TIMEOUT, timeout_ms)
                .param(keys::RETRIES, 0),
        )
        .build()
        .await
        .map_err(|e| e.to_string())?
        .reference::<AdminClient>()
        .await
        .map_err(|e| format!("cannot reach provider {addr}: {e}\n  try: check that it is running and the address is right"))
}

async fn describe(cli: &Cli, interface: &str) -> Fallible<ExitCode> {
    let addr = one_provider(cli, interface).await?;
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
    say!("{}  at {}", s.interface, s.url);
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
        if let Some(k) = &m.idempotency_key {
            notes.push(format!("idempotency key {k}"));
        }
        if let Some(k) = &m.ordered_by {
            notes.push(format!("ordered by {k}"));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join(", "))
        };
        say!("  {}{notes}", m.signature);
    }
    if cli.registry.is_some() {
        let reg = connect(cli).await?;
        rules::print_rules(cli, &*reg, interface).await?;
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
    let (group, version) = resolve_service_key(cli, interface, group, version).await?;
    let target = if let Some(p) = &cli.provider {
        Target::Provider(p)
    } else if let Some(r) = &cli.registry {
        Target::Registry(r)
    } else {
        return Err(
            "no registry or provider given\n  try: --registry local:// or --provider host:port"
                .into(),
        );
    };
    let call = GenericCall {
        interface,
        method,
        args,
        group: group.as_deref(),
        version: version.as_deref(),
        timeout_ms: cli.timeout,
    };
    let (json, biz) = call_json(target, &call).await?;
    if biz {
        say!("business error: {json}");
        return Ok(ExitCode::from(2));
    }
    say!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// Where a generic call goes.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// The providers a registry lists (URL).
    Registry(&'a str),
    /// One provider (host:port).
    Provider(&'a str),
}

/// A call with JSON arguments, as `invoke` and the console's test call make it.
pub(crate) struct GenericCall<'a> {
    pub(crate) interface: &'a str,
    pub(crate) method: &'a str,
    /// A JSON array, one element per parameter.
    pub(crate) args: &'a str,
    pub(crate) group: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
    pub(crate) timeout_ms: u64,
}

/// Makes a generic call (JSON arguments, JSON serialization) and returns the answer as JSON
/// text, with `true` when it is the service's business error; a failed call is an error
/// with a hint.
pub(crate) async fn call_json(
    target: Target<'_>,
    call: &GenericCall<'_>,
) -> Fallible<(String, bool)> {
    let parsed: serde_json::Value = serde_json::from_str(call.args)
        .map_err(|e| format!("arguments are not valid JSON ({e})\n  try: '[\"ann\", 3]'"))?;
    if !parsed.is_array() {
        return Err(format!(
            "arguments must be a JSON array, one element per parameter; got {parsed}\n  try: '[{parsed}]'"
        ));
    }
    let interface = call.interface;
    let mut settings = ServiceConfig::default()
        .param(keys::SERIALIZATION, "json")
        .param(keys::TIMEOUT, call.timeout_ms)
        .param(keys::CHECK, 1000)
        // A tool's one call is not a consumer of the service.
        .param(keys::REGISTER, false);
    if let Some(v) = call.version {
        settings = settings.param(keys::VERSION, v);
    }
    if let Some(g) = call.group {
        settings = settings.param(keys::GROUP, g);
    }
    let mut builder = Consumer::builder().without_env();
    match target {
        Target::Provider(p) => {
            settings = settings.param(keys::URL, format!("dubbo://{p}"));
            builder = builder.no_registry();
        }
        Target::Registry(r) => builder = builder.registry(r).map_err(|e| e.to_string())?,
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
    let invocation = Invocation::new(
        ServiceKey::new(interface, call.group, call.version),
        call.method.to_string(),
        Value::Encoded(Payload {
            serialization: ids::JSON,
            bytes: call.args.as_bytes().to_vec().into(),
        }),
    );
    let response = invoker.invoke(invocation).await.map_err(|e| {
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
    Ok((json, biz))
}
