//! `mock` (consumer): service degradation — answer without the provider, or instead of a
//! failure.
//!
//! The `mock` key (method level first: `greet.mock=...` beats `mock=...`):
//!
//! | value | effect |
//! |---|---|
//! | `force:return <json>` | always answer `<json>` without calling the provider |
//! | `fail:return <json>` | call; on an [`RpcError`] answer `<json>` instead |
//! | `force:throw [message]` | always fail with [`ErrorKind::Biz`] `mock: <message>` |
//! | `fail:throw [message]` | call; on an [`RpcError`] fail with that error instead |
//! | `force:fallback` | always call the fallback registered for the service |
//! | `fail:fallback` | call; on an [`RpcError`] call the fallback |
//!
//! Without a `force:`/`fail:` prefix the mode is `fail` (as in Dubbo); `true` means
//! `fail:fallback`; an empty value or `false` switches mocking off. `return` alone answers an
//! empty value. The JSON is checked once and handed to the caller as a
//! [`Value::Encoded`] JSON payload, which the typed client decodes into the method's return
//! type. A declared business error (`Err(E)` of the method) is an answer, not a failure: it is
//! never replaced.
//!
//! Fallbacks are implementations of the service run in-process: register one with
//! [`register_fallback`] under the service key (`group/interface:version`) or the interface
//! name — for a `#[service]` trait, `Arc::new(GreeterServer::new(MyFallback))`.
//!
//! A reference runs it once, around its cluster ([`Filter::per_reference`]): a `fail:` mock
//! answers only after the cluster has given up, every retry included, and also when no
//! provider is available at all; `force:` answers without calling the cluster. Timeouts and
//! open circuits of the per-provider filters reach it as failures and fall back too.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use bytes::Bytes;

use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::extension::Activate;
use crate::filter::Filter;
use crate::invocation::{Invocation, Invoker, Payload, Response, Value};
use crate::serialize::ids;

/// Most distinct `mock` values whose parsed form is cached.
const CACHE_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Force,
    Fail,
}

#[derive(Debug)]
enum Action {
    Return(Value),
    Throw(String),
    Fallback,
}

#[derive(Debug)]
struct Spec {
    mode: Mode,
    action: Action,
}

/// Parses a `mock` value; `Ok(None)` when mocking is off.
fn parse(raw: &str) -> Result<Option<Spec>> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "false" {
        return Ok(None);
    }
    let (mode, rest) = if let Some(r) = raw.strip_prefix("force:") {
        (Mode::Force, r.trim())
    } else if let Some(r) = raw.strip_prefix("fail:") {
        (Mode::Fail, r.trim())
    } else {
        (Mode::Fail, raw)
    };
    let (verb, arg) = match rest.split_once(char::is_whitespace) {
        Some((v, a)) => (v, a.trim()),
        None => (rest, ""),
    };
    let action = match verb {
        "return" if arg.is_empty() => Action::Return(Value::Empty),
        "return" => {
            serde_json::from_str::<serde_json::Value>(arg).map_err(|e| {
                RpcError::config(format!(
                    "mock value '{raw}': '{arg}' is not valid JSON ({e})"
                ))
            })?;
            Action::Return(Value::Encoded(Payload {
                serialization: ids::JSON,
                bytes: Bytes::copy_from_slice(arg.as_bytes()),
            }))
        }
        "throw" if arg.is_empty() => Action::Throw("degraded by configuration".into()),
        "throw" => Action::Throw(arg.to_string()),
        "fallback" | "true" if arg.is_empty() => Action::Fallback,
        _ => {
            return Err(RpcError::config(format!(
                "mock value '{raw}' is not understood; expected [force:|fail:] followed by \
                 'return <json>', 'throw [message]' or 'fallback'"
            )))
        }
    };
    Ok(Some(Spec { mode, action }))
}

fn fallbacks() -> &'static RwLock<HashMap<String, Arc<dyn Invoker>>> {
    static FALLBACKS: OnceLock<RwLock<HashMap<String, Arc<dyn Invoker>>>> = OnceLock::new();
    FALLBACKS.get_or_init(Default::default)
}

/// Registers `fallback` as the in-process implementation used by `mock=force:fallback` and
/// `mock=fail:fallback` for `service` (a service key `group/interface:version`, or an
/// interface name, which covers every group and version). Returns the one it replaces.
pub fn register_fallback(
    service: impl Into<String>,
    fallback: Arc<dyn Invoker>,
) -> Option<Arc<dyn Invoker>> {
    fallbacks()
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(service.into(), fallback)
}

