//! The orchestrator: for every matrix point and target, a server child process, a client
//! child process, and one row of results; then Markdown tables.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::load::{peak_rss_kib, ClientResult};
use crate::targets::Target;
use crate::BoxResult;

/// What `run` measures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Targets in report order.
    pub targets: Vec<Target>,
    /// Outstanding calls per point.
    pub concurrency: Vec<usize>,
    /// Payload sizes per point.
    pub payloads: Vec<usize>,
    /// Warm-up per point.
    pub warmup: Duration,
    /// Measuring window per point.
    pub measure: Duration,
    /// Pin the server to CPU 0 and the client to CPU 1 (through `taskset`, which execs the
    /// program, so the child's PID stays the benchmark process's).
    pub pin: bool,
}

/// A command running this binary, pinned to `cpu` when asked.
fn own_command(exe: &std::path::Path, pin: bool, cpu: &str) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", cpu]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

/// One target at one matrix point.
#[derive(Debug, Clone)]
pub struct Row {
    target: Target,
    concurrency: usize,
    payload: usize,
    result: Result<Measured, String>,
}

#[derive(Debug, Clone)]
struct Measured {
    client: ClientResult,
    server_rss_kib: Option<u64>,
}

/// Stops the server child by its PID when dropped (kill, then reap).
struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    tail.join(" / ")
}

fn run_point(plan: &Plan, target: Target, concurrency: usize, payload: usize) -> Row {
    let result = measure_point(plan, target, concurrency, payload);
    Row {
        target,
        concurrency,
        payload,
        result,
    }
}

fn measure_point(
    plan: &Plan,
    target: Target,
    concurrency: usize,
    payload: usize,
) -> Result<Measured, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    // The server stops by itself after this long even if we vanish (stdin closing also stops it).
    let lifetime = plan.warmup + plan.measure + Duration::from_secs(60);
    let child = own_command(&exe, plan.pin, "0")
        .args(["server", target.name(), "--port", "0", "--duration"])
        .arg(secs(lifetime))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start server: {e}"))?;
    let mut server = ServerChild(child);
    let pid = server.0.id();
    let mut first = String::new();
    let read = server
        .0
        .stdout
        .take()
        .map(|out| BufReader::new(out).read_line(&mut first));
    let port: u16 = match (read, first.trim().parse()) {
        (Some(Ok(n)), Ok(port)) if n > 0 => port,
        _ => {
            let _ = server.0.wait();
            let mut err = String::new();
            if let Some(mut e) = server.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("server failed: {}", last_lines(&err)));
        }
    };
    let output = own_command(&exe, plan.pin, "1")
        .args(["client", target.name(), "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("--payload")
        .arg(payload.to_string())
        .arg("--warmup")
        .arg(secs(plan.warmup))
        .arg("--measure")
        .arg(secs(plan.measure))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start client: {e}"))?;
    // Peak RSS of the server, read before it is stopped.
    let server_rss_kib = peak_rss_kib(&pid.to_string());
    drop(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            format!(
                "client printed no result ({}): {}",
                output.status,
                last_lines(&String::from_utf8_lossy(&output.stderr))
            )
        })?;
    let client: ClientResult =
        serde_json::from_str(line).map_err(|e| format!("bad client result {line:?}: {e}"))?;
    if let Some(e) = client.error {
        return Err(format!("client failed: {e}"));
    }
    if client.calls == 0 {
        return Err(format!(
            "no call completed in the measuring window ({} errors: {})",
            client.errors,
            client.first_error.as_deref().unwrap_or("none reported")
        ));
    }
    Ok(Measured {
        client,
        server_rss_kib,
    })
}

