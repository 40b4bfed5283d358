//! Per-key ordered execution: 1,000 keys × 50 messages across 3 providers from 64 callers;
//! every provider runs each key's messages one at a time and in order, and a provider added
//! in the middle of the run takes over only its share of the keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rpc_core::bootstrap::{Consumer, Provider, RunningProvider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::ErrorKind;

#[rpc_core::service(name = "test.Orders", version = "1.0")]
pub trait Orders {
    /// Message `seq` of order `key`.
    #[ordered_by(key)]
    async fn put(&self, key: u32, seq: u32) -> u32;
}

/// What the providers saw: per key, `(provider, seq)` in the order the executions started.
#[derive(Default)]
struct Seen {
    log: Mutex<HashMap<u32, Vec<(usize, u32)>>>,
    /// Keys executing right now, per provider (to catch two of one key at once).
    running: Mutex<HashMap<(usize, u32), u32>>,
    overlaps: AtomicU64,
}

fn seen() -> &'static Seen {
    static S: OnceLock<Seen> = OnceLock::new();
    S.get_or_init(Seen::default)
}

struct Recorder {
    index: usize,
}

impl Orders for Recorder {
    async fn put(&self, key: u32, seq: u32) -> u32 {
        let s = seen();
        {
            let mut running = s.running.lock().expect("lock");
            let n = running.entry((self.index, key)).or_insert(0);
            *n += 1;
            if *n > 1 {
                s.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
        s.log
            .lock()
            .expect("lock")
            .entry(key)
            .or_default()
            .push((self.index, seq));
        // Yield a few times: without ordering, later messages of the key would overtake.
        for _ in 0..fastrand::u32(..4) {
            tokio::task::yield_now().await;
        }
        if let Some(n) = s.running.lock().expect("lock").get_mut(&(self.index, key)) {
            *n -= 1;
        }
        seq
    }
}

async fn provider(registry: &str, index: usize) -> RunningProvider {
    Provider::builder()
        .without_env()
        .application("orders")
        .registry(registry)
        .expect("registry")
        .protocol("dubbo", 0)
        .service(OrdersServer::new(Recorder { index }))
        .start()
        .await
        .expect("provider")
}

const KEYS: u32 = 1000;
const MESSAGES: u32 = 50;
/// Messages of one key sent at once (in order, on one connection) before waiting.
const BATCH: u32 = 10;
const CALLERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stay_in_order_and_a_new_provider_takes_only_its_share() {
    let registry = format!("memory://{}", rpc_tests::registry::unique("ordered"));
    let mut providers = Vec::new();
    for i in 0..3 {
        providers.push(provider(&registry, i).await);
    }
    let client: OrdersClient = Consumer::builder()
        .without_env()
        .application("shop")
        .registry(&registry)
        .expect("registry")
        .build()
        .await
        .expect("consumer")
        .reference()
        .await
        .expect("reference");

    // 64 callers; each takes the next key and sends its messages in batches of 10 (all ten
    // in flight at once), round after round, so every key is busy before and after the new
    // provider arrives.
    let next_key = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let run = |round: u32| {
        let mut callers = Vec::new();
        next_key.store(0, Ordering::SeqCst);
        for _ in 0..CALLERS {
            let (client, next_key, sent) = (client.clone(), next_key.clone(), sent.clone());
            callers.push(tokio::spawn(async move {
                loop {
                    let key = next_key.fetch_add(1, Ordering::SeqCst) as u32;
                    if key >= KEYS {
                        return;
                    }
                    let first = round * BATCH;
                    let calls: Vec<_> = (first..first + BATCH)
                        .map(|seq| client.put(key, seq))
                        .collect();
                    for (i, r) in futures_join(calls).await.into_iter().enumerate() {
                        let seq = first + i as u32;
                        assert_eq!(r.expect("put"), seq, "key {key}");
                    }
                    sent.fetch_add(u64::from(BATCH), Ordering::SeqCst);
                }
            }));
        }
        callers
    };
    let rounds = MESSAGES / BATCH;
    let t0 = tokio::time::Instant::now();
    for round in 0..rounds {
        let callers = run(round);
        if round == rounds / 2 {
            // In the middle of this round, while its calls are in flight, a fourth provider.
            while sent.load(Ordering::SeqCst) < u64::from(KEYS * BATCH) * u64::from(round) + 2000 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            providers.push(provider(&registry, 3).await);
        }
        for c in callers {
            c.await.expect("caller");
        }
    }
    let took = t0.elapsed();

    let s = seen();
    assert_eq!(
        s.overlaps.load(Ordering::SeqCst),
        0,
        "two of one key at once"
    );
    let log = s.log.lock().expect("lock").clone();
    assert_eq!(log.len(), KEYS as usize);
    let mut moved = 0usize;
    let mut before = [0usize; 4];
    for (key, entries) in &log {
        assert_eq!(entries.len(), MESSAGES as usize, "key {key}");
        // Each provider saw the key's messages in order.
        for p in 0..4 {
            let seqs: Vec<u32> = entries
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, s)| *s)
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "key {key} on provider {p} out of order: {seqs:?}"
            );
        }
        let first = entries[0].0;
        assert_ne!(first, 3, "key {key} began on the provider that came later");
        before[first] += 1;
        // A key runs on one provider, or moves once, to the new one. The messages in flight
        // while it moves may run on both at once (those sent before the ring changed on the
        // old provider, those sent after on the new one), so the log may interleave them; but
        // every message the old provider ran was sent before every one the new provider ran.
        let on = |p: usize| -> Vec<u32> {
            entries
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, s)| *s)
                .collect()
        };
        let (old, new) = (on(first), on(3));
        assert_eq!(
            old.len() + new.len(),
            MESSAGES as usize,
            "key {key} ran on a provider other than its own and the new one: {entries:?}"
        );
        let handed_over: Vec<u32> = old.iter().chain(&new).copied().collect();
        assert_eq!(
            handed_over,
            (0..MESSAGES).collect::<Vec<_>>(),
            "key {key}: messages on its provider {old:?}, on the new one {new:?}"
        );
        if !new.is_empty() {
            moved += 1;
        }
    }
    let share = moved as f64 / f64::from(KEYS);
    println!(
        "{KEYS} keys x {MESSAGES} messages, {CALLERS} callers, batches of {BATCH}: {:.1} s; keys per provider before: {:?}; moved to the added provider: {moved} ({:.1}% of keys; its fair share 25%)",
        took.as_secs_f64(),
        &before[..3],
        share * 100.0
    );
    assert!(before[..3].iter().all(|n| *n > 150), "spread {before:?}");
    // A quarter is the new provider's share of the ring; with 160 points per provider its
    // share lies within about ±0.07 of that.
    assert!((0.15..=0.35).contains(&share), "moved share {share}");
    for p in providers {
        p.shutdown().await;
    }
}

