//! TLS (rustls over tokio): `tls=true` on a provider's URL. The `tcp` transporter (and so
//! `dubbo`) serves it from its own accept loop; protocols with their own
//! server (`tri`) use [`ServerTls`] and [`handshake_client`], so certificates, reloads and
//! errors are the same for all.
//!
//! # Keys
//!
//! | where | keys |
//! |---|---|
//! | provider | `tls=true`, `tls.cert` (its certificate chain), `tls.key` (its private key); `tls.ca` to require client certificates signed by that CA (mTLS); `tls.reload` |
//! | consumer | `tls.ca` (the CA that signed the providers' certificates), `tls.cert` and `tls.key` for a client certificate (mTLS), `tls.server.name` |
//!
//! `tls.cert`, `tls.key` and `tls.ca` are PEM: a file path, or the PEM text itself (a value
//! that starts with `-----BEGIN`), so keys can come from the environment
//! (`RPC_PARAM_TLS_KEY="$(cat key.pem)"`) as well as from files named in the configuration.
//!
//! # How a consumer knows
//!
//! The provider's URL in the registry carries `tls=true` (its file paths and PEM values are
//! left out), and a consumer connects with TLS exactly to the providers that advertise it: a
//! consumer's own `tls` setting does not override a provider's, so plaintext and TLS
//! providers of one service coexist. Consumers verify the provider's certificate against
//! `tls.ca` for the name in `tls.server.name`, by default the host in the provider's URL (an
//! IP address is checked against the certificate's IP addresses).
//!
//! # Reload without restart
//!
//! A provider checks its certificate, key and CA files every `tls.reload` ms (default
//! 10000; 0 = never) and, when one changed, loads them: connections accepted from then on use
//! the new ones, open connections keep theirs. A set of files that does not load (a
//! half-written key) is logged and the previous one stays. Consumers read their files at
//! each connection, so a renewed client certificate is used from the next connection on.
//!
//! # Handshakes
//!
//! The provider's handshakes run off the accept loop, at most [`MAX_HANDSHAKES`] at once,
//! each within `frame.timeout` (a client that stalls in its handshake is cut off like one
//! that stalls in a frame); a failed one is logged at debug level with the peer and the
//! reason and closes that connection only. A consumer's handshake is bounded by
//! `connect.timeout`; its failure (a provider certificate not signed by `tls.ca`, a name that
//! does not match) fails the connection with an error naming the cause and the key to check.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{Acceptor, Connection};
use crate::config::keys;
use crate::error::{ErrorKind, Result, RpcError};
use crate::url::Url;

/// Handshakes a provider runs at once; further connections wait in the listen backlog.
pub const MAX_HANDSHAKES: usize = 256;

/// How often a provider looks at its certificate files when `tls.reload` is not set.
pub const DEFAULT_RELOAD_MS: u64 = 10_000;

/// The keys that name local TLS material: never published in a registry.
pub const LOCAL_KEYS: &[&str] = &[
    keys::TLS_CERT,
    keys::TLS_KEY,
    keys::TLS_CA,
    keys::TLS_RELOAD,
];

/// Whether `url` asks for TLS (`tls=true`).
pub fn enabled(url: &Url) -> Result<bool> {
    url.param_as(keys::TLS, false)
}

/// A PEM value: a file or the text itself.
enum Pem {
    File(PathBuf),
    Text(String),
}

fn pem_of(url: &Url, key: &str) -> Option<Pem> {
    let v = url.param(key)?.trim();
    if v.is_empty() {
        None
    } else if v.starts_with("-----BEGIN") {
        Some(Pem::Text(v.to_string()))
    } else {
        Some(Pem::File(PathBuf::from(v)))
    }
}

/// Larger PEM files than this are refused (a misconfigured path to a big file).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

fn read_pem(key: &str, pem: &Pem) -> Result<Vec<u8>> {
    match pem {
        Pem::Text(t) => Ok(t.as_bytes().to_vec()),
        Pem::File(path) => {
            let meta = std::fs::metadata(path).map_err(|e| {
                RpcError::config(format!("cannot read {key} file '{}': {e}", path.display()))
            })?;
            if meta.len() > MAX_PEM_BYTES {
                return Err(RpcError::config(format!(
                    "{key} file '{}' is {} bytes; a PEM file over {MAX_PEM_BYTES} bytes is refused",
                    path.display(),
                    meta.len()
                )));
            }
            std::fs::read(path).map_err(|e| {
                RpcError::config(format!("cannot read {key} file '{}': {e}", path.display()))
            })
        }
    }
}

