//! The `dubbo` protocol over TLS, end to end through the bootstrap, with certificates made
//! in the test: a call over TLS; a TLS and a plaintext provider of one service side by side;
//! what the registry sees; mTLS refusing a client without a certificate; a wrong CA refused
//! with a clear error.

use rpc_core::bootstrap::{Consumer, Provider, RunningProvider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::ErrorKind;
use rpc_examples::{GreeterClient, GreeterServer, SignedGreeter};
use rpc_tests::greeter::who;
use rpc_tests::pki::{Ca, Leaf};

async fn provider(
    registry: Option<&str>,
    name: &str,
    tls: Option<(&Leaf, Option<&Ca>)>,
) -> RunningProvider {
    let mut b = Provider::builder()
        .without_env()
        .application("greeters")
        .protocol("dubbo", 0);
    b = match registry {
        Some(r) => b.registry(r).expect("registry"),
        None => b.no_registry(),
    };
    if let Some((leaf, client_ca)) = tls {
        b = b
            .param(keys::TLS, true)
            .and_then(|b| b.param(keys::TLS_CERT, leaf.cert.display()))
            .and_then(|b| b.param(keys::TLS_KEY, leaf.key.display()))
            .expect("keys");
        if let Some(ca) = client_ca {
            b = b.param(keys::TLS_CA, ca.pem().display()).expect("key");
        }
    }
    b.service(GreeterServer::new(SignedGreeter {
        name: name.to_string(),
    }))
    .start()
    .await
    .expect("provider starts")
}

/// A consumer with the given application-level TLS keys, referring to `target` (a registry
/// URL, or a direct `dubbo://` URL).
async fn client(target: &str, tls_keys: &[(&str, String)]) -> rpc_core::Result<GreeterClient> {
    let mut b = Consumer::builder().without_env().application("callers");
    let mut settings = ServiceConfig::default();
    if target.starts_with("dubbo://") {
        b = b.no_registry();
        settings = settings.param(keys::URL, target);
    } else {
        b = b.registry(target)?;
    }
    for (k, v) in tls_keys {
        b = b.param(k, v)?;
    }
    b.reference_config("org.example.Greeter", settings)
        .build()
        .await?
        .reference()
        .await
}

fn direct(p: &RunningProvider) -> String {
    format!(
        "dubbo://127.0.0.1:{}/org.example.Greeter?tls=true",
        p.port().expect("port")
    )
}

#[tokio::test]
async fn tls_and_plaintext_providers_serve_one_service_side_by_side() {
    let ca = Ca::new("servers");
    let leaf = ca.leaf("provider");
    let registry = format!("memory://{}", rpc_tests::registry::unique("tls"));
    let secure = provider(Some(&registry), "secure", Some((&leaf, None))).await;
    let plain = provider(Some(&registry), "plain", None).await;

    // The registry sees tls=true on the TLS provider, and none of its local key material.
    let url = secure.urls().into_iter().next().expect("registered");
    assert_eq!(url.param(keys::TLS), Some("true"), "{url}");
    for k in [
        keys::TLS_CERT,
        keys::TLS_KEY,
        keys::TLS_CA,
        keys::TLS_RELOAD,
    ] {
        assert_eq!(url.param(k), None, "{k} must not be published: {url}");
    }
    assert_eq!(plain.urls()[0].param(keys::TLS), None);

    let c = client(&registry, &[(keys::TLS_CA, ca.pem().display().to_string())])
        .await
        .expect("reference");
    let mut by = std::collections::BTreeMap::new();
    for i in 0..40 {
        let reply = c
            .greet(format!("n{i}"))
            .await
            .expect("call")
            .expect("greeting");
        *by.entry(who(&reply)).or_insert(0) += 1;
    }
    assert_eq!(
        by.keys().cloned().collect::<Vec<_>>(),
        ["plain", "secure"],
        "both providers answered: {by:?}"
    );
    // A consumer without tls.ca cannot refer the TLS provider, and its calls say why (they
    // go to the plaintext provider only: the TLS one is not in its list).
    let no_ca = client(&registry, &[]).await.expect("reference");
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let reply = no_ca
            .greet(format!("x{i}"))
            .await
            .expect("call")
            .expect("greeting");
        seen.insert(who(&reply));
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["plain"]);
    plain.shutdown().await;
    let e = no_ca
        .greet("y".into())
        .await
        .expect_err("no usable provider");
    assert_eq!(e.kind(), ErrorKind::NoProvider, "{e}");
    assert!(
        e.message().contains("could not be referred") && e.message().contains("set tls.ca"),
        "{e}"
    );
    let plain = provider(Some(&registry), "plain", None).await;
    // A consumer's own `tls=false` does not turn the TLS provider into a plaintext one.
    let c = client(
        &registry,
        &[
            (keys::TLS_CA, ca.pem().display().to_string()),
            (keys::TLS, "false".into()),
        ],
    )
    .await
    .expect("reference");
    for i in 0..10 {
        c.greet(format!("m{i}"))
            .await
            .expect("call")
            .expect("greeting");
    }
    secure.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let servers = Ca::new("mtls-servers");
    let clients = Ca::new("mtls-clients");
    let p = provider(
        None,
        "guarded",
        Some((&servers.leaf("provider"), Some(&clients))),
    )
    .await;
    let me = clients.leaf("consumer");
    let trusted = client(
        &direct(&p),
        &[
            (keys::TLS_CA, servers.pem().display().to_string()),
            (keys::TLS_CERT, me.cert.display().to_string()),
            (keys::TLS_KEY, me.key.display().to_string()),
        ],
    )
    .await
    .expect("reference with a client certificate");
    let reply = trusted
        .greet("ann".into())
        .await
        .expect("call")
        .expect("greeting");
    assert_eq!(who(&reply), "guarded");

    let anonymous = client(
        &direct(&p),
        &[(keys::TLS_CA, servers.pem().display().to_string())],
    )
    .await;
    let e = match anonymous {
        Err(e) => e,
        Ok(c) => c.greet("bob".into()).await.expect_err("refused"),
    };
    // The provider's refusal reaches the caller: on the call that was on the connection
    // (network), or on one made after it closed (no provider, with the reason).
    assert!(
        matches!(e.kind(), ErrorKind::Network | ErrorKind::NoProvider),
        "{e}"
    );
    assert!(e.message().contains("CertificateRequired"), "{e}");

    // A client certificate from a CA the provider does not trust is refused as well.
    let strangers = Ca::new("mtls-strangers");
    let stranger = strangers.leaf("consumer");
    let foreign = client(
        &direct(&p),
        &[
            (keys::TLS_CA, servers.pem().display().to_string()),
            (keys::TLS_CERT, stranger.cert.display().to_string()),
            (keys::TLS_KEY, stranger.key.display().to_string()),
        ],
    )
    .await;
    let e = match foreign {
        Err(e) => e,
        Ok(c) => c.greet("eve".into()).await.expect_err("refused"),
    };
    assert!(
        matches!(e.kind(), ErrorKind::Network | ErrorKind::NoProvider),
        "{e}"
    );
    assert!(e.message().contains("UnknownCA"), "{e}");
    p.shutdown().await;
}

#[tokio::test]
async fn a_wrong_ca_is_refused_with_an_error_that_says_so() {
    let servers = Ca::new("real");
    let p = provider(None, "real", Some((&servers.leaf("provider"), None))).await;
    let other = Ca::new("other");
    let e = client(
        &direct(&p),
        &[(keys::TLS_CA, other.pem().display().to_string())],
    )
    .await
    .expect_err("wrong CA");
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(
        e.message().contains("TLS handshake with 127.0.0.1:")
            && e.message().contains("not signed by a CA in tls.ca"),
        "{e}"
    );
    let e = client(&direct(&p), &[]).await.expect_err("no CA at all");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("set tls.ca"), "{e}");
    // The right CA works on the same provider.
    let ok = client(
        &direct(&p),
        &[(keys::TLS_CA, servers.pem().display().to_string())],
    )
    .await
    .expect("reference");
    ok.greet("zed".into())
        .await
        .expect("call")
        .expect("greeting");
    p.shutdown().await;
}
