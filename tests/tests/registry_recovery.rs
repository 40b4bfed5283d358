//! Recovery from lost liveness: a `local` provider process killed with SIGKILL, a ZooKeeper
//! session expired under the client, an etcd lease revoked under the client; and what does
//! not go with its provider: a `dynamic=false` registration.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rpc_core::bootstrap::Provider;
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::registry::testing::Recorder;
use rpc_core::registry::{Category, Registry};
use rpc_core::Url;
use rpc_examples::{GreeterServer, SignedGreeter};
use rpc_registry_etcd::client::EtcdClient;
use rpc_registry_etcd::EtcdRegistry;
use rpc_registry_zookeeper::ZookeeperRegistry;
use rpc_tests::registry::{client, consumer, expect_providers, provider, unique, Backend, Proxy};

/// Waits (bounded) until `f` gives `Some`.
async fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn local_provider_killed_with_sigkill_disappears_after_its_lease() {
    let url = Backend::Local.url().expect("local needs no server");
    let interface = unique("org.example.Killed");
    let p = provider(&interface, 20890);
    let mut child = Command::new(env!("CARGO_BIN_EXE_local_provider"))
        .arg(url.to_string())
        .arg(p.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the provider process");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read child output");
    assert_eq!(line.trim(), "registered");

    let cons = client(&url, "consumer").await;
    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(&rec, Duration::from_secs(2), "the child's provider", |l| {
        l == std::slice::from_ref(&p)
    })
    .await;

    child.kill().expect("SIGKILL the provider process"); // by PID, no clean-up runs
    let _ = child.wait();
    expect_providers(
        &rec,
        Backend::Local.death_bound(),
        "removal after the lease",
        |l| l.is_empty(),
    )
    .await;
}

/// Expires the ZooKeeper session of `reg` the way a network partition does: its traffic
/// goes through `proxy`, which is cut for longer than the session timeout (2 s in these
/// tests) so the server expires the session; then the network comes back and the registry
/// must move to a new session by itself.
async fn partition_until_expired(reg: &ZookeeperRegistry, proxy: &Proxy) {
    let old = reg.session().expect("a session");
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    proxy.restore().await;
    eventually(Duration::from_secs(15), "a new session", || {
        reg.session().filter(|s| s.id() != old.id())
    })
    .await;
}

#[tokio::test]
async fn zookeeper_session_expiry_is_recovered_without_restart() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let namespace = unique("ns");
    let prov_proxy = Proxy::start(&address).await;
    let cons_proxy = Proxy::start(&address).await;
    let prov =
        ZookeeperRegistry::start(&Backend::Zookeeper.url_at(&prov_proxy.address(), &namespace))
            .expect("start");
    let cons =
        ZookeeperRegistry::start(&Backend::Zookeeper.url_at(&cons_proxy.address(), &namespace))
            .expect("start");
    eventually(Duration::from_secs(5), "provider session", || {
        prov.session()
    })
    .await;
    eventually(Duration::from_secs(5), "consumer session", || {
        cons.session()
    })
    .await;

    let interface = unique("org.example.Expiry");
    let p1 = provider(&interface, 20891);
    prov.register(&p1).await.expect("register");
    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(&rec, Duration::from_secs(2), "p1", |l| l.len() == 1).await;

    // The provider's session expires: the server deletes its ephemeral node (the consumer
    // sees that), and the provider re-creates it in a new session.
    let seen_gone = {
        let rec = rec.clone();
        tokio::spawn(async move {
            rec.wait_for(
                rpc_core::registry::Category::Providers,
                Duration::from_secs(10),
                |l| l.is_empty(),
            )
            .await
        })
    };
    partition_until_expired(&prov, &prov_proxy).await;
    assert_eq!(
        seen_gone.await.expect("join"),
        Some(vec![]),
        "the expired session's node was deleted"
    );
    expect_providers(&rec, Duration::from_secs(10), "p1 re-created", |l| {
        l == std::slice::from_ref(&p1)
    })
    .await;

    // The consumer's session expires: its watch is re-armed in the new session.
    partition_until_expired(&cons, &cons_proxy).await;
    let p2 = provider(&interface, 20892);
    prov.register(&p2).await.expect("register p2");
    expect_providers(&rec, Duration::from_secs(10), "p2 after the expiry", |l| {
        l.len() == 2
    })
    .await;
    assert!(cons.is_available() && prov.is_available());
}

