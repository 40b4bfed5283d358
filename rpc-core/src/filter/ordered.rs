//! `ordered` (provider, methods declared `#[ordered_by(arg)]`): calls with the same value of
//! the ordering argument run one at a time, in the order they arrived; calls with different
//! values run in parallel.
//!
//! `#[ordered_by(order)]` publishes `{m}.ordered=N` (the argument's index) together with
//! `{m}.loadbalance=consistenthash` and `{m}.hash.arguments=N`, so the consumer sends every
//! call with one key to the same provider (consistent hashing: when providers come or go,
//! only the keys of the ring segments that changed hands move), and this filter orders them
//! there. The key is the argument's text as the `consistenthash` balancer reads it.
//!
//! Per key, the calls wait in a first-come, first-served queue: the order in which the
//! provider's connection reader dispatched them, which is the order they arrived on the
//! connection. At most `ordered.queue` calls (method level first, default
//! [`DEFAULT_QUEUE`]) wait behind the running one; one more is refused at once with
//! [`ErrorKind::LimitExceeded`] naming the key, the method and the limit (counted in
//! `rpc_ordered_refusals_total{service,method}`). A waiting call
//! that reaches its deadline fails with [`ErrorKind::Timeout`] and leaves the queue. At most
//! [`MAX_KEYS`] keys are active at once (a key is forgotten when its last call ends).
//!
//! Ordering holds among calls that reach one provider: a consumer that sends the next
//! message before the previous one was answered keeps their order only on one connection
//! (`connections=1`, the default), and a retry on another provider after a failure can
//! overtake calls still queued on the first. Likewise, when a provider joins and a key's
//! ring segment passes to it, the key's calls sent before the change may still run on the
//! old provider while the new one starts on those sent after: a caller that needs the
//! handover strict waits for each answer before sending the next message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use xxhash_rust::xxh3::xxh3_128;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

/// Calls of one key that may wait behind the running one when `ordered.queue` is not set.
pub const DEFAULT_QUEUE: usize = 1000;

/// Most ordering keys active at once per provider process.
pub const MAX_KEYS: usize = 100_000;

/// One key's gate and how many calls hold or wait for it.
struct Lane {
    gate: Arc<Semaphore>,
    calls: usize,
}

type Lanes = Mutex<HashMap<(u128, Box<str>), Lane>>;

/// See the [module docs](self).
#[derive(Default)]
pub struct OrderedFilter {
    /// By the hash of service, method and key text (a fixed size, whatever the key's length).
    lanes: Lanes,
}

/// Leaves the lane when the call ends, is refused or is dropped.
struct InLane<'a> {
    lanes: &'a Lanes,
    id: (u128, Box<str>),
}

impl Drop for InLane<'_> {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lane) = lanes.get_mut(&self.id) {
            lane.calls -= 1;
            if lane.calls == 0 {
                lanes.remove(&self.id);
            }
        }
    }
}

/// The `{method}.ordered` setting of a provider: the index (as text) of the argument whose
/// calls run in arrival order, when `method`'s calls are ordered.
pub(crate) fn ordering_argument<'u>(url: &'u crate::url::Url, method: &str) -> Option<&'u str> {
    url.method_param(method, keys::ORDERED)
}

#[async_trait::async_trait]
impl Filter for OrderedFilter {
    fn applies_to(&self, next: &dyn Invoker) -> bool {
        next.url()
            .params()
            .keys()
            .any(|k| keys::method_of(k, keys::ORDERED).is_some())
    }

    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let method = invocation.method();
        let Some(index) = ordering_argument(next.url(), method) else {
            return next.invoke(invocation).await;
        };
        let index: usize = index.parse().map_err(|_| {
            invocation.annotate(RpcError::config(format!(
                "'{method}.ordered' must be the index of an argument, not '{index}'"
            )))
        })?;
        let limit: usize = next
            .url()
            .method_param_as(method, keys::ORDERED_QUEUE, DEFAULT_QUEUE)
            .map_err(|e| invocation.annotate(e))?;
        let key = crate::cluster::loadbalance::argument_key(invocation.args(), &[index]);
        let id = (
            xxh3_128(format!("{}#{method}#{key}", invocation.service()).as_bytes()),
            Box::<str>::from(method),
        );
        let gate = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            let at_capacity = lanes.len() >= MAX_KEYS;
            match lanes.get_mut(&id) {
                Some(lane) if lane.calls > limit => {
                    metrics::counter!(
                        "rpc_ordered_refusals_total",
                        "service" => invocation.service().to_string(),
                        "method" => method.to_string()
                    )
                    .increment(1);
                    return Err(invocation.annotate(RpcError::new(
                        ErrorKind::LimitExceeded,
                        format!(
                            "the queue of ordering key {} is full: {limit} calls wait behind the running one (ordered.queue)",
                            shorten(&key)
                        ),
                    )));
                }
                Some(lane) => {
                    lane.calls += 1;
                    lane.gate.clone()
                }
                None if at_capacity => {
                    return Err(invocation.annotate(RpcError::new(
                        ErrorKind::LimitExceeded,
                        format!("{MAX_KEYS} ordering keys are active at once on this provider"),
                    )));
                }
                None => {
                    let gate = Arc::new(Semaphore::new(1));
                    lanes.insert(
                        id.clone(),
                        Lane {
                            gate: gate.clone(),
                            calls: 1,
                        },
                    );
                    gate
                }
            }
        };
        let _in_lane = InLane {
            lanes: &self.lanes,
            id,
        };
        // The first await of the call: the semaphore queues waiters first come, first served.
        let acquire = gate.acquire();
        let permit = match invocation.deadline() {
            Some(deadline) => match tokio::time::timeout_at(deadline, acquire).await {
                Ok(p) => p,
                Err(_) => {
                    return Err(invocation.annotate(RpcError::new(
                        ErrorKind::Timeout,
                        format!(
                            "waited past the deadline behind earlier calls with ordering key {}",
                            shorten(&key)
                        ),
                    )))
                }
            },
            None => acquire.await,
        }
        .map_err(|_| invocation.annotate(RpcError::internal("ordering gate closed")))?;
        let result = next.invoke(invocation).await;
        drop(permit);
        result
    }
}

