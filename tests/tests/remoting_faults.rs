//! The exchange under faults: timeouts, provider restarts, dead peers, stray responses.

use std::time::Duration;

use rpc_core::exchange::{dropped_responses, HEADER_LEN};
use rpc_core::{ErrorKind, Value};
use rpc_tests::{call, echo, export_on, frame, kind_of, refer, refer_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[tokio::test]
async fn timeout_fires_on_time_and_the_late_response_is_dropped() {
    let (exp, _) = export_on(0, "").await;
    let inv = refer(&*exp, "timeout=5000&sleep.timeout=150").await;
    let before = dropped_responses();
    let t0 = Instant::now();
    let e = inv
        .invoke(call("sleep", Value::typed((600u64,))))
        .await
        .expect_err("must time out");
    let took = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(550),
        "method-level timeout of 150 ms fired after {took:?}"
    );
    // The provider still answers at ~600 ms; nobody waits for it any more.
    let t = Instant::now() + Duration::from_secs(5);
    while dropped_responses() == before && Instant::now() < t {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        dropped_responses() > before,
        "late response was not dropped"
    );
    // The connection is unaffected.
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
        "reconnect.interval=20&reconnect.max=200&timeout=3000",
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
                    t0.elapsed() < Duration::from_millis(1000),
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
