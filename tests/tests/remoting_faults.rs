//! The exchange under faults: timeouts, provider restarts, dead peers, stray responses.

use std::time::Duration;

use rpc_core::exchange::{dropped_responses, HEADER_LEN};
use rpc_core::{ErrorKind, Value};
use rpc_tests::{call, echo, export_on, frame, kind_of, refer, refer_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[tokio::test]
async fn timeout_fires_on_time_and_the_connection_goes_on() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "timeout=5000&sleep.timeout=150").await;
    let t0 = Instant::now();
    let e = inv
        .invoke(call("sleep", Value::typed((2000u64,))))
        .await
        .expect_err("must time out");
    let took = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(1500),
        "method-level timeout of 150 ms fired after {took:?}"
    );
    assert_eq!(echo(&*inv, "next").await.expect("next call"), "next");
    exp.unexport().await;
}

#[tokio::test]
async fn invocation_deadline_beats_the_url_timeout() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "timeout=5000").await;
    let mut c = call("sleep", Value::typed((2000u64,)));
    c.set_timeout(Duration::from_millis(100));
    let t0 = Instant::now();
    assert_eq!(kind_of(inv.invoke(c).await), ErrorKind::Timeout);
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    exp.unexport().await;
}

#[tokio::test]
async fn provider_restart_is_survived_by_reconnect() {
    let (exp, _) = export_on(0, "").await;
    let port = exp.url().port().expect("port");
    let inv = refer(
        &*exp,
        "reconnect.interval=20&reconnect.max=200&timeout=10000",
    )
    .await;
    assert_eq!(echo(&*inv, "before").await.expect("before"), "before");
    exp.unexport().await;

    // Calls fail fast with Network while the provider is gone (not after the 3 s timeout).
    let t = Instant::now() + Duration::from_secs(5);
    let mut saw_network = false;
    while Instant::now() < t {
        let t0 = Instant::now();
        match echo(&*inv, "down").await {
            Err(e) if e.kind() == ErrorKind::Network => {
                assert!(
                    t0.elapsed() < Duration::from_secs(3),
                    "not fast: {:?}",
                    t0.elapsed()
                );
                saw_network = true;
                break;
            }
            Err(e) => panic!("unexpected error while down: {e}"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(saw_network, "calls kept succeeding after unexport");
    assert!(!inv.is_available());

    // Same port again: the client reconnects by itself.
    let (again, _) = export_on(port, "").await;
    let t = Instant::now() + Duration::from_secs(10);
    let mut back = false;
    while Instant::now() < t {
        if let Ok(s) = echo(&*inv, "after").await {
            assert_eq!(s, "after");
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "no reconnect within 10 s");
    assert!(inv.is_available());
    again.unexport().await;
}

/// A raw listener that reads one request frame and returns (stream, id, flag).
async fn read_request(s: &mut TcpStream) -> (u64, u8) {
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).await.expect("header");
    let len = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("body");
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[4..12]);
    (u64::from_be_bytes(id), h[2])
}

fn ok_body(value: &[u8]) -> Vec<u8> {
    let mut b = vec![1u8, 0, 0];
    b.extend_from_slice(&(value.len() as u32).to_be_bytes());
    b.extend_from_slice(value);
    b
}

/// Calls to a peer that reads requests and never answers: each times out at its deadline,
/// not before and at most a deadline tick (10 ms, plus scheduling) after, whether many wait
/// at once or one comes after the connection sat idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_a_silent_peer_never_answers_time_out_at_their_deadline() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        loop {
            read_request(&mut s).await;
        }
    });
    let inv = refer_port(port, "timeout=150").await;
    let timed = |inv: std::sync::Arc<dyn rpc_core::Invoker>| async move {
        let t0 = Instant::now();
        let e = tokio::time::timeout(
            Duration::from_secs(5),
            inv.invoke(call("echo", Value::typed(("x".to_string(),)))),
        )
        .await
        .expect("the call ended by itself")
        .expect_err("no answer");
        (e, t0.elapsed())
    };
    let check = |(e, took): (rpc_core::RpcError, Duration)| {
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(
            e.to_string().contains("before the deadline"),
            "the call's own deadline: {e}"
        );
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(600),
            "a 150 ms deadline fired after {took:?}"
        );
    };
    // Many waiting at once.
    let calls: Vec<_> = (0..20).map(|_| tokio::spawn(timed(inv.clone()))).collect();
    for c in calls {
        check(c.await.expect("task"));
    }
    // One after the connection sat with nothing waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    check(timed(inv.clone()).await);
    server.abort();
}

