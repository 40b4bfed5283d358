//! Calls through the whole stack while the registry world changes: providers joining and
//! leaving under load, the registry going away (calls go on, a restarted consumer starts
//! from its disk cache) and coming back (new providers are seen). Run against the embedded
//! `local` registry always, and against ZooKeeper and etcd when `scripts/test.sh` started them.
//!
//! The consumers here are dropped as soon as their client is made: a client must keep its
//! registry subscription alive by itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::bootstrap::RunningProvider;
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::Url;
use rpc_examples::GreeterClient;
use rpc_tests::greeter::{provider as start_provider, who};
use rpc_tests::registry::{temp_path, unique, Backend, Proxy};

/// Calls in a loop until `stop`; returns who served how many, and every failure.
fn load(
    client: GreeterClient,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(BTreeMap<String, u32>, Vec<String>)> {
    tokio::spawn(async move {
        let mut served = BTreeMap::new();
        let mut failures = Vec::new();
        let mut i = 0u32;
        while !stop.load(Ordering::SeqCst) && i < 20_000 {
            match client.greet(format!("n{i}")).await {
                Ok(Ok(reply)) => *served.entry(who(&reply)).or_default() += 1,
                other => failures.push(format!("{other:?}")),
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        (served, failures)
    })
}

async fn wait_until_served_by(client: &GreeterClient, name: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok(reply)) = client.greet("probe".into()).await {
            if who(&reply) == name {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn providers_join_and_leave_under_load(backend: Backend) {
    let Some(registry) = backend.url() else {
        return;
    };
    let a = provider(&registry, "a").await;
    let consumer = client(&registry).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(consumer.clone(), stop.clone());

    let b = provider(&registry, "b").await;
    assert!(
        wait_until_served_by(&consumer, "b", Duration::from_secs(5)).await,
        "b joined"
    );
    a.shutdown().await; // graceful: unregister, wait, drain
    let c = provider(&registry, "c").await;
    assert!(
        wait_until_served_by(&consumer, "c", Duration::from_secs(5)).await,
        "c joined"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);

    let (served, failures) = running.await.expect("load task");
    assert!(
        failures.is_empty(),
        "{backend:?}: failed calls while providers changed: {failures:?}"
    );
    for name in ["a", "b", "c"] {
        assert!(
            served.get(name).copied().unwrap_or(0) > 0,
            "{backend:?}: {name} served nothing: {served:?}"
        );
    }
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_providers_join_and_leave_under_load() {
    providers_join_and_leave_under_load(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_providers_join_and_leave_under_load() {
    providers_join_and_leave_under_load(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_providers_join_and_leave_under_load() {
    providers_join_and_leave_under_load(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_providers_join_and_leave_under_load() {
    providers_join_and_leave_under_load(Backend::Nacos).await;
}

async fn registry_outage(backend: Backend) {
    let Some(address) = backend.address() else {
        return;
    };
    let namespace = unique("outage");
    let direct = backend.url_at(&address, &namespace);
    let proxy = Proxy::start(&address).await;
    let cache = temp_path("calls-cache");
    // Consumers reach the registry through the proxy; providers directly.
    let through = |name: &str| {
        backend
            .url_at(&proxy.address(), &namespace)
            .with_param(keys::CLIENT, name)
            .with_param(keys::CACHE_FILE, cache.display())
    };
    let a = provider(&direct, "a").await;
    let first = client(&through("first")).await;
    assert!(wait_until_served_by(&first, "a", Duration::from_secs(5)).await);

    proxy.cut();
    // Calls go on: the directory keeps its last list while the registry is unreachable.
    for i in 0..100 {
        let reply = first.greet(format!("down{i}")).await;
        assert!(
            matches!(reply, Ok(Ok(_))),
            "{backend:?}: call {i} failed while the registry was down: {reply:?}"
        );
    }
    // A consumer started during the outage finds the provider in the disk cache.
    let restarted = client(&through("restarted")).await;
    let reply = restarted.greet("cached".into()).await;
    assert!(
        matches!(&reply, Ok(Ok(r)) if who(r) == "a"),
        "{backend:?}: {reply:?}"
    );

    // The registry comes back: a provider registered meanwhile is seen.
    let b = provider(&direct, "b").await;
    proxy.restore().await;
    let restarted_sees = wait_until_served_by(&restarted, "b", Duration::from_secs(15)).await;
    let first_sees = wait_until_served_by(&first, "b", Duration::from_secs(5)).await;
    assert!(
        restarted_sees && first_sees,
        "{backend:?}: after the registry returned, the new provider was seen by the restarted consumer: {restarted_sees}, by the first consumer: {first_sees}"
    );
    a.shutdown().await;
    b.shutdown().await;
    std::fs::remove_file(&cache).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_calls_go_on_through_a_registry_outage() {
    registry_outage(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_calls_go_on_through_a_registry_outage() {
    registry_outage(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_calls_go_on_through_a_registry_outage() {
    registry_outage(Backend::Nacos).await;
}

async fn provider(registry: &Url, name: &str) -> RunningProvider {
    start_provider(&registry.to_string(), name, 1500).await
}

async fn client(registry: &Url) -> GreeterClient {
    rpc_tests::greeter::client(
        &registry.to_string(),
        ServiceConfig::default()
            .param(keys::TIMEOUT, 3000)
            .param(keys::CHECK, 5000),
    )
    .await
}