fn certs(url: &Url, key: &str) -> Result<Option<Vec<CertificateDer<'static>>>> {
    let Some(pem) = pem_of(url, key) else {
        return Ok(None);
    };
    let bytes = read_pem(key, &pem)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| RpcError::config(format!("{key}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(RpcError::config(format!(
            "{key} holds no certificate (expected PEM blocks 'BEGIN CERTIFICATE')"
        )));
    }
    Ok(Some(certs))
}

fn private_key(url: &Url) -> Result<Option<PrivateKeyDer<'static>>> {
    let Some(pem) = pem_of(url, keys::TLS_KEY) else {
        return Ok(None);
    };
    let bytes = read_pem(keys::TLS_KEY, &pem)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map(Some)
        .map_err(|e| RpcError::config(format!("tls.key holds no usable PEM private key: {e}")))
}

fn roots(url: &Url) -> Result<Option<RootCertStore>> {
    let Some(cas) = certs(url, keys::TLS_CA)? else {
        return Ok(None);
    };
    let mut store = RootCertStore::empty();
    for ca in cas {
        store
            .add(ca)
            .map_err(|e| RpcError::config(format!("tls.ca: not a usable CA certificate: {e}")))?;
    }
    Ok(Some(store))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config_error(e: rustls::Error) -> RpcError {
    RpcError::config(format!("TLS configuration: {e}"))
}

/// The provider's TLS settings from `url` (checked: every file read and parsed).
pub fn server_config(url: &Url) -> Result<Arc<rustls::ServerConfig>> {
    let (Some(chain), Some(key)) = (certs(url, keys::TLS_CERT)?, private_key(url)?) else {
        return Err(RpcError::config(
            "tls=true on a provider needs tls.cert (its certificate chain) and tls.key (its private key)",
        ));
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?;
    let builder = match roots(url)? {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| RpcError::config(format!("tls.ca: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        RpcError::config(format!(
            "tls.cert and tls.key do not make a usable certificate: {e}"
        ))
    })?;
    Ok(Arc::new(config))
}

/// The consumer's TLS settings from `url` (the provider URL merged with the reference's).
pub fn client_config(url: &Url) -> Result<Arc<rustls::ClientConfig>> {
    let Some(roots) = roots(url)? else {
        return Err(RpcError::config(format!(
            "the provider at {} serves TLS (tls=true): set tls.ca to the CA that signed its certificate",
            url.address()
        )));
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?
        .with_root_certificates(roots);
    let config = match (certs(url, keys::TLS_CERT)?, private_key(url)?) {
        (Some(chain), Some(key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            RpcError::config(format!(
                "tls.cert and tls.key do not make a usable client certificate: {e}"
            ))
        })?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(RpcError::config(
                "a client certificate needs both tls.cert and tls.key",
            ))
        }
    };
    Ok(Arc::new(config))
}

/// What a consumer's TLS identity is made of, for telling shared clients apart.
pub fn client_identity(url: &Url) -> String {
    let part = |k: &str| url.param(k).unwrap_or("");
    let text = format!(
        "{}|{}|{}|{}",
        part(keys::TLS_CA),
        part(keys::TLS_CERT),
        part(keys::TLS_KEY),
        part(keys::TLS_SERVER_NAME)
    );
    format!("tls:{:x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

fn server_name(url: &Url) -> Result<ServerName<'static>> {
    let name = url
        .param(keys::TLS_SERVER_NAME)
        .filter(|s| !s.is_empty())
        .unwrap_or(url.host());
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string())
        .map_err(|e| RpcError::config(format!("'{name}' is not a TLS server name: {e}")))
}

/// Explains a handshake failure with what to check.
fn handshake_error(addr: &str, e: &std::io::Error) -> RpcError {
    let detail = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map_or_else(|| e.to_string(), ToString::to_string);
    let hint = if detail.contains("UnknownIssuer") || detail.contains("BadSignature") {
        "; the provider's certificate is not signed by a CA in tls.ca"
    } else if detail.contains("NotValidForName") {
        "; the provider's certificate does not carry its host name (set tls.server.name to one it carries)"
    } else if detail.contains("Expired") || detail.contains("NotValidYet") {
        "; the provider's certificate is outside its validity period"
    } else if detail.contains("CertificateRequired") || detail.contains("BadCertificate") {
        "; the provider requires a client certificate signed by its CA (tls.cert, tls.key)"
    } else {
        ""
    };
    RpcError::new(
        ErrorKind::Network,
        format!("TLS handshake with {addr} failed: {detail}{hint}"),
    )
}

/// Runs a consumer's TLS handshake on `stream` to the provider `url` (the provider URL
/// merged with the reference's: `tls.ca`, a client certificate, `tls.server.name`), within
/// `within`, offering the application protocols `alpn` (`h2` for HTTP/2; none for `dubbo`).
/// Used by every protocol that speaks TLS, so they check certificates the same way and fail
/// with the same errors.
pub async fn handshake_client(
    url: &Url,
    stream: TcpStream,
    addr: &str,
    within: Duration,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = client_config(url)?;
    if !alpn.is_empty() {
        let mut c = (*config).clone();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config = Arc::new(c);
    }
    let name = server_name(url)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    tokio::time::timeout(within, connector.connect(name, stream))
        .await
        .map_err(|_| {
            RpcError::new(
                ErrorKind::Network,
                format!(
                    "TLS handshake with {addr} took longer than {} ms",
                    within.as_millis()
                ),
            )
        })?
        .map_err(|e| handshake_error(addr, &e))
}

/// Runs the consumer's handshake on `stream` and splits the result.
pub(crate) async fn connect(
    url: &Url,
    stream: TcpStream,
    addr: String,
    within: Duration,
) -> Result<Connection> {
    let tls = handshake_client(url, stream, &addr, within, &[]).await?;
    let (r, w) = tokio::io::split(tls);
    Ok(Connection {
        reader: Box::new(r),
        writer: Box::new(w),
        peer: addr,
    })
}

/// A fingerprint of the provider's PEM files (modification time and length of each).
fn files_fingerprint(url: &Url) -> Vec<Option<(SystemTime, u64)>> {
    [keys::TLS_CERT, keys::TLS_KEY, keys::TLS_CA]
        .iter()
        .filter_map(|k| match pem_of(url, k) {
            Some(Pem::File(p)) => Some(
                std::fs::metadata(&p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len()))),
            ),
            _ => None,
        })
        .collect()
}