/// A call its caller stops polling without dropping it (as a `select!` whose other branch won
/// leaves it) holds up neither the other calls on its connection nor its own answer: while
/// it was alone it read the socket for itself, and the connection's reader task takes the
/// socket back once another call waits.
#[tokio::test]
async fn a_call_left_unpolled_holds_up_no_other_call() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "timeout=10000").await;
    assert_eq!(echo(&*inv, "warm").await.expect("warm"), "warm");
    let slow = inv.invoke(call("sleep", Value::typed((300u64,))));
    tokio::pin!(slow);
    assert!(
        tokio::time::timeout(Duration::from_millis(30), &mut slow)
            .await
            .is_err(),
        "still sleeping"
    );
    // Not polled from here on, until the others are answered.
    let t0 = Instant::now();
    for i in 0..5 {
        let text = format!("other {i}");
        assert_eq!(echo(&*inv, &text).await.expect("answered"), text);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the other calls waited {:?}",
        t0.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let slept: u64 = tokio::time::timeout(Duration::from_millis(500), slow)
        .await
        .expect("its answer was read meanwhile")
        .expect("answered")
        .into_value()
        .expect("a number");
    assert_eq!(slept, 300);
    exp.unexport().await;
}

#[tokio::test]
async fn pending_calls_fail_fast_when_the_connection_dies() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let _ = read_request(&mut s).await;
        // Crash without answering.
        drop(s);
        l
    });
    let inv = refer_port(port, "timeout=10000&reconnect.interval=5000").await;
    let t0 = Instant::now();
    let e = inv
        .invoke(call("echo", Value::typed(("x".to_string(),))))
        .await
        .expect_err("connection died");
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    drop(server.await.expect("server"));
}

#[tokio::test]
async fn a_silent_peer_is_declared_dead_after_three_heartbeats() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        // Read everything (requests, heartbeats), never answer.
        let mut sink = vec![0u8; 4096];
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut sink)).await {
                Ok(Ok(0)) => break,
                Ok(Err(_)) => break,
                _ => {}
            }
        }
    });
    let inv = refer_port(port, "heartbeat=100&timeout=10000&reconnect.interval=5000").await;
    let t0 = Instant::now();
    let e = inv
        .invoke(call("echo", Value::typed(("x".to_string(),))))
        .await
        .expect_err("dead peer");
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "dead after {took:?}"
    );
    server.abort();
}

#[tokio::test]
async fn a_response_for_an_unknown_id_is_ignored() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        for _ in 0..2 {
            let (id, flag) = read_request(&mut s).await;
            let ser = flag & 0x1f;
            // msgpack "ok" = fixstr 0xa2 'o' 'k'
            let stray = frame(
                ser,
                id.wrapping_add(1_000_000),
                &ok_body(&[0xa2, b'n', b'o']),
            );
            let mut real = frame(ser, id, &ok_body(&[0xa2, b'o', b'k']));
            real[3] = 20;
            let mut stray = stray;
            stray[3] = 20;
            s.write_all(&stray).await.expect("stray");
            s.write_all(&real).await.expect("real");
        }
        // Keep the connection open until the test ends.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b).await;
    });
    let inv = refer_port(port, "").await;
    let before = dropped_responses();
    for _ in 0..2 {
        assert_eq!(echo(&*inv, "x").await.expect("answer"), "ok");
    }
    assert!(dropped_responses() >= before + 2);
    server.abort();
}

