//! The consumer-side cache of provider lists: in memory and on disk.
//!
//! [`CachedRegistry`] wraps any adapter. Every list an adapter notifies is remembered per
//! interface and category, and written to one JSON file per registry (atomically: a temporary
//! file, then a rename). At start-up the file is loaded; a subscription made while the
//! registry cannot be reached gets the cached lists at once, so calls go on when the registry
//! is down and a consumer restarted during an outage still finds its providers. When the
//! registry comes back the adapter replays the subscription and its live lists replace the
//! cached ones.
//!
//! The last content of every config-center entry read through it ([`super::config_center`]:
//! rule documents) is kept the same way, in the same file, so rules survive a restart during
//! an outage as the provider lists do.
//!
//! File location: the `file` or `cache.file` key of the registry URL, else
//! `registry-{application}-{registry address}.json` (made file-name safe; the application as
//! [`set_application`](crate::context::set_application) named it, so that two applications on
//! one host, which subscribe to different services, keep a file each, as Dubbo names its
//! cache files) in the directory
//! `RPC_CACHE_DIR`, else in `$HOME/.rpc/cache` (the system temp dir when `HOME` is unset). The file is bounded ([`MAX_FILE_BYTES`],
//! [`MAX_URLS`]); a file that is too big or malformed is ignored with a warning, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::config_center::{ConfigKey, MAX_CONFIG_BYTES};
use super::{listener_id, Category, NotifyListener, Registry};
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::url::Url;

/// Largest cache file read back.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Most URLs read back from a cache file, all lists together.
pub const MAX_URLS: usize = 100_000;

const FORMAT_VERSION: u32 = 1;

/// interface → category name → URL texts.
type Lists = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// `group/key` → content.
type Configs = BTreeMap<String, String>;

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    registry: String,
    services: Lists,
    /// Absent in files written before config entries were cached.
    #[serde(default)]
    configs: Configs,
}

#[derive(Default, Clone)]
struct State {
    lists: Lists,
    configs: Configs,
    /// Counts the changes, so that of two writes of the file the newer state stays.
    version: u64,
}

/// The last known lists (and config entries) of one registry, mirrored to a file.
pub struct RegistryCache {
    registry: String,
    path: Option<PathBuf>,
    state: Mutex<State>,
    /// The version of the state last written to the file; held while writing it.
    written: Mutex<u64>,
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The environment variable naming the directory of the cache files (see the module docs).
pub const CACHE_DIR_VAR: &str = "RPC_CACHE_DIR";

/// The default cache file of `registry` for `application` (see the module docs).
pub fn default_path(registry: &Url, application: Option<&str>) -> PathBuf {
    let base = std::env::var_os(CACHE_DIR_VAR)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".rpc").join("cache"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("rpc-cache"));
    let raw = format!(
        "{}{}-{}-{}",
        application.map_or(String::new(), |a| format!("{a}-")),
        registry.protocol(),
        registry.address(),
        registry.path()
    );
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(150);
    base.join(format!(
        "registry-{}.json",
        name.trim_end_matches(['-', '_'])
    ))
}

