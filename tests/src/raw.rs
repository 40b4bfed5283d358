//! Raw sockets against a loopback provider: what the framework's own client would never
//! send (half frames, stalls, garbage), for the bad-input and limit tests.

use std::time::Duration;

use rpc_core::exchange::{FLAG_REQUEST, HEADER_LEN};
use rpc_core::protocol::Exporter;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::{echo, refer};

/// A plain TCP connection to `exp`'s port.
pub async fn connect(exp: &dyn Exporter) -> TcpStream {
    let port = exp.url().port().expect("port");
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect")
}

/// Reads one response: (status, id, body).
pub async fn response(s: &mut TcpStream) -> (u8, u64, Vec<u8>) {
    let mut h = [0u8; HEADER_LEN];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut h))
        .await
        .expect("response in time")
        .expect("header");
    assert_eq!(&h[..2], &[0xda, 0xbb]);
    assert_eq!(h[2] & FLAG_REQUEST, 0, "a response");
    let len = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("body");
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[4..12]);
    (h[3], u64::from_be_bytes(id), body)
}

/// Asserts the server closes this connection within `within`.
pub async fn closed(s: &mut TcpStream, within: Duration) {
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(within, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection not closed within {within:?}"),
        }
    }
}

/// A fresh client still gets served.
pub async fn still_serves(exp: &dyn Exporter) {
    let inv = refer(exp, "").await;
    assert_eq!(echo(&*inv, "ok").await.expect("server still serves"), "ok");
}

/// `v` encoded in msgpack.
pub fn msgpack(v: &impl serde::Serialize) -> Vec<u8> {
    let ser = rpc_core::extension::get::<dyn rpc_core::serialize::Serialization>("msgpack")
        .expect("msgpack");
    let mut out = Vec::new();
    ser.serialize(v, &mut out).expect("encode");
    out
}
