//! `rpcctl console`: the fleet in a browser. One web application served from this binary
//! (HTML, script and style compiled in; nothing is fetched from elsewhere at run time) over a
//! small JSON API:
//!
//! | request | what it does |
//! |---|---|
//! | `GET /api/info` | the registry and whether the console accepts writes |
//! | `GET /api/services` | services with their providers (online and offline) and consumers |
//! | `GET /api/methods?interface=I` | the methods of `I`, as its providers describe them |
//! | `GET /api/metrics?provider=A` | the call counters and latency buckets of provider `A` |
//! | `GET /api/rules?interface=I` | the override and routing rules and rule documents in force |
//! | `POST /api/provider` | `{address, online}`: take a provider out of the registry or back |
//! | `POST /api/weight` | `{interface, address, weight}`: a weight override |
//! | `POST /api/override` | `{interface, settings, address?}`: an override such as `timeout=3000` |
//! | `POST /api/route` | `{interface, rule, force?, priority?}`: a condition rule |
//! | `POST /api/rule/remove` | `{interface, url}`: take a rule away |
//! | `POST /api/invoke` | `{interface, method, args, version?, group?}`: a test call with JSON arguments |
//!
//! Every `POST` needs the admin token the console was started with (`--admin-token` or
//! `RPC_CONSOLE_TOKEN`) in the `x-admin-token` header; without one the console is read-only.
//! A test call counts as a write: it can change state at the provider. The console answers
//! only requests addressed to the address it listens on (so a page of another site that
//! points a name at 127.0.0.1 cannot read it), with bodies up to 16 KiB, and sends a content
//! security policy that lets the page load nothing but itself. Providers are reached only at
//! addresses the registry listed, never at an address a request names.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rpc_core::bootstrap::admin::AdminClient;
use rpc_core::config::keys;
use rpc_core::registry::config_center;
use rpc_core::registry::{Category, Registry};
use rpc_core::Url;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::rules::{self, Change};
use crate::summary;
use crate::{admin_at, call_json, connect, providers_of, Cli, Fallible, GenericCall, Target};

/// The largest request body the console reads.
const MAX_BODY: usize = 16 * 1024;
/// Providers remembered after they left the registry (so they can be put back online).
const MAX_REMEMBERED: usize = 10_000;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the console knows and keeps between requests.
struct Console {
    registry: Arc<dyn Registry>,
    registry_text: String,
    token: Option<String>,
    /// The providers' `admin.token`, sent with every call to their admin service.
    provider_token: Option<String>,
    timeout_ms: u64,
    /// `host:port` values the console answers to.
    hosts: Vec<String>,
    /// Admin clients by provider address, made once.
    admins: tokio::sync::Mutex<HashMap<String, AdminClient>>,
    /// Every provider seen in the registry: interface → address → its last URL.
    seen: Mutex<BTreeMap<String, BTreeMap<String, Url>>>,
}

/// An answer that is not a success: a status and a message the page shows.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn failed(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_GATEWAY, msg.into())
}

