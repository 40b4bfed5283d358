//! Provider-side idempotency: a retried call is answered from the stored result of the first
//! one instead of running the method again.
//!
//! # The user's side
//!
//! A method marked `#[idempotency_key]` (a random key made per call) or
//! `#[idempotency_key(arg)]` (the value of `arg` is the key, e.g. an order id) makes the
//! generated client attach the key to every call under [`KEY_ATTACHMENT`]. Retries of one
//! call by the cluster carry the same key. The descriptor publishes `{m}.idempotency`, so
//! the provider knows which methods to remember.
//!
//! # The provider's side (the `idempotency` filter)
//!
//! For a method whose export URL has `{m}.idempotency`, the filter looks the key up in the
//! export's [`IdempotencyStore`] before the method runs:
//!
//! - **completed within the window** (`idempotency.window`, default 5 minutes): the stored
//!   answer is returned (with the attachment `rpc.idempotency=replayed`), the method does not
//!   run;
//! - **running** (a retry arrived while the first attempt still runs, for instance after the
//!   consumer's timeout): the call waits for the first one, up to its own deadline, then
//!   returns its answer. A keyed call is not cut off at its caller's deadline: it runs to its
//!   end, up to `idempotency.run` (default one minute; see [`run_until`]), so the retry finds
//!   its result;
//! - **unknown**: the method runs; a value or business error is stored, an [`RpcError`]
//!   (panic, limit) or a cancelled execution (the connection died, the provider stops) is
//!   not, and the next attempt with the key runs the method.
//!
//! A call without the attachment (a Java consumer, a generic caller) of a method keyed by an
//! argument gets its key from that argument on the provider; of a method with a generated key
//! it runs unremembered. A key longer than [`MAX_KEY_LEN`] bytes is refused with a `codec`
//! error (the generated client hashes longer argument values down to 34 characters).
//!
//! # With failover
//!
//! The `failover` cluster retries a call that carries a key even when the method is not
//! `#[idempotent]`: the provider's store makes the retry safe. Note what "safe" requires:
//! the retry may reach *another* provider, which only knows the key if the providers share
//! their store. The default store, `memory`, is one per export in the provider's process; it
//! answers retries that reach the same provider (a lost response, a timeout). For retries
//! across providers, plug in a shared store (`idempotency.store=NAME`; see
//! [`IdempotencyStoreFactory`] and the README).
//!
//! # Bounds
//!
//! The memory store keeps at most `idempotency.capacity` completed keys (default 100,000) and
//! `idempotency.bytes` bytes of stored answers (default 64 MiB), evicting the least recently
//! used first; an entry older than its window is dropped when met. Keys being run at once are
//! bounded by the capacity too (one more is refused with `limit_exceeded`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::{self, Activate};
use crate::filter::Filter;
use crate::invocation::{
    Attachments, ByteString, Invocation, Invoker, Outcome, Payload, Response, Value,
};
use crate::proxy::IdempotencyKey;
use crate::serialize;
use crate::url::Url;

/// The attachment carrying a call's idempotency key.
pub const KEY_ATTACHMENT: &str = "rpc.idempotency-key";

/// The response attachment set (to `replayed`) on an answer served from the store.
pub const REPLAYED_ATTACHMENT: &str = "rpc.idempotency";

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// How long a completed key is remembered when `idempotency.window` is not set.
pub const DEFAULT_WINDOW_MS: u64 = 300_000;

/// Most completed keys a memory store keeps when `idempotency.capacity` is not set.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Most bytes of stored answers a memory store keeps when `idempotency.bytes` is not set.
pub const DEFAULT_BYTES: usize = 64 * 1024 * 1024;

/// How long a waiting retry may wait for the first attempt when the call has no deadline.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// How long a keyed call may run past its caller's deadline when `idempotency.run` is not
/// set.
pub const DEFAULT_RUN_MS: u64 = 60_000;

