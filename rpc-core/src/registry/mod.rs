//! Registries: where providers announce themselves and consumers find them.
//!
//! The registry URL's protocol picks the adapter through the SPI
//! (`extension::get::<dyn RegistryFactory>(url.protocol())`), see [`connect`]:
//!
//! | URL | adapter | for |
//! |---|---|---|
//! | `local://` or `local:///some/dir` | [`local`], a shared directory with liveness leases | development, one host (the default) |
//! | `memory://name` | [`memory`], in-process | tests |
//! | `zookeeper://127.0.0.1:2181` | crate `rpc-registry-zookeeper` | production |
//! | `etcd://127.0.0.1:2379` | crate `rpc-registry-etcd` | production |
//! | `nacos://127.0.0.1:8848` | crate `rpc-registry-nacos` | production |
//!
//! # Notification contract (every adapter)
//!
//! A [`NotifyListener`] always receives the COMPLETE current list of one [`Category`] of one
//! interface, never a delta. An empty list means the registry really holds no URL in that
//! category. A connection fault is never reported as an empty list: while the registry
//! cannot be reached an adapter stays silent (and [`Registry::is_available`] is false); once
//! it is back, the adapter replays its registrations and subscriptions by itself and notifies
//! the lists it then reads.
//!
//! Consumers should go through [`connect`], which wraps the adapter in a
//! [`CachedRegistry`]: the last lists are kept in memory and on disk, so a consumer started
//! while the registry is down still finds the providers it saw last time.
//!
//! # Layout
//!
//! Every adapter files a URL under `{interface}/{category}/{name}` (Dubbo's layout,
//! `/dubbo/{interface}/providers/...` for ZooKeeper and etcd, with the name Dubbo gives it,
//! [`Url::dubbo_encoded`]; the local registry's file names are [`Url::encoded`]). The category of a registered
//! URL is [`Category::of`]; the categories a subscription watches are
//! [`Category::subscribed`].
//!
//! # Writing an adapter for a registry server
//!
//! [`subscriptions::Subscriptions`] keeps an adapter's subscriptions and their watch tasks
//! (replayed after a reconnection, aborted on unsubscribe); [`remote`] has the rest an
//! adapter of a remote server needs: [`remote::DubboLayout`], [`remote::Registrations`],
//! [`remote::Connection`], [`remote::Backoff`] and the factory's [`remote::Instances`]. The
//! ZooKeeper, etcd and Nacos adapters are built on them. [`dubbo`] has the keys Dubbo readers
//! expect on the URLs they find.

use std::sync::Arc;
use std::time::Duration;

use crate::config::keys;
use crate::error::Result;
use crate::url::Url;

/// What a notification is about, as in Dubbo's registry layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Provider URLs of a service.
    Providers,
    /// Consumer URLs of a service.
    Consumers,
    /// Routing rules.
    Routers,
    /// Dynamic configuration overrides.
    Configurators,
}

