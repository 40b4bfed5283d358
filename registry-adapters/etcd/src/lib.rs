//! etcd v3 registry (`etcd://host:port`), with the key layout of Dubbo's etcd3 registry
//! (`dubbo-registry-etcd3`):
//!
//! ```text
//! /{root}/{interface}/{category}/{Url::dubbo_encoded()}  =  the lease id, in decimal
//! ```
//!
//! The key's last part is what Java Dubbo names a URL, `URLEncoder.encode(url.toFullString())`;
//! readers, Dubbo's and ours, only look at the keys, and read every key one level below a
//! category (deeper keys are skipped). A URL with `dynamic=false` is put without a lease,
//! its value then Java's `String.hashCode` of the key, as Dubbo does.
//!
//! Every other key of one client is attached to one lease that a background task keeps alive; if
//! the process dies, the lease runs out after its TTL and etcd deletes the keys. Link this
//! crate and use `rpc_core::registry::connect(&"etcd://127.0.0.1:2379".parse()?)`; add
//! `use rpc_registry_etcd as _;` so the linker keeps it.
//!
//! Config-center entries (Dubbo 2.7+ rule documents, see
//! `rpc_core::registry::config_center`) are keys `/{root}/config/{group}/{key}` without a
//! lease, where Dubbo's etcd config center keeps them.
//!
//! URL keys: `root` (default `dubbo`), `lease` (TTL in seconds, default 10, at least 1),
//! `timeout` (connect and request timeout in ms, default 5000), `backup` (more endpoints,
//! `host:port,host:port`), and etcd user authentication from the URL's user information
//! (`etcd://user:password@host:2379`).
//!
//! # Faults
//!
//! Registrations and subscriptions are kept by the client. When the lease is lost (revoked,
//! expired during a long outage) or the connection fails, the background task connects
//! again, grants a new lease, puts every registration on it again and re-opens every watch.
//! While that is not done the adapter is silent (no empty list is ever notified because of a
//! fault) and `is_available` is false. A subscription watches its category prefix and, on
//! every event, reads the whole prefix again and notifies the complete list.
//!
//! `services` reads the keys (not the values) under `/{root}/` and lists the interfaces that
//! have a key in a category folder; keys outside the layout are ignored.
//!
//! The crate also brings a shared idempotency store, `idempotency.store = "etcd"` (see
//! [`idempotency`]).

#![forbid(unsafe_code)]

pub mod client;
pub mod idempotency;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{prefix_end, EtcdClient};
use rpc_core::config::keys;
use rpc_core::registry::config_center::{check_content, ConfigKey, MAX_CONFIG_BYTES};
use rpc_core::registry::remote::{
    decode_url_list, Backoff, Connection, DubboLayout, Instances, Registrations,
};
use rpc_core::registry::subscriptions::{CategoryWatch, Subscription, Subscriptions};
use rpc_core::registry::{
    decode_interface_segment, Category, NotifyListener, Registry, RegistryFactory,
};
use rpc_core::{Result, RpcError, Url};
use tokio::task::JoinHandle;

/// Most keys read from one category prefix, and most interfaces listed by `services`.
pub const MAX_KEYS: i64 = 10_000;

/// Keys read per request while listing the services.
const SERVICES_PAGE: i64 = 1_000;

/// The interface of a key `{root}/{interface}/{category}/{name}` (`root_prefix` is
/// `{root}/`), with the key's interface segment; `None` for a key outside that layout.
fn interface_of_key<'k>(root_prefix: &str, key: &'k str) -> Option<(&'k str, String)> {
    let rest = key.strip_prefix(root_prefix)?;
    let (segment, rest) = rest.split_once('/')?;
    let (category, name) = rest.split_once('/')?;
    Category::parse(category)?;
    if name.is_empty() || name.contains('/') || category != category.trim() {
        return None;
    }
    Some((segment, decode_interface_segment(segment)?))
}

