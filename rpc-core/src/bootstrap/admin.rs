//! The admin service every provider exports next to its own services (not registered, so it
//! is reached at the provider's address): what the command-line tool uses to describe the
//! services, read metrics, and take the provider offline or online.
//!
//! Turn it off with `admin=false` in the application settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::proxy::ServiceDescriptor;
use crate::registry::Registry;
use crate::url::Url;

crate::config_key!(
    "admin",
    "true",
    Bool,
    "provider: export the admin service (describe, metrics, offline/online) on the service port"
);

/// Interface name of the admin service.
pub const ADMIN_INTERFACE: &str = "rpc.Admin";

/// A method of an exported service, as the admin service describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// Method name.
    pub name: String,
    /// `greet(name: String) -> Result<String, GreetError>`.
    pub signature: String,
    /// Declared idempotent (failover may retry it).
    pub idempotent: bool,
    /// Declared one-way.
    pub oneway: bool,
    /// Declared default timeout, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Where its idempotency key comes from: `generated`, or the argument's name.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The argument whose value orders its calls (`#[ordered_by]`).
    #[serde(default)]
    pub ordered_by: Option<String>,
}

/// The name of argument `i` of `m` (its index when it has none).
fn arg_name(m: &crate::proxy::MethodDescriptor, i: usize) -> String {
    m.args()
        .get(i)
        .map(|a| a.name())
        .filter(|n| *n != "_")
        .map_or_else(|| format!("argument {i}"), str::to_string)
}

/// An exported service, as the admin service describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Interface name.
    pub interface: String,
    /// Exported URL.
    pub url: String,
    /// Its methods.
    pub methods: Vec<MethodInfo>,
}

/// Operating a running provider remotely.
#[crate::service(name = "rpc.Admin")]
pub trait Admin {
    /// The services this provider exports.
    #[idempotent]
    async fn services(&self) -> Vec<ServiceInfo>;

    /// This process's metrics in Prometheus text format.
    #[idempotent]
    async fn metrics(&self) -> Result<String, String>;

    /// Whether the services are registered.
    #[idempotent]
    async fn is_online(&self) -> bool;

    /// Takes the services out of the registry (they keep serving direct calls).
    #[idempotent]
    async fn offline(&self) -> Result<(), String>;

    /// Puts the services back into the registry.
    #[idempotent]
    async fn online(&self) -> Result<(), String>;
}

/// What a running provider shares with its admin service.
pub(crate) struct ProviderState {
    pub(crate) registry: Option<Arc<dyn Registry>>,
    pub(crate) services: std::sync::RwLock<Vec<(Url, &'static ServiceDescriptor)>>,
    pub(crate) online: AtomicBool,
    /// Serializes offline/online so concurrent switches do not interleave.
    pub(crate) switch: tokio::sync::Mutex<()>,
}

impl ProviderState {
    pub(crate) fn urls(&self) -> Vec<Url> {
        self.services
            .read()
            .map(|s| s.iter().map(|(u, _)| u.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) async fn set_online(&self, online: bool) -> crate::Result<()> {
        let _guard = self.switch.lock().await;
        if let Some(r) = &self.registry {
            for url in self.urls() {
                if online {
                    r.register(&url).await?;
                } else {
                    r.unregister(&url).await?;
                }
            }
        }
        self.online.store(online, Ordering::SeqCst);
        tracing::info!(online, "provider switched");
        Ok(())
    }
}

/// The admin service over a provider's state.
#[derive(Clone)]
pub(crate) struct AdminImpl(pub(crate) Arc<ProviderState>);

impl Admin for AdminImpl {
    async fn services(&self) -> Vec<ServiceInfo> {
        let services = self
            .0
            .services
            .read()
            .map(|s| s.clone())
            .unwrap_or_default();
        services
            .into_iter()
            .map(|(url, d)| ServiceInfo {
                interface: d.interface().to_string(),
                url: url.to_string(),
                methods: d
                    .methods()
                    .iter()
                    .map(|m| MethodInfo {
                        name: m.name().to_string(),
                        signature: m.signature(),
                        idempotent: m.is_idempotent(),
                        oneway: m.is_oneway(),
                        timeout_ms: m.timeout_ms(),
                        idempotency_key: m.idempotency_key().map(|k| match k {
                            crate::proxy::IdempotencyKey::Generated => "generated".to_string(),
                            crate::proxy::IdempotencyKey::Argument(i) => arg_name(m, i),
                        }),
                        ordered_by: m.ordered_by().map(|i| arg_name(m, i)),
                    })
                    .collect(),
            })
            .collect()
    }

    async fn metrics(&self) -> Result<String, String> {
        crate::filter::metrics::render().map_err(|e| e.to_string())
    }

    async fn is_online(&self) -> bool {
        self.0.online.load(Ordering::SeqCst)
    }

    async fn offline(&self) -> Result<(), String> {
        self.0.set_online(false).await.map_err(|e| e.to_string())
    }

    async fn online(&self) -> Result<(), String> {
        self.0.set_online(true).await.map_err(|e| e.to_string())
    }
}
