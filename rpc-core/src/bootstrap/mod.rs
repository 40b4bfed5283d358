//! Bootstrap: the two ends a user writes — a [`Provider`] that serves implementations and a
//! [`Consumer`] that hands out typed clients.
//!
//! ```ignore
//! // provider
//! let running = Provider::builder()
//!     .application("greeter-app")
//!     .registry("local://")?
//!     .protocol("dubbo", 20880)
//!     .service(GreeterServer::new(MyGreeter))
//!     .start()
//!     .await?;
//! running.wait_for_shutdown_signal().await; // Ctrl-C / SIGTERM: unregister, drain, close
//!
//! // consumer
//! let consumer = Consumer::builder().registry("local://")?.build().await?;
//! let greeter: GreeterClient = consumer.reference().await?;
//! greeter.greet("ann".into()).await?;
//! ```
//!
//! Configuration comes from the builder, an optional TOML file (`.config_file(path)`) and the
//! environment (`RPC_*`, read by default), merged as described in [`crate::config`]. Without a
//! registry setting, both ends use the embedded `local://` registry, so a first run needs no
//! server.
//!
//! # The consumer stack
//! For each reference: a [`Directory`](crate::cluster::Directory) (static for direct `url=`
//! providers, else a [`RegistryDirectory`] subscribed to the registry), wrapped by the
//! [`Cluster`] chosen by `cluster=`; every provider invoker inside is the protocol's reference
//! wrapped in the consumer filter chain, with the provider's URL merged with the reference's
//! settings (the consumer's `timeout`, `retries`, ... win; the provider's `weight`, `warmup`,
//! `timestamp` and `token` stay).
//!
//! # Graceful shutdown
//! [`RunningProvider::shutdown`] unregisters every service, waits `shutdown.wait` ms
//! (default 1000) so consumers see the removal and stop sending, then unexports: the server
//! stops accepting and lets in-flight calls finish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod admin;

use crate::cluster::registry_directory::{merge_direct_url, InvokerFactory, RegistryDirectory};
use crate::cluster::router::ZoneRouter;
use crate::cluster::{Cluster, StaticDirectory};
use crate::config::keys;
use crate::config::{Config, ConfigBuilder, ServiceConfig};
use crate::error::{Result, RpcError};
use crate::extension::{self, Side};
use crate::invocation::Invoker;
use crate::protocol::{Exporter, Protocol};
use crate::proxy::{ServiceClient, ServiceDescriptor, ServiceServer, Skeleton};
use crate::registry::{self, Registry};
use crate::url::Url;
use admin::ProviderState;

/// The `check` wait of a reference: milliseconds, or Dubbo's boolean (`false`: no wait,
/// `true`: the default wait). A reference never fails for want of providers.
fn check_wait(url: &Url) -> Result<Duration> {
    const DEFAULT_MS: u64 = 3000;
    let ms = match url.param(keys::CHECK) {
        None | Some("true") => DEFAULT_MS,
        Some("false") => 0,
        Some(_) => url.param_as(keys::CHECK, DEFAULT_MS)?,
    };
    Ok(Duration::from_millis(ms))
}

/// The registry used when none is configured: the embedded, server-less one.
pub const DEFAULT_REGISTRY: &str = "local://";

type MakeSkeleton = Box<dyn FnOnce(Url) -> Arc<dyn Invoker> + Send>;

struct PendingService {
    descriptor: &'static ServiceDescriptor,
    make: MakeSkeleton,
}

/// Builds a [`Provider`]; see the [module docs](self).
pub struct ProviderBuilder {
    config: ConfigBuilder,
    config_error: Option<RpcError>,
    use_env: bool,
    no_registry: bool,
    services: Vec<PendingService>,
}

/// Entry point for serving services.
#[derive(Debug)]
pub struct Provider;

impl Provider {
    /// A builder with no services yet.
    pub fn builder() -> ProviderBuilder {
        ProviderBuilder {
            config: ConfigBuilder::new(),
            config_error: None,
            use_env: true,
            no_registry: false,
            services: Vec::new(),
        }
    }
}

