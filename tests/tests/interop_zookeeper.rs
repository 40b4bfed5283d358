//! ZooKeeper entries as Apache Dubbo writes and reads them: the stock clients dubbo-ssl-python
//! 0.9.6 (on kazoo 2.11.0) and dubbo2.js 2.3.9 (on node-zookeeper-client) find a provider this
//! framework registered and call it; our consumer finds and calls a stock provider registered
//! with the URL Java Dubbo writes; the adapter reads nodes written by Java Dubbo and dubbo2.js
//! with every key they carry.
//!
//! Needs `RPC_TEST_ZOOKEEPER` (a server) and, for the stock peers, `RPC_TEST_INTEROP_DIR`
//! (`scripts/test.sh` installs them under `target/`; see `rpc_tests::peers`). Without them
//! the tests skip loudly; in CI (`CI=true`) a peer that could not be installed fails the test.

use std::time::Duration;

use rpc_core::registry::testing::Recorder;
use rpc_core::registry::Category;
use rpc_core::url::java_url_encode;
use rpc_core::Url;
use rpc_tests::peers;
use rpc_tests::registry::{client, consumer, temp_path, unique, Backend};
use zookeeper_client as zk;

/// A Java-style provider node name (`URLEncoder.encode(url.toFullString(), "UTF-8")`).
const JAVA_PROVIDER_NODE: &str = "dubbo%3A%2F%2F127.0.0.1%3A20997%2Forg.example.Greeter%3Fanyhost%3Dtrue%26application%3Djava-like%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dynamic%3Dtrue%26generic%3Dfalse%26interface%3Dorg.example.Greeter%26methods%3Dgreet%26pid%3D1234%26release%3D3.2.0%26revision%3D1.0.0%26side%3Dprovider%26timestamp%3D1700000000000%26version%3D1.0.0";

/// The consumer URL dubbo2.js 2.3.9 registers.
const DUBBO2_JS_CONSUMER: &str = "consumer://192.0.2.2/org.example.Greeter?interface=org.example.Greeter&application=node-consumer&category=consumers&method=&revision=&version=1.0.0&group=&side=consumer&check=false";

/// The stock clients know the default root `/dubbo` only, so the tests that register there
/// take turns: a client must find the provider its test started, not another test's.
static DEFAULT_ROOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a stock peer may take.
const PEER_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_ssl_python_finds_our_provider_in_zookeeper_and_calls_it() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let Some(dir) = peers::dir() else {
        return;
    };
    // The stock client knows only the default root, /dubbo.
    let _turn = DEFAULT_ROOT.lock().await;
    let cache = temp_path("interop-cache");
    let registry = format!(
        "zookeeper://{address}?session=4000&timeout=2000&cache.file={}",
        cache.display()
    );
    let provider = rpc_tests::greeter::provider(&registry, "py", 0).await;
    let port = provider.port().expect("bound port");
    let ours = format!("127.0.0.1:{port}");

    let mut cmd = peers::python_script(&dir, "zk_discover.py");
    cmd.args([&address, "org.example.Greeter", "1.0.0", "ann"]);
    let (ok, python_out) = peers::run(cmd, PEER_WITHIN).await;
    assert!(ok, "dubbo-ssl-python failed: {python_out}");
    println!("dubbo-ssl-python found: {python_out}");
    let found: serde_json::Value = serde_json::from_str(python_out.trim()).expect("JSON");
    let hosts: Vec<&str> = found["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    assert!(
        hosts.contains(&ours.as_str()),
        "dubbo-ssl-python did not find our provider {ours}: {python_out}"
    );
    let ours_parsed = found["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["host"] == ours.as_str())
        .expect("our provider among the parsed ones");
    let fields = &ours_parsed["fields"];
    for (key, want) in [
        ("dubbo", "2.0.2"),
        ("interface", "org.example.Greeter"),
        ("side", "provider"),
        ("version", "1.0.0"),
        ("revision", "1.0.0"),
        ("anyhost", "false"),
        ("deprecated", "false"),
        ("dynamic", "true"),
        ("generic", "false"),
        // What a Dubbo consumer must use; ours read their own choice from rpc.serialization.
        ("serialization", "hessian2"),
        ("rpc.serialization", "msgpack"),
    ] {
        assert_eq!(fields[key], want, "{key} as dubbo-ssl-python read it");
    }
    // ...and calls it: found in ZooKeeper, called over hessian2 with a null group.
    assert_eq!(
        found["called"], "hello ann, from py",
        "dubbo-ssl-python's call through its ZooKeeper lookup: {python_out}"
    );
    assert!(
        fields["methods"]
            .as_str()
            .is_some_and(|m| m.contains("greet")),
        "{fields}"
    );
    provider.shutdown().await;
    std::fs::remove_file(&cache).ok();
}

