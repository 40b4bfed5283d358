//! `memory://name`: an in-process registry for tests.
//!
//! Every `connect` to the same registry URL (protocol, address and path; parameters ignored)
//! within one process returns the same registry, so a provider and a consumer in one test
//! find each other. Notifications are immediate and synchronous: `register` returns after
//! every subscriber of that interface has been told. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use super::config_center::{check_content, ConfigKey};
use super::{listener_id, Category, NotifyListener, Registry, RegistryFactory};
use crate::error::{Result, RpcError};
use crate::url::Url;

/// Creates (once per address) the in-process registries.
#[derive(Debug, Default)]
pub struct MemoryRegistryFactory;

crate::register!(dyn RegistryFactory, "memory", || Arc::new(
    MemoryRegistryFactory
));

fn instances() -> &'static Mutex<HashMap<String, Arc<MemoryRegistry>>> {
    static INSTANCES: OnceLock<Mutex<HashMap<String, Arc<MemoryRegistry>>>> = OnceLock::new();
    INSTANCES.get_or_init(Default::default)
}

#[async_trait::async_trait]
impl RegistryFactory for MemoryRegistryFactory {
    async fn connect(&self, url: &Url) -> Result<Arc<dyn Registry>> {
        let key = format!("{}/{}", url.address(), url.path());
        let mut map = instances()
            .lock()
            .map_err(|_| RpcError::internal("memory registry table poisoned"))?;
        let reg = map
            .entry(key)
            .or_insert_with(|| Arc::new(MemoryRegistry::new(url.clone())));
        Ok(reg.clone())
    }
}

struct Subscription {
    interface: String,
    categories: Vec<Category>,
    listener: Arc<dyn NotifyListener>,
}

#[derive(Default)]
struct State {
    /// interface → category → URL text → URL.
    urls: HashMap<String, HashMap<Category, BTreeMap<String, Url>>>,
    subs: Vec<Subscription>,
    /// Config-center entries.
    configs: HashMap<ConfigKey, String>,
}