macro_rules! config_setters {
    () => {
        /// Sets the application name.
        pub fn application(mut self, name: &str) -> Self {
            self.config = self.config.application(name);
            self
        }

        /// Sets the registry URL (`local://`, `zookeeper://127.0.0.1:2181`, ...).
        pub fn registry(mut self, url: &str) -> Result<Self> {
            self.config = self.config.registry(url)?;
            Ok(self)
        }

        /// Uses no registry at all (consumers then need direct `url=` settings).
        pub fn no_registry(mut self) -> Self {
            self.no_registry = true;
            self
        }

        /// Sets an application-level parameter (any key of the key table).
        pub fn param(mut self, key: &str, value: impl ToString) -> Result<Self> {
            self.config = self.config.param(key, value)?;
            Ok(self)
        }

        /// Loads a TOML file (lowest precedence).
        pub fn config_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Self> {
            self.config = self.config.file(path)?;
            Ok(self)
        }

        /// Ignores the `RPC_*` environment variables (they are read by default).
        pub fn without_env(mut self) -> Self {
            self.use_env = false;
            self
        }
    };
}

impl ProviderBuilder {
    config_setters!();

    /// Sets the protocol and port to export on (port 0 picks a free port).
    pub fn protocol(mut self, name: &str, port: u16) -> Self {
        self.config = self.config.protocol(name, port);
        self
    }

    /// Sets the host to bind and announce (default 127.0.0.1).
    pub fn host(mut self, host: &str) -> Self {
        self.config = self.config.host(host);
        self
    }

    /// Adds a service (a server generated by `#[service]`, e.g. `GreeterServer::new(impl)`).
    pub fn service<S: ServiceServer>(self, server: S) -> Self {
        self.service_with(server, ServiceConfig::default())
    }

    /// Adds a service with service- and method-level settings.
    pub fn service_with<S: ServiceServer>(mut self, server: S, settings: ServiceConfig) -> Self {
        let descriptor = S::descriptor();
        match std::mem::take(&mut self.config).service(descriptor.interface(), settings) {
            Ok(c) => self.config = c,
            Err(e) => {
                self.config_error.get_or_insert(e);
            }
        }
        self.services.push(PendingService {
            descriptor,
            make: Box::new(move |url| Arc::new(Skeleton::with_url(server, url))),
        });
        self
    }

