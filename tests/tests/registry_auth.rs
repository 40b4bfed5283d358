//! ZooKeeper digest authentication from the registry URL's user information.

use std::time::Duration;

use rpc_core::registry::testing::Recorder;
use rpc_core::{ErrorKind, Url};
use rpc_tests::registry::{client, consumer, expect_providers, provider, unique, Backend};

#[tokio::test]
async fn zookeeper_digest_auth_lets_peers_in_and_keeps_others_out() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let namespace = unique("ns");
    let authed = Url::parse(&format!(
        "zookeeper://ann:s3cret@{address}?root={namespace}&session=2000&timeout=1000"
    ))
    .expect("url");
    let interface = unique("org.example.Secured");
    let p = provider(&interface, 20895);

    let prov = client(&authed, "provider").await;
    prov.register(&p).await.expect("register with credentials");
    let cons = client(&authed, "consumer").await;
    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(
        &rec,
        Duration::from_secs(2),
        "p with the same credentials",
        |l| l == std::slice::from_ref(&p),
    )
    .await;

    let anonymous = client(&Backend::Zookeeper.url_at(&address, &namespace), "anon").await;
    let err = anonymous
        .lookup(&consumer(&interface))
        .await
        .expect_err("nodes created with credentials are not readable without them");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
}
