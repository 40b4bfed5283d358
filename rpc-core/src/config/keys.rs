//! Every URL key by name: the table of configuration keys (name, default, kind and meaning),
//! and the keys the framework writes into URLs for itself.
//!
//! Config files and environment variables are checked against the table, so a typo is an
//! error instead of a setting that silently does nothing. Each key of the table is also a
//! constant of this module ([`TIMEOUT`] is `"timeout"`), and the code reads and writes URLs
//! through those constants, so the checker, the documentation and the code name a key the same
//! way. Plugins add their own keys with [`config_key!`](crate::config_key). The README's key
//! table is checked against this table by a test, so the two cannot drift.
//!
//! The keys after the table ([`INTERFACE`], [`SIDE`], [`CATEGORY`], ...) are not settings:
//! the framework writes them (registration metadata, rule URLs) or reads them from URLs
//! written by registries and Dubbo peers. They are not in the table, so a configuration that
//! sets one is refused.

/// What values a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A whole number (counts, weights, sizes).
    Int,
    /// Milliseconds, as a whole number.
    Millis,
    /// `true` or `false`.
    Bool,
    /// Milliseconds, or a Dubbo-style boolean in their place (`check=false` as Dubbo
    /// configurations write it): what `true` and `false` mean is the key's own doc.
    MillisOrBool,
    /// Free text (names, lists, rules).
    Text,
}

impl KeyKind {
    /// Checks a value, returning what is wrong with it.
    pub fn check(self, value: &str) -> Result<(), &'static str> {
        match self {
            KeyKind::Int => value
                .parse::<u64>()
                .map(|_| ())
                .map_err(|_| "a whole number"),
            KeyKind::Millis => value
                .parse::<u64>()
                .map(|_| ())
                .map_err(|_| "a whole number of milliseconds"),
            KeyKind::Bool => match value {
                "true" | "false" => Ok(()),
                _ => Err("true or false"),
            },
            KeyKind::MillisOrBool => match value {
                "true" | "false" => Ok(()),
                _ => value
                    .parse::<u64>()
                    .map(|_| ())
                    .map_err(|_| "a whole number of milliseconds, true or false"),
            },
            KeyKind::Text => Ok(()),
        }
    }
}

/// One documented configuration key.
#[derive(Debug)]
pub struct ConfigKey {
    /// The URL parameter name (`timeout`); method-level form is `{method}.{name}`.
    pub name: &'static str,
    /// The default, as text (`""` when unset means "none").
    pub default: &'static str,
    /// Accepted values.
    pub kind: KeyKind,
    /// Whether it may be set per method (`greet.timeout`).
    pub per_method: bool,
    /// One line on what it does.
    pub doc: &'static str,
}

inventory::collect!(ConfigKey);

/// Declares a configuration key: a documented constant holding its name, and its row of the
/// key table (used by `rpc-core` and by plugins that read their own keys).
///
/// ```ignore
/// rpc_core::config_key!(
///     HASH_NODES = "hash.nodes",
///     "160",
///     Int,
///     per_method,
///     "consistenthash: virtual nodes per provider"
/// );
/// ```
///
/// declares `pub const HASH_NODES: &str = "hash.nodes";`, documented by the last argument, and
/// registers the key: its name, its default as text (`""` for none), its [`KeyKind`] variant,
/// `per_method` when it may be set per method (`{method}.{name}`), and its one-line doc, which
/// is also its row in the README's table. Read and write the key through the constant.
#[macro_export]
macro_rules! config_key {
    (@declare $constant:ident, $name:expr, $default:expr, $kind:ident, $per_method:expr, $doc:expr) => {
        #[doc = $doc]
        pub const $constant: &str = $name;
        $crate::__private::inventory::submit! {
            $crate::config::ConfigKey {
                name: $constant,
                default: $default,
                kind: $crate::config::KeyKind::$kind,
                per_method: $per_method,
                doc: $doc,
            }
        }
    };
    ($constant:ident = $name:expr, $default:expr, $kind:ident, per_method, $doc:expr) => {
        $crate::config_key!(@declare $constant, $name, $default, $kind, true, $doc);
    };
    ($constant:ident = $name:expr, $default:expr, $kind:ident, $doc:expr) => {
        $crate::config_key!(@declare $constant, $name, $default, $kind, false, $doc);
    };
}

