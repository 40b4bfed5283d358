//! ZooKeeper registry (`zookeeper://host:port`), in Apache Dubbo's node layout so Dubbo
//! tooling can read it:
//!
//! ```text
//! /{root}/{interface}/providers/{Url::dubbo_encoded()}      ephemeral, one per provider
//! /{root}/{interface}/consumers/{Url::dubbo_encoded()}      ephemeral
//! /{root}/{interface}/routers/...  /configurators/...       (same shape)
//! ```
//!
//! A node's name is what Java Dubbo names it, `URLEncoder.encode(url.toFullString())`
//! ([`Url::dubbo_encoded`]), so Dubbo 2.7/3.x consumers, dubbo2.js and dubbo-ssl-python
//! read our providers, and we read theirs (every parameter kept, unknown ones too). A URL
//! with `dynamic=false` gets a persistent node, as in Dubbo. The node's data is the URL text
//! (Dubbo readers only look at the names).
//!
//! Parent nodes are persistent and created as needed; registering a provider also creates
//! the four category nodes of its interface (`providers`, `consumers`, `routers`,
//! `configurators`), which Dubbo consumers expect to exist. An interface whose URLs are all
//! gone keeps its empty nodes; `services` lists only the interfaces with at least one child
//! node in a category node. Link this crate and use
//! `rpc_core::registry::connect(&"zookeeper://127.0.0.1:2181".parse()?)`; because nothing
//! else references it, add `use rpc_registry_zookeeper as _;` so the linker keeps it.
//!
//! Config-center entries (Dubbo 2.7+ rule documents, see
//! `rpc_core::registry::config_center`) are the data of persistent nodes
//! `/{root}/config/{group}/{key}`, where Dubbo's ZooKeeper config center keeps them.
//!
//! URL keys: `root` (default `dubbo`), `session` (session timeout in ms, default 60000, the
//! server clamps it to its own bounds), `timeout` (connection timeout in ms, default 5000),
//! `backup` (more servers, `host:port,host:port`), and digest authentication from the URL's
//! user information (`zookeeper://user:password@host:2181`; nodes then get the creator-only
//! ACL).
//!
//! # Faults
//!
//! Registrations and subscriptions are kept by the client. A background task owns the
//! session: when it expires or closes, the task connects a new session, re-creates every
//! ephemeral node and re-arms every watch. While no session is usable the adapter is silent
//! (no empty list is ever notified because of a fault) and `is_available` is false.
//! Children watches are one-shot in ZooKeeper; each subscription re-arms its watch after every
//! event and notifies the complete list it then reads. Dropping the registry closes its
//! session, so its ephemeral nodes disappear.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::registry::config_center::{check_content, ConfigKey, MAX_CONFIG_BYTES};
use rpc_core::registry::remote::{
    decode_url_list, Backoff, Connection, DubboLayout, Instances, Registrations,
};
use rpc_core::registry::subscriptions::{CategoryWatch, Subscription, Subscriptions};
use rpc_core::registry::{
    decode_interface_segment, Category, NotifyListener, Registry, RegistryFactory,
};
use rpc_core::{RpcError, Url};

type Result<T, E = RpcError> = std::result::Result<T, E>;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

/// Most children read from one category node.
pub const MAX_CHILDREN: usize = 10_000;

/// Creates ZooKeeper registries, one per registry URL while it is in use.
#[derive(Debug, Default)]
pub struct ZookeeperRegistryFactory;

rpc_core::register!(dyn RegistryFactory, "zookeeper", || Arc::new(
    ZookeeperRegistryFactory
));

static INSTANCES: Instances<ZookeeperRegistry> = Instances::new("zookeeper");

#[async_trait::async_trait]
impl RegistryFactory for ZookeeperRegistryFactory {
    /// Returns at once; the session is established in the background (see the crate docs).
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>> {
        Ok(INSTANCES.get_or_start(url, ZookeeperRegistry::start)?)
    }
}

struct Shared {
    url: Url,
    cluster: String,
    layout: DubboLayout,
    session_timeout: Duration,
    connect_timeout: Duration,
    auth: Option<Vec<u8>>,
    /// The current session, when there is one.
    conn: Connection<zk::Client>,
    /// Node path → URL, replayed on every new session.
    registered: Registrations,
    /// Re-armed on every new session.
    subs: Subscriptions,
}

/// A ZooKeeper registry client (see the crate docs).
pub struct ZookeeperRegistry {
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
}

impl Drop for ZookeeperRegistry {
    fn drop(&mut self) {
        self.supervisor.abort();
        self.shared.subs.stop_watches();
        self.shared.conn.clear();
    }
}

