//! Building blocks shared by the adapters of remote registry servers (ZooKeeper, etcd, Nacos): the
//! Dubbo path layout, the registrations replayed after a reconnection, the current
//! connection with its availability, the reconnect backoff and the per-URL instance table
//! of a factory. Subscriptions live in [`super::subscriptions`].
//!
//! What each server does differently (sessions, leases, watches, reads) stays in its
//! adapter.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use super::Category;
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::url::{java_url_encode, Url};

/// Longest entry name (node name, key part) read from a registry; longer ones are skipped.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// Dubbo's registry layout: `{root}/{interface}/{category}/{Url::dubbo_encoded()}`, the
/// interface and the URL each written as Java's `URLEncoder` does (Dubbo's
/// `ZookeeperRegistry.toUrlPath`, the same in its etcd3 registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DubboLayout {
    root: String,
}

impl DubboLayout {
    /// The layout of a registry URL: its `root` key (default `dubbo`, slashes around it
    /// ignored, empty for none).
    pub fn from_url(url: &Url) -> DubboLayout {
        let root = url.param(keys::ROOT).unwrap_or("dubbo").trim_matches('/');
        let root = if root.is_empty() {
            String::new()
        } else {
            format!("/{root}")
        };
        DubboLayout { root }
    }

    /// The root as a path prefix: `/{root}`, or the empty string when there is none.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `{root}/{interface}/{category}` (the interface URL-encoded as Java does, no trailing
    /// slash).
    pub fn category_path(&self, interface: &str, category: Category) -> String {
        format!(
            "{}/{}/{}",
            self.root,
            java_url_encode(interface),
            category.as_str()
        )
    }

    /// Where `url` is filed: `{category_path}/{Url::dubbo_encoded()}`, in the category of
    /// [`Category::of`].
    pub fn url_path(&self, url: &Url) -> String {
        format!(
            "{}/{}",
            self.category_path(url.interface(), Category::of(url)),
            url.dubbo_encoded()
        )
    }
}

/// Decodes the entry names (ZooKeeper child nodes, etcd key suffixes) of one category,
/// written as Dubbo writes them ([`Url::decode_dubbo_component`]), into the list to notify:
/// sorted by URL text, without what does not decode to a URL or is longer than
/// [`MAX_ENTRY_BYTES`] (skipped with a warning naming `location` and the entry).
pub fn decode_url_list<'a>(location: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<Url> {
    let mut urls: Vec<Url> = names
        .into_iter()
        .filter(|name| {
            let fits = name.len() <= MAX_ENTRY_BYTES;
            if !fits {
                tracing::warn!(location, bytes = name.len(), "registry: skipped an entry longer than {MAX_ENTRY_BYTES} bytes");
            }
            fits
        })
        .filter_map(|name| match Url::decode_dubbo_component(name) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(location, entry = %name, error = %e, "registry: skipped an entry that is not a URL");
                None
            }
        })
        .collect();
    urls.sort_by_key(|u| u.to_string());
    urls
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every user changes the protected value in one step, so a poisoned lock still holds a
    // consistent value.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The URLs an adapter registered, by their path or key, written again after every
/// reconnection.
#[derive(Debug, Default)]
pub struct Registrations {
    urls: Mutex<BTreeMap<String, Url>>,
}

impl Registrations {
    /// None yet.
    pub fn new() -> Registrations {
        Registrations::default()
    }

    /// Records `url` under `path` (replacing what was there).
    pub fn insert(&self, path: &str, url: &Url) {
        lock(&self.urls).insert(path.to_string(), url.clone());
    }

    /// Forgets the URL under `path`; whether there was one.
    pub fn remove(&self, path: &str) -> bool {
        lock(&self.urls).remove(path).is_some()
    }

    /// Every recorded path and URL, sorted by path: what to write again.
    pub fn snapshot(&self) -> Vec<(String, Url)> {
        lock(&self.urls)
            .iter()
            .map(|(p, u)| (p.clone(), u.clone()))
            .collect()
    }
}

/// The adapter's current client (when it has one) and whether the server is reachable.
///
/// The background task that owns the connection [`set`](Connection::set)s a client once
/// it is usable and [`clear`](Connection::clear)s it when it is lost; calls in between wait
/// for it with [`wait`](Connection::wait).
#[derive(Debug)]
pub struct Connection<C> {
    client: Mutex<Option<C>>,
    available: AtomicBool,
    /// Woken whenever a new client is in place.
    ready: tokio::sync::Notify,
    /// Why the last attempt to get a client failed, until one is in place.
    failure: Mutex<Option<RpcError>>,
}

impl<C> Default for Connection<C> {
    fn default() -> Self {
        Connection {
            client: Mutex::new(None),
            available: AtomicBool::new(false),
            ready: tokio::sync::Notify::new(),
            failure: Mutex::new(None),
        }
    }
}

