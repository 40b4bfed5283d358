//! The keys Apache Dubbo's consumers and tools expect on the URLs they find in a registry.
//!
//! A stock Dubbo 2.7/3.x consumer, dubbo2.js or dubbo-ssl-python reads more from a provider
//! URL than this framework needs itself: the Dubbo protocol version (`dubbo`), the release
//! and revision, `anyhost`, `deprecated`, `dynamic`, `generic`, `interface`, `methods`,
//! `pid`, `side` and `timestamp`. The bootstrap adds them with [`provider_keys`] when it
//! exports a service (a key set in the configuration wins), and registers its consumers with
//! [`consumer_registration`]. Keys Dubbo does not know stay as they are: method-level keys
//! (`greet.timeout`, `greet.idempotent`) follow Dubbo's own `{method}.{key}` convention, and
//! `idempotent` is no Dubbo key, so Dubbo readers keep and ignore it.

use crate::url::Url;

/// The Dubbo protocol version written as `dubbo=` (the one Dubbo 2.7 and 3.x write).
pub const PROTOCOL_VERSION: &str = "2.0.2";

/// This framework's release, written as `release=` (Dubbo writes its own release there;
/// readers only show it).
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// `url` (a provider URL) with the keys Dubbo consumers read, where `url` does not set them:
/// `anyhost=false`, `deprecated=false`, `dubbo`, `dynamic=true`, `generic=false`,
/// `interface` (the path), `release`, `revision` (the `version`, else the release) and
/// `side=provider`.
pub fn provider_keys(url: &Url) -> Url {
    let revision = url
        .param("version")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or(RELEASE)
        .to_string();
    let interface = url.interface().to_string();
    url.with_defaults([
        ("anyhost", "false".to_string()),
        ("deprecated", "false".to_string()),
        ("dubbo", PROTOCOL_VERSION.to_string()),
        ("dynamic", "true".to_string()),
        ("generic", "false".to_string()),
        ("interface", interface),
        ("release", RELEASE.to_string()),
        ("revision", revision),
        ("side", "provider".to_string()),
    ])
}

/// The URL a consumer registers for its `reference` (informational: Dubbo's tools list it),
/// as Dubbo writes its consumers: `category=consumers`, `side=consumer`, `check=false` (in
/// Dubbo a boolean; this framework's own `check`, a wait in ms, never fails a reference),
/// plus `dubbo`, `interface`, `release`, `pid` and `timestamp` (`now_ms`) where unset. The
/// reference itself keeps its keys: this is a copy for the registry only (a subscription
/// with `category=consumers` would watch the consumers).
pub fn consumer_registration(reference: &Url, now_ms: u64) -> Url {
    let interface = reference.interface().to_string();
    reference
        .with_defaults([
            ("dubbo", PROTOCOL_VERSION.to_string()),
            ("interface", interface),
            ("release", RELEASE.to_string()),
            ("pid", std::process::id().to_string()),
            ("timestamp", now_ms.to_string()),
        ])
        .with_params([
            ("category", "consumers"),
            ("check", "false"),
            ("side", "consumer"),
        ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Category;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn providers_get_the_keys_dubbo_readers_need_without_losing_their_own() {
        let p = provider_keys(&url(
            "dubbo://10.0.0.1:20880/org.example.Greeter?side=provider&version=1.0.0&methods=greet&greet.idempotent=true&anyhost=true",
        ));
        for (k, v) in [
            ("anyhost", "true"),
            ("deprecated", "false"),
            ("dubbo", "2.0.2"),
            ("dynamic", "true"),
            ("generic", "false"),
            ("interface", "org.example.Greeter"),
            ("release", RELEASE),
            ("revision", "1.0.0"),
            ("greet.idempotent", "true"),
        ] {
            assert_eq!(p.param(k), Some(v), "{k}");
        }
        assert_eq!(Category::of(&p), Category::Providers);
        let unversioned = provider_keys(&url("dubbo://h:1/a.B"));
        assert_eq!(unversioned.param("revision"), Some(RELEASE));
        assert_eq!(unversioned.param("side"), Some("provider"));
    }

    #[test]
    fn consumers_are_registered_as_dubbo_writes_them() {
        let reference =
            url("consumer://10.0.0.2:0/org.example.Greeter?side=consumer&check=3000&version=1.0.0");
        let c = consumer_registration(&reference, 1_700_000_000_000);
        assert_eq!(c.param("category"), Some("consumers"));
        assert_eq!(c.param("check"), Some("false"));
        assert_eq!(c.param("dubbo"), Some("2.0.2"));
        assert_eq!(c.param("interface"), Some("org.example.Greeter"));
        assert_eq!(c.param("timestamp"), Some("1700000000000"));
        assert!(c.param("pid").is_some());
        assert_eq!(Category::of(&c), Category::Consumers);
        assert!(c.to_full_string().starts_with(
            "consumer://10.0.0.2/org.example.Greeter?category=consumers&check=false&"
        ));
        assert_eq!(
            reference.param("check"),
            Some("3000"),
            "the reference keeps its keys"
        );
    }
}
