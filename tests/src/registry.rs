//! Support for the registry tests: which registries to run against, a TCP proxy that can be
//! cut to simulate a registry outage, and the scenarios shared by every registry.
//!
//! Environment read: `RPC_TEST_ZOOKEEPER`, `RPC_TEST_ETCD` and `RPC_TEST_NACOS` (`host:port`
//! of running servers; `scripts/test.sh` starts them and sets them). When one is absent its
//! tests print a loud `SKIPPED` line and pass without running.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::registry::testing::Recorder;
use rpc_core::registry::{self, Category, Registry, RegistryFactory};
use rpc_core::Url;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A registry kind under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `local://` on a fresh temp directory.
    Local,
    /// `zookeeper://` at `RPC_TEST_ZOOKEEPER`.
    Zookeeper,
    /// `etcd://` at `RPC_TEST_ETCD`.
    Etcd,
    /// `nacos://` at `RPC_TEST_NACOS` (an rnacos server in `scripts/test.sh`).
    Nacos,
}

/// A unique name for this test run and call, so tests never see each other's data.
pub fn unique(tag: &str) -> String {
    format!("{tag}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// A unique temp path for a cache file.
pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rpc-it-{}.json", unique(tag)))
}

impl Backend {
    /// The server address of this backend, `None` (after a loud message) when its variable
    /// is not set. `local` needs no server.
    pub fn address(self) -> Option<String> {
        let var = match self {
            Backend::Local => return Some(String::new()),
            Backend::Zookeeper => "RPC_TEST_ZOOKEEPER",
            Backend::Etcd => "RPC_TEST_ETCD",
            Backend::Nacos => "RPC_TEST_NACOS",
        };
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                eprintln!(
                    "\n*** SKIPPED: {var} is not set, so the {self:?} registry test did not run. \
                     Run `bash scripts/test.sh` (it starts ZooKeeper, etcd and rnacos) to run it. ***\n"
                );
                None
            }
        }
    }

    /// A registry URL on a fresh namespace (root or directory) with short timeouts, pointing
    /// at `address`, its provider-list cache in a temp file (never the home directory).
    pub fn url_at(self, address: &str, namespace: &str) -> Url {
        let text = match self {
            Backend::Local => format!(
                "local://{}?poll=50&lease=600",
                std::env::temp_dir()
                    .join("rpc-it-local")
                    .join(namespace)
                    .display()
            ),
            Backend::Zookeeper => {
                format!("zookeeper://{address}?root={namespace}&session=2000&timeout=1000")
            }
            Backend::Etcd => format!("etcd://{address}?root={namespace}&lease=2&timeout=1000"),
            Backend::Nacos => {
                format!("nacos://{address}?namespace={namespace}&poll=200&beat=1000&timeout=1000")
            }
        };
        Url::parse(&text)
            .expect("registry URL")
            .with_param(keys::CACHE_FILE, temp_path(namespace).display())
    }

    /// A registry URL for this backend on a fresh namespace, or `None` (skipped).
    pub fn url(self) -> Option<Url> {
        let address = self.address()?;
        Some(self.url_at(&address, &unique("ns")))
    }

    /// How long after its client dies a registration may still be listed (lease or session
    /// timeout, with room for slow machines).
    pub fn death_bound(self) -> Duration {
        match self {
            Backend::Local => Duration::from_secs(5),
            Backend::Zookeeper => Duration::from_secs(10),
            Backend::Etcd => Duration::from_secs(10),
            // The server's health timeout (3 s in scripts/test.sh) and its check period.
            Backend::Nacos => Duration::from_secs(15),
        }
    }
}

/// A separate registry client for `url` (the factories share clients per URL, so a `client`
/// key tells them apart), without the cache.
pub async fn client(url: &Url, name: &str) -> Arc<dyn Registry> {
    rpc_core::extension::get::<dyn RegistryFactory>(url.protocol())
        .expect("registry extension linked")
        .connect(&url.with_param(keys::CLIENT, name))
        .await
        .expect("connect")
}

/// A provider URL of `interface` on `port`.
pub fn provider(interface: &str, port: u16) -> Url {
    Url::parse(&format!(
        "dubbo://127.0.0.1:{port}/{interface}?side=provider&version=1.0.0"
    ))
    .expect("provider URL")
}

/// A consumer (subscription) URL of `interface`.
pub fn consumer(interface: &str) -> Url {
    Url::parse(&format!("consumer://127.0.0.1/{interface}?side=consumer")).expect("consumer URL")
}

/// Fails the test if the providers list does not satisfy `pred` within `within`.
pub async fn expect_providers(
    rec: &Recorder,
    within: Duration,
    what: &str,
    pred: impl Fn(&[Url]) -> bool,
) -> Vec<Url> {
    match rec.wait_for(Category::Providers, within, pred).await {
        Some(list) => list,
        None => panic!(
            "{what}: not seen within {within:?}; last list: {:?}",
            rec.last(Category::Providers)
        ),
    }
}