/// Polls the calls together, first polled in order (so they leave in order).
async fn futures_join<F: std::future::Future>(calls: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn a_full_queue_of_one_key_is_refused_with_a_clear_error() {
    #[rpc_core::service(name = "test.Slow", version = "1.0")]
    pub trait Slow {
        #[ordered_by(key)]
        async fn put(&self, key: u32, seq: u32) -> u32;
    }
    struct Sleeper;
    impl Slow for Sleeper {
        async fn put(&self, _key: u32, seq: u32) -> u32 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            seq
        }
    }
    let registry = format!("memory://{}", rpc_tests::registry::unique("ordered-full"));
    let p = Provider::builder()
        .without_env()
        .registry(&registry)
        .expect("registry")
        .protocol("dubbo", 0)
        .service_with(
            SlowServer::new(Sleeper),
            ServiceConfig::default().method_param("put", keys::ORDERED_QUEUE, 3),
        )
        .start()
        .await
        .expect("provider");
    let client: SlowClient = Consumer::builder()
        .without_env()
        .registry(&registry)
        .expect("registry")
        .build()
        .await
        .expect("consumer")
        .reference()
        .await
        .expect("reference");
    let calls: Vec<_> = (0..6).map(|seq| client.put(9, seq)).collect();
    let results = futures_util::future::join_all(calls).await;
    // One runs, three wait, two are refused; another key is not held up.
    let ok: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(ok, [0, 1, 2, 3]);
    for r in &results[4..] {
        let e = r.as_ref().expect_err("queue full");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(
            e.message().contains("queue of ordering key 9 is full"),
            "{e}"
        );
    }
    assert_eq!(client.put(10, 0).await.expect("other key"), 0);

    // The admin service (what `rpcctl describe` shows) names the ordering argument.
    let admin: rpc_core::bootstrap::admin::AdminClient = Consumer::builder()
        .without_env()
        .no_registry()
        .reference_config(
            rpc_core::bootstrap::admin::ADMIN_INTERFACE,
            ServiceConfig::default().param(
                keys::URL,
                format!("dubbo://127.0.0.1:{}", p.port().expect("port")),
            ),
        )
        .build()
        .await
        .expect("consumer")
        .reference()
        .await
        .expect("admin reference");
    let services = admin.services().await.expect("describe");
    let put = services
        .iter()
        .find(|s| s.interface == "test.Slow")
        .and_then(|s| s.methods.iter().find(|m| m.name == "put"))
        .expect("put described");
    assert_eq!(put.ordered_by.as_deref(), Some("key"));
    assert_eq!(put.idempotency_key, None);
    p.shutdown().await;
}