/// Runs the console until the process is stopped.
pub(crate) async fn serve(cli: &Cli, listen: &str, token: Option<String>) -> Fallible<()> {
    let registry = connect(cli).await?;
    let addr: SocketAddr = listen.parse().map_err(|_| {
        format!("--listen {listen:?} is not an address\n  try: --listen 127.0.0.1:8088")
    })?;
    let token = token.filter(|t| !t.is_empty());
    if let Some(t) = &token {
        if t.len() < 8 {
            return Err("the admin token is shorter than 8 characters".into());
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let mut hosts = vec![bound.to_string(), format!("localhost:{}", bound.port())];
    if bound.ip().is_loopback() {
        hosts.push(format!("127.0.0.1:{}", bound.port()));
    }
    let state = Arc::new(Console {
        registry,
        registry_text: cli.registry.clone().unwrap_or_default(),
        token: token.clone(),
        provider_token: cli.provider_admin_token.clone(),
        timeout_ms: cli.timeout,
        hosts,
        admins: Default::default(),
        seen: Default::default(),
    });
    let app = router(state);
    say!(
        "console listening on http://{bound}/ ({})",
        if token.is_some() {
            "writes need the admin token"
        } else {
            "read-only: start with --admin-token to allow writes"
        }
    );
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("the console stopped: {e}"))
}

fn router(state: Arc<Console>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/info", get(info))
        .route("/api/services", get(services))
        .route("/api/methods", get(methods))
        .route("/api/metrics", get(metrics))
        .route("/api/rules", get(rules_of))
        .route("/api/provider", post(provider_state))
        .route("/api/weight", post(weight))
        .route("/api/override", post(override_rule))
        .route("/api/route", post(route))
        .route("/api/rule/remove", post(remove_rule))
        .route("/api/invoke", post(invoke))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Refuses requests addressed to another host name and adds the security headers.
async fn guard(
    State(console): State<Arc<Console>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !console.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return ApiError(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this console answers only to {}", console.hosts[0]),
        )
        .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Equal strings in a time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Console {
    /// Refuses a write without the right token.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "this console is read-only: start it with --admin-token to allow changes".into(),
            ));
        };
        match headers.get("x-admin-token").and_then(|v| v.to_str().ok()) {
            Some(given) if same_secret(given, token) => Ok(()),
            Some(_) => Err(ApiError(
                StatusCode::FORBIDDEN,
                "the admin token is wrong".into(),
            )),
            None => Err(ApiError(
                StatusCode::FORBIDDEN,
                "this change needs the admin token: enter it at the top of the page".into(),
            )),
        }
    }

    /// The body of a change request, after its token is checked.
    fn accept<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        bytes: &[u8],
    ) -> Result<T, ApiError> {
        self.authorize(headers)?;
        body(bytes)
    }

    /// The providers of `interface` in the registry now, remembered for later.
    async fn online(&self, interface: &str) -> Result<Vec<Url>, ApiError> {
        let urls = providers_of(&*self.registry, interface)
            .await
            .map_err(failed)?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut count: usize = seen.values().map(BTreeMap::len).sum();
        for u in &urls {
            let of = seen.entry(interface.to_string()).or_default();
            if !of.contains_key(&u.address()) {
                if count >= MAX_REMEMBERED {
                    continue;
                }
                count += 1;
            }
            of.insert(u.address(), u.clone());
        }
        Ok(urls)
    }

    /// Whether the registry listed a provider at `address` (of any service).
    fn known(&self, address: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.values().any(|of| of.contains_key(address))
    }

    async fn admin(&self, address: &str) -> Result<AdminClient, ApiError> {
        if !self.known(address) {
            return Err(bad(format!(
                "{address} is not a provider the registry listed"
            )));
        }
        let mut admins = self.admins.lock().await;
        if let Some(a) = admins.get(address) {
            return Ok(a.clone());
        }
        let client = admin_at(address, self.timeout_ms, self.provider_token.as_deref())
            .await
            .map_err(failed)?;
        admins.insert(address.to_string(), client.clone());
        Ok(client)
    }
}

async fn info(State(console): State<Arc<Console>>) -> ApiResult {
    Ok(Json(json!({
        "registry": console.registry_text,
        "writable": console.token.is_some(),
    })))
}

/// A provider as the page lists it.
fn provider_json(url: &Url, online: bool) -> Value {
    let p = |k: &str, d: &str| url.param(k).unwrap_or(d).to_string();
    json!({
        "address": url.address(),
        "version": p(keys::VERSION, ""),
        "group": p(keys::GROUP, ""),
        "zone": p(keys::ZONE, ""),
        "weight": p(keys::WEIGHT, "100"),
        "protocol": url.protocol(),
        "serialization": url.param(keys::NATIVE_SERIALIZATION).or(url.param(keys::SERIALIZATION)).unwrap_or(""),
        "application": p(keys::APPLICATION, ""),
        "state": if online { "online" } else { "offline" },
    })
}

async fn services(State(console): State<Arc<Console>>) -> ApiResult {
    let mut names = console.registry.services().await.map_err(|e| {
        failed(format!(
            "cannot list the services of {}: {e}",
            console.registry_text
        ))
    })?;
    {
        let seen = console.seen.lock().unwrap_or_else(|e| e.into_inner());
        names.extend(seen.keys().cloned());
    }
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for interface in names {
        let online = console.online(&interface).await?;
        let mut providers: Vec<Value> = online.iter().map(|u| provider_json(u, true)).collect();
        {
            let seen = console.seen.lock().unwrap_or_else(|e| e.into_inner());
            for (addr, url) in seen.get(&interface).into_iter().flatten() {
                if !online.iter().any(|u| u.address() == *addr) {
                    providers.push(provider_json(url, false));
                }
            }
        }
        let consumers: Vec<Value> = rpc_core::registry::rules::read_lists(
            &*console.registry,
            &interface,
            &[Category::Consumers],
            std::time::Duration::from_millis(console.timeout_ms),
        )
        .await
        .map_err(|e| failed(format!("cannot list the consumers of {interface}: {e}")))?
        .remove(&Category::Consumers)
        .unwrap_or_default()
        .iter()
        .map(|u| {
            json!({
                "address": u.host(),
                "application": u.param(keys::APPLICATION).unwrap_or(""),
                "version": u.param(keys::VERSION).unwrap_or(""),
                "zone": u.param(keys::ZONE).unwrap_or(""),
            })
        })
        .collect();
        out.push(json!({
            "interface": interface,
            "providers": providers,
            "consumers": consumers,
        }));
    }
    Ok(Json(Value::Array(out)))
}