impl<C: Clone> Connection<C> {
    /// No client yet, not available.
    pub fn new() -> Connection<C> {
        Connection::default()
    }

    /// The current client, if any.
    pub fn get(&self) -> Option<C> {
        lock(&self.client).clone()
    }

    /// Puts `client` in place and wakes the callers waiting in [`Connection::wait`].
    /// Availability is set apart, with [`Connection::set_available`].
    pub fn set(&self, client: C) {
        *lock(&self.failure) = None;
        *lock(&self.client) = Some(client);
        self.ready.notify_waiters();
    }

    /// Takes the client away (the connection is gone) and returns it.
    pub fn clear(&self) -> Option<C> {
        lock(&self.client).take()
    }

    /// The current client, waiting up to `timeout` for one (so a start-up call reads the
    /// registry rather than a cache when the registry is up); `None` when none came.
    pub async fn wait(&self, timeout: Duration) -> Option<C> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a `set` in between is not missed.
            let ready = self.ready.notified();
            if let Some(c) = self.get() {
                return Some(c);
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return None;
            }
        }
    }

    /// Like [`Connection::wait`], for calls that cannot do without the server: when no
    /// client came, `{server} is not connected` (`server()` names it), followed by the last
    /// [`failure`](Connection::set_failure) when there is one, whose kind it takes (a refused
    /// login stays `Unauthorized`); `Network` otherwise.
    pub async fn wait_or_fail(
        &self,
        timeout: Duration,
        server: impl FnOnce() -> String,
    ) -> Result<C> {
        if let Some(client) = self.wait(timeout).await {
            return Ok(client);
        }
        let text = format!("{} is not connected", server());
        Err(match lock(&self.failure).as_ref() {
            Some(cause) => RpcError::new(
                cause.kind(),
                format!("{text}: the last attempt failed: {}", cause.message()),
            ),
            None => RpcError::network(text),
        })
    }

    /// Records why the last attempt to get a client failed, for [`Connection::wait_or_fail`]
    /// to report; forgotten when a client is [`set`](Connection::set).
    pub fn set_failure(&self, cause: RpcError) {
        *lock(&self.failure) = Some(cause);
    }

    /// Whether the server can currently be reached ([`super::Registry::is_available`]).
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }

    /// Records whether the server can currently be reached.
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::SeqCst);
    }
}

/// Exponential reconnect backoff with jitter: each delay is the current step plus a random
/// jitter, and the step doubles up to a maximum.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: Duration,
    step: Duration,
}

impl Backoff {
    /// How long a connection must have lived for the next failure to start again from the
    /// first step (see [`Backoff::reset`]).
    pub const STABLE: Duration = Duration::from_secs(10);

    /// Steps from `initial` doubling up to `max`, each delay plus up to `jitter` at random.
    pub fn new(initial: Duration, max: Duration, jitter: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            jitter,
            step: initial,
        }
    }

    /// The registry adapters' backoff: 100 ms doubling up to 2 s, plus up to 100 ms.
    pub fn registry() -> Backoff {
        Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
            Duration::from_millis(100),
        )
    }

    /// The delay before the next attempt; the step after it is twice as long (at most the
    /// maximum).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.step + self.jitter();
        self.step = (self.step * 2).min(self.max);
        delay
    }

    /// A random delay below the jitter bound alone (spreads clients that all lost the same
    /// server).
    pub fn jitter(&self) -> Duration {
        let bound = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if bound == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(fastrand::u64(0..bound))
    }

    /// Starts again from the first step.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// The registries a factory has handed out, one per registry URL while it is in use, so
/// every caller of the same URL shares one connection.
#[derive(Debug)]
pub struct Instances<T> {
    name: &'static str,
    map: Mutex<BTreeMap<String, Weak<T>>>,
}

impl<T> Instances<T> {
    /// An empty table; `name` names the adapter in errors. `const`, for a `static`.
    pub const fn new(name: &'static str) -> Instances<T> {
        Instances {
            name,
            map: Mutex::new(BTreeMap::new()),
        }
    }

