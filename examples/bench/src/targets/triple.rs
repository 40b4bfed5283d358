//! `tri` / `tri-proto`: this framework's Triple protocol (gRPC over HTTP/2, one connection).
//!
//! `tri` exports the same hand-written echo [`Invoker`](rpc_core::Invoker) as `rpc` and calls
//! the invoker `refer` returns: wrapper mode, arguments in msgpack. `tri-proto` is the
//! workload of `tonic`: the message `bytes data = 1` as protobuf on `/bench.Echo/Echo`, served
//! by a `#[service]` skeleton and called through its generated client (protobuf mode), with
//! no filters on either side, like the tonic target.

use std::net::SocketAddr;
use std::sync::Arc;

use rpc_core::protocol::{Exporter, Protocol};
use rpc_core::{extension, Invoker, Url};

use crate::targets::framework::{EchoInvoker, SERVICE};
use crate::BoxResult;

/// `message EchoMsg { bytes data = 1; }`, also a serde type (what `#[service]` asks of every
/// argument).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct EchoMsg {
    /// The payload.
    #[prost(bytes = "vec", tag = "1")]
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// The echo service over protobuf (path `/bench.Echo/Echo`, as the tonic target's).
#[rpc_core::service(name = "bench.Echo")]
pub trait ProtoEcho {
    /// Returns the message.
    async fn echo(&self, message: EchoMsg) -> EchoMsg;
}

struct ProtoEchoImpl;

impl ProtoEcho for ProtoEchoImpl {
    async fn echo(&self, message: EchoMsg) -> EchoMsg {
        message
    }
}

fn tri() -> BoxResult<Arc<dyn Protocol>> {
    Ok(extension::get::<dyn Protocol>("tri")?)
}

/// Exports the echo on `127.0.0.1:port` (`proto`: the protobuf skeleton); returns the bound
/// port and the exporter.
pub async fn start_server(port: u16, proto: bool) -> BoxResult<(u16, Box<dyn Exporter>)> {
    let url = Url::parse(&format!("tri://127.0.0.1:{port}/{SERVICE}"))?;
    let invoker: Arc<dyn Invoker> = if proto {
        ProtoEchoServer::new(ProtoEchoImpl).into_invoker()
    } else {
        Arc::new(EchoInvoker { url: url.clone() })
    };
    let exporter = tri()?.export(url, invoker).await?;
    let port = exporter
        .url()
        .port()
        .filter(|p| *p != 0)
        .ok_or("the exporter's URL does not carry the bound port")?;
    Ok((port, exporter))
}

fn url(addr: SocketAddr) -> BoxResult<Url> {
    Ok(Url::parse(&format!(
        "tri://{addr}/{SERVICE}?timeout=10000"
    ))?)
}

/// The invoker `refer` returns (wrapper mode).
pub async fn connect(addr: SocketAddr) -> BoxResult<Arc<dyn Invoker>> {
    Ok(tri()?.refer(url(addr)?).await?)
}

/// The generated client over the invoker `refer` returns (protobuf mode).
pub async fn connect_proto(addr: SocketAddr) -> BoxResult<ProtoEchoClient> {
    Ok(ProtoEchoClient::new(tri()?.refer(url(addr)?).await?))
}

/// One protobuf call.
pub async fn call_proto(client: &ProtoEchoClient, payload: &[u8]) -> BoxResult<usize> {
    let back = client
        .echo(EchoMsg {
            data: payload.to_vec(),
        })
        .await?;
    Ok(back.data.len())
}