/// A key for messages: at most 64 characters.
fn shorten(key: &str) -> String {
    if key.chars().count() <= 64 {
        key.to_string()
    } else {
        let head: String = key.chars().take(61).collect();
        format!("{head}...")
    }
}

crate::register!(
    dyn Filter,
    "ordered",
    || Arc::new(OrderedFilter::default()),
    // Outside `idempotency` (-16 500): the dispatcher keeps ordered calls in arrival order by
    // polling each once where it reads them, which holds only while taking the key's place is
    // the call's first wait; a shared idempotency store (etcd) waits on the network first.
    activate = Activate::provider(-16_700)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::Mock;
    use crate::invocation::{ServiceKey, Value};
    use std::time::Duration;

    fn msg(key: u32, seq: u32) -> Invocation {
        Invocation::new(
            ServiceKey::new("S", None, None),
            "put",
            Value::typed((key, seq)),
        )
    }

    /// `(key, seq, started)` entries, in the order they happened.
    type Log = Arc<Mutex<Vec<(u32, u32, bool)>>>;

    /// A service that records `(key, seq)` at its start and end, sleeping a little between.
    fn recording(url: &str) -> (Arc<Mock>, Log) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let mock = Mock::new(url, move |mut inv: Invocation| {
            let l = l.clone();
            async move {
                let (k, s): (u32, u32) = inv.take_args().decode()?;
                l.lock().expect("lock").push((k, s, true));
                tokio::time::sleep(Duration::from_millis(u64::from(10 - s % 10))).await;
                l.lock().expect("lock").push((k, s, false));
                Ok(Response::empty())
            }
        });
        (mock, log)
    }

    #[tokio::test(start_paused = true)]
    async fn same_key_runs_one_at_a_time_in_arrival_order_other_keys_in_parallel() {
        let (p, log) = recording("dubbo://h:1/S?put.ordered=0");
        let f = Arc::new(OrderedFilter::default());
        let mut tasks = Vec::new();
        for seq in 0..10 {
            for key in 0..3 {
                let (f, p) = (f.clone(), p.clone());
                tasks.push(tokio::spawn(
                    async move { f.invoke(&*p, msg(key, seq)).await },
                ));
            }
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.expect("join").expect("ok");
        }
        let log = log.lock().expect("lock").clone();
        for key in 0..3 {
            let mine: Vec<(u32, bool)> = log
                .iter()
                .filter(|(k, _, _)| *k == key)
                .map(|(_, s, start)| (*s, *start))
                .collect();
            let expected: Vec<(u32, bool)> =
                (0..10).flat_map(|s| [(s, true), (s, false)]).collect();
            assert_eq!(mine, expected, "key {key}: one at a time, in order");
        }
        // Different keys overlapped: some start of key 1 lies between a start and an end of
        // key 0.
        let first_end_0 = log.iter().position(|e| *e == (0, 0, false)).expect("end");
        assert!(
            log[..first_end_0].iter().any(|(k, _, _)| *k == 1),
            "other keys run in parallel"
        );
        assert!(f.lanes.lock().expect("lock").is_empty(), "lanes forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_is_refused_with_a_clear_error() {
        let (p, _) = recording("dubbo://h:1/S?put.ordered=0&put.ordered.queue=2");
        let f = Arc::new(OrderedFilter::default());
        let mut admitted = Vec::new();
        for seq in 0..3 {
            let (f, p) = (f.clone(), p.clone());
            admitted.push(tokio::spawn(
                async move { f.invoke(&*p, msg(7, seq)).await },
            ));
            tokio::task::yield_now().await;
        }
        let e = f.invoke(&*p, msg(7, 3)).await.expect_err("full");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(
            e.message().contains("queue of ordering key 7 is full")
                && e.message().contains("2 calls wait"),
            "{e}"
        );
        f.invoke(&*p, msg(8, 0)).await.expect("another key is free");
        for a in admitted {
            a.await.expect("join").expect("admitted ones run");
        }
        f.invoke(&*p, msg(7, 4)).await.expect("room again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_leaves_at_its_deadline_and_a_dropped_one_frees_its_place() {
        let p = Mock::new("dubbo://h:1/S?put.ordered=0", |_| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Response::empty())
        });
        let f = Arc::new(OrderedFilter::default());
        let running = {
            let (f, p) = (f.clone(), p.clone());
            tokio::spawn(async move { f.invoke(&*p, msg(1, 0)).await })
        };
        tokio::task::yield_now().await;
        let mut late = msg(1, 1);
        late.set_timeout(Duration::from_millis(100));
        let e = f.invoke(&*p, late).await.expect_err("deadline");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("ordering key 1"), "{e}");
        running.abort();
        let _ = running.await;
        assert!(f.lanes.lock().expect("lock").is_empty());
        assert_eq!(p.calls(), 1, "the timed-out call never ran");
    }
}