/// Every registered key, sorted by name.
pub fn all_keys() -> Vec<&'static ConfigKey> {
    let mut keys: Vec<&'static ConfigKey> = inventory::iter::<ConfigKey>.into_iter().collect();
    keys.sort_by_key(|k| k.name);
    keys.dedup_by_key(|k| k.name);
    keys
}

/// The key named `name`, if registered.
pub fn find_key(name: &str) -> Option<&'static ConfigKey> {
    inventory::iter::<ConfigKey>
        .into_iter()
        .find(|k| k.name == name)
}

/// The registered key closest to `name`, for "did you mean" hints.
pub fn closest_key(name: &str) -> Option<&'static str> {
    let names: Vec<&'static str> = all_keys().into_iter().map(|k| k.name).collect();
    crate::extension::suggest(&names, name)
}

/// The method-level form of `key` for `method`: `{method}.{key}` (`greet.timeout`), which
/// [`Url::method_param`](crate::Url::method_param) reads before `key` itself.
pub fn method_key(method: &str, key: &str) -> String {
    format!("{method}.{key}")
}

/// The method a parameter name sets `key` for (`greet` for `greet.timeout` and
/// [`TIMEOUT`]), or `None` when the name is not a method-level form of `key`.
pub fn method_of<'a>(param: &'a str, key: &str) -> Option<&'a str> {
    param.strip_suffix(key)?.strip_suffix('.')
}

