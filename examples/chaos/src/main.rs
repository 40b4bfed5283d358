//! `rpc-chaos`: what happens to calls when things go wrong, measured on real processes on
//! 127.0.0.1 and printed as tables (Markdown, so a run can be pasted into RELIABILITY.md).
//!
//! ```text
//! cargo run --release -p rpc-chaos -- run                     # every scenario, full length
//! cargo run --release -p rpc-chaos -- run --quick             # the short CI version
//! cargo run --release -p rpc-chaos -- run --only kill9,soak --registry zookeeper
//! ```
//!
//! Scenarios (each bounded in time; every process it starts is stopped by PID):
//! - `kill9`: 3 providers, 64 callers, one provider killed with SIGKILL a third of the way in;
//! - `registry`: the registry server (ZooKeeper) stopped under load, a consumer restarted
//!   while it is down, the server started again;
//! - `sigterm`: a provider stopped with SIGTERM under load (unregister, drain, close);
//! - `malformed`: a flood of random and structure-aware malformed frames at a live provider
//!   while a good client calls it;
//! - `slowloris`: hundreds of connections that never finish a frame, and connections past
//!   the `accepts` limit;
//! - `soak`: a long run at 64 callers, sampling the resident memory of both sides.
//!
//! The exit status is 1 when a goal was missed, 2 when the harness itself failed.

#![forbid(unsafe_code)]

mod frames;
mod ledger;
mod load;
mod procs;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use rpc_core::bootstrap::{Consumer, Provider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_registry_zookeeper as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use ledger::{JournaledLedger, LedgerClient, LedgerServer};
use load::Tally;
use procs::{Fallible, ProviderProc, Zookeeper};
use report::Table;

#[derive(Parser)]
#[command(
    name = "rpc-chaos",
    about = "Kill, stop and flood providers; report what happened to the calls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum RegistryKind {
    /// The embedded `local://` registry.
    Local,
    /// A ZooKeeper server the harness starts itself (Debian's `zookeeper` package).
    Zookeeper,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the scenarios and prints their tables.
    Run {
        /// Short runs for CI (seconds instead of minutes, fewer frames and connections).
        #[arg(long)]
        quick: bool,
        /// Registries to run the registry-backed scenarios on.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [RegistryKind::Local, RegistryKind::Zookeeper])]
        registry: Vec<RegistryKind>,
        /// Only these scenarios (comma separated): kill9, registry, sigterm, malformed,
        /// slowloris, soak.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Also write the tables to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Internal: one provider process, until its stdin closes or SIGTERM.
    Provider {
        #[arg(long)]
        registry: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        journal: PathBuf,
        /// Extra provider URL parameters, `key=value`.
        #[arg(long)]
        param: Vec<String>,
    },
    /// Internal: a consumer started fresh (as after a restart), making `calls` calls.
    Probe {
        #[arg(long)]
        registry: String,
        #[arg(long)]
        calls: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rpc-chaos: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Provider {
            registry,
            name,
            journal,
            param,
        } => rt
            .block_on(provider_role(registry, name, journal, param))
            .map(|()| 0),
        Command::Probe { registry, calls } => rt.block_on(probe_role(registry, calls)).map(|()| 0),
        Command::Run {
            quick,
            registry,
            only,
            out,
        } => rt.block_on(run(quick, registry, only, out)),
    };
    // A provider's stdin reader may still be blocked: do not wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(missed) => ExitCode::from(u8::from(missed > 0)),
        Err(e) => {
            eprintln!("rpc-chaos: {e}");
            ExitCode::from(2)
        }
    }
}

async fn provider_role(
    registry: String,
    name: String,
    journal: PathBuf,
    params: Vec<String>,
) -> Fallible<()> {
    let ledger = JournaledLedger::open(&name, &journal, Duration::from_millis(2))
        .map_err(|e| format!("journal {}: {e}", journal.display()))?;
    let mut builder = Provider::builder()
        .without_env()
        .application("chaos-provider")
        .registry(&registry)
        .map_err(|e| e.to_string())?
        .protocol("dubbo", 0)
        .param(keys::SHUTDOWN_WAIT, 500)
        .map_err(|e| e.to_string())?;
    for p in &params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--param {p}: expected key=value"))?;
        builder = builder.param(k, v).map_err(|e| e.to_string())?;
    }
    let running = builder
        .service(LedgerServer::new(ledger))
        .start()
        .await
        .map_err(|e| e.to_string())?;
    println!("ready {}", running.port().unwrap_or(0));
    // Stop on SIGTERM (graceful) or when the harness closes our stdin.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            sink.clear();
        }
    });
    tokio::select! {
        _ = rpc_core::bootstrap::shutdown_signal() => {}
        _ = stdin_closed => {}
    }
    running.shutdown().await;
    Ok(())
}

