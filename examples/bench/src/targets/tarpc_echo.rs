//! `tarpc`: the same echo as a tarpc service over its serde transport (TCP, bincode).
//!
//! One connection; the payload travels as `serde_bytes::ByteBuf` (a `Vec<u8>` that serializes
//! as one byte string), the same shape the framework targets use.

use std::net::SocketAddr;

use futures::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};

use crate::BoxResult;

/// The benchmark service.
#[tarpc::service]
pub trait Echo {
    /// Returns its argument.
    async fn echo(payload: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, payload: ByteBuf) -> ByteBuf {
        payload
    }
}

/// Binds `127.0.0.1:port` and serves in the background; returns the port.
pub async fn start_server(port: u16) -> BoxResult<u16> {
    let mut incoming =
        tarpc::serde_transport::tcp::listen(("127.0.0.1", port), Bincode::default).await?;
    let port = incoming.local_addr().port();
    tokio::spawn(async move {
        while let Some(transport) = incoming.next().await {
            let Ok(transport) = transport else { continue };
            let _ = transport.get_ref().set_nodelay(true);
            tokio::spawn(
                BaseChannel::with_defaults(transport)
                    .execute(EchoServer.serve())
                    .for_each(|call| async {
                        tokio::spawn(call);
                    }),
            );
        }
    });
    Ok(port)
}

/// A connected tarpc client (clones share the connection).
pub async fn connect(addr: SocketAddr) -> BoxResult<EchoClient> {
    let transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default).await?;
    transport.get_ref().set_nodelay(true)?;
    Ok(EchoClient::new(client::Config::default(), transport).spawn())
}

/// One call.
pub async fn call(client: &EchoClient, payload: &[u8]) -> BoxResult<usize> {
    let back = client
        .echo(context::current(), ByteBuf::from(payload.to_vec()))
        .await?;
    Ok(back.len())
}