impl Category {
    /// The folder name used by Dubbo-layout registries.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Providers => "providers",
            Category::Consumers => "consumers",
            Category::Routers => "routers",
            Category::Configurators => "configurators",
        }
    }

    /// Every category, in Dubbo's order.
    pub const ALL: [Category; 4] = [
        Category::Providers,
        Category::Consumers,
        Category::Routers,
        Category::Configurators,
    ];

    /// The category named `name` (`providers`, `consumers`, `routers`, `configurators`).
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == name.trim())
    }

    /// The category a registered URL is filed under: its `category` key when valid, else
    /// `consumers` for `side=consumer` URLs, else `providers`.
    pub fn of(url: &Url) -> Category {
        if let Some(c) = url.param(keys::CATEGORY).and_then(Category::parse) {
            return c;
        }
        if url.param(keys::SIDE) == Some("consumer") {
            Category::Consumers
        } else {
            Category::Providers
        }
    }

    /// The categories a subscription with `url` watches: the comma-separated `category` key
    /// (unknown names ignored), else only `providers`.
    pub fn subscribed(url: &Url) -> Vec<Category> {
        let mut out: Vec<Category> = Vec::new();
        for c in url
            .param(keys::CATEGORY)
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter_map(Category::parse)
        {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if out.is_empty() {
            out.push(Category::Providers);
        }
        out
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives the full current list of one category whenever it changes.
pub trait NotifyListener: Send + Sync {
    /// `urls` is the complete list (not a delta); an empty list means the registry really
    /// holds none (a list made only of `empty://` URLs, Dubbo's marker, means the same).
    ///
    /// A registry that cannot reach its server must **not** notify an empty list: it simply
    /// stays silent until it is back, and listeners keep their last good list meanwhile.
    /// Notifications are delivered from within a tokio runtime, often from the adapter's
    /// background task: keep `notify` short and do not block.
    fn notify(&self, category: Category, urls: Vec<Url>);
}

/// A connection to one registry.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// The registry's own URL.
    fn url(&self) -> &Url;

    /// Whether the registry can currently be reached.
    fn is_available(&self) -> bool;

    /// Announces `url` (a provider or consumer) until unregistered or the process dies.
    async fn register(&self, url: &Url) -> Result<()>;

    /// Withdraws a registration.
    async fn unregister(&self, url: &Url) -> Result<()>;

    /// Watches the service of `url`; `listener` gets the current lists at once, then changes.
    async fn subscribe(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Result<()>;

    /// Stops a subscription made with the same `url` and listener.
    async fn unsubscribe(&self, url: &Url, listener: &Arc<dyn NotifyListener>) -> Result<()>;

    /// The current provider URLs of the service of `url`.
    async fn lookup(&self, url: &Url) -> Result<Vec<Url>>;

    /// The interface names that have at least one registered URL (any category), sorted.
    /// Used by operators' tools to list what a registry holds. Adapters that cannot
    /// enumerate say so with an error of kind `Internal` naming the adapter.
    async fn services(&self) -> Result<Vec<String>> {
        Err(crate::error::RpcError::internal(format!(
            "the {} registry cannot list its services",
            self.url().protocol()
        )))
    }

    /// The content of the config-center entry `key` ([`config_center`]), `None` when there
    /// is none. Adapters without a config center fail with an error of kind `Config` naming
    /// the adapter.
    async fn get_config(&self, key: &config_center::ConfigKey) -> Result<Option<String>> {
        Err(no_config_center(self.url(), key))
    }

    /// The content of the config-center entry `key` that can be had at once, without asking
    /// the server: a copy kept from an earlier read while the registry cannot be reached.
    /// [`config_center::watch`] hands it to a new watch before its first read, so a process
    /// started during an outage applies the rules it last saw from its first call on. The
    /// default (an adapter that keeps no copies) has none.
    fn cached_config(&self, key: &config_center::ConfigKey) -> Option<String> {
        let _ = key;
        None
    }

    /// Writes (`Some`) or removes (`None`) the config-center entry `key`; the content is
    /// checked against [`config_center::MAX_CONFIG_BYTES`] first.
    async fn publish_config(
        &self,
        key: &config_center::ConfigKey,
        content: Option<&str>,
    ) -> Result<()> {
        let _ = content;
        Err(no_config_center(self.url(), key))
    }

    /// Waits until the config-center entry `key` may hold something else than `seen` (the
    /// content last read, `None`: absent), or `within` passed, whichever comes first;
    /// [`config_center::watch`] reads the entry again after each wait. An adapter that can
    /// watch an entry (ZooKeeper, etcd) sets its watch, returns at once if the entry already
    /// differs from `seen` (a change between the read and the watch is not lost), else at
    /// the change; the default waits `within`.
    async fn wait_config_change(
        &self,
        key: &config_center::ConfigKey,
        seen: Option<&str>,
        within: Duration,
    ) {
        let _ = (key, seen);
        tokio::time::sleep(within).await;
    }
}

fn no_config_center(url: &Url, key: &config_center::ConfigKey) -> crate::error::RpcError {
    crate::error::RpcError::config(format!(
        "the {} registry has no config center (entry {key})",
        url.protocol()
    ))
}

/// Connects to a registry from its URL.
#[async_trait::async_trait]
pub trait RegistryFactory: Send + Sync {
    /// A registry client for `url` (shared per address by the factory).
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>>;
}

fn _assert_object_safe(_: &dyn Registry, _: &dyn RegistryFactory, _: &dyn NotifyListener) {}

crate::extension_point!(dyn RegistryFactory, key = keys::REGISTRY, default = "local");

pub mod cache;
pub mod config_center;
pub mod dubbo;
pub mod local;
pub mod memory;
pub mod remote;
pub mod rules;
pub mod subscriptions;
pub mod testing;

pub use cache::{CachedRegistry, RegistryCache};

/// Connects to the registry of `url`, chosen by its protocol through the SPI, wrapped in a
/// [`CachedRegistry`] (unless `cache=false`, or the registry is `memory`).
pub async fn connect(url: &Url) -> Result<Arc<dyn Registry>> {
    let factory = crate::extension::get::<dyn RegistryFactory>(url.protocol())?;
    let inner = factory.connect(url).await?;
    if url.protocol() == "memory" || !url.param_bool(keys::CACHE, true)? {
        return Ok(inner);
    }
    Ok(Arc::new(CachedRegistry::new(
        inner,
        RegistryCache::open(url),
    )))
}

/// The interface name of one path segment of the Dubbo layout (a directory, ZooKeeper node
/// or etcd key part written as `java_url_encode(interface)`, or `encode_component` by the
/// local registry), URL-decoded; `None` when the segment is empty, longer than
/// [`remote::MAX_ENTRY_BYTES`] or does not decode to UTF-8, so adapters skip what they did
/// not write.
pub fn decode_interface_segment(segment: &str) -> Option<String> {
    if segment.len() > remote::MAX_ENTRY_BYTES {
        return None;
    }
    let text = crate::url::java_url_decode(segment)?;
    if text.trim().is_empty() {
        return None;
    }
    Some(text)
}

/// The identity of a listener, to find it again on unsubscribe.
pub fn listener_id(listener: &Arc<dyn NotifyListener>) -> usize {
    Arc::as_ptr(listener).cast::<()>() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn category_of_a_registered_url() {
        assert_eq!(Category::of(&url("dubbo://h:1/I")), Category::Providers);
        assert_eq!(
            Category::of(&url("consumer://h/I?side=consumer")),
            Category::Consumers
        );
        assert_eq!(
            Category::of(&url("route://0.0.0.0/I?category=routers")),
            Category::Routers
        );
        assert_eq!(
            Category::of(&url("dubbo://h:1/I?category=bogus")),
            Category::Providers
        );
    }

    #[test]
    fn subscribed_categories_default_to_providers_and_skip_unknown_names() {
        assert_eq!(
            Category::subscribed(&url("consumer://h/I")),
            vec![Category::Providers]
        );
        assert_eq!(
            Category::subscribed(&url(
                "consumer://h/I?category=routers,bogus,providers,routers"
            )),
            vec![Category::Routers, Category::Providers]
        );
        assert_eq!(
            Category::subscribed(&url("consumer://h/I?category=bogus")),
            vec![Category::Providers]
        );
    }

    #[test]
    fn interface_segments_decode_or_are_refused() {
        let name = "org.example.Outer$Inner";
        assert_eq!(
            decode_interface_segment(&crate::url::encode_component(name)).as_deref(),
            Some(name)
        );
        assert_eq!(
            decode_interface_segment("org.Plain").as_deref(),
            Some("org.Plain")
        );
        assert_eq!(decode_interface_segment(""), None);
        assert_eq!(decode_interface_segment("%20"), None);
        assert_eq!(decode_interface_segment("bad%ff"), None);
    }

    /// A registry that implements only the required methods.
    #[tokio::test]
    async fn an_adapter_without_services_says_it_cannot_list() {
        let reg = crate::registry::testing::Inert(url("custom://h:1"));
        let err = reg.services().await.expect_err("not implemented");
        assert_eq!(err.kind(), crate::ErrorKind::Internal);
        assert!(err.to_string().contains("custom registry"), "{err}");
    }

    #[tokio::test]
    async fn connect_picks_the_adapter_by_protocol_and_names_unknown_ones() {
        let reg = connect(&url("memory://mod-connect")).await.expect("memory");
        assert_eq!(reg.url().protocol(), "memory");
        let err = connect(&url("nosuch://h:1"))
            .await
            .err()
            .expect("unknown registry");
        assert!(err.to_string().contains("nosuch"), "{err}");
    }
}