impl RegistryCache {
    /// The cache of `registry`, loaded from its file (see the module docs); a missing,
    /// oversized or malformed file gives an empty cache and a warning.
    pub fn open(registry: &Url) -> RegistryCache {
        let path = registry
            .param(keys::CACHE_FILE)
            .or_else(|| registry.param(keys::FILE))
            .map(PathBuf::from)
            .unwrap_or_else(|| default_path(registry, crate::context::application().as_deref()));
        let state = match load(&path) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "registry cache ignored");
                State::default()
            }
        };
        RegistryCache {
            registry: registry.to_string(),
            path: Some(path),
            state: Mutex::new(state),
            written: Mutex::new(0),
        }
    }

    /// A cache kept in memory only.
    pub fn in_memory(registry: &Url) -> RegistryCache {
        RegistryCache {
            registry: registry.to_string(),
            path: None,
            state: Mutex::new(State::default()),
            written: Mutex::new(0),
        }
    }

    /// The file this cache is written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The cached list of `category` of `interface`, if one was ever stored.
    pub fn get(&self, interface: &str, category: Category) -> Option<Vec<Url>> {
        let state = self.state.lock().ok()?;
        let texts = state.lists.get(interface)?.get(category.as_str())?;
        Some(texts.iter().filter_map(|t| Url::parse(t).ok()).collect())
    }

    /// The interfaces with at least one cached URL in any category, sorted.
    pub fn interfaces(&self) -> Vec<String> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        state
            .lists
            .iter()
            .filter(|(_, cats)| cats.values().any(|urls| !urls.is_empty()))
            .map(|(interface, _)| interface.clone())
            .collect()
    }

    /// Stores the list of `category` of `interface` and rewrites the file when it changed.
    pub fn put(&self, interface: &str, category: Category, urls: &[Url]) {
        let mut texts: Vec<String> = urls.iter().map(Url::to_string).collect();
        texts.sort();
        let snapshot = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let slot = state
                .lists
                .entry(interface.to_string())
                .or_default()
                .entry(category.as_str().to_string())
                .or_default();
            if *slot == texts {
                return;
            }
            *slot = texts;
            state.version += 1;
            state.clone()
        };
        self.write(snapshot);
    }

    /// The cached content of the config entry `key`, if one was stored.
    pub fn get_config(&self, key: &ConfigKey) -> Option<String> {
        self.state
            .lock()
            .ok()?
            .configs
            .get(&key.to_string())
            .cloned()
    }

    /// Stores (`Some`) or forgets (`None`) the content of the config entry `key`, and
    /// rewrites the file when that changed anything.
    pub fn put_config(&self, key: &ConfigKey, content: Option<&str>) {
        let snapshot = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let name = key.to_string();
            if state.configs.get(&name).map(String::as_str) == content {
                return;
            }
            match content {
                Some(c) => state.configs.insert(name, c.to_string()),
                None => state.configs.remove(&name),
            };
            state.version += 1;
            state.clone()
        };
        self.write(snapshot);
    }

    /// Writes `snapshot` to the file, unless a newer state was written meanwhile: writers
    /// take their snapshots under the state's lock but write after it, in any order.
    fn write(&self, snapshot: State) {
        let Ok(mut written) = self.written.lock() else {
            return;
        };
        if snapshot.version <= *written {
            return;
        }
        if let Some(path) = &self.path {
            let file = CacheFile {
                version: FORMAT_VERSION,
                registry: self.registry.clone(),
                services: snapshot.lists,
                configs: snapshot.configs,
            };
            if let Err(e) = write_atomically(path, &file) {
                tracing::warn!(file = %path.display(), error = %e, "registry cache not written");
            }
        }
        *written = snapshot.version;
    }
}

