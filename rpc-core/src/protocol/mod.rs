//! Protocols: how an invoker is exported on the provider side and referred to on the
//! consumer side (`protocol=` key).
//!
//! Built in: [`dubbo`] (the native remote protocol, default; its exchange and framing live in
//! [`crate::exchange`]) and `injvm` (in-process).

use std::sync::Arc;

use crate::config::keys;
use crate::error::Result;
use crate::invocation::Invoker;
use crate::url::Url;

pub mod dubbo;
mod injvm;
pub mod listeners;

pub use dubbo::Dubbo;
pub use injvm::Injvm;

/// Exports services and creates references to them.
#[async_trait::async_trait]
pub trait Protocol: Send + Sync {
    /// The port used when a provider URL does not give one.
    fn default_port(&self) -> u16;

    /// Starts serving `invoker` (a service skeleton wrapped in provider filters) at `url`.
    /// Several services may share one port; the protocol dispatches by service key.
    async fn export(&self, url: Url, invoker: Arc<dyn Invoker>) -> Result<Box<dyn Exporter>>;

    /// An invoker that calls the provider at `url`.
    async fn refer(&self, url: Url) -> Result<Arc<dyn Invoker>>;

    /// Whether calls of streaming methods ([`Streaming`](crate::Streaming) arguments or
    /// results) can travel over this protocol. Exporting or referring a service with
    /// streaming methods over one that cannot is refused.
    fn carries_streams(&self) -> bool {
        false
    }
}

/// Refuses a service with streaming methods over a protocol that cannot carry them.
pub fn check_streams(
    protocol: &dyn Protocol,
    name: &str,
    service: &crate::proxy::ServiceDescriptor,
) -> Result<()> {
    match service
        .methods()
        .iter()
        .find(|m| m.streaming().is_streaming())
    {
        Some(m) if !protocol.carries_streams() => Err(crate::error::RpcError::config(format!(
            "method {} of {} streams, and protocol '{name}' cannot carry streams; use tri",
            m.name(),
            service.interface()
        ))),
        _ => Ok(()),
    }
}

/// A handle on one exported service.
#[async_trait::async_trait]
pub trait Exporter: Send + Sync {
    /// The URL the service is exported at (with the real bound port).
    fn url(&self) -> &Url;

    /// Stops taking new calls for this service and lets in-flight ones finish.
    async fn unexport(&self);
}

fn _assert_object_safe(_: &dyn Protocol, _: &dyn Exporter) {}

crate::extension_point!(dyn Protocol, key = keys::PROTOCOL, default = "dubbo");