/// Attaches the idempotency key of a call of a `#[idempotency_key]` method (used by the
/// generated client through [`ClientCore`](crate::proxy::ClientCore)).
pub(crate) fn attach_key(inv: &mut Invocation, source: IdempotencyKey) {
    let key = match source {
        IdempotencyKey::Generated => generated_key(),
        IdempotencyKey::Argument(i) => {
            let text = crate::cluster::loadbalance::argument_key(inv.args(), &[i]);
            bounded_key(text)
        }
    };
    if !key.is_empty() {
        inv.attachments_mut()
            .insert(ByteString::from_static(KEY_ATTACHMENT), key);
    }
}

/// When the provider stops running `inv` (served by the export at `url`): at its caller's
/// `deadline`, except a call with an idempotency key of a method the export remembers,
/// which may run on up to `idempotency.run` from now (or to the deadline, if later). Cutting
/// such a call at its caller's deadline would throw its work away: the retry would start it
/// again, and a method slower than one attempt's timeout would never complete.
pub fn run_until(url: &Url, inv: &Invocation, deadline: Option<Instant>) -> Option<Instant> {
    if key_of(inv).is_none() || url.method_param(inv.method(), keys::IDEMPOTENCY).is_none() {
        return deadline;
    }
    let run = url
        .method_param_as(inv.method(), keys::IDEMPOTENCY_RUN, DEFAULT_RUN_MS)
        .unwrap_or(DEFAULT_RUN_MS);
    let until = Instant::now() + Duration::from_millis(run);
    Some(deadline.map_or(until, |d| d.max(until)))
}

/// The key of a call, from its attachment; `None` when it carries none.
pub fn key_of(inv: &Invocation) -> Option<&str> {
    inv.attachments().get(KEY_ATTACHMENT)
}

