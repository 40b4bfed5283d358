//! `#[service]` end to end: the generated client, skeleton and descriptor, in process (injvm),
//! over a simulated wire (msgpack-encoded arguments and results) and from a generic caller.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::extension;
use rpc_core::protocol::{Injvm, Protocol};
use rpc_core::proxy::{self, ServiceClient, ServiceServer};
use rpc_core::serialize::{self, Serialization};
use rpc_core::{
    ErrorKind, Invocation, Invoker, Outcome, Payload, Response, RpcError, ServiceKey, Url, Value,
};
use rpc_tests as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

/// A postal address.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Address {
    street: String,
    zip: Option<u32>,
}

/// A person with nested data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Person {
    name: String,
    age: u8,
    tags: Vec<String>,
    address: Address,
}

/// An enum with every variant shape.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Shape {
    /// Struct variant.
    Circle {
        /// Radius.
        r: f64,
    },
    /// Newtype variant.
    Square(f64),
    /// Unit variant.
    Dot,
}

/// The greeter's business error.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum GreetError {
    /// No name given.
    Empty,
    /// The name is longer than `max`.
    TooLong {
        /// The longest accepted name.
        max: usize,
    },
}

/// A service exercising every argument shape and method attribute.
#[rpc_core::service(name = "org.example.Greeter", version = "1.0.0")]
pub trait Greeter {
    /// Liveness check: no arguments, no result.
    #[idempotent]
    async fn ping(&self);

    /// Greets someone, or refuses with a business error.
    #[idempotent]
    #[timeout = 300]
    async fn greet(&self, name: String) -> Result<String, GreetError>;

    /// Many arguments.
    async fn add(&self, a: i64, b: i64, c: i64, d: i32) -> i64;

    /// A nested struct both ways.
    async fn birthday(&self, p: Person) -> Person;

    /// Options both ways.
    async fn maybe(&self, x: Option<u32>) -> Option<String>;

    /// A vector and a map in, a map out.
    async fn count(
        &self,
        words: Vec<String>,
        weights: HashMap<String, u32>,
    ) -> BTreeMap<String, u32>;

    /// Enums.
    async fn area(&self, s: Shape) -> f64;

    /// Panics with `msg`.
    async fn boom(&self, msg: String) -> u32;

    /// Fire and forget.
    #[oneway]
    async fn notify(&self, n: u32);

    /// Takes longer than its declared timeout.
    #[timeout(50)]
    async fn slow(&self) -> u32;
}

struct MyGreeter {
    gate: Arc<Semaphore>,
    seen: mpsc::UnboundedSender<u32>,
}

impl Greeter for MyGreeter {
    async fn ping(&self) {}

    async fn greet(&self, name: String) -> Result<String, GreetError> {
        match name.len() {
            0 => Err(GreetError::Empty),
            n if n > 10 => Err(GreetError::TooLong { max: 10 }),
            _ => Ok(format!("hello {name}")),
        }
    }

    async fn add(&self, a: i64, b: i64, c: i64, d: i32) -> i64 {
        a + b + c + i64::from(d)
    }

    async fn birthday(&self, mut p: Person) -> Person {
        p.age += 1;
        p.tags.push("older".into());
        p.address.zip = p.address.zip.map(|z| z + 1);
        p
    }

    async fn maybe(&self, x: Option<u32>) -> Option<String> {
        x.map(|x| x.to_string())
    }

    async fn count(
        &self,
        words: Vec<String>,
        weights: HashMap<String, u32>,
    ) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for w in words {
            *out.entry(w.clone()).or_insert(0) += weights.get(&w).copied().unwrap_or(1);
        }
        out
    }

    async fn area(&self, s: Shape) -> f64 {
        match s {
            Shape::Circle { r } => 3.0 * r * r,
            Shape::Square(a) => a * a,
            Shape::Dot => 0.0,
        }
    }

    async fn boom(&self, msg: String) -> u32 {
        panic!("{msg}")
    }

    async fn notify(&self, n: u32) {
        let _permit = self.gate.acquire().await.expect("gate open");
        self.seen.send(n).expect("test is listening");
    }

    async fn slow(&self) -> u32 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        1
    }
}

