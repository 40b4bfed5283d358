//! etcd v3 registry (`etcd://host:port`), with Dubbo's key layout:
//!
//! ```text
//! /{root}/{interface}/{category}/{Url::encoded()}  =  the URL text
//! ```
//!
//! Every key of one client is attached to one lease that a background task keeps alive; if
//! the process dies, the lease runs out after its TTL and etcd deletes the keys. Link this
//! crate and use `rpc_core::registry::connect(&"etcd://127.0.0.1:2379".parse()?)`; add
//! `use rpc_registry_etcd as _;` so the linker keeps it.
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

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use etcd_client as etcd;
use rpc_core::registry::{
    decode_interface_segment, listener_id, Category, NotifyListener, Registry, RegistryFactory,
};
use rpc_core::url::encode_component;
use rpc_core::{Result, RpcError, Url};
use tokio::sync::oneshot;
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

/// Creates etcd registries, one per registry URL while it is in use.
#[derive(Debug, Default)]
pub struct EtcdRegistryFactory;

rpc_core::register!(dyn RegistryFactory, "etcd", || Arc::new(
    EtcdRegistryFactory
));

fn instances() -> &'static Mutex<HashMap<String, Weak<EtcdRegistry>>> {
    static INSTANCES: OnceLock<Mutex<HashMap<String, Weak<EtcdRegistry>>>> = OnceLock::new();
    INSTANCES.get_or_init(Default::default)
}

#[async_trait::async_trait]
impl RegistryFactory for EtcdRegistryFactory {
    /// Returns at once; the connection and lease are set up in the background.
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>> {
        let key = url.to_string();
        let mut map = instances()
            .lock()
            .map_err(|_| RpcError::internal("etcd registry table poisoned"))?;
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(reg) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(reg);
        }
        let reg = Arc::new(EtcdRegistry::start(url)?);
        map.insert(key, Arc::downgrade(&reg));
        Ok(reg)
    }
}

#[derive(Clone)]
struct Subscription {
    id: u64,
    interface: String,
    categories: Vec<Category>,
    listener: Arc<dyn NotifyListener>,
}

struct Shared {
    url: Url,
    endpoints: Vec<String>,
    root: String,
    ttl: i64,
    timeout: Duration,
    user: Option<(String, String)>,
    available: AtomicBool,
    /// The current client and its lease, when set up.
    client: Mutex<Option<etcd::Client>>,
    lease: AtomicI64,
    /// Key → URL, put again on every new lease.
    registered: Mutex<BTreeMap<String, Url>>,
    subs: Mutex<Vec<Subscription>>,
    /// Watch tasks of the current client, by subscription id.
    watches: Mutex<HashMap<u64, Vec<JoinHandle<()>>>>,
    next_id: AtomicU64,
    /// Woken whenever a new client is in place.
    ready: tokio::sync::Notify,
}

/// An etcd registry client (see the crate docs).
pub struct EtcdRegistry {
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
}

impl Drop for EtcdRegistry {
    fn drop(&mut self) {
        self.supervisor.abort();
        self.shared.stop_watches();
    }
}

fn etcd_err(what: &str, e: etcd::Error) -> RpcError {
    RpcError::network(format!("etcd {what}: {e}"))
}