/// A ZooKeeper error as an [`RpcError`]: refused credentials or ACLs are `Unauthorized`,
/// everything else `Network`.
fn zk_err(what: &str, e: zk::Error) -> RpcError {
    let kind = match e {
        zk::Error::NoAuth | zk::Error::AuthFailed | zk::Error::InvalidAcl => {
            rpc_core::ErrorKind::Unauthorized
        }
        _ => rpc_core::ErrorKind::Network,
    };
    RpcError::new(kind, format!("zookeeper {what}: {e}")).with_source(e)
}

impl ZookeeperRegistry {
    /// Starts a client for `url` and its session task (needs a tokio runtime).
    pub fn start(url: &Url) -> Result<ZookeeperRegistry> {
        let host = url.host();
        if host.is_empty() {
            return Err(RpcError::config(format!(
                "zookeeper registry URL '{url}' has no host"
            )));
        }
        let mut cluster = format!("{host}:{}", url.port().unwrap_or(2181));
        if let Some(backup) = url.param(keys::BACKUP).filter(|b| !b.is_empty()) {
            cluster.push(',');
            cluster.push_str(backup);
        }
        let auth = url
            .username()
            .map(|u| format!("{u}:{}", url.password().unwrap_or("")).into_bytes());
        let shared = Arc::new(Shared {
            url: url.clone(),
            cluster,
            layout: DubboLayout::from_url(url),
            session_timeout: Duration::from_millis(url.param_as(keys::SESSION, 60_000u64)?),
            connect_timeout: Duration::from_millis(url.param_as(keys::TIMEOUT, 5_000u64)?),
            auth,
            conn: Connection::new(),
            registered: Registrations::new(),
            subs: Subscriptions::new(),
        });
        let supervisor = tokio::spawn(supervise(shared.clone()));
        Ok(ZookeeperRegistry { shared, supervisor })
    }

    /// The id of the current session, if one is established (for tests and diagnostics).
    pub fn session(&self) -> Option<zk::SessionInfo> {
        self.shared.conn.get().map(|c| c.session().clone())
    }
}

impl Shared {
    /// The current client, waiting up to the `timeout` key for the first one (so a start-up
    /// subscription reads the registry rather than the cache when the registry is up).
    async fn wait_client(&self) -> Option<zk::Client> {
        self.conn.wait(self.connect_timeout).await
    }

    /// The current client as [`Shared::wait_client`], or a `Network` error naming the servers.
    async fn require_client(&self) -> Result<zk::Client> {
        self.conn
            .wait_or_fail(self.connect_timeout, || {
                format!("zookeeper {}", self.cluster)
            })
            .await
    }