#[tokio::test]
async fn a_saturated_provider_answers_limit_exceeded_at_once() {
    let (exp, _) = export_on(0, "threads=1").await;
    let inv = refer(&*exp, "timeout=5000").await;
    let slow = tokio::spawn({
        let inv = inv.clone();
        async move { inv.invoke(call("sleep", Value::typed((1500u64,)))).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    assert_eq!(kind_of(echo(&*inv, "x").await), ErrorKind::LimitExceeded);
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    slow.await
        .expect("join")
        .expect("the running call completes");
    assert_eq!(echo(&*inv, "y").await.expect("free again"), "y");
    exp.unexport().await;
}

#[tokio::test]
async fn a_result_over_the_provider_payload_limit_is_a_codec_error() {
    let (exp, _) = export_on(0, "payload=1024").await;
    let inv = refer(&*exp, "").await;
    let e = inv
        .invoke(call("repeat", Value::typed(("ab".to_string(), 2000usize))))
        .await
        .expect_err("too large");
    assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
    assert!(e.to_string().contains("payload limit"), "{e}");
    assert_eq!(
        echo(&*inv, "small").await.expect("connection fine"),
        "small"
    );
    exp.unexport().await;
}

#[tokio::test]
async fn idle_connections_send_heartbeats_and_answered_ones_stay_up() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut beats = 0u32;
        let until = Instant::now() + Duration::from_millis(700);
        while Instant::now() < until {
            let mut h = [0u8; HEADER_LEN];
            match tokio::time::timeout(Duration::from_millis(100), s.read_exact(&mut h)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
            let len = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as usize;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.expect("body");
            // request | two-way | event
            assert_eq!(h[2] & 0xe0, 0xe0, "only heartbeats on an idle connection");
            beats += 1;
            let mut reply = h;
            reply[2] = 0x20 | (h[2] & 0x1f);
            reply[3] = 20;
            s.write_all(&reply).await.expect("reply");
            // The heartbeat's null body (`N` in hessian2), echoed.
            s.write_all(&body).await.expect("reply body");
        }
        (beats, s)
    });
    let inv = refer_port(port, "heartbeat=100&reconnect.interval=5000").await;
    let (beats, _conn) = server.await.expect("server");
    assert!(beats >= 3, "only {beats} heartbeats in 700 ms at 100 ms");
    // Answered heartbeats keep the peer alive: past three intervals, still connected.
    assert!(inv.is_available());
}

#[tokio::test]
async fn a_response_over_the_consumer_payload_limit_fails_only_its_call() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "payload=2048").await;
    let big = inv.invoke(call("repeat", Value::typed(("ab".to_string(), 4000usize))));
    let small = echo(&*inv, "small");
    let (big, small) = tokio::join!(big, small);
    let e = big.expect_err("too large for the consumer");
    assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
    assert!(e.to_string().contains("payload limit"), "{e}");
    assert_eq!(small.expect("the other call is unaffected"), "small");
    assert_eq!(
        echo(&*inv, "after").await.expect("connection fine"),
        "after"
    );
    exp.unexport().await;
}

#[tokio::test]
async fn reconnects_to_a_flapping_peer_back_off_exponentially() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let accepts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = accepts.clone();
    let server = tokio::spawn(async move {
        // Accept and drop at once, for ever.
        while let Ok((s, _)) = l.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    let inv = refer_port(port, "reconnect.interval=50&reconnect.max=200").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let n = accepts.load(std::sync::atomic::Ordering::SeqCst);
    // 50, 100, 200, 200, ... ms between attempts: about 7 in 1.2 s; a spin would be thousands.
    assert!((2..=20).contains(&n), "{n} connection attempts in 1.2 s");
    assert_eq!(kind_of(echo(&*inv, "x").await), ErrorKind::Network);
    server.abort();
}

#[tokio::test]
async fn connections_n_opens_n_and_round_robins_over_them() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..3 {
            let (s, _) = l.accept().await.expect("accept");
            conns.push(tokio::spawn(async move {
                let mut s = s;
                let mut served = 0u32;
                for _ in 0..10 {
                    let (id, flag) = read_request(&mut s).await;
                    let mut f = frame(flag & 0x1f, id, &ok_body(&[0xa2, b'o', b'k']));
                    f[3] = 20;
                    s.write_all(&f).await.expect("answer");
                    served += 1;
                }
                (served, s)
            }));
        }
        let mut counts = Vec::new();
        let mut keep = Vec::new();
        for c in conns {
            let (n, s) = c.await.expect("conn");
            counts.push(n);
            keep.push(s);
        }
        (counts, keep)
    });
    let inv = refer_port(port, "connections=3&timeout=5000").await;
    for _ in 0..30 {
        assert_eq!(echo(&*inv, "x").await.expect("call"), "ok");
    }
    let (counts, _keep) = server.await.expect("server");
    assert_eq!(counts, vec![10, 10, 10]);
}
