//! The shared idempotency store in etcd (`idempotency.store = "etcd"`), against a real etcd
//! (`RPC_TEST_ETCD`, started by `scripts/test.sh`; the tests skip themselves loudly without
//! it): a key claimed by one provider is waited for by another and answered once; a claim
//! whose holder died lapses with its lease; and end to end, a retry that lands on another
//! provider is answered from the first one's run, also when the first provider was killed
//! mid-call.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rpc_core::bootstrap::{Consumer, Provider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::idempotency::{Claim, IdempotencyStoreFactory, StoredResponse};
use rpc_core::{ErrorKind, Payload, Url};
use rpc_registry_etcd::idempotency::EtcdStoreFactory;
use rpc_tests::isolated::IsolatedProvider;
use rpc_tests::registry::{unique, Backend};
use tokio::time::Instant;

fn store_url(etcd: &str, prefix: &str, run_ms: u64) -> Url {
    Url::parse(&format!(
        "dubbo://127.0.0.1:1/S?idempotency.store=etcd&idempotency.etcd={etcd}&idempotency.etcd.prefix={prefix}&idempotency.run={run_ms}"
    ))
    .expect("url")
}

fn answer(text: &str) -> StoredResponse {
    StoredResponse {
        business_error: false,
        payload: Payload {
            serialization: 2,
            bytes: text.as_bytes().to_vec().into(),
        },
        attachments: vec![("by".into(), "a".into())],
    }
}

#[tokio::test]
async fn two_providers_share_keys_and_a_dead_holders_claim_lapses() {
    let Some(etcd) = Backend::Etcd.address() else {
        return;
    };
    let prefix = format!("/rpc-it/{}/", unique("idem"));
    // Two providers' stores (two opens, two clients) on one etcd.
    let url = store_url(&etcd, &prefix, 1000);
    let a = EtcdStoreFactory.open(&url).expect("store a");
    let b = EtcdStoreFactory.open(&url).expect("store b");
    let far = || Instant::now() + Duration::from_secs(10);

    assert!(matches!(
        a.claim("k1", far()).await.expect("claim"),
        Claim::Run
    ));
    // b waits while a runs, then gets a's answer.
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move {
            b.claim("k1", Instant::now() + Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "b waits for a");
    a.complete("k1", answer("first"), Duration::from_secs(60))
        .await
        .expect("complete");
    match waiter.await.expect("join").expect("claim") {
        Claim::Done(r) => assert_eq!(r, answer("first")),
        Claim::Run => panic!("b must not run k1 again"),
    }
    // Released without an answer: the next claimant runs it.
    assert!(matches!(
        a.claim("k2", far()).await.expect("claim"),
        Claim::Run
    ));
    a.release("k2");
    let t0 = Instant::now();
    loop {
        match b
            .claim("k2", Instant::now() + Duration::from_millis(200))
            .await
        {
            Ok(Claim::Run) => break,
            Ok(Claim::Done(_)) => panic!("nothing was stored for k2"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
                assert!(
                    t0.elapsed() < Duration::from_secs(3),
                    "release never landed"
                );
            }
        }
    }
    // A holder that dies never releases: its claim lapses with its lease (run 1 s + 1 s).
    assert!(matches!(
        a.claim("k3", far()).await.expect("claim"),
        Claim::Run
    ));
    drop(a);
    let e = match b
        .claim("k3", Instant::now() + Duration::from_millis(300))
        .await
    {
        Err(e) => e,
        Ok(c) => panic!("k3 is held: {c:?}"),
    };
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("still running"), "{e}");
    let t0 = Instant::now();
    assert!(matches!(
        b.claim("k3", Instant::now() + Duration::from_secs(10))
            .await
            .expect("claim after the lease"),
        Claim::Run
    ));
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(8), "lapsed after {waited:?}");
    // A stored answer expires with its window.
    b.complete("k3", answer("short"), Duration::from_secs(1))
        .await
        .expect("complete");
    assert!(matches!(
        b.claim("k3", far()).await.expect("claim"),
        Claim::Done(_)
    ));
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert!(matches!(
        b.claim("k3", far()).await.expect("claim"),
        Claim::Run
    ));
    b.release("k3");
}

