//! `local://`: the default registry, a shared directory with liveness leases. No server.
//!
//! **For development and single-host use.** Processes on one machine find each other through
//! a directory; use ZooKeeper or etcd (crates `rpc-registry-zookeeper`, `rpc-registry-etcd`)
//! in production.
//!
//! - Directory: the URL's path (`local:///some/dir`), else `$XDG_RUNTIME_DIR/rpc-registry`,
//!   else `{system temp dir}/rpc-registry` (`local://` with no path uses the default).
//! - A registration is one small JSON file `{dir}/{interface}/{category}/{Url::encoded()}`
//!   (a hash stands in for names longer than 200 bytes), holding the URL and its lease. It is
//!   written atomically (temporary file + rename) and rewritten every `lease`/3 ms by the
//!   registering process (`lease` key, default 3000 ms). A file older than its lease is dead:
//!   a process killed with `kill -9` disappears from the lists after its lease; one that calls
//!   `unregister` disappears at once (its file is deleted). Dropping the registry stops the
//!   refresh, exactly like a dead process. Files dead for ten leases are removed. A URL with
//!   `dynamic=false` (a rule written by an operator's tool) is persistent, as in Dubbo: its
//!   file has lease 0, is never refreshed and stays until it is unregistered.
//! - Subscriptions poll the directory every `poll` ms (default 300) and notify a category's
//!   complete list when its set of URLs changed.
//! - Bounded reads: at most [`MAX_ENTRIES`] files per category, [`MAX_ENTRIES`] interface
//!   directories when listing the services, and [`MAX_FILE_BYTES`] per file; malformed files
//!   are skipped with a warning (once per file name).
//! - Config-center entries ([`super::config_center`]: rule documents) are files
//!   `{dir}/.config/{group}/{key}` (the key URL-encoded), written atomically, at most
//!   [`MAX_CONFIG_BYTES`] each; they stay until removed.
//! - `services` lists the interface directories that hold at least one live registration
//!   (any category); an interface whose files all expired or were unregistered is not listed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::cache::write_bytes_atomically;
use super::config_center::{check_content, ConfigKey, MAX_CONFIG_BYTES};
use super::{listener_id, Category, NotifyListener, Registry, RegistryFactory};
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::url::{encode_component, Url};

/// Most files read per category directory, and most interface directories listed.
pub const MAX_ENTRIES: usize = 10_000;
/// Largest registration file read.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Default lease of a registration, in milliseconds.
pub const DEFAULT_LEASE_MS: u64 = 3000;
/// Default poll period of subscriptions, in milliseconds.
pub const DEFAULT_POLL_MS: u64 = 300;

/// The directory used when the URL gives none (see the module docs).
pub fn default_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("rpc-registry")
}

/// Creates local registries, one per registry URL while it is in use.
#[derive(Debug, Default)]
pub struct LocalRegistryFactory;

crate::register!(dyn RegistryFactory, "local", || Arc::new(
    LocalRegistryFactory
));

fn instances() -> &'static Mutex<HashMap<String, Weak<LocalRegistry>>> {
    static INSTANCES: OnceLock<Mutex<HashMap<String, Weak<LocalRegistry>>>> = OnceLock::new();
    INSTANCES.get_or_init(Default::default)
}

#[async_trait::async_trait]
impl RegistryFactory for LocalRegistryFactory {
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>> {
        let key = url.to_string();
        let mut map = instances()
            .lock()
            .map_err(|_| RpcError::internal("local registry table poisoned"))?;
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(reg) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(reg);
        }
        let reg = Arc::new(LocalRegistry::start(url)?);
        map.insert(key, Arc::downgrade(&reg));
        Ok(reg)
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    url: String,
    lease_ms: u64,
}