/// A registration under way when the connection drops fails with it, while the session lives
/// on (a drop shorter than the session timeout: nothing is replayed for a new session). It is
/// made once the connection is back.
#[tokio::test]
async fn zookeeper_registration_lost_with_the_connection_is_made_when_it_returns() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let namespace = unique("ns");
    let proxy = Proxy::start(&address).await;
    let prov = std::sync::Arc::new(
        ZookeeperRegistry::start(
            &Backend::Zookeeper
                .url_at(&proxy.address(), &namespace)
                .with_param("session", 20_000)
                .with_param("timeout", 5_000),
        )
        .expect("start"),
    );
    let cons =
        ZookeeperRegistry::start(&Backend::Zookeeper.url_at(&address, &namespace)).expect("start");
    let session = eventually(Duration::from_secs(5), "provider session", || {
        prov.session()
    })
    .await;
    let interface = unique("org.example.Drop");
    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");

    // The registration's requests reach the proxy and go no further; then the connection
    // drops, failing them.
    proxy.stall();
    let p1 = provider(&interface, 20893);
    let registering = {
        let (prov, p1) = (prov.clone(), p1.clone());
        tokio::spawn(async move { prov.register(&p1).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    registering
        .await
        .expect("join")
        .expect("recorded, to be made when the connection is back");
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore().await;
    expect_providers(&rec, Duration::from_secs(10), "p1 once reconnected", |l| {
        l == std::slice::from_ref(&p1)
    })
    .await;
    assert_eq!(
        prov.session().map(|s| s.id()),
        Some(session.id()),
        "the same session went on"
    );
}

#[tokio::test]
async fn etcd_revoked_lease_is_regranted_and_registrations_put_again() {
    let Some(address) = Backend::Etcd.address() else {
        return;
    };
    let url: Url = Backend::Etcd.url_at(&address, &unique("ns"));
    let prov = EtcdRegistry::start(&url.with_param(keys::CLIENT, "p")).expect("start");
    let cons = client(&url, "c").await;
    let old = eventually(Duration::from_secs(5), "a lease", || prov.lease_id()).await;

    let interface = unique("org.example.Lease");
    let p = provider(&interface, 20893);
    prov.register(&p).await.expect("register");
    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(&rec, Duration::from_secs(2), "p", |l| l.len() == 1).await;

    let other = EtcdClient::connect(&[format!("http://{address}")], Duration::from_secs(5), None)
        .await
        .expect("second etcd client");
    other.lease_revoke(old).await.expect("revoke the lease");
    expect_providers(
        &rec,
        Duration::from_secs(2),
        "the key deleted with its lease",
        |l| l.is_empty(),
    )
    .await;
    expect_providers(&rec, Duration::from_secs(10), "p put again", |l| {
        l == std::slice::from_ref(&p)
    })
    .await;
    let new = prov.lease_id().expect("a new lease");
    assert_ne!(new, old);
}

/// `dynamic=false` set on a service: the provider's registration outlives its registry
/// session or lease, as Dubbo's does. Two providers die without unregistering (their runtime
/// is dropped with them, as in a crash): the default one is removed when its session or
/// lease ends, the `dynamic=false` one stays listed until an operator unregisters it.
async fn a_static_registration_outlives_its_dead_provider(backend: Backend) {
    let Some(registry) = backend.url() else {
        return;
    };
    let started = {
        let registry = registry.to_string();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async {
                let start = |name: &str, settings: ServiceConfig| {
                    Provider::builder()
                        .without_env()
                        .application("dying")
                        .registry(&registry)
                        .expect("registry url")
                        .protocol("dubbo", 0)
                        .service_with(
                            GreeterServer::new(SignedGreeter {
                                name: name.to_string(),
                            }),
                            settings,
                        )
                        .start()
                };
                let fixed = start(
                    "fixed",
                    ServiceConfig::default().param(keys::DYNAMIC, false),
                )
                .await
                .expect("dynamic=false provider");
                let usual = start("usual", ServiceConfig::default())
                    .await
                    .expect("default provider");
                let ports = (fixed.port().expect("port"), usual.port().expect("port"));
                // No shutdown, no unregistering: both die with their runtime.
                std::mem::forget((fixed, usual));
                ports
            })
            // The runtime is dropped here, with every task of both providers.
        })
    };
    let (fixed, usual) = tokio::task::spawn_blocking(move || started.join())
        .await
        .expect("join")
        .expect("providers started");

    let operator = client(&registry, "operator").await;
    let rec = Recorder::new();
    operator
        .subscribe(&consumer("org.example.Greeter"), rec.clone())
        .await
        .expect("subscribe");
    let left = expect_providers(
        &rec,
        backend.death_bound(),
        "only the dynamic=false provider left after the other's session or lease",
        |l| l.len() == 1 && l[0].port() == Some(fixed),
    )
    .await;
    assert_ne!(fixed, usual);
    assert_eq!(left[0].param(keys::DYNAMIC), Some("false"), "{}", left[0]);
    // It stays: an operator removes it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rec.last(Category::Providers).map(|l| l.len()),
        Some(1),
        "still listed"
    );
    operator.unregister(&left[0]).await.expect("unregister");
    expect_providers(
        &rec,
        Duration::from_secs(5),
        "removed by the operator",
        |l| l.is_empty(),
    )
    .await;
}

#[tokio::test]
async fn local_static_registration_outlives_its_dead_provider() {
    a_static_registration_outlives_its_dead_provider(Backend::Local).await;
}

#[tokio::test]
async fn zookeeper_static_registration_outlives_its_dead_provider() {
    a_static_registration_outlives_its_dead_provider(Backend::Zookeeper).await;
}

#[tokio::test]
async fn etcd_static_registration_outlives_its_dead_provider() {
    a_static_registration_outlives_its_dead_provider(Backend::Etcd).await;
}

#[tokio::test]
async fn nacos_static_registration_outlives_its_dead_provider() {
    a_static_registration_outlives_its_dead_provider(Backend::Nacos).await;
}
