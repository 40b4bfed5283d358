//! Streaming methods over `tri` (and in process over `injvm`): server, client and
//! bidirectional streams in protobuf and wrapper mode, interleaving, errors in a stream,
//! cancellation both ways, deadlines, and protocols that cannot carry streams refusing them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::protocol::{Exporter, Protocol};
use rpc_core::{extension, ErrorKind, Streaming, Url};
use rpc_tests::triple::{
    CountRequest, Impl, Number, ProtoStreamerClient, ProtoStreamerServer, WordsClient, WordsServer,
};

fn protocol(name: &str) -> std::sync::Arc<dyn Protocol> {
    extension::get::<dyn Protocol>(name).expect("linked")
}

async fn export(imp: &Impl) -> (Vec<Box<dyn Exporter>>, u16) {
    let tri = protocol("tri");
    let a = rpc_core::proxy::export(
        &*tri,
        Url::parse("tri://127.0.0.1:0/org.example.Streamer").expect("url"),
        ProtoStreamerServer::new(imp.clone()),
    )
    .await
    .expect("export streamer");
    let port = a.url().port().expect("port");
    let b = rpc_core::proxy::export(
        &*tri,
        Url::parse(&format!(
            "tri://127.0.0.1:{port}/org.example.Words?version=1.0.0"
        ))
        .expect("url"),
        WordsServer::new(imp.clone()),
    )
    .await
    .expect("export words");
    (vec![a, b], port)
}

async fn clients(port: u16, timeout_ms: u64) -> (ProtoStreamerClient, WordsClient) {
    let tri = protocol("tri");
    let url = |i: &str| {
        Url::parse(&format!("tri://127.0.0.1:{port}/{i}?timeout={timeout_ms}")).expect("url")
    };
    (
        rpc_core::proxy::refer(&*tri, url("org.example.Streamer"))
            .await
            .expect("refer"),
        rpc_core::proxy::refer(
            &*tri,
            url("org.example.Words").with_param(keys::VERSION, "1.0.0"),
        )
        .await
        .expect("refer"),
    )
}