/// The value and lease the key of `url` is put with (see [`Shared::put`]), the session's
/// lease being `lease` (0: none, as between two sessions). A dynamic registration is never
/// put without a lease: it would outlive its process. It waits for the next session, which
/// puts every recorded registration again.
fn put_value(key: &str, url: &Url, lease: i64) -> Result<(String, i64)> {
    if url.param(keys::DYNAMIC) == Some("false") {
        return Ok((java_string_hash(key).to_string(), 0));
    }
    if lease == 0 {
        return Err(RpcError::network(format!(
            "etcd: no lease for {key} (between sessions); it is put by the next one"
        )));
    }
    Ok((lease.to_string(), lease))
}

/// Java's `String.hashCode()` of `s` (over its UTF-16 code units, wrapping).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Creates etcd registries, one per registry URL while it is in use.
#[derive(Debug, Default)]
pub struct EtcdRegistryFactory;

rpc_core::register!(dyn RegistryFactory, "etcd", || Arc::new(
    EtcdRegistryFactory
));

static INSTANCES: Instances<EtcdRegistry> = Instances::new("etcd");

#[async_trait::async_trait]
impl RegistryFactory for EtcdRegistryFactory {
    /// Returns at once; the connection and lease are set up in the background.
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>> {
        Ok(INSTANCES.get_or_start(url, EtcdRegistry::start)?)
    }
}

struct Shared {
    url: Url,
    endpoints: Vec<String>,
    layout: DubboLayout,
    ttl: i64,
    timeout: Duration,
    user: Option<(String, String)>,
    /// The current client and its lease, when set up.
    conn: Connection<EtcdClient>,
    lease: AtomicI64,
    /// Key → URL, put again on every new lease.
    registered: Registrations,
    /// Re-opened after every reconnection.
    subs: Subscriptions,
}

/// An etcd registry client (see the crate docs).
pub struct EtcdRegistry {
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
}

impl Drop for EtcdRegistry {
    fn drop(&mut self) {
        self.supervisor.abort();
        self.shared.subs.stop_watches();
    }
}

/// An etcd call's failure as an [`RpcError`] naming what was attempted, the status kept as
/// its source.
pub(crate) fn etcd_err(what: &str, e: tonic::Status) -> RpcError {
    RpcError::network(format!("etcd {what}: {}", e.message())).with_source(e)
}

impl EtcdRegistry {
    /// Starts a client for `url` and its lease task (needs a tokio runtime).
    pub fn start(url: &Url) -> Result<EtcdRegistry> {
        if url.host().is_empty() {
            return Err(RpcError::config(format!(
                "etcd registry URL '{url}' has no host"
            )));
        }
        let mut endpoints = vec![format!(
            "http://{}:{}",
            url.host(),
            url.port().unwrap_or(2379)
        )];
        if let Some(backup) = url.param(keys::BACKUP) {
            endpoints.extend(
                backup
                    .split(',')
                    .filter(|b| !b.is_empty())
                    .map(|b| format!("http://{}", b.trim())),
            );
        }
        let shared = Arc::new(Shared {
            url: url.clone(),
            endpoints,
            layout: DubboLayout::from_url(url),
            ttl: url.param_as(keys::LEASE, 10i64)?.max(1),
            timeout: Duration::from_millis(url.param_as(keys::TIMEOUT, 5_000u64)?.max(10)),
            user: url
                .username()
                .map(|u| (u.to_string(), url.password().unwrap_or("").to_string())),
            conn: Connection::new(),
            lease: AtomicI64::new(0),
            registered: Registrations::new(),
            subs: Subscriptions::new(),
        });
        let supervisor = tokio::spawn(supervise(shared.clone()));
        Ok(EtcdRegistry { shared, supervisor })
    }

    /// The id of the lease the registrations are attached to, once granted (for tests and
    /// diagnostics).
    pub fn lease_id(&self) -> Option<i64> {
        Some(self.shared.lease.load(Ordering::SeqCst)).filter(|l| *l != 0)
    }
}

impl Shared {
    /// The current client, waiting up to the `timeout` key for the first one (so a start-up
    /// subscription reads the registry rather than the cache when the registry is up).
    async fn wait_client(&self) -> Option<EtcdClient> {
        self.conn.wait(self.timeout).await
    }

    /// The current client as [`Shared::wait_client`], or a `Network` error naming the
    /// endpoints.
    async fn require_client(&self) -> Result<EtcdClient> {
        self.conn
            .wait_or_fail(self.timeout, || format!("etcd {:?}", self.endpoints))
            .await
    }

