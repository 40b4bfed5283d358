//! `mock` runs once per reference, around the cluster: a `fail:` fallback answers only when
//! the cluster has given up (retries included), and `force:` answers without calling any
//! provider. Two real `dubbo` providers on 127.0.0.1, a `Consumer` reference over both.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rpc_core::bootstrap::Consumer;
use rpc_core::config::keys;
use rpc_core::protocol::Exporter;
use rpc_core::{ErrorKind, Invocation, Invoker, Response, Result, RpcError, Url, Value};
use rpc_tests::{dubbo, echo, INTERFACE, VERSION};

/// `echo` answers with its name, or fails with a retriable error while `failing` is set.
struct Provider {
    url: Url,
    name: &'static str,
    failing: AtomicBool,
    calls: AtomicU64,
}

#[async_trait::async_trait]
impl Invoker for Provider {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn invoke(&self, _: Invocation) -> Result<Response> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(RpcError::new(ErrorKind::LimitExceeded, "busy"));
        }
        Ok(Response::value(Value::typed(self.name.to_string())))
    }
}

async fn provider(name: &'static str, failing: bool) -> (Arc<Provider>, Box<dyn Exporter>) {
    let url = Url::parse(&format!(
        "dubbo://127.0.0.1:0/{INTERFACE}?version={VERSION}"
    ))
    .expect("url");
    let p = Arc::new(Provider {
        url: url.clone(),
        name,
        failing: AtomicBool::new(failing),
        calls: AtomicU64::new(0),
    });
    let exporter = dubbo().export(url, p.clone()).await.expect("export");
    (p, exporter)
}

/// A reference over `exporters` with one retry and `mock`. The circuit breaker is off so
/// that every attempt reaches a provider and can be counted.
async fn reference(exporters: &[&dyn Exporter], mock: &str) -> Arc<dyn Invoker> {
    let consumer = Consumer::builder()
        .without_env()
        .no_registry()
        .build()
        .await
        .expect("consumer");
    let direct: Vec<String> = exporters.iter().map(|e| e.url().to_string()).collect();
    let url = Url::parse(&format!(
        "consumer://127.0.0.1/{INTERFACE}?version={VERSION}"
    ))
    .expect("url")
    .with_param(keys::URL, direct.join(","))
    .with_param(keys::RETRIES, 1)
    .with_param(keys::FILTER, "-circuitbreaker")
    .with_param(keys::MOCK, mock);
    consumer.refer_url(url).await.expect("reference")
}

#[tokio::test]
async fn a_fail_mock_waits_for_the_retries() {
    let (good, good_exp) = provider("good", false).await;
    let (bad, bad_exp) = provider("bad", true).await;
    let r = reference(&[&*good_exp, &*bad_exp], "fail:return \"mocked\"").await;
    // Whichever provider the balancer tries first, the retry reaches the good one: the
    // fallback must never answer for the first failed attempt.
    for _ in 0..30 {
        assert_eq!(echo(&*r, "hi").await.expect("answered"), "good");
    }
    assert!(
        bad.calls.load(Ordering::SeqCst) > 0,
        "the failing provider was tried"
    );

    // Every provider failing: the cluster gives up after its retry, then the mock answers.
    good.failing.store(true, Ordering::SeqCst);
    let before = good.calls.load(Ordering::SeqCst) + bad.calls.load(Ordering::SeqCst);
    assert_eq!(echo(&*r, "hi").await.expect("fallback"), "mocked");
    let after = good.calls.load(Ordering::SeqCst) + bad.calls.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        2,
        "one attempt and one retry before the fallback"
    );
    good_exp.unexport().await;
    bad_exp.unexport().await;
}

#[tokio::test]
async fn a_force_mock_calls_no_provider() {
    let (good, good_exp) = provider("good", false).await;
    let r = reference(&[&*good_exp], "force:return \"forced\"").await;
    assert_eq!(echo(&*r, "hi").await.expect("forced"), "forced");
    assert_eq!(good.calls.load(Ordering::SeqCst), 0);
    good_exp.unexport().await;
}

#[tokio::test]
async fn without_a_mock_the_cluster_error_comes_through() {
    let (bad, bad_exp) = provider("bad", true).await;
    let r = reference(&[&*bad_exp], "").await;
    let e = echo(&*r, "hi").await.expect_err("no fallback");
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert_eq!(
        bad.calls.load(Ordering::SeqCst),
        2,
        "first attempt and one retry"
    );
    bad_exp.unexport().await;
}

#[tokio::test]
async fn a_fail_mock_answers_when_no_provider_is_left() {
    let (_gone, exporter) = provider("gone", false).await;
    let r = reference(&[&*exporter], "fail:return \"mocked\"").await;
    assert_eq!(echo(&*r, "hi").await.expect("served"), "gone");
    exporter.unexport().await;
    // The provider's port is closed: the cluster has nothing to call, the mock answers.
    assert_eq!(echo(&*r, "hi").await.expect("fallback"), "mocked");
}