/// Runs the whole matrix, printing progress to stderr; returns the rows.
pub fn run(plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    for &concurrency in &plan.concurrency {
        for &payload in &plan.payloads {
            for &target in &plan.targets {
                eprintln!(
                    "running {:<12} concurrency {concurrency:<3} payload {payload} B",
                    target.name()
                );
                let row = run_point(plan, target, concurrency, payload);
                match &row.result {
                    Ok(m) => eprintln!(
                        "  {:.0} calls/s, p50 {:.1} us, p99 {:.1} us",
                        m.client.calls_per_sec, m.client.p50_us, m.client.p99_us
                    ),
                    Err(e) => eprintln!("  failed: {e}"),
                }
                rows.push(row);
            }
        }
    }
    rows
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn payload_name(b: usize) -> String {
    if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

fn find(rows: &[Row], t: Target, c: usize, p: usize) -> Option<&Measured> {
    rows.iter()
        .find(|r| r.target == t && r.concurrency == c && r.payload == p)
        .and_then(|r| r.result.as_ref().ok())
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

/// The results as Markdown: the main table, ratios, and the issue's targets.
pub fn report(plan: &Plan, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Warm-up {} s, measuring window {} s per point; one connection per client{}.\n",
        secs(plan.warmup),
        secs(plan.measure),
        if plan.pin {
            "; server pinned to CPU 0, client to CPU 1"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "| target | concurrency | payload | calls/s | p50 µs | p99 µs | server peak RSS MiB | client peak RSS MiB | errors |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        match &r.result {
            Ok(m) => {
                let errors = match (&m.client.first_error, m.client.errors) {
                    (_, 0) => "0".to_string(),
                    (Some(e), n) => format!("{n}: {e}"),
                    (None, n) => n.to_string(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} |",
                    r.target.name(),
                    r.concurrency,
                    payload_name(r.payload),
                    m.client.calls_per_sec,
                    m.client.p50_us,
                    m.client.p99_us,
                    mib(m.server_rss_kib),
                    mib(Some(m.client.client_rss_kib)),
                    errors
                );
            }
            Err(e) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | – | – | – | – | – | FAILED: {} |",
                    r.target.name(),
                    r.concurrency,
                    payload_name(r.payload),
                    e.replace('|', "\\|")
                );
            }
        }
    }

    let _ = writeln!(
        s,
        "\nRatios at each point (calls/s: higher is better; p50/p99: lower is better).\n"
    );
    let _ = writeln!(
        s,
        "| concurrency | payload | target | calls/s ÷ raw | calls/s ÷ tarpc | calls/s ÷ tonic | p50 ÷ raw | p99 ÷ raw | p99 ÷ tarpc | p99 ÷ tonic |"
    );
    let _ = writeln!(s, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &c in &plan.concurrency {
        for &p in &plan.payloads {
            let raw = find(rows, Target::Raw, c, p);
            let tarpc = find(rows, Target::Tarpc, c, p);
            let tonic = find(rows, Target::Tonic, c, p);
            for &t in &plan.targets {
                let Some(m) = find(rows, t, c, p) else {
                    let _ = writeln!(
                        s,
                        "| {c} | {} | {} | – | – | – | – | – | – | – |",
                        payload_name(p),
                        t.name()
                    );
                    continue;
                };
                let tput = m.client.calls_per_sec;
                let _ = writeln!(
                    s,
                    "| {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    payload_name(p),
                    t.name(),
                    ratio(tput, raw.map(|r| r.client.calls_per_sec)),
                    ratio(tput, tarpc.map(|r| r.client.calls_per_sec)),
                    ratio(tput, tonic.map(|r| r.client.calls_per_sec)),
                    ratio(m.client.p50_us, raw.map(|r| r.client.p50_us)),
                    ratio(m.client.p99_us, raw.map(|r| r.client.p99_us)),
                    ratio(m.client.p99_us, tarpc.map(|r| r.client.p99_us)),
                    ratio(m.client.p99_us, tonic.map(|r| r.client.p99_us)),
                );
            }
        }
    }

    let _ = writeln!(s, "\nThe issue's targets for the framework:\n");
    let _ = writeln!(s, "| target | check | value | verdict |");
    let _ = writeln!(s, "|---|---|---:|---|");
    for t in [
        Target::Rpc,
        Target::RpcBincode,
        Target::RpcHessian2,
        Target::RpcStack,
        Target::RpcService,
    ] {
        if !plan.targets.contains(&t) {
            continue;
        }
        let c64 = find(rows, t, 64, 16);
        let c1 = find(rows, t, 1, 16);
        let mut check = |name: &str, value: Option<(f64, f64)>, pass: fn(f64, f64) -> bool| {
            let (v, verdict) = match value {
                Some((a, b)) if b > 0.0 => (
                    format!("{:.2}", a / b),
                    if pass(a, b) { "pass" } else { "FAIL" },
                ),
                _ => ("–".into(), "not measured"),
            };
            let _ = writeln!(s, "| {} | {name} | {v} | {verdict} |", t.name());
        };
        let pair = |m: Option<&Measured>, o: Option<&Measured>, f: fn(&Measured) -> f64| {
            Some((f(m?), f(o?)))
        };
        let tput = |m: &Measured| m.client.calls_per_sec;
        let p99 = |m: &Measured| m.client.p99_us;
        let p50 = |m: &Measured| m.client.p50_us;
        check(
            "c64 16 B: calls/s ≥ 1.3 × tarpc",
            pair(c64, find(rows, Target::Tarpc, 64, 16), tput),
            |a, b| a >= 1.3 * b,
        );
        check(
            "c64 16 B: calls/s ≥ 2 × tonic",
            pair(c64, find(rows, Target::Tonic, 64, 16), tput),
            |a, b| a >= 2.0 * b,
        );
        check(
            "c64 16 B: calls/s ≥ 0.8 × raw",
            pair(c64, find(rows, Target::Raw, 64, 16), tput),
            |a, b| a >= 0.8 * b,
        );
        check(
            "c64 16 B: p99 ≤ tarpc's",
            pair(c64, find(rows, Target::Tarpc, 64, 16), p99),
            |a, b| a <= b,
        );
        check(
            "c1 16 B: p50 ≤ 1.15 × raw",
            pair(c1, find(rows, Target::Raw, 1, 16), p50),
            |a, b| a <= 1.15 * b,
        );
    }
    let _ = writeln!(
        s,
        "\nTriple against tonic (the same protocol family, one HTTP/2 connection):\n"
    );
    let _ = writeln!(s, "| target | check | value | verdict |");
    let _ = writeln!(s, "|---|---|---:|---|");
    for t in [Target::Tri, Target::TriProto] {
        if !plan.targets.contains(&t) {
            continue;
        }
        for &c in &plan.concurrency {
            for &p in &plan.payloads {
                let value = find(rows, t, c, p)
                    .zip(find(rows, Target::Tonic, c, p))
                    .map(|(m, o)| (m.client.calls_per_sec, o.client.calls_per_sec));
                let (v, verdict) = match value {
                    Some((a, b)) if b > 0.0 => (
                        format!("{:.2}", a / b),
                        if a >= b { "pass" } else { "FAIL" },
                    ),
                    _ => ("–".into(), "not measured"),
                };
                let _ = writeln!(
                    s,
                    "| {} | c{c} {}: calls/s ≥ tonic's | {v} | {verdict} |",
                    t.name(),
                    payload_name(p)
                );
            }
        }
    }
    s
}

/// Parses a comma-separated list.
pub fn parse_list<T>(s: &str, f: impl Fn(&str) -> BoxResult<T>) -> BoxResult<Vec<T>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| f(p.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(tput: f64, p50: f64, p99: f64) -> Result<Measured, String> {
        Ok(Measured {
            client: ClientResult {
                calls_per_sec: tput,
                p50_us: p50,
                p99_us: p99,
                calls: tput as u64,
                client_rss_kib: 4096,
                ..Default::default()
            },
            server_rss_kib: Some(2048),
        })
    }

    fn row(target: Target, concurrency: usize, result: Result<Measured, String>) -> Row {
        Row {
            target,
            concurrency,
            payload: 16,
            result,
        }
    }

    fn plan() -> Plan {
        Plan {
            targets: Target::ALL.to_vec(),
            concurrency: vec![1, 64],
            payloads: vec![16],
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            pin: false,
        }
    }

    fn peers() -> Vec<Row> {
        vec![
            row(Target::Raw, 1, ok(40_000.0, 20.0, 40.0)),
            row(Target::Tarpc, 1, ok(20_000.0, 45.0, 90.0)),
            row(Target::Tonic, 1, ok(8_000.0, 100.0, 200.0)),
            row(Target::Raw, 64, ok(100_000.0, 500.0, 1000.0)),
            row(Target::Tarpc, 64, ok(50_000.0, 1000.0, 2000.0)),
            row(Target::Tonic, 64, ok(20_000.0, 3000.0, 6000.0)),
        ]
    }

    #[test]
    fn a_failed_target_is_a_row_with_its_error_and_its_checks_are_not_measured() {
        let mut rows = peers();
        for c in [1, 64] {
            rows.push(row(Target::Rpc, c, Err("unknown protocol 'dubbo'".into())));
        }
        let r = report(&plan(), &rows);
        assert!(
            r.contains(
                "| rpc | 64 | 16 B | – | – | – | – | – | FAILED: unknown protocol 'dubbo' |"
            ),
            "{r}"
        );
        assert!(
            r.contains("| rpc | c64 16 B: calls/s ≥ 1.3 × tarpc | – | not measured |"),
            "{r}"
        );
        assert!(r.contains("| raw | 64 | 16 B | 100000 | 500.0 | 1000.0 | 2.0 | 4.0 | 0 |"));
        // Ratios of the peers are still there.
        assert!(
            r.contains("| 64 | 16 B | tarpc | 0.50 | 1.00 | 2.50 |"),
            "{r}"
        );
    }

    #[test]
    fn the_issue_targets_are_judged_against_the_peers() {
        let mut rows = peers();
        rows.push(row(Target::Rpc, 1, ok(35_000.0, 25.0, 50.0)));
        rows.push(row(Target::Rpc, 64, ok(90_000.0, 600.0, 1500.0)));
        rows.push(row(Target::RpcBincode, 1, ok(38_000.0, 22.0, 45.0)));
        rows.push(row(Target::RpcBincode, 64, ok(60_000.0, 900.0, 2500.0)));
        let r = report(&plan(), &rows);
        for line in [
            "| rpc | c64 16 B: calls/s ≥ 1.3 × tarpc | 1.80 | pass |",
            "| rpc | c64 16 B: calls/s ≥ 2 × tonic | 4.50 | pass |",
            "| rpc | c64 16 B: calls/s ≥ 0.8 × raw | 0.90 | pass |",
            "| rpc | c64 16 B: p99 ≤ tarpc's | 0.75 | pass |",
            "| rpc | c1 16 B: p50 ≤ 1.15 × raw | 1.25 | FAIL |",
            "| rpc-bincode | c64 16 B: calls/s ≥ 0.8 × raw | 0.60 | FAIL |",
            "| rpc-bincode | c64 16 B: p99 ≤ tarpc's | 1.25 | FAIL |",
            "| rpc-bincode | c1 16 B: p50 ≤ 1.15 × raw | 1.10 | pass |",
        ] {
            assert!(r.contains(line), "missing {line:?} in\n{r}");
        }
    }

    #[test]
    fn lists_parse_and_name_a_bad_item() {
        assert_eq!(
            parse_list("1, 64,", |s| Ok(s.parse::<usize>()?)).expect("list"),
            [1, 64]
        );
        let e = parse_list("raw,grpc", Target::parse).expect_err("bad target");
        assert!(e.to_string().contains("unknown target 'grpc'"), "{e}");
        assert!(e.to_string().contains("tarpc"), "{e}");
    }
}
