//! Nacos registry (`nacos://host:8848`), in the naming layout Apache Dubbo uses in Nacos, so
//! Dubbo 2.7/3.x applications and ours find each other:
//!
//! ```text
//! service  {category}:{interface}:{version}:{group}     e.g. providers:org.example.Greeter:1.0.0:
//! group    the registry URL's `group` (default DEFAULT_GROUP), namespace its `namespace`
//! instance ip and port of the URL, ephemeral, metadata = the URL's parameters
//!          plus `category`, `protocol` and `path` (what Dubbo's NacosRegistry writes)
//! ```
//!
//! Reading an instance gives back `{protocol}://{ip}:{port}/{path}?{metadata}`, every key
//! kept (unknown ones too) but the `protocol`, `path` and implied `category` keys Dubbo adds.
//! Disabled instances are skipped, and so are unhealthy ones (an instance whose heartbeats
//! stopped). A subscription lists the complete category of one interface, whatever its
//! version and group, like the ZooKeeper and etcd adapters: it reads the service names
//! (`/nacos/v1/ns/service/list`) and the instances of those of its interface
//! (`/nacos/v1/ns/instance/list`) and notifies the list when it changed. It reads again as
//! soon as the server pushes a change, and every `poll` ms in any case: the instance list
//! requests carry a `udpPort` and `clientIP`, so the server sends a UDP datagram when one of
//! those services changes (Nacos v1 push; acknowledged with `push-ack`). Where UDP does not
//! get through, the polling alone keeps the lists current.
//!
//! Link this crate and use
//! `rpc_core::registry::connect(&"nacos://127.0.0.1:8848".parse()?)`; add
//! `use rpc_registry_nacos as _;` so the linker keeps it.
//!
//! Config-center entries (Dubbo 2.7+ rule documents, see
//! `rpc_core::registry::config_center`) are Nacos configs, `dataId={key}` in the entry's
//! group (`dubbo`), read and written through the config API (`/nacos/v1/cs/configs`), as
//! Dubbo's Nacos config center keeps them.
//!
//! URL keys: `namespace` (namespace id, default empty: `public`), `group` (Nacos group name,
//! default `DEFAULT_GROUP`), `timeout` (HTTP request timeout in ms, default 5000), `poll`
//! (ms between two reads of a subscription, default 1000), `beat` (ms between heartbeats,
//! default 5000, as Nacos clients send them), `backup` (more servers, `host:port,host:port`)
//! and Nacos authentication from the URL's user information
//! (`nacos://user:password@host:8848`, a token from `/nacos/v1/auth/login`).
//!
//! # API choice
//!
//! The Nacos v1 open API over plain HTTP/1.1 (`reqwest`): every Nacos server since 1.x and
//! `rnacos` serve it, each call is one small request, and a lost server shows at once as a
//! failed request. Instances are ephemeral: a background task sends a heartbeat
//! (`/nacos/v1/ns/instance/beat`) for each registration every `beat` ms, and the server drops
//! an instance whose heartbeats stop (15 s unhealthy, 30 s deleted by default). Changes come
//! through the v1 UDP push, with polling as the fallback (Nacos v2 would push over its gRPC
//! stream, a larger protocol to carry).
//!
//! # Faults
//!
//! Registrations and subscriptions are kept by the client. The background task checks the
//! server every second; when a request fails it starts over: finds a server that answers,
//! logs in again, registers every instance again and restarts every subscription. While that
//! is not done the adapter is silent (no empty list is ever notified because of a fault) and
//! `is_available` is false. Every answer is bounded ([`MAX_BODY_BYTES`], [`MAX_INSTANCES`],
//! [`MAX_SERVICES`]) and an instance that does not make a URL is skipped with a log line.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use rpc_core::config::keys;
use rpc_core::registry::config_center::{check_content, ConfigKey};
use rpc_core::registry::remote::{Backoff, Connection, Instances, Registrations, MAX_ENTRY_BYTES};
use rpc_core::registry::subscriptions::{CategoryWatch, Subscription, Subscriptions};
use rpc_core::registry::{Category, NotifyListener, Registry, RegistryFactory};
use rpc_core::{ErrorKind, Result, RpcError, Url};
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The Nacos group used when the registry URL names none.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";

/// Largest answer read from the server.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Most instances read from one service.
pub const MAX_INSTANCES: usize = 10_000;

/// Most service names read from one namespace and group.
pub const MAX_SERVICES: usize = 10_000;

/// Most metadata entries read from one instance.
pub const MAX_METADATA: usize = 1_000;

/// Service names read per request.
const SERVICES_PAGE: usize = 1_000;

/// How often the background task checks the server between heartbeats.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Creates Nacos registries, one per registry URL while it is in use.
#[derive(Debug, Default)]
pub struct NacosRegistryFactory;

rpc_core::register!(dyn RegistryFactory, "nacos", || Arc::new(
    NacosRegistryFactory
));

static INSTANCES: Instances<NacosRegistry> = Instances::new("nacos");

#[async_trait::async_trait]
impl RegistryFactory for NacosRegistryFactory {
    /// Returns at once; the server is found in the background (see the crate docs).
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>> {
        Ok(INSTANCES.get_or_start(url, NacosRegistry::start)?)
    }
}