async fn probe_role(registry: String, calls: u32) -> Fallible<()> {
    let started = Instant::now();
    let client = consumer(&registry).await?;
    let (mut ok, mut first_ms) = (0u32, None);
    for i in 0..calls {
        if client.balance(u64::from(i)).await.is_ok() {
            ok += 1;
            first_ms.get_or_insert(started.elapsed().as_millis());
        }
    }
    println!(
        "ok {ok} failed {} first_ms {}",
        calls - ok,
        first_ms.map_or("-".to_string(), |m| m.to_string())
    );
    Ok(())
}

/// A consumer of the ledger through `registry` (its provider cache in the URL's
/// `cache.file`), calls time out after 1 s, failover at its defaults.
async fn consumer(registry: &str) -> Fallible<LedgerClient> {
    let builder = Consumer::builder()
        .without_env()
        .application("chaos-consumer")
        .registry(registry)
        .map_err(|e| e.to_string())?;
    ledger_client(builder, ServiceConfig::default().param(keys::CHECK, 5000)).await
}

/// A consumer calling one provider directly.
async fn direct(port: u16) -> Fallible<LedgerClient> {
    let builder = Consumer::builder().without_env().no_registry();
    let settings = ServiceConfig::default().param(keys::URL, format!("dubbo://127.0.0.1:{port}"));
    ledger_client(builder, settings).await
}

/// The ledger client of `builder`'s consumer, with `settings` and a 1 s call timeout.
async fn ledger_client(
    builder: rpc_core::bootstrap::ConsumerBuilder,
    settings: ServiceConfig,
) -> Fallible<LedgerClient> {
    builder
        .reference_config("chaos.Ledger", settings.param(keys::TIMEOUT, 1000))
        .build()
        .await
        .map_err(|e| e.to_string())?
        .reference::<LedgerClient>()
        .await
        .map_err(|e| e.to_string())
}

/// Lengths and sizes of one run.
struct Plan {
    quick: bool,
    load: Duration,
    outage: Duration,
    sigterm: Duration,
    frames: u64,
    slow_connections: usize,
    soak: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                load: Duration::from_secs(9),
                outage: Duration::from_secs(6),
                sigterm: Duration::from_secs(6),
                frames: 30_000,
                slow_connections: 100,
                soak: Duration::from_secs(20),
            }
        } else {
            Plan {
                quick,
                load: Duration::from_secs(60),
                outage: Duration::from_secs(60),
                sigterm: Duration::from_secs(20),
                frames: 1_000_000,
                slow_connections: 500,
                soak: Duration::from_secs(600),
            }
        }
    }
}

/// A scratch directory for one scenario, removed afterwards.
struct Work(PathBuf);

