//! `condition`: Dubbo's condition routing rules.
//!
//! A rule is `when => then`, each side a list of conditions joined by `&`:
//!
//! ```text
//! method = find*,list* & host != 10.0.1.9 => host = 10.0.2.*
//! ```
//!
//! - `when` is matched against the call: `method` is the invoked method, every other key is
//!   read from the consumer's reference URL. An empty `when` (`=> host != 10.0.0.1`)
//!   applies to every call; a call that does not match is left alone.
//! - `then` filters the providers: its keys are read from each provider's URL. An empty
//!   `then` (`application = spam =>`) is a blacklist: matching calls get no provider.
//!   A rule without `=>` is all `then`.
//! - Keys: `method`, `host`, `port`, `address` (`host:port`), `protocol`, `interface`
//!   (`path`), and any URL parameter (`application`, `version`, `region`, ...). A
//!   `consumer.`/`provider.` prefix is accepted and ignored.
//! - `key = a,b` matches when the value equals one of the patterns; `key != a,b` when it
//!   equals none. Patterns may use `*` wildcards (`10.0.*`, `*Service`, `get*Id`). A value of
//!   `$key` stands for that key's value in the consumer URL (`host = $host`). When both `=`
//!   and `!=` constrain one key, a `!=` match excludes first. A key the URL lacks does not
//!   satisfy an `=` condition.
//! - URL parameters of the rule: `rule` (required, URL-encoded), `force` (default `false`:
//!   when the filtered list would be empty the rule is ignored, with a warning; `true`: the
//!   call gets no provider), `priority` (default 0, higher runs first, as in Dubbo),
//!   `enabled` (default `true`).
//!
//! A malformed rule is refused when the router is created, with an error naming the rule
//! and the character position of the problem.

use std::borrow::Cow;
use std::sync::Arc;

use crate::cluster::{CallContext, Provider, Router, RouterFactory};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::invocation::Invocation;
use crate::url::Url;

/// One key's constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    key: String,
    matches: Vec<String>,
    mismatches: Vec<String>,
}

/// A parsed condition rule; see the [module docs](self).
#[derive(Debug)]
pub struct ConditionRouter {
    rule: String,
    when: Vec<Condition>,
    /// `None`: blacklist (empty right side).
    then: Option<Vec<Condition>>,
    force: bool,
    priority: i32,
    enabled: bool,
}

