//! `rpc-bench`: measures this RPC framework side by side with a raw tokio echo, tarpc and
//! tonic, each server and client in its own process, plus per-layer micro-benchmarks.
//!
//! ```text
//! rpc-bench run [--quick] [--pin] [--warmup S] [--measure S] [--targets raw,tarpc,...]
//!               [--concurrency 1,64] [--payload 16,4096] [--rounds N] [--out FILE]
//! rpc-bench server <target> [--port 0] [--duration S] [--inplace-budget US] [--filter LIST]
//! rpc-bench client <target> --addr HOST:PORT [--concurrency N] [--payload B] [--warmup S] [--measure S] [--filter LIST]
//! rpc-bench micro [--time S]
//! ```

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;

// Linked for its `bincode` serialization registration only.
use rpc_serialization_bincode as _;
use rpc_triple as _;

/// Built with `--features mimalloc`, every target of this binary allocates with mimalloc
/// instead of the system allocator (BENCHMARKS.md: what the allocator costs each target).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod load;
mod micro;
mod run;
mod targets;

use targets::Target;

/// Errors of this binary: anything, reported as text.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "usage:
  rpc-bench run [--quick] [--pin] [--warmup S] [--measure S] [--targets raw,tarpc,tonic,rpc,rpc-bincode,rpc-hessian2,rpc-stack,rpc-tls,rpc-service,tri,tri-proto]
                [--concurrency 1,64] [--payload 16,4096] [--rounds N] [--out FILE]
  rpc-bench server <target> [--port 0] [--duration S] [--inplace-budget US] [--filter LIST]
  rpc-bench client <target> --addr HOST:PORT [--concurrency N] [--payload B] [--warmup S] [--measure S] [--filter LIST]
  (--filter: the `filter` key of the rpc-service provider or reference, e.g. -context or -default)
  rpc-bench micro [--time S]";

/// Positional arguments and `--flag value` pairs (`--quick` takes no value).
struct Args {
    positional: Vec<String>,
    flags: HashMap<String, String>,
}

impl Args {
    fn parse(raw: impl Iterator<Item = String>) -> BoxResult<Args> {
        let mut positional = Vec::new();
        let mut flags = HashMap::new();
        let mut raw = raw.peekable();
        while let Some(a) = raw.next() {
            if let Some(name) = a.strip_prefix("--") {
                if name == "quick" || name == "help" || name == "pin" {
                    flags.insert(name.to_string(), String::new());
                    continue;
                }
                let value = raw
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                flags.insert(name.to_string(), value);
            } else {
                positional.push(a);
            }
        }
        Ok(Args { positional, flags })
    }

    fn has(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> BoxResult<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.flags.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| format!("bad --{name} {v:?}: {e}").into()),
        }
    }

    fn seconds(&self, name: &str, default: f64) -> BoxResult<Duration> {
        let s: f64 = self.get(name, default)?;
        Duration::try_from_secs_f64(s).map_err(|e| format!("bad --{name} {s}: {e}").into())
    }

    fn target(&self) -> BoxResult<Target> {
        Target::parse(self.positional.get(1).ok_or(
            "missing <target> (raw, tarpc, tonic, rpc, rpc-bincode, rpc-hessian2, rpc-stack, rpc-tls, rpc-service, tri, tri-proto)",
        )?)
    }
}