impl Work {
    fn new(tag: &str) -> Fallible<Self> {
        let dir = std::env::temp_dir().join(format!("rpc-chaos-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Work(dir))
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The registry of one scenario: its URL for providers and consumers (the consumer's cache
/// file inside the scratch directory) and the ZooKeeper server when there is one.
struct Registry {
    providers: String,
    consumers: String,
    zookeeper: Option<Zookeeper>,
}

impl Registry {
    fn start(kind: RegistryKind, work: &Path) -> Fallible<Self> {
        let cache = work.join("cache.json");
        match kind {
            RegistryKind::Local => {
                let url = format!(
                    "local://{}?lease=1000&poll=100",
                    work.join("registry").display()
                );
                Ok(Registry {
                    consumers: format!("{url}&cache.file={}", cache.display()),
                    providers: url,
                    zookeeper: None,
                })
            }
            RegistryKind::Zookeeper => {
                let zk = Zookeeper::start(work)?;
                let url = format!("zookeeper://{}?session=4000&timeout=2000", zk.address());
                Ok(Registry {
                    consumers: format!("{url}&cache.file={}", cache.display()),
                    providers: url,
                    zookeeper: Some(zk),
                })
            }
        }
    }
}

async fn run(
    quick: bool,
    registries: Vec<RegistryKind>,
    only: Vec<String>,
    out: Option<PathBuf>,
) -> Fallible<usize> {
    let plan = Plan::new(quick);
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let zk_ok = Zookeeper::available();
    let mut tables = Vec::new();
    let mut missed = 0;
    let mut push = |t: Table| {
        println!("{}", t.render());
        missed += t.missed();
        tables.push(t);
    };
    for &kind in &registries {
        if kind == RegistryKind::Zookeeper && !zk_ok {
            let msg = "ZooKeeper is not installed (/usr/share/java/zookeeper.jar and java); \
                       run scripts/install-deps.sh";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                return Err(msg.to_string());
            }
            eprintln!("rpc-chaos: SKIPPED the ZooKeeper scenarios: {msg}");
            continue;
        }
        if wanted("kill9") {
            push(kill9(&plan, kind).await?);
        }
        if wanted("sigterm") {
            push(sigterm(&plan, kind).await?);
        }
        if wanted("registry") && kind == RegistryKind::Zookeeper {
            push(registry_outage(&plan).await?);
        }
    }
    if wanted("malformed") {
        push(malformed(&plan).await?);
    }
    if wanted("slowloris") {
        push(slowloris(&plan).await?);
    }
    if wanted("soak") {
        push(soak(&plan).await?);
    }
    let goals: usize = tables
        .iter()
        .map(|t| t.rows.iter().filter(|r| r.met.is_some()).count())
        .sum();
    println!("{} goals, {} met, {missed} missed", goals, goals - missed);
    if let Some(path) = out {
        let text: Vec<String> = tables.iter().map(Table::render).collect();
        std::fs::write(&path, text.join("\n")).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(missed)
}

fn start_providers(
    n: usize,
    registry: &str,
    work: &Path,
    params: &[(&str, String)],
) -> Fallible<Vec<ProviderProc>> {
    (1..=n)
        .map(|i| ProviderProc::start(&format!("p{i}"), registry, work, params))
        .collect()
}

async fn ready_consumer(reg: &Registry, providers: &[ProviderProc]) -> Fallible<LedgerClient> {
    let client = consumer(&reg.consumers).await?;
    let names: Vec<String> = providers.iter().map(|p| p.name.clone()).collect();
    if !load::wait_for_all(&client, &names, Duration::from_secs(15)).await {
        return Err(format!(
            "the consumer did not see all of {names:?} within 15 s"
        ));
    }
    Ok(client)
}

fn kind_name(kind: RegistryKind) -> &'static str {
    match kind {
        RegistryKind::Local => "local",
        RegistryKind::Zookeeper => "zookeeper",
    }
}

const CALLERS: usize = 64;

/// Three providers, a consumer that has seen them all, and [`CALLERS`] callers running for
/// `length` — the set-up of the kill, stop and registry scenarios.
struct Fleet {
    // Field order is drop order: processes first, then the registry, then the directory.
    providers: Vec<ProviderProc>,
    reg: Registry,
    tally: Arc<Tally>,
    load: tokio::task::JoinHandle<()>,
    _work: Work,
}

impl Fleet {
    async fn under_load(tag: &str, kind: RegistryKind, length: Duration) -> Fallible<Fleet> {
        let work = Work::new(&format!("{tag}-{}", kind_name(kind)))?;
        let reg = Registry::start(kind, &work.0)?;
        let providers = start_providers(3, &reg.providers, &work.0, &[])?;
        let client = ready_consumer(&reg, &providers).await?;
        let tally = Arc::new(Tally::default());
        let load = tokio::spawn(load::run(
            client,
            CALLERS,
            Instant::now() + length,
            tally.clone(),
        ));
        Ok(Fleet {
            providers,
            reg,
            tally,
            load,
            _work: work,
        })
    }

    /// Waits for the callers to finish.
    async fn finish(&mut self) -> Fallible<()> {
        (&mut self.load).await.map_err(|e| e.to_string())
    }
}

async fn kill9(plan: &Plan, kind: RegistryKind) -> Fallible<Table> {
    let mut fleet = Fleet::under_load("kill9", kind, plan.load).await?;
    tokio::time::sleep(plan.load / 3).await;
    fleet.providers[1].kill9();
    fleet.finish().await?;
    let (providers, tally) = (&fleet.providers, &fleet.tally);

    let journals: Vec<PathBuf> = providers.iter().map(|p| p.journal.clone()).collect();
    let executed = ledger::executions(&journals);
    let dead = ledger::executions(std::slice::from_ref(&providers[1].journal));
    let failed = tally.charges_failed();
    let failed_executed = failed.iter().filter(|o| executed.contains_key(o)).count();
    let failed_on_dead = failed.iter().filter(|o| dead.contains_key(o)).count();
    let duplicated = executed.values().filter(|n| **n > 1).count();
    let idem_failed = tally.idempotent_failed.load(Ordering::Relaxed);

    let mut t = Table::new(format!(
        "kill9 ({} registry): 3 providers, {CALLERS} callers for {} s, p2 killed with SIGKILL at {} s",
        kind_name(kind),
        plan.load.as_secs(),
        (plan.load / 3).as_secs()
    ));
    t.info("calls", tally.calls.load(Ordering::Relaxed));
    t.goal(
        "failed idempotent calls (balance)",
        idem_failed,
        "0",
        idem_failed == 0,
    );
    t.goal(
        "failed non-idempotent calls (charge)",
        failed.len(),
        &format!("only those in flight on p2 (at most {CALLERS})"),
        failed.len() <= CALLERS,
    );
    t.info(
        "  of them executed on p2 before it died (the caller cannot know)",
        failed_on_dead,
    );
    t.info("  of them executed anywhere", failed_executed);
    t.goal("charges executed twice", duplicated, "0", duplicated == 0);
    t.notes = tally.error_summary();
    Ok(t)
}

async fn sigterm(plan: &Plan, kind: RegistryKind) -> Fallible<Table> {
    let mut fleet = Fleet::under_load("sigterm", kind, plan.sigterm).await?;
    tokio::time::sleep(plan.sigterm / 2).await;
    let stop = fleet.providers[1].terminate(Duration::from_secs(10));
    fleet.finish().await?;
    let tally = &fleet.tally;
    let failed = tally.total_failed();
    let mut t = Table::new(format!(
        "sigterm ({} registry): 3 providers, {CALLERS} callers for {} s, p2 sent SIGTERM at {} s",
        kind_name(kind),
        plan.sigterm.as_secs(),
        (plan.sigterm / 2).as_secs()
    ));
    t.info("calls", tally.calls.load(Ordering::Relaxed));
    t.goal("failed calls", failed, "0", failed == 0);
    t.goal(
        "p2 stopped by itself (unregister, drain, close)",
        stop.as_ref().map_or_else(|e| e.clone(), |()| "yes".into()),
        "yes",
        stop.is_ok(),
    );
    t.notes = tally.error_summary();
    Ok(t)
}

async fn registry_outage(plan: &Plan) -> Fallible<Table> {
    let margin = Duration::from_secs(3);
    let mut fleet = Fleet::under_load(
        "registry",
        RegistryKind::Zookeeper,
        plan.outage + margin * 2,
    )
    .await?;
    tokio::time::sleep(margin).await;
    fleet.reg.zookeeper.as_mut().ok_or("no ZooKeeper")?.stop();
    tokio::time::sleep(plan.outage / 2).await;
    // A consumer (re)started while the registry is down: it has only the disk cache.
    let probe = probe(&fleet.reg.consumers, 20).await?;
    tokio::time::sleep(plan.outage / 2).await;
    fleet
        .reg
        .zookeeper
        .as_mut()
        .ok_or("no ZooKeeper")?
        .resume()?;
    fleet.finish().await?;
    let tally = &fleet.tally;
    let failed = tally.total_failed();
    let mut t = Table::new(format!(
        "registry (zookeeper): 3 providers, {CALLERS} callers; ZooKeeper stopped for {} s under load, then started again",
        plan.outage.as_secs()
    ));
    t.info("calls", tally.calls.load(Ordering::Relaxed));
    t.goal("failed calls", failed, "0", failed == 0);
    t.goal(
        "consumer started during the outage: calls answered",
        format!("{}/20", probe.ok),
        "20/20 (from the disk cache)",
        probe.ok == 20,
    );
    t.goal(
        "  its first answer after start",
        probe.first_ms.map_or("never".into(), |m| format!("{m} ms")),
        "< 2000 ms (no wait for the registry)",
        probe.first_ms.is_some_and(|m| m < 2000),
    );
    t.notes = tally.error_summary();
    Ok(t)
}

struct ProbeResult {
    ok: u32,
    first_ms: Option<u64>,
}

async fn probe(registry: &str, calls: u32) -> Fallible<ProbeResult> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new(exe)
        .args([
            "probe",
            "--registry",
            registry,
            "--calls",
            &calls.to_string(),
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .map_err(|_| "the probe consumer did not finish within 30 s".to_string())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let field = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Ok(ProbeResult {
        ok: field("ok").and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
        first_ms: field("first_ms"),
    })
}

async fn malformed(plan: &Plan) -> Fallible<Table> {
    let work = Work::new("malformed")?;
    let reg = Registry::start(RegistryKind::Local, &work.0)?;
    let mut providers = start_providers(
        1,
        &reg.providers,
        &work.0,
        &[(keys::FRAME_TIMEOUT, "1000".into())],
    )?;
    let port = providers[0].port;
    let client = direct(port).await?;
    let rss_before = providers[0].rss_kib();
    let stats = Arc::new(frames::FuzzStats::default());
    let started = Instant::now();
    let flood = tokio::spawn(frames::flood(port, plan.frames, 4, stats.clone()));
    // A good client calls meanwhile.
    let tally = Arc::new(Tally::default());
    let good = {
        let tally = tally.clone();
        tokio::spawn(async move {
            while !flood.is_finished() {
                load::run(
                    client.clone(),
                    4,
                    Instant::now() + Duration::from_millis(500),
                    tally.clone(),
                )
                .await;
            }
        })
    };
    good.await.map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let alive = providers[0].alive();
    let rss_after = providers[0].rss_kib();
    let failed = tally.total_failed();
    let mut t = Table::new(format!(
        "malformed: {} random and structure-aware malformed frames over 4 connections at one provider, a good client calling meanwhile",
        plan.frames
    ));
    t.info("frames sent", stats.sent.load(Ordering::Relaxed));
    t.info("time", format!("{:.1} s", took.as_secs_f64()));
    t.info(
        "connections ended by a piece no stream survives (reopened)",
        stats.closed_by_provider.load(Ordering::Relaxed),
    );
    t.info(
        "answer bytes read back",
        stats.answered_bytes.load(Ordering::Relaxed),
    );
    t.goal(
        "provider crashed",
        if alive { "no" } else { "yes" },
        "no",
        alive,
    );
    t.info("good calls", tally.calls.load(Ordering::Relaxed));
    t.goal("failed good calls", failed, "0", failed == 0);
    t.info(
        "provider RSS before / after",
        format!(
            "{} / {} KiB",
            rss_before.unwrap_or(0),
            rss_after.unwrap_or(0)
        ),
    );
    t.notes = tally.error_summary();
    Ok(t)
}

async fn slowloris(plan: &Plan) -> Fallible<Table> {
    let work = Work::new("slowloris")?;
    let reg = Registry::start(RegistryKind::Local, &work.0)?;
    let frame_timeout = Duration::from_millis(2000);
    let n = plan.slow_connections;
    let providers = start_providers(
        1,
        &reg.providers,
        &work.0,
        &[
            (keys::FRAME_TIMEOUT, frame_timeout.as_millis().to_string()),
            (keys::ACCEPTS, (n + 16).to_string()),
        ],
    )?;
    let port = providers[0].port;
    let client = direct(port).await?;
    let tally = Arc::new(Tally::default());
    let good = tokio::spawn(load::run(
        client.clone(),
        4,
        Instant::now() + frame_timeout + Duration::from_secs(2),
        tally.clone(),
    ));
    // Each connection sends five bytes of a header and nothing more.
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()?;
            s.write_all(&[0xda, 0xbb, 0xc2, 0, 0]).await.ok()?;
            let mut b = [0u8; 16];
            let limit = Duration::from_secs(30);
            match tokio::time::timeout(limit, s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => Some(started.elapsed()),
                _ => None,
            }
        });
    }
    let mut closed = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(at)) = r {
            closed.push(at);
        }
    }
    good.await.map_err(|e| e.to_string())?;
    let latest = closed.iter().max().copied().unwrap_or_default();
    let in_time = closed
        .iter()
        .filter(|d| **d <= frame_timeout + Duration::from_secs(2))
        .count();
    let failed = tally.total_failed();