/// The Dubbo service name of `url` in Nacos: `{category}:{interface}:{version}:{group}`,
/// blank version and group written empty (Dubbo's `category + ":" +
/// url.getColonSeparatedKey()`).
pub fn service_name(url: &Url) -> String {
    let part = |key: &str| url.param(key).map(str::trim).unwrap_or("").to_string();
    format!(
        "{}:{}:{}:{}",
        Category::of(url).as_str(),
        url.interface(),
        part(keys::VERSION),
        part(keys::GROUP)
    )
}

/// The category and interface of a Dubbo service name (four `:`-separated segments, a known
/// category, a non-empty interface); `None` for any other service.
pub fn parse_service_name(name: &str) -> Option<(Category, &str)> {
    let mut parts = name.split(':');
    let category = Category::parse(parts.next()?)?;
    let interface = parts.next().filter(|i| !i.trim().is_empty())?;
    let (_version, _group) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((category, interface))
}

/// Metadata key holding a rule's own port (see [`instance_port`]).
const RULE_PORT: &str = "rpc.rule.port";

/// Whether `url` is a rule (`configurators`, `routers`) rather than a provider or consumer.
fn is_rule(url: &Url) -> bool {
    matches!(
        Category::of(url),
        Category::Configurators | Category::Routers
    )
}

/// The port of `url`'s instance. Nacos servers know an instance by its ip and port (rnacos by
/// nothing else), and rules usually share one address (`0.0.0.0`, no port), so each rule is
/// an instance on a port of its own, taken from a hash of the whole URL; its real port
/// travels in the metadata ([`RULE_PORT`]). Providers and consumers keep their own.
fn instance_port(url: &Url) -> u16 {
    if !is_rule(url) {
        return url.port().unwrap_or(0);
    }
    let hash = xxhash_rust::xxh3::xxh3_64(url.to_full_string().as_bytes());
    u16::try_from(hash % 65_535).map_or(1, |p| p + 1)
}

/// The instance metadata of `url`: its parameters plus `category`, `protocol` and `path`,
/// as a JSON object.
fn metadata_of(url: &Url) -> String {
    let mut meta: serde_json::Map<String, Value> = url
        .params()
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    meta.insert(keys::CATEGORY.into(), Category::of(url).as_str().into());
    if is_rule(url) {
        meta.insert(RULE_PORT.into(), url.port().unwrap_or(0).to_string().into());
    }
    meta.insert("protocol".into(), url.protocol().into());
    meta.insert("path".into(), url.path().into());
    Value::Object(meta).to_string()
}

/// The URL of one instance (a JSON object of `/instance/list`) of a service of `interface`;
/// `None`, with the reason, for an instance to skip.
fn instance_url(interface: &str, host: &Value) -> std::result::Result<Option<Url>, String> {
    let flag = |key: &str| host.get(key).and_then(Value::as_bool).unwrap_or(true);
    if !flag("enabled") || !flag("healthy") {
        return Ok(None);
    }
    let ip = host
        .get("ip")
        .and_then(Value::as_str)
        .ok_or("no ip")?
        .trim();
    let port = host
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("no port from 0 to 65535")?;
    let empty = serde_json::Map::new();
    let meta = host
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if meta.len() > MAX_METADATA {
        return Err(format!("{} metadata entries", meta.len()));
    }
    let text = |key: &str| meta.get(key).and_then(Value::as_str);
    let protocol = text("protocol").unwrap_or("dubbo");
    let path = text("path").filter(|p| !p.is_empty()).unwrap_or(interface);
    let ip_text = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    // A rule's instance port is made up; its own port (0: none) is in the metadata.
    let authority = match text(RULE_PORT) {
        Some(p) => match p.parse::<u16>() {
            Ok(0) => ip_text,
            Ok(p) => format!("{ip_text}:{p}"),
            Err(_) => return Err(format!("{RULE_PORT} {p:?} is not a port")),
        },
        None => format!("{ip_text}:{port}"),
    };
    let base = Url::parse(&format!("{protocol}://{authority}")).map_err(|e| e.to_string())?;
    let mut params = BTreeMap::new();
    for (k, v) in meta {
        let Some(v) = v.as_str() else { continue };
        if k.is_empty() || k.len() > MAX_ENTRY_BYTES || v.len() > MAX_ENTRY_BYTES {
            return Err(format!("metadata key '{k:.40}' too long or empty"));
        }
        if k == "protocol" || k == "path" || k == RULE_PORT {
            continue;
        }
        params.insert(k.clone(), v.to_string());
    }
    let mut url = base.with_path(path).with_params(params);
    // Dubbo adds the category to every instance; drop it where the URL implies it anyway.
    if let Some(c) = url.param(keys::CATEGORY) {
        if Category::of(&url.without_param(keys::CATEGORY)).as_str() == c {
            url = url.without_param(keys::CATEGORY);
        }
    }
    Ok(Some(url))
}

/// A usable server: the HTTP client, the server's base address and the login token.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    token: Option<Arc<str>>,
}

impl Client {
    /// One request; the answer's text, or an error naming the call. 401/403 are
    /// `Unauthorized`, another 4xx `Config` (a request the server refuses), everything else
    /// `Network`.
    async fn call(&self, method: Method, path: &str, params: &[(&str, String)]) -> Result<String> {
        let (status, text) = self.send(method.clone(), path, params).await?;
        if status.is_success() {
            return Ok(text);
        }
        // 4xx but 401/403: the server refused this request (it would refuse it again), not a
        // fault of the connection.
        let kind = match status.as_u16() {
            401 | 403 => ErrorKind::Unauthorized,
            400..=499 => ErrorKind::Config,
            _ => ErrorKind::Network,
        };
        Err(RpcError::new(
            kind,
            format!("nacos {method} {path}: HTTP {status}: {:.200}", text.trim()),
        ))
    }

