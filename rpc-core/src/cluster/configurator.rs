//! Override rules: Dubbo's `configurators`, changing settings of running consumers without a
//! redeploy.
//!
//! A rule is a URL in the `configurators` category of a service, as Dubbo Admin and `rpcctl
//! override` write them:
//!
//! ```text
//! override://0.0.0.0/org.example.Greeter?category=configurators&timeout=3000
//! override://10.0.0.5:20880/org.example.Greeter?category=configurators&weight=0
//! override://0.0.0.0/org.example.Greeter?category=configurators&application=shop&greet.retries=0
//! ```
//!
//! Which calls a rule applies to (Dubbo 2.7's rules):
//!
//! - **A port**: the rule targets one provider, the one at that host and port (host
//!   `0.0.0.0`: any host); for example a weight of 0 to drain it.
//! - **No port**: the rule targets consumers: host `0.0.0.0` every consumer, another host only
//!   the consumer running there; its settings apply to every provider that consumer calls.
//! - `application=` narrows it to consumers of that application (`*` or absent: any);
//!   `enabled=false` turns a rule off; `side=provider` makes a rule without a port one for
//!   every provider (it is then applied whatever the consumer's host).
//! - `providerAddresses=` (as a config center's YAML rule writes it) narrows the providers a
//!   rule applies to: each comma-separated item is a provider's `host:port` or `host`
//!   (`0.0.0.0`, `0.0.0.0:*` or `0.0.0.0:{port}` stand for any host). Such a rule changes
//!   only the calls to those providers, never the consumer's own cluster settings.
//!
//! Every other parameter is a setting laid over the provider URL the consumer uses (the
//! provider's URL merged with the reference's settings), so a rule wins over both: `timeout`,
//! `retries`, `loadbalance`, `weight`, `mock`, `actives`, `tps`, `disabled=true` (the provider
//! is not called), also per method (`greet.timeout`). Rules are applied from the least to the
//! most specific (any host before a named host, then by `priority`), so the most specific
//! rule's value stands. `absent://` rules only set keys the URL does not have.
//!
//! A list is checked whole before it is used: a rule of another protocol, or a value a known
//! key cannot take (`timeout=soon`), refuses the list with an error naming the rule and the
//! key, and the directory keeps the rules it had. An empty list or `empty://` alone removes
//! every rule.

use std::cmp::Ordering;

use crate::config::find_key;
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::url::Url;

/// Parameters that say where a rule applies rather than what it sets.
const CONDITION_KEYS: &[&str] = &[
    keys::ANYHOST,
    keys::APPLICATION,
    keys::CATEGORY,
    keys::CHECK,
    keys::COMPATIBLE_CONFIG,
    "config.version",
    keys::CONFIG_VERSION,
    keys::DYNAMIC,
    keys::ENABLED,
    keys::GROUP,
    keys::INTERFACE,
    keys::PID,
    keys::PRIORITY,
    keys::PROVIDER_ADDRESSES,
    keys::SIDE,
    keys::TIMESTAMP,
    keys::VERSION,
];

/// The value of `key` in a rule, unless it is empty or `*` (any).
fn named(url: &Url, key: &str) -> Option<String> {
    url.param(key)
        .filter(|v| !v.is_empty() && *v != "*")
        .map(str::to_string)
}

/// The address every host matches.
const ANY_HOST: &str = "0.0.0.0";

/// One override rule, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    url: Url,
    /// `absent://`: only keys the URL lacks.
    absent: bool,
    host: String,
    port: Option<u16>,
    application: Option<String>,
    /// The group and the version the rule is for (`None`: any).
    group: Option<String>,
    version: Option<String>,
    provider_side: bool,
    /// `providerAddresses`: the providers the rule is for (`None`: every provider).
    providers: Option<Vec<String>>,
    priority: i64,
    settings: Vec<(String, String)>,
}

