//! Subscription bookkeeping shared by the adapters of remote registry servers (ZooKeeper,
//! etcd).
//!
//! Such an adapter keeps every subscription itself, because it must re-arm them on its own
//! after the server was lost and found again (see the notification contract in
//! [`crate::registry`]). [`Subscriptions`] owns that list: it hands out ids, keeps the watch
//! tasks each subscription runs against the current connection, gives the list to replay
//! after a reconnection, and aborts the tasks of a subscription when it is removed or when
//! the connection is gone. The adapter keeps only what is specific to its server: how one
//! category is watched and read.
//!
//! A watch task reports through a [`CategoryWatch`], which notifies the listener only when
//! the list changed and tells [`Subscriptions::start`]'s caller when the first list was
//! delivered, so `subscribe` can return with the listener already filled
//! ([`wait_first_lists`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::remote::Connection;
use super::{listener_id, Category, NotifyListener};
use crate::url::Url;

/// One subscription of an adapter: which lists of which interface go to which listener.
#[derive(Clone)]
pub struct Subscription {
    /// Unique within its [`Subscriptions`], to find its watch tasks again.
    pub id: u64,
    /// The interface watched.
    pub interface: String,
    /// The categories watched ([`Category::subscribed`] of the subscription URL).
    pub categories: Vec<Category>,
    /// Who receives the lists.
    pub listener: Arc<dyn NotifyListener>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("interface", &self.interface)
            .field("categories", &self.categories)
            .field("listener", &listener_id(&self.listener))
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    subs: Vec<Subscription>,
    /// Watch tasks of the current connection, by subscription id.
    watches: HashMap<u64, Vec<JoinHandle<()>>>,
}

/// The subscriptions of one adapter and the watch tasks they run (see the module docs).
///
/// Every method takes `&self`; the state sits behind one lock, never held across an await.
#[derive(Default)]
pub struct Subscriptions {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("Subscriptions")
            .field("subs", &inner.subs)
            .field("watched", &inner.watches.len())
            .finish()
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.stop_watches();
    }
}