    /// One request; the answer's status and text (bounded), whatever the status.
    async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(reqwest::StatusCode, String)> {
        let url = format!("{}{path}", self.base);
        let mut params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(token) = &self.token {
            params.push(("accessToken", token));
        }
        let req = self.http.request(method.clone(), &url);
        let req = if method == Method::POST || method == Method::PUT {
            req.form(&params)
        } else {
            req.query(&params)
        };
        let fail = |e: reqwest::Error| {
            RpcError::network(format!("nacos {method} {path}: {e}")).with_source(e)
        };
        let mut resp = req.send().await.map_err(fail)?;
        let status = resp.status();
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(RpcError::network(format!(
                    "nacos {method} {path}: answer longer than {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A JSON answer.
    async fn call_json(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Value> {
        let text = self.call(method, path, params).await?;
        serde_json::from_str(&text).map_err(|e| {
            RpcError::network(format!(
                "nacos {path}: answer is not JSON ({e}): {text:.200}"
            ))
        })
    }
}

struct Shared {
    url: Url,
    servers: Vec<String>,
    namespace: String,
    group: String,
    timeout: Duration,
    poll: Duration,
    beat: Duration,
    user: Option<(String, String)>,
    http: reqwest::Client,
    conn: Connection<Client>,
    /// Where the server sends its change datagrams (`clientIP`, `udpPort`), once bound.
    push_addr: std::sync::Mutex<Option<std::net::SocketAddr>>,
    /// Bumped on every datagram from the server: the watches read again.
    pushed: tokio::sync::watch::Sender<u64>,
    /// `{service name}#{address}` → URL, registered again after every reconnection.
    registered: Registrations,
    /// Restarted after every reconnection.
    subs: Subscriptions,
}

/// A Nacos registry client (see the crate docs).
pub struct NacosRegistry {
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
}

impl Drop for NacosRegistry {
    fn drop(&mut self) {
        self.supervisor.abort();
        self.shared.subs.stop_watches();
        self.shared.conn.clear();
    }
}

impl NacosRegistry {
    /// Starts a client for `url` and its background task (needs a tokio runtime).
    pub fn start(url: &Url) -> Result<NacosRegistry> {
        if url.host().is_empty() {
            return Err(RpcError::config(format!(
                "nacos registry URL '{url}' has no host"
            )));
        }
        let mut servers = vec![format!(
            "http://{}",
            url.with_port(url.port().unwrap_or(8848)).address()
        )];
        if let Some(backup) = url.param(keys::BACKUP) {
            servers.extend(
                backup
                    .split(',')
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .map(|b| format!("http://{b}")),
            );
        }
        let timeout = Duration::from_millis(url.param_as(keys::TIMEOUT, 5_000u64)?.max(10));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| RpcError::internal(format!("nacos HTTP client: {e}")).with_source(e))?;
        let shared = Arc::new(Shared {
            url: url.clone(),
            servers,
            namespace: url.param(keys::NAMESPACE).unwrap_or("").trim().to_string(),
            group: url
                .param(keys::GROUP)
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .unwrap_or(DEFAULT_GROUP)
                .to_string(),
            timeout,
            poll: Duration::from_millis(url.param_as(keys::POLL, 1_000u64)?.max(10)),
            beat: Duration::from_millis(url.param_as(keys::BEAT, 5_000u64)?.max(100)),
            user: url
                .username()
                .map(|u| (u.to_string(), url.password().unwrap_or("").to_string())),
            http,
            conn: Connection::new(),
            push_addr: std::sync::Mutex::new(None),
            pushed: tokio::sync::watch::Sender::new(0),
            registered: Registrations::new(),
            subs: Subscriptions::new(),
        });
        let supervisor = tokio::spawn(supervise(shared.clone()));
        Ok(NacosRegistry { shared, supervisor })
    }
}

impl Shared {
    fn key(url: &Url) -> String {
        format!(
            "{}#{}:{}",
            service_name(url),
            url.host(),
            instance_port(url)
        )
    }

    /// The parameters naming a config entry: its data id and group, in this namespace (the
    /// config API calls the namespace `tenant`, empty for `public`).
    fn config_params(&self, key: &ConfigKey) -> Vec<(&'static str, String)> {
        let tenant = if self.namespace == "public" {
            String::new()
        } else {
            self.namespace.clone()
        };
        vec![
            ("dataId", key.key().to_string()),
            ("group", key.group().to_string()),
            ("tenant", tenant),
        ]
    }

    /// The parameters naming a service in this namespace and group.
    fn scope(&self, service: &str) -> Vec<(&'static str, String)> {
        vec![
            ("namespaceId", self.namespace.clone()),
            ("groupName", self.group.clone()),
            ("serviceName", service.to_string()),
        ]
    }

    fn instance_params(&self, url: &Url) -> Vec<(&'static str, String)> {
        let mut params = self.scope(&service_name(url));
        params.extend([
            ("ip", url.host().to_string()),
            ("port", instance_port(url).to_string()),
            ("clusterName", "DEFAULT".to_string()),
            (
                "ephemeral",
                (url.param(keys::DYNAMIC) != Some("false")).to_string(),
            ),
        ]);
        params
    }

    async fn register_instance(&self, client: &Client, url: &Url) -> Result<()> {
        let mut params = self.instance_params(url);
        params.extend([
            ("weight", "1.0".to_string()),
            ("enabled", "true".to_string()),
            ("healthy", "true".to_string()),
            ("metadata", metadata_of(url)),
        ]);
        client
            .call(Method::POST, "/nacos/v1/ns/instance", &params)
            .await?;
        // A server that still holds this ip and port (an instance unregistered a moment ago,
        // registered again with other keys: a rule changed them) may keep its old metadata
        // on a POST; the update makes it current.
        if let Err(e) = client
            .call(Method::PUT, "/nacos/v1/ns/instance", &params)
            .await
        {
            tracing::debug!(error = %e, "nacos: instance update after registering failed");
        }
        Ok(())
    }

    /// One heartbeat for `url`; registers it again when the server no longer knows it.
    async fn beat(&self, client: &Client, url: &Url) -> Result<()> {
        let name = service_name(url);
        let beat = serde_json::json!({
            "cluster": "DEFAULT",
            "ip": url.host(),
            "port": instance_port(url),
            "metadata": serde_json::from_str::<Value>(&metadata_of(url)).unwrap_or(Value::Null),
            "period": u64::try_from(self.beat.as_millis()).unwrap_or(u64::MAX),
            "scheduled": false,
            "serviceName": format!("{}@@{name}", self.group),
            "stopped": false,
            "weight": 1.0,
        });
        let mut params = self.instance_params(url);
        params.push(("beat", beat.to_string()));
        let answer = client
            .call_json(Method::PUT, "/nacos/v1/ns/instance/beat", &params)
            .await?;
        if answer.get("code").and_then(Value::as_i64) == Some(20404) {
            tracing::info!(service = %name, "nacos: instance unknown to the server, registering it again");
            self.replay_registration(client, &Shared::key(url), url)
                .await?;
        }
        Ok(())
    }

    /// Registers a recorded instance again (a new session, a server that forgot it). One the
    /// server refuses (it would refuse it every time: a persistent instance of a service that
    /// has ephemeral ones, say) is dropped with an error log; only a fault of the connection
    /// fails, so that one refused instance never keeps the others from being registered.
    async fn replay_registration(&self, client: &Client, key: &str, url: &Url) -> Result<()> {
        match self.register_instance(client, url).await {
            Err(e) if e.kind() == ErrorKind::Config => {
                tracing::error!(key, error = %e, "nacos: the server refuses this registration; dropped");
                self.registered.remove(key);
                Ok(())
            }
            other => other,
        }
    }

    /// Every service name of this namespace and group, in pages, at most [`MAX_SERVICES`].
    async fn service_names(&self, client: &Client) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for page in 1..=MAX_SERVICES.div_ceil(SERVICES_PAGE) {
            let answer = client
                .call_json(
                    Method::GET,
                    "/nacos/v1/ns/service/list",
                    &[
                        ("namespaceId", self.namespace.clone()),
                        ("groupName", self.group.clone()),
                        ("pageNo", page.to_string()),
                        ("pageSize", SERVICES_PAGE.to_string()),
                    ],
                )
                .await?;
            let doms = answer
                .get("doms")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let got = doms.len();
            out.extend(
                doms.iter()
                    .filter_map(Value::as_str)
                    .filter(|n| n.len() <= MAX_ENTRY_BYTES)
                    .map(str::to_string),
            );
            let count = answer
                .get("count")
                .and_then(Value::as_u64)
                .and_then(|c| usize::try_from(c).ok())
                .unwrap_or(0);
            if got < SERVICES_PAGE || out.len() >= count {
                break;
            }
        }
        if out.len() > MAX_SERVICES {
            tracing::warn!("nacos: only the first {MAX_SERVICES} services are read");
            out.truncate(MAX_SERVICES);
        }
        Ok(out)
    }

    /// The URLs of the live instances of one service of `interface`.
    async fn instances(&self, client: &Client, interface: &str, service: &str) -> Result<Vec<Url>> {
        let mut params = self.scope(service);
        params.push(("healthyOnly", "true".to_string()));
        let push = *self
            .push_addr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(addr) = push {
            params.push(("clientIP", addr.ip().to_string()));
            params.push(("udpPort", addr.port().to_string()));
        }
        let answer = client
            .call_json(Method::GET, "/nacos/v1/ns/instance/list", &params)
            .await?;
        let empty = Vec::new();
        let mut hosts = answer
            .get("hosts")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .as_slice();
        if hosts.len() > MAX_INSTANCES {
            tracing::warn!(
                service,
                count = hosts.len(),
                "nacos: only the first {MAX_INSTANCES} instances are read"
            );
            hosts = &hosts[..MAX_INSTANCES];
        }
        let mut urls = Vec::new();
        for host in hosts {
            match instance_url(interface, host) {
                Ok(Some(u)) => urls.push(u),
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(service, instance = %format!("{host:.200}"), why, "nacos: skipped an instance that is not a URL");
                }
            }
        }
        Ok(urls)
    }

    /// The complete list of one category of `interface`: every version and group, sorted.
    async fn read_category(
        &self,
        client: &Client,
        interface: &str,
        category: Category,
    ) -> Result<Vec<Url>> {
        let mut urls = Vec::new();
        for name in self.service_names(client).await? {
            if parse_service_name(&name) == Some((category, interface)) {
                urls.extend(self.instances(client, interface, &name).await?);
            }
        }
        urls.sort_by_key(|u| u.to_string());
        urls.dedup();
        Ok(urls)
    }

    /// The interfaces with at least one live instance in a Dubbo service, sorted.
    async fn services(&self, client: &Client) -> Result<Vec<String>> {
        let mut by_interface: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in self.service_names(client).await? {
            if let Some((_, interface)) = parse_service_name(&name) {
                by_interface
                    .entry(interface.to_string())
                    .or_default()
                    .push(name.clone());
            }
        }
        let mut out = Vec::new();
        for (interface, names) in by_interface {
            for name in names {
                if !self.instances(client, &interface, &name).await?.is_empty() {
                    out.push(interface.clone());
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Starts the watch tasks of one subscription on `client`; the receivers fire once each
    /// category's first list was notified.
    fn start_watch(
        self: &Arc<Self>,
        client: &Client,
        sub: &Subscription,
    ) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        self.subs.start(sub, |category, watch| {
            tokio::spawn(watch_category(
                self.clone(),
                client.clone(),
                sub.interface.clone(),
                category,
                watch,
            ))
        })
    }

    /// A server that answers, logged in: the first of the servers that does.
    async fn connect(&self) -> Result<Client> {
        let mut last = None;
        for base in &self.servers {
            let mut client = Client {
                http: self.http.clone(),
                base: Arc::from(base.as_str()),
                token: None,
            };
            let attempt = async {
                if let Some((user, password)) = &self.user {
                    let answer = client
                        .call_json(
                            Method::POST,
                            "/nacos/v1/auth/login",
                            &[("username", user.clone()), ("password", password.clone())],
                        )
                        .await?;
                    let token = answer
                        .get("accessToken")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            RpcError::new(
                                ErrorKind::Unauthorized,
                                "nacos login gave no accessToken",
                            )
                        })?;
                    client.token = Some(Arc::from(token));
                }
                self.probe(&client).await?;
                Ok::<_, RpcError>(client.clone())
            };
            match attempt.await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RpcError::network("nacos: no server configured")))
    }

    /// One cheap read, to tell whether the server answers.
    async fn probe(&self, client: &Client) -> Result<()> {
        client
            .call(
                Method::GET,
                "/nacos/v1/ns/service/list",
                &[
                    ("namespaceId", self.namespace.clone()),
                    ("groupName", self.group.clone()),
                    ("pageNo", "1".to_string()),
                    ("pageSize", "1".to_string()),
                ],
            )
            .await
            .map(|_| ())
    }

    async fn require_client(&self) -> Result<Client> {
        self.conn
            .wait_or_fail(self.timeout, || format!("nacos {:?}", self.servers))
            .await
    }
}

/// Reads one category every `poll` ms and notifies it when it changed, for as long as the
/// connection lives; a failed read is retried at the next round (the supervisor notices a
/// lost server).
async fn watch_category(
    shared: Arc<Shared>,
    client: Client,
    interface: String,
    category: Category,
    mut watch: CategoryWatch,
) {
    let mut pushed = shared.pushed.subscribe();
    loop {
        pushed.mark_unchanged();
        match shared.read_category(&client, &interface, category).await {
            Ok(urls) => {
                watch.update(urls);
            }
            Err(e) => {
                tracing::debug!(interface, %category, error = %e, "nacos: read failed, retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.poll) => {}
            _ = pushed.changed() => {}
        }
    }
}

/// The local address the server can send datagrams to: the one this host uses towards the
/// first server (no packet is sent to find it).
fn local_address_towards(server: &str) -> Option<std::net::IpAddr> {
    let host_port = server.strip_prefix("http://")?;
    let probe = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    probe.connect(host_port).ok()?;
    Some(probe.local_addr().ok()?.ip())
}

/// Receives the server's change datagrams: each one wakes the watches and is acknowledged
/// (`push-ack`). Runs for as long as the registry; without a usable socket it does nothing.
async fn receive_pushes(shared: Arc<Shared>) {
    let Some(ip) = shared
        .servers
        .first()
        .and_then(|s| local_address_towards(s))
    else {
        std::future::pending::<()>().await;
        return;
    };
    let socket = match UdpSocket::bind((ip, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(error = %e, "nacos: no UDP socket for pushes; polling only");
            std::future::pending::<()>().await;
            return;
        }
    };
    if let Ok(addr) = socket.local_addr() {
        *shared
            .push_addr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(addr);
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        shared.pushed.send_modify(|n| *n = n.wrapping_add(1));
        // Plain JSON carries the time to acknowledge; a gzip-compressed one is acknowledged
        // with 0 (the server only needs to hear back).
        let last = serde_json::from_slice::<Value>(&buf[..len])
            .ok()
            .and_then(|v| v.get("lastRefTime").cloned())
            .unwrap_or(Value::from(0));
        let ack = serde_json::json!({"type": "push-ack", "lastRefTime": last, "data": ""});
        let _ = socket.send_to(ack.to_string().as_bytes(), from).await;
    }
}

/// Finds a server, registers and subscribes everything, sends the heartbeats; starts over
/// with backoff when the server is lost.
async fn supervise(shared: Arc<Shared>) {
    tokio::select! {
        () = reconnect_forever(&shared) => {}
        () = receive_pushes(shared.clone()) => {}
    }
}

async fn reconnect_forever(shared: &Arc<Shared>) {
    let mut backoff = Backoff::registry();
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = run_session(shared).await {
            tracing::warn!(registry = %shared.url, error = %e, "nacos: server lost, starting over");
            shared.conn.set_failure(e);
        }
        if started.elapsed() > Backoff::STABLE {
            backoff.reset();
        }
        shared.conn.set_available(false);
        shared.subs.stop_watches();
        shared.conn.clear();
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One server, until a request to it fails (it never returns `Ok`).
async fn run_session(shared: &Arc<Shared>) -> Result<()> {
    let client = shared.connect().await?;
    shared.conn.set(client.clone());
    for (key, url) in shared.registered.snapshot() {
        shared.replay_registration(&client, &key, &url).await?;
    }
    for sub in shared.subs.snapshot() {
        drop(shared.start_watch(&client, &sub));
    }
    shared.conn.set_available(true);
    tracing::info!(registry = %shared.url, server = %client.base, "nacos: connected");
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(PROBE_EVERY.min(shared.beat)).await;
        if last_beat.elapsed() + Duration::from_millis(5) >= shared.beat {
            last_beat = tokio::time::Instant::now();
            let regs = shared.registered.snapshot();
            if regs.is_empty() {
                shared.probe(&client).await?;
            }
            // Persistent instances (`dynamic=false`) live without heartbeats.
            for (_, url) in regs
                .iter()
                .filter(|(_, u)| u.param(keys::DYNAMIC) != Some("false"))
            {
                shared.beat(&client, url).await?;
            }
        } else {
            shared.probe(&client).await?;
        }
    }
}

#[async_trait::async_trait]
impl Registry for NacosRegistry {
    fn url(&self) -> &Url {
        &self.shared.url
    }

    fn is_available(&self) -> bool {
        self.shared.conn.is_available()
    }

    /// Records the registration (registered again after every reconnection) and registers
    /// the instance now when a server answers. Fails only when the server refuses it.
    async fn register(&self, url: &Url) -> Result<()> {
        let key = Shared::key(url);
        self.shared.registered.insert(&key, url);
        let Some(client) = self.shared.conn.wait(self.shared.timeout).await else {
            return Ok(());
        };
        match self.shared.register_instance(&client, url).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Config) => {
                self.shared.registered.remove(&key);
                Err(e.with_service(url.service_key()))
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "nacos: registration deferred until reconnected");
                Ok(())
            }
        }
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        self.shared.registered.remove(&Shared::key(url));
        let Some(client) = self.shared.conn.get() else {
            return Ok(());
        };
        let params = self.shared.instance_params(url);
        client
            .call(Method::DELETE, "/nacos/v1/ns/instance", &params)
            .await
            .map(|_| ())
            .map_err(|e| e.with_service(url.service_key()))
    }

    /// Records the subscription (restarted after every reconnection); when connected, waits
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
        self.shared
            .read_category(&client, url.interface(), Category::Providers)
            .await
            .map_err(|e| e.with_service(url.service_key()))
    }