/// Removes the fallback registered under `service`.
pub fn unregister_fallback(service: &str) -> Option<Arc<dyn Invoker>> {
    fallbacks()
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(service)
}

fn find_fallback(invocation: &Invocation) -> Result<Arc<dyn Invoker>> {
    let map = fallbacks().read().unwrap_or_else(PoisonError::into_inner);
    let key = invocation.service().to_string();
    map.get(&key)
        .or_else(|| map.get(invocation.service().interface()))
        .cloned()
        .ok_or_else(|| {
            invocation.annotate(RpcError::config(format!(
                "mock=fallback but no fallback is registered for '{key}'; \
                 call filter::mock::register_fallback first"
            )))
        })
}

/// See the [module docs](self).
#[derive(Default)]
pub struct MockFilter {
    cache: RwLock<HashMap<String, Arc<Option<Spec>>>>,
}

impl MockFilter {
    fn spec(&self, raw: &str) -> Result<Arc<Option<Spec>>> {
        if let Some(s) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(raw)
        {
            return Ok(s.clone());
        }
        let spec = Arc::new(parse(raw)?);
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < CACHE_MAX {
            cache.insert(raw.to_string(), spec.clone());
        }
        Ok(spec)
    }
}

async fn act(action: &Action, invocation: Invocation, cause: Option<RpcError>) -> Result<Response> {
    match action {
        Action::Return(v) => Ok(Response::value(v.clone())),
        Action::Throw(msg) => {
            let msg = match cause {
                Some(c) => format!("mock: {msg} (after: {c})"),
                None => format!("mock: {msg}"),
            };
            Err(invocation.annotate(RpcError::new(ErrorKind::Biz, msg)))
        }
        Action::Fallback => find_fallback(&invocation)?.invoke(invocation).await,
    }
}

#[async_trait::async_trait]
impl Filter for MockFilter {
    /// A fallback answers for the call, not for one attempt of it.
    fn per_reference(&self) -> bool {
        true
    }

    /// Left out of a chain whose URL has no `mock` key, at service or method level.
    fn applies_to(&self, next: &dyn Invoker) -> bool {
        next.url()
            .params()
            .keys()
            .any(|k| k == keys::MOCK || keys::method_of(k, keys::MOCK).is_some())
    }

    async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
        let Some(raw) = next.url().method_param(invocation.method(), keys::MOCK) else {
            return next.invoke(invocation).await;
        };
        let spec = self.spec(raw).map_err(|e| invocation.annotate(e))?;
        let Some(spec) = spec.as_ref() else {
            return next.invoke(invocation).await;
        };
        match spec.mode {
            Mode::Force => act(&spec.action, invocation, None).await,
            Mode::Fail => {
                let copy = invocation.clone();
                match next.invoke(invocation).await {
                    Ok(r) => Ok(r),
                    Err(e) => {
                        tracing::warn!(
                            service = %copy.service(),
                            method = copy.method(),
                            error = %e,
                            "call failed; answering with the configured mock"
                        );
                        act(&spec.action, copy, Some(e)).await
                    }
                }
            }
        }
    }
}