fn rule_error(rule: &str, pos: usize, what: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        ErrorKind::Config,
        format!("condition rule '{rule}': {what} at position {pos}"),
    )
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parses one side (`text` starts at `offset` in `rule`).
fn parse_side(rule: &str, text: &str, offset: usize) -> Result<Vec<Condition>> {
    let mut out: Vec<Condition> = Vec::new();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let mut start = 0;
    for clause in text.split('&') {
        let at = offset + start;
        start += clause.len() + 1;
        let lead = clause.len() - clause.trim_start().len();
        let body = clause.trim();
        if body.is_empty() {
            return Err(rule_error(rule, at + lead, "empty condition around '&'"));
        }
        let (key_part, negate, value_at) = match (body.find("!="), body.find('=')) {
            (Some(i), Some(j)) if i < j => (&body[..i], true, i + 2),
            (_, Some(j)) => (&body[..j], false, j + 1),
            _ => {
                return Err(rule_error(
                    rule,
                    at + lead,
                    format!("expected '=' or '!=' in condition '{body}'"),
                ))
            }
        };
        let key = key_part.trim();
        let key = key
            .strip_prefix("consumer.")
            .or_else(|| key.strip_prefix("provider."))
            .unwrap_or(key);
        if !valid_key(key) {
            return Err(rule_error(
                rule,
                at + lead,
                format!(
                    "invalid key '{}' (letters, digits, '_', '.', '-')",
                    key_part.trim()
                ),
            ));
        }
        let values_text = &body[value_at..];
        let mut values = Vec::new();
        let mut vpos = at + lead + value_at;
        for v in values_text.split(',') {
            let t = v.trim();
            if t.is_empty() {
                return Err(rule_error(rule, vpos, format!("missing value for '{key}'")));
            }
            if t.contains(['=', '!', ' ', '\t']) {
                return Err(rule_error(
                    rule,
                    vpos + (v.len() - v.trim_start().len()),
                    format!("unexpected character in value '{t}' (missing '&'?)"),
                ));
            }
            values.push(t.to_string());
            vpos += v.len() + 1;
        }
        let cond = match out.iter_mut().find(|c| c.key == key) {
            Some(c) => c,
            None => {
                out.push(Condition {
                    key: key.to_string(),
                    matches: Vec::new(),
                    mismatches: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if negate {
            cond.mismatches.extend(values);
        } else {
            cond.matches.extend(values);
        }
    }
    Ok(out)
}

/// Whether `value` matches the `*` wildcard `pattern`.
fn glob(pattern: &str, value: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == value;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The value of `key` for a URL (consumer or provider) and the call.
fn value_of<'a>(url: &'a Url, key: &str, invocation: &'a Invocation) -> Option<Cow<'a, str>> {
    match key {
        "method" => Some(Cow::Borrowed(invocation.method())),
        "host" => Some(Cow::Borrowed(url.host())),
        "port" => url.port().map(|p| Cow::Owned(p.to_string())),
        "address" => Some(Cow::Owned(url.address())),
        "protocol" => Some(Cow::Borrowed(url.protocol())),
        "interface" | "path" => Some(Cow::Borrowed(url.interface())),
        _ => url.param(key).map(Cow::Borrowed),
    }
}

impl Condition {
    fn pattern_matches(pattern: &str, value: &str, consumer: &Url, inv: &Invocation) -> bool {
        match pattern.strip_prefix('$') {
            Some(k) => value_of(consumer, k, inv).is_some_and(|v| v == value),
            None => glob(pattern, value),
        }
    }

    fn is_match(&self, url: &Url, consumer: &Url, inv: &Invocation) -> bool {
        let Some(value) = value_of(url, &self.key, inv) else {
            return self.matches.is_empty();
        };
        if self
            .mismatches
            .iter()
            .any(|p| Self::pattern_matches(p, &value, consumer, inv))
        {
            return false;
        }
        self.matches.is_empty()
            || self
                .matches
                .iter()
                .any(|p| Self::pattern_matches(p, &value, consumer, inv))
    }
}

impl ConditionRouter {
    /// Parses `rule` (`when => then`); `force` and `priority` as the URL parameters.
    pub fn parse(rule: &str, force: bool, priority: i32) -> Result<Self> {
        if rule.trim().is_empty() {
            return Err(RpcError::new(
                ErrorKind::Config,
                "condition rule is empty (the 'rule' parameter is required)",
            ));
        }
        let (when, then) = match rule.find("=>") {
            Some(i) => {
                let then_text = &rule[i + 2..];
                let then = if then_text.trim().is_empty() {
                    None
                } else {
                    Some(parse_side(rule, then_text, i + 2)?)
                };
                (parse_side(rule, &rule[..i], 0)?, then)
            }
            None => (Vec::new(), Some(parse_side(rule, rule, 0)?)),
        };
        Ok(ConditionRouter {
            rule: rule.to_string(),
            when,
            then,
            force,
            priority,
            enabled: true,
        })
    }

    /// The rule text.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    fn call_matches(&self, consumer: &Url, inv: &Invocation) -> bool {
        self.when
            .iter()
            .all(|c| c.is_match(consumer, consumer, inv))
    }
}

impl Router for ConditionRouter {
    fn route(&self, invokers: Vec<Provider>, ctx: &CallContext<'_>) -> Vec<Provider> {
        let (url, invocation) = (ctx.reference(), ctx.invocation());
        if !self.enabled || invokers.is_empty() || !self.call_matches(url, invocation) {
            return invokers;
        }
        let Some(then) = &self.then else {
            return Vec::new();
        };
        let kept: Vec<Provider> = invokers
            .iter()
            .filter(|i| then.iter().all(|c| c.is_match(i.url(), url, invocation)))
            .cloned()
            .collect();
        if kept.is_empty() && !self.force {
            tracing::warn!(
                rule = %self.rule,
                "condition rule leaves no provider; ignoring it (force=false)"
            );
            return invokers;
        }
        kept
    }

    fn priority(&self) -> i32 {
        // Dubbo runs higher priorities first; the chain runs ascending. Saturating: the
        // lowest priority a rule can name runs last, as any other low one.
        self.priority.saturating_neg()
    }

    fn cacheable(&self) -> bool {
        true
    }
}

/// Makes [`ConditionRouter`]s from `condition://` URLs.
#[derive(Debug, Default)]
pub struct ConditionRouterFactory;

impl RouterFactory for ConditionRouterFactory {
    fn create(&self, url: &Url) -> Result<Arc<dyn Router>> {
        let rule = url.param(keys::RULE).unwrap_or("");
        let mut r = ConditionRouter::parse(
            rule,
            url.param_bool(keys::FORCE, false)?,
            url.param_as(keys::PRIORITY, 0)?,
        )?;
        r.enabled = url.param_bool(keys::ENABLED, true)?;
        Ok(Arc::new(r))
    }
}

crate::register!(dyn RouterFactory, "condition", || Arc::new(
    ConditionRouterFactory
));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::router::testing::{wrap, RouteWith};
    use crate::invocation::{Invoker, ServiceKey, Value};

    struct P(Url);
    #[async_trait::async_trait]
    impl Invoker for P {
        fn url(&self) -> &Url {
            &self.0
        }
        async fn invoke(&self, _: Invocation) -> Result<crate::Response> {
            Ok(crate::Response::empty())
        }
    }

    fn providers(urls: &[&str]) -> Vec<Provider> {
        wrap(
            urls.iter()
                .map(|u| {
                    Arc::new(P(Url::parse(&format!("dubbo://{u}")).expect("url")))
                        as Arc<dyn Invoker>
                })
                .collect(),
        )
    }

    fn hosts(l: &[Provider]) -> Vec<String> {
        l.iter().map(|i| i.url().address()).collect()
    }

    fn consumer(host: &str, q: &str) -> Url {
        Url::parse(&format!("consumer://{host}/S?application=shop&{q}")).expect("url")
    }

    fn call(method: &'static str) -> Invocation {
        Invocation::new(ServiceKey::new("S", None, None), method, Value::Empty)
    }

    fn route(rule: &str, c: &Url, m: &'static str, p: &[Provider]) -> Vec<String> {
        let r = ConditionRouter::parse(rule, false, 0).expect("valid rule");
        hosts(&r.route_with(p.to_vec(), c, &call(m)))
    }

    fn sample() -> Vec<Provider> {
        providers(&[
            "10.0.1.1:20880/S?region=hz",
            "10.0.2.1:20880/S?region=sh",
            "10.0.2.2:20881/S?region=sh&tag=x",
        ])
    }

    #[test]
    fn when_matches_method_and_host_then_narrows() {
        let rule = "method = find* & host = 10.0.1.* => host = 10.0.2.*";
        let p = sample();
        let c = consumer("10.0.1.7", "");
        assert_eq!(
            route(rule, &c, "findAll", &p),
            ["10.0.2.1:20880", "10.0.2.2:20881"]
        );
        assert_eq!(
            route(rule, &c, "save", &p).len(),
            3,
            "other methods untouched"
        );
        let other = consumer("10.0.9.9", "");
        assert_eq!(
            route(rule, &other, "findAll", &p).len(),
            3,
            "other hosts untouched"
        );
    }

    #[test]
    fn not_equal_comma_lists_params_and_ports() {
        let p = sample();
        let c = consumer("1.1.1.1", "");
        assert_eq!(
            route("=> host != 10.0.2.1,10.0.2.2", &c, "m", &p),
            ["10.0.1.1:20880"]
        );
        assert_eq!(
            route("=> region = sh & port = 20881", &c, "m", &p),
            ["10.0.2.2:20881"]
        );
        assert_eq!(
            route("application = shop => address = *:20880", &c, "m", &p).len(),
            2
        );
        assert_eq!(
            route("region = sh", &c, "m", &p).len(),
            2,
            "no '=>': all then"
        );
        assert_eq!(route("=> tag = x", &c, "m", &p), ["10.0.2.2:20881"]);
        assert_eq!(
            route("=> tag != x", &c, "m", &p).len(),
            2,
            "absent key is not x"
        );
    }

    #[test]
    fn empty_then_is_a_blacklist() {
        let p = sample();
        assert!(route("application = shop =>", &consumer("1.1.1.1", ""), "m", &p).is_empty());
        assert_eq!(
            route("application = other =>", &consumer("1.1.1.1", ""), "m", &p).len(),
            3
        );
    }

    #[test]
    fn empty_result_is_ignored_unless_forced() {
        let p = sample();
        let c = consumer("1.1.1.1", "");
        assert_eq!(route("=> region = nowhere", &c, "m", &p).len(), 3);
        let forced = ConditionRouter::parse("=> region = nowhere", true, 0).expect("rule");
        assert!(forced.route_with(p, &c, &call("m")).is_empty());
    }

    #[test]
    fn dollar_refers_to_the_consumer_url() {
        let p = sample();
        let c = consumer("1.1.1.1", "region=sh");
        assert_eq!(route("=> region = $region", &c, "m", &p).len(), 2);
    }

    #[test]
    fn wildcards() {
        assert!(glob("*", "anything"));
        assert!(glob("get*Id", "getUserId"));
        assert!(!glob("get*Id", "getUser"));
        assert!(glob("*Service", "UserService"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn bad_rules_name_the_rule_and_position() {
        let cases = [
            ("host = => x = 1", "missing value for 'host' at position 6"),
            (
                "host 10.0.0.1 => x = 1",
                "expected '=' or '!=' in condition 'host 10.0.0.1' at position 0",
            ),
            (
                "method = a & & host = b =>",
                "empty condition around '&' at position 13",
            ),
            ("=> ho st = 1", "invalid key 'ho st'"),
            (
                "method = a b => host = 1",
                "unexpected character in value 'a b' (missing '&'?) at position 9",
            ),
            ("=> host = a,,b", "missing value for 'host' at position 12"),
        ];
        for (rule, expected) in cases {
            let e = ConditionRouter::parse(rule, false, 0).expect_err(rule);
            let msg = e.to_string();
            assert!(msg.contains(&format!("condition rule '{rule}'")), "{msg}");
            assert!(msg.contains(expected), "{msg} should contain {expected}");
        }
        assert!(ConditionRouter::parse("  ", false, 0).is_err());
    }

    #[test]
    fn factory_reads_rule_force_priority_from_the_url() {
        let rule = crate::url::encode_component("=> host = 10.0.2.*");
        let url =
            Url::parse(&format!("condition://0.0.0.0/S?rule={rule}&priority=5")).expect("url");
        let r = super::super::from_url(&url).expect("router");
        assert_eq!(r.priority(), -5);
        let lowest = Url::parse(&format!(
            "condition://0.0.0.0/S?rule={rule}&priority={}",
            i32::MIN
        ))
        .expect("url");
        let r = super::super::from_url(&lowest).expect("router");
        assert_eq!(r.priority(), i32::MAX, "runs last");
        assert_eq!(
            r.route_with(sample(), &consumer("1.1.1.1", ""), &call("m"))
                .len(),
            2
        );
        let bad = Url::parse("condition://0.0.0.0/S?rule=host%20%3D").expect("url");
        assert!(super::super::from_url(&bad).is_err());
        let disabled =
            Url::parse(&format!("condition://0.0.0.0/S?rule={rule}&enabled=false")).expect("url");
        let r = super::super::from_url(&disabled).expect("router");
        assert_eq!(
            r.route_with(sample(), &consumer("1.1.1.1", ""), &call("m"))
                .len(),
            3
        );
    }
}