struct Fixture {
    gate: Arc<Semaphore>,
    seen: mpsc::UnboundedReceiver<u32>,
    skeleton: Arc<dyn Invoker>,
}

fn fixture() -> Fixture {
    let gate = Arc::new(Semaphore::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let server = GreeterServer::new(MyGreeter {
        gate: gate.clone(),
        seen: tx,
    });
    Fixture {
        gate,
        seen: rx,
        skeleton: server.into_invoker(),
    }
}

fn greeter_url() -> Url {
    Url::parse("injvm://127.0.0.1/org.example.Greeter?version=1.0.0").expect("url")
}

fn msgpack() -> Arc<dyn Serialization> {
    extension::get::<dyn Serialization>("msgpack").expect("msgpack is built in")
}

/// Stands in for a network protocol: arguments and results cross as msgpack bytes, so the
/// skeleton and the client both see `Value::Encoded`, never the typed values.
struct Wire {
    url: Url,
    skeleton: Arc<dyn Invoker>,
    seen: Mutex<Vec<(String, bool, bool)>>,
}

impl Wire {
    fn new(skeleton: Arc<dyn Invoker>) -> Self {
        Wire {
            url: Url::parse("wire://127.0.0.1:1/org.example.Greeter").expect("url"),
            skeleton,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn encode(v: &Value) -> Result<Value, RpcError> {
        Ok(Value::Encoded(v.encode(&*msgpack())?))
    }
}

#[async_trait::async_trait]
impl Invoker for Wire {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn invoke(&self, mut inv: Invocation) -> Result<Response, RpcError> {
        self.seen.lock().expect("lock").push((
            inv.method().to_string(),
            inv.is_idempotent(),
            inv.is_oneway(),
        ));
        let args = Wire::encode(&inv.take_args())?;
        assert!(matches!(args, Value::Encoded(_)));
        let mut remote = Invocation::new(inv.service().clone(), inv.method().to_string(), args);
        remote.set_oneway(inv.is_oneway());
        remote.set_idempotent(inv.is_idempotent());
        let resp = self.skeleton.invoke(remote).await?;
        let outcome = match resp.outcome {
            Outcome::Value(v) => Outcome::Value(Wire::encode(&v)?),
            Outcome::BizError(e) => Outcome::BizError(Wire::encode(&e)?),
        };
        Ok(Response {
            outcome,
            attachments: resp.attachments,
        })
    }
}

fn person() -> Person {
    Person {
        name: "ann".into(),
        age: 41,
        tags: vec!["a".into()],
        address: Address {
            street: "Main St".into(),
            zip: Some(1000),
        },
    }
}

/// The same calls, whatever path the client's invoker takes.
async fn exercise(client: &GreeterClient) {
    client.ping().await.expect("ping");
    assert_eq!(
        client.greet("ann".into()).await.expect("delivered"),
        Ok("hello ann".to_string())
    );
    assert_eq!(client.add(1, 2, 3, 4).await.expect("add"), 10);
    let older = client.birthday(person()).await.expect("birthday");
    assert_eq!(older.age, 42);
    assert_eq!(older.tags, ["a", "older"]);
    assert_eq!(older.address.zip, Some(1001));
    assert_eq!(older.address.street, "Main St");
    assert_eq!(client.maybe(Some(7)).await.expect("some"), Some("7".into()));
    assert_eq!(client.maybe(None).await.expect("none"), None);
    let counts = client
        .count(
            vec!["x".into(), "y".into(), "x".into()],
            HashMap::from([("x".to_string(), 5)]),
        )
        .await
        .expect("count");
    assert_eq!(
        counts,
        BTreeMap::from([("x".to_string(), 10), ("y".to_string(), 1)])
    );
    assert_eq!(
        client.area(Shape::Circle { r: 2.0 }).await.expect("circle"),
        12.0
    );
    assert_eq!(client.area(Shape::Square(3.0)).await.expect("square"), 9.0);
    assert_eq!(client.area(Shape::Dot).await.expect("dot"), 0.0);
}

#[tokio::test]
async fn round_trip_through_injvm() {
    let f = fixture();
    let injvm = Injvm::default();
    let _exporter = injvm
        .export(greeter_url(), f.skeleton.clone())
        .await
        .expect("export");
    let client = GreeterClient::new(injvm.refer(greeter_url()).await.expect("refer"));
    assert_eq!(
        client.service_key(),
        &ServiceKey::new("org.example.Greeter", None, Some("1.0.0"))
    );
    exercise(&client).await;
}

#[tokio::test]
async fn round_trip_through_encoded_values() {
    let f = fixture();
    let wire = Arc::new(Wire::new(f.skeleton.clone()));
    let client = GreeterClient::new(wire.clone());
    exercise(&client).await;
    // The declared flags travel on the invocation.
    let seen = wire.seen.lock().expect("lock").clone();
    assert!(
        seen.contains(&("ping".to_string(), true, false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("greet".to_string(), true, false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("add".to_string(), false, false)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn business_error_is_a_value_and_transport_error_is_an_rpc_error() {
    let f = fixture();
    for client in [
        GreeterClient::new(f.skeleton.clone()),
        GreeterClient::new(Arc::new(Wire::new(f.skeleton.clone()))),
    ] {
        assert_eq!(
            client.greet(String::new()).await.expect("delivered"),
            Err(GreetError::Empty)
        );
        assert_eq!(
            client.greet("x".repeat(11)).await.expect("delivered"),
            Err(GreetError::TooLong { max: 10 })
        );
    }

    // A transport failure: the service is no longer exported.
    let injvm = Injvm::default();
    let exporter = injvm
        .export(greeter_url(), f.skeleton.clone())
        .await
        .expect("export");
    let client = GreeterClient::new(injvm.refer(greeter_url()).await.expect("refer"));
    exporter.unexport().await;
    let e = client
        .greet("ann".into())
        .await
        .expect_err("nobody serves it");
    assert_eq!(e.kind(), ErrorKind::ServiceNotFound);
    assert_eq!(e.method(), Some("greet"));
    assert_eq!(e.service(), Some("org.example.Greeter:1.0.0"));
}

#[tokio::test]
async fn unknown_method_lists_the_known_ones() {
    let f = fixture();
    let inv = Invocation::new(
        GreeterClient::DESCRIPTOR.service_key(),
        "bye",
        Value::typed(()),
    );
    let e = f.skeleton.invoke(inv).await.expect_err("no such method");
    assert_eq!(e.kind(), ErrorKind::MethodNotFound);
    let text = e.to_string();
    assert!(text.contains("org.example.Greeter"), "{text}");
    assert!(text.contains("'bye'"), "{text}");
    assert!(text.contains("ping, greet, add"), "{text}");
    assert!(!e.is_retriable());
}

#[tokio::test]
async fn wrong_argument_types_are_a_codec_error_naming_the_method() {
    let f = fixture();
    let key = GreeterClient::DESCRIPTOR.service_key();
    let typed = Invocation::new(key.clone(), "greet", Value::typed((1u32, 2u32)));
    let e = f.skeleton.invoke(typed).await.expect_err("wrong types");
    assert_eq!(e.kind(), ErrorKind::Codec);
    assert!(e.to_string().contains("greet(name: String)"), "{e}");
    assert_eq!(e.method(), Some("greet"));

    let json = Invocation::new(
        key,
        "add",
        Value::Encoded(Payload {
            serialization: serialize::ids::JSON,
            bytes: br#"["one", 2]"#.as_slice().into(),
        }),
    );
    let e = f.skeleton.invoke(json).await.expect_err("wrong JSON");
    assert_eq!(e.kind(), ErrorKind::Codec);
    assert!(e.to_string().contains("add(a: i64"), "{e}");
}

#[tokio::test]
async fn generic_invocation_with_json_arguments() {
    let f = fixture();
    let inv = Invocation::new(
        ServiceKey::new("org.example.Greeter", None, Some("1.0.0")),
        "greet",
        Value::Encoded(Payload {
            serialization: serialize::ids::JSON,
            bytes: br#"["ann"]"#.as_slice().into(),
        }),
    );
    let resp = f.skeleton.invoke(inv).await.expect("call");
    // A generic caller reads the result back as JSON text.
    let Outcome::Value(v) = &resp.outcome else {
        panic!("expected a value, got {:?}", resp.outcome)
    };
    let json = extension::get::<dyn Serialization>("json").expect("json");
    assert_eq!(
        v.encode(&*json).expect("encode").bytes.as_ref(),
        br#""hello ann""#
    );
    assert_eq!(
        resp.into_result::<String, GreetError>().expect("decoded"),
        Ok("hello ann".to_string())
    );

    let nested = Invocation::new(
        GreeterClient::DESCRIPTOR.service_key(),
        "birthday",
        Value::Encoded(Payload {
            serialization: serialize::ids::JSON,
            bytes: br#"[{"name":"bo","age":1,"tags":[],"address":{"street":"s","zip":null}}]"#
                .as_slice()
                .into(),
        }),
    );
    let p: Person = f
        .skeleton
        .invoke(nested)
        .await
        .expect("call")
        .into_value()
        .expect("person");
    assert_eq!((p.name.as_str(), p.age, p.address.zip), ("bo", 2, None));
}

#[tokio::test]
async fn a_panicking_method_is_a_biz_error_and_the_service_lives_on() {
    let f = fixture();
    for client in [
        GreeterClient::new(f.skeleton.clone()),
        GreeterClient::new(Arc::new(Wire::new(f.skeleton.clone()))),
    ] {
        let e = client.boom("kaput".into()).await.expect_err("panicked");
        assert_eq!(e.kind(), ErrorKind::Biz);
        assert!(e.to_string().contains("kaput"), "{e}");
        assert_eq!(e.method(), Some("boom"));
        assert!(!e.is_retriable());
        assert_eq!(client.add(1, 1, 1, 1).await.expect("still serving"), 4);
    }
}

#[tokio::test]
async fn oneway_returns_once_handed_off() {
    let mut f = fixture();
    let wire = Arc::new(Wire::new(f.skeleton.clone()));
    let client = GreeterClient::new(wire.clone());
    // The method blocks on the gate, yet the call returns.
    tokio::time::timeout(Duration::from_secs(5), client.notify(7))
        .await
        .expect("a one-way call does not wait for the method")
        .expect("handed off");
    assert!(f.seen.try_recv().is_err(), "the method is still waiting");
    f.gate.add_permits(1);
    assert_eq!(f.seen.recv().await, Some(7));
    let seen = wire.seen.lock().expect("lock").clone();
    assert_eq!(seen, [("notify".to_string(), false, true)]);

    // What the skeleton answers a one-way invocation: an empty value, at once.
    let mut inv = Invocation::new(
        GreeterClient::DESCRIPTOR.service_key(),
        "notify",
        Value::typed((8u32,)),
    );
    inv.set_oneway(true);
    let resp = f.skeleton.invoke(inv).await.expect("handed off");
    assert!(
        matches!(resp.outcome, Outcome::Value(Value::Empty)),
        "{resp:?}"
    );
    f.gate.add_permits(1);
    assert_eq!(f.seen.recv().await, Some(8));

    // A one-way call of a panicking method fails on its own task, not the caller's.
    let mut inv = Invocation::new(
        GreeterClient::DESCRIPTOR.service_key(),
        "boom",
        Value::typed(("in the background".to_string(),)),
    );
    inv.set_oneway(true);
    f.skeleton.invoke(inv).await.expect("handed off");
    assert_eq!(client.add(1, 2, 3, 4).await.expect("still serving"), 10);
}

#[tokio::test(start_paused = true)]
async fn declared_timeout_reaches_the_timeout_filter() {
    let f = fixture();
    let injvm = Injvm::default();
    let server = GreeterServer::new(MyGreeter {
        gate: f.gate.clone(),
        seen: mpsc::unbounded_channel().0,
    });
    let _exporter = proxy::export(&injvm, greeter_url(), server)
        .await
        .expect("export");
    let client: GreeterClient = proxy::refer(&injvm, greeter_url()).await.expect("refer");
    assert_eq!(client.invoker().url().param("slow.timeout"), Some("50"));
    let e = client.slow().await.expect_err("10 s > 50 ms");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.to_string().contains("within 50 ms"), "{e}");
    assert_eq!(client.add(1, 2, 3, 4).await.expect("fast call"), 10);

    // A user setting beats the declaration.
    let url = greeter_url().with_param("slow.timeout", 20_000);
    let other = Injvm::default();
    let _exporter = proxy::export(
        &other,
        url.clone(),
        GreeterServer::new(MyGreeter {
            gate: f.gate.clone(),
            seen: mpsc::unbounded_channel().0,
        }),
    )
    .await
    .expect("export");
    let client: GreeterClient = proxy::refer(&other, url).await.expect("refer");
    assert_eq!(client.slow().await.expect("20 s is enough"), 1);
}

#[test]
fn descriptor_describes_the_service() {
    let d = GreeterClient::DESCRIPTOR;
    assert_eq!(d.interface(), "org.example.Greeter");
    assert_eq!(d.version(), Some("1.0.0"));
    assert_eq!(d.group(), None);
    assert_eq!(<GreeterServer<MyGreeter> as ServiceServer>::descriptor(), d);
    assert_eq!(<GreeterClient as ServiceClient>::descriptor(), d);

    let greet = d.method("greet").expect("greet");
    assert_eq!(greet.args()[0].name(), "name");
    assert_eq!(greet.args()[0].type_name(), "String");
    assert_eq!(greet.returns(), "String");
    assert_eq!(greet.error(), Some("GreetError"));
    assert!(greet.is_idempotent());
    assert_eq!(greet.timeout_ms(), Some(300));
    let count = d.method("count").expect("count");
    assert_eq!(
        count.signature(),
        "count(words: Vec<String>, weights: HashMap<String, u32>) -> BTreeMap<String, u32>"
    );
    assert_eq!(d.method("ping").expect("ping").returns(), "()");
    assert!(d.method("notify").expect("notify").is_oneway());

    let url = d.apply_to(&Url::parse("dubbo://10.0.0.5:20880/org.example.Greeter").expect("url"));
    assert_eq!(
        url.param(keys::METHODS),
        Some("add,area,birthday,boom,count,greet,maybe,notify,ping,slow")
    );
    assert_eq!(url.param("greet.timeout"), Some("300"));
    assert_eq!(url.param("slow.timeout"), Some("50"));
    assert_eq!(url.param("greet.idempotent"), Some("true"));
    assert_eq!(url.param("notify.oneway"), Some("true"));
    assert_eq!(url.param("add.timeout"), None);
    assert_eq!(url.param(keys::VERSION), Some("1.0.0"));
}

#[tokio::test]
async fn client_key_follows_the_invoker_url_or_an_explicit_key() {
    struct At(Url);
    #[async_trait::async_trait]
    impl Invoker for At {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, inv: Invocation) -> Result<Response, RpcError> {
            Ok(Response::value(Value::typed(inv.service().to_string())))
        }
    }
    let url = Url::parse("dubbo://h:1/org.example.Greeter?version=2.0&group=blue").expect("url");
    let client = GreeterClient::new(Arc::new(At(url.clone())));
    assert_eq!(
        client.service_key().to_string(),
        "blue/org.example.Greeter:2.0"
    );
    let key = ServiceKey::new("org.example.Greeter", Some("red"), None);
    let client = GreeterClient::with_service_key(Arc::new(At(url)), key.clone());
    assert_eq!(client.service_key(), &key);
}

#[test]
fn client_is_cheap_to_clone_and_its_futures_are_send() {
    fn send_static<T: Send + 'static>(_: &T) {}
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<GreeterClient>();
    let f = fixture();
    let client = GreeterClient::new(f.skeleton.clone());
    let fut = client.greet("ann".into());
    send_static(&fut);
    drop(fut);
    let copy = client.clone();
    assert!(Arc::ptr_eq(copy.invoker(), client.invoker()));
    assert!(format!("{client:?}").contains("org.example.Greeter:1.0.0"));
}

/// A user type named like a common generic parameter.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct S(u8);

/// Uses the type `S` in a service.
#[rpc_core::service]
pub trait Shadow {
    /// Returns its argument, incremented.
    async fn next(&self, s: S) -> S;
}

struct Next;

impl Shadow for Next {
    async fn next(&self, s: S) -> S {
        S(s.0 + 1)
    }
}

#[tokio::test]
async fn user_types_may_share_names_with_generated_parameters() {
    let client = ShadowClient::new(ShadowServer::new(Next).into_invoker());
    assert_eq!(client.next(S(1)).await.expect("next"), S(2));
}