/// 128 random bits as 32 hex digits (the process's fast generator if the system's fails).
fn generated_key() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        b = fastrand::u128(..).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An argument's key text, hashed to `h:` and 32 hex digits when longer than [`MAX_KEY_LEN`].
fn bounded_key(text: String) -> String {
    if text.len() <= MAX_KEY_LEN {
        return text;
    }
    format!("h:{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

/// A completed call's answer as a store keeps it: encoded, so a store may keep it anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// Whether the answer is the method's business error (else its value).
    pub business_error: bool,
    /// The value or error, encoded.
    pub payload: Payload,
    /// The attachments the provider answered with.
    pub attachments: Vec<(String, String)>,
}

impl StoredResponse {
    /// The stored form of `response` (a typed value is encoded with the default
    /// serialization).
    pub fn from_response(response: &Response) -> Result<Self> {
        let (business_error, value) = match &response.outcome {
            Outcome::Value(v) => (false, v),
            Outcome::BizError(v) => (true, v),
        };
        let payload = match value {
            Value::Encoded(p) => p.clone(),
            other => other.encode(&*serialize::default_serialization()?)?,
        };
        Ok(StoredResponse {
            business_error,
            payload,
            attachments: response
                .attachments
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// The response to answer a repeated call with, marked as replayed.
    pub fn to_response(&self) -> Response {
        let value = Value::Encoded(self.payload.clone());
        let mut attachments: Attachments = self
            .attachments
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attachments.insert(REPLAYED_ATTACHMENT, "replayed");
        Response {
            outcome: if self.business_error {
                Outcome::BizError(value)
            } else {
                Outcome::Value(value)
            },
            attachments,
        }
    }

    /// The answer as bytes, for a store that keeps bytes (a database, Redis): a version
    /// byte, the business-error flag, the serialization id, the payload, the attachments,
    /// lengths as little-endian `u32`. [`StoredResponse::from_bytes`] reads it back.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size() + 16 + 8 * self.attachments.len());
        out.push(STORED_VERSION);
        out.push(u8::from(self.business_error));
        out.push(self.payload.serialization);
        put_len_prefixed(&mut out, &self.payload.bytes);
        put_len(&mut out, self.attachments.len());
        for (k, v) in &self.attachments {
            put_len_prefixed(&mut out, k.as_bytes());
            put_len_prefixed(&mut out, v.as_bytes());
        }
        out
    }

    /// Reads what [`StoredResponse::to_bytes`] wrote. Bytes from a store are not trusted:
    /// anything malformed (truncated, a length past the end, text that is not UTF-8,
    /// trailing bytes, another version) is a `codec` error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |what: &str| RpcError::codec(format!("stored idempotency answer: {what}"));
        let mut r = Reader(bytes);
        if r.byte().ok_or_else(|| bad("empty"))? != STORED_VERSION {
            return Err(bad("written in an unknown format version"));
        }
        let business_error = match r.byte().ok_or_else(|| bad("truncated"))? {
            0 => false,
            1 => true,
            _ => return Err(bad("bad business-error flag")),
        };
        let serialization = r.byte().ok_or_else(|| bad("truncated"))?;
        let payload = r.chunk().ok_or_else(|| bad("truncated payload"))?.to_vec();
        let n = r.len().ok_or_else(|| bad("truncated"))?;
        // Each attachment takes at least 8 bytes: a count beyond that is a lie.
        if n > r.0.len() / 8 {
            return Err(bad("more attachments than bytes"));
        }
        let mut attachments = Vec::with_capacity(n);
        for _ in 0..n {
            let k = r.chunk().ok_or_else(|| bad("truncated attachment"))?;
            let v = r.chunk().ok_or_else(|| bad("truncated attachment"))?;
            let text = |b: &[u8]| {
                std::str::from_utf8(b)
                    .map(str::to_string)
                    .map_err(|_| bad("attachment is not UTF-8"))
            };
            attachments.push((text(k)?, text(v)?));
        }
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(StoredResponse {
            business_error,
            payload: Payload {
                serialization,
                bytes: payload.into(),
            },
            attachments,
        })
    }

    /// Bytes this answer takes in a store (payload and attachments).
    pub fn size(&self) -> usize {
        self.payload.bytes.len()
            + self
                .attachments
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// The format version [`StoredResponse::to_bytes`] writes.
const STORED_VERSION: u8 = 1;

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_len_prefixed(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// A cursor over untrusted bytes: every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn len(&mut self) -> Option<usize> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        usize::try_from(u32::from_le_bytes(*n)).ok()
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        if n > self.0.len() {
            return None;
        }
        let (c, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(c)
    }
}

/// What [`IdempotencyStore::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// The key is the caller's now: run the method, then
    /// [`complete`](IdempotencyStore::complete) or [`release`](IdempotencyStore::release) it.
    Run,
    /// The key was completed within its window: answer with this.
    Done(StoredResponse),
}

/// Where completed results are kept per key; one per export (see
/// [`IdempotencyStoreFactory`]).
///
/// Keys are `{service}#{method}#{key}`, at most a few hundred bytes.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key`: [`Claim::Done`] when completed within its window; [`Claim::Run`] when
    /// nobody holds it (the caller holds it now); while another caller holds it, waits until
    /// it completes (then `Done`) or is released (then the caller may take it), and fails
    /// with [`ErrorKind::Timeout`] at `wait_until`.
    async fn claim(&self, key: &str, wait_until: Instant) -> Result<Claim>;

    /// Stores the answer of the key the caller holds, for `window`, and wakes the callers
    /// waiting for it.
    async fn complete(&self, key: &str, response: StoredResponse, window: Duration) -> Result<()>;

    /// Gives up the key the caller holds without an answer (the method failed or its
    /// execution was dropped): the next caller runs it. Called from `Drop`, so it must not
    /// block; a store over the network sends it from a task of its own.
    fn release(&self, key: &str);
}

/// Opens the store of one export; the extension point behind `idempotency.store=`.
///
/// `open` is called once per exported service (its URL: address, path, `idempotency.*`
/// keys), on the first keyed call. A shared store (a database, Redis) returns a handle on
/// the same backend for every export, so a retry that reaches another provider still finds
/// the key; it must also let a claim lapse when its holder dies (a lease), since a killed
/// process never calls [`IdempotencyStore::release`].
pub trait IdempotencyStoreFactory: Send + Sync {
    /// The store for the export at `url`.
    fn open(&self, url: &Url) -> Result<Arc<dyn IdempotencyStore>>;
}

crate::extension_point!(
    dyn IdempotencyStoreFactory,
    key = keys::IDEMPOTENCY_STORE,
    default = "memory"
);

/// The default store: in memory, one per export, bounded (see the [module docs](self)).
pub struct MemoryStore {
    inner: Mutex<Inner>,
    capacity: usize,
    max_bytes: usize,
}

struct Inner {
    done: lru::LruCache<String, (Instant, StoredResponse)>,
    bytes: usize,
    running: HashMap<String, Arc<Notify>>,
}

impl MemoryStore {
    /// A store keeping at most `capacity` completed keys and `max_bytes` bytes of answers.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                done: lru::LruCache::unbounded(),
                bytes: 0,
                running: HashMap::new(),
            }),
            capacity: capacity.max(1),
            max_bytes,
        }
    }

    /// A store sized by `url`'s `idempotency.capacity` and `idempotency.bytes`.
    pub fn from_url(url: &Url) -> Result<Self> {
        Ok(Self::new(
            url.param_as(keys::IDEMPOTENCY_CAPACITY, DEFAULT_CAPACITY)?,
            url.param_as(keys::IDEMPOTENCY_BYTES, DEFAULT_BYTES)?,
        ))
    }

    /// How many completed keys are kept.
    pub fn len(&self) -> usize {
        self.lock().done.len()
    }

    /// Whether no completed key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn wake(&mut self, key: &str) {
        if let Some(n) = self.running.remove(key) {
            n.notify_waiters();
        }
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &str, wait_until: Instant) -> Result<Claim> {
        loop {
            let notify = {
                let mut inner = self.lock();
                let now = Instant::now();
                match inner.done.get(key) {
                    Some((expires, r)) if *expires > now => return Ok(Claim::Done(r.clone())),
                    Some(_) => {
                        if let Some((_, (_, old))) = inner.done.pop_entry(key) {
                            inner.bytes -= old.size();
                        }
                    }
                    None => {}
                }
                match inner.running.get(key) {
                    Some(n) => n.clone(),
                    None => {
                        if inner.running.len() >= self.capacity {
                            return Err(RpcError::new(
                                ErrorKind::LimitExceeded,
                                format!(
                                    "{} idempotency keys are running at once; idempotency.capacity is {}",
                                    inner.running.len(),
                                    self.capacity
                                ),
                            ));
                        }
                        inner
                            .running
                            .insert(key.to_string(), Arc::new(Notify::new()));
                        return Ok(Claim::Run);
                    }
                }
            };
            // Register for the wake-up first, then look again: a completion between the
            // lock above and this registration is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let still_running = self
                .lock()
                .running
                .get(key)
                .is_some_and(|n| Arc::ptr_eq(n, &notify));
            if still_running && tokio::time::timeout_at(wait_until, notified).await.is_err() {
                return Err(RpcError::new(
                    ErrorKind::Timeout,
                    "an earlier call with the same idempotency key is still running; gave up waiting for it at this call's deadline",
                ));
            }
        }
    }

    async fn complete(&self, key: &str, response: StoredResponse, window: Duration) -> Result<()> {
        let mut inner = self.lock();
        inner.wake(key);
        let size = response.size();
        if size > self.max_bytes {
            return Ok(()); // too big to keep at all: a retry runs again
        }
        if let Some((_, old)) = inner
            .done
            .put(key.to_string(), (Instant::now() + window, response))
        {
            inner.bytes -= old.size();
        }
        inner.bytes += size;
        while inner.done.len() > self.capacity || inner.bytes > self.max_bytes {
            match inner.done.pop_lru() {
                Some((_, (_, old))) => inner.bytes -= old.size(),
                None => break,
            }
        }
        Ok(())
    }

    fn release(&self, key: &str) {
        self.lock().wake(key);
    }
}

