//! What the server side of a network protocol (`dubbo`, `tri`) shares: one listener per bound
//! address serving every service exported on it, a service added to the listener of its
//! address (a new listener bound when there is none), and the listener closed when its last
//! service is unexported.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::invocation::{Invoker, ServiceKey};
use crate::protocol::Exporter;
use crate::url::Url;

/// One service exported on a listener: its parsed key (dispatch clones it rather than
/// building one per call) and its invoker.
pub struct ExportedService {
    /// The service key.
    pub key: ServiceKey,
    /// The exported invoker (its provider filter chain).
    pub invoker: Arc<dyn Invoker>,
}

/// The services a listener serves, by service key text (`group/interface:version`).
pub type ServiceTable = Arc<RwLock<HashMap<String, ExportedService>>>;

/// A protocol server bound to one address.
#[async_trait::async_trait]
pub trait SharedListener: Send + Sync + 'static {
    /// The services it serves.
    fn services(&self) -> &ServiceTable;

    /// The port it is bound to.
    fn port(&self) -> u16;

    /// Stops accepting; calls in flight finish.
    async fn close(&self);
}

/// The listeners of one protocol, by bound address (`host:port`).
pub struct Listeners<L> {
    bound: Arc<tokio::sync::Mutex<HashMap<String, Arc<L>>>>,
}

impl<L> Default for Listeners<L> {
    fn default() -> Self {
        Listeners {
            bound: Arc::default(),
        }
    }
}

impl<L: SharedListener> Listeners<L> {
    /// Exports `invoker` as the service of `url` on the listener of its host (default
    /// `127.0.0.1`) and port (`default_port` when it has none; 0 binds a new listener on a
    /// free port). An existing listener is first shown to `check` (a protocol refusing to mix
    /// TLS and plaintext on one port); without one, `bind(host, port)` makes it. The
    /// service must not be exported on that listener already. The exporter's URL carries
    /// the real host and port.
    pub async fn export<B, F>(
        &self,
        url: &Url,
        default_port: u16,
        invoker: Arc<dyn Invoker>,
        check: impl FnOnce(&L, &str) -> Result<()>,
        bind: B,
    ) -> Result<Box<dyn Exporter>>
    where
        B: FnOnce(String, u16) -> F,
        F: Future<Output = Result<L>>,
    {
        let host = if url.host().is_empty() {
            "127.0.0.1".to_string()
        } else {
            url.host().to_string()
        };
        let port = url.port().unwrap_or(default_port);
        let mut bound = self.bound.lock().await;
        let existing = (port != 0)
            .then(|| bound.get(&format!("{host}:{port}")).cloned())
            .flatten();
        let listener = match existing {
            Some(l) => {
                check(&l, &format!("{host}:{port}"))?;
                l
            }
            None => {
                let l = Arc::new(bind(host.clone(), port).await?);
                bound.insert(format!("{host}:{}", l.port()), l.clone());
                l
            }
        };
        let address = format!("{host}:{}", listener.port());
        let key = ServiceKey::new(
            url.interface(),
            url.param(keys::GROUP),
            url.param(keys::VERSION),
        );
        let text = key.to_string();
        {
            let mut table = listener
                .services()
                .write()
                .map_err(|_| RpcError::internal("service table poisoned"))?;
            if table.contains_key(&text) {
                return Err(RpcError::config(format!(
                    "service {text} is already exported on {address}"
                )));
            }
            table.insert(text.clone(), ExportedService { key, invoker });
        }
        Ok(Box::new(SharedExporter {
            url: url.with_host(&host).with_port(listener.port()),
            key: text,
            address,
            bound: self.bound.clone(),
        }))
    }
}

/// One service on a shared listener; unexporting the last one closes the listener.
struct SharedExporter<L> {
    url: Url,
    key: String,
    address: String,
    bound: Arc<tokio::sync::Mutex<HashMap<String, Arc<L>>>>,
}

#[async_trait::async_trait]
impl<L: SharedListener> Exporter for SharedExporter<L> {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn unexport(&self) {
        let mut bound = self.bound.lock().await;
        let Some(l) = bound.get(&self.address).cloned() else {
            return;
        };
        let empty = match l.services().write() {
            Ok(mut t) => {
                t.remove(&self.key);
                t.is_empty()
            }
            Err(_) => true,
        };
        if empty {
            bound.remove(&self.address);
            drop(bound);
            l.close().await;
        }
    }
}