/// A claim whose answer could not be stored (etcd refused it) is released, as the filter
/// asks: the next attempt runs at once, instead of waiting out the claim's lease (a minute
/// here) while nothing runs.
#[tokio::test]
async fn a_claim_whose_answer_was_not_stored_is_released() {
    let Some(etcd) = Backend::Etcd.address() else {
        return;
    };
    let prefix = format!("/rpc-it/{}/", unique("idem"));
    let url = store_url(&etcd, &prefix, 60_000);
    let a = EtcdStoreFactory.open(&url).expect("store a");
    let b = EtcdStoreFactory.open(&url).expect("store b");
    let far = || Instant::now() + Duration::from_secs(10);
    assert!(matches!(
        a.claim("k", far()).await.expect("claim"),
        Claim::Run
    ));
    // A window longer than etcd grants a lease for: the answer is refused.
    a.complete("k", answer("done"), Duration::from_secs(10_000_000_000))
        .await
        .expect_err("etcd refuses the window's lease");
    a.release("k");
    let soon = Instant::now() + Duration::from_secs(8);
    assert!(
        matches!(b.claim("k", soon).await.expect("claim"), Claim::Run),
        "the key was released"
    );
}

#[tokio::test]
async fn a_missing_endpoint_is_a_config_error() {
    let url = Url::parse("dubbo://127.0.0.1:1/S?idempotency.store=etcd").expect("url");
    let e = EtcdStoreFactory.open(&url).err().expect("no endpoint");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("needs idempotency.etcd"), "{e}");
}

#[rpc_core::service(name = "test.Settlements", version = "1.0")]
pub trait Settlements {
    /// Settles `order`, taking `millis`.
    #[idempotency_key(order)]
    async fn settle(&self, order: String, millis: u64) -> String;
}

/// Order → the providers that started settling it.
fn started() -> &'static Mutex<HashMap<String, Vec<usize>>> {
    static S: OnceLock<Mutex<HashMap<String, Vec<usize>>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

struct Settler {
    index: usize,
}

impl Settlements for Settler {
    async fn settle(&self, order: String, millis: u64) -> String {
        started()
            .lock()
            .expect("lock")
            .entry(order.clone())
            .or_default()
            .push(self.index);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        format!("{order} settled by p{}", self.index)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_provider_is_answered_from_the_first_ones_run() {
    let Some(etcd) = Backend::Etcd.address() else {
        return;
    };
    let registry = format!("memory://{}", unique("idem-etcd"));
    let prefix = format!("/rpc-it/{}/", unique("idem-e2e"));
    let start = |index: usize| {
        let (registry, etcd, prefix) = (registry.clone(), etcd.clone(), prefix.clone());
        IsolatedProvider::start(move || {
            Provider::builder()
                .without_env()
                .registry(&registry)
                .expect("registry")
                .protocol("dubbo", 0)
                .param(keys::IDEMPOTENCY_STORE, "etcd")
                .and_then(|b| b.param("idempotency.etcd", &etcd))
                .and_then(|b| b.param("idempotency.etcd.prefix", &prefix))
                .and_then(|b| b.param(keys::IDEMPOTENCY_RUN, 2000))
                .expect("keys")
                .service(SettlementsServer::new(Settler { index }))
        })
    };
    let mut providers = vec![Some(start(0)), Some(start(1))];
    let client: SettlementsClient = Consumer::builder()
        .without_env()
        .registry(&registry)
        .expect("registry")
        .reference_config(
            "test.Settlements",
            ServiceConfig::default()
                .method_param("settle", keys::TIMEOUT, 1000)
                // Enough attempts to outlast a dead holder's claim (its lease expires on the
                // server's clock, up to a second late) on a loaded machine.
                .method_param("settle", keys::RETRIES, 8),
        )
        .build()
        .await
        .expect("consumer")
        .reference()
        .await
        .expect("reference");

    // 1.5 s of work against 1 s attempts: the retry goes to the other provider, which
    // waits for the first one's run through etcd. Once, whichever provider ran it.
    for order in ["e-1", "e-2", "e-3"] {
        let reply = client.settle(order.into(), 1500).await.expect("settled");
        let runs = started()
            .lock()
            .expect("lock")
            .get(order)
            .cloned()
            .unwrap_or_default();
        assert_eq!(runs.len(), 1, "{order} ran on {runs:?}");
        assert_eq!(reply, format!("{order} settled by p{}", runs[0]));
    }

    // Kill the provider that runs a call, mid-call: its claim lapses (run 2 s + 1 s), then
    // the other provider runs the call, and the caller gets that answer.
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.settle("e-kill".into(), 500).await })
    };
    let until = Instant::now() + Duration::from_secs(5);
    let first = loop {
        if let Some(p) = started()
            .lock()
            .expect("lock")
            .get("e-kill")
            .and_then(|v| v.first().copied())
        {
            break p;
        }
        assert!(Instant::now() < until, "the call never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    providers[first].take().expect("running provider").kill();
    let reply = call.await.expect("join").expect("answered after the kill");
    let runs = started()
        .lock()
        .expect("lock")
        .get("e-kill")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        runs,
        [first, 1 - first],
        "cut off on p{first}, then run once on the other"
    );
    assert_eq!(reply, format!("e-kill settled by p{}", 1 - first));
    drop(providers);
}
