//! The systems under test: one module each, all serving `echo(bytes) -> bytes`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::BoxResult;

pub mod framework;
pub mod raw;
pub mod tarpc_echo;
pub mod tonic_echo;
pub mod triple;

/// A system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Hand-written tokio length-delimited echo.
    Raw,
    /// tarpc over its TCP serde transport with bincode.
    Tarpc,
    /// tonic unary gRPC over HTTP/2.
    Tonic,
    /// This framework, default settings (msgpack).
    Rpc,
    /// This framework with `serialization=bincode`.
    RpcBincode,
    /// This framework with `serialization=hessian2` (the Java Dubbo body format).
    RpcHessian2,
    /// This framework (msgpack) called through the consumer stack: cluster, balancer, filters.
    RpcStack,
    /// The `rpc` target over TLS (`tls=true`, rustls), certificates made by the benchmark.
    RpcTls,
    /// This framework as a user writes it: `#[service]`, `Provider`, `Consumer`, defaults.
    RpcService,
    /// This framework's `tri` protocol (gRPC over HTTP/2), wrapper mode (msgpack), through the
    /// invoker `refer` returns.
    Tri,
    /// `tri` in protobuf mode: the same message as `tonic`, through a generated client.
    TriProto,
}

impl Target {
    /// Every target, in report order.
    pub const ALL: [Target; 11] = [
        Target::Raw,
        Target::Tarpc,
        Target::Tonic,
        Target::Rpc,
        Target::RpcBincode,
        Target::RpcHessian2,
        Target::RpcStack,
        Target::RpcTls,
        Target::RpcService,
        Target::Tri,
        Target::TriProto,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Target::Raw => "raw",
            Target::Tarpc => "tarpc",
            Target::Tonic => "tonic",
            Target::Rpc => "rpc",
            Target::RpcBincode => "rpc-bincode",
            Target::RpcHessian2 => "rpc-hessian2",
            Target::RpcStack => "rpc-stack",
            Target::RpcTls => "rpc-tls",
            Target::RpcService => "rpc-service",
            Target::Tri => "tri",
            Target::TriProto => "tri-proto",
        }
    }

    /// The serialization a framework target selects (`None`: the default, msgpack).
    pub fn serialization(self) -> framework::SerializationName {
        match self {
            Target::RpcBincode => Some("bincode"),
            Target::RpcHessian2 => Some("hessian2"),
            _ => None,
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> BoxResult<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                format!("unknown target '{name}'; known: {}", names.join(", ")).into()
            })
    }
}

