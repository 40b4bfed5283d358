use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::filter::testing::{call, Mock};
use crate::invocation::ServiceKey;
use crate::url::Url;

/// A service whose `charge` counts executions and answers the count, after `delay`.
fn charging(url: &str, delay: Duration) -> (Arc<Mock>, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let mock = Mock::new(url, move |_| {
        let r = r.clone();
        async move {
            tokio::time::sleep(delay).await;
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Response::value(Value::typed(n)))
        }
    });
    (mock, runs)
}

fn keyed(key: &str) -> Invocation {
    let mut inv = call("S", "charge");
    inv.attachments_mut()
        .insert(KEY_ATTACHMENT, key.to_string());
    inv
}

fn answer(r: Result<Response>) -> u32 {
    r.expect("answered").into_value::<u32>().expect("u32")
}

const URL: &str = "dubbo://127.0.0.1:1/S?charge.idempotency=generated";

#[tokio::test]
async fn a_repeated_key_is_answered_from_the_store_without_running_again() {
    let (p, runs) = charging(URL, Duration::ZERO);
    let f = IdempotencyFilter::default();
    assert!(f.applies_to(&*p));
    assert_eq!(answer(f.invoke(&*p, keyed("k1")).await), 1);
    let again = f.invoke(&*p, keyed("k1")).await.expect("replayed");
    assert_eq!(again.attachments.get(REPLAYED_ATTACHMENT), Some("replayed"));
    assert_eq!(
        again.into_value::<u32>().expect("u32"),
        1,
        "the first answer"
    );
    assert_eq!(
        answer(f.invoke(&*p, keyed("k2")).await),
        2,
        "a new key runs"
    );
    // A call without a key of a generated-key method runs unremembered.
    assert_eq!(answer(f.invoke(&*p, call("S", "charge")).await), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // A method not declared is passed through, key or not.
    let mut other = call("S", "other");
    other.attachments_mut().insert(KEY_ATTACHMENT, "k1");
    f.invoke(&*p, other).await.expect("passed through");
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_retry_during_the_first_attempt_waits_for_its_answer() {
    let (p, runs) = charging(URL, Duration::from_millis(500));
    let f = Arc::new(IdempotencyFilter::default());
    let first = {
        let (f, p) = (f.clone(), p.clone());
        tokio::spawn(async move { f.invoke(&*p, keyed("k")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let second = answer(f.invoke(&*p, keyed("k")).await);
    assert_eq!(second, 1, "the first attempt's answer");
    assert_eq!(t0.elapsed(), Duration::from_millis(400), "waited for it");
    assert_eq!(answer(first.await.expect("join")), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "ran once");
    assert_eq!(p.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_retry_gives_up_at_its_deadline() {
    let (p, _) = charging(URL, Duration::from_secs(10));
    let f = Arc::new(IdempotencyFilter::default());
    let first = {
        let (f, p) = (f.clone(), p.clone());
        tokio::spawn(async move { f.invoke(&*p, keyed("k")).await })
    };
    tokio::task::yield_now().await;
    let mut retry = keyed("k");
    retry.set_timeout(Duration::from_millis(200));
    let e = f.invoke(&*p, retry).await.expect_err("still running");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("still running"), "{e}");
    first.abort();
}

#[tokio::test(start_paused = true)]
async fn a_failed_or_dropped_execution_lets_the_next_attempt_run() {
    let fails = Arc::new(AtomicU32::new(1));
    let runs = Arc::new(AtomicU32::new(0));
    let (fl, r) = (fails.clone(), runs.clone());
    let p = Mock::new(URL, move |_| {
        let (fl, r) = (fl.clone(), r.clone());
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            if fl.fetch_sub(1, Ordering::SeqCst) == 1 {
                return Err(RpcError::new(ErrorKind::Biz, "panicked"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Response::value(Value::typed(7u32)))
        }
    });
    let f = Arc::new(IdempotencyFilter::default());
    // 1. An RpcError is not remembered.
    f.invoke(&*p, keyed("k")).await.expect_err("fails");
    // 2. An execution dropped mid-way (connection gone, provider stopping) releases the key.
    let dropped = {
        let (f, p) = (f.clone(), p.clone());
        tokio::spawn(async move { f.invoke(&*p, keyed("k")).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    dropped.abort();
    assert!(dropped.await.expect_err("aborted").is_cancelled());
    // 3. The next attempt runs and is remembered.
    assert_eq!(answer(f.invoke(&*p, keyed("k")).await), 7);
    assert_eq!(answer(f.invoke(&*p, keyed("k")).await), 7);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "error, dropped, run; then replayed"
    );
}

#[tokio::test(start_paused = true)]
async fn keys_expire_after_their_window_and_the_least_recent_is_evicted() {
    let url = "dubbo://127.0.0.1:2/S?charge.idempotency=generated&charge.idempotency.window=1000&idempotency.capacity=2";
    let (p, runs) = charging(url, Duration::ZERO);
    let f = IdempotencyFilter::default();
    assert_eq!(answer(f.invoke(&*p, keyed("a")).await), 1);
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert_eq!(
        answer(f.invoke(&*p, keyed("a")).await),
        2,
        "expired: runs again"
    );
    assert_eq!(answer(f.invoke(&*p, keyed("b")).await), 3);
    assert_eq!(
        answer(f.invoke(&*p, keyed("a")).await),
        2,
        "kept; now most recent"
    );
    assert_eq!(answer(f.invoke(&*p, keyed("c")).await), 4, "evicts b");
    assert_eq!(answer(f.invoke(&*p, keyed("a")).await), 2);
    assert_eq!(answer(f.invoke(&*p, keyed("b")).await), 5, "b was evicted");
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn the_memory_store_keeps_within_its_byte_budget() {
    let store = MemoryStore::new(100, 1000);
    let answer = |n: usize| StoredResponse {
        business_error: false,
        payload: Payload {
            serialization: 1,
            bytes: vec![0u8; n].into(),
        },
        attachments: vec![],
    };
    let far = Instant::now() + Duration::from_secs(5);
    for i in 0..10 {
        let key = format!("k{i}");
        assert!(matches!(
            store.claim(&key, far).await.expect("claim"),
            Claim::Run
        ));
        store
            .complete(&key, answer(300), Duration::from_secs(60))
            .await
            .expect("complete");
    }
    assert_eq!(store.len(), 3, "3 × 300 bytes fit in 1000");
    assert!(matches!(
        store.claim("k9", far).await.expect("claim"),
        Claim::Done(_)
    ));
    assert!(matches!(
        store.claim("k0", far).await.expect("claim"),
        Claim::Run
    ));
    // An answer larger than the whole budget is not kept; the key is free again.
    store
        .complete("k0", answer(5000), Duration::from_secs(60))
        .await
        .expect("complete");
    assert!(matches!(
        store.claim("k0", far).await.expect("claim"),
        Claim::Run
    ));
}

#[tokio::test]
async fn keys_over_the_limit_are_refused_and_argument_keys_are_derived() {
    let (p, runs) = charging(URL, Duration::ZERO);
    let f = IdempotencyFilter::default();
    let e = f
        .invoke(&*p, keyed(&"x".repeat(MAX_KEY_LEN + 1)))
        .await
        .expect_err("too long");
    assert_eq!(e.kind(), ErrorKind::Codec);
    assert!(e.message().contains("1 to 256 bytes"), "{e}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // A method keyed by argument 0: a caller that sends no key still gets deduplicated.
    let (p, runs) = charging("dubbo://127.0.0.1:3/S?charge.idempotency=0", Duration::ZERO);
    let with_args = |order: &str| {
        Invocation::new(
            ServiceKey::new("S", None, None),
            "charge",
            Value::typed((order.to_string(), 5u32)),
        )
    };
    assert_eq!(answer(f.invoke(&*p, with_args("o-1")).await), 1);
    assert_eq!(answer(f.invoke(&*p, with_args("o-1")).await), 1);
    assert_eq!(answer(f.invoke(&*p, with_args("o-2")).await), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn client_keys_are_attached_generated_or_from_the_argument() {
    let mut a = Invocation::new(ServiceKey::new("S", None, None), "m", Value::Empty);
    attach_key(&mut a, IdempotencyKey::Generated);
    let mut b = a.clone();
    attach_key(&mut b, IdempotencyKey::Generated);
    let (ka, kb) = (key_of(&a).expect("key"), key_of(&b).expect("key"));
    assert_eq!(ka.len(), 32);
    assert_ne!(ka, kb, "a new key per call");

    let mut c = Invocation::new(
        ServiceKey::new("S", None, None),
        "m",
        Value::typed(("o-7".to_string(), 3u8)),
    );
    attach_key(&mut c, IdempotencyKey::Argument(0));
    assert_eq!(key_of(&c), Some("\"o-7\""));
    let mut long = Invocation::new(
        ServiceKey::new("S", None, None),
        "m",
        Value::typed(("y".repeat(1000),)),
    );
    attach_key(&mut long, IdempotencyKey::Argument(0));
    let k = key_of(&long).expect("key");
    assert!(k.starts_with("h:") && k.len() == 34, "{k}");
}

#[tokio::test(start_paused = true)]
async fn keyed_calls_run_on_past_their_callers_deadline_within_the_run_bound() {
    let url =
        Url::parse("dubbo://h:1/S?charge.idempotency=0&charge.idempotency.run=5000").expect("url");
    let now = Instant::now();
    let soon = Some(now + Duration::from_millis(300));
    // Not keyed, or a method the export does not remember: the caller's deadline.
    assert_eq!(run_until(&url, &call("S", "charge"), soon), soon);
    let mut other = call("S", "other");
    other.attachments_mut().insert(KEY_ATTACHMENT, "k");
    assert_eq!(run_until(&url, &other, soon), soon);
    // Keyed: up to idempotency.run from now, or the caller's deadline when later.
    let keyed = keyed("k");
    assert_eq!(
        run_until(&url, &keyed, soon),
        Some(now + Duration::from_millis(5000))
    );
    let late = Some(now + Duration::from_secs(60));
    assert_eq!(run_until(&url, &keyed, late), late);
    assert_eq!(
        run_until(&url, &keyed, None),
        Some(now + Duration::from_millis(5000))
    );
}

#[test]
fn stored_answers_round_trip_as_bytes_and_bad_bytes_are_refused() {
    let r = StoredResponse {
        business_error: true,
        payload: Payload {
            serialization: 2,
            bytes: vec![1u8, 2, 3, 250].into(),
        },
        attachments: vec![("k".into(), "v".into()), ("é".into(), String::new())],
    };
    let bytes = r.to_bytes();
    assert_eq!(StoredResponse::from_bytes(&bytes).expect("round trip"), r);
    // Every truncation, and a trailing byte, is an error, not a panic.
    for cut in 0..bytes.len() {
        let e = StoredResponse::from_bytes(&bytes[..cut]).expect_err("truncated");
        assert_eq!(e.kind(), ErrorKind::Codec);
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(StoredResponse::from_bytes(&longer).is_err());
    let mut version = bytes.clone();
    version[0] = 9;
    assert!(StoredResponse::from_bytes(&version)
        .expect_err("version")
        .message()
        .contains("unknown format version"));
    // A huge attachment count with few bytes is refused before allocating.
    let mut lie = vec![1u8, 0, 1, 0, 0, 0, 0];
    lie.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(StoredResponse::from_bytes(&lie).is_err());
    // Random bytes never panic.
    for _ in 0..2000 {
        let n = fastrand::usize(..64);
        let noise: Vec<u8> = (0..n).map(|_| fastrand::u8(..)).collect();
        let _ = StoredResponse::from_bytes(&noise);
    }
}
