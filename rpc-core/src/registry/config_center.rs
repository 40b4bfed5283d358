//! Dubbo's dynamic configuration ("config center"): rule documents kept by the registry
//! server under keys, read by consumers and providers while they run.
//!
//! Dubbo 2.7+ and 3 keep their governance rules as YAML documents, not as URLs in a
//! category folder. A document lives under a key in a group (`dubbo` by default):
//!
//! | key | written for | read by |
//! |---|---|---|
//! | `{interface}:{version}:{group}.configurators` | one service | its consumers and providers |
//! | `{application}.configurators` | one application | that application's consumers and providers |
//! | `{interface}:{version}:{group}.condition-router` | one service | its consumers |
//! | `{application}.condition-router` | one consuming application | that application |
//! | `{provider application}.tag-router` | the providers of one application | their consumers |
//!
//! (`{interface}:{version}:{group}` keeps its colons when a part is empty:
//! `org.example.Greeter:1.0.0:`, [`service_rule_key`].) Each registry stores the entry where
//! Dubbo's own config center does: ZooKeeper and etcd at `/{root}/config/{group}/{key}`
//! ([`ConfigKey::path`]), Nacos as the config `dataId={key}` in `group`, the embedded
//! registry as a file under its directory.
//!
//! [`to_rule_urls`] turns a document into the rule URLs the rest of the framework already
//! applies (`override://` for configurators, `condition://` and `tag://` for routers), as
//! Dubbo's own parser does; a JSON array of `override://` URL strings is also accepted, as
//! Dubbo accepts it. [`RuleFeed`] merges those URLs with the `configurators` and `routers`
//! lists of the registry for one subscription, so one directory sees one list per category.
//! Precedence follows Dubbo: rules of the registry's `configurators` folder first, then the
//! application's document, then the service's, later ones winning among rules equally
//! specific.
//!
//! Documents are untrusted: at most [`MAX_CONFIG_BYTES`], no YAML anchors or aliases (a
//! document that expands is refused rather than expanded), at most [`MAX_RULE_URLS`] rules.
//! A document that does not convert, or converts to a rule the framework refuses, is logged
//! with its reason and ignored: the rules converted from the last good version of that key
//! stay in force.
//!
//! Entries are watched by reading them every `config.interval` milliseconds of the registry
//! URL (default 1000), and at once when the registry reports a change (ZooKeeper's data
//! watches, etcd's key watches: [`Registry::wait_config_change`]), one reader per registry and key in a process
//! however many subscriptions want it ([`watch`]). A read that fails (server away) changes nothing; the
//! registry cache (see [`super::cache`]) keeps the last value of every entry on disk, so a
//! process started while the server is down starts with the rules it saw last.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

use super::{Category, NotifyListener, Registry};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::url::{encode_component, Url};

/// The group rules are kept in unless a registry URL says otherwise (`config.group`).
pub const DEFAULT_GROUP: &str = "dubbo";
/// Largest rule document read or written.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;
/// Most rule URLs one document may convert to.
pub const MAX_RULE_URLS: usize = 10_000;
/// Longest key or group name.
pub const MAX_KEY_BYTES: usize = 512;
/// Deepest nesting of a rule document.
const MAX_DEPTH: usize = 32;
/// Most parser events (scalars, maps, lists) in one document.
const MAX_EVENTS: usize = 200_000;

/// Where one config entry lives: a group and a key in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigKey {
    group: String,
    key: String,
}

impl ConfigKey {
    /// The entry `key` of `group`. Both must be non-empty, at most [`MAX_KEY_BYTES`], without
    /// `/` (the group) or control characters; the error names what is wrong.
    pub fn new(group: &str, key: &str) -> Result<ConfigKey> {
        let check = |what: &str, text: &str| -> Result<()> {
            if text.trim().is_empty() {
                return Err(RpcError::config(format!("config {what} is empty")));
            }
            if text.len() > MAX_KEY_BYTES {
                return Err(RpcError::config(format!(
                    "config {what} is {} bytes, more than {MAX_KEY_BYTES}",
                    text.len()
                )));
            }
            if text.chars().any(char::is_control) || text.contains('/') {
                return Err(RpcError::config(format!(
                    "config {what} {text:?} has a control character or a '/'"
                )));
            }
            if text == "." || text == ".." {
                return Err(RpcError::config(format!(
                    "config {what} {text:?} is not a plain name"
                )));
            }
            Ok(())
        };
        check("group", group)?;
        check("key", key)?;
        Ok(ConfigKey {
            group: group.to_string(),
            key: key.to_string(),
        })
    }

    /// The entry `key` of the group `registry` keeps rules in (`config.group`, default
    /// [`DEFAULT_GROUP`]).
    pub fn rule(registry: &Url, key: &str) -> Result<ConfigKey> {
        ConfigKey::new(
            registry.param(keys::CONFIG_GROUP).unwrap_or(DEFAULT_GROUP),
            key,
        )
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The key within the group.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// `{root}/config/{group}/{key}`, where Dubbo's ZooKeeper and etcd config centers keep
    /// the entry (`root` as [`super::remote::DubboLayout::root`] gives it: `/dubbo` or empty).
    pub fn path(&self, root: &str) -> String {
        format!("{root}/config/{}/{}", self.group, self.key)
    }

    /// A file-name-safe form of the key, for registries that keep entries as files.
    pub fn file_name(&self) -> String {
        encode_component(&self.key)
    }
}

impl std::fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.group, self.key)
    }
}

/// Checks a document before it is written or after it was read: at most
/// [`MAX_CONFIG_BYTES`].
pub fn check_content(key: &ConfigKey, content: &str) -> Result<()> {
    if content.len() > MAX_CONFIG_BYTES {
        return Err(RpcError::config(format!(
            "config {key} is {} bytes, more than the limit of {MAX_CONFIG_BYTES}",
            content.len()
        )));
    }
    Ok(())
}

/// Dubbo's rule key of a service, `{interface}:{version}:{group}` with empty parts kept as
/// empty (`org.example.Greeter:1.0.0:`, `org.example.Greeter::`).
pub fn service_rule_key(url: &Url) -> String {
    let part = |k: &str| url.param(k).map(str::trim).unwrap_or("").to_string();
    format!(
        "{}:{}:{}",
        url.interface(),
        part(keys::VERSION),
        part(keys::GROUP)
    )
}

/// The kinds of rule document, by their key's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `.configurators`: override rules.
    Configurators,
    /// `.condition-router`: condition routing rules.
    ConditionRouter,
    /// `.tag-router`: tag routing rules.
    TagRouter,
}