/// The provider's current TLS settings, replaced when its files change.
struct Current {
    config: ArcSwap<rustls::ServerConfig>,
    /// The application protocols offered (ALPN), kept across reloads.
    alpn: Vec<Vec<u8>>,
}

impl Current {
    /// The settings of `url` with this provider's ALPN protocols.
    fn load(&self, url: &Url) -> Result<Arc<rustls::ServerConfig>> {
        with_alpn(server_config(url)?, &self.alpn)
    }
}

fn with_alpn(
    config: Arc<rustls::ServerConfig>,
    alpn: &[Vec<u8>],
) -> Result<Arc<rustls::ServerConfig>> {
    if alpn.is_empty() {
        return Ok(config);
    }
    let mut c = (*config).clone();
    c.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(c))
}

/// A provider's TLS settings kept current: loaded (and checked) when it starts, then loaded
/// again from its files every `tls.reload` ms when they changed. What the `tcp` transporter
/// serves `dubbo` with, and what protocols that run their own server (`tri`) use.
pub struct ServerTls {
    current: Arc<Current>,
    reload: Option<JoinHandle<()>>,
}

impl ServerTls {
    /// The settings of `url` (`tls.cert`, `tls.key`, `tls.ca` for mTLS, `tls.reload`),
    /// offering the application protocols `alpn` (`h2` for HTTP/2; none for `dubbo`). Fails
    /// now when they do not load, so an export with bad certificates fails at start.
    pub fn start(url: &Url, alpn: &[&[u8]]) -> Result<ServerTls> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let current = Arc::new(Current {
            config: ArcSwap::new(with_alpn(server_config(url)?, &alpn)?),
            alpn,
        });
        let every: u64 = url.param_as(keys::TLS_RELOAD, DEFAULT_RELOAD_MS)?;
        // The reload task holds only a weak reference: it ends with this value.
        let reload = (every > 0).then(|| {
            tokio::spawn(reload_loop(
                Arc::downgrade(&current),
                url.clone(),
                Duration::from_millis(every),
            ))
        });
        Ok(ServerTls { current, reload })
    }

    /// An acceptor with the settings in force now (a connection keeps the ones it started
    /// with).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.config.load_full())
    }
}

impl Drop for ServerTls {
    fn drop(&mut self) {
        if let Some(t) = &self.reload {
            t.abort();
        }
    }
}