/// Keeps a server's resources alive while it serves.
pub enum ServerGuard {
    /// Nothing to hold (the server runs in spawned tasks).
    None,
    /// The framework's exporter.
    Exporter(#[allow(dead_code)] Box<dyn rpc_core::protocol::Exporter>),
    /// The framework's running provider.
    Provider(#[allow(dead_code)] rpc_core::bootstrap::RunningProvider),
}

/// Starts `target`'s server on `127.0.0.1:port` (0 = any free port); returns the bound port.
pub async fn start_server(target: Target, port: u16) -> BoxResult<(u16, ServerGuard)> {
    Ok(match target {
        Target::Raw => (raw::start_server(port).await?, ServerGuard::None),
        Target::Tarpc => (tarpc_echo::start_server(port).await?, ServerGuard::None),
        Target::Tonic => (tonic_echo::start_server(port).await?, ServerGuard::None),
        Target::Rpc | Target::RpcBincode | Target::RpcHessian2 | Target::RpcStack => {
            let (port, exporter) = framework::start_server(port, target.serialization()).await?;
            (port, ServerGuard::Exporter(exporter))
        }
        Target::RpcTls => {
            let (port, exporter) = framework::start_tls_server(port).await?;
            (port, ServerGuard::Exporter(exporter))
        }
        Target::RpcService => {
            let (port, provider) = framework::start_service(port).await?;
            (port, ServerGuard::Provider(provider))
        }
        Target::Tri | Target::TriProto => {
            let (port, exporter) = triple::start_server(port, target == Target::TriProto).await?;
            (port, ServerGuard::Exporter(exporter))
        }
    })
}

/// A connected client of one target; clones share the connection.
#[derive(Clone)]
pub enum Caller {
    /// See [`raw::Client`].
    Raw(raw::Client),
    /// See [`tarpc_echo`].
    Tarpc(tarpc_echo::EchoClient),
    /// See [`tonic_echo`].
    Tonic(tonic::client::Grpc<tonic::transport::Channel>),
    /// See [`framework`].
    Rpc(Arc<dyn rpc_core::Invoker>),
    /// See [`framework::connect_service`].
    Service(framework::EchoServiceClient),
    /// See [`triple::connect_proto`].
    TriProto(triple::ProtoEchoClient),
}

impl Caller {
    /// Connects to `target`'s server at `addr`.
    pub async fn connect(target: Target, addr: SocketAddr) -> BoxResult<Caller> {
        Ok(match target {
            Target::Raw => Caller::Raw(raw::Client::connect(addr).await?),
            Target::Tarpc => Caller::Tarpc(tarpc_echo::connect(addr).await?),
            Target::Tonic => Caller::Tonic(tonic_echo::connect(addr).await?),
            Target::Rpc | Target::RpcBincode | Target::RpcHessian2 => {
                Caller::Rpc(framework::connect(addr, target.serialization()).await?)
            }
            Target::RpcStack => Caller::Rpc(framework::connect_stack(addr).await?),
            Target::RpcTls => Caller::Rpc(framework::connect_tls(addr).await?),
            Target::RpcService => Caller::Service(framework::connect_service(addr).await?),
            Target::Tri => Caller::Rpc(triple::connect(addr).await?),
            Target::TriProto => Caller::TriProto(triple::connect_proto(addr).await?),
        })
    }

    /// One echo call; returns the length of the echoed payload.
    pub async fn call(&mut self, payload: &[u8]) -> BoxResult<usize> {
        match self {
            Caller::Raw(c) => c.echo(payload).await,
            Caller::Tarpc(c) => c.echo(payload).await,
            Caller::Tonic(c) => c.echo(payload).await,
            Caller::Rpc(c) => c.echo(payload).await,
            Caller::Service(c) => c.echo(payload).await,
            Caller::TriProto(c) => c.echo(payload).await,
        }
    }
}

/// One target's client, as a load task drives it. The load loop is built per client type
/// ([`crate::load`] matches on the [`Caller`] once), so a task's future holds only its own
/// target's call, not one sized for the largest target and moved on every call.
pub trait Echo: Clone + Send + 'static {
    /// One echo call; returns the length of the echoed payload.
    fn echo(
        &mut self,
        payload: &[u8],
    ) -> impl std::future::Future<Output = BoxResult<usize>> + Send;
}

impl Echo for raw::Client {
    async fn echo(&mut self, payload: &[u8]) -> BoxResult<usize> {
        Ok(self.call(payload).await?.len())
    }
}

impl Echo for tarpc_echo::EchoClient {
    async fn echo(&mut self, payload: &[u8]) -> BoxResult<usize> {
        tarpc_echo::call(self, payload).await
    }
}

impl Echo for tonic::client::Grpc<tonic::transport::Channel> {
    async fn echo(&mut self, payload: &[u8]) -> BoxResult<usize> {
        tonic_echo::call(self, payload).await
    }
}

impl Echo for Arc<dyn rpc_core::Invoker> {
    async fn echo(&mut self, payload: &[u8]) -> BoxResult<usize> {
        framework::call(&**self, payload).await
    }
}

impl Echo for framework::EchoServiceClient {
    async fn echo(&mut self, payload: &[u8]) -> BoxResult<usize> {
        framework::call_service(self, payload).await
    }
}

impl Echo for triple::ProtoEchoClient {
    async fn echo(&mut self, payload: &[u8]) -> BoxResult<usize> {
        triple::call_proto(self, payload).await
    }
}
