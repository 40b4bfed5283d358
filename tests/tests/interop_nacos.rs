//! Nacos entries as Apache Dubbo's Nacos registry writes and reads them: the service name
//! `{category}:{interface}:{version}:{group}` in the registry's group, the instance's ip and
//! port, and the URL's keys as metadata with `category`, `protocol` and `path`. Checked
//! against the server's own open API, and with the stock client nacos-sdk-python 0.1.17:
//! it sees our provider's instances, and our consumer calls a stock provider it registered.
//! Needs `RPC_TEST_NACOS` and, for the stock peers, `RPC_TEST_INTEROP_DIR` (skips loudly
//! without; see `rpc_tests::peers`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rpc_core::Url;
use rpc_tests::peers;
use rpc_tests::registry::{client, consumer, temp_path, unique, Backend};

/// One plain HTTP/1.0 request to the Nacos server; the body of a 200 answer.
fn http(address: &str, method: &str, path_and_query: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to nacos");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path_and_query} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.contains(" 200 "),
        "{method} {path_and_query}: {head}\n{body}"
    );
    body.to_string()
}

/// `s` as a query value.
fn q(s: &str) -> String {
    rpc_core::url::java_url_encode(s)
}

#[tokio::test]
async fn instances_use_dubbo_service_names_and_metadata() {
    let Some(address) = Backend::Nacos.address() else {
        return;
    };
    let namespace = unique("ns");
    let url = Backend::Nacos
        .url_at(&address, &namespace)
        .with_param("group", "interop");
    let reg = client(&url, "provider").await;
    let interface = unique("org.example.NacosNamed");
    let p = Url::parse(&format!(
        "dubbo://127.0.0.1:20993/{interface}?side=provider&version=1.0.0&group=blue&note=a b&greet.idempotent=true"
    ))
    .expect("url");
    reg.register(&p).await.expect("register");

    let service = format!("providers:{interface}:1.0.0:blue");
    let list = http(
        &address,
        "GET",
        &format!(
            "/nacos/v1/ns/instance/list?serviceName={}&groupName=interop&namespaceId={}",
            q(&service),
            q(&namespace)
        ),
    );
    let list: serde_json::Value = serde_json::from_str(&list).expect("JSON");
    let host = &list["hosts"][0];
    assert_eq!(host["ip"], "127.0.0.1", "{list}");
    assert_eq!(host["port"], 20993);
    assert_eq!(host["ephemeral"], true);
    let meta = &host["metadata"];
    for (k, v) in [
        ("category", "providers"),
        ("protocol", "dubbo"),
        ("path", interface.as_str()),
        ("side", "provider"),
        ("version", "1.0.0"),
        ("group", "blue"),
        ("note", "a b"),
        ("greet.idempotent", "true"),
    ] {
        assert_eq!(meta[k], v, "{k} in {meta}");
    }
    assert_eq!(
        reg.lookup(&consumer(&interface)).await.expect("lookup"),
        vec![p.clone()],
        "read back as registered"
    );
    reg.unregister(&p).await.expect("unregister");
}

#[tokio::test]
async fn an_instance_registered_as_java_dubbo_does_is_read_with_all_its_keys() {
    let Some(address) = Backend::Nacos.address() else {
        return;
    };
    let namespace = unique("ns");
    let interface = unique("org.example.JavaRegistered");
    // What Dubbo's NacosRegistry sends for a provider: the URL parameters plus category,
    // protocol and path, in the registry's group (DEFAULT_GROUP), as a persistent instance so
    // no heartbeat is needed here.
    let metadata = serde_json::json!({
        "anyhost": "true", "application": "java-like", "category": "providers",
        "deprecated": "false", "dubbo": "2.0.2", "dynamic": "true", "generic": "false",
        "interface": interface, "methods": "greet", "path": interface, "pid": "1234",
        "protocol": "dubbo", "release": "3.2.0", "revision": "1.0.0", "side": "provider",
        "timestamp": "1700000000000", "version": "1.0.0",
    });
    let service = format!("providers:{interface}:1.0.0:");
    http(
        &address,
        "POST",
        &format!(
            "/nacos/v1/ns/instance?serviceName={}&groupName=DEFAULT_GROUP&namespaceId={}&ip=127.0.0.1&port=20994&ephemeral=false&metadata={}",
            q(&service),
            q(&namespace),
            q(&metadata.to_string())
        ),
    );
    let url = Backend::Nacos.url_at(&address, &namespace);
    let reg = client(&url, "reader").await;
    let found = reg.lookup(&consumer(&interface)).await.expect("lookup");
    assert_eq!(found.len(), 1, "{found:?}");
    let java = &found[0];
    assert_eq!(java.address(), "127.0.0.1:20994");
    assert_eq!(java.path(), interface);
    assert_eq!(java.param("release"), Some("3.2.0"));
    assert_eq!(java.param("anyhost"), Some("true"));
    assert_eq!(
        java.params().len(),
        14,
        "every key but protocol, path, category: {java}"
    );
    assert_eq!(
        reg.services().await.expect("services"),
        vec![interface.clone()]
    );
    http(
        &address,
        "DELETE",
        &format!(
            "/nacos/v1/ns/instance?serviceName={}&groupName=DEFAULT_GROUP&namespaceId={}&ip=127.0.0.1&port=20994&ephemeral=false",
            q(&service),
            q(&namespace)
        ),
    );
}