struct Subscription {
    /// Its place in the order subscriptions were made ([`Inner::next_sub`]).
    seq: u64,
    interface: String,
    categories: Vec<Category>,
    listener: Arc<dyn NotifyListener>,
    /// The last set notified per category; `None` until the first notification.
    last: HashMap<Category, Option<Vec<String>>>,
}

struct Inner {
    dir: PathBuf,
    lease: Duration,
    /// File path → file content, for every URL registered by this process.
    registered: Mutex<BTreeMap<PathBuf, Vec<u8>>>,
    subs: Mutex<Vec<Subscription>>,
    /// The `seq` of the next subscription; read under the `subs` lock, so a poll knows which
    /// subscriptions its scan was made for.
    next_sub: std::sync::atomic::AtomicU64,
    /// Files already warned about, so a bad file is reported once.
    warned: Mutex<HashSet<PathBuf>>,
    /// Held for a whole poll, so two polls never interleave and notify an older set last.
    polling: Mutex<()>,
}

/// A registry over a shared directory (see the module docs).
pub struct LocalRegistry {
    url: Url,
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl LocalRegistry {
    /// Starts a registry on the directory of `url`, with its refresh and poll tasks (needs a
    /// tokio runtime).
    pub fn start(url: &Url) -> Result<LocalRegistry> {
        let dir = if url.path().is_empty() {
            default_dir()
        } else {
            PathBuf::from(format!("/{}", url.path().trim_start_matches('/')))
        };
        let lease = Duration::from_millis(url.param_as(keys::LEASE, DEFAULT_LEASE_MS)?.max(30));
        let poll = Duration::from_millis(url.param_as(keys::POLL, DEFAULT_POLL_MS)?.max(10));
        let inner = Arc::new(Inner {
            dir,
            lease,
            registered: Mutex::new(BTreeMap::new()),
            subs: Mutex::new(Vec::new()),
            next_sub: std::sync::atomic::AtomicU64::new(0),
            warned: Mutex::new(HashSet::new()),
            polling: Mutex::new(()),
        });
        let refresher = {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(lease / 3);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let _ = tokio::task::spawn_blocking(move || inner.refresh()).await;
                }
            })
        };
        let poller = {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(poll);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let _ = tokio::task::spawn_blocking(move || inner.poll()).await;
                }
            })
        };
        Ok(LocalRegistry {
            url: url.clone(),
            inner,
            tasks: vec![refresher, poller],
        })
    }

    /// The directory this registry works in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Inner {
    fn config_file(&self, key: &ConfigKey) -> PathBuf {
        self.dir
            .join(".config")
            .join(encode_component(key.group()))
            .join(key.file_name())
    }

    fn category_dir(&self, interface: &str, category: Category) -> PathBuf {
        self.dir
            .join(encode_component(interface))
            .join(category.as_str())
    }

    fn file_of(&self, url: &Url) -> PathBuf {
        let encoded = url.encoded();
        let name = if encoded.len() <= 200 {
            encoded
        } else {
            format!("h{:016x}", fnv1a(&encoded))
        };
        self.category_dir(url.interface(), Category::of(url))
            .join(name)
    }

    /// Rewrites every registration of this process. Holds the lock while writing, so that
    /// an `unregister` running meanwhile cannot have its file written back after deleting it.
    fn refresh(&self) {
        let Ok(files) = self.registered.lock() else {
            return;
        };
        for (path, content) in files.iter() {
            if let Err(e) = write_bytes_atomically(path, content) {
                tracing::warn!(file = %path.display(), error = %e, "cannot refresh local registration");
            }
        }
    }

    fn warn_once(&self, path: &Path, what: &str) {
        if let Ok(mut w) = self.warned.lock() {
            if w.insert(path.to_path_buf()) {
                tracing::warn!(file = %path.display(), "local registry: skipped {what}");
            }
        }
    }

    /// The live URLs of one category, sorted by text.
    fn scan(&self, interface: &str, category: Category) -> std::io::Result<Vec<String>> {
        self.scan_up_to(interface, category, MAX_ENTRIES)
    }

    /// Whether `interface` has a live registration in any category (a category that cannot
    /// be read counts as having one: it is not known to have none).
    fn has_live(&self, interface: &str) -> bool {
        Category::ALL.into_iter().any(|c| {
            self.scan_up_to(interface, c, 1)
                .map_or(true, |l| !l.is_empty())
        })
    }

    /// The interfaces with a live registration in any category, sorted: one directory per
    /// interface under the registry directory, at most [`MAX_ENTRIES`] of them looked at.
    fn services(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(RpcError::internal(format!(
                    "cannot list the local registry directory {}: {e}",
                    self.dir.display()
                )))
            }
        };
        let mut out = Vec::new();
        for (i, entry) in entries.flatten().enumerate() {
            if i >= MAX_ENTRIES {
                self.warn_once(
                    &self.dir,
                    &format!("interface directories beyond the first {MAX_ENTRIES}"),
                );
                break;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some(interface) = super::decode_interface_segment(&name) else {
                self.warn_once(&entry.path(), "a directory that is not an interface name");
                continue;
            };
            if self.has_live(&interface) {
                out.push(interface);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The live URLs of one category, sorted by text; stops after `limit` of them. A
    /// directory that does not exist holds none; one that cannot be read, or a file in it
    /// that cannot, is an error, never a shorter list (which would tell subscribers that
    /// providers went away).
    fn scan_up_to(
        &self,
        interface: &str,
        category: Category,
        limit: usize,
    ) -> std::io::Result<Vec<String>> {
        let dir = self.category_dir(interface, category);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let now = SystemTime::now();
        let mut out = Vec::new();
        for (i, entry) in entries.enumerate() {
            let entry = entry?;
            if i >= MAX_ENTRIES {
                self.warn_once(&dir, &format!("files beyond the first {MAX_ENTRIES}"));
                break;
            }
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue; // a temporary file being written
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Removed since it was listed: gone, as it would be from the next listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !meta.is_file() {
                continue;
            }
            if meta.len() > MAX_FILE_BYTES {
                self.warn_once(&path, "an oversized registration file");
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Ok(e) = serde_json::from_slice::<Entry>(&bytes) else {
                self.warn_once(&path, "a malformed registration file");
                continue;
            };
            // Lease 0: a persistent registration (`dynamic=false`, such as a rule).
            let lease = Duration::from_millis(e.lease_ms.clamp(30, 3_600_000));
            if e.lease_ms != 0 && age > lease {
                if age > lease * 10 {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            match Url::parse(&e.url) {
                Ok(u) if u.interface() == interface => out.push(u.to_string()),
                _ => self.warn_once(&path, "a registration file with a bad URL"),
            }
            if out.len() >= limit {
                break;
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Scans every subscribed category and notifies those whose set changed.
    fn poll(&self) {
        let Ok(_polling) = self.polling.lock() else {
            return;
        };
        if let Some(scanned) = self.scan_subscribed() {
            self.notify_changed(scanned);
        }
    }

    /// Adds a subscription; the next poll notifies it.
    fn add_subscription(&self, url: &Url, listener: Arc<dyn NotifyListener>) {
        if let Ok(mut subs) = self.subs.lock() {
            subs.push(Subscription {
                seq: self
                    .next_sub
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                interface: url.interface().to_string(),
                categories: Category::subscribed(url),
                listener,
                last: HashMap::new(),
            });
        }
    }

    /// The lists of every subscribed category as the directory holds them now.
    fn scan_subscribed(&self) -> Option<Scanned> {
        let (wanted, before): (Vec<(String, Category)>, u64) = match self.subs.lock() {
            Ok(subs) => (
                subs.iter()
                    .flat_map(|s| s.categories.iter().map(|c| (s.interface.clone(), *c)))
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect(),
                self.next_sub.load(std::sync::atomic::Ordering::Relaxed),
            ),
            Err(_) => return None,
        };
        // A category that cannot be read now is left out: its subscribers keep the list
        // they have until a poll reads it.
        let lists = wanted
            .into_iter()
            .filter_map(|(i, c)| match self.scan(&i, c) {
                Ok(list) => Some(((i, c), list)),
                Err(e) => {
                    let dir = self.category_dir(&i, c);
                    self.warn_once(&dir, &format!("a directory that cannot be read ({e})"));
                    None
                }
            })
            .collect();
        Some(Scanned { lists, before })
    }

    /// Notifies the subscriptions `scanned` was made for of each list that changed. One made
    /// after the scan began is left to the next poll, even when the scan holds its category
    /// (another subscription of the same interface): the directory may have changed since,
    /// and its first list must not be older than its subscription (an operator's tool that
    /// removes a rule and then subscribes would read the rule back).
    fn notify_changed(&self, scanned: Scanned) {
        let current = scanned.lists;
        let mut to_notify = Vec::new();
        if let Ok(mut subs) = self.subs.lock() {
            for s in subs.iter_mut().filter(|s| s.seq < scanned.before) {
                for c in &s.categories {
                    let Some(now) = current.get(&(s.interface.clone(), *c)) else {
                        continue;
                    };
                    let last = s.last.entry(*c).or_insert(None);
                    if last.as_ref() != Some(now) {
                        *last = Some(now.clone());
                        to_notify.push((s.listener.clone(), *c, now.clone()));
                    }
                }
            }
        }
        for (l, c, texts) in to_notify {
            l.notify(c, texts.iter().filter_map(|t| Url::parse(t).ok()).collect());
        }
    }
}

/// One poll's scan: each subscribed (interface, category)'s list, and the `seq` of the first
/// subscription made after the scan began.
struct Scanned {
    lists: HashMap<(String, Category), Vec<String>>,
    before: u64,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RpcError::internal(format!("local registry task failed: {e}")))
}

#[async_trait::async_trait]
impl Registry for LocalRegistry {
    fn url(&self) -> &Url {
        &self.url
    }

    fn is_available(&self) -> bool {
        true
    }

    async fn register(&self, url: &Url) -> Result<()> {
        let inner = self.inner.clone();
        let path = inner.file_of(url);
        let persistent = url.param(keys::DYNAMIC) == Some("false");
        let entry = Entry {
            url: url.to_string(),
            lease_ms: if persistent {
                0
            } else {
                u64::try_from(inner.lease.as_millis()).unwrap_or(u64::MAX)
            },
        };
        let content = serde_json::to_vec(&entry)
            .map_err(|e| RpcError::internal(format!("cannot encode registration: {e}")))?;
        blocking(move || {
            // Under the lock, like `refresh` and `unregister`, so the three never interleave.
            let mut registered = inner.registered.lock().unwrap_or_else(|p| p.into_inner());
            write_bytes_atomically(&path, &content)
                .map_err(|e| RpcError::internal(format!("cannot write {}: {e}", path.display())))?;
            // A persistent file needs no lease refresh: it stays until unregistered.
            if !persistent {
                registered.insert(path, content);
            }
            Ok(())
        })
        .await?
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let inner = self.inner.clone();
        let path = inner.file_of(url);
        blocking(move || {
            let mut registered = inner.registered.lock().unwrap_or_else(|p| p.into_inner());
            registered.remove(&path);
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(RpcError::internal(format!(
                    "cannot delete {}: {e}",
                    path.display()
                ))),
            }
        })
        .await?
    }

    async fn subscribe(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Result<()> {
        self.inner.add_subscription(url, listener);
        let inner = self.inner.clone();
        blocking(move || inner.poll()).await
    }

    async fn unsubscribe(&self, url: &Url, listener: &Arc<dyn NotifyListener>) -> Result<()> {
        let id = listener_id(listener);
        if let Ok(mut subs) = self.inner.subs.lock() {
            subs.retain(|s| !(s.interface == url.interface() && listener_id(&s.listener) == id));
        }
        Ok(())
    }

    async fn lookup(&self, url: &Url) -> Result<Vec<Url>> {
        let inner = self.inner.clone();
        let interface = url.interface().to_string();
        let texts = blocking(move || inner.scan(&interface, Category::Providers))
            .await?
            .map_err(|e| {
                RpcError::network(format!("local registry: cannot read the providers: {e}"))
            })?;
        Ok(texts.iter().filter_map(|t| Url::parse(t).ok()).collect())
    }

    /// The interfaces with at least one live (unexpired) registration in any category.
    async fn services(&self) -> Result<Vec<String>> {
        let inner = self.inner.clone();
        blocking(move || inner.services()).await?
    }

    async fn get_config(&self, key: &ConfigKey) -> Result<Option<String>> {
        let path = self.inner.config_file(key);
        blocking(move || {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(RpcError::internal(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )))
                }
            };
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(file, MAX_CONFIG_BYTES as u64 + 1),
                &mut text,
            )
            .map_err(|e| RpcError::codec(format!("cannot read {}: {e}", path.display())))?;
            if text.len() > MAX_CONFIG_BYTES {
                return Err(RpcError::codec(format!(
                    "{} is larger than {MAX_CONFIG_BYTES} bytes",
                    path.display()
                )));
            }
            Ok(Some(text))
        })
        .await?
    }

    async fn publish_config(&self, key: &ConfigKey, content: Option<&str>) -> Result<()> {
        let path = self.inner.config_file(key);
        if let Some(c) = content {
            check_content(key, c)?;
        }
        let content = content.map(str::to_string);
        blocking(move || {
            let result = match content {
                Some(c) => write_bytes_atomically(&path, c.as_bytes()),
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            };
            result.map_err(|e| RpcError::internal(format!("cannot write {}: {e}", path.display())))
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::Recorder;

    fn temp_registry(extra: &str) -> Url {
        let dir = std::env::temp_dir().join(format!(
            "rpc-local-unit-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        Url::parse(&format!(
            "local://{}?poll=20&lease=300{extra}",
            dir.display()
        ))
        .expect("url")
    }

    /// A poll that scanned before a rule was removed must not hand its old list to a
    /// subscription made after: what made `rpcctl` read back a rule it had just removed.
    #[tokio::test]
    async fn a_subscription_made_during_a_poll_gets_no_list_older_than_itself() {
        let url = temp_registry("&poll=600000");
        let reg = LocalRegistry::start(&url).expect("start");
        let rule = Url::parse(
            "override://10.0.0.1:20880/org.Foo?category=configurators&weight=0&dynamic=false",
        )
        .expect("rule");
        reg.register(&rule).await.expect("write the rule");
        let sub = Url::parse("consumer://10.0.0.9/org.Foo?category=configurators").expect("sub");
        let early = Recorder::new();
        reg.subscribe(&sub, early.clone()).await.expect("subscribe");
        assert_eq!(
            early.last(Category::Configurators),
            Some(vec![rule.clone()])
        );

        // A poll scans (the rule is there), then the rule is removed and a new subscription
        // is made before that poll notifies.
        let scanned = reg.inner.scan_subscribed().expect("scan");
        reg.unregister(&rule).await.expect("remove the rule");
        let late = Recorder::new();
        reg.inner.add_subscription(&sub, late.clone());
        reg.inner.notify_changed(scanned);
        assert_eq!(
            late.count(),
            0,
            "the late subscription got the scan made before it"
        );
        // Its own poll gives it the list as it is now; the early one sees the removal too.
        reg.inner.poll();
        assert_eq!(late.last(Category::Configurators), Some(vec![]));
        assert_eq!(early.last(Category::Configurators), Some(vec![]));
        let _ = std::fs::remove_dir_all(format!("/{}", url.path()));
    }

    /// A directory that cannot be read is not an empty one: subscribers keep their list (a
    /// consumer would otherwise drop every provider), and a lookup fails saying why.
    #[tokio::test]
    async fn a_category_that_cannot_be_read_is_not_reported_empty() {
        let url = temp_registry("&poll=600000");
        let reg = LocalRegistry::start(&url).expect("start");
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Io").expect("url");
        reg.register(&p).await.expect("register");
        let sub = Url::parse("consumer://10.0.0.9/org.Io").expect("sub");
        let seen = Recorder::new();
        reg.subscribe(&sub, seen.clone()).await.expect("subscribe");
        assert_eq!(seen.last(Category::Providers), Some(vec![p.clone()]));
        // The background poll's first tick, at start, is over before the directory goes
        // away for a moment below (and the next is ten minutes away).
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(reg.inner.polling.lock());
        let count = seen.count();

        // The providers directory replaced by a file: reading it fails (not "not found").
        let dir = PathBuf::from(format!("/{}", url.path())).join("org.Io");
        std::fs::rename(dir.join("providers"), dir.join("away")).expect("move");
        std::fs::write(dir.join("providers"), b"").expect("a file in its place");
        reg.inner.poll();
        assert_eq!(seen.count(), count, "no list notified");
        assert_eq!(seen.last(Category::Providers), Some(vec![p.clone()]));
        let e = reg.lookup(&sub).await.expect_err("unreadable");
        assert!(e.message().contains("cannot read the providers"), "{e}");

        // Readable again: the same list, nothing to notify; a real change is notified.
        std::fs::remove_file(dir.join("providers")).expect("remove the file");
        std::fs::rename(dir.join("away"), dir.join("providers")).expect("move back");
        reg.inner.poll();
        assert_eq!(seen.count(), count);
        reg.unregister(&p).await.expect("unregister");
        reg.inner.poll();
        assert_eq!(seen.last(Category::Providers), Some(vec![]));
        let _ = std::fs::remove_dir_all(format!("/{}", url.path()));
    }

    #[test]
    fn directory_comes_from_the_path_or_the_default() {
        assert!(default_dir().ends_with("rpc-registry"));
        let u = Url::parse("local:///var/tmp/x").expect("url");
        assert_eq!(u.path(), "var/tmp/x");
    }

    #[tokio::test]
    async fn malformed_files_are_skipped_and_live_ones_seen() {
        let url = temp_registry("");
        let reg = LocalRegistryFactory.connect(&url).await.expect("connect");
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        reg.register(&p).await.expect("register");
        let dir = PathBuf::from(format!("/{}", url.path()))
            .join("org.Foo")
            .join("providers");
        std::fs::write(dir.join("garbage"), b"\xff not json").expect("write");
        let big = std::fs::File::create(dir.join("big")).expect("create");
        big.set_len(MAX_FILE_BYTES + 1).expect("grow");
        assert_eq!(reg.lookup(&p).await.expect("lookup"), vec![p.clone()]);
        let _ = std::fs::remove_dir_all(format!("/{}", url.path()));
    }

    #[tokio::test]
    async fn a_persistent_rule_outlives_the_process_that_wrote_it() {
        let url = temp_registry("");
        let rule = Url::parse(
            "override://0.0.0.0/org.Rule?category=configurators&dynamic=false&timeout=5",
        )
        .expect("url");
        let writer = LocalRegistry::start(&url).expect("start");
        writer.register(&rule).await.expect("register");
        let dir = writer.dir().to_path_buf();
        drop(writer);
        // Well past the 300 ms lease: still listed.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let reader = LocalRegistry::start(&url).expect("start");
        let sub = Url::parse("consumer://h/org.Rule?category=configurators").expect("url");
        let rec = Recorder::new();
        reader
            .subscribe(&sub, rec.clone())
            .await
            .expect("subscribe");
        let got = rec
            .wait_for(Category::Configurators, Duration::from_secs(2), |l| {
                !l.is_empty()
            })
            .await;
        assert_eq!(got, Some(vec![rule.clone()]));
        reader.unregister(&rule).await.expect("unregister");
        let gone = rec
            .wait_for(Category::Configurators, Duration::from_secs(2), |l| {
                l.is_empty()
            })
            .await;
        assert!(gone.is_some(), "unregistering removes it");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A lease refresh running while a URL is unregistered never writes its file back: once
    /// `unregister` returns, the registration is gone for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refresh_never_brings_back_an_unregistered_url() {
        let url = temp_registry("");
        let reg = LocalRegistry::start(&url).expect("start");
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Back").expect("url");
        let file = reg.inner.file_of(&p);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refresher = {
            let (inner, stop) = (reg.inner.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    inner.refresh();
                }
            })
        };
        for _ in 0..200 {
            reg.register(&p).await.expect("register");
            reg.unregister(&p).await.expect("unregister");
            assert!(!file.exists(), "unregistered file written back");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        refresher.join().expect("refresher");
        assert!(!file.exists());
        let _ = std::fs::remove_dir_all(reg.dir());
    }

    #[tokio::test]
    async fn services_lists_interfaces_with_a_live_registration() {
        let url = temp_registry("");
        let root = PathBuf::from(format!("/{}", url.path()));
        let reg = LocalRegistryFactory.connect(&url).await.expect("connect");
        assert_eq!(
            reg.services().await.expect("no directory yet"),
            Vec::<String>::new()
        );

        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        let c = Url::parse("consumer://10.0.0.2/org.Outer$Inner?side=consumer").expect("url");
        let gone = Url::parse("dubbo://10.0.0.3:20880/org.Gone").expect("url");
        for u in [&p, &c, &gone] {
            reg.register(u).await.expect("register");
        }
        reg.unregister(&gone).await.expect("unregister");

        // An interface whose only registration expired: written by a process that died.
        let stale = Url::parse("dubbo://10.0.0.4:20880/org.Stale").expect("url");
        let stale_dir = root.join("org.Stale").join("providers");
        std::fs::create_dir_all(&stale_dir).expect("mkdir");
        let stale_file = stale_dir.join(stale.encoded());
        let entry = serde_json::to_vec(&Entry {
            url: stale.to_string(),
            lease_ms: 300,
        })
        .expect("json");
        std::fs::write(&stale_file, entry).expect("write");
        std::fs::File::options()
            .write(true)
            .open(&stale_file)
            .expect("open")
            .set_modified(SystemTime::now() - Duration::from_secs(2))
            .expect("age the file");
        // Noise that is not an interface directory.
        std::fs::write(root.join("stray-file"), b"x").expect("write");
        std::fs::create_dir_all(root.join(".tmp-dir").join("providers")).expect("mkdir");

        assert_eq!(
            reg.services().await.expect("services"),
            vec!["org.Foo", "org.Outer$Inner"]
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[tokio::test]
    async fn long_urls_get_a_hashed_file_name() {
        let url = temp_registry("");
        let reg = LocalRegistryFactory.connect(&url).await.expect("connect");
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo")
            .expect("url")
            .with_param(keys::METHODS, "m".repeat(400));
        reg.register(&p).await.expect("register");
        let rec = Recorder::new();
        reg.subscribe(&p, rec.clone()).await.expect("subscribe");
        assert_eq!(rec.last(Category::Providers), Some(vec![p.clone()]));
        reg.unregister(&p).await.expect("unregister");
        let got = rec
            .wait_for(Category::Providers, Duration::from_secs(2), |l| {
                l.is_empty()
            })
            .await;
        assert_eq!(got, Some(vec![]));
        let _ = std::fs::remove_dir_all(format!("/{}", url.path()));
    }
}
