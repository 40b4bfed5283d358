//! Governance rules as they are written into a registry: override rules (`configurators`)
//! and condition routing rules (`routers`) of a service, in Dubbo's layout, for the tools
//! that steer a running system (`rpcctl override|weight|route`, the web console).
//!
//! Every builder checks the rule exactly as consumers will ([`Override::parse`],
//! the `condition` router), so a rule a consumer would refuse is never written. Rules are
//! registered persistent (`dynamic=false`): they outlive the tool that wrote them, and
//! removing one is unregistering the same URL. [`read`] returns the rules in force.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Category, NotifyListener, Registry};
use crate::cluster::configurator::{Override, Overrides};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::url::{encode_component, Url};

/// The override rule setting `settings` (`timeout=3000`, `greet.retries=0`, ...) of
/// `interface`: for the provider at `provider` (`host:port`) when given, else for every
/// consumer (of `application` only, when given).
pub fn override_rule(
    interface: &str,
    provider: Option<&str>,
    application: Option<&str>,
    settings: &[(String, String)],
) -> Result<Url> {
    if settings.is_empty() {
        return Err(RpcError::config(
            "an override rule needs at least one key=value setting",
        ));
    }
    let at = provider.unwrap_or("0.0.0.0");
    let mut url = Url::parse(&format!("override://{at}/{interface}"))?
        .with_param(keys::CATEGORY, "configurators")
        .with_param(keys::DYNAMIC, "false");
    if let Some(app) = application {
        url = url.with_param(keys::APPLICATION, app);
    }
    let url = url.with_params(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    if provider.is_some() && url.port().is_none_or(|p| p == 0) {
        return Err(RpcError::config(format!(
            "provider address {at:?} has no port; want host:port"
        )));
    }
    Override::parse(&url)?;
    Ok(url)
}

/// The override rule giving the provider at `provider` (`host:port`) the load-balancing
/// weight `weight` for `interface` (0 drains it).
pub fn weight_rule(interface: &str, provider: &str, weight: u32) -> Result<Url> {
    override_rule(
        interface,
        Some(provider),
        None,
        &[(keys::WEIGHT.to_string(), weight.to_string())],
    )
}

/// The condition routing rule `rule` (`method = find* => host = 10.0.0.*`) of `interface`,
/// checked by the condition router; `force` and `priority` as that router reads them.
pub fn route_rule(interface: &str, rule: &str, force: bool, priority: i32) -> Result<Url> {
    let url = Url::parse(&format!(
        "condition://0.0.0.0/{interface}?rule={}",
        encode_component(rule)
    ))?
    .with_param(keys::CATEGORY, "routers")
    .with_param(keys::DYNAMIC, "false")
    .with_param(keys::FORCE, force)
    .with_param(keys::PRIORITY, priority);
    crate::cluster::router::from_url(&url)?;
    Ok(url)
}

/// The rules of one service in a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Override rules (`configurators`).
    pub overrides: Vec<Url>,
    /// Routing rules (`routers`).
    pub routes: Vec<Url>,
}

impl Rules {
    /// Every rule, overrides first.
    pub fn all(&self) -> impl Iterator<Item = &Url> {
        self.overrides.iter().chain(&self.routes)
    }

    /// Whether `rule` is one of them (in force).
    pub fn contains(&self, rule: &Url) -> bool {
        self.all().any(|r| r == rule)
    }

    /// The override rules as consumers would apply them; the error names a rule they would
    /// refuse (and so the list they would keep not applying).
    pub fn checked_overrides(&self) -> Result<Overrides> {
        Overrides::parse(&self.overrides)
    }
}

/// Collects the first notification of each category.
#[derive(Default)]
struct Snapshot {
    lists: Mutex<HashMap<Category, Vec<Url>>>,
    changed: tokio::sync::Notify,
}

impl NotifyListener for Snapshot {
    fn notify(&self, category: Category, urls: Vec<Url>) {
        if let Ok(mut l) = self.lists.lock() {
            l.entry(category).or_insert(urls);
        }
        self.changed.notify_waiters();
    }
}

/// The override and routing rules of `interface` in `registry`, waiting up to `timeout` for
/// the registry to list them. A registry that cannot answer is an error (of its kind),
/// never an empty list.
pub async fn read(registry: &dyn Registry, interface: &str, timeout: Duration) -> Result<Rules> {
    let mut lists = read_lists(
        registry,
        interface,
        &[Category::Configurators, Category::Routers],
        timeout,
    )
    .await?;
    let mut take = |c| lists.remove(&c).unwrap_or_default();
    Ok(Rules {
        overrides: take(Category::Configurators),
        routes: take(Category::Routers),
    })
}

/// What `registry` lists now under each of `categories` for `interface` (Dubbo's `empty://`
/// placeholders left out), waiting up to `timeout` for the first listing of each; for
/// operators' tools (consumers of a service, its rules). A registry that cannot answer is
/// an error (of its kind), never an empty list.
pub async fn read_lists(
    registry: &dyn Registry,
    interface: &str,
    categories: &[Category],
    timeout: Duration,
) -> Result<HashMap<Category, Vec<Url>>> {
    let snapshot = Arc::new(Snapshot::default());
    let names: Vec<&str> = categories.iter().map(|c| c.as_str()).collect();
    let url = Url::new("consumer", "127.0.0.1", 0)
        .with_path(interface)
        .with_param(keys::CATEGORY, names.join(","));
    let listener: Arc<dyn NotifyListener> = snapshot.clone();
    registry.subscribe(&url, listener.clone()).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let result = loop {
        let wake = snapshot.changed.notified();
        let done = snapshot
            .lists
            .lock()
            .ok()
            .filter(|l| categories.iter().all(|c| l.contains_key(c)))
            .map(|l| l.clone());
        if let Some(lists) = done {
            break Ok(lists
                .into_iter()
                .filter(|(c, _)| categories.contains(c))
                .map(|(c, list)| {
                    let real = list
                        .into_iter()
                        .filter(|u| u.protocol() != "empty")
                        .collect();
                    (c, real)
                })
                .collect());
        }
        if tokio::time::timeout_at(deadline, wake).await.is_err() {
            break Err(RpcError::new(
                ErrorKind::Network,
                format!(
                    "the registry did not list the {} of {interface} within {} ms",
                    names.join(" and "),
                    timeout.as_millis()
                ),
            ));
        }
    };
    let _ = registry.unsubscribe(&url, &listener).await;
    result
}

