//! `failover`: on a retriable failure, try another provider (the default strategy).

use std::borrow::Cow;
use std::sync::Arc;

use super::{ClusterBase, ClusterInvoker, MethodSettings, Strategy};
use crate::cluster::{Cluster, Directory, Provider};
use crate::error::Result;
use crate::invocation::{BoxedCall, Invocation, Invoker, Response};
use crate::lent::Lent;

/// Retries a failed call on other providers, up to `retries` extra attempts (default
/// [`DEFAULT_RETRIES`], method-level `{method}.retries` first).
///
/// A failure is retried only when both hold:
/// - its kind is retriable ([`crate::RpcError::is_retriable`]): business errors, codec errors
///   and the like are returned at once;
/// - the method was declared idempotent ([`Invocation::is_idempotent`], or
///   `{method}.idempotent=true` in the reference's settings), or the call carries
///   an idempotency key ([`crate::idempotency`]: the provider answers a repeat from its
///   stored result), or the reference URL sets `retries` explicitly (method or service level): a timeout may mean the provider
///   did run the call, so a non-idempotent method is never called twice by default.
///
/// Each retry re-lists the directory (the provider list may have changed) and goes to a
/// provider this call has not tried yet while one exists.
#[derive(Debug, Default)]
pub struct Failover;

/// Extra attempts after the first when the URL does not say.
pub const DEFAULT_RETRIES: u32 = 2;

impl Cluster for Failover {
    fn join(&self, directory: Arc<dyn Directory>) -> Result<Arc<dyn Invoker>> {
        Ok(ClusterInvoker::join(directory, Failover))
    }
}

#[async_trait::async_trait]
impl Strategy for Failover {
    // Written out rather than `async fn`: a call that cannot be retried (the default for a
    // method not declared idempotent) is one attempt, whose future is handed on as this
    // strategy's, without a retry loop around it holding a copy of the invocation.
    fn invoke<'s, 'b, 'f>(
        &'s self,
        base: &'b Arc<ClusterBase>,
        invocation: Invocation,
    ) -> BoxedCall<'f>
    where
        's: 'f,
        'b: 'f,
        Self: 'f,
    {
        let settings = match base.method_settings(&base.context(&invocation)) {
            Ok(settings) => settings,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let retries = settings.retries.unwrap_or(DEFAULT_RETRIES);
        // Retries named explicitly; declared idempotent by the service definition, or by
        // configuration (`{method}.idempotent=true`); or a call with an idempotency key,
        // answered from the provider's store when repeated.
        let may_retry = settings.retries.is_some()
            || invocation.is_idempotent()
            || settings.idempotent
            || crate::idempotency::key_of(&invocation).is_some();
        if !may_retry || retries == 0 {
            // The provider is picked here; its call is this strategy's future.
            return base.select_and_hand_over(invocation, Some(&settings));
        }
        Box::pin(with_retries(base, invocation, settings, retries))
    }
}