    /// Exports every service and registers it. Returns once all are reachable.
    pub async fn start(self) -> Result<RunningProvider> {
        if let Some(e) = self.config_error {
            return Err(e);
        }
        let mut builder = self.config;
        if self.use_env {
            builder = builder.env()?;
        }
        let cfg = builder.build();
        // Before the registry: its cache file is named after the application.
        if let Some(app) = &cfg.application {
            crate::context::set_application(app);
        }
        let registry = connect_registry(&cfg, self.no_registry).await?;
        install_metrics();
        let metrics_addr = serve_metrics(&cfg).await?;
        let state = Arc::new(ProviderState {
            registry,
            services: std::sync::RwLock::new(Vec::new()),
            online: AtomicBool::new(false),
            switch: tokio::sync::Mutex::new(()),
            rules: std::sync::Mutex::new(Default::default()),
            chains: std::sync::Mutex::new(Default::default()),
            admin_token: AtomicBool::new(false),
        });
        let mut services = self.services;
        let admin_on = match cfg.params.get(keys::ADMIN).map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(RpcError::config(format!(
                    "'admin' must be true or false, not '{other}'"
                )))
            }
        };
        let mut port = cfg.port.unwrap_or(0);
        let started = crate::cluster::loadbalance::now_ms();
        let mut exported = Vec::new();
        let mut registered = Vec::new();
        let mut live_chains = Vec::new();
        if admin_on {
            // Exported last, on the port the services bound; never registered.
            let server = admin::AdminServer::new(admin::AdminImpl(state.clone()));
            services.push(PendingService {
                descriptor: <admin::AdminServer<admin::AdminImpl> as ServiceServer>::descriptor(),
                make: Box::new(move |url| Arc::new(Skeleton::with_url(server, url))),
            });
        }
        let admin_index = admin_on.then(|| services.len() - 1);
        for (i, svc) in services.into_iter().enumerate() {
            let url = cfg
                .service_url(
                    svc.descriptor.interface(),
                    port,
                    &svc.descriptor.url_params(),
                )
                .with_param(keys::TIMESTAMP, started)
                .with_param(keys::PID, std::process::id());
            let url = registry::dubbo::provider_keys(&url);
            // Dubbo peers read `serialization`: they are told hessian2, ours read their own.
            let url = registry::dubbo::advertise_serialization(
                &url,
                <dyn crate::serialize::Serialization as extension::ExtensionPoint>::DEFAULT,
            );
            crate::config::check_extension_names(&url)?;
            // The admin secret guards the admin service alone, and is never published.
            let url = url.without_param(keys::ADMIN_TOKEN);
            let url = match cfg.params.get(keys::ADMIN_TOKEN) {
                Some(t) if Some(i) == admin_index && !t.is_empty() => {
                    url.with_param(keys::TOKEN, t)
                }
                _ => url,
            };
            let url = crate::filter::token::resolve_token(&url)?;
            if Some(i) == admin_index {
                state
                    .admin_token
                    .store(url.param(keys::TOKEN).is_some(), Ordering::SeqCst);
            }
            let protocol = extension::get::<dyn Protocol>(url.protocol())?;
            crate::protocol::check_streams(&*protocol, url.protocol(), svc.descriptor)?;
            let skeleton = (svc.make)(url.clone());
            // With a registry, provider-side rules may change the service's settings
            // (`executes`, `tps`, ...): its chain is then rebuilt for them.
            let chain: Arc<dyn Invoker> = if state.registry.is_some() {
                let live = crate::filter::LiveChain::new(skeleton, |i| {
                    crate::filter::build_chain(i, Side::Provider)
                })?;
                live_chains.push(live.clone());
                live
            } else {
                crate::filter::build_chain(skeleton, Side::Provider)?
            };
            let exporter = protocol.export(url, chain).await?;
            if let Some(p) = exporter.url().port() {
                port = p;
            }
            // Local TLS material (paths, PEM text: a private key) is never published or
            // logged; `tls=true` is. Nor is the admin service's token.
            let mut public = exporter.url().clone();
            for k in crate::transport::tls::LOCAL_KEYS {
                public = public.without_param(k);
            }
            if Some(i) == admin_index {
                tracing::info!(url = %public.without_param(keys::TOKEN), "exported");
            } else {
                tracing::info!(url = %public, "exported");
                if let Some(live) = live_chains.last() {
                    state
                        .chains
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(public.to_string(), live.clone());
                }
                registered.push((public, svc.descriptor));
            }
            exported.push(exporter);
        }
        if let Ok(mut s) = state.services.write() {
            *s = registered;
        }
        state.set_online(true).await?;
        // Provider-side rules (Dubbo's provider configurators): a rule for this provider's
        // address changes the URL it is registered with.
        if let Some(registry) = &state.registry {
            for exported in state.urls() {
                let listener: Arc<dyn registry::NotifyListener> = Arc::new(
                    admin::ProviderRules::new(Arc::downgrade(&state), exported.clone()),
                );
                let watch = exported.with_param(keys::CATEGORY, "configurators");
                // With the provider's rule documents of the config center merged in.
                let listener: Arc<dyn registry::NotifyListener> =
                    match registry::config_center::RuleFeed::provider(
                        registry,
                        &exported,
                        listener.clone(),
                    ) {
                        Ok(feed) => feed,
                        Err(e) => {
                            tracing::warn!(service = %exported.path(), error = %e,
                                "cannot watch the provider's rule documents");
                            listener
                        }
                    };
                if let Err(e) = registry.subscribe(&watch, listener).await {
                    tracing::warn!(service = %exported.path(), error = %e,
                        "cannot watch the provider's override rules");
                }
            }
        }
        Ok(RunningProvider {
            state,
            exporters: exported,
            shutdown_wait: Duration::from_millis(cfg_millis(&cfg, keys::SHUTDOWN_WAIT, 1000)?),
            metrics_addr,
        })
    }
}

