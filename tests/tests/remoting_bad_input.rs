//! Malformed input against a real loopback server: each case gets the right status when the
//! request id is known, else its connection is closed; the server keeps serving others.

use std::time::Duration;

use rpc_core::exchange::{status, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN};
use rpc_core::serialize::ids;
use rpc_core::{ErrorKind, Value};
use rpc_tests::raw::{closed, connect, msgpack, response, still_serves};
use rpc_tests::{call, export_on, frame, kind_of, refer, request_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQ: u8 = FLAG_REQUEST | FLAG_TWO_WAY;

#[tokio::test]
async fn a_valid_raw_request_is_answered() {
    let (exp, _) = export_on(0, "").await;
    let mut s = connect(&*exp).await;
    let body = request_body("test.Echo", "1.0", "echo", &msgpack(&("raw",)));
    s.write_all(&frame(REQ | ids::MSGPACK, 42, &body))
        .await
        .expect("send");
    let (st, id, body) = response(&mut s).await;
    assert_eq!((st, id), (status::OK, 42));
    // kind 1 (value), no attachments, value section = msgpack "raw"
    assert_eq!(
        body,
        [&[1u8, 0, 0, 0, 0, 0, 4][..], &msgpack(&"raw")].concat()
    );
    exp.unexport().await;
}

#[tokio::test]
async fn bad_magic_closes_only_that_connection() {
    let (exp, _) = export_on(0, "").await;
    let mut s = connect(&*exp).await;
    s.write_all(&[0x12u8; 32]).await.expect("send");
    closed(&mut s, Duration::from_secs(5)).await;
    still_serves(&*exp).await;
    exp.unexport().await;
}

#[tokio::test]
async fn truncated_header_and_truncated_body_close_the_connection() {
    let (exp, _) = export_on(0, "").await;
    let body = request_body("test.Echo", "1.0", "echo", &msgpack(&("x",)));
    let whole = frame(REQ | ids::MSGPACK, 1, &body);
    for cut in [10, HEADER_LEN + body.len() / 2] {
        let mut s = connect(&*exp).await;
        s.write_all(&whole[..cut]).await.expect("send");
        s.shutdown().await.expect("half-close");
        closed(&mut s, Duration::from_secs(5)).await;
        still_serves(&*exp).await;
    }
    exp.unexport().await;
}

#[tokio::test]
async fn body_over_the_payload_limit_is_answered_bad_request_and_skipped() {
    let (exp, _) = export_on(0, "payload=1024").await;
    let mut s = connect(&*exp).await;
    let big = vec![0x55u8; 4096];
    s.write_all(&frame(REQ | ids::MSGPACK, 99, &big))
        .await
        .expect("send");
    let (st, id, body) = response(&mut s).await;
    assert_eq!((st, id), (status::BAD_REQUEST, 99));
    assert!(String::from_utf8_lossy(&body).contains("payload limit"));
    // The refused body was skipped: the next frame on the same connection is served.
    let good = request_body("test.Echo", "1.0", "echo", &msgpack(&("y",)));
    s.write_all(&frame(REQ | ids::MSGPACK, 100, &good))
        .await
        .expect("send");
    assert_eq!(response(&mut s).await.0, status::OK);
    // A header announcing a huge body is refused at once, nothing is buffered for it.
    let mut header = frame(REQ | ids::MSGPACK, 101, &[]);
    header[12..16].copy_from_slice(&(64u32 * 1024 * 1024).to_be_bytes());
    s.write_all(&header).await.expect("send");
    let (st, id, _) = response(&mut s).await;
    assert_eq!((st, id), (status::BAD_REQUEST, 101));
    still_serves(&*exp).await;
    exp.unexport().await;
}

#[tokio::test]
async fn unknown_serialization_id_is_bad_request() {
    let (exp, _) = export_on(0, "").await;
    let mut s = connect(&*exp).await;
    let body = request_body("test.Echo", "1.0", "echo", &msgpack(&("x",)));
    s.write_all(&frame(REQ | 3, 7, &body)).await.expect("send");
    let (st, id, body) = response(&mut s).await;
    assert_eq!((st, id), (status::BAD_REQUEST, 7));
    assert!(String::from_utf8_lossy(&body).contains("unknown serialization id 3"));
    // The same connection goes on.
    let good = request_body("test.Echo", "1.0", "echo", &msgpack(&("y",)));
    s.write_all(&frame(REQ | ids::MSGPACK, 8, &good))
        .await
        .expect("send");
    assert_eq!(response(&mut s).await.0, status::OK);
    still_serves(&*exp).await;
    exp.unexport().await;
}

#[tokio::test]
async fn undecodable_body_is_bad_request() {
    let (exp, _) = export_on(0, "").await;
    let mut s = connect(&*exp).await;
    for (id, garbage) in [(1u64, &b"\x01\xff\xff"[..]), (2, b"\x09"), (3, b"")] {
        s.write_all(&frame(REQ | ids::MSGPACK, id, garbage))
            .await
            .expect("send");
        let (st, got, _) = response(&mut s).await;
        assert_eq!((st, got), (status::BAD_REQUEST, id));
    }
    still_serves(&*exp).await;
    exp.unexport().await;
}

#[tokio::test]
async fn unknown_service_unknown_method_and_wrong_arguments_get_their_status() {
    let (exp, _) = export_on(0, "").await;
    let mut s = connect(&*exp).await;
    let cases = [
        (
            request_body("test.Nope", "1.0", "echo", &msgpack(&("x",))),
            status::SERVICE_NOT_FOUND,
        ),
        (
            request_body("test.Echo", "1.0", "nosuch", &msgpack(&("x",))),
            status::SERVICE_ERROR,
        ),
        (
            request_body("test.Echo", "1.0", "add", &msgpack(&("x",))),
            status::BAD_REQUEST,
        ),
        (
            request_body("test.Echo", "1.0", "add", b"\xc1"),
            status::BAD_REQUEST,
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        s.write_all(&frame(REQ | ids::MSGPACK, i as u64, body))
            .await
            .expect("send");
        let (st, id, _) = response(&mut s).await;
        assert_eq!((st, id), (*want, i as u64), "case {i}");
    }
    // The same failures through a reference keep their kinds.
    let inv = refer(&*exp, "").await;
    assert_eq!(
        kind_of(inv.invoke(call("nosuch", Value::Empty)).await),
        ErrorKind::MethodNotFound
    );
    assert_eq!(
        kind_of(inv.invoke(call("add", Value::typed(("x",)))).await),
        ErrorKind::Codec
    );
    still_serves(&*exp).await;
    exp.unexport().await;
}

#[tokio::test]
async fn a_peer_that_stalls_mid_frame_is_closed_after_the_idle_timeout() {
    let (exp, _) = export_on(0, "idle.timeout=300").await;
    let mut s = connect(&*exp).await;
    let body = request_body("test.Echo", "1.0", "echo", &msgpack(&("x",)));
    let whole = frame(REQ | ids::MSGPACK, 5, &body);
    s.write_all(&whole[..HEADER_LEN + 2])
        .await
        .expect("half a frame");
    // Others are served while it stalls.
    still_serves(&*exp).await;
    let t0 = tokio::time::Instant::now();
    closed(&mut s, Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    still_serves(&*exp).await;
    exp.unexport().await;
}

/// Idle means nothing received for the idle timeout: a peer that keeps sending for several
/// times that long stays connected, and closed once it goes quiet.
#[tokio::test]
async fn a_busy_peer_outlives_the_idle_timeout_and_a_quiet_one_does_not() {
    let (exp, _) = export_on(0, "idle.timeout=300").await;
    let mut s = connect(&*exp).await;
    let body = request_body("test.Echo", "1.0", "echo", &msgpack(&("x",)));
    let t0 = tokio::time::Instant::now();
    let mut id = 0u64;
    let mut last_sent = t0;
    while t0.elapsed() < Duration::from_millis(1200) {
        id += 1;
        last_sent = tokio::time::Instant::now();
        s.write_all(&frame(REQ | ids::MSGPACK, id, &body))
            .await
            .expect("send while busy");
        let (st, answered, _) = response(&mut s).await;
        assert_eq!((st, answered), (status::OK, id));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        last_sent.elapsed() >= Duration::from_millis(300),
        "closed only once quiet for the idle timeout"
    );
    exp.unexport().await;
}

#[tokio::test]
async fn a_peer_that_never_reads_its_answers_is_closed() {
    let (exp, _) = export_on(0, "idle.timeout=300").await;
    let mut s = connect(&*exp).await;
    // ~25 MB of answers, far more than the socket buffers hold.
    let body = request_body(
        "test.Echo",
        "1.0",
        "repeat",
        &msgpack(&("x".repeat(1024), 128usize)),
    );
    for id in 0..200u64 {
        s.write_all(&frame(REQ | ids::MSGPACK, id, &body))
            .await
            .expect("send");
    }
    // Others are served meanwhile.
    still_serves(&*exp).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Drain what was buffered; the stream must end (closed by the server).
    let mut buf = vec![0u8; 1 << 20];
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(tokio::time::Instant::now() < until, "connection not closed");
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("server neither sends nor closes"),
        }
    }
    still_serves(&*exp).await;
    exp.unexport().await;
}

#[tokio::test]
async fn answers_still_executing_are_written_after_the_peer_stops_sending() {
    let (exp, _) = export_on(0, "").await;
    let mut s = connect(&*exp).await;
    // A waiting request and a prompt one in the same write, then the write side is shut.
    let slow = request_body("test.Echo", "1.0", "sleep", &msgpack(&(300u64,)));
    let quick = request_body("test.Echo", "1.0", "echo", &msgpack(&("quick",)));
    let both = [
        frame(REQ | ids::MSGPACK, 1, &slow),
        frame(REQ | ids::MSGPACK, 2, &quick),
    ]
    .concat();
    s.write_all(&both).await.expect("send");
    s.shutdown().await.expect("half-close");
    // The prompt one is answered first, the waiting one when it is done, then the server
    // closes its side.
    let (st, id, _) = response(&mut s).await;
    assert_eq!((st, id), (status::OK, 2));
    let (st, id, _) = response(&mut s).await;
    assert_eq!((st, id), (status::OK, 1));
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0, "nothing after the two answers");
    still_serves(&*exp).await;
    exp.unexport().await;
}
