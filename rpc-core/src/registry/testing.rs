//! A recording [`NotifyListener`] for tests of registries and of code built on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Category, NotifyListener, Registry};
use crate::error::{Result, RpcError};
use crate::registry::config_center::ConfigKey;
use crate::url::Url;

/// Records every notification; tests wait on it for a list to appear.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<(usize, HashMap<Category, Vec<Url>>)>,
    changed: tokio::sync::Notify,
}

impl Recorder {
    /// A new recorder, ready to hand to `subscribe`.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    /// The last list notified for `category` (sorted by URL text), if any was.
    pub fn last(&self, category: Category) -> Option<Vec<Url>> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.1.get(&category).cloned())
    }

    /// How many notifications arrived so far.
    pub fn count(&self) -> usize {
        self.state.lock().map(|s| s.0).unwrap_or(0)
    }

    /// Waits up to `timeout` until the last list of `category` satisfies `pred`; returns
    /// that list, or `None` on timeout.
    pub async fn wait_for(
        &self,
        category: Category,
        timeout: Duration,
        pred: impl Fn(&[Url]) -> bool,
    ) -> Option<Vec<Url>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(list) = self.last(category) {
                if pred(&list) {
                    return Some(list);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

impl NotifyListener for Recorder {
    fn notify(&self, category: Category, mut urls: Vec<Url>) {
        urls.sort_by_key(|u| u.to_string());
        if let Ok(mut s) = self.state.lock() {
            s.0 += 1;
            s.1.insert(category, urls);
        }
        self.changed.notify_waiters();
    }
}

/// A registry that is always reachable, accepts every call and holds nothing: it implements
/// only the trait's required methods, so it shows the provided defaults (such as
/// [`Registry::services`]).
pub struct Inert(pub Url);

#[async_trait::async_trait]
impl Registry for Inert {
    fn url(&self) -> &Url {
        &self.0
    }
    fn is_available(&self) -> bool {
        true
    }
    async fn register(&self, _: &Url) -> Result<()> {
        Ok(())
    }
    async fn unregister(&self, _: &Url) -> Result<()> {
        Ok(())
    }
    async fn subscribe(&self, _: &Url, _: Arc<dyn NotifyListener>) -> Result<()> {
        Ok(())
    }
    async fn unsubscribe(&self, _: &Url, _: &Arc<dyn NotifyListener>) -> Result<()> {
        Ok(())
    }
    async fn lookup(&self, _: &Url) -> Result<Vec<Url>> {
        Ok(Vec::new())
    }
}

/// A registry that can never be reached: every call fails with a `Network` error, so tests
/// see what the layers above do during an outage (the cache answering, no waits).
pub struct Down(pub Url);

#[async_trait::async_trait]
impl Registry for Down {
    fn url(&self) -> &Url {
        &self.0
    }
    fn is_available(&self) -> bool {
        false
    }
    async fn register(&self, _: &Url) -> Result<()> {
        Err(RpcError::network("down"))
    }
    async fn unregister(&self, _: &Url) -> Result<()> {
        Err(RpcError::network("down"))
    }
    async fn subscribe(&self, _: &Url, _: Arc<dyn NotifyListener>) -> Result<()> {
        Err(RpcError::network("down"))
    }
    async fn unsubscribe(&self, _: &Url, _: &Arc<dyn NotifyListener>) -> Result<()> {
        Ok(())
    }
    async fn lookup(&self, _: &Url) -> Result<Vec<Url>> {
        Err(RpcError::network("down"))
    }
    async fn get_config(&self, _: &ConfigKey) -> Result<Option<String>> {
        Err(RpcError::network("down"))
    }
}