/// Installs the Prometheus recorder before the first call, so the metrics filters record into
/// it. An application that installed its own `metrics` recorder keeps it (the filters then
/// record there).
fn install_metrics() {
    if let Err(e) = crate::filter::metrics::install() {
        tracing::debug!(error = %e, "using the application's own metrics recorder");
        crate::filter::metrics::use_installed_recorder();
    }
}

/// Starts the Prometheus endpoint when `metrics.port` is set.
async fn serve_metrics(cfg: &Config) -> Result<Option<SocketAddr>> {
    let Some(port) = cfg.params.get(keys::METRICS_PORT) else {
        return Ok(None);
    };
    let port: u16 = port
        .parse()
        .map_err(|_| RpcError::config(format!("'metrics.port' '{port}' is not a port")))?;
    let addr = crate::filter::metrics::serve(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    tracing::info!(%addr, "metrics endpoint");
    Ok(Some(addr))
}

fn cfg_millis(cfg: &Config, key: &str, default: u64) -> Result<u64> {
    match cfg.params.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            RpcError::config(format!(
                "'{key}' must be a whole number of milliseconds, not '{v}'"
            ))
        }),
    }
}

async fn connect_registry(cfg: &Config, none: bool) -> Result<Option<Arc<dyn Registry>>> {
    if none {
        return Ok(None);
    }
    let url = match &cfg.registry {
        Some(u) => u.clone(),
        None => Url::parse(DEFAULT_REGISTRY)?,
    };
    Ok(Some(registry::connect(&url).await?))
}

/// A started provider: its exported services, registered in the registry.
pub struct RunningProvider {
    state: Arc<ProviderState>,
    exporters: Vec<Box<dyn Exporter>>,
    shutdown_wait: Duration,
    metrics_addr: Option<SocketAddr>,
}

impl RunningProvider {
    /// The exported URLs of the user's services (with the bound port).
    pub fn urls(&self) -> Vec<Url> {
        self.state.urls()
    }

    /// The bound port of the services (and of the admin service).
    pub fn port(&self) -> Option<u16> {
        self.exporters.first().and_then(|e| e.url().port())
    }

    /// Where the Prometheus endpoint listens, when `metrics.port` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Whether the services are registered (see [`RunningProvider::offline`]).
    pub fn is_online(&self) -> bool {
        self.state.online.load(Ordering::SeqCst)
    }

    /// Takes the services out of the registry without stopping them: consumers stop sending
    /// new calls (to debug the process, or before a deploy). Direct connections still work.
    /// Also reachable remotely through the admin service (`rpcctl offline`).
    pub async fn offline(&self) -> Result<()> {
        self.state.set_online(false).await
    }

    /// Puts the services (back) into the registry.
    pub async fn online(&self) -> Result<()> {
        self.state.set_online(true).await
    }

    /// Graceful shutdown: unregister, wait `shutdown.wait`, then unexport (stop accepting,
    /// let in-flight calls finish).
    pub async fn shutdown(self) {
        if let Err(e) = self.offline().await {
            tracing::warn!(error = %e, "unregistering during shutdown failed");
        }
        if self.state.registry.is_some() {
            tokio::time::sleep(self.shutdown_wait).await;
        }
        for e in &self.exporters {
            e.unexport().await;
        }
    }

    /// Waits for Ctrl-C or SIGTERM, then shuts down gracefully.
    pub async fn wait_for_shutdown_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; draining");
        self.shutdown().await;
    }
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Builds a [`Consumer`]; see the [module docs](self).
pub struct ConsumerBuilder {
    config: ConfigBuilder,
    config_error: Option<RpcError>,
    use_env: bool,
    no_registry: bool,
}

/// Hands out typed clients for remote services.
pub struct Consumer {
    config: Config,
    registry: Option<Arc<dyn Registry>>,
}

impl Consumer {
    /// A builder.
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder {
            config: ConfigBuilder::new(),
            config_error: None,
            use_env: true,
            no_registry: false,
        }
    }
}

