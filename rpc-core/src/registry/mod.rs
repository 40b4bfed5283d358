//! Registries: where providers announce themselves and consumers find them (`registry://`
//! URL scheme or `registry=` key picks the adapter).

use std::sync::Arc;

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
}

/// Receives the full current list of one category whenever it changes.
pub trait NotifyListener: Send + Sync {
    /// `urls` is the complete list (not a delta); an empty list means the registry really
    /// holds none (a list made only of `empty://` URLs, Dubbo's marker, means the same).
    ///
    /// A registry that cannot reach its server must **not** notify an empty list: it simply
    /// stays silent until it is back, and listeners keep their last good list meanwhile.
    /// Notifications are delivered from within a tokio runtime.
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
}

/// Connects to a registry from its URL.
#[async_trait::async_trait]
pub trait RegistryFactory: Send + Sync {
    /// A registry client for `url` (shared per address by the factory).
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>>;
}

fn _assert_object_safe(_: &dyn Registry, _: &dyn RegistryFactory, _: &dyn NotifyListener) {}

crate::extension_point!(dyn RegistryFactory, key = "registry", default = "local");
