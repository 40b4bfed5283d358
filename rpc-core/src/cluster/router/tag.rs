//! `tag`: route a call to the providers carrying its tag.
//!
//! The request tag is the attachment `dubbo.tag` (or `tag`). Providers declare theirs with
//! the URL parameter `tag`, or a rule gives them one by address (Dubbo's tag rules, from the
//! config center: `tags=gray=10.0.0.1:20880|10.0.0.2:20880;blue=...` on the rule URL, see
//! [`crate::registry::config_center`]); a rule's tag wins over the provider's own.
//!
//! - With a request tag: the providers whose `tag` equals it. When none does, the call falls
//!   back to untagged providers, unless the tag is forced (`tag.force=true` on the reference
//!   URL or the rule URL, or the attachment `dubbo.force.tag=true`), in which case the list
//!   is empty and the call fails with `NoProvider`.
//! - Without a request tag: the untagged providers (tagged ones only take tagged traffic),
//!   or every provider when all are tagged, so that tagging every provider cannot cut off
//!   untagged callers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cluster::{CallContext, Provider, Router, RouterFactory};
use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::invocation::Invocation;
use crate::url::Url;

/// Routes by the request's tag; see the [module docs](self).
#[derive(Debug, Default)]
pub struct TagRouter {
    force: bool,
    priority: i32,
    /// `host:port` → tag, from a rule.
    by_address: HashMap<String, String>,
    /// A rule with `enabled=false` routes nothing.
    disabled: bool,
}

impl TagRouter {
    /// A tag router; `force` makes a tag without matching providers an error.
    pub fn new(force: bool) -> Self {
        TagRouter {
            force,
            ..TagRouter::default()
        }
    }

    fn provider_tag<'a>(&'a self, p: &'a Provider) -> Option<&'a str> {
        if !self.by_address.is_empty() {
            if let Some(t) = self.by_address.get(p.address()) {
                return Some(t);
            }
        }
        p.tag()
    }
}

fn tag_of(invocation: &Invocation) -> Option<&str> {
    let a = invocation.attachments();
    a.get("dubbo.tag")
        .or_else(|| a.get("tag"))
        .filter(|t| !t.is_empty())
}

impl Router for TagRouter {
    fn route(&self, invokers: Vec<Provider>, ctx: &CallContext<'_>) -> Vec<Provider> {
        let (url, invocation) = (ctx.reference(), ctx.invocation());
        if self.disabled {
            return invokers;
        }
        let has_tag = |p: &Provider| self.provider_tag(p).is_some();
        let tag_is = |p: &Provider, tag: &str| self.provider_tag(p) == Some(tag);
        let untagged = |list: &[Provider]| -> Vec<Provider> {
            list.iter().filter(|i| !has_tag(i)).cloned().collect()
        };
        match tag_of(invocation) {
            Some(tag) => {
                let tagged: Vec<_> = invokers
                    .iter()
                    .filter(|i| tag_is(i, tag))
                    .cloned()
                    .collect();
                if !tagged.is_empty() {
                    return tagged;
                }
                let force = self.force
                    || url.param_bool(keys::TAG_FORCE, false).unwrap_or(false)
                    || invocation.attachments().get("dubbo.force.tag") == Some("true");
                if force {
                    Vec::new()
                } else {
                    untagged(&invokers)
                }
            }
            None => {
                if invokers.iter().all(|i| !has_tag(i)) {
                    return invokers;
                }
                let plain = untagged(&invokers);
                if plain.is_empty() {
                    invokers
                } else {
                    plain
                }
            }
        }
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn cacheable(&self) -> bool {
        true
    }
}

/// Makes [`TagRouter`]s from `tag://` URLs (`force`, `priority`, `enabled` and `tags`
/// parameters; a malformed `tags` value is an error naming it).
#[derive(Debug, Default)]
pub struct TagRouterFactory;

/// Parses `name=addr|addr;name=addr` into address → tag.
fn parse_tags(text: &str) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for part in text.split(';').filter(|p| !p.trim().is_empty()) {
        let Some((name, addresses)) = part.split_once('=') else {
            return Err(RpcError::config(format!(
                "tag rule: {part:?} in `tags` is not name=addresses"
            )));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(RpcError::config(format!(
                "tag rule: {part:?} in `tags` has no tag name"
            )));
        }
        for addr in addresses
            .split('|')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            out.insert(addr.to_string(), name.to_string());
        }
    }
    Ok(out)
}