/// A raw ZooKeeper session, to write and read nodes as other Dubbo implementations do.
async fn raw_session(address: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .connect(address)
        .await
        .expect("zookeeper session")
}

#[tokio::test]
async fn our_nodes_have_dubbo_names_and_the_category_nodes_exist() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let namespace = unique("ns");
    let url = Backend::Zookeeper.url_at(&address, &namespace);
    let reg = client(&url, "provider").await;
    let interface = unique("org.example.Named");
    let p = Url::parse(&format!(
        "dubbo://127.0.0.1:20991/{interface}?side=provider&version=1.0.0&note=a b&rule=x %26 y"
    ))
    .expect("url");
    reg.register(&p).await.expect("register");

    let raw = raw_session(&address).await;
    let base = format!("/{namespace}/{}", java_url_encode(&interface));
    let children = raw
        .list_children(&format!("{base}/providers"))
        .await
        .expect("providers node");
    assert_eq!(children, vec![p.dubbo_encoded()]);
    // Encoded once, as Java's URLEncoder does: the space is '+'; the '&' of a value is
    // escaped in the URL (%26, as Dubbo's URL.encode would), which the name then encodes.
    assert!(children[0].contains("note%3Da+b"), "{}", children[0]);
    assert!(children[0].contains("rule%3Dx+%2526+y"), "{}", children[0]);
    let (_, stat) = raw
        .get_data(&format!("{base}/providers/{}", children[0]))
        .await
        .expect("node");
    assert_ne!(stat.ephemeral_owner, 0, "provider nodes are ephemeral");
    for category in Category::ALL {
        let stat = raw
            .check_stat(&format!("{base}/{category}"))
            .await
            .expect("stat")
            .unwrap_or_else(|| panic!("{category} node missing"));
        assert_eq!(stat.ephemeral_owner, 0, "{category} is persistent");
    }

    // dynamic=false: a persistent node, as Dubbo does.
    let fixed = p.with_port(20992).with_param("dynamic", "false");
    reg.register(&fixed).await.expect("register static");
    let (_, stat) = raw
        .get_data(&format!("{base}/providers/{}", fixed.dubbo_encoded()))
        .await
        .expect("static node");
    assert_eq!(stat.ephemeral_owner, 0);
    reg.unregister(&fixed).await.expect("unregister static");
}