impl Override {
    /// Checks one rule URL; the error names the rule and what is wrong with it.
    pub fn parse(url: &Url) -> Result<Override> {
        let refuse = |what: String| {
            RpcError::new(
                ErrorKind::Config,
                format!("override rule {url} refused: {what}"),
            )
        };
        let absent = match url.protocol() {
            "override" => false,
            "absent" => true,
            other => {
                return Err(refuse(format!(
                    "protocol '{other}' is not override:// or absent://"
                )))
            }
        };
        let priority = url
            .param(keys::PRIORITY)
            .map(|p| p.trim().parse::<i64>())
            .transpose()
            .map_err(|_| refuse("priority is not a whole number".into()))?
            .unwrap_or(0);
        let mut settings = Vec::new();
        for (k, v) in url.params() {
            if CONDITION_KEYS.contains(&k.as_str()) || k.starts_with('~') {
                continue;
            }
            // `greet.timeout` is checked as `timeout`; keys this framework does not know (a
            // Dubbo-only key) are kept, they only do nothing.
            let base = k.rsplit('.').next().unwrap_or(k);
            let known = find_key(k).or_else(|| find_key(base).filter(|key| key.per_method));
            if let Some(key) = known {
                key.kind
                    .check(v)
                    .map_err(|want| refuse(format!("{k}={v:?}: wants {want}")))?;
            } else if k == keys::DISABLED && v != "true" && v != "false" {
                return Err(refuse(format!("disabled={v:?}: wants true or false")));
            }
            settings.push((k.clone(), v.clone()));
        }
        // A name no extension has would fail every call the rule reaches.
        crate::config::check_extension_names(url).map_err(|e| refuse(e.message().into()))?;
        Ok(Override {
            url: url.clone(),
            absent,
            host: url.host().to_string(),
            port: url.port().filter(|p| *p != 0),
            application: named(url, keys::APPLICATION),
            group: named(url, keys::GROUP),
            version: named(url, keys::VERSION),
            provider_side: url.param(keys::SIDE) == Some("provider"),
            providers: provider_addresses(url),
            priority,
            settings,
        })
    }

    /// The rule as written.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether the rule applies to `provider` (the merged URL) for a consumer on
    /// `consumer_host`.
    fn matches(&self, provider: &Url, consumer_host: &str) -> bool {
        let any = self.host == ANY_HOST;
        let place = match self.port {
            Some(port) => provider.port() == Some(port) && (any || provider.host() == self.host),
            None if self.provider_side => any || provider.host() == self.host,
            None => any || consumer_host == self.host,
        };
        place
            && self
                .application
                .as_deref()
                .is_none_or(|app| provider.param(keys::APPLICATION) == Some(app))
            && self
                .group
                .as_deref()
                .is_none_or(|g| provider.param(keys::GROUP) == Some(g))
            && self
                .version
                .as_deref()
                .is_none_or(|v| provider.param(keys::VERSION) == Some(v))
            && self.providers.as_deref().is_none_or(|list| {
                list.iter().any(|item| {
                    let (host, port) = split_address(item);
                    (host == provider.host() || host == ANY_HOST)
                        && port.is_none_or(|p| {
                            p == "*" || provider.port().is_some_and(|q| p == q.to_string())
                        })
                })
            })
    }

    /// Whether the rule is for some providers only (`providerAddresses`).
    fn for_some_providers(&self) -> bool {
        self.providers.is_some()
    }

    fn specificity(&self) -> (bool, i64) {
        (self.host != ANY_HOST, self.priority)
    }
}

/// The override rules of one service, checked and sorted; see the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    rules: Vec<Override>,
}

impl Overrides {
    /// Checks a whole `configurators` notification: every rule, or the first error. An empty
    /// list, `empty://` entries and rules with `enabled=false` give no rule.
    pub fn parse(urls: &[Url]) -> Result<Overrides> {
        let mut rules = Vec::new();
        for u in urls.iter().filter(|u| u.protocol() != "empty") {
            let rule = Override::parse(u)?;
            if u.param_bool(keys::ENABLED, true).map_err(|e| {
                RpcError::new(
                    ErrorKind::Config,
                    format!("override rule {u} refused: {}", e.message()),
                )
            })? {
                rules.push(rule);
            }
        }
        rules.sort_by(|a, b| a.specificity().cmp(&b.specificity()).then(Ordering::Equal));
        Ok(Overrides { rules })
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules in the order they are applied.
    pub fn rules(&self) -> &[Override] {
        &self.rules
    }

    /// `reference` with the settings of the rules that target this consumer (no port, not
    /// `side=provider`; host and application matching `reference`'s): the cluster's own
    /// settings (`retries`, `loadbalance`, `sticky`, ...) as the rules change them.
    pub fn apply_to_consumer(&self, reference: &Url) -> Url {
        overlay(
            reference,
            self.rules
                .iter()
                .filter(|r| r.port.is_none() && !r.provider_side && !r.for_some_providers())
                .filter(|r| r.matches(reference, reference.host())),
        )
    }

    /// `provider` (a provider's own exported URL) with the settings of the rules that target
    /// it: a port and its address, or `side=provider` and its host (or any host); what the
    /// provider registers itself with under the rules.
    pub fn apply_to_provider(&self, provider: &Url) -> Url {
        overlay(
            provider,
            self.rules
                .iter()
                .filter(|r| r.port.is_some() || r.provider_side)
                .filter(|r| r.matches(provider, "")),
        )
    }

    /// `provider` (the provider URL merged with the reference) with every matching rule's
    /// settings laid over it, for a consumer running on `consumer_host`.
    pub fn apply(&self, provider: &Url, consumer_host: &str) -> Url {
        overlay(
            provider,
            self.rules
                .iter()
                .filter(|r| r.matches(provider, consumer_host)),
        )
    }
}

/// A rule's `providerAddresses`, trimmed, without empty items; `None` when it names none, or
/// names any host on any port among them (`0.0.0.0`, `0.0.0.0:*`).
fn provider_addresses(url: &Url) -> Option<Vec<String>> {
    let list: Vec<String> = url
        .param(keys::PROVIDER_ADDRESSES)?
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    let any = |a: &String| matches!(split_address(a), (ANY_HOST, None | Some("*")));
    if list.is_empty() || list.iter().any(any) {
        None
    } else {
        Some(list)
    }
}

/// An address of `providerAddresses` as host and port: `host:port`, `host`, `[v6]:port`,
/// `[v6]`, or a bare IPv6 host (more than one `:`, no port); brackets are dropped, as
/// [`Url::host`] drops them.
fn split_address(item: &str) -> (&str, Option<&str>) {
    if let Some(rest) = item.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (item, None),
        };
    }
    match item.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (item, None),
    }
}