/// The key table as Markdown (name, default, per-method, meaning), as the README shows it.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | default | per method | meaning |\n|---|---|---|---|\n");
    for k in all_keys() {
        let default = if k.default.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", k.default)
        };
        let per_method = if k.per_method { "yes" } else { "" };
        out.push_str(&format!(
            "| `{}` | {default} | {per_method} | {} |\n",
            k.name, k.doc
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Settings: the key table. A layer of the core that reads a setting declares it here, so the
// table is one place; plugins declare theirs with `config_key!` in their own crate.
// ---------------------------------------------------------------------------------------

crate::config_key!(
    APPLICATION = "application",
    "",
    Text,
    "name of the application a provider or consumer belongs to"
);
crate::config_key!(
    VERSION = "version",
    "",
    Text,
    "service version; part of the service key"
);
crate::config_key!(
    GROUP = "group",
    "",
    Text,
    "service group; part of the service key; on a nacos registry URL: the Nacos group (default DEFAULT_GROUP)"
);
crate::config_key!(
    TIMEOUT = "timeout",
    "1000",
    Millis,
    per_method,
    "call timeout measured from the call's start (checked every 10 ms on a `dubbo` connection); on a zookeeper, etcd or nacos registry URL: its connect and request timeout (default 5000)"
);
crate::config_key!(
    RETRIES = "retries",
    "2",
    Int,
    per_method,
    "failover: extra attempts on other providers (idempotent methods, or when set explicitly)"
);
crate::config_key!(
    LOADBALANCE = "loadbalance",
    "random",
    Text,
    per_method,
    "load balancer: random, roundrobin, leastactive, consistenthash, shortestresponse, p2c"
);
crate::config_key!(
    CLUSTER = "cluster",
    "failover",
    Text,
    per_method,
    "fault tolerance: failover, failfast, failsafe, failback, forking, broadcast, available"
);
crate::config_key!(
    FILTER = "filter",
    "default",
    Text,
    "filters to add (name), remove (-name) or place (default), comma separated"
);
crate::config_key!(
    SERIALIZATION = "serialization",
    "msgpack",
    Text,
    "serialization: msgpack, json, bincode (plugin)"
);
crate::config_key!(
    PROTOCOL = "protocol",
    "dubbo",
    Text,
    "protocol a service is exported or referred with: dubbo, injvm, tri (plugin rpc-triple)"
);
crate::config_key!(
    TRANSPORTER = "transporter",
    "tcp",
    Text,
    "byte transport under the protocol"
);
crate::config_key!(
    WEIGHT = "weight",
    "100",
    Int,
    per_method,
    "provider weight for load balancing"
);
crate::config_key!(
    WARMUP = "warmup",
    "600000",
    Millis,
    "provider warm-up: its weight ramps up over this time after start"
);
crate::config_key!(
    CONNECT_TIMEOUT = "connect.timeout",
    "3000",
    Millis,
    "time allowed to open a connection"
);
crate::config_key!(
    IDEMPOTENT = "idempotent",
    "false",
    Bool,
    per_method,
    "the method may be retried after a failure that may have reached the provider"
);
crate::config_key!(
    REGISTRY = "registry",
    "",
    Text,
    "registry URL: local:///dir (embedded default), zookeeper://host:port, etcd://host:port, nacos://host:port"
);
crate::config_key!(
    URL = "url",
    "",
    Text,
    "a reference's direct provider URLs, comma separated; bypasses the registry"
);

crate::config_key!(
    CONNECTIONS = "connections",
    "1",
    Int,
    "connections a consumer opens to each provider address (shared by all references)"
);
crate::config_key!(
    HEARTBEAT = "heartbeat",
    "60000",
    Millis,
    "idle time before a heartbeat; a peer silent for three heartbeats is dead"
);
crate::config_key!(
    IDLE_TIMEOUT = "idle.timeout",
    "180000",
    Millis,
    "provider: close a connection that sent nothing (not even a heartbeat) for this long"
);
crate::config_key!(
    PAYLOAD = "payload",
    "8388608",
    Int,
    "largest frame body accepted, in bytes; checked before allocating"
);
crate::config_key!(
    SEND_QUEUE = "send.queue",
    "1024",
    Int,
    "frames queued per connection before senders wait (back-pressure)"
);
crate::config_key!(
    STICKY = "sticky",
    "false",
    Bool,
    per_method,
    "keep calling the same provider while it stays available"
);
crate::config_key!(
    FORKS = "forks",
    "2",
    Int,
    per_method,
    "forking: providers called in parallel, the first success wins"
);
crate::config_key!(
    FAILBACK_INTERVAL = "failback.interval",
    "5000",
    Millis,
    per_method,
    "failback: delay between background retries of a failed call"
);
crate::config_key!(
    FAILBACK_TASKS = "failback.tasks",
    "100",
    Int,
    "failback: most failed calls waiting for a retry at once"
);
crate::config_key!(
    HASH_NODES = "hash.nodes",
    "160",
    Int,
    per_method,
    "consistenthash: virtual nodes per provider"
);
crate::config_key!(
    HASH_ARGUMENTS = "hash.arguments",
    "0",
    Text,
    per_method,
    "consistenthash: comma-separated indexes of the arguments hashed; when set, a call without one of them fails"
);
crate::config_key!(
    TAG = "tag",
    "",
    Text,
    "provider: the routing tag it serves; a call's `tag` attachment picks providers with that tag"
);
crate::config_key!(
    TAG_FORCE = "tag.force",
    "false",
    Bool,
    "tag routing: no fallback to untagged providers when no provider has the requested tag"
);
crate::config_key!(
    LEASE = "lease",
    "3000",
    Millis,
    "registry URL (local): a registration not refreshed for this long is dead; on an etcd registry URL: its lease TTL in seconds (default 10)"
);
crate::config_key!(
    POLL = "poll",
    "300",
    Millis,
    "registry URL (local; nacos: default 1000): how often subscriptions look for changes"
);
crate::config_key!(
    CACHE = "cache",
    "true",
    Bool,
    "registry URL: keep provider lists in a disk cache used while the registry is down"
);
crate::config_key!(CACHE_FILE = "cache.file", "", Text, "registry URL: path of the provider-list cache file (default `~/.rpc/cache/registry-<application>-<address>.json`)");
crate::config_key!(
    CONFIG_ENABLED = "config.enabled",
    "true",
    Bool,
    "registry URL: read the rule documents of its config center (Dubbo 2.7+ YAML rules)"
);
crate::config_key!(
    CONFIG_INTERVAL = "config.interval",
    "1000",
    Millis,
    "registry URL: how often each config-center rule document is read"
);
crate::config_key!(
    CONFIG_GROUP = "config.group",
    "dubbo",
    Text,
    "registry URL: the config-center group rule documents are kept in"
);
crate::config_key!(
    FILE = "file",
    "",
    Text,
    "registry URL: Dubbo's name for cache.file, read when cache.file is not set"
);
crate::config_key!(
    ROOT = "root",
    "dubbo",
    Text,
    "registry URL (zookeeper, etcd): the root of Dubbo's node layout, `/{root}/{interface}/{category}/...` (empty: none)"
);
crate::config_key!(
    BACKUP = "backup",
    "",
    Text,
    "registry URL (zookeeper, etcd, nacos): more servers of the same cluster, host:port,host:port"
);
crate::config_key!(
    SESSION = "session",
    "60000",
    Millis,
    "registry URL (zookeeper): the session timeout asked for (the server clamps it to its own bounds)"
);
crate::config_key!(
    NAMESPACE = "namespace",
    "",
    Text,
    "registry URL (nacos): the namespace id (empty: public)"
);
crate::config_key!(
    CLIENT = "client",
    "",
    Text,
    "registry URL: a name for a registry session of its own (one session is shared per URL, so URLs that differ only in this name get one each)"
);
crate::config_key!(
    BEAT = "beat",
    "5000",
    Millis,
    "registry URL (nacos): time between the heartbeats of each registration"
);
// Governance filters (see `filter`).
crate::config_key!(
    ACTIVES = "actives",
    "0",
    Int,
    per_method,
    "consumer: most calls of a method in flight to one provider; excess waits until its deadline (0 = no limit)"
);
crate::config_key!(
    EXECUTES = "executes",
    "0",
    Int,
    per_method,
    "provider: most concurrent executions of a method; excess rejected at once (0 = no limit)"
);
crate::config_key!(
    TPS = "tps",
    "0",
    Int,
    per_method,
    "provider: calls per second per method and calling application (0 = no limit)"
);
crate::config_key!(
    TPS_BURST = "tps.burst",
    "",
    Int,
    per_method,
    "provider: token bucket size of the tps limit (default: tps)"
);
crate::config_key!(
    ISOLATION = "isolation",
    "0",
    Int,
    per_method,
    "provider: concurrency budget of a service (or of a method, set per method) (0 = none)"
);
crate::config_key!(
    ISOLATION_QUEUE = "isolation.queue",
    "0",
    Int,
    per_method,
    "provider: calls that may wait for an isolation slot before LimitExceeded"
);
crate::config_key!(
    BREAKER_ERROR_RATE = "breaker.error-rate",
    "50",
    Int,
    per_method,
    "circuit breaker: failure percentage in the window that opens it (0 = off)"
);
crate::config_key!(
    BREAKER_MIN_CALLS = "breaker.min-calls",
    "20",
    Int,
    per_method,
    "circuit breaker: calls in the window before the error rate is judged"
);
crate::config_key!(
    BREAKER_WINDOW = "breaker.window",
    "10000",
    Millis,
    per_method,
    "circuit breaker: length of the sliding window"
);
crate::config_key!(
    BREAKER_CONSECUTIVE_FAILURES = "breaker.consecutive-failures",
    "0",
    Int,
    per_method,
    "circuit breaker: failures in a row that open it (0 = off)"
);
crate::config_key!(
    BREAKER_OPEN = "breaker.open",
    "5000",
    Millis,
    per_method,
    "circuit breaker: time it stays open before probing"
);
crate::config_key!(
    BREAKER_PROBES = "breaker.probes",
    "1",
    Int,
    per_method,
    "circuit breaker: successful half-open probe calls that close it"
);
crate::config_key!(
    MOCK = "mock",
    "",
    Text,
    per_method,
    "degradation: `return <json>`, `throw [message]` or `fallback`, after `force:` (instead of calling) or `fail:` (on a failure; the default)"
);
crate::config_key!(
    TOKEN = "token",
    "",
    Text,
    "provider: secret callers must present; true = generate one at export"
);
crate::config_key!(
    ACCESSLOG = "accesslog",
    "false",
    Bool,
    "provider: one tracing event per call under target rpc::accesslog"
);

crate::config_key!(
    RECONNECT_INTERVAL = "reconnect.interval",
    "100",
    Millis,
    "first delay before reconnecting to a provider, doubled after each failure"
);
crate::config_key!(
    RECONNECT_MAX = "reconnect.max",
    "3000",
    Millis,
    "longest delay between reconnect attempts"
);
crate::config_key!(
    THREADS = "threads",
    "10000",
    Int,
    "provider: requests running at once per server; beyond it calls are refused with LimitExceeded"
);
crate::config_key!(
    ACCEPTS = "accepts",
    "4096",
    Int,
    "provider: most open connections per server; one more is closed at once (0 = unlimited)"
);
crate::config_key!(
    FRAME_TIMEOUT = "frame.timeout",
    "10000",
    Millis,
    "a frame must be complete this long after its first byte, or the connection is closed (slow senders, peers stalled mid-frame)"
);
crate::config_key!(
    CONNECTION_INFLIGHT = "connection.inflight",
    "4096",
    Int,
    "provider: requests of one connection executing at once; one more is refused with LimitExceeded"
);
crate::config_key!(
    INPLACE_BUDGET = "inplace.budget",
    "1000",
    Int,
    "provider: CPU microseconds one read's requests may compute where their connection is read; past it the connection's requests run in tasks of their own for a second (0 = always)"
);
crate::config_key!(
    PAYLOAD_BUDGET = "payload.budget",
    "67108864",
    Int,
    "provider: bytes of partly received frames over 64 KiB held at once by a server; a frame waits for room until its frame.timeout"
);

// TLS (`transport::tls`).
crate::config_key!(
    TLS = "tls",
    "false",
    Bool,
    "provider: serve the dubbo protocol over TLS (advertised in its URL; consumers then connect with TLS)"
);
crate::config_key!(
    TLS_CERT = "tls.cert",
    "",
    Text,
    "TLS certificate chain, PEM (a file path or the PEM text): the provider's; on a consumer, its client certificate for mTLS"
);
crate::config_key!(
    TLS_KEY = "tls.key",
    "",
    Text,
    "TLS private key of tls.cert, PEM (a file path or the PEM text)"
);
crate::config_key!(
    TLS_CA = "tls.ca",
    "",
    Text,
    "TLS CA certificates, PEM (path or text): on a consumer, what provider certificates must be signed by; on a provider, requires client certificates signed by it (mTLS)"
);
crate::config_key!(
    TLS_RELOAD = "tls.reload",
    "10000",
    Millis,
    "provider: how often the TLS certificate, key and CA files are checked and reloaded when changed (0 = never)"
);
crate::config_key!(
    TLS_SERVER_NAME = "tls.server.name",
    "",
    Text,
    "consumer: the name the provider's TLS certificate must carry (default: the provider URL's host)"
);

// Idempotency keys (`idempotency`).
crate::config_key!(
    IDEMPOTENCY = "idempotency",
    "",
    Text,
    per_method,
    "provider: remember results per idempotency key (generated, or the index of the key argument); set by `#[idempotency_key]`"
);
crate::config_key!(
    IDEMPOTENCY_STORE = "idempotency.store",
    "memory",
    Text,
    "provider: where results per idempotency key are kept: memory (per export), or a shared-store plugin"
);
crate::config_key!(
    IDEMPOTENCY_WINDOW = "idempotency.window",
    "300000",
    Millis,
    per_method,
    "provider: how long a completed idempotency key is remembered"
);
crate::config_key!(
    IDEMPOTENCY_RUN = "idempotency.run",
    "60000",
    Millis,
    per_method,
    "provider: a call with an idempotency key runs on (up to this long from its start) after its caller's deadline, so that a retry finds its result"
);
crate::config_key!(
    IDEMPOTENCY_CAPACITY = "idempotency.capacity",
    "100000",
    Int,
    "provider: most completed idempotency keys the memory store keeps (least recently used evicted first)"
);
crate::config_key!(
    IDEMPOTENCY_BYTES = "idempotency.bytes",
    "67108864",
    Int,
    "provider: most bytes of stored answers the memory store keeps (least recently used evicted first)"
);

// Zone routing (`cluster::router::zone`).
crate::config_key!(
    ZONE = "zone",
    "",
    Text,
    "the zone (data center) a provider runs in, advertised in its URL; on a consumer, its own zone, whose providers it prefers"
);
crate::config_key!(
    ZONE_STICKY = "zone.sticky",
    "0",
    Millis,
    "zone routing: after a fallback to other zones, how long the consumer's zone must stay available before calls come back to it"
);
crate::config_key!(
    ZONE_FORCE = "zone.force",
    "false",
    Bool,
    "zone routing: never fall back to other zones when the consumer's zone has no available provider"
);

// Ordered calls (`filter::ordered`).
crate::config_key!(
    ORDERED = "ordered",
    "",
    Int,
    per_method,
    "provider: the index of the argument whose value orders the calls (same value: one at a time, in arrival order); set by `#[ordered_by]`"
);
crate::config_key!(
    ORDERED_QUEUE = "ordered.queue",
    "1000",
    Int,
    per_method,
    "provider: calls with one ordering key that may wait behind the running one; one more is refused with LimitExceeded"
);

// The bootstrap (`bootstrap`).
crate::config_key!(
    SHUTDOWN_WAIT = "shutdown.wait",
    "1000",
    Millis,
    "graceful shutdown: time between unregistering and closing, so consumers stop sending"
);
crate::config_key!(
    CHECK = "check",
    "3000",
    MillisOrBool,
    "a registry reference waits up to this long (ms) for its first providers, then starts without (0 or false: do not wait; true: 3000, so Dubbo's check=true/false read sensibly); a direct url= reference never waits"
);
crate::config_key!(
    REGISTER = "register",
    "true",
    Bool,
    "a registry reference registers itself under the service's consumers (informational, for operators' tools); false keeps a short-lived or tool's reference out of that list"
);

crate::config_key!(
    METRICS_PORT = "metrics.port",
    "",
    Int,
    "provider: serve Prometheus metrics over HTTP on 127.0.0.1 at this port (0: any free port); needs rpc-core's prometheus feature"
);

// The dubbo protocol (`protocol::dubbo`), towards hessian2 callers.
crate::config_key!(
    RESPONSE_ATTACHMENTS = "response.attachments",
    "auto",
    Text,
    "provider: when a hessian2 caller of Dubbo 2.0.2 to 2.0.99 gets the with-attachments response form: auto (when there are attachments), always (as Java does, adding dubbo=2.0.2), never"
);
crate::config_key!(
    HESSIAN2_EXCEPTION = "hessian2.exception",
    "java.lang.RuntimeException",
    Text,
    "provider: the Java exception class a business error reaches hessian2 callers as"
);

// The admin service (`bootstrap::admin`).
crate::config_key!(
    ADMIN = "admin",
    "true",
    Bool,
    "provider: export the admin service (describe, metrics, offline/online) on the service port"
);
crate::config_key!(
    ADMIN_TOKEN = "admin.token",
    "",
    Text,
    "provider: a secret every admin call must carry (`rpcctl --provider-admin-token`); without one, only callers on the provider's own host may take it offline or online"
);

// ---------------------------------------------------------------------------------------
// Keys the framework writes into URLs, or reads from URLs that registries, rules and Dubbo
// peers write; not settings (not in the key table, so a configuration cannot set them).
// ---------------------------------------------------------------------------------------

// Registration: what a provider or consumer URL says about itself.

/// The interface a URL is about ([`Url::interface`](crate::Url::interface) reads it before
/// the path); written at export and registration.
pub const INTERFACE: &str = "interface";
/// A provider's method names, sorted and comma separated.
pub const METHODS: &str = "methods";
/// `{method}.oneway=true`: the method is fire and forget (no response is awaited). Written
/// from the service definition (a `#[oneway]` method); not a setting, since a method that
/// returns a value cannot be made one-way by configuration.
pub const ONEWAY: &str = "oneway";
/// Which end of a service a URL describes: `provider` or `consumer`.
pub const SIDE: &str = "side";
/// The registry category a URL is filed under (`providers`, `consumers`, `routers`,
/// `configurators`); on a subscription, the comma-separated categories it watches.
pub const CATEGORY: &str = "category";
crate::config_key!(
    DYNAMIC = "dynamic",
    "true",
    Bool,
    "service: false registers the provider so that it outlives its registry session or lease (a persistent ZooKeeper node, an etcd key without lease, a persistent Nacos instance, a local entry without expiry), listed until unregistered, as Dubbo's dynamic=false; rules are written so"
);
/// The id of the process that registered a URL.
pub const PID: &str = "pid";
/// When a provider started, in milliseconds since the epoch (its warm-up counts from it), or
/// when a consumer registered.
pub const TIMESTAMP: &str = "timestamp";
/// The Dubbo protocol version a URL's writer speaks (`2.0.2`).
pub const DUBBO: &str = "dubbo";
/// The release of the framework that wrote a URL (readers only show it).
pub const RELEASE: &str = "release";
/// A provider's service revision: its `version`, else the release (as Dubbo writes it).
pub const REVISION: &str = "revision";
/// Dubbo's flag for a provider registered with a wildcard host; written `false`.
pub const ANYHOST: &str = "anyhost";
/// Dubbo's flag for a deprecated service; written `false`.
pub const DEPRECATED: &str = "deprecated";
/// Dubbo's flag for a generic service; written `false`.
pub const GENERIC: &str = "generic";
/// The key under which a provider names its own serialization when it is not one Dubbo peers
/// speak (no Dubbo key starts with `rpc.`); see [`registry::dubbo`](crate::registry::dubbo).
pub const NATIVE_SERIALIZATION: &str = "rpc.serialization";
/// On the URL a consumer calls one provider with: that provider's application.
pub const REMOTE_APPLICATION: &str = "remote.application";

// Rules: override (`configurators`) and route (`routers`) rule URLs.

/// A rule or provider URL with `enabled=false` is ignored.
pub const ENABLED: &str = "enabled";
/// An override rule setting `disabled=true` takes the providers it matches out of the list
/// (and a provider it matches out of the registry).
pub const DISABLED: &str = "disabled";
/// A route rule: `true` keeps its result even when it leaves no provider (no fallback).
pub const FORCE: &str = "force";
/// The order of rules of one kind: of two matching override rules the higher wins; a higher
/// router runs first.
pub const PRIORITY: &str = "priority";
/// A condition rule's text (`method = find* => host = 10.0.0.*`).
pub const RULE: &str = "rule";
/// A routing rule's type when its protocol does not say it: Dubbo Admin writes
/// `route://…?router=condition`.
pub const ROUTER: &str = "router";
/// A tag rule's tags with their addresses (`name=addr|addr;name=addr`).
pub const TAGS: &str = "tags";
/// A route rule read from a config center: the service or application it was written for.
pub const KEY: &str = "key";
/// A route rule read from a config center: Dubbo's `runtime` flag, kept as written.
pub const RUNTIME: &str = "runtime";
/// An override rule read from a config center: the version of the rule document.
pub const CONFIG_VERSION: &str = "configVersion";
/// Dubbo's marker on an override rule converted from its older form; says nothing the rule
/// sets.
pub const COMPATIBLE_CONFIG: &str = "compatible_config";
/// An override rule's `providerAddresses` (`host:port` or `host`, comma separated), as a
/// config center's YAML rule writes it: the rule applies only to calls to those providers
/// (see [`crate::cluster::configurator`]).
pub const PROVIDER_ADDRESSES: &str = "providerAddresses";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_check_values() {
        assert!(KeyKind::Millis.check("10").is_ok());
        assert_eq!(
            KeyKind::Millis.check("1s"),
            Err("a whole number of milliseconds")
        );
        assert_eq!(KeyKind::Bool.check("yes"), Err("true or false"));
        for ok in ["0", "2500", "true", "false"] {
            assert!(KeyKind::MillisOrBool.check(ok).is_ok(), "{ok}");
        }
        assert!(KeyKind::MillisOrBool.check("yes").is_err());
        assert!(KeyKind::Text.check("anything").is_ok());
    }

    #[test]
    fn every_key_is_declared_once() {
        // The table shows one row per name and `find_key` takes the first declaration it
        // meets: a second `config_key!` of a name (another default, another kind) would be
        // hidden, not reported.
        let mut names: Vec<&str> = inventory::iter::<ConfigKey>
            .into_iter()
            .map(|k| k.name)
            .collect();
        names.sort_unstable();
        let twice: Vec<&str> = names
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        assert!(twice.is_empty(), "declared more than once: {twice:?}");
    }

    #[test]
    fn method_level_names() {
        assert_eq!(method_key("greet", TIMEOUT), "greet.timeout");
        assert_eq!(method_of("greet.timeout", TIMEOUT), Some("greet"));
        assert_eq!(method_of("greet.hash.nodes", HASH_NODES), Some("greet"));
        assert_eq!(method_of("timeout", TIMEOUT), None);
        assert_eq!(method_of("greet.timeout.x", TIMEOUT), None);
        assert_eq!(method_of("greettimeout", TIMEOUT), None);
    }

    #[test]
    fn keys_are_sorted_unique_and_documented() {
        let keys = all_keys();
        assert!(keys.windows(2).all(|w| w[0].name < w[1].name));
        assert!(keys.iter().all(|k| !k.doc.is_empty()));
        assert_eq!(find_key("timeout").map(|k| k.default), Some("1000"));
        assert_eq!(closest_key("timeot"), Some("timeout"));
    }
}