impl State {
    fn list(&self, interface: &str, category: Category) -> Vec<Url> {
        self.urls
            .get(interface)
            .and_then(|c| c.get(&category))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// An in-process registry (see the module docs).
pub struct MemoryRegistry {
    url: Url,
    state: Mutex<State>,
}

impl MemoryRegistry {
    /// A new, empty registry, not shared with anyone (use `connect` to share one).
    pub fn new(url: Url) -> MemoryRegistry {
        MemoryRegistry {
            url,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| RpcError::internal("memory registry state poisoned"))
    }

    /// Changes the set of one category with `edit`, then tells every subscriber of it.
    fn change(&self, url: &Url, edit: impl FnOnce(&mut BTreeMap<String, Url>)) -> Result<()> {
        let interface = url.interface().to_string();
        let category = Category::of(url);
        let (list, listeners) = {
            let mut st = self.state()?;
            let set = st
                .urls
                .entry(interface.clone())
                .or_default()
                .entry(category)
                .or_default();
            edit(set);
            let list = st.list(&interface, category);
            let listeners: Vec<_> = st
                .subs
                .iter()
                .filter(|s| s.interface == interface && s.categories.contains(&category))
                .map(|s| s.listener.clone())
                .collect();
            (list, listeners)
        };
        for l in listeners {
            l.notify(category, list.clone());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Registry for MemoryRegistry {
    fn url(&self) -> &Url {
        &self.url
    }

    fn is_available(&self) -> bool {
        true
    }

    async fn register(&self, url: &Url) -> Result<()> {
        self.change(url, |set| {
            set.insert(url.to_string(), url.clone());
        })
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        self.change(url, |set| {
            set.remove(&url.to_string());
        })
    }

    async fn subscribe(&self, url: &Url, listener: Arc<dyn NotifyListener>) -> Result<()> {
        let interface = url.interface().to_string();
        let categories = Category::subscribed(url);
        let lists: Vec<_> = {
            let mut st = self.state()?;
            st.subs.push(Subscription {
                interface: interface.clone(),
                categories: categories.clone(),
                listener: listener.clone(),
            });
            categories
                .iter()
                .map(|c| (*c, st.list(&interface, *c)))
                .collect()
        };
        for (c, list) in lists {
            listener.notify(c, list);
        }
        Ok(())
    }

    async fn unsubscribe(&self, url: &Url, listener: &Arc<dyn NotifyListener>) -> Result<()> {
        let id = listener_id(listener);
        let interface = url.interface();
        self.state()?
            .subs
            .retain(|s| !(s.interface == interface && listener_id(&s.listener) == id));
        Ok(())
    }

    async fn lookup(&self, url: &Url) -> Result<Vec<Url>> {
        Ok(self.state()?.list(url.interface(), Category::Providers))
    }

    async fn services(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .state()?
            .urls
            .iter()
            .filter(|(_, cats)| cats.values().any(|set| !set.is_empty()))
            .map(|(interface, _)| interface.clone())
            .collect();
        out.sort();
        Ok(out)
    }

    async fn get_config(&self, key: &ConfigKey) -> Result<Option<String>> {
        Ok(self.state()?.configs.get(key).cloned())
    }

    async fn publish_config(&self, key: &ConfigKey, content: Option<&str>) -> Result<()> {
        let mut st = self.state()?;
        match content {
            Some(c) => {
                check_content(key, c)?;
                st.configs.insert(key.clone(), c.to_string());
            }
            None => {
                st.configs.remove(key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::Recorder;

    #[tokio::test]
    async fn same_url_shares_one_registry_and_notifies_at_once() {
        let reg_url = Url::parse("memory://unit-share").expect("url");
        let a = crate::extension::get::<dyn RegistryFactory>("memory")
            .expect("memory registered")
            .connect(&reg_url)
            .await
            .expect("connect");
        let b = MemoryRegistryFactory
            .connect(&reg_url.with_param("x", 1))
            .await
            .expect("connect");
        let rec = Recorder::new();
        let sub = Url::parse("consumer://10.0.0.1/org.Foo").expect("url");
        b.subscribe(&sub, rec.clone()).await.expect("subscribe");
        assert_eq!(rec.last(Category::Providers), Some(vec![]));

        let p = Url::parse("dubbo://10.0.0.2:20880/org.Foo?side=provider").expect("url");
        a.register(&p).await.expect("register");
        assert_eq!(rec.last(Category::Providers), Some(vec![p.clone()]));
        assert_eq!(b.lookup(&sub).await.expect("lookup"), vec![p.clone()]);

        a.unregister(&p).await.expect("unregister");
        assert_eq!(rec.last(Category::Providers), Some(vec![]));

        let l: Arc<dyn NotifyListener> = rec.clone();
        b.unsubscribe(&sub, &l).await.expect("unsubscribe");
        let before = rec.count();
        a.register(&p).await.expect("register");
        assert_eq!(rec.count(), before, "no notification after unsubscribe");
    }

    #[tokio::test]
    async fn services_lists_interfaces_with_a_url_in_any_category() {
        let reg = MemoryRegistry::new(Url::parse("memory://unit-services").expect("url"));
        assert_eq!(
            reg.services().await.expect("services"),
            Vec::<String>::new()
        );
        let p = Url::parse("dubbo://10.0.0.1:20880/org.Zed?side=provider").expect("url");
        let p2 = Url::parse("dubbo://10.0.0.2:20880/org.Zed?side=provider").expect("url");
        let c = Url::parse("consumer://10.0.0.3/org.Alpha?side=consumer").expect("url");
        let r = Url::parse("route://0.0.0.0/org.Mid?category=routers").expect("url");
        for u in [&p, &p2, &c, &r] {
            reg.register(u).await.expect("register");
        }
        assert_eq!(
            reg.services().await.expect("services"),
            vec!["org.Alpha", "org.Mid", "org.Zed"]
        );
        reg.unregister(&p).await.expect("unregister");
        reg.unregister(&r).await.expect("unregister");
        assert_eq!(
            reg.services().await.expect("services"),
            vec!["org.Alpha", "org.Zed"],
            "an interface stays while one URL is left and goes with its last one"
        );
        // A subscription alone does not make an interface listed.
        let sub = Url::parse("consumer://h/org.Watched").expect("url");
        reg.subscribe(&sub, Recorder::new())
            .await
            .expect("subscribe");
        reg.unregister(&p2).await.expect("unregister");
        assert_eq!(reg.services().await.expect("services"), vec!["org.Alpha"]);
    }

    #[tokio::test]
    async fn consumer_urls_go_to_the_consumers_category() {
        let reg = MemoryRegistry::new(Url::parse("memory://unit-cat").expect("url"));
        let rec = Recorder::new();
        let sub = Url::parse("consumer://h/org.Bar?category=providers,consumers").expect("url");
        reg.subscribe(&sub, rec.clone()).await.expect("subscribe");
        let c = Url::parse("consumer://10.0.0.3/org.Bar?side=consumer").expect("url");
        reg.register(&c).await.expect("register");
        assert_eq!(rec.last(Category::Consumers), Some(vec![c]));
        assert_eq!(rec.last(Category::Providers), Some(vec![]));
    }
}
