//! ZooKeeper entries as Apache Dubbo writes and reads them: a stock Python client
//! (dubbo-ssl-python 0.9.6 on kazoo 2.11.0) finds a provider this framework registered, and
//! the adapter reads nodes written by Java Dubbo and dubbo2.js with every key they carry.
//!
//! Needs `RPC_TEST_ZOOKEEPER` (a server) and, for the Python client, `RPC_TEST_PYTHON` (a
//! Python with both packages; `scripts/test.sh` installs them into a venv under `target/`).
//! Without them the tests skip loudly; in CI (`CI=true`) a Python peer that could not be
//! installed fails the test.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rpc_core::registry::testing::Recorder;
use rpc_core::registry::Category;
use rpc_core::url::java_url_encode;
use rpc_core::Url;
use rpc_tests::registry::{client, consumer, temp_path, unique, Backend};
use zookeeper_client as zk;

/// A Java-style provider node name (`URLEncoder.encode(url.toFullString(), "UTF-8")`).
const JAVA_PROVIDER_NODE: &str = "dubbo%3A%2F%2F127.0.0.1%3A20997%2Forg.example.Greeter%3Fanyhost%3Dtrue%26application%3Djava-like%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dynamic%3Dtrue%26generic%3Dfalse%26interface%3Dorg.example.Greeter%26methods%3Dgreet%26pid%3D1234%26release%3D3.2.0%26revision%3D1.0.0%26side%3Dprovider%26timestamp%3D1700000000000%26version%3D1.0.0";

/// The consumer URL dubbo2.js 2.3.9 registers.
const DUBBO2_JS_CONSUMER: &str = "consumer://192.0.2.2/org.example.Greeter?interface=org.example.Greeter&application=node-consumer&category=consumers&method=&revision=&version=1.0.0&group=&side=consumer&check=false";

/// The Python with the stock peers, or `None` after a loud message (a failure in CI).
fn python() -> Option<PathBuf> {
    match std::env::var("RPC_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            let why = "RPC_TEST_PYTHON is not set: the stock Python peers (kazoo==2.11.0, \
                       dubbo-ssl-python==0.9.6) could not be installed or were not looked for; \
                       `bash scripts/test.sh` installs them into target/interop-venv";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}");
            }
            eprintln!("\n*** SKIPPED: {why}. ***\n");
            None
        }
    }
}

/// Runs `python script args` for at most `within`; its standard output, or a panic with its
/// standard error.
fn run_python(python: &PathBuf, args: &[&str], within: Duration) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/zk_discover.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python client");
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python client did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).expect("stdout");
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err).expect("stderr");
    }
    assert!(
        status.success(),
        "the Python client failed ({status}): {err}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_ssl_python_finds_our_provider_in_zookeeper() {
    let Some(address) = Backend::Zookeeper.address() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    // The stock client knows only the default root, /dubbo.
    let cache = temp_path("interop-cache");
    let registry = format!(
        "zookeeper://{address}?session=4000&timeout=2000&cache.file={}",
        cache.display()
    );
    let provider = rpc_tests::greeter::provider(&registry, "py", 0).await;
    let port = provider.port().expect("bound port");
    let ours = format!("127.0.0.1:{port}");

    let python_out = {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            run_python(
                &python,
                &[&address, "org.example.Greeter", "1.0.0"],
                Duration::from_secs(60),
            )
        })
        .await
        .expect("python task")
    };
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
    ] {
        assert_eq!(fields[key], want, "{key} as dubbo-ssl-python read it");
    }
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
