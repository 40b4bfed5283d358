//! Drives the `rpcctl` binary against a running provider.

use std::process::Command;
use std::time::Duration;

use rpc_core::bootstrap::{Provider, RunningProvider};
use rpc_core::registry;
use rpc_core::Url;
use rpc_examples::{GreeterServer, SignedGreeter};

fn registry_url(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rpcctl-test-{tag}-{}", std::process::id()));
    format!("local://{}?poll=50&lease=1000", dir.display())
}

async fn provider(reg: &str) -> RunningProvider {
    Provider::builder()
        .without_env()
        .application("ctl-test")
        .registry(reg)
        .expect("registry")
        .protocol("dubbo", 0)
        .param("shutdown.wait", 0)
        .expect("key")
        .service(GreeterServer::new(SignedGreeter { name: "p1".into() }))
        .start()
        .await
        .expect("provider")
}

/// Runs rpcctl on a blocking thread (so the provider keeps serving) and returns
/// (exit code, stdout, stderr).
async fn rpcctl(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_rpcctl"))
            .args(&args)
            .env_remove("RPC_REGISTRY")
            .output()
            .expect("run rpcctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_invoke_metrics_and_offline_online() {
    let reg = registry_url("main");
    let p = provider(&reg).await;
    let addr = format!("127.0.0.1:{}", p.port().expect("port"));

    let (code, out, err) = rpcctl(args(&["--registry", &reg, "list"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("org.example.Greeter  (1 providers)"), "{out}");
    assert!(
        out.contains(&addr) && out.contains("version=1.0.0"),
        "{out}"
    );
    assert!(
        !out.contains("rpc.Admin"),
        "the admin service is not registered: {out}"
    );

    // describe through the registry finds the provider by itself
    let (code, out, err) = rpcctl(args(&[
        "--registry",
        &reg,
        "describe",
        "org.example.Greeter",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&addr), "{out}");

    let (code, out, err) = rpcctl(args(&[
        "--provider",
        &addr,
        "describe",
        "org.example.Greeter",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("greet(name: String) -> Result<String, GreetError>"),
        "{out}"
    );
    assert!(out.contains("idempotent"), "{out}");

    let (code, out, err) = rpcctl(args(&[
        "--registry",
        &reg,
        "invoke",
        "org.example.Greeter",
        "greet",
        r#"["ann"]"#,
        "--version",
        "1.0.0",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), r#""hello ann, from p1""#);

    // A business error is shown as such, with its own exit status.
    let (code, out, _) = rpcctl(args(&[
        "--provider",
        &addr,
        "invoke",
        "org.example.Greeter",
        "greet",
        r#"[""]"#,
        "--version",
        "1.0.0",
    ]))
    .await;
    assert_eq!(code, 2);
    assert_eq!(out.trim(), r#"business error: "EmptyName""#);

    // Bad input gets an error that says what to do.
    let (code, _, err) = rpcctl(args(&[
        "--provider",
        &addr,
        "invoke",
        "org.example.Greeter",
        "greet",
        r#""ann""#,
    ]))
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("must be a JSON array") && err.contains("try:"),
        "{err}"
    );
    let (code, _, err) = rpcctl(args(&[
        "--provider",
        &addr,
        "invoke",
        "org.example.Greeter",
        "greeet",
        "[]",
        "--version",
        "1.0.0",
    ]))
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("method_not_found") && err.contains("rpcctl describe"),
        "{err}"
    );

    let (code, out, err) = rpcctl(args(&["--provider", &addr, "metrics"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rpc_calls_total"), "{out}");
    assert!(out.contains("org.example.Greeter"), "{out}");

    let lookup = Url::new("consumer", "127.0.0.1", 0).with_path("org.example.Greeter");
    let registry = registry::connect(&Url::parse(&reg).expect("url"))
        .await
        .expect("registry");
    assert_eq!(registry.lookup(&lookup).await.expect("lookup").len(), 1);

    let (code, out, err) = rpcctl(args(&["--provider", &addr, "offline"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("offline"), "{out}");
    assert!(!p.is_online());
    assert!(registry.lookup(&lookup).await.expect("lookup").is_empty());

    let (code, _, err) = rpcctl(args(&["--provider", &addr, "online"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(p.is_online());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while registry.lookup(&lookup).await.expect("lookup").is_empty()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.lookup(&lookup).await.expect("lookup").len(), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn unreachable_provider_is_explained() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (code, _, err) = rpcctl(args(&[
        "--provider",
        &format!("127.0.0.1:{port}"),
        "metrics",
    ]))
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("try:"), "{err}");
}
