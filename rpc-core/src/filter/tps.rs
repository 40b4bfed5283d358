//! `tps` (provider, when `tps` is set): a token bucket per method and per calling
//! application (method level first: `greet.tps=100`).
//!
//! `tps` is the sustained rate in calls per second, `tps.burst` the bucket size (default:
//! `tps`). The caller's application comes from the [`APPLICATION_ATTACHMENT`] attachment (sent
//! by the consumer's `context` filter); callers without one share one bucket. One
//! application exhausting its bucket does not limit another. A rejected call fails at once
//! with [`ErrorKind::LimitExceeded`] naming the limit. The buckets are the `governor` crate's
//! GCRA limiter. To limit only at method level, also name the filter: `filter=tps`.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::keys;
use crate::context::APPLICATION_ATTACHMENT;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::state::{Site, StateMap, MAX_ENTRIES};
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

/// Longest application name accepted from the network.
const MAX_APPLICATION_LEN: usize = 256;

struct Buckets {
    tps: NonZeroU32,
    burst: NonZeroU32,
    limiter: DefaultKeyedRateLimiter<String>,
}

/// See the [module docs](self).
pub struct TpsFilter {
    buckets: StateMap<Buckets>,
}

impl Default for TpsFilter {
    fn default() -> Self {
        TpsFilter {
            buckets: StateMap::new("tps"),
        }
    }
}

#[async_trait::async_trait]
impl Filter for TpsFilter {
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let method = invocation.method();
        let url = next.url();
        let tps: u32 = url
            .method_param_as(method, keys::TPS, 0)
            .map_err(|e| invocation.annotate(e))?;
        let Some(tps) = NonZeroU32::new(tps) else {
            return next.invoke(invocation).await;
        };
        let burst: u32 = url
            .method_param_as(method, keys::TPS_BURST, tps.get())
            .map_err(|e| invocation.annotate(e))?;
        let burst = NonZeroU32::new(burst).unwrap_or(tps);
        let buckets = self
            .buckets
            .get_or_insert(
                Site::of(&invocation),
                |b| b.tps == tps && b.burst == burst,
                || Buckets {
                    tps,
                    burst,
                    limiter: RateLimiter::keyed(Quota::per_second(tps).allow_burst(burst)),
                },
            )
            .map_err(|e| invocation.annotate(e))?;
        let app = invocation
            .attachments()
            .get(APPLICATION_ATTACHMENT)
            .unwrap_or("");
        if app.len() > MAX_APPLICATION_LEN {
            return Err(invocation.annotate(RpcError::codec(format!(
                "attachment '{APPLICATION_ATTACHMENT}' is {} bytes long; at most \
                 {MAX_APPLICATION_LEN} are accepted",
                app.len()
            ))));
        }
        if buckets.limiter.len() >= MAX_ENTRIES {
            // Forget applications whose buckets are full again before refusing new ones.
            buckets.limiter.retain_recent();
            buckets.limiter.shrink_to_fit();
        }
        let app = app.to_string();
        if buckets.limiter.len() >= MAX_ENTRIES {
            return Err(invocation.annotate(RpcError::new(
                ErrorKind::LimitExceeded,
                format!("tps limiter tracks {MAX_ENTRIES} calling applications already"),
            )));
        }
        if buckets.limiter.check_key(&app).is_err() {
            return Err(invocation.annotate(RpcError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "tps limit of {tps} calls per second (burst {burst}) reached for \
                     application '{app}'"
                ),
            )));
        }
        next.invoke(invocation).await
    }
}

crate::register!(
    dyn Filter,
    "tps",
    || Arc::new(TpsFilter::default()),
    activate = Activate::provider(-16_000).when(keys::TPS)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};

    fn from(app: &str, method: &'static str) -> Invocation {
        let mut c = call("S", method);
        c.attachments_mut().insert(APPLICATION_ATTACHMENT, app);
        c
    }

    #[tokio::test]
    async fn each_application_has_its_own_bucket() {
        // One call per second sustained, a burst of 3: the four calls take far less than a second.
        let p = Mock::ok("dubbo://h:1/S?greet.tps=1&greet.tps.burst=3");
        let f = TpsFilter::default();
        for _ in 0..3 {
            f.invoke(&*p, from("app-a", "greet"))
                .await
                .expect("within the burst");
        }
        let e = f
            .invoke(&*p, from("app-a", "greet"))
            .await
            .expect_err("over the limit");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(
            e.to_string().contains(
                "tps limit of 1 calls per second (burst 3) reached for application 'app-a'"
            ),
            "{e}"
        );
        assert_eq!(p.calls(), 3);
        // App B is not limited by A's exhaustion.
        for _ in 0..3 {
            f.invoke(&*p, from("app-b", "greet"))
                .await
                .expect("b has its own bucket");
        }
        // Another method without a limit is untouched.
        for _ in 0..5 {
            f.invoke(&*p, from("app-a", "other"))
                .await
                .expect("no limit");
        }
    }

    #[tokio::test]
    async fn oversized_application_name_is_refused() {
        let p = Mock::ok("dubbo://h:1/S?tps=100");
        let e = TpsFilter::default()
            .invoke(&*p, from(&"x".repeat(300), "m"))
            .await
            .expect_err("too long");
        assert_eq!(e.kind(), ErrorKind::Codec);
        assert_eq!(p.calls(), 0);
    }
}
