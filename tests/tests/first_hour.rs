//! What a new user meets first: a mistyped extension name fails when the reference or export
//! is built, an error from the provider reads as one clean line, and the wait for a
//! reference's first providers is the documented `check` key.

use std::time::{Duration, Instant};

use rpc_core::bootstrap::{Consumer, Provider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::serialize::ids;
use rpc_core::{ErrorKind, Invocation, Payload, ServiceKey, Value};
use rpc_examples::{GreeterClient, GreeterServer, SignedGreeter};
use rpc_tests::greeter;
use rpc_tests::registry::{unique, Backend};

fn local_registry() -> String {
    Backend::Local.url_at("", &unique("first-hour")).to_string()
}

#[tokio::test]
async fn a_mistyped_balancer_fails_the_reference_with_a_suggestion() {
    let consumer = Consumer::builder()
        .without_env()
        .no_registry()
        .reference_config(
            "org.example.Greeter",
            ServiceConfig::default()
                .param(keys::URL, "dubbo://127.0.0.1:1")
                .param(keys::LOADBALANCE, "rr"),
        )
        .build()
        .await
        .expect("consumer");
    let err = consumer
        .reference::<GreeterClient>()
        .await
        .expect_err("an unknown balancer is refused when the reference is built");
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    assert!(
        text.starts_with("config: 'loadbalance': unknown loadbalance 'rr'"),
        "{text}"
    );
    assert!(text.contains("did you mean 'roundrobin'?"), "{text}");

    // A method-level name and a filter list are checked the same way.
    let base = || ServiceConfig::default().param(keys::URL, "dubbo://127.0.0.1:1");
    for (key, settings, wanted) in [
        (
            "greet.cluster",
            base().method_param("greet", keys::CLUSTER, "failfst"),
            "did you mean 'failfast'?",
        ),
        (
            "filter",
            base().param(keys::FILTER, "-acesslog"),
            "unknown filter 'acesslog'",
        ),
        (
            "serialization",
            base().param(keys::SERIALIZATION, "msgpak"),
            "did you mean 'msgpack'?",
        ),
    ] {
        let consumer = Consumer::builder()
            .without_env()
            .no_registry()
            .reference_config("org.example.Greeter", settings)
            .build()
            .await
            .expect("consumer");
        let err = consumer.reference::<GreeterClient>().await.expect_err(key);
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(wanted), "{key}: {err}");
    }
}

#[tokio::test]
async fn a_provider_configured_with_an_unknown_name_does_not_start() {
    let file = std::env::temp_dir().join(format!("{}.toml", unique("first-hour")));
    std::fs::write(
        &file,
        "[services.\"org.example.Greeter\"]\nloadbalance = \"rr\"\n",
    )
    .expect("write config");
    let started = Provider::builder()
        .without_env()
        .no_registry()
        .config_file(&file)
        .expect("the file parses: the key exists")
        .protocol("dubbo", 0)
        .service(GreeterServer::new(SignedGreeter { name: "p".into() }))
        .start()
        .await;
    std::fs::remove_file(&file).ok();
    let Err(err) = started else {
        panic!("a provider with an unknown balancer name started");
    };
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string().contains("did you mean 'roundrobin'?"),
        "{err}"
    );
}

/// A provider-side decode failure reaches the caller as one line: its kind once, the
/// service and method once, readable type names.
#[tokio::test]
async fn an_error_from_the_provider_reads_as_one_clean_line() {
    let reg = local_registry();
    let p = greeter::provider(&reg, "p1", 0).await;
    let consumer = Consumer::builder()
        .without_env()
        .no_registry()
        .reference_config(
            "org.example.Greeter",
            ServiceConfig::default()
                .param(
                    keys::URL,
                    format!("dubbo://127.0.0.1:{}", p.port().expect("port")),
                )
                .param(keys::SERIALIZATION, "json"),
        )
        .build()
        .await
        .expect("consumer");
    let url = consumer
        .config()
        .reference_url("org.example.Greeter", &[])
        .with_path("org.example.Greeter");
    let invoker = consumer.refer_url(url).await.expect("reference");
    let call = Invocation::new(
        ServiceKey::new("org.example.Greeter", None, Some("1.0.0")),
        "greet".to_string(),
        Value::Encoded(Payload {
            serialization: ids::JSON,
            bytes: b"[1]".to_vec().into(),
        }),
    );
    let err = invoker.invoke(call).await.expect_err("wrong argument type");
    assert_eq!(err.kind(), ErrorKind::Codec);
    let text = err.to_string();
    assert_eq!(text.matches("codec:").count(), 1, "{text}");
    assert_eq!(text.matches("(service ").count(), 1, "{text}");
    assert!(
        !text.contains("alloc::") && !text.contains("status 40"),
        "{text}"
    );
    assert!(text.contains("greet(name: String)"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    p.shutdown().await;
}

/// With no provider registered, a reference waits `check` ms for the first ones, then comes
/// up (calls fail with `NoProvider` until providers appear); `check=0` does not wait.
#[tokio::test]
async fn the_wait_for_first_providers_is_the_check_key() {
    let reg = local_registry();
    for check in [0u64, 200] {
        let started = Instant::now();
        let client =
            greeter::client(&reg, ServiceConfig::default().param(keys::CHECK, check)).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(check) && waited < Duration::from_millis(check + 2000),
            "check={check} waited {waited:?}"
        );
        let err = client.greet("ann".into()).await.expect_err("no provider");
        assert_eq!(err.kind(), ErrorKind::NoProvider, "{err}");
    }
}