impl RouterFactory for TagRouterFactory {
    fn create(&self, url: &Url) -> Result<Arc<dyn Router>> {
        Ok(Arc::new(TagRouter {
            force: url.param_bool(keys::FORCE, false)? || url.param_bool(keys::TAG_FORCE, false)?,
            priority: url.param_as(keys::PRIORITY, 0)?,
            by_address: parse_tags(url.param(keys::TAGS).unwrap_or(""))?,
            disabled: !url.param_bool(keys::ENABLED, true)?,
        }))
    }
}

crate::register!(dyn RouterFactory, "tag", || Arc::new(TagRouterFactory));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::{call, invokers};
    use crate::cluster::router::testing::{wrap, RouteWith};

    fn providers(q: &[&str]) -> Vec<Provider> {
        wrap(invokers(q))
    }

    fn tagged(tag: Option<&str>) -> Invocation {
        let mut c = call();
        if let Some(t) = tag {
            c.attachments_mut().insert("dubbo.tag", t);
        }
        c
    }

    fn addrs(l: &[Provider]) -> Vec<String> {
        l.iter().map(|i| i.url().host().to_string()).collect()
    }

    fn reference(q: &str) -> Url {
        Url::parse(&format!("consumer://1.1.1.1/S?{q}")).expect("url")
    }

    #[test]
    fn tag_picks_its_providers_and_falls_back_to_untagged() {
        let p = providers(&["tag=gray", "", "tag=blue", "tag=gray"]);
        let r = TagRouter::default();
        let got = r.route_with(p.clone(), &reference(""), &tagged(Some("gray")));
        assert_eq!(addrs(&got), ["10.0.0.0", "10.0.0.3"]);
        let got = r.route_with(p.clone(), &reference(""), &tagged(Some("red")));
        assert_eq!(
            addrs(&got),
            ["10.0.0.1"],
            "unknown tag falls back to untagged"
        );
        let got = r.route_with(p.clone(), &reference(""), &tagged(None));
        assert_eq!(
            addrs(&got),
            ["10.0.0.1"],
            "untagged calls avoid tagged providers"
        );
        let mut c = call();
        c.attachments_mut().insert("tag", "blue");
        assert_eq!(addrs(&r.route_with(p, &reference(""), &c)), ["10.0.0.2"]);
    }

    #[test]
    fn forced_tag_without_providers_gives_none() {
        let p = providers(&["tag=gray", ""]);
        let r = TagRouter::default();
        assert!(r
            .route_with(
                p.clone(),
                &reference("tag.force=true"),
                &tagged(Some("red"))
            )
            .is_empty());
        let forced = TagRouterFactory
            .create(&Url::parse("tag://0.0.0.0/S?force=true").expect("url"))
            .expect("router");
        assert!(forced
            .route_with(p, &reference(""), &tagged(Some("red")))
            .is_empty());
    }

    /// A rule's addresses tag providers that declare no tag, and win over a declared one.
    #[test]
    fn a_rule_tags_providers_by_address() {
        let p = providers(&["", "", "tag=blue"]);
        let addr = |i: usize| format!("{}:{}", p[i].url().host(), p[i].url().port().unwrap_or(0));
        let rule = Url::parse(&format!(
            "tag://0.0.0.0/S?tags=gray={}|{};blue=",
            addr(0),
            addr(2)
        ))
        .expect("url");
        let r = TagRouterFactory.create(&rule).expect("router");
        let got = r.route_with(p.clone(), &reference(""), &tagged(Some("gray")));
        assert_eq!(addrs(&got), ["10.0.0.0", "10.0.0.2"]);
        let got = r.route_with(p.clone(), &reference(""), &tagged(None));
        assert_eq!(addrs(&got), ["10.0.0.1"]);
        let off = TagRouterFactory
            .create(&rule.with_param(keys::ENABLED, "false"))
            .expect("router");
        assert_eq!(
            off.route_with(p, &reference(""), &tagged(Some("gray")))
                .len(),
            3
        );
        for bad in ["gray", "=1.2.3.4:1"] {
            let url = Url::parse("tag://0.0.0.0/S")
                .expect("url")
                .with_param(keys::TAGS, bad);
            let err = TagRouterFactory.create(&url).err().expect("refused");
            assert!(err.to_string().contains("tags"), "{err}");
        }
    }

    #[test]
    fn all_tagged_and_no_request_tag_keeps_everyone() {
        let p = providers(&["tag=a", "tag=b"]);
        let got = TagRouter::default().route_with(p, &reference(""), &tagged(None));
        assert_eq!(got.len(), 2);
    }
}
