//! A response that arrives after its call timed out is dropped and counted (alone in this
//! test binary, so the process-wide counter moves only because of it).

use std::time::Duration;

use rpc_core::exchange::{dropped_responses, HEADER_LEN};
use rpc_core::{ErrorKind, Value};
use rpc_tests::{call, echo, frame, kind_of, refer_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

#[tokio::test]
async fn a_late_response_is_dropped_and_later_calls_are_unaffected() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        for delay in [1500u64, 0] {
            let mut h = [0u8; HEADER_LEN];
            s.read_exact(&mut h).await.expect("header");
            let len = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as usize;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.expect("body");
            let mut id = [0u8; 8];
            id.copy_from_slice(&h[4..12]);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            // status OK, value "ok" in msgpack
            let mut f = frame(
                h[2] & 0x1f,
                u64::from_be_bytes(id),
                &[1, 0, 0, 0, 0, 0, 3, 0xa2, b'o', b'k'],
            );
            f[3] = 20;
            s.write_all(&f).await.expect("answer");
        }
        let mut b = [0u8; 1];
        let _ = s.read(&mut b).await;
    });
    let inv = refer_port(port, "timeout=100").await;
    let before = dropped_responses();
    let t0 = Instant::now();
    assert_eq!(
        kind_of(inv.invoke(call("echo", Value::typed(("a",)))).await),
        ErrorKind::Timeout
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t0.elapsed()
    );
    let until = Instant::now() + Duration::from_secs(5);
    while dropped_responses() == before && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        dropped_responses(),
        before + 1,
        "the late answer was dropped once"
    );
    let inv2 = refer_port(port, "timeout=5000").await;
    assert_eq!(echo(&*inv2, "b").await.expect("next call paired"), "ok");
    server.abort();
}
