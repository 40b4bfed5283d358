//! `rpc-core`: the runtime of a Dubbo-style RPC framework.
//!
//! A call to another machine looks like a local trait call; between the two ends every layer
//! is an extension chosen at run time by a URL key through the SPI registry
//! ([`extension`]). One dependency on this crate is enough for an application.
//!
//! # Layers of one call (consumer side, outermost first)
//!
//! ```text
//!  proxy (generated)      builds an Invocation: service key, method, typed args, attachments
//!    │
//!  reference filters      once per call, around the cluster: mock (degradation)
//!    │
//!  cluster  cluster=      failover / failfast / ... over a Directory; each attempt picks a provider
//!    │  directory         the live provider list (static, or fed by a registry)
//!    │  routers           narrow the list (condition rules, tags, zones)
//!    │  loadbalance=      pick one provider (random, roundrobin, ...)
//!    │
//!  provider's chain       per provider, per attempt: filter= consumer filters (metrics, context,
//!    │  filter=           timeout/deadline, actives, circuit breaker, token)
//!    │
//!  protocol protocol=     the provider's invoker (dubbo-compatible framing, tri = gRPC over HTTP/2, or injvm)
//!  exchange               request ids, timeouts, heartbeats, reconnects
//!  transport transporter= tokio TCP (TLS with tls=true)
//!  serialize serialization= msgpack (default), json, bincode (plugin)
//! ```
//!
//! The provider side mirrors it: transport → exchange → protocol server (panics in filters
//! caught, [`error::catch_panics`]) → provider filters → skeleton (generated; panics in
//! service code caught) → the user's implementation.

#![forbid(unsafe_code)]

// Lets `#[service]` (which names `::rpc_core`) be used inside this crate too.
extern crate self as rpc_core;

pub mod bootstrap;
pub mod cluster;
pub mod config;
pub mod context;
pub mod error;
pub mod exchange;
pub mod extension;
pub mod filter;
pub mod idempotency;
pub mod invocation;
pub mod lent;
mod padded;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod serialize;
mod service_key;
pub mod stream;
pub mod transport;
pub mod url;

pub use context::RpcContext;
pub use error::{ErrorKind, Result, RpcError};
pub use invocation::{
    AnyValue, Attachments, ByteString, Invocation, Invoker, Outcome, Payload, Response, ServiceKey,
    Value,
};
pub use stream::{StreamSender, Streaming};
pub use url::{Url, UrlError};

/// Turns a trait of `async fn`s into an RPC service: a client proxy (`{Trait}Client`), a
/// server skeleton (`{Trait}Server`) and its metadata ([`proxy::ServiceDescriptor`]).
///
/// ```
/// # #[derive(serde::Serialize, serde::Deserialize)] pub struct GreetError(String);
/// #[rpc_core::service(name = "org.example.Greeter", version = "1.0.0")]
/// pub trait Greeter {
///     /// Says hello.
///     #[idempotent]
///     #[timeout = 300]
///     async fn greet(&self, name: String) -> Result<String, GreetError>;
/// }
///
/// struct English;
/// impl Greeter for English {
///     async fn greet(&self, name: String) -> Result<String, GreetError> {
///         Ok(format!("hello {name}"))
///     }
/// }
///
/// let server: std::sync::Arc<dyn rpc_core::Invoker> = GreeterServer::new(English).into_invoker();
/// let client = GreeterClient::new(server);
/// # let _ = client;
/// ```
///
/// Options: `name = "..."` (the interface name; default: the trait's name), `version`,
/// `group`, `protocol` (the protocol the service is meant for: a streaming method with one
/// that cannot carry streams is a compile error; see [`stream`]). Method attributes:
/// `#[idempotent]`, `#[oneway]` (return type `()`), `#[timeout = ms]` / `#[timeout(ms)]`,
/// `#[idempotency_key]` / `#[idempotency_key(arg)]` (the provider runs each key once and
/// answers retries from its stored result; see [`idempotency`]), `#[ordered_by(arg)]` (calls
/// with the same value of `arg` go to one provider and run there one at a time, in arrival
/// order; see [`filter::ordered`]). See the [`proxy`] module for the runtime side.
pub use rpc_macros::service;

/// Re-exports used by the macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use inventory;
    pub use serde;

    pub use crate::proxy::protobuf::{MessageCodec, ProtobufNo, ProtobufProbe, ProtobufYes};

    pub use crate::error::RpcError;
    pub use crate::invocation::{Invocation, Invoker, Response, ServiceKey, Value};
    pub use crate::proxy::{
        assert_rpc_type, decode_args, respond_result, respond_value, ArgDescriptor, ClientCore,
        IdempotencyKey, MethodDescriptor, ServiceClient, ServiceDescriptor, ServiceServer,
        StreamKind,
    };
    pub use crate::stream::Streaming;
    pub use core::clone::Clone;
    pub use core::fmt;
    pub use core::future::Future;
    pub use core::marker::{Send, Sync};
    pub use core::result::Result::{self, Err, Ok};
    pub use std::sync::Arc;
}
