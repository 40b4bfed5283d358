//! Live governance against every registry (embedded, ZooKeeper, etcd, Nacos): rules written
//! into the registry while calls run, in Dubbo's layout (`configurators` and `routers`
//! categories of the service), as an operator or `rpcctl` writes them.
//!
//! - a weight of 0 for one provider and a timeout override take effect within a second, and
//!   removing them restores the old behaviour, with no failed call of the load running
//!   meanwhile;
//! - a condition rule moves the calls; a malformed rule is refused and the calls go on under
//!   the old rules;
//! - a consumer restarted while the registry is unreachable starts with the rules it last saw
//!   (the registry cache on disk keeps them next to the provider list);
//! - the same, with the rules written as Dubbo 2.7+/3 YAML documents into the config center
//!   (`/{root}/config/dubbo/{key}` in ZooKeeper and etcd, a Nacos config, a file of the
//!   embedded registry): a service's configurators (weight 0), an application's
//!   configurators (a timeout), a condition router, a malformed document refused, a
//!   provider-side document, and the consumer restarted during an outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_core::bootstrap::{Consumer, Provider, RunningProvider};
use rpc_core::config::keys;
use rpc_core::registry::config_center::ConfigKey;
use rpc_core::registry::Registry;
use rpc_core::{ErrorKind, Url};
use rpc_tests::registry::{client, temp_path, unique, Backend, Proxy};

/// How long a rule may take to be in force.
const WITHIN: Duration = Duration::from_secs(1);
/// How long a change may take to show when more than a consumer's reading is involved: a
/// provider-side rule's removal (the provider re-registers, then consumers read the registry
/// again), or any change right after a registry outage (the session is set up again first).
const RESTORE_WITHIN: Duration = Duration::from_secs(4);

/// The service of this test.
#[rpc_core::service(name = "org.example.Napper", version = "1.0.0")]
pub trait Napper {
    /// Sleeps `ms`, then names the provider (safe to retry).
    #[idempotent]
    async fn nap(&self, ms: u64) -> String;
    /// The same, not idempotent: never retried, so a timeout shows as it is.
    async fn slow(&self, ms: u64) -> String;
}

struct Named(String);

impl Napper for Named {
    async fn nap(&self, ms: u64) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.0.clone()
    }
    async fn slow(&self, ms: u64) -> String {
        self.nap(ms).await
    }
}

async fn provider(registry: &Url, name: &str) -> RunningProvider {
    Provider::builder()
        .without_env()
        .application("napper")
        .registry(&registry.to_string())
        .expect("registry url")
        .protocol("dubbo", 0)
        .service(NapperServer::new(Named(name.to_string())))
        .start()
        .await
        .expect("provider starts")
}

async fn consumer(registry: &Url) -> NapperClient {
    Consumer::builder()
        .without_env()
        .application("governed")
        .registry(&registry.to_string())
        .expect("registry url")
        .build()
        .await
        .expect("consumer")
        .reference::<NapperClient>()
        .await
        .expect("reference")
}

