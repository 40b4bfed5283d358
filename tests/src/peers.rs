//! The stock Dubbo peers of the interop tests (dubbo-ssl-python and kazoo in a Python venv,
//! dubbo2.js, apache-dubbo-service and hessian.js in `node_modules`, nacos-sdk-python),
//! installed pinned by `scripts/install-interop.sh` into the directory `scripts/test.sh`
//! exports as `RPC_TEST_INTEROP_DIR`, and the scripts under `tests/interop/` that drive them.
//!
//! Without that directory a peer test skips loudly, except under CI (`CI=true`), where a
//! missing peer fails the test: CI must never pass because a peer was not there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// `None` after a loud "skipped" message naming `why`, or a panic under CI.
pub fn missing<T>(why: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{why} under CI: the stock peers must be installed (see scripts/install-interop.sh)"
        );
    }
    eprintln!(
        "\n*** SKIPPED: {why}, so this stock-peer test did not run. Run `bash scripts/test.sh` \
         (it installs the peers) to run it. ***\n"
    );
    None
}

/// Where the peers are installed (`RPC_TEST_INTEROP_DIR`), or `None` to skip.
pub fn dir() -> Option<PathBuf> {
    match std::env::var("RPC_TEST_INTEROP_DIR") {
        Ok(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => missing("RPC_TEST_INTEROP_DIR is not set"),
    }
}

/// The venv's Python (with the Python peers) in `dir`.
pub fn python(dir: &Path) -> PathBuf {
    dir.join("venv/bin/python")
}

/// A script of `tests/interop/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(name)
}

/// `python tests/interop/{name}` with the venv of `dir`.
pub fn python_script(dir: &Path, name: &str) -> Command {
    let mut cmd = Command::new(python(dir));
    cmd.arg(script(name));
    cmd
}

/// `node tests/interop/{name}` with the modules of `dir`.
pub fn node_script(dir: &Path, name: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(script(name))
        .env("NODE_PATH", dir.join("node_modules"));
    cmd
}

/// Runs a peer to completion (at most `within`, then it is killed); whether it succeeded,
/// and its standard output followed by its standard error.
pub async fn run(mut cmd: Command, within: Duration) -> (bool, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("the peer did not start: {e}")),
    };
    match tokio::time::timeout(within, child.wait_with_output()).await {
        Ok(Ok(out)) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Ok(Err(e)) => (false, format!("waiting for the peer failed: {e}")),
        Err(_) => (false, format!("the peer did not finish within {within:?}")),
    }
}

/// Asserts that a peer run succeeded and printed `ok {call}` for each of `calls`.
pub fn assert_all_ok(peer: &str, ok: bool, out: &str, calls: &[&str]) {
    assert!(ok, "{peer} failed:\n{out}");
    for c in calls {
        assert!(
            out.lines().any(|l| l.trim() == format!("ok {c}")),
            "{peer}: no `ok {c}` in:\n{out}"
        );
    }
}

/// The stock Node `dubbo://` provider (apache-dubbo-service 0.0.1, `tests/interop/node_provider.js`)
/// serving `org.example.Greeter:1.0.0 greet(String)` on 127.0.0.1 for `seconds` (then it exits
/// by itself); the child (killed when dropped) and its port.
pub async fn node_provider(dir: &Path, seconds: u32) -> (tokio::process::Child, u16) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut cmd = node_script(dir, "node_provider.js");
    cmd.arg(seconds.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("the Node provider starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(p) = l.strip_prefix("port ") {
                return p.trim().parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the Node provider reports its port");
    (child, port)
}

/// The service of the stock Node provider ([`node_provider`]): `org.example.Greeter:1.0.0`.
#[rpc_core::service(name = "org.example.Greeter", version = "1.0.0")]
pub trait StockGreeter {
    /// `hello {name}`.
    async fn greet(&self, name: String) -> String;
}

/// Finds the stock Node provider through `registry` with a consumer of this framework and
/// asserts its answers to two calls; `what` says how the provider was registered.
pub async fn greet_through(registry: &str, what: &str) {
    let client: StockGreeterClient = rpc_core::bootstrap::Consumer::builder()
        .without_env()
        .application("rust-consumer")
        .registry(registry)
        .expect("registry url")
        .build()
        .await
        .expect("consumer")
        .reference::<StockGreeterClient>()
        .await
        .expect("reference");
    for name in ["ann", "bob"] {
        let answer = client
            .greet(name.into())
            .await
            .unwrap_or_else(|e| panic!("call the provider {what}: {e}"));
        assert_eq!(answer, format!("hello {name}"), "{what}");
    }
}
