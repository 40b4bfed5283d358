//! The binary as the orchestrator uses it: servers report their port and stop by themselves,
//! clients report failures as JSON, and `run` reports every target as a row.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpc-bench");

/// Waits up to `limit` for `child` to exit; kills it (by PID) and fails if it does not.
fn exits_within(mut child: Child, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().expect("try_wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("process still running after {limit:?}");
}

fn start_server(target: &str, duration: &str) -> (Child, u16) {
    let mut child = Command::new(BIN)
        .args(["server", target, "--port", "0", "--duration", duration])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read port");
    let port = line.trim().parse().expect("first line is the port");
    (child, port)
}

#[test]
fn server_prints_its_port_and_stops_when_stdin_closes() {
    for target in ["raw", "tarpc", "tonic"] {
        let (mut child, port) = start_server(target, "60");
        assert_ne!(port, 0, "{target}");
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("server accepts");
        drop(child.stdin.take());
        exits_within(child, Duration::from_secs(10));
    }
}

#[test]
fn server_stops_after_its_duration() {
    let (child, _port) = start_server("raw", "0.3");
    // stdin stays open (held by `child`): only the duration can stop it.
    exits_within(child, Duration::from_secs(10));
}

#[test]
fn client_reports_an_unreachable_server_as_a_json_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let out = Command::new(BIN)
        .args(["client", "raw", "--addr", &addr.to_string()])
        .args(["--warmup", "0", "--measure", "0.1"])
        .output()
        .expect("client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert!(v["error"].is_string(), "{stdout}");
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    let out = Command::new(BIN)
        .args(["client", "raw"])
        .output()
        .expect("client");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--addr"));
    let out = Command::new(BIN)
        .args(["server", "grpc"])
        .output()
        .expect("server");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target 'grpc'"));
}

#[test]
fn run_measures_every_target_and_reports_a_row_each() {
    let out = Command::new(BIN)
        .args([
            "run",
            "--targets",
            "raw,tarpc,tonic,rpc,rpc-bincode,rpc-hessian2,rpc-stack,rpc-tls,rpc-service",
        ])
        .args(["--concurrency", "2", "--payload", "16"])
        .args(["--warmup", "0.1", "--measure", "0.3"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for target in [
        "raw",
        "tarpc",
        "tonic",
        "rpc",
        "rpc-bincode",
        "rpc-hessian2",
        "rpc-stack",
        "rpc-tls",
        "rpc-service",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {target} | 2 | 16 B |")))
            .unwrap_or_else(|| panic!("no row for {target} in\n{stdout}"));
        assert!(!line.contains("FAILED"), "{line}");
    }
    assert!(stdout.contains("The issue's targets"), "{stdout}");
}

#[test]
fn rpc_allocs_prints_a_row_per_target_and_refuses_unknown_options() {
    let bin = env!("CARGO_BIN_EXE_rpc-allocs");
    let out = Command::new(bin)
        .args(["--calls", "200"])
        .output()
        .expect("rpc-allocs runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for target in ["rpc", "rpc-stack", "rpc-service"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| {target} |")))
            .unwrap_or_else(|| panic!("no row for {target} in:\n{text}"));
        let allocations: f64 = row
            .split('|')
            .nth(2)
            .expect("column")
            .trim()
            .parse()
            .expect("number");
        assert!(allocations > 0.0, "{row}");
    }
    let bad = Command::new(bin)
        .arg("--bogus")
        .output()
        .expect("rpc-allocs runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option '--bogus'"));
}
