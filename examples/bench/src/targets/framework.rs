//! `rpc` / `rpc-bincode` / `rpc-hessian2`: this framework's `dubbo` protocol, default
//! settings (msgpack), `serialization=bincode` or `serialization=hessian2` (what a Java Dubbo
//! peer speaks), called through the invoker `refer` returns; `rpc-stack`: the same
//! provider called through the whole consumer stack (`Consumer::refer_url`); `rpc-service`:
//! what a user writes, a `#[service]` trait served by `Provider` and called through its
//! generated client from `Consumer`, every layer on both sides at its defaults; `rpc-tls`:
//! the `rpc` target with `tls=true` (server certificate only, no client certificate).
//!
//! Uses only the kernel's stable API: the provider exports a hand-written [`Invoker`] through
//! `extension::get::<dyn Protocol>("dubbo")`, the consumer calls the invoker that `refer`
//! returns. Until a protocol registers as `dubbo`, both fail with "unknown protocol 'dubbo'".

use std::net::SocketAddr;
use std::sync::Arc;

use rpc_core::bootstrap::{Consumer, Provider, RunningProvider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_core::protocol::{Exporter, Protocol};
use rpc_core::{extension, Invocation, Invoker, Response, ServiceKey, Url, Value};
use serde_bytes::ByteBuf;

use crate::BoxResult;

/// The benchmark's service interface name.
pub(crate) const SERVICE: &str = "bench.Echo";

/// The serialization a target selects on its URL; `None` keeps the default (msgpack).
pub type SerializationName = Option<&'static str>;

fn url(addr: &str, serialization: SerializationName) -> BoxResult<Url> {
    let url = Url::parse(&format!("dubbo://{addr}/{SERVICE}"))?;
    Ok(match serialization {
        Some(name) => url.with_param(keys::SERIALIZATION, name),
        None => url,
    })
}

/// `inplace.budget` for the providers this process starts, when `server --inplace-budget`
/// set it: under valgrind every request runs about 50 times slower, and at the default budget
/// a read's requests would go to tasks of their own, which they do not in a native run.
static INPLACE_BUDGET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Sets `inplace.budget` (µs) for the providers this process starts from now on.
pub fn set_inplace_budget(us: u64) {
    let _ = INPLACE_BUDGET.set(us);
}

/// A provider URL with the `inplace.budget` this process was given, if any.
fn provider_url(url: Url) -> Url {
    match INPLACE_BUDGET.get() {
        Some(us) => url.with_param(keys::INPLACE_BUDGET, us),
        None => url,
    }
}

/// The `filter` key (a list of filter names, `-name` to leave one out, `-default` for all
/// defaults) given to the `rpc-service` provider or reference this process makes, when
/// `--filter` set it: what takes one filter out of a comparison to measure what it costs.
static FILTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the `filter` key for the `rpc-service` provider or reference this process makes.
pub fn set_filter(list: String) {
    let _ = FILTER.set(list);
}

/// The provider side: `echo(bytes) -> bytes`.
pub(crate) struct EchoInvoker {
    pub(crate) url: Url,
}

#[async_trait::async_trait]
impl Invoker for EchoInvoker {
    fn url(&self) -> &Url {
        &self.url
    }

    async fn invoke(&self, mut invocation: Invocation) -> rpc_core::Result<Response> {
        let (bytes,): (ByteBuf,) = invocation.take_args().decode()?;
        Ok(Response::value(Value::typed(bytes)))
    }
}

/// Exports the echo service on `127.0.0.1:port`; returns the bound port and the exporter
/// (keep it alive while serving).
pub async fn start_server(
    port: u16,
    serialization: SerializationName,
) -> BoxResult<(u16, Box<dyn Exporter>)> {
    let protocol = extension::get::<dyn Protocol>("dubbo")?;
    let url = provider_url(url(&format!("127.0.0.1:{port}"), serialization)?);
    let exporter = protocol
        .export(url.clone(), Arc::new(EchoInvoker { url }))
        .await?;
    let port = exporter
        .url()
        .port()
        .filter(|p| *p != 0)
        .ok_or("the exporter's URL does not carry the bound port")?;
    Ok((port, exporter))
}

/// The echo service exported and referred in this process through the `injvm` protocol:
/// the same provider and call code as the network targets, without sockets or encoding.
/// Returns the reference and the exporter (keep it alive while calling).
pub async fn in_process() -> BoxResult<(Arc<dyn Invoker>, Box<dyn Exporter>)> {
    let protocol = extension::get::<dyn Protocol>("injvm")?;
    let url = Url::parse(&format!("injvm://127.0.0.1/{SERVICE}"))?;
    let exporter = protocol
        .export(url.clone(), Arc::new(EchoInvoker { url: url.clone() }))
        .await?;
    Ok((protocol.refer(url).await?, exporter))
}

/// A reference to the echo service at `addr`.
pub async fn connect(
    addr: SocketAddr,
    serialization: SerializationName,
) -> BoxResult<Arc<dyn Invoker>> {
    let protocol = extension::get::<dyn Protocol>("dubbo")?;
    Ok(protocol
        .refer(url(&addr.to_string(), serialization)?)
        .await?)
}

/// A reference to the echo service at `addr` through the whole consumer stack a user gets:
/// `Consumer::refer_url` with a direct `url=` (cluster `failover`, balancer `random`, the
/// default consumer filters, then the protocol's invoker).
pub async fn connect_stack(addr: SocketAddr) -> BoxResult<Arc<dyn Invoker>> {
    let consumer = rpc_core::bootstrap::Consumer::builder()
        .no_registry()
        .without_env()
        .build()
        .await?;
    let reference = Url::parse(&format!("consumer://127.0.0.1/{SERVICE}"))?
        .with_param(keys::URL, format!("dubbo://{addr}/{SERVICE}"));
    Ok(consumer.refer_url(reference).await?)
}

/// The echo service's key, interned once and cloned per call (as a generated client does).
fn service_key() -> ServiceKey {
    static KEY: std::sync::OnceLock<ServiceKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| ServiceKey::interned(SERVICE, None, None))
        .clone()
}