impl Subscriptions {
    /// An empty list.
    pub fn new() -> Subscriptions {
        Subscriptions::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the state consistent (every
        // method changes it in one step), so keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a subscription of `listener` to the service of `url` (its interface, and the
    /// categories of [`Category::subscribed`]) and returns it with its new id.
    pub fn add(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Subscription {
        let mut inner = self.lock();
        inner.next_id += 1;
        let sub = Subscription {
            id: inner.next_id,
            interface: url.interface().to_string(),
            categories: Category::subscribed(url),
            listener,
        };
        inner.subs.push(sub.clone());
        sub
    }

    /// Removes every subscription of `listener` (the same `Arc`, see
    /// [`listener_id`]) to `interface` and aborts their watch tasks. Returns how many were
    /// removed.
    pub fn remove(&self, interface: &str, listener: &Arc<dyn NotifyListener>) -> usize {
        let id = listener_id(listener);
        let mut inner = self.lock();
        let mut removed = Vec::new();
        inner.subs.retain(|s| {
            let hit = s.interface == interface && listener_id(&s.listener) == id;
            if hit {
                removed.push(s.id);
            }
            !hit
        });
        for sub_id in &removed {
            abort_all(inner.watches.remove(sub_id));
        }
        removed.len()
    }

    /// The current subscriptions, in the order they were made: what to re-arm after a
    /// reconnection.
    pub fn snapshot(&self) -> Vec<Subscription> {
        self.lock().subs.clone()
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.lock().subs.is_empty()
    }

    /// Keeps `tasks` as the watch tasks of subscription `id`, aborting the ones it had. When
    /// `id` was removed meanwhile, `tasks` are aborted at once, so no watch outlives its
    /// subscription.
    pub fn set_watches(&self, id: u64, tasks: Vec<JoinHandle<()>>) {
        let mut inner = self.lock();
        if !inner.subs.iter().any(|s| s.id == id) {
            drop(inner);
            abort_all(Some(tasks));
            return;
        }
        abort_all(inner.watches.insert(id, tasks));
    }

    /// Starts the watch tasks of `sub`, one per category, with `spawn(category, watch)`, and
    /// keeps them (see [`Subscriptions::set_watches`]). The receivers fire once each
    /// category's first list was delivered; give them to [`wait_first_lists`].
    pub fn start<F>(&self, sub: &Subscription, mut spawn: F) -> Vec<oneshot::Receiver<()>>
    where
        F: FnMut(Category, CategoryWatch) -> JoinHandle<()>,
    {
        let mut firsts = Vec::with_capacity(sub.categories.len());
        let mut tasks = Vec::with_capacity(sub.categories.len());
        for &category in &sub.categories {
            let (watch, first) = CategoryWatch::new(sub.listener.clone(), category);
            firsts.push(first);
            tasks.push(spawn(category, watch));
        }
        self.set_watches(sub.id, tasks);
        firsts
    }

    /// The body of [`Registry::subscribe`](super::Registry::subscribe) for an adapter: records
    /// the subscription (see [`Subscriptions::add`]); when `conn` has a client within
    /// `timeout`, starts its watches with `start(client, subscription)` (which should call
    /// [`Subscriptions::start`]) and waits up to `timeout` for their first lists. Returns
    /// whether the first lists were all delivered; without a client the subscription is
    /// only recorded, to be started on the next connection.
    pub async fn subscribe<C: Clone>(
        &self,
        url: &Url,
        listener: Arc<dyn NotifyListener>,
        conn: &Connection<C>,
        timeout: Duration,
        start: impl FnOnce(&C, &Subscription) -> Vec<oneshot::Receiver<()>>,
    ) -> bool {
        let sub = self.add(url, listener);
        match conn.wait(timeout).await {
            Some(client) => wait_first_lists(start(&client, &sub), timeout).await,
            None => false,
        }
    }

    /// Aborts every watch task (the connection they used is gone); the subscriptions stay,
    /// to be re-armed on the next connection.
    pub fn stop_watches(&self) {
        let drained: Vec<_> = self.lock().watches.drain().collect();
        for (_, tasks) in drained {
            abort_all(Some(tasks));
        }
    }
}

fn abort_all(tasks: Option<Vec<JoinHandle<()>>>) {
    tasks.into_iter().flatten().for_each(|t| t.abort());
}

/// Waits until every receiver from [`Subscriptions::start`] fired (or its watch ended), for
/// at most `timeout`. Returns whether they all fired in time.
pub async fn wait_first_lists(firsts: Vec<oneshot::Receiver<()>>, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, async {
        let mut all = true;
        for rx in firsts {
            all &= rx.await.is_ok();
        }
        all
    })
    .await
    .unwrap_or(false)
}

/// What a watch task of one category of one subscription reports to: it notifies the
/// listener only when the list differs from the last one it notified, and signals the first
/// delivery to the waiting `subscribe`.
pub struct CategoryWatch {
    listener: Arc<dyn NotifyListener>,
    category: Category,
    last: Option<Vec<Url>>,
    first: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for CategoryWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CategoryWatch")
            .field("category", &self.category)
            .field("last", &self.last)
            .finish()
    }
}

impl CategoryWatch {
    /// A watch reporting `category` lists to `listener`, and the receiver that fires after
    /// the first [`CategoryWatch::update`].
    pub fn new(
        listener: Arc<dyn NotifyListener>,
        category: Category,
    ) -> (CategoryWatch, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let watch = CategoryWatch {
            listener,
            category,
            last: None,
            first: Some(tx),
        };
        (watch, rx)
    }

    /// The category this watch reports.
    pub fn category(&self) -> Category {
        self.category
    }

