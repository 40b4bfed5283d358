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
    all_keys()
        .into_iter()
        .map(|k| (strsim::jaro_winkler(k.name, name), k.name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
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
    "call timeout measured from the call's start"
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
    "protocol a service is exported or referred with: dubbo, injvm"
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
    "registry URL: local:///dir (embedded default), zookeeper://host:port, etcd://host:port"
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