/// How long a stock peer may take.
const PEER_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_sdk_python_sees_our_provider_with_dubbo_service_name_and_metadata() {
    let Some(address) = Backend::Nacos.address() else {
        return;
    };
    let Some(dir) = peers::dir() else {
        return;
    };
    let namespace = unique("ns");
    let registry = Backend::Nacos.url_at(&address, &namespace).to_string();
    let provider = rpc_tests::greeter::provider(&registry, "nacos", 0).await;
    let port = provider.port().expect("bound port");

    // What a Dubbo consumer on Nacos looks up: the providers service of the interface,
    // version and (empty) group, in the registry's group.
    let mut found = serde_json::Value::Null;
    for _ in 0..50 {
        let mut cmd = peers::python_script(&dir, "nacos_peer.py");
        cmd.args([
            "list",
            &address,
            &namespace,
            "DEFAULT_GROUP",
            "providers:org.example.Greeter:1.0.0:",
        ]);
        let (ok, out) = peers::run(cmd, PEER_WITHIN).await;
        assert!(ok, "nacos-sdk-python failed: {out}");
        found = serde_json::from_str(out.trim()).expect("JSON");
        if found.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let instances = found.as_array().expect("a list");
    assert_eq!(instances.len(), 1, "{found}");
    let ours = &instances[0];
    assert_eq!(ours["ip"], "127.0.0.1");
    assert_eq!(ours["port"], port);
    assert_eq!(ours["healthy"], true);
    let meta = &ours["metadata"];
    for (key, want) in [
        ("category", "providers"),
        ("protocol", "dubbo"),
        ("path", "org.example.Greeter"),
        ("interface", "org.example.Greeter"),
        ("version", "1.0.0"),
        ("side", "provider"),
        ("dubbo", "2.0.2"),
        ("serialization", "hessian2"),
        ("rpc.serialization", "msgpack"),
        ("application", "test-provider"),
    ] {
        assert_eq!(meta[key], want, "{key} as nacos-sdk-python read it: {meta}");
    }
    assert!(
        meta["methods"]
            .as_str()
            .is_some_and(|m| m.contains("greet")),
        "{meta}"
    );
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_consumer_calls_a_provider_registered_through_nacos_sdk_python() {
    let Some(address) = Backend::Nacos.address() else {
        return;
    };
    let Some(dir) = peers::dir() else {
        return;
    };
    // A stock dubbo:// provider, registered by the stock Nacos client with the metadata
    // Dubbo's NacosRegistry writes (the URL's keys plus category, protocol and path).
    let (mut node, port) = peers::node_provider(&dir, 40).await;
    let namespace = unique("ns");
    let metadata = serde_json::json!({
        "anyhost": "true", "application": "java-like", "category": "providers",
        "deprecated": "false", "dubbo": "2.0.2", "dynamic": "true", "generic": "false",
        "interface": "org.example.Greeter", "methods": "greet", "path": "org.example.Greeter",
        "pid": "1234", "protocol": "dubbo", "release": "3.2.0", "revision": "1.0.0",
        "side": "provider", "timestamp": "1700000000000", "version": "1.0.0",
    });
    let mut cmd = peers::python_script(&dir, "nacos_peer.py");
    cmd.args([
        "register".to_string(),
        address.clone(),
        namespace.clone(),
        "DEFAULT_GROUP".into(),
        "providers:org.example.Greeter:1.0.0:".into(),
        "127.0.0.1".into(),
        port.to_string(),
        metadata.to_string(),
        "60".into(),
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::inherit())
    .kill_on_drop(true);
    let mut python = cmd.spawn().expect("nacos-sdk-python starts");
    let mut lines = {
        use tokio::io::AsyncBufReadExt;
        tokio::io::BufReader::new(python.stdout.take().expect("stdout")).lines()
    };
    let first = tokio::time::timeout(PEER_WITHIN, lines.next_line())
        .await
        .expect("nacos-sdk-python answers")
        .expect("read");
    assert_eq!(first.as_deref(), Some("registered"));

    let cache = temp_path(&namespace);
    let registry = Backend::Nacos
        .url_at(&address, &namespace)
        .with_param("cache.file", cache.display())
        .to_string();
    peers::greet_through(&registry, "nacos-sdk-python registered").await;
    // Closing its standard input makes the peer remove its instance and exit.
    drop(python.stdin.take());
    let status = tokio::time::timeout(PEER_WITHIN, python.wait())
        .await
        .expect("nacos-sdk-python exits")
        .expect("wait");
    assert!(status.success());
    node.start_kill()
        .expect("stop the Node provider by its PID");
    let _ = node.wait().await;
    std::fs::remove_file(&cache).ok();
}