    /// The registry of `url` still in use, else a new one from `start(url)`, kept (weakly)
    /// for the next caller.
    pub fn get_or_start(&self, url: &Url, start: impl FnOnce(&Url) -> Result<T>) -> Result<Arc<T>> {
        let key = url.to_string();
        let mut map = self
            .map
            .lock()
            .map_err(|_| RpcError::internal(format!("{} registry table poisoned", self.name)))?;
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(reg) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(reg);
        }
        let reg = Arc::new(start(url)?);
        map.insert(key, Arc::downgrade(&reg));
        Ok(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn layout_follows_dubbo_with_the_root_key() {
        let p = url("dubbo://10.0.0.1:20880/org.Outer$Inner?side=provider");
        let default = DubboLayout::from_url(&url("zookeeper://h:1"));
        assert_eq!(default.root(), "/dubbo");
        assert_eq!(
            default.url_path(&p),
            format!("/dubbo/org.Outer%24Inner/providers/{}", p.dubbo_encoded())
        );
        let nested = DubboLayout::from_url(&url("etcd://h:1?root=/rpc/x/"));
        assert_eq!(nested.root(), "/rpc/x");
        assert_eq!(
            nested.category_path("org.Foo", Category::Routers),
            "/rpc/x/org.Foo/routers"
        );
        let none = DubboLayout::from_url(&url("etcd://h:1?root=/"));
        assert_eq!(none.root(), "");
        let c = url("consumer://10.0.0.2/org.Foo?side=consumer");
        assert_eq!(
            none.url_path(&c),
            format!("/org.Foo/consumers/{}", c.dubbo_encoded())
        );
    }

    #[test]
    fn registrations_replace_remove_and_replay_sorted() {
        let regs = Registrations::new();
        let a = url("dubbo://h:1/org.A");
        let b = url("dubbo://h:2/org.B");
        regs.insert("/b", &b);
        regs.insert("/a", &b);
        regs.insert("/a", &a);
        assert_eq!(
            regs.snapshot(),
            vec![("/a".to_string(), a), ("/b".to_string(), b.clone())]
        );
        assert!(regs.remove("/a"));
        assert!(!regs.remove("/a"), "already removed");
        assert_eq!(regs.snapshot(), vec![("/b".to_string(), b)]);
    }

    #[test]
    fn url_lists_are_sorted_and_skip_what_is_not_a_url() {
        let a = url("dubbo://10.0.0.2:1/org.Foo");
        let b = url("dubbo://10.0.0.1:1/org.Foo?x=1");
        let names = [
            a.dubbo_encoded(),
            "%zz".to_string(),
            "plain".to_string(),
            b.encoded(),
            "x".repeat(MAX_ENTRY_BYTES + 1),
        ];
        let urls = decode_url_list("/p", names.iter().map(String::as_str));
        assert_eq!(urls, vec![b, a]);
        assert!(decode_url_list("/p", []).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_connection_is_bounded() {
        let conn: Connection<u32> = Connection::new();
        assert_eq!(conn.wait(Duration::from_secs(5)).await, None);
        assert!(!conn.is_available());
        let err = conn
            .wait_or_fail(Duration::from_secs(5), || "test h:1".to_string())
            .await
            .expect_err("no client");
        assert_eq!(err.kind(), crate::ErrorKind::Network);
        assert!(
            err.to_string().contains("test h:1 is not connected"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_caller_gets_the_client_once_set() {
        let conn: Arc<Connection<u32>> = Arc::new(Connection::new());
        let waiter = tokio::spawn({
            let conn = conn.clone();
            async move { conn.wait(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        conn.set(7);
        assert_eq!(waiter.await.expect("waiter"), Some(7));
        let now = conn
            .wait_or_fail(Duration::ZERO, || unreachable!("connected"))
            .await;
        assert_eq!(now.ok(), Some(7));
        assert_eq!(conn.get(), Some(7));
        conn.set_available(true);
        assert!(conn.is_available());
        assert_eq!(conn.clear(), Some(7));
        assert_eq!(conn.get(), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(350),
            Duration::from_millis(10),
        );
        let steps = [100, 200, 350, 350];
        for step in steps {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(step) && d < Duration::from_millis(step + 10),
                "{d:?} for step {step}"
            );
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(110));
        assert!(b.jitter() < Duration::from_millis(10));
        let mut none = Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(5),
            Duration::ZERO,
        );
        assert_eq!(none.next_delay(), Duration::from_millis(5));
    }

    #[derive(Debug)]
    struct Reg(Url);

    #[test]
    fn instances_are_shared_per_url_while_in_use() {
        static TABLE: Instances<Reg> = Instances::new("test");
        let u = url("test://h:1");
        let start = |u: &Url| Ok(Reg(u.clone()));
        let a = TABLE.get_or_start(&u, start).expect("start");
        let again = TABLE
            .get_or_start(&u, |_| {
                Err(RpcError::internal("must not start a second one"))
            })
            .expect("shared");
        assert!(Arc::ptr_eq(&a, &again));
        let other = TABLE
            .get_or_start(&url("test://h:2"), start)
            .expect("other url");
        assert_eq!(other.0.port(), Some(2));
        drop((a, again));
        let err = TABLE
            .get_or_start(&u, |_| Err(RpcError::internal("refused")))
            .expect_err("the old one is gone, so it starts again");
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