/// The factory of the default `memory` store: a new [`MemoryStore`] per export.
#[derive(Debug, Default)]
pub struct MemoryStoreFactory;

impl IdempotencyStoreFactory for MemoryStoreFactory {
    fn open(&self, url: &Url) -> Result<Arc<dyn IdempotencyStore>> {
        Ok(Arc::new(MemoryStore::from_url(url)?))
    }
}

crate::register!(dyn IdempotencyStoreFactory, "memory", || Arc::new(
    MemoryStoreFactory
));

/// The provider filter; see the [module docs](self).
#[derive(Default)]
pub struct IdempotencyFilter {
    /// The store of each export (see [`IdempotencyFilter::store`]).
    stores: Mutex<HashMap<usize, Arc<dyn IdempotencyStore>>>,
}

impl IdempotencyFilter {
    /// The store of the export whose chain continues with `next`. An export is told apart
    /// by that invoker's identity (two providers of one service in one process, even both
    /// still on port 0 when their chains were built, get stores of their own); the map holds
    /// one entry per export ever made, which configuration bounds.
    fn store(&self, next: &dyn Invoker) -> Result<Arc<dyn IdempotencyStore>> {
        let id = (next as *const dyn Invoker).cast::<()>() as usize;
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stores.get(&id) {
            return Ok(s.clone());
        }
        let factory = extension::adaptive::<dyn IdempotencyStoreFactory>(next.url(), "")?;
        let store = factory.open(next.url())?;
        stores.insert(id, store.clone());
        Ok(store)
    }
}