/// Calls `nap(0)` from 8 tasks until stopped; who answered, and every failure.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &NapperClient) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..8)
            .map(|_| {
                let (client, stop) = (client.clone(), stop.clone());
                let (seen, failures) = (seen.clone(), failures.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match client.nap(0).await {
                            Ok(who) => seen.lock().expect("lock").push((Instant::now(), who)),
                            Err(e) => failures.lock().expect("lock").push(e.to_string()),
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            failures,
            tasks,
        }
    }

    /// Who answered since `since`, with counts.
    fn answers_since(&self, since: Instant) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for (at, who) in self.seen.lock().expect("lock").iter() {
            if *at >= since {
                *out.entry(who.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Waits until the answers of the last quarter second satisfy `pred`; fails when that
    /// takes longer than [`WITHIN`] (plus the window). Returns how long it took.
    async fn expect(&self, what: &str, pred: impl Fn(&HashMap<String, usize>) -> bool) -> Duration {
        self.expect_within(what, WITHIN, pred).await
    }

    /// [`Load::expect`] with a bound of its own.
    async fn expect_within(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&HashMap<String, usize>) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let window = Duration::from_millis(250);
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let since = Instant::now() - window;
            let answers = self.answers_since(since);
            if since > start && answers.values().sum::<usize>() > 10 && pred(&answers) {
                return start.elapsed() - window;
            }
            assert!(
                start.elapsed() < within + window * 2,
                "{what}: not in force within {within:?}; answers in the last {window:?}: {answers:?}"
            );
        }
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
        let failures = self.failures.lock().expect("lock").clone();
        failures
    }
}

fn rule(text: &str) -> Url {
    Url::parse(text).expect("rule URL")
}

/// The condition rule sending every call to the provider on `port`.
fn only_port(port: u16) -> Url {
    let r = rpc_core::url::encode_component(&format!("=> port = {port}"));
    rule(&format!(
        "condition://0.0.0.0/org.example.Napper?category=routers&dynamic=false&force=true&rule={r}"
    ))
}

/// Two providers (`p1`, `p2`) and an operator's registry client on a fresh namespace of a
/// backend; consumers made with [`Fleet::via`] reach the registry through a proxy that can be
/// cut (except for the embedded registry), with a cache file of their own.
struct Fleet {
    backend: Backend,
    namespace: String,
    /// Extra registry URL keys of every client.
    extra: Vec<(&'static str, String)>,
    proxy: Option<Proxy>,
    cache: std::path::PathBuf,
    p1: RunningProvider,
    p2: RunningProvider,
    port1: u16,
    port2: u16,
    operator: Arc<dyn Registry>,
}

impl Fleet {
    /// `None` (skipped loudly) when the backend's server is not configured.
    async fn start(backend: Backend, tag: &str, extra: &[(&'static str, &str)]) -> Option<Fleet> {
        let server = backend.address()?;
        let namespace = unique(tag);
        let extra: Vec<_> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let direct = backend
            .url_at(&server, &namespace)
            .with_params(extra.iter().cloned());
        let proxy = match backend {
            Backend::Local => None,
            _ => Some(Proxy::start(&server).await),
        };
        let p1 = provider(&direct.with_param(keys::CLIENT, "p1"), "p1").await;
        let p2 = provider(&direct.with_param(keys::CLIENT, "p2"), "p2").await;
        let (port1, port2) = (p1.port().expect("port"), p2.port().expect("port"));
        let operator = client(&direct, "operator").await;
        let cache = temp_path(&format!("{namespace}-consumer"));
        Some(Fleet {
            backend,
            namespace,
            extra,
            proxy,
            cache,
            p1,
            p2,
            port1,
            port2,
            operator,
        })
    }

    /// The registry URL of a consumer named `name`.
    fn via(&self, name: &str) -> Url {
        let address = self.proxy.as_ref().map(Proxy::address).unwrap_or_default();
        self.backend
            .url_at(&address, &self.namespace)
            .with_params(self.extra.iter().cloned())
            .with_param(keys::CACHE_FILE, self.cache.display())
            .with_param(keys::CLIENT, name)
    }

    /// A consumer restarted while the registry cannot be reached starts with the rules it
    /// saw: every call of a new consumer goes to p2 while the proxy is cut.
    async fn restart_during_an_outage_keeps_p2(&self, what: &str) {
        let Some(proxy) = &self.proxy else { return };
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
        let restarted = consumer(&self.via("c2")).await;
        for _ in 0..20 {
            assert_eq!(
                restarted.nap(0).await.expect("served from the cache"),
                "p2",
                "{what} is in force"
            );
        }
        proxy.restore().await;
    }

    async fn stop(self) {
        self.p1.shutdown().await;
        self.p2.shutdown().await;
        let _ = std::fs::remove_file(&self.cache);
    }
}

async fn scenario(backend: Backend) {
    let Some(fleet) = Fleet::start(backend, "gov", &[]).await else {
        return;
    };
    let (port1, port2, operator) = (fleet.port1, fleet.port2, &fleet.operator);
    let napper = consumer(&fleet.via("c1")).await;
    let load = Load::start(&napper);
    load.expect("both providers serve", |a| a.len() == 2).await;

    // Drain p1 with a weight of 0, then give it back.
    let drain = rule(&format!(
        "override://127.0.0.1:{port1}/org.example.Napper?category=configurators&dynamic=false&weight=0"
    ));
    operator
        .register(&drain)
        .await
        .expect("write the weight rule");
    let took = load
        .expect("weight 0 drains p1", |a| a.keys().all(|w| w == "p2"))
        .await;
    println!("{backend:?}: weight 0 in force after {took:?}");
    operator
        .unregister(&drain)
        .await
        .expect("remove the weight rule");
    // A weight rule at a provider's address is applied by that provider too, which registers
    // itself with weight 0 (so consumers that read no rules see it); coming back takes the
    // provider's re-registration as well as the consumers' reading, so it gets longer.
    load.expect_within("p1 back without the rule", RESTORE_WITHIN, |a| a.len() == 2)
        .await;

    // A timeout override for every consumer: a 600 ms call fails after about 300 ms.
    napper
        .slow(600)
        .await
        .expect("600 ms is within the 1 s default");
    let timeout = rule(
        "override://0.0.0.0/org.example.Napper?category=configurators&dynamic=false&timeout=300",
    );
    operator
        .register(&timeout)
        .await
        .expect("write the timeout rule");
    let took = until_timeout(&napper, true).await;
    println!("{backend:?}: timeout override in force after {took:?}");
    operator
        .unregister(&timeout)
        .await
        .expect("remove the timeout rule");
    until_timeout(&napper, false).await;

    // A condition rule moves every call to p2; a malformed one next to it is refused whole
    // and the calls stay under the rule in force.
    let to_p2 = only_port(port2);
    operator
        .register(&to_p2)
        .await
        .expect("write the route rule");
    load.expect("the rule moves calls to p2", |a| {
        a.keys().all(|w| w == "p2")
    })
    .await;
    let malformed = rule(
        "condition://0.0.0.0/org.example.Napper?category=routers&dynamic=false&rule=host%20%3D",
    );
    operator
        .register(&malformed)
        .await
        .expect("write the bad rule");
    tokio::time::sleep(WITHIN).await;
    load.expect("calls stay under the good rule", |a| {
        a.keys().all(|w| w == "p2")
    })
    .await;
    operator
        .unregister(&malformed)
        .await
        .expect("remove the bad rule");

    fleet
        .restart_during_an_outage_keeps_p2("the cached route rule")
        .await;

    operator
        .unregister(&to_p2)
        .await
        .expect("remove the route rule");
    // The consumer came through the outage too: its registry session is set up again first.
    load.expect_within("both serve again", RESTORE_WITHIN, |a| a.len() == 2)
        .await;
    let failures = load.stop().await;
    assert!(
        failures.is_empty(),
        "calls failed under the rule changes: {failures:?}"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_registry_rules_apply_live() {
    scenario(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zookeeper_rules_apply_live_and_survive_a_restart() {
    scenario(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_rules_apply_live_and_survive_a_restart() {
    scenario(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nacos_rules_apply_live_and_survive_a_restart() {
    scenario(Backend::Nacos).await;
}

/// Waits until the registry lists the providers of the service as `pred` wants.
async fn until_listed(
    registry: &dyn Registry,
    what: &str,
    pred: impl Fn(&[Url]) -> bool,
) -> Vec<Url> {
    let probe = Url::parse("consumer://127.0.0.1/org.example.Napper").expect("url");
    let start = Instant::now();
    loop {
        let listed = registry.lookup(&probe).await.unwrap_or_default();
        if pred(&listed) {
            return listed;
        }
        assert!(
            start.elapsed() < WITHIN * 2,
            "{what}: the registry lists {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A rule for one provider's address changes what that provider registers: a weight, and
/// `disabled=true` takes it out of the registry until the rule goes.
async fn provider_side(backend: Backend) {
    let Some(server) = backend.address() else {
        return;
    };
    let direct = backend.url_at(&server, &unique("gov-provider"));
    let p = provider(&direct.with_param(keys::CLIENT, "p"), "p").await;
    let port = p.port().expect("port");
    let operator = client(&direct, "operator").await;
    until_listed(&*operator, "the provider", |l| {
        l.len() == 1 && l[0].param(keys::WEIGHT).is_none()
    })
    .await;
    let weight = rule(&format!(
        "override://127.0.0.1:{port}/org.example.Napper?category=configurators&dynamic=false&weight=7"
    ));
    operator.register(&weight).await.expect("write");
    until_listed(&*operator, "registered again with weight 7", |l| {
        l.len() == 1 && l[0].param(keys::WEIGHT) == Some("7")
    })
    .await;
    let disabled = rule(&format!(
        "override://127.0.0.1:{port}/org.example.Napper?category=configurators&dynamic=false&disabled=true"
    ));
    operator.register(&disabled).await.expect("write");
    until_listed(&*operator, "disabled: unregistered", |l| l.is_empty()).await;
    operator.unregister(&disabled).await.expect("remove");
    operator.unregister(&weight).await.expect("remove");
    until_listed(&*operator, "back as exported", |l| {
        l.len() == 1 && l[0].param(keys::WEIGHT).is_none() && l[0].param(keys::DISABLED).is_none()
    })
    .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_registry_provider_side_rules() {
    provider_side(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_provider_side_rules() {
    provider_side(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_provider_side_rules() {
    provider_side(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_provider_side_rules() {
    provider_side(Backend::Nacos).await;
}

/// Writes (or removes, `None`) the rule document `key` in the config center of `registry`.
async fn publish(registry: &Arc<dyn Registry>, key: &str, text: Option<&str>) {
    let key = ConfigKey::rule(registry.url(), key).expect("rule key");
    registry
        .publish_config(&key, text)
        .await
        .unwrap_or_else(|e| panic!("write {key}: {e}"));
}

/// Waits until `slow(600)` fails with a timeout (or, `want_timeout` false, succeeds).
async fn until_timeout(napper: &NapperClient, want_timeout: bool) -> Duration {
    let start = Instant::now();
    loop {
        let t = Instant::now();
        match napper.slow(600).await {
            Err(e) if want_timeout => {
                assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
                assert!(
                    t.elapsed() < Duration::from_millis(550),
                    "the call waited the rule's 300 ms, not the default: {:?}",
                    t.elapsed()
                );
                return start.elapsed();
            }
            Ok(_) if !want_timeout => return start.elapsed(),
            // While the old timeout is still in force, a few timed-out calls in a row may open
            // the circuit of `slow` for a while: its next probe then closes it.
            other => assert!(
                start.elapsed() < WITHIN * 6,
                "the timeout is not {} in time; last answer: {other:?}",
                if want_timeout {
                    "300 ms"
                } else {
                    "back to the default"
                }
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The YAML rules of the config center, applied live; see the module docs.
async fn yaml_scenario(backend: Backend) {
    let Some(fleet) = Fleet::start(backend, "yaml", &[(keys::CONFIG_INTERVAL, "100")]).await else {
        return;
    };
    let (port1, port2, operator) = (fleet.port1, fleet.port2, &fleet.operator);
    let service = "org.example.Napper:1.0.0:";

    let napper = consumer(&fleet.via("c1")).await;
    let load = Load::start(&napper);
    load.expect("both providers serve", |a| a.len() == 2).await;

    // The service's configurators, as Dubbo Admin writes them: p1 drained by weight 0.
    let drain = format!(
        "configVersion: v2.7\nscope: service\nkey: org.example.Napper:1.0.0\nenabled: true\n\
         configs:\n  - addresses: ['127.0.0.1:{port1}']\n    side: provider\n    \
         parameters:\n      weight: 0\n"
    );
    publish(operator, &format!("{service}.configurators"), Some(&drain)).await;
    let took = load
        .expect("a YAML weight 0 drains p1", |a| a.keys().all(|w| w == "p2"))
        .await;
    println!("{backend:?}: YAML weight 0 in force after {took:?}");

    // The consumer application's configurators: a 300 ms timeout.
    let app_timeout = "configVersion: v2.7\nscope: application\nkey: governed\n\
                       configs:\n  - side: consumer\n    parameters:\n      timeout: 300\n";
    publish(operator, "governed.configurators", Some(app_timeout)).await;
    let took = until_timeout(&napper, true).await;
    println!("{backend:?}: YAML application timeout in force after {took:?}");

    // A malformed version of the service's document is refused: its last good rules stay.
    publish(
        operator,
        &format!("{service}.configurators"),
        Some("key: org.example.Napper:1.0.0\nconfigs:\n  - parameters: {weight: heavy}\n"),
    )
    .await;
    tokio::time::sleep(WITHIN).await;
    load.expect("p1 stays drained under the last good document", |a| {
        a.keys().all(|w| w == "p2")
    })
    .await;

    // Removing the documents restores the defaults.
    publish(operator, &format!("{service}.configurators"), None).await;
    publish(operator, "governed.configurators", None).await;
    // As for the registry rule: the provider re-registers without its weight 0 too.
    load.expect_within("p1 back without the document", RESTORE_WITHIN, |a| {
        a.len() == 2
    })
    .await;
    until_timeout(&napper, false).await;

    // A condition router document moves every call to p2.
    let route = format!(
        "scope: service\nforce: true\nruntime: true\nenabled: true\nkey: org.example.Napper:1.0.0\n\
         conditions:\n  - '=> port = {port2}'\n"
    );
    publish(
        operator,
        &format!("{service}.condition-router"),
        Some(&route),
    )
    .await;
    load.expect("the YAML route moves calls to p2", |a| {
        a.keys().all(|w| w == "p2")
    })
    .await;

    // Restarted while the config center cannot be reached: the snapshot's route is in force
    // from the first call.
    fleet
        .restart_during_an_outage_keeps_p2("the cached YAML route")
        .await;

    publish(operator, &format!("{service}.condition-router"), None).await;
    // The consumer came through the outage too: its registry session is set up again first.
    load.expect_within("both serve again", RESTORE_WITHIN, |a| a.len() == 2)
        .await;
    let failures = load.stop().await;
    assert!(
        failures.is_empty(),
        "calls failed under the rule changes: {failures:?}"
    );

    // A provider-side document of the provider's application: p1 registers with weight 7.
    let provider_rule = format!(
        "scope: application\nkey: napper\nconfigs:\n  - side: provider\n    \
         addresses: ['127.0.0.1:{port1}']\n    parameters: {{weight: 7}}\n"
    );
    publish(operator, "napper.configurators", Some(&provider_rule)).await;
    until_listed(
        &**operator,
        "p1 registered with the document's weight",
        |l| {
            l.iter()
                .any(|u| u.port() == Some(port1) && u.param(keys::WEIGHT) == Some("7"))
        },
    )
    .await;
    publish(operator, "napper.configurators", None).await;
    until_listed(&**operator, "p1 back as exported", |l| {
        l.len() == 2 && l.iter().all(|u| u.param(keys::WEIGHT).is_none())
    })
    .await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_registry_yaml_rules_apply_live() {
    yaml_scenario(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zookeeper_yaml_rules_apply_live_and_survive_a_restart() {
    yaml_scenario(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_yaml_rules_apply_live_and_survive_a_restart() {
    yaml_scenario(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nacos_yaml_rules_apply_live_and_survive_a_restart() {
    yaml_scenario(Backend::Nacos).await;
}

/// Degradation and limits follow the rules too: a `mock` override answers for the provider
/// while it is in force; a provider-side `executes=1` rule makes the second concurrent call
/// fail with `LimitExceeded`; both stop when their rule is removed.
async fn mock_and_limits(backend: Backend) {
    let Some(server) = backend.address() else {
        return;
    };
    let direct = backend.url_at(&server, &unique("gov-mock"));
    let p = provider(&direct.with_param(keys::CLIENT, "p"), "p").await;
    let port = p.port().expect("port");
    let operator = client(&direct, "operator").await;
    let napper = consumer(&direct.with_param(keys::CLIENT, "c")).await;
    assert_eq!(napper.nap(0).await.expect("call"), "p");

    let mock = rule(
        "override://0.0.0.0/org.example.Napper?category=configurators&dynamic=false\
         &nap.mock=force%3Areturn%20%22degraded%22",
    );
    operator.register(&mock).await.expect("write the mock rule");
    let until = |want: &'static str| {
        let napper = napper.clone();
        async move {
            let start = Instant::now();
            loop {
                if napper.nap(0).await.expect("call") == want {
                    return start.elapsed();
                }
                assert!(
                    start.elapsed() < WITHIN * 2,
                    "nap() never answered {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    println!(
        "{backend:?}: mock rule in force after {:?}",
        until("degraded").await
    );
    assert_eq!(
        napper.slow(0).await.expect("slow is not mocked"),
        "p",
        "the rule names nap only"
    );
    operator
        .unregister(&mock)
        .await
        .expect("remove the mock rule");
    until("p").await;

    // Two concurrent 300 ms calls: both pass without a limit; one is refused under the rule.
    let pair = || {
        let (a, b) = (napper.clone(), napper.clone());
        async move {
            let (x, y) = tokio::join!(a.slow(300), b.slow(300));
            [x, y]
        }
    };
    assert!(pair().await.iter().all(Result::is_ok), "no limit yet");
    let limit = rule(&format!(
        "override://127.0.0.1:{port}/org.example.Napper?category=configurators&dynamic=false\
         &side=provider&executes=1"
    ));
    operator
        .register(&limit)
        .await
        .expect("write the limit rule");
    let start = Instant::now();
    loop {
        let results = pair().await;
        let refused = results
            .iter()
            .filter(|r| {
                r.as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::LimitExceeded)
            })
            .count();
        if refused == 1 {
            break;
        }
        assert!(
            start.elapsed() < WITHIN * 3,
            "the executes rule is not in force: {results:?}"
        );
    }
    println!(
        "{backend:?}: provider executes rule in force after {:?}",
        start.elapsed()
    );
    operator
        .unregister(&limit)
        .await
        .expect("remove the limit rule");
    let start = Instant::now();
    while !pair().await.iter().all(Result::is_ok) {
        assert!(
            start.elapsed() < WITHIN * 3,
            "the limit did not go with its rule"
        );
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_registry_mock_and_limits_follow_rules() {
    mock_and_limits(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zookeeper_mock_and_limits_follow_rules() {
    mock_and_limits(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_mock_and_limits_follow_rules() {
    mock_and_limits(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nacos_mock_and_limits_follow_rules() {
    mock_and_limits(Backend::Nacos).await;
}

/// ZooKeeper (a data watch) and etcd (a key watch) tell a reader of a rule document about a
/// change at once: with a 30 s read interval, a written, changed and removed document still
/// arrives within a second each time.
async fn documents_are_watched(backend: Backend) {
    use rpc_core::registry::config_center::{watch, ConfigListener};
    struct Seen(Mutex<Vec<Option<String>>>);
    impl ConfigListener for Seen {
        fn changed(&self, _: &ConfigKey, value: Option<&str>) {
            self.0.lock().expect("lock").push(value.map(str::to_string));
        }
    }
    let Some(server) = backend.address() else {
        return;
    };
    let url = backend
        .url_at(&server, &unique("doc-watch"))
        .with_param(keys::CONFIG_INTERVAL, 30_000);
    let registry = client(&url, "reader").await;
    let key =
        ConfigKey::rule(registry.url(), "org.example.Napper:1.0.0:.configurators").expect("key");
    let seen = Arc::new(Seen(Mutex::new(Vec::new())));
    let listener: Arc<dyn ConfigListener> = seen.clone();
    let _watch = watch(&registry, key.clone(), &listener).expect("watch");
    let until = |want: Option<String>| {
        let seen = seen.clone();
        async move {
            let start = Instant::now();
            loop {
                let values = seen.0.lock().expect("lock").clone();
                if values.last() == Some(&want) {
                    return;
                }
                assert!(
                    start.elapsed() < WITHIN,
                    "not told {want:?} within {WITHIN:?}: {values:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    until(None).await;
    let writer = client(&url, "writer").await;
    // Each change is written as soon as the last one was seen: the reader is then between
    // its read and its new watch, and must not miss it.
    for n in 0..10 {
        let text = format!("key: v{n}");
        writer
            .publish_config(&key, Some(&text))
            .await
            .expect("write");
        until(Some(text)).await;
    }
    writer.publish_config(&key, None).await.expect("remove");
    until(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_rule_documents_are_watched_not_only_read_on_an_interval() {
    documents_are_watched(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_rule_documents_are_watched_not_only_read_on_an_interval() {
    documents_are_watched(Backend::Etcd).await;
}
