//! `tag`: route a call to the providers carrying its tag.
//!
//! The request tag is the attachment `dubbo.tag` (or `tag`). Providers declare theirs with
//! the URL parameter `tag`.
//!
//! - With a request tag: the providers whose `tag` equals it. When none does, the call falls
//!   back to untagged providers, unless the tag is forced (`tag.force=true` on the reference
//!   URL or the rule URL, or the attachment `dubbo.force.tag=true`), in which case the list
//!   is empty and the call fails with `NoProvider`.
//! - Without a request tag: the untagged providers (tagged ones only take tagged traffic),
//!   or every provider when all are tagged, so that tagging every provider cannot cut off
//!   untagged callers.

use std::sync::Arc;

use crate::cluster::{Router, RouterFactory};
use crate::error::Result;
use crate::invocation::{Invocation, Invoker};
use crate::url::Url;

/// Routes by the request's tag; see the [module docs](self).
#[derive(Debug, Default)]
pub struct TagRouter {
    force: bool,
    priority: i32,
}

impl TagRouter {
    /// A tag router; `force` makes a tag without matching providers an error.
    pub fn new(force: bool) -> Self {
        TagRouter { force, priority: 0 }
    }
}

fn tag_of(invocation: &Invocation) -> Option<&str> {
    let a = invocation.attachments();
    a.get("dubbo.tag")
        .or_else(|| a.get("tag"))
        .filter(|t| !t.is_empty())
}

fn provider_tag(i: &Arc<dyn Invoker>) -> Option<&str> {
    i.url().param("tag").filter(|t| !t.is_empty())
}

impl Router for TagRouter {
    fn route(
        &self,
        invokers: Vec<Arc<dyn Invoker>>,
        url: &Url,
        invocation: &Invocation,
    ) -> Vec<Arc<dyn Invoker>> {
        let untagged = |list: &[Arc<dyn Invoker>]| -> Vec<Arc<dyn Invoker>> {
            list.iter()
                .filter(|i| provider_tag(i).is_none())
                .cloned()
                .collect()
        };
        match tag_of(invocation) {
            Some(tag) => {
                let tagged: Vec<_> = invokers
                    .iter()
                    .filter(|i| provider_tag(i) == Some(tag))
                    .cloned()
                    .collect();
                if !tagged.is_empty() {
                    return tagged;
                }
                let force = self.force
                    || url.param_bool("tag.force", false).unwrap_or(false)
                    || invocation.attachments().get("dubbo.force.tag") == Some("true");
                if force {
                    Vec::new()
                } else {
                    untagged(&invokers)
                }
            }
            None => {
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
}

/// Makes [`TagRouter`]s from `tag://` URLs (`force`, `priority` parameters).
#[derive(Debug, Default)]
pub struct TagRouterFactory;

impl RouterFactory for TagRouterFactory {
    fn create(&self, url: &Url) -> Result<Arc<dyn Router>> {
        Ok(Arc::new(TagRouter {
            force: url.param_bool("force", false)? || url.param_bool("tag.force", false)?,
            priority: url.param_as("priority", 0)?,
        }))
    }
}

crate::register!(dyn RouterFactory, "tag", || Arc::new(TagRouterFactory));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::loadbalance::testing::*;

    fn tagged(tag: Option<&str>) -> Invocation {
        let mut c = call();
        if let Some(t) = tag {
            c.attachments_mut().insert("dubbo.tag", t);
        }
        c
    }

    fn addrs(l: &[Arc<dyn Invoker>]) -> Vec<String> {
        l.iter().map(|i| i.url().host().to_string()).collect()
    }

    fn reference(q: &str) -> Url {
        Url::parse(&format!("consumer://1.1.1.1/S?{q}")).expect("url")
    }

    #[test]
    fn tag_picks_its_providers_and_falls_back_to_untagged() {
        let p = providers(&["tag=gray", "", "tag=blue", "tag=gray"]);
        let r = TagRouter::default();
        let got = r.route(p.clone(), &reference(""), &tagged(Some("gray")));
        assert_eq!(addrs(&got), ["10.0.0.0", "10.0.0.3"]);
        let got = r.route(p.clone(), &reference(""), &tagged(Some("red")));
        assert_eq!(
            addrs(&got),
            ["10.0.0.1"],
            "unknown tag falls back to untagged"
        );
        let got = r.route(p.clone(), &reference(""), &tagged(None));
        assert_eq!(
            addrs(&got),
            ["10.0.0.1"],
            "untagged calls avoid tagged providers"
        );
        let mut c = call();
        c.attachments_mut().insert("tag", "blue");
        assert_eq!(addrs(&r.route(p, &reference(""), &c)), ["10.0.0.2"]);
    }

    #[test]
    fn forced_tag_without_providers_gives_none() {
        let p = providers(&["tag=gray", ""]);
        let r = TagRouter::default();
        assert!(r
            .route(
                p.clone(),
                &reference("tag.force=true"),
                &tagged(Some("red"))
            )
            .is_empty());
        let forced = TagRouterFactory
            .create(&Url::parse("tag://0.0.0.0/S?force=true").expect("url"))
            .expect("router");
        assert!(forced
            .route(p, &reference(""), &tagged(Some("red")))
            .is_empty());
    }

    #[test]
    fn all_tagged_and_no_request_tag_keeps_everyone() {
        let p = providers(&["tag=a", "tag=b"]);
        let got = TagRouter::default().route(p, &reference(""), &tagged(None));
        assert_eq!(got.len(), 2);
    }
}
