//! The `tri` protocol end to end on loopback: our consumer and provider in wrapper and
//! protobuf mode, deadlines both ways, status mapping, business errors, one provider on both
//! protocols, calls through the bootstrap's cluster and filters, and bad input over raw
//! HTTP/2 (wrong content type, unknown path, truncated, oversized, reset streams, malformed
//! headers), answered with the right grpc-status and never a panic.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rpc_core::config::keys;
use rpc_core::protocol::{Exporter, Protocol};
use rpc_core::{extension, ErrorKind, Url};
use rpc_tests::triple::{
    CountRequest, EchoClient, EchoServer, GreetRequest, Impl, ProtoGreeterClient,
    ProtoGreeterServer, ProtoStreamerClient,
};

fn tri() -> std::sync::Arc<dyn Protocol> {
    extension::get::<dyn Protocol>("tri").expect("tri is linked")
}

async fn export_both(limit: Option<usize>) -> (Impl, Vec<Box<dyn Exporter>>, u16) {
    let imp = Impl::default();
    let mut url = Url::parse("tri://127.0.0.1:0/org.example.Greeter?version=1.0.0").expect("url");
    if let Some(l) = limit {
        url = url.with_param(keys::PAYLOAD, l);
    }
    let a = rpc_core::proxy::export(&*tri(), url, ProtoGreeterServer::new(imp.clone()))
        .await
        .expect("export greeter");
    let port = a.url().port().expect("port");
    let url = Url::parse(&format!(
        "tri://127.0.0.1:{port}/org.example.Echo?version=1.0.0"
    ))
    .expect("url");
    let b = rpc_core::proxy::export(&*tri(), url, EchoServer::new(imp.clone()))
        .await
        .expect("export echo on the same port");
    (imp, vec![a, b], port)
}

async fn unexport(exporters: Vec<Box<dyn Exporter>>) {
    for e in exporters {
        e.unexport().await;
    }
}

fn reference(port: u16, interface: &str) -> Url {
    Url::parse(&format!(
        "tri://127.0.0.1:{port}/{interface}?version=1.0.0&timeout=3000"
    ))
    .expect("url")
}

/// A business error too large for the trailers (which a peer bounds, and answers going far
/// over with the end of the whole connection) arrives as a business error with its message
/// cut, and the other calls on the shared connection go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_error_too_large_for_the_trailers_fails_only_its_call() {
    let (_imp, exporters, port) = export_both(None).await;
    let c: EchoClient = rpc_core::proxy::refer(&*tri(), reference(port, "org.example.Echo"))
        .await
        .expect("refer");
    // A small one still arrives whole, as the method's error type.
    assert_eq!(
        c.check("long:3000".into()).await.expect("rpc ok"),
        Err("x".repeat(3000))
    );
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.sleep(400).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = c
        .check("long:60000".into())
        .await
        .expect_err("too large to arrive as the method's error");
    assert_eq!(e.kind(), ErrorKind::Biz, "{e}");
    assert!(e.message().contains("xxxx"), "{e}");
    assert!(
        e.message().len() < 8 << 10,
        "cut: {} bytes",
        e.message().len()
    );
    assert_eq!(slow.await.expect("joined").expect("the other call"), 400);
    assert_eq!(c.ping().await.expect("the connection goes on"), "pong");
    unexport(exporters).await;
}

/// The caller's `grpc-timeout` counts from when its request arrived: a body that is slow to
/// arrive leaves the call that much less time (a nested call gets no more than the caller
/// has left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_budget_counts_from_the_requests_arrival() {
    let (_imp, exporters, port) = export_both(None).await;
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        let mut send = h2_connect(port).await;
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://127.0.0.1:{port}/org.example.Greeter/Greet"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("tri-service-version", "1.0.0")
            .header("grpc-timeout", "1S")
            .body(())
            .expect("request");
        let (response, mut stream) = send.send_request(req, false).expect("send");
        // The 1 s starts here; the provider then sleeps 700 ms after the body took 600 ms.
        let frame = grpc_frame(&encode_request("sleep:700"));
        let rest = frame[4..].to_vec();
        stream
            .send_data(Bytes::from(frame[..4].to_vec()), false)
            .expect("part");
        tokio::time::sleep(Duration::from_millis(600)).await;
        stream.send_data(Bytes::from(rest), true).expect("rest");
        let (head, mut body) = response.await.expect("response").into_parts();
        if let Some(s) = head.headers.get("grpc-status") {
            return Some(s.clone()); // trailers-only
        }
        while let Some(chunk) = body.data().await {
            let _ = body
                .flow_control()
                .release_capacity(chunk.expect("data").len());
        }
        body.trailers()
            .await
            .expect("trailers")
            .and_then(|t| t.get("grpc-status").cloned())
    })
    .await
    .expect("answered");
    assert_eq!(
        status.as_ref().map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "DEADLINE_EXCEEDED at the caller's deadline"
    );
    unexport(exporters).await;
}