#[derive(Deserialize)]
struct InterfaceQuery {
    interface: String,
}

async fn methods(
    State(console): State<Arc<Console>>,
    Query(q): Query<InterfaceQuery>,
) -> ApiResult {
    let online = console.online(&q.interface).await?;
    let Some(first) = online.first() else {
        return Err(bad(format!("no provider of {} is online", q.interface)));
    };
    let services = console
        .admin(&first.address())
        .await?
        .services()
        .await
        .map_err(|e| {
            failed(format!(
                "cannot ask {} for its methods: {e}",
                first.address()
            ))
        })?;
    let Some(service) = services.into_iter().find(|s| s.interface == q.interface) else {
        return Err(failed(format!(
            "{} does not describe {}",
            first.address(),
            q.interface
        )));
    };
    Ok(Json(json!(service.methods)))
}

#[derive(Deserialize)]
struct ProviderQuery {
    provider: String,
}

async fn metrics(State(console): State<Arc<Console>>, Query(q): Query<ProviderQuery>) -> ApiResult {
    let admin = console.admin(&q.provider).await?;
    let text = admin
        .metrics()
        .await
        .map_err(|e| failed(format!("cannot read the metrics of {}: {e}", q.provider)))?
        .map_err(|e| failed(format!("{} has no metrics: {e}", q.provider)))?;
    let rows: Vec<Value> = summary::parse(&text)
        .into_iter()
        .filter(|((side, _, _), _)| side == "provider")
        .map(|((_, service, method), row)| {
            // JSON has no infinity: the last bucket's bound is sent as null.
            let buckets: Vec<Value> = row
                .buckets
                .iter()
                .map(|(le, n)| json!([le.is_finite().then_some(*le), n]))
                .collect();
            json!({
                "service": service,
                "method": method,
                "calls": row.calls,
                "errors": row.errors,
                "buckets": buckets,
            })
        })
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(Json(json!({ "at_ms": now_ms, "methods": rows })))
}

async fn rules_of(
    State(console): State<Arc<Console>>,
    Query(q): Query<InterfaceQuery>,
) -> ApiResult {
    let reg = &*console.registry;
    let in_force = rules::current_within(reg, &q.interface, console.timeout_ms)
        .await
        .map_err(failed)?;
    let list = |urls: &[Url]| -> Vec<Value> {
        urls.iter()
            .map(|u| json!({ "text": rules::show(u), "url": u.to_string() }))
            .collect()
    };
    let warning = in_force.checked_overrides().err().map(|e| e.to_string());
    let providers = providers_of(reg, &q.interface).await.unwrap_or_default();
    let mut documents = Vec::new();
    for key in rules::document_keys(reg, &q.interface, &providers) {
        let text = match reg.get_config(&key).await {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) if e.kind() == rpc_core::ErrorKind::Config => break,
            Err(e) => return Err(failed(format!("cannot read {key}: {e}"))),
        };
        documents.push(match config_center::to_rule_urls(key.key(), &text) {
            Ok(urls) => json!({ "key": key.to_string(), "rules": list(&urls) }),
            Err(e) => json!({ "key": key.to_string(), "rules": [], "error": e.to_string() }),
        });
    }
    Ok(Json(json!({
        "overrides": list(&in_force.overrides),
        "routes": list(&in_force.routes),
        "warning": warning,
        "documents": documents,
    })))
}

/// Reads a JSON body into `T`, naming what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| bad(format!("the request is not understood: {e}")))
}

fn interface_named(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 512 || name.chars().any(char::is_whitespace) {
        return Err(bad(format!("{name:?} is not an interface name")));
    }
    Ok(name)
}

async fn write_rule(console: &Console, interface: &str, rule: Url, remove: bool) -> ApiResult {
    let change = Change {
        rule,
        remove,
        dry_run: false,
    };
    let done = rules::write(&*console.registry, interface, &change, console.timeout_ms)
        .await
        .map_err(failed)?;
    Ok(Json(json!({ "done": done })))
}

#[derive(Deserialize)]
struct ProviderState {
    address: String,
    online: bool,
}

async fn provider_state(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let req: ProviderState = console.accept(&headers, &bytes)?;
    let admin = console.admin(&req.address).await?;
    let result = if req.online {
        admin.online().await
    } else {
        admin.offline().await
    };
    result
        .map_err(|e| failed(format!("cannot reach {}: {e}", req.address)))?
        .map_err(|e| failed(format!("{} refused: {e}", req.address)))?;
    let state = if req.online { "online" } else { "offline" };
    Ok(Json(
        json!({ "done": format!("{} is now {state}", req.address) }),
    ))
}