/// Scenario: a registration is seen by a subscriber within 2 s, and is gone within 2 s
/// after a graceful unregister.
pub async fn scenario_register_then_unregister(url: Url) {
    let interface = unique("org.example.Visible");
    let prov = client(&url, "provider").await;
    let cons = client(&url, "consumer").await;
    let p = provider(&interface, 20880);

    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    prov.register(&p).await.expect("register");
    expect_providers(&rec, Duration::from_secs(2), "registration", |l| {
        l == std::slice::from_ref(&p)
    })
    .await;
    assert_eq!(
        cons.lookup(&consumer(&interface)).await.expect("lookup"),
        vec![p.clone()]
    );

    prov.unregister(&p).await.expect("unregister");
    expect_providers(&rec, Duration::from_secs(2), "unregistration", |l| {
        l.is_empty()
    })
    .await;
}

/// Scenario: a provider whose client dies without unregistering disappears after the lease
/// or session timeout, while another provider of the same service stays.
pub async fn scenario_dead_client_disappears(url: Url, bound: Duration) {
    let interface = unique("org.example.Dies");
    let cons = client(&url, "consumer").await;
    let survivor = client(&url, "survivor").await;
    let stay = provider(&interface, 20881);
    survivor.register(&stay).await.expect("register");

    let dying = client(&url, "dying").await;
    let gone = provider(&interface, 20882);
    dying.register(&gone).await.expect("register");

    let rec = Recorder::new();
    cons.subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(&rec, Duration::from_secs(2), "both providers", |l| {
        l.len() == 2
    })
    .await;

    drop(dying); // no unregister: its lease or session is left to run out
    let left = expect_providers(&rec, bound, "the dead provider's removal", |l| l.len() == 1).await;
    assert_eq!(left, vec![stay]);
}

