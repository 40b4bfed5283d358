//! The exchange's own limits against peers that misbehave on purpose: a frame never
//! finished (slow-loris), too many connections, too many requests in flight on one
//! connection, large half-sent frames beyond the server's budget, and a provider that stalls
//! in the middle of a response. Each time the offender is cut off and good calls go on.

use std::time::{Duration, Instant};

use rpc_core::exchange::{status, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN};
use rpc_core::serialize::ids;
use rpc_core::{ErrorKind, Value};
use rpc_tests::raw::{closed, connect, msgpack, response, still_serves};
use rpc_tests::{call, export_on, frame, kind_of, refer, refer_port, request_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQ: u8 = FLAG_REQUEST | FLAG_TWO_WAY;

fn echo_frame(id: u64, text: &str) -> Vec<u8> {
    let body = request_body("test.Echo", "1.0", "echo", &msgpack(&(text,)));
    frame(REQ | ids::MSGPACK, id, &body)
}

#[tokio::test]
async fn a_frame_not_finished_in_time_closes_its_connection_only() {
    let (exp, _) = export_on(0, "frame.timeout=300").await;
    let whole = echo_frame(1, "slow");
    // Half a header, and half a body: both are cut off at the frame deadline, long before
    // the idle timeout (180 s by default).
    let mut stalled = Vec::new();
    for cut in [5, HEADER_LEN + 3] {
        let mut s = connect(&*exp).await;
        s.write_all(&whole[..cut]).await.expect("send");
        stalled.push(s);
    }
    let started = Instant::now();
    for s in &mut stalled {
        closed(s, Duration::from_secs(5)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "not before the deadline: {:?}",
        started.elapsed()
    );
    still_serves(&*exp).await;

    // A peer that sends a frame a byte at a time but finishes within the deadline is served.
    let mut s = connect(&*exp).await;
    for chunk in whole.chunks(whole.len() / 4 + 1) {
        s.write_all(chunk).await.expect("send");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (st, id, _) = response(&mut s).await;
    assert_eq!((st, id), (status::OK, 1));
    exp.unexport().await;
}

#[tokio::test]
async fn connections_past_accepts_are_refused_and_the_others_keep_working() {
    let (exp, _) = export_on(0, "accepts=2").await;
    let mut first = connect(&*exp).await;
    let mut second = connect(&*exp).await;
    // Both are served (so both are really open, not queued).
    for (s, id) in [(&mut first, 1), (&mut second, 2)] {
        s.write_all(&echo_frame(id, "hi")).await.expect("send");
        assert_eq!(response(s).await.1, id);
    }
    let mut third = connect(&*exp).await;
    closed(&mut third, Duration::from_secs(5)).await;
    // The two open ones go on.
    first
        .write_all(&echo_frame(3, "again"))
        .await
        .expect("send");
    assert_eq!(response(&mut first).await.0, status::OK);
    drop(second);
    // A slot freed: a new connection is served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(&*exp).await;
        s.write_all(&echo_frame(4, "new")).await.expect("send");
        let mut h = [0u8; HEADER_LEN];
        match tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut h)).await {
            Ok(Ok(_)) => break,
            _ => assert!(Instant::now() < deadline, "a freed slot is reused"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    exp.unexport().await;
}

#[tokio::test]
async fn requests_past_the_connection_inflight_limit_are_refused_at_once() {
    let (exp, _) = export_on(0, "connection.inflight=2").await;
    let inv = refer(&*exp, "timeout=5000").await;
    let slow = || call("sleep", Value::typed((800u64,)));
    let both = {
        let inv = inv.clone();
        tokio::spawn(async move {
            let (a, b) = tokio::join!(inv.invoke(slow()), inv.invoke(slow()));
            (a.is_ok(), b.is_ok())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third on the same connection is refused, without waiting for the others.
    let started = Instant::now();
    let third = inv.invoke(slow()).await;
    assert_eq!(kind_of(third), ErrorKind::LimitExceeded);
    assert!(started.elapsed() < Duration::from_millis(600));
    // Another connection has its own allowance, meanwhile.
    let mut other = connect(&*exp).await;
    other
        .write_all(&echo_frame(5, "other"))
        .await
        .expect("send");
    assert_eq!(response(&mut other).await.0, status::OK);
    assert_eq!(both.await.expect("join"), (true, true));
    exp.unexport().await;
}

#[tokio::test]
async fn large_half_sent_frames_wait_for_the_budget_and_are_cut_off_at_their_deadline() {
    // Budget 1 MiB; each frame below announces 700 KiB: only one fits at a time.
    let (exp, _) = export_on(
        0,
        "payload.budget=1048576&payload=2097152&frame.timeout=1000",
    )
    .await;
    let big = "x".repeat(700 * 1024);
    let whole = echo_frame(7, &big);
    // The hog announces its frame and sends a tenth of it, then stalls.
    let mut hog = connect(&*exp).await;
    hog.write_all(&whole[..whole.len() / 10])
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A good peer sends the whole of a frame as large: it must wait for room, and is served
    // once the hog's deadline cut the hog off.
    let (mut rd, mut wr) = connect(&*exp).await.into_split();
    let sender = tokio::spawn(async move {
        wr.write_all(&whole).await.expect("send");
        wr
    });
    let mut h = [0u8; HEADER_LEN];
    tokio::time::timeout(Duration::from_secs(10), rd.read_exact(&mut h))
        .await
        .expect("the good frame is answered once the hog is cut off")
        .expect("header");
    assert_eq!(h[3], status::OK);
    assert_eq!(u64::from_be_bytes(h[4..12].try_into().expect("id")), 7);
    let len = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as usize;
    assert!(len > 700 * 1024, "the echo came back whole");
    drop(sender.await.expect("sender"));
    closed(&mut hog, Duration::from_secs(5)).await;
    still_serves(&*exp).await;
    exp.unexport().await;
}

/// A provider that starts a response and stops in the middle of it: the consumer gives the
/// connection up at the frame deadline (the call fails with a network error, well before its
/// own timeout) and connects again.
#[tokio::test]
async fn a_provider_stalled_mid_response_is_disconnected_at_the_frame_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let mut accepted = 0;
        while accepted < 2 {
            let (mut s, _) = listener.accept().await.expect("accept");
            accepted += 1;
            tokio::spawn(async move {
                let mut h = [0u8; HEADER_LEN];
                if s.read_exact(&mut h).await.is_err() {
                    return;
                }
                let len = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as usize;
                let mut body = vec![0u8; len];
                let _ = s.read_exact(&mut body).await;
                // Half a response header, then silence (but the socket stays open).
                let _ = s.write_all(&[0xda, 0xbb, 0x18, 20, 0, 0]).await;
                let mut sink = [0u8; 64];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
        accepted
    });
    let inv = refer_port(port, "frame.timeout=300&timeout=10000&heartbeat=60000").await;
    let started = Instant::now();
    let err = inv
        .invoke(call("echo", Value::typed(("x",))))
        .await
        .expect_err("the half response never completes");
    assert_eq!(err.kind(), ErrorKind::Network, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut at the frame deadline, not the call timeout: {:?}",
        started.elapsed()
    );
    // The client reconnects by itself (the listener sees a second connection).
    let accepted = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("reconnected")
        .expect("join");
    assert_eq!(accepted, 2);
}

/// The limits do not get in the way of ordinary traffic: many calls on one connection, and
/// frames delivered in small pieces, are all answered.
#[tokio::test]
async fn ordinary_traffic_is_not_affected() {
    let (exp, _) = export_on(0, "frame.timeout=2000&connection.inflight=64").await;
    let inv = refer(&*exp, "").await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..64 {
        let inv = inv.clone();
        calls.spawn(async move {
            inv.invoke(call("echo", Value::typed((format!("n{i}"),))))
                .await
        });
    }
    while let Some(r) = calls.join_next().await {
        let r = r.expect("join");
        assert!(r.is_ok(), "{:?}", r.err());
    }
    let mut s: TcpStream = connect(&*exp).await;
    let f = echo_frame(9, "pieces");
    for b in &f {
        s.write_all(std::slice::from_ref(b)).await.expect("send");
    }
    assert_eq!(response(&mut s).await.1, 9);
    exp.unexport().await;
}

/// Every cut-off is counted, by side and reason, in the metrics a provider exports.
#[tokio::test]
async fn cut_offs_are_counted_by_reason() {
    rpc_core::filter::metrics::install().expect("recorder");
    let (exp, _) = export_on(0, "frame.timeout=200&accepts=1").await;
    let mut slow = connect(&*exp).await;
    slow.write_all(&echo_frame(1, "x")[..7])
        .await
        .expect("send");
    // The only slot is taken by the slow connection: this one is refused.
    let mut extra = connect(&*exp).await;
    closed(&mut extra, Duration::from_secs(5)).await;
    closed(&mut slow, Duration::from_secs(5)).await;
    let text = rpc_core::filter::metrics::render().expect("render");
    for reason in ["slow_frame", "too_many_connections"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("rpc_connection_limits_total")
                    && l.contains(r#"side="provider""#)
                    && l.contains(&format!(r#"reason="{reason}""#))
            })
            .unwrap_or_else(|| panic!("no {reason} counter in:\n{text}"));
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("value");
        assert!(value >= 1.0, "{line}");
    }
    exp.unexport().await;
}