#[derive(Deserialize)]
struct WeightRequest {
    interface: String,
    address: String,
    weight: u32,
}

async fn weight(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let req: WeightRequest = console.accept(&headers, &bytes)?;
    let interface = interface_named(&req.interface)?;
    let rule = rpc_core::registry::rules::weight_rule(interface, req.address.trim(), req.weight)
        .map_err(|e| bad(e.to_string()))?;
    write_rule(&console, interface, rule, false).await
}

#[derive(Deserialize)]
struct OverrideRequest {
    interface: String,
    /// `KEY=VALUE` settings separated by spaces or commas.
    settings: String,
    #[serde(default)]
    address: Option<String>,
}

async fn override_rule(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let req: OverrideRequest = console.accept(&headers, &bytes)?;
    let interface = interface_named(&req.interface)?;
    let words: Vec<String> = req
        .settings
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    if words.is_empty() {
        return Err(bad("no setting given; try timeout=3000"));
    }
    let settings = rules::settings(&words).map_err(bad)?;
    let at = req
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let rule = rpc_core::registry::rules::override_rule(interface, at, None, &settings)
        .map_err(|e| bad(e.to_string()))?;
    write_rule(&console, interface, rule, false).await
}

#[derive(Deserialize)]
struct RouteRequest {
    interface: String,
    rule: String,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    priority: i32,
}

async fn route(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let req: RouteRequest = console.accept(&headers, &bytes)?;
    let interface = interface_named(&req.interface)?;
    let rule = rpc_core::registry::rules::route_rule(interface, &req.rule, req.force, req.priority)
        .map_err(|e| bad(e.to_string()))?;
    write_rule(&console, interface, rule, false).await
}

#[derive(Deserialize)]
struct RemoveRequest {
    interface: String,
    url: String,
}

async fn remove_rule(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let req: RemoveRequest = console.accept(&headers, &bytes)?;
    let interface = interface_named(&req.interface)?;
    let rule = Url::parse(&req.url).map_err(|e| bad(format!("not a rule URL: {e}")))?;
    let in_force = rules::current_within(&*console.registry, interface, console.timeout_ms)
        .await
        .map_err(failed)?;
    if !in_force.contains(&rule) {
        return Err(bad(format!(
            "no such rule is in force for {interface}: {rule}"
        )));
    }
    write_rule(&console, interface, rule, true).await
}

#[derive(Deserialize)]
struct InvokeRequest {
    interface: String,
    method: String,
    /// A JSON array as text.
    args: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

async fn invoke(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let req: InvokeRequest = console.accept(&headers, &bytes)?;
    let interface = interface_named(&req.interface)?;
    let method = req.method.trim();
    if method.is_empty() {
        return Err(bad("no method given"));
    }
    let non_empty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
    let (version, group) = (non_empty(&req.version), non_empty(&req.group));
    let call = GenericCall {
        interface,
        method,
        args: &req.args,
        group: group.as_deref(),
        version: version.as_deref(),
        timeout_ms: console.timeout_ms,
    };
    // Arguments that are not a JSON array are the caller's mistake, not the provider's.
    match serde_json::from_str::<Value>(&req.args) {
        Ok(Value::Array(_)) => {}
        Ok(other) => {
            return Err(bad(format!(
                "arguments must be a JSON array, one element per parameter; got {other}"
            )))
        }
        Err(e) => return Err(bad(format!("arguments are not valid JSON ({e})"))),
    }
    let (json, business_error) = call_json(Target::Registry(&console.registry_text), &call)
        .await
        .map_err(failed)?;
    let result: Value = serde_json::from_str(&json).unwrap_or(Value::String(json));
    Ok(Json(
        json!({ "result": result, "business_error": business_error }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abcdefgh", "abcdefgh"));
        assert!(!same_secret("abcdefgh", "abcdefgx"));
        assert!(!same_secret("abcdefgh", "abcdefg"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(interface_named(" org.example.Greeter ").is_ok());
        assert!(interface_named("").is_err());
        assert!(interface_named("a b").is_err());
        assert!(interface_named(&"x".repeat(600)).is_err());
    }

    #[test]
    fn bodies_name_what_is_wrong() {
        let err = body::<WeightRequest>(br#"{"interface":"a","address":"b"}"#)
            .err()
            .expect("missing weight");
        assert_eq!(err.0, StatusCode::BAD_REQUEST);
        assert!(err.1.contains("weight"), "{}", err.1);
        assert!(body::<WeightRequest>(b"not json").is_err());
    }
}