impl EtcdRegistry {
    /// Starts a client for `url` and its lease task (needs a tokio runtime).
    pub fn start(url: &Url) -> Result<EtcdRegistry> {
        if url.host().is_empty() {
            return Err(RpcError::internal(format!(
                "etcd registry URL '{url}' has no host"
            )));
        }
        let mut endpoints = vec![format!(
            "http://{}:{}",
            url.host(),
            url.port().unwrap_or(2379)
        )];
        if let Some(backup) = url.param("backup") {
            endpoints.extend(
                backup
                    .split(',')
                    .filter(|b| !b.is_empty())
                    .map(|b| format!("http://{}", b.trim())),
            );
        }
        let root = url.param("root").unwrap_or("dubbo").trim_matches('/');
        let root = if root.is_empty() {
            String::new()
        } else {
            format!("/{root}")
        };
        let shared = Arc::new(Shared {
            url: url.clone(),
            endpoints,
            root,
            ttl: url.param_as("lease", 10i64)?.max(1),
            timeout: Duration::from_millis(url.param_as("timeout", 5_000u64)?.max(10)),
            user: url
                .username()
                .map(|u| (u.to_string(), url.password().unwrap_or("").to_string())),
            available: AtomicBool::new(false),
            client: Mutex::new(None),
            lease: AtomicI64::new(0),
            registered: Mutex::new(BTreeMap::new()),
            subs: Mutex::new(Vec::new()),
            watches: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            ready: tokio::sync::Notify::new(),
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
    fn client(&self) -> Option<etcd::Client> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    /// The current client, waiting up to the `timeout` key for the first one (so a start-up
    /// subscription reads the registry rather than the cache when the registry is up).
    async fn wait_client(&self) -> Option<etcd::Client> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let ready = self.ready.notified();
            if let Some(c) = self.client() {
                return Some(c);
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return None;
            }
        }
    }

    fn prefix(&self, interface: &str, category: Category) -> String {
        format!(
            "{}/{}/{}/",
            self.root,
            encode_component(interface),
            category.as_str()
        )
    }

    fn key(&self, url: &Url) -> String {
        format!(
            "{}{}",
            self.prefix(url.interface(), Category::of(url)),
            url.encoded()
        )
    }

    fn stop_watches(&self) {
        if let Ok(mut w) = self.watches.lock() {
            for (_, tasks) in w.drain() {
                tasks.into_iter().for_each(|t| t.abort());
            }
        }
    }

    async fn put(&self, client: &mut etcd::Client, key: &str, url: &Url) -> Result<()> {
        let lease = self.lease.load(Ordering::SeqCst);
        let opts = etcd::PutOptions::new().with_lease(lease);
        tokio::time::timeout(self.timeout, client.put(key, url.to_string(), Some(opts)))
            .await
            .map_err(|_| RpcError::timeout(format!("etcd put of {key} timed out")))?
            .map(|_| ())
            .map_err(|e| etcd_err("put", e))
    }

    /// Reads the complete list under `prefix`.
    async fn list(&self, client: &mut etcd::Client, prefix: &str) -> Result<Vec<Url>> {
        let opts = etcd::GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_limit(MAX_KEYS);
        let resp = tokio::time::timeout(self.timeout, client.get(prefix, Some(opts)))
            .await
            .map_err(|_| RpcError::timeout(format!("etcd get of {prefix} timed out")))?
            .map_err(|e| etcd_err("get", e))?;
        if resp.more() {
            tracing::warn!(
                prefix,
                "etcd: only the first {MAX_KEYS} keys of the prefix are read"
            );
        }
        let mut urls: Vec<Url> = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                let name = key.strip_prefix(prefix)?;
                match Url::decode_component(name) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "etcd: skipped a key that is not a URL");
                        None
                    }
                }
            })
            .collect();
        urls.sort_by_key(|u| u.to_string());
        Ok(urls)
    }

    /// The interfaces with at least one key in a category, sorted. Reads keys only, in
    /// pages; after a page it jumps past the last interface found, so each interface costs
    /// at most one page whatever its number of keys. At most [`MAX_KEYS`] interfaces and
    /// [`MAX_KEYS`] pages.
    async fn services(&self, client: &mut etcd::Client) -> Result<Vec<String>> {
        let root_prefix = format!("{}/", self.root);
        // The end of the prefix range: '0' is the byte after '/'.
        let end = format!("{}0", self.root);
        let mut start: Vec<u8> = root_prefix.clone().into_bytes();
        let mut out: Vec<String> = Vec::new();
        let limit = usize::try_from(MAX_KEYS).unwrap_or(usize::MAX);
        let mut pages = 0usize;
        let truncated = loop {
            pages += 1;
            let opts = etcd::GetOptions::new()
                .with_range(end.as_str())
                .with_keys_only()
                .with_limit(SERVICES_PAGE);
            let resp = tokio::time::timeout(self.timeout, client.get(start.clone(), Some(opts)))
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
            for kv in resp.kvs() {
                let key = std::str::from_utf8(kv.key()).ok();
                match key.and_then(|k| interface_of_key(&root_prefix, k)) {
                    Some((segment, interface)) => {
                        if out.last() != Some(&interface) {
                            out.push(interface);
                        }
                        // Every key of this interface starts with `{root}/{segment}/`.
                        next = Some(format!("{root_prefix}{segment}0").into_bytes());
                    }
                    None => next = Some([kv.key(), &[0]].concat()),
                }
            }
            match next {
                Some(n) if resp.more() && out.len() < limit && pages <= limit => start = n,
                _ => break resp.more() || out.len() > limit,
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

    fn start_watch(
        self: &Arc<Self>,
        client: &etcd::Client,
        sub: &Subscription,
    ) -> Vec<oneshot::Receiver<()>> {
        let mut firsts = Vec::new();
        let mut tasks = Vec::new();
        for category in &sub.categories {
            let (tx, rx) = oneshot::channel();
            firsts.push(rx);
            tasks.push(tokio::spawn(watch_category(
                self.clone(),
                client.clone(),
                sub.listener.clone(),
                self.prefix(&sub.interface, *category),
                *category,
                tx,
            )));
        }
        if let Ok(mut w) = self.watches.lock() {
            if let Some(old) = w.insert(sub.id, tasks) {
                old.into_iter().for_each(|t| t.abort());
            }
        }
        firsts
    }
}

/// Watches one category prefix; after the watch is open and after every event, reads the
/// whole prefix and notifies it when it changed. Re-opens the watch after an error.
async fn watch_category(
    shared: Arc<Shared>,
    mut client: etcd::Client,
    listener: Arc<dyn NotifyListener>,
    prefix: String,
    category: Category,
    first: oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut last: Option<Vec<Url>> = None;
    loop {
        let opts = etcd::WatchOptions::new().with_prefix();
        let opened =
            tokio::time::timeout(shared.timeout, client.watch(prefix.as_str(), Some(opts))).await;
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
            match shared.list(&mut client, &prefix).await {
                Ok(urls) => {
                    if last.as_ref() != Some(&urls) {
                        last = Some(urls.clone());
                        listener.notify(category, urls);
                    }
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                }
                Err(e) => {
                    tracing::debug!(prefix, error = %e, "etcd: list failed, re-opening the watch");
                    break;
                }
            }
            match stream.message().await {
                Ok(Some(resp)) if !resp.canceled() => {}
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
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = run_session(&shared).await {
            tracing::warn!(registry = %shared.url, error = %e, "etcd: session lost, starting over");
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        shared.available.store(false, Ordering::SeqCst);
        shared.stop_watches();
        shared.lease.store(0, Ordering::SeqCst);
        if let Ok(mut c) = shared.client.lock() {
            c.take();
        }
        let jitter = Duration::from_millis(fastrand::u64(0..100));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One client and lease, until something fails (it never returns `Ok`).
async fn run_session(shared: &Arc<Shared>) -> Result<()> {
    let mut opts = etcd::ConnectOptions::new()
        .with_connect_timeout(shared.timeout)
        .with_timeout(shared.timeout);
    if let Some((user, password)) = &shared.user {
        opts = opts.with_user(user.clone(), password.clone());
    }
    let timed = |what: &'static str| move |_| RpcError::timeout(format!("etcd {what} timed out"));
    let mut client = tokio::time::timeout(
        shared.timeout,
        etcd::Client::connect(&shared.endpoints, Some(opts)),
    )
    .await
    .map_err(timed("connect"))?
    .map_err(|e| etcd_err("connect", e))?;
    let lease = tokio::time::timeout(shared.timeout, client.lease_grant(shared.ttl, None))
        .await
        .map_err(timed("lease grant"))?
        .map_err(|e| etcd_err("lease grant", e))?
        .id();
    let (mut keeper, mut replies) =
        tokio::time::timeout(shared.timeout, client.lease_keep_alive(lease))
            .await
            .map_err(timed("keep-alive"))?
            .map_err(|e| etcd_err("keep-alive", e))?;
    shared.lease.store(lease, Ordering::SeqCst);
    if let Ok(mut c) = shared.client.lock() {
        *c = Some(client.clone());
    }
    shared.ready.notify_waiters();
    let registered: Vec<(String, Url)> = shared
        .registered
        .lock()
        .map(|r| r.iter().map(|(k, u)| (k.clone(), u.clone())).collect())
        .unwrap_or_default();
    for (key, url) in registered {
        shared.put(&mut client, &key, &url).await?;
    }
    let subs: Vec<Subscription> = shared.subs.lock().map(|s| s.clone()).unwrap_or_default();
    for sub in &subs {
        drop(shared.start_watch(&client, sub));
    }
    shared.available.store(true, Ordering::SeqCst);
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
            Some(r) if r.ttl() > 0 => {}
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
        self.shared.available.load(Ordering::SeqCst)
    }

    /// Records the registration (put again on every new lease) and puts it now when a lease
    /// exists; a failure now is logged and retried by the background task.
    async fn register(&self, url: &Url) -> Result<()> {
        let key = self.shared.key(url);
        if let Ok(mut r) = self.shared.registered.lock() {
            r.insert(key.clone(), url.clone());
        }
        let client = self.shared.wait_client().await;
        if let (Some(mut client), Some(_)) = (client, self.lease_id()) {
            if let Err(e) = self.shared.put(&mut client, &key, url).await {
                tracing::warn!(key, error = %e, "etcd: registration deferred until reconnected");
            }
        }
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let key = self.shared.key(url);
        if let Ok(mut r) = self.shared.registered.lock() {
            r.remove(&key);
        }
        let Some(mut client) = self.shared.client() else {
            return Ok(());
        };
        tokio::time::timeout(self.shared.timeout, client.delete(key.as_str(), None))
            .await
            .map_err(|_| RpcError::timeout(format!("etcd delete of {key} timed out")))?
            .map(|_| ())
            .map_err(|e| etcd_err("unregister", e).with_service(url.service_key()))
    }

    /// Records the subscription (re-opened after every reconnection); when connected, waits
    /// until the current lists were notified (at most the `timeout` key).
    async fn subscribe(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Result<()> {
        let sub = Subscription {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            interface: url.interface().to_string(),
            categories: Category::subscribed(url),
            listener,
        };
        if let Ok(mut subs) = self.shared.subs.lock() {
            subs.push(sub.clone());
        }
        let firsts = match self.shared.wait_client().await {
            Some(client) => self.shared.start_watch(&client, &sub),
            None => Vec::new(),
        };
        let _ = tokio::time::timeout(self.shared.timeout, async {
            for rx in firsts {
                let _ = rx.await;
            }
        })
        .await;
        Ok(())
    }

    async fn unsubscribe(&self, url: &Url, listener: &Arc<dyn NotifyListener>) -> Result<()> {
        let id = listener_id(listener);
        let mut removed = Vec::new();
        if let Ok(mut subs) = self.shared.subs.lock() {
            subs.retain(|s| {
                let hit = s.interface == url.interface() && listener_id(&s.listener) == id;
                if hit {
                    removed.push(s.id);
                }
                !hit
            });
        }
        if let Ok(mut w) = self.shared.watches.lock() {
            for id in removed {
                w.remove(&id).into_iter().flatten().for_each(|t| t.abort());
            }
        }
        Ok(())
    }

    async fn lookup(&self, url: &Url) -> Result<Vec<Url>> {
        let mut client = self.shared.wait_client().await.ok_or_else(|| {
            RpcError::network(format!("etcd {:?} is not connected", self.shared.endpoints))
        })?;
        let prefix = self.shared.prefix(url.interface(), Category::Providers);
        self.shared
            .list(&mut client, &prefix)
            .await
            .map_err(|e| e.with_service(url.service_key()))
    }

    /// The interfaces with at least one key under `/{root}/{interface}/{category}/`.
    async fn services(&self) -> Result<Vec<String>> {
        let mut client = self.shared.wait_client().await.ok_or_else(|| {
            RpcError::network(format!("etcd {:?} is not connected", self.shared.endpoints))
        })?;
        self.shared.services(&mut client).await
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
            format!("/rpc/org.Foo/providers/{}", p.encoded())
        );
        assert_eq!(
            reg.shared.endpoints,
            vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert!(!reg.is_available());
        assert_eq!(reg.lease_id(), None);
    }

    #[test]
    fn keys_outside_the_layout_give_no_interface() {
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Outer$Inner").expect("url");
        let key = format!("/dubbo/org.Outer%24Inner/providers/{}", p.encoded());
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