fn main() {
    let code = match Args::parse(std::env::args().skip(1)).and_then(dispatch) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rpc-bench: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn runtime() -> BoxResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn dispatch(args: Args) -> BoxResult<()> {
    if args.has("help") {
        println!("{USAGE}");
        return Ok(());
    }
    match args.positional.first().map(String::as_str) {
        Some("server") => server(&args),
        Some("client") => client(&args),
        Some("run") => run_matrix(&args),
        Some("micro") => {
            let time = args.seconds("time", 0.5)?;
            println!("{}", micro::run(time)?);
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

/// Hands `--filter` on to the `rpc-service` provider or reference this process makes.
fn set_filter(args: &Args) {
    if let Some(list) = args.flags.get("filter") {
        targets::framework::set_filter(list.clone());
    }
}

/// Serves until `--duration` passes or stdin closes; prints the bound port first.
fn server(args: &Args) -> BoxResult<()> {
    let target = args.target()?;
    let port: u16 = args.get("port", 0)?;
    let duration = args.seconds("duration", 600.0)?;
    if let Some(us) = args.flags.get("inplace-budget") {
        let us = us
            .parse()
            .map_err(|e| format!("bad --inplace-budget {us:?}: {e}"))?;
        targets::framework::set_inplace_budget(us);
    }
    set_filter(args);
    let rt = runtime()?;
    let result = rt.block_on(async {
        let (port, guard) = targets::start_server(target, port).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{port}")?;
        out.flush()?;
        drop(out);
        let stdin_closed = async {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = stdin_closed => {}
        }
        drop(guard);
        Ok(())
    });
    // Do not wait for the blocking thread still reading stdin.
    rt.shutdown_background();
    result
}

/// Drives the load against a running server and prints one JSON result line.
fn client(args: &Args) -> BoxResult<()> {
    let target = args.target()?;
    let addr: SocketAddr = args
        .flags
        .get("addr")
        .ok_or("missing --addr HOST:PORT")?
        .parse()?;
    let spec = load::LoadSpec {
        concurrency: args.get("concurrency", 1)?,
        payload: args.get("payload", 16)?,
        warmup: args.seconds("warmup", 1.0)?,
        measure: args.seconds("measure", 5.0)?,
    };
    set_filter(args);
    if spec.concurrency == 0 || spec.concurrency > 10_000 {
        return Err("--concurrency must be 1..=10000".into());
    }
    if spec.payload > 512 * 1024 {
        return Err("--payload must be at most 512 KiB".into());
    }
    let limit = spec.warmup + spec.measure + Duration::from_secs(30);
    let result = runtime()?.block_on(async {
        match tokio::time::timeout(limit, load::run(target, addr, spec)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no result within {} s", limit.as_secs()).into()),
        }
    });
    let mut result = result.unwrap_or_else(|e| load::ClientResult {
        error: Some(e.to_string()),
        ..Default::default()
    });
    result.client_rss_kib = load::peak_rss_kib("self").unwrap_or(0);
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// The orchestrator.
fn run_matrix(args: &Args) -> BoxResult<()> {
    let quick = args.has("quick");
    let plan = run::Plan {
        targets: run::parse_list(
            &args.get(
                "targets",
                "raw,tarpc,tonic,rpc,rpc-bincode,rpc-hessian2,rpc-stack,rpc-tls,rpc-service,tri,tri-proto".to_string(),
            )?,
            Target::parse,
        )?,
        concurrency: run::parse_list(&args.get("concurrency", "1,64".to_string())?, |s| {
            Ok(s.parse()?)
        })?,
        payloads: run::parse_list(&args.get("payload", "16,4096".to_string())?, |s| {
            Ok(s.parse()?)
        })?,
        warmup: args.seconds("warmup", if quick { 0.5 } else { 1.0 })?,
        measure: args.seconds("measure", if quick { 2.0 } else { 5.0 })?,
        pin: args.has("pin"),
        rounds: match args.get("rounds", 1usize)? {
            0 => return Err("bad --rounds 0: at least one round".into()),
            n => n,
        },
    };
    let rows = run::run(&plan);
    let report = run::report(&plan, &rows);
    println!("{report}");
    if let Some(path) = args.flags.get("out") {
        std::fs::write(path, &report)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> BoxResult<Args> {
        Args::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_take_values_and_quick_is_a_switch() {
        let a = args("run --quick --measure 2.5 --targets raw,tarpc").expect("parse");
        assert_eq!(a.positional, ["run"]);
        assert!(a.has("quick"));
        assert_eq!(
            a.seconds("measure", 5.0).expect("secs"),
            Duration::from_millis(2500)
        );
        assert_eq!(
            a.seconds("warmup", 1.0).expect("default"),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_flag_without_value_or_with_a_bad_one_is_refused() {
        let e = args("server raw --port").err().expect("missing value");
        assert!(e.to_string().contains("--port needs a value"), "{e}");
        let a = args("server raw --port 70000 --measure -1").expect("parse");
        assert!(a.get::<u16>("port", 0).is_err());
        assert!(a.seconds("measure", 1.0).is_err());
    }
}
