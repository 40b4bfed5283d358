//! The admin service every provider exports next to its own services (not registered, so it
//! is reached at the provider's address): what the command-line tool uses to describe the
//! services, read metrics, and take the provider offline or online.
//!
//! Turn it off with `admin=false` in the application settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::cluster::configurator::Overrides;
use crate::config::keys;
use crate::proxy::ServiceDescriptor;
use crate::registry::{Category, NotifyListener, Registry};
use crate::url::Url;

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
    /// Serializes offline/online and rule changes so they do not interleave.
    pub(crate) switch: tokio::sync::Mutex<()>,
    /// The provider-side override rules of each service (by its exported URL).
    pub(crate) rules: Mutex<HashMap<String, Overrides>>,
    /// The filter chain of each service (by its exported URL), rebuilt for the settings
    /// those rules give it.
    pub(crate) chains: Mutex<HashMap<String, Arc<crate::filter::LiveChain>>>,
    /// Whether the admin service was exported with a token (`admin.token`, or the
    /// application's `token`), so that its `token` filter checks every caller.
    pub(crate) admin_token: AtomicBool,
}

impl ProviderState {
    pub(crate) fn urls(&self) -> Vec<Url> {
        self.services
            .read()
            .map(|s| s.iter().map(|(u, _)| u.clone()).collect())
            .unwrap_or_default()
    }

    /// The URL `exported` is registered with under the rules in force for it; `None` when a
    /// rule sets `disabled=true` (it is then not registered).
    fn published(&self, exported: &Url) -> Option<Url> {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let url = match rules.get(&exported.to_string()) {
            Some(r) => r.apply_to_provider(exported),
            None => exported.clone(),
        };
        (url.param(keys::DISABLED) != Some("true")).then_some(url)
    }

    pub(crate) async fn set_online(&self, online: bool) -> crate::Result<()> {
        let _guard = self.switch.lock().await;
        if let Some(r) = &self.registry {
            for url in self.urls().iter().filter_map(|u| self.published(u)) {
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

/// Puts the provider-side override rules `rules` in force for the service exported as
/// `exported`: when they change the URL it is registered with (a weight, a timeout its
/// consumers default to, `disabled=true`), and the provider is online, the old URL is
/// unregistered and the new one registered, so every consumer (also one that reads no rules,
/// such as a stock Dubbo client) sees the change.
pub(crate) async fn apply_provider_rules(state: &ProviderState, exported: &Url, rules: Overrides) {
    let _guard = state.switch.lock().await;
    let before = state.published(exported);
    let chain = state
        .chains
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&exported.to_string())
        .cloned();
    if let Some(chain) = chain {
        // The service's own settings (`executes`, `tps`, `accesslog`, ...) under the rules,
        // matched at the address it is published at (its chain was built before the port
        // was bound).
        let at = chain
            .base_url()
            .with_host(exported.host())
            .with_port(exported.port().unwrap_or(0));
        let settings = rules.apply_to_provider(&at);
        if let Err(e) = chain.update((settings != at).then_some(&settings)) {
            tracing::error!(service = %exported.path(), error = %e,
                "provider-side rule not applied to the service's filters");
        }
    }
    state
        .rules
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(exported.to_string(), rules);
    let after = state.published(exported);
    if before == after || !state.online.load(Ordering::SeqCst) {
        return;
    }
    let Some(registry) = &state.registry else {
        return;
    };
    if let Some(old) = &before {
        if let Err(e) = registry.unregister(old).await {
            tracing::warn!(url = %old, error = %e, "cannot unregister before a rule change");
        }
    }
    if let Some(new) = &after {
        if let Err(e) = registry.register(new).await {
            tracing::warn!(url = %new, error = %e, "cannot register under the new rules");
        }
    }
    tracing::info!(service = %exported.path(), registered = after.is_some(), "provider-side override rules applied");
}

/// Receives a provider's `configurators` and applies them ([`apply_provider_rules`]); a bad
/// list is refused with a logged error, and the rules in force stay.
///
/// Lists are applied one at a time by one task, the newest last: two lists notified close
/// together (a document and the registry's folder) cannot be applied in the wrong order and
/// leave an older rule in force.
pub(crate) struct ProviderRules {
    exported: Url,
    latest: tokio::sync::watch::Sender<Option<Overrides>>,
}

impl ProviderRules {
    /// The listener for the service exported as `exported`; its task ends with the provider
    /// or with the listener. Must be called within a tokio runtime.
    pub(crate) fn new(state: std::sync::Weak<ProviderState>, exported: Url) -> ProviderRules {
        let (latest, mut rx) = tokio::sync::watch::channel(None::<Overrides>);
        let url = exported.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(rules) = rx.borrow_and_update().clone() else {
                    continue;
                };
                let Some(state) = state.upgrade() else { return };
                apply_provider_rules(&state, &url, rules).await;
            }
        });
        ProviderRules { exported, latest }
    }
}