impl ConsumerBuilder {
    config_setters!();

    /// Settings for the reference to `interface` (service- and method-level).
    pub fn reference_config(mut self, interface: &str, settings: ServiceConfig) -> Self {
        match std::mem::take(&mut self.config).reference(interface, settings) {
            Ok(c) => self.config = c,
            Err(e) => {
                self.config_error.get_or_insert(e);
            }
        }
        self
    }

    /// Connects to the registry (unless none is used).
    pub async fn build(self) -> Result<Consumer> {
        if let Some(e) = self.config_error {
            return Err(e);
        }
        let mut builder = self.config;
        if self.use_env {
            builder = builder.env()?;
        }
        let config = builder.build();
        if let Some(app) = &config.application {
            crate::context::set_application(app);
        }
        install_metrics();
        let registry = connect_registry(&config, self.no_registry).await?;
        Ok(Consumer { config, registry })
    }
}

impl Consumer {
    /// The merged configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The reference URL a client of `descriptor` is built from.
    pub fn reference_url(&self, descriptor: &ServiceDescriptor) -> Url {
        self.config
            .reference_url(descriptor.interface(), &descriptor.url_params())
    }

    /// A typed client (`GreeterClient`) for its service, through the full consumer stack.
    pub async fn reference<C: ServiceClient>(&self) -> Result<C> {
        let invoker = self.reference_invoker(C::descriptor()).await?;
        Ok(C::from_invoker(invoker))
    }

    /// The cluster invoker for a service, for generic (typeless) callers.
    pub async fn reference_invoker(
        &self,
        descriptor: &ServiceDescriptor,
    ) -> Result<Arc<dyn Invoker>> {
        let url = self.reference_url(descriptor);
        self.refer_url(url).await
    }

    /// The cluster invoker for a reference URL (`consumer://host/{interface}?...`).
    pub async fn refer_url(&self, url: Url) -> Result<Arc<dyn Invoker>> {
        crate::config::check_extension_names(&url)?;
        let factory: Arc<dyn InvokerFactory> = Arc::new(ConsumerInvokerFactory);
        let cluster = extension::adaptive::<dyn Cluster>(&url, "")?;
        if let Some(direct) = url.param(keys::URL).filter(|s| !s.trim().is_empty()) {
            let mut invokers = Vec::new();
            for one in direct.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let provider = Url::parse(one)?;
                let provider = if provider.path().is_empty() {
                    provider.with_path(url.path())
                } else {
                    provider
                };
                invokers.push(factory.refer(merge_direct_url(&provider, &url)).await?);
            }
            let mut directory = StaticDirectory::new(url.clone(), invokers);
            if let Some(zone) = ZoneRouter::for_reference(&url)? {
                directory = directory.with_router(zone);
            }
            let joined = cluster.join(Arc::new(directory))?;
            return crate::filter::build_reference_chain(joined);
        }
        let Some(registry) = &self.registry else {
            return Err(RpcError::config(format!(
                "reference to {} has neither a registry nor a direct `url`",
                url.path()
            )));
        };
        let own_routers = ZoneRouter::for_reference(&url)?.into_iter().collect();
        let dir = RegistryDirectory::with_routers(url.clone(), factory, own_routers);
        // As Dubbo consumers do: the providers, and the override and routing rules of the
        // service (applied live by the directory, kept in the registry cache like the list).
        // The rule documents of the config center (Dubbo 2.7+ YAML) join those lists.
        let subscription = url.with_param(keys::CATEGORY, "providers,configurators,routers");
        let rules = registry::config_center::RuleFeed::consumer(registry, &url, dir.clone())?;
        registry.subscribe(&subscription, rules.clone()).await?;
        // The consumer's own registration is informational (operators' tools list it): it
        // never delays the reference, even while the registry is unreachable.
        if url.param_bool(keys::REGISTER, true)? {
            let consumer_url =
                registry::dubbo::consumer_registration(&url, crate::cluster::loadbalance::now_ms());
            let reg = registry.clone();
            tokio::spawn(async move {
                if let Err(e) = reg.register(&consumer_url).await {
                    tracing::debug!(error = %e, "consumer registration failed (informational only)");
                }
            });
        }
        // The first call waits, within the `check` time, for providers and, while the
        // registry can be reached, for the first read of the rule documents, so that it runs
        // under the rules in force. While it cannot be reached the documents' cached copies
        // were handed on when they were watched, and nothing more is waited for.
        let until = tokio::time::Instant::now() + check_wait(&url)?;
        while (dir.providers().is_empty() || (registry.is_available() && !rules.has_read_all()))
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            dir.refresh().await;
        }
        // The once-per-reference filters (`mock`) follow the override rules: the chain is
        // rebuilt when a rule changes the reference's settings.
        let chain = crate::filter::LiveChain::new(
            cluster.join(dir.clone())?,
            crate::filter::build_reference_chain,
        )?;
        let weak = Arc::downgrade(&chain);
        dir.on_live_settings(Box::new(move |settings| {
            if let Some(chain) = weak.upgrade() {
                if let Err(e) = chain.update(settings) {
                    tracing::error!(error = %e, "override rule not applied to the reference's filters");
                }
            }
        }));
        Ok(Arc::new(RegistryReference {
            inner: chain,
            _registry: registry.clone(),
            _rules: rules,
        }))
    }
}