/// Releases a claimed key unless the call completed (also when the execution is dropped).
struct Held {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    armed: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.armed {
            self.store.release(&self.key);
        }
    }
}

#[async_trait::async_trait]
impl Filter for IdempotencyFilter {
    fn applies_to(&self, next: &dyn Invoker) -> bool {
        next.url()
            .params()
            .keys()
            .any(|k| keys::method_of(k, keys::IDEMPOTENCY).is_some())
    }

    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let method = invocation.method();
        let Some(declared) = next.url().method_param(method, keys::IDEMPOTENCY) else {
            return next.invoke(invocation).await;
        };
        let key = match key_of(&invocation) {
            Some(k) => k.to_string(),
            None => match declared.parse::<usize>() {
                Ok(i) => bounded_key(crate::cluster::loadbalance::argument_key(
                    invocation.args(),
                    &[i],
                )),
                Err(_) => return next.invoke(invocation).await,
            },
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(invocation.annotate(RpcError::codec(format!(
                "the idempotency key ({KEY_ATTACHMENT}) must be 1 to {MAX_KEY_LEN} bytes, not {}",
                key.len()
            ))));
        }
        let window = Duration::from_millis(
            next.url()
                .method_param_as(method, keys::IDEMPOTENCY_WINDOW, DEFAULT_WINDOW_MS)
                .map_err(|e| invocation.annotate(e))?,
        );
        let store = self.store(next).map_err(|e| invocation.annotate(e))?;
        let full = format!("{}#{method}#{key}", invocation.service());
        let wait_until = invocation
            .deadline()
            .unwrap_or_else(|| Instant::now() + DEFAULT_WAIT);
        match store
            .claim(&full, wait_until)
            .await
            .map_err(|e| invocation.annotate(e))?
        {
            Claim::Done(stored) => {
                metrics::counter!(
                    "rpc_idempotency_replays_total",
                    "service" => invocation.service().to_string(),
                    "method" => method.to_string()
                )
                .increment(1);
                return Ok(stored.to_response());
            }
            Claim::Run => {}
        }
        let mut held = Held {
            store: store.clone(),
            key: full,
            armed: true,
        };
        let label = invocation.label();
        let result = next.invoke(invocation).await;
        if let Ok(response) = &result {
            match StoredResponse::from_response(response) {
                Ok(stored) => {
                    held.armed = false;
                    if let Err(e) = store.complete(&held.key, stored, window).await {
                        // The answer stands; only its memory is lost.
                        tracing::warn!(error = %label.annotate(e), "idempotency store: result not kept");
                        store.release(&held.key);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %label.annotate(e), "idempotency: answer cannot be encoded to keep");
                }
            }
        }
        result
    }
}

crate::register!(
    dyn Filter,
    "idempotency",
    || Arc::new(IdempotencyFilter::default()),
    activate = Activate::provider(-16_500)
);

#[cfg(test)]
mod tests;