async fn reload_loop(current: Weak<Current>, url: Url, every: Duration) {
    let mut seen = files_fingerprint(&url);
    loop {
        tokio::time::sleep(every).await;
        let Some(current) = current.upgrade() else {
            return;
        };
        let now = files_fingerprint(&url);
        if now == seen {
            continue;
        }
        match current.load(&url) {
            Ok(config) => {
                current.config.store(config);
                seen = now;
                tracing::info!(address = %url.address(), "TLS certificates reloaded");
            }
            Err(e) => {
                // Perhaps half written: keep the old ones and try again next time.
                tracing::warn!(address = %url.address(), error = %e, "TLS certificates changed but do not load; keeping the previous ones");
            }
        }
    }
}

/// A TLS listener: [`Acceptor::accept`] accepts TCP connections, hands each to a handshake
/// task of its own, and returns the first connection whose handshake completed. The
/// listening socket belongs to this value: dropping it (the server closing) releases the port
/// at once.
pub(crate) struct TlsAcceptor {
    local: String,
    listener: TcpListener,
    tls: ServerTls,
    handshakes: Arc<Semaphore>,
    within: Duration,
    ready_tx: mpsc::Sender<Connection>,
    ready_rx: Mutex<mpsc::Receiver<Connection>>,
}

impl TlsAcceptor {
    /// Serves TLS on `listener` with the settings of `url` (checked now: an export with bad
    /// certificates fails at start).
    pub(crate) fn new(listener: TcpListener, url: &Url, local: String) -> Result<Self> {
        let tls = ServerTls::start(url, &[])?;
        let within = Duration::from_millis(
            url.param_as(
                keys::FRAME_TIMEOUT,
                crate::exchange::guard::DEFAULT_FRAME_TIMEOUT_MS,
            )?
            .max(1),
        );
        let (ready_tx, ready_rx) = mpsc::channel(64);
        Ok(TlsAcceptor {
            local,
            listener,
            tls,
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            within,
            ready_tx,
            ready_rx: Mutex::new(ready_rx),
        })
    }

    /// Runs the handshake of `stream` on a task of its own; a completed one is queued for
    /// [`Acceptor::accept`].
    fn handshake(&self, stream: TcpStream, peer: String, permit: OwnedSemaphorePermit) {
        let _ = stream.set_nodelay(true);
        let acceptor = self.tls.acceptor();
        let ready = self.ready_tx.clone();
        let within = self.within;
        tokio::spawn(async move {
            match tokio::time::timeout(within, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let (r, w) = tokio::io::split(tls);
                    let conn = Connection {
                        reader: Box::new(r),
                        writer: Box::new(w),
                        peer,
                    };
                    // The handshake slot is free again once the connection is handed over.
                    drop(permit);
                    let _ = ready.send(conn).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed; connection closed");
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not completed within frame.timeout; connection closed");
                }
            }
        });
    }
}

