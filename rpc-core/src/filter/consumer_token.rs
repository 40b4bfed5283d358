//! `token` on the consumer side (when the provider URL has `token`): sends the token the
//! provider published in its registry URL as the [`TOKEN_ATTACHMENT`] attachment, for the
//! provider's `token` filter.

use crate::config::keys;
use crate::context::TOKEN_ATTACHMENT;
use crate::error::Result;
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Response};

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct ConsumerTokenFilter;

#[async_trait::async_trait]
impl Filter for ConsumerTokenFilter {
    /// It never waits.
    fn honors_deadline(&self) -> bool {
        true
    }

    async fn invoke(&self, next: &dyn Invoker, mut invocation: Invocation) -> Result<Response> {
        if let Some(token) = next.url().param(keys::TOKEN) {
            if !matches!(token, "" | "false" | "true" | "default") {
                invocation.attachments_mut().insert(TOKEN_ATTACHMENT, token);
            }
        }
        next.invoke(invocation).await
    }
}
