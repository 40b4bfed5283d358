//! `idempotency.store = "etcd"`: a shared idempotency store in etcd, so a retry that lands
//! on another provider (the first one died, or was slow) still finds its key.
//!
//! Provider keys: `idempotency.etcd` (the etcd endpoints, `host:port[,host:port]`, required),
//! `idempotency.etcd.prefix` (default `/rpc/idempotency/`). For a key `K` it keeps:
//!
//! - `{prefix}lock/K`: the claim of the provider running the call, put in one transaction
//!   only when neither the lock nor the result exists, attached to a lease of
//!   `idempotency.run` plus one second: a provider killed while running never releases it,
//!   and etcd deletes it when the lease runs out, after which the next claimant runs the call;
//! - `{prefix}result/K`: the answer ([`StoredResponse::to_bytes`]), put with the lock's
//!   deletion in one transaction, on a lease of the method's `idempotency.window`.
//!
//! A claimant that finds the lock held polls every 25 ms until the result appears, the lock
//! goes, or its deadline passes. Answers over 1 MiB are not kept (etcd's request limit is
//! 1.5 MiB): their retries run again. A stored value that does not decode is a `codec` error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::idempotency::{Claim, IdempotencyStore, IdempotencyStoreFactory, StoredResponse};
use rpc_core::{ErrorKind, Result, RpcError, Url};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::client::{pb, EtcdClient};

rpc_core::config_key!(
    IDEMPOTENCY_ETCD = "idempotency.etcd",
    "",
    Text,
    "provider, idempotency.store=etcd: the etcd endpoints (host:port, comma separated) that hold the idempotency keys"
);
rpc_core::config_key!(
    IDEMPOTENCY_ETCD_PREFIX = "idempotency.etcd.prefix",
    "/rpc/idempotency/",
    Text,
    "provider, idempotency.store=etcd: the key prefix of the idempotency keys"
);

/// How often a claimant looks again while another provider holds the key.
const POLL: Duration = Duration::from_millis(25);
/// Largest answer kept.
const MAX_VALUE: usize = 1024 * 1024;
/// Connect and request timeout.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The factory behind `idempotency.store = "etcd"`.
#[derive(Debug, Default)]
pub struct EtcdStoreFactory;

impl IdempotencyStoreFactory for EtcdStoreFactory {
    fn open(&self, url: &Url) -> Result<Arc<dyn IdempotencyStore>> {
        let endpoints: Vec<String> = url
            .param(IDEMPOTENCY_ETCD)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(RpcError::config(
                "idempotency.store=etcd needs idempotency.etcd, the etcd endpoints (host:port)",
            ));
        }
        let run_ms: u64 =
            url.param_as(keys::IDEMPOTENCY_RUN, rpc_core::idempotency::DEFAULT_RUN_MS)?;
        Ok(Arc::new(EtcdStore {
            endpoints,
            prefix: url
                .param(IDEMPOTENCY_ETCD_PREFIX)
                .unwrap_or("/rpc/idempotency/")
                .to_string(),
            claim_ttl: i64::try_from(run_ms.div_ceil(1000) + 1).unwrap_or(i64::MAX),
            client: OnceCell::new(),
            held: Mutex::new(HashMap::new()),
        }))
    }
}

rpc_core::register!(dyn IdempotencyStoreFactory, "etcd", || Arc::new(
    EtcdStoreFactory
));

/// One export's handle on the keys in etcd; see the [module docs](self).
pub struct EtcdStore {
    endpoints: Vec<String>,
    prefix: String,
    /// Seconds a claim lives without its holder.
    claim_ttl: i64,
    client: OnceCell<EtcdClient>,
    /// The lease of each key this provider holds.
    held: Mutex<HashMap<String, i64>>,
}

fn etcd_error(what: &str, status: tonic::Status) -> RpcError {
    crate::etcd_err(&format!("idempotency store: {what}"), status)
}

impl EtcdStore {
    async fn client(&self) -> Result<&EtcdClient> {
        self.client
            .get_or_try_init(|| async {
                EtcdClient::connect(&self.endpoints, TIMEOUT, None)
                    .await
                    .map_err(|e| etcd_error("connect", e))
            })
            .await
    }

    fn lock_key(&self, key: &str) -> Vec<u8> {
        format!("{}lock/{key}", self.prefix).into_bytes()
    }

    fn result_key(&self, key: &str) -> Vec<u8> {
        format!("{}result/{key}", self.prefix).into_bytes()
    }

    fn held_lease(&self, key: &str) -> Option<i64> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }

    async fn grant(&self, client: &EtcdClient, ttl: i64) -> Result<i64> {
        tokio::time::timeout(TIMEOUT, client.lease_grant(ttl.max(1)))
            .await
            .map_err(|_| RpcError::network("etcd idempotency store: lease grant timed out"))?
            .map(|r| r.id)
            .map_err(|e| etcd_error("lease grant", e))
    }
}