    fn acls(&self) -> zk::Acls<'static> {
        if self.auth.is_some() {
            zk::Acls::creator_all()
        } else {
            zk::Acls::anyone_all()
        }
    }

    /// The path of the root node (`/` when the root is empty).
    fn root_path(&self) -> &str {
        match self.layout.root() {
            "" => "/",
            root => root,
        }
    }

    /// Whether any category node of `interface` (as its node name `segment`) has a child.
    async fn has_registration(
        &self,
        client: &zk::Client,
        segment: &str,
    ) -> Result<bool, zk::Error> {
        // Sent together, so the four reads cost one round trip.
        let stats: Vec<_> = Category::ALL
            .into_iter()
            .map(|c| client.check_stat(&format!("{}/{segment}/{}", self.layout.root(), c.as_str())))
            .collect();
        let mut any = false;
        for stat in stats {
            if stat.await?.is_some_and(|s| s.num_children > 0) {
                any = true;
            }
        }
        Ok(any)
    }

    /// Creates the persistent parents of `path`.
    async fn ensure_parent(&self, client: &zk::Client, path: &str) -> Result<(), zk::Error> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !parent.is_empty() {
                let opts = zk::CreateMode::Persistent.with_acls(self.acls());
                client.mkdir(parent, &opts).await?;
            }
        }
        Ok(())
    }

    /// Creates the persistent category nodes of `interface` that do not exist yet.
    async fn ensure_categories(
        &self,
        client: &zk::Client,
        interface: &str,
    ) -> Result<(), zk::Error> {
        let opts = zk::CreateMode::Persistent.with_acls(self.acls());
        for category in Category::ALL {
            client
                .mkdir(&self.layout.category_path(interface, category), &opts)
                .await?;
        }
        Ok(())
    }

    /// Creates the node of `url` in this session (ephemeral, or persistent for
    /// `dynamic=false`), replacing a node left by an older session of ours. A provider's
    /// registration first creates the category nodes of its interface.
    /// Creates the node of every recorded registration that `client`'s session lacks (one it
    /// already holds is left as it is).
    async fn replay_registrations(&self, client: &zk::Client) {
        for (path, url) in self.registered.snapshot() {
            if let Err(e) = self.create_node(client, &path, &url).await {
                tracing::warn!(path, error = %e, "zookeeper: cannot re-create registration");
            }
        }
    }

    async fn create_node(
        &self,
        client: &zk::Client,
        path: &str,
        url: &Url,
    ) -> Result<(), zk::Error> {
        let persistent = url.param(keys::DYNAMIC) == Some("false");
        let mode = if persistent {
            zk::CreateMode::Persistent
        } else {
            zk::CreateMode::Ephemeral
        };
        let opts = mode.with_acls(self.acls());
        if Category::of(url) == Category::Providers {
            self.ensure_categories(client, url.interface()).await?;
        }
        let data = url.to_string().into_bytes();
        for _ in 0..3 {
            match client.create(path, &data, &opts).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NoNode) => self.ensure_parent(client, path).await?,
                Err(zk::Error::NodeExists) => match client.check_stat(path).await? {
                    Some(_) if persistent => return Ok(()),
                    Some(stat) if stat.ephemeral_owner == client.session_id().0 => return Ok(()),
                    Some(_) => match client.delete(path, None).await {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(e),
                    },
                    None => {}
                },
                Err(e) => return Err(e),
            }
        }
        Err(zk::Error::NodeExists)
    }

    /// Starts the watch tasks of one subscription in the session of `client`; the receivers
    /// fire once each category's first list was notified.
    fn start_watch(
        self: &Arc<Self>,
        client: &zk::Client,
        sub: &Subscription,
    ) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        self.subs.start(sub, |category, watch| {
            tokio::spawn(watch_category(
                self.clone(),
                client.clone(),
                self.layout.category_path(&sub.interface, category),
                watch,
            ))
        })
    }
}

/// Decodes child node names into URLs, skipping (with a warning) what is not one.
fn decode_children(path: &str, mut children: Vec<String>) -> Vec<Url> {
    if children.len() > MAX_CHILDREN {
        tracing::warn!(
            path,
            count = children.len(),
            "zookeeper: only the first {MAX_CHILDREN} children are read"
        );
        children.truncate(MAX_CHILDREN);
    }
    decode_url_list(path, children.iter().map(String::as_str))
}