impl RuleKind {
    /// The key suffix of the kind.
    pub fn suffix(self) -> &'static str {
        match self {
            RuleKind::Configurators => ".configurators",
            RuleKind::ConditionRouter => ".condition-router",
            RuleKind::TagRouter => ".tag-router",
        }
    }

    /// The registry category the kind's rules join.
    pub fn category(self) -> Category {
        match self {
            RuleKind::Configurators => Category::Configurators,
            RuleKind::ConditionRouter | RuleKind::TagRouter => Category::Routers,
        }
    }

    /// The kind of a key, from its suffix.
    pub fn of_key(key: &str) -> Option<RuleKind> {
        [
            RuleKind::Configurators,
            RuleKind::ConditionRouter,
            RuleKind::TagRouter,
        ]
        .into_iter()
        .find(|k| key.ends_with(k.suffix()) && key.len() > k.suffix().len())
    }
}

fn refuse(key: &str, what: impl std::fmt::Display) -> RpcError {
    RpcError::new(ErrorKind::Config, format!("rule {key} refused: {what}"))
}

/// Parses one YAML document, refusing anchors/aliases (they can expand a small document
/// into a huge one), deep nesting and oversized input.
fn load_yaml(key: &str, text: &str) -> Result<Yaml> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(refuse(
            key,
            format!("{} bytes, more than {MAX_CONFIG_BYTES}", text.len()),
        ));
    }
    let mut parser = Parser::new_from_str(text);
    let (mut depth, mut events) = (0usize, 0usize);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| refuse(key, format!("not YAML: {e}")))?;
        events += 1;
        if events > MAX_EVENTS {
            return Err(refuse(key, "the document is too large"));
        }
        match event {
            Event::StreamEnd => break,
            Event::Alias(_) => {
                return Err(refuse(
                    key,
                    format!(
                        "YAML aliases are not allowed (line {})",
                        mark.line().saturating_add(1)
                    ),
                ))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                depth += 1;
                if depth > MAX_DEPTH || anchor != 0 {
                    return Err(refuse(key, "nested too deep, or an anchor"));
                }
            }
            Event::Scalar(_, _, anchor, _) if anchor != 0 => {
                return Err(refuse(key, "YAML anchors are not allowed"));
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let mut docs =
        YamlLoader::load_from_str(text).map_err(|e| refuse(key, format!("not YAML: {e}")))?;
    match docs.len() {
        0 => Err(refuse(key, "the document is empty")),
        1 => Ok(docs.remove(0)),
        n => Err(refuse(key, format!("{n} YAML documents, want one"))),
    }
}

/// A scalar as Dubbo reads it (`String.valueOf`): text, number or boolean.
fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Field `name` of a map: `None` when absent or null.
fn field<'a>(map: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    match &map[name] {
        Yaml::BadValue | Yaml::Null => None,
        v => Some(v),
    }
}

fn text_field(key: &str, map: &Yaml, name: &str) -> Result<Option<String>> {
    field(map, name)
        .map(|v| scalar(v).ok_or_else(|| refuse(key, format!("`{name}` is not a single value"))))
        .transpose()
}

fn bool_field(key: &str, map: &Yaml, name: &str, default: bool) -> Result<bool> {
    match text_field(key, map, name)? {
        None => Ok(default),
        Some(t) => match t.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(refuse(
                key,
                format!("`{name}: {other}` is not true or false"),
            )),
        },
    }
}

fn int_field(key: &str, map: &Yaml, name: &str) -> Result<i32> {
    match text_field(key, map, name)? {
        None => Ok(0),
        Some(t) => t
            .trim()
            .parse()
            .map_err(|_| refuse(key, format!("`{name}: {t}` is not a whole number"))),
    }
}

/// A list of values; a single value counts as a list of one.
fn list_field(key: &str, map: &Yaml, name: &str) -> Result<Vec<String>> {
    match field(map, name) {
        None => Ok(Vec::new()),
        Some(Yaml::Array(items)) => items
            .iter()
            .map(|v| {
                scalar(v).ok_or_else(|| refuse(key, format!("an item of `{name}` is not a value")))
            })
            .collect(),
        Some(v) => scalar(v)
            .map(|s| vec![s])
            .ok_or_else(|| refuse(key, format!("`{name}` is not a list"))),
    }
}

fn check_token(key: &str, what: &str, text: &str) -> Result<()> {
    let bad = text.is_empty()
        || text.len() > MAX_KEY_BYTES
        || text
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "?&#/=".contains(c));
    if bad {
        return Err(refuse(key, format!("{what} {text:?} is not a plain value")));
    }
    Ok(())
}

