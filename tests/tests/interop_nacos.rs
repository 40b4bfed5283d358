//! Nacos entries as Apache Dubbo's Nacos registry writes and reads them: the service name
//! `{category}:{interface}:{version}:{group}` in the registry's group, the instance's ip and
//! port, and the URL's keys as metadata with `category`, `protocol` and `path`. Checked
//! against the server's own open API. Needs `RPC_TEST_NACOS` (skips loudly without).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rpc_core::Url;
use rpc_tests::registry::{client, consumer, unique, Backend};

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
