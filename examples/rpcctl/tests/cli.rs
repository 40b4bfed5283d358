//! Drives the `rpcctl` binary against a running provider.

use std::process::Command;
use std::time::Duration;

use rpc_core::bootstrap::{Provider, ProviderBuilder, RunningProvider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::registry;
use rpc_core::Url;
use rpc_examples::{GreeterServer, SignedGreeter};

fn registry_url(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rpcctl-test-{tag}-{}", std::process::id()));
    format!(
        "local://{}?poll=50&lease=1000&cache.file={}",
        dir.display(),
        dir.join("cache.json").display()
    )
}

async fn provider(reg: &str) -> RunningProvider {
    provider_named(reg, "p1").await
}

/// A provider of the application `ctl-test` on `reg`, on a free port, stopping at once.
fn provider_builder(reg: &str) -> ProviderBuilder {
    Provider::builder()
        .without_env()
        .application("ctl-test")
        .registry(reg)
        .expect("registry")
        .protocol("dubbo", 0)
        .param(keys::SHUTDOWN_WAIT, 0)
        .expect("key")
}

/// A Greeter provider answering "... from {name}".
async fn provider_named(reg: &str, name: &str) -> RunningProvider {
    provider_builder(reg)
        .service(GreeterServer::new(SignedGreeter { name: name.into() }))
        .start()
        .await
        .expect("provider")
}

/// A Greeter client of the consumer application `ctl-consumer`.
async fn greeter_client(reg: &str) -> rpc_examples::GreeterClient {
    rpc_core::bootstrap::Consumer::builder()
        .without_env()
        .application("ctl-consumer")
        .registry(reg)
        .expect("registry")
        .build()
        .await
        .expect("consumer")
        .reference()
        .await
        .expect("reference")
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

    let (code, out, err) = rpcctl(args(&["--provider", &addr, "metrics", "--raw"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rpc_calls_total"), "{out}");
    assert!(out.contains("org.example.Greeter"), "{out}");

    // The summary: a header and one row per side/service/method, with calls and errors.
    let (code, out, err) = rpcctl(args(&["--registry", &reg, "metrics"])).await;
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header
            .split_whitespace()
            .eq(["side", "service", "method", "calls", "errors", "p50", "p99"]),
        "{out}"
    );
    let greet = out
        .lines()
        .find(|l| {
            l.starts_with("provider")
                && l.contains("org.example.Greeter:1.0.0")
                && l.contains(" greet ")
        })
        .unwrap_or_else(|| panic!("no provider greet row: {out}"));
    let cells: Vec<&str> = greet.split_whitespace().collect();
    // Five calls reached greet so far (invoke and four bad/business ones); one was a
    // business error, which is a value, not an error of the framework.
    let calls: f64 = cells[3].parse().expect("calls");
    assert!(calls >= 2.0, "{greet}");
    assert!(
        out.lines().count() < 20,
        "a summary, not the raw text: {out}"
    );

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

/// With two providers, a command that acts on one provider refuses to guess and lists them;
/// `invoke` without `--version` picks the only version, and lists them when there are two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_providers_are_listed_not_guessed() {
    let reg = registry_url("two");
    let p1 = provider(&reg).await;
    let p2 = provider_builder(&reg)
        .service_with(
            GreeterServer::new(SignedGreeter { name: "p2".into() }),
            ServiceConfig::default().param(keys::VERSION, "2.0.0"),
        )
        .start()
        .await
        .expect("second provider");
    let a1 = format!("127.0.0.1:{}", p1.port().expect("port"));
    let a2 = format!("127.0.0.1:{}", p2.port().expect("port"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, out, _) = rpcctl(args(&["--registry", &reg, "list"])).await;
        if out.contains(&a1) && out.contains(&a2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both providers listed: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for command in ["offline", "online", "metrics"] {
        let (code, out, err) = rpcctl(args(&["--registry", &reg, command])).await;
        assert_eq!(code, 1, "{command}: {out}");
        assert!(
            err.contains("2 providers are registered") && err.contains(&a1) && err.contains(&a2),
            "{command}: {err}"
        );
        assert!(err.contains("--provider"), "{err}");
    }
    assert!(
        p1.is_online() && p2.is_online(),
        "nothing was taken offline"
    );

    // Two versions: listed, not guessed.
    let (code, _, err) = rpcctl(args(&[
        "--registry",
        &reg,
        "invoke",
        "org.example.Greeter",
        "greet",
        r#"["ann"]"#,
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--version 1.0.0") && err.contains("--version 2.0.0"),
        "{err}"
    );
    // One provider, one version: found by itself.
    let (code, out, err) = rpcctl(args(&[
        "--provider",
        &a2,
        "invoke",
        "org.example.Greeter",
        "greet",
        r#"["bo"]"#,
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), r#""hello bo, from p2""#);
    p1.shutdown().await;
    p2.shutdown().await;
}

/// `rpcctl list | head -1`: a reader that goes away ends rpcctl quietly, without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_output_quietly() {
    let reg = registry_url("pipe");
    let p = provider(&reg).await;
    let status = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rpcctl"))
            .args(["--registry", &reg, "list"])
            .env_remove("RPC_REGISTRY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run rpcctl");
        // Close the read end before rpcctl writes: its first write meets a closed pipe.
        drop(child.stdout.take());
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join");
    let err = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    p.shutdown().await;
}

/// The registry adapters are linked: a ZooKeeper or etcd URL reaches the adapter (and fails
/// to connect to a closed port), instead of "unknown registry".
#[tokio::test]
async fn zookeeper_and_etcd_urls_reach_their_adapters() {
    for reg in [
        "zookeeper://127.0.0.1:1?timeout=200&cache=false",
        "etcd://127.0.0.1:1?timeout=200&cache=false",
    ] {
        let (code, out, err) = rpcctl(args(&["--registry", reg, "list"])).await;
        assert_eq!(code, 1, "{reg}: {out}");
        assert!(!err.contains("unknown registry"), "{reg}: {err}");
        assert!(
            err.contains("network") || err.contains("not connected"),
            "{reg}: {err}"
        );
    }
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

/// Who answers `greet` through the registry, over `calls` calls.
async fn answers(client: &rpc_examples::GreeterClient, calls: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..calls {
        let reply = client.greet("x".into()).await.expect("rpc").expect("greet");
        out.push(reply.rsplit("from ").next().unwrap_or_default().to_string());
    }
    out.sort();
    out.dedup();
    out
}

/// Waits until the answers over 20 calls are exactly `who`.
async fn until_answers(client: &rpc_examples::GreeterClient, who: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let got = answers(client, 20).await;
        if got == who {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "answers {got:?}, want {who:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_override_and_route_rules_are_written_shown_and_removed() {
    let reg = registry_url("rules");
    let p1 = provider(&reg).await;
    let p2 = provider_named(&reg, "p2").await;
    let (port1, port2) = (p1.port().expect("port"), p2.port().expect("port"));
    let a1 = format!("127.0.0.1:{port1}");
    let client = greeter_client(&reg).await;
    until_answers(&client, &["p1", "p2"]).await;
    let ctl = |list: &[&str]| {
        let mut a = vec!["--registry".to_string(), reg.clone()];
        a.extend(list.iter().map(|s| s.to_string()));
        rpcctl(a)
    };
    let greeter = "org.example.Greeter";

    // A dry run says what would change and writes nothing.
    let (code, out, err) = ctl(&["weight", greeter, &a1, "0", "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{a1}: weight (unset) -> 0")), "{out}");
    assert!(out.contains("nothing written"), "{out}");
    let (_, out, _) = ctl(&["rules", greeter]).await;
    assert!(out.contains("rules in force: none"), "{out}");

    // Weight 0 drains p1 at once; the rule is shown.
    let (code, out, err) = ctl(&["weight", greeter, &a1, "0"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("written: override for provider"), "{out}");
    until_answers(&client, &["p2"]).await;
    let (_, out, _) = ctl(&["rules", greeter]).await;
    assert!(
        out.contains(&format!("override for provider {a1}: weight=0")),
        "{out}"
    );

    // Refused before anything is written, with the reason.
    let (code, _, err) = ctl(&["override", greeter, "timeout=soon"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("timeout") && err.contains("whole number"),
        "{err}"
    );
    let (code, _, err) = ctl(&["override", greeter, "timeout"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("KEY=VALUE"), "{err}");
    let (code, _, err) = ctl(&["route", greeter, "host = "]).await;
    assert_eq!(code, 1);
    assert!(err.contains("rule"), "{err}");

    // A route to p1 wins over p1's weight (the only provider left is chosen).
    let to_p1 = format!("=> port = {port1}");
    let (code, _, err) = ctl(&["route", greeter, &to_p1, "--force"]).await;
    assert_eq!(code, 0, "{err}");
    until_answers(&client, &["p1"]).await;
    let (code, out, err) = ctl(&["describe", greeter]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rules in force:"), "{out}");
    assert!(
        out.contains(&format!("route \"=> port = {port1}\"")),
        "{out}"
    );

    // Removing them restores both providers; removing what is not there is explained.
    let (code, _, err) = ctl(&["route", greeter, &to_p1, "--force", "--remove"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ctl(&["weight", greeter, &a1, "0", "--remove"]).await;
    assert_eq!(code, 0, "{err}");
    until_answers(&client, &["p1", "p2"]).await;
    let (code, _, err) = ctl(&["weight", greeter, &a1, "0", "--remove"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no such rule is in force"), "{err}");
    let _ = port2;
    p1.shutdown().await;
    p2.shutdown().await;
}

/// `rpcctl config put|get|rm`: a YAML document is checked, written, shown with its rules
/// (also by `rules`), moves the calls, and is removed; a bad one is refused unwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_center_documents_are_written_shown_and_removed() {
    let reg = registry_url("config");
    let p1 = provider(&reg).await;
    let p2 = provider_named(&reg, "p2").await;
    let client = greeter_client(&format!("{reg}&config.interval=100")).await;
    until_answers(&client, &["p1", "p2"]).await;
    let ctl = |list: &[&str]| {
        let mut a = vec!["--registry".to_string(), reg.clone()];
        a.extend(list.iter().map(|s| s.to_string()));
        rpcctl(a)
    };
    let dir = std::env::temp_dir().join(format!("rpcctl-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let doc = dir.join("route.yaml");
    let port2 = p2.port().expect("port");
    std::fs::write(
        &doc,
        format!("key: org.example.Greeter\nforce: true\nconditions:\n  - '=> port = {port2}'\n"),
    )
    .expect("write");
    let key = "org.example.Greeter:1.0.0:.condition-router";
    let doc_path = doc.display().to_string();

    let (code, out, err) = ctl(&["config", "put", key, &doc_path, "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("1 rules") && out.contains("nothing written"),
        "{out}"
    );
    let (code, _, err) = ctl(&["config", "get", key]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no document"), "{err}");

    let (code, out, err) = ctl(&["config", "put", key, &doc_path]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("written"), "{out}");
    until_answers(&client, &["p2"]).await;
    let (code, out, err) = ctl(&["config", "get", key]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("port = {port2}")), "{out}");
    let (_, out, _) = ctl(&["rules", "org.example.Greeter"]).await;
    assert!(out.contains("config-center documents:"), "{out}");
    assert!(out.contains(key), "{out}");

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "key: org.example.Greeter\nconditions:\n  - 'host = =>'\n",
    )
    .expect("write");
    let (code, _, err) = ctl(&["config", "put", key, &bad.display().to_string()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("conditions[0]"), "{err}");
    let (_, out, _) = ctl(&["config", "get", key]).await;
    assert!(
        out.contains(&format!("port = {port2}")),
        "the bad document was not written: {out}"
    );

    let (code, _, err) = ctl(&["config", "rm", key]).await;
    assert_eq!(code, 0, "{err}");
    until_answers(&client, &["p1", "p2"]).await;
    let (code, _, err) = ctl(&["config", "rm", key]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no document"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
    p1.shutdown().await;
    p2.shutdown().await;
}

/// A provider with `admin.token`: its admin service answers only callers that carry it, and
/// the secret is never published with its services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_admin_token_guards_its_admin_service() {
    let reg = registry_url("admin-token");
    let p = provider_builder(&reg)
        .param(keys::ADMIN_TOKEN, "s3cret-admin")
        .expect("key")
        .service(GreeterServer::new(SignedGreeter { name: "p1".into() }))
        .start()
        .await
        .expect("provider");
    let addr = format!("127.0.0.1:{}", p.port().expect("port"));

    let (code, out, err) = rpcctl(args(&["--provider", &addr, "offline"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("token"), "{err}");
    assert!(p.is_online());
    let (code, _, err) = rpcctl(args(&[
        "--provider",
        &addr,
        "--provider-admin-token",
        "wrong-one",
        "offline",
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(p.is_online());
    let (code, out, err) = rpcctl(args(&[
        "--provider",
        &addr,
        "--provider-admin-token",
        "s3cret-admin",
        "offline",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("offline"), "{out}");
    assert!(!p.is_online());

    let (code, out, err) = rpcctl(args(&["--registry", &reg, "list"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("s3cret"),
        "the secret is not published: {out}"
    );
    p.shutdown().await;
}
