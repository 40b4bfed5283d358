//! `tonic`: a unary gRPC echo over one HTTP/2 connection, written without protoc.
//!
//! The message is a hand-derived `prost::Message`; the server is a hand-written tower
//! `Service` routing `/bench.Echo/Echo` to `tonic::server::Grpc::unary`, and the client calls
//! `tonic::client::Grpc::unary`, both with tonic's prost codec.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::BoxResult;

const PATH: &str = "/bench.Echo/Echo";

/// `message EchoMsg { bytes data = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoMsg {
    /// The payload.
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

struct EchoUnary;

impl UnaryService<EchoMsg> for EchoUnary {
    type Response = EchoMsg;
    type Future = Ready<Result<Response<EchoMsg>, Status>>;

    fn call(&mut self, request: Request<EchoMsg>) -> Self::Future {
        ready(Ok(Response::new(request.into_inner())))
    }
}

/// The `bench.Echo` gRPC service.
#[derive(Clone)]
struct EchoService;

impl NamedService for EchoService {
    const NAME: &'static str = "bench.Echo";
}

impl<B> Service<http::Request<B>> for EchoService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == PATH {
            Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<EchoMsg, EchoMsg>::default());
                Ok(grpc.unary(EchoUnary, req).await)
            })
        } else {
            let path = req.uri().path().to_string();
            Box::pin(
                async move { Ok(Status::unimplemented(format!("no method {path}")).into_http()) },
            )
        }
    }
}

/// Binds `127.0.0.1:port` and serves in the background; returns the port.
pub async fn start_server(port: u16) -> BoxResult<u16> {
    let incoming =
        TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], port)))?.with_nodelay(Some(true));
    let port = incoming.local_addr()?.port();
    tokio::spawn(async move {
        if let Err(e) = Server::builder()
            .add_service(EchoService)
            .serve_with_incoming(incoming)
            .await
        {
            eprintln!("tonic server stopped: {e}");
        }
    });
    Ok(port)
}

/// A client over one HTTP/2 connection (clones share it).
pub async fn connect(addr: SocketAddr) -> BoxResult<tonic::client::Grpc<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(tonic::client::Grpc::new(channel))
}

/// One call.
pub async fn call(client: &mut tonic::client::Grpc<Channel>, payload: &[u8]) -> BoxResult<usize> {
    client.ready().await?;
    let response: Response<EchoMsg> = client
        .unary(
            Request::new(EchoMsg {
                data: payload.to_vec(),
            }),
            PathAndQuery::from_static(PATH),
            ProstCodec::<EchoMsg, EchoMsg>::default(),
        )
        .await?;
    Ok(response.into_inner().data.len())
}