    // Past `accepts`: a provider allowing 32 connections, the good client holding one.
    let limited = start_providers(1, &reg.providers, &work.0, &[(keys::ACCEPTS, "32".into())])?;
    let lport = limited[0].port;
    let lclient = direct(lport).await?;
    let ltally = Arc::new(Tally::default());
    let lgood = tokio::spawn(load::run(
        lclient,
        4,
        Instant::now() + Duration::from_secs(2),
        ltally.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // All at once, while the good client keeps its connection (its slot) and calls.
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..48 {
        attempts.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", lport))
                .await
                .ok()?;
            let mut b = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(500), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => None,
                _ => Some(s),
            }
        });
    }
    let mut held = Vec::new();
    while let Some(r) = attempts.join_next().await {
        if let Ok(Some(s)) = r {
            held.push(s);
        }
    }
    let refused = 48 - held.len();
    lgood.await.map_err(|e| e.to_string())?;
    let lfailed = ltally.total_failed();
    let held_count = held.len();
    drop(held);

    let mut t = Table::new(format!(
        "slowloris: {n} connections each sending 5 bytes of a header, frame.timeout {} ms; then 48 connections at a provider with accepts=32",
        frame_timeout.as_millis()
    ));
    t.goal(
        "slow connections closed by the provider",
        format!("{}/{n}", closed.len()),
        &format!("{n}/{n}"),
        closed.len() == n,
    );
    t.goal(
        "  closed within frame.timeout + 2 s",
        format!("{in_time}/{n} (last after {:.1} s)", latest.as_secs_f64()),
        &format!("{n}/{n}"),
        in_time == n,
    );
    t.goal("failed good calls meanwhile", failed, "0", failed == 0);
    t.info("  connections held open", held_count);
    t.goal(
        "connections past accepts refused",
        refused,
        "17 (48 - 31 free slots)",
        refused == 17,
    );
    t.goal(
        "failed good calls on the limited provider",
        lfailed,
        "0",
        lfailed == 0,
    );
    t.notes = tally.error_summary();
    t.notes.extend(ltally.error_summary());
    Ok(t)
}

