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
    /// How many times each point is measured, the targets taking turns in each round. Every
    /// figure reported is the median over the rounds, and each ratio the median of the
    /// rounds' own ratios (a target against the peer measured moments before it), so that
    /// the host slowing down for a while moves a ratio less than it moves one measure.
    pub rounds: usize,
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
    /// Which round (from 0) measured it.
    round: usize,
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

fn run_point(plan: &Plan, target: Target, concurrency: usize, payload: usize, round: usize) -> Row {
    let result = measure_point(plan, target, concurrency, payload);
    Row {
        target,
        concurrency,
        payload,
        round,
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
            for round in 0..plan.rounds.max(1) {
                for &target in &plan.targets {
                    let of = if plan.rounds > 1 {
                        format!("  round {} of {}", round + 1, plan.rounds)
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "running {:<12} concurrency {concurrency:<3} payload {payload} B{of}",
                        target.name()
                    );
                    let row = run_point(plan, target, concurrency, payload, round);
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

/// The rounds of one point, in order.
fn rounds(rows: &[Row], t: Target, c: usize, p: usize) -> impl Iterator<Item = &Row> {
    rows.iter()
        .filter(move |r| r.target == t && r.concurrency == c && r.payload == p)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One point's figures: each the median over the rounds that succeeded (calls and errors
/// summed); `None` when none did.
fn find(rows: &[Row], t: Target, c: usize, p: usize) -> Option<Measured> {
    let ok: Vec<&Measured> = rounds(rows, t, c, p)
        .filter_map(|r| r.result.as_ref().ok())
        .collect();
    let first = *ok.first()?;
    let of = |f: fn(&Measured) -> f64| median(ok.iter().map(|m| f(m)).collect());
    let mut client = first.client.clone();
    client.calls_per_sec = of(|m| m.client.calls_per_sec)?;
    client.p50_us = of(|m| m.client.p50_us)?;
    client.p99_us = of(|m| m.client.p99_us)?;
    client.calls = ok.iter().map(|m| m.client.calls).sum();
    client.errors = ok.iter().map(|m| m.client.errors).sum();
    client.first_error = ok.iter().find_map(|m| m.client.first_error.clone());
    client.client_rss_kib = ok
        .iter()
        .map(|m| m.client.client_rss_kib)
        .max()
        .unwrap_or(0);
    Some(Measured {
        client,
        server_rss_kib: ok.iter().filter_map(|m| m.server_rss_kib).max(),
    })
}

/// The error of a point none of whose rounds succeeded.
fn failure(rows: &[Row], t: Target, c: usize, p: usize) -> Option<&str> {
    rounds(rows, t, c, p).find_map(|r| r.result.as_ref().err().map(String::as_str))
}

/// `f` of `a` over `f` of `b` at one point: the median of the rounds' ratios, each round's
/// `a` against the same round's `b`; `None` when no round measured both.
fn ratio_of(
    rows: &[Row],
    (a, b): (Target, Target),
    c: usize,
    p: usize,
    f: fn(&Measured) -> f64,
) -> Option<f64> {
    let of = |t: Target, round: usize| {
        rounds(rows, t, c, p)
            .find(|r| r.round == round)
            .and_then(|r| r.result.as_ref().ok())
            .map(f)
    };
    let per_round = rounds(rows, a, c, p)
        .filter_map(|r| Some((f(r.result.as_ref().ok()?), of(b, r.round)?)))
        .filter(|&(_, y)| y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    median(per_round)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}"))
}

/// The results as Markdown: the main table, ratios, and the issue's targets.
pub fn report(plan: &Plan, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Warm-up {} s, measuring window {} s per point; one connection per client{}{}.\n",
        secs(plan.warmup),
        secs(plan.measure),
        if plan.pin {
            "; server pinned to CPU 0, client to CPU 1"
        } else {
            ""
        },
        if plan.rounds > 1 {
            format!(
                "; {} rounds, the targets taking turns: figures are medians over the rounds, \
                 ratios the medians of each round's own ratios",
                plan.rounds
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "| target | concurrency | payload | calls/s | p50 µs | p99 µs | server peak RSS MiB | client peak RSS MiB | errors |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for &c in &plan.concurrency {
        for &p in &plan.payloads {
            for &t in &plan.targets {
                match find(rows, t, c, p) {
                    Some(m) => {
                        let errors = match (&m.client.first_error, m.client.errors) {
                            (_, 0) => "0".to_string(),
                            (Some(e), n) => format!("{n}: {e}"),
                            (None, n) => n.to_string(),
                        };
                        let _ = writeln!(
                            s,
                            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} |",
                            t.name(),
                            c,
                            payload_name(p),
                            m.client.calls_per_sec,
                            m.client.p50_us,
                            m.client.p99_us,
                            mib(m.server_rss_kib),
                            mib(Some(m.client.client_rss_kib)),
                            errors
                        );
                    }
                    None => {
                        let e = failure(rows, t, c, p).unwrap_or("not measured");
                        let _ = writeln!(
                            s,
                            "| {} | {} | {} | – | – | – | – | – | FAILED: {} |",
                            t.name(),
                            c,
                            payload_name(p),
                            e.replace('|', "\\|")
                        );
                    }
                }
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
            for &t in &plan.targets {
                if find(rows, t, c, p).is_none() {
                    let _ = writeln!(
                        s,
                        "| {c} | {} | {} | – | – | – | – | – | – | – |",
                        payload_name(p),
                        t.name()
                    );
                    continue;
                }
                let tput = |m: &Measured| m.client.calls_per_sec;
                let p50 = |m: &Measured| m.client.p50_us;
                let p99 = |m: &Measured| m.client.p99_us;
                let r = |other: Target, f| ratio(ratio_of(rows, (t, other), c, p, f));
                let _ = writeln!(
                    s,
                    "| {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    payload_name(p),
                    t.name(),
                    r(Target::Raw, tput),
                    r(Target::Tarpc, tput),
                    r(Target::Tonic, tput),
                    r(Target::Raw, p50),
                    r(Target::Raw, p99),
                    r(Target::Tarpc, p99),
                    r(Target::Tonic, p99),
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
        let mut check = |name: &str, value: Option<f64>, pass: fn(f64) -> bool| {
            check_row(&mut s, t, name, value, pass)
        };
        let tput = |m: &Measured| m.client.calls_per_sec;
        let p99 = |m: &Measured| m.client.p99_us;
        let p50 = |m: &Measured| m.client.p50_us;
        let against = |other: Target, c: usize, f| ratio_of(rows, (t, other), c, 16, f);
        check(
            "c64 16 B: calls/s ≥ 1.3 × tarpc",
            against(Target::Tarpc, 64, tput),
            |r| r >= 1.3,
        );
        check(
            "c64 16 B: calls/s ≥ 2 × tonic",
            against(Target::Tonic, 64, tput),
            |r| r >= 2.0,
        );
        check(
            "c64 16 B: calls/s ≥ 0.8 × raw",
            against(Target::Raw, 64, tput),
            |r| r >= 0.8,
        );
        check(
            "c64 16 B: p99 ≤ tarpc's",
            against(Target::Tarpc, 64, p99),
            |r| r <= 1.0,
        );
        check(
            "c1 16 B: p50 ≤ 1.15 × raw",
            against(Target::Raw, 1, p50),
            |r| r <= 1.15,
        );
    }
    call_path_targets(&mut s, plan, rows);
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
                let value = ratio_of(rows, (t, Target::Tonic), c, p, |m| m.client.calls_per_sec);
                let name = format!("c{c} {}: calls/s ≥ tonic's", payload_name(p));
                check_row(&mut s, t, &name, value, |r| r >= 1.0);
            }
        }
    }
    s
}

/// The call path's targets: what each layer of the framework may cost against the bare echo
/// and tarpc (BENCHMARKS.md, "The call path").
fn call_path_targets(s: &mut String, plan: &Plan, rows: &[Row]) {
    type Check = (
        Target,
        &'static str,
        Target,
        usize,
        fn(&Measured) -> f64,
        fn(f64) -> bool,
    );
    let tput: fn(&Measured) -> f64 = |m| m.client.calls_per_sec;
    let p50: fn(&Measured) -> f64 = |m| m.client.p50_us;
    let checks: [Check; 5] = [
        (
            Target::Rpc,
            "c64 16 B: calls/s ≥ 0.8 × raw",
            Target::Raw,
            64,
            tput,
            |r| r >= 0.8,
        ),
        (
            Target::RpcStack,
            "c64 16 B: calls/s ≥ 0.65 × raw",
            Target::Raw,
            64,
            tput,
            |r| r >= 0.65,
        ),
        (
            Target::RpcService,
            "c64 16 B: calls/s ≥ 0.55 × raw",
            Target::Raw,
            64,
            tput,
            |r| r >= 0.55,
        ),
        (
            Target::RpcService,
            "c64 16 B: calls/s ≥ 2 × tarpc",
            Target::Tarpc,
            64,
            tput,
            |r| r >= 2.0,
        ),
        (
            Target::RpcService,
            "c1 16 B: p50 ≤ 1.2 × raw",
            Target::Raw,
            1,
            p50,
            |r| r <= 1.2,
        ),
    ];
    let _ = writeln!(s, "\nThe call path's targets:\n");
    let _ = writeln!(s, "| target | check | value | verdict |");
    let _ = writeln!(s, "|---|---|---:|---|");
    for (t, name, other, c, f, pass) in checks {
        if !plan.targets.contains(&t) {
            continue;
        }
        check_row(s, t, name, ratio_of(rows, (t, other), c, 16, f), pass);
    }
}

/// One row of a table of checks: `t`'s `value` for the check `name`, and whether it passes.
fn check_row(s: &mut String, t: Target, name: &str, value: Option<f64>, pass: fn(f64) -> bool) {
    let (v, verdict) = match value {
        Some(v) => (format!("{v:.2}"), if pass(v) { "pass" } else { "FAIL" }),
        None => ("–".into(), "not measured"),
    };
    let _ = writeln!(s, "| {} | {name} | {v} | {verdict} |", t.name());
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
            round: 0,
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
            rounds: 1,
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
    fn with_rounds_each_ratio_is_the_median_of_the_rounds_own_ratios() {
        let at = |target, round, result| Row {
            round,
            ..row(target, 64, result)
        };
        // The host slowed down in round 1 and the echo's figure in round 2 was a good one:
        // against each round's own echo, `rpc` ran at 0.8, 0.8 and 0.5 of it.
        let rows = vec![
            at(Target::Raw, 0, ok(100_000.0, 500.0, 1000.0)),
            at(Target::Rpc, 0, ok(80_000.0, 600.0, 1200.0)),
            at(Target::Raw, 1, ok(50_000.0, 900.0, 2000.0)),
            at(Target::Rpc, 1, ok(40_000.0, 1000.0, 2400.0)),
            at(Target::Raw, 2, ok(90_000.0, 550.0, 1100.0)),
            at(Target::Rpc, 2, Err("no call completed".into())),
            at(Target::Tarpc, 0, Err("server failed".into())),
            at(Target::Tarpc, 1, Err("server failed".into())),
            at(Target::RpcService, 0, ok(60_000.0, 700.0, 1400.0)),
            at(Target::RpcService, 1, ok(25_000.0, 1200.0, 2600.0)),
        ];
        let plan = Plan {
            concurrency: vec![64],
            rounds: 3,
            ..plan()
        };
        let r = report(&plan, &rows);
        for line in [
            // Medians over the rounds that succeeded.
            "| raw | 64 | 16 B | 90000 | 550.0 | 1100.0 |",
            "| rpc | 64 | 16 B | 60000 | 800.0 | 1800.0 |",
            // No round succeeded: the first error.
            "| tarpc | 64 | 16 B | – | – | – | – | – | FAILED: server failed |",
            // Rounds 0 and 1 measured both: 0.8 and 0.8.
            "| 64 | 16 B | rpc | 0.80 | – | – |",
            "| rpc | c64 16 B: calls/s ≥ 0.8 × raw | 0.80 | pass |",
            "| rpc | c64 16 B: calls/s ≥ 1.3 × tarpc | – | not measured |",
            "3 rounds, the targets taking turns",
            // The call path's targets, on the same medians: 0.6 and 0.5 of the echo.
            "| rpc-service | c64 16 B: calls/s ≥ 0.55 × raw | 0.55 | pass |",
            "| rpc-service | c64 16 B: calls/s ≥ 2 × tarpc | – | not measured |",
            "| rpc-service | c1 16 B: p50 ≤ 1.2 × raw | – | not measured |",
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