/// Converts the document `text` stored under `key` into rule URLs (see the module docs),
/// the error naming the key and what is wrong. An empty document gives no rule.
pub fn to_rule_urls(key: &str, text: &str) -> Result<Vec<Url>> {
    let Some(kind) = RuleKind::of_key(key) else {
        return Err(refuse(
            key,
            "the key does not end in .configurators, .condition-router or .tag-router",
        ));
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let urls = match kind {
        RuleKind::Configurators if text.trim_start().starts_with('[') => json_overrides(key, text)?,
        RuleKind::Configurators => configurators(key, &load_yaml(key, text)?)?,
        RuleKind::ConditionRouter => condition_router(key, &load_yaml(key, text)?)?,
        RuleKind::TagRouter => tag_router(key, &load_yaml(key, text)?)?,
    };
    if urls.len() > MAX_RULE_URLS {
        return Err(refuse(
            key,
            format!("{} rules, more than {MAX_RULE_URLS}", urls.len()),
        ));
    }
    Ok(urls)
}

/// Dubbo's compatible form: a JSON array of `override://` URL strings.
fn json_overrides(key: &str, text: &str) -> Result<Vec<Url>> {
    let list: Vec<String> = serde_json::from_str(text)
        .map_err(|e| refuse(key, format!("not a JSON list of rule URLs: {e}")))?;
    let mut out = Vec::with_capacity(list.len());
    for one in list {
        let url = Url::parse(one.trim()).map_err(|e| refuse(key, format!("{one:?}: {e}")))?;
        crate::cluster::configurator::Override::parse(&url)
            .map_err(|e| refuse(key, e.message()))?;
        out.push(url);
    }
    Ok(out)
}

/// `group/interface:version` (Dubbo's service field) → (interface, group, version).
fn split_service(key: &str, service: &str) -> Result<(String, Option<String>, Option<String>)> {
    let service = service.trim();
    let (group, rest) = match service.split_once('/') {
        Some((g, rest)) if !g.is_empty() => (Some(g.to_string()), rest),
        _ => (None, service),
    };
    let (interface, version) = match rest.split_once(':') {
        Some((i, v)) if !i.is_empty() => (i, Some(v.to_string()).filter(|v| !v.is_empty())),
        _ => (rest, None),
    };
    check_token(key, "service", interface)?;
    Ok((interface.to_string(), group, version))
}

/// Dubbo's `ConfiguratorConfig` → `override://` URLs (one per address, and per application
/// or per service of the item).
fn configurators(key: &str, doc: &Yaml) -> Result<Vec<Url>> {
    if !doc.is_hash() {
        return Err(refuse(key, "the document is not a map"));
    }
    let scope = text_field(key, doc, "scope")?.unwrap_or_else(|| "service".into());
    let rule_key =
        text_field(key, doc, "key")?.ok_or_else(|| refuse(key, "the rule has no `key`"))?;
    let enabled = bool_field(key, doc, "enabled", true)?;
    let version = text_field(key, doc, "configVersion")?.unwrap_or_else(|| "v2.7".into());
    let Some(Yaml::Array(items)) = field(doc, "configs") else {
        return Err(refuse(key, "the rule has no `configs` list"));
    };
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let at = |what: String| refuse(key, format!("configs[{n}]: {what}"));
        if !item.is_hash() {
            return Err(at("not a map".into()));
        }
        let Some(Yaml::Hash(params)) = field(item, "parameters") else {
            return Err(at(
                "no `parameters`: a rule must set at least one value".into()
            ));
        };
        let mut settings = Vec::new();
        for (k, v) in params {
            let (Some(k), Some(v)) = (scalar(k), scalar(v)) else {
                return Err(at("a parameter is not a key: value pair".into()));
            };
            check_token(key, "parameter", &k)?;
            settings.push((k, v));
        }
        if settings.is_empty() {
            return Err(at(
                "empty `parameters`: a rule must set at least one value".into()
            ));
        }
        let side = text_field(key, item, "side")?;
        if let Some(s) = side.as_deref() {
            if s != "consumer" && s != "provider" {
                return Err(at(format!("side {s:?} is not consumer or provider")));
            }
        }
        let item_enabled = match text_field(key, item, "type")?.as_deref() {
            None | Some("general") => enabled,
            Some(_) => bool_field(key, item, "enabled", true)?,
        };
        let mut addresses = list_field(key, item, "addresses")?;
        if addresses.is_empty() {
            addresses.push("0.0.0.0".into());
        }
        let mut providers = list_field(key, item, "providerAddresses")?;
        if providers.is_empty() && side.as_deref() == Some("provider") {
            providers = addresses.clone();
        }
        let applications = list_field(key, item, "applications")?;
        let mut services = list_field(key, item, "services")?;
        // (the service, and the applications each rule URL is for)
        let targets: Vec<(String, Vec<Option<String>>)> = if scope == "application" {
            if services.is_empty() {
                services.push("*".into());
            }
            services
                .into_iter()
                .map(|s| (s, vec![Some(rule_key.clone())]))
                .collect()
        } else if scope == "service" {
            let apps = if applications.is_empty() {
                vec![None]
            } else {
                applications.into_iter().map(Some).collect()
            };
            vec![(rule_key.clone(), apps)]
        } else {
            return Err(refuse(
                key,
                format!("scope {scope:?} is not service or application"),
            ));
        };
        for address in &addresses {
            for (service, apps) in &targets {
                let (interface, group, svc_version) = split_service(key, service)?;
                for app in apps {
                    let mut url = Url::parse(&format!("override://{}/{interface}", address.trim()))
                        .map_err(|e| at(format!("address {address:?}: {e}")))?
                        .with_param(keys::CATEGORY, "dynamicconfigurators")
                        .with_param(keys::ENABLED, item_enabled)
                        .with_param(keys::CONFIG_VERSION, &version);
                    if let Some(s) = &side {
                        url = url.with_param(keys::SIDE, s);
                    }
                    if let Some(g) = &group {
                        url = url.with_param(keys::GROUP, g);
                    }
                    if let Some(v) = &svc_version {
                        url = url.with_param(keys::VERSION, v);
                    }
                    if let Some(a) = app {
                        url = url.with_param(keys::APPLICATION, a);
                    }
                    if !providers.is_empty() {
                        url = url.with_param(keys::PROVIDER_ADDRESSES, providers.join(","));
                    }
                    let url = url.with_params(settings.iter().cloned());
                    crate::cluster::configurator::Override::parse(&url)
                        .map_err(|e| at(e.message().to_string()))?;
                    out.push(url);
                    if out.len() > MAX_RULE_URLS {
                        return Err(refuse(key, format!("more than {MAX_RULE_URLS} rules")));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The settings every router rule document carries (Dubbo's `AbstractRouterRule`).
fn router_url(key: &str, doc: &Yaml, protocol: &str) -> Result<Url> {
    if !doc.is_hash() {
        return Err(refuse(key, "the document is not a map"));
    }
    let rule_key =
        text_field(key, doc, "key")?.ok_or_else(|| refuse(key, "the rule has no `key`"))?;
    let path = match text_field(key, doc, "scope")?.as_deref() {
        None | Some("service") => split_service(key, &rule_key)?.0,
        Some("application") => {
            check_token(key, "application", &rule_key)?;
            "*".to_string()
        }
        Some(other) => {
            return Err(refuse(
                key,
                format!("scope {other:?} is not service or application"),
            ))
        }
    };
    Ok(Url::parse(&format!("{protocol}://0.0.0.0/{path}"))
        .map_err(|e| refuse(key, e))?
        .with_param(keys::CATEGORY, "routers")
        .with_param(keys::DYNAMIC, "false")
        .with_param(keys::KEY, rule_key)
        .with_param(keys::FORCE, bool_field(key, doc, "force", false)?)
        .with_param(keys::RUNTIME, bool_field(key, doc, "runtime", true)?)
        .with_param(keys::ENABLED, bool_field(key, doc, "enabled", true)?)
        .with_param(keys::PRIORITY, int_field(key, doc, "priority")?))
}

/// Dubbo's `ConditionRouterRule` → one `condition://` URL per condition (every condition
/// filters in turn, as Dubbo chains them).
fn condition_router(key: &str, doc: &Yaml) -> Result<Vec<Url>> {
    let base = router_url(key, doc, "condition")?;
    let conditions = list_field(key, doc, "conditions")?;
    if conditions.is_empty() {
        return Err(refuse(key, "the rule has no `conditions`"));
    }
    conditions
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let url = base.with_param(keys::RULE, c.trim());
            crate::cluster::router::from_url(&url)
                .map_err(|e| refuse(key, format!("conditions[{n}] {c:?}: {}", e.message())))?;
            Ok(url)
        })
        .collect()
}

/// Dubbo's `TagRouterRule` (tags with their addresses) → one `tag://` URL carrying them as
/// `tags=name=addr|addr;name=addr`.
fn tag_router(key: &str, doc: &Yaml) -> Result<Vec<Url>> {
    let base = router_url(key, doc, "tag")?;
    let Some(Yaml::Array(tags)) = field(doc, "tags") else {
        return Err(refuse(key, "the rule has no `tags` list"));
    };
    let mut parts = Vec::new();
    for (n, tag) in tags.iter().enumerate() {
        let name = text_field(key, tag, "name")?
            .ok_or_else(|| refuse(key, format!("tags[{n}] has no `name`")))?;
        check_token(key, "tag name", &name)?;
        if name.contains(';') || name.contains('|') {
            return Err(refuse(key, format!("tag name {name:?} has ';' or '|'")));
        }
        let addresses = list_field(key, tag, "addresses")?;
        for a in &addresses {
            check_token(key, "address", a)?;
            if a.contains(';') || a.contains('|') || a.contains(',') {
                return Err(refuse(key, format!("address {a:?} has ';', '|' or ','")));
            }
        }
        parts.push(format!("{name}={}", addresses.join("|")));
    }
    let url = base.with_param(keys::TAGS, parts.join(";"));
    crate::cluster::router::from_url(&url).map_err(|e| refuse(key, e.message()))?;
    Ok(vec![url])
}

// ---------------------------------------------------------------------------------------
// Watching entries

/// Told when a watched entry changes.
pub trait ConfigListener: Send + Sync {
    /// `value` is the entry's new content, `None` when it was removed. Called from a tokio
    /// task; keep it short.
    fn changed(&self, key: &ConfigKey, value: Option<&str>);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is one assignment, so a poisoned lock still holds a consistent value.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One reader of one entry of one registry, shared by every listener in the process.
struct Reader {
    listeners: Mutex<Vec<(u64, Weak<dyn ConfigListener>)>>,
    /// The last value read (`None`: not read yet).
    last: Mutex<Option<Option<String>>>,
    /// Whether the entry has a value to go by: a first read ended (answered, or failed with
    /// nothing cached to answer it), or a cached copy was handed on at the start.
    settled: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

type ReaderKey = (String, ConfigKey);

fn readers() -> &'static Mutex<HashMap<ReaderKey, Arc<Reader>>> {
    static READERS: OnceLock<Mutex<HashMap<ReaderKey, Arc<Reader>>>> = OnceLock::new();
    READERS.get_or_init(Default::default)
}

/// A watch of one entry; dropping it stops the listener's notifications (and the reader,
/// once no one else watches the entry).
pub struct ConfigWatch {
    id: u64,
    reader_key: ReaderKey,
}

impl ConfigWatch {
    /// Whether the entry has a value to go by: read once (its value, if any, handed to the
    /// listeners), started from the cached copy, or found unreadable with nothing cached.
    pub fn has_read(&self) -> bool {
        lock(readers())
            .get(&self.reader_key)
            .is_some_and(|r| r.settled.load(Ordering::Acquire))
    }
}

impl std::fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch")
            .field("key", &self.reader_key.1)
            .finish_non_exhaustive()
    }
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        let mut table = lock(readers());
        let Some(reader) = table.get(&self.reader_key).cloned() else {
            return;
        };
        let empty = {
            let mut l = lock(&reader.listeners);
            l.retain(|(id, w)| *id != self.id && w.strong_count() > 0);
            l.is_empty()
        };
        if empty {
            table.remove(&self.reader_key);
            if let Some(task) = lock(&reader.task).take() {
                task.abort();
            }
        }
    }
}

/// How often `registry`'s entries are read: its `config.interval` key in milliseconds
/// (default 1000, at least 50).
pub fn interval(registry: &Url) -> Result<Duration> {
    let ms: u64 = registry.param_as(keys::CONFIG_INTERVAL, 1000)?;
    Ok(Duration::from_millis(ms.max(50)))
}

/// Watches `key` in `registry`: `listener` gets the current value as soon as it is read
/// (at once when another watch already read it, or when the registry cannot be reached and
/// keeps a copy: [`Registry::cached_config`]), then every change. Must be called within
/// a tokio runtime. The watch lasts until the returned handle is dropped; the reader holds
/// the listener weakly, so a listener that owns its watches is freed normally.
pub fn watch(
    registry: &Arc<dyn Registry>,
    key: ConfigKey,
    listener: &Arc<dyn ConfigListener>,
) -> Result<ConfigWatch> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let every = interval(registry.url())?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let reader_key = (registry.url().to_string(), key.clone());
    let (reader, fresh) = {
        let mut table = lock(readers());
        match table.get(&reader_key) {
            Some(r) => (r.clone(), false),
            None => {
                // Started from the cached copy, if the registry gives one without waiting:
                // the first read then only tells the listeners if the entry changed since.
                let cached = registry.cached_config(&key);
                let settled = AtomicBool::new(cached.is_some());
                let r = Arc::new(Reader {
                    listeners: Mutex::new(Vec::new()),
                    last: Mutex::new(cached.map(Some)),
                    settled,
                    task: Mutex::new(None),
                });
                table.insert(reader_key.clone(), r.clone());
                (r, true)
            }
        }
    };
    lock(&reader.listeners).push((id, Arc::downgrade(listener)));
    if let Some(value) = lock(&reader.last).clone() {
        listener.changed(&key, value.as_deref());
    }
    if fresh {
        let (registry, weak_reader) = (registry.clone(), Arc::downgrade(&reader));
        let task = tokio::spawn(async move {
            read_loop(registry, key, weak_reader, every).await;
        });
        *lock(&reader.task) = Some(task);
    }
    Ok(ConfigWatch { id, reader_key })
}

async fn read_loop(
    registry: Arc<dyn Registry>,
    key: ConfigKey,
    reader: Weak<Reader>,
    every: Duration,
) {
    let mut failing = false;
    loop {
        let result = registry.get_config(&key).await;
        let Some(reader) = reader.upgrade() else {
            return;
        };
        match result {
            Ok(value) => {
                if failing {
                    tracing::info!(key = %key, "config center: entry readable again");
                    failing = false;
                }
                let changed = {
                    let mut last = lock(&reader.last);
                    if last.as_ref() == Some(&value) {
                        false
                    } else {
                        *last = Some(value.clone());
                        true
                    }
                };
                if changed {
                    let listeners: Vec<_> = lock(&reader.listeners)
                        .iter()
                        .filter_map(|(_, w)| w.upgrade())
                        .collect();
                    for l in listeners {
                        l.changed(&key, value.as_deref());
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Config => {
                // This registry keeps no config entries: nothing to watch.
                tracing::debug!(key = %key, error = %e, "config center: none; not watched");
                reader.settled.store(true, Ordering::Release);
                return;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(key = %key, error = %e,
                        "config center: cannot read the entry; the rules in force stay");
                    failing = true;
                }
            }
        }
        reader.settled.store(true, Ordering::Release);
        let seen = lock(&reader.last).clone().flatten();
        drop(reader);
        registry
            .wait_config_change(&key, seen.as_deref(), every)
            .await;
    }
}

// ---------------------------------------------------------------------------------------
// Merging registry lists and config-center rules

#[derive(Default)]
struct FeedState {
    /// The last `configurators` / `routers` lists the registry notified.
    registry: HashMap<Category, Vec<Url>>,
    /// The rules converted from the last good document of each watched key.
    documents: HashMap<ConfigKey, Vec<Url>>,
    /// The keys watched, in the order their rules are applied, and their handles.
    watches: Vec<(ConfigKey, RuleKind, ConfigWatch)>,
    /// The provider applications whose tag rules are watched.
    tag_apps: Vec<String>,
}

/// A [`NotifyListener`] standing between a registry subscription and its listener (a
/// consumer's directory, a provider's rule watcher): the `configurators` and `routers` lists
/// it passes on also hold the rules of the subscription's config-center documents (see the
/// module docs); provider lists pass through unchanged (a consumer's feed also watches the
/// tag rules of the providers' applications).
pub struct RuleFeed {
    inner: Arc<dyn NotifyListener>,
    registry: Weak<dyn Registry>,
    watch_tags: bool,
    state: Mutex<FeedState>,
    /// Held from computing a merged list until it is delivered, so that two changes (two
    /// documents read on two threads, a document and a registry list) reach the listener in
    /// the order they were merged: the last list delivered is the newest.
    order: Mutex<()>,
    me: Weak<RuleFeed>,
}

impl RuleFeed {
    /// The feed of a consumer's subscription for `reference`: the service's and the
    /// consumer application's configurators and condition routers, and the tag routers of
    /// the providers' applications. With `config.enabled=false` on the registry URL, only
    /// the registry's lists. Must be called within a tokio runtime.
    pub fn consumer(
        registry: &Arc<dyn Registry>,
        reference: &Url,
        inner: Arc<dyn NotifyListener>,
    ) -> Result<Arc<RuleFeed>> {
        let mut keys = Vec::new();
        if let Some(app) = reference.param(keys::APPLICATION).filter(|a| !a.is_empty()) {
            keys.push((format!("{app}.configurators"), RuleKind::Configurators));
            keys.push((format!("{app}.condition-router"), RuleKind::ConditionRouter));
        }
        let service = service_rule_key(reference);
        keys.push((format!("{service}.configurators"), RuleKind::Configurators));
        keys.push((
            format!("{service}.condition-router"),
            RuleKind::ConditionRouter,
        ));
        RuleFeed::start(registry, keys, true, inner)
    }

    /// The feed of a provider's rule watch for its exported `service`: the service's and the
    /// provider application's configurators.
    pub fn provider(
        registry: &Arc<dyn Registry>,
        service: &Url,
        inner: Arc<dyn NotifyListener>,
    ) -> Result<Arc<RuleFeed>> {
        let mut keys = Vec::new();
        if let Some(app) = service.param(keys::APPLICATION).filter(|a| !a.is_empty()) {
            keys.push((format!("{app}.configurators"), RuleKind::Configurators));
        }
        keys.push((
            format!("{}.configurators", service_rule_key(service)),
            RuleKind::Configurators,
        ));
        RuleFeed::start(registry, keys, false, inner)
    }

    fn start(
        registry: &Arc<dyn Registry>,
        keys: Vec<(String, RuleKind)>,
        watch_tags: bool,
        inner: Arc<dyn NotifyListener>,
    ) -> Result<Arc<RuleFeed>> {
        let enabled = registry.url().param_bool(keys::CONFIG_ENABLED, true)?;
        // A name that cannot be a key (an interface with a control character) only means
        // there is no document to read for it.
        let keys: Vec<_> = keys
            .into_iter()
            .filter_map(|(k, kind)| match ConfigKey::rule(registry.url(), &k) {
                Ok(key) => Some((key, kind)),
                Err(e) => {
                    tracing::warn!(key = %k, error = %e, "config center: not watched");
                    None
                }
            })
            .collect();
        let feed = Arc::new_cyclic(|me| RuleFeed {
            inner,
            registry: Arc::downgrade(registry),
            watch_tags: watch_tags && enabled,
            state: Mutex::new(FeedState::default()),
            order: Mutex::new(()),
            me: me.clone(),
        });
        if enabled {
            for (key, kind) in keys {
                feed.add_watch(registry, key, kind)?;
            }
        }
        Ok(feed)
    }

    fn add_watch(
        self: &Arc<Self>,
        registry: &Arc<dyn Registry>,
        key: ConfigKey,
        kind: RuleKind,
    ) -> Result<()> {
        let listener: Arc<dyn ConfigListener> = self.clone();
        // `watch` may hand a value on at once (another watch read it already, or the cached
        // copy): it is kept in `documents`, but merged only once the key has its place in
        // `watches`, so the list is passed on again then.
        let handle = watch(registry, key.clone(), &listener)?;
        let _order = lock(&self.order);
        let merged = {
            let mut st = lock(&self.state);
            st.watches.push((key.clone(), kind, handle));
            st.documents
                .get(&key)
                .is_some_and(|rules| !rules.is_empty())
                .then(|| RuleFeed::merged(&st, kind.category()))
        };
        if let Some(list) = merged {
            self.inner.notify(kind.category(), list);
        }
        Ok(())
    }

    /// Whether every watched document has a value to go by ([`ConfigWatch::has_read`]): a
    /// reference waits for it (within its `check` time) while the registry can be reached,
    /// so that its first call runs under the rules in force.
    pub fn has_read_all(&self) -> bool {
        lock(&self.state)
            .watches
            .iter()
            .all(|(_, _, w)| w.has_read())
    }

    /// The keys this feed watches, in the order their rules are applied.
    pub fn keys(&self) -> Vec<ConfigKey> {
        lock(&self.state)
            .watches
            .iter()
            .map(|(k, _, _)| k.clone())
            .collect()
    }

    /// The complete list of `category` as it is passed on: the registry's, then each
    /// document's rules in key order.
    fn merged(state: &FeedState, category: Category) -> Vec<Url> {
        let mut out: Vec<Url> = state
            .registry
            .get(&category)
            .map(|l| {
                l.iter()
                    .filter(|u| u.protocol() != "empty")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for (key, kind, _) in &state.watches {
            if kind.category() == category {
                if let Some(rules) = state.documents.get(key) {
                    out.extend(rules.iter().cloned());
                }
            }
        }
        out
    }

    /// Watches the tag rules of the applications of `providers` (adding and dropping watches
    /// as the set changes).
    fn follow_tag_rules(&self, providers: &[Url]) {
        let Some(me) = self.me.upgrade() else { return };
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let mut apps: Vec<String> = providers
            .iter()
            .filter_map(|p| p.param(keys::APPLICATION))
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        apps.sort();
        apps.dedup();
        let (added, removed) = {
            let mut st = lock(&self.state);
            if st.tag_apps == apps {
                return;
            }
            let added: Vec<String> = apps
                .iter()
                .filter(|a| !st.tag_apps.contains(a))
                .cloned()
                .collect();
            let removed: Vec<String> = st
                .tag_apps
                .iter()
                .filter(|a| !apps.contains(a))
                .cloned()
                .collect();
            st.tag_apps = apps;
            (added, removed)
        };
        if !removed.is_empty() {
            let _order = lock(&self.order);
            let routers = {
                let mut st = lock(&self.state);
                let gone: Vec<ConfigKey> = removed
                    .iter()
                    .filter_map(|a| {
                        ConfigKey::rule(registry.url(), &format!("{a}.tag-router")).ok()
                    })
                    .collect();
                st.watches.retain(|(k, _, _)| !gone.contains(k));
                for k in &gone {
                    st.documents.remove(k);
                }
                RuleFeed::merged(&st, Category::Routers)
            };
            self.inner.notify(Category::Routers, routers);
        }
        for app in added {
            match ConfigKey::rule(registry.url(), &format!("{app}.tag-router")) {
                Ok(key) => {
                    if let Err(e) = me.add_watch(&registry, key, RuleKind::TagRouter) {
                        tracing::warn!(application = %app, error = %e, "cannot watch tag rules");
                    }
                }
                Err(e) => {
                    tracing::warn!(application = %app, error = %e, "provider application skipped for tag rules")
                }
            }
        }
    }
}

impl NotifyListener for RuleFeed {
    fn notify(&self, category: Category, urls: Vec<Url>) {
        match category {
            Category::Configurators | Category::Routers => {
                let _order = lock(&self.order);
                let merged = {
                    let mut st = lock(&self.state);
                    st.registry.insert(category, urls);
                    RuleFeed::merged(&st, category)
                };
                self.inner.notify(category, merged);
            }
            Category::Providers => {
                if self.watch_tags {
                    self.follow_tag_rules(&urls);
                }
                self.inner.notify(category, urls);
            }
            Category::Consumers => self.inner.notify(category, urls),
        }
    }
}

impl ConfigListener for RuleFeed {
    fn changed(&self, key: &ConfigKey, value: Option<&str>) {
        let rules = match value {
            None => Ok(Vec::new()),
            Some(text) => to_rule_urls(key.key(), text),
        };
        let rules = match rules {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(key = %key, error = %e,
                    "config center: rule document refused; the last good rules stay in force");
                return;
            }
        };
        let _order = lock(&self.order);
        let (category, merged) = {
            let mut st = lock(&self.state);
            let Some(kind) = st
                .watches
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, kind, _)| *kind)
                .or_else(|| RuleKind::of_key(key.key()))
            else {
                return;
            };
            if st.documents.get(key) == Some(&rules) {
                return;
            }
            tracing::info!(key = %key, rules = rules.len(), "config center: rules changed");
            st.documents.insert(key.clone(), rules);
            (kind.category(), RuleFeed::merged(&st, kind.category()))
        };
        self.inner.notify(category, merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn service_rule_keys_keep_empty_parts() {
        assert_eq!(
            service_rule_key(&url("consumer://h/org.example.Greeter?version=1.0.0")),
            "org.example.Greeter:1.0.0:"
        );
        assert_eq!(
            service_rule_key(&url("consumer://h/org.example.Greeter?group=g&version=2")),
            "org.example.Greeter:2:g"
        );
        assert_eq!(
            service_rule_key(&url("consumer://h/org.example.Greeter")),
            "org.example.Greeter::"
        );
    }

    #[test]
    fn config_keys_are_checked_and_placed_as_dubbo_places_them() {
        let k = ConfigKey::new("dubbo", "org.example.Greeter:1.0.0:.configurators").expect("key");
        assert_eq!(
            k.path("/dubbo"),
            "/dubbo/config/dubbo/org.example.Greeter:1.0.0:.configurators"
        );
        assert!(ConfigKey::new("dubbo", "").is_err());
        assert!(ConfigKey::new("dubbo", "../etc").is_err());
        assert!(ConfigKey::new("du/bbo", "k").is_err());
        assert!(ConfigKey::new("dubbo", "a\nb").is_err());
        assert!(ConfigKey::new("dubbo", &"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }

    /// A service-scope rule as Dubbo Admin writes it: a consumer timeout, a provider weight.
    #[test]
    fn service_configurators_become_override_urls() {
        let text = "configVersion: v2.7
scope: service
key: org.example.Greeter:1.0.0
enabled: true
configs:
  - addresses: [0.0.0.0]
    side: consumer
    parameters:
      timeout: 6000
  - addresses: ['10.0.0.5:20880']
    side: provider
    parameters:
      weight: 0
  - side: consumer
    applications: [shop, cart]
    parameters:
      greet.retries: 0
";
        let urls = to_rule_urls("org.example.Greeter:1.0.0:.configurators", text).expect("ok");
        let texts: Vec<String> = urls.iter().map(Url::to_string).collect();
        assert_eq!(urls.len(), 4, "{texts:#?}");
        assert_eq!(urls[0].host(), "0.0.0.0");
        assert_eq!(urls[0].param(keys::TIMEOUT), Some("6000"));
        assert_eq!(urls[0].param(keys::SIDE), Some("consumer"));
        assert_eq!(urls[0].param(keys::VERSION), Some("1.0.0"));
        assert_eq!(urls[0].path(), "org.example.Greeter");
        assert_eq!(urls[1].port(), Some(20880));
        assert_eq!(urls[1].param(keys::WEIGHT), Some("0"));
        assert_eq!(
            urls[1].param(keys::PROVIDER_ADDRESSES),
            Some("10.0.0.5:20880")
        );
        assert_eq!(urls[2].param(keys::APPLICATION), Some("shop"));
        assert_eq!(urls[3].param(keys::APPLICATION), Some("cart"));
        assert_eq!(urls[3].param("greet.retries"), Some("0"));
        // Every URL is a rule the framework applies.
        let rules = crate::cluster::configurator::Overrides::parse(&urls).expect("valid");
        assert_eq!(rules.rules().len(), 4);
    }

    #[test]
    fn application_configurators_name_the_application_and_every_service() {
        let text = "scope: application\nkey: shop\nconfigs:\n  - parameters: {timeout: 100}\n  - services: [org.a.A, 'g/org.b.B:2']\n    parameters: {loadbalance: roundrobin}\n";
        let urls = to_rule_urls("shop.configurators", text).expect("ok");
        assert_eq!(urls.len(), 3);
        assert_eq!(urls[0].path(), "*");
        assert_eq!(urls[0].param(keys::APPLICATION), Some("shop"));
        assert_eq!(urls[2].path(), "org.b.B");
        assert_eq!(urls[2].param(keys::GROUP), Some("g"));
        assert_eq!(urls[2].param(keys::VERSION), Some("2"));
    }

    #[test]
    fn disabled_documents_give_disabled_rules() {
        let text = "key: S\nenabled: false\nconfigs:\n  - parameters: {timeout: 1}\n";
        let urls = to_rule_urls("S::.configurators", text).expect("ok");
        assert_eq!(urls[0].param(keys::ENABLED), Some("false"));
        assert!(crate::cluster::configurator::Overrides::parse(&urls)
            .expect("ok")
            .is_empty());
    }

    #[test]
    fn the_json_list_of_override_urls_is_accepted() {
        let text = r#"["override://0.0.0.0/S?timeout=5", "override://1.2.3.4:80/S?weight=0"]"#;
        let urls = to_rule_urls("S::.configurators", text).expect("ok");
        assert_eq!(urls.len(), 2);
        assert!(to_rule_urls("S::.configurators", r#"["route://x/S?timeout=5"]"#).is_err());
    }

    #[test]
    fn bad_documents_are_refused_with_their_reason() {
        let k = "S::.configurators";
        let cases = [
            (
                "key: S\nconfigs: [ {parameters: {}} ]\n",
                "at least one value",
            ),
            (
                "key: S\nconfigs:\n  - side: both\n    parameters: {timeout: 1}\n",
                "side",
            ),
            ("configs:\n  - parameters: {timeout: 1}\n", "no `key`"),
            (
                "key: S\nconfigs:\n  - parameters: {timeout: soon}\n",
                "timeout",
            ),
            ("key: S\n", "configs"),
            (
                "key: S\nscope: galaxy\nconfigs: [ {parameters: {timeout: 1}} ]\n",
                "scope",
            ),
            ("[1, 2", "JSON"),
            ("key: [unclosed\n", "not YAML"),
            ("- a\n- b\n", "not a map"),
            ("a: &x [1]\nb: *x\n", "anchor"),
            ("key: S\n---\nkey: T\n", "documents"),
        ];
        for (text, want) in cases {
            let err = to_rule_urls(k, text).expect_err(text);
            assert_eq!(err.kind(), ErrorKind::Config, "{text}");
            assert!(err.to_string().contains(want), "{text}: {err}");
            assert!(err.to_string().contains(k), "{err}");
        }
        let deep = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(to_rule_urls(k, &format!("key: S\nconfigs: {deep}\n")).is_err());
        let huge = format!("key: S\n# {}\n", "x".repeat(MAX_CONFIG_BYTES));
        assert!(to_rule_urls(k, &huge).is_err());
        assert!(to_rule_urls("S::.unknown", "key: S").is_err());
        assert!(to_rule_urls(k, "  \n").expect("empty").is_empty());
    }

    #[test]
    fn condition_rules_become_one_condition_url_per_condition() {
        let text = "scope: service\nkey: org.example.Greeter\nforce: true\npriority: 3\nconditions:\n  - method = greet => host = 10.0.0.1\n  - => host != 10.0.0.9\n";
        let urls = to_rule_urls("org.example.Greeter::.condition-router", text).expect("ok");
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[0].protocol(), "condition");
        assert_eq!(
            urls[0].param(keys::RULE),
            Some("method = greet => host = 10.0.0.1")
        );
        assert_eq!(urls[0].param(keys::FORCE), Some("true"));
        assert_eq!(urls[0].param(keys::PRIORITY), Some("3"));
        assert_eq!(urls[1].param(keys::RULE), Some("=> host != 10.0.0.9"));
        let err = to_rule_urls(
            "org.example.Greeter::.condition-router",
            "key: org.example.Greeter\nconditions:\n  - host = => \n",
        )
        .expect_err("bad condition");
        assert!(err.to_string().contains("conditions[0]"), "{err}");
        assert!(to_rule_urls("a.condition-router", "key: a\n").is_err());
    }

    #[test]
    fn tag_rules_carry_their_addresses() {
        let text = "force: false\nkey: shop-provider\nscope: application\ntags:\n  - name: gray\n    addresses: ['10.0.0.1:20880', '10.0.0.2:20880']\n  - name: blue\n    addresses: []\n";
        let urls = to_rule_urls("shop-provider.tag-router", text).expect("ok");
        assert_eq!(urls.len(), 1);
        assert_eq!(
            urls[0].param(keys::TAGS),
            Some("gray=10.0.0.1:20880|10.0.0.2:20880;blue=")
        );
        assert!(to_rule_urls("p.tag-router", "key: p\ntags:\n  - addresses: [a]\n").is_err());
        assert!(to_rule_urls("p.tag-router", "key: p\ntags:\n  - name: 'a;b'\n").is_err());
    }

    struct Seen(Mutex<Vec<(Category, Vec<String>)>>);
    impl NotifyListener for Seen {
        fn notify(&self, category: Category, urls: Vec<Url>) {
            lock(&self.0).push((category, urls.iter().map(|u| u.to_string()).collect()));
        }
    }

    /// The registry's list and the documents' rules arrive as one list; a bad document
    /// keeps the last good rules; removing the document removes its rules.
    #[tokio::test]
    async fn a_feed_merges_documents_with_the_registry_list() {
        let registry: Arc<dyn Registry> = Arc::new(crate::registry::memory::MemoryRegistry::new(
            url("memory://feed-merge"),
        ));
        let seen = Arc::new(Seen(Mutex::new(Vec::new())));
        let feed = RuleFeed::consumer(
            &registry,
            &url("consumer://1.1.1.1/S?application=shop"),
            seen.clone(),
        )
        .expect("feed");
        assert_eq!(
            feed.keys()
                .iter()
                .map(|k| k.key().to_string())
                .collect::<Vec<_>>(),
            [
                "shop.configurators",
                "shop.condition-router",
                "S::.configurators",
                "S::.condition-router"
            ]
        );
        feed.notify(
            Category::Configurators,
            vec![url("override://0.0.0.0/S?timeout=1")],
        );
        let key = ConfigKey::new("dubbo", "S::.configurators").expect("key");
        feed.changed(
            &key,
            Some("key: S\nconfigs:\n  - parameters: {timeout: 2}\n"),
        );
        let last = |s: &Seen| lock(&s.0).last().cloned().expect("notified");
        let (cat, list) = last(&seen);
        assert_eq!(cat, Category::Configurators);
        assert_eq!(list.len(), 2);
        assert!(
            list[0].contains("timeout=1") && list[1].contains("timeout=2"),
            "{list:?}"
        );
        let before = lock(&seen.0).len();
        feed.changed(
            &key,
            Some("key: S\nconfigs: [ {parameters: {timeout: never}} ]\n"),
        );
        assert_eq!(
            lock(&seen.0).len(),
            before,
            "a refused document changes nothing"
        );
        feed.changed(&key, None);
        assert_eq!(last(&seen).1.len(), 1);
        feed.notify(Category::Configurators, Vec::new());
        assert!(last(&seen).1.is_empty());
    }

    const ROUTE_TO_PORT_2: &str =
        "scope: service\nforce: true\nenabled: true\nkey: S\nconditions:\n  - '=> port = 2'\n";

    fn routes_to_port_2(seen: &Seen) -> bool {
        lock(&seen.0)
            .iter()
            .any(|(c, list)| *c == Category::Routers && list.iter().any(|u| u.contains("port")))
    }

    /// While the registry can be reached, a feed reports its documents read only once each
    /// was read, and by then their rules were passed on: what a reference waits for.
    #[tokio::test]
    async fn a_feed_reports_its_first_reads_after_passing_their_rules_on() {
        let registry: Arc<dyn Registry> = Arc::new(crate::registry::memory::MemoryRegistry::new(
            url("memory://feed-first-read"),
        ));
        let key = ConfigKey::new("dubbo", "S::.condition-router").expect("key");
        registry
            .publish_config(&key, Some(ROUTE_TO_PORT_2))
            .await
            .expect("published");
        let seen = Arc::new(Seen(Mutex::new(Vec::new())));
        let feed = RuleFeed::consumer(&registry, &url("consumer://1.1.1.1/S"), seen.clone())
            .expect("feed");
        assert!(
            !feed.has_read_all(),
            "nothing was read yet: the reads run on their own tasks"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !feed.has_read_all() {
            assert!(tokio::time::Instant::now() < deadline, "read within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(routes_to_port_2(&seen), "{:?}", lock(&seen.0));
        // A second reference to the service shares the reader: it gets the rules at once.
        let second = Arc::new(Seen(Mutex::new(Vec::new())));
        let feed2 = RuleFeed::consumer(&registry, &url("consumer://1.1.1.1/S"), second.clone())
            .expect("feed");
        assert!(feed2.has_read_all());
        assert!(routes_to_port_2(&second), "{:?}", lock(&second.0));
    }

    /// A feed made while the registry cannot be reached passes the cached documents' rules on
    /// before it is returned, without waiting for a read: a consumer restarted during an
    /// outage routes its first call by the rules it last saw.
    #[tokio::test]
    async fn a_feed_made_during_an_outage_starts_from_the_cached_documents() {
        let reg = url("zookeeper://127.0.0.1:1/feed-outage");
        let cache = crate::registry::RegistryCache::in_memory(&reg);
        let key = ConfigKey::rule(&reg, "S::.condition-router").expect("key");
        cache.put_config(&key, Some(ROUTE_TO_PORT_2));
        let registry: Arc<dyn Registry> = Arc::new(crate::registry::CachedRegistry::new(
            Arc::new(crate::registry::testing::Down(reg.clone())),
            cache,
        ));
        assert_eq!(
            registry.cached_config(&key).as_deref(),
            Some(ROUTE_TO_PORT_2)
        );
        let seen = Arc::new(Seen(Mutex::new(Vec::new())));
        let feed = RuleFeed::consumer(&registry, &url("consumer://1.1.1.1/S"), seen.clone())
            .expect("feed");
        assert!(
            routes_to_port_2(&seen),
            "the cached rule was passed on at once: {:?}",
            lock(&seen.0)
        );
        // The failing reads answer from the same cache: the rules are not passed on twice.
        let before = lock(&seen.0).len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !feed.has_read_all() {
            assert!(tokio::time::Instant::now() < deadline, "settled within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(lock(&seen.0).len(), before, "{:?}", lock(&seen.0));
    }

    /// A registry that can be reached gives no cached copy: its own answer comes first.
    #[test]
    fn a_reachable_registry_gives_no_cached_copy() {
        let reg = url("memory://feed-cached-copy");
        let cache = crate::registry::RegistryCache::in_memory(&reg);
        let key = ConfigKey::rule(&reg, "S::.condition-router").expect("key");
        cache.put_config(&key, Some(ROUTE_TO_PORT_2));
        let registry = crate::registry::CachedRegistry::new(
            Arc::new(crate::registry::memory::MemoryRegistry::new(reg)),
            cache,
        );
        assert!(registry.cached_config(&key).is_none());
    }
}
