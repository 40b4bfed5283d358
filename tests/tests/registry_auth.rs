//! Registry authentication from the registry URL's user information: ZooKeeper digest, Nacos
//! login. A refused client fails with `Unauthorized` and the server's reason.

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

/// The Nacos server with open-API authentication that `scripts/test.sh` starts, as
/// `user:password@host:port` in `RPC_TEST_NACOS_AUTH`; `None` (skipped loudly) without it.
fn nacos_with_login() -> Option<(String, String)> {
    match std::env::var("RPC_TEST_NACOS_AUTH") {
        Ok(v) if v.contains('@') => {
            let (credentials, address) = v.rsplit_once('@').expect("checked");
            Some((credentials.to_string(), address.to_string()))
        }
        _ => {
            eprintln!(
                "\n*** SKIPPED: RPC_TEST_NACOS_AUTH is not set (`bash scripts/test.sh` starts a \
                 Nacos server with login) ***\n"
            );
            None
        }
    }
}

#[tokio::test]
async fn nacos_login_lets_peers_in_and_keeps_others_out() {
    let Some((credentials, address)) = nacos_with_login() else {
        return;
    };
    let namespace = unique("ns");
    let with = |userinfo: &str| {
        Url::parse(&format!(
            "nacos://{userinfo}{address}?namespace={namespace}&poll=200&beat=1000&timeout=3000"
        ))
        .expect("url")
    };
    let interface = unique("org.example.NacosSecured");
    let p = provider(&interface, 20896);
    let prov = client(&with(&format!("{credentials}@")), "provider").await;
    prov.register(&p).await.expect("register after login");
    let cons = client(&with(&format!("{credentials}@")), "consumer").await;
    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(
        &rec,
        // Each client logs in first (a password hash on the server): generous under load.
        Duration::from_secs(20),
        "p, seen by a client that logged in",
        |l| l == std::slice::from_ref(&p),
    )
    .await;

    let (user, _) = credentials.split_once(':').expect("user:password");
    for (who, userinfo, names) in [
        ("anonymous", String::new(), "HTTP 403"),
        (
            "wrong password",
            format!("{user}:not-the-password@"),
            "/nacos/v1/auth/login",
        ),
    ] {
        let outsider = client(&with(&userinfo), who).await;
        let err = outsider
            .lookup(&consumer(&interface))
            .await
            .expect_err("refused without a valid login");
        assert!(
            matches!(err.kind(), ErrorKind::Unauthorized),
            "{who}: {err}"
        );
        assert!(
            err.message().contains(names),
            "{who}: the cause is named: {err}"
        );
    }
    prov.unregister(&p).await.expect("unregister");
}