#[tokio::test]
async fn nodes_written_by_java_dubbo_and_dubbo2_js_are_read_with_all_their_keys() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let namespace = unique("ns");
    let raw = raw_session(&address).await;
    let base = format!("/{namespace}/org.example.Greeter");
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    for category in ["providers", "consumers"] {
        raw.mkdir(&format!("{base}/{category}"), &opts)
            .await
            .expect("mkdir");
    }
    raw.create(
        &format!("{base}/providers/{JAVA_PROVIDER_NODE}"),
        b"127.0.0.1",
        &ephemeral,
    )
    .await
    .expect("java-style node");
    raw.create(
        &format!("{base}/providers/not%2a%zz-a-url"),
        b"",
        &ephemeral,
    )
    .await
    .expect("garbage node");
    raw.create(
        &format!("{base}/consumers/{}", java_url_encode(DUBBO2_JS_CONSUMER)),
        b"",
        &ephemeral,
    )
    .await
    .expect("dubbo2.js node");

    let url = Backend::Zookeeper.url_at(&address, &namespace);
    let reg = client(&url, "reader").await;
    let providers = reg
        .lookup(&consumer("org.example.Greeter"))
        .await
        .expect("lookup");
    assert_eq!(
        providers.len(),
        1,
        "the garbage node is skipped: {providers:?}"
    );
    let java = &providers[0];
    assert_eq!(java.address(), "127.0.0.1:20997");
    assert_eq!(java.params().len(), 14);
    assert_eq!(java.param("release"), Some("3.2.0"));
    assert_eq!(
        java.dubbo_encoded(),
        JAVA_PROVIDER_NODE,
        "byte-exact round trip"
    );

    let rec = Recorder::new();
    reg.subscribe(
        &consumer("org.example.Greeter").with_param("category", "consumers"),
        rec.clone(),
    )
    .await
    .expect("subscribe");
    let consumers = rec
        .wait_for(Category::Consumers, Duration::from_secs(2), |l| {
            !l.is_empty()
        })
        .await
        .expect("dubbo2.js consumer");
    assert_eq!(consumers[0].param("application"), Some("node-consumer"));
    assert_eq!(consumers[0].param("group"), Some(""));
    assert_eq!(consumers[0].port(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo2_js_finds_our_provider_in_zookeeper_and_calls_it() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let Some(dir) = peers::dir() else {
        return;
    };
    // dubbo2.js, like the Python client, knows the default root /dubbo only.
    let _turn = DEFAULT_ROOT.lock().await;
    let cache = temp_path("interop-js-cache");
    let registry = format!(
        "zookeeper://{address}?session=4000&timeout=2000&cache.file={}",
        cache.display()
    );
    let provider = rpc_tests::greeter::provider(&registry, "js", 0).await;
    let mut cmd = peers::node_script(&dir, "js_zk_client.js");
    cmd.args([address.as_str(), "bea"]);
    let (ok, out) = peers::run(cmd, PEER_WITHIN).await;
    // Other tests' providers of the same interface may be in /dubbo too: any of them signs
    // with its own name, so the answer names the one dubbo2.js picked.
    assert!(ok, "dubbo2.js failed:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok greet hello bea, from ")),
        "dubbo2.js through ZooKeeper:\n{out}"
    );
    provider.shutdown().await;
    std::fs::remove_file(&cache).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_consumer_calls_a_provider_registered_as_java_dubbo_registers() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let Some(dir) = peers::dir() else {
        return;
    };
    // A stock dubbo:// provider (hessian2 only), registered under the exact node name Java
    // Dubbo writes: no `serialization` key, so hessian2 is implied.
    let (mut node, port) = peers::node_provider(&dir, 40).await;
    let namespace = unique("java");
    let raw = raw_session(&address).await;
    let providers = format!("/{namespace}/org.example.Greeter/providers");
    raw.mkdir(
        &providers,
        &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .expect("mkdir");
    let node_name = JAVA_PROVIDER_NODE.replace("%3A20997%2F", &format!("%3A{port}%2F"));
    assert!(!node_name.contains("20997"), "{node_name}");
    raw.create(
        &format!("{providers}/{node_name}"),
        b"127.0.0.1",
        &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .expect("java-style node");

    let cache = temp_path(&namespace);
    let registry = format!(
        "zookeeper://{address}?root={namespace}&session=4000&timeout=2000&cache.file={}",
        cache.display()
    );
    peers::greet_through(&registry, "registered under the node name Java writes").await;
    node.start_kill()
        .expect("stop the Node provider by its PID");
    let _ = node.wait().await;
    std::fs::remove_file(&cache).ok();
}
