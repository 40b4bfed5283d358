//! Interoperability of the `dubbo` protocol over hessian2 with stock Dubbo peers on loopback:
//! our provider called by dubbo-ssl-python 0.9.6 and dubbo2.js 2.3.9, our consumer calling the
//! stock Node provider apache-dubbo-service 0.0.1, and our consumer and provider with each
//! other (plain and generic calls).
//!
//! The peers are installed by `scripts/install-interop.sh` (run by `scripts/test.sh`), which
//! prints the directory to export as `RPC_TEST_INTEROP_DIR`. Without it the peer tests skip
//! loudly, except under CI (`CI=true`), where a missing peer fails the test.

use std::collections::HashMap;
use std::time::Duration;

use rpc_core::{ErrorKind, Invocation, ServiceKey, Url, Value};
use rpc_tests::{dubbo, peers};
use serde::{Deserialize, Serialize};

/// How long a stock peer may take.
const PEER_WITHIN: Duration = Duration::from_secs(60);

/// A Java-style value class.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename = "org.example.Person")]
pub struct Person {
    name: String,
    age: i32,
}

/// The service the stock clients call.
#[rpc_core::service(name = "org.example.Interop", version = "1.0.0")]
pub trait Interop {
    /// `hello {name}`.
    async fn greet(&self, name: String) -> String;
    /// `a + b`.
    async fn add(&self, a: i32, b: i64) -> i64;
    /// The sum.
    async fn total(&self, xs: Vec<i64>) -> i64;
    /// `k=v` pairs, sorted, comma separated.
    async fn describe(&self, m: HashMap<String, i32>) -> String;
    /// The person a year older.
    async fn older(&self, #[java_type = "Lorg/example/Person;"] p: Person) -> Person;
    /// A business error for `bob`.
    async fn check(&self, name: String) -> Result<String, String>;
}

struct Impl;

impl Interop for Impl {
    async fn greet(&self, name: String) -> String {
        format!("hello {name}")
    }
    async fn add(&self, a: i32, b: i64) -> i64 {
        i64::from(a) + b
    }
    async fn total(&self, xs: Vec<i64>) -> i64 {
        xs.iter().sum()
    }
    async fn describe(&self, m: HashMap<String, i32>) -> String {
        let mut pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        pairs.join(",")
    }
    async fn older(&self, p: Person) -> Person {
        Person {
            age: p.age + 1,
            ..p
        }
    }
    async fn check(&self, name: String) -> Result<String, String> {
        if name == "bob" {
            Err(format!("no such user: {name}"))
        } else {
            Ok(name)
        }
    }
}

async fn export_interop() -> Box<dyn rpc_core::protocol::Exporter> {
    let url = Url::parse("dubbo://127.0.0.1:0/org.example.Interop?version=1.0.0").expect("url");
    rpc_core::proxy::export(&*dubbo(), url, InteropServer::new(Impl))
        .await
        .expect("export")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_ssl_python_calls_our_provider() {
    let Some(dir) = peers::dir() else { return };
    let exp = export_interop().await;
    let port = exp.url().port().expect("port");
    let mut cmd = peers::python_script(&dir, "py_client.py");
    cmd.arg(port.to_string());
    let (ok, out) = peers::run(cmd, PEER_WITHIN).await;
    peers::assert_all_ok(
        "dubbo-ssl-python 0.9.6",
        ok,
        &out,
        &["greet", "add", "total", "older", "check"],
    );
    exp.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo2_js_calls_our_provider() {
    let Some(dir) = peers::dir() else { return };
    let exp = export_interop().await;
    let port = exp.url().port().expect("port");
    let mut cmd = peers::node_script(&dir, "js_client.js");
    cmd.arg(port.to_string());
    let (ok, out) = peers::run(cmd, PEER_WITHIN).await;
    peers::assert_all_ok(
        "dubbo2.js 2.3.9",
        ok,
        &out,
        &["greet", "add", "total", "describe", "older", "check"],
    );
    exp.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_consumer_calls_the_stock_node_provider() {
    let Some(dir) = peers::dir() else { return };
    let (mut child, port) = peers::node_provider(&dir, 30).await;
    let url = Url::parse(&format!(
        "dubbo://127.0.0.1:{port}/org.example.Greeter?version=1.0.0&serialization=hessian2&timeout=5000"
    ))
    .expect("url");
    let client: peers::StockGreeterClient =
        rpc_core::proxy::refer(&*dubbo(), url).await.expect("refer");
    assert_eq!(client.greet("ann".into()).await.expect("call"), "hello ann");
    assert_eq!(client.greet("bob".into()).await.expect("call"), "hello bob");
    // Stopped by its PID.
    child.start_kill().expect("kill");
    let _ = child.wait().await;
}

async fn hessian_client() -> (Box<dyn rpc_core::protocol::Exporter>, InteropClient) {
    let exp = export_interop().await;
    let url = exp
        .url()
        .with_param("serialization", "hessian2")
        .with_param("timeout", 5000);
    let client = rpc_core::proxy::refer(&*dubbo(), url).await.expect("refer");
    (exp, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_consumer_and_provider_speak_hessian2() {
    let (exp, c) = hessian_client().await;
    assert_eq!(c.greet("ann".into()).await.expect("greet"), "hello ann");
    assert_eq!(c.add(2, 1 << 40).await.expect("add"), 2 + (1 << 40));
    assert_eq!(c.total(vec![1, 2, 3]).await.expect("total"), 6);
    let m: HashMap<String, i32> = [("b".into(), 2), ("a".into(), 1)].into_iter().collect();
    assert_eq!(c.describe(m).await.expect("describe"), "a=1,b=2");
    let p = c
        .older(Person {
            name: "ann".into(),
            age: 41,
        })
        .await
        .expect("older");
    assert_eq!(p.age, 42);
    assert_eq!(
        c.check("bob".into()).await.expect("rpc"),
        Err("no such user: bob".to_string())
    );
    assert_eq!(c.check("ann".into()).await.expect("rpc"), Ok("ann".into()));
    exp.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_invoke_is_served_and_structs_come_back_as_maps() {
    let (exp, c) = hessian_client().await;
    let invoker = c.invoker().clone();
    let key = ServiceKey::new("org.example.Interop", None, Some("1.0.0"));
    let generic = |method: &str, types: Vec<&str>, args: Vec<serde_json::Value>| {
        let mut inv = Invocation::new(
            key.clone(),
            "$invoke",
            Value::typed((
                method.to_string(),
                types.into_iter().map(String::from).collect::<Vec<_>>(),
                args,
            )),
        );
        inv.set_parameter_types("Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;");
        inv
    };
    let r: String = invoker
        .invoke(generic(
            "greet",
            vec!["java.lang.String"],
            vec![serde_json::json!("ann")],
        ))
        .await
        .expect("$invoke greet")
        .into_value()
        .expect("string");
    assert_eq!(r, "hello ann");
    let p: HashMap<String, serde_json::Value> = invoker
        .invoke(generic(
            "older",
            vec!["org.example.Person"],
            vec![serde_json::json!({"name": "ann", "age": 41})],
        ))
        .await
        .expect("$invoke older")
        .into_value()
        .expect("map");
    assert_eq!(p["age"], 42);
    assert_eq!(p["class"], "org.example.Person");
    // Wrong arity: refused by name, with the signature (over hessian2 the kind follows the
    // status, 70 SERVICE_ERROR).
    let e = invoker
        .invoke(generic("greet", vec![], vec![]))
        .await
        .expect_err("arity");
    assert_eq!(e.kind(), ErrorKind::Biz, "{e}");
    assert!(e.message().contains("no method greet()"), "{e}");
    exp.unexport().await;
}
