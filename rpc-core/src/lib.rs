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
//!  filters  filter=       consumer filters: timeout/deadline, context, limits, breaker, ...
//!    │
//!  cluster  cluster=      failover / failfast / ... over a Directory
//!    │  directory         the live provider list (static, or fed by a registry)
//!    │  routers           narrow the list (condition rules, tags)
//!    │  loadbalance=      pick one provider (random, roundrobin, ...)
//!    │
//!  protocol protocol=     the provider's invoker (dubbo-compatible framing, or injvm)
//!  exchange               request ids, timeouts, heartbeats, reconnects
//!  transport transporter= tokio TCP
//!  serialize serialization= msgpack (default), json, bincode (plugin)
//! ```
//!
//! The provider side mirrors it: transport → exchange → protocol → provider filters →
//! skeleton (generated) → the user's implementation.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod context;
pub mod error;
pub mod extension;
pub mod filter;
pub mod invocation;
pub mod protocol;
pub mod registry;
pub mod serialize;
pub mod transport;
pub mod url;

pub use context::RpcContext;
pub use error::{ErrorKind, Result, RpcError};
pub use invocation::{
    AnyValue, Attachments, Invocation, Invoker, Outcome, Payload, Response, ServiceKey, Value,
};
pub use url::{Url, UrlError};

/// Re-exports used by the macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use inventory;
    pub use serde;
}
