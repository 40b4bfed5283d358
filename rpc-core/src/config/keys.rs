//! The table of every configuration key: name, default, kind and meaning.
//!
//! Config files and environment variables are checked against it, so a typo is an error
//! instead of a setting that silently does nothing. Plugins add their own keys with
//! [`config_key!`](crate::config_key). The README's key table is checked against this table
//! by a test, so the two cannot drift.

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

/// Declares a configuration key (used by `rpc-core` and by plugins that read their own keys).
///
/// ```ignore
/// rpc_core::config_key!("hash.nodes", "160", Int, per_method, "virtual nodes per provider");
/// ```
#[macro_export]
macro_rules! config_key {
    ($name:expr, $default:expr, $kind:ident, per_method, $doc:expr) => {
        $crate::__private::inventory::submit! {
            $crate::config::ConfigKey {
                name: $name,
                default: $default,
                kind: $crate::config::KeyKind::$kind,
                per_method: true,
                doc: $doc,
            }
        }
    };
    ($name:expr, $default:expr, $kind:ident, $doc:expr) => {
        $crate::__private::inventory::submit! {
            $crate::config::ConfigKey {
                name: $name,
                default: $default,
                kind: $crate::config::KeyKind::$kind,
                per_method: false,
                doc: $doc,
            }
        }
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

// The core's own keys. Layers that read a key declare it here so the table is one place.
crate::config_key!(
    "application",
    "",
    Text,
    "name of the application a provider or consumer belongs to"
);
crate::config_key!(
    "version",
    "",
    Text,
    "service version; part of the service key"
);
crate::config_key!("group", "", Text, "service group; part of the service key");
crate::config_key!(
    "timeout",
    "1000",
    Millis,
    per_method,
    "call timeout measured from the call's start (checked every 10 ms on a `dubbo` connection)"
);
crate::config_key!(
    "retries",
    "2",
    Int,
    per_method,
    "failover: extra attempts on other providers (idempotent methods, or when set explicitly)"
);
crate::config_key!(
    "loadbalance",
    "random",
    Text,
    per_method,
    "load balancer: random, roundrobin, leastactive, consistenthash, shortestresponse, p2c"
);
crate::config_key!(
    "cluster",
    "failover",
    Text,
    per_method,
    "fault tolerance: failover, failfast, failsafe, failback, forking, broadcast, available"
);
crate::config_key!(
    "filter",
    "default",
    Text,
    "filters to add (name), remove (-name) or place (default), comma separated"
);
crate::config_key!(
    "serialization",
    "msgpack",
    Text,
    "serialization: msgpack, json, bincode (plugin)"
);
crate::config_key!(
    "protocol",
    "dubbo",
    Text,
    "protocol a service is exported or referred with: dubbo, injvm, tri (plugin rpc-triple)"
);
crate::config_key!(
    "transporter",
    "tcp",
    Text,
    "byte transport under the protocol"
);
crate::config_key!(
    "weight",
    "100",
    Int,
    per_method,
    "provider weight for load balancing"
);
crate::config_key!(
    "warmup",
    "600000",
    Millis,
    "provider warm-up: its weight ramps up over this time after start"
);
crate::config_key!(
    "connect.timeout",
    "3000",
    Millis,
    "time allowed to open a connection"
);
crate::config_key!(
    "idempotent",
    "false",
    Bool,
    per_method,
    "the method may be retried after a failure that may have reached the provider"
);
crate::config_key!(
    "registry",
    "",
    Text,
    "registry URL: local:///dir (embedded default), zookeeper://host:port, etcd://host:port, nacos://host:port"
);
crate::config_key!(
    "url",
    "",
    Text,
    "a reference's direct provider URLs, comma separated; bypasses the registry"
);
crate::config_key!(
    "oneway",
    "false",
    Bool,
    per_method,
    "fire and forget: no response is awaited"
);

crate::config_key!(
    "connections",
    "1",
    Int,
    "connections a consumer opens to each provider address (shared by all references)"
);
crate::config_key!(
    "heartbeat",
    "60000",
    Millis,
    "idle time before a heartbeat; a peer silent for three heartbeats is dead"
);
crate::config_key!(
    "idle.timeout",
    "180000",
    Millis,
    "provider: close a connection that sent nothing (not even a heartbeat) for this long"
);
crate::config_key!(
    "payload",
    "8388608",
    Int,
    "largest frame body accepted, in bytes; checked before allocating"
);
crate::config_key!(
    "send.queue",
    "1024",
    Int,
    "frames queued per connection before senders wait (back-pressure)"
);
crate::config_key!(
    "sticky",
    "false",
    Bool,
    per_method,
    "keep calling the same provider while it stays available"
);
crate::config_key!(
    "forks",
    "2",
    Int,
    per_method,
    "forking: providers called in parallel, the first success wins"
);
crate::config_key!(
    "failback.interval",
    "5000",
    Millis,
    per_method,
    "failback: delay between background retries of a failed call"
);
crate::config_key!(
    "failback.tasks",
    "100",
    Int,
    "failback: most failed calls waiting for a retry at once"
);
crate::config_key!(
    "hash.nodes",
    "160",
    Int,
    per_method,
    "consistenthash: virtual nodes per provider"
);
crate::config_key!(
    "hash.arguments",
    "0",
    Text,
    per_method,
    "consistenthash: comma-separated indexes of the arguments hashed; when set, a call without one of them fails"
);
crate::config_key!(
    "tag",
    "",
    Text,
    "provider: the routing tag it serves; a call's `tag` attachment picks providers with that tag"
);
crate::config_key!(
    "tag.force",
    "false",
    Bool,
    "tag routing: no fallback to untagged providers when no provider has the requested tag"
);
crate::config_key!(
    "lease",
    "3000",
    Millis,
    "registry URL (local): a registration not refreshed for this long is dead"
);
crate::config_key!(
    "poll",
    "300",
    Millis,
    "registry URL (local): how often subscriptions look for changes"
);
crate::config_key!(
    "cache",
    "true",
    Bool,
    "registry URL: keep provider lists in a disk cache used while the registry is down"
);
crate::config_key!("cache.file", "", Text, "registry URL: path of the provider-list cache file (default `~/.rpc/cache/registry-<address>.json`)");
crate::config_key!(
    "config.enabled",
    "true",
    Bool,
    "registry URL: read the rule documents of its config center (Dubbo 2.7+ YAML rules)"
);
crate::config_key!(
    "config.interval",
    "1000",
    Millis,
    "registry URL: how often each config-center rule document is read"
);
crate::config_key!(
    "config.group",
    "dubbo",
    Text,
    "registry URL: the config-center group rule documents are kept in"
);
// Governance filters (see `filter`).
crate::config_key!(
    "actives",
    "0",
    Int,
    per_method,
    "consumer: most calls of a method in flight to one provider; excess waits until its deadline (0 = no limit)"
);
crate::config_key!(
    "executes",
    "0",
    Int,
    per_method,
    "provider: most concurrent executions of a method; excess rejected at once (0 = no limit)"
);
crate::config_key!(
    "tps",
    "0",
    Int,
    per_method,
    "provider: calls per second per method and calling application (0 = no limit)"
);
crate::config_key!(
    "tps.burst",
    "",
    Int,
    per_method,
    "provider: token bucket size of the tps limit (default: tps)"
);
crate::config_key!(
    "isolation",
    "0",
    Int,
    per_method,
    "provider: concurrency budget of a service (or of a method, set per method) (0 = none)"
);
crate::config_key!(
    "isolation.queue",
    "0",
    Int,
    per_method,
    "provider: calls that may wait for an isolation slot before LimitExceeded"
);
crate::config_key!(
    "breaker.error-rate",
    "50",
    Int,
    per_method,
    "circuit breaker: failure percentage in the window that opens it (0 = off)"
);
crate::config_key!(
    "breaker.min-calls",
    "20",
    Int,
    per_method,
    "circuit breaker: calls in the window before the error rate is judged"
);
crate::config_key!(
    "breaker.window",
    "10000",
    Millis,
    per_method,
    "circuit breaker: length of the sliding window"
);
crate::config_key!(
    "breaker.consecutive-failures",
    "0",
    Int,
    per_method,
    "circuit breaker: failures in a row that open it (0 = off)"
);
crate::config_key!(
    "breaker.open",
    "5000",
    Millis,
    per_method,
    "circuit breaker: time it stays open before probing"
);
crate::config_key!(
    "breaker.probes",
    "1",
    Int,
    per_method,
    "circuit breaker: successful half-open probe calls that close it"
);
crate::config_key!(
    "mock",
    "",
    Text,
    per_method,
    "degradation: `return <json>`, `throw [message]` or `fallback`, after `force:` (instead of calling) or `fail:` (on a failure; the default)"
);
crate::config_key!(
    "token",
    "",
    Text,
    "provider: secret callers must present; true = generate one at export"
);
crate::config_key!(
    "accesslog",
    "false",
    Bool,
    "provider: one tracing event per call under target rpc::accesslog"
);

crate::config_key!(
    "reconnect.interval",
    "100",
    Millis,
    "first delay before reconnecting to a provider, doubled after each failure"
);
crate::config_key!(
    "reconnect.max",
    "3000",
    Millis,
    "longest delay between reconnect attempts"
);
crate::config_key!(
    "threads",
    "10000",
    Int,
    "provider: requests running at once per server; beyond it calls are refused with LimitExceeded"
);
crate::config_key!(
    "accepts",
    "4096",
    Int,
    "provider: most open connections per server; one more is closed at once (0 = unlimited)"
);
crate::config_key!(
    "frame.timeout",
    "10000",
    Millis,
    "a frame must be complete this long after its first byte, or the connection is closed (slow senders, peers stalled mid-frame)"
);
crate::config_key!(
    "connection.inflight",
    "4096",
    Int,
    "provider: requests of one connection executing at once; one more is refused with LimitExceeded"
);
crate::config_key!(
    "payload.budget",
    "67108864",
    Int,
    "provider: bytes of partly received frames over 64 KiB held at once by a server; a frame waits for room until its frame.timeout"
);

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
    fn keys_are_sorted_unique_and_documented() {
        let keys = all_keys();
        assert!(keys.windows(2).all(|w| w[0].name < w[1].name));
        assert!(keys.iter().all(|k| !k.doc.is_empty()));
        assert_eq!(find_key("timeout").map(|k| k.default), Some("1000"));
        assert_eq!(closest_key("timeot"), Some("timeout"));
    }
}