/// A reference fed by a registry: keeps the registry client alive as long as the reference
/// is, so a client that outlives its [`Consumer`] still gets provider updates.
struct RegistryReference {
    inner: Arc<dyn Invoker>,
    _registry: Arc<dyn Registry>,
    /// Its config-center watches last as long as the reference.
    _rules: Arc<registry::config_center::RuleFeed>,
}

// Forwards the inner invoker's future as its own (no second box per call).
impl Invoker for RegistryReference {
    fn url(&self) -> &Url {
        self.inner.url()
    }

    fn is_available(&self) -> bool {
        self.inner.is_available()
    }

    fn invoke<'a, 'f>(
        &'a self,
        invocation: crate::invocation::Invocation,
    ) -> crate::invocation::BoxedCall<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        self.inner.invoke(invocation)
    }

    fn destroy(&self) {
        self.inner.destroy();
    }
}

/// Refers one provider for a reference: the protocol's invoker for the URL the directory
/// computed ([`merge_provider_url`] and the override rules), wrapped in the consumer filter
/// chain.
struct ConsumerInvokerFactory;

#[async_trait::async_trait]
impl InvokerFactory for ConsumerInvokerFactory {
    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>> {
        let protocol = extension::get::<dyn Protocol>(url.protocol())?;
        let invoker = protocol.refer(url).await?;
        crate::filter::build_member_chain(invoker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a provider logs of its exports holds no secret: neither the admin token nor TLS
    /// key material given inline.
    #[test]
    fn exports_are_logged_without_secrets() {
        let (_, seen) = crate::filter::testing::capture(|| async {
            let p = Provider::builder()
                .without_env()
                .no_registry()
                .protocol("dubbo", 0)
                .param(keys::ADMIN_TOKEN, "s3cret-admin")
                .expect("key")
                .param(keys::TLS_KEY, "-----BEGIN PRIVATE KEY----- inline")
                .expect("key")
                .start()
                .await
                .expect("provider");
            p.shutdown().await;
        });
        let text = format!("{:?}", seen.events);
        assert!(text.contains("exported"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("PRIVATE"), "{text}");
    }

    #[test]
    fn check_is_a_wait_in_ms_or_dubbos_boolean() {
        let wait =
            |q: &str| check_wait(&Url::parse(&format!("consumer://h/a.B?{q}")).expect("url"));
        assert_eq!(wait("").expect("default"), Duration::from_millis(3000));
        assert_eq!(wait("check=250").expect("ms"), Duration::from_millis(250));
        assert_eq!(wait("check=false").expect("dubbo false"), Duration::ZERO);
        assert_eq!(
            wait("check=true").expect("dubbo true"),
            Duration::from_millis(3000)
        );
        let err = wait("check=soon").expect_err("not a wait");
        assert!(err.to_string().contains("check"), "{err}");
    }
}
