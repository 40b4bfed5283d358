//! The load: `concurrency` callers alternating the idempotent `balance` and the
//! non-idempotent `charge` (each charge with a new order number) until a deadline, and what
//! happened to every call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::ledger::LedgerClient;

/// What the callers saw.
#[derive(Default)]
pub(crate) struct Tally {
    /// Calls made.
    pub(crate) calls: AtomicU64,
    /// Failed `balance` calls (idempotent: failover should have saved every one).
    pub(crate) idempotent_failed: AtomicU64,
    /// Order numbers of failed `charge` calls.
    pub(crate) charges_failed: Mutex<Vec<u64>>,
    /// Failures by error kind, with one message each, for the report.
    pub(crate) errors: Mutex<BTreeMap<String, (u64, String)>>,
}

impl Tally {
    fn failed(&self, e: &rpc_core::RpcError) {
        if let Ok(mut m) = self.errors.lock() {
            let entry = m
                .entry(e.kind().as_str().to_string())
                .or_insert((0, e.to_string()));
            entry.0 += 1;
        }
    }

    /// Failed charges so far.
    pub(crate) fn charges_failed(&self) -> Vec<u64> {
        self.charges_failed
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Every failed call, idempotent or not.
    pub(crate) fn total_failed(&self) -> u64 {
        self.idempotent_failed.load(Ordering::Relaxed) + self.charges_failed().len() as u64
    }

    /// One line per error kind seen: `kind ×count (first message)`.
    pub(crate) fn error_summary(&self) -> Vec<String> {
        self.errors
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, (n, msg))| format!("{k} x{n}: {msg}"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Order numbers handed out to charges, unique within one harness run.
pub(crate) static ORDERS: AtomicU64 = AtomicU64::new(1);

/// Runs `concurrency` callers on `client` until `until`.
pub(crate) async fn run(
    client: LedgerClient,
    concurrency: usize,
    until: Instant,
    tally: Arc<Tally>,
) {
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (client, tally) = (client.clone(), tally.clone());
        set.spawn(async move {
            let mut i = worker as u64;
            while Instant::now() < until {
                i += 1;
                tally.calls.fetch_add(1, Ordering::Relaxed);
                if i.is_multiple_of(2) {
                    if let Err(e) = client.balance(i).await {
                        tally.idempotent_failed.fetch_add(1, Ordering::Relaxed);
                        tally.failed(&e);
                    }
                } else {
                    let order = ORDERS.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = client.charge(order, 1).await {
                        if let Ok(mut v) = tally.charges_failed.lock() {
                            v.push(order);
                        }
                        tally.failed(&e);
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Calls `name` until every one of `names` answered (bounded by `within`).
pub(crate) async fn wait_for_all(
    client: &LedgerClient,
    names: &[String],
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    let mut seen = std::collections::HashSet::new();
    while Instant::now() < deadline {
        if let Ok(n) = client.name().await {
            seen.insert(n);
        }
        if names.iter().all(|n| seen.contains(n)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