/// Lists one category node, notifies its complete list when it changed, and re-arms the
/// one-shot children watch after every event, for as long as the session lives.
async fn watch_category(
    shared: Arc<Shared>,
    client: zk::Client,
    path: String,
    mut watch: CategoryWatch,
) {
    loop {
        match client.list_and_watch_children(&path).await {
            Ok((children, watcher)) => {
                watch.update(decode_children(&path, children));
                let event = watcher.changed().await;
                if event.event_type == zk::EventType::Session && event.session_state.is_terminated()
                {
                    return;
                }
            }
            Err(zk::Error::NoNode) => {
                let probe = format!("{path}/x");
                if let Err(e) = shared.ensure_parent(&client, &probe).await {
                    tracing::debug!(path, error = %e, "zookeeper: cannot create category node");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Err(e) => {
                if client.state().is_terminated() {
                    return;
                }
                tracing::debug!(path, error = %e, "zookeeper: list failed, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Owns the session: connects, replays registrations and watches, and starts over when the
/// session expires or closes.
async fn supervise(shared: Arc<Shared>) {
    let mut backoff = Backoff::registry();
    loop {
        let mut connector = zk::Client::connector()
            .with_session_timeout(shared.session_timeout)
            .with_connection_timeout(shared.connect_timeout);
        if let Some(auth) = &shared.auth {
            connector = connector.with_auth("digest", auth);
        }
        let client = match connector.connect(&shared.cluster).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(registry = %shared.url, error = %e, "zookeeper: cannot connect, retrying");
                shared.conn.set_failure(zk_err("connect", e));
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let started = tokio::time::Instant::now();
        let mut states = client.state_watcher();
        shared.conn.set(client.clone());
        shared.replay_registrations(&client).await;
        for sub in shared.subs.snapshot() {
            drop(shared.start_watch(&client, &sub));
        }
        shared.conn.set_available(true);
        tracing::info!(registry = %shared.url, session = ?client.session_id(), "zookeeper: session established");
        let mut reconnecting = false;
        loop {
            match states.changed().await {
                zk::SessionState::SyncConnected => {
                    shared.conn.set_available(true);
                    // The same session goes on, but a registration made while the connection
                    // was down failed (it was only recorded): put back what is missing.
                    if std::mem::take(&mut reconnecting) {
                        shared.replay_registrations(&client).await;
                    }
                }
                zk::SessionState::ConnectedReadOnly => {
                    shared.conn.set_available(true);
                }
                zk::SessionState::Disconnected => {
                    shared.conn.set_available(false);
                    reconnecting = true;
                }
                terminal => {
                    tracing::warn!(registry = %shared.url, state = %terminal,
                        "zookeeper: session ended; starting a new one");
                    if terminal == zk::SessionState::AuthFailed {
                        shared
                            .conn
                            .set_failure(zk_err("session", zk::Error::AuthFailed));
                    }
                    break;
                }
            }
        }
        shared.conn.set_available(false);
        shared.subs.stop_watches();
        shared.conn.clear();
        // A session that ended quickly (e.g. refused credentials) must not spin.
        if started.elapsed() > Backoff::STABLE {
            backoff.reset();
            tokio::time::sleep(backoff.jitter()).await;
        } else {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

#[async_trait::async_trait]
impl Registry for ZookeeperRegistry {
    fn url(&self) -> &Url {
        &self.shared.url
    }

    fn is_available(&self) -> bool {
        self.shared.conn.is_available()
    }

    /// Records the registration (replayed on every new session) and creates its node now if
    /// a session exists. Fails only when the server refuses the node (e.g. not authorized).
    async fn register(&self, url: &Url) -> Result<()> {
        let path = self.shared.layout.url_path(url);
        self.shared.registered.insert(&path, url);
        let Some(client) = self.shared.wait_client().await else {
            return Ok(());
        };
        match self.shared.create_node(&client, &path, url).await {
            Ok(()) => Ok(()),
            Err(e @ (zk::Error::NoAuth | zk::Error::InvalidAcl | zk::Error::BadArguments(_))) => {
                self.shared.registered.remove(&path);
                Err(zk_err("register", e).with_service(url.service_key()))
            }
            Err(e) => {
                tracing::warn!(path, error = %e, "zookeeper: registration deferred until reconnected");
                Ok(())
            }
        }
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let path = self.shared.layout.url_path(url);
        self.shared.registered.remove(&path);
        let Some(client) = self.shared.conn.get() else {
            return Ok(());
        };
        match client.delete(&path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(zk_err("unregister", e).with_service(url.service_key())),
        }
    }

    /// Records the subscription (re-armed on every new session); with a session, waits until
    /// the current lists were notified (at most the connection timeout).
    async fn subscribe(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Result<()> {
        let shared = &self.shared;
        shared
            .subs
            .subscribe(
                url,
                listener,
                &shared.conn,
                shared.connect_timeout,
                |c, sub| shared.start_watch(c, sub),
            )
            .await;
        Ok(())
    }

    async fn unsubscribe(&self, url: &Url, listener: &Arc<dyn NotifyListener>) -> Result<()> {
        self.shared.subs.remove(url.interface(), listener);
        Ok(())
    }

    /// The data of the node `/{root}/config/{group}/{key}` (Dubbo's ZooKeeper config center).
    async fn get_config(&self, key: &ConfigKey) -> Result<Option<String>> {
        let client = self.shared.require_client().await?;
        let path = key.path(self.shared.layout.root());
        match client.get_data(&path).await {
            Ok((data, _)) => {
                if data.len() > MAX_CONFIG_BYTES {
                    return Err(RpcError::codec(format!(
                        "zookeeper node {path} holds {} bytes, more than {MAX_CONFIG_BYTES}",
                        data.len()
                    )));
                }
                String::from_utf8(data).map(Some).map_err(|_| {
                    RpcError::codec(format!("zookeeper node {path} is not UTF-8 text"))
                })
            }
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(zk_err(&format!("read {path}"), e)),
        }
    }

    /// Reads the entry's node with a one-shot watch set in the same request (or an existence
    /// watch when it is absent): returns at once when it differs from `seen`, else when the
    /// node is created, changed or deleted, or after `within` (also without a session).
    async fn wait_config_change(&self, key: &ConfigKey, seen: Option<&str>, within: Duration) {
        let path = key.path(self.shared.layout.root());
        let change = async {
            let Some(client) = self.shared.conn.get() else {
                return tokio::time::sleep(within).await;
            };
            let watcher = match client.get_and_watch_data(&path).await {
                Ok((data, _, watcher)) => {
                    if seen.map(str::as_bytes) != Some(data.as_slice()) {
                        return;
                    }
                    watcher
                }
                Err(zk::Error::NoNode) => match client.check_and_watch_stat(&path).await {
                    Ok((stat, watcher)) => {
                        if stat.is_some() || seen.is_some() {
                            return;
                        }
                        watcher
                    }
                    Err(_) => return tokio::time::sleep(within).await,
                },
                Err(_) => return tokio::time::sleep(within).await,
            };
            drop(watcher.changed().await);
        };
        let _ = tokio::time::timeout(within, change).await;
    }

    /// Creates or rewrites (persistent node, parents created), or deletes, the entry's node.
    async fn publish_config(&self, key: &ConfigKey, content: Option<&str>) -> Result<()> {
        let client = self.shared.require_client().await?;
        let path = key.path(self.shared.layout.root());
        let what = |e| zk_err(&format!("write {path}"), e);
        let Some(content) = content else {
            return match client.delete(&path, None).await {
                Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                Err(e) => Err(what(e)),
            };
        };
        check_content(key, content)?;
        let opts = zk::CreateMode::Persistent.with_acls(self.shared.acls());
        for _ in 0..3 {
            match client.set_data(&path, content.as_bytes(), None).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(what(e)),
            }
            match client.create(&path, content.as_bytes(), &opts).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NoNode) => self
                    .shared
                    .ensure_parent(&client, &path)
                    .await
                    .map_err(what)?,
                Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(what(e)),
            }
        }
        Err(what(zk::Error::NodeExists))
    }

    async fn lookup(&self, url: &Url) -> Result<Vec<Url>> {
        let client = self.shared.require_client().await?;
        let path = self
            .shared
            .layout
            .category_path(url.interface(), Category::Providers);
        match client.list_children(&path).await {
            Ok(children) => Ok(decode_children(&path, children)),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk_err("lookup", e).with_service(url.service_key())),
        }
    }

    /// The children of the root node that have at least one child in a category node; at
    /// most [`MAX_CHILDREN`] interfaces are looked at.
    async fn services(&self) -> Result<Vec<String>> {
        let client = self.shared.require_client().await?;
        let root = self.shared.root_path();
        let mut children = match client.list_children(root).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(zk_err("services", e)),
        };
        if children.len() > MAX_CHILDREN {
            tracing::warn!(
                path = root,
                count = children.len(),
                "zookeeper: only the first {MAX_CHILDREN} interfaces are listed"
            );
            children.sort();
            children.truncate(MAX_CHILDREN);
        }
        let mut out = Vec::new();
        for segment in children {
            let Some(interface) = decode_interface_segment(&segment) else {
                tracing::warn!(path = root, child = %segment, "zookeeper: skipped a node that is not an interface name");
                continue;
            };
            if self
                .shared
                .has_registration(&client, &segment)
                .await
                .map_err(|e| zk_err("services", e))?
            {
                out.push(interface);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn layout_follows_dubbo() {
        let reg = ZookeeperRegistry::start(
            &Url::parse("zookeeper://127.0.0.1:1?root=/rpc/").expect("url"),
        )
        .expect("start");
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Foo?side=provider").expect("url");
        assert_eq!(
            reg.shared.layout.url_path(&p),
            format!("/rpc/org.Foo/providers/{}", p.dubbo_encoded())
        );
        let c = Url::parse("consumer://10.0.0.2/org.Foo?side=consumer").expect("url");
        assert!(reg
            .shared
            .layout
            .url_path(&c)
            .starts_with("/rpc/org.Foo/consumers/"));
        assert!(!reg.is_available());
    }

    #[test]
    fn children_that_are_not_urls_are_skipped() {
        let good = Url::parse("dubbo://10.0.0.1:20880/org.Foo").expect("url");
        let urls = decode_children(
            "/p",
            vec!["%zz".into(), "plain".into(), good.dubbo_encoded()],
        );
        assert_eq!(urls, vec![good]);
    }

    #[tokio::test]
    async fn services_fail_with_a_network_error_when_unreachable() {
        let reg = ZookeeperRegistry::start(
            &Url::parse("zookeeper://127.0.0.1:1?timeout=100").expect("url"),
        )
        .expect("start");
        let err = reg.services().await.expect_err("no server");
        assert_eq!(err.kind(), rpc_core::ErrorKind::Network);
        assert!(err.to_string().contains("not connected"), "{err}");
    }

    #[test]
    fn a_url_without_host_is_refused() {
        let err = ZookeeperRegistry::start(&Url::parse("zookeeper://").expect("url"))
            .err()
            .expect("no host");
        assert!(err.to_string().contains("no host"), "{err}");
    }
}