/// Calls until an attempt succeeds, fails in a way a retry cannot help, or `retries` extra
/// attempts were made.
async fn with_retries(
    base: &Arc<ClusterBase>,
    invocation: Invocation,
    settings: Lent<'_, MethodSettings>,
    retries: u32,
) -> Result<Response> {
    let mut tried: Vec<Provider> = Vec::new();
    let mut attempt = 0u32;
    loop {
        if attempt >= retries {
            // No retry can follow this attempt: hand the invocation over uncopied.
            return base
                .select_and_call(Cow::Owned(invocation), &tried, Some(&settings))
                .await
                .1;
        }
        let (invoker, result) = base
            .select_and_call(Cow::Borrowed(&invocation), &tried, Some(&settings))
            .await;
        let e = match result {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let Some(invoker) = invoker else {
            // Nothing to call (no provider, bad configuration): retrying cannot help.
            return Err(e);
        };
        attempt += 1;
        let out_of_time = invocation.remaining().is_some_and(|d| d.is_zero());
        if !e.is_retriable() || out_of_time {
            return Err(e);
        }
        tracing::debug!(error = %e, attempt, "failover: retrying on another provider");
        tried.push(invoker);
    }
}

crate::register!(dyn Cluster, "failover", || Arc::new(Failover));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::strategy::testing::*;
    use crate::cluster::StaticDirectory;
    use crate::error::ErrorKind;

    fn join(service: &str, q: &str, p: &[Arc<Scripted>]) -> Arc<dyn Invoker> {
        let dir = StaticDirectory::new(reference(service, q), as_dyn(p));
        Failover.join(Arc::new(dir)).expect("join")
    }

    fn idempotent(service: &str) -> Invocation {
        let mut c = call(service, "m");
        c.set_idempotent(true);
        c
    }

    #[tokio::test]
    async fn retries_idempotent_call_on_untried_providers() {
        let net = Step::Fail(ErrorKind::Network);
        let p = [
            Scripted::new("fo1.S", 0, "", &[net]),
            Scripted::new("fo1.S", 1, "", &[net]),
            Scripted::new("fo1.S", 2, "", &[Step::Ok]),
        ];
        let inv = join("fo1.S", "", &p);
        for _ in 0..30 {
            let addr = answer(inv.invoke(idempotent("fo1.S")).await.expect("third works"));
            assert_eq!(addr, "10.1.0.2:20880");
        }
        // Each call tried each failing provider at most once.
        assert!(p[0].calls() <= 30 && p[1].calls() <= 30);
    }

    #[tokio::test]
    async fn a_method_configured_idempotent_is_retried() {
        let net = Step::Fail(ErrorKind::Network);
        let p = [
            Scripted::new("fo9.S", 0, "", &[net]),
            Scripted::new("fo9.S", 1, "", &[net]),
            Scripted::new("fo9.S", 2, "", &[net]),
        ];
        // Not declared idempotent by the definition: one attempt only, unless configured.
        let plain = join("fo9.S", "", &p);
        plain.invoke(call("fo9.S", "m")).await.expect_err("fails");
        let tried: usize = p.iter().map(|s| s.calls()).sum();
        assert_eq!(tried, 1, "a non-idempotent call is not retried");
        let configured = join("fo9.S", "m.idempotent=true", &p);
        configured
            .invoke(call("fo9.S", "m"))
            .await
            .expect_err("every provider fails");
        let tried: usize = p.iter().map(|s| s.calls()).sum::<usize>() - 1;
        assert_eq!(tried, 3, "first attempt and two retries");
        // Another method of the same reference is not affected.
        configured
            .invoke(call("fo9.S", "other"))
            .await
            .expect_err("fails");
        let tried: usize = p.iter().map(|s| s.calls()).sum::<usize>() - 4;
        assert_eq!(tried, 1);
    }

    #[tokio::test]
    async fn gives_up_after_retries_with_the_last_error_annotated() {
        let net = Step::Fail(ErrorKind::Network);
        let p: Vec<_> = (0..5u8)
            .map(|i| Scripted::new("fo2.S", i, "", &[net]))
            .collect();
        let inv = join("fo2.S", "retries=1", &p);
        let e = inv.invoke(call("fo2.S", "m")).await.expect_err("all fail");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert!(e.provider().is_some());
        assert_eq!(e.method(), Some("m"));
        let total: usize = p.iter().map(|s| s.calls()).sum();
        assert_eq!(total, 2, "one call plus one retry");
        assert!(
            p.iter().all(|s| s.calls() <= 1),
            "never the same provider twice"
        );
    }

    #[tokio::test]
    async fn never_double_calls_a_non_idempotent_method_by_default() {
        let p: Vec<_> = (0..3u8)
            .map(|i| Scripted::new("fo3.S", i, "", &[Step::Fail(ErrorKind::Timeout)]))
            .collect();
        let inv = join("fo3.S", "", &p);
        for _ in 0..20 {
            inv.invoke(call("fo3.S", "m")).await.expect_err("fails");
        }
        let total: usize = p.iter().map(|s| s.calls()).sum();
        assert_eq!(total, 20, "exactly one attempt per call");
    }

    #[tokio::test]
    async fn method_level_retries_beat_service_level() {
        let net = Step::Fail(ErrorKind::Network);
        let p: Vec<_> = (0..5u8)
            .map(|i| Scripted::new("fo4.S", i, "", &[net]))
            .collect();
        let inv = join("fo4.S", "retries=4&m.retries=0", &p);
        inv.invoke(call("fo4.S", "m")).await.expect_err("fails");
        assert_eq!(p.iter().map(|s| s.calls()).sum::<usize>(), 1);
        inv.invoke(call("fo4.S", "other")).await.expect_err("fails");
        assert_eq!(p.iter().map(|s| s.calls()).sum::<usize>(), 6);
    }

    #[tokio::test]
    async fn business_and_codec_errors_are_not_retried() {
        let p: Vec<_> = (0..3u8)
            .map(|i| Scripted::new("fo5.S", i, "", &[Step::Fail(ErrorKind::Codec)]))
            .collect();
        let inv = join("fo5.S", "retries=2", &p);
        let e = inv.invoke(idempotent("fo5.S")).await.expect_err("codec");
        assert_eq!(e.kind(), ErrorKind::Codec);
        assert_eq!(p.iter().map(|s| s.calls()).sum::<usize>(), 1);
    }

    #[tokio::test]
    async fn no_provider_is_reported_without_retrying() {
        let inv = join("fo6.S", "", &[]);
        let e = inv.invoke(idempotent("fo6.S")).await.expect_err("none");
        assert_eq!(e.kind(), ErrorKind::NoProvider);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_provider_is_left_to_the_timeout_filter() {
        // Failover itself never times out a call: the deadline is the timeout filter's job.
        let p = [Scripted::new("fo7.S", 0, "", &[Step::Hang])];
        let inv = join("fo7.S", "", &p);
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            inv.invoke(idempotent("fo7.S")),
        )
        .await;
        assert!(r.is_err(), "still waiting");
        assert_eq!(p[0].calls(), 1);
        assert_eq!(p[0].cancelled(), 1, "dropping the call cancels the attempt");
    }

    /// A call's future is allocated once per call: kept under the size the C allocator serves
    /// from its per-thread cache (about 1 KiB), it never takes the allocator's shared lock.
    #[test]
    fn a_calls_future_stays_small() {
        let p = [Scripted::new("fo-size.S", 0, "", &[Step::Ok])];
        let dir = StaticDirectory::new(reference("fo-size.S", ""), as_dyn(&p));
        let base = Arc::new(ClusterBase::new(Arc::new(dir)));
        let once = Failover.invoke(&base, call("fo-size.S", "m"));
        let retrying = Failover.invoke(&base, idempotent("fo-size.S"));
        for (what, size) in [
            ("one attempt", std::mem::size_of_val(&*once)),
            ("with retries", std::mem::size_of_val(&*retrying)),
        ] {
            assert!(size <= 1024, "{what}: {size} bytes");
        }
    }
}