fn load(path: &Path) -> Result<State> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(RpcError::internal(format!("cannot read: {e}"))),
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(RpcError::codec(format!(
            "{} bytes, more than the limit of {MAX_FILE_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| RpcError::internal(format!("cannot read: {e}")))?;
    let file: CacheFile = serde_json::from_slice(&bytes)
        .map_err(|e| RpcError::codec(format!("malformed JSON: {e}")))?;
    if file.version != FORMAT_VERSION {
        return Err(RpcError::codec(format!(
            "format version {} (expected {FORMAT_VERSION})",
            file.version
        )));
    }
    let mut total = 0usize;
    let mut out = Lists::new();
    for (interface, cats) in file.services {
        for (cat, urls) in cats {
            if Category::parse(&cat).is_none() {
                return Err(RpcError::codec(format!("unknown category '{cat}'")));
            }
            total += urls.len();
            if total > MAX_URLS {
                return Err(RpcError::codec(format!(
                    "more than {MAX_URLS} URLs in the cache"
                )));
            }
            for u in &urls {
                Url::parse(u).map_err(|e| RpcError::codec(format!("bad URL: {e}")))?;
            }
            out.entry(interface.clone()).or_default().insert(cat, urls);
        }
    }
    for (name, content) in &file.configs {
        if content.len() > MAX_CONFIG_BYTES {
            return Err(RpcError::codec(format!(
                "config entry {name} is larger than {MAX_CONFIG_BYTES} bytes"
            )));
        }
    }
    Ok(State {
        lists: out,
        configs: file.configs,
        version: 0,
    })
}

/// Writes `value` as JSON to `path` through a temporary file and a rename, so a reader never
/// sees half a file.
pub(crate) fn write_atomically<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_bytes_atomically(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub(crate) fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Forwards notifications, remembering them in the cache; delivers cached lists only until
/// the first live one.
struct CachingListener {
    cache: Arc<RegistryCache>,
    interface: String,
    inner: Arc<dyn NotifyListener>,
    /// True once the adapter delivered a live list; guarded so a cached list never follows.
    live: Mutex<bool>,
}

impl CachingListener {
    fn deliver_cached(&self, categories: &[Category]) -> bool {
        let Ok(live) = self.live.lock() else {
            return false;
        };
        if *live {
            return true;
        }
        let mut any = false;
        for c in categories {
            if let Some(list) = self.cache.get(&self.interface, *c) {
                self.inner.notify(*c, list);
                any = true;
            }
        }
        any
    }
}

impl NotifyListener for CachingListener {
    fn notify(&self, category: Category, urls: Vec<Url>) {
        self.cache.put(&self.interface, category, &urls);
        let guard = self.live.lock();
        if let Ok(mut live) = guard {
            *live = true;
            self.inner.notify(category, urls);
        } else {
            self.inner.notify(category, urls);
        }
    }
}

/// A registry wrapped with the provider-list cache (see the module docs).
pub struct CachedRegistry {
    inner: Arc<dyn Registry>,
    cache: Arc<RegistryCache>,
    /// (interface, user listener id) → the wrapper handed to the adapter.
    wrappers: Mutex<HashMap<(String, usize), Arc<dyn NotifyListener>>>,
}

impl CachedRegistry {
    /// Wraps `inner` with `cache`.
    pub fn new(inner: Arc<dyn Registry>, cache: RegistryCache) -> CachedRegistry {
        CachedRegistry {
            inner,
            cache: Arc::new(cache),
            wrappers: Mutex::new(HashMap::new()),
        }
    }

    /// The cache in use.
    pub fn cache(&self) -> &RegistryCache {
        &self.cache
    }

    /// The wrapped adapter.
    pub fn inner(&self) -> &Arc<dyn Registry> {
        &self.inner
    }
}

#[async_trait::async_trait]
impl Registry for CachedRegistry {
    fn url(&self) -> &Url {
        self.inner.url()
    }

    fn is_available(&self) -> bool {
        self.inner.is_available()
    }

    async fn register(&self, url: &Url) -> Result<()> {
        self.inner.register(url).await
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        self.inner.unregister(url).await
    }

    /// Subscribes through the adapter; when the registry cannot be reached, the cached
    /// lists are delivered at once instead (an error is returned only if nothing is cached).
    async fn subscribe(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Result<()> {
        let interface = url.interface().to_string();
        let wrapper = Arc::new(CachingListener {
            cache: self.cache.clone(),
            interface: interface.clone(),
            inner: listener.clone(),
            live: Mutex::new(false),
        });
        if let Ok(mut w) = self.wrappers.lock() {
            w.insert((interface, listener_id(&listener)), wrapper.clone());
        }
        if !self.inner.is_available() && wrapper.deliver_cached(&Category::subscribed(url)) {
            // The registry cannot be reached now but the cache knows the providers: serve
            // them at once, and let the adapter subscribe in the background (it replays the
            // subscription when it connects, and live lists then replace the cached ones).
            tracing::warn!(registry = %self.inner.url(), interface = url.interface(),
                "registry not connected; serving the cached provider list until it is");
            let (inner, url, wrapper) = (self.inner.clone(), url.clone(), wrapper.clone());
            tokio::spawn(async move {
                if let Err(e) = inner.subscribe(&url, wrapper).await {
                    tracing::warn!(registry = %inner.url(), error = %e,
                        "subscription deferred until the registry is reachable");
                }
            });
            return Ok(());
        }
        let result = self.inner.subscribe(url, wrapper.clone()).await;
        if result.is_err() || !self.inner.is_available() {
            let delivered = wrapper.deliver_cached(&Category::subscribed(url));
            if let Err(e) = result {
                if delivered {
                    tracing::warn!(registry = %self.inner.url(), error = %e,
                        "registry unreachable; serving the cached provider list");
                    return Ok(());
                }
                return Err(e);
            }
        }
        result
    }

    async fn unsubscribe(&self, url: &Url, listener: &Arc<dyn NotifyListener>) -> Result<()> {
        let key = (url.interface().to_string(), listener_id(listener));
        let wrapper = self.wrappers.lock().ok().and_then(|mut w| w.remove(&key));
        match wrapper {
            Some(w) => self.inner.unsubscribe(url, &w).await,
            None => self.inner.unsubscribe(url, listener).await,
        }
    }

    /// The adapter's answer (remembered), or the cached content when the registry cannot be
    /// reached or fails to answer; with nothing cached, the adapter's error. An adapter
    /// without a config center (an error of kind `Config`) is never answered from the cache.
    async fn get_config(&self, key: &ConfigKey) -> Result<Option<String>> {
        if self.inner.is_available() {
            match self.inner.get_config(key).await {
                Ok(value) => {
                    self.cache.put_config(key, value.as_deref());
                    return Ok(value);
                }
                Err(e) if e.kind() == crate::ErrorKind::Config => return Err(e),
                Err(e) => {
                    return match self.cache.get_config(key) {
                        Some(cached) => Ok(Some(cached)),
                        None => Err(e),
                    };
                }
            }
        }
        match self.cache.get_config(key) {
            Some(cached) => Ok(Some(cached)),
            None => self.inner.get_config(key).await,
        }
    }

    /// The cached content of `key` while the registry cannot be reached; `None` while it
    /// can (a read then answers from the registry itself).
    fn cached_config(&self, key: &ConfigKey) -> Option<String> {
        if self.inner.is_available() {
            return None;
        }
        self.cache.get_config(key)
    }

    async fn wait_config_change(
        &self,
        key: &ConfigKey,
        seen: Option<&str>,
        within: std::time::Duration,
    ) {
        self.inner.wait_config_change(key, seen, within).await;
    }

    async fn publish_config(&self, key: &ConfigKey, content: Option<&str>) -> Result<()> {
        self.inner.publish_config(key, content).await?;
        self.cache.put_config(key, content);
        Ok(())
    }

    /// The adapter's answer, or the cached providers when the registry cannot be reached.
    async fn lookup(&self, url: &Url) -> Result<Vec<Url>> {
        if self.inner.is_available() {
            if let Ok(list) = self.inner.lookup(url).await {
                self.cache.put(url.interface(), Category::Providers, &list);
                return Ok(list);
            }
        }
        match self.cache.get(url.interface(), Category::Providers) {
            Some(list) => Ok(list),
            None => self.inner.lookup(url).await,
        }
    }

    /// The adapter's answer; when the registry cannot be reached or fails to answer, the
    /// interfaces last seen with URLs (from the cache), so an operator still sees what was
    /// last known. With nothing cached, the adapter's error.
    async fn services(&self) -> Result<Vec<String>> {
        let error = if self.inner.is_available() {
            match self.inner.services().await {
                Ok(list) => return Ok(list),
                Err(e) => Some(e),
            }
        } else {
            None
        };
        let cached = self.cache.interfaces();
        if !cached.is_empty() {
            let reason = error
                .as_ref()
                .map_or_else(|| "unavailable".to_string(), ToString::to_string);
            tracing::warn!(registry = %self.inner.url(), reason,
                "registry cannot list its services; answering from the cache");
            return Ok(cached);
        }
        match error {
            Some(e) => Err(e),
            None => self.inner.services().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::{Down, Recorder};

    fn temp_file(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "rpc-cache-test-{}-{}-{name}.json",
            std::process::id(),
            fastrand::u32(..)
        ))
    }

    #[test]
    fn put_writes_a_file_that_a_new_cache_loads() {
        let file = temp_file("roundtrip");
        let reg = Url::parse("zookeeper://127.0.0.1:1")
            .expect("url")
            .with_param(keys::FILE, file.display());
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        RegistryCache::open(&reg).put("org.Foo", Category::Providers, std::slice::from_ref(&p));
        let again = RegistryCache::open(&reg);
        assert_eq!(again.get("org.Foo", Category::Providers), Some(vec![p]));
        assert_eq!(again.get("org.Bar", Category::Providers), None);
        let _ = std::fs::remove_file(file);
    }

    /// Writers take their snapshots in order but may write them in any order: an older one
    /// written last does not replace the newer state in the file.
    #[test]
    fn an_older_snapshot_written_last_does_not_replace_a_newer_one() {
        let file = temp_file("order");
        let reg = Url::parse("zookeeper://127.0.0.1:1")
            .expect("url")
            .with_param(keys::FILE, file.display());
        let p1 = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        let p2 = Url::parse("dubbo://10.0.0.2:20880/org.Foo").expect("url");
        let cache = RegistryCache::open(&reg);
        cache.put("org.Foo", Category::Providers, std::slice::from_ref(&p1));
        let older = cache.state.lock().expect("state").clone();
        cache.put("org.Foo", Category::Providers, std::slice::from_ref(&p2));
        cache.write(older);
        assert_eq!(
            RegistryCache::open(&reg).get("org.Foo", Category::Providers),
            Some(vec![p2])
        );
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn malformed_or_oversized_files_are_ignored() {
        let file = temp_file("bad");
        let reg = Url::parse("etcd://127.0.0.1:1")
            .expect("url")
            .with_param(keys::CACHE_FILE, file.display());
        std::fs::write(&file, b"{not json").expect("write");
        assert_eq!(
            RegistryCache::open(&reg).get("a", Category::Providers),
            None
        );

        let bad_url =
            r#"{"version":1,"registry":"x","services":{"a":{"providers":["no scheme"]}}}"#;
        std::fs::write(&file, bad_url).expect("write");
        assert_eq!(
            RegistryCache::open(&reg).get("a", Category::Providers),
            None
        );

        let f = std::fs::File::create(&file).expect("create");
        f.set_len(MAX_FILE_BYTES + 1).expect("grow");
        assert_eq!(
            RegistryCache::open(&reg).get("a", Category::Providers),
            None
        );
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn default_path_is_a_safe_file_name_under_rpc_cache() {
        let zk = Url::parse("zookeeper://127.0.0.1:2181").expect("url");
        let name = |app| {
            default_path(&zk, app)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(name(None), "registry-zookeeper-127.0.0.1_2181.json");
        assert_eq!(
            name(Some("shop/eu")),
            "registry-shop_eu-zookeeper-127.0.0.1_2181.json"
        );
    }

    #[tokio::test]
    async fn services_come_from_the_cache_when_the_registry_is_down() {
        let reg = Url::parse("zookeeper://127.0.0.1:1").expect("url");
        let cache = RegistryCache::in_memory(&reg);
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        let r = Url::parse("route://0.0.0.0/org.Bar?category=routers").expect("url");
        cache.put("org.Foo", Category::Providers, std::slice::from_ref(&p));
        cache.put("org.Bar", Category::Routers, std::slice::from_ref(&r));
        cache.put("org.Bar", Category::Providers, &[]);
        cache.put("org.Empty", Category::Providers, &[]);
        assert_eq!(cache.interfaces(), vec!["org.Bar", "org.Foo"]);
        let cached = CachedRegistry::new(Arc::new(Down(reg.clone())), cache);
        assert_eq!(
            cached.services().await.expect("cache answers"),
            vec!["org.Bar", "org.Foo"]
        );

        let empty =
            CachedRegistry::new(Arc::new(Down(reg.clone())), RegistryCache::in_memory(&reg));
        let err = empty.services().await.expect_err("nothing cached");
        assert!(err.to_string().contains("cannot list"), "{err}");
    }

    #[tokio::test]
    async fn services_come_from_the_registry_when_it_answers() {
        let reg = Url::parse("memory://cache-services").expect("url");
        let inner = Arc::new(crate::registry::memory::MemoryRegistry::new(reg.clone()));
        let live = Url::parse("dubbo://10.0.0.2:20880/org.Live").expect("url");
        inner.register(&live).await.expect("register");
        let cache = RegistryCache::in_memory(&reg);
        let old = Url::parse("dubbo://10.0.0.1:20880/org.Old").expect("url");
        cache.put("org.Old", Category::Providers, std::slice::from_ref(&old));
        let cached = CachedRegistry::new(inner, cache);
        assert_eq!(cached.services().await.expect("live"), vec!["org.Live"]);
    }

    /// A registry that is reachable but cannot list its services (the trait's default).
    #[tokio::test]
    async fn services_fall_back_to_the_cache_when_the_registry_fails() {
        let reg = Url::parse("custom://127.0.0.1:1").expect("url");
        let cache = RegistryCache::in_memory(&reg);
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Known").expect("url");
        cache.put("org.Known", Category::Providers, std::slice::from_ref(&p));
        let cached = CachedRegistry::new(
            Arc::new(crate::registry::testing::Inert(reg.clone())),
            cache,
        );
        assert_eq!(cached.services().await.expect("cache"), vec!["org.Known"]);

        let bare = CachedRegistry::new(
            Arc::new(crate::registry::testing::Inert(reg.clone())),
            RegistryCache::in_memory(&reg),
        );
        let err = bare.services().await.expect_err("nothing cached");
        assert_eq!(err.kind(), crate::ErrorKind::Internal);
        assert!(err.to_string().contains("custom registry"), "{err}");
    }

    #[tokio::test]
    async fn a_down_registry_serves_the_cached_list_or_fails_without_one() {
        let reg = Url::parse("zookeeper://127.0.0.1:1").expect("url");
        let cache = RegistryCache::in_memory(&reg);
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        cache.put("org.Foo", Category::Providers, std::slice::from_ref(&p));
        let cached = CachedRegistry::new(Arc::new(Down(reg)), cache);

        let rec = Recorder::new();
        let sub = Url::parse("consumer://h/org.Foo").expect("url");
        cached
            .subscribe(&sub, rec.clone())
            .await
            .expect("cache answers");
        assert_eq!(rec.last(Category::Providers), Some(vec![p.clone()]));
        assert_eq!(cached.lookup(&sub).await.expect("lookup"), vec![p]);

        let other = Url::parse("consumer://h/org.Unknown").expect("url");
        let err = cached
            .subscribe(&other, Recorder::new())
            .await
            .expect_err("nothing cached");
        assert_eq!(err.kind(), crate::ErrorKind::Network);
    }

    /// A rule document read once is kept on disk: a registry down at the next start still
    /// answers with it; an entry never read is an error, not an empty document.
    #[tokio::test]
    async fn config_entries_survive_a_restart_in_the_cache_file() {
        let file = temp_file("configs");
        let reg = Url::parse("zookeeper://127.0.0.1:1")
            .expect("url")
            .with_param(keys::FILE, file.display());
        let key = ConfigKey::new("dubbo", "org.Foo::.configurators").expect("key");
        let up = RegistryCache::open(&reg);
        up.put("org.Foo", Category::Providers, &[]);
        up.put_config(&key, Some("key: org.Foo"));
        let cached = CachedRegistry::new(Arc::new(Down(reg.clone())), RegistryCache::open(&reg));
        assert_eq!(
            cached
                .get_config(&key)
                .await
                .expect("from the file")
                .as_deref(),
            Some("key: org.Foo")
        );
        let other = ConfigKey::new("dubbo", "org.Bar::.configurators").expect("key");
        assert_eq!(
            cached
                .get_config(&other)
                .await
                .expect_err("never read")
                .kind(),
            crate::ErrorKind::Network
        );
        cached.cache().put_config(&key, None);
        assert!(RegistryCache::open(&reg).get_config(&key).is_none());
        let _ = std::fs::remove_file(file);
    }
}