#[async_trait::async_trait]
impl Acceptor for TlsAcceptor {
    async fn accept(&self) -> Result<Connection> {
        let mut ready = self.ready_rx.lock().await;
        let mut permit: Option<OwnedSemaphorePermit> = None;
        loop {
            if permit.is_none() {
                permit = self.handshakes.clone().try_acquire_owned().ok();
            }
            tokio::select! {
                biased;
                conn = ready.recv() => {
                    return conn.ok_or_else(|| RpcError::network("TLS listener stopped"));
                }
                p = self.handshakes.clone().acquire_owned(), if permit.is_none() => {
                    permit = p.ok();
                }
                accepted = self.listener.accept(), if permit.is_some() => {
                    let (stream, peer) = accepted
                        .map_err(|e| RpcError::network(format!("accept failed: {e}")).with_source(e))?;
                    if let Some(p) = permit.take() {
                        self.handshake(stream, peer.to_string(), p);
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> Result<String> {
        Ok(self.local.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Tcp, Transporter};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA and a certificate it signed for `127.0.0.1` and `localhost`, as PEM.
    struct Pki {
        ca: String,
        cert: String,
        key: String,
        issuer: (rcgen::Certificate, rcgen::KeyPair),
    }

    fn pki(name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        let ca = params.self_signed(&ca_key).expect("ca");
        let (cert, key) = leaf(&ca, &ca_key);
        Pki {
            ca: ca.pem(),
            cert,
            key,
            issuer: (ca, ca_key),
        }
    }

    fn leaf(ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params");
        let cert = params.signed_by(&key, ca, ca_key).expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    fn enc(pem: &str) -> String {
        percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn url(q: &str) -> Url {
        Url::parse(&format!("tcp://127.0.0.1:0?tls=true&{q}")).expect("url")
    }

    async fn ping(client: &Url) -> Result<[u8; 4]> {
        let mut c = Tcp.connect(client).await?;
        c.writer
            .write_all(b"ping")
            .await
            .map_err(|e| RpcError::network(format!("write: {e}")).with_source(e))?;
        c.writer
            .flush()
            .await
            .map_err(|e| RpcError::network(format!("flush: {e}")).with_source(e))?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), c.reader.read_exact(&mut buf))
            .await
            .map_err(|_| RpcError::timeout("no answer"))?
            .map_err(|e| RpcError::network(format!("read failed: {e}")).with_source(e))?;
        Ok(buf)
    }

    /// Serves `pong` to every `ping` until dropped.
    async fn pong_server(server: &Url) -> (String, JoinHandle<()>) {
        let acceptor = Tcp.bind(server).await.expect("bind");
        let addr = acceptor.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok(mut c) = acceptor.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    if c.reader.read_exact(&mut buf).await.is_ok() {
                        let _ = c.writer.write_all(b"pong").await;
                        let _ = c.writer.flush().await;
                    }
                });
            }
        });
        (addr, task)
    }

    fn client_at(addr: &str, q: &str) -> Url {
        Url::parse(&format!("tcp://{addr}?tls=true&{q}")).expect("url")
    }

    #[tokio::test]
    async fn bytes_cross_a_tls_connection_and_a_wrong_ca_is_refused_clearly() {
        let p = pki("good");
        let server = url(&format!(
            "tls.cert={}&tls.key={}",
            enc(&p.cert),
            enc(&p.key)
        ));
        let (addr, task) = pong_server(&server).await;
        let ok = client_at(&addr, &format!("tls.ca={}", enc(&p.ca)));
        assert_eq!(&ping(&ok).await.expect("over TLS"), b"pong");

        let other = pki("other");
        let wrong = client_at(&addr, &format!("tls.ca={}", enc(&other.ca)));
        let e = ping(&wrong).await.expect_err("wrong CA");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert!(
            e.message().contains("TLS handshake with")
                && e.message().contains("not signed by a CA in tls.ca"),
            "{e}"
        );
        let none = client_at(&addr, "");
        let e = ping(&none).await.expect_err("no CA");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("set tls.ca"), "{e}");
        // A plaintext client gets no answer from a TLS port (at most a TLS alert).
        let plain = Url::parse(&format!("tcp://{addr}")).expect("url");
        assert!(ping(&plain).await.map_or(true, |b| &b != b"pong"));
        task.abort();
    }

    #[tokio::test]
    async fn mutual_tls_refuses_a_client_without_a_certificate() {
        let server_pki = pki("server");
        let client_pki = pki("client");
        let server = url(&format!(
            "tls.cert={}&tls.key={}&tls.ca={}",
            enc(&server_pki.cert),
            enc(&server_pki.key),
            enc(&client_pki.ca)
        ));
        let (addr, task) = pong_server(&server).await;
        let with_cert = client_at(
            &addr,
            &format!(
                "tls.ca={}&tls.cert={}&tls.key={}",
                enc(&server_pki.ca),
                enc(&client_pki.cert),
                enc(&client_pki.key)
            ),
        );
        assert_eq!(&ping(&with_cert).await.expect("mTLS"), b"pong");
        let without = client_at(&addr, &format!("tls.ca={}", enc(&server_pki.ca)));
        let e = ping(&without).await.expect_err("refused");
        assert!(e.message().contains("CertificateRequired"), "{e}");
        // A certificate from another CA is refused too.
        let stranger = pki("stranger");
        let foreign = client_at(
            &addr,
            &format!(
                "tls.ca={}&tls.cert={}&tls.key={}",
                enc(&server_pki.ca),
                enc(&stranger.cert),
                enc(&stranger.key)
            ),
        );
        assert!(
            ping(&foreign).await.is_err(),
            "a foreign client certificate"
        );
        task.abort();
    }

