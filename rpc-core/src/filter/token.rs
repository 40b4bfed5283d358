//! `token` (provider, when the URL has `token`): only callers that present the provider's
//! token are served.
//!
//! The provider URL carries `token=<secret>`; `token=true` (or `default`) asks for a random
//! token generated at export: the bootstrap calls [`resolve_token`] on the provider URL before
//! exporting and registering it, so the registry publishes the real token. Consumers that got
//! the provider URL from the registry send it back in the [`TOKEN_ATTACHMENT`] attachment (the
//! consumer side of `token` does this, [`super::ConsumerTokenFilter`]), so direct callers that bypass the registry are refused.
//! A missing or wrong token fails with [`ErrorKind::Unauthorized`] naming the service and
//! method; the comparison takes the same time wherever the strings differ. `token=false` or
//! an empty value switches the check off.
//!
//! The token is as secret as the registry is: anyone who can read provider URLs there can
//! call the provider.

use std::sync::Arc;

use crate::config::keys;
use crate::context::TOKEN_ATTACHMENT;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};
use crate::url::Url;

/// Whether a `token` value asks for a generated token.
fn wants_generated(v: &str) -> bool {
    matches!(v, "true" | "default")
}

/// Whether a `token` value switches the check off.
fn is_off(v: &str) -> bool {
    matches!(v, "" | "false")
}

/// A random token in the UUID v4 text form, from the operating system's random source.
pub fn generate_token() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| RpcError::internal(format!("cannot generate a token: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The provider URL to export and register: `token=true`/`default` replaced by a generated
/// token, anything else unchanged. Called by the bootstrap at export.
pub fn resolve_token(url: &Url) -> Result<Url> {
    match url.param(keys::TOKEN) {
        Some(v) if wants_generated(v) => Ok(url.with_param(keys::TOKEN, generate_token()?)),
        _ => Ok(url.clone()),
    }
}

/// Equality whose running time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct TokenFilter;

#[async_trait::async_trait]
impl Filter for TokenFilter {
    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let Some(expected) = next.url().param(keys::TOKEN).filter(|v| !is_off(v)) else {
            return next.invoke(invocation).await;
        };
        if wants_generated(expected) {
            return Err(invocation.annotate(RpcError::internal(
                "token=true was not resolved at export (the bootstrap must call \
                 filter::token::resolve_token); refusing calls",
            )));
        }
        let refused = match invocation.attachments().get(TOKEN_ATTACHMENT) {
            None => Some("missing token"),
            Some(got) if !constant_time_eq(got.as_bytes(), expected.as_bytes()) => {
                Some("wrong token")
            }
            Some(_) => None,
        };
        if let Some(why) = refused {
            return Err(invocation.annotate(RpcError::new(
                ErrorKind::Unauthorized,
                format!(
                    "{why} for service {} method {}",
                    invocation.service(),
                    invocation.method()
                ),
            )));
        }
        next.invoke(invocation).await
    }
}

crate::register!(
    dyn Filter,
    "token",
    || Arc::new(crate::filter::Sided::new(
        Arc::new(crate::filter::ConsumerTokenFilter),
        Arc::new(TokenFilter)
    )),
    activate = Activate::sides(-6_000, -17_000).when(keys::TOKEN)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::consumer_token::ConsumerTokenFilter;
    use crate::filter::testing::{call, Mock};
    use crate::filter::wrap;

    #[tokio::test]
    async fn missing_or_wrong_token_is_refused_and_right_token_passes() {
        let p = Mock::ok("dubbo://h:1/S?token=s3cret");
        let e = TokenFilter
            .invoke(&*p, call("S", "greet"))
            .await
            .expect_err("missing");
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(
            e.to_string()
                .contains("missing token for service S method greet"),
            "{e}"
        );
        let mut wrong = call("S", "greet");
        wrong.attachments_mut().insert(TOKEN_ATTACHMENT, "s3creT");
        let e = TokenFilter.invoke(&*p, wrong).await.expect_err("wrong");
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(!e.to_string().contains("s3cret"), "no secret in {e}");
        assert_eq!(p.calls(), 0);
        let mut right = call("S", "greet");
        right.attachments_mut().insert(TOKEN_ATTACHMENT, "s3cret");
        TokenFilter.invoke(&*p, right).await.expect("right token");
        assert_eq!(p.calls(), 1);
    }

    #[tokio::test]
    async fn consumer_sends_the_token_from_the_provider_url() {
        let provider = Mock::ok("dubbo://h:1/S?token=abc");
        let served = wrap(
            provider.clone(),
            vec![("token", Arc::new(TokenFilter) as _)],
        );
        // The consumer's view of the provider: its registry URL, with the token.
        let network = Mock::new("dubbo://h:1/S?token=abc", move |inv| {
            let served = served.clone();
            async move { served.invoke(inv).await }
        });
        let consumer = wrap(network, vec![("token", Arc::new(ConsumerTokenFilter) as _)]);
        consumer.invoke(call("S", "m")).await.expect("authorized");
        assert_eq!(provider.calls(), 1);
    }

    #[test]
    fn generated_tokens_are_random_and_resolved_at_export() {
        let a = generate_token().expect("token");
        let b = generate_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        let url = Url::parse("dubbo://h:1/S?token=true").expect("url");
        let resolved = resolve_token(&url).expect("resolved");
        let t = resolved.param(keys::TOKEN).expect("token");
        assert_eq!(t.len(), 36);
        let fixed = Url::parse("dubbo://h:1/S?token=mine").expect("url");
        assert_eq!(resolve_token(&fixed).expect("same"), fixed);
    }

    #[tokio::test]
    async fn unresolved_generated_token_refuses_calls() {
        let p = Mock::ok("dubbo://h:1/S?token=true");
        let mut c = call("S", "m");
        c.attachments_mut().insert(TOKEN_ATTACHMENT, "true");
        let e = TokenFilter.invoke(&*p, c).await.expect_err("unresolved");
        assert!(e.to_string().contains("not resolved"), "{e}");
        assert_eq!(p.calls(), 0);
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