fn n(value: i64) -> Number {
    Number { value }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_client_and_bidi_streams_in_both_modes() {
    let imp = Impl::default();
    let (exporters, port) = export(&imp).await;
    let (streamer, words) = clients(port, 5000).await;

    let counted = streamer
        .count(CountRequest { n: 5 })
        .await
        .expect("call")
        .collect_all()
        .await
        .expect("items");
    assert_eq!(counted, (1..=5).map(n).collect::<Vec<_>>());
    let letters = words
        .letters("abc".into())
        .await
        .expect("call")
        .collect_all()
        .await
        .expect("items");
    assert_eq!(letters, ["a", "b", "c"]);

    let sum = streamer
        .sum(Streaming::from_iter((1..=100).map(n)))
        .await
        .expect("sum");
    assert_eq!(sum.value, 5050);
    let joined = words
        .join(Streaming::from_iter([
            "x".to_string(),
            "y".into(),
            "z".into(),
        ]))
        .await
        .expect("join");
    assert_eq!(joined, "x-y-z");
    // An empty client stream.
    assert_eq!(
        streamer
            .sum(Streaming::from_iter(Vec::new()))
            .await
            .expect("sum")
            .value,
        0
    );

    // Bidirectional and interleaved: each answer comes before the next item is sent.
    let (tx, rx) = Streaming::channel(1);
    let mut doubled = streamer.double(rx).await.expect("call");
    for i in 1..=5 {
        tx.send(n(i)).await.expect("send");
        let got = tokio::time::timeout(Duration::from_secs(5), doubled.message())
            .await
            .expect("an answer per item, not at the end")
            .expect("item")
            .expect("ok");
        assert_eq!(got.value, 2 * i);
    }
    drop(tx);
    assert!(
        doubled.message().await.is_none(),
        "ends when the caller's stream ends"
    );

    let (tx, rx) = Streaming::channel(4);
    let mut upper = words.upper(rx).await.expect("call");
    tx.send("ann".into()).await.expect("send");
    assert_eq!(upper.message().await.expect("item").expect("ok"), "ANN");
    drop(tx);
    assert!(upper.message().await.is_none());

    // An error item ends the stream, with its kind.
    let mut failed = streamer
        .double(Streaming::from_iter([n(1), n(-3), n(4)]))
        .await
        .expect("call");
    assert_eq!(failed.message().await.expect("item").expect("ok").value, 2);
    let e = failed
        .message()
        .await
        .expect("item")
        .expect_err("error item");
    assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
    assert!(e.message().contains("negative: -3"), "{e}");
    assert!(failed.message().await.is_none());
    for e in exporters {
        e.unexport().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_cancels_the_other_side() {
    let imp = Impl::default();
    let (exporters, port) = export(&imp).await;
    let (streamer, _) = clients(port, 30_000).await;

    // The consumer drops an endless server stream: the provider's producer stops.
    let mut endless = streamer.count(CountRequest { n: 0 }).await.expect("call");
    for i in 1..=3 {
        assert_eq!(endless.message().await.expect("item").expect("ok").value, i);
    }
    drop(endless);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = imp.emitted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        imp.emitted.load(Ordering::SeqCst),
        stopped_at,
        "the provider kept producing after the consumer dropped the stream"
    );

    // The provider ends a bidi call early (an error): the consumer's producer sees it.
    let (tx, rx) = Streaming::channel(1);
    let mut doubled = streamer.double(rx).await.expect("call");
    tx.send(n(-1)).await.expect("send");
    let e = doubled.message().await.expect("item").expect_err("error");
    assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
    drop(doubled);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if tx.send(n(1)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the consumer's sender never saw the call end"
    );
    for e in exporters {
        e.unexport().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_back_the_producer() {
    let imp = Impl::default();
    let (exporters, port) = export(&imp).await;
    let (_, words) = clients(port, 30_000).await;
    const SIZE: u32 = 64 << 10;
    let mut blobs = words.blobs(SIZE).await.expect("call");
    for _ in 0..2 {
        let b = blobs.message().await.expect("item").expect("ok");
        assert_eq!(b.len(), SIZE as usize);
    }
    // The reader stops: the producer may fill the HTTP/2 windows and buffers (a few MiB),
    // then waits. Unbounded, it would make thousands of blobs in this time.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let early = imp.emitted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = imp.emitted.load(Ordering::SeqCst);
    assert_eq!(early, later, "the producer kept going while nobody read");
    assert!(later < 200, "{later} blobs of 64 KiB made for 2 read");
    // Reading resumes it.
    for _ in 0..50 {
        blobs.message().await.expect("item").expect("ok");
    }
    assert!(imp.emitted.load(Ordering::SeqCst) > later);
    drop(blobs);
    for e in exporters {
        e.unexport().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_a_timeout_at_the_deadline() {
    let imp = Impl::default();
    let (exporters, port) = export(&imp).await;
    let (streamer, _) = clients(port, 300).await;
    let started = std::time::Instant::now();
    let mut endless = streamer.count(CountRequest { n: 0 }).await.expect("call");
    let mut items = 0;
    let e = loop {
        match endless
            .message()
            .await
            .expect("the stream ends with an error")
        {
            Ok(_) => items += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(items > 3, "items came until the deadline: {items}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for e in exporters {
        e.unexport().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocols_without_streams_refuse_streaming_services_and_injvm_carries_them() {
    let dubbo = protocol("dubbo");
    let e = rpc_core::proxy::export(
        &*dubbo,
        Url::parse("dubbo://127.0.0.1:0/org.example.Words?version=1.0.0").expect("url"),
        WordsServer::new(Impl::default()),
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("cannot carry streams"), "{e}");
    let e = rpc_core::proxy::refer::<WordsClient>(
        &*dubbo,
        Url::parse("dubbo://127.0.0.1:1/org.example.Words?version=1.0.0").expect("url"),
    )
    .await
    .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");

    let injvm = protocol("injvm");
    let url = Url::parse("injvm://127.0.0.1/org.example.Words?version=1.0.0").expect("url");
    let exp = rpc_core::proxy::export(&*injvm, url.clone(), WordsServer::new(Impl::default()))
        .await
        .expect("export");
    let c: WordsClient = rpc_core::proxy::refer(&*injvm, url).await.expect("refer");
    let letters = c
        .letters("hi".into())
        .await
        .expect("call")
        .collect_all()
        .await
        .expect("items");
    assert_eq!(letters, ["h", "i"]);
    assert_eq!(
        c.join(Streaming::from_iter(["a".to_string(), "b".into()]))
            .await
            .expect("join"),
        "a-b"
    );
    exp.unexport().await;
}

/// A caller that grants no room to send in (an HTTP/2 window of 0, never read) does not hold
/// a server stream past its deadline: the stream ends with DEADLINE_EXCEEDED, which needs no
/// room, and the producer is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_takes_nothing_does_not_hold_a_stream_past_its_deadline() {
    let imp = Impl::default();
    let (exporters, port) = export(&imp).await;
    let trailers = tokio::time::timeout(Duration::from_secs(5), async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://127.0.0.1:{port}/org.example.Streamer/Count"
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "300m")
            .body(())
            .expect("request");
        let (response, mut stream) = send.send_request(req, false).expect("send");
        // `CountRequest { n: 0 }`: count until the caller goes away.
        stream
            .send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .expect("body");
        let mut body = response.await.expect("response").into_body();
        body.trailers().await.expect("trailers").expect("some")
    })
    .await
    .expect("the stream ends by its deadline");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "{trailers:?}"
    );
    let emitted = imp.emitted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        imp.emitted.load(Ordering::SeqCst),
        emitted,
        "the producer stopped"
    );
    for e in exporters {
        e.unexport().await;
    }
}

/// A provider going away gracefully (GOAWAY) while a stream keeps its connection open: a
/// call made then has not left, so it goes out on a new connection (to the provider that
/// took the port over) instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_goaway_goes_out_on_a_new_connection() {
    let imp = Impl::default();
    let (exporters, port) = export(&imp).await;
    let (streamer, _) = clients(port, 5_000).await;
    let mut endless = streamer.count(CountRequest { n: 0 }).await.expect("call");
    assert_eq!(endless.message().await.expect("item").expect("ok").value, 1);
    for e in exporters {
        e.unexport().await;
    }
    // HTTP/2 ends a connection in two steps (a GOAWAY, a PING round trip, the final GOAWAY);
    // a request opened before the consumer has the final one is still the old provider's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = rpc_core::proxy::export(
        &*protocol("tri"),
        Url::parse(&format!("tri://127.0.0.1:{port}/org.example.Streamer")).expect("url"),
        ProtoStreamerServer::new(imp.clone()),
    )
    .await
    .expect("export again on the same port");
    let counted = streamer
        .count(CountRequest { n: 2 })
        .await
        .expect("sent on a new connection")
        .collect_all()
        .await
        .expect("items");
    assert_eq!(counted.iter().map(|n| n.value).collect::<Vec<_>>(), [1, 2]);
    drop(endless);
    again.unexport().await;
}