/// `url` with the settings of `rules` laid over it in order (an `absent://` rule only sets
/// keys the URL does not have yet).
fn overlay<'a>(url: &Url, rules: impl Iterator<Item = &'a Override>) -> Url {
    let mut url = url.clone();
    for rule in rules {
        let settings = rule
            .settings
            .iter()
            .filter(|(k, _)| !rule.absent || url.param(k).is_none());
        url = url.with_params(settings.map(|(k, v)| (k.clone(), v.clone())));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn rules(list: &[&str]) -> Result<Overrides> {
        Overrides::parse(&list.iter().map(|s| url(s)).collect::<Vec<_>>())
    }

    const P1: &str = "dubbo://10.0.0.1:20880/a.B?application=shop&timeout=1000&weight=100";
    const P2: &str = "dubbo://10.0.0.2:20880/a.B?application=shop&timeout=1000&weight=100";

    #[test]
    fn a_rule_with_a_port_targets_one_provider() {
        let r = rules(&["override://10.0.0.1:20880/a.B?category=configurators&weight=0"])
            .expect("valid");
        assert_eq!(r.apply(&url(P1), "10.9.9.9").param(keys::WEIGHT), Some("0"));
        assert_eq!(
            r.apply(&url(P2), "10.9.9.9").param(keys::WEIGHT),
            Some("100")
        );
        assert_eq!(
            r.apply(&url(P1), "10.9.9.9").param(keys::CATEGORY),
            None,
            "condition keys are not settings"
        );
    }

    /// A rule naming a group or a version is for that group or version only; one naming
    /// neither (or `*`) is for all of them.
    #[test]
    fn a_rule_naming_a_version_or_group_is_for_it_alone() {
        let v1 = url("consumer://10.9.9.9/a.B?version=1.0.0&timeout=1000");
        let v2 = url("consumer://10.9.9.9/a.B?version=2.0.0&group=blue&timeout=1000");
        let timeout = |rule: &str, reference: &Url| {
            let r = rules(&[rule]).expect("valid");
            let merged = url(P1).with_params(reference.params().iter());
            (
                r.apply_to_consumer(reference)
                    .param(keys::TIMEOUT)
                    .map(str::to_string),
                r.apply(&merged, "10.9.9.9")
                    .param(keys::TIMEOUT)
                    .map(str::to_string),
            )
        };
        let set = (Some("3000".to_string()), Some("3000".to_string()));
        let kept = (Some("1000".to_string()), Some("1000".to_string()));
        for (rule, on_v1, on_v2) in [
            (
                "override://0.0.0.0/a.B?version=2.0.0&timeout=3000",
                &kept,
                &set,
            ),
            (
                "override://0.0.0.0/a.B?group=blue&timeout=3000",
                &kept,
                &set,
            ),
            (
                "override://0.0.0.0/a.B?group=red&timeout=3000",
                &kept,
                &kept,
            ),
            (
                "override://0.0.0.0/a.B?version=1.0.0&timeout=3000",
                &set,
                &kept,
            ),
            ("override://0.0.0.0/a.B?timeout=3000", &set, &set),
            (
                "override://0.0.0.0/a.B?version=*&group=&timeout=3000",
                &set,
                &set,
            ),
        ] {
            assert_eq!(&timeout(rule, &v1), on_v1, "{rule} on 1.0.0");
            assert_eq!(&timeout(rule, &v2), on_v2, "{rule} on blue 2.0.0");
        }
    }

    #[test]
    fn provider_addresses_narrow_a_consumer_rule_to_those_providers() {
        let timeout = |r: &Overrides, p: &str| {
            r.apply(&url(p), "10.9.9.9")
                .param(keys::TIMEOUT)
                .map(str::to_string)
        };
        let reference = url("consumer://10.9.9.9/a.B?timeout=1000");
        for list in [
            "10.0.0.2:20880",
            "10.0.0.2",
            " 10.0.0.2:20880 ,10.0.0.7",
            "0.0.0.0:20880",
        ] {
            let r = rules(&[&format!(
                "override://0.0.0.0/a.B?providerAddresses={list}&timeout=3000"
            )])
            .expect("valid");
            assert_eq!(timeout(&r, P2).as_deref(), Some("3000"), "{list}");
            if !list.starts_with("0.0.0.0") {
                assert_eq!(timeout(&r, P1).as_deref(), Some("1000"), "{list}: not P1");
            }
            // Calls to some providers only: the consumer's own settings stay.
            assert_eq!(
                r.apply_to_consumer(&reference).param(keys::TIMEOUT),
                Some("1000"),
                "{list}"
            );
        }
        // Another port, or no match at all: the rule does nothing.
        for list in ["10.0.0.2:20881", "10.0.0.3", "0.0.0.0:1"] {
            let r = rules(&[&format!(
                "override://0.0.0.0/a.B?providerAddresses={list}&timeout=3000"
            )])
            .expect("valid");
            assert_eq!(timeout(&r, P2).as_deref(), Some("1000"), "{list}");
        }
        // Any provider: as if no list were given, the consumer's settings included.
        for list in ["0.0.0.0", "0.0.0.0:*", "", "10.0.0.9,0.0.0.0"] {
            let r = rules(&[&format!(
                "override://0.0.0.0/a.B?providerAddresses={list}&timeout=3000"
            )])
            .expect("valid");
            assert_eq!(timeout(&r, P1).as_deref(), Some("3000"), "{list}");
            assert_eq!(timeout(&r, P2).as_deref(), Some("3000"), "{list}");
            assert_eq!(
                r.apply_to_consumer(&reference).param(keys::TIMEOUT),
                Some("3000"),
                "{list}"
            );
        }
        // IPv6 providers, bracketed with a port or bare.
        let v6 = "dubbo://[::1]:20880/a.B?timeout=1000";
        for list in ["[::1]:20880", "[::1]", "::1"] {
            let r = rules(&[&format!(
                "override://0.0.0.0/a.B?providerAddresses={list}&timeout=3000"
            )])
            .expect("valid");
            assert_eq!(timeout(&r, v6).as_deref(), Some("3000"), "{list}");
            assert_eq!(timeout(&r, P1).as_deref(), Some("1000"), "{list}");
        }
        assert_eq!(split_address("[::1]:20880"), ("::1", Some("20880")));
        assert_eq!(split_address("h:1"), ("h", Some("1")));
        assert_eq!(split_address("fe80::1"), ("fe80::1", None));
    }

    #[test]
    fn a_rule_without_a_port_targets_consumers() {
        let all = rules(&["override://0.0.0.0/a.B?timeout=3000"]).expect("valid");
        assert_eq!(
            all.apply(&url(P1), "10.9.9.9").param(keys::TIMEOUT),
            Some("3000")
        );
        assert_eq!(
            all.apply(&url(P2), "10.9.9.8").param(keys::TIMEOUT),
            Some("3000")
        );
        let one = rules(&["override://10.9.9.9/a.B?timeout=3000"]).expect("valid");
        assert_eq!(
            one.apply(&url(P1), "10.9.9.9").param(keys::TIMEOUT),
            Some("3000")
        );
        assert_eq!(
            one.apply(&url(P1), "10.9.9.8").param(keys::TIMEOUT),
            Some("1000")
        );
        let providers = rules(&["override://10.0.0.2/a.B?side=provider&timeout=5"]).expect("ok");
        assert_eq!(
            providers.apply(&url(P2), "x").param(keys::TIMEOUT),
            Some("5")
        );
        assert_eq!(
            providers.apply(&url(P1), "x").param(keys::TIMEOUT),
            Some("1000")
        );
    }

    #[test]
    fn application_and_enabled_narrow_a_rule() {
        let r = rules(&[
            "override://0.0.0.0/a.B?application=other&timeout=1",
            "override://0.0.0.0/a.B?application=shop&retries=0",
            "override://0.0.0.0/a.B?enabled=false&weight=1",
            "override://0.0.0.0/a.B?application=*&greet.timeout=7",
        ])
        .expect("valid");
        let u = r.apply(&url(P1), "h");
        assert_eq!(u.param(keys::TIMEOUT), Some("1000"));
        assert_eq!(u.param(keys::RETRIES), Some("0"));
        assert_eq!(u.param(keys::WEIGHT), Some("100"));
        assert_eq!(u.method_param("greet", keys::TIMEOUT), Some("7"));
        let reference = url("consumer://10.9.0.1/a.B?application=shop&retries=2");
        let live = r.apply_to_consumer(&reference);
        assert_eq!(live.param(keys::RETRIES), Some("0"));
        assert_eq!(live.method_param("greet", keys::TIMEOUT), Some("7"));
        let provider_rule = rules(&["override://10.0.0.1:20880/a.B?retries=9"]).expect("ok");
        assert_eq!(provider_rule.apply_to_consumer(&reference), reference);
    }

    #[test]
    fn a_provider_takes_the_rules_for_its_own_address_only() {
        let r = rules(&[
            "override://10.0.0.1:20880/a.B?weight=0",
            "override://0.0.0.0/a.B?side=provider&timeout=50",
            "override://0.0.0.0/a.B?retries=9",
        ])
        .expect("valid");
        let one = r.apply_to_provider(&url(P1));
        assert_eq!(one.param(keys::WEIGHT), Some("0"));
        assert_eq!(one.param(keys::TIMEOUT), Some("50"));
        assert_eq!(one.param(keys::RETRIES), None, "a consumer rule");
        let two = r.apply_to_provider(&url(P2));
        assert_eq!(two.param(keys::WEIGHT), Some("100"));
        assert_eq!(two.param(keys::TIMEOUT), Some("50"));
    }

    #[test]
    fn the_most_specific_rule_wins_and_absent_only_fills_gaps() {
        let r = rules(&[
            "override://10.0.0.1:20880/a.B?timeout=10",
            "override://0.0.0.0/a.B?timeout=20&priority=5",
            "override://0.0.0.0/a.B?timeout=30",
            "absent://0.0.0.0/a.B?weight=1&loadbalance=roundrobin",
        ])
        .expect("valid");
        let u = r.apply(&url(P1), "h");
        assert_eq!(
            u.param(keys::TIMEOUT),
            Some("10"),
            "named host beats any host"
        );
        assert_eq!(
            r.apply(&url(P2), "h").param(keys::TIMEOUT),
            Some("20"),
            "priority"
        );
        assert_eq!(
            u.param(keys::WEIGHT),
            Some("100"),
            "absent keeps what is set"
        );
        assert_eq!(u.param(keys::LOADBALANCE), Some("roundrobin"));
    }

    #[test]
    fn a_bad_rule_refuses_the_list_by_name() {
        for (bad, names) in [
            ("override://0.0.0.0/a.B?timeout=soon", "timeout"),
            ("override://0.0.0.0/a.B?greet.retries=-1", "greet.retries"),
            ("override://0.0.0.0/a.B?disabled=maybe", "disabled"),
            ("override://0.0.0.0/a.B?priority=high", "priority"),
            ("condition://0.0.0.0/a.B?rule=x", "protocol"),
            (
                "override://0.0.0.0/a.B?enabled=perhaps&timeout=1",
                "enabled",
            ),
            (
                "override://0.0.0.0/a.B?loadbalance=roundRobin",
                "unknown loadbalance 'roundRobin'",
            ),
            (
                "override://0.0.0.0/a.B?greet.cluster=nosuch",
                "unknown cluster 'nosuch'",
            ),
            ("override://0.0.0.0/a.B?filter=-metrics,nosuch", "'nosuch'"),
        ] {
            let err = rules(&["override://0.0.0.0/a.B?timeout=5", bad]).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert!(err.message().contains(names), "{bad}: {err}");
        }
        assert!(rules(&[]).expect("none").is_empty());
        assert!(rules(&["empty://0.0.0.0/a.B?category=configurators"])
            .expect("none")
            .is_empty());
        // Dubbo-only keys are kept and do nothing.
        let kept = rules(&["override://0.0.0.0/a.B?dubbo.tag.x=1"]).expect("valid");
        assert_eq!(kept.rules().len(), 1);
    }
}
