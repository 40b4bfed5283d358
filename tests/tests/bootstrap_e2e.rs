//! End to end through the bootstrap: providers register, a consumer finds them through a
//! registry, calls are balanced, a provider that dies mid-load costs no call, and a plugin
//! crate's balancer is selected by name.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rpc_core::bootstrap::{Consumer, Provider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::ErrorKind;
use rpc_examples::{GreetError, GreeterClient, GreeterServer, SignedGreeter};
use rpc_tests::greeter::{client, direct_client, provider, who};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_every_provider_through_the_registry() {
    let reg = "memory://e2e-balance";
    let a = provider(reg, "a", 100).await;
    let b = provider(reg, "b", 100).await;
    let client = client(reg, ServiceConfig::default()).await;
    let mut seen = HashSet::new();
    for i in 0..100 {
        let reply = client
            .greet(format!("n{i}"))
            .await
            .expect("no transport error")
            .expect("no business error");
        assert!(reply.starts_with(&format!("hello n{i}, from ")), "{reply}");
        seen.insert(who(&reply));
    }
    assert_eq!(seen, HashSet::from(["a".to_string(), "b".to_string()]));
    // A business error is a value, not an RpcError.
    assert_eq!(
        client.greet(String::new()).await.expect("rpc ok"),
        Err(GreetError::EmptyName)
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_shut_down_under_load_loses_no_call() {
    let reg = "memory://e2e-failover";
    let a = provider(reg, "a", 100).await;
    let b = provider(reg, "b", 100).await;
    let client = client(reg, ServiceConfig::default().param(keys::TIMEOUT, 2000)).await;

    let load = tokio::spawn(async move {
        let mut served: BTreeMap<String, u32> = BTreeMap::new();
        let mut failures = Vec::new();
        for i in 0..400 {
            match client.greet(format!("n{i}")).await {
                Ok(Ok(reply)) => *served.entry(who(&reply)).or_default() += 1,
                other => failures.push(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (served, failures)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.shutdown().await;
    let (served, failures) = load.await.expect("load task");
    assert!(failures.is_empty(), "lost calls: {failures:?}");
    assert_eq!(served.values().sum::<u32>(), 400);
    assert!(served.get("b").copied().unwrap_or(0) > 0);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_url_bypasses_the_registry() {
    let a = Provider::builder()
        .without_env()
        .no_registry()
        .protocol("dubbo", 0)
        .service(GreeterServer::new(SignedGreeter {
            name: "direct".into(),
        }))
        .start()
        .await
        .expect("provider");
    let port = a.port().expect("port");
    let client = direct_client(
        &format!("dubbo://127.0.0.1:{port}"),
        ServiceConfig::default(),
    )
    .await;
    let reply = client.greet("x".into()).await.expect("rpc").expect("biz");
    assert_eq!(reply, "hello x, from direct");
    a.shutdown().await;
}

/// The serialization id in the header of the first request a direct reference sends to a
/// listener that never answers.
async fn serialization_sent(direct: &str) -> u8 {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let header = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut h = [0u8; 16];
        s.read_exact(&mut h).await.expect("header");
        h
    });
    let client = direct_client(
        &direct.replace("PORT", &port.to_string()),
        ServiceConfig::default()
            .param(keys::TIMEOUT, 300)
            .param(keys::RETRIES, 0),
    )
    .await;
    // The listener reads the header and hangs up: the call fails.
    client.greet("x".into()).await.expect_err("no answer");
    let h = tokio::time::timeout(Duration::from_secs(5), header)
        .await
        .expect("a request arrived")
        .expect("task");
    h[2] & 0x1f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_reference_uses_the_default_serialization_unless_its_url_names_one() {
    use rpc_core::serialize::ids;
    assert_eq!(
        serialization_sent("dubbo://127.0.0.1:PORT").await,
        ids::MSGPACK,
        "the documented default"
    );
    assert_eq!(
        serialization_sent("dubbo://127.0.0.1:PORT?serialization=hessian2").await,
        ids::HESSIAN2,
        "as a Java provider is called"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_provider_is_a_clear_error() {
    let client = client(
        "memory://e2e-empty",
        ServiceConfig::default().param(keys::CHECK, 0),
    )
    .await;
    let e = client.greet("x".into()).await.expect_err("nobody serves");
    assert_eq!(e.kind(), ErrorKind::NoProvider, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_balancer_is_selected_by_name() {
    let reg = "memory://e2e-plugin";
    let a = provider(reg, "a", 100).await;
    let b = provider(reg, "b", 100).await;
    // The plugin crate is only linked (by rpc-tests); `keyhash` without a route key always
    // picks the first provider, where `random` would spread the calls.
    let client = client(
        reg,
        ServiceConfig::default().param(keys::LOADBALANCE, "keyhash"),
    )
    .await;
    let mut seen = HashSet::new();
    for i in 0..50 {
        let reply = client
            .greet(format!("n{i}"))
            .await
            .expect("rpc")
            .expect("biz");
        seen.insert(who(&reply));
    }
    assert_eq!(
        seen.len(),
        1,
        "keyhash must pin calls without a route key: {seen:?}"
    );

    let unknown = Consumer::builder()
        .without_env()
        .registry(reg)
        .expect("url")
        .reference_config(
            "org.example.Greeter",
            ServiceConfig::default().param(keys::LOADBALANCE, "keyhsah"),
        )
        .build()
        .await
        .expect("consumer")
        .reference::<GreeterClient>()
        .await;
    // A plugin's names are checked when the reference is built, like the core's.
    let e = unknown.expect_err("unknown balancer refused");
    assert!(e.to_string().contains("did you mean 'keyhash'"), "{e}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_takes_a_provider_out_of_consumers_lists_and_online_restores_it() {
    let reg = "memory://e2e-offline";
    let a = provider(reg, "a", 100).await;
    let b = provider(reg, "b", 100).await;
    let client = client(reg, ServiceConfig::default()).await;

    async fn served_by(client: &GreeterClient, n: usize) -> HashSet<String> {
        let mut seen = HashSet::new();
        for i in 0..n {
            let reply = client
                .greet(format!("n{i}"))
                .await
                .expect("rpc")
                .expect("biz");
            seen.insert(who(&reply));
        }
        seen
    }

    a.offline().await.expect("offline");
    assert!(!a.is_online());
    // The memory registry notifies at once; give the directory a moment to apply it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        served_by(&client, 50).await,
        HashSet::from(["b".to_string()])
    );

    a.online().await.expect("online");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        served_by(&client, 100).await,
        HashSet::from(["a".to_string(), "b".to_string()])
    );
    a.shutdown().await;
    b.shutdown().await;
}