/// Revokes `lease` in the background (its lock goes with it); without a runtime it lapses.
fn revoke_later(client: Option<EtcdClient>, lease: i64) {
    if let (Some(client), Ok(rt)) = (client, tokio::runtime::Handle::try_current()) {
        rt.spawn(async move {
            let _ = tokio::time::timeout(TIMEOUT, client.lease_revoke(lease)).await;
        });
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for EtcdStore {
    async fn claim(&self, key: &str, wait_until: Instant) -> Result<Claim> {
        let client = self.client().await?;
        let (lock, result) = (self.lock_key(key), self.result_key(key));
        // A lease for the lock, renewed when waiting has used half of it.
        let mut lease: Option<(i64, Instant)> = None;
        loop {
            let half = Duration::from_secs(u64::try_from(self.claim_ttl).unwrap_or(1)) / 2;
            let id = match lease {
                Some((id, at)) if at.elapsed() < half => id,
                old => {
                    if let Some((id, _)) = old {
                        revoke_later(Some(client.clone()), id);
                    }
                    let id = self.grant(client, self.claim_ttl).await?;
                    lease = Some((id, Instant::now()));
                    id
                }
            };
            let answer = tokio::time::timeout(
                TIMEOUT,
                client.txn(
                    vec![
                        pb::Compare::absent(result.clone()),
                        pb::Compare::absent(lock.clone()),
                    ],
                    vec![pb::RequestOp {
                        request_put: Some(pb::PutRequest {
                            key: lock.clone(),
                            value: b"running".to_vec(),
                            lease: id,
                        }),
                        ..Default::default()
                    }],
                    vec![pb::RequestOp {
                        request_range: Some(pb::RangeRequest {
                            key: result.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                ),
            )
            .await
            .map_err(|_| RpcError::network("etcd idempotency store: claim timed out"))?
            .map_err(|e| etcd_error("claim", e))?;
            if answer.succeeded {
                self.held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.to_string(), id);
                return Ok(Claim::Run);
            }
            let stored = answer
                .responses
                .first()
                .and_then(|op| op.response_range.as_ref())
                .and_then(|r| r.kvs.first());
            if let Some(kv) = stored {
                revoke_later(Some(client.clone()), id);
                return StoredResponse::from_bytes(&kv.value).map(Claim::Done);
            }
            // Another provider runs it.
            if Instant::now() + POLL >= wait_until {
                revoke_later(Some(client.clone()), id);
                return Err(RpcError::new(
                    ErrorKind::Timeout,
                    "an earlier call with the same idempotency key is still running (on some provider); gave up waiting for it at this call's deadline",
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn complete(&self, key: &str, response: StoredResponse, window: Duration) -> Result<()> {
        let client = self.client().await?;
        let claim = self.held_lease(key);
        let bytes = response.to_bytes();
        if bytes.len() > MAX_VALUE {
            tracing::warn!(
                bytes = bytes.len(),
                "idempotency answer too large for etcd; not kept"
            );
            if let Some(id) = claim {
                revoke_later(Some(client.clone()), id);
            }
            return Ok(());
        }
        let stored = self.store_answer(client, key, bytes, window).await;
        // Stored or not, the claim goes: a failure here is one the filter answers by letting
        // the next attempt run (`release`), which finds no claim left to drop once it was
        // taken from `held` above.
        if let Some(id) = claim {
            revoke_later(Some(client.clone()), id);
        }
        stored
    }

    fn release(&self, key: &str) {
        if let Some(id) = self.held_lease(key) {
            revoke_later(self.client.get().cloned(), id);
        }
    }
}

impl EtcdStore {
    /// Puts the answer under `key` for `window` and deletes its lock, in one transaction.
    async fn store_answer(
        &self,
        client: &EtcdClient,
        key: &str,
        bytes: Vec<u8>,
        window: Duration,
    ) -> Result<()> {
        let window_lease = self
            .grant(
                client,
                i64::try_from(window.as_millis().div_ceil(1000)).unwrap_or(i64::MAX),
            )
            .await?;
        tokio::time::timeout(
            TIMEOUT,
            client.txn(
                Vec::new(),
                vec![
                    pb::RequestOp {
                        request_put: Some(pb::PutRequest {
                            key: self.result_key(key),
                            value: bytes,
                            lease: window_lease,
                        }),
                        ..Default::default()
                    },
                    pb::RequestOp {
                        request_delete_range: Some(pb::DeleteRangeRequest {
                            key: self.lock_key(key),
                            range_end: Vec::new(),
                        }),
                        ..Default::default()
                    },
                ],
                Vec::new(),
            ),
        )
        .await
        .map_err(|_| RpcError::network("etcd idempotency store: complete timed out"))?
        .map_err(|e| etcd_error("complete", e))?;
        Ok(())
    }
}
