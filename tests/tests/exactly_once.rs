//! A non-idempotent `charge(order, amount)` keyed by its order id, under failover, with one
//! provider killed mid-call and responses dropped on purpose: every order is charged exactly
//! once (the providers' own ledger says so) and every call returns its charge's receipt.
//!
//! The three providers share one idempotency store (`idempotency.store=sharedtest`, a
//! stand-in for a shared database: the retry of a call whose first provider died must find
//! the key wherever it lands). Each provider runs on a runtime of its own; killing one drops
//! every task on it where it stands, charges in the middle of running included.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rpc_core::bootstrap::{Consumer, Provider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::extension::Activate;
use rpc_core::filter::Filter;
use rpc_core::idempotency::{
    IdempotencyStore, IdempotencyStoreFactory, MemoryStore, REPLAYED_ATTACHMENT,
};
use rpc_core::{Invocation, Invoker, Response, Url};
use rpc_tests::isolated::IsolatedProvider;

#[rpc_core::service(name = "test.Payments", version = "1.0")]
pub trait Payments {
    /// Charges `amount` to `order`; the receipt names the provider that charged it.
    #[idempotency_key(order)]
    async fn charge(&self, order: String, amount: u64) -> String;

    /// Settles `order`, taking `millis` to do it.
    #[idempotency_key(order)]
    async fn settle(&self, order: String, millis: u64) -> String;
}

/// What the providers did, seen from inside them.
#[derive(Default)]
struct Ledger {
    /// Order → receipts of every charge that ran to its end.
    charged: Mutex<HashMap<String, Vec<String>>>,
    /// Charges that started, per provider.
    started: [AtomicU64; 3],
    /// Charges that ran to their end, per provider.
    finished: [AtomicU64; 3],
    /// Order → how many times `settle` started for it.
    settled: Mutex<HashMap<String, u32>>,
}

fn ledger() -> &'static Ledger {
    static L: OnceLock<Ledger> = OnceLock::new();
    L.get_or_init(Ledger::default)
}

struct Charger {
    index: usize,
}

impl Payments for Charger {
    async fn charge(&self, order: String, amount: u64) -> String {
        let l = ledger();
        l.started[self.index].fetch_add(1, Ordering::SeqCst);
        // The work takes a while: a kill lands in the middle of some charges.
        tokio::time::sleep(Duration::from_millis(5 + fastrand::u64(..20))).await;
        let receipt = format!("{order}:{amount}:p{}", self.index);
        l.charged
            .lock()
            .expect("ledger")
            .entry(order)
            .or_default()
            .push(receipt.clone());
        l.finished[self.index].fetch_add(1, Ordering::SeqCst);
        receipt
    }

    async fn settle(&self, order: String, millis: u64) -> String {
        *ledger()
            .settled
            .lock()
            .expect("ledger")
            .entry(order.clone())
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(millis)).await;
        format!("{order} settled by p{}", self.index)
    }
}

/// One store shared by every provider of this process: what a shared-store plugin over a
/// database gives providers on many machines.
struct SharedTestStore;

impl IdempotencyStoreFactory for SharedTestStore {
    fn open(&self, _: &Url) -> rpc_core::Result<Arc<dyn IdempotencyStore>> {
        static STORE: OnceLock<Arc<MemoryStore>> = OnceLock::new();
        Ok(STORE
            .get_or_init(|| Arc::new(MemoryStore::new(100_000, 64 << 20)))
            .clone())
    }
}

rpc_core::register!(dyn IdempotencyStoreFactory, "sharedtest", || Arc::new(
    SharedTestStore
));

/// Responses lost on the way back, on purpose: the first answer of every fifth order is held
/// until after the consumer stopped waiting (it arrives late and is dropped). Answers served
/// from the store are counted and let through.
struct DropFirstAnswers;

static DELAYED: AtomicU64 = AtomicU64::new(0);
static REPLAYED: AtomicU64 = AtomicU64::new(0);

/// The consumer's per-attempt timeout of `charge`, and how long a dropped answer is held.
const TIMEOUT_MS: u64 = 400;
const HELD_MS: u64 = 700;

#[async_trait::async_trait]
impl Filter for DropFirstAnswers {
    async fn invoke(&self, next: &dyn Invoker, inv: Invocation) -> rpc_core::Result<Response> {
        let drop_it = inv.method() == "charge"
            && inv
                .attachments()
                .get(rpc_core::idempotency::KEY_ATTACHMENT)
                .and_then(|k| k.trim_matches('"').rsplit('-').next()?.parse::<u32>().ok())
                .is_some_and(|n| n % 5 == 0);
        let response = next.invoke(inv).await?;
        if response.attachments.get(REPLAYED_ATTACHMENT) == Some("replayed") {
            REPLAYED.fetch_add(1, Ordering::SeqCst);
        } else if drop_it {
            DELAYED.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(HELD_MS)).await;
        }
        Ok(response)
    }
}

rpc_core::register!(
    dyn Filter,
    "dropfirstanswers",
    || Arc::new(DropFirstAnswers),
    activate = Activate::provider(-25_000)
);

