//! Triple against stock gRPC peers on loopback: a grpcio 1.85.1 client calling our provider
//! (stubs generated from `tests/proto/greeter.proto` by grpcio-tools, no protoc binary), our
//! consumer calling a stock grpcio server, and curl posting JSON to a unary method.
//!
//! grpcio is installed by `scripts/install-interop.sh` (run by `scripts/test.sh`) into the venv
//! under `RPC_TEST_INTEROP_DIR`; without it these tests skip loudly, except under CI
//! (`CI=true`), where they fail. The curl test needs `curl` with HTTP/2 (installed by
//! `scripts/install-deps.sh`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rpc_core::protocol::{Exporter, Protocol};
use rpc_core::Streaming;
use rpc_core::{extension, ErrorKind, Url};
use rpc_tests::triple::{
    CountRequest, EchoServer, GreetRequest, Impl, Number, ProtoGreeterClient, ProtoGreeterServer,
    ProtoStreamerClient, ProtoStreamerServer,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn tri() -> std::sync::Arc<dyn Protocol> {
    extension::get::<dyn Protocol>("tri").expect("tri is linked")
}

fn interop_python() -> Option<PathBuf> {
    rpc_tests::peers::dir().map(|d| rpc_tests::peers::python(&d))
}

fn manifest(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Generates the Python stubs of greeter.proto with grpcio-tools into a fresh temp dir.
async fn stubs(python: &Path) -> tempdir::TempDir {
    let dir = tempdir::TempDir::new("rpc-grpc-stubs");
    let out = Command::new(python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(manifest("proto"))
        .arg(format!("--python_out={}", dir.path().display()))
        .arg(format!("--grpc_python_out={}", dir.path().display()))
        .args(["greeter.proto", "streams.proto"])
        .output()
        .await
        .expect("grpc_tools.protoc runs");
    assert!(
        out.status.success(),
        "grpcio-tools failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A temp dir removed on drop (no extra dependency for it).
mod tempdir {
    use std::path::{Path, PathBuf};

    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(prefix: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs a peer to completion (at most 60 s, then it is killed) and returns its output.
async fn run(mut cmd: Command) -> (bool, String) {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("the peer starts");
    match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
        Ok(Ok(out)) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Ok(Err(e)) => (false, format!("waiting for the peer failed: {e}")),
        Err(_) => (false, "the peer did not finish within 60 s".into()),
    }
}

async fn export_greeter() -> (Box<dyn Exporter>, Box<dyn Exporter>, Box<dyn Exporter>, u16) {
    let imp = Impl::default();
    let url = Url::parse("tri://127.0.0.1:0/org.example.Greeter?version=1.0.0").expect("url");
    let g = rpc_core::proxy::export(&*tri(), url, ProtoGreeterServer::new(imp.clone()))
        .await
        .expect("export");
    let port = g.url().port().expect("port");
    let url = Url::parse(&format!(
        "tri://127.0.0.1:{port}/org.example.Echo?version=1.0.0"
    ))
    .expect("url");
    let e = rpc_core::proxy::export(&*tri(), url, EchoServer::new(imp.clone()))
        .await
        .expect("export");
    let url = Url::parse(&format!("tri://127.0.0.1:{port}/org.example.Streamer")).expect("url");
    let s = rpc_core::proxy::export(&*tri(), url, ProtoStreamerServer::new(imp))
        .await
        .expect("export");
    (g, e, s, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_grpcio_client_calls_our_provider() {
    let Some(python) = interop_python() else {
        return;
    };
    let stubs = stubs(&python).await;
    let (g, e, s, port) = export_greeter().await;
    let mut cmd = Command::new(&python);
    cmd.arg(manifest("interop/grpc_client.py"))
        .arg(port.to_string())
        .arg(stubs.path());
    let (ok, out) = run(cmd).await;
    assert!(ok, "grpcio client failed:\n{out}");
    for call in [
        "greet",
        "greet-versioned",
        "business-error",
        "deadline",
        "unimplemented",
        "server-streaming",
        "client-streaming",
        "bidi",
        "stream-deadline",
        "stream-error",
    ] {
        assert!(
            out.lines().any(|l| l.trim() == format!("ok {call}")),
            "no `ok {call}` in:\n{out}"
        );
    }
    g.unexport().await;
    e.unexport().await;
    s.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_consumer_calls_a_stock_grpcio_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let stubs = stubs(&python).await;
    let mut child = Command::new(&python)
        .arg(manifest("interop/grpc_server.py"))
        .arg(stubs.path())
        .arg("60")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the grpcio server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
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
    .expect("the grpcio server reports its port");
    let url = Url::parse(&format!(
        "tri://127.0.0.1:{port}/org.example.Greeter?version=1.0.0&timeout=5000"
    ))
    .expect("url");
    let client: ProtoGreeterClient = rpc_core::proxy::refer(&*tri(), url).await.expect("refer");
    let reply = client
        .greet(GreetRequest { name: "ann".into() })
        .await
        .expect("rpc")
        .expect("reply");
    assert_eq!(reply.message, "hello ann from grpcio");
    // A stock server's status maps to a kind: NOT_FOUND is ServiceNotFound, with its message.
    let e = client
        .greet(GreetRequest { name: "bob".into() })
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::ServiceNotFound, "{e}");
    assert!(e.message().contains("no such user: bob"), "{e}");
    // Streams, all three ways.
    let url = Url::parse(&format!(
        "tri://127.0.0.1:{port}/org.example.Streamer?timeout=5000"
    ))
    .expect("url");
    let streamer: ProtoStreamerClient = rpc_core::proxy::refer(&*tri(), url).await.expect("refer");
    let counted = streamer
        .count(CountRequest { n: 3 })
        .await
        .expect("call")
        .collect_all()
        .await
        .expect("items");
    assert_eq!(
        counted.iter().map(|n| n.value).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let numbers = || Streaming::from_iter([4, 5].map(|value| Number { value }));
    assert_eq!(streamer.sum(numbers()).await.expect("sum").value, 9);
    let doubled = streamer
        .double(numbers())
        .await
        .expect("call")
        .collect_all()
        .await
        .expect("items");
    assert_eq!(doubled.iter().map(|n| n.value).collect::<Vec<_>>(), [8, 10]);
    // Stopped by its PID.
    child.start_kill().expect("kill");
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_posts_json_to_a_unary_method() {
    let has_curl = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("HTTP2"));
    if !has_curl {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "curl with HTTP/2 is missing under CI; see scripts/install-deps.sh"
        );
        eprintln!("\n*** SKIPPED: no curl with HTTP/2 on PATH ***\n");
        return;
    }
    let (g, e, s, port) = export_greeter().await;
    let curl = |path: &str, body: &str| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--http2-prior-knowledge",
            "-H",
            "content-type: application/json",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "10",
            "-d",
            body,
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"));
        cmd
    };
    let (ok, out) = run(curl("/org.example.Echo/greet", r#"["ann"]"#)).await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "\"hello ann\"\n200");
    let (ok, out) = run(curl("/org.example.Greeter/Greet", r#"{"name":"cy"}"#)).await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "{\"message\":\"hello cy\"}\n200");
    let (ok, out) = run(curl("/org.example.Echo/nope", "[]")).await;
    assert!(ok, "{out}");
    assert!(out.trim().ends_with("404"), "{out}");
    assert!(out.contains("has no method 'nope'"), "{out}");
    g.unexport().await;
    e.unexport().await;
    s.unexport().await;
}
