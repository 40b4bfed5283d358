//! What the server side of a network protocol (`dubbo`, `tri`) shares: one listener per bound
//! address serving every service exported on it, a service added to the listener of its
//! address (a new listener bound when there is none), and the listener closed when its last
//! service is unexported.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use foldhash::fast::RandomState;

use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::invocation::{Invoker, ServiceKey};
use crate::protocol::Exporter;
use crate::proxy::ServiceDescriptor;
use crate::url::Url;

/// One service exported on a listener: its parsed key (dispatch clones it rather than
/// building one per call) and its invoker.
pub struct ExportedService {
    /// The service key.
    pub key: ServiceKey,
    /// The exported invoker (its provider filter chain).
    pub invoker: Arc<dyn Invoker>,
    /// The service's declared methods, when it is a generated skeleton's (read once here,
    /// not through the chain for every request).
    pub descriptor: Option<&'static ServiceDescriptor>,
}

/// The services a listener serves, by interface, each with its group and version.
///
/// Every call looks its service up here, on whichever thread serves its connection, so a
/// lookup reads a snapshot (no lock, no shared count written, no key text built); an export or
/// unexport publishes a changed copy. Cloning shares the table.
#[derive(Clone, Default)]
pub struct ServiceTable(Arc<TableInner>);

/// Keyed by the interface name's bytes, as requests carry it.
type Table = HashMap<Box<[u8]>, Vec<Arc<ExportedService>>, RandomState>;

#[derive(Default)]
struct TableInner {
    /// Keyed by interface name, read for every request: seeded foldhash (fast on these
    /// keys, and the seed keeps a peer's names from colliding on purpose).
    by_interface: ArcSwap<Table>,
    /// Held by a writer from copying the table to publishing it, so no change is lost.
    write: Mutex<()>,
}

impl ServiceTable {
    /// What `read` takes from the service of `interface` exported with exactly this group and
    /// version (absent and empty are alike), if there is one.
    ///
    /// The names are bytes as a request carries them: a service is found only when they equal
    /// an exported key's text, so a found request's names are that text, checked as UTF-8
    /// when the service was exported, and a request is not checked again.
    ///
    /// The service is lent, not shared: a call that took a reference to it would write its
    /// count on every call, from every core, and the table's key text allocated beside it
    /// would then be a cache miss for every lookup.
    pub fn find<R>(
        &self,
        interface: &[u8],
        group: Option<&[u8]>,
        version: Option<&[u8]>,
        read: impl FnOnce(&ExportedService) -> R,
    ) -> Option<R> {
        // A key's empty parts are `None`: compared as options, empty text is never handed to
        // the byte comparison (whose vector code reads an empty string's dangling address
        // through a masked load, a slow microcode assist on some processors).
        let (group, version) = (
            group.filter(|g| !g.is_empty()),
            version.filter(|v| !v.is_empty()),
        );
        self.0
            .by_interface
            .load()
            .get(interface)?
            .iter()
            .find(|e| {
                e.key.group().map(str::as_bytes) == group
                    && e.key.version().map(str::as_bytes) == version
            })
            .map(|e| read(e))
    }

    /// Every service of `interface` on this listener, whatever its group and version.
    pub fn of_interface(&self, interface: &str) -> Vec<Arc<ExportedService>> {
        self.0
            .by_interface
            .load()
            .get(interface.as_bytes())
            .cloned()
            .unwrap_or_default()
    }

    fn change<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        let _writer = self.0.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut table = HashMap::clone(&self.0.by_interface.load());
        let out = f(&mut table);
        self.0.by_interface.store(Arc::new(table));
        out
    }

    /// Adds `service`; `false` (and nothing changed) when its key is exported already.
    pub(crate) fn insert(&self, service: ExportedService) -> bool {
        self.change(|table| {
            let same = table
                .entry(service.key.interface().as_bytes().into())
                .or_default();
            if same.iter().any(|e| e.key == service.key) {
                return false;
            }
            same.push(Arc::new(service));
            true
        })
    }

    /// Removes the service of `key`; whether the table is empty afterwards.
    fn remove(&self, key: &ServiceKey) -> bool {
        self.change(|table| {
            let interface = key.interface().as_bytes();
            if let Some(same) = table.get_mut(interface) {
                same.retain(|e| e.key != *key);
                if same.is_empty() {
                    table.remove(interface);
                }
            }
            table.is_empty()
        })
    }
}

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
        let key = ServiceKey::interned(
            url.interface(),
            url.param(keys::GROUP),
            url.param(keys::VERSION),
        );
        let added = listener.services().insert(ExportedService {
            key: key.clone(),
            descriptor: invoker.descriptor(),
            invoker,
        });
        if !added {
            return Err(RpcError::config(format!(
                "service {key} is already exported on {address}"
            )));
        }
        Ok(Box::new(SharedExporter {
            url: url.with_host(&host).with_port(listener.port()),
            key,
            address,
            bound: self.bound.clone(),
        }))
    }
}

/// One service on a shared listener; unexporting the last one closes the listener.
struct SharedExporter<L> {
    url: Url,
    key: ServiceKey,
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
        let empty = l.services().remove(&self.key);
        if empty {
            bound.remove(&self.address);
            drop(bound);
            l.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::Mock;

    fn service(group: Option<&str>, version: Option<&str>) -> ExportedService {
        ExportedService {
            key: ServiceKey::new("t.Svc", group, version),
            invoker: Mock::ok("dubbo://127.0.0.1:1/t.Svc"),
            descriptor: None,
        }
    }

    #[test]
    fn services_are_found_by_interface_group_and_version() {
        let table = ServiceTable::default();
        assert!(table.insert(service(None, Some("1.0"))));
        assert!(table.insert(service(Some("gray"), Some("2.0"))));
        assert!(
            !table.insert(service(None, Some("1.0"))),
            "the same key twice is refused"
        );
        // Looked up by text here; a request's names are bytes.
        let find =
            |table: &ServiceTable, interface: &str, group: Option<&str>, version: Option<&str>| {
                table.find(
                    interface.as_bytes(),
                    group.map(str::as_bytes),
                    version.map(str::as_bytes),
                    |s| s.key.clone(),
                )
            };
        let v1 = find(&table, "t.Svc", None, Some("1.0")).expect("1.0");
        assert_eq!(v1.version(), Some("1.0"));
        // An empty group is no group.
        assert!(find(&table, "t.Svc", Some(""), Some("1.0")).is_some());
        assert!(find(&table, "t.Svc", None, Some("2.0")).is_none());
        assert!(find(&table, "t.Svc", Some("gray"), Some("2.0")).is_some());
        assert!(find(&table, "t.Other", None, Some("1.0")).is_none());
        assert_eq!(table.of_interface("t.Svc").len(), 2);
        // A clone shares the table.
        let shared = table.clone();
        assert!(!table.remove(&ServiceKey::new("t.Svc", None, Some("1.0"))));
        assert!(find(&shared, "t.Svc", None, Some("1.0")).is_none());
        assert!(shared.remove(&ServiceKey::new("t.Svc", Some("gray"), Some("2.0"))));
        assert!(table.of_interface("t.Svc").is_empty());
    }
}