    /// The interfaces with at least one live instance in a Dubbo-named service of this
    /// namespace and group.
    async fn services(&self) -> Result<Vec<String>> {
        let client = self.shared.require_client().await?;
        self.shared.services(&client).await
    }

    /// The config `dataId={key}` of `group` in this namespace (Dubbo's Nacos config center);
    /// `None` when the server has none (HTTP 404).
    async fn get_config(&self, key: &ConfigKey) -> Result<Option<String>> {
        let client = self.shared.require_client().await?;
        let path = "/nacos/v1/cs/configs";
        let (status, text) = client
            .send(Method::GET, path, &self.shared.config_params(key))
            .await?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            let kind = if matches!(status.as_u16(), 401 | 403) {
                ErrorKind::Unauthorized
            } else {
                ErrorKind::Network
            };
            return Err(RpcError::new(
                kind,
                format!(
                    "nacos GET {path} ({key}): HTTP {status}: {:.200}",
                    text.trim()
                ),
            ));
        }
        check_content(key, &text)?;
        Ok(Some(text))
    }

    /// Publishes (POST) or removes (DELETE) the config `dataId={key}` of `group`.
    async fn publish_config(&self, key: &ConfigKey, content: Option<&str>) -> Result<()> {
        let client = self.shared.require_client().await?;
        let mut params = self.shared.config_params(key);
        let method = match content {
            Some(c) => {
                check_content(key, c)?;
                params.push(("content", c.to_string()));
                params.push(("type", "yaml".to_string()));
                Method::POST
            }
            None => Method::DELETE,
        };
        let answer = client.call(method, "/nacos/v1/cs/configs", &params).await?;
        if answer.trim() != "true" {
            return Err(RpcError::network(format!(
                "nacos refused config {key}: {:.200}",
                answer.trim()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn service_names_follow_dubbo() {
        let p = url("dubbo://10.0.0.1:20880/org.example.Greeter?version=1.0.0&side=provider");
        assert_eq!(service_name(&p), "providers:org.example.Greeter:1.0.0:");
        let g = p.with_param("group", "blue").without_param("version");
        assert_eq!(service_name(&g), "providers:org.example.Greeter::blue");
        let c = url("consumer://10.0.0.2/org.example.Greeter?side=consumer");
        assert_eq!(service_name(&c), "consumers:org.example.Greeter::");
        assert_eq!(
            parse_service_name("providers:org.example.Greeter:1.0.0:"),
            Some((Category::Providers, "org.example.Greeter"))
        );
        for other in [
            "providers:org.example.Greeter",
            "providers:org.example.Greeter:1:g:x",
            "bogus:org.example.Greeter::",
            "providers:::",
            "my-spring-app",
        ] {
            assert_eq!(parse_service_name(other), None, "{other}");
        }
    }

    #[test]
    fn instances_give_back_the_registered_url() {
        let p = url(
            "dubbo://10.0.0.1:20880/org.example.Greeter?version=1.0.0&side=provider&note=a b&greet.timeout=5",
        );
        let meta: Value = serde_json::from_str(&metadata_of(&p)).expect("json");
        assert_eq!(meta["category"], "providers");
        assert_eq!(meta["protocol"], "dubbo");
        assert_eq!(meta["path"], "org.example.Greeter");
        let host = serde_json::json!({
            "ip": "10.0.0.1", "port": 20880, "healthy": true, "enabled": true, "metadata": meta,
        });
        assert_eq!(
            instance_url("org.example.Greeter", &host).expect("valid"),
            Some(p)
        );
        // A Dubbo consumer keeps its category, an unknown key stays.
        let dubbo = serde_json::json!({
            "ip": "::1", "port": 0, "metadata": {
                "category": "consumers", "protocol": "consumer", "side": "consumer",
                "path": "org.example.Greeter", "x-unknown": "kept", "n": 1,
            },
        });
        let c = instance_url("org.example.Greeter", &dubbo)
            .expect("valid")
            .expect("enabled");
        assert_eq!(c.address(), "[::1]:0");
        assert_eq!(c.param("x-unknown"), Some("kept"));
        assert_eq!(c.param("category"), None, "implied by side=consumer");
        assert_eq!(c.param("n"), None, "only text values");
    }

    #[test]
    fn rules_sharing_an_address_are_instances_of_their_own_and_read_back_whole() {
        let a = url("override://0.0.0.0/org.example.Greeter?category=configurators&timeout=300");
        let b = url("override://0.0.0.0/org.example.Greeter?category=configurators&weight=0");
        let c =
            url("override://10.0.0.1:20880/org.example.Greeter?category=configurators&weight=0");
        assert_ne!(instance_port(&a), instance_port(&b));
        assert_ne!(Shared::key(&a), Shared::key(&b));
        for rule in [a, b, c] {
            let meta: Value = serde_json::from_str(&metadata_of(&rule)).expect("json");
            let host = serde_json::json!({
                "ip": rule.host(), "port": instance_port(&rule), "metadata": meta,
            });
            assert_eq!(
                instance_url("org.example.Greeter", &host).expect("valid"),
                Some(rule)
            );
        }
        let p = url("dubbo://10.0.0.1:20880/org.example.Greeter?side=provider");
        assert_eq!(instance_port(&p), 20880, "providers keep their port");
        let bad = serde_json::json!({"ip": "0.0.0.0", "port": 9, "metadata": {RULE_PORT: "x"}});
        assert!(instance_url("I", &bad).is_err());
    }

    #[test]
    fn bad_instances_are_skipped() {
        let disabled = serde_json::json!({"ip": "10.0.0.1", "port": 1, "enabled": false});
        assert_eq!(instance_url("I", &disabled), Ok(None));
        let sick = serde_json::json!({"ip": "10.0.0.1", "port": 1, "healthy": false});
        assert_eq!(instance_url("I", &sick), Ok(None));
        for bad in [
            serde_json::json!({"port": 1}),
            serde_json::json!({"ip": "10.0.0.1", "port": 70000}),
            serde_json::json!({"ip": "a b", "port": 1}),
            serde_json::json!({"ip": "10.0.0.1", "port": 1, "metadata": {"protocol": "9x"}}),
            serde_json::json!({"ip": "10.0.0.1", "port": 1, "metadata": {"": "v"}}),
        ] {
            assert!(instance_url("I", &bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn unreachable_server_fails_with_a_network_error() {
        let reg = NacosRegistry::start(&url("nacos://127.0.0.1:1?timeout=100&namespace=x&group=g"))
            .expect("start");
        assert_eq!(reg.shared.namespace, "x");
        assert_eq!(reg.shared.group, "g");
        assert_eq!(reg.shared.servers, vec!["http://127.0.0.1:1"]);
        let err = reg.services().await.expect_err("no server");
        assert_eq!(err.kind(), ErrorKind::Network);
        assert!(err.to_string().contains("not connected"), "{err}");
        assert!(!reg.is_available());
        let default =
            NacosRegistry::start(&url("nacos://127.0.0.1?backup=127.0.0.1:2")).expect("start");
        assert_eq!(default.shared.group, DEFAULT_GROUP);
        assert_eq!(
            default.shared.servers,
            vec!["http://127.0.0.1:8848", "http://127.0.0.1:2"]
        );
    }

    /// A Nacos v1 server stand-in for the push: answers the service list with one Dubbo
    /// service and the instance list with `hosts`, and records the `clientIP`/`udpPort` a
    /// list request announces.
    struct PushingServer {
        port: u16,
        hosts: Arc<std::sync::Mutex<Value>>,
        listener: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    }

    impl PushingServer {
        async fn start(hosts: Value) -> PushingServer {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = tcp.local_addr().expect("addr").port();
            let hosts = Arc::new(std::sync::Mutex::new(hosts));
            let listener = Arc::new(std::sync::Mutex::new(None));
            let (h, l) = (hosts.clone(), listener.clone());
            tokio::spawn(async move {
                while let Ok((mut conn, _)) = tcp.accept().await {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    let arg = |k: &str| {
                        query
                            .split('&')
                            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                            .map(str::to_string)
                    };
                    let body = match path {
                        "/nacos/v1/ns/service/list" => {
                            serde_json::json!({"count": 1, "doms": ["providers:a.B:1.0.0:"]})
                                .to_string()
                        }
                        "/nacos/v1/ns/instance/list" => {
                            if let (Some(ip), Some(port)) = (arg("clientIP"), arg("udpPort")) {
                                if let Ok(addr) = format!("{ip}:{port}").parse() {
                                    *l.lock().expect("lock") = Some(addr);
                                }
                            }
                            let hosts = h.lock().expect("lock").clone();
                            serde_json::json!({"name": "DEFAULT_GROUP@@providers:a.B:1.0.0:", "hosts": hosts})
                                .to_string()
                        }
                        _ => "ok".to_string(),
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                }
            });
            PushingServer {
                port,
                hosts,
                listener,
            }
        }
    }

    /// A Nacos stand-in that refuses (HTTP 400) to register an instance on port 20999, accepts
    /// everything else, and records each request as `METHOD path body`.
    async fn refusing_server() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = tcp.accept().await {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                let complete = |r: &[u8]| {
                    let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else {
                        return false;
                    };
                    let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    r.len() >= end + 4 + len
                };
                while !complete(&req) && req.len() < 65536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let first = text.lines().next().unwrap_or("").to_string();
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                let mut words = first.split_whitespace();
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let path = target.split('?').next().unwrap_or("");
                log.lock()
                    .expect("lock")
                    .push(format!("{method} {path} {body}"));
                let refused = method == "POST"
                    && path == "/nacos/v1/ns/instance"
                    && body.contains("port=20999");
                let (status, answer) = if refused {
                    (
                        "400 Bad Request",
                        "caused: is ephemeral service, can't register persistent instance"
                            .to_string(),
                    )
                } else if path == "/nacos/v1/ns/instance/beat" {
                    (
                        "200 OK",
                        r#"{"clientBeatInterval":5000,"code":10200}"#.to_string(),
                    )
                } else {
                    ("200 OK", "ok".to_string())
                };
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                            answer.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        (port, seen)
    }

    /// An instance the server refuses to register fails its `register` and is not kept
    /// (registered again after every reconnection, it would stop every other one from being
    /// registered); the other instances are registered and beat.
    #[tokio::test]
    async fn a_refused_registration_fails_and_is_not_kept() {
        let (port, seen) = refusing_server().await;
        let reg = NacosRegistry::start(&url(&format!(
            "nacos://127.0.0.1:{port}?timeout=1000&beat=200"
        )))
        .expect("start");
        let refused = url("dubbo://10.0.0.9:20999/a.B?version=1.0.0&dynamic=false");
        let e = reg.register(&refused).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("HTTP 400"), "{e}");
        assert!(reg.shared.registered.snapshot().is_empty(), "not kept");
        let good = url("dubbo://10.0.0.9:20880/a.B?version=1.0.0");
        reg.register(&good).await.expect("registered");
        tokio::time::sleep(Duration::from_millis(800)).await;
        let seen = seen.lock().expect("lock").clone();
        assert!(
            seen.iter()
                .any(|r| r.starts_with("PUT /nacos/v1/ns/instance/beat") && r.contains("20880")),
            "{seen:?}"
        );
    }

    fn host(port: u16) -> Value {
        serde_json::json!({"ip": "127.0.0.1", "port": port, "healthy": true, "enabled": true,
            "metadata": {"protocol": "dubbo", "path": "a.B", "side": "provider", "version": "1.0.0"}})
    }

    #[tokio::test]
    async fn a_pushed_change_is_read_at_once_and_acknowledged() {
        use rpc_core::registry::testing::Recorder;
        let server = PushingServer::start(Value::Array(vec![host(20001)])).await;
        // Polling every 10 minutes: only the push can bring the change within the test.
        let reg = NacosRegistry::start(&url(&format!(
            "nacos://127.0.0.1:{}?poll=600000&timeout=1000",
            server.port
        )))
        .expect("start");
        let rec = Recorder::new();
        reg.subscribe(&url("consumer://127.0.0.1/a.B?side=consumer"), rec.clone())
            .await
            .expect("subscribe");
        rec.wait_for(Category::Providers, Duration::from_secs(5), |l| {
            l.len() == 1
        })
        .await
        .expect("the first read");
        let target = server
            .listener
            .lock()
            .expect("lock")
            .expect("the list request announced clientIP and udpPort");
        *server.hosts.lock().expect("lock") = Value::Array(vec![host(20001), host(20002)]);
        // The datagram Nacos sends: type `dom`, the service's new data, a reference time.
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let push = serde_json::json!({"type": "dom", "data": "{}", "lastRefTime": 424242});
        udp.send_to(push.to_string().as_bytes(), target)
            .await
            .expect("push");
        let both = rec
            .wait_for(Category::Providers, Duration::from_secs(3), |l| {
                l.len() == 2
            })
            .await;
        assert!(both.is_some(), "the pushed change was not read");
        let mut ack = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(3), udp.recv_from(&mut ack))
            .await
            .expect("an acknowledgement")
            .expect("recv");
        let ack: Value = serde_json::from_slice(&ack[..n]).expect("JSON ack");
        assert_eq!(ack["type"], "push-ack");
        assert_eq!(ack["lastRefTime"], 424242);
    }

    #[test]
    fn a_url_without_host_is_refused() {
        let err = NacosRegistry::start(&url("nacos://"))
            .err()
            .expect("no host");
        assert!(err.to_string().contains("no host"), "{err}");
    }
}