/// One call.
pub async fn call(invoker: &dyn Invoker, payload: &[u8]) -> BoxResult<usize> {
    let invocation = Invocation::new(
        service_key(),
        "echo",
        Value::typed((ByteBuf::from(payload.to_vec()),)),
    );
    let back: ByteBuf = invoker.invoke(invocation).await?.into_value()?;
    Ok(back.len())
}

/// The echo service as a user declares it.
#[rpc_core::service(name = "bench.EchoService")]
pub trait EchoService {
    /// Returns `data`.
    async fn echo(&self, data: ByteBuf) -> ByteBuf;
}

/// The user's implementation.
struct EchoImpl;

impl EchoService for EchoImpl {
    async fn echo(&self, data: ByteBuf) -> ByteBuf {
        data
    }
}

/// Serves [`EchoService`] with `Provider` (no registry) on `127.0.0.1:port`: provider filters,
/// skeleton and exchange at their defaults. Returns the bound port and the running provider.
pub async fn start_service(port: u16) -> BoxResult<(u16, RunningProvider)> {
    let mut builder = Provider::builder();
    if let Some(us) = INPLACE_BUDGET.get() {
        builder = builder.param(keys::INPLACE_BUDGET, us)?;
    }
    if let Some(list) = FILTER.get() {
        builder = builder.param(keys::FILTER, list)?;
    }
    let provider = builder
        .without_env()
        .no_registry()
        .application("bench-provider")
        .host("127.0.0.1")
        .protocol("dubbo", port)
        .service(EchoServiceServer::new(EchoImpl))
        .start()
        .await?;
    let port = provider.port().ok_or("the provider reports no port")?;
    Ok((port, provider))
}

/// A generated [`EchoService`] client from `Consumer`, pointed at `addr` with a direct `url`:
/// proxy, cluster, balancer and consumer filters at their defaults.
pub async fn connect_service(addr: SocketAddr) -> BoxResult<EchoServiceClient> {
    let reference = ServiceConfig::default().param(keys::URL, format!("dubbo://{addr}"));
    let consumer = Consumer::builder()
        .without_env()
        .no_registry()
        .application("bench-consumer")
        .reference_config(
            "bench.EchoService",
            match FILTER.get() {
                Some(list) => reference.param(keys::FILTER, list),
                None => reference,
            },
        )
        .build()
        .await?;
    Ok(consumer.reference::<EchoServiceClient>().await?)
}

/// One call through the generated client.
pub async fn call_service(client: &EchoServiceClient, payload: &[u8]) -> BoxResult<usize> {
    Ok(client.echo(ByteBuf::from(payload.to_vec())).await?.len())
}

/// Where the `rpc-tls` server and client find the certificates: made once by whichever
/// process comes first (the server, under `rpc-bench run`), kept for later runs.
fn tls_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("rpc-bench-tls")
}

/// Makes a CA and a server certificate for `127.0.0.1` in [`tls_dir`] unless they exist.
fn ensure_pki() -> BoxResult<std::path::PathBuf> {
    let dir = tls_dir();
    if dir.join("ca.pem").exists() {
        return Ok(dir);
    }
    let ca_key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".into()])?.signed_by(&key, &ca, &ca_key)?;
    // Written beside, then renamed: a process that looks meanwhile sees all or nothing.
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    std::fs::write(tmp.join("server.pem"), cert.pem())?;
    std::fs::write(tmp.join("server.key"), key.serialize_pem())?;
    std::fs::write(tmp.join("ca.pem"), ca.pem())?;
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process made them first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(dir)
}

/// The `rpc` server over TLS.
pub async fn start_tls_server(port: u16) -> BoxResult<(u16, Box<dyn Exporter>)> {
    let dir = ensure_pki()?;
    let protocol = extension::get::<dyn Protocol>("dubbo")?;
    let url = provider_url(url(&format!("127.0.0.1:{port}"), None)?)
        .with_param(keys::TLS, true)
        .with_param(keys::TLS_CERT, dir.join("server.pem").display())
        .with_param(keys::TLS_KEY, dir.join("server.key").display());
    let exporter = protocol
        .export(url.clone(), Arc::new(EchoInvoker { url }))
        .await?;
    let port = exporter
        .url()
        .port()
        .filter(|p| *p != 0)
        .ok_or("the exporter's URL does not carry the bound port")?;
    Ok((port, exporter))
}

/// A TLS reference to the `rpc-tls` server at `addr`.
pub async fn connect_tls(addr: SocketAddr) -> BoxResult<Arc<dyn Invoker>> {
    let dir = ensure_pki()?;
    let protocol = extension::get::<dyn Protocol>("dubbo")?;
    let url = url(&addr.to_string(), None)?
        .with_param(keys::TLS, true)
        .with_param(keys::TLS_CA, dir.join("ca.pem").display());
    Ok(protocol.refer(url).await?)
}
