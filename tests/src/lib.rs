//! Shared support for the workspace's integration tests (in `tests/tests/`).
//!
//! Linking the plugin crates here is what lets the tests find their extensions by name.
//! [`TestService`] is a hand-written service skeleton used by the remoting tests.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::protocol::{Exporter, Protocol};
use rpc_core::{
    extension, ErrorKind, Invocation, Invoker, Response, Result, RpcError, ServiceKey, Url, Value,
};
use rpc_custom_plugin as _;
use rpc_serialization_bincode as _;
use rpc_triple as _;

pub mod triple;

/// Interface name of [`TestService`].
pub const INTERFACE: &str = "test.Echo";
/// Version [`TestService`] is exported under.
pub const VERSION: &str = "1.0";

/// A hand-written skeleton: `echo(String)`, `repeat(String, usize)`, `add(u64, u64)`,
/// `sleep(u64 ms)`, `panic()`, `fail(String)` (business error), `deny()`, `busy()`, `hit()`
/// (counts one-way calls), `attachment()` (returns attachment `k`, answers with attachment
/// `seen=yes`); any other name is `MethodNotFound`.
pub struct TestService {
    url: Url,
    /// How many `hit` calls arrived.
    pub hits: Arc<AtomicU64>,
}

impl TestService {
    /// A skeleton for `url`.
    pub fn new(url: Url) -> Self {
        TestService {
            url,
            hits: Arc::new(AtomicU64::new(0)),
        }
    }
}

#[async_trait::async_trait]
impl Invoker for TestService {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn invoke(&self, mut inv: Invocation) -> Result<Response> {
        match inv.method() {
            "echo" => {
                let (s,): (String,) = inv.take_args().decode()?;
                Ok(Response::value(Value::typed(s)))
            }
            "repeat" => {
                let (s, n): (String, usize) = inv.take_args().decode()?;
                Ok(Response::value(Value::typed(s.repeat(n))))
            }
            "add" => {
                let (a, b): (u64, u64) = inv.take_args().decode()?;
                Ok(Response::value(Value::typed(a.wrapping_add(b))))
            }
            "sleep" => {
                let (ms,): (u64,) = inv.take_args().decode()?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Response::value(Value::typed(ms)))
            }
            "panic" => panic!("boom in the service"),
            "fail" => {
                let (s,): (String,) = inv.take_args().decode()?;
                Ok(Response::biz_error(Value::typed(format!("refused: {s}"))))
            }
            "deny" => Err(RpcError::new(ErrorKind::Unauthorized, "bad token")),
            "busy" => Err(RpcError::new(ErrorKind::LimitExceeded, "too many calls")),
            "attachment" => {
                let v = inv.attachments().get("k").unwrap_or("").to_string();
                let mut r = Response::value(Value::typed(v));
                r.attachments.insert("seen", "yes");
                Ok(r)
            }
            "hit" => {
                self.hits.fetch_add(1, Ordering::SeqCst);
                Ok(Response::empty())
            }
            other => Err(RpcError::new(
                ErrorKind::MethodNotFound,
                format!("{INTERFACE} has no method {other}"),
            )),
        }
    }
}

/// The `dubbo` protocol from the registry.
pub fn dubbo() -> Arc<dyn Protocol> {
    extension::get::<dyn Protocol>("dubbo").expect("dubbo protocol registered")
}

/// Exports a [`TestService`] at `dubbo://127.0.0.1:{port}/test.Echo?version=1.0&{params}`.
pub async fn export_on(port: u16, params: &str) -> (Box<dyn Exporter>, Arc<AtomicU64>) {
    let url = Url::parse(&format!(
        "dubbo://127.0.0.1:{port}/{INTERFACE}?version={VERSION}&{params}"
    ))
    .expect("url");
    let svc = TestService::new(url.clone());
    let hits = svc.hits.clone();
    let exp = dubbo().export(url, Arc::new(svc)).await.expect("export");
    (exp, hits)
}

/// Refers to the [`TestService`] exported at `exporter`, with extra consumer `params`.
pub async fn refer(exporter: &dyn Exporter, params: &str) -> Arc<dyn Invoker> {
    let port = exporter.url().port().expect("bound port");
    refer_port(port, params).await
}

/// Refers to `test.Echo:1.0` at 127.0.0.1:`port`.
pub async fn refer_port(port: u16, params: &str) -> Arc<dyn Invoker> {
    let url = Url::parse(&format!(
        "dubbo://127.0.0.1:{port}/{INTERFACE}?version={VERSION}&{params}"
    ))
    .expect("url");
    dubbo().refer(url).await.expect("refer")
}

/// An invocation of `method` on [`TestService`].
pub fn call(method: &'static str, args: Value) -> Invocation {
    Invocation::new(
        ServiceKey::new(INTERFACE, None, Some(VERSION)),
        method,
        args,
    )
}

/// `echo(s)` through `invoker`, decoded.
pub async fn echo(invoker: &dyn Invoker, s: &str) -> Result<String> {
    invoker
        .invoke(call("echo", Value::typed((s.to_string(),))))
        .await?
        .into_value()
}

/// A request body in the documented `dubbo` layout (no attachments, no timeout).
pub fn request_body(path: &str, version: &str, method: &str, args: &[u8]) -> Vec<u8> {
    let mut b = vec![1u8];
    for s in [path, version, "", method] {
        b.extend_from_slice(&(s.len() as u16).to_be_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(args.len() as u32).to_be_bytes());
    b.extend_from_slice(args);
    b
}

/// A whole frame: header (magic, `flag`, status 0, `id`, length) then `body`.
pub fn frame(flag: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0xda, 0xbb, flag, 0];
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// `assert` helper: the error's kind.
pub fn kind_of<T>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}
use rpc_registry_etcd as _;
use rpc_registry_nacos as _;
use rpc_registry_zookeeper as _;
pub mod greeter;
pub mod isolated;
pub mod peers;
pub mod pki;
pub mod raw;
pub mod registry;