/// Fails the test if `registry.services()` does not return `want` within `within`.
pub async fn expect_services(
    registry: &dyn Registry,
    within: Duration,
    what: &str,
    want: &[String],
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = registry.services().await;
        if matches!(&got, Ok(list) if list == want) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: services not {want:?} within {within:?}; last answer: {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scenario: `services` lists, to any client, the interfaces with at least one URL in any
/// category (providers, consumers, routers), sorted, each once; an interface stays listed
/// while one URL is left and disappears with its last one, although the registry may keep
/// its empty folders (ZooKeeper nodes, local directories); a subscription alone lists
/// nothing. `url` must be a fresh namespace.
pub async fn scenario_services_lists_registered_interfaces(url: Url) {
    let prov = client(&url, "provider").await;
    let operator = client(&url, "operator").await;
    assert_eq!(
        operator
            .services()
            .await
            .expect("services of an empty namespace"),
        Vec::<String>::new()
    );

    let with_providers = unique("org.example.ListedProviders");
    let with_consumer = unique("org.example.Outer$ListedConsumer");
    let with_router = unique("org.example.ListedRouter");
    let p1 = provider(&with_providers, 20887);
    let p2 = provider(&with_providers, 20888);
    let c = consumer(&with_consumer);
    let r = Url::parse(&format!(
        "route://0.0.0.0/{with_router}?category=routers&rule=x"
    ))
    .expect("router URL");
    for u in [&p1, &p2, &c, &r] {
        prov.register(u).await.expect("register");
    }
    let mut all = vec![
        with_providers.clone(),
        with_consumer.clone(),
        with_router.clone(),
    ];
    all.sort();
    expect_services(
        operator.as_ref(),
        Duration::from_secs(5),
        "every category",
        &all,
    )
    .await;

    prov.unregister(&p1).await.expect("unregister p1");
    expect_services(
        operator.as_ref(),
        Duration::from_secs(5),
        "one provider left",
        &all,
    )
    .await;

    // A subscription alone (ZooKeeper creates its empty category node) lists nothing.
    operator
        .subscribe(
            &consumer(&unique("org.example.OnlyWatched")),
            Recorder::new(),
        )
        .await
        .expect("subscribe");
    prov.unregister(&p2).await.expect("unregister p2");
    prov.unregister(&r).await.expect("unregister router");
    expect_services(
        operator.as_ref(),
        Duration::from_secs(5),
        "last URLs withdrawn",
        std::slice::from_ref(&with_consumer),
    )
    .await;
}

/// A TCP proxy in front of a registry server that a test can cut and restore on the same
/// port, to simulate the registry going away and coming back.
pub struct Proxy {
    port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Per connection open: while set, what its client sends is held (see [`Proxy::stall`]).
    stalled: Arc<Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
}

impl Proxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Proxy {
            port,
            target: target.to_string(),
            tasks: Arc::new(Mutex::new(Vec::new())),
            stalled: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// The address clients connect to.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let stalled = self.stalled.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                let stalled = {
                    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    if let Ok(mut all) = stalled.lock() {
                        all.push(flag.clone());
                    }
                    flag
                };
                let conn = tokio::spawn(async move {
                    use std::sync::atomic::Ordering;
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = from_client.read(&mut buf).await?;
                            if n == 0 {
                                return to_server.shutdown().await;
                            }
                            while stalled.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            to_server.write_all(&buf[..n]).await?;
                        }
                    };
                    let down = tokio::io::copy(&mut from_server, &mut to_client);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
                if let Ok(mut t) = tasks.lock() {
                    t.push(conn);
                }
            }
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.push(accept);
        }
    }

    /// Closes the listener and every connection: the registry is now unreachable.
    pub fn cut(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            t.drain(..).for_each(|h| h.abort());
        }
    }

    /// Holds what the clients of the connections open now send from now on (the
    /// connections stay open, nothing more reaches the server: a path gone dark); new
    /// connections are forwarded as usual. Requests under way when the proxy is then
    /// [cut](Proxy::cut) are lost with the connection.
    pub fn stall(&self) {
        if let Ok(all) = self.stalled.lock() {
            for flag in all.iter() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let mut last_err = None;
        for _ in 0..50 {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => {
                    self.serve(l);
                    return;
                }
                Err(e) => last_err = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot listen again on port {}: {last_err:?}", self.port);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Scenario (ZooKeeper, etcd): a consumer sees a provider through a proxy, and the list is
/// cached on disk; the registry goes away (proxy cut); the consumer stays silent rather than
/// reporting an empty list; a consumer started during the outage gets the cached list from
/// disk, and `services` lists the interfaces last known; when the registry comes back it sees
/// a provider registered in the meantime.
pub async fn scenario_outage_served_from_cache(backend: Backend) {
    let Some(server) = backend.address() else {
        return;
    };
    let proxy = Proxy::start(&server).await;
    let namespace = unique("ns");
    let cache_file = temp_path("cache");
    let via_proxy = backend
        .url_at(&proxy.address(), &namespace)
        .with_param(keys::CACHE_FILE, cache_file.display());
    let direct = backend.url_at(&server, &namespace);
    let interface = unique("org.example.Outage");
    let p1 = provider(&interface, 20883);
    let p2 = provider(&interface, 20884);

    let prov = client(&direct, "provider").await;
    prov.register(&p1).await.expect("register p1");

    let first = registry::connect(&via_proxy).await.expect("connect");
    let rec = Recorder::new();
    first
        .subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(&rec, Duration::from_secs(5), "p1 through the proxy", |l| {
        l == std::slice::from_ref(&p1)
    })
    .await;
    assert!(cache_file.exists(), "cache file written");
    assert_eq!(
        first.services().await.expect("live services"),
        vec![interface.clone()]
    );

    proxy.cut();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while first.is_available() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!first.is_available(), "outage noticed");
    assert_eq!(
        rec.last(Category::Providers),
        Some(vec![p1.clone()]),
        "an outage is not reported as an empty list"
    );
    drop(first);

    // A consumer restarted during the outage finds p1 in the disk cache.
    // It is served at once, without first waiting out the registry's timeout (1 s here).
    let second = registry::connect(&via_proxy).await.expect("connect");
    let rec2 = Recorder::new();
    let started = tokio::time::Instant::now();
    second
        .subscribe(&consumer(&interface), rec2.clone())
        .await
        .expect("subscribe answered from the cache");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(800),
        "the cached list is served without waiting for the registry: {waited:?}"
    );
    assert_eq!(rec2.last(Category::Providers), Some(vec![p1.clone()]));
    assert!(!second.is_available());
    assert_eq!(
        second
            .services()
            .await
            .expect("services answered from the cache"),
        vec![interface.clone()],
        "an operator still sees the interfaces last known"
    );

    // Meanwhile a new provider arrives; once the registry is back the consumer sees it.
    prov.register(&p2).await.expect("register p2");
    proxy.restore().await;
    let mut want = vec![p1.clone(), p2.clone()];
    want.sort_by_key(|u| u.to_string());
    expect_providers(&rec2, Duration::from_secs(15), "p2 after recovery", |l| {
        l == want.as_slice()
    })
    .await;
    assert!(second.is_available());
    let _ = std::fs::remove_file(cache_file);
}

/// Scenario (ZooKeeper, etcd): the connection drops for less than the session or lease
/// timeout; the subscription keeps working afterwards (watches are re-armed) and the
/// provider registered through the same cut connection stays listed.
pub async fn scenario_brief_disconnect_keeps_watching(backend: Backend) {
    let Some(server) = backend.address() else {
        return;
    };
    let proxy = Proxy::start(&server).await;
    let namespace = unique("ns");
    let via_proxy = backend.url_at(&proxy.address(), &namespace);
    let direct = backend.url_at(&server, &namespace);
    let interface = unique("org.example.Blip");
    let p1 = provider(&interface, 20885);
    let p2 = provider(&interface, 20886);

    let cut_client = client(&via_proxy, "cut").await;
    cut_client.register(&p1).await.expect("register p1");
    let rec = Recorder::new();
    cut_client
        .subscribe(&consumer(&interface), rec.clone())
        .await
        .expect("subscribe");
    expect_providers(&rec, Duration::from_secs(2), "p1", |l| l.len() == 1).await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore().await;

    let other = client(&direct, "other").await;
    other.register(&p2).await.expect("register p2");
    let list = expect_providers(&rec, Duration::from_secs(10), "p2 after the blip", |l| {
        l.len() == 2
    })
    .await;
    assert!(list.contains(&p1) && list.contains(&p2), "{list:?}");
}