/// What writing or removing `rule` changes for each of `providers`, for a dry run: one line
/// per provider whose settings change, `address: key old -> new, ...`, as a consumer on
/// `consumer_host` would see it (routing rules change no setting; `None` there).
pub fn preview(
    current: &Rules,
    rule: &Url,
    remove: bool,
    providers: &[Url],
    consumer_host: &str,
) -> Result<Option<Vec<String>>> {
    if Category::of(rule) != Category::Configurators {
        return Ok(None);
    }
    let before = current.checked_overrides()?;
    let mut next: Vec<Url> = current
        .overrides
        .iter()
        .filter(|u| *u != rule)
        .cloned()
        .collect();
    if !remove {
        next.push(rule.clone());
    }
    let after = Overrides::parse(&next)?;
    let mut lines = Vec::new();
    for p in providers {
        let (old, new) = (
            before.apply(p, consumer_host),
            after.apply(p, consumer_host),
        );
        let mut keys: Vec<&String> = old.params().keys().chain(new.params().keys()).collect();
        keys.sort();
        keys.dedup();
        let changes: Vec<String> = keys
            .into_iter()
            .filter(|k| old.param(k) != new.param(k))
            .map(|k| {
                format!(
                    "{k} {} -> {}",
                    old.param(k).unwrap_or("(unset)"),
                    new.param(k).unwrap_or("(unset)")
                )
            })
            .collect();
        if !changes.is_empty() {
            lines.push(format!("{}: {}", p.address(), changes.join(", ")));
        }
    }
    Ok(Some(lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::MemoryRegistry;

    fn s(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn builders_write_what_consumers_accept_and_refuse_what_they_would_not() {
        let o = override_rule("a.B", None, Some("shop"), &[s("timeout", "3000")]).expect("ok");
        assert_eq!(
            o.to_full_string(),
            "override://0.0.0.0/a.B?application=shop&category=configurators&dynamic=false&timeout=3000"
        );
        let w = weight_rule("a.B", "10.0.0.1:20880", 0).expect("ok");
        assert_eq!(w.address(), "10.0.0.1:20880");
        assert_eq!(w.param(keys::WEIGHT), Some("0"));
        let r = route_rule("a.B", "method = greet => host = 10.0.0.*", true, 5).expect("ok");
        assert_eq!(Category::of(&r), Category::Routers);
        assert_eq!(r.param(keys::FORCE), Some("true"));

        let bad = override_rule("a.B", None, None, &[s("timeout", "soon")]).expect_err("bad");
        assert!(bad.message().contains("timeout"), "{bad}");
        assert!(override_rule("a.B", None, None, &[]).is_err());
        assert!(weight_rule("a.B", "10.0.0.1", 0).is_err(), "no port");
        let bad = route_rule("a.B", "host = ", false, 0).expect_err("bad rule");
        assert!(bad.to_string().contains("host"), "{bad}");
    }

    #[test]
    fn a_dry_run_shows_each_providers_changed_settings() {
        let providers = [
            Url::parse("dubbo://10.0.0.1:20880/a.B?weight=100&timeout=1000").expect("url"),
            Url::parse("dubbo://10.0.0.2:20880/a.B?weight=100&timeout=1000").expect("url"),
        ];
        let current = Rules::default();
        let w = weight_rule("a.B", "10.0.0.2:20880", 0).expect("ok");
        let lines = preview(&current, &w, false, &providers, "10.9.0.1")
            .expect("valid")
            .expect("an override");
        assert_eq!(lines, vec!["10.0.0.2:20880: weight 100 -> 0".to_string()]);
        let with = Rules {
            overrides: vec![w.clone()],
            routes: Vec::new(),
        };
        let back = preview(&with, &w, true, &providers, "h")
            .expect("valid")
            .expect("some");
        assert_eq!(back, vec!["10.0.0.2:20880: weight 0 -> 100".to_string()]);
        let r = route_rule("a.B", "=> host = 10.0.0.1", false, 0).expect("ok");
        assert_eq!(
            preview(&current, &r, false, &providers, "h").expect("ok"),
            None
        );
    }

    #[tokio::test]
    async fn read_returns_the_rules_in_force() {
        let reg = MemoryRegistry::new(Url::parse("memory://rules-read").expect("url"));
        let rules = read(&reg, "a.B", Duration::from_secs(1))
            .await
            .expect("read");
        assert_eq!(rules, Rules::default());
        let w = weight_rule("a.B", "10.0.0.2:20880", 0).expect("ok");
        let r = route_rule("a.B", "=> host = 10.0.0.1", false, 0).expect("ok");
        reg.register(&w).await.expect("register");
        reg.register(&r).await.expect("register");
        let rules = read(&reg, "a.B", Duration::from_secs(1))
            .await
            .expect("read");
        assert_eq!(rules.overrides, vec![w]);
        assert_eq!(rules.routes, vec![r]);
    }
}