/// A connection whose path went dark (no FIN, nothing comes back) is checked with a PING
/// once a call on it times out, and closed when the PING is not answered: the calls after
/// it dial again instead of timing out one by one until the system gives the connection up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_gone_dark_is_closed_after_a_call_times_out() {
    let (_imp, exporters, port) = export_both(None).await;
    let proxy = rpc_tests::registry::Proxy::start(&format!("127.0.0.1:{port}")).await;
    let url = Url::parse(&format!(
        "tri://{}/org.example.Echo?version=1.0.0&timeout=300",
        proxy.address()
    ))
    .expect("url");
    let c: EchoClient = rpc_core::proxy::refer(&*tri(), url).await.expect("refer");
    assert_eq!(c.ping().await.expect("ping"), "pong");
    proxy.stall();
    let e = c.ping().await.expect_err("the path is dark");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match c.ping().await {
            Ok(pong) => {
                assert_eq!(pong, "pong");
                break;
            }
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still on the dark connection: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    unexport(exporters).await;
}

/// A provider PINGs its connections every `heartbeat` and closes one whose peer does not
/// answer: a client that vanished holds no connection for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_closes_a_connection_whose_peer_does_not_answer_pings() {
    let url =
        Url::parse("tri://127.0.0.1:0/org.example.Echo?version=1.0.0&heartbeat=200").expect("url");
    let exporter = rpc_core::proxy::export(&*tri(), url, EchoServer::new(Impl::default()))
        .await
        .expect("export");
    let port = exporter.url().port().expect("port");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // The HTTP/2 preface and an empty SETTINGS frame; then nothing is ever answered.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the provider closed the silent connection");
    exporter.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapper_mode_carries_serde_methods_unchanged() {
    let (_imp, exporters, port) = export_both(None).await;
    for serialization in ["msgpack", "json", "hessian2"] {
        let url =
            reference(port, "org.example.Echo").with_param(keys::SERIALIZATION, serialization);
        let c: EchoClient = rpc_core::proxy::refer(&*tri(), url).await.expect("refer");
        assert_eq!(c.greet("ann".into()).await.expect("greet"), "hello ann");
        assert_eq!(c.add(2, 1 << 40).await.expect("add"), 2 + (1 << 40));
        assert_eq!(c.ping().await.expect("ping"), "pong");
        assert_eq!(
            c.check("bob".into()).await.expect("rpc ok"),
            Err("no such user: bob".to_string()),
            "{serialization}"
        );
        assert_eq!(
            c.check("ann".into()).await.expect("rpc ok"),
            Ok("ann".into())
        );
        let e = c.boom().await.expect_err("panic");
        assert_eq!(e.kind(), ErrorKind::Biz, "{e}");
        assert!(e.message().contains("boom on purpose"), "{e}");
    }
    unexport(exporters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_mode_sends_the_messages_themselves() {
    let (_imp, exporters, port) = export_both(None).await;
    let c: ProtoGreeterClient =
        rpc_core::proxy::refer(&*tri(), reference(port, "org.example.Greeter"))
            .await
            .expect("refer");
    let reply = c
        .greet(GreetRequest { name: "ann".into() })
        .await
        .expect("rpc")
        .expect("reply");
    assert_eq!(reply.message, "hello ann");
    assert_eq!(
        c.greet(GreetRequest { name: "bob".into() })
            .await
            .expect("rpc"),
        Err("no such user: bob".to_string())
    );
    // The bytes on the wire are plain protobuf: the captured request of a stock grpcio
    // client (`0a03616e6e`, GreetRequest{name: "ann"}) is answered by this provider.
    let a = raw(
        port,
        "/org.example.Greeter/Greet",
        &[("tri-service-version", "1.0.0")],
        grpc_frame(&hex("0a03616e6e")),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(0), "{a:?}");
    assert_eq!(a.messages(), vec![hex("0a0968656c6c6f20616e6e")]);
    // dubbo-python 3.0.0b1 sent no version header at all: the one Greeter on the port serves.
    let a = raw(
        port,
        "/org.example.Greeter/Greet",
        &[],
        grpc_frame(&hex("0a0c647562626f2d707974686f6e")),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(0), "{a:?}");
    assert_eq!(a.messages()[0][2..], *b"hello dubbo-python");
    unexport(exporters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_travel_both_ways_and_an_expired_call_is_dropped() {
    let (imp, exporters, port) = export_both(None).await;
    let c: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(port, "org.example.Echo").with_param(keys::TIMEOUT, 100),
    )
    .await
    .expect("refer");
    let started = std::time::Instant::now();
    let e = c.sleep(1000).await.expect_err("deadline");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // The stream was reset, so the provider dropped the call: it never finishes.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        imp.finished.load(Ordering::SeqCst),
        0,
        "the cancelled call ran on"
    );
    assert_eq!(c.sleep(10).await.expect("in time"), 10);

    // A caller's grpc-timeout bounds the provider: DEADLINE_EXCEEDED, from the provider.
    let a = raw(
        port,
        "/org.example.Greeter/Greet",
        &[("grpc-timeout", "50m")],
        grpc_frame(&encode_request("sleep:2000")),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(4), "{a:?}");
    let a = raw(
        port,
        "/org.example.Greeter/Greet",
        &[("grpc-timeout", "soon")],
        grpc_frame(&encode_request("ann")),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(3), "{a:?}");
    assert!(a.grpc_message().contains("grpc-timeout"), "{a:?}");
    unexport(exporters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_grpc_status_and_back_to_kinds() {
    let (_imp, exporters, port) = export_both(None).await;
    // An interface not exported: UNIMPLEMENTED, and our consumer gets the exact kind.
    let invoker = tri()
        .refer(reference(port, "org.example.Nope"))
        .await
        .expect("refer");
    let call = rpc_core::Invocation::new(
        rpc_core::ServiceKey::new("org.example.Nope", None, Some("1.0.0")),
        "greet",
        rpc_core::Value::typed(("x".to_string(),)),
    );
    let e = invoker.invoke(call).await.expect_err("no service");
    assert_eq!(e.kind(), ErrorKind::ServiceNotFound, "{e}");
    assert!(e.message().contains("org.example.Nope:1.0.0"), "{e}");
    let a = raw(
        port,
        "/org.example.Nope/greet",
        &[],
        grpc_frame(b""),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(12), "{a:?}");
    // An unknown method of an exported service: UNIMPLEMENTED, the methods listed.
    let a = raw(
        port,
        "/org.example.Echo/nope",
        &[],
        grpc_frame(b""),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(12), "{a:?}");
    assert!(a.grpc_message().contains("greet"), "{a:?}");
    // The wrong version: none of that version is exported.
    let a = raw(
        port,
        "/org.example.Echo/greet",
        &[("tri-service-version", "9.9")],
        grpc_frame(b""),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(12), "{a:?}");
    // A provider that is not there: a network error, retriable.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c: EchoClient = rpc_core::proxy::refer(&*tri(), reference(dead, "org.example.Echo"))
        .await
        .expect("refer");
    let e = c.greet("x".into()).await.expect_err("down");
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    unexport(exporters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_to_a_provider_that_was_down_recovers() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = reference(port, "org.example.Echo").with_param(keys::RECONNECT_INTERVAL, 100);
    let invoker = tri().refer(url).await.expect("refer");
    // Down: the first dial failed, so the reference is unavailable during the back-off ...
    assert!(!invoker.is_available());
    // ... and available again after it, so that a call dials again.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(invoker.is_available());
    let c = EchoClient::new(invoker.clone());
    let e = c.greet("x".into()).await.expect_err("still down");
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    // The provider comes up on that port: the next call after the back-off connects.
    let exp = rpc_core::proxy::export(
        &*tri(),
        Url::parse(&format!(
            "tri://127.0.0.1:{port}/org.example.Echo?version=1.0.0"
        ))
        .expect("url"),
        EchoServer::new(Impl::default()),
    )
    .await
    .expect("export");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(invoker.is_available());
    assert_eq!(c.greet("ann".into()).await.expect("recovered"), "hello ann");
    assert!(invoker.is_available());
    exp.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_the_server_lives_on() {
    let (imp, exporters, port) = export_both(Some(1024)).await;
    let path = "/org.example.Greeter/Greet";
    // Wrong content type: HTTP 415, INVALID_ARGUMENT.
    let a = raw_with_type(port, path, "text/plain", &[], b"hi".to_vec(), Finish::End).await;
    assert_eq!(a.http, 415, "{a:?}");
    assert_eq!(a.grpc_status(), Some(3), "{a:?}");
    assert!(a.grpc_message().contains("text/plain"), "{a:?}");
    // A path that is not /{interface}/{method}.
    for p in ["/", "/org.example.Greeter", "/a/b/c"] {
        let a = raw(port, p, &[], grpc_frame(b""), Finish::End).await;
        assert_eq!(a.grpc_status(), Some(12), "{p}: {a:?}");
    }
    // Truncated: the prefix promises 10 bytes, 3 come, the stream ends.
    let mut t = BytesMut::new();
    t.put_u8(0);
    t.put_u32(10);
    t.put_slice(b"\x0a\x01a");
    let a = raw(port, path, &[], t.to_vec(), Finish::End).await;
    assert_eq!(a.grpc_status(), Some(13), "{a:?}");
    assert!(a.grpc_message().contains("truncated"), "{a:?}");
    // Shorter than a prefix.
    let a = raw(port, path, &[], vec![0, 0], Finish::End).await;
    assert_eq!(a.grpc_status(), Some(13), "{a:?}");
    // Oversized: refused from the length prefix, before the body is read.
    let mut big = BytesMut::new();
    big.put_u8(0);
    big.put_u32(1 << 30);
    big.put_slice(&[0; 64]);
    let a = raw(port, path, &[], big.to_vec(), Finish::Open).await;
    assert_eq!(a.grpc_status(), Some(8), "{a:?}");
    assert!(a.grpc_message().contains("over the limit"), "{a:?}");
    // Not protobuf at all.
    let a = raw(port, path, &[], grpc_frame(b"\xff\xff\xff"), Finish::End).await;
    assert_eq!(a.grpc_status(), Some(13), "{a:?}");
    // Compressed without an agreed encoding: a protocol error, INTERNAL (as grpc-go and
    // grpc-java answer it); an unsupported grpc-encoding: UNIMPLEMENTED, saying which
    // encodings are accepted.
    let mut z = grpc_frame(&encode_request("ann"));
    z[0] = 1;
    let a = raw(port, path, &[], z, Finish::End).await;
    assert_eq!(a.grpc_status(), Some(13), "{a:?}");
    let a = raw(
        port,
        path,
        &[("grpc-encoding", "gzip")],
        grpc_frame(&encode_request("ann")),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(12), "{a:?}");
    assert_eq!(
        a.headers.get("grpc-accept-encoding").map(|v| v.as_bytes()),
        Some(&b"identity"[..]),
        "{a:?}"
    );
    // Two messages for a unary method.
    let mut two = grpc_frame(&encode_request("a"));
    two.extend(grpc_frame(&encode_request("b")));
    let a = raw(port, path, &[], two, Finish::End).await;
    assert_eq!(a.grpc_status(), Some(13), "{a:?}");
    // Reset mid-call, before the message is complete and while the call runs.
    let mut half = grpc_frame(&encode_request("ann"));
    half.truncate(4);
    let a = raw(port, path, &[], half, Finish::Reset).await;
    assert_eq!(a.http, 0, "a reset stream gets no answer: {a:?}");
    let before = imp.finished.load(Ordering::SeqCst);
    let a = raw(
        port,
        path,
        &[],
        grpc_frame(&encode_request("sleep:300")),
        Finish::ResetAfterSend,
    )
    .await;
    assert_eq!(a.http, 0, "{a:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        imp.finished.load(Ordering::SeqCst),
        before,
        "the reset call was not dropped"
    );
    // A request that never ends, with a deadline: answered when the deadline passes.
    let started = std::time::Instant::now();
    let a = raw(
        port,
        path,
        &[("grpc-timeout", "200m")],
        grpc_frame(&encode_request("ann"))[..4].to_vec(),
        Finish::Open,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(4), "{a:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A GET.
    let a = raw_request(
        port,
        "GET",
        path,
        "application/grpc",
        &[],
        Vec::new(),
        Finish::End,
    )
    .await;
    assert_eq!(a.http, 405, "{a:?}");
    // Garbage instead of an HTTP/2 preface.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    }
    // Through all of that, the server still answers.
    let a = raw(
        port,
        path,
        &[],
        grpc_frame(&encode_request("ann")),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(0), "{a:?}");
    // The provider's own limit on results, and the consumer's on requests.
    let c: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(port, "org.example.Echo").with_param(keys::PAYLOAD, 1 << 20),
    )
    .await
    .expect("refer");
    let e = c
        .reverse(vec![7; 4096])
        .await
        .expect_err("over the provider's limit");
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert_eq!(
        c.reverse(vec![1, 2, 3]).await.expect("small"),
        vec![3, 2, 1]
    );
    let small: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(port, "org.example.Echo").with_param(keys::PAYLOAD, 64),
    )
    .await
    .expect("refer");
    let e = small
        .reverse(vec![7; 100])
        .await
        .expect_err("over the consumer's limit");
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    unexport(exporters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_call_unary_methods() {
    let (_imp, exporters, port) = export_both(None).await;
    let a = raw_with_type(
        port,
        "/org.example.Echo/add",
        "application/json",
        &[],
        b"[2, 40]".to_vec(),
        Finish::End,
    )
    .await;
    assert_eq!(a.http, 200, "{a:?}");
    assert_eq!(a.data, b"42");
    let a = raw_with_type(
        port,
        "/org.example.Greeter/greet",
        "application/json",
        &[],
        br#"{"name":"ann"}"#.to_vec(),
        Finish::End,
    )
    .await;
    assert_eq!(a.http, 200, "{a:?}");
    assert_eq!(a.data, br#"{"message":"hello ann"}"#);
    let a = raw_with_type(
        port,
        "/org.example.Echo/check",
        "application/json",
        &[],
        br#""bob""#.to_vec(),
        Finish::End,
    )
    .await;
    assert_eq!(a.http, 500, "{a:?}");
    assert!(
        String::from_utf8_lossy(&a.data).contains("no such user: bob"),
        "{a:?}"
    );
    // gRPC framing around JSON (`application/grpc+json`).
    let a = raw_with_type(
        port,
        "/org.example.Echo/add",
        "application/grpc+json",
        &[],
        grpc_frame(b"[2,3]"),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(0), "{a:?}");
    assert_eq!(a.messages(), vec![b"5".to_vec()]);
    let a = raw_with_type(
        port,
        "/org.example.Echo/add",
        "application/json",
        &[],
        b"[\"x\"]".to_vec(),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(13), "{a:?}");
    unexport(exporters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_provider_exports_a_service_on_dubbo_and_tri() {
    let imp = Impl::default();
    let dubbo = extension::get::<dyn Protocol>("dubbo").expect("dubbo");
    let d = rpc_core::proxy::export(
        &*dubbo,
        Url::parse("dubbo://127.0.0.1:0/org.example.Echo?version=1.0.0").expect("url"),
        EchoServer::new(imp.clone()),
    )
    .await
    .expect("dubbo export");
    let t = rpc_core::proxy::export(
        &*tri(),
        Url::parse("tri://127.0.0.1:0/org.example.Echo?version=1.0.0").expect("url"),
        EchoServer::new(imp.clone()),
    )
    .await
    .expect("tri export");
    let via_dubbo: EchoClient =
        rpc_core::proxy::refer(&*dubbo, d.url().with_param(keys::TIMEOUT, 3000))
            .await
            .expect("refer dubbo");
    let via_tri: EchoClient =
        rpc_core::proxy::refer(&*tri(), t.url().with_param(keys::TIMEOUT, 3000))
            .await
            .expect("refer tri");
    assert_eq!(
        via_dubbo.greet("ann".into()).await.expect("dubbo"),
        "hello ann"
    );
    assert_eq!(via_tri.greet("ann".into()).await.expect("tri"), "hello ann");
    d.unexport().await;
    t.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_balances_and_filters_tri_calls_like_dubbo_ones() {
    use rpc_core::bootstrap::{Consumer, Provider};
    use rpc_core::config::ServiceConfig;
    use rpc_examples::{GreeterClient, GreeterServer, SignedGreeter};
    let reg = "memory://tri-balance";
    let mut providers = Vec::new();
    for name in ["a", "b"] {
        providers.push(
            Provider::builder()
                .without_env()
                .application("tri-provider")
                .registry(reg)
                .expect("registry")
                .protocol("tri", 0)
                .service(GreeterServer::new(SignedGreeter { name: name.into() }))
                .start()
                .await
                .expect("provider"),
        );
    }
    let client: GreeterClient = Consumer::builder()
        .without_env()
        .application("tri-consumer")
        .registry(reg)
        .expect("registry")
        .reference_config("org.example.Greeter", ServiceConfig::default())
        .build()
        .await
        .expect("consumer")
        .reference::<GreeterClient>()
        .await
        .expect("reference");
    let mut seen = std::collections::HashSet::new();
    for i in 0..60 {
        let reply = client
            .greet(format!("n{i}"))
            .await
            .expect("rpc")
            .expect("reply");
        seen.insert(reply.rsplit("from ").next().unwrap_or_default().to_string());
    }
    assert_eq!(seen.len(), 2, "both tri providers served: {seen:?}");
    // One provider goes away: failover and the registry keep the calls going.
    let first = providers.remove(0);
    first.shutdown().await;
    for i in 0..20 {
        client
            .greet(format!("m{i}"))
            .await
            .expect("rpc")
            .expect("reply");
    }
    for p in providers {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_provider_serves_protobuf_mode_through_its_filters() {
    let provider = rpc_core::bootstrap::Provider::builder()
        .without_env()
        .no_registry()
        .application("tri-proto-provider")
        .host("127.0.0.1")
        .protocol("tri", 0)
        .service(ProtoGreeterServer::new(Impl::default()))
        .start()
        .await
        .expect("provider");
    let port = provider.port().expect("port");
    let a = raw(
        port,
        "/org.example.Greeter/Greet",
        &[],
        grpc_frame(&hex("0a03616e6e")),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(0), "{a:?}");
    assert_eq!(a.messages(), vec![hex("0a0968656c6c6f20616e6e")]);
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_travel_as_headers_both_ways() {
    let url = Url::parse(&format!(
        "tri://127.0.0.1:0/{}?version={}",
        rpc_tests::INTERFACE,
        rpc_tests::VERSION
    ))
    .expect("url");
    let exp = tri()
        .export(
            url.clone(),
            std::sync::Arc::new(rpc_tests::TestService::new(url)),
        )
        .await
        .expect("export");
    let invoker = tri()
        .refer(exp.url().with_param(keys::TIMEOUT, 3000))
        .await
        .expect("refer");
    let mut call = rpc_core::Invocation::new(
        rpc_core::ServiceKey::new(rpc_tests::INTERFACE, None, Some(rpc_tests::VERSION)),
        "attachment",
        rpc_core::Value::typed(()),
    );
    call.attachments_mut().insert("k", "from the consumer");
    let r = invoker.invoke(call).await.expect("call");
    assert_eq!(
        r.attachments.get("seen"),
        Some("yes"),
        "{:?}",
        r.attachments
    );
    assert_eq!(
        r.into_value::<String>().expect("value"),
        "from the consumer"
    );
    exp.unexport().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_filters_guard_tri_calls_too() {
    use rpc_core::bootstrap::{Consumer, Provider};
    use rpc_core::config::ServiceConfig;
    use rpc_examples::{GreeterClient, GreeterServer, SignedGreeter};
    let reg = "memory://tri-token";
    let provider = Provider::builder()
        .without_env()
        .application("tri-provider")
        .registry(reg)
        .expect("registry")
        .protocol("tri", 0)
        .param(keys::TOKEN, "true")
        .expect("key")
        .service(GreeterServer::new(SignedGreeter { name: "t".into() }))
        .start()
        .await
        .expect("provider");
    let port = provider.port().expect("port");
    // Through the registry the consumer learns the token and sends it as a header.
    let client: GreeterClient = Consumer::builder()
        .without_env()
        .application("tri-consumer")
        .registry(reg)
        .expect("registry")
        .reference_config("org.example.Greeter", ServiceConfig::default())
        .build()
        .await
        .expect("consumer")
        .reference::<GreeterClient>()
        .await
        .expect("reference");
    let reply = client
        .greet("ann".into())
        .await
        .expect("rpc")
        .expect("reply");
    assert!(reply.starts_with("hello ann"), "{reply}");
    // A direct caller without the token is refused by the provider's token filter.
    let wrapper = rpc_triple::wire::TripleRequestWrapper {
        serialize_type: "msgpack".into(),
        args: vec![Bytes::from_static(b"\xa3ann")],
        arg_types: vec!["java.lang.String".into()],
    };
    let a = raw(
        port,
        "/org.example.Greeter/greet",
        &[("tri-service-version", "1.0.0")],
        grpc_frame(&prost::Message::encode_to_vec(&wrapper)),
        Finish::End,
    )
    .await;
    assert_eq!(a.grpc_status(), Some(7), "{a:?}");
    assert!(a.grpc_message().contains("token"), "{a:?}");
    provider.shutdown().await;
}

/// A service of its own, so that its metrics are this test's alone.
#[rpc_core::service(name = "org.example.TriMetrics", version = "1.0.0")]
pub trait TriMetrics {
    /// Sleeps `ms`, then returns it.
    async fn nap(&self, ms: u64) -> u64;
}

struct Napper;

impl TriMetrics for Napper {
    async fn nap(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tri_calls_are_counted_by_the_metrics_filters_on_both_sides() {
    rpc_core::filter::metrics::install().expect("recorder");
    let exp = rpc_core::proxy::export(
        &*tri(),
        Url::parse("tri://127.0.0.1:0/org.example.TriMetrics?version=1.0.0").expect("url"),
        TriMetricsServer::new(Napper),
    )
    .await
    .expect("export");
    let c: TriMetricsClient =
        rpc_core::proxy::refer(&*tri(), exp.url().with_param(keys::TIMEOUT, 100))
            .await
            .expect("refer");
    for _ in 0..3 {
        assert_eq!(c.nap(1).await.expect("nap"), 1);
    }
    let e = c.nap(1000).await.expect_err("deadline");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let text = rpc_core::filter::metrics::render().expect("render");
    let value = |name: &str, labels: &[&str]| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let svc = r#"service="org.example.TriMetrics:1.0.0""#;
    assert_eq!(
        value("rpc_calls_total", &[svc, r#"side="consumer""#]),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        value(
            "rpc_errors_total",
            &[svc, r#"side="consumer""#, r#"kind="timeout""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value("rpc_calls_total", &[svc, r#"side="provider""#]).is_some_and(|n| n >= 3.0),
        "{text}"
    );
    exp.unexport().await;
}

/// A hostile provider: answers each call on `/x.Bad/{case}` with a broken response.
async fn bad_provider() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let case = req
                        .uri()
                        .path()
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        while let Some(Ok(c)) = body.data().await {
                            let _ = body.flow_control().release_capacity(c.len());
                        }
                        let ct = if case == "html" {
                            "text/html"
                        } else {
                            "application/grpc"
                        };
                        let mut head = http::Response::builder()
                            .status(if case == "unavailable" { 503 } else { 200 })
                            .header("content-type", ct);
                        if case == "badstatus" {
                            head = head.header("grpc-status", "nope");
                        }
                        // Trailers-only: how grpc-go, grpc-java and Dubbo end a stream of
                        // no messages (not hostile: the one well-formed case here).
                        if case == "Count" {
                            head = head.header("grpc-status", "0");
                        }
                        let head = head.body(()).expect("head");
                        let end = matches!(case.as_str(), "unavailable" | "badstatus" | "Count");
                        let Ok(mut send) = respond.send_response(head, end) else {
                            return;
                        };
                        if end {
                            return;
                        }
                        let data: Vec<u8> = match case.as_str() {
                            "huge" => [&[0u8, 0x7f, 0xff, 0xff, 0xff][..], &[0; 16]].concat(),
                            "truncated" => vec![0, 0, 0, 0, 9, 1, 2],
                            _ => grpc_frame(b"\x0a\x01x"),
                        };
                        let _ = send.send_data(
                            Bytes::from(data),
                            case == "nostatus" || case == "truncated",
                        );
                        if case != "nostatus" && case != "truncated" {
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let _ = send.send_trailers(t);
                        }
                    });
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_consumer_survives_a_hostile_provider() {
    let port = bad_provider().await;
    let invoker = tri()
        .refer(
            Url::parse(&format!(
                "tri://127.0.0.1:{port}/x.Bad?timeout=3000&payload=1024"
            ))
            .expect("url"),
        )
        .await
        .expect("refer");
    for (case, kind, text) in [
        ("html", ErrorKind::Codec, "text/html"),
        ("huge", ErrorKind::LimitExceeded, "over the limit"),
        ("truncated", ErrorKind::Codec, "truncated"),
        ("nostatus", ErrorKind::Network, "grpc-status"),
        ("unavailable", ErrorKind::Network, "503"),
        ("badstatus", ErrorKind::Codec, "grpc-status"),
    ] {
        let call = rpc_core::Invocation::new(
            rpc_core::ServiceKey::new("x.Bad", None, None),
            case.to_string(),
            rpc_core::Value::typed(("a".to_string(),)),
        );
        let e = invoker.invoke(call).await.expect_err(case);
        assert_eq!(e.kind(), kind, "{case}: {e}");
        assert!(e.message().contains(text), "{case}: {e}");
    }
}

/// A server stream of no messages answered trailers-only (`grpc-status: 0` in the response
/// headers, END_STREAM on them), as stock gRPC servers answer it, reads as an empty stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailers_only_answer_is_an_empty_stream() {
    let port = bad_provider().await;
    let url = Url::parse(&format!(
        "tri://127.0.0.1:{port}/org.example.Streamer?timeout=3000"
    ))
    .expect("url");
    let streamer: ProtoStreamerClient = rpc_core::proxy::refer(&*tri(), url).await.expect("refer");
    let items = streamer
        .count(CountRequest { n: 0 })
        .await
        .expect("call")
        .collect_all()
        .await
        .expect("an empty stream, not an error");
    assert!(items.is_empty(), "{items:?}");
}

// --- raw HTTP/2 -----------------------------------------------------------------------------

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn encode_request(name: &str) -> Vec<u8> {
    prost::Message::encode_to_vec(&GreetRequest { name: name.into() })
}

fn grpc_frame(m: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(5 + m.len());
    b.push(0);
    b.extend_from_slice(&u32::try_from(m.len()).expect("small").to_be_bytes());
    b.extend_from_slice(m);
    b
}

/// How the raw client ends its request stream.
#[derive(Clone, Copy, PartialEq)]
enum Finish {
    /// END_STREAM with the data.
    End,
    /// Leaves the stream open (the server answers from what it has).
    Open,
    /// RST_STREAM after the data, without waiting.
    Reset,
    /// END_STREAM with the data, RST_STREAM 100 ms later (while the call runs).
    ResetAfterSend,
}

/// What came back (`http` 0: nothing, the stream was reset).
#[derive(Debug, Default)]
struct Answer {
    http: u16,
    headers: http::HeaderMap,
    data: Vec<u8>,
    trailers: http::HeaderMap,
}

impl Answer {
    fn status_header(&self, name: &str) -> Option<&str> {
        self.trailers
            .get(name)
            .or_else(|| self.headers.get(name))
            .and_then(|v| v.to_str().ok())
    }

    fn grpc_status(&self) -> Option<u32> {
        self.status_header("grpc-status")
            .and_then(|s| s.parse().ok())
    }

    fn grpc_message(&self) -> String {
        let m = self.status_header("grpc-message").unwrap_or("");
        percent_decode(m)
    }

    fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut d = &self.data[..];
        while d.len() >= 5 {
            let len = u32::from_be_bytes([d[1], d[2], d[3], d[4]]) as usize;
            out.push(d[5..5 + len].to_vec());
            d = &d[5 + len..];
        }
        out
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn raw(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    finish: Finish,
) -> Answer {
    raw_with_type(port, path, "application/grpc", headers, body, finish).await
}

async fn raw_with_type(
    port: u16,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    finish: Finish,
) -> Answer {
    raw_request(port, "POST", path, content_type, headers, body, finish).await
}

/// An HTTP/2 connection to the provider at `port` (driven by a task of its own), ready to
/// open a stream.
async fn h2_connect(port: u16) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (send, conn) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send.ready().await.expect("ready")
}

async fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    finish: Finish,
) -> Answer {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut send = h2_connect(port).await;
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", content_type)
            .header("te", "trailers");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (response, mut stream) = send
            .send_request(req.body(()).expect("request"), false)
            .expect("send");
        let end = matches!(finish, Finish::End | Finish::ResetAfterSend);
        // The server may answer (an error) before the body is sent: the answer is what counts.
        let _ = stream.send_data(Bytes::from(body), end);
        match finish {
            Finish::Reset => {
                stream.send_reset(h2::Reason::CANCEL);
                return Answer::default();
            }
            Finish::ResetAfterSend => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stream.send_reset(h2::Reason::CANCEL);
                return Answer::default();
            }
            _ => {}
        }
        let response = response.await.expect("response");
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("chunk");
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.ok().flatten().unwrap_or_default();
        Answer {
            http: parts.status.as_u16(),
            headers: parts.headers,
            data,
            trailers,
        }
    })
    .await
    .expect("the server answers within 10 s")
}

/// `tri` over TLS: the certificates, mTLS and errors of the `dubbo` TLS support, over HTTP/2
/// (ALPN `h2`); a plaintext `tri` provider serves beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tri_over_tls_checks_certificates_and_serves_beside_plaintext() {
    use rpc_tests::pki::Ca;
    let ca = Ca::new("tri");
    let leaf = ca.leaf("tri-provider");
    let secure = |mtls: bool| {
        let mut u = Url::parse("tri://127.0.0.1:0/org.example.Echo?version=1.0.0")
            .expect("url")
            .with_param(keys::TLS, true)
            .with_param(keys::TLS_CERT, leaf.cert.display())
            .with_param(keys::TLS_KEY, leaf.key.display());
        if mtls {
            u = u.with_param(keys::TLS_CA, ca.pem().display());
        }
        u
    };
    let tls = rpc_core::proxy::export(&*tri(), secure(false), EchoServer::new(Impl::default()))
        .await
        .expect("export over TLS");
    let plain = rpc_core::proxy::export(
        &*tri(),
        Url::parse("tri://127.0.0.1:0/org.example.Echo?version=1.0.0").expect("url"),
        EchoServer::new(Impl::default()),
    )
    .await
    .expect("export in plaintext");
    let tls_port = tls.url().port().expect("port");
    let with_ca = reference(tls_port, "org.example.Echo")
        .with_param(keys::TLS, true)
        .with_param(keys::TLS_CA, ca.pem().display());
    let c: EchoClient = rpc_core::proxy::refer(&*tri(), with_ca.clone())
        .await
        .expect("refer");
    assert_eq!(c.greet("ann".into()).await.expect("over TLS"), "hello ann");
    let p: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(plain.url().port().expect("port"), "org.example.Echo"),
    )
    .await
    .expect("refer");
    assert_eq!(p.greet("bo".into()).await.expect("plaintext"), "hello bo");

    // A consumer without the CA, or with another one, is told why.
    let no_ca: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(tls_port, "org.example.Echo").with_param(keys::TLS, true),
    )
    .await
    .expect("refer");
    let e = no_ca.greet("x".into()).await.expect_err("no tls.ca");
    assert!(e.to_string().contains("tls.ca"), "{e}");
    let other = Ca::new("other");
    let wrong: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(tls_port, "org.example.Echo")
            .with_param(keys::TLS, true)
            .with_param(keys::TLS_CA, other.pem().display()),
    )
    .await
    .expect("refer");
    let e = wrong.greet("x".into()).await.expect_err("wrong CA");
    assert!(e.to_string().contains("tls.ca"), "{e}");
    // A plaintext HTTP/2 client gets nothing from the TLS port.
    let plain_to_tls: EchoClient =
        rpc_core::proxy::refer(&*tri(), reference(tls_port, "org.example.Echo"))
            .await
            .expect("refer");
    assert!(plain_to_tls.greet("x".into()).await.is_err());
    // The same port cannot also serve plaintext.
    let clash = Url::parse(&format!(
        "tri://127.0.0.1:{tls_port}/org.example.Other?version=1.0.0"
    ))
    .expect("url");
    let e = rpc_core::proxy::export(&*tri(), clash, EchoServer::new(Impl::default()))
        .await
        .err()
        .expect("a plaintext export on the TLS port");
    assert!(e.to_string().contains("already serves tri over TLS"), "{e}");

    // mTLS: a client without a certificate is refused, one with a certificate of the CA is not.
    let mtls = rpc_core::proxy::export(&*tri(), secure(true), EchoServer::new(Impl::default()))
        .await
        .expect("export with mTLS");
    let mport = mtls.url().port().expect("port");
    let anonymous: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(mport, "org.example.Echo")
            .with_param(keys::TLS, true)
            .with_param(keys::TLS_CA, ca.pem().display()),
    )
    .await
    .expect("refer");
    assert!(
        anonymous.greet("x".into()).await.is_err(),
        "no client certificate"
    );
    let me = ca.leaf("tri-client");
    let known: EchoClient = rpc_core::proxy::refer(
        &*tri(),
        reference(mport, "org.example.Echo")
            .with_param(keys::TLS, true)
            .with_param(keys::TLS_CA, ca.pem().display())
            .with_param(keys::TLS_CERT, me.cert.display())
            .with_param(keys::TLS_KEY, me.key.display()),
    )
    .await
    .expect("refer");
    assert_eq!(known.greet("cy".into()).await.expect("mTLS"), "hello cy");
    for e in [tls, plain, mtls] {
        e.unexport().await;
    }
}
