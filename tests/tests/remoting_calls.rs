//! The `dubbo` protocol end to end on loopback: pairing, dispatch, serializations, errors.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::serialize::ids;
use rpc_core::{ErrorKind, Invocation, Outcome, ServiceKey, Url, Value};
use rpc_tests::{call, dubbo, echo, export_on, kind_of, refer, TestService};
use serde::{Deserialize, Serialize};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_concurrent_calls_on_one_connection_pair_correctly() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "timeout=30000").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5000u64 {
        let inv = inv.clone();
        tasks.spawn(async move {
            let r: u64 = inv
                .invoke(call("add", Value::typed((i, 1_000_000u64))))
                .await
                .expect("call")
                .into_value()
                .expect("u64");
            assert_eq!(r, i + 1_000_000, "call {i} got another call's answer");
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
        done += 1;
    }
    assert_eq!(done, 5000);
    exp.unexport().await;
}

#[tokio::test]
async fn exporter_reports_the_real_port_and_services_share_it() {
    let (a, _) = export_on(0, "").await;
    let port = a.url().port().expect("port");
    assert_ne!(port, 0);
    // A second service (another version) on the same port.
    let url = Url::parse(&format!("dubbo://127.0.0.1:{port}/test.Echo?version=2.0")).expect("url");
    let b = dubbo()
        .export(url.clone(), Arc::new(TestService::new(url.clone())))
        .await
        .expect("second export on the same port");
    assert_eq!(b.url().port(), Some(port));
    let v1 = refer(&*a, "").await;
    let v2 = dubbo().refer(url).await.expect("refer v2");
    assert_eq!(echo(&*v1, "one").await.expect("v1"), "one");
    let r = v2
        .invoke(Invocation::new(
            ServiceKey::new("test.Echo", None, Some("2.0")),
            "echo",
            Value::typed(("two".to_string(),)),
        ))
        .await
        .expect("v2")
        .into_value::<String>()
        .expect("string");
    assert_eq!(r, "two");
    // Unexporting one keeps the port serving the other.
    b.unexport().await;
    assert_eq!(echo(&*v1, "still").await.expect("v1 after"), "still");
    a.unexport().await;
}

#[tokio::test]
async fn provider_answers_in_the_request_serialization() {
    let (exp, _) = export_on(0, "").await;
    for (name, id) in [
        ("msgpack", ids::MSGPACK),
        ("json", ids::JSON),
        ("bincode", ids::BINCODE),
    ] {
        let inv = refer(&*exp, &format!("serialization={name}")).await;
        let resp = inv
            .invoke(call("echo", Value::typed(("ünï".to_string(),))))
            .await
            .expect(name);
        match &resp.outcome {
            Outcome::Value(Value::Encoded(p)) => assert_eq!(p.serialization, id, "{name}"),
            other => panic!("{name}: unexpected {other:?}"),
        }
        assert_eq!(resp.into_value::<String>().expect("decode"), "ünï");
    }
    exp.unexport().await;
}

#[tokio::test]
async fn method_level_serialization_key_wins() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "serialization=json&add.serialization=bincode").await;
    let resp = inv
        .invoke(call("add", Value::typed((2u64, 3u64))))
        .await
        .expect("add");
    match &resp.outcome {
        Outcome::Value(Value::Encoded(p)) => assert_eq!(p.serialization, ids::BINCODE),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(resp.into_value::<u64>().expect("u64"), 5);
    exp.unexport().await;
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct UserV1 {
    id: u32,
    name: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct UserV2 {
    id: u32,
    name: String,
    #[serde(default)]
    email: String,
}

/// A provider on the newer schema: `rename(UserV2) -> UserV2`.
struct UserService(Url);

#[async_trait::async_trait]
impl rpc_core::Invoker for UserService {
    fn url(&self) -> &Url {
        &self.0
    }
    async fn invoke(&self, mut inv: Invocation) -> rpc_core::Result<rpc_core::Response> {
        let (mut u,): (UserV2,) = inv.take_args().decode()?;
        assert_eq!(u.email, "", "an old consumer sends no email");
        u.name = u.name.to_uppercase();
        u.email = "new@example.org".into();
        Ok(rpc_core::Response::value(Value::typed(u)))
    }
}

#[tokio::test]
async fn msgpack_provider_with_a_new_defaulted_field_serves_an_old_consumer() {
    let url = Url::parse("dubbo://127.0.0.1:0/test.Users").expect("url");
    let exp = dubbo()
        .export(url.clone(), Arc::new(UserService(url)))
        .await
        .expect("export");
    let port = exp.url().port().expect("port");
    let inv = dubbo()
        .refer(Url::parse(&format!("dubbo://127.0.0.1:{port}/test.Users")).expect("url"))
        .await
        .expect("refer");
    let back: UserV1 = inv
        .invoke(Invocation::new(
            ServiceKey::new("test.Users", None, None),
            "rename",
            Value::typed((UserV1 {
                id: 7,
                name: "ann".into(),
            },)),
        ))
        .await
        .expect("call")
        .into_value()
        .expect("old type reads the new answer");
    assert_eq!(
        back,
        UserV1 {
            id: 7,
            name: "ANN".into()
        }
    );
    exp.unexport().await;
}

#[tokio::test]
async fn one_way_calls_return_at_once_and_reach_the_provider() {
    let (exp, hits) = export_on(0, "").await;
    let inv = refer(&*exp, "").await;
    for _ in 0..50 {
        let mut c = call("hit", Value::typed(()));
        c.set_oneway(true);
        let r = inv.invoke(c).await.expect("one-way");
        assert!(matches!(r.outcome, Outcome::Value(Value::Empty)));
    }
    for _ in 0..200 {
        if hits.load(Ordering::SeqCst) == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 50);
    // The connection still pairs two-way calls after one-way traffic.
    assert_eq!(echo(&*inv, "after").await.expect("echo"), "after");
    exp.unexport().await;
}

#[tokio::test]
async fn error_kinds_survive_the_wire() {
    let (exp, _) = export_on(0, "").await;
    // Generous: printing the panic (with a backtrace when RUST_BACKTRACE is set) is slow.
    let inv = refer(&*exp, "timeout=20000").await;
    let kind = |m: &'static str| {
        let inv = inv.clone();
        async move { kind_of(inv.invoke(call(m, Value::typed(()))).await) }
    };
    assert_eq!(kind("nosuch").await, ErrorKind::MethodNotFound);
    assert_eq!(kind("deny").await, ErrorKind::Unauthorized);
    assert_eq!(kind("busy").await, ErrorKind::LimitExceeded);
    // A panic is a service error and the connection lives on.
    let e = inv
        .invoke(call("panic", Value::typed(())))
        .await
        .expect_err("panic");
    assert_eq!(e.kind(), ErrorKind::Biz);
    assert!(e.to_string().contains("boom in the service"), "{e}");
    assert!(e.to_string().contains("test.Echo:1.0"), "{e}");
    assert_eq!(echo(&*inv, "alive").await.expect("after panic"), "alive");
    // A declared business error is a value, not an RpcError.
    let r = inv
        .invoke(call("fail", Value::typed(("x".to_string(),))))
        .await
        .expect("biz error is a response")
        .into_result::<String, String>()
        .expect("decoded");
    assert_eq!(r, Err("refused: x".to_string()));
    // Wrong argument types are a codec error.
    let e = inv
        .invoke(call("add", Value::typed(("not a number".to_string(),))))
        .await
        .expect_err("wrong args");
    assert_eq!(e.kind(), ErrorKind::Codec);
    // Unknown service on a live port.
    let other = Invocation::new(ServiceKey::new("test.Nope", None, None), "x", Value::Empty);
    assert_eq!(kind_of(inv.invoke(other).await), ErrorKind::ServiceNotFound);
    exp.unexport().await;
}

#[tokio::test]
async fn attachments_travel_both_ways_and_oversized_requests_are_refused() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "payload=2048").await;
    let mut c = call("attachment", Value::typed(()));
    c.attachments_mut().insert("k", "v-1");
    let r = inv.invoke(c).await.expect("attachment call");
    assert_eq!(r.attachments.get("seen"), Some("yes"));
    assert_eq!(r.into_value::<String>().expect("string"), "v-1");
    let mut c = call("echo", Value::typed(("x".repeat(4096),)));
    c.attachments_mut().insert("k", "v");
    let e = inv.invoke(c).await.expect_err("over the payload limit");
    assert_eq!(e.kind(), ErrorKind::Codec);
    assert!(e.to_string().contains("payload limit"), "{e}");
    assert_eq!(echo(&*inv, "small").await.expect("small"), "small");
    exp.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_method_does_not_hold_up_other_calls_on_its_connection() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "timeout=5000").await;
    let slow = {
        let inv = inv.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let ms: u64 = inv
                .invoke(call("sleep", Value::typed((800u64,))))
                .await
                .expect("slow call")
                .into_value()
                .expect("u64");
            (ms, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Same invoker, same shared connection: the quick calls are answered while the slow one
    // is still running.
    let started = tokio::time::Instant::now();
    for i in 0..20 {
        assert_eq!(
            echo(&*inv, &format!("q{i}")).await.expect("echo"),
            format!("q{i}")
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "quick calls waited for the slow one: {:?}",
        started.elapsed()
    );
    let (ms, took) = slow.await.expect("join");
    assert_eq!(ms, 800);
    assert!(took >= Duration::from_millis(800));
    // Its answer comes from its own task while the connection has nothing else to read: it
    // is written when it is ready, not when the peer next sends something.
    assert!(
        took < Duration::from_secs(3),
        "the waiting call's answer was held back: {took:?}"
    );
    exp.unexport().await;
}

/// A provider whose `spin` computes for the milliseconds it is given without ever waiting,
/// and whose `meet` computes until another `meet` is running at the same time (or 5 s
/// passed): it answers whether they met.
struct Computing {
    url: Url,
    inside: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl rpc_core::Invoker for Computing {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn invoke(&self, mut inv: Invocation) -> rpc_core::Result<rpc_core::Response> {
        let until = |done: &dyn Fn() -> bool, most: Duration| {
            let end = std::time::Instant::now() + most;
            while !done() && std::time::Instant::now() < end {
                std::hint::spin_loop();
            }
            done()
        };
        let answer = match inv.method() {
            "spin" => {
                let (ms,): (u64,) = inv.take_args().decode()?;
                until(&|| false, Duration::from_millis(ms));
                true
            }
            _ => {
                self.inside.fetch_add(1, Ordering::SeqCst);
                let met = until(
                    &|| self.inside.load(Ordering::SeqCst) >= 2,
                    Duration::from_secs(5),
                );
                // Seen by the other one, still computing, before this one leaves.
                until(&|| false, Duration::from_millis(20));
                self.inside.fetch_sub(1, Ordering::SeqCst);
                met
            }
        };
        Ok(rpc_core::Response::value(Value::typed(answer)))
    }
}

/// A request that completes without waiting is answered where its connection is read; but
/// once requests computed there for long, the connection's next requests run in tasks of
/// their own: two long computations sent together run at the same time on the provider's
/// two workers instead of one after the other, holding up the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_computations_on_one_connection_run_side_by_side() {
    let url = Url::parse("dubbo://127.0.0.1:0/test.Computing").expect("url");
    let service = Arc::new(Computing {
        url: url.clone(),
        inside: Default::default(),
    });
    let exp = dubbo().export(url, service).await.expect("export");
    let port = exp.url().port().expect("port");
    let target = format!("dubbo://127.0.0.1:{port}/test.Computing?timeout=30000");
    let inv = dubbo()
        .refer(Url::parse(&target).expect("url"))
        .await
        .expect("refer");
    let ask = |method: &'static str, args: Value| {
        let inv = inv.clone();
        async move {
            let key = ServiceKey::new("test.Computing", None, None);
            inv.invoke(Invocation::new(key, method, args))
                .await
                .expect("call")
                .into_value::<bool>()
                .expect("bool")
        }
    };
    // Over `inplace.budget` where the connection is read: the first read so is measured by
    // the thread's CPU time from then on, and the second sends the connection's next
    // requests to tasks of their own.
    for _ in 0..2 {
        assert!(ask("spin", Value::typed((50u64,))).await);
    }
    let (a, b) = tokio::join!(
        tokio::spawn(ask("meet", Value::Empty)),
        tokio::spawn(ask("meet", Value::Empty))
    );
    assert!(
        a.expect("task") && b.expect("task"),
        "the two computations ran one after the other"
    );
    exp.unexport().await;
}
