//! Recovery from lost liveness: a `local` provider process killed with SIGKILL, a ZooKeeper
//! session expired under the client, an etcd lease revoked under the client.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rpc_core::registry::testing::Recorder;
use rpc_core::registry::Registry;
use rpc_core::Url;
use rpc_registry_etcd::EtcdRegistry;
use rpc_registry_zookeeper::ZookeeperRegistry;
use rpc_tests::registry::{client, consumer, expect_providers, provider, unique, Backend};

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

/// Closes the ZooKeeper session of `session` from a second connection that presents the
/// same session id and password, which expires it for its owner.
async fn expire_session(address: &str, session: zookeeper_client::SessionInfo) {
    let twin = zookeeper_client::Client::connector()
        .with_session(session)
        .with_session_timeout(Duration::from_secs(2))
        .connect(address)
        .await
        .expect("attach to the session");
    drop(twin); // the last handle of that connection closes the session
}

#[tokio::test]
async fn zookeeper_session_expiry_is_recovered_without_restart() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let url = Backend::Zookeeper.url_at(&address, &unique("ns"));
    let prov = ZookeeperRegistry::start(&url.with_param("client", "p")).expect("start");
    let cons = ZookeeperRegistry::start(&url.with_param("client", "c")).expect("start");
    let old_prov = eventually(Duration::from_secs(5), "provider session", || {
        prov.session()
    })
    .await;
    let old_cons = eventually(Duration::from_secs(5), "consumer session", || {
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

    // The provider's session expires: its ephemeral node goes, then comes back in a new one.
    expire_session(&address, old_prov.clone()).await;
    eventually(Duration::from_secs(15), "a new provider session", || {
        prov.session().filter(|s| s.id() != old_prov.id())
    })
    .await;
    expect_providers(&rec, Duration::from_secs(10), "p1 re-created", |l| {
        l == std::slice::from_ref(&p1)
    })
    .await;
    // The old session's node is gone with it, so a listed p1 is the re-created node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = cons.lookup(&consumer(&interface)).await.expect("lookup");
        if listed == std::slice::from_ref(&p1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "p1 not re-created: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The consumer's session expires: its watch is re-armed in the new session.
    expire_session(&address, old_cons.clone()).await;
    eventually(Duration::from_secs(15), "a new consumer session", || {
        cons.session().filter(|s| s.id() != old_cons.id())
    })
    .await;
    let p2 = provider(&interface, 20892);
    prov.register(&p2).await.expect("register p2");
    expect_providers(&rec, Duration::from_secs(10), "p2 after the expiry", |l| {
        l.len() == 2
    })
    .await;
    assert!(cons.is_available() && prov.is_available());
}

#[tokio::test]
async fn etcd_revoked_lease_is_regranted_and_registrations_put_again() {
    let Some(address) = Backend::Etcd.address() else {
        return;
    };
    let url: Url = Backend::Etcd.url_at(&address, &unique("ns"));
    let prov = EtcdRegistry::start(&url.with_param("client", "p")).expect("start");
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

    let mut other = etcd_client::Client::connect([format!("http://{address}")], None)
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