    /// Reports the complete list just read: notifies it if it differs from the last one
    /// notified (the first list is always notified). Returns whether it notified.
    pub fn update(&mut self, urls: Vec<Url>) -> bool {
        let changed = self.last.as_ref() != Some(&urls);
        if changed {
            self.last = Some(urls.clone());
            self.listener.notify(self.category, urls);
        }
        if let Some(tx) = self.first.take() {
            let _ = tx.send(());
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::Recorder;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn listener() -> Arc<dyn NotifyListener> {
        Recorder::new()
    }

    /// A watch task that runs until aborted; the flag says whether it is still running.
    fn pending_task() -> (JoinHandle<()>, Arc<()>) {
        let alive = Arc::new(());
        let held = alive.clone();
        let task = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        (task, alive)
    }

    async fn stopped(alive: &Arc<()>) -> bool {
        for _ in 0..100 {
            if Arc::strong_count(alive) == 1 {
                return true;
            }
            tokio::task::yield_now().await;
        }
        false
    }

    #[test]
    fn add_gives_distinct_ids_and_the_subscribed_categories() {
        let subs = Subscriptions::new();
        let a = subs.add(
            &url("consumer://h/org.A?category=routers,providers"),
            listener(),
        );
        let b = subs.add(&url("consumer://h/org.B"), listener());
        assert_ne!(a.id, b.id);
        assert_eq!(a.interface, "org.A");
        assert_eq!(a.categories, vec![Category::Routers, Category::Providers]);
        assert_eq!(b.categories, vec![Category::Providers]);
        let ids: Vec<u64> = subs.snapshot().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![a.id, b.id], "replayed in subscription order");
    }

    #[test]
    fn remove_matches_interface_and_the_same_listener_only() {
        let subs = Subscriptions::new();
        let l1 = listener();
        let l2 = listener();
        subs.add(&url("consumer://h/org.A"), l1.clone());
        subs.add(&url("consumer://h/org.A?category=routers"), l1.clone());
        subs.add(&url("consumer://h/org.A"), l2.clone());
        subs.add(&url("consumer://h/org.B"), l1.clone());

        assert_eq!(subs.remove("org.C", &l1), 0, "other interface");
        assert_eq!(subs.remove("org.A", &listener()), 0, "other listener");
        assert_eq!(
            subs.remove("org.A", &l1),
            2,
            "both subscriptions of l1 to org.A"
        );
        let left: Vec<(String, usize)> = subs
            .snapshot()
            .iter()
            .map(|s| (s.interface.clone(), listener_id(&s.listener)))
            .collect();
        assert_eq!(
            left,
            vec![
                ("org.A".to_string(), listener_id(&l2)),
                ("org.B".to_string(), listener_id(&l1)),
            ]
        );
        assert_eq!(subs.remove("org.A", &l1), 0, "already gone");
    }

    #[tokio::test]
    async fn removing_a_subscription_aborts_its_watches_only() {
        let subs = Subscriptions::new();
        let l = listener();
        let a = subs.add(&url("consumer://h/org.A"), l.clone());
        let b = subs.add(&url("consumer://h/org.B"), l.clone());
        let (ta, alive_a) = pending_task();
        let (tb, alive_b) = pending_task();
        subs.set_watches(a.id, vec![ta]);
        subs.set_watches(b.id, vec![tb]);

        assert_eq!(subs.remove("org.A", &l), 1);
        assert!(
            stopped(&alive_a).await,
            "watch of the removed subscription aborted"
        );
        assert!(!stopped(&alive_b).await, "other watch still running");
        subs.stop_watches();
        assert!(stopped(&alive_b).await);
    }

    #[tokio::test]
    async fn new_watches_replace_and_abort_the_old_ones() {
        let subs = Subscriptions::new();
        let a = subs.add(&url("consumer://h/org.A"), listener());
        let (old, alive_old) = pending_task();
        let (new, alive_new) = pending_task();
        subs.set_watches(a.id, vec![old]);
        subs.set_watches(a.id, vec![new]);
        assert!(stopped(&alive_old).await, "the previous connection's watch");
        assert!(!stopped(&alive_new).await);
        drop(subs);
        assert!(
            stopped(&alive_new).await,
            "dropping the list stops its watches"
        );
    }

    #[tokio::test]
    async fn watches_of_a_subscription_removed_meanwhile_are_aborted() {
        let subs = Subscriptions::new();
        let l = listener();
        let a = subs.add(&url("consumer://h/org.A"), l.clone());
        subs.remove("org.A", &l);
        let (late, alive) = pending_task();
        subs.set_watches(a.id, vec![late]);
        assert!(stopped(&alive).await);
    }

    #[tokio::test]
    async fn stopping_watches_keeps_the_subscriptions_for_replay() {
        let subs = Subscriptions::new();
        let a = subs.add(&url("consumer://h/org.A"), listener());
        let (t, alive) = pending_task();
        subs.set_watches(a.id, vec![t]);
        subs.stop_watches();
        assert!(stopped(&alive).await);
        assert_eq!(subs.snapshot().len(), 1);
        assert!(!subs.is_empty());
    }

    #[tokio::test]
    async fn start_spawns_one_watch_per_category_and_reports_first_lists() {
        let subs = Subscriptions::new();
        let recorder = Recorder::new();
        let sub = subs.add(
            &url("consumer://h/org.A?category=providers,routers"),
            recorder.clone(),
        );
        let provider = url("dubbo://10.0.0.1:1/org.A");
        let firsts = subs.start(&sub, |category, mut watch| {
            let provider = provider.clone();
            tokio::spawn(async move {
                assert_eq!(watch.category(), category);
                let urls = if category == Category::Providers {
                    vec![provider]
                } else {
                    Vec::new()
                };
                watch.update(urls);
                std::future::pending::<()>().await;
            })
        });
        assert_eq!(firsts.len(), 2);
        assert!(wait_first_lists(firsts, Duration::from_secs(10)).await);
        assert_eq!(recorder.count(), 2, "one list per category");
        assert_eq!(recorder.last(Category::Providers), Some(vec![provider]));
        assert_eq!(recorder.last(Category::Routers), Some(Vec::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn subscribe_without_a_connection_only_records() {
        let subs = Subscriptions::new();
        let conn: Connection<()> = Connection::new();
        let delivered = subs
            .subscribe(
                &url("consumer://h/org.A"),
                listener(),
                &conn,
                Duration::from_secs(1),
                |_, _| unreachable!("no client to start watches on"),
            )
            .await;
        assert!(!delivered);
        assert_eq!(subs.snapshot().len(), 1, "kept for the next connection");
    }

    #[tokio::test]
    async fn subscribe_with_a_connection_waits_for_the_first_lists() {
        let subs = Subscriptions::new();
        let conn: Connection<&'static str> = Connection::new();
        conn.set("client");
        let recorder = Recorder::new();
        let provider = url("dubbo://10.0.0.1:1/org.A");
        let delivered = subs
            .subscribe(
                &url("consumer://h/org.A"),
                recorder.clone(),
                &conn,
                Duration::from_secs(10),
                |client, sub| {
                    assert_eq!(*client, "client");
                    subs.start(sub, |_, mut watch| {
                        let provider = provider.clone();
                        tokio::spawn(async move {
                            tokio::task::yield_now().await;
                            watch.update(vec![provider]);
                            std::future::pending::<()>().await;
                        })
                    })
                },
            )
            .await;
        assert!(delivered);
        assert_eq!(recorder.last(Category::Providers), Some(vec![provider]));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_first_lists_is_bounded() {
        let (_watch, first) = CategoryWatch::new(listener(), Category::Providers);
        assert!(!wait_first_lists(vec![first], Duration::from_secs(5)).await);
        let (watch, first) = CategoryWatch::new(listener(), Category::Providers);
        drop(watch);
        assert!(
            !wait_first_lists(vec![first], Duration::from_secs(5)).await,
            "a watch that ended without a list does not count as delivered"
        );
        assert!(wait_first_lists(Vec::new(), Duration::from_secs(5)).await);
    }

    #[test]
    fn a_category_watch_notifies_changes_only_and_always_the_first_list() {
        let recorder = Recorder::new();
        let (mut watch, mut first) = CategoryWatch::new(recorder.clone(), Category::Routers);
        assert!(first.try_recv().is_err(), "nothing delivered yet");
        assert!(watch.update(Vec::new()), "an empty first list is notified");
        assert!(first.try_recv().is_ok());
        assert_eq!(recorder.last(Category::Routers), Some(Vec::new()));
        assert!(!watch.update(Vec::new()), "same list again");
        let r = url("route://0.0.0.0/org.A?category=routers");
        assert!(watch.update(vec![r.clone()]));
        assert_eq!(recorder.last(Category::Routers), Some(vec![r.clone()]));
        assert!(!watch.update(vec![r.clone()]));
        assert!(watch.update(Vec::new()));
        assert_eq!(recorder.count(), 3, "only the changes were notified");
        assert_eq!(recorder.last(Category::Routers), Some(Vec::new()));
    }
}