crate::register!(
    dyn Filter,
    "mock",
    || Arc::new(MockFilter::default()),
    activate = Activate::consumer(-12_000)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{call, Mock};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn mocked(spec: &str) -> String {
        format!(
            "dubbo://h:1/S?greet.mock={}",
            percent_encoding::utf8_percent_encode(spec, percent_encoding::NON_ALPHANUMERIC)
        )
    }

    fn failing(url: &str) -> Arc<Mock> {
        Mock::new(url, |_| async {
            Err(RpcError::network("connection refused"))
        })
    }

    #[tokio::test]
    async fn force_return_answers_without_calling() {
        let inner = Mock::ok(&mocked(r#"force:return "degraded""#));
        let v: String = MockFilter::default()
            .invoke(&*inner, call("S", "greet"))
            .await
            .expect("mocked")
            .into_value()
            .expect("a string");
        assert_eq!(v, "degraded");
        assert_eq!(inner.calls(), 0);
        // Other methods are untouched.
        MockFilter::default()
            .invoke(&*inner, call("S", "other"))
            .await
            .expect("real");
        assert_eq!(inner.calls(), 1);
    }

    #[tokio::test]
    async fn fail_return_answers_only_on_rpc_errors() {
        let f = MockFilter::default();
        let down = failing(&mocked(r#"fail:return {"n": 7}"#));
        #[derive(serde::Deserialize)]
        struct N {
            n: u32,
        }
        let v: N = f
            .invoke(&*down, call("S", "greet"))
            .await
            .expect("mocked")
            .into_value()
            .expect("an N");
        assert_eq!(v.n, 7);
        assert_eq!(down.calls(), 1);

        // A business error is an answer and reaches the caller unchanged.
        let biz = Mock::new(&mocked("fail:return 1"), |_| async {
            Ok(Response::biz_error(Value::typed(
                "no such user".to_string(),
            )))
        });
        let r = f.invoke(&*biz, call("S", "greet")).await.expect("answer");
        let out: std::result::Result<u32, String> = r.into_result().expect("decodes");
        assert_eq!(out, Err("no such user".to_string()));
    }

    #[tokio::test]
    async fn throw_modes_fail_with_biz_kind() {
        let f = MockFilter::default();
        let ok = Mock::ok(&mocked("force:throw maintenance"));
        let e = f
            .invoke(&*ok, call("S", "greet"))
            .await
            .expect_err("thrown");
        assert_eq!(e.kind(), ErrorKind::Biz);
        assert!(e.to_string().contains("mock: maintenance"), "{e}");
        assert_eq!(ok.calls(), 0);
        let down = failing(&mocked("fail:throw"));
        let e = f
            .invoke(&*down, call("S", "greet"))
            .await
            .expect_err("thrown");
        assert_eq!(e.kind(), ErrorKind::Biz);
        assert!(e.to_string().contains("connection refused"), "{e}");
    }

    /// A fallback implementation of the service, as the generated server skeleton over a
    /// user's fallback type would be.
    struct Fallback(crate::url::Url, AtomicUsize);

    #[async_trait::async_trait]
    impl Invoker for Fallback {
        fn url(&self) -> &crate::url::Url {
            &self.0
        }
        async fn invoke(&self, inv: Invocation) -> Result<Response> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(Response::value(Value::typed(format!(
                "fallback for {}",
                inv.method()
            ))))
        }
    }

    #[tokio::test]
    async fn fallback_implementation_force_and_fail() {
        let fb = Arc::new(Fallback(
            crate::url::Url::parse("injvm://local/FbService").expect("url"),
            AtomicUsize::new(0),
        ));
        register_fallback("FbService", fb.clone());
        let f = MockFilter::default();

        let healthy = Mock::ok(&mocked("force:fallback"));
        let v: String = f
            .invoke(&*healthy, call("FbService", "greet"))
            .await
            .expect("fallback")
            .into_value()
            .expect("string");
        assert_eq!(v, "fallback for greet");
        assert_eq!(healthy.calls(), 0);

        let healthy = Mock::ok(&mocked("fail:fallback"));
        f.invoke(&*healthy, call("FbService", "greet"))
            .await
            .expect("real");
        assert_eq!(healthy.calls(), 1);
        assert_eq!(fb.1.load(Ordering::SeqCst), 1, "not used while healthy");

        let down = failing(&mocked("fail:fallback"));
        let v: String = f
            .invoke(&*down, call("FbService", "greet"))
            .await
            .expect("fallback")
            .into_value()
            .expect("string");
        assert_eq!(v, "fallback for greet");
        assert_eq!(fb.1.load(Ordering::SeqCst), 2);
        unregister_fallback("FbService");

        let e = f
            .invoke(&*down, call("FbService", "greet"))
            .await
            .expect_err("none registered");
        assert!(e.to_string().contains("no fallback is registered"), "{e}");
    }

    #[tokio::test]
    async fn bad_mock_values_are_reported() {
        let f = MockFilter::default();
        for (spec, want) in [
            ("force:return {oops", "is not valid JSON"),
            ("force:explode", "is not understood"),
        ] {
            let inner = Mock::ok(&mocked(spec));
            let e = f
                .invoke(&*inner, call("S", "greet"))
                .await
                .expect_err("bad");
            assert!(e.to_string().contains(want), "{spec}: {e}");
            assert_eq!(inner.calls(), 0);
        }
        let off = Mock::ok(&mocked("false"));
        f.invoke(&*off, call("S", "greet")).await.expect("off");
        assert_eq!(off.calls(), 1);
    }
}