fn provider(registry: String, index: usize) -> IsolatedProvider {
    IsolatedProvider::start(move || {
        Provider::builder()
            .without_env()
            .application("payments")
            .registry(&registry)
            .expect("registry")
            .protocol("dubbo", 0)
            .param(keys::IDEMPOTENCY_STORE, "sharedtest")
            .expect("key")
            .service(PaymentsServer::new(Charger { index }))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_is_charged_exactly_once_through_kills_and_lost_answers() {
    let registry = format!("memory://{}", rpc_tests::registry::unique("exactly-once"));
    let mut providers: Vec<Option<IsolatedProvider>> = (0..3)
        .map(|i| Some(provider(registry.clone(), i)))
        .collect();
    let client: PaymentsClient = Consumer::builder()
        .without_env()
        .application("shop")
        .registry(&registry)
        .expect("registry")
        .reference_config(
            "test.Payments",
            ServiceConfig::default().method_param("charge", keys::TIMEOUT, TIMEOUT_MS),
        )
        .build()
        .await
        .expect("consumer")
        .reference()
        .await
        .expect("reference");

    const ORDERS: u32 = 400;
    const CALLERS: u32 = 32;
    let done = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let (client, done) = (client.clone(), done.clone());
        callers.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for o in (c..ORDERS).step_by(CALLERS as usize) {
                let order = format!("order-{o}");
                let amount = u64::from(o) * 10 + 1;
                let r = client.charge(order.clone(), amount).await;
                done.fetch_add(1, Ordering::SeqCst);
                receipts.push((order, amount, r));
            }
            receipts
        }));
    }
    // Kill provider 0 once a third of the orders are through, with charges running on it.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < u64::from(ORDERS / 3) {
        assert!(tokio::time::Instant::now() < until, "load stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let l = ledger();
    let kill_at = l.started[0].load(Ordering::SeqCst);
    providers[0].take().expect("provider 0").kill();

    let mut results = Vec::new();
    for c in callers {
        results.extend(c.await.expect("caller"));
    }
    let charged = l.charged.lock().expect("ledger").clone();
    let (started0, finished0) = (
        l.started[0].load(Ordering::SeqCst),
        l.finished[0].load(Ordering::SeqCst),
    );
    let delayed = DELAYED.load(Ordering::SeqCst);
    let replayed = REPLAYED.load(Ordering::SeqCst);
    println!(
        "orders {ORDERS}, callers {CALLERS}: charges run {} (provider 0 started {started0}, finished {finished0}, killed after {kill_at} starts), answers held back {delayed}, answers replayed from the store {replayed}",
        charged.values().map(Vec::len).sum::<usize>()
    );

    // Every call returned the receipt of the one charge of its order.
    assert_eq!(results.len(), ORDERS as usize);
    for (order, amount, r) in &results {
        let receipt = r.as_ref().unwrap_or_else(|e| panic!("{order} failed: {e}"));
        let runs = charged.get(order).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            runs.len(),
            1,
            "{order} charged {} times: {runs:?}",
            runs.len()
        );
        assert_eq!(receipt, &runs[0], "{order}: the receipt of its charge");
        assert!(receipt.starts_with(&format!("{order}:{amount}:")));
    }
    assert_eq!(
        charged.len(),
        ORDERS as usize,
        "no charge of an unknown order"
    );
    // The faults did happen: answers were held back and answered again from the store, and
    // the kill cut charges off in the middle.
    assert!(delayed >= u64::from(ORDERS / 5) / 2, "held back {delayed}");
    assert!(replayed >= delayed / 2, "replayed {replayed} of {delayed}");
    assert!(
        started0 > finished0,
        "the kill landed mid-call ({started0} started, {finished0} finished)"
    );
    drop(providers);
}

/// A call slower than the consumer's per-attempt timeout: the retry reaches the provider
/// while the first attempt still runs, waits for it and returns its answer; the method ran
/// once. One provider with the default per-provider store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_during_a_slow_first_attempt_waits_for_its_answer() {
    let registry = format!("memory://{}", rpc_tests::registry::unique("slow-settle"));
    let p = Provider::builder()
        .without_env()
        .registry(&registry)
        .expect("registry")
        .protocol("dubbo", 0)
        .service(PaymentsServer::new(Charger { index: 2 }))
        .start()
        .await
        .expect("provider");
    let client: PaymentsClient = Consumer::builder()
        .without_env()
        .registry(&registry)
        .expect("registry")
        .reference_config(
            "test.Payments",
            ServiceConfig::default().method_param("settle", keys::TIMEOUT, 300),
        )
        .build()
        .await
        .expect("consumer")
        .reference()
        .await
        .expect("reference");
    let t0 = tokio::time::Instant::now();
    // 450 ms of work, 300 ms per attempt: attempt 1 times out, attempt 2 waits 150 ms more.
    let r = client
        .settle("slow-a".into(), 450)
        .await
        .expect("answered by the retry");
    assert_eq!(r, "slow-a settled by p2");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(440) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // A call that outlasts every attempt fails, and still ran once only.
    let e = client
        .settle("slow-b".into(), 2000)
        .await
        .expect_err("three attempts of 300 ms");
    assert_eq!(e.kind(), rpc_core::ErrorKind::Timeout, "{e}");
    let settled = ledger().settled.lock().expect("ledger").clone();
    assert_eq!(settled.get("slow-a"), Some(&1), "{settled:?}");
    assert_eq!(settled.get("slow-b"), Some(&1), "{settled:?}");
    // Once done, a later call with the same key is answered from the store at once.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let t1 = tokio::time::Instant::now();
    assert_eq!(
        client.settle("slow-b".into(), 2000).await.expect("stored"),
        "slow-b settled by p2"
    );
    assert!(
        t1.elapsed() < Duration::from_millis(200),
        "{:?}",
        t1.elapsed()
    );
    assert_eq!(
        ledger().settled.lock().expect("ledger").get("slow-b"),
        Some(&1)
    );
    p.shutdown().await;
}