    #[tokio::test]
    async fn changed_certificate_files_are_used_without_a_restart() {
        let dir = std::env::temp_dir().join(format!(
            "rpc-tls-reload-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let first = pki("first");
        std::fs::write(&cert, &first.cert).expect("write");
        std::fs::write(&key, &first.key).expect("write");
        let server = url(&format!(
            "tls.cert={}&tls.key={}&tls.reload=50",
            cert.display(),
            key.display()
        ));
        let (addr, task) = pong_server(&server).await;
        let trusts_first = client_at(&addr, &format!("tls.ca={}", enc(&first.ca)));
        ping(&trusts_first).await.expect("first certificate");

        // A half-written replacement does not load: the old certificate stays.
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\ngarbage").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        ping(&trusts_first).await.expect("still the first");

        let second = pki("second");
        std::fs::write(&cert, &second.cert).expect("write");
        std::fs::write(&key, &second.key).expect("write");
        let trusts_second = client_at(&addr, &format!("tls.ca={}", enc(&second.ca)));
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while ping(&trusts_second).await.is_err() {
            assert!(tokio::time::Instant::now() < until, "never reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ping(&trusts_first).await.is_err(), "the old one is gone");
        // A renewed leaf of the same CA is taken up too.
        let (c2, k2) = leaf(&second.issuer.0, &second.issuer.1);
        std::fs::write(&cert, &c2).expect("write");
        std::fs::write(&key, &k2).expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        ping(&trusts_second).await.expect("renewed leaf");
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn keys_can_come_from_the_environment_as_pem_text() {
        let p = pki("env");
        let cfg = crate::config::Config::from_env_vars([
            ("RPC_PARAM_TLS".to_string(), "true".to_string()),
            ("RPC_PARAM_TLS_CERT".to_string(), p.cert.clone()),
            ("RPC_PARAM_TLS_KEY".to_string(), p.key.clone()),
            ("RPC_PARAM_TLS_RELOAD".to_string(), "0".to_string()),
        ])
        .expect("variables");
        let service = cfg.service_url("S", 0, &[]);
        assert_eq!(service.param(keys::TLS_KEY), Some(p.key.as_str()));
        let (addr, task) = pong_server(&service).await;
        let client = client_at(&addr, &format!("tls.ca={}", enc(&p.ca)));
        assert_eq!(&ping(&client).await.expect("over TLS"), b"pong");
        task.abort();
        let Err(e) =
            crate::config::Config::from_env_vars([("RPC_PARAM_TLS".to_string(), "on".to_string())])
        else {
            panic!("'on' is not a bool")
        };
        assert!(e.message().contains("RPC_PARAM_TLS"), "{e}");
    }

    #[tokio::test]
    async fn a_stalled_handshake_is_cut_off_and_dropping_the_acceptor_frees_the_port() {
        let p = pki("stall");
        let server = url(&format!(
            "tls.cert={}&tls.key={}&frame.timeout=200",
            enc(&p.cert),
            enc(&p.key)
        ));
        let acceptor = Tcp.bind(&server).await.expect("bind");
        let addr = acceptor.local_addr().expect("addr");
        let serving = tokio::spawn(async move {
            let _ = acceptor.accept().await;
        });
        // A peer that connects and never says hello.
        let mut mute = TcpStream::connect(&addr).await.expect("connect");
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match mute.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // an alert, perhaps
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "cut off within frame.timeout");
        serving.abort();
        let _ = serving.await;
        // The acceptor (and its socket) went with the task: the port is free at once.
        std::net::TcpListener::bind(&addr).expect("port released");
    }

    #[tokio::test]
    async fn bad_settings_are_config_errors_naming_the_key() {
        let e = Tcp.bind(&url("")).await.err().expect("no cert");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("needs tls.cert"), "{e}");
        let e = Tcp
            .bind(&url(
                "tls.cert=/nonexistent/c.pem&tls.key=/nonexistent/k.pem",
            ))
            .await
            .err()
            .expect("missing file");
        assert!(
            e.message()
                .contains("cannot read tls.cert file '/nonexistent/c.pem'"),
            "{e}"
        );
        let p = pki("x");
        let e = Tcp
            .bind(&url(&format!(
                "tls.cert={}&tls.key={}",
                enc("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----"),
                enc(&p.key)
            )))
            .await
            .err()
            .expect("bad pem");
        assert!(e.message().contains("tls.cert"), "{e}");
        let other = pki("y");
        let e = Tcp
            .bind(&url(&format!(
                "tls.cert={}&tls.key={}",
                enc(&p.cert),
                enc(&other.key)
            )))
            .await
            .err()
            .expect("mismatched pair");
        assert!(e.message().contains("tls.cert and tls.key"), "{e}");
        let e = Tcp.bind(&url("tls=yes")).await.err().expect("not a bool");
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