    /// The key prefix of one category of `interface`: `{root}/{interface}/{category}/`.
    fn prefix(&self, interface: &str, category: Category) -> String {
        format!("{}/", self.layout.category_path(interface, category))
    }

    fn key(&self, url: &Url) -> String {
        self.layout.url_path(url)
    }

    /// Puts the key of `url` as Dubbo's etcd3 registry does: on the lease with the lease id
    /// (decimal) as value, or, for `dynamic=false`, without lease and with Java's
    /// `String.hashCode` of the key as value.
    async fn put(&self, client: &EtcdClient, key: &str, url: &Url) -> Result<()> {
        let (value, lease) = put_value(key, url, self.lease.load(Ordering::SeqCst))?;
        tokio::time::timeout(self.timeout, client.put(key, value, lease))
            .await
            .map_err(|_| RpcError::timeout(format!("etcd put of {key} timed out")))?
            .map(|_| ())
            .map_err(|e| etcd_err("put", e))
    }

    /// Reads the complete list under `prefix`.
    async fn list(&self, client: &EtcdClient, prefix: &str) -> Result<Vec<Url>> {
        let end = prefix_end(prefix.as_bytes());
        let resp = tokio::time::timeout(self.timeout, client.range(prefix, end, MAX_KEYS, true))
            .await
            .map_err(|_| RpcError::timeout(format!("etcd get of {prefix} timed out")))?
            .map_err(|e| etcd_err("get", e))?;
        if resp.more {
            tracing::warn!(
                prefix,
                "etcd: only the first {MAX_KEYS} keys of the prefix are read"
            );
        }
        let keys: Vec<_> = resp
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key))
            .collect();
        Ok(decode_url_list(
            prefix,
            keys.iter()
                .filter_map(|k| k.strip_prefix(prefix))
                .filter(|name| !name.contains('/')),
        ))
    }

    /// The interfaces with at least one key in a category, sorted. Reads keys only, in
    /// pages; after a page it jumps past the last interface found, so each interface costs
    /// at most one page whatever its number of keys. At most [`MAX_KEYS`] interfaces and
    /// [`MAX_KEYS`] pages.
    async fn services(&self, client: &EtcdClient) -> Result<Vec<String>> {
        let root_prefix = format!("{}/", self.layout.root());
        // The end of the prefix range: '0' is the byte after '/'.
        let end = format!("{}0", self.layout.root());
        let mut start: Vec<u8> = root_prefix.clone().into_bytes();
        let mut out: Vec<String> = Vec::new();
        let limit = usize::try_from(MAX_KEYS).unwrap_or(usize::MAX);
        let mut pages = 0usize;
        let truncated = loop {
            pages += 1;
            let page = client.range(start.clone(), end.as_str(), SERVICES_PAGE, true);
            let resp = tokio::time::timeout(self.timeout, page)
                .await
                .map_err(|_| {
                    RpcError::timeout(format!(
                        "etcd get from {} timed out",
                        String::from_utf8_lossy(&start)
                    ))
                })?
                .map_err(|e| etcd_err("services", e))?;
            // The first key after this page worth reading.
            let mut next: Option<Vec<u8>> = None;
            for kv in &resp.kvs {
                let key = std::str::from_utf8(&kv.key).ok();
                match key.and_then(|k| interface_of_key(&root_prefix, k)) {
                    Some((segment, interface)) => {
                        if out.last() != Some(&interface) {
                            out.push(interface);
                        }
                        // Every key of this interface starts with `{root}/{segment}/`.
                        next = Some(format!("{root_prefix}{segment}0").into_bytes());
                    }
                    None => next = Some([kv.key.as_slice(), &[0]].concat()),
                }
            }
            match next {
                Some(n) if resp.more && out.len() < limit && pages <= limit => start = n,
                _ => break resp.more || out.len() > limit,
            }
        };
        if truncated {
            tracing::warn!(
                prefix = root_prefix,
                "etcd: listing stopped after {MAX_KEYS} interfaces or pages"
            );
            out.truncate(limit);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Starts the watch tasks of one subscription on `client`; the receivers fire once each
    /// category's first list was notified.
    fn start_watch(
        self: &Arc<Self>,
        client: &EtcdClient,
        sub: &Subscription,
    ) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        self.subs.start(sub, |category, watch| {
            tokio::spawn(watch_category(
                self.clone(),
                client.clone(),
                self.prefix(&sub.interface, category),
                watch,
            ))
        })
    }
}

