//! Filter chains that follow the settings override rules change at run time.
//!
//! Filters read their settings (`mock`, `executes`, `tps`, `accesslog`, ...) from the URL of
//! the invoker they wrap, and the activated set is chosen from that URL when the chain is
//! built. A [`LiveChain`] keeps that true when a rule changes those settings: it holds the
//! chain built over its base invoker and, on [`LiveChain::update`], builds the chain again
//! over the base presented with the new URL, then swaps it in. Calls in flight finish on the
//! chain they started on; the filters keep their state across a rebuild (their instances, and
//! the per-service state in them, are shared).
//!
//! A consumer reference's once-per-reference filters (`mock`) follow its directory's live
//! settings; a provider's service chain follows the provider-side rules for its address.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::error::Result;
use crate::invocation::{BoxedCall, Invocation, Invoker};
use crate::url::Url;

/// How a chain is built over an invoker ([`super::build_chain`] for a provider side,
/// [`super::build_reference_chain`] around a consumer's cluster).
pub type ChainBuilder = fn(Arc<dyn Invoker>) -> Result<Arc<dyn Invoker>>;

/// An invoker shown to the filters with another URL (the settings in force); every call and
/// property goes to the invoker it wraps.
struct WithUrl {
    url: Url,
    inner: Arc<dyn Invoker>,
}

impl Invoker for WithUrl {
    fn url(&self) -> &Url {
        &self.url
    }

    fn is_available(&self) -> bool {
        self.inner.is_available()
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.inner.unavailable_reason()
    }

    fn invoke<'a, 'f>(&'a self, invocation: Invocation) -> BoxedCall<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        self.inner.invoke(invocation)
    }

    fn enforces_deadline(&self) -> bool {
        self.inner.enforces_deadline()
    }

    fn descriptor(&self) -> Option<&'static crate::proxy::ServiceDescriptor> {
        self.inner.descriptor()
    }

    fn destroy(&self) {
        self.inner.destroy();
    }
}

/// A filter chain rebuilt when its settings change; see the [module docs](self).
pub struct LiveChain {
    base: Arc<dyn Invoker>,
    build: ChainBuilder,
    current: ArcSwap<Arc<dyn Invoker>>,
    /// The settings the current chain was built for.
    built_for: Mutex<Url>,
}

impl LiveChain {
    /// The chain `build` makes over `base`, with `base`'s own URL as the settings.
    pub fn new(base: Arc<dyn Invoker>, build: ChainBuilder) -> Result<Arc<LiveChain>> {
        let chain = build(base.clone())?;
        Ok(Arc::new(LiveChain {
            built_for: Mutex::new(base.url().clone()),
            base,
            build,
            current: ArcSwap::from_pointee(chain),
        }))
    }

    /// The URL of the base invoker (the settings before any rule).
    pub fn base_url(&self) -> &Url {
        self.base.url()
    }

    /// Puts `settings` in force (`None`: the base's own URL): when they differ from those
    /// of the current chain, a chain is built for them and replaces it. A chain that cannot
    /// be built (a rule naming an unknown filter) leaves the current one, and says why.
    pub fn update(&self, settings: Option<&Url>) -> Result<()> {
        let settings = settings.unwrap_or(self.base.url());
        let mut built_for = self
            .built_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *built_for == *settings {
            return Ok(());
        }
        let shown: Arc<dyn Invoker> = if settings == self.base.url() {
            self.base.clone()
        } else {
            Arc::new(WithUrl {
                url: settings.clone(),
                inner: self.base.clone(),
            })
        };
        let chain = (self.build)(shown)?;
        self.current.store(Arc::new(chain));
        *built_for = settings.clone();
        Ok(())
    }
}

impl Invoker for LiveChain {
    fn url(&self) -> &Url {
        self.base.url()
    }

    fn is_available(&self) -> bool {
        self.current.load().is_available()
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.current.load().unavailable_reason()
    }

    fn invoke<'a, 'f>(&'a self, invocation: Invocation) -> BoxedCall<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        let chain = self.current.load_full();
        Box::pin(async move { chain.invoke(invocation).await })
    }

    fn enforces_deadline(&self) -> bool {
        self.current.load().enforces_deadline()
    }

    fn descriptor(&self) -> Option<&'static crate::proxy::ServiceDescriptor> {
        self.base.descriptor()
    }

    fn destroy(&self) {
        self.current.load().destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys;
    use crate::filter::testing::{call, Mock};
    use crate::ErrorKind;

    /// A rule that adds `executes=1` to a provider's URL brings the `executes` filter into its
    /// chain; removing the rule takes it out again.
    #[tokio::test]
    async fn a_rule_brings_a_filter_into_the_chain_and_takes_it_out() {
        let slow = Mock::new("dubbo://h:1/S", |_| async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Ok(crate::invocation::Response::value(
                crate::invocation::Value::Empty,
            ))
        });
        let live = LiveChain::new(slow.clone(), |i| {
            crate::filter::build_chain(i, crate::extension::Side::Provider)
        })
        .expect("chain");
        let two = || {
            let (a, b) = (live.clone(), live.clone());
            async move {
                let (x, y) = tokio::join!(a.invoke(call("S", "m")), b.invoke(call("S", "m")));
                [x, y]
            }
        };
        assert!(two().await.iter().all(Result::is_ok), "no limit yet");
        let limited = slow.url().with_param(keys::EXECUTES, 1);
        live.update(Some(&limited)).expect("rebuilt");
        let results = two().await;
        assert_eq!(
            results
                .iter()
                .filter(|r| r
                    .as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::LimitExceeded))
                .count(),
            1,
            "one of two concurrent calls is over the live limit: {results:?}"
        );
        live.update(None).expect("rebuilt");
        assert!(two().await.iter().all(Result::is_ok), "limit gone");
        assert_eq!(live.url(), slow.url(), "the chain keeps its own URL");
    }
}