async fn soak(plan: &Plan) -> Fallible<Table> {
    let work = Work::new("soak")?;
    let reg = Registry::start(RegistryKind::Local, &work.0)?;
    let providers = start_providers(1, &reg.providers, &work.0, &[])?;
    let client = direct(providers[0].port).await?;
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + plan.soak;
    let load = tokio::spawn(load::run(client, CALLERS, until, tally.clone()));
    let every = plan.soak / 40;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(every).await;
        let me = procs::rss_kib(std::process::id()).unwrap_or(0);
        let provider = providers[0].rss_kib().unwrap_or(0);
        samples.push((me, provider));
    }
    load.await.map_err(|e| e.to_string())?;
    // Warm-up: the first quarter of the run (half of a quick run) is not judged.
    let skip = if plan.quick {
        samples.len() / 2
    } else {
        samples.len() / 4
    };
    let judged = &samples[skip.min(samples.len())..];
    let spread = |pick: fn(&(u64, u64)) -> u64| {
        let values: Vec<u64> = judged.iter().map(pick).filter(|v| *v > 0).collect();
        let (lo, hi) = (
            values.iter().min().copied().unwrap_or(0),
            values.iter().max().copied().unwrap_or(0),
        );
        (
            lo,
            hi,
            if lo == 0 {
                f64::INFINITY
            } else {
                hi as f64 / lo as f64
            },
        )
    };
    let (clo, chi, cgrowth) = spread(|s| s.0);
    let (plo, phi, pgrowth) = spread(|s| s.1);
    let calls = tally.calls.load(Ordering::Relaxed);
    let failed = tally.total_failed();
    let mut t = Table::new(format!(
        "soak: one provider, {CALLERS} callers for {} s, resident memory sampled every {} ms",
        plan.soak.as_secs(),
        every.as_millis()
    ));
    t.info("calls", calls);
    t.info(
        "calls/s",
        format!("{:.0}", calls as f64 / plan.soak.as_secs_f64()),
    );
    t.goal("failed calls", failed, "0", failed == 0);
    t.goal(
        "consumer RSS after warm-up, min / max",
        format!("{clo} / {chi} KiB (x{cgrowth:.2})"),
        "flat within 10%",
        cgrowth <= 1.10,
    );
    t.goal(
        "provider RSS after warm-up, min / max",
        format!("{plo} / {phi} KiB (x{pgrowth:.2})"),
        "flat within 10%",
        pgrowth <= 1.10,
    );
    t.notes = tally.error_summary();
    Ok(t)
}