/// Watches one category prefix; after the watch is open and after every event, reads the
/// whole prefix and notifies it when it changed. Re-opens the watch after an error.
async fn watch_category(
    shared: Arc<Shared>,
    client: EtcdClient,
    prefix: String,
    mut watch: CategoryWatch,
) {
    loop {
        let end = prefix_end(prefix.as_bytes());
        let opened = tokio::time::timeout(shared.timeout, client.watch(prefix.as_str(), end)).await;
        let mut stream = match opened {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(prefix, error = %e, "etcd: cannot watch, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => continue,
        };
        loop {
            match shared.list(&client, &prefix).await {
                Ok(urls) => {
                    watch.update(urls);
                }
                Err(e) => {
                    tracing::debug!(prefix, error = %e, "etcd: list failed, re-opening the watch");
                    break;
                }
            }
            match stream.message().await {
                Ok(Some(resp)) if !resp.canceled => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(prefix, error = %e, "etcd: watch broke, re-opening");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets up a client and lease, puts every registration and opens every watch; then keeps
/// the lease alive. Any failure starts over with a new client and lease.
async fn supervise(shared: Arc<Shared>) {
    let mut backoff = Backoff::registry();
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = run_session(&shared).await {
            tracing::warn!(registry = %shared.url, error = %e, "etcd: session lost, starting over");
            shared.conn.set_failure(e);
        }
        if started.elapsed() > Backoff::STABLE {
            backoff.reset();
        }
        shared.conn.set_available(false);
        shared.subs.stop_watches();
        shared.lease.store(0, Ordering::SeqCst);
        shared.conn.clear();
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One client and lease, until something fails (it never returns `Ok`).
async fn run_session(shared: &Arc<Shared>) -> Result<()> {
    let user = shared.user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let timed = |what: &'static str| move |_| RpcError::timeout(format!("etcd {what} timed out"));
    let client = tokio::time::timeout(
        shared.timeout,
        EtcdClient::connect(&shared.endpoints, shared.timeout, user),
    )
    .await
    .map_err(timed("connect"))?
    .map_err(|e| etcd_err("connect", e))?;
    let lease = tokio::time::timeout(shared.timeout, client.lease_grant(shared.ttl))
        .await
        .map_err(timed("lease grant"))?
        .map_err(|e| etcd_err("lease grant", e))?
        .id;
    let (mut keeper, mut replies) =
        tokio::time::timeout(shared.timeout, client.lease_keep_alive(lease))
            .await
            .map_err(timed("keep-alive"))?
            .map_err(|e| etcd_err("keep-alive", e))?;
    shared.lease.store(lease, Ordering::SeqCst);
    shared.conn.set(client.clone());
    for (key, url) in shared.registered.snapshot() {
        shared.put(&client, &key, &url).await?;
    }
    for sub in shared.subs.snapshot() {
        drop(shared.start_watch(&client, &sub));
    }
    shared.conn.set_available(true);
    tracing::info!(registry = %shared.url, lease, "etcd: lease granted");

    let period = Duration::from_millis(u64::try_from(shared.ttl).unwrap_or(1) * 1000 / 3);
    loop {
        tokio::time::sleep(period).await;
        tokio::time::timeout(shared.timeout, keeper.keep_alive())
            .await
            .map_err(timed("keep-alive"))?
            .map_err(|e| etcd_err("keep-alive", e))?;
        let reply = tokio::time::timeout(shared.timeout, replies.message())
            .await
            .map_err(timed("keep-alive reply"))?
            .map_err(|e| etcd_err("keep-alive reply", e))?;
        match reply {
            Some(r) if r.ttl > 0 => {}
            Some(_) => {
                return Err(RpcError::network(format!(
                    "etcd lease {lease} is gone (revoked or expired)"
                )))
            }
            None => return Err(RpcError::network("etcd keep-alive stream closed")),
        }
    }
}

#[async_trait::async_trait]
impl Registry for EtcdRegistry {
    fn url(&self) -> &Url {
        &self.shared.url
    }

    fn is_available(&self) -> bool {
        self.shared.conn.is_available()
    }

    /// Records the registration (put again on every new lease) and puts it now when a lease
    /// exists; a failure now is logged and retried by the background task.
    async fn register(&self, url: &Url) -> Result<()> {
        let key = self.shared.key(url);
        self.shared.registered.insert(&key, url);
        let client = self.shared.wait_client().await;
        if let (Some(client), Some(_)) = (client, self.lease_id()) {
            if let Err(e) = self.shared.put(&client, &key, url).await {
                tracing::warn!(key, error = %e, "etcd: registration deferred until reconnected");
            }
        }
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let key = self.shared.key(url);
        self.shared.registered.remove(&key);
        let Some(client) = self.shared.conn.get() else {
            return Ok(());
        };
        tokio::time::timeout(self.shared.timeout, client.delete(key.as_str(), ""))
            .await
            .map_err(|_| RpcError::timeout(format!("etcd delete of {key} timed out")))?
            .map(|_| ())
            .map_err(|e| etcd_err("unregister", e).with_service(url.service_key()))
    }

    /// Records the subscription (re-opened after every reconnection); when connected, waits
    /// until the current lists were notified (at most the `timeout` key).
    async fn subscribe(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Result<()> {
        let shared = &self.shared;
        shared
            .subs
            .subscribe(url, listener, &shared.conn, shared.timeout, |c, sub| {
                shared.start_watch(c, sub)
            })
            .await;
        Ok(())
    }

    async fn unsubscribe(&self, url: &Url, listener: &Arc<dyn NotifyListener>) -> Result<()> {
        self.shared.subs.remove(url.interface(), listener);
        Ok(())
    }

    async fn lookup(&self, url: &Url) -> Result<Vec<Url>> {
        let client = self.shared.require_client().await?;
        let prefix = self.shared.prefix(url.interface(), Category::Providers);
        self.shared
            .list(&client, &prefix)
            .await
            .map_err(|e| e.with_service(url.service_key()))
    }

    /// The interfaces with at least one key under `/{root}/{interface}/{category}/`.
    async fn services(&self) -> Result<Vec<String>> {
        let client = self.shared.require_client().await?;
        self.shared.services(&client).await
    }

    /// The value of the key `/{root}/config/{group}/{key}` (Dubbo's etcd config center).
    async fn get_config(&self, key: &ConfigKey) -> Result<Option<String>> {
        let client = self.shared.require_client().await?;
        let path = key.path(self.shared.layout.root());
        let resp = tokio::time::timeout(
            self.shared.timeout,
            client.range(path.as_str(), "", 1, false),
        )
        .await
        .map_err(|_| RpcError::timeout(format!("etcd get of {path} timed out")))?
        .map_err(|e| etcd_err("get", e))?;
        let Some(kv) = resp.kvs.into_iter().next() else {
            return Ok(None);
        };
        if kv.value.len() > MAX_CONFIG_BYTES {
            return Err(RpcError::codec(format!(
                "etcd key {path} holds {} bytes, more than {MAX_CONFIG_BYTES}",
                kv.value.len()
            )));
        }
        String::from_utf8(kv.value)
            .map(Some)
            .map_err(|_| RpcError::codec(format!("etcd key {path} is not UTF-8 text")))
    }

    /// Opens a watch on the entry's key, then reads it: returns at once when it differs from
    /// `seen`, else at the next put or delete of the key, or after `within` (also without a
    /// connection).
    async fn wait_config_change(&self, key: &ConfigKey, seen: Option<&str>, within: Duration) {
        let path = key.path(self.shared.layout.root());
        let change = async {
            let Some(client) = self.shared.conn.get() else {
                return tokio::time::sleep(within).await;
            };
            let Ok(mut stream) = client.watch(path.as_str(), "").await else {
                return tokio::time::sleep(within).await;
            };
            // The watch is open once its first message arrives.
            match stream.message().await {
                Ok(Some(r)) if !r.canceled => {
                    if !r.events.is_empty() {
                        return;
                    }
                }
                _ => return tokio::time::sleep(within).await,
            }
            match self.get_config(key).await {
                Ok(now) if now.as_deref() != seen => return,
                Ok(_) => {}
                Err(_) => return tokio::time::sleep(within).await,
            }
            loop {
                match stream.message().await {
                    Ok(Some(r)) if r.canceled => break,
                    Ok(Some(r)) if !r.events.is_empty() => return,
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            tokio::time::sleep(within).await;
        };
        let _ = tokio::time::timeout(within, change).await;
    }

    /// Puts (without a lease) or deletes the entry's key.
    async fn publish_config(&self, key: &ConfigKey, content: Option<&str>) -> Result<()> {
        let client = self.shared.require_client().await?;
        let path = key.path(self.shared.layout.root());
        let request = async {
            match content {
                Some(c) => {
                    check_content(key, c)?;
                    client
                        .put(path.as_str(), c.as_bytes(), 0)
                        .await
                        .map(|_| ())
                        .map_err(|e| etcd_err("put", e))
                }
                None => client
                    .delete(path.as_str(), "")
                    .await
                    .map(|_| ())
                    .map_err(|e| etcd_err("delete", e)),
            }
        };
        tokio::time::timeout(self.shared.timeout, request)
            .await
            .map_err(|_| RpcError::timeout(format!("etcd write of {path} timed out")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_follow_dubbo_layout() {
        let reg = EtcdRegistry::start(
            &Url::parse("etcd://127.0.0.1:1?root=rpc&backup=127.0.0.1:2").expect("url"),
        )
        .expect("start");
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        assert_eq!(
            reg.shared.key(&p),
            format!("/rpc/org.Foo/providers/{}", p.dubbo_encoded())
        );
        assert_eq!(
            reg.shared.endpoints,
            vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert!(!reg.is_available());
        assert_eq!(reg.lease_id(), None);
    }

    #[test]
    fn persistent_values_are_java_hash_codes() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        // "hello".hashCode() and a value that wraps.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    /// A dynamic registration is put on the session's lease, never without one (a session
    /// that ended between the check and the put): it would outlive its process. A
    /// persistent one carries no lease, as Dubbo writes it.
    #[test]
    fn a_dynamic_registration_is_never_put_without_a_lease() {
        let dynamic = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        assert_eq!(
            put_value("k", &dynamic, 42).expect("leased"),
            ("42".to_string(), 42)
        );
        let e = put_value("k", &dynamic, 0).expect_err("no lease");
        assert!(e.to_string().contains("no lease"), "{e}");
        let persistent = Url::parse("dubbo://10.0.0.1:20880/org.Foo?dynamic=false").expect("url");
        assert_eq!(
            put_value("a", &persistent, 0).expect("persistent"),
            ("97".to_string(), 0)
        );
    }

    #[test]
    fn keys_outside_the_layout_give_no_interface() {
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Outer$Inner").expect("url");
        let key = format!("/dubbo/org.Outer%24Inner/providers/{}", p.dubbo_encoded());
        assert_eq!(
            interface_of_key("/dubbo/", &key),
            Some(("org.Outer%24Inner", "org.Outer$Inner".to_string()))
        );
        for bad in [
            "/other/org.Foo/providers/x",
            "/dubbo/org.Foo",
            "/dubbo/org.Foo/providers/",
            "/dubbo/org.Foo/bogus/x",
            "/dubbo/org.Foo/providers/a/b",
            "/dubbo//providers/x",
            "/dubbo/bad%ff/providers/x",
        ] {
            assert_eq!(interface_of_key("/dubbo/", bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn services_fail_with_a_network_error_when_unreachable() {
        let reg = EtcdRegistry::start(&Url::parse("etcd://127.0.0.1:1?timeout=100").expect("url"))
            .expect("start");
        let err = reg.services().await.expect_err("no server");
        assert_eq!(err.kind(), rpc_core::ErrorKind::Network);
        assert!(err.to_string().contains("not connected"), "{err}");
    }

    #[test]
    fn a_url_without_host_is_refused() {
        let err = EtcdRegistry::start(&Url::parse("etcd://").expect("url"))
            .err()
            .expect("no host");
        assert!(err.to_string().contains("no host"), "{err}");
    }
}
