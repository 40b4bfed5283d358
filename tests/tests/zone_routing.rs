//! Zone-aware routing end to end: a consumer in zone `east` calls only the `east` providers
//! while one is up, goes to `west` when none is, and comes back.

use std::collections::HashSet;
use std::time::Duration;

use rpc_core::bootstrap::{Provider, RunningProvider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::ErrorKind;
use rpc_examples::{GreeterClient, GreeterServer, SignedGreeter};
use rpc_tests::greeter::{client, who};

async fn zoned(registry: &str, name: &str, zone: &str) -> RunningProvider {
    Provider::builder()
        .without_env()
        .application("zone-test")
        .registry(registry)
        .expect("registry")
        .protocol("dubbo", 0)
        .param(keys::ZONE, zone)
        .expect("zone key")
        .param(keys::SHUTDOWN_WAIT, 0)
        .expect("key")
        .service(GreeterServer::new(SignedGreeter { name: name.into() }))
        .start()
        .await
        .expect("provider")
}

async fn served_by(c: &GreeterClient, n: usize) -> HashSet<String> {
    let mut seen = HashSet::new();
    for i in 0..n {
        match c.greet(format!("n{i}")).await {
            Ok(Ok(reply)) => {
                seen.insert(who(&reply));
            }
            other => panic!("call failed: {other:?}"),
        }
    }
    seen
}

async fn eventually_served_by(c: &GreeterClient, want: &[&str]) {
    let want: HashSet<String> = want.iter().map(|s| s.to_string()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = served_by(c, 40).await;
        if seen == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "served by {seen:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_stay_in_the_consumers_zone_and_fall_back_only_when_it_is_empty() {
    let reg = "memory://zone-routing";
    let e1 = zoned(reg, "e1", "east").await;
    let e2 = zoned(reg, "e2", "east").await;
    let w1 = zoned(reg, "w1", "west").await;
    let east = client(reg, ServiceConfig::default().param(keys::ZONE, "east")).await;
    eventually_served_by(&east, &["e1", "e2"]).await;

    e1.shutdown().await;
    eventually_served_by(&east, &["e2"]).await;
    e2.shutdown().await;
    // No east provider left: the west one serves, rather than nobody.
    eventually_served_by(&east, &["w1"]).await;

    // A forced zone does not fall back.
    let forced = client(
        reg,
        ServiceConfig::default()
            .param(keys::ZONE, "east")
            .param(keys::ZONE_FORCE, true)
            .param(keys::CHECK, 0),
    )
    .await;
    let err = forced
        .greet("x".into())
        .await
        .expect_err("no east provider");
    assert_eq!(err.kind(), ErrorKind::NoProvider, "{err}");

    // East comes back: calls come home.
    let e3 = zoned(reg, "e3", "east").await;
    eventually_served_by(&east, &["e3"]).await;
    e3.shutdown().await;
    w1.shutdown().await;
}