impl NotifyListener for ProviderRules {
    fn notify(&self, category: Category, urls: Vec<Url>) {
        if category != Category::Configurators {
            return;
        }
        match Overrides::parse(&urls) {
            Ok(rules) => {
                self.latest.send_replace(Some(rules));
            }
            Err(e) => {
                tracing::error!(service = %self.exported.path(), error = %e,
                    "bad override rule; keeping the rules in force");
            }
        }
    }
}

/// The admin service over a provider's state.
#[derive(Clone)]
pub(crate) struct AdminImpl(pub(crate) Arc<ProviderState>);

impl AdminImpl {
    /// Whether the caller may take the provider offline or online: one that carried the
    /// admin token (checked by the `token` filter before the call got here), or, without a
    /// token, one on this host (a peer could otherwise take any provider it can reach out of
    /// the registry).
    fn may_switch(&self) -> Result<(), String> {
        if self.0.admin_token.load(Ordering::SeqCst) {
            return Ok(());
        }
        let peer = crate::context::RpcContext::with_current(|c| {
            c.and_then(|c| c.get(crate::context::REMOTE_ADDRESS_ATTACHMENT))
                .map(str::to_string)
        });
        let local = peer
            .as_deref()
            .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
            .is_some_and(|a| a.ip().is_loopback());
        if local {
            Ok(())
        } else {
            Err(format!(
                "taking a provider offline or online needs a caller on its own host (this one \
                 is {}) or, when the provider sets `admin.token`, that token",
                peer.as_deref().unwrap_or("unknown")
            ))
        }
    }
}

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
        self.may_switch()?;
        self.0.set_online(false).await.map_err(|e| e.to_string())
    }

    async fn online(&self) -> Result<(), String> {
        self.may_switch()?;
        self.0.set_online(true).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{RpcContext, REMOTE_ADDRESS_ATTACHMENT};

    fn state() -> Arc<ProviderState> {
        Arc::new(ProviderState {
            registry: None,
            services: Default::default(),
            online: AtomicBool::new(true),
            switch: Default::default(),
            rules: Default::default(),
            chains: Default::default(),
            admin_token: AtomicBool::new(false),
        })
    }

    /// A context as the provider's `context` filter makes it for a caller at `addr`.
    fn from(addr: &str) -> RpcContext {
        let mut ctx = RpcContext::new();
        ctx.attachments_mut()
            .insert(REMOTE_ADDRESS_ATTACHMENT, addr.to_string());
        ctx
    }

    /// Without a token only a caller on the provider's host switches it; with one, the
    /// `token` filter has checked the caller before the call gets here.
    #[tokio::test]
    async fn only_a_local_caller_or_one_with_the_token_takes_a_provider_offline() {
        let state = state();
        let admin = AdminImpl(state.clone());
        for remote in ["10.1.2.3:5555", "[2001:db8::1]:5555", "not an address"] {
            let e = from(remote)
                .scope(admin.offline())
                .await
                .expect_err("a remote caller");
            assert!(e.contains(remote) && e.contains("admin.token"), "{e}");
        }
        let e = admin
            .offline()
            .await
            .expect_err("a caller of unknown address");
        assert!(e.contains("unknown"), "{e}");
        assert!(state.online.load(Ordering::SeqCst), "still online");

        from("127.0.0.1:5555")
            .scope(admin.offline())
            .await
            .expect("a local caller");
        assert!(!state.online.load(Ordering::SeqCst));
        from("[::1]:5555")
            .scope(admin.online())
            .await
            .expect("a local caller over IPv6");
        assert!(state.online.load(Ordering::SeqCst));

        state.admin_token.store(true, Ordering::SeqCst);
        from("10.1.2.3:5555")
            .scope(admin.offline())
            .await
            .expect("a caller the token filter let through");
        assert!(!state.online.load(Ordering::SeqCst));
    }
}
